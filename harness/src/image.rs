//! ESP firmware image formats: reading what a board will boot, and generating test
//! images byte for byte reproducibly.
//!
//! ESP32-family app image: a 24-byte header (magic 0xE9, segment count, flash mode,
//! size/frequency, entry point, ..., chip id at byte 12, `hash_appended` at byte 23),
//! segments (`load_addr`, `len`, data), a checksum byte (0xEF xor all segment data) padded
//! to 16 bytes, then a SHA-256 of everything before it when `hash_appended` is 1. The
//! first segment starts with `esp_app_desc_t` (magic 0xABCD5432, version at +16, project
//! name at +48). ESP8266 images have an 8-byte header and neither chip id, hash nor
//! app descriptor.

pub mod elf;

use sha2::{Digest, Sha256};

pub const MAGIC: u8 = 0xE9;
pub const APP_DESC_MAGIC: u32 = 0xABCD_5432;
const CHECKSUM_SEED: u8 = 0xEF;
const ESP32_HEADER: usize = 24;
const ESP8266_HEADER: usize = 8;
const SEGMENT_HEADER: usize = 8;
/// Size of `esp_app_desc_t`.
const APP_DESC_LEN: usize = 256;

/// The chips hil knows, with the id an ESP32-family image header carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Chip {
    Esp8266,
    Esp32,
    Esp32c3,
}

impl Chip {
    pub const ALL: [Chip; 3] = [Chip::Esp8266, Chip::Esp32, Chip::Esp32c3];

    /// The `chip_id` field of an ESP32-family image header; the ESP8266 format has none.
    pub fn image_chip_id(self) -> Option<u16> {
        match self {
            Chip::Esp8266 => None,
            Chip::Esp32 => Some(0),
            Chip::Esp32c3 => Some(5),
        }
    }

    /// Where the application image lives in flash.
    pub fn app_offset(self) -> u32 {
        match self {
            Chip::Esp8266 => 0x0,
            Chip::Esp32 | Chip::Esp32c3 => 0x1_0000,
        }
    }

    /// Where the second-stage bootloader lives in flash; the ESP8266 boots its app
    /// straight from 0x0.
    pub fn bootloader_offset(self) -> Option<u32> {
        match self {
            Chip::Esp8266 => None,
            Chip::Esp32 => Some(0x1000),
            Chip::Esp32c3 => Some(0x0),
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Chip::Esp8266 => "esp8266",
            Chip::Esp32 => "esp32",
            Chip::Esp32c3 => "esp32c3",
        }
    }

    pub fn from_name(name: &str) -> Option<Chip> {
        Chip::ALL.into_iter().find(|chip| chip.name() == name)
    }
}

/// What a valid image says about itself.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImageInfo {
    /// `None` for ESP8266 images.
    pub chip_id: Option<u16>,
    pub entry: u32,
    pub segments: usize,
    /// Image length including checksum and hash.
    pub len: usize,
    /// From `esp_app_desc_t`, where the format has one.
    pub project: Option<String>,
    pub version: Option<String>,
}

/// Why an image would not boot, worded like the ROM's complaint.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ImageError {
    #[error("invalid header: 0x{0:02x} (expected magic 0xe9)")]
    BadMagic(u8),
    #[error("image is for chip id {found}, this chip is {expected}")]
    WrongChip { found: u16, expected: u16 },
    #[error("image truncated at byte {0}")]
    Truncated(usize),
    #[error("checksum mismatch: calculated 0x{calculated:02x}, read 0x{read:02x}")]
    Checksum { calculated: u8, read: u8 },
    #[error("SHA-256 of the image does not match the appended hash")]
    Hash,
}

