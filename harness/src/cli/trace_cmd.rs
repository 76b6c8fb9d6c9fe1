//! `hil trace`: reading trace files.

use std::io::IsTerminal;
use std::path::{Path, PathBuf};

use hil::exit::Exit;
use hil::trace::{render_rows, Event, Row, TraceFilter, TraceReadError};

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
    /// Convert a trace for another viewer.
    ///
    /// `--format perfetto`: Chrome trace-event JSON for ui.perfetto.dev or
    /// chrome://tracing: a process per actor, a mark per packet, flow arrows from a
    /// publish to its deliveries and on to the relay change each caused, a relay counter
    /// per board, faults and steps as slices.
    ///
    /// Example:
    ///   hil trace export out/phone-turns-the-lights-off/trace.jsonl --format perfetto -o lights.json
    #[command(verbatim_doc_comment)]
    Export(ExportArgs),
}

#[derive(Debug, clap::Args)]
pub struct ExportArgs {
    /// A trace file (JSON Lines) written by hil.
    file: PathBuf,
    #[arg(long, value_enum)]
    format: ExportFormat,
    /// Write here instead of standard output.
    #[arg(long, short, value_name = "FILE")]
    output: Option<PathBuf>,
}

#[derive(Debug, Clone, Copy, clap::ValueEnum)]
enum ExportFormat {
    /// Chrome trace-event JSON.
    Perfetto,
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
        Command::Export(args) => export(&args),
    }
}

fn export(args: &ExportArgs) -> Result<Exit, Failure> {
    let events: Vec<std::sync::Arc<Event>> = read_trace(&args.file)?
        .into_iter()
        .map(std::sync::Arc::new)
        .collect();
    let document = match args.format {
        ExportFormat::Perfetto => hil::report::perfetto::export(&events, &[]),
    };
    let text = serde_json::to_string(&document).expect("trace events serialize");
    match &args.output {
        Some(path) => std::fs::write(path, text).map_err(|e| {
            Failure::new(
                Exit::Infrastructure,
                format!("cannot write {}: {e}", path.display()),
            )
        })?,
        None => println!("{text}"),
    }
    Ok(Exit::Success)
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
    hil::trace::read_file(path).map_err(|error| match error {
        TraceReadError::Io { .. } => Failure::new(Exit::Usage, error.to_string()),
        TraceReadError::NotAnEvent { .. } => Failure::new(
            Exit::Usage,
            format!(
                "{error}\n  hint: trace files are written by `hil broker --trace` and `hil run --out`"
            ),
        ),
    })
}
