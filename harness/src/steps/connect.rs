use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::{Checks, Needs, Role, Scene, StepError, StepKind};

/// A harness client connects (declare it with `connect: false` to start disconnected).
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Connect {
    /// The harness client.
    pub client: String,
}

impl StepKind for Connect {
    const NAME: &'static str = "connect";

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
        scene.connect(&self.client).await
    }
}
