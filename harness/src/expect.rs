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

    /// Topic, payload, flags, who and when (relative to `origin_us`).
    pub fn describe(&self, origin_us: u64) -> String {
        let payload = crate::trace::Payload(bytes::Bytes::copy_from_slice(self.payload));
        let who = self.client.unwrap_or("?");
        let how = match self.dir {
            Direction::ToBroker => format!("from {who}"),
            Direction::ToClient => format!("delivered to {who}"),
        };
        format!(
            "{} {payload} qos={}{} {how} at +{:.1} ms",
            self.topic,
            self.qos,
            if self.retain { " retain" } else { "" },
            self.event.t_us.saturating_sub(origin_us) as f64 / 1000.0
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

    /// The publishes of `events` that satisfy the query, in order. With `to`, a match is
    /// a delivery to that client; with `from` as well, it must follow a matching publish
    /// from the publisher.
    pub fn matching<'e>(
        &'e self,
        events: &'e [std::sync::Arc<Event>],
    ) -> impl Iterator<Item = SeenPublish<'e>> + 'e {
        let mut published_by_sender = self.from.is_none();
        events
            .iter()
            .filter_map(|e| SeenPublish::of(e))
            .filter(move |publish| {
                let matches = match publish.dir {
                    Direction::ToBroker => self.content_matches(publish),
                    Direction::ToClient => self.delivery_matches(publish),
                };
                if !matches {
                    return false;
                }
                match (publish.dir, &self.to) {
                    (Direction::ToBroker, _)
                        if self
                            .from
                            .as_deref()
                            .is_some_and(|from| publish.client == Some(from)) =>
                    {
                        published_by_sender = true;
                        self.to.is_none()
                    }
                    (Direction::ToBroker, None) => self.from.is_none(),
                    (Direction::ToClient, Some(to)) => {
                        publish.client == Some(to.as_str()) && published_by_sender
                    }
                    _ => false,
                }
            })
    }

    pub fn describe(&self) -> String {
        let mut text = format!(
            "a message on {} with {}",
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

/// How far an `expect_trace` got: entries found in order, and the first entry whose
/// event came too soon or too late after the previous one.
#[derive(Debug, Clone, PartialEq)]
pub struct TraceProgress {
    pub found: usize,
    pub gap_miss: Option<GapMiss>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct GapMiss {
    pub entry: usize,
    pub measured: Duration,
    pub min: Duration,
    pub max: Duration,
}

/// The `gap: {min, max}` of an entry (time since the previous entry's event), if any.
pub fn entry_gap(partial: &Value) -> Result<Option<(Duration, Duration)>, String> {
    let Some(gap) = partial.get("gap") else {
        return Ok(None);
    };
    let bound = |name: &str, default: Duration| match gap.get(name) {
        None => Ok(default),
        Some(Value::String(text)) => humantime::parse_duration(text)
            .map_err(|e| format!("`gap.{name}: {text}`: {e} (write it like 250ms)")),
        Some(other) => Err(format!(
            "`gap.{name}: {other}`: write a duration like 250ms"
        )),
    };
    if !gap.is_object() {
        return Err("`gap` is a map: `gap: { min: 200ms, max: 300ms }`".into());
    }
    Ok(Some((
        bound("min", Duration::ZERO)?,
        bound("max", Duration::MAX)?,
    )))
}

/// Finds `partials` in order (not necessarily adjacent) in `events`. An entry with a
/// `gap` must follow the previous entry's event within it; the first event matching the
/// entry decides, so a wrong gap is reported, not skipped over.
pub fn subsequence_found(events: &[std::sync::Arc<Event>], partials: &[Value]) -> TraceProgress {
    let mut found = 0;
    let mut previous_at: Option<u64> = None;
    for event in events {
        let Some(partial) = partials.get(found) else {
            break;
        };
        let mut content = partial.clone();
        if let Some(map) = content.as_object_mut() {
            map.remove("gap");
        }
        if !json_contains(&event_json(event), &content) {
            continue;
        }
        if let (Some(at), Ok(Some((min, max)))) = (previous_at, entry_gap(partial)) {
            let measured = Duration::from_micros(event.t_us.saturating_sub(at));
            if measured < min || measured > max {
                return TraceProgress {
                    found,
                    gap_miss: Some(GapMiss {
                        entry: found,
                        measured,
                        min,
                        max,
                    }),
                };
            }
        }
        previous_at = Some(event.t_us);
        found += 1;
    }
    TraceProgress {
        found,
        gap_miss: None,
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

    #[test]
    fn trace_subsequences_skip_unrelated_events() {
        let events = vec![
            publish(1, "lamp", Direction::ToBroker, "a", "1"),
            publish(2, "lamp", Direction::ToBroker, "b", "2"),
            publish(3, "lamp", Direction::ToBroker, "c", "3"),
        ];
        let partials = [json!({"topic": "a"}), json!({"topic": "c", "payload": "3"})];
        assert_eq!(subsequence_found(&events, &partials).found, 2);
        let reversed = [json!({"topic": "c"}), json!({"topic": "a"})];
        assert_eq!(subsequence_found(&events, &reversed).found, 1);
    }

    #[test]
    fn gaps_between_entries_are_held_to_their_bounds() {
        // Events 1 ms apart.
        let events = vec![
            publish(1, "lamp", Direction::ToBroker, "a", "1"),
            publish(3, "lamp", Direction::ToBroker, "b", "2"),
        ];
        let within = [
            json!({"topic": "a"}),
            json!({"topic": "b", "gap": {"min": "1ms", "max": "3ms"}}),
        ];
        assert_eq!(subsequence_found(&events, &within).found, 2);
        let too_soon = [
            json!({"topic": "a"}),
            json!({"topic": "b", "gap": {"min": "5ms"}}),
        ];
        let progress = subsequence_found(&events, &too_soon);
        assert_eq!(progress.found, 1);
        let miss = progress.gap_miss.unwrap();
        assert_eq!(miss.measured, Duration::from_millis(2));
        assert_eq!(miss.min, Duration::from_millis(5));
    }
}
