use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::{Checks, Needs, Role, Scene, StepError, StepKind};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum LinkState {
    Up,
    Down,
}

/// The board's network link goes up or down (simulated boards only).
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Wifi {
    pub board: String,
    /// `up` or `down`.
    pub state: LinkState,
}

impl StepKind for Wifi {
    const NAME: &'static str = "wifi";

    fn role(&self) -> Role<'_> {
        Role::Stimulus
    }

    fn check(&self, checks: &mut Checks<'_>) {
        checks.board(&self.board);
    }

    fn needs(&self) -> Needs<'_> {
        Needs {
            subscription: None,
            simulated_board: Some(&self.board),
        }
    }

    async fn run<S: Scene>(&self, scene: &mut S) -> Result<(), StepError> {
        scene
            .board(&self.board)?
            .wifi(self.state == LinkState::Up)
            .await
            .map_err(StepError::Board)
    }
}
