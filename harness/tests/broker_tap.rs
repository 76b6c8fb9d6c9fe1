//! The embedded broker and its wire tap, over real TCP with real MQTT clients.

mod support;

use std::time::Duration;

use hil::broker::{Broker, BrokerConfig, WarmEngines};
use hil::trace::{CloseReason, Direction, EventBody, Packet, Trace};
use rumqttc::QoS;
use support::{broker, closed_reason, packets_of, wait_for, Client, DEADLINE};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

#[tokio::test]
async fn v311_clients_leave_exactly_their_packets_in_the_trace() {
    let (broker, trace) = broker().await;
    let mut display = Client::connect("display", broker.addr()).await;
    display
        .client
        .subscribe("living_room_lights", QoS::AtLeastOnce)
        .await
        .unwrap();
    wait_for(&trace, "suback", |e| {
        matches!(
            &e.body,
            EventBody::Mqtt {
                packet: Packet::Suback { .. },
                ..
            }
        )
    })
    .await;

    let phone = Client::connect("phone", broker.addr()).await;
    phone
        .client
        .publish("living_room_lights", QoS::AtLeastOnce, false, "on")
        .await
        .unwrap();
    let delivered = display.next_publish().await;
    assert_eq!(&delivered.payload[..], b"on");

    phone.client.disconnect().await.unwrap();
    display.client.disconnect().await.unwrap();
    for id in ["phone", "display"] {
        let event = wait_for(&trace, "close", |e| {
            matches!(&e.body, EventBody::ConnClosed { client, .. } if client.as_deref() == Some(id))
        })
        .await;
        assert_eq!(closed_reason(&event), Some(CloseReason::Clean), "{id}");
    }
    assert_eq!(
        packets_of(&trace, "phone", Direction::ToBroker),
        ["connect", "publish", "disconnect"]
    );
    assert_eq!(
        packets_of(&trace, "phone", Direction::ToClient),
        ["connack", "puback"]
    );
    assert_eq!(
        packets_of(&trace, "display", Direction::ToBroker),
        ["connect", "subscribe", "puback", "disconnect"]
    );
    assert_eq!(
        packets_of(&trace, "display", Direction::ToClient),
        ["connack", "suback", "publish"]
    );

    let publish_in = wait_for(&trace, "publish from phone", |e| {
        matches!(&e.body, EventBody::Mqtt { client, dir: Direction::ToBroker, packet: Packet::Publish { .. }, .. } if client.as_deref() == Some("phone"))
    })
    .await;
    let publish_out = wait_for(&trace, "publish to display", |e| {
        matches!(&e.body, EventBody::Mqtt { client, dir: Direction::ToClient, packet: Packet::Publish { .. }, .. } if client.as_deref() == Some("display"))
    })
    .await;
    assert!(
        publish_in.seq < publish_out.seq,
        "the publish is recorded before its delivery"
    );
    match &publish_in.body {
        EventBody::Mqtt {
            packet:
                Packet::Publish {
                    topic,
                    payload,
                    qos,
                    retain,
                    dup,
                    pkid,
                },
            ..
        } => {
            assert_eq!(topic, "living_room_lights");
            assert_eq!(payload.as_text(), Some("on"));
            assert_eq!((*qos, *retain, *dup), (1, false, false));
            assert!(pkid.is_some());
        }
        other => panic!("unexpected {other:?}"),
    }
    broker.stop().await.unwrap();
}

