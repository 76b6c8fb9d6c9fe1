//! `hil record`: a session on the desk becomes a draft scenario.

use std::io::Write;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::time::Duration;

use hil::broker::BrokerConfig;
use hil::config::BenchConfig;
use hil::exit::Exit;
use hil::login::Credentials;
use hil::record::draft::{self, BoardRole, Rename, Session};
use hil::record::file::{self, Origin};
use hil::record::session::{self, RecordSetup, Recorder};
use hil::scenario::BoardSpec;
use tokio::io::BufReader;
use tokio::sync::oneshot;

use super::{sim_cmd, stop_signal, Failure};

/// How long the console may take to print the board's last lines.
const PRINTER_DEADLINE: Duration = Duration::from_secs(2);

/// The environment variable `hil provision` reads the Wi-Fi password from: a session
/// started from the same shell keeps it out of the draft too.
const WIFI_PASSWORD_VARIABLE: &str = "HIL_WIFI_PASSWORD";

/// Record a session on the desk: what you do by hand becomes a draft scenario.
///
/// Starts the run's broker and prints `mqtt://HOST:PORT` on stdout (point the phone app
/// and any MQTT client there), then the board: a simulated light controller (--sim ROLE,
/// the default, role `lamp`) or a bench board as in `hil run` (--board ROLE=NAME of
/// hil.toml), told the broker's address. The board's serial lines follow on stdout.
/// Drive the device: publish from the phone, flip the switch. Type on stdin:
///   press         press the wall switch
///   reset         reboot the board
///   wifi down|up  cut or restore its network link (simulated board)
///   power [DUR]   power off for DUR (default 100ms), then on
///   stop          write the draft and exit 0; Ctrl-C or SIGTERM do the same
///
/// The draft (--out) turns each publish, press, Wi-Fi change, reset and power cycle into a
/// step and what the board did after it into expectations (expect_relay, expect_message
/// with from/to, expect_connected), each `within` 3 x the latency seen, rounded up to
/// 100 ms, at least 200 ms. Passwords and tokens of the session never appear in it.
///
/// Examples:
///   hil record --sim lamp --out lamp_session.yaml
///   hil record --board lamp=bench1 --bind 0.0.0.0 --advertise 192.168.1.10 --auth desk:s3cret
///   hil record --port 0 --rename phone-SN0042=phone --trace session.jsonl
#[derive(Debug, clap::Args)]
#[command(verbatim_doc_comment)]
pub struct Args {
    /// The simulated board, playing role ROLE.
    #[arg(long, value_name = "ROLE", conflicts_with = "board")]
    sim: Option<String>,
    /// Bench board NAME of the bench config (hil.toml) plays role ROLE.
    #[arg(long, value_name = "ROLE=NAME", value_parser = super::run_cmd::parse_role)]
    board: Option<(String, String)>,
    /// The bench config for --board (default: hil.toml in the working directory).
    #[arg(long, value_name = "FILE", requires = "board")]
    config: Option<PathBuf>,
    /// How long to wait for a bench board that another hil holds.
    #[arg(long, value_name = "DURATION", default_value = "10s", value_parser = humantime::parse_duration)]
    lock_timeout: Duration,
    /// The broker's port; 0 picks a free one.
    #[arg(long, default_value_t = 1883)]
    port: u16,
    /// Where the broker listens. A board or phone on Wi-Fi needs an address of this host
    /// it can reach; beyond loopback, clients must log in (--auth) unless --insecure-open.
    #[arg(long, value_name = "ADDR", default_value_t = IpAddr::V4(Ipv4Addr::LOCALHOST))]
    bind: IpAddr,
    /// The address a bench board is told to reach the broker at; default --bind, and
    /// needed when --bind is every address (0.0.0.0 or ::).
    #[arg(long, value_name = "ADDR")]
    advertise: Option<IpAddr>,
    /// Clients must log in as USER with PASS (the simulated board does). The password
    /// is kept out of the draft, the trace and the capture.
    #[arg(long, value_name = "USER:PASS", value_parser = super::parse_login)]
    auth: Option<Credentials>,
    /// Beyond loopback, let anyone who reaches the broker in (a closed bench network).
    #[arg(long, conflicts_with = "auth")]
    insecure_open: bool,
    /// Where the draft goes (a .yaml file).
    #[arg(long, value_name = "FILE", default_value = "recorded.yaml")]
    out: PathBuf,
    /// Replace --out if it exists.
    #[arg(long)]
    force: bool,
    /// The scenario's name (default: `recorded` and the date).
    #[arg(long, value_name = "TEXT")]
    name: Option<String>,
    /// Call the client with id OLD by NEW in the draft (an id with a serial number in
    /// it); repeatable.
    #[arg(long = "rename", value_name = "OLD=NEW")]
    renames: Vec<Rename>,
    /// Also keep the session's trace as JSON Lines (`hil trace show FILE`).
    #[arg(long, value_name = "FILE")]
    trace: Option<PathBuf>,
    /// Also keep the session's traffic as a pcap file; passwords blanked.
    #[arg(long, value_name = "FILE")]
    pcap: Option<PathBuf>,
    #[command(flatten)]
    firmware: super::FirmwareArg,
}

