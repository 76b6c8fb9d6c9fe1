//! The embedded broker a run owns: the wire tap on the public address, and behind it a
//! rumqttd engine in a child process.
//!
//! Why a child process: rumqttd has no shutdown and keeps its state until the process
//! ends, so the only way to stop it, or to restart it with every session, subscription,
//! in-flight and retained message gone, is to end its process. The tap owns the public
//! listener (so `:0` works and the address survives restarts) and forwards each
//! connection to the engine's internal loopback ports, several per protocol version
//! (`tap::ENGINE_LISTENERS`).

use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::net::TcpListener;
use tokio::process::{Child, Command};
use tokio::sync::Mutex;
use tokio::task::JoinHandle;

use crate::board::link::Network;
use crate::engine::{BIND_FAILED_PREFIX, READY_LINE};
use crate::login::Credentials;
use crate::namespace::Namespace;
use crate::pcap::Capture;
use crate::spare_ports;
use crate::tap::{Faults, Tap, TapStats, Upstream, ENGINE_LISTENERS};
use crate::trace::{BrokerAction, EventBody, Trace};

/// Largest MQTT packet accepted by default: room for the firmware's 1 MB payload test.
pub const DEFAULT_MAX_PACKET_SIZE: usize = 2 * 1024 * 1024;
/// How long an engine may take to listen before start-up fails.
const ENGINE_READY_TIMEOUT: Duration = Duration::from_secs(10);
/// Tries at finding free internal ports; a port can be taken between picking and binding.
const ENGINE_PORT_ATTEMPTS: usize = 5;

/// How to start a broker.
#[derive(Debug, Clone)]
pub struct BrokerConfig {
    /// Public address; port 0 picks a free one.
    pub listen: SocketAddr,
    pub max_packet_size: usize,
    /// The `hil` executable that runs the engine (`hil broker-engine`).
    pub engine_exe: PathBuf,
    /// Write the tapped traffic to this pcap file.
    pub capture: Option<PathBuf>,
    /// Forward to this broker instead of starting an engine (`hil run --broker`).
    pub external: Option<SocketAddr>,
    /// The prefixes this scenario's clients put on topics and client ids on a shared
    /// broker; the tap records without them.
    pub namespace: Option<Namespace>,
    /// Clients must log in with these (required for a bind beyond loopback).
    pub login: Option<Credentials>,
    /// Listeners the engine opens per protocol (1 to [`ENGINE_LISTENERS`]); see
    /// [`listeners_for`].
    pub engine_listeners: usize,
    /// Engines started ahead for the brokers of this config (a run's scenarios).
    pub warm: Option<WarmEngines>,
}

/// Engine listeners per protocol for a broker that serves up to `connections` clients at
/// once: each listener admits about a connection a millisecond, so one is plenty for a
/// scenario's few, and a fleet gets them all. Every listener is a thread and a port the
/// engine must open at each start, which a scenario pays for.
pub fn listeners_for(connections: usize) -> usize {
    (1 + connections / 64).min(ENGINE_LISTENERS)
}

impl BrokerConfig {
    /// Loopback, a free port, the default packet limit and the `hil` executable found by
    /// [`find_engine_exe`].
    pub fn loopback() -> Result<BrokerConfig, BrokerError> {
        Ok(BrokerConfig {
            listen: SocketAddr::from((Ipv4Addr::LOCALHOST, 0)),
            max_packet_size: DEFAULT_MAX_PACKET_SIZE,
            engine_exe: find_engine_exe()?,
            capture: None,
            external: None,
            namespace: None,
            login: None,
            engine_listeners: ENGINE_LISTENERS,
            warm: None,
        })
    }
}

/// Why a broker could not start or restart.
#[derive(Debug, thiserror::Error)]
pub enum BrokerError {
    #[error("cannot listen on {addr}: {source}; {hint}")]
    Bind {
        addr: SocketAddr,
        source: io::Error,
        hint: &'static str,
    },
    #[error("cannot find the `hil` executable that runs the broker engine (looked beside {0}); set HIL_EXE to its path")]
    EngineNotFound(PathBuf),
    #[error("cannot write capture {path}: {source}")]
    Capture { path: PathBuf, source: io::Error },
    #[error("broker engine {exe} failed to start: {detail}")]
    Engine { exe: PathBuf, detail: String },
    /// A step that changes the broker, run against one hil does not control.
    #[error("the broker at {addr} is external, and hil cannot change what it does: `{step}` needs hil's embedded broker (run without --broker, or leave the step out)")]
    External {
        addr: SocketAddr,
        step: &'static str,
    },
}

