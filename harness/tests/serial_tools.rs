//! `hil provision` and `hil monitor` on a flashed virtual chip, as a bench engineer uses
//! them: settings stored with the firmware's `config` command, the Wi-Fi password in no
//! output and no trace; a monitor that types, timestamps, writes its trace and ends on
//! Ctrl-C with exit 130.

#[path = "chip_support/mod.rs"]
mod chip_support;

use std::io::Write;
use std::process::{Command, Stdio};
use std::time::Instant;

use chip_support::{
    hil_exe, hil_flash, image, lines_of, run, send_signal, text, wait_with_deadline, VirtualChip,
    DEADLINE,
};
use hil::image::Chip;

const SECRET: &str = "wifi-s3cret-9f2c";

#[test]
fn provision_stores_settings_and_the_monitor_shows_them_without_the_password() {
    let chip = VirtualChip::start(Chip::Esp32c3, &[]);
    let dir = chip.dir.path();
    let app = image(dir, Chip::Esp32c3, "1.2.3", 1024);
    let flashed = hil_flash(&app, &chip.port, &[]);
    assert_eq!(flashed.status.code(), Some(0), "{}", text(&flashed.stderr));

    let provisioned = run(Command::new(hil_exe())
        .args(["provision", "--port"])
        .arg(&chip.port)
        .args(["--ssid", "home", "--broker", "192.0.2.7:1883"])
        .env("HIL_WIFI_PASSWORD", SECRET));
    let said = format!("{}{}", text(&provisioned.stdout), text(&provisioned.stderr));
    assert_eq!(provisioned.status.code(), Some(0), "{said}");
    assert!(said.contains("HIL config saved"), "{said}");
    assert!(said.contains("password"), "the key is named: {said}");
    assert!(!said.contains(SECRET), "{said}");

    let trace = dir.join("monitor.jsonl");
    let mut monitor = Command::new(hil_exe())
        .args(["monitor", "--port"])
        .arg(&chip.port)
        .arg("--trace")
        .arg(&trace)
        .env("NO_COLOR", "1")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let lines = lines_of(monitor.stdout.take().unwrap());
    // Typed lines go to the board; its answer comes back timestamped.
    let mut stdin = monitor.stdin.take().unwrap();
    writeln!(stdin, "status").unwrap();
    let deadline = Instant::now() + DEADLINE;
    let status = loop {
        let line = lines
            .recv_timeout(deadline.saturating_duration_since(Instant::now()))
            .expect("the monitor shows the status line");
        if line.contains("HIL status") {
            break line;
        }
    };
    assert!(status.contains("broker=192.0.2.7:1883"), "{status}");
    let stamp = status.split_whitespace().next().unwrap();
    assert!(
        stamp.parse::<f64>().is_ok(),
        "a millisecond stamp: {status}"
    );

    send_signal(&monitor, "INT");
    let exit = wait_with_deadline(monitor);
    assert_eq!(exit.code(), Some(130));
    let recorded = std::fs::read_to_string(&trace).unwrap();
    assert!(recorded.contains("HIL status"), "{recorded}");
    assert!(!recorded.contains(SECRET), "{recorded}");
    let last = recorded.lines().last().unwrap();
    assert!(
        serde_json::from_str::<serde_json::Value>(last).is_ok(),
        "the trace ends on a whole event: {last}"
    );
}
