//! What someone new to hil meets first, through the `hil` binary: snapshots as with
//! insta, CI reports of fail-fast and retries, picking and listing scenarios, a dead
//! `--broker`, trace filters, interactive `hil sim`, and every example of the help texts.

mod support;

use std::io::Write;
use std::path::Path;
use std::process::{Output, Stdio};

use support::{hil_exe, Lines, Mosquitto, Suite};

fn said(output: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

/// The command ended with `code`; returns all it said (stdout, then stderr).
fn expect_exit(output: &Output, code: i32) -> String {
    let text = said(output);
    assert_eq!(output.status.code(), Some(code), "{text}");
    text
}

/// Two clients; the display waits for the phone's payload `expected`.
fn messaging(name: &str, sent: &str, expected: &str) -> String {
    let within = if sent == expected { "5s" } else { "300ms" };
    format!(
        r#"name: {name}
clients:
  phone: {{}}
  display: {{}}
steps:
  - publish: {{ as: phone, topic: living_room_lights, payload: "{sent}", qos: 1 }}
  - expect_message: {{ topic: living_room_lights, payload: "{expected}", from: phone, to: display, within: {within} }}
"#
    )
}

fn snapshotted(name: &str, payload: &str) -> String {
    format!("snapshot: true\n{}", messaging(name, payload, payload))
}

fn json(path: &Path) -> serde_json::Value {
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

/// The JUnit elements these tests read.
mod junit {
    use serde::Deserialize;

    #[derive(Debug, Deserialize)]
    pub struct Testsuites {
        #[serde(rename = "@tests")]
        pub tests: usize,
        #[serde(rename = "@skipped")]
        pub skipped: usize,
        #[serde(rename = "@failures")]
        pub failures: usize,
        pub testsuite: Vec<Testsuite>,
    }

    #[derive(Debug, Deserialize)]
    pub struct Testsuite {
        #[serde(rename = "@tests")]
        pub tests: usize,
        #[serde(default)]
        pub testcase: Vec<Testcase>,
    }

    #[derive(Debug, Deserialize)]
    pub struct Testcase {
        #[serde(rename = "@name")]
        pub name: String,
        pub skipped: Option<Skipped>,
    }

    #[derive(Debug, Deserialize)]
    pub struct Skipped {
        #[serde(rename = "@message")]
        pub message: String,
    }

    pub fn read(path: &std::path::Path) -> Testsuites {
        let xml = std::fs::read_to_string(path).unwrap();
        quick_xml::de::from_str(&xml).unwrap_or_else(|e| panic!("not JUnit ({e}): {xml}"))
    }
}

#[test]
fn fail_fast_reports_list_the_scenarios_not_run_with_the_reason() {
    let suite = Suite::new();
    for i in 0..3 {
        suite.add(
            &format!("f{i}.yaml"),
            &messaging(&format!("fails {i}"), "on", "off"),
        );
    }
    let output = suite.hil(&[
        "run",
        ".",
        "--jobs",
        "1",
        "--fail-fast",
        "--json",
        "r.json",
        "--junit",
        "junit.xml",
    ]);
    let text = expect_exit(&output, 1);
    assert!(text.contains("NOT RUN  fails 1"), "{text}");

    let report = json(&suite.path("r.json"));
    let scenarios = report["scenarios"].as_array().unwrap();
    assert_eq!(scenarios.len(), 3, "{report}");
    assert_eq!(scenarios[0]["status"], "failed");
    for not_run in &scenarios[1..] {
        assert_eq!(not_run["status"], "not_run", "{not_run}");
        let reason = not_run["reason"].as_str().unwrap();
        assert!(
            reason.contains("fail-fast") && reason.contains("\"fails 0\" failed"),
            "{reason}"
        );
    }
    assert_eq!(report["summary"]["not_run"], 2);
    // Durations say their unit in the key.
    assert!(report["summary"]["duration_ms"].as_f64().unwrap() > 0.0);
    let attempt = &scenarios[0]["attempts"][0];
    assert!(attempt["duration_ms"].as_f64().unwrap() > 0.0, "{attempt}");
    assert!(attempt["waited_ms"].is_number(), "{attempt}");
    assert!(attempt.get("duration").is_none(), "{attempt}");

    let junit = junit::read(&suite.path("junit.xml"));
    assert_eq!((junit.tests, junit.failures, junit.skipped), (3, 1, 2));
    assert_eq!(junit.testsuite[0].tests, 3);
    let skipped: Vec<(&str, &str)> = junit.testsuite[0]
        .testcase
        .iter()
        .filter_map(|case| Some((case.name.as_str(), case.skipped.as_ref()?.message.as_str())))
        .collect();
    assert_eq!(skipped.len(), 2, "{junit:?}");
    assert_eq!(skipped[0].0, "fails 1");
    assert!(skipped[0].1.contains("fail-fast"), "{junit:?}");
}

#[test]
fn retries_say_how_the_attempts_went_and_jobs_0_is_refused() {
    let suite = Suite::new();
    suite.add("f.yaml", &messaging("always fails", "on", "off"));
    let output = suite.hil(&["run", "f.yaml", "--retries", "1"]);
    let text = expect_exit(&output, 1);
    assert!(text.contains("failed on 2 of 2 attempts"), "{text}");

    let output = suite.hil(&["run", "f.yaml", "--jobs", "0"]);
    let text = expect_exit(&output, 2);
    assert!(
        text.contains("at least 1 scenario must run at a time"),
        "{text}"
    );
}

#[test]
fn a_flaky_pass_says_on_which_attempt() {
    use hil::runner::{Attempt, Failure, ScenarioResult, Status};
    // No scenario fails and then passes on its own broker by design, so the result is
    // built here and told by the story the console and JUnit print.
    let attempt = |status, failure| Attempt {
        status,
        duration: std::time::Duration::from_millis(5),
        waited: std::time::Duration::ZERO,
        failure,
        trace_tail: Vec::new(),
        skip_reason: None,
    };
    let result = ScenarioResult {
        name: "sometimes slow".into(),
        path: "slow.yaml".into(),
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
    let story = hil::report::story(&result);
    assert!(
        story.contains("passed on attempt 2 (flaky); earlier failures:\n  expected a message"),
        "{story}"
    );
}

#[test]
fn a_first_snapshot_is_written_pending_and_accept_finds_it_where_the_run_wrote_it() {
    let suite = Suite::new();
    suite.add("sc/dusk.yaml", &snapshotted("phone turns on at dusk", "on"));
    let pending = suite.path("sc/snapshots/phone-turns-on-at-dusk.snap.new");

    let first = suite.hil(&["run", "sc/dusk.yaml"]);
    let text = expect_exit(&first, 1);
    assert!(
        text.contains("no snapshot yet; wrote sc/snapshots/phone-turns-on-at-dusk.snap.new"),
        "{text}"
    );
    assert!(!text.contains("diff:"), "no diff from nothing: {text}");
    assert!(pending.exists());

    // From the folder above, as the failure's hint says, without --dir.
    let accept = suite.hil(&["snapshot", "accept"]);
    let text = expect_exit(&accept, 0);
    assert!(
        text.contains("accepted ./sc/snapshots/phone-turns-on-at-dusk.snap"),
        "{text}"
    );
    assert!(!pending.exists());
    let nothing = suite.hil(&["snapshot", "accept"]);
    let text = expect_exit(&nothing, 2);
    assert!(
        text.contains("no pending snapshots") && text.contains("--dir"),
        "{text}"
    );
    expect_exit(&suite.hil(&["run", "sc/dusk.yaml"]), 0);

    // A changed trace: the help's own example rejects it by the scenario's words.
    suite.add(
        "sc/dusk.yaml",
        &snapshotted("phone turns on at dusk", "dim"),
    );
    let text = expect_exit(&suite.hil(&["run", "sc/dusk.yaml"]), 1);
    assert!(text.contains("it differs; wrote"), "{text}");
    assert!(pending.exists());
    let reject = suite.hil(&["snapshot", "reject", "phone turns on"]);
    let text = expect_exit(&reject, 0);
    assert!(text.contains("rejected"), "{text}");
    assert!(!pending.exists());
}

#[test]
fn in_ci_no_pending_snapshot_is_written_and_the_failure_says_so() {
    let suite = Suite::new();
    suite.add("snap.yaml", &snapshotted("checked in ci", "on"));
    let output = suite
        .command(&["run", "snap.yaml"])
        .env("CI", "true")
        .output()
        .unwrap();
    let text = expect_exit(&output, 1);
    assert!(
        text.contains("no snapshot yet; CI is set, so no .snap.new was written"),
        "{text}"
    );
    assert!(!text.contains("snapshot accept"), "no accept hint: {text}");
    assert!(!suite.path("snapshots/checked-in-ci.snap.new").exists());
}

#[test]
fn on_an_external_broker_a_snapshot_is_shown_skipped() {
    let broker = Mosquitto::start();
    let suite = Suite::new();
    suite.add("snap.yaml", &snapshotted("elsewhere", "on"));
    let output = suite.hil(&["run", "snap.yaml", "--broker", &broker.url()]);
    let text = expect_exit(&output, 0);
    assert!(
        text.contains("snapshot skipped: not compared on an external broker"),
        "{text}"
    );
}

#[test]
fn a_dead_broker_is_one_error_before_any_scenario() {
    let suite = Suite::new();
    // No actors: nothing of its own would notice the broker is missing.
    suite.add("idle.yaml", "name: idle\nsteps:\n  - wait: { for: 10ms }\n");
    let output = suite.hil(&["run", "idle.yaml", "--broker", "mqtt://127.0.0.1:1"]);
    let text = expect_exit(&output, 3);
    assert!(
        text.contains("cannot reach mqtt://127.0.0.1:1: connection refused"),
        "{text}"
    );
    assert!(!text.contains("PASS"), "{text}");
}

#[test]
fn list_prints_what_would_run_and_starts_nothing() {
    let suite = Suite::new();
    let tagged =
        |name: &str, tags: &str| format!("tags: [{tags}]\n{}", messaging(name, "on", "on"));
    suite.add("a.yaml", &tagged("alpha", "smoke"));
    suite.add("b.yaml", &tagged("bravo", "smoke, faults"));
    suite.add("c.yaml", &tagged("charlie", "faults"));
    let list = |extra: &[&str]| {
        let mut args = vec!["run", ".", "--list", "--out", "out"];
        args.extend_from_slice(extra);
        let output = suite.hil(&args);
        expect_exit(&output, 0);
        String::from_utf8(output.stdout).unwrap()
    };
    assert_eq!(
        list(&[]),
        "./a.yaml\talpha\n./b.yaml\tbravo\n./c.yaml\tcharlie\n"
    );
    assert_eq!(
        list(&["--tag", "smoke"]),
        "./a.yaml\talpha\n./b.yaml\tbravo\n"
    );
    assert_eq!(
        list(&["--tag", "smoke", "--skip-tag", "faults"]),
        "./a.yaml\talpha\n"
    );
    assert_eq!(list(&["--partition", "2/2"]), "./b.yaml\tbravo\n");
    assert_eq!(list(&["--filter", "char"]), "./c.yaml\tcharlie\n");
    assert!(!suite.path("out").exists(), "--list started nothing");

    let output = suite.hil(&["run", ".", "--list", "--tag", "nightly"]);
    let text = expect_exit(&output, 2);
    assert!(
        text.contains("--tag \"nightly\" is on no scenario; the tags are: \"faults\", \"smoke\""),
        "{text}"
    );
}

#[test]
fn run_without_a_scenarios_folder_says_where_it_looked() {
    let suite = Suite::new();
    let text = expect_exit(&suite.hil(&["run"]), 2);
    assert!(
        text.contains("PATHS default to scenarios/") && text.contains("e.g. `hil run lamp.yaml`"),
        "{text}"
    );
}

#[test]
fn trace_show_picks_a_board_or_kinds_and_names_what_the_trace_holds() {
    let suite = Suite::new();
    suite.add(
        "lamp.yaml",
        r#"name: lamp on
boards:
  lamp: { profile: sim }
clients:
  phone: {}
steps:
  - expect_connected: { client: lamp, within: 5s }
  - publish: { as: phone, topic: living_room_lights, payload: "on", qos: 1 }
  - expect_relay: { board: lamp, state: on, within: 5s }
"#,
    );
    expect_exit(&suite.hil(&["run", "lamp.yaml", "--out", "out"]), 0);
    let trace = "out/lamp-on/trace.jsonl";
    let shown = |args: &[&str]| {
        let mut all = vec!["trace", "show", trace];
        all.extend_from_slice(args);
        let output = suite.hil(&all);
        expect_exit(&output, 0);
        String::from_utf8(output.stdout).unwrap()
    };
    let board = shown(&["--board", "lamp"]);
    assert!(
        board.contains("relay") && board.contains("serial"),
        "{board}"
    );
    assert!(!board.contains("phone"), "{board}");
    let relays = shown(&["--board", "lamp", "--kind", "relay"]);
    assert!(
        !relays.is_empty() && relays.lines().all(|line| line.contains(" relay ")),
        "{relays}"
    );

    for (flag, name, listing) in [
        ("--board", "nobody", "the trace's boards are: lamp"),
        ("--client", "nobody", "the trace's clients are: lamp, phone"),
        ("--kind", "nothing", "the trace's kinds are: "),
    ] {
        let output = suite.hil(&["trace", "show", trace, flag, name]);
        let text = expect_exit(&output, 2);
        assert!(
            text.contains(&format!("{name:?}")) && text.contains(listing),
            "{text}"
        );
    }
    let log = std::fs::read_to_string(suite.path("out/lamp-on/serial-lamp.log")).unwrap();
    let first = log.lines().next().unwrap();
    assert!(
        first.contains(" ms  HIL "),
        "times carry their unit: {first}"
    );
}

#[test]
fn interactive_sim_takes_board_numbers_and_explains_its_commands() {
    let broker = Mosquitto::start();
    let mut sim = std::process::Command::new(hil_exe())
        .args(["sim", "--broker", &broker.url(), "--count", "6"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let out = Lines::of(sim.stdout.take().unwrap());
    let err = Lines::of(sim.stderr.take().unwrap());
    let mut stdin = sim.stdin.take().unwrap();
    out.wait_for("board 5 ACTIVE", |l| l == "[5] HIL state=ACTIVE");
    writeln!(stdin, "press 5").unwrap();
    out.wait_for("board 5's relay", |l| l == "[5] HIL relay=on");
    writeln!(stdin, "press 9").unwrap();
    err.wait_for("the boards there are", |l| {
        l == "no board 9: the boards are 0 to 5 (start more with --count)"
    });
    writeln!(stdin, "help").unwrap();
    err.wait_for("quit told as a power loss", |l| {
        l.contains("quit") && l.contains("as if the power went")
    });
    err.wait_for("the will", |l| l.contains("will (offline)"));
    writeln!(stdin, "quit").unwrap();
    let status = sim.wait().unwrap();
    assert_eq!(status.code(), Some(0));
}

/// Every `hil …` line of the Example(s) sections of every help text (the top level's, each command's and
/// each subcommand's), in help order.
fn examples() -> Vec<String> {
    let help = |args: &[&str]| {
        let output = std::process::Command::new(hil_exe())
            .args(args)
            .arg("--help")
            .output()
            .unwrap();
        String::from_utf8(output.stdout).unwrap()
    };
    let commands = |text: &str| -> Vec<String> {
        text.split("Commands:\n")
            .nth(1)
            .unwrap_or("")
            .lines()
            .take_while(|line| !line.is_empty())
            .filter(|line| line.starts_with("  ") && !line.starts_with("   "))
            .filter_map(|line| line.split_whitespace().next())
            .filter(|name| *name != "help")
            .map(str::to_string)
            .collect()
    };
    let mut found = Vec::new();
    let mut texts = vec![help(&[])];
    for command in commands(&texts[0].clone()) {
        let text = help(&[&command]);
        for sub in commands(&text) {
            texts.push(help(&[&command, &sub]));
        }
        texts.push(text);
    }
    for text in texts {
        let mut in_examples = false;
        for line in text.lines() {
            if matches!(line.trim(), "Example:" | "Examples:") {
                in_examples = true;
                continue;
            }
            in_examples &= line.starts_with(' ');
            // An example may set the environment first (`VAR=… hil …`).
            let line = line.trim();
            let line = match line.split_once(' ') {
                Some((first, rest)) if first.contains('=') => rest,
                _ => line,
            };
            if in_examples && line.starts_with("hil ") && !found.iter().any(|f| f == line) {
                found.push(line.to_string());
            }
        }
    }
    found
}

/// `text` as a shell splits it: quotes removed, `# …` dropped, `> FILE` split off.
fn shell_words(text: &str) -> (Vec<String>, Option<String>) {
    let mut words = Vec::new();
    let mut word = String::new();
    let mut quote = None;
    let mut in_word = false;
    for c in text.chars() {
        match (quote, c) {
            (Some(q), c) if c == q => quote = None,
            (Some(_), c) => word.push(c),
            (None, '\'' | '"') => {
                quote = Some(c);
                in_word = true;
            }
            (None, c) if c.is_whitespace() => {
                if in_word {
                    words.push(std::mem::take(&mut word));
                    in_word = false;
                }
            }
            (None, '#') if !in_word => break,
            (None, c) => {
                word.push(c);
                in_word = true;
            }
        }
    }
    if in_word {
        words.push(word);
    }
    match words.iter().position(|w| w == ">") {
        Some(at) => {
            let file = words.get(at + 1).cloned();
            words.truncate(at);
            (words, file)
        }
        None => (words, None),
    }
}

/// Examples this test does not run, and why: each needs what a test on loopback
/// cannot give (a board on a port, another host, an address beyond loopback), runs
/// until stopped on a fixed port, or is the benchmark itself.
const NOT_RUN_HERE: &[(&str, &str)] = &[
    (
        "hil sim --broker mqtt://127.0.0.1:1883",
        "runs until stopped, on a fixed port",
    ),
    (
        "hil sim --broker mqtt://127.0.0.1:1883 --count 100 --topic lights",
        "runs until stopped, on a fixed port",
    ),
    (
        "hil sim --pty --chip esp32c3 --link /tmp/c3 --broker mqtt://127.0.0.1:1883",
        "runs until stopped, on a fixed path",
    ),
    (
        "hil monitor --port /dev/ttyUSB0",
        "a board on a serial port",
    ),
    (
        "hil monitor --board bench1 --trace monitor.jsonl",
        "a bench config with a board",
    ),
    (
        "hil flash light-controller.bin --port /dev/ttyUSB0",
        "a board on a serial port",
    ),
    (
        "hil flash firmware.elf --port /dev/ttyACM0 --chip esp32c3",
        "a board on a serial port",
    ),
    (
        "hil flash light-controller.bin --port rfc2217://bench-host:4000",
        "another host",
    ),
    (
        "hil flash --board bench1                      # the firmware hil.toml names for it",
        "a bench config with a board",
    ),
    (
        "hil run --board lamp=farm --partition 2/4     # a labgrid place per shard (hil.toml)",
        "a labgrid farm and a bench config naming it",
    ),
    (
        "hil flash fixtures/images/light-controller-esp8266.bin --port /tmp/e8 --no-skip",
        "a virtual chip at a fixed path",
    ),
    (
        "hil provision --board bench1 --ssid home --broker 192.168.1.10:1883",
        "a bench config with a board",
    ),
    (
        "hil broker --port 1883 --trace broker.jsonl --pcap broker.pcap",
        "runs until stopped, on a fixed port",
    ),
    (
        "hil broker --bind 0.0.0.0 --auth bench:s3cret",
        "listens beyond loopback",
    ),
    (
        "hil broker --deny-subscribe 'secret/#'",
        "runs until stopped, on a fixed port",
    ),
    (
        "hil record --sim lamp --out lamp_session.yaml",
        "runs until stopped, on a fixed port",
    ),
    (
        "hil record --board lamp=bench1 --bind 0.0.0.0 --advertise 192.168.1.10 --auth desk:s3cret",
        "a bench config with a board",
    ),
    (
        "hil record --port 0 --rename phone-SN0042=phone --trace session.jsonl",
        "runs until stopped (tests/record.rs drives it)",
    ),
    (
        "hil explore --runs 200 --seed 7",
        "runs for minutes (tests/explore_mutants.rs drives explore)",
    ),
    (
        "hil explore --budget 60s --jobs 2 --firmware-lib ./liblight_controller.so",
        "a core built as a shared library, and a minute",
    ),
    (
        "hil explore --faults partition,wifi,broker_restart --length 12",
        "runs for minutes (tests/explore_mutants.rs drives explore)",
    ),
    (
        "hil explore --keep-going --budget 5m --html findings.html",
        "runs for five minutes (tests/explore_mutants.rs drives --keep-going and --html)",
    ),
    (
        "hil bench --json > bench.json",
        "the benchmark: minutes of measuring",
    ),
];

/// Copies the repository's scenarios (files and snapshots) into `to`.
fn copy_scenarios(to: &Path) {
    let from = Path::new(env!("CARGO_MANIFEST_DIR")).join("../scenarios");
    for folder in ["", "snapshots"] {
        std::fs::create_dir_all(to.join("scenarios").join(folder)).unwrap();
        for entry in std::fs::read_dir(from.join(folder)).unwrap() {
            let entry = entry.unwrap();
            if entry.file_type().unwrap().is_file() {
                std::fs::copy(
                    entry.path(),
                    to.join("scenarios").join(folder).join(entry.file_name()),
                )
                .unwrap();
            }
        }
    }
}

/// How long one help example may run.
const EXAMPLE_DEADLINE: std::time::Duration = std::time::Duration::from_secs(120);

#[test]
fn every_example_in_the_help_texts_works() {
    let suite = Suite::new();
    copy_scenarios(suite.dir());
    let found = examples();
    for (example, _) in NOT_RUN_HERE {
        assert!(
            found.iter().any(|f| f == example),
            "{example:?} is no longer an example; the list of examples not run is stale"
        );
    }
    let run: Vec<&String> = found
        .iter()
        .filter(|example| !NOT_RUN_HERE.iter().any(|(e, _)| e == example))
        .collect();
    assert!(run.len() >= 12, "examples found: {found:#?}");
    // The run examples come first in the help, so the trace examples find their traces.
    for example in run {
        let (words, redirect) = shell_words(example);
        if words[1] == "snapshot" {
            // Something to accept or reject: this run's version of one snapshot.
            let snapshot = suite
                .path("scenarios/snapshots/phone-turns-the-lights-on-and-sees-the-switch.snap");
            std::fs::copy(&snapshot, snapshot.with_extension("snap.new")).unwrap();
        }
        let args: Vec<&str> = words[1..].iter().map(String::as_str).collect();
        // An example that does not end by itself belongs in NOT_RUN_HERE; this says so.
        let output = suite
            .command(&args)
            .timeout(EXAMPLE_DEADLINE)
            .output()
            .unwrap();
        assert_eq!(
            output.status.code(),
            Some(0),
            "the help's example `{example}` failed:\n{}",
            said(&output)
        );
        if let Some(file) = redirect {
            std::fs::write(suite.path(&file), &output.stdout).unwrap();
        }
    }
}
