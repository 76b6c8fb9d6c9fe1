//! The wire tap: the broker's public listener. Every client connection passes through it;
//! it decodes both directions, records each packet in the trace, then forwards the exact
//! bytes to the broker engine (or back to the client).

mod acks;
mod conform;
mod decode;
mod faults;
mod ledger;
mod topic;

use std::collections::VecDeque;
use std::io;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::{Buf, Bytes, BytesMut};
use subtle::ConstantTimeEq;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, DuplexStream};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

pub use conform::with_qos;
pub use decode::{
    blank_password, connect_login, connect_protocol, next_frame, refusal_connack, DecodeError,
    Decoder, Protocol, Refusal,
};
pub use faults::{DropAmount, Fate, Faults};

use conform::{Conformance, Sessions, Verdict};

use crate::login::Credentials;
use crate::namespace::Namespace;
use crate::pcap::Capture;
use crate::trace::{hex_excerpt, CloseReason, ConnackCode, Direction, EventBody, Packet, Trace};

/// How long a new connection may take to send its CONNECT.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// The `conn_closed` detail of a connection turned away by a partition.
pub const PARTITIONED: &str = "partitioned";
/// Bytes of offending data kept in a `malformed` event.
const EXCERPT_BYTES: usize = 16;
/// The keep-alive the engine is asked for: the tap keeps each client's own (rumqttd
/// refuses 0, which turns the mechanism off), so the engine must never time out first.
const ENGINE_KEEP_ALIVE: u16 = u16::MAX;
/// How long the engine is given to let a client's connection go before the client's
/// next one reaches it (see [`Departures`]).
const ENGINE_SETTLE: Duration = Duration::from_millis(30);

/// Bytes an in-process link buffers each way before the writer waits.
const LOCAL_LINK_BUFFER: usize = 16 * 1024;
/// Room for reading, each way: a connection starts with the least and doubles it, up to
/// the most, while its reads fill it; an idle device of a fleet thus holds little.
const READ_ROOM_LEAST: usize = 1024;
const READ_ROOM_MOST: usize = 64 * 1024;

/// The most listeners the engine opens per protocol. rumqttd's accept loop pauses for a timer
/// tick after every accept, so one listener admits about a connection a millisecond;
/// connections spread over several listeners are admitted side by side.
pub const ENGINE_LISTENERS: usize = 16;

/// Where the tap forwards connections: the broker engine's listeners for each protocol.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Upstream {
    pub v311: [SocketAddr; ENGINE_LISTENERS],
    pub v5: [SocketAddr; ENGINE_LISTENERS],
}

impl Upstream {
    /// One address for everything (an external broker).
    pub fn single(addr: SocketAddr) -> Upstream {
        Upstream {
            v311: [addr; ENGINE_LISTENERS],
            v5: [addr; ENGINE_LISTENERS],
        }
    }

    /// The listener for a client: always the same one for the same client id, because
    /// rumqttd keeps a client's session and will per listener.
    fn for_client(&self, protocol: Protocol, client_id: &str) -> SocketAddr {
        use std::hash::{Hash, Hasher};
        let listeners = match protocol {
            Protocol::V311 => &self.v311,
            Protocol::V5 => &self.v5,
        };
        let mut hasher = std::collections::hash_map::DefaultHasher::new();
        client_id.hash(&mut hasher);
        listeners[hasher.finish() as usize % ENGINE_LISTENERS]
    }
}

/// Counters that let a benchmark check that no packet went unrecorded.
#[derive(Debug, Default)]
pub struct TapStats {
    pub connections: AtomicU64,
    pub packets: AtomicU64,
}

/// A running tap. Dropping it does not stop it; call [`Tap::stop`].
pub struct Tap {
    addr: SocketAddr,
    shared: Arc<Shared>,
    tasks: TaskTracker,
    stop: CancellationToken,
}

struct Shared {
    trace: Trace,
    max_packet_size: usize,
    capture: Option<Arc<Capture>>,
    namespace: Option<Namespace>,
    /// When set, a client must log in with exactly these.
    login: Option<Credentials>,
    faults: Arc<Faults>,
    /// Set when the tap keeps the specification where the engine does not (the embedded
    /// rumqttd); an external broker's own behaviour is what its users test.
    conform: bool,
    sessions: Sessions,
    departures: Departures,
    /// `None` while the broker is down: connections are then turned away.
    upstream: Mutex<Option<Upstream>>,
    /// Cancelled to cut every open connection (restart, stop); replaced afterwards.
    cut: Mutex<CancellationToken>,
    next_conn: AtomicU64,
    stats: TapStats,
}