/// Reads and checks an image as the ROM bootloader would for `chip`.
pub fn inspect(bytes: &[u8], chip: Chip) -> Result<ImageInfo, ImageError> {
    let magic = *bytes.first().ok_or(ImageError::Truncated(0))?;
    if magic != MAGIC {
        return Err(ImageError::BadMagic(magic));
    }
    let header_len = if chip == Chip::Esp8266 {
        ESP8266_HEADER
    } else {
        ESP32_HEADER
    };
    let header = bytes
        .get(..header_len)
        .ok_or(ImageError::Truncated(bytes.len()))?;
    let segments = usize::from(header[1]);
    let entry = u32::from_le_bytes([header[4], header[5], header[6], header[7]]);
    let chip_id = chip.image_chip_id().map(|expected| {
        let found = u16::from_le_bytes([header[12], header[13]]);
        (found, expected)
    });
    if let Some((found, expected)) = chip_id {
        if found != expected {
            return Err(ImageError::WrongChip { found, expected });
        }
    }
    let mut at = header_len;
    let mut checksum = CHECKSUM_SEED;
    let mut first_segment: Option<&[u8]> = None;
    for _ in 0..segments {
        let seg = bytes
            .get(at..at + SEGMENT_HEADER)
            .ok_or(ImageError::Truncated(bytes.len()))?;
        let len = u32::from_le_bytes([seg[4], seg[5], seg[6], seg[7]]) as usize;
        let data = bytes
            .get(at + SEGMENT_HEADER..at + SEGMENT_HEADER + len)
            .ok_or(ImageError::Truncated(bytes.len()))?;
        checksum = data.iter().fold(checksum, |sum, b| sum ^ b);
        first_segment.get_or_insert(data);
        at += SEGMENT_HEADER + len;
    }
    // The checksum byte sits at the last position of the 16-byte block it falls in.
    let checksum_at = at + (15 - at % 16);
    let read = *bytes
        .get(checksum_at)
        .ok_or(ImageError::Truncated(bytes.len()))?;
    if read != checksum {
        return Err(ImageError::Checksum {
            calculated: checksum,
            read,
        });
    }
    let mut len = checksum_at + 1;
    if chip != Chip::Esp8266 && header[23] == 1 {
        let hash = bytes
            .get(len..len + 32)
            .ok_or(ImageError::Truncated(bytes.len()))?;
        if Sha256::digest(&bytes[..len]).as_slice() != hash {
            return Err(ImageError::Hash);
        }
        len += 32;
    }
    let desc = first_segment
        .filter(|_| chip != Chip::Esp8266)
        .and_then(|data| data.get(..APP_DESC_LEN))
        .filter(|desc| u32::from_le_bytes([desc[0], desc[1], desc[2], desc[3]]) == APP_DESC_MAGIC);
    Ok(ImageInfo {
        chip_id: chip_id.map(|(found, _)| found),
        entry,
        segments,
        len,
        project: desc.map(|d| c_string(&d[48..80])),
        version: desc.map(|d| c_string(&d[16..48])),
    })
}

fn c_string(bytes: &[u8]) -> String {
    let end = bytes.iter().position(|&b| b == 0).unwrap_or(bytes.len());
    String::from_utf8_lossy(&bytes[..end]).into_owned()
}

/// What to put in a generated image.
#[derive(Debug, Clone)]
pub struct ImageSpec<'a> {
    pub chip: Chip,
    pub project: &'a str,
    pub version: &'a str,
    /// Bytes of filler code after the app descriptor (deterministic pattern).
    pub code_len: usize,
}

