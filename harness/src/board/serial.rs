//! A real board on a serial port, driven through its profile: the same board steps as
//! the simulator, carried out with console commands and reset sequences, and what the
//! board prints turned into trace events by the profile's patterns.
//!
//! A reader thread owns the receiving side: it never fails on bytes (ROM banners at
//! another baud rate, invalid UTF-8 shown as `\xNN`), and stamps every line into the
//! trace the moment it ends, so expectations see it without polling.

use std::io::{Read, Write};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use serialport::TTYPort;

use super::profile::{Patterns, Profile, Settings};
use super::reset::{BoardReset, ResetError};
use super::{BenchBoard, BoardError};
use crate::port::PortSpec;
use crate::port::{self, Endpoint, ModemLines, PortName};
use crate::trace::{BoardChange, EventBody, Trace};

/// How long a read blocks before the reader checks whether it should stop.
const READ_POLL: Duration = Duration::from_millis(50);
/// From reset to the boot line.
const BOOT_DEADLINE: Duration = Duration::from_secs(10);
/// From a `config` command to its answer.
const CONFIG_DEADLINE: Duration = Duration::from_secs(2);
/// A line longer than this is cut, so a board spewing without newlines cannot grow the
/// reader's buffer without bound.
const MAX_LINE: usize = 4096;

/// What the runner knows about the board's role in a scenario.
pub struct SerialSetup<'a> {
    pub name: &'a str,
    pub client_id: &'a str,
    pub topic: Option<&'a str>,
    pub debounce: Option<Duration>,
    pub bench: &'a BenchBoard,
    pub broker: SocketAddr,
    pub trace: Trace,
    pub lock_timeout: Duration,
}

pub struct SerialBoard {
    name: String,
    profile: Profile,
    port: TTYPort,
    /// How its reset and boot-mode lines are driven.
    wiring: BoardReset,
    trace: Trace,
    /// The labgrid place's power switch, which `power_cycle` then uses.
    power: Option<crate::labgrid::Power>,
    stop: Arc<AtomicBool>,
    reader: Option<JoinHandle<()>>,
    /// Holds the port's lock and, for a remote port, its bridge. Dropped after `port`.
    endpoint: Endpoint,
}

/// A port that is not there or not ours, with the ports that are.
fn open_error(port: &PortName, source: serialport::Error) -> BoardError {
    BoardError::CannotOpen {
        port: port.clone(),
        source,
        available: port::available_ports(),
    }
}

/// The port of a bench board: as written, or the first port with a USB id of its
/// profile.
pub fn resolve_port(bench: &BenchBoard) -> Result<PortName, BoardError> {
    match &bench.port {
        PortSpec::Named(name) => Ok(name.clone()),
        PortSpec::Labgrid(filter) => Err(BoardError::Harness {
            board: bench.name.clone(),
            reason: format!("{filter} must be reserved before its port is known"),
        }),
        PortSpec::Auto => {
            let ports = port::list().map_err(|source| BoardError::CannotListPorts {
                board: bench.name.clone(),
                source,
            })?;
            ports
                .into_iter()
                .find(|port| match &port.port_type {
                    serialport::SerialPortType::UsbPort(usb) => {
                        bench.profile.usb.contains(&(usb.vid, usb.pid))
                    }
                    _ => false,
                })
                .map(|port| PortName::Device(PathBuf::from(port.port_name)))
                .ok_or_else(|| BoardError::NoAutoPort {
                    board: bench.name.clone(),
                    profile: bench.profile.name.clone(),
                    usb: bench
                        .profile
                        .usb
                        .iter()
                        .map(|(vid, pid)| format!("{vid:04x}:{pid:04x}"))
                        .collect::<Vec<_>>()
                        .join(", "),
                    available: port::available_ports(),
                })
        }
    }
}

/// Where the board is and how to reach its reset lines.
pub struct PortSetup<'a> {
    pub name: &'a str,
    pub port: &'a PortName,
    pub profile: Profile,
    /// The control socket configured in the bench config, if any.
    pub control: Option<&'a std::path::Path>,
    pub trace: Trace,
    pub lock_timeout: Duration,
}

