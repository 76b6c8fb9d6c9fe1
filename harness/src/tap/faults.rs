//! Faults the tap injects into the connections of one client: partitions, delays,
//! dropped and duplicated frames. Scenario steps set them; the tap asks, frame by frame,
//! what to do. Every random choice comes from one generator seeded by the run, so a
//! `--seed` replays the same faults.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::trace::{Direction, Packet};

/// What happens to one frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fate {
    Forward,
    Drop,
    /// Forwarded, then once more (with DUP set when its QoS has a packet id).
    Twice,
}

/// How many frames a drop takes.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum DropAmount {
    Count(u32),
    /// Each frame with this probability, until the rule is cleared.
    Ratio(f64),
}

#[derive(Debug)]
pub struct Faults {
    state: Mutex<State>,
}

#[derive(Debug)]
struct State {
    rng: fastrand::Rng,
    clients: HashMap<String, ClientFaults>,
    /// Live connections by client id, so a partition can cut them.
    live: HashMap<String, Vec<(u64, CancellationToken)>>,
}

#[derive(Debug, Default)]
struct ClientFaults {
    partitioned_until: Option<Instant>,
    delay: Option<Delay>,
    drops: Vec<(Direction, DropAmount)>,
    duplicates: u32,
}

#[derive(Debug, Clone, Copy)]
struct Delay {
    by: Duration,
    jitter: Duration,
    until: Option<Instant>,
}

impl Faults {
    pub fn new(seed: u64) -> Faults {
        Faults {
            state: Mutex::new(State {
                rng: fastrand::Rng::with_seed(seed),
                clients: HashMap::new(),
                live: HashMap::new(),
            }),
        }
    }

    /// Seeds every random choice (ratios, jitter) from here on.
    pub fn reseed(&self, seed: u64) {
        self.state().rng = fastrand::Rng::with_seed(seed);
    }

    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Cuts the client's connections and turns its new ones away until `until`.
    pub fn partition(&self, client: &str, until: Instant) {
        let mut state = self.state();
        state
            .clients
            .entry(client.to_string())
            .or_default()
            .partitioned_until = Some(until);
        for (_, cut) in state.live.remove(client).unwrap_or_default() {
            cut.cancel();
        }
    }

    pub fn heal(&self, client: &str) {
        if let Some(faults) = self.state().clients.get_mut(client) {
            faults.partitioned_until = None;
        }
    }

    pub fn is_partitioned(&self, client: &str) -> bool {
        self.state()
            .clients
            .get(client)
            .and_then(|faults| faults.partitioned_until)
            .is_some_and(|until| Instant::now() < until)
    }

    /// Holds every frame of the client, both ways, for `by` ± `jitter`, in order.
    pub fn delay(&self, client: &str, by: Duration, jitter: Duration, until: Option<Instant>) {
        self.state()
            .clients
            .entry(client.to_string())
            .or_default()
            .delay = Some(Delay { by, jitter, until });
    }

    pub fn drop_frames(&self, client: &str, direction: Direction, amount: DropAmount) {
        self.state()
            .clients
            .entry(client.to_string())
            .or_default()
            .drops
            .push((direction, amount));
    }

    pub fn duplicate(&self, client: &str, count: u32) {
        self.state()
            .clients
            .entry(client.to_string())
            .or_default()
            .duplicates += count;
    }

    /// Registers a live connection of `client`; a partition cancels `cut`.
    pub fn register(&self, client: &str, conn: u64, cut: CancellationToken) {
        self.state()
            .live
            .entry(client.to_string())
            .or_default()
            .push((conn, cut));
    }

    pub fn unregister(&self, client: &str, conn: u64) {
        if let Some(conns) = self.state().live.get_mut(client) {
            conns.retain(|(id, _)| *id != conn);
        }
    }

