//! Seeded, mutated MQTT frames for hardening the tap: the same seed gives the same
//! frames, so a crash found once can be replayed.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use rumqttc::mqttbytes::v4;
use rumqttc::mqttbytes::QoS;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::task::JoinSet;

/// How a valid frame was broken.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mutation {
    BitFlips,
    BadLength,
    Truncated,
    Oversize,
    WrongFlags,
    RandomBytes,
}

const MUTATIONS: [Mutation; 6] = [
    Mutation::BitFlips,
    Mutation::BadLength,
    Mutation::Truncated,
    Mutation::Oversize,
    Mutation::WrongFlags,
    Mutation::RandomBytes,
];

/// Valid frames of every kind a client sends, to mutate.
fn corpus() -> Vec<Bytes> {
    let mut frames = Vec::new();
    let mut push = |packet: v4::Packet| {
        let mut buf = BytesMut::new();
        packet
            .write(&mut buf, usize::MAX)
            .expect("valid packets encode");
        frames.push(buf.freeze());
    };
    let mut connect = v4::Connect::new("fuzz");
    connect.set_login("user", "password");
    connect.last_will = Some(v4::LastWill::new(
        "fuzz/will",
        "gone",
        QoS::AtLeastOnce,
        true,
    ));
    push(v4::Packet::Connect(connect));
    let mut publish = v4::Publish::new("living_room_lights", QoS::AtLeastOnce, "on");
    publish.pkid = 7;
    push(v4::Packet::Publish(publish));
    push(v4::Packet::Publish(v4::Publish::new(
        "a/b",
        QoS::AtMostOnce,
        vec![0u8; 300],
    )));
    push(v4::Packet::Subscribe(v4::Subscribe::new(
        "living_room_lights/#",
        QoS::ExactlyOnce,
    )));
    push(v4::Packet::Unsubscribe(v4::Unsubscribe::new("a/+")));
    push(v4::Packet::PubAck(v4::PubAck::new(3)));
    push(v4::Packet::PubRec(v4::PubRec::new(3)));
    push(v4::Packet::PingReq);
    push(v4::Packet::Disconnect);
    frames
}

/// One fuzz case: what to send on a fresh connection.
#[derive(Debug, Clone)]
pub struct Case {
    pub mutation: Mutation,
    pub bytes: Vec<u8>,
}

/// `count` cases from `seed`. Most cases open with a valid CONNECT so that the broken
/// frame reaches the packet decoder; the rest break the CONNECT itself.
pub fn cases(seed: u64, count: usize) -> Vec<Case> {
    let corpus = corpus();
    let connect = corpus[0].clone();
    let mut rng = fastrand::Rng::with_seed(seed);
    (0..count)
        .map(|_| {
            let mutation = MUTATIONS[rng.usize(..MUTATIONS.len())];
            let victim = &corpus[rng.usize(..corpus.len())];
            let broken = mutate(&mut rng, mutation, victim);
            let mut bytes = Vec::new();
            if rng.u8(..) < 200 && victim != &connect {
                bytes.extend_from_slice(&connect);
            }
            bytes.extend_from_slice(&broken);
            Case { mutation, bytes }
        })
        .collect()
}

fn mutate(rng: &mut fastrand::Rng, mutation: Mutation, frame: &[u8]) -> Vec<u8> {
    let mut out = frame.to_vec();
    match mutation {
        Mutation::BitFlips => {
            for _ in 0..rng.usize(1..=4) {
                let at = rng.usize(..out.len());
                out[at] ^= 1 << rng.u8(..8);
            }
        }
        Mutation::BadLength => {
            // Remaining length that lies: too short, too long, or a 5-byte varint.
            match rng.u8(..3) {
                0 => out[1] = out[1].saturating_sub(rng.u8(1..=3)),
                1 => out[1] = out[1].saturating_add(rng.u8(1..=40)),
                _ => out
                    .splice(1..2, [0xff, 0xff, 0xff, 0xff, 0x7f])
                    .for_each(drop),
            }
        }
        Mutation::Truncated => out.truncate(rng.usize(1..out.len().max(2))),
        Mutation::Oversize => {
            // Announces 200 MB; the tap must refuse it from the header alone.
            out.splice(1..2, [0x80, 0x80, 0x80, 0x60]).for_each(drop);
        }
        Mutation::WrongFlags => out[0] = (out[0] & 0xf0) | rng.u8(..16),
        Mutation::RandomBytes => {
            out = (0..rng.usize(1..64)).map(|_| rng.u8(..)).collect();
        }
    }
    out
}

/// What a fuzz run did.
#[derive(Debug, Clone, Copy)]
pub struct FuzzReport {
    pub cases: usize,
    pub elapsed: Duration,
}

/// Sends every case on its own connection, `concurrency` at a time, and closes each after
/// the broker closes it or `linger` passes. Every wait is bounded.
pub async fn run(
    addr: SocketAddr,
    cases: Vec<Case>,
    concurrency: usize,
    linger: Duration,
) -> std::io::Result<FuzzReport> {
    let started = Instant::now();
    let total = cases.len();
    let mut pending = cases.into_iter();
    let mut running = JoinSet::new();
    loop {
        while running.len() < concurrency {
            let Some(case) = pending.next() else { break };
            running.spawn(send_case(addr, case, linger));
        }
        match running.join_next().await {
            Some(joined) => joined.map_err(std::io::Error::other)??,
            None => break,
        }
    }
    Ok(FuzzReport {
        cases: total,
        elapsed: started.elapsed(),
    })
}

/// How long connecting, or writing one case, may take: a case is a few bytes on loopback,
/// so running out means the tap stopped accepting or reading.
const STEP_TIMEOUT: Duration = Duration::from_secs(10);

async fn send_case(addr: SocketAddr, case: Case, linger: Duration) -> std::io::Result<()> {
    let mut socket = tokio::time::timeout(STEP_TIMEOUT, TcpStream::connect(addr))
        .await
        .map_err(|_| stalled(format!("connecting to {addr}")))??;
    // The broker may close before everything is written; that is an answer, not an error.
    let _ = tokio::time::timeout(STEP_TIMEOUT, socket.write_all(&case.bytes))
        .await
        .map_err(|_| {
            stalled(format!(
                "writing a {:?} case of {} bytes to {addr}",
                case.mutation,
                case.bytes.len()
            ))
        })?;
    let mut sink = [0u8; 1024];
    let _ = tokio::time::timeout(linger, async {
        while matches!(socket.read(&mut sink).await, Ok(n) if n > 0) {}
    })
    .await;
    Ok(())
}

fn stalled(what: String) -> std::io::Error {
    std::io::Error::new(
        std::io::ErrorKind::TimedOut,
        format!(
            "{what} took over {}s: the tap has stopped serving",
            STEP_TIMEOUT.as_secs()
        ),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_same_seed_gives_the_same_cases() {
        let a = cases(7, 200);
        let b = cases(7, 200);
        assert!(a.iter().zip(&b).all(|(x, y)| x.bytes == y.bytes));
        assert!(cases(8, 200)
            .iter()
            .zip(&a)
            .any(|(x, y)| x.bytes != y.bytes));
        for mutation in MUTATIONS {
            assert!(
                a.iter().any(|case| case.mutation == mutation),
                "{mutation:?} is used"
            );
        }
    }
}
