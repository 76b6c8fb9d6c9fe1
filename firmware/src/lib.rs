//! The light-controller firmware core (portable C, in `core/`) behind a safe Rust API, so
//! the host simulator runs exactly the code that is flashed onto boards.
//!
//! A [`Controller`] owns one firmware context and the board it runs on, given as a [`Hal`].
//! Events go in through the controller's methods; the firmware acts through the HAL's
//! methods, synchronously, during those calls. It never calls back into the controller,
//! so a HAL that needs to answer (a CONNACK, Wi-Fi coming up) queues the work and delivers
//! it as a new event once the call has returned.
//!
//! ```
//! use hil_firmware::{ConnectRequest, Controller, Hal, State};
//!
//! #[derive(Default)]
//! struct Board { lines: Vec<String>, now: u32 }
//!
//! impl Hal for Board {
//!     fn relay(&mut self, _on: bool) {}
//!     fn publish(&mut self, _topic: &str, _payload: &[u8], _qos: u8, _retain: bool) -> bool { true }
//!     fn subscribe(&mut self, _topic: &str, _qos: u8) -> bool { true }
//!     fn connect(&mut self, _request: &ConnectRequest) {}
//!     fn disconnect(&mut self) {}
//!     fn wifi_begin(&mut self, _ssid: &str, _password: &str) {}
//!     fn serial_line(&mut self, line: &str) { self.lines.push(line.to_string()) }
//!     fn millis(&mut self) -> u32 { self.now }
//!     fn random(&mut self) -> u32 { 0 }
//!     fn config_read(&mut self, _buf: &mut [u8]) -> bool { false }
//!     fn config_write(&mut self, _data: &[u8]) {}
//!     fn restart(&mut self) {}
//! }
//!
//! let mut lamp = Controller::new(Board::default(), "1.2.3");
//! lamp.boot();
//! lamp.wifi(true);
//! lamp.mqtt_connected();
//! assert_eq!(lamp.state(), State::Active);
//! lamp.message("living_room_lights", b"on");
//! assert!(lamp.relay());
//! assert_eq!(lamp.hal().lines.last().unwrap(), "HIL relay=on");
//! ```
#![deny(unsafe_code)]

mod ffi;
pub mod host_build;

use std::fmt;
use std::path::{Path, PathBuf};

/// This crate's version; a natural firmware version string for [`Controller::new`].
pub const VERSION: &str = env!("CARGO_PKG_VERSION");

/// The Arduino sketch built for the host (ESP8266 family) by the build script: one
/// process is one board (see `host_arduino/host.h` for its line protocol).
pub const SKETCH_BOARD: &str = env!("HIL_SKETCH_BOARD_BUILT");

/// The topic the core uses until one is configured (`DEFAULT_TOPIC` in the C core).
pub const DEFAULT_TOPIC: &str = "living_room_lights";

/// The broker connection the firmware asks for.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConnectRequest {
    pub client_id: String,
    pub host: String,
    pub port: u16,
    /// `T/status`.
    pub will_topic: String,
    /// `offline`.
    pub will_payload: Vec<u8>,
    pub will_qos: u8,
    pub will_retain: bool,
}

/// The firmware's connection state, as printed in `HIL state=…` lines.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum State {
    /// Not booted, or restarting.
    Offline,
    ConnectingWifi,
    LookingForBroker,
    /// Connected to the broker and subscribed.
    Active,
}

impl State {
    /// The name used on the serial console: `OFFLINE`, `CONNECTING_WIFI`, … .
    pub fn as_str(self) -> &'static str {
        match self {
            State::Offline => "OFFLINE",
            State::ConnectingWifi => "CONNECTING_WIFI",
            State::LookingForBroker => "LOOKING_FOR_BROKER",
            State::Active => "ACTIVE",
        }
    }
}

