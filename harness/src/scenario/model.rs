//! What a scenario file says, as types. Each step is one variant of [`Action`] with its
//! own struct; serde's externally tagged enums are exactly the one-key maps of the format.
//! Adding a step: a struct here, a variant in `Action`, its execution in the runner.

use std::path::PathBuf;
use std::time::Duration;

use schemars::JsonSchema;
use serde::{Deserialize, Deserializer};

/// A validated scenario, ready to run.
#[derive(Debug, Clone)]
pub struct Scenario {
    pub name: String,
    pub path: PathBuf,
    /// The whole scenario's deadline.
    pub timeout: Duration,
    /// Compare the normalized trace against `snapshots/<name>.snap`.
    pub snapshot: bool,
    /// Labels for picking suites (`hil run --tag`, `--skip-tag`).
    pub tags: Vec<String>,
    pub boards: Vec<BoardDecl>,
    pub clients: Vec<ClientDecl>,
    pub steps: Vec<Step>,
}

/// Where something stands in its file, 1-based.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Default)]
pub struct Location {
    pub line: usize,
    pub column: usize,
}

/// A board the scenario needs. `profile: sim` is the simulated board; other profiles
/// name real boards mapped with `hil run --board ROLE=BENCH_BOARD`.
#[derive(Debug, Clone, PartialEq, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct BoardSpec {
    pub profile: String,
    /// Firmware topic, default `living_room_lights`.
    #[serde(default)]
    pub topic: Option<String>,
    /// MQTT client id, default the board's name.
    #[serde(default)]
    pub client_id: Option<String>,
    /// Switch debounce, default 30 ms.
    #[serde(default, deserialize_with = "opt_duration::deserialize")]
    #[schemars(with = "Option<DurationText>")]
    pub debounce: Option<Duration>,
    /// Firmware version the simulated board reports, default the firmware's own.
    #[serde(default)]
    pub version: Option<String>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct BoardDecl {
    pub name: String,
    pub spec: BoardSpec,
    pub location: Location,
}

/// A harness-owned MQTT client (the phone, a wall display...).
#[derive(Debug, Clone, PartialEq, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ClientSpec {
    /// 4 (MQTT 3.1.1, default) or 5.
    #[serde(default)]
    pub protocol: Option<u8>,
    /// Client id, default the client's name.
    #[serde(default)]
    pub client_id: Option<String>,
    /// Connect before step 1 (default true); `false` leaves it to a `connect` step.
    #[serde(default)]
    pub connect: Option<bool>,
    /// Start a clean session (default true); `false` asks the broker to keep the session,
    /// so unacknowledged messages are resent after a reconnect.
    #[serde(default)]
    pub clean: Option<bool>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct ClientDecl {
    pub name: String,
    pub spec: ClientSpec,
    pub location: Location,
}

/// One step and where it is written.
#[derive(Debug, Clone, PartialEq)]
pub struct Step {
    pub location: Location,
    pub action: Action,
}

#[derive(Debug, Clone, PartialEq, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Action {
    Publish(Publish),
    ExpectMessage(ExpectMessage),
    ExpectNoMessage(ExpectNoMessage),
    ExpectTrace(ExpectTrace),
    Connect(ClientRef),
    Disconnect(ClientRef),
    ExpectConnected(ExpectConnection),
    ExpectDisconnected(ExpectConnection),
    Wait(Wait),
    Repeat(Repeat),
    ExpectRelay(ExpectRelay),
    PressSwitch(PressSwitch),
    ExpectSerial(ExpectSerial),
    SendSerial(SendSerial),
    ExpectBoot(ExpectBoot),
    Reset(BoardRef),
    PowerCycle(PowerCycle),
    Wifi(Wifi),
    BrokerRestart(BrokerRestart),
    Partition(Partition),
    Delay(Delay),
    Drop(DropFrames),
    Duplicate(Duplicate),
    SerialNoise(SerialNoise),
}

