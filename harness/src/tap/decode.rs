//! Turning bytes on the wire into trace packets, with rumqttc's MQTT 3.1.1 and 5 codecs.

use std::collections::HashMap;
use std::ops::Range;

use bytes::{Bytes, BytesMut};
use rumqttc::mqttbytes::{self, v4};
use rumqttc::v5::mqttbytes::v5;

use crate::trace::{
    ConnackCode, DisconnectCode, Packet, Payload, PubackCode, SubackCode, Subscription, Will,
};

/// The protocol a connection speaks, learned from the level byte of its CONNECT.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Protocol {
    V311,
    V5,
}

impl Protocol {
    /// The protocol level byte as it appears in CONNECT.
    pub fn level(self) -> u8 {
        match self {
            Protocol::V311 => 4,
            Protocol::V5 => 5,
        }
    }
}

/// Why bytes could not be read as MQTT.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    #[error("packet of {size} bytes is larger than the maximum of {max} bytes")]
    TooLarge { size: usize, max: usize },
    #[error("first packet is not CONNECT")]
    NotConnect,
    #[error("unsupported protocol (level {0}); hil speaks MQTT 3.1.1 (4) and 5 (5)")]
    UnsupportedProtocol(u8),
    #[error("connection closed in the middle of a packet")]
    Truncated,
    #[error("a second CONNECT on one connection")]
    SecondConnect,
    #[error("{0}")]
    Invalid(String),
}

/// Splits the next complete frame off the front of `buf`. `Ok(None)` means more bytes are
/// needed. The fixed header is the same in MQTT 3.1.1 and 5, so one framer serves both.
pub fn next_frame(
    buf: &mut BytesMut,
    max_packet_size: usize,
) -> Result<Option<Bytes>, DecodeError> {
    match mqttbytes::check(buf.iter(), max_packet_size) {
        Ok(header) => Ok(Some(buf.split_to(header.frame_length()).freeze())),
        Err(mqttbytes::Error::InsufficientBytes(_)) => Ok(None),
        Err(mqttbytes::Error::PayloadSizeLimitExceeded(size)) => Err(DecodeError::TooLarge {
            size,
            max: max_packet_size,
        }),
        Err(other) => Err(DecodeError::Invalid(other.to_string())),
    }
}

/// Reads the protocol of a connection from its first frame, which must be CONNECT.
pub fn connect_protocol(frame: &[u8]) -> Result<Protocol, DecodeError> {
    if frame.first().map(|b| b >> 4) != Some(1) {
        return Err(DecodeError::NotConnect);
    }
    // Skip the fixed header: one type byte, then a variable-length integer.
    let header_len = 1 + frame[1..]
        .iter()
        .position(|b| b & 0x80 == 0)
        .map_or(0, |i| i + 1);
    let body = &frame[header_len.min(frame.len())..];
    let name_len = match body {
        [hi, lo, ..] => usize::from(u16::from_be_bytes([*hi, *lo])),
        _ => return Err(DecodeError::Invalid("CONNECT too short".into())),
    };
    match body.get(2 + name_len) {
        Some(4) => Ok(Protocol::V311),
        Some(5) => Ok(Protocol::V5),
        Some(level) => Err(DecodeError::UnsupportedProtocol(*level)),
        None => Err(DecodeError::Invalid("CONNECT too short".into())),
    }
}

/// Decodes the frames of one direction of one connection. MQTT 5 topic aliases are
/// resolved so that every publish in the trace carries its full topic.
pub struct Decoder {
    protocol: Protocol,
    max_packet_size: usize,
    topic_aliases: HashMap<u16, String>,
}

impl Decoder {
    pub fn new(protocol: Protocol, max_packet_size: usize) -> Decoder {
        Decoder {
            protocol,
            max_packet_size,
            topic_aliases: HashMap::new(),
        }
    }

