//! The ESP serial bootloader's packets, without transport: what the host asks and what
//! the ROM answers.
//!
//! Request: `00 | op | len u16 | checksum u32 | data`. Response: `01 | op | size u16 |
//! value u32 | data | status`, where `size` counts the data and the status bytes. The
//! status is `status, error` plus two reserved bytes from ESP32-family ROMs, and the two
//! bytes alone from the ESP8266 ROM (and from flasher stubs).

use std::fmt;

/// The commands a ROM loader knows (the `*_DEFL` and erase ones are stub-only).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum Op {
    FlashBegin = 0x02,
    FlashData = 0x03,
    FlashEnd = 0x04,
    MemBegin = 0x05,
    MemEnd = 0x06,
    MemData = 0x07,
    Sync = 0x08,
    WriteReg = 0x09,
    ReadReg = 0x0A,
    SpiSetParams = 0x0B,
    SpiAttach = 0x0D,
    ReadFlashSlow = 0x0E,
    ChangeBaudrate = 0x0F,
    SpiFlashMd5 = 0x13,
    GetSecurityInfo = 0x14,
}

impl Op {
    pub fn from_code(code: u8) -> Option<Op> {
        use Op::*;
        [
            FlashBegin,
            FlashData,
            FlashEnd,
            MemBegin,
            MemEnd,
            MemData,
            Sync,
            WriteReg,
            ReadReg,
            SpiSetParams,
            SpiAttach,
            ReadFlashSlow,
            ChangeBaudrate,
            SpiFlashMd5,
            GetSecurityInfo,
        ]
        .into_iter()
        .find(|op| *op as u8 == code)
    }
}

/// The error byte of a failed response, with the ROM's numbering.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum RomError {
    /// Unknown command, or parameters or length field invalid.
    InvalidMessage = 0x05,
    FailedToAct = 0x06,
    InvalidCrc = 0x07,
    FlashWrite = 0x08,
    FlashRead = 0x09,
    ReadLength = 0x0A,
}

impl RomError {
    pub fn from_code(code: u8) -> Option<RomError> {
        use RomError::*;
        [
            InvalidMessage,
            FailedToAct,
            InvalidCrc,
            FlashWrite,
            FlashRead,
            ReadLength,
        ]
        .into_iter()
        .find(|e| *e as u8 == code)
    }
}

impl fmt::Display for RomError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            RomError::InvalidMessage => "received message is invalid",
            RomError::FailedToAct => "failed to act on received message",
            RomError::InvalidCrc => "invalid CRC in message",
            RomError::FlashWrite => "flash write error",
            RomError::FlashRead => "flash read error",
            RomError::ReadLength => "flash read length error",
        })
    }
}

/// How many status bytes end a response: the loader tells which one answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StatusLen {
    /// ESP8266 ROM and flasher stubs.
    Two,
    /// ESP32-family ROMs.
    Four,
}

impl StatusLen {
    pub fn bytes(self) -> usize {
        match self {
            StatusLen::Two => 2,
            StatusLen::Four => 4,
        }
    }
}

/// Why a frame is not a packet.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PacketError {
    #[error("frame of {0} bytes is shorter than the 8-byte header")]
    Short(usize),
    #[error("direction byte 0x{0:02x} (a request starts with 0x00, a response with 0x01)")]
    Direction(u8),
    #[error("length field says {said} data bytes, the frame has {has}")]
    Length { said: usize, has: usize },
    #[error("response has {has} bytes after the header, fewer than its {needed} status bytes")]
    NoStatus { needed: usize, has: usize },
}

/// A command from the host.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request {
    pub op: u8,
    /// Only FLASH_DATA and MEM_DATA fill it: `0xEF` xor every payload byte.
    pub checksum: u32,
    pub data: Vec<u8>,
}

impl Request {
    pub fn parse(frame: &[u8]) -> Result<Request, PacketError> {
        let (direction, op, body, value) = split(frame)?;
        if direction != 0x00 {
            return Err(PacketError::Direction(direction));
        }
        Ok(Request {
            op,
            checksum: value,
            data: body.to_vec(),
        })
    }

    pub fn encode(&self) -> Vec<u8> {
        let mut out = vec![0x00, self.op];
        out.extend_from_slice(&(self.data.len() as u16).to_le_bytes());
        out.extend_from_slice(&self.checksum.to_le_bytes());
        out.extend_from_slice(&self.data);
        out
    }

    /// The `index`-th little-endian word of the data, if the data is that long.
    pub fn word(&self, index: usize) -> Option<u32> {
        let bytes = self.data.get(index * 4..index * 4 + 4)?;
        Some(u32::from_le_bytes([bytes[0], bytes[1], bytes[2], bytes[3]]))
    }
}

/// An answer from the loader.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Response {
    pub op: u8,
    pub value: u32,
    /// Command output before the status bytes (READ_REG has none; MD5 has 32 hex digits).
    pub data: Vec<u8>,
    pub status: Result<(), RomError>,
}

impl Response {
    pub fn ok(op: u8, value: u32, data: Vec<u8>) -> Response {
        Response {
            op,
            value,
            data,
            status: Ok(()),
        }
    }

