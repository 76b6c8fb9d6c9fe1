use std::time::Duration;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::duration::{self, DurationText};
use super::expect_connected::connection_settles;
use super::{Checks, Needs, Role, Scene, StepError, StepKind};

/// A client or board is not connected (any more).
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ExpectDisconnected {
    /// A harness client or a board.
    pub client: String,
    /// Deadline (default 1s).
    #[serde(
        default = "duration::default_within",
        with = "duration",
        skip_serializing_if = "duration::is_default_within"
    )]
    #[schemars(with = "DurationText")]
    pub within: Duration,
}

impl StepKind for ExpectDisconnected {
    const NAME: &'static str = "expect_disconnected";

    fn role(&self) -> Role<'_> {
        Role::Expectation
    }

    fn check(&self, checks: &mut Checks<'_>) {
        checks.actor("client", &self.client);
        checks.duration("within", self.within);
    }

    fn deadline(&self) -> Option<Duration> {
        Some(self.within)
    }

    fn needs(&self) -> Needs<'_> {
        Needs::NOTHING
    }

    async fn run<S: Scene>(&self, scene: &mut S) -> Result<(), StepError> {
        let disconnected = connection_settles(scene, &self.client, self.within, |tracker| {
            !tracker.is_connected(false)
        });
        if disconnected.await {
            return Ok(());
        }
        Err(StepError::failed(
            format!("{} to be disconnected", self.client),
            format!(
                "it was still connected after {}",
                humantime::format_duration(self.within)
            ),
        ))
    }
}
