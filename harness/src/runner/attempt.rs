//! One attempt at one scenario: its own broker, trace, clients and boards; the steps in
//! order; every wait bounded by its step's deadline and the scenario's timeout.

use std::collections::{BTreeMap, HashMap};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use regex::Regex;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::client::{ClientSetup, HarnessClient};
use super::outcome::{Attempt, Failure, Status, StepRef};
use crate::board::{Board, BoardSetup};
use crate::broker::Credentials;
use crate::broker::{Broker, BrokerConfig};
use crate::config::BenchBoard;
use crate::expect::{subsequence_found, MessageQuery, PayloadMatch, SeenPublish};
use crate::scenario::{self, Action, RelayState, Scenario, Step};
use crate::tap::DropAmount;
use crate::trace::{render_rows, Direction, Event, EventBody, Packet, Row, Trace, TraceOptions};

/// How long harness clients may take to connect and subscribe before step 1.
const SETUP_DEADLINE: Duration = Duration::from_secs(5);
/// After a failed `expect_message`, how long to keep looking for a late arrival (at most).
const LATE_ARRIVAL_GRACE: Duration = Duration::from_millis(500);
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
    let infra_failure = |observed: String| AttemptRun {
        attempt: Attempt {
            status: Status::Error,
            duration: started.elapsed(),
            waited: Duration::ZERO,
            failure: Some(Failure {
                step: None,
                expected: "the harness to start".into(),
                observed,
                near_misses: Vec::new(),
            }),
            trace_tail: Vec::new(),
            skip_reason: None,
        },
        events: Vec::new(),
        trace_file: None,
    };
    if let Some(dir) = &setup.out_dir {
        if let Err(error) = std::fs::create_dir_all(dir) {
            return infra_failure(format!("cannot create {}: {error}", dir.display()));
        }
    }
    let trace = match Trace::start(TraceOptions {
        file: trace_file.as_deref(),
        keep_in_memory: true,
    }) {
        Ok(trace) => trace,
        Err(error) => return infra_failure(error.to_string()),
    };
    let mut broker_config = setup.broker.clone();
    if setup.pcap {
        broker_config.capture = setup.out_dir.as_ref().map(|dir| dir.join("capture.pcap"));
    }
    let broker = match Broker::start(broker_config, trace.clone()).await {
        Ok(broker) => broker,
        Err(error) => return infra_failure(error.to_string()),
    };
    broker.faults().reseed(setup.seed);
    let mut world = World::new(scenario, setup, broker, trace.clone());

    let outcome = tokio::select! {
        outcome = tokio::time::timeout(scenario.timeout, world.play()) => match outcome {
            Ok(outcome) => outcome,
            Err(_) => Err(StepError::Failed(Box::new(Failure {
                step: world.current_step.clone(),
                expected: format!("the scenario to finish within its timeout of {}", humantime::format_duration(scenario.timeout)),
                observed: "the timeout ran out during this step".into(),
                near_misses: Vec::new(),
            }))),
        },
        () = interrupt.cancelled() => Err(StepError::Interrupted),
    };
    let events = trace.events_from(0);
    let trace_tail = tail(&events);
    let waited = world.waited;
    let steps_end = world.steps_end.unwrap_or(events.len());
    let capture_error = world.shut_down().await.err();
    if let Some(dir) = &setup.out_dir {
        write_serial_logs(dir, &trace.events_from(0));
    }
    let file_error = trace
        .finish()
        .err()
        .map(|e| e.to_string())
        .or(capture_error);
    let (status, failure) = match (outcome, file_error) {
        (Err(StepError::Interrupted), _) => (Status::Interrupted, None),
        (Err(StepError::Harness(observed)), _) => (
            Status::Error,
            Some(Failure {
                step: None,
                expected: "the harness to keep working".into(),
                observed,
                near_misses: Vec::new(),
            }),
        ),
        (Err(StepError::Failed(failure)), _) => (Status::Failed, Some(*failure)),
        (Ok(()), Some(error)) => (
            Status::Error,
            Some(Failure {
                step: None,
                expected: "the trace to be written".into(),
                observed: error,
                near_misses: Vec::new(),
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

/// Why the scenario cannot run on this bench: its first step that only the simulator can
/// carry out, on a board role a bench board plays.
fn needs_simulator(scenario: &Scenario, bench: &BenchMapping) -> Option<String> {
    scenario::all_steps(&scenario.steps)
        .into_iter()
        .find_map(|step| {
            let role = step.action.sim_only_board()?;
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
            log.push_str(&format!("{:>10.3} {line}\n", event.t_us as f64 / 1000.0));
        }
    }
    for (board, log) in logs {
        let _ = std::fs::write(dir.join(format!("serial-{board}.log")), log);
    }
}

enum StepError {
    Failed(Box<Failure>),
    Harness(String),
    Interrupted,
}

/// Everything one attempt owns while it runs.
struct World<'a> {
    scenario: &'a Scenario,
    setup: &'a AttemptSetup,
    broker: Broker,
    trace: Trace,
    seed: u64,
    clients: HashMap<String, Option<HarnessClient>>,
    client_setups: HashMap<String, ClientSetup>,
    boards: HashMap<String, Board>,
    /// Actor name (client or board) → MQTT client id.
    client_ids: HashMap<String, String>,
    /// Expectations look at events from here on: where the last stimulus step began.
    window_start: usize,
    waited: Duration,
    step_number: usize,
    current_step: Option<StepRef>,
    steps_end: Option<usize>,
    /// Faults that end by themselves later (a partition's heal), ended with the attempt.
    pending_faults: tokio::task::JoinSet<()>,
}

impl<'a> World<'a> {
    fn new(
        scenario: &'a Scenario,
        setup: &'a AttemptSetup,
        broker: Broker,
        trace: Trace,
    ) -> World<'a> {
        let mut client_ids = HashMap::new();
        let mut client_setups = HashMap::new();
        for client in &scenario.clients {
            let client_id = client
                .spec
                .client_id
                .clone()
                .unwrap_or_else(|| client.name.clone());
            client_ids.insert(client.name.clone(), client_id.clone());
            client_setups.insert(
                client.name.clone(),
                ClientSetup {
                    client_id,
                    protocol: client.spec.protocol.unwrap_or(4),
                    subscriptions: subscriptions_for(&client.name, &scenario.steps),
                    namespace: setup.broker.namespace.clone(),
                    credentials: setup.credentials.clone(),
                    clean_session: client.spec.clean.unwrap_or(true),
                },
            );
        }
        for board in &scenario.boards {
            let client_id = board
                .spec
                .client_id
                .clone()
                .unwrap_or_else(|| board.name.clone());
            client_ids.insert(board.name.clone(), client_id);
        }
        World {
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
            current_step: None,
            steps_end: None,
            pending_faults: tokio::task::JoinSet::new(),
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
            let broker = match (bench, self.setup.bench.broker_host) {
                (Some(_), Some(host)) => SocketAddr::new(host, self.broker.addr().port()),
                (Some(_), None) => self.broker.addr(),
                (None, _) => self.local_broker(),
            };
            let board = Board::start(BoardSetup {
                name: &declared.name,
                client_id: &client_id,
                spec: &declared.spec,
                broker,
                trace: self.trace.clone(),
                seed: self.seed.wrapping_add(index as u64),
                bench,
                lock_timeout: self.setup.bench.lock_timeout,
                namespace: self.setup.broker.namespace.as_ref(),
                credentials: self.setup.credentials.as_ref(),
                simulator: self.setup.bench.simulator,
            })
            .await
            .map_err(StepError::Harness)?;
            self.boards.insert(declared.name.clone(), board);
        }
        let steps = &self.scenario.steps;
        self.run_steps(steps).await?;
        self.steps_end = Some(self.trace.len() as usize);
        Ok(())
    }

    /// Where this host's own clients and simulated boards connect: the brokers'
    /// address, or loopback when they listen on every address.
    fn local_broker(&self) -> SocketAddr {
        let addr = self.broker.addr();
        match addr.ip() {
            IpAddr::V4(ip) if ip.is_unspecified() => (Ipv4Addr::LOCALHOST, addr.port()).into(),
            IpAddr::V6(ip) if ip.is_unspecified() => (Ipv6Addr::LOCALHOST, addr.port()).into(),
            _ => addr,
        }
    }

    fn run_steps<'s>(
        &'s mut self,
        steps: &'s [Step],
    ) -> std::pin::Pin<Box<dyn std::future::Future<Output = Result<(), StepError>> + Send + 's>>
    {
        Box::pin(async move {
            for step in steps {
                self.step_number += 1;
                let name = step.action.name();
                self.current_step = Some(StepRef::new(
                    self.step_number,
                    name,
                    &self.scenario.path,
                    step.location,
                ));
                self.trace.record(EventBody::StepStarted {
                    step: self.step_number - 1,
                    name: name.to_string(),
                    line: step.location.line,
                });
                let result = self.run_step(step).await;
                self.trace.record(EventBody::StepFinished {
                    step: self.step_number - 1,
                    name: name.to_string(),
                    passed: result.is_ok(),
                    detail: match &result {
                        Err(StepError::Failed(failure)) => Some(failure.observed.clone()),
                        Err(StepError::Harness(error)) => Some(error.clone()),
                        _ => None,
                    },
                });
                result?;
            }
            Ok(())
        })
    }

    async fn run_step(&mut self, step: &Step) -> Result<(), StepError> {
        if !is_expectation(&step.action) {
            self.window_start = self.trace.len() as usize;
        }
        match &step.action {
            Action::Publish(publish) => {
                let client = self.client(&publish.client)?;
                client
                    .publish(
                        &publish.topic,
                        Bytes::from(publish.payload.clone()),
                        publish.qos,
                        publish.retain,
                    )
                    .await
                    .map_err(StepError::Harness)
            }
            Action::ExpectMessage(expect) => {
                let query = MessageQuery {
                    filter: expect.topic.clone(),
                    payload: payload_match(expect)?,
                    qos: expect.qos,
                    retain: expect.retain,
                    from: expect.from.as_ref().map(|name| self.client_id(name)),
                    to: expect.to.as_ref().map(|name| self.client_id(name)),
                };
                self.expect_message(&query, expect.count.unwrap_or(1), expect.within)
                    .await
            }
            Action::ExpectNoMessage(expect) => {
                let query = MessageQuery {
                    filter: expect.topic.clone(),
                    payload: PayloadMatch::Any,
                    qos: None,
                    retain: None,
                    from: expect.from.as_ref().map(|name| self.client_id(name)),
                    to: None,
                };
                self.expect_no_message(&query, expect.duration).await
            }
            Action::ExpectTrace(expect) => {
                let partials = &expect.events;
                let found = self
                    .wait_for(expect.within, |events| {
                        let progress = subsequence_found(events, partials);
                        progress.found == partials.len() || progress.gap_miss.is_some()
                    })
                    .await;
                let progress = match &found {
                    Ok(events) | Err(events) => subsequence_found(events, partials),
                };
                if progress.found == partials.len() {
                    return Ok(());
                }
                let observed = match progress.gap_miss {
                    Some(miss) => format!(
                        "entry {} came {} after the one before; expected {} to {}",
                        miss.entry + 1,
                        humantime::format_duration(round_ms(miss.measured)),
                        humantime::format_duration(miss.min),
                        if miss.max == Duration::MAX {
                            "any time later".to_string()
                        } else {
                            humantime::format_duration(miss.max).to_string()
                        }
                    ),
                    None => format!(
                        "found the first {}; missing from {}",
                        progress.found,
                        serde_json::to_string(&partials[progress.found]).unwrap_or_default()
                    ),
                };
                Err(self.failure(
                    format!("{} trace events in order", partials.len()),
                    observed,
                    Vec::new(),
                ))
            }
            Action::Connect(client) => self.connect_client(&client.client).await,
            Action::Disconnect(client) => {
                let name = &client.client;
                match self.clients.get_mut(name).and_then(Option::take) {
                    Some(running) => {
                        running.disconnect().await;
                        Ok(())
                    }
                    None => Err(self.failure(
                        format!("{name} to be connected"),
                        "it was not connected".into(),
                        Vec::new(),
                    )),
                }
            }
            Action::ExpectConnected(expect) => {
                let client_id = self.client_id(&expect.client);
                let board = self.boards.contains_key(&expect.client);
                self.wait_for_whole_trace(expect.within, |events| {
                    is_connected(events, &client_id, board)
                })
                .await
                .map(|_| ())
                .map_err(|_| {
                    self.failure(
                        format!("{} to be connected", expect.client),
                        format!(
                            "it was not connected within {}",
                            humantime::format_duration(expect.within)
                        ),
                        Vec::new(),
                    )
                })
            }
            Action::ExpectDisconnected(expect) => {
                let client_id = self.client_id(&expect.client);
                self.wait_for_whole_trace(expect.within, |events| {
                    !is_connected(events, &client_id, false)
                })
                .await
                .map(|_| ())
                .map_err(|_| {
                    self.failure(
                        format!("{} to be disconnected", expect.client),
                        format!(
                            "it was still connected after {}",
                            humantime::format_duration(expect.within)
                        ),
                        Vec::new(),
                    )
                })
            }
            Action::Wait(wait) => {
                tokio::time::sleep(wait.duration).await;
                self.waited += wait.duration;
                Ok(())
            }
            Action::Repeat(repeat) => {
                let start = self.window_start;
                for _ in 0..repeat.times {
                    self.run_steps(&repeat.steps).await?;
                }
                // The whole block is one stimulus to what follows it.
                self.window_start = start;
                Ok(())
            }
            Action::ExpectRelay(expect) => {
                let want = expect.state == RelayState::On;
                let board = expect.board.clone();
                self.wait_for_whole_trace(expect.within, |events| {
                    relay_is_on(events, &board) == want
                })
                .await
                .map(|_| ())
                .map_err(|events| {
                    self.failure(
                        format!("{board}'s relay {}", if want { "on" } else { "off" }),
                        format!(
                            "it stayed {} for {}",
                            if relay_is_on(&events, &board) {
                                "on"
                            } else {
                                "off"
                            },
                            humantime::format_duration(expect.within)
                        ),
                        Vec::new(),
                    )
                })
            }
            Action::PressSwitch(press) => self
                .board(&press.board)?
                .press(press.bounce.unwrap_or(0))
                .await
                .map_err(StepError::Harness),
            Action::ExpectSerial(expect) => {
                let regex =
                    Regex::new(&expect.regex).map_err(|e| StepError::Harness(e.to_string()))?;
                let board = expect.board.clone();
                self.wait_for(expect.within, |events| {
                    serial_lines(events, &board).any(|line| regex.is_match(line))
                })
                .await
                .map(|_| ())
                .map_err(|events| {
                    let seen: Vec<String> = serial_lines(&events, &board)
                        .map(|l| format!("serial line: {l}"))
                        .collect();
                    self.failure(
                        format!("a serial line from {board} matching /{}/", expect.regex),
                        format!("{} other lines", seen.len()),
                        seen,
                    )
                })
            }
            Action::SendSerial(send) => self
                .board(&send.board)?
                .send_serial(&send.line)
                .await
                .map_err(StepError::Harness),
            Action::ExpectBoot(expect) => {
                let board = expect.board.clone();
                let version = expect.version.clone();
                let patterns = self.board(&board)?.patterns();
                let booted = |line: &str, want: Option<&str>| {
                    patterns
                        .boot_version(line)
                        .is_some_and(|booted| want.is_none_or(|want| booted == want))
                };
                self.wait_for(expect.within, |events| {
                    serial_lines(events, &board).any(|line| booted(line, version.as_deref()))
                })
                .await
                .map(|_| ())
                .map_err(|events| {
                    let boots: Vec<String> = serial_lines(&events, &board)
                        .filter(|line| booted(line, None))
                        .map(|line| format!("boot line: {line}"))
                        .collect();
                    let want = match &version {
                        Some(version) => format!("{board} to boot version {version}"),
                        None => format!("{board} to boot"),
                    };
                    self.failure(want, format!("{} boot lines", boots.len()), boots)
                })
            }
            Action::Reset(board) => self
                .board(&board.board)?
                .reset()
                .await
                .map_err(StepError::Harness),
            Action::PowerCycle(cycle) => {
                let off_for = cycle.off_for;
                self.board(&cycle.board)?
                    .power_cycle(off_for)
                    .await
                    .map_err(StepError::Harness)?;
                self.waited += off_for;
                Ok(())
            }
            Action::Wifi(wifi) => self
                .board(&wifi.board)?
                .wifi(wifi.state == scenario::LinkState::Up)
                .await
                .map_err(StepError::Harness),
            Action::BrokerRestart(restart) => self
                .broker
                .restart(restart.down_for)
                .await
                .map_err(|e| StepError::Harness(e.to_string())),
            Action::Partition(partition) => {
                let client = self.target_client_id(partition.target())?;
                let heals = Instant::now() + partition.duration;
                self.broker.faults().partition(&client, heals);
                self.record_fault(
                    "partition",
                    &client,
                    format!("for {}", humantime::format_duration(partition.duration)),
                );
                let trace = self.trace.clone();
                self.pending_faults.spawn(async move {
                    tokio::time::sleep_until(heals).await;
                    trace.record(EventBody::Fault {
                        fault: "partition".into(),
                        target: Some(client),
                        detail: "healed".into(),
                    });
                });
                Ok(())
            }
            Action::Delay(delay) => {
                let client = self.target_client_id(delay.target())?;
                let until = delay.duration.map(|lasts| Instant::now() + lasts);
                self.broker
                    .faults()
                    .delay(&client, delay.by, delay.jitter, until);
                let lasting = delay.duration.map_or("until the end".into(), |lasts| {
                    format!("for {}", humantime::format_duration(lasts))
                });
                self.record_fault(
                    "delay",
                    &client,
                    format!(
                        "by {} ± {} {lasting}",
                        humantime::format_duration(delay.by),
                        humantime::format_duration(delay.jitter)
                    ),
                );
                Ok(())
            }
            Action::Drop(drop) => {
                let client = self.target_client_id(drop.target())?;
                let (direction, towards) = match drop.direction {
                    scenario::FrameDirection::ToBroker => (Direction::ToBroker, "to the broker"),
                    scenario::FrameDirection::FromBroker => {
                        (Direction::ToClient, "from the broker")
                    }
                };
                let (amount, how_many) = match (drop.count, drop.ratio) {
                    (Some(count), _) => (DropAmount::Count(count), format!("{count} frames")),
                    (None, ratio) => {
                        let ratio = ratio.unwrap_or(1.0);
                        (DropAmount::Ratio(ratio), format!("{ratio} of frames"))
                    }
                };
                self.broker.faults().drop_frames(&client, direction, amount);
                self.record_fault("drop", &client, format!("{how_many} {towards}"));
                Ok(())
            }
            Action::Duplicate(duplicate) => {
                let client = self.target_client_id(duplicate.target())?;
                self.broker.faults().duplicate(&client, duplicate.count);
                self.record_fault(
                    "duplicate",
                    &client,
                    format!("next {} publishes", duplicate.count),
                );
                Ok(())
            }
            Action::SerialNoise(noise) => {
                // One garbled line: random bytes without line ends, then a line end, so
                // the console sees one line whatever the seed.
                let mut rng = fastrand::Rng::with_seed(self.seed ^ self.step_number as u64);
                let bytes: Vec<u8> = std::iter::repeat_with(|| rng.u8(..))
                    .filter(|byte| !matches!(byte, b'\n' | b'\r'))
                    .take(noise.bytes)
                    .chain(*b"\r\n")
                    .collect();
                self.record_fault(
                    "serial_noise",
                    &noise.board,
                    format!("{} bytes", noise.bytes),
                );
                self.board(&noise.board)?
                    .serial_noise(&bytes)
                    .await
                    .map_err(StepError::Harness)
            }
        }
    }

    /// The client id of a fault's target (validation made sure there is one).
    fn target_client_id(&self, target: scenario::FaultTarget<'_>) -> Result<String, StepError> {
        target
            .actor()
            .and_then(|actor| self.client_ids.get(actor))
            .cloned()
            .ok_or_else(|| StepError::Harness(format!("no actor for {target:?}")))
    }

    fn record_fault(&self, fault: &str, target: &str, detail: String) {
        self.trace.record(EventBody::Fault {
            fault: fault.into(),
            target: Some(target.to_string()),
            detail,
        });
    }

    async fn connect_client(&mut self, name: &str) -> Result<(), StepError> {
        let setup = self
            .client_setups
            .get(name)
            .ok_or_else(|| StepError::Harness(format!("no client named {name}")))?
            .clone();
        if self.clients.get(name).is_some_and(Option::is_some) {
            return Ok(());
        }
        let from = self.trace.len() as usize;
        self.clients.insert(
            name.to_string(),
            Some(HarnessClient::start(self.local_broker(), &setup)),
        );
        // Connected and subscribed means: CONNACK, then one SUBACK per filter.
        let id = setup.client_id.clone();
        let wanted = setup.subscriptions.len();
        let mut cursor = self.trace.cursor_at(from);
        let deadline = Instant::now() + SETUP_DEADLINE;
        let (mut connacked, mut subacks) = (false, 0);
        while !(connacked && subacks >= wanted) {
            let Some(event) = cursor.next_before(deadline).await else {
                return Err(StepError::Harness(format!(
                    "client {name} did not connect and subscribe within {}s",
                    SETUP_DEADLINE.as_secs()
                )));
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

    async fn expect_message(
        &mut self,
        query: &MessageQuery,
        count: usize,
        within: Duration,
    ) -> Result<(), StepError> {
        let deadline_us = self.trace.elapsed_us() + within.as_micros() as u64;
        match self
            .wait_for(within, |events| query.count_matches(events) >= count)
            .await
        {
            Ok(_) => Ok(()),
            Err(events) => {
                let origin = events.first().map_or(0, |e| e.t_us);
                let mut misses = query.near_misses(&events, origin);
                let seen = query.count_matches(&events);
                // A message that is merely late deserves to be told apart from a missing one.
                let grace = within.min(LATE_ARRIVAL_GRACE);
                if let Ok(later) = self
                    .wait_for(grace, |events| query.count_matches(events) >= count)
                    .await
                {
                    // The match that completed the count is the one that came late.
                    if let Some(arrival) = query.matching(&later).nth(count.saturating_sub(1)) {
                        misses.push(format!(
                            "arrived after the deadline: {}, about {:.1} ms late (event #{})",
                            arrival.describe(origin),
                            arrival.event.t_us.saturating_sub(deadline_us) as f64 / 1000.0,
                            arrival.event.seq
                        ));
                    }
                }
                let want = if count == 1 {
                    query.describe()
                } else {
                    format!("{count} × {}", query.describe())
                };
                Err(self.failure(
                    format!("{want} within {}", humantime::format_duration(within)),
                    format!(
                        "{seen} matching; {} publishes seen since the step began",
                        events
                            .iter()
                            .filter(|e| SeenPublish::of(e).is_some())
                            .count()
                    ),
                    misses,
                ))
            }
        }
    }

    async fn expect_no_message(
        &mut self,
        query: &MessageQuery,
        duration: Duration,
    ) -> Result<(), StepError> {
        let mut cursor = self.trace.cursor();
        let deadline = Instant::now() + duration;
        let mut seen = Vec::new();
        while let Some(event) = cursor.next_before(deadline).await {
            seen.push(event);
            if query.count_matches(&seen) > 0 {
                let origin = seen.first().map_or(0, |e| e.t_us);
                let offending = seen
                    .iter()
                    .filter_map(|e| SeenPublish::of(e))
                    .map(|p| {
                        format!(
                            "{} {} from {}",
                            p.topic,
                            crate::trace::Payload(Bytes::copy_from_slice(p.payload)),
                            p.client.unwrap_or("?")
                        )
                    })
                    .next_back()
                    .unwrap_or_default();
                return Err(self.failure(
                    format!(
                        "no {} for {}",
                        query.describe(),
                        humantime::format_duration(duration)
                    ),
                    format!(
                        "got {offending} after {:.1} ms",
                        seen.last().map_or(0, |e| e.t_us.saturating_sub(origin)) as f64 / 1000.0
                    ),
                    Vec::new(),
                ));
            }
        }
        self.waited += duration;
        Ok(())
    }

    /// Waits until `done` holds for the events since the window start; on timeout returns
    /// those events for the failure story.
    async fn wait_for(
        &mut self,
        within: Duration,
        done: impl Fn(&[Arc<Event>]) -> bool,
    ) -> Result<Vec<Arc<Event>>, Vec<Arc<Event>>> {
        let start = self.window_start;
        self.wait_from(start, within, done).await
    }

    /// Like [`World::wait_for`], over the whole trace (for states such as "connected").
    async fn wait_for_whole_trace(
        &mut self,
        within: Duration,
        done: impl Fn(&[Arc<Event>]) -> bool,
    ) -> Result<Vec<Arc<Event>>, Vec<Arc<Event>>> {
        self.wait_from(0, within, done).await
    }

    async fn wait_from(
        &mut self,
        from: usize,
        within: Duration,
        done: impl Fn(&[Arc<Event>]) -> bool,
    ) -> Result<Vec<Arc<Event>>, Vec<Arc<Event>>> {
        let started = Instant::now();
        let deadline = started + within;
        let mut cursor = self.trace.cursor_at(from);
        let mut events = cursor.drain();
        loop {
            if done(&events) {
                self.waited += started.elapsed();
                return Ok(events);
            }
            match cursor.next_before(deadline).await {
                Some(event) => {
                    events.push(event);
                    // Check once per batch, not once per event, when events pour in.
                    events.extend(cursor.drain());
                }
                None => {
                    self.waited += within;
                    return Err(events);
                }
            }
        }
    }

    fn failure(&self, expected: String, observed: String, near_misses: Vec<String>) -> StepError {
        StepError::Failed(Box::new(Failure {
            step: self.current_step.clone(),
            expected,
            observed,
            near_misses,
        }))
    }

    fn client(&self, name: &str) -> Result<&HarnessClient, StepError> {
        self.clients
            .get(name)
            .and_then(Option::as_ref)
            .ok_or_else(|| {
                self.failure(
                    format!("client {name} to be connected"),
                    "it is not connected (add a `connect` step)".into(),
                    Vec::new(),
                )
            })
    }

    fn board(&mut self, name: &str) -> Result<&mut Board, StepError> {
        self.boards
            .get_mut(name)
            .ok_or_else(|| StepError::Harness(format!("no board named {name}")))
    }

    fn client_id(&self, actor: &str) -> String {
        self.client_ids
            .get(actor)
            .cloned()
            .unwrap_or_else(|| actor.to_string())
    }

    /// Cuts every connection first (so the trace ends the same way every time), then
    /// stops boards and clients.
    async fn shut_down(mut self) -> Result<(), String> {
        self.pending_faults.abort_all();
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

fn round_ms(duration: Duration) -> Duration {
    Duration::from_millis(duration.as_millis() as u64)
}

/// Steps that only observe do not move the window: a chain of expectations all look at
/// what the last stimulus caused.
fn is_expectation(action: &Action) -> bool {
    matches!(
        action,
        Action::ExpectMessage(_)
            | Action::ExpectNoMessage(_)
            | Action::ExpectTrace(_)
            | Action::ExpectConnected(_)
            | Action::ExpectDisconnected(_)
            | Action::ExpectRelay(_)
            | Action::ExpectSerial(_)
            | Action::ExpectBoot(_)
    )
}

/// The filters a client must subscribe to before step 1: those of every expectation that
/// names it as a receiver (`to:`), in `repeat` blocks too.
fn subscriptions_for(client: &str, steps: &[Step]) -> Vec<String> {
    let mut filters = Vec::new();
    for step in steps {
        match &step.action {
            Action::ExpectMessage(expect) if expect.to.as_deref() == Some(client) => {
                filters.push(expect.topic.clone())
            }
            Action::Repeat(repeat) => filters.extend(subscriptions_for(client, &repeat.steps)),
            _ => {}
        }
    }
    filters.sort();
    filters.dedup();
    filters
}

fn payload_match(expect: &scenario::ExpectMessage) -> Result<PayloadMatch, StepError> {
    Ok(
        match (&expect.payload, &expect.payload_regex, &expect.payload_json) {
            (Some(text), _, _) => PayloadMatch::Exact(text.clone()),
            (_, Some(regex), _) => PayloadMatch::Regex(
                Regex::new(regex).map_err(|e| StepError::Harness(e.to_string()))?,
            ),
            (_, _, Some(serde_json::Value::String(text))) => PayloadMatch::Json(
                serde_json::from_str(text).map_err(|e| StepError::Harness(e.to_string()))?,
            ),
            (_, _, Some(value)) => PayloadMatch::Json(value.clone()),
            (None, None, None) => PayloadMatch::Any,
        },
    )
}

/// Whether the client is connected now: its latest connection event is a successful
/// CONNACK and, for a board, a SUBACK has followed it, because a board that has not yet
/// subscribed cannot hear a command and is not ready for a scenario.
fn is_connected(events: &[Arc<Event>], client_id: &str, must_subscribe: bool) -> bool {
    let (mut connacked, mut subscribed) = (false, false);
    for event in events {
        match &event.body {
            EventBody::Mqtt {
                client,
                dir: Direction::ToClient,
                packet,
                ..
            } if client.as_deref() == Some(client_id) => match packet {
                Packet::Connack { code, .. } => {
                    (connacked, subscribed) = (code == "Success", false)
                }
                Packet::Suback { .. } => subscribed = true,
                _ => {}
            },
            EventBody::ConnClosed { client, .. } if client.as_deref() == Some(client_id) => {
                connacked = false
            }
            _ => {}
        }
    }
    connacked && (subscribed || !must_subscribe)
}

fn relay_is_on(events: &[Arc<Event>], board_name: &str) -> bool {
    events
        .iter()
        .rev()
        .find_map(|event| match &event.body {
            EventBody::Relay { board, on } if board == board_name => Some(*on),
            _ => None,
        })
        .unwrap_or(false)
}

fn serial_lines<'e>(
    events: &'e [Arc<Event>],
    board_name: &'e str,
) -> impl Iterator<Item = &'e str> + 'e {
    events.iter().filter_map(move |event| match &event.body {
        EventBody::Serial { board, line } if board == board_name => Some(line.as_str()),
        _ => None,
    })
}
