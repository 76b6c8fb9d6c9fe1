//! From reset to a running app: the ROM's lines, the checks the boot chain makes on the
//! app image, and what runs next. The virtual chip checks the app image where the app
//! lives (0x0 on the ESP8266, 0x10000 on the ESP32 family) instead of running a
//! second-stage bootloader that would find it there.

use super::profile::{BootMode, Profile, Reset};
use crate::image;

/// What the chip runs after the boot lines.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Next {
    /// The light-controller firmware, reporting this version.
    App { version: String },
    /// The serial loader, waiting for a host.
    Loader,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Boot {
    pub lines: Vec<String>,
    pub next: Next,
}

/// Boots the app in flash. `reset` is what reset the chip; `None` when the loader jumps
/// to the app without one (FLASH_END's "run user code").
pub fn from_flash(profile: &Profile, flash: &[u8], reset: Option<Reset>) -> Boot {
    let mut lines = reset.map_or_else(Vec::new, |reset| (profile.banner)(reset, BootMode::Flash));
    let app = flash
        .get(profile.chip.app_offset() as usize..)
        .unwrap_or_default();
    let next = match image::inspect(app, profile.chip) {
        Ok(info) => {
            lines.push(format!("entry 0x{:08x}", info.entry));
            // The ESP8266 format has no app descriptor: the firmware reports its own.
            let version = info
                .version
                .unwrap_or_else(|| hil_firmware::VERSION.to_string());
            Next::App { version }
        }
        Err(error) => {
            lines.push(error.to_string());
            Next::Loader
        }
    };
    Boot { lines, next }
}

/// Resets into the serial loader (the boot strap held low).
pub fn into_loader(profile: &Profile, reset: Reset) -> Boot {
    Boot {
        lines: (profile.banner)(reset, BootMode::Download),
        next: Next::Loader,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::chip::profile::profile;
    use crate::chip::rom::FLASH_SIZE;
    use crate::image::{generate, Chip, ImageSpec};

    fn flash_with(chip: Chip, image: &[u8]) -> Vec<u8> {
        let mut flash = vec![0xFF; FLASH_SIZE];
        let at = chip.app_offset() as usize;
        flash[at..at + image.len()].copy_from_slice(image);
        flash
    }

    fn image(chip: Chip) -> Vec<u8> {
        generate(&ImageSpec {
            chip,
            project: "light-controller",
            version: "2.0.1",
            code_len: 512,
        })
    }

    #[test]
    fn a_valid_c3_image_boots_with_its_descriptor_version() {
        let c3 = profile(Chip::Esp32c3).unwrap();
        let boot = from_flash(
            c3,
            &flash_with(Chip::Esp32c3, &image(Chip::Esp32c3)),
            Some(Reset::PowerOn),
        );
        assert_eq!(boot.lines[0], "ESP-ROM:esp32c3-api1-20210207");
        assert!(boot.lines[2].contains("boot:0xc (SPI_FAST_FLASH_BOOT)"));
        assert_eq!(
            boot.next,
            Next::App {
                version: "2.0.1".into()
            }
        );
    }

    #[test]
    fn an_esp8266_app_reports_the_firmware_version() {
        let esp8266 = profile(Chip::Esp8266).unwrap();
        let boot = from_flash(
            esp8266,
            &flash_with(Chip::Esp8266, &image(Chip::Esp8266)),
            None,
        );
        assert!(boot.lines[0].starts_with("entry 0x"), "no reset banner");
        assert_eq!(
            boot.next,
            Next::App {
                version: hil_firmware::VERSION.into()
            }
        );
    }

    #[test]
    fn erased_or_foreign_flash_stays_in_the_loader_with_the_roms_complaint() {
        let c3 = profile(Chip::Esp32c3).unwrap();
        let erased = from_flash(c3, &vec![0xFF; FLASH_SIZE], Some(Reset::Pin));
        assert!(erased
            .lines
            .last()
            .unwrap()
            .starts_with("invalid header: 0xff"));
        assert_eq!(erased.next, Next::Loader);

        let esp32_image = generate(&ImageSpec {
            chip: Chip::Esp32,
            project: "light-controller",
            version: "2.0.1",
            code_len: 512,
        });
        let foreign = from_flash(
            c3,
            &flash_with(Chip::Esp32c3, &esp32_image),
            Some(Reset::Pin),
        );
        assert_eq!(
            foreign.lines.last().unwrap(),
            "image is for chip id 0, this chip is 5"
        );
        assert_eq!(foreign.next, Next::Loader);
    }

    #[test]
    fn the_loader_announces_download_mode() {
        let c3 = profile(Chip::Esp32c3).unwrap();
        let boot = into_loader(c3, Reset::Pin);
        assert_eq!(boot.lines.last().unwrap(), "waiting for download");
        assert_eq!(boot.next, Next::Loader);
    }
}
