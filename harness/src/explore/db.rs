//! The memory of failures: every finding's scenario is kept in a folder (default
//! `.hil/explore/`), and those scenarios are replayed before anything new is explored,
//! so a fixed bug that comes back is caught at once.

use std::path::{Path, PathBuf};

use super::Finding;
use crate::scenario::{self, Scenario};

/// The scenarios kept in `dir`, in name order; unreadable ones are named in `errors`.
pub fn load(dir: &Path, errors: &mut Vec<String>) -> Vec<(PathBuf, Scenario)> {
    if !dir.is_dir() {
        return Vec::new();
    }
    let files = match scenario::discover(&[dir.to_path_buf()]) {
        Ok(files) => files,
        Err(error) => {
            errors.push(format!("{}: {error}", dir.display()));
            return Vec::new();
        }
    };
    let mut kept = Vec::new();
    for file in files {
        match scenario::load(&file, &crate::board::profile::known_names()) {
            Ok(scenario) => kept.push((file, scenario)),
            Err(error) => errors.push(error.render(false)),
        }
    }
    kept
}

/// Writes the finding's scenario into `out` and keeps a copy in `db`; returns the file
/// in `out`.
pub fn keep(out: &Path, db: &Path, finding: &Finding) -> Result<PathBuf, String> {
    let name = format!(
        "{}-{}.yaml",
        scenario::slug(finding.invariant),
        finding.run_seed
    );
    let mut written = None;
    for dir in [out, db] {
        std::fs::create_dir_all(dir)
            .map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
        let file = dir.join(&name);
        std::fs::write(&file, &finding.yaml)
            .map_err(|e| format!("cannot write {}: {e}", file.display()))?;
        written.get_or_insert(file);
    }
    Ok(written.expect("two folders were written"))
}