    /// Decodes one complete frame (as returned by [`next_frame`]).
    pub fn decode(&mut self, frame: &Bytes) -> Result<Packet, DecodeError> {
        let mut bytes = BytesMut::from(&frame[..]);
        match self.protocol {
            Protocol::V311 => v4::Packet::read(&mut bytes, self.max_packet_size)
                .map(from_v4)
                .map_err(|e| DecodeError::Invalid(e.to_string())),
            Protocol::V5 => {
                // MQTT 5 lets DISCONNECT and AUTH leave out everything when the reason is
                // 0, and the property length when there are no properties (sections
                // 3.14.2.1, 3.14.2.2.1, 3.15.2.1); rumqttc cannot read either form (it
                // writes the first, rumqttd the second).
                match &frame[..] {
                    [0xe0, 0x00] => {
                        return Ok(Packet::Disconnect {
                            code: DisconnectCode::NormalDisconnection,
                        })
                    }
                    [0xe0, 0x01, code] => {
                        return v5::DisconnectReasonCode::try_from(*code)
                            .map(|code| Packet::Disconnect {
                                code: disconnect_v5(code),
                            })
                            .map_err(|_| {
                                DecodeError::Invalid(format!(
                                    "DISCONNECT with reason code 0x{code:02x}, which MQTT 5 does not define"
                                ))
                            })
                    }
                    [0xf0, 0x00] | [0xf0, 0x01, _] => return Ok(Packet::Auth),
                    _ => {}
                }
                let max = u32::try_from(self.max_packet_size).ok();
                let packet = v5::Packet::read(&mut bytes, max)
                    .map_err(|e| DecodeError::Invalid(e.to_string()))?;
                Ok(self.convert_v5(packet))
            }
        }
    }

    fn convert_v5(&mut self, packet: v5::Packet) -> Packet {
        match packet {
            v5::Packet::Connect(connect, will, login) => Packet::Connect {
                client_id: connect.client_id,
                protocol: 5,
                clean_session: connect.clean_start,
                keep_alive: connect.keep_alive,
                will: will.map(|will| Will {
                    topic: lossy(&will.topic),
                    payload: Payload(will.message),
                    qos: will.qos as u8,
                    retain: will.retain,
                }),
                username: login.map(|login| login.username),
            },
            v5::Packet::ConnAck(ack) => Packet::Connack {
                session_present: ack.session_present,
                code: connack_v5(ack.code),
            },
            v5::Packet::Publish(publish) => {
                let mut topic = lossy(&publish.topic);
                if let Some(alias) = publish.properties.as_ref().and_then(|p| p.topic_alias) {
                    if topic.is_empty() {
                        topic = self.topic_aliases.get(&alias).cloned().unwrap_or_default();
                    } else {
                        self.topic_aliases.insert(alias, topic.clone());
                    }
                }
                Packet::Publish {
                    topic,
                    payload: Payload(publish.payload),
                    qos: publish.qos as u8,
                    retain: publish.retain,
                    dup: publish.dup,
                    pkid: (publish.qos as u8 > 0).then_some(publish.pkid),
                }
            }
            v5::Packet::PubAck(ack) => Packet::Puback {
                pkid: ack.pkid,
                code: puback_v5(ack.reason),
            },
            v5::Packet::PubRec(ack) => Packet::Pubrec {
                pkid: ack.pkid,
                code: pubrec_v5(ack.reason),
            },
            v5::Packet::PubRel(ack) => Packet::Pubrel { pkid: ack.pkid },
            v5::Packet::PubComp(ack) => Packet::Pubcomp { pkid: ack.pkid },
            v5::Packet::Subscribe(subscribe) => Packet::Subscribe {
                pkid: subscribe.pkid,
                filters: subscribe
                    .filters
                    .into_iter()
                    .map(|f| Subscription {
                        filter: f.path,
                        qos: f.qos as u8,
                    })
                    .collect(),
            },
            v5::Packet::SubAck(ack) => Packet::Suback {
                pkid: ack.pkid,
                codes: ack.return_codes.iter().map(suback_v5).collect(),
            },
            v5::Packet::Unsubscribe(unsubscribe) => Packet::Unsubscribe {
                pkid: unsubscribe.pkid,
                filters: unsubscribe.filters,
            },
            v5::Packet::UnsubAck(ack) => Packet::Unsuback { pkid: ack.pkid },
            v5::Packet::PingReq(_) => Packet::Pingreq,
            v5::Packet::PingResp(_) => Packet::Pingresp,
            v5::Packet::Disconnect(disconnect) => Packet::Disconnect {
                code: disconnect_v5(disconnect.reason_code),
            },
            v5::Packet::Auth(_) => Packet::Auth,
        }
    }
}

