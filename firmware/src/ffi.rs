//! The boundary with the C core: its declarations, the callback trampolines, and ownership
//! of the C context and the HAL. Every `unsafe` of the crate lives in this module.
#![allow(unsafe_code)]

use std::alloc::{self, Layout};
use std::any::Any;
use std::borrow::Cow;
use std::ffi::{c_char, c_int, c_void, CStr, CString};
use std::panic::{self, AssertUnwindSafe};
use std::ptr::NonNull;
use std::slice;
use std::sync::Arc;

use crate::{ConnectRequest, Hal, State};

/// `lc_ctx`, only ever handled through a pointer (its size comes from `lc_ctx_size`).
#[repr(C)]
struct LcCtx {
    _opaque: [u8; 0],
}

/// `lc_connect_request`: same fields, same order.
#[repr(C)]
struct LcConnectRequest {
    client_id: *const c_char,
    host: *const c_char,
    port: u16,
    will_topic: *const c_char,
    will_payload: *const c_char,
    will_qos: u8,
    will_retain: bool,
}

/// `lc_hal`: same fields, same order.
#[repr(C)]
struct LcHal {
    user: *mut c_void,
    relay: extern "C" fn(*mut c_void, bool),
    publish: extern "C" fn(*mut c_void, *const c_char, *const u8, usize, u8, bool) -> bool,
    subscribe: extern "C" fn(*mut c_void, *const c_char, u8) -> bool,
    connect: extern "C" fn(*mut c_void, *const LcConnectRequest),
    disconnect: extern "C" fn(*mut c_void),
    wifi_begin: extern "C" fn(*mut c_void, *const c_char, *const c_char),
    serial_line: extern "C" fn(*mut c_void, *const c_char),
    millis: extern "C" fn(*mut c_void) -> u32,
    random: extern "C" fn(*mut c_void) -> u32,
    config_read: extern "C" fn(*mut c_void, *mut u8, usize) -> bool,
    config_write: extern "C" fn(*mut c_void, *const u8, usize),
    restart: extern "C" fn(*mut c_void),
}

extern "C" {
    fn lc_init(ctx: *mut LcCtx, hal: *const LcHal, version: *const c_char);
    fn lc_boot(ctx: *mut LcCtx);
    fn lc_tick(ctx: *mut LcCtx);
    fn lc_ms_until_tick(ctx: *const LcCtx, now: u32) -> u32;
    fn lc_wifi(ctx: *mut LcCtx, up: bool);
    fn lc_mqtt_connected(ctx: *mut LcCtx);
    fn lc_mqtt_connect_failed(ctx: *mut LcCtx);
    fn lc_mqtt_lost(ctx: *mut LcCtx);
    fn lc_mqtt_message(
        ctx: *mut LcCtx,
        topic: *const c_char,
        topic_len: usize,
        payload: *const u8,
        payload_len: usize,
    );
    fn lc_button(ctx: *mut LcCtx, pressed: bool);
    fn lc_press(ctx: *mut LcCtx);
    fn lc_serial_input(ctx: *mut LcCtx, line: *const c_char, len: usize);
    fn lc_relay(ctx: *const LcCtx) -> bool;
    fn lc_get_state(ctx: *const LcCtx) -> c_int;
    fn lc_ctx_size() -> usize;
    fn lc_ctx_align() -> usize;
}

/// The core's entry points, wherever the core comes from: linked into this crate, or a
/// shared library loaded at run time. Declared once, with the symbol each one has.
macro_rules! api {
    ($($field:ident = $symbol:ident : fn($($arg:ty),*) $(-> $ret:ty)?;)*) => {
        /// The entry points of one build of the core.
        #[derive(Clone, Copy)]
        pub(crate) struct Api {
            $($field: unsafe extern "C" fn($($arg),*) $(-> $ret)?,)*
        }

        impl Api {
            /// The core built into this crate.
            pub(crate) fn builtin() -> Api {
                Api { $($field: $symbol,)* }
            }

            /// Every entry point of `library`; the first one missing is named.
            ///
            /// Safety: each symbol of that name must be a function with the signature
            /// `light_controller.h` gives it.
            unsafe fn resolve(library: &libloading::Library) -> Result<Api, &'static str> {
                Ok(Api {
                    $($field: {
                        let name = concat!(stringify!($symbol), "\0");
                        // SAFETY: per this function's contract; the pointer is used only
                        // while the library stays loaded (`Loaded` keeps it).
                        let symbol = unsafe {
                            library.get::<unsafe extern "C" fn($($arg),*) $(-> $ret)?>(name.as_bytes())
                        };
                        *symbol.map_err(|_| stringify!($symbol))?
                    },)*
                })
            }
        }
    };
}

