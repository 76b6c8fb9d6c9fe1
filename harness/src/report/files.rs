//! JUnit XML and JSON reports, written as the run goes so that an interrupted run leaves
//! a valid report of what finished.
//!
//! Each file is updated in place: what a scenario adds is rendered once and written once,
//! after what came before, followed by the file's closing part (JSON's summary); only a
//! fixed-size head (JUnit's counts) is written again. So the bytes written over a run
//! stay within a small multiple of the final file, where rewriting the whole file after
//! every scenario would write its square. The file is valid after every update; only a
//! crash during one (a few kilobytes) can leave it cut.

use std::fs::File;
use std::io;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::time::Instant;

use quick_junit::{NonSuccessKind, Report, TestCase, TestCaseStatus, TestRerun, TestSuite};

use super::{story, Reporter};
use crate::runner::{NotRun, RunEvent, RunSummary, ScenarioResult, Status};

/// A file of three parts: a head rewritten in place (always the same length), a body
/// that only grows, and a tail written after the body each time.
struct InPlaceFile {
    file: File,
    head: String,
    body_end: u64,
    tail_len: u64,
}

impl InPlaceFile {
    /// Replaces `path` whole (through a temporary file and rename, so a reader never
    /// sees half of it) with `head` + `tail`, and keeps it open for updates.
    fn create(path: &Path, head: String, tail: &str) -> io::Result<InPlaceFile> {
        let folder = path
            .parent()
            .filter(|p| !p.as_os_str().is_empty())
            .unwrap_or(Path::new("."));
        std::fs::create_dir_all(folder)?;
        let mut temp = tempfile::NamedTempFile::new_in(folder)?;
        io::Write::write_all(&mut temp, format!("{head}{tail}").as_bytes())?;
        let file = temp.persist(path).map_err(|e| e.error)?;
        Ok(InPlaceFile {
            file,
            body_end: head.len() as u64,
            tail_len: tail.len() as u64,
            head,
        })
    }

    /// Writes `body` after the body so far, then `tail`, then `head` if it changed: the
    /// file is valid after each of the writes.
    fn update(&mut self, head: &str, body: &str, tail: &str) -> io::Result<()> {
        if head.len() != self.head.len() {
            return Err(io::Error::other("the report's head outgrew its room"));
        }
        self.file
            .write_all_at(format!("{body}{tail}").as_bytes(), self.body_end)?;
        self.body_end += body.len() as u64;
        if (tail.len() as u64) < self.tail_len {
            self.file.set_len(self.body_end + tail.len() as u64)?;
        }
        self.tail_len = tail.len() as u64;
        if head != self.head {
            self.file.write_all_at(head.as_bytes(), 0)?;
            self.head = head.to_string();
        }
        Ok(())
    }
}

/// How one kind of report renders its parts.
pub trait Format: Send {
    /// Rewritten in place: the same length whatever the counts.
    fn head(&self, summary: &RunSummary) -> String;
    /// Written once, when the run starts.
    fn preamble(&self, summary: &RunSummary) -> String;
    fn scenario(&self, result: &ScenarioResult, first: bool) -> String;
    fn not_run(&self, not_run: &NotRun, first: bool) -> String;
    fn tail(&self, summary: &RunSummary) -> String;
}

/// A report file fed by run events: it renders each event's part as it comes and
/// writes them when the reporters' thread has caught up.
pub struct ReportFile<F: Format> {
    format: F,
    path: PathBuf,
    file: InPlaceFile,
    summary: RunSummary,
    started: Option<Instant>,
    finished: bool,
    entries: usize,
    unwritten: String,
    changed: bool,
    /// The first write error; reported once at the end of the run, and no write after it.
    error: Option<String>,
}

/// `--junit FILE`
pub type JunitFile = ReportFile<Junit>;
/// `--json FILE`
pub type JsonFile = ReportFile<Json>;

impl<F: Format> ReportFile<F> {
    fn with_format(path: PathBuf, format: F) -> io::Result<ReportFile<F>> {
        let summary = RunSummary::default();
        let file = InPlaceFile::create(&path, format.head(&summary), &format.tail(&summary))?;
        Ok(ReportFile {
            format,
            path,
            file,
            summary,
            started: None,
            finished: false,
            entries: 0,
            unwritten: String::new(),
            changed: false,
            error: None,
        })
    }
}

