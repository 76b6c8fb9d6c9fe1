//! From a recorded trace to a draft scenario: a pure function over trace events.
//!
//! The trace is read as a row of *moments*: a stimulus (something the person did: a
//! client's publish, a press, a Wi-Fi change, a reset, a power cycle; or the board
//! starting) and the board's reactions that followed it until the next stimulus (relay
//! changes, its publishes and who received them, its will, its connection coming or
//! going). A stimulus becomes a step; its reactions become expectations, each `within`
//! from the latency seen (`timing`). Pings, acknowledgements, subscriptions and the
//! board's own echoes are not moments of their own.

mod names;
mod timing;

use std::collections::HashMap;
use std::time::Duration;

use bytes::Bytes;

use crate::scenario::{BoardDecl, BoardSpec, ClientDecl, ClientSpec, Location, Scenario, Step};
use crate::steps::{
    Action, ExpectConnected, ExpectDisconnected, ExpectMessage, ExpectNoMessage, ExpectRelay,
    LinkState, PowerCycle, PressSwitch, Publish, RelayState, Reset, Wait, Wifi,
};
use crate::trace::{BoardChange, Direction, Event, EventBody, Packet, Payload};

pub use names::{has_secret, is_generated, ClientKey, Rename, SHORTEST_SECRET};
pub use timing::{FLOOR, GRAIN, LONGEST_QUIET, MARGIN};

use names::Names;

/// The board the session recorded, as the draft declares it.
#[derive(Debug, Clone)]
pub struct BoardRole {
    /// Its role in the scenario (`lamp`).
    pub name: String,
    /// The client id it connects with.
    pub client_id: String,
    pub spec: BoardSpec,
}

impl BoardRole {
    /// A role that connects with its own name as client id.
    pub fn named(name: &str, spec: BoardSpec) -> BoardRole {
        BoardRole {
            name: name.to_string(),
            client_id: name.to_string(),
            spec,
        }
    }
}

/// What the draft needs to know besides the trace.
#[derive(Debug, Clone, Copy)]
pub struct Session<'a> {
    /// The scenario's name; `None`: one made from the recording's date.
    pub name: Option<&'a str>,
    pub board: &'a BoardRole,
    pub renames: &'a [Rename],
    /// Passwords and tokens of the session: none of them may appear in the draft.
    pub secrets: &'a [String],
}

/// A draft scenario and what a person should know about it.
#[derive(Debug, Clone)]
pub struct Draft {
    pub scenario: Scenario,
    /// Whether the person did anything: without, the steps only check the board's start.
    pub activity: bool,
    /// What the draft left out or changed, and why.
    pub notes: Vec<String>,
    /// `--rename` ids no client of the session had.
    pub unused_renames: Vec<String>,
    /// The recording's start, in wall time (RFC 3339), from the trace.
    pub recorded_at: Option<String>,
}

/// The draft scenario of a recorded session.
pub fn draft<'e>(events: impl IntoIterator<Item = &'e Event>, session: Session<'_>) -> Draft {
    let mut reader = Reader::new(session);
    for event in events {
        reader.read(event);
    }
    reader.finish()
}

/// Something the person did, or the board's start.
#[derive(Debug, Clone, PartialEq)]
enum Stimulus {
    Start,
    Publish {
        client: ClientKey,
        topic: String,
        payload: String,
        qos: u8,
        retain: bool,
        /// Retained before the board first subscribed: state it finds on connecting.
        setup: bool,
    },
    Press,
    Wifi {
        up: bool,
    },
    Reset,
    /// Power off; `off_for` once the power came back.
    PowerCycle {
        off_for: Option<Duration>,
    },
}

/// What the board did after a stimulus.
#[derive(Debug, Clone, PartialEq)]
enum Reaction {
    Relay {
        on: bool,
    },
    Connected,
    Disconnected,
    /// A message of the board: published by it (`will: false`) or its will, published
    /// for it by the broker; `to`: an outside client that received it.
    Message {
        topic: String,
        payload: String,
        qos: u8,
        retain: bool,
        will: bool,
        to: Option<ClientKey>,
    },
}