/// The `hil` executable: `HIL_EXE` if set, else the running program if it is `hil`, else a
/// `hil` beside it or one folder up (where cargo puts binaries next to test executables).
pub fn find_engine_exe() -> Result<PathBuf, BrokerError> {
    if let Some(exe) = std::env::var_os("HIL_EXE") {
        return Ok(PathBuf::from(exe));
    }
    let current =
        std::env::current_exe().map_err(|_| BrokerError::EngineNotFound(PathBuf::from(".")))?;
    let name = format!("hil{}", std::env::consts::EXE_SUFFIX);
    if current.file_name().is_some_and(|n| n == name.as_str()) {
        return Ok(current);
    }
    current
        .ancestors()
        .skip(1)
        .take(2)
        .map(|dir| dir.join(&name))
        .find(|candidate| candidate.is_file())
        .ok_or(BrokerError::EngineNotFound(current))
}

/// Lets this process (and the engines it starts, which inherit it) hold as many sockets
/// as a large fleet needs: a client over TCP costs the tap two, a simulated board in this
/// process one (its link into the tap has no socket; the tap's to the engine does), and
/// the engine one per client. Raises the soft limit to the hard one, and as
/// root the hard one too, up to the kernel's ceiling (`fs.nr_open`).
pub fn raise_open_file_limit() {
    let Ok((soft, hard)) = rlimit::getrlimit(rlimit::Resource::NOFILE) else {
        return;
    };
    let ceiling = kernel_open_file_ceiling().unwrap_or(hard).max(hard);
    if soft >= ceiling {
        return;
    }
    if rlimit::setrlimit(rlimit::Resource::NOFILE, ceiling, ceiling).is_err() {
        let _ = rlimit::setrlimit(rlimit::Resource::NOFILE, hard, hard);
    }
}

fn kernel_open_file_ceiling() -> Option<u64> {
    std::fs::read_to_string("/proc/sys/fs/nr_open")
        .ok()?
        .trim()
        .parse()
        .ok()
}

/// Descriptors kept aside for everything but the boards: engine links, files, runtime.
const DESCRIPTOR_RESERVE: u64 = 512;

/// How many boards fit in this process's open-file limit when each costs `per_board`
/// descriptors, and that limit.
pub fn boards_that_fit(per_board: u64) -> (usize, u64) {
    let limit = rlimit::getrlimit(rlimit::Resource::NOFILE).map_or(1024, |(soft, _)| soft);
    let fit = limit.saturating_sub(DESCRIPTOR_RESERVE) / per_board.max(1);
    (usize::try_from(fit).unwrap_or(usize::MAX), limit)
}

/// A running broker. Stop it with [`Broker::stop`]; dropping it kills the engine too.
pub struct Broker {
    tap: Tap,
    capture: Option<Arc<Capture>>,
    trace: Trace,
    config: BrokerConfig,
    engine: Mutex<Option<Engine>>,
}

impl Broker {
    /// Binds the public address, starts the engine and records `broker started`.
    pub async fn start(config: BrokerConfig, trace: Trace) -> Result<Broker, BrokerError> {
        let listener = listen(config.listen).map_err(|source| BrokerError::Bind {
            addr: config.listen,
            hint: bind_hint(&source),
            source,
        })?;
        let capture = match &config.capture {
            Some(path) => Some(Arc::new(Capture::create(path).map_err(|source| {
                BrokerError::Capture {
                    path: path.clone(),
                    source,
                }
            })?)),
            None => None,
        };
        let (engine, upstream) = match config.external {
            Some(external) => (None, Upstream::single(external)),
            None => {
                let engine = Engine::take(&config).await?;
                let upstream = engine.upstream;
                (Some(engine), upstream)
            }
        };
        let tap = Tap::start(
            listener,
            trace.clone(),
            config.max_packet_size,
            capture.clone(),
            config.namespace.clone(),
            config.login.clone(),
            config.external.is_none(),
        )
        .map_err(|source| BrokerError::Bind {
            addr: config.listen,
            hint: bind_hint(&source),
            source,
        })?;
        tap.set_upstream(Some(upstream));
        let broker = Broker {
            tap,
            capture,
            trace,
            config,
            engine: Mutex::new(engine),
        };
        broker.record(BrokerAction::Started);
        Ok(broker)
    }

