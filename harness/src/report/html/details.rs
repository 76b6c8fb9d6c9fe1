//! What a scenario's section says beside its drawings: the failure (where, expected,
//! observed, near misses pointing at their arrows, earlier attempts), the snapshot diff
//! and links to the files `--out` kept.

use std::path::{Path, PathBuf};

use maud::{html, Markup};

use crate::report::view::{ScenarioView, SnapshotView};

/// The seq a near miss names (`… (event #12)`), which its arrow's id carries.
pub fn event_of(near_miss: &str) -> Option<u64> {
    let (_, after) = near_miss.rsplit_once("event #")?;
    let digits: String = after.chars().take_while(char::is_ascii_digit).collect();
    digits.parse().ok()
}

pub fn failure(id: &str, scenario: &ScenarioView) -> Markup {
    let Some(failure) = scenario.failure() else {
        return html! {};
    };
    html! {
        div.failure {
            @if let Some(step) = &failure.step {
                p.where { "at " code { (step.file.display()) ":" (step.line) ":" (step.column) } ", step " (step.number) " " code { (step.name) } }
            }
            @if let Some(kind) = &failure.error_kind {
                p { "harness error: " code { (kind) } }
            }
            dl {
                dt { "expected" } dd.expected { (failure.expected) }
                dt { "observed" } dd.observed { (failure.observed) }
            }
            @if !failure.near_misses.is_empty() {
                p { "near misses:" }
                ul.nearmisses {
                    @for miss in &failure.near_misses {
                        li {
                            @match event_of(miss) {
                                Some(seq) => a.nearmiss href=(format!("#{id}-e{seq}")) data-seq=(seq) { (miss) },
                                None => (miss),
                            }
                        }
                    }
                }
            }
        }
    }
}

/// Every attempt with its status, when there were retries.
pub fn attempts(scenario: &ScenarioView) -> Markup {
    html! {
        @if scenario.attempts.len() > 1 {
            details.attempts open {
                summary { (scenario.attempts.len()) " attempts" }
                ol {
                    @for attempt in &scenario.attempts {
                        li { span class=(format!("badge {}", attempt.status)) { (attempt.status) } " "
                            (format!("{:.3}", attempt.duration_ms / 1000.0)) " s"
                            @if let Some(failure) = &attempt.failure { " — expected " (failure.expected) "; " (failure.observed) } }
                    }
                }
            }
        }
    }
}

pub fn snapshot(snapshot: Option<&SnapshotView>) -> Markup {
    let Some(snapshot) = snapshot else {
        return html! {};
    };
    html! {
        div.snapshot {
            p { "snapshot: " (snapshot.result.replace('_', " "))
                @if let Some(file) = &snapshot.file { " " code { (file.display()) } }
                @if let Some(reason) = &snapshot.reason { " (" (reason) ")" } }
            @if let Some(diff) = &snapshot.diff {
                pre.diff {
                    @for line in diff.lines() {
                        @let class = match line.chars().next() { Some('+') => "add", Some('-') => "del", _ => "ctx" };
                        span class=(class) { (line) "\n" }
                    }
                }
            }
        }
    }
}

/// The files kept beside a trace file (the trace, serial logs, the capture), linked
/// relative to the report's folder so the links survive moving both together.
pub fn artifacts(trace_file: Option<&Path>, report_folder: &Path) -> Markup {
    let Some(folder) = trace_file.and_then(Path::parent) else {
        return html! {};
    };
    let mut files: Vec<PathBuf> = std::fs::read_dir(folder)
        .map(|entries| {
            entries
                .flatten()
                .map(|e| e.path())
                .filter(|p| is_artifact(p))
                .collect()
        })
        .unwrap_or_default();
    files.sort();
    if files.is_empty() {
        return html! {};
    }
    html! {
        p.artifacts { "files: "
            @for file in &files {
                a href=(link(file, report_folder)) { (file.file_name().map(|n| n.to_string_lossy()).unwrap_or_default()) } " "
            }
        }
    }
}

fn is_artifact(path: &Path) -> bool {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy())
        .unwrap_or_default();
    name == "trace.jsonl"
        || name == "capture.pcap"
        || (name.starts_with("serial-") && name.ends_with(".log"))
}

/// `file` as a link from `folder`: relative when both can be made absolute.
fn link(file: &Path, folder: &Path) -> String {
    let absolute = |p: &Path| std::path::absolute(p).ok();
    let relative = absolute(file)
        .zip(absolute(folder))
        .and_then(|(file, folder)| pathdiff::diff_paths(file, folder))
        .unwrap_or_else(|| file.to_path_buf());
    relative
        .components()
        .map(|c| c.as_os_str().to_string_lossy().into_owned())
        .collect::<Vec<_>>()
        .join("/")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_near_miss_names_its_event() {
        assert_eq!(
            event_of(
                "same topic, other payload: t \"off\" qos=0 from phone at +1.0 ms (event #42)"
            ),
            Some(42)
        );
        assert_eq!(event_of("no event here"), None);
    }

    #[test]
    fn links_are_relative_to_the_report() {
        assert_eq!(
            link(Path::new("/tmp/out/a/trace.jsonl"), Path::new("/tmp/out")),
            "a/trace.jsonl"
        );
        assert_eq!(
            link(Path::new("/tmp/out/a/trace.jsonl"), Path::new("/tmp/html")),
            "../out/a/trace.jsonl"
        );
    }
}
