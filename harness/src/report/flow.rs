//! A trace as a story of actors: who sent what to whom, what each board did, which
//! faults hit whom and when each step ran. The sequence diagram, the state timeline,
//! Mermaid and the Perfetto export all draw from this one reading of the events.

use std::collections::HashMap;
use std::sync::Arc;

use crate::runner::{Actor, ActorKind};
use crate::trace::{BoardChange, BrokerAction, Direction, Event, EventBody, Packet};

/// Who has a lifeline.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Lane {
    /// The scenario's name for the actor (its client id when the scenario did not name it).
    pub label: String,
    pub kind: LaneKind,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LaneKind {
    Client,
    Broker,
    Board,
}

/// One MQTT packet crossing the tap, as an arrow between two lanes.
#[derive(Debug, Clone)]
pub struct Message {
    pub seq: u64,
    pub t_us: u64,
    pub from: usize,
    pub to: usize,
    /// The packet's name (`publish`, `connack`, …).
    pub packet: &'static str,
    /// Topic and payload, filters, return codes: what the arrow is labelled with.
    pub label: String,
    /// Acks and pings, hidden unless asked for.
    pub minor: bool,
    /// For a delivery: the publish it carries (the last one before it with the same
    /// topic and payload).
    pub delivers: Option<u64>,
    pub topic: Option<String>,
}

/// Something that happened on one lane: a serial line, a relay change, a state, a
/// warning, a power or Wi-Fi change, a connection that closed.
#[derive(Debug, Clone)]
pub struct Note {
    pub seq: u64,
    pub t_us: u64,
    pub lane: usize,
    pub kind: &'static str,
    pub text: String,
    pub problem: bool,
}

/// A fault over a stretch of time on the lanes it hits; an instant one (a dropped frame)
/// has `end_us == start_us`.
#[derive(Debug, Clone)]
pub struct FaultBand {
    pub seq: u64,
    pub name: String,
    pub detail: String,
    pub lane: usize,
    pub start_us: u64,
    pub end_us: u64,
}

/// One step as it ran.
#[derive(Debug, Clone)]
pub struct StepSpan {
    pub index: usize,
    pub name: String,
    pub line: usize,
    pub start_us: u64,
    pub end_us: u64,
    /// How long the step could wait (an expectation's `within` / `for`).
    pub within_us: Option<u64>,
    /// `None`: the step never finished (an interrupted or timed-out run).
    pub passed: Option<bool>,
    pub detail: Option<String>,
}

/// The reading of one trace.
#[derive(Debug, Clone, Default)]
pub struct Flow {
    pub lanes: Vec<Lane>,
    pub messages: Vec<Message>,
    pub notes: Vec<Note>,
    pub faults: Vec<FaultBand>,
    pub steps: Vec<StepSpan>,
    pub start_us: u64,
    pub end_us: u64,
}

/// The broker's lane comes after every client's, before every board's.
const BROKER: &str = "broker";

