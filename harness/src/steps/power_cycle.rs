use std::time::Duration;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::duration::{self, DurationText};
use super::{Checks, Needs, Role, Scene, StepError, StepKind};

/// The board loses power for `off_for`, then boots: RAM lost, stored configuration kept,
/// the broker sees the connection drop without a DISCONNECT (its will fires).
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct PowerCycle {
    pub board: String,
    /// How long the power stays off (default 100ms).
    #[serde(
        default = "default_off_for",
        with = "duration",
        skip_serializing_if = "is_default_off_for"
    )]
    #[schemars(with = "DurationText")]
    pub off_for: Duration,
}

/// How long `power_cycle` keeps the power off when its step does not say.
pub const DEFAULT_OFF_FOR: Duration = Duration::from_millis(100);

fn default_off_for() -> Duration {
    DEFAULT_OFF_FOR
}

fn is_default_off_for(off_for: &Duration) -> bool {
    *off_for == DEFAULT_OFF_FOR
}

impl StepKind for PowerCycle {
    const NAME: &'static str = "power_cycle";

    fn role(&self) -> Role<'_> {
        Role::Stimulus
    }

    fn check(&self, checks: &mut Checks<'_>) {
        checks.board(&self.board);
        checks.duration("off_for", self.off_for);
    }

    fn needs(&self) -> Needs<'_> {
        Needs::NOTHING
    }

    async fn run<S: Scene>(&self, scene: &mut S) -> Result<(), StepError> {
        scene
            .board(&self.board)?
            .power_cycle(self.off_for)
            .await
            .map_err(StepError::Board)?;
        scene.paused(self.off_for);
        Ok(())
    }
}