impl JunitFile {
    /// Creates the report (empty and valid) before the run, so a run does not find out
    /// at its end that the report cannot be written.
    pub fn create(path: PathBuf) -> io::Result<JunitFile> {
        ReportFile::with_format(path, Junit)
    }
}

impl JsonFile {
    /// Creates the report (empty and valid) before the run.
    pub fn create(path: PathBuf) -> io::Result<JsonFile> {
        ReportFile::with_format(path, Json)
    }
}

impl<F: Format> Reporter for ReportFile<F> {
    fn report(&mut self, event: &RunEvent) {
        match event {
            RunEvent::Started {
                seed,
                unobserved,
                labgrid,
                ..
            } => {
                self.started = Some(Instant::now());
                self.summary.seed = *seed;
                self.summary.unobserved = *unobserved;
                self.summary.labgrid = labgrid.clone();
                self.unwritten
                    .push_str(&self.format.preamble(&self.summary));
            }
            RunEvent::ScenarioStarted { .. } => return,
            RunEvent::ScenarioFinished(result) => {
                self.summary.add(result.status);
                let part = self.format.scenario(result, self.entries == 0);
                self.unwritten.push_str(&part);
                self.entries += 1;
            }
            RunEvent::NotRun(not_run) => {
                self.summary.not_run += 1;
                let part = self.format.not_run(not_run, self.entries == 0);
                self.unwritten.push_str(&part);
                self.entries += 1;
            }
            RunEvent::Finished(summary) => {
                self.summary = summary.clone();
                self.finished = true;
            }
        }
        self.changed = true;
    }

    fn caught_up(&mut self) {
        if !self.changed || self.error.is_some() {
            return;
        }
        if let (Some(started), false) = (self.started, self.finished) {
            self.summary.duration = started.elapsed();
        }
        let written = self.file.update(
            &self.format.head(&self.summary),
            &self.unwritten,
            &self.format.tail(&self.summary),
        );
        self.unwritten.clear();
        self.changed = false;
        if let Err(error) = written {
            self.error = Some(format!("cannot write {}: {error}", self.path.display()));
        }
    }

    fn error(&self) -> Option<String> {
        self.error.clone()
    }
}

/// JUnit XML: `testsuites` > one `testsuite` > a `testcase` per scenario, not-run ones
/// as skipped with their reason.
pub struct Junit;

/// Room for the counts and time of each opening tag (twenty digits each).
const JUNIT_TAG_ROOM: usize = 200;

impl Format for Junit {
    fn head(&self, summary: &RunSummary) -> String {
        let tests = summary.passed
            + summary.flaky
            + summary.failed
            + summary.errors
            + summary.interrupted
            + summary.skipped
            + summary.not_run;
        let skipped = summary.skipped + summary.not_run;
        let errors = summary.errors + summary.interrupted;
        let time = format!("{:.3}", summary.duration.as_secs_f64());
        // Spaces before `>` keep the head's length whatever the counts.
        let pad = |tag: String| format!("{tag:<JUNIT_TAG_ROOM$}>\n");
        format!(
            "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n{}    {}",
            pad(format!(
                "<testsuites name=\"hil\" tests=\"{tests}\" skipped=\"{skipped}\" failures=\"{}\" errors=\"{errors}\" time=\"{time}\"",
                summary.failed
            )),
            pad(format!(
                "<testsuite name=\"hil scenarios\" tests=\"{tests}\" skipped=\"{skipped}\" errors=\"{errors}\" failures=\"{}\" time=\"{time}\"",
                summary.failed
            )),
        )
    }

    fn preamble(&self, summary: &RunSummary) -> String {
        let mut suite = TestSuite::new("hil scenarios");
        suite.add_property(("seed", summary.seed.to_string().as_str()));
        if let Some(unobserved) = summary.unobserved {
            suite.add_property(("unobserved", unobserved));
        }
        for played in &summary.labgrid {
            let key = |what: &str| format!("labgrid.{}.{what}", played.role);
            suite.add_property((key("place").as_str(), played.place.as_str()));
            suite.add_property((key("exporter").as_str(), played.exporter.as_str()));
        }
        suite_content(suite, "<properties>")
    }

    fn scenario(&self, result: &ScenarioResult, _first: bool) -> String {
        let mut suite = TestSuite::new("hil scenarios");
        suite.add_test_case(test_case(result));
        suite_content(suite, "<testcase")
    }

