//! The draft as a file: a header saying where it came from, the scenario in the format
//! `hil run` reads (checked by reading it back), written whole or not at all.

use std::io::Write;
use std::path::{Path, PathBuf};

use super::draft::{Draft, FLOOR, GRAIN, MARGIN};
use crate::scenario;

/// Where a draft came from, for its header.
#[derive(Debug, Clone)]
pub struct Origin {
    /// The board as a person knows it: `lamp, the simulated light controller`.
    pub board: String,
    /// The firmware version the board's boot line announced.
    pub firmware: Option<String>,
}

/// Why a draft could not be written.
#[derive(Debug, thiserror::Error)]
pub enum DraftFileError {
    #[error("--out {path}: {reason}")]
    Destination { path: PathBuf, reason: String },
    #[error("cannot write {path}: {source}; nothing was written there")]
    Write {
        path: PathBuf,
        source: std::io::Error,
    },
    /// A bug: the draft must read back as itself.
    #[error("the draft does not read back as written ({0}); please report this")]
    Format(String),
}

/// Refuses, before the recording starts, a place where the draft could not go: a file
/// that `hil run` would not find, a folder that does not exist or takes no file, a file
/// already there (unless `overwrite`).
pub fn check_destination(path: &Path, overwrite: bool) -> Result<(), DraftFileError> {
    let refuse = |reason: String| DraftFileError::Destination {
        path: path.to_path_buf(),
        reason,
    };
    if !path
        .extension()
        .is_some_and(|ext| ext == "yaml" || ext == "yml")
    {
        return Err(refuse(
            "a scenario file ends in .yaml or .yml (that is how `hil run` finds it)".into(),
        ));
    }
    if path.is_dir() {
        return Err(refuse("is a folder; name the file to write".into()));
    }
    if path.exists() && !overwrite {
        return Err(refuse(
            "exists already; choose another file, or pass --force to replace it".into(),
        ));
    }
    let folder = folder_of(path);
    // A file made and removed at once: the folder exists and takes files, so the end
    // of a session is not the moment to find out.
    tempfile::Builder::new()
        .prefix(".hil-record-")
        .tempfile_in(folder)
        .map(drop)
        .map_err(|e| refuse(format!("cannot write in {}: {e}", folder.display())))
}

fn folder_of(path: &Path) -> &Path {
    match path.parent() {
        Some(parent) if !parent.as_os_str().is_empty() => parent,
        _ => Path::new("."),
    }
}

/// The draft as file text: the header, then the scenario. It is read back before it
/// is returned, so what is written is what `hil run` will run.
pub fn render(draft: &Draft, origin: &Origin, path: &Path) -> Result<String, DraftFileError> {
    let yaml =
        scenario::to_yaml(&draft.scenario).map_err(|e| DraftFileError::Format(e.to_string()))?;
    let text = format!("{}{yaml}", header(draft, origin));
    let read = scenario::parse(path, &text, &crate::board::profile::known_names())
        .map_err(|e| DraftFileError::Format(e.to_string()))?;
    if read.steps != draft.scenario.steps || read.name != draft.scenario.name {
        return Err(DraftFileError::Format("the steps read back differ".into()));
    }
    Ok(text)
}

/// Comment lines: where the draft came from, how its timings were chosen, and what it
/// left out.
fn header(draft: &Draft, origin: &Origin) -> String {
    let mut lines = vec![format!(
        "Draft recorded by `hil record` (hil {}){}.",
        env!("CARGO_PKG_VERSION"),
        draft
            .recorded_at
            .as_deref()
            .map(|at| format!(" on {at}"))
            .unwrap_or_default()
    )];
    lines.push(match &origin.firmware {
        Some(version) => format!("Board: {}, firmware {version}.", origin.board),
        None => format!("Board: {}.", origin.board),
    });
    lines.push(format!(
        "Timings are drafts: each `within` is {MARGIN} x the latency seen while recording, rounded up to {} and at least {}; make them what the device must meet.",
        humantime::format_duration(GRAIN),
        humantime::format_duration(FLOOR)
    ));
    if !draft.activity {
        lines.push(
            "No activity was recorded: nobody published and the board was not driven; the steps only check how the board starts."
                .into(),
        );
    }
    if !draft.notes.is_empty() {
        lines.push("Notes:".into());
        lines.extend(draft.notes.iter().map(|note| format!("- {note}")));
    }
    lines
        .iter()
        .map(|line| format!("# {}\n", line.replace('\n', " ")))
        .collect()
}

