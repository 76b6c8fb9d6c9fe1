//! The narrow interface between a step and the running scenario. The runner implements
//! [`Scene`] over its broker, clients, boards and trace; unit tests implement it with a
//! fake. A step sees nothing else of the world.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use tokio::time::Instant;

use super::Step;
use crate::board::{Board, BoardError};
use crate::tap::Faults;
use crate::trace::{Cursor, Event, EventBody};

/// Why a step did not complete.
#[derive(Debug, thiserror::Error)]
pub enum StepError {
    /// The device did not do what the step expects: a verdict about the device.
    #[error("{}", .0.observed)]
    Failed(Box<Mismatch>),
    /// The harness could not drive a board: its port, its profile, the board itself.
    #[error(transparent)]
    Board(#[from] BoardError),
    /// The broker could not do what the step asks (restart).
    #[error(transparent)]
    Broker(Box<dyn std::error::Error + Send + Sync>),
    /// A harness client could not do what the step asks.
    #[error(transparent)]
    Client(#[from] ClientError),
    /// The scenario names a board the run does not have.
    #[error("no board named {0}")]
    NoBoard(String),
    /// The step's own fields do not make sense (validation lets none such through).
    #[error("{0}")]
    Invalid(String),
    /// The scenario recorded more events than a trace keeps in memory.
    #[error("the scenario recorded {not_kept} events more than the {kept} a trace keeps in memory (all are in its trace file with --out); expectations could not see them")]
    TraceFull { not_kept: u64, kept: usize },
    #[error("the harness panicked: {0}")]
    Panicked(String),
    /// Ctrl-C or SIGTERM.
    #[error("interrupted")]
    Interrupted,
}

/// Why a harness client could not do what a step asks.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("no client named {0}")]
    Unknown(String),
    #[error("client {client} did not connect and subscribe within {seconds}s")]
    NotSubscribed { client: String, seconds: u64 },
    #[error("{0}")]
    Publish(String),
}

/// What a failed step expected and what it saw instead; the runner adds where the step is.
#[derive(Debug, Clone, PartialEq)]
pub struct Mismatch {
    pub expected: String,
    pub observed: String,
    /// What came close, each saying what was different.
    pub near_misses: Vec<String>,
}

impl StepError {
    /// For an error of the harness (not a verdict about the device, not an interrupt):
    /// a stable name for its kind, for machine-readable reports.
    pub fn error_kind(&self) -> Option<&'static str> {
        match self {
            StepError::Failed(_) | StepError::Interrupted => None,
            StepError::Board(board) => Some(board.kind()),
            StepError::Broker(_) => Some("broker"),
            StepError::Client(_) => Some("client"),
            StepError::NoBoard(_) | StepError::Invalid(_) => Some("scenario"),
            StepError::TraceFull { .. } => Some("trace_full"),
            StepError::Panicked(_) => Some("panic"),
        }
    }

    pub fn failed(expected: impl Into<String>, observed: impl Into<String>) -> StepError {
        StepError::with_near_misses(expected, observed, Vec::new())
    }

    pub fn with_near_misses(
        expected: impl Into<String>,
        observed: impl Into<String>,
        near_misses: Vec<String>,
    ) -> StepError {
        StepError::Failed(Box::new(Mismatch {
            expected: expected.into(),
            observed: observed.into(),
            near_misses,
        }))
    }
}

/// Where an expectation starts looking.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Window {
    /// Everything since the last stimulus began: what it caused, even before the
    /// expectation started waiting.
    SinceStimulus,
    /// The whole trace, for states such as "connected" or "relay on".
    WholeTrace,
    /// Only what happens from now on.
    FromNow,
}

/// The running scenario, as a step sees it.
pub trait Scene: Send {
    /// Publishes as a harness client; a client that is not connected fails the step.
    fn publish(
        &mut self,
        client: &str,
        topic: &str,
        payload: Bytes,
        qos: u8,
        retain: bool,
    ) -> impl Future<Output = Result<(), StepError>> + Send;

    /// Connects a harness client and waits until it is subscribed (at once when it is).
    fn connect(&mut self, client: &str) -> impl Future<Output = Result<(), StepError>> + Send;