impl Flow {
    /// Reads `events`; `actors` (the scenario's clients and boards) place and name the
    /// lanes; client ids the scenario did not declare get lanes of their own.
    pub fn of(events: &[Arc<Event>], actors: &[Actor]) -> Flow {
        let lanes = Lanes::new(actors, events);
        let mut flow = Flow {
            start_us: events.first().map_or(0, |e| e.t_us),
            end_us: events.last().map_or(0, |e| e.t_us),
            ..Flow::default()
        };
        let mut last_publish: HashMap<(String, Vec<u8>), u64> = HashMap::new();
        let mut open_faults: HashMap<(String, String), usize> = HashMap::new();
        let mut board_down: HashMap<(usize, &'static str), usize> = HashMap::new();
        for event in events {
            let (seq, t_us) = (event.seq, event.t_us);
            let mut note = |lane: usize, kind: &'static str, text: String, problem: bool| {
                flow.notes.push(Note {
                    seq,
                    t_us,
                    lane,
                    kind,
                    text,
                    problem,
                })
            };
            match &event.body {
                EventBody::Mqtt {
                    conn,
                    client,
                    dir,
                    packet,
                } => {
                    let actor = lanes.of_client(client.as_deref(), *conn);
                    let (from, to) = match dir {
                        Direction::ToBroker => (actor, lanes.broker),
                        Direction::ToClient => (lanes.broker, actor),
                    };
                    let mut delivers = None;
                    let mut topic = None;
                    if let Packet::Publish {
                        topic: name,
                        payload,
                        ..
                    } = packet
                    {
                        let key = (name.clone(), payload.0.to_vec());
                        match dir {
                            Direction::ToBroker => {
                                last_publish.insert(key, seq);
                            }
                            Direction::ToClient => delivers = last_publish.get(&key).copied(),
                        }
                        topic = Some(name.clone());
                    }
                    flow.messages.push(Message {
                        seq,
                        t_us,
                        from,
                        to,
                        packet: packet.name(),
                        label: packet_label(packet),
                        minor: is_minor(packet),
                        delivers,
                        topic,
                    });
                }
                EventBody::Malformed {
                    conn,
                    client,
                    reason,
                    ..
                } => {
                    let lane = lanes.of_client(client.as_deref(), *conn);
                    note(lane, "malformed", reason.clone(), true);
                }
                EventBody::ConnClosed {
                    conn,
                    client,
                    reason,
                    ..
                } => {
                    let lane = lanes.of_client(client.as_deref(), *conn);
                    let reason = serde_json::to_value(reason)
                        .ok()
                        .and_then(|v| v.as_str().map(str::to_string))
                        .unwrap_or_default();
                    note(lane, "closed", format!("closed: {reason}"), false);
                }
                EventBody::ConnRefused { reason, .. } => {
                    note(lanes.broker, "refused", format!("refused: {reason}"), true)
                }
                EventBody::Serial { board, line } => {
                    note(lanes.of_board(board), "serial", line.clone(), false)
                }
                EventBody::Relay { board, on } => note(
                    lanes.of_board(board),
                    "relay",
                    format!("relay {}", if *on { "on" } else { "off" }),
                    false,
                ),
                EventBody::BoardState { board, state } => {
                    note(lanes.of_board(board), "state", state.clone(), false)
                }
                EventBody::BoardWarning { board, warning } => note(
                    lanes.of_board(board),
                    "warning",
                    format!("warning: {warning}"),
                    true,
                ),
                EventBody::Board { board, change } => {
                    let lane = lanes.of_board(board);
                    note(lane, "board", change_label(*change).into(), false);
                    let band = |name: &'static str| FaultBand {
                        seq,
                        name: name.into(),
                        detail: String::new(),
                        lane,
                        start_us: t_us,
                        end_us: t_us,
                    };
                    match change {
                        BoardChange::PowerOff | BoardChange::WifiDown => {
                            let name = if *change == BoardChange::PowerOff {
                                "power off"
                            } else {
                                "wifi down"
                            };
                            board_down.insert((lane, name), flow.faults.len());
                            flow.faults.push(band(name));
                        }
                        BoardChange::PowerOn | BoardChange::WifiUp => {
                            let name = if *change == BoardChange::PowerOn {
                                "power off"
                            } else {
                                "wifi down"
                            };
                            if let Some(index) = board_down.remove(&(lane, name)) {
                                flow.faults[index].end_us = t_us;
                            }
                        }
                        _ => {}
                    }
                }
                EventBody::Broker { action, .. } => {
                    let lane = lanes.broker;
                    match action {
                        BrokerAction::Down => {
                            board_down.insert((lane, "broker down"), flow.faults.len());
                            flow.faults.push(FaultBand {
                                seq,
                                name: "broker restart".into(),
                                detail: "broker down".into(),
                                lane,
                                start_us: t_us,
                                end_us: t_us,
                            });
                        }
                        BrokerAction::Restarted => {
                            if let Some(index) = board_down.remove(&(lane, "broker down")) {
                                flow.faults[index].end_us = t_us;
                            }
                        }
                        BrokerAction::Started | BrokerAction::Stopped => {}
                    }
                }
                EventBody::Fault {
                    fault,
                    target,
                    detail,
                } => {
                    let lane = match target.as_deref() {
                        Some(BROKER) | None => lanes.broker,
                        Some(target) => lanes.of_target(target),
                    };
                    let key = (fault.clone(), target.clone().unwrap_or_default());
                    if matches!(detail.as_str(), "healed" | "ended") {
                        if let Some(index) = open_faults.remove(&key) {
                            flow.faults[index].end_us = t_us;
                        }
                        continue;
                    }
                    if LASTING_FAULTS.contains(&fault.as_str()) {
                        open_faults.insert(key, flow.faults.len());
                    }
                    flow.faults.push(FaultBand {
                        seq,
                        name: fault.clone(),
                        detail: detail.clone(),
                        lane,
                        start_us: t_us,
                        end_us: t_us,
                    });
                }
                EventBody::StepStarted {
                    step,
                    name,
                    line,
                    within_us,
                } => flow.steps.push(StepSpan {
                    index: *step,
                    name: name.clone(),
                    line: *line,
                    start_us: t_us,
                    end_us: t_us,
                    within_us: *within_us,
                    passed: None,
                    detail: None,
                }),
                EventBody::StepFinished {
                    step,
                    passed,
                    detail,
                    ..
                } => {
                    if let Some(span) = flow.steps.iter_mut().rev().find(|s| s.index == *step) {
                        span.end_us = t_us;
                        span.passed = Some(*passed);
                        span.detail = detail.clone();
                    }
                }
                EventBody::TraceStarted { .. } | EventBody::ConnOpened { .. } => {}
            }
        }
        // What never ended lasts to the end of the trace.
        for index in open_faults.into_values().chain(board_down.into_values()) {
            flow.faults[index].end_us = flow.end_us;
        }
        for step in flow.steps.iter_mut().filter(|s| s.passed.is_none()) {
            step.end_us = flow.end_us;
        }
        flow.lanes = lanes.lanes;
        flow
    }

    /// The step that failed: the last one that finished without passing.
    pub fn failing_step(&self) -> Option<&StepSpan> {
        self.steps.iter().rev().find(|s| s.passed == Some(false))
    }
}

