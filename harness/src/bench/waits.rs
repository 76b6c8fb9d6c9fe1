//! The `waits` row: what an `expect_message` costs per event while unrelated events pour
//! in, at 1 000 and at 100 000 of them. The wait is the one the step runs (a `Watch` over
//! the trace, fed to the query's incremental counter), so a wait that re-scanned its
//! window would show here as a cost per event growing with the window.

use std::io;
use std::time::{Duration, Instant};

use super::Row;
use crate::expect::{MessageQuery, PayloadMatch};
use crate::steps::Watch;
use crate::trace::{Direction, EventBody, Packet, Payload, Trace};

/// How long the wait may take before the row gives up.
const WAIT_DEADLINE: Duration = Duration::from_secs(60);

pub(super) async fn rows() -> io::Result<Vec<Row>> {
    let small = per_event_cost(1_000).await?;
    let large = per_event_cost(100_000).await?;
    let ratio = large / small;
    Ok(vec![
        Row::info(
            "expect_message wait, 1 000 unrelated events: per event",
            small,
            "µs",
        ),
        Row::info(
            "expect_message wait, 100 000 unrelated events: per event",
            large,
            "µs",
        ),
        Row::target(
            "expect_message wait: per-event cost at 100 000 / at 1 000",
            ratio,
            "×",
            "≤ 2 (linear)".into(),
            ratio <= 2.0,
        ),
    ])
}

fn publish(client: &str, topic: &str, payload: &str) -> EventBody {
    EventBody::Mqtt {
        conn: 1,
        client: Some(client.into()),
        dir: Direction::ToBroker,
        packet: Packet::Publish {
            topic: topic.into(),
            payload: Payload::from(payload),
            qos: 0,
            retain: false,
            dup: false,
            pkid: None,
        },
    }
}

/// Microseconds per event for a wait that sees `unrelated` other publishes before its
/// own, recorded in batches while it waits, as a busy broker records them.
async fn per_event_cost(unrelated: usize) -> io::Result<f64> {
    let trace = Trace::in_memory();
    let query = MessageQuery {
        filter: "living_room_lights".into(),
        payload: PayloadMatch::Exact("on".into()),
        qos: None,
        retain: None,
        from: Some("lamp".into()),
        to: None,
    };
    let producer = {
        let trace = trace.clone();
        tokio::spawn(async move {
            for batch in 0..unrelated.div_ceil(100) {
                for i in 0..100.min(unrelated - batch * 100) {
                    trace.record(publish("garage", "garage/door", &i.to_string()));
                }
                tokio::task::yield_now().await;
            }
            trace.record(publish("lamp", "living_room_lights", "on"));
        })
    };
    let started = Instant::now();
    let mut watch = Watch::new(trace.cursor_at(0), 0);
    let mut counter = query.counter();
    let found = watch.until(WAIT_DEADLINE, |event| counter.see(event)).await;
    let elapsed = started.elapsed();
    producer.await.map_err(io::Error::other)?;
    if !found {
        return Err(io::Error::other("the awaited message was not seen"));
    }
    Ok(elapsed.as_secs_f64() * 1e6 / (unrelated + 1) as f64)
}
