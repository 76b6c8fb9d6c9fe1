//! A board farm on loopback, for the benchmark and the tests: ser2net serving a virtual
//! chip's pty with RFC 2217 (as a bench host serves a board), labgrid's coordinator,
//! exporters publishing those ports as `NetworkSerialPort`s, and places made with
//! `labgrid-client`. Every process is ended when its handle is dropped; every wait has a
//! deadline.

use std::io;
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::labgrid::Client;
use crate::spare_ports;

/// Bounds a start that never finishes; a quiet machine needs well under a second.
const START_DEADLINE: Duration = Duration::from_secs(20);

/// A child process, killed when dropped.
pub struct Process {
    child: Child,
    name: String,
}

impl Process {
    pub fn spawn(name: &str, command: &mut Command) -> io::Result<Process> {
        let child = command.spawn().map_err(|e| {
            io::Error::new(
                e.kind(),
                format!("cannot start {name}: {e}; install it with ci/test.sh"),
            )
        })?;
        Ok(Process {
            child,
            name: name.to_string(),
        })
    }

    /// Waits until something accepts connections on `port`, failing if the process
    /// ends first or the deadline passes.
    fn wait_listening(&mut self, port: u16) -> io::Result<()> {
        let deadline = Instant::now() + START_DEADLINE;
        while TcpStream::connect(("127.0.0.1", port)).is_err() {
            if let Some(status) = self.child.try_wait()? {
                return Err(io::Error::other(format!("{} ended: {status}", self.name)));
            }
            if Instant::now() > deadline {
                return Err(io::Error::other(format!(
                    "{} did not listen on port {port} within {START_DEADLINE:?}",
                    self.name
                )));
            }
            // Neither program says when it is ready: its listening socket is the event.
            std::thread::sleep(Duration::from_millis(20));
        }
        Ok(())
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// ser2net serving a serial device with RFC 2217 on a loopback port.
pub struct Ser2net {
    _process: Process,
    pub port: u16,
}

impl Ser2net {
    /// Serves `device` (config and pid file in `dir`), once it accepts connections.
    pub fn serve(dir: &Path, device: &Path) -> io::Result<Ser2net> {
        let port = spare_ports::one()?;
        let config = dir.join(format!("ser2net-{port}.yaml"));
        std::fs::write(
            &config,
            format!(
                "connection: &chip\n  accepter: telnet(rfc2217),tcp,127.0.0.1,{port}\n  \
                 connector: serialdev,{},115200n81,local\n",
                device.display()
            ),
        )?;
        let mut process = Process::spawn(
            "ser2net (apt-get install ser2net)",
            Command::new("ser2net")
                .args(["-n", "-u", "-c"])
                .arg(&config)
                .arg("-P")
                .arg(dir.join(format!("ser2net-{port}.pid")))
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null()),
        )?;
        process.wait_listening(port)?;
        Ok(Ser2net {
            _process: process,
            port,
        })
    }
}

/// labgrid's coordinator on a loopback port, with its exporters.
pub struct Farm {
    client: Client,
    bin: PathBuf,
    dir: PathBuf,
    exporters: Vec<Process>,
    _coordinator: Process,
}

impl Farm {
    /// Starts a coordinator keeping its state in `dir`, found beside `labgrid-client`.
    pub fn start(dir: &Path) -> io::Result<Farm> {
        let port = spare_ports::one()?;
        let address = format!("127.0.0.1:{port}");
        let client = Client::find(&address).map_err(io::Error::other)?;
        let bin = client
            .program()
            .parent()
            .map(Path::to_path_buf)
            .unwrap_or_default();
        let mut coordinator = Process::spawn(
            "labgrid-coordinator",
            Command::new(bin.join("labgrid-coordinator"))
                .args(["-l", &address])
                .current_dir(dir)
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null()),
        )?;
        coordinator.wait_listening(port)?;
        Ok(Farm {
            client,
            bin,
            dir: dir.to_path_buf(),
            exporters: Vec::new(),
            _coordinator: coordinator,
        })
    }

    /// The coordinator's `HOST:PORT`.
    pub fn address(&self) -> &str {
        self.client.coordinator()
    }

    pub fn client(&self) -> &Client {
        &self.client
    }

    /// Runs `labgrid-client ARGS…` against the farm.
    pub fn call(&self, args: &[&str]) -> io::Result<String> {
        self.client.call(args).map_err(io::Error::other)
    }

    /// Starts exporter `name` publishing `groups` (group name → resources, as exporter
    /// YAML), and waits until the coordinator lists each group.
    pub fn export(&mut self, name: &str, groups: &[(&str, String)]) -> io::Result<()> {
        let config = self.dir.join(format!("exporter-{name}.yaml"));
        let yaml: String = groups
            .iter()
            .map(|(group, resources)| format!("{group}:\n{resources}"))
            .collect();
        std::fs::write(&config, yaml)?;
        let exporter = Process::spawn(
            "labgrid-exporter",
            Command::new(self.bin.join("labgrid-exporter"))
                .args(["-c", self.address(), "-n", name])
                .arg(&config)
                .current_dir(&self.dir)
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null()),
        )?;
        self.exporters.push(exporter);
        let deadline = Instant::now() + START_DEADLINE;
        loop {
            let listed = self.call(&["resources"])?;
            if groups
                .iter()
                .all(|(group, _)| listed.contains(&format!("{name}/{group}/")))
            {
                return Ok(());
            }
            if Instant::now() > deadline {
                return Err(io::Error::other(format!(
                    "exporter {name} did not publish its resources within {START_DEADLINE:?}: {listed}"
                )));
            }
        }
    }

    /// Creates place `name` with `matches` (resource patterns) and `tags`.
    pub fn create_place(&self, name: &str, matches: &[&str], tags: &[&str]) -> io::Result<()> {
        self.call(&["-p", name, "create"])?;
        for pattern in matches {
            self.call(&["-p", name, "add-match", pattern])?;
        }
        if !tags.is_empty() {
            let mut args = vec!["-p", name, "set-tags"];
            args.extend_from_slice(tags);
            self.call(&args)?;
        }
        Ok(())
    }
}

/// A `NetworkSerialPort` resource (exporter YAML) for ser2net's `port` on loopback.
pub fn serial_port(port: u16) -> String {
    format!(
        "  NetworkSerialPort:\n    host: 127.0.0.1\n    port: {port}\n    speed: 115200\n    protocol: rfc2217\n"
    )
}
