//! The host Arduino core against the behaviour it imitates, through a probe sketch
//! (`tests/probe/probe.ino`) that calls PubSubClient and EEPROM from console commands,
//! with a raw TCP listener standing in for the broker. Also: the shipped sketch builds
//! for both board families and boots.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::mpsc;
use std::sync::OnceLock;
use std::time::Duration;

use hil_firmware::host_build::{self, Compiler, Family, HostBuild};

const DEADLINE: Duration = Duration::from_secs(10);

fn build(sketch: &Path, family: Family, dir: &Path) -> PathBuf {
    let out = dir.join("board");
    host_build::build(
        &HostBuild {
            sketch: sketch.to_path_buf(),
            family,
            defines: Vec::new(),
            out: out.clone(),
            work: dir.join("objects"),
        },
        &Compiler::from_env(false),
        &Compiler::from_env(true),
    )
    .unwrap_or_else(|error| panic!("the build failed:\n{error}"));
    out
}

/// The probe, built once for all tests of this file.
fn probe_program() -> &'static Path {
    static PROBE: OnceLock<(tempfile::TempDir, PathBuf)> = OnceLock::new();
    let (_, program) = PROBE.get_or_init(|| {
        let dir = tempfile::tempdir().expect("a temporary folder");
        let sketch = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/probe/probe.ino");
        let program = build(&sketch, Family::Esp8266, dir.path());
        (dir, program)
    });
    program
}

/// A board process, spoken to over its line protocol.
struct Board {
    child: Child,
    input: ChildStdin,
    lines: mpsc::Receiver<String>,
}

