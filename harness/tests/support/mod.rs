//! Shared helpers for the integration tests: brokers on loopback, MQTT clients, and
//! waiting on trace events with deadlines.
#![allow(dead_code)]

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use hil::broker::{Broker, BrokerConfig, DEFAULT_MAX_PACKET_SIZE};
use hil::trace::{Event, EventBody, Trace};
use tokio::sync::mpsc;

/// Generous: these deadlines only bound a failing test, they are not measurements.
pub const DEADLINE: Duration = Duration::from_secs(10);

pub fn hil_exe() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_hil"))
}

pub fn config() -> BrokerConfig {
    BrokerConfig {
        listen: "127.0.0.1:0".parse().unwrap(),
        max_packet_size: DEFAULT_MAX_PACKET_SIZE,
        engine_exe: hil_exe(),
        capture: None,
    }
}

pub async fn broker() -> (Broker, Trace) {
    let trace = Trace::in_memory();
    let broker = Broker::start(config(), trace.clone())
        .await
        .expect("broker starts");
    (broker, trace)
}

/// Waits until an event matching `pred` is in the trace (looking from the start).
pub async fn wait_for(trace: &Trace, what: &str, pred: impl Fn(&Event) -> bool) -> Arc<Event> {
    let mut cursor = trace.cursor_at(0);
    let deadline = tokio::time::Instant::now() + DEADLINE;
    while let Some(event) = cursor.next_before(deadline).await {
        if pred(&event) {
            return event;
        }
    }
    panic!(
        "no {what} in the trace within {DEADLINE:?}; trace:\n{}",
        dump(trace)
    );
}

pub fn dump(trace: &Trace) -> String {
    trace
        .events_from(0)
        .iter()
        .map(|e| serde_json::to_string(&**e).unwrap())
        .collect::<Vec<_>>()
        .join("\n")
}

/// The packet names one client exchanged in one direction, in trace order.
pub fn packets_of(trace: &Trace, client_id: &str, dir: hil::trace::Direction) -> Vec<&'static str> {
    trace
        .events_from(0)
        .iter()
        .filter_map(|e| match &e.body {
            EventBody::Mqtt {
                client,
                dir: d,
                packet,
                ..
            } if client.as_deref() == Some(client_id) && *d == dir => Some(packet.name()),
            _ => None,
        })
        .collect()
}

pub fn closed_reason(event: &Event) -> Option<hil::trace::CloseReason> {
    match &event.body {
        EventBody::ConnClosed { reason, .. } => Some(*reason),
        _ => None,
    }
}

/// An MQTT 3.1.1 client (rumqttc) whose event loop runs in the background; incoming
/// publishes arrive on `publishes`.
pub struct Client {
    pub client: rumqttc::AsyncClient,
    pub publishes: mpsc::UnboundedReceiver<rumqttc::Publish>,
    pub connected: mpsc::UnboundedReceiver<()>,
}

impl Client {
    pub fn options(id: &str, addr: SocketAddr) -> rumqttc::MqttOptions {
        let mut options = rumqttc::MqttOptions::new(id, addr.ip().to_string(), addr.port());
        options.set_keep_alive(Duration::from_secs(60));
        options.set_max_packet_size(4 * 1024 * 1024, 4 * 1024 * 1024);
        options
    }

    pub fn start(options: rumqttc::MqttOptions) -> Client {
        let (client, mut eventloop) = rumqttc::AsyncClient::new(options, 100);
        let (publish_tx, publishes) = mpsc::unbounded_channel();
        let (connected_tx, connected) = mpsc::unbounded_channel();
        tokio::spawn(async move {
            loop {
                match eventloop.poll().await {
                    Ok(rumqttc::Event::Incoming(rumqttc::Packet::Publish(p))) => {
                        let _ = publish_tx.send(p);
                    }
                    Ok(rumqttc::Event::Incoming(rumqttc::Packet::ConnAck(_))) => {
                        let _ = connected_tx.send(());
                    }
                    Ok(_) => {}
                    Err(_) => return,
                }
            }
        });
        Client {
            client,
            publishes,
            connected,
        }
    }

    pub async fn connect(id: &str, addr: SocketAddr) -> Client {
        let mut client = Client::start(Client::options(id, addr));
        tokio::time::timeout(DEADLINE, client.connected.recv())
            .await
            .expect("CONNACK in time")
            .expect("event loop alive");
        client
    }

    pub async fn next_publish(&mut self) -> rumqttc::Publish {
        tokio::time::timeout(DEADLINE, self.publishes.recv())
            .await
            .expect("a publish in time")
            .expect("event loop alive")
    }
}
