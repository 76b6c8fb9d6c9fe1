//! `hil record` driven as a person drives it on the desk: mosquitto_pub and mosquitto_sub
//! as the phone app, the simulated board's stdin for the switch and the Wi-Fi; then the
//! draft it writes is checked, run, and run against a firmware that breaks what was
//! recorded.

mod support;

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::thread::JoinHandle;

use support::{core_library, hil_exe, wait_output, Lines};

/// The broker login of the session: it must appear nowhere it wrote.
const SECRET: &str = "Pa55-desk-secret";
const USER: &str = "desk";
/// The phone's client id carries a serial number, renamed away with --rename.
const PHONE_ID: &str = "phone-SN0042";

/// A running `hil record`; killed if the test fails before it ends.
struct Recording {
    child: Child,
    stdin: Option<ChildStdin>,
    stdout: Lines,
    stderr: Option<JoinHandle<String>>,
    port: u16,
}

impl Recording {
    fn start(dir: &Path, extra: &[&str]) -> Recording {
        let mut child = Command::new(hil_exe())
            .current_dir(dir)
            .args(["record", "--sim", "lamp", "--port", "0"])
            .args(extra)
            .env("NO_COLOR", "1")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let stdout = Lines::of(child.stdout.take().unwrap());
        let mut stderr_pipe = child.stderr.take().unwrap();
        let stderr = std::thread::spawn(move || {
            let mut text = String::new();
            let _ = stderr_pipe.read_to_string(&mut text);
            text
        });
        let url = stdout.wait_for("the broker's address", |l| l.starts_with("mqtt://"));
        let port = url.rsplit(':').next().unwrap().parse().unwrap();
        let stdin = child.stdin.take();
        stdout.wait_for("the board active", |l| l == "HIL state=ACTIVE");
        Recording {
            child,
            stdin,
            stdout,
            stderr: Some(stderr),
            port,
        }
    }

    /// Types a command for the simulated board.
    fn type_line(&mut self, line: &str) {
        writeln!(self.stdin.as_mut().unwrap(), "{line}").unwrap();
    }

    fn board_says(&self, line: &str) {
        self.stdout.wait_for(line, |l| l == line);
    }

    /// The phone app's command, with the session's login.
    fn phone_publishes(&self, payload: &str, retain: bool) {
        let mut command = Command::new("mosquitto_pub");
        command
            .args(["-h", "127.0.0.1", "-p", &self.port.to_string()])
            .args(["-i", PHONE_ID, "-u", USER, "-P", SECRET])
            .args(["-t", "living_room_lights", "-m", payload, "-q", "1"]);
        if retain {
            command.arg("-r");
        }
        let status = command
            .status()
            .expect("mosquitto_pub is installed (ci/test.sh installs mosquitto-clients)");
        assert!(status.success(), "mosquitto_pub {payload}");
    }

    /// The phone app's view of the lamp: every topic under it, `TOPIC PAYLOAD` per line.
    fn phone_watches(&self) -> (Child, Lines) {
        let mut sub = Command::new("mosquitto_sub")
            .args(["-h", "127.0.0.1", "-p", &self.port.to_string()])
            .args(["-i", "phone_view", "-u", USER, "-P", SECRET])
            .args(["-t", "living_room_lights/#", "-v", "-q", "1"])
            .stdout(Stdio::piped())
            .spawn()
            .expect("mosquitto_sub is installed (ci/test.sh installs mosquitto-clients)");
        let lines = Lines::of(sub.stdout.take().unwrap());
        // The lamp's retained state arrives once the subscription is in place.
        lines.wait_for("the retained state", |l| {
            l == "living_room_lights/state off"
        });
        (sub, lines)
    }

    /// Waits for the end: the exit code and everything hil wrote on stderr.
    fn end(mut self) -> (Option<i32>, String) {
        use wait_timeout::ChildExt;
        drop(self.stdin.take());
        let status = self.child.wait_timeout(support::DEADLINE).unwrap();
        let status = status
            .unwrap_or_else(|| panic!("hil record did not end within {:?}", support::DEADLINE));
        let stderr = self.stderr.take().unwrap().join().unwrap();
        (status.code(), stderr)
    }
}

