//! A serial port on another machine, served over RFC 2217 (ser2net's `telnet(rfc2217)`
//! accepter), made local: hil bridges it to a pseudo-terminal of its own.
//!
//! espflash only takes a local tty, so a bridge is the one way every serial user (the
//! serial board, `hil monitor`, espflash) can work unchanged on a remote port. A pty has
//! no modem lines, so DTR and RTS go through [`RemoteLines`] as RFC 2217 commands, and
//! the pty's baud rate is watched: when a program on it changes the rate (espflash after
//! CHANGE_BAUDRATE), the remote port follows before the next byte goes out.
//!
//! The protocol (Telnet negotiation, IAC escaping, COM-PORT-OPTION) is the `rfc2217`
//! crate's sans-IO client; this module is its transport. The bridge runs on a thread of
//! its own, so it serves synchronous code (flashing) and the harness runtime alike.
//!
//! ```text
//!  user ──/dev/pts/N── pty master ──▶ client.write_data ──▶ outbound queue ──▶ TCP
//!                          ▲                                                   │
//!                          └──────────── client.receive ◀──────────────────────┘
//! ```

use std::path::{Path, PathBuf};
use std::sync::{mpsc as std_mpsc, Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use ::rfc2217::{Client, Event, NotReady, PortSettings};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::TcpStream;
use tokio::sync::mpsc;
use tokio::time::{timeout, timeout_at, Instant};
use tokio_util::sync::CancellationToken;

use crate::chip::pty::Pty;

/// From `connect` to an open TCP connection.
const CONNECT_DEADLINE: Duration = Duration::from_secs(5);
/// From the connection to the bridge confirming the port settings (pyserial allows 3 s
/// per setting; ser2net answers all five at once).
const NEGOTIATION_DEADLINE: Duration = Duration::from_secs(3);
const SERVER_HINT: &str = "the bench host must serve the port with RFC 2217, e.g. ser2net's \
                           `accepter: telnet(rfc2217),tcp,PORT`";

/// A remote port, bridged to a local pty while this lives.
pub struct RemotePort {
    pty_path: PathBuf,
    lines: RemoteLines,
    stop: CancellationToken,
    bridge: Option<JoinHandle<()>>,
}

/// The remote port's DTR and RTS. Cheap to clone; commands go out in call order, after
/// the data written to the pty before them.
#[derive(Clone)]
pub struct RemoteLines {
    shared: Arc<Shared>,
}

/// The protocol state both directions of the bridge and the line commands share. Output
/// is taken and queued under the lock, so bytes leave in the order the client made them.
struct Shared {
    address: String,
    state: Mutex<ClientState>,
    outbound: mpsc::UnboundedSender<Vec<u8>>,
}

struct ClientState {
    client: Client,
    /// The baud rate last requested from the bridge.
    baud: u32,
}

fn settings(baud: u32) -> PortSettings {
    PortSettings {
        baud_rate: baud,
        ..PortSettings::default()
    }
}

/// Why a remote port could not be connected.
#[derive(Debug, thiserror::Error)]
pub enum Rfc2217Error {
    #[error("cannot reach rfc2217://{address}: {source}; {}", SERVER_HINT)]
    Unreachable {
        address: String,
        source: std::io::Error,
    },
    #[error("rfc2217://{address}: no connection within {within}; is the bench host up?")]
    NoConnection { address: String, within: String },
    /// The server refused or changed the port settings.
    #[error(
        "rfc2217://{address}: {reason} (reported: {reported}); {}",
        SERVER_HINT
    )]
    Refused {
        address: String,
        reason: String,
        reported: String,
    },
    #[error("rfc2217://{address}: {reason} within {within}; {}", SERVER_HINT)]
    Unanswered {
        address: String,
        reason: String,
        within: String,
    },
    /// The server hung up while negotiating: ser2net serves one client at a time.
    #[error("rfc2217://{address} closed the connection while negotiating: the port may be in use by another client (ser2net serves one at a time)")]
    Busy { address: String },
    #[error("rfc2217://{address}: {source}")]
    Io {
        address: String,
        source: std::io::Error,
    },
    /// What bridges the remote port here (a thread, a runtime, the local pty) failed.
    #[error("rfc2217://{address}: {what}: {source}")]
    Local {
        address: String,
        what: &'static str,
        source: std::io::Error,
    },
    #[error("rfc2217://{address}: the bridge stopped while connecting")]
    BridgeStopped { address: String },
}

