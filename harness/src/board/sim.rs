//! The simulated board: the light-controller firmware core (C, through `hil-firmware`)
//! running on the host with a virtual relay, a virtual switch, a serial console that
//! goes into the trace, and an MQTT link through the tap that Wi-Fi faults can cut.
//!
//! One task per board owns the firmware. The firmware's HAL callbacks are synchronous,
//! so MQTT work they ask for is queued and carried out by the task after each call.

use std::collections::VecDeque;
use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::time::Duration;

use hil_firmware::{ConnectRequest, Controller, Firmware, Hal};
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;
use tokio::time::Instant;

use super::link::{LinkEvent, Network, Refusal, Requests, Session, SessionOptions};
use super::profile::{Commands, Patterns, Settings};
use super::BoardError;
use crate::login::Credentials;
use crate::trace::{BoardChange, EventBody, Trace};

/// Contact bounce edges are this far apart.
const BOUNCE_EDGE: Duration = Duration::from_millis(1);
/// A finger stays on the button this long.
const PRESS_LENGTH: Duration = Duration::from_millis(40);
const KEEP_ALIVE: Duration = Duration::from_secs(15);
/// From dialling to CONNACK. Generous: when ten thousand boards power on at once, the
/// engine answers them in turn over a minute, and a board that gave up would reconnect
/// behind the others, while the engine, still taking its first CONNECT, ends the new
/// session for the old one.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(120);
/// From `WiFi.begin` to joined. Real boards take seconds; a little is enough to keep a
/// rebooted board from reconnecting before the broker has seen its old socket close
/// (rumqttd can mistake the old connection's end for the new one's).
const WIFI_JOIN: Duration = Duration::from_millis(20);
/// How long a link the firmware closed may take to send what was queued on it.
const CLOSE_DEADLINE: Duration = Duration::from_secs(1);

pub struct SimSetup {
    pub name: String,
    pub client_id: String,
    pub topic: Option<String>,
    /// What the board logs in with; the firmware core has no MQTT login of its own, so
    /// the simulated network stack adds it, like credentials compiled into a build.
    pub credentials: Option<Credentials>,
    pub debounce: Option<Duration>,
    pub version: Option<String>,
    pub broker: SocketAddr,
    /// How the board's network reaches the broker.
    pub network: Network,
    pub trace: Trace,
    pub seed: u64,
    /// Where the firmware's stored settings live when something outside the board keeps
    /// them; `None`: in the board, provisioned from this setup.
    pub storage: Option<Storage>,
    /// The build of the core the board runs (`--firmware-lib`, or the built-in one).
    pub firmware: Firmware,
}

/// Settings storage outside the board, as a virtual chip keeps them in its flash, so
/// that they outlive the board.
pub struct Storage {
    /// What is stored (the firmware reads the first bytes it needs); `None` when
    /// nothing is: the board is then provisioned from its setup, without storing it.
    pub stored: Option<Vec<u8>>,
    /// Every record the firmware stores is sent here.
    pub writes: mpsc::UnboundedSender<Vec<u8>>,
}

pub enum Command {
    Press {
        bounce: u32,
    },
    Serial(String),
    Reset,
    PowerOff,
    PowerOn,
    Wifi {
        up: bool,
    },
    /// The MQTT session closed with DISCONNECT, then the power gone.
    Leave,
}

/// A running simulated board.
pub struct SimBoard {
    commands: mpsc::Sender<(Command, oneshot::Sender<()>)>,
    task: JoinHandle<()>,
}

impl SimBoard {
    pub fn start(setup: SimSetup) -> SimBoard {
        let (commands, inbox) = mpsc::channel(64);
        let task = tokio::spawn(run(setup, inbox));
        SimBoard { commands, task }
    }

    /// Hands a command to the board and waits until the board has acted on it.
    pub async fn send(&self, command: Command) -> Result<(), BoardError> {
        let (done, acted) = oneshot::channel();
        self.commands
            .send((command, done))
            .await
            .map_err(|_| BoardError::Stopped("simulated"))?;
        acted.await.map_err(|_| BoardError::Stopped("simulated"))
    }

    pub async fn stop(self) {
        self.task.abort();
        let _ = self.task.await;
    }
}

