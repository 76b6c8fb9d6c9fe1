//! What the broker owes a client by the MQTT specification, checked with hand-built
//! frames over TCP against the embedded broker (engine and tap): keep-alive 0, a silent
//! client's will, `$` topics, refused subscriptions, delivery QoS, close reasons.

mod support;

use std::time::Duration;

use hil::trace::{CloseReason, EventBody};
use support::{broker, closed_reason, dump, wait_for, DEADLINE};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

#[derive(Debug, Clone, Copy, PartialEq)]
enum Version {
    V311,
    V5,
}

/// A string field: two length bytes, then the bytes.
fn field(out: &mut Vec<u8>, text: &str) {
    out.extend_from_slice(&(text.len() as u16).to_be_bytes());
    out.extend_from_slice(text.as_bytes());
}

/// A frame: the first byte, the remaining length, the body.
fn frame(first: u8, body: &[u8]) -> Vec<u8> {
    let mut out = vec![first];
    let mut len = body.len();
    loop {
        let mut byte = (len % 128) as u8;
        len /= 128;
        if len > 0 {
            byte |= 0x80;
        }
        out.push(byte);
        if len == 0 {
            break;
        }
    }
    out.extend_from_slice(body);
    out
}

fn connect(
    version: Version,
    client_id: &str,
    keep_alive: u16,
    will: Option<(&str, &str)>,
) -> Vec<u8> {
    let mut body = Vec::new();
    field(&mut body, "MQTT");
    body.push(match version {
        Version::V311 => 4,
        Version::V5 => 5,
    });
    let clean = 0x02;
    body.push(if will.is_some() { clean | 0x04 } else { clean });
    body.extend_from_slice(&keep_alive.to_be_bytes());
    if version == Version::V5 {
        body.push(0); // no properties
    }
    field(&mut body, client_id);
    if let Some((topic, message)) = will {
        if version == Version::V5 {
            body.push(0);
        }
        field(&mut body, topic);
        field(&mut body, message);
    }
    frame(0x10, &body)
}

fn subscribe(version: Version, pkid: u16, filters: &[(&str, u8)]) -> Vec<u8> {
    let mut body = pkid.to_be_bytes().to_vec();
    if version == Version::V5 {
        body.push(0);
    }
    for (filter, qos) in filters {
        field(&mut body, filter);
        body.push(*qos);
    }
    frame(0x82, &body)
}

fn publish(version: Version, topic: &str, qos: u8, pkid: u16, payload: &str) -> Vec<u8> {
    let mut body = Vec::new();
    field(&mut body, topic);
    if qos > 0 {
        body.extend_from_slice(&pkid.to_be_bytes());
    }
    if version == Version::V5 {
        body.push(0);
    }
    body.extend_from_slice(payload.as_bytes());
    frame(0x30 | (qos << 1), &body)
}

fn ack(first: u8, pkid: u16) -> Vec<u8> {
    frame(first, &pkid.to_be_bytes())
}

const PINGREQ: [u8; 2] = [0xc0, 0x00];

/// One received frame: its first byte and its body.
#[derive(Debug)]
struct Frame {
    first: u8,
    body: Vec<u8>,
}

impl Frame {
    fn kind(&self) -> u8 {
        self.first >> 4
    }

    fn qos(&self) -> u8 {
        (self.first >> 1) & 0b11
    }

    fn pkid(&self) -> u16 {
        u16::from_be_bytes([self.body[0], self.body[1]])
    }

    fn publish_topic(&self) -> String {
        let len = usize::from(u16::from_be_bytes([self.body[0], self.body[1]]));
        String::from_utf8(self.body[2..2 + len].to_vec()).unwrap()
    }

    fn publish_pkid(&self) -> u16 {
        let len = usize::from(u16::from_be_bytes([self.body[0], self.body[1]]));
        u16::from_be_bytes([self.body[2 + len], self.body[3 + len]])
    }

    /// A SUBACK's return codes (after the packet id, and in v5 the properties).
    fn suback_codes(&self, version: Version) -> Vec<u8> {
        let skip = match version {
            Version::V311 => 2,
            Version::V5 => 3 + usize::from(self.body[2]),
        };
        self.body[skip..].to_vec()
    }
}

struct Raw {
    stream: TcpStream,
    version: Version,
    /// Frames that came while a QoS 2 flow waited for its PUBREL, for later.
    early: std::collections::VecDeque<Frame>,
}

