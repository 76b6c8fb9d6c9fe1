//! One attempt at one scenario: its own broker, trace, clients and boards; the steps in
//! order; every wait bounded by its step's deadline and the scenario's timeout.

use std::collections::{BTreeMap, HashMap};
use std::net::IpAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::pin::Pin;

use futures_util::FutureExt;

use bytes::Bytes;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::client::{ClientSetup, HarnessClient};
use super::outcome::{Attempt, Failure, Status, StepRef};
use crate::board::{self, Board, BoardSetup};
use crate::broker::{Broker, BrokerConfig, BrokerError};
use crate::config::BenchBoard;
use crate::login::Credentials;
use crate::scenario::Scenario;
use crate::steps::{all_steps, ClientError, Role, Scene, Step, StepError, Watch, Window};
use crate::tap::{Faults, Protocol};
use crate::trace::{render_rows, Direction, Event, EventBody, Packet, Row, Trace, TraceOptions};

/// How long harness clients may take to connect and subscribe before step 1.
const SETUP_DEADLINE: Duration = Duration::from_secs(5);
/// Trace lines shown with a failure.
const TRACE_TAIL: usize = 20;

/// What an attempt needs besides the scenario.
#[derive(Debug, Clone)]
pub struct AttemptSetup {
    pub broker: BrokerConfig,
    pub seed: u64,
    /// Where this scenario's trace and serial logs go.
    pub out_dir: Option<PathBuf>,
    /// Also write `capture.pcap` into `out_dir`.
    pub pcap: bool,
    pub bench: Arc<BenchMapping>,
    /// What clients and boards log in with (an external broker that wants it).
    pub credentials: Option<Credentials>,
    /// Told the attempt's trace as soon as it starts, to follow it while it runs.
    pub observer: Option<TraceObserver>,
}

/// Something that follows an attempt's trace while it runs (`hil explore`'s invariants).
#[derive(Clone)]
pub struct TraceObserver(pub Arc<dyn Fn(&Trace) + Send + Sync>);

impl std::fmt::Debug for TraceObserver {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("TraceObserver")
    }
}

/// Board roles played by bench boards instead of the simulator.
#[derive(Debug, Clone, Default)]
pub struct BenchMapping {
    /// Scenario board role → the bench board that plays it.
    pub roles: BTreeMap<String, BenchBoard>,
    /// How long to wait for a bench board another process holds.
    pub lock_timeout: Duration,
    /// The address bench boards reach the run's brokers at (`hil run --advertise`);
    /// default the address the brokers listen on.
    pub broker_host: Option<IpAddr>,
    /// What plays the other boards of profile `sim` (`hil run --sim`).
    pub simulator: crate::board::Simulator,
    /// The core the core simulator runs (`hil run --firmware-lib`).
    pub firmware: hil_firmware::Firmware,
}

impl BenchMapping {
    /// The labgrid places the roles' boards were reserved from.
    pub fn places(&self) -> Vec<super::RolePlace> {
        self.roles
            .iter()
            .filter_map(|(role, board)| {
                board.place.as_ref().map(|place| super::RolePlace {
                    role: role.clone(),
                    board: board.name.clone(),
                    place: place.place.clone(),
                    exporter: place.exporter.clone(),
                })
            })
            .collect()
    }
}

/// What an attempt leaves behind for reports and snapshots.
pub struct AttemptRun {
    pub attempt: Attempt,
    /// Events up to the end of the last step (teardown excluded).
    pub events: Vec<Arc<Event>>,
    pub trace_file: Option<PathBuf>,
}