    /// The public address clients connect to.
    pub fn addr(&self) -> SocketAddr {
        self.tap.addr()
    }

    /// Where a client on this host reaches the broker: loopback when it listens on every
    /// address.
    pub fn local_addr(&self) -> SocketAddr {
        let addr = self.addr();
        match addr.ip() {
            IpAddr::V4(ip) if ip.is_unspecified() => (Ipv4Addr::LOCALHOST, addr.port()).into(),
            IpAddr::V6(ip) if ip.is_unspecified() => (Ipv6Addr::LOCALHOST, addr.port()).into(),
            _ => addr,
        }
    }

    /// Where a board reaches the broker, and over what: a bench board over the bench's
    /// network (at `bench_host` when given, for a broker listening on an address the
    /// board cannot reach), a simulated board in this process through an in-process link
    /// into the tap, without a socket.
    pub fn route_for_board(
        &self,
        on_bench: bool,
        bench_host: Option<IpAddr>,
    ) -> (SocketAddr, Network) {
        match (on_bench, bench_host) {
            (true, Some(host)) => (
                SocketAddr::new(host, self.addr().port()),
                Network::default(),
            ),
            (true, None) => (self.addr(), Network::default()),
            (false, _) => {
                let links = self.tap.local_links();
                let local = self.local_addr();
                (
                    local,
                    Network::with_local_tap(local, Arc::new(move || links.open())),
                )
            }
        }
    }

    /// `mqtt://HOST:PORT`
    pub fn url(&self) -> String {
        format!("mqtt://{}", self.addr())
    }

    pub fn stats(&self) -> &TapStats {
        self.tap.stats()
    }

    /// Faults injected into clients' connections (partitions, delays, drops, duplicates).
    pub fn faults(&self) -> &Arc<Faults> {
        self.tap.faults()
    }

    /// From now on, refuses subscriptions that `filter` covers (SUBACK 0x80 / 0x87).
    /// Only hil's own engine can be made to: an external broker grants what it grants.
    pub fn deny_subscribe(&self, filter: &str) -> Result<(), BrokerError> {
        self.embedded_for("deny_subscribe")?;
        self.tap.faults().deny_subscribe(filter);
        Ok(())
    }

    /// Refuses `step` when the broker is an external one.
    fn embedded_for(&self, step: &'static str) -> Result<(), BrokerError> {
        match self.config.external {
            Some(addr) => Err(BrokerError::External { addr, step }),
            None => Ok(()),
        }
    }

    /// The engine process, for measuring its memory.
    pub async fn engine_pid(&self) -> Option<u32> {
        self.engine
            .lock()
            .await
            .as_ref()
            .and_then(|engine| engine.child.id())
    }

    /// The engine's listener for MQTT 3.1.1, bypassing the tap (for benchmarks).
    pub async fn untapped_addr(&self) -> Option<SocketAddr> {
        self.engine
            .lock()
            .await
            .as_ref()
            .map(|engine| engine.upstream.v311[0])
    }

    /// A real restart: every connection is cut, the engine process ends (taking every
    /// session, subscription, in-flight and retained message with it), connections are
    /// turned away for `down_for`, then a fresh engine serves the same public address.
    pub async fn restart(&self, down_for: Duration) -> Result<(), BrokerError> {
        self.embedded_for("broker_restart")?;
        let mut engine = self.engine.lock().await;
        self.tap.set_upstream(None);
        self.tap.cut_all();
        if let Some(old) = engine.take() {
            old.kill().await;
        }
        self.tap.forget_sessions();
        self.record(BrokerAction::Down);
        // The fresh engine starts while the broker is down, so that the outage lasts
        // `down_for`, not `down_for` plus a process start.
        let (fresh, ()) = tokio::join!(Engine::take(&self.config), tokio::time::sleep(down_for));
        let fresh = fresh?;
        self.tap.set_upstream(Some(fresh.upstream));
        *engine = Some(fresh);
        self.record(BrokerAction::Restarted);
        Ok(())
    }

