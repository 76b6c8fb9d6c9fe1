//! Boards on a labgrid farm, against real labgrid on loopback: a coordinator, exporters
//! publishing virtual chips served by ser2net as `NetworkSerialPort`s, places made with
//! `labgrid-client`. hil flashes and runs the reference scenarios through a place, waits
//! for a held one and names its holder, shares matching places between runners, gives
//! every place back (checked with `labgrid-client`), and power-cycles a board through
//! its place's power switch.

#[path = "chip_support/mod.rs"]
mod chip_support;

use std::io::{BufRead, BufReader, Write};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;

use chip_support::{
    hil_exe, hil_in as hil, image, lines_of, send_signal, wait_with_deadline, VirtualChip, DEADLINE,
};
use hil::bench::farm::{self, Farm, Ser2net};
use hil::image::Chip;

/// The chip's first boot needs some broker; a run points it at its own.
const BOOT_BROKER: &str = "mqtt://127.0.0.1:9";

/// A farm on loopback, and the bench config naming its places.
struct Lab {
    farm: Farm,
    chips: Vec<VirtualChip>,
    _ser2net: Vec<Ser2net>,
    dir: tempfile::TempDir,
    boards: String,
}

impl Lab {
    fn new() -> Lab {
        let dir = tempfile::tempdir().unwrap();
        let farm = Farm::start(dir.path()).unwrap_or_else(|e| panic!("{e}"));
        Lab {
            farm,
            chips: Vec::new(),
            _ser2net: Vec::new(),
            dir,
            boards: String::new(),
        }
    }

    /// A chip on exporter `exporter` as place `place` with `tags`; `power` adds a
    /// network PDU port (labgrid's `simplerest` driver) at that URL.
    fn add(
        &mut self,
        chip: VirtualChip,
        exporter: &str,
        place: &str,
        tags: &[&str],
        power: Option<&str>,
    ) {
        let ser2net = Ser2net::serve(chip.dir.path(), &chip.port).unwrap();
        let mut resources = farm::serial_port(ser2net.port);
        if let Some(url) = power {
            resources.push_str(&format!(
                "  NetworkPowerPort:\n    model: simplerest\n    host: '{url}/{{value}}'\n    index: 0\n"
            ));
        }
        self.farm
            .export(exporter, &[("lamp", resources)])
            .unwrap_or_else(|e| panic!("{e}"));
        self.farm
            .create_place(place, &[&format!("{exporter}/lamp/*")], tags)
            .unwrap();
        // Where `control = ".../{place}.ctl"` finds the chip of the place a board got.
        std::os::unix::fs::symlink(
            hil::chip::control_socket_path(&chip.port),
            self.dir.path().join(format!("{place}.ctl")),
        )
        .unwrap();
        self.chips.push(chip);
        self._ser2net.push(ser2net);
    }

    /// `[boards.NAME]` with `labgrid = PLACE_OR_TAGS`, resetting through the control
    /// socket of whichever place it gets.
    fn board(&mut self, name: &str, labgrid: &str, chip: Chip) {
        self.boards.push_str(&format!(
            "[boards.{name}]\nlabgrid = {labgrid}\nprofile = \"{}\"\ncontrol = \"{{place}}.ctl\"\n",
            profile(chip),
        ));
        std::fs::write(self.config(), &self.boards).unwrap();
    }

    fn config(&self) -> PathBuf {
        self.dir.path().join("hil.toml")
    }

    /// `hil COMMAND ARGS… --config … --labgrid-coordinator …`.
    fn hil(&self, args: &[&str]) -> (Option<i32>, String) {
        let args = self.args(args);
        hil(
            self.dir.path(),
            &args.iter().map(String::as_str).collect::<Vec<_>>(),
        )
    }

    fn args<'a>(&'a self, args: &[&'a str]) -> Vec<String> {
        let mut all: Vec<String> = args.iter().map(|a| a.to_string()).collect();
        all.extend([
            "--config".to_string(),
            self.config().display().to_string(),
            "--labgrid-coordinator".to_string(),
            self.farm.address().to_string(),
        ]);
        all
    }

    /// `hil ARGS…` running, the lines it prints (stdout and stderr) as they come.
    fn spawn(&self, args: &[&str]) -> (Running, Said) {
        let mut child = Command::new(hil_exe())
            .current_dir(self.dir.path())
            .args(self.args(args))
            .env("NO_COLOR", "1")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let (tx, lines) = mpsc::channel();
        for pipe in [
            lines_of(child.stdout.take().unwrap()),
            lines_of(child.stderr.take().unwrap()),
        ] {
            let tx = tx.clone();
            std::thread::spawn(move || pipe.iter().try_for_each(|line| tx.send(line)));
        }
        (
            Running(Some(child)),
            Said {
                lines,
                seen: Vec::new(),
            },
        )
    }

