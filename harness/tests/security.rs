//! Logins and secrets: a broker beyond loopback wants a login, and no password ever
//! reaches a trace, report, capture or log.

mod support;

use std::path::Path;
use std::process::{Command, Stdio};

use support::{hil_exe, Lines};

/// A `hil broker` started by the test, with the URL it printed.
struct BrokerProcess {
    child: std::process::Child,
    url: String,
}

impl BrokerProcess {
    fn start(args: &[&str]) -> BrokerProcess {
        let mut child = Command::new(hil_exe())
            .arg("broker")
            .args(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let url = Lines::of(child.stdout.take().unwrap())
            .wait_for("the URL", |l| l.starts_with("mqtt://"));
        BrokerProcess { child, url }
    }

    fn port(&self) -> String {
        self.url.rsplit(':').next().unwrap().to_string()
    }

    fn stop(mut self) {
        let pid = self.child.id().to_string();
        assert!(Command::new("kill")
            .args(["-INT", &pid])
            .status()
            .unwrap()
            .success());
        assert!(self.child.wait().unwrap().success());
    }
}

fn mosquitto_pub(port: &str, login: Option<(&str, &str)>) -> std::process::Output {
    let mut command = Command::new("mosquitto_pub");
    command.args([
        "-h",
        "127.0.0.1",
        "-p",
        port,
        "-t",
        "t",
        "-m",
        "x",
        "-q",
        "1",
    ]);
    if let Some((user, password)) = login {
        command.args(["-u", user, "-P", password]);
    }
    command
        .output()
        .expect("mosquitto_pub is installed (ci/test.sh installs mosquitto-clients)")
}

/// Every file under `dir`, as bytes, with its path.
fn every_file(dir: &Path) -> Vec<(String, Vec<u8>)> {
    let mut files = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap().flatten() {
        let path = entry.path();
        if path.is_dir() {
            files.extend(every_file(&path));
        } else {
            files.push((path.display().to_string(), std::fs::read(&path).unwrap()));
        }
    }
    files
}

fn contains(haystack: &[u8], needle: &str) -> bool {
    haystack
        .windows(needle.len())
        .any(|window| window == needle.as_bytes())
}

#[test]
fn a_login_is_checked_and_a_wrong_one_refused_with_connack_4() {
    let dir = tempfile::tempdir().unwrap();
    let trace = dir.path().join("broker.jsonl");
    let broker = BrokerProcess::start(&[
        "--port",
        "0",
        "--auth",
        "bench:s3cret-login",
        "--trace",
        trace.to_str().unwrap(),
    ]);
    let refused = mosquitto_pub(&broker.port(), None);
    assert!(!refused.status.success());
    assert!(
        String::from_utf8_lossy(&refused.stderr).contains("bad user name or password"),
        "{refused:?}"
    );
    let wrong = mosquitto_pub(&broker.port(), Some(("bench", "guess")));
    assert!(!wrong.status.success());
    let right = mosquitto_pub(&broker.port(), Some(("bench", "s3cret-login")));
    assert!(right.status.success(), "{right:?}");
    broker.stop();
    let text = std::fs::read_to_string(&trace).unwrap();
    assert_eq!(
        text.matches("bad_user_name_or_password").count(),
        2,
        "{text}"
    );
    assert!(
        !text.contains("s3cret-login") && !text.contains("guess"),
        "{text}"
    );
}

/// Runs a shell script in a network namespace of its own (nothing it binds is reachable
/// from outside) and a scratch folder; what it printed, once it succeeded.
fn in_own_network(script: &str) -> String {
    let dir = tempfile::tempdir().unwrap();
    let output = Command::new("unshare")
        .args(["-rn", "sh", "-c", script])
        .current_dir(dir.path())
        .output()
        .expect("unshare (util-linux) runs");
    let said = String::from_utf8_lossy(&output.stdout).into_owned();
    assert!(
        output.status.success(),
        "{said}{}",
        String::from_utf8_lossy(&output.stderr)
    );
    said
}

/// Beyond loopback, in a network namespace of the test's own: without --auth the broker
/// makes up a login and says it once; clients without it are refused.
#[test]
fn beyond_loopback_a_login_is_generated_and_required() {
    let script = format!(
        r#"set -e
ip link set lo up
{hil} broker --bind 0.0.0.0 --port 0 >url 2>log &
broker=$!
for _ in $(seq 1 200); do [ -s url ] && break; sleep 0.05; done
port=$(sed 's/.*://' url)
if mosquitto_pub -h 127.0.0.1 -p "$port" -t t -m x 2>/dev/null; then echo "anonymous: accepted"; else echo "anonymous: refused"; fi
password=$(sed -n 's/.*with password "\([^"]*\)".*/\1/p' log)
if mosquitto_pub -h 127.0.0.1 -p "$port" -t t -m x -u hil -P "$password"; then echo "generated: accepted"; else echo "generated: refused"; fi
kill -INT $broker
wait $broker
cat log
"#,
        hil = hil_exe().display()
    );
    let said = in_own_network(&script);
    assert!(said.contains("anonymous: refused"), "{said}");
    assert!(said.contains("generated: accepted"), "{said}");
    assert_eq!(
        said.matches("clients log in as user").count(),
        1,
        "said once: {said}"
    );
}

/// A broker that cannot bind has no login to give: the generated one is said only once
/// the port is the broker's.
#[test]
fn a_broker_that_fails_to_bind_says_no_generated_login() {
    let script = format!(
        r#"set -e
ip link set lo up
{hil} broker --bind 0.0.0.0 --port 0 --insecure-open >url 2>/dev/null &
first=$!
for _ in $(seq 1 200); do [ -s url ] && break; sleep 0.05; done
port=$(sed 's/.*://' url)
set +e
{hil} broker --bind 0.0.0.0 --port "$port" 2>log
echo "second broker: exit $?"
kill -INT $first
wait $first
echo "--- its stderr"
cat log
"#,
        hil = hil_exe().display()
    );
    let said = in_own_network(&script);
    assert!(said.contains("second broker: exit 3"), "{said}");
    assert!(said.contains("in use"), "the bind failure is said: {said}");
    assert!(!said.contains("password"), "{said}");
}

/// `hil run` beyond loopback, in a network namespace of the test's own: refused without
/// a login or --insecure-open; with --auth the run's harness clients and simulated
/// boards log in (the tap refuses anyone else), and the password is in no artifact.
#[test]
fn a_run_beyond_loopback_needs_a_login_its_own_actors_use() {
    let scenario = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../scenarios/phone_turns_on_and_sees_switch.yaml");
    let script = format!(
        r#"ip link set lo up
{hil} run {scenario} --bind 0.0.0.0 >open.out 2>&1; echo "no login: exit $?"
{hil} run {scenario} --bind 0.0.0.0 --board lamp=bench1 --insecure-open >bench.out 2>&1; echo "bench without advertise: exit $?"
{hil} run {scenario} --bind 0.0.0.0 --auth tester:pw-77aa --out out --junit junit.xml >auth.out 2>&1; echo "login: exit $?"
cat open.out bench.out auth.out
grep -rl pw-77aa out junit.xml auth.out && echo "password: written"
grep -c '"username":"tester"' out/*/trace.jsonl
"#,
        hil = hil_exe().display(),
        scenario = scenario.display()
    );
    let said = in_own_network(&script);
    assert!(said.contains("no login: exit 2"), "{said}");
    assert!(said.contains("--auth USER:PASS"), "{said}");
    assert!(said.contains("bench without advertise: exit 2"), "{said}");
    assert!(said.contains("--advertise ADDR"), "{said}");
    assert!(said.contains("login: exit 0"), "{said}");
    assert!(said.contains("1 passed"), "{said}");
    assert!(!said.contains("password: written"), "{said}");
    // Three actors log in: the phone, the wall display and the simulated lamp.
    assert!(said.lines().any(|line| line.trim() == "3"), "{said}");
}

#[test]
fn no_password_reaches_any_artifact_of_a_run() {
    const SECRET: &str = "pa55-never-written";
    let dir = tempfile::tempdir().unwrap();
    let broker_trace = dir.path().join("broker.jsonl");
    let broker_pcap = dir.path().join("broker.pcap");
    let broker = BrokerProcess::start(&[
        "--port",
        "0",
        "--auth",
        &format!("ci:{SECRET}"),
        "--trace",
        broker_trace.to_str().unwrap(),
        "--pcap",
        broker_pcap.to_str().unwrap(),
    ]);
    std::fs::write(
        dir.path().join("login.yaml"),
        r#"name: login
boards:
  lamp: { profile: sim }
clients:
  phone: {}
  display: { protocol: 5 }
steps:
  - expect_connected: { client: lamp, within: 3s }
  - publish: { as: phone, topic: living_room_lights, payload: "on", qos: 1 }
  - expect_relay: { board: lamp, state: on, within: 1s }
  - expect_message: { topic: living_room_lights, payload: "on", to: display, within: 1s }
  - send_serial: { board: lamp, line: "status" }
  - expect_serial: { board: lamp, regex: "^HIL status", within: 1s }
"#,
    )
    .unwrap();
    let output = Command::new(hil_exe())
        .current_dir(dir.path())
        .args([
            "run",
            "login.yaml",
            "--broker",
            &broker.url,
            "--username",
            "ci",
        ])
        .args([
            "--password-env",
            "HIL_TEST_SECRET",
            "--out",
            "out",
            "--pcap",
        ])
        .args(["--junit", "junit.xml", "--json", "report.json"])
        .env("HIL_TEST_SECRET", SECRET)
        .env("NO_COLOR", "1")
        .output()
        .unwrap();
    let console = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    assert_eq!(output.status.code(), Some(0), "{console}");
    assert!(!console.contains(SECRET));
    broker.stop();

    let files = every_file(dir.path());
    for wanted in [
        "trace.jsonl",
        "capture.pcap",
        "serial-lamp.log",
        "junit.xml",
        "report.json",
        "broker.pcap",
    ] {
        assert!(
            files.iter().any(|(path, _)| path.ends_with(wanted)),
            "{wanted} written"
        );
    }
    for (path, bytes) in &files {
        if path.ends_with(".yaml") {
            continue;
        }
        assert!(!contains(bytes, SECRET), "the password is in {path}");
    }
    // The login happened: the broker's trace has each client's user name.
    let trace = std::fs::read_to_string(&broker_trace).unwrap();
    assert!(trace.contains("\"username\":\"ci\""), "{trace}");
    assert!(!trace.contains("bad_user_name_or_password"), "{trace}");
}
