//! Compiles the C core with the same strictness the cross-compile script uses.

fn main() {
    println!("cargo:rerun-if-changed=core/light_controller.c");
    println!("cargo:rerun-if-changed=core/light_controller.h");
    cc::Build::new()
        .file("core/light_controller.c")
        .include("core")
        .std("c99")
        .flag("-Wall")
        .flag("-Wextra")
        .flag("-Werror")
        .flag("-pedantic")
        .compile("light_controller");
}
