//! Regression snapshots of a scenario's trace, in insta's file format so that
//! `cargo insta review` / `accept` work on them too.
//!
//! A snapshot is the trace normalized: no times, ports, connection numbers or packet ids,
//! no keep-alive or acknowledgement packets, and one section per actor (client or board)
//! with what it sent, what it received and what its board did. Within one actor, order is
//! causal and stable; across actors it is not, so actors are not interleaved.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::sync::{Arc, LazyLock};

use regex::Regex;

use serde::Serialize;

use crate::scenario::slug;
use crate::scenario::Scenario;
use crate::trace::{CloseReason, Direction, Event, EventBody, Packet};

/// What to write when a snapshot is missing or differs (insta's `INSTA_UPDATE`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SnapshotPolicy {
    /// Write `.snap.new` beside the snapshot (the default outside CI).
    WriteNew,
    /// Overwrite the `.snap` (INSTA_UPDATE=always, never in CI).
    Overwrite,
    /// Write new snapshots as `.snap`, changed ones as `.snap.new` (INSTA_UPDATE=unseen).
    Unseen,
    /// Write nothing, for the reason given (CI, INSTA_UPDATE=no).
    WriteNothing(&'static str),
}

const IN_CI: &str = "CI is set, so no .snap.new was written (as insta does); run it outside CI, \
    or with INSTA_UPDATE=new, to get one";
const UPDATE_NO: &str = "INSTA_UPDATE=no, so no .snap.new was written";

impl SnapshotPolicy {
    /// Reads `INSTA_UPDATE` and `CI` the way insta does: in CI nothing is written unless
    /// INSTA_UPDATE=new asks for it, and accepted snapshots are never overwritten.
    pub fn from_env() -> SnapshotPolicy {
        let ci = std::env::var("CI").is_ok_and(|v| !v.is_empty() && v != "0" && v != "false");
        match std::env::var("INSTA_UPDATE").as_deref() {
            Ok("no") => SnapshotPolicy::WriteNothing(UPDATE_NO),
            Ok("new") => SnapshotPolicy::WriteNew,
            Ok("always") if !ci => SnapshotPolicy::Overwrite,
            Ok("unseen") if !ci => SnapshotPolicy::Unseen,
            _ if ci => SnapshotPolicy::WriteNothing(IN_CI),
            _ => SnapshotPolicy::WriteNew,
        }
    }
}

/// What the snapshot comparison found.
#[derive(Debug, Clone, Serialize)]
#[serde(tag = "result", rename_all = "snake_case")]
pub enum SnapshotOutcome {
    Matched {
        file: PathBuf,
    },
    /// No snapshot existed and the policy wrote this run's as the snapshot.
    Created {
        file: PathBuf,
    },
    /// No snapshot exists yet.
    Missing {
        file: PathBuf,
        new_version: NewVersion,
    },
    /// Differs from the stored snapshot.
    Mismatched {
        file: PathBuf,
        new_version: NewVersion,
        diff: String,
    },
    /// The scenario asks for a snapshot, but this run cannot compare it.
    NotCompared {
        reason: &'static str,
    },
}

impl SnapshotOutcome {
    /// Missing and mismatched snapshots fail the scenario.
    pub fn fails(&self) -> bool {
        matches!(
            self,
            SnapshotOutcome::Missing { .. } | SnapshotOutcome::Mismatched { .. }
        )
    }
}

/// This run's version of a missing or changed snapshot.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum NewVersion {
    /// Beside the snapshot as `.snap.new`, for `hil snapshot accept`.
    Written(PathBuf),
    /// Not written, and why.
    Withheld(&'static str),
}

/// `<scenario folder>/snapshots/<slug>.snap`
pub fn snapshot_path(scenario: &Scenario) -> PathBuf {
    let folder = scenario.path.parent().unwrap_or(Path::new("."));
    folder
        .join("snapshots")
        .join(format!("{}.snap", slug(&scenario.name)))
}

