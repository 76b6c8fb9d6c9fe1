//! Where the tap keeps the MQTT specification that the engine (rumqttd 0.20) does not:
//! delivery at the lower of the publish's and the subscription's QoS (section 3.8.4),
//! `$` topics kept from filters starting with a wildcard (4.7.2), MQTT 5 `no local`
//! (3.8.3.1), and subscriptions the broker refuses (`--deny-subscribe`). The tap asks,
//! frame by frame, what to do with it; what the client then sees is recorded.
//!
//! When the tap withholds or downgrades a delivery, it owes the engine the acknowledgement
//! the client will not send (or sends in another form): it answers the engine itself.

use std::collections::HashMap;
use std::sync::Mutex;

use bytes::{BufMut, Bytes, BytesMut};
use rumqttc::mqttbytes::{self, v4};
use rumqttc::v5::mqttbytes::v5;

use super::acks::EngineAcks;
use super::decode::Protocol;
use super::ledger::{Ledger, Origin};
use super::topic;
use crate::trace::{Direction, Packet};

/// What becomes of one frame.
#[derive(Debug, PartialEq)]
pub enum Verdict {
    Forward,
    /// Forward these bytes instead.
    Replace(Bytes),
    /// Forward nothing.
    Withhold,
}

/// The verdict on a frame, an answer the tap sends itself, and what to note in the trace.
#[derive(Debug)]
pub struct Action {
    pub verdict: Verdict,
    /// Frames the tap sends, towards the client or towards the engine, in order.
    pub answers: Vec<(Direction, Bytes)>,
    /// Subscriptions refused, for a `deny_subscribe` fault event.
    pub refused: Vec<String>,
}

impl Action {
    fn forward() -> Action {
        Action::new(Verdict::Forward)
    }

    fn new(verdict: Verdict) -> Action {
        Action {
            verdict,
            answers: Vec::new(),
            refused: Vec::new(),
        }
    }

    fn answering(mut self, dir: Direction, frames: impl IntoIterator<Item = Bytes>) -> Action {
        self.answers
            .extend(frames.into_iter().map(|frame| (dir, frame)));
        self
    }
}

/// A granted subscription, as far as the tap needs it.
#[derive(Debug, Clone, Copy)]
struct Granted {
    no_local: bool,
    /// MQTT 5 `retain as published` (3.8.3.1): live deliveries keep the publish's flag.
    retain_as_published: bool,
    /// MQTT 5 `retain handling`: whether retained messages are sent when it is made.
    retained_on_subscribe: RetainedOnSubscribe,
}

impl Granted {
    const PLAIN: Granted = Granted {
        no_local: false,
        retain_as_published: false,
        retained_on_subscribe: RetainedOnSubscribe::Always,
    };
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum RetainedOnSubscribe {
    Always,
    /// Only when no subscription to the same filter existed.
    IfNew,
    /// Only when the subscription is made; `false` once another SUBSCRIBE renewed it
    /// under retain handling 1 or 2.
    Once(bool),
}

/// What the tap knows of every client's session across its connections: its granted
/// subscriptions, and where recent messages came from.
#[derive(Debug, Default)]
pub struct Sessions {
    subscriptions: Mutex<HashMap<String, HashMap<String, Granted>>>,
    pub ledger: Ledger,
}

impl Sessions {
    /// A client connected with a clean session: its old subscriptions are gone.
    pub fn clean(&self, client: &str) {
        lock(&self.subscriptions).remove(client);
    }