api! {
    init = lc_init: fn(*mut LcCtx, *const LcHal, *const c_char);
    boot = lc_boot: fn(*mut LcCtx);
    tick = lc_tick: fn(*mut LcCtx);
    ms_until_tick = lc_ms_until_tick: fn(*const LcCtx, u32) -> u32;
    wifi = lc_wifi: fn(*mut LcCtx, bool);
    mqtt_connected = lc_mqtt_connected: fn(*mut LcCtx);
    mqtt_connect_failed = lc_mqtt_connect_failed: fn(*mut LcCtx);
    mqtt_lost = lc_mqtt_lost: fn(*mut LcCtx);
    mqtt_message = lc_mqtt_message: fn(*mut LcCtx, *const c_char, usize, *const u8, usize);
    button = lc_button: fn(*mut LcCtx, bool);
    press = lc_press: fn(*mut LcCtx);
    serial_input = lc_serial_input: fn(*mut LcCtx, *const c_char, usize);
    relay = lc_relay: fn(*const LcCtx) -> bool;
    get_state = lc_get_state: fn(*const LcCtx) -> c_int;
    ctx_size = lc_ctx_size: fn() -> usize;
    ctx_align = lc_ctx_align: fn() -> usize;
}

/// The largest context accepted from a library: the core's own is about 1.2 KiB, so a
/// larger one is not this core (or reports its size wrongly).
pub(crate) const MAX_CTX_SIZE: usize = 64 * 1024;
/// The strictest alignment accepted from a library.
pub(crate) const MAX_CTX_ALIGN: usize = 4096;

/// A build of the core and, when it came from a file, the loaded library it lives in.
#[derive(Clone)]
pub(crate) struct Backend {
    pub(crate) api: Api,
    /// The context's layout, as the build reports it.
    pub(crate) layout: Layout,
    /// Keeps the library loaded while any context made from it lives.
    _library: Option<Arc<libloading::Library>>,
}

/// Why a library is not a usable core.
pub(crate) enum LoadFailure {
    Open(String),
    MissingSymbol(&'static str),
    ContextLayout { size: usize, align: usize },
}

impl Backend {
    pub(crate) fn builtin() -> Backend {
        let api = Api::builtin();
        // SAFETY: both functions only return constants.
        let (size, align) = unsafe { ((api.ctx_size)(), (api.ctx_align)()) };
        Backend {
            api,
            layout: Layout::from_size_align(size, align).expect("lc_ctx has a valid layout"),
            _library: None,
        }
    }

