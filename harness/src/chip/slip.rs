//! SLIP framing as the ESP serial bootloader uses it: a frame starts and ends with 0xC0;
//! 0xC0 and 0xDB inside a frame travel as 0xDB 0xDC and 0xDB 0xDD.

pub const END: u8 = 0xC0;
const ESC: u8 = 0xDB;
const ESC_END: u8 = 0xDC;
const ESC_ESC: u8 = 0xDD;

/// Longer frames are noise: the largest request (a 16 KiB stub data block) is far smaller.
const MAX_FRAME: usize = 64 * 1024;

/// One frame, delimiters and escapes added.
pub fn encode(payload: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(payload.len() + 8);
    out.push(END);
    for &byte in payload {
        match byte {
            END => out.extend_from_slice(&[ESC, ESC_END]),
            ESC => out.extend_from_slice(&[ESC, ESC_ESC]),
            other => out.push(other),
        }
    }
    out.push(END);
    out
}

/// Reassembles frames from a byte stream. Bytes outside frames (console text) are
/// skipped, and so are frames with a broken escape or an absurd length, as the ROM
/// skips them: the host's retry is the recovery.
#[derive(Debug, Default)]
pub struct Decoder {
    frame: Vec<u8>,
    state: State,
}

#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
enum State {
    /// Between frames.
    #[default]
    Idle,
    InFrame,
    Escaped,
    /// Inside a frame that will be dropped at its end.
    Broken,
}

impl Decoder {
    /// Feeds one byte; returns a frame when this byte completed one.
    pub fn push(&mut self, byte: u8) -> Option<Vec<u8>> {
        match (self.state, byte) {
            (State::Idle, END) => self.state = State::InFrame,
            (State::Idle, _) => {}
            // Back-to-back delimiters: the second one opens the next frame.
            (State::InFrame, END) if self.frame.is_empty() => {}
            (State::InFrame, END) => {
                self.state = State::Idle;
                return Some(std::mem::take(&mut self.frame));
            }
            (State::InFrame, ESC) => self.state = State::Escaped,
            (State::InFrame, other) => self.keep(other),
            (State::Escaped, ESC_END) => self.keep(END),
            (State::Escaped, ESC_ESC) => self.keep(ESC),
            (State::Escaped, END) | (State::Broken, END) => self.reset(),
            (State::Escaped, _) => self.state = State::Broken,
            (State::Broken, _) => {}
        }
        None
    }

    /// Between frames: the last byte was not part of one.
    pub fn is_idle(&self) -> bool {
        self.state == State::Idle
    }

    /// Forgets a partial frame, as after a reset of the receiver.
    pub fn reset(&mut self) {
        self.frame.clear();
        self.state = State::Idle;
    }

    fn keep(&mut self, byte: u8) {
        if self.frame.len() >= MAX_FRAME {
            self.frame.clear();
            self.state = State::Broken;
            return;
        }
        self.frame.push(byte);
        self.state = State::InFrame;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn decode_all(bytes: &[u8]) -> Vec<Vec<u8>> {
        let mut decoder = Decoder::default();
        bytes.iter().filter_map(|&b| decoder.push(b)).collect()
    }

    #[test]
    fn escapes_round_trip() {
        let payload = [0x01, END, 0x02, ESC, ESC_END, ESC_ESC, 0xFF];
        let wire = encode(&payload);
        assert_eq!(
            wire,
            [END, 0x01, ESC, ESC_END, 0x02, ESC, ESC_ESC, ESC_END, ESC_ESC, 0xFF, END]
        );
        assert_eq!(decode_all(&wire), vec![payload.to_vec()]);
    }

    #[test]
    fn text_between_frames_is_skipped() {
        let mut wire = b"HIL boot fw=x\r\n".to_vec();
        wire.extend(encode(&[1, 2]));
        wire.extend(b"noise");
        wire.extend(encode(&[3]));
        assert_eq!(decode_all(&wire), vec![vec![1, 2], vec![3]]);
    }

    #[test]
    fn back_to_back_delimiters_start_a_new_frame() {
        assert_eq!(
            decode_all(&[END, END, 7, END, END, 8, END]),
            vec![vec![7], vec![8]]
        );
    }

    #[test]
    fn a_broken_escape_drops_only_its_frame() {
        let mut wire = vec![END, 1, ESC, 0x00, 2, END];
        wire.extend(encode(&[9]));
        assert_eq!(decode_all(&wire), vec![vec![9]]);
    }

    #[test]
    fn an_endless_frame_is_dropped() {
        let mut wire = vec![END];
        wire.extend(std::iter::repeat_n(0x55, MAX_FRAME + 10));
        wire.push(END);
        wire.extend(encode(&[4]));
        assert_eq!(decode_all(&wire), vec![vec![4]]);
    }
}
