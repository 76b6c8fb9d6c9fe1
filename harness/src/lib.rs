//! hil: a hardware-in-the-loop test harness for MQTT devices.
//!
//! The library does the work; the `hil` binary is a thin command line over it.
//! See ARCHITECTURE.md for the map.

pub mod bench;
pub mod board;
pub mod broker;
pub mod chip;
pub mod config;
pub mod engine;
pub mod exit;
pub mod expect;
pub mod explore;
pub mod flash;
pub mod fuzz;
pub mod image;
pub mod labgrid;
pub mod login;
pub mod namespace;
pub mod pcap;
pub mod port;
pub mod record;
pub mod report;
pub mod runner;
pub mod scenario;
pub mod seed;
pub mod snapshot;
pub mod spare_ports;
pub mod steps;
pub mod tap;
pub mod trace;
pub mod venv;
