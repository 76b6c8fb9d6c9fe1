//! `hil run` under pressure, through the binary: interrupted mid-scenario, a burst of
//! ten thousand publishes, an output folder that cannot be written or fills up, and
//! random faults that a seed replays.

mod support;

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use support::{assert_passed, hil_exe, DEADLINE};

fn write(dir: &Path, name: &str, text: &str) {
    std::fs::write(dir.join(name), text).unwrap();
}

fn run_in(dir: &Path, args: &[&str]) -> Output {
    Command::new(hil_exe())
        .current_dir(dir)
        .args(args)
        .env("NO_COLOR", "1")
        .output()
        .unwrap()
}

/// Direct children of `pid`, from /proc.
fn children_of(pid: u32) -> Vec<u32> {
    let mut children = Vec::new();
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(child) = entry.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        let Ok(stat) = std::fs::read_to_string(format!("/proc/{child}/stat")) else {
            continue;
        };
        // Fields after the command name, which is in parentheses and may hold spaces.
        let after_name = stat.rsplit_once(')').map_or("", |(_, rest)| rest);
        let parent = after_name.split_whitespace().nth(1);
        if parent == Some(&pid.to_string()) {
            children.push(child);
        }
    }
    children
}

fn alive(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|stat| {
        !stat
            .rsplit_once(')')
            .is_some_and(|(_, rest)| rest.trim_start().starts_with('Z'))
    })
}

/// Waits, with a deadline, until `ready` holds.
fn wait_until(what: &str, mut ready: impl FnMut() -> bool) {
    let deadline = Instant::now() + DEADLINE;
    while !ready() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(10));
    }
}

fn trace_lines(path: &Path) -> Vec<serde_json::Value> {
    std::fs::read_to_string(path)
        .unwrap()
        .lines()
        .map(|line| serde_json::from_str(line).unwrap_or_else(|e| panic!("{line}: {e}")))
        .collect()
}

#[test]
fn sigint_mid_run_exits_130_with_reports_traces_and_no_children_left() {
    interrupt_mid_run("INT");
}

#[test]
fn sigterm_mid_run_exits_130_with_reports_traces_and_no_children_left() {
    interrupt_mid_run("TERM");
}

