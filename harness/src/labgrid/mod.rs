//! Boards on a labgrid farm: a bench board may be a labgrid place, named or found by
//! its tags. hil reserves it through the coordinator (waiting up to the lock timeout,
//! saying who holds it), acquires it, reads its `NetworkSerialPort` (served by ser2net
//! with RFC 2217 on an exporter host) and, when it has one, its power resource; the
//! serial port then goes through the ordinary `rfc2217://` path. labgrid brings the
//! farm (coordinator, exporters, mutual exclusion); hil brings flashing and MQTT.
//!
//! Everything goes through `labgrid-client` ([`client`]), with a deadline on every
//! call. A [`HeldPlace`] gives the place back when dropped, and its [`keeper`] does so
//! even when `hil` dies without dropping it.

pub mod client;
pub mod keeper;
pub mod listing;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Serialize;

use crate::board::BenchBoard;
use crate::port::{PortName, PortSpec};

pub use client::{Client, DEFAULT_COORDINATOR};
use keeper::Keeper;
use listing::{PlaceInfo, Resource};

/// Which place a bench board is: by name, or any free place with these tags.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PlaceFilter {
    Name(String),
    Tags(BTreeMap<String, String>),
}

impl PlaceFilter {
    /// The filter of `labgrid-client reserve` (labgrid tags every place with its name).
    fn reserve_args(&self) -> Vec<String> {
        match self {
            PlaceFilter::Name(name) => vec![format!("name={name}")],
            PlaceFilter::Tags(tags) => tags.iter().map(|(k, v)| format!("{k}={v}")).collect(),
        }
    }

    fn matches(&self, place: &PlaceInfo) -> bool {
        match self {
            PlaceFilter::Name(name) => place.name == *name,
            PlaceFilter::Tags(tags) => tags.iter().all(|(k, v)| place.tags.get(k) == Some(v)),
        }
    }
}

impl std::fmt::Display for PlaceFilter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            PlaceFilter::Name(name) => write!(f, "labgrid place {name}"),
            PlaceFilter::Tags(_) => write!(
                f,
                "a labgrid place tagged {}",
                self.reserve_args().join(" ")
            ),
        }
    }
}

/// Why a place could not be had. Each is infrastructure (exit 3).
#[derive(Debug, thiserror::Error)]
pub enum LabgridError {
    #[error("{0}")]
    NotInstalled(String),
    #[error("cannot reach the labgrid coordinator at {coordinator}: is labgrid-coordinator running there? (--labgrid-coordinator HOST:PORT or LG_COORDINATOR)")]
    Unreachable { coordinator: String },
    #[error("{command}: {said}")]
    Refused { command: String, said: String },
    #[error("{command} did not answer within {within}")]
    Silent { command: String, within: String },
    #[error("{command}: cannot read its answer: {output:?}")]
    Unreadable { command: String, output: String },
    #[error("no labgrid place is named {name} on {coordinator}; it has: {known} (create it with `labgrid-client -p {name} create`)")]
    UnknownPlace {
        name: String,
        coordinator: String,
        known: String,
    },
    #[error("no labgrid place on {coordinator} has the tags {tags}; set them with `labgrid-client -p PLACE set-tags {tags}`")]
    NoMatchingPlace { coordinator: String, tags: String },
    #[error("{wanted} is still held after {waited}: {holders} (raise --lock-timeout, or see `labgrid-client who`)")]
    Busy {
        wanted: String,
        waited: String,
        holders: String,
    },
    #[error("labgrid place {place} has no NetworkSerialPort (it has: {has}); add its exporter's port with `labgrid-client -p {place} add-match EXPORTER/GROUP/NetworkSerialPort`")]
    NoSerialPort { place: String, has: String },
    #[error("labgrid place {place}: its NetworkSerialPort speaks {protocol}; hil needs RFC 2217 (ser2net's telnet(rfc2217) accepter) to drive the reset lines")]
    NotRfc2217 { place: String, protocol: String },
    #[error("labgrid keeper: {0}")]
    Keeper(String),
}

/// The serial port of a place: where its exporter's ser2net listens.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SerialPort {
    pub host: String,
    pub port: u16,
    pub speed: u32,
}