pub async fn run(
    scenario: &Scenario,
    setup: &AttemptSetup,
    interrupt: &CancellationToken,
) -> AttemptRun {
    let started = Instant::now();
    if let Some(reason) = needs_simulator(scenario, &setup.bench) {
        return AttemptRun {
            attempt: Attempt {
                status: Status::Skipped,
                duration: started.elapsed(),
                waited: Duration::ZERO,
                failure: None,
                trace_tail: Vec::new(),
                skip_reason: Some(reason),
            },
            events: Vec::new(),
            trace_file: None,
        };
    }
    let trace_file = setup.out_dir.as_ref().map(|dir| dir.join("trace.jsonl"));
    let infra_failure = |kind: &'static str, observed: String| AttemptRun {
        attempt: Attempt {
            status: Status::Error,
            duration: started.elapsed(),
            waited: Duration::ZERO,
            failure: Some(Failure {
                step: None,
                expected: "the harness to start".into(),
                observed,
                near_misses: Vec::new(),
                error_kind: Some(kind),
            }),
            trace_tail: Vec::new(),
            skip_reason: None,
        },
        events: Vec::new(),
        trace_file: None,
    };
    if let Some(dir) = &setup.out_dir {
        if let Err(error) = std::fs::create_dir_all(dir) {
            return infra_failure(
                "out_dir",
                format!("cannot create {}: {error}", dir.display()),
            );
        }
    }
    let trace = match Trace::start(TraceOptions {
        file: trace_file.as_deref(),
        keep_in_memory: true,
    }) {
        Ok(trace) => trace,
        Err(error) => return infra_failure("trace_file", error.to_string()),
    };
    if let Some(observer) = &setup.observer {
        (observer.0)(&trace);
    }
    let mut broker_config = setup.broker.clone();
    if setup.pcap {
        broker_config.capture = setup.out_dir.as_ref().map(|dir| dir.join("capture.pcap"));
    }
    let broker = match Broker::start(broker_config, trace.clone()).await {
        Ok(broker) => broker,
        Err(error) => return infra_failure("broker", error.to_string()),
    };
    broker.faults().reseed(setup.seed);
    let mut world = Stage::new(scenario, setup, broker, trace.clone());

    let outcome = tokio::select! {
        outcome = tokio::time::timeout(scenario.timeout, panic_as_error(world.play())) => match outcome {
            Ok(outcome) => outcome,
            Err(_) => Err(StepError::failed(
                format!("the scenario to finish within its timeout of {}", humantime::format_duration(scenario.timeout)),
                "the timeout ran out during this step",
            )),
        },
        () = interrupt.cancelled() => Err(StepError::Interrupted),
    };
    let outcome = match trace.not_kept() {
        0 => outcome,
        not_kept => Err(StepError::TraceFull {
            not_kept,
            kept: crate::trace::MAX_EVENTS_IN_MEMORY,
        }),
    };
    let events = trace.events_from(0);
    let trace_tail = tail(&events);
    let waited = world.waited;
    let current_step = world.current_step.clone();
    let steps_end = world.steps_end.unwrap_or(events.len());
    let capture_error = world.shut_down().await.err();
    // The --out files are written on the blocking pool, off the runtime thread that
    // other scenarios' taps and boards share.
    let out_dir = setup.out_dir.clone();
    let closing = trace.clone();
    let files = tokio::task::spawn_blocking(move || {
        if let Some(dir) = &out_dir {
            write_serial_logs(dir, &closing.events_from(0));
        }
        closing.finish().map_err(|e| e.to_string())
    });
    let file_error = match files.await {
        Ok(closed) => closed.err(),
        Err(stopped) => Some(format!("writing the trace stopped: {stopped}")),
    }
    .or(capture_error);
    let (status, failure) = match (outcome, file_error) {
        (Err(StepError::Interrupted), _) => (Status::Interrupted, None),
        (Err(StepError::Failed(mismatch)), _) => (
            Status::Failed,
            Some(Failure::at_step(current_step, *mismatch)),
        ),
        (Err(error), _) => (
            Status::Error,
            Some(Failure {
                step: current_step,
                expected: "the harness to keep working".into(),
                observed: error.to_string(),
                near_misses: Vec::new(),
                error_kind: error.error_kind(),
            }),
        ),
        (Ok(()), Some(error)) => (
            Status::Error,
            Some(Failure {
                step: None,
                expected: "the trace to be written".into(),
                observed: error,
                near_misses: Vec::new(),
                error_kind: Some("trace_file"),
            }),
        ),
        (Ok(()), None) => (Status::Passed, None),
    };
    AttemptRun {
        attempt: Attempt {
            status,
            duration: started.elapsed(),
            waited,
            failure,
            trace_tail,
            skip_reason: None,
        },
        events: events[..steps_end.min(events.len())].to_vec(),
        trace_file,
    }
}

