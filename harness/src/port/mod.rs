//! Serial ports: how a board's port is named (a device path, `auto`, or
//! `rfc2217://host:port`), how the ports of this machine are listed, and how a port is
//! taken for use ([`Endpoint`]: locked, and for a remote port bridged to a local pty).
//!
//! Everything that talks to a board (the serial board, `hil monitor`, `hil flash` and
//! espflash under it) opens [`Endpoint::path`], a local tty either way; only the modem
//! lines differ ([`ModemLines`]): ioctls on a local port, RFC 2217 commands on a remote
//! one.

pub mod lock;
pub mod rfc2217;

use std::path::{Path, PathBuf};
use std::time::Duration;

use serialport::{SerialPort, SerialPortInfo, SerialPortType, TTYPort};

use lock::PortLock;
use rfc2217::{RemoteLines, RemotePort};

/// A port hil can open: a device on this machine, or one served over the network.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PortName {
    Device(PathBuf),
    /// RFC 2217 (ser2net's `telnet(rfc2217)` accepter), `host:port`.
    Rfc2217(String),
}

/// Why a text names no port.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PortNameError {
    #[error("{text:?} names no server: write rfc2217://HOST:PORT")]
    NoServer { text: String },
    #[error("{text:?} has no TCP port: write rfc2217://{address}:PORT (ser2net's accepter port)")]
    NoTcpPort { text: String, address: String },
    #[error("the port is empty: name a device such as /dev/ttyUSB0")]
    Empty,
}

impl PortName {
    /// `rfc2217://host:port`, or else a device path.
    pub fn parse(text: &str) -> Result<PortName, PortNameError> {
        match text.strip_prefix("rfc2217://") {
            Some("") => Err(PortNameError::NoServer {
                text: text.to_string(),
            }),
            Some(address) if !address.contains(':') => Err(PortNameError::NoTcpPort {
                text: text.to_string(),
                address: address.to_string(),
            }),
            Some(address) => Ok(PortName::Rfc2217(address.to_string())),
            None if text.is_empty() => Err(PortNameError::Empty),
            None => Ok(PortName::Device(PathBuf::from(text))),
        }
    }
}

impl std::fmt::Display for PortName {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            PortName::Device(path) => write!(f, "{}", path.display()),
            PortName::Rfc2217(address) => write!(f, "rfc2217://{address}"),
        }
    }
}

/// A port as the bench config writes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PortSpec {
    /// The first port whose USB id the board's profile lists.
    Auto,
    Named(PortName),
    /// The serial port of a labgrid place, known once the place is acquired.
    Labgrid(crate::labgrid::PlaceFilter),
}

impl PortSpec {
    pub fn parse(text: &str) -> Result<PortSpec, PortNameError> {
        if text == "auto" {
            Ok(PortSpec::Auto)
        } else {
            PortName::parse(text).map(PortSpec::Named)
        }
    }
}

/// DTR and RTS, which dev boards wire to EN and GPIO0 (the auto-reset circuit).
pub trait ModemLines {
    fn set_dtr(&mut self, on: bool) -> Result<(), LinesError>;
    fn set_rts(&mut self, on: bool) -> Result<(), LinesError>;
}

/// Why a modem line could not be set.
#[derive(Debug, thiserror::Error)]
pub enum LinesError {
    /// The local port refused the ioctl (a pty has no modem lines).
    #[error("cannot set {line} ({source})")]
    Local {
        line: &'static str,
        source: serialport::Error,
    },
    #[error("rfc2217://{address}: the connection to the server is gone")]
    RemoteGone { address: String },
}

impl ModemLines for TTYPort {
    fn set_dtr(&mut self, on: bool) -> Result<(), LinesError> {
        self.write_data_terminal_ready(on)
            .map_err(|source| LinesError::Local {
                line: "DTR",
                source,
            })
    }

    fn set_rts(&mut self, on: bool) -> Result<(), LinesError> {
        self.write_request_to_send(on)
            .map_err(|source| LinesError::Local {
                line: "RTS",
                source,
            })
    }
}