    /// Loads a shared library that exports the API of `light_controller.h`.
    pub(crate) fn load(path: &std::path::Path) -> Result<Backend, LoadFailure> {
        // SAFETY: loading runs the library's initialisers; a core built from
        // light_controller.c has none (it has no mutable static data). That it is such a
        // core is what the caller asked for by naming it.
        let library = unsafe { libloading::Library::new(path) }
            .map_err(|e| LoadFailure::Open(e.to_string()))?;
        // SAFETY: the symbols are the header's functions, with its signatures.
        let api = unsafe { Api::resolve(&library) }.map_err(LoadFailure::MissingSymbol)?;
        // SAFETY: lc_ctx_size and lc_ctx_align take nothing and return a number.
        let (size, align) = unsafe { ((api.ctx_size)(), (api.ctx_align)()) };
        let layout = Layout::from_size_align(size, align)
            .ok()
            .filter(|layout| layout.size() > 0 && size <= MAX_CTX_SIZE && align <= MAX_CTX_ALIGN)
            .ok_or(LoadFailure::ContextLayout { size, align })?;
        Ok(Backend {
            api,
            layout,
            _library: Some(Arc::new(library)),
        })
    }
}

/// One input to the core.
pub(crate) enum Event<'a> {
    Boot,
    Tick,
    Wifi(bool),
    MqttConnected,
    MqttConnectFailed,
    MqttLost,
    Message { topic: &'a str, payload: &'a [u8] },
    Button(bool),
    Press,
    SerialInput(&'a [u8]),
}

/// What the C side's `user` pointer points at.
struct Shared<H> {
    hal: H,
    /// A panic caught in a callback, resumed once the C call has returned (unwinding through
    /// C is not allowed).
    panic: Option<Box<dyn Any + Send>>,
}

/// Owns an initialised `lc_ctx` and the HAL its callbacks reach, both at fixed heap
/// addresses so the pointers held by the C side stay valid when `Core` moves.
pub(crate) struct Core<H: Hal> {
    ctx: NonNull<LcCtx>,
    backend: Backend,
    shared: NonNull<Shared<H>>,
}

// SAFETY: a `Core` exclusively owns both allocations, like a `Box` would, and the C core
// keeps no global or thread-local state (a loaded library is held to the same contract:
// it exports that core's API); so moving it to another thread is as safe as moving the
// `H` inside it.
unsafe impl<H: Hal + Send> Send for Core<H> {}

impl<H: Hal> Core<H> {
    pub(crate) fn new(backend: Backend, hal: H, version: &str) -> Self {
        let shared = NonNull::from(Box::leak(Box::new(Shared { hal, panic: None })));
        let layout = backend.layout;
        // SAFETY: the layout is not zero-sized (lc_ctx holds buffers; a loaded library's
        // is checked when it is loaded).
        let ctx = NonNull::new(unsafe { alloc::alloc_zeroed(layout) }.cast::<LcCtx>())
            .unwrap_or_else(|| alloc::handle_alloc_error(layout));
        let version = CString::new(version.replace('\0', "")).unwrap_or_default();
        let raw_hal = LcHal {
            user: shared.as_ptr().cast(),
            relay: relay::<H>,
            publish: publish::<H>,
            subscribe: subscribe::<H>,
            connect: connect::<H>,
            disconnect: disconnect::<H>,
            wifi_begin: wifi_begin::<H>,
            serial_line: serial_line::<H>,
            millis: millis::<H>,
            random: random::<H>,
            config_read: config_read::<H>,
            config_write: config_write::<H>,
            restart: restart::<H>,
        };
        // SAFETY: ctx is a fresh allocation with lc_ctx's size and alignment; lc_init copies
        // the HAL table and the version string and calls no callback.
        unsafe { (backend.api.init)(ctx.as_ptr(), &raw_hal, version.as_ptr()) };
        Core {
            ctx,
            backend,
            shared,
        }
    }

    pub(crate) fn event(&mut self, event: Event<'_>) {
        let ctx = self.ctx.as_ptr();
        let api = &self.backend.api;
        // SAFETY: ctx was initialised by lc_init and `&mut self` makes this the only call
        // into it (the core is not re-entrant). The callbacks reach the HAL through
        // `shared`, which outlives the call and has no Rust reference alive meanwhile.
        // Every buffer is passed with its length and outlives the call.
        unsafe {
            match event {
                Event::Boot => (api.boot)(ctx),
                Event::Tick => (api.tick)(ctx),
                Event::Wifi(up) => (api.wifi)(ctx, up),
                Event::MqttConnected => (api.mqtt_connected)(ctx),
                Event::MqttConnectFailed => (api.mqtt_connect_failed)(ctx),
                Event::MqttLost => (api.mqtt_lost)(ctx),
                Event::Message { topic, payload } => (api.mqtt_message)(
                    ctx,
                    topic.as_ptr().cast(),
                    topic.len(),
                    payload.as_ptr(),
                    payload.len(),
                ),
                Event::Button(pressed) => (api.button)(ctx, pressed),
                Event::Press => (api.press)(ctx),
                Event::SerialInput(line) => {
                    (api.serial_input)(ctx, line.as_ptr().cast(), line.len())
                }
            }
        }
        // SAFETY: the C call has returned, so no callback holds a reference into `shared`.
        let caught = unsafe { (*self.shared.as_ptr()).panic.take() };
        if let Some(payload) = caught {
            panic::resume_unwind(payload);
        }
    }

