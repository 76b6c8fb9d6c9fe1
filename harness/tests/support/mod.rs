//! Shared helpers for the integration tests: brokers on loopback, MQTT clients, and
//! waiting on trace events with deadlines.
#![allow(dead_code)]

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use hil::broker::{Broker, BrokerConfig, DEFAULT_MAX_PACKET_SIZE};
use hil::trace::{Event, EventBody, Trace};
use tokio::sync::mpsc;

/// Generous: these deadlines only bound a failing test, they are not measurements.
pub const DEADLINE: Duration = Duration::from_secs(10);

/// Fails the test with everything the command printed unless it exited 0.
pub fn assert_passed(output: &std::process::Output) {
    assert_eq!(
        output.status.code(),
        Some(0),
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}

pub fn hil_exe() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_hil"))
}

pub fn config() -> BrokerConfig {
    BrokerConfig {
        listen: "127.0.0.1:0".parse().unwrap(),
        max_packet_size: DEFAULT_MAX_PACKET_SIZE,
        engine_exe: hil_exe(),
        capture: None,
        external: None,
        namespace: None,
        login: None,
        engine_listeners: hil::tap::ENGINE_LISTENERS,
        warm: None,
    }
}

pub async fn broker() -> (Broker, Trace) {
    let trace = Trace::in_memory();
    let broker = Broker::start(config(), trace.clone())
        .await
        .expect("broker starts");
    (broker, trace)
}

/// Waits until an event matching `pred` is in the trace (looking from the start).
pub async fn wait_for(trace: &Trace, what: &str, pred: impl Fn(&Event) -> bool) -> Arc<Event> {
    let mut cursor = trace.cursor_at(0);
    let deadline = tokio::time::Instant::now() + DEADLINE;
    while let Some(event) = cursor.next_before(deadline).await {
        if pred(&event) {
            return event;
        }
    }
    panic!(
        "no {what} in the trace within {DEADLINE:?}; trace:\n{}",
        dump(trace)
    );
}

pub fn dump(trace: &Trace) -> String {
    trace
        .events_from(0)
        .iter()
        .map(|e| serde_json::to_string(&**e).unwrap())
        .collect::<Vec<_>>()
        .join("\n")
}

/// The packet names one client exchanged in one direction, in trace order.
pub fn packets_of(trace: &Trace, client_id: &str, dir: hil::trace::Direction) -> Vec<&'static str> {
    trace
        .events_from(0)
        .iter()
        .filter_map(|e| match &e.body {
            EventBody::Mqtt {
                client,
                dir: d,
                packet,
                ..
            } if client.as_deref() == Some(client_id) && *d == dir => Some(packet.name()),
            _ => None,
        })
        .collect()
}

pub fn closed_reason(event: &Event) -> Option<hil::trace::CloseReason> {
    match &event.body {
        EventBody::ConnClosed { reason, .. } => Some(*reason),
        _ => None,
    }
}

/// An MQTT 3.1.1 client (rumqttc) whose event loop runs in the background; incoming
/// publishes arrive on `publishes`.
pub struct Client {
    pub client: rumqttc::AsyncClient,
    pub publishes: mpsc::UnboundedReceiver<rumqttc::Publish>,
    pub connected: mpsc::UnboundedReceiver<()>,
}

impl Client {
    pub fn options(id: &str, addr: SocketAddr) -> rumqttc::MqttOptions {
        let mut options = rumqttc::MqttOptions::new(id, addr.ip().to_string(), addr.port());
        options.set_keep_alive(Duration::from_secs(60));
        options.set_max_packet_size(4 * 1024 * 1024, 4 * 1024 * 1024);
        options
    }

    pub fn start(options: rumqttc::MqttOptions) -> Client {
        let (client, mut eventloop) = rumqttc::AsyncClient::new(options, 100);
        let (publish_tx, publishes) = mpsc::unbounded_channel();
        let (connected_tx, connected) = mpsc::unbounded_channel();
        tokio::spawn(async move {
            loop {
                match eventloop.poll().await {
                    Ok(rumqttc::Event::Incoming(rumqttc::Packet::Publish(p))) => {
                        let _ = publish_tx.send(p);
                    }
                    Ok(rumqttc::Event::Incoming(rumqttc::Packet::ConnAck(_))) => {
                        let _ = connected_tx.send(());
                    }
                    Ok(_) => {}
                    Err(_) => return,
                }
            }
        });
        Client {
            client,
            publishes,
            connected,
        }
    }

    pub async fn connect(id: &str, addr: SocketAddr) -> Client {
        let mut client = Client::start(Client::options(id, addr));
        tokio::time::timeout(DEADLINE, client.connected.recv())
            .await
            .expect("CONNACK in time")
            .expect("event loop alive");
        client
    }

    pub async fn next_publish(&mut self) -> rumqttc::Publish {
        tokio::time::timeout(DEADLINE, self.publishes.recv())
            .await
            .expect("a publish in time")
            .expect("event loop alive")
    }
}

/// A Debian `mosquitto` broker of the test's own, on a free loopback port: a broker we
/// did not write. Killed when dropped.
pub struct Mosquitto {
    child: std::process::Child,
    pub port: u16,
    _dir: tempfile::TempDir,
}

