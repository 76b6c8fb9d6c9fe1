//! A simulated board's MQTT client: the MQTT 3.1.1 session PubSubClient keeps on the chip
//! (CONNECT with will and login, QoS 0/1 publishes, subscriptions, keep-alive pings,
//! DISCONNECT), over whatever stream the board's network hands it. Small on purpose: a
//! fleet of ten thousand boards holds ten thousand of them.
//!
//! The firmware's calls are synchronous, so it queues requests through a [`Requests`]
//! handle that answers at once whether they were taken; a task per session carries them
//! out and hands back what arrives as [`LinkEvent`]s.

use std::io;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use rumqttc::mqttbytes::v4::{
    Connect, ConnectReturnCode, LastWill, Login, Packet, PubAck, PubComp, PubRec, PubRel, Publish,
    Subscribe,
};
use rumqttc::mqttbytes::QoS;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, DuplexStream};
use tokio::net::TcpStream;
use tokio::sync::mpsc;
use tokio::time::Instant;
use tokio_util::task::AbortOnDropHandle;

/// Requests queued at most; beyond, the firmware is told its publish was not taken.
const QUEUE: usize = 64;
/// QoS 1 and 2 publishes unacknowledged at most; further ones wait in the queue.
const INFLIGHT: usize = 16;
/// The largest packet either way.
const MAX_PACKET: usize = 4 * 1024 * 1024;
/// How long a write may wait for the other side to take the bytes.
const WRITE_DEADLINE: Duration = Duration::from_secs(30);

/// A connection's bytes, whatever carries them.
pub trait ByteStream: AsyncRead + AsyncWrite + Send + Unpin + 'static {}
impl<T: AsyncRead + AsyncWrite + Send + Unpin + 'static> ByteStream for T {}

/// Opens an in-process link into a tap and returns the board's end of it.
pub type LocalDial = Arc<dyn Fn() -> DuplexStream + Send + Sync>;

/// How a simulated board's network stack reaches an address: by TCP, except the run's
/// own tap in this process, which a board reaches without a socket of its own (so a fleet
/// costs the process one descriptor per board, the tap's link to the engine).
#[derive(Clone, Default)]
pub struct Network {
    local: Option<(SocketAddr, LocalDial)>,
}

impl Network {
    /// A network on which dialling `addr` opens a link with `dial`.
    pub fn with_local_tap(addr: SocketAddr, dial: LocalDial) -> Network {
        Network {
            local: Some((addr, dial)),
        }
    }

    async fn dial(&self, host: &str, port: u16) -> io::Result<Box<dyn ByteStream>> {
        if let Some((addr, dial)) = &self.local {
            if port == addr.port() && host.parse::<IpAddr>().ok() == Some(addr.ip()) {
                return Ok(Box::new(dial()));
            }
        }
        let stream = TcpStream::connect((host, port)).await?;
        stream.set_nodelay(true)?;
        Ok(Box::new(stream))
    }
}

/// What a session logs in with and leaves behind.
pub struct SessionOptions {
    pub host: String,
    pub port: u16,
    pub client_id: String,
    pub keep_alive: Duration,
    pub login: Option<Login>,
    pub will: LastWill,
    /// From dialling to CONNACK.
    pub connect_timeout: Duration,
}

/// What the broker sent that the firmware must hear of.
#[derive(Debug)]
pub enum LinkEvent {
    Connected,
    Message { topic: String, payload: Bytes },
}

/// Why a request was not taken.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    QueueFull,
    /// The session has ended.
    Gone,
}

enum Request {
    Publish(Publish),
    Subscribe(Subscribe),
    Disconnect,
}

/// The firmware's side of a session: requests taken or refused at once.
#[derive(Clone)]
pub struct Requests(mpsc::Sender<Request>);

impl Requests {
    pub fn publish(
        &self,
        topic: &str,
        payload: &[u8],
        qos: QoS,
        retain: bool,
    ) -> Result<(), Refusal> {
        let mut publish = Publish::new(topic, qos, payload);
        publish.retain = retain;
        self.send(Request::Publish(publish))
    }

    pub fn subscribe(&self, filter: &str, qos: QoS) -> Result<(), Refusal> {
        self.send(Request::Subscribe(Subscribe::new(filter, qos)))
    }

    fn send(&self, request: Request) -> Result<(), Refusal> {
        self.0.try_send(request).map_err(|error| match error {
            mpsc::error::TrySendError::Full(_) => Refusal::QueueFull,
            mpsc::error::TrySendError::Closed(_) => Refusal::Gone,
        })
    }
}

