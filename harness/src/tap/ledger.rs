//! What the tap knows of each message's origin: the QoS and client it was published with.
//! rumqttd delivers every message at the subscription's QoS and forgets the publisher's,
//! so the tap looks a delivery up here to deliver it at the lower of the two (MQTT 3.1.1
//! and 5, section 3.8.4) and to keep a v5 `no local` subscriber from its own messages.
//!
//! A delivery is matched by topic and payload. One subscriber receives a topic's messages
//! in the order they were published, so it takes the oldest match it has not taken yet:
//! three publishes of one payload at QoS 0, 1 and 2 are told apart.

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
    pub retain: bool,
    pub client: String,
}

/// One publish: its place in the ledger, its payload's digest, its origin.
type Entry = (u64, u64, Origin);

#[derive(Debug, Default)]
struct Entries {
    recent: VecDeque<Entry>,
    /// The retained message, kept apart: it may be delivered long after newer publishes.
    retained: Option<Entry>,
}

#[derive(Debug, Default)]
struct Book {
    topics: HashMap<String, Entries>,
    /// Publishes recorded so far: the next one's place.
    count: u64,
}

#[derive(Debug, Default)]
pub struct Ledger {
    book: Mutex<Book>,
}

fn digest(payload: &[u8]) -> u64 {
    let mut hasher = std::collections::hash_map::DefaultHasher::new();
    payload.hash(&mut hasher);
    hasher.finish()
}

impl Ledger {
    /// A message entered the broker (a publish, or a will the broker is about to send).
    fn book(&self) -> std::sync::MutexGuard<'_, Book> {
        self.book
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// A message entered the broker (a publish, or a will the broker is about to send).
    pub fn published(&self, topic: &str, payload: &[u8], retain: bool, origin: Origin) {
        let mut book = self.book();
        if book.topics.len() >= TOPICS && !book.topics.contains_key(topic) {
            book.topics.clear();
        }
        book.count += 1;
        let place = book.count;
        let entries = book.topics.entry(topic.to_string()).or_default();
        let entry = (place, digest(payload), origin);
        if retain {
            entries.retained = (!payload.is_empty()).then(|| entry.clone());
        }
        if entries.recent.len() == PER_TOPIC {
            entries.recent.pop_front();
        }
        entries.recent.push_back(entry);
    }

    /// Publishes recorded so far; a subscriber's later deliveries come after this place.
    pub fn place(&self) -> u64 {
        self.book().count
    }

    /// Where a delivery of `payload` on `topic` came from, if the tap saw it come in:
    /// the oldest match after place `after` (what this subscriber took last), else the
    /// newest match (a retained message, a redelivery). With the match's place.
    pub fn origin(&self, topic: &str, payload: &[u8], after: u64) -> Option<(u64, Origin)> {
        let book = self.book();
        let entries = book.topics.get(topic)?;
        let digest = digest(payload);
        let matching = |(_, d, _): &&Entry| *d == digest;
        entries
            .recent
            .iter()
            .filter(|(place, _, _)| *place > after)
            .find(matching)
            .or_else(|| {
                entries
                    .recent
                    .iter()
                    .rev()
                    .chain(entries.retained.iter())
                    .find(matching)
            })
            .map(|(place, _, origin)| (*place, origin.clone()))
    }

    /// The engine restarted: nothing it held is delivered any more.
    pub fn clear(&self) {
        self.book().topics.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn origin(qos: u8, client: &str) -> Origin {
        Origin {
            qos,
            retain: false,
            client: client.into(),
        }
    }

    #[test]
    fn a_subscriber_takes_the_oldest_match_it_has_not_taken() {
        let ledger = Ledger::default();
        ledger.published("t", b"x", false, origin(2, "a"));
        ledger.published("t", b"x", false, origin(0, "b"));
        ledger.published("t", b"y", false, origin(1, "c"));
        assert_eq!(ledger.origin("t", b"x", 0), Some((1, origin(2, "a"))));
        assert_eq!(ledger.origin("t", b"x", 1), Some((2, origin(0, "b"))));
        assert_eq!(
            ledger.origin("t", b"x", 3),
            Some((2, origin(0, "b"))),
            "newest"
        );
        assert_eq!(ledger.origin("t", b"z", 0), None);
        assert_eq!(ledger.origin("u", b"x", 0), None);
    }

    #[test]
    fn a_retained_message_outlives_newer_publishes_until_cleared_by_an_empty_one() {
        let ledger = Ledger::default();
        ledger.published("t", b"kept", true, origin(1, "a"));
        for i in 0..PER_TOPIC {
            ledger.published("t", i.to_string().as_bytes(), false, origin(0, "b"));
        }
        let after = ledger.place();
        assert_eq!(
            ledger.origin("t", b"kept", after).map(|(_, o)| o),
            Some(origin(1, "a"))
        );
        ledger.published("t", b"", true, origin(0, "a"));
        for i in 0..PER_TOPIC {
            ledger.published("t", i.to_string().as_bytes(), false, origin(0, "b"));
        }
        assert_eq!(ledger.origin("t", b"kept", 0), None);
    }
}