/// The user name and password of a CONNECT frame, when it carries them. Only for the
/// login check: the password goes nowhere else.
pub fn connect_login(frame: &Bytes, protocol: Protocol) -> Option<(String, String)> {
    let mut bytes = BytesMut::from(&frame[..]);
    match protocol {
        Protocol::V311 => match v4::Packet::read(&mut bytes, usize::MAX) {
            Ok(v4::Packet::Connect(connect)) => {
                connect.login.map(|login| (login.username, login.password))
            }
            _ => None,
        },
        Protocol::V5 => match v5::Packet::read(&mut bytes, None) {
            Ok(v5::Packet::Connect(_, _, login)) => {
                login.map(|login| (login.username, login.password))
            }
            _ => None,
        },
    }
}

/// Why the tap answers a CONNECT with a refusal of its own.
#[derive(Debug, Clone, Copy)]
pub enum Refusal {
    /// 3.1.1 return code 4, MQTT 5 reason 0x86.
    BadLogin,
    /// The broker is down: 3.1.1 return code 3, MQTT 5 reason 0x88.
    ServerUnavailable,
}

/// The CONNACK that refuses a client (no session present; MQTT 5: no properties).
pub fn refusal_connack(protocol: Protocol, refusal: Refusal) -> Vec<u8> {
    let (return_code, reason) = match refusal {
        Refusal::BadLogin => (0x04, 0x86),
        Refusal::ServerUnavailable => (0x03, 0x88),
    };
    match protocol {
        Protocol::V311 => vec![0x20, 0x02, 0x00, return_code],
        Protocol::V5 => vec![0x20, 0x03, 0x00, reason, 0x00],
    }
}

/// The CONNECT frame with its password overwritten by as many `*`, for captures; other
/// frames, and a CONNECT without password, come back unchanged. The password is
/// overwritten where it lies, nothing is encoded again, so no failure can hand back the
/// frame as it was. `None` when the CONNECT's fields cannot be walked to the password:
/// such a frame must stay out of the capture.
pub fn blank_password(frame: &Bytes, protocol: Protocol) -> Option<Bytes> {
    match password_span(frame, protocol)? {
        Password::Absent => Some(frame.clone()),
        Password::At(span) => {
            let mut blanked = BytesMut::from(&frame[..]);
            blanked[span].fill(b'*');
            Some(blanked.freeze())
        }
    }
}

enum Password {
    Absent,
    At(Range<usize>),
}

/// Where the password of a CONNECT lies, by walking its fields (MQTT 3.1.1 section 3.1,
/// MQTT 5 section 3.1); `None` when the frame ends before its flags say it should.
fn password_span(frame: &[u8], protocol: Protocol) -> Option<Password> {
    const WILL: u8 = 0x04;
    const PASSWORD: u8 = 0x40;
    const USERNAME: u8 = 0x80;
    let mut fields = Fields { frame, at: 0 };
    if fields.byte()? >> 4 != 1 {
        return Some(Password::Absent);
    }
    let remaining = fields.varint()?;
    if fields.at.checked_add(remaining)? != frame.len() {
        return None;
    }
    fields.string()?; // protocol name
    fields.byte()?; // level
    let flags = fields.byte()?;
    fields.skip(2)?; // keep-alive
    if protocol == Protocol::V5 {
        fields.properties()?;
    }
    fields.string()?; // client id
    if flags & WILL != 0 {
        if protocol == Protocol::V5 {
            fields.properties()?;
        }
        fields.string()?; // will topic
        fields.string()?; // will payload
    }
    if flags & USERNAME != 0 {
        fields.string()?;
    }
    if flags & PASSWORD == 0 {
        return Some(Password::Absent);
    }
    fields.string().map(Password::At)
}

