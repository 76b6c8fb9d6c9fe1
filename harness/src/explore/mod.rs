//! `hil explore`: generated runs of the light controller's inputs and faults (`ops`),
//! each a normal scenario played by the normal runner on its own broker with simulated
//! boards, judged while it runs by invariants over the trace (`monitor`) against a model
//! of the firmware contract (`model`). A violation is shrunk (`shrink`) to a short
//! scenario that `hil run` reproduces, kept in a database of failures (`db`) and
//! replayed first next time. `mutants` builds broken cores to measure it against.

pub mod db;
pub mod model;
pub mod monitor;
pub mod mutants;
pub mod ops;
mod shrink;

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures_util::stream::{FuturesUnordered, StreamExt};
use tokio_util::sync::CancellationToken;

use crate::broker::BrokerConfig;
use crate::runner::{self, AttemptSetup, BenchMapping, Status, TraceObserver};
use crate::scenario::Scenario;
use monitor::{Monitor, Quantifier, Violation};
use ops::{FaultKind, Generation, Plan};

/// How long exploring goes on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Budget {
    Time(Duration),
    Runs(usize),
}

/// What to explore and where.
#[derive(Debug, Clone)]
pub struct Options {
    pub seed: u64,
    pub budget: Budget,
    /// Stimuli per run.
    pub length: usize,
    pub jobs: usize,
    pub faults: Vec<FaultKind>,
    /// Where a finding's scenario is written.
    pub out: PathBuf,
    /// The failure database.
    pub db: PathBuf,
    /// Run only the database's scenarios.
    pub replay_only: bool,
    /// Explore the whole budget: one finding per invariant instead of stopping at the
    /// first reproduced one.
    pub keep_going: bool,
    pub broker: BrokerConfig,
    pub firmware: hil_firmware::Firmware,
}

/// A violation found and shrunk.
#[derive(Debug, Clone)]
pub struct Finding {
    pub invariant: &'static str,
    pub quantifier: Quantifier,
    pub board: String,
    pub expected: String,
    pub observed: String,
    /// The seed of the run that found it.
    pub run_seed: u64,
    pub original_steps: usize,
    pub steps: usize,
    /// The scenario written, and where.
    pub yaml: String,
    pub file: PathBuf,
    /// Whether `hil run` of the written scenario failed each time it was tried.
    pub reproduced: bool,
    pub shrink_runs: usize,
    pub took: Duration,
}

/// What the explorer tells while it works.
#[derive(Debug, Clone)]
pub enum Progress {
    Run {
        runs: usize,
        steps: usize,
        covered: usize,
        pairs: usize,
        failures: usize,
    },
    Shrinking {
        invariant: &'static str,
        steps: usize,
    },
    Finding(Box<Finding>),
    /// A scenario of the failure database, replayed.
    Replayed {
        file: PathBuf,
        failed: bool,
    },
}

/// How exploring ended.
#[derive(Debug, Clone, Default)]
pub struct Summary {
    pub runs: usize,
    pub steps: usize,
    /// Runs that broke an invariant or failed a step of their own, shrunk or not.
    pub violations: usize,
    pub findings: Vec<Finding>,
    /// Database scenarios that failed again.
    pub replay_failures: Vec<PathBuf>,
    /// (step, board state) pairs no run reached.
    pub never_reached: Vec<(String, String)>,
    pub pairs: usize,
    /// Runs the harness could not carry out, with why.
    pub errors: Vec<String>,
    pub interrupted: bool,
}

/// How one run ended.
#[derive(Debug)]
enum Outcome {
    Passed,
    Violated(Violation),
    Error(String),
    Interrupted,
}

/// What every run shares.
struct Context {
    options: Options,
    interrupt: CancellationToken,
}

impl Context {
    fn setup(&self, seed: u64, observer: Option<TraceObserver>) -> AttemptSetup {
        AttemptSetup {
            broker: self.options.broker.clone(),
            seed,
            out_dir: None,
            pcap: false,
            bench: Arc::new(BenchMapping {
                firmware: self.options.firmware.clone(),
                ..BenchMapping::default()
            }),
            credentials: None,
            observer,
        }
    }

