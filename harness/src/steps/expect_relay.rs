use std::time::Duration;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::duration::{self, DurationText};
use super::{Checks, Needs, Role, Scene, StepError, StepKind, Window};
use crate::expect::published_before_subscribed;
use crate::trace::{Event, EventBody};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum RelayState {
    On,
    Off,
}

/// The board's relay is in `state` (off until the board reports otherwise).
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ExpectRelay {
    pub board: String,
    /// `on` or `off`.
    pub state: RelayState,
    /// Deadline (default 1s).
    #[serde(
        default = "duration::default_within",
        with = "duration",
        skip_serializing_if = "duration::is_default_within"
    )]
    #[schemars(with = "DurationText")]
    pub within: Duration,
}

/// The relay state an event reports for `board`, if it reports one.
fn relay_of(event: &Event, board_name: &str) -> Option<bool> {
    match &event.body {
        EventBody::Relay { board, on } if board == board_name => Some(*on),
        _ => None,
    }
}

impl StepKind for ExpectRelay {
    const NAME: &'static str = "expect_relay";

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
        let want = self.state == RelayState::On;
        let mut on = false;
        let mut watch = scene.watch(Window::WholeTrace);
        let reached = watch
            .until_settled(self.within, |batch| {
                if let Some(last) = batch.iter().rev().find_map(|e| relay_of(e, &self.board)) {
                    on = last;
                }
                on == want
            })
            .await;
        if reached {
            return Ok(());
        }
        let word = |on: bool| if on { "on" } else { "off" };
        let client_id = scene.client_id(&self.board);
        let story = published_before_subscribed(watch.seen(), &self.board, &client_id);
        Err(StepError::with_near_misses(
            format!("{}'s relay {}", self.board, word(want)),
            format!(
                "it stayed {} for {}",
                word(on),
                humantime::format_duration(self.within)
            ),
            story.into_iter().collect(),
        ))
    }
}
