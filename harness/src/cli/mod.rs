//! Command definitions (clap) and dispatch.

mod bench_cmd;
mod broker_cmd;
mod chip_cmd;
mod explore_cmd;
mod flash_cmd;
mod image_cmd;
mod labgrid_cmd;
mod record_cmd;
mod report_cmd;
mod run_cmd;
mod serial_cmd;
mod sim_cmd;
mod trace_cmd;

use std::fmt;

use clap::{Parser, Subcommand};
use hil::exit::Exit;

/// Hardware-in-the-loop test harness for MQTT devices.
///
/// hil runs an embedded MQTT broker that records every packet of every client, replays
/// scripted scenarios against simulated or real boards, and reports to CI.
#[derive(Debug, Parser)]
#[command(name = "hil", version, propagate_version = true, after_help = EXIT_CODES)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

const EXIT_CODES: &str = "\
Exit codes: 0 success · 1 a test or scenario failed · 2 usage or input-file error ·
            3 infrastructure error (port, board, broker, serial) · 130 interrupted

Logging goes to stderr; set HIL_LOG (e.g. HIL_LOG=debug) for more.";

#[derive(Debug, Subcommand)]
enum Command {
    Run(Box<run_cmd::RunArgs>),
    Check(run_cmd::CheckArgs),
    Schema(run_cmd::SchemaArgs),
    Snapshot(run_cmd::SnapshotArgs),
    Report(report_cmd::Args),
    Sim(sim_cmd::SimArgs),
    Ports(serial_cmd::PortsArgs),
    Monitor(serial_cmd::MonitorArgs),
    Provision(serial_cmd::ProvisionArgs),
    Flash(flash_cmd::Args),
    Broker(broker_cmd::Args),
    Record(record_cmd::Args),
    /// Read trace files (the JSON Lines of hil run --out, broker --trace, monitor --trace).
    ///
    /// Example:
    ///   hil trace show out/phone-turns-the-lights-off/trace.jsonl --client phone
    #[command(subcommand, verbatim_doc_comment)]
    Trace(trace_cmd::Command),
    Bench(bench_cmd::Args),
    Explore(explore_cmd::ExploreArgs),
    /// Generate reproducible ESP app images for tests, and inspect images as a ROM would.
    ///
    /// Examples:
    ///   hil image generate --chip esp32c3 --app-version 1.4.2 -o light-controller.bin
    ///   hil image inspect light-controller.bin --chip esp32c3
    #[command(subcommand, verbatim_doc_comment)]
    Image(image_cmd::Command),
    /// Internal: the rumqttd engine behind `hil broker` and every run's broker.
    #[command(hide = true)]
    BrokerEngine(broker_cmd::EngineArgs),
    /// Internal: gives a labgrid place back when the hil that took it is gone.
    #[command(hide = true)]
    LabgridKeeper(labgrid_cmd::KeeperArgs),
}

/// A command's failure: what to tell the user and which exit code to give.
#[derive(Debug)]
pub struct Failure {
    pub exit: Exit,
    pub message: String,
}

impl Failure {
    pub fn new(exit: Exit, message: impl fmt::Display) -> Failure {
        Failure {
            exit,
            message: message.to_string(),
        }
    }
}

impl From<hil::broker::BrokerError> for Failure {
    fn from(error: hil::broker::BrokerError) -> Failure {
        Failure::new(Exit::Infrastructure, error)
    }
}

impl From<hil::trace::TraceFileError> for Failure {
    fn from(error: hil::trace::TraceFileError) -> Failure {
        Failure::new(Exit::Infrastructure, error)
    }
}

