use std::time::Duration;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::duration::{self, DurationText};
use super::{Checks, Needs, Role, Scene, StepError, StepKind};

/// A plain pause. An expectation already waits for what it expects: pause only when the
/// pause itself is the point (a press long after a command).
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Wait {
    /// How long.
    #[serde(rename = "for", with = "duration")]
    #[schemars(rename = "for", with = "DurationText")]
    pub duration: Duration,
}

impl StepKind for Wait {
    const NAME: &'static str = "wait";

    fn role(&self) -> Role<'_> {
        Role::Stimulus
    }

    fn check(&self, checks: &mut Checks<'_>) {
        checks.duration("for", self.duration);
    }

    fn needs(&self) -> Needs<'_> {
        Needs::NOTHING
    }

    async fn run<S: Scene>(&self, scene: &mut S) -> Result<(), StepError> {
        tokio::time::sleep(self.duration).await;
        scene.paused(self.duration);
        Ok(())
    }
}
