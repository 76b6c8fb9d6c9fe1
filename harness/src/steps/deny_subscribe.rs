use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::fault;
use super::{Checks, Needs, Role, Scene, StepError, StepKind};

/// From now on the broker refuses subscriptions that `filter` covers, for every client
/// (SUBACK 0x80 on MQTT 3.1.1, 0x87 "not authorized" on MQTT 5); subscriptions granted
/// before stay. Reset a board after it to see how its firmware takes a refusal. Needs
/// hil's embedded broker: against an external one (`--broker`) the step fails.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct DenySubscribe {
    /// A topic filter; `#` and `+` cover what they match.
    pub filter: String,
}

impl StepKind for DenySubscribe {
    const NAME: &'static str = "deny_subscribe";

    fn role(&self) -> Role<'_> {
        Role::Stimulus
    }

    fn check(&self, checks: &mut Checks<'_>) {
        checks.filter_in("filter", &self.filter);
    }

    fn needs(&self) -> Needs<'_> {
        Needs::NOTHING
    }

    async fn run<S: Scene>(&self, scene: &mut S) -> Result<(), StepError> {
        scene.deny_subscribe(&self.filter)?;
        fault::record(
            scene,
            Self::NAME,
            "broker",
            format!("subscriptions to {} refused", self.filter),
        );
        Ok(())
    }
}
