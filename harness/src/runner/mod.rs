//! Runs scenarios: each isolated (its own broker, trace, clients, boards), several at
//! once with `jobs`, retried when asked, told as [`RunEvent`]s over a channel to
//! reporters that only render on a thread of their own (the runner never waits on them,
//! and they never steer the run).

mod attempt;
mod client;
mod outcome;
mod roles;
mod select;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;

use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

pub use attempt::{run as run_attempt, AttemptRun, AttemptSetup, BenchMapping, TraceObserver};
pub use client::{ClientSetup, HarnessClient};
pub use outcome::{
    Actor, ActorKind, Attempt, Failure, NotRun, RolePlace, RunSummary, ScenarioResult, Status,
    StepRef,
};
pub use roles::map_roles;
pub use select::{Partition, Selection};

use crate::broker::{listeners_for, BrokerConfig, WarmEngines};
use crate::login::Credentials;
use crate::namespace::Namespace;
use crate::scenario::Scenario;
use crate::snapshot::{self, NewVersion, SnapshotOutcome, SnapshotPolicy};

/// How to run.
#[derive(Debug, Clone)]
pub struct RunOptions {
    pub broker: BrokerConfig,
    /// Scenarios at once.
    pub jobs: usize,
    /// Stop starting scenarios after the first failure.
    pub fail_fast: bool,
    /// Extra attempts for a failed scenario; a later pass is reported as flaky.
    pub retries: usize,
    /// Seeds every random choice (jitter, faults) so a run can be repeated.
    pub seed: u64,
    /// Per scenario `DIR/<slug>/trace.jsonl` and serial logs (with retries, per attempt
    /// in `DIR/<slug>/attempt-N/`).
    pub out_dir: Option<PathBuf>,
    /// Per scenario `DIR/<slug>/capture.pcap` too.
    pub pcap: bool,
    /// Compare snapshots of every scenario, not only those with `snapshot: true`.
    pub snapshot_all: bool,
    pub snapshot_policy: SnapshotPolicy,
    pub bench: BenchMapping,
    /// Names this run on a shared external broker (`broker.external`): each scenario's
    /// topics and client ids are prefixed with it and the scenario's index.
    pub run_id: String,
    pub credentials: Option<Credentials>,
    /// Keep every scenario's trace in its result, for reports that draw it (HTML, a
    /// JSON report without `--out`); a scenario that did not pass keeps its trace anyway.
    pub keep_traces: bool,
}

/// What the tap in front of an external broker cannot see, said in every report of such
/// a run.
pub const EXTERNAL_BLIND_SPOTS: &str = "an external broker: the trace holds this run's own \
    clients and boards, as the tap in front of the broker saw them; other tenants' traffic, \
    sessions and retained messages left by earlier runs, and what happens inside the broker \
    are not observed; snapshots are not compared";

/// What the runner tells reporters, in order.
#[derive(Debug, Clone)]
pub enum RunEvent {
    Started {
        total: usize,
        jobs: usize,
        seed: u64,
        /// What the run cannot see (set when it runs against an external broker).
        unobserved: Option<&'static str>,
        /// The labgrid places bench boards were reserved from.
        labgrid: Vec<RolePlace>,
    },
    ScenarioStarted {
        name: String,
    },
    ScenarioFinished(Arc<ScenarioResult>),
    /// After the last scenario finished: one for each scenario never started.
    NotRun(Arc<NotRun>),
    Finished(RunSummary),
}

/// Where the runner sends its events. Sending never waits: reporters drain the channel
/// on their own thread (`report::ReportThread`).
pub type RunEvents = std::sync::mpsc::Sender<RunEvent>;

/// How long an external broker has to accept a connection before a run gives up on it.
pub const REACH_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(5);

/// Whether the broker at `addr` accepts a connection; why not, in words, if it does not.
pub async fn reach(addr: std::net::SocketAddr) -> Result<(), String> {
    match tokio::time::timeout(REACH_TIMEOUT, tokio::net::TcpStream::connect(addr)).await {
        Ok(Ok(_)) => Ok(()),
        Ok(Err(e)) if e.kind() == std::io::ErrorKind::ConnectionRefused => {
            Err("connection refused".into())
        }
        Ok(Err(e)) => Err(e.to_string()),
        Err(_) => Err(format!(
            "no answer within {}",
            humantime::format_duration(REACH_TIMEOUT)
        )),
    }
}

