//! `hil bench`: measures the harness against its targets and prints one row per figure.
//!
//! Every figure comes from real sockets on loopback: raw MQTT 3.1.1 clients (rumqttc's
//! codec over a `TcpStream`, no client library in the measured path) talk to a broker
//! started for the benchmark, through the tap and, for comparison, straight to the engine.
//! The `flash` rows (`flash.rs`) flash a virtual chip over a pty; the `explore` rows
//! (`explore.rs`) measure `hil explore` against mutants of the firmware core.

pub mod browser;
mod explore;
pub mod farm;
mod flash;
pub mod fleet;
mod labgrid;
mod report;
mod waits;

use std::io;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use rumqttc::mqttbytes::v4::{self, Packet};
use rumqttc::mqttbytes::QoS;
use serde::Serialize;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::board::Simulator;
use crate::broker::{Broker, BrokerConfig};
use crate::trace::{Event, EventBody, Trace, TraceOptions};

/// Every network wait in the benchmark gives up after this long.
const IO_DEADLINE: Duration = Duration::from_secs(30);

/// Sizes of the runs; the defaults are what `hil bench` uses.
#[derive(Debug, Clone)]
pub struct BenchOptions {
    pub broker: BrokerConfig,
    pub cold_starts: usize,
    pub latency_samples: usize,
    pub publishers: usize,
    pub messages_per_publisher: usize,
    /// MQTT-only scenarios run with two jobs.
    pub scenarios: usize,
    /// Simulated boards in each fleet run.
    pub fleets: Vec<usize>,
}

impl BenchOptions {
    pub fn new(broker: BrokerConfig) -> BenchOptions {
        BenchOptions {
            broker,
            cold_starts: 10,
            latency_samples: 2000,
            publishers: 4,
            messages_per_publisher: 25_000,
            scenarios: 200,
            fleets: vec![1_000, 10_000],
        }
    }
}

/// One measured figure and the target it is held to.
#[derive(Debug, Clone, Serialize)]
pub struct Row {
    pub name: String,
    pub value: f64,
    pub unit: &'static str,
    /// The target in words, empty when the row is for information.
    pub target: String,
    /// Whether the target was met; `None` for information rows.
    pub pass: Option<bool>,
}

impl Row {
    fn info(name: impl Into<String>, value: f64, unit: &'static str) -> Row {
        Row {
            name: name.into(),
            value,
            unit,
            target: String::new(),
            pass: None,
        }
    }

    fn target(
        name: impl Into<String>,
        value: f64,
        unit: &'static str,
        target: String,
        pass: bool,
    ) -> Row {
        Row {
            name: name.into(),
            value,
            unit,
            target,
            pass: Some(pass),
        }
    }
}

/// The groups of rows, in table order; `hil bench --only GROUP` runs one.
pub const GROUPS: [&str; 13] = [
    "broker",
    "latency",
    "throughput",
    "scenarios",
    "waits",
    "suite",
    "report",
    "faults",
    "fuzzing",
    "fleet",
    "flash",
    "labgrid",
    "explore",
];

/// Runs the measurements of `groups` (all when empty) and returns the rows in table order.
/// A measurement that cannot finish becomes a missed row saying why; the rest still run.
pub async fn run(options: &BenchOptions, groups: &[String]) -> Vec<Row> {
    let wanted = |group: &str| groups.is_empty() || groups.iter().any(|g| g == group);
    let mut rows = Vec::new();
    let mut add = |group: &str, result: io::Result<Vec<Row>>| match result {
        Ok(new) => rows.extend(new),
        Err(error) => rows.push(Row::target(
            format!("{group}: did not finish: {error}"),
            0.0,
            "",
            "finishes".into(),
            false,
        )),
    };
    if wanted("broker") {
        add("broker", cold_start(options).await);
    }
    if wanted("latency") {
        add("latency", latency(options).await);
    }
    if wanted("throughput") {
        add("throughput", throughput(options).await);
    }
    if wanted("scenarios") {
        add("scenarios", scenario_suite(options).await);
    }
    if wanted("waits") {
        add("waits", waits::rows().await);
    }
    if wanted("suite") {
        add("suite", reference_suite(options).await);
    }
    if wanted("report") {
        let report = match reference_scenarios() {
            Ok(scenarios) => report::rows(scenarios, options.broker.clone()).await,
            Err(error) => Err(error),
        };
        add("report", report);
    }
    if wanted("faults") {
        add("faults", fault_cost(options).await);
    }
    if wanted("fuzzing") {
        add("fuzzing", fuzzing(options).await.map(|row| vec![row]));
    }
    if wanted("fleet") {
        // A process per board: a fleet of a thousand (first, while the harness holds no
        // other fleet's sockets). Each costs the harness the tap's two sockets.
        add(
            "fleet",
            fleet::rows(options, 1_000.min(fleet::capacity(2)), Simulator::Sketch).await,
        );
        for &wanted_boards in &options.fleets {
            // A board in this process costs the harness one socket, the tap's to the
            // engine (see `broker::raise_open_file_limit`); a fleet beyond the limit is
            // cut to fit, and the row says so by its size.
            let boards = wanted_boards.min(fleet::capacity(1));
            add("fleet", fleet::rows(options, boards, Simulator::Core).await);
        }
    }
    if wanted("flash") {
        add("flash", flash::rows(options).await);
    }
    if wanted("labgrid") {
        add("labgrid", labgrid::rows(options).await);
    }
    if wanted("explore") {
        add("explore", explore::rows(options).await);
    }
    rows
}

