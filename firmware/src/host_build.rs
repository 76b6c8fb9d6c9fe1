//! Builds the Arduino sketch into a host executable: the sketch as it is, compiled as C++
//! against the host Arduino core (`host_arduino/`) and linked with the C core. The build
//! script makes the ESP8266 build every `hil` runs; tests build others (the ESP32 family,
//! a changed sketch) the same way.
//!
//! It also builds the C core alone as a shared library (`build_core_library`), which
//! `Firmware::load` runs instead of the built-in core.
//!
//! This file is also compiled into the build script, so it uses only `std`.

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::{Child, Command};

/// The board family a build imitates: it picks the Arduino core's headers and pin names.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Family {
    Esp8266,
    Esp32,
}

impl Family {
    /// The macro the Arduino cores define, which the sketch tests.
    pub fn define(self) -> &'static str {
        match self {
            Family::Esp8266 => "ESP8266",
            Family::Esp32 => "ESP32",
        }
    }
}

/// A compiler and the arguments it always takes.
#[derive(Clone, Debug)]
pub struct Compiler {
    pub program: PathBuf,
    pub args: Vec<OsString>,
}

impl Compiler {
    /// `$CC` / `$CXX` when set, else `cc` / `c++`, as a build outside Cargo would find them.
    pub fn from_env(cxx: bool) -> Compiler {
        let (variable, default) = if cxx { ("CXX", "c++") } else { ("CC", "cc") };
        Compiler {
            program: std::env::var_os(variable)
                .map(PathBuf::from)
                .unwrap_or_else(|| default.into()),
            args: Vec::new(),
        }
    }

    fn command(&self) -> Command {
        let mut command = Command::new(&self.program);
        command.args(&self.args);
        command
    }
}

/// What to build.
#[derive(Clone, Debug)]
pub struct HostBuild {
    /// The sketch (`.ino`).
    pub sketch: PathBuf,
    pub family: Family,
    /// Extra `-D` flags for the sketch and the host core, e.g. `RELAY_ACTIVE_LOW=1`.
    pub defines: Vec<String>,
    /// The executable to write.
    pub out: PathBuf,
    /// Where the object files go.
    pub work: PathBuf,
}

/// A light-controller core to build as a shared library.
#[derive(Clone, Debug)]
pub struct CoreLibrary {
    /// The C files: `core/light_controller.c` (`shipped_core()`) or a changed copy, and
    /// any others to link in. `core/` is on the include path.
    pub sources: Vec<PathBuf>,
    /// Extra `-D` flags.
    pub defines: Vec<String>,
    /// The library to write (`.so`).
    pub out: PathBuf,
}

/// The core that ships.
pub fn shipped_core() -> PathBuf {
    firmware_dir().join("core/light_controller.c")
}

/// The strictness every build of the core gets (as `ci/firmware-cross.sh` uses).
const CORE_FLAGS: [&str; 6] = [
    "-std=c99",
    "-Wall",
    "-Wextra",
    "-Werror",
    "-pedantic",
    "-O2",
];

/// Compiles and links a core into a shared library in one compiler run (warnings are
/// errors). The error holds the compiler's own messages.
pub fn build_core_library(library: &CoreLibrary, c: &Compiler) -> Result<(), String> {
    let mut command = c.command();
    command
        .args(CORE_FLAGS)
        .args(["-shared", "-fPIC", "-I"])
        .arg(firmware_dir().join("core"));
    for define in &library.defines {
        command.arg(format!("-D{define}"));
    }
    command.args(&library.sources).arg("-o").arg(&library.out);
    let output = command
        .output()
        .map_err(|e| format!("cannot run {:?}: {e}", command.get_program()))?;
    if !output.status.success() {
        return Err(format!(
            "{command:?} failed:\n{}{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        ));
    }
    Ok(())
}

/// The firmware folder (`core/`, `host_arduino/`, `light_controller/`).
pub fn firmware_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// The sketch that ships.
pub fn shipped_sketch() -> PathBuf {
    firmware_dir().join("light_controller/light_controller.ino")
}

/// The host core's sources.
pub fn host_sources() -> Vec<PathBuf> {
    let dir = firmware_dir().join("host_arduino");
    [
        "arduino.cpp",
        "eeprom.cpp",
        "host.cpp",
        "print.cpp",
        "pubsubclient.cpp",
        "wifi.cpp",
    ]
    .iter()
    .map(|file| dir.join(file))
    .collect()
}

/// Compiles every translation unit at once (warnings are errors), then links. The error
/// holds the compiler's own messages.
pub fn build(build: &HostBuild, c: &Compiler, cxx: &Compiler) -> Result<(), String> {
    std::fs::create_dir_all(&build.work)
        .map_err(|e| format!("cannot create {}: {e}", build.work.display()))?;
    let firmware = firmware_dir();
    let mut units: Vec<Command> = Vec::new();
    let mut objects: Vec<PathBuf> = Vec::new();

    let core_object = build.work.join("light_controller_core.o");
    let mut core = c.command();
    core.args(CORE_FLAGS)
        .arg("-c")
        .arg(shipped_core())
        .arg("-o")
        .arg(&core_object);
    units.push(core);
    objects.push(core_object);

    let mut cxx_unit = |source: &Path, object: PathBuf, sketch: bool| {
        let mut command = cxx.command();
        command
            .args(["-std=gnu++17", "-Wall", "-Wextra", "-Werror", "-O2", "-c"])
            .arg(format!("-D{}", build.family.define()))
            .arg("-I")
            .arg(firmware.join("host_arduino"))
            .arg("-I")
            .arg(firmware.join("core"));
        for define in &build.defines {
            command.arg(format!("-D{define}"));
        }
        if sketch {
            // The login the board is started with stands in for one compiled in.
            command
                .arg("-DMQTT_USER=host_mqtt_user()")
                .arg("-DMQTT_PASSWORD=host_mqtt_password()")
                .args(["-x", "c++"]);
        }
        command.arg(source).arg("-o").arg(&object);
        units.push(command);
        objects.push(object);
    };
    cxx_unit(&build.sketch, build.work.join("sketch.o"), true);
    for source in host_sources() {
        let stem = source.file_stem().unwrap_or_default().to_string_lossy();
        cxx_unit(&source, build.work.join(format!("host_{stem}.o")), false);
    }

    let mut running: Vec<(Child, Command)> = Vec::new();
    for mut command in units {
        let child = command
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .map_err(|e| format!("cannot run {:?}: {e}", command.get_program()))?;
        running.push((child, command));
    }
    let mut failures = Vec::new();
    for (child, command) in running {
        let output = child
            .wait_with_output()
            .map_err(|e| format!("{:?}: {e}", command.get_program()))?;
        if !output.status.success() {
            failures.push(format!(
                "{command:?} failed:\n{}{}",
                String::from_utf8_lossy(&output.stdout),
                String::from_utf8_lossy(&output.stderr)
            ));
        }
    }
    if !failures.is_empty() {
        return Err(failures.join("\n"));
    }

    let mut link = cxx.command();
    // The host core sees the sketch's lc_tick calls, to know when an idle board may sleep.
    link.arg("-Wl,--wrap=lc_tick")
        .args(&objects)
        .arg("-o")
        .arg(&build.out);
    let output = link
        .output()
        .map_err(|e| format!("cannot run {:?}: {e}", link.get_program()))?;
    if !output.status.success() {
        return Err(format!(
            "{link:?} failed:\n{}",
            String::from_utf8_lossy(&output.stderr)
        ));
    }
    Ok(())
}