impl Raw {
    async fn open(addr: std::net::SocketAddr, version: Version) -> Raw {
        Raw {
            stream: TcpStream::connect(addr).await.unwrap(),
            version,
            early: std::collections::VecDeque::new(),
        }
    }

    /// Connected and acknowledged, with no will and a long keep-alive.
    async fn connected(addr: std::net::SocketAddr, version: Version, client_id: &str) -> Raw {
        let mut raw = Raw::open(addr, version).await;
        raw.send(&connect(version, client_id, 60, None)).await;
        raw.expect_connack().await;
        raw
    }

    async fn send(&mut self, bytes: &[u8]) {
        self.stream.write_all(bytes).await.unwrap();
    }

    /// The next frame, or `None` when the broker closed the connection.
    async fn next(&mut self) -> Option<Frame> {
        if let Some(frame) = self.early.pop_front() {
            return Some(frame);
        }
        self.next_on_the_wire().await
    }

    async fn next_on_the_wire(&mut self) -> Option<Frame> {
        tokio::time::timeout(DEADLINE, self.read_frame())
            .await
            .expect("a frame or a close within the deadline")
    }

    async fn read_frame(&mut self) -> Option<Frame> {
        let first = self.stream.read_u8().await.ok()?;
        let mut len = 0usize;
        for shift in [0, 7, 14, 21] {
            let byte = self.stream.read_u8().await.ok()?;
            len |= usize::from(byte & 0x7f) << shift;
            if byte & 0x80 == 0 {
                break;
            }
        }
        let mut body = vec![0; len];
        self.stream.read_exact(&mut body).await.ok()?;
        Some(Frame { first, body })
    }

    async fn expect(&mut self, kind: u8, what: &str) -> Frame {
        let frame = self
            .next()
            .await
            .unwrap_or_else(|| panic!("closed instead of {what}"));
        assert_eq!(frame.kind(), kind, "expected {what}, got {frame:?}");
        frame
    }

    async fn expect_connack(&mut self) {
        let connack = self.expect(2, "CONNACK").await;
        assert_eq!(connack.body[1], 0, "CONNACK refused: {connack:?}");
    }

    async fn subscribe(&mut self, filters: &[(&str, u8)]) -> Vec<u8> {
        self.send(&subscribe(self.version, 1, filters)).await;
        let suback = self.expect(9, "SUBACK").await;
        suback.suback_codes(self.version)
    }

    /// Publishes and completes the publisher's side of the flow.
    async fn publish(&mut self, topic: &str, qos: u8, payload: &str) {
        self.send(&publish(self.version, topic, qos, 1, payload))
            .await;
        match qos {
            1 => {
                self.expect(4, "PUBACK").await;
            }
            2 => {
                self.expect(5, "PUBREC").await;
                self.send(&ack(0x62, 1)).await;
                self.expect(7, "PUBCOMP").await;
            }
            _ => {}
        }
    }

    /// The next PUBLISH, acknowledged as its QoS asks.
    async fn receive(&mut self) -> Frame {
        let delivery = self.expect(3, "PUBLISH").await;
        match delivery.qos() {
            1 => self.send(&ack(0x40, delivery.publish_pkid())).await,
            2 => {
                self.send(&ack(0x50, delivery.publish_pkid())).await;
                // Other deliveries may come before the PUBREL.
                let pubrel = loop {
                    let frame = self.next_on_the_wire().await.expect("PUBREL, not a close");
                    if frame.kind() == 6 {
                        break frame;
                    }
                    self.early.push_back(frame);
                };
                self.send(&ack(0x70, pubrel.pkid())).await;
            }
            _ => {}
        }
        delivery
    }

    /// Nothing else is pending for this client: a ping is answered next.
    async fn expect_nothing_more(&mut self) {
        self.send(&PINGREQ).await;
        self.expect(13, "PINGRESP (and nothing before it)").await;
    }
}

fn versions() -> [Version; 2] {
    [Version::V311, Version::V5]
}

#[tokio::test]
async fn keep_alive_zero_is_accepted_and_recorded_as_sent() {
    let (broker, trace) = broker().await;
    for version in versions() {
        let id = format!("zero-{version:?}");
        let mut raw = Raw::open(broker.addr(), version).await;
        raw.send(&connect(version, &id, 0, None)).await;
        raw.expect_connack().await;
        raw.expect_nothing_more().await;
        wait_for(&trace, "the CONNECT with keep-alive 0", |e| {
            matches!(&e.body, EventBody::Mqtt { client: Some(c), packet: hil::trace::Packet::Connect { keep_alive: 0, .. }, .. } if *c == id)
        })
        .await;
    }
}

