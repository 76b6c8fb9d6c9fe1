//! Boards under test. A scenario's board steps go through [`Board`]; what a board does
//! (serial lines, relay changes) goes into the trace, where expectations read it.

pub mod profile;
mod sim;

use std::net::SocketAddr;
use std::time::Duration;

use crate::scenario::BoardSpec;
use crate::trace::Trace;

pub use sim::SimBoard;

/// A board a scenario drives.
pub enum Board {
    /// The light-controller firmware core running on the host.
    Sim(SimBoard),
}

impl Board {
    /// Powers the board on; it boots and connects by itself.
    pub async fn start(
        name: &str,
        client_id: &str,
        spec: &BoardSpec,
        broker: SocketAddr,
        trace: Trace,
        seed: u64,
    ) -> Result<Board, String> {
        match spec.profile.as_str() {
            "sim" => Ok(Board::Sim(SimBoard::start(sim::SimSetup {
                name: name.to_string(),
                client_id: client_id.to_string(),
                topic: spec.topic.clone(),
                debounce: spec.debounce,
                version: spec.version.clone(),
                broker,
                trace,
                seed,
            }))),
            other => Err(format!(
                "board {name}: profile {other:?} needs a bench board; map it with `hil run --board {name}=BENCH_BOARD`, or use `profile: sim`"
            )),
        }
    }

    /// A press of the wall switch, with `bounce` extra contact edges.
    pub async fn press(&mut self, bounce: u32) -> Result<(), String> {
        match self {
            Board::Sim(board) => board.send(sim::Command::Press { bounce }).await,
        }
    }

    /// Types a line on the serial console.
    pub async fn send_serial(&mut self, line: &str) -> Result<(), String> {
        match self {
            Board::Sim(board) => board.send(sim::Command::Serial(line.to_string())).await,
        }
    }

    pub async fn reset(&mut self) -> Result<(), String> {
        match self {
            Board::Sim(board) => board.send(sim::Command::Reset).await,
        }
    }

    /// Power off, wait `off_for`, power on. Returns once power is back.
    pub async fn power_cycle(&mut self, off_for: Duration) -> Result<(), String> {
        match self {
            Board::Sim(board) => {
                board.send(sim::Command::PowerOff).await?;
                tokio::time::sleep(off_for).await;
                board.send(sim::Command::PowerOn).await
            }
        }
    }

    pub async fn wifi(&mut self, up: bool) -> Result<(), String> {
        match self {
            Board::Sim(board) => board.send(sim::Command::Wifi { up }).await,
        }
    }

    pub async fn stop(self) {
        match self {
            Board::Sim(board) => board.stop().await,
        }
    }
}
