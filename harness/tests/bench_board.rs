//! The serial-board path end to end: a virtual chip on a pty described in a bench
//! config, flashed with `hil flash --board`, then the reference scenarios run on it with
//! `hil run --board lamp=bench1`.

#[path = "chip_support/mod.rs"]
mod chip_support;

use std::process::Command;

use chip_support::{hil_exe, image, VirtualChip};
use hil::image::Chip;
use hil::steps::Action;

/// Any broker will do for the chip's first boot: the run points it at its own.
const BOOT_BROKER: &str = "mqtt://127.0.0.1:9";

fn bench(chip: &VirtualChip, chip_kind: Chip) -> std::path::PathBuf {
    let config = chip.dir.path().join("hil.toml");
    std::fs::write(
        &config,
        format!(
            "[boards.bench1]\nport = \"{}\"\nprofile = \"{}\"\n",
            chip.port.display(),
            match chip_kind {
                Chip::Esp8266 => "sim-pty-esp8266",
                _ => "sim-pty",
            }
        ),
    )
    .unwrap();
    config
}

fn hil(dir: &std::path::Path, args: &[&str]) -> std::process::Output {
    Command::new(hil_exe())
        .current_dir(dir)
        .args(args)
        .env("NO_COLOR", "1")
        .output()
        .unwrap()
}

fn said(output: &std::process::Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

/// A virtual chip in a bench config, flashed through `hil flash --board`.
fn flashed_chip(chip_kind: Chip) -> (VirtualChip, std::path::PathBuf) {
    let chip = VirtualChip::start(chip_kind, &["--broker", BOOT_BROKER]);
    let config = bench(&chip, chip_kind);
    let firmware = image(chip.dir.path(), chip_kind, "2.0.1", 4096);
    let flashed = hil(
        chip.dir.path(),
        &[
            "flash",
            firmware.to_str().unwrap(),
            "--board",
            "bench1",
            "--config",
            config.to_str().unwrap(),
            "--before",
            "no-reset",
        ],
    );
    assert_eq!(flashed.status.code(), Some(0), "{}", said(&flashed));
    // ESP8266 images carry no version: that firmware reports its own.
    assert!(
        said(&flashed).contains("booted version"),
        "{}",
        said(&flashed)
    );
    (chip, config)
}

/// The reference scenarios that only the simulator can play on the role `lamp`: Wi-Fi
/// faults and contact bounce (a bench runs them skipped, saying so).
fn sim_only_for_lamp() -> Vec<String> {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../scenarios");
    let files = hil::scenario::discover(&[dir]).unwrap();
    files
        .into_iter()
        .filter(|path| {
            let scenario = hil::scenario::load(path, &hil::board::profile::known_names()).unwrap();
            hil::steps::all_steps(&scenario.steps)
                .iter()
                .any(|step| match &step.action {
                    Action::Wifi(wifi) => wifi.board == "lamp",
                    Action::PressSwitch(press) => {
                        press.board == "lamp" && press.bounce.is_some_and(|n| n > 0)
                    }
                    _ => false,
                })
        })
        .map(|path| {
            hil::scenario::load(&path, &hil::board::profile::known_names())
                .unwrap()
                .name
        })
        .collect()
}

#[test]
fn scenarios_run_unchanged_on_a_flashed_board_over_serial() {
    let scenarios = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../scenarios");
    let total = hil::scenario::discover(std::slice::from_ref(&scenarios))
        .unwrap()
        .len();
    let skipped = sim_only_for_lamp();
    assert!(
        total - skipped.len() >= 15,
        "too few for a proof: {total} scenarios, {skipped:?} sim-only"
    );
    for chip_kind in [Chip::Esp32c3, Chip::Esp8266] {
        let (chip, config) = flashed_chip(chip_kind);
        // The whole suite, unchanged: `lamp` is the bench board, any other role stays
        // simulated, and what only a simulator can do is skipped with its reason.
        let run = hil(
            chip.dir.path(),
            &[
                "run",
                scenarios.to_str().unwrap(),
                "--board",
                "lamp=bench1",
                "--config",
                config.to_str().unwrap(),
                "--out",
                "out",
            ],
        );
        let text = said(&run);
        assert_eq!(run.status.code(), Some(0), "{chip_kind:?}: {text}");
        assert!(
            text.contains(&format!("{} passed", total - skipped.len())),
            "{chip_kind:?}: {text}"
        );
        assert!(
            text.contains(&format!("{} skipped", skipped.len())),
            "{chip_kind:?}: {text}"
        );
        for name in &skipped {
            assert!(text.contains(name.as_str()), "{name} is reported: {text}");
        }
        let serial = std::fs::read_to_string(
            chip.dir
                .path()
                .join("out/a-switch-press-publishes-the-new-state/serial-lamp.log"),
        )
        .unwrap();
        assert!(serial.contains("HIL relay=on"), "{serial}");
        // The profile's patterns turn the board's lines into state and warning events.
        let trace = std::fs::read_to_string(
            chip.dir
                .path()
                .join("out/invalid-payloads-are-ignored/trace.jsonl"),
        )
        .unwrap();
        assert!(
            trace.contains(r#""kind":"board_state","board":"lamp","state":"ACTIVE""#),
            "{trace}"
        );
        assert!(
            trace.contains(r#""kind":"board_warning","board":"lamp","warning":"invalid_payload""#),
            "{trace}"
        );
    }
}

/// A board on Wi-Fi cannot reach 127.0.0.1 of the host running hil: it is told the
/// address the run's brokers listen on (--bind), or the one --advertise names.
#[test]
fn bench_boards_are_told_the_address_the_brokers_listen_on() {
    let (chip, config) = flashed_chip(Chip::Esp32c3);
    // Generous deadlines: what is tested is which address the board was told.
    let scenario = chip.dir.path().join("reach.yaml");
    std::fs::write(
        &scenario,
        "name: the board reaches the broker\nboards:\n  lamp: { profile: sim }\n\
         clients:\n  phone: {}\nsteps:\n  - expect_connected: { client: lamp, within: 5s }\n\
         \x20 - press_switch: { board: lamp }\n\
         \x20 - expect_message: { topic: living_room_lights, payload: \"on\", from: lamp, to: phone, within: 5s }\n",
    )
    .unwrap();
    let run = |extra: &[&str]| {
        let mut args = vec![
            "run",
            scenario.to_str().unwrap(),
            "--board",
            "lamp=bench1",
            "--config",
            config.to_str().unwrap(),
        ];
        args.extend_from_slice(extra);
        hil(chip.dir.path(), &args)
    };
    // Nothing listens on 127.0.0.1 at the brokers' ports: only the told address works.
    let bound = run(&["--bind", "127.0.0.2"]);
    assert_eq!(bound.status.code(), Some(0), "{}", said(&bound));
    let advertised = run(&["--bind", "127.0.0.2", "--advertise", "127.0.0.2"]);
    assert_eq!(advertised.status.code(), Some(0), "{}", said(&advertised));
    let elsewhere = run(&["--bind", "127.0.0.2", "--advertise", "127.0.0.3"]);
    assert_eq!(elsewhere.status.code(), Some(1), "{}", said(&elsewhere));
    assert!(
        said(&elsewhere).contains("expect_connected"),
        "{}",
        said(&elsewhere)
    );
}
