//! `hil run`, `hil check`, `hil schema`, `hil snapshot`: the scenario commands.

use std::io::IsTerminal;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};

use hil::board::Simulator;
use hil::broker::BrokerConfig;
use hil::config::BenchConfig;
use hil::exit::Exit;
use hil::login::Credentials;
use hil::namespace::Namespace;
use hil::report::{Annotations, Console, HtmlFile, JsonFile, JunitFile, Reporter, StepSummary};
use hil::runner::{self, BenchMapping, Partition, RunOptions, RunSummary, Selection};
use hil::scenario::{self, Scenario};
use hil::snapshot::{self, Decision, SnapshotPolicy};
use tokio_util::sync::CancellationToken;

use super::{report_file_failure, run_reported, stop_signal, Failure};

/// Run scenario files: each with its own broker, boards and clients, then judge and report.
///
/// PATHS are scenario files or folders (searched for *.yaml); default `scenarios/`.
/// Exit 0 when all pass, 1 when one fails, 2 when a file is invalid (nothing runs),
/// 3 on infrastructure errors, 130 when interrupted (reports of finished scenarios are
/// still written).
///
/// Examples:
///   hil run
///   hil run scenarios/ --jobs 2 --junit junit.xml --out out/
///   hil run --html report.html --json report.json
///   hil run --partition 1/4 --retries 1 --seed 42
///   hil run --tag smoke --skip-tag faults --list
///   hil run --board lamp=farm --partition 2/4     # a labgrid place per shard (hil.toml)
#[derive(Debug, clap::Args)]
#[command(verbatim_doc_comment)]
pub struct RunArgs {
    /// Scenario files or folders.
    #[arg(default_value = DEFAULT_FOLDER)]
    paths: Vec<PathBuf>,
    /// Scenarios to run at once (1 or more), each isolated on its own broker.
    #[arg(long, short, default_value_t = 2, value_parser = parse_jobs)]
    jobs: usize,
    /// Run only shard K of N (1-based), e.g. 2/4; every scenario is in exactly one shard.
    #[arg(long, value_name = "K/N")]
    partition: Option<Partition>,
    /// Run only scenarios whose name or path contains TEXT (exit 2 when none does).
    #[arg(long, value_name = "TEXT")]
    filter: Option<String>,
    /// Run only scenarios with this tag (`tags: [smoke]` in the file); repeat for more.
    #[arg(long = "tag", value_name = "TAG")]
    tags: Vec<String>,
    /// Leave out scenarios with this tag; repeat for more.
    #[arg(long = "skip-tag", value_name = "TAG")]
    skip_tags: Vec<String>,
    /// Print the scenarios that would run (path, tab, name), one per line, and start
    /// nothing.
    #[arg(long)]
    list: bool,
    /// Start no new scenario after the first failure.
    #[arg(long)]
    fail_fast: bool,
    /// Try a failed scenario again up to N times; a later pass is reported as flaky.
    #[arg(long, default_value_t = 0, value_name = "N")]
    retries: usize,
    /// Write a JUnit XML report.
    #[arg(long, value_name = "FILE")]
    junit: Option<PathBuf>,
    /// Write a JSON report (without --out it carries each scenario's trace, so that
    /// `hil report` can draw it later).
    #[arg(long, value_name = "FILE")]
    json: Option<PathBuf>,
    /// Write the visual report: one self-contained HTML file with each scenario's
    /// sequence diagram, state timeline and trace table.
    #[arg(long, value_name = "FILE")]
    html: Option<PathBuf>,
    /// Keep each scenario's trace.jsonl and serial logs in DIR/<scenario>/ (with
    /// --retries, each attempt's in DIR/<scenario>/attempt-N/).
    #[arg(long, value_name = "DIR")]
    out: Option<PathBuf>,
    /// With --out: also write each scenario's traffic as DIR/<scenario>/capture.pcap.
    #[arg(long, requires = "out")]
    pcap: bool,
    /// Seed for every random choice (jitter, faults); printed with the results.
    #[arg(long, value_name = "N")]
    seed: Option<u64>,
    /// Check every scenario's snapshot, not only those with `snapshot: true`.
    #[arg(long)]
    snapshot: bool,
    /// Play board ROLE of the scenarios on bench board NAME of the bench config
    /// (hil.toml) instead of the simulator; repeat for more roles.
    #[arg(long = "board", value_name = "ROLE=NAME", value_parser = parse_role)]
    boards: Vec<(String, String)>,
    /// The bench config for --board (default: hil.toml in the working directory).
    #[arg(long, value_name = "FILE")]
    config: Option<PathBuf>,
    /// How long to wait for a bench board (or labgrid place) that another holds.
    #[arg(long, value_name = "DURATION", default_value = "10s", value_parser = humantime::parse_duration)]
    lock_timeout: std::time::Duration,
    #[command(flatten)]
    labgrid: super::labgrid_cmd::LabgridArgs,
    /// Run against this broker (or cluster) instead of the embedded one, as
    /// mqtt://HOST:PORT. Each scenario gets its own topic and client-id namespace
    /// (hil/<run>/<n>/…), so many runs can share the broker.
    #[arg(long, value_name = "URL")]
    broker: Option<String>,
    /// Where the run's brokers listen. A board on Wi-Fi needs an address of this host
    /// it can reach; beyond loopback, clients must log in (--auth, or --username with
    /// --broker) unless --insecure-open.
    #[arg(long, value_name = "ADDR", default_value_t = IpAddr::V4(Ipv4Addr::LOCALHOST))]
    bind: IpAddr,
    /// The address bench boards are told to reach the brokers at; default --bind, and
    /// needed when --bind is every address (0.0.0.0 or ::).
    #[arg(long, value_name = "ADDR")]
    advertise: Option<IpAddr>,
    /// Clients must log in as USER with PASS: harness clients and simulated boards do;
    /// a bench board's firmware must be built with the same login.
    #[arg(long, value_name = "USER:PASS", value_parser = super::parse_login, conflicts_with = "broker")]
    auth: Option<Credentials>,
    /// Beyond loopback, let anyone who reaches the brokers in (a closed bench network).
    #[arg(long, conflicts_with = "auth")]
    insecure_open: bool,
    /// User name for --broker.
    #[arg(long, requires = "broker")]
    username: Option<String>,
    /// The environment variable holding the password for --broker.
    #[arg(long, value_name = "VAR", requires = "username")]
    password_env: Option<String>,
    /// What plays the simulated boards (`profile: sim`): the firmware core with hil's
    /// HAL, or the Arduino sketch itself on the host Arduino core, one process per board.
    #[arg(long, value_enum, default_value_t = SimArg::Core)]
    sim: SimArg,
    #[command(flatten)]
    firmware: super::FirmwareArg,
}

