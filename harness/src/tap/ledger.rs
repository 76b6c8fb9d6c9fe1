//! What the tap knows of each message's origin: the QoS and client it was published with.
//! rumqttd delivers every message at the subscription's QoS and forgets the publisher's,
//! so the tap looks a delivery up here to deliver it at the lower of the two (MQTT 3.1.1
//! and 5, section 3.8.4) and to keep a v5 `no local` subscriber from its own messages.

use std::collections::{HashMap, VecDeque};
use std::hash::{Hash, Hasher};
use std::sync::Mutex;

/// Recent publishes remembered per topic; a delivery matches the newest with its payload.
const PER_TOPIC: usize = 32;
/// Topics remembered at most; beyond, the ledger starts over (deliveries of forgotten
/// messages then keep the engine's QoS).
const TOPICS: usize = 100_000;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Origin {
    pub qos: u8,
    pub client: String,
}

#[derive(Debug, Default)]
struct Entries {
    recent: VecDeque<(u64, Origin)>,
    /// The retained message, kept apart: it may be delivered long after newer publishes.
    retained: Option<(u64, Origin)>,
}

#[derive(Debug, Default)]
pub struct Ledger {
    topics: Mutex<HashMap<String, Entries>>,
}

fn digest(payload: &[u8]) -> u64 {
    let mut hasher = std::collections::hash_map::DefaultHasher::new();
    payload.hash(&mut hasher);
    hasher.finish()
}

impl Ledger {
    /// A message entered the broker (a publish, or a will the broker is about to send).
    pub fn published(&self, topic: &str, payload: &[u8], retain: bool, origin: Origin) {
        let mut topics = self
            .topics
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        if topics.len() >= TOPICS && !topics.contains_key(topic) {
            topics.clear();
        }
        let entries = topics.entry(topic.to_string()).or_default();
        let digest = digest(payload);
        if retain {
            entries.retained = (!payload.is_empty()).then(|| (digest, origin.clone()));
        }
        if entries.recent.len() == PER_TOPIC {
            entries.recent.pop_front();
        }
        entries.recent.push_back((digest, origin));
    }

    /// Where a delivery of `payload` on `topic` came from, if the tap saw it come in.
    pub fn origin(&self, topic: &str, payload: &[u8]) -> Option<Origin> {
        let topics = self
            .topics
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        let entries = topics.get(topic)?;
        let digest = digest(payload);
        entries
            .recent
            .iter()
            .rev()
            .chain(entries.retained.iter())
            .find(|(d, _)| *d == digest)
            .map(|(_, origin)| origin.clone())
    }

    /// The engine restarted: nothing it held is delivered any more.
    pub fn clear(&self) {
        self.topics
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn origin(qos: u8, client: &str) -> Origin {
        Origin {
            qos,
            client: client.into(),
        }
    }

    #[test]
    fn the_newest_publish_with_the_payload_is_the_origin() {
        let ledger = Ledger::default();
        ledger.published("t", b"x", false, origin(2, "a"));
        ledger.published("t", b"x", false, origin(0, "b"));
        ledger.published("t", b"y", false, origin(1, "c"));
        assert_eq!(ledger.origin("t", b"x"), Some(origin(0, "b")));
        assert_eq!(ledger.origin("t", b"z"), None);
        assert_eq!(ledger.origin("u", b"x"), None);
    }

    #[test]
    fn a_retained_message_outlives_newer_publishes_until_cleared_by_an_empty_one() {
        let ledger = Ledger::default();
        ledger.published("t", b"kept", true, origin(1, "a"));
        for i in 0..PER_TOPIC {
            ledger.published("t", i.to_string().as_bytes(), false, origin(0, "b"));
        }
        assert_eq!(ledger.origin("t", b"kept"), Some(origin(1, "a")));
        ledger.published("t", b"", true, origin(0, "a"));
        for i in 0..PER_TOPIC {
            ledger.published("t", i.to_string().as_bytes(), false, origin(0, "b"));
        }
        assert_eq!(ledger.origin("t", b"kept"), None);
    }
}
