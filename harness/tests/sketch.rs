//! Sketch boards: the Arduino sketch itself, built for the host, plays the reference
//! suite through the CLI (`hil run --sim sketch`), and a broken copy of the sketch fails
//! a scenario the core build passes.

mod support;

use std::collections::BTreeSet;
use std::path::Path;
use std::process::Output;

use hil_firmware::host_build::{self, Compiler, Family, HostBuild};

/// Scenarios whose result differs between the sketch and the core for a reason that is
/// real (firmware/README.md, "Sketch and core"): the press during a partition. The
/// partitioned tap closes the board's connection without a CONNACK, PubSubClient's
/// `connect()` waits its whole socket timeout (2 s) for one, and the switch is not read
/// meanwhile, so a press made during an attempt toggles the relay up to 2 s late.
const DIFFERENT_ON_THE_SKETCH: [&str; 1] =
    ["a press during a network partition is published when it heals"];

fn scenarios_dir() -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../scenarios")
}

fn hil_run(args: &[&str], sketch_board: Option<&Path>, json: &Path) -> Output {
    let mut command = std::process::Command::new(support::hil_exe());
    command
        .arg("run")
        .args(args)
        .arg("--json")
        .arg(json)
        .env("INSTA_UPDATE", "no")
        .current_dir(Path::new(env!("CARGO_MANIFEST_DIR")).join(".."));
    if let Some(program) = sketch_board {
        command.env("HIL_SKETCH_BOARD", program);
    }
    command.output().expect("hil runs")
}

/// (passed, not passed) scenario names of a JSON report.
fn results(json: &Path) -> (BTreeSet<String>, BTreeSet<String>) {
    let report: serde_json::Value =
        serde_json::from_slice(&std::fs::read(json).expect("the report")).expect("JSON");
    let mut passed = BTreeSet::new();
    let mut other = BTreeSet::new();
    for scenario in report["scenarios"].as_array().expect("scenarios") {
        let name = scenario["name"].as_str().expect("a name").to_string();
        if scenario["status"] == "passed" {
            passed.insert(name);
        } else {
            other.insert(name);
        }
    }
    (passed, other)
}

#[test]
fn the_reference_suite_passes_on_sketch_boards_but_for_the_written_down_differences() {
    let dir = tempfile::tempdir().unwrap();
    let json = dir.path().join("report.json");
    let output = hil_run(&["--sim", "sketch", "scenarios/"], None, &json);
    let (passed, other) = results(&json);
    let scenario_files = std::fs::read_dir(scenarios_dir())
        .unwrap()
        .filter(|e| {
            e.as_ref()
                .unwrap()
                .path()
                .extension()
                .is_some_and(|x| x == "yaml")
        })
        .count();
    assert_eq!(
        passed.len() + other.len(),
        scenario_files,
        "every scenario ran"
    );
    let unexplained: Vec<_> = other
        .iter()
        .filter(|name| !DIFFERENT_ON_THE_SKETCH.contains(&name.as_str()))
        .collect();
    assert!(
        unexplained.is_empty(),
        "failed on sketch boards: {unexplained:?}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(
        passed.len() >= scenario_files - DIFFERENT_ON_THE_SKETCH.len(),
        "{passed:?}"
    );
}

/// The shipped sketch with the switch read the wrong way round, as if the pull-up had
/// been forgotten in the code.
fn broken_sketch(dir: &Path) -> std::path::PathBuf {
    let shipped = std::fs::read_to_string(host_build::shipped_sketch()).unwrap();
    let right = "digitalRead(BUTTON_PIN) == LOW";
    assert!(
        shipped.contains(right),
        "the sketch reads the switch as expected"
    );
    let broken = dir.join("light_controller.ino");
    std::fs::write(
        &broken,
        shipped.replace(right, "digitalRead(BUTTON_PIN) == HIGH"),
    )
    .unwrap();
    broken
}

#[test]
fn a_broken_sketch_fails_a_scenario_that_the_core_passes() {
    let dir = tempfile::tempdir().unwrap();
    let program = dir.path().join("board");
    host_build::build(
        &HostBuild {
            sketch: broken_sketch(dir.path()),
            family: Family::Esp8266,
            defines: Vec::new(),
            out: program.clone(),
            work: dir.path().join("objects"),
        },
        &Compiler::from_env(false),
        &Compiler::from_env(true),
    )
    .unwrap_or_else(|error| panic!("the broken sketch still compiles:\n{error}"));
    let scenario = "scenarios/switch_press_publishes.yaml";
    let json = dir.path().join("core.json");
    support::assert_passed(&hil_run(&[scenario], None, &json));
    let json = dir.path().join("sketch.json");
    let output = hil_run(&["--sim", "sketch", scenario], Some(&program), &json);
    assert_eq!(
        output.status.code(),
        Some(1),
        "the broken sketch fails the scenario:\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let (passed, _) = results(&json);
    assert!(passed.is_empty());

    // `profile: sim-sketch` picks the sketch without --sim.
    let text =
        std::fs::read_to_string(scenarios_dir().join("switch_press_publishes.yaml")).unwrap();
    assert!(text.contains("{ profile: sim }"));
    let sketch_scenario = dir.path().join("switch_press_on_the_sketch.yaml");
    std::fs::write(
        &sketch_scenario,
        text.replace("{ profile: sim }", "{ profile: sim-sketch }")
            .replace("snapshot: true", "snapshot: false"),
    )
    .unwrap();
    let json = dir.path().join("profile.json");
    let output = hil_run(&[sketch_scenario.to_str().unwrap()], Some(&program), &json);
    assert_eq!(
        output.status.code(),
        Some(1),
        "profile sim-sketch runs the broken sketch:\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let output = hil_run(&[sketch_scenario.to_str().unwrap()], None, &json);
    support::assert_passed(&output);
}

/// A relay module that switches on a LOW input: the build's RELAY_ACTIVE_LOW inverts the
/// pin, and the trace still says what the relay does.
#[test]
fn an_active_low_relay_build_reads_the_same_in_the_trace() {
    let dir = tempfile::tempdir().unwrap();
    let program = dir.path().join("board");
    host_build::build(
        &HostBuild {
            sketch: host_build::shipped_sketch(),
            family: Family::Esp8266,
            defines: vec!["RELAY_ACTIVE_LOW=1".into()],
            out: program.clone(),
            work: dir.path().join("objects"),
        },
        &Compiler::from_env(false),
        &Compiler::from_env(true),
    )
    .unwrap_or_else(|error| panic!("the active-low build fails:\n{error}"));
    let json = dir.path().join("report.json");
    let output = hil_run(
        &["--sim", "sketch", "scenarios/switch_press_publishes.yaml"],
        Some(&program),
        &json,
    );
    support::assert_passed(&output);
}