/// How long the trace must stay quiet after the last step before a snapshot is cut.
const SNAPSHOT_QUIET: Duration = Duration::from_millis(30);
/// The longest wait for that quiet.
const SNAPSHOT_SETTLE_LIMIT: Duration = Duration::from_secs(2);

/// Why the scenario cannot run on this bench: its first step that only the simulator can
/// carry out, on a board role a bench board plays.
fn needs_simulator(scenario: &Scenario, bench: &BenchMapping) -> Option<String> {
    all_steps(&scenario.steps).into_iter().find_map(|step| {
        let role = step.action.needs().simulated_board?;
        let bench_board = bench.roles.get(role)?;
        Some(format!(
            "{}:{}:{}: `{}` on board {role} needs the simulator, and {role} is bench board {}",
            scenario.path.display(),
            step.location.line,
            step.location.column,
            step.action.name(),
            bench_board.name
        ))
    })
}

/// A panic inside a scenario ends that scenario as a harness error with the panic's
/// message (and its trace so far); the other scenarios of the run go on.
async fn panic_as_error(
    play: impl Future<Output = Result<(), StepError>>,
) -> Result<(), StepError> {
    match AssertUnwindSafe(play).catch_unwind().await {
        Ok(outcome) => outcome,
        Err(panic) => {
            let message = panic
                .downcast_ref::<&str>()
                .map(|text| text.to_string())
                .or_else(|| panic.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "a panic without a message".into());
            Err(StepError::Panicked(message))
        }
    }
}

fn tail(events: &[Arc<Event>]) -> Vec<String> {
    let from = events.len().saturating_sub(TRACE_TAIL);
    let origin = events.first().map_or(0, |e| e.t_us);
    let rows: Vec<Row> = events[from..].iter().map(|e| Row::of(e, origin)).collect();
    render_rows(&rows, false)
}

/// One file per board with its serial lines, beside the trace.
fn write_serial_logs(dir: &std::path::Path, events: &[Arc<Event>]) {
    let mut logs: HashMap<&str, String> = HashMap::new();
    for event in events {
        if let EventBody::Serial { board, line } = &event.body {
            let log = logs.entry(board.as_str()).or_default();
            log.push_str(&format!(
                "{:>10.3} ms  {line}\n",
                event.t_us as f64 / 1000.0
            ));
        }
    }
    for (board, log) in logs {
        let _ = std::fs::write(dir.join(format!("serial-{board}.log")), log);
    }
}

/// Everything one attempt owns while it runs: the stage its steps play on.
struct Stage<'a> {
    scenario: &'a Scenario,
    setup: &'a AttemptSetup,
    broker: Broker,
    trace: Trace,
    seed: u64,
    clients: HashMap<String, Option<HarnessClient>>,
    client_setups: HashMap<String, ClientSetup>,
    boards: HashMap<String, Box<dyn Board>>,
    /// Actor name (client or board) → MQTT client id.
    client_ids: HashMap<String, String>,
    /// Expectations look at events from here on: where the last stimulus step began.
    window_start: usize,
    waited: Duration,
    /// Steps started so far, blocks' steps included.
    step_number: usize,
    /// The running step's place: its number in each enclosing block.
    place: Vec<usize>,
    current_step: Option<StepRef>,
    steps_end: Option<usize>,
    /// Events to record later (a partition's heal), dropped with the attempt.
    pending_records: tokio::task::JoinSet<()>,
}