    pub(crate) fn ms_until_tick(&self, now: u32) -> u32 {
        // SAFETY: ctx is initialised; lc_ms_until_tick only reads it and calls no callback.
        unsafe { (self.backend.api.ms_until_tick)(self.ctx.as_ptr(), now) }
    }

    pub(crate) fn relay(&self) -> bool {
        // SAFETY: ctx is initialised; lc_relay only reads it.
        unsafe { (self.backend.api.relay)(self.ctx.as_ptr()) }
    }

    pub(crate) fn state(&self) -> State {
        // SAFETY: ctx is initialised; lc_get_state only reads it.
        match unsafe { (self.backend.api.get_state)(self.ctx.as_ptr()) } {
            0 => State::Offline,
            1 => State::ConnectingWifi,
            2 => State::LookingForBroker,
            3 => State::Active,
            other => unreachable!("lc_state has no value {other}"),
        }
    }

    pub(crate) fn hal(&self) -> &H {
        // SAFETY: `shared` is live while self is; callbacks only run inside `event`, which
        // needs `&mut self`, so no mutable reference exists while this one does.
        unsafe { &self.shared.as_ref().hal }
    }

    pub(crate) fn hal_mut(&mut self) -> &mut H {
        // SAFETY: as in `hal`, and `&mut self` makes this reference unique.
        unsafe { &mut self.shared.as_mut().hal }
    }

    pub(crate) fn into_hal(self) -> H {
        let mut this = std::mem::ManuallyDrop::new(self);
        this.release().hal
    }

