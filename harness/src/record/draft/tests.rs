//! The draft of traces written by hand, as the tap and the simulated board record them.

use std::time::Duration;

use super::*;
use crate::trace::{CloseReason, ConnackCode, DisconnectCode, PubackCode, SubackCode, Will};

/// A trace being written: every event one millisecond after the previous, unless `at`
/// moves the clock.
struct Tape {
    events: Vec<Event>,
    now_us: u64,
}

const LAMP_CONN: u64 = 1;

impl Tape {
    fn new() -> Tape {
        let mut tape = Tape {
            events: Vec::new(),
            now_us: 0,
        };
        tape.push(EventBody::TraceStarted {
            wall_clock: "2025-03-04T05:06:07.890Z".into(),
            hil_version: "0.1.0".into(),
        });
        tape
    }

    fn at_ms(&mut self, ms: u64) -> &mut Tape {
        self.now_us = ms * 1000;
        self
    }

    fn push(&mut self, body: EventBody) -> &mut Tape {
        self.now_us += 1000;
        self.events.push(Event {
            seq: self.events.len() as u64 + 1,
            t_us: self.now_us,
            body,
        });
        self
    }

    fn mqtt(&mut self, conn: u64, client: &str, dir: Direction, packet: Packet) -> &mut Tape {
        self.push(EventBody::Mqtt {
            conn,
            client: Some(client.into()),
            dir,
            packet,
        })
    }

    fn connect(&mut self, conn: u64, client: &str) -> &mut Tape {
        let will = (conn == LAMP_CONN).then(|| Will {
            topic: "living_room_lights/status".into(),
            payload: Payload::from("offline"),
            qos: 1,
            retain: true,
        });
        self.mqtt(
            conn,
            client,
            Direction::ToBroker,
            Packet::Connect {
                client_id: client.into(),
                protocol: 4,
                clean_session: true,
                keep_alive: 15,
                will,
                username: None,
            },
        )
        .mqtt(
            conn,
            client,
            Direction::ToClient,
            Packet::Connack {
                session_present: false,
                code: ConnackCode::Success,
            },
        )
    }

    fn subscribed(&mut self, conn: u64, client: &str) -> &mut Tape {
        self.mqtt(
            conn,
            client,
            Direction::ToClient,
            Packet::Suback {
                pkid: 1,
                codes: vec![SubackCode::GrantedQos1],
            },
        )
    }

    fn publish(&mut self, conn: u64, client: &str, topic: &str, payload: &str) -> &mut Tape {
        self.publish_flags(conn, client, topic, payload, 1, false)
    }

    fn publish_flags(
        &mut self,
        conn: u64,
        client: &str,
        topic: &str,
        payload: &str,
        qos: u8,
        retain: bool,
    ) -> &mut Tape {
        self.mqtt(
            conn,
            client,
            Direction::ToBroker,
            Packet::Publish {
                topic: topic.into(),
                payload: Payload::from(payload),
                qos,
                retain,
                dup: false,
                pkid: Some(1),
            },
        )
        .mqtt(
            conn,
            client,
            Direction::ToClient,
            Packet::Puback {
                pkid: 1,
                code: PubackCode::Success,
            },
        )
    }

    fn deliver(&mut self, conn: u64, client: &str, topic: &str, payload: &str) -> &mut Tape {
        self.deliver_flags(conn, client, topic, payload, false)
    }

    fn deliver_flags(
        &mut self,
        conn: u64,
        client: &str,
        topic: &str,
        payload: &str,
        retain: bool,
    ) -> &mut Tape {
        self.mqtt(
            conn,
            client,
            Direction::ToClient,
            Packet::Publish {
                topic: topic.into(),
                payload: Payload::from(payload),
                qos: 1,
                retain,
                dup: false,
                pkid: Some(2),
            },
        )
    }

    fn relay(&mut self, on: bool) -> &mut Tape {
        self.push(EventBody::Relay {
            board: "lamp".into(),
            on,
        })
    }

    fn change(&mut self, change: BoardChange) -> &mut Tape {
        self.push(EventBody::Board {
            board: "lamp".into(),
            change,
        })
    }

    fn closed(&mut self, conn: u64, client: &str) -> &mut Tape {
        self.push(EventBody::ConnClosed {
            conn,
            client: Some(client.into()),
            reason: CloseReason::ByPeer,
            detail: None,
        })
    }

