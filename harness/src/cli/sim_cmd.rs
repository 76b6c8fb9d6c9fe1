//! `hil sim`: simulated light controllers against any broker, driven from the keyboard.

use std::io::IsTerminal;
use std::time::Duration;

use hil::board::link::Network;
use hil::board::{Board, BoardSetup, Simulator};
use hil::exit::Exit;
use hil::scenario::BoardSpec;
use hil::trace::{Event, EventBody, Trace};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::sync::oneshot;

use super::{chip_cmd, stop_signal, Failure};

/// How long the console may take to print what the boards said last; stdout blocks
/// only when nobody reads it.
const PRINTER_DEADLINE: Duration = Duration::from_secs(2);

/// Run simulated light controllers (the real firmware core) against an MQTT broker.
///
/// Each board prints its `HIL …` serial lines on stdout. Type on stdin (a prompt shows
/// on a terminal; `help` lists the commands):
///   press [I]   press the wall switch of board I (0 to COUNT-1), or of every board
///   status [I]  print the status line
///   reset [I]   reboot
///   disconnect [I]
///               shut down cleanly: DISCONNECT, so the broker holds the will back; the
///               board stays off (without I: every board, and hil sim ends)
///   help        list these commands
///   quit        stop, as if the power went: connections drop without DISCONNECT, so
///               the brokers publish the boards' wills (offline); so does end of input;
///               Ctrl-C or SIGTERM too, exit code 130
///
/// With --pty, hil is instead one virtual ESP chip on a pseudo-terminal: the first line
/// on stdout is the port (/dev/pts/N); flash it with esptool (--before no-reset
/// --after no-reset --no-stub), espflash or hil flash, and read its console there. A pty
/// has no DTR/RTS, so the chip takes one-line commands on a Unix socket (PATH.ctl with
/// --link PATH), each answered `ok` or `error: …`:
///   reset       EN pulse: boot from flash
///   bootloader  reset into the serial loader (download mode)
///   hold        hold in reset, as without power: the app stops, its MQTT connection
///               drops without DISCONNECT (the will fires); until reset or bootloader
///   unplug      pull the cable: the pty closes and hil sim ends
/// A SYNC arriving while the app runs counts as a reset into the loader.
///
/// Examples:
///   hil sim --broker mqtt://127.0.0.1:1883
///   hil sim --broker mqtt://127.0.0.1:1883 --count 100 --topic lights
///   hil sim --pty --chip esp32c3 --link /tmp/c3 --broker mqtt://127.0.0.1:1883
///   echo reset | socat - UNIX-CONNECT:/tmp/c3.ctl
#[derive(Debug, clap::Args)]
#[command(verbatim_doc_comment)]
pub struct SimArgs {
    /// The broker, as mqtt://HOST:PORT (optional with --pty: the chip then has no network).
    #[arg(long, value_name = "URL", required_unless_present = "pty")]
    broker: Option<String>,
    /// The firmware topic.
    #[arg(long, default_value = "living_room_lights")]
    topic: String,
    /// How many boards; each gets client id `hil-sim-<i>` and topic `TOPIC/<i>`.
    #[arg(long, default_value_t = 1)]
    count: usize,
    /// With --count: every board uses TOPIC itself.
    #[arg(long)]
    shared_topic: bool,
    /// Run the Arduino sketch itself (on the host Arduino core, one process per board)
    /// instead of the firmware core; with --pty, the virtual chip boots it.
    #[arg(long, conflicts_with = "library")]
    sketch: bool,
    #[command(flatten)]
    firmware: super::FirmwareArg,
    #[command(flatten)]
    pty: chip_cmd::PtyArgs,
}