impl fmt::Display for State {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The board under the firmware. Each method is called synchronously from inside one of
/// the [`Controller`]'s event methods.
pub trait Hal {
    /// Drive the relay (`true` = light on).
    fn relay(&mut self, on: bool);
    /// Publish a message; `false` if it could not be handed to the network.
    fn publish(&mut self, topic: &str, payload: &[u8], qos: u8, retain: bool) -> bool;
    /// Subscribe; `false` if the request could not be sent.
    fn subscribe(&mut self, topic: &str, qos: u8) -> bool;
    /// Start connecting to a broker. Report the outcome later, exactly once, with
    /// [`Controller::mqtt_connected`] or [`Controller::mqtt_connect_failed`].
    fn connect(&mut self, request: &ConnectRequest);
    /// Close the MQTT session; no event is expected for it afterwards.
    fn disconnect(&mut self);
    /// Join (or rejoin) a Wi-Fi network and report with [`Controller::wifi`]. An empty
    /// `ssid` leaves the choice of network to the board.
    fn wifi_begin(&mut self, ssid: &str, password: &str);
    /// One line for the serial console, without line terminator.
    fn serial_line(&mut self, line: &str);
    /// Milliseconds since an arbitrary start; wraps around like Arduino `millis()`.
    fn millis(&mut self) -> u32;
    /// A random number (reconnect jitter).
    fn random(&mut self) -> u32;
    /// Fill `buf` with the stored configuration record; `false` if there is none. The
    /// firmware defines the record and checks it, so any bytes are safe here.
    fn config_read(&mut self, buf: &mut [u8]) -> bool;
    /// Store the configuration record.
    fn config_write(&mut self, data: &[u8]);
    /// Restart the board: the firmware does nothing more until a new [`Controller`] (or
    /// this one) gets [`Controller::boot`].
    fn restart(&mut self);
}

/// Which build of the core a [`Controller`] runs: the one built into this crate, or a
/// shared library exporting the API of `core/light_controller.h` (a user's own build, a
/// changed copy), loaded at run time. Cloning is cheap; the library stays loaded while a
/// clone or a controller made from it lives.
#[derive(Clone)]
pub struct Firmware {
    backend: ffi::Backend,
    path: Option<PathBuf>,
}

impl Firmware {
    /// The core built into this crate.
    pub fn builtin() -> Firmware {
        Firmware {
            backend: ffi::Backend::builtin(),
            path: None,
        }
    }

    /// Loads a core built as a shared library (see the README, "The core as a shared
    /// library"). Every function of the header must be exported, and the context size
    /// and alignment it reports must be ones a context can have.
    ///
    /// The library must be a build of the light-controller core: its functions are called
    /// with the header's signatures, and loading it runs its initialisers.
    pub fn load(path: &Path) -> Result<Firmware, LoadError> {
        let backend = ffi::Backend::load(path).map_err(|failure| {
            let path = path.to_path_buf();
            match failure {
                ffi::LoadFailure::Open(reason) => LoadError::Open { path, reason },
                ffi::LoadFailure::MissingSymbol(symbol) => {
                    LoadError::MissingSymbol { path, symbol }
                }
                ffi::LoadFailure::ContextLayout { size, align } => {
                    LoadError::ContextLayout { path, size, align }
                }
            }
        })?;
        Ok(Firmware {
            backend,
            path: Some(path.to_path_buf()),
        })
    }

    /// The library it was loaded from; `None` for the built-in core.
    pub fn path(&self) -> Option<&Path> {
        self.path.as_deref()
    }
}

impl Default for Firmware {
    fn default() -> Firmware {
        Firmware::builtin()
    }
}

impl fmt::Debug for Firmware {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.path {
            None => f.write_str("Firmware(built in)"),
            Some(path) => write!(f, "Firmware({})", path.display()),
        }
    }
}

/// Why a shared library is not a core a [`Controller`] can run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LoadError {
    /// The file could not be loaded as a shared library.
    Open { path: PathBuf, reason: String },
    /// A function of the header is not exported.
    MissingSymbol { path: PathBuf, symbol: &'static str },
    /// `lc_ctx_size` / `lc_ctx_align` report a context no allocation can hold.
    ContextLayout {
        path: PathBuf,
        size: usize,
        align: usize,
    },
}

impl fmt::Display for LoadError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            LoadError::Open { path, reason } => write!(
                f,
                "{}: cannot load it as a shared library ({reason}); build the core with `cc -shared -fPIC` (firmware/README.md)",
                path.display()
            ),
            LoadError::MissingSymbol { path, symbol } => write!(
                f,
                "{}: does not export `{symbol}`; a light-controller core exports every function of firmware/core/light_controller.h",
                path.display()
            ),
            LoadError::ContextLayout { path, size, align } => write!(
                f,
                "{}: lc_ctx_size() is {size} and lc_ctx_align() is {align}, which no lc_ctx can be (the size must be 1 to {} bytes, the alignment a power of two up to {}); is it built from firmware/core/light_controller.h?",
                path.display(),
                ffi::MAX_CTX_SIZE,
                ffi::MAX_CTX_ALIGN
            ),
        }
    }
}

