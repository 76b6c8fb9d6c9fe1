//! What a flash run shows while it writes: a progress bar with KiB/s on a terminal,
//! one line per region otherwise; and what it remembers for the final report.
//!
//! It implements espflash's progress callbacks, which report blocks, so that the ESP32
//! family (espflash's flasher) and the ESP8266 (hil's own writer) report alike.

use std::io::IsTerminal;
use std::time::{Duration, Instant};

use espflash::target::ProgressCallbacks;
use indicatif::{ProgressBar, ProgressStyle};

use super::plan::Region;

/// FLASH_DATA block size of the ROM loaders.
pub const ROM_BLOCK: usize = 0x400;

/// Where progress goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Output {
    /// A live bar on stderr.
    Bar,
    /// One line per region on stderr.
    Lines,
    Quiet,
}

impl Output {
    /// A bar when stderr is a terminal, lines when it is a file or a pipe.
    pub fn for_stderr() -> Output {
        if std::io::stderr().is_terminal() {
            Output::Bar
        } else {
            Output::Lines
        }
    }
}

/// How one region went.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RegionOutcome {
    pub addr: u32,
    pub len: usize,
    /// The flash already held these bytes (MD5 compared), so nothing was written.
    pub skipped: bool,
    pub elapsed: Duration,
}

/// The region being written.
struct Writing {
    addr: u32,
    len: usize,
    blocks_done: usize,
    started: Instant,
    bar: Option<ProgressBar>,
}

pub struct Progress {
    output: Output,
    /// The plan: address and length of each region, in writing order.
    planned: Vec<(u32, usize)>,
    verify: bool,
    writing: Option<Writing>,
    outcomes: Vec<RegionOutcome>,
}

impl Progress {
    pub fn new(output: Output) -> Progress {
        Progress {
            output,
            planned: Vec::new(),
            verify: false,
            writing: None,
            outcomes: Vec::new(),
        }
    }

    /// Announces the regions about to be written, in order.
    pub fn plan(&mut self, regions: &[Region], verify: bool) {
        self.planned = regions.iter().map(|r| (r.addr, r.data.len())).collect();
        self.verify = verify;
        self.outcomes.clear();
    }

    pub fn outcomes(&self) -> &[RegionOutcome] {
        &self.outcomes
    }

    /// The region being written when a write failed, and how far it got.
    pub fn interrupted(&self) -> Option<(u32, u32, u32)> {
        let writing = self.writing.as_ref()?;
        let reached = writing.addr + self.bytes_done(writing) as u32;
        Some((writing.addr, reached, writing.addr + writing.len as u32))
    }

    /// A remark for the user, between regions.
    pub fn note(&self, text: &str) {
        if self.output != Output::Quiet {
            eprintln!("{text}");
        }
    }

    fn bytes_done(&self, writing: &Writing) -> usize {
        (writing.blocks_done * ROM_BLOCK).min(writing.len)
    }

    /// The planned region this report is about.
    fn current(&self) -> (u32, usize) {
        self.planned
            .get(self.outcomes.len())
            .copied()
            .unwrap_or((0, 0))
    }
}

impl ProgressCallbacks for Progress {
    fn init(&mut self, addr: u32, _total_blocks: usize) {
        let (_, len) = self.current();
        let bar = (self.output == Output::Bar).then(|| {
            let bar = ProgressBar::new(len as u64);
            bar.set_style(
                ProgressStyle::with_template(
                    "{msg} [{bar:30}] {binary_bytes}/{binary_total_bytes} {binary_bytes_per_sec}",
                )
                .unwrap_or_else(|_| ProgressStyle::default_bar())
                .progress_chars("=> "),
            );
            bar.set_message(format!("0x{addr:08x}"));
            bar
        });
        if self.output == Output::Lines {
            eprintln!("0x{addr:08x}: writing {len} bytes");
        }
        self.writing = Some(Writing {
            addr,
            len,
            blocks_done: 0,
            started: Instant::now(),
            bar,
        });
    }

    fn update(&mut self, blocks_done: usize) {
        if let Some(writing) = self.writing.as_mut() {
            writing.blocks_done = blocks_done;
        }
        if let Some(writing) = self.writing.as_ref() {
            if let Some(bar) = &writing.bar {
                bar.set_position(self.bytes_done(writing) as u64);
            }
        }
    }

    fn verifying(&mut self) {
        if let Some(bar) = self.writing.as_ref().and_then(|w| w.bar.as_ref()) {
            bar.set_message(format!("{} verifying", bar.message()));
        }
    }

    fn finish(&mut self, skipped: bool) {
        let (planned_addr, planned_len) = self.current();
        let writing = self.writing.take();
        let (addr, len, elapsed) = match &writing {
            Some(w) if !skipped => (w.addr, w.len, w.started.elapsed()),
            _ => (planned_addr, planned_len, Duration::ZERO),
        };
        if let Some(bar) = writing.and_then(|w| w.bar) {
            bar.finish_and_clear();
        }
        if self.output != Output::Quiet {
            eprintln!("{}", summary(addr, len, skipped, elapsed, self.verify));
        }
        self.outcomes.push(RegionOutcome {
            addr,
            len,
            skipped,
            elapsed,
        });
    }
}

fn summary(addr: u32, len: usize, skipped: bool, elapsed: Duration, verified: bool) -> String {
    if skipped {
        return format!("0x{addr:08x}: {len} bytes unchanged (flash MD5 matches), skipped");
    }
    let seconds = elapsed.as_secs_f64();
    let rate = if seconds > 0.0 {
        len as f64 / 1024.0 / seconds
    } else {
        0.0
    };
    let verified = if verified { ", verified (MD5)" } else { "" };
    format!("0x{addr:08x}: {len} bytes written in {seconds:.2} s ({rate:.1} KiB/s){verified}")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn region(addr: u32, len: usize) -> Region {
        Region {
            addr,
            data: vec![0; len],
        }
    }

    #[test]
    fn outcomes_follow_the_plan_including_skipped_regions() {
        let mut progress = Progress::new(Output::Quiet);
        progress.plan(&[region(0x0, 100), region(0x1_0000, 3000)], true);
        progress.finish(true);
        progress.init(0x1_0000, 3);
        progress.update(3);
        progress.finish(false);
        let outcomes = progress.outcomes();
        assert_eq!((outcomes[0].addr, outcomes[0].skipped), (0x0, true));
        assert_eq!(
            (outcomes[1].addr, outcomes[1].len, outcomes[1].skipped),
            (0x1_0000, 3000, false)
        );
    }

    #[test]
    fn an_interrupted_write_knows_how_far_it_got() {
        let mut progress = Progress::new(Output::Quiet);
        progress.plan(&[region(0x1_0000, 0x1000)], false);
        progress.init(0x1_0000, 4);
        progress.update(2);
        assert_eq!(progress.interrupted(), Some((0x1_0000, 0x1_0800, 0x1_1000)));
    }

    #[test]
    fn the_summary_gives_the_rate_and_the_verdict() {
        assert_eq!(
            summary(0x1_0000, 2048, false, Duration::from_secs(1), true),
            "0x00010000: 2048 bytes written in 1.00 s (2.0 KiB/s), verified (MD5)"
        );
        assert!(summary(0, 1, true, Duration::ZERO, true).ends_with("skipped"));
    }
}
