//! The board's serial console after flashing: lines, read with a deadline, from bytes
//! that need not be UTF-8 (an ESP8266 ROM prints at 74880 baud: garbage at 115200).

use std::io::{self, Read, Write};
use std::time::{Duration, Instant};

use espflash::connection::Port;
use serialport::SerialPort;

/// One read waits at most this long, so the deadline is checked often.
const POLL: Duration = Duration::from_millis(100);
/// How many of the last lines a timeout reports.
const REMEMBERED: usize = 5;

/// The version in the firmware's boot line, `HIL boot fw=NAME version=VERSION`.
pub fn boot_version(line: &str) -> Option<&str> {
    let rest = line.trim().strip_prefix("HIL boot fw=")?;
    let (_, version) = rest.split_once(" version=")?;
    Some(version).filter(|v| !v.is_empty() && !v.contains(' '))
}

/// Why no line matched.
#[derive(Debug)]
pub enum ConsoleError {
    /// The deadline passed; the last lines read, oldest first.
    Timeout(Vec<String>),
    Io(io::Error),
}

/// Lines from a serial port.
pub struct Console {
    port: Port,
    partial: Vec<u8>,
    last: Vec<String>,
}

impl Console {
    pub fn new(port: Port) -> Console {
        Console {
            port,
            partial: Vec::new(),
            last: Vec::new(),
        }
    }

    /// Reads lines until `find` accepts one or `deadline` passes.
    pub fn wait_for<T>(
        &mut self,
        deadline: Instant,
        mut find: impl FnMut(&str) -> Option<T>,
    ) -> Result<T, ConsoleError> {
        let mut buf = [0u8; 1024];
        loop {
            while let Some(line) = self.next_buffered_line() {
                if let Some(found) = find(&line) {
                    return Ok(found);
                }
                self.remember(line);
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Err(ConsoleError::Timeout(self.last.clone()));
            }
            self.port
                .set_timeout(left.min(POLL))
                .map_err(|e| ConsoleError::Io(e.into()))?;
            match self.port.read(&mut buf) {
                Ok(0) => {
                    return Err(ConsoleError::Io(io::Error::new(
                        io::ErrorKind::UnexpectedEof,
                        "the port closed",
                    )))
                }
                Ok(read) => self.partial.extend_from_slice(&buf[..read]),
                Err(e) if e.kind() == io::ErrorKind::TimedOut => {}
                Err(e) => return Err(ConsoleError::Io(e)),
            }
        }
    }

    /// Types a line, as a terminal does (CR LF).
    pub fn send_line(&mut self, line: &str) -> io::Result<()> {
        self.port.write_all(format!("{line}\r\n").as_bytes())?;
        self.port.flush()
    }

    fn next_buffered_line(&mut self) -> Option<String> {
        let end = self.partial.iter().position(|&b| b == b'\n')?;
        let line: Vec<u8> = self.partial.drain(..=end).collect();
        Some(
            String::from_utf8_lossy(&line)
                .trim_end_matches(['\r', '\n'])
                .to_string(),
        )
    }

    fn remember(&mut self, line: String) {
        if self.last.len() == REMEMBERED {
            self.last.remove(0);
        }
        self.last.push(line);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_boot_line_gives_the_version() {
        assert_eq!(
            boot_version("HIL boot fw=light-controller version=1.4.2\r"),
            Some("1.4.2")
        );
        assert_eq!(boot_version("HIL state=ACTIVE"), None);
        assert_eq!(boot_version("HIL boot fw=x version="), None);
    }

    #[test]
    fn garbage_bytes_do_not_break_lines() {
        let (port, mut host) = pty_pair();
        let mut console = Console::new(port);
        std::io::Write::write_all(
            &mut host,
            b"\xf8\xff\x00 ets garbage\r\nHIL boot fw=light-controller version=9.9\r\n",
        )
        .unwrap();
        let deadline = Instant::now() + Duration::from_secs(5);
        let version = console.wait_for(deadline, |line| boot_version(line).map(str::to_string));
        assert_eq!(version.unwrap(), "9.9");
    }

    #[test]
    fn the_deadline_reports_the_last_lines() {
        let (port, mut host) = pty_pair();
        let mut console = Console::new(port);
        std::io::Write::write_all(&mut host, b"one\ntwo\n").unwrap();
        let deadline = Instant::now() + Duration::from_millis(300);
        match console.wait_for(deadline, |_| None::<()>) {
            Err(ConsoleError::Timeout(last)) => assert_eq!(last, ["one", "two"]),
            other => panic!("expected a timeout, got {other:?}"),
        }
    }

    /// The console's port on the slave end of a pty; the master plays the board.
    fn pty_pair() -> (Port, Port) {
        let (board, port) = serialport::TTYPort::pair().expect("a pty pair");
        (port, board)
    }
}