impl RemotePort {
    /// Connects to the RFC 2217 server at `address` (`host:port`), sets the remote port
    /// to `baud` 8N1 without flow control, and bridges it to a new local pty. Returns
    /// once the server has confirmed the settings, or with an error that says why not.
    pub fn connect(address: &str, baud: u32) -> Result<RemotePort, Rfc2217Error> {
        let stop = CancellationToken::new();
        let (ready, opened) = std_mpsc::channel();
        let bridge = {
            let (owned, stop) = (address.to_string(), stop.clone());
            std::thread::Builder::new()
                .name(format!("rfc2217 {address}"))
                .spawn(move || run(&owned, baud, &ready, &stop))
                .map_err(|source| Rfc2217Error::Local {
                    address: address.to_string(),
                    what: "cannot start the bridge",
                    source,
                })?
        };
        // The bridge thread reports within its own deadlines; a thread that died
        // without a word drops the sender, which ends the wait too.
        match opened.recv() {
            Ok(Ok((pty_path, lines))) => Ok(RemotePort {
                pty_path,
                lines,
                stop,
                bridge: Some(bridge),
            }),
            Ok(Err(error)) => {
                let _ = bridge.join();
                Err(error)
            }
            Err(_) => {
                let _ = bridge.join();
                Err(Rfc2217Error::BridgeStopped {
                    address: address.to_string(),
                })
            }
        }
    }

    /// The local pty (`/dev/pts/N`) the remote port is bridged to.
    pub fn path(&self) -> &Path {
        &self.pty_path
    }

    pub fn lines(&self) -> RemoteLines {
        self.lines.clone()
    }
}

impl Drop for RemotePort {
    fn drop(&mut self) {
        self.stop.cancel();
        if let Some(bridge) = self.bridge.take() {
            let _ = bridge.join();
        }
    }
}

impl super::ModemLines for RemoteLines {
    fn set_dtr(&mut self, on: bool) -> Result<(), super::LinesError> {
        self.shared.command(|client| client.set_dtr(on))
    }

    fn set_rts(&mut self, on: bool) -> Result<(), super::LinesError> {
        self.shared.command(|client| client.set_rts(on))
    }
}

impl Shared {
    fn command(&self, command: impl FnOnce(&mut Client)) -> Result<(), super::LinesError> {
        let mut state = self.lock();
        command(&mut state.client);
        self.flush(&mut state)
    }

    /// Serial data from the pty, after a baud change when the pty's rate moved.
    fn send_data(&self, data: &[u8], baud: u32) -> Result<(), super::LinesError> {
        let mut state = self.lock();
        if baud != state.baud && baud != 0 {
            tracing::debug!(address = %self.address, baud, "the local pty changed its baud rate");
            state.baud = baud;
            state.client.set_port_settings(settings(baud));
        }
        state.client.write_data(data);
        self.flush(&mut state)
    }

    /// Bytes from the server: the serial data in them, and the replies queued.
    fn receive(&self, bytes: &[u8]) -> Result<Vec<u8>, super::LinesError> {
        let mut state = self.lock();
        let payload = state.client.receive(bytes);
        while let Some(event) = state.client.poll_event() {
            log_event(&self.address, &event);
        }
        self.flush(&mut state)?;
        Ok(payload)
    }

