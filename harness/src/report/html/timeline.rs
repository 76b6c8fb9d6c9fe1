//! The state timeline (SVG) under the diagram, on the same clock: per board its relay,
//! MQTT connection, firmware state, Wi-Fi and power as bands along a linear time axis.
//! A drag across it brushes a time range (the script).

use std::sync::Arc;

use maud::{html, Markup};

use super::sequence::ms;
use crate::runner::{Actor, ActorKind};
use crate::trace::{BoardChange, Direction, Event, EventBody, Packet};

const LEFT: i64 = 150;
const WIDTH: i64 = 1100;
const TRACK: i64 = 18;
const AXIS: i64 = 24;

/// A stretch of one state.
#[derive(Debug, Clone, PartialEq)]
pub struct Segment {
    pub from_us: u64,
    pub to_us: u64,
    pub value: String,
    /// The CSS class of the band: `on`, `off`, `bad`, or a state's own.
    pub tone: String,
}

/// One board's state over time.
#[derive(Debug, Clone, PartialEq)]
pub struct Track {
    pub board: String,
    pub what: &'static str,
    pub segments: Vec<Segment>,
}

/// Builds the tracks of every board in `events`: states hold from the event that set
/// them to the next change, or to the end.
pub fn tracks(events: &[Arc<Event>], actors: &[Actor]) -> Vec<Track> {
    let (Some(first), Some(last)) = (events.first(), events.last()) else {
        return Vec::new();
    };
    let (start, end) = (first.t_us, last.t_us);
    let mut boards: Vec<String> = actors
        .iter()
        .filter(|a| a.kind == ActorKind::Board)
        .map(|a| a.name.clone())
        .collect();
    for event in events {
        if let Some(board) = crate::trace::board_of(event) {
            if !boards.iter().any(|b| b == board) {
                boards.push(board.to_string());
            }
        }
    }
    let mut tracks = Vec::new();
    for board in boards {
        let client_id = actors
            .iter()
            .find(|a| a.name == board)
            .map_or(board.as_str(), |a| a.client_id.as_str());
        let mut relay = Builder::new(start, "off", "off");
        let mut mqtt = Builder::new(start, "disconnected", "off");
        let mut state = Builder::new(start, "", "none");
        let mut wifi = Builder::new(start, "up", "on");
        let mut power = Builder::new(start, "on", "on");
        for event in events {
            let t = event.t_us;
            match &event.body {
                EventBody::Relay { board: b, on } if *b == board => {
                    if *on {
                        relay.set(t, "on", "on")
                    } else {
                        relay.set(t, "off", "off")
                    }
                }
                EventBody::BoardState { board: b, state: s } if *b == board => {
                    state.set(t, s, &state_tone(s))
                }
                EventBody::Board { board: b, change } if *b == board => match change {
                    BoardChange::WifiDown => wifi.set(t, "down", "bad"),
                    BoardChange::WifiUp => wifi.set(t, "up", "on"),
                    BoardChange::PowerOff => {
                        power.set(t, "off", "bad");
                        relay.set(t, "off", "off");
                    }
                    BoardChange::PowerOn => power.set(t, "on", "on"),
                    _ => {}
                },
                EventBody::Mqtt {
                    client: Some(c),
                    dir: Direction::ToClient,
                    packet: Packet::Connack { code, .. },
                    ..
                } if c == client_id => {
                    if code.is_success() {
                        mqtt.set(t, "connected", "on")
                    } else {
                        mqtt.set(t, "refused", "bad")
                    }
                }
                EventBody::ConnClosed {
                    client: Some(c), ..
                } if c == client_id => mqtt.set(t, "disconnected", "off"),
                _ => {}
            }
        }
        for (what, builder) in [
            ("relay", relay),
            ("mqtt", mqtt),
            ("state", state),
            ("wifi", wifi),
            ("power", power),
        ] {
            tracks.push(Track {
                board: board.clone(),
                what,
                segments: builder.finish(end),
            });
        }
    }
    tracks
}

/// A state's colour class, the same for the same name on every page.
fn state_tone(state: &str) -> String {
    let hash = state
        .bytes()
        .fold(7u32, |h, b| h.wrapping_mul(31).wrapping_add(b as u32));
    format!("s{}", hash % 6)
}

struct Builder {
    segments: Vec<Segment>,
    since: u64,
    value: String,
    tone: String,
}

impl Builder {
    fn new(start: u64, value: &str, tone: &str) -> Builder {
        Builder {
            segments: Vec::new(),
            since: start,
            value: value.into(),
            tone: tone.into(),
        }
    }

    fn set(&mut self, t_us: u64, value: &str, tone: &str) {
        if value == self.value {
            return;
        }
        self.close(t_us);
        self.since = t_us;
        self.value = value.into();
        self.tone = tone.into();
    }