/// A session, from dialling on. Dropping it ends it at once, as a power loss does: the
/// stream closes without DISCONNECT.
pub struct Session {
    requests: Requests,
    events: mpsc::Receiver<LinkEvent>,
    _task: AbortOnDropHandle<()>,
}

impl Session {
    /// Dials and logs in, in the background; [`Session::next_event`] tells how it went.
    pub fn open(network: &Network, options: SessionOptions) -> Session {
        let (requests, queued) = mpsc::channel(QUEUE);
        let (events, arrived) = mpsc::channel(QUEUE);
        let task = tokio::spawn(run(network.clone(), options, queued, events));
        Session {
            requests: Requests(requests),
            events: arrived,
            _task: AbortOnDropHandle::new(task),
        }
    }

    pub fn requests(&self) -> Requests {
        self.requests.clone()
    }

    /// The next event; `None` once the session is over (refused, timed out, lost or
    /// closed). Cancel-safe.
    pub async fn next_event(&mut self) -> Option<LinkEvent> {
        self.events.recv().await
    }

    /// Closes cleanly: what was queued goes out, then DISCONNECT, and the stream is read
    /// on until the broker closes it (a socket closed with bytes unread is reset, and a
    /// reset can take the DISCONNECT with it). Bounded by `deadline`.
    pub async fn close(mut self, deadline: Duration) {
        if self.requests.send(Request::Disconnect).is_err() {
            return;
        }
        let _ = tokio::time::timeout(deadline, async {
            while self.events.recv().await.is_some() {}
        })
        .await;
    }
}

async fn run(
    network: Network,
    options: SessionOptions,
    queued: mpsc::Receiver<Request>,
    events: mpsc::Sender<LinkEvent>,
) {
    let keep_alive = options.keep_alive;
    let Ok(Ok((stream, unread))) =
        tokio::time::timeout(options.connect_timeout, log_in(&network, options)).await
    else {
        // Dropping `events` tells the board the session never started.
        return;
    };
    if events.send(LinkEvent::Connected).await.is_ok() {
        // However it ends, the board hears of it when `events` drops.
        let _ = serve(stream, unread, keep_alive, queued, events).await;
    }
}

/// Dials, sends CONNECT and waits for a CONNACK that accepts it. Returns the stream and
/// what arrived after the CONNACK.
async fn log_in(
    network: &Network,
    options: SessionOptions,
) -> io::Result<(Box<dyn ByteStream>, BytesMut)> {
    let mut stream = network.dial(&options.host, options.port).await?;
    let mut connect = Connect::new(options.client_id);
    connect.keep_alive = u16::try_from(options.keep_alive.as_secs()).unwrap_or(u16::MAX);
    connect.clean_session = true;
    connect.last_will = Some(options.will);
    connect.login = options.login;
    let mut out = BytesMut::new();
    encode(&Packet::Connect(connect), &mut out)?;
    stream.write_all(&out).await?;
    let mut unread = BytesMut::new();
    loop {
        if let Some(packet) = decode(&mut unread)? {
            return match packet {
                Packet::ConnAck(ack) if ack.code == ConnectReturnCode::Success => {
                    Ok((stream, unread))
                }
                Packet::ConnAck(ack) => Err(io::Error::other(format!("refused: {:?}", ack.code))),
                other => Err(io::Error::other(format!("{other:?} before CONNACK"))),
            };
        }
        if stream.read_buf(&mut unread).await? == 0 {
            return Err(io::ErrorKind::UnexpectedEof.into());
        }
    }
}

