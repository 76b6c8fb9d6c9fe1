//! What a scenario file says, as types: its actors and settings. The steps are in
//! `crate::steps`, one file each.

use std::path::PathBuf;
use std::time::Duration;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::steps::duration::{self, DurationText};
pub use crate::steps::{Location, Step};

/// A validated scenario, ready to run.
#[derive(Debug, Clone)]
pub struct Scenario {
    pub name: String,
    pub path: PathBuf,
    /// The whole scenario's deadline.
    pub timeout: Duration,
    /// Compare the normalized trace against `snapshots/<name>.snap`.
    pub snapshot: bool,
    /// Labels for picking suites (`hil run --tag`, `--skip-tag`).
    pub tags: Vec<String>,
    pub boards: Vec<BoardDecl>,
    pub clients: Vec<ClientDecl>,
    pub steps: Vec<Step>,
}

/// A board the scenario needs. `profile: sim` is the simulated board; other profiles
/// name real boards mapped with `hil run --board ROLE=BENCH_BOARD`.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct BoardSpec {
    pub profile: String,
    /// Firmware topic, default `living_room_lights`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub topic: Option<String>,
    /// MQTT client id, default the board's name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_id: Option<String>,
    /// Switch debounce, default 30 ms.
    #[serde(
        default,
        with = "duration::opt",
        skip_serializing_if = "Option::is_none"
    )]
    #[schemars(with = "Option<DurationText>")]
    pub debounce: Option<Duration>,
    /// Firmware version the simulated board reports, default the firmware's own.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
}

impl BoardSpec {
    /// A board of `profile` with every setting at its default.
    pub fn of_profile(profile: impl Into<String>) -> BoardSpec {
        BoardSpec {
            profile: profile.into(),
            topic: None,
            client_id: None,
            debounce: None,
            version: None,
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct BoardDecl {
    pub name: String,
    pub spec: BoardSpec,
    pub location: Location,
}

impl BoardDecl {
    /// What the board connects as: its `client_id`, else its name.
    pub fn client_id(&self) -> String {
        self.spec
            .client_id
            .clone()
            .unwrap_or_else(|| self.name.clone())
    }
}

/// A harness-owned MQTT client (the phone, a wall display...).
#[derive(Debug, Clone, PartialEq, Default, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ClientSpec {
    /// 4 (MQTT 3.1.1, default) or 5.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub protocol: Option<u8>,
    /// Client id, default the client's name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_id: Option<String>,
    /// Connect before step 1 (default true); `false` leaves it to a `connect` step.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub connect: Option<bool>,
    /// Start a clean session (default true); `false` asks the broker to keep the session,
    /// so unacknowledged messages are resent after a reconnect.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub clean: Option<bool>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct ClientDecl {
    pub name: String,
    pub spec: ClientSpec,
    pub location: Location,
}

impl ClientDecl {
    /// What the client connects as: its `client_id`, else its name.
    pub fn client_id(&self) -> String {
        self.spec
            .client_id
            .clone()
            .unwrap_or_else(|| self.name.clone())
    }
}

/// A file-system safe name for a scenario: its output folder and snapshot file.
pub fn slug(name: &str) -> String {
    let mut slug = String::new();
    for c in name.chars() {
        if c.is_ascii_alphanumeric() {
            slug.push(c.to_ascii_lowercase());
        } else if !slug.ends_with('-') {
            slug.push('-');
        }
    }
    slug.trim_matches('-').to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slugs_are_lowercase_words_joined_by_dashes() {
        assert_eq!(
            slug("Phone turns the lights ON!"),
            "phone-turns-the-lights-on"
        );
        assert_eq!(slug("  QoS 1 / delivery  "), "qos-1-delivery");
    }
}
