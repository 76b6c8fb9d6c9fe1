//! A finished run as reports that draw it see it: read from a JSON report (`hil report`)
//! or taken from the runner's results (`hil run --html`) through the same JSON shape,
//! so a report rendered later is the one the run would have written.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde::Deserialize;

use crate::runner::{Actor, RunSummary, ScenarioResult};
use crate::trace::Event;

/// A run: its scenarios in report order and its totals.
#[derive(Debug, Clone, Deserialize)]
pub struct RunView {
    pub scenarios: Vec<ScenarioView>,
    pub summary: SummaryView,
}

#[derive(Debug, Clone, Default, Deserialize)]
pub struct SummaryView {
    pub passed: usize,
    pub flaky: usize,
    pub failed: usize,
    pub errors: usize,
    pub interrupted: usize,
    pub skipped: usize,
    pub not_run: usize,
    pub duration_ms: f64,
    pub seed: u64,
    #[serde(default)]
    pub unobserved: Option<String>,
}

/// One scenario: a result, or one that was not run (`status: not_run`, `reason`).
#[derive(Debug, Clone, Deserialize)]
pub struct ScenarioView {
    pub name: String,
    pub path: PathBuf,
    /// `passed`, `flaky`, `failed`, `error`, `interrupted`, `skipped`, `not_run`.
    pub status: String,
    #[serde(default)]
    pub reason: Option<String>,
    #[serde(default)]
    pub attempts: Vec<AttemptView>,
    #[serde(default)]
    pub trace_file: Option<PathBuf>,
    #[serde(default)]
    pub snapshot: Option<SnapshotView>,
    #[serde(default)]
    pub actors: Vec<Actor>,
    /// The deciding attempt's events: from the result, the report's `trace`, or the
    /// trace file it names.
    #[serde(default, deserialize_with = "shared_events")]
    pub trace: Vec<Arc<Event>>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct AttemptView {
    pub status: String,
    pub duration_ms: f64,
    #[serde(default)]
    pub failure: Option<FailureView>,
    #[serde(default)]
    pub skip_reason: Option<String>,
    #[serde(default)]
    pub trace_tail: Vec<String>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct FailureView {
    #[serde(default)]
    pub step: Option<StepView>,
    pub expected: String,
    pub observed: String,
    #[serde(default)]
    pub near_misses: Vec<String>,
    #[serde(default)]
    pub error_kind: Option<String>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct StepView {
    pub number: String,
    pub name: String,
    pub file: PathBuf,
    pub line: usize,
    pub column: usize,
}

#[derive(Debug, Clone, Deserialize)]
pub struct SnapshotView {
    /// `matched`, `created`, `missing`, `mismatched`, `not_compared`.
    pub result: String,
    #[serde(default)]
    pub file: Option<PathBuf>,
    #[serde(default)]
    pub diff: Option<String>,
    #[serde(default)]
    pub reason: Option<String>,
}

fn shared_events<'de, D: serde::Deserializer<'de>>(
    deserializer: D,
) -> Result<Vec<Arc<Event>>, D::Error> {
    let events = Vec::<Event>::deserialize(deserializer)?;
    Ok(events.into_iter().map(Arc::new).collect())
}

impl SummaryView {
    /// The runner's totals, through their JSON form.
    pub fn of(summary: &RunSummary) -> SummaryView {
        let json = serde_json::to_value(summary).expect("a summary serializes");
        serde_json::from_value(json).expect("a summary reads back as a view")
    }
}

impl ScenarioView {
    /// The runner's result, seen through its JSON form, with its kept trace.
    pub fn of_result(result: &ScenarioResult) -> ScenarioView {
        let json = serde_json::to_value(result).expect("results serialize");
        let mut view: ScenarioView =
            serde_json::from_value(json).expect("a result reads back as a view");
        view.trace = result.trace.clone();
        view
    }

    /// A scenario that was not started, and why.
    pub fn not_run(name: &str, path: &Path, reason: &str) -> ScenarioView {
        ScenarioView {
            name: name.to_string(),
            path: path.to_path_buf(),
            status: "not_run".into(),
            reason: Some(reason.to_string()),
            attempts: Vec::new(),
            trace_file: None,
            snapshot: None,
            actors: Vec::new(),
            trace: Vec::new(),
        }
    }

    /// The deciding attempt, if the scenario ran.
    pub fn last(&self) -> Option<&AttemptView> {
        self.attempts.last()
    }

    pub fn failure(&self) -> Option<&FailureView> {
        self.last().and_then(|a| a.failure.as_ref())
    }

    pub fn duration_ms(&self) -> f64 {
        self.last().map_or(0.0, |a| a.duration_ms)
    }
}

/// Why a JSON report could not be rendered.
#[derive(Debug, thiserror::Error)]
pub enum ReportReadError {
    #[error("cannot read {}: {source}", path.display())]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{}:{line}:{column}: not a hil JSON report (`hil run --json FILE` writes one): {source}", path.display())]
    NotAReport {
        path: PathBuf,
        line: usize,
        column: usize,
        source: serde_json::Error,
    },
    #[error(transparent)]
    Trace(#[from] crate::trace::TraceReadError),
}

impl RunView {
    /// Reads a JSON report and the trace files it names. A trace path is taken as the
    /// run wrote it (from its working directory), else below `out_dir` (the run's
    /// `--out` folder, wherever it is now), else from the report's folder. A trace file that
    /// is nowhere to be found leaves its scenario without a diagram; it is named in the
    /// returned warnings.
    pub fn read(
        report: &Path,
        out_dir: Option<&Path>,
    ) -> Result<(RunView, Vec<String>), ReportReadError> {
        let text = std::fs::read_to_string(report).map_err(|source| ReportReadError::Io {
            path: report.to_path_buf(),
            source,
        })?;
        let mut run: RunView =
            serde_json::from_str(&text).map_err(|source| ReportReadError::NotAReport {
                path: report.to_path_buf(),
                line: source.line(),
                column: source.column(),
                source,
            })?;
        let report_folder = report.parent().unwrap_or(Path::new(""));
        let mut warnings = Vec::new();
        for scenario in &mut run.scenarios {
            let Some(file) = scenario.trace_file.clone() else {
                continue;
            };
            if !scenario.trace.is_empty() {
                continue;
            }
            let parts: Vec<_> = file.components().collect();
            // `DIR/<scenario>/trace.jsonl` or `DIR/<scenario>/attempt-N/trace.jsonl`,
            // wherever DIR is now.
            let below_out = (2..=parts.len()).filter_map(|kept| {
                let tail: PathBuf = parts[parts.len() - kept..].iter().collect();
                out_dir.map(|dir| dir.join(tail))
            });
            let candidates = std::iter::once(file.clone())
                .chain(below_out)
                .chain(std::iter::once(report_folder.join(&file)));
            match candidates.into_iter().find(|path| path.is_file()) {
                Some(found) => {
                    let events = crate::trace::read_file(&found)?;
                    scenario.trace = events.into_iter().map(Arc::new).collect();
                    scenario.trace_file = Some(found);
                }
                None => warnings.push(format!(
                    "{}: the trace of {:?} is not there; its diagram is left out (pass the run's --out DIR)",
                    file.display(),
                    scenario.name
                )),
            }
        }
        Ok((run, warnings))
    }
}