    /// Cuts every connection, waits until each has recorded its end, ends the engine,
    /// and completes the capture (whose write error, if any, it returns).
    pub async fn stop(&self) -> Result<(), BrokerError> {
        self.tap.set_upstream(None);
        self.tap.stop().await;
        if let Some(engine) = self.engine.lock().await.take() {
            engine.kill().await;
        }
        self.record(BrokerAction::Stopped);
        match &self.capture {
            Some(capture) => capture.finish().map_err(|detail| BrokerError::Capture {
                path: self.config.capture.clone().unwrap_or_default(),
                source: io::Error::other(detail),
            }),
            None => Ok(()),
        }
    }

    fn record(&self, action: BrokerAction) {
        self.trace.record(EventBody::Broker {
            action,
            addr: self.addr().to_string(),
        });
    }
}

/// Pending connections the public listener queues: a fleet of boards powering on at once
/// must not overflow it (the kernel caps it at `net.core.somaxconn`).
const LISTEN_BACKLOG: i32 = 8192;

fn listen(addr: SocketAddr) -> io::Result<TcpListener> {
    let socket = socket2::Socket::new(
        socket2::Domain::for_address(addr),
        socket2::Type::STREAM,
        None,
    )?;
    socket.set_reuse_address(true)?;
    socket.set_nonblocking(true)?;
    socket.bind(&addr.into())?;
    socket.listen(LISTEN_BACKLOG)?;
    TcpListener::from_std(socket.into())
}

fn bind_hint(error: &io::Error) -> &'static str {
    match error.kind() {
        io::ErrorKind::AddrInUse => "another program uses this port: stop it, or pick another with --port (0 = any free port)",
        io::ErrorKind::PermissionDenied => "ports below 1024 need privileges: use a port above 1024 (or --port 0)",
        io::ErrorKind::AddrNotAvailable => "this machine has no such address: use 127.0.0.1 or one of its own addresses",
        _ => "check the address and port",
    }
}

/// A rumqttd engine process. Its stdin is a pipe it watches: if this process dies
/// without killing it, the pipe closes and the engine exits by itself.
#[derive(Debug)]
struct Engine {
    child: Child,
    upstream: Upstream,
}

impl Engine {
    /// A warm engine of `config` if one is alive, else a new one.
    async fn take(config: &BrokerConfig) -> Result<Engine, BrokerError> {
        if let Some(warm) = &config.warm {
            if let Some(mut engine) = warm.take(config).await {
                if matches!(engine.child.try_wait(), Ok(None)) {
                    return Ok(engine);
                }
            }
        }
        Engine::spawn(EngineSettings::of(config)).await
    }

    async fn spawn(settings: EngineSettings) -> Result<Engine, BrokerError> {
        let listeners = settings.listeners;
        let mut last_error = String::new();
        for _ in 0..ENGINE_PORT_ATTEMPTS {
            let ports: Vec<u16> = spare_ports::block(2 * listeners).collect();
            let (v311, v5) = ports.split_at(listeners);
            // Fewer listeners than slots: clients spread over the ones there are.
            let upstream = Upstream {
                v311: std::array::from_fn(|slot| loopback(v311[slot % listeners])),
                v5: std::array::from_fn(|slot| loopback(v5[slot % listeners])),
            };
            match Engine::try_spawn(&settings, upstream).await? {
                Ok(engine) => return Ok(engine),
                Err(bind_failure) => last_error = bind_failure,
            }
        }
        Err(engine_error(&settings.exe, last_error))
    }

    /// `Ok(Err(..))` when the internal ports were taken meanwhile (worth another try).
    async fn try_spawn(
        settings: &EngineSettings,
        upstream: Upstream,
    ) -> Result<Result<Engine, String>, BrokerError> {
        let (exe, listeners) = (&settings.exe, settings.listeners);
        let mut command = Command::new(exe);
        command.arg("broker-engine");
        for addr in &upstream.v311[..listeners] {
            command.arg("--v311").arg(addr.to_string());
        }
        for addr in &upstream.v5[..listeners] {
            command.arg("--v5").arg(addr.to_string());
        }
        let mut child = command
            .arg("--max-packet-size")
            .arg(settings.max_packet_size.to_string())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .kill_on_drop(true)
            .spawn()
            .map_err(|e| engine_error(exe, format!("cannot run it: {e}")))?;
        let stdout = child.stdout.take().expect("stdout is piped");
        let mut first_line = String::new();
        let read = tokio::time::timeout(
            ENGINE_READY_TIMEOUT,
            BufReader::new(stdout).read_line(&mut first_line),
        )
        .await;
        let line = first_line.trim();
        match read {
            Err(_) => Err(engine_error(
                exe,
                format!("not listening after {}s", ENGINE_READY_TIMEOUT.as_secs()),
            )),
            Ok(Err(e)) => Err(engine_error(exe, e.to_string())),
            Ok(Ok(_)) if line == READY_LINE => Ok(Ok(Engine { child, upstream })),
            Ok(Ok(_)) if line.starts_with(BIND_FAILED_PREFIX) => Ok(Err(line.to_string())),
            Ok(Ok(_)) => {
                let status = child.wait().await.ok();
                Err(engine_error(
                    exe,
                    format!("exited ({status:?}) saying {line:?}"),
                ))
            }
        }
    }

