//! Runs scenarios: each isolated (its own broker, trace, clients, boards), several at
//! once with `jobs`, retried when asked, reported as events to a [`Reporter`] that only
//! renders (the runner never waits on it, and it never steers the run).

mod attempt;
mod client;
mod outcome;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;

use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

pub use attempt::{run as run_attempt, AttemptRun, AttemptSetup, BenchMapping};
pub use client::{ClientSetup, HarnessClient};
pub use outcome::{Attempt, Failure, RunSummary, ScenarioResult, SnapshotOutcome, Status, StepRef};

use crate::broker::BrokerConfig;
use crate::broker::Credentials;
use crate::namespace::Namespace;
use crate::scenario::Scenario;
use crate::snapshot::{self, SnapshotPolicy};

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
}

/// What the tap in front of an external broker cannot see, said in every report of such
/// a run.
pub const EXTERNAL_BLIND_SPOTS: &str = "an external broker: the trace holds this run's own \
    clients and boards, as the tap in front of the broker saw them; other tenants' traffic, \
    sessions and retained messages left by earlier runs, and what happens inside the broker \
    are not observed; snapshots are not compared";

/// What the runner tells reporters, in order.
#[derive(Debug)]
pub enum RunEvent<'a> {
    Started {
        total: usize,
        jobs: usize,
        seed: u64,
    },
    ScenarioStarted {
        name: &'a str,
    },
    ScenarioFinished(&'a ScenarioResult),
    Finished(&'a RunSummary),
}

/// Renders run events (console, progress bar, files...).
pub trait Reporter {
    fn report(&mut self, event: RunEvent<'_>);
}

/// A file-system safe name for a scenario: its output folder and snapshot file.
pub fn slug(name: &str) -> String {
    let mut slug = String::new();
    for c in name.chars() {
        if c.is_ascii_alphanumeric() {
            slug.push(c.to_ascii_lowercase());
        } else if !slug.ends_with('-') {
            slug.push('-');
        }
    }
    slug.trim_matches('-').to_string()
}

/// Runs `scenarios` and returns the totals; `interrupt` stops the run early (running
/// scenarios end as interrupted, the rest are not started).
pub async fn run(
    scenarios: Vec<Scenario>,
    options: &RunOptions,
    interrupt: &CancellationToken,
    reporter: &mut dyn Reporter,
) -> (RunSummary, Vec<ScenarioResult>) {
    let started = Instant::now();
    let total = scenarios.len();
    reporter.report(RunEvent::Started {
        total,
        jobs: options.jobs,
        seed: options.seed,
    });
    let options = Arc::new(options.clone());
    let mut pending = scenarios.into_iter().enumerate();
    let mut running = JoinSet::new();
    let mut summary = RunSummary {
        seed: options.seed,
        unobserved: options.broker.external.map(|_| EXTERNAL_BLIND_SPOTS),
        ..RunSummary::default()
    };
    let mut results = Vec::with_capacity(total);
    let mut stop_starting = false;
    loop {
        while !stop_starting && running.len() < options.jobs.max(1) {
            let Some((index, scenario)) = pending.next() else {
                break;
            };
            reporter.report(RunEvent::ScenarioStarted {
                name: &scenario.name,
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
        reporter.report(RunEvent::ScenarioFinished(&result));
        if interrupt.is_cancelled()
            || (options.fail_fast && matches!(result.status, Status::Failed | Status::Error))
        {
            stop_starting = true;
        }
        results.push((index, result));
    }
    summary.not_run = pending.count();
    summary.duration = started.elapsed();
    results.sort_by_key(|(index, _)| *index);
    let results: Vec<ScenarioResult> = results.into_iter().map(|(_, result)| result).collect();
    reporter.report(RunEvent::Finished(&summary));
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
        .map(|dir| dir.join(slug(&scenario.name)));
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
    };
    let mut attempts = Vec::new();
    let mut snapshot = None;
    let mut trace_file = None;
    for number in 1..=options.retries + 1 {
        // With retries, each attempt keeps its own files.
        if options.retries > 0 {
            setup.out_dir = out_dir
                .as_ref()
                .map(|dir| dir.join(format!("attempt-{number}")));
        }
        let run = attempt::run(&scenario, &setup, interrupt).await;
        trace_file = run.trace_file.clone();
        let mut attempt = run.attempt;
        // Snapshots record the simulator on the embedded broker; another broker or a
        // bench board may rightly differ (the QoS delivered with, ROM boot lines), so
        // they are not compared there.
        let compare_snapshot = (scenario.snapshot || options.snapshot_all)
            && options.broker.external.is_none()
            && options.bench.roles.is_empty();
        if attempt.status == Status::Passed && compare_snapshot {
            let outcome = snapshot::check(&scenario, &run.events, options.snapshot_policy);
            match outcome {
                Ok(outcome @ SnapshotOutcome::Mismatched { .. }) => {
                    attempt.status = Status::Failed;
                    attempt.failure = Some(snapshot_failure(&outcome));
                    snapshot = Some(outcome);
                }
                Ok(outcome) => snapshot = Some(outcome),
                Err(error) => {
                    attempt.status = Status::Error;
                    attempt.failure = Some(Failure {
                        step: None,
                        expected: "the snapshot to be readable and writable".into(),
                        observed: error,
                        near_misses: Vec::new(),
                    });
                }
            }
        }
        let status = attempt.status;
        attempts.push(attempt);
        // A snapshot mismatch is not a timing accident: retrying it would only hide it.
        let snapshot_mismatch = matches!(snapshot, Some(SnapshotOutcome::Mismatched { .. }));
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
    ScenarioResult {
        name: scenario.name,
        path: scenario.path,
        status,
        attempts,
        trace_file,
        snapshot,
    }
}

fn snapshot_failure(outcome: &SnapshotOutcome) -> Failure {
    let SnapshotOutcome::Mismatched { file, new_file, .. } = outcome else {
        unreachable!("only mismatches fail")
    };
    Failure {
        step: None,
        expected: format!("the trace to match the snapshot {}", file.display()),
        observed: format!(
            "it differs; the new version is in {} (accept with `hil snapshot accept` or `cargo insta accept`)",
            new_file.display()
        ),
        // The diff is told from the snapshot outcome, under its own heading.
        near_misses: Vec::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::slug;

    #[test]
    fn slugs_are_lowercase_words_joined_by_dashes() {
        assert_eq!(
            slug("Phone turns the lights ON!"),
            "phone-turns-the-lights-on"
        );
        assert_eq!(slug("  QoS 1 / delivery  "), "qos-1-delivery");
    }
}
