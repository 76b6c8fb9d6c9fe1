//! The firmware's stored settings in the chip's own flash, where a real board's EEPROM
//! emulation keeps them: one reserved sector, outside the app, so that the settings
//! survive resets, power loss and reflashing the app (but not writing over the sector).
//!
//! The sector holds the firmware's record as it stored it, the rest erased, which is
//! what the Arduino core's `EEPROM.commit()` leaves (erase the sector, then write).

use super::profile::Profile;
use super::rom::SECTOR;

/// What the settings sector holds, if anything: an erased sector holds nothing.
pub fn stored(profile: &Profile, flash: &[u8]) -> Option<Vec<u8>> {
    let sector = flash.get(profile.settings_sector..profile.settings_sector + SECTOR)?;
    (!sector.iter().all(|&byte| byte == 0xFF)).then(|| sector.to_vec())
}

/// The sector's contents once `record` is stored.
pub fn sector_with(record: &[u8]) -> Result<Vec<u8>, String> {
    if record.len() > SECTOR {
        return Err(format!(
            "the firmware stored {} bytes of settings, more than its flash sector ({SECTOR} bytes) holds",
            record.len()
        ));
    }
    let mut sector = vec![0xFF; SECTOR];
    sector[..record.len()].copy_from_slice(record);
    Ok(sector)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::chip::profile::profile;
    use crate::chip::rom::FLASH_SIZE;
    use crate::image::Chip;

    #[test]
    fn an_erased_sector_holds_nothing_and_a_stored_record_reads_back_first() {
        let c3 = profile(Chip::Esp32c3).unwrap();
        let mut flash = vec![0xFF; FLASH_SIZE];
        assert_eq!(stored(c3, &flash), None);
        let sector = sector_with(b"record").unwrap();
        let at = c3.settings_sector;
        flash[at..at + SECTOR].copy_from_slice(&sector);
        let read = stored(c3, &flash).unwrap();
        assert!(read.starts_with(b"record"));
        assert!(
            read[6..].iter().all(|&byte| byte == 0xFF),
            "the rest erased"
        );
    }

    #[test]
    fn the_sectors_keep_clear_of_the_boot_chain_and_of_a_1_mib_app() {
        for chip in [Chip::Esp8266, Chip::Esp32c3] {
            let at = profile(chip).unwrap().settings_sector;
            let app = chip.app_offset() as usize..chip.app_offset() as usize + 0x10_0000;
            assert_eq!(at % SECTOR, 0, "{chip:?}");
            assert!(at + SECTOR <= FLASH_SIZE, "{chip:?}");
            assert!(at + SECTOR <= app.start || at >= app.end, "{chip:?}");
            // The ESP32 family's bootloader and partition table end at 0x9000.
            assert!(
                chip.bootloader_offset().is_none() || at >= 0x9000,
                "{chip:?}"
            );
        }
    }

    #[test]
    fn a_record_larger_than_the_sector_is_refused() {
        let error = sector_with(&vec![0; SECTOR + 1]).unwrap_err();
        assert!(error.contains("more than its flash sector"), "{error}");
    }
}