impl Action {
    /// The step's name as written in the file.
    pub fn name(&self) -> &'static str {
        match self {
            Action::Publish(_) => "publish",
            Action::ExpectMessage(_) => "expect_message",
            Action::ExpectNoMessage(_) => "expect_no_message",
            Action::ExpectTrace(_) => "expect_trace",
            Action::Connect(_) => "connect",
            Action::Disconnect(_) => "disconnect",
            Action::ExpectConnected(_) => "expect_connected",
            Action::ExpectDisconnected(_) => "expect_disconnected",
            Action::Wait(_) => "wait",
            Action::Repeat(_) => "repeat",
            Action::ExpectRelay(_) => "expect_relay",
            Action::PressSwitch(_) => "press_switch",
            Action::ExpectSerial(_) => "expect_serial",
            Action::SendSerial(_) => "send_serial",
            Action::ExpectBoot(_) => "expect_boot",
            Action::Reset(_) => "reset",
            Action::PowerCycle(_) => "power_cycle",
            Action::Wifi(_) => "wifi",
            Action::BrokerRestart(_) => "broker_restart",
            Action::Partition(_) => "partition",
            Action::Delay(_) => "delay",
            Action::Drop(_) => "drop",
            Action::Duplicate(_) => "duplicate",
            Action::SerialNoise(_) => "serial_noise",
        }
    }

    /// The board this step needs simulated, for a step only the simulator can carry out
    /// (a bench board has no Wi-Fi switch hil reaches, and its switch bounces by itself).
    pub fn sim_only_board(&self) -> Option<&str> {
        match self {
            Action::Wifi(wifi) => Some(&wifi.board),
            Action::PressSwitch(press) if press.bounce.unwrap_or(0) > 0 => Some(&press.board),
            _ => None,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Publish {
    /// The harness client that publishes.
    #[serde(rename = "as")]
    pub client: String,
    pub topic: String,
    /// Text payload (YAML scalars are taken as their text).
    pub payload: String,
    #[serde(default)]
    pub qos: u8,
    #[serde(default)]
    pub retain: bool,
}

/// Exactly one of `payload`, `payload_regex`, `payload_json` may be given (or none).
#[derive(Debug, Clone, PartialEq, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ExpectMessage {
    /// Topic filter; `+` and `#` allowed.
    pub topic: String,
    #[serde(default)]
    pub payload: Option<String>,
    #[serde(default)]
    pub payload_regex: Option<String>,
    /// A JSON value (or a string holding JSON) that the payload must contain (subset match).
    #[serde(default)]
    pub payload_json: Option<serde_json::Value>,
    #[serde(default)]
    pub qos: Option<u8>,
    #[serde(default)]
    pub retain: Option<bool>,
    /// The client or board that published it.
    #[serde(default)]
    pub from: Option<String>,
    /// A client or board that must receive it.
    #[serde(default)]
    pub to: Option<String>,
    #[serde(default = "default_within", deserialize_with = "duration::deserialize")]
    #[schemars(with = "DurationText")]
    pub within: Duration,
    /// How many matching messages must arrive (default 1).
    #[serde(default)]
    pub count: Option<usize>,
}

#[derive(Debug, Clone, PartialEq, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ExpectNoMessage {
    pub topic: String,
    #[serde(default)]
    pub from: Option<String>,
    #[serde(rename = "for", deserialize_with = "duration::deserialize")]
    #[schemars(with = "DurationText")]
    pub duration: Duration,
}

/// Partial events (JSON objects compared as subsets of trace events) that must appear in
/// this order, not necessarily adjacent.
#[derive(Debug, Clone, PartialEq, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ExpectTrace {
    pub events: Vec<serde_json::Value>,
    #[serde(default = "default_within", deserialize_with = "duration::deserialize")]
    #[schemars(with = "DurationText")]
    pub within: Duration,
}

#[derive(Debug, Clone, PartialEq, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ClientRef {
    pub client: String,
}

/// `client` names a harness client or a board (a board is an MQTT client too).
#[derive(Debug, Clone, PartialEq, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ExpectConnection {
    pub client: String,
    #[serde(default = "default_within", deserialize_with = "duration::deserialize")]
    #[schemars(with = "DurationText")]
    pub within: Duration,
}