impl<'a> Stage<'a> {
    fn new(
        scenario: &'a Scenario,
        setup: &'a AttemptSetup,
        broker: Broker,
        trace: Trace,
    ) -> Stage<'a> {
        let mut client_ids = HashMap::new();
        let mut client_setups = HashMap::new();
        for client in &scenario.clients {
            let client_id = client.client_id();
            client_ids.insert(client.name.clone(), client_id.clone());
            client_setups.insert(
                client.name.clone(),
                ClientSetup {
                    client_id,
                    protocol: match client.spec.protocol {
                        Some(5) => Protocol::V5,
                        _ => Protocol::V311,
                    },
                    subscriptions: subscriptions_for(&client.name, &scenario.steps),
                    namespace: setup.broker.namespace.clone(),
                    credentials: setup.credentials.clone(),
                    clean_session: client.spec.clean.unwrap_or(true),
                },
            );
        }
        for board in &scenario.boards {
            client_ids.insert(board.name.clone(), board.client_id());
        }
        Stage {
            scenario,
            setup,
            broker,
            trace,
            seed: setup.seed,
            clients: HashMap::new(),
            client_setups,
            boards: HashMap::new(),
            client_ids,
            window_start: 0,
            waited: Duration::ZERO,
            step_number: 0,
            place: Vec::new(),
            current_step: None,
            steps_end: None,
            pending_records: tokio::task::JoinSet::new(),
        }
    }

    /// Clients first, each connected and subscribed (so they see everything the boards
    /// do from power-on), then the boards, then the steps.
    async fn play(&mut self) -> Result<(), StepError> {
        for client in &self.scenario.clients {
            if client.spec.connect.unwrap_or(true) {
                self.connect_client(&client.name).await?;
            }
        }
        // The first expectations look from before the boards start: a bench board's
        // start waits for its boot line, which `expect_boot` as step 1 must still see.
        self.window_start = self.trace.len() as usize;
        for (index, declared) in self.scenario.boards.iter().enumerate() {
            let client_id = self.client_ids[&declared.name].clone();
            let bench = self.setup.bench.roles.get(&declared.name);
            let (broker, network) = self
                .broker
                .route_for_board(bench.is_some(), self.setup.bench.broker_host);
            let board = board::start(BoardSetup {
                name: &declared.name,
                client_id: &client_id,
                spec: &declared.spec,
                broker,
                network,
                trace: self.trace.clone(),
                seed: self.seed.wrapping_add(index as u64),
                bench,
                lock_timeout: self.setup.bench.lock_timeout,
                namespace: self.setup.broker.namespace.as_ref(),
                credentials: self.setup.credentials.as_ref(),
                simulator: self.setup.bench.simulator,
                firmware: &self.setup.bench.firmware,
            })
            .await
            .map_err(StepError::Board)?;
            self.boards.insert(declared.name.clone(), board);
        }
        let steps = &self.scenario.steps;
        self.run_steps(steps).await?;
        if self.scenario.snapshot {
            self.settle().await;
        }
        self.steps_end = Some(self.trace.len() as usize);
        Ok(())
    }

    /// Waits until the trace has been quiet for [`SNAPSHOT_QUIET`] (at most
    /// [`SNAPSHOT_SETTLE_LIMIT`]), so that what the last step set off (a subscription, a
    /// republished state) is in the snapshot on every run, however fast it came.
    async fn settle(&self) {
        let limit = Instant::now() + SNAPSHOT_SETTLE_LIMIT;
        let mut cursor = self.trace.cursor_at(self.trace.len() as usize);
        loop {
            let last_us = (self.trace.len() as usize)
                .checked_sub(1)
                .and_then(|last| self.trace.event(last))
                .map_or(0, |event| event.t_us);
            let quiet_for = Duration::from_micros(self.trace.elapsed_us().saturating_sub(last_us));
            let deadline = Instant::now() + SNAPSHOT_QUIET.saturating_sub(quiet_for);
            if cursor.next_before(deadline.min(limit)).await.is_none() {
                return;
            }
        }
    }

    fn run_steps<'s>(
        &'s mut self,
        steps: &'s [Step],
    ) -> Pin<Box<dyn Future<Output = Result<(), StepError>> + Send + 's>> {
        Box::pin(async move {
            self.place.push(0);
            for step in steps {
                self.step_number += 1;
                if let Some(last) = self.place.last_mut() {
                    *last += 1;
                }
                let number: Vec<String> = self.place.iter().map(usize::to_string).collect();
                let name = step.action.name();
                self.current_step = Some(StepRef::new(
                    number.join("."),
                    name,
                    &self.scenario.path,
                    step.location,
                ));
                self.trace.record(EventBody::StepStarted {
                    step: self.step_number - 1,
                    name: name.to_string(),
                    line: step.location.line,
                    within_us: step.action.deadline().map(|d| d.as_micros() as u64),
                });
                let result = self.run_step(step).await;
                self.trace.record(EventBody::StepFinished {
                    step: self.step_number - 1,
                    name: name.to_string(),
                    passed: result.is_ok(),
                    detail: match &result {
                        Err(StepError::Failed(mismatch)) => Some(mismatch.observed.clone()),
                        Err(StepError::Interrupted) | Ok(()) => None,
                        Err(error) => Some(error.to_string()),
                    },
                });
                result?;
            }
            self.place.pop();
            Ok(())
        })
    }

    /// A stimulus moves the expectation window to where it begins; an expectation
    /// leaves it and counts as waiting; a block is one stimulus to what follows it.
    async fn run_step(&mut self, step: &Step) -> Result<(), StepError> {
        let started = Instant::now();
        let role = step.action.role();
        if !matches!(role, Role::Expectation) {
            self.window_start = self.trace.len() as usize;
        }
        let window_start = self.window_start;
        let result = step.action.run(self).await;
        match role {
            Role::Expectation => self.waited += started.elapsed(),
            Role::Block(_) => self.window_start = window_start,
            Role::Stimulus => {}
        }
        result
    }

    async fn connect_client(&mut self, name: &str) -> Result<(), StepError> {
        let setup = self
            .client_setups
            .get(name)
            .ok_or_else(|| ClientError::Unknown(name.to_string()))?
            .clone();
        if self.clients.get(name).is_some_and(Option::is_some) {
            return Ok(());
        }
        let from = self.trace.len() as usize;
        self.clients.insert(
            name.to_string(),
            Some(HarnessClient::start(self.broker.local_addr(), &setup)),
        );
        // Connected and subscribed means: CONNACK, then one SUBACK per filter.
        let id = setup.client_id.clone();
        let wanted = setup.subscriptions.len();
        let mut cursor = self.trace.cursor_at(from);
        let deadline = Instant::now() + SETUP_DEADLINE;
        let (mut connacked, mut subacks) = (false, 0);
        while !(connacked && subacks >= wanted) {
            let Some(event) = cursor.next_before(deadline).await else {
                return Err(ClientError::NotSubscribed {
                    client: name.to_string(),
                    seconds: SETUP_DEADLINE.as_secs(),
                }
                .into());
            };
            if let EventBody::Mqtt {
                client,
                dir: Direction::ToClient,
                packet,
                ..
            } = &event.body
            {
                if client.as_deref() == Some(id.as_str()) {
                    connacked |= matches!(packet, Packet::Connack { .. });
                    subacks += usize::from(matches!(packet, Packet::Suback { .. }));
                }
            }
        }
        Ok(())
    }

    /// Cuts every connection first (so the trace ends the same way every time), then
    /// stops boards and clients.
    async fn shut_down(mut self) -> Result<(), String> {
        self.pending_records.abort_all();
        let stopped = self.broker.stop().await.map_err(|e| e.to_string());
        for (_, board) in self.boards {
            board.stop().await;
        }
        for client in self.clients.into_values().flatten() {
            client.abort();
        }
        stopped
    }
}

