//! `--firmware-lib`: `hil run` and `hil sim` run a core loaded from a shared library
//! instead of the built-in one, and refuse a library that is not a usable core (exit 2).

mod support;

use std::io::Write;
use std::process::{Command, Output, Stdio};

use support::{core_library, hil_exe};

const TURNS_ON: &str = "\
name: the phone turns the lamp on
timeout: 10s
boards:
  lamp: { profile: sim }
clients:
  phone: {}
steps:
  - expect_connected: { client: lamp, within: 2s }
  - publish: { as: phone, topic: living_room_lights, payload: \"on\", qos: 1 }
  - expect_relay: { board: lamp, state: on, within: 1s }
";

fn hil_run(scenario: &std::path::Path, extra: &[&str]) -> Output {
    Command::new(hil_exe())
        .arg("run")
        .arg(scenario)
        .args(extra)
        .output()
        .unwrap()
}

fn text(output: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

#[test]
fn hil_run_runs_the_core_from_the_library() {
    let dir = tempfile::tempdir().unwrap();
    let scenario = dir.path().join("turns_on.yaml");
    std::fs::write(&scenario, TURNS_ON).unwrap();
    let same = core_library(dir.path(), "same", &[]);
    // "on" read as "off": the relay never switches on.
    let deaf = core_library(
        dir.path(),
        "deaf",
        &[(
            "if (span_is(p, \"on\", true)) {\n        on = true;",
            "if (span_is(p, \"on\", true)) {\n        on = false;",
        )],
    );

    let passed = hil_run(&scenario, &["--firmware-lib", same.to_str().unwrap()]);
    assert_eq!(passed.status.code(), Some(0), "{}", text(&passed));
    let failed = hil_run(&scenario, &["--firmware-lib", deaf.to_str().unwrap()]);
    assert_eq!(failed.status.code(), Some(1), "{}", text(&failed));
    assert!(text(&failed).contains("expect_relay"), "{}", text(&failed));
}

#[test]
fn a_library_that_is_not_a_usable_core_is_a_usage_error() {
    let dir = tempfile::tempdir().unwrap();
    let scenario = dir.path().join("turns_on.yaml");
    std::fs::write(&scenario, TURNS_ON).unwrap();
    let missing = dir.path().join("missing.so");
    let output = hil_run(&scenario, &["--firmware-lib", missing.to_str().unwrap()]);
    assert_eq!(output.status.code(), Some(2), "{}", text(&output));
    assert!(
        text(&output).contains("missing.so: cannot load it"),
        "{}",
        text(&output)
    );

    let no_press = core_library(
        dir.path(),
        "no_press",
        &[
            (
                "void lc_press(lc_ctx *ctx)",
                "void lc_press_gone(lc_ctx *ctx);\nvoid lc_press_gone(lc_ctx *ctx)",
            ),
            (
                "lc_press(ctx);\n    } else if",
                "lc_press_gone(ctx);\n    } else if",
            ),
        ],
    );
    let output = hil_run(&scenario, &["--firmware-lib", no_press.to_str().unwrap()]);
    assert_eq!(output.status.code(), Some(2), "{}", text(&output));
    assert!(
        text(&output).contains("does not export `lc_press`"),
        "{}",
        text(&output)
    );

    let sketch = hil_run(
        &scenario,
        &[
            "--sim",
            "sketch",
            "--firmware-lib",
            missing.to_str().unwrap(),
        ],
    );
    assert_eq!(sketch.status.code(), Some(2), "{}", text(&sketch));
}

#[test]
fn hil_sim_boots_the_core_from_the_library() {
    let dir = tempfile::tempdir().unwrap();
    let changed = core_library(
        dir.path(),
        "changed",
        &[(
            "#define FW_NAME \"light-controller\"",
            "#define FW_NAME \"changed-core\"",
        )],
    );
    // Nothing listens on port 1: the board boots, then fails to connect.
    let mut sim = Command::new(hil_exe())
        .args(["sim", "--broker", "mqtt://127.0.0.1:1", "--firmware-lib"])
        .arg(&changed)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = sim.stdin.take().unwrap();
    writeln!(stdin, "status").unwrap();
    writeln!(stdin, "quit").unwrap();
    drop(stdin);
    let output = support::wait_output(sim);
    assert_eq!(output.status.code(), Some(0), "{}", text(&output));
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        stdout
            .lines()
            .next()
            .is_some_and(|line| line.starts_with("HIL boot fw=changed-core version=")),
        "{stdout}"
    );
    assert!(stdout.contains("HIL status state="), "{stdout}");
}
