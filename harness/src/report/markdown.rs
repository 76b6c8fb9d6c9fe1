//! The GitHub step summary (`GITHUB_STEP_SUMMARY`): the run's counts, a table of the
//! failures and each failure's sequence diagram in Mermaid, appended to the file when
//! the run ends (other steps of the job write there too).

use std::fmt::Write as _;
use std::io::Write as _;
use std::path::PathBuf;

use super::{label, mermaid, totals, Reporter};
use crate::runner::{RunEvent, RunSummary, ScenarioResult, Status};

/// A failure as the summary tells it.
struct Told {
    name: String,
    status: Status,
    place: String,
    expected: String,
    observed: String,
    diagram: Option<String>,
}

/// Appends the run's summary to a Markdown file when the run finishes.
pub struct StepSummary {
    path: PathBuf,
    failures: Vec<Told>,
    error: Option<String>,
}

impl StepSummary {
    pub fn new(path: PathBuf) -> StepSummary {
        StepSummary {
            path,
            failures: Vec::new(),
            error: None,
        }
    }

    fn take(&mut self, result: &ScenarioResult) {
        if !matches!(result.status, Status::Failed | Status::Error) {
            return;
        }
        let failure = result.last().failure.as_ref();
        self.failures.push(Told {
            name: result.name.clone(),
            status: result.status,
            place: failure.and_then(|f| f.step.as_ref()).map_or_else(
                || result.path.display().to_string(),
                |step| {
                    format!(
                        "{}:{}:{} step {} `{}`",
                        step.file.display(),
                        step.line,
                        step.column,
                        step.number,
                        step.name
                    )
                },
            ),
            expected: failure.map(|f| f.expected.clone()).unwrap_or_default(),
            observed: failure.map(|f| f.observed.clone()).unwrap_or_default(),
            diagram: mermaid::failing_step(&result.trace, &result.actors),
        });
    }
}

/// A table cell: pipes escaped, lines joined.
fn cell(text: &str) -> String {
    text.replace('|', "\\|").replace('\n', "<br>")
}

/// The summary's Markdown.
fn render(summary: &RunSummary, failures: &[Told]) -> String {
    let mut out = String::new();
    let counts: Vec<String> = totals(summary)
        .into_iter()
        .enumerate()
        .map(|(at, (count, word))| {
            if at < 2 {
                format!("**{count} {word}**")
            } else {
                format!("{count} {word}")
            }
        })
        .collect();
    let _ = writeln!(out, "## hil run\n");
    let _ = writeln!(
        out,
        "{} in {:.2} s, seed {} (repeat with `--seed {}`)\n",
        counts.join(" · "),
        summary.duration.as_secs_f64(),
        summary.seed,
        summary.seed
    );
    if failures.is_empty() {
        return out;
    }
    let _ = writeln!(out, "| | scenario | where | expected | observed |");
    let _ = writeln!(out, "| --- | --- | --- | --- | --- |");
    for told in failures {
        let _ = writeln!(
            out,
            "| {} | {} | {} | {} | {} |",
            label(told.status),
            cell(&told.name),
            cell(&told.place),
            cell(&told.expected),
            cell(&told.observed)
        );
    }
    for told in failures {
        if let Some(diagram) = &told.diagram {
            let _ = writeln!(out, "\n### {}\n\n```mermaid\n{diagram}```", told.name);
        }
    }
    out
}

impl Reporter for StepSummary {
    fn report(&mut self, event: &RunEvent) {
        match event {
            RunEvent::ScenarioFinished(result) => self.take(result),
            RunEvent::Finished(summary) => {
                let text = render(summary, &self.failures);
                let written = std::fs::OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(&self.path)
                    .and_then(|mut file| file.write_all(text.as_bytes()));
                if let Err(error) = written {
                    self.error = Some(format!(
                        "cannot append the step summary to {}: {error}",
                        self.path.display()
                    ));
                }
            }
            _ => {}
        }
    }

    fn error(&self) -> Option<String> {
        self.error.clone()
    }
}
