//! Reporters: they render what the runner tells them and never steer the run.
//! The console tells a person the story; JUnit and JSON files tell CI the same facts.

mod console;
mod files;

pub use console::Console;
pub use files::{check_writable, JsonFile, JunitFile};

use std::fmt::Write as _;

use crate::runner::{ScenarioResult, Status};

/// The failure story of a scenario, as plain text: where, expected, observed, near
/// misses, earlier attempts, the last trace events and where the full trace is.
pub fn story(result: &ScenarioResult) -> String {
    let mut out = String::new();
    let attempt = result.last();
    if let Some(reason) = &attempt.skip_reason {
        let _ = writeln!(out, "skipped: {reason}");
    }
    if let Some(failure) = &attempt.failure {
        if let Some(step) = &failure.step {
            let _ = writeln!(
                out,
                "at {}:{}:{}, step {} `{}`",
                step.file.display(),
                step.line,
                step.column,
                step.number,
                step.name
            );
        }
        let _ = writeln!(out, "expected: {}", failure.expected);
        let _ = writeln!(out, "observed: {}", failure.observed);
        if !failure.near_misses.is_empty() {
            let _ = writeln!(out, "near misses:");
            for miss in &failure.near_misses {
                let _ = writeln!(out, "  {miss}");
            }
        }
    }
    if result.status == Status::Flaky {
        let _ = writeln!(
            out,
            "passed on attempt {} of {}; earlier failures:",
            result.attempts.len(),
            result.attempts.len()
        );
        for earlier in &result.attempts[..result.attempts.len() - 1] {
            if let Some(failure) = &earlier.failure {
                let _ = writeln!(out, "  {}", failure.headline());
            }
        }
    }
    if !attempt.trace_tail.is_empty() && result.status != Status::Passed {
        let _ = writeln!(out, "last {} trace events:", attempt.trace_tail.len());
        for line in &attempt.trace_tail {
            let _ = writeln!(out, "  {line}");
        }
    }
    if let Some(file) = &result.trace_file {
        let _ = writeln!(out, "trace: {}", file.display());
    }
    out
}

/// The word for a status in reports.
pub fn label(status: Status) -> &'static str {
    match status {
        Status::Passed => "PASS",
        Status::Flaky => "FLAKY",
        Status::Failed => "FAIL",
        Status::Error => "ERROR",
        Status::Interrupted => "INTERRUPTED",
        Status::Skipped => "SKIP",
    }
}
