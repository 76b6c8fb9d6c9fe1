//! GitHub Actions annotations (`GITHUB_ACTIONS=true`): each failing step printed as an
//! `::error file=…,line=…,col=…::` workflow command, so GitHub marks the scenario
//! file's line; a flaky scenario as a `::warning`.

use std::io::Write as _;

use super::Reporter;
use crate::runner::{RunEvent, ScenarioResult, Status};

/// The workflow command for a scenario, if it gets one.
pub fn annotation(result: &ScenarioResult) -> Option<String> {
    let level = match result.status {
        Status::Failed | Status::Error => "error",
        Status::Flaky => "warning",
        _ => return None,
    };
    let failure = match result.status {
        Status::Flaky => result
            .attempts
            .iter()
            .rev()
            .find_map(|a| a.failure.as_ref()),
        _ => result.last().failure.as_ref(),
    };
    let (file, line, column) = match failure.and_then(|f| f.step.as_ref()) {
        Some(step) => (step.file.display().to_string(), step.line, step.column),
        None => (result.path.display().to_string(), 1, 1),
    };
    let message = match (result.status, failure) {
        (Status::Flaky, Some(f)) => format!(
            "flaky: passed on a retry after: expected {}; {}",
            f.expected, f.observed
        ),
        (_, Some(f)) => format!("expected {}; {}", f.expected, f.observed),
        (_, None) => "failed".to_string(),
    };
    Some(format!(
        "::{level} file={},line={line},col={column},title={}::{}",
        property(&file),
        property(&result.name),
        data(&message)
    ))
}

/// A command's message: `%`, CR and LF escaped as GitHub's runner reads them.
fn data(text: &str) -> String {
    text.replace('%', "%25")
        .replace('\r', "%0D")
        .replace('\n', "%0A")
}

/// A command's property value: also `:` and `,`, which end it.
fn property(text: &str) -> String {
    data(text).replace(':', "%3A").replace(',', "%2C")
}

/// Prints each scenario's annotation on stdout as it finishes.
pub struct Annotations;

impl Reporter for Annotations {
    fn report(&mut self, event: &RunEvent) {
        if let RunEvent::ScenarioFinished(result) = event {
            if let Some(line) = annotation(result) {
                let mut out = std::io::stdout().lock();
                let _ = writeln!(out, "{line}");
                let _ = out.flush();
            }
        }
    }
}
