//! Invariants checked over a run's trace while it runs: each event goes through the
//! model (`model.rs`) of the board it concerns, what the board does is compared with
//! what the model expects, and time-bound expectations are judged when their time is
//! up. The first violation ends the watch; every (step, board state) pair reached is
//! kept for coverage.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use super::model::{self, Board, Command};
use super::ops::{board_name, reconnect_bound, Op, Plan, CHECKER, TOPIC};
use crate::trace::{BoardChange, BrokerAction, Direction, Event, EventBody, Packet, Trace};

/// A board with no input and no output for this long has settled.
const SETTLE: Duration = Duration::from_millis(300);
/// How long a connected board may take to publish what it owes (status, a press).
const OWED_WITHIN: Duration = Duration::from_millis(1_000);
/// The most messages a board may publish for one input (a connect owes three).
const STORM: u32 = 4;

/// An invariant: what it says, and how it is quantified.
type Invariant = (&'static str, Quantifier);

/// How an invariant is quantified.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Quantifier {
    Always,
    Eventually,
}

impl Quantifier {
    pub fn name(self) -> &'static str {
        match self {
            Quantifier::Always => "always",
            Quantifier::Eventually => "eventually",
        }
    }
}

/// A broken invariant, with what would show it in a scenario.
#[derive(Debug, Clone, PartialEq)]
pub struct Violation {
    pub invariant: &'static str,
    pub quantifier: Quantifier,
    pub board: String,
    /// The step running when it was seen (index into the scenario's steps).
    pub step: usize,
    pub expected: String,
    pub observed: String,
    /// Scenario steps (YAML flow text) that fail where this was seen.
    pub checks: Vec<String>,
}

/// Something a board owes, by a deadline; `step` is where a scenario shows it.
#[derive(Debug, Clone)]
struct Owed {
    what: Owing,
    by_us: u64,
    step: usize,
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Owing {
    /// `T/status` online after a CONNACK.
    Online,
    /// A press published on `T`, once connected.
    Switch,
    /// `HIL warn=invalid_payload` for an invalid command.
    Warning,
    /// A CONNACK after an outage ended.
    Reconnect { bound: Duration },
}

/// One board as the monitor follows it.
struct Watched {
    name: String,
    model: Board,
    relay: bool,
    /// When the board last got an input or did something (µs on the trace clock).
    active_us: u64,
    /// Whether the settled board has been checked since it last changed.
    checked: bool,
    published_since_input: u32,
    relay_changes_since_command: Option<u32>,
    owed: Vec<Owed>,
    /// The broker's retained `T/state`: `None` when not known (a publish of it lost).
    retained_state: Option<Option<String>>,
    state: String,
    outage_since_us: Option<u64>,
}

impl Watched {
    fn new(name: String) -> Watched {
        Watched {
            name,
            model: Board::default(),
            relay: false,
            active_us: 0,
            checked: true,
            published_since_input: 0,
            relay_changes_since_command: None,
            owed: Vec::new(),
            retained_state: Some(None),
            state: "OFFLINE".into(),
            outage_since_us: None,
        }
    }
}

/// The invariants of one run.
pub struct Monitor {
    boards: Vec<Watched>,
    ops: Vec<Op>,
    /// Scenario steps before the first operation (one `expect_connected` per board).
    lead: usize,
    last_step: usize,
    step: usize,
    /// The last step that was not a wait: what an input now is the answer to.
    stimulus_step: usize,
    /// A publish whose fate (forwarded or dropped) the next event tells.
    held: Option<Arc<Event>>,
    violation: Option<Violation>,
    /// (step name, board state) pairs reached.
    pub reached: BTreeSet<(String, String)>,
    finished: bool,
}

impl Monitor {
    pub fn new(plan: &Plan) -> Monitor {
        Monitor {
            boards: (0..plan.boards)
                .map(|b| Watched::new(board_name(b)))
                .collect(),
            ops: plan.ops.clone(),
            lead: plan.boards,
            last_step: plan.boards + plan.ops.len(),
            step: 0,
            stimulus_step: 0,
            held: None,
            violation: None,
            reached: BTreeSet::new(),
            finished: false,
        }
    }

