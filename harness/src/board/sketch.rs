//! The sketch board: the Arduino sketch itself (`firmware/light_controller/`), built for
//! the host against hil's host Arduino core, running as a child process. Everything the
//! sketch adds to the core runs: the Wi-Fi join, PubSubClient's synchronous connect and
//! its buffer, the pin reads, EEPROM, `ESP.restart()`, the serial loop.
//!
//! One process is one powered board: power off kills it (RAM lost), power on starts it
//! again on the same EEPROM file. The process speaks the line protocol of
//! `firmware/host_arduino/host.h` on its stdin and stdout; its MQTT goes over real TCP to
//! the broker its EEPROM names. What it reports is recorded exactly as the core simulator
//! records it, so expectations and snapshots read both the same.

use std::collections::VecDeque;
use std::future::Future;
use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader, Lines};
use tokio::process::{Child, ChildStdin, ChildStdout};
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;
use tokio::time::Instant;

use super::profile::Patterns;
use super::sim::{self, Command, SimSetup};
use super::BoardError;
use crate::trace::{BoardChange, EventBody};

/// Contact bounce edges are this far apart (as on the core simulator).
const BOUNCE_EDGE: Duration = Duration::from_millis(1);
/// A finger stays on the button this long.
const PRESS_LENGTH: Duration = Duration::from_millis(40);
/// From starting the process to the end of `setup()`.
const BOOT_DEADLINE: Duration = Duration::from_secs(10);
/// How long a board may take to reach a wait of its firmware when power is to go.
const HALT_DEADLINE: Duration = Duration::from_secs(3);

/// Which build plays a run's simulated boards (`hil run --sim`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Simulator {
    /// The C core with hil's own HAL, in process.
    #[default]
    Core,
    /// The Arduino sketch on the host Arduino core, one process per board.
    Sketch,
}

/// The board program: `HIL_SKETCH_BOARD` (another host build of the sketch), else the
/// build that comes with hil.
pub fn program() -> PathBuf {
    std::env::var_os("HIL_SKETCH_BOARD")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(hil_firmware::SKETCH_BOARD))
}

enum Request {
    Command(Command),
    /// Raw bytes on the serial input, as from a noisy line.
    Bytes(Vec<u8>),
}

/// A running sketch board.
pub struct SketchBoard {
    requests: mpsc::Sender<(Request, oneshot::Sender<()>)>,
    task: JoinHandle<()>,
    eeprom: Eeprom,
}

/// The board's EEPROM file, and where what the sketch stored in it goes when the board
/// stops (a virtual chip's flash), if anywhere.
struct Eeprom {
    path: PathBuf,
    initial: Vec<u8>,
    writes: Option<mpsc::UnboundedSender<Vec<u8>>>,
    /// Holds the file for the life of the board.
    _dir: tempfile::TempDir,
}

/// The virtual chip's app: the sketch on the host Arduino core, booted from the settings
/// in the chip's flash. It runs the version it was built with, whatever the image says.
pub struct SketchOnChip;

impl crate::chip::Firmware for SketchOnChip {
    fn boot(&self, setup: crate::chip::AppSetup) -> crate::chip::Booting {
        let has_network = setup.broker.is_some();
        let setup = sim::chip_setup(setup, None);
        Box::pin(async move {
            let board = SketchBoard::start(setup, program())
                .await
                .map_err(|e| e.to_string())?;
            sim::booted_on_chip(board, has_network).await
        })
    }
}

impl SketchBoard {
    /// Stores the setup's settings (or what its storage holds) in a fresh EEPROM, powers
    /// the board on and waits for the end of its `setup()`.
    pub async fn start(setup: SimSetup, program: PathBuf) -> Result<SketchBoard, BoardError> {
        if let Some(version) = &setup.version {
            if version != hil_firmware::VERSION {
                return Err(BoardError::WrongProfile {
                    board: setup.name.clone(),
                    reason: format!(
                        "version {version:?}: a sketch board boots the version it was built with ({}); use `profile: sim` for another version",
                        hil_firmware::VERSION
                    ),
                });
            }
        }
        let dir = tempfile::tempdir().map_err(|e| BoardError::SketchStart {
            board: setup.name.clone(),
            reason: e.to_string(),
        })?;
        let path = dir.path().join("eeprom.bin");
        let stored = setup.storage.as_ref().and_then(|s| s.stored.clone());
        let initial = stored.unwrap_or_else(|| sim::provision(&setup));
        std::fs::write(&path, &initial).map_err(|e| BoardError::SketchStart {
            board: setup.name.clone(),
            reason: format!("cannot write {}: {e}", path.display()),
        })?;
        let eeprom = Eeprom {
            path: path.clone(),
            initial,
            writes: setup.storage.as_ref().map(|s| s.writes.clone()),
            _dir: dir,
        };
        let mut board = Board {
            setup,
            program,
            eeprom: path,
            process: None,
            access_point: true,
            edges: VecDeque::new(),
        };
        // One board after the other: boards that power on at once all connect at once,
        // and PubSubClient gives up on a CONNACK after 2 s, so a crowd would churn.
        board.power_on().await?;
        let (requests, inbox) = mpsc::channel(64);
        let task = tokio::spawn(run(board, inbox));
        Ok(SketchBoard {
            requests,
            task,
            eeprom,
        })
    }

