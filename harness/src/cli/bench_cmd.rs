//! `hil bench`: the benchmark table.

use hil::bench::{self, BenchOptions};
use hil::broker::BrokerConfig;
use hil::exit::Exit;

use super::Failure;

/// Measure hil against its speed targets and print a table (or JSON).
///
/// Rows: broker cold start to first CONNACK; publish→deliver latency for QoS 0 and 1,
/// with and without the tap; QoS 0 throughput through the tap; trace completeness;
/// scenario overhead and the bytes JSON and JUnit reports write over a run; what an
/// expect_message wait costs per event among 1 000 and 100 000 unrelated ones;
/// flashing a virtual ESP32-C3 (hil against esptool, re-flash, flash → ACTIVE); the
/// HTML report's size, rendering cost and first paint in headless Chromium; a labgrid
/// place on loopback (reserve + acquire + open, the suite through it); the mutants of
/// fixtures/mutants/ killed by `hil explore` and by the reference suite, the median time
/// to find and shrink one, generated runs per second and false alarms on the built-in core.
/// Exit code 1 when a target is missed.
///
/// Example:
///   hil bench --json > bench.json
#[derive(Debug, clap::Args)]
#[command(verbatim_doc_comment)]
pub struct Args {
    /// Print the rows as JSON instead of a table.
    #[arg(long)]
    json: bool,
    /// Run only these groups of rows.
    #[arg(long, value_name = "GROUP", value_parser = clap::builder::PossibleValuesParser::new(bench::GROUPS))]
    only: Vec<String>,
}

pub async fn run(args: Args) -> Result<Exit, Failure> {
    let options = BenchOptions::new(BrokerConfig::loopback()?);
    let rows = bench::run(&options, &args.only).await;
    if args.json {
        println!(
            "{}",
            serde_json::to_string_pretty(&rows).expect("rows serialize")
        );
    } else {
        print!("{}", bench::table(&rows));
    }
    let missed = rows.iter().any(|row| row.pass == Some(false));
    Ok(if missed { Exit::Failed } else { Exit::Success })
}