/// Renders rows as an aligned text table.
pub fn table(rows: &[Row]) -> String {
    let name_width = rows.iter().map(|r| r.name.len()).max().unwrap_or(0);
    let mut out = format!(
        "{:<name_width$}  {:>14}  {:<32}  result\n",
        "measurement", "value", "target"
    );
    for row in rows {
        let verdict = match row.pass {
            Some(true) => "ok",
            Some(false) => "MISSED",
            None => "",
        };
        let value = format!("{} {}", format_value(row.value), row.unit);
        out += &format!(
            "{:<name_width$}  {:>14}  {:<32}  {verdict}\n",
            row.name, value, row.target
        );
    }
    out
}

fn format_value(value: f64) -> String {
    if value.fract() == 0.0 {
        format!("{value:.0}")
    } else {
        format!("{value:.1}")
    }
}

async fn start_broker(options: &BenchOptions, trace: Trace) -> io::Result<Broker> {
    Broker::start(options.broker.clone(), trace)
        .await
        .map_err(io::Error::other)
}

async fn cold_start(options: &BenchOptions) -> io::Result<Vec<Row>> {
    let mut samples = Vec::with_capacity(options.cold_starts);
    for _ in 0..options.cold_starts {
        let started = Instant::now();
        let broker = start_broker(options, Trace::in_memory()).await?;
        RawClient::connect(broker.addr(), "bench-cold").await?;
        samples.push(micros(started.elapsed()));
        broker.stop().await.map_err(io::Error::other)?;
    }
    let stats = Percentiles::of(&mut samples);
    Ok(vec![
        Row::target(
            "broker cold start to first CONNACK (p50)",
            stats.p50 / 1000.0,
            "ms",
            "< 50 ms".into(),
            stats.p50 < 50_000.0,
        ),
        Row::info(
            "broker cold start to first CONNACK (max)",
            stats.max / 1000.0,
            "ms",
        ),
    ])
}

async fn latency(options: &BenchOptions) -> io::Result<Vec<Row>> {
    let broker = start_broker(options, Trace::in_memory()).await?;
    let direct = broker
        .untapped_addr()
        .await
        .ok_or_else(|| io::Error::other("broker engine is not running"))?;
    let mut rows = Vec::new();
    for qos in [QoS::AtMostOnce, QoS::AtLeastOnce] {
        let mut tapped = LatencyProbe::connect(broker.addr(), qos, "tapped").await?;
        let mut untapped = LatencyProbe::connect(direct, qos, "untapped").await?;
        let mut tapped_times = Vec::with_capacity(options.latency_samples);
        let mut untapped_times = Vec::with_capacity(options.latency_samples);
        // Alternate the two paths so that any drift of the machine hits both alike.
        let warmup = options.latency_samples / 10;
        for i in 0..options.latency_samples + warmup {
            let (t, u) = (tapped.round_trip(i).await?, untapped.round_trip(i).await?);
            if i >= warmup {
                tapped_times.push(t);
                untapped_times.push(u);
            }
        }
        let tapped = Percentiles::of(&mut tapped_times);
        let untapped = Percentiles::of(&mut untapped_times);
        let q = qos as u8;
        let budget = (untapped.p50 * 0.10).max(50.0);
        for (label, stats) in [("with tap", &tapped), ("without tap", &untapped)] {
            rows.push(Row::info(
                format!("publish→deliver QoS {q} {label} p50"),
                stats.p50,
                "µs",
            ));
            rows.push(Row::info(
                format!("publish→deliver QoS {q} {label} p99"),
                stats.p99,
                "µs",
            ));
            rows.push(Row::info(
                format!("publish→deliver QoS {q} {label} max"),
                stats.max,
                "µs",
            ));
        }
        let overhead = tapped.p50 - untapped.p50;
        rows.push(Row::target(
            format!("tap overhead on QoS {q} p50"),
            overhead,
            "µs",
            format!("≤ {budget:.0} µs (10 % or 50 µs)"),
            overhead <= budget,
        ));
    }
    broker.stop().await.map_err(io::Error::other)?;
    Ok(rows)
}