    /// Frees the context and hands back the HAL. Called exactly once: by `drop`, or by
    /// `into_hal`, which keeps `drop` from running.
    fn release(&mut self) -> Box<Shared<H>> {
        // SAFETY: ctx was allocated in `new` with `self.layout`; `shared` came from
        // `Box::leak` in `new`; neither is used again after this call.
        unsafe {
            alloc::dealloc(self.ctx.as_ptr().cast(), self.backend.layout);
            Box::from_raw(self.shared.as_ptr())
        }
    }
}

impl<H: Hal> Drop for Core<H> {
    fn drop(&mut self) {
        drop(self.release());
    }
}

/// Runs `f` on the HAL behind `user`. A panic is kept for `Core::event` to resume, and from
/// then on the HAL is left alone and C gets `fallback`.
///
/// Safety: `user` must be the `shared` pointer of a live `Core`, during one of its C calls.
unsafe fn with_hal<H: Hal, R>(user: *mut c_void, fallback: R, f: impl FnOnce(&mut H) -> R) -> R {
    // SAFETY: per this function's contract, and `Core::event` holds no reference into it.
    let shared = unsafe { &mut *user.cast::<Shared<H>>() };
    if shared.panic.is_some() {
        return fallback;
    }
    match panic::catch_unwind(AssertUnwindSafe(|| f(&mut shared.hal))) {
        Ok(value) => value,
        Err(payload) => {
            shared.panic = Some(payload);
            fallback
        }
    }
}

/// Safety: `p` is a NUL-terminated string valid for `'a`.
unsafe fn text<'a>(p: *const c_char) -> Cow<'a, str> {
    // SAFETY: per this function's contract. The core emits ASCII, so the lossy conversion
    // never replaces anything in practice.
    unsafe { CStr::from_ptr(p) }.to_string_lossy()
}

// The trampolines below are installed in `Core::new` with `user` pointing at `Shared<H>`;
// the core calls them only from inside `Core::event`, passing NUL-terminated strings and
// buffers of the given length that stay valid for the call (the lc_hal contract). That is
// the invariant every SAFETY comment below relies on.

extern "C" fn relay<H: Hal>(user: *mut c_void, on: bool) {
    // SAFETY: see the note above the trampolines.
    unsafe { with_hal(user, (), |hal: &mut H| hal.relay(on)) }
}

extern "C" fn publish<H: Hal>(
    user: *mut c_void,
    topic: *const c_char,
    payload: *const u8,
    len: usize,
    qos: u8,
    retain: bool,
) -> bool {
    // SAFETY: see the note above the trampolines.
    unsafe {
        let topic = text(topic);
        let payload = slice::from_raw_parts(payload, len);
        with_hal(user, false, |hal: &mut H| {
            hal.publish(&topic, payload, qos, retain)
        })
    }
}

extern "C" fn subscribe<H: Hal>(user: *mut c_void, topic: *const c_char, qos: u8) -> bool {
    // SAFETY: see the note above the trampolines.
    unsafe {
        let topic = text(topic);
        with_hal(user, false, |hal: &mut H| hal.subscribe(&topic, qos))
    }
}

extern "C" fn connect<H: Hal>(user: *mut c_void, request: *const LcConnectRequest) {
    // SAFETY: see the note above the trampolines; the request itself is valid for the call.
    unsafe {
        let raw = &*request;
        let request = ConnectRequest {
            client_id: text(raw.client_id).into_owned(),
            host: text(raw.host).into_owned(),
            port: raw.port,
            will_topic: text(raw.will_topic).into_owned(),
            will_payload: CStr::from_ptr(raw.will_payload).to_bytes().to_vec(),
            will_qos: raw.will_qos,
            will_retain: raw.will_retain,
        };
        with_hal(user, (), |hal: &mut H| hal.connect(&request))
    }
}

extern "C" fn disconnect<H: Hal>(user: *mut c_void) {
    // SAFETY: see the note above the trampolines.
    unsafe { with_hal(user, (), |hal: &mut H| hal.disconnect()) }
}

extern "C" fn wifi_begin<H: Hal>(user: *mut c_void, ssid: *const c_char, password: *const c_char) {
    // SAFETY: see the note above the trampolines.
    unsafe {
        let (ssid, password) = (text(ssid), text(password));
        with_hal(user, (), |hal: &mut H| hal.wifi_begin(&ssid, &password))
    }
}

extern "C" fn serial_line<H: Hal>(user: *mut c_void, line: *const c_char) {
    // SAFETY: see the note above the trampolines.
    unsafe {
        let line = text(line);
        with_hal(user, (), |hal: &mut H| hal.serial_line(&line))
    }
}

extern "C" fn millis<H: Hal>(user: *mut c_void) -> u32 {
    // SAFETY: see the note above the trampolines.
    unsafe { with_hal(user, 0, |hal: &mut H| hal.millis()) }
}

extern "C" fn random<H: Hal>(user: *mut c_void) -> u32 {
    // SAFETY: see the note above the trampolines.
    unsafe { with_hal(user, 0, |hal: &mut H| hal.random()) }
}

extern "C" fn config_read<H: Hal>(user: *mut c_void, buf: *mut u8, len: usize) -> bool {
    // SAFETY: see the note above the trampolines; buf is the core's own record buffer,
    // writable and not aliased during the call.
    unsafe {
        let buf = slice::from_raw_parts_mut(buf, len);
        with_hal(user, false, |hal: &mut H| hal.config_read(buf))
    }
}

extern "C" fn config_write<H: Hal>(user: *mut c_void, data: *const u8, len: usize) {
    // SAFETY: see the note above the trampolines.
    unsafe {
        let data = slice::from_raw_parts(data, len);
        with_hal(user, (), |hal: &mut H| hal.config_write(data))
    }
}

extern "C" fn restart<H: Hal>(user: *mut c_void) {
    // SAFETY: see the note above the trampolines.
    unsafe { with_hal(user, (), |hal: &mut H| hal.restart()) }
}