/// Writes `text` to `path` whole or not at all: into a temporary file beside it, flushed
/// to the disk, then renamed over `path`. A write that fails (a full disk) or is cut
/// short leaves `path` as it was.
pub fn write_whole(path: &Path, text: &str) -> Result<(), DraftFileError> {
    let failed = |source| DraftFileError::Write {
        path: path.to_path_buf(),
        source,
    };
    let mut temporary = tempfile::Builder::new()
        .prefix(".hil-record-")
        .suffix(".yaml.tmp")
        .tempfile_in(folder_of(path))
        .map_err(failed)?;
    temporary.write_all(text.as_bytes()).map_err(failed)?;
    temporary.as_file().sync_all().map_err(failed)?;
    temporary.persist(path).map_err(|e| failed(e.error))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::record::draft::{draft, BoardRole, Session};
    use crate::scenario::BoardSpec;
    use crate::trace::{Event, EventBody};

    fn lamp() -> BoardRole {
        BoardRole::named("lamp", BoardSpec::of_profile("sim"))
    }

    fn quiet_draft() -> Draft {
        let events = [Event {
            seq: 1,
            t_us: 0,
            body: EventBody::TraceStarted {
                wall_clock: "2025-03-04T05:06:07.890Z".into(),
                hil_version: "0.1.0".into(),
            },
        }];
        let board = lamp();
        draft(
            &events,
            Session {
                name: None,
                board: &board,
                renames: &[],
                secrets: &[],
            },
        )
    }

    fn origin() -> Origin {
        Origin {
            board: "lamp, the simulated light controller".into(),
            firmware: Some("0.1.0".into()),
        }
    }

    #[test]
    fn the_file_says_where_it_came_from_and_reads_back_as_the_draft() {
        let draft = quiet_draft();
        let text = render(&draft, &origin(), Path::new("draft.yaml")).unwrap();
        assert!(text.starts_with(
            "# Draft recorded by `hil record` (hil 0.1.0) on 2025-03-04T05:06:07.890Z.\n\
             # Board: lamp, the simulated light controller, firmware 0.1.0.\n\
             # Timings are drafts: each `within` is 3 x the latency seen while recording, rounded up to 100ms and at least 200ms"
        ), "{text}");
        assert!(text.contains("# No activity was recorded"), "{text}");
        assert!(text.contains("# - lamp never connected"), "{text}");
        let read = scenario::parse(Path::new("draft.yaml"), &text, &["sim"]).unwrap();
        assert_eq!(read.steps, draft.scenario.steps);
        assert_eq!(read.boards[0].spec, draft.scenario.boards[0].spec);
    }

    #[test]
    fn a_write_goes_in_whole_and_leaves_nothing_beside_it() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("draft.yaml");
        write_whole(&path, "name: first\n").unwrap();
        write_whole(&path, "name: second\n").unwrap();
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "name: second\n");
        let names: Vec<_> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|entry| entry.unwrap().file_name())
            .collect();
        assert_eq!(names, ["draft.yaml"]);
    }

    #[test]
    fn a_write_that_cannot_finish_leaves_the_old_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("draft.yaml");
        write_whole(&path, "name: kept\n").unwrap();
        // The temporary file cannot be made: a missing folder stands in for a full disk.
        let elsewhere = dir.path().join("gone").join("draft.yaml");
        let error = write_whole(&elsewhere, "name: lost\n").unwrap_err();
        assert!(
            error.to_string().contains("nothing was written there"),
            "{error}"
        );
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "name: kept\n");
    }

    #[test]
    fn destinations_that_cannot_take_the_draft_are_refused_before_recording() {
        let dir = tempfile::tempdir().unwrap();
        let taken = dir.path().join("taken.yaml");
        std::fs::write(&taken, "name: mine\n").unwrap();
        let refused = |path: &Path, overwrite: bool| {
            check_destination(path, overwrite).unwrap_err().to_string()
        };
        assert!(refused(&taken, false).contains("--force"));
        assert!(check_destination(&taken, true).is_ok());
        assert!(refused(&dir.path().join("draft.txt"), false).contains(".yaml"));
        assert!(refused(&dir.path().join("no/such/folder.yaml"), false).contains("cannot write in"));
        assert!(check_destination(&dir.path().join("new.yaml"), false).is_ok());
        let left: Vec<_> = std::fs::read_dir(dir.path()).unwrap().collect();
        assert_eq!(left.len(), 1, "the probe leaves nothing behind");
    }
}