impl SerialPort {
    pub fn address(&self) -> String {
        format!("{}:{}", self.host, self.port)
    }
}

/// Where a role was played on the farm, for reports.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PlaceRecord {
    pub place: String,
    pub exporter: String,
}

/// A place's power switch (a network PDU port and the like), worked by labgrid's power
/// drivers through `labgrid-client power`.
#[derive(Debug, Clone)]
pub struct Power {
    client: Client,
    place: String,
}

impl Power {
    pub fn set(&self, on: bool) -> Result<(), LabgridError> {
        let action = if on { "on" } else { "off" };
        self.client
            .call(&["-p", &self.place, "power", action])
            .map(drop)
    }

    pub fn place(&self) -> &str {
        &self.place
    }
}

/// A reserved and acquired place. Dropping it releases the place and cancels the
/// reservation (waiting until labgrid has done both).
pub struct HeldPlace {
    pub record: PlaceRecord,
    pub serial: SerialPort,
    pub power: Option<Power>,
    _keeper: Keeper,
}

/// Reserves a place matching `filter`, waiting up to `lock_timeout` for one to be free
/// (`notice` is told what it waits for and who holds it), then acquires it and reads its
/// resources. Blocks: call it off an async runtime's thread. `hil` is the executable
/// that runs the keeper.
pub fn take(
    client: &Client,
    hil: &Path,
    filter: &PlaceFilter,
    lock_timeout: Duration,
    notice: &mut dyn FnMut(&str),
) -> Result<HeldPlace, LabgridError> {
    let mut reserve = vec!["reserve".to_string()];
    reserve.extend(filter.reserve_args());
    let reserve: Vec<&str> = reserve.iter().map(String::as_str).collect();
    let answer = client.call(&reserve)?;
    let reservation = listing::reservation(&answer).ok_or_else(|| LabgridError::Unreadable {
        command: reserve.join(" "),
        output: answer.clone(),
    })?;
    let token = reservation.token;
    let mut keeper = Keeper::spawn(hil, client, &token)?;
    if reservation.state == "waiting" {
        let held = holders(client, filter)?;
        notice(&format!(
            "waiting up to {} for {filter}: {held}",
            humantime::format_duration(lock_timeout)
        ));
        match client.call_within(&["wait", &token], lock_timeout) {
            Ok(_) => {}
            Err(LabgridError::Silent { .. }) => {
                return Err(LabgridError::Busy {
                    wanted: filter.to_string(),
                    waited: humantime::format_duration(lock_timeout).to_string(),
                    holders: holders(client, filter)?,
                })
            }
            Err(other) => return Err(other),
        }
    }
    let place = format!("+{token}");
    // Told first: a hil that dies during the call still has its place given back.
    keeper.acquired()?;
    // What the place matches is what it acquires: read at the same time.
    let show = ["-p", place.as_str(), "show"];
    let (acquired, shown) = client.call_both(&["-p", &place, "acquire"], &show);
    acquired?;
    let mut shown = shown?;
    let (mut info, mut resources) = listing::acquired(&shown);
    if !has_serial_port(&resources) {
        // Read in the middle of the acquisition (acquired, its resources not yet
        // listed): read again now that it is done.
        shown = client.call(&show)?;
        (info, resources) = listing::acquired(&shown);
    }
    let name = info
        .map(|info| info.name)
        .ok_or_else(|| LabgridError::Unreadable {
            command: format!("labgrid-client -p {place} show"),
            output: shown.clone(),
        })?;
    let (exporter, serial) = serial_port(&name, &resources)?;
    let power = resources
        .iter()
        .any(|resource| resource.class.contains("Power"))
        .then(|| Power {
            client: client.clone(),
            place: name.clone(),
        });
    Ok(HeldPlace {
        record: PlaceRecord {
            place: name,
            exporter,
        },
        serial,
        power,
        _keeper: keeper,
    })
}

/// Stands for the place's name in a board's `control` path.
pub const PLACE_IN_PATH: &str = "{place}";

