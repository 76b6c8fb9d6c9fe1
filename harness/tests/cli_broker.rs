//! `hil broker` and `hil trace show` as a user runs them: a real child process.

mod support;

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use assert_cmd::prelude::*;
use hil::trace::{BrokerAction, Event, EventBody, Packet};
use support::{hil_exe, Client, DEADLINE};

/// A running `hil broker`, the URL it printed, and the rest of its stdout as it comes.
struct BrokerProcess {
    child: Child,
    url: String,
    more_stdout: mpsc::Receiver<String>,
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
        let stdout = child.stdout.take().unwrap();
        let (tx, more_stdout) = mpsc::channel();
        // To the end of stdout: anything after the URL breaks the one-line contract, and
        // `signal` checks that nothing came.
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let _ = tx.send(line.expect("utf-8 line"));
            }
        });
        let url = more_stdout
            .recv_timeout(DEADLINE)
            .expect("a line within the deadline");
        BrokerProcess {
            child,
            url,
            more_stdout,
        }
    }

    fn addr(&self) -> std::net::SocketAddr {
        self.url
            .strip_prefix("mqtt://")
            .expect("mqtt:// URL")
            .parse()
            .unwrap()
    }

    fn signal(&mut self, name: &str) -> std::process::Output {
        let status = Command::new("kill")
            .args(["-s", name, &self.child.id().to_string()])
            .status()
            .unwrap();
        assert!(status.success());
        let deadline = std::time::Instant::now() + DEADLINE;
        while self.child.try_wait().unwrap().is_none() {
            assert!(
                std::time::Instant::now() < deadline,
                "hil broker did not stop on SIG{name}"
            );
            std::thread::sleep(Duration::from_millis(10));
        }
        let child = std::mem::replace(&mut self.child, Command::new("true").spawn().unwrap());
        let output = child.wait_with_output().unwrap();
        let mut more = Vec::new();
        loop {
            match self.more_stdout.recv_timeout(DEADLINE) {
                Ok(line) => more.push(line),
                Err(mpsc::RecvTimeoutError::Disconnected) => break,
                Err(mpsc::RecvTimeoutError::Timeout) => {
                    panic!("stdout still open {DEADLINE:?} after hil broker exited")
                }
            }
        }
        assert!(
            more.is_empty(),
            "only one line on stdout, then also {more:?}"
        );
        output
    }
}

fn read_trace(path: &std::path::Path) -> Vec<Event> {
    std::fs::read_to_string(path)
        .unwrap()
        .lines()
        .map(|line| serde_json::from_str(line).unwrap_or_else(|e| panic!("bad line {line:?}: {e}")))
        .collect()
}

