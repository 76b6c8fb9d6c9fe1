//! A trace as Chrome trace-event JSON (`hil trace export --format perfetto`), which
//! ui.perfetto.dev and chrome://tracing open: a process per actor, a mark per packet,
//! flow arrows from a publish to each of its deliveries and on to the relay change a
//! delivery caused, a counter track per board's relay, faults and steps as slices.
//!
//! Packets are 1 µs complete slices (`ph: X`) rather than instants: flow arrows bind to
//! slices, and an instant cannot carry one.

use std::sync::Arc;

use serde_json::{json, Value};

use super::flow::{Flow, LaneKind};
use crate::runner::Actor;
use crate::trace::{Event, EventBody};

/// Threads within each actor's process.
const PACKETS: u64 = 1;
const FAULTS: u64 = 2;
const BOARD: u64 = 3;
/// The process of the scenario's steps.
const STEPS_PID: u64 = 1_000_000;

fn pid(lane: usize) -> u64 {
    lane as u64 + 1
}

/// The trace-event document of `events`.
pub fn export(events: &[Arc<Event>], actors: &[Actor]) -> Value {
    let flow = Flow::of(events, actors);
    let mut timed: Vec<Value> = Vec::new();
    let slice = |name: &str, cat: &str, ts: u64, dur: u64, pid: u64, tid: u64, args: Value| json!({"name": name, "cat": cat, "ph": "X", "ts": ts, "dur": dur.max(1), "pid": pid, "tid": tid, "args": args});
    // Where each packet sits: a publish on its sender, a delivery on its receiver.
    let home = |m: &crate::report::flow::Message| {
        if flow.lanes[m.from].kind == LaneKind::Broker {
            m.to
        } else {
            m.from
        }
    };
    for message in &flow.messages {
        timed.push(slice(
            &message.label,
            message.packet,
            message.t_us,
            1,
            pid(home(message)),
            PACKETS,
            json!({"seq": message.seq, "from": flow.lanes[message.from].label, "to": flow.lanes[message.to].label}),
        ));
    }
    for note in &flow.notes {
        timed.push(slice(
            &note.text,
            note.kind,
            note.t_us,
            1,
            pid(note.lane),
            BOARD,
            json!({"seq": note.seq}),
        ));
    }
    for fault in &flow.faults {
        timed.push(slice(
            &format!("{} {}", fault.name, fault.detail),
            "fault",
            fault.start_us,
            fault.end_us - fault.start_us,
            pid(fault.lane),
            FAULTS,
            json!({"seq": fault.seq}),
        ));
    }
    for step in &flow.steps {
        let outcome = match step.passed {
            Some(true) => "passed",
            Some(false) => "failed",
            None => "unfinished",
        };
        timed.push(slice(
            &format!("{} {}", step.index + 1, step.name),
            "step",
            step.start_us,
            step.end_us - step.start_us,
            STEPS_PID,
            1,
            json!({"line": step.line, "outcome": outcome, "detail": step.detail}),
        ));
    }
    // The relay of each board as a counter.
    for event in events {
        if let EventBody::Relay { board, on } = &event.body {
            if let Some(lane) = flow.lanes.iter().position(|l| l.label == *board) {
                timed.push(json!({"name": "relay", "ph": "C", "ts": event.t_us, "pid": pid(lane), "args": {"on": u8::from(*on)}}));
            }
        }
    }
    timed.extend(flows(&flow, &home));
    timed.sort_by_key(|e| e["ts"].as_u64().unwrap_or(0));
    let mut all = metadata(&flow);
    all.extend(timed);
    json!({"traceEvents": all, "displayTimeUnit": "ms"})
}

/// Names and order of the processes and threads.
fn metadata(flow: &Flow) -> Vec<Value> {
    let mut meta = Vec::new();
    let mut process = |pid: u64, name: &str, threads: &[(u64, &str)]| {
        meta.push(json!({"name": "process_name", "ph": "M", "pid": pid, "args": {"name": name}}));
        meta.push(json!({"name": "process_sort_index", "ph": "M", "pid": pid, "args": {"sort_index": pid}}));
        for (tid, thread) in threads {
            meta.push(json!({"name": "thread_name", "ph": "M", "pid": pid, "tid": tid, "args": {"name": thread}}));
        }
    };
    process(STEPS_PID, "steps", &[(1, "steps")]);
    for (lane, actor) in flow.lanes.iter().enumerate() {
        process(
            pid(lane),
            &actor.label,
            &[(PACKETS, "mqtt"), (FAULTS, "faults"), (BOARD, "board")],
        );
    }
    meta
}

/// Flow arrows: publish → each delivery; delivery → the relay change that followed it
/// on the receiving board before anything else was delivered to it.
fn flows(flow: &Flow, home: &dyn Fn(&crate::report::flow::Message) -> usize) -> Vec<Value> {
    let mut arrows = Vec::new();
    let mut id = 0u64;
    let mut arrow = |from: (u64, u64, u64), to: (u64, u64, u64), name: &str| {
        id += 1;
        arrows.push(json!({"name": name, "cat": "flow", "ph": "s", "id": id, "ts": from.0, "pid": from.1, "tid": from.2}));
        arrows.push(json!({"name": name, "cat": "flow", "ph": "f", "bp": "e", "id": id, "ts": to.0, "pid": to.1, "tid": to.2}));
    };
    for (at, delivery) in flow.messages.iter().enumerate() {
        let Some(publish_seq) = delivery.delivers else {
            continue;
        };
        let Some(publish) = flow.messages.iter().find(|m| m.seq == publish_seq) else {
            continue;
        };
        let receiver = home(delivery);
        arrow(
            (publish.t_us, pid(home(publish)), PACKETS),
            (delivery.t_us, pid(receiver), PACKETS),
            "delivery",
        );
        let next_delivery = flow.messages[at + 1..]
            .iter()
            .find(|m| m.delivers.is_some() && home(m) == receiver)
            .map_or(u64::MAX, |m| m.seq);
        let relay = flow.notes.iter().find(|n| {
            n.kind == "relay" && n.lane == receiver && n.seq > delivery.seq && n.seq < next_delivery
        });
        if let Some(relay) = relay {
            arrow(
                (delivery.t_us, pid(receiver), PACKETS),
                (relay.t_us, pid(relay.lane), BOARD),
                "relay",
            );
        }
    }
    arrows
}