    /// Hands a command to the board and waits until it has been passed on.
    pub async fn send(&self, command: Command) -> Result<(), BoardError> {
        self.request(Request::Command(command)).await
    }

    pub async fn send_bytes(&self, bytes: &[u8]) -> Result<(), BoardError> {
        self.request(Request::Bytes(bytes.to_vec())).await
    }

    async fn request(&self, request: Request) -> Result<(), BoardError> {
        let (done, acted) = oneshot::channel();
        self.requests
            .send((request, done))
            .await
            .map_err(|_| BoardError::Stopped("sketch"))?;
        acted.await.map_err(|_| BoardError::Stopped("sketch"))
    }

    /// Stops the board; what the sketch stored goes to the setup's storage, if any.
    pub async fn stop(self) {
        self.task.abort();
        let _ = self.task.await;
        let Eeprom {
            path,
            initial,
            writes,
            _dir,
        } = self.eeprom;
        if let (Some(writes), Ok(stored)) = (writes, std::fs::read(&path)) {
            if stored != initial {
                // A storage whose keeper is gone has nobody left to read it.
                let _ = writes.send(stored);
            }
        }
    }
}

impl sim::Commanded for SketchBoard {
    fn command(&self, command: Command) -> impl Future<Output = Result<(), BoardError>> + Send {
        self.send(command)
    }

    fn console_noise<'a>(
        &'a self,
        bytes: &'a [u8],
    ) -> impl Future<Output = Result<(), BoardError>> + Send + 'a {
        self.send_bytes(bytes)
    }

    fn halt(self) -> impl Future<Output = ()> + Send {
        self.stop()
    }
}

/// The board process while it runs.
struct Process {
    child: Child,
    input: ChildStdin,
    output: Lines<BufReader<ChildStdout>>,
    pins: Pins,
    /// `ESP.restart()` was called: the end of the process is a restart, not a crash.
    restarting: bool,
    /// Reports since the last `sync`, recorded together when it comes.
    held: Vec<EventBody>,
}

/// What the board process said about its pins.
#[derive(Default)]
struct Pins {
    relay: Option<u8>,
    button: Option<u8>,
    relay_active_low: bool,
}

struct Board {
    setup: SimSetup,
    program: PathBuf,
    eeprom: PathBuf,
    process: Option<Process>,
    /// The access point is in range (the scenario's `wifi` step); outlives power cycles.
    access_point: bool,
    /// Button edges still to happen: (when, pressed).
    edges: VecDeque<(Instant, bool)>,
}

/// What the board task woke up for.
enum Wake {
    Request(Option<(Request, oneshot::Sender<()>)>),
    Line(std::io::Result<Option<String>>),
    Edge,
}

async fn run(mut board: Board, mut inbox: mpsc::Receiver<(Request, oneshot::Sender<()>)>) {
    loop {
        let next_edge = board.edges.front().map(|(at, _)| *at);
        let wake = tokio::select! {
            request = inbox.recv() => Wake::Request(request),
            line = next_line(&mut board.process) => Wake::Line(line),
            () = sleep_until(next_edge) => Wake::Edge,
        };
        match wake {
            Wake::Request(None) => {
                board.power_off().await;
                return;
            }
            Wake::Request(Some((request, done))) => {
                board.carry_out(request).await;
                let _ = done.send(());
            }
            Wake::Line(Ok(Some(line))) => board.hear(&line).await,
            Wake::Line(_) => board.ended().await,
            Wake::Edge => {
                if let Some((_, pressed)) = board.edges.pop_front() {
                    board.drive_button(pressed).await;
                }
            }
        }
    }
}

async fn next_line(process: &mut Option<Process>) -> std::io::Result<Option<String>> {
    match process {
        Some(process) => process.output.next_line().await,
        None => std::future::pending().await,
    }
}

