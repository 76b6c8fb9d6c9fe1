//! hil's own names for the reason codes of CONNACK and SUBACK, so that what a trace,
//! a snapshot or a verdict says does not change when the MQTT library does. Written in
//! the MQTT 5 specification's words (3.1.1's codes map onto them).

use std::fmt;

use serde::{Deserialize, Serialize};

/// What a CONNACK answered (MQTT 3.1.1 §3.2.2.3, MQTT 5 §3.2.2.2).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ConnackCode {
    Success,
    UnspecifiedError,
    MalformedPacket,
    ProtocolError,
    ImplementationSpecificError,
    UnsupportedProtocolVersion,
    ClientIdentifierNotValid,
    BadUserNameOrPassword,
    NotAuthorized,
    ServerUnavailable,
    ServerBusy,
    Banned,
    BadAuthenticationMethod,
    TopicNameInvalid,
    PacketTooLarge,
    QuotaExceeded,
    PayloadFormatInvalid,
    RetainNotSupported,
    QosNotSupported,
    UseAnotherServer,
    ServerMoved,
    ConnectionRateExceeded,
}

impl ConnackCode {
    pub fn is_success(self) -> bool {
        self == ConnackCode::Success
    }
}

/// What a SUBACK answered for one filter (MQTT 3.1.1 §3.9.3, MQTT 5 §3.9.3).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SubackCode {
    GrantedQos0,
    GrantedQos1,
    GrantedQos2,
    /// 0x80: 3.1.1's only refusal.
    UnspecifiedError,
    ImplementationSpecificError,
    NotAuthorized,
    TopicFilterInvalid,
    PacketIdentifierInUse,
    QuotaExceeded,
    SharedSubscriptionsNotSupported,
    SubscriptionIdentifiersNotSupported,
    WildcardSubscriptionsNotSupported,
}

impl SubackCode {
    pub fn granted(qos: u8) -> SubackCode {
        match qos {
            0 => SubackCode::GrantedQos0,
            1 => SubackCode::GrantedQos1,
            _ => SubackCode::GrantedQos2,
        }
    }

    pub fn is_granted(self) -> bool {
        matches!(
            self,
            SubackCode::GrantedQos0 | SubackCode::GrantedQos1 | SubackCode::GrantedQos2
        )
    }
}

/// The code as the trace writes it (`success`, `granted_qos1`, `not_authorized`).
fn snake_case<T: Serialize>(code: &T, f: &mut fmt::Formatter<'_>) -> fmt::Result {
    match serde_json::to_value(code) {
        Ok(serde_json::Value::String(name)) => f.write_str(&name),
        _ => Err(fmt::Error),
    }
}

impl fmt::Display for ConnackCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        snake_case(self, f)
    }
}

impl fmt::Display for SubackCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        snake_case(self, f)
    }
}
