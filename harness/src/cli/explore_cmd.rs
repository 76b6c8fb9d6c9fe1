//! `hil explore`: generated runs against the firmware model; a violation shrunk to a
//! scenario file.

use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::time::Duration;

use hil::broker::BrokerConfig;
use hil::exit::Exit;
use hil::explore::{self, ops::FaultKind, Budget, Finding, Progress};
use hil::namespace::Namespace;
use hil::report::html::HtmlFile;
use hil::runner::{BenchMapping, RunOptions};
use hil::scenario;
use hil::snapshot::SnapshotPolicy;
use tokio_util::sync::CancellationToken;

use super::{report_file_failure, run_reported, stop_signal, Failure};

/// Find the bugs nobody scripted: generated sequences of the light controller's inputs
/// and faults, each a normal scenario on its own broker with simulated boards, checked
/// while they run against a model of the firmware contract (firmware/README.md).
///
/// A violation is shrunk to a short scenario that `hil run` reproduces, written into
/// --out with a comment naming the invariant and the seed, and kept in the failure
/// database (--db), whose scenarios are replayed first on every later run. Exploring
/// stops at the first finding that `hil run` reproduces (one that it does not is still
/// written, and exploring goes on); --keep-going explores the whole budget, one finding
/// per invariant. The same seed and options generate the same scenarios.
///
/// Exit 0 when nothing was found within the budget, 1 when a violation was found (or a
/// kept failure fails again), 2 usage, 3 infrastructure, 130 interrupted (what was
/// found so far is kept).
///
/// Examples:
///   hil explore --runs 200 --seed 7
///   hil explore --budget 60s --jobs 2 --firmware-lib ./liblight_controller.so
///   hil explore --faults partition,wifi,broker_restart --length 12
///   hil explore --keep-going --budget 5m --html findings.html
///   hil explore --replay
#[derive(Debug, clap::Args)]
#[command(verbatim_doc_comment)]
pub struct ExploreArgs {
    /// Seed of every generated run (printed when not given).
    #[arg(long, value_name = "N")]
    seed: Option<u64>,
    /// How long to explore, e.g. 60s (default 60s unless --runs).
    #[arg(long, value_name = "DURATION", value_parser = humantime::parse_duration, conflicts_with = "runs")]
    budget: Option<Duration>,
    /// How many runs to generate.
    #[arg(long, value_name = "N")]
    runs: Option<usize>,
    /// Stimuli and faults per run (waits come on top).
    #[arg(long, value_name = "N", default_value_t = 10, value_parser = clap::value_parser!(u64).range(1..=200))]
    length: u64,
    /// Runs at once, each on its own broker.
    #[arg(long, short, default_value_t = 2, value_parser = clap::value_parser!(u64).range(1..=64))]
    jobs: u64,
    /// Faults to inject, comma-separated: reset, power_cycle, wifi, partition,
    /// broker_restart, delay, drop, duplicate; or all, or none.
    #[arg(long, value_name = "LIST", default_value = "all")]
    faults: String,
    /// Where a finding's scenario is written.
    #[arg(long, value_name = "DIR", default_value = "hil-explore")]
    out: PathBuf,
    /// The failure database.
    #[arg(long, value_name = "DIR", default_value = ".hil/explore")]
    db: PathBuf,
    /// Run only the failure database's scenarios.
    #[arg(long)]
    replay: bool,
    /// A visual report of the findings: each written scenario played once more by the
    /// normal runner, its sequence diagram and timelines in one HTML file.
    #[arg(long, value_name = "FILE")]
    html: Option<PathBuf>,
    /// Go on after a finding until the budget is spent, one finding per invariant.
    #[arg(long, conflicts_with = "replay")]
    keep_going: bool,
    #[command(flatten)]
    firmware: super::FirmwareArg,
}