/// A valid, bootable-looking image; the same spec gives the same bytes.
pub fn generate(spec: &ImageSpec<'_>) -> Vec<u8> {
    let mut first = Vec::new();
    if spec.chip != Chip::Esp8266 {
        first.extend_from_slice(&app_desc(spec.project, spec.version));
    }
    let code = filler(spec.code_len);
    let (drom, iram, entry) = match spec.chip {
        Chip::Esp8266 => (0x3FFE_8000u32, 0x4010_0000u32, 0x4010_0004u32),
        Chip::Esp32 => (0x3F40_0020, 0x4008_0000, 0x4008_0004),
        Chip::Esp32c3 => (0x3C00_0020, 0x4038_0000, 0x4038_0004),
    };
    first.extend_from_slice(&code[..code.len() / 2]);
    let second = code[code.len() / 2..].to_vec();
    let segments = [(drom, pad4(first)), (iram, pad4(second))];

    let mut out = vec![MAGIC, segments.len() as u8, 0x02, 0x20];
    out.extend_from_slice(&entry.to_le_bytes());
    if let Some(chip_id) = spec.chip.image_chip_id() {
        out.extend_from_slice(&[0xEE, 0, 0, 0]);
        out.extend_from_slice(&chip_id.to_le_bytes());
        out.extend_from_slice(&[0; 9]);
        out.push(1); // hash appended
    }
    let mut checksum = CHECKSUM_SEED;
    for (addr, data) in &segments {
        out.extend_from_slice(&addr.to_le_bytes());
        out.extend_from_slice(&(data.len() as u32).to_le_bytes());
        out.extend_from_slice(data);
        checksum = data.iter().fold(checksum, |sum, b| sum ^ b);
    }
    while out.len() % 16 != 15 {
        out.push(0);
    }
    out.push(checksum);
    if spec.chip != Chip::Esp8266 {
        let hash = Sha256::digest(&out);
        out.extend_from_slice(&hash);
    }
    out
}

/// A deliberate defect in a generated image, for testing what must refuse it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Defect {
    /// The first byte is not 0xE9.
    BadMagic,
    /// The header names another chip (ESP32-family formats only).
    WrongChip,
    /// The checksum byte is off by one bit.
    BadChecksum,
    /// The image ends halfway through.
    Truncated,
    /// The appended SHA-256 is off by one bit (ESP32-family formats only).
    BadHash,
}

impl Defect {
    pub const ALL: [Defect; 5] = [
        Defect::BadMagic,
        Defect::WrongChip,
        Defect::BadChecksum,
        Defect::Truncated,
        Defect::BadHash,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Defect::BadMagic => "bad-magic",
            Defect::WrongChip => "wrong-chip",
            Defect::BadChecksum => "bad-checksum",
            Defect::Truncated => "truncated",
            Defect::BadHash => "bad-hash",
        }
    }
}

/// A generated image with exactly one defect, everything else consistent (a wrong
/// chip id still has a matching hash), so that each check is tested alone. `None` when
/// the chip's format has nothing to break that way (ESP8266 images carry neither chip
/// id nor hash).
pub fn generate_broken(spec: &ImageSpec<'_>, defect: Defect) -> Option<Vec<u8>> {
    let mut image = generate(spec);
    let hashed = spec.chip != Chip::Esp8266;
    let body_len = if hashed {
        image.len() - 32
    } else {
        image.len()
    };
    match defect {
        Defect::BadMagic => image[0] = 0xE8,
        Defect::WrongChip => {
            let own = spec.chip.image_chip_id()?;
            let other = Chip::ALL
                .into_iter()
                .filter_map(Chip::image_chip_id)
                .find(|&id| id != own)?;
            image[12..14].copy_from_slice(&other.to_le_bytes());
        }
        Defect::BadChecksum => image[body_len - 1] ^= 1,
        Defect::Truncated => {
            image.truncate(image.len() / 2);
            return Some(image);
        }
        Defect::BadHash => {
            if !hashed {
                return None;
            }
            image[body_len] ^= 1;
            return Some(image);
        }
    }
    // The hash covers the header and the checksum: kept matching, it trips nothing.
    if hashed {
        let hash = Sha256::digest(&image[..body_len]);
        image[body_len..].copy_from_slice(&hash);
    }
    Some(image)
}

/// Stand-in machine code: a deterministic byte pattern.
fn filler(len: usize) -> Vec<u8> {
    (0..len).map(|i| (i * 31 % 251) as u8).collect()
}

