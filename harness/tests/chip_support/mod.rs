//! Helpers for the virtual-chip and flashing tests: `hil sim --pty` as a child process,
//! its console, esptool, and test images. Every wait has a deadline.
#![allow(dead_code)]

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use hil::chip::{send_control, Control};
use hil::flash::{boot_version, Console};
use hil::image::{generate, Chip, ImageSpec};

/// Generous: these deadlines only bound a failing test, they are not measurements.
pub const DEADLINE: Duration = Duration::from_secs(30);

pub fn hil_exe() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_hil"))
}

/// esptool from `HIL_ESPTOOL`, the venv `ci/test.sh` makes, or the PATH; a missing one
/// fails the test with the way to install it.
pub fn esptool() -> PathBuf {
    hil::flash::esptool::find().unwrap_or_else(|error| panic!("{error}"))
}

/// Runs a command to completion, killing it if it outlives the deadline.
pub fn run(command: &mut Command) -> Output {
    let child = command
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start {command:?}: {e}"));
    let pid = child.id();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(child.wait_with_output());
    });
    match rx.recv_timeout(DEADLINE) {
        Ok(output) => output.unwrap(),
        Err(_) => {
            let _ = Command::new("kill")
                .args(["-s", "KILL", &pid.to_string()])
                .status();
            panic!("{command:?} did not finish within {DEADLINE:?}");
        }
    }
}

/// `hil flash IMAGE --port PORT ARGS…`.
pub fn hil_flash(image: &Path, port: &Path, args: &[&str]) -> Output {
    run(Command::new(hil_exe())
        .arg("flash")
        .arg(image)
        .arg("--port")
        .arg(port)
        .args(args))
}

/// `hil ARGS…` in `dir`: its exit code, and what it said on stdout and stderr.
pub fn hil_in(dir: &Path, args: &[&str]) -> (Option<i32>, String) {
    let output = run(Command::new(hil_exe())
        .current_dir(dir)
        .args(args)
        .env("NO_COLOR", "1"));
    (
        output.status.code(),
        format!("{}{}", text(&output.stdout), text(&output.stderr)),
    )
}

pub fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// Writes a generated app image for `chip` into `dir` and returns its path.
pub fn image(dir: &Path, chip: Chip, version: &str, code_len: usize) -> PathBuf {
    let path = dir.join(format!("{}-{version}-{code_len}.bin", chip.name()));
    let bytes = generate(&ImageSpec {
        chip,
        project: "light-controller",
        version,
        code_len,
    });
    std::fs::write(&path, bytes).unwrap();
    path
}

/// The lines a child prints on stdout (piped), as they come.
pub fn stdout_lines(child: &mut Child) -> mpsc::Receiver<String> {
    lines_of(child.stdout.take().expect("stdout is piped"))
}

/// The lines a pipe carries, as they come, read on a thread of their own.
pub fn lines_of(pipe: impl std::io::Read + Send + 'static) -> mpsc::Receiver<String> {
    let (tx, lines) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(pipe).lines() {
            let Ok(line) = line else { return };
            if tx.send(line).is_err() {
                return;
            }
        }
    });
    lines
}

/// Sends `signal` (a name, `INT`, `TERM`) to a running child.
pub fn send_signal(child: &Child, signal: &str) {
    let status = Command::new("kill")
        .args(["-s", signal, &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success(), "kill -s {signal} {}", child.id());
}

/// Waits for a child to end by itself, failing the test past the deadline.
pub fn wait_with_deadline(mut child: Child) -> ExitStatus {
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(child.wait());
    });
    rx.recv_timeout(DEADLINE)
        .expect("the process ends within the deadline")
        .unwrap()
}

/// `hil broker --port 0` as a child process, killed on drop.
pub struct HilBroker {
    child: Child,
    /// `mqtt://127.0.0.1:PORT`, as it printed.
    pub url: String,
}

impl HilBroker {
    pub fn start() -> HilBroker {
        let mut child = Command::new(hil_exe())
            .args(["broker", "--port", "0"])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let url = stdout_lines(&mut child)
            .recv_timeout(DEADLINE)
            .expect("hil broker prints its URL");
        HilBroker { child, url }
    }

    /// A client of the test's own, subscribed to `topic`.
    pub fn subscribe(&self, topic: &str) -> Subscriber {
        let address = self.url.trim_start_matches("mqtt://");
        let (host, port) = address.rsplit_once(':').expect("HOST:PORT");
        let options =
            rumqttc::MqttOptions::new("chip-test-watcher", host, port.parse::<u16>().unwrap());
        let (client, connection) = rumqttc::Client::new(options, 16);
        client.subscribe(topic, rumqttc::QoS::AtLeastOnce).unwrap();
        Subscriber {
            _client: client,
            connection,
        }
    }
}

impl Drop for HilBroker {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// What reaches one subscription.
pub struct Subscriber {
    _client: rumqttc::Client,
    connection: rumqttc::Connection,
}

impl Subscriber {
    /// Waits for a message with `payload`; fails after the deadline.
    pub fn wait_for_payload(&mut self, payload: &str) {
        let deadline = Instant::now() + DEADLINE;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.connection.recv_timeout(left) {
                Ok(Ok(rumqttc::Event::Incoming(rumqttc::Packet::Publish(publish))))
                    if publish.payload == payload.as_bytes() =>
                {
                    return
                }
                Ok(Ok(_)) => {}
                Ok(Err(error)) => panic!("the test's MQTT client failed: {error}"),
                Err(_) => panic!("no message {payload:?} within {DEADLINE:?}"),
            }
        }
    }
}