/// Runs `scenarios` and returns the totals and the results in scenario order;
/// `interrupt` stops the run early (running scenarios end as interrupted, the rest are
/// not started).
pub async fn run(
    scenarios: Vec<Scenario>,
    options: &RunOptions,
    interrupt: &CancellationToken,
    events: &RunEvents,
) -> (RunSummary, Vec<Arc<ScenarioResult>>) {
    // Nobody listening (the reporters' thread ended) is no reason to stop the run.
    let tell = |event| {
        let _ = events.send(event);
    };
    let started = Instant::now();
    let total = scenarios.len();
    let unobserved = options.broker.external.map(|_| EXTERNAL_BLIND_SPOTS);
    let labgrid = options.bench.places();
    tell(RunEvent::Started {
        total,
        jobs: options.jobs,
        seed: options.seed,
        unobserved,
        labgrid: labgrid.clone(),
    });
    let mut options = options.clone();
    if options.broker.external.is_none() {
        let connections = scenarios
            .iter()
            .map(|scenario| scenario.boards.len() + scenario.clients.len())
            .max()
            .unwrap_or(0);
        options.broker.engine_listeners = listeners_for(connections);
        let warm = WarmEngines::start(&options.broker, options.jobs.max(1), total);
        options.broker.warm = Some(warm);
    }
    let options = Arc::new(options);
    let mut pending = scenarios.into_iter().enumerate();
    let mut running = JoinSet::new();
    let mut summary = RunSummary {
        seed: options.seed,
        unobserved,
        labgrid,
        ..RunSummary::default()
    };
    let mut results = Vec::with_capacity(total);
    let mut stopped_by: Option<String> = None;
    loop {
        while stopped_by.is_none() && running.len() < options.jobs.max(1) {
            let Some((index, scenario)) = pending.next() else {
                break;
            };
            tell(RunEvent::ScenarioStarted {
                name: scenario.name.clone(),
            });
            let options = options.clone();
            let interrupt = interrupt.clone();
            running.spawn(async move {
                (
                    index,
                    run_scenario(scenario, index, &options, &interrupt).await,
                )
            });
        }
        let Some(joined) = running.join_next().await else {
            break;
        };
        let (index, result) = match joined {
            Ok(done) => done,
            Err(panic) => std::panic::resume_unwind(panic.into_panic()),
        };
        summary.add(result.status);
        let result = Arc::new(result);
        tell(RunEvent::ScenarioFinished(result.clone()));
        if stopped_by.is_none() {
            if interrupt.is_cancelled() {
                stopped_by = Some("the run was interrupted before it started".into());
            } else if options.fail_fast && matches!(result.status, Status::Failed | Status::Error) {
                stopped_by = Some(format!(
                    "not started: fail-fast stopped the run when {:?} {}",
                    result.name,
                    if result.status == Status::Failed {
                        "failed"
                    } else {
                        "met a harness error"
                    }
                ));
            }
        }
        results.push((index, result));
    }
    for (_, scenario) in pending {
        summary.not_run += 1;
        tell(RunEvent::NotRun(Arc::new(NotRun {
            name: scenario.name,
            path: scenario.path,
            reason: stopped_by.clone().unwrap_or_default(),
        })));
    }
    summary.duration = started.elapsed();
    results.sort_by_key(|(index, _)| *index);
    let results = results.into_iter().map(|(_, result)| result).collect();
    tell(RunEvent::Finished(summary.clone()));
    (summary, results)
}

async fn run_scenario(
    scenario: Scenario,
    index: usize,
    options: &RunOptions,
    interrupt: &CancellationToken,
) -> ScenarioResult {
    let out_dir = options
        .out_dir
        .as_ref()
        .map(|dir| dir.join(crate::scenario::slug(&scenario.name)));
    let mut broker = options.broker.clone();
    if broker.external.is_some() {
        broker.namespace = Some(Namespace::new(&options.run_id, index));
    }
    let mut setup = AttemptSetup {
        broker,
        credentials: options.credentials.clone(),
        // From the name, not the index: a scenario replays the same faults whatever
        // --filter or --partition left around it.
        seed: crate::seed::derive_seed(options.seed, &scenario.name),
        out_dir: out_dir.clone(),
        pcap: options.pcap,
        bench: Arc::new(options.bench.clone()),
        observer: None,
    };
    let wants_snapshot = scenario.snapshot || options.snapshot_all;
    let mut attempts = Vec::new();
    let mut snapshot = None;
    let mut trace_file = None;
    let mut trace = Vec::new();
    for number in 1..=options.retries + 1 {
        // With retries, each attempt keeps its own files.
        if options.retries > 0 {
            setup.out_dir = out_dir
                .as_ref()
                .map(|dir| dir.join(format!("attempt-{number}")));
        }
        let run = attempt::run(&scenario, &setup, interrupt).await;
        trace_file = run.trace_file.clone();
        trace = run.events;
        let mut attempt = run.attempt;
        if attempt.status == Status::Passed && wants_snapshot {
            match compare_snapshot(&scenario, trace.clone(), options).await {
                Ok(outcome) => {
                    if outcome.fails() {
                        attempt.status = Status::Failed;
                        attempt.failure = Some(snapshot_failure(&outcome));
                    }
                    snapshot = Some(outcome);
                }
                Err(error) => {
                    attempt.status = Status::Error;
                    attempt.failure = Some(Failure {
                        step: None,
                        expected: "the snapshot to be readable and writable".into(),
                        observed: error,
                        near_misses: Vec::new(),
                        error_kind: Some("snapshot"),
                    });
                }
            }
        }
        let status = attempt.status;
        attempts.push(attempt);
        // A snapshot mismatch is not a timing accident: retrying it would only hide it.
        let snapshot_mismatch = snapshot.as_ref().is_some_and(SnapshotOutcome::fails);
        if !matches!(status, Status::Failed) || snapshot_mismatch || interrupt.is_cancelled() {
            break;
        }
    }
    let last = attempts.last().expect("at least one attempt").status;
    let status = if last == Status::Passed && attempts.len() > 1 {
        Status::Flaky
    } else {
        last
    };
    if !options.keep_traces && matches!(status, Status::Passed | Status::Skipped) {
        trace = Vec::new();
    }
    ScenarioResult {
        actors: actors(&scenario),
        name: scenario.name,
        path: scenario.path,
        status,
        attempts,
        trace_file,
        snapshot,
        trace,
    }
}