impl Scene for Stage<'_> {
    async fn publish(
        &mut self,
        client: &str,
        topic: &str,
        payload: Bytes,
        qos: u8,
        retain: bool,
    ) -> Result<(), StepError> {
        let Some(running) = self.clients.get(client).and_then(Option::as_ref) else {
            return Err(StepError::failed(
                format!("client {client} to be connected"),
                "it is not connected (add a `connect` step)",
            ));
        };
        running
            .publish(topic, payload, qos, retain)
            .await
            .map_err(|e| ClientError::Publish(e).into())
    }

    async fn connect(&mut self, client: &str) -> Result<(), StepError> {
        self.connect_client(client).await
    }

    async fn disconnect(&mut self, client: &str) -> bool {
        match self.clients.get_mut(client).and_then(Option::take) {
            Some(running) => {
                running.disconnect().await;
                true
            }
            None => false,
        }
    }

    fn run_block<'s>(
        &'s mut self,
        steps: &'s [Step],
    ) -> Pin<Box<dyn Future<Output = Result<(), StepError>> + Send + 's>> {
        self.run_steps(steps)
    }

    fn board(&mut self, name: &str) -> Result<&mut dyn Board, StepError> {
        match self.boards.get_mut(name) {
            Some(board) => Ok(board.as_mut()),
            None => Err(StepError::NoBoard(name.to_string())),
        }
    }

    fn is_board(&self, actor: &str) -> bool {
        self.boards.contains_key(actor)
    }

    fn client_id(&self, actor: &str) -> String {
        self.client_ids
            .get(actor)
            .cloned()
            .unwrap_or_else(|| actor.to_string())
    }

    fn faults(&self) -> &Faults {
        self.broker.faults()
    }

    fn deny_subscribe(&mut self, filter: &str) -> Result<(), StepError> {
        self.broker.deny_subscribe(filter).map_err(broker_failed)
    }

    async fn restart_broker(&mut self, down_for: Duration) -> Result<(), StepError> {
        self.broker.restart(down_for).await.map_err(broker_failed)
    }

    fn now_us(&self) -> u64 {
        self.trace.elapsed_us()
    }

    fn record(&self, body: EventBody) {
        self.trace.record(body);
    }

    fn record_at(&mut self, at: Instant, body: EventBody) {
        let trace = self.trace.clone();
        self.pending_records.spawn(async move {
            tokio::time::sleep_until(at).await;
            trace.record(body);
        });
    }

    fn watch(&self, window: Window) -> Watch {
        let from = match window {
            Window::SinceStimulus => self.window_start,
            Window::WholeTrace => 0,
            Window::FromNow => self.trace.len() as usize,
        };
        let origin_us = self
            .trace
            .event(from)
            .map_or_else(|| self.trace.elapsed_us(), |e| e.t_us);
        Watch::new(self.trace.cursor_at(from), origin_us)
    }

    fn paused(&mut self, duration: Duration) {
        self.waited += duration;
    }

    fn step_seed(&self) -> u64 {
        self.seed ^ self.step_number as u64
    }
}