    /// Follows `trace` until the run's last step ends, a violation is seen or `done`
    /// (the run ended) fires; a violation cancels `stop`, ending the run early.
    pub async fn watch(
        mut self,
        trace: Trace,
        done: CancellationToken,
        stop: CancellationToken,
    ) -> (Option<Violation>, BTreeSet<(String, String)>) {
        let mut cursor = trace.cursor_at(0);
        while self.violation.is_none() && !self.finished {
            let next_check = tokio::time::Instant::now() + Duration::from_millis(50);
            tokio::select! {
                event = cursor.next_before(next_check) => {
                    if let Some(event) = event {
                        self.see(event);
                    }
                }
                () = done.cancelled() => {
                    for event in cursor.drain() {
                        self.see(event);
                    }
                    break;
                }
            }
            if self.violation.is_none() && !self.finished {
                self.due(trace.elapsed_us());
            }
        }
        if self.violation.is_some() {
            stop.cancel();
        }
        (self.violation, self.reached)
    }

    fn see(&mut self, event: Arc<Event>) {
        if self.finished || self.violation.is_some() {
            return;
        }
        if let Some(held) = self.held.take() {
            let dropped = matches!(&event.body, EventBody::Fault { fault, target, .. }
                if fault == "drop" && target.as_ref() == mqtt_client(&held));
            self.publish(&held, dropped);
        }
        if matches!(
            &event.body,
            EventBody::Mqtt {
                packet: Packet::Publish { .. },
                ..
            }
        ) {
            self.held = Some(event);
            return;
        }
        self.event(&event);
    }

    fn stimulus_is_press(&self) -> bool {
        let op = self
            .stimulus_step
            .checked_sub(self.lead)
            .and_then(|i| self.ops.get(i));
        matches!(op, Some(Op::Press { .. }))
    }

    fn board_index(&self, name: &str) -> Option<usize> {
        self.boards.iter().position(|b| b.name == name)
    }

    fn fail(
        &mut self,
        board: usize,
        step: usize,
        (invariant, quantifier): Invariant,
        expected: String,
        observed: String,
        checks: Vec<String>,
    ) {
        if self.violation.is_none() {
            self.violation = Some(Violation {
                invariant,
                quantifier,
                board: self.boards[board].name.clone(),
                step,
                expected,
                observed,
                checks,
            });
        }
    }

    fn touch(&mut self, board: usize, t_us: u64) {
        let watched = &mut self.boards[board];
        watched.active_us = t_us;
        watched.checked = false;
    }

    /// An input reached the board: what it publishes from now on answers this one.
    fn input(&mut self, board: usize, t_us: u64) {
        self.touch(board, t_us);
        let watched = &mut self.boards[board];
        watched.published_since_input = 0;
        watched.relay_changes_since_command = None;
    }

    fn expect(&mut self, board: usize, expect: model::Expect, t_us: u64) {
        let by_us = t_us + OWED_WITHIN.as_micros() as u64;
        let step = self.stimulus_step;
        let watched = &mut self.boards[board];
        if expect.warning {
            watched.owed.push(Owed {
                what: Owing::Warning,
                by_us,
                step,
            });
        }
        if expect.switch.is_some() && watched.model.connected {
            watched.owed.push(Owed {
                what: Owing::Switch,
                by_us,
                step,
            });
        }
    }

