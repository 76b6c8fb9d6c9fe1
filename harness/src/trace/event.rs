//! The event vocabulary of a trace: what a run can observe, as it is written to JSON Lines.

use std::fmt;

use base64::Engine as _;
use bytes::Bytes;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use super::codes::{ConnackCode, DisconnectCode, PubackCode, SubackCode};

/// One observation, stamped with its place in the run (`seq`) and the run's clock (`t_us`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Event {
    /// Position in the run, from 1, without gaps: a missing number means a lost event.
    pub seq: u64,
    /// Microseconds since the run's clock started (monotonic).
    pub t_us: u64,
    #[serde(flatten)]
    pub body: EventBody,
}

/// What happened.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum EventBody {
    /// First event of every trace: when the clock started, in wall time.
    TraceStarted {
        wall_clock: String,
        hil_version: String,
    },
    /// The embedded broker changed state; `addr` is where clients connect.
    Broker { action: BrokerAction, addr: String },
    /// A client opened a TCP connection to the broker's public address.
    ConnOpened { conn: u64, peer: String },
    /// A connection attempt arrived while the broker was down and was turned away.
    ConnRefused { peer: String, reason: String },
    /// A decoded MQTT packet crossing the tap.
    Mqtt {
        conn: u64,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        client: Option<String>,
        dir: Direction,
        #[serde(flatten)]
        packet: Packet,
    },
    /// Bytes that are not valid MQTT; the connection is closed right after.
    Malformed {
        conn: u64,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        client: Option<String>,
        dir: Direction,
        reason: String,
        /// The first bytes of the offending data, in hex.
        excerpt_hex: String,
    },
    /// A line a board printed on its serial console (invalid UTF-8 shown escaped).
    Serial { board: String, line: String },
    /// A board's relay changed.
    Relay { board: String, on: bool },
    /// A board reported its connection state (its profile's `state` pattern), such as
    /// `ACTIVE` or `LOOKING_FOR_BROKER`.
    BoardState { board: String, state: String },
    /// A board reported a warning (its profile's `warning` pattern), such as
    /// `invalid_payload`.
    BoardWarning { board: String, warning: String },
    /// A board's power, network link or switch changed, by a step or a fault.
    Board { board: String, change: BoardChange },
    /// A scenario step began; an expectation says how long it may wait (`within_us`).
    StepStarted {
        step: usize,
        name: String,
        line: usize,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        within_us: Option<u64>,
    },
    /// A scenario step ended; `detail` says why it failed.
    StepFinished {
        step: usize,
        name: String,
        passed: bool,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        detail: Option<String>,
    },
    /// A fault was injected or ended (`partition`, `drop`, `delay`, …), on `target`
    /// (a client id or board), with what it did.
    Fault {
        fault: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        target: Option<String>,
        detail: String,
    },
    /// A connection ended; `reason` says who ended it and how.
    ConnClosed {
        conn: u64,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        client: Option<String>,
        reason: CloseReason,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        detail: Option<String>,
    },
}

/// Something done to a board from outside its firmware.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum BoardChange {
    PowerOn,
    PowerOff,
    Reset,
    WifiUp,
    WifiDown,
    SwitchPressed,
    SwitchReleased,
    /// The serial port went away (cable pulled, device gone).
    SerialLost,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum BrokerAction {
    Started,
    Down,
    Restarted,
    Stopped,
}

/// Which way a packet travelled through the tap.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Direction {
    /// Client to broker.
    #[serde(rename = "c2b")]
    ToBroker,
    /// Broker to client.
    #[serde(rename = "b2c")]
    ToClient,
}

impl fmt::Display for Direction {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Direction::ToBroker => "->",
            Direction::ToClient => "<-",
        })
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CloseReason {
    /// The client sent DISCONNECT, then closed.
    Clean,
    /// The client went away without DISCONNECT (its will fires).
    ByPeer,
    /// The broker closed the connection.
    ByBroker,
    /// The tap closed it after malformed bytes.
    Malformed,
    /// A socket error ended it.
    Error,
    /// The harness cut it (broker restart or stop).
    Cut,
    /// The client sent nothing for 1.5 times its keep-alive; the broker closed the
    /// connection and published its will.
    KeepAliveTimeout,
    /// The engine turned the CONNECT down (closed before or after a refusing CONNACK).
    EngineRefused,
    /// The engine closed an established connection: the detail says after which packet.
    ProtocolError,
    /// A new connection with the same client id took the session over.
    TakenOver,
}

/// The MQTT packets the tap decodes, with the fields worth asserting on.
/// The CONNECT password is deliberately absent: it is never recorded.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "packet", rename_all = "snake_case")]
pub enum Packet {
    Connect {
        client_id: String,
        protocol: u8,
        clean_session: bool,
        keep_alive: u16,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        will: Option<Will>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        username: Option<String>,
    },
    Connack {
        session_present: bool,
        code: ConnackCode,
    },
    Publish {
        topic: String,
        payload: Payload,
        qos: u8,
        retain: bool,
        dup: bool,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pkid: Option<u16>,
    },
    Puback {
        pkid: u16,
        #[serde(default, skip_serializing_if = "PubackCode::is_success")]
        code: PubackCode,
    },
    Pubrec {
        pkid: u16,
        #[serde(default, skip_serializing_if = "PubackCode::is_success")]
        code: PubackCode,
    },
    Pubrel {
        pkid: u16,
    },
    Pubcomp {
        pkid: u16,
    },
    Subscribe {
        pkid: u16,
        filters: Vec<Subscription>,
    },
    Suback {
        pkid: u16,
        codes: Vec<SubackCode>,
    },
    Unsubscribe {
        pkid: u16,
        filters: Vec<String>,
    },
    Unsuback {
        pkid: u16,
    },
    Pingreq,
    Pingresp,
    Disconnect {
        #[serde(default, skip_serializing_if = "DisconnectCode::is_normal")]
        code: DisconnectCode,
    },
    Auth,
}

