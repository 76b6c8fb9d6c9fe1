//! The ESP32 family, written by espflash's flasher in ROM mode (the virtual chip runs
//! no stub, and a real board's ROM is enough for hil's image sizes).

use std::borrow::Cow;

use espflash::connection::Connection;
use espflash::flasher::Flasher;
use espflash::image_format::Segment;

use super::plan::{self, Region};
use super::progress::Progress;
use super::{describe, FlashError, Job};
use crate::image::Chip;

/// espflash's name for an ESP32-family chip.
pub fn espflash_chip(chip: Chip) -> Option<espflash::target::Chip> {
    match chip {
        Chip::Esp32 => Some(espflash::target::Chip::Esp32),
        Chip::Esp32c3 => Some(espflash::target::Chip::Esp32c3),
        Chip::Esp8266 => None,
    }
}

/// Writes `regions`, skipping unchanged ones and verifying as `job` says. Hands the
/// connection back for the reset and the console.
pub fn write(
    connection: Connection,
    chip: Chip,
    regions: &[Region],
    job: &Job,
    progress: &mut Progress,
) -> Result<Connection, FlashError> {
    let target = espflash_chip(chip)
        .ok_or_else(|| FlashError::input(format!("{} is not an ESP32-family chip", chip.name())))?;
    let baud = (job.baud != super::port::ROM_BAUD).then_some(job.baud);
    let mut flasher = Flasher::connect(
        connection,
        false,
        job.verify,
        job.skip_unchanged,
        Some(target),
        baud,
    )
    .map_err(|e| FlashError::infrastructure(format!("setting up the flash: {}", describe(&e))))?;
    let flash_size = flasher
        .device_info()
        .map_err(|e| {
            FlashError::infrastructure(format!("reading the flash size: {}", describe(&e)))
        })?
        .flash_size
        .size();
    plan::check_fits(&job.image, regions, flash_size)?;
    let segments: Vec<Segment<'_>> = regions
        .iter()
        .map(|region| Segment {
            addr: region.addr,
            data: Cow::Owned(padded(&region.data)),
        })
        .collect();
    progress.plan(regions, job.verify);
    flasher
        .write_bins_to_flash(&segments, progress)
        .map_err(|e| super::write_failure(job, progress, &e))?;
    Ok(flasher.into_connection())
}

/// The ROM writes whole words: a tail is padded with erased bytes.
fn padded(data: &[u8]) -> Vec<u8> {
    let mut data = data.to_vec();
    data.resize(data.len().next_multiple_of(4), 0xFF);
    data
}
