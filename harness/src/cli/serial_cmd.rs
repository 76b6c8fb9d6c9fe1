//! `hil ports`, `hil monitor`, `hil provision`: the bench's serial ports.

use std::io::IsTerminal;
use std::path::PathBuf;
use std::time::Duration;

use hil::board::profile::{self, Profile, Settings};
use hil::board::serial::{self, PortSetup, SerialBoard};
use hil::config::BenchConfig;
use hil::exit::Exit;
use hil::labgrid::HeldPlace;
use hil::port::PortName;
use hil::trace::{EventBody, Trace, TraceOptions};
use tokio::io::{AsyncBufReadExt, BufReader};

use super::labgrid_cmd::LabgridArgs;
use super::{stop_signal, Failure};

/// List serial ports with their USB ids, serial numbers and the likely chip.
///
/// The likely chip comes from the USB ids the board profiles list (CP210x, CH340, FTDI
/// bridges; the ESP32-C3's own USB-Serial-JTAG).
///
/// Example:
///   hil ports
#[derive(Debug, clap::Args)]
#[command(verbatim_doc_comment)]
pub struct PortsArgs {}

/// A serial monitor with timestamps: what the board prints, on stdout; what you type,
/// to the board. Ctrl-C exits (130, the trace complete); with --trace every line is also
/// in the trace file. The port is locked meanwhile: another hil waits for it.
///
/// Examples:
///   hil monitor --port /dev/ttyUSB0
///   hil monitor --board bench1 --trace monitor.jsonl
#[derive(Debug, clap::Args)]
#[command(verbatim_doc_comment)]
pub struct MonitorArgs {
    #[command(flatten)]
    target: Target,
    #[command(flatten)]
    labgrid: LabgridArgs,
    /// Write every line to this trace file (JSON Lines) as it arrives.
    #[arg(long, value_name = "FILE")]
    trace: Option<PathBuf>,
}

/// Store Wi-Fi and broker settings on a board with the firmware's `config` command.
///
/// The Wi-Fi password comes from the environment variable named by --password-env
/// (default HIL_WIFI_PASSWORD) or, on a terminal, from a prompt; it is never printed,
/// logged or written to a trace.
///
/// Example:
///   HIL_WIFI_PASSWORD=… hil provision --board bench1 --ssid home --broker 192.168.1.10:1883
#[derive(Debug, clap::Args)]
#[command(verbatim_doc_comment)]
pub struct ProvisionArgs {
    #[command(flatten)]
    target: Target,
    #[command(flatten)]
    labgrid: LabgridArgs,
    #[arg(long)]
    ssid: Option<String>,
    /// The broker as HOST:PORT.
    #[arg(long, value_name = "HOST:PORT")]
    broker: Option<String>,
    #[arg(long)]
    client_id: Option<String>,
    #[arg(long)]
    topic: Option<String>,
    /// The environment variable holding the Wi-Fi password.
    #[arg(long, value_name = "VAR", default_value = "HIL_WIFI_PASSWORD")]
    password_env: String,
    /// Store no password (open network, or keep the one stored).
    #[arg(long)]
    no_password: bool,
}

/// Which port: a path, or a board of the bench config.
#[derive(Debug, clap::Args)]
pub struct Target {
    /// A serial port: a device path, or rfc2217://HOST:PORT (served over the network).
    #[arg(
        long,
        value_name = "PORT",
        value_parser = PortName::parse,
        required_unless_present = "board",
        conflicts_with = "board"
    )]
    port: Option<PortName>,
    /// A board of the bench config (hil.toml).
    #[arg(long, value_name = "NAME")]
    board: Option<String>,
    /// With --port: the board profile (baud rate, patterns, commands).
    #[arg(long, value_name = "NAME", requires = "port")]
    profile: Option<String>,
    /// The bench config for --board (default: hil.toml in the working directory).
    #[arg(long, value_name = "FILE")]
    config: Option<PathBuf>,
    /// How long to wait for a port (or labgrid place) that another holds.
    #[arg(long, value_name = "DURATION", default_value = "10s", value_parser = humantime::parse_duration)]
    lock_timeout: Duration,
}

/// An open board, and the labgrid place it is on (held while the board is used).
struct Opened {
    board: SerialBoard,
    place: Option<HeldPlace>,
}

impl Target {
    /// Opens the port as a board named after it; a labgrid place is taken first.
    async fn open(&self, labgrid: &LabgridArgs, trace: Trace) -> Result<Opened, Failure> {
        let mut place = None;
        let (name, port, profile, control) = match (&self.port, &self.board) {
            (Some(port), _) => {
                let profile = match &self.profile {
                    Some(name) => {
                        Profile::find(name, None).map_err(|e| Failure::new(Exit::Usage, e))?
                    }
                    None => Profile::bundled("sim-pty").expect("bundled"),
                };
                ("board".to_string(), port.clone(), profile, None)
            }
            (None, Some(name)) => {
                let config = BenchConfig::load(self.config.as_deref())
                    .map_err(|e| Failure::new(Exit::Usage, e))?;
                let bench = config
                    .board(name)
                    .map_err(|e| Failure::new(Exit::Usage, e))?;
                let (bench, held) = labgrid.take_async(bench, self.lock_timeout).await?;
                place = held;
                let port = serial::resolve_port(&bench)
                    .map_err(|e| Failure::new(Exit::Infrastructure, e))?;
                (
                    name.clone(),
                    port,
                    bench.profile.clone(),
                    bench.control.clone(),
                )
            }
            (None, None) => {
                return Err(Failure::new(
                    Exit::Usage,
                    "give --port PATH or --board NAME",
                ))
            }
        };
        let board = SerialBoard::open(PortSetup {
            name: &name,
            port: &port,
            profile,
            control: control.as_deref(),
            trace,
            lock_timeout: self.lock_timeout,
        })
        .await
        .map_err(|e| Failure::new(Exit::Infrastructure, e))?;
        Ok(Opened { board, place })
    }
}

