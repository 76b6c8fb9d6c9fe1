use std::time::Duration;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::duration::{self, DurationText};
use super::expect_serial::serial_line;
use super::{Checks, Needs, Role, Scene, StepError, StepKind, Window};

/// The board prints its boot line (and, with `version`, boots that firmware version).
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ExpectBoot {
    pub board: String,
    /// The firmware version the boot line must announce.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
    /// Deadline (default 1s).
    #[serde(
        default = "duration::default_within",
        with = "duration",
        skip_serializing_if = "duration::is_default_within"
    )]
    #[schemars(with = "DurationText")]
    pub within: Duration,
}

impl StepKind for ExpectBoot {
    const NAME: &'static str = "expect_boot";

    fn role(&self) -> Role<'_> {
        Role::Expectation
    }

    fn check(&self, checks: &mut Checks<'_>) {
        checks.board(&self.board);
        checks.duration("within", self.within);
    }

    fn deadline(&self) -> Option<Duration> {
        Some(self.within)
    }

    fn needs(&self) -> Needs<'_> {
        Needs::NOTHING
    }

    async fn run<S: Scene>(&self, scene: &mut S) -> Result<(), StepError> {
        let mut watch = scene.watch(Window::SinceStimulus);
        let board = scene.board(&self.board)?;
        let booted = |line: &str, want: Option<&str>| {
            board
                .boot_version(line)
                .is_some_and(|booted| want.is_none_or(|want| booted == want))
        };
        let found = watch
            .until(self.within, |event| {
                serial_line(event, &self.board)
                    .is_some_and(|line| booted(line, self.version.as_deref()))
            })
            .await;
        if found {
            return Ok(());
        }
        let boots: Vec<String> = watch
            .seen()
            .iter()
            .filter_map(|event| serial_line(event, &self.board))
            .filter(|line| booted(line, None))
            .map(|line| format!("boot line: {line}"))
            .collect();
        let want = match &self.version {
            Some(version) => format!("{} to boot version {version}", self.board),
            None => format!("{} to boot", self.board),
        };
        Err(StepError::with_near_misses(
            want,
            format!("{} boot lines", boots.len()),
            boots,
        ))
    }
}
