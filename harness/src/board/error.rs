//! What can go wrong with a board, told apart so that the runner and the exit code can
//! say whether the port is busy, the board is silent or the profile cannot do a step.

use std::path::PathBuf;

use crate::port::{PortError, PortName};

#[derive(Debug, thiserror::Error)]
pub enum BoardError {
    /// Taking the port failed: held by another process, or its remote end failed.
    #[error(transparent)]
    Port(#[from] PortError),
    #[error("board {board}: {source}")]
    CannotListPorts {
        board: String,
        source: crate::port::ListError,
    },
    #[error("board {board}: port = \"auto\" found no port with a USB id of profile {profile} ({usb}). {available}")]
    NoAutoPort {
        board: String,
        profile: String,
        usb: String,
        available: String,
    },
    /// A port that is not there or not ours, with the ports that are.
    #[error("cannot open serial port {port}: {source}. {available}")]
    CannotOpen {
        port: PortName,
        source: serialport::Error,
        available: String,
    },
    #[error("board {board}: writing to {port}: {source}")]
    Write {
        board: String,
        port: PortName,
        source: std::io::Error,
    },
    #[error("board {board} on {port} did not print {what} within {within}; check the port, the baud rate ({baud}) and that the firmware is flashed")]
    Silent {
        board: String,
        port: PortName,
        what: &'static str,
        within: String,
        baud: u32,
    },
    #[error("board {board} refused the settings: {line}")]
    Refused { board: String, line: String },
    /// The board's profile cannot do what was asked: a step that needs the simulated
    /// board, or a profile that needs a bench board.
    #[error("board {board}: {reason}")]
    WrongProfile { board: String, reason: String },
    #[error("board {board}: resetting it on {port}: {source}")]
    Reset {
        board: String,
        port: PortName,
        #[source]
        source: super::reset::ResetError,
    },
    /// The simulated or sketch board's task is gone.
    #[error("the {0} board stopped")]
    Stopped(&'static str),
    #[error("board {board}: the sketch board {} {reason}", program.display())]
    SketchEnded {
        board: String,
        program: PathBuf,
        reason: String,
    },
    #[error("board {board}: the sketch board {} did not finish setup() within {within}", program.display())]
    SketchSilent {
        board: String,
        program: PathBuf,
        within: String,
    },
    #[error("board {board}: {reason}")]
    SketchStart { board: String, reason: String },
    /// The harness's own machinery (a thread, a blocking task) failed.
    #[error("board {board}: {reason}")]
    Harness { board: String, reason: String },
    /// The board's labgrid place, or its power switch, failed it.
    #[error("board {board}: {source}")]
    Labgrid {
        board: String,
        source: crate::labgrid::LabgridError,
    },
}

impl BoardError {
    /// A stable name for the kind of failure, for machine-readable reports.
    pub fn kind(&self) -> &'static str {
        match self {
            BoardError::Port(port) => port.kind(),
            BoardError::CannotListPorts { .. }
            | BoardError::NoAutoPort { .. }
            | BoardError::CannotOpen { .. } => "port_not_found",
            BoardError::Write { .. } => "port_io",
            BoardError::Reset { source, .. } => source.kind(),
            BoardError::Silent { .. } | BoardError::SketchSilent { .. } => "board_silent",
            BoardError::Refused { .. } => "settings_refused",
            BoardError::WrongProfile { .. } => "wrong_profile",
            BoardError::Stopped(_) | BoardError::SketchEnded { .. } => "board_stopped",
            BoardError::SketchStart { .. } => "sketch_start",
            BoardError::Harness { .. } => "harness",
            BoardError::Labgrid { .. } => "labgrid",
        }
    }
}
