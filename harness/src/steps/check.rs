//! What the YAML shape cannot say about a step: that the actors it names are declared,
//! that topics, patterns and limits make sense. Every problem of a step is collected, so
//! `hil check` reports them all at once.

use std::collections::BTreeSet;
use std::time::Duration;

/// The longest wait any step may ask for.
pub const MAX_DURATION: Duration = Duration::from_secs(3600);

/// One thing wrong with a step.
#[derive(Debug, Clone, PartialEq)]
pub struct Problem {
    pub message: String,
    /// The field whose value is wrong, looked up in the text from the step on.
    pub field: Option<&'static str>,
    pub help: String,
}

/// The actors a scenario declares: who its steps may name.
#[derive(Debug, Clone, Default)]
pub struct DeclaredActors {
    pub boards: BTreeSet<String>,
    pub clients: BTreeSet<String>,
}

/// Collects the problems of one step.
pub struct Checks<'c> {
    cast: &'c DeclaredActors,
    /// The scenario's timeout: no wait of a step may outlast it.
    timeout: Duration,
    problems: Vec<Problem>,
}

fn declared<'n>(names: impl Iterator<Item = &'n String>) -> String {
    let names: Vec<&str> = names.map(String::as_str).collect();
    if names.is_empty() {
        "none are declared".into()
    } else {
        format!("declared: {}", names.join(", "))
    }
}

impl<'c> Checks<'c> {
    pub fn new(cast: &'c DeclaredActors, timeout: Duration) -> Checks<'c> {
        Checks {
            cast,
            timeout,
            problems: Vec::new(),
        }
    }

    pub fn into_problems(self) -> Vec<Problem> {
        self.problems
    }

    /// A problem with the step as a whole.
    pub fn problem(&mut self, message: impl Into<String>, help: impl Into<String>) {
        self.problems.push(Problem {
            message: message.into(),
            field: None,
            help: help.into(),
        });
    }

    /// A problem with the value of `field`.
    pub fn field(
        &mut self,
        field: &'static str,
        message: impl Into<String>,
        help: impl Into<String>,
    ) {
        self.problems.push(Problem {
            message: message.into(),
            field: Some(field),
            help: help.into(),
        });
    }

    /// `name` is a declared board or client.
    pub fn actor(&mut self, field: &'static str, name: &str) {
        let cast = self.cast;
        if cast.boards.contains(name) || cast.clients.contains(name) {
            return;
        }
        self.field(
            field,
            format!("`{field}: {name}` names no board or client"),
            format!(
                "declare it under `boards:` or `clients:` ({})",
                declared(cast.boards.iter().chain(&cast.clients))
            ),
        );
    }

    /// `name` is a declared harness client.
    pub fn client(&mut self, field: &'static str, name: &str) {
        let cast = self.cast;
        if cast.clients.contains(name) {
            return;
        }
        let why = if cast.boards.contains(name) {
            format!("`{name}` is a board; this step drives a harness client")
        } else {
            format!("`{field}: {name}` names no client")
        };
        self.field(
            field,
            why,
            format!(
                "declare it under `clients:` ({})",
                declared(cast.clients.iter())
            ),
        );
    }

    /// `name` is a declared board.
    pub fn board(&mut self, name: &str) {
        let cast = self.cast;
        if cast.boards.contains(name) {
            return;
        }
        let why = if cast.clients.contains(name) {
            format!("`{name}` is a client; this step drives a board")
        } else {
            format!("`board: {name}` names no board")
        };
        self.field(
            "board",
            why,
            format!(
                "declare it under `boards:` ({})",
                declared(cast.boards.iter())
            ),
        );
    }

    /// Exactly one of `client` or `board`, and declared: the actor a fault hits.
    pub fn fault_target(&mut self, client: Option<&str>, board: Option<&str>) {
        match (client, board) {
            (Some(client), None) => self.client("client", client),
            (None, Some(board)) => self.board(board),
            _ => self.problem(
                "name exactly one of `client` or `board`",
                "a fault hits one actor's connections, e.g. `{ board: lamp, for: 2s }`",
            ),
        }
    }

    /// A topic to publish to: concrete, valid.
    pub fn topic(&mut self, topic: &str) {
        if rumqttc::has_wildcards(topic) {
            self.field(
                "topic",
                format!("cannot publish to `{topic}`: `+` and `#` are for subscriptions"),
                "publish to one concrete topic, e.g. living_room_lights",
            );
        } else if topic.is_empty() || !rumqttc::valid_topic(topic) {
            self.field(
                "topic",
                format!("`{topic}` is not a valid topic"),
                "a topic is non-empty text; levels are separated by `/`",
            );
        }
    }

    /// A topic filter, in the step's `topic` field.
    pub fn filter(&mut self, filter: &str) {
        self.filter_in("topic", filter);
    }

    /// A topic filter, in `field`.
    pub fn filter_in(&mut self, field: &'static str, filter: &str) {
        if filter.is_empty() || !rumqttc::valid_filter(filter) {
            self.field(
                field,
                format!("`{filter}` is not a valid topic filter"),
                "`+` stands alone for one level, `#` only as the last level: a/+/c, a/#",
            );
        }
    }

    pub fn qos(&mut self, qos: u8) {
        if qos > 2 {
            self.field(
                "qos",
                format!("qos {qos} does not exist"),
                "MQTT has qos 0, 1 and 2",
            );
        }
    }

    pub fn regex(&mut self, field: &'static str, pattern: &str) {
        if let Err(e) = regex::Regex::new(pattern) {
            let detail = e.to_string().lines().last().unwrap_or_default().to_string();
            self.field(
                field,
                format!("invalid regex /{pattern}/: {detail}"),
                "check the pattern (Rust regex syntax)",
            );
        }
    }

    /// A wait of the step: at most an hour, and within the scenario's timeout.
    pub fn duration(&mut self, field: &'static str, value: Duration) {
        let shown = humantime::format_duration(value);
        if value > MAX_DURATION {
            self.field(
                field,
                format!("`{field}: {shown}` is longer than an hour"),
                "a scenario step waits at most 1h",
            );
        } else if value > self.timeout {
            self.field(
                field,
                format!(
                    "`{field}: {shown}` is longer than the scenario's timeout of {}",
                    humantime::format_duration(self.timeout)
                ),
                "the scenario would time out first: raise `timeout:` or shorten the wait",
            );
        }
    }
}
