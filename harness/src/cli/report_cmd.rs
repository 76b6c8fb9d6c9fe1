//! `hil report`: renders an earlier run's reports from its JSON report and `--out` folder.

use std::path::PathBuf;

use hil::exit::Exit;
use hil::report::{html, ReportReadError, RunView};

use super::Failure;

/// Render the visual report of an earlier run, from its JSON report.
///
/// The JSON report (`hil run --json FILE`) carries each scenario's result and, when the
/// run had no --out, its trace; with --out it names each trace.jsonl, read from where the
/// run wrote it or from --out DIR (wherever that folder is now). The HTML is one
/// self-contained file: open it from disk or as a CI artifact.
/// Exit 2 when the report or a trace cannot be read.
///
/// Examples:
///   hil report --json report.json --html report.html
///   hil report --json report.json --out out --html later.html
#[derive(Debug, clap::Args)]
#[command(verbatim_doc_comment)]
pub struct Args {
    /// The run's JSON report.
    #[arg(long, value_name = "FILE")]
    json: PathBuf,
    /// The run's --out folder, when it is no longer where the run wrote it.
    #[arg(long, value_name = "DIR")]
    out: Option<PathBuf>,
    /// Write the HTML report here.
    #[arg(long, value_name = "FILE")]
    html: PathBuf,
}

pub fn run(args: &Args) -> Result<Exit, Failure> {
    let (run, warnings) =
        RunView::read(&args.json, args.out.as_deref()).map_err(|error| match error {
            ReportReadError::Io { .. }
            | ReportReadError::NotAReport { .. }
            | ReportReadError::Trace(_) => Failure::new(Exit::Usage, error),
        })?;
    for warning in warnings {
        anstream::eprintln!("warning: {warning}");
    }
    html::write(&args.html, &run).map_err(|e| {
        Failure::new(
            Exit::Infrastructure,
            format!("cannot write {}: {e}", args.html.display()),
        )
    })?;
    println!("{}: {} scenarios", args.html.display(), run.scenarios.len());
    Ok(Exit::Success)
}