/// Compares the normalized trace with the stored snapshot and writes what the policy says.
pub fn check(
    scenario: &Scenario,
    events: &[Arc<Event>],
    policy: SnapshotPolicy,
) -> Result<SnapshotOutcome, String> {
    let file = snapshot_path(scenario);
    let new_file = pending_path(&file);
    let actual = normalize(events);
    let stored = match std::fs::read_to_string(&file) {
        Ok(text) => Some(contents(&text).to_string()),
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => None,
        Err(error) => return Err(format!("cannot read {}: {error}", file.display())),
    };
    // insta trims trailing newlines when it writes; compare the way it does.
    if stored.as_deref().map(str::trim_end) == Some(actual.trim_end()) {
        // A stale pending version would only confuse `accept`.
        let _ = std::fs::remove_file(&new_file);
        return Ok(SnapshotOutcome::Matched { file });
    }
    let document = format_file(&scenario.path, &actual);
    let overwrite = policy == SnapshotPolicy::Overwrite
        || (policy == SnapshotPolicy::Unseen && stored.is_none());
    if overwrite {
        write(&file, &document)?;
        let _ = std::fs::remove_file(&new_file);
        return Ok(SnapshotOutcome::Created { file });
    }
    let new_version = match policy {
        SnapshotPolicy::WriteNothing(why) => NewVersion::Withheld(why),
        _ => {
            write(&new_file, &document)?;
            NewVersion::Written(new_file)
        }
    };
    Ok(match stored {
        None => SnapshotOutcome::Missing { file, new_version },
        Some(stored) => SnapshotOutcome::Mismatched {
            diff: diff(&stored, &actual),
            file,
            new_version,
        },
    })
}

fn write(path: &Path, text: &str) -> Result<(), String> {
    if let Some(folder) = path.parent() {
        std::fs::create_dir_all(folder)
            .map_err(|e| format!("cannot create {}: {e}", folder.display()))?;
    }
    std::fs::write(path, text).map_err(|e| format!("cannot write {}: {e}", path.display()))
}

/// `x.snap` → `x.snap.new`
pub fn pending_path(snapshot: &Path) -> PathBuf {
    let mut name = snapshot.as_os_str().to_owned();
    name.push(".new");
    PathBuf::from(name)
}

/// An insta snapshot file: a YAML header between `---` lines, then the contents.
pub fn format_file(source: &Path, contents: &str) -> String {
    format!(
        "---\nsource: {}\nexpression: normalized trace\n---\n{contents}",
        source.display()
    )
}

/// The contents of an insta snapshot file (everything after the header).
pub fn contents(file: &str) -> &str {
    let Some(rest) = file.strip_prefix("---\n") else {
        return file;
    };
    match rest.find("\n---\n") {
        Some(end) => &rest[end + 5..],
        None => file,
    }
}

/// A unified line diff, old `-` / new `+`.
pub fn diff(old: &str, new: &str) -> String {
    similar::TextDiff::from_lines(old, new)
        .unified_diff()
        .context_radius(3)
        .header("snapshot", "this run")
        .to_string()
}

/// A snapshot section's actor: a client id or board, or a client without an id of its
/// own (broker-assigned), told apart by the order its connection opened in.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
enum ActorName {
    Anonymous(usize),
    Named(String),
}

impl std::fmt::Display for ActorName {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ActorName::Anonymous(order) => write!(f, "(no client id, connection {order})"),
            ActorName::Named(name) => f.write_str(name),
        }
    }
}

/// Names the actor of a connection's event; anonymous connections are numbered from 1
/// in the order they first appear.
#[derive(Default)]
struct ActorNames {
    anonymous: std::collections::HashMap<u64, usize>,
}

impl ActorNames {
    fn of(&mut self, conn: u64, client: Option<&str>) -> ActorName {
        match client {
            Some(name) if !name.is_empty() => ActorName::Named(name.to_string()),
            _ => {
                let next = self.anonymous.len() + 1;
                ActorName::Anonymous(*self.anonymous.entry(conn).or_insert(next))
            }
        }
    }
}

