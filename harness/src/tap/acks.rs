//! Acknowledgements towards the engine for deliveries the tap changed, in the order the
//! engine takes them: rumqttd refuses a PUBACK or PUBREC out of delivery order, and a
//! PUBCOMP out of PUBREC order, by closing the connection. So an ack the tap owes waits
//! behind the client's own acks for earlier deliveries.

use std::collections::{HashSet, VecDeque};

use bytes::{Bytes, BytesMut};

const PUBACK: u8 = 0x40;
const PUBREC: u8 = 0x50;
const PUBCOMP: u8 = 0x70;

/// PUBACK, PUBREC or PUBCOMP for `pkid`, success and no properties (valid in 3.1.1 and
/// 5, whose section 3.4.2.1 lets the reason be left out).
fn ack(kind: u8, pkid: u16) -> Bytes {
    let [hi, lo] = pkid.to_be_bytes();
    Bytes::copy_from_slice(&[kind, 2, hi, lo])
}

/// Who sends an acknowledgement: the client, or the tap (once it is ready).
#[derive(Debug)]
enum Owner {
    Client,
    Tap(Option<Bytes>),
}

/// Acknowledgements due, in the order the engine wants them.
#[derive(Debug, Default)]
struct Line(VecDeque<(u16, Owner)>);

impl Line {
    fn push(&mut self, pkid: u16, owner: Owner) {
        self.0.push_back((pkid, owner));
    }

    fn client_sent(&mut self, pkid: u16) {
        if let Some(at) = self
            .0
            .iter()
            .position(|(id, owner)| *id == pkid && matches!(owner, Owner::Client))
        {
            self.0.remove(at);
        }
    }

    /// The tap's acks at the front that are ready, taken off the line.
    fn ready(&mut self) -> Vec<(u16, Bytes)> {
        let mut out = Vec::new();
        while let Some((_, Owner::Tap(Some(_)))) = self.0.front() {
            if let Some((pkid, Owner::Tap(Some(frame)))) = self.0.pop_front() {
                out.push((pkid, frame));
            }
        }
        out
    }
}

#[derive(Debug, Default)]
pub struct EngineAcks {
    /// PUBACK / PUBREC, in delivery order.
    deliveries: Line,
    /// PUBCOMP, in PUBREC order.
    releases: Line,
    /// QoS 2 deliveries the client got at QoS 1: its PUBACK goes on as PUBREC.
    as_pubrec: HashSet<u16>,
}

impl EngineAcks {
    /// The client gets this delivery with its packet id and acknowledges it itself;
    /// `as_pubrec` when it got a QoS 2 delivery at QoS 1.
    pub fn client_acks(&mut self, pkid: u16, as_pubrec: bool) {
        self.deliveries.push(pkid, Owner::Client);
        if as_pubrec {
            self.as_pubrec.insert(pkid);
        }
    }

    /// The client does not get this delivery with a packet id: the tap acknowledges it.
    /// Returns what can go to the engine now.
    pub fn tap_acks(&mut self, pkid: u16, qos: u8) -> Vec<Bytes> {
        let kind = if qos == 2 { PUBREC } else { PUBACK };
        self.deliveries
            .push(pkid, Owner::Tap(Some(ack(kind, pkid))));
        self.release_deliveries()
    }

    fn release_deliveries(&mut self) -> Vec<Bytes> {
        self.deliveries
            .ready()
            .into_iter()
            .map(|(pkid, frame)| {
                if frame[0] == PUBREC {
                    self.releases.push(pkid, Owner::Tap(None));
                }
                frame
            })
            .collect()
    }

    /// The client's PUBACK (`kind` 4) or PUBREC (5): what goes to the engine in its
    /// place, then what follows it.
    pub fn client_ack(&mut self, kind: u8, pkid: u16, frame: &Bytes) -> (Bytes, Vec<Bytes>) {
        self.deliveries.client_sent(pkid);
        let forwarded = if kind == 4 && self.as_pubrec.remove(&pkid) {
            self.releases.push(pkid, Owner::Tap(None));
            let mut pubrec = BytesMut::from(&frame[..]);
            pubrec[0] = PUBREC;
            pubrec.freeze()
        } else {
            if kind == 5 {
                self.releases.push(pkid, Owner::Client);
            }
            frame.clone()
        };
        (forwarded, self.release_deliveries())
    }

    /// The client's PUBCOMP: what may follow it.
    pub fn client_pubcomp(&mut self, pkid: u16) -> Vec<Bytes> {
        self.releases.client_sent(pkid);
        self.releases.ready().into_iter().map(|(_, f)| f).collect()
    }

    /// The engine's PUBREL: `Some` (with what goes to the engine now) when the tap
    /// answers it, so it goes no further; `None` when the client answers.
    pub fn engine_pubrel(&mut self, pkid: u16) -> Option<Vec<Bytes>> {
        let (_, owner) = self
            .releases
            .0
            .iter_mut()
            .find(|(id, owner)| *id == pkid && matches!(owner, Owner::Tap(None)))?;
        *owner = Owner::Tap(Some(ack(PUBCOMP, pkid)));
        Some(self.releases.ready().into_iter().map(|(_, f)| f).collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_taps_ack_waits_behind_the_clients_earlier_one() {
        let mut acks = EngineAcks::default();
        acks.client_acks(1, false);
        assert!(
            acks.tap_acks(2, 1).is_empty(),
            "waits for the client's ack of 1"
        );
        let (forwarded, after) = acks.client_ack(4, 1, &ack(PUBACK, 1));
        assert_eq!(forwarded, ack(PUBACK, 1));
        assert_eq!(after, [ack(PUBACK, 2)]);
    }

    #[test]
    fn a_downgraded_qos2_delivery_is_completed_by_the_tap() {
        let mut acks = EngineAcks::default();
        acks.client_acks(1, true);
        let (forwarded, after) = acks.client_ack(4, 1, &ack(PUBACK, 1));
        assert_eq!(forwarded, ack(PUBREC, 1));
        assert!(after.is_empty());
        assert_eq!(acks.engine_pubrel(1), Some(vec![ack(PUBCOMP, 1)]));
        assert_eq!(acks.engine_pubrel(1), None, "answered once");
    }

    #[test]
    fn the_taps_pubcomp_waits_behind_the_clients() {
        let mut acks = EngineAcks::default();
        acks.client_acks(1, false);
        let _ = acks.client_ack(5, 1, &ack(PUBREC, 1));
        assert_eq!(acks.tap_acks(2, 2), [ack(PUBREC, 2)]);
        assert_eq!(
            acks.engine_pubrel(2),
            Some(vec![]),
            "behind the client's PUBCOMP for 1"
        );
        assert_eq!(acks.client_pubcomp(1), [ack(PUBCOMP, 2)]);
    }
}
