use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::{Checks, Needs, Role, Scene, Step, StepError, StepKind};

/// The most passes a `repeat` may ask for.
pub const MAX_REPEAT: usize = 10_000;

/// The steps again, `times` times; the whole block is one stimulus to what follows it.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Repeat {
    /// How many passes (1 to 10000).
    pub times: usize,
    /// The steps of one pass.
    pub steps: Vec<Step>,
}

impl StepKind for Repeat {
    const NAME: &'static str = "repeat";

    fn role(&self) -> Role<'_> {
        Role::Block(&self.steps)
    }

    fn check(&self, checks: &mut Checks<'_>) {
        if self.times == 0 || self.times > MAX_REPEAT {
            checks.field(
                "times",
                format!("`times: {}` is out of range", self.times),
                format!("repeat 1 to {MAX_REPEAT} times"),
            );
        }
        if self.steps.is_empty() {
            checks.problem("`repeat` has no steps", "add `steps:` under it");
        }
    }

    fn needs(&self) -> Needs<'_> {
        // The steps inside have needs of their own.
        Needs::NOTHING
    }

    async fn run<S: Scene>(&self, scene: &mut S) -> Result<(), StepError> {
        for _ in 0..self.times {
            scene.run_block(&self.steps).await?;
        }
        Ok(())
    }
}