impl Drop for Recording {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn sees(view: &Lines, line: &str) {
    view.wait_for(line, |l| l == line);
}

fn hil_in(dir: &Path, args: &[&str]) -> std::process::Output {
    let child = Command::new(hil_exe())
        .current_dir(dir)
        .args(args)
        .env("NO_COLOR", "1")
        .env_remove("CI")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    wait_output(child)
}

fn said(output: &std::process::Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

/// Every file below `dir`, recursively.
fn files_below(dir: &Path) -> Vec<PathBuf> {
    let mut files = Vec::new();
    let mut folders = vec![dir.to_path_buf()];
    while let Some(folder) = folders.pop() {
        for entry in std::fs::read_dir(&folder).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                folders.push(path);
            } else {
                files.push(path);
            }
        }
    }
    files
}

/// Without the offline press: after a reconnect the board subscribes without first
/// publishing the state the switch set while it was offline, so an older retained
/// command wins.
const FORGETS_THE_OFFLINE_PRESS: (&str, &str) = (
    "    if (ctx->pending) {\n        ctx->pending = !publish_text(ctx, ctx->cfg.topic, on_off(ctx->relay));\n    }\n",
    "    ctx->pending = false;\n",
);

#[test]
fn a_desk_session_becomes_a_draft_that_runs_unchanged_and_catches_a_broken_firmware() {
    let dir = tempfile::tempdir().unwrap();
    let mut session = Recording::start(
        dir.path(),
        &[
            "--out",
            "lamp_session.yaml",
            "--auth",
            &format!("{USER}:{SECRET}"),
            "--rename",
            &format!("{PHONE_ID}=phone"),
            "--trace",
            "session.jsonl",
            "--pcap",
            "session.pcap",
        ],
    );
    let (mut watcher, view) = session.phone_watches();

    session.phone_publishes("on", false);
    session.board_says("HIL relay=on");
    sees(&view, "living_room_lights/state on");
    session.phone_publishes("off", false);
    session.board_says("HIL relay=off");
    sees(&view, "living_room_lights/state off");
    // A retained command: the broker keeps it for whoever subscribes later.
    session.phone_publishes("on", true);
    session.board_says("HIL relay=on");
    sees(&view, "living_room_lights/state on");
    session.type_line("wifi down");
    session.board_says("HIL state=CONNECTING_WIFI");
    sees(&view, "living_room_lights/status offline");
    // The switch works offline; its state must win over the retained "on" on return.
    session.type_line("press");
    session.board_says("HIL relay=off");
    session.type_line("wifi up");
    session.board_says("HIL state=ACTIVE");
    sees(&view, "living_room_lights off");
    sees(&view, "living_room_lights/state off");
    session.type_line("stop");
    let (code, stderr) = session.end();
    let _ = watcher.kill();
    let _ = watcher.wait();
    assert_eq!(code, Some(0), "{stderr}");
    assert!(stderr.contains("wrote lamp_session.yaml"), "{stderr}");

    let draft = std::fs::read_to_string(dir.path().join("lamp_session.yaml")).unwrap();
    for wanted in [
        "# Draft recorded by `hil record` (hil ",
        "# Board: lamp, the simulated light controller (profile sim), firmware ",
        "# Timings are drafts: each `within` is 3 x the latency seen",
        "  phone: {}",
        "  phone_view: {}",
        r#"- publish: {as: phone, topic: living_room_lights, payload: "on", qos: 1}"#,
        r#"- publish: {as: phone, topic: living_room_lights, payload: "on", qos: 1, retain: true}"#,
        "- press_switch: {board: lamp}",
        "- wifi: {board: lamp, state: down}",
        "- wifi: {board: lamp, state: up}",
        "- expect_disconnected: {client: lamp",
        r#"- expect_relay: {board: lamp, state: "on""#,
        r#"- expect_relay: {board: lamp, state: "off""#,
        r#"- expect_message: {topic: living_room_lights/state, payload: "on", qos: 1, retain: true, from: lamp, to: phone_view"#,
        // The will, which the broker publishes for the board.
        "- expect_message: {topic: living_room_lights/status, payload: offline, to: phone_view",
        // The press while offline, published on return.
        r#"- expect_message: {topic: living_room_lights, payload: "off", qos: 1, retain: true, from: lamp, to: phone_view"#,
    ] {
        assert!(
            draft.contains(wanted),
            "no {wanted:?} in the draft:\n{draft}"
        );
    }
    assert_eq!(draft.matches("- press_switch").count(), 1, "{draft}");
    assert!(
        !draft.contains("SN0042") && !draft.contains("mosq"),
        "{draft}"
    );

    let checked = hil_in(dir.path(), &["check", "lamp_session.yaml"]);
    assert_eq!(checked.status.code(), Some(0), "{}", said(&checked));
    let ran = hil_in(dir.path(), &["run", "lamp_session.yaml", "--out", "run"]);
    assert_eq!(ran.status.code(), Some(0), "{}\n{draft}", said(&ran));

    let mutant = core_library(
        dir.path(),
        "forgets_offline_press",
        &[FORGETS_THE_OFFLINE_PRESS],
    );
    let broken = hil_in(
        dir.path(),
        &[
            "run",
            "lamp_session.yaml",
            "--firmware-lib",
            mutant.to_str().unwrap(),
        ],
    );
    let story = said(&broken);
    assert_eq!(broken.status.code(), Some(1), "{story}");
    assert!(story.contains("FAIL"), "{story}");

    // No artifact of the session, nor anything it printed, holds the password.
    assert!(!stderr.contains(SECRET), "{stderr}");
    for file in files_below(dir.path()) {
        let bytes = std::fs::read(&file).unwrap();
        let found = bytes
            .windows(SECRET.len())
            .any(|window| window == SECRET.as_bytes());
        assert!(!found, "{} holds the secret", file.display());
    }
    let trace = std::fs::read_to_string(dir.path().join("session.jsonl")).unwrap();
    assert!(
        trace.contains(r#""username":"desk""#),
        "the trace has the logins"
    );
}

#[test]
fn a_session_without_activity_says_so_and_ctrl_c_still_writes_it() {
    let dir = tempfile::tempdir().unwrap();
    let session = Recording::start(dir.path(), &["--out", "idle.yaml"]);
    let status = Command::new("kill")
        .args(["-s", "INT", &session.child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let (code, stderr) = session.end();
    assert_eq!(code, Some(0), "{stderr}");
    assert!(stderr.contains("no activity was recorded"), "{stderr}");
    let draft = std::fs::read_to_string(dir.path().join("idle.yaml")).unwrap();
    assert!(draft.contains("# No activity was recorded"), "{draft}");
    assert!(draft.contains("without activity\n"), "{draft}");
    assert!(
        !draft.contains("- publish") && !draft.contains("- press_switch"),
        "{draft}"
    );
    let ran = hil_in(dir.path(), &["run", "idle.yaml"]);
    assert_eq!(ran.status.code(), Some(0), "{}\n{draft}", said(&ran));
}

/// A 4 KiB tmpfs, already full, in a mount namespace of the test's own: the draft cannot
/// be written, and what is left is no half file.
#[test]
fn a_draft_the_disk_cannot_take_leaves_no_half_file() {
    let dir = tempfile::tempdir().unwrap();
    let small = dir.path().join("small");
    std::fs::create_dir(&small).unwrap();
    let script = format!(
        "mount -t tmpfs -o size=4k tmpfs {small} && (head -c 65536 /dev/zero > {small}/filler; true) \
         && echo stop | {hil} record --sim lamp --port 0 --out {small}/draft.yaml; \
         code=$?; ls -A {small}; exit $code",
        small = small.display(),
        hil = hil_exe().display()
    );
    let output = Command::new("unshare")
        .args(["-rm", "sh", "-c", &script])
        .current_dir(dir.path())
        .env("NO_COLOR", "1")
        .output()
        .expect("unshare (util-linux) runs");
    let said = said(&output);
    assert_eq!(output.status.code(), Some(3), "{said}");
    assert!(said.contains("No space left on device"), "{said}");
    assert!(said.contains("nothing was written there"), "{said}");
    let listing = String::from_utf8_lossy(&output.stdout);
    let left: Vec<&str> = listing
        .lines()
        .filter(|l| !l.starts_with("mqtt://") && !l.starts_with("HIL "))
        .collect();
    assert_eq!(left, ["filler"], "{said}");
}

#[test]
fn what_cannot_work_is_refused_before_the_session_starts() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("mine.yaml"), "name: mine\n").unwrap();
    for (args, says) in [
        (&["--out", "mine.yaml"][..], "--force"),
        (&["--out", "notes.txt"], ".yaml"),
        (&["--out", "missing/draft.yaml"], "cannot write in"),
        (&["--rename", "phone"], "OLD=NEW"),
        (&["--bind", "0.0.0.0"], "--auth USER:PASS"),
    ] {
        let output = hil_in(
            dir.path(),
            &[&["record", "--sim", "lamp", "--port", "0"][..], args].concat(),
        );
        let said = said(&output);
        assert_eq!(output.status.code(), Some(2), "{args:?}: {said}");
        assert!(said.contains(says), "{args:?}: {said}");
        assert!(
            !said.contains("mqtt://"),
            "{args:?} started a broker: {said}"
        );
    }
    assert_eq!(
        std::fs::read_to_string(dir.path().join("mine.yaml")).unwrap(),
        "name: mine\n"
    );
}
