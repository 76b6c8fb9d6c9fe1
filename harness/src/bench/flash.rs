//! The `flash` rows: hil flashing a virtual ESP32-C3 (`hil sim --pty`) against esptool
//! on the same chip, re-flashing an unchanged image, and flash → boot → ACTIVE with the
//! firmware on an embedded broker. hil and esptool both run as processes, as users run
//! them, both in ROM mode without resets (a pty has no DTR/RTS).

use std::io;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

use super::{start_broker, BenchOptions, Row};
use crate::flash::{self, FlashPort, Job, Output, Progress, ResetMode};
use crate::image::{self, Chip, ImageSpec};
use crate::port::PortName;
use crate::trace::Trace;

/// What the rows flash: a 1 MiB app, a typical ESP32 firmware size.
const IMAGE_LEN: usize = 1024 * 1024;
/// esptool in ROM mode needs seconds per MiB; this bounds a hung one.
const FLASH_DEADLINE: Duration = Duration::from_secs(180);

pub(super) async fn rows(options: &BenchOptions) -> io::Result<Vec<Row>> {
    let hil = crate::broker::find_engine_exe().map_err(io::Error::other)?;
    let dir = tempfile::tempdir()?;
    let first = write_image(dir.path(), "bench-1")?;
    let second = write_image(dir.path(), "bench-2")?;
    let chip = VirtualChip::start(&hil, &dir.path().join("c3"), None).await?;

    let hil_time = timed(hil_flash(&hil, &first, &chip.port)).await?;
    let reflash = hil_flash(&hil, &first, &chip.port);
    let started = Instant::now();
    let reflash_log = run(reflash).await?;
    let reflash_ms = started.elapsed().as_secs_f64() * 1000.0;
    if !reflash_log.contains("skipped") {
        return Err(io::Error::other(format!(
            "re-flashing an unchanged image wrote it again:\n{reflash_log}"
        )));
    }
    let mut rows = vec![Row::info(
        "flash 1 MiB to a virtual ESP32-C3: hil",
        (hil_time * 1000.0).round(),
        "ms",
    )];
    match flash::esptool::find() {
        Ok(esptool) => {
            let esptool_time = timed(esptool_flash(&esptool, &second, &chip.port)).await?;
            let percent = hil_time / esptool_time * 100.0;
            rows.push(Row::info(
                "flash 1 MiB to a virtual ESP32-C3: esptool --no-stub",
                (esptool_time * 1000.0).round(),
                "ms",
            ));
            rows.push(Row::target(
                "flash 1 MiB: hil time / esptool time",
                (percent * 10.0).round() / 10.0,
                "%",
                "≤ 100 % (ratio ≤ 1.0)".into(),
                percent <= 100.0,
            ));
        }
        Err(reason) => rows.push(Row::target(
            format!("flash 1 MiB: hil time / esptool time: not measured, {reason}"),
            0.0,
            "",
            "≤ 100 % (ratio ≤ 1.0)".into(),
            false,
        )),
    }
    rows.push(Row::target(
        "re-flash of an unchanged 1 MiB image (hil)",
        reflash_ms.round(),
        "ms",
        "< 1 s".into(),
        reflash_ms < 1000.0,
    ));
    drop(chip);
    rows.push(flash_boot_active(options, &hil, dir.path(), &first).await?);
    Ok(rows)
}

