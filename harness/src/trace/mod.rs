//! One run, one clock, one ordered stream of events.
//!
//! Every part of a run (the tap, boards, the runner) records into a [`Trace`]. Recording
//! stamps the event with the next sequence number and the run's monotonic clock under one
//! lock, so file order, sequence order and time order agree. Events go to two places:
//! - a JSON Lines file, written by a dedicated thread that flushes whenever it has caught
//!   up, so an interrupted run keeps everything recorded before the interruption;
//! - an in-memory log that [`Cursor`]s read, waking on new events instead of polling.

mod codes;
mod event;
mod read;
mod timeline;
mod writer;

use std::path::Path;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Instant, SystemTime};

use tokio::sync::watch;

pub use codes::{ConnackCode, DisconnectCode, PubackCode, SubackCode};
pub use event::{
    hex_excerpt, BoardChange, BrokerAction, CloseReason, Direction, Event, EventBody, Packet,
    Payload, Subscription, Will,
};
pub use read::{read_file, TraceReadError};
pub use timeline::{board_of, client_of, render_rows, Row, Tone, TraceFilter};
pub use writer::TraceFileError;
use writer::TraceWriter;

/// The most events a trace keeps in memory (about 200 bytes each, so a few hundred MiB).
/// Beyond it, events still go to the file, and the trace says it overflowed, which the
/// runner turns into the scenario's error: an expectation cannot see what is not kept.
pub const MAX_EVENTS_IN_MEMORY: usize = 2_000_000;

/// A run's event stream. Cloning gives another handle to the same stream.
#[derive(Clone)]
pub struct Trace {
    inner: Arc<Inner>,
}

struct Inner {
    clock: Instant,
    state: Mutex<State>,
    /// Carries the number of recorded events; cursors wait on it.
    recorded: watch::Sender<u64>,
}

struct State {
    last_seq: u64,
    /// Kept in memory only when the trace was asked to (see [`TraceOptions::keep_in_memory`]),
    /// up to [`MAX_EVENTS_IN_MEMORY`].
    log: Option<Vec<Arc<Event>>>,
    /// Events recorded but not kept in memory, the log being full.
    not_kept: u64,
    file: Option<TraceWriter>,
}

/// Where a trace goes.
#[derive(Debug, Clone, Default)]
pub struct TraceOptions<'a> {
    /// Write JSON Lines here.
    pub file: Option<&'a Path>,
    /// Keep every event in memory so cursors can read them (assertions need this; a
    /// long-running broker does not).
    pub keep_in_memory: bool,
}

/// What a finished trace wrote.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TraceSummary {
    pub recorded: u64,
    pub written: u64,
}

impl Trace {
    /// Starts the clock, opens the file (if any) and records `trace_started`.
    pub fn start(options: TraceOptions<'_>) -> Result<Trace, TraceFileError> {
        let file = options.file.map(TraceWriter::create).transpose()?;
        let trace = Trace {
            inner: Arc::new(Inner {
                clock: Instant::now(),
                state: Mutex::new(State {
                    last_seq: 0,
                    log: options.keep_in_memory.then(Vec::new),
                    not_kept: 0,
                    file,
                }),
                recorded: watch::Sender::new(0),
            }),
        };
        trace.record(EventBody::TraceStarted {
            wall_clock: humantime::format_rfc3339_millis(SystemTime::now()).to_string(),
            hil_version: env!("CARGO_PKG_VERSION").to_string(),
        });
        Ok(trace)
    }

    /// An in-memory trace with no file, for tests and benchmarks.
    pub fn in_memory() -> Trace {
        Trace::start(TraceOptions {
            file: None,
            keep_in_memory: true,
        })
        .expect("a trace without a file cannot fail to open")
    }

    /// Stamps and records one event, and wakes every waiting cursor.
    pub fn record(&self, body: EventBody) -> Arc<Event> {
        let mut state = self.lock();
        state.last_seq += 1;
        let event = Arc::new(Event {
            seq: state.last_seq,
            t_us: self.elapsed_us(),
            body,
        });
        match state.log.as_mut() {
            Some(log) if log.len() < MAX_EVENTS_IN_MEMORY => log.push(event.clone()),
            Some(_) => state.not_kept += 1,
            None => {}
        }
        if let Some(file) = state.file.as_ref() {
            file.send(event.clone());
        }
        let recorded = state.last_seq;
        drop(state);
        self.inner.recorded.send_replace(recorded);
        event
    }

    /// Microseconds on the run's clock.
    pub fn elapsed_us(&self) -> u64 {
        u64::try_from(self.inner.clock.elapsed().as_micros()).unwrap_or(u64::MAX)
    }

