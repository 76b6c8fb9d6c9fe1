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
    crate::venv::find("HIL_ESPTOOL", "esptool", INSTALL)
}