#[derive(Debug, Clone, Copy, clap::ValueEnum)]
enum SimArg {
    Core,
    Sketch,
}

/// The broker config of the run: embedded, or the tap in front of `--broker`; and the
/// login clients and boards present.
fn broker_config(args: &RunArgs) -> Result<(BrokerConfig, Option<Credentials>), Failure> {
    let (mut config, credentials) = broker_target(args)?;
    config.listen = SocketAddr::new(args.bind, 0);
    if !args.bind.is_loopback() {
        // The tap checks the login: the run's own, or the one the external broker wants.
        config.login = credentials.clone();
        if config.login.is_none() && !args.insecure_open {
            return Err(Failure::new(
                Exit::Usage,
                format!(
                    "--bind {} lets other hosts reach the run's brokers: give them a login with \
                     --auth USER:PASS (or --username with --broker), or pass --insecure-open \
                     on a closed bench network",
                    args.bind
                ),
            ));
        }
    }
    Ok((config, credentials))
}

fn broker_target(args: &RunArgs) -> Result<(BrokerConfig, Option<Credentials>), Failure> {
    let config = BrokerConfig::loopback()?;
    let Some(url) = &args.broker else {
        return Ok((config, args.auth.clone()));
    };
    let mut config = config;
    config.external = Some(super::broker_addr("--broker", url)?);
    let credentials = match &args.username {
        Some(username) => {
            let password = match &args.password_env {
                Some(variable) => std::env::var(variable).map_err(|_| {
                    Failure::new(
                        Exit::Usage,
                        format!("--password-env {variable}: the variable is not set"),
                    )
                })?,
                None => String::new(),
            };
            Some(Credentials {
                username: username.clone(),
                password,
            })
        }
        None => None,
    };
    Ok((config, credentials))
}