impl Tap {
    /// Starts serving on an already bound listener.
    pub fn start(
        listener: TcpListener,
        trace: Trace,
        max_packet_size: usize,
        capture: Option<Arc<Capture>>,
        namespace: Option<Namespace>,
        login: Option<Credentials>,
        conform: bool,
    ) -> io::Result<Tap> {
        let addr = listener.local_addr()?;
        let shared = Arc::new(Shared {
            trace,
            max_packet_size,
            capture,
            namespace,
            login,
            faults: Arc::new(Faults::new(0)),
            conform,
            sessions: Sessions::default(),
            departures: Departures::default(),
            upstream: Mutex::new(None),
            cut: Mutex::new(CancellationToken::new()),
            next_conn: AtomicU64::new(1),
            stats: TapStats::default(),
        });
        let tasks = TaskTracker::new();
        let stop = CancellationToken::new();
        tasks.spawn(accept_loop(
            listener,
            shared.clone(),
            tasks.clone(),
            stop.clone(),
        ));
        Ok(Tap {
            addr,
            shared,
            tasks,
            stop,
        })
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Where clients in this process connect without a socket of their own.
    pub fn local_links(&self) -> LocalLinks {
        LocalLinks {
            shared: self.shared.clone(),
            tasks: self.tasks.clone(),
            stop: self.stop.clone(),
        }
    }

    pub fn stats(&self) -> &TapStats {
        &self.shared.stats
    }

    /// The faults injected into clients' connections.
    pub fn faults(&self) -> &Arc<Faults> {
        &self.shared.faults
    }

    /// Points new connections at `upstream`, or turns them away while it is `None`.
    pub fn set_upstream(&self, upstream: Option<Upstream>) {
        *lock(&self.shared.upstream) = upstream;
    }

    /// Forgets every session the tap followed, when the engine holding them ends.
    pub fn forget_sessions(&self) {
        self.shared.sessions.clear();
    }

    /// Closes every open connection (each gets a `conn_closed` event with reason `cut`).
    pub fn cut_all(&self) {
        let mut cut = lock(&self.shared.cut);
        cut.cancel();
        *cut = CancellationToken::new();
    }

    /// Stops accepting, cuts every connection and waits until each one has recorded its end.
    pub async fn stop(&self) {
        self.stop.cancel();
        self.cut_all();
        self.tasks.close();
        self.tasks.wait().await;
    }
}

/// Connections from inside this process (the run's simulated boards), served like accepted
/// sockets but over an in-memory stream: a board then costs no descriptor of its own.
#[derive(Clone)]
pub struct LocalLinks {
    shared: Arc<Shared>,
    tasks: TaskTracker,
    stop: CancellationToken,
}

impl LocalLinks {
    /// Opens a link and returns the client's end. A link the tap turns away (broker down,
    /// tap stopped) is closed at once, as a refused socket is.
    pub fn open(&self) -> DuplexStream {
        let (client_end, tap_end) = tokio::io::duplex(LOCAL_LINK_BUFFER);
        if !self.stop.is_cancelled() {
            admit(tap_end, None, &self.shared, &self.tasks);
        }
        client_end
    }
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

async fn accept_loop(
    listener: TcpListener,
    shared: Arc<Shared>,
    tasks: TaskTracker,
    stop: CancellationToken,
) {
    let mut last_warning: Option<std::time::Instant> = None;
    loop {
        let accepted = tokio::select! {
            () = stop.cancelled() => return,
            accepted = listener.accept() => accepted,
        };
        let (socket, peer) = match accepted {
            Ok(pair) => pair,
            Err(error) => {
                // Out of file descriptors and the like: back off briefly instead of spinning,
                // and say so once a second, not a hundred times.
                if last_warning.is_none_or(|at| at.elapsed() >= Duration::from_secs(1)) {
                    tracing::warn!(%error, "accept failed; new connections wait");
                    last_warning = Some(std::time::Instant::now());
                }
                tokio::time::sleep(Duration::from_millis(10)).await;
                continue;
            }
        };
        let _ = socket.set_nodelay(true);
        admit(socket, Some(peer), &shared, &tasks);
    }
}

/// Serves a new client connection, or turns it away while the broker is down. `peer`:
/// the socket's; `None` for an in-process link.
fn admit<S: ClientStream>(
    client: S,
    peer: Option<SocketAddr>,
    shared: &Arc<Shared>,
    tasks: &TaskTracker,
) {
    let conn = shared.next_conn.fetch_add(1, Ordering::Relaxed);
    // A link has no address: a loopback one made from its connection id stands in for
    // it in the trace and the capture.
    let peer = peer.unwrap_or_else(|| {
        let port = 1024 + conn % u64::from(u16::MAX - 1024);
        SocketAddr::from(([127, 0, 0, 1], port as u16))
    });
    let upstream = *lock(&shared.upstream);
    let cut = lock(&shared.cut).clone();
    let Some(upstream) = upstream else {
        shared.trace.record(EventBody::ConnRefused {
            peer: peer.to_string(),
            reason: "broker is down".into(),
        });
        tasks.spawn(turn_away(client, shared.max_packet_size, cut));
        return;
    };
    shared.stats.connections.fetch_add(1, Ordering::Relaxed);
    tasks.spawn(serve(client, peer, conn, upstream, shared.clone(), cut));
}

/// Answers a client that comes while the broker is down as a server whose network is up
/// and whose MQTT service is not: its CONNECT gets "server unavailable", then the
/// connection closes. The client learns at once that it was refused, as it would from a
/// stopped broker's closed port; closed without a word, a client that waits for CONNACK
/// (PubSubClient, for its whole socket timeout) would take far longer to try again than
/// against a real broker.
async fn turn_away<S: ClientStream>(mut client: S, max_packet_size: usize, cut: CancellationToken) {
    let mut from_client = BytesMut::with_capacity(READ_ROOM_LEAST);
    let opening = tokio::select! {
        () = cut.cancelled() => return,
        opening = tokio::time::timeout(CONNECT_TIMEOUT, read_connect(&mut client, &mut from_client, max_packet_size)) => opening,
    };
    if let Ok(Ok((_, protocol))) = opening {
        // The client may be gone already; it was refused either way.
        let _ = client
            .write_all(&refusal_connack(protocol, Refusal::ServerUnavailable))
            .await;
        let _ = client.shutdown().await;
    }
}

/// A client connection the tap serves: an accepted socket or an in-process link.
trait ClientStream: AsyncRead + AsyncWrite + Send + Unpin + 'static {
    type Reader: Incoming;
    type Writer: AsyncWrite + Send + Unpin;
    fn into_halves(self) -> (Self::Reader, Self::Writer);
}

impl ClientStream for TcpStream {
    type Reader = OwnedReadHalf;
    type Writer = OwnedWriteHalf;
    fn into_halves(self) -> (OwnedReadHalf, OwnedWriteHalf) {
        self.into_split()
    }
}

impl ClientStream for DuplexStream {
    type Reader = tokio::io::ReadHalf<DuplexStream>;
    type Writer = tokio::io::WriteHalf<DuplexStream>;
    fn into_halves(self) -> (Self::Reader, Self::Writer) {
        tokio::io::split(self)
    }
}

/// The read side of a connection.
trait Incoming: AsyncRead + Send + Unpin {
    /// Asks the kernel to acknowledge what was just read without the usual delay. The
    /// engine (rumqttd) does not disable Nagle's algorithm, so behind a delayed ACK its
    /// next small packet would wait up to 40 ms; quick ACKs keep the tap from adding that
    /// wait.
    fn acknowledge_at_once(&self);
}

impl Incoming for OwnedReadHalf {
    fn acknowledge_at_once(&self) {
        #[cfg(target_os = "linux")]
        let _ = socket2::SockRef::from(self.as_ref()).set_tcp_quickack(true);
    }
}

impl Incoming for tokio::io::ReadHalf<DuplexStream> {
    /// No kernel in between: nothing to acknowledge.
    fn acknowledge_at_once(&self) {}
}

/// Notes what the close reason needs: the engine's CONNACK, the client's last packet.
fn note_progress(conn: &Conn<'_>, dir: Direction, packet: &Packet) {
    match (dir, packet) {
        (Direction::ToClient, Packet::Connack { code, .. }) => {
            *lock(&conn.connack) = Some(*code);
            // The client's keep-alive runs from here: until the CONNACK it can only wait.
            *lock(&conn.last_heard) = Instant::now();
        }
        (Direction::ToBroker, packet) => *lock(&conn.last_sent) = packet.name(),
        _ => {}
    }
}

fn towards(dir: Direction) -> &'static str {
    match dir {
        Direction::ToBroker => "to the broker",
        Direction::ToClient => "to the client",
    }
}