    pub fn failed(op: u8, error: RomError) -> Response {
        Response {
            op,
            value: 0,
            data: Vec::new(),
            status: Err(error),
        }
    }

    pub fn encode(&self, status_len: StatusLen) -> Vec<u8> {
        let mut status = vec![0u8; status_len.bytes()];
        if let Err(error) = self.status {
            status[0] = 1;
            status[1] = error as u8;
        }
        let size = (self.data.len() + status.len()) as u16;
        let mut out = vec![0x01, self.op];
        out.extend_from_slice(&size.to_le_bytes());
        out.extend_from_slice(&self.value.to_le_bytes());
        out.extend_from_slice(&self.data);
        out.extend_from_slice(&status);
        out
    }

    pub fn parse(frame: &[u8], status_len: StatusLen) -> Result<Response, PacketError> {
        let (direction, op, body, value) = split(frame)?;
        if direction != 0x01 {
            return Err(PacketError::Direction(direction));
        }
        let data_len = body
            .len()
            .checked_sub(status_len.bytes())
            .ok_or(PacketError::NoStatus {
                needed: status_len.bytes(),
                has: body.len(),
            })?;
        let (data, status) = body.split_at(data_len);
        let status = match status[0] {
            0 => Ok(()),
            _ => Err(RomError::from_code(status[1]).unwrap_or(RomError::FailedToAct)),
        };
        Ok(Response {
            op,
            value,
            data: data.to_vec(),
            status,
        })
    }
}

/// The checksum FLASH_DATA and MEM_DATA carry in their header.
pub fn data_checksum(payload: &[u8]) -> u32 {
    u32::from(payload.iter().fold(0xEF, |sum, b| sum ^ b))
}

/// Direction, op, body (after the header) and the header's 32-bit word.
fn split(frame: &[u8]) -> Result<(u8, u8, &[u8], u32), PacketError> {
    if frame.len() < 8 {
        return Err(PacketError::Short(frame.len()));
    }
    let said = usize::from(u16::from_le_bytes([frame[2], frame[3]]));
    let body = &frame[8..];
    if said != body.len() {
        return Err(PacketError::Length {
            said,
            has: body.len(),
        });
    }
    let value = u32::from_le_bytes([frame[4], frame[5], frame[6], frame[7]]);
    Ok((frame[0], frame[1], body, value))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_read_reg_request_parses() {
        let frame = [0x00, 0x0A, 4, 0, 0, 0, 0, 0, 0x00, 0x10, 0x00, 0x40];
        let request = Request::parse(&frame).unwrap();
        assert_eq!(Op::from_code(request.op), Some(Op::ReadReg));
        assert_eq!(request.word(0), Some(0x4000_1000));
        assert_eq!(request.word(1), None);
        assert_eq!(request.encode(), frame);
    }

    #[test]
    fn status_length_follows_the_loader() {
        let response = Response::ok(0x0A, 0xFFF0_C101, Vec::new());
        let esp8266 = response.encode(StatusLen::Two);
        assert_eq!(esp8266, [0x01, 0x0A, 2, 0, 0x01, 0xC1, 0xF0, 0xFF, 0, 0]);
        let esp32 = response.encode(StatusLen::Four);
        assert_eq!(esp32.len(), 12);
        assert_eq!(esp32[2], 4, "size counts the status bytes");
        assert_eq!(Response::parse(&esp32, StatusLen::Four).unwrap(), response);
    }

    #[test]
    fn failures_carry_the_rom_error_code() {
        let wire = Response::failed(0x14, RomError::InvalidMessage).encode(StatusLen::Two);
        assert_eq!(&wire[8..], [1, 0x05]);
        let parsed = Response::parse(&wire, StatusLen::Two).unwrap();
        assert_eq!(parsed.status, Err(RomError::InvalidMessage));
    }

    #[test]
    fn md5_data_sits_before_the_status() {
        let hex = b"0123456789abcdef0123456789abcdef".to_vec();
        let wire = Response::ok(0x13, 0, hex.clone()).encode(StatusLen::Four);
        assert_eq!(
            wire.len(),
            44,
            "the length esptool and espflash expect from a ROM"
        );
        assert_eq!(Response::parse(&wire, StatusLen::Four).unwrap().data, hex);
    }

    #[test]
    fn malformed_frames_are_refused_with_the_reason() {
        assert_eq!(Request::parse(&[0, 8]), Err(PacketError::Short(2)));
        assert_eq!(
            Request::parse(&[0, 8, 5, 0, 0, 0, 0, 0, 1]),
            Err(PacketError::Length { said: 5, has: 1 })
        );
        assert_eq!(
            Request::parse(&[1, 8, 0, 0, 0, 0, 0, 0]),
            Err(PacketError::Direction(1))
        );
        assert!(Response::parse(&[1, 8, 1, 0, 0, 0, 0, 0, 0], StatusLen::Four).is_err());
    }

    #[test]
    fn checksum_is_0xef_xor_the_payload() {
        assert_eq!(data_checksum(&[]), 0xEF);
        assert_eq!(data_checksum(&[0xEF]), 0);
        assert_eq!(data_checksum(&[1, 2, 4]), 0xEF ^ 7);
    }
}
