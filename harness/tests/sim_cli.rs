//! `hil sim` against a broker we did not write: Debian's mosquitto, driven with its own
//! command-line clients.

mod support;

use std::io::Write;
use std::process::{Child, Command, Stdio};

use support::{hil_exe, Lines, Mosquitto, DEADLINE};

fn mosquitto_pub(broker: &Mosquitto, topic: &str, message: &str) {
    let status = Command::new("mosquitto_pub")
        .args(["-h", "127.0.0.1", "-p", &broker.port.to_string()])
        .args(["-t", topic, "-m", message, "-q", "1"])
        .status()
        .expect("mosquitto_pub is installed (ci/test.sh installs mosquitto-clients)");
    assert!(status.success());
}

/// Waits until mosquitto_sub sees `value` on `topic`: as its retained value, or
/// published while it listens (the device's publish may still be on its way).
fn expect_on_topic(broker: &Mosquitto, topic: &str, value: &str) {
    let mut sub = Command::new("mosquitto_sub")
        .args(["-h", "127.0.0.1", "-p", &broker.port.to_string()])
        .args(["-t", topic, "-W", "10"])
        .stdout(Stdio::piped())
        .spawn()
        .expect("mosquitto_sub is installed (ci/test.sh installs mosquitto-clients)");
    let lines = Lines::of(sub.stdout.take().unwrap());
    lines.wait_for(&format!("{value:?} on {topic}"), |line| line == value);
    let _ = sub.kill();
    let _ = sub.wait();
}

/// `hil sim` against `broker`, stdin and stdout piped.
fn start_sim(broker: &Mosquitto, extra: &[&str]) -> (Child, Lines) {
    let mut sim = Command::new(hil_exe())
        .args(["sim", "--broker", &broker.url()])
        .args(extra)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    let lines = Lines::of(sim.stdout.take().unwrap());
    (sim, lines)
}

/// Waits for `hil sim` to end (killing it after the deadline) and returns its exit code.
fn exit_code(mut sim: Child) -> Option<i32> {
    let pid = sim.id().to_string();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(sim.wait());
    });
    match rx.recv_timeout(DEADLINE) {
        Ok(status) => status.unwrap().code(),
        Err(_) => {
            let _ = Command::new("kill").args(["-s", "KILL", &pid]).status();
            panic!("hil sim did not end within {DEADLINE:?}");
        }
    }
}

#[test]
fn a_simulated_board_obeys_mosquitto_pub_and_its_press_reaches_mosquitto_sub() {
    obeys_mosquitto(&[]);
}

/// The Arduino sketch itself, its PubSubClient on the host core talking to mosquitto.
#[test]
fn a_sketch_board_obeys_mosquitto_pub_and_its_press_reaches_mosquitto_sub() {
    obeys_mosquitto(&["--sketch"]);
}

fn obeys_mosquitto(extra: &[&str]) {
    let broker = Mosquitto::start();
    let (mut sim, lines) = start_sim(&broker, extra);
    lines.wait_for("the boot line", |l| {
        l.starts_with("HIL boot fw=light-controller")
    });
    lines.wait_for("ACTIVE", |l| l == "HIL state=ACTIVE");
    expect_on_topic(&broker, "living_room_lights/status", "online");

    mosquitto_pub(&broker, "living_room_lights", "on");
    lines.wait_for("the relay turning on", |l| l == "HIL relay=on");
    expect_on_topic(&broker, "living_room_lights/state", "on");

    let mut stdin = sim.stdin.take().unwrap();
    writeln!(stdin, "press").unwrap();
    lines.wait_for("the relay turning off", |l| l == "HIL relay=off");
    // The press is published retained, so a subscriber that comes later still sees it.
    expect_on_topic(&broker, "living_room_lights", "off");
    expect_on_topic(&broker, "living_room_lights/state", "off");

    writeln!(stdin, "status").unwrap();
    let status = lines.wait_for("the status line", |l| l.starts_with("HIL status"));
    assert!(status.contains("relay=off"), "{status}");

    writeln!(stdin, "quit").unwrap();
    assert_eq!(exit_code(sim), Some(0));
}

