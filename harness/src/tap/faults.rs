//! Faults the tap injects into the connections of one client: partitions, delays,
//! dropped and duplicated frames. Scenario steps set them; the tap asks, frame by frame,
//! what to do. Every random choice comes from a generator of its own per client and
//! direction, seeded from the run's seed: a `--seed` replays the same faults, however the
//! frames of other clients, or the other direction, interleave with them.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::seed::derive_seed;
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
    seed: u64,
    clients: HashMap<String, ClientFaults>,
    /// Live connections by client id, so a partition can cut them.
    live: HashMap<String, Vec<(u64, CancellationToken)>>,
    /// Filters whose subscriptions the broker refuses, for every client.
    denied_subscriptions: Vec<String>,
}

impl State {
    fn client(&mut self, client: &str) -> &mut ClientFaults {
        let seed = self.seed;
        self.clients
            .entry(client.to_string())
            .or_insert_with(|| ClientFaults::new(seed, client))
    }
}

#[derive(Debug)]
struct ClientFaults {
    partitioned_until: Option<Instant>,
    delay: Option<Delay>,
    drops: Vec<(Direction, DropAmount)>,
    duplicates: u32,
    draws: Draws,
}

impl ClientFaults {
    fn new(seed: u64, client: &str) -> ClientFaults {
        ClientFaults {
            partitioned_until: None,
            delay: None,
            drops: Vec::new(),
            duplicates: 0,
            draws: Draws::new(seed, client),
        }
    }
}

/// The random choices of one client: a generator per direction, so that the replies
/// coming back never shift the draws for what the client sends.
#[derive(Debug)]
struct Draws {
    to_broker: fastrand::Rng,
    to_client: fastrand::Rng,
}

impl Draws {
    fn new(seed: u64, client: &str) -> Draws {
        Draws {
            to_broker: fastrand::Rng::with_seed(derive_seed(seed, &format!("{client} c2b"))),
            to_client: fastrand::Rng::with_seed(derive_seed(seed, &format!("{client} b2c"))),
        }
    }