pub fn main() -> Exit {
    let cli = Cli::parse();
    init_logging();
    hil::broker::raise_open_file_limit();
    let outcome = match cli.command {
        Command::BrokerEngine(args) => return broker_cmd::engine(&args),
        Command::LabgridKeeper(args) => return labgrid_cmd::keeper(&args),
        Command::Trace(command) => trace_cmd::run(command),
        Command::Image(command) => image_cmd::run(command),
        Command::Flash(args) => flash_cmd::run(args),
        Command::Check(args) => run_cmd::check(&args),
        Command::Schema(args) => run_cmd::schema(&args),
        Command::Snapshot(args) => run_cmd::snapshots(&args),
        Command::Report(args) => report_cmd::run(&args),
        Command::Run(args) => block_on(run_cmd::run(*args)),
        Command::Sim(args) => block_on(sim_cmd::run(args)),
        Command::Ports(args) => serial_cmd::ports(&args),
        Command::Monitor(args) => block_on(serial_cmd::monitor(args)),
        Command::Provision(args) => block_on(serial_cmd::provision(args)),
        Command::Broker(args) => block_on(broker_cmd::run(args)),
        Command::Record(args) => block_on(record_cmd::run(args)),
        Command::Bench(args) => block_on(bench_cmd::run(args)),
        Command::Explore(args) => block_on(explore_cmd::run(args)),
    };
    match outcome {
        Ok(exit) => exit,
        Err(failure) => {
            anstream::eprintln!(
                "{}error:{} {}",
                ERROR.render(),
                ERROR.render_reset(),
                failure.message
            );
            failure.exit
        }
    }
}

const ERROR: anstyle::Style = anstyle::AnsiColor::Red.on_default().bold();

/// One thread runs the harness: the tap, clients and simulated boards wake each other
/// without cross-thread hand-offs (measured: lower publish→deliver latency through the
/// tap), while the broker engine, a separate process, has the other core.
fn block_on(
    command: impl std::future::Future<Output = Result<Exit, Failure>>,
) -> Result<Exit, Failure> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| {
            Failure::new(
                Exit::Infrastructure,
                format!("cannot start the async runtime: {e}"),
            )
        })?;
    let outcome = runtime.block_on(command);
    // The command has finished, files and children included; a blocking read of stdin
    // (monitor, sim) still waiting for a line must not hold the exit.
    runtime.shutdown_background();
    outcome
}

/// `--firmware-lib FILE`: the core the simulated boards run.
#[derive(Debug, Clone, clap::Args)]
pub struct FirmwareArg {
    /// Run this build of the light-controller core on the simulated boards instead of
    /// the one built into hil: a shared library exporting the API of
    /// firmware/core/light_controller.h (firmware/README.md says how to build one).
    /// Boards of profile sim-sketch run the sketch, which has the core compiled in.
    #[arg(long = "firmware-lib", value_name = "FILE")]
    library: Option<std::path::PathBuf>,
}

impl FirmwareArg {
    pub fn is_given(&self) -> bool {
        self.library.is_some()
    }

    /// The built-in core, or the library loaded; one that is not a usable core is a
    /// usage error (exit 2).
    pub fn load(&self) -> Result<hil_firmware::Firmware, Failure> {
        match &self.library {
            None => Ok(hil_firmware::Firmware::builtin()),
            Some(path) => hil_firmware::Firmware::load(path)
                .map_err(|e| Failure::new(Exit::Usage, format!("--firmware-lib {e}"))),
        }
    }
}

/// `--auth USER:PASS`.
fn parse_login(text: &str) -> Result<hil::login::Credentials, String> {
    match text.split_once(':') {
        Some((username, password)) if !username.is_empty() && !password.is_empty() => {
            Ok(hil::login::Credentials {
                username: username.to_string(),
                password: password.to_string(),
            })
        }
        _ => Err("write it as USER:PASS".into()),
    }
}

fn init_logging() {
    let filter = tracing_subscriber::EnvFilter::try_from_env("HIL_LOG")
        // rumqttc calls a duplicated PUBACK (the `duplicate` fault at work) an error; the
        // trace holds every packet, so its protocol-state complaints are left out.
        .unwrap_or_else(|_| {
            tracing_subscriber::EnvFilter::new("warn,rumqttd=off,rumqttc::state=off")
        });
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .try_init();
}

