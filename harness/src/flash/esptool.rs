//! Finding esptool, the reference flasher that interop tests and the benchmark compare
//! hil against.

use std::path::PathBuf;

/// The command that installs esptool where hil looks for it.
pub const INSTALL: &str =
    "ci/test.sh (it creates ${HIL_VENV:-~/.cache/hil/venv} with `pip install esptool`), \
     or point HIL_ESPTOOL at an esptool";

/// `HIL_ESPTOOL`, else the venv `ci/test.sh` creates (`HIL_VENV`, default
/// `~/.cache/hil/venv`), else `esptool` on the PATH.
pub fn find() -> Result<PathBuf, String> {
    if let Some(path) = std::env::var_os("HIL_ESPTOOL") {
        let path = PathBuf::from(path);
        return if path.is_file() {
            Ok(path)
        } else {
            Err(format!("HIL_ESPTOOL={} does not exist", path.display()))
        };
    }
    let venv = std::env::var_os("HIL_VENV").map(PathBuf::from).or_else(|| {
        std::env::var_os("HOME").map(|home| PathBuf::from(home).join(".cache/hil/venv"))
    });
    let in_venv = venv.map(|venv| venv.join("bin/esptool"));
    let on_path = std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|dir| dir.join("esptool"))
            .find(|candidate| candidate.is_file())
    });
    in_venv
        .filter(|path| path.is_file())
        .or(on_path)
        .ok_or_else(|| format!("esptool not found; install it with {INSTALL}"))
}