#[tokio::test]
async fn a_client_silent_for_one_and_a_half_keep_alives_is_closed_and_its_will_sent() {
    let (broker, trace) = broker().await;
    for version in versions() {
        let mut watcher = Raw::connected(broker.addr(), version, "watcher").await;
        assert_eq!(watcher.subscribe(&[("wills/#", 0)]).await, [0]);
        let id = format!("silent-{version:?}");
        let mut silent = Raw::open(broker.addr(), version).await;
        silent
            .send(&connect(version, &id, 1, Some(("wills/lamp", "gone"))))
            .await;
        silent.expect_connack().await;
        assert!(
            silent.next().await.is_none(),
            "the broker closes the silent client"
        );
        let will = watcher.receive().await;
        assert_eq!(will.publish_topic(), "wills/lamp");
        let closed = wait_for(
            &trace,
            "the silent client's close",
            |e| matches!(&e.body, EventBody::ConnClosed { client: Some(c), .. } if *c == id),
        )
        .await;
        assert_eq!(
            closed_reason(&closed),
            Some(CloseReason::KeepAliveTimeout),
            "{}",
            dump(&trace)
        );
    }
}

#[tokio::test]
async fn a_client_that_pings_in_time_stays_connected() {
    let (broker, _trace) = broker().await;
    let mut pinging = Raw::open(broker.addr(), Version::V311).await;
    pinging
        .send(&connect(Version::V311, "pinging", 1, None))
        .await;
    pinging.expect_connack().await;
    // Three keep-alive periods, each answered: the clock restarts on every packet.
    for _ in 0..3 {
        tokio::time::sleep(Duration::from_millis(800)).await;
        pinging.expect_nothing_more().await;
    }
}

#[tokio::test]
async fn dollar_topics_are_not_matched_by_filters_starting_with_a_wildcard() {
    let (broker, _trace) = broker().await;
    for version in versions() {
        let mut everything = Raw::connected(broker.addr(), version, "everything").await;
        assert_eq!(everything.subscribe(&[("#", 1)]).await, [1]);
        let mut levels = Raw::connected(broker.addr(), version, "levels").await;
        assert_eq!(levels.subscribe(&[("+/status", 2)]).await, [2]);
        // The engine serves no filter starting with `$`: refused, the connection kept.
        let mut named = Raw::connected(broker.addr(), version, "named").await;
        let refused = if version == Version::V5 { 0x87 } else { 0x80 };
        assert_eq!(named.subscribe(&[("$hil/#", 1)]).await, [refused]);
        let mut publisher = Raw::connected(broker.addr(), version, "publisher").await;
        publisher.publish("$hil/status", 1, "hidden").await;
        publisher.publish("lamp/status", 0, "seen").await;
        // The withheld $ delivery comes first if it comes at all.
        assert_eq!(everything.receive().await.publish_topic(), "lamp/status");
        assert_eq!(levels.receive().await.publish_topic(), "lamp/status");
        for raw in [&mut everything, &mut levels, &mut named] {
            raw.expect_nothing_more().await;
        }
    }
}

#[tokio::test]
async fn refused_subscriptions_get_0x80_in_v311_and_0x87_in_v5() {
    let (broker, trace) = broker().await;
    broker.faults().deny_subscribe("secret/#");
    for (version, refused) in [(Version::V311, 0x80), (Version::V5, 0x87)] {
        let id = format!("curious-{version:?}");
        let mut curious = Raw::connected(broker.addr(), version, &id).await;
        assert_eq!(curious.subscribe(&[("secret/key", 1)]).await, [refused]);
        assert_eq!(
            curious
                .subscribe(&[("open/a", 1), ("secret/#", 2), ("open/b", 0)])
                .await,
            [1, refused, 0]
        );
        // The granted part works; the refused part was never subscribed.
        let mut publisher = Raw::connected(broker.addr(), version, "publisher").await;
        publisher.publish("secret/key", 0, "no").await;
        publisher.publish("open/b", 0, "yes").await;
        assert_eq!(curious.receive().await.publish_topic(), "open/b");
        curious.expect_nothing_more().await;
    }
    wait_for(&trace, "a deny_subscribe fault event", |e| {
        matches!(&e.body, EventBody::Fault { fault, detail, .. } if fault == "deny_subscribe" && detail.contains("secret/key"))
    })
    .await;
    broker.faults().allow_subscribe("secret/#");
    let mut later = Raw::connected(broker.addr(), Version::V311, "later").await;
    assert_eq!(later.subscribe(&[("secret/key", 1)]).await, [1]);
}

