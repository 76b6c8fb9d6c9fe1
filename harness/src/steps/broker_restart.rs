use std::time::Duration;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::duration::{self, DurationText};
use super::{Checks, Needs, Role, Scene, StepError, StepKind};

/// A real broker restart: every session, subscription and retained message is gone;
/// connections are refused for `down_for` (embedded broker only).
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct BrokerRestart {
    /// How long the broker stays down (default 1s).
    #[serde(
        default = "default_down_for",
        with = "duration",
        skip_serializing_if = "is_default_down_for"
    )]
    #[schemars(with = "DurationText")]
    pub down_for: Duration,
}

const DEFAULT_DOWN_FOR: Duration = Duration::from_secs(1);

fn default_down_for() -> Duration {
    DEFAULT_DOWN_FOR
}

fn is_default_down_for(down_for: &Duration) -> bool {
    *down_for == DEFAULT_DOWN_FOR
}

impl StepKind for BrokerRestart {
    const NAME: &'static str = "broker_restart";

    fn role(&self) -> Role<'_> {
        Role::Stimulus
    }

    fn check(&self, checks: &mut Checks<'_>) {
        checks.duration("down_for", self.down_for);
    }

    fn needs(&self) -> Needs<'_> {
        Needs::NOTHING
    }

    async fn run<S: Scene>(&self, scene: &mut S) -> Result<(), StepError> {
        scene.restart_broker(self.down_for).await
    }
}