    fn towards(&mut self, dir: Direction) -> &mut fastrand::Rng {
        match dir {
            Direction::ToBroker => &mut self.to_broker,
            Direction::ToClient => &mut self.to_client,
        }
    }
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
                seed,
                clients: HashMap::new(),
                live: HashMap::new(),
                denied_subscriptions: Vec::new(),
            }),
        }
    }

    /// Seeds every random choice (ratios, jitter) from here on.
    pub fn reseed(&self, seed: u64) {
        let mut state = self.state();
        state.seed = seed;
        for (client, faults) in state.clients.iter_mut() {
            faults.draws = Draws::new(seed, client);
        }
    }

    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Cuts the client's connections and turns its new ones away until `until`.
    pub fn partition(&self, client: &str, until: Instant) {
        let mut state = self.state();
        state.client(client).partitioned_until = Some(until);
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
        self.state().client(client).delay = Some(Delay { by, jitter, until });
    }

    pub fn drop_frames(&self, client: &str, direction: Direction, amount: DropAmount) {
        self.state().client(client).drops.push((direction, amount));
    }

    pub fn duplicate(&self, client: &str, count: u32) {
        self.state().client(client).duplicates += count;
    }

    /// Registers a live connection of `client`; a partition cancels `cut`.
    pub fn register(&self, client: &str, conn: u64, cut: CancellationToken) {
        self.state()
            .live
            .entry(client.to_string())
            .or_default()
            .push((conn, cut));
    }

    /// A live connection of `client` opened after `conn`, which took its session over.
    pub fn newer_connection(&self, client: &str, conn: u64) -> Option<u64> {
        self.state()
            .live
            .get(client)?
            .iter()
            .map(|(id, _)| *id)
            .filter(|id| *id > conn)
            .max()
    }

    pub fn unregister(&self, client: &str, conn: u64) {
        if let Some(conns) = self.state().live.get_mut(client) {
            conns.retain(|(id, _)| *id != conn);
        }
    }

    /// What to do with one frame of `client` going `dir`, and how long to hold it.
    /// Only the message flow (PUBLISH and its acknowledgements) is dropped or
    /// duplicated: a lost CONNECT or PING would test the keep-alive, not delivery.
    /// Keep-alive pings are held `by` exactly: they come when a timer fires, not when
    /// the scenario acts, so a draw for them would shift every later draw.
    pub fn fate(&self, client: &str, dir: Direction, packet: &Packet) -> (Fate, Duration) {
        let mut state = self.state();
        let Some(faults) = state.clients.get_mut(client) else {
            return (Fate::Forward, Duration::ZERO);
        };
        let keep_alive = matches!(packet, Packet::Pingreq | Packet::Pingresp);
        let hold = match faults.delay {
            Some(delay) if delay.until.is_none_or(|until| Instant::now() < until) => {
                let jitter = delay.jitter.as_micros() as i64;
                let offset = if jitter == 0 || keep_alive {
                    0
                } else {
                    faults.draws.towards(dir).i64(-jitter..=jitter)
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
                DropAmount::Ratio(ratio) => faults.draws.towards(dir).f64() < *ratio,
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

    /// From now on, a subscription to a filter that `filter` matches (as if the requested
    /// filter were a topic: `secret/#` covers `secret/a` and `secret/#`) is refused with
    /// SUBACK 0x80 (MQTT 3.1.1) or 0x87 "not authorized" (MQTT 5), for every client.
    /// Subscriptions granted before stay.
    pub fn deny_subscribe(&self, filter: &str) {
        let mut state = self.state();
        if !state.denied_subscriptions.iter().any(|f| f == filter) {
            state.denied_subscriptions.push(filter.to_string());
        }
    }

    /// Ends a [`Faults::deny_subscribe`].
    pub fn allow_subscribe(&self, filter: &str) {
        self.state().denied_subscriptions.retain(|f| f != filter);
    }

    /// Whether a subscription to `requested` is refused.
    pub fn refuses_subscription(&self, requested: &str) -> bool {
        self.state()
            .denied_subscriptions
            .iter()
            .any(|denied| super::topic::matches(denied, requested))
    }

    /// Whether any fault is set for `client` (the fast path skips the rest).
    pub fn any_for(&self, client: &str) -> bool {
        self.state().clients.contains_key(client)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::trace::{Payload, PubackCode};

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
    fn delays_stay_within_their_jitter_and_pings_get_none() {
        let faults = Faults::new(3);
        faults.delay(
            "phone",
            Duration::from_millis(100),
            Duration::from_millis(20),
            None,
        );
        for _ in 0..100 {
            let (_, hold) = faults.fate("phone", Direction::ToClient, &publish());
            assert!(
                hold >= Duration::from_millis(80) && hold <= Duration::from_millis(120),
                "{hold:?}"
            );
            let (_, ping_hold) = faults.fate("phone", Direction::ToClient, &Packet::Pingresp);
            assert_eq!(ping_hold, Duration::from_millis(100));
        }
    }

    /// The phone's decisions to the broker, with other frames (pings, replies, another
    /// client's publishes) interleaved or not.
    fn phone_decisions(interleave: bool) -> Vec<(Fate, Duration)> {
        let faults = Faults::new(11);
        faults.reseed(42);
        for client in ["phone", "lamp"] {
            faults.delay(
                client,
                Duration::from_millis(50),
                Duration::from_millis(30),
                None,
            );
            faults.drop_frames(client, Direction::ToBroker, DropAmount::Ratio(0.3));
            faults.drop_frames(client, Direction::ToClient, DropAmount::Ratio(0.3));
        }
        (0..64)
            .map(|i| {
                if interleave {
                    for _ in 0..i % 3 {
                        faults.fate("phone", Direction::ToBroker, &Packet::Pingreq);
                        faults.fate(
                            "phone",
                            Direction::ToClient,
                            &Packet::Puback {
                                pkid: 1,
                                code: PubackCode::Success,
                            },
                        );
                        faults.fate("lamp", Direction::ToBroker, &publish());
                    }
                }
                faults.fate("phone", Direction::ToBroker, &publish())
            })
            .collect()
    }

    #[test]
    fn each_client_and_direction_draws_on_its_own() {
        let alone = phone_decisions(false);
        assert_eq!(alone, phone_decisions(true));
        assert!(alone.iter().any(|(fate, _)| *fate == Fate::Drop));
        assert!(alone.windows(2).any(|pair| pair[0].1 != pair[1].1));
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
