//! `hil sim --pty`: the virtual chip as real tools see it, through a real pty. esptool
//! (the reference implementation of the host side) flashing it and reading its ids is
//! the proof that the chip speaks the ROM loader protocol.

mod chip_support;

use std::process::Command;

use chip_support::{esptool, image, run, text, wait_for_line, VirtualChip};
use hil::chip::Control;
use hil::flash::boot_version;
use hil::image::Chip;

fn esptool_on(chip: &VirtualChip, name: &str, args: &[&str]) -> String {
    let output = run(Command::new(esptool())
        .args(["--chip", name, "--port"])
        .arg(&chip.port)
        .args(["--before", "no-reset", "--after", "no-reset", "--no-stub"])
        .args(args));
    let all = text(&output.stdout) + &text(&output.stderr);
    assert!(output.status.success(), "esptool {args:?} failed:\n{all}");
    all
}

fn esptool_flashes_and_the_chip_boots_it(chip: Chip, address: &str, expected_version: &str) {
    let virtual_chip = VirtualChip::start(chip, &[]);
    let image = image(virtual_chip.dir.path(), chip, "1.4.2", 6000);
    let log = esptool_on(
        &virtual_chip,
        chip.name(),
        &["write-flash", address, image.to_str().unwrap()],
    );
    assert!(
        log.contains("Hash of data verified") || chip == Chip::Esp8266,
        "{log}"
    );
    assert_eq!(virtual_chip.reset_and_read_version(), expected_version);
}

#[test]
fn esptool_flashes_a_virtual_esp32c3_which_boots_the_images_version() {
    esptool_flashes_and_the_chip_boots_it(Chip::Esp32c3, "0x10000", "1.4.2");
}

#[test]
fn esptool_flashes_a_virtual_esp8266_which_boots_the_firmware() {
    // ESP8266 images carry no version: the firmware reports its own.
    esptool_flashes_and_the_chip_boots_it(Chip::Esp8266, "0x0", hil_firmware::VERSION);
}

#[test]
fn esptool_reads_chip_and_flash_ids() {
    for (chip, mac) in [
        (Chip::Esp32c3, "34:85:18:12:34:56"),
        (Chip::Esp8266, "18:fe:34:12:34:56"),
    ] {
        let virtual_chip = VirtualChip::start(chip, &[]);
        let ids = esptool_on(&virtual_chip, chip.name(), &["chip-id"]);
        assert!(ids.contains(mac), "{chip:?}:\n{ids}");
        let flash = esptool_on(&virtual_chip, chip.name(), &["flash-id"]);
        assert!(flash.contains("Manufacturer: ef"), "{chip:?}:\n{flash}");
        assert!(
            flash.contains("Detected flash size: 4MB"),
            "{chip:?}:\n{flash}"
        );
    }
}

#[test]
fn esptool_detects_the_chip_by_itself() {
    let virtual_chip = VirtualChip::start(Chip::Esp8266, &[]);
    let log = esptool_on(&virtual_chip, "auto", &["chip-id"]);
    assert!(log.contains("ESP8266EX"), "{log}");
    let virtual_chip = VirtualChip::start(Chip::Esp32c3, &[]);
    let log = esptool_on(&virtual_chip, "auto", &["chip-id"]);
    assert!(log.contains("ESP32-C3"), "{log}");
}

#[test]
fn the_pty_path_comes_first_and_a_signal_removes_link_and_socket() {
    for signal in ["TERM", "INT"] {
        stops_cleanly_on(signal);
    }
}

fn stops_cleanly_on(signal: &str) {
    let mut chip = VirtualChip::start(Chip::Esp32c3, &[]);
    assert!(chip.pty.starts_with("/dev/pts"), "{}", chip.pty.display());
    assert_eq!(std::fs::read_link(&chip.port).unwrap(), chip.pty);
    let mode = std::os::unix::fs::PermissionsExt::mode(
        &std::fs::metadata(&chip.pty).unwrap().permissions(),
    );
    assert_eq!(mode & 0o777, 0o600, "the port is the owner's alone");
    let socket = hil::chip::control_socket_path(&chip.port);
    assert!(socket.exists());
    chip.signal(signal);
    assert_eq!(
        chip.wait_for_exit().code(),
        Some(130),
        "SIG{signal}: interrupted"
    );
    assert_eq!(chip.more_stdout(), None, "only the pty path on stdout");
    assert!(!chip.port.exists() && !socket.exists());
}