pub async fn run(args: ExploreArgs) -> Result<Exit, Failure> {
    let stop = stop_signal();
    let firmware = args.firmware.load()?;
    let faults = FaultKind::parse_list(&args.faults)
        .map_err(|e| Failure::new(Exit::Usage, format!("--faults {:?}: {e}", args.faults)))?;
    let seed = args.seed.unwrap_or_else(|| fastrand::u64(..));
    let budget = match (args.runs, args.budget) {
        (Some(runs), _) => Budget::Runs(runs),
        (None, Some(time)) => Budget::Time(time),
        (None, None) => Budget::Time(Duration::from_secs(60)),
    };
    let broker = BrokerConfig::loopback()?;
    let replay = (broker.clone(), firmware.clone());
    let options = explore::Options {
        seed,
        budget,
        length: args.length as usize,
        jobs: args.jobs as usize,
        faults,
        out: args.out,
        db: args.db,
        replay_only: args.replay,
        keep_going: args.keep_going,
        broker,
        firmware,
    };
    let interrupt = CancellationToken::new();
    let watcher = {
        let interrupt = interrupt.clone();
        tokio::spawn(async move {
            if stop.await.is_ok() {
                interrupt.cancel();
            }
        })
    };
    eprintln!("hil explore: seed {seed}");
    let terminal = std::io::stderr().is_terminal();
    let bar = terminal.then(indicatif::ProgressBar::new_spinner);
    let summary = explore::explore(options, interrupt.clone(), |event| match event {
        Progress::Run {
            runs,
            steps,
            covered,
            pairs,
            failures,
        } => {
            if let Some(bar) = &bar {
                bar.set_message(format!(
                    "runs {runs} · steps {steps} · coverage {covered}/{pairs} · failures {failures}"
                ));
                bar.tick();
            }
        }
        Progress::Shrinking { invariant, steps } => {
            if let Some(bar) = &bar {
                bar.set_message(format!("shrinking ({invariant}): {steps} steps"));
                bar.tick();
            }
        }
        Progress::Replayed { file, failed } => {
            let verdict = if failed { "FAILS AGAIN" } else { "passes" };
            eprintln!("replayed {}: {verdict}", file.display());
        }
        Progress::Finding(finding) => {
            if let Some(bar) = &bar {
                bar.finish_and_clear();
            }
            println!(
                "FOUND {} {}: {} step(s) (from {}) in {} — {}{}",
                finding.quantifier.name(),
                finding.invariant,
                finding.steps,
                finding.original_steps,
                humantime::format_duration(Duration::from_millis(finding.took.as_millis() as u64)),
                finding.file.display(),
                if finding.reproduced {
                    ""
                } else {
                    " (hil run did not fail it every time)"
                }
            );
            println!(
                "  board {}: expected {}; observed {}",
                finding.board, finding.expected, finding.observed
            );
            for line in finding
                .yaml
                .lines()
                .filter(|l| l.trim_start().starts_with("- "))
            {
                println!("  {line}");
            }
        }
    })
    .await;
    watcher.abort();
    if let Some(bar) = &bar {
        bar.finish_and_clear();
    }
    eprintln!(
        "hil explore: {} run(s), {} step(s), seed {seed}",
        summary.runs, summary.steps
    );
    if summary.pairs > 0 {
        let never: Vec<String> = summary
            .never_reached
            .iter()
            .map(|(step, state)| format!("{step} while {state}"))
            .collect();
        eprintln!(
            "coverage: {} of {} (step, board state) pairs reached{}{}",
            summary.pairs - never.len(),
            summary.pairs,
            if never.is_empty() { "" } else { "; never: " },
            never.join(", ")
        );
    }
    for error in &summary.errors {
        eprintln!("harness error: {error}");
    }
    if let Some(path) = &args.html {
        if !summary.findings.is_empty() && !interrupt.is_cancelled() {
            let (broker, firmware) = replay;
            visual_report(path, &summary.findings, broker, firmware, seed, &interrupt).await?;
            eprintln!("hil explore: visual report {}", path.display());
        }
    }
    Ok(if summary.interrupted {
        Exit::Interrupted
    } else if !summary.findings.is_empty() || !summary.replay_failures.is_empty() {
        Exit::Failed
    } else if !summary.errors.is_empty() {
        Exit::Infrastructure
    } else {
        Exit::Success
    })
}

/// Plays each finding's written scenario once more through the normal runner, with the
/// firmware explored, into the visual report at `path`.
async fn visual_report(
    path: &Path,
    findings: &[Finding],
    broker: BrokerConfig,
    firmware: hil_firmware::Firmware,
    seed: u64,
    interrupt: &CancellationToken,
) -> Result<(), Failure> {
    let scenarios = findings
        .iter()
        .map(|finding| scenario::load(&finding.file, &["sim"]))
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| Failure::new(Exit::Infrastructure, e.render(false)))?;
    let file = HtmlFile::create(path.to_path_buf()).map_err(|e| report_file_failure(path, e))?;
    let options = RunOptions {
        broker,
        jobs: 1,
        fail_fast: false,
        retries: 0,
        seed,
        out_dir: None,
        pcap: false,
        snapshot_all: false,
        snapshot_policy: SnapshotPolicy::WriteNothing("explore writes no snapshots"),
        bench: BenchMapping {
            firmware,
            ..BenchMapping::default()
        },
        run_id: Namespace::run_id(seed),
        credentials: None,
        keep_traces: true,
    };
    run_reported(scenarios, &options, interrupt, vec![Box::new(file)])
        .await
        .map(drop)
}
