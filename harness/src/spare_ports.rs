//! Loopback ports for programs that take a port number (the broker engine, ser2net,
//! labgrid's coordinator), picked below the system's ephemeral range.
//!
//! A port found by binding `:0` and letting go can be handed by the kernel to any other
//! socket bound to `:0` (a tap, a client, another test) before the program binds it,
//! and a readiness probe then finds someone else's listener. Ports below the ephemeral
//! range are never handed out that way; one some service holds is found by binding it.

use std::io;
use std::net::TcpListener;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::OnceLock;

/// The lowest port picked.
const FIRST: u32 = 10_000;

/// `count` consecutive ports (wrapping within the range), a block no earlier call of
/// this process got. Each process starts at a random place, so two of them rarely pick
/// alike; whether a port is free is for the program that binds it to find out.
pub fn block(count: usize) -> impl Iterator<Item = u16> {
    let span = ephemeral_range_start().max(FIRST + 1_000) - FIRST;
    let count = count as u32;
    static FIRST_BLOCK: OnceLock<u32> = OnceLock::new();
    static PICKED: AtomicU32 = AtomicU32::new(0);
    let first_block = *FIRST_BLOCK.get_or_init(|| fastrand::u32(0..span));
    let start = (first_block + PICKED.fetch_add(count, Ordering::Relaxed)) % span;
    (0..count).map(move |i| (FIRST + (start + i) % span) as u16)
}

/// One port that nothing on loopback holds right now.
pub fn one() -> io::Result<u16> {
    const TRIES: usize = 64;
    block(TRIES)
        .find(|&port| TcpListener::bind(("127.0.0.1", port)).is_ok())
        .ok_or_else(|| io::Error::other(format!("no free loopback port in {TRIES} tries")))
}

/// The first port the system hands out for `:0`.
fn ephemeral_range_start() -> u32 {
    // Linux says where its range starts; elsewhere it is IANA's dynamic range.
    std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range")
        .ok()
        .and_then(|range| range.split_whitespace().next()?.parse().ok())
        .unwrap_or(49_152)
}