#[test]
fn typed_lines_reach_the_firmware() {
    let chip = VirtualChip::start(Chip::Esp8266, &[]);
    let image = image(chip.dir.path(), Chip::Esp8266, "1.0.0", 100);
    let flashed = chip_support::hil_flash(&image, &chip.port, &[]);
    assert!(flashed.status.success(), "{}", text(&flashed.stderr));
    let mut console = chip.console();
    console.send_line("status").unwrap();
    // No broker: the firmware waits for Wi-Fi.
    let status = wait_for_line(&mut console, |line| {
        line.starts_with("HIL status").then(|| line.to_string())
    });
    assert!(status.contains("state=CONNECTING_WIFI"), "{status}");
}

/// The broken images in fixtures/images: chip, defect, and how the ROM's complaint
/// about it begins.
const BROKEN_FIXTURES: [(Chip, &str, &str); 8] = [
    (Chip::Esp32c3, "bad-magic", "invalid header: 0xe8"),
    (
        Chip::Esp32c3,
        "wrong-chip",
        "image is for chip id 0, this chip is 5",
    ),
    (Chip::Esp32c3, "bad-checksum", "checksum mismatch"),
    (Chip::Esp32c3, "truncated", "image truncated at byte"),
    (
        Chip::Esp32c3,
        "bad-hash",
        "SHA-256 of the image does not match",
    ),
    (Chip::Esp8266, "bad-magic", "invalid header: 0xe8"),
    (Chip::Esp8266, "bad-checksum", "checksum mismatch"),
    (Chip::Esp8266, "truncated", "image truncated at byte"),
];

/// A broken fixture's file name, after the valid image it was made from.
fn broken_fixture(chip: Chip, defect: &str) -> std::path::PathBuf {
    let name = match chip {
        Chip::Esp8266 => format!("light-controller-esp8266-{defect}.bin"),
        _ => format!("light-controller-{}-1.4.2-{defect}.bin", chip.name()),
    };
    std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../fixtures/images")
        .join(name)
}

#[test]
fn broken_fixture_images_regenerate_byte_for_byte() {
    let dir = tempfile::tempdir().unwrap();
    for (chip, defect, _) in BROKEN_FIXTURES {
        let fixture = broken_fixture(chip, defect);
        let regenerated = dir.path().join("image.bin");
        let args = [
            "image",
            "generate",
            "--chip",
            chip.name(),
            "--app-version",
            "1.4.2",
            "--code-size",
            "4096",
            "--defect",
            defect,
            "-o",
        ];
        let output = run(Command::new(chip_support::hil_exe())
            .args(args)
            .arg(&regenerated));
        assert!(output.status.success(), "{}", text(&output.stderr));
        assert!(
            std::fs::read(&fixture).unwrap() == std::fs::read(&regenerated).unwrap(),
            "{} differs from its generator; rewrite it with: hil {} {}",
            fixture.display(),
            args.join(" "),
            fixture.display()
        );
    }
}

#[test]
fn each_broken_image_gets_the_roms_complaint_and_the_app_does_not_start() {
    for (chip_kind, defect, complaint) in BROKEN_FIXTURES {
        let app = std::fs::read(broken_fixture(chip_kind, defect)).unwrap();
        let mut chip = VirtualChip::start_with_app(chip_kind, &app);
        let mut console = chip.console();
        chip.control(Control::Reset);
        let first = wait_for_line(&mut console, |line| {
            (line.starts_with(complaint) || boot_version(line).is_some()).then(|| line.to_string())
        });
        assert!(
            first.starts_with(complaint),
            "{chip_kind:?} {defect}: {first}"
        );
        let log = chip.unplug_and_read_log();
        assert!(
            !log.contains("virtual chip: app version"),
            "{chip_kind:?} {defect}: an app started:\n{log}"
        );
    }
}

