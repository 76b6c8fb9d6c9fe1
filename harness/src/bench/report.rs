//! The visual report's rows: its size for the reference suite and for a 5 000-packet
//! scenario, what rendering costs against the run, and how soon headless Chromium first
//! paints it (by the browser's own clock).

use std::io;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::{browser::Browser, Row};
use crate::board::Simulator;
use crate::broker::BrokerConfig;
use crate::report::html;
use crate::report::view::{RunView, ScenarioView, SummaryView};
use crate::runner::{RunSummary, ScenarioResult};

/// Publishes of the long scenario; each reaches two subscribers, so three packets each.
const PUBLISHES: usize = 1_700;

fn long_scenario() -> io::Result<crate::scenario::Scenario> {
    let text = format!(
        "name: five thousand packets\ntimeout: 60s\nclients:\n  phone: {{}}\n  display: {{}}\n  watcher: {{}}\n\
         steps:\n  - repeat:\n      times: {PUBLISHES}\n      steps:\n        - publish: {{ as: phone, topic: living_room_lights, payload: \"on\" }}\n\
         \x20 - expect_message: {{ topic: living_room_lights, payload: \"on\", to: display, count: {PUBLISHES}, within: 30s }}\n\
         \x20 - expect_message: {{ topic: living_room_lights, payload: \"on\", to: watcher, count: {PUBLISHES}, within: 30s }}\n"
    );
    crate::scenario::parse(Path::new("bench/five_thousand_packets.yaml"), &text, &[])
        .map_err(|e| io::Error::other(e.to_string()))
}

/// The page for `results`, and how long rendering it took.
fn render(results: &[Arc<ScenarioResult>], summary: &RunSummary) -> (String, Duration) {
    let started = Instant::now();
    let run = RunView {
        scenarios: results.iter().map(|r| ScenarioView::of_result(r)).collect(),
        summary: SummaryView::of(summary),
    };
    let page = html::render(&run, Path::new("."));
    (page, started.elapsed())
}

pub async fn rows(
    reference: Vec<crate::scenario::Scenario>,
    broker: BrokerConfig,
) -> io::Result<Vec<Row>> {
    let count = reference.len();
    let (wall, summary, results) = super::play_suite(
        reference,
        broker.clone(),
        super::simulated(Simulator::Core),
        super::Play::WholeKeepingTraces,
    )
    .await;
    let (page, rendering) = render(&results, &summary);
    let mut rows = vec![
        Row::target(
            format!("HTML report of the reference suite ({count} scenarios)"),
            page.len() as f64 / 1e6,
            "MB",
            "< 1 MB".into(),
            page.len() < 1_000_000,
        ),
        Row::target(
            "HTML rendering / reference suite run",
            (rendering.as_secs_f64() / wall.as_secs_f64() * 1000.0).round() / 10.0,
            "%",
            "< 5 %".into(),
            rendering.as_secs_f64() < 0.05 * wall.as_secs_f64(),
        ),
    ];
    let folder = tempfile::tempdir()?;
    let file = folder.path().join("reference.html");
    std::fs::write(&file, &page)?;
    let load = tokio::task::spawn_blocking(move || {
        let mut browser = Browser::start(1400, 1000)?;
        browser.open(&file, "")
    })
    .await
    .map_err(io::Error::other)??;
    rows.push(Row::target(
        "headless Chromium first paint of the reference suite's report",
        load.first_paint_ms,
        "ms",
        "< 1000 ms".into(),
        load.first_paint_ms < 1000.0,
    ));
    let (_, summary, results) = super::play_suite(
        vec![long_scenario()?],
        broker,
        super::simulated(Simulator::Core),
        super::Play::WholeKeepingTraces,
    )
    .await;
    let packets = results.first().map_or(0, |r| {
        r.trace
            .iter()
            .filter(|e| matches!(e.body, crate::trace::EventBody::Mqtt { .. }))
            .count()
    });
    let (page, _) = render(&results, &summary);
    rows.push(Row::target(
        format!("HTML report of a {packets}-packet scenario"),
        page.len() as f64 / 1e6,
        "MB",
        "< 2 MB".into(),
        page.len() < 2_000_000 && packets >= 5_000,
    ));
    Ok(rows)
}
