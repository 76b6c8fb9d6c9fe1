//! A virtual ESP chip on a pseudo-terminal (`hil sim --pty`): real flashing tools
//! (esptool, espflash, `hil flash`) talk to it as to a board on a USB-serial bridge.
//!
//! The pieces: `slip` frames bytes, `protocol` reads requests and writes responses,
//! `rom` is the loader as a pure state machine, `boot` decides what runs after reset,
//! `profile` holds what differs between chips, `settings` where the firmware's stored
//! settings sit in flash; this module moves bytes between them and the pty (`pty`),
//! keeps the flash file (`store`) and takes control commands (`control`).
//!
//! After reset the chip boots the app in flash when it is a valid image for the chip,
//! printing ROM-like lines first, and then runs the light-controller firmware (the
//! simulated board) with the image's version; its serial lines go to the pty and lines
//! typed on the pty go to it. Otherwise it prints the ROM's complaint and waits in the
//! serial loader.
//!
//! A pty has no DTR/RTS, so a host cannot reset the chip through the port. Instead:
//! - the control socket (see `control`) takes `reset`, `bootloader`, `hold` (the chip
//!   held in reset, as without power) and `unplug`;
//! - a SYNC frame arriving while the app runs is taken as the host having reset the
//!   chip into the loader (what esptool's and espflash's reset sequences do on a bench),
//!   so `--before no-reset` flashing works on a running chip;
//! - FLASH_END reboots into the app, as on silicon.

mod boot;
pub mod control;
mod profile;
pub mod protocol;
pub(crate) mod pty;
mod rom;
mod settings;
mod slip;
mod store;

use std::future::Future;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::time::Duration;

use tokio::sync::{mpsc, oneshot};

use crate::image::Chip;
use crate::trace::{Cursor, EventBody, Trace};
use boot::{Boot, Next};
use control::ControlSocket;
use profile::{Profile, Reset};
use protocol::{Op, Request};
use pty::{Link, Pty};
use rom::{Effect, Rom};
use store::FlashStore;

pub use control::{
    send as send_control, socket_path as control_socket_path, Control, ControlError,
};
pub use rom::FLASH_SIZE;

/// Typed input longer than this without a line end is dropped.
const MAX_TYPED_LINE: usize = 1024;

/// What a chip's flashed app is once it runs: the layer above the chip plays it (the
/// simulated firmware core of `board::sim`); the chip hands it what it needs to boot and
/// takes back its serial lines (from the trace) and the settings it stores.
pub trait Firmware: Send + Sync {
    fn boot(&self, setup: AppSetup) -> Booting;
}

/// An app booting: running, or why it could not start.
pub type Booting = Pin<Box<dyn Future<Output = Result<Box<dyn RunningApp>, String>> + Send>>;

impl std::fmt::Debug for dyn Firmware {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Firmware")
    }
}

/// What the app boots with.
pub struct AppSetup {
    pub client_id: String,
    /// The version the flashed image's app descriptor names.
    pub version: String,
    /// The broker the app connects to; without one it has no network.
    pub broker: Option<SocketAddr>,
    /// Where its serial lines go.
    pub trace: Trace,
    /// The settings sector's record, when the firmware stored one.
    pub stored: Option<Vec<u8>>,
    /// Every record the firmware stores is sent here.
    pub writes: mpsc::UnboundedSender<Vec<u8>>,
}

/// The app while it runs.
pub trait RunningApp: Send {
    /// A line typed on the console.
    fn type_line(
        &self,
        line: String,
    ) -> Pin<Box<dyn Future<Output = Result<(), String>> + Send + '_>>;
    /// The power goes: it stops at once.
    fn halt(self: Box<Self>) -> Pin<Box<dyn Future<Output = ()> + Send>>;
}

/// How to set up a virtual chip.
#[derive(Debug, Clone)]
pub struct ChipOptions {
    pub chip: Chip,
    /// The flash contents; a temporary erased flash when `None`.
    pub flash_file: Option<PathBuf>,
    /// The broker the app connects to; without one the chip has no network.
    pub broker: Option<SocketAddr>,
    /// A symlink to the pty, with the control socket beside it at `LINK.ctl`.
    pub link: Option<PathBuf>,
    /// Pull the cable when the FLASH_DATA block after this many arrives.
    pub unplug_after_blocks: Option<u32>,
    /// What runs when the chip boots its app.
    pub firmware: std::sync::Arc<dyn Firmware>,
}