/// `host:port` addresses (IPv4, `[IPv6]`, host names with a letter, so a time such as
/// `00:22:57` stays) after a line start, space, `=`, `/` or `@`.
static ADDRESS: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(concat!(
        r"(?P<before>^|[\s=/@])",
        r"(?:\[[0-9A-Fa-f:.]+\]|\d{1,3}(?:\.\d{1,3}){3}|[A-Za-z0-9-]*[A-Za-z][A-Za-z0-9-]*(?:\.[A-Za-z0-9-]+)*)",
        r":\d{1,5}\b",
    ))
    .expect("a valid regex")
});

/// A serial line with the run's addresses (its broker's port changes every run) as `<addr>`.
fn normalized_serial(line: &str) -> String {
    ADDRESS.replace_all(line, "${before}<addr>").into_owned()
}

/// The normalized, one-line-per-event text of a trace.
pub fn normalize(events: &[Arc<Event>]) -> String {
    #[derive(Default)]
    struct Actor {
        sent: Vec<String>,
        received: Vec<String>,
        board: Vec<String>,
        faults: Vec<String>,
    }
    let mut actors: BTreeMap<ActorName, Actor> = BTreeMap::new();
    let mut names = ActorNames::default();
    let named = |name: &str| ActorName::Named(name.to_string());
    let mut broker = Vec::new();
    // How often a client knocks during a partition depends on timing: those refused
    // connections are left out.
    let refused: std::collections::HashSet<u64> = events
        .iter()
        .filter_map(|event| match &event.body {
            EventBody::ConnClosed { conn, detail, .. }
                if detail.as_deref() == Some(crate::tap::PARTITIONED) =>
            {
                Some(*conn)
            }
            _ => None,
        })
        .collect();
    for event in events {
        match &event.body {
            EventBody::Mqtt { conn, .. } | EventBody::ConnClosed { conn, .. }
                if refused.contains(conn) => {}
            EventBody::Mqtt {
                conn,
                client,
                dir,
                packet,
            } => {
                let Some(line) = normalized_packet(packet) else {
                    continue;
                };
                let actor = actors
                    .entry(names.of(*conn, client.as_deref()))
                    .or_default();
                match dir {
                    Direction::ToBroker => actor.sent.push(line),
                    Direction::ToClient => actor.received.push(line),
                }
            }
            EventBody::Malformed {
                conn,
                client,
                reason,
                ..
            } => {
                actors
                    .entry(names.of(*conn, client.as_deref()))
                    .or_default()
                    .sent
                    .push(format!("malformed: {reason}"));
            }
            EventBody::ConnClosed {
                conn,
                client,
                reason,
                ..
            } => {
                // A socket dropped without DISCONNECT ends as a FIN or a reset depending
                // on what was still in flight: one outcome for the snapshot.
                let reason = match reason {
                    CloseReason::ByPeer | CloseReason::Error => "without_disconnect".to_string(),
                    other => serde_json::to_value(other)
                        .ok()
                        .and_then(|v| v.as_str().map(str::to_string))
                        .unwrap_or_default(),
                };
                actors
                    .entry(names.of(*conn, client.as_deref()))
                    .or_default()
                    .received
                    .push(format!("closed {reason}"));
            }
            EventBody::Serial { board, line } => actors
                .entry(named(board))
                .or_default()
                .board
                .push(format!("serial {}", normalized_serial(line))),
            EventBody::Relay { board, on } => actors
                .entry(named(board))
                .or_default()
                .board
                .push(format!("relay {}", if *on { "on" } else { "off" })),
            EventBody::Board { board, change } => {
                let change = serde_json::to_value(change)
                    .ok()
                    .and_then(|v| v.as_str().map(str::to_string))
                    .unwrap_or_default();
                actors.entry(named(board)).or_default().board.push(change);
            }
            EventBody::Broker { action, .. } => broker.push(format!("{action:?}").to_lowercase()),
            EventBody::Fault {
                fault,
                target,
                detail,
            } => match target {
                Some(target) => actors
                    .entry(named(target))
                    .or_default()
                    .faults
                    .push(format!("{fault} {detail}")),
                None => broker.push(format!("fault {fault} {detail}")),
            },
            // Read off serial lines, which the snapshot already holds.
            EventBody::TraceStarted { .. }
            | EventBody::BoardState { .. }
            | EventBody::BoardWarning { .. }
            | EventBody::ConnOpened { .. }
            | EventBody::ConnRefused { .. }
            | EventBody::StepStarted { .. }
            | EventBody::StepFinished { .. } => {}
        }
    }
    let mut out = String::new();
    if !broker.is_empty() {
        let _ = writeln!(out, "broker: {}", broker.join(", "));
    }
    for (name, actor) in &actors {
        let _ = writeln!(out, "\n[{name}]");
        for (heading, lines) in [
            ("sent", &actor.sent),
            ("received", &actor.received),
            ("board", &actor.board),
            ("faults", &actor.faults),
        ] {
            if lines.is_empty() {
                continue;
            }
            let _ = writeln!(out, "  {heading}:");
            for line in lines {
                let _ = writeln!(out, "    {line}");
            }
        }
    }
    out
}

