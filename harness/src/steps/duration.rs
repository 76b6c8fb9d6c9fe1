//! Durations are written the humantime way: `500ms`, `2s`, `1m 30s`, `1.5s`, `2 seconds`.
//! Used with `#[serde(with = "duration")]`; [`opt`] for optional ones.

use std::time::Duration;

use schemars::JsonSchema;
use serde::{Deserialize, Deserializer, Serializer};

pub fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Duration, D::Error> {
    let text = String::deserialize(deserializer)?;
    parse(&text).map_err(serde::de::Error::custom)
}

pub fn serialize<S: Serializer>(value: &Duration, serializer: S) -> Result<S::Ok, S::Error> {
    serializer.serialize_str(&humantime::format_duration(*value).to_string())
}

/// A duration as a scenario writes it.
pub fn parse(text: &str) -> Result<Duration, String> {
    humantime::parse_duration(text)
        .map_err(|e| format!("bad duration {text:?}: {e} (write it like 500ms, 2s or 1m 30s)"))
}

/// `Option<Duration>` fields; leave them out with `skip_serializing_if = "Option::is_none"`.
pub mod opt {
    use std::time::Duration;

    use serde::{Deserializer, Serializer};

    pub fn deserialize<'de, D: Deserializer<'de>>(
        deserializer: D,
    ) -> Result<Option<Duration>, D::Error> {
        super::deserialize(deserializer).map(Some)
    }

    pub fn serialize<S: Serializer>(
        value: &Option<Duration>,
        serializer: S,
    ) -> Result<S::Ok, S::Error> {
        match value {
            Some(value) => super::serialize(value, serializer),
            None => serializer.serialize_none(),
        }
    }
}

/// How durations are written, for the JSON Schema.
pub struct DurationText;

impl JsonSchema for DurationText {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "Duration".into()
    }

    fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
        schemars::json_schema!({
            "type": "string",
            "description": "A duration: 500ms, 2s, 1m 30s, 1.5s, 100us, 2 seconds",
            "pattern": r"^\s*[0-9]+(\.[0-9]+)?\s*[a-zµ]+(\s*[0-9]+(\.[0-9]+)?\s*[a-zµ]+)*\s*$"
        })
    }
}

/// Default deadline of an `expect_*` step without `within`.
pub const DEFAULT_WITHIN: Duration = Duration::from_secs(1);

/// For `#[serde(default = "…")]`.
pub fn default_within() -> Duration {
    DEFAULT_WITHIN
}

/// For `skip_serializing_if`: a `within` left at its default is not written.
pub fn is_default_within(within: &Duration) -> bool {
    *within == DEFAULT_WITHIN
}
