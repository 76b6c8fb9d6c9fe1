//! What the board commands share for boards that are labgrid places: the coordinator
//! flag, taking the place, and the hidden keeper that gives it back.

use std::time::Duration;

use hil::config::BenchBoard;
use hil::exit::Exit;
use hil::labgrid::{self, HeldPlace, DEFAULT_COORDINATOR};

use super::Failure;

#[derive(Debug, Clone, clap::Args)]
pub struct LabgridArgs {
    /// The labgrid coordinator, for bench boards that are labgrid places (`labgrid =`
    /// in hil.toml).
    #[arg(
        long = "labgrid-coordinator",
        value_name = "HOST:PORT",
        env = "LG_COORDINATOR",
        default_value = DEFAULT_COORDINATOR
    )]
    pub coordinator: String,
}

impl LabgridArgs {
    /// `bench` ready to open; a labgrid place's board reserved and acquired, held for as
    /// long as the returned place lives. What it waits for is said on stderr. Blocks.
    pub fn take(
        &self,
        bench: &BenchBoard,
        lock_timeout: Duration,
    ) -> Result<(BenchBoard, Option<HeldPlace>), Failure> {
        labgrid::take_board(bench, &self.coordinator, lock_timeout, &mut |notice| {
            eprintln!("hil: {notice}")
        })
        .map_err(|e| Failure::new(Exit::Infrastructure, format!("board {}: {e}", bench.name)))
    }

    /// [`LabgridArgs::take`] off the async runtime's thread.
    pub async fn take_async(
        &self,
        bench: &BenchBoard,
        lock_timeout: Duration,
    ) -> Result<(BenchBoard, Option<HeldPlace>), Failure> {
        let (args, bench) = (self.clone(), bench.clone());
        tokio::task::spawn_blocking(move || args.take(&bench, lock_timeout))
            .await
            .map_err(|e| Failure::new(Exit::Infrastructure, format!("labgrid: {e}")))?
    }
}

/// Internal: gives back a labgrid reservation (and its place) once the `hil` holding it
/// closes this command's stdin, by exiting in any way.
#[derive(Debug, clap::Args)]
pub struct KeeperArgs {
    #[arg(long)]
    coordinator: String,
    token: String,
}

pub fn keeper(args: &KeeperArgs) -> Exit {
    let given_back = labgrid::Client::find(&args.coordinator)
        .map_err(|e| e.to_string())
        .and_then(|client| labgrid::keeper::serve(&client, &args.token));
    match given_back {
        Ok(()) => Exit::Success,
        Err(left) => {
            eprintln!("hil: labgrid: {left}");
            Exit::Infrastructure
        }
    }
}