/// `bench` ready to open: as it is, or, for a labgrid place, reserved and acquired
/// (the returned [`HeldPlace`] holds it) with the place's serial port, power switch and
/// record filled in.
pub fn take_board(
    bench: &BenchBoard,
    coordinator: &str,
    lock_timeout: Duration,
    notice: &mut dyn FnMut(&str),
) -> Result<(BenchBoard, Option<HeldPlace>), LabgridError> {
    let PortSpec::Labgrid(filter) = &bench.port else {
        return Ok((bench.clone(), None));
    };
    let client = Client::find(coordinator)?;
    let hil = crate::broker::find_engine_exe().map_err(|e| LabgridError::Keeper(e.to_string()))?;
    let held = take(&client, &hil, filter, lock_timeout, notice)?;
    let port = PortName::Rfc2217(held.serial.address());
    notice(&format!(
        "{}: labgrid place {} (exporter {}) acquired: {port}",
        bench.name, held.record.place, held.record.exporter
    ));
    let mut board = bench.clone();
    board.port = PortSpec::Named(port);
    // A board found by its tags may be any of several: `{place}` names the one it is.
    board.control = bench.control.as_ref().map(|control| {
        PathBuf::from(
            control
                .to_string_lossy()
                .replace(PLACE_IN_PATH, &held.record.place),
        )
    });
    board.place = Some(held.record.clone());
    board.power = held.power.clone();
    Ok((board, Some(held)))
}

fn has_serial_port(resources: &[Resource]) -> bool {
    resources.iter().any(|r| r.class == SERIAL_PORT)
}

const SERIAL_PORT: &str = "NetworkSerialPort";

/// The place's `NetworkSerialPort` and the exporter that publishes it.
fn serial_port(place: &str, resources: &[Resource]) -> Result<(String, SerialPort), LabgridError> {
    let serial = resources
        .iter()
        .find(|resource| resource.class == SERIAL_PORT)
        .ok_or_else(|| LabgridError::NoSerialPort {
            place: place.to_string(),
            has: if resources.is_empty() {
                "no resources".to_string()
            } else {
                resources
                    .iter()
                    .map(|r| format!("{}/{}/{}", r.exporter, r.group, r.class))
                    .collect::<Vec<_>>()
                    .join(", ")
            },
        })?;
    let param = |key: &str| serial.params.get(key).map(String::as_str);
    let protocol = param("protocol").unwrap_or("rfc2217");
    if protocol != "rfc2217" {
        return Err(LabgridError::NotRfc2217 {
            place: place.to_string(),
            protocol: protocol.to_string(),
        });
    }
    let unreadable = || LabgridError::Unreadable {
        command: format!("labgrid-client -p {place} show"),
        output: format!("{serial:?}"),
    };
    Ok((
        serial.exporter.clone(),
        SerialPort {
            host: param("host").ok_or_else(unreadable)?.to_string(),
            port: param("port")
                .and_then(|p| p.parse().ok())
                .ok_or_else(unreadable)?,
            speed: param("speed")
                .and_then(|s| s.parse().ok())
                .unwrap_or(115_200),
        },
    ))
}

/// Who holds the places `filter` would take, in words; a filter no place can ever match
/// is an error rather than a wait.
fn holders(client: &Client, filter: &PlaceFilter) -> Result<String, LabgridError> {
    let places = listing::places(&client.call(&["-v", "places"])?);
    let matching: Vec<&PlaceInfo> = places.iter().filter(|p| filter.matches(p)).collect();
    if matching.is_empty() {
        return Err(match filter {
            PlaceFilter::Name(name) => LabgridError::UnknownPlace {
                name: name.clone(),
                coordinator: client.coordinator().to_string(),
                known: if places.is_empty() {
                    "no places".to_string()
                } else {
                    places
                        .iter()
                        .map(|p| p.name.as_str())
                        .collect::<Vec<_>>()
                        .join(", ")
                },
            },
            PlaceFilter::Tags(_) => LabgridError::NoMatchingPlace {
                coordinator: client.coordinator().to_string(),
                tags: filter.reserve_args().join(" "),
            },
        });
    }
    let held: Vec<String> = matching.iter().filter_map(|p| p.holder()).collect();
    Ok(if held.is_empty() {
        "queued behind other reservations".to_string()
    } else {
        format!("held: {}", held.join(", "))
    })
}
