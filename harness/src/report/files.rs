//! JUnit XML and JSON reports. Each file is rewritten after every scenario, so an
//! interrupted run still leaves a valid report of what finished.

use std::path::{Path, PathBuf};

use quick_junit::{NonSuccessKind, Report, TestCase, TestCaseStatus, TestRerun, TestSuite};
use serde::Serialize;

use super::story;
use crate::runner::{Reporter, RunEvent, RunSummary, ScenarioResult, Status};

/// Writes `text` to `path` through a temporary file, so a reader never sees half a report.
fn replace_file(path: &Path, text: &[u8]) -> std::io::Result<()> {
    let folder = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    std::fs::create_dir_all(folder)?;
    let mut temp = tempfile::NamedTempFile::new_in(folder)?;
    std::io::Write::write_all(&mut temp, text)?;
    temp.persist(path).map_err(|e| e.error)?;
    Ok(())
}

/// Checks up front that a report can be written, so a run does not fail at the end.
pub fn check_writable(path: &Path) -> std::io::Result<()> {
    replace_file(path, b"")
}

/// Collects results and rewrites one report file as they come.
struct Collector {
    path: PathBuf,
    results: Vec<ScenarioResult>,
    summary: RunSummary,
    /// The first write error; reported once at the end of the run.
    pub error: Option<String>,
}

impl Collector {
    fn new(path: PathBuf) -> Collector {
        Collector {
            path,
            results: Vec::new(),
            summary: RunSummary::default(),
            error: None,
        }
    }

    fn take(&mut self, event: RunEvent<'_>) -> bool {
        match event {
            RunEvent::Started { seed, .. } => {
                self.summary.seed = seed;
                false
            }
            RunEvent::ScenarioStarted { .. } => false,
            RunEvent::ScenarioFinished(result) => {
                self.summary.add(result.status);
                self.results.push(result.clone());
                true
            }
            RunEvent::Finished(summary) => {
                self.summary = summary.clone();
                true
            }
        }
    }

    fn write(&mut self, bytes: Result<Vec<u8>, String>) {
        let result =
            bytes.and_then(|bytes| replace_file(&self.path, &bytes).map_err(|e| e.to_string()));
        if let Err(error) = result {
            self.error
                .get_or_insert(format!("cannot write {}: {error}", self.path.display()));
        }
    }
}

/// `--junit FILE`
pub struct JunitFile(Collector);

impl JunitFile {
    pub fn new(path: PathBuf) -> JunitFile {
        JunitFile(Collector::new(path))
    }

    pub fn error(&self) -> Option<&str> {
        self.0.error.as_deref()
    }
}

impl Reporter for JunitFile {
    fn report(&mut self, event: RunEvent<'_>) {
        if self.0.take(event) {
            let xml = junit(&self.0.results, &self.0.summary);
            self.0.write(xml);
        }
    }
}

fn junit(results: &[ScenarioResult], summary: &RunSummary) -> Result<Vec<u8>, String> {
    let mut suite = TestSuite::new("hil scenarios");
    suite.add_property(("seed", summary.seed.to_string().as_str()));
    if let Some(unobserved) = summary.unobserved {
        suite.add_property(("unobserved", unobserved));
    }
    for result in results {
        let attempt = result.last();
        let mut status = match result.status {
            Status::Passed | Status::Flaky => TestCaseStatus::success(),
            Status::Failed => TestCaseStatus::non_success(NonSuccessKind::Failure),
            Status::Error | Status::Interrupted => {
                TestCaseStatus::non_success(NonSuccessKind::Error)
            }
            Status::Skipped => TestCaseStatus::skipped(),
        };
        if let Some(reason) = &attempt.skip_reason {
            status.set_message(reason.as_str());
        }
        if let Some(failure) = &attempt.failure {
            status.set_message(failure.headline());
            status.set_type(if result.status == Status::Failed {
                "expectation"
            } else {
                "harness"
            });
            status.set_description(story(result));
        }
        if result.status == Status::Interrupted {
            status.set_message("interrupted");
            status.set_type("interrupted");
        }
        // Earlier failed attempts: flaky runs of a pass, reruns of a failure.
        for earlier in &result.attempts[..result.attempts.len() - 1] {
            let mut rerun = TestRerun::new(NonSuccessKind::Failure);
            rerun.set_time(earlier.duration);
            if let Some(failure) = &earlier.failure {
                rerun.set_message(failure.headline());
            }
            status.add_rerun(rerun);
        }
        let mut case = TestCase::new(result.name.as_str(), status);
        case.set_classname(result.path.display().to_string());
        case.set_time(result.duration());
        if !attempt.trace_tail.is_empty() {
            case.set_system_out(attempt.trace_tail.join("\n"));
        }
        suite.add_test_case(case);
    }
    // One suite holds the whole run, so its time is the run's.
    suite.set_time(summary.duration);
    let mut report = Report::new("hil");
    report.set_time(summary.duration);
    report.add_test_suite(suite);
    report
        .to_string()
        .map(String::into_bytes)
        .map_err(|e| e.to_string())
}

/// `--json FILE`
pub struct JsonFile(Collector);

impl JsonFile {
    pub fn new(path: PathBuf) -> JsonFile {
        JsonFile(Collector::new(path))
    }

    pub fn error(&self) -> Option<&str> {
        self.0.error.as_deref()
    }
}

#[derive(Serialize)]
struct JsonReport<'a> {
    summary: &'a RunSummary,
    scenarios: &'a [ScenarioResult],
}

impl Reporter for JsonFile {
    fn report(&mut self, event: RunEvent<'_>) {
        if self.0.take(event) {
            let json = serde_json::to_vec_pretty(&JsonReport {
                summary: &self.0.summary,
                scenarios: &self.0.results,
            })
            .map_err(|e| e.to_string());
            self.0.write(json);
        }
    }
}
