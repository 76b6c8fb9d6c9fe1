use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::fault;
use super::{Checks, Needs, Role, Scene, StepError, StepKind};
use crate::tap::DropAmount;
use crate::trace::Direction;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum FrameDirection {
    ToBroker,
    FromBroker,
}

/// The actor's next `count` message frames (PUBLISH and its acknowledgements) going
/// `direction` are lost, or each with probability `ratio`.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct DropFrames {
    /// A harness client (or give `board`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client: Option<String>,
    /// A board (or give `client`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub board: Option<String>,
    /// `to_broker` or `from_broker`.
    pub direction: FrameDirection,
    /// This many frames (or give `ratio`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub count: Option<u32>,
    /// Each frame with this probability, above 0 and at most 1 (or give `count`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ratio: Option<f64>,
}

impl StepKind for DropFrames {
    const NAME: &'static str = "drop";

    fn role(&self) -> Role<'_> {
        Role::Stimulus
    }

    fn check(&self, checks: &mut Checks<'_>) {
        checks.fault_target(self.client.as_deref(), self.board.as_deref());
        match (self.count, self.ratio) {
            (Some(count), None) if count > 0 => {}
            (None, Some(ratio)) if ratio > 0.0 && ratio <= 1.0 => {}
            _ => checks.problem(
                "give `count` (at least 1) or `ratio` (above 0, at most 1), not both",
                "e.g. `{ client: phone, direction: to_broker, count: 1 }`",
            ),
        }
    }

    fn needs(&self) -> Needs<'_> {
        Needs::NOTHING
    }

    async fn run<S: Scene>(&self, scene: &mut S) -> Result<(), StepError> {
        let client = fault::target_client_id(scene, &self.client, &self.board)?;
        let (direction, towards) = match self.direction {
            FrameDirection::ToBroker => (Direction::ToBroker, "to the broker"),
            FrameDirection::FromBroker => (Direction::ToClient, "from the broker"),
        };
        let (amount, how_many) = match (self.count, self.ratio) {
            (Some(count), _) => (DropAmount::Count(count), format!("{count} frames")),
            (None, ratio) => {
                let ratio = ratio.unwrap_or(1.0);
                (DropAmount::Ratio(ratio), format!("{ratio} of frames"))
            }
        };
        scene.faults().drop_frames(&client, direction, amount);
        fault::record(scene, Self::NAME, &client, format!("{how_many} {towards}"));
        Ok(())
    }
}