/// The scenario's clients and boards with the client ids they connect as.
fn actors(scenario: &Scenario) -> Vec<Actor> {
    let clients = scenario.clients.iter().map(|client| Actor {
        name: client.name.clone(),
        client_id: client.client_id(),
        kind: ActorKind::Client,
    });
    let boards = scenario.boards.iter().map(|board| Actor {
        name: board.name.clone(),
        client_id: board.client_id(),
        kind: ActorKind::Board,
    });
    clients.chain(boards).collect()
}

/// Snapshots record the simulator on the embedded broker; another broker or a bench
/// board may rightly differ (the QoS delivered with, ROM boot lines), so they are not
/// compared there. The files are read and written off the runtime thread.
async fn compare_snapshot(
    scenario: &Scenario,
    events: Vec<Arc<crate::trace::Event>>,
    options: &RunOptions,
) -> Result<SnapshotOutcome, String> {
    if options.broker.external.is_some() {
        return Ok(SnapshotOutcome::NotCompared {
            reason: "not compared on an external broker",
        });
    }
    if !options.bench.roles.is_empty() {
        return Ok(SnapshotOutcome::NotCompared {
            reason: "not compared when bench boards play its roles",
        });
    }
    let scenario = scenario.clone();
    let policy = options.snapshot_policy;
    tokio::task::spawn_blocking(move || snapshot::check(&scenario, &events, policy))
        .await
        .map_err(|e| format!("the snapshot comparison stopped: {e}"))?
}

/// The command that finds `new_file`: plain `hil snapshot accept` searches below the
/// working directory, so a file elsewhere needs its folder named.
fn accept_command(new_file: &std::path::Path) -> String {
    let below = new_file.is_relative()
        && !new_file
            .components()
            .any(|part| part == std::path::Component::ParentDir);
    match new_file.parent() {
        Some(folder) if !below => format!("hil snapshot accept --dir {}", folder.display()),
        _ => "hil snapshot accept".into(),
    }
}

fn snapshot_failure(outcome: &SnapshotOutcome) -> Failure {
    let (file, observed, new_version) = match outcome {
        SnapshotOutcome::Missing { file, new_version } => (file, "no snapshot yet", new_version),
        SnapshotOutcome::Mismatched {
            file, new_version, ..
        } => (file, "it differs", new_version),
        _ => unreachable!("only missing and mismatched snapshots fail"),
    };
    let observed = match new_version {
        NewVersion::Written(new_file) => format!(
            "{observed}; wrote {} (accept with `{}`, or `cargo insta accept`)",
            new_file.display(),
            accept_command(new_file)
        ),
        NewVersion::Withheld(why) => format!("{observed}; {why}"),
    };
    Failure {
        step: None,
        expected: format!("the trace to match the snapshot {}", file.display()),
        observed,
        // The diff is told from the snapshot outcome, under its own heading.
        near_misses: Vec::new(),
        error_kind: None,
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_accept_hint_names_the_folder_of_a_file_outside_the_working_directory() {
        use std::path::Path;
        assert_eq!(
            super::accept_command(Path::new("sc/snapshots/x.snap.new")),
            "hil snapshot accept"
        );
        assert_eq!(
            super::accept_command(Path::new("../sc/snapshots/x.snap.new")),
            "hil snapshot accept --dir ../sc/snapshots"
        );
        assert_eq!(
            super::accept_command(Path::new("/tmp/sc/snapshots/x.snap.new")),
            "hil snapshot accept --dir /tmp/sc/snapshots"
        );
    }
}