/// One publisher and one subscriber on one path to the broker.
struct LatencyProbe {
    publisher: RawClient,
    subscriber: RawClient,
    qos: QoS,
    topic: String,
}

impl LatencyProbe {
    async fn connect(addr: SocketAddr, qos: QoS, name: &str) -> io::Result<LatencyProbe> {
        let topic = format!("bench/latency/{name}");
        let mut subscriber = RawClient::connect(addr, &format!("bench-sub-{name}")).await?;
        subscriber.subscribe(&topic, qos).await?;
        let publisher = RawClient::connect(addr, &format!("bench-pub-{name}")).await?;
        Ok(LatencyProbe {
            publisher,
            subscriber,
            qos,
            topic,
        })
    }

    /// Microseconds from writing publish number `i` to reading its delivery.
    async fn round_trip(&mut self, i: usize) -> io::Result<f64> {
        let mut publish = v4::Publish::new(&self.topic, self.qos, Bytes::from_static(b"on"));
        publish.pkid = if self.qos == QoS::AtMostOnce {
            0
        } else {
            (i % 60_000 + 1) as u16
        };
        let started = Instant::now();
        self.publisher.send(&Packet::Publish(publish)).await?;
        let delivered = self.subscriber.next_publish().await?;
        let elapsed = micros(started.elapsed());
        if self.qos == QoS::AtLeastOnce {
            self.subscriber
                .send(&Packet::PubAck(v4::PubAck::new(delivered.pkid)))
                .await?;
            self.publisher.next_packet().await?;
        }
        Ok(elapsed)
    }
}

async fn throughput(options: &BenchOptions) -> io::Result<Vec<Row>> {
    let dir = tempfile::tempdir()?;
    let trace_path = dir.path().join("trace.jsonl");
    let trace = Trace::start(TraceOptions {
        file: Some(&trace_path),
        keep_in_memory: false,
    })
    .map_err(io::Error::other)?;
    let broker = start_broker(options, trace.clone()).await?;
    let total = options.publishers * options.messages_per_publisher;

    let mut subscriber = RawClient::connect(broker.addr(), "bench-sink").await?;
    subscriber
        .subscribe("bench/throughput/#", QoS::AtMostOnce)
        .await?;
    let started = Instant::now();
    let mut publishers = Vec::new();
    for p in 0..options.publishers {
        let addr = broker.addr();
        let count = options.messages_per_publisher;
        publishers.push(tokio::spawn(async move {
            let mut client = RawClient::connect(addr, &format!("bench-pub-{p}")).await?;
            client
                .publish_burst(&format!("bench/throughput/{p}"), count)
                .await
        }));
    }
    let mut received = 0usize;
    let receive = async {
        while received < total {
            subscriber.next_publish().await?;
            received += 1;
        }
        io::Result::Ok(())
    };
    let outcome = receive.await;
    let elapsed = started.elapsed();
    for publisher in publishers {
        publisher.await.map_err(io::Error::other)??;
    }
    drop(subscriber);
    broker.stop().await.map_err(io::Error::other)?;
    let tap_packets = broker
        .stats()
        .packets
        .load(std::sync::atomic::Ordering::Relaxed);
    let packets_seen = count_packets(&trace_path, &trace, tap_packets)?;
    outcome?;

    let rate = received as f64 / elapsed.as_secs_f64();
    Ok(vec![
        Row::target(
            format!(
                "QoS 0 throughput through the tap ({} publishers)",
                options.publishers
            ),
            rate.round(),
            "msg/s",
            "≥ 50000 msg/s".into(),
            rate >= 50_000.0,
        ),
        Row::target(
            "trace events lost (written vs recorded)",
            (packets_seen.recorded - packets_seen.written) as f64,
            "events",
            format!("0 of {}", packets_seen.recorded),
            packets_seen.recorded == packets_seen.written,
        ),
        Row::target(
            "MQTT packets in the trace file vs seen by the tap",
            packets_seen.in_file as f64,
            "packets",
            format!("= {} seen", packets_seen.tap),
            packets_seen.in_file == packets_seen.tap,
        ),
    ])
}