    fn flush(&self, state: &mut ClientState) -> Result<(), super::LinesError> {
        let output = state.client.take_output();
        if output.is_empty() {
            return Ok(());
        }
        self.outbound
            .send(output)
            .map_err(|_| super::LinesError::RemoteGone {
                address: self.address.clone(),
            })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, ClientState> {
        // A panic while holding the lock leaves a client that is still consistent
        // (every call completes its own output), so a poisoned lock is used as is.
        self.state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

fn log_event(address: &str, event: &Event) {
    match event {
        Event::ComPortRefused => {
            tracing::warn!(%address, "the server withdrew RFC 2217: baud and modem lines no longer reach the port")
        }
        other => tracing::debug!(%address, event = ?other, "rfc2217"),
    }
}

type Opened = Result<(PathBuf, RemoteLines), Rfc2217Error>;

/// The bridge thread: connect, report, then move bytes until stopped or disconnected.
fn run(address: &str, baud: u32, ready: &std_mpsc::Sender<Opened>, stop: &CancellationToken) {
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(source) => {
            let _ = ready.send(Err(Rfc2217Error::Local {
                address: address.to_string(),
                what: "no runtime",
                source,
            }));
            return;
        }
    };
    runtime.block_on(async {
        let session = match Session::open(address, baud).await {
            Ok(session) => session,
            Err(error) => {
                let _ = ready.send(Err(error));
                return;
            }
        };
        let lines = RemoteLines {
            shared: session.shared.clone(),
        };
        if ready
            .send(Ok((session.pty.path().to_path_buf(), lines)))
            .is_err()
        {
            return;
        }
        session.bridge(stop).await;
    });
}

/// A negotiated connection and its pty, before bridging starts.
struct Session {
    shared: Arc<Shared>,
    reader: OwnedReadHalf,
    writer: OwnedWriteHalf,
    outbound: mpsc::UnboundedReceiver<Vec<u8>>,
    pty: Pty,
    /// Serial data that arrived while negotiating.
    early: Vec<u8>,
}

impl Session {
    async fn open(address: &str, baud: u32) -> Result<Session, Rfc2217Error> {
        let stream = timeout(CONNECT_DEADLINE, TcpStream::connect(address))
            .await
            .map_err(|_| Rfc2217Error::NoConnection {
                address: address.to_string(),
                within: humantime::format_duration(CONNECT_DEADLINE).to_string(),
            })?
            .map_err(|source| Rfc2217Error::Unreachable {
                address: address.to_string(),
                source,
            })?;
        let _ = stream.set_nodelay(true);
        let (mut reader, mut writer) = stream.into_split();
        let mut client = Client::new(settings(baud));
        let early = negotiate(address, &mut client, &mut reader, &mut writer).await?;
        let local = |what| {
            move |source| Rfc2217Error::Local {
                address: address.to_string(),
                what,
                source,
            }
        };
        let pty = Pty::open().map_err(local("cannot open a local pty"))?;
        pty.set_baud(baud)
            .map_err(local("cannot set the local pty's baud"))?;
        let (outbound_tx, outbound) = mpsc::unbounded_channel();
        Ok(Session {
            shared: Arc::new(Shared {
                address: address.to_string(),
                state: Mutex::new(ClientState { client, baud }),
                outbound: outbound_tx,
            }),
            reader,
            writer,
            outbound,
            pty,
            early,
        })
    }

    /// Moves bytes both ways until `stop`, or until the server or the pty goes away.
    /// Then the pty closes, so whoever has it open sees the cable pulled.
    async fn bridge(self, stop: &CancellationToken) {
        let Session {
            shared,
            reader,
            writer,
            outbound,
            pty,
            early,
        } = self;
        // A board that printed while we negotiated: its lines are not lost.
        let _ = pty.write_all(&early).await;
        let ended = tokio::select! {
            () = stop.cancelled() => Ok(()),
            result = from_server(reader, &shared, &pty) => result,
            result = to_server(&pty, &shared) => result,
            result = send(writer, outbound) => result,
        };
        if let Err(error) = ended {
            tracing::warn!(address = %shared.address, "rfc2217 bridge ended: {error}");
        }
    }
}

/// Why a bridge ended before it was stopped.
#[derive(Debug, thiserror::Error)]
enum BridgeEnd {
    #[error("reading from the server: {0}")]
    ServerRead(std::io::Error),
    #[error("the server closed the connection")]
    ServerClosed,
    #[error("writing to the server: {0}")]
    ServerWrite(std::io::Error),
    #[error("reading the local pty: {0}")]
    PtyRead(std::io::Error),
    #[error(transparent)]
    Lines(#[from] super::LinesError),
}

/// The opening round: Telnet options and the port settings, until the server confirms
/// them or the deadline passes. Returns the serial data that arrived meanwhile.
async fn negotiate(
    address: &str,
    client: &mut Client,
    reader: &mut OwnedReadHalf,
    writer: &mut OwnedWriteHalf,
) -> Result<Vec<u8>, Rfc2217Error> {
    let io = |source| Rfc2217Error::Io {
        address: address.to_string(),
        source,
    };
    let deadline = Instant::now() + NEGOTIATION_DEADLINE;
    let mut early = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        let output = client.take_output();
        writer.write_all(&output).await.map_err(io)?;
        match client.readiness() {
            Ok(()) => return Ok(early),
            Err(reason @ (NotReady::Refused | NotReady::Mismatched(_))) => {
                return Err(Rfc2217Error::Refused {
                    address: address.to_string(),
                    reason: reason.to_string(),
                    reported: format!("{:?}", client.reported_settings()),
                })
            }
            Err(_) => {}
        }
        let read = match timeout_at(deadline, reader.read(&mut buf)).await {
            Ok(read) => read,
            Err(_) => return at_deadline(address, client, early),
        };
        match read {
            Ok(0) => {
                return Err(Rfc2217Error::Busy {
                    address: address.to_string(),
                })
            }
            Ok(n) => {
                early.extend(client.receive(&buf[..n]));
                while let Some(event) = client.poll_event() {
                    log_event(address, &event);
                }
            }
            Err(e) => return Err(io(e)),
        }
    }
}

/// Settings still unanswered at the deadline: some bridges never confirm some values,
/// so the port is used as it is; no answer at all means no RFC 2217 server.
fn at_deadline(address: &str, client: &Client, early: Vec<u8>) -> Result<Vec<u8>, Rfc2217Error> {
    match client.readiness() {
        Ok(()) => Ok(early),
        Err(reason @ NotReady::Pending(_)) => {
            tracing::warn!(%address, "{reason}; using the port as it is");
            Ok(early)
        }
        Err(reason) => Err(Rfc2217Error::Unanswered {
            address: address.to_string(),
            reason: reason.to_string(),
            within: humantime::format_duration(NEGOTIATION_DEADLINE).to_string(),
        }),
    }
}

async fn from_server(
    mut reader: OwnedReadHalf,
    shared: &Shared,
    pty: &Pty,
) -> Result<(), BridgeEnd> {
    let mut buf = vec![0u8; 16 * 1024];
    loop {
        let n = reader.read(&mut buf).await.map_err(BridgeEnd::ServerRead)?;
        if n == 0 {
            return Err(BridgeEnd::ServerClosed);
        }
        let payload = shared.receive(&buf[..n])?;
        // Bytes nobody reads from the pty are dropped after its deadline, as a UART
        // drops what no one listens to; the bridge carries on.
        if let Err(e) = pty.write_all(&payload).await {
            tracing::debug!(address = %shared.address, "pty write: {e}");
        }
    }
}

async fn to_server(pty: &Pty, shared: &Shared) -> Result<(), BridgeEnd> {
    let mut buf = vec![0u8; 16 * 1024];
    loop {
        let n = pty.read(&mut buf).await.map_err(BridgeEnd::PtyRead)?;
        let baud = pty.baud().unwrap_or(0);
        shared.send_data(&buf[..n], baud)?;
    }
}

async fn send(
    mut writer: OwnedWriteHalf,
    mut outbound: mpsc::UnboundedReceiver<Vec<u8>>,
) -> Result<(), BridgeEnd> {
    while let Some(bytes) = outbound.recv().await {
        writer
            .write_all(&bytes)
            .await
            .map_err(BridgeEnd::ServerWrite)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// ser2net hangs up on a second client while the first holds the port.
    #[test]
    fn a_server_that_hangs_up_while_negotiating_is_a_busy_port() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let address = listener.local_addr().unwrap().to_string();
        // Hang up (FIN), then read what the client sent until it lets go: closing with
        // its bytes unread would reset the connection instead.
        let server = std::thread::spawn(move || {
            let (mut stream, _) = listener.accept().unwrap();
            stream.shutdown(std::net::Shutdown::Write).unwrap();
            stream
                .set_read_timeout(Some(Duration::from_secs(10)))
                .unwrap();
            let _ = std::io::Read::read_to_end(&mut stream, &mut Vec::new());
        });
        let error = RemotePort::connect(&address, 115_200).err().unwrap();
        server.join().unwrap();
        assert!(matches!(error, Rfc2217Error::Busy { .. }), "{error}");
        let port = super::super::PortError::from(error);
        assert_eq!(port.kind(), "port_busy");
        assert!(
            port.to_string().contains("in use by another client"),
            "{port}"
        );
    }
}