impl SerialBoard {
    /// Takes the port (waiting up to `lock_timeout` for another holder; connecting a
    /// remote one) and starts recording what the board prints; the board itself is left
    /// as it is.
    pub async fn open(setup: PortSetup<'_>) -> Result<SerialBoard, BoardError> {
        let PortSetup {
            name,
            port: port_name,
            profile,
            control,
            trace,
            lock_timeout,
        } = setup;
        let wiring = BoardReset::for_port(&profile, port_name, control).map_err(|reason| {
            BoardError::WrongProfile {
                board: name.to_string(),
                reason,
            }
        })?;
        let endpoint = {
            let (port_name, baud) = (port_name.clone(), profile.baud);
            tokio::task::spawn_blocking(move || Endpoint::open(&port_name, baud, lock_timeout))
                .await
                .map_err(|e| BoardError::Harness {
                    board: name.to_string(),
                    reason: e.to_string(),
                })??
        };
        let port = serialport::new(endpoint.path().to_string_lossy(), profile.baud)
            .timeout(READ_POLL)
            .open_native()
            .map_err(|e| open_error(port_name, e))?;
        let reader_port = port
            .try_clone_native()
            .map_err(|e| open_error(port_name, e))?;
        let stop = Arc::new(AtomicBool::new(false));
        let reader = {
            let (trace, name, profile, stop) = (
                trace.clone(),
                name.to_string(),
                profile.clone(),
                stop.clone(),
            );
            std::thread::Builder::new()
                .name(format!("serial-{name}"))
                .spawn(move || read_lines(reader_port, &name, &profile, &trace, &stop))
        }
        .map_err(|e| BoardError::Harness {
            board: name.to_string(),
            reason: e.to_string(),
        })?;
        Ok(SerialBoard {
            name: name.to_string(),
            profile,
            port,
            wiring,
            trace,
            power: None,
            stop,
            reader: Some(reader),
            endpoint,
        })
    }

    /// Takes the port, resets the board, waits for its boot line, then points it at the
    /// run's broker with the firmware's own `config` command.
    pub async fn start(setup: SerialSetup<'_>) -> Result<SerialBoard, BoardError> {
        let port = resolve_port(setup.bench)?;
        let mut board = SerialBoard::open(PortSetup {
            name: setup.name,
            port: &port,
            profile: setup.bench.profile.clone(),
            control: setup.bench.control.as_deref(),
            trace: setup.trace.clone(),
            lock_timeout: setup.lock_timeout,
        })
        .await?;
        board.power = setup.bench.power.clone();
        let from = board.trace.len() as usize;
        board.reset().await?;
        board
            .wait_for_line(from, BOOT_DEADLINE, "its boot line", |patterns, line| {
                patterns.boot_version(line).is_some()
            })
            .await?;
        let settings =
            Settings::for_run(setup.broker, setup.client_id, setup.topic, setup.debounce);
        board.configure(&settings).await?;
        Ok(board)
    }

    /// Stores settings with the profile's `config` command and waits for the firmware
    /// to confirm them (the profile's `config_saved` pattern). Returns the confirmation.
    pub async fn configure(&mut self, settings: &Settings) -> Result<String, BoardError> {
        let command = self.profile.commands.config_line(settings);
        let from = self.trace.len() as usize;
        self.send_serial(&command).await?;
        let answers = |patterns: &Patterns, line: &str| {
            patterns.config_saved.is_match(line) || patterns.config_refused.is_match(line)
        };
        self.wait_for_line(
            from,
            CONFIG_DEADLINE,
            "its confirmation of the settings",
            answers,
        )
        .await
        .and_then(|line| {
            if self.profile.patterns.config_refused.is_match(&line) {
                Err(BoardError::Refused {
                    board: self.name.clone(),
                    line,
                })
            } else {
                Ok(line)
            }
        })
    }

    /// Waits until the board prints a line `wanted` accepts, looking from trace event
    /// `from` on.
    async fn wait_for_line(
        &self,
        from: usize,
        within: Duration,
        what: &'static str,
        wanted: impl Fn(&super::profile::Patterns, &str) -> bool,
    ) -> Result<String, BoardError> {
        let mut cursor = self.trace.cursor_at(from);
        let deadline = tokio::time::Instant::now() + within;
        while let Some(event) = cursor.next_before(deadline).await {
            if let EventBody::Serial { board, line } = &event.body {
                if *board == self.name && wanted(&self.profile.patterns, line) {
                    return Ok(line.clone());
                }
            }
        }
        Err(BoardError::Silent {
            board: self.name.clone(),
            port: self.endpoint.name().clone(),
            what,
            within: humantime::format_duration(within).to_string(),
            baud: self.profile.baud,
        })
    }