    /// What to do with one frame of `client` going `dir`, and how long to hold it.
    /// Only the message flow (PUBLISH and its acknowledgements) is dropped or
    /// duplicated: a lost CONNECT or PING would test the keep-alive, not delivery.
    pub fn fate(&self, client: &str, dir: Direction, packet: &Packet) -> (Fate, Duration) {
        let mut state = self.state();
        let State { rng, clients, .. } = &mut *state;
        let Some(faults) = clients.get_mut(client) else {
            return (Fate::Forward, Duration::ZERO);
        };
        let hold = match faults.delay {
            Some(delay) if delay.until.is_none_or(|until| Instant::now() < until) => {
                let jitter = delay.jitter.as_micros() as i64;
                let offset = if jitter == 0 {
                    0
                } else {
                    rng.i64(-jitter..=jitter)
                };
                let micros = (delay.by.as_micros() as i64 + offset).max(0);
                Duration::from_micros(micros as u64)
            }
            _ => Duration::ZERO,
        };
        let message_flow = matches!(
            packet,
            Packet::Publish { .. }
                | Packet::Puback { .. }
                | Packet::Pubrec { .. }
                | Packet::Pubrel { .. }
                | Packet::Pubcomp { .. }
        );
        if !message_flow {
            return (Fate::Forward, hold);
        }
        for (direction, amount) in faults.drops.iter_mut() {
            if *direction != dir {
                continue;
            }
            let dropped = match amount {
                DropAmount::Count(0) => false,
                DropAmount::Count(left) => {
                    *left -= 1;
                    true
                }
                DropAmount::Ratio(ratio) => rng.f64() < *ratio,
            };
            if dropped {
                return (Fate::Drop, hold);
            }
        }
        if faults.duplicates > 0
            && dir == Direction::ToBroker
            && matches!(packet, Packet::Publish { .. })
        {
            faults.duplicates -= 1;
            return (Fate::Twice, hold);
        }
        (Fate::Forward, hold)
    }

    /// Whether any fault is set for `client` (the fast path skips the rest).
    pub fn any_for(&self, client: &str) -> bool {
        self.state().clients.contains_key(client)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::trace::Payload;

    fn publish() -> Packet {
        Packet::Publish {
            topic: "t".into(),
            payload: Payload::from("x"),
            qos: 1,
            retain: false,
            dup: false,
            pkid: Some(1),
        }
    }

    fn fates(seed: u64) -> Vec<Fate> {
        let faults = Faults::new(seed);
        faults.drop_frames("phone", Direction::ToBroker, DropAmount::Ratio(0.5));
        (0..64)
            .map(|_| faults.fate("phone", Direction::ToBroker, &publish()).0)
            .collect()
    }

    #[test]
    fn a_seeded_ratio_drops_the_same_frames_every_time() {
        assert_eq!(fates(7), fates(7));
        assert_ne!(fates(7), fates(8));
        let dropped = fates(7).iter().filter(|f| **f == Fate::Drop).count();
        assert!((16..=48).contains(&dropped), "{dropped} of 64");
    }

    #[test]
    fn a_counted_drop_takes_that_many_publishes_and_spares_the_rest() {
        let faults = Faults::new(1);
        faults.drop_frames("phone", Direction::ToClient, DropAmount::Count(2));
        assert_eq!(
            faults.fate("phone", Direction::ToBroker, &publish()).0,
            Fate::Forward
        );
        assert_eq!(
            faults
                .fate("phone", Direction::ToClient, &Packet::Pingresp)
                .0,
            Fate::Forward
        );
        assert_eq!(
            faults.fate("phone", Direction::ToClient, &publish()).0,
            Fate::Drop
        );
        assert_eq!(
            faults.fate("phone", Direction::ToClient, &publish()).0,
            Fate::Drop
        );
        assert_eq!(
            faults.fate("phone", Direction::ToClient, &publish()).0,
            Fate::Forward
        );
        assert_eq!(
            faults.fate("lamp", Direction::ToClient, &publish()).0,
            Fate::Forward
        );
    }

    #[test]
    fn a_partition_cuts_live_connections_and_heals() {
        let faults = Faults::new(1);
        let cut = CancellationToken::new();
        faults.register("lamp", 3, cut.clone());
        faults.partition("lamp", Instant::now() + Duration::from_secs(60));
        assert!(cut.is_cancelled());
        assert!(faults.is_partitioned("lamp"));
        assert!(!faults.is_partitioned("phone"));
        faults.heal("lamp");
        assert!(!faults.is_partitioned("lamp"));
    }

    #[test]
    fn delays_stay_within_their_jitter() {
        let faults = Faults::new(3);
        faults.delay(
            "phone",
            Duration::from_millis(100),
            Duration::from_millis(20),
            None,
        );
        for _ in 0..100 {
            let (_, hold) = faults.fate("phone", Direction::ToClient, &Packet::Pingresp);
            assert!(
                hold >= Duration::from_millis(80) && hold <= Duration::from_millis(120),
                "{hold:?}"
            );
        }
    }

    #[test]
    fn duplicates_are_counted_publishes_to_the_broker() {
        let faults = Faults::new(1);
        faults.duplicate("phone", 1);
        assert_eq!(
            faults.fate("phone", Direction::ToClient, &publish()).0,
            Fate::Forward
        );
        assert_eq!(
            faults.fate("phone", Direction::ToBroker, &publish()).0,
            Fate::Twice
        );
        assert_eq!(
            faults.fate("phone", Direction::ToBroker, &publish()).0,
            Fate::Forward
        );
    }
}
