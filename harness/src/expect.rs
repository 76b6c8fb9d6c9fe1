//! Matchers: which trace events satisfy an expectation, and which came close.

use regex::Regex;
use std::time::Duration;

use serde_json::Value;

use crate::trace::{Direction, Event, EventBody, Packet};

/// What a payload must be.
#[derive(Debug, Clone)]
pub enum PayloadMatch {
    Any,
    Exact(String),
    Regex(Regex),
    /// The payload parses as JSON and contains this value (see [`json_contains`]).
    Json(Value),
}

impl PayloadMatch {
    pub fn matches(&self, payload: &[u8]) -> bool {
        match self {
            PayloadMatch::Any => true,
            PayloadMatch::Exact(text) => payload == text.as_bytes(),
            PayloadMatch::Regex(regex) => {
                std::str::from_utf8(payload).is_ok_and(|text| regex.is_match(text))
            }
            PayloadMatch::Json(expected) => serde_json::from_slice::<Value>(payload)
                .is_ok_and(|actual| json_contains(&actual, expected)),
        }
    }

    pub fn describe(&self) -> String {
        match self {
            PayloadMatch::Any => "any payload".into(),
            PayloadMatch::Exact(text) => format!("payload {text:?}"),
            PayloadMatch::Regex(regex) => format!("payload matching /{}/", regex.as_str()),
            PayloadMatch::Json(value) => format!("JSON payload containing {value}"),
        }
    }
}

/// `actual` contains `expected`: objects by key (recursively), arrays element by element
/// (same length), anything else by equality.
pub fn json_contains(actual: &Value, expected: &Value) -> bool {
    match (actual, expected) {
        (Value::Object(actual), Value::Object(expected)) => expected.iter().all(|(key, want)| {
            actual
                .get(key)
                .is_some_and(|have| json_contains(have, want))
        }),
        (Value::Array(actual), Value::Array(expected)) => {
            actual.len() == expected.len()
                && actual
                    .iter()
                    .zip(expected)
                    .all(|(have, want)| json_contains(have, want))
        }
        (Value::Number(actual), Value::Number(expected)) => actual.as_f64() == expected.as_f64(),
        _ => actual == expected,
    }
}

/// A publish as the trace saw it.
#[derive(Debug, Clone, Copy)]
pub struct SeenPublish<'a> {
    pub event: &'a Event,
    pub client: Option<&'a str>,
    pub dir: Direction,
    pub topic: &'a str,
    pub payload: &'a [u8],
    pub qos: u8,
    pub retain: bool,
}

impl<'a> SeenPublish<'a> {
    pub fn of(event: &'a Event) -> Option<SeenPublish<'a>> {
        match &event.body {
            EventBody::Mqtt {
                client,
                dir,
                packet:
                    Packet::Publish {
                        topic,
                        payload,
                        qos,
                        retain,
                        ..
                    },
                ..
            } => Some(SeenPublish {
                event,
                client: client.as_deref(),
                dir: *dir,
                topic,
                payload: &payload.0,
                qos: *qos,
                retain: *retain,
            }),
            _ => None,
        }
    }

    /// Topic, payload, flags, who, when (relative to `origin_us`) and which event
    /// (`event #N`, its `seq`, by which reports point at it).
    pub fn describe(&self, origin_us: u64) -> String {
        let payload = crate::trace::Payload(bytes::Bytes::copy_from_slice(self.payload));
        let who = self.client.unwrap_or("?");
        let how = match self.dir {
            Direction::ToBroker => format!("from {who}"),
            Direction::ToClient => format!("delivered to {who}"),
        };
        format!(
            "{} {payload} qos={}{} {how} at +{:.1} ms (event #{})",
            self.topic,
            self.qos,
            if self.retain { " retain" } else { "" },
            self.event.t_us.saturating_sub(origin_us) as f64 / 1000.0,
            self.event.seq
        )
    }
}

/// An `expect_message` with actor names already turned into client ids.
#[derive(Debug, Clone)]
pub struct MessageQuery {
    pub filter: String,
    pub payload: PayloadMatch,
    pub qos: Option<u8>,
    pub retain: Option<bool>,
    /// Client id of the publisher.
    pub from: Option<String>,
    /// Client id of a receiver.
    pub to: Option<String>,
}

impl MessageQuery {
    /// The message's content matches (topic, payload, qos, retain), whoever sent it.
    fn content_matches(&self, publish: &SeenPublish<'_>) -> bool {
        rumqttc::matches(publish.topic, &self.filter)
            && self.payload.matches(publish.payload)
            && self.qos.is_none_or(|qos| qos == publish.qos)
            && self.retain.is_none_or(|retain| retain == publish.retain)
    }