#[tokio::test]
async fn v5_and_v311_clients_share_one_port() {
    let (broker, trace) = broker().await;
    let addr = broker.addr();
    let mut options =
        rumqttc::v5::MqttOptions::new("wall_display", addr.ip().to_string(), addr.port());
    options.set_keep_alive(Duration::from_secs(60));
    let (v5_client, mut eventloop) = rumqttc::v5::AsyncClient::new(options, 10);
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    tokio::spawn(async move {
        while let Ok(event) = eventloop.poll().await {
            if let rumqttc::v5::Event::Incoming(rumqttc::v5::mqttbytes::v5::Packet::Publish(p)) =
                event
            {
                let _ = tx.send(p);
            }
        }
    });
    v5_client
        .subscribe(
            "living_room_lights/#",
            rumqttc::v5::mqttbytes::QoS::AtMostOnce,
        )
        .await
        .unwrap();
    wait_for(&trace, "v5 suback", |e| {
        matches!(&e.body, EventBody::Mqtt { client, packet: Packet::Suback { .. }, .. } if client.as_deref() == Some("wall_display"))
    })
    .await;
    let phone = Client::connect("phone", addr).await;
    phone
        .client
        .publish("living_room_lights/state", QoS::AtMostOnce, true, "off")
        .await
        .unwrap();
    let received = tokio::time::timeout(DEADLINE, rx.recv())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(&received.payload[..], b"off");

    v5_client.disconnect().await.unwrap();
    phone.client.disconnect().await.unwrap();
    for id in ["wall_display", "phone"] {
        let event = wait_for(&trace, "close", |e| {
            matches!(&e.body, EventBody::ConnClosed { client, .. } if client.as_deref() == Some(id))
        })
        .await;
        assert_eq!(
            closed_reason(&event),
            Some(CloseReason::Clean),
            "{id}: {}",
            support::dump(&trace)
        );
    }
    assert_eq!(
        packets_of(&trace, "wall_display", Direction::ToBroker),
        ["connect", "subscribe", "disconnect"]
    );
    assert_eq!(
        packets_of(&trace, "wall_display", Direction::ToClient),
        ["connack", "suback", "publish"]
    );
    assert_eq!(
        packets_of(&trace, "phone", Direction::ToBroker),
        ["connect", "publish", "disconnect"]
    );
    assert_eq!(
        packets_of(&trace, "phone", Direction::ToClient),
        ["connack"]
    );

    let connect = wait_for(&trace, "v5 connect", |e| {
        matches!(&e.body, EventBody::Mqtt { packet: Packet::Connect { client_id, .. }, .. } if client_id == "wall_display")
    })
    .await;
    assert!(matches!(
        &connect.body,
        EventBody::Mqtt {
            packet: Packet::Connect { protocol: 5, .. },
            ..
        }
    ));
    broker.stop().await.unwrap();
}

/// Sends raw bytes as a client and returns the events recorded for that connection.
async fn send_raw_and_wait_for_close(
    bytes: &[u8],
    close_after: bool,
) -> (Vec<EventBody>, hil::trace::Trace, hil::broker::Broker) {
    let (broker, trace) = broker().await;
    let mut socket = TcpStream::connect(broker.addr()).await.unwrap();
    // Only this socket's connection counts: whatever else reaches the listener is not ours.
    let me = socket.local_addr().unwrap().to_string();
    let opened = wait_for(
        &trace,
        "conn_opened",
        |e| matches!(&e.body, EventBody::ConnOpened { peer, .. } if *peer == me),
    )
    .await;
    let conn = match opened.body {
        EventBody::ConnOpened { conn, .. } => conn,
        _ => unreachable!(),
    };
    socket.write_all(bytes).await.unwrap();
    if close_after {
        socket.shutdown().await.unwrap();
    }
    wait_for(
        &trace,
        "conn_closed",
        |e| matches!(e.body, EventBody::ConnClosed { conn: c, .. } if c == conn),
    )
    .await;
    // The tap closed its side: reading gives EOF (or a reset), never a hang.
    let mut rest = Vec::new();
    let _ = tokio::time::timeout(DEADLINE, socket.read_to_end(&mut rest))
        .await
        .expect("socket closed by the tap");
    let events = trace
        .events_from(0)
        .iter()
        .filter(|e| match &e.body {
            EventBody::Malformed { conn: c, .. } | EventBody::ConnClosed { conn: c, .. } => {
                *c == conn
            }
            _ => false,
        })
        .map(|e| e.body.clone())
        .collect();
    (events, trace, broker)
}

fn assert_malformed(events: &[EventBody], reason_part: &str, excerpt_prefix: &str) {
    match events {
        [EventBody::Malformed {
            reason,
            excerpt_hex,
            ..
        }, EventBody::ConnClosed {
            reason: CloseReason::Malformed,
            ..
        }] => {
            assert!(
                reason.contains(reason_part),
                "reason {reason:?} should mention {reason_part:?}"
            );
            assert!(
                excerpt_hex.starts_with(excerpt_prefix),
                "excerpt {excerpt_hex} should start with {excerpt_prefix}"
            );
        }
        other => panic!("expected malformed then closed, got {other:?}"),
    }
}

