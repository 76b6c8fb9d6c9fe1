//! The firmware contract, checked against the real C core through a recording HAL and a
//! clock that only moves when a test moves it.

use std::panic::{self, AssertUnwindSafe};

use hil_firmware::{ConnectRequest, Controller, Hal, State};

const T: &str = "living_room_lights";
const STATUS: &str = "living_room_lights/status";
const STATE: &str = "living_room_lights/state";
const CONFIG_SIZE: usize = 369;
const NOTHING: [Call; 0] = [];

#[derive(Clone, Debug, PartialEq, Eq)]
enum Call {
    Relay(bool),
    Publish {
        topic: String,
        payload: Vec<u8>,
        qos: u8,
        retain: bool,
    },
    Subscribe {
        topic: String,
        qos: u8,
    },
    Connect(ConnectRequest),
    Disconnect,
    WifiBegin {
        ssid: String,
        password: String,
    },
    Serial(String),
    ConfigWrite(Vec<u8>),
    Restart,
}

#[derive(Default)]
struct Fake {
    calls: Vec<Call>,
    now: u32,
    random: u32,
    storage: Option<Vec<u8>>,
    fail_publish: bool,
    fail_subscribe: bool,
    panic_on_serial: bool,
}

impl Hal for Fake {
    fn relay(&mut self, on: bool) {
        self.calls.push(Call::Relay(on));
    }

    fn publish(&mut self, topic: &str, payload: &[u8], qos: u8, retain: bool) -> bool {
        self.calls.push(Call::Publish {
            topic: topic.to_string(),
            payload: payload.to_vec(),
            qos,
            retain,
        });
        !self.fail_publish
    }

    fn subscribe(&mut self, topic: &str, qos: u8) -> bool {
        self.calls.push(Call::Subscribe {
            topic: topic.to_string(),
            qos,
        });
        !self.fail_subscribe
    }

    fn connect(&mut self, request: &ConnectRequest) {
        self.calls.push(Call::Connect(request.clone()));
    }

    fn disconnect(&mut self) {
        self.calls.push(Call::Disconnect);
    }

    fn wifi_begin(&mut self, ssid: &str, password: &str) {
        self.calls.push(Call::WifiBegin {
            ssid: ssid.to_string(),
            password: password.to_string(),
        });
    }

    fn serial_line(&mut self, line: &str) {
        assert!(!self.panic_on_serial, "serial port broke");
        self.calls.push(Call::Serial(line.to_string()));
    }

    fn millis(&mut self) -> u32 {
        self.now
    }

    fn random(&mut self) -> u32 {
        self.random
    }

    fn config_read(&mut self, buf: &mut [u8]) -> bool {
        match &self.storage {
            Some(stored) if stored.len() == buf.len() => {
                buf.copy_from_slice(stored);
                true
            }
            _ => false,
        }
    }

    fn config_write(&mut self, data: &[u8]) {
        self.storage = Some(data.to_vec());
        self.calls.push(Call::ConfigWrite(data.to_vec()));
    }

    fn restart(&mut self) {
        self.calls.push(Call::Restart);
    }
}

type Lamp = Controller<Fake>;

fn serial(line: &str) -> Call {
    Call::Serial(line.to_string())
}

/// Every message the firmware sends is QoS 1 and retained.
fn published(topic: &str, payload: &str) -> Call {
    Call::Publish {
        topic: topic.to_string(),
        payload: payload.as_bytes().to_vec(),
        qos: 1,
        retain: true,
    }
}

fn subscribed(topic: &str) -> Call {
    Call::Subscribe {
        topic: topic.to_string(),
        qos: 1,
    }
}

fn default_connect() -> Call {
    Call::Connect(ConnectRequest {
        client_id: "light-controller".to_string(),
        host: "127.0.0.1".to_string(),
        port: 1883,
        will_topic: STATUS.to_string(),
        will_payload: b"offline".to_vec(),
        will_qos: 1,
        will_retain: true,
    })
}

fn booted_with(fake: Fake) -> Lamp {
    let mut lamp = Controller::new(fake, "1.2.3");
    lamp.boot();
    lamp
}

fn booted() -> Lamp {
    booted_with(Fake::default())
}

/// Booted, connected, subscribed, with the calls so far forgotten.
fn active() -> Lamp {
    let mut lamp = booted();
    lamp.wifi(true);
    lamp.mqtt_connected();
    assert_eq!(lamp.state(), State::Active);
    take(&mut lamp);
    lamp
}

fn take(lamp: &mut Lamp) -> Vec<Call> {
    std::mem::take(&mut lamp.hal_mut().calls)
}

fn serial_lines(calls: &[Call]) -> Vec<String> {
    calls
        .iter()
        .filter_map(|call| match call {
            Call::Serial(line) => Some(line.clone()),
            _ => None,
        })
        .collect()
}