    /// The engine restarted: no session survives.
    pub fn clear(&self) {
        lock(&self.subscriptions).clear();
        self.ledger.clear();
    }
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// Writes the SUBSCRIBE again without the refused filters (`true` at their places).
type SubscribeRewrite = Box<dyn Fn(&[bool]) -> Bytes>;

/// A SUBSCRIBE waiting for the engine's SUBACK: its filters in order, refused or not.
#[derive(Debug)]
struct Pending {
    filters: Vec<(String, Granted, bool)>,
    /// The ledger's place when it came: later publishes may be delivered to it.
    place: u64,
}

/// One connection's view.
#[derive(Debug)]
pub struct Conformance {
    protocol: Protocol,
    client: String,
    pending: HashMap<u16, Pending>,
    acks: EngineAcks,
    /// The largest packet the client takes (MQTT 5 `Maximum Packet Size`, 3.1.2.11.4):
    /// a larger delivery is withheld, as the specification says.
    max_packet_size: Option<usize>,
    /// The ledger's place at the last granted SUBSCRIBE: deliveries after it come from
    /// later publishes, unless retained.
    subscribed_at: u64,
    /// Per topic, the ledger place of the last delivery matched.
    taken: HashMap<String, u64>,
}

impl Conformance {
    /// For the connection that sent this CONNECT.
    pub fn new(protocol: Protocol, client: &str, connect: &Bytes) -> Conformance {
        Conformance {
            max_packet_size: max_packet_size(connect, protocol),
            protocol,
            client: client.to_string(),
            pending: HashMap::new(),
            acks: EngineAcks::default(),
            subscribed_at: 0,
            taken: HashMap::new(),
        }
    }

    /// A frame from the client. `refuses` names the refusal that covers a filter.
    pub fn client_frame(
        &mut self,
        frame: &Bytes,
        packet: &Packet,
        sessions: &Sessions,
        refuses: &dyn Fn(&str) -> bool,
    ) -> Action {
        match packet {
            Packet::Publish {
                topic,
                payload,
                qos,
                retain,
                ..
            } => {
                sessions.ledger.published(
                    topic,
                    &payload.0,
                    *retain,
                    Origin {
                        qos: *qos,
                        retain: *retain,
                        client: self.client.clone(),
                    },
                );
                Action::forward()
            }
            Packet::Puback { pkid, .. } | Packet::Pubrec { pkid, .. } => {
                let (forwarded, after) = self.acks.client_ack(frame[0] >> 4, *pkid, frame);
                let verdict = if forwarded == *frame {
                    Verdict::Forward
                } else {
                    Verdict::Replace(forwarded)
                };
                Action::new(verdict).answering(Direction::ToBroker, after)
            }
            Packet::Pubcomp { pkid } => {
                Action::forward().answering(Direction::ToBroker, self.acks.client_pubcomp(*pkid))
            }
            Packet::Subscribe { .. } => self.subscribe(frame, sessions.ledger.place(), refuses),
            Packet::Unsubscribe { filters, .. } => {
                if let Some(granted) = lock(&sessions.subscriptions).get_mut(&self.client) {
                    for filter in filters {
                        granted.remove(filter);
                    }
                }
                Action::forward()
            }
            _ => Action::forward(),
        }
    }

    /// A frame from the engine to the client.
    pub fn engine_frame(&mut self, frame: &Bytes, packet: &Packet, sessions: &Sessions) -> Action {
        match packet {
            Packet::Publish {
                topic,
                payload,
                qos,
                pkid,
                ..
            } => self.deliver(frame, topic, &payload.0, *qos, *pkid, sessions),
            Packet::Pubrel { pkid } => match self.acks.engine_pubrel(*pkid) {
                Some(now) => Action::new(Verdict::Withhold).answering(Direction::ToBroker, now),
                None => Action::forward(),
            },
            Packet::Suback { pkid, .. } => self.suback(frame, *pkid, sessions),
            _ => Action::forward(),
        }
    }

