//! The visual report: one self-contained HTML file (every style and script inline,
//! nothing fetched) with an overview and, per scenario, the sequence diagram, the state
//! timeline and the trace table. `hil run --html` renders each scenario's section as it
//! finishes and writes the page when the run ends; [`render`] / [`write`] do the same
//! from a [`RunView`] (a JSON report read back, for `hil report --html`).

mod details;
mod overview;
mod sequence;
mod table;
mod timeline;

use std::io;
use std::path::{Path, PathBuf};

use maud::{html, Markup, PreEscaped, DOCTYPE};

use super::flow::Flow;
use super::view::{RunView, ScenarioView, SummaryView};
use super::Reporter;
use crate::runner::RunEvent;

const STYLE: &str = include_str!("style.css");
const SCRIPT: &str = include_str!("script.js");

/// Nothing but the page itself: no request may leave the file.
const POLICY: &str =
    "default-src 'none'; style-src 'unsafe-inline'; script-src 'unsafe-inline'; img-src data:";

/// The report of `run`, with links to kept files relative to `report_folder`.
pub fn render(run: &RunView, report_folder: &Path) -> String {
    let sections: Vec<String> = run
        .scenarios
        .iter()
        .enumerate()
        .map(|(index, scenario)| section(index, scenario, report_folder).into_string())
        .collect();
    page(run, &sections)
}

/// Renders `run` into `path`, replacing it whole.
pub fn write(path: &Path, run: &RunView) -> io::Result<()> {
    let html = render(run, &folder_of(path));
    replace(path, &html)
}

fn folder_of(path: &Path) -> PathBuf {
    path.parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."))
        .to_path_buf()
}

/// Writes through a temporary file and a rename, so a reader never sees half a page.
fn replace(path: &Path, text: &str) -> io::Result<()> {
    let folder = folder_of(path);
    std::fs::create_dir_all(&folder)?;
    let mut temp = tempfile::NamedTempFile::new_in(&folder)?;
    io::Write::write_all(&mut temp, text.as_bytes())?;
    temp.persist(path).map_err(|e| e.error)?;
    Ok(())
}

/// The page around the scenarios' sections (`sections[i]` is `run.scenarios[i]`'s),
/// listed failures first.
fn page(run: &RunView, sections: &[String]) -> String {
    let mut order: Vec<usize> = (0..run.scenarios.len()).collect();
    order.sort_by_key(|&i| (overview::rank(&run.scenarios[i].status), i));
    let summary = &run.summary;
    let failing = summary.failed + summary.errors;
    let title = format!(
        "hil: {} passed, {failing} failed{}",
        summary.passed + summary.flaky,
        if summary.flaky > 0 {
            format!(", {} flaky", summary.flaky)
        } else {
            String::new()
        }
    );
    html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta http-equiv="Content-Security-Policy" content=(POLICY);
                meta name="viewport" content="width=device-width, initial-scale=1";
                title { (title) }
                style { (PreEscaped(STYLE)) }
            }
            body {
                (sequence::defs())
                (overview::render(run, &order))
                main {
                    @for &index in &order {
                        (PreEscaped(&sections[index]))
                    }
                }
                script { (PreEscaped(SCRIPT)) }
            }
        }
    }
    .into_string()
}

