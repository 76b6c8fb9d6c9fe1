//! The thread that writes a trace file.

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::sync::mpsc;
use std::sync::Arc;
use std::thread::JoinHandle;

use super::Event;

/// The trace file could not be created or written.
#[derive(Debug, thiserror::Error)]
#[error("cannot write trace file {path}: {source}")]
pub struct TraceFileError {
    pub path: PathBuf,
    #[source]
    pub source: std::io::Error,
}

/// Events waiting for the disk, at most. Beyond it recording waits for the writer (the
/// disk is slower than the run for a moment) rather than dropping an event or growing
/// without bound.
const QUEUE: usize = 64 * 1024;

/// Owns the writer thread; events are handed over through a bounded channel, so that
/// recording waits on the disk only when the disk falls a whole queue behind.
pub(super) struct TraceWriter {
    events: mpsc::SyncSender<Arc<Event>>,
    thread: JoinHandle<Result<u64, TraceFileError>>,
}

impl TraceWriter {
    pub(super) fn create(path: &Path) -> Result<TraceWriter, TraceFileError> {
        let fail = |source| TraceFileError {
            path: path.to_path_buf(),
            source,
        };
        let file = File::create(path).map_err(fail)?;
        let (events, inbox) = mpsc::sync_channel::<Arc<Event>>(QUEUE);
        let path = path.to_path_buf();
        let thread = std::thread::Builder::new()
            .name("hil-trace-writer".into())
            .spawn(move || write_until_closed(BufWriter::new(file), &inbox, path))
            .map_err(fail)?;
        Ok(TraceWriter { events, thread })
    }

    pub(super) fn send(&self, event: Arc<Event>) {
        // The thread only stops early after a write error, which `close` reports.
        let _ = self.events.send(event);
    }

    /// Stops accepting events and waits until everything sent is on disk.
    pub(super) fn close(self) -> Result<u64, TraceFileError> {
        drop(self.events);
        self.thread.join().unwrap_or_else(|_| {
            Err(TraceFileError {
                path: PathBuf::from("<trace>"),
                source: std::io::Error::other("trace writer thread panicked"),
            })
        })
    }
}

/// Writes events as they come and flushes whenever the queue is empty: one flush per
/// event when events are sparse, one per batch under load.
fn write_until_closed(
    mut out: BufWriter<File>,
    inbox: &mpsc::Receiver<Arc<Event>>,
    path: PathBuf,
) -> Result<u64, TraceFileError> {
    let fail = |source| TraceFileError {
        path: path.clone(),
        source,
    };
    let mut written = 0u64;
    while let Ok(first) = inbox.recv() {
        let mut next = Some(first);
        while let Some(event) = next {
            serde_json::to_writer(&mut out, &*event).map_err(|e| fail(e.into()))?;
            out.write_all(b"\n").map_err(fail)?;
            written += 1;
            next = inbox.try_recv().ok();
        }
        out.flush().map_err(fail)?;
    }
    out.flush().map_err(fail)?;
    Ok(written)
}
