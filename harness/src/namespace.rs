//! Sharing one external broker: every scenario of every run gets its own corner of it.
//!
//! On an external broker (`hil run --broker URL`) many CI jobs, and the parallel
//! scenarios of one job, meet on one set of topics and client ids. So each scenario's
//! clients and boards put a prefix on what they send (topics `hil/<run>/<n>/…`, client ids
//! `hil-<run>-<n>-…`), and the tap takes it off again when it records: scenarios,
//! expectations, snapshots and timelines read plain `living_room_lights` and `phone`,
//! while the wire (and a pcap) shows what the broker really saw.

use crate::trace::Packet;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Namespace {
    topic_prefix: String,
    client_prefix: String,
}

impl Namespace {
    /// The corner of scenario `index` of run `run_id`.
    pub fn new(run_id: &str, index: usize) -> Namespace {
        Namespace {
            topic_prefix: format!("hil/{run_id}/{index}/"),
            client_prefix: format!("hil-{run_id}-{index}-"),
        }
    }

    /// A run id that differs between runs started at the same moment on other machines.
    pub fn run_id(seed: u64) -> String {
        let time = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |since| since.as_millis() as u64);
        format!(
            "{:x}",
            (time ^ seed.rotate_left(17) ^ u64::from(std::process::id())) & 0xffff_ffff
        )
    }

    pub fn topic(&self, topic: &str) -> String {
        format!("{}{topic}", self.topic_prefix)
    }

    pub fn client_id(&self, client_id: &str) -> String {
        format!("{}{client_id}", self.client_prefix)
    }

    /// The packet as the scenario wrote it: topics, filters, the will topic and the
    /// client id without the prefixes.
    pub fn strip(&self, packet: &mut Packet) {
        let topics = &self.topic_prefix;
        match packet {
            Packet::Connect {
                client_id, will, ..
            } => {
                strip(client_id, &self.client_prefix);
                if let Some(will) = will {
                    strip(&mut will.topic, topics);
                }
            }
            Packet::Publish { topic, .. } => strip(topic, topics),
            Packet::Subscribe { filters, .. } => {
                for subscription in filters {
                    strip(&mut subscription.filter, topics);
                }
            }
            Packet::Unsubscribe { filters, .. } => {
                for filter in filters {
                    strip(filter, topics);
                }
            }
            _ => {}
        }
    }
}

fn strip(text: &mut String, prefix: &str) {
    if text.starts_with(prefix) {
        text.replace_range(..prefix.len(), "");
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::trace::{Payload, Subscription, Will};

    #[test]
    fn what_is_sent_prefixed_is_recorded_plain() {
        let ns = Namespace::new("a1b2", 3);
        assert_eq!(
            ns.topic("living_room_lights"),
            "hil/a1b2/3/living_room_lights"
        );
        assert_eq!(ns.client_id("phone"), "hil-a1b2-3-phone");

        let mut connect = Packet::Connect {
            client_id: ns.client_id("lamp"),
            protocol: 4,
            clean_session: true,
            keep_alive: 15,
            will: Some(Will {
                topic: ns.topic("living_room_lights/status"),
                payload: Payload::from("offline"),
                qos: 1,
                retain: true,
            }),
            username: None,
        };
        ns.strip(&mut connect);
        let Packet::Connect {
            client_id, will, ..
        } = connect
        else {
            unreachable!()
        };
        assert_eq!(client_id, "lamp");
        assert_eq!(will.unwrap().topic, "living_room_lights/status");

        let mut subscribe = Packet::Subscribe {
            pkid: 1,
            filters: vec![Subscription {
                filter: ns.topic("living_room_lights/#"),
                qos: 1,
            }],
        };
        ns.strip(&mut subscribe);
        assert!(
            matches!(&subscribe, Packet::Subscribe { filters, .. } if filters[0].filter == "living_room_lights/#")
        );
    }

    #[test]
    fn another_scenarios_topics_stay_visible_as_they_are() {
        let mine = Namespace::new("a1b2", 0);
        let theirs = Namespace::new("a1b2", 1);
        let mut publish = Packet::Publish {
            topic: theirs.topic("t"),
            payload: Payload::from("x"),
            qos: 0,
            retain: false,
            dup: false,
            pkid: None,
        };
        mine.strip(&mut publish);
        assert!(matches!(&publish, Packet::Publish { topic, .. } if topic == "hil/a1b2/1/t"));
    }
}