#[derive(Debug)]
struct Moment {
    stimulus: Stimulus,
    at_us: u64,
    /// Each with when it happened.
    reactions: Vec<(u64, Reaction)>,
}

/// Who a connection is.
#[derive(Debug, Clone, PartialEq)]
enum Peer {
    Board,
    Client(ClientKey),
}

/// Who published a message last, so a delivery can be told apart from an echo.
#[derive(Debug, Clone, PartialEq)]
enum Publisher {
    Board,
    Client,
}

/// An outside client as it connected.
#[derive(Debug, Clone)]
struct ClientSeen {
    key: ClientKey,
    protocol: u8,
    clean: bool,
}

struct Reader<'s> {
    session: Session<'s>,
    peers: HashMap<u64, Peer>,
    clients: Vec<ClientSeen>,
    publishers: HashMap<(String, Bytes), Publisher>,
    moments: Vec<Moment>,
    /// The board has been seen (its start is the first moment's time).
    board_seen: bool,
    board_connacked: bool,
    board_subscribed: bool,
    /// It has subscribed at least once: retained messages after that are live commands.
    board_ever_subscribed: bool,
    relay_on: bool,
    /// The will of the board's latest connection: the broker publishes it after the
    /// connection is gone.
    board_will: Option<(String, Bytes)>,
    /// Something happened that may move the relay: a press, a command, a reset.
    relay_cause: bool,
    recorded_at: Option<String>,
    notes: Vec<String>,
    last_us: u64,
}

