//! The sequence diagram (SVG): a lifeline per actor, an arrow per packet, notes on the
//! boards' lifelines, faults as bands over the lifelines they hit, and beside the time
//! axis each step with its deadline window. Time runs down in rows: every packet, note,
//! fault and step start gets a row, acks and pings sit between rows at their time, so a
//! burst stays readable and a quiet minute takes no room.

use std::collections::HashSet;

use maud::{html, Markup};

use crate::report::flow::{Flow, LaneKind, StepSpan};

/// Where the gutter (times, steps) ends and the first lifeline begins.
const GUTTER: i64 = 250;
const LANE_GAP: i64 = 190;
const FIRST_LANE: i64 = GUTTER + 90;
const HEADER: i64 = 44;
const ROW: i64 = 20;
/// Longest note text drawn; the table has the rest.
const NOTE_SHOWN: usize = 48;
const NOTE_ROOM: i64 = 330;
/// A row gets a time label when it is this long after the last label …
const TICK_GAP_US: u64 = 1_000;
/// … or is every this many rows.
const TICK_EVERY: usize = 5;

/// Maps the trace's clock onto the diagram's rows.
pub struct TimeAxis {
    /// (time, y) of each row, in time order.
    rows: Vec<(u64, i64)>,
}

impl TimeAxis {
    fn of(flow: &Flow) -> TimeAxis {
        let mut times: Vec<(u64, u64)> = flow
            .messages
            .iter()
            .filter(|m| !m.minor)
            .map(|m| (m.t_us, m.seq))
            .chain(flow.notes.iter().map(|n| (n.t_us, n.seq)))
            .chain(flow.faults.iter().map(|f| (f.start_us, f.seq)))
            .collect();
        times.sort_unstable();
        let mut rows = Vec::with_capacity(times.len() + 1);
        let mut y = HEADER + ROW;
        for (t_us, _) in times {
            rows.push((t_us, y));
            y += ROW;
        }
        rows.push((flow.end_us.max(rows.last().map_or(0, |r| r.0)), y));
        TimeAxis { rows }
    }

    /// The y of a moment: a row's own, or between the rows around it.
    pub fn y(&self, t_us: u64) -> i64 {
        let at = self.rows.partition_point(|(t, _)| *t < t_us);
        match (at.checked_sub(1).map(|i| self.rows[i]), self.rows.get(at)) {
            (_, Some(&(t, y))) if t == t_us => y,
            (Some((t0, y0)), Some(&(t1, y1))) => {
                y0 + ((t_us - t0) as f64 / (t1 - t0).max(1) as f64 * (y1 - y0) as f64) as i64
            }
            (None, Some(&(_, y))) => y,
            (Some((_, y)), None) => y,
            (None, None) => HEADER + ROW,
        }
    }

    /// The row at exactly this time and order, taken once: simultaneous events get
    /// successive rows.
    fn take(&self, t_us: u64, used: &mut HashSet<i64>) -> i64 {
        let at = self.rows.partition_point(|(t, _)| *t < t_us);
        for &(t, y) in &self.rows[at..] {
            if t != t_us {
                break;
            }
            if used.insert(y) {
                return y;
            }
        }
        self.y(t_us)
    }

    /// The rows that get a time label: every row of a quiet stretch, one in
    /// `TICK_EVERY` of a burst.
    fn ticks(&self) -> Vec<(u64, i64)> {
        let mut ticks: Vec<(u64, i64)> = Vec::new();
        let rows = &self.rows[..self.rows.len().saturating_sub(1)];
        for (index, &(t, y)) in rows.iter().enumerate() {
            let quiet = ticks
                .last()
                .is_none_or(|&(last, _)| t >= last + TICK_GAP_US);
            if quiet || index % TICK_EVERY == 0 {
                ticks.push((t, y));
            }
        }
        ticks
    }

    fn bottom(&self) -> i64 {
        self.rows.last().map_or(HEADER + ROW, |r| r.1) + ROW
    }

    /// `ms:y` pairs for the script's brush, which turns a drag on the gutter into a
    /// time range.
    fn keys(&self, origin_us: u64) -> String {
        let mut keys = String::with_capacity(self.rows.len() * 12);
        for (t, y) in &self.rows {
            if !keys.is_empty() {
                keys.push(' ');
            }
            keys.push_str(&format!("{}:{y}", ms(*t, origin_us)));
        }
        keys
    }
}

