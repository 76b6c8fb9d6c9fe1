use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::{Checks, Needs, Role, Scene, StepError, StepKind};

/// A harness client disconnects cleanly (its will is not published).
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Disconnect {
    /// The harness client.
    pub client: String,
}

impl StepKind for Disconnect {
    const NAME: &'static str = "disconnect";

    fn role(&self) -> Role<'_> {
        Role::Stimulus
    }

    fn check(&self, checks: &mut Checks<'_>) {
        checks.client("client", &self.client);
    }

    fn needs(&self) -> Needs<'_> {
        Needs::NOTHING
    }

    async fn run<S: Scene>(&self, scene: &mut S) -> Result<(), StepError> {
        if scene.disconnect(&self.client).await {
            Ok(())
        } else {
            Err(StepError::failed(
                format!("{} to be connected", self.client),
                "it was not connected",
            ))
        }
    }
}
