//! hil: a hardware-in-the-loop test harness for MQTT devices.
//!
//! The library does the work; the `hil` binary is a thin command line over it.
//! See ARCHITECTURE.md for the map.

pub mod bench;
pub mod broker;
pub mod engine;
pub mod exit;
pub mod scenario;
pub mod tap;
pub mod trace;