    fn ping(&mut self, conn: u64, client: &str) -> &mut Tape {
        self.mqtt(conn, client, Direction::ToBroker, Packet::Pingreq)
            .mqtt(conn, client, Direction::ToClient, Packet::Pingresp)
    }

    /// The simulated lamp powers on, connects, says it is online, subscribes and
    /// publishes its state, as the firmware does.
    fn lamp_starts(&mut self) -> &mut Tape {
        self.push(EventBody::Serial {
            board: "lamp".into(),
            line: "HIL boot fw=light-controller version=0.1.0".into(),
        })
        .relay(false)
        .lamp_connects()
    }

    fn lamp_connects(&mut self) -> &mut Tape {
        self.connect(LAMP_CONN, "lamp")
            .publish_flags(
                LAMP_CONN,
                "lamp",
                "living_room_lights/status",
                "online",
                1,
                true,
            )
            .subscribed(LAMP_CONN, "lamp")
            .publish_flags(
                LAMP_CONN,
                "lamp",
                "living_room_lights/state",
                "off",
                1,
                true,
            )
    }

    fn draft(&self, renames: &[Rename], secrets: &[String]) -> Draft {
        let board = lamp();
        draft(
            &self.events,
            Session {
                name: None,
                board: &board,
                renames,
                secrets,
            },
        )
    }
}

fn lamp() -> BoardRole {
    BoardRole::named("lamp", BoardSpec::of_profile("sim"))
}

/// The steps as YAML lines, the way a scenario writes them.
fn lines(draft: &Draft) -> Vec<String> {
    draft
        .scenario
        .steps
        .iter()
        .map(|step| {
            serde_saphyr::to_string(step)
                .unwrap()
                .trim()
                .replace('\'', "\"")
                .replace('{', "{ ")
                .replace('}', " }")
        })
        .collect()
}

const START: [&str; 3] = [
    r#"expect_message: { topic: living_room_lights/status, payload: online, qos: 1, retain: true, from: lamp, within: 200ms }"#,
    r#"expect_connected: { client: lamp, within: 200ms }"#,
    r#"expect_message: { topic: living_room_lights/state, payload: "off", qos: 1, retain: true, from: lamp, within: 200ms }"#,
];

fn with_start(rest: &[&str]) -> Vec<String> {
    START.iter().chain(rest).map(|s| s.to_string()).collect()
}

#[test]
fn a_command_becomes_a_publish_and_the_board_s_reactions_expectations() {
    let mut tape = Tape::new();
    tape.lamp_starts()
        .connect(2, "viewer")
        .subscribed(2, "viewer")
        .at_ms(5_000)
        .connect(3, "phone")
        .ping(LAMP_CONN, "lamp")
        .publish(3, "phone", "living_room_lights", "on")
        .deliver(2, "viewer", "living_room_lights", "on")
        .deliver(LAMP_CONN, "lamp", "living_room_lights", "on")
        .at_ms(5_150)
        .relay(true)
        .publish_flags(LAMP_CONN, "lamp", "living_room_lights/state", "on", 1, true)
        .deliver(2, "viewer", "living_room_lights/state", "on")
        .push(EventBody::Mqtt {
            conn: 3,
            client: Some("phone".into()),
            dir: Direction::ToBroker,
            packet: Packet::Disconnect {
                code: DisconnectCode::NormalDisconnection,
            },
        });
    let draft = tape.draft(&[], &[]);
    assert!(draft.activity);
    assert_eq!(
        lines(&draft),
        with_start(&[
            r#"publish: { as: phone, topic: living_room_lights, payload: "on", qos: 1 }"#,
            // 147 ms after the publish: 3 × is 441 ms, rounded up.
            r#"expect_relay: { board: lamp, state: "on", within: 500ms }"#,
            r#"expect_message: { topic: living_room_lights/state, payload: "on", qos: 1, retain: true, from: lamp, to: viewer, within: 500ms }"#,
        ])
    );
    let clients: Vec<&str> = draft
        .scenario
        .clients
        .iter()
        .map(|c| c.name.as_str())
        .collect();
    assert_eq!(clients, ["viewer", "phone"]);
    assert_eq!(draft.scenario.name, "recorded 2025-03-04 05:06");
    assert_eq!(
        draft.recorded_at.as_deref(),
        Some("2025-03-04T05:06:07.890Z")
    );
}