    /// The port as the user named it.
    pub fn port(&self) -> &PortName {
        self.endpoint.name()
    }

    pub fn patterns(&self) -> &super::profile::Patterns {
        &self.profile.patterns
    }

    pub async fn press(&mut self, bounce: u32) -> Result<(), BoardError> {
        if bounce > 0 {
            return Err(BoardError::WrongProfile {
                board: self.name.clone(),
                reason: "contact bounce can only be simulated; a real switch bounces by itself"
                    .to_string(),
            });
        }
        let press = self.profile.commands.press.clone();
        self.send_serial(&press).await
    }

    pub async fn send_serial(&mut self, line: &str) -> Result<(), BoardError> {
        self.write_raw(format!("{line}\r\n").as_bytes()).await
    }

    pub async fn write_raw(&mut self, bytes: &[u8]) -> Result<(), BoardError> {
        self.port
            .write_all(bytes)
            .and_then(|()| self.port.flush())
            .map_err(|source| BoardError::Write {
                board: self.name.clone(),
                port: self.endpoint.name().clone(),
                source,
            })
    }

    pub async fn reset(&mut self) -> Result<(), BoardError> {
        self.trace.record(EventBody::Board {
            board: self.name.clone(),
            change: BoardChange::Reset,
        });
        self.drive(BoardReset::reset).await
    }

    /// Through the labgrid place's power switch when it has one. Otherwise a bench
    /// board has no power switch hil can reach: the reset line is held for `off_for`
    /// instead, so the board is silent for as long (its network session then ends
    /// without a DISCONNECT, as on power loss).
    pub async fn power_cycle(&mut self, off_for: Duration) -> Result<(), BoardError> {
        self.trace.record(EventBody::Board {
            board: self.name.clone(),
            change: BoardChange::PowerOff,
        });
        if let Some(power) = self.power.clone() {
            self.switch_power(&power, false).await?;
            tokio::time::sleep(off_for).await;
            self.trace.record(EventBody::Board {
                board: self.name.clone(),
                change: BoardChange::PowerOn,
            });
            return self.switch_power(&power, true).await;
        }
        self.drive(BoardReset::hold).await?;
        tokio::time::sleep(off_for).await;
        self.trace.record(EventBody::Board {
            board: self.name.clone(),
            change: BoardChange::PowerOn,
        });
        self.drive(BoardReset::reset).await
    }

    async fn switch_power(
        &self,
        power: &crate::labgrid::Power,
        on: bool,
    ) -> Result<(), BoardError> {
        let power = power.clone();
        tokio::task::spawn_blocking(move || power.set(on))
            .await
            .map_err(|e| BoardError::Harness {
                board: self.name.clone(),
                reason: e.to_string(),
            })?
            .map_err(|source| BoardError::Labgrid {
                board: self.name.clone(),
                source,
            })
    }

    pub async fn wifi(&mut self, _up: bool) -> Result<(), BoardError> {
        Err(BoardError::WrongProfile {
            board: self.name.clone(),
            reason: "`wifi` needs the simulated board; on a bench, use a `partition` of its client instead"
                .to_string(),
        })
    }

    /// Runs one of the wiring's sequences (`BoardReset::reset`, `hold`) on a blocking
    /// thread, as its line changes and pauses block: on the remote port's RFC 2217
    /// lines, else on a second handle to the local port.
    async fn drive(
        &self,
        sequence: fn(&BoardReset, &mut dyn ModemLines) -> Result<(), ResetError>,
    ) -> Result<(), BoardError> {
        let failed = |source| BoardError::Reset {
            board: self.name.clone(),
            port: self.endpoint.name().clone(),
            source,
        };
        let wiring = self.wiring.clone();
        let mut lines: Box<dyn ModemLines + Send> = match self.endpoint.remote_lines() {
            Some(remote) => Box::new(remote),
            None => Box::new(
                self.port
                    .try_clone_native()
                    .map_err(|e| open_error(self.endpoint.name(), e))?,
            ),
        };
        tokio::task::spawn_blocking(move || sequence(&wiring, lines.as_mut()))
            .await
            .map_err(|e| BoardError::Harness {
                board: self.name.clone(),
                reason: e.to_string(),
            })?
            .map_err(failed)
    }

    pub async fn stop(mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(reader) = self.reader.take() {
            let _ = tokio::task::spawn_blocking(move || reader.join()).await;
        }
    }
}

