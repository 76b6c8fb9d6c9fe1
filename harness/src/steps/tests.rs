//! Steps against a fake scene: a real in-memory trace, boards and clients that only
//! record what they were asked, and tokio's paused clock, so deadlines pass without
//! waiting and events arrive exactly when a test schedules them.

use std::collections::BTreeSet;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use tokio::time::Instant;

use super::*;
use crate::board::{Board, BoardFuture};
use crate::tap::Faults;
use crate::trace::{Direction, EventBody, Packet, Payload, Trace};

/// What the fake was asked to do, in order.
type Calls = Arc<Mutex<Vec<String>>>;

struct FakeBoard {
    calls: Calls,
}

impl FakeBoard {
    fn note(&self, call: String) -> BoardFuture<'_> {
        self.calls.lock().unwrap().push(call);
        Box::pin(async { Ok(()) })
    }
}

impl Board for FakeBoard {
    fn press(&mut self, bounce: u32) -> BoardFuture<'_> {
        self.note(format!("press {bounce}"))
    }

    fn send_serial<'a>(&'a mut self, line: &'a str) -> BoardFuture<'a> {
        self.note(format!("serial {line}"))
    }

    fn serial_noise<'a>(&'a mut self, bytes: &'a [u8]) -> BoardFuture<'a> {
        self.note(format!("noise {}", bytes.len()))
    }

    fn reset(&mut self) -> BoardFuture<'_> {
        self.note("reset".into())
    }

    fn power_cycle(&mut self, off_for: Duration) -> BoardFuture<'_> {
        self.note(format!("power_cycle {off_for:?}"))
    }

    fn wifi(&mut self, up: bool) -> BoardFuture<'_> {
        self.note(format!("wifi {up}"))
    }

    fn leave(&mut self) -> BoardFuture<'_> {
        self.note("leave".into())
    }

    fn boot_version(&self, line: &str) -> Option<String> {
        line.strip_prefix("BOOT ").map(str::to_string)
    }

    fn stop(self: Box<Self>) -> Pin<Box<dyn Future<Output = ()> + Send>> {
        Box::pin(async {})
    }
}

/// A scene with one board `lamp` and one client `phone`; the window rule is the
/// runner's: a stimulus moves it, an expectation does not, a block counts as one.
struct FakeScene {
    trace: Trace,
    faults: Faults,
    lamp: FakeBoard,
    calls: Calls,
    window_start: usize,
    paused: Duration,
}

impl FakeScene {
    fn new() -> FakeScene {
        let calls = Calls::default();
        FakeScene {
            trace: Trace::in_memory(),
            faults: Faults::new(1),
            lamp: FakeBoard {
                calls: calls.clone(),
            },
            calls,
            window_start: 0,
            paused: Duration::ZERO,
        }
    }

    async fn play(&mut self, step: &Action) -> Result<(), StepError> {
        let role = step.role();
        if !matches!(role, Role::Expectation) {
            self.window_start = self.trace.len() as usize;
        }
        let start = self.window_start;
        let result = step.run(self).await;
        if let Role::Block(_) = role {
            self.window_start = start;
        }
        result
    }

    fn calls(&self) -> Vec<String> {
        self.calls.lock().unwrap().clone()
    }
}

impl Scene for FakeScene {
    async fn publish(
        &mut self,
        client: &str,
        topic: &str,
        payload: Bytes,
        qos: u8,
        retain: bool,
    ) -> Result<(), StepError> {
        self.calls.lock().unwrap().push(format!(
            "publish {client} {topic} {} q{qos} r{retain}",
            String::from_utf8_lossy(&payload)
        ));
        Ok(())
    }

    async fn connect(&mut self, client: &str) -> Result<(), StepError> {
        self.calls.lock().unwrap().push(format!("connect {client}"));
        Ok(())
    }

    async fn disconnect(&mut self, client: &str) -> bool {
        self.calls
            .lock()
            .unwrap()
            .push(format!("disconnect {client}"));
        client == "phone"
    }

