//! The broker engine: rumqttd, run by `hil broker-engine` in a child process of the
//! [`crate::broker::Broker`] that owns it.

mod listeners;

use std::io::Write;
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::time::{Duration, Instant};

use rumqttd::{Config, ConnectionSettings, RouterConfig, ServerSettings};

/// Printed on stdout once both listeners accept connections.
pub const READY_LINE: &str = "ready";
/// Printed on stdout when a listener's port is taken.
pub const BIND_FAILED_PREFIX: &str = "bind-failed";
const LISTEN_TIMEOUT: Duration = Duration::from_secs(5);

/// Runs rumqttd with listeners on `v311` and `v5` until stdin closes. Returns only on
/// failure.
pub fn run(v311: &[SocketAddr], v5: &[SocketAddr], max_packet_size: usize) -> Result<(), String> {
    // Find a taken port now, while it can still be reported; rumqttd would only log it.
    for &addr in v311.iter().chain(v5) {
        if let Err(error) = TcpListener::bind(addr) {
            println!("{BIND_FAILED_PREFIX} {addr}: {error}");
            return Err(format!("cannot listen on {addr}: {error}"));
        }
    }
    let mut broker = rumqttd::Broker::new(config(v311, v5, max_packet_size));
    std::thread::Builder::new()
        .name("rumqttd".into())
        .spawn(move || {
            let result = broker.start();
            eprintln!("hil broker engine: rumqttd stopped: {result:?}");
            std::process::exit(3);
        })
        .map_err(|e| e.to_string())?;
    let addrs: Vec<SocketAddr> = v311.iter().chain(v5).copied().collect();
    for &addr in &addrs {
        wait_until_listening(addr)?;
    }
    // Another process can take a port between the check above and rumqttd's bind;
    // rumqttd only logs its failure, and the probe's connection reached the other
    // listener. Served on, this broker's clients would talk to that one. Where the kernel
    // cannot be asked, the probes' answer stands.
    match listeners::not_ours(&addrs) {
        Ok(strangers) => {
            if let Some(addr) = strangers.first() {
                println!("{BIND_FAILED_PREFIX} {addr}: another process listens there");
                return Err(format!("another process listens on {addr}"));
            }
        }
        Err(error) => eprintln!("hil broker engine: cannot list listening sockets: {error}"),
    }
    println!("{READY_LINE}");
    std::io::stdout().flush().map_err(|e| e.to_string())?;
    // The owner keeps stdin open for as long as it wants the engine; EOF (the owner
    // stopped or died) ends the engine.
    let _ = std::io::copy(&mut std::io::stdin().lock(), &mut std::io::sink());
    Ok(())
}

fn config(v311: &[SocketAddr], v5: &[SocketAddr], max_packet_size: usize) -> Config {
    let server = |name: &str, listen| ServerSettings {
        name: name.into(),
        listen,
        tls: None,
        next_connection_delay_ms: 0,
        connections: ConnectionSettings {
            // From accept to CONNECT: a fleet powering on at once is served in turn, and a
            // connection dropped for waiting only comes back to wait again.
            connection_timeout_ms: 60_000,
            max_payload_size: max_packet_size,
            max_inflight_count: 100,
            auth: None,
            external_auth: None,
            dynamic_filters: true,
        },
    };
    Config {
        router: RouterConfig {
            max_connections: 20_010,
            max_outgoing_packet_count: 200,
            max_segment_size: 4 * max_packet_size.max(1024 * 1024),
            max_segment_count: 4,
            ..RouterConfig::default()
        },
        v4: Some(listeners("v311", v311, &server)),
        v5: Some(listeners("v5", v5, &server)),
        ..Config::default()
    }
}

fn listeners(
    protocol: &str,
    addrs: &[SocketAddr],
    server: &dyn Fn(&str, SocketAddr) -> ServerSettings,
) -> std::collections::HashMap<String, ServerSettings> {
    addrs
        .iter()
        .enumerate()
        .map(|(i, &addr)| {
            let name = format!("{protocol}-{i}");
            let settings = server(&name, addr);
            (name, settings)
        })
        .collect()
}

/// rumqttd binds inside its own thread and reports nothing, so connect until it answers.
fn wait_until_listening(addr: SocketAddr) -> Result<(), String> {
    let deadline = Instant::now() + LISTEN_TIMEOUT;
    loop {
        if TcpStream::connect_timeout(&addr, Duration::from_millis(100)).is_ok() {
            return Ok(());
        }
        if Instant::now() >= deadline {
            return Err(format!(
                "rumqttd is not listening on {addr} after {}s",
                LISTEN_TIMEOUT.as_secs()
            ));
        }
        std::thread::sleep(Duration::from_millis(1));
    }
}