    /// The delivery carries the message: topic and payload. With `from` given, qos and
    /// retain were checked on the publish itself (a live delivery never has retain set).
    fn delivery_matches(&self, publish: &SeenPublish<'_>) -> bool {
        if self.from.is_some() {
            rumqttc::matches(publish.topic, &self.filter) && self.payload.matches(publish.payload)
        } else {
            self.content_matches(publish)
        }
    }

    /// Counts the events of `events` that satisfy the query.
    pub fn count_matches(&self, events: &[std::sync::Arc<Event>]) -> usize {
        self.matching(events).count()
    }

    /// The publishes of `events` that satisfy the query, in order.
    pub fn matching<'e>(
        &'e self,
        events: &'e [std::sync::Arc<Event>],
    ) -> impl Iterator<Item = SeenPublish<'e>> + 'e {
        let mut counter = self.counter();
        events
            .iter()
            .filter_map(move |event| counter.see(event).then(|| SeenPublish::of(event)).flatten())
    }

    /// A counter that looks at one event at a time, for waits that see each event once.
    pub fn counter(&self) -> MatchCounter<'_> {
        MatchCounter {
            query: self,
            published_by_sender: self.from.is_none(),
            count: 0,
        }
    }

    /// `a message on … with …`.
    pub fn describe(&self) -> String {
        format!("a {}", self.describe_subject())
    }

    /// `message on … with …`, for phrases such as "no message on …".
    pub fn describe_subject(&self) -> String {
        let mut text = format!(
            "message on {} with {}",
            self.filter,
            self.payload.describe()
        );
        if let Some(qos) = self.qos {
            text += &format!(", qos {qos}");
        }
        if let Some(retain) = self.retain {
            text += &format!(", retain {retain}");
        }
        if let Some(from) = &self.from {
            text += &format!(", from {from}");
        }
        if let Some(to) = &self.to {
            text += &format!(", delivered to {to}");
        }
        text
    }

    /// Publishes in `events` that nearly matched, each with what was different.
    pub fn near_misses(&self, events: &[std::sync::Arc<Event>], origin_us: u64) -> Vec<String> {
        let mut misses = Vec::new();
        for publish in events.iter().filter_map(|e| SeenPublish::of(e)) {
            let topic_matches = rumqttc::matches(publish.topic, &self.filter);
            let payload_matches = self.payload.matches(publish.payload);
            let seen = publish.describe(origin_us);
            let note = if topic_matches && !payload_matches {
                Some("same topic, other payload")
            } else if !topic_matches
                && payload_matches
                && similar_topic(publish.topic, &self.filter)
            {
                Some("similar topic")
            } else if self.content_matches(&publish) {
                match (publish.dir, &self.from, &self.to) {
                    (Direction::ToBroker, Some(from), _)
                        if publish.client != Some(from.as_str()) =>
                    {
                        Some("right message, other publisher")
                    }
                    (Direction::ToClient, _, Some(to)) if publish.client != Some(to.as_str()) => {
                        Some("right message, delivered to another client")
                    }
                    (_, _, _) if topic_matches && self.qos.is_some_and(|q| q != publish.qos) => {
                        Some("other qos")
                    }
                    _ => None,
                }
            } else if topic_matches && payload_matches {
                Some("other qos or retain flag")
            } else {
                None
            };
            if let Some(note) = note {
                misses.push(format!("{note}: {seen}"));
            }
        }
        misses.dedup();
        misses
    }
}

/// Matches of a [`MessageQuery`], counted as events arrive. With `to`, a match is a
/// delivery to that client; with `from` as well, it must follow a matching publish from
/// the publisher.
#[derive(Debug)]
pub struct MatchCounter<'q> {
    query: &'q MessageQuery,
    published_by_sender: bool,
    pub count: usize,
}

