//! What the YAML shape cannot say: references between actors and steps, topics,
//! patterns, limits. The first problem found is reported, at the step that has it.

use std::collections::HashSet;
use std::time::Duration;

use super::load::all_steps;
use super::{Action, FaultTarget, Location, Scenario, Step};

/// The longest wait any step may ask for.
const MAX_DURATION: Duration = Duration::from_secs(3600);
const MAX_REPEAT: usize = 10_000;

pub(super) struct Problem {
    pub message: String,
    pub location: Option<Location>,
    /// The field whose value is wrong, looked up in the text from `location` on.
    pub field: Option<&'static str>,
    pub help: Option<String>,
}

fn problem(location: Location, message: impl Into<String>, help: impl Into<String>) -> Problem {
    Problem {
        message: message.into(),
        location: Some(location),
        field: None,
        help: Some(help.into()),
    }
}

/// A problem with the value of `field`, in the step (or file) at `location`.
fn field_problem(
    location: Location,
    field: &'static str,
    message: impl Into<String>,
    help: impl Into<String>,
) -> Problem {
    Problem {
        field: Some(field),
        ..problem(location, message, help)
    }
}

/// Who the steps may name.
struct Cast {
    boards: HashSet<String>,
    clients: HashSet<String>,
}

impl Cast {
    fn describe(&self) -> String {
        let mut names: Vec<&str> = self
            .boards
            .iter()
            .chain(&self.clients)
            .map(String::as_str)
            .collect();
        names.sort_unstable();
        if names.is_empty() {
            "none are declared".into()
        } else {
            format!("declared: {}", names.join(", "))
        }
    }

    fn actor(&self, at: Location, field: &'static str, name: &str) -> Result<(), Problem> {
        if self.boards.contains(name) || self.clients.contains(name) {
            return Ok(());
        }
        Err(field_problem(
            at,
            field,
            format!("`{field}: {name}` names no board or client"),
            format!(
                "declare it under `boards:` or `clients:` ({})",
                self.describe()
            ),
        ))
    }

    fn client(&self, at: Location, field: &'static str, name: &str) -> Result<(), Problem> {
        if self.clients.contains(name) {
            return Ok(());
        }
        let why = if self.boards.contains(name) {
            format!("`{name}` is a board; this step drives a harness client")
        } else {
            format!("`{field}: {name}` names no client")
        };
        Err(field_problem(
            at,
            field,
            why,
            format!("declare it under `clients:` ({})", self.describe()),
        ))
    }

    fn board(&self, at: Location, name: &str) -> Result<(), Problem> {
        if self.boards.contains(name) {
            return Ok(());
        }
        let why = if self.clients.contains(name) {
            format!("`{name}` is a client; this step drives a board")
        } else {
            format!("`board: {name}` names no board")
        };
        Err(field_problem(
            at,
            "board",
            why,
            format!("declare it under `boards:` ({})", self.describe()),
        ))
    }
}

pub(super) fn check(scenario: &Scenario) -> Result<(), Problem> {
    if scenario.name.trim().is_empty() {
        return Err(Problem {
            message: "the scenario's `name` is empty".into(),
            location: Some(Location { line: 1, column: 1 }),
            field: None,
            help: Some("give it a name that says what it checks".into()),
        });
    }
    let mut seen = HashSet::new();
    for (name, at) in scenario
        .boards
        .iter()
        .map(|b| (&b.name, b.location))
        .chain(scenario.clients.iter().map(|c| (&c.name, c.location)))
    {
        if !seen.insert(name.clone()) {
            return Err(problem(
                at,
                format!("`{name}` is declared twice"),
                "give every board and client its own name",
            ));
        }
    }
    for board in &scenario.boards {
        let known = crate::board::profile::known_names();
        if !known.contains(&board.spec.profile.as_str()) {
            return Err(field_problem(
                board.location,
                "profile",
                format!("unknown board profile `{}`", board.spec.profile),
                format!(
                    "use `sim` (the simulated board) or a bench profile: {}",
                    known.join(", ")
                ),
            ));
        }
    }
    for client in &scenario.clients {
        if let Some(protocol) = client.spec.protocol.filter(|p| !matches!(p, 4 | 5)) {
            return Err(field_problem(
                client.location,
                "protocol",
                format!("client `{}` asks for protocol {protocol}", client.name),
                "use 4 (MQTT 3.1.1) or 5 (MQTT 5)",
            ));
        }
    }
    if scenario.steps.is_empty() {
        return Err(Problem {
            message: "the scenario has no steps".into(),
            location: Some(Location { line: 1, column: 1 }),
            field: None,
            help: Some("add `steps:` with at least one step".into()),
        });
    }
    duration(Location { line: 1, column: 1 }, "timeout", scenario.timeout)?;
    let cast = Cast {
        boards: scenario.boards.iter().map(|b| b.name.clone()).collect(),
        clients: scenario.clients.iter().map(|c| c.name.clone()).collect(),
    };
    for step in all_steps(&scenario.steps) {
        check_step(&cast, step)?;
    }
    Ok(())
}

