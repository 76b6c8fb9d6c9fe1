//! The ESP8266, written through espflash's low-level connection (espflash dropped the
//! chip, the protocol did not change): FLASH_BEGIN / FLASH_DATA, SPI_FLASH_MD5 where the
//! loader has it, and the flash size read from the SPI flash's JEDEC id.
//!
//! The real ESP8266 ROM lacks SPI_FLASH_MD5 (only the flasher stub has it): against it,
//! unchanged regions cannot be skipped nor writes verified, and the run says so.

use espflash::command::{Command, CommandResponseValue, CommandType};
use espflash::connection::Connection;
use espflash::target::ProgressCallbacks;
use md5::{Digest, Md5};

use super::plan::{self, Region};
use super::progress::{Progress, ROM_BLOCK};
use super::{describe, FlashError, Job};
use crate::chip::protocol::{Op, Response, StatusLen};

/// The ESP8266's SPI flash controller. Kept apart from the virtual chip's profile on
/// purpose: the flasher must follow the hardware, not hil's model of it.
const SPI_CMD: u32 = 0x6000_0200;
const SPI_USR: u32 = 0x6000_021C;
const SPI_USR1: u32 = 0x6000_0220;
const SPI_USR2: u32 = 0x6000_0224;
const SPI_W0: u32 = 0x6000_0240;
const SPI_CMD_USR: u32 = 1 << 18;
const SPI_USR_COMMAND: u32 = 1 << 31;
const SPI_USR_MISO: u32 = 1 << 28;
const READ_JEDEC_ID: u32 = 0x9F;
/// The controller finishes a command within a few register reads.
const SPI_POLLS: usize = 10;
const SECTOR: usize = 0x1000;

pub fn write(
    connection: &mut Connection,
    regions: &[Region],
    job: &Job,
    progress: &mut Progress,
) -> Result<(), FlashError> {
    let fail = |what: &str, e: espflash::Error| {
        FlashError::infrastructure(format!("{what}: {}", describe(&e)))
    };
    if job.baud != super::port::ROM_BAUD {
        progress
            .note("note: the ESP8266 ROM loader cannot change its baud rate; writing at 115200");
    }
    // FLASH_BEGIN of nothing attaches the SPI flash (the ROM has no SPI_ATTACH).
    begin(connection, 0, 0, 0).map_err(|e| fail("attaching the flash", e))?;
    match flash_size(connection).map_err(|e| fail("reading the flash id", e))? {
        Some(size) => plan::check_fits(&job.image, regions, size)?,
        None => progress.note("note: the flash did not say its size; writing without a size check"),
    }
    progress.plan(regions, job.verify);
    let mut md5_works = true;
    for region in regions {
        let len = region.data.len() as u32;
        let image_md5: [u8; 16] = Md5::digest(&region.data).into();
        if job.skip_unchanged && md5_works {
            match flash_md5(connection, region.addr, len)
                .map_err(|e| fail("comparing the flash", e))?
            {
                Some(md5) if md5 == image_md5 => {
                    progress.finish(true);
                    continue;
                }
                Some(_) => {}
                None => {
                    md5_works = false;
                    progress.note(
                        "note: this loader has no SPI_FLASH_MD5 (the ESP8266 ROM): writing \
                         everything, without verifying",
                    );
                }
            }
        }
        write_region(connection, region, progress)
            .map_err(|e| super::write_failure(job, progress, &e))?;
        if job.verify && md5_works {
            progress.verifying();
            let md5 = flash_md5(connection, region.addr, len).map_err(|e| fail("verifying", e))?;
            if md5.is_some_and(|md5| md5 != image_md5) {
                return Err(FlashError::infrastructure(format!(
                    "verify failed: the flash at 0x{:08x}..0x{:08x} differs from {} after writing \
                     (MD5 mismatch); check the power supply and flash again",
                    region.addr,
                    region.end(),
                    job.image.display()
                )));
            }
        }
        progress.finish(false);
    }
    Ok(())
}

fn write_region(
    connection: &mut Connection,
    region: &Region,
    progress: &mut Progress,
) -> Result<(), espflash::Error> {
    let blocks = region.data.len().div_ceil(ROM_BLOCK);
    progress.init(region.addr, blocks);
    let erase = erase_size(region.addr as usize, region.data.len()) as u32;
    begin(connection, erase, blocks as u32, region.addr)?;
    for (sequence, block) in region.data.chunks(ROM_BLOCK).enumerate() {
        connection.with_timeout(
            CommandType::FlashData.timeout_for_size(ROM_BLOCK as u32),
            |connection| {
                connection.command(Command::FlashData {
                    data: block,
                    pad_to: ROM_BLOCK,
                    pad_byte: 0xFF,
                    sequence: sequence as u32,
                })
            },
        )?;
        progress.update(sequence + 1);
    }
    Ok(())
}