    fn deliver(
        &mut self,
        frame: &Bytes,
        topic: &str,
        payload: &[u8],
        qos: u8,
        pkid: Option<u16>,
        sessions: &Sessions,
    ) -> Action {
        let withheld = {
            let subscriptions = lock(&sessions.subscriptions);
            let empty = HashMap::new();
            let granted = subscriptions.get(&self.client).unwrap_or(&empty);
            let matching: Vec<Granted> = granted
                .iter()
                .filter(|(filter, _)| topic::matches(topic::unshared(filter), topic))
                .map(|(_, granted)| *granted)
                .collect();
            let only_by_wildcard = topic.starts_with('$')
                && matching.is_empty()
                && granted.keys().any(|filter| {
                    let filter = topic::unshared(filter);
                    topic::starts_with_wildcard(filter) && topic::levels_match(filter, topic)
                });
            let after = self
                .taken
                .get(topic)
                .copied()
                .unwrap_or(0)
                .max(self.subscribed_at);
            let origin = sessions
                .ledger
                .origin(topic, payload, after)
                .map(|(place, origin)| {
                    if place > after {
                        self.taken.insert(topic.to_string(), place);
                    }
                    origin
                });
            let own_message = origin.as_ref().is_some_and(|o| o.client == self.client);
            let no_local = own_message
                && !matching.is_empty()
                && matching.iter().all(|granted| granted.no_local);
            let too_large = self.max_packet_size.is_some_and(|max| frame.len() > max);
            // rumqttd sets RETAIN only on what it sends from its store for a SUBSCRIBE.
            let from_store = frame[0] & RETAIN != 0;
            let retained_unwanted = from_store
                && !matching.is_empty()
                && matching.iter().all(|granted| {
                    granted.retained_on_subscribe == RetainedOnSubscribe::Once(false)
                });
            let retain_kept = !from_store
                && origin.as_ref().is_some_and(|o| o.retain)
                && matching.iter().any(|granted| granted.retain_as_published);
            let withhold = only_by_wildcard || no_local || too_large || retained_unwanted;
            (withhold, origin, retain_kept)
        };
        let (withhold, origin, retain_kept) = withheld;
        let wanted = origin.map_or(qos, |origin| origin.qos.min(qos));
        let frame = &if retain_kept {
            let mut flagged = BytesMut::from(&frame[..]);
            flagged[0] |= RETAIN;
            flagged.freeze()
        } else {
            frame.clone()
        };
        let Some(pkid) = pkid else {
            return if withhold {
                Action::new(Verdict::Withhold)
            } else if retain_kept {
                Action::new(Verdict::Replace(frame.clone()))
            } else {
                Action::forward()
            };
        };
        if withhold || wanted == 0 {
            let verdict = if withhold {
                Verdict::Withhold
            } else {
                Verdict::Replace(with_qos(frame, 0))
            };
            let now = self.acks.tap_acks(pkid, qos);
            return Action::new(verdict).answering(Direction::ToBroker, now);
        }
        let downgraded = wanted < qos;
        self.acks.client_acks(pkid, downgraded);
        if downgraded {
            Action::new(Verdict::Replace(with_qos(frame, wanted)))
        } else if retain_kept {
            Action::new(Verdict::Replace(frame.clone()))
        } else {
            Action::forward()
        }
    }