/// A PUBLISH frame sent again: with DUP set when its QoS carries a packet id (a QoS 0
/// publish must not have it).
fn with_dup_flag(frame: &[u8]) -> BytesMut {
    let mut copy = BytesMut::from(frame);
    let qos = (copy[0] >> 1) & 0b11;
    if qos > 0 {
        copy[0] |= 0b1000;
    }
    copy
}

/// Frames the tap answers a packet with itself, and the subscriptions it refused.
type Answers = (Vec<(Direction, Bytes)>, Vec<String>);

/// How one connection ended, before it is told from which side.
enum End {
    Eof,
    ReadFailed(io::Error),
    WriteFailed(io::Error),
    Malformed,
}

/// What both directions of one connection share.
struct Conn<'a> {
    id: u64,
    client: Option<String>,
    protocol: Protocol,
    shared: &'a Shared,
    /// Set when the client sent DISCONNECT, so the close that follows counts as clean.
    disconnect_sent: AtomicBool,
    /// The engine's CONNACK code, once it came.
    connack: Mutex<Option<ConnackCode>>,
    /// The last packet the client sent, to say after what the engine closed.
    last_sent: Mutex<&'static str>,
    /// When the client last sent anything, for its keep-alive.
    last_heard: Mutex<Instant>,
    conformance: Option<Mutex<Conformance>>,
    /// Frames the tap itself sends: towards the engine, towards the client.
    answers_to_broker: mpsc::UnboundedSender<Bytes>,
    answers_to_client: mpsc::UnboundedSender<Bytes>,
}

