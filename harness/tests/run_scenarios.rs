//! `hil run` end to end through the binary: real brokers, real clients, real reports.

#[path = "chip_support/mod.rs"]
mod chip_support;
mod support;

use std::path::{Path, PathBuf};
use std::process::Output;

use chip_support::VirtualChip;
use hil::image::Chip;
use support::Suite;

fn stdout(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

/// The run ended with `code`; otherwise the test fails showing what it said.
fn assert_exit(output: &Output, code: i32) {
    assert_eq!(
        output.status.code(),
        Some(code),
        "{}{}",
        stdout(output),
        stderr(output)
    );
}

fn publish_and_expect(name: &str, sent: &str, expected: &str) -> String {
    // A pass returns as soon as the message arrives, so its deadline can be generous
    // (parallel test binaries load the machine); a wait that must fail stays short.
    let within = if sent == expected { "5s" } else { "300ms" };
    format!(
        r#"name: {name}
clients:
  phone: {{}}
  display: {{ protocol: 5 }}
steps:
  - publish: {{ as: phone, topic: living_room_lights, payload: "{sent}", qos: 1 }}
  - expect_message: {{ topic: living_room_lights, payload: "{expected}", from: phone, to: display, within: {within} }}
"#
    )
}

/// A JUnit report as the element tree CI tools read: testsuites > testsuite > testcase >
/// failure | skipped | flakyFailure, system-out.
mod junit {
    use serde::Deserialize;

    #[derive(Debug, Deserialize)]
    pub struct Testsuites {
        #[serde(rename = "@tests")]
        pub tests: usize,
        #[serde(rename = "@failures")]
        pub failures: usize,
        #[serde(rename = "@errors")]
        pub errors: usize,
        #[serde(rename = "@skipped")]
        pub skipped: usize,
        pub testsuite: Vec<Testsuite>,
    }

    #[derive(Debug, Deserialize)]
    pub struct Testsuite {
        #[serde(rename = "@name")]
        pub name: String,
        #[serde(rename = "@tests")]
        pub tests: usize,
        #[serde(rename = "@failures")]
        pub failures: usize,
        #[serde(rename = "@time")]
        pub time: f64,
        #[serde(default)]
        pub testcase: Vec<Testcase>,
    }

    #[derive(Debug, Deserialize)]
    pub struct Testcase {
        #[serde(rename = "@name")]
        pub name: String,
        #[serde(rename = "@classname")]
        pub classname: String,
        #[serde(rename = "@time")]
        pub time: f64,
        pub failure: Option<Outcome>,
        pub skipped: Option<Outcome>,
        #[serde(rename = "flakyFailure", default)]
        pub flaky_failures: Vec<Outcome>,
        #[serde(rename = "system-out")]
        pub system_out: Option<String>,
    }

    #[derive(Debug, Deserialize)]
    pub struct Outcome {
        #[serde(rename = "@message")]
        pub message: Option<String>,
        #[serde(rename = "$text", default)]
        pub text: String,
    }

    pub fn parse(xml: &str) -> Testsuites {
        // serde does not look at the root's name: the reader does.
        let mut reader = quick_xml::Reader::from_str(xml);
        loop {
            match reader.read_event() {
                Ok(quick_xml::events::Event::Start(root)) => {
                    assert_eq!(root.name().as_ref(), b"testsuites", "{xml}");
                    break;
                }
                Ok(quick_xml::events::Event::Eof) | Err(_) => panic!("no root element: {xml}"),
                Ok(_) => {}
            }
        }
        quick_xml::de::from_str(xml).unwrap_or_else(|e| panic!("not a JUnit report ({e}): {xml}"))
    }

    /// The one suite of a run, with its one test case.
    pub fn only_case(report: &Testsuites) -> &Testcase {
        assert_eq!(report.testsuite.len(), 1, "{report:?}");
        let suite = &report.testsuite[0];
        assert_eq!(suite.name, "hil scenarios");
        assert_eq!(suite.testcase.len(), 1, "{report:?}");
        &suite.testcase[0]
    }
}

fn json_report(path: &Path) -> serde_json::Value {
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

#[test]
fn a_passing_scenario_exits_0_with_junit_and_json() {
    let suite = Suite::new();
    suite.add(
        "ok.yaml",
        &publish_and_expect("phone reaches display", "on", "on"),
    );
    let output = suite.hil(&[
        "run",
        "ok.yaml",
        "--junit",
        "junit.xml",
        "--json",
        "report.json",
    ]);
    assert_exit(&output, 0);
    assert!(stdout(&output).contains("PASS"), "{}", stdout(&output));

    let junit = junit::parse(&std::fs::read_to_string(suite.path("junit.xml")).unwrap());
    assert_eq!((junit.tests, junit.failures, junit.errors), (1, 0, 0));
    let testsuite = &junit.testsuite[0];
    assert_eq!((testsuite.tests, testsuite.failures), (1, 0));
    assert!(testsuite.time > 0.0, "{junit:?}");
    let case = junit::only_case(&junit);
    assert_eq!(case.name, "phone reaches display");
    assert_eq!(case.classname, "ok.yaml");
    assert!(case.time > 0.0, "{case:?}");
    assert!(case.failure.is_none(), "{case:?}");

    let report = json_report(&suite.path("report.json"));
    assert_eq!(report["summary"]["passed"], 1);
    assert_eq!(report["scenarios"][0]["status"], "passed");
}

#[test]
fn a_failing_scenario_tells_the_story_and_exits_1() {
    let suite = Suite::new();
    suite.add(
        "bad.yaml",
        &publish_and_expect("wrong payload", "on", "off"),
    );
    let output = suite.hil(&["run", "bad.yaml", "--junit", "junit.xml"]);
    assert_exit(&output, 1);
    let text = stdout(&output);
    assert!(text.contains("FAIL"), "{text}");
    assert!(
        text.contains("bad.yaml:7:5"),
        "the failing step's file:line: {text}"
    );
    assert!(
        text.contains("expected: a message on living_room_lights with payload \"off\""),
        "{text}"
    );
    assert!(
        text.contains("same topic, other payload: living_room_lights \"on\""),
        "near misses: {text}"
    );
    assert!(
        text.contains("last ") && text.contains("trace events:"),
        "{text}"
    );

    let junit = junit::parse(&std::fs::read_to_string(suite.path("junit.xml")).unwrap());
    assert_eq!((junit.tests, junit.failures, junit.errors), (1, 1, 0));
    assert_eq!(junit.testsuite[0].failures, 1);
    let case = junit::only_case(&junit);
    let failure = case.failure.as_ref().expect("a <failure> element");
    let message = failure.message.as_deref().unwrap_or_default();
    assert!(
        message.starts_with("bad.yaml:7:5: step 2 `expect_message`: expected a message on living_room_lights with payload \"off\""),
        "{message}"
    );
    assert!(
        failure.text.contains("near misses:"),
        "the story: {failure:?}"
    );
    let trace = case.system_out.as_deref().unwrap_or_default();
    assert!(
        trace.contains("publish"),
        "trace excerpt in system-out: {trace}"
    );
}

#[test]
fn an_invalid_file_runs_nothing_and_exits_2() {
    let suite = Suite::new();
    suite.add("ok.yaml", &publish_and_expect("fine", "on", "on"));
    suite.add(
        "broken.yaml",
        "name: broken\nsteps:\n  - publsh: { as: phone, topic: t, payload: x }\n",
    );
    let output = suite.hil(&["run", ".", "--json", "report.json"]);
    assert_exit(&output, 2);
    assert!(
        stderr(&output).contains("broken.yaml:3:"),
        "{}",
        stderr(&output)
    );
    assert!(!stdout(&output).contains("PASS"), "nothing ran");
}

#[test]
fn partitions_cover_every_scenario_exactly_once() {
    let suite = Suite::new();
    for i in 0..7 {
        suite.add(
            &format!("s{i}.yaml"),
            &publish_and_expect(&format!("scenario {i}"), "on", "on"),
        );
    }
    let mut seen = Vec::new();
    for k in 1..=3 {
        let report = format!("shard{k}.json");
        let output = suite.hil(&[
            "run",
            ".",
            "--partition",
            &format!("{k}/3"),
            "--json",
            &report,
        ]);
        assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
        for scenario in json_report(&suite.path(&report))["scenarios"]
            .as_array()
            .unwrap()
        {
            seen.push(scenario["name"].as_str().unwrap().to_string());
        }
    }
    seen.sort();
    let all: Vec<String> = (0..7).map(|i| format!("scenario {i}")).collect();
    assert_eq!(seen, all);
    let output = suite.hil(&["run", ".", "--partition", "4/3"]);
    assert_eq!(output.status.code(), Some(2));
}

#[test]
fn parallel_scenarios_do_not_hear_each_other() {
    let suite = Suite::new();
    for i in 0..6 {
        suite.add(
            &format!("p{i}.yaml"),
            &publish_and_expect(
                &format!("parallel {i}"),
                &format!("payload-{i}"),
                &format!("payload-{i}"),
            ),
        );
    }
    let output = suite.hil(&["run", ".", "--jobs", "3", "--out", "out"]);
    assert_exit(&output, 0);
    for i in 0..6 {
        let trace =
            std::fs::read_to_string(suite.path(&format!("out/parallel-{i}/trace.jsonl"))).unwrap();
        let payloads: Vec<&str> = trace
            .lines()
            .filter_map(|line| {
                let start = line.find("\"payload\":\"")? + 11;
                Some(&line[start..start + line[start..].find('"')?])
            })
            .collect();
        assert!(!payloads.is_empty());
        assert!(
            payloads.iter().all(|p| *p == format!("payload-{i}")),
            "scenario {i} saw {payloads:?}"
        );
    }
}

#[test]
fn retries_record_every_attempt_and_fail_fast_stops_starting() {
    let suite = Suite::new();
    for i in 0..3 {
        suite.add(
            &format!("f{i}.yaml"),
            &publish_and_expect(&format!("fails {i}"), "on", "off"),
        );
    }
    let output = suite.hil(&[
        "run",
        ".",
        "--jobs",
        "1",
        "--fail-fast",
        "--retries",
        "1",
        "--json",
        "r.json",
        "--out",
        "out",
    ]);
    assert_eq!(output.status.code(), Some(1));
    let report = json_report(&suite.path("r.json"));
    let scenarios = report["scenarios"].as_array().unwrap();
    let statuses: Vec<&str> = scenarios
        .iter()
        .map(|s| s["status"].as_str().unwrap())
        .collect();
    assert_eq!(
        statuses,
        ["failed", "not_run", "not_run"],
        "fail-fast started no second scenario"
    );
    assert_eq!(scenarios[0]["attempts"].as_array().unwrap().len(), 2);
    assert_eq!(report["summary"]["not_run"], 2);
    for attempt in ["attempt-1", "attempt-2"] {
        let trace =
            std::fs::read_to_string(suite.path(&format!("out/fails-0/{attempt}/trace.jsonl")))
                .unwrap_or_else(|e| panic!("{attempt}'s trace is kept: {e}"));
        assert!(trace.contains("\"payload\":\"on\""), "{attempt}: {trace}");
    }
    assert!(
        scenarios[0]["trace_file"]
            .as_str()
            .unwrap()
            .ends_with("out/fails-0/attempt-2/trace.jsonl"),
        "{}",
        scenarios[0]["trace_file"]
    );
}

#[test]
fn snapshot_mismatch_writes_snap_new_and_accept_makes_it_pass() {
    let suite = Suite::new();
    let scenario = |payload: &str| {
        format!(
            "snapshot: true\n{}",
            publish_and_expect("snapshotted", payload, payload)
        )
    };
    suite.add("snap.yaml", &scenario("on"));
    let snap = suite.path("snapshots/snapshotted.snap");
    let pending = suite.path("snapshots/snapshotted.snap.new");

    let first = suite.hil(&["run", "snap.yaml"]);
    assert_eq!(
        first.status.code(),
        Some(1),
        "a missing snapshot fails: {}",
        stdout(&first)
    );
    assert!(pending.exists() && !snap.exists());

    let accept = suite.hil(&["snapshot", "accept", "--dir", "snapshots"]);
    assert_eq!(accept.status.code(), Some(0));
    assert!(snap.exists() && !pending.exists());
    let text = std::fs::read_to_string(&snap).unwrap();
    assert!(text.starts_with("---\nsource: "), "insta header: {text}");
    assert!(
        text.contains("publish living_room_lights \"on\" qos=1"),
        "{text}"
    );

    let again = suite.hil(&["run", "snap.yaml"]);
    assert_eq!(again.status.code(), Some(0), "{}", stdout(&again));

    suite.add("snap.yaml", &scenario("off"));
    let changed = suite.hil(&["run", "snap.yaml"]);
    assert_eq!(changed.status.code(), Some(1));
    assert!(pending.exists());
    let text = stdout(&changed);
    assert!(
        text.contains("diff:") && !text.contains("near misses:"),
        "the diff under its own heading: {text}"
    );
    assert!(
        text.contains("-    publish living_room_lights \"on\""),
        "diff shown: {text}"
    );
    assert!(
        text.contains("+    publish living_room_lights \"off\""),
        "diff shown: {text}"
    );

    let reject = suite.hil(&["snapshot", "reject", "--dir", "snapshots"]);
    assert_eq!(reject.status.code(), Some(0));
    assert!(!pending.exists());
}

/// A virtual ESP32-C3 with a light-controller image of `version` already in flash, and a
/// bench config naming it `bench1`.
fn bench_chip(version: &str) -> (VirtualChip, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let flash_file = dir.path().join("flash.bin");
    let mut flash = vec![0xFF; hil::chip::FLASH_SIZE];
    let image = hil::image::generate(&hil::image::ImageSpec {
        chip: Chip::Esp32c3,
        project: "light-controller",
        version,
        code_len: 512,
    });
    let at = Chip::Esp32c3.app_offset() as usize;
    flash[at..at + image.len()].copy_from_slice(&image);
    std::fs::write(&flash_file, &flash).unwrap();
    let port = dir.path().join("c3");
    let chip = VirtualChip::start_with(Chip::Esp32c3, dir, port, flash_file, &[]);
    let config = chip.dir.path().join("hil.toml");
    std::fs::write(
        &config,
        format!(
            "[boards.bench1]\nport = \"{}\"\nprofile = \"sim-pty\"\n",
            chip.port.display()
        ),
    )
    .unwrap();
    (chip, config)
}

#[test]
fn expect_boot_as_the_first_step_sees_a_bench_board_boot() {
    let (_chip, config) = bench_chip("2.0.1");
    let suite = Suite::new();
    suite.add(
        "boot.yaml",
        r#"name: bench board boots
boards:
  lamp: { profile: sim }
steps:
  - expect_boot: { board: lamp, version: "2.0.1", within: 1s }
"#,
    );
    let output = suite.hil(&[
        "run",
        "boot.yaml",
        "--board",
        "lamp=bench1",
        "--config",
        config.to_str().unwrap(),
    ]);
    assert_exit(&output, 0);
    assert!(stdout(&output).contains("1 passed"), "{}", stdout(&output));
}

#[test]
fn a_simulator_only_step_on_a_bench_board_is_skipped_before_anything_runs() {
    let suite = Suite::new();
    // The port does not exist: a scenario that opened it would fail, not skip.
    suite.add(
        "hil.toml",
        "[boards.bench1]\nport = \"/dev/hil-no-such-port\"\nprofile = \"sim-pty\"\n",
    );
    suite.add(
        "wifi.yaml",
        r#"name: wifi drops
boards:
  lamp: { profile: sim }
steps:
  - press_switch: { board: lamp }
  - repeat:
      times: 1
      steps:
        - wifi: { board: lamp, state: down }
"#,
    );
    suite.add(
        "bounce.yaml",
        "name: bouncing switch\nboards:\n  lamp: { profile: sim }\nsteps:\n  - press_switch: { board: lamp, bounce: 3 }\n",
    );
    suite.add(
        "ok.yaml",
        &publish_and_expect("no board at all", "on", "on"),
    );
    let output = suite.hil(&[
        "run",
        ".",
        "--board",
        "lamp=bench1",
        "--junit",
        "junit.xml",
        "--json",
        "report.json",
    ]);
    let text = stdout(&output);
    assert_eq!(output.status.code(), Some(0), "{text}{}", stderr(&output));
    assert!(text.contains("SKIP"), "{text}");
    let reason =
        "wifi.yaml:9:11: `wifi` on board lamp needs the simulator, and lamp is bench board bench1";
    assert!(text.contains(reason), "{text}");
    assert!(
        text.contains("bounce.yaml:5:5: `press_switch` on board lamp needs the simulator"),
        "{text}"
    );
    assert!(text.contains("1 passed, 0 failed, 2 skipped"), "{text}");
    assert!(
        !text.contains("hil-no-such-port"),
        "the port was never opened: {text}"
    );

    let junit = junit::parse(&std::fs::read_to_string(suite.path("junit.xml")).unwrap());
    assert_eq!((junit.tests, junit.skipped, junit.failures), (3, 2, 0));
    let wifi_case = junit.testsuite[0]
        .testcase
        .iter()
        .find(|case| case.name == "wifi drops")
        .unwrap();
    let skipped = wifi_case.skipped.as_ref().expect("a <skipped> element");
    assert!(
        skipped
            .message
            .as_deref()
            .unwrap_or_default()
            .ends_with(reason),
        "{skipped:?}"
    );
    let report = json_report(&suite.path("report.json"));
    let wifi = report["scenarios"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["name"] == "wifi drops")
        .unwrap();
    assert_eq!(wifi["status"], "skipped");
    assert_eq!(report["summary"]["skipped"], 2);
}

#[test]
fn an_expectation_after_expect_no_message_still_sees_what_the_stimulus_caused() {
    let suite = Suite::new();
    suite.add(
        "quiet.yaml",
        r#"name: quiet elsewhere
clients:
  phone: {}
steps:
  - publish: { as: phone, topic: living_room_lights, payload: "on", qos: 1 }
  - expect_message: { topic: living_room_lights, payload: "on", from: phone }
  - expect_no_message: { topic: kitchen_lights, for: 100ms }
  - expect_message: { topic: living_room_lights, payload: "on", from: phone, within: 100ms }
"#,
    );
    let output = suite.hil(&["run", "quiet.yaml"]);
    assert_exit(&output, 0);
}

/// The firmware's `reboot` says `offline` itself, then disconnects cleanly: the broker
/// holds the will back, and the simulated board sends both before it lets go of the link.
#[test]
fn a_reboot_the_firmware_asks_for_disconnects_cleanly_after_its_offline() {
    let suite = Suite::new();
    suite.add(
        "reboot.yaml",
        r#"name: reboot leaves cleanly
boards:
  lamp: { profile: sim }
steps:
  - expect_connected: { client: lamp }
  - send_serial: { board: lamp, line: reboot }
  - expect_trace:
      events:
        - { kind: mqtt, client: lamp, dir: c2b, packet: publish, topic: living_room_lights/status, payload: offline }
        - { kind: mqtt, client: lamp, dir: c2b, packet: disconnect }
        - { kind: conn_closed, client: lamp, reason: clean }
  - expect_connected: { client: lamp, within: 2s }
"#,
    );
    let output = suite.hil(&["run", "reboot.yaml"]);
    assert_exit(&output, 0);
}

#[test]
fn a_late_message_is_named_with_its_lateness_past_the_deadline() {
    let suite = Suite::new();
    // Both publishes are held by the tap; the wrong one arrives first after the deadline.
    suite.add(
        "late.yaml",
        r#"name: late message
clients:
  phone: {}
  noise: {}
  display: {}
steps:
  - delay: { client: phone, by: 450ms }
  - delay: { client: noise, by: 350ms }
  - publish: { as: phone, topic: living_room_lights, payload: "on" }
  - publish: { as: noise, topic: living_room_lights, payload: "static" }
  - expect_message: { topic: living_room_lights, payload: "on", from: phone, to: display, within: 300ms }
"#,
    );
    let output = suite.hil(&["run", "late.yaml"]);
    let text = stdout(&output);
    assert_eq!(output.status.code(), Some(1), "{text}{}", stderr(&output));
    let late = text
        .lines()
        .find_map(|line| line.trim().strip_prefix("arrived after the deadline: "))
        .unwrap_or_else(|| panic!("no late arrival among the near misses: {text}"));
    assert!(
        late.starts_with("living_room_lights \"on\"") && late.contains("delivered to display"),
        "{late}"
    );
    let ms_late: f64 = late
        .split(", about ")
        .nth(1)
        .and_then(|rest| rest.split(" ms late").next())
        .and_then(|number| number.parse().ok())
        .unwrap_or_else(|| panic!("no lateness in {late}"));
    // Held 450 ms against a 300 ms deadline: at least about 150 ms late, counted from
    // the deadline, not from the last event before it.
    assert!(ms_late >= 100.0, "{late}");
}

#[test]
fn a_refused_run_leaves_earlier_reports_untouched() {
    let suite = Suite::new();
    suite.add(
        "lamp.yaml",
        "name: lamp\nboards:\n  lamp: { profile: sim }\nsteps:\n  - press_switch: { board: lamp }\n",
    );
    suite.add("junit.xml", "earlier junit");
    suite.add("report.json", "earlier json");
    let refusals: [&[&str]; 2] = [
        // No hil.toml for the bench mapping.
        &["--board", "lamp=bench1"],
        &["--broker", "not a url"],
    ];
    for refusal in refusals {
        let mut args = vec![
            "run",
            "lamp.yaml",
            "--junit",
            "junit.xml",
            "--json",
            "report.json",
        ];
        args.extend_from_slice(refusal);
        let output = suite.hil(&args);
        assert_eq!(
            output.status.code(),
            Some(2),
            "{refusal:?}: {}",
            stderr(&output)
        );
        for (file, earlier) in [
            ("junit.xml", "earlier junit"),
            ("report.json", "earlier json"),
        ] {
            assert_eq!(
                std::fs::read_to_string(suite.path(file)).unwrap(),
                earlier,
                "{refusal:?} touched {file}"
            );
        }
    }
}

#[test]
fn snapshot_names_that_match_nothing_are_refused_and_nothing_is_touched() {
    let suite = Suite::new();
    std::fs::create_dir(suite.path("snapshots")).unwrap();
    suite.add("snapshots/phone-turns-on.snap.new", "pending");
    for action in ["accept", "reject"] {
        let output = suite.hil(&[
            "snapshot",
            action,
            "phone turns on",
            "no such scenario",
            "--dir",
            "snapshots",
        ]);
        assert_eq!(
            output.status.code(),
            Some(2),
            "{action}: {}",
            stdout(&output)
        );
        let text = stderr(&output);
        assert!(
            text.contains("matches \"no such scenario\"")
                && text.contains("pending: phone-turns-on"),
            "{text}"
        );
        assert!(suite.path("snapshots/phone-turns-on.snap.new").exists());
        assert!(!suite.path("snapshots/phone-turns-on.snap").exists());
    }
    let empty = tempfile::tempdir().unwrap();
    let output = suite.hil(&[
        "snapshot",
        "accept",
        "anything",
        "--dir",
        empty.path().to_str().unwrap(),
    ]);
    assert_eq!(output.status.code(), Some(2));
    assert!(
        stderr(&output).contains("there are none"),
        "{}",
        stderr(&output)
    );
}

#[test]
fn a_filter_that_selects_nothing_is_refused_with_the_scenarios_there_are() {
    let suite = Suite::new();
    suite.add(
        "a.yaml",
        &publish_and_expect("phone reaches display", "on", "on"),
    );
    let output = suite.hil(&["run", ".", "--filter", "switch"]);
    assert_eq!(output.status.code(), Some(2), "{}", stdout(&output));
    let text = stderr(&output);
    assert!(
        text.contains("--filter \"switch\" matches no scenario")
            && text.contains("\"phone reaches display\""),
        "{text}"
    );
    // In a shard that holds none of the matches, the filter is no mistake.
    suite.add(
        "b.yaml",
        &publish_and_expect("display reaches phone", "on", "on"),
    );
    let output = suite.hil(&[
        "run",
        ".",
        "--filter",
        "phone reaches",
        "--partition",
        "2/2",
    ]);
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
}

#[test]
fn a_flaky_scenario_is_a_passing_testcase_with_its_failed_attempt_in_junit() {
    use hil::report::{JunitFile, Reporter};
    use hil::runner::{Attempt, Failure, RunEvent, RunSummary, ScenarioResult, Status};
    use std::time::Duration;

    // No scenario fails and then passes deterministically on its own broker, so the
    // outcome is built here: the runner's own types, through the real JUnit reporter.
    let attempt = |status, failure: Option<Failure>| Attempt {
        status,
        duration: Duration::from_millis(120),
        waited: Duration::ZERO,
        failure,
        trace_tail: vec!["0.000 ms  hil  started".into()],
        skip_reason: None,
    };
    let result = ScenarioResult {
        name: "sometimes slow".into(),
        path: PathBuf::from("slow.yaml"),
        status: Status::Flaky,
        attempts: vec![
            attempt(
                Status::Failed,
                Some(Failure {
                    step: None,
                    expected: "a message".into(),
                    observed: "none in time".into(),
                    near_misses: Vec::new(),
                    error_kind: None,
                }),
            ),
            attempt(Status::Passed, None),
        ],
        trace_file: None,
        snapshot: None,
        actors: Vec::new(),
        trace: Vec::new(),
    };
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("junit.xml");
    let mut junit_file = JunitFile::create(path.clone()).unwrap();
    let summary = RunSummary {
        flaky: 1,
        duration: Duration::from_millis(250),
        ..RunSummary::default()
    };
    junit_file.report(&RunEvent::Started {
        total: 1,
        jobs: 1,
        seed: 1,
        unobserved: None,
        labgrid: Vec::new(),
    });
    junit_file.report(&RunEvent::ScenarioFinished(std::sync::Arc::new(result)));
    junit_file.report(&RunEvent::Finished(summary));
    junit_file.caught_up();
    assert_eq!(junit_file.error(), None);

    let junit = junit::parse(&std::fs::read_to_string(&path).unwrap());
    assert_eq!((junit.tests, junit.failures, junit.errors), (1, 0, 0));
    let case = junit::only_case(&junit);
    assert_eq!(case.name, "sometimes slow");
    assert!(
        case.failure.is_none(),
        "a flaky pass is no failure: {case:?}"
    );
    assert_eq!(case.flaky_failures.len(), 1, "{case:?}");
    assert_eq!(
        case.flaky_failures[0].message.as_deref(),
        Some("expected a message; none in time")
    );
}

/// A scenario on bench board `bench1` of `config`, run with a JSON report: the kind of
/// harness error its failure names, and what it says.
fn bench_error_kind(suite: &Suite, config: &Path) -> (serde_json::Value, String) {
    suite.add(
        "press.yaml",
        "name: press on the bench\nboards:\n  lamp: { profile: sim }\nsteps:\n  - press_switch: { board: lamp }\n",
    );
    let output = suite.hil(&[
        "run",
        "press.yaml",
        "--board",
        "lamp=bench1",
        "--config",
        config.to_str().unwrap(),
        "--lock-timeout",
        "100ms",
        "--json",
        "report.json",
    ]);
    assert_ne!(output.status.code(), Some(0), "{}", stdout(&output));
    let report = json_report(&suite.path("report.json"));
    let failure = report["scenarios"][0]["attempts"][0]["failure"].clone();
    assert_eq!(
        report["scenarios"][0]["status"],
        "error",
        "{report}{}",
        stderr(&output)
    );
    (
        failure["error_kind"].clone(),
        failure["observed"].to_string(),
    )
}

#[test]
fn a_bench_port_another_process_holds_reports_port_busy() {
    let suite = Suite::new();
    let port = suite.path("ttyHELD");
    std::fs::write(&port, "").unwrap();
    suite.add(
        "hil.toml",
        &format!(
            "[boards.bench1]\nport = \"{}\"\nprofile = \"sim-pty\"\n",
            port.display()
        ),
    );
    let _held = hil::port::lock::PortLock::acquire(&port, std::time::Duration::ZERO).unwrap();
    let (kind, observed) = bench_error_kind(&suite, &suite.path("hil.toml"));
    assert_eq!(kind, "port_busy", "{observed}");
    assert!(observed.contains("is in use by pid "), "{observed}");
}

#[test]
fn a_bench_board_that_never_boots_reports_board_silent() {
    // Erased flash: the chip's ROM finds no image and the firmware's boot line never comes.
    let dir = tempfile::tempdir().unwrap();
    let flash_file = dir.path().join("flash.bin");
    std::fs::write(&flash_file, vec![0xFF; hil::chip::FLASH_SIZE]).unwrap();
    let port = dir.path().join("c3");
    let chip = VirtualChip::start_with(Chip::Esp32c3, dir, port, flash_file, &[]);
    let suite = Suite::new();
    suite.add(
        "hil.toml",
        &format!(
            "[boards.bench1]\nport = \"{}\"\nprofile = \"sim-pty\"\n",
            chip.port.display()
        ),
    );
    let (kind, observed) = bench_error_kind(&suite, &suite.path("hil.toml"));
    assert_eq!(kind, "board_silent", "{observed}");
    assert!(
        observed.contains("did not print its boot line"),
        "{observed}"
    );
}