    /// Plays `plan` once, its invariants watched; returns the outcome and the pairs
    /// reached.
    async fn run(&self, plan: &Plan, seed: u64) -> (Outcome, BTreeSet<(String, String)>) {
        let scenario = match plan.to_scenario(&format!("explore {seed}")) {
            Ok(scenario) => scenario,
            Err(error) => return (Outcome::Error(error.render(false)), BTreeSet::new()),
        };
        let (give, take) = tokio::sync::oneshot::channel();
        let give = Mutex::new(Some(give));
        let observer = TraceObserver(Arc::new(move |trace| {
            if let Some(give) = give.lock().ok().and_then(|mut g| g.take()) {
                let _ = give.send(trace.clone());
            }
        }));
        let stop = self.interrupt.child_token();
        let done = CancellationToken::new();
        let setup = self.setup(seed, Some(observer));
        let attempt = async {
            let run = runner::run_attempt(&scenario, &setup, &stop).await;
            done.cancel();
            run
        };
        let watch = async {
            match take.await {
                Ok(trace) => Some(
                    Monitor::new(plan)
                        .watch(trace, done.clone(), stop.clone())
                        .await,
                ),
                Err(_) => None,
            }
        };
        let (run, watched) = tokio::join!(attempt, watch);
        let (violation, reached) = watched.unwrap_or_default();
        let outcome = match (violation, run.attempt.status) {
            (Some(violation), _) => Outcome::Violated(violation),
            (None, _) if self.interrupt.is_cancelled() => Outcome::Interrupted,
            (None, Status::Passed) => Outcome::Passed,
            (None, Status::Failed) => {
                let failure = run.attempt.failure.unwrap_or_else(|| runner::Failure {
                    step: None,
                    expected: String::new(),
                    observed: String::new(),
                    near_misses: Vec::new(),
                    error_kind: None,
                });
                let step = failure
                    .step
                    .as_ref()
                    .and_then(|s| s.number.parse::<usize>().ok())
                    .map_or(0, |n| n - 1);
                Outcome::Violated(Violation {
                    invariant: "the run's own steps pass",
                    quantifier: Quantifier::Eventually,
                    board: ops::board_name(0),
                    step,
                    expected: failure.expected,
                    observed: failure.observed,
                    checks: Vec::new(),
                })
            }
            (None, Status::Interrupted) => Outcome::Interrupted,
            (None, _) => Outcome::Error(
                run.attempt
                    .failure
                    .map(|f| f.observed)
                    .unwrap_or_else(|| "the run did not finish".into()),
            ),
        };
        (outcome, reached)
    }

    /// Plays a written scenario with the plain runner: whether it failed.
    async fn fails(&self, scenario: &Scenario, seed: u64) -> bool {
        let run = runner::run_attempt(scenario, &self.setup(seed, None), &self.interrupt).await;
        run.attempt.status == Status::Failed
    }
}

/// Every (step, board state) pair a run of these faults may reach.
pub fn coverage_pairs(faults: &[FaultKind]) -> Vec<(String, String)> {
    let mut steps = vec!["publish", "press_switch"];
    for fault in faults {
        match fault {
            FaultKind::Wifi => steps.extend(["wifi down", "wifi up"]),
            other => steps.push(other.name()),
        }
    }
    let states = ["ACTIVE", "LOOKING_FOR_BROKER", "CONNECTING_WIFI"];
    steps
        .iter()
        .flat_map(|step| {
            states
                .iter()
                .map(move |state| (step.to_string(), state.to_string()))
        })
        .collect()
}

/// The seed of run `index`.
pub fn run_seed(seed: u64, index: usize) -> u64 {
    crate::seed::derive_seed(seed, &format!("explore run {index}"))
}