/// Exactly one of `client` or `board`, and declared.
fn fault_target(cast: &Cast, at: Location, target: FaultTarget<'_>) -> Result<(), Problem> {
    match (target.client, target.board) {
        (Some(client), None) => cast.client(at, "client", client),
        (None, Some(board)) => cast.board(at, board),
        _ => Err(problem(
            at,
            "name exactly one of `client` or `board`",
            "a fault hits one actor's connections, e.g. `{ board: lamp, for: 2s }`",
        )),
    }
}

fn check_step(cast: &Cast, step: &Step) -> Result<(), Problem> {
    let at = step.location;
    match &step.action {
        Action::BrokerRestart(restart) => duration(at, "down_for", restart.down_for),
        Action::Partition(partition) => {
            fault_target(cast, at, partition.target())?;
            duration(at, "for", partition.duration)
        }
        Action::Delay(delay) => {
            fault_target(cast, at, delay.target())?;
            duration(at, "by", delay.by)?;
            if delay.jitter > delay.by {
                return Err(field_problem(
                    at,
                    "jitter",
                    "`jitter` is larger than `by`",
                    "a frame cannot leave before it arrived: keep jitter ≤ by",
                ));
            }
            Ok(())
        }
        Action::Drop(drop) => {
            fault_target(cast, at, drop.target())?;
            match (drop.count, drop.ratio) {
                (Some(count), None) if count > 0 => Ok(()),
                (None, Some(ratio)) if ratio > 0.0 && ratio <= 1.0 => Ok(()),
                _ => Err(problem(
                    at,
                    "give `count` (at least 1) or `ratio` (above 0, at most 1), not both",
                    "e.g. `{ client: phone, direction: to_broker, count: 1 }`",
                )),
            }
        }
        Action::Duplicate(duplicate) => fault_target(cast, at, duplicate.target()),
        Action::SerialNoise(noise) => {
            cast.board(at, &noise.board)?;
            if noise.bytes == 0 || noise.bytes > 1 << 20 {
                return Err(field_problem(
                    at,
                    "bytes",
                    format!("`bytes: {}` is out of range", noise.bytes),
                    "1 to 1048576 bytes",
                ));
            }
            Ok(())
        }
        Action::Publish(publish) => {
            cast.client(at, "as", &publish.client)?;
            topic(at, &publish.topic)?;
            qos(at, publish.qos)
        }
        Action::ExpectMessage(expect) => {
            filter(at, &expect.topic)?;
            let matchers = [
                expect.payload.is_some(),
                expect.payload_regex.is_some(),
                expect.payload_json.is_some(),
            ];
            if matchers.iter().filter(|given| **given).count() > 1 {
                return Err(problem(
                    at,
                    "more than one of `payload`, `payload_regex`, `payload_json`",
                    "keep one: they are different ways to say what the payload must be",
                ));
            }
            if let Some(pattern) = &expect.payload_regex {
                regex(at, "payload_regex", pattern)?;
            }
            if let Some(serde_json::Value::String(text)) = &expect.payload_json {
                serde_json::from_str::<serde_json::Value>(text).map_err(|e| {
                    field_problem(
                        at,
                        "payload_json",
                        format!("`payload_json` is not valid JSON: {e}"),
                        "write the JSON value, e.g. `payload_json: {state: on}`",
                    )
                })?;
            }
            if let Some(q) = expect.qos {
                qos(at, q)?;
            }
            for (field, name) in [("from", &expect.from), ("to", &expect.to)] {
                if let Some(name) = name {
                    cast.actor(at, field, name)?;
                }
            }
            if expect.count == Some(0) {
                return Err(field_problem(
                    at,
                    "count",
                    "`count: 0` expects nothing",
                    "use `expect_no_message` to say that nothing arrives",
                ));
            }
            duration(at, "within", expect.within)
        }
        Action::ExpectNoMessage(expect) => {
            filter(at, &expect.topic)?;
            if let Some(from) = &expect.from {
                cast.actor(at, "from", from)?;
            }
            duration(at, "for", expect.duration)
        }
        Action::ExpectTrace(expect) => {
            if expect.events.is_empty() || expect.events.iter().any(|e| !e.is_object()) {
                return Err(problem(
                    at,
                    "`events` must be a non-empty list of partial events (maps)",
                    "e.g. `- { kind: mqtt, packet: publish, topic: living_room_lights }`",
                ));
            }
            for partial in &expect.events {
                crate::expect::entry_gap(partial).map_err(|message| {
                    problem(at, message, "e.g. `gap: { min: 200ms, max: 300ms }`")
                })?;
            }
            duration(at, "within", expect.within)
        }
        Action::Connect(client) | Action::Disconnect(client) => {
            cast.client(at, "client", &client.client)
        }
        Action::ExpectConnected(expect) | Action::ExpectDisconnected(expect) => {
            cast.actor(at, "client", &expect.client)?;
            duration(at, "within", expect.within)
        }
        Action::Wait(wait) => duration(at, "for", wait.duration),
        Action::Repeat(repeat) => {
            if repeat.times == 0 || repeat.times > MAX_REPEAT {
                return Err(field_problem(
                    at,
                    "times",
                    format!("`times: {}` is out of range", repeat.times),
                    format!("repeat 1 to {MAX_REPEAT} times"),
                ));
            }
            if repeat.steps.is_empty() {
                return Err(problem(
                    at,
                    "`repeat` has no steps",
                    "add `steps:` under it",
                ));
            }
            Ok(())
        }
        Action::ExpectRelay(expect) => {
            cast.board(at, &expect.board)?;
            duration(at, "within", expect.within)
        }
        Action::PressSwitch(press) => cast.board(at, &press.board),
        Action::ExpectSerial(expect) => {
            cast.board(at, &expect.board)?;
            regex(at, "regex", &expect.regex)?;
            duration(at, "within", expect.within)
        }
        Action::SendSerial(send) => cast.board(at, &send.board),
        Action::ExpectBoot(expect) => {
            cast.board(at, &expect.board)?;
            duration(at, "within", expect.within)
        }
        Action::Reset(board) => cast.board(at, &board.board),
        Action::PowerCycle(cycle) => {
            cast.board(at, &cycle.board)?;
            duration(at, "off_for", cycle.off_for)
        }
        Action::Wifi(wifi) => cast.board(at, &wifi.board),
    }
}