impl Conn<'_> {
    /// Sends (and records, towards the client) the frames the tap answers itself, and
    /// records the subscriptions it refused.
    fn send_answers(&self, answered: Option<Answers>) {
        let Some((answers, refused)) = answered else {
            return;
        };
        for (to, answer) in answers {
            if to == Direction::ToClient {
                if let Ok(sent) = Decoder::new(self.protocol, usize::MAX).decode(&answer) {
                    self.record_packet(to, sent);
                }
            }
            let queue = match to {
                Direction::ToBroker => &self.answers_to_broker,
                Direction::ToClient => &self.answers_to_client,
            };
            // The receiving pump lives as long as the connection; after, nothing is owed.
            let _ = queue.send(answer);
        }
        for filter in refused {
            self.record_fault(
                "deny_subscribe",
                format!("subscription to {filter} refused"),
            );
        }
    }

    /// What becomes of a frame, by the specification where the engine does not keep it.
    fn judge(&self, dir: Direction, frame: &Bytes, packet: &Packet) -> Option<conform::Action> {
        let mut conformance = lock(self.conformance.as_ref()?);
        let sessions = &self.shared.sessions;
        Some(match dir {
            Direction::ToBroker => {
                let faults = &self.shared.faults;
                conformance.client_frame(frame, packet, sessions, &|filter| {
                    faults.refuses_subscription(filter)
                })
            }
            Direction::ToClient => conformance.engine_frame(frame, packet, sessions),
        })
    }

    /// Why the engine closed the connection, from what came before.
    fn engine_close_reason(&self) -> (CloseReason, Option<String>) {
        let client = self.client.as_deref().unwrap_or_default();
        if let Some(newer) = self.shared.faults.newer_connection(client, self.id) {
            return (
                CloseReason::TakenOver,
                Some(format!(
                    "connection {newer} connected with the same client id"
                )),
            );
        }
        match *lock(&self.connack) {
            None => (
                CloseReason::EngineRefused,
                Some("the engine closed the connection before CONNACK".into()),
            ),
            Some(code) if !code.is_success() => {
                (CloseReason::EngineRefused, Some(format!("CONNACK {code}")))
            }
            Some(_) => (
                CloseReason::ProtocolError,
                Some(format!(
                    "the engine closed the connection after the client's {}",
                    *lock(&self.last_sent)
                )),
            ),
        }
    }

    fn record_malformed(&self, dir: Direction, reason: String, bytes: &[u8]) {
        self.shared.trace.record(EventBody::Malformed {
            conn: self.id,
            client: self.client.clone(),
            dir,
            reason,
            excerpt_hex: hex_excerpt(bytes, EXCERPT_BYTES),
        });
    }

    fn record_packet(&self, dir: Direction, mut packet: Packet) {
        if let Some(namespace) = &self.shared.namespace {
            namespace.strip(&mut packet);
        }
        self.record_stripped(dir, packet);
    }

    /// Records a packet whose namespace prefixes are already taken off.
    fn record_stripped(&self, dir: Direction, packet: Packet) {
        self.shared.stats.packets.fetch_add(1, Ordering::Relaxed);
        self.shared.trace.record(EventBody::Mqtt {
            conn: self.id,
            client: self.client.clone(),
            dir,
            packet,
        });
    }

    fn record_fault(&self, fault: &str, detail: String) {
        self.shared.trace.record(EventBody::Fault {
            fault: fault.into(),
            target: self.client.clone(),
            detail,
        });
    }

    fn capture(&self, dir: Direction, bytes: &[u8]) {
        if let Some(capture) = &self.shared.capture {
            capture.data(self.id, dir, bytes);
        }
    }

    fn record_closed(&self, reason: CloseReason, detail: Option<String>) {
        if let Some(capture) = &self.shared.capture {
            capture.closed(self.id);
        }
        self.shared.trace.record(EventBody::ConnClosed {
            conn: self.id,
            client: self.client.clone(),
            reason,
            detail,
        });
    }
}