/// A cursor over the fields of one frame; every step fails rather than read past its end.
struct Fields<'a> {
    frame: &'a [u8],
    at: usize,
}

impl Fields<'_> {
    fn skip(&mut self, len: usize) -> Option<()> {
        let end = self
            .at
            .checked_add(len)
            .filter(|end| *end <= self.frame.len())?;
        self.at = end;
        Some(())
    }

    fn byte(&mut self) -> Option<u8> {
        let byte = *self.frame.get(self.at)?;
        self.at += 1;
        Some(byte)
    }

    /// A variable byte integer: seven bits a byte, at most four bytes.
    fn varint(&mut self) -> Option<usize> {
        let mut value = 0usize;
        for shift in [0, 7, 14, 21] {
            let byte = self.byte()?;
            value |= usize::from(byte & 0x7f) << shift;
            if byte & 0x80 == 0 {
                return Some(value);
            }
        }
        None
    }

    /// A length-prefixed string or binary field; the span of its content.
    fn string(&mut self) -> Option<Range<usize>> {
        let len = u16::from_be_bytes([self.byte()?, self.byte()?]);
        let start = self.at;
        self.skip(usize::from(len))?;
        Some(start..self.at)
    }

    /// MQTT 5 properties: a length, then that many bytes.
    fn properties(&mut self) -> Option<()> {
        let len = self.varint()?;
        self.skip(len)
    }
}

fn from_v4(packet: v4::Packet) -> Packet {
    match packet {
        v4::Packet::Connect(connect) => Packet::Connect {
            client_id: connect.client_id,
            protocol: 4,
            clean_session: connect.clean_session,
            keep_alive: connect.keep_alive,
            will: connect.last_will.map(|will| Will {
                topic: will.topic,
                payload: Payload(will.message),
                qos: will.qos as u8,
                retain: will.retain,
            }),
            username: connect.login.map(|login| login.username),
        },
        v4::Packet::ConnAck(ack) => Packet::Connack {
            session_present: ack.session_present,
            code: connack_v4(ack.code),
        },
        v4::Packet::Publish(publish) => Packet::Publish {
            pkid: (publish.qos as u8 > 0).then_some(publish.pkid),
            topic: publish.topic,
            payload: Payload(publish.payload),
            qos: publish.qos as u8,
            retain: publish.retain,
            dup: publish.dup,
        },
        v4::Packet::PubAck(ack) => Packet::Puback {
            pkid: ack.pkid,
            code: PubackCode::Success,
        },
        v4::Packet::PubRec(ack) => Packet::Pubrec {
            pkid: ack.pkid,
            code: PubackCode::Success,
        },
        v4::Packet::PubRel(ack) => Packet::Pubrel { pkid: ack.pkid },
        v4::Packet::PubComp(ack) => Packet::Pubcomp { pkid: ack.pkid },
        v4::Packet::Subscribe(subscribe) => Packet::Subscribe {
            pkid: subscribe.pkid,
            filters: subscribe
                .filters
                .into_iter()
                .map(|f| Subscription {
                    filter: f.path,
                    qos: f.qos as u8,
                })
                .collect(),
        },
        v4::Packet::SubAck(ack) => Packet::Suback {
            pkid: ack.pkid,
            codes: ack.return_codes.iter().map(suback_v4).collect(),
        },
        v4::Packet::Unsubscribe(unsubscribe) => Packet::Unsubscribe {
            pkid: unsubscribe.pkid,
            filters: unsubscribe.topics,
        },
        v4::Packet::UnsubAck(ack) => Packet::Unsuback { pkid: ack.pkid },
        v4::Packet::PingReq => Packet::Pingreq,
        v4::Packet::PingResp => Packet::Pingresp,
        v4::Packet::Disconnect => Packet::Disconnect {
            code: DisconnectCode::NormalDisconnection,
        },
    }
}

