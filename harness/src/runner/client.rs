//! Harness-owned MQTT clients (the phone, a wall display): rumqttc clients whose event
//! loops run in the background and reconnect after the broker goes away.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use tokio::task::JoinHandle;

use crate::login::Credentials;
use crate::namespace::Namespace;
use crate::tap::Protocol;

/// Pause between reconnect attempts after the connection is lost.
const RECONNECT_DELAY: Duration = Duration::from_millis(100);
const KEEP_ALIVE: Duration = Duration::from_secs(60);
const MAX_PACKET: usize = 4 * 1024 * 1024;

/// What a client needs to know to connect.
#[derive(Debug, Clone)]
pub struct ClientSetup {
    /// As the scenario knows it; on a shared broker the namespace prefixes it on the wire.
    pub client_id: String,
    pub protocol: Protocol,
    /// Filters to subscribe to, again after every reconnect.
    pub subscriptions: Vec<String>,
    pub namespace: Option<Namespace>,
    pub credentials: Option<Credentials>,
    pub clean_session: bool,
}

impl ClientSetup {
    fn wire_client_id(&self) -> String {
        match &self.namespace {
            Some(namespace) => namespace.client_id(&self.client_id),
            None => self.client_id.clone(),
        }
    }
}

fn wire_topic(namespace: Option<&Namespace>, topic: &str) -> String {
    match namespace {
        Some(namespace) => namespace.topic(topic),
        None => topic.to_string(),
    }
}

enum Handle {
    V311(rumqttc::AsyncClient),
    V5(rumqttc::v5::AsyncClient),
}

/// A connected (or reconnecting) client. Connection state is observed in the trace, not
/// here: the tap sees every CONNACK and SUBACK.
pub struct HarnessClient {
    handle: Handle,
    namespace: Option<Namespace>,
    task: JoinHandle<()>,
    stopping: Arc<AtomicBool>,
}

impl HarnessClient {
    /// Starts connecting; the CONNACK and SUBACKs appear in the trace.
    pub fn start(broker: SocketAddr, setup: &ClientSetup) -> HarnessClient {
        let stopping = Arc::new(AtomicBool::new(false));
        let host = broker.ip().to_string();
        let client_id = setup.wire_client_id();
        let subscriptions: Vec<String> = setup
            .subscriptions
            .iter()
            .map(|filter| wire_topic(setup.namespace.as_ref(), filter))
            .collect();
        let (handle, task) = if setup.protocol == Protocol::V5 {
            let mut options = rumqttc::v5::MqttOptions::new(client_id, host, broker.port());
            options.set_clean_start(setup.clean_session);
            if let Some(credentials) = &setup.credentials {
                options.set_credentials(&credentials.username, &credentials.password);
            }
            options.set_keep_alive(KEEP_ALIVE);
            options.set_max_packet_size(Some(MAX_PACKET as u32));
            let (client, eventloop) = rumqttc::v5::AsyncClient::new(options, 1000);
            let task = tokio::spawn(drive_v5(
                eventloop,
                client.clone(),
                subscriptions.clone(),
                stopping.clone(),
            ));
            (Handle::V5(client), task)
        } else {
            let mut options = rumqttc::MqttOptions::new(client_id, host, broker.port());
            options.set_clean_session(setup.clean_session);
            if let Some(credentials) = &setup.credentials {
                options.set_credentials(&credentials.username, &credentials.password);
            }
            options.set_keep_alive(KEEP_ALIVE);
            options.set_max_packet_size(MAX_PACKET, MAX_PACKET);
            let (client, eventloop) = rumqttc::AsyncClient::new(options, 1000);
            let task = tokio::spawn(drive_v311(
                eventloop,
                client.clone(),
                subscriptions,
                stopping.clone(),
            ));
            (Handle::V311(client), task)
        };
        HarnessClient {
            handle,
            namespace: setup.namespace.clone(),
            task,
            stopping,
        }
    }

    pub async fn publish(
        &self,
        topic: &str,
        payload: Bytes,
        qos: u8,
        retain: bool,
    ) -> Result<(), String> {
        let topic = wire_topic(self.namespace.as_ref(), topic);
        match &self.handle {
            Handle::V311(client) => client
                .publish_bytes(topic, v311_qos(qos), retain, payload)
                .await
                .map_err(|e| e.to_string()),
            Handle::V5(client) => client
                .publish_bytes(topic, v5_qos(qos), retain, payload)
                .await
                .map_err(|e| e.to_string()),
        }
    }

    /// Sends DISCONNECT and stops reconnecting.
    pub async fn disconnect(self) {
        self.stopping.store(true, Ordering::Relaxed);
        let sent = match &self.handle {
            Handle::V311(client) => client.disconnect().await.is_ok(),
            Handle::V5(client) => client.disconnect().await.is_ok(),
        };
        if sent {
            // The event loop ends once DISCONNECT is out; don't wait forever if it is stuck.
            let _ = tokio::time::timeout(Duration::from_secs(2), self.task).await;
        } else {
            self.task.abort();
        }
    }

    /// Drops the connection without DISCONNECT (as a crashed client would).
    pub fn abort(self) {
        self.task.abort();
    }
}

fn v311_qos(qos: u8) -> rumqttc::QoS {
    match qos {
        0 => rumqttc::QoS::AtMostOnce,
        1 => rumqttc::QoS::AtLeastOnce,
        _ => rumqttc::QoS::ExactlyOnce,
    }
}

fn v5_qos(qos: u8) -> rumqttc::v5::mqttbytes::QoS {
    match qos {
        0 => rumqttc::v5::mqttbytes::QoS::AtMostOnce,
        1 => rumqttc::v5::mqttbytes::QoS::AtLeastOnce,
        _ => rumqttc::v5::mqttbytes::QoS::ExactlyOnce,
    }
}

async fn drive_v311(
    mut eventloop: rumqttc::EventLoop,
    client: rumqttc::AsyncClient,
    subscriptions: Vec<String>,
    stopping: Arc<AtomicBool>,
) {
    loop {
        match eventloop.poll().await {
            Ok(rumqttc::Event::Incoming(rumqttc::Packet::ConnAck(_))) => {
                for filter in &subscriptions {
                    let _ = client.try_subscribe(filter, rumqttc::QoS::ExactlyOnce);
                }
            }
            Ok(rumqttc::Event::Outgoing(rumqttc::Outgoing::Disconnect)) => return,
            Ok(_) => {}
            Err(_) if stopping.load(Ordering::Relaxed) => return,
            Err(_) => tokio::time::sleep(RECONNECT_DELAY).await,
        }
    }
}

async fn drive_v5(
    mut eventloop: rumqttc::v5::EventLoop,
    client: rumqttc::v5::AsyncClient,
    subscriptions: Vec<String>,
    stopping: Arc<AtomicBool>,
) {
    use rumqttc::v5::mqttbytes::v5::Packet;
    loop {
        match eventloop.poll().await {
            Ok(rumqttc::v5::Event::Incoming(Packet::ConnAck(_))) => {
                for filter in &subscriptions {
                    let _ = client.try_subscribe(filter, rumqttc::v5::mqttbytes::QoS::ExactlyOnce);
                }
            }
            Ok(rumqttc::v5::Event::Outgoing(rumqttc::Outgoing::Disconnect)) => return,
            Ok(_) => {}
            Err(_) if stopping.load(Ordering::Relaxed) => return,
            Err(_) => tokio::time::sleep(RECONNECT_DELAY).await,
        }
    }
}