fn begin(
    connection: &mut Connection,
    erase: u32,
    blocks: u32,
    offset: u32,
) -> Result<(), espflash::Error> {
    connection.with_timeout(
        CommandType::FlashBegin.timeout_for_size(erase),
        |connection| {
            connection.command(Command::FlashBegin {
                size: erase,
                blocks,
                block_size: ROM_BLOCK as u32,
                offset,
                supports_encryption: false,
            })
        },
    )?;
    Ok(())
}

/// The erase size to ask the ESP8266 ROM for so that it erases `len` bytes at `offset`:
/// its erase routine erases up to twice the sectors it is told in the first 64 KiB
/// block (esptool's workaround, from the ROM's disassembly).
pub fn erase_size(offset: usize, len: usize) -> usize {
    const SECTORS_PER_BLOCK: usize = 16;
    let sectors = len.div_ceil(SECTOR);
    let first_sector = offset / SECTOR;
    let head = (SECTORS_PER_BLOCK - first_sector % SECTORS_PER_BLOCK).min(sectors);
    if sectors < 2 * head {
        sectors.div_ceil(2) * SECTOR
    } else {
        (sectors - head) * SECTOR
    }
}

/// The MD5 of a flash region, or `None` when the loader does not know the command. The
/// ESP8266 answers with 2 status bytes, which espflash's reply parser does not expect of
/// an MD5 reply, so the reply is read as a raw frame and decoded by hil's codec.
fn flash_md5(
    connection: &mut Connection,
    addr: u32,
    len: u32,
) -> Result<Option<[u8; 16]>, espflash::Error> {
    connection.with_timeout(CommandType::FlashMd5.timeout_for_size(len), |connection| {
        connection.write_command(Command::FlashMd5 {
            offset: addr,
            size: len,
        })?;
        loop {
            let Some(frame) = connection.read_flash_response()? else {
                continue;
            };
            let CommandResponseValue::Vector(raw) = frame.value else {
                continue;
            };
            let Ok(response) = Response::parse(&raw, StatusLen::Two) else {
                continue;
            };
            if response.op != Op::SpiFlashMd5 as u8 {
                continue;
            }
            if response.status.is_err() {
                return Ok(None);
            }
            return Ok(parse_hex_md5(&response.data));
        }
    })
}

fn parse_hex_md5(hex: &[u8]) -> Option<[u8; 16]> {
    let text = std::str::from_utf8(hex).ok()?;
    if text.len() != 32 {
        return None;
    }
    let mut md5 = [0u8; 16];
    for (i, byte) in md5.iter_mut().enumerate() {
        *byte = u8::from_str_radix(&text[i * 2..i * 2 + 2], 16).ok()?;
    }
    Some(md5)
}

/// The flash size from the JEDEC id (its third byte is log2 of the size), read by
/// running the SPI controller's user command as esptool does.
fn flash_size(connection: &mut Connection) -> Result<Option<u32>, espflash::Error> {
    let saved_usr = connection.read_reg(SPI_USR)?;
    let saved_usr2 = connection.read_reg(SPI_USR2)?;
    connection.write_reg(SPI_USR, SPI_USR_COMMAND | SPI_USR_MISO, None)?;
    connection.write_reg(SPI_USR1, (24 - 1) << 8, None)?;
    connection.write_reg(SPI_USR2, (7 << 28) | READ_JEDEC_ID, None)?;
    connection.write_reg(SPI_W0, 0, None)?;
    connection.write_reg(SPI_CMD, SPI_CMD_USR, None)?;
    let mut done = false;
    for _ in 0..SPI_POLLS {
        if connection.read_reg(SPI_CMD)? & SPI_CMD_USR == 0 {
            done = true;
            break;
        }
    }
    let id = connection.read_reg(SPI_W0)?;
    connection.write_reg(SPI_USR, saved_usr, None)?;
    connection.write_reg(SPI_USR2, saved_usr2, None)?;
    let log2 = (id >> 16) & 0xFF;
    // 256 KiB .. 16 MiB: anything else is no answer or an unknown part.
    Ok((done && (0x12..=0x18).contains(&log2)).then(|| 1 << log2))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_erase_size_compensates_the_rom_bug_like_esptool() {
        // Values from esptool's ESP8266ROM.get_erase_size.
        assert_eq!(erase_size(0, 0), 0);
        assert_eq!(erase_size(0, 4128), 0x1000);
        assert_eq!(erase_size(0, 0x10_0000), 0xF_0000);
        assert_eq!(erase_size(0x1_0000, 0x2000), 0x1000);
        assert_eq!(erase_size(0xF000, 0x3000), 0x2000);
    }

    #[test]
    fn md5_hex_parses_or_is_refused() {
        let mut expected = [0u8; 16];
        expected[0] = 0xd4;
        expected[15] = 0x7e;
        assert_eq!(
            parse_hex_md5(b"d400000000000000000000000000007e"),
            Some(expected)
        );
        assert_eq!(parse_hex_md5(b"d4"), None);
        assert_eq!(parse_hex_md5(b"zz00000000000000000000000000007e"), None);
    }
}
