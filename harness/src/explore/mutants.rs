//! Mutants of the light controller's core: each patch in a folder (fixtures/mutants/)
//! breaks one behaviour of the shipped `light_controller.c`; applied with `patch` to a
//! copy and built as a shared library, it is a firmware for `--firmware-lib` on which
//! the explorer and the reference suite are measured.

use std::path::{Path, PathBuf};
use std::process::Command;

use hil_firmware::host_build::{build_core_library, shipped_core, Compiler, CoreLibrary};

/// The `.patch` files in `dir`, in name order.
pub fn patches(dir: &Path) -> Result<Vec<PathBuf>, String> {
    let entries =
        std::fs::read_dir(dir).map_err(|e| format!("cannot read {}: {e}", dir.display()))?;
    let mut patches = Vec::new();
    for entry in entries {
        let path = entry
            .map_err(|e| format!("cannot read {}: {e}", dir.display()))?
            .path();
        if path.extension().is_some_and(|e| e == "patch") {
            patches.push(path);
        }
    }
    patches.sort();
    Ok(patches)
}

/// The mutant's name: its patch's file stem.
pub fn name(patch: &Path) -> String {
    patch
        .file_stem()
        .unwrap_or_default()
        .to_string_lossy()
        .into_owned()
}

/// The shipped core with `patch` applied, built as `DIR/NAME.so`; returns that library.
/// The error says what stopped it: no `patch` tool, a patch that does not apply, or the
/// compiler's messages.
pub fn build(dir: &Path, patch: &Path) -> Result<PathBuf, String> {
    let name = name(patch);
    let work = dir.join(&name);
    std::fs::create_dir_all(&work).map_err(|e| format!("cannot create {}: {e}", work.display()))?;
    let source = work.join("light_controller.c");
    std::fs::copy(shipped_core(), &source).map_err(|e| {
        format!(
            "cannot copy {} to {}: {e}",
            shipped_core().display(),
            source.display()
        )
    })?;
    // `patch -d` reads the patch file from inside the copy's folder.
    let patch = std::fs::canonicalize(patch)
        .map_err(|e| format!("cannot read {}: {e}", patch.display()))?;
    let output = Command::new("patch")
        .args(["-s", "-p1", "-d"])
        .arg(&work)
        .arg("-i")
        .arg(&patch)
        .output()
        .map_err(|e| format!("cannot run `patch` (install it, e.g. apt-get install patch): {e}"))?;
    if !output.status.success() {
        return Err(format!(
            "{} does not apply to {}:\n{}{}",
            patch.display(),
            shipped_core().display(),
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        ));
    }
    let out = dir.join(format!("{name}.so"));
    let library = CoreLibrary {
        sources: vec![source],
        defines: Vec::new(),
        out: out.clone(),
    };
    build_core_library(&library, &Compiler::from_env(false))
        .map_err(|e| format!("mutant {name} does not build: {e}"))?;
    Ok(out)
}
