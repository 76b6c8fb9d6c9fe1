//! Reporters: they render what the runner tells them and never steer the run.
//! The console tells a person the story; JUnit and JSON files tell CI the same facts.
//! They run on a thread of their own ([`ReportThread`]), fed over a channel, so the
//! runner never waits for a terminal or a disk.

mod annotations;
mod console;
mod files;
pub mod flow;
pub mod html;
mod markdown;
pub mod mermaid;
pub mod perfetto;
pub mod view;

pub use annotations::{annotation, Annotations};
pub use markdown::StepSummary;

pub use console::Console;
pub use files::{Format, JsonFile, Junit, JunitFile, ReportFile};
pub use html::HtmlFile;
pub use view::{ReportReadError, RunView};

use std::fmt::Write as _;

use crate::runner::{RunEvent, RunEvents, ScenarioResult, Status};
use crate::snapshot::SnapshotOutcome;

/// Renders run events (console, progress bar, files...) on the reporters' thread.
pub trait Reporter: Send {
    fn report(&mut self, event: &RunEvent);
    /// No event is waiting: a file reporter writes what it has taken in since.
    fn caught_up(&mut self) {}
    /// What went wrong while reporting (a file that could not be written), said at the
    /// end of the run.
    fn error(&self) -> Option<String> {
        None
    }
}

/// Events taken in between two writes at most, so a flood of events still reaches the
/// files now and then.
const BATCH: usize = 256;

/// The reporters on their own thread, draining the runner's events.
pub struct ReportThread {
    events: RunEvents,
    thread: std::thread::JoinHandle<Vec<String>>,
}

impl ReportThread {
    pub fn start(mut reporters: Vec<Box<dyn Reporter>>) -> std::io::Result<ReportThread> {
        let (events, queue) = std::sync::mpsc::channel::<RunEvent>();
        let thread = std::thread::Builder::new()
            .name("hil-reports".into())
            .spawn(move || {
                while let Ok(first) = queue.recv() {
                    let waiting = std::iter::from_fn(|| queue.try_recv().ok()).take(BATCH);
                    for event in std::iter::once(first).chain(waiting) {
                        for reporter in &mut reporters {
                            reporter.report(&event);
                        }
                    }
                    for reporter in &mut reporters {
                        reporter.caught_up();
                    }
                }
                reporters.iter().filter_map(|r| r.error()).collect()
            })?;
        Ok(ReportThread { events, thread })
    }

    /// Where the runner sends its events.
    pub fn events(&self) -> &RunEvents {
        &self.events
    }

    /// Waits until every event sent is rendered and written; returns the reporters'
    /// errors. Blocks: call it off the runtime thread.
    pub fn finish(self) -> Vec<String> {
        drop(self.events);
        self.thread
            .join()
            .unwrap_or_else(|_| vec!["a reporter stopped with a panic".into()])
    }
}

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
    if let Some(attempts) = attempts_line(result) {
        let _ = writeln!(out, "{attempts}; earlier failures:");
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

/// How the attempts went, when there were retries: `passed on attempt 2 (flaky)`,
/// `failed on 2 of 2 attempts`.
pub fn attempts_line(result: &ScenarioResult) -> Option<String> {
    let made = result.attempts.len();
    match result.status {
        _ if made < 2 => None,
        Status::Flaky => Some(format!("passed on attempt {made} (flaky)")),
        Status::Failed => Some(format!("failed on {made} of {made} attempts")),
        _ => None,
    }
}

/// A run's totals in words: passed and failed always, the other counts when not zero.
pub fn totals(summary: &crate::runner::RunSummary) -> Vec<(usize, &'static str)> {
    [
        (summary.passed, "passed"),
        (summary.failed, "failed"),
        (summary.flaky, "flaky"),
        (summary.errors, "errors"),
        (summary.interrupted, "interrupted"),
        (summary.skipped, "skipped"),
        (summary.not_run, "not run"),
    ]
    .into_iter()
    .enumerate()
    .filter(|(at, (count, _))| *at < 2 || *count > 0)
    .map(|(_, total)| total)
    .collect()
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
                    error_kind: None,
                }),
                trace_tail: Vec::new(),
                skip_reason: None,
            }],
            trace_file: None,
            snapshot,
            actors: Vec::new(),
            trace: Vec::new(),
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
            new_version: crate::snapshot::NewVersion::Written(PathBuf::from("s.snap.new")),
            diff: "-old\n+new\n".into(),
        };
        let story = story(&failed(Vec::new(), Some(mismatch)));
        assert!(story.contains("diff:\n  -old\n  +new\n"), "{story}");
        assert!(!story.contains("near misses"), "{story}");
    }

    /// Notes what it was told, in order, and says it failed once it caught up.
    struct Recorder(std::sync::Arc<std::sync::Mutex<Vec<String>>>);

    impl Reporter for Recorder {
        fn report(&mut self, event: &RunEvent) {
            let name = match event {
                RunEvent::Started { .. } => "started".to_string(),
                RunEvent::ScenarioStarted { name } => format!("start {name}"),
                RunEvent::ScenarioFinished(result) => format!("finish {}", result.name),
                RunEvent::NotRun(not_run) => format!("not run {}", not_run.name),
                RunEvent::Finished(_) => "finished".to_string(),
            };
            self.0.lock().unwrap().push(name);
        }

        fn caught_up(&mut self) {
            self.0.lock().unwrap().push("caught up".into());
        }

        fn error(&self) -> Option<String> {
            Some("cannot write x".into())
        }
    }

    #[test]
    fn the_report_thread_renders_every_event_in_order_and_returns_the_errors() {
        let seen = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let thread = ReportThread::start(vec![Box::new(Recorder(seen.clone()))]).unwrap();
        let events = thread.events().clone();
        events
            .send(RunEvent::Started {
                total: 1,
                jobs: 1,
                seed: 1,
                unobserved: None,
                labgrid: Vec::new(),
            })
            .unwrap();
        events
            .send(RunEvent::ScenarioStarted { name: "s".into() })
            .unwrap();
        events
            .send(RunEvent::ScenarioFinished(std::sync::Arc::new(failed(
                Vec::new(),
                None,
            ))))
            .unwrap();
        events
            .send(RunEvent::Finished(crate::runner::RunSummary::default()))
            .unwrap();
        drop(events);
        assert_eq!(thread.finish(), ["cannot write x"]);
        let seen = seen.lock().unwrap();
        let told: Vec<&str> = seen
            .iter()
            .map(String::as_str)
            .filter(|name| *name != "caught up")
            .collect();
        assert_eq!(told, ["started", "start s", "finish s", "finished"]);
        assert_eq!(seen.last().map(String::as_str), Some("caught up"));
    }
}
