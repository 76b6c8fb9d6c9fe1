use std::time::Duration;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::duration::{self, DurationText};
use super::{Checks, Needs, Role, Scene, StepError, StepKind, Window};
use crate::expect::SubsequenceMatcher;
use crate::expect::TraceEntry;

/// Partial trace events (maps compared as subsets of events) appear in this order, not
/// necessarily adjacent; an entry's `gap: { min: 200ms, max: 300ms }` bounds the time
/// since the previous entry's event.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ExpectTrace {
    /// Partial events, in order.
    pub events: Vec<TraceEntry>,
    /// Deadline (default 1s).
    #[serde(
        default = "duration::default_within",
        with = "duration",
        skip_serializing_if = "duration::is_default_within"
    )]
    #[schemars(with = "DurationText")]
    pub within: Duration,
}

impl StepKind for ExpectTrace {
    const NAME: &'static str = "expect_trace";

    fn role(&self) -> Role<'_> {
        Role::Expectation
    }

    fn check(&self, checks: &mut Checks<'_>) {
        if self.events.is_empty() {
            checks.field(
                "events",
                "`events` must be a non-empty list of partial events (maps)",
                "e.g. `- { kind: mqtt, packet: publish, topic: living_room_lights }`",
            );
        }
        checks.duration("within", self.within);
    }

    fn deadline(&self) -> Option<Duration> {
        Some(self.within)
    }

    fn needs(&self) -> Needs<'_> {
        Needs::NOTHING
    }

    async fn run<S: Scene>(&self, scene: &mut S) -> Result<(), StepError> {
        let mut watch = scene.watch(Window::SinceStimulus);
        let mut matcher = SubsequenceMatcher::new(&self.events);
        watch.until(self.within, |event| matcher.see(event)).await;
        if matcher.is_complete() {
            return Ok(());
        }
        let observed = match &matcher.gap_miss {
            Some(miss) => format!(
                "entry {} came {} after the one before; expected {} to {}",
                miss.entry + 1,
                humantime::format_duration(Duration::from_millis(miss.measured.as_millis() as u64)),
                humantime::format_duration(miss.gap.min),
                miss.gap.max.map_or("any time later".to_string(), |max| {
                    humantime::format_duration(max).to_string()
                })
            ),
            None => format!(
                "found the first {}; missing from {}",
                matcher.found,
                self.events[matcher.found].to_value()
            ),
        };
        Err(StepError::failed(
            format!("{} trace events in order", self.events.len()),
            observed,
        ))
    }
}
