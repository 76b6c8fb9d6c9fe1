//! Reporters: they render what the runner tells them and never steer the run.
//! The console tells a person the story; JUnit and JSON files tell CI the same facts.

mod console;
mod files;

pub use console::Console;
pub use files::{check_writable, JsonFile, JunitFile};

use std::fmt::Write as _;

use crate::runner::{ScenarioResult, SnapshotOutcome, Status};

/// Near misses beyond these are counted, not shown: the first ones are the telling ones.
const NEAR_MISSES_SHOWN: usize = 10;

/// The failure story of a scenario, as plain text: where, expected, observed, near
/// misses, a snapshot's diff, earlier attempts, the last trace events and where the full
/// trace is.
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
            for miss in failure.near_misses.iter().take(NEAR_MISSES_SHOWN) {
                let _ = writeln!(out, "  {miss}");
            }
            let more = failure.near_misses.len().saturating_sub(NEAR_MISSES_SHOWN);
            if more > 0 {
                let _ = writeln!(out, "  … and {more} more");
            }
        }
    }
    if let Some(SnapshotOutcome::Mismatched { diff, .. }) = &result.snapshot {
        let _ = writeln!(out, "diff:");
        for line in diff.lines() {
            let _ = writeln!(out, "  {line}");
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

#[cfg(test)]
mod tests {
    use std::path::PathBuf;
    use std::time::Duration;

    use super::*;
    use crate::runner::{Attempt, Failure};

    fn failed(near_misses: Vec<String>, snapshot: Option<SnapshotOutcome>) -> ScenarioResult {
        ScenarioResult {
            name: "s".into(),
            path: PathBuf::from("s.yaml"),
            status: Status::Failed,
            attempts: vec![Attempt {
                status: Status::Failed,
                duration: Duration::from_millis(5),
                waited: Duration::ZERO,
                failure: Some(Failure {
                    step: None,
                    expected: "something".into(),
                    observed: "nothing".into(),
                    near_misses,
                }),
                trace_tail: Vec::new(),
                skip_reason: None,
            }],
            trace_file: None,
            snapshot,
        }
    }

    #[test]
    fn near_misses_beyond_ten_are_counted() {
        let misses = (1..=13).map(|i| format!("miss {i}")).collect();
        let story = story(&failed(misses, None));
        assert!(story.contains("  miss 10\n"), "{story}");
        assert!(!story.contains("miss 11"), "{story}");
        assert!(story.contains("  … and 3 more\n"), "{story}");
    }

    #[test]
    fn a_snapshot_diff_has_its_own_heading() {
        let mismatch = SnapshotOutcome::Mismatched {
            file: PathBuf::from("s.snap"),
            new_file: PathBuf::from("s.snap.new"),
            diff: "-old\n+new\n".into(),
        };
        let story = story(&failed(Vec::new(), Some(mismatch)));
        assert!(story.contains("diff:\n  -old\n  +new\n"), "{story}");
        assert!(!story.contains("near misses"), "{story}");
    }
}
