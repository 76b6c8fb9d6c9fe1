//! Broken scenario files (`fixtures/bad-scenarios/`) through the `hil` binary: each one
//! is refused with exit 2, a `file:line:col` and a message that says what is wrong, and
//! nothing runs.

mod support;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use support::hil_exe;

fn corpus() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../fixtures/bad-scenarios")
}

fn hil(dir: &Path, args: &[&std::ffi::OsStr]) -> Output {
    Command::new(hil_exe())
        .current_dir(dir)
        .args(args)
        .env("NO_COLOR", "1")
        .output()
        .unwrap()
}

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

/// Every `NAME.yaml` with its `NAME.expect`: (file name, `line:col`, phrase).
fn cases() -> Vec<(String, String, String)> {
    let mut cases: Vec<_> = std::fs::read_dir(corpus())
        .unwrap()
        .map(|entry| entry.unwrap().path())
        .filter(|path| path.extension().is_some_and(|ext| ext == "yaml"))
        .map(|path| {
            let expect = std::fs::read_to_string(path.with_extension("expect"))
                .unwrap_or_else(|_| panic!("{} has no .expect file", path.display()));
            let mut lines = expect.lines();
            let place = lines.next().unwrap_or_default().to_string();
            let phrase = lines.next().unwrap_or_default().to_string();
            let name = path.file_name().unwrap().to_string_lossy().into_owned();
            (name, place, phrase)
        })
        .collect();
    cases.sort();
    cases
}

#[test]
fn the_corpus_has_every_kind_of_mistake() {
    assert!(cases().len() >= 30, "{} cases", cases().len());
}

#[test]
fn every_broken_file_is_refused_with_its_place_and_reason() {
    for (name, place, phrase) in cases() {
        let output = hil(&corpus(), &["check".as_ref(), name.as_ref()]);
        let text = stderr(&output);
        assert_eq!(output.status.code(), Some(2), "{name}: {text}");
        let located = if place.is_empty() {
            format!("{name}: ")
        } else {
            format!("{name}:{place}")
        };
        assert!(
            text.contains(&located),
            "{name}: wants {located:?} in\n{text}"
        );
        assert!(
            text.contains(&phrase),
            "{name}: wants {phrase:?} in\n{text}"
        );
        if !place.is_empty() {
            assert!(
                text.contains("here"),
                "{name}: the snippet points at the place\n{text}"
            );
        }
    }
}

#[test]
fn a_run_with_one_broken_file_runs_nothing_and_writes_no_report() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("fine.yaml"),
        "name: fine\nclients:\n  phone: {}\nsteps:\n  - publish: { as: phone, topic: t, payload: x }\n",
    )
    .unwrap();
    std::fs::copy(
        corpus().join("unknown_step.yaml"),
        dir.path().join("unknown_step.yaml"),
    )
    .unwrap();
    let output = hil(
        dir.path(),
        &[
            "run".as_ref(),
            ".".as_ref(),
            "--json".as_ref(),
            "report.json".as_ref(),
        ],
    );
    let text = stderr(&output);
    assert_eq!(output.status.code(), Some(2), "{text}");
    assert!(text.contains("unknown_step.yaml:8:5"), "{text}");
    assert!(text.contains("nothing was run"), "{text}");
    assert!(!String::from_utf8_lossy(&output.stdout).contains("PASS"));
    assert!(!dir.path().join("report.json").exists());
}

#[test]
fn checking_the_whole_corpus_names_every_file() {
    let output = hil(&corpus(), &["check".as_ref(), ".".as_ref()]);
    let text = stderr(&output);
    assert_eq!(output.status.code(), Some(2), "{text}");
    for (name, _, _) in cases() {
        assert!(text.contains(&name), "{name} missing from\n{text}");
    }
}

#[test]
fn a_ten_megabyte_file_is_refused_without_reading_it_all() {
    let dir = tempfile::tempdir().unwrap();
    let mut text = String::from("name: huge\nsteps:\n");
    while text.len() < 10 << 20 {
        text.push_str("  - wait: { for: 1ms }\n");
    }
    std::fs::write(dir.path().join("huge.yaml"), text).unwrap();
    let output = hil(dir.path(), &["check".as_ref(), "huge.yaml".as_ref()]);
    let text = stderr(&output);
    assert_eq!(output.status.code(), Some(2), "{text}");
    assert!(text.contains("huge.yaml"), "{text}");
    assert!(text.contains("larger than 1024 KiB"), "{text}");
}

