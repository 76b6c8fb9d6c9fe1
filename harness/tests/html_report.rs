//! The visual report of real runs, opened in headless Chromium (over the DevTools
//! protocol): the DOM after its scripts ran, console errors, requests, screenshots in
//! `target/tmp/html_report/`. Also the Perfetto export, the Mermaid failure body, the
//! GitHub step summary and annotations, checked as text.

mod support;

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use hil::bench::browser::{Browser, PageLoad};
use hil::trace::{Direction, Event, EventBody, Packet};
use regex::Regex;
use support::Suite;

/// Where screenshots go, for a person to look at.
fn shots() -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("html_report");
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// Opens `file#fragment`, failing on console errors and on any request beyond the file.
fn open(browser: &mut Browser, file: &Path, fragment: &str) -> PageLoad {
    let load = browser.open(file, fragment).unwrap();
    assert!(
        load.console_errors.is_empty(),
        "console errors: {:?}",
        load.console_errors
    );
    assert!(
        load.requests.is_empty(),
        "requests left the file: {:?}",
        load.requests
    );
    assert!(
        load.dom.contains("data-hil-ready=\"1\""),
        "the script did not run"
    );
    load
}

fn browser() -> Browser {
    Browser::start(1400, 1000).expect("headless Chromium (ci/test.sh installs Debian's chromium)")
}

