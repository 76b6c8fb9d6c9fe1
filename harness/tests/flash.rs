//! `hil flash` as a user runs it, against virtual chips on real ptys: writing, skipping
//! what is unchanged, verifying, booting; and every refusal, with its exit code.

mod chip_support;

use std::path::Path;
use std::process::{Command, Output, Stdio};

use chip_support::{
    hil_exe, hil_flash, image, lines_of, send_signal, text, wait_with_deadline, VirtualChip,
    DEADLINE,
};
use hil::image::{generate, Chip, ImageSpec};

fn assert_exit(output: &Output, code: i32, stderr_has: &str) {
    let stderr = text(&output.stderr);
    assert_eq!(
        output.status.code(),
        Some(code),
        "expected exit {code}; stderr:\n{stderr}"
    );
    assert!(
        stderr.contains(stderr_has),
        "stderr lacks {stderr_has:?}:\n{stderr}"
    );
}

fn erased(chip: &VirtualChip) -> bool {
    chip.flash().iter().all(|&b| b == 0xFF)
}

fn flashes_skips_and_boots(chip: Chip, version: &str, booted: &str) {
    let virtual_chip = VirtualChip::start(chip, &[]);
    let image = image(virtual_chip.dir.path(), chip, version, 5000);
    let first = hil_flash(&image, &virtual_chip.port, &[]);
    assert_exit(&first, 0, "verified (MD5)");
    assert_eq!(text(&first.stdout), format!("booted version {booted}\n"));
    let bytes = std::fs::read(&image).unwrap();
    let at = chip.app_offset() as usize;
    assert_eq!(&virtual_chip.flash()[at..at + bytes.len()], &bytes[..]);

    let again = hil_flash(&image, &virtual_chip.port, &[]);
    assert_exit(&again, 0, "unchanged (flash MD5 matches), skipped");
    assert_eq!(text(&again.stdout), format!("booted version {booted}\n"));

    let forced = hil_flash(&image, &virtual_chip.port, &["--no-skip"]);
    assert_exit(&forced, 0, "written");
    assert!(!text(&forced.stderr).contains("skipped"));
}

#[test]
fn a_virtual_esp32c3_is_flashed_skipped_when_unchanged_and_boots_the_version() {
    flashes_skips_and_boots(Chip::Esp32c3, "1.4.2", "1.4.2");
}

#[test]
fn a_virtual_esp8266_is_flashed_skipped_when_unchanged_and_boots() {
    flashes_skips_and_boots(Chip::Esp8266, "1.4.2", hil_firmware::VERSION);
}

#[test]
fn a_new_version_replaces_the_old_one() {
    let chip = VirtualChip::start(Chip::Esp32c3, &[]);
    for version in ["1.0.0", "1.1.0"] {
        let image = image(chip.dir.path(), Chip::Esp32c3, version, 3000);
        let output = hil_flash(&image, &chip.port, &[]);
        assert_exit(&output, 0, "written");
        assert_eq!(text(&output.stdout), format!("booted version {version}\n"));
    }
}

#[test]
fn without_reset_after_the_chip_is_left_alone() {
    let chip = VirtualChip::start(Chip::Esp8266, &[]);
    let image = image(chip.dir.path(), Chip::Esp8266, "1.0.0", 100);
    let output = hil_flash(&image, &chip.port, &["--after", "no-reset", "--no-verify"]);
    assert_exit(&output, 0, "left as it is (--after no-reset)");
    assert!(!text(&output.stderr).contains("verified"));
    assert_eq!(text(&output.stdout), "");
}

#[test]
fn an_image_for_another_chip_is_refused_before_anything_is_written() {
    let chip = VirtualChip::start(Chip::Esp8266, &[]);
    let c3_image = image(chip.dir.path(), Chip::Esp32c3, "1.0.0", 100);
    let detected = hil_flash(&c3_image, &chip.port, &[]);
    assert_exit(
        &detected,
        2,
        "is an image for esp32c3, but the board is an esp8266: refusing to write it",
    );
    let declared = hil_flash(&c3_image, &chip.port, &["--chip", "esp8266"]);
    assert_exit(&declared, 2, "but the board is an esp8266");
    assert!(erased(&chip));
}

#[test]
fn a_chip_option_that_contradicts_the_board_is_refused() {
    let chip = VirtualChip::start(Chip::Esp8266, &[]);
    let c3_image = image(chip.dir.path(), Chip::Esp32c3, "1.0.0", 100);
    let output = hil_flash(&c3_image, &chip.port, &["--chip", "esp32c3"]);
    assert_exit(
        &output,
        2,
        "expected an esp32c3 (--chip, or the board's profile), but the board on",
    );
    assert!(erased(&chip));
}