pub fn ports(_: &PortsArgs) -> Result<Exit, Failure> {
    let ports = hil::port::list().map_err(|e| Failure::new(Exit::Infrastructure, e))?;
    if ports.is_empty() {
        println!("no serial ports found");
        return Ok(Exit::Success);
    }
    let profiles: Vec<Profile> = profile::known_names()
        .into_iter()
        .filter_map(Profile::bundled)
        .collect();
    println!(
        "{:<24} {:<10} {:<18} {:<28} likely",
        "port", "usb id", "serial", "product"
    );
    for port in ports {
        let (usb_id, serial, product, likely) = match &port.port_type {
            serialport::SerialPortType::UsbPort(usb) => {
                let likely: Vec<String> = profiles
                    .iter()
                    .filter(|p| p.usb.contains(&(usb.vid, usb.pid)))
                    .map(|p| match p.chip {
                        Some(chip) => format!("{} ({})", chip.name(), p.name),
                        None => p.name.clone(),
                    })
                    .collect();
                (
                    format!("{:04x}:{:04x}", usb.vid, usb.pid),
                    usb.serial_number.clone().unwrap_or_default(),
                    usb.product.clone().unwrap_or_default(),
                    likely.join(", "),
                )
            }
            other => (
                format!("{other:?}"),
                String::new(),
                String::new(),
                String::new(),
            ),
        };
        println!(
            "{:<24} {usb_id:<10} {serial:<18} {product:<28} {likely}",
            port.port_name
        );
    }
    Ok(Exit::Success)
}

pub async fn monitor(args: MonitorArgs) -> Result<Exit, Failure> {
    let trace = Trace::start(TraceOptions {
        file: args.trace.as_deref(),
        keep_in_memory: true,
    })?;
    let stop = stop_signal();
    tokio::pin!(stop);
    let opened = args.target.open(&args.labgrid, trace.clone()).await?;
    let mut board = opened.board;
    eprintln!("hil monitor: {} open; Ctrl-C exits", board.port());
    let color = std::io::stdout().is_terminal() && std::env::var_os("NO_COLOR").is_none();
    let printer = tokio::spawn(print_lines(trace.clone(), color));
    let mut input = BufReader::new(tokio::io::stdin()).lines();
    // After the end of input (stdin from /dev/null, a closed pipe) it only listens.
    let mut typing = true;
    let outcome = loop {
        tokio::select! {
            signal = &mut stop => break signal.map(|_| Exit::Interrupted),
            line = input.next_line(), if typing => match line {
                Ok(Some(line)) => {
                    if let Err(e) = board.send_serial(&line).await {
                        break Err(Failure::new(Exit::Infrastructure, e));
                    }
                }
                Ok(None) => typing = false,
                Err(e) => break Err(Failure::new(Exit::Infrastructure, format!("stdin: {e}"))),
            },
        }
    };
    board.stop().await;
    // Released only once the board has let go of the port.
    drop(opened.place);
    printer.abort();
    trace.finish()?;
    outcome
}

async fn print_lines(trace: Trace, color: bool) {
    let mut cursor = trace.cursor_at(0);
    loop {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(3600);
        let Some(event) = cursor.next_before(deadline).await else {
            continue;
        };
        let text = match &event.body {
            EventBody::Serial { line, .. } => line.clone(),
            EventBody::Board { change, .. } => format!("[{change:?}]"),
            _ => continue,
        };
        let stamp = format!("{:>10.3}", event.t_us as f64 / 1000.0);
        if color {
            println!("\x1b[2m{stamp}\x1b[0m  {text}");
        } else {
            println!("{stamp}  {text}");
        }
    }
}

pub async fn provision(args: ProvisionArgs) -> Result<Exit, Failure> {
    let mut settings = Settings::default();
    if let Some(ssid) = &args.ssid {
        settings.set("ssid", ssid.clone());
    }
    if !args.no_password {
        settings.set("password", password(&args.password_env)?);
    }
    for (key, value) in [
        ("broker", &args.broker),
        ("client_id", &args.client_id),
        ("topic", &args.topic),
    ] {
        if let Some(value) = value {
            settings.set(key, value.clone());
        }
    }
    if settings.is_empty() {
        return Err(Failure::new(
            Exit::Usage,
            "nothing to store: give --ssid, --broker, --client-id or --topic",
        ));
    }
    // The trace stays in memory and is dropped: the board's answer is all we keep.
    let opened = args.target.open(&args.labgrid, Trace::in_memory()).await?;
    let mut board = opened.board;
    let answer = board.configure(&settings).await;
    board.stop().await;
    // Released only once the board has let go of the port.
    drop(opened.place);
    let answer = answer.map_err(|e| Failure::new(Exit::Infrastructure, e))?;
    println!("{answer}");
    Ok(Exit::Success)
}

fn password(variable: &str) -> Result<String, Failure> {
    if let Ok(password) = std::env::var(variable) {
        return Ok(password);
    }
    if !std::io::stdin().is_terminal() {
        return Err(Failure::new(
            Exit::Usage,
            format!("no Wi-Fi password: set {variable}, or pass --no-password"),
        ));
    }
    rpassword::prompt_password("Wi-Fi password: ").map_err(|e| {
        Failure::new(
            Exit::Infrastructure,
            format!("cannot read the password: {e}"),
        )
    })
}