    fn subscribe(&mut self, frame: &Bytes, place: u64, refuses: &dyn Fn(&str) -> bool) -> Action {
        let mut bytes = BytesMut::from(&frame[..]);
        let (pkid, filters, rewrite): (u16, Vec<(String, Granted)>, SubscribeRewrite) = match self
            .protocol
        {
            Protocol::V311 => {
                let Ok(v4::Packet::Subscribe(subscribe)) = v4::Packet::read(&mut bytes, usize::MAX)
                else {
                    return Action::forward();
                };
                let filters = subscribe
                    .filters
                    .iter()
                    .map(|f| (f.path.clone(), Granted::PLAIN))
                    .collect();
                let pkid = subscribe.pkid;
                (
                    pkid,
                    filters,
                    Box::new(move |refused: &[bool]| {
                        let mut kept = subscribe.clone();
                        kept.filters = keep(&subscribe.filters, refused);
                        let mut out = BytesMut::new();
                        let _ = kept.write(&mut out);
                        out.freeze()
                    }),
                )
            }
            Protocol::V5 => {
                let Ok(v5::Packet::Subscribe(subscribe)) = v5::Packet::read(&mut bytes, None)
                else {
                    return Action::forward();
                };
                let filters = subscribe
                    .filters
                    .iter()
                    .map(|f| {
                        (
                            f.path.clone(),
                            Granted {
                                no_local: f.nolocal,
                                retain_as_published: f.preserve_retain,
                                retained_on_subscribe: match f.retain_forward_rule {
                                    v5::RetainForwardRule::OnEverySubscribe => {
                                        RetainedOnSubscribe::Always
                                    }
                                    v5::RetainForwardRule::OnNewSubscribe => {
                                        RetainedOnSubscribe::IfNew
                                    }
                                    v5::RetainForwardRule::Never => {
                                        RetainedOnSubscribe::Once(false)
                                    }
                                },
                            },
                        )
                    })
                    .collect();
                let pkid = subscribe.pkid;
                (
                    pkid,
                    filters,
                    Box::new(move |refused: &[bool]| {
                        let mut kept = subscribe.clone();
                        kept.filters = keep(&subscribe.filters, refused);
                        let mut out = BytesMut::new();
                        let _ = kept.write(&mut out);
                        out.freeze()
                    }),
                )
            }
        };
        let refused: Vec<bool> = filters
            .iter()
            .map(|(filter, _)| refuses(filter) || engine_closes_over(filter))
            .collect();
        let refused_filters: Vec<String> = filters
            .iter()
            .zip(&refused)
            .filter(|(_, refused)| **refused)
            .map(|((filter, _), _)| filter.clone())
            .collect();
        self.pending.insert(
            pkid,
            Pending {
                filters: filters
                    .into_iter()
                    .zip(&refused)
                    .map(|((filter, granted), refused)| (filter, granted, *refused))
                    .collect(),
                place,
            },
        );
        let mut action = if refused_filters.is_empty() {
            Action::forward()
        } else if refused.iter().all(|r| *r) {
            let pending = self
                .pending
                .remove(&pkid)
                .map(|p| p.filters)
                .unwrap_or_default();
            let codes = vec![None; pending.len()];
            Action::new(Verdict::Withhold)
                .answering(Direction::ToClient, [self.suback_frame(pkid, &codes)])
        } else {
            Action::new(Verdict::Replace(rewrite(&refused)))
        };
        action.refused = refused_filters;
        action
    }

    /// The engine's SUBACK: grants recorded; refusals the engine never saw put back in
    /// their places.
    fn suback(&mut self, frame: &Bytes, pkid: u16, sessions: &Sessions) -> Action {
        let Some(pending) = self.pending.remove(&pkid) else {
            return Action::forward();
        };
        self.subscribed_at = pending.place;
        let mut engine_codes = suback_codes(frame, self.protocol).into_iter();
        let codes: Vec<Option<u8>> = pending
            .filters
            .iter()
            .map(|(_, _, refused)| {
                if *refused {
                    None
                } else {
                    engine_codes.next().flatten()
                }
            })
            .collect();
        {
            let mut subscriptions = lock(&sessions.subscriptions);
            let granted = subscriptions.entry(self.client.clone()).or_default();
            for ((filter, options, _), code) in pending.filters.iter().zip(&codes) {
                if code.is_some() {
                    let mut options = *options;
                    if options.retained_on_subscribe == RetainedOnSubscribe::IfNew {
                        let new = !granted.contains_key(filter);
                        options.retained_on_subscribe = RetainedOnSubscribe::Once(new);
                    }
                    granted.insert(filter.clone(), options);
                }
            }
        }
        if pending.filters.iter().any(|(_, _, refused)| *refused) {
            Action::new(Verdict::Replace(self.suback_frame(pkid, &codes)))
        } else {
            Action::forward()
        }
    }