/// The board role and, for --board, the bench board playing it.
fn board_role(args: &Args) -> Result<(BoardRole, Option<hil::board::BenchBoard>), Failure> {
    let Some((role, name)) = &args.board else {
        let role = args.sim.as_deref().unwrap_or("lamp");
        let spec = BoardSpec::of_profile(hil::board::profile::SIM);
        return Ok((BoardRole::named(role, spec), None));
    };
    if args.firmware.is_given() {
        return Err(Failure::new(
            Exit::Usage,
            "--firmware-lib is the core a simulated board runs; a bench board runs what is flashed on it",
        ));
    }
    let config =
        BenchConfig::load(args.config.as_deref()).map_err(|e| Failure::new(Exit::Usage, e))?;
    let bench = config
        .board(name)
        .map_err(|e| Failure::new(Exit::Usage, e))?
        .clone();
    let spec = BoardSpec::of_profile(&bench.profile.name);
    Ok((BoardRole::named(role, spec), Some(bench)))
}

/// The broker login: --auth; beyond loopback one is needed unless --insecure-open.
fn login(args: &Args) -> Result<Option<Credentials>, Failure> {
    if args.auth.is_none() && !args.bind.is_loopback() && !args.insecure_open {
        return Err(Failure::new(
            Exit::Usage,
            format!(
                "--bind {} lets other hosts reach the broker: give it a login with --auth USER:PASS, \
                 or pass --insecure-open on a closed bench network",
                args.bind
            ),
        ));
    }
    Ok(args.auth.clone())
}

/// What must never appear in the draft: the login's password, and the Wi-Fi password
/// of the shell the session runs in.
fn secrets(login: Option<&Credentials>) -> Vec<String> {
    let mut secrets: Vec<String> = login.map(|l| l.password.clone()).into_iter().collect();
    if let Ok(wifi) = std::env::var(WIFI_PASSWORD_VARIABLE) {
        if !wifi.is_empty() {
            secrets.push(wifi);
        }
    }
    secrets
}

pub async fn run(args: Args) -> Result<Exit, Failure> {
    // Installs the handlers first: Ctrl-C during the start still ends in a draft.
    let stop = stop_signal();
    // Everything that can refuse the session comes before it starts: its end is no time
    // to find out the draft cannot be written.
    file::check_destination(&args.out, args.force).map_err(|e| Failure::new(Exit::Usage, e))?;
    let firmware = args.firmware.load()?;
    let (role, bench) = board_role(&args)?;
    let login = login(&args)?;
    let broker_host = super::broker_host(args.bind, args.advertise, bench.is_some())?;
    let mut broker = BrokerConfig::loopback()?;
    broker.listen = SocketAddr::new(args.bind, args.port);
    broker.login = login.clone();
    broker.capture = args.pcap.clone();
    let mut recorder = Recorder::start(RecordSetup {
        broker,
        board: &role,
        bench: bench.as_ref(),
        broker_host,
        lock_timeout: args.lock_timeout,
        credentials: login.as_ref(),
        firmware: &firmware,
        trace_file: args.trace.as_deref(),
    })
    .await
    .map_err(|e| Failure::new(Exit::Infrastructure, e))?;
    {
        let mut stdout = std::io::stdout().lock();
        let _ = writeln!(stdout, "{}", recorder.url());
        let _ = stdout.flush();
    }
    eprintln!(
        "hil record: recording {}; type `help` for the commands; `stop` or Ctrl-C writes the draft to {}",
        role.name,
        args.out.display()
    );
    let (finish, finished) = oneshot::channel();
    let printer = tokio::spawn(sim_cmd::print_serial(
        recorder.trace().clone(),
        false,
        finished,
    ));
    let signal = async move { stop.await.map(|_| ()) };
    let driven = session::drive(
        &mut recorder,
        BufReader::new(tokio::io::stdin()),
        signal,
        |text| eprintln!("{text}"),
    )
    .await;
    let recording = recorder
        .finish()
        .await
        .map_err(|e| Failure::new(Exit::Infrastructure, e))?;
    let _ = finish.send(());
    if tokio::time::timeout(PRINTER_DEADLINE, printer)
        .await
        .is_err()
    {
        eprintln!("hil record: stdout did not take the board's last lines in time");
    }
    driven?;
    let secrets = secrets(login.as_ref());
    let mut draft = draft::draft(
        recording.events.iter().map(|event| &**event),
        Session {
            name: args.name.as_deref(),
            board: &role,
            renames: &args.renames,
            secrets: &secrets,
        },
    );
    if recording.not_kept > 0 {
        draft.notes.push(format!(
            "the recording outgrew memory: its last {} events are not in the draft",
            recording.not_kept
        ));
    }
    for unused in &draft.unused_renames {
        eprintln!("warning: --rename {unused}=…: no client of the session had the id {unused:?}");
    }
    let origin = Origin {
        board: match &bench {
            Some(bench) => format!(
                "{}, bench board {} (profile {})",
                role.name, bench.name, bench.profile.name
            ),
            None if args.firmware.is_given() => format!(
                "{}, the simulated light controller (profile sim) running a core from --firmware-lib",
                role.name
            ),
            None => format!(
                "{}, the simulated light controller (profile sim)",
                role.name
            ),
        },
        firmware: recording.firmware,
    };
    let text = file::render(&draft, &origin, &args.out)
        .map_err(|e| Failure::new(Exit::Infrastructure, e))?;
    file::write_whole(&args.out, &text).map_err(|e| Failure::new(Exit::Infrastructure, e))?;
    eprintln!(
        "hil record: wrote {} ({} steps{})",
        args.out.display(),
        draft.scenario.steps.len(),
        if draft.activity {
            ""
        } else {
            "; no activity was recorded"
        }
    );
    Ok(Exit::Success)
}