impl MatchCounter<'_> {
    /// Looks at the next event; true when it is a match.
    pub fn see(&mut self, event: &Event) -> bool {
        let Some(publish) = SeenPublish::of(event) else {
            return false;
        };
        let query = self.query;
        let matches = match publish.dir {
            Direction::ToBroker => query.content_matches(&publish),
            Direction::ToClient => query.delivery_matches(&publish),
        };
        if !matches {
            return false;
        }
        let counted = match (publish.dir, &query.to) {
            (Direction::ToBroker, _)
                if query
                    .from
                    .as_deref()
                    .is_some_and(|from| publish.client == Some(from)) =>
            {
                self.published_by_sender = true;
                query.to.is_none()
            }
            (Direction::ToBroker, None) => query.from.is_none(),
            (Direction::ToClient, Some(to)) => {
                publish.client == Some(to.as_str()) && self.published_by_sender
            }
            _ => false,
        };
        self.count += usize::from(counted);
        counted
    }
}

/// Whether a client is connected, followed event by event: its latest connection event
/// is a successful CONNACK, and a SUBACK may have followed it.
#[derive(Debug)]
pub struct ConnectionTracker<'c> {
    client_id: &'c str,
    connacked: bool,
    subscribed: bool,
}

impl<'c> ConnectionTracker<'c> {
    pub fn new(client_id: &'c str) -> ConnectionTracker<'c> {
        ConnectionTracker {
            client_id,
            connacked: false,
            subscribed: false,
        }
    }

    pub fn see(&mut self, event: &Event) {
        match &event.body {
            EventBody::Mqtt {
                client,
                dir: Direction::ToClient,
                packet,
                ..
            } if client.as_deref() == Some(self.client_id) => match packet {
                Packet::Connack { code, .. } => {
                    (self.connacked, self.subscribed) = (code.is_success(), false)
                }
                Packet::Suback { .. } => self.subscribed = true,
                _ => {}
            },
            EventBody::ConnClosed { client, .. } if client.as_deref() == Some(self.client_id) => {
                self.connacked = false
            }
            _ => {}
        }
    }

    /// Connected; with `must_subscribe`, also subscribed since (a board that has not
    /// subscribed yet cannot hear a command and is not ready for a scenario).
    pub fn is_connected(&self, must_subscribe: bool) -> bool {
        self.connacked && (self.subscribed || !must_subscribe)
    }
}

/// A command the board could not hear: a publish on a topic the board subscribes to,
/// made before the broker confirmed the board's subscription, told as the story of what
/// happened and what to write instead.
pub fn published_before_subscribed(
    events: &[std::sync::Arc<Event>],
    board: &str,
    client_id: &str,
) -> Option<String> {
    let origin = events.first().map_or(0, |e| e.t_us);
    let ms = |t: u64| t.saturating_sub(origin) as f64 / 1000.0;
    let mut filters: Vec<&str> = Vec::new();
    let mut early: Option<(&str, &str, u64)> = None;
    for event in events {
        let EventBody::Mqtt {
            client,
            dir,
            packet,
            ..
        } = &event.body
        else {
            continue;
        };
        let from_board = client.as_deref() == Some(client_id);
        match (packet, dir, from_board) {
            (
                Packet::Subscribe {
                    filters: wanted, ..
                },
                Direction::ToBroker,
                true,
            ) => {
                filters = wanted.iter().map(|s| s.filter.as_str()).collect();
            }
            (Packet::Publish { topic, .. }, Direction::ToBroker, false) if early.is_none() => {
                early = Some((client.as_deref().unwrap_or("?"), topic, event.t_us));
            }
            (Packet::Suback { .. }, Direction::ToClient, true) => {
                let (publisher, topic, at) = early?;
                let filter = filters
                    .iter()
                    .find(|filter| rumqttc::matches(topic, filter))?;
                return Some(format!(
                    "{board} subscribed to {filter} only at {:.1} ms, after {publisher}'s publish \
                     on {topic} at {:.1} ms, which it could not hear: start with \
                     `expect_connected: {{ client: {board} }}`",
                    ms(event.t_us),
                    ms(at)
                ));
            }
            _ => {}
        }
    }
    None
}

/// When a board's switch was pressed more often than matching messages came: how many
/// presses, and how close the closest two were, since the firmware counts presses closer
/// than its debounce as one.
pub fn debounce_hint(events: &[std::sync::Arc<Event>], matched: usize) -> Option<String> {
    let mut presses: std::collections::BTreeMap<&str, Vec<u64>> = Default::default();
    for event in events {
        if let EventBody::Board {
            board,
            change: crate::trace::BoardChange::SwitchPressed,
        } = &event.body
        {
            presses.entry(board).or_default().push(event.t_us);
        }
    }
    presses.into_iter().find_map(|(board, times)| {
        let closest = times.windows(2).map(|pair| pair[1] - pair[0]).min()?;
        (times.len() > matched).then(|| {
            format!(
                "{} presses of {board} since the step began, the closest two {:.1} ms apart: \
                 the firmware counts presses closer than its debounce (30 ms unless the board \
                 sets `debounce:`) as one; space them with `wait`",
                times.len(),
                closest as f64 / 1000.0
            )
        })
    })
}

/// Topics that differ by a typo or one level are worth showing as near misses.
fn similar_topic(topic: &str, filter: &str) -> bool {
    strsim::normalized_levenshtein(topic, filter) >= 0.75
        || topic.split('/').next() == filter.split('/').next()
            && topic.split('/').count() != filter.split('/').count()
}

/// The trace event as a JSON object, for partial matching in `expect_trace`.
pub fn event_json(event: &Event) -> Value {
    serde_json::to_value(event).unwrap_or(Value::Null)
}

/// One entry of an `expect_trace`: a partial event (a JSON object compared as a subset of
/// the event) and, optionally, bounds on the time since the previous entry's event. The
/// gap is read once, when the scenario is loaded.
#[derive(Debug, Clone, PartialEq)]
pub struct TraceEntry {
    pub partial: Value,
    pub gap: Option<Gap>,
}

/// `gap: { min: 200ms, max: 300ms }`; either bound may be left out.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Gap {
    pub min: Duration,
    /// `None`: any time later.
    pub max: Option<Duration>,
}

