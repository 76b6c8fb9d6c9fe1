//! `hil broker`: the embedded broker with its tap, on its own.

use std::io::Write;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::PathBuf;

use hil::broker::{find_engine_exe, Broker, BrokerConfig, DEFAULT_MAX_PACKET_SIZE};
use hil::exit::Exit;
use hil::trace::{Trace, TraceOptions};

use super::{stop_signal, Failure};

/// Run the embedded MQTT broker (3.1.1 and 5 on one port) with its wire tap.
///
/// Prints one line `mqtt://HOST:PORT` on stdout as soon as it accepts connections, then
/// serves until Ctrl-C or SIGTERM, which stop it cleanly (exit 0) with the trace complete.
///
/// Example:
///   hil broker --port 1883 --trace broker.jsonl --pcap broker.pcap
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
}

pub async fn run(args: Args) -> Result<Exit, Failure> {
    let trace = Trace::start(TraceOptions {
        file: args.trace.as_deref(),
        keep_in_memory: false,
    })?;
    let config = BrokerConfig {
        listen: SocketAddr::new(args.bind, args.port),
        max_packet_size: args.max_packet_size,
        engine_exe: find_engine_exe()?,
        capture: args.pcap,
        external: None,
        namespace: None,
    };
    let broker = Broker::start(config, trace.clone()).await?;
    {
        let mut stdout = std::io::stdout().lock();
        let _ = writeln!(stdout, "{}", broker.url());
        let _ = stdout.flush();
    }
    let stop = stop_signal().await;
    broker.stop().await?;
    trace.finish()?;
    stop.map(|_| Exit::Success)
}

/// Arguments of the internal engine process.
#[derive(Debug, clap::Args)]
pub struct EngineArgs {
    #[arg(long)]
    v311: SocketAddr,
    #[arg(long)]
    v5: SocketAddr,
    #[arg(long)]
    max_packet_size: usize,
}

pub fn engine(args: &EngineArgs) -> Exit {
    match hil::engine::run(args.v311, args.v5, args.max_packet_size) {
        Ok(()) => Exit::Success,
        Err(message) => {
            eprintln!("hil broker engine: {message}");
            Exit::Infrastructure
        }
    }
}
