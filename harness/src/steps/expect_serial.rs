use std::time::Duration;

use regex::Regex;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::duration::{self, DurationText};
use super::{Checks, Needs, Role, Scene, StepError, StepKind, Window};
use crate::trace::{Event, EventBody};

/// The board prints a line matching `regex` on its serial console.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ExpectSerial {
    pub board: String,
    /// A pattern the line matches (Rust regex syntax).
    pub regex: String,
    /// Deadline (default 1s).
    #[serde(
        default = "duration::default_within",
        with = "duration",
        skip_serializing_if = "duration::is_default_within"
    )]
    #[schemars(with = "DurationText")]
    pub within: Duration,
}

/// The serial line an event carries for `board`, if it is one.
pub fn serial_line<'e>(event: &'e Event, board_name: &str) -> Option<&'e str> {
    match &event.body {
        EventBody::Serial { board, line } if board == board_name => Some(line),
        _ => None,
    }
}

impl StepKind for ExpectSerial {
    const NAME: &'static str = "expect_serial";

    fn role(&self) -> Role<'_> {
        Role::Expectation
    }

    fn check(&self, checks: &mut Checks<'_>) {
        checks.board(&self.board);
        checks.regex("regex", &self.regex);
        checks.duration("within", self.within);
    }

    fn deadline(&self) -> Option<Duration> {
        Some(self.within)
    }

    fn needs(&self) -> Needs<'_> {
        Needs::NOTHING
    }

    async fn run<S: Scene>(&self, scene: &mut S) -> Result<(), StepError> {
        let regex = Regex::new(&self.regex).map_err(|e| StepError::Invalid(e.to_string()))?;
        let mut watch = scene.watch(Window::SinceStimulus);
        let found = watch
            .until(self.within, |event| {
                serial_line(event, &self.board).is_some_and(|line| regex.is_match(line))
            })
            .await;
        if found {
            return Ok(());
        }
        let lines: Vec<String> = watch
            .seen()
            .iter()
            .filter_map(|event| serial_line(event, &self.board))
            .map(|line| format!("serial line: {line}"))
            .collect();
        Err(StepError::with_near_misses(
            format!("a serial line from {} matching /{}/", self.board, self.regex),
            format!("{} other lines", lines.len()),
            lines,
        ))
    }
}
