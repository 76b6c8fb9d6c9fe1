//! From an image file to the flash regions to write, refusing what would not boot or
//! would damage the board before anything is written.

use std::path::{Path, PathBuf};

use super::elf;
use super::FlashError;
use crate::image::{self, Chip};

/// The app area of ESP32-family flash starts here: below it sit the second-stage
/// bootloader (0x0 or 0x1000), the partition table (0x8000) and NVS / PHY data.
const APP_AREA: u32 = 0x1_0000;
const PARTITION_TABLE: u32 = 0x8000;
/// The partition table sector.
const PARTITION_TABLE_LEN: usize = 0x1000;
/// A partition table starts with the first entry's magic.
const PARTITION_MAGIC: [u8; 2] = [0xAA, 0x50];
/// The ROM loader erases whole sectors.
const SECTOR: u32 = 0x1000;

/// An image file, read and classified.
#[derive(Debug)]
pub struct Image {
    pub path: PathBuf,
    pub kind: Kind,
}

#[derive(Debug)]
pub enum Kind {
    /// An ESP app or bootloader image (magic 0xE9).
    Esp(Vec<u8>),
    /// An ELF file of an ESP-IDF app; turned into bootloader, partition table and app.
    Elf(Vec<u8>),
    /// Anything else, written as it is where `--address` says.
    Raw(Vec<u8>),
}

/// Bytes for one place in flash.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Region {
    pub addr: u32,
    pub data: Vec<u8>,
}

impl Region {
    pub fn end(&self) -> u64 {
        u64::from(self.addr) + self.data.len() as u64
    }
}

/// Reads `path` and checks what can be checked without knowing the chip.
pub fn load(path: &Path) -> Result<Image, FlashError> {
    let bytes = std::fs::read(path)
        .map_err(|e| FlashError::input(format!("cannot read {}: {e}", path.display())))?;
    if bytes.is_empty() {
        return Err(FlashError::input(format!(
            "{} is empty: nothing to flash",
            path.display()
        )));
    }
    let kind = if bytes.starts_with(elf::MAGIC) {
        elf::check(&bytes).map_err(|e| FlashError::input(format!("{}: {e}", path.display())))?;
        Kind::Elf(bytes)
    } else if bytes[0] == image::MAGIC {
        Kind::Esp(bytes)
    } else {
        Kind::Raw(bytes)
    };
    Ok(Image {
        path: path.to_path_buf(),
        kind,
    })
}

/// The regions that put `image` on a `chip` (at `address`, where the image allows one).
pub fn regions(image: &Image, chip: Chip, address: Option<u32>) -> Result<Vec<Region>, FlashError> {
    let name = image.path.display();
    let regions = match &image.kind {
        Kind::Elf(bytes) => {
            if address.is_some() {
                return Err(FlashError::input(format!(
                    "{name}: --address does not apply to an ELF image: its partition table places the app"
                )));
            }
            elf::regions(bytes, chip).map_err(|e| FlashError::input(format!("{name}: {e}")))?
        }
        Kind::Esp(bytes) => {
            check_esp_image(image, bytes, chip)?;
            let addr = address.unwrap_or(chip.app_offset());
            vec![Region {
                addr,
                data: bytes.clone(),
            }]
        }
        Kind::Raw(bytes) => {
            let addr = address.ok_or_else(|| {
                FlashError::input(format!(
                    "{name} is neither an ESP image (first byte 0xe9) nor an ELF file; \
                     to write it as raw data, give --address"
                ))
            })?;
            vec![Region {
                addr,
                data: bytes.clone(),
            }]
        }
    };
    for region in &regions {
        check_placement(&name.to_string(), region, chip)?;
    }
    Ok(regions)
}

/// Refuses regions that do not fit the board's flash.
pub fn check_fits(image: &Path, regions: &[Region], flash_size: u32) -> Result<(), FlashError> {
    for region in regions {
        if region.end() > u64::from(flash_size) {
            return Err(FlashError::input(format!(
                "{}: {} bytes at 0x{:08x} end at 0x{:08x}, past the end of the board's {} KiB flash",
                image.display(),
                region.data.len(),
                region.addr,
                region.end(),
                flash_size / 1024
            )));
        }
    }
    Ok(())
}

/// An ESP image must be one the chip's ROM would accept.
fn check_esp_image(image: &Image, bytes: &[u8], chip: Chip) -> Result<(), FlashError> {
    let name = image.path.display();
    let Err(error) = image::inspect(bytes, chip) else {
        return Ok(());
    };
    let fits = Chip::ALL
        .into_iter()
        .filter(|other| image::inspect(bytes, *other).is_ok())
        .map(Chip::name)
        .collect::<Vec<_>>();
    Err(FlashError::input(if fits.is_empty() {
        format!("{name} is not a valid {} image: {error}", chip.name())
    } else {
        format!(
            "{name} is an image for {}, but the board is an {}: refusing to write it",
            fits.join(" / "),
            chip.name()
        )
    }))
}

