//! The bench config, `hil.toml`: the boards on this bench, each a serial port with a
//! profile, so that `hil run --board lamp=bench1` runs a scenario's `lamp` on real
//! hardware, and `hil flash --board bench1` knows where and what to flash.
//!
//! ```toml
//! profiles = "boards"                 # optional: a folder of extra NAME.toml profiles
//!
//! [boards.bench1]
//! port = "auto"                       # a path, "auto" (first port whose USB id the
//!                                     # profile lists) or "rfc2217://host:port"
//! profile = "nodemcu-esp8266"
//! firmware = "build/light_controller.bin"   # optional, for `hil flash --board`
//! address = 0x0                       # optional flash address, default the profile's
//! control = "/tmp/c3.ctl"             # optional: the control socket of a profile with
//!                                     # `control` sequences, default PORT.ctl
//!
//! [boards.lab1]                       # a labgrid place instead of a port
//! labgrid = "lamp-c3"                 # by name, or any free one by its tags:
//! # labgrid = { tags = { board = "esp32c3" } }
//! profile = "esp32-c3-devkit"
//! # control = "/run/chips/{place}.ctl"   # `{place}`: the name of the place it got
//! ```

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::board::profile::{Profile, ProfileError};
pub use crate::board::BenchBoard;
use crate::labgrid::PlaceFilter;
pub use crate::port::PortSpec;

/// The file `hil` looks for in the working directory.
pub const FILE_NAME: &str = "hil.toml";

/// Why the bench config cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("no bench config: {0} not found; create it (see README, \"Real boards\") or pass --config FILE")]
    NotFound(PathBuf),
    #[error("{path}: {message}")]
    Invalid { path: PathBuf, message: String },
    #[error("{path}: board {board}: {source}")]
    Profile {
        path: PathBuf,
        board: String,
        source: ProfileError,
    },
    #[error("no board named {name:?} in {path}; the bench has: {known}")]
    UnknownBoard {
        name: String,
        path: PathBuf,
        known: String,
    },
}

/// The boards of one bench config.
#[derive(Debug, Clone)]
pub struct BenchConfig {
    pub path: PathBuf,
    pub boards: BTreeMap<String, BenchBoard>,
}

impl BenchConfig {
    /// `explicit`, else `hil.toml` in the working directory.
    pub fn load(explicit: Option<&Path>) -> Result<BenchConfig, ConfigError> {
        let path = explicit.map_or_else(|| PathBuf::from(FILE_NAME), Path::to_path_buf);
        let text = std::fs::read_to_string(&path).map_err(|e| match e.kind() {
            std::io::ErrorKind::NotFound => ConfigError::NotFound(path.clone()),
            _ => ConfigError::Invalid {
                path: path.clone(),
                message: e.to_string(),
            },
        })?;
        BenchConfig::parse(&path, &text)
    }

    fn parse(path: &Path, text: &str) -> Result<BenchConfig, ConfigError> {
        let file: ConfigFile = toml::from_str(text).map_err(|e| ConfigError::Invalid {
            path: path.to_path_buf(),
            message: crate::board::profile::located(text, &e),
        })?;
        let base = path.parent().unwrap_or(Path::new("."));
        let profiles = file.profiles.map(|dir| base.join(dir));
        let mut boards = BTreeMap::new();
        for (name, board) in file.boards {
            let profile = Profile::find(&board.profile, profiles.as_deref()).map_err(|source| {
                ConfigError::Profile {
                    path: path.to_path_buf(),
                    board: name.clone(),
                    source,
                }
            })?;
            let address = board.address.unwrap_or(profile.app_offset);
            let invalid = |message: String| ConfigError::Invalid {
                path: path.to_path_buf(),
                message: format!("board {name}: {message}"),
            };
            let port = match (&board.port, board.labgrid) {
                (Some(port), None) => {
                    PortSpec::parse(port).map_err(|error| invalid(format!("port: {error}")))?
                }
                (None, Some(place)) => PortSpec::Labgrid(place.filter().map_err(invalid)?),
                (Some(_), Some(_)) => {
                    return Err(invalid(
                        "give `port` or `labgrid`, not both: a labgrid place brings its own port"
                            .to_string(),
                    ))
                }
                (None, None) => {
                    return Err(invalid(
                        "no `port`: write `port = \"/dev/ttyUSB0\"` (or \"auto\", \"rfc2217://HOST:PORT\"), or `labgrid = \"PLACE\"`"
                            .to_string(),
                    ))
                }
            };
            boards.insert(
                name.clone(),
                BenchBoard {
                    name,
                    port,
                    firmware: board.firmware.map(|firmware| base.join(firmware)),
                    address,
                    control: board.control.map(|control| base.join(control)),
                    profile,
                    place: None,
                    power: None,
                },
            );
        }
        Ok(BenchConfig {
            path: path.to_path_buf(),
            boards,
        })
    }