#[derive(Debug, Clone, PartialEq, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Wait {
    #[serde(rename = "for", deserialize_with = "duration::deserialize")]
    #[schemars(with = "DurationText")]
    pub duration: Duration,
}

#[derive(Debug, Clone, PartialEq, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Repeat {
    pub times: usize,
    pub steps: Vec<Step>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum RelayState {
    On,
    Off,
}

#[derive(Debug, Clone, PartialEq, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ExpectRelay {
    pub board: String,
    pub state: RelayState,
    #[serde(default = "default_within", deserialize_with = "duration::deserialize")]
    #[schemars(with = "DurationText")]
    pub within: Duration,
}

#[derive(Debug, Clone, PartialEq, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct PressSwitch {
    pub board: String,
    /// Contact bounce: this many extra edges, 1 ms apart, after the press.
    #[serde(default)]
    pub bounce: Option<u32>,
}

#[derive(Debug, Clone, PartialEq, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ExpectSerial {
    pub board: String,
    pub regex: String,
    #[serde(default = "default_within", deserialize_with = "duration::deserialize")]
    #[schemars(with = "DurationText")]
    pub within: Duration,
}

#[derive(Debug, Clone, PartialEq, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SendSerial {
    pub board: String,
    pub line: String,
}

#[derive(Debug, Clone, PartialEq, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ExpectBoot {
    pub board: String,
    #[serde(default)]
    pub version: Option<String>,
    #[serde(default = "default_within", deserialize_with = "duration::deserialize")]
    #[schemars(with = "DurationText")]
    pub within: Duration,
}

#[derive(Debug, Clone, PartialEq, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct BoardRef {
    pub board: String,
}

#[derive(Debug, Clone, PartialEq, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct PowerCycle {
    pub board: String,
    #[serde(
        default = "default_off_for",
        deserialize_with = "duration::deserialize"
    )]
    #[schemars(with = "DurationText")]
    pub off_for: Duration,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum LinkState {
    Up,
    Down,
}

#[derive(Debug, Clone, PartialEq, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Wifi {
    pub board: String,
    pub state: LinkState,
}

/// A real broker restart: every session, subscription and retained message is gone;
/// connections are refused for `down_for`.
#[derive(Debug, Clone, PartialEq, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct BrokerRestart {
    #[serde(
        default = "default_down_for",
        deserialize_with = "duration::deserialize"
    )]
    #[schemars(with = "DurationText")]
    pub down_for: Duration,
}

/// The network actor a fault is aimed at: exactly one of `client` or `board` (checked
/// when the file is validated).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct FaultTarget<'a> {
    pub client: Option<&'a str>,
    pub board: Option<&'a str>,
}

impl<'a> FaultTarget<'a> {
    fn of(client: &'a Option<String>, board: &'a Option<String>) -> FaultTarget<'a> {
        FaultTarget {
            client: client.as_deref(),
            board: board.as_deref(),
        }
    }

    /// The actor's name, when exactly one is given.
    pub fn actor(&self) -> Option<&'a str> {
        match (self.client, self.board) {
            (Some(name), None) | (None, Some(name)) => Some(name),
            _ => None,
        }
    }
}

macro_rules! aimed_at_an_actor {
    ($($step:ty),*) => {$(
        impl $step {
            pub fn target(&self) -> FaultTarget<'_> {
                FaultTarget::of(&self.client, &self.board)
            }
        }
    )*};
}

aimed_at_an_actor!(Partition, Delay, DropFrames, Duplicate);

/// The actor's connections are cut and refused for `for`, then healed. The steps after
/// it run while it lasts.
#[derive(Debug, Clone, PartialEq, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Partition {
    #[serde(default)]
    pub client: Option<String>,
    #[serde(default)]
    pub board: Option<String>,
    #[serde(rename = "for", deserialize_with = "duration::deserialize")]
    #[schemars(rename = "for", with = "DurationText")]
    pub duration: Duration,
}