#[test]
fn an_image_larger_than_the_flash_is_refused() {
    let chip = VirtualChip::start(Chip::Esp32c3, &[]);
    let big = image(chip.dir.path(), Chip::Esp32c3, "1.0.0", 4 * 1024 * 1024);
    let output = hil_flash(&big, &chip.port, &[]);
    assert_exit(&output, 2, "past the end of the board's 4096 KiB flash");
    assert!(erased(&chip));
}

#[test]
fn writing_over_the_bootloader_or_partition_table_is_refused() {
    let chip = VirtualChip::start(Chip::Esp32c3, &[]);
    let app = image(chip.dir.path(), Chip::Esp32c3, "1.0.0", 100);
    for address in ["0x1000", "0x8000", "0x9000"] {
        let output = hil_flash(&app, &chip.port, &["--address", address]);
        assert_exit(&output, 2, "would overwrite the esp32c3 area");
    }
    assert!(erased(&chip));
}

#[test]
fn raw_data_needs_an_address() {
    let dir = tempfile::tempdir().unwrap();
    let raw = dir.path().join("data.bin");
    std::fs::write(&raw, b"settings").unwrap();
    let output = hil_flash(&raw, Path::new("/dev/null"), &["--chip", "esp8266"]);
    assert_exit(&output, 2, "give --address");
}

#[test]
fn a_corrupt_elf_is_refused_with_the_offending_byte() {
    let dir = tempfile::tempdir().unwrap();
    let elf = dir.path().join("firmware.elf");
    let mut bytes = vec![0u8; 52];
    bytes[..4].copy_from_slice(b"\x7fELF");
    bytes[4] = 1;
    bytes[5] = 1;
    // A section header table far past the end of the file.
    bytes[0x20..0x24].copy_from_slice(&0x10_0000u32.to_le_bytes());
    bytes[0x2E] = 40;
    bytes[0x30] = 3;
    std::fs::write(&elf, &bytes).unwrap();
    let output = hil_flash(&elf, Path::new("/dev/null"), &["--chip", "esp32c3"]);
    assert_exit(
        &output,
        2,
        "firmware.elf: byte 0x20: the section header table (0x100000, 3 × 40 bytes)",
    );
}

#[test]
fn a_missing_port_is_an_infrastructure_error_listing_the_ports() {
    let dir = tempfile::tempdir().unwrap();
    let app = image(dir.path(), Chip::Esp32c3, "1.0.0", 100);
    let output = hil_flash(&app, &dir.path().join("ttyUSB9"), &[]);
    assert_exit(&output, 3, "no serial port at");
    let stderr = text(&output.stderr);
    assert!(
        stderr.contains("Available ports") || stderr.contains("No serial ports found"),
        "{stderr}"
    );
}

#[test]
fn a_busy_port_is_an_infrastructure_error() {
    let chip = VirtualChip::start(Chip::Esp32c3, &[]);
    let app = image(chip.dir.path(), Chip::Esp32c3, "1.0.0", 100);
    // What esptool's pyserial and hil both take: an exclusive flock on the device.
    let holder = std::fs::File::open(&chip.port).unwrap();
    holder.lock().unwrap();
    let output = hil_flash(&app, &chip.port, &[]);
    assert_exit(&output, 3, "is busy: another program has it open");
    drop(holder);
    assert!(erased(&chip));
}

#[test]
fn a_port_another_hil_holds_is_waited_for_then_its_holder_named() {
    let chip = VirtualChip::start(Chip::Esp32c3, &[]);
    let app = image(chip.dir.path(), Chip::Esp32c3, "1.0.0", 100);
    let mut monitor = Command::new(hil_exe())
        .args(["monitor", "--port"])
        .arg(&chip.port)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let said = lines_of(monitor.stderr.take().unwrap());
    let opened = said
        .recv_timeout(DEADLINE)
        .expect("the monitor says it opened the port");
    assert!(opened.contains("open; Ctrl-C exits"), "{opened}");

    let output = hil_flash(&app, &chip.port, &["--lock-timeout", "300ms"]);
    assert_exit(&output, 3, "is in use by pid ");
    let stderr = text(&output.stderr);
    assert!(
        stderr.contains(&format!("pid {}", monitor.id())),
        "{stderr}"
    );
    assert!(stderr.contains("hil monitor"), "{stderr}");
    assert!(stderr.contains("waited 300ms"), "{stderr}");
    assert!(
        erased(&chip),
        "nothing was written while the monitor held the port"
    );

    send_signal(&monitor, "INT");
    let status = wait_with_deadline(monitor);
    assert_eq!(status.code(), Some(130));
    let output = hil_flash(&app, &chip.port, &["--lock-timeout", "5s"]);
    assert_exit(&output, 0, "");
}