#[derive(Debug, thiserror::Error)]
pub enum ChipError {
    #[error("hil cannot be a virtual {0}; it can be esp8266 or esp32c3")]
    Unsupported(&'static str),
    #[error("cannot create a pseudo-terminal: {0}")]
    Pty(std::io::Error),
    #[error("the pseudo-terminal failed: {0}")]
    PtyIo(std::io::Error),
    #[error("--link: {0}")]
    Link(String),
    #[error("{0}")]
    Control(String),
    #[error("{0}")]
    FlashFile(String),
    #[error("the firmware stopped: {0}")]
    App(String),
    #[error("the firmware could not start: {0}")]
    Settings(String),
}

/// How the chip's session ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ended {
    /// Stopped from outside (a signal).
    Stopped,
    /// The cable was pulled (`unplug`, or `--unplug-after-blocks`).
    Unplugged,
}

/// A chip with its pty open, not yet running.
pub struct VirtualChip {
    session: Session,
    control: ControlSocket,
    _link: Option<Link>,
}

impl VirtualChip {
    /// Opens the pty, the link and its control socket, and the flash. Needs a tokio
    /// runtime (the pty and the socket register with it).
    pub fn create(options: ChipOptions) -> Result<VirtualChip, ChipError> {
        let profile =
            profile::profile(options.chip).ok_or(ChipError::Unsupported(options.chip.name()))?;
        let (store, flash) =
            FlashStore::open(options.flash_file.as_deref()).map_err(ChipError::FlashFile)?;
        let pty = Pty::open().map_err(ChipError::Pty)?;
        let link = options
            .link
            .as_deref()
            .map(|path| Link::create(path, pty.path()))
            .transpose()
            .map_err(ChipError::Link)?;
        let control = ControlSocket::bind(options.link.as_deref().map(control_socket_path))
            .map_err(ChipError::Control)?;
        Ok(VirtualChip {
            session: Session {
                rom: Rom::new(profile, flash),
                store,
                pty,
                decoder: slip::Decoder::default(),
                app: None,
                held: false,
                broker: options.broker,
                firmware: options.firmware,
                blocks_written: 0,
                unplug_after_blocks: options.unplug_after_blocks,
            },
            control,
            _link: link,
        })
    }

    /// `/dev/pts/N`, the port hosts open.
    pub fn pty_path(&self) -> &Path {
        self.session.pty.path()
    }

    pub fn control_path(&self) -> &Path {
        self.control.path()
    }

    pub fn flash_path(&self) -> &Path {
        self.session.store.path()
    }

    /// Powers the chip on and serves the pty and the control socket until `stop`
    /// resolves or the cable is pulled. The link and the socket are removed on return.
    pub async fn run(self, stop: impl Future<Output = ()>) -> Result<Ended, ChipError> {
        let VirtualChip {
            mut session,
            control,
            _link,
        } = self;
        let (requests, mut inbox) = mpsc::channel::<control::Request>(16);
        let power_on = boot::from_flash(
            session.rom.profile(),
            session.rom.flash(),
            Some(Reset::PowerOn),
        );
        let outcome = async {
            session.boot(power_on).await?;
            tokio::pin!(stop);
            let mut buf = vec![0u8; 16 * 1024];
            loop {
                let wake = tokio::select! {
                    () = &mut stop => return Ok(Ended::Stopped),
                    read = session.pty.read(&mut buf) => Wake::Input(read),
                    Some((command, done)) = inbox.recv() => Wake::Control(command, done),
                    said = next_from_app(&mut session.app) => said,
                    error = control.serve(&requests) => {
                        let socket = control.path().display();
                        return Err(ChipError::Control(format!("control socket {socket}: {error}")));
                    }
                };
                let flow = match wake {
                    Wake::Input(Ok(0)) => {
                        return Err(ChipError::PtyIo(std::io::ErrorKind::UnexpectedEof.into()))
                    }
                    Wake::Input(Ok(read)) => session.input(&buf[..read]).await?,
                    Wake::Input(Err(error)) => return Err(ChipError::PtyIo(error)),
                    Wake::Control(command, done) => {
                        let flow = session.control(command).await?;
                        let _ = done.send(());
                        flow
                    }
                    Wake::AppLine(line) => {
                        session.send_lines(&[line]).await;
                        Flow::Continue
                    }
                    Wake::Settings(record) => {
                        session.store_settings(&record)?;
                        Flow::Continue
                    }
                };
                if flow == Flow::Unplug {
                    return Ok(Ended::Unplugged);
                }
            }
        }
        .await;
        let stopped = session.stop_app().await;
        outcome.and_then(|ended| stopped.map(|()| ended))
    }
}