    fn not_run(&self, not_run: &NotRun, _first: bool) -> String {
        let mut status = TestCaseStatus::skipped();
        status.set_message(not_run.reason.as_str());
        status.set_type("not_run");
        let mut case = TestCase::new(not_run.name.as_str(), status);
        case.set_classname(not_run.path.display().to_string());
        let mut suite = TestSuite::new("hil scenarios");
        suite.add_test_case(case);
        suite_content(suite, "<testcase")
    }

    fn tail(&self, _summary: &RunSummary) -> String {
        "    </testsuite>\n</testsuites>\n".into()
    }
}

/// What quick-junit renders inside a suite (from `start` to the suite's end), which
/// escapes text and attributes and names JUnit's elements as CI tools expect.
fn suite_content(suite: TestSuite, start: &str) -> String {
    let mut report = Report::new("hil");
    report.add_test_suite(suite);
    let xml = report
        .to_string()
        .expect("quick-junit renders what it was given");
    let from = xml.find(start).unwrap_or(xml.len());
    let to = xml.rfind("</testsuite>").unwrap_or(xml.len()).max(from);
    format!("        {}\n", xml[from..to].trim_end())
}

fn test_case(result: &ScenarioResult) -> TestCase {
    let attempt = result.last();
    let mut status = match result.status {
        Status::Passed | Status::Flaky => TestCaseStatus::success(),
        Status::Failed => TestCaseStatus::non_success(NonSuccessKind::Failure),
        Status::Error | Status::Interrupted => TestCaseStatus::non_success(NonSuccessKind::Error),
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
        let mut body = story(result);
        if let Some(diagram) = super::mermaid::failing_step(&result.trace, &result.actors) {
            body.push_str("the failing step (Mermaid):\n");
            body.push_str(&diagram);
        }
        status.set_description(body);
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
    case
}

/// JSON: `{"scenarios": [...], "summary": {...}}`, not-run scenarios in the list with
/// status `not_run` and their reason; durations in milliseconds (`duration_ms`).
pub struct Json;

impl Json {
    fn entry(value: &impl serde::Serialize, first: bool) -> String {
        let text = serde_json::to_string_pretty(value).expect("results serialize");
        // JSON strings hold no raw newline, so indenting every line is safe.
        let indented = text.replace('\n', "\n    ");
        format!("{}\n    {indented}", if first { "" } else { "," })
    }
}

impl Format for Json {
    fn head(&self, _summary: &RunSummary) -> String {
        "{\n  \"scenarios\": [".into()
    }

    fn preamble(&self, _summary: &RunSummary) -> String {
        String::new()
    }

    /// Without a trace file to name, a kept trace goes into the report itself
    /// (`trace`), so `hil report --html` can draw it later.
    fn scenario(&self, result: &ScenarioResult, first: bool) -> String {
        if result.trace_file.is_some() || result.trace.is_empty() {
            return Json::entry(result, first);
        }
        let mut entry = serde_json::to_value(result).expect("results serialize");
        let trace = result
            .trace
            .iter()
            .map(|event| serde_json::to_value(&**event).expect("events serialize"))
            .collect();
        entry["trace"] = serde_json::Value::Array(trace);
        Json::entry(&entry, first)
    }

    fn not_run(&self, not_run: &NotRun, first: bool) -> String {
        let entry = serde_json::json!({
            "name": not_run.name,
            "path": not_run.path,
            "status": "not_run",
            "reason": not_run.reason,
        });
        Json::entry(&entry, first)
    }

    fn tail(&self, summary: &RunSummary) -> String {
        let summary = serde_json::to_string_pretty(summary).expect("a summary serializes");
        format!(
            "\n  ],\n  \"summary\": {}\n}}\n",
            summary.replace('\n', "\n  ")
        )
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::time::Duration;

    use super::*;
    use crate::runner::{Attempt, Failure};

    fn result(index: usize) -> ScenarioResult {
        let failed = index % 2 == 1;
        ScenarioResult {
            name: format!("scenario <{index}> & \"more\""),
            path: PathBuf::from(format!("s{index}.yaml")),
            status: if failed {
                Status::Failed
            } else {
                Status::Passed
            },
            attempts: vec![Attempt {
                status: if failed {
                    Status::Failed
                } else {
                    Status::Passed
                },
                duration: Duration::from_millis(index as u64 + 1),
                waited: Duration::ZERO,
                failure: failed.then(|| Failure {
                    step: None,
                    expected: "a message".into(),
                    observed: "none <in time>".into(),
                    near_misses: Vec::new(),
                    error_kind: None,
                }),
                trace_tail: vec!["0.000 ms  hil  started".into()],
                skip_reason: None,
            }],
            trace_file: None,
            snapshot: None,
            actors: Vec::new(),
            trace: Vec::new(),
        }
    }

    /// Every XML event of `xml`, failing on the first that is not well-formed.
    fn well_formed(xml: &str) {
        let mut reader = quick_xml::Reader::from_str(xml);
        loop {
            match reader.read_event() {
                Ok(quick_xml::events::Event::Eof) => return,
                Ok(_) => {}
                Err(error) => panic!("not well-formed ({error}): {xml}"),
            }
        }
    }

    #[test]
    fn the_labgrid_places_of_a_run_are_in_both_reports() {
        let dir = tempfile::tempdir().unwrap();
        let (json_path, junit_path) = (dir.path().join("r.json"), dir.path().join("j.xml"));
        let mut json = JsonFile::create(json_path.clone()).unwrap();
        let mut junit = JunitFile::create(junit_path.clone()).unwrap();
        let labgrid = vec![crate::runner::RolePlace {
            role: "lamp".into(),
            board: "lab1".into(),
            place: "desk-c3".into(),
            exporter: "bench-host".into(),
        }];
        for event in [
            RunEvent::Started {
                total: 1,
                jobs: 1,
                seed: 7,
                unobserved: None,
                labgrid: labgrid.clone(),
            },
            RunEvent::ScenarioFinished(Arc::new(result(0))),
        ] {
            json.report(&event);
            json.caught_up();
            junit.report(&event);
            junit.caught_up();
        }
        let xml = std::fs::read_to_string(&junit_path).unwrap();
        well_formed(&xml);
        assert!(
            xml.contains(r#"<property name="labgrid.lamp.place" value="desk-c3"/>"#),
            "{xml}"
        );
        assert!(
            xml.contains(r#"<property name="labgrid.lamp.exporter" value="bench-host"/>"#),
            "{xml}"
        );
        let report: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(&json_path).unwrap()).unwrap();
        assert_eq!(
            report["summary"]["labgrid"],
            serde_json::json!([{"role": "lamp", "board": "lab1", "place": "desk-c3", "exporter": "bench-host"}])
        );
    }

    #[test]
    fn both_reports_are_valid_after_every_scenario() {
        let dir = tempfile::tempdir().unwrap();
        let (json_path, junit_path) = (dir.path().join("r.json"), dir.path().join("j.xml"));
        let mut json = JsonFile::create(json_path.clone()).unwrap();
        let mut junit = JunitFile::create(junit_path.clone()).unwrap();
        let check = |entries: usize| {
            let report: serde_json::Value =
                serde_json::from_str(&std::fs::read_to_string(&json_path).unwrap()).unwrap();
            assert_eq!(report["scenarios"].as_array().unwrap().len(), entries);
            let xml = std::fs::read_to_string(&junit_path).unwrap();
            well_formed(&xml);
            assert!(xml.contains(&format!(" tests=\"{entries}\" ")), "{xml}");
            assert_eq!(xml.matches("<testcase ").count(), entries, "{xml}");
        };
        check(0);
        let mut send = |event: RunEvent| {
            json.report(&event);
            json.caught_up();
            junit.report(&event);
            junit.caught_up();
        };
        send(RunEvent::Started {
            total: 5,
            jobs: 1,
            seed: 7,
            unobserved: Some("what 'they' <do>"),
            labgrid: Vec::new(),
        });
        check(0);
        for index in 0..4 {
            send(RunEvent::ScenarioFinished(Arc::new(result(index))));
            check(index + 1);
        }
        send(RunEvent::NotRun(Arc::new(NotRun {
            name: "later".into(),
            path: PathBuf::from("later.yaml"),
            reason: "not started".into(),
        })));
        check(5);
        let summary = RunSummary {
            passed: 2,
            failed: 2,
            not_run: 1,
            duration: Duration::from_millis(3),
            seed: 7,
            ..RunSummary::default()
        };
        send(RunEvent::Finished(summary));
        check(5);
        assert_eq!(json.error(), None);
        assert_eq!(junit.error(), None);
        let xml = std::fs::read_to_string(&junit_path).unwrap();
        assert!(
            xml.contains("failures=\"2\"") && xml.contains("skipped=\"1\""),
            "{xml}"
        );
        assert!(
            xml.contains("name=\"scenario &lt;1&gt; &amp; &quot;more&quot;\""),
            "{xml}"
        );
    }
}