/// The packet as a snapshot line; `None` for packets whose number depends on timing
/// (keep-alive, acknowledgements).
fn normalized_packet(packet: &Packet) -> Option<String> {
    Some(match packet {
        // No user name: a login is the run's setting (`--auth`), not the device's doing.
        Packet::Connect {
            protocol,
            clean_session,
            will,
            ..
        } => {
            let mut line = format!("connect v{protocol} clean={clean_session}");
            if let Some(will) = will {
                let _ = write!(
                    line,
                    " will={} {} qos={} retain={}",
                    will.topic, will.payload, will.qos, will.retain
                );
            }
            line
        }
        Packet::Connack {
            code,
            session_present,
        } => format!("connack {code} session_present={session_present}"),
        Packet::Publish {
            topic,
            payload,
            qos,
            retain,
            ..
        } => format!(
            "publish {topic} {payload} qos={qos}{}",
            if *retain { " retain" } else { "" }
        ),
        Packet::Subscribe { filters, .. } => {
            let filters: Vec<String> = filters
                .iter()
                .map(|f| format!("{} qos={}", f.filter, f.qos))
                .collect();
            format!("subscribe {}", filters.join(", "))
        }
        Packet::Suback { codes, .. } => format!(
            "suback {}",
            codes
                .iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join(", ")
        ),
        Packet::Unsubscribe { filters, .. } => format!("unsubscribe {}", filters.join(", ")),
        Packet::Disconnect { code } if code.is_normal() => "disconnect".into(),
        Packet::Disconnect { code } => format!("disconnect {code}"),
        // A refused publish is news; the routine acks are not.
        Packet::Puback { code, .. } if !code.is_success() => format!("puback {code}"),
        Packet::Pubrec { code, .. } if !code.is_success() => format!("pubrec {code}"),
        Packet::Puback { .. }
        | Packet::Pubrec { .. }
        | Packet::Pubrel { .. }
        | Packet::Pubcomp { .. }
        | Packet::Unsuback { .. }
        | Packet::Pingreq
        | Packet::Pingresp
        | Packet::Auth => return None,
    })
}

/// Folders below the search root deeper than this hold no snapshots of hil's.
const SEARCH_DEPTH: usize = 12;

/// Every pending snapshot (`*.snap.new`) in a `snapshots` folder below `root`, as
/// `cargo insta` searches its workspace: runs write them beside their scenarios, wherever
/// those are. Hidden folders and `target` are not searched, nor links followed.
pub fn find_pending(root: &Path) -> std::io::Result<Vec<PathBuf>> {
    let mut found = Vec::new();
    let walk = walkdir::WalkDir::new(root)
        .max_depth(SEARCH_DEPTH)
        .into_iter()
        .filter_entry(|entry| {
            let name = entry.file_name().to_string_lossy();
            entry.depth() == 0 || !(name.starts_with('.') || name == "target")
        });
    for entry in walk {
        let entry = entry.map_err(std::io::Error::from)?;
        let in_snapshots = entry
            .path()
            .parent()
            .and_then(Path::file_name)
            .is_some_and(|folder| folder == "snapshots");
        if entry.file_type().is_file() && in_snapshots && pending_name(entry.path()).is_some() {
            found.push(entry.into_path());
        }
    }
    found.sort();
    Ok(found)
}

