//! The ROM serial loader of a virtual chip as a state machine: one request in, the ROM's
//! responses and at most one effect out. No I/O: the transport moves the bytes, keeps
//! the flash file in step and boots when told.
//!
//! Departures from silicon, all on the side of being easier to test:
//! - written bytes replace what was there (real NOR flash can only clear bits, so a
//!   missing erase would corrupt); erasing covers whole 4 KiB sectors;
//! - the virtual ESP8266 also answers SPI_FLASH_MD5, which its real ROM lacks (only the
//!   stub has it), so that skipping unchanged regions and verifying can be tested on it;
//! - the ESP8266 ROM's erase-size bug is not copied: FLASH_BEGIN erases at least the
//!   blocks it announces, whatever erase size the host computed around the bug.

use std::collections::HashMap;
use std::ops::Range;

use md5::{Digest, Md5};

use super::profile::{Profile, FLASH_JEDEC_ID, SPI_CMD_USR};
use super::protocol::{data_checksum, Op, Request, Response, RomError};

/// The size of every virtual chip's flash.
pub const FLASH_SIZE: usize = 4 * 1024 * 1024;
/// The flash's erase unit.
pub const SECTOR: usize = 0x1000;
/// The largest FLASH_DATA block accepted: a stub's 16 KiB (the ROM's own is 1 KiB).
const MAX_BLOCK: usize = 0x4000;
/// SYNC's payload: `07 07 12 20` and 32 × `0x55`.
const SYNC_PAYLOAD: [u8; 36] = {
    let mut payload = [0x55; 36];
    payload[0] = 0x07;
    payload[1] = 0x07;
    payload[2] = 0x12;
    payload[3] = 0x20;
    payload
};
/// The ROM answers one SYNC eight times; hosts read all of them.
const SYNC_REPLIES: usize = 8;
/// A ROM's SYNC replies carry a nonzero value (a stub's carry 0: esptool tells them apart).
const SYNC_VALUE: u32 = 0x2012_0707;
/// SPI flash commands the controller can be asked to run.
const SPI_READ_JEDEC_ID: u32 = 0x9F;

/// What a request changed beyond its responses.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Effect {
    /// These flash bytes changed (erased or written): the flash file must follow.
    FlashChanged(Range<usize>),
    /// FLASH_END: leave the loader for the app, through a reboot when `reboot`.
    Boot { reboot: bool },
}

/// The loader's answer to one request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outcome {
    pub responses: Vec<Response>,
    pub effect: Option<Effect>,
}

impl Outcome {
    fn reply(response: Response) -> Outcome {
        Outcome {
            responses: vec![response],
            effect: None,
        }
    }

    fn with(mut self, effect: Effect) -> Outcome {
        self.effect = Some(effect);
        self
    }
}

/// A flash write between FLASH_BEGIN and its last FLASH_DATA.
#[derive(Debug)]
struct FlashWrite {
    offset: usize,
    block_size: usize,
    blocks: u32,
    next: u32,
}

/// One chip's loader: registers, flash contents, and the write in progress.
#[derive(Debug)]
pub struct Rom {
    profile: &'static Profile,
    registers: HashMap<u32, u32>,
    flash: Vec<u8>,
    write: Option<FlashWrite>,
}

impl Rom {
    pub fn new(profile: &'static Profile, flash: Vec<u8>) -> Rom {
        let mut rom = Rom {
            profile,
            registers: HashMap::new(),
            flash,
            write: None,
        };
        rom.reset();
        rom
    }