impl TraceEntry {
    /// Reads an entry as written: a map, with an optional `gap`.
    pub fn from_value(mut value: Value) -> Result<TraceEntry, String> {
        let Some(map) = value.as_object_mut() else {
            return Err(format!(
                "a trace entry is a map of event fields, not `{value}`: e.g. `{{ kind: relay, on: true }}`"
            ));
        };
        let gap = match map.remove("gap") {
            None => None,
            Some(Value::Object(bounds)) => {
                let bound = |name: &str| match bounds.get(name) {
                    None => Ok(None),
                    Some(Value::String(text)) => humantime::parse_duration(text)
                        .map(Some)
                        .map_err(|e| format!("`gap.{name}: {text}`: {e} (write it like 250ms)")),
                    Some(other) => Err(format!(
                        "`gap.{name}: {other}`: write a duration like 250ms"
                    )),
                };
                if let Some(unknown) = bounds
                    .keys()
                    .find(|key| !matches!(key.as_str(), "min" | "max"))
                {
                    return Err(format!("`gap.{unknown}`: a gap has only `min` and `max`"));
                }
                Some(Gap {
                    min: bound("min")?.unwrap_or(Duration::ZERO),
                    max: bound("max")?,
                })
            }
            Some(_) => return Err("`gap` is a map: `gap: { min: 200ms, max: 300ms }`".into()),
        };
        Ok(TraceEntry {
            partial: value,
            gap,
        })
    }

    /// The entry as written.
    pub fn to_value(&self) -> Value {
        let mut value = self.partial.clone();
        if let (Some(gap), Some(map)) = (self.gap, value.as_object_mut()) {
            let mut bounds = serde_json::Map::new();
            if gap.min > Duration::ZERO {
                bounds.insert(
                    "min".into(),
                    humantime::format_duration(gap.min).to_string().into(),
                );
            }
            if let Some(max) = gap.max {
                bounds.insert(
                    "max".into(),
                    humantime::format_duration(max).to_string().into(),
                );
            }
            map.insert("gap".into(), Value::Object(bounds));
        }
        value
    }
}

impl<'de> serde::Deserialize<'de> for TraceEntry {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        TraceEntry::from_value(Value::deserialize(deserializer)?).map_err(serde::de::Error::custom)
    }
}

impl serde::Serialize for TraceEntry {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        self.to_value().serialize(serializer)
    }
}

impl schemars::JsonSchema for TraceEntry {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "TraceEntry".into()
    }

    fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
        schemars::json_schema!({
            "type": "object",
            "description": "A partial trace event; `gap: { min, max }` bounds the time since the previous entry's event"
        })
    }
}