#[test]
fn disconnect_leaves_cleanly_and_the_broker_holds_the_will_back() {
    leaves_cleanly(&[]);
}

#[test]
fn a_sketch_board_leaves_cleanly_on_disconnect() {
    leaves_cleanly(&["--sketch"]);
}

/// `disconnect` closes the session with DISCONNECT: mosquitto publishes no will. A marker
/// published after hil sim has ended comes after anything the close caused, so what the
/// subscriber heard before it is all there is.
fn leaves_cleanly(extra: &[&str]) {
    let broker = Mosquitto::start();
    let mut sub = Command::new("mosquitto_sub")
        .args(["-h", "127.0.0.1", "-p", &broker.port.to_string()])
        .args(["-t", "living_room_lights/status", "-W", "30"])
        .stdout(Stdio::piped())
        .spawn()
        .expect("mosquitto_sub is installed (ci/test.sh installs mosquitto-clients)");
    let heard = Lines::of(sub.stdout.take().unwrap());
    let (mut sim, lines) = start_sim(&broker, extra);
    lines.wait_for("ACTIVE", |l| l == "HIL state=ACTIVE");
    heard.wait_for("online", |l| l == "online");

    writeln!(sim.stdin.take().unwrap(), "disconnect").unwrap();
    assert_eq!(exit_code(sim), Some(0));
    let status = Command::new("mosquitto_pub")
        .args(["-h", "127.0.0.1", "-p", &broker.port.to_string()])
        .args(["-t", "living_room_lights/status", "-m", "marker", "-q", "1"])
        .status()
        .expect("mosquitto_pub is installed");
    assert!(status.success());
    heard.wait_for("the marker", |l| {
        assert_ne!(
            l, "offline",
            "the will was published: the close was not clean"
        );
        l == "marker"
    });
    let _ = sub.kill();
    let _ = sub.wait();
}

#[test]
fn a_fleet_gets_distinct_client_ids_and_topics() {
    let broker = Mosquitto::start();
    let (mut sim, lines) = start_sim(&broker, &["--count", "3"]);
    for i in 0..3 {
        lines.wait_for("every board ACTIVE", |l| {
            l == format!("[{i}] HIL state=ACTIVE")
        });
    }
    mosquitto_pub(&broker, "living_room_lights/1", "on");
    lines.wait_for("board 1's relay", |l| l == "[1] HIL relay=on");
    expect_on_topic(&broker, "living_room_lights/1/state", "on");
    expect_on_topic(&broker, "living_room_lights/0/state", "off");
    writeln!(sim.stdin.take().unwrap(), "quit").unwrap();
    assert_eq!(exit_code(sim), Some(0));
}

#[test]
fn ctrl_c_or_sigterm_exits_130_as_interrupted() {
    let broker = Mosquitto::start();
    for signal in ["INT", "TERM"] {
        let (mut sim, lines) = start_sim(&broker, &[]);
        // Held open until the end: waiting on a child closes its stdin, and that end of
        // input would be a second, racing reason to stop.
        let _stdin = sim.stdin.take();
        lines.wait_for("the boot line", |l| l.starts_with("HIL boot"));
        let status = Command::new("kill")
            .args(["-s", signal, &sim.id().to_string()])
            .status()
            .unwrap();
        assert!(status.success());
        assert_eq!(exit_code(sim), Some(130), "SIG{signal}");
    }
}

#[test]
fn a_fleet_that_does_not_fit_the_open_file_limit_is_refused_before_it_starts() {
    // More boards than the kernel lets any process open files: never fits, even as root.
    let ceiling: u64 = std::fs::read_to_string("/proc/sys/fs/nr_open")
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    let count = (ceiling + 1).to_string();
    let output = Command::new(hil_exe())
        .args(["sim", "--broker", "mqtt://127.0.0.1:1", "--count", &count])
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(3), "{stderr}");
    assert!(
        stderr.contains(&format!("{count} boards do not fit")),
        "{stderr}"
    );
    assert!(stderr.contains("room for "), "{stderr}");
}