async fn serve<S: ClientStream>(
    mut client: S,
    peer: SocketAddr,
    id: u64,
    upstream: Upstream,
    shared: Arc<Shared>,
    cut: CancellationToken,
) {
    shared.trace.record(EventBody::ConnOpened {
        conn: id,
        peer: peer.to_string(),
    });
    if let Some(capture) = &shared.capture {
        capture.opened(id, peer);
    }
    let (answers_to_broker, broker_answers) = mpsc::unbounded_channel();
    let (answers_to_client, client_answers) = mpsc::unbounded_channel();
    let mut conn = Conn {
        id,
        client: None,
        protocol: Protocol::V311,
        shared: &shared,
        disconnect_sent: AtomicBool::new(false),
        connack: Mutex::new(None),
        last_sent: Mutex::new("connect"),
        last_heard: Mutex::new(Instant::now()),
        conformance: None,
        answers_to_broker,
        answers_to_client,
    };
    let mut from_client = BytesMut::with_capacity(READ_ROOM_LEAST);
    let opening = tokio::select! {
        () = cut.cancelled() => return conn.record_closed(CloseReason::Cut, None),
        opening = tokio::time::timeout(CONNECT_TIMEOUT, read_connect(&mut client, &mut from_client, shared.max_packet_size)) => opening,
    };
    let (frame, protocol) = match opening {
        Err(_elapsed) => {
            return conn.record_closed(
                CloseReason::Error,
                Some(format!("no CONNECT within {}s", CONNECT_TIMEOUT.as_secs())),
            );
        }
        Ok(Err(Opening::Eof)) => {
            return conn.record_closed(CloseReason::ByPeer, Some("closed before CONNECT".into()))
        }
        Ok(Err(Opening::Io(error))) => {
            return conn.record_closed(CloseReason::Error, Some(error.to_string()))
        }
        Ok(Err(Opening::Malformed(reason, bytes))) => {
            conn.record_malformed(Direction::ToBroker, reason.to_string(), &bytes);
            return conn.record_closed(CloseReason::Malformed, None);
        }
        Ok(Ok(opening)) => opening,
    };
    conn.protocol = protocol;
    let mut to_broker = Decoder::new(protocol, shared.max_packet_size);
    let mut connect = match to_broker.decode(&frame) {
        Ok(connect) => connect,
        Err(reason) => {
            conn.record_malformed(Direction::ToBroker, reason.to_string(), &frame);
            return conn.record_closed(CloseReason::Malformed, None);
        }
    };
    if let Some(namespace) = &shared.namespace {
        namespace.strip(&mut connect);
    }
    let mut keep_alive = 0;
    let mut will = None;
    if let Packet::Connect {
        client_id,
        keep_alive: asked,
        will: asked_will,
        clean_session,
        ..
    } = &connect
    {
        conn.client = Some(client_id.clone());
        keep_alive = *asked;
        will = asked_will.clone();
        if shared.conform {
            conn.conformance = Some(Mutex::new(Conformance::new(protocol, client_id, &frame)));
            if *clean_session {
                shared.sessions.clean(client_id);
            }
        }
    }
    conn.record_stripped(Direction::ToBroker, connect);
    let client_id = conn.client.clone().unwrap_or_default();
    if shared.faults.is_partitioned(&client_id) {
        shared.trace.record(EventBody::ConnRefused {
            peer: peer.to_string(),
            reason: format!("{client_id} is partitioned"),
        });
        return conn.record_closed(CloseReason::Cut, Some(PARTITIONED.into()));
    }
    if let Some(login) = &shared.login {
        let given = connect_login(&frame, protocol);
        // Compared in constant time, so how long a refusal takes tells nothing of how
        // much of the login was right.
        let matches = given.is_some_and(|(username, password)| {
            let name = username.as_bytes().ct_eq(login.username.as_bytes());
            let word = password.as_bytes().ct_eq(login.password.as_bytes());
            bool::from(name & word)
        });
        if !matches {
            let refusal = refusal_connack(protocol, Refusal::BadLogin);
            conn.record_packet(
                Direction::ToClient,
                Packet::Connack {
                    session_present: false,
                    code: ConnackCode::BadUserNameOrPassword,
                },
            );
            let _ = client.write_all(&refusal).await;
            return conn.record_closed(
                CloseReason::ByBroker,
                Some("bad user name or password".into()),
            );
        }
    }

    let engine_connect = if shared.conform {
        conform::with_keep_alive(&frame, ENGINE_KEEP_ALIVE)
    } else {
        frame.clone()
    };
    if shared.conform {
        tokio::select! {
            () = cut.cancelled() => return conn.record_closed(CloseReason::Cut, None),
            () = shared.departures.settle(&client_id) => {}
        }
    }
    let mut broker = match TcpStream::connect(
        upstream.for_client(protocol, conn.client.as_deref().unwrap_or_default()),
    )
    .await
    {
        Ok(broker) => broker,
        Err(error) => {
            return conn.record_closed(
                CloseReason::ByBroker,
                Some(format!("broker unreachable: {error}")),
            )
        }
    };
    let _ = broker.set_nodelay(true);
    if let Err(error) = broker.write_all(&engine_connect).await {
        return conn.record_closed(CloseReason::ByBroker, Some(error.to_string()));
    }
    if conn.shared.capture.is_some() {
        match blank_password(&frame, protocol) {
            Some(blanked) => conn.capture(Direction::ToBroker, &blanked),
            None => tracing::warn!(
                conn = id,
                "the CONNECT is left out of the capture: its password could not be found to blank it"
            ),
        }
    }

    let cut = cut.child_token();
    shared.faults.register(&client_id, id, cut.clone());
    let (client_rx, client_tx) = client.into_halves();
    let (broker_rx, broker_tx) = broker.into_split();
    let to_client = Decoder::new(protocol, shared.max_packet_size);
    *lock(&conn.last_heard) = Instant::now();
    let keep_alive_watch = async {
        match keep_alive {
            0 => std::future::pending().await,
            _ if !shared.conform => std::future::pending().await,
            seconds => keep_alive_expired(&conn, seconds).await,
        }
    };
    let (reason, detail) = tokio::select! {
        end = pump(&conn, Direction::ToBroker, client_rx, broker_tx, to_broker, from_client, broker_answers) => match end {
            End::Eof if conn.disconnect_sent.load(Ordering::Relaxed) => (CloseReason::Clean, None),
            End::Eof => (CloseReason::ByPeer, Some("closed without DISCONNECT".into())),
            End::ReadFailed(error) => (CloseReason::Error, Some(error.to_string())),
            End::WriteFailed(error) => (CloseReason::ByBroker, Some(error.to_string())),
            End::Malformed => (CloseReason::Malformed, None),
        },
        end = pump(&conn, Direction::ToClient, broker_rx, client_tx, to_client, BytesMut::new(), client_answers) => match end {
            End::Eof if conn.disconnect_sent.load(Ordering::Relaxed) => (CloseReason::Clean, None),
            End::Eof => conn.engine_close_reason(),
            End::ReadFailed(error) => {
                let (reason, detail) = conn.engine_close_reason();
                (reason, Some(format!("{}: {error}", detail.unwrap_or_default())))
            }
            End::WriteFailed(error) => (CloseReason::Error, Some(error.to_string())),
            End::Malformed => (CloseReason::Malformed, None),
        },
        () = cut.cancelled() => (CloseReason::Cut, None),
        silent_for = keep_alive_watch => (
            CloseReason::KeepAliveTimeout,
            Some(format!("nothing from the client for {silent_for:?}, 1.5 × its keep-alive of {keep_alive} s")),
        ),
    };
    shared.faults.unregister(&client_id, id);
    if let Some(will) = will.filter(|_| shared.conform && reason != CloseReason::Clean) {
        // The engine publishes the will when its socket closes, just below.
        shared.sessions.ledger.published(
            &will.topic,
            &will.payload.0,
            will.retain,
            ledger::Origin {
                qos: will.qos,
                retain: will.retain,
                client: client_id.clone(),
            },
        );
    }
    conn.record_closed(reason, detail);
    if shared.conform {
        shared.departures.left(&client_id);
    }
    // Both sockets close here, when they drop. A client that vanished thus vanishes for
    // the broker too, without DISCONNECT, so its will fires as it would without the tap.
}