    pub fn profile(&self) -> &'static Profile {
        self.profile
    }

    pub fn flash(&self) -> &[u8] {
        &self.flash
    }

    /// The running app writing its own flash (not through the loader).
    pub fn app_write(&mut self, offset: usize, bytes: &[u8]) {
        self.flash[offset..offset + bytes.len()].copy_from_slice(bytes);
    }

    /// What a chip reset does to the loader: registers back to their reset values, any
    /// write in progress abandoned. The flash keeps its contents.
    pub fn reset(&mut self) {
        self.registers = self.profile.registers.iter().copied().collect();
        self.write = None;
    }

    pub fn handle(&mut self, request: &Request) -> Outcome {
        let op = Op::from_code(request.op).filter(|op| !self.profile.lacks.contains(op));
        let Some(op) = op else {
            return Outcome::reply(Response::failed(request.op, RomError::InvalidMessage));
        };
        let result = match op {
            Op::Sync => return self.sync(request),
            Op::ReadReg => self.read_reg(request),
            Op::WriteReg => self.write_reg(request),
            Op::GetSecurityInfo => self.security_info(request),
            Op::SpiAttach => expect_len(request, 8).map(|()| Outcome::reply(ok(op))),
            Op::SpiSetParams => expect_len(request, 24).map(|()| Outcome::reply(ok(op))),
            Op::ChangeBaudrate => expect_len(request, 8).map(|()| Outcome::reply(ok(op))),
            Op::FlashBegin => self.flash_begin(request),
            Op::FlashData => self.flash_data(request),
            Op::FlashEnd => Ok(self.flash_end(request)),
            Op::SpiFlashMd5 => self.flash_md5(request),
            // Loading code into RAM needs a CPU to run it; the virtual chip has none.
            Op::MemBegin | Op::MemData | Op::MemEnd | Op::ReadFlashSlow => {
                Err(RomError::InvalidMessage)
            }
        };
        result.unwrap_or_else(|error| Outcome::reply(Response::failed(request.op, error)))
    }

    fn sync(&self, request: &Request) -> Outcome {
        if request.data != SYNC_PAYLOAD {
            return Outcome::reply(Response::failed(request.op, RomError::InvalidMessage));
        }
        Outcome {
            responses: vec![Response::ok(Op::Sync as u8, SYNC_VALUE, Vec::new()); SYNC_REPLIES],
            effect: None,
        }
    }

    fn read_reg(&self, request: &Request) -> Result<Outcome, RomError> {
        expect_len(request, 4)?;
        let address = request.word(0).ok_or(RomError::InvalidMessage)?;
        let value = self.registers.get(&address).copied().unwrap_or(0);
        Ok(Outcome::reply(Response::ok(request.op, value, Vec::new())))
    }

    /// Groups of `address, value, mask, delay_us`, applied in order.
    fn write_reg(&mut self, request: &Request) -> Result<Outcome, RomError> {
        if request.data.is_empty() || !request.data.len().is_multiple_of(16) {
            return Err(RomError::InvalidMessage);
        }
        for group in 0..request.data.len() / 16 {
            let word = |i| request.word(group * 4 + i).ok_or(RomError::InvalidMessage);
            let (address, value, mask) = (word(0)?, word(1)?, word(2)?);
            let old = self.registers.get(&address).copied().unwrap_or(0);
            self.registers
                .insert(address, (old & !mask) | (value & mask));
            if address == self.profile.spi.cmd && value & mask & SPI_CMD_USR != 0 {
                self.run_spi_command();
            }
        }
        Ok(Outcome::reply(ok(Op::WriteReg)))
    }

    /// The SPI controller runs the flash command in SPI_USR2 and is done at once.
    fn run_spi_command(&mut self) {
        let spi = &self.profile.spi;
        let command = self.registers.get(&spi.usr2).copied().unwrap_or(0) & 0xFF;
        let result = match command {
            SPI_READ_JEDEC_ID => FLASH_JEDEC_ID,
            // Status registers (all clear: idle, unprotected) and anything else.
            _ => 0,
        };
        self.registers.insert(spi.w0, result);
        if let Some(cmd) = self.registers.get_mut(&spi.cmd) {
            *cmd &= !SPI_CMD_USR;
        }
    }

    /// Flags, flash_crypt_cnt, key purposes, chip id, API version: nothing secured.
    fn security_info(&self, request: &Request) -> Result<Outcome, RomError> {
        let chip_id = self
            .profile
            .security_chip_id
            .ok_or(RomError::InvalidMessage)?;
        let mut data = vec![0u8; 12];
        data.extend_from_slice(&chip_id.to_le_bytes());
        data.extend_from_slice(&0u32.to_le_bytes());
        Ok(Outcome::reply(Response::ok(request.op, 0, data)))
    }

    /// `erase_size, blocks, block_size, offset` and, from ESP32-family hosts, `encrypted`.
    fn flash_begin(&mut self, request: &Request) -> Result<Outcome, RomError> {
        if request.data.len() != 16 && request.data.len() != 20 {
            return Err(RomError::InvalidMessage);
        }
        let word = |i| request.word(i).map_or(0, |w| w as usize);
        let (erase_size, blocks, block_size, offset) = (word(0), word(1), word(2), word(3));
        if word(4) != 0 {
            // Encrypted writes need the chip's flash-encryption key; none is burnt.
            return Err(RomError::FailedToAct);
        }
        if block_size > MAX_BLOCK {
            return Err(RomError::InvalidMessage);
        }
        let written = blocks
            .checked_mul(block_size)
            .ok_or(RomError::InvalidMessage)?;
        let end = offset
            .checked_add(erase_size.max(written))
            .filter(|&end| end <= self.flash.len())
            .ok_or(RomError::FailedToAct)?;
        let erased = offset / SECTOR * SECTOR..end.div_ceil(SECTOR) * SECTOR;
        let erased = erased.start..erased.end.min(self.flash.len());
        self.flash[erased.clone()].fill(0xFF);
        self.write = Some(FlashWrite {
            offset,
            block_size,
            blocks: blocks as u32,
            next: 0,
        });
        let outcome = Outcome::reply(ok(Op::FlashBegin));
        Ok(if erased.is_empty() {
            outcome
        } else {
            outcome.with(Effect::FlashChanged(erased))
        })
    }

    /// `size, seq, 0, 0, payload`; the header's checksum covers the payload.
    fn flash_data(&mut self, request: &Request) -> Result<Outcome, RomError> {
        let payload = request.data.get(16..).ok_or(RomError::InvalidMessage)?;
        let size = request.word(0).ok_or(RomError::InvalidMessage)? as usize;
        let seq = request.word(1).ok_or(RomError::InvalidMessage)?;
        if size != payload.len() {
            return Err(RomError::InvalidMessage);
        }
        if request.checksum != data_checksum(payload) {
            return Err(RomError::InvalidCrc);
        }
        let write = self.write.as_mut().ok_or(RomError::FailedToAct)?;
        if seq != write.next || seq >= write.blocks || payload.len() > write.block_size {
            return Err(RomError::FailedToAct);
        }
        let start = write.offset + seq as usize * write.block_size;
        let range = start..start + payload.len();
        let target = self
            .flash
            .get_mut(range.clone())
            .ok_or(RomError::FlashWrite)?;
        target.copy_from_slice(payload);
        write.next += 1;
        Ok(Outcome::reply(ok(Op::FlashData)).with(Effect::FlashChanged(range)))
    }

    /// One word: 0 reboots, 1 runs the app without a reset. Either way the loader is done.
    fn flash_end(&mut self, request: &Request) -> Outcome {
        self.write = None;
        let reboot = request.data.first().is_none_or(|&flag| flag == 0);
        Outcome::reply(ok(Op::FlashEnd)).with(Effect::Boot { reboot })
    }

    /// `address, size, 0, 0`: the MD5 of that flash region, as 32 lowercase hex digits.
    fn flash_md5(&self, request: &Request) -> Result<Outcome, RomError> {
        expect_len(request, 16)?;
        let address = request.word(0).ok_or(RomError::InvalidMessage)? as usize;
        let size = request.word(1).ok_or(RomError::InvalidMessage)? as usize;
        let region = address
            .checked_add(size)
            .and_then(|end| self.flash.get(address..end))
            .ok_or(RomError::FlashRead)?;
        let hex: String = Md5::digest(region)
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        Ok(Outcome::reply(Response::ok(
            request.op,
            0,
            hex.into_bytes(),
        )))
    }
}

