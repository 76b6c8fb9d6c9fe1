//! `hil flash`: writes a firmware image to a board over its serial port, skips what is
//! already there, verifies, resets and waits for the firmware's boot line.
//!
//! The ESP32 family goes through espflash's flasher; the ESP8266, which espflash no
//! longer supports, through espflash's low-level connection (`esp8266`). Everything
//! that can be refused is refused before the first byte is written (`plan`). Reset
//! lines (`port`): a board profile's DTR/RTS sequences (sent as RFC 2217 commands on a
//! remote port); a virtual chip's control socket (`hil sim --pty` has one beside its
//! port, `PORT.ctl`), which it takes instead of DTR/RTS; or espflash's own sequences.

mod console;
mod elf;
mod esp32;
mod esp8266;
pub mod esptool;
mod plan;
mod port;
mod progress;

use std::error::Error as _;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use espflash::connection::{Connection, ResetAfterOperation, ResetBeforeOperation};
use serialport::{ClearBuffer, SerialPort, UsbPortInfo};

use crate::board::reset::{BoardReset, ResetError};
use crate::image::Chip;
use crate::port::{ModemLines, PortName};
pub use console::{boot_version, Console, ConsoleError};
pub use port::{FlashPort, ResetLines};
pub use progress::{Output, Progress, RegionOutcome};

/// The register whose value names the chip family.
const CHIP_MAGIC_REG: u32 = 0x4000_1000;
const ESP8266_MAGIC: u32 = 0xFFF0_C101;
const ESP32_MAGIC: u32 = 0x00F0_1D83;

/// Reset the board (into the loader before, into the app after), or leave it alone.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ResetMode {
    Reset,
    NoReset,
}

/// What to flash, and how (the port is [`FlashPort`]).
#[derive(Debug, Clone)]
pub struct Job {
    pub image: PathBuf,
    /// The chip the user says it is; detected when `None`.
    pub chip: Option<Chip>,
    /// Where a `.bin` goes; default the chip's app offset.
    pub address: Option<u32>,
    pub skip_unchanged: bool,
    pub verify: bool,
    pub before: ResetMode,
    pub after: ResetMode,
    /// Baud rate for the transfer (the connection starts at the ROM's 115200).
    pub baud: u32,
    /// How long to wait for the boot line after the reset.
    pub boot_deadline: Duration,
}

/// A flash run that worked.
pub struct Flashed {
    pub chip: Chip,
    pub regions: Vec<RegionOutcome>,
    /// The version from the boot line, when the board was reset afterwards.
    pub booted_version: Option<String>,
    /// The port, still open, for whoever wants to read the console on.
    pub console: Console,
}

/// Why a flash run failed: wrong input (exit 2) or the bench (exit 3).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct FlashError {
    input: bool,
    message: String,
}

impl FlashError {
    pub fn input(message: impl Into<String>) -> FlashError {
        FlashError {
            input: true,
            message: message.into(),
        }
    }

    pub fn infrastructure(message: impl Into<String>) -> FlashError {
        FlashError {
            input: false,
            message: message.into(),
        }
    }

    /// The image, the address or the options are wrong (as opposed to port or board).
    pub fn is_input(&self) -> bool {
        self.input
    }
}

/// Runs `job` on `port`, reporting to `progress`. The console in the result reads
/// `port`, which must outlive it.
pub fn flash(job: &Job, port: &FlashPort, progress: &mut Progress) -> Result<Flashed, FlashError> {
    let image = plan::load(&job.image)?;
    if let Some(chip) = job.chip {
        // Everything about the image that does not need the board, before touching it.
        plan::regions(&image, chip, job.address)?;
    }
    let (mut connection, usb) = connect(job, port)?;
    let chip = detect(&mut connection)?;
    if let Some(expected) = job.chip.filter(|&expected| expected != chip) {
        return Err(FlashError::input(format!(
            "expected an {} (--chip, or the board's profile), but the board on {} is an {}",
            expected.name(),
            port.name(),
            chip.name()
        )));
    }
    let regions = plan::regions(&image, chip, job.address)?;
    let connection = write(connection, &usb, chip, &regions, job, progress)?;
    let mut serial = connection.into_serial();
    if job.after == ResetMode::Reset {
        // Lines from before the reset (an app started by FLASH_END) are not the news.
        serial
            .clear(ClearBuffer::Input)
            .map_err(|e| FlashError::infrastructure(format!("{}: {e}", port.name())))?;
        serial = reset(serial, usb, port)?;
    }
    let mut console = Console::new(serial);
    let booted_version = match job.after {
        ResetMode::Reset => Some(wait_for_boot(&mut console, job, port)?),
        ResetMode::NoReset => None,
    };
    Ok(Flashed {
        chip,
        regions: progress.outcomes().to_vec(),
        booted_version,
        console,
    })
}