#[test]
fn after_the_roms_complaint_the_loader_takes_a_good_image() {
    let wrong_chip = std::fs::read(broken_fixture(Chip::Esp32c3, "wrong-chip")).unwrap();
    let chip = VirtualChip::start_with_app(Chip::Esp32c3, &wrong_chip);
    let good = image(chip.dir.path(), Chip::Esp32c3, "3.0.0", 100);
    let flashed = chip_support::hil_flash(&good, &chip.port, &[]);
    assert!(flashed.status.success(), "{}", text(&flashed.stderr));
    assert_eq!(text(&flashed.stdout).trim(), "booted version 3.0.0");
}

#[test]
fn an_erased_chip_complains_about_the_header_and_waits_for_download() {
    let chip = VirtualChip::start(Chip::Esp32c3, &[]);
    let mut console = chip.console();
    chip.control(Control::Reset);
    let line = wait_for_line(&mut console, |line| {
        line.starts_with("invalid header").then(|| line.to_string())
    });
    assert!(line.starts_with("invalid header: 0xff"), "{line}");
    chip.control(Control::Bootloader);
    wait_for_line(&mut console, |line| {
        (line == "waiting for download").then_some(())
    });
}

#[test]
fn the_control_socket_refuses_unknown_commands_and_unplug_ends_the_chip() {
    let mut chip = VirtualChip::start(Chip::Esp8266, &[]);
    let socket = hil::chip::control_socket_path(&chip.port);
    let mut stream = std::os::unix::net::UnixStream::connect(&socket).unwrap();
    stream
        .set_read_timeout(Some(chip_support::DEADLINE))
        .unwrap();
    std::io::Write::write_all(&mut stream, b"reboot\n").unwrap();
    let mut reply = String::new();
    std::io::BufRead::read_line(&mut std::io::BufReader::new(&stream), &mut reply).unwrap();
    assert!(
        reply.starts_with("error: unknown command \"reboot\""),
        "{reply}"
    );

    chip.control(Control::Unplug);
    assert!(chip.wait_for_exit().success());
    assert!(!chip.port.exists() && !socket.exists());
}

#[test]
fn a_sync_while_the_app_runs_enters_the_loader() {
    let chip = VirtualChip::start(Chip::Esp32c3, &[]);
    let first = image(chip.dir.path(), Chip::Esp32c3, "1.0.0", 100);
    let second = image(chip.dir.path(), Chip::Esp32c3, "2.0.0", 100);
    for (image, version) in [(&first, "1.0.0"), (&second, "2.0.0")] {
        // The app is running from the previous round: no reset line on a pty.
        let output = chip_support::hil_flash(image, &chip.port, &["--before", "no-reset"]);
        assert!(output.status.success(), "{}", text(&output.stderr));
        assert_eq!(
            text(&output.stdout).trim(),
            format!("booted version {version}")
        );
    }
    let mut console = chip.console();
    chip.control(Control::Reset);
    let version = wait_for_line(&mut console, |line| boot_version(line).map(str::to_string));
    assert_eq!(version, "2.0.0");
}

/// The topic the firmware reports after booting, asked with `status`.
fn topic_after_boot(console: &mut hil::flash::Console) -> String {
    wait_for_line(console, |line| boot_version(line).map(|_| ()));
    console.send_line("status").unwrap();
    wait_for_line(console, |line| {
        let status = line.strip_prefix("HIL status ")?;
        let topic = status
            .split(' ')
            .find_map(|word| word.strip_prefix("topic="));
        topic.map(str::to_string)
    })
}

#[test]
fn stored_settings_survive_reset_reflashing_and_power_loss() {
    for chip_kind in [Chip::Esp32c3, Chip::Esp8266] {
        let mut chip = VirtualChip::start(chip_kind, &[]);
        let first = image(chip.dir.path(), chip_kind, "1.0.0", 100);
        let flashed = chip_support::hil_flash(&first, &chip.port, &[]);
        assert!(flashed.status.success(), "{}", text(&flashed.stderr));
        let mut console = chip.console();
        console.send_line("config topic=kitchen").unwrap();
        wait_for_line(&mut console, |line| {
            line.starts_with("HIL config saved").then_some(())
        });

        chip.control(Control::Reset);
        assert_eq!(topic_after_boot(&mut console), "kitchen", "{chip_kind:?}");

        drop(console);
        let second = image(chip.dir.path(), chip_kind, "2.0.0", 200);
        let flashed = chip_support::hil_flash(&second, &chip.port, &["--after", "no-reset"]);
        assert!(flashed.status.success(), "{}", text(&flashed.stderr));
        let mut console = chip.console();
        chip.control(Control::Reset);
        assert_eq!(topic_after_boot(&mut console), "kitchen", "{chip_kind:?}");

        drop(console);
        chip.control(Control::Unplug);
        assert!(chip.wait_for_exit().success());
        let dir = std::mem::replace(&mut chip.dir, tempfile::tempdir().unwrap());
        let again = VirtualChip::start_with(
            chip_kind,
            dir,
            chip.port.clone(),
            chip.flash_file.clone(),
            &[],
        );
        let mut console = again.console();
        again.control(Control::Reset);
        assert_eq!(topic_after_boot(&mut console), "kitchen", "{chip_kind:?}");
    }
}