    /// A SUBACK with these grants; `None` is a refusal (0x80 in 3.1.1, 0x87 "not
    /// authorized" in 5).
    fn suback_frame(&self, pkid: u16, codes: &[Option<u8>]) -> Bytes {
        let mut out = BytesMut::new();
        match self.protocol {
            Protocol::V311 => {
                let return_codes = codes
                    .iter()
                    .map(|code| match code.and_then(|q| mqttbytes::qos(q).ok()) {
                        Some(qos) => v4::SubscribeReasonCode::Success(qos),
                        None => v4::SubscribeReasonCode::Failure,
                    })
                    .collect();
                let _ = v4::SubAck::new(pkid, return_codes).write(&mut out);
            }
            Protocol::V5 => {
                let return_codes = codes
                    .iter()
                    .map(|code| match code.and_then(|q| mqttbytes::qos(q).ok()) {
                        Some(qos) => v5::SubscribeReasonCode::Success(v5_qos(qos)),
                        None => v5::SubscribeReasonCode::NotAuthorized,
                    })
                    .collect();
                let ack = v5::SubAck {
                    pkid,
                    return_codes,
                    properties: None,
                };
                let _ = ack.write(&mut out);
            }
        }
        out.freeze()
    }
}

/// rumqttd ends the whole connection for a filter starting with `$` (other than a shared
/// subscription's `$share/`): refusing that one filter is what the specification allows.
fn engine_closes_over(filter: &str) -> bool {
    filter.starts_with('$') && !filter.starts_with("$share/")
}

/// The RETAIN flag of a PUBLISH's first byte.
const RETAIN: u8 = 0x01;

/// The `Maximum Packet Size` an MQTT 5 CONNECT asks for.
fn max_packet_size(connect: &Bytes, protocol: Protocol) -> Option<usize> {
    if protocol != Protocol::V5 {
        return None;
    }
    match v5::Packet::read(&mut BytesMut::from(&connect[..]), None) {
        Ok(v5::Packet::Connect(connect, _, _)) => connect
            .properties?
            .max_packet_size
            .and_then(|max| usize::try_from(max).ok()),
        _ => None,
    }
}

fn v5_qos(qos: mqttbytes::QoS) -> rumqttc::v5::mqttbytes::QoS {
    match qos {
        mqttbytes::QoS::AtMostOnce => rumqttc::v5::mqttbytes::QoS::AtMostOnce,
        mqttbytes::QoS::AtLeastOnce => rumqttc::v5::mqttbytes::QoS::AtLeastOnce,
        mqttbytes::QoS::ExactlyOnce => rumqttc::v5::mqttbytes::QoS::ExactlyOnce,
    }
}

fn keep<T: Clone>(filters: &[T], refused: &[bool]) -> Vec<T> {
    filters
        .iter()
        .zip(refused)
        .filter(|(_, refused)| !**refused)
        .map(|(filter, _)| filter.clone())
        .collect()
}

/// The grants of a SUBACK in order: `Some(qos)` granted, `None` refused.
fn suback_codes(frame: &Bytes, protocol: Protocol) -> Vec<Option<u8>> {
    let mut bytes = BytesMut::from(&frame[..]);
    match protocol {
        Protocol::V311 => match v4::Packet::read(&mut bytes, usize::MAX) {
            Ok(v4::Packet::SubAck(ack)) => ack
                .return_codes
                .iter()
                .map(|code| match code {
                    v4::SubscribeReasonCode::Success(qos) => Some(*qos as u8),
                    v4::SubscribeReasonCode::Failure => None,
                })
                .collect(),
            _ => Vec::new(),
        },
        Protocol::V5 => match v5::Packet::read(&mut bytes, None) {
            Ok(v5::Packet::SubAck(ack)) => ack
                .return_codes
                .iter()
                .map(|code| match code {
                    v5::SubscribeReasonCode::Success(qos) => Some(*qos as u8),
                    _ => None,
                })
                .collect(),
            _ => Vec::new(),
        },
    }
}

/// The fixed header's length and the remaining length of a complete frame.
fn fixed_header(frame: &[u8]) -> (usize, usize) {
    let mut remaining = 0usize;
    for (i, byte) in frame.iter().skip(1).take(4).enumerate() {
        remaining |= usize::from(byte & 0x7f) << (7 * i);
        if byte & 0x80 == 0 {
            return (i + 2, remaining);
        }
    }
    (frame.len(), 0)
}

fn put_remaining_length(out: &mut BytesMut, mut len: usize) {
    loop {
        let mut byte = (len % 128) as u8;
        len /= 128;
        if len > 0 {
            byte |= 0x80;
        }
        out.put_u8(byte);
        if len == 0 {
            return;
        }
    }
}

/// A PUBLISH frame delivered at a lower `qos`: a QoS 0 one loses its packet id and DUP
/// flag. Topic, properties and payload stay as they are.
pub fn with_qos(frame: &[u8], qos: u8) -> Bytes {
    let (header_len, _) = fixed_header(frame);
    let body = &frame[header_len..];
    let topic_end = 2 + usize::from(u16::from_be_bytes([body[0], body[1]]));
    let had_pkid = (frame[0] >> 1) & 0b11 > 0;
    let rest = &body[topic_end + if had_pkid { 2 } else { 0 }..];
    let pkid = if had_pkid && qos > 0 {
        &body[topic_end..topic_end + 2]
    } else {
        &[][..]
    };
    let mut flags = (frame[0] & !0b0110) | (qos << 1);
    if qos == 0 {
        flags &= !0b1000;
    }
    let len = topic_end + pkid.len() + rest.len();
    let mut out = BytesMut::with_capacity(len + 5);
    out.put_u8(flags);
    put_remaining_length(&mut out, len);
    out.extend_from_slice(&body[..topic_end]);
    out.extend_from_slice(pkid);
    out.extend_from_slice(rest);
    out.freeze()
}

/// A CONNECT frame asking for another keep-alive (the engine's copy: rumqttd refuses 0,
/// and the tap keeps the client's keep-alive itself).
pub fn with_keep_alive(frame: &Bytes, keep_alive: u16) -> Bytes {
    let (header_len, _) = fixed_header(frame);
    let name_len = usize::from(u16::from_be_bytes([
        frame[header_len],
        frame[header_len + 1],
    ]));
    // Protocol name, level byte, flags byte, then the keep-alive.
    let at = header_len + 2 + name_len + 2;
    let mut out = BytesMut::from(&frame[..]);
    if let Some(field) = out.get_mut(at..at + 2) {
        field.copy_from_slice(&keep_alive.to_be_bytes());
    }
    out.freeze()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tap::decode::Decoder;

    fn v4_publish(qos: mqttbytes::QoS) -> Bytes {
        let mut publish = v4::Publish::new("a/b", qos, "payload");
        publish.pkid = if qos as u8 > 0 { 7 } else { 0 };
        publish.dup = qos as u8 > 0;
        let mut out = BytesMut::new();
        publish.write(&mut out).unwrap();
        out.freeze()
    }

    #[test]
    fn a_downgraded_publish_keeps_topic_and_payload() {
        let mut decoder = Decoder::new(Protocol::V311, 1024);
        let q0 = with_qos(&v4_publish(mqttbytes::QoS::ExactlyOnce), 0);
        assert_eq!(q0, v4_publish(mqttbytes::QoS::AtMostOnce));
        let q1 = decoder.decode(&with_qos(&v4_publish(mqttbytes::QoS::ExactlyOnce), 1));
        assert!(
            matches!(&q1, Ok(Packet::Publish { qos: 1, pkid: Some(7), topic, .. }) if topic == "a/b"),
            "{q1:?}"
        );
    }

    #[test]
    fn the_engine_is_asked_for_another_keep_alive() {
        let mut connect = BytesMut::new();
        let mut packet = v4::Connect::new("lamp");
        packet.keep_alive = 0;
        packet.write(&mut connect).unwrap();
        let changed = with_keep_alive(&connect.freeze(), 600);
        let decoded = Decoder::new(Protocol::V311, 1024).decode(&changed);
        assert!(
            matches!(
                decoded,
                Ok(Packet::Connect {
                    keep_alive: 600,
                    ..
                })
            ),
            "{decoded:?}"
        );
    }
}
