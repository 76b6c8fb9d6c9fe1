//! Boards under test. A scenario's board steps go through [`Board`]; what a board does
//! (serial lines, relay changes) goes into the trace, where expectations read it.

pub mod profile;
pub mod serial;
pub mod sim;
pub mod sketch;

use std::net::SocketAddr;
use std::time::Duration;

use crate::broker::Credentials;
use crate::config::BenchBoard;
use crate::namespace::Namespace;
use crate::scenario::BoardSpec;
use crate::trace::Trace;

pub use serial::SerialBoard;
pub use sim::SimBoard;
pub use sketch::{Simulator, SketchBoard};

/// Where and how a scenario's board role is played.
pub struct BoardSetup<'a> {
    pub name: &'a str,
    pub client_id: &'a str,
    pub spec: &'a BoardSpec,
    pub broker: SocketAddr,
    pub trace: Trace,
    pub seed: u64,
    /// The bench board mapped to this role (`hil run --board ROLE=BENCH_BOARD`).
    pub bench: Option<&'a BenchBoard>,
    /// How long to wait for a bench board another process holds.
    pub lock_timeout: Duration,
    /// On a shared broker: the prefixes of this scenario's topics and client ids.
    pub namespace: Option<&'a Namespace>,
    pub credentials: Option<&'a Credentials>,
    /// What plays a board of profile `sim` (`sim-sketch` is always the sketch).
    pub simulator: Simulator,
}

/// A board a scenario drives.
pub enum Board {
    /// The light-controller firmware core running on the host.
    Sim(SimBoard),
    /// A board on a serial port, driven through its profile.
    Serial(Box<SerialBoard>),
    /// The Arduino sketch on the host Arduino core, in a child process.
    Sketch(SketchBoard),
}

impl Board {
    /// Powers the board on (or resets it); it boots and connects by itself.
    pub async fn start(setup: BoardSetup<'_>) -> Result<Board, String> {
        // What the board sends on the wire: with a namespace, prefixed client id and topic.
        let (client_id, topic) = match setup.namespace {
            Some(namespace) => (
                namespace.client_id(setup.client_id),
                Some(
                    namespace.topic(
                        setup
                            .spec
                            .topic
                            .as_deref()
                            .unwrap_or(hil_firmware::DEFAULT_TOPIC),
                    ),
                ),
            ),
            None => (setup.client_id.to_string(), setup.spec.topic.clone()),
        };
        if let Some(bench) = setup.bench {
            return SerialBoard::start(serial::SerialSetup {
                name: setup.name,
                client_id: &client_id,
                topic: topic.as_deref(),
                debounce: setup.spec.debounce,
                bench,
                broker: setup.broker,
                trace: setup.trace,
                lock_timeout: setup.lock_timeout,
            })
            .await
            .map(|board| Board::Serial(Box::new(board)));
        }
        match setup.spec.profile.as_str() {
            profile::SIM | profile::SIM_SKETCH => {
                let sim_setup = sim::SimSetup {
                name: setup.name.to_string(),
                client_id,
                topic,
                credentials: setup.credentials.cloned(),
                debounce: setup.spec.debounce,
                version: setup.spec.version.clone(),
                broker: setup.broker,
                trace: setup.trace,
                seed: setup.seed,
                storage: None,
                };
                if setup.spec.profile == profile::SIM_SKETCH || setup.simulator == Simulator::Sketch {
                    SketchBoard::start(sim_setup, sketch::program()).await.map(Board::Sketch)
                } else {
                    Ok(Board::Sim(SimBoard::start(sim_setup)))
                }
            }
            other => Err(format!(
                "board {}: profile {other:?} needs a bench board; map it with `hil run --board {}=BENCH_BOARD`, or use `profile: sim` or `profile: sim-sketch`",
                setup.name, setup.name
            )),
        }
    }

    /// How this board's serial lines read (boot line, relay, state).
    pub fn patterns(&self) -> profile::Patterns {
        match self {
            Board::Sim(_) | Board::Sketch(_) => profile::Patterns::light_controller().clone(),
            Board::Serial(board) => board.patterns().clone(),
        }
    }

    /// A press of the wall switch, with `bounce` extra contact edges.
    pub async fn press(&mut self, bounce: u32) -> Result<(), String> {
        match self {
            Board::Sim(board) => board.send(sim::Command::Press { bounce }).await,
            Board::Sketch(board) => board.send(sim::Command::Press { bounce }).await,
            Board::Serial(board) => board.press(bounce).await,
        }
    }

    /// Types a line on the serial console.
    pub async fn send_serial(&mut self, line: &str) -> Result<(), String> {
        match self {
            Board::Sim(board) => board.send(sim::Command::Serial(line.to_string())).await,
            Board::Sketch(board) => board.send(sim::Command::Serial(line.to_string())).await,
            Board::Serial(board) => board.send_serial(line).await,
        }
    }

    pub async fn reset(&mut self) -> Result<(), String> {
        match self {
            Board::Sim(board) => board.send(sim::Command::Reset).await,
            Board::Sketch(board) => board.send(sim::Command::Reset).await,
            Board::Serial(board) => board.reset().await,
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
            Board::Sketch(board) => {
                board.send(sim::Command::PowerOff).await?;
                tokio::time::sleep(off_for).await;
                board.send(sim::Command::PowerOn).await
            }
            Board::Serial(board) => board.power_cycle(off_for).await,
        }
    }

    pub async fn wifi(&mut self, up: bool) -> Result<(), String> {
        match self {
            Board::Sim(board) => board.send(sim::Command::Wifi { up }).await,
            Board::Sketch(board) => board.send(sim::Command::Wifi { up }).await,
            Board::Serial(board) => board.wifi(up).await,
        }
    }

    /// Random bytes on the serial console input, as from a noisy line.
    pub async fn serial_noise(&mut self, bytes: &[u8]) -> Result<(), String> {
        match self {
            Board::Sim(board) => {
                // The console reads lines: the noise arrives as the lines it contains.
                let text = String::from_utf8_lossy(bytes);
                for line in text.lines() {
                    board.send(sim::Command::Serial(line.to_string())).await?;
                }
                Ok(())
            }
            Board::Sketch(board) => board.send_bytes(bytes).await,
            Board::Serial(board) => board.write_raw(bytes).await,
        }
    }

    pub async fn stop(self) {
        match self {
            Board::Sim(board) => board.stop().await,
            Board::Serial(board) => board.stop().await,
            Board::Sketch(board) => board.stop().await,
        }
    }
}