/// An entry whose event came too soon or too late after the previous entry's.
#[derive(Debug, Clone, PartialEq)]
pub struct GapMiss {
    pub entry: usize,
    pub measured: Duration,
    pub gap: Gap,
}

/// Finds `expect_trace` entries in order (not necessarily adjacent), one event at a time.
#[derive(Debug)]
pub struct SubsequenceMatcher<'e> {
    entries: &'e [TraceEntry],
    /// Entries found so far.
    pub found: usize,
    previous_at: Option<u64>,
    pub gap_miss: Option<GapMiss>,
}

impl<'e> SubsequenceMatcher<'e> {
    pub fn new(entries: &'e [TraceEntry]) -> SubsequenceMatcher<'e> {
        SubsequenceMatcher {
            entries,
            found: 0,
            previous_at: None,
            gap_miss: None,
        }
    }

    /// Looks at the next event; true once the matcher has its answer (all found, or a
    /// gap missed), after which later events change nothing.
    pub fn see(&mut self, event: &Event) -> bool {
        if self.is_decided() {
            return true;
        }
        let entry = &self.entries[self.found];
        if !json_contains(&event_json(event), &entry.partial) {
            return false;
        }
        if let (Some(at), Some(gap)) = (self.previous_at, entry.gap) {
            let measured = Duration::from_micros(event.t_us.saturating_sub(at));
            if measured < gap.min || gap.max.is_some_and(|max| measured > max) {
                self.gap_miss = Some(GapMiss {
                    entry: self.found,
                    measured,
                    gap,
                });
                return true;
            }
        }
        self.previous_at = Some(event.t_us);
        self.found += 1;
        self.is_decided()
    }

    pub fn is_complete(&self) -> bool {
        self.found == self.entries.len()
    }

    fn is_decided(&self) -> bool {
        self.is_complete() || self.gap_miss.is_some()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::trace::Payload;
    use serde_json::json;
    use std::sync::Arc;

    fn publish(seq: u64, client: &str, dir: Direction, topic: &str, payload: &str) -> Arc<Event> {
        Arc::new(Event {
            seq,
            t_us: seq * 1000,
            body: EventBody::Mqtt {
                conn: 1,
                client: Some(client.into()),
                dir,
                packet: Packet::Publish {
                    topic: topic.into(),
                    payload: Payload::from(payload),
                    qos: 1,
                    retain: false,
                    dup: false,
                    pkid: Some(1),
                },
            },
        })
    }

    fn query(payload: &str, from: Option<&str>, to: Option<&str>) -> MessageQuery {
        MessageQuery {
            filter: "living_room_lights".into(),
            payload: PayloadMatch::Exact(payload.into()),
            qos: None,
            retain: None,
            from: from.map(Into::into),
            to: to.map(Into::into),
        }
    }

    #[test]
    fn json_subset_matching() {
        assert!(json_contains(
            &json!({"a": 1, "b": {"c": [1, 2]}}),
            &json!({"b": {"c": [1, 2]}})
        ));
        assert!(!json_contains(&json!({"a": 1}), &json!({"a": 2})));
        assert!(!json_contains(&json!([1, 2, 3]), &json!([1, 2])));
        assert!(json_contains(&json!(1.0), &json!(1)));
    }

    #[test]
    fn from_and_to_select_the_right_side_of_the_tap() {
        let events = vec![
            publish(1, "phone", Direction::ToBroker, "living_room_lights", "on"),
            publish(
                2,
                "display",
                Direction::ToClient,
                "living_room_lights",
                "on",
            ),
        ];
        assert_eq!(query("on", Some("phone"), None).count_matches(&events), 1);
        assert_eq!(query("on", Some("lamp"), None).count_matches(&events), 0);
        assert_eq!(query("on", None, Some("display")).count_matches(&events), 1);
        assert_eq!(
            query("on", Some("phone"), Some("display")).count_matches(&events),
            1
        );
        assert_eq!(
            query("on", Some("lamp"), Some("display")).count_matches(&events),
            0
        );
        assert_eq!(
            query("on", None, None).count_matches(&events),
            1,
            "deliveries are not publishes"
        );
    }

    #[test]
    fn near_misses_say_what_differed() {
        let events = vec![
            publish(1, "phone", Direction::ToBroker, "living_room_lights", "off"),
            publish(2, "phone", Direction::ToBroker, "living_room_light", "on"),
            publish(3, "phone", Direction::ToBroker, "living_room_lights", "on"),
        ];
        let misses = query("on", Some("lamp"), None).near_misses(&events, 0);
        assert!(
            misses[0].starts_with("same topic, other payload: living_room_lights \"off\""),
            "{misses:?}"
        );
        assert!(
            misses[1].starts_with("similar topic: living_room_light \"on\""),
            "{misses:?}"
        );
        assert!(
            misses[2].starts_with("right message, other publisher"),
            "{misses:?}"
        );
    }

    fn entries(values: &[Value]) -> Vec<TraceEntry> {
        values
            .iter()
            .map(|value| TraceEntry::from_value(value.clone()).unwrap())
            .collect()
    }

    fn found(events: &[Arc<Event>], entries: &[TraceEntry]) -> SubsequenceMatcher<'static> {
        let entries: &'static [TraceEntry] = Box::leak(entries.to_vec().into_boxed_slice());
        let mut matcher = SubsequenceMatcher::new(entries);
        for event in events {
            if matcher.see(event) {
                break;
            }
        }
        matcher
    }

    #[test]
    fn trace_subsequences_skip_unrelated_events() {
        let events = vec![
            publish(1, "lamp", Direction::ToBroker, "a", "1"),
            publish(2, "lamp", Direction::ToBroker, "b", "2"),
            publish(3, "lamp", Direction::ToBroker, "c", "3"),
        ];
        let in_order = entries(&[json!({"topic": "a"}), json!({"topic": "c", "payload": "3"})]);
        assert!(found(&events, &in_order).is_complete());
        let reversed = entries(&[json!({"topic": "c"}), json!({"topic": "a"})]);
        assert_eq!(found(&events, &reversed).found, 1);
    }

    #[test]
    fn gaps_between_entries_are_held_to_their_bounds() {
        // Events 2 ms apart.
        let events = vec![
            publish(1, "lamp", Direction::ToBroker, "a", "1"),
            publish(3, "lamp", Direction::ToBroker, "b", "2"),
        ];
        let within = entries(&[
            json!({"topic": "a"}),
            json!({"topic": "b", "gap": {"min": "1ms", "max": "3ms"}}),
        ]);
        assert!(found(&events, &within).is_complete());
        let too_soon = entries(&[
            json!({"topic": "a"}),
            json!({"topic": "b", "gap": {"min": "5ms"}}),
        ]);
        let matcher = found(&events, &too_soon);
        assert_eq!(matcher.found, 1);
        let miss = matcher.gap_miss.unwrap();
        assert_eq!(miss.measured, Duration::from_millis(2));
        assert_eq!(miss.gap.min, Duration::from_millis(5));
    }

    #[test]
    fn gaps_are_read_once_and_written_back_as_they_were() {
        let written = json!({"kind": "relay", "gap": {"min": "200ms", "max": "300ms"}});
        let entry = TraceEntry::from_value(written.clone()).unwrap();
        assert_eq!(entry.partial, json!({"kind": "relay"}));
        assert_eq!(entry.to_value(), written);
        for bad in [
            json!({"gap": "200ms"}),
            json!({"gap": {"min": 200}}),
            json!({"gap": {"least": "1ms"}}),
            json!("relay"),
        ] {
            assert!(TraceEntry::from_value(bad.clone()).is_err(), "{bad}");
        }
    }

    #[test]
    fn a_counter_sees_each_event_once_and_agrees_with_a_whole_scan() {
        let events = vec![
            publish(1, "lamp", Direction::ToBroker, "living_room_lights", "on"),
            publish(
                2,
                "display",
                Direction::ToClient,
                "living_room_lights",
                "on",
            ),
            publish(3, "lamp", Direction::ToBroker, "living_room_lights", "on"),
            publish(
                4,
                "display",
                Direction::ToClient,
                "living_room_lights",
                "on",
            ),
        ];
        let query = query("on", Some("lamp"), Some("display"));
        let mut counter = query.counter();
        let seen: Vec<bool> = events.iter().map(|e| counter.see(e)).collect();
        assert_eq!(seen, [false, true, false, true]);
        assert_eq!(counter.count, query.count_matches(&events));
    }
}
