//! The overview: the run's totals and every scenario with its status, duration, file,
//! seed and the command that repeats it; failures first, filtered by status and name.

use maud::{html, Markup};

use crate::report::view::{RunView, ScenarioView, SummaryView};

/// Statuses in the order the overview lists them: what needs a look first.
pub const STATUS_ORDER: &[&str] = &[
    "failed",
    "error",
    "interrupted",
    "flaky",
    "not_run",
    "skipped",
    "passed",
];

pub fn rank(status: &str) -> usize {
    STATUS_ORDER
        .iter()
        .position(|s| *s == status)
        .unwrap_or(STATUS_ORDER.len())
}

/// The command that runs this scenario again as it ran: the same file and the run's
/// seed (a scenario's own seed comes from the run's and its name).
pub fn repeat_command(scenario: &ScenarioView, seed: u64) -> String {
    format!("hil run {} --seed {seed}", scenario.path.display())
}

fn totals(summary: &SummaryView) -> Vec<(&'static str, usize)> {
    [
        ("passed", summary.passed),
        ("failed", summary.failed),
        ("flaky", summary.flaky),
        ("error", summary.errors),
        ("interrupted", summary.interrupted),
        ("skipped", summary.skipped),
        ("not_run", summary.not_run),
    ]
    .into_iter()
    .filter(|(status, count)| *count > 0 || matches!(*status, "passed" | "failed"))
    .collect()
}

/// `order` lists the scenarios' indexes as their sections appear.
pub fn render(run: &RunView, order: &[usize]) -> Markup {
    let summary = &run.summary;
    html! {
        header {
            h1 { "hil run" }
            p.totals {
                @for (status, count) in totals(summary) {
                    span class=(format!("badge {status}")) { (count) " " (status.replace('_', " ")) }
                    " "
                }
                span.meta { "in " (format!("{:.2}", summary.duration_ms / 1000.0)) " s · seed " (summary.seed) }
            }
            @if let Some(unobserved) = &summary.unobserved {
                p.unobserved { "Not observed: " (unobserved) }
            }
        }
        section #overview {
            div.filters {
                span #ov-status {
                    @for status in STATUS_ORDER {
                        label { input type="checkbox" value=(status) checked; " " (status.replace('_', " ")) } " "
                    }
                }
                label { "name " input #ov-name type="search" placeholder="part of a name" {} }
                span.count {}
            }
            table {
                thead { tr { th { "status" } th { "scenario" } th { "duration" } th { "attempts" } th { "file" } th { "repeat" } } }
                tbody {
                    @for &index in order {
                        @let scenario = &run.scenarios[index];
                        tr data-status=(scenario.status) data-name=(scenario.name) data-section=(format!("s{index}")) {
                            td { span class=(format!("badge {}", scenario.status)) { (scenario.status.replace('_', " ")) } }
                            td { a href=(format!("#s{index}")) { (scenario.name) }
                                @if let Some(reason) = scenario.reason.as_ref().or(scenario.last().and_then(|a| a.skip_reason.as_ref())) {
                                    div.reason { (reason) }
                                }
                            }
                            td.num { (format!("{:.3}", scenario.duration_ms() / 1000.0)) " s" }
                            td.num { (attempts(scenario)) }
                            td { code { (scenario.path.display()) } }
                            td { code { (repeat_command(scenario, summary.seed)) } }
                        }
                    }
                }
            }
        }
    }
}

/// `1`, or for retries every attempt's status: `failed, passed`.
fn attempts(scenario: &ScenarioView) -> String {
    match scenario.attempts.len() {
        0 => "–".into(),
        1 => "1".into(),
        _ => scenario
            .attempts
            .iter()
            .map(|a| a.status.as_str())
            .collect::<Vec<_>>()
            .join(", "),
    }
}