struct PacketCounts {
    recorded: u64,
    written: u64,
    in_file: u64,
    tap: u64,
}

/// Finishes the trace and counts the MQTT events that reached the file.
fn count_packets(path: &std::path::Path, trace: &Trace, tap: u64) -> io::Result<PacketCounts> {
    let summary = trace.finish().map_err(io::Error::other)?;
    let text = std::fs::read_to_string(path)?;
    let in_file = text
        .lines()
        .filter_map(|line| serde_json::from_str::<Event>(line).ok())
        .filter(|event| matches!(event.body, EventBody::Mqtt { .. }))
        .count() as u64;
    Ok(PacketCounts {
        recorded: summary.recorded,
        written: summary.written,
        in_file,
        tap,
    })
}

fn micros(duration: Duration) -> f64 {
    duration.as_secs_f64() * 1e6
}

struct Percentiles {
    p50: f64,
    p99: f64,
    max: f64,
}

impl Percentiles {
    fn of(samples: &mut [f64]) -> Percentiles {
        samples.sort_by(f64::total_cmp);
        let at = |q: f64| {
            let index = ((samples.len() as f64 - 1.0) * q).round() as usize;
            samples.get(index).copied().unwrap_or(0.0)
        };
        Percentiles {
            p50: at(0.50),
            p99: at(0.99),
            max: at(1.0),
        }
    }
}

/// A bare MQTT 3.1.1 client over one socket, so that nothing but the broker and the tap
/// is in the measured path.
struct RawClient {
    stream: TcpStream,
    buf: BytesMut,
}

impl RawClient {
    async fn connect(addr: SocketAddr, client_id: &str) -> io::Result<RawClient> {
        let stream = TcpStream::connect(addr).await?;
        stream.set_nodelay(true)?;
        let mut client = RawClient {
            stream,
            buf: BytesMut::with_capacity(64 * 1024),
        };
        let mut connect = v4::Connect::new(client_id);
        connect.keep_alive = 60;
        client.send(&Packet::Connect(connect)).await?;
        match client.next_packet().await? {
            Packet::ConnAck(ack) if ack.code == v4::ConnectReturnCode::Success => Ok(client),
            other => Err(io::Error::other(format!("expected CONNACK, got {other:?}"))),
        }
    }

    async fn subscribe(&mut self, filter: &str, qos: QoS) -> io::Result<()> {
        self.send(&Packet::Subscribe(v4::Subscribe::new(filter, qos)))
            .await?;
        match self.next_packet().await? {
            Packet::SubAck(_) => Ok(()),
            other => Err(io::Error::other(format!("expected SUBACK, got {other:?}"))),
        }
    }

    async fn send(&mut self, packet: &Packet) -> io::Result<()> {
        let mut out = BytesMut::new();
        packet
            .write(&mut out, usize::MAX)
            .map_err(io::Error::other)?;
        self.stream.write_all(&out).await
    }

    /// Writes `count` QoS 0 publishes, several per write as a busy client would.
    async fn publish_burst(&mut self, topic: &str, count: usize) -> io::Result<()> {
        let mut out = BytesMut::new();
        for i in 0..count {
            let publish = v4::Publish::new(topic, QoS::AtMostOnce, Bytes::from(format!("{i}")));
            Packet::Publish(publish)
                .write(&mut out, usize::MAX)
                .map_err(io::Error::other)?;
            if out.len() > 16 * 1024 {
                self.stream.write_all(&out).await?;
                out.clear();
            }
        }
        self.stream.write_all(&out).await
    }

    async fn next_publish(&mut self) -> io::Result<v4::Publish> {
        loop {
            if let Packet::Publish(publish) = self.next_packet().await? {
                return Ok(publish);
            }
        }
    }

    async fn next_packet(&mut self) -> io::Result<Packet> {
        loop {
            match Packet::read(&mut self.buf, usize::MAX) {
                Ok(packet) => return Ok(packet),
                Err(rumqttc::mqttbytes::Error::InsufficientBytes(_)) => {}
                Err(error) => return Err(io::Error::other(error)),
            }
            let read = tokio::time::timeout(IO_DEADLINE, self.stream.read_buf(&mut self.buf))
                .await
                .map_err(|_| {
                    io::Error::new(
                        io::ErrorKind::TimedOut,
                        "no packet from the broker within 30 s",
                    )
                })??;
            if read == 0 {
                return Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    "broker closed the connection",
                ));
            }
        }
    }
}