/// The reader thread: bytes in, lines into the trace, until told to stop or the port
/// goes away.
fn read_lines(mut port: TTYPort, name: &str, profile: &Profile, trace: &Trace, stop: &AtomicBool) {
    let mut pending = Vec::new();
    let mut buf = [0u8; 1024];
    while !stop.load(Ordering::Relaxed) {
        match port.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => {
                for &byte in &buf[..n] {
                    if byte == b'\n' || pending.len() >= MAX_LINE {
                        record_line(&pending, name, profile, trace);
                        pending.clear();
                    } else {
                        pending.push(byte);
                    }
                }
            }
            Err(e) if e.kind() == std::io::ErrorKind::TimedOut => {}
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(_) => break,
        }
    }
    if !pending.is_empty() {
        record_line(&pending, name, profile, trace);
    }
    if !stop.load(Ordering::Relaxed) {
        trace.record(EventBody::Board {
            board: name.to_string(),
            change: BoardChange::SerialLost,
        });
    }
}

fn record_line(bytes: &[u8], name: &str, profile: &Profile, trace: &Trace) {
    let line = escape_line(bytes);
    if line.is_empty() {
        return;
    }
    // A boot line means the board restarted, and a relay is off at power-on (as the
    // simulated board records it), so what follows starts from off.
    let relay = match profile.patterns.boot_version(&line) {
        Some(_) => Some(false),
        None => profile.patterns.relay_on(&line),
    };
    let report = profile.patterns.report(name, &line);
    trace.record(EventBody::Serial {
        board: name.to_string(),
        line,
    });
    if let Some(report) = report {
        trace.record(report);
    }
    if let Some(on) = relay {
        trace.record(EventBody::Relay {
            board: name.to_string(),
            on,
        });
    }
}

/// A line as text: valid UTF-8 as it is, every other byte and control character as
/// `\xNN`, the line ending dropped.
pub fn escape_line(bytes: &[u8]) -> String {
    let bytes = bytes.strip_suffix(b"\r").unwrap_or(bytes);
    let mut line = String::with_capacity(bytes.len());
    for chunk in bytes.utf8_chunks() {
        for c in chunk.valid().chars() {
            if c.is_control() && c != '\t' {
                line.push_str(&format!("\\x{:02x}", c as u32));
            } else {
                line.push(c);
            }
        }
        for byte in chunk.invalid() {
            line.push_str(&format!("\\x{byte:02x}"));
        }
    }
    line
}

impl super::Board for SerialBoard {
    fn press(&mut self, bounce: u32) -> super::BoardFuture<'_> {
        Box::pin(SerialBoard::press(self, bounce))
    }

    fn send_serial<'a>(&'a mut self, line: &'a str) -> super::BoardFuture<'a> {
        Box::pin(SerialBoard::send_serial(self, line))
    }

    fn serial_noise<'a>(&'a mut self, bytes: &'a [u8]) -> super::BoardFuture<'a> {
        Box::pin(self.write_raw(bytes))
    }

    fn reset(&mut self) -> super::BoardFuture<'_> {
        Box::pin(SerialBoard::reset(self))
    }

    fn power_cycle(&mut self, off_for: Duration) -> super::BoardFuture<'_> {
        Box::pin(SerialBoard::power_cycle(self, off_for))
    }

    fn wifi(&mut self, up: bool) -> super::BoardFuture<'_> {
        Box::pin(SerialBoard::wifi(self, up))
    }

    fn leave(&mut self) -> super::BoardFuture<'_> {
        Box::pin(std::future::ready(Err(BoardError::WrongProfile {
            board: self.name.clone(),
            reason: "a bench board's MQTT session ends with its firmware; only a simulated board can be made to leave".to_string(),
        })))
    }

    fn boot_version(&self, line: &str) -> Option<String> {
        self.patterns().boot_version(line).map(str::to_string)
    }

    fn stop(self: Box<Self>) -> std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send>> {
        Box::pin(SerialBoard::stop(*self))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn boot_garbage_and_invalid_utf8_are_shown_escaped() {
        assert_eq!(escape_line(b"HIL relay=on\r"), "HIL relay=on");
        assert_eq!(
            escape_line(b"\xff\x00ets Jan  8 2013"),
            "\\xff\\x00ets Jan  8 2013"
        );
        assert_eq!(escape_line("r\u{e9}lais".as_bytes()), "r\u{e9}lais");
        assert_eq!(escape_line(b"a\x1b[0mb"), "a\\x1b[0mb");
    }
}