fn publishes(calls: &[Call]) -> Vec<Call> {
    calls
        .iter()
        .filter(|call| matches!(call, Call::Publish { .. }))
        .cloned()
        .collect()
}

fn advance(lamp: &mut Lamp, ms: u32) {
    let hal = lamp.hal_mut();
    hal.now = hal.now.wrapping_add(ms);
    lamp.tick();
}

/// Raw button edge `at` ms on the fake clock.
fn edge(lamp: &mut Lamp, at: u32, pressed: bool) {
    lamp.hal_mut().now = at;
    lamp.button(pressed);
}

fn status_line(lamp: &mut Lamp) -> String {
    take(lamp);
    lamp.serial_input("status");
    let calls = take(lamp);
    assert_eq!(calls.len(), 1, "{calls:?}");
    serial_lines(&calls).remove(0)
}

// ---- boot and connection ----

#[test]
fn boot_prints_banner_and_every_state_change() {
    let mut lamp = Controller::new(Fake::default(), "1.2.3");
    assert_eq!(lamp.state(), State::Offline);
    lamp.boot();
    assert_eq!(
        take(&mut lamp),
        [
            Call::Relay(false),
            serial("HIL boot fw=light-controller version=1.2.3"),
            serial("HIL state=CONNECTING_WIFI"),
            Call::WifiBegin {
                ssid: String::new(),
                password: String::new()
            },
        ]
    );
    assert_eq!(lamp.state(), State::ConnectingWifi);

    lamp.wifi(true);
    assert_eq!(
        take(&mut lamp),
        [serial("HIL state=LOOKING_FOR_BROKER"), default_connect()]
    );
    assert_eq!(lamp.state(), State::LookingForBroker);

    lamp.mqtt_connected();
    let calls = take(&mut lamp);
    assert_eq!(serial_lines(&calls), ["HIL state=ACTIVE"]);
    assert_eq!(lamp.state(), State::Active);
    assert!(!lamp.relay());
}

#[test]
fn after_connack_status_then_subscribe_then_state() {
    let mut lamp = booted();
    lamp.wifi(true);
    take(&mut lamp);
    lamp.mqtt_connected();
    // No switch press while offline: nothing is published on T itself.
    assert_eq!(
        take(&mut lamp),
        [
            serial("HIL state=ACTIVE"),
            published(STATUS, "online"),
            subscribed(T),
            published(STATE, "off"),
        ]
    );
}

#[test]
fn version_is_one_visible_word_of_at_most_31_bytes() {
    let mut lamp = Controller::new(Fake::default(), "1.2 beta\n");
    lamp.boot();
    assert_eq!(
        serial_lines(&take(&mut lamp))[0],
        "HIL boot fw=light-controller version=1.2?beta?"
    );
    let long = "9".repeat(40);
    let mut lamp = Controller::new(Fake::default(), &long);
    lamp.boot();
    assert_eq!(
        serial_lines(&take(&mut lamp))[0],
        format!("HIL boot fw=light-controller version={}", "9".repeat(31))
    );
}

#[test]
fn events_before_boot_are_ignored() {
    let mut lamp = Controller::new(Fake::default(), "1.2.3");
    lamp.press();
    lamp.button(true);
    lamp.wifi(true);
    lamp.mqtt_connected();
    lamp.message(T, b"on");
    lamp.serial_input("status");
    lamp.tick();
    assert_eq!(take(&mut lamp), NOTHING);
    assert!(!lamp.relay());
    assert_eq!(lamp.state(), State::Offline);
}

#[test]
fn stale_connect_outcomes_are_ignored() {
    let mut lamp = booted();
    take(&mut lamp);
    // No connect request is outstanding while Wi-Fi is down.
    lamp.mqtt_connected();
    lamp.mqtt_connect_failed();
    lamp.mqtt_lost();
    assert_eq!(take(&mut lamp), NOTHING);
    assert_eq!(lamp.state(), State::ConnectingWifi);

    let mut lamp = active();
    lamp.mqtt_connected();
    assert_eq!(take(&mut lamp), NOTHING);
}

// ---- commands on T ----

#[test]
fn commands_ignore_case_and_surrounding_whitespace() {
    let mut lamp = active();
    for (payload, on) in [
        ("on", true),
        ("  OFF\r\n", false),
        ("\tOn ", true),
        ("oFf", false),
        ("ON\n", true),
    ] {
        lamp.message(T, payload.as_bytes());
        let word = if on { "on" } else { "off" };
        assert_eq!(
            take(&mut lamp),
            [
                Call::Relay(on),
                serial(&format!("HIL relay={word}")),
                published(STATE, word),
            ],
            "payload {payload:?}"
        );
        assert_eq!(lamp.relay(), on);
    }
}

