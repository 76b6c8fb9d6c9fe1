//! The console: a live progress bar on a terminal, one plain line per scenario in logs.

use std::io::Write;

use anstyle::{AnsiColor, Style};
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

use super::{label, story, totals, Reporter};
use crate::runner::{NotRun, RunEvent, RunSummary, ScenarioResult, Status};
use crate::snapshot::SnapshotOutcome;

pub struct Console {
    color: bool,
    bar: Option<ProgressBar>,
}

impl Console {
    /// `interactive`: stderr is a terminal (progress bar); `color`: styles allowed
    /// (terminal and no NO_COLOR).
    pub fn new(interactive: bool, color: bool) -> Console {
        let bar = interactive.then(|| {
            let bar = ProgressBar::with_draw_target(Some(0), ProgressDrawTarget::stderr());
            bar.set_style(
                ProgressStyle::with_template(
                    "{spinner} [{elapsed_precise}] {bar:30} {pos}/{len} {wide_msg}",
                )
                .expect("static template"),
            );
            bar
        });
        Console { color, bar }
    }

    fn style(&self, status: Status) -> Style {
        if !self.color {
            return Style::new();
        }
        match status {
            Status::Passed => AnsiColor::Green.on_default(),
            Status::Flaky => AnsiColor::Yellow.on_default().bold(),
            Status::Failed | Status::Error => AnsiColor::Red.on_default().bold(),
            Status::Interrupted => AnsiColor::Magenta.on_default(),
            Status::Skipped => AnsiColor::Cyan.on_default(),
        }
    }

    fn say(&self, text: &str) {
        match &self.bar {
            Some(bar) => bar.println(text.trim_end()),
            None => {
                let mut out = std::io::stdout().lock();
                let _ = writeln!(out, "{}", text.trim_end());
                let _ = out.flush();
            }
        }
    }

    fn finished(&self, result: &ScenarioResult) {
        let style = self.style(result.status);
        let mut text = format!(
            "{style}{:<5}{style:#} {:>8.3}s  {}  ({})",
            label(result.status),
            result.duration().as_secs_f64(),
            result.name,
            result.path.display()
        );
        // A pass says what it did not check; anything else tells its story.
        let notes = match (&result.snapshot, result.status) {
            (_, status) if status != Status::Passed => story(result),
            (Some(SnapshotOutcome::NotCompared { reason }), _) => {
                format!("snapshot skipped: {reason}")
            }
            (Some(SnapshotOutcome::Created { file }), _) => {
                format!("snapshot written: {}", file.display())
            }
            _ => String::new(),
        };
        for line in notes.lines() {
            text.push_str("\n      ");
            text.push_str(line);
        }
        self.say(&text);
    }

    fn not_run(&self, not_run: &NotRun) {
        let style = self.style(Status::Skipped);
        self.say(&format!(
            "{style}NOT RUN{style:#}  {}  ({}): {}",
            not_run.name,
            not_run.path.display(),
            not_run.reason
        ));
    }

    fn summary(&self, summary: &RunSummary) {
        let failed = summary.failed + summary.errors > 0;
        let style = self.style(if failed {
            Status::Failed
        } else {
            Status::Passed
        });
        let parts: Vec<String> = totals(summary)
            .into_iter()
            .map(|(count, word)| format!("{count} {word}"))
            .collect();
        self.say(&format!(
            "{style}{}{style:#} in {:.2}s (seed {}; repeat with --seed {})",
            parts.join(", "),
            summary.duration.as_secs_f64(),
            summary.seed,
            summary.seed
        ));
    }
}

impl Reporter for Console {
    fn report(&mut self, event: &RunEvent) {
        match event {
            RunEvent::Started {
                total, jobs, seed, ..
            } => {
                let (total, jobs) = (*total, *jobs);
                if let Some(bar) = &self.bar {
                    bar.set_length(total as u64);
                }
                let noun = if total == 1 { "scenario" } else { "scenarios" };
                let jobs = jobs.min(total.max(1));
                self.say(&format!(
                    "running {total} {noun}, {jobs} at a time, seed {seed}"
                ));
            }
            RunEvent::ScenarioStarted { name } => {
                if let Some(bar) = &self.bar {
                    bar.set_message(name.clone());
                }
            }
            RunEvent::ScenarioFinished(result) => {
                self.finished(result);
                if let Some(bar) = &self.bar {
                    bar.inc(1);
                }
            }
            RunEvent::NotRun(not_run) => self.not_run(not_run),
            RunEvent::Finished(summary) => {
                if let Some(bar) = self.bar.take() {
                    bar.finish_and_clear();
                }
                self.summary(summary);
            }
        }
    }
}
