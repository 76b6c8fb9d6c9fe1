//! The board's port for flashing: taken (locked; a remote port bridged), opened
//! exclusively with errors that say what to do next, and how its reset and boot-mode
//! lines are driven.

use std::path::Path;
use std::time::Duration;

use espflash::connection::Port;
use serialport::{SerialPortType, UsbPortInfo};

use super::FlashError;
use crate::board::profile::Profile;
use crate::board::reset::BoardReset;
use crate::chip::control_socket_path;
use crate::port::rfc2217::RemoteLines;
use crate::port::{Endpoint, PortName};

/// The ROM loader listens at this rate after reset (the ESP8266's at any rate: it
/// measures the SYNC frame).
pub const ROM_BAUD: u32 = 115_200;
/// How long one read waits; espflash sets its own per command.
const READ_TIMEOUT: Duration = Duration::from_secs(3);

/// The classic auto-reset circuit's sequences, for a remote port of unknown wiring.
const CLASSIC_PROFILE: &str = "nodemcu-esp8266";

/// A port taken for flashing, and how its board is reset.
pub struct FlashPort {
    endpoint: Endpoint,
    lines: ResetLines,
}

/// How the board's reset (EN) and boot-mode (GPIO0) lines are driven.
pub enum ResetLines {
    /// A board profile's wiring, or a virtual chip's control socket (`hil sim --pty`).
    Board(BoardReset),
    /// espflash's own DTR/RTS sequences on a local port, chosen by its USB id.
    Espflash,
}

impl FlashPort {
    /// Takes `name` (waiting up to `lock_timeout` for another holder). With a board
    /// `profile`, its sequences reset the board; without one, a virtual chip's socket
    /// beside the port, else espflash's sequences (a remote port: the classic circuit's).
    pub fn open(
        name: &PortName,
        profile: Option<&Profile>,
        control: Option<&Path>,
        lock_timeout: Duration,
    ) -> Result<FlashPort, FlashError> {
        let classic;
        let profile = match (profile, name) {
            (Some(profile), _) => Some(profile),
            (None, PortName::Rfc2217(_)) => {
                classic = Profile::bundled(CLASSIC_PROFILE);
                classic.as_ref()
            }
            (None, PortName::Device(_)) => None,
        };
        // Settled before taking the port, so a bench config mistake touches nothing.
        let lines = match profile {
            Some(profile) => ResetLines::Board(
                BoardReset::for_port(profile, name, control).map_err(FlashError::input)?,
            ),
            None => match name {
                PortName::Device(path) if control_socket_path(path).exists() => {
                    ResetLines::Board(BoardReset::virtual_chip(control_socket_path(path)))
                }
                _ => ResetLines::Espflash,
            },
        };
        let endpoint = Endpoint::open(name, ROM_BAUD, lock_timeout)
            .map_err(|e| FlashError::infrastructure(e.to_string()))?;
        Ok(FlashPort { endpoint, lines })
    }

    /// What to open: the device, or the pty a remote port is bridged to.
    pub fn path(&self) -> &Path {
        self.endpoint.path()
    }

    /// The port as the user named it.
    pub fn name(&self) -> &PortName {
        self.endpoint.name()
    }

    pub fn lines(&self) -> &ResetLines {
        &self.lines
    }

    /// A remote port's DTR/RTS; `None` for a local port, whose lines are its own.
    pub fn remote_lines(&self) -> Option<RemoteLines> {
        self.endpoint.remote_lines()
    }
}

/// An open port and what USB says about it (espflash picks the reset sequence by PID).
pub struct OpenPort {
    pub port: Port,
    pub usb: UsbPortInfo,
}

/// Opens `path` at the ROM's baud rate. serialport takes the port exclusively (TIOCEXCL
/// and an exclusive flock, which esptool's pyserial honours too), so a busy port fails
/// here instead of two programs garbling each other's packets.
pub fn open(target: &FlashPort) -> Result<OpenPort, FlashError> {
    let path = target.path();
    let port = serialport::new(path.to_string_lossy(), ROM_BAUD)
        .flow_control(serialport::FlowControl::None)
        .timeout(READ_TIMEOUT)
        .open_native()
        .map_err(|e| FlashError::infrastructure(open_failure(target.name(), &e)))?;
    Ok(OpenPort {
        port,
        usb: usb_info(path),
    })
}

fn open_failure(path: &PortName, error: &serialport::Error) -> String {
    use serialport::ErrorKind;
    let problem = match error.kind() {
        ErrorKind::Io(std::io::ErrorKind::NotFound) => format!("no serial port at {path}"),
        ErrorKind::Io(std::io::ErrorKind::PermissionDenied) => format!(
            "no permission to open {path}: add your user to the `dialout` group \
             (sudo usermod -aG dialout $USER, then log in again)"
        ),
        ErrorKind::NoDevice => format!(
            "{path} is busy: another program has it open (esptool, a serial monitor, another \
             hil); close it and try again"
        ),
        _ => format!("cannot open {path}: {error}"),
    };
    format!("{problem}. {}", crate::port::available_ports())
}

/// The USB identity of the port at `path`, if it is a USB one.
fn usb_info(path: &Path) -> UsbPortInfo {
    let canonical = std::fs::canonicalize(path).unwrap_or_else(|_| path.to_path_buf());
    let listed = crate::port::list()
        .unwrap_or_default()
        .into_iter()
        .find(|port| Path::new(&port.port_name) == canonical);
    match listed.map(|port| port.port_type) {
        Some(SerialPortType::UsbPort(usb)) => usb,
        _ => UsbPortInfo {
            vid: 0,
            pid: 0,
            serial_number: None,
            manufacturer: None,
            product: None,
        },
    }
}
