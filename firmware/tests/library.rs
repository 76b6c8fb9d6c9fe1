//! The core built as a shared library with the host compiler and loaded at run time:
//! it behaves as the built-in core, and a library that is not a usable core is refused
//! with what is wrong.

use std::path::{Path, PathBuf};

use hil_firmware::host_build::{build_core_library, shipped_core, Compiler, CoreLibrary};
use hil_firmware::{ConnectRequest, Controller, Firmware, Hal, LoadError};

/// Everything the firmware did, in order, as text.
#[derive(Default)]
struct Log {
    calls: Vec<String>,
    now: u32,
}

impl Hal for Log {
    fn relay(&mut self, on: bool) {
        self.calls.push(format!("relay {on}"));
    }
    fn publish(&mut self, topic: &str, payload: &[u8], qos: u8, retain: bool) -> bool {
        let payload = String::from_utf8_lossy(payload);
        self.calls
            .push(format!("publish {topic} {payload} q{qos} r{retain}"));
        true
    }
    fn subscribe(&mut self, topic: &str, qos: u8) -> bool {
        self.calls.push(format!("subscribe {topic} q{qos}"));
        true
    }
    fn connect(&mut self, request: &ConnectRequest) {
        self.calls.push(format!("connect {request:?}"));
    }
    fn disconnect(&mut self) {
        self.calls.push("disconnect".into());
    }
    fn wifi_begin(&mut self, ssid: &str, _password: &str) {
        self.calls.push(format!("wifi_begin {ssid}"));
    }
    fn serial_line(&mut self, line: &str) {
        self.calls.push(line.to_string());
    }
    fn millis(&mut self) -> u32 {
        self.now
    }
    fn random(&mut self) -> u32 {
        0x8000_0000
    }
    fn config_read(&mut self, _buf: &mut [u8]) -> bool {
        false
    }
    fn config_write(&mut self, _data: &[u8]) {
        self.calls.push("config_write".into());
    }
    fn restart(&mut self) {
        self.calls.push("restart".into());
    }
}

fn build(dir: &Path, name: &str, sources: Vec<PathBuf>, defines: &[&str]) -> PathBuf {
    let out = dir.join(format!("{name}.so"));
    let library = CoreLibrary {
        sources,
        defines: defines.iter().map(|d| d.to_string()).collect(),
        out: out.clone(),
    };
    build_core_library(&library, &Compiler::from_env(false)).expect("the core builds");
    out
}

/// The same story told to a controller: boot, connect, commands, presses, a lost link.
fn story(firmware: &Firmware) -> Vec<String> {
    let mut lamp = Controller::with_firmware(firmware, Log::default(), "1.2.3");
    lamp.boot();
    lamp.wifi(true);
    lamp.mqtt_connected();
    lamp.message("living_room_lights", b" ON ");
    lamp.message("living_room_lights", b"toggle");
    lamp.button(true);
    lamp.hal_mut().now = 5;
    lamp.button(false);
    lamp.mqtt_lost();
    lamp.press();
    lamp.hal_mut().now = 400;
    lamp.tick();
    lamp.mqtt_connected();
    lamp.serial_input("status");
    lamp.into_hal().calls
}

#[test]
fn a_core_built_as_a_library_behaves_as_the_built_in_one() {
    let dir = tempfile::tempdir().unwrap();
    let path = build(dir.path(), "core", vec![shipped_core()], &[]);
    let loaded = Firmware::load(&path).expect("the library loads");
    assert_eq!(loaded.path(), Some(path.as_path()));
    let told = story(&loaded);
    assert!(told.contains(&"HIL relay=on".to_string()), "{told:#?}");
    assert_eq!(told, story(&Firmware::builtin()));
}

#[test]
fn a_changed_core_in_a_library_is_the_one_that_runs() {
    let dir = tempfile::tempdir().unwrap();
    let source = dir.path().join("light_controller.c");
    let text = std::fs::read_to_string(shipped_core()).unwrap();
    std::fs::write(
        &source,
        text.replace(
            "#define FW_NAME \"light-controller\"",
            "#define FW_NAME \"changed\"",
        ),
    )
    .unwrap();
    let path = build(dir.path(), "changed", vec![source], &[]);
    let mut lamp = Controller::with_firmware(&Firmware::load(&path).unwrap(), Log::default(), "9");
    lamp.boot();
    assert_eq!(lamp.hal().calls[1], "HIL boot fw=changed version=9");
}

#[test]
fn a_library_without_a_function_of_the_header_is_refused_naming_it() {
    let dir = tempfile::tempdir().unwrap();
    // The definition (and its declaration) get another name: lc_press is not exported.
    let path = build(
        dir.path(),
        "no-press",
        vec![shipped_core()],
        &["lc_press=lc_press_renamed"],
    );
    let error = Firmware::load(&path).unwrap_err();
    assert_eq!(
        error,
        LoadError::MissingSymbol {
            path: path.clone(),
            symbol: "lc_press"
        }
    );
    assert!(
        error.to_string().contains("does not export `lc_press`"),
        "{error}"
    );
}

#[test]
fn a_library_reporting_an_impossible_context_size_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let size = dir.path().join("size.c");
    std::fs::write(
        &size,
        "#include <stddef.h>\n#undef lc_ctx_size\nsize_t lc_ctx_size(void);\nsize_t lc_ctx_size(void) { return 0; }\n",
    )
    .unwrap();
    let path = build(
        dir.path(),
        "no-size",
        vec![shipped_core(), size],
        &["lc_ctx_size=lc_ctx_size_real"],
    );
    let error = Firmware::load(&path).unwrap_err();
    assert!(
        matches!(error, LoadError::ContextLayout { size: 0, .. }),
        "{error:?}"
    );
    assert!(error.to_string().contains("lc_ctx_size() is 0"), "{error}");
}

#[test]
fn a_file_that_is_not_a_library_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("core.so");
    std::fs::write(&path, "not a library").unwrap();
    let error = Firmware::load(&path).unwrap_err();
    assert!(matches!(error, LoadError::Open { .. }), "{error:?}");
    assert!(error.to_string().contains("cannot load it"), "{error}");
}