    /// Number of events recorded so far.
    pub fn len(&self) -> u64 {
        self.lock().last_seq
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The events kept in memory, from index `from` (0-based) on.
    pub fn events_from(&self, from: usize) -> Vec<Arc<Event>> {
        let state = self.lock();
        state
            .log
            .as_ref()
            .map(|log| log.get(from..).unwrap_or_default().to_vec())
            .unwrap_or_default()
    }

    /// A cursor that starts at the next event to be recorded.
    pub fn cursor(&self) -> Cursor {
        let next = self.lock().log.as_ref().map_or(0, Vec::len);
        self.cursor_at(next)
    }

    /// A cursor that starts at event index `index` (0-based; earlier events are skipped).
    pub fn cursor_at(&self, index: usize) -> Cursor {
        Cursor {
            trace: self.clone(),
            next: index,
            recorded: self.inner.recorded.subscribe(),
        }
    }

    /// Closes the file: waits until every recorded event is written and flushed.
    /// Events recorded afterwards stay in memory only. Calling it again is harmless.
    pub fn finish(&self) -> Result<TraceSummary, TraceFileError> {
        let (recorded, file) = {
            let mut state = self.lock();
            (state.last_seq, state.file.take())
        };
        let written = match file {
            Some(file) => file.close()?,
            None => 0,
        };
        Ok(TraceSummary { recorded, written })
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // A panic while holding the lock cannot leave the state half-updated in a way
        // that matters to readers, so a poisoned lock is still used.
        self.inner
            .state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// How many events were recorded but not kept in memory, the in-memory log being full
    /// (they are in the file).
    pub fn not_kept(&self) -> u64 {
        self.lock().not_kept
    }

    /// The event at `index` (0-based), if recorded and kept in memory.
    pub fn event(&self, index: usize) -> Option<Arc<Event>> {
        self.lock().log.as_ref()?.get(index).cloned()
    }
}

/// Reads a trace's events in order, waiting for new ones without polling.
pub struct Cursor {
    trace: Trace,
    next: usize,
    recorded: watch::Receiver<u64>,
}

impl Cursor {
    /// The next event, waiting for it until `deadline`; `None` when the deadline passed.
    pub async fn next_before(&mut self, deadline: tokio::time::Instant) -> Option<Arc<Event>> {
        loop {
            // Mark the current count as seen *before* looking, so an event recorded
            // between the look and the wait still wakes the wait.
            self.recorded.borrow_and_update();
            if let Some(event) = self.trace.event(self.next) {
                self.next += 1;
                return Some(event);
            }
            tokio::select! {
                changed = self.recorded.changed() => {
                    if changed.is_err() {
                        return None;
                    }
                }
                () = tokio::time::sleep_until(deadline) => return None,
            }
        }
    }

    /// Every event already recorded and not yet returned, without waiting.
    pub fn drain(&mut self) -> Vec<Arc<Event>> {
        let events = self.trace.events_from(self.next);
        self.next += events.len();
        events
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn past_the_memory_bound_events_are_counted_not_kept() {
        let trace = Trace::in_memory();
        for i in 0..MAX_EVENTS_IN_MEMORY + 9 {
            trace.record(EventBody::ConnRefused {
                peer: String::new(),
                reason: if i == 0 {
                    "first".into()
                } else {
                    String::new()
                },
            });
        }
        // The trace_started event and the first MAX - 1 records are kept.
        assert_eq!(trace.not_kept(), 10);
        assert_eq!(trace.len(), MAX_EVENTS_IN_MEMORY as u64 + 10);
        assert!(trace.event(MAX_EVENTS_IN_MEMORY - 1).is_some());
        assert!(trace.event(MAX_EVENTS_IN_MEMORY).is_none());
    }

    #[test]
    fn sequence_numbers_and_clock_are_monotonic() {
        let trace = Trace::in_memory();
        for i in 0..100 {
            trace.record(EventBody::ConnRefused {
                peer: format!("p{i}"),
                reason: "test".into(),
            });
        }
        let events = trace.events_from(0);
        assert_eq!(events.len(), 101);
        assert!(matches!(events[0].body, EventBody::TraceStarted { .. }));
        for pair in events.windows(2) {
            assert_eq!(pair[1].seq, pair[0].seq + 1);
            assert!(pair[1].t_us >= pair[0].t_us);
        }
    }

    #[tokio::test]
    async fn cursor_wakes_on_an_event_recorded_after_it_started_waiting() {
        let trace = Trace::in_memory();
        let mut cursor = trace.cursor();
        let recorder = trace.clone();
        let task = tokio::spawn(async move {
            tokio::task::yield_now().await;
            recorder.record(EventBody::ConnRefused {
                peer: "x".into(),
                reason: "late".into(),
            });
        });
        let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
        let event = cursor
            .next_before(deadline)
            .await
            .expect("event before deadline");
        assert!(matches!(event.body, EventBody::ConnRefused { .. }));
        task.await.unwrap();
    }

    #[tokio::test]
    async fn cursor_sees_events_recorded_before_it_waits() {
        let trace = Trace::in_memory();
        let mut cursor = trace.cursor();
        trace.record(EventBody::ConnRefused {
            peer: "early".into(),
            reason: "r".into(),
        });
        let deadline = tokio::time::Instant::now();
        assert!(cursor.next_before(deadline).await.is_some());
        assert!(cursor.next_before(deadline).await.is_none());
    }

    #[test]
    fn file_holds_every_event_as_one_json_line() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("trace.jsonl");
        let trace = Trace::start(TraceOptions {
            file: Some(&path),
            keep_in_memory: false,
        })
        .unwrap();
        for i in 0..1000 {
            trace.record(EventBody::ConnRefused {
                peer: format!("p{i}"),
                reason: "r".into(),
            });
        }
        let summary = trace.finish().unwrap();
        assert_eq!(
            summary,
            TraceSummary {
                recorded: 1001,
                written: 1001
            }
        );
        let text = std::fs::read_to_string(&path).unwrap();
        let seqs: Vec<u64> = text
            .lines()
            .map(|line| serde_json::from_str::<Event>(line).unwrap().seq)
            .collect();
        assert_eq!(seqs, (1..=1001).collect::<Vec<_>>());
    }
}