pub(super) fn parse_role(text: &str) -> Result<(String, String), String> {
    let (role, name) = text
        .split_once('=')
        .ok_or("write it as ROLE=NAME, e.g. lamp=bench1")?;
    if role.is_empty() || name.is_empty() {
        return Err("write it as ROLE=NAME, e.g. lamp=bench1".into());
    }
    Ok((role.to_string(), name.to_string()))
}

/// The bench boards that play `--board` roles, checked against the scenarios.
fn bench_mapping(args: &RunArgs, scenarios: &[Scenario]) -> Result<BenchMapping, Failure> {
    if matches!(args.sim, SimArg::Sketch) && args.firmware.is_given() {
        return Err(Failure::new(
            Exit::Usage,
            "--firmware-lib is a build of the core, and --sim sketch runs the sketch, which has the core compiled in: give one of them",
        ));
    }
    let mut mapping = BenchMapping {
        roles: Default::default(),
        lock_timeout: args.lock_timeout,
        broker_host: super::broker_host(args.bind, args.advertise, !args.boards.is_empty())?,
        simulator: match args.sim {
            SimArg::Core => Simulator::Core,
            SimArg::Sketch => Simulator::Sketch,
        },
        firmware: args.firmware.load()?,
    };
    let config = || BenchConfig::load(args.config.as_deref()).map_err(|e| e.to_string());
    runner::map_roles(&mut mapping, &args.boards, config, scenarios)
        .map_err(|e| Failure::new(Exit::Usage, e))?;
    Ok(mapping)
}

fn parse_jobs(text: &str) -> Result<usize, String> {
    match text.parse::<usize>() {
        Ok(0) => Err("at least 1 scenario must run at a time".into()),
        Ok(jobs) => Ok(jobs),
        Err(_) => Err(format!("{text:?} is not a number")),
    }
}

/// Where scenario commands look when given no PATHS.
const DEFAULT_FOLDER: &str = "scenarios";

/// Loads every scenario under `paths` for `hil COMMAND`; all errors are reported before
/// giving up.
fn load_all(command: &str, paths: &[PathBuf]) -> Result<Vec<Scenario>, Failure> {
    if paths == [PathBuf::from(DEFAULT_FOLDER)] && !Path::new(DEFAULT_FOLDER).exists() {
        return Err(Failure::new(
            Exit::Usage,
            format!(
                "there is no {DEFAULT_FOLDER}/ folder here, and PATHS default to {DEFAULT_FOLDER}/: \
                 name scenario files or folders, e.g. `hil {command} lamp.yaml` or `hil {command} tests/`"
            ),
        ));
    }
    let files = scenario::discover(paths).map_err(|e| Failure::new(Exit::Usage, e))?;
    if files.is_empty() {
        return Err(Failure::new(
            Exit::Usage,
            format!("no scenario files (*.yaml) in {}", list(paths)),
        ));
    }
    let color = color_on(std::io::stderr().is_terminal());
    let mut scenarios = Vec::new();
    let mut invalid = 0;
    for file in files {
        match scenario::load(&file, &hil::board::profile::known_names()) {
            Ok(scenario) => {
                for (at, warning) in scenario::warnings(&scenario) {
                    anstream::eprintln!(
                        "warning: {}:{}:{}: {warning}",
                        file.display(),
                        at.line,
                        at.column
                    );
                }
                scenarios.push(scenario);
            }
            Err(error) => {
                invalid += 1;
                anstream::eprintln!("{}", error.render(color));
            }
        }
    }
    if invalid > 0 {
        return Err(Failure::new(
            Exit::Usage,
            format!("{invalid} invalid scenario file(s); nothing was run"),
        ));
    }
    let mut by_name: std::collections::HashMap<String, &Path> = std::collections::HashMap::new();
    for scenario in &scenarios {
        if let Some(first) = by_name.insert(hil::scenario::slug(&scenario.name), &scenario.path) {
            return Err(Failure::new(
                Exit::Usage,
                format!(
                    "two scenarios are named {:?} ({} and {}): names must differ, they name output folders and snapshots",
                    scenario.name,
                    first.display(),
                    scenario.path.display()
                ),
            ));
        }
    }
    Ok(scenarios)
}

