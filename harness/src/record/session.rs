//! The live session of `hil record`: the run's broker (with its tap recording), one board
//! (simulated, or a bench board as in `hil run`), the person's commands for it, and the
//! stop.

use std::future::Future;
use std::net::IpAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncBufRead, AsyncBufReadExt};

use super::draft::BoardRole;
use crate::board::{self, BenchBoard, Board, BoardError, BoardSetup, Simulator};
use crate::broker::{Broker, BrokerConfig, BrokerError};
use crate::login::Credentials;
use crate::trace::{Event, EventBody, Trace, TraceFileError, TraceOptions};

/// What a recording session runs.
pub struct RecordSetup<'a> {
    pub broker: BrokerConfig,
    pub board: &'a BoardRole,
    /// The bench board that plays the role; `None`: the simulator.
    pub bench: Option<&'a BenchBoard>,
    /// The address a bench board is told to reach the broker at, when it is not the
    /// one the broker listens on.
    pub broker_host: Option<IpAddr>,
    pub lock_timeout: Duration,
    /// What the simulated board logs in with.
    pub credentials: Option<&'a Credentials>,
    /// The core the simulated board runs.
    pub firmware: &'a hil_firmware::Firmware,
    /// Where the trace is written as it happens, besides memory.
    pub trace_file: Option<&'a Path>,
}

/// Why a session could not start or end cleanly.
#[derive(Debug, thiserror::Error)]
pub enum RecordError {
    #[error(transparent)]
    Trace(#[from] TraceFileError),
    #[error(transparent)]
    Broker(#[from] BrokerError),
    #[error("board {board}: {source}")]
    Board { board: String, source: BoardError },
}

/// A running session.
pub struct Recorder {
    broker: Broker,
    board: Box<dyn Board>,
    /// The board's role: its events carry this name.
    role: String,
    trace: Trace,
}

/// What a session recorded.
#[derive(Debug, Clone)]
pub struct Recording {
    /// Every event up to the stop (the board's own stop is not part of it).
    pub events: Vec<Arc<Event>>,
    /// The firmware version the board's boot line announced first.
    pub firmware: Option<String>,
    /// Events the memory did not keep (the trace file has them).
    pub not_kept: u64,
}

impl Recorder {
    /// Starts the broker, then the board, which boots and connects by itself.
    pub async fn start(setup: RecordSetup<'_>) -> Result<Recorder, RecordError> {
        let trace = Trace::start(TraceOptions {
            file: setup.trace_file,
            keep_in_memory: true,
        })?;
        let broker = Broker::start(setup.broker, trace.clone()).await?;
        let (reach, network) = broker.route_for_board(setup.bench.is_some(), setup.broker_host);
        let role = setup.board;
        let started = board::start(BoardSetup {
            name: &role.name,
            client_id: &role.client_id,
            spec: &role.spec,
            broker: reach,
            network,
            trace: trace.clone(),
            seed: fastrand::u64(..),
            bench: setup.bench,
            lock_timeout: setup.lock_timeout,
            namespace: None,
            credentials: setup.credentials,
            simulator: Simulator::Core,
            firmware: setup.firmware,
        })
        .await;
        let board = match started {
            Ok(board) => board,
            Err(source) => {
                let _ = broker.stop().await;
                return Err(RecordError::Board {
                    board: role.name.clone(),
                    source,
                });
            }
        };
        Ok(Recorder {
            broker,
            board,
            role: role.name.clone(),
            trace,
        })
    }

    /// `mqtt://HOST:PORT`, for the phone app and any MQTT client.
    pub fn url(&self) -> String {
        self.broker.url()
    }

    pub fn trace(&self) -> &Trace {
        &self.trace
    }

    /// Carries out one of the person's commands on the board.
    pub async fn apply(&mut self, command: BoardCommand) -> Result<(), BoardError> {
        match command {
            BoardCommand::Press => self.board.press(0).await,
            BoardCommand::Reset => self.board.reset().await,
            BoardCommand::Wifi { up } => self.board.wifi(up).await,
            BoardCommand::Power { off_for } => self.board.power_cycle(off_for).await,
        }
    }

    /// Ends the session: what was recorded until now, then the board and the broker
    /// stop and the trace file is completed.
    pub async fn finish(self) -> Result<Recording, RecordError> {
        let events = self.trace.events_from(0);
        let firmware = events.iter().find_map(|event| match &event.body {
            EventBody::Serial { board, line } if *board == self.role => {
                self.board.boot_version(line)
            }
            _ => None,
        });
        let not_kept = self.trace.not_kept();
        self.board.stop().await;
        self.broker.stop().await?;
        self.trace.finish()?;
        Ok(Recording {
            events,
            firmware,
            not_kept,
        })
    }
}

/// What the person can do to the board from the keyboard.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BoardCommand {
    Press,
    Reset,
    Wifi { up: bool },
    Power { off_for: Duration },
}

/// A line typed during the session.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Typed {
    Board(BoardCommand),
    Help,
    Stop,
}

