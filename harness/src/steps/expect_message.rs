use std::time::Duration;

use regex::Regex;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::duration::{self, DurationText};
use super::{Checks, Needs, Role, Scene, StepError, StepKind, Window};
use crate::expect::{debounce_hint, MessageQuery, PayloadMatch, SeenPublish};

/// After a failed wait, how long to keep looking for a late arrival (at most `within`).
pub const LATE_ARRIVAL_GRACE: Duration = Duration::from_millis(500);

/// A message is published (`from`: by whom) or delivered (`to`: a client or board that
/// must receive it); `count`: at least this many. Give at most one of `payload`,
/// `payload_regex`, `payload_json`.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ExpectMessage {
    /// Topic filter; `+` and `#` allowed.
    pub topic: String,
    /// The exact payload.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub payload: Option<String>,
    /// A pattern the payload matches (Rust regex syntax).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub payload_regex: Option<String>,
    /// A JSON value (or a string holding JSON) that the payload must contain (subset match).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub payload_json: Option<serde_json::Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub qos: Option<u8>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retain: Option<bool>,
    /// The client or board that published it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub from: Option<String>,
    /// A client or board that must receive it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub to: Option<String>,
    /// Deadline (default 1s).
    #[serde(
        default = "duration::default_within",
        with = "duration",
        skip_serializing_if = "duration::is_default_within"
    )]
    #[schemars(with = "DurationText")]
    pub within: Duration,
    /// How many matching messages must arrive (default 1).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub count: Option<usize>,
}

impl ExpectMessage {
    fn payload_match(&self) -> Result<PayloadMatch, StepError> {
        let invalid = |e: String| StepError::Invalid(e);
        Ok(
            match (&self.payload, &self.payload_regex, &self.payload_json) {
                (Some(text), _, _) => PayloadMatch::Exact(text.clone()),
                (_, Some(regex), _) => {
                    PayloadMatch::Regex(Regex::new(regex).map_err(|e| invalid(e.to_string()))?)
                }
                (_, _, Some(serde_json::Value::String(text))) => PayloadMatch::Json(
                    serde_json::from_str(text).map_err(|e| invalid(e.to_string()))?,
                ),
                (_, _, Some(value)) => PayloadMatch::Json(value.clone()),
                (None, None, None) => PayloadMatch::Any,
            },
        )
    }
}

impl StepKind for ExpectMessage {
    const NAME: &'static str = "expect_message";

    fn role(&self) -> Role<'_> {
        Role::Expectation
    }

    fn check(&self, checks: &mut Checks<'_>) {
        checks.filter(&self.topic);
        let matchers = [
            self.payload.is_some(),
            self.payload_regex.is_some(),
            self.payload_json.is_some(),
        ];
        if matchers.iter().filter(|given| **given).count() > 1 {
            checks.problem(
                "more than one of `payload`, `payload_regex`, `payload_json`",
                "keep one: they are different ways to say what the payload must be",
            );
        }
        if let Some(pattern) = &self.payload_regex {
            checks.regex("payload_regex", pattern);
        }
        if let Some(serde_json::Value::String(text)) = &self.payload_json {
            if let Err(e) = serde_json::from_str::<serde_json::Value>(text) {
                checks.field(
                    "payload_json",
                    format!("`payload_json` is not valid JSON: {e}"),
                    "write the JSON value, e.g. `payload_json: {state: on}`",
                );
            }
        }
        if let Some(qos) = self.qos {
            checks.qos(qos);
        }
        for (field, name) in [("from", &self.from), ("to", &self.to)] {
            if let Some(name) = name {
                checks.actor(field, name);
            }
        }
        if self.count == Some(0) {
            checks.field(
                "count",
                "`count: 0` expects nothing",
                "use `expect_no_message` to say that nothing arrives",
            );
        }
        checks.duration("within", self.within);
    }

    fn deadline(&self) -> Option<Duration> {
        Some(self.within)
    }

    fn needs(&self) -> Needs<'_> {
        Needs {
            subscription: self.to.as_deref().map(|to| (to, self.topic.as_str())),
            simulated_board: None,
        }
    }

    async fn run<S: Scene>(&self, scene: &mut S) -> Result<(), StepError> {
        let query = MessageQuery {
            filter: self.topic.clone(),
            payload: self.payload_match()?,
            qos: self.qos,
            retain: self.retain,
            from: self.from.as_ref().map(|name| scene.client_id(name)),
            to: self.to.as_ref().map(|name| scene.client_id(name)),
        };
        let count = self.count.unwrap_or(1);
        let deadline_us = scene.now_us() + self.within.as_micros() as u64;
        let mut watch = scene.watch(Window::SinceStimulus);
        let mut counter = query.counter();
        let mut complete = |event: &_| counter.see(event) && counter.count >= count;
        if watch.until(self.within, &mut complete).await {
            return Ok(());
        }
        let origin = watch.origin_us();
        let in_time = watch.seen().len();
        let seen = counter.count;
        let mut misses = query.near_misses(watch.seen(), origin);
        // A message that is merely late deserves to be told apart from a missing one.
        let grace = self.within.min(LATE_ARRIVAL_GRACE);
        let mut complete = |event: &_| counter.see(event) && counter.count >= count;
        if watch.until(grace, &mut complete).await {
            // The event that completed the count is the last one watched.
            if let Some(arrival) = watch.seen().last().and_then(|e| SeenPublish::of(e)) {
                misses.push(format!(
                    "arrived after the deadline: {}, about {:.1} ms late",
                    arrival.describe(origin),
                    arrival.event.t_us.saturating_sub(deadline_us) as f64 / 1000.0,
                ));
            }
        }
        let want = if count == 1 {
            query.describe()
        } else {
            format!("{count} × {}", query.describe())
        };
        let in_time = &watch.seen()[..in_time];
        let publishes = in_time
            .iter()
            .filter(|e| SeenPublish::of(e).is_some())
            .count();
        misses.extend(debounce_hint(in_time, seen));
        Err(StepError::with_near_misses(
            format!("{want} within {}", humantime::format_duration(self.within)),
            format!(
                "{seen} matching; {publishes} publishes seen since the step began (waited {}, then {} more for late arrivals)",
                humantime::format_duration(self.within),
                humantime::format_duration(grace)
            ),
            misses,
        ))
    }
}