impl<'s> Reader<'s> {
    fn new(session: Session<'s>) -> Reader<'s> {
        Reader {
            session,
            peers: HashMap::new(),
            clients: Vec::new(),
            publishers: HashMap::new(),
            moments: vec![Moment {
                stimulus: Stimulus::Start,
                at_us: 0,
                reactions: Vec::new(),
            }],
            board_seen: false,
            board_connacked: false,
            board_subscribed: false,
            board_ever_subscribed: false,
            relay_on: false,
            board_will: None,
            relay_cause: false,
            recorded_at: None,
            notes: Vec::new(),
            last_us: 0,
        }
    }

    fn board(&self) -> &str {
        &self.session.board.name
    }

    /// The board shows up: its start is when it was first seen.
    fn saw_board(&mut self, at_us: u64) {
        if !self.board_seen {
            self.board_seen = true;
            if self.moments.len() == 1 {
                self.moments[0].at_us = at_us;
            }
        }
    }

    fn stimulus(&mut self, stimulus: Stimulus, at_us: u64) {
        self.moments.push(Moment {
            stimulus,
            at_us,
            reactions: Vec::new(),
        });
    }

    fn react(&mut self, reaction: Reaction, at_us: u64) {
        self.moments
            .last_mut()
            .expect("the start is always a moment")
            .reactions
            .push((at_us, reaction));
    }

    fn read(&mut self, event: &Event) {
        let at = event.t_us;
        self.last_us = self.last_us.max(at);
        match &event.body {
            EventBody::TraceStarted { wall_clock, .. } => {
                self.recorded_at = Some(wall_clock.clone());
            }
            EventBody::Mqtt {
                conn, dir, packet, ..
            } => self.packet(*conn, *dir, packet, at),
            EventBody::ConnClosed { conn, .. } => {
                if let Some(Peer::Board) = self.peers.remove(conn) {
                    self.board_gone(at);
                }
            }
            EventBody::Relay { board, on } if board == self.board() => {
                self.saw_board(at);
                self.relay(*on, at);
            }
            EventBody::Board { board, change } if board == self.board() => {
                self.saw_board(at);
                self.board_change(*change, at);
            }
            EventBody::Serial { board, .. }
            | EventBody::BoardState { board, .. }
            | EventBody::BoardWarning { board, .. }
                if board == self.board() =>
            {
                self.saw_board(at);
            }
            _ => {}
        }
    }

    fn board_gone(&mut self, at: u64) {
        if self.board_subscribed {
            self.react(Reaction::Disconnected, at);
        }
        self.board_connacked = false;
        self.board_subscribed = false;
    }

    fn relay(&mut self, on: bool, at: u64) {
        if on == self.relay_on {
            return;
        }
        self.relay_on = on;
        if !std::mem::take(&mut self.relay_cause) {
            // Nothing hil did or saw explains it: a hand on the wall switch.
            self.stimulus(Stimulus::Press, at);
        }
        self.react(Reaction::Relay { on }, at);
    }

    fn board_change(&mut self, change: BoardChange, at: u64) {
        match change {
            BoardChange::SwitchPressed => {
                self.stimulus(Stimulus::Press, at);
                self.relay_cause = true;
            }
            BoardChange::WifiDown => self.stimulus(Stimulus::Wifi { up: false }, at),
            BoardChange::WifiUp => self.stimulus(Stimulus::Wifi { up: true }, at),
            BoardChange::Reset => {
                self.stimulus(Stimulus::Reset, at);
                self.relay_cause = true;
            }
            BoardChange::PowerOff => {
                self.stimulus(Stimulus::PowerCycle { off_for: None }, at);
                self.relay_cause = true;
            }
            BoardChange::PowerOn => {
                let open =
                    self.moments
                        .iter_mut()
                        .rev()
                        .find_map(|moment| match &mut moment.stimulus {
                            Stimulus::PowerCycle {
                                off_for: off @ None,
                            } => Some((off, moment.at_us)),
                            _ => None,
                        });
                if let Some((off_for, off_at)) = open {
                    *off_for = Some(timing::micros(at.saturating_sub(off_at)));
                }
            }
            BoardChange::SwitchReleased | BoardChange::SerialLost => {}
        }
    }

    fn packet(&mut self, conn: u64, dir: Direction, packet: &Packet, at: u64) {
        match (dir, packet) {
            (
                Direction::ToBroker,
                Packet::Connect {
                    client_id,
                    protocol,
                    clean_session,
                    will,
                    ..
                },
            ) => self.connect(conn, client_id, *protocol, *clean_session, will, at),
            (Direction::ToClient, Packet::Connack { code, .. })
                if self.peers.get(&conn) == Some(&Peer::Board) =>
            {
                self.board_connacked = code.is_success();
            }
            (Direction::ToClient, Packet::Suback { .. })
                if self.peers.get(&conn) == Some(&Peer::Board)
                    && self.board_connacked
                    && !self.board_subscribed =>
            {
                self.board_subscribed = true;
                self.board_ever_subscribed = true;
                self.react(Reaction::Connected, at);
            }
            (
                dir,
                Packet::Publish {
                    topic,
                    payload,
                    qos,
                    retain,
                    ..
                },
            ) => {
                let Some(peer) = self.peers.get(&conn).cloned() else {
                    return;
                };
                let message = Message {
                    topic,
                    payload,
                    qos: *qos,
                    retain: *retain,
                };
                match dir {
                    Direction::ToBroker => self.published(peer, message, at),
                    Direction::ToClient => self.delivered(peer, message, at),
                }
            }
            _ => {}
        }
    }

    fn connect(
        &mut self,
        conn: u64,
        client_id: &str,
        protocol: u8,
        clean: bool,
        will: &Option<crate::trace::Will>,
        at: u64,
    ) {
        if client_id == self.session.board.client_id {
            self.saw_board(at);
            self.board_will = will
                .as_ref()
                .map(|will| (will.topic.clone(), will.payload.0.clone()));
            self.peers.insert(conn, Peer::Board);
            return;
        }
        let key = if client_id.is_empty() {
            ClientKey::Anonymous { conn }
        } else {
            ClientKey::Id(client_id.to_string())
        };
        if !self.clients.iter().any(|seen| seen.key == key) {
            self.clients.push(ClientSeen {
                key: key.clone(),
                protocol,
                clean,
            });
        }
        self.peers.insert(conn, Peer::Client(key));
    }

    fn published(&mut self, peer: Peer, message: Message<'_>, at: u64) {
        let key = (message.topic.to_string(), message.payload.0.clone());
        match peer {
            Peer::Board => {
                self.publishers.insert(key, Publisher::Board);
                let Some(payload) = self.text(message.payload, "the board", message.topic) else {
                    return;
                };
                self.react(
                    Reaction::Message {
                        topic: message.topic.to_string(),
                        payload,
                        qos: message.qos,
                        retain: message.retain,
                        will: false,
                        to: None,
                    },
                    at,
                );
            }
            Peer::Client(client) => {
                self.publishers.insert(key, Publisher::Client);
                let Some(payload) = self.text(message.payload, "a client", message.topic) else {
                    return;
                };
                let setup = message.retain && !self.board_ever_subscribed;
                self.stimulus(
                    Stimulus::Publish {
                        client,
                        topic: message.topic.to_string(),
                        payload,
                        qos: message.qos,
                        retain: message.retain,
                        setup,
                    },
                    at,
                );
            }
        }
    }

    fn delivered(&mut self, peer: Peer, message: Message<'_>, at: u64) {
        let key = (message.topic.to_string(), message.payload.0.clone());
        let publisher = self.publishers.get(&key);
        match peer {
            Peer::Board => {
                // A command from someone else may move the relay; the board's own
                // messages coming back cannot.
                if publisher != Some(&Publisher::Board) {
                    self.relay_cause = true;
                }
            }
            // Retained deliveries are old news to a subscriber, not a reaction.
            Peer::Client(_) if message.retain => {}
            Peer::Client(client) => {
                let will = self.board_will.clone();
                let Some(payload) = message.payload.as_text() else {
                    return;
                };
                let moment = self.moments.last_mut().expect("the start is a moment");
                let own = moment.reactions.iter_mut().rev().find(|(_, reaction)| {
                    matches!(reaction, Reaction::Message { topic, payload: p, will: false, to: None, .. }
                        if topic == message.topic && p == payload)
                });
                if let Some((when, Reaction::Message { to, .. })) = own {
                    if publisher == Some(&Publisher::Board) {
                        *to = Some(client);
                        *when = at;
                    }
                    return;
                }
                let is_will = publisher.is_none()
                    && will.is_some_and(|(topic, bytes)| {
                        topic == message.topic && bytes == message.payload.0
                    });
                let seen = moment.reactions.iter().any(|(_, reaction)| {
                    matches!(reaction, Reaction::Message { topic, payload: p, will: true, .. }
                        if topic == message.topic && p == payload)
                });
                if is_will && !seen {
                    let reaction = Reaction::Message {
                        topic: message.topic.to_string(),
                        payload: payload.to_string(),
                        qos: message.qos,
                        retain: false,
                        will: true,
                        to: Some(client),
                    };
                    self.react(reaction, at);
                }
            }
        }
    }

    /// The payload as text, or a note that a binary one was left out.
    fn text(&mut self, payload: &Payload, who: &str, topic: &str) -> Option<String> {
        match payload.as_text() {
            Some(text) => Some(text.to_string()),
            None => {
                self.notes.push(format!(
                    "a binary message {who} published on {topic} ({} bytes) is left out: scenario payloads are text",
                    payload.0.len()
                ));
                None
            }
        }
    }

    fn finish(self) -> Draft {
        Writer::new(self).write()
    }
}

/// A publish as the reader needs it.
struct Message<'p> {
    topic: &'p str,
    payload: &'p Payload,
    qos: u8,
    retain: bool,
}