/// The steps know no broker: its failure reaches them boxed.
fn broker_failed(error: BrokerError) -> StepError {
    StepError::Broker(Box::new(error))
}

/// The filters a client must subscribe to before step 1: those of every step that needs
/// it subscribed (an expectation that names it as a receiver, `to:`), in blocks too.
fn subscriptions_for(client: &str, steps: &[Step]) -> Vec<String> {
    let mut filters: Vec<String> = all_steps(steps)
        .into_iter()
        .filter_map(|step| match step.action.needs().subscription {
            Some((subscriber, filter)) if subscriber == client => Some(filter.to_string()),
            _ => None,
        })
        .collect();
    filters.sort();
    filters.dedup();
    filters
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_panic_becomes_a_harness_error_with_its_message() {
        let text = panic_as_error(async { panic!("board table corrupt") }).await;
        assert!(
            matches!(&text, Err(error @ StepError::Panicked(_)) if error.to_string() == "the harness panicked: board table corrupt"),
            "{text:?}"
        );
        let formatted = panic_as_error(async { panic!("step {}", 3) }).await;
        assert!(
            matches!(&formatted, Err(StepError::Panicked(m)) if m.ends_with("step 3")),
            "{formatted:?}"
        );
        assert!(panic_as_error(async { Ok(()) }).await.is_ok());
    }
}
