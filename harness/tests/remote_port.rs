//! Remote serial ports (`rfc2217://HOST:PORT`) against servers hil did not write: a
//! virtual chip served by ser2net is flashed and then runs scenarios, and pyserial's
//! RFC 2217 server records the modem-line and baud commands hil sends it.

#[path = "chip_support/mod.rs"]
mod chip_support;

use std::io::{Read, Write};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use chip_support::{
    esptool, hil_in as hil, image, lines_of, wait_with_deadline, VirtualChip, DEADLINE,
};
use hil::bench::farm::Ser2net;
use hil::board::profile::Profile;
use hil::board::reset::BoardReset;
use hil::image::Chip;
use hil::port::rfc2217::RemotePort;
use hil::port::PortName;
use hil::spare_ports;

/// The chip's first boot needs some broker; a run points it at its own.
const BOOT_BROKER: &str = "mqtt://127.0.0.1:9";

/// A child process killed when the test ends, however it ends.
struct Server(Option<Child>);

impl Server {
    /// Waits for the process to end by itself.
    fn wait_for_exit(mut self) -> std::process::ExitStatus {
        wait_with_deadline(self.0.take().expect("the server runs"))
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Some(mut child) = self.0.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

#[test]
fn a_chip_served_by_ser2net_is_flashed_and_runs_scenarios() {
    for chip_kind in [Chip::Esp32c3, Chip::Esp8266] {
        let chip = VirtualChip::start(chip_kind, &["--broker", BOOT_BROKER]);
        let dir = chip.dir.path();
        let ser2net = Ser2net::serve(dir, &chip.port).unwrap();
        let port = ser2net.port;
        let firmware = image(dir, chip_kind, "3.1.4", 8192);
        let config = dir.join("hil.toml");
        // The chip is on this host, but the bench config knows only its address: reset
        // goes to the chip's control socket, named because a remote port has no "beside".
        let profile = match chip_kind {
            Chip::Esp8266 => "sim-pty-esp8266",
            _ => "sim-pty",
        };
        std::fs::write(
            &config,
            format!(
                "[boards.bench1]\nport = \"rfc2217://127.0.0.1:{port}\"\nprofile = \"{profile}\"\n\
                 control = \"{}.ctl\"\nfirmware = \"{}\"\n",
                chip.port.display(),
                firmware.display(),
            ),
        )
        .unwrap();
        let config = config.to_str().unwrap();

        let (code, said) = hil(dir, &["flash", "--board", "bench1", "--config", config]);
        assert_eq!(code, Some(0), "{chip_kind:?}: {said}");
        assert!(said.contains("written"), "{said}");
        assert!(said.contains("booted version"), "{said}");

        // Unchanged: skipped by the MD5 the chip computes, read back through ser2net.
        let (code, said) = hil(dir, &["flash", "--board", "bench1", "--config", config]);
        assert_eq!(code, Some(0), "{chip_kind:?}: {said}");
        assert!(said.contains("unchanged"), "{said}");

        let scenarios = Path::new(env!("CARGO_MANIFEST_DIR")).join("../scenarios");
        let (code, said) = hil(
            dir,
            &[
                "run",
                scenarios
                    .join("phone_turns_on_and_sees_switch.yaml")
                    .to_str()
                    .unwrap(),
                "--board",
                "lamp=bench1",
                "--config",
                config,
                "--out",
                "out",
            ],
        );
        assert_eq!(code, Some(0), "{chip_kind:?}: {said}");
        assert!(said.contains("1 passed"), "{said}");
        let serial = std::fs::read_to_string(
            dir.join("out/phone-turns-the-lights-on-and-sees-the-switch/serial-lamp.log"),
        )
        .unwrap();
        assert!(serial.contains("HIL relay=on"), "{serial}");
        assert!(serial.contains("HIL relay=off"), "{serial}");
    }
}

/// Python with pyserial: the one esptool runs on (`ci/test.sh`'s venv).
fn pyserial_python() -> PathBuf {
    let python = esptool().with_file_name("python");
    assert!(
        python.is_file(),
        "no python beside {} to run pyserial's RFC 2217 server; use ci/test.sh's venv",
        esptool().display()
    );
    python
}

/// pyserial's RFC 2217 server, recording into `log`; and the port it listens on.
fn line_recorder(log: &Path) -> (Server, u16) {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/rfc2217_line_recorder.py");
    let mut child = Command::new(pyserial_python())
        .arg(script)
        .arg(log)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    let lines = lines_of(child.stdout.take().unwrap());
    let server = Server(Some(child));
    let line = lines
        .recv_timeout(DEADLINE)
        .expect("the recorder prints its port");
    let port = line
        .trim()
        .parse()
        .unwrap_or_else(|_| panic!("not a port: {line:?}"));
    (server, port)
}

#[test]
fn reset_lines_and_baud_changes_reach_the_server_in_order() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("lines.log");
    let (recorder, port) = line_recorder(&log);

    let remote = RemotePort::connect(&format!("127.0.0.1:{port}"), 115_200).unwrap();
    let profile = Profile::bundled("nodemcu-esp8266").unwrap();
    let name = PortName::Rfc2217(format!("127.0.0.1:{port}"));
    let wiring = BoardReset::for_port(&profile, &name, None).unwrap();
    wiring.bootloader(&mut remote.lines()).unwrap();

    // Data both ways through the bridge, IAC (0xFF) bytes included, after the program
    // on the pty changed its baud rate, as espflash does after CHANGE_BAUDRATE.
    let mut local = serialport::new(remote.path().to_string_lossy(), 460_800)
        .timeout(Duration::from_millis(200))
        .open_native()
        .unwrap();
    let sent = [0xFF, 0x00, b'h', 0xFF, 0xFF, b'i', 0x0D, 0x0A];
    local.write_all(&sent).unwrap();
    let mut echoed = Vec::new();
    let deadline = Instant::now() + DEADLINE;
    while echoed.len() < sent.len() && Instant::now() < deadline {
        let mut buf = [0u8; 64];
        match local.read(&mut buf) {
            Ok(n) => echoed.extend_from_slice(&buf[..n]),
            Err(e) if e.kind() == std::io::ErrorKind::TimedOut => {}
            Err(e) => panic!("reading the bridged pty: {e}"),
        }
    }
    assert_eq!(echoed, sent);
    drop(local);
    drop(remote);

    // The recorder exits when the client disconnects: its log is then complete.
    assert!(recorder.wait_for_exit().success());
    let log = std::fs::read_to_string(&log).unwrap();
    let entries: Vec<&str> = log.lines().collect();
    let modem: Vec<&str> = entries
        .iter()
        .copied()
        .filter(|entry| !entry.starts_with("baud"))
        .collect();
    // The NodeMCU's bootloader sequence, line by line: DTR before RTS within a step.
    assert_eq!(
        modem,
        ["dtr 0", "rts 1", "dtr 1", "rts 0", "dtr 0"],
        "{log}"
    );
    let first_line = entries.iter().position(|e| !e.starts_with("baud")).unwrap();
    let last_line = entries
        .iter()
        .rposition(|e| !e.starts_with("baud"))
        .unwrap();
    assert_eq!(entries[first_line - 1], "baud 115200", "{log}");
    // The new rate goes out with the whole settings round (the server applies each).
    let after = &entries[last_line + 1..];
    assert!(
        !after.is_empty() && after.iter().all(|entry| *entry == "baud 460800"),
        "{log}"
    );
}

#[test]
fn remote_port_mistakes_say_what_to_do() {
    let dir = tempfile::tempdir().unwrap();
    let firmware = image(dir.path(), Chip::Esp32c3, "1.0.0", 1024);
    let firmware = firmware.to_str().unwrap();

    // Nothing listens there.
    let closed = spare_ports::one().unwrap();
    let (code, said) = hil(
        dir.path(),
        &[
            "flash",
            firmware,
            "--port",
            &format!("rfc2217://127.0.0.1:{closed}"),
        ],
    );
    assert_eq!(code, Some(3), "{said}");
    assert!(said.contains("cannot reach rfc2217://127.0.0.1:"), "{said}");
    assert!(said.contains("telnet(rfc2217)"), "{said}");

    // A raw TCP port, which never answers the RFC 2217 offer (the kernel completes
    // the connection; nobody ever speaks on it).
    let raw = TcpListener::bind("127.0.0.1:0").unwrap();
    let raw_port = raw.local_addr().unwrap().port();
    let (code, said) = hil(
        dir.path(),
        &[
            "flash",
            firmware,
            "--port",
            &format!("rfc2217://127.0.0.1:{raw_port}"),
        ],
    );
    assert_eq!(code, Some(3), "{said}");
    assert!(said.contains("raw TCP port"), "{said}");
    drop(raw);

    // An address without a port.
    let (code, said) = hil(
        dir.path(),
        &["flash", firmware, "--port", "rfc2217://bench"],
    );
    assert_eq!(code, Some(2), "{said}");
    assert!(said.contains("rfc2217://bench:PORT"), "{said}");

    // A profile that resets through a control socket needs one named for a remote port.
    let config = dir.path().join("hil.toml");
    std::fs::write(
        &config,
        format!("[boards.c3]\nport = \"rfc2217://127.0.0.1:{closed}\"\nprofile = \"sim-pty\"\n"),
    )
    .unwrap();
    let (code, said) = hil(
        dir.path(),
        &[
            "flash",
            firmware,
            "--board",
            "c3",
            "--config",
            config.to_str().unwrap(),
        ],
    );
    assert_eq!(code, Some(2), "{said}");
    assert!(said.contains("control = "), "{said}");
}