/// A well-behaved client keeps working while the broker sees garbage on another connection.
async fn assert_broker_still_serves(broker: &hil::broker::Broker) {
    let mut listener = Client::connect("survivor-sub", broker.addr()).await;
    listener
        .client
        .subscribe("still/here", QoS::AtMostOnce)
        .await
        .unwrap();
    let talker = Client::connect("survivor-pub", broker.addr()).await;
    // The subscription may land after the first publish; publish until one arrives.
    let deadline = tokio::time::Instant::now() + DEADLINE;
    loop {
        talker
            .client
            .publish("still/here", QoS::AtMostOnce, false, "yes")
            .await
            .unwrap();
        if let Ok(Some(p)) =
            tokio::time::timeout(Duration::from_millis(100), listener.publishes.recv()).await
        {
            assert_eq!(&p.payload[..], b"yes");
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "broker stopped serving"
        );
    }
}

#[tokio::test]
async fn an_http_request_is_malformed_and_closed() {
    let (events, _trace, broker) =
        send_raw_and_wait_for_close(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n", false).await;
    assert_malformed(&events, "not CONNECT", "474554");
    assert_broker_still_serves(&broker).await;
    broker.stop().await.unwrap();
}

#[tokio::test]
async fn random_bytes_are_malformed_and_closed() {
    let (events, _trace, broker) =
        send_raw_and_wait_for_close(&[0x00, 0xde, 0xad, 0xbe, 0xef], false).await;
    assert_malformed(&events, "not CONNECT", "00deadbeef");
    assert_broker_still_serves(&broker).await;
    broker.stop().await.unwrap();
}

#[tokio::test]
async fn a_truncated_packet_is_malformed() {
    // CONNECT announcing 16 bytes but only 4 arrive before the client closes.
    let (events, _trace, broker) =
        send_raw_and_wait_for_close(&[0x10, 0x10, 0x00, 0x04], true).await;
    assert_malformed(&events, "middle of a packet", "10100004");
    assert_broker_still_serves(&broker).await;
    broker.stop().await.unwrap();
}

#[tokio::test]
async fn an_oversize_packet_is_refused_from_its_header() {
    // A PUBLISH announcing 100 MB after a valid CONNECT.
    let mut bytes = connect_frame("big");
    bytes.extend_from_slice(&[0x30, 0x80, 0x80, 0x80, 0x32]);
    let (events, _trace, broker) = send_raw_and_wait_for_close(&bytes, false).await;
    assert_malformed(&events, "larger than the maximum", "3080808032");
    assert_broker_still_serves(&broker).await;
    broker.stop().await.unwrap();
}

#[tokio::test]
async fn a_second_connect_is_malformed() {
    let mut bytes = connect_frame("twice");
    bytes.extend_from_slice(&connect_frame("twice"));
    let (events, _trace, broker) = send_raw_and_wait_for_close(&bytes, false).await;
    assert_malformed(&events, "second CONNECT", "10");
    assert_broker_still_serves(&broker).await;
    broker.stop().await.unwrap();
}

fn connect_frame(client_id: &str) -> Vec<u8> {
    let mut buf = bytes::BytesMut::new();
    rumqttc::mqttbytes::v4::Connect::new(client_id)
        .write(&mut buf)
        .unwrap();
    buf.to_vec()
}

#[tokio::test]
async fn a_vanished_client_is_recorded_and_its_will_is_delivered() {
    let (broker, trace) = broker().await;
    let mut watcher = Client::connect("watcher", broker.addr()).await;
    watcher
        .client
        .subscribe("living_room_lights/status", QoS::AtLeastOnce)
        .await
        .unwrap();
    wait_for(&trace, "watcher suback", |e| {
        matches!(
            &e.body,
            EventBody::Mqtt {
                packet: Packet::Suback { .. },
                ..
            }
        )
    })
    .await;

    // A raw client with a will, whose socket is simply dropped.
    let mut connect = rumqttc::mqttbytes::v4::Connect::new("lamp");
    connect.keep_alive = 60;
    connect.last_will = Some(rumqttc::mqttbytes::v4::LastWill::new(
        "living_room_lights/status",
        "offline",
        QoS::AtLeastOnce,
        true,
    ));
    let mut frame = bytes::BytesMut::new();
    connect.write(&mut frame).unwrap();
    let mut lamp = TcpStream::connect(broker.addr()).await.unwrap();
    lamp.write_all(&frame).await.unwrap();
    let mut connack = [0u8; 4];
    lamp.read_exact(&mut connack).await.unwrap();
    assert_eq!(connack[0], 0x20, "CONNACK");
    drop(lamp);

    let will = watcher.next_publish().await;
    assert_eq!(&will.payload[..], b"offline");
    let closed = wait_for(&trace, "lamp closed", |e| {
        matches!(&e.body, EventBody::ConnClosed { client, .. } if client.as_deref() == Some("lamp"))
    })
    .await;
    assert_eq!(closed_reason(&closed), Some(CloseReason::ByPeer));
    let connect = wait_for(&trace, "lamp connect", |e| {
        matches!(&e.body, EventBody::Mqtt { packet: Packet::Connect { client_id, .. }, .. } if client_id == "lamp")
    })
    .await;
    match &connect.body {
        EventBody::Mqtt {
            packet: Packet::Connect {
                will: Some(will), ..
            },
            ..
        } => {
            assert_eq!(will.topic, "living_room_lights/status");
            assert_eq!(will.payload.as_text(), Some("offline"));
            assert_eq!((will.qos, will.retain), (1, true));
        }
        other => panic!("connect without will: {other:?}"),
    }
    broker.stop().await.unwrap();
}

#[tokio::test]
async fn two_brokers_in_one_process_do_not_see_each_other() {
    assert_apart(broker().await, broker().await).await;
}

/// A run's brokers take engines started ahead (one listener per protocol, one spare at
/// a time, three announced): each is a fresh engine of its own, and a broker that comes
/// after the announced ones starts its own.
#[tokio::test]
async fn brokers_on_warm_engines_do_not_see_each_other() {
    let mut config = BrokerConfig {
        engine_listeners: 1,
        ..support::config()
    };
    config.warm = Some(WarmEngines::start(&config, 1, 3));
    let start = || async {
        let trace = Trace::in_memory();
        let broker = Broker::start(config.clone(), trace.clone())
            .await
            .expect("a broker on a warm engine starts");
        (broker, trace)
    };
    assert_apart(start().await, start().await).await;
    assert_apart(start().await, start().await).await;
}

/// Two running brokers: a retained message and each client stay in their own.
async fn assert_apart(
    (first, first_trace): (Broker, Trace),
    (second, second_trace): (Broker, Trace),
) {
    assert_ne!(first.addr(), second.addr());
    for (broker, id) in [(&first, "one"), (&second, "two")] {
        let client = Client::connect(id, broker.addr()).await;
        client
            .client
            .publish("t", QoS::AtMostOnce, true, id)
            .await
            .unwrap();
    }
    wait_for(&first_trace, "publish one", |e| {
        matches!(
            &e.body,
            EventBody::Mqtt {
                packet: Packet::Publish { .. },
                ..
            }
        )
    })
    .await;
    wait_for(&second_trace, "publish two", |e| {
        matches!(
            &e.body,
            EventBody::Mqtt {
                packet: Packet::Publish { .. },
                ..
            }
        )
    })
    .await;
    // Each retained value stays in its own broker.
    for (broker, expected) in [(&first, "one"), (&second, "two")] {
        let mut reader = Client::connect("reader", broker.addr()).await;
        reader.client.subscribe("t", QoS::AtMostOnce).await.unwrap();
        assert_eq!(
            &reader.next_publish().await.payload[..],
            expected.as_bytes()
        );
    }
    assert!(packets_of(&first_trace, "two", Direction::ToBroker).is_empty());
    assert!(packets_of(&second_trace, "one", Direction::ToBroker).is_empty());
    first.stop().await.unwrap();
    second.stop().await.unwrap();
}

/// The CONNACKs a client got, in order: whether each resumed a session.
fn sessions_present(trace: &hil::trace::Trace, client_id: &str) -> Vec<bool> {
    trace
        .events_from(0)
        .iter()
        .filter_map(|e| match &e.body {
            EventBody::Mqtt {
                client,
                packet: Packet::Connack {
                    session_present, ..
                },
                ..
            } if client.as_deref() == Some(client_id) => Some(*session_present),
            _ => None,
        })
        .collect()
}

/// Waits until the client has been sent `count` SUBACKs.
async fn wait_for_subacks(trace: &hil::trace::Trace, client_id: &str, count: usize) {
    let seen = std::cell::Cell::new(0);
    wait_for(trace, "suback", |e| {
        if matches!(&e.body, EventBody::Mqtt { client, packet: Packet::Suback { .. }, .. } if client.as_deref() == Some(client_id))
        {
            seen.set(seen.get() + 1);
        }
        seen.get() >= count
    })
    .await;
}

#[tokio::test]
async fn restart_drops_sessions_subscriptions_and_retained_messages() {
    let (broker, trace) = broker().await;
    let mut durable_options = Client::options("durable", broker.addr());
    durable_options.set_clean_session(false);
    let mut durable = Client::start(durable_options.clone());
    tokio::time::timeout(DEADLINE, durable.connected.recv())
        .await
        .unwrap();
    durable
        .client
        .subscribe("living_room_lights", QoS::AtLeastOnce)
        .await
        .unwrap();
    wait_for_subacks(&trace, "durable", 1).await;
    let publisher = Client::connect("phone", broker.addr()).await;
    publisher
        .client
        .publish("living_room_lights", QoS::AtLeastOnce, true, "on")
        .await
        .unwrap();
    wait_for(&trace, "puback", |e| {
        matches!(
            &e.body,
            EventBody::Mqtt {
                packet: Packet::Puback { .. },
                ..
            }
        )
    })
    .await;
    let addr = broker.addr();

    broker.restart(Duration::from_millis(50)).await.unwrap();
    assert_eq!(broker.addr(), addr, "the public address survives a restart");
    let cut = wait_for(&trace, "phone cut", |e| {
        matches!(&e.body, EventBody::ConnClosed { client, .. } if client.as_deref() == Some("phone"))
    })
    .await;
    assert!(matches!(
        closed_reason(&cut),
        Some(CloseReason::Cut | CloseReason::ByBroker)
    ));

    // The kept session is gone too: the durable client comes back to no session.
    let mut durable = Client::start(durable_options);
    tokio::time::timeout(DEADLINE, durable.connected.recv())
        .await
        .expect("the durable client reconnects");
    assert_eq!(sessions_present(&trace, "durable"), [false, false]);

    // The retained "on" is gone: a fresh subscriber gets nothing, then a new publish.
    let mut reader = Client::connect("reader", broker.addr()).await;
    reader
        .client
        .subscribe("living_room_lights", QoS::AtMostOnce)
        .await
        .unwrap();
    wait_for(&trace, "reader suback", |e| {
        matches!(&e.body, EventBody::Mqtt { client, packet: Packet::Suback { .. }, .. } if client.as_deref() == Some("reader"))
    })
    .await;
    let writer = Client::connect("writer", broker.addr()).await;
    writer
        .client
        .publish("living_room_lights", QoS::AtMostOnce, false, "marker")
        .await
        .unwrap();
    assert_eq!(
        &reader.next_publish().await.payload[..],
        b"marker",
        "no retained message survived"
    );
    // Nor did the durable client's subscription: subscribed again now, the first message
    // it gets is the next one. The old subscription would have sent "marker" first, down
    // the same connection.
    durable
        .client
        .subscribe("living_room_lights", QoS::AtLeastOnce)
        .await
        .unwrap();
    wait_for_subacks(&trace, "durable", 2).await;
    writer
        .client
        .publish("living_room_lights", QoS::AtMostOnce, false, "after")
        .await
        .unwrap();
    assert_eq!(&durable.next_publish().await.payload[..], b"after");
    let actions: Vec<_> = trace
        .events_from(0)
        .iter()
        .filter_map(|e| match &e.body {
            EventBody::Broker { action, .. } => Some(*action),
            _ => None,
        })
        .collect();
    use hil::trace::BrokerAction::*;
    assert_eq!(actions, [Started, Down, Restarted]);
    broker.stop().await.unwrap();
}

/// While the broker is down a client is refused in MQTT's own words, at once, so a client
/// that waits for its CONNACK (PubSubClient does, for its whole socket timeout) tries again
/// as soon as it would after a stopped broker's refusal.
#[tokio::test]
async fn a_client_that_comes_while_the_broker_is_down_hears_server_unavailable() {
    let (broker, trace) = broker().await;
    let broker = std::sync::Arc::new(broker);
    let restarting = tokio::spawn({
        let broker = broker.clone();
        async move { broker.restart(Duration::from_secs(5)).await }
    });
    wait_for(&trace, "broker down", |e| {
        matches!(
            e.body,
            EventBody::Broker {
                action: hil::trace::BrokerAction::Down,
                ..
            }
        )
    })
    .await;
    // MQTT 3.1.1: CONNACK return code 3. MQTT 5: reason 0x88, no properties.
    let v5_connect = [
        0x10, 0x0F, 0, 4, b'M', b'Q', b'T', b'T', 5, 2, 0, 60, 0, 0, 2, b'v', b'5',
    ];
    let cases: [(&[u8], &[u8]); 2] = [
        (&connect_frame("v311"), &[0x20, 0x02, 0x00, 0x03]),
        (&v5_connect, &[0x20, 0x03, 0x00, 0x88, 0x00]),
    ];
    for (connect, refusal) in cases {
        let mut socket = TcpStream::connect(broker.addr()).await.unwrap();
        let me = socket.local_addr().unwrap().to_string();
        socket.write_all(connect).await.unwrap();
        let mut answer = Vec::new();
        tokio::time::timeout(DEADLINE, socket.read_to_end(&mut answer))
            .await
            .expect("the tap answers and closes")
            .unwrap();
        assert_eq!(answer, refusal);
        wait_for(&trace, "conn_refused", |e| {
            matches!(&e.body, EventBody::ConnRefused { peer, reason } if *peer == me && reason == "broker is down")
        })
        .await;
    }
    restarting.await.unwrap().unwrap();
    broker.stop().await.unwrap();
}

#[tokio::test]
async fn passwords_never_reach_the_trace() {
    let (broker, trace) = broker().await;
    let mut options = Client::options("secretive", broker.addr());
    options.set_credentials("bench-user", "hunter2-not-in-trace");
    let mut client = Client::start(options);
    tokio::time::timeout(DEADLINE, client.connected.recv())
        .await
        .unwrap();
    let all = support::dump(&trace);
    assert!(all.contains("bench-user"), "the username is recorded");
    assert!(!all.contains("hunter2-not-in-trace"));
    broker.stop().await.unwrap();
}

#[tokio::test]
async fn a_delayed_burst_is_held_once_not_once_per_frame() {
    let (broker, trace) = broker().await;
    let mut display = Client::connect("display", broker.addr()).await;
    display
        .client
        .subscribe("burst", QoS::AtMostOnce)
        .await
        .unwrap();
    wait_for(&trace, "display suback", |e| {
        matches!(&e.body, EventBody::Mqtt { client, packet: Packet::Suback { .. }, .. } if client.as_deref() == Some("display"))
    })
    .await;
    let phone = Client::connect("phone", broker.addr()).await;
    broker
        .faults()
        .delay("phone", Duration::from_millis(300), Duration::ZERO, None);
    for i in 0..10 {
        phone
            .client
            .publish("burst", QoS::AtMostOnce, false, i.to_string())
            .await
            .unwrap();
    }
    for i in 0..10 {
        let delivered = display.next_publish().await;
        assert_eq!(&delivered.payload[..], i.to_string().as_bytes(), "in order");
    }
    let deliveries: Vec<u64> = trace
        .events_from(0)
        .iter()
        .filter(|e| {
            matches!(&e.body, EventBody::Mqtt { client, dir: Direction::ToClient, packet: Packet::Publish { .. }, .. } if client.as_deref() == Some("display"))
        })
        .map(|e| e.t_us)
        .collect();
    assert_eq!(deliveries.len(), 10);
    // Held one after another, the ten would spread over about three seconds.
    let spread = Duration::from_micros(deliveries[9] - deliveries[0]);
    assert!(
        spread < Duration::from_millis(300),
        "deliveries spread over {spread:?}"
    );
    broker.stop().await.unwrap();
}
