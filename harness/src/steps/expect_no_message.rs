use std::time::Duration;

use bytes::Bytes;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::duration::{self, DurationText};
use super::{Checks, Needs, Role, Scene, StepError, StepKind, Window};
use crate::expect::{MessageQuery, PayloadMatch, SeenPublish};
use crate::trace::Payload;

/// Nothing matching is published during `for` (it watches only the time it covers).
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ExpectNoMessage {
    /// Topic filter; `+` and `#` allowed.
    pub topic: String,
    /// Only messages from this client or board count.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub from: Option<String>,
    /// How long nothing may arrive.
    #[serde(rename = "for", with = "duration")]
    #[schemars(rename = "for", with = "DurationText")]
    pub duration: Duration,
}

impl StepKind for ExpectNoMessage {
    const NAME: &'static str = "expect_no_message";

    fn role(&self) -> Role<'_> {
        Role::Expectation
    }

    fn check(&self, checks: &mut Checks<'_>) {
        checks.filter(&self.topic);
        if let Some(from) = &self.from {
            checks.actor("from", from);
        }
        checks.duration("for", self.duration);
    }

    fn deadline(&self) -> Option<Duration> {
        Some(self.duration)
    }

    fn needs(&self) -> Needs<'_> {
        Needs::NOTHING
    }

    async fn run<S: Scene>(&self, scene: &mut S) -> Result<(), StepError> {
        let query = MessageQuery {
            filter: self.topic.clone(),
            payload: PayloadMatch::Any,
            qos: None,
            retain: None,
            from: self.from.as_ref().map(|name| scene.client_id(name)),
            to: None,
        };
        let mut watch = scene.watch(Window::FromNow);
        let mut counter = query.counter();
        if !watch.until(self.duration, |event| counter.see(event)).await {
            return Ok(());
        }
        let origin = watch.origin_us();
        let offending = watch.seen().last().and_then(|e| SeenPublish::of(e));
        let what = offending.map_or_else(String::new, |publish| {
            format!(
                "{} {} from {} ",
                publish.topic,
                Payload(Bytes::copy_from_slice(publish.payload)),
                publish.client.unwrap_or("?")
            )
        });
        let after = offending.map_or(0, |p| p.event.t_us.saturating_sub(origin));
        Err(StepError::failed(
            format!(
                "no {} for {}",
                query.describe_subject(),
                humantime::format_duration(self.duration)
            ),
            format!("got {what}after {:.1} ms", after as f64 / 1000.0),
        ))
    }
}