    fn event(&mut self, event: &Event) {
        let t = event.t_us;
        match &event.body {
            EventBody::StepStarted { step, .. } => {
                self.step = *step;
                if let Some(op) = step.checked_sub(self.lead).and_then(|i| self.ops.get(i)) {
                    if !matches!(op, Op::Wait(_)) {
                        self.stimulus_step = *step;
                    }
                    if let Some(board) = op.board().filter(|b| *b < self.boards.len()) {
                        let state = self.boards[board].state.clone();
                        self.reached.insert((op.name().to_string(), state));
                    }
                }
            }
            EventBody::StepFinished { step, .. } if *step == self.last_step => {
                self.due(t);
                self.finished = true;
            }
            EventBody::Relay { board, on } => {
                let Some(b) = self.board_index(board) else {
                    return;
                };
                self.touch(b, t);
                let watched = &mut self.boards[b];
                if watched.relay != *on {
                    watched.relay = *on;
                    if let Some(changes) = &mut watched.relay_changes_since_command {
                        *changes += 1;
                        if *changes > 1 {
                            let checks = vec![relay_check(&watched.name, watched.model.relay)];
                            let step = self.stimulus_step;
                            self.fail(
                                b,
                                step,
                                ("a command is applied at most once", Quantifier::Always),
                                "one relay change for one command".into(),
                                "the relay changed again".into(),
                                checks,
                            );
                        }
                    }
                }
            }
            EventBody::Board { board, change } => {
                let Some(b) = self.board_index(board) else {
                    return;
                };
                self.input(b, t);
                match change {
                    BoardChange::PowerOff => {
                        self.boards[b].model.power_loss();
                        self.boards[b].owed.clear();
                        self.boards[b].outage_since_us.get_or_insert(t);
                    }
                    BoardChange::Reset | BoardChange::PowerOn => {
                        self.boards[b].model.power_loss();
                        self.boards[b].owed.clear();
                        self.outage_over(b, t, Duration::ZERO);
                    }
                    BoardChange::WifiDown => {
                        // A new outage: the board owes no reconnect until it ends.
                        self.boards[b]
                            .owed
                            .retain(|o| !matches!(o.what, Owing::Reconnect { .. }));
                        self.boards[b].outage_since_us.get_or_insert(t);
                    }
                    BoardChange::WifiUp => self.outage_over(b, t, Duration::ZERO),
                    BoardChange::SwitchPressed => {
                        let expect = self.boards[b].model.press();
                        self.expect(b, expect, t);
                    }
                    _ => {}
                }
            }
            EventBody::BoardState { board, state } => {
                if let Some(b) = self.board_index(board) {
                    self.boards[b].state = state.clone();
                }
            }
            EventBody::BoardWarning { board, warning } if warning == "invalid_payload" => {
                let Some(b) = self.board_index(board) else {
                    return;
                };
                self.touch(b, t);
                let watched = &mut self.boards[b];
                if let Some(at) = watched.owed.iter().position(|o| o.what == Owing::Warning) {
                    watched.owed.remove(at);
                } else {
                    let checks = vec![relay_check(&watched.name, watched.model.relay)];
                    let step = self.stimulus_step;
                    self.fail(
                        b,
                        step,
                        ("no board_warning for valid input", Quantifier::Always),
                        "no warning: the command was valid".into(),
                        "HIL warn=invalid_payload".into(),
                        checks,
                    );
                }
            }
            EventBody::Mqtt {
                client: Some(client),
                dir,
                packet,
                ..
            } => {
                let Some(b) = self.board_index(client) else {
                    return;
                };
                match (dir, packet) {
                    (Direction::ToBroker, Packet::Connect { will, .. }) => {
                        let good = will.as_ref().is_some_and(|w| {
                            w.topic == status_topic()
                                && w.payload.0.as_ref() == b"offline"
                                && w.retain
                                && w.qos == 1
                        });
                        if !good {
                            let checks = vec![will_check(client)];
                            self.fail(
                                b,
                                0,
                                ("on power loss the will says offline", Quantifier::Always),
                                format!("a will {} = offline, QoS 1, retained", status_topic()),
                                format!("{will:?}"),
                                checks,
                            );
                        }
                    }
                    (Direction::ToClient, Packet::Connack { code, .. }) if code.is_success() => {
                        self.input(b, t);
                        let expect = self.boards[b].model.connected();
                        let by_us = t + OWED_WITHIN.as_micros() as u64;
                        let step = self.step;
                        let watched = &mut self.boards[b];
                        watched
                            .owed
                            .retain(|o| !matches!(o.what, Owing::Reconnect { .. }));
                        watched.outage_since_us = None;
                        watched.owed.push(Owed {
                            what: Owing::Online,
                            by_us,
                            step,
                        });
                        if expect.switch.is_some() {
                            watched.owed.push(Owed {
                                what: Owing::Switch,
                                by_us,
                                step,
                            });
                        }
                    }
                    _ => {}
                }
            }
            EventBody::ConnClosed {
                client: Some(client),
                ..
            } => {
                let Some(b) = self.board_index(client) else {
                    return;
                };
                let watched = &mut self.boards[b];
                watched.model.connected = false;
                watched
                    .owed
                    .retain(|o| matches!(o.what, Owing::Reconnect { .. } | Owing::Warning));
                watched.outage_since_us.get_or_insert(t);
            }
            EventBody::Broker { action, .. } => match action {
                BrokerAction::Down => {
                    for watched in &mut self.boards {
                        watched
                            .owed
                            .retain(|o| !matches!(o.what, Owing::Reconnect { .. }));
                        watched.retained_state = Some(None);
                    }
                }
                BrokerAction::Restarted => {
                    for b in 0..self.boards.len() {
                        let since = self.boards[b].outage_since_us.unwrap_or(t);
                        let length = Duration::from_micros(t.saturating_sub(since));
                        self.outage_over(b, t, length);
                    }
                }
                _ => {}
            },
            EventBody::Fault {
                fault,
                target: Some(target),
                detail,
            } if fault == "partition" => {
                let Some(b) = self.board_index(target) else {
                    return;
                };
                if detail == "healed" {
                    let since = self.boards[b].outage_since_us.unwrap_or(t);
                    let length = Duration::from_micros(t.saturating_sub(since));
                    self.outage_over(b, t, length);
                } else {
                    // A new outage, perhaps before the board is back from the last one:
                    // it owes no reconnect until this one ends.
                    self.boards[b]
                        .owed
                        .retain(|o| !matches!(o.what, Owing::Reconnect { .. }));
                    self.boards[b].outage_since_us.get_or_insert(t);
                }
            }
            _ => {}
        }
    }

