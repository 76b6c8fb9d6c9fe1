//! Compiles the C core with the same strictness the cross-compile script uses, and builds
//! the Arduino sketch for the host (ESP8266 family) into the executable a sketch board runs.

#[allow(dead_code)]
#[path = "src/host_build.rs"]
mod host_build;

use std::path::PathBuf;

fn main() {
    println!("cargo:rerun-if-changed=core");
    println!("cargo:rerun-if-changed=host_arduino");
    println!("cargo:rerun-if-changed=light_controller");
    println!("cargo:rerun-if-changed=src/host_build.rs");
    cc::Build::new()
        .file("core/light_controller.c")
        .include("core")
        .std("c99")
        .flag("-Wall")
        .flag("-Wextra")
        .flag("-Werror")
        .flag("-pedantic")
        .compile("light_controller");

    let out_dir = PathBuf::from(std::env::var_os("OUT_DIR").expect("cargo sets OUT_DIR"));
    let compiler = |cxx: bool| {
        let tool = cc::Build::new().cpp(cxx).get_compiler();
        host_build::Compiler {
            program: tool.path().to_path_buf(),
            args: tool.args().to_vec(),
        }
    };
    let board = out_dir.join("light-controller-esp8266");
    let build = host_build::HostBuild {
        sketch: host_build::shipped_sketch(),
        family: host_build::Family::Esp8266,
        defines: Vec::new(),
        out: board.clone(),
        work: out_dir.join("sketch-esp8266"),
    };
    if let Err(error) = host_build::build(&build, &compiler(false), &compiler(true)) {
        panic!("the sketch does not build for the host:\n{error}");
    }
    println!("cargo:rustc-env=HIL_SKETCH_BOARD_BUILT={}", board.display());
}