    async fn kill(mut self) {
        // The engine holds no state worth saving; ending it at once is the point.
        let _ = self.child.kill().await;
    }
}

/// What an engine process is started with.
#[derive(Debug, Clone, PartialEq)]
struct EngineSettings {
    exe: PathBuf,
    max_packet_size: usize,
    /// Listeners per protocol, 1 to [`ENGINE_LISTENERS`].
    listeners: usize,
}

impl EngineSettings {
    fn of(config: &BrokerConfig) -> EngineSettings {
        EngineSettings {
            exe: config.engine_exe.clone(),
            max_packet_size: config.max_packet_size,
            listeners: config.engine_listeners.clamp(1, ENGINE_LISTENERS),
        }
    }
}

/// Engines started ahead of the brokers that take them, one per scenario running at a
/// time, so that no scenario waits for a process start (a third of a scenario's harness
/// work, measured by `hil bench`). Each taken engine is replaced at once, in the
/// background, until as many have been started as brokers were announced; a broker that
/// finds none (a restart, a retry) starts its own. Spares left when the last clone is
/// dropped are stopped and their processes killed.
#[derive(Debug, Clone)]
pub struct WarmEngines(Arc<Spares>);

#[derive(Debug)]
struct Spares {
    settings: EngineSettings,
    queue: std::sync::Mutex<SpareQueue>,
}

#[derive(Debug)]
struct SpareQueue {
    starting: std::collections::VecDeque<JoinHandle<Result<Engine, BrokerError>>>,
    /// Engines still to start ahead.
    to_start: usize,
}

impl WarmEngines {
    /// Starts `at_once` engines for `config` on the current runtime (which the brokers
    /// that take them must share), and keeps that many ready until `brokers` engines have
    /// been started.
    pub fn start(config: &BrokerConfig, at_once: usize, brokers: usize) -> WarmEngines {
        let spares = Spares {
            settings: EngineSettings::of(config),
            queue: std::sync::Mutex::new(SpareQueue {
                starting: Default::default(),
                to_start: brokers,
            }),
        };
        let warm = WarmEngines(Arc::new(spares));
        {
            let mut queue = warm.0.queue.lock().expect("not poisoned");
            for _ in 0..at_once {
                warm.start_one(&mut queue);
            }
        }
        warm
    }

    fn start_one(&self, queue: &mut SpareQueue) {
        if queue.to_start > 0 {
            queue.to_start -= 1;
            let starting = tokio::spawn(Engine::spawn(self.0.settings.clone()));
            queue.starting.push_back(starting);
        }
    }

    /// The oldest spare, once it listens, and another started in its place; `None` when
    /// there is none, it failed to start (the broker then starts its own and reports
    /// why) or it was started for other settings.
    async fn take(&self, config: &BrokerConfig) -> Option<Engine> {
        if EngineSettings::of(config) != self.0.settings {
            return None;
        }
        let oldest = {
            let mut queue = self.0.queue.lock().expect("not poisoned");
            let oldest = queue.starting.pop_front();
            self.start_one(&mut queue);
            oldest
        };
        oldest?.await.ok()?.ok()
    }
}

impl Drop for Spares {
    fn drop(&mut self) {
        let queue = self.queue.get_mut().expect("not poisoned");
        for starting in queue.starting.drain(..) {
            starting.abort();
        }
    }
}

fn engine_error(exe: &Path, detail: String) -> BrokerError {
    BrokerError::Engine {
        exe: exe.to_path_buf(),
        detail,
    }
}

fn loopback(port: u16) -> SocketAddr {
    SocketAddr::from((Ipv4Addr::LOCALHOST, port))
}