pub async fn run(args: SimArgs) -> Result<Exit, Failure> {
    let broker = args
        .broker
        .as_deref()
        .map(|url| super::broker_addr("--broker", url))
        .transpose()?;
    if args.pty.pty {
        return chip_cmd::run(args.pty, broker, args.sketch).await;
    }
    let firmware = args.firmware.load()?;
    let Some(broker) = broker else {
        return Err(Failure::new(
            Exit::Usage,
            "--broker is needed without --pty",
        ));
    };
    if args.count == 0 {
        return Err(Failure::new(Exit::Usage, "--count must be at least 1"));
    }
    // Each board holds one socket to the broker; say so before starting rather than
    // failing half-way through the fleet.
    let (fit, limit) = hil::broker::boards_that_fit(1);
    if args.count > fit {
        return Err(Failure::new(
            Exit::Infrastructure,
            format!(
                "{} boards do not fit: each holds a socket, and this process may open {limit} files (already raised as far as it may), room for {fit} boards; raise the hard limit (ulimit -Hn, or LimitNOFILE) or run fewer with --count {fit}",
                args.count
            ),
        ));
    }
    let trace = Trace::in_memory();
    let fleet = args.count > 1;
    let mut boards = Vec::with_capacity(args.count);
    for i in 0..args.count {
        let topic = if fleet && !args.shared_topic {
            format!("{}/{i}", args.topic)
        } else {
            args.topic.clone()
        };
        let spec = BoardSpec {
            topic: Some(topic),
            ..BoardSpec::of_profile(hil::board::profile::SIM)
        };
        let name = if fleet {
            format!("{i}")
        } else {
            "lamp".to_string()
        };
        let client_id = format!("hil-sim-{i}");
        let board = hil::board::start(BoardSetup {
            name: &name,
            client_id: &client_id,
            spec: &spec,
            broker,
            network: Network::default(),
            trace: trace.clone(),
            seed: i as u64,
            bench: None,
            lock_timeout: Duration::ZERO,
            namespace: None,
            credentials: None,
            simulator: if args.sketch {
                Simulator::Sketch
            } else {
                Simulator::Core
            },
            firmware: &firmware,
        })
        .await
        .map_err(|e| Failure::new(Exit::Infrastructure, e))?;
        boards.push(board);
    }
    let (finish, finished) = oneshot::channel();
    let printer = tokio::spawn(print_serial(trace.clone(), fleet, finished));
    let outcome = drive(&mut boards).await;
    for board in boards {
        board.stop().await;
    }
    let _ = finish.send(());
    if tokio::time::timeout(PRINTER_DEADLINE, printer)
        .await
        .is_err()
    {
        eprintln!(
            "hil sim: stdout took longer than {} to take the boards' last lines; some are missing",
            humantime::format_duration(PRINTER_DEADLINE)
        );
    }
    outcome
}

/// What `help` prints.
const COMMANDS: &str = "\
commands (I: a board number, 0 to COUNT-1; every board without it):
  press [I]   press the wall switch
  status [I]  print the status line
  reset [I]   reboot
  disconnect [I]
              shut down cleanly: DISCONNECT, so the broker holds the will back; the
              board stays off (without I: every board, and hil sim ends)
  help        this list
  quit        stop, as if the power went: connections drop without DISCONNECT, so the
              broker publishes each board's will (offline); end of input does the same";

/// Reads commands until `quit`, end of input, or a signal; prompts on a terminal.
async fn drive(boards: &mut [Box<dyn Board>]) -> Result<Exit, Failure> {
    let mut lines = BufReader::new(tokio::io::stdin()).lines();
    let prompt = || {
        if std::io::stdin().is_terminal() {
            eprint!("hil sim> ");
        }
    };
    let stop = stop_signal();
    tokio::pin!(stop);
    loop {
        prompt();
        let line = tokio::select! {
            // A signal that came with the end of input (a parent closing our stdin as it
            // waits) is still an interruption.
            biased;
            signal = &mut stop => return signal.map(|_| Exit::Interrupted),
            line = lines.next_line() => line.map_err(|e| Failure::new(Exit::Infrastructure, format!("stdin: {e}")))?,
        };
        let Some(line) = line else {
            return Ok(Exit::Success);
        };
        let mut words = line.split_whitespace();
        let Some(command) = words.next() else {
            continue;
        };
        let target = match words.next() {
            None => None,
            Some(word) => match word.parse::<usize>() {
                Ok(i) if i < boards.len() => Some(i),
                _ => {
                    eprintln!("{}", no_board(word, boards.len()));
                    continue;
                }
            },
        };
        match command {
            "quit" => return Ok(Exit::Success),
            "help" => {
                eprintln!("{COMMANDS}");
                continue;
            }
            _ => {}
        }
        for (i, board) in boards.iter_mut().enumerate() {
            if target.is_some_and(|t| t != i) {
                continue;
            }
            let done = match command {
                "press" => board.press(0).await,
                "status" => board.send_serial("status").await,
                "reset" => board.reset().await,
                "disconnect" => board.leave().await,
                other => {
                    eprintln!(
                        "unknown command {other:?}: press, status, reset, disconnect, help or quit"
                    );
                    break;
                }
            };
            done.map_err(|e| Failure::new(Exit::Infrastructure, e))?;
        }
        if command == "disconnect" && target.is_none() {
            return Ok(Exit::Success);
        }
    }
}

fn no_board(word: &str, count: usize) -> String {
    let boards = match count {
        1 => "there is one board, 0".to_string(),
        n => format!("the boards are 0 to {}", n - 1),
    };
    format!("no board {word}: {boards} (start more with --count)")
}

/// Prints the boards' serial lines as they come; once `finish` fires, prints what is
/// left and ends.
pub(super) async fn print_serial(trace: Trace, fleet: bool, mut finish: oneshot::Receiver<()>) {
    let mut cursor = trace.cursor_at(0);
    loop {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(3600);
        tokio::select! {
            event = cursor.next_before(deadline) => {
                if let Some(event) = event {
                    print_line(&event, fleet);
                }
            }
            _ = &mut finish => {
                for event in cursor.drain() {
                    print_line(&event, fleet);
                }
                return;
            }
        }
    }
}

fn print_line(event: &Event, fleet: bool) {
    if let EventBody::Serial { board, line } = &event.body {
        if fleet {
            println!("[{board}] {line}");
        } else {
            println!("{line}");
        }
    }
}
