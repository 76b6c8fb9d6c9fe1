use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::fault;
use super::{Checks, Needs, Role, Scene, StepError, StepKind};

/// The actor's next `count` PUBLISH frames reach the broker twice (DUP set).
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Duplicate {
    /// A harness client (or give `board`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client: Option<String>,
    /// A board (or give `client`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub board: Option<String>,
    /// How many publishes (default 1).
    #[serde(default = "default_count", skip_serializing_if = "is_default_count")]
    pub count: u32,
}

fn default_count() -> u32 {
    1
}

fn is_default_count(count: &u32) -> bool {
    *count == 1
}

impl StepKind for Duplicate {
    const NAME: &'static str = "duplicate";

    fn role(&self) -> Role<'_> {
        Role::Stimulus
    }

    fn check(&self, checks: &mut Checks<'_>) {
        checks.fault_target(self.client.as_deref(), self.board.as_deref());
    }

    fn needs(&self) -> Needs<'_> {
        Needs::NOTHING
    }

    async fn run<S: Scene>(&self, scene: &mut S) -> Result<(), StepError> {
        let client = fault::target_client_id(scene, &self.client, &self.board)?;
        scene.faults().duplicate(&client, self.count);
        fault::record(
            scene,
            Self::NAME,
            &client,
            format!("next {} publishes", self.count),
        );
        Ok(())
    }
}
