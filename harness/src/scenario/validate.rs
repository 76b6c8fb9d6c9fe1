//! What the YAML shape cannot say about a scenario: unique actor names, known profiles,
//! and each step's own checks (in its file under `crate::steps`). Every problem is
//! reported, each at the step (or declaration) that has it.

use std::collections::HashSet;

use super::{Location, Scenario};
use crate::steps::{all_steps, Action, Checks, DeclaredActors, Role, MAX_DURATION};

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

/// Checks a scenario; `profiles` are the board profiles a scenario may name. Every
/// problem is reported, in file order; the first of a file always comes first.
pub(super) fn check(scenario: &Scenario, profiles: &[&str]) -> Vec<Problem> {
    let start = Location { line: 1, column: 1 };
    let mut problems = Vec::new();
    if scenario.name.trim().is_empty() {
        problems.push(problem(
            start,
            "the scenario's `name` is empty",
            "give it a name that says what it checks",
        ));
    }
    let mut seen = HashSet::new();
    for (name, at) in scenario
        .boards
        .iter()
        .map(|b| (&b.name, b.location))
        .chain(scenario.clients.iter().map(|c| (&c.name, c.location)))
    {
        if !seen.insert(name.clone()) {
            problems.push(problem(
                at,
                format!("`{name}` is declared twice"),
                "give every board and client its own name",
            ));
        }
    }
    for board in &scenario.boards {
        if !profiles.contains(&board.spec.profile.as_str()) {
            problems.push(field_problem(
                board.location,
                "profile",
                format!("unknown board profile `{}`", board.spec.profile),
                format!(
                    "use `sim` (the simulated board) or a bench profile: {}",
                    profiles.join(", ")
                ),
            ));
        }
    }
    for client in &scenario.clients {
        if let Some(protocol) = client.spec.protocol.filter(|p| !matches!(p, 4 | 5)) {
            problems.push(field_problem(
                client.location,
                "protocol",
                format!("client `{}` asks for protocol {protocol}", client.name),
                "use 4 (MQTT 3.1.1) or 5 (MQTT 5)",
            ));
        }
    }
    if scenario.steps.is_empty() {
        problems.push(field_problem(
            start,
            "steps",
            "the scenario has no steps",
            "add at least one step under `steps:`, e.g. `- expect_connected: { client: lamp }`",
        ));
    }
    if scenario.timeout > MAX_DURATION {
        problems.push(field_problem(
            start,
            "timeout",
            format!(
                "`timeout: {}` is longer than an hour",
                humantime::format_duration(scenario.timeout)
            ),
            "a scenario runs at most 1h",
        ));
    }
    let declared = DeclaredActors {
        boards: scenario.boards.iter().map(|b| b.name.clone()).collect(),
        clients: scenario.clients.iter().map(|c| c.name.clone()).collect(),
    };
    for step in all_steps(&scenario.steps) {
        let mut checks = Checks::new(&declared, scenario.timeout);
        step.action.check(&mut checks);
        problems.extend(checks.into_problems().into_iter().map(|found| Problem {
            message: found.message,
            location: Some(step.location),
            field: found.field,
            help: Some(found.help),
        }));
    }
    problems.sort_by_key(|problem| problem.location);
    problems
}

/// What is allowed but likely a mistake: a publish on a board's topic before anything
/// waits, which the board cannot hear yet (it subscribes only once it has booted and
/// connected); a retained one it hears on subscribing. Each warning is `line:column` and
/// the words.
pub fn warnings(scenario: &Scenario) -> Vec<(Location, String)> {
    let mut warnings = Vec::new();
    for step in &scenario.steps {
        match (&step.action, step.action.role()) {
            (_, Role::Expectation) | (Action::Wait(_), _) => break,
            (Action::Publish(publish), _) if !publish.retain => {
                let hears = scenario.boards.iter().find(|board| {
                    let topic = board
                        .spec
                        .topic
                        .as_deref()
                        .unwrap_or(hil_firmware::DEFAULT_TOPIC);
                    publish.topic == topic
                });
                if let Some(board) = hears {
                    warnings.push((
                        step.location,
                        format!(
                            "`publish` to {} before anything waits for {name}: {name} cannot hear \
                             it until it has connected and subscribed; start with \
                             `expect_connected: {{ client: {name} }}`",
                            publish.topic,
                            name = board.name
                        ),
                    ));
                }
            }
            _ => {}
        }
    }
    warnings
}
