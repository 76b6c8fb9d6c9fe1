//! `hil flash`: write a firmware image to a board and see it boot.

use std::path::PathBuf;
use std::time::Duration;

use hil::board::profile::Profile;
use hil::config::BenchConfig;
use hil::exit::Exit;
use hil::flash::{self, FlashPort, Job, Output, Progress, ResetMode};
use hil::image::Chip;
use hil::port::PortName;

use super::Failure;

/// Write a firmware image to a board over its serial port, then see it boot.
///
/// IMAGE is an ESP app image (.bin; checked as the chip's ROM would: magic, chip id,
/// checksum, hash), an ESP-IDF ELF (ESP32 family: bootloader, partition table and app),
/// or raw data (needs --address). Regions whose flash already holds the same bytes (by
/// MD5) are skipped; written regions are verified by MD5. Then hil resets the board,
/// waits for the firmware's `HIL boot … version=X` line and prints `booted version X`.
///
/// Reset lines: a board profile's DTR/RTS sequences (--board, or --profile with --port);
/// for a virtual chip (hil sim --pty --link PORT) its control socket PORT.ctl; else
/// espflash's DTR/RTS sequences (the auto-reset circuit of dev boards). A remote port
/// (rfc2217://HOST:PORT, e.g. ser2net) gets its DTR/RTS as RFC 2217 commands, by default
/// the classic auto-reset sequences.
///
/// The port is locked while flashing: another hil (a monitor, a run) waits up to
/// --lock-timeout, and then names the holder. A board that is a labgrid place
/// (`labgrid =` in hil.toml) is reserved and acquired through --labgrid-coordinator
/// first, waiting as long for another holder, and released when done.
///
/// Exit codes: 2 for a wrong image, address or chip (nothing written); 3 for port,
/// board or cable trouble.
///
/// Examples:
///   hil flash light-controller.bin --port /dev/ttyUSB0
///   hil flash firmware.elf --port /dev/ttyACM0 --chip esp32c3
///   hil flash light-controller.bin --port rfc2217://bench-host:4000
///   hil flash --board bench1                      # the firmware hil.toml names for it
///   hil flash fixtures/images/light-controller-esp8266.bin --port /tmp/e8 --no-skip
#[derive(Debug, clap::Args)]
#[command(verbatim_doc_comment)]
pub struct Args {
    /// The image: .bin, ELF, or raw data with --address. With --board, default the
    /// board's `firmware` in the bench config.
    #[arg(required_unless_present = "board")]
    image: Option<PathBuf>,
    /// The serial port: a device such as /dev/ttyUSB0, a virtual chip's --link path, or
    /// rfc2217://HOST:PORT (a port served over the network, e.g. by ser2net).
    #[arg(
        long,
        value_name = "PORT",
        value_parser = PortName::parse,
        required_unless_present = "board",
        conflicts_with = "board"
    )]
    port: Option<PortName>,
    /// A board of the bench config (hil.toml), instead of --port.
    #[arg(long, value_name = "NAME")]
    board: Option<String>,
    /// With --port: the board profile whose reset and boot-mode sequences to use.
    #[arg(long, value_name = "NAME", requires = "port")]
    profile: Option<String>,
    /// How long to wait for a port that another hil holds.
    #[arg(long, value_name = "DURATION", default_value = "10s", value_parser = humantime::parse_duration)]
    lock_timeout: Duration,
    /// The bench config for --board (default: hil.toml in the working directory).
    #[arg(long, value_name = "FILE")]
    config: Option<PathBuf>,
    /// The chip; `auto` asks the board.
    #[arg(long, value_enum, default_value = "auto")]
    chip: ChipArg,
    /// Where to write (hex 0x… or decimal); default the chip's app offset (0x0 on the
    /// ESP8266, 0x10000 on the ESP32 family).
    #[arg(long, value_name = "ADDR", value_parser = parse_address)]
    address: Option<u32>,
    /// Write even what the flash already holds.
    #[arg(long)]
    no_skip: bool,
    /// Do not compare the flash's MD5 with the image after writing.
    #[arg(long)]
    no_verify: bool,
    /// Reset the board into its serial loader first, or expect it there.
    #[arg(long, value_enum, default_value = "reset")]
    before: ResetArg,
    /// Reset the board into the new firmware and wait for its boot line, or leave it.
    #[arg(long, value_enum, default_value = "reset")]
    after: ResetArg,
    /// Baud rate for the transfer (ESP32 family); connecting is always at 115200.
    #[arg(long, default_value_t = 115_200)]
    baud: u32,
    #[command(flatten)]
    labgrid: super::labgrid_cmd::LabgridArgs,
    /// How long to wait for the boot line after the reset.
    #[arg(long, value_name = "DURATION", default_value = "10s", value_parser = humantime::parse_duration)]
    boot_timeout: Duration,
}

