//! `hil trace`: reading trace files.

use std::io::{BufRead, BufReader, IsTerminal};
use std::path::{Path, PathBuf};

use hil::exit::Exit;
use hil::trace::{render_rows, Event, EventBody, Row};

use super::Failure;

#[derive(Debug, clap::Subcommand)]
pub enum Command {
    /// Print a trace as a readable timeline.
    ///
    /// One line per event: milliseconds since the first event, the connection and client,
    /// the direction (-> to the broker, <- to the client), the packet and its fields.
    /// Colour on a terminal unless NO_COLOR is set.
    ///
    /// Example:
    ///   hil trace show out/phone-turns-on/trace.jsonl --client phone --topic 'living_room_lights/#'
    #[command(verbatim_doc_comment)]
    Show(ShowArgs),
}

#[derive(Debug, clap::Args)]
pub struct ShowArgs {
    /// A trace file (JSON Lines) written by hil.
    file: PathBuf,
    /// Only events of this client id.
    #[arg(long, value_name = "ID")]
    client: Option<String>,
    /// Only publishes whose topic matches this filter (`+` and `#` allowed).
    #[arg(long, value_name = "FILTER")]
    topic: Option<String>,
}

pub fn run(command: Command) -> Result<Exit, Failure> {
    match command {
        Command::Show(args) => show(&args),
    }
}

fn show(args: &ShowArgs) -> Result<Exit, Failure> {
    if let Some(filter) = &args.topic {
        if !rumqttc::valid_filter(filter) {
            return Err(Failure::new(
                Exit::Usage,
                format!("--topic {filter:?} is not a valid MQTT topic filter ('#' only last, '+' alone in a level)"),
            ));
        }
    }
    let events = read_trace(&args.file)?;
    let origin = events.first().map_or(0, |e| e.t_us);
    let rows: Vec<Row> = events
        .iter()
        .filter(|event| keep(event, args))
        .map(|event| Row::of(event, origin))
        .collect();
    let styled = std::io::stdout().is_terminal()
        && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty());
    for line in render_rows(&rows, styled) {
        anstream::println!("{line}");
    }
    Ok(Exit::Success)
}

fn keep(event: &Event, args: &ShowArgs) -> bool {
    let client = match &event.body {
        EventBody::Mqtt { client, .. }
        | EventBody::Malformed { client, .. }
        | EventBody::ConnClosed { client, .. } => client.as_deref(),
        _ => None,
    };
    if let Some(wanted) = &args.client {
        if client != Some(wanted.as_str()) {
            return false;
        }
    }
    if let Some(filter) = &args.topic {
        return match &event.body {
            EventBody::Mqtt {
                packet: hil::trace::Packet::Publish { topic, .. },
                ..
            } => rumqttc::matches(topic, filter),
            _ => false,
        };
    }
    true
}

/// Reads a JSON Lines trace; a bad line is an input error that names file and line.
fn read_trace(path: &Path) -> Result<Vec<Event>, Failure> {
    let file = std::fs::File::open(path).map_err(|e| {
        Failure::new(
            Exit::Usage,
            format!("cannot open trace {}: {e}", path.display()),
        )
    })?;
    let mut events = Vec::new();
    for (index, line) in BufReader::new(file).split(b'\n').enumerate() {
        let line = line.map_err(|e| {
            Failure::new(
                Exit::Usage,
                format!("cannot read trace {}: {e}", path.display()),
            )
        })?;
        if line.iter().all(u8::is_ascii_whitespace) {
            continue;
        }
        let event = serde_json::from_slice::<Event>(&line).map_err(|e| {
            Failure::new(
                Exit::Usage,
                format!(
                    "{}:{}:{}: not a hil trace event: {e}\n  hint: trace files are written by `hil broker --trace` and `hil run --out`",
                    path.display(),
                    index + 1,
                    e.column()
                ),
            )
        })?;
        events.push(event);
    }
    Ok(events)
}
