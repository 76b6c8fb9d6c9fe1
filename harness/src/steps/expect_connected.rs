use std::future::Future;
use std::time::Duration;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::duration::{self, DurationText};
use super::{Checks, Needs, Role, Scene, StepError, StepKind, Window};
use crate::expect::ConnectionTracker;

/// A client or board is connected (a board: and subscribed, so it can hear a command).
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ExpectConnected {
    /// A harness client or a board (a board is an MQTT client too).
    pub client: String,
    /// Deadline (default 1s).
    #[serde(
        default = "duration::default_within",
        with = "duration",
        skip_serializing_if = "duration::is_default_within"
    )]
    #[schemars(with = "DurationText")]
    pub within: Duration,
}

impl StepKind for ExpectConnected {
    const NAME: &'static str = "expect_connected";

    fn role(&self) -> Role<'_> {
        Role::Expectation
    }

    fn check(&self, checks: &mut Checks<'_>) {
        checks.actor("client", &self.client);
        checks.duration("within", self.within);
    }

    fn deadline(&self) -> Option<Duration> {
        Some(self.within)
    }

    fn needs(&self) -> Needs<'_> {
        Needs::NOTHING
    }

    async fn run<S: Scene>(&self, scene: &mut S) -> Result<(), StepError> {
        let must_subscribe = scene.is_board(&self.client);
        let connected = connection_settles(scene, &self.client, self.within, |tracker| {
            tracker.is_connected(must_subscribe)
        });
        if connected.await {
            return Ok(());
        }
        Err(StepError::failed(
            format!("{} to be connected", self.client),
            format!(
                "it was not connected within {}",
                humantime::format_duration(self.within)
            ),
        ))
    }
}

/// Whether an actor's connection state, read from the whole trace, comes to satisfy
/// `holds` within `within`. The future holds nothing of the scene but its trace.
pub(super) fn connection_settles<S: Scene>(
    scene: &S,
    actor: &str,
    within: Duration,
    holds: impl Fn(&ConnectionTracker) -> bool + Send + Sync,
) -> impl Future<Output = bool> + Send {
    let client_id = scene.client_id(actor);
    let mut watch = scene.watch(Window::WholeTrace);
    async move {
        let mut tracker = ConnectionTracker::new(&client_id);
        watch
            .until_settled(within, |batch| {
                batch.iter().for_each(|event| tracker.see(event));
                holds(&tracker)
            })
            .await
    }
}