/// From `hil flash` starting to the firmware reporting ACTIVE (connected, subscribed)
/// on a broker.
async fn flash_boot_active(
    options: &BenchOptions,
    hil: &Path,
    dir: &Path,
    image: &Path,
) -> io::Result<Row> {
    let broker = start_broker(options, Trace::in_memory()).await?;
    let chip = VirtualChip::start(hil, &dir.join("c3-online"), Some(&broker.url())).await?;
    let job = Job {
        image: image.to_path_buf(),
        chip: Some(Chip::Esp32c3),
        address: None,
        skip_unchanged: true,
        verify: true,
        before: ResetMode::NoReset,
        after: ResetMode::Reset,
        baud: 115_200,
        boot_deadline: Duration::from_secs(10),
    };
    let port_name = PortName::Device(chip.port.clone());
    let elapsed = tokio::task::spawn_blocking(move || {
        let started = Instant::now();
        let port =
            FlashPort::open(&port_name, None, None, Duration::ZERO).map_err(io::Error::other)?;
        let mut flashed = flash::flash(&job, &port, &mut Progress::new(Output::Quiet))
            .map_err(io::Error::other)?;
        flashed
            .console
            .wait_for(Instant::now() + Duration::from_secs(30), |line| {
                line.contains("HIL state=ACTIVE").then_some(())
            })
            .map_err(|e| io::Error::other(format!("no ACTIVE line: {e:?}")))?;
        io::Result::Ok(started.elapsed())
    })
    .await
    .map_err(io::Error::other)??;
    drop(chip);
    broker.stop().await.map_err(io::Error::other)?;
    Ok(Row::info(
        "flash 1 MiB → boot → ACTIVE on the broker (virtual ESP32-C3)",
        (elapsed.as_secs_f64() * 1000.0).round(),
        "ms",
    ))
}

fn write_image(dir: &Path, version: &str) -> io::Result<PathBuf> {
    let bytes = image::generate(&ImageSpec {
        chip: Chip::Esp32c3,
        project: "light-controller",
        version,
        // Header, descriptor and hash on top of the code make it about 1 MiB.
        code_len: IMAGE_LEN - 512,
    });
    let path = dir.join(format!("{version}.bin"));
    std::fs::write(&path, bytes)?;
    Ok(path)
}

pub(super) fn hil_flash(hil: &Path, image: &Path, port: &Path) -> Command {
    let mut command = Command::new(hil);
    command
        .arg("flash")
        .arg(image)
        .arg("--port")
        .arg(port)
        .args(["--before", "no-reset", "--after", "no-reset"]);
    command
}

fn esptool_flash(esptool: &Path, image: &Path, port: &Path) -> Command {
    let mut command = Command::new(esptool);
    command
        .args(["--chip", "esp32c3", "--port"])
        .arg(port)
        .args(["--before", "no-reset", "--after", "no-reset", "--no-stub"])
        .args(["write-flash", "0x10000"])
        .arg(image);
    command
}

/// Seconds a command takes to succeed.
async fn timed(command: Command) -> io::Result<f64> {
    let started = Instant::now();
    run(command).await?;
    Ok(started.elapsed().as_secs_f64())
}

/// Runs a command to success and returns what it wrote on stderr.
pub(super) async fn run(mut command: Command) -> io::Result<String> {
    let program = format!("{:?}", command.as_std());
    let output = tokio::time::timeout(
        FLASH_DEADLINE,
        command
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .output(),
    )
    .await
    .map_err(|_| io::Error::other(format!("{program} took over {FLASH_DEADLINE:?}")))??;
    let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
    if !output.status.success() {
        return Err(io::Error::other(format!("{program} failed: {stderr}")));
    }
    Ok(stderr)
}

/// A `hil sim --pty --chip esp32c3` process, ended on drop.
pub(super) struct VirtualChip {
    _child: Child,
    pub(super) port: PathBuf,
}

impl VirtualChip {
    pub(super) async fn start(
        hil: &Path,
        link: &Path,
        broker: Option<&str>,
    ) -> io::Result<VirtualChip> {
        let mut command = Command::new(hil);
        command
            .args(["sim", "--pty", "--chip", "esp32c3", "--link"])
            .arg(link)
            .args(broker.map(|url| ["--broker", url]).into_iter().flatten())
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .kill_on_drop(true);
        let mut child = command.spawn()?;
        let stdout = child
            .stdout
            .take()
            .ok_or_else(|| io::Error::other("no stdout from hil sim --pty"))?;
        let mut lines = BufReader::new(stdout).lines();
        tokio::time::timeout(Duration::from_secs(10), lines.next_line())
            .await
            .map_err(|_| io::Error::other("hil sim --pty printed no port within 10 s"))??
            .ok_or_else(|| io::Error::other("hil sim --pty ended before printing its port"))?;
        Ok(VirtualChip {
            _child: child,
            port: link.to_path_buf(),
        })
    }
}