fn quoted(names: &[String]) -> String {
    names
        .iter()
        .map(|name| format!("{name:?}"))
        .collect::<Vec<_>>()
        .join(", ")
}

fn list(paths: &[PathBuf]) -> String {
    paths
        .iter()
        .map(|p| p.display().to_string())
        .collect::<Vec<_>>()
        .join(", ")
}

fn color_on(terminal: bool) -> bool {
    terminal && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty())
}

pub async fn run(args: RunArgs) -> Result<Exit, Failure> {
    // Installs the handlers now: from here on, SIGINT or SIGTERM interrupts the run
    // (reports still written) rather than killing the process.
    let stop = stop_signal();
    // Everything that can refuse the run (exit 2) comes before the first write, so a
    // refused run leaves earlier reports as they were.
    let loaded = load_all("run", &args.paths)?;
    let selection = Selection {
        partition: args.partition,
        filter: args.filter.clone(),
        tags: args.tags.clone(),
        skip_tags: args.skip_tags.clone(),
    };
    // Against every scenario, not only this shard's: a shard may rightly hold none.
    selection
        .check(&loaded)
        .map_err(|e| Failure::new(Exit::Usage, format!("{e} (in {})", list(&args.paths))))?;
    let scenarios = selection.apply(loaded);
    if args.list {
        for scenario in &scenarios {
            println!("{}\t{}", scenario.path.display(), scenario.name);
        }
        return Ok(Exit::Success);
    }
    let mut bench = bench_mapping(&args, &scenarios)?;
    let (broker, credentials) = broker_config(&args)?;
    if let (Some(url), Some(addr)) = (&args.broker, broker.external) {
        // Once, before any scenario: a dead address is one clear error, not every
        // client failing to connect in turn.
        runner::reach(addr).await.map_err(|why| {
            Failure::new(Exit::Infrastructure, format!("cannot reach {url}: {why}"))
        })?;
    }
    let interrupt = CancellationToken::new();
    let watcher = {
        let interrupt = interrupt.clone();
        tokio::spawn(async move {
            if stop.await.is_ok() {
                interrupt.cancel();
            }
        })
    };
    // Held for the whole run (every scenario of this shard on the same boards), given
    // back when the run ends however it ends.
    let _places = tokio::select! {
        taken = take_places(&args.labgrid, &mut bench, args.lock_timeout) => taken?,
        () = interrupt.cancelled() => return Ok(Exit::Interrupted),
    };
    let mut reporters: Vec<Box<dyn Reporter>> = vec![Box::new(Console::new(
        std::io::stderr().is_terminal(),
        color_on(std::io::stdout().is_terminal()),
    ))];
    if let Some(path) = &args.junit {
        let file = JunitFile::create(path.clone()).map_err(|e| report_file_failure(path, e))?;
        reporters.push(Box::new(file));
    }
    if let Some(path) = &args.json {
        let file = JsonFile::create(path.clone()).map_err(|e| report_file_failure(path, e))?;
        reporters.push(Box::new(file));
    }
    if let Some(path) = &args.html {
        let file = HtmlFile::create(path.clone()).map_err(|e| report_file_failure(path, e))?;
        reporters.push(Box::new(file));
    }
    // On GitHub Actions: annotations on the scenario files' lines, and the summary.
    if std::env::var("GITHUB_ACTIONS").is_ok_and(|v| v == "true") {
        reporters.push(Box::new(Annotations));
    }
    if let Some(path) = std::env::var_os("GITHUB_STEP_SUMMARY").filter(|p| !p.is_empty()) {
        reporters.push(Box::new(StepSummary::new(PathBuf::from(path))));
    }
    if let Some(out) = &args.out {
        std::fs::create_dir_all(out).map_err(|e| {
            Failure::new(
                Exit::Infrastructure,
                format!("cannot create output folder {}: {e}", out.display()),
            )
        })?;
    }
    let seed = args.seed.unwrap_or_else(|| fastrand::u64(..));
    let options = RunOptions {
        bench,
        broker,
        credentials,
        run_id: Namespace::run_id(seed),
        jobs: args.jobs,
        fail_fast: args.fail_fast,
        retries: args.retries,
        seed,
        out_dir: args.out.clone(),
        pcap: args.pcap,
        snapshot_all: args.snapshot,
        snapshot_policy: SnapshotPolicy::from_env(),
        keep_traces: args.html.is_some() || (args.json.is_some() && args.out.is_none()),
    };
    let reported = run_reported(scenarios, &options, &interrupt, reporters).await;
    watcher.abort();
    Ok(verdict(&reported?, interrupt.is_cancelled()))
}