/// Every frame of the actor, both ways, is held `by` ± `jitter` (in order), for `for`
/// or until the end.
#[derive(Debug, Clone, PartialEq, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Delay {
    #[serde(default)]
    pub client: Option<String>,
    #[serde(default)]
    pub board: Option<String>,
    #[serde(deserialize_with = "duration::deserialize")]
    #[schemars(with = "DurationText")]
    pub by: Duration,
    #[serde(default, deserialize_with = "duration::deserialize")]
    #[schemars(with = "DurationText")]
    pub jitter: Duration,
    #[serde(
        rename = "for",
        default,
        deserialize_with = "opt_duration::deserialize"
    )]
    #[schemars(rename = "for", with = "Option<DurationText>")]
    pub duration: Option<Duration>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum FrameDirection {
    ToBroker,
    FromBroker,
}

/// The actor's next `count` message frames (PUBLISH and its acknowledgements) going
/// `direction` are lost, or each with probability `ratio`.
#[derive(Debug, Clone, PartialEq, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct DropFrames {
    #[serde(default)]
    pub client: Option<String>,
    #[serde(default)]
    pub board: Option<String>,
    pub direction: FrameDirection,
    #[serde(default)]
    pub count: Option<u32>,
    #[serde(default)]
    pub ratio: Option<f64>,
}

/// The actor's next `count` PUBLISH frames reach the broker twice.
#[derive(Debug, Clone, PartialEq, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Duplicate {
    #[serde(default)]
    pub client: Option<String>,
    #[serde(default)]
    pub board: Option<String>,
    #[serde(default = "default_count")]
    pub count: u32,
}

/// `bytes` random bytes on the board's serial console input.
#[derive(Debug, Clone, PartialEq, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SerialNoise {
    pub board: String,
    pub bytes: usize,
}

fn default_down_for() -> Duration {
    Duration::from_secs(1)
}

fn default_count() -> u32 {
    1
}

/// A step is read with its place in the file, which failure reports point at.
impl<'de> Deserialize<'de> for Step {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Step, D::Error> {
        let spanned = serde_saphyr::Spanned::<Action>::deserialize(deserializer)?;
        Ok(Step {
            location: Location {
                line: spanned.referenced.line() as usize,
                column: spanned.referenced.column() as usize,
            },
            action: spanned.value,
        })
    }
}

impl JsonSchema for Step {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "Step".into()
    }

    fn json_schema(generator: &mut schemars::SchemaGenerator) -> schemars::Schema {
        Action::json_schema(generator)
    }
}

/// How durations are written, for the JSON Schema.
pub(crate) struct DurationText;

impl JsonSchema for DurationText {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "Duration".into()
    }

    fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
        schemars::json_schema!({
            "type": "string",
            "description": "A duration: 500ms, 2s, 1m 30s",
            "pattern": r"^\s*[0-9]+\s*[a-zµ]+(\s*[0-9]+\s*[a-zµ]+)*\s*$"
        })
    }
}

/// Default deadline of an `expect_*` step without `within`.
pub const DEFAULT_WITHIN: Duration = Duration::from_secs(1);

fn default_within() -> Duration {
    DEFAULT_WITHIN
}

fn default_off_for() -> Duration {
    Duration::from_millis(100)
}

/// Durations are written the humantime way: `500ms`, `2s`, `1m 30s`.
pub(crate) mod duration {
    use serde::{Deserialize, Deserializer};
    use std::time::Duration;

    pub fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Duration, D::Error> {
        let text = String::deserialize(deserializer)?;
        humantime::parse_duration(&text).map_err(|e| {
            serde::de::Error::custom(format!(
                "bad duration {text:?}: {e} (write it like 500ms, 2s or 1m 30s)"
            ))
        })
    }
}

pub(crate) mod opt_duration {
    use serde::Deserializer;
    use std::time::Duration;

    pub fn deserialize<'de, D: Deserializer<'de>>(
        deserializer: D,
    ) -> Result<Option<Duration>, D::Error> {
        super::duration::deserialize(deserializer).map(Some)
    }
}