fn ok(op: Op) -> Response {
    Response::ok(op as u8, 0, Vec::new())
}

fn expect_len(request: &Request, len: usize) -> Result<(), RomError> {
    if request.data.len() == len {
        Ok(())
    } else {
        Err(RomError::InvalidMessage)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::chip::profile::{profile, CHIP_MAGIC_REG};
    use crate::image::Chip;

    fn rom(chip: Chip) -> Rom {
        Rom::new(profile(chip).unwrap(), vec![0xFF; FLASH_SIZE])
    }

    fn request(op: Op, words: &[u32]) -> Request {
        Request {
            op: op as u8,
            checksum: 0,
            data: words.iter().flat_map(|w| w.to_le_bytes()).collect(),
        }
    }

    fn data_block(seq: u32, payload: &[u8]) -> Request {
        let mut data = [payload.len() as u32, seq, 0, 0]
            .iter()
            .flat_map(|w| w.to_le_bytes())
            .collect::<Vec<_>>();
        data.extend_from_slice(payload);
        Request {
            op: Op::FlashData as u8,
            checksum: data_checksum(payload),
            data,
        }
    }

    #[test]
    fn sync_is_answered_eight_times_with_a_nonzero_value() {
        let mut rom = rom(Chip::Esp32c3);
        let sync = Request {
            op: Op::Sync as u8,
            checksum: 0,
            data: SYNC_PAYLOAD.to_vec(),
        };
        let outcome = rom.handle(&sync);
        assert_eq!(outcome.responses.len(), 8);
        assert!(outcome
            .responses
            .iter()
            .all(|r| r.value != 0 && r.status.is_ok()));
        let garbled = Request {
            data: vec![0x55; 36],
            ..sync
        };
        assert_eq!(
            rom.handle(&garbled).responses[0].status,
            Err(RomError::InvalidMessage)
        );
    }

    #[test]
    fn the_magic_register_names_the_chip() {
        for (chip, magic) in [(Chip::Esp8266, 0xFFF0_C101), (Chip::Esp32c3, 0x1B31_506F)] {
            let outcome = rom(chip).handle(&request(Op::ReadReg, &[CHIP_MAGIC_REG]));
            assert_eq!(outcome.responses[0].value, magic, "{chip:?}");
        }
    }

    #[test]
    fn security_info_exists_on_the_c3_only() {
        let c3 = rom(Chip::Esp32c3).handle(&request(Op::GetSecurityInfo, &[]));
        assert_eq!(c3.responses[0].data.len(), 20);
        assert_eq!(&c3.responses[0].data[12..16], &5u32.to_le_bytes());
        let esp8266 = rom(Chip::Esp8266).handle(&request(Op::GetSecurityInfo, &[]));
        assert_eq!(esp8266.responses[0].status, Err(RomError::InvalidMessage));
        assert_eq!(esp8266.responses[0].op, Op::GetSecurityInfo as u8);
    }

    #[test]
    fn the_spi_controller_reads_the_jedec_id() {
        for chip in [Chip::Esp8266, Chip::Esp32c3] {
            let mut rom = rom(chip);
            let spi = &rom.profile().spi;
            let (usr2, cmd, w0) = (spi.usr2, spi.cmd, spi.w0);
            rom.handle(&request(
                Op::WriteReg,
                &[usr2, (7 << 28) | 0x9F, u32::MAX, 0],
            ));
            rom.handle(&request(Op::WriteReg, &[w0, 0, u32::MAX, 0]));
            rom.handle(&request(Op::WriteReg, &[cmd, SPI_CMD_USR, u32::MAX, 0]));
            let busy = rom.handle(&request(Op::ReadReg, &[cmd])).responses[0].value;
            assert_eq!(busy & SPI_CMD_USR, 0, "{chip:?}: the command finished");
            let id = rom.handle(&request(Op::ReadReg, &[w0])).responses[0].value;
            assert_eq!(id >> 16 & 0xFF, 0x16, "{chip:?}: 4 MB flash");
        }
    }

    #[test]
    fn write_reg_applies_the_mask() {
        let mut rom = rom(Chip::Esp32c3);
        rom.handle(&request(Op::WriteReg, &[0x6000_0000, 0xFFFF, u32::MAX, 0]));
        rom.handle(&request(Op::WriteReg, &[0x6000_0000, 0x0000, 0x00F0, 0]));
        let value = rom.handle(&request(Op::ReadReg, &[0x6000_0000])).responses[0].value;
        assert_eq!(value, 0xFF0F);
    }

    #[test]
    fn a_flash_write_lands_and_reports_what_changed() {
        let mut rom = rom(Chip::Esp32c3);
        let begin = rom.handle(&request(Op::FlashBegin, &[0x800, 2, 0x400, 0x1_0000, 0]));
        assert_eq!(begin.effect, Some(Effect::FlashChanged(0x1_0000..0x1_1000)));
        let first = rom.handle(&data_block(0, &[0xAB; 0x400]));
        assert_eq!(first.responses[0].status, Ok(()));
        assert_eq!(first.effect, Some(Effect::FlashChanged(0x1_0000..0x1_0400)));
        rom.handle(&data_block(1, &[0xCD; 0x400]));
        assert_eq!(rom.flash()[0x1_0000], 0xAB);
        assert_eq!(rom.flash()[0x1_07FF], 0xCD);
        assert_eq!(rom.flash()[0x1_0800], 0xFF);
        let end = rom.handle(&request(Op::FlashEnd, &[0]));
        assert_eq!(end.effect, Some(Effect::Boot { reboot: true }));
    }

    #[test]
    fn flash_data_is_checked_before_it_is_written() {
        let mut rom = rom(Chip::Esp8266);
        let orphan = rom.handle(&data_block(0, &[1; 4]));
        assert_eq!(orphan.responses[0].status, Err(RomError::FailedToAct));
        rom.handle(&request(Op::FlashBegin, &[0x400, 1, 0x400, 0]));
        let mut corrupt = data_block(0, &[1; 4]);
        corrupt.checksum ^= 1;
        assert_eq!(
            rom.handle(&corrupt).responses[0].status,
            Err(RomError::InvalidCrc)
        );
        let skipped = rom.handle(&data_block(1, &[1; 4]));
        assert_eq!(skipped.responses[0].status, Err(RomError::FailedToAct));
        assert_eq!(rom.flash()[0], 0xFF, "nothing was written");
    }

    #[test]
    fn writes_beyond_the_flash_are_refused() {
        let mut rom = rom(Chip::Esp32c3);
        let outcome = rom.handle(&request(
            Op::FlashBegin,
            &[0x1000, 4, 0x400, FLASH_SIZE as u32 - 0x800, 0],
        ));
        assert_eq!(outcome.responses[0].status, Err(RomError::FailedToAct));
        assert_eq!(outcome.effect, None);
    }

    #[test]
    fn md5_is_32_lowercase_hex_digits() {
        let mut rom = rom(Chip::Esp32c3);
        let outcome = rom.handle(&request(Op::SpiFlashMd5, &[0, 0x1000, 0, 0]));
        let expected: String = Md5::digest([0xFF; 0x1000])
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        assert_eq!(outcome.responses[0].data, expected.into_bytes());
        let beyond = rom.handle(&request(Op::SpiFlashMd5, &[FLASH_SIZE as u32, 1, 0, 0]));
        assert_eq!(beyond.responses[0].status, Err(RomError::FlashRead));
    }

    #[test]
    fn unknown_and_missing_commands_get_an_error_status() {
        let mut esp8266 = rom(Chip::Esp8266);
        for op in [0x42, Op::SpiAttach as u8, Op::ChangeBaudrate as u8] {
            let outcome = esp8266.handle(&Request {
                op,
                checksum: 0,
                data: vec![0; 8],
            });
            assert_eq!(outcome.responses[0].op, op);
            assert_eq!(outcome.responses[0].status, Err(RomError::InvalidMessage));
        }
        let attach = rom(Chip::Esp32c3).handle(&request(Op::SpiAttach, &[0, 0]));
        assert_eq!(attach.responses[0].status, Ok(()));
    }

    #[test]
    fn reset_forgets_registers_and_the_write_but_not_the_flash() {
        let mut rom = rom(Chip::Esp32c3);
        rom.handle(&request(Op::WriteReg, &[CHIP_MAGIC_REG, 0, u32::MAX, 0]));
        rom.handle(&request(Op::FlashBegin, &[0x400, 1, 0x400, 0, 0]));
        rom.handle(&data_block(0, &[7; 0x400]));
        rom.reset();
        let magic = rom
            .handle(&request(Op::ReadReg, &[CHIP_MAGIC_REG]))
            .responses[0]
            .value;
        assert_eq!(magic, 0x1B31_506F);
        assert_eq!(rom.flash()[0], 7);
        let after = rom.handle(&data_block(1, &[7; 4]));
        assert_eq!(after.responses[0].status, Err(RomError::FailedToAct));
    }
}