impl std::error::Error for LoadError {}

/// One light controller: the C firmware context and its HAL.
///
/// A panic in a [`Hal`] method cannot unwind through the C code; it is caught, the rest of
/// that event runs without calling the HAL again, and the panic resumes when the event
/// method returns.
pub struct Controller<H: Hal> {
    core: ffi::Core<H>,
}

impl<H: Hal> Controller<H> {
    /// A controller in state [`State::Offline`]; nothing happens until [`Controller::boot`].
    /// `version` appears in the boot line (one visible word of at most 31 bytes; other
    /// characters become `?`).
    pub fn new(hal: H, version: &str) -> Self {
        Controller::with_firmware(&Firmware::builtin(), hal, version)
    }

    /// Like [`Controller::new`], running `firmware` instead of the built-in core.
    pub fn with_firmware(firmware: &Firmware, hal: H, version: &str) -> Self {
        Controller {
            core: ffi::Core::new(firmware.backend.clone(), hal, version),
        }
    }

    /// Power-on: relay off, boot line, configuration from storage, Wi-Fi.
    pub fn boot(&mut self) {
        self.core.event(ffi::Event::Boot);
    }

    /// Runs the timers (reconnect backoff, end of the debounce window). Call it every few
    /// milliseconds.
    pub fn tick(&mut self) {
        self.core.event(ffi::Event::Tick);
    }

    /// How long until [`Controller::tick`] has work to do, `None` when no timer runs: a
    /// host can sleep that long instead of ticking every few milliseconds.
    pub fn next_tick(&mut self) -> Option<std::time::Duration> {
        let now = self.core.hal_mut().millis();
        match self.core.ms_until_tick(now) {
            u32::MAX => None,
            ms => Some(std::time::Duration::from_millis(u64::from(ms))),
        }
    }

    /// Wi-Fi went up or down.
    pub fn wifi(&mut self, up: bool) {
        self.core.event(ffi::Event::Wifi(up));
    }

    /// The broker accepted the connection (CONNACK).
    pub fn mqtt_connected(&mut self) {
        self.core.event(ffi::Event::MqttConnected);
    }

    /// The connection attempt failed.
    pub fn mqtt_connect_failed(&mut self) {
        self.core.event(ffi::Event::MqttConnectFailed);
    }

    /// An established broker connection was lost.
    pub fn mqtt_lost(&mut self) {
        self.core.event(ffi::Event::MqttLost);
    }

    /// An incoming MQTT message.
    pub fn message(&mut self, topic: &str, payload: &[u8]) {
        self.core.event(ffi::Event::Message { topic, payload });
    }

    /// The raw wall-switch level (`true` = pressed); the firmware debounces it.
    pub fn button(&mut self, pressed: bool) {
        self.core.event(ffi::Event::Button(pressed));
    }

    /// One already-debounced press.
    pub fn press(&mut self) {
        self.core.event(ffi::Event::Press);
    }

    /// One line typed on the serial console, without its terminator; any bytes.
    pub fn serial_input(&mut self, line: impl AsRef<[u8]>) {
        self.core.event(ffi::Event::SerialInput(line.as_ref()));
    }

    /// Whether the relay is on.
    pub fn relay(&self) -> bool {
        self.core.relay()
    }

    pub fn state(&self) -> State {
        self.core.state()
    }

    pub fn hal(&self) -> &H {
        self.core.hal()
    }

    pub fn hal_mut(&mut self) -> &mut H {
        self.core.hal_mut()
    }

    /// Ends the controller and gives the HAL back (to boot a new controller on it, say).
    pub fn into_hal(self) -> H {
        self.core.into_hal()
    }
}

impl<H: Hal> fmt::Debug for Controller<H> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Controller")
            .field("state", &self.state())
            .field("relay", &self.relay())
            .finish_non_exhaustive()
    }
}