#[test]
fn a_board_that_never_answers_sync_gets_the_hints() {
    // A pty nobody answers on: a board that is not in its loader.
    let (_silent_board, host) = serialport::TTYPort::pair().unwrap();
    let port = serialport::SerialPort::name(&host).unwrap();
    drop(host);
    let dir = tempfile::tempdir().unwrap();
    let app = image(dir.path(), Chip::Esp32c3, "1.0.0", 100);
    let started = std::time::Instant::now();
    let output = hil_flash(&app, Path::new(&port), &["--before", "no-reset"]);
    assert_exit(&output, 3, "no answer to SYNC");
    let stderr = text(&output.stderr);
    for hint in ["BOOT (GPIO0)", "--before reset", "--baud"] {
        assert!(stderr.contains(hint), "no hint {hint:?}:\n{stderr}");
    }
    assert!(started.elapsed() < DEADLINE, "retries are bounded");
}

#[test]
fn a_cable_pulled_mid_flash_reports_where_the_flash_stops() {
    let mut chip = VirtualChip::start(Chip::Esp32c3, &["--unplug-after-blocks", "3"]);
    let app = image(chip.dir.path(), Chip::Esp32c3, "1.0.0", 20_000);
    let output = hil_flash(&app, &chip.port, &[]);
    assert_exit(&output, 3, "the flash is incomplete: ");
    let stderr = text(&output.stderr);
    assert!(
        stderr.contains("from 0x00010000 up to 0x00010c00"),
        "three 1 KiB blocks landed:\n{stderr}"
    );
    // The virtual chip ends with its cable, and hil let go of the port: both exited.
    assert!(chip.wait_for_exit().success());
    assert!(!chip.port.exists());
}

#[test]
fn board_names_need_the_bench_config() {
    let dir = tempfile::tempdir().unwrap();
    let app = image(dir.path(), Chip::Esp32c3, "1.0.0", 100);
    let output = chip_support::run(
        std::process::Command::new(chip_support::hil_exe())
            .current_dir(dir.path())
            .arg("flash")
            .arg(&app)
            .args(["--board", "desk-c3"]),
    );
    assert_exit(&output, 2, "no bench config: hil.toml not found");
}

#[test]
fn an_esp_idf_elf_becomes_bootloader_partition_table_and_app() {
    let chip = VirtualChip::start(Chip::Esp32c3, &[]);
    let elf = chip.dir.path().join("light-controller.elf");
    std::fs::write(&elf, elf_image(Chip::Esp32c3, "1.5.0")).unwrap();
    let output = hil_flash(&elf, &chip.port, &[]);
    assert_exit(&output, 0, "0x00010000: ");
    let stderr = text(&output.stderr);
    for region in ["0x00000000: ", "0x00008000: "] {
        assert!(stderr.contains(region), "no {region}region:\n{stderr}");
    }
    assert_eq!(text(&output.stdout), "booted version 1.5.0\n");
}

#[test]
fn an_elf_for_another_architecture_is_refused() {
    let chip = VirtualChip::start(Chip::Esp32c3, &[]);
    let elf = chip.dir.path().join("esp32.elf");
    std::fs::write(&elf, elf_image(Chip::Esp32, "1.5.0")).unwrap();
    let output = hil_flash(&elf, &chip.port, &[]);
    assert_exit(
        &output,
        2,
        "byte 0x12: machine 94 (Xtensa), but the board is an esp32c3",
    );
    assert!(erased(&chip));
}

fn elf_image(chip: Chip, version: &str) -> Vec<u8> {
    hil::image::elf::generate(&ImageSpec {
        chip,
        project: "light-controller",
        version,
        code_len: 3000,
    })
    .unwrap()
}

/// The images in fixtures/images, and how each was made (`--elf` for the ELF).
const FIXTURES: [(&str, Chip, &str, usize); 3] = [
    (
        "light-controller-esp32c3-1.4.2.bin",
        Chip::Esp32c3,
        "1.4.2",
        4096,
    ),
    ("light-controller-esp8266.bin", Chip::Esp8266, "1.4.2", 4096),
    (
        "light-controller-esp32c3-1.5.0.elf",
        Chip::Esp32c3,
        "1.5.0",
        4096,
    ),
];

#[test]
fn fixture_images_regenerate_byte_for_byte() {
    let fixtures = Path::new(env!("CARGO_MANIFEST_DIR")).join("../fixtures/images");
    for (name, chip, version, code_len) in FIXTURES {
        let path = fixtures.join(name);
        let stored = std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        let spec = ImageSpec {
            chip,
            project: "light-controller",
            version,
            code_len,
        };
        let elf = name.ends_with(".elf");
        let regenerated = if elf {
            hil::image::elf::generate(&spec).unwrap()
        } else {
            generate(&spec)
        };
        assert!(
            stored == regenerated,
            "{} differs from its generator; rewrite it with: hil image generate --chip {} \
             --app-version {version} --code-size {code_len}{} -o fixtures/images/{name}",
            path.display(),
            chip.name(),
            if elf { " --elf" } else { "" }
        );
    }
}
