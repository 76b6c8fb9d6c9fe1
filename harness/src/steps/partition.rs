use std::time::Duration;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use tokio::time::Instant;

use super::duration::{self, DurationText};
use super::fault;
use super::{Checks, Needs, Role, Scene, StepError, StepKind};

/// The actor's connections are cut and refused for `for`, then healed; the steps after
/// it run meanwhile.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Partition {
    /// A harness client (or give `board`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client: Option<String>,
    /// A board (or give `client`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub board: Option<String>,
    /// How long the partition lasts.
    #[serde(rename = "for", with = "duration")]
    #[schemars(rename = "for", with = "DurationText")]
    pub duration: Duration,
}

impl StepKind for Partition {
    const NAME: &'static str = "partition";

    fn role(&self) -> Role<'_> {
        Role::Stimulus
    }

    fn check(&self, checks: &mut Checks<'_>) {
        checks.fault_target(self.client.as_deref(), self.board.as_deref());
        checks.duration("for", self.duration);
    }

    fn needs(&self) -> Needs<'_> {
        Needs::NOTHING
    }

    async fn run<S: Scene>(&self, scene: &mut S) -> Result<(), StepError> {
        let client = fault::target_client_id(scene, &self.client, &self.board)?;
        let heals = Instant::now() + self.duration;
        scene.faults().partition(&client, heals);
        fault::record(
            scene,
            Self::NAME,
            &client,
            format!("for {}", humantime::format_duration(self.duration)),
        );
        scene.record_at(heals, fault::fault_event(Self::NAME, &client, "healed".into()));
        Ok(())
    }
}