/// Opens the port, puts the board into its loader if asked, and syncs with it.
fn connect(job: &Job, target: &FlashPort) -> Result<(Connection, UsbPortInfo), FlashError> {
    let mut opened = port::open(target)?;
    let before = match (target.lines(), job.before) {
        (_, ResetMode::NoReset) => ResetBeforeOperation::NoReset,
        (ResetLines::Board(wiring), ResetMode::Reset) => {
            drive(BoardReset::bootloader, wiring, &mut opened.port, target)?;
            ResetBeforeOperation::NoReset
        }
        (ResetLines::Espflash, ResetMode::Reset) => ResetBeforeOperation::DefaultReset,
    };
    let mut connection = Connection::new(
        opened.port,
        opened.usb.clone(),
        ResetAfterOperation::NoReset,
        before,
        port::ROM_BAUD,
    );
    connection
        .begin()
        .map_err(|e| no_sync(target.name(), job.before, &e))?;
    Ok((connection, opened.usb))
}

fn write(
    mut connection: Connection,
    usb: &UsbPortInfo,
    chip: Chip,
    regions: &[plan::Region],
    job: &Job,
    progress: &mut Progress,
) -> Result<Connection, FlashError> {
    match chip {
        Chip::Esp8266 => {
            esp8266::write(&mut connection, regions, job, progress)?;
            Ok(connection)
        }
        Chip::Esp32 | Chip::Esp32c3 => {
            // The board is in its loader now: espflash's flasher need only sync again.
            let synced = Connection::new(
                connection.into_serial(),
                usb.clone(),
                ResetAfterOperation::NoReset,
                ResetBeforeOperation::NoReset,
                port::ROM_BAUD,
            );
            esp32::write(synced, chip, regions, job, progress)
        }
    }
}

/// Pulses EN: as the board's wiring says, or through RTS as espflash does after
/// flashing.
fn reset(
    mut serial: espflash::connection::Port,
    usb: UsbPortInfo,
    target: &FlashPort,
) -> Result<espflash::connection::Port, FlashError> {
    match target.lines() {
        ResetLines::Board(wiring) => {
            drive(BoardReset::reset, wiring, &mut serial, target)?;
            Ok(serial)
        }
        ResetLines::Espflash => {
            let mut connection = Connection::new(
                serial,
                usb,
                ResetAfterOperation::HardReset,
                ResetBeforeOperation::NoReset,
                port::ROM_BAUD,
            );
            connection.reset().map_err(|e| {
                FlashError::infrastructure(format!(
                    "the image is written, but resetting through RTS on {} failed: {} — a pty has \
                     no modem lines (a virtual chip takes `reset` on PORT.ctl); reset the board by \
                     hand, or pass --after no-reset",
                    target.name(),
                    describe(&e)
                ))
            })?;
            Ok(connection.into_serial())
        }
    }
}

/// One of the board's sequences (`BoardReset::reset`, `bootloader`): on a remote port's
/// RFC 2217 lines, else on the local port's own.
fn drive(
    sequence: fn(&BoardReset, &mut dyn ModemLines) -> Result<(), ResetError>,
    wiring: &BoardReset,
    local: &mut espflash::connection::Port,
    target: &FlashPort,
) -> Result<(), FlashError> {
    let mut remote = target.remote_lines();
    let lines: &mut dyn ModemLines = match &mut remote {
        Some(remote) => remote,
        None => local,
    };
    sequence(wiring, lines).map_err(|e| {
        FlashError::infrastructure(format!(
            "resetting the board on {}: {e}; or pass --before/--after no-reset",
            target.name()
        ))
    })
}