    /// Disconnects a harness client cleanly; false when it was not connected.
    fn disconnect(&mut self, client: &str) -> impl Future<Output = bool> + Send;

    /// Runs the steps of a block (a `repeat` pass), numbered inside it.
    fn run_block<'s>(
        &'s mut self,
        steps: &'s [Step],
    ) -> Pin<Box<dyn Future<Output = Result<(), StepError>> + Send + 's>>;

    /// A board of the scenario.
    fn board(&mut self, name: &str) -> Result<&mut dyn Board, StepError>;

    /// Whether `actor` is one of the scenario's boards (rather than a harness client).
    fn is_board(&self, actor: &str) -> bool;

    /// The MQTT client id an actor (client or board) appears under in the trace.
    fn client_id(&self, actor: &str) -> String;

    /// The broker's fault table, keyed by client id.
    fn faults(&self) -> &Faults;

    /// From now on the broker refuses subscriptions that `filter` covers.
    fn deny_subscribe(&mut self, filter: &str) -> Result<(), StepError>;

    /// Restarts the broker: everything it knows is lost; connections are refused for
    /// `down_for`.
    fn restart_broker(
        &mut self,
        down_for: Duration,
    ) -> impl Future<Output = Result<(), StepError>> + Send;

    /// Now, on the trace's clock (microseconds).
    fn now_us(&self) -> u64;

    /// Records an event now.
    fn record(&self, body: EventBody);

    /// Records an event at `at` (a fault's end), unless the scenario is over by then.
    fn record_at(&mut self, at: Instant, body: EventBody);

    /// Starts watching the trace from the start of `window`.
    fn watch(&self, window: Window) -> Watch;

    /// Counts a pause the step made (for the harness-overhead figure).
    fn paused(&mut self, duration: Duration);

    /// A number for the step's own random choices: the scenario's seed and the step's
    /// place, so a seed replays the same choices.
    fn step_seed(&self) -> u64;
}

/// Events of the trace from a window's start on, each looked at once however long a
/// wait lasts: a wait over many unrelated events costs time linear in their number.
pub struct Watch {
    cursor: Cursor,
    seen: Vec<Arc<Event>>,
    /// How many of `seen` have been given to a `see` function.
    looked_at: usize,
    origin_us: u64,
}

impl Watch {
    /// Watching from `cursor` on; `origin_us` is when the window began.
    pub fn new(cursor: Cursor, origin_us: u64) -> Watch {
        Watch {
            cursor,
            seen: Vec::new(),
            looked_at: 0,
            origin_us,
        }
    }

    /// Gives each event not yet looked at to `see`, in order, waiting for new ones until
    /// `see` returns true (then true) or `within` has passed (then false). Events after the
    /// one that satisfied `see` wait for the next call.
    pub async fn until(&mut self, within: Duration, mut see: impl FnMut(&Event) -> bool) -> bool {
        let deadline = Instant::now() + within;
        loop {
            while let Some(event) = self.seen.get(self.looked_at) {
                self.looked_at += 1;
                if see(event) {
                    return true;
                }
            }
            match self.cursor.next_before(deadline).await {
                Some(event) => self.seen.push(event),
                None => return false,
            }
        }
    }

    /// For states ("connected", "relay on"): gives `see` every batch of events as they
    /// arrive (the first batch is all already recorded, possibly none) and takes its
    /// answer, whether the state holds after that batch, only once caught up with the
    /// trace, so a state that held and then ended is not taken for the present one.
    pub async fn until_settled(
        &mut self,
        within: Duration,
        mut see: impl FnMut(&[Arc<Event>]) -> bool,
    ) -> bool {
        let deadline = Instant::now() + within;
        loop {
            self.seen.extend(self.cursor.drain());
            let batch = self.looked_at..self.seen.len();
            self.looked_at = self.seen.len();
            if see(&self.seen[batch]) {
                return true;
            }
            match self.cursor.next_before(deadline).await {
                Some(event) => self.seen.push(event),
                None => return false,
            }
        }
    }

    /// Every event watched so far, for a failure's story.
    pub fn seen(&self) -> &[Arc<Event>] {
        &self.seen
    }

    /// When the window began, on the trace's clock.
    pub fn origin_us(&self) -> u64 {
        self.origin_us
    }
}
