//! `hil broker`: the embedded broker with its tap, on its own.

use std::io::Write;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::PathBuf;

use hil::broker::{find_engine_exe, Broker, BrokerConfig, DEFAULT_MAX_PACKET_SIZE};
use hil::exit::Exit;
use hil::login::Credentials;
use hil::trace::{Trace, TraceOptions};

use super::{stop_signal, Failure};

/// Run the embedded MQTT broker (3.1.1 and 5 on one port) with its wire tap.
///
/// Prints one line `mqtt://HOST:PORT` on stdout as soon as it accepts connections, then
/// serves until Ctrl-C or SIGTERM, which stop it cleanly (exit 0) with the trace complete.
///
/// It listens on 127.0.0.1 unless --bind says otherwise. Beyond loopback, clients must log
/// in: with --auth USER:PASS, or with credentials generated and printed once on stderr;
/// --insecure-open lets anyone in instead.
///
/// Examples:
///   hil broker --port 1883 --trace broker.jsonl --pcap broker.pcap
///   hil broker --bind 0.0.0.0 --auth bench:s3cret
///   hil broker --deny-subscribe 'secret/#'
#[derive(Debug, clap::Args)]
#[command(verbatim_doc_comment)]
pub struct Args {
    /// Port to listen on; 0 picks a free one.
    #[arg(long, default_value_t = 1883)]
    port: u16,
    /// Address to listen on.
    #[arg(long, default_value_t = IpAddr::V4(Ipv4Addr::LOCALHOST))]
    bind: IpAddr,
    /// Write every packet of every client to FILE as JSON Lines.
    #[arg(long, value_name = "FILE")]
    trace: Option<PathBuf>,
    /// Also write the traffic as a pcap file (Wireshark, tshark -Y mqtt); passwords blanked.
    #[arg(long, value_name = "FILE")]
    pcap: Option<PathBuf>,
    /// Largest MQTT packet accepted, in bytes; a larger one closes its connection.
    #[arg(long, default_value_t = DEFAULT_MAX_PACKET_SIZE, value_name = "BYTES")]
    max_packet_size: usize,
    /// Clients must log in as USER with PASS.
    #[arg(long, value_name = "USER:PASS", value_parser = super::parse_login)]
    auth: Option<Credentials>,
    /// Beyond loopback, let clients in without a login.
    #[arg(long, conflicts_with = "auth")]
    insecure_open: bool,
    /// Refuse subscriptions to filters FILTER matches (SUBACK 0x80 in MQTT 3.1.1, 0x87 in
    /// MQTT 5), to test how a device takes a refusal. Repeatable.
    #[arg(long, value_name = "FILTER")]
    deny_subscribe: Vec<String>,
}

/// A login of the broker's own, for a bind beyond loopback without --auth or
/// --insecure-open; `None` when clients log in as given, or not at all.
fn generated_login(args: &Args) -> Result<Option<Credentials>, Failure> {
    if args.auth.is_some() || args.insecure_open || args.bind.is_loopback() {
        return Ok(None);
    }
    Ok(Some(Credentials {
        username: "hil".into(),
        password: generated_password()?,
    }))
}

/// Letters and digits from the operating system's random source: this password guards a
/// broker open to the network, so it must not be guessable from a seed.
fn generated_password() -> Result<String, Failure> {
    const ALPHABET: &[u8; 62] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
    const LENGTH: usize = 20;
    // 248 is the largest multiple of 62 below 256: bytes from it up are skipped, so that
    // every character is equally likely.
    const FAIR_BELOW: u8 = 248;
    let mut password = String::with_capacity(LENGTH);
    let mut bytes = [0u8; 2 * LENGTH];
    while password.len() < LENGTH {
        getrandom::fill(&mut bytes).map_err(|e| {
            Failure::new(
                Exit::Infrastructure,
                format!("cannot generate a login password: {e}; choose one with --auth USER:PASS"),
            )
        })?;
        let wanted = LENGTH - password.len();
        password.extend(
            bytes
                .iter()
                .filter(|byte| **byte < FAIR_BELOW)
                .take(wanted)
                .map(|byte| char::from(ALPHABET[usize::from(*byte) % ALPHABET.len()])),
        );
    }
    Ok(password)
}

pub async fn run(args: Args) -> Result<Exit, Failure> {
    // Installs the handlers first: a signal during the start-up stops the broker cleanly
    // once it is up, instead of killing the process with the trace unfinished.
    let stop = stop_signal();
    let trace = Trace::start(TraceOptions {
        file: args.trace.as_deref(),
        keep_in_memory: false,
    })?;
    let generated = generated_login(&args)?;
    let config = BrokerConfig {
        listen: SocketAddr::new(args.bind, args.port),
        max_packet_size: args.max_packet_size,
        engine_exe: find_engine_exe()?,
        login: args.auth.clone().or_else(|| generated.clone()),
        capture: args.pcap,
        external: None,
        namespace: None,
        engine_listeners: hil::tap::ENGINE_LISTENERS,
        warm: None,
    };
    let broker = Broker::start(config, trace.clone()).await?;
    for filter in &args.deny_subscribe {
        broker.faults().deny_subscribe(filter);
    }
    // Only now, bound: a broker that failed to start has no login worth saying.
    if let Some(login) = &generated {
        eprintln!(
            "hil broker: listening beyond loopback; clients log in as user {:?} with password {:?} (choose with --auth, or --insecure-open for none)",
            login.username, login.password
        );
    }
    {
        let mut stdout = std::io::stdout().lock();
        let _ = writeln!(stdout, "{}", broker.url());
        let _ = stdout.flush();
    }
    let stop = stop.await;
    broker.stop().await?;
    trace.finish()?;
    stop.map(|_| Exit::Success)
}

/// Arguments of the internal engine process.
#[derive(Debug, clap::Args)]
pub struct EngineArgs {
    #[arg(long, required = true)]
    v311: Vec<SocketAddr>,
    #[arg(long, required = true)]
    v5: Vec<SocketAddr>,
    #[arg(long)]
    max_packet_size: usize,
}

pub fn engine(args: &EngineArgs) -> Exit {
    match hil::engine::run(&args.v311, &args.v5, args.max_packet_size) {
        Ok(()) => Exit::Success,
        Err(message) => {
            eprintln!("hil broker engine: {message}");
            Exit::Infrastructure
        }
    }
}

#[cfg(test)]
mod tests {
    use super::generated_password;

    #[test]
    fn generated_passwords_are_twenty_letters_and_digits_and_never_repeat() {
        let first = generated_password().unwrap();
        assert_eq!(first.len(), 20);
        assert!(first.chars().all(|c| c.is_ascii_alphanumeric()), "{first}");
        assert_ne!(first, generated_password().unwrap());
    }
}