/// The HTML of the section `id` (`<section … id="s0" …>` up to its end).
fn section<'d>(dom: &'d str, id: &str) -> &'d str {
    let open = Regex::new(&format!(r#"<section[^>]*id="{id}"[^>]*>"#)).unwrap();
    let start = open
        .find(dom)
        .unwrap_or_else(|| panic!("no section {id}"))
        .start();
    let end = dom[start..].find("</section>").unwrap() + start;
    &dom[start..end]
}

/// The trace table's rows: (hidden, cells).
fn table_rows(section: &str) -> Vec<(bool, Vec<String>)> {
    let body = &section[section.find("<tbody>").unwrap()..section.find("</tbody>").unwrap()];
    let row = Regex::new(r"(?s)<tr([^>]*)>(.*?)</tr>").unwrap();
    let cell = Regex::new(r"(?s)<td>(.*?)</td>").unwrap();
    row.captures_iter(body)
        .map(|c| {
            let cells = cell
                .captures_iter(&c[2])
                .map(|d| d[1].to_string())
                .collect();
            (c[1].contains("hidden"), cells)
        })
        .collect()
}

fn read_trace(path: &Path) -> Vec<Event> {
    hil::trace::read_file(path).unwrap()
}

/// How the diagram labels a publish (as `flow` does).
fn publish_label(topic: &str, payload: &str, qos: u8, retain: bool) -> String {
    let flags = match (qos, retain) {
        (0, false) => String::new(),
        (qos, false) => format!(" q{qos}"),
        (qos, true) => format!(" q{qos} retain"),
    };
    format!("{topic} \"{payload}\"{flags}")
}

fn hil_in(suite: &Suite, args: &[&str], env: &[(&str, &str)]) -> std::process::Output {
    let mut command = suite.command(args);
    command
        .env_remove("GITHUB_ACTIONS")
        .env_remove("GITHUB_STEP_SUMMARY");
    for (key, value) in env {
        command.env(key, value);
    }
    command.output().unwrap()
}

const FAILING: &str = r#"name: phone turns the lights off but says on
timeout: 10s
boards:
  lamp: { profile: sim }
clients:
  phone: {}
steps:
  - expect_connected: { client: lamp, within: 2s }
  - partition: { board: lamp, for: 300ms }
  - wait: { for: 400ms }
  - expect_connected: { client: lamp, within: 3s }
  - publish: { as: phone, topic: living_room_lights, payload: "on" }
  - expect_relay: { board: lamp, state: on, within: 500ms }
  - expect_message: { topic: living_room_lights, payload: "off", from: phone, within: 300ms }
"#;

#[test]
fn a_failing_scenario_is_drawn_with_its_failing_step_and_near_misses() {
    let suite = Suite::new();
    suite.add("failing.yaml", FAILING);
    let summary_file = suite.path("summary.md");
    let out = hil_in(
        &suite,
        &[
            "run",
            "failing.yaml",
            "--html",
            "r.html",
            "--json",
            "r.json",
            "--junit",
            "j.xml",
            "--out",
            "out",
        ],
        &[
            ("GITHUB_ACTIONS", "true"),
            ("GITHUB_STEP_SUMMARY", summary_file.to_str().unwrap()),
        ],
    );
    assert_eq!(
        out.status.code(),
        Some(1),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8_lossy(&out.stdout);

    // GitHub marks the failing step's line.
    let annotation = stdout
        .lines()
        .find(|l| l.starts_with("::error "))
        .unwrap_or_else(|| panic!("no annotation in {stdout}"));
    assert!(
        annotation.starts_with(
            "::error file=failing.yaml,line=14,col=5,title=phone turns the lights off but says on::expected a message on living_room_lights with payload \"off\", from phone within 300ms; 0 matching"
        ),
        "{annotation}"
    );

    let report: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(suite.path("r.json")).unwrap()).unwrap();
    let scenario = &report["scenarios"][0];
    let near_misses: Vec<u64> = scenario["attempts"][0]["failure"]["near_misses"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|m| {
            m.as_str()?
                .rsplit_once("event #")?
                .1
                .trim_end_matches(')')
                .parse()
                .ok()
        })
        .collect();
    assert!(!near_misses.is_empty(), "{scenario}");
    let trace_file = suite.dir().join(scenario["trace_file"].as_str().unwrap());
    let events = read_trace(&trace_file);
    let failed_at = events
        .iter()
        .find(|e| matches!(e.body, EventBody::StepFinished { passed: false, .. }))
        .unwrap()
        .seq;

    // The step summary: counts, the failure's row and its diagram.
    let summary = std::fs::read_to_string(&summary_file).unwrap();
    assert!(
        summary.starts_with("## hil run\n\n**0 passed** · **1 failed** in "),
        "{summary}"
    );
    assert!(
        summary.contains("| FAIL | phone turns the lights off but says on | failing.yaml:14:5 step 7 `expect_message` | a message on living_room_lights with payload \"off\", from phone within 300ms |"),
        "{summary}"
    );
    let mermaid = summary
        .split("```mermaid\n")
        .nth(1)
        .and_then(|rest| rest.split("```").next())
        .unwrap_or_else(|| panic!("no Mermaid block: {summary}"));
    assert!(mermaid.starts_with("sequenceDiagram\n    participant a0 as phone\n    participant a1 as broker\n    participant a2 as lamp\n"), "{mermaid}");
    assert!(
        mermaid.contains("    a0->>a1: living_room_lights \"on\"\n"),
        "{mermaid}"
    );
    assert!(
        mermaid.contains("    a1->>a2: living_room_lights \"on\"\n"),
        "{mermaid}"
    );
    assert!(
        mermaid.contains("    Note over a2: relay on\n"),
        "{mermaid}"
    );
    assert!(
        mermaid.lines().count() <= 1 + 3 + hil::report::mermaid::MAX_EVENTS,
        "{mermaid}"
    );
    // The same diagram in the JUnit failure body.
    let junit = std::fs::read_to_string(suite.path("j.xml")).unwrap();
    assert!(
        junit.contains("the failing step (Mermaid):\nsequenceDiagram\n    participant a0 as phone"),
        "{junit}"
    );

    let mut browser = browser();
    let page = suite.path("r.html");
    let load = open(&mut browser, &page, "");
    browser.screenshot(&shots().join("failing.png")).unwrap();
    let s0 = section(&load.dom, "s0");
    for actor in ["phone", "broker", "lamp"] {
        assert!(
            s0.contains(&format!("data-actor=\"{actor}\"")),
            "no lifeline for {actor}"
        );
    }
    // Every publish up to the failing step has its arrow, in order.
    let arrows = Regex::new(r#"(?s)<g (?:id="[^"]*" )?class="m k-publish[^"]*"><path[^>]*></path><text[^>]*>(.*?)</text>"#).unwrap();
    let drawn: Vec<String> = arrows.captures_iter(s0).map(|c| c[1].to_string()).collect();
    let expected: Vec<String> = events
        .iter()
        .filter(|e| e.seq <= failed_at)
        .filter_map(|e| match &e.body {
            EventBody::Mqtt {
                packet:
                    Packet::Publish {
                        topic,
                        payload,
                        qos,
                        retain,
                        ..
                    },
                ..
            } => Some(publish_label(
                topic,
                payload.as_text().unwrap(),
                *qos,
                *retain,
            )),
            _ => None,
        })
        .collect();
    assert_eq!(drawn, expected);
    // Steps are marked; the failing one is highlighted.
    assert_eq!(s0.matches("class=\"step fail\"").count(), 1, "{s0}");
    assert!(s0.contains("class=\"failband\""));
    assert!(s0.contains(">7 expect_message</text>"));
    assert!(s0.contains("class=\"step pass bracket\"") || s0.contains("<g class=\"step pass\">"));
    assert!(s0.contains(r#"<dd class="observed">0 matching"#));
    // Each near miss points at its arrow, which is marked.
    for seq in &near_misses {
        assert!(
            s0.contains(&format!(r##"href="#s0-e{seq}""##)),
            "near miss {seq} has no link"
        );
        assert!(
            Regex::new(&format!(r#"<g id="s0-e{seq}" class="m k-publish miss">"#))
                .unwrap()
                .is_match(s0),
            "near miss {seq} has no marked arrow"
        );
    }
    // The partition is a band; the states timeline has the lamp's relay.
    assert!(s0.contains("<g class=\"fault\">") && s0.contains("partition for 300ms"));
    assert!(s0.contains(r#"data-board="lamp" data-what="relay""#));
    // Files kept by --out are linked.
    assert!(
        s0.contains(r#"href="out/phone-turns-the-lights-off-but-says-on/trace.jsonl""#),
        "{s0}"
    );

    // A filter narrows the table.
    let all = table_rows(s0);
    let publishes = all
        .iter()
        .filter(|(_, cells)| cells[4] == "publish")
        .count();
    let filtered = open(&mut browser, &page, "s0.kind=publish");
    let rows = table_rows(section(&filtered.dom, "s0"));
    let shown: Vec<_> = rows.iter().filter(|(hidden, _)| !hidden).collect();
    assert_eq!(shown.len(), publishes);
    assert!(shown.len() < rows.len());
    assert!(shown.iter().all(|(_, cells)| cells[4] == "publish"));
    let by_actor = open(
        &mut browser,
        &page,
        "s0.actor=phone&s0.topic=living_room_lights/%23",
    );
    let rows = table_rows(section(&by_actor.dom, "s0"));
    assert!(rows
        .iter()
        .filter(|(h, _)| !h)
        .all(|(_, c)| c[2] == "phone"));
    assert!(rows.iter().any(|(h, c)| !h && c[4] == "publish"));
    // A brushed range narrows the table and zooms the diagram.
    let zoomed = open(&mut browser, &page, "s0.range=300-900&s0.zoom=1");
    browser
        .screenshot(&shots().join("failing-zoomed.png"))
        .unwrap();
    let s0 = section(&zoomed.dom, "s0");
    assert!(s0.contains("data-zoomed=\"1\""));
    let rows = table_rows(s0);
    let shown: Vec<f64> = rows
        .iter()
        .filter(|(h, _)| !h)
        .map(|(_, c)| c[0].parse().unwrap())
        .collect();
    assert!(!shown.is_empty() && shown.len() < rows.len());
    assert!(
        shown.iter().all(|ms| (300.0..=900.0).contains(ms)),
        "{shown:?}"
    );
    let view_box = Regex::new(r#"<svg class="seq"[^>]*viewBox="0 ([0-9.]+) "#).unwrap();
    let top: f64 = view_box.captures(s0).unwrap()[1].parse().unwrap();
    assert!(top > 0.0, "the diagram is not zoomed in");

    // Rendered later from the JSON report and the --out folder, moved.
    std::fs::rename(suite.path("out"), suite.path("kept")).unwrap();
    let later = hil_in(
        &suite,
        &[
            "report",
            "--json",
            "r.json",
            "--out",
            "kept",
            "--html",
            "later/r.html",
        ],
        &[],
    );
    support::assert_passed(&later);
    let load = open(&mut browser, &suite.path("later/r.html"), "");
    let s0 = section(&load.dom, "s0");
    assert!(s0.contains("data-actor=\"lamp\"") && s0.contains("class=\"step fail\""));
    assert!(
        s0.contains(r#"href="../kept/phone-turns-the-lights-off-but-says-on/trace.jsonl""#),
        "{s0}"
    );

    // The Perfetto export of the same trace.
    let moved_trace = suite.path("kept/phone-turns-the-lights-off-but-says-on/trace.jsonl");
    let export = hil_in(
        &suite,
        &[
            "trace",
            "export",
            moved_trace.to_str().unwrap(),
            "--format",
            "perfetto",
            "-o",
            "p.json",
        ],
        &[],
    );
    support::assert_passed(&export);
    let document: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(suite.path("p.json")).unwrap()).unwrap();
    check_trace_events(&document, &read_trace(&moved_trace));
}

/// The trace-event format as ui.perfetto.dev and chrome://tracing read it: every event
/// has its phase and fields, timestamps are ordered per track, every flow has one start
/// and one end after it; and the content: a process per actor, a slice per packet, flows
/// from each publish to its deliveries and on to a relay change, relay counters.
fn check_trace_events(document: &serde_json::Value, events: &[Event]) {
    let all = document["traceEvents"].as_array().expect("traceEvents");
    let mut processes = HashMap::new();
    let mut last_ts: HashMap<(u64, u64), u64> = HashMap::new();
    let mut flows: HashMap<u64, (Vec<u64>, Vec<u64>)> = HashMap::new();
    let (mut packets, mut counters) = (0, 0);
    for event in all {
        let phase = event["ph"].as_str().expect("ph");
        let pid = event["pid"].as_u64().expect("pid");
        if phase == "M" {
            if event["name"] == "process_name" {
                processes.insert(pid, event["args"]["name"].as_str().unwrap().to_string());
            }
            continue;
        }
        let ts = event["ts"].as_u64().expect("ts");
        match phase {
            "X" => {
                assert!(event["dur"].as_u64().expect("dur") >= 1, "{event}");
                let tid = event["tid"].as_u64().expect("tid");
                let last = last_ts.entry((pid, tid)).or_insert(0);
                assert!(
                    ts >= *last,
                    "timestamps out of order on track {pid}/{tid}: {event}"
                );
                *last = ts;
                if event["cat"] == "publish" {
                    packets += 1;
                }
            }
            "C" => counters += 1,
            "s" => flows
                .entry(event["id"].as_u64().unwrap())
                .or_default()
                .0
                .push(ts),
            "f" => {
                assert_eq!(event["bp"], "e", "{event}");
                flows
                    .entry(event["id"].as_u64().unwrap())
                    .or_default()
                    .1
                    .push(ts)
            }
            other => panic!("unexpected phase {other}: {event}"),
        }
    }
    for name in ["phone", "broker", "lamp", "steps"] {
        assert!(
            processes.values().any(|p| p == name),
            "no process {name}: {processes:?}"
        );
    }
    let publishes = events
        .iter()
        .filter(|e| {
            matches!(
                &e.body,
                EventBody::Mqtt {
                    packet: Packet::Publish { .. },
                    ..
                }
            )
        })
        .count();
    assert_eq!(packets, publishes);
    let relays = events
        .iter()
        .filter(|e| matches!(e.body, EventBody::Relay { .. }))
        .count();
    assert_eq!(counters, relays);
    for (id, (starts, ends)) in &flows {
        assert_eq!((starts.len(), ends.len()), (1, 1), "flow {id}");
        assert!(ends[0] >= starts[0], "flow {id} ends before it starts");
    }
    // Deliveries of a publish the trace saw: each has a flow from it.
    let deliveries = events
        .iter()
        .filter(|e| {
            matches!(&e.body, EventBody::Mqtt { dir: Direction::ToClient, packet: Packet::Publish { topic, payload, .. }, .. }
                if events.iter().any(|p| p.seq < e.seq && matches!(&p.body, EventBody::Mqtt { dir: Direction::ToBroker, packet: Packet::Publish { topic: t, payload: q, .. }, .. } if t == topic && q == payload)))
        })
        .count();
    let named = |name: &str| {
        all.iter()
            .filter(|e| e["ph"] == "s" && e["name"] == name)
            .count()
    };
    assert_eq!(named("delivery"), deliveries);
    assert!(
        named("relay") >= 1,
        "the phone's \"on\" switched the relay: a flow should say so"
    );
}

#[test]
fn the_reference_suite_renders_the_same_from_its_json_report() {
    let suite = Suite::new();
    let scenarios = Path::new(env!("CARGO_MANIFEST_DIR")).join("../scenarios");
    let files = hil::scenario::discover(std::slice::from_ref(&scenarios)).unwrap();
    let run = hil_in(
        &suite,
        &[
            "run",
            scenarios.to_str().unwrap(),
            "--html",
            "a.html",
            "--json",
            "r.json",
        ],
        &[],
    );
    support::assert_passed(&run);
    let later = hil_in(
        &suite,
        &["report", "--json", "r.json", "--html", "b.html"],
        &[],
    );
    support::assert_passed(&later);
    let (a, b) = (
        std::fs::read_to_string(suite.path("a.html")).unwrap(),
        std::fs::read_to_string(suite.path("b.html")).unwrap(),
    );
    assert!(
        a == b,
        "the report rendered from the JSON differs from the run's"
    );

    let mut browser = browser();
    let load = open(&mut browser, &suite.path("a.html"), "");
    browser
        .screenshot(&shots().join("reference-suite.png"))
        .unwrap();
    assert_eq!(
        load.dom.matches("<section class=\"scenario\"").count(),
        files.len()
    );
    assert_eq!(
        load.dom
            .matches("data-status=\"passed\" data-name=")
            .count(),
        2 * files.len()
    );
    // The fault scenario: its partition drawn as a band over the lamp.
    let name = "a press during a network partition is published when it heals";
    let id = Regex::new(&format!(
        r#"<section class="scenario" id="(s[0-9]+)" data-status="passed" data-name="{name}""#
    ))
    .unwrap()
    .captures(&load.dom)
    .unwrap_or_else(|| panic!("no section for {name}"))[1]
        .to_string();
    let fault = section(&load.dom, &id);
    assert!(
        fault.contains("<g class=\"fault\">") && fault.contains("partition for 1s 200ms"),
        "{fault}"
    );
    assert!(fault.contains(r#"data-board="lamp" data-what="mqtt""#));
    // A link to it opens its drawings, acks and pings shown.
    let opened = open(
        &mut browser,
        &suite.path("a.html"),
        &format!("{id}.minor=1"),
    );
    browser
        .screenshot(&shots().join("fault-scenario.png"))
        .unwrap();
    let fault = section(&opened.dom, &id);
    assert!(
        fault.contains("<details class=\"drawings\" open=\"\">"),
        "not opened"
    );
    assert!(fault.contains("class=\"seq show-minor\""));
    // The status filter hides the passing ones.
    let filtered = open(&mut browser, &suite.path("a.html"), "status=failed");
    assert_eq!(
        filtered.dom.matches("<section class=\"scenario\"").count(),
        filtered
            .dom
            .matches("<section class=\"scenario\" id=\"s")
            .count()
    );
    let hidden = Regex::new(r#"<section class="scenario" id="s[0-9]+" data-status="passed" data-name="[^"]*" hidden="""#).unwrap();
    assert_eq!(hidden.find_iter(&filtered.dom).count(), files.len());
}

#[test]
fn a_flaky_scenario_shows_its_attempts() {
    let mosquitto = support::Mosquitto::start();
    let suite = Suite::new();
    // The lamp's retained state reaches the reader live on the first attempt (no
    // retain flag) and as a retained message on the second.
    suite.add(
        "flaky.yaml",
        r#"name: the state is retained by the second attempt
timeout: 5s
boards:
  lamp: { profile: sim }
clients:
  reader: {}
steps:
  - expect_message: { topic: living_room_lights/state, payload: "off", to: reader, retain: true, within: 500ms }
"#,
    );
    let out = hil_in(
        &suite,
        &[
            "run",
            "flaky.yaml",
            "--broker",
            &mosquitto.url(),
            "--retries",
            "1",
            "--html",
            "r.html",
        ],
        &[("GITHUB_ACTIONS", "true")],
    );
    support::assert_passed(&out);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains("::warning file=flaky.yaml,line=8,col=5,title=the state is retained by the second attempt::flaky: passed on a retry after: expected a message on living_room_lights/state"),
        "{stdout}"
    );
    let mut browser = browser();
    let load = open(&mut browser, &suite.path("r.html"), "");
    browser.screenshot(&shots().join("flaky.png")).unwrap();
    assert!(load.dom.contains(
        r#"<tr data-status="flaky" data-name="the state is retained by the second attempt""#
    ));
    let s0 = section(&load.dom, "s0");
    assert!(
        s0.contains("<details class=\"attempts\" open=\"\"><summary>2 attempts</summary>"),
        "{s0}"
    );
    assert!(
        s0.contains(r#"<span class="badge failed">failed</span>"#)
            && s0.contains(r#"<span class="badge passed">passed</span>"#)
    );
    assert!(s0.contains("data-actor=\"reader\"") && s0.contains("data-actor=\"lamp\""));
}