    fn run_block<'s>(
        &'s mut self,
        steps: &'s [Step],
    ) -> Pin<Box<dyn Future<Output = Result<(), StepError>> + Send + 's>> {
        Box::pin(async move {
            for step in steps {
                self.play(&step.action).await?;
            }
            Ok(())
        })
    }

    fn board(&mut self, name: &str) -> Result<&mut dyn Board, StepError> {
        match name {
            "lamp" => Ok(&mut self.lamp),
            other => Err(StepError::NoBoard(other.to_string())),
        }
    }

    fn is_board(&self, actor: &str) -> bool {
        actor == "lamp"
    }

    fn client_id(&self, actor: &str) -> String {
        actor.to_string()
    }

    fn faults(&self) -> &Faults {
        &self.faults
    }

    fn deny_subscribe(&mut self, filter: &str) -> Result<(), StepError> {
        self.faults.deny_subscribe(filter);
        Ok(())
    }

    async fn restart_broker(&mut self, down_for: Duration) -> Result<(), StepError> {
        self.calls
            .lock()
            .unwrap()
            .push(format!("restart {down_for:?}"));
        Ok(())
    }

    fn now_us(&self) -> u64 {
        self.trace.elapsed_us()
    }

    fn record(&self, body: EventBody) {
        self.trace.record(body);
    }

    fn record_at(&mut self, at: Instant, body: EventBody) {
        let trace = self.trace.clone();
        tokio::spawn(async move {
            tokio::time::sleep_until(at).await;
            trace.record(body);
        });
    }

    fn watch(&self, window: Window) -> Watch {
        let from = match window {
            Window::SinceStimulus => self.window_start,
            Window::WholeTrace => 0,
            Window::FromNow => self.trace.len() as usize,
        };
        Watch::new(self.trace.cursor_at(from), 0)
    }

    fn paused(&mut self, duration: Duration) {
        self.paused += duration;
    }

    fn step_seed(&self) -> u64 {
        7
    }
}

fn publish_event(client: &str, dir: Direction, topic: &str, payload: &str) -> EventBody {
    EventBody::Mqtt {
        conn: 1,
        client: Some(client.into()),
        dir,
        packet: Packet::Publish {
            topic: topic.into(),
            payload: Payload::from(payload),
            qos: 1,
            retain: false,
            dup: false,
            pkid: Some(1),
        },
    }
}

fn lamp_says(payload: &str) -> EventBody {
    publish_event("lamp", Direction::ToBroker, "living_room_lights", payload)
}

/// Records `body` after `after` of the scene's (paused) clock.
fn later(trace: &Trace, after: Duration, body: EventBody) {
    let trace = trace.clone();
    tokio::spawn(async move {
        tokio::time::sleep(after).await;
        trace.record(body);
    });
}

fn step(yaml: &str) -> Action {
    let cast = DeclaredActors {
        boards: BTreeSet::from(["lamp".to_string()]),
        clients: BTreeSet::from(["phone".to_string()]),
    };
    let action: Action = serde_saphyr::from_str(yaml).unwrap();
    let mut checks = Checks::new(&cast, Duration::from_secs(30));
    action.check(&mut checks);
    assert_eq!(checks.into_problems(), Vec::new(), "{yaml}");
    action
}

fn mismatch(result: Result<(), StepError>) -> Mismatch {
    match result {
        Err(StepError::Failed(mismatch)) => *mismatch,
        other => panic!("expected a failed step, got {other:?}"),
    }
}

const PRESS: &str = "press_switch: { board: lamp }";

#[tokio::test(start_paused = true)]
async fn an_expectation_sees_what_came_before_it_started_waiting() {
    let mut scene = FakeScene::new();
    scene.play(&step(PRESS)).await.unwrap();
    scene.trace.record(lamp_says("on"));
    let expect = step(
        r#"expect_message: { topic: living_room_lights, payload: "on", from: lamp, within: 10ms }"#,
    );
    scene.play(&expect).await.unwrap();
    // A chain of expectations after one stimulus all see what it caused.
    scene.play(&expect).await.unwrap();
    assert_eq!(scene.calls(), ["press 0"]);
}