#[test]
fn invalid_payloads_warn_and_change_nothing() {
    let huge = vec![b'o'; 1 << 20];
    let invalid: [&[u8]; 11] = [
        b"toggle",
        b"",
        b"   ",
        &huge,
        b"\xff\xfe",
        b"o\xffn",
        b"o\0n",
        b"on\0",
        b"onn",
        b"o n",
        b"1",
    ];
    for relay_on in [false, true] {
        let mut lamp = active();
        if relay_on {
            lamp.message(T, b"on");
            take(&mut lamp);
        }
        for payload in invalid {
            lamp.message(T, payload);
            assert_eq!(
                take(&mut lamp),
                [serial("HIL warn=invalid_payload")],
                "payload of {} bytes",
                payload.len()
            );
            assert_eq!(lamp.relay(), relay_on);
        }
    }
}

#[test]
fn the_same_state_again_does_nothing() {
    let mut lamp = active();
    lamp.message(T, b"off");
    assert_eq!(take(&mut lamp), NOTHING);
    lamp.message(T, b"on");
    assert_eq!(take(&mut lamp).len(), 3);
    lamp.message(T, b" ON ");
    assert_eq!(take(&mut lamp), NOTHING);
    assert!(lamp.relay());
}

#[test]
fn other_topics_are_ignored_silently() {
    let mut lamp = active();
    for topic in [
        STATE,
        STATUS,
        "kitchen",
        "living_room_lights/",
        "LIVING_ROOM_LIGHTS",
        "",
    ] {
        lamp.message(topic, b"on");
    }
    assert_eq!(take(&mut lamp), NOTHING);
    assert!(!lamp.relay());
}

#[test]
fn own_echo_makes_no_publish() {
    let mut lamp = active();
    lamp.press();
    assert_eq!(
        publishes(&take(&mut lamp)),
        [published(T, "on"), published(STATE, "on")]
    );
    // The broker delivers the device's own message back to it.
    lamp.message(T, b"on");
    assert_eq!(take(&mut lamp), NOTHING);
}

// ---- the wall switch ----

#[test]
fn a_press_toggles_at_once_and_publishes() {
    let mut lamp = active();
    edge(&mut lamp, 1000, true);
    assert_eq!(
        take(&mut lamp),
        [
            Call::Relay(true),
            serial("HIL relay=on"),
            published(T, "on"),
            published(STATE, "on"),
        ]
    );
}

#[test]
fn contact_bounce_counts_once() {
    let mut lamp = active();
    edge(&mut lamp, 1000, true);
    assert_eq!(take(&mut lamp).len(), 4);
    for ms in 1..=8 {
        edge(&mut lamp, 1000 + ms, ms % 2 == 0);
    }
    edge(&mut lamp, 1040, false);
    for _ in 0..100 {
        advance(&mut lamp, 1);
    }
    assert_eq!(take(&mut lamp), NOTHING);
    assert!(lamp.relay());
}

#[test]
fn two_presses_31_ms_apart_count_twice() {
    let mut lamp = active();
    edge(&mut lamp, 1000, true);
    edge(&mut lamp, 1010, false);
    edge(&mut lamp, 1031, true);
    let calls = take(&mut lamp);
    assert_eq!(serial_lines(&calls), ["HIL relay=on", "HIL relay=off"]);
    assert_eq!(
        publishes(&calls),
        [
            published(T, "on"),
            published(STATE, "on"),
            published(T, "off"),
            published(STATE, "off"),
        ]
    );
}

#[test]
fn a_second_press_inside_the_window_is_bounce() {
    let mut lamp = active();
    edge(&mut lamp, 1000, true);
    edge(&mut lamp, 1010, false);
    edge(&mut lamp, 1029, true);
    edge(&mut lamp, 1035, false);
    advance(&mut lamp, 100);
    assert_eq!(serial_lines(&take(&mut lamp)), ["HIL relay=on"]);
}

#[test]
fn a_press_held_through_the_end_of_a_window_acts_when_it_ends() {
    let mut lamp = active();
    edge(&mut lamp, 1000, true);
    edge(&mut lamp, 1035, false);
    // Pressed again inside the release's window, and held.
    edge(&mut lamp, 1050, true);
    assert_eq!(serial_lines(&take(&mut lamp)), ["HIL relay=on"]);
    lamp.hal_mut().now = 1064;
    lamp.tick();
    assert_eq!(take(&mut lamp), NOTHING);
    lamp.hal_mut().now = 1065;
    lamp.tick();
    assert_eq!(serial_lines(&take(&mut lamp)), ["HIL relay=off"]);
}