    /// Who holds `place` and for which reservation, as labgrid-client shows it.
    fn holder(&self, place: &str) -> (String, String) {
        let shown = self.farm.call(&["-p", place, "show"]).unwrap();
        let field = |name: &str| {
            shown
                .lines()
                .find_map(|line| line.trim().strip_prefix(name))
                .unwrap_or("")
                .trim()
                .to_string()
        };
        (field("acquired:"), field("reservation:"))
    }

    /// Neither acquired nor allocated to a reservation.
    fn assert_free(&self, place: &str) {
        assert_eq!(
            self.holder(place),
            ("None".to_string(), String::new()),
            "{place} is still held"
        );
    }

    /// Every reservation hil made was cancelled.
    fn assert_no_reservations(&self) {
        let reservations = self.farm.call(&["reservations"]).unwrap();
        assert!(reservations.trim().is_empty(), "{reservations}");
    }
}

/// A `hil` the test started, killed if the test ends before it does.
struct Running(Option<Child>);

impl Running {
    fn signal(&self, name: &str) {
        send_signal(self.0.as_ref().expect("it runs"), name);
    }

    fn wait(mut self) -> std::process::ExitStatus {
        wait_with_deadline(self.0.take().expect("it runs"))
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        if let Some(mut child) = self.0.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

fn profile(chip: Chip) -> &'static str {
    match chip {
        Chip::Esp8266 => "sim-pty-esp8266",
        _ => "sim-pty",
    }
}

fn scenarios() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../scenarios")
}

/// What a running `hil` has printed, line by line as it comes.
struct Said {
    lines: mpsc::Receiver<String>,
    seen: Vec<String>,
}

impl Said {
    /// Waits for a line `wanted` accepts; on the deadline, fails with all it said.
    fn wait_for(&mut self, wanted: impl Fn(&str) -> bool) -> String {
        let deadline = std::time::Instant::now() + DEADLINE;
        loop {
            let left = deadline.saturating_duration_since(std::time::Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(line) => {
                    self.seen.push(line.clone());
                    if wanted(&line) {
                        return line;
                    }
                }
                Err(_) => panic!(
                    "no such line within {DEADLINE:?}; it said:\n{}",
                    self.seen.join("\n")
                ),
            }
        }
    }
}

/// The chip with a light-controller app in its flash, ready to boot.
fn chip_with_app(chip: Chip) -> VirtualChip {
    let dir = tempfile::tempdir().unwrap();
    let app = std::fs::read(image(dir.path(), chip, "2.2.2", 4096)).unwrap();
    VirtualChip::start_with_app_and(chip, &app, &["--broker", BOOT_BROKER])
}

#[test]
fn places_are_flashed_and_run_the_reference_scenarios() {
    let mut lab = Lab::new();
    for (index, chip) in [Chip::Esp32c3, Chip::Esp8266].into_iter().enumerate() {
        let place = format!("desk-{}", chip.name());
        let started = VirtualChip::start(chip, &["--broker", BOOT_BROKER]);
        lab.add(started, &format!("exp-{index}"), &place, &[], None);
        lab.board("lab1", &format!("\"{place}\""), chip);
        let firmware = image(lab.dir.path(), chip, "3.1.4", 8192);
        let firmware = firmware.to_str().unwrap();

        let (code, said) = lab.hil(&["flash", firmware, "--board", "lab1"]);
        assert_eq!(code, Some(0), "{chip:?}: {said}");
        assert!(said.contains("written"), "{said}");
        assert!(said.contains("booted version"), "{said}");
        assert!(
            said.contains(&format!(
                "labgrid place {place} (exporter exp-{index}) acquired"
            )),
            "{said}"
        );
        lab.assert_free(&place);
        let (code, said) = lab.hil(&["flash", firmware, "--board", "lab1"]);
        assert_eq!(code, Some(0), "{chip:?}: {said}");
        assert!(said.contains("unchanged"), "{said}");

        let (code, said) = lab.hil(&[
            "run",
            scenarios().to_str().unwrap(),
            "--board",
            "lamp=lab1",
            "--junit",
            "junit.xml",
            "--json",
            "report.json",
        ]);
        assert_eq!(code, Some(0), "{chip:?}: {said}");
        assert!(said.contains(" passed"), "{said}");
        lab.assert_free(&place);
        let junit = std::fs::read_to_string(lab.dir.path().join("junit.xml")).unwrap();
        assert!(
            junit.contains(&format!(
                r#"<property name="labgrid.lamp.place" value="{place}"/>"#
            )),
            "{junit}"
        );
        assert!(
            junit.contains(&format!(
                r#"<property name="labgrid.lamp.exporter" value="exp-{index}"/>"#
            )),
            "{junit}"
        );
        let json: serde_json::Value = serde_json::from_str(
            &std::fs::read_to_string(lab.dir.path().join("report.json")).unwrap(),
        )
        .unwrap();
        assert_eq!(
            json["summary"]["labgrid"],
            serde_json::json!([{
                "role": "lamp", "board": "lab1", "place": place, "exporter": format!("exp-{index}")
            }])
        );
        lab.boards.clear();
    }
    lab.assert_no_reservations();
}