/// Reserves and acquires the labgrid place of each mapped bench board that is one (once
/// per board, whichever roles it plays), and points the mapping at their ports.
async fn take_places(
    labgrid: &super::labgrid_cmd::LabgridArgs,
    bench: &mut BenchMapping,
    lock_timeout: std::time::Duration,
) -> Result<Vec<hil::labgrid::HeldPlace>, Failure> {
    let mut taken: std::collections::BTreeMap<String, hil::config::BenchBoard> = Default::default();
    let mut places = Vec::new();
    for board in bench.roles.values_mut() {
        if let Some(ready) = taken.get(&board.name) {
            *board = ready.clone();
            continue;
        }
        let (ready, place) = labgrid.take_async(board, lock_timeout).await?;
        places.extend(place);
        taken.insert(board.name.clone(), ready.clone());
        *board = ready;
    }
    Ok(places)
}

fn verdict(summary: &RunSummary, interrupted: bool) -> Exit {
    if interrupted {
        Exit::Interrupted
    } else if summary.errors > 0 {
        Exit::Infrastructure
    } else if summary.failed > 0 {
        Exit::Failed
    } else {
        Exit::Success
    }
}

/// Check scenario files without running them.
///
/// Prints each invalid file's error with file:line:col and a snippet; exit 2 if any.
///
/// Example:
///   hil check scenarios/phone_turns_off.yaml scenarios/qos1_delivery.yaml
#[derive(Debug, clap::Args)]
#[command(verbatim_doc_comment)]
pub struct CheckArgs {
    /// Scenario files or folders.
    #[arg(default_value = DEFAULT_FOLDER)]
    paths: Vec<PathBuf>,
}

pub fn check(args: &CheckArgs) -> Result<Exit, Failure> {
    let scenarios = load_all("check", &args.paths)?;
    println!("{} scenario file(s) valid", scenarios.len());
    Ok(Exit::Success)
}

/// Print the JSON Schema of scenario files (for editors: validation and completion), or
/// rewrite the step table of a README from the steps' own docs.
///
/// Examples:
///   hil schema > hil-scenario.schema.json
///   hil schema --readme scenarios/README.md
#[derive(Debug, clap::Args)]
#[command(verbatim_doc_comment)]
pub struct SchemaArgs {
    /// Rewrite the step table of this Markdown file (between its `<!-- steps: … -->`
    /// markers) instead of printing the schema.
    #[arg(long, value_name = "FILE")]
    readme: Option<PathBuf>,
}