/// `hil run` stopped by SIG`signal` while its second scenario waits: the documented
/// "interrupted" exit, every report and trace complete, no broker engine left behind.
fn interrupt_mid_run(signal: &str) {
    let dir = tempfile::tempdir().unwrap();
    write(
        dir.path(),
        "a_quick.yaml",
        "name: quick\nclients:\n  phone: {}\nsteps:\n  - publish: { as: phone, topic: t, payload: x }\n",
    );
    write(
        dir.path(),
        "b_slow.yaml",
        "name: slow\ntimeout: 90s\nboards:\n  lamp: { profile: sim }\nsteps:\n  - expect_connected: { client: lamp, within: 5s }\n  - wait: { for: 60s }\n",
    );
    let mut child = Command::new(hil_exe())
        .current_dir(dir.path())
        .args([
            "run",
            ".",
            "--jobs",
            "1",
            "--junit",
            "junit.xml",
            "--json",
            "report.json",
            "--out",
            "out",
        ])
        .env("NO_COLOR", "1")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let pid = child.id();
    let (lines_tx, lines) = mpsc::channel();
    let stdout = child.stdout.take().unwrap();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            let _ = lines_tx.send(line);
        }
    });
    loop {
        let line = lines
            .recv_timeout(DEADLINE)
            .expect("the quick scenario finishes");
        if line.starts_with("PASS") && line.contains("quick") {
            break;
        }
    }
    let slow_trace = dir.path().join("out/slow/trace.jsonl");
    wait_until("the slow scenario to reach its wait step", || {
        std::fs::read_to_string(&slow_trace).is_ok_and(|text| text.contains("\"name\":\"wait\""))
    });
    let engines = children_of(pid);
    assert!(
        !engines.is_empty(),
        "the run's broker engine is a child process"
    );
    let broker_url = trace_lines(&slow_trace)
        .iter()
        .find_map(|event| event["addr"].as_str().map(str::to_string))
        .expect("the broker's address is in the trace");

    assert!(Command::new("kill")
        .args(["-s", signal, &pid.to_string()])
        .status()
        .unwrap()
        .success());
    let (status_tx, status) = mpsc::channel();
    std::thread::spawn(move || {
        let _ = status_tx.send(child.wait());
    });
    let status = status
        .recv_timeout(DEADLINE)
        .unwrap_or_else(|_| panic!("hil exits after SIG{signal}"))
        .unwrap();
    assert_eq!(status.code(), Some(130));

    for engine in engines {
        wait_until("the broker engine to be gone", || !alive(engine));
    }
    let port = broker_url.rsplit(':').next().unwrap();
    std::net::TcpListener::bind(format!("127.0.0.1:{port}"))
        .expect("the broker's port is free again");

    let junit = std::fs::read_to_string(dir.path().join("junit.xml")).unwrap();
    assert!(junit.contains("name=\"quick\""), "{junit}");
    assert!(junit.contains("name=\"slow\""), "{junit}");
    assert!(junit.contains("interrupted"), "{junit}");
    let report: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.path().join("report.json")).unwrap())
            .unwrap();
    assert_eq!(report["summary"]["passed"], 1, "{report}");
    assert_eq!(report["summary"]["interrupted"], 1, "{report}");

    // Every line is a whole event, down to the broker's stop.
    let events = trace_lines(&slow_trace);
    assert!(events
        .iter()
        .any(|e| e["kind"] == "step_started" && e["name"] == "wait"));
    let last = events.last().unwrap();
    assert_eq!(
        (&last["kind"], &last["action"]),
        (&serde_json::json!("broker"), &serde_json::json!("stopped")),
        "the trace ends with the broker's stop: {last}"
    );
}

#[test]
fn ten_thousand_publishes_leave_exactly_ten_thousand_events_of_each_kind() {
    let dir = tempfile::tempdir().unwrap();
    write(
        dir.path(),
        "burst.yaml",
        r#"name: burst
timeout: 60s
clients:
  phone: {}
  display: {}
steps:
  - repeat:
      times: 10000
      steps:
        - publish: { as: phone, topic: burst, payload: "x", qos: 0 }
  - expect_message: { topic: burst, payload: "x", to: display, count: 10000, within: 30s }
"#,
    );
    assert_passed(&run_in(dir.path(), &["run", "burst.yaml", "--out", "out"]));
    let events = trace_lines(&dir.path().join("out/burst/trace.jsonl"));
    let publishes = |client: &str, dir: &str| {
        events
            .iter()
            .filter(|e| e["client"] == client && e["dir"] == dir && e["packet"] == "publish")
            .count()
    };
    assert_eq!(publishes("phone", "c2b"), 10_000);
    assert_eq!(publishes("display", "b2c"), 10_000);
}

#[test]
fn an_output_folder_that_cannot_be_made_is_an_infrastructure_error() {
    let dir = tempfile::tempdir().unwrap();
    write(
        dir.path(),
        "ok.yaml",
        "name: ok\nclients:\n  phone: {}\nsteps:\n  - publish: { as: phone, topic: t, payload: x }\n",
    );
    write(dir.path(), "a_file", "");
    let output = run_in(dir.path(), &["run", "ok.yaml", "--out", "a_file/out"]);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(3), "{stderr}");
    assert!(stderr.contains("a_file/out"), "{stderr}");
}