impl Mosquitto {
    /// Starts mosquitto on a free port. A port found free can be taken by another test
    /// before mosquitto binds it (mosquitto then exits, and the port answers for someone
    /// else): so the broker counts as started only when the port answers while mosquitto
    /// still runs, and a lost race is tried again on another port.
    pub fn start() -> Mosquitto {
        for _ in 0..5 {
            if let Some(broker) = Mosquitto::try_start() {
                return broker;
            }
        }
        panic!("mosquitto did not start on any of 5 free ports");
    }

    fn try_start() -> Option<Mosquitto> {
        let dir = tempfile::tempdir().unwrap();
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let config = dir.path().join("mosquitto.conf");
        std::fs::write(
            &config,
            format!("listener {port} 127.0.0.1\nallow_anonymous true\npersistence false\n"),
        )
        .unwrap();
        let mut child = std::process::Command::new("mosquitto")
            .arg("-c")
            .arg(&config)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("mosquitto is installed (ci/test.sh installs it)");
        let deadline = std::time::Instant::now() + DEADLINE;
        loop {
            if child.try_wait().unwrap().is_some() {
                return None;
            }
            if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
                break;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "mosquitto did not listen on {port}"
            );
            std::thread::sleep(Duration::from_millis(10));
        }
        // Listening, and still ours: a mosquitto that lost the port has exited by now.
        std::thread::sleep(Duration::from_millis(50));
        if child.try_wait().unwrap().is_some() {
            return None;
        }
        Some(Mosquitto {
            child,
            port,
            _dir: dir,
        })
    }

    pub fn url(&self) -> String {
        format!("mqtt://127.0.0.1:{}", self.port)
    }
}

impl Drop for Mosquitto {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A child process's stdout, line by line, read on a thread so waits can have deadlines.
pub struct Lines(std::sync::mpsc::Receiver<String>);

impl Lines {
    pub fn of(stdout: impl std::io::Read + Send + 'static) -> Lines {
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            use std::io::BufRead;
            for line in std::io::BufReader::new(stdout)
                .lines()
                .map_while(Result::ok)
            {
                if tx.send(line).is_err() {
                    return;
                }
            }
        });
        Lines(rx)
    }

    /// The first line `wanted` accepts, within the deadline; every line seen is in the
    /// panic message when none does.
    pub fn wait_for(&self, what: &str, wanted: impl Fn(&str) -> bool) -> String {
        let deadline = std::time::Instant::now() + DEADLINE;
        let mut seen = Vec::new();
        loop {
            let left = deadline.saturating_duration_since(std::time::Instant::now());
            match self.0.recv_timeout(left) {
                Ok(line) if wanted(&line) => return line,
                Ok(line) => seen.push(line),
                Err(_) => panic!("no {what} within {DEADLINE:?}; seen:\n{}", seen.join("\n")),
            }
        }
    }
}

/// A folder of scenario files for one test.
pub struct Suite {
    dir: tempfile::TempDir,
}

impl Suite {
    pub fn new() -> Suite {
        Suite {
            dir: tempfile::tempdir().unwrap(),
        }
    }

    pub fn dir(&self) -> &std::path::Path {
        self.dir.path()
    }

    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    pub fn add(&self, file: &str, text: &str) -> &Suite {
        let path = self.path(file);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, text).unwrap();
        self
    }

    /// `hil ARGS` in the folder, without colour, insta or CI settings of its own.
    pub fn command(&self, args: &[&str]) -> assert_cmd::Command {
        let mut command = assert_cmd::Command::new(hil_exe());
        command
            .current_dir(self.dir.path())
            .args(args)
            .env("NO_COLOR", "1")
            .env_remove("INSTA_UPDATE")
            .env_remove("CI");
        command
    }

    pub fn hil(&self, args: &[&str]) -> std::process::Output {
        self.command(args).output().unwrap()
    }
}

/// The shipped core with each `(from, to)` replaced (each must occur), built as a shared
/// library `DIR/NAME.so` for `--firmware-lib`.
pub fn core_library(dir: &std::path::Path, name: &str, changes: &[(&str, &str)]) -> PathBuf {
    use hil_firmware::host_build::{build_core_library, shipped_core, Compiler, CoreLibrary};
    let mut text = std::fs::read_to_string(shipped_core()).unwrap();
    for (from, to) in changes {
        assert!(text.contains(from), "the core has no {from:?}");
        text = text.replace(from, to);
    }
    let source = dir.join(format!("{name}.c"));
    std::fs::write(&source, text).unwrap();
    let out = dir.join(format!("{name}.so"));
    let library = CoreLibrary {
        sources: vec![source],
        defines: Vec::new(),
        out: out.clone(),
    };
    build_core_library(&library, &Compiler::from_env(false)).expect("the core builds");
    out
}

/// Waits for `child` to end (killing it and failing after [`DEADLINE`]) and returns
/// what it printed; for commands that print little.
pub fn wait_output(mut child: std::process::Child) -> std::process::Output {
    use wait_timeout::ChildExt;
    match child.wait_timeout(DEADLINE).unwrap() {
        Some(_) => child.wait_with_output().unwrap(),
        None => {
            let _ = child.kill();
            let output = child.wait_with_output().unwrap();
            panic!(
                "the command did not end within {DEADLINE:?}:\n{}{}",
                String::from_utf8_lossy(&output.stdout),
                String::from_utf8_lossy(&output.stderr)
            );
        }
    }
}