/// A scenario with two harness clients, one publish and one expectation: what the runner
/// costs when the device answers at once.
fn mqtt_only_scenario(index: usize) -> crate::scenario::Scenario {
    use crate::scenario::{ClientDecl, ClientSpec, Scenario};
    use crate::steps::{Action, ExpectMessage, Location, Publish, Step};
    let step = |action| Step {
        location: Location { line: 1, column: 1 },
        action,
    };
    let client = |name: &str| ClientDecl {
        name: name.into(),
        spec: ClientSpec::default(),
        location: Location::default(),
    };
    Scenario {
        name: format!("bench scenario {index}"),
        path: format!("bench/{index}.yaml").into(),
        timeout: Duration::from_secs(10),
        snapshot: false,
        tags: Vec::new(),
        boards: Vec::new(),
        clients: vec![client("phone"), client("display")],
        steps: vec![
            step(Action::Publish(Publish {
                client: "phone".into(),
                topic: "living_room_lights".into(),
                payload: "on".into(),
                qos: 1,
                retain: false,
            })),
            step(Action::ExpectMessage(ExpectMessage {
                topic: "living_room_lights".into(),
                payload: Some("on".into()),
                payload_regex: None,
                payload_json: None,
                qos: None,
                retain: None,
                from: Some("phone".into()),
                to: Some("display".into()),
                within: Duration::from_secs(2),
                count: None,
            })),
        ],
    }
}

/// Runs `scenarios` with two jobs on `broker`; every one must pass.
async fn run_suite(
    scenarios: Vec<crate::scenario::Scenario>,
    broker: BrokerConfig,
) -> io::Result<(Duration, Vec<std::sync::Arc<crate::runner::ScenarioResult>>)> {
    use crate::runner::Status;
    let total = scenarios.len();
    let (wall, summary, results) =
        play_suite(scenarios, broker, simulated(Simulator::Core), Play::Whole).await;
    if summary.passed != total {
        let first = results.iter().find(|r| r.status != Status::Passed);
        return Err(io::Error::other(format!(
            "{} of {total} scenarios did not pass: {:?}",
            total - summary.passed,
            first
                .and_then(|r| r.last().failure.as_ref())
                .map(|f| f.headline())
        )));
    }
    Ok((wall, results))
}

/// Every board simulated, by `simulator`.
fn simulated(simulator: Simulator) -> crate::runner::BenchMapping {
    crate::runner::BenchMapping {
        simulator,
        ..Default::default()
    }
}

/// Runs `scenarios` with two jobs on `broker`, their boards played as `bench` says,
/// whatever their outcome; `keep_traces` keeps every result's trace.
/// How much of a suite to play, and what to keep of it.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Play {
    Whole,
    /// Every scenario, with its trace in the results.
    WholeKeepingTraces,
    /// Until a scenario fails (a mutant is killed by one).
    UntilFirstFailure,
}

async fn play_suite(
    scenarios: Vec<crate::scenario::Scenario>,
    broker: BrokerConfig,
    bench: crate::runner::BenchMapping,
    play: Play,
) -> (
    Duration,
    crate::runner::RunSummary,
    Vec<std::sync::Arc<crate::runner::ScenarioResult>>,
) {
    use crate::runner::{self, RunOptions};
    let run_options = RunOptions {
        broker,
        jobs: 2,
        fail_fast: play == Play::UntilFirstFailure,
        retries: 0,
        seed: 1,
        out_dir: None,
        pcap: false,
        snapshot_all: false,
        snapshot_policy: crate::snapshot::SnapshotPolicy::WriteNothing(
            "the bench compares no snapshot",
        ),
        bench,
        run_id: crate::namespace::Namespace::run_id(1),
        credentials: None,
        keep_traces: play == Play::WholeKeepingTraces,
    };
    let interrupt = tokio_util::sync::CancellationToken::new();
    let started = Instant::now();
    // Nobody listens: the bench reads the results.
    let (events, _) = std::sync::mpsc::channel();
    let (summary, results) = runner::run(scenarios, &run_options, &interrupt, &events).await;
    (started.elapsed(), summary, results)
}