#[tokio::test]
async fn delivery_qos_is_the_lower_of_publish_and_grant() {
    let (broker, _trace) = broker().await;
    for version in versions() {
        for granted in 0..=2u8 {
            for published in 0..=2u8 {
                let topic = format!("qos/{version:?}/{granted}/{published}");
                let mut subscriber =
                    Raw::connected(broker.addr(), version, &format!("sub-{granted}{published}"))
                        .await;
                assert_eq!(subscriber.subscribe(&[(&topic, granted)]).await, [granted]);
                let mut publisher =
                    Raw::connected(broker.addr(), version, &format!("pub-{granted}{published}"))
                        .await;
                publisher.publish(&topic, published, "x").await;
                let delivery = subscriber.receive().await;
                assert_eq!(
                    delivery.qos(),
                    granted.min(published),
                    "{version:?}: published at {published}, granted {granted}: {delivery:?}"
                );
                // Whatever the tap owed the engine for a downgrade stays between them.
                subscriber.expect_nothing_more().await;
                // And the engine has its acknowledgement: the next message flows.
                publisher.publish(&topic, published, "y").await;
                assert_eq!(subscriber.receive().await.body.last(), Some(&b'y'));
            }
        }
    }
}

#[tokio::test]
async fn a_second_connection_with_the_same_id_takes_the_first_over_and_the_trace_says_so() {
    let (broker, trace) = broker().await;
    let mut first = Raw::connected(broker.addr(), Version::V311, "twin").await;
    let _second = Raw::connected(broker.addr(), Version::V311, "twin").await;
    assert!(first.next().await.is_none(), "the engine closes the first");
    let closed = wait_for(
        &trace,
        "the first connection's close",
        |e| matches!(&e.body, EventBody::ConnClosed { client: Some(c), .. } if c == "twin"),
    )
    .await;
    assert_eq!(
        closed_reason(&closed),
        Some(CloseReason::TakenOver),
        "{}",
        dump(&trace)
    );
}

#[tokio::test]
async fn v5_no_local_keeps_a_client_from_its_own_messages() {
    let (broker, _trace) = broker().await;
    let mut both = Raw::connected(broker.addr(), Version::V5, "both").await;
    // Options byte: QoS 1, no local (bit 2).
    assert_eq!(both.subscribe(&[("echo/own", 0x05)]).await, [1]);
    let mut other = Raw::connected(broker.addr(), Version::V5, "other").await;
    both.publish("echo/own", 1, "mine").await;
    other.publish("echo/own", 1, "theirs").await;
    let delivery = both.receive().await;
    assert_eq!(delivery.body.last(), Some(&b's'), "{delivery:?}");
    both.expect_nothing_more().await;
}

#[tokio::test]
async fn retained_messages_arrive_at_the_lower_qos_and_their_flows_complete() {
    let (broker, trace) = broker().await;
    for version in versions() {
        let prefix = format!("kept/{version:?}");
        let mut publisher = Raw::connected(broker.addr(), version, "keeper").await;
        for qos in 0..=2u8 {
            let topic = format!("{prefix}/{qos}");
            let mut body = Vec::new();
            field(&mut body, &topic);
            if qos > 0 {
                body.extend_from_slice(&1u16.to_be_bytes());
            }
            if version == Version::V5 {
                body.push(0);
            }
            body.extend_from_slice(b"kept");
            publisher.send(&frame(0x31 | (qos << 1), &body)).await;
            match qos {
                1 => drop(publisher.expect(4, "PUBACK").await),
                2 => {
                    publisher.expect(5, "PUBREC").await;
                    publisher.send(&ack(0x62, 1)).await;
                    publisher.expect(7, "PUBCOMP").await;
                }
                _ => {}
            }
        }
        publisher.expect_nothing_more().await;
        let mut late = Raw::connected(broker.addr(), version, "late").await;
        assert_eq!(late.subscribe(&[(&format!("{prefix}/+"), 2)]).await, [2]);
        let mut got = Vec::new();
        for _ in 0..3 {
            let delivery = late.receive().await;
            got.push((delivery.publish_topic(), delivery.qos()));
        }
        got.sort();
        let wanted: Vec<(String, u8)> = (0..=2u8).map(|q| (format!("{prefix}/{q}"), q)).collect();
        assert_eq!(got, wanted, "{}", dump(&trace));
        late.expect_nothing_more().await;
    }
}