/// A scenario that runs until it is stopped (its wait is far longer than the test).
const LONG_SCENARIO: &str = "name: waits long\ntimeout: 15m\nboards:\n  lamp: { profile: sim }\n\
    clients:\n  phone: {}\nsteps:\n  - expect_connected: { client: lamp, within: 5s }\n\
    \x20 - expect_no_message: { topic: nothing/here, for: 10m }\n";

#[test]
fn runners_share_matching_places_wait_for_held_ones_and_give_them_back() {
    let mut lab = Lab::new();
    let tags = ["board=esp32c3"];
    lab.add(chip_with_app(Chip::Esp32c3), "exp-a", "c3-a", &tags, None);
    lab.add(chip_with_app(Chip::Esp32c3), "exp-b", "c3-b", &tags, None);
    lab.board("any", "{ tags = { board = \"esp32c3\" } }", Chip::Esp32c3);
    lab.board("lab-a", "\"c3-a\"", Chip::Esp32c3);
    lab.board("lab-b", "\"c3-b\"", Chip::Esp32c3);

    // One runner holds c3-a (the monitor, until it is stopped).
    let (monitor, mut monitor_said) = lab.spawn(&["monitor", "--board", "lab-a"]);
    monitor_said.wait_for(|line| line.contains("Ctrl-C exits"));
    assert!(
        lab.holder("c3-a").0.ends_with(&whoami()),
        "{:?}",
        lab.holder("c3-a")
    );

    // A second asking for the same place waits, then names the holder.
    let (code, said) = lab.hil(&["flash", "--board", "lab-a", "--lock-timeout", "1s", "x.bin"]);
    assert_eq!(code, Some(3), "{said}");
    assert!(
        said.contains("waiting up to 1s for labgrid place c3-a"),
        "{said}"
    );
    assert!(
        said.contains("labgrid place c3-a is still held after 1s: held: c3-a (acquired by"),
        "{said}"
    );

    // A runner asking by tags gets the other matching place, while the first is held.
    let scenario = scenarios().join("phone_turns_on_and_sees_switch.yaml");
    let (code, said) = lab.hil(&[
        "run",
        scenario.to_str().unwrap(),
        "--board",
        "lamp=any",
        "--partition",
        "1/1",
        "--json",
        "shard.json",
    ]);
    assert_eq!(code, Some(0), "{said}");
    let json = std::fs::read_to_string(lab.dir.path().join("shard.json")).unwrap();
    assert!(json.contains(r#""place": "c3-b""#), "{json}");
    assert!(json.contains(r#""exporter": "exp-b""#), "{json}");
    lab.assert_free("c3-b");

    // SIGTERM ends the monitor; its place is given back.
    monitor.signal("TERM");
    assert_eq!(monitor.wait().code(), Some(130));
    lab.assert_free("c3-a");

    // Two runners asking by tags at once, with two matching places: each gets its own,
    // and both run together. SIGINT in the middle of the runs: each is interrupted and
    // its place given back.
    let long = lab.dir.path().join("long.yaml");
    std::fs::write(&long, LONG_SCENARIO).unwrap();
    let mut runs: Vec<(Running, Said)> = (0..2)
        .map(|_| lab.spawn(&["run", long.to_str().unwrap(), "--board", "lamp=any"]))
        .collect();
    let mut places = Vec::new();
    for (_, said) in &mut runs {
        let acquired = said.wait_for(|line| line.contains("acquired"));
        places.push(if acquired.contains("place c3-a ") {
            "c3-a"
        } else {
            "c3-b"
        });
        said.wait_for(|line| line.contains("running 1 scenario"));
    }
    places.sort();
    assert_eq!(places, ["c3-a", "c3-b"]);
    for place in places {
        assert!(lab.holder(place).0.ends_with(&whoami()), "{place}");
    }
    for (run, _) in &runs {
        run.signal("INT");
    }
    for (run, said) in runs {
        assert_eq!(run.wait().code(), Some(130), "{:?}", said.seen);
    }
    lab.assert_free("c3-a");
    lab.assert_free("c3-b");

    // A run that dies without a word (SIGKILL) leaves the keeper to give it back.
    let (run, mut run_said) = lab.spawn(&["run", long.to_str().unwrap(), "--board", "lamp=lab-b"]);
    run_said.wait_for(|line| line.contains("running 1 scenario"));
    run.signal("KILL");
    run.wait();
    let (code, said) = lab.hil(&[
        "run",
        scenario.to_str().unwrap(),
        "--board",
        "lamp=lab-b",
        "--lock-timeout",
        "30s",
    ]);
    assert_eq!(code, Some(0), "{said}");
    lab.assert_free("c3-b");
    lab.assert_no_reservations();
}

/// labgrid's owner name: `host/user`; the test only needs the user.
fn whoami() -> String {
    let output = Command::new("id").arg("-un").output().unwrap();
    format!("/{}", String::from_utf8_lossy(&output.stdout).trim())
}

/// A network PDU on loopback as labgrid's `simplerest` driver talks to it (`GET
/// /0`, `GET /1`): off holds the chip in reset, on boots it. Every request is reported.
fn pdu(chip_control: PathBuf) -> (String, mpsc::Receiver<String>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { return };
            let mut request = String::new();
            let _ = BufReader::new(&stream).read_line(&mut request);
            let path = request.split_whitespace().nth(1).unwrap_or("").to_string();
            let command = match path.as_str() {
                "/0" => Some(hil::chip::Control::Hold),
                "/1" => Some(hil::chip::Control::Reset),
                _ => None,
            };
            if let Some(command) = command {
                hil::chip::send_control(&chip_control, command, DEADLINE).unwrap();
            }
            let _ = stream
                .write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 1\r\nConnection: close\r\n\r\n1");
            if tx.send(path).is_err() {
                return;
            }
        }
    });
    (url, rx)
}

#[test]
fn a_place_with_a_power_switch_power_cycles_through_it() {
    let mut lab = Lab::new();
    let chip = chip_with_app(Chip::Esp32c3);
    let (url, requests) = pdu(hil::chip::control_socket_path(&chip.port));
    lab.add(chip, "exp-p", "powered", &[], Some(&url));
    lab.board("lab1", "\"powered\"", Chip::Esp32c3);
    let scenario = scenarios().join("will_offline_after_power_loss.yaml");
    let (code, said) = lab.hil(&["run", scenario.to_str().unwrap(), "--board", "lamp=lab1"]);
    assert_eq!(code, Some(0), "{said}");
    let seen: Vec<String> = requests.try_iter().collect();
    assert_eq!(seen, ["/0", "/1"], "the PDU's requests");
    lab.assert_free("powered");
    lab.assert_no_reservations();
}

#[test]
fn farm_mistakes_are_one_line_and_exit_3() {
    let mut lab = Lab::new();
    lab.add(
        VirtualChip::start(Chip::Esp32c3, &[]),
        "exp-1",
        "desk",
        &[],
        None,
    );
    lab.farm.create_place("bare", &[], &[]).unwrap();
    lab.board("unknown", "\"nowhere\"", Chip::Esp32c3);
    lab.board("bare", "\"bare\"", Chip::Esp32c3);
    lab.board("desk", "\"desk\"", Chip::Esp32c3);
    let one_line = |said: &str| {
        let errors: Vec<&str> = said.lines().filter(|l| l.starts_with("error:")).collect();
        assert_eq!(errors.len(), 1, "{said}");
        errors[0].to_string()
    };

    let (code, said) = lab.hil(&["monitor", "--board", "unknown"]);
    assert_eq!(code, Some(3), "{said}");
    let error = one_line(&said);
    assert!(
        error.contains("no labgrid place is named nowhere"),
        "{error}"
    );
    assert!(error.contains("it has: bare, desk"), "{error}");

    let (code, said) = lab.hil(&["monitor", "--board", "bare"]);
    assert_eq!(code, Some(3), "{said}");
    let error = one_line(&said);
    assert!(
        error.contains("labgrid place bare has no NetworkSerialPort"),
        "{error}"
    );
    lab.assert_free("bare");

    let closed = hil::spare_ports::one().unwrap();
    let (code, said) = hil(
        lab.dir.path(),
        &[
            "monitor",
            "--board",
            "desk",
            "--config",
            lab.config().to_str().unwrap(),
            "--labgrid-coordinator",
            &format!("127.0.0.1:{closed}"),
        ],
    );
    assert_eq!(code, Some(3), "{said}");
    let error = one_line(&said);
    assert!(
        error.contains(&format!(
            "cannot reach the labgrid coordinator at 127.0.0.1:{closed}"
        )),
        "{error}"
    );
    lab.assert_no_reservations();
}