fn pad4(mut data: Vec<u8>) -> Vec<u8> {
    data.resize(data.len().div_ceil(4) * 4, 0);
    data
}

/// `esp_app_desc_t` with the fields a boot log shows.
fn app_desc(project: &str, version: &str) -> Vec<u8> {
    let mut desc = vec![0u8; APP_DESC_LEN];
    desc[..4].copy_from_slice(&APP_DESC_MAGIC.to_le_bytes());
    copy_c_string(&mut desc[16..48], version);
    copy_c_string(&mut desc[48..80], project);
    copy_c_string(&mut desc[80..96], "00:00:00");
    copy_c_string(&mut desc[96..112], "Jan  1 2026");
    copy_c_string(&mut desc[112..144], "v5.3");
    desc
}

fn copy_c_string(field: &mut [u8], text: &str) {
    let len = text.len().min(field.len() - 1);
    field[..len].copy_from_slice(&text.as_bytes()[..len]);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(chip: Chip) -> ImageSpec<'static> {
        ImageSpec {
            chip,
            project: "light-controller",
            version: "1.4.2",
            code_len: 1000,
        }
    }

    #[test]
    fn generated_images_inspect_as_what_they_claim() {
        let image = generate(&spec(Chip::Esp32c3));
        let info = inspect(&image, Chip::Esp32c3).unwrap();
        assert_eq!(info.chip_id, Some(5));
        assert_eq!(info.version.as_deref(), Some("1.4.2"));
        assert_eq!(info.project.as_deref(), Some("light-controller"));
        assert_eq!(info.len, image.len());
        assert_eq!(image.len() % 16, 0);

        let legacy = generate(&spec(Chip::Esp8266));
        let info = inspect(&legacy, Chip::Esp8266).unwrap();
        assert_eq!((info.chip_id, info.version), (None, None));
    }

    #[test]
    fn generation_is_reproducible() {
        assert_eq!(
            generate(&spec(Chip::Esp32c3)),
            generate(&spec(Chip::Esp32c3))
        );
    }

    #[test]
    fn each_defect_trips_exactly_its_own_check() {
        for chip in [Chip::Esp32c3, Chip::Esp8266] {
            for defect in Defect::ALL {
                let Some(image) = generate_broken(&spec(chip), defect) else {
                    assert_eq!(chip, Chip::Esp8266, "{defect:?}");
                    continue;
                };
                let error = inspect(&image, chip).unwrap_err();
                let tripped = match error {
                    ImageError::BadMagic(_) => Defect::BadMagic,
                    ImageError::WrongChip { .. } => Defect::WrongChip,
                    ImageError::Checksum { .. } => Defect::BadChecksum,
                    ImageError::Truncated(_) => Defect::Truncated,
                    ImageError::Hash => Defect::BadHash,
                };
                assert_eq!(tripped, defect, "{chip:?}: {error}");
            }
        }
        let wrong = generate_broken(&spec(Chip::Esp32c3), Defect::WrongChip).unwrap();
        assert!(
            inspect(&wrong, Chip::Esp32).is_ok(),
            "only the chip id differs"
        );
    }

    #[test]
    fn broken_images_are_refused_like_the_rom_would() {
        let image = generate(&spec(Chip::Esp32c3));
        assert_eq!(
            inspect(&image, Chip::Esp32),
            Err(ImageError::WrongChip {
                found: 5,
                expected: 0
            })
        );
        let mut bad_magic = image.clone();
        bad_magic[0] = 0xFF;
        assert_eq!(
            inspect(&bad_magic, Chip::Esp32c3),
            Err(ImageError::BadMagic(0xFF))
        );
        let mut flipped = image.clone();
        flipped[100] ^= 1;
        assert!(matches!(
            inspect(&flipped, Chip::Esp32c3),
            Err(ImageError::Checksum { .. })
        ));
        assert!(matches!(
            inspect(&image[..200], Chip::Esp32c3),
            Err(ImageError::Truncated(_))
        ));
    }
}
