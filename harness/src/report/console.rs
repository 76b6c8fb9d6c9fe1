//! The console: a live progress bar on a terminal, one plain line per scenario in logs.

use std::io::Write;

use anstyle::{AnsiColor, Style};
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

use super::{label, story};
use crate::runner::{Reporter, RunEvent, RunSummary, ScenarioResult, Status};

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
        if result.status != Status::Passed {
            for line in story(result).lines() {
                text.push_str("\n      ");
                text.push_str(line);
            }
        }
        self.say(&text);
    }

    fn summary(&self, summary: &RunSummary) {
        let failed = summary.failed + summary.errors > 0;
        let style = self.style(if failed {
            Status::Failed
        } else {
            Status::Passed
        });
        let mut parts = vec![
            format!("{} passed", summary.passed),
            format!("{} failed", summary.failed),
        ];
        for (count, word) in [
            (summary.flaky, "flaky"),
            (summary.errors, "errors"),
            (summary.interrupted, "interrupted"),
            (summary.skipped, "skipped"),
            (summary.not_run, "not run"),
        ] {
            if count > 0 {
                parts.push(format!("{count} {word}"));
            }
        }
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
    fn report(&mut self, event: RunEvent<'_>) {
        match event {
            RunEvent::Started { total, jobs, seed } => {
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
                    bar.set_message(name.to_string());
                }
            }
            RunEvent::ScenarioFinished(result) => {
                self.finished(result);
                if let Some(bar) = &self.bar {
                    bar.inc(1);
                }
            }
            RunEvent::Finished(summary) => {
                if let Some(bar) = self.bar.take() {
                    bar.finish_and_clear();
                }
                self.summary(summary);
            }
        }
    }
}