/// When each client id's last connection through the tap to the engine ended.
///
/// rumqttd 0.20 cannot take a client back at once: when a client's connection ends,
/// its link tells the router later, and a new connection with the same client id that
/// the router set up in between is taken for the old one and ended before its CONNACK
/// (the router hands the new connection the old one's slot, and with MQTT 5 the
/// listener that served the refused one panics on that client id's next connection).
/// So a client that comes back within `ENGINE_SETTLE` of leaving waits out the rest of
/// it before its CONNECT reaches the engine.
#[derive(Default)]
struct Departures(Mutex<Departed>);

#[derive(Default)]
struct Departed {
    at: std::collections::HashMap<String, Instant>,
    /// The size at which those that left long ago are next forgotten: twice what was
    /// kept at the last sweep, so that a fleet leaving at once (a broker restart cuts
    /// every connection) costs a sweep now and then, not one per departure.
    sweep_at: usize,
}

impl Departures {
    /// Fewer client ids than this are never swept.
    const KEPT: usize = 1024;

    fn left(&self, client_id: &str) {
        let now = Instant::now();
        let mut departed = lock(&self.0);
        if departed.at.len() >= departed.sweep_at.max(Self::KEPT) {
            departed
                .at
                .retain(|_, at| now.duration_since(*at) < ENGINE_SETTLE);
            departed.sweep_at = 2 * departed.at.len();
        }
        departed.at.insert(client_id.to_string(), now);
    }

    async fn settle(&self, client_id: &str) {
        let left_at = lock(&self.0).at.get(client_id).copied();
        if let Some(left_at) = left_at {
            tokio::time::sleep_until(left_at + ENGINE_SETTLE).await;
        }
    }
}

/// Waits until the client has been silent for 1.5 times its keep-alive (MQTT 3.1.1 and 5,
/// section 3.1.2.10) since the engine's CONNACK (a busy engine can take long to answer,
/// and that is no silence of the client's); returns how long that is.
async fn keep_alive_expired(conn: &Conn<'_>, keep_alive: u16) -> Duration {
    let allowed = Duration::from_millis(u64::from(keep_alive) * 1500);
    loop {
        let deadline = match *lock(&conn.connack) {
            None => Instant::now() + allowed,
            Some(_) => *lock(&conn.last_heard) + allowed,
        };
        if Instant::now() >= deadline {
            return allowed;
        }
        tokio::time::sleep_until(deadline).await;
    }
}

enum Opening {
    Eof,
    Io(io::Error),
    Malformed(DecodeError, Bytes),
}