fn wait_for_boot(
    console: &mut Console,
    job: &Job,
    target: &FlashPort,
) -> Result<String, FlashError> {
    let deadline = Instant::now() + job.boot_deadline;
    console
        .wait_for(deadline, |line| boot_version(line).map(str::to_string))
        .map_err(|error| match error {
            ConsoleError::Timeout(last) => FlashError::infrastructure(format!(
                "the image is written, but no `HIL boot` line came from {} within {:?} after the \
                 reset; last lines: {}",
                target.name(),
                job.boot_deadline,
                if last.is_empty() {
                    "(none)".to_string()
                } else {
                    last.join(" | ")
                }
            )),
            ConsoleError::Io(e) => FlashError::infrastructure(format!(
                "the image is written, but reading {} failed: {e}",
                target.name()
            )),
        })
}

/// Which chip answers: GET_SECURITY_INFO names newer chips, the magic register older ones.
fn detect(connection: &mut Connection) -> Result<Chip, FlashError> {
    if let Some(id) = connection
        .security_info(false)
        .ok()
        .and_then(|info| info.chip_id)
    {
        return Chip::ALL
            .into_iter()
            .find(|chip| chip.image_chip_id().map(u32::from) == Some(id))
            .ok_or_else(|| unsupported(format!("chip id {id}")));
    }
    let magic = connection.read_reg(CHIP_MAGIC_REG).map_err(|e| {
        FlashError::infrastructure(format!(
            "reading the chip's magic register: {}",
            describe(&e)
        ))
    })?;
    match magic {
        ESP8266_MAGIC => Ok(Chip::Esp8266),
        ESP32_MAGIC => Ok(Chip::Esp32),
        other if espflash::target::Chip::Esp32c3.has_magic_value(other) => Ok(Chip::Esp32c3),
        other => Err(unsupported(format!("magic 0x{other:08x}"))),
    }
}

fn unsupported(what: String) -> FlashError {
    FlashError::infrastructure(format!(
        "the board answers as {what}: hil flashes esp8266, esp32 and esp32c3"
    ))
}

fn no_sync(port: &PortName, before: ResetMode, error: &espflash::Error) -> FlashError {
    let reset_hint = match before {
        ResetMode::Reset => {
            "hil's DTR/RTS reset did not bring it there: the board may lack the auto-reset \
             circuit, and a pty has no such lines (a virtual chip's PORT.ctl does; without it, \
             pass --before no-reset)"
        }
        ResetMode::NoReset => {
            "with --before no-reset it must already be waiting there (or let hil reset it: \
             --before reset)"
        }
    };
    FlashError::infrastructure(format!(
        "no answer to SYNC from {} after espflash's retries ({}): the board is not in its serial \
         loader. Hold BOOT (GPIO0) while pressing RESET/EN to enter it; {reset_hint}; and keep \
         the default --baud while connecting (the ROM starts at 115200)",
        port,
        describe(error)
    ))
}

/// A write that stopped part-way: the image is not whole on the board.
fn write_failure(job: &Job, progress: &Progress, error: &espflash::Error) -> FlashError {
    let cause = describe(error);
    match progress.interrupted() {
        Some((start, reached, end)) => FlashError::infrastructure(format!(
            "the flash is incomplete: {} was written from 0x{start:08x} up to 0x{reached:08x} of \
             0x{end:08x} when the board stopped answering ({cause}); it will not boot it — check \
             the cable and flash again",
            job.image.display(),
        )),
        None => FlashError::infrastructure(format!(
            "flashing {} failed before writing: {cause}",
            job.image.display(),
        )),
    }
}

/// An espflash error with its causes, on one line.
fn describe(error: &espflash::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        let cause_text = cause.to_string();
        // Wrappers often repeat their cause's words.
        if !text.contains(&cause_text) {
            text.push_str(": ");
            text.push_str(&cause_text);
        }
        source = cause.source();
    }
    text
}