/// Faults that last until a later event says they ended (`healed`, `ended`).
const LASTING_FAULTS: &[&str] = &["partition", "delay"];

fn is_minor(packet: &Packet) -> bool {
    matches!(
        packet,
        Packet::Puback { .. }
            | Packet::Pubrec { .. }
            | Packet::Pubrel { .. }
            | Packet::Pubcomp { .. }
            | Packet::Suback { .. }
            | Packet::Unsuback { .. }
            | Packet::Pingreq
            | Packet::Pingresp
    )
}

/// Longest payload text an arrow shows; the table has the rest.
const PAYLOAD_SHOWN: usize = 40;

fn packet_label(packet: &Packet) -> String {
    match packet {
        Packet::Connect { client_id, .. } => format!("connect {client_id}"),
        Packet::Connack { code, .. } => format!("connack {code}"),
        Packet::Publish {
            topic,
            payload,
            qos,
            retain,
            ..
        } => {
            let mut text = payload.to_string();
            if text.chars().count() > PAYLOAD_SHOWN {
                text = text.chars().take(PAYLOAD_SHOWN).collect::<String>() + "…";
            }
            let flags = match (qos, retain) {
                (0, false) => String::new(),
                (qos, false) => format!(" q{qos}"),
                (qos, true) => format!(" q{qos} retain"),
            };
            format!("{topic} {text}{flags}")
        }
        Packet::Subscribe { filters, .. } => {
            let filters: Vec<&str> = filters.iter().map(|f| f.filter.as_str()).collect();
            format!("subscribe {}", filters.join(", "))
        }
        Packet::Unsubscribe { filters, .. } => format!("unsubscribe {}", filters.join(", ")),
        other => other.name().to_string(),
    }
}