/// Reads until the first frame is complete and checks that it is a CONNECT of a protocol
/// the broker speaks.
async fn read_connect(
    client: &mut (impl AsyncRead + Unpin),
    buf: &mut BytesMut,
    max_packet_size: usize,
) -> Result<(Bytes, Protocol), Opening> {
    loop {
        // Reject non-MQTT openings (an HTTP request, say) as soon as the first byte shows it.
        if buf.first().is_some_and(|b| b >> 4 != 1) {
            return Err(Opening::Malformed(
                DecodeError::NotConnect,
                buf.clone().freeze(),
            ));
        }
        match next_frame(buf, max_packet_size) {
            Ok(Some(frame)) => {
                return connect_protocol(&frame)
                    .map(|protocol| (frame.clone(), protocol))
                    .map_err(|reason| Opening::Malformed(reason, frame));
            }
            Ok(None) => {}
            Err(reason) => return Err(Opening::Malformed(reason, buf.clone().freeze())),
        }
        match client.read_buf(buf).await {
            Ok(0) if buf.is_empty() => return Err(Opening::Eof),
            Ok(0) => {
                return Err(Opening::Malformed(
                    DecodeError::Truncated,
                    buf.clone().freeze(),
                ))
            }
            Ok(_) => {}
            Err(error) => return Err(Opening::Io(error)),
        }
    }
}

/// Moves one direction of a connection: read, split frames, record each, forward the
/// bytes unchanged. Frames are recorded before they are forwarded, so the trace shows a
/// publish arriving at the broker before its deliveries.
async fn pump(
    conn: &Conn<'_>,
    dir: Direction,
    mut rx: impl Incoming,
    mut tx: impl AsyncWrite + Unpin,
    mut decoder: Decoder,
    mut buf: BytesMut,
    mut answers: mpsc::UnboundedReceiver<Bytes>,
) -> End {
    let mut held = Held::default();
    let mut room = READ_ROOM_LEAST;
    loop {
        let arrived = Instant::now();
        let (outgoing, end) = take_complete_frames(conn, dir, &mut decoder, &mut buf);
        for (bytes, hold) in outgoing {
            if bytes.is_empty() {
                continue;
            }
            if hold.is_zero() && held.is_empty() {
                if let Err(error) = send(conn, dir, &mut tx, &bytes).await {
                    return End::WriteFailed(error);
                }
            } else {
                held.push_back((bytes, arrived + hold));
            }
        }
        if let Some(end) = end {
            return release_all(conn, dir, &mut tx, held).await.unwrap_or(end);
        }
        if buf.capacity() - buf.len() < room / 2 {
            buf.reserve(room);
        }
        let spare = buf.capacity() - buf.len();
        let read = loop {
            match read_or_release(&mut held, &mut rx, &mut buf, &mut answers).await {
                Next::Release(bytes) => {
                    if let Err(error) = send(conn, dir, &mut tx, &bytes).await {
                        return End::WriteFailed(error);
                    }
                }
                Next::Read(read) => break read,
            }
        };
        rx.acknowledge_at_once();
        if dir == Direction::ToBroker {
            *lock(&conn.last_heard) = Instant::now();
        }
        match read {
            Ok(0) => {
                if !buf.is_empty() {
                    conn.record_malformed(
                        dir,
                        "connection closed in the middle of a packet".into(),
                        &buf,
                    );
                }
                // A held DISCONNECT still goes, so the close stays clean.
                return release_all(conn, dir, &mut tx, held)
                    .await
                    .unwrap_or(End::Eof);
            }
            Ok(read) => {
                if read == spare {
                    room = (room * 2).min(READ_ROOM_MOST);
                }
            }
            Err(error) => return End::ReadFailed(error),
        }
    }
}

/// rumqttd 0.20 writes an MQTT 5 DISCONNECT with a reason as `E0 01 R 00`: its remaining
/// length counts the reason only, yet a property length follows, which a client would
/// read as the start of another packet. The tap forwards `E0 01 R` and drops the `00`.
fn skip_engine_stray_byte(frame: &[u8], buf: &mut BytesMut) {
    if matches!(frame, [0xe0, 0x01, _]) && buf.first() == Some(&0) {
        buf.advance(1);
    }
}

/// Frames a `delay` holds, each with the time it may go: its own arrival plus its hold.
/// They go in order, so a frame never overtakes the one before it; reading goes on
/// meanwhile, so a burst is held once, not once per frame.
type Held = VecDeque<(BytesMut, Instant)>;

/// Held frames at most; beyond, reading waits (and TCP pushes back on the sender).
const HELD_LIMIT: usize = 4096;

enum Next {
    Release(BytesMut),
    Read(io::Result<usize>),
}

/// Reads more, sends a frame the tap answers itself, or releases the first held frame
/// when its time comes, whichever is first. An answer goes out as soon as it is made (it
/// overtakes held frames, as an ack from the broker's side would).
async fn read_or_release(
    held: &mut Held,
    rx: &mut (impl AsyncRead + Unpin),
    buf: &mut BytesMut,
    answers: &mut mpsc::UnboundedReceiver<Bytes>,
) -> Next {
    let Some(&(_, release_at)) = held.front() else {
        return tokio::select! {
            // Cancel-safe both: a read that loses the race has taken no bytes.
            read = rx.read_buf(buf) => Next::Read(read),
            Some(answer) = answers.recv() => Next::Release(BytesMut::from(&answer[..])),
        };
    };
    if held.len() < HELD_LIMIT {
        tokio::select! {
            biased;
            () = tokio::time::sleep_until(release_at) => {}
            read = rx.read_buf(buf) => return Next::Read(read),
            Some(answer) = answers.recv() => return Next::Release(BytesMut::from(&answer[..])),
        }
    } else {
        tokio::time::sleep_until(release_at).await;
    }
    Next::Release(held.pop_front().map(|(bytes, _)| bytes).unwrap_or_default())
}