#[test]
fn debounce_is_configurable() {
    let mut lamp = active();
    lamp.serial_input("config debounce_ms=100");
    assert_eq!(
        serial_lines(&take(&mut lamp)),
        ["HIL config saved keys=debounce_ms"]
    );
    edge(&mut lamp, 1000, true);
    edge(&mut lamp, 1010, false);
    edge(&mut lamp, 1060, true);
    assert_eq!(serial_lines(&take(&mut lamp)), ["HIL relay=on"]);
    edge(&mut lamp, 1070, false);
    edge(&mut lamp, 1161, true);
    assert_eq!(serial_lines(&take(&mut lamp)), ["HIL relay=off"]);
    edge(&mut lamp, 1300, false);

    lamp.serial_input("config debounce_ms=0");
    take(&mut lamp);
    edge(&mut lamp, 2000, true);
    edge(&mut lamp, 2000, false);
    edge(&mut lamp, 2001, true);
    assert_eq!(
        serial_lines(&take(&mut lamp)),
        ["HIL relay=on", "HIL relay=off"]
    );
}

#[test]
fn debounce_works_across_the_millis_wrap() {
    let mut lamp = active();
    edge(&mut lamp, u32::MAX - 5, true);
    edge(&mut lamp, u32::MAX, false);
    edge(&mut lamp, 10, true);
    edge(&mut lamp, 20, false);
    edge(&mut lamp, 26, true);
    assert_eq!(
        serial_lines(&take(&mut lamp)),
        ["HIL relay=on", "HIL relay=off"]
    );
}

#[test]
fn press_command_is_a_switch_press() {
    let mut lamp = active();
    lamp.serial_input("press");
    assert_eq!(
        take(&mut lamp),
        [
            Call::Relay(true),
            serial("HIL relay=on"),
            published(T, "on"),
            published(STATE, "on"),
        ]
    );
    lamp.serial_input("  press \r\n");
    assert!(!lamp.relay());
}

// ---- offline ----

#[test]
fn presses_before_the_first_connect_are_published_before_subscribing() {
    let mut lamp = booted();
    take(&mut lamp);
    lamp.press();
    assert_eq!(take(&mut lamp), [Call::Relay(true), serial("HIL relay=on")]);
    lamp.press();
    lamp.press();
    assert!(publishes(&take(&mut lamp)).is_empty());
    lamp.wifi(true);
    take(&mut lamp);
    lamp.mqtt_connected();
    assert_eq!(
        take(&mut lamp),
        [
            serial("HIL state=ACTIVE"),
            published(STATUS, "online"),
            published(T, "on"),
            subscribed(T),
            published(STATE, "on"),
        ]
    );
}

#[test]
fn offline_presses_after_a_loss_publish_only_the_latest_state() {
    let mut lamp = active();
    lamp.message(T, b"on");
    lamp.mqtt_lost();
    assert_eq!(lamp.state(), State::LookingForBroker);
    take(&mut lamp);
    // Three presses: off, on, off. The light works without the network.
    for at in [5000, 5100, 5200] {
        edge(&mut lamp, at, true);
        edge(&mut lamp, at + 50, false);
    }
    let calls = take(&mut lamp);
    assert_eq!(
        serial_lines(&calls),
        ["HIL relay=off", "HIL relay=on", "HIL relay=off"]
    );
    assert!(publishes(&calls).is_empty());
    lamp.hal_mut().now = 10_000;
    lamp.tick();
    assert_eq!(take(&mut lamp), [default_connect()]);
    lamp.mqtt_connected();
    assert_eq!(
        take(&mut lamp),
        [
            serial("HIL state=ACTIVE"),
            published(STATUS, "online"),
            published(T, "off"),
            subscribed(T),
            published(STATE, "off"),
        ]
    );
    // The retained value delivered by the new subscription is the device's own.
    lamp.message(T, b"off");
    assert_eq!(take(&mut lamp), NOTHING);

    // Delivered once: the next reconnect has nothing pending.
    lamp.mqtt_lost();
    advance(&mut lamp, 10_000);
    lamp.mqtt_connected();
    assert!(!take(&mut lamp).contains(&published(T, "off")));
}

#[test]
fn press_while_wifi_is_down_wins_after_it_returns() {
    let mut lamp = active();
    lamp.message(T, b"on");
    take(&mut lamp);
    lamp.wifi(false);
    assert_eq!(take(&mut lamp), [serial("HIL state=CONNECTING_WIFI")]);
    assert!(lamp.relay(), "the relay keeps its state");
    lamp.press();
    assert_eq!(
        take(&mut lamp),
        [Call::Relay(false), serial("HIL relay=off")]
    );
    lamp.wifi(true);
    assert_eq!(
        take(&mut lamp),
        [serial("HIL state=LOOKING_FOR_BROKER"), default_connect()]
    );
    lamp.mqtt_connected();
    assert_eq!(
        take(&mut lamp),
        [
            serial("HIL state=ACTIVE"),
            published(STATUS, "online"),
            published(T, "off"),
            subscribed(T),
            published(STATE, "off"),
        ]
    );
}

