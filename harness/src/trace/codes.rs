//! hil's own names for the reason codes of CONNACK, SUBACK, PUBACK / PUBREC and
//! DISCONNECT, so that what a trace,
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

/// What a PUBACK or PUBREC answered (MQTT 5 §3.4.2.1, §3.5.2.1). MQTT 3.1.1 acks carry
/// no code: they are `success`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PubackCode {
    #[default]
    Success,
    /// Accepted, but nobody subscribes to the topic (still a success in MQTT 5).
    NoMatchingSubscribers,
    UnspecifiedError,
    ImplementationSpecificError,
    NotAuthorized,
    TopicNameInvalid,
    PacketIdentifierInUse,
    QuotaExceeded,
    PayloadFormatInvalid,
}

impl PubackCode {
    /// Plain `success`, which the trace leaves unwritten.
    pub fn is_success(&self) -> bool {
        *self == PubackCode::Success
    }
}

/// Why a DISCONNECT was sent (MQTT 5 §3.14.2.1). An MQTT 3.1.1 DISCONNECT carries no
/// code: it is a `normal_disconnection`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DisconnectCode {
    #[default]
    NormalDisconnection,
    /// The client leaves and asks the broker to publish its will all the same.
    DisconnectWithWillMessage,
    UnspecifiedError,
    MalformedPacket,
    ProtocolError,
    ImplementationSpecificError,
    NotAuthorized,
    ServerBusy,
    ServerShuttingDown,
    KeepAliveTimeout,
    SessionTakenOver,
    TopicFilterInvalid,
    TopicNameInvalid,
    ReceiveMaximumExceeded,
    TopicAliasInvalid,
    PacketTooLarge,
    MessageRateTooHigh,
    QuotaExceeded,
    AdministrativeAction,
    PayloadFormatInvalid,
    RetainNotSupported,
    QosNotSupported,
    UseAnotherServer,
    ServerMoved,
    SharedSubscriptionsNotSupported,
    ConnectionRateExceeded,
    MaximumConnectTime,
    SubscriptionIdentifiersNotSupported,
    WildcardSubscriptionsNotSupported,
}

impl DisconnectCode {
    /// A plain goodbye, which the trace leaves unwritten.
    pub fn is_normal(&self) -> bool {
        *self == DisconnectCode::NormalDisconnection
    }
}

/// The code as the trace writes it (`success`, `granted_qos1`, `not_authorized`).
fn snake_case<T: Serialize>(code: &T, f: &mut fmt::Formatter<'_>) -> fmt::Result {
    match serde_json::to_value(code) {
        Ok(serde_json::Value::String(name)) => f.write_str(&name),
        _ => Err(fmt::Error),
    }
}

/// Each code prints as the trace writes it.
macro_rules! display_as_written {
    ($($code:ty),+) => {$(
        impl fmt::Display for $code {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                snake_case(self, f)
            }
        }
    )+};
}

display_as_written!(ConnackCode, SubackCode, PubackCode, DisconnectCode);
