//! What the fault steps share: the one actor a fault hits, and its record in the trace.

use super::{Scene, StepError};
use crate::trace::EventBody;

/// The client id of the actor a fault hits: its `client` or its `board` (checking made
/// sure exactly one is given).
pub fn target_client_id<S: Scene>(
    scene: &S,
    client: &Option<String>,
    board: &Option<String>,
) -> Result<String, StepError> {
    match (client, board) {
        (Some(actor), None) | (None, Some(actor)) => Ok(scene.client_id(actor)),
        _ => Err(StepError::Invalid(
            "a fault needs exactly one of `client` or `board`".into(),
        )),
    }
}

/// A fault as the trace records it.
pub fn record<S: Scene>(scene: &S, fault: &str, target: &str, detail: String) {
    scene.record(fault_event(fault, target, detail));
}

pub fn fault_event(fault: &str, target: &str, detail: String) -> EventBody {
    EventBody::Fault {
        fault: fault.into(),
        target: Some(target.to_string()),
        detail,
    }
}