/// Turns moments into steps.
struct Writer<'s> {
    session: Session<'s>,
    moments: Vec<Moment>,
    clients: Vec<ClientSeen>,
    names: Names<'s>,
    /// The clients a step names, by key.
    used: Vec<ClientKey>,
    steps: Vec<Action>,
    notes: Vec<String>,
    recorded_at: Option<String>,
    board_seen: bool,
    last_us: u64,
}

impl<'s> Writer<'s> {
    fn new(reader: Reader<'s>) -> Writer<'s> {
        let session = reader.session;
        Writer {
            session,
            moments: reader.moments,
            clients: reader.clients,
            names: Names::new(&session.board.name, session.renames, session.secrets),
            used: Vec::new(),
            steps: Vec::new(),
            notes: reader.notes,
            recorded_at: reader.recorded_at,
            board_seen: reader.board_seen,
            last_us: reader.last_us,
        }
    }

    fn board(&self) -> String {
        self.session.board.name.clone()
    }

    fn client(&mut self, key: &ClientKey) -> String {
        if !self.used.contains(key) {
            self.used.push(key.clone());
        }
        self.names.name(key)
    }

    /// Text without the session's secrets; a note says where one was.
    fn clean(&mut self, text: &str, what: &str) -> String {
        let cleaned = redact(text, self.session.secrets);
        if cleaned != text {
            self.notes.push(format!(
                "{what} carried a secret of the session; it reads REDACTED here: put the real value in before running"
            ));
        }
        cleaned
    }

    fn write(mut self) -> Draft {
        let moments = std::mem::take(&mut self.moments);
        let activity = moments.len() > 1;
        let setup_from = moments
            .iter()
            .find(|m| matches!(m.stimulus, Stimulus::Publish { setup: true, .. }))
            .map(|m| m.at_us);
        for moment in moments.iter().filter(|m| is_setup(&m.stimulus)) {
            self.stimulus(&moment.stimulus);
        }
        let mut last_press_us: Option<u64> = None;
        for (index, moment) in moments.iter().enumerate() {
            if !is_setup(&moment.stimulus) {
                if let Some(pause) = press_pause(last_press_us, moment) {
                    self.steps.push(Action::Wait(Wait { duration: pause }));
                }
                self.stimulus(&moment.stimulus);
            }
            if moment.stimulus == Stimulus::Press {
                last_press_us = Some(moment.at_us);
            }
            let mut reactions = moment.reactions.clone();
            if moment.stimulus == Stimulus::Start {
                if let Some(setup_at) = setup_from {
                    let before = reactions.len();
                    // The setup publishes come first: what the board published before
                    // them would be outside the window of their expectations.
                    reactions.retain(|(at, r)| *at >= setup_at || !is_message(r));
                    if reactions.len() < before {
                        self.notes.push(
                            "the board's messages before the first retained publish are not expected: they come before step 1 starts".into(),
                        );
                    }
                }
            }
            let reacted = !reactions.is_empty();
            self.expectations(moment.at_us, reactions);
            if !reacted && moment.stimulus != Stimulus::Start {
                let next_us = moments
                    .get(index + 1)
                    .map_or(self.last_us, |next| next.at_us);
                let quiet = timing::quiet(timing::micros(next_us.saturating_sub(moment.at_us)));
                if !quiet.is_zero() {
                    self.steps.push(Action::ExpectNoMessage(ExpectNoMessage {
                        topic: "#".into(),
                        duration: quiet,
                        from: Some(self.board()),
                    }));
                }
            }
        }
        if self.steps.is_empty() {
            self.notes.push(format!(
                "{} never connected while recording; the one step expects it to",
                self.board()
            ));
            self.steps.push(Action::ExpectConnected(ExpectConnected {
                client: self.board(),
                within: crate::steps::duration::DEFAULT_WITHIN,
            }));
        } else if !self.board_seen {
            self.notes
                .push(format!("{} was never seen while recording", self.board()));
        }
        let unused_renames = self.names.unused_renames();
        let scenario = self.scenario(activity);
        let secrets = self.session.secrets;
        Draft {
            scenario,
            activity,
            notes: self
                .notes
                .iter()
                .map(|note| redact(note, secrets))
                .collect(),
            unused_renames,
            recorded_at: self.recorded_at,
        }
    }

    fn stimulus(&mut self, stimulus: &Stimulus) {
        let board = self.board();
        let step = match stimulus {
            Stimulus::Start => return,
            Stimulus::Publish {
                client,
                topic,
                payload,
                qos,
                retain,
                ..
            } => {
                let name = self.client(client);
                let what = format!("a publish by {name}");
                Action::Publish(Publish {
                    client: name,
                    topic: self.clean(topic, &what),
                    payload: self.clean(payload, &what),
                    qos: *qos,
                    retain: *retain,
                })
            }
            Stimulus::Press => Action::PressSwitch(PressSwitch {
                board,
                bounce: None,
            }),
            Stimulus::Wifi { up } => Action::Wifi(Wifi {
                board,
                state: if *up { LinkState::Up } else { LinkState::Down },
            }),
            Stimulus::Reset => Action::Reset(Reset { board }),
            Stimulus::PowerCycle { off_for } => {
                let off_for = off_for.unwrap_or_else(|| {
                    self.notes.push(format!(
                        "{board}'s power went off and the recording ended before it came back; the power cycle keeps it off for {}",
                        humantime::format_duration(crate::steps::DEFAULT_OFF_FOR)
                    ));
                    crate::steps::DEFAULT_OFF_FOR
                });
                Action::PowerCycle(PowerCycle {
                    board,
                    off_for: timing::quiet(off_for).max(timing::QUIET_GRAIN),
                })
            }
        };
        self.steps.push(step);
    }

    /// One expectation per reaction, in the order they happened: the relay's and the
    /// connection's last state only (a state that held and ended is not the present
    /// one); the same message several times once, with its count.
    fn expectations(&mut self, since_us: u64, reactions: Vec<(u64, Reaction)>) {
        let last_relay = reactions
            .iter()
            .rposition(|(_, r)| matches!(r, Reaction::Relay { .. }));
        let last_link = reactions
            .iter()
            .rposition(|(_, r)| matches!(r, Reaction::Connected | Reaction::Disconnected));
        let mut written: Vec<(Reaction, usize)> = Vec::new();
        for (index, (at, reaction)) in reactions.iter().enumerate() {
            let within = timing::within(timing::micros(at.saturating_sub(since_us)));
            match reaction {
                Reaction::Relay { .. } if Some(index) != last_relay => continue,
                Reaction::Connected | Reaction::Disconnected if Some(index) != last_link => {
                    continue
                }
                Reaction::Message { .. } => {
                    if let Some((_, step)) = written.iter().find(|(seen, _)| seen == reaction) {
                        let step = *step;
                        if let Action::ExpectMessage(expect) = &mut self.steps[step] {
                            expect.count = Some(expect.count.unwrap_or(1) + 1);
                            expect.within = expect.within.max(within);
                        }
                        continue;
                    }
                    written.push((reaction.clone(), self.steps.len()));
                }
                _ => {}
            }
            let step = self.expectation(reaction, within);
            self.steps.push(step);
        }
    }

    fn expectation(&mut self, reaction: &Reaction, within: Duration) -> Action {
        let board = self.board();
        match reaction {
            Reaction::Relay { on } => Action::ExpectRelay(ExpectRelay {
                board,
                state: if *on { RelayState::On } else { RelayState::Off },
                within,
            }),
            Reaction::Connected => Action::ExpectConnected(ExpectConnected {
                client: board,
                within,
            }),
            Reaction::Disconnected => Action::ExpectDisconnected(ExpectDisconnected {
                client: board,
                within,
            }),
            Reaction::Message {
                topic,
                payload,
                qos,
                retain,
                will,
                to,
            } => {
                let to = to.as_ref().map(|key| self.client(key));
                let what = format!("a message of {board}");
                ExpectMessage::from(Expected {
                    topic: self.clean(topic, &what),
                    payload: self.clean(payload, &what),
                    qos: *qos,
                    retain: *retain,
                    // The broker publishes a will: the board sent nothing itself.
                    from: (!will).then_some(board),
                    to,
                    within,
                })
                .into()
            }
        }
    }

    fn scenario(&mut self, activity: bool) -> Scenario {
        let board = self.session.board;
        let clients = self
            .clients
            .iter()
            .filter(|seen| self.used.contains(&seen.key))
            .map(|seen| ClientDecl {
                name: self.names.name(&seen.key),
                spec: ClientSpec {
                    protocol: (seen.protocol == 5).then_some(5),
                    client_id: None,
                    connect: None,
                    clean: (!seen.clean).then_some(false),
                },
                location: Location::default(),
            })
            .collect();
        let steps: Vec<Step> = std::mem::take(&mut self.steps)
            .into_iter()
            .map(|action| Step {
                location: Location::default(),
                action,
            })
            .collect();
        let date = self
            .recorded_at
            .as_deref()
            .map(readable_date)
            .unwrap_or_default();
        let name = match self.session.name {
            Some(name) => name.to_string(),
            None if activity => format!("recorded {date}").trim().to_string(),
            None => format!("recorded {date} without activity")
                .replace("  ", " ")
                .to_string(),
        };
        Scenario {
            name,
            path: Default::default(),
            timeout: timeout(&steps),
            snapshot: false,
            tags: Vec::new(),
            boards: vec![BoardDecl {
                name: board.name.clone(),
                spec: board.spec.clone(),
                location: Location::default(),
            }],
            clients,
            steps,
        }
    }
}

/// An `expect_message` of the board's, before it is a step.
struct Expected {
    topic: String,
    payload: String,
    qos: u8,
    retain: bool,
    from: Option<String>,
    to: Option<String>,
    within: Duration,
}

impl From<Expected> for ExpectMessage {
    fn from(expected: Expected) -> ExpectMessage {
        ExpectMessage {
            topic: expected.topic,
            payload: Some(expected.payload),
            payload_regex: None,
            payload_json: None,
            // Checked on the board's publish: a will has no publish of its own.
            qos: (expected.from.is_some() && expected.qos > 0).then_some(expected.qos),
            retain: (expected.from.is_some() && expected.retain).then_some(true),
            from: expected.from,
            to: expected.to,
            within: expected.within,
            count: None,
        }
    }
}

impl From<ExpectMessage> for Action {
    fn from(expect: ExpectMessage) -> Action {
        Action::ExpectMessage(expect)
    }
}

/// `text` with every secret of the session (long enough to look for) as `REDACTED`.
pub fn redact(text: &str, secrets: &[String]) -> String {
    let mut cleaned = text.to_string();
    for secret in secrets {
        if secret.len() >= SHORTEST_SECRET {
            cleaned = cleaned.replace(secret.as_str(), "REDACTED");
        }
    }
    cleaned
}

fn is_setup(stimulus: &Stimulus) -> bool {
    matches!(stimulus, Stimulus::Publish { setup: true, .. })
}

fn is_message(reaction: &Reaction) -> bool {
    matches!(reaction, Reaction::Message { .. })
}

/// A pause the replay must keep before `moment`: a press of the switch this long after
/// the one before it (whatever happened in between), since firmware tells presses apart
/// by time (debouncing) and the replay would otherwise press sooner. Other gaps are idle
/// time: the expectations in between already wait for what matters.
fn press_pause(last_press_us: Option<u64>, moment: &Moment) -> Option<Duration> {
    if moment.stimulus != Stimulus::Press {
        return None;
    }
    let since = moment.at_us.saturating_sub(last_press_us?);
    let pause = timing::quiet(timing::micros(since));
    (!pause.is_zero()).then_some(pause)
}

/// `2025-01-02T03:04:05.678Z` as `2025-01-02 03:04`.
fn readable_date(rfc3339: &str) -> String {
    match rfc3339.split_once('T') {
        Some((date, time)) => format!("{date} {}", time.get(..5).unwrap_or(time)),
        None => rfc3339.to_string(),
    }
}

/// Long enough for every step to take all it may (an `expect_message` up to twice its
/// `within`, with its grace for late arrivals), with room to spare; the default 30 s
/// when that is enough.
fn timeout(steps: &[Step]) -> Duration {
    const DEFAULT: Duration = Duration::from_secs(30);
    const SPARE: Duration = Duration::from_secs(10);
    let needed: Duration = steps
        .iter()
        .map(|step| match &step.action {
            Action::ExpectMessage(e) => e.within + e.within.min(Duration::from_millis(500)),
            Action::ExpectRelay(e) => e.within,
            Action::ExpectConnected(e) => e.within,
            Action::ExpectDisconnected(e) => e.within,
            Action::ExpectNoMessage(e) => e.duration,
            Action::Wait(w) => w.duration,
            Action::PowerCycle(p) => p.off_for + Duration::from_secs(1),
            _ => Duration::from_millis(100),
        })
        .sum();
    let total = needed + SPARE;
    if total <= DEFAULT {
        DEFAULT
    } else {
        Duration::from_secs(total.as_secs().div_ceil(10) * 10)
    }
}

#[cfg(test)]
mod tests;
