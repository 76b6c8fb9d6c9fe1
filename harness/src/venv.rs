//! Finding the Python tools `ci/test.sh` installs into its venv (esptool, labgrid's
//! client): an explicit variable, else the venv, else the PATH.

use std::path::PathBuf;

/// `variable`'s path, else `program` in the venv `ci/test.sh` creates (`HIL_VENV`,
/// default `~/.cache/hil/venv`), else `program` on the PATH; `install` says how to get
/// it when none is there.
pub fn find(variable: &str, program: &str, install: &str) -> Result<PathBuf, String> {
    if let Some(path) = std::env::var_os(variable) {
        let path = PathBuf::from(path);
        return if path.is_file() {
            Ok(path)
        } else {
            Err(format!("{variable}={} does not exist", path.display()))
        };
    }
    let venv = std::env::var_os("HIL_VENV").map(PathBuf::from).or_else(|| {
        std::env::var_os("HOME").map(|home| PathBuf::from(home).join(".cache/hil/venv"))
    });
    let in_venv = venv.map(|venv| venv.join("bin").join(program));
    let on_path = std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|dir| dir.join(program))
            .find(|candidate| candidate.is_file())
    });
    in_venv
        .filter(|path| path.is_file())
        .or(on_path)
        .ok_or_else(|| format!("{program} not found; install it with {install}"))
}