async fn sleep_until(at: Option<Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

impl Board {
    fn record(&self, body: EventBody) {
        self.setup.trace.record(body);
    }

    fn record_change(&self, change: BoardChange) {
        self.record(EventBody::Board {
            board: self.setup.name.clone(),
            change,
        });
    }

    /// Starts the board process and reads what it says until its `setup()` has returned.
    async fn power_on(&mut self) -> Result<(), BoardError> {
        self.spawn()?;
        self.boot().await
    }

    /// Starts the board process.
    fn spawn(&mut self) -> Result<(), BoardError> {
        let name = &self.setup.name;
        let mut command = tokio::process::Command::new(&self.program);
        command
            .arg("--eeprom")
            .arg(&self.eeprom)
            .args(["--seed", &self.setup.seed.to_string()])
            .args(["--ap", if self.access_point { "up" } else { "down" }])
            .env_remove("HIL_MQTT_USER")
            .env_remove("HIL_MQTT_PASSWORD")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .kill_on_drop(true);
        if let Some(credentials) = &self.setup.credentials {
            command
                .env("HIL_MQTT_USER", &credentials.username)
                .env("HIL_MQTT_PASSWORD", &credentials.password);
        }
        let mut child = command.spawn().map_err(|e| BoardError::SketchStart {
            board: name.clone(),
            reason: format!(
                "cannot start the sketch board {}: {e}; build it with `cargo build -p hil-firmware`, or point HIL_SKETCH_BOARD at a host build of the sketch",
                self.program.display()
            ),
        })?;
        let (Some(input), Some(output)) = (child.stdin.take(), child.stdout.take()) else {
            return Err(BoardError::SketchStart {
                board: name.clone(),
                reason: "the sketch board has no stdin or stdout".to_string(),
            });
        };
        self.process = Some(Process {
            child,
            input,
            output: BufReader::new(output).lines(),
            pins: Pins::default(),
            restarting: false,
            held: Vec::new(),
        });
        Ok(())
    }

    /// Reads what the board says until its `setup()` has returned.
    async fn boot(&mut self) -> Result<(), BoardError> {
        let deadline = Instant::now() + BOOT_DEADLINE;
        loop {
            let line = tokio::time::timeout_at(deadline, next_line(&mut self.process)).await;
            match line {
                Ok(Ok(Some(line))) if line == "ready" => return Ok(()),
                Ok(Ok(Some(line))) => self.hear(&line).await,
                Ok(_) => {
                    self.power_off().await;
                    return Err(BoardError::SketchEnded {
                        board: self.setup.name.clone(),
                        program: self.program.clone(),
                        reason: "ended during setup()".to_string(),
                    });
                }
                Err(_) => {
                    self.power_off().await;
                    return Err(BoardError::SketchSilent {
                        board: self.setup.name.clone(),
                        program: self.program.clone(),
                        within: humantime::format_duration(BOOT_DEADLINE).to_string(),
                    });
                }
            }
        }
    }

    /// Power gone: the process is killed (its TCP connection closes without DISCONNECT)
    /// and the relay drops out.
    async fn power_off(&mut self) {
        self.edges.clear();
        self.stop_at_next_wait("halt").await;
        self.end_process().await;
    }

    /// A clean shutdown: the board closes its MQTT session with DISCONNECT, then the power
    /// goes.
    async fn leave(&mut self) {
        self.edges.clear();
        self.stop_at_next_wait("leave").await;
        self.record_change(BoardChange::PowerOff);
        self.end_process().await;
    }

    async fn end_process(&mut self) {
        let Some(mut process) = self.process.take() else {
            return;
        };
        let _ = process.child.start_kill();
        let _ = process.child.wait().await;
        self.record(EventBody::Relay {
            board: self.setup.name.clone(),
            on: false,
        });
    }

    /// Lets the firmware finish what it is doing (recording what it reports) and stop at
    /// its next wait, so power goes between two of its steps; `leave` closes its MQTT
    /// sessions first, `halt` does not.
    async fn stop_at_next_wait(&mut self, how: &str) {
        if self.process.is_none() {
            return;
        }
        self.tell(how).await;
        let deadline = Instant::now() + HALT_DEADLINE;
        loop {
            match tokio::time::timeout_at(deadline, next_line(&mut self.process)).await {
                Ok(Ok(Some(line))) if line == "halted" => return,
                Ok(Ok(Some(line))) => self.hear(&line).await,
                _ => return,
            }
        }
    }

    /// The process ended by itself: a restart it asked for, or a crash (the board then
    /// stays dark, as a board whose firmware hangs).
    async fn ended(&mut self) {
        let restarting = self.process.as_ref().is_some_and(|p| p.restarting);
        if restarting {
            self.record_change(BoardChange::Reset);
        } else {
            tracing::warn!(board = %self.setup.name, "the sketch board ended by itself");
        }
        self.power_off().await;
        if restarting {
            self.power_on_or_warn().await;
        }
    }

    async fn power_on_or_warn(&mut self) {
        if let Err(error) = self.power_on().await {
            tracing::warn!(board = %self.setup.name, "{error}");
        }
    }

    /// One line from the board process. Reports are held until `sync`, then recorded
    /// at once and answered `ok`, which lets the board go on.
    async fn hear(&mut self, line: &str) {
        if self.take_line(line) {
            if let Some(process) = self.process.as_mut() {
                for event in process.held.drain(..) {
                    self.setup.trace.record(event);
                }
            }
            self.tell("ok").await;
        }
    }

    /// Returns whether the line was a `sync`.
    fn take_line(&mut self, line: &str) -> bool {
        let name = self.setup.name.clone();
        let Some(process) = self.process.as_mut() else {
            return false;
        };
        let mut words = line.split(' ');
        match (words.next(), words.next(), words.next()) {
            (Some("serial"), hex, None) => {
                let bytes = decode_hex(hex.unwrap_or(""));
                let text = String::from_utf8_lossy(&bytes).into_owned();
                let report = Patterns::light_controller().report(&name, &text);
                process.held.push(EventBody::Serial {
                    board: name,
                    line: text,
                });
                process.held.extend(report);
            }
            (Some("mode"), Some(pin), Some(mode)) => {
                let Ok(pin) = pin.parse::<u8>() else {
                    return false;
                };
                let pins = &mut process.pins;
                match mode {
                    "OUTPUT" if pins.relay.is_none() => pins.relay = Some(pin),
                    "INPUT_PULLUP" if pins.button.is_none() => pins.button = Some(pin),
                    _ => {}
                }
            }
            (Some("pin"), Some(pin), Some(level)) => {
                let pins = &process.pins;
                if pin.parse::<u8>().ok() == pins.relay {
                    let on = (level == "1") != pins.relay_active_low;
                    process.held.push(EventBody::Relay { board: name, on });
                }
            }
            (Some("sync"), None, None) => return true,
            (Some("halted"), None, None) => {}
            (Some("hello"), _, _) => {
                process.pins.relay_active_low = line.contains("relay_active_low=1");
            }
            (Some("restart"), None, None) => process.restarting = true,
            _ => tracing::warn!(board = %name, "the sketch board said {line:?}"),
        }
        false
    }

    async fn carry_out(&mut self, request: Request) {
        let command = match request {
            Request::Bytes(bytes) => return self.tell(&format!("rx {}", encode_hex(&bytes))).await,
            Request::Command(command) => command,
        };
        match command {
            Command::Press { bounce } => {
                self.record_change(BoardChange::SwitchPressed);
                self.drive_button(true).await;
                let now = Instant::now();
                // First edge now; then `bounce` release/press pairs, 1 ms apart; then release.
                let mut at = now;
                for _ in 0..bounce {
                    at += BOUNCE_EDGE;
                    self.edges.push_back((at, false));
                    at += BOUNCE_EDGE;
                    self.edges.push_back((at, true));
                }
                self.edges
                    .push_back((now + PRESS_LENGTH.max(at - now + BOUNCE_EDGE), false));
            }
            Command::Serial(line) => {
                let mut bytes = line.into_bytes();
                bytes.push(b'\n');
                self.tell(&format!("rx {}", encode_hex(&bytes))).await;
            }
            Command::Reset => {
                self.record_change(BoardChange::Reset);
                self.power_off().await;
                self.power_on_or_warn().await;
            }
            Command::PowerOff => {
                self.record_change(BoardChange::PowerOff);
                self.power_off().await;
            }
            Command::Leave => self.leave().await,
            Command::PowerOn => {
                self.record_change(BoardChange::PowerOn);
                if self.process.is_none() {
                    self.power_on_or_warn().await;
                }
            }
            Command::Wifi { up } => {
                self.record_change(if up {
                    BoardChange::WifiUp
                } else {
                    BoardChange::WifiDown
                });
                self.access_point = up;
                self.tell(if up { "wifi up" } else { "wifi down" }).await;
            }
        }
    }

    /// The wall switch connects the button pin to ground while pressed.
    async fn drive_button(&mut self, pressed: bool) {
        let Some(pin) = self.process.as_ref().and_then(|p| p.pins.button) else {
            return;
        };
        self.tell(&format!("pin {pin} {}", if pressed { 0 } else { 1 }))
            .await;
    }

    /// One line to the board process; a board that is off or gone hears nothing.
    async fn tell(&mut self, line: &str) {
        if let Some(process) = self.process.as_mut() {
            let mut bytes = line.as_bytes().to_vec();
            bytes.push(b'\n');
            let _ = process.input.write_all(&bytes).await;
        }
    }
}

fn encode_hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn decode_hex(text: &str) -> Vec<u8> {
    (0..text.len() / 2)
        .filter_map(|i| text.get(2 * i..2 * i + 2))
        .filter_map(|pair| u8::from_str_radix(pair, 16).ok())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hex_round_trips_every_byte() {
        let bytes: Vec<u8> = (0..=255).collect();
        assert_eq!(decode_hex(&encode_hex(&bytes)), bytes);
    }
}
