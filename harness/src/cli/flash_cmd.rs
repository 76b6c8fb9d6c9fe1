//! `hil flash`: write a firmware image to a board and see it boot.

use std::path::PathBuf;
use std::time::Duration;

use hil::exit::Exit;
use hil::flash::{self, Job, Output, Progress, ResetMode};
use hil::image::Chip;

use super::Failure;

/// Write a firmware image to a board over its serial port, then see it boot.
///
/// IMAGE is an ESP app image (.bin; checked as the chip's ROM would: magic, chip id,
/// checksum, hash), an ESP-IDF ELF (ESP32 family: bootloader, partition table and app),
/// or raw data (needs --address). Regions whose flash already holds the same bytes (by
/// MD5) are skipped; written regions are verified by MD5. Then hil resets the board,
/// waits for the firmware's `HIL boot … version=X` line and prints `booted version X`.
///
/// Reset lines: for a virtual chip (hil sim --pty --link PORT) hil uses its control
/// socket PORT.ctl; for a real board DTR/RTS (the auto-reset circuit of dev boards).
///
/// Exit codes: 2 for a wrong image, address or chip (nothing written); 3 for port,
/// board or cable trouble.
///
/// Examples:
///   hil flash light-controller.bin --port /dev/ttyUSB0
///   hil flash firmware.elf --port /dev/ttyACM0 --chip esp32c3
///   hil flash fixtures/images/light-controller-esp8266.bin --port /tmp/e8 --no-skip
#[derive(Debug, clap::Args)]
#[command(verbatim_doc_comment)]
pub struct Args {
    /// The image: .bin, ELF, or raw data with --address.
    image: PathBuf,
    /// The serial port, e.g. /dev/ttyUSB0, or a virtual chip's --link path.
    #[arg(
        long,
        value_name = "PORT",
        required_unless_present = "board",
        conflicts_with = "board"
    )]
    port: Option<PathBuf>,
    /// A board of the bench config (hil.toml), instead of --port.
    #[arg(long, value_name = "NAME")]
    board: Option<String>,
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

/// `--board NAME`: the port and flash address of a board of the bench config.
fn resolve_board(name: &str, config: Option<&std::path::Path>) -> Result<(PathBuf, u32), Failure> {
    let config =
        hil::config::BenchConfig::load(config).map_err(|e| Failure::new(Exit::Usage, e))?;
    let bench = config
        .board(name)
        .map_err(|e| Failure::new(Exit::Usage, e))?;
    let port = hil::board::serial::resolve_port(bench)
        .map_err(|e| Failure::new(Exit::Infrastructure, e))?;
    Ok((port, bench.address))
}

pub fn run(args: Args) -> Result<Exit, Failure> {
    let (port, address) = match (args.port, &args.board) {
        (Some(port), _) => (port, args.address),
        (None, Some(board)) => {
            let (port, address) = resolve_board(board, args.config.as_deref())?;
            (port, args.address.or(Some(address)))
        }
        (None, None) => return Err(Failure::new(Exit::Usage, "give --port or --board")),
    };
    let job = Job {
        image: args.image,
        port,
        chip: args.chip.chip(),
        address,
        skip_unchanged: !args.no_skip,
        verify: !args.no_verify,
        before: args.before.into(),
        after: args.after.into(),
        baud: args.baud,
        boot_deadline: args.boot_timeout,
    };
    let mut progress = Progress::new(Output::for_stderr());
    let flashed = flash::flash(&job, &mut progress).map_err(|error| {
        let exit = if error.is_input() {
            Exit::Usage
        } else {
            Exit::Infrastructure
        };
        Failure::new(exit, error)
    })?;
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
