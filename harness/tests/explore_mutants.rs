//! `hil explore` finds bugs: mutants of the C core (fixtures/mutants/*.patch, each a
//! different broken behaviour, applied to a copy of light_controller.c with `patch`)
//! are built as shared libraries and explored with `--firmware-lib`. At least 7 of 8
//! must be found, each shrunk to at most 8 steps, and each shrunk scenario must fail
//! under `hil run --firmware-lib MUTANT` and pass on the built-in core. On the built-in
//! core, generated runs raise no violation.

mod support;

use std::path::{Path, PathBuf};
use std::process::Command;

use assert_cmd::cargo::CommandCargoExt;
use support::hil_exe;

/// Mutants explored at once, one per core (each explore runs one scenario at a time).
const AT_ONCE: usize = 2;

fn mutants() -> Vec<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../fixtures/mutants");
    hil::explore::mutants::patches(&dir).unwrap_or_else(|e| panic!("{e}"))
}

/// `patch` applied to the shipped core, built in `dir`.
fn build_mutant(dir: &Path, patch: &Path) -> PathBuf {
    hil::explore::mutants::build(dir, patch).unwrap_or_else(|e| panic!("{e}"))
}

/// How `hil explore` marks a finding whose scenario did not fail every `hil run`.
const NOT_REPRODUCED: &str = " (hil run did not fail it every time)";

/// What exploring one mutant came to.
struct Explored {
    mutant: String,
    found: Option<PathBuf>,
    output: String,
}

fn explore(dir: &Path, library: &Path, seed: u64) -> Explored {
    let name = library.file_stem().unwrap().to_string_lossy().to_string();
    let output = Command::cargo_bin("hil")
        .unwrap()
        .args([
            "explore",
            "--budget",
            "60s",
            "--jobs",
            "1",
            "--seed",
            &seed.to_string(),
        ])
        .arg("--firmware-lib")
        .arg(library)
        .arg("--out")
        .arg(dir.join(format!("{name}-out")))
        .arg("--db")
        .arg(dir.join(format!("{name}-db")))
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout).to_string();
    let text = format!("{stdout}{}", String::from_utf8_lossy(&output.stderr));
    // The finding `hil run` reproduced; explore goes on after one it did not.
    let found = (output.status.code() == Some(1))
        .then(|| {
            let mut found = stdout.lines().filter(|line| line.starts_with("FOUND"));
            let first = found.clone().next();
            found
                .find(|line| !line.ends_with(NOT_REPRODUCED))
                .or(first)
                .and_then(|line| line.split(" — ").nth(1))
                .map(|rest| PathBuf::from(rest.trim_end_matches(NOT_REPRODUCED)))
        })
        .flatten();
    Explored {
        mutant: name,
        found,
        output: text,
    }
}

fn hil_run(file: &Path, library: Option<&Path>) -> Option<i32> {
    let mut command = Command::new(hil_exe());
    command.arg("run").arg(file);
    if let Some(library) = library {
        command.arg("--firmware-lib").arg(library);
    }
    command.output().unwrap().status.code()
}

#[test]
fn explore_finds_seven_of_eight_mutants_and_shrinks_each_to_a_reproducing_scenario() {
    let dir = tempfile::tempdir().unwrap();
    let patches = mutants();
    assert_eq!(patches.len(), 8, "{patches:?}");
    let libraries: Vec<PathBuf> = patches
        .iter()
        .map(|p| build_mutant(dir.path(), p))
        .collect();
    let mut explored = Vec::new();
    for batch in libraries.chunks(AT_ONCE) {
        let handles: Vec<_> = batch
            .iter()
            .cloned()
            .map(|library| {
                let dir = dir.path().to_path_buf();
                std::thread::spawn(move || explore(&dir, &library, 11))
            })
            .collect();
        explored.extend(handles.into_iter().map(|h| h.join().unwrap()));
    }
    let mut report = Vec::new();
    let mut killed = 0;
    for (one, library) in explored.iter().zip(&libraries) {
        let Some(file) = &one.found else {
            report.push(format!("{}: not found\n{}", one.mutant, one.output));
            continue;
        };
        let scenario = hil::scenario::load(file, &["sim"]).unwrap();
        let steps = scenario.steps.len();
        let on_mutant = hil_run(file, Some(library));
        let on_builtin = hil_run(file, None);
        let good = steps <= 8 && on_mutant == Some(1) && on_builtin == Some(0);
        report.push(format!(
            "{}: {steps} steps, hil run on the mutant {on_mutant:?}, on the built-in core {on_builtin:?}\n{}",
            one.mutant,
            std::fs::read_to_string(file).unwrap()
        ));
        killed += usize::from(good);
    }
    assert!(
        killed >= 7,
        "{killed} of 8 found and reproduced:\n{}",
        report.join("\n")
    );
}

#[test]
fn generated_runs_on_the_built_in_core_raise_no_violation() {
    let dir = tempfile::tempdir().unwrap();
    let output = Command::cargo_bin("hil")
        .unwrap()
        .args(["explore", "--runs", "40", "--jobs", "2", "--seed", "5"])
        .arg("--out")
        .arg(dir.path().join("out"))
        .arg("--db")
        .arg(dir.path().join("db"))
        .output()
        .unwrap();
    assert_eq!(
        output.status.code(),
        Some(0),
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("40 run(s)"), "{stderr}");
}

#[test]
fn keep_going_finds_each_invariant_once_and_the_visual_report_draws_the_findings() {
    let dir = tempfile::tempdir().unwrap();
    let patch = mutants()
        .into_iter()
        .find(|p| p.ends_with("repeat_toggles.patch"))
        .unwrap();
    let library = build_mutant(dir.path(), &patch);
    let html = dir.path().join("findings.html");
    let output = Command::new(hil_exe())
        .args(["explore", "--runs", "8", "--jobs", "2", "--seed", "11"])
        .arg("--keep-going")
        .arg("--firmware-lib")
        .arg(&library)
        .arg("--out")
        .arg(dir.path().join("out"))
        .arg("--db")
        .arg(dir.path().join("db"))
        .arg("--html")
        .arg(&html)
        .output()
        .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    assert_eq!(output.status.code(), Some(1), "{text}");
    assert!(
        text.contains("8 run(s)"),
        "all eight runs, not only up to the first finding:\n{text}"
    );
    let reproduced: Vec<&str> = text
        .lines()
        .filter(|line| line.starts_with("FOUND") && !line.ends_with(NOT_REPRODUCED))
        .map(|line| line.split(": ").next().unwrap())
        .collect();
    assert!(!reproduced.is_empty(), "{text}");
    let distinct: std::collections::BTreeSet<_> = reproduced.iter().collect();
    assert_eq!(
        distinct.len(),
        reproduced.len(),
        "one finding per invariant:\n{text}"
    );
    let page = std::fs::read_to_string(&html).unwrap_or_else(|e| panic!("{e}\n{text}"));
    assert!(
        page.contains("explore finding"),
        "the findings are in the report"
    );
    assert!(page.contains("<svg"), "with their sequence diagrams");
}
