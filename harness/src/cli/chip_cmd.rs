//! `hil sim --pty`: one virtual ESP chip on a pseudo-terminal.

use std::net::SocketAddr;
use std::path::PathBuf;

use hil::chip::{ChipOptions, Ended, VirtualChip};
use hil::exit::Exit;
use hil::image::Chip;

use super::{stop_signal, Failure};

/// The options of `hil sim` that make it a virtual chip on a pty.
#[derive(Debug, clap::Args)]
pub struct PtyArgs {
    /// Be one virtual ESP chip on a pseudo-terminal: print its path (/dev/pts/N) as the
    /// first line on stdout and answer the ROM serial loader there (esptool, espflash,
    /// hil flash); boot what is flashed and run the light-controller firmware.
    #[arg(long, requires = "chip", conflicts_with_all = ["count", "shared_topic", "library"])]
    pub pty: bool,
    /// The chip to be.
    #[arg(long, value_enum, requires = "pty")]
    pub chip: Option<VirtualChipArg>,
    /// The flash contents (4 MiB, created erased when missing); default: a temporary file.
    #[arg(long, value_name = "FILE", requires = "pty")]
    pub flash_file: Option<PathBuf>,
    /// Also make PATH a symlink to the pty, with the control socket at PATH.ctl (without
    /// it the socket is in a temporary directory, its path printed on stderr).
    #[arg(long, value_name = "PATH", requires = "pty")]
    pub link: Option<PathBuf>,
    /// Pull the cable when FLASH_DATA block N+1 arrives (N blocks written): a
    /// deterministic interrupted flash, for tests.
    #[arg(long, value_name = "N", requires = "pty")]
    pub unplug_after_blocks: Option<u32>,
}

#[derive(Debug, Clone, Copy, clap::ValueEnum)]
pub enum VirtualChipArg {
    Esp8266,
    Esp32c3,
}

impl From<VirtualChipArg> for Chip {
    fn from(chip: VirtualChipArg) -> Chip {
        match chip {
            VirtualChipArg::Esp8266 => Chip::Esp8266,
            VirtualChipArg::Esp32c3 => Chip::Esp32c3,
        }
    }
}

pub async fn run(args: PtyArgs, broker: Option<SocketAddr>, sketch: bool) -> Result<Exit, Failure> {
    let chip = args
        .chip
        .ok_or_else(|| Failure::new(Exit::Usage, "--pty needs --chip esp8266 or esp32c3"))?;
    let virtual_chip = VirtualChip::create(ChipOptions {
        chip: chip.into(),
        flash_file: args.flash_file,
        broker,
        link: args.link.clone(),
        unplug_after_blocks: args.unplug_after_blocks,
        firmware: if sketch {
            std::sync::Arc::new(hil::board::sketch::SketchOnChip)
        } else {
            std::sync::Arc::new(hil::board::sim::CoreOnChip)
        },
    })
    .map_err(|e| Failure::new(Exit::Infrastructure, e))?;
    // Watching before the path is out: whoever reads it may signal at once.
    let signal = stop_signal();
    let stop = async {
        if signal.await.is_err() {
            // Signals keep their default action, which ends the process.
            std::future::pending::<()>().await;
        }
    };
    println!("{}", virtual_chip.pty_path().display());
    if let Some(link) = &args.link {
        eprintln!(
            "hil sim: {} -> {}",
            link.display(),
            virtual_chip.pty_path().display()
        );
    }
    eprintln!(
        "hil sim: control socket {} (reset, bootloader, hold, unplug); flash {}",
        virtual_chip.control_path().display(),
        virtual_chip.flash_path().display()
    );
    let ended = virtual_chip
        .run(stop)
        .await
        .map_err(|e| Failure::new(Exit::Infrastructure, e))?;
    Ok(match ended {
        Ended::Unplugged => {
            eprintln!("hil sim: unplugged");
            Exit::Success
        }
        Ended::Stopped => Exit::Interrupted,
    })
}
