//! `hil image`: generate reproducible test images and inspect images as a ROM would.

use std::path::PathBuf;

use hil::exit::Exit;
use hil::image::{self, Chip, ImageSpec};

use super::Failure;

#[derive(Debug, clap::Subcommand)]
pub enum Command {
    /// Write a bootable-looking app image; the same options give the same bytes.
    ///
    /// Example:
    ///   hil image generate --chip esp32c3 --app-version 1.4.2 -o light-controller.bin
    #[command(verbatim_doc_comment)]
    Generate(GenerateArgs),
    /// Check an image as the chip's ROM would and print what it says about itself.
    ///
    /// Example:
    ///   hil image inspect light-controller.bin --chip esp32c3
    #[command(verbatim_doc_comment)]
    Inspect(InspectArgs),
}

#[derive(Debug, clap::Args)]
pub struct GenerateArgs {
    #[arg(long, value_enum)]
    chip: ChipArg,
    /// The version in the app descriptor (ESP32 family; ESP8266 images have none).
    #[arg(long, value_name = "VERSION")]
    app_version: String,
    #[arg(long, default_value = "light-controller")]
    project: String,
    /// Bytes of filler code.
    #[arg(long, default_value_t = 4096)]
    code_size: usize,
    /// Write an ESP-IDF-style app ELF instead (ESP32 family), for testing ELF flashing.
    #[arg(long)]
    elf: bool,
    #[arg(short, long, value_name = "FILE")]
    output: PathBuf,
}

#[derive(Debug, clap::Args)]
pub struct InspectArgs {
    image: PathBuf,
    #[arg(long, value_enum)]
    chip: ChipArg,
}

#[derive(Debug, Clone, Copy, clap::ValueEnum)]
enum ChipArg {
    Esp8266,
    Esp32,
    Esp32c3,
}

impl From<ChipArg> for Chip {
    fn from(chip: ChipArg) -> Chip {
        match chip {
            ChipArg::Esp8266 => Chip::Esp8266,
            ChipArg::Esp32 => Chip::Esp32,
            ChipArg::Esp32c3 => Chip::Esp32c3,
        }
    }
}

pub fn run(command: Command) -> Result<Exit, Failure> {
    match command {
        Command::Generate(args) => {
            let spec = ImageSpec {
                chip: args.chip.into(),
                project: &args.project,
                version: &args.app_version,
                code_len: args.code_size,
            };
            let bytes = if args.elf {
                image::elf::generate(&spec).ok_or_else(|| {
                    Failure::new(
                        Exit::Usage,
                        "--elf: ESP8266 firmware is flashed as a .bin, not an ELF",
                    )
                })?
            } else {
                image::generate(&spec)
            };
            std::fs::write(&args.output, &bytes).map_err(|e| {
                Failure::new(
                    Exit::Infrastructure,
                    format!("cannot write {}: {e}", args.output.display()),
                )
            })?;
            eprintln!("{}: {} bytes", args.output.display(), bytes.len());
            Ok(Exit::Success)
        }
        Command::Inspect(args) => {
            let bytes = std::fs::read(&args.image).map_err(|e| {
                Failure::new(
                    Exit::Usage,
                    format!("cannot read {}: {e}", args.image.display()),
                )
            })?;
            let info = image::inspect(&bytes, args.chip.into()).map_err(|e| {
                Failure::new(Exit::Failed, format!("{}: {e}", args.image.display()))
            })?;
            println!(
                "{}: valid {} image, {} segments, entry 0x{:08x}, {} bytes",
                args.image.display(),
                Chip::from(args.chip).name(),
                info.segments,
                info.entry,
                info.len
            );
            if let (Some(project), Some(version)) = (&info.project, &info.version) {
                println!("app {project} version {version}");
            }
            Ok(Exit::Success)
        }
    }
}
