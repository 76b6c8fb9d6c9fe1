//! Boards under test. A scenario's board steps go through the [`Board`] trait; what a
//! board does (serial lines, relay changes) goes into the trace, where expectations read it.

mod error;
pub mod link;
pub mod profile;
pub mod reset;
pub mod serial;
pub mod sim;
pub mod sketch;

use std::future::Future;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::pin::Pin;
use std::time::Duration;

use crate::login::Credentials;
use crate::namespace::Namespace;
use crate::port::PortSpec;
use crate::scenario::BoardSpec;
use crate::trace::Trace;
use profile::Profile;

pub use error::BoardError;
pub use serial::SerialBoard;
pub use sim::SimBoard;
pub use sketch::{Simulator, SketchBoard};

/// One board on the bench, ready to open.
#[derive(Debug, Clone)]
pub struct BenchBoard {
    pub name: String,
    pub port: PortSpec,
    pub profile: Profile,
    pub firmware: Option<PathBuf>,
    pub address: u32,
    /// The control socket for a profile that resets through one (`control` sequences),
    /// when it is not beside the port (`PORT.ctl`): a remote port has no "beside".
    pub control: Option<PathBuf>,
    /// The labgrid place that holds it, once acquired.
    pub place: Option<crate::labgrid::PlaceRecord>,
    /// Its power switch, when its labgrid place has one.
    pub power: Option<crate::labgrid::Power>,
}

/// Where and how a scenario's board role is played.
pub struct BoardSetup<'a> {
    pub name: &'a str,
    pub client_id: &'a str,
    pub spec: &'a BoardSpec,
    pub broker: SocketAddr,
    /// How a simulated board's network reaches `broker`.
    pub network: link::Network,
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
    /// The core a board played by the core simulator runs.
    pub firmware: &'a hil_firmware::Firmware,
}

/// What a step's future resolves to.
pub type BoardFuture<'a> = Pin<Box<dyn Future<Output = Result<(), BoardError>> + Send + 'a>>;

/// What a scenario's steps ask of a board, whatever plays it: the simulated board, a
/// board on a serial port. What the board does in return (serial lines, relay changes)
/// goes into the trace, where expectations read it.
pub trait Board: Send + Sync {
    /// A press of the wall switch, with `bounce` extra contact edges.
    fn press(&mut self, bounce: u32) -> BoardFuture<'_>;

    /// Types a line on the serial console.
    fn send_serial<'a>(&'a mut self, line: &'a str) -> BoardFuture<'a>;

    /// Random bytes on the serial console input, as from a noisy line.
    fn serial_noise<'a>(&'a mut self, bytes: &'a [u8]) -> BoardFuture<'a>;

    /// RAM lost, stored configuration kept.
    fn reset(&mut self) -> BoardFuture<'_>;

    /// Power off, wait `off_for`, power on. Returns once power is back.
    fn power_cycle(&mut self, off_for: Duration) -> BoardFuture<'_>;

    /// The board's network link up or down.
    fn wifi(&mut self, up: bool) -> BoardFuture<'_>;

    /// The firmware version a serial line announces, when it is the boot line.
    fn boot_version(&self, line: &str) -> Option<String>;

    /// Shuts down cleanly: the board closes its MQTT session with DISCONNECT (so the
    /// broker holds back its will), then its power goes. Simulated boards only.
    fn leave(&mut self) -> BoardFuture<'_>;

    /// Powers the board off for good and lets go of what it holds (its port).
    fn stop(self: Box<Self>) -> Pin<Box<dyn Future<Output = ()> + Send>>;
}

/// Powers the board on (or resets it); it boots and connects by itself.
pub async fn start(setup: BoardSetup<'_>) -> Result<Box<dyn Board>, BoardError> {
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
        let board = SerialBoard::start(serial::SerialSetup {
            name: setup.name,
            client_id: &client_id,
            topic: topic.as_deref(),
            debounce: setup.spec.debounce,
            bench,
            broker: setup.broker,
            trace: setup.trace,
            lock_timeout: setup.lock_timeout,
        })
        .await?;
        return Ok(Box::new(board));
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
                network: setup.network,
                trace: setup.trace,
                seed: setup.seed,
                storage: None,
                firmware: setup.firmware.clone(),
            };
            if setup.spec.profile == profile::SIM_SKETCH || setup.simulator == Simulator::Sketch {
                let board = SketchBoard::start(sim_setup, sketch::program()).await?;
                Ok(Box::new(board))
            } else {
                Ok(Box::new(SimBoard::start(sim_setup)))
            }
        }
        other => Err(BoardError::WrongProfile {
            board: setup.name.to_string(),
            reason: format!(
                "profile {other:?} needs a bench board; map it with `hil run --board {}=BENCH_BOARD`, or use `profile: sim` or `profile: sim-sketch`",
                setup.name
            ),
        }),
    }
}
