use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::{Checks, Needs, Role, Scene, StepError, StepKind};

/// A press of the board's wall switch. The firmware debounces (30 ms unless the board
/// says otherwise): presses closer together than that count as one.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct PressSwitch {
    pub board: String,
    /// Contact bounce: this many extra edges, 1 ms apart, after the press (simulated
    /// boards only: a real switch bounces by itself).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bounce: Option<u32>,
}

impl StepKind for PressSwitch {
    const NAME: &'static str = "press_switch";

    fn role(&self) -> Role<'_> {
        Role::Stimulus
    }

    fn check(&self, checks: &mut Checks<'_>) {
        checks.board(&self.board);
    }

    fn needs(&self) -> Needs<'_> {
        Needs {
            subscription: None,
            simulated_board: (self.bounce.unwrap_or(0) > 0).then_some(self.board.as_str()),
        }
    }

    async fn run<S: Scene>(&self, scene: &mut S) -> Result<(), StepError> {
        let bounce = self.bounce.unwrap_or(0);
        scene
            .board(&self.board)?
            .press(bounce)
            .await
            .map_err(StepError::Board)
    }
}