/// What bench boards are told to connect to: `--advertise`, else the `--bind` address,
/// which must then be one address (a board cannot be told "every address").
pub fn broker_host(
    bind: std::net::IpAddr,
    advertise: Option<std::net::IpAddr>,
    bench_boards: bool,
) -> Result<Option<std::net::IpAddr>, Failure> {
    match advertise {
        Some(host) if host.is_unspecified() => Err(Failure::new(
            Exit::Usage,
            format!("--advertise {host}: name an address of this host the boards can reach"),
        )),
        Some(host) => Ok(Some(host)),
        None if bind.is_unspecified() && bench_boards => Err(Failure::new(
            Exit::Usage,
            format!(
                "--bind {bind} listens on every address: say which one the bench boards reach \
                 this host at with --advertise ADDR"
            ),
        )),
        None => Ok(None),
    }
}

/// `mqtt://HOST:PORT` as given to `flag`, resolved to one address.
pub fn broker_addr(flag: &str, url: &str) -> Result<std::net::SocketAddr, Failure> {
    use std::net::ToSocketAddrs;
    let host_port = url.strip_prefix("mqtt://").ok_or_else(|| {
        Failure::new(
            Exit::Usage,
            format!("{flag} {url:?}: write it as mqtt://HOST:PORT"),
        )
    })?;
    host_port
        .to_socket_addrs()
        .map_err(|e| Failure::new(Exit::Usage, format!("{flag} {url:?}: {e}")))?
        .next()
        .ok_or_else(|| Failure::new(Exit::Usage, format!("{flag} {url:?}: no address")))
}

/// Which signal asked the program to stop.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stop {
    Interrupt,
    Terminate,
}

/// Waits for Ctrl-C (SIGINT) or SIGTERM. The handlers are installed by the call itself,
/// so a signal that arrives before the first poll is not missed (nor fatal).
pub fn stop_signal() -> impl std::future::Future<Output = Result<Stop, Failure>> {
    use tokio::signal::unix::{signal, SignalKind};
    let interrupt = signal(SignalKind::interrupt());
    let terminate = signal(SignalKind::terminate());
    async move {
        let fail = |e| {
            Failure::new(
                Exit::Infrastructure,
                format!("cannot watch for signals: {e}"),
            )
        };
        let (mut interrupt, mut terminate) = (interrupt.map_err(fail)?, terminate.map_err(fail)?);
        Ok(tokio::select! {
            _ = interrupt.recv() => Stop::Interrupt,
            _ = terminate.recv() => Stop::Terminate,
        })
    }
}

/// Runs `scenarios` with `reporters` rendering on their own thread; the run's summary, or
/// the first error a reporter met (exit 3).
pub async fn run_reported(
    scenarios: Vec<hil::scenario::Scenario>,
    options: &hil::runner::RunOptions,
    interrupt: &tokio_util::sync::CancellationToken,
    reporters: Vec<Box<dyn hil::report::Reporter>>,
) -> Result<hil::runner::RunSummary, Failure> {
    let reports = hil::report::ReportThread::start(reporters).map_err(|e| {
        Failure::new(
            Exit::Infrastructure,
            format!("cannot start the reporters: {e}"),
        )
    })?;
    let (summary, _results) =
        hil::runner::run(scenarios, options, interrupt, reports.events()).await;
    let errors = tokio::task::spawn_blocking(move || reports.finish())
        .await
        .unwrap_or_else(|e| vec![format!("the reporters stopped: {e}")]);
    match errors.into_iter().next() {
        Some(error) => Err(Failure::new(Exit::Infrastructure, error)),
        None => Ok(summary),
    }
}

/// A report file that cannot be written (exit 3).
pub fn report_file_failure(path: &std::path::Path, error: std::io::Error) -> Failure {
    Failure::new(
        Exit::Infrastructure,
        format!("cannot write report {}: {error}", path.display()),
    )
}