#[tokio::test(start_paused = true)]
async fn a_stimulus_moves_the_window_so_old_messages_do_not_count() {
    let mut scene = FakeScene::new();
    scene.trace.record(lamp_says("on"));
    scene.play(&step(PRESS)).await.unwrap();
    let expect =
        step(r#"expect_message: { topic: living_room_lights, payload: "on", within: 100ms }"#);
    let failed = mismatch(scene.play(&expect).await);
    assert_eq!(
        failed.observed,
        "0 matching; 0 publishes seen since the step began (waited 100ms, then 100ms more for late arrivals)"
    );
}

#[tokio::test(start_paused = true)]
async fn a_message_within_the_deadline_passes_and_one_after_it_is_a_late_near_miss() {
    let mut scene = FakeScene::new();
    scene.play(&step(PRESS)).await.unwrap();
    later(&scene.trace, Duration::from_millis(90), lamp_says("on"));
    let expect =
        step(r#"expect_message: { topic: living_room_lights, payload: "on", within: 100ms }"#);
    scene.play(&expect).await.unwrap();

    scene.play(&step(PRESS)).await.unwrap();
    later(&scene.trace, Duration::from_millis(150), lamp_says("on"));
    let started = Instant::now();
    let failed = mismatch(scene.play(&expect).await);
    assert!(
        failed.near_misses[0].starts_with("arrived after the deadline: living_room_lights \"on\""),
        "{failed:?}"
    );
    // It stopped looking as soon as the late one came, within the grace.
    assert_eq!(started.elapsed(), Duration::from_millis(150));
}

#[tokio::test(start_paused = true)]
async fn a_missing_message_fails_after_its_deadline_and_the_grace() {
    let mut scene = FakeScene::new();
    scene.play(&step(PRESS)).await.unwrap();
    scene.trace.record(lamp_says("off"));
    let started = Instant::now();
    let expect =
        step(r#"expect_message: { topic: living_room_lights, payload: "on", within: 200ms }"#);
    let failed = mismatch(scene.play(&expect).await);
    assert_eq!(started.elapsed(), Duration::from_millis(400));
    assert_eq!(
        failed.observed,
        "0 matching; 1 publishes seen since the step began (waited 200ms, then 200ms more for late arrivals)"
    );
    assert!(
        failed.near_misses[0].starts_with("same topic, other payload"),
        "{failed:?}"
    );
}

#[tokio::test(start_paused = true)]
async fn count_waits_for_that_many() {
    let mut scene = FakeScene::new();
    scene.play(&step(PRESS)).await.unwrap();
    scene.trace.record(lamp_says("on"));
    later(&scene.trace, Duration::from_millis(50), lamp_says("on"));
    let two = step(r#"expect_message: { topic: living_room_lights, count: 2, within: 100ms }"#);
    scene.play(&two).await.unwrap();
    let three = step(r#"expect_message: { topic: living_room_lights, count: 3, within: 100ms }"#);
    let failed = mismatch(scene.play(&three).await);
    assert!(failed.expected.starts_with("3 × a message"), "{failed:?}");
    assert!(failed.observed.starts_with("2 matching"), "{failed:?}");
}

#[tokio::test(start_paused = true)]
async fn expect_no_message_watches_only_its_own_time() {
    let mut scene = FakeScene::new();
    scene.play(&step(PRESS)).await.unwrap();
    // Before the quiet window: not its business.
    scene.trace.record(lamp_says("on"));
    let quiet = step("expect_no_message: { topic: living_room_lights, from: lamp, for: 300ms }");
    later(&scene.trace, Duration::from_millis(301), lamp_says("off"));
    let started = Instant::now();
    scene.play(&quiet).await.unwrap();
    assert_eq!(started.elapsed(), Duration::from_millis(300));

    later(&scene.trace, Duration::from_millis(120), lamp_says("off"));
    let failed = mismatch(scene.play(&quiet).await);
    assert_eq!(
        failed.expected,
        "no message on living_room_lights with any payload, from lamp for 300ms"
    );
    assert!(
        failed
            .observed
            .starts_with("got living_room_lights \"off\" from lamp"),
        "{failed:?}"
    );
}

#[tokio::test(start_paused = true)]
async fn states_are_read_after_every_event_so_far_not_the_first_that_held() {
    let mut scene = FakeScene::new();
    let relay = |on| EventBody::Relay {
        board: "lamp".into(),
        on,
    };
    scene.trace.record(relay(true));
    scene.trace.record(relay(false));
    let on = step("expect_relay: { board: lamp, state: on, within: 100ms }");
    let failed = mismatch(scene.play(&on).await);
    assert_eq!(failed.observed, "it stayed off for 100ms");
    later(&scene.trace, Duration::from_millis(10), relay(true));
    scene.play(&on).await.unwrap();
}

#[tokio::test(start_paused = true)]
async fn repeat_runs_its_steps_and_counts_as_one_stimulus() {
    let mut scene = FakeScene::new();
    let repeat: Action = serde_saphyr::from_str(
        "repeat:\n  times: 3\n  steps:\n    - press_switch: { board: lamp }\n    - send_serial: { board: lamp, line: status }\n",
    )
    .unwrap();
    scene.play(&repeat).await.unwrap();
    assert_eq!(
        scene.calls(),
        [
            "press 0",
            "serial status",
            "press 0",
            "serial status",
            "press 0",
            "serial status"
        ]
    );
    assert_eq!(
        scene.window_start, 1,
        "the window starts where the block began"
    );
}

/// On the real clock: the trace stamps events with it. A 20 ms sleep is at least 20 ms,
/// so the gap is always above 10 ms and above 5 ms.
#[tokio::test]
async fn expect_trace_finds_entries_in_order_and_holds_gaps() {
    let mut scene = FakeScene::new();
    scene.play(&step(PRESS)).await.unwrap();
    scene.trace.record(lamp_says("on"));
    later(&scene.trace, Duration::from_millis(20), lamp_says("off"));
    let in_order = step(
        r#"expect_trace: { events: [{ payload: "on" }, { payload: "off", gap: { min: 10ms } }], within: 5s }"#,
    );
    scene.play(&in_order).await.unwrap();
    let too_slow = step(
        r#"expect_trace: { events: [{ payload: "on" }, { payload: "off", gap: { max: 5ms } }], within: 5s }"#,
    );
    let failed = mismatch(scene.play(&too_slow).await);
    assert!(failed.observed.starts_with("entry 2 came "), "{failed:?}");
    assert!(
        failed.observed.ends_with("expected 0s to 5ms"),
        "{failed:?}"
    );
}

#[tokio::test(start_paused = true)]
async fn a_partition_records_its_start_and_its_heal() {
    let mut scene = FakeScene::new();
    scene
        .play(&step("partition: { client: phone, for: 50ms }"))
        .await
        .unwrap();
    assert!(scene.faults.is_partitioned("phone"));
    let healed = step(
        r#"expect_trace: { events: [{ kind: fault, fault: partition, detail: healed }], within: 100ms }"#,
    );
    scene.play(&healed).await.unwrap();
}

#[tokio::test(start_paused = true)]
async fn pauses_are_counted_and_disconnect_fails_for_a_client_not_connected() {
    let mut scene = FakeScene::new();
    scene.play(&step("wait: { for: 250ms }")).await.unwrap();
    scene
        .play(&step("power_cycle: { board: lamp, off_for: 50ms }"))
        .await
        .unwrap();
    assert_eq!(scene.paused, Duration::from_millis(300));
    scene
        .play(&step("disconnect: { client: phone }"))
        .await
        .unwrap();
    let cast = DeclaredActors {
        clients: BTreeSet::from(["phone".to_string(), "display".to_string()]),
        ..DeclaredActors::default()
    };
    let display: Action = serde_saphyr::from_str("disconnect: { client: display }").unwrap();
    let mut checks = Checks::new(&cast, Duration::from_secs(30));
    display.check(&mut checks);
    assert!(checks.into_problems().is_empty());
    let failed = mismatch(scene.play(&display).await);
    assert_eq!(failed.observed, "it was not connected");
}

#[test]
fn checks_name_every_problem_of_a_step_with_its_field() {
    let cast = DeclaredActors {
        boards: BTreeSet::from(["lamp".to_string()]),
        clients: BTreeSet::from(["phone".to_string()]),
    };
    let action: Action = serde_saphyr::from_str(
        r#"expect_message: { topic: "a/#/b", qos: 3, from: ghost, count: 0, within: 2h }"#,
    )
    .unwrap();
    let mut checks = Checks::new(&cast, Duration::from_secs(30));
    action.check(&mut checks);
    let fields: Vec<_> = checks.into_problems().iter().map(|p| p.field).collect();
    assert_eq!(
        fields,
        [
            Some("topic"),
            Some("qos"),
            Some("from"),
            Some("count"),
            Some("within")
        ]
    );
    let publish: Action =
        serde_saphyr::from_str("publish: { as: lamp, topic: t, payload: x }").unwrap();
    let mut checks = Checks::new(&cast, Duration::from_secs(30));
    publish.check(&mut checks);
    let problems = checks.into_problems();
    assert_eq!(
        problems[0].message,
        "`lamp` is a board; this step drives a harness client"
    );
    assert_eq!(
        problems[0].help,
        "declare it under `clients:` (declared: phone)"
    );
}

#[test]
fn every_step_has_a_name_a_doc_and_documented_roles() {
    let mut generator = schemars::SchemaGenerator::default();
    let docs = Action::docs(&mut generator);
    assert_eq!(docs.len(), Action::NAMES.len());
    for doc in docs {
        assert!(!doc.summary.is_empty(), "{} has no doc comment", doc.name);
        assert!(
            doc.summary.ends_with('.'),
            "{}: {:?}",
            doc.name,
            doc.summary
        );
    }
}

#[tokio::test(start_paused = true)]
async fn presses_closer_than_the_debounce_are_named_in_the_story() {
    let mut scene = FakeScene::new();
    scene.play(&step(PRESS)).await.unwrap();
    let pressed = || EventBody::Board {
        board: "lamp".into(),
        change: crate::trace::BoardChange::SwitchPressed,
    };
    for _ in 0..3 {
        scene.trace.record(pressed());
    }
    scene.trace.record(lamp_says("on"));
    let three = step(
        r#"expect_message: { topic: living_room_lights, from: lamp, count: 3, within: 50ms }"#,
    );
    let failed = mismatch(scene.play(&three).await);
    let hint = failed.near_misses.last().unwrap();
    assert!(
        hint.starts_with("3 presses of lamp since the step began"),
        "{hint}"
    );
    assert!(hint.contains("debounce"), "{hint}");
}

#[tokio::test(start_paused = true)]
async fn a_command_before_the_board_subscribed_is_told_as_such() {
    let mut scene = FakeScene::new();
    let subscribe = EventBody::Mqtt {
        conn: 2,
        client: Some("lamp".into()),
        dir: Direction::ToBroker,
        packet: Packet::Subscribe {
            pkid: 1,
            filters: vec![crate::trace::Subscription {
                filter: "living_room_lights".into(),
                qos: 1,
            }],
        },
    };
    let suback = EventBody::Mqtt {
        conn: 2,
        client: Some("lamp".into()),
        dir: Direction::ToClient,
        packet: Packet::Suback {
            pkid: 1,
            codes: vec![crate::trace::SubackCode::GrantedQos1],
        },
    };
    scene.trace.record(publish_event(
        "phone",
        Direction::ToBroker,
        "living_room_lights",
        "on",
    ));
    scene.trace.record(subscribe);
    scene.trace.record(suback);
    let on = step("expect_relay: { board: lamp, state: on, within: 50ms }");
    let failed = mismatch(scene.play(&on).await);
    assert!(
        failed.near_misses[0].starts_with("lamp subscribed to living_room_lights only at "),
        "{failed:?}"
    );
    assert!(
        failed.near_misses[0].ends_with("start with `expect_connected: { client: lamp }`"),
        "{failed:?}"
    );
}