/// `x.snap.new` → `x`
fn pending_name(path: &Path) -> Option<&str> {
    path.file_name()?.to_str()?.strip_suffix(".snap.new")
}

/// The pending snapshots that `accept` / `reject` act on.
#[derive(Debug, Default)]
pub struct PendingSelection {
    /// The `.snap.new` files the names chose (all of them when no name is given).
    pub chosen: Vec<PathBuf>,
    /// Names that chose no file.
    pub unmatched: Vec<String>,
    /// Every pending snapshot, as its path below the root without `.snap.new`.
    pub available: Vec<String>,
}

/// Whether `name` names the pending snapshot `stem`: a part of the file name, or the
/// scenario's words in order (`phone turns on` names
/// `phone-turns-the-lights-on.snap.new`).
fn names_snapshot(name: &str, stem: &str) -> bool {
    let words: Vec<String> = slug(name).split('-').map(str::to_string).collect();
    let mut stem_words = stem.split('-');
    let in_order = !slug(name).is_empty()
        && words
            .iter()
            .all(|word| stem_words.any(|stem_word| stem_word == word));
    (!name.is_empty() && stem.contains(name)) || in_order
}

/// Which of `pending` the names choose (see [`names_snapshot`]); all when `names` is
/// empty.
pub fn select_pending(root: &Path, pending: &[PathBuf], names: &[String]) -> PendingSelection {
    let chooses = |name: &String, path: &PathBuf| {
        pending_name(path).is_some_and(|stem| names_snapshot(name, stem))
    };
    PendingSelection {
        chosen: pending
            .iter()
            .filter(|path| names.is_empty() || names.iter().any(|name| chooses(name, path)))
            .cloned()
            .collect(),
        unmatched: names
            .iter()
            .filter(|name| !pending.iter().any(|path| chooses(name, path)))
            .cloned()
            .collect(),
        available: pending
            .iter()
            .map(|path| {
                let shown = path.strip_prefix(root).unwrap_or(path).to_string_lossy();
                shown
                    .strip_suffix(".snap.new")
                    .unwrap_or(&shown)
                    .to_string()
            })
            .collect(),
    }
}

/// What to do with a pending snapshot.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    /// It replaces the snapshot.
    Accept,
    /// It is deleted.
    Reject,
}