pub fn schema(args: &SchemaArgs) -> Result<Exit, Failure> {
    let Some(readme) = &args.readme else {
        println!(
            "{}",
            serde_json::to_string_pretty(&scenario::json_schema()).expect("a schema serializes")
        );
        return Ok(Exit::Success);
    };
    let text = std::fs::read_to_string(readme).map_err(|e| {
        Failure::new(
            Exit::Usage,
            format!("cannot read {}: {e}", readme.display()),
        )
    })?;
    let Some(updated) = hil::steps::with_table(&text) else {
        return Err(Failure::new(
            Exit::Usage,
            format!(
                "{} has no step table markers; add `{}` and `{}` lines where the table goes",
                readme.display(),
                hil::steps::TABLE_BEGIN,
                hil::steps::TABLE_END
            ),
        ));
    };
    if updated != text {
        std::fs::write(readme, updated).map_err(|e| {
            Failure::new(
                Exit::Infrastructure,
                format!("cannot write {}: {e}", readme.display()),
            )
        })?;
    }
    println!("{}: step table up to date", readme.display());
    Ok(Exit::Success)
}

/// Accept or reject pending snapshots (`*.snap.new`), like `cargo insta accept|reject`.
///
/// `hil run` writes a pending snapshot beside its scenario, in snapshots/, when the
/// snapshot is missing or differs (not under CI=true). Without --dir, the working
/// directory and every folder below it are searched, as cargo insta does.
///
/// Examples:
///   hil snapshot accept
///   hil snapshot reject "phone turns on"
///   hil snapshot accept --dir scenarios/snapshots
#[derive(Debug, clap::Args)]
#[command(verbatim_doc_comment)]
pub struct SnapshotArgs {
    #[arg(value_enum)]
    action: SnapshotAction,
    /// Scenario names or parts of them (or of snapshot file names); all pending when
    /// none. A name that matches no pending snapshot stops the command before it acts
    /// (exit 2).
    names: Vec<String>,
    /// Search only this folder (and the folders below it).
    #[arg(long, value_name = "DIR")]
    dir: Option<PathBuf>,
}

#[derive(Debug, Clone, Copy, clap::ValueEnum)]
enum SnapshotAction {
    /// Replace each snapshot with its pending version.
    Accept,
    /// Delete the pending versions.
    Reject,
}

pub fn snapshots(args: &SnapshotArgs) -> Result<Exit, Failure> {
    let root = args.dir.clone().unwrap_or_else(|| PathBuf::from("."));
    let pending = snapshot::find_pending(&root).map_err(|e| {
        Failure::new(
            Exit::Infrastructure,
            format!("cannot search {}: {e}", root.display()),
        )
    })?;
    let selection = snapshot::select_pending(&root, &pending, &args.names);
    if !selection.unmatched.is_empty() {
        let available = if selection.available.is_empty() {
            "there are none".to_string()
        } else {
            format!("pending: {}", selection.available.join(", "))
        };
        return Err(Failure::new(
            Exit::Usage,
            format!(
                "no pending snapshot in {} matches {}; {available} (name a scenario or part of one)",
                root.display(),
                quoted(&selection.unmatched)
            ),
        ));
    }
    if selection.chosen.is_empty() {
        return Err(Failure::new(
            Exit::Usage,
            format!(
                "no pending snapshots (*.snap.new) in {} or below: `hil run` writes them \
                 beside each scenario, in snapshots/, when a snapshot is missing or differs \
                 (not under CI=true); run this where they are, or name their folder with --dir",
                root.display()
            ),
        ));
    }
    let (decision, verb) = match args.action {
        SnapshotAction::Accept => (Decision::Accept, "accepted"),
        SnapshotAction::Reject => (Decision::Reject, "rejected"),
    };
    for new_file in selection.chosen {
        let done = snapshot::decide(&new_file, decision).map_err(|e| {
            Failure::new(Exit::Infrastructure, format!("{}: {e}", new_file.display()))
        })?;
        println!("{verb} {}", done.display());
    }
    Ok(Exit::Success)
}