/// A simulated board: it takes [`Command`]s, whether the firmware core runs in-process
/// ([`SimBoard`]) or the sketch in a child process (`SketchBoard`). What a step asks of a
/// board is then said once, for both, by the `Board` impl below.
pub(super) trait Commanded: Send + Sync + 'static {
    /// Hands a command to the board and waits until the board has taken it.
    fn command(&self, command: Command) -> impl Future<Output = Result<(), BoardError>> + Send;

    /// Random bytes on the console input, as this board's console takes them.
    fn console_noise<'a>(
        &'a self,
        bytes: &'a [u8],
    ) -> impl Future<Output = Result<(), BoardError>> + Send + 'a;

    /// Stops the board for good.
    fn halt(self) -> impl Future<Output = ()> + Send;
}

impl<T: Commanded> super::Board for T {
    fn press(&mut self, bounce: u32) -> super::BoardFuture<'_> {
        Box::pin(self.command(Command::Press { bounce }))
    }

    fn send_serial<'a>(&'a mut self, line: &'a str) -> super::BoardFuture<'a> {
        Box::pin(self.command(Command::Serial(line.to_string())))
    }

    fn serial_noise<'a>(&'a mut self, bytes: &'a [u8]) -> super::BoardFuture<'a> {
        Box::pin(self.console_noise(bytes))
    }

    fn reset(&mut self) -> super::BoardFuture<'_> {
        Box::pin(self.command(Command::Reset))
    }

    fn power_cycle(&mut self, off_for: Duration) -> super::BoardFuture<'_> {
        Box::pin(async move {
            self.command(Command::PowerOff).await?;
            tokio::time::sleep(off_for).await;
            self.command(Command::PowerOn).await
        })
    }

    fn wifi(&mut self, up: bool) -> super::BoardFuture<'_> {
        Box::pin(self.command(Command::Wifi { up }))
    }

    fn leave(&mut self) -> super::BoardFuture<'_> {
        Box::pin(self.command(Command::Leave))
    }

    fn boot_version(&self, line: &str) -> Option<String> {
        Patterns::light_controller()
            .boot_version(line)
            .map(str::to_string)
    }

    fn stop(self: Box<Self>) -> Pin<Box<dyn Future<Output = ()> + Send>> {
        Box::pin((*self).halt())
    }
}

impl Commanded for SimBoard {
    fn command(&self, command: Command) -> impl Future<Output = Result<(), BoardError>> + Send {
        self.send(command)
    }

    async fn console_noise(&self, bytes: &[u8]) -> Result<(), BoardError> {
        // The core's console reads lines: the noise arrives as the lines it contains.
        let text = String::from_utf8_lossy(bytes);
        for line in text.lines() {
            self.send(Command::Serial(line.to_string())).await?;
        }
        Ok(())
    }

    fn halt(self) -> impl Future<Output = ()> + Send {
        self.stop()
    }
}

/// The virtual chip's app: the firmware core, booted from the settings in the chip's
/// flash (or, before it stored any, provisioned with the chip's broker and client id, as
/// if built with them).
pub struct CoreOnChip;

impl crate::chip::Firmware for CoreOnChip {
    fn boot(&self, setup: crate::chip::AppSetup) -> crate::chip::Booting {
        let has_network = setup.broker.is_some();
        let version = Some(setup.version.clone());
        let board = SimBoard::start(chip_setup(setup, version));
        Box::pin(booted_on_chip(board, has_network))
    }
}

/// A chip's app setup as a simulated board's, running `version` (`None`: the build's own).
pub(super) fn chip_setup(setup: crate::chip::AppSetup, version: Option<String>) -> SimSetup {
    SimSetup {
        name: "chip".into(),
        client_id: setup.client_id,
        topic: None,
        credentials: None,
        debounce: None,
        version,
        // Without a broker the chip has no network. The address stands in for one
        // (TEST-NET-1, never routed).
        broker: setup
            .broker
            .unwrap_or(SocketAddr::from(([192, 0, 2, 1], 1883))),
        network: Network::default(),
        trace: setup.trace,
        seed: 0,
        storage: Some(Storage {
            stored: setup.stored,
            writes: setup.writes,
        }),
        firmware: Firmware::builtin(),
    }
}