#[test]
fn a_press_that_could_not_be_published_goes_out_at_the_next_connect() {
    let mut lamp = active();
    lamp.hal_mut().fail_publish = true;
    lamp.press();
    lamp.hal_mut().fail_publish = false;
    lamp.mqtt_lost();
    advance(&mut lamp, 10_000);
    take(&mut lamp);
    lamp.mqtt_connected();
    assert_eq!(
        publishes(&take(&mut lamp)),
        [
            published(STATUS, "online"),
            published(T, "on"),
            published(STATE, "on"),
        ]
    );
}

#[test]
fn a_failed_subscribe_is_reported() {
    let mut lamp = booted();
    lamp.hal_mut().fail_subscribe = true;
    lamp.wifi(true);
    take(&mut lamp);
    lamp.mqtt_connected();
    assert_eq!(
        serial_lines(&take(&mut lamp)),
        ["HIL state=ACTIVE", "HIL warn=subscribe_failed"]
    );
}

// ---- reconnect backoff ----

/// Milliseconds until the firmware asks to connect again, ticking every millisecond.
fn ms_until_connect(lamp: &mut Lamp) -> u32 {
    for elapsed in 1..=20_000 {
        advance(lamp, 1);
        let calls = take(lamp);
        if calls.iter().any(|call| matches!(call, Call::Connect(_))) {
            return elapsed;
        }
        assert_eq!(calls, NOTHING, "only a reconnect is expected");
    }
    panic!("no reconnect within 20 s");
}

fn broker_retry_delays(random: u32, attempts: usize) -> (Lamp, Vec<u32>) {
    let mut lamp = booted();
    lamp.hal_mut().now = u32::MAX - 3000; // the timer must survive the millis wrap
    lamp.hal_mut().random = random;
    lamp.wifi(true);
    lamp.message(T, b"on");
    take(&mut lamp);
    let mut delays = Vec::new();
    for _ in 0..attempts {
        lamp.mqtt_connect_failed();
        assert_eq!(take(&mut lamp), NOTHING);
        delays.push(ms_until_connect(&mut lamp));
    }
    (lamp, delays)
}

#[test]
fn backoff_doubles_to_8_s_within_20_percent_and_resets_after_success() {
    let bases = [250, 500, 1000, 2000, 4000, 8000, 8000, 8000];
    for (random, scale) in [(0, 0.8), (u32::MAX, 1.2), (1 << 31, 1.0)] {
        let (mut lamp, delays) = broker_retry_delays(random, bases.len());
        let want: Vec<u32> = bases
            .iter()
            .map(|&b| (f64::from(b) * scale) as u32)
            .collect();
        assert_eq!(delays, want, "random = {random:#x}");
        for (delay, base) in delays.iter().zip(bases) {
            assert!(
                (base * 4 / 5..=base * 6 / 5).contains(delay),
                "{delay} ms is not within 20 % of {base} ms"
            );
        }
        assert_eq!(lamp.state(), State::LookingForBroker);
        assert!(lamp.relay(), "the relay keeps its state while reconnecting");

        lamp.mqtt_connected();
        lamp.mqtt_lost();
        assert_eq!(
            serial_lines(&take(&mut lamp)),
            ["HIL state=ACTIVE", "HIL state=LOOKING_FOR_BROKER"]
        );
        assert_eq!(ms_until_connect(&mut lamp), want[0], "reset to 250 ms");
    }
}

#[test]
fn wifi_loss_retries_wifi_with_backoff() {
    let mut lamp = active();
    lamp.message(T, b"on");
    take(&mut lamp);
    lamp.wifi(false);
    assert_eq!(take(&mut lamp), [serial("HIL state=CONNECTING_WIFI")]);
    let mut delays = Vec::new();
    let mut since = 0;
    while delays.len() < 7 {
        advance(&mut lamp, 1);
        since += 1;
        let calls = take(&mut lamp);
        if !calls.is_empty() {
            assert_eq!(
                calls,
                [Call::WifiBegin {
                    ssid: String::new(),
                    password: String::new()
                }]
            );
            delays.push(since);
            since = 0;
        }
    }
    assert_eq!(delays, [200, 400, 800, 1600, 3200, 6400, 6400]);
    assert!(lamp.relay());
    lamp.wifi(true);
    assert_eq!(
        take(&mut lamp),
        [serial("HIL state=LOOKING_FOR_BROKER"), default_connect()]
    );
}

// ---- console and configuration ----