async fn stop_with_signal_leaves_a_complete_trace(signal: &str) {
    let dir = tempfile::tempdir().unwrap();
    let trace_path = dir.path().join("broker.jsonl");
    let mut broker =
        BrokerProcess::start(&["--port", "0", "--trace", trace_path.to_str().unwrap()]);
    assert!(
        broker.url.starts_with("mqtt://127.0.0.1:"),
        "{}",
        broker.url
    );
    let mut listener = Client::connect("display", broker.addr()).await;
    listener
        .client
        .subscribe("living_room_lights", rumqttc::QoS::AtLeastOnce)
        .await
        .unwrap();
    let phone = Client::connect("phone", broker.addr()).await;
    // Publish until the subscription is in place and one arrives.
    let deadline = tokio::time::Instant::now() + DEADLINE;
    loop {
        phone
            .client
            .publish("living_room_lights", rumqttc::QoS::AtLeastOnce, false, "on")
            .await
            .unwrap();
        if tokio::time::timeout(Duration::from_millis(100), listener.publishes.recv())
            .await
            .is_ok()
        {
            break;
        }
        assert!(tokio::time::Instant::now() < deadline);
    }

    let output = broker.signal(signal);
    assert_eq!(
        output.status.code(),
        Some(0),
        "stderr: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    let events = read_trace(&trace_path);
    let seqs: Vec<u64> = events.iter().map(|e| e.seq).collect();
    assert_eq!(
        seqs,
        (1..=events.len() as u64).collect::<Vec<_>>(),
        "no gaps"
    );
    assert!(events.iter().any(|e| matches!(&e.body, EventBody::Mqtt { client, packet: Packet::Publish { .. }, .. } if client.as_deref() == Some("phone"))));
    assert!(events.iter().any(|e| matches!(&e.body, EventBody::ConnClosed { client, .. } if client.as_deref() == Some("display"))), "open connections are closed in the trace");
    assert!(
        matches!(
            events.last().unwrap().body,
            EventBody::Broker {
                action: BrokerAction::Stopped,
                ..
            }
        ),
        "the last event is the stop"
    );
}

#[tokio::test]
async fn sigint_stops_cleanly_with_a_complete_trace() {
    stop_with_signal_leaves_a_complete_trace("INT").await;
}

#[tokio::test]
async fn sigterm_stops_cleanly_with_a_complete_trace() {
    stop_with_signal_leaves_a_complete_trace("TERM").await;
}

#[test]
fn a_port_in_use_is_an_infrastructure_error_naming_the_address() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = taken.local_addr().unwrap().port();
    let output = Command::new(hil_exe())
        .args(["broker", "--port", &port.to_string()])
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(3));
    let stderr = String::from_utf8(output.stderr).unwrap();
    assert_eq!(stderr.trim_end().lines().count(), 1, "one line: {stderr}");
    assert!(stderr.contains(&format!("127.0.0.1:{port}")), "{stderr}");
    assert!(stderr.contains("--port"), "says what to do: {stderr}");
    assert!(output.stdout.is_empty());
}

#[test]
fn mosquitto_clients_talk_through_the_tap() {
    let dir = tempfile::tempdir().unwrap();
    let trace_path = dir.path().join("t.jsonl");
    let mut broker =
        BrokerProcess::start(&["--port", "0", "--trace", trace_path.to_str().unwrap()]);
    let port = broker.addr().port().to_string();
    let subscriber = Command::new("mosquitto_sub")
        .args([
            "-h",
            "127.0.0.1",
            "-p",
            &port,
            "-t",
            "living_room_lights",
            "-C",
            "1",
            "-W",
            "10",
            "-i",
            "mosq-sub",
            "-q",
            "1",
        ])
        .stdout(Stdio::piped())
        .spawn()
        .expect("mosquitto_sub is installed (ci/test.sh installs mosquitto-clients)");
    // Retained, so it reaches the subscriber whichever connects first.
    let status = Command::new("mosquitto_pub")
        .args([
            "-h",
            "127.0.0.1",
            "-p",
            &port,
            "-t",
            "living_room_lights",
            "-m",
            "on",
            "-r",
            "-q",
            "1",
            "-i",
            "mosq-pub",
        ])
        .status()
        .expect("mosquitto_pub is installed");
    assert!(status.success());
    let output = subscriber.wait_with_output().unwrap();
    assert!(output.status.success());
    assert_eq!(String::from_utf8(output.stdout).unwrap().trim(), "on");
    broker.signal("INT");
    let events = read_trace(&trace_path);
    for id in ["mosq-pub", "mosq-sub"] {
        assert!(
            events.iter().any(|e| matches!(&e.body, EventBody::Mqtt { client, packet: Packet::Connect { .. }, .. } if client.as_deref() == Some(id))),
            "{id} in trace"
        );
    }
}