#[test]
fn a_file_name_that_is_not_utf8_is_named_readably() {
    use std::os::unix::ffi::OsStrExt;
    let dir = tempfile::tempdir().unwrap();
    let name = std::ffi::OsStr::from_bytes(b"lights-\xff.yaml");
    std::fs::write(dir.path().join(name), "name: x\nsteps:\n  - publsh: {}\n").unwrap();
    let output = hil(dir.path(), &["check".as_ref(), ".".as_ref()]);
    let text = stderr(&output);
    assert_eq!(output.status.code(), Some(2), "{text}");
    assert!(text.contains("lights-\u{fffd}.yaml:3:5"), "{text}");
    assert!(text.contains("did you mean the step `publish`?"), "{text}");
}

#[test]
fn the_issue_example_and_every_reference_scenario_are_valid() {
    let scenarios = Path::new(env!("CARGO_MANIFEST_DIR")).join("../scenarios");
    let output = hil(&scenarios, &["check".as_ref(), ".".as_ref()]);
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
}

#[test]
fn the_schema_describes_every_step() {
    let output = hil(&corpus(), &["schema".as_ref()]);
    assert_eq!(output.status.code(), Some(0));
    let schema: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    let text = schema.to_string();
    for step in [
        "publish",
        "expect_message",
        "expect_no_message",
        "expect_trace",
        "connect",
        "disconnect",
        "expect_connected",
        "expect_disconnected",
        "wait",
        "repeat",
        "expect_relay",
        "press_switch",
        "expect_serial",
        "send_serial",
        "expect_boot",
        "reset",
        "power_cycle",
        "wifi",
    ] {
        assert!(text.contains(&format!("\"{step}\"")), "{step} missing");
    }
}

#[test]
fn discovery_stays_inside_the_folder_and_ends_on_a_link_loop() {
    let outside = tempfile::tempdir().unwrap();
    std::fs::write(outside.path().join("elsewhere.yaml"), "not: [a scenario").unwrap();
    let root = tempfile::tempdir().unwrap();
    let suite = root.path().join("suite");
    std::fs::create_dir_all(suite.join("nested")).unwrap();
    std::fs::write(
        suite.join("nested/ok.yaml"),
        "name: ok\nclients:\n  phone: {}\nsteps:\n  - publish: { as: phone, topic: t, payload: x }\n",
    )
    .unwrap();
    std::os::unix::fs::symlink("..", suite.join("nested/loop")).unwrap();
    std::os::unix::fs::symlink(outside.path(), suite.join("outside")).unwrap();
    std::os::unix::fs::symlink(
        outside.path().join("elsewhere.yaml"),
        suite.join("linked.yaml"),
    )
    .unwrap();
    let output = hil(root.path(), &["check".as_ref(), "suite".as_ref()]);
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    assert_eq!(
        String::from_utf8_lossy(&output.stdout).trim(),
        "1 scenario file(s) valid"
    );
}

#[test]
fn every_problem_of_a_file_is_reported_at_its_place() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("four.yaml"),
        "name: four mistakes\n\
         timeout: 2s\n\
         boards:\n  lamp: { profile: sim }\n\
         clients:\n  phone: {}\n\
         steps:\n\
         \x20 - publish: { as: lamp, topic: living_room_lights, payload: \"on\" }\n\
         \x20 - expect_relay: { board: phone, state: on }\n\
         \x20 - expect_message: { topic: \"a/#/b\", within: 5s }\n\
         \x20 - wait: { for: 3s }\n",
    )
    .unwrap();
    let output = hil(dir.path(), &["check".as_ref(), "four.yaml".as_ref()]);
    let text = stderr(&output);
    assert_eq!(output.status.code(), Some(2), "{text}");
    for (place, phrase) in [
        (
            "four.yaml:8:20",
            "`lamp` is a board; this step drives a harness client",
        ),
        (
            "four.yaml:9:28",
            "`phone` is a client; this step drives a board",
        ),
        ("four.yaml:10:30", "`a/#/b` is not a valid topic filter"),
        (
            "four.yaml:10:47",
            "`within: 5s` is longer than the scenario's timeout of 2s",
        ),
        (
            "four.yaml:11:18",
            "`for: 3s` is longer than the scenario's timeout of 2s",
        ),
    ] {
        assert!(
            text.contains(&format!("{place}: {phrase}")),
            "{place} {phrase}:\n{text}"
        );
    }
}
