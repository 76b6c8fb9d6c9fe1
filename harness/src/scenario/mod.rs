//! Scenario files: the format, loading with located errors, validation, JSON Schema.

mod model;

pub use model::*;