/// What woke the session.
enum Wake {
    Input(std::io::Result<usize>),
    Control(Control, oneshot::Sender<()>),
    AppLine(String),
    /// The firmware stored its settings.
    Settings(Vec<u8>),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Flow {
    Continue,
    Unplug,
}

/// The running firmware and what the host typed to it so far.
struct App {
    running: Box<dyn RunningApp>,
    serial: Cursor,
    typed: TypedLine,
    /// What the firmware stores, for the settings sector.
    settings: mpsc::UnboundedReceiver<Vec<u8>>,
}

/// Bytes typed on the console, up to the line end.
#[derive(Debug, Default)]
struct TypedLine {
    bytes: Vec<u8>,
    /// The line grew past any console line: dropped, up to its end.
    overlong: bool,
}

impl TypedLine {
    /// Collects a byte; returns the line it completed, if any. CR, LF and CR LF all end
    /// a line (terminals differ).
    fn push(&mut self, byte: u8) -> Option<String> {
        match byte {
            b'\r' | b'\n' => {
                let complete = !self.overlong && !self.bytes.is_empty();
                let line = complete.then(|| String::from_utf8_lossy(&self.bytes).into_owned());
                self.bytes.clear();
                self.overlong = false;
                line
            }
            _ if self.overlong => None,
            _ if self.bytes.len() >= MAX_TYPED_LINE => {
                self.bytes.clear();
                self.overlong = true;
                None
            }
            other => {
                self.bytes.push(other);
                None
            }
        }
    }
}

/// What the running app says next: a serial line, or the settings it stored. Never
/// resolves while no app runs.
async fn next_from_app(app: &mut Option<App>) -> Wake {
    let Some(app) = app else {
        return std::future::pending().await;
    };
    tokio::select! {
        line = next_serial_line(&mut app.serial) => Wake::AppLine(line),
        // The board holds its sender until it stops, and the app with it.
        Some(record) = app.settings.recv() => Wake::Settings(record),
    }
}

async fn next_serial_line(serial: &mut Cursor) -> String {
    loop {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(3600);
        if let Some(event) = serial.next_before(deadline).await {
            if let EventBody::Serial { line, .. } = &event.body {
                return line.clone();
            }
        }
    }
}

struct Session {
    rom: Rom,
    store: FlashStore,
    pty: Pty,
    decoder: slip::Decoder,
    app: Option<App>,
    /// Held in reset: nothing runs and nothing answers until the next reset.
    held: bool,
    broker: Option<SocketAddr>,
    firmware: std::sync::Arc<dyn Firmware>,
    blocks_written: u32,
    unplug_after_blocks: Option<u32>,
}

impl Session {
    fn profile(&self) -> &'static Profile {
        self.rom.profile()
    }

    async fn input(&mut self, bytes: &[u8]) -> Result<Flow, ChipError> {
        if self.held {
            return Ok(Flow::Continue);
        }
        for &byte in bytes {
            let between_frames = self.decoder.is_idle();
            if let Some(frame) = self.decoder.push(byte) {
                if self.frame(&frame).await? == Flow::Unplug {
                    return Ok(Flow::Unplug);
                }
            } else if between_frames && self.decoder.is_idle() {
                if let Some(app) = &mut self.app {
                    if let Some(line) = app.typed.push(byte) {
                        app.running.type_line(line).await.map_err(ChipError::App)?;
                    }
                }
            }
        }
        Ok(Flow::Continue)
    }

    async fn frame(&mut self, frame: &[u8]) -> Result<Flow, ChipError> {
        let request = match Request::parse(frame) {
            Ok(request) => request,
            Err(error) => {
                tracing::debug!("virtual chip: skipped a frame: {error}");
                return Ok(Flow::Continue);
            }
        };
        if self.app.is_some() {
            if request.op != Op::Sync as u8 {
                return Ok(Flow::Continue);
            }
            // No DTR/RTS on a pty: a host that syncs is taken to have reset the chip into
            // the loader, as its reset sequence would on a bench.
            self.stop_app().await?;
            self.rom.reset();
        }
        let is_block = request.op == Op::FlashData as u8;
        if is_block && self.unplug_after_blocks == Some(self.blocks_written) {
            return Ok(Flow::Unplug);
        }
        let outcome = self.rom.handle(&request);
        let status_len = self.profile().status_len;
        let reply: Vec<u8> = outcome
            .responses
            .iter()
            .flat_map(|response| slip::encode(&response.encode(status_len)))
            .collect();
        self.send(&reply).await;
        match outcome.effect {
            Some(Effect::FlashChanged(range)) => {
                self.store
                    .write(range.start, &self.rom.flash()[range])
                    .map_err(ChipError::FlashFile)?;
                self.blocks_written += u32::from(is_block);
            }
            Some(Effect::Boot { reboot }) => {
                let reset = reboot.then_some(Reset::Software);
                let boot = boot::from_flash(self.profile(), self.rom.flash(), reset);
                self.boot(boot).await?;
            }
            None => {}
        }
        Ok(Flow::Continue)
    }

