//! The trace as a table, one row per event (the columns of `hil trace show`), with the
//! filters the script applies: actor, packet kind, topic and a brushed time range.

use std::collections::BTreeSet;
use std::sync::Arc;

use maud::{html, Markup};

use crate::report::flow::Flow;
use crate::trace::{Event, EventBody, Packet, Row, Tone};

/// Who an event is about, by the names the diagram's lanes carry.
fn actor_of<'f>(event: &Event, flow: &'f Flow, lane_of: &dyn Fn(u64) -> Option<usize>) -> &'f str {
    match lane_of(event.seq) {
        Some(lane) => &flow.lanes[lane].label,
        None => match &event.body {
            EventBody::Broker { .. } | EventBody::ConnRefused { .. } => "broker",
            _ => "hil",
        },
    }
}

fn topic_of(event: &Event) -> Option<&str> {
    match &event.body {
        EventBody::Mqtt {
            packet: Packet::Publish { topic, .. },
            ..
        } => Some(topic),
        _ => None,
    }
}

/// The table of `events`, its actors named as the diagram's lanes are.
pub fn render(events: &[Arc<Event>], flow: &Flow) -> Markup {
    let origin = flow.start_us;
    // Messages name two lanes; the one that is not the broker is the actor.
    let broker = flow
        .lanes
        .iter()
        .position(|l| l.label == "broker")
        .unwrap_or(usize::MAX);
    let mut lanes: std::collections::HashMap<u64, usize> = flow
        .messages
        .iter()
        .map(|m| (m.seq, if m.from == broker { m.to } else { m.from }))
        .collect();
    lanes.extend(flow.notes.iter().map(|n| (n.seq, n.lane)));
    lanes.extend(flow.faults.iter().map(|f| (f.seq, f.lane)));
    let lane_of = |seq: u64| lanes.get(&seq).copied();
    let rows: Vec<(&Event, Row, &str)> = events
        .iter()
        .map(|event| {
            let row = Row::of(event, origin);
            (&**event, row, actor_of(event, flow, &lane_of))
        })
        .collect();
    let actors: BTreeSet<&str> = rows.iter().map(|(_, _, actor)| *actor).collect();
    let kinds: BTreeSet<&str> = rows.iter().map(|(_, row, _)| row.what.as_str()).collect();
    html! {
        div.tablefilters {
            label { "actor " select.f-actor { option value="" { "all" } @for actor in &actors { option value=(actor) { (actor) } } } }
            label { "kind " select.f-kind { option value="" { "all" } @for kind in &kinds { option value=(kind) { (kind) } } } }
            label { "topic " input.f-topic type="search" placeholder="filter, + and # allowed" {} }
            span.range {}
            button.clear type="button" { "clear range" }
            span.count {}
        }
        div.tablewrap {
            // Cells in a fixed order the script reads: ms, seq, actor, dir, kind, topic.
            table.trace {
                thead { tr { th { "ms" } th { "#" } th { "actor" } th { "dir" } th { "kind" } th { "topic" } th { "detail" } } }
                tbody {
                    @for (event, row, actor) in &rows {
                        @let topic = topic_of(event);
                        tr class=[(row.tone == Tone::Problem).then_some("p")] {
                            td { (format!("{:.1}", row.ms)) }
                            td { (event.seq) }
                            td { (actor) }
                            td { (row.arrow) }
                            td { (row.what) }
                            td { (topic.unwrap_or_default()) }
                            // The topic has its own column.
                            td { (topic.and_then(|t| row.detail.strip_prefix(t)).map_or(row.detail.as_str(), str::trim_start)) }
                        }
                    }
                }
            }
        }
    }
}