/// Carries out `decision` on the pending snapshot `new_file`; returns the file acted on
/// (the snapshot when accepted, the pending version when rejected).
pub fn decide(new_file: &Path, decision: Decision) -> std::io::Result<PathBuf> {
    match decision {
        Decision::Accept => {
            let file = new_file.with_extension("");
            std::fs::rename(new_file, &file)?;
            Ok(file)
        }
        Decision::Reject => {
            std::fs::remove_file(new_file)?;
            Ok(new_file.to_path_buf())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::trace::{Payload, PubackCode, Will};

    fn event(seq: u64, body: EventBody) -> Arc<Event> {
        Arc::new(Event {
            seq,
            t_us: seq * 1000,
            body,
        })
    }

    fn mqtt(client: &str, dir: Direction, packet: Packet) -> EventBody {
        EventBody::Mqtt {
            conn: 42,
            client: Some(client.into()),
            dir,
            packet,
        }
    }

    #[test]
    fn normalized_traces_drop_timing_and_keep_each_actors_story() {
        let events = vec![
            event(
                1,
                mqtt(
                    "lamp",
                    Direction::ToBroker,
                    Packet::Connect {
                        client_id: "lamp".into(),
                        protocol: 4,
                        clean_session: true,
                        keep_alive: 15,
                        will: Some(Will {
                            topic: "t/status".into(),
                            payload: Payload::from("offline"),
                            qos: 1,
                            retain: true,
                        }),
                        username: None,
                    },
                ),
            ),
            event(2, mqtt("lamp", Direction::ToClient, Packet::Pingresp)),
            event(
                3,
                mqtt(
                    "lamp",
                    Direction::ToBroker,
                    Packet::Publish {
                        topic: "t".into(),
                        payload: Payload::from("on"),
                        qos: 1,
                        retain: true,
                        dup: false,
                        pkid: Some(9),
                    },
                ),
            ),
            event(
                4,
                EventBody::Relay {
                    board: "lamp".into(),
                    on: true,
                },
            ),
            event(
                5,
                mqtt(
                    "lamp",
                    Direction::ToClient,
                    Packet::Puback {
                        pkid: 9,
                        code: PubackCode::Success,
                    },
                ),
            ),
        ];
        assert_eq!(
            normalize(&events),
            "\n[lamp]\n  sent:\n    connect v4 clean=true will=t/status \"offline\" qos=1 retain=true\n    publish t \"on\" qos=1 retain\n  board:\n    relay on\n"
        );
    }

    #[test]
    fn addresses_in_serial_lines_are_normalized() {
        for (line, normalized) in [
            (
                "HIL status state=ACTIVE relay=on topic=t broker=127.0.0.1:40123",
                "HIL status state=ACTIVE relay=on topic=t broker=<addr>",
            ),
            (
                "connecting to mqtt://broker.local:1883 now",
                "connecting to mqtt://<addr> now",
            ),
            ("peer [::1]:5000", "peer <addr>"),
            ("ets Jun  8 2016 00:22:57", "ets Jun  8 2016 00:22:57"),
            ("rst:0x1 (POWERON),boot:0x8", "rst:0x1 (POWERON),boot:0x8"),
            (
                "HIL boot fw=light-controller version=0.1.0",
                "HIL boot fw=light-controller version=0.1.0",
            ),
        ] {
            assert_eq!(normalized_serial(line), normalized, "{line}");
        }
        let events = vec![event(
            1,
            EventBody::Serial {
                board: "lamp".into(),
                line: "HIL status broker=localhost:1883".into(),
            },
        )];
        assert_eq!(
            normalize(&events),
            "\n[lamp]\n  board:\n    serial HIL status broker=<addr>\n"
        );
    }

    #[test]
    fn clients_without_an_id_get_one_section_per_connection() {
        let anonymous = |seq, conn, payload: &str| {
            event(
                seq,
                EventBody::Mqtt {
                    conn,
                    client: Some(String::new()),
                    dir: Direction::ToBroker,
                    packet: Packet::Publish {
                        topic: "t".into(),
                        payload: Payload::from(payload),
                        qos: 0,
                        retain: false,
                        dup: false,
                        pkid: None,
                    },
                },
            )
        };
        let events = vec![
            anonymous(1, 7, "first"),
            anonymous(2, 3, "second"),
            event(
                3,
                EventBody::ConnClosed {
                    conn: 7,
                    client: None,
                    reason: CloseReason::ByPeer,
                    detail: None,
                },
            ),
        ];
        assert_eq!(
            normalize(&events),
            "\n[(no client id, connection 1)]\n  sent:\n    publish t \"first\" qos=0\n  received:\n    closed without_disconnect\n\n[(no client id, connection 2)]\n  sent:\n    publish t \"second\" qos=0\n"
        );
    }

    #[test]
    fn insta_files_round_trip() {
        let file = format_file(Path::new("scenarios/a.yaml"), "line 1\nline 2\n");
        assert!(file.starts_with("---\nsource: scenarios/a.yaml\n"));
        assert_eq!(contents(&file), "line 1\nline 2\n");
    }

    #[test]
    fn names_choose_snapshots_by_part_or_by_words_in_order() {
        let stem = "phone-turns-the-lights-on-and-sees-the-switch";
        for name in [
            "phone turns on",
            "lights-on",
            "Phone Turns The Lights On",
            "switch",
        ] {
            assert!(names_snapshot(name, stem), "{name}");
        }
        for name in ["turns phone", "phone turns off", "", "lamp"] {
            assert!(!names_snapshot(name, stem), "{name}");
        }
    }

    #[test]
    fn diffs_mark_removed_and_added_lines() {
        let diff = diff("a\nb\n", "a\nc\n");
        assert!(diff.contains("-b\n") && diff.contains("+c\n"), "{diff}");
    }
}