    fn close(&mut self, t_us: u64) {
        if t_us > self.since || self.segments.is_empty() {
            self.segments.push(Segment {
                from_us: self.since,
                to_us: t_us,
                value: std::mem::take(&mut self.value),
                tone: std::mem::take(&mut self.tone),
            });
        }
    }

    fn finish(mut self, end_us: u64) -> Vec<Segment> {
        self.close(end_us);
        self.segments.retain(|s| s.to_us > s.from_us);
        self.segments
    }
}

/// The timeline of one scenario, spanning `start_us..end_us` of its trace.
pub fn render(tracks: &[Track], start_us: u64, end_us: u64) -> Markup {
    let span = (end_us.saturating_sub(start_us)).max(1) as f64;
    let x = |t: u64| {
        LEFT + (t.saturating_sub(start_us) as f64 / span * (WIDTH - LEFT - 10) as f64) as i64
    };
    let height = AXIS + tracks.len() as i64 * TRACK + 6;
    let ticks = ticks(end_us.saturating_sub(start_us));
    html! {
        svg.timeline xmlns="http://www.w3.org/2000/svg" width=(WIDTH) height=(height)
            viewBox=(format!("0 0 {WIDTH} {height}"))
            data-x0=(LEFT) data-x1=(WIDTH - 10) data-t1=(ms(end_us, start_us)) {
            rect.brush x="0" y="0" width="0" height=(height) {}
            @for tick in &ticks {
                @let tx = x(start_us + tick * 1000);
                line.grid x1=(tx) y1="14" x2=(tx) y2=(height) {}
                text.tick x=(tx) y="11" text-anchor="middle" { (tick) " ms" }
            }
            @for (row, track) in tracks.iter().enumerate() {
                @let y = AXIS + row as i64 * TRACK;
                g.track data-board=(track.board) data-what=(track.what) {
                    text.label x="4" y=(y + 13) { (track.board) " " (track.what) }
                    @for segment in &track.segments {
                        @let (x0, x1) = (x(segment.from_us), x(segment.to_us));
                        rect class=(format!("band {}", segment.tone)) x=(x0) y=(y + 2) width=((x1 - x0).max(1)) height=(TRACK - 4) {
                            title { (track.what) " " (segment.value) " from +" (ms(segment.from_us, start_us)) " ms to +" (ms(segment.to_us, start_us)) " ms" }
                        }
                        @if x1 - x0 > 40 && !segment.value.is_empty() {
                            text.bandlabel x=(x0 + 3) y=(y + 13) { (segment.value) }
                        }
                    }
                }
            }
        }
    }
}

/// Round tick marks (in ms) along a span of `span_us`: about eight of them.
fn ticks(span_us: u64) -> Vec<u64> {
    let span_ms = (span_us / 1000).max(1);
    let raw = span_ms as f64 / 8.0;
    let magnitude = 10f64.powf(raw.log10().floor());
    let step = [1.0, 2.0, 5.0, 10.0]
        .into_iter()
        .map(|m| m * magnitude)
        .find(|s| *s >= raw)
        .unwrap_or(magnitude * 10.0)
        .max(1.0) as u64;
    (0..=span_ms / step).map(|i| i * step).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::trace::EventBody;

    fn event(seq: u64, t_us: u64, body: EventBody) -> Arc<Event> {
        Arc::new(Event { seq, t_us, body })
    }

    #[test]
    fn a_relay_band_holds_from_one_change_to_the_next() {
        let relay = |on| EventBody::Relay {
            board: "lamp".into(),
            on,
        };
        let events = vec![
            event(
                1,
                0,
                EventBody::StepStarted {
                    step: 0,
                    name: "x".into(),
                    line: 1,
                    within_us: None,
                },
            ),
            event(2, 1_000, relay(true)),
            event(3, 4_000, relay(false)),
            event(
                4,
                9_000,
                EventBody::StepStarted {
                    step: 1,
                    name: "x".into(),
                    line: 2,
                    within_us: None,
                },
            ),
        ];
        let tracks = tracks(&events, &[]);
        let relay = tracks.iter().find(|t| t.what == "relay").unwrap();
        let bands: Vec<(u64, u64, &str)> = relay
            .segments
            .iter()
            .map(|s| (s.from_us, s.to_us, s.value.as_str()))
            .collect();
        assert_eq!(
            bands,
            [
                (0, 1_000, "off"),
                (1_000, 4_000, "on"),
                (4_000, 9_000, "off")
            ]
        );
    }

    #[test]
    fn ticks_are_round() {
        assert_eq!(ticks(1_000_000), [0, 200, 400, 600, 800, 1000]);
        assert_eq!(ticks(35_000), [0, 5, 10, 15, 20, 25, 30, 35]);
    }
}