/// What `help` prints.
pub const COMMANDS: &str = "\
commands:
  press         press the wall switch
  reset         reboot the board
  wifi down|up  cut or restore the board's network link (simulated boards)
  power [DUR]   power off for DUR (default 100ms), then on again
  help          this list
  stop          end the recording and write the draft (Ctrl-C does the same)";

impl std::str::FromStr for Typed {
    type Err = String;

    fn from_str(line: &str) -> Result<Typed, String> {
        let words: Vec<&str> = line.split_whitespace().collect();
        let command = match words.as_slice() {
            ["press"] => BoardCommand::Press,
            ["reset"] => BoardCommand::Reset,
            ["wifi", "down"] => BoardCommand::Wifi { up: false },
            ["wifi", "up"] => BoardCommand::Wifi { up: true },
            ["power"] => BoardCommand::Power {
                off_for: crate::steps::DEFAULT_OFF_FOR,
            },
            ["power", duration] => BoardCommand::Power {
                off_for: crate::steps::duration::parse(duration)?,
            },
            ["help"] => return Ok(Typed::Help),
            ["stop"] => return Ok(Typed::Stop),
            ["wifi", ..] => return Err("write `wifi down` or `wifi up`".into()),
            _ => {
                return Err(format!(
                    "unknown command {:?}: press, reset, wifi down|up, power [DUR], help or stop",
                    line.trim()
                ))
            }
        };
        Ok(Typed::Board(command))
    }
}

/// How a session ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ended {
    /// `stop` was typed.
    Stopped,
    /// The stop future (Ctrl-C, SIGTERM) fired.
    Signalled,
}

/// Takes the person's commands from `input` until `stop` is typed or `signal` fires;
/// `say` gets what they should read (errors, help). The end of the input ends nothing:
/// a session driven by the phone alone runs until it is stopped.
pub async fn drive<S, E>(
    recorder: &mut Recorder,
    input: impl AsyncBufRead + Unpin,
    signal: S,
    mut say: impl FnMut(&str),
) -> Result<Ended, E>
where
    S: Future<Output = Result<(), E>>,
{
    let mut lines = input.lines();
    let mut input_open = true;
    tokio::pin!(signal);
    loop {
        let line = tokio::select! {
            biased;
            result = &mut signal => return result.map(|()| Ended::Signalled),
            line = lines.next_line(), if input_open => line,
        };
        let line = match line {
            Ok(Some(line)) => line,
            Ok(None) => {
                input_open = false;
                say("input closed: the recording goes on until Ctrl-C or SIGTERM");
                continue;
            }
            Err(e) => {
                input_open = false;
                say(&format!(
                    "cannot read commands ({e}): the recording goes on until Ctrl-C or SIGTERM"
                ));
                continue;
            }
        };
        if line.trim().is_empty() {
            continue;
        }
        match line.parse::<Typed>() {
            Ok(Typed::Stop) => return Ok(Ended::Stopped),
            Ok(Typed::Help) => say(COMMANDS),
            Ok(Typed::Board(command)) => {
                if let Err(e) = recorder.apply(command).await {
                    say(&format!("{}: {e}", line.trim()));
                }
            }
            Err(e) => say(&e),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn typed_commands_read_as_the_help_says() {
        let typed = |line: &str| line.parse::<Typed>();
        assert_eq!(typed(" press "), Ok(Typed::Board(BoardCommand::Press)));
        assert_eq!(
            typed("wifi down"),
            Ok(Typed::Board(BoardCommand::Wifi { up: false }))
        );
        assert_eq!(
            typed("power"),
            Ok(Typed::Board(BoardCommand::Power {
                off_for: Duration::from_millis(100)
            }))
        );
        assert_eq!(
            typed("power 2s"),
            Ok(Typed::Board(BoardCommand::Power {
                off_for: Duration::from_secs(2)
            }))
        );
        assert_eq!(typed("stop"), Ok(Typed::Stop));
        assert!(typed("wifi sideways").unwrap_err().contains("wifi up"));
        assert!(typed("power soon").unwrap_err().contains("500ms"));
        assert!(typed("jump")
            .unwrap_err()
            .contains("unknown command \"jump\""));
    }
}