/// One scenario's section; `index` gives its id (`s{index}`).
fn section(index: usize, scenario: &ScenarioView, report_folder: &Path) -> Markup {
    let id = format!("s{index}");
    let near_misses: Vec<u64> = scenario
        .failure()
        .map(|f| {
            f.near_misses
                .iter()
                .filter_map(|m| details::event_of(m))
                .collect()
        })
        .unwrap_or_default();
    let flow = Flow::of(&scenario.trace, &scenario.actors);
    let open = !matches!(scenario.status.as_str(), "passed" | "skipped" | "not_run");
    html! {
        section.scenario id=(id) data-status=(scenario.status) data-name=(scenario.name) {
            h2 { span class=(format!("badge {}", scenario.status)) { (scenario.status.replace('_', " ")) } " " (scenario.name) }
            p.meta {
                code { (scenario.path.display()) } " · " (format!("{:.3}", scenario.duration_ms() / 1000.0)) " s"
                @if scenario.attempts.len() > 1 { " · " (scenario.attempts.len()) " attempts" }
            }
            @if let Some(reason) = scenario.reason.as_ref().or(scenario.last().and_then(|a| a.skip_reason.as_ref())) {
                p.reason { (reason) }
            }
            (details::failure(&id, scenario))
            (details::attempts(scenario))
            (details::snapshot(scenario.snapshot.as_ref()))
            (details::artifacts(scenario.trace_file.as_deref(), report_folder))
            @if !scenario.trace.is_empty() {
                details.drawings open[open] {
                    summary { "sequence, states and trace (" (scenario.trace.len()) " events)" }
                    div.toolbar {
                        label { input.t-minor type="checkbox"; " acks and pings" }
                        " "
                        button.zoom type="button" { "zoom to range" }
                        button.unzoom type="button" { "whole trace" }
                        span.hint { "drag along the times on the left, or across the states, to pick a range" }
                    }
                    div.seqwrap { (sequence::render(&id, &flow, &near_misses)) }
                    h3 { "states" }
                    (timeline::render(&timeline::tracks(&scenario.trace, &scenario.actors), flow.start_us, flow.end_us))
                    h3 { "trace" }
                    (table::render(&scenario.trace, &flow))
                }
            } @else if !scenario.attempts.is_empty() {
                @let tail = scenario.last().map(|a| &a.trace_tail[..]).unwrap_or_default();
                @if !tail.is_empty() {
                    details { summary { "last " (tail.len()) " trace events" } pre { (tail.join("\n")) } }
                }
            }
        }
    }
}

/// `--html FILE`: renders each scenario's section when it finishes, on the reporters'
/// thread, and writes the page when the run ends.
pub struct HtmlFile {
    path: PathBuf,
    folder: PathBuf,
    /// Every scenario so far, without its trace (its section is already rendered).
    scenarios: Vec<ScenarioView>,
    sections: Vec<String>,
    error: Option<String>,
}

impl HtmlFile {
    /// Writes an empty report now, so a run finds out before it starts that the file
    /// cannot be written.
    pub fn create(path: PathBuf) -> io::Result<HtmlFile> {
        let empty = RunView {
            scenarios: Vec::new(),
            summary: SummaryView::default(),
        };
        write(&path, &empty)?;
        Ok(HtmlFile {
            folder: folder_of(&path),
            path,
            scenarios: Vec::new(),
            sections: Vec::new(),
            error: None,
        })
    }

    fn add(&mut self, mut scenario: ScenarioView) {
        let index = self.scenarios.len();
        self.sections
            .push(section(index, &scenario, &self.folder).into_string());
        scenario.trace = Vec::new();
        self.scenarios.push(scenario);
    }
}

impl Reporter for HtmlFile {
    fn report(&mut self, event: &RunEvent) {
        match event {
            RunEvent::ScenarioFinished(result) => self.add(ScenarioView::of_result(result)),
            RunEvent::NotRun(not_run) => self.add(ScenarioView::not_run(
                &not_run.name,
                &not_run.path,
                &not_run.reason,
            )),
            RunEvent::Finished(summary) => {
                let run = RunView {
                    scenarios: std::mem::take(&mut self.scenarios),
                    summary: SummaryView::of(summary),
                };
                if let Err(error) = replace(&self.path, &page(&run, &self.sections)) {
                    self.error = Some(format!("cannot write {}: {error}", self.path.display()));
                }
            }
            RunEvent::Started { .. } | RunEvent::ScenarioStarted { .. } => {}
        }
    }

    fn error(&self) -> Option<String> {
        self.error.clone()
    }
}