fn lane_x(lane: usize) -> i64 {
    FIRST_LANE + lane as i64 * LANE_GAP
}

/// Milliseconds since the trace began, to a tenth.
pub fn ms(t_us: u64, origin_us: u64) -> String {
    format!("{:.1}", t_us.saturating_sub(origin_us) as f64 / 1000.0)
}

fn clip(text: &str, max: usize) -> String {
    if text.chars().count() > max {
        text.chars().take(max).collect::<String>() + "…"
    } else {
        text.to_string()
    }
}

/// The diagram of one scenario. `id` prefixes the arrows' element ids (`{id}-e{seq}`),
/// `near_misses` are the seqs the failure points at.
pub fn render(id: &str, flow: &Flow, near_misses: &[u64]) -> Markup {
    let axis = TimeAxis::of(flow);
    let origin = flow.start_us;
    let bottom = axis.bottom();
    // Room right of the last lifeline for its notes.
    let width = lane_x(flow.lanes.len().saturating_sub(1)) + NOTE_ROOM;
    let mut used = HashSet::new();
    let failing = flow.failing_step().map(|s| s.index);
    let labelled = labelled_steps(flow, &axis, failing);
    html! {
        svg.seq xmlns="http://www.w3.org/2000/svg" width=(width) height=(bottom)
            viewBox=(format!("0 0 {width} {bottom}")) data-keys=(axis.keys(origin))
            data-height=(bottom) data-gutter=(GUTTER) {
            rect.brush x="0" y="0" width=(width) height="0" {}
            // Passing steps without a label (a repeat's quick ones) share one path.
            path.step.pass.bracket d=(quiet_brackets(flow, &axis, &labelled)) {}
            @for step in flow.steps.iter().filter(|s| labelled.contains(&s.index) || s.passed != Some(true)) {
                @let y0 = axis.y(step.start_us);
                @let y1 = axis.y(step.end_us).max(y0 + 4);
                @let state = match step.passed { Some(true) => "pass", Some(false) => "fail", None => "open" };
                g class=(format!("step {state}")) {
                    @if Some(step.index) == failing {
                        rect.failband x=(GUTTER - 8) y=(y0 - 14) width=(width - GUTTER + 8) height=(y1 - y0 + 18) {}
                    }
                    @if let Some(within) = step.within_us {
                        @let y_deadline = axis.y(step.start_us + within).max(y0 + 4);
                        rect.deadline x=(GUTTER - 22) y=(y0 - 4) width="8" height=(y_deadline - y0 + 4) {
                            title { "deadline window: " (format!("{:.0}", within as f64 / 1000.0)) " ms" }
                        }
                    }
                    path.bracket d=(bracket(&axis, step)) {}
                    text.steplabel x=(GUTTER - 28) y=(y0) { (step.index + 1) " " (step.name) }
                    @if step.passed != Some(true) {
                        title { "step " (step.index + 1) " " (step.name) " (line " (step.line) "): "
                            (if step.passed.is_none() { "did not finish" } else { "failed" })
                            @if let Some(detail) = &step.detail { " — " (detail) } }
                    }
                }
            }
            @for (lane, actor) in flow.lanes.iter().enumerate() {
                @let x = lane_x(lane);
                @let kind = match actor.kind { LaneKind::Client => "client", LaneKind::Broker => "broker", LaneKind::Board => "board" };
                g class=(format!("lane {kind}")) data-actor=(actor.label) {
                    rect x=(x - 70) y="8" width="140" height="24" rx="4" {}
                    text x=(x) y="25" text-anchor="middle" { (clip(&actor.label, 18)) }
                    line.life x1=(x) y1="32" x2=(x) y2=(bottom) {}
                }
            }
            @for fault in &flow.faults {
                @let y0 = axis.take(fault.start_us, &mut used) - 10;
                @let y1 = axis.y(fault.end_us).max(y0 + 16);
                @let (x0, x1) = fault_span(flow, fault.lane);
                g.fault {
                    rect x=(x0) y=(y0) width=(x1 - x0) height=(y1 - y0) {}
                    text x=(x0 + 4) y=(y0 + 12) { (fault.name) " " (clip(&fault.detail, 30)) }
                    title { (fault.name) " " (fault.detail) " at +" (ms(fault.start_us, origin)) " ms until +" (ms(fault.end_us, origin)) " ms" }
                }
            }
            @for message in &flow.messages {
                @let y = if message.minor { axis.y(message.t_us) } else { axis.take(message.t_us, &mut used) };
                @let (x1, x2) = (lane_x(message.from), lane_x(message.to));
                @let dir = if x2 > x1 { 1 } else { -1 };
                @let miss = near_misses.contains(&message.seq);
                g id=[miss.then(|| format!("{id}-e{}", message.seq))]
                    class=(format!("m k-{}{}{}", message.packet, if message.minor { " minor" } else { "" }, if miss { " miss" } else { "" })) {
                    path d=(format!("M{},{y}H{}", x1 + dir * 3, x2 - dir * 6)) {}
                    @if !message.minor {
                        text x=((x1 + x2) / 2) y=(y - 4) { (clip(&message.label, 44)) }
                    }
                }
            }
            @for note in &flow.notes {
                @let y = axis.take(note.t_us, &mut used);
                @let x = lane_x(note.lane);
                g class=(format!("n k-{}{}", note.kind, if note.problem { " problem" } else { "" })) {
                    circle cx=(x) cy=(y - 4) r="3" {}
                    text x=(x + 7) y=(y) { (clip(&note.text, NOTE_SHOWN)) }
                }
            }
            @for (t, y) in axis.ticks() {
                text.tick x="4" y=(y) { "+" (ms(t, origin)) }
            }
        }
    }
}