/// A 64 KiB tmpfs in a mount namespace of the test's own: the disk fills up mid-run.
#[test]
fn a_full_disk_is_an_infrastructure_error_naming_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let small = dir.path().join("small");
    std::fs::create_dir(&small).unwrap();
    write(
        dir.path(),
        "chatty.yaml",
        r#"name: chatty
clients:
  phone: {}
  display: {}
steps:
  - repeat:
      times: 2000
      steps:
        - publish: { as: phone, topic: chatty, payload: "0123456789abcdef0123456789abcdef" }
  - expect_message: { topic: chatty, to: display, payload_regex: ".", count: 2000, within: 20s }
"#,
    );
    let script = format!(
        "mount -t tmpfs -o size=64k tmpfs {small} && exec {hil} run chatty.yaml --out {small}/out",
        small = small.display(),
        hil = hil_exe().display()
    );
    let output = Command::new("unshare")
        .args(["-rm", "sh", "-c", &script])
        .current_dir(dir.path())
        .env("NO_COLOR", "1")
        .output()
        .expect("unshare (util-linux) runs");
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    assert_eq!(output.status.code(), Some(3), "{said}");
    assert!(said.contains("No space left on device"), "{said}");
    assert!(said.contains("out/chatty/trace.jsonl"), "{said}");
}

/// The payloads of the phone's publishes that the tap dropped, in order, and the fault
/// events of the steps; times are left out.
fn phone_drop_decisions(trace: &Path) -> (Vec<String>, Vec<String>, usize) {
    let mut dropped = Vec::new();
    let mut rules = Vec::new();
    let mut publishes = 0;
    let mut last_publish = None;
    for event in trace_lines(trace) {
        match event["kind"].as_str() {
            Some("mqtt")
                if event["client"] == "phone"
                    && event["dir"] == "c2b"
                    && event["packet"] == "publish" =>
            {
                publishes += 1;
                last_publish = event["payload"].as_str().map(str::to_string);
            }
            Some("fault") if event["detail"] == "publish to the broker" => {
                dropped.push(last_publish.clone().expect("a drop follows its publish"));
            }
            Some("fault") => rules.push(format!(
                "{} {}",
                event["fault"].as_str().unwrap_or_default(),
                event["detail"].as_str().unwrap_or_default()
            )),
            _ => {}
        }
    }
    (dropped, rules, publishes)
}

#[test]
fn the_same_seed_drops_and_delays_the_same_frames() {
    let dir = tempfile::tempdir().unwrap();
    // One publish at a time, each seen by the tap before the next is sent, so that the
    // replies (PUBACK, delayed with jitter too) come back between them: their draws must
    // not shift the phone's.
    let publishes: String = (0..40)
        .map(|i| {
            format!(
                "  - publish: {{ as: phone, topic: t, payload: \"p{i:02}\", qos: 1 }}\n\
                 \x20 - expect_trace: {{ events: [{{ kind: mqtt, client: phone, dir: c2b, payload: \"p{i:02}\" }}] }}\n"
            )
        })
        .collect();
    write(
        dir.path(),
        "seeded.yaml",
        &format!(
            "name: seeded\ntimeout: 20s\nclients:\n  phone: {{}}\nsteps:\n\
             \x20 - delay: {{ client: phone, by: 2ms, jitter: 2ms }}\n\
             \x20 - drop: {{ client: phone, direction: to_broker, ratio: 0.5 }}\n\
             {publishes}\
             \x20 - disconnect: {{ client: phone }}\n\
             \x20 - expect_trace: {{ within: 5s, events: [{{ kind: conn_closed, client: phone }}] }}\n"
        ),
    );
    let decisions = |out: &str| {
        assert_passed(&run_in(
            dir.path(),
            &["run", "seeded.yaml", "--seed", "7", "--out", out],
        ));
        phone_drop_decisions(&dir.path().join(out).join("seeded/trace.jsonl"))
    };
    let (dropped, rules, publishes) = decisions("first");
    assert_eq!(publishes, 40, "every publish reached the tap");
    assert!(
        !dropped.is_empty() && dropped.len() < 40,
        "a ratio of 0.5 drops some: {dropped:?}"
    );
    assert_eq!(
        rules,
        [
            "delay by 2ms ± 2ms until the end",
            "drop 0.5 of frames to the broker"
        ]
    );
    assert_eq!(decisions("second"), (dropped, rules, publishes));
}