fn topic(at: Location, topic: &str) -> Result<(), Problem> {
    if rumqttc::has_wildcards(topic) {
        return Err(field_problem(
            at,
            "topic",
            format!("cannot publish to `{topic}`: `+` and `#` are for subscriptions"),
            "publish to one concrete topic, e.g. living_room_lights",
        ));
    }
    if topic.is_empty() || !rumqttc::valid_topic(topic) {
        return Err(field_problem(
            at,
            "topic",
            format!("`{topic}` is not a valid topic"),
            "a topic is non-empty text; levels are separated by `/`",
        ));
    }
    Ok(())
}

fn filter(at: Location, filter: &str) -> Result<(), Problem> {
    if filter.is_empty() || !rumqttc::valid_filter(filter) {
        return Err(field_problem(
            at,
            "topic",
            format!("`{filter}` is not a valid topic filter"),
            "`+` stands alone for one level, `#` only as the last level: a/+/c, a/#",
        ));
    }
    Ok(())
}

fn qos(at: Location, qos: u8) -> Result<(), Problem> {
    if qos > 2 {
        return Err(field_problem(
            at,
            "qos",
            format!("qos {qos} does not exist"),
            "MQTT has qos 0, 1 and 2",
        ));
    }
    Ok(())
}

fn regex(at: Location, field: &'static str, pattern: &str) -> Result<(), Problem> {
    regex::Regex::new(pattern).map(|_| ()).map_err(|e| {
        let detail = e.to_string().lines().last().unwrap_or_default().to_string();
        field_problem(
            at,
            field,
            format!("invalid regex /{pattern}/: {detail}"),
            "check the pattern (Rust regex syntax)",
        )
    })
}

fn duration(at: Location, field: &'static str, value: Duration) -> Result<(), Problem> {
    if value > MAX_DURATION {
        return Err(field_problem(
            at,
            field,
            format!(
                "`{field}: {}` is longer than an hour",
                humantime::format_duration(value)
            ),
            "a scenario step waits at most 1h",
        ));
    }
    Ok(())
}