/// A step's bracket beside the time axis, from its start to its end.
fn bracket(axis: &TimeAxis, step: &StepSpan) -> String {
    let y0 = axis.y(step.start_us);
    let y1 = axis.y(step.end_us).max(y0 + 4);
    format!("M{},{}V{y1}", GUTTER - 10, y0 - 4)
}

/// The brackets of the passing steps that carry no label, as one path.
fn quiet_brackets(flow: &Flow, axis: &TimeAxis, labelled: &HashSet<usize>) -> String {
    flow.steps
        .iter()
        .filter(|s| s.passed == Some(true) && !labelled.contains(&s.index))
        .map(|s| bracket(axis, s))
        .collect()
}

/// The steps whose labels fit: each at least a row below the last label, and always
/// the failing one (a `repeat` of quick steps would otherwise print over itself).
fn labelled_steps(flow: &Flow, axis: &TimeAxis, failing: Option<usize>) -> HashSet<usize> {
    let mut labelled = HashSet::new();
    let mut last_y = i64::MIN;
    for step in &flow.steps {
        let y = axis.y(step.start_us);
        if y >= last_y + ROW || Some(step.index) == failing {
            labelled.insert(step.index);
            last_y = y;
        }
    }
    labelled
}

/// A fault covers the link between its lane and the broker, or every lane when it hits
/// the broker itself.
fn fault_span(flow: &Flow, lane: usize) -> (i64, i64) {
    let broker = flow
        .lanes
        .iter()
        .position(|l| l.kind == LaneKind::Broker)
        .unwrap_or(0);
    if lane == broker {
        (
            lane_x(0) - 60,
            lane_x(flow.lanes.len().saturating_sub(1)) + 60,
        )
    } else {
        let (a, b) = (lane_x(lane.min(broker)), lane_x(lane.max(broker)));
        (a - 40, b + 40)
    }
}

/// The arrow head every diagram's arrows point with, defined once per page.
pub fn defs() -> Markup {
    html! {
        svg width="0" height="0" style="position:absolute" aria-hidden="true" {
            defs {
                marker #hil-arrow viewBox="0 0 10 10" refX="9" refY="5" markerUnits="userSpaceOnUse" markerWidth="8" markerHeight="8" orient="auto-start-reverse" {
                    path d="M0,0 L10,5 L0,10 z" {}
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_moment_between_rows_sits_between_them() {
        let axis = TimeAxis {
            rows: vec![(1_000, 100), (3_000, 120), (3_000, 140), (10_000, 160)],
        };
        assert_eq!(axis.y(1_000), 100);
        assert_eq!(axis.y(2_000), 110);
        assert_eq!(axis.y(500), 100);
        assert_eq!(axis.y(20_000), 160);
        let mut used = HashSet::new();
        assert_eq!(axis.take(3_000, &mut used), 120);
        assert_eq!(axis.take(3_000, &mut used), 140);
    }
}