#[test]
fn with_a_broker_the_flashed_firmware_comes_online() {
    let broker = chip_support::HilBroker::start();
    let chip = VirtualChip::start(Chip::Esp32c3, &["--broker", &broker.url]);
    let image = image(chip.dir.path(), Chip::Esp32c3, "1.4.2", 100);
    let flashed = chip_support::hil_flash(&image, &chip.port, &["--after", "no-reset"]);
    assert!(flashed.status.success(), "{}", text(&flashed.stderr));
    let mut console = chip.console();
    chip.control(Control::Reset);
    wait_for_line(&mut console, |line| {
        (line == "HIL state=ACTIVE").then_some(())
    });
}

#[test]
fn hold_stops_the_chip_as_power_loss_does_until_the_next_reset() {
    let broker = chip_support::HilBroker::start();
    let mut status = broker.subscribe("living_room_lights/status");
    let chip = VirtualChip::start(Chip::Esp8266, &["--broker", &broker.url]);
    let image = image(chip.dir.path(), Chip::Esp8266, "1.0.0", 100);
    let flashed = chip_support::hil_flash(&image, &chip.port, &[]);
    assert!(flashed.status.success(), "{}", text(&flashed.stderr));
    status.wait_for_payload("online");

    let mut console = chip.console();
    chip.control(Control::Hold);
    // Gone without DISCONNECT: the broker publishes the firmware's will.
    status.wait_for_payload("offline");
    chip.control(Control::Reset);
    wait_for_line(&mut console, |line| boot_version(line).map(|_| ()));
    status.wait_for_payload("online");
}

#[test]
fn the_help_explains_the_control_channel() {
    let output = run(Command::new(chip_support::hil_exe()).args(["sim", "--help"]));
    let help = text(&output.stdout);
    for word in [
        "--pty",
        "reset",
        "bootloader",
        "hold",
        "unplug",
        "SYNC",
        "Examples:",
    ] {
        assert!(help.contains(word), "sim --help lacks {word:?}:\n{help}");
    }
}

/// `hil sim --pty --sketch`: the chip boots the Arduino sketch (on the host Arduino core)
/// instead of the core: it comes online, takes a console command, and what it stored in
/// its EEPROM is in the chip's flash after a reset.
#[test]
fn the_virtual_chip_boots_the_sketch_which_keeps_its_settings_in_flash() {
    let broker = chip_support::HilBroker::start();
    let mut status = broker.subscribe("living_room_lights/status");
    let chip = VirtualChip::start(Chip::Esp8266, &["--sketch", "--broker", &broker.url]);
    let image = image(chip.dir.path(), Chip::Esp8266, "9.9.9", 100);
    let flashed = chip_support::hil_flash(&image, &chip.port, &["--after", "no-reset"]);
    assert!(flashed.status.success(), "{}", text(&flashed.stderr));
    let mut console = chip.console();
    chip.control(Control::Reset);
    // The sketch runs the version it was built with, not the image's.
    let version = wait_for_line(&mut console, |line| boot_version(line).map(str::to_string));
    assert_eq!(version, hil_firmware::VERSION);
    status.wait_for_payload("online");

    console.send_line("config topic=kitchen").unwrap();
    wait_for_line(&mut console, |line| {
        line.starts_with("HIL config saved").then_some(())
    });
    chip.control(Control::Reset);
    assert_eq!(topic_after_boot(&mut console), "kitchen");
}
