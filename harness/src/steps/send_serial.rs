use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::{Checks, Needs, Role, Scene, StepError, StepKind};

/// A line typed on the board's serial console.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SendSerial {
    pub board: String,
    /// The line, without its line end.
    pub line: String,
}

impl StepKind for SendSerial {
    const NAME: &'static str = "send_serial";

    fn role(&self) -> Role<'_> {
        Role::Stimulus
    }

    fn check(&self, checks: &mut Checks<'_>) {
        checks.board(&self.board);
    }

    fn needs(&self) -> Needs<'_> {
        Needs::NOTHING
    }

    async fn run<S: Scene>(&self, scene: &mut S) -> Result<(), StepError> {
        scene
            .board(&self.board)?
            .send_serial(&self.line)
            .await
            .map_err(StepError::Board)
    }
}
