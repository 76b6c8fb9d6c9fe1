//! The broker engine: rumqttd, run by `hil broker-engine` in a child process of the
//! [`crate::broker::Broker`] that owns it.

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
    for &addr in v311.iter().chain(v5) {
        wait_until_listening(addr)?;
        // Another process can take a port between the check above and rumqttd's bind;
        // rumqttd only logs its failure, and the probe's connection reached the other
        // listener. Served on, this broker's clients would talk to that one.
        if !listener_is_ours(addr) {
            println!("{BIND_FAILED_PREFIX} {addr}: another process listens there");
            return Err(format!("another process listens on {addr}"));
        }
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

/// Whether the socket listening on `addr` is one of this process's. Linux says so in
/// `/proc`: the listening socket's inode in `/proc/net/tcp` (or `tcp6`) is one of ours
/// when a descriptor in `/proc/self/fd` links to it. Where `/proc` cannot tell, the
/// probe's answer stands.
fn listener_is_ours(addr: SocketAddr) -> bool {
    let (table, local) = match addr {
        SocketAddr::V4(v4) => (
            "/proc/net/tcp",
            format!(
                "{:08X}:{:04X}",
                u32::from_ne_bytes(v4.ip().octets()),
                v4.port()
            ),
        ),
        SocketAddr::V6(v6) => {
            let words: String = v6
                .ip()
                .octets()
                .chunks(4)
                .map(|word| format!("{:08X}", u32::from_ne_bytes(word.try_into().unwrap())))
                .collect();
            ("/proc/net/tcp6", format!("{words}:{:04X}", v6.port()))
        }
    };
    let (Ok(table), Ok(fds)) = (
        std::fs::read_to_string(table),
        std::fs::read_dir("/proc/self/fd"),
    ) else {
        return true;
    };
    let ours: std::collections::HashSet<String> = fds
        .filter_map(|fd| std::fs::read_link(fd.ok()?.path()).ok())
        .filter_map(|link| {
            let link = link.to_str()?;
            Some(
                link.strip_prefix("socket:[")?
                    .strip_suffix(']')?
                    .to_string(),
            )
        })
        .collect();
    const LISTEN: &str = "0A";
    table.lines().skip(1).any(|line| {
        let fields: Vec<&str> = line.split_whitespace().collect();
        fields.len() > 9 && fields[1] == local && fields[3] == LISTEN && ours.contains(fields[9])
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_listener_is_told_from_another_processs() {
        let mine = TcpListener::bind("127.0.0.1:0").unwrap();
        assert!(listener_is_ours(mine.local_addr().unwrap()));
        let mine6 = TcpListener::bind("[::1]:0").unwrap();
        assert!(listener_is_ours(mine6.local_addr().unwrap()));

        let mut theirs = std::process::Command::new("python3")
            .args([
                "-c",
                "import socket,sys; s=socket.socket(); s.bind(('127.0.0.1',0)); s.listen(); \
                 print(s.getsockname()[1], flush=True); sys.stdin.read()",
            ])
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .spawn()
            .expect("python3 runs");
        let mut port = String::new();
        std::io::BufRead::read_line(
            &mut std::io::BufReader::new(theirs.stdout.take().expect("piped")),
            &mut port,
        )
        .unwrap();
        let port: u16 = port.trim().parse().expect("a port number");
        let answer = listener_is_ours(SocketAddr::from(([127, 0, 0, 1], port)));
        drop(theirs.stdin.take());
        theirs.wait().unwrap();
        assert!(!answer, "python's listener on {port} is not this process's");
    }
}