#[test]
fn status_line_format() {
    let mut lamp = booted();
    assert_eq!(
        status_line(&mut lamp),
        "HIL status state=CONNECTING_WIFI relay=off topic=living_room_lights broker=127.0.0.1:1883"
    );
    let mut lamp = active();
    lamp.message(T, b"on");
    assert_eq!(
        status_line(&mut lamp),
        "HIL status state=ACTIVE relay=on topic=living_room_lights broker=127.0.0.1:1883"
    );
}

#[test]
fn config_saves_applies_and_never_shows_the_password() {
    let mut lamp = active();
    lamp.serial_input(
        "config ssid=home password=hunter2 broker=10.0.0.5:1884 client_id=lamp-2 topic=kitchen debounce_ms=50",
    );
    let calls = take(&mut lamp);
    let stored = lamp.hal().storage.clone().expect("config written");
    assert_eq!(stored.len(), CONFIG_SIZE);
    assert_eq!(
        calls,
        [
            Call::ConfigWrite(stored),
            serial("HIL config saved keys=ssid,password,broker,client_id,topic,debounce_ms"),
            // Leaving the old broker on purpose: a clean disconnect would suppress the will.
            published(STATUS, "offline"),
            Call::Disconnect,
            serial("HIL state=CONNECTING_WIFI"),
            Call::WifiBegin {
                ssid: "home".to_string(),
                password: "hunter2".to_string()
            },
        ]
    );
    lamp.wifi(true);
    assert_eq!(
        take(&mut lamp),
        [
            serial("HIL state=LOOKING_FOR_BROKER"),
            Call::Connect(ConnectRequest {
                client_id: "lamp-2".to_string(),
                host: "10.0.0.5".to_string(),
                port: 1884,
                will_topic: "kitchen/status".to_string(),
                will_payload: b"offline".to_vec(),
                will_qos: 1,
                will_retain: true,
            }),
        ]
    );
    lamp.mqtt_connected();
    assert!(take(&mut lamp).contains(&subscribed("kitchen")));
    lamp.message("kitchen", b"on");
    assert!(lamp.relay());
    assert_eq!(
        status_line(&mut lamp),
        "HIL status state=ACTIVE relay=on topic=kitchen broker=10.0.0.5:1884"
    );
    // A bad password value is refused without being shown either.
    lamp.serial_input(format!("config password={}", "hunter2".repeat(10)));
    lamp.serial_input("config password= hunter2");
    assert_eq!(
        serial_lines(&take(&mut lamp)),
        [
            "HIL warn=bad_config key=password",
            // A stray word that is not a key is not echoed: it may be part of a password.
            "HIL warn=bad_config key=",
        ]
    );
}

#[test]
fn a_broker_change_reconnects_without_touching_wifi() {
    let mut lamp = active();
    lamp.serial_input("config broker=mqtt.local topic=kitchen");
    let calls = take(&mut lamp);
    assert_eq!(
        calls[1..],
        [
            serial("HIL config saved keys=broker,topic"),
            published(STATUS, "offline"),
            Call::Disconnect,
            serial("HIL state=LOOKING_FOR_BROKER"),
            Call::Connect(ConnectRequest {
                client_id: "light-controller".to_string(),
                host: "mqtt.local".to_string(),
                port: 1883,
                will_topic: "kitchen/status".to_string(),
                will_payload: b"offline".to_vec(),
                will_qos: 1,
                will_retain: true,
            }),
        ]
    );
}

#[test]
fn unchanged_settings_are_saved_without_reconnecting() {
    let mut lamp = active();
    lamp.serial_input("config topic=living_room_lights broker=127.0.0.1:1883");
    let calls = take(&mut lamp);
    assert_eq!(calls.len(), 2);
    assert_eq!(calls[1], serial("HIL config saved keys=broker,topic"));
    assert_eq!(lamp.state(), State::Active);
}

#[test]
fn config_before_wifi_is_used_for_the_first_connect() {
    // How the simulator provisions a board: typed right after boot.
    let mut lamp = booted();
    take(&mut lamp);
    lamp.serial_input("config broker=127.0.0.1:41883 client_id=lamp");
    assert_eq!(
        serial_lines(&take(&mut lamp)),
        ["HIL config saved keys=broker,client_id"]
    );
    lamp.wifi(true);
    let calls = take(&mut lamp);
    let Call::Connect(request) = &calls[1] else {
        panic!("no connect in {calls:?}");
    };
    assert_eq!((request.client_id.as_str(), request.port), ("lamp", 41883));
}