/// The reference suite on sketch boards against the firmware core, timed on the
/// scenarios that pass on both (firmware/README.md says why two differ).
async fn sketch_suite(
    scenarios: Vec<crate::scenario::Scenario>,
    options: &BenchOptions,
) -> Vec<Row> {
    use crate::runner::Status;
    let total = scenarios.len();
    let (_, summary, results) = play_suite(
        scenarios.clone(),
        options.broker.clone(),
        simulated(Simulator::Sketch),
        Play::Whole,
    )
    .await;
    let passing: Vec<_> = scenarios
        .into_iter()
        .filter(|scenario| {
            results
                .iter()
                .any(|r| r.name == scenario.name && r.status == Status::Passed)
        })
        .collect();
    let count = passing.len();
    let (core, _, _) = play_suite(
        passing.clone(),
        options.broker.clone(),
        simulated(Simulator::Core),
        Play::Whole,
    )
    .await;
    let (sketch, _, _) = play_suite(
        passing,
        options.broker.clone(),
        simulated(Simulator::Sketch),
        Play::Whole,
    )
    .await;
    let ratio = (sketch.as_secs_f64() / core.as_secs_f64() * 100.0).round() / 100.0;
    vec![
        Row::info(
            format!("reference suite with --sim sketch: scenarios passed of {total}"),
            summary.passed as f64,
            "",
        ),
        Row::target(
            format!("same {count} scenarios: --sim sketch / --sim core time"),
            ratio,
            "x",
            "< 1.3 x".into(),
            ratio < 1.3,
        ),
    ]
}

/// The reference suite (`scenarios/` in the working directory) with two jobs, on the
/// embedded broker and then on a Debian mosquitto started for the purpose.
async fn reference_suite(options: &BenchOptions) -> io::Result<Vec<Row>> {
    let scenarios = reference_scenarios()?;
    let (embedded, _) = run_suite(scenarios.clone(), options.broker.clone()).await?;
    let sketch_rows = sketch_suite(scenarios.clone(), options).await;
    let mut rows = vec![Row::target(
        format!("reference suite ({} scenarios), --jobs 2", scenarios.len()),
        embedded.as_secs_f64(),
        "s",
        "< 5 s".into(),
        embedded.as_secs_f64() < 5.0,
    )];
    // A broker hil does not own cannot be restarted by a scenario, nor made to refuse a
    // subscription (the tap keeps that rule only in front of its own engine).
    let portable: Vec<_> = scenarios
        .into_iter()
        .filter(|scenario| {
            !crate::steps::all_steps(&scenario.steps).iter().any(|step| {
                matches!(
                    step.action,
                    crate::steps::Action::BrokerRestart(_) | crate::steps::Action::DenySubscribe(_)
                )
            })
        })
        .collect();
    let count = portable.len();
    let (embedded, _) = run_suite(portable.clone(), options.broker.clone()).await?;
    let mosquitto = ExternalMosquitto::start()?;
    let mut external = options.broker.clone();
    external.external = Some(mosquitto.addr);
    let (on_mosquitto, _) = run_suite(portable, external).await?;
    rows.push(Row::info(
        format!("same {count} scenarios: external mosquitto / embedded time"),
        (on_mosquitto.as_secs_f64() / embedded.as_secs_f64() * 100.0).round() / 100.0,
        "x",
    ));
    rows.extend(sketch_rows);
    Ok(rows)
}

/// The reference suite: `scenarios/` in the working directory.
fn reference_scenarios() -> io::Result<Vec<crate::scenario::Scenario>> {
    let files = crate::scenario::discover(&[std::path::PathBuf::from("scenarios")])
        .map_err(|e| io::Error::other(format!("run hil bench from the repository root: {e}")))?;
    files
        .iter()
        .map(|file| {
            crate::scenario::load(file, &crate::board::profile::known_names())
                .map_err(|e| io::Error::other(e.to_string()))
        })
        .collect()
}

/// A mosquitto on a free loopback port for the comparison row; killed when dropped.
struct ExternalMosquitto {
    child: std::process::Child,
    addr: SocketAddr,
    _dir: tempfile::TempDir,
}