#[derive(Debug, Clone, Copy, clap::ValueEnum)]
enum ChipArg {
    Auto,
    Esp8266,
    Esp32,
    Esp32c3,
}

impl ChipArg {
    fn chip(self) -> Option<Chip> {
        match self {
            ChipArg::Auto => None,
            ChipArg::Esp8266 => Some(Chip::Esp8266),
            ChipArg::Esp32 => Some(Chip::Esp32),
            ChipArg::Esp32c3 => Some(Chip::Esp32c3),
        }
    }
}

#[derive(Debug, Clone, Copy, clap::ValueEnum)]
enum ResetArg {
    Reset,
    NoReset,
}

impl From<ResetArg> for ResetMode {
    fn from(arg: ResetArg) -> ResetMode {
        match arg {
            ResetArg::Reset => ResetMode::Reset,
            ResetArg::NoReset => ResetMode::NoReset,
        }
    }
}

fn parse_address(text: &str) -> Result<u32, String> {
    let parsed = match text.strip_prefix("0x").or_else(|| text.strip_prefix("0X")) {
        Some(hex) => u32::from_str_radix(hex, 16),
        None => text.parse(),
    };
    parsed.map_err(|_| format!("{text:?} is not an address: write 0x10000 or 65536"))
}

/// Where to flash what: from --port (and --profile), or from a board of the bench config.
struct Target {
    port: PortName,
    profile: Option<Profile>,
    control: Option<PathBuf>,
    address: Option<u32>,
    image: PathBuf,
    /// The labgrid place the board is on, held until the flash is done.
    _place: Option<hil::labgrid::HeldPlace>,
}

fn target(args: &Args) -> Result<Target, Failure> {
    let usage = |e: String| Failure::new(Exit::Usage, e);
    match (&args.port, &args.board) {
        (Some(port), _) => Ok(Target {
            port: port.clone(),
            profile: args
                .profile
                .as_deref()
                .map(|name| Profile::find(name, None))
                .transpose()
                .map_err(|e| usage(e.to_string()))?,
            control: None,
            address: args.address,
            _place: None,
            image: args
                .image
                .clone()
                .ok_or_else(|| usage("name the IMAGE to flash".into()))?,
        }),
        (None, Some(name)) => {
            let config =
                BenchConfig::load(args.config.as_deref()).map_err(|e| usage(e.to_string()))?;
            let bench = config.board(name).map_err(|e| usage(e.to_string()))?;
            let image = args
                .image
                .clone()
                .or_else(|| bench.firmware.clone())
                .ok_or_else(|| {
                    usage(format!(
                        "name the IMAGE to flash, or set `firmware` for board {name} in {}",
                        config.path.display()
                    ))
                })?;
            // Last: every mistake of the command line is told before a place is taken.
            let (bench, place) = args.labgrid.take(bench, args.lock_timeout)?;
            Ok(Target {
                port: hil::board::serial::resolve_port(&bench)
                    .map_err(|e| Failure::new(Exit::Infrastructure, e))?,
                profile: Some(bench.profile.clone()),
                control: bench.control.clone(),
                address: args.address.or(Some(bench.address)),
                image,
                _place: place,
            })
        }
        (None, None) => Err(usage("give --port or --board".into())),
    }
}

pub fn run(args: Args) -> Result<Exit, Failure> {
    let target = target(&args)?;
    let exit_for = |error: &flash::FlashError| {
        if error.is_input() {
            Exit::Usage
        } else {
            Exit::Infrastructure
        }
    };
    let job = Job {
        image: target.image.clone(),
        // The board's profile knows its chip: an image for another is refused unwritten.
        chip: args
            .chip
            .chip()
            .or(target.profile.as_ref().and_then(|profile| profile.chip)),
        address: target.address,
        skip_unchanged: !args.no_skip,
        verify: !args.no_verify,
        before: args.before.into(),
        after: args.after.into(),
        baud: args.baud,
        boot_deadline: args.boot_timeout,
    };
    let port = FlashPort::open(
        &target.port,
        target.profile.as_ref(),
        target.control.as_deref(),
        args.lock_timeout,
    )
    .map_err(|error| Failure::new(exit_for(&error), error))?;
    let mut progress = Progress::new(Output::for_stderr());
    let flashed = flash::flash(&job, &port, &mut progress)
        .map_err(|error| Failure::new(exit_for(&error), error))?;
    match flashed.booted_version {
        Some(version) => println!("booted version {version}"),
        None => eprintln!(
            "{} flashed; left as it is (--after no-reset)",
            flashed.chip.name()
        ),
    }
    Ok(Exit::Success)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_are_hex_or_decimal() {
        assert_eq!(parse_address("0x10000"), Ok(0x10000));
        assert_eq!(parse_address("65536"), Ok(0x10000));
        assert!(parse_address("0xZZ")
            .unwrap_err()
            .contains("not an address"));
    }
}