    pub fn board(&self, name: &str) -> Result<&BenchBoard, ConfigError> {
        self.boards
            .get(name)
            .ok_or_else(|| ConfigError::UnknownBoard {
                name: name.to_string(),
                path: self.path.clone(),
                known: if self.boards.is_empty() {
                    "no boards".to_string()
                } else {
                    self.boards.keys().cloned().collect::<Vec<_>>().join(", ")
                },
            })
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ConfigFile {
    profiles: Option<PathBuf>,
    #[serde(default)]
    boards: BTreeMap<String, BoardFile>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct BoardFile {
    port: Option<String>,
    labgrid: Option<LabgridFile>,
    profile: String,
    firmware: Option<PathBuf>,
    address: Option<u32>,
    control: Option<PathBuf>,
}

/// `labgrid = "PLACE"` or `labgrid = { tags = { KEY = "VALUE" } }`.
#[derive(Deserialize)]
#[serde(untagged)]
enum LabgridFile {
    Name(String),
    Tags { tags: BTreeMap<String, String> },
}

impl LabgridFile {
    fn filter(self) -> Result<PlaceFilter, String> {
        match self {
            LabgridFile::Name(name) if name.is_empty() => {
                Err("labgrid: the place name is empty".to_string())
            }
            LabgridFile::Name(name) => Ok(PlaceFilter::Name(name)),
            LabgridFile::Tags { tags } if tags.is_empty() => Err(
                "labgrid: no tags; write `labgrid = { tags = { board = \"esp32c3\" } }`"
                    .to_string(),
            ),
            LabgridFile::Tags { tags } => Ok(PlaceFilter::Tags(tags)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::port::PortName;

    #[test]
    fn boards_resolve_their_profiles_and_paths() {
        let text = r#"
            [boards.bench1]
            port = "/dev/ttyUSB0"
            profile = "nodemcu-esp8266"
            firmware = "build/lc.bin"

            [boards.c3]
            port = "auto"
            profile = "esp32-c3-devkit"

            [boards.remote]
            port = "rfc2217://bench-host:4000"
            profile = "esp32-c3-devkit"
            address = 0x20000
        "#;
        let config = BenchConfig::parse(Path::new("/bench/hil.toml"), text).unwrap();
        let bench1 = config.board("bench1").unwrap();
        assert_eq!(
            bench1.port,
            PortSpec::Named(PortName::Device("/dev/ttyUSB0".into()))
        );
        assert_eq!(bench1.firmware, Some(PathBuf::from("/bench/build/lc.bin")));
        assert_eq!(bench1.address, 0);
        assert_eq!(config.board("c3").unwrap().port, PortSpec::Auto);
        assert_eq!(config.board("c3").unwrap().address, 0x10000);
        let remote = config.board("remote").unwrap();
        assert_eq!(
            remote.port,
            PortSpec::Named(PortName::Rfc2217("bench-host:4000".into()))
        );
        assert_eq!(remote.address, 0x20000);
    }

    #[test]
    fn labgrid_places_are_named_or_tagged() {
        let text = r#"
            [boards.lab1]
            labgrid = "lamp-c3"
            profile = "esp32-c3-devkit"

            [boards.any]
            labgrid = { tags = { board = "esp32c3", site = "desk" } }
            profile = "esp32-c3-devkit"
        "#;
        let config = BenchConfig::parse(Path::new("hil.toml"), text).unwrap();
        assert_eq!(
            config.board("lab1").unwrap().port,
            PortSpec::Labgrid(PlaceFilter::Name("lamp-c3".into()))
        );
        let PortSpec::Labgrid(PlaceFilter::Tags(tags)) = &config.board("any").unwrap().port else {
            panic!("tags");
        };
        assert_eq!(tags["board"], "esp32c3");
        assert_eq!(tags["site"], "desk");

        let both = "[boards.a]\nport = \"/dev/x\"\nlabgrid = \"p\"\nprofile = \"sim-pty\"\n";
        let error = BenchConfig::parse(Path::new("hil.toml"), both).unwrap_err();
        assert!(error.to_string().contains("not both"), "{error}");
        let neither = "[boards.a]\nprofile = \"sim-pty\"\n";
        let error = BenchConfig::parse(Path::new("hil.toml"), neither).unwrap_err();
        assert!(error.to_string().contains("labgrid = "), "{error}");
    }

    #[test]
    fn mistakes_say_where_and_what_exists() {
        let error =
            BenchConfig::parse(Path::new("hil.toml"), "[boards.a]\nport = 3\n").unwrap_err();
        assert!(error.to_string().contains("hil.toml: line 2"), "{error}");

        let error = BenchConfig::parse(
            Path::new("hil.toml"),
            "[boards.a]\nport = \"/dev/x\"\nprofile = \"nope\"\n",
        )
        .unwrap_err();
        assert!(error.to_string().contains("board a"), "{error}");
        assert!(error.to_string().contains("nodemcu-esp8266"), "{error}");

        let config = BenchConfig::parse(
            Path::new("hil.toml"),
            "[boards.a]\nport = \"/dev/x\"\nprofile = \"sim-pty\"\n",
        )
        .unwrap();
        let error = config.board("b").unwrap_err();
        assert!(error.to_string().contains("the bench has: a"), "{error}");
    }

    #[test]
    fn a_missing_file_says_how_to_make_one() {
        let error = BenchConfig::load(Some(Path::new("/nonexistent/hil.toml"))).unwrap_err();
        assert!(matches!(error, ConfigError::NotFound(_)));
        assert!(error.to_string().contains("--config"), "{error}");
    }
}
