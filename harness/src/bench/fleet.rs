//! The fleet rows: simulated light controllers by the thousand on one broker, each
//! connecting, taking a command and a press, every resulting message observed; with the
//! peak memory of the harness and the engine. [`round`] is also what the fleet test plays.

use std::collections::HashSet;
use std::io;
use std::time::{Duration, Instant};

use bytes::Bytes;

use super::{peak_rss_mib, BenchOptions, Row};
use crate::board::{BoardSetup, Simulator};
use crate::broker::{Broker, BrokerConfig};
use crate::scenario::BoardSpec;
use crate::trace::{Cursor, Direction, EventBody, Packet, Trace};

/// What a fleet took.
pub struct Round {
    /// Until every board (and the phone) was subscribed.
    pub connected: Duration,
    /// Until every board's press was delivered to the phone.
    pub total: Duration,
    pub harness_rss_mib: f64,
    pub engine_rss_mib: f64,
}

/// How many simulated boards this process can hold open at once, when each costs it
/// `descriptors`.
pub fn capacity(descriptors: u64) -> usize {
    crate::broker::boards_that_fit(descriptors).0
}

/// Plays one fleet: `boards` boards (topic `fleet/<i>`) and a phone subscribed to
/// `fleet/+`; every board subscribes, the phone commands each `on` (every relay switches
/// on), then each board's switch is pressed (every board's `off` reaches the phone). An
/// error names what did not come, and for how many boards.
pub async fn round(broker: BrokerConfig, boards: usize, simulator: Simulator) -> io::Result<Round> {
    // Peak memory from here on, not from what ran before (Linux: reset the high-water mark).
    let _ = std::fs::write("/proc/self/clear_refs", "5");
    let trace = Trace::in_memory();
    let broker = Broker::start(broker, trace.clone())
        .await
        .map_err(io::Error::other)?;
    let started = Instant::now();
    let phone_setup = crate::runner::ClientSetup {
        client_id: "fleet-phone".into(),
        protocol: crate::tap::Protocol::V311,
        subscriptions: vec!["fleet/+".into()],
        namespace: None,
        credentials: None,
        clean_session: true,
    };
    let phone = crate::runner::HarnessClient::start(broker.addr(), &phone_setup);
    let (reach, network) = broker.route_for_board(false, None);
    let firmware = hil_firmware::Firmware::builtin();
    let mut fleet = Vec::with_capacity(boards);
    for i in 0..boards {
        let spec = BoardSpec {
            topic: Some(format!("fleet/{i}")),
            ..BoardSpec::of_profile(crate::board::profile::SIM)
        };
        let board = crate::board::start(BoardSetup {
            name: &format!("b{i}"),
            client_id: &format!("fleet-{i}"),
            spec: &spec,
            broker: reach,
            network: network.clone(),
            trace: trace.clone(),
            seed: i as u64,
            bench: None,
            lock_timeout: Duration::ZERO,
            namespace: None,
            credentials: None,
            simulator,
            firmware: &firmware,
        })
        .await
        .map_err(io::Error::other)?;
        fleet.push(board);
    }
    // Bounds a fleet that never completes; a big one takes its time (10 000 boards about
    // 40 s here), so the bound grows with it.
    let deadline = tokio::time::Instant::now()
        + Duration::from_secs(60).max(Duration::from_millis(15) * boards as u32);
    let mut cursor = trace.cursor_at(0);
    wait_for_each(
        &mut cursor,
        deadline,
        boards + 1,
        "subscribed",
        |body| match body {
            EventBody::Mqtt {
                client: Some(client),
                dir: Direction::ToClient,
                packet: Packet::Suback { .. },
                ..
            } => Some(client.clone()),
            _ => None,
        },
    )
    .await?;
    let connected = started.elapsed();
    for i in 0..boards {
        phone
            .publish(&format!("fleet/{i}"), Bytes::from_static(b"on"), 1, false)
            .await
            .map_err(io::Error::other)?;
    }
    wait_for_each(
        &mut cursor,
        deadline,
        boards,
        "switched on by the phone",
        |body| match body {
            EventBody::Relay { board, on: true } => Some(board.clone()),
            _ => None,
        },
    )
    .await?;
    for board in &mut fleet {
        board.press(0).await.map_err(io::Error::other)?;
    }
    wait_for_each(
        &mut cursor,
        deadline,
        boards,
        "pressed, heard by the phone",
        |body| match body {
            EventBody::Mqtt {
                client: Some(client),
                dir: Direction::ToClient,
                packet: Packet::Publish { topic, payload, .. },
                ..
            } if client == "fleet-phone" && payload.0.as_ref() == b"off" => Some(topic.clone()),
            _ => None,
        },
    )
    .await?;
    let total = started.elapsed();
    let engine_rss_mib = match broker.engine_pid().await {
        Some(pid) => peak_rss_mib(&format!("/proc/{pid}/status")),
        None => 0.0,
    };
    let harness_rss_mib = peak_rss_mib("/proc/self/status");
    broker.stop().await.map_err(io::Error::other)?;
    for board in fleet {
        board.stop().await;
    }
    Ok(Round {
        connected,
        total,
        harness_rss_mib,
        engine_rss_mib,
    })
}

/// Reads events until `count` distinct actors (the keys `key` picks) have each done what
/// `what` says: one that did it twice does not stand in for one that did not.
async fn wait_for_each(
    cursor: &mut Cursor,
    deadline: tokio::time::Instant,
    count: usize,
    what: &str,
    key: impl Fn(&EventBody) -> Option<String>,
) -> io::Result<()> {
    let mut seen = HashSet::with_capacity(count);
    while seen.len() < count {
        let event = cursor.next_before(deadline).await.ok_or_else(|| {
            io::Error::new(
                io::ErrorKind::TimedOut,
                format!("only {} of {count} {what}", seen.len()),
            )
        })?;
        if let Some(actor) = key(&event.body) {
            seen.insert(actor);
        }
    }
    Ok(())
}

pub(super) async fn rows(
    options: &BenchOptions,
    boards: usize,
    simulator: Simulator,
) -> io::Result<Vec<Row>> {
    let round = round(options.broker.clone(), boards, simulator).await?;
    let (time_target, rss_target) = match simulator {
        Simulator::Sketch => (10.0, 300.0),
        Simulator::Core if boards <= 1_000 => (5.0, 300.0),
        Simulator::Core => (30.0, 1024.0),
    };
    let name = match simulator {
        Simulator::Core => format!("fleet of {boards}"),
        Simulator::Sketch => format!("fleet of {boards} sketch boards"),
    };
    let total = round.total.as_secs_f64();
    let rss = round.harness_rss_mib + round.engine_rss_mib;
    let per_board = |mib: f64| (mib * 1024.0 / boards.max(1) as f64).round();
    Ok(vec![
        Row::info(
            format!("{name}: all connected and subscribed"),
            round.connected.as_secs_f64(),
            "s",
        ),
        Row::target(
            format!("{name}: connect, command, press, all observed"),
            total,
            "s",
            format!("< {time_target} s"),
            total < time_target,
        ),
        Row::target(
            format!("{name}: peak RSS, harness + broker engine"),
            rss.round(),
            "MiB",
            format!("< {rss_target} MiB"),
            rss < rss_target,
        ),
        Row::info(
            format!("{name}: peak RSS per board, harness"),
            per_board(round.harness_rss_mib),
            "KiB",
        ),
        Row::info(
            format!("{name}: peak RSS per board, broker engine"),
            per_board(round.engine_rss_mib),
            "KiB",
        ),
    ])
}