/// The connected session: requests out, packets in, pings, until either side ends it.
async fn serve(
    stream: Box<dyn ByteStream>,
    mut unread: BytesMut,
    keep_alive: Duration,
    mut queued: mpsc::Receiver<Request>,
    events: mpsc::Sender<LinkEvent>,
) -> io::Result<()> {
    let (mut rx, mut tx) = tokio::io::split(stream);
    let mut out = BytesMut::new();
    let mut packet_ids = PacketIds::default();
    let mut inflight = 0usize;
    let mut awaiting_pong = false;
    let mut leaving = false;
    let mut next_ping = Instant::now() + keep_alive;
    loop {
        while let Some(packet) = decode(&mut unread)? {
            match packet {
                Packet::Publish(publish) => {
                    match publish.qos {
                        QoS::AtMostOnce => {}
                        QoS::AtLeastOnce => {
                            encode(&Packet::PubAck(PubAck::new(publish.pkid)), &mut out)?
                        }
                        QoS::ExactlyOnce => {
                            encode(&Packet::PubRec(PubRec::new(publish.pkid)), &mut out)?
                        }
                    }
                    let message = LinkEvent::Message {
                        topic: publish.topic,
                        payload: publish.payload,
                    };
                    if events.send(message).await.is_err() {
                        return Ok(());
                    }
                }
                Packet::PubRel(release) => {
                    encode(&Packet::PubComp(PubComp::new(release.pkid)), &mut out)?
                }
                Packet::PubRec(received) => {
                    encode(&Packet::PubRel(PubRel::new(received.pkid)), &mut out)?
                }
                Packet::PubAck(_) | Packet::PubComp(_) => inflight = inflight.saturating_sub(1),
                Packet::PingResp => awaiting_pong = false,
                _ => {}
            }
        }
        if !out.is_empty() {
            write(&mut tx, &out).await?;
            out.clear();
        }
        tokio::select! {
            read = rx.read_buf(&mut unread) => {
                if read? == 0 {
                    return Ok(());
                }
            }
            Some(request) = queued.recv(), if inflight < INFLIGHT && !leaving => match request {
                Request::Publish(mut publish) => {
                    if publish.qos != QoS::AtMostOnce {
                        publish.pkid = packet_ids.next();
                        inflight += 1;
                    }
                    encode(&Packet::Publish(publish), &mut out)?;
                }
                Request::Subscribe(mut subscribe) => {
                    subscribe.pkid = packet_ids.next();
                    encode(&Packet::Subscribe(subscribe), &mut out)?;
                }
                Request::Disconnect => {
                    encode(&Packet::Disconnect, &mut out)?;
                    leaving = true;
                }
            },
            () = tokio::time::sleep_until(next_ping), if !leaving => {
                if awaiting_pong {
                    return Err(io::Error::new(io::ErrorKind::TimedOut, "no PINGRESP within the keep-alive"));
                }
                encode(&Packet::PingReq, &mut out)?;
                awaiting_pong = true;
                next_ping += keep_alive;
            }
        }
    }
}

async fn write(tx: &mut (impl AsyncWrite + Unpin), bytes: &[u8]) -> io::Result<()> {
    match tokio::time::timeout(WRITE_DEADLINE, tx.write_all(bytes)).await {
        Ok(written) => written,
        Err(_) => Err(io::Error::new(
            io::ErrorKind::TimedOut,
            "the broker took nothing for 30 s",
        )),
    }
}

fn encode(packet: &Packet, out: &mut BytesMut) -> io::Result<()> {
    packet
        .write(out, MAX_PACKET)
        .map(drop)
        .map_err(io::Error::other)
}

/// The next complete packet in `unread`, if there is one.
fn decode(unread: &mut BytesMut) -> io::Result<Option<Packet>> {
    match Packet::read(unread, MAX_PACKET) {
        Ok(packet) => Ok(Some(packet)),
        Err(rumqttc::mqttbytes::Error::InsufficientBytes(_)) => Ok(None),
        Err(error) => Err(io::Error::new(io::ErrorKind::InvalidData, error)),
    }
}

/// Packet ids 1..=65535 in turn (0 is not a packet id).
#[derive(Default)]
struct PacketIds(u16);

impl PacketIds {
    fn next(&mut self) -> u16 {
        self.0 = self.0.checked_add(1).unwrap_or(1);
        self.0
    }
}