#[tokio::test]
async fn v5_retain_as_published_and_retain_handling_are_applied() {
    let (broker, _trace) = broker().await;
    let mut keeper = Raw::connected(broker.addr(), Version::V5, "keeper").await;
    let mut retained = Vec::new();
    field(&mut retained, "options/kept");
    retained.push(0);
    retained.extend_from_slice(b"kept");
    keeper.send(&frame(0x31, &retained)).await;
    keeper.expect_nothing_more().await;

    // Retain handling 2: nothing from the store when subscribing.
    let mut never = Raw::connected(broker.addr(), Version::V5, "never").await;
    assert_eq!(never.subscribe(&[("options/#", 0x20)]).await, [0]);
    never.expect_nothing_more().await;

    // Retain as published: a live delivery keeps the publish's RETAIN flag.
    let mut published = Raw::connected(broker.addr(), Version::V5, "published").await;
    assert_eq!(published.subscribe(&[("options/live", 0x08)]).await, [0]);
    let mut plain = Raw::connected(broker.addr(), Version::V5, "plain").await;
    assert_eq!(plain.subscribe(&[("options/live", 0x00)]).await, [0]);
    let mut live = Vec::new();
    field(&mut live, "options/live");
    live.push(0);
    live.extend_from_slice(b"now");
    keeper.send(&frame(0x31, &live)).await;
    assert_eq!(
        published.receive().await.first & 1,
        1,
        "retain as published"
    );
    assert_eq!(
        plain.receive().await.first & 1,
        0,
        "a live delivery without it"
    );
    assert_eq!(never.receive().await.publish_topic(), "options/live");
}

#[tokio::test]
async fn v5_topic_alias_0_is_answered_with_disconnect_0x94_and_nothing_after_it() {
    let (broker, trace) = broker().await;
    let mut client = Raw::connected(broker.addr(), Version::V5, "aliased").await;
    // PUBLISH QoS 0 to a/b, properties: Topic Alias (0x23) = 0 (section 3.3.2.3.4).
    let mut body = Vec::new();
    field(&mut body, "a/b");
    body.extend_from_slice(&[3, 0x23, 0, 0]);
    body.extend_from_slice(b"x");
    client.send(&frame(0x30, &body)).await;
    let disconnect = client.expect(14, "DISCONNECT").await;
    assert_eq!(disconnect.body, [0x94], "reason: topic alias invalid");
    assert!(
        client.next().await.is_none(),
        "the connection ends right after the DISCONNECT, no stray byte before the close"
    );
    let closed = wait_for(
        &trace,
        "the close",
        |e| matches!(&e.body, EventBody::ConnClosed { client: Some(c), .. } if c == "aliased"),
    )
    .await;
    assert_eq!(
        closed_reason(&closed),
        Some(CloseReason::ProtocolError),
        "{}",
        dump(&trace)
    );
    let malformed = trace
        .events_from(0)
        .iter()
        .any(|e| matches!(e.body, EventBody::Malformed { .. }));
    assert!(!malformed, "nothing malformed recorded: {}", dump(&trace));
}

/// A client that leaves and comes straight back, in either protocol, is served each
/// time, and a client that never left still is: the engine is given a moment to let the
/// old connection go before the new one's CONNECT reaches it.
#[tokio::test]
async fn a_client_that_comes_straight_back_is_served_every_time() {
    let (broker, trace) = broker().await;
    for round in 0..40 {
        let version = versions()[round % 2];
        let mut back = Raw::connected(broker.addr(), version, "boomerang").await;
        back.send(&frame(0xc0, &[])).await;
        back.expect(13, "PINGRESP").await;
        drop(back);
    }
    let mut stayed = Raw::connected(broker.addr(), Version::V5, "stayed").await;
    stayed.send(&frame(0xc0, &[])).await;
    stayed.expect(13, "PINGRESP").await;
    let refused = trace
        .events_from(0)
        .iter()
        .filter(|e| {
            matches!(
                &e.body,
                EventBody::ConnClosed {
                    reason: CloseReason::EngineRefused,
                    ..
                }
            )
        })
        .count();
    assert_eq!(refused, 0, "{}", dump(&trace));
}
