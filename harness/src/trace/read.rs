//! Reading a JSON Lines trace back: `hil trace show` / `export`, and reports rendered
//! later from a run's files.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};

use super::Event;

/// Why a trace file could not be read: the file, and for a bad line where in it.
#[derive(Debug, thiserror::Error)]
pub enum TraceReadError {
    #[error("cannot read trace {}: {source}", path.display())]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{}:{line}:{column}: not a hil trace event: {source}", path.display())]
    NotAnEvent {
        path: PathBuf,
        line: usize,
        column: usize,
        source: serde_json::Error,
    },
}

/// Every event of a JSON Lines trace, blank lines skipped.
pub fn read_file(path: &Path) -> Result<Vec<Event>, TraceReadError> {
    let io = |source| TraceReadError::Io {
        path: path.to_path_buf(),
        source,
    };
    let file = std::fs::File::open(path).map_err(io)?;
    let mut events = Vec::new();
    for (index, line) in BufReader::new(file).split(b'\n').enumerate() {
        let line = line.map_err(io)?;
        if line.iter().all(u8::is_ascii_whitespace) {
            continue;
        }
        let event = serde_json::from_slice::<Event>(&line).map_err(|source| {
            TraceReadError::NotAnEvent {
                path: path.to_path_buf(),
                line: index + 1,
                column: source.column(),
                source,
            }
        })?;
        events.push(event);
    }
    Ok(events)
}
