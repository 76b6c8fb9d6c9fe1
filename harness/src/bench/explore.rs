//! The `explore` rows: of the mutants in fixtures/mutants/, how many the reference suite
//! kills and how many `hil explore` kills, side by side; how fast generated runs go on the
//! built-in core, and whether any of them raises a false alarm there; how long finding
//! and shrinking a mutant takes.

use std::io;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use hil_firmware::Firmware;
use tokio_util::sync::CancellationToken;

use super::{BenchOptions, Percentiles, Row};
use crate::broker::BrokerConfig;
use crate::explore::{self, mutants, ops::FaultKind, Budget, Options, Summary};
use crate::runner::BenchMapping;

/// Where the mutants are, from the repository root.
const MUTANTS: &str = "fixtures/mutants";
/// Mutants `hil explore` must kill.
const KILLS_WANTED: usize = 7;
/// Each mutant's exploring budget, as `hil explore --budget 60s`.
const BUDGET_PER_MUTANT: Duration = Duration::from_secs(60);
/// Mutants explored at once: one per core, since each explorer runs on one thread.
const AT_ONCE: usize = 2;
const MUTANT_SEED: u64 = 11;
/// Generated runs on the built-in core in the speed and false-alarm rows.
const BUILT_IN_RUNS: usize = 200;
const BUILT_IN_SEED: u64 = 5;
const BUILT_IN_JOBS: usize = 2;

/// A mutant built and loaded.
struct Mutant {
    name: String,
    firmware: Firmware,
}

pub async fn rows(options: &BenchOptions) -> io::Result<Vec<Row>> {
    let dir = tempfile::tempdir()?;
    let mutants = build_mutants(dir.path().to_path_buf()).await?;
    let total = mutants.len();
    let mut suite_survivors = Vec::new();
    let reference = super::reference_scenarios()?;
    let scenarios = reference.len();
    for mutant in &mutants {
        let bench = BenchMapping {
            firmware: mutant.firmware.clone(),
            ..BenchMapping::default()
        };
        let (_, summary, _) = super::play_suite(
            reference.clone(),
            options.broker.clone(),
            bench,
            super::Play::UntilFirstFailure,
        )
        .await;
        if summary.failed == 0 {
            suite_survivors.push(mutant.name.clone());
        }
    }
    let explored = explore_mutants(&mutants, dir.path(), &options.broker).await?;
    let mut explore_survivors = Vec::new();
    let mut took = Vec::new();
    for (mutant, summary) in mutants.iter().zip(&explored) {
        match summary.findings.iter().find(|finding| finding.reproduced) {
            Some(finding) => took.push(finding.took.as_secs_f64()),
            None => explore_survivors.push(mutant.name.clone()),
        }
    }
    let explore_kills = total - explore_survivors.len();
    let (per_second, false_alarms, harness_errors) =
        built_in_runs(dir.path(), &options.broker).await?;
    let found = took.len();
    Ok(vec![
        Row::info(
            format!(
                "reference suite ({scenarios} scenarios): mutants killed of {total}{}",
                survived(&suite_survivors)
            ),
            (total - suite_survivors.len()) as f64,
            "",
        ),
        Row::target(
            format!(
                "hil explore, {} s each: mutants killed of {total}{}",
                BUDGET_PER_MUTANT.as_secs(),
                survived(&explore_survivors)
            ),
            explore_kills as f64,
            "",
            format!(">= {KILLS_WANTED} of {total}"),
            explore_kills >= KILLS_WANTED,
        ),
        Row::info(
            format!("hil explore --jobs {BUILT_IN_JOBS}, built-in core: generated runs per second"),
            (per_second * 10.0).round() / 10.0,
            "runs/s",
        ),
        Row::target(
            format!("false alarms in {BUILT_IN_RUNS} generated runs on the built-in core"),
            false_alarms as f64,
            "",
            "0".into(),
            false_alarms == 0,
        ),
        Row::target(
            "generated runs on the built-in core the harness could not carry out",
            harness_errors as f64,
            "",
            "0".into(),
            harness_errors == 0,
        ),
        Row::info(
            format!("median time to find and shrink a mutant ({found} found)"),
            (Percentiles::of(&mut took).p50 * 10.0).round() / 10.0,
            "s",
        ),
    ])
}

/// " (survived: a, b)" naming the mutants not killed; empty when none.
fn survived(names: &[String]) -> String {
    if names.is_empty() {
        String::new()
    } else {
        format!(" (survived: {})", names.join(", "))
    }
}