impl Packet {
    /// The packet's name as the trace spells it (`publish`, `connack`, ...).
    pub fn name(&self) -> &'static str {
        match self {
            Packet::Connect { .. } => "connect",
            Packet::Connack { .. } => "connack",
            Packet::Publish { .. } => "publish",
            Packet::Puback { .. } => "puback",
            Packet::Pubrec { .. } => "pubrec",
            Packet::Pubrel { .. } => "pubrel",
            Packet::Pubcomp { .. } => "pubcomp",
            Packet::Subscribe { .. } => "subscribe",
            Packet::Suback { .. } => "suback",
            Packet::Unsubscribe { .. } => "unsubscribe",
            Packet::Unsuback { .. } => "unsuback",
            Packet::Pingreq => "pingreq",
            Packet::Pingresp => "pingresp",
            Packet::Disconnect { .. } => "disconnect",
            Packet::Auth => "auth",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Will {
    pub topic: String,
    pub payload: Payload,
    pub qos: u8,
    pub retain: bool,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Subscription {
    pub filter: String,
    pub qos: u8,
}

/// Message bytes. Written as a JSON string when they are valid UTF-8, otherwise as
/// `{"base64": "..."}`, so a reader can always tell text from binary.
#[derive(Clone, PartialEq, Eq, Default)]
pub struct Payload(pub Bytes);

impl Payload {
    pub fn as_text(&self) -> Option<&str> {
        std::str::from_utf8(&self.0).ok()
    }
}

impl fmt::Debug for Payload {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{self}")
    }
}

impl fmt::Display for Payload {
    /// Text as it is; binary as `<N bytes: 0a0b…>`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.as_text() {
            Some(text) => write!(f, "{text:?}"),
            None => write!(f, "<{} bytes: {}>", self.0.len(), hex_excerpt(&self.0, 16)),
        }
    }
}

impl From<&str> for Payload {
    fn from(text: &str) -> Self {
        Payload(Bytes::copy_from_slice(text.as_bytes()))
    }
}

#[derive(Serialize, Deserialize)]
#[serde(untagged)]
enum PayloadRepr {
    Text(String),
    Binary { base64: String },
}

impl Serialize for Payload {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match self.as_text() {
            Some(text) => serializer.serialize_str(text),
            None => PayloadRepr::Binary {
                base64: base64::engine::general_purpose::STANDARD.encode(&self.0),
            }
            .serialize(serializer),
        }
    }
}

impl<'de> Deserialize<'de> for Payload {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        match PayloadRepr::deserialize(deserializer)? {
            PayloadRepr::Text(text) => Ok(Payload(Bytes::from(text))),
            PayloadRepr::Binary { base64 } => base64::engine::general_purpose::STANDARD
                .decode(base64)
                .map(|bytes| Payload(Bytes::from(bytes)))
                .map_err(serde::de::Error::custom),
        }
    }
}

/// The first `max` bytes as lowercase hex, with `…` when there were more.
pub fn hex_excerpt(bytes: &[u8], max: usize) -> String {
    let mut out: String = bytes.iter().take(max).map(|b| format!("{b:02x}")).collect();
    if bytes.len() > max {
        out.push('…');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_payload_is_a_json_string_and_binary_is_marked() {
        let text = serde_json::to_string(&Payload::from("on")).unwrap();
        assert_eq!(text, "\"on\"");
        let binary = Payload(Bytes::from_static(&[0xff, 0x00, 0x41]));
        let json = serde_json::to_string(&binary).unwrap();
        assert_eq!(json, r#"{"base64":"/wBB"}"#);
        assert_eq!(serde_json::from_str::<Payload>(&json).unwrap(), binary);
        assert_eq!(
            serde_json::from_str::<Payload>(&text).unwrap(),
            Payload::from("on")
        );
    }

    #[test]
    fn events_round_trip_through_json_lines() {
        let event = Event {
            seq: 7,
            t_us: 1234,
            body: EventBody::Mqtt {
                conn: 3,
                client: Some("phone".into()),
                dir: Direction::ToBroker,
                packet: Packet::Publish {
                    topic: "living_room_lights".into(),
                    payload: Payload::from("on"),
                    qos: 1,
                    retain: false,
                    dup: false,
                    pkid: Some(1),
                },
            },
        };
        let line = serde_json::to_string(&event).unwrap();
        assert!(line.contains(r#""kind":"mqtt""#), "{line}");
        assert!(line.contains(r#""packet":"publish""#), "{line}");
        assert!(line.contains(r#""dir":"c2b""#), "{line}");
        assert_eq!(serde_json::from_str::<Event>(&line).unwrap(), event);
    }

    #[test]
    fn hex_excerpt_marks_truncation() {
        assert_eq!(hex_excerpt(b"GET", 16), "474554");
        assert_eq!(hex_excerpt(&[0u8; 20], 2), "0000…");
    }
}