/// Why a port could not be taken.
#[derive(Debug, thiserror::Error)]
pub enum PortError {
    /// Another process holds the port, or its lock file cannot be used.
    #[error(transparent)]
    Lock(#[from] lock::LockError),
    /// The RFC 2217 server could not be reached or did not set the port up.
    #[error(transparent)]
    Remote(#[from] rfc2217::Rfc2217Error),
}

impl PortError {
    /// A stable name for the kind of failure, for machine-readable reports.
    pub fn kind(&self) -> &'static str {
        match self {
            PortError::Lock(lock::LockError::Busy { .. }) => "port_busy",
            PortError::Lock(lock::LockError::Io { .. }) => "port_lock",
            PortError::Remote(rfc2217::Rfc2217Error::Busy { .. }) => "port_busy",
            PortError::Remote(_) => "remote_port",
        }
    }
}

/// A port taken for use: its lock is held (one user per port, across processes), and a
/// remote port is bridged to a local pty for as long as this lives.
pub struct Endpoint {
    name: PortName,
    path: PathBuf,
    remote: Option<RemotePort>,
    _lock: PortLock,
}

impl Endpoint {
    /// Takes `name`'s lock, waiting up to `lock_timeout` for another holder, then, for a
    /// remote port, connects at `baud`. Blocks: call it off an async runtime's thread.
    pub fn open(name: &PortName, baud: u32, lock_timeout: Duration) -> Result<Endpoint, PortError> {
        let lock = PortLock::acquire(Path::new(&name.to_string()), lock_timeout)?;
        let (path, remote) = match name {
            PortName::Device(path) => (path.clone(), None),
            PortName::Rfc2217(address) => {
                let remote = RemotePort::connect(address, baud)?;
                (remote.path().to_path_buf(), Some(remote))
            }
        };
        Ok(Endpoint {
            name: name.clone(),
            path,
            remote,
            _lock: lock,
        })
    }

    /// What to open: the device, or the local pty a remote port is bridged to.
    pub fn path(&self) -> &Path {
        &self.path
    }

    pub fn name(&self) -> &PortName {
        &self.name
    }

    /// A remote port's modem lines; `None` for a local port, whose lines are ioctls on
    /// the opened port itself.
    pub fn remote_lines(&self) -> Option<RemoteLines> {
        self.remote.as_ref().map(RemotePort::lines)
    }
}

/// Why the ports of this machine cannot be listed.
#[derive(Debug, thiserror::Error)]
pub enum ListError {
    #[error("this system does not list its serial ports (no /sys/class/tty)")]
    NoTtyClass,
    #[error("cannot list serial ports: {0}")]
    Scan(#[from] serialport::Error),
}

/// The serial ports of this machine. serialport scans /sys/class/tty when built without
/// libudev, and panics where that folder is missing (some containers).
pub fn list() -> Result<Vec<SerialPortInfo>, ListError> {
    if !Path::new("/sys/class/tty").is_dir() {
        return Err(ListError::NoTtyClass);
    }
    Ok(serialport::available_ports()?)
}

/// USB-serial bridges found on ESP boards, by VID:PID.
const KNOWN_BRIDGES: [(u16, u16, &str); 4] = [
    (0x10C4, 0xEA60, "CP210x"),
    (0x1A86, 0x7523, "CH340"),
    (0x0403, 0x6001, "FTDI"),
    (0x303A, 0x1001, "ESP USB-Serial-JTAG"),
];

/// One sentence naming the serial ports this machine has, for error messages.
pub fn available_ports() -> String {
    let ports = match list() {
        Ok(ports) => ports,
        Err(e) => return format!("Available ports: unknown ({e})."),
    };
    if ports.is_empty() {
        return "No serial ports found: is the board plugged in?".to_string();
    }
    let described: Vec<String> = ports
        .iter()
        .map(|port| match &port.port_type {
            SerialPortType::UsbPort(usb) => {
                let bridge = KNOWN_BRIDGES
                    .iter()
                    .find(|(vid, pid, _)| *vid == usb.vid && *pid == usb.pid)
                    .map_or("USB", |(_, _, name)| name);
                format!(
                    "{} ({bridge} {:04x}:{:04x})",
                    port.port_name, usb.vid, usb.pid
                )
            }
            _ => port.port_name.clone(),
        })
        .collect();
    format!("Available ports: {}.", described.join(", "))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_devices_or_rfc2217_addresses() {
        assert_eq!(
            PortName::parse("/dev/ttyUSB0"),
            Ok(PortName::Device("/dev/ttyUSB0".into()))
        );
        assert_eq!(
            PortName::parse("rfc2217://bench-host:4000"),
            Ok(PortName::Rfc2217("bench-host:4000".into()))
        );
        assert_eq!(
            PortName::parse("rfc2217://bench-host:4000")
                .unwrap()
                .to_string(),
            "rfc2217://bench-host:4000"
        );
        let error = PortName::parse("rfc2217://bench-host").unwrap_err();
        assert!(
            error.to_string().contains("rfc2217://bench-host:PORT"),
            "{error}"
        );
        assert!(matches!(
            PortName::parse("rfc2217://"),
            Err(PortNameError::NoServer { .. })
        ));
        assert_eq!(PortName::parse(""), Err(PortNameError::Empty));
        assert_eq!(PortSpec::parse("auto"), Ok(PortSpec::Auto));
    }
}