/// A booted chip's app; on a chip without a network, Wi-Fi goes down at once and stays
/// down.
pub(super) async fn booted_on_chip(
    board: impl Commanded,
    has_network: bool,
) -> Result<Box<dyn crate::chip::RunningApp>, String> {
    if !has_network {
        board
            .command(Command::Wifi { up: false })
            .await
            .map_err(|e| e.to_string())?;
    }
    Ok(Box::new(board))
}

impl<T: Commanded> crate::chip::RunningApp for T {
    fn type_line(
        &self,
        line: String,
    ) -> Pin<Box<dyn Future<Output = Result<(), String>> + Send + '_>> {
        Box::pin(async move {
            self.command(Command::Serial(line))
                .await
                .map_err(|e| e.to_string())
        })
    }

    fn halt(self: Box<Self>) -> Pin<Box<dyn Future<Output = ()> + Send>> {
        Box::pin((*self).halt())
    }
}

/// What the firmware asked for during one call, for the task to carry out.
enum Request {
    Connect(ConnectRequest),
    Disconnect,
    WifiBegin,
    Restart,
}

/// The firmware's view of the world.
struct SimHal {
    board: String,
    trace: Trace,
    clock: Instant,
    rng: fastrand::Rng,
    /// Persistent storage: survives resets and power cycles, like EEPROM.
    eeprom: Vec<u8>,
    /// Where stored records also go, when the storage is kept outside the board.
    writes: Option<mpsc::UnboundedSender<Vec<u8>>>,
    requests: VecDeque<Request>,
    /// The current MQTT session's queue. Publishes and subscriptions go straight into it,
    /// so the firmware learns at once, as from PubSubClient, whether they were taken.
    mqtt: Option<Requests>,
}

impl SimHal {
    /// A request the client did not take: the firmware is told (false) and the trace
    /// says why, so nothing is lost without a word.
    fn refused(&self, what: &str, topic: &str, refusal: Option<Refusal>) -> bool {
        let warning = match refusal {
            None => format!("{what}_without_connection topic={topic}"),
            Some(Refusal::QueueFull) => format!("{what}_queue_full topic={topic}"),
            Some(Refusal::Gone) => format!("{what}_connection_gone topic={topic}"),
        };
        self.trace.record(EventBody::BoardWarning {
            board: self.board.clone(),
            warning,
        });
        false
    }
}

impl Hal for SimHal {
    fn relay(&mut self, on: bool) {
        self.trace.record(EventBody::Relay {
            board: self.board.clone(),
            on,
        });
    }

    fn publish(&mut self, topic: &str, payload: &[u8], qos: u8, retain: bool) -> bool {
        let Some(mqtt) = &self.mqtt else {
            return self.refused("publish", topic, None);
        };
        match mqtt.publish(topic, payload, qos_of(qos), retain) {
            Ok(()) => true,
            Err(error) => self.refused("publish", topic, Some(error)),
        }
    }

    fn subscribe(&mut self, topic: &str, qos: u8) -> bool {
        let Some(mqtt) = &self.mqtt else {
            return self.refused("subscribe", topic, None);
        };
        match mqtt.subscribe(topic, qos_of(qos)) {
            Ok(()) => true,
            Err(error) => self.refused("subscribe", topic, Some(error)),
        }
    }

    fn connect(&mut self, request: &ConnectRequest) {
        self.requests.push_back(Request::Connect(request.clone()));
    }

    fn disconnect(&mut self) {
        self.requests.push_back(Request::Disconnect);
    }

    fn wifi_begin(&mut self, _ssid: &str, _password: &str) {
        self.requests.push_back(Request::WifiBegin);
    }

    fn serial_line(&mut self, line: &str) {
        self.trace.record(EventBody::Serial {
            board: self.board.clone(),
            line: line.to_string(),
        });
        if let Some(report) = Patterns::light_controller().report(&self.board, line) {
            self.trace.record(report);
        }
    }

    fn millis(&mut self) -> u32 {
        // Wraps after 49 days, exactly like the Arduino millis() the core is written for.
        self.clock.elapsed().as_millis() as u32
    }

    fn random(&mut self) -> u32 {
        self.rng.u32(..)
    }