/// Every mutant of [`MUTANTS`] built in `dir` and loaded.
async fn build_mutants(dir: PathBuf) -> io::Result<Vec<Mutant>> {
    tokio::task::spawn_blocking(move || {
        let patches = mutants::patches(Path::new(MUTANTS)).map_err(|e| {
            io::Error::other(format!("run hil bench from the repository root: {e}"))
        })?;
        patches
            .iter()
            .map(|patch| {
                let library = mutants::build(&dir, patch).map_err(io::Error::other)?;
                let firmware = Firmware::load(&library).map_err(io::Error::other)?;
                Ok(Mutant {
                    name: mutants::name(patch),
                    firmware,
                })
            })
            .collect()
    })
    .await
    .map_err(io::Error::other)?
}

/// Exploring `firmware` as `hil explore --budget 60s --jobs 1 --seed 11` does, with a
/// fresh failure database in `dir`: it stops at its first reproduced finding.
fn explore_options(dir: &Path, label: &str, broker: &BrokerConfig, firmware: Firmware) -> Options {
    Options {
        seed: MUTANT_SEED,
        budget: Budget::Time(BUDGET_PER_MUTANT),
        length: 10,
        jobs: 1,
        faults: FaultKind::ALL.to_vec(),
        out: dir.join(format!("{label}-out")),
        db: dir.join(format!("{label}-db")),
        replay_only: false,
        keep_going: false,
        broker: broker.clone(),
        firmware,
    }
}

/// Explores each mutant for [`BUDGET_PER_MUTANT`], [`AT_ONCE`] at a time; the summaries
/// in the mutants' order.
async fn explore_mutants(
    mutants: &[Mutant],
    dir: &Path,
    broker: &BrokerConfig,
) -> io::Result<Vec<Summary>> {
    let all: Vec<Options> = mutants
        .iter()
        .map(|mutant| explore_options(dir, &mutant.name, broker, mutant.firmware.clone()))
        .collect();
    tokio::task::spawn_blocking(move || {
        let mut summaries = Vec::with_capacity(all.len());
        for batch in all.chunks(AT_ONCE) {
            let explored: io::Result<Vec<Summary>> = std::thread::scope(|scope| {
                let explorers: Vec<_> = batch
                    .iter()
                    .map(|options| scope.spawn(|| explore_alone(options.clone())))
                    .collect();
                explorers
                    .into_iter()
                    .map(|explorer| {
                        explorer
                            .join()
                            .map_err(|_| io::Error::other("an explorer panicked"))?
                    })
                    .collect()
            });
            summaries.extend(explored?);
        }
        Ok(summaries)
    })
    .await
    .map_err(io::Error::other)?
}

/// One exploration on a runtime of its own, as one `hil explore` process runs it: the
/// harness keeps to one thread, so two explorers on one runtime would share a core.
fn explore_alone(options: Options) -> io::Result<Summary> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    Ok(runtime.block_on(explore::explore(options, CancellationToken::new(), |_| {})))
}

/// [`BUILT_IN_RUNS`] generated runs on the built-in core, the whole budget explored:
/// runs per second, how many runs raised a violation (each a false alarm: the built-in
/// core keeps the contract the model states), and how many the harness could not carry
/// out (the first said as a warning; they cost the other rows nothing).
async fn built_in_runs(dir: &Path, broker: &BrokerConfig) -> io::Result<(f64, usize, usize)> {
    let options = Options {
        seed: BUILT_IN_SEED,
        budget: Budget::Runs(BUILT_IN_RUNS),
        jobs: BUILT_IN_JOBS,
        keep_going: true,
        ..explore_options(dir, "built-in", broker, Firmware::builtin())
    };
    let started = Instant::now();
    let summary = explore::explore(options, CancellationToken::new(), |_| {}).await;
    let elapsed = started.elapsed();
    if let Some(error) = summary.errors.first() {
        tracing::warn!(%error, "a generated run on the built-in core could not be carried out");
    }
    // The built-in core keeps its contract: each finding is the monitor's mistake, shown
    // whole so that it can be looked into once the bench's folder is gone.
    for finding in &summary.findings {
        tracing::warn!(
            invariant = finding.invariant,
            "a false alarm on the built-in core:\n{}",
            finding.yaml
        );
    }
    Ok((
        summary.runs as f64 / elapsed.as_secs_f64(),
        summary.violations,
        summary.errors.len(),
    ))
}