    async fn control(&mut self, command: Control) -> Result<Flow, ChipError> {
        let boot = match command {
            Control::Reset => boot::from_flash(self.profile(), self.rom.flash(), Some(Reset::Pin)),
            Control::Bootloader => boot::into_loader(self.profile(), Reset::Pin),
            Control::Hold => {
                self.hold().await?;
                return Ok(Flow::Continue);
            }
            Control::Unplug => return Ok(Flow::Unplug),
        };
        self.boot(boot).await?;
        Ok(Flow::Continue)
    }

    /// Whatever ran stops; the boot lines go out; the app starts if there is one.
    async fn boot(&mut self, boot: Boot) -> Result<(), ChipError> {
        self.hold().await?;
        self.held = false;
        self.send_lines(&boot.lines).await;
        match boot.next {
            Next::App { version } => {
                tracing::info!("virtual chip: app version {version} started");
                self.start_app(version).await
            }
            Next::Loader => Ok(()),
        }
    }

    async fn start_app(&mut self, version: String) -> Result<(), ChipError> {
        let trace = Trace::in_memory();
        // Unique per pty, so that several virtual chips can share a broker.
        let pty_number = self
            .pty
            .path()
            .file_name()
            .unwrap_or_default()
            .to_string_lossy();
        let client_id = format!("hil-{}-{pty_number}", self.profile().chip.name());
        let (writes, settings) = mpsc::unbounded_channel();
        let running = self
            .firmware
            .boot(AppSetup {
                client_id,
                version,
                broker: self.broker,
                trace: trace.clone(),
                stored: settings::stored(self.profile(), self.rom.flash()),
                writes,
            })
            .await
            .map_err(ChipError::App)?;
        self.app = Some(App {
            running,
            serial: trace.cursor_at(0),
            typed: TypedLine::default(),
            settings,
        });
        Ok(())
    }

    /// Whatever ran stops at once, the loader too: the app's sockets close without a
    /// word, as when the power goes.
    async fn hold(&mut self) -> Result<(), ChipError> {
        self.stop_app().await?;
        self.rom.reset();
        self.decoder.reset();
        self.held = true;
        Ok(())
    }

    /// Stops the app; what it stored up to then is in flash.
    async fn stop_app(&mut self) -> Result<(), ChipError> {
        let Some(mut app) = self.app.take() else {
            return Ok(());
        };
        app.running.halt().await;
        while let Ok(record) = app.settings.try_recv() {
            self.store_settings(&record)?;
        }
        Ok(())
    }

    /// The firmware's settings go to their sector, in flash and in the flash file.
    fn store_settings(&mut self, record: &[u8]) -> Result<(), ChipError> {
        let at = self.profile().settings_sector;
        let sector = settings::sector_with(record).map_err(ChipError::Settings)?;
        self.rom.app_write(at, &sector);
        self.store.write(at, &sector).map_err(ChipError::FlashFile)
    }

    async fn send_lines(&self, lines: &[String]) {
        let mut out = Vec::new();
        for line in lines {
            out.extend_from_slice(line.as_bytes());
            out.extend_from_slice(b"\r\n");
        }
        self.send(&out).await;
    }

    /// Bytes nobody reads are lost, as on a UART; the chip goes on.
    async fn send(&self, bytes: &[u8]) {
        if let Err(error) = self.pty.write_all(bytes).await {
            tracing::warn!(
                "virtual chip: dropped {} bytes of output: {error}",
                bytes.len()
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn typed_lines_end_at_cr_or_lf_and_bytes_need_not_be_utf8() {
        let mut typed = TypedLine::default();
        let lines: Vec<String> = b"status\r\nconfig x=1\n\xffok\r"
            .iter()
            .filter_map(|&b| typed.push(b))
            .collect();
        assert_eq!(lines, ["status", "config x=1", "\u{fffd}ok"]);
    }

    #[test]
    fn an_endless_line_is_dropped() {
        let mut typed = TypedLine::default();
        for _ in 0..MAX_TYPED_LINE + 5 {
            assert_eq!(typed.push(b'a'), None);
        }
        assert_eq!(typed.push(b'\n'), None);
        assert_eq!(typed.push(b'x'), None);
        assert_eq!(typed.push(b'\n'), Some("x".to_string()));
    }
}