#[test]
fn config_survives_a_new_controller_on_the_same_storage() {
    let mut lamp = active();
    lamp.serial_input(
        "config ssid=home password=hunter2 broker=10.0.0.5:1884 client_id=lamp-2 topic=kitchen debounce_ms=50",
    );
    let before = take(&mut lamp);
    let mut fake = lamp.into_hal();
    fake.calls.clear();

    let mut lamp = booted_with(fake);
    let calls = take(&mut lamp);
    assert_eq!(
        calls.last(),
        Some(&Call::WifiBegin {
            ssid: "home".to_string(),
            password: "hunter2".to_string()
        })
    );
    assert_eq!(
        status_line(&mut lamp),
        "HIL status state=CONNECTING_WIFI relay=off topic=kitchen broker=10.0.0.5:1884"
    );
    // debounce_ms=50 came back too: presses 40 ms apart are one press.
    edge(&mut lamp, 1000, true);
    edge(&mut lamp, 1010, false);
    edge(&mut lamp, 1040, true);
    assert_eq!(serial_lines(&take(&mut lamp)), ["HIL relay=on"]);

    for line in serial_lines(&before).iter().chain(&serial_lines(&calls)) {
        assert!(!line.contains("hunter2"), "password in {line:?}");
    }
}

fn fnv1a(bytes: &[u8]) -> u32 {
    bytes.iter().fold(2_166_136_261_u32, |h, &b| {
        (h ^ u32::from(b)).wrapping_mul(16_777_619)
    })
}

fn stored_config(line: &str) -> Vec<u8> {
    let mut lamp = booted();
    lamp.serial_input(line);
    lamp.hal().storage.clone().expect("config written")
}

#[test]
fn corrupt_storage_falls_back_to_defaults() {
    let good = stored_config("config topic=kitchen broker=10.0.0.5:1884 client_id=lamp-2");
    // The record layout documented in light_controller.c: checksum over bytes 0..365.
    assert_eq!(&good[..4], b"LCF1");
    assert_eq!(&good[234..241], b"kitchen");
    assert_eq!(&good[167..169], &1884_u16.to_le_bytes());
    assert_eq!(good[365..], fnv1a(&good[..365]).to_le_bytes());

    let flipped = |at: usize| {
        let mut bytes = good.clone();
        bytes[at] ^= 0x01;
        bytes
    };
    let mut port_zero = good.clone();
    port_zero[167..169].copy_from_slice(&[0, 0]);
    let sum = fnv1a(&port_zero[..365]).to_le_bytes();
    port_zero[365..].copy_from_slice(&sum);

    let corrupt: Vec<(&str, Option<Vec<u8>>)> = vec![
        ("nothing stored", None),
        ("magic", Some(flipped(0))),
        ("topic byte", Some(flipped(240))),
        ("checksum", Some(flipped(CONFIG_SIZE - 1))),
        ("erased EEPROM", Some(vec![0xff; CONFIG_SIZE])),
        ("zeros", Some(vec![0; CONFIG_SIZE])),
        ("wrong length", Some(good[..CONFIG_SIZE - 1].to_vec())),
        ("valid checksum, port 0", Some(port_zero)),
    ];
    for (what, storage) in corrupt {
        let mut lamp = booted_with(Fake {
            storage,
            ..Fake::default()
        });
        assert_eq!(
            status_line(&mut lamp),
            "HIL status state=CONNECTING_WIFI relay=off topic=living_room_lights broker=127.0.0.1:1883",
            "{what}"
        );
        lamp.wifi(true);
        assert_eq!(take(&mut lamp)[1], default_connect(), "{what}");
    }

    let mut lamp = booted_with(Fake {
        storage: Some(good),
        ..Fake::default()
    });
    assert!(status_line(&mut lamp).contains("topic=kitchen"));
}

#[test]
fn bad_config_is_refused_and_saves_nothing() {
    let cases = [
        ("config colour=red", "colour"),
        ("config ssid", "ssid"),
        ("config broker=host:0", "broker"),
        ("config broker=host:65536", "broker"),
        ("config broker=host:", "broker"),
        ("config broker=:1883", "broker"),
        ("config broker=fe80::1", "broker"),
        ("config broker=", "broker"),
        ("config topic=lights/#", "topic"),
        ("config topic=+/lights", "topic"),
        ("config topic=", "topic"),
        ("config client_id=", "client_id"),
        ("config debounce_ms=1001", "debounce_ms"),
        ("config debounce_ms=-1", "debounce_ms"),
        ("config debounce_ms=ten", "debounce_ms"),
        ("config", ""),
        ("config    ", ""),
        ("config ssid=home topic=bad#", "topic"),
        ("config hunter2", ""),
        ("config SSID=home", "SSID"),
    ];
    let long_topic = format!("config topic={}", "a".repeat(129));
    let long_ssid = format!("config ssid={}", "s".repeat(33));
    let mut lamp = active();
    for (line, key) in cases
        .iter()
        .copied()
        .chain([(long_topic.as_str(), "topic"), (long_ssid.as_str(), "ssid")])
    {
        lamp.serial_input(line);
        assert_eq!(
            take(&mut lamp),
            [serial(&format!("HIL warn=bad_config key={key}"))],
            "{line:?}"
        );
    }
    lamp.serial_input(b"config \xffkey=1".as_slice());
    assert_eq!(take(&mut lamp), [serial("HIL warn=bad_config key=?key")]);
    assert_eq!(lamp.hal().storage, None);
    assert!(status_line(&mut lamp).contains("topic=living_room_lights"));
}