impl ExternalMosquitto {
    fn start() -> io::Result<ExternalMosquitto> {
        let dir = tempfile::tempdir()?;
        let addr = std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?;
        let config = dir.path().join("mosquitto.conf");
        std::fs::write(
            &config,
            format!(
                "listener {} 127.0.0.1\nallow_anonymous true\npersistence false\nmax_queued_messages 100000\n",
                addr.port()
            ),
        )?;
        let child = std::process::Command::new("mosquitto")
            .arg("-c")
            .arg(&config)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .map_err(|e| io::Error::other(format!("mosquitto: {e} (apt-get install mosquitto)")))?;
        let mosquitto = ExternalMosquitto {
            child,
            addr,
            _dir: dir,
        };
        let deadline = Instant::now() + IO_DEADLINE;
        while std::net::TcpStream::connect(addr).is_err() {
            if Instant::now() > deadline {
                return Err(io::Error::other("mosquitto did not start listening"));
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        Ok(mosquitto)
    }
}

impl Drop for ExternalMosquitto {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

async fn scenario_suite(options: &BenchOptions) -> io::Result<Vec<Row>> {
    let scenarios = (0..options.scenarios).map(mqtt_only_scenario).collect();
    let (wall, results) = run_suite(scenarios, options.broker.clone()).await?;
    let mut overheads: Vec<f64> = results
        .iter()
        .map(|r| micros(r.last().duration.saturating_sub(r.last().waited)))
        .collect();
    let overhead = Percentiles::of(&mut overheads);
    let reports = report_writes(&results)?;
    Ok(vec![
        Row::target(
            "harness overhead per scenario (p50, wall minus waits)",
            overhead.p50 / 1000.0,
            "ms",
            "< 10 ms".into(),
            overhead.p50 < 10_000.0,
        ),
        Row::info(
            "harness overhead per scenario (p99)",
            overhead.p99 / 1000.0,
            "ms",
        ),
        Row::target(
            format!("{} MQTT-only scenarios, --jobs 2", options.scenarios),
            wall.as_secs_f64(),
            "s",
            "< 10 s".into(),
            wall.as_secs_f64() < 10.0,
        ),
        reports,
    ])
}

/// Scenarios in the report-size row.
const REPORTED_SCENARIOS: usize = 2_000;

/// JSON + JUnit of a 2 000-scenario run through the real report writers, fed the results
/// of real scenarios over and over and written after every one (as when scenarios finish
/// one at a time): the bytes the process wrote, as the kernel counts them, against the
/// final files' size.
fn report_writes(results: &[std::sync::Arc<crate::runner::ScenarioResult>]) -> io::Result<Row> {
    use crate::report::{JsonFile, JunitFile, Reporter};
    use crate::runner::{RunEvent, RunSummary};
    if results.is_empty() {
        return Err(io::Error::other("no scenario results to report"));
    }
    let dir = tempfile::tempdir()?;
    let (json, junit) = (dir.path().join("report.json"), dir.path().join("junit.xml"));
    let before = bytes_written()?;
    let mut reporters: Vec<Box<dyn Reporter>> = vec![
        Box::new(JsonFile::create(json.clone())?),
        Box::new(JunitFile::create(junit.clone())?),
    ];
    let mut tell = |event: RunEvent| {
        for reporter in &mut reporters {
            reporter.report(&event);
            reporter.caught_up();
        }
    };
    tell(RunEvent::Started {
        total: REPORTED_SCENARIOS,
        jobs: 2,
        seed: 1,
        unobserved: None,
        labgrid: Vec::new(),
    });
    let mut summary = RunSummary::default();
    for index in 0..REPORTED_SCENARIOS {
        let mut result = (*results[index % results.len()]).clone();
        result.name = format!("{} #{index}", result.name);
        summary.add(result.status);
        tell(RunEvent::ScenarioFinished(std::sync::Arc::new(result)));
    }
    tell(RunEvent::Finished(summary));
    if let Some(error) = reporters.iter().find_map(|r| r.error()) {
        return Err(io::Error::other(error));
    }
    let written = bytes_written()? - before;
    let size = std::fs::metadata(&json)?.len() + std::fs::metadata(&junit)?.len();
    let ratio = written as f64 / size as f64;
    Ok(Row::target(
        "JSON + JUnit of a 2 000-scenario run: bytes written / final size",
        (ratio * 100.0).round() / 100.0,
        "x",
        "<= 3x".into(),
        ratio <= 3.0,
    ))
}

/// Bytes this process has written so far (`wchar` of /proc/self/io).
fn bytes_written() -> io::Result<u64> {
    let io_counts = std::fs::read_to_string("/proc/self/io")?;
    io_counts
        .lines()
        .find_map(|line| line.strip_prefix("wchar:"))
        .and_then(|count| count.trim().parse().ok())
        .ok_or_else(|| io::Error::other("no wchar in /proc/self/io"))
}

/// Every fault step, many times over, in one scenario: the harness time each costs
/// beyond its own duration, one row per kind, judged on its p99, so that neither a slow
/// kind nor a slow moment hides in the others.
async fn fault_cost(options: &BenchOptions) -> io::Result<Vec<Row>> {
    const DOWN_FOR: Duration = Duration::from_millis(20);
    /// Each kind and its own duration: a broker restart's `down_for`; the others take none.
    const KINDS: [(&str, Duration); 6] = [
        ("partition", Duration::ZERO),
        ("delay", Duration::ZERO),
        ("drop", Duration::ZERO),
        ("duplicate", Duration::ZERO),
        ("serial_noise", Duration::ZERO),
        ("broker_restart", DOWN_FOR),
    ];
    let text = r#"name: fault cost
timeout: 60s
boards:
  lamp: { profile: sim }
clients:
  phone: {}
steps:
  - expect_connected: { client: lamp, within: 5s }
  - repeat:
      times: 25
      steps:
        - partition: { client: phone, for: 1ms }
        - delay: { board: lamp, by: 1ms, for: 1ms }
        - drop: { client: phone, direction: to_broker, count: 1 }
        - duplicate: { client: phone, count: 1 }
        - serial_noise: { board: lamp, bytes: 64 }
        - broker_restart: { down_for: 20ms }
"#;
    let scenario = crate::scenario::parse(
        std::path::Path::new("fault-cost.yaml"),
        text,
        &crate::board::profile::known_names(),
    )
    .map_err(|e| io::Error::other(e.to_string()))?;
    let setup = crate::runner::AttemptSetup {
        broker: options.broker.clone(),
        seed: 1,
        out_dir: None,
        pcap: false,
        bench: Default::default(),
        credentials: None,
        observer: None,
    };
    let interrupt = tokio_util::sync::CancellationToken::new();
    let run = crate::runner::run_attempt(&scenario, &setup, &interrupt).await;
    if run.attempt.status != crate::runner::Status::Passed {
        return Err(io::Error::other(format!(
            "the fault scenario did not pass: {:?}",
            run.attempt.failure.map(|f| f.headline())
        )));
    }
    let mut started: Option<(String, u64)> = None;
    let mut costs: Vec<Vec<f64>> = vec![Vec::new(); KINDS.len()];
    for event in &run.events {
        match &event.body {
            EventBody::StepStarted { name, .. } => started = Some((name.clone(), event.t_us)),
            EventBody::StepFinished { name, .. } => {
                let Some((started_name, at)) = started.take() else {
                    continue;
                };
                let Some(kind) = KINDS.iter().position(|(kind, _)| kind == name) else {
                    continue;
                };
                if started_name == *name {
                    let took = Duration::from_micros(event.t_us.saturating_sub(at));
                    costs[kind].push(micros(took.saturating_sub(KINDS[kind].1)));
                }
            }
            _ => {}
        }
    }
    Ok(KINDS
        .iter()
        .zip(costs)
        .map(|((kind, _), mut samples)| {
            let count = samples.len();
            let cost = Percentiles::of(&mut samples);
            Row::target(
                format!("{kind} step harness cost beyond its duration (p99 of {count})"),
                cost.p99 / 1000.0,
                "ms",
                "< 5 ms".into(),
                count > 0 && cost.p99 < 5_000.0,
            )
        })
        .collect())
}

async fn fuzzing(options: &BenchOptions) -> io::Result<Row> {
    let broker = start_broker(options, Trace::in_memory()).await?;
    let cases = crate::fuzz::cases(1, 10_000);
    let report = crate::fuzz::run(broker.addr(), cases, 16, Duration::from_millis(50)).await?;
    broker.stop().await.map_err(io::Error::other)?;
    Ok(Row::info(
        "tap fuzzing throughput (10 000 mutated frames)",
        (report.cases as f64 / report.elapsed.as_secs_f64()).round(),
        "frames/s",
    ))
}

/// `VmHWM` (peak resident set) of a process, in MiB; 0 where /proc has no answer.
pub(crate) fn peak_rss_mib(status_file: &str) -> f64 {
    std::fs::read_to_string(status_file)
        .ok()
        .and_then(|status| {
            status
                .lines()
                .find_map(|line| line.strip_prefix("VmHWM:"))
                .and_then(|kb| kb.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
        })
        .map_or(0.0, |kb| kb / 1024.0)
}
