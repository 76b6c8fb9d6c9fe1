//! `hil trace`: reading trace files.

use std::io::{BufRead, BufReader, IsTerminal};
use std::path::{Path, PathBuf};

use hil::exit::Exit;
use hil::trace::{render_rows, Event, Row, TraceFilter};

use super::Failure;

#[derive(Debug, clap::Subcommand)]
pub enum Command {
    /// Print a trace as a readable timeline.
    ///
    /// One line per event: milliseconds since the first event, the connection and client,
    /// the direction (-> to the broker, <- to the client), the packet and its fields.
    /// Colour on a terminal unless NO_COLOR is set.
    ///
    /// Examples:
    ///   hil trace show out/phone-turns-the-lights-off/trace.jsonl --topic 'living_room_lights/#'
    ///   hil trace show out/phone-turns-the-lights-off/trace.jsonl --board lamp --kind relay
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
    /// Only events of this board: its serial lines, relay, state, warnings and what was
    /// done to it.
    #[arg(long, value_name = "NAME")]
    board: Option<String>,
    /// Only events of this kind, as the timeline's third column names them (publish,
    /// subscribe, connect, serial, relay, state, fault, closed, ...); repeat for more.
    #[arg(long = "kind", value_name = "KIND")]
    kinds: Vec<String>,
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
    let filter = TraceFilter {
        client: args.client.clone(),
        board: args.board.clone(),
        kinds: args.kinds.clone(),
        topic: args.topic.clone(),
    };
    filter
        .check(&events)
        .map_err(|e| Failure::new(Exit::Usage, format!("{}: {e}", args.file.display())))?;
    let origin = events.first().map_or(0, |e| e.t_us);
    let rows: Vec<Row> = events
        .iter()
        .map(|event| (event, Row::of(event, origin)))
        .filter(|(event, row)| filter.keeps(event, row))
        .map(|(_, row)| row)
        .collect();
    let styled = std::io::stdout().is_terminal()
        && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty());
    for line in render_rows(&rows, styled) {
        anstream::println!("{line}");
    }
    Ok(Exit::Success)
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
