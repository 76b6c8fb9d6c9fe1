//! The `labgrid` rows: a farm on loopback (`farm.rs`) whose one place holds a virtual
//! ESP32-C3 served by ser2net. Reserve + acquire + open of that place, and the
//! reference suite on the chip through the place against the same suite on the chip's
//! own pty.

use std::collections::BTreeMap;
use std::io;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use super::farm::{self, Farm, Ser2net};
use super::flash::{hil_flash, run, VirtualChip};
use super::{play_suite, reference_scenarios, BenchOptions, Play, Row};
use crate::board::profile::Profile;
use crate::board::BenchBoard;
use crate::image::{self, Chip, ImageSpec};
use crate::labgrid::{self, PlaceFilter};
use crate::port::{Endpoint, PortName, PortSpec};
use crate::runner::{BenchMapping, Status};

const PLACE: &str = "bench-lamp";

pub(super) async fn rows(options: &BenchOptions) -> io::Result<Vec<Row>> {
    let hil = crate::broker::find_engine_exe().map_err(io::Error::other)?;
    let dir = tempfile::tempdir()?;
    // Some broker for the chip's app to try; each scenario points it at its own.
    let chip = VirtualChip::start(&hil, &dir.path().join("c3"), Some("mqtt://127.0.0.1:9")).await?;
    let firmware = dir.path().join("app.bin");
    std::fs::write(
        &firmware,
        image::generate(&ImageSpec {
            chip: Chip::Esp32c3,
            project: "light-controller",
            version: "1.0.0",
            code_len: 8192,
        }),
    )?;
    run(hil_flash(&hil, &firmware, &chip.port)).await?;
    let (farm, ser2net) = {
        let (dir, port) = (dir.path().to_path_buf(), chip.port.clone());
        tokio::task::spawn_blocking(move || start_farm(&dir, &port))
            .await
            .map_err(io::Error::other)??
    };

    let take = {
        let (client, hil) = (farm.client().clone(), hil.clone());
        tokio::task::spawn_blocking(move || {
            let started = Instant::now();
            let filter = PlaceFilter::Name(PLACE.to_string());
            let held = labgrid::take(&client, &hil, &filter, Duration::ZERO, &mut |_| {})
                .map_err(io::Error::other)?;
            let endpoint = Endpoint::open(
                &PortName::Rfc2217(held.serial.address()),
                115_200,
                Duration::ZERO,
            )
            .map_err(io::Error::other)?;
            let elapsed = started.elapsed();
            drop(endpoint);
            drop(held);
            io::Result::Ok(elapsed)
        })
        .await
        .map_err(io::Error::other)??
    };
    let take_ms = take.as_secs_f64() * 1000.0;
    let mut rows = vec![Row::target(
        "labgrid place on loopback: reserve + acquire + open its RFC 2217 port",
        take_ms.round(),
        "ms",
        "< 2 s".into(),
        take_ms < 2000.0,
    )];

    let scenarios = reference_scenarios()?;
    let local = bench_board(PortSpec::Named(PortName::Device(chip.port.clone())), None)?;
    let local_time = suite_on(&scenarios, options, local).await?;
    let on_place = {
        let (client, control) = (farm.client().clone(), control(&chip.port));
        tokio::task::spawn_blocking(move || {
            let filter = PlaceFilter::Name(PLACE.to_string());
            let board = bench_board(PortSpec::Labgrid(filter), Some(control))?;
            labgrid::take_board(&board, client.coordinator(), Duration::ZERO, &mut |_| {})
                .map_err(io::Error::other)
        })
        .await
        .map_err(io::Error::other)??
    };
    let (board, held) = on_place;
    let place_time = suite_on(&scenarios, options, board).await?;
    drop(held);
    drop((farm, ser2net, chip));
    let ratio = (place_time.as_secs_f64() / local_time.as_secs_f64() * 100.0).round() / 100.0;
    rows.push(Row::info(
        "reference suite on a virtual ESP32-C3, its local pty",
        local_time.as_secs_f64(),
        "s",
    ));
    rows.push(Row::target(
        "same suite through a labgrid place / on the local pty",
        ratio,
        "x",
        "≤ 1.2 x".into(),
        ratio <= 1.2,
    ));
    Ok(rows)
}

/// ser2net for the chip's pty, a coordinator, one exporter and place [`PLACE`].
fn start_farm(dir: &Path, pty: &Path) -> io::Result<(Farm, Ser2net)> {
    let ser2net = Ser2net::serve(dir, pty)?;
    let mut farm = Farm::start(dir)?;
    farm.export("bench", &[("lamp", farm::serial_port(ser2net.port))])?;
    farm.create_place(PLACE, &["bench/lamp/*"], &[])?;
    Ok((farm, ser2net))
}

/// The chip's control socket, named: through the place the port is remote.
fn control(port: &Path) -> PathBuf {
    crate::chip::control_socket_path(port)
}

fn bench_board(port: PortSpec, control: Option<PathBuf>) -> io::Result<BenchBoard> {
    let profile = Profile::bundled("sim-pty")
        .ok_or_else(|| io::Error::other("the sim-pty profile is bundled"))?;
    Ok(BenchBoard {
        name: "bench1".to_string(),
        port,
        address: profile.app_offset,
        profile,
        firmware: None,
        control,
        place: None,
        power: None,
    })
}

/// The suite with role `lamp` on `board`; every scenario a bench board can play must
/// pass.
async fn suite_on(
    scenarios: &[crate::scenario::Scenario],
    options: &BenchOptions,
    board: BenchBoard,
) -> io::Result<Duration> {
    let bench = BenchMapping {
        roles: BTreeMap::from([("lamp".to_string(), board)]),
        lock_timeout: Duration::from_secs(30),
        ..Default::default()
    };
    let (wall, _, results) = play_suite(
        scenarios.to_vec(),
        options.broker.clone(),
        bench,
        Play::Whole,
    )
    .await;
    if let Some(failed) = results
        .iter()
        .find(|r| !matches!(r.status, Status::Passed | Status::Skipped))
    {
        return Err(io::Error::other(format!(
            "{:?} did not pass on the bench board: {:?}",
            failed.name,
            failed.last().failure.as_ref().map(|f| f.headline())
        )));
    }
    Ok(wall)
}