/// Replays the failure database, then explores within the budget. Each violation is
/// shrunk and written while no run is in flight; exploring stops at the first finding
/// that `hil run` reproduces (with `keep_going`, at the end of the budget, one finding
/// per invariant), or at `interrupt`.
pub async fn explore(
    options: Options,
    interrupt: CancellationToken,
    mut progress: impl FnMut(Progress),
) -> Summary {
    let ctx = Context { options, interrupt };
    let mut summary = Summary::default();
    let started = Instant::now();
    for (file, scenario) in db::load(&ctx.options.db, &mut summary.errors) {
        let failed = ctx.fails(&scenario, ctx.options.seed).await;
        if ctx.interrupt.is_cancelled() {
            summary.interrupted = true;
            return summary;
        }
        progress(Progress::Replayed {
            file: file.clone(),
            failed,
        });
        if failed {
            summary.replay_failures.push(file);
        }
    }
    if ctx.options.replay_only || !summary.replay_failures.is_empty() {
        return summary;
    }
    let generation = Generation {
        length: ctx.options.length,
        faults: ctx.options.faults.clone(),
    };
    let pairs = coverage_pairs(&ctx.options.faults);
    summary.pairs = pairs.len();
    let mut reached: BTreeSet<(String, String)> = BTreeSet::new();
    let mut next = 0usize;
    let mut running = FuturesUnordered::new();
    let budget_left = |next: usize| match ctx.options.budget {
        Budget::Time(limit) => started.elapsed() < limit,
        Budget::Runs(runs) => next < runs,
    };
    // The violation to shrink once no run is in flight (later ones meanwhile are left,
    // as exploring goes on), and the invariants already shown reproducibly.
    let mut to_shrink: Option<(Plan, u64, Violation)> = None;
    let mut reproduced: BTreeSet<&'static str> = BTreeSet::new();
    let mut done = false;
    while !done {
        while to_shrink.is_none()
            && !ctx.interrupt.is_cancelled()
            && running.len() < ctx.options.jobs.max(1)
            && budget_left(next)
        {
            let seed = run_seed(ctx.options.seed, next);
            let plan = ops::generate(seed, &generation);
            next += 1;
            let ctx = &ctx;
            running.push(async move {
                let (outcome, reached) = ctx.run(&plan, seed).await;
                (plan, seed, outcome, reached)
            });
        }
        let Some((plan, seed, outcome, seen)) = running.next().await else {
            // Nothing in flight: shrink what was found, then explore on if allowed.
            let Some((plan, seed, violation)) = to_shrink.take() else {
                break;
            };
            if ctx.interrupt.is_cancelled() {
                break;
            }
            let finding = shrink::shrink(&ctx, plan, seed, violation, started, &mut progress).await;
            match db::keep(&ctx.options.out, &ctx.options.db, &finding) {
                Ok(file) => {
                    let finding = Finding { file, ..finding };
                    if finding.reproduced {
                        reproduced.insert(finding.invariant);
                        done = !ctx.options.keep_going;
                    }
                    progress(Progress::Finding(Box::new(finding.clone())));
                    summary.findings.push(finding);
                }
                Err(error) => summary.errors.push(error),
            }
            continue;
        };
        summary.runs += 1;
        summary.steps += plan.ops.len();
        reached.extend(seen);
        match outcome {
            Outcome::Passed => {}
            Outcome::Interrupted => summary.interrupted = true,
            Outcome::Error(error) => summary.errors.push(error),
            Outcome::Violated(violation) => {
                summary.violations += 1;
                if to_shrink.is_none() && !reproduced.contains(violation.invariant) {
                    to_shrink = Some((plan, seed, violation));
                }
            }
        }
        progress(Progress::Run {
            runs: summary.runs,
            steps: summary.steps,
            covered: reached.len(),
            pairs: pairs.len(),
            failures: summary.findings.len() + usize::from(to_shrink.is_some()),
        });
    }
    summary.never_reached = pairs.into_iter().filter(|p| !reached.contains(p)).collect();
    if ctx.interrupt.is_cancelled() {
        summary.interrupted = true;
    }
    summary
}