impl Board {
    fn start(program: &Path, eeprom: &Path) -> Board {
        let mut child = Command::new(program)
            .arg("--eeprom")
            .arg(eeprom)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .expect("the board starts");
        let input = child.stdin.take().expect("stdin");
        let output = child.stdout.take().expect("stdout");
        let (sender, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(output).lines().map_while(Result::ok) {
                if sender.send(line).is_err() {
                    return;
                }
            }
        });
        Board {
            child,
            input,
            lines,
        }
    }

    fn send(&mut self, line: &str) {
        writeln!(self.input, "{line}").expect("the board reads its input");
    }

    fn type_line(&mut self, text: &str) {
        let hex: String = format!("{text}\n")
            .bytes()
            .map(|b| format!("{b:02x}"))
            .collect();
        self.send(&format!("rx {hex}"));
    }

    /// The next console line, answering the board's syncs on the way.
    fn serial_line(&mut self) -> String {
        loop {
            let line = self
                .lines
                .recv_timeout(DEADLINE)
                .expect("the board says something within the deadline");
            if line == "sync" {
                self.send("ok");
            } else if let Some(hex) = line.strip_prefix("serial ") {
                let bytes: Vec<u8> = (0..hex.len() / 2)
                    .map(|i| u8::from_str_radix(&hex[2 * i..2 * i + 2], 16).expect("hex"))
                    .collect();
                return String::from_utf8(bytes).expect("text");
            }
        }
    }

    fn power_off(mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn read_exactly(stream: &mut TcpStream, n: usize) -> Vec<u8> {
    let mut bytes = vec![0; n];
    stream.read_exact(&mut bytes).expect("the client sends");
    bytes
}

/// Reads one MQTT packet: (first byte, body).
fn read_packet(stream: &mut TcpStream) -> (u8, Vec<u8>) {
    let first = read_exactly(stream, 1)[0];
    let mut length = 0usize;
    let mut shift = 0;
    loop {
        let digit = read_exactly(stream, 1)[0];
        length |= ((digit & 127) as usize) << shift;
        shift += 7;
        if digit & 128 == 0 {
            break;
        }
    }
    (first, read_exactly(stream, length))
}

/// A probe connected to a listener that answers CONNACK; returns the broker side.
fn connected_probe(eeprom: &Path) -> (Board, TcpStream) {
    let listener = TcpListener::bind("127.0.0.1:0").expect("a loopback listener");
    let port = listener.local_addr().expect("an address").port();
    let mut board = Board::start(probe_program(), eeprom);
    board.type_line(&format!("connect 127.0.0.1 {port}"));
    let (mut broker, _) = listener.accept().expect("the probe connects");
    broker.set_read_timeout(Some(DEADLINE)).expect("a timeout");
    let (connect, _) = read_packet(&mut broker);
    assert_eq!(connect, 0x10, "CONNECT first");
    broker
        .write_all(&[0x20, 0x02, 0x00, 0x00])
        .expect("CONNACK");
    assert!(board.serial_line().starts_with("connect ok=1 state=0"));
    (board, broker)
}

fn publish_qos1(topic: &str, id: u16, payload_len: usize) -> Vec<u8> {
    let mut body = Vec::new();
    body.extend((topic.len() as u16).to_be_bytes());
    body.extend(topic.as_bytes());
    body.extend(id.to_be_bytes());
    body.extend(std::iter::repeat_n(b'x', payload_len));
    let mut packet = vec![0x32];
    let mut length = body.len();
    loop {
        let digit = (length % 128) as u8;
        length /= 128;
        packet.push(if length > 0 { digit | 0x80 } else { digit });
        if length == 0 {
            break;
        }
    }
    packet.extend(body);
    packet
}

#[test]
fn a_connect_to_a_broker_that_never_answers_gives_up_after_the_socket_timeout() {
    let dir = tempfile::tempdir().expect("a temporary folder");
    let listener = TcpListener::bind("127.0.0.1:0").expect("a loopback listener");
    let port = listener.local_addr().expect("an address").port();
    let mut board = Board::start(probe_program(), &dir.path().join("eeprom"));
    board.type_line(&format!("connect 127.0.0.1 {port}"));
    let (mut silent, _) = listener.accept().expect("the probe connects");
    silent.set_read_timeout(Some(DEADLINE)).expect("a timeout");
    let (connect, body) = read_packet(&mut silent);
    assert_eq!(connect, 0x10);
    assert_eq!(&body[2..6], b"MQTT");
    let answer = board.serial_line();
    let waited: u64 = answer
        .rsplit("ms=")
        .next()
        .and_then(|ms| ms.parse().ok())
        .expect("the probe says how long connect took");
    assert!(
        answer.starts_with("connect ok=0 state=-4"),
        "MQTT_CONNECTION_TIMEOUT expected: {answer}"
    );
    assert!(
        waited >= 1000,
        "connect held the loop for the whole 1 s timeout: {answer}"
    );
    board.power_off();
}

#[test]
fn a_message_larger_than_the_buffer_is_dropped_whole_and_not_acknowledged() {
    let dir = tempfile::tempdir().expect("a temporary folder");
    let (mut board, mut broker) = connected_probe(&dir.path().join("eeprom"));
    // The buffer is 64 bytes: 100 bytes of payload cannot fit, 2 can.
    broker
        .write_all(&publish_qos1("t/big", 7, 100))
        .expect("send");
    broker
        .write_all(&publish_qos1("t/small", 8, 2))
        .expect("send");
    assert_eq!(board.serial_line(), "message t/small 2");
    let (puback, body) = read_packet(&mut broker);
    assert_eq!(
        (puback, body),
        (0x40, vec![0x00, 0x08]),
        "only the small one is acknowledged"
    );
    board.power_off();
}

#[test]
fn loop_pings_on_keep_alive_and_drops_a_broker_that_does_not_answer() {
    let dir = tempfile::tempdir().expect("a temporary folder");
    let (mut board, mut broker) = connected_probe(&dir.path().join("eeprom"));
    let (ping, body) = read_packet(&mut broker);
    assert_eq!(
        (ping, body),
        (0xC0, vec![]),
        "PINGREQ after a quiet keep-alive"
    );
    broker.write_all(&[0xD0, 0x00]).expect("PINGRESP");
    let (ping, _) = read_packet(&mut broker);
    assert_eq!(ping, 0xC0, "a second PINGREQ, left unanswered");
    assert_eq!(board.serial_line(), "lost state=-4");
    let mut rest = Vec::new();
    broker
        .read_to_end(&mut rest)
        .expect("the probe closes the connection");
    assert!(rest.is_empty(), "no DISCONNECT, only the close: {rest:?}");
    board.power_off();
}

#[test]
fn committed_eeprom_survives_power_loss_and_uncommitted_writes_do_not() {
    let dir = tempfile::tempdir().expect("a temporary folder");
    let eeprom = dir.path().join("eeprom");
    let mut board = Board::start(probe_program(), &eeprom);
    board.type_line("eeprom write 3 42");
    assert_eq!(board.serial_line(), "written");
    board.type_line("commit");
    assert_eq!(board.serial_line(), "committed");
    board.type_line("eeprom write 4 7");
    assert_eq!(board.serial_line(), "written");
    board.power_off();

    let mut board = Board::start(probe_program(), &eeprom);
    board.type_line("eeprom read 3");
    assert_eq!(board.serial_line(), "value 42");
    board.type_line("eeprom read 4");
    assert_eq!(
        board.serial_line(),
        "value 255",
        "erased flash, the write never committed"
    );
    board.power_off();
}

#[test]
fn the_shipped_sketch_builds_and_boots_for_both_board_families() {
    for (family, name) in [(Family::Esp8266, "esp8266"), (Family::Esp32, "esp32")] {
        let dir = tempfile::tempdir().expect("a temporary folder");
        let program = build(&host_build::shipped_sketch(), family, dir.path());
        let mut board = Board::start(&program, &dir.path().join("eeprom"));
        let hello = board.lines.recv_timeout(DEADLINE).expect("hello");
        assert!(
            hello.starts_with(&format!("hello family={name}")),
            "{hello}"
        );
        assert_eq!(
            board.serial_line(),
            format!(
                "HIL boot fw=light-controller version={}",
                hil_firmware::VERSION
            )
        );
        board.power_off();
    }
}