/// A session whose network links the broker to the returned end, where a test plays the
/// broker (answering, or not at all).
#[cfg(test)]
pub(super) fn session_with_fake_broker(keep_alive: Duration) -> (Session, DuplexStream) {
    let (broker_end, board_end) = tokio::io::duplex(4096);
    let board_end = std::sync::Mutex::new(Some(board_end));
    let network = Network::with_local_tap(
        "127.0.0.1:1883".parse().unwrap(),
        Arc::new(move || board_end.lock().unwrap().take().expect("dialled once")),
    );
    let session = Session::open(
        &network,
        SessionOptions {
            host: "127.0.0.1".into(),
            port: 1883,
            client_id: "lamp".into(),
            keep_alive,
            login: Some(Login::new("user", "secret")),
            will: LastWill::new("lamp/status", "offline", QoS::AtLeastOnce, true),
            connect_timeout: Duration::from_secs(5),
        },
    );
    (session, broker_end)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The broker's side: the next packet the board sent, within a minute (longer than
    /// a keep-alive, for the test on a paused clock).
    async fn receive(broker: &mut DuplexStream, unread: &mut BytesMut) -> Packet {
        let next = async {
            loop {
                if let Some(packet) = decode(unread).unwrap() {
                    return packet;
                }
                let read = broker.read_buf(unread).await.unwrap();
                assert_ne!(read, 0, "the board hung up");
            }
        };
        tokio::time::timeout(Duration::from_secs(60), next)
            .await
            .expect("the board sends within a minute")
    }

    /// The session's next event, within two keep-alives.
    async fn next(session: &mut Session) -> Option<LinkEvent> {
        tokio::time::timeout(Duration::from_secs(60), session.next_event())
            .await
            .expect("the session tells within a minute")
    }

    async fn send(broker: &mut DuplexStream, packet: Packet) {
        let mut out = BytesMut::new();
        encode(&packet, &mut out).unwrap();
        broker.write_all(&out).await.unwrap();
    }

    async fn accept(broker: &mut DuplexStream, unread: &mut BytesMut) -> Connect {
        let Packet::Connect(connect) = receive(broker, unread).await else {
            panic!("the first packet is not CONNECT");
        };
        let ack = rumqttc::mqttbytes::v4::ConnAck::new(ConnectReturnCode::Success, false);
        send(broker, Packet::ConnAck(ack)).await;
        connect
    }

    #[tokio::test]
    async fn a_session_logs_in_acknowledges_deliveries_and_numbers_its_publishes() {
        let (mut session, mut broker) = session_with_fake_broker(Duration::from_secs(15));
        let mut unread = BytesMut::new();
        let connect = accept(&mut broker, &mut unread).await;
        assert_eq!(connect.client_id, "lamp");
        assert_eq!(connect.keep_alive, 15);
        assert_eq!(connect.login, Some(Login::new("user", "secret")));
        let will = connect.last_will.expect("a will");
        assert_eq!((will.topic.as_str(), will.retain), ("lamp/status", true));
        assert!(matches!(
            next(&mut session).await,
            Some(LinkEvent::Connected)
        ));

        let mut command = Publish::new("lamp", QoS::AtLeastOnce, "on");
        command.pkid = 7;
        send(&mut broker, Packet::Publish(command)).await;
        match next(&mut session).await {
            Some(LinkEvent::Message { topic, payload }) => {
                assert_eq!((topic.as_str(), payload.as_ref()), ("lamp", b"on".as_ref()));
            }
            other => panic!("no message but {other:?}"),
        }
        assert_eq!(
            receive(&mut broker, &mut unread).await,
            Packet::PubAck(PubAck::new(7))
        );

        let requests = session.requests();
        requests
            .publish("lamp/state", b"on", QoS::AtLeastOnce, true)
            .unwrap();
        requests
            .publish("lamp/state", b"off", QoS::AtLeastOnce, true)
            .unwrap();
        for (pkid, payload) in [(1, "on"), (2, "off")] {
            match receive(&mut broker, &mut unread).await {
                Packet::Publish(publish) => {
                    assert_eq!(publish.pkid, pkid);
                    assert!(publish.retain);
                    assert_eq!(publish.payload.as_ref(), payload.as_bytes());
                }
                other => panic!("no publish but {other:?}"),
            }
        }
    }

    #[tokio::test(start_paused = true)]
    async fn a_broker_that_leaves_a_ping_unanswered_ends_the_session() {
        let (mut session, mut broker) = session_with_fake_broker(Duration::from_secs(15));
        let mut unread = BytesMut::new();
        accept(&mut broker, &mut unread).await;
        assert!(matches!(
            next(&mut session).await,
            Some(LinkEvent::Connected)
        ));
        assert_eq!(receive(&mut broker, &mut unread).await, Packet::PingReq);
        // No PINGRESP: at the next ping the session gives up.
        assert!(next(&mut session).await.is_none());
        assert!(session
            .requests()
            .publish("lamp/state", b"on", QoS::AtMostOnce, false)
            .is_err());
    }

    #[tokio::test]
    async fn a_clean_close_sends_disconnect_after_what_was_queued() {
        let (session, mut broker) = session_with_fake_broker(Duration::from_secs(15));
        let mut unread = BytesMut::new();
        let mut session = session;
        accept(&mut broker, &mut unread).await;
        assert!(matches!(
            next(&mut session).await,
            Some(LinkEvent::Connected)
        ));
        session
            .requests()
            .publish("lamp/status", b"offline", QoS::AtLeastOnce, true)
            .unwrap();
        let closing = tokio::spawn(session.close(Duration::from_secs(5)));
        assert!(matches!(
            receive(&mut broker, &mut unread).await,
            Packet::Publish(_)
        ));
        assert_eq!(receive(&mut broker, &mut unread).await, Packet::Disconnect);
        // The broker closes; the close is over.
        drop(broker);
        closing.await.unwrap();
    }
}
