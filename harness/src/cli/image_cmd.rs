//! `hil image`: generate reproducible test images and inspect images as a ROM would.

use std::path::PathBuf;

use hil::exit::Exit;
use hil::image::{self, Chip, Defect, ImageSpec};

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
    /// Break the image in exactly one way, for testing what must refuse it.
    #[arg(long, value_enum, conflicts_with = "elf")]
    defect: Option<DefectArg>,
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

#[derive(Debug, Clone, Copy, clap::ValueEnum)]
enum DefectArg {
    BadMagic,
    WrongChip,
    BadChecksum,
    Truncated,
    BadHash,
}

impl From<DefectArg> for Defect {
    fn from(defect: DefectArg) -> Defect {
        match defect {
            DefectArg::BadMagic => Defect::BadMagic,
            DefectArg::WrongChip => Defect::WrongChip,
            DefectArg::BadChecksum => Defect::BadChecksum,
            DefectArg::Truncated => Defect::Truncated,
            DefectArg::BadHash => Defect::BadHash,
        }
    }
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
            } else if let Some(defect) = args.defect.map(Defect::from) {
                image::generate_broken(&spec, defect).ok_or_else(|| {
                    Failure::new(
                        Exit::Usage,
                        format!(
                            "--defect {}: {} images carry no chip id or hash to break",
                            defect.name(),
                            spec.chip.name()
                        ),
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
