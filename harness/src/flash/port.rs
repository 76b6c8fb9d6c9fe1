//! Opening the serial port exclusively, with errors that say what to do next.

use std::path::Path;
use std::time::Duration;

use espflash::connection::Port;
use serialport::{SerialPortType, UsbPortInfo};

use super::FlashError;

/// The ROM loader listens at this rate after reset (the ESP8266's at any rate: it
/// measures the SYNC frame).
pub const ROM_BAUD: u32 = 115_200;
/// How long one read waits; espflash sets its own per command.
const READ_TIMEOUT: Duration = Duration::from_secs(3);

/// USB-serial bridges found on ESP boards, by VID:PID.
const KNOWN_BRIDGES: [(u16, u16, &str); 4] = [
    (0x10C4, 0xEA60, "CP210x"),
    (0x1A86, 0x7523, "CH340"),
    (0x0403, 0x6001, "FTDI"),
    (0x303A, 0x1001, "ESP USB-Serial-JTAG"),
];

/// An open port and what USB says about it (espflash picks the reset sequence by PID).
pub struct OpenPort {
    pub port: Port,
    pub usb: UsbPortInfo,
}

/// Opens `path` at the ROM's baud rate. serialport takes the port exclusively (TIOCEXCL
/// and an exclusive flock, which esptool's pyserial honours too), so a busy port fails
/// here instead of two programs garbling each other's packets.
pub fn open(path: &Path) -> Result<OpenPort, FlashError> {
    let name = path.to_string_lossy();
    let port = serialport::new(name.as_ref(), ROM_BAUD)
        .flow_control(serialport::FlowControl::None)
        .timeout(READ_TIMEOUT)
        .open_native()
        .map_err(|e| FlashError::infrastructure(open_failure(path, &e)))?;
    Ok(OpenPort {
        port,
        usb: usb_info(path),
    })
}

fn open_failure(path: &Path, error: &serialport::Error) -> String {
    use serialport::ErrorKind;
    let path = path.display();
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
    format!("{problem}. {}", available_ports())
}

/// One sentence listing the serial ports this machine has.
pub fn available_ports() -> String {
    // serialport scans /sys/class/tty without libudev, and panics where it is missing.
    if !Path::new("/sys/class/tty").is_dir() {
        return "This system does not list its serial ports (no /sys/class/tty).".to_string();
    }
    let ports = serialport::available_ports().unwrap_or_default();
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
    format!("Available ports: {}", described.join(", "))
}

/// The USB identity of the port at `path`, if it is a USB one.
fn usb_info(path: &Path) -> UsbPortInfo {
    let canonical = std::fs::canonicalize(path).unwrap_or_else(|_| path.to_path_buf());
    let listed = Path::new("/sys/class/tty").is_dir().then(|| {
        serialport::available_ports()
            .unwrap_or_default()
            .into_iter()
            .find(|port| Path::new(&port.port_name) == canonical)
    });
    match listed.flatten().map(|port| port.port_type) {
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