    fn config_read(&mut self, buf: &mut [u8]) -> bool {
        let Some(stored) = self.eeprom.get(..buf.len()) else {
            return false;
        };
        buf.copy_from_slice(stored);
        true
    }

    fn config_write(&mut self, data: &[u8]) {
        self.eeprom = data.to_vec();
        if let Some(writes) = &self.writes {
            // A storage whose keeper is gone has nobody left to read it.
            let _ = writes.send(data.to_vec());
        }
    }

    fn restart(&mut self) {
        self.requests.push_back(Request::Restart);
    }
}

/// The scenario's board settings stored the way a bench engineer stores them, with the
/// firmware's own `config` console command, on a bench before the board is installed:
/// the run then starts from a board that boots straight into its configuration.
pub(super) fn provision(setup: &SimSetup) -> Vec<u8> {
    let settings = Settings::for_run(
        setup.broker,
        &setup.client_id,
        setup.topic.as_deref(),
        setup.debounce,
    );
    let bench = SimHal {
        board: setup.name.clone(),
        // The bench's console output is not part of the run.
        trace: Trace::start(crate::trace::TraceOptions::default())
            .expect("a trace without a file opens"),
        clock: Instant::now(),
        rng: fastrand::Rng::with_seed(setup.seed),
        eeprom: Vec::new(),
        writes: None,
        requests: VecDeque::new(),
        mqtt: None,
    };
    let mut firmware = Controller::with_firmware(&setup.firmware, bench, hil_firmware::VERSION);
    // The console answers only once the firmware runs.
    firmware.boot();
    firmware.serial_input(Commands::default().config_line(&settings));
    firmware.into_hal().eeprom
}

/// The board's MQTT session, when it has one.
struct Link {
    session: Session,
    connected: bool,
}

struct SimulatedDevice {
    setup: SimSetup,
    firmware: Option<Controller<SimHal>>,
    /// Kept across power cycles while the firmware (RAM) is not.
    eeprom: Vec<u8>,
    wifi_up: bool,
    wifi_wanted: bool,
    link: Option<Link>,
    /// Button edges still to happen: (when, pressed).
    edges: VecDeque<(Instant, bool)>,
    /// When a Wi-Fi join in progress completes.
    wifi_joins_at: Option<Instant>,
}

async fn run(setup: SimSetup, mut inbox: mpsc::Receiver<(Command, oneshot::Sender<()>)>) {
    let stored = setup.storage.as_ref().and_then(|s| s.stored.clone());
    let eeprom = stored.unwrap_or_else(|| provision(&setup));
    let mut board = SimulatedDevice {
        setup,
        firmware: None,
        eeprom,
        wifi_up: true,
        wifi_wanted: false,
        link: None,
        edges: VecDeque::new(),
        wifi_joins_at: None,
    };
    board.power_on();
    board.carry_out().await;
    loop {
        let next_edge = board.edges.front().map(|(at, _)| *at);
        // The firmware says when its timers need it, so an idle board sleeps: a fleet of
        // thousands costs nothing between events.
        let next_tick = board
            .firmware
            .as_mut()
            .and_then(|fw| fw.next_tick())
            .map(|wait| Instant::now() + wait);
        let wake = tokio::select! {
            command = inbox.recv() => Wake::Command(command),
            event = poll_link(&mut board.link) => Wake::Link(event),
            () = sleep_until(next_edge) => Wake::Edge,
            () = sleep_until(next_tick) => Wake::Tick,
            () = sleep_until(board.wifi_joins_at) => Wake::WifiJoined,
        };
        match wake {
            Wake::Command(None) => return,
            Wake::Command(Some((command, done))) => {
                board.command(command).await;
                board.carry_out().await;
                let _ = done.send(());
            }
            Wake::Link(event) => {
                board.link_event(event);
                board.carry_out().await;
            }
            Wake::Edge => {
                if let Some((_, pressed)) = board.edges.pop_front() {
                    board.with_firmware(|fw| fw.button(pressed));
                    board.carry_out().await;
                }
            }
            Wake::Tick => {
                board.with_firmware(|fw| fw.tick());
                board.carry_out().await;
            }
            Wake::WifiJoined => {
                board.wifi_joins_at = None;
                if board.wifi_up && board.wifi_wanted {
                    board.with_firmware(|fw| fw.wifi(true));
                    board.carry_out().await;
                }
            }
        }
    }
}