#[test]
fn a_press_on_the_simulator_and_a_relay_change_nothing_explains_are_both_presses() {
    let mut tape = Tape::new();
    tape.lamp_starts()
        .at_ms(2_000)
        .change(BoardChange::SwitchPressed)
        .relay(true)
        .publish(LAMP_CONN, "lamp", "living_room_lights", "on")
        // Its own message coming back explains nothing.
        .deliver(LAMP_CONN, "lamp", "living_room_lights", "on")
        .change(BoardChange::SwitchReleased)
        .at_ms(6_000)
        // A bench board: a hand on the switch, seen only as the relay.
        .relay(false)
        .publish(LAMP_CONN, "lamp", "living_room_lights", "off")
        .deliver(LAMP_CONN, "lamp", "living_room_lights", "off");
    let draft = tape.draft(&[], &[]);
    assert_eq!(
        lines(&draft),
        with_start(&[
            "press_switch: { board: lamp }",
            r#"expect_relay: { board: lamp, state: "on", within: 200ms }"#,
            r#"expect_message: { topic: living_room_lights, payload: "on", qos: 1, from: lamp, within: 200ms }"#,
            // The second press is four seconds later: the pause keeps presses apart.
            "wait: { for: 1s }",
            "press_switch: { board: lamp }",
            r#"expect_relay: { board: lamp, state: "off", within: 200ms }"#,
            r#"expect_message: { topic: living_room_lights, payload: "off", qos: 1, from: lamp, within: 200ms }"#,
        ])
    );
    assert!(draft.scenario.clients.is_empty());
}

#[test]
fn a_command_that_changes_nothing_keeps_its_quiet_as_an_expectation() {
    let mut tape = Tape::new();
    tape.lamp_starts()
        .connect(3, "phone")
        .at_ms(1_000)
        .publish(3, "phone", "living_room_lights", "toggle")
        .deliver(LAMP_CONN, "lamp", "living_room_lights", "toggle")
        .at_ms(1_350)
        .publish(3, "phone", "living_room_lights", "off")
        .deliver(LAMP_CONN, "lamp", "living_room_lights", "off")
        .at_ms(9_000)
        .ping(3, "phone");
    let draft = tape.draft(&[], &[]);
    assert_eq!(
        lines(&draft),
        with_start(&[
            r#"publish: { as: phone, topic: living_room_lights, payload: toggle, qos: 1 }"#,
            // 350 ms until the next publish.
            r##"expect_no_message: { topic: "#", from: lamp, for: 350ms }"##,
            r#"publish: { as: phone, topic: living_room_lights, payload: "off", qos: 1 }"#,
            r##"expect_no_message: { topic: "#", from: lamp, for: 1s }"##,
        ])
    );
}

#[test]
fn wifi_drop_and_return_expect_the_link_to_go_and_come_back_and_the_will() {
    let mut tape = Tape::new();
    tape.lamp_starts()
        .connect(2, "viewer")
        .subscribed(2, "viewer")
        .at_ms(3_000)
        .change(BoardChange::WifiDown)
        .closed(LAMP_CONN, "lamp")
        .deliver(2, "viewer", "living_room_lights/status", "offline")
        .at_ms(4_000)
        .change(BoardChange::SwitchPressed)
        .relay(true)
        .at_ms(5_000)
        .change(BoardChange::WifiUp)
        .at_ms(5_300)
        .connect(LAMP_CONN, "lamp")
        .publish_flags(
            LAMP_CONN,
            "lamp",
            "living_room_lights/status",
            "online",
            1,
            true,
        )
        .publish_flags(LAMP_CONN, "lamp", "living_room_lights", "on", 1, true)
        .subscribed(LAMP_CONN, "lamp")
        .deliver_flags(LAMP_CONN, "lamp", "living_room_lights", "on", true);
    let draft = tape.draft(&[], &[]);
    assert_eq!(
        lines(&draft),
        with_start(&[
            "wifi: { board: lamp, state: down }",
            "expect_disconnected: { client: lamp, within: 200ms }",
            // A will is the broker's publish: no `from`.
            r#"expect_message: { topic: living_room_lights/status, payload: offline, to: viewer, within: 200ms }"#,
            "press_switch: { board: lamp }",
            r#"expect_relay: { board: lamp, state: "on", within: 200ms }"#,
            "wifi: { board: lamp, state: up }",
            // 300 ms: 900 ms, rounded up to 1 s, the default (not written).
            r#"expect_message: { topic: living_room_lights/status, payload: online, qos: 1, retain: true, from: lamp }"#,
            r#"expect_message: { topic: living_room_lights, payload: "on", qos: 1, retain: true, from: lamp }"#,
            "expect_connected: { client: lamp }",
        ])
    );
}

