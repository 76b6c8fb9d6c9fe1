//! What the YAML shape cannot say about a scenario: unique actor names, known profiles,
//! and each step's own checks (in its file under `crate::steps`). The first problem found
//! is reported, at the step that has it.

use std::collections::HashSet;

use super::{Location, Scenario};
use crate::steps::{all_steps, Checks, DeclaredActors, MAX_DURATION};

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

/// Checks a scenario; `profiles` are the board profiles a scenario may name.
pub(super) fn check(scenario: &Scenario, profiles: &[&str]) -> Result<(), Problem> {
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
        if !profiles.contains(&board.spec.profile.as_str()) {
            return Err(field_problem(
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
    if scenario.timeout > MAX_DURATION {
        return Err(field_problem(
            Location { line: 1, column: 1 },
            "timeout",
            format!(
                "`timeout: {}` is longer than an hour",
                humantime::format_duration(scenario.timeout)
            ),
            "a scenario runs at most 1h",
        ));
    }
    let cast = DeclaredActors {
        boards: scenario.boards.iter().map(|b| b.name.clone()).collect(),
        clients: scenario.clients.iter().map(|c| c.name.clone()).collect(),
    };
    for step in all_steps(&scenario.steps) {
        let mut checks = Checks::new(&cast);
        step.action.check(&mut checks);
        if let Some(first) = checks.into_problems().into_iter().next() {
            return Err(Problem {
                message: first.message,
                location: Some(step.location),
                field: first.field,
                help: Some(first.help),
            });
        }
    }
    Ok(())
}