    /// An outage of `length` ended: the board must be back within its backoff bound.
    fn outage_over(&mut self, board: usize, t_us: u64, length: Duration) {
        let watched = &mut self.boards[board];
        if watched.model.connected {
            return;
        }
        let bound = reconnect_bound(length);
        watched
            .owed
            .retain(|o| !matches!(o.what, Owing::Reconnect { .. }));
        watched.owed.push(Owed {
            what: Owing::Reconnect { bound },
            by_us: t_us + bound.as_micros() as u64,
            // Shown where it is overdue: by then a correct board is back.
            step: usize::MAX,
        });
    }

    /// A PUBLISH through the tap; `dropped` when the tap dropped it.
    fn publish(&mut self, event: &Event, dropped: bool) {
        let EventBody::Mqtt {
            client: Some(client),
            dir,
            packet: Packet::Publish { topic, payload, .. },
            ..
        } = &event.body
        else {
            return;
        };
        let Some(b) = self.board_index(client) else {
            return;
        };
        let t = event.t_us;
        if *dir == Direction::ToClient {
            if dropped || topic != TOPIC {
                return;
            }
            self.input(b, t);
            let expect = self.boards[b].model.command(&payload.0);
            if Command::parse(&payload.0) != Command::Invalid {
                self.boards[b].relay_changes_since_command = Some(0);
            }
            self.expect(b, expect, t);
            return;
        }
        self.touch(b, t);
        let name = self.boards[b].name.clone();
        let step = self.stimulus_step;
        self.boards[b].published_since_input += 1;
        if self.boards[b].published_since_input > STORM {
            self.fail(
                b,
                step,
                (
                    "no storm: a bounded number of messages per stimulus",
                    Quantifier::Always,
                ),
                format!("at most {STORM} messages for one input"),
                format!("{} messages", self.boards[b].published_since_input),
                vec![no_publish_check(&name, &format!("{TOPIC}/#"))],
            );
            return;
        }
        if topic == TOPIC {
            if self.boards[b].model.published_switch(&payload.0) {
                self.boards[b].owed.retain(|o| o.what != Owing::Switch);
            } else {
                self.fail(
                    b,
                    step,
                    (
                        "only the switch makes the board publish on T",
                        Quantifier::Always,
                    ),
                    "no message on T: no press waits to be published".into(),
                    format!("{TOPIC} = {payload}"),
                    // After a press the board rightly publishes on T: what shows a
                    // press published twice is the relay it leaves.
                    if self.stimulus_is_press() {
                        vec![relay_check(&name, self.boards[b].model.relay)]
                    } else {
                        vec![no_publish_check(&name, TOPIC)]
                    },
                );
            }
        } else if *topic == state_topic() {
            self.boards[b].retained_state = if dropped {
                None
            } else {
                Some(payload.as_text().map(str::to_string))
            };
        } else if *topic == status_topic() && payload.0.as_ref() == b"online" {
            self.boards[b].owed.retain(|o| o.what != Owing::Online);
        }
    }