#[test]
fn a_retained_command_from_before_the_board_subscribed_is_the_setup() {
    let mut tape = Tape::new();
    tape.connect(3, "phone")
        .publish_flags(3, "phone", "living_room_lights", "on", 1, true)
        .lamp_starts()
        .deliver_flags(LAMP_CONN, "lamp", "living_room_lights", "on", true)
        .relay(true)
        .publish_flags(LAMP_CONN, "lamp", "living_room_lights/state", "on", 1, true);
    let draft = tape.draft(&[], &[]);
    let lines = lines(&draft);
    assert_eq!(
        lines[0],
        r#"publish: { as: phone, topic: living_room_lights, payload: "on", qos: 1, retain: true }"#
    );
    assert!(
        lines[1..].iter().all(|l| !l.starts_with("publish")),
        "{lines:#?}"
    );
    assert!(
        lines.contains(&r#"expect_relay: { board: lamp, state: "on", within: 200ms }"#.into()),
        "{lines:#?}"
    );
    assert!(draft.activity);
}

#[test]
fn a_reset_and_a_power_cycle_are_steps_with_what_the_board_did_after() {
    let mut tape = Tape::new();
    tape.lamp_starts()
        .connect(3, "phone")
        .at_ms(1_000)
        .publish(3, "phone", "living_room_lights", "on")
        .deliver(LAMP_CONN, "lamp", "living_room_lights", "on")
        .relay(true)
        .at_ms(2_000)
        .change(BoardChange::Reset)
        .relay(false)
        .closed(LAMP_CONN, "lamp")
        .lamp_starts()
        .at_ms(4_000)
        .change(BoardChange::PowerOff)
        .relay(false)
        .closed(LAMP_CONN, "lamp")
        .at_ms(4_250)
        .change(BoardChange::PowerOn)
        .lamp_starts();
    let lines = lines(&tape.draft(&[], &[]));
    let at = |text: &str| {
        lines
            .iter()
            .position(|l| l == text)
            .unwrap_or_else(|| panic!("no {text} in {lines:#?}"))
    };
    let reset = at("reset: { board: lamp }");
    let power = at("power_cycle: { board: lamp, off_for: 250ms }");
    assert_eq!(
        lines[reset + 1],
        r#"expect_relay: { board: lamp, state: "off", within: 200ms }"#
    );
    // Connected again after the reset: the link's last state, not the drop before it.
    let connected: Vec<usize> = lines
        .iter()
        .enumerate()
        .filter(|(_, l)| l.starts_with("expect_connected"))
        .map(|(i, _)| i)
        .collect();
    assert_eq!(connected.len(), 3, "{lines:#?}");
    assert!(connected[1] > reset && connected[1] < power, "{lines:#?}");
    assert!(
        !lines.iter().any(|l| l.starts_with("expect_disconnected")),
        "{lines:#?}"
    );
}

#[test]
fn a_message_seen_twice_after_one_stimulus_is_expected_with_its_count() {
    let mut tape = Tape::new();
    tape.lamp_starts()
        .at_ms(1_000)
        .change(BoardChange::SwitchPressed)
        .relay(true)
        .publish(LAMP_CONN, "lamp", "living_room_lights/state", "on")
        .at_ms(1_200)
        .publish(LAMP_CONN, "lamp", "living_room_lights/state", "on");
    let lines = lines(&tape.draft(&[], &[]));
    assert_eq!(
        lines.last().unwrap(),
        r#"expect_message: { topic: living_room_lights/state, payload: "on", qos: 1, from: lamp, within: 600ms, count: 2 }"#
    );
}

#[test]
fn made_up_client_ids_renames_and_secrets_never_reach_the_draft() {
    let secret = "s3cret-token".to_string();
    let mut tape = Tape::new();
    tape.lamp_starts()
        .connect(3, "mosq-Ab3dEf6hIj9kLm2n")
        .publish(
            3,
            "mosq-Ab3dEf6hIj9kLm2n",
            "living_room_lights",
            "auth s3cret-token",
        )
        .deliver(LAMP_CONN, "lamp", "living_room_lights", "auth s3cret-token")
        .connect(4, "phone-SN0042")
        .publish(4, "phone-SN0042", "living_room_lights", "on")
        .deliver(LAMP_CONN, "lamp", "living_room_lights", "on")
        .relay(true);
    let renames = [
        "phone-SN0042=phone".parse().unwrap(),
        "tablet=t".parse().unwrap(),
    ];
    let draft = tape.draft(&renames, std::slice::from_ref(&secret));
    let yaml = crate::scenario::to_yaml(&draft.scenario).unwrap();
    assert!(!yaml.contains(&secret), "{yaml}");
    assert!(!yaml.contains("SN0042"), "{yaml}");
    assert!(!yaml.contains("mosq-"), "{yaml}");
    assert!(yaml.contains("as: client_1"), "{yaml}");
    assert!(yaml.contains("as: phone"), "{yaml}");
    assert!(yaml.contains("auth REDACTED"), "{yaml}");
    assert!(
        draft.notes.iter().any(|n| n.contains("REDACTED")),
        "{:?}",
        draft.notes
    );
    assert_eq!(draft.unused_renames, ["tablet"]);
}

#[test]
fn a_session_without_activity_says_so_and_checks_the_start() {
    let mut tape = Tape::new();
    tape.lamp_starts()
        .at_ms(20_000)
        .ping(LAMP_CONN, "lamp")
        .ping(LAMP_CONN, "lamp");
    let draft = tape.draft(&[], &[]);
    assert!(!draft.activity);
    assert_eq!(lines(&draft), with_start(&[]));
    assert_eq!(
        draft.scenario.name,
        "recorded 2025-03-04 05:06 without activity"
    );
}

#[test]
fn a_board_that_never_connected_still_makes_a_scenario_that_says_so() {
    let draft = Tape::new().draft(&[], &[]);
    assert!(!draft.activity);
    assert_eq!(lines(&draft), ["expect_connected: { client: lamp }"]);
    assert!(
        draft.notes.iter().any(|n| n.contains("never connected")),
        "{:?}",
        draft.notes
    );
}

#[test]
fn binary_payloads_are_left_out_with_a_note() {
    let mut tape = Tape::new();
    tape.lamp_starts().connect(3, "phone").mqtt(
        3,
        "phone",
        Direction::ToBroker,
        Packet::Publish {
            topic: "living_room_lights".into(),
            payload: Payload(Bytes::from_static(&[0xff, 0x00])),
            qos: 0,
            retain: false,
            dup: false,
            pkid: None,
        },
    );
    let draft = tape.draft(&[], &[]);
    assert_eq!(lines(&draft), with_start(&[]));
    assert!(
        draft.notes.iter().any(|n| n.contains("binary")),
        "{:?}",
        draft.notes
    );
}

#[test]
fn a_long_recording_gets_a_timeout_that_holds_every_step() {
    let mut tape = Tape::new();
    tape.lamp_starts();
    // A slow relay: each press takes four seconds to show.
    for i in 0..12u64 {
        tape.at_ms(10_000 * (i + 1))
            .change(BoardChange::SwitchPressed)
            .at_ms(10_000 * (i + 1) + 4_000)
            .relay(i % 2 == 0);
    }
    let draft = tape.draft(&[], &[]);
    // Twelve relays of 12 s each, the pauses between the presses, and room to spare.
    assert_eq!(draft.scenario.timeout, Duration::from_secs(170));
}

#[test]
fn presses_keep_their_spacing_whatever_happened_between_them() {
    let mut tape = Tape::new();
    tape.lamp_starts()
        .at_ms(1_000)
        .change(BoardChange::SwitchPressed)
        .relay(true)
        .at_ms(1_200)
        .change(BoardChange::WifiDown)
        .closed(LAMP_CONN, "lamp")
        .at_ms(1_450)
        .change(BoardChange::SwitchPressed)
        .relay(false);
    let lines = lines(&tape.draft(&[], &[]));
    let second = lines
        .iter()
        .rposition(|l| l.starts_with("press_switch"))
        .unwrap();
    assert_eq!(lines[second - 1], "wait: { for: 450ms }", "{lines:#?}");
    assert_eq!(
        lines.iter().filter(|l| l.starts_with("wait")).count(),
        1,
        "{lines:#?}"
    );
}
