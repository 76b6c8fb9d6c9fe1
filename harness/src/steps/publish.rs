use bytes::Bytes;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::{Checks, Needs, Role, Scene, StepError, StepKind};

/// A harness client publishes a message.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Publish {
    /// The harness client that publishes.
    #[serde(rename = "as")]
    pub client: String,
    /// A concrete topic (no wildcards).
    pub topic: String,
    /// Text payload (YAML scalars are taken as their text).
    pub payload: String,
    /// 0, 1 or 2 (default 0).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub qos: u8,
    /// The broker keeps it for later subscribers.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub retain: bool,
}

fn is_zero(qos: &u8) -> bool {
    *qos == 0
}

impl StepKind for Publish {
    const NAME: &'static str = "publish";

    fn role(&self) -> Role<'_> {
        Role::Stimulus
    }

    fn check(&self, checks: &mut Checks<'_>) {
        checks.client("as", &self.client);
        checks.topic(&self.topic);
        checks.qos(self.qos);
    }

    fn needs(&self) -> Needs<'_> {
        Needs::NOTHING
    }

    async fn run<S: Scene>(&self, scene: &mut S) -> Result<(), StepError> {
        let payload = Bytes::from(self.payload.clone());
        scene
            .publish(&self.client, &self.topic, payload, self.qos, self.retain)
            .await
    }
}
