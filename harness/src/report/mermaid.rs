//! A failure as a Mermaid `sequenceDiagram`, for places that render Markdown or show
//! text (JUnit failure bodies, the GitHub step summary): the last events up to the end
//! of the failing step.

use std::fmt::Write as _;
use std::sync::Arc;

use super::flow::Flow;
use crate::runner::Actor;
use crate::trace::{Event, EventBody};

/// At most this many events: the end of the failing step is the telling part.
pub const MAX_EVENTS: usize = 30;

/// The events up to the end of the step that failed (its start and what led to it: an
/// expectation looks back to the stimulus before it), or the whole trace when no step
/// failed.
fn up_to_failing_step(events: &[Arc<Event>]) -> &[Arc<Event>] {
    let failed = events
        .iter()
        .rposition(|e| matches!(e.body, EventBody::StepFinished { passed: false, .. }));
    &events[..failed.map_or(events.len(), |at| at + 1)]
}

/// The diagram, or `None` when the step saw nothing worth drawing.
pub fn failing_step(events: &[Arc<Event>], actors: &[Actor]) -> Option<String> {
    let flow = Flow::of(up_to_failing_step(events), actors);
    // (seq, from lane, to lane or None for a note, text)
    let mut lines: Vec<(u64, usize, Option<usize>, String)> = flow
        .messages
        .iter()
        .filter(|m| !m.minor)
        .map(|m| (m.seq, m.from, Some(m.to), m.label.clone()))
        .chain(
            flow.notes
                .iter()
                .map(|n| (n.seq, n.lane, None, n.text.clone())),
        )
        .chain(flow.faults.iter().map(|f| {
            (
                f.seq,
                f.lane,
                None,
                format!("fault {} {}", f.name, f.detail),
            )
        }))
        .collect();
    lines.sort_by_key(|line| line.0);
    let lines = &lines[lines.len().saturating_sub(MAX_EVENTS)..];
    if lines.is_empty() {
        return None;
    }
    let mut used: Vec<usize> = lines
        .iter()
        .flat_map(|(_, a, b, _)| std::iter::once(*a).chain(*b))
        .collect();
    used.sort_unstable();
    used.dedup();
    let mut out = String::from("sequenceDiagram\n");
    for lane in &used {
        let _ = writeln!(
            out,
            "    participant a{lane} as {}",
            text(&flow.lanes[*lane].label)
        );
    }
    for (_, from, to, label) in lines {
        let _ = match to {
            Some(to) => writeln!(out, "    a{from}->>a{to}: {}", text(label)),
            None => writeln!(out, "    Note over a{from}: {}", text(label)),
        };
    }
    Some(out)
}

/// Text Mermaid reads as text: its statement separator and entity marker escaped as
/// entities, everything on one line.
fn text(raw: &str) -> String {
    let mut out = String::with_capacity(raw.len());
    for c in raw.chars() {
        match c {
            '#' => out.push_str("#35;"),
            ';' => out.push_str("#59;"),
            '\n' | '\r' => out.push(' '),
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::runner::ActorKind;
    use crate::trace::{Direction, Packet, Payload};

    fn event(seq: u64, body: EventBody) -> Arc<Event> {
        Arc::new(Event {
            seq,
            t_us: seq * 100,
            body,
        })
    }

    fn publish(seq: u64, client: &str, dir: Direction, payload: &str) -> Arc<Event> {
        event(
            seq,
            EventBody::Mqtt {
                conn: 1,
                client: Some(client.into()),
                dir,
                packet: Packet::Publish {
                    topic: "living_room_lights".into(),
                    payload: Payload::from(payload),
                    qos: 0,
                    retain: false,
                    dup: false,
                    pkid: None,
                },
            },
        )
    }

    fn step(seq: u64, index: usize, finished: Option<bool>) -> Arc<Event> {
        event(
            seq,
            match finished {
                None => EventBody::StepStarted {
                    step: index,
                    name: "expect_relay".into(),
                    line: 3,
                    within_us: None,
                },
                Some(passed) => EventBody::StepFinished {
                    step: index,
                    name: "expect_relay".into(),
                    passed,
                    detail: None,
                },
            },
        )
    }

    #[test]
    fn the_diagram_ends_with_the_failing_step() {
        let events = vec![
            step(1, 0, None),
            publish(2, "phone", Direction::ToBroker, "before"),
            step(3, 0, Some(true)),
            step(4, 1, None),
            publish(5, "phone", Direction::ToBroker, "on; #1"),
            publish(6, "lamp", Direction::ToClient, "on; #1"),
            step(7, 1, Some(false)),
            publish(8, "phone", Direction::ToBroker, "after"),
        ];
        let actors = [
            Actor {
                name: "phone".into(),
                client_id: "phone".into(),
                kind: ActorKind::Client,
            },
            Actor {
                name: "lamp".into(),
                client_id: "lamp".into(),
                kind: ActorKind::Board,
            },
        ];
        let diagram = failing_step(&events, &actors).unwrap();
        assert_eq!(
            diagram,
            "sequenceDiagram\n    participant a0 as phone\n    participant a1 as broker\n    participant a2 as lamp\n    a0->>a1: living_room_lights \"before\"\n    a0->>a1: living_room_lights \"on#59; #35;1\"\n    a1->>a2: living_room_lights \"on#59; #35;1\"\n"
        );
    }

    #[test]
    fn no_more_than_thirty_events() {
        let mut events = vec![step(1, 0, None)];
        events.extend((2..100).map(|seq| publish(seq, "phone", Direction::ToBroker, "x")));
        let diagram = failing_step(&events, &[]).unwrap();
        assert_eq!(diagram.matches("->>").count(), MAX_EVENTS);
    }
}
