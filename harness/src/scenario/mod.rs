//! Scenario files: the format (`model`), loading with located errors (`load`, `error`),
//! validation (`validate`) and the JSON Schema.

mod error;
mod load;
mod locate;
mod model;
mod validate;

pub use error::ScenarioError;
pub use load::{discover, json_schema, load, parse, to_yaml, ScenarioFile, MAX_FILE_BYTES};
pub use model::*;
pub use validate::warnings;