#[test]
fn longest_values_are_accepted_and_printed_whole() {
    let topic = "t".repeat(128);
    let host = "h".repeat(64);
    let mut lamp = active();
    lamp.serial_input(format!("config topic={topic} broker={host}:65535"));
    assert_eq!(
        status_line(&mut lamp),
        format!("HIL status state=LOOKING_FOR_BROKER relay=off topic={topic} broker={host}:65535")
    );
}

#[test]
fn reboot_leaves_the_broker_and_asks_for_a_restart() {
    let mut lamp = active();
    lamp.serial_input("reboot");
    assert_eq!(
        take(&mut lamp),
        [
            published(STATUS, "offline"),
            Call::Disconnect,
            serial("HIL state=OFFLINE"),
            Call::Restart,
        ]
    );
    assert_eq!(lamp.state(), State::Offline);
    lamp.press();
    advance(&mut lamp, 10_000);
    assert_eq!(take(&mut lamp), NOTHING);

    let mut lamp = booted();
    take(&mut lamp);
    lamp.serial_input("reboot");
    assert_eq!(
        take(&mut lamp),
        [serial("HIL state=OFFLINE"), Call::Restart]
    );
    lamp.boot();
    assert_eq!(
        serial_lines(&take(&mut lamp)),
        [
            "HIL boot fw=light-controller version=1.2.3",
            "HIL state=CONNECTING_WIFI"
        ]
    );
}

#[test]
fn unknown_commands_warn_and_blank_lines_are_ignored() {
    let mut lamp = active();
    for line in [
        "toggle",
        "press now",
        "STATUS",
        "configure ssid=x",
        "status\0",
    ] {
        lamp.serial_input(line);
        assert_eq!(
            take(&mut lamp),
            [serial("HIL warn=unknown_command")],
            "{line:?}"
        );
    }
    lamp.serial_input(b"\xff\xfe".as_slice());
    assert_eq!(take(&mut lamp), [serial("HIL warn=unknown_command")]);
    for line in ["", "   ", "\r\n"] {
        lamp.serial_input(line);
    }
    assert_eq!(take(&mut lamp), NOTHING);
}

// ---- the Rust wrapper ----

#[test]
fn controller_is_send() {
    fn assert_send<T: Send>() {}
    assert_send::<Lamp>();
}

#[test]
fn a_hal_panic_resumes_after_the_call_and_leaves_the_controller_usable() {
    let mut lamp = Controller::new(
        Fake {
            panic_on_serial: true,
            ..Fake::default()
        },
        "1.2.3",
    );
    let outcome = panic::catch_unwind(AssertUnwindSafe(|| lamp.boot()));
    let message = *outcome
        .expect_err("the panic comes back")
        .downcast::<&str>()
        .expect("a message");
    assert_eq!(message, "serial port broke");
    lamp.hal_mut().panic_on_serial = false;
    lamp.serial_input("status");
    assert_eq!(
        serial_lines(&take(&mut lamp)).last().map(String::as_str),
        Some("HIL status state=CONNECTING_WIFI relay=off topic=living_room_lights broker=127.0.0.1:1883")
    );
}

// ---- sleeping between ticks ----

#[test]
fn next_tick_says_when_the_timers_need_the_core() {
    let mut lamp = active();
    assert_eq!(
        lamp.next_tick(),
        None,
        "an idle, connected lamp needs no tick"
    );

    edge(&mut lamp, 1000, true);
    assert_eq!(
        lamp.next_tick(),
        Some(std::time::Duration::from_millis(30)),
        "the debounce window"
    );
    lamp.hal_mut().now = 1010;
    assert_eq!(lamp.next_tick(), Some(std::time::Duration::from_millis(20)));
    advance(&mut lamp, 20);
    assert_eq!(lamp.next_tick(), None, "the window closed at its tick");

    lamp.mqtt_lost();
    take(&mut lamp);
    let wait = lamp
        .next_tick()
        .expect("a reconnect timer runs")
        .as_millis() as u32;
    assert_eq!(
        ms_until_connect(&mut lamp),
        wait.max(1),
        "the connect comes exactly when announced"
    );
}