    /// Judges what is due by `now_us`: settled boards against the model, and what they
    /// owe against its deadline.
    fn due(&mut self, now_us: u64) {
        for b in 0..self.boards.len() {
            let watched = &self.boards[b];
            let name = watched.name.clone();
            if let Some(owed) = watched.owed.iter().find(|o| o.by_us < now_us).cloned() {
                let step = owed.step.min(self.step);
                let (invariant, expected, checks) = match owed.what {
                    Owing::Online => (
                        "after every (re)connect T/status is online",
                        format!("{} = online after the CONNACK", status_topic()),
                        vec![message_check(&name, &status_topic(), "online")],
                    ),
                    Owing::Switch => (
                        "a press made while offline is published after the board reconnects",
                        format!("{TOPIC} = {}", model::on_off(watched.model.relay)),
                        vec![message_check(&name, TOPIC, model::on_off(watched.model.relay))],
                    ),
                    Owing::Warning => (
                        "an invalid command is reported",
                        "HIL warn=invalid_payload".into(),
                        vec![format!(
                            "expect_serial: {{ board: {name}, regex: \"^HIL warn=invalid_payload$\", within: 1s }}"
                        )],
                    ),
                    Owing::Reconnect { bound } => (
                        "the board reconnects within its backoff bound",
                        format!("connected within {} of the outage's end", humantime::format_duration(bound)),
                        vec![format!("expect_connected: {{ client: {name}, within: 1s }}")],
                    ),
                };
                self.fail(
                    b,
                    step,
                    (invariant, Quantifier::Eventually),
                    expected,
                    "nothing by the deadline".into(),
                    checks,
                );
                return;
            }
            let settled = now_us.saturating_sub(watched.active_us) >= SETTLE.as_micros() as u64;
            if !settled || watched.checked {
                continue;
            }
            self.boards[b].checked = true;
            let watched = &self.boards[b];
            let wanted = watched.model.relay;
            if watched.relay != wanted {
                let checks = vec![relay_check(&name, wanted)];
                let step = self.step;
                self.fail(
                    b,
                    step,
                    (
                        "a settled board's relay equals the model's",
                        Quantifier::Always,
                    ),
                    format!("relay {}", model::on_off(wanted)),
                    format!("relay {}", model::on_off(watched.relay)),
                    checks,
                );
                return;
            }
            let want = model::on_off(wanted);
            if let (true, Some(retained)) = (watched.model.connected, &watched.retained_state) {
                if retained.as_deref() != Some(want) {
                    let observed = format!("{} retained: {retained:?}", state_topic());
                    let step = self.step;
                    self.fail(
                        b,
                        step,
                        ("T/state (retained) says what the relay is", Quantifier::Always),
                        format!("{} = {want}", state_topic()),
                        observed,
                        vec![
                            format!("connect: {{ client: {CHECKER} }}"),
                            format!(
                                "expect_message: {{ topic: {}, payload: {want}, retain: true, to: {CHECKER}, within: 1s }}",
                                state_topic()
                            ),
                        ],
                    );
                    return;
                }
            }
        }
    }
}

fn mqtt_client(event: &Event) -> Option<&String> {
    match &event.body {
        EventBody::Mqtt { client, .. } => client.as_ref(),
        _ => None,
    }
}

fn status_topic() -> String {
    format!("{TOPIC}/status")
}

fn state_topic() -> String {
    format!("{TOPIC}/state")
}

/// The relay after the board has settled: a relay that is right at first and wrong once
/// the board's own echo came back must fail too.
fn relay_check(board: &str, on: bool) -> String {
    format!(
        "wait: {{ for: {}ms }}\n  - expect_relay: {{ board: {board}, state: {}, within: 1s }}",
        SETTLE.as_millis() * 2,
        model::on_off(on)
    )
}

fn no_publish_check(board: &str, topic: &str) -> String {
    format!("expect_no_message: {{ topic: \"{topic}\", from: {board}, for: 1s }}")
}

fn message_check(board: &str, topic: &str, payload: &str) -> String {
    format!(
        "expect_message: {{ topic: {topic}, payload: \"{payload}\", from: {board}, within: 2s }}"
    )
}

fn will_check(board: &str) -> String {
    format!(
        "expect_trace: {{ within: 1s, events: [ {{ kind: mqtt, packet: connect, client: {board}, will: {{ topic: {}, payload: offline, qos: 1, retain: true }} }} ] }}",
        status_topic()
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::trace::{CloseReason, ConnackCode};

    fn at(t_ms: u64, body: EventBody) -> Arc<Event> {
        Arc::new(Event {
            seq: t_ms,
            t_us: t_ms * 1000,
            body,
        })
    }

    fn lamp_connected(t_ms: u64) -> Arc<Event> {
        at(
            t_ms,
            EventBody::Mqtt {
                conn: 1,
                client: Some("lamp".into()),
                dir: Direction::ToClient,
                packet: Packet::Connack {
                    session_present: false,
                    code: ConnackCode::Success,
                },
            },
        )
    }

    fn broker(t_ms: u64, action: BrokerAction) -> Arc<Event> {
        at(
            t_ms,
            EventBody::Broker {
                action,
                addr: "127.0.0.1:1883".into(),
            },
        )
    }

    fn partition(t_ms: u64, detail: &str) -> Arc<Event> {
        at(
            t_ms,
            EventBody::Fault {
                fault: "partition".into(),
                target: Some("lamp".into()),
                detail: detail.into(),
            },
        )
    }

    /// A partition that starts before the board is back from a broker restart: the
    /// reconnect is owed from the partition's end, not from the restart's.
    #[test]
    fn an_outage_during_a_reconnect_moves_the_reconnect_to_its_own_end() {
        let plan = Plan {
            boards: 1,
            phones: 0,
            ops: vec![Op::Wait(Duration::from_secs(20))],
        };
        let mut monitor = Monitor::new(&plan);
        monitor.see(lamp_connected(100));
        monitor.see(broker(200, BrokerAction::Down));
        monitor.see(at(
            201,
            EventBody::ConnClosed {
                conn: 1,
                client: Some("lamp".into()),
                reason: CloseReason::Cut,
                detail: None,
            },
        ));
        monitor.see(broker(650, BrokerAction::Restarted));
        monitor.see(partition(870, "for 10s"));
        // Long past the restart's bound, before the partition's end.
        monitor.due(5_000_000);
        assert!(monitor.violation.is_none());
        monitor.see(partition(10_870, "healed"));
        let bound = reconnect_bound(Duration::from_millis(10_669)).as_micros() as u64;
        monitor.due(10_870_000 + bound - 1_000);
        assert!(monitor.violation.is_none());
        monitor.due(10_870_000 + bound + 1_000);
        let violation = monitor.violation.expect("the reconnect is overdue");
        assert_eq!(
            violation.invariant,
            "the board reconnects within its backoff bound"
        );
    }
}