/// Releases every held frame, each at its time; the error of a failed write, if any.
async fn release_all(
    conn: &Conn<'_>,
    dir: Direction,
    tx: &mut (impl AsyncWrite + Unpin),
    held: Held,
) -> Option<End> {
    for (bytes, release_at) in held {
        tokio::time::sleep_until(release_at).await;
        if let Err(error) = send(conn, dir, tx, &bytes).await {
            return Some(End::WriteFailed(error));
        }
    }
    None
}

async fn send(
    conn: &Conn<'_>,
    dir: Direction,
    tx: &mut (impl AsyncWrite + Unpin),
    bytes: &[u8],
) -> io::Result<()> {
    tx.write_all(bytes).await?;
    conn.capture(dir, bytes);
    Ok(())
}

/// Bytes to send on, each after holding them for a while (a `delay` fault).
type Outgoing = Vec<(BytesMut, Duration)>;

/// Records every complete frame in `buf` and says what to send on: without faults, all
/// of it at once; with faults for this client, frame by frame as the faults decide. When
/// a frame is not acceptable, also how the connection must end (the frames before it
/// still go).
fn take_complete_frames(
    conn: &Conn<'_>,
    dir: Direction,
    decoder: &mut Decoder,
    buf: &mut BytesMut,
) -> (Outgoing, Option<End>) {
    let client = conn.client.as_deref().unwrap_or_default();
    let faulty = conn.shared.faults.any_for(client);
    let mut outgoing: Outgoing = vec![(BytesMut::new(), Duration::ZERO)];
    let forward = |outgoing: &mut Outgoing, frame: &[u8], hold: Duration| {
        if hold.is_zero() {
            if let Some((last, _)) = outgoing.last_mut() {
                last.extend_from_slice(frame);
                return;
            }
        }
        outgoing.push((BytesMut::from(frame), hold));
    };
    loop {
        let frame = match next_frame(buf, conn.shared.max_packet_size) {
            Ok(Some(frame)) => frame,
            Ok(None) => return (outgoing, None),
            Err(reason) => {
                conn.record_malformed(dir, reason.to_string(), buf);
                return (outgoing, Some(End::Malformed));
            }
        };
        match decoder.decode(&frame) {
            Ok(Packet::Connect { .. }) if dir == Direction::ToBroker => {
                conn.record_malformed(dir, DecodeError::SecondConnect.to_string(), &frame);
                return (outgoing, Some(End::Malformed));
            }
            Ok(mut packet) => {
                if dir == Direction::ToBroker && matches!(packet, Packet::Disconnect { .. }) {
                    conn.disconnect_sent.store(true, Ordering::Relaxed);
                }
                if dir == Direction::ToClient && conn.shared.conform {
                    skip_engine_stray_byte(&frame, buf);
                }
                note_progress(conn, dir, &packet);
                let mut frame = frame;
                // What the tap answers itself is recorded after the packet it answers.
                let mut answered = None;
                if let Some(action) = conn.judge(dir, &frame, &packet) {
                    answered = Some((action.answers, action.refused));
                    match action.verdict {
                        Verdict::Forward => {}
                        Verdict::Replace(replacement) => {
                            // What the client receives is recorded; what it sent, as sent.
                            if dir == Direction::ToClient {
                                match decoder.decode(&replacement) {
                                    Ok(changed) => packet = changed,
                                    Err(reason) => {
                                        tracing::warn!(%reason, "a changed frame does not decode")
                                    }
                                }
                            }
                            frame = replacement;
                        }
                        Verdict::Withhold => {
                            if dir == Direction::ToBroker {
                                conn.record_packet(dir, packet);
                            }
                            conn.send_answers(answered);
                            continue;
                        }
                    }
                }
                let (fate, hold) = if faulty {
                    conn.shared.faults.fate(client, dir, &packet)
                } else {
                    (Fate::Forward, Duration::ZERO)
                };
                let name = packet.name();
                conn.record_packet(dir, packet);
                conn.send_answers(answered);
                match fate {
                    Fate::Forward => forward(&mut outgoing, &frame, hold),
                    Fate::Drop => conn.record_fault("drop", format!("{name} {}", towards(dir))),
                    Fate::Twice => {
                        forward(&mut outgoing, &frame, hold);
                        forward(&mut outgoing, &with_dup_flag(&frame), Duration::ZERO);
                        conn.record_fault("duplicate", format!("{name} {}", towards(dir)));
                    }
                }
            }
            Err(reason) => {
                conn.record_malformed(dir, reason.to_string(), &frame);
                return (outgoing, Some(End::Malformed));
            }
        }
    }
}