#[test]
fn trace_show_renders_a_filtered_timeline() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("t.jsonl");
    let lines = [
        r#"{"seq":1,"t_us":1000,"kind":"trace_started","wall_clock":"2026-01-01T00:00:00.000Z","hil_version":"0.1.0"}"#,
        r#"{"seq":2,"t_us":2500,"kind":"mqtt","conn":1,"client":"phone","dir":"c2b","packet":"publish","topic":"living_room_lights","payload":"on","qos":1,"retain":false,"dup":false,"pkid":1}"#,
        r#"{"seq":3,"t_us":3000,"kind":"mqtt","conn":2,"client":"lamp","dir":"b2c","packet":"publish","topic":"other","payload":{"base64":"/w=="},"qos":0,"retain":false,"dup":false}"#,
    ];
    std::fs::write(&path, lines.join("\n")).unwrap();
    let output = Command::new(hil_exe())
        .args(["trace", "show", path.to_str().unwrap(), "--client", "phone"])
        .env("NO_COLOR", "1")
        .output()
        .unwrap();
    assert!(output.status.success());
    let text = String::from_utf8(output.stdout).unwrap();
    assert_eq!(
        text,
        "     1.500 ms  #1 phone  ->  publish     living_room_lights \"on\" qos=1 pkid=1\n"
    );

    let all = Command::new(hil_exe())
        .args(["trace", "show", path.to_str().unwrap(), "--topic", "#"])
        .output()
        .unwrap();
    let text = String::from_utf8(all.stdout).unwrap();
    assert!(
        text.contains("<1 bytes: ff>"),
        "binary payloads are shown as bytes: {text}"
    );
    assert!(
        !text.contains('\u{1b}'),
        "no colour when stdout is not a terminal"
    );
}

#[test]
fn trace_show_names_the_bad_line() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("bad.jsonl");
    std::fs::write(&path, "{\"seq\":1,\"t_us\":0,\"kind\":\"trace_started\",\"wall_clock\":\"x\",\"hil_version\":\"1\"}\nnot json\n").unwrap();
    let output = Command::new(hil_exe())
        .args(["trace", "show", path.to_str().unwrap()])
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(2));
    let stderr = String::from_utf8(output.stderr).unwrap();
    assert!(
        stderr.contains(&format!("{}:2:", path.display())),
        "{stderr}"
    );
}

#[test]
fn every_command_explains_itself_with_an_example() {
    for command in [
        &["run"][..],
        &["check"],
        &["schema"],
        &["snapshot"],
        &["sim"],
        &["ports"],
        &["monitor"],
        &["provision"],
        &["broker"],
        &["trace"],
        &["trace", "show"],
        &["bench"],
        &["image"],
        &["image", "generate"],
        &["image", "inspect"],
    ] {
        let output = Command::new(hil_exe())
            .args(command)
            .arg("--help")
            .output()
            .unwrap();
        assert!(output.status.success());
        let help = String::from_utf8(output.stdout).unwrap();
        assert!(
            help.contains("Example:") || help.contains("Examples:"),
            "{command:?} help lacks an example:\n{help}"
        );
    }
    Command::new(hil_exe())
        .arg("--help")
        .assert()
        .success()
        .stdout(predicates::str::contains("Exit codes"));
    Command::new(hil_exe())
        .arg("no-such-command")
        .assert()
        .code(2);
}