/// What woke the board task.
enum Wake {
    Command(Option<(Command, oneshot::Sender<()>)>),
    Link(Option<LinkEvent>),
    Edge,
    Tick,
    WifiJoined,
}

async fn sleep_until(at: Option<Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

/// Waits for the next MQTT event (`None`: the session is over); never resolves without
/// a link.
async fn poll_link(link: &mut Option<Link>) -> Option<LinkEvent> {
    match link {
        Some(link) => link.session.next_event().await,
        None => std::future::pending().await,
    }
}

impl SimulatedDevice {
    fn record(&self, change: BoardChange) {
        self.setup.trace.record(EventBody::Board {
            board: self.setup.name.clone(),
            change,
        });
    }

    fn power_on(&mut self) {
        let hal = SimHal {
            board: self.setup.name.clone(),
            trace: self.setup.trace.clone(),
            clock: Instant::now(),
            rng: fastrand::Rng::with_seed(self.setup.seed),
            eeprom: self.eeprom.clone(),
            writes: self.setup.storage.as_ref().map(|s| s.writes.clone()),
            requests: VecDeque::new(),
            mqtt: None,
        };
        let version = self
            .setup
            .version
            .clone()
            .unwrap_or_else(|| hil_firmware::VERSION.to_string());
        let mut firmware = Controller::with_firmware(&self.setup.firmware, hal, &version);
        firmware.boot();
        self.firmware = Some(firmware);
    }

    fn power_off(&mut self) {
        if let Some(firmware) = self.firmware.take() {
            self.eeprom = firmware.hal().eeprom.clone();
        }
        // Power loss: the socket dies without DISCONNECT and the relay drops out.
        self.link = None;
        self.edges.clear();
        self.wifi_joins_at = None;
        self.setup.trace.record(EventBody::Relay {
            board: self.setup.name.clone(),
            on: false,
        });
    }

    async fn command(&mut self, command: Command) {
        match command {
            Command::Press { bounce } => {
                self.record(BoardChange::SwitchPressed);
                let now = Instant::now();
                // First edge now; then `bounce` release/press pairs, 1 ms apart; then release.
                self.with_firmware(|fw| fw.button(true));
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
            Command::Serial(line) => self.with_firmware(|fw| fw.serial_input(&line)),
            Command::Reset => {
                self.record(BoardChange::Reset);
                self.power_off();
                self.power_on();
            }
            Command::PowerOff => {
                self.record(BoardChange::PowerOff);
                self.power_off();
            }
            Command::Leave => {
                if let Some(link) = self.end_link() {
                    link.session.close(CLOSE_DEADLINE).await;
                }
                self.record(BoardChange::PowerOff);
                self.power_off();
            }
            Command::PowerOn => {
                self.record(BoardChange::PowerOn);
                self.power_on();
            }
            Command::Wifi { up } => {
                self.record(if up {
                    BoardChange::WifiUp
                } else {
                    BoardChange::WifiDown
                });
                self.wifi_up = up;
                if up {
                    if self.wifi_wanted {
                        self.wifi_joins_at = Some(Instant::now() + WIFI_JOIN);
                    }
                } else {
                    // The access point is gone: the TCP connection dies without a FIN.
                    self.end_link();
                    self.with_firmware(|fw| fw.wifi(false));
                }
            }
        }
    }

    /// Ends the link; from now on the firmware's publishes are refused as unconnected.
    fn end_link(&mut self) -> Option<Link> {
        if let Some(firmware) = self.firmware.as_mut() {
            firmware.hal_mut().mqtt = None;
        }
        self.link.take()
    }

    fn link_event(&mut self, event: Option<LinkEvent>) {
        match event {
            Some(LinkEvent::Connected) => {
                if let Some(link) = &mut self.link {
                    link.connected = true;
                }
                self.with_firmware(|fw| fw.mqtt_connected());
            }
            Some(LinkEvent::Message { topic, payload }) => {
                self.with_firmware(|fw| fw.message(&topic, &payload));
            }
            None => {
                let was_connected = self.end_link().is_some_and(|link| link.connected);
                self.with_firmware(|fw| {
                    if was_connected {
                        fw.mqtt_lost()
                    } else {
                        fw.mqtt_connect_failed()
                    }
                });
            }
        }
    }

    fn with_firmware(&mut self, call: impl FnOnce(&mut Controller<SimHal>)) {
        if let Some(firmware) = self.firmware.as_mut() {
            call(firmware);
        }
    }

    /// Carries out what the firmware asked for, until it asks for nothing more.
    async fn carry_out(&mut self) {
        loop {
            let Some(request) = self
                .firmware
                .as_mut()
                .and_then(|fw| fw.hal_mut().requests.pop_front())
            else {
                return;
            };
            match request {
                Request::WifiBegin => {
                    self.wifi_wanted = true;
                    if self.wifi_up {
                        self.wifi_joins_at = Some(Instant::now() + WIFI_JOIN);
                    }
                }
                Request::Connect(request) => {
                    let link = self.open_link(&request);
                    if let Some(firmware) = self.firmware.as_mut() {
                        firmware.hal_mut().mqtt = Some(link.session.requests());
                    }
                    self.link = Some(link);
                }
                Request::Disconnect => {
                    if let Some(link) = self.end_link() {
                        tokio::spawn(link.session.close(CLOSE_DEADLINE));
                    }
                }
                Request::Restart => {
                    self.record(BoardChange::Reset);
                    self.power_off();
                    self.power_on();
                }
            }
        }
    }

    fn open_link(&self, request: &ConnectRequest) -> Link {
        let options = SessionOptions {
            host: request.host.clone(),
            port: request.port,
            client_id: request.client_id.clone(),
            keep_alive: KEEP_ALIVE,
            login: self.setup.credentials.as_ref().map(|credentials| {
                rumqttc::mqttbytes::v4::Login::new(&credentials.username, &credentials.password)
            }),
            will: rumqttc::mqttbytes::v4::LastWill::new(
                &request.will_topic,
                request.will_payload.clone(),
                qos_of(request.will_qos),
                request.will_retain,
            ),
            connect_timeout: CONNECT_TIMEOUT,
        };
        Link {
            session: Session::open(&self.setup.network, options),
            connected: false,
        }
    }
}

fn qos_of(qos: u8) -> rumqttc::QoS {
    match qos {
        0 => rumqttc::QoS::AtMostOnce,
        1 => rumqttc::QoS::AtLeastOnce,
        _ => rumqttc::QoS::ExactlyOnce,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hal(trace: &Trace, mqtt: Option<Requests>) -> SimHal {
        SimHal {
            board: "lamp".into(),
            trace: trace.clone(),
            clock: Instant::now(),
            rng: fastrand::Rng::with_seed(1),
            eeprom: Vec::new(),
            writes: None,
            requests: VecDeque::new(),
            mqtt,
        }
    }

    fn warnings(trace: &Trace) -> Vec<String> {
        trace
            .events_from(0)
            .iter()
            .filter_map(|event| match &event.body {
                EventBody::BoardWarning { warning, .. } => Some(warning.clone()),
                _ => None,
            })
            .collect()
    }

    #[tokio::test]
    async fn a_publish_the_session_cannot_queue_is_refused_with_a_warning() {
        let trace = Trace::in_memory();
        // A broker that takes the CONNECT and never answers: nothing leaves the queue.
        let (session, silent_end) = super::super::link::session_with_fake_broker(KEEP_ALIVE);
        let mut hal = hal(&trace, Some(session.requests()));
        let taken = (0..65)
            .filter(|_| hal.publish("lamp/state", b"on", 1, false))
            .count();
        assert_eq!(taken, 64);
        assert!(!hal.subscribe("lamp/set", 1));
        assert_eq!(
            warnings(&trace),
            [
                "publish_queue_full topic=lamp/state",
                "subscribe_queue_full topic=lamp/set"
            ]
        );
        drop(silent_end);
    }

    #[test]
    fn a_publish_without_a_connection_is_refused_with_a_warning() {
        let trace = Trace::in_memory();
        let mut hal = hal(&trace, None);
        assert!(!hal.publish("lamp/state", b"on", 0, false));
        assert_eq!(
            warnings(&trace),
            ["publish_without_connection topic=lamp/state"]
        );
    }
}