fn lossy(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// rumqttc's codes in hil's words: every variant named, so a library upgrade that adds
/// one fails to build here instead of changing a trace.
fn connack_v4(code: v4::ConnectReturnCode) -> ConnackCode {
    use v4::ConnectReturnCode as Code;
    match code {
        Code::Success => ConnackCode::Success,
        Code::RefusedProtocolVersion => ConnackCode::UnsupportedProtocolVersion,
        Code::BadClientId => ConnackCode::ClientIdentifierNotValid,
        Code::ServiceUnavailable => ConnackCode::ServerUnavailable,
        Code::BadUserNamePassword => ConnackCode::BadUserNameOrPassword,
        Code::NotAuthorized => ConnackCode::NotAuthorized,
    }
}

fn connack_v5(code: v5::ConnectReturnCode) -> ConnackCode {
    use v5::ConnectReturnCode as Code;
    match code {
        Code::Success => ConnackCode::Success,
        Code::RefusedProtocolVersion | Code::UnsupportedProtocolVersion => {
            ConnackCode::UnsupportedProtocolVersion
        }
        Code::BadClientId | Code::ClientIdentifierNotValid => ConnackCode::ClientIdentifierNotValid,
        Code::ServiceUnavailable | Code::ServerUnavailable => ConnackCode::ServerUnavailable,
        Code::UnspecifiedError => ConnackCode::UnspecifiedError,
        Code::MalformedPacket => ConnackCode::MalformedPacket,
        Code::ProtocolError => ConnackCode::ProtocolError,
        Code::ImplementationSpecificError => ConnackCode::ImplementationSpecificError,
        Code::BadUserNamePassword => ConnackCode::BadUserNameOrPassword,
        Code::NotAuthorized => ConnackCode::NotAuthorized,
        Code::ServerBusy => ConnackCode::ServerBusy,
        Code::Banned => ConnackCode::Banned,
        Code::BadAuthenticationMethod => ConnackCode::BadAuthenticationMethod,
        Code::TopicNameInvalid => ConnackCode::TopicNameInvalid,
        Code::PacketTooLarge => ConnackCode::PacketTooLarge,
        Code::QuotaExceeded => ConnackCode::QuotaExceeded,
        Code::PayloadFormatInvalid => ConnackCode::PayloadFormatInvalid,
        Code::RetainNotSupported => ConnackCode::RetainNotSupported,
        Code::QoSNotSupported => ConnackCode::QosNotSupported,
        Code::UseAnotherServer => ConnackCode::UseAnotherServer,
        Code::ServerMoved => ConnackCode::ServerMoved,
        Code::ConnectionRateExceeded => ConnackCode::ConnectionRateExceeded,
    }
}

fn suback_v4(code: &v4::SubscribeReasonCode) -> SubackCode {
    match code {
        v4::SubscribeReasonCode::Success(qos) => SubackCode::granted(*qos as u8),
        v4::SubscribeReasonCode::Failure => SubackCode::UnspecifiedError,
    }
}

fn suback_v5(code: &v5::SubscribeReasonCode) -> SubackCode {
    use v5::SubscribeReasonCode as Code;
    match code {
        Code::Success(qos) => SubackCode::granted(*qos as u8),
        Code::Failure | Code::Unspecified => SubackCode::UnspecifiedError,
        Code::ImplementationSpecific => SubackCode::ImplementationSpecificError,
        Code::NotAuthorized => SubackCode::NotAuthorized,
        Code::TopicFilterInvalid => SubackCode::TopicFilterInvalid,
        Code::PkidInUse => SubackCode::PacketIdentifierInUse,
        Code::QuotaExceeded => SubackCode::QuotaExceeded,
        Code::SharedSubscriptionsNotSupported => SubackCode::SharedSubscriptionsNotSupported,
        Code::SubscriptionIdNotSupported => SubackCode::SubscriptionIdentifiersNotSupported,
        Code::WildcardSubscriptionsNotSupported => SubackCode::WildcardSubscriptionsNotSupported,
    }
}

/// PUBACK and PUBREC carry the same reasons, in two rumqttc enums.
macro_rules! ack_code {
    ($code:expr, $reasons:ident) => {{
        use v5::$reasons as Code;
        match $code {
            Code::Success => PubackCode::Success,
            Code::NoMatchingSubscribers => PubackCode::NoMatchingSubscribers,
            Code::UnspecifiedError => PubackCode::UnspecifiedError,
            Code::ImplementationSpecificError => PubackCode::ImplementationSpecificError,
            Code::NotAuthorized => PubackCode::NotAuthorized,
            Code::TopicNameInvalid => PubackCode::TopicNameInvalid,
            Code::PacketIdentifierInUse => PubackCode::PacketIdentifierInUse,
            Code::QuotaExceeded => PubackCode::QuotaExceeded,
            Code::PayloadFormatInvalid => PubackCode::PayloadFormatInvalid,
        }
    }};
}

fn puback_v5(code: v5::PubAckReason) -> PubackCode {
    ack_code!(code, PubAckReason)
}

fn pubrec_v5(code: v5::PubRecReason) -> PubackCode {
    ack_code!(code, PubRecReason)
}

fn disconnect_v5(code: v5::DisconnectReasonCode) -> DisconnectCode {
    use v5::DisconnectReasonCode as Code;
    match code {
        Code::NormalDisconnection => DisconnectCode::NormalDisconnection,
        Code::DisconnectWithWillMessage => DisconnectCode::DisconnectWithWillMessage,
        Code::UnspecifiedError => DisconnectCode::UnspecifiedError,
        Code::MalformedPacket => DisconnectCode::MalformedPacket,
        Code::ProtocolError => DisconnectCode::ProtocolError,
        Code::ImplementationSpecificError => DisconnectCode::ImplementationSpecificError,
        Code::NotAuthorized => DisconnectCode::NotAuthorized,
        Code::ServerBusy => DisconnectCode::ServerBusy,
        Code::ServerShuttingDown => DisconnectCode::ServerShuttingDown,
        Code::KeepAliveTimeout => DisconnectCode::KeepAliveTimeout,
        Code::SessionTakenOver => DisconnectCode::SessionTakenOver,
        Code::TopicFilterInvalid => DisconnectCode::TopicFilterInvalid,
        Code::TopicNameInvalid => DisconnectCode::TopicNameInvalid,
        Code::ReceiveMaximumExceeded => DisconnectCode::ReceiveMaximumExceeded,
        Code::TopicAliasInvalid => DisconnectCode::TopicAliasInvalid,
        Code::PacketTooLarge => DisconnectCode::PacketTooLarge,
        Code::MessageRateTooHigh => DisconnectCode::MessageRateTooHigh,
        Code::QuotaExceeded => DisconnectCode::QuotaExceeded,
        Code::AdministrativeAction => DisconnectCode::AdministrativeAction,
        Code::PayloadFormatInvalid => DisconnectCode::PayloadFormatInvalid,
        Code::RetainNotSupported => DisconnectCode::RetainNotSupported,
        Code::QoSNotSupported => DisconnectCode::QosNotSupported,
        Code::UseAnotherServer => DisconnectCode::UseAnotherServer,
        Code::ServerMoved => DisconnectCode::ServerMoved,
        Code::SharedSubscriptionNotSupported => DisconnectCode::SharedSubscriptionsNotSupported,
        Code::ConnectionRateExceeded => DisconnectCode::ConnectionRateExceeded,
        Code::MaximumConnectTime => DisconnectCode::MaximumConnectTime,
        Code::SubscriptionIdentifiersNotSupported => {
            DisconnectCode::SubscriptionIdentifiersNotSupported
        }
        Code::WildcardSubscriptionsNotSupported => {
            DisconnectCode::WildcardSubscriptionsNotSupported
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v4_connect(client_id: &str, password: Option<&str>) -> Bytes {
        let mut connect = v4::Connect::new(client_id);
        if let Some(password) = password {
            connect.set_login("user", password);
        }
        let mut buf = BytesMut::new();
        connect.write(&mut buf).unwrap();
        buf.freeze()
    }

    #[test]
    fn frames_are_split_only_when_complete() {
        let connect = v4_connect("a", None);
        let mut buf = BytesMut::from(&connect[..3]);
        assert_eq!(next_frame(&mut buf, 1024).unwrap(), None);
        buf.extend_from_slice(&connect[3..]);
        buf.extend_from_slice(&[0xc0, 0x00]);
        assert_eq!(next_frame(&mut buf, 1024).unwrap(), Some(connect));
        assert_eq!(
            next_frame(&mut buf, 1024).unwrap().as_deref(),
            Some(&[0xc0, 0x00][..])
        );
        assert!(buf.is_empty());
    }

    #[test]
    fn oversize_frames_are_refused_before_they_arrive() {
        let mut buf = BytesMut::from(&[0x30, 0xff, 0xff, 0x03][..]);
        assert!(matches!(
            next_frame(&mut buf, 1024),
            Err(DecodeError::TooLarge { .. })
        ));
    }

    #[test]
    fn protocol_comes_from_the_connect_level_byte() {
        assert_eq!(connect_protocol(&v4_connect("a", None)), Ok(Protocol::V311));
        let mut v5_frame = BytesMut::new();
        v5::Connect {
            keep_alive: 10,
            client_id: "b".into(),
            clean_start: true,
            properties: None,
        }
        .write(&None, &None, &mut v5_frame)
        .unwrap();
        assert_eq!(connect_protocol(&v5_frame), Ok(Protocol::V5));
        assert_eq!(
            connect_protocol(b"GET / HTTP/1.1\r\n"),
            Err(DecodeError::NotConnect)
        );
    }

    fn v5_connect_with_will(password: &[u8]) -> Bytes {
        let connect = v5::Connect {
            keep_alive: 10,
            client_id: "lamp".into(),
            clean_start: true,
            properties: Some(v5::ConnectProperties {
                session_expiry_interval: Some(60),
                ..v5::ConnectProperties::new()
            }),
        };
        let will = v5::LastWill::new(
            "living_room_lights/status",
            "offline",
            rumqttc::v5::mqttbytes::QoS::AtLeastOnce,
            true,
            None,
        );
        let login = v5::Login::new("user", "placeholder");
        let mut buf = BytesMut::new();
        connect.write(&Some(will), &Some(login), &mut buf).unwrap();
        // The password is last: swap in raw bytes, which need not be UTF-8.
        buf.truncate(buf.len() - "placeholder".len() - 2);
        buf.extend_from_slice(&(password.len() as u16).to_be_bytes());
        buf.extend_from_slice(password);
        let remaining = buf.len() - 2;
        assert!(remaining < 128, "one length byte");
        buf[1] = remaining as u8;
        buf.freeze()
    }

    /// Only the password's own bytes changed, each to `*`.
    fn assert_only_password_blanked(frame: &[u8], blanked: &[u8], password: &[u8]) {
        assert_eq!(blanked.len(), frame.len());
        let start = frame.len() - password.len();
        assert_eq!(&frame[..start], &blanked[..start]);
        assert!(blanked[start..].iter().all(|b| *b == b'*'));
    }

    #[test]
    fn captures_get_the_password_blanked_and_nothing_else_changed() {
        let frame = v4_connect("lamp", Some("s3cret"));
        let blanked = blank_password(&frame, Protocol::V311).unwrap();
        assert_only_password_blanked(&frame, &blanked, b"s3cret");
        let plain = v4_connect("lamp", None);
        assert_eq!(blank_password(&plain, Protocol::V311), Some(plain));
    }

    #[test]
    fn a_v5_password_after_properties_and_a_will_is_blanked_even_when_not_utf8() {
        for password in [&b"hunter2"[..], &[0xff, 0xfe, b'x', 0x00][..]] {
            let frame = v5_connect_with_will(password);
            let blanked = blank_password(&frame, Protocol::V5).unwrap();
            assert_only_password_blanked(&frame, &blanked, password);
        }
        let readable = blank_password(&v5_connect_with_will(b"hunter2"), Protocol::V5).unwrap();
        let packet = Decoder::new(Protocol::V5, 1024).decode(&readable).unwrap();
        assert!(
            matches!(&packet, Packet::Connect { client_id, will: Some(_), username: Some(user), .. } if client_id == "lamp" && user == "user"),
            "{packet:?}"
        );
    }

    #[test]
    fn a_connect_that_cannot_be_walked_to_its_password_is_left_out() {
        let frame = v4_connect("lamp", Some("s3cret"));
        // Cut short, with the length byte still claiming the whole frame.
        assert_eq!(
            blank_password(&frame.slice(..frame.len() - 3), Protocol::V311),
            None
        );
        // The password's length pointing past the end.
        let mut overlong = BytesMut::from(&frame[..]);
        let at = frame.len() - "s3cret".len() - 2;
        overlong[at..at + 2].copy_from_slice(&200u16.to_be_bytes());
        assert_eq!(blank_password(&overlong.freeze(), Protocol::V311), None);
    }

    #[test]
    fn a_v5_disconnect_or_auth_without_reason_is_read() {
        let mut decoder = Decoder::new(Protocol::V5, 1024);
        let mut written = BytesMut::new();
        v5::Disconnect::new(v5::DisconnectReasonCode::NormalDisconnection)
            .write(&mut written)
            .unwrap();
        assert_eq!(&written[..], [0xe0, 0x00], "rumqttc's own DISCONNECT");
        assert_eq!(
            decoder.decode(&written.freeze()),
            Ok(Packet::Disconnect {
                code: DisconnectCode::NormalDisconnection
            })
        );
        assert_eq!(
            decoder.decode(&Bytes::from_static(&[0xf0, 0x00])),
            Ok(Packet::Auth)
        );
    }

    #[test]
    fn a_v5_disconnect_or_auth_with_a_reason_and_no_properties_is_read() {
        let mut decoder = Decoder::new(Protocol::V5, 1024);
        // rumqttd's DISCONNECT for an invalid topic alias: reason 0x94, no property length.
        assert_eq!(
            decoder.decode(&Bytes::from_static(&[0xe0, 0x01, 0x94])),
            Ok(Packet::Disconnect {
                code: DisconnectCode::TopicAliasInvalid
            })
        );
        assert!(matches!(
            decoder.decode(&Bytes::from_static(&[0xe0, 0x01, 0x7f])),
            Err(DecodeError::Invalid(reason)) if reason.contains("0x7f")
        ));
        assert_eq!(
            decoder.decode(&Bytes::from_static(&[0xf0, 0x01, 0x18])),
            Ok(Packet::Auth)
        );
    }

    #[test]
    fn v5_ack_and_disconnect_reasons_are_hils_own_codes() {
        let mut decoder = Decoder::new(Protocol::V5, 1024);
        let mut written = BytesMut::new();
        let mut ack = v5::PubAck::new(7, None);
        ack.reason = v5::PubAckReason::NotAuthorized;
        ack.write(&mut written).unwrap();
        let packet = decoder.decode(&written.split().freeze()).unwrap();
        assert_eq!(
            packet,
            Packet::Puback {
                pkid: 7,
                code: PubackCode::NotAuthorized
            }
        );
        assert_eq!(
            serde_json::to_value(&packet).unwrap(),
            serde_json::json!({"packet": "puback", "pkid": 7, "code": "not_authorized"})
        );
        // Reason 0x8B and an empty property length, as the specification writes it.
        let packet = decoder
            .decode(&Bytes::from_static(&[0xe0, 0x02, 0x8b, 0x00]))
            .unwrap();
        assert_eq!(
            packet,
            Packet::Disconnect {
                code: DisconnectCode::ServerShuttingDown
            }
        );
        // A plain goodbye or ack is written as before: no code.
        let plain = Packet::Disconnect {
            code: DisconnectCode::NormalDisconnection,
        };
        let json = serde_json::to_value(&plain).unwrap();
        assert_eq!(json, serde_json::json!({"packet": "disconnect"}));
        assert_eq!(serde_json::from_value::<Packet>(json).unwrap(), plain);
    }

    #[test]
    fn connect_keeps_the_username_and_drops_the_password() {
        let frame = v4_connect("lamp", Some("s3cret-pass"));
        let packet = Decoder::new(Protocol::V311, 1024).decode(&frame).unwrap();
        let json = serde_json::to_string(&packet).unwrap();
        assert!(json.contains("\"username\":\"user\""), "{json}");
        assert!(!json.contains("s3cret-pass"), "{json}");
    }
}