/// Keeps writes sector-aligned and, on the ESP32 family, out of the bootloader and
/// partition table unless the data is one of those by design.
fn check_placement(name: &str, region: &Region, chip: Chip) -> Result<(), FlashError> {
    if !region.addr.is_multiple_of(SECTOR) {
        return Err(FlashError::input(format!(
            "{name}: address 0x{:x} is not a multiple of 0x1000; the loader erases whole 4 KiB \
             sectors, so the bytes before it in that sector would be lost",
            region.addr
        )));
    }
    let Some(bootloader) = chip.bootloader_offset() else {
        return Ok(());
    };
    if u64::from(region.addr) >= u64::from(APP_AREA) {
        return Ok(());
    }
    let is_bootloader = region.addr == bootloader
        && region.end() <= u64::from(PARTITION_TABLE)
        && image::inspect(&region.data, chip).is_ok();
    let is_partition_table = region.addr == PARTITION_TABLE
        && region.data.len() <= PARTITION_TABLE_LEN
        && region.data.starts_with(&PARTITION_MAGIC);
    if is_bootloader || is_partition_table {
        return Ok(());
    }
    Err(FlashError::input(format!(
        "{name}: {} bytes at 0x{:08x} would overwrite the {} area (bootloader at 0x{bootloader:x}, \
         partition table at 0x8000); apps go at 0x10000 (the default); below it only a bootloader \
         image at 0x{bootloader:x} or a partition table at 0x8000 is written",
        region.data.len(),
        region.addr,
        chip.name()
    )))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::image::{generate, ImageSpec};

    fn app(chip: Chip) -> Vec<u8> {
        generate(&ImageSpec {
            chip,
            project: "light-controller",
            version: "1.0.0",
            code_len: 100,
        })
    }

    fn image(kind: Kind) -> Image {
        Image {
            path: "fw.bin".into(),
            kind,
        }
    }

    #[test]
    fn an_app_image_goes_to_the_chips_app_offset() {
        let c3 = regions(&image(Kind::Esp(app(Chip::Esp32c3))), Chip::Esp32c3, None).unwrap();
        assert_eq!(c3[0].addr, 0x1_0000);
        let esp8266 = regions(&image(Kind::Esp(app(Chip::Esp8266))), Chip::Esp8266, None).unwrap();
        assert_eq!(esp8266[0].addr, 0x0);
    }

    #[test]
    fn an_image_for_another_chip_is_refused_naming_both() {
        let error =
            regions(&image(Kind::Esp(app(Chip::Esp32c3))), Chip::Esp8266, None).unwrap_err();
        assert!(error.is_input());
        assert!(
            error
                .to_string()
                .contains("image for esp32c3, but the board is an esp8266"),
            "{error}"
        );
    }

    #[test]
    fn a_corrupt_image_is_refused_with_the_roms_reason() {
        let mut bytes = app(Chip::Esp32c3);
        bytes[40] ^= 0xFF;
        let error = regions(&image(Kind::Esp(bytes)), Chip::Esp32c3, None).unwrap_err();
        assert!(
            error
                .to_string()
                .contains("not a valid esp32c3 image: checksum"),
            "{error}"
        );
    }

    #[test]
    fn the_boot_area_takes_only_a_bootloader_or_a_partition_table() {
        let c3 = Chip::Esp32c3;
        let err = regions(&image(Kind::Esp(app(c3))), c3, Some(0x1000)).unwrap_err();
        assert!(
            err.to_string().contains("would overwrite the esp32c3 area"),
            "{err}"
        );
        assert!(regions(&image(Kind::Esp(app(c3))), c3, Some(0x0)).is_ok());
        let mut table = vec![0xFF; 0xC00];
        table[..2].copy_from_slice(&PARTITION_MAGIC);
        assert!(regions(&image(Kind::Raw(table)), c3, Some(0x8000)).is_ok());
        assert!(regions(&image(Kind::Raw(vec![0; 16])), c3, Some(0x9000)).is_err());
        assert!(regions(&image(Kind::Raw(vec![0; 16])), c3, Some(0x20_0000)).is_ok());
    }

    #[test]
    fn raw_data_needs_an_aligned_address() {
        let raw = || image(Kind::Raw(vec![1, 2, 3]));
        assert!(regions(&raw(), Chip::Esp8266, None)
            .unwrap_err()
            .to_string()
            .contains("give --address"));
        assert!(regions(&raw(), Chip::Esp8266, Some(0x1_0010))
            .unwrap_err()
            .to_string()
            .contains("not a multiple of 0x1000"));
    }

    #[test]
    fn regions_past_the_flash_end_are_refused() {
        let big = [Region {
            addr: 0x1_0000,
            data: vec![0; 0x40_0000],
        }];
        let error = check_fits(Path::new("big.bin"), &big, 0x40_0000).unwrap_err();
        assert!(
            error
                .to_string()
                .contains("past the end of the board's 4096 KiB flash"),
            "{error}"
        );
        assert!(check_fits(Path::new("ok.bin"), &big[..0], 0x40_0000).is_ok());
    }
}
