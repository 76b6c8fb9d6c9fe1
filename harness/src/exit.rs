//! Exit codes shared by every `hil` command (documented in README.md).

use std::process::ExitCode;

/// How a command ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Exit {
    /// Everything passed.
    Success,
    /// A test or scenario failed.
    Failed,
    /// Bad usage or an invalid input file.
    Usage,
    /// The harness could not do its job: port, board, broker, serial, disk.
    Infrastructure,
    /// Stopped by Ctrl-C (SIGINT).
    Interrupted,
}

impl Exit {
    pub fn code(self) -> u8 {
        match self {
            Exit::Success => 0,
            Exit::Failed => 1,
            Exit::Usage => 2,
            Exit::Infrastructure => 3,
            Exit::Interrupted => 130,
        }
    }
}

impl From<Exit> for ExitCode {
    fn from(exit: Exit) -> ExitCode {
        ExitCode::from(exit.code())
    }
}
