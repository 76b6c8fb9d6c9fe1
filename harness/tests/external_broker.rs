//! `hil run --broker`: scenarios against a broker we did not write (Debian's mosquitto),
//! two runs at once on it, each scenario in its own namespace.

mod support;

use std::path::Path;
use std::process::{Command, Stdio};

use support::{assert_passed, hil_exe, Lines, Mosquitto};

const QUIET: &str = r#"name: quiet
clients:
  phone: {}
  display: {}
steps:
  - wait: { for: 1s }
  - publish: { as: phone, topic: living_room_lights, payload: "mine" }
  - expect_message: { topic: living_room_lights, payload: "mine", to: display, within: 2s }
"#;

const LOUD: &str = r#"name: loud
boards:
  lamp: { profile: sim }
clients:
  phone: {}
steps:
  - expect_connected: { client: lamp, within: 3s }
  - repeat:
      times: 20
      steps:
        - publish: { as: phone, topic: living_room_lights, payload: "on" }
        - press_switch: { board: lamp }
  - expect_message: { topic: living_room_lights, from: lamp, within: 2s }
"#;

fn deliveries_to(trace: &Path, client: &str) -> Vec<String> {
    std::fs::read_to_string(trace)
        .unwrap()
        .lines()
        .map(|line| serde_json::from_str::<serde_json::Value>(line).unwrap())
        .filter(|e| e["client"] == client && e["dir"] == "b2c" && e["packet"] == "publish")
        .map(|e| format!("{} {}", e["topic"], e["payload"]))
        .collect()
}

#[test]
fn two_runs_share_one_mosquitto_without_hearing_each_other() {
    let broker = Mosquitto::start();
    let mut wire = Command::new("mosquitto_sub")
        .args(["-h", "127.0.0.1", "-p", &broker.port.to_string()])
        .args(["-t", "hil/#", "-v", "-W", "30"])
        .stdout(Stdio::piped())
        .spawn()
        .expect("mosquitto_sub is installed (ci/test.sh installs mosquitto-clients)");
    let wire_lines = Lines::of(wire.stdout.take().unwrap());

    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("quiet.yaml"), QUIET).unwrap();
    std::fs::write(dir.path().join("loud.yaml"), LOUD).unwrap();
    let runs: Vec<_> = ["a", "b"]
        .into_iter()
        .map(|run| {
            Command::new(hil_exe())
                .current_dir(dir.path())
                .args(["run", ".", "--jobs", "2", "--broker", &broker.url()])
                .args(["--out", &format!("out-{run}")])
                .args(["--json", &format!("report-{run}.json")])
                .args(["--junit", &format!("junit-{run}.xml")])
                .env("NO_COLOR", "1")
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    for run in runs {
        assert_passed(&run.wait_with_output().unwrap());
    }
    for run in ["a", "b"] {
        // The reports say what a tap in front of someone else's broker cannot see.
        for report in [format!("report-{run}.json"), format!("junit-{run}.xml")] {
            let text = std::fs::read_to_string(dir.path().join(&report)).unwrap();
            assert!(
                text.contains("retained messages left by earlier runs"),
                "{report}: {text}"
            );
        }
        let trace = dir.path().join(format!("out-{run}/quiet/trace.jsonl"));
        assert_eq!(
            deliveries_to(&trace, "display"),
            vec!["\"living_room_lights\" \"mine\"".to_string()],
            "run {run}: the quiet scenario hears only its own phone"
        );
    }
    // On the wire, the broker saw every run's scenarios under their own prefixes.
    let line = wire_lines.wait_for("a namespaced publish", |l| {
        l.starts_with("hil/") && l.contains("/living_room_lights ")
    });
    assert!(
        line.split('/')
            .nth(2)
            .is_some_and(|index| index.parse::<usize>().is_ok()),
        "{line}"
    );
    let _ = wire.kill();
    let _ = wire.wait();
}

#[test]
fn a_broker_url_without_its_scheme_is_a_usage_error() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("bad_broker_url.yaml"),
        "name: fine\nclients:\n  phone: {}\nsteps:\n  - publish: { as: phone, topic: t, payload: x }\n",
    )
    .unwrap();
    let output = Command::new(hil_exe())
        .current_dir(dir.path())
        .args(["run", ".", "--broker", "127.0.0.1:1883"])
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&output.stderr).contains("mqtt://HOST:PORT"));
}

/// Steps that change the broker cannot change someone else's: against `--broker` they
/// end their scenario as an error that names the step and what to do, instead of
/// passing while doing nothing.
#[test]
fn steps_that_change_the_broker_are_errors_on_an_external_one() {
    let broker = Mosquitto::start();
    let dir = tempfile::tempdir().unwrap();
    for (name, step) in [
        ("refuse", "deny_subscribe: { filter: \"secret/#\" }"),
        ("restart", "broker_restart: { down_for: 100ms }"),
    ] {
        let scenario = format!("name: {name}\nclients:\n  phone: {{}}\nsteps:\n  - {step}\n");
        std::fs::write(dir.path().join(format!("{name}.yaml")), scenario).unwrap();
    }
    let output = Command::new(hil_exe())
        .current_dir(dir.path())
        .args([
            "run",
            ".",
            "--broker",
            &broker.url(),
            "--json",
            "report.json",
        ])
        .env("NO_COLOR", "1")
        .output()
        .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    assert_eq!(output.status.code(), Some(3), "{text}");
    let report: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.path().join("report.json")).unwrap())
            .unwrap();
    for scenario in report["scenarios"].as_array().unwrap() {
        assert_eq!(scenario["status"], "error", "{scenario}");
    }
    for step in ["deny_subscribe", "broker_restart"] {
        assert!(
            text.contains(&format!("`{step}` needs hil's embedded broker")),
            "{text}"
        );
    }
}
