//! What a failing scenario tells, through the binary, the real broker and the simulated
//! board: the mistakes a newcomer makes first, each named in the story with its fix.

mod support;

use support::Suite;

fn run_failing(suite: &Suite, file: &str) -> String {
    let output = suite.hil(&["run", file]);
    let text = String::from_utf8_lossy(&output.stdout).into_owned()
        + &String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(1), "{text}");
    text
}

#[test]
fn a_command_before_the_board_subscribed_is_named_with_the_fix() {
    let suite = Suite::new();
    suite.add(
        "early.yaml",
        "name: command too early\n\
         boards:\n  lamp: { profile: sim }\n\
         clients:\n  phone: {}\n\
         steps:\n\
         \x20 - publish: { as: phone, topic: living_room_lights, payload: \"on\" }\n\
         \x20 - expect_relay: { board: lamp, state: on, within: 500ms }\n",
    );
    let check = suite.hil(&["check", "early.yaml"]);
    let warned = String::from_utf8_lossy(&check.stderr);
    assert_eq!(check.status.code(), Some(0), "{warned}");
    assert!(
        warned.contains("warning: early.yaml:7:5: `publish` to living_room_lights before anything waits for lamp"),
        "{warned}"
    );
    let text = run_failing(&suite, "early.yaml");
    assert!(
        text.contains("lamp subscribed to living_room_lights only at"),
        "{text}"
    );
    assert!(
        text.contains("after phone's publish on living_room_lights at"),
        "{text}"
    );
    assert!(
        text.contains("start with `expect_connected: { client: lamp }`"),
        "{text}"
    );
}

#[test]
fn debounced_presses_are_named_and_the_step_after_a_repeat_keeps_its_number() {
    let suite = Suite::new();
    suite.add(
        "presses.yaml",
        "name: presses too close\n\
         boards:\n  lamp: { profile: sim }\n\
         steps:\n\
         \x20 - expect_connected: { client: lamp, within: 5s }\n\
         \x20 - repeat:\n\
         \x20     times: 3\n\
         \x20     steps:\n\
         \x20       - press_switch: { board: lamp }\n\
         \x20 - expect_message: { topic: living_room_lights, from: lamp, count: 3, within: 300ms }\n",
    );
    let text = run_failing(&suite, "presses.yaml");
    assert!(
        text.contains("presses.yaml:10:5, step 3 `expect_message`"),
        "{text}"
    );
    assert!(
        text.contains("3 presses of lamp since the step began"),
        "{text}"
    );
    assert!(text.contains("debounce"), "{text}");
    assert!(text.contains("then 300ms more for late arrivals"), "{text}");
}

#[test]
fn steps_inside_a_repeat_are_numbered_within_it() {
    let suite = Suite::new();
    suite.add(
        "inside.yaml",
        "name: relay never on\n\
         boards:\n  lamp: { profile: sim }\n\
         steps:\n\
         \x20 - expect_connected: { client: lamp, within: 5s }\n\
         \x20 - repeat:\n\
         \x20     times: 2\n\
         \x20     steps:\n\
         \x20       - send_serial: { board: lamp, line: status }\n\
         \x20       - expect_relay: { board: lamp, state: on, within: 100ms }\n",
    );
    let text = run_failing(&suite, "inside.yaml");
    assert!(
        text.contains("inside.yaml:10:11, step 2.2 `expect_relay`"),
        "{text}"
    );
}
