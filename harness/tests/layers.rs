//! The rules of ARCHITECTURE.md's "Layers", checked from the source: a forbidden import
//! fails here, naming the file, the line and the rule.

use std::path::{Path, PathBuf};

fn source_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("src")
}

/// Every `.rs` file under `dir` (or the file `dir.rs`), with its text.
fn sources(module: &str) -> Vec<(PathBuf, String)> {
    let mut files = Vec::new();
    let root = source_root();
    let single = root.join(format!("{module}.rs"));
    if single.is_file() {
        files.push(single);
    }
    let mut folders = vec![root.join(module)];
    while let Some(folder) = folders.pop() {
        let Ok(entries) = std::fs::read_dir(&folder) else {
            continue;
        };
        for entry in entries.flatten() {
            let path = entry.path();
            if path.is_dir() {
                folders.push(path);
            } else if path.extension().is_some_and(|ext| ext == "rs") {
                files.push(path);
            }
        }
    }
    assert!(!files.is_empty(), "no sources for module {module}");
    files
        .into_iter()
        .map(|path| {
            let text = std::fs::read_to_string(&path).unwrap();
            (path, text)
        })
        .collect()
}

/// The crate paths a text names (`crate::a::b`, and each item of `crate::{a, b::c}`),
/// with their line numbers; comments are skipped.
fn crate_paths(text: &str) -> Vec<(usize, String)> {
    let mut paths = Vec::new();
    for (index, line) in text.lines().enumerate() {
        let code = line.split("//").next().unwrap_or_default();
        let mut rest = code;
        while let Some(at) = rest.find("crate::") {
            rest = &rest[at + "crate::".len()..];
            if let Some(group) = rest.strip_prefix('{') {
                let end = group.find('}').unwrap_or(group.len());
                for item in group[..end].split(',') {
                    paths.push((index + 1, item.trim().to_string()));
                }
            } else {
                let end = rest
                    .find(|c: char| !(c.is_alphanumeric() || c == '_' || c == ':'))
                    .unwrap_or(rest.len());
                paths.push((index + 1, rest[..end].trim_end_matches(':').to_string()));
            }
        }
    }
    paths
}

/// Checks that no file of `module` names a path for which `forbidden` gives a reason.
fn check(module: &str, rule: &str, forbidden: impl Fn(&str) -> bool) -> Vec<String> {
    let mut broken = Vec::new();
    for (path, text) in sources(module) {
        for (line, used) in crate_paths(&text) {
            if forbidden(&used) {
                broken.push(format!(
                    "{}:{line}: `crate::{used}`: {rule}",
                    path.strip_prefix(source_root()).unwrap_or(&path).display()
                ));
            }
        }
    }
    broken
}

fn top(path: &str) -> &str {
    path.split("::").next().unwrap_or(path)
}

/// What must never break, in the words of ARCHITECTURE.md.
fn broken_rules() -> Vec<String> {
    let mut broken = Vec::new();
    broken.extend(check("trace", "`trace` imports nothing above it", |used| {
        top(used) != "trace"
    }));
    broken.extend(check(
        "expect",
        "matchers read the trace and nothing else",
        |used| top(used) != "trace",
    ));
    broken.extend(check(
        "scenario",
        "the scenario format knows no board or broker",
        |used| !matches!(top(used), "steps"),
    ));
    broken.extend(check(
        "steps",
        "a step reaches the world only through its Scene (boards through the Board trait)",
        |used| match top(used) {
            "trace" | "expect" | "steps" => false,
            "board" => !matches!(
                used,
                "board::Board" | "board::BoardFuture" | "board::BoardError" | "board"
            ),
            "tap" => !matches!(used, "tap::Faults" | "tap::DropAmount"),
            _ => true,
        },
    ));
    broken.extend(check(
        "tap",
        "the tap knows nothing of the broker that owns it, snapshots nothing of the runner",
        |used| matches!(top(used), "broker" | "runner" | "snapshot" | "board"),
    ));
    broken.extend(check(
        "chip",
        "the virtual chip knows no board: the app it boots is handed to it from above",
        |used| !matches!(top(used), "chip" | "image" | "trace"),
    ));
    broken.extend(check(
        "record/draft",
        "a draft is made from trace events alone",
        |used| !matches!(top(used), "trace" | "scenario" | "steps" | "record"),
    ));
    broken.extend(check(
        "report",
        "reporters never drive the runner",
        |used| {
            matches!(top(used), "broker" | "board" | "tap" | "engine")
                || used.starts_with("runner::run")
                || used.starts_with("runner::attempt")
                || used.contains("AttemptSetup")
        },
    ));
    broken
}

#[test]
fn the_layers_hold() {
    let broken = broken_rules();
    assert!(
        broken.is_empty(),
        "layering rules broken:\n{}",
        broken.join("\n")
    );
}

#[test]
fn the_scenario_format_does_no_io() {
    let io = [
        "std::fs",
        "std::net",
        "std::process",
        "tokio::fs",
        "tokio::net",
        "tokio::process",
    ];
    let mut found = Vec::new();
    for module in ["steps", "scenario/model", "record/draft"] {
        for (path, text) in sources(module) {
            for (line, code) in text.lines().enumerate() {
                if let Some(what) = io.iter().find(|io| code.contains(*io)) {
                    found.push(format!("{}:{}: {what}", path.display(), line + 1));
                }
            }
        }
    }
    assert!(
        found.is_empty(),
        "I/O in the scenario format:\n{}",
        found.join("\n")
    );
}

#[test]
fn the_firmware_knows_nothing_of_the_harness() {
    let firmware = Path::new(env!("CARGO_MANIFEST_DIR")).join("../firmware");
    let manifest = std::fs::read_to_string(firmware.join("Cargo.toml")).unwrap();
    assert!(
        !manifest.contains("hil ="),
        "firmware/Cargo.toml depends on the harness"
    );
    for entry in std::fs::read_dir(firmware.join("src")).unwrap().flatten() {
        let text = std::fs::read_to_string(entry.path()).unwrap();
        assert!(
            !text.contains("hil::"),
            "{} names the harness",
            entry.path().display()
        );
    }
}

#[test]
fn the_checker_sees_a_forbidden_import() {
    let scratch = "use crate::trace::Event;\nuse crate::{broker::Broker, trace};\n// crate::runner in a comment\n";
    let paths: Vec<String> = crate_paths(scratch).into_iter().map(|(_, p)| p).collect();
    assert_eq!(paths, ["trace::Event", "broker::Broker", "trace"]);
    assert!(paths.iter().any(|used| top(used) != "trace"));
}
