use std::time::Duration;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use tokio::time::Instant;

use super::duration::{self, DurationText};
use super::fault;
use super::{Checks, Needs, Role, Scene, StepError, StepKind};

/// Every frame of the actor, both ways, is held `by` ± `jitter` (in order), for `for` or
/// until the end.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Delay {
    /// A harness client (or give `board`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client: Option<String>,
    /// A board (or give `client`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub board: Option<String>,
    /// How long each frame is held.
    #[serde(with = "duration")]
    #[schemars(with = "DurationText")]
    pub by: Duration,
    /// Up to this much more or less, drawn per frame from the scenario's seed.
    #[serde(default, with = "duration", skip_serializing_if = "Duration::is_zero")]
    #[schemars(with = "DurationText")]
    pub jitter: Duration,
    /// How long the delay lasts (default: until the end).
    #[serde(
        rename = "for",
        default,
        with = "duration::opt",
        skip_serializing_if = "Option::is_none"
    )]
    #[schemars(rename = "for", with = "Option<DurationText>")]
    pub duration: Option<Duration>,
}

impl StepKind for Delay {
    const NAME: &'static str = "delay";

    fn role(&self) -> Role<'_> {
        Role::Stimulus
    }

    fn check(&self, checks: &mut Checks<'_>) {
        checks.fault_target(self.client.as_deref(), self.board.as_deref());
        checks.duration("by", self.by);
        if self.jitter > self.by {
            checks.field(
                "jitter",
                "`jitter` is larger than `by`",
                "a frame cannot leave before it arrived: keep jitter ≤ by",
            );
        }
    }

    fn needs(&self) -> Needs<'_> {
        Needs::NOTHING
    }

    async fn run<S: Scene>(&self, scene: &mut S) -> Result<(), StepError> {
        let client = fault::target_client_id(scene, &self.client, &self.board)?;
        let until = self.duration.map(|lasts| Instant::now() + lasts);
        scene.faults().delay(&client, self.by, self.jitter, until);
        let lasting = self.duration.map_or("until the end".into(), |lasts| {
            format!("for {}", humantime::format_duration(lasts))
        });
        fault::record(
            scene,
            Self::NAME,
            &client,
            format!(
                "by {} ± {} {lasting}",
                humantime::format_duration(self.by),
                humantime::format_duration(self.jitter)
            ),
        );
        if let Some(ends) = until {
            scene.record_at(ends, fault::fault_event(Self::NAME, &client, "ended".into()));
        }
        Ok(())
    }
}