#[test]
fn tshark_decodes_the_capture_with_one_stream_per_client_and_no_password() {
    let dir = tempfile::tempdir().unwrap();
    let pcap = dir.path().join("broker.pcap");
    let mut broker = BrokerProcess::start(&["--port", "0", "--pcap", pcap.to_str().unwrap()]);
    let port = broker.addr().port().to_string();
    for (id, message) in [("pub-one", "on"), ("pub-two", "off")] {
        let status = Command::new("mosquitto_pub")
            .args([
                "-h",
                "127.0.0.1",
                "-p",
                &port,
                "-i",
                id,
                "-u",
                "bench",
                "-P",
                "pcap-secret-42",
            ])
            .args(["-t", "living_room_lights", "-m", message, "-q", "1"])
            .status()
            .expect("mosquitto_pub is installed");
        assert!(status.success());
    }
    broker.signal("INT");

    let bytes = std::fs::read(&pcap).unwrap();
    assert!(
        !bytes.windows(14).any(|w| w == b"pcap-secret-42"),
        "the password is blanked"
    );
    let fields = Command::new("tshark")
        .args([
            "-r",
            pcap.to_str().unwrap(),
            "-Y",
            "mqtt",
            "-T",
            "fields",
            "-E",
            "separator=|",
        ])
        .args([
            "-e",
            "tcp.srcport",
            "-e",
            "tcp.dstport",
            "-e",
            "mqtt.msgtype",
            "-e",
            "mqtt.clientid",
            "-e",
            "mqtt.msg",
        ])
        .output()
        .expect("tshark is installed (ci/test.sh installs it)");
    assert!(
        fields.status.success(),
        "{}",
        String::from_utf8_lossy(&fields.stderr)
    );
    let text = String::from_utf8(fields.stdout).unwrap();
    let rows: Vec<Vec<&str>> = text.lines().map(|line| line.split('|').collect()).collect();
    // CONNECT (1) carries the client id; its client port identifies the stream.
    let port_of = |id: &str| {
        rows.iter()
            .find(|row| row[2] == "1" && row[3] == id)
            .unwrap_or_else(|| panic!("no CONNECT from {id} in:\n{text}"))[0]
    };
    let (one, two) = (port_of("pub-one"), port_of("pub-two"));
    assert_ne!(one, two);
    for (port, payload) in [(one, "on"), (two, "off")] {
        let hex: String = payload.bytes().map(|b| format!("{b:02x}")).collect();
        assert!(
            rows.iter().any(|row| row[0] == port
                && row[1] == "1883"
                && row[2] == "3"
                && (row[4] == payload || row[4] == hex)),
            "PUBLISH {payload} from port {port} in:\n{text}"
        );
    }
    // Consistent sequence numbers: tshark flags nothing as lost, retransmitted or out of order.
    let analysis = Command::new("tshark")
        .args([
            "-r",
            pcap.to_str().unwrap(),
            "-Y",
            "tcp.analysis.flags || _ws.malformed",
        ])
        .output()
        .unwrap();
    assert_eq!(
        String::from_utf8_lossy(&analysis.stdout).trim(),
        "",
        "tshark found problems"
    );
}

/// What mosquitto's own clients see: a QoS 2 subscriber gets each message at the QoS it
/// was published with, and a filter refused by `--deny-subscribe` is refused.
#[test]
fn mosquitto_sub_gets_the_lower_qos_and_a_refused_filter() {
    let mut broker = BrokerProcess::start(&["--port", "0", "--deny-subscribe", "secret/#"]);
    let port = broker.addr().port().to_string();
    // Line-buffered, so each debug line arrives as it is printed.
    let mut subscriber = Command::new("stdbuf")
        .args(["-oL", "mosquitto_sub"])
        .args([
            "-h",
            "127.0.0.1",
            "-p",
            &port,
            "-i",
            "mosq-q2",
            "-q",
            "2",
            "-d",
        ])
        .args(["-t", "living_room_lights/#", "-C", "3", "-W", "10"])
        .stdout(Stdio::piped())
        .spawn()
        .expect("mosquitto_sub is installed (ci/test.sh installs mosquitto-clients)");
    let lines = support::Lines::of(subscriber.stdout.take().unwrap());
    lines.wait_for("the SUBACK", |line| line.contains("received SUBACK"));
    for qos in ["0", "1", "2"] {
        let status = Command::new("mosquitto_pub")
            .args(["-h", "127.0.0.1", "-p", &port, "-q", qos, "-m", qos])
            .args(["-t", "living_room_lights/state"])
            .status()
            .expect("mosquitto_pub is installed");
        assert!(status.success());
        let delivery = lines.wait_for("a delivery", |line| line.contains("received PUBLISH"));
        assert!(
            delivery.contains(&format!("(d0, q{qos},")),
            "published at QoS {qos}, delivered as: {delivery}"
        );
    }
    assert!(subscriber.wait().unwrap().success());

    let refused = Command::new("mosquitto_sub")
        .args(["-h", "127.0.0.1", "-p", &port, "-i", "mosq-refused", "-d"])
        .args(["-t", "secret/key", "-C", "1", "-W", "3"])
        .output()
        .expect("mosquitto_sub is installed");
    let said = String::from_utf8_lossy(&refused.stdout).into_owned()
        + &String::from_utf8_lossy(&refused.stderr);
    assert!(said.contains("received SUBACK"), "{said}");
    assert!(
        said.contains("All subscription requests were denied"),
        "mosquitto_sub reports the refusal: {said}"
    );
    broker.signal("TERM");
}