/// A running `hil sim --pty`, linked at `port` inside its own temporary directory.
pub struct VirtualChip {
    child: Option<Child>,
    pub dir: tempfile::TempDir,
    /// The stable link to the pty: what tools are given as the port.
    pub port: PathBuf,
    /// `/dev/pts/N`, as printed first on stdout.
    pub pty: PathBuf,
    pub flash_file: PathBuf,
    stdout: mpsc::Receiver<String>,
    /// Its log (stderr, at level info), complete once the process has ended.
    log: Option<std::thread::JoinHandle<String>>,
}

impl VirtualChip {
    pub fn start(chip: Chip, extra: &[&str]) -> VirtualChip {
        let dir = tempfile::tempdir().unwrap();
        let port = dir.path().join(chip.name());
        let flash_file = dir.path().join("flash.bin");
        Self::start_with(chip, dir, port, flash_file, extra)
    }

    /// Starts a chip on a flash file prepared beforehand in `dir`.
    pub fn start_with(
        chip: Chip,
        dir: tempfile::TempDir,
        port: PathBuf,
        flash_file: PathBuf,
        extra: &[&str],
    ) -> VirtualChip {
        let mut child = Command::new(hil_exe())
            .args(["sim", "--pty", "--chip", chip.name(), "--link"])
            .arg(&port)
            .arg("--flash-file")
            .arg(&flash_file)
            .args(extra)
            .env("HIL_LOG", "info")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let stdout = stdout_lines(&mut child);
        let mut stderr = child.stderr.take().expect("stderr is piped");
        let log = std::thread::spawn(move || {
            let mut log = String::new();
            let _ = std::io::Read::read_to_string(&mut stderr, &mut log);
            log
        });
        let pty = stdout
            .recv_timeout(DEADLINE)
            .expect("hil sim --pty prints its pty path first");
        VirtualChip {
            child: Some(child),
            dir,
            port,
            pty: PathBuf::from(pty),
            flash_file,
            stdout,
            log: Some(log),
        }
    }

    pub fn control(&self, command: Control) {
        send_control(
            &hil::chip::control_socket_path(&self.port),
            command,
            DEADLINE,
        )
        .unwrap_or_else(|e| panic!("{command}: {e}"));
    }

    /// The port opened as a console, emptied of what was said before.
    pub fn console(&self) -> Console {
        let port = serialport::new(self.port.to_string_lossy(), 115_200)
            .timeout(Duration::from_millis(100))
            .open_native()
            .unwrap_or_else(|e| panic!("open {}: {e}", self.port.display()));
        serialport::SerialPort::clear(&port, serialport::ClearBuffer::Input).unwrap();
        Console::new(port)
    }

    /// Resets the chip through the control socket and returns the version it boots.
    pub fn reset_and_read_version(&self) -> String {
        let mut console = self.console();
        self.control(Control::Reset);
        wait_for_line(&mut console, |line| boot_version(line).map(str::to_string))
    }

    /// A chip whose flash holds `app` where its app lives, not yet reset.
    pub fn start_with_app(chip: Chip, app: &[u8]) -> VirtualChip {
        VirtualChip::start_with_app_and(chip, app, &[])
    }

    /// [`VirtualChip::start_with_app`], with more arguments for `hil sim --pty`.
    pub fn start_with_app_and(chip: Chip, app: &[u8], extra: &[&str]) -> VirtualChip {
        let dir = tempfile::tempdir().unwrap();
        let flash_file = dir.path().join("flash.bin");
        let mut flash = vec![0xFF; hil::chip::FLASH_SIZE];
        let at = chip.app_offset() as usize;
        flash[at..at + app.len()].copy_from_slice(app);
        std::fs::write(&flash_file, &flash).unwrap();
        let port = dir.path().join(chip.name());
        VirtualChip::start_with(chip, dir, port, flash_file, extra)
    }

    pub fn flash(&self) -> Vec<u8> {
        std::fs::read(&self.flash_file).unwrap()
    }

    /// Waits for the chip process to end.
    pub fn wait_for_exit(&mut self) -> ExitStatus {
        wait_with_deadline(self.child.take().expect("the chip process runs"))
    }

    pub fn signal(&self, name: &str) {
        send_signal(self.child.as_ref().expect("the chip process runs"), name);
    }

    /// Unplugs the chip and returns everything it logged.
    pub fn unplug_and_read_log(&mut self) -> String {
        self.control(Control::Unplug);
        assert!(self.wait_for_exit().success());
        let log = self.log.take().expect("the log is read once");
        log.join().expect("the log reader ends with the process")
    }

    /// Nothing more may appear on stdout than the pty path.
    pub fn more_stdout(&self) -> Option<String> {
        self.stdout.try_recv().ok()
    }
}

impl Drop for VirtualChip {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// Reads console lines until `find` accepts one; fails with the last lines after the
/// deadline.
pub fn wait_for_line<T>(console: &mut Console, find: impl FnMut(&str) -> Option<T>) -> T {
    console
        .wait_for(Instant::now() + DEADLINE, find)
        .unwrap_or_else(|e| panic!("no such line on the console: {e:?}"))
}
