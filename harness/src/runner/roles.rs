//! Which bench board plays which board role (`hil run --board ROLE=NAME`), checked
//! against the scenarios before anything starts.

use crate::board::profile;
use crate::config::BenchConfig;
use crate::scenario::Scenario;

use super::BenchMapping;

/// Puts each `(role, bench board name)` into `mapping`, from `config` (loaded only when
/// some role is mapped): every role must be a board of some scenario, and every board
/// that is not simulated must be played by a bench board.
pub fn map_roles(
    mapping: &mut BenchMapping,
    roles: &[(String, String)],
    config: impl FnOnce() -> Result<BenchConfig, String>,
    scenarios: &[Scenario],
) -> Result<(), String> {
    if !roles.is_empty() {
        let config = config()?;
        for (role, name) in roles {
            let board = config.board(name).map_err(|e| e.to_string())?;
            let used = scenarios
                .iter()
                .any(|scenario| scenario.boards.iter().any(|b| &b.name == role));
            if !used {
                return Err(format!(
                    "--board {role}={name}: no scenario has a board named {role}"
                ));
            }
            mapping.roles.insert(role.clone(), board.clone());
        }
    }
    for scenario in scenarios {
        for board in &scenario.boards {
            if !profile::simulated(&board.spec.profile) && !mapping.roles.contains_key(&board.name)
            {
                return Err(format!(
                    "{}: board {} has profile {} and needs a bench board: add --board {}=NAME (a board of hil.toml)",
                    scenario.path.display(),
                    board.name,
                    board.spec.profile,
                    board.name
                ));
            }
        }
    }
    Ok(())
}
