//! What running scenarios produced: the facts every reporter renders.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use serde::Serialize;

use crate::scenario::Location;
use crate::snapshot::SnapshotOutcome;
use crate::steps::Mismatch;
use crate::trace::Event;

/// How a scenario ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    Passed,
    /// Failed at first, then passed on a retry: reported, not hidden.
    Flaky,
    Failed,
    /// The harness itself failed (broker, port, disk, board).
    Error,
    /// Stopped by Ctrl-C or SIGTERM.
    Interrupted,
    /// Not run: a step needs the simulator, and its board is played by a bench board.
    Skipped,
}

/// The step a failure happened in.
#[derive(Debug, Clone, Serialize)]
pub struct StepRef {
    /// Where the step stands: `3` for the third step, `3.2` for the second step inside
    /// the third (a `repeat`), numbered again on each pass.
    pub number: String,
    pub name: String,
    pub file: PathBuf,
    pub line: usize,
    pub column: usize,
}

impl StepRef {
    pub fn new(number: String, name: &str, file: &std::path::Path, location: Location) -> StepRef {
        StepRef {
            number,
            name: name.to_string(),
            file: file.to_path_buf(),
            line: location.line,
            column: location.column,
        }
    }
}

/// Why an attempt did not pass, told as a story: where, what was expected, what was seen.
#[derive(Debug, Clone, Serialize)]
pub struct Failure {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub step: Option<StepRef>,
    pub expected: String,
    pub observed: String,
    /// Publishes that came close, each saying what was different.
    pub near_misses: Vec<String>,
    /// For an error of the harness rather than a verdict about the device: what kind
    /// (`port_busy`, `board_silent`, `wrong_profile`, …), so that CI can tell them apart.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error_kind: Option<&'static str>,
}

impl Failure {
    /// A step's mismatch, told at the step.
    pub fn at_step(step: Option<StepRef>, mismatch: Mismatch) -> Failure {
        Failure {
            step,
            expected: mismatch.expected,
            observed: mismatch.observed,
            near_misses: mismatch.near_misses,
            error_kind: None,
        }
    }

    /// One line: `file:line:col: step: expected …; observed …`.
    pub fn headline(&self) -> String {
        let place = match &self.step {
            Some(step) => format!(
                "{}:{}:{}: step {} `{}`: ",
                step.file.display(),
                step.line,
                step.column,
                step.number,
                step.name
            ),
            None => String::new(),
        };
        format!("{place}expected {}; {}", self.expected, self.observed)
    }
}

/// One run of one scenario.
#[derive(Debug, Clone, Serialize)]
pub struct Attempt {
    pub status: Status,
    #[serde(rename = "duration_ms", with = "milliseconds")]
    pub duration: Duration,
    /// Time the steps spent waiting (`wait`, and the part of each `within` actually used).
    #[serde(rename = "waited_ms", with = "milliseconds")]
    pub waited: Duration,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub failure: Option<Failure>,
    /// The last trace events, rendered as timeline lines.
    pub trace_tail: Vec<String>,
    /// Why the scenario was not run (status `skipped`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub skip_reason: Option<String>,
}

/// Who a scenario's actor is, for reports that draw one lifeline per actor.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, serde::Deserialize)]
pub struct Actor {
    /// As the scenario file names it.
    pub name: String,
    /// What it connects to the broker as.
    pub client_id: String,
    pub kind: ActorKind,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ActorKind {
    /// A harness MQTT client.
    Client,
    Board,
}

/// A scenario's result after all its attempts.
#[derive(Debug, Clone, Serialize)]
pub struct ScenarioResult {
    pub name: String,
    pub path: PathBuf,
    pub status: Status,
    /// Every attempt in order; the last one decided `status`.
    pub attempts: Vec<Attempt>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub trace_file: Option<PathBuf>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub snapshot: Option<SnapshotOutcome>,
    /// The scenario's clients and boards.
    pub actors: Vec<Actor>,
    /// The deciding attempt's events up to the end of its last step, when kept
    /// (`RunOptions::keep_traces`, and always for a scenario that did not pass). The
    /// JSON report writes them as `trace` when no trace file was kept.
    #[serde(skip)]
    pub trace: Vec<Arc<Event>>,
}

impl ScenarioResult {
    pub fn last(&self) -> &Attempt {
        self.attempts
            .last()
            .expect("a result has at least one attempt")
    }

    /// Wall time of the deciding attempt.
    pub fn duration(&self) -> Duration {
        self.last().duration
    }
}

/// A scenario that was not started, and why.
#[derive(Debug, Clone, Serialize)]
pub struct NotRun {
    pub name: String,
    pub path: PathBuf,
    pub reason: String,
}

/// Totals for the whole run.
#[derive(Debug, Clone, Default, Serialize)]
pub struct RunSummary {
    pub passed: usize,
    pub flaky: usize,
    pub failed: usize,
    pub errors: usize,
    pub interrupted: usize,
    /// Scenarios that cannot run on this bench (a simulator-only step).
    pub skipped: usize,
    /// Scenarios not started (fail-fast, interruption).
    pub not_run: usize,
    #[serde(rename = "duration_ms", with = "milliseconds")]
    pub duration: Duration,
    pub seed: u64,
    /// What this run could not see: set when it ran against an external broker.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub unobserved: Option<&'static str>,
    /// Which labgrid place (and exporter) played each bench role.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub labgrid: Vec<RolePlace>,
}

/// A bench role played on a labgrid place: a shard on a farm says which board it had.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RolePlace {
    pub role: String,
    /// The bench board of hil.toml.
    pub board: String,
    pub place: String,
    pub exporter: String,
}

impl RunSummary {
    pub fn add(&mut self, status: Status) {
        match status {
            Status::Passed => self.passed += 1,
            Status::Flaky => self.flaky += 1,
            Status::Failed => self.failed += 1,
            Status::Error => self.errors += 1,
            Status::Interrupted => self.interrupted += 1,
            Status::Skipped => self.skipped += 1,
        }
    }
}

/// Durations in reports are milliseconds with microsecond precision; their keys say so.
mod milliseconds {
    use serde::Serializer;
    use std::time::Duration;

    pub fn serialize<S: Serializer>(duration: &Duration, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_f64((duration.as_secs_f64() * 1e6).round() / 1e3)
    }
}
