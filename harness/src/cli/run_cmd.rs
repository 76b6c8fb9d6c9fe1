//! `hil run`, `hil check`, `hil schema`, `hil snapshot`: the scenario commands.

use std::io::IsTerminal;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};

use hil::board::{profile, Simulator};
use hil::broker::BrokerConfig;
use hil::broker::Credentials;
use hil::config::BenchConfig;
use hil::exit::Exit;
use hil::namespace::Namespace;
use hil::report::{check_writable, Console, JsonFile, JunitFile};
use hil::runner::{self, BenchMapping, Reporter, RunEvent, RunOptions, RunSummary};
use hil::scenario::{self, Scenario};
use hil::snapshot::{self, SnapshotPolicy};
use tokio_util::sync::CancellationToken;

use super::{stop_signal, Failure};

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
///   hil run --partition 1/4 --retries 1 --seed 42
#[derive(Debug, clap::Args)]
#[command(verbatim_doc_comment)]
pub struct RunArgs {
    /// Scenario files or folders.
    #[arg(default_value = "scenarios")]
    paths: Vec<PathBuf>,
    /// Scenarios to run at once, each isolated on its own broker.
    #[arg(long, short, default_value_t = 2)]
    jobs: usize,
    /// Run only shard K of N (1-based), e.g. 2/4; every scenario is in exactly one shard.
    #[arg(long, value_name = "K/N", value_parser = parse_partition)]
    partition: Option<(usize, usize)>,
    /// Run only scenarios whose name or path contains TEXT (exit 2 when none does).
    #[arg(long, value_name = "TEXT")]
    filter: Option<String>,
    /// Start no new scenario after the first failure.
    #[arg(long)]
    fail_fast: bool,
    /// Try a failed scenario again up to N times; a later pass is reported as flaky.
    #[arg(long, default_value_t = 0, value_name = "N")]
    retries: usize,
    /// Write a JUnit XML report.
    #[arg(long, value_name = "FILE")]
    junit: Option<PathBuf>,
    /// Write a JSON report.
    #[arg(long, value_name = "FILE")]
    json: Option<PathBuf>,
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
    /// How long to wait for a bench board that another hil holds.
    #[arg(long, value_name = "DURATION", default_value = "10s", value_parser = humantime::parse_duration)]
    lock_timeout: std::time::Duration,
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

/// What bench boards are told to connect to: --advertise, else the bind address.
fn broker_host(args: &RunArgs) -> Result<Option<IpAddr>, Failure> {
    match args.advertise {
        Some(host) if host.is_unspecified() => Err(Failure::new(
            Exit::Usage,
            format!("--advertise {host}: name an address of this host the boards can reach"),
        )),
        Some(host) => Ok(Some(host)),
        None if args.bind.is_unspecified() && !args.boards.is_empty() => Err(Failure::new(
            Exit::Usage,
            format!(
                "--bind {} listens on every address: say which one the bench boards reach \
                 this host at with --advertise ADDR",
                args.bind
            ),
        )),
        None => Ok(None),
    }
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

fn parse_role(text: &str) -> Result<(String, String), String> {
    let (role, name) = text
        .split_once('=')
        .ok_or("write it as ROLE=NAME, e.g. lamp=bench1")?;
    if role.is_empty() || name.is_empty() {
        return Err("write it as ROLE=NAME, e.g. lamp=bench1".into());
    }
    Ok((role.to_string(), name.to_string()))
}

/// The bench boards that play `--board` roles, checked against the scenarios: every
/// role is a board of some scenario, and every board that is not simulated has one.
fn bench_mapping(args: &RunArgs, scenarios: &[Scenario]) -> Result<BenchMapping, Failure> {
    let mut mapping = BenchMapping {
        roles: Default::default(),
        lock_timeout: args.lock_timeout,
        broker_host: broker_host(args)?,
        simulator: match args.sim {
            SimArg::Core => Simulator::Core,
            SimArg::Sketch => Simulator::Sketch,
        },
    };
    if !args.boards.is_empty() {
        let config =
            BenchConfig::load(args.config.as_deref()).map_err(|e| Failure::new(Exit::Usage, e))?;
        for (role, name) in &args.boards {
            let board = config
                .board(name)
                .map_err(|e| Failure::new(Exit::Usage, e))?;
            let used = scenarios
                .iter()
                .any(|scenario| scenario.boards.iter().any(|b| &b.name == role));
            if !used {
                return Err(Failure::new(
                    Exit::Usage,
                    format!("--board {role}={name}: no scenario has a board named {role}"),
                ));
            }
            mapping.roles.insert(role.clone(), board.clone());
        }
    }
    for scenario in scenarios {
        for board in &scenario.boards {
            if !profile::simulated(&board.spec.profile) && !mapping.roles.contains_key(&board.name)
            {
                return Err(Failure::new(
                    Exit::Usage,
                    format!(
                        "{}: board {} has profile {} and needs a bench board: add --board {}=NAME (a board of hil.toml)",
                        scenario.path.display(),
                        board.name,
                        board.spec.profile,
                        board.name
                    ),
                ));
            }
        }
    }
    Ok(mapping)
}

fn parse_partition(text: &str) -> Result<(usize, usize), String> {
    let (k, n) = text.split_once('/').ok_or("write it as K/N, e.g. 1/4")?;
    let k: usize = k
        .trim()
        .parse()
        .map_err(|_| format!("{k:?} is not a number"))?;
    let n: usize = n
        .trim()
        .parse()
        .map_err(|_| format!("{n:?} is not a number"))?;
    if n == 0 || k == 0 || k > n {
        return Err(format!(
            "shard {k} of {n} does not exist: K goes from 1 to N"
        ));
    }
    Ok((k, n))
}

/// Loads every scenario under `paths`; all errors are reported before giving up.
fn load_all(paths: &[PathBuf]) -> Result<Vec<Scenario>, Failure> {
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
        match scenario::load(&file) {
            Ok(scenario) => scenarios.push(scenario),
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
        if let Some(first) = by_name.insert(runner::slug(&scenario.name), &scenario.path) {
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

/// Shard K of N: every scenario, in path order, goes to shard (index mod N) + 1.
fn select(scenarios: Vec<Scenario>, args: &RunArgs) -> Vec<Scenario> {
    let mut scenarios = scenarios;
    scenarios.sort_by(|a, b| a.path.cmp(&b.path));
    scenarios
        .into_iter()
        .enumerate()
        .filter(|(index, _)| args.partition.is_none_or(|(k, n)| index % n == k - 1))
        .map(|(_, scenario)| scenario)
        .filter(|scenario| {
            args.filter
                .as_deref()
                .is_none_or(|text| filter_selects(text, scenario))
        })
        .collect()
}

fn filter_selects(text: &str, scenario: &Scenario) -> bool {
    scenario.name.contains(text) || scenario.path.to_string_lossy().contains(text)
}

/// The console and the report files, fed the same events.
struct Reporters {
    console: Console,
    junit: Option<JunitFile>,
    json: Option<JsonFile>,
}

impl Reporter for Reporters {
    fn report(&mut self, event: RunEvent<'_>) {
        if let Some(junit) = &mut self.junit {
            junit.report(copy(&event));
        }
        if let Some(json) = &mut self.json {
            json.report(copy(&event));
        }
        self.console.report(event);
    }
}

fn copy<'a>(event: &RunEvent<'a>) -> RunEvent<'a> {
    match *event {
        RunEvent::Started { total, jobs, seed } => RunEvent::Started { total, jobs, seed },
        RunEvent::ScenarioStarted { name } => RunEvent::ScenarioStarted { name },
        RunEvent::ScenarioFinished(result) => RunEvent::ScenarioFinished(result),
        RunEvent::Finished(summary) => RunEvent::Finished(summary),
    }
}

pub async fn run(args: RunArgs) -> Result<Exit, Failure> {
    // Installs the handlers now: from here on, SIGINT or SIGTERM interrupts the run
    // (reports still written) rather than killing the process.
    let stop = stop_signal();
    // Everything that can refuse the run (exit 2) comes before the first write, so a
    // refused run leaves earlier reports as they were.
    let loaded = load_all(&args.paths)?;
    if let Some(text) = &args.filter {
        // Against every scenario, not only this shard's: a shard may rightly hold none.
        if !loaded.iter().any(|scenario| filter_selects(text, scenario)) {
            return Err(Failure::new(
                Exit::Usage,
                format!(
                    "--filter {text:?} matches no scenario name or path in {}; the scenarios are: {}",
                    list(&args.paths),
                    quoted(&loaded.iter().map(|s| s.name.clone()).collect::<Vec<_>>())
                ),
            ));
        }
    }
    let scenarios = select(loaded, &args);
    let bench = bench_mapping(&args, &scenarios)?;
    let (broker, credentials) = broker_config(&args)?;
    for report in [&args.junit, &args.json].into_iter().flatten() {
        check_writable(report).map_err(|e| {
            Failure::new(
                Exit::Infrastructure,
                format!("cannot write report {}: {e}", report.display()),
            )
        })?;
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
        jobs: args.jobs.max(1),
        fail_fast: args.fail_fast,
        retries: args.retries,
        seed,
        out_dir: args.out.clone(),
        pcap: args.pcap,
        snapshot_all: args.snapshot,
        snapshot_policy: SnapshotPolicy::from_env(),
    };
    let stderr_terminal = std::io::stderr().is_terminal();
    let mut reporters = Reporters {
        console: Console::new(stderr_terminal, color_on(std::io::stdout().is_terminal())),
        junit: args.junit.clone().map(JunitFile::new),
        json: args.json.clone().map(JsonFile::new),
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
    let (summary, _results) = runner::run(scenarios, &options, &interrupt, &mut reporters).await;
    watcher.abort();
    let report_error = (reporters.junit.as_ref().and_then(JunitFile::error))
        .or_else(|| reporters.json.as_ref().and_then(JsonFile::error));
    if let Some(error) = report_error {
        return Err(Failure::new(Exit::Infrastructure, error));
    }
    Ok(verdict(&summary, interrupt.is_cancelled()))
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
///   hil check scenarios/ fixtures/more.yaml
#[derive(Debug, clap::Args)]
#[command(verbatim_doc_comment)]
pub struct CheckArgs {
    /// Scenario files or folders.
    #[arg(default_value = "scenarios")]
    paths: Vec<PathBuf>,
}

pub fn check(args: &CheckArgs) -> Result<Exit, Failure> {
    let scenarios = load_all(&args.paths)?;
    println!("{} scenario file(s) valid", scenarios.len());
    Ok(Exit::Success)
}

/// Print the JSON Schema of scenario files (for editors: validation and completion).
///
/// Example:
///   hil schema > hil-scenario.schema.json
#[derive(Debug, clap::Args)]
#[command(verbatim_doc_comment)]
pub struct SchemaArgs {}

pub fn schema(_args: &SchemaArgs) -> Result<Exit, Failure> {
    println!(
        "{}",
        serde_json::to_string_pretty(&scenario::json_schema()).expect("a schema serializes")
    );
    Ok(Exit::Success)
}

/// Accept or reject pending snapshots (`*.snap.new`), like `cargo insta accept|reject`.
///
/// Examples:
///   hil snapshot accept
///   hil snapshot reject "phone turns on"
#[derive(Debug, clap::Args)]
#[command(verbatim_doc_comment)]
pub struct SnapshotArgs {
    #[arg(value_enum)]
    action: SnapshotAction,
    /// Scenario names (or snapshot file names); all pending when none. A name that
    /// matches no pending snapshot stops the command before it acts (exit 2).
    names: Vec<String>,
    /// The snapshots folder.
    #[arg(long, default_value = "scenarios/snapshots")]
    dir: PathBuf,
}

#[derive(Debug, Clone, Copy, clap::ValueEnum)]
enum SnapshotAction {
    /// Replace each snapshot with its pending version.
    Accept,
    /// Delete the pending versions.
    Reject,
}

pub fn snapshots(args: &SnapshotArgs) -> Result<Exit, Failure> {
    let pending = snapshot::pending_snapshots(&args.dir, &args.names).map_err(|e| {
        Failure::new(
            Exit::Infrastructure,
            format!("cannot read {}: {e}", args.dir.display()),
        )
    })?;
    if !pending.unmatched.is_empty() {
        let available = if pending.available.is_empty() {
            "there are none".to_string()
        } else {
            format!("pending: {}", pending.available.join(", "))
        };
        return Err(Failure::new(
            Exit::Usage,
            format!(
                "no pending snapshot in {} matches {}; {available} (name a scenario or a file without .snap.new)",
                args.dir.display(),
                quoted(&pending.unmatched)
            ),
        ));
    }
    if pending.chosen.is_empty() {
        println!("no pending snapshots in {}", args.dir.display());
        return Ok(Exit::Success);
    }
    for new_file in pending.chosen {
        let file = new_file.with_extension("");
        let done =
            match args.action {
                SnapshotAction::Accept => std::fs::rename(&new_file, &file)
                    .map(|()| format!("accepted {}", file.display())),
                SnapshotAction::Reject => std::fs::remove_file(&new_file)
                    .map(|()| format!("rejected {}", new_file.display())),
            };
        let done = done.map_err(|e| {
            Failure::new(Exit::Infrastructure, format!("{}: {e}", new_file.display()))
        })?;
        println!("{done}");
    }
    Ok(Exit::Success)
}