fn change_label(change: BoardChange) -> &'static str {
    match change {
        BoardChange::PowerOn => "power on",
        BoardChange::PowerOff => "power off",
        BoardChange::Reset => "reset",
        BoardChange::WifiUp => "wifi up",
        BoardChange::WifiDown => "wifi down",
        BoardChange::SwitchPressed => "switch pressed",
        BoardChange::SwitchReleased => "switch released",
        BoardChange::SerialLost => "serial lost",
    }
}

/// The client id a connection's event is about, or `#conn` before it has one.
fn client_key(event: &Event) -> Option<String> {
    match &event.body {
        EventBody::Mqtt { conn, client, .. }
        | EventBody::Malformed { conn, client, .. }
        | EventBody::ConnClosed { conn, client, .. } => {
            Some(client.clone().unwrap_or_else(|| format!("#{conn}")))
        }
        _ => None,
    }
}

/// Lane numbers by client id and board name, growing as unknown ones turn up.
struct Lanes {
    lanes: Vec<Lane>,
    broker: usize,
    by_client: HashMap<String, usize>,
    by_board: HashMap<String, usize>,
}

impl Lanes {
    /// Clients, the broker, boards: the scenario's actors first, then every client id
    /// and board the trace names, in order of appearance.
    fn new(actors: &[Actor], events: &[Arc<Event>]) -> Lanes {
        let mut clients: Vec<(String, String)> = Vec::new();
        let mut boards: Vec<(String, String)> = Vec::new();
        for actor in actors {
            let entry = (actor.client_id.clone(), actor.name.clone());
            match actor.kind {
                ActorKind::Client => clients.push(entry),
                ActorKind::Board => boards.push(entry),
            }
        }
        let known =
            |list: &[(String, String)], id: &str| list.iter().any(|(c, n)| c == id || n == id);
        for event in events {
            if let Some(board) = crate::trace::board_of(event) {
                if !known(&boards, board) {
                    boards.push((board.to_string(), board.to_string()));
                }
            }
        }
        for event in events {
            if let Some(client) = client_key(event) {
                if !known(&clients, &client) && !known(&boards, &client) {
                    clients.push((client.clone(), client));
                }
            }
        }
        let mut lanes = Lanes {
            lanes: Vec::new(),
            broker: clients.len(),
            by_client: HashMap::new(),
            by_board: HashMap::new(),
        };
        for (client_id, name) in clients {
            lanes.by_client.insert(client_id, lanes.lanes.len());
            lanes.lanes.push(Lane {
                label: name,
                kind: LaneKind::Client,
            });
        }
        lanes.lanes.push(Lane {
            label: BROKER.into(),
            kind: LaneKind::Broker,
        });
        for (client_id, name) in boards {
            let lane = lanes.lanes.len();
            lanes.by_client.insert(client_id, lane);
            lanes.by_board.insert(name.clone(), lane);
            lanes.lanes.push(Lane {
                label: name,
                kind: LaneKind::Board,
            });
        }
        lanes
    }

    /// A packet's lane: its client's (`#conn` while it has no client id yet); every
    /// one was seen when the lanes were laid out.
    fn of_client(&self, client: Option<&str>, conn: u64) -> usize {
        let id = client.map_or_else(|| format!("#{conn}"), str::to_string);
        self.by_client.get(&id).copied().unwrap_or(self.broker)
    }

    fn of_board(&self, board: &str) -> usize {
        match self.by_board.get(board) {
            Some(lane) => *lane,
            None => self.broker,
        }
    }

    /// A fault's target: a client id, or a board's name.
    fn of_target(&self, target: &str) -> usize {
        match (self.by_client.get(target), self.by_board.get(target)) {
            (Some(lane), _) | (None, Some(lane)) => *lane,
            (None, None) => self.broker,
        }
    }
}
