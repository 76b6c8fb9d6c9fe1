//! Board profiles: what hil needs to know about a kind of board to drive it over serial.
//!
//! A profile is a TOML file: the chip, the baud rate, the USB ids it shows up with, the
//! line sequences that reset it and put it in its ROM download mode, the regexes that
//! turn its serial lines into trace events, and the console commands for a switch press,
//! a status line, a reboot and configuration. The light controller's patterns and
//! commands are the defaults, so a profile for our firmware only says what differs from
//! board to board; firmware other than ours is supported by a profile that overrides
//! them, not by code.
//!
//! ```toml
//! chip = "esp8266"
//! baud = 115200
//! usb = ["1a86:7523"]
//! [reset]
//! steps = [{ dtr = false, rts = true }, { wait = "100ms" }, { rts = false }]
//! [bootloader]
//! control = "bootloader"      # the virtual chip's control socket instead of lines
//! [patterns]
//! relay = '^relay (?P<state>on|off)$'
//! ```

use std::path::Path;
use std::time::Duration;

use regex::Regex;
use serde::Deserialize;

use crate::chip::Control;
use crate::image::Chip;
use crate::trace::EventBody;

/// The profiles that ship with hil (`fixtures/boards/`).
const BUNDLED: [(&str, &str); 4] = [
    (
        "nodemcu-esp8266",
        include_str!("../../../fixtures/boards/nodemcu-esp8266.toml"),
    ),
    (
        "esp32-c3-devkit",
        include_str!("../../../fixtures/boards/esp32-c3-devkit.toml"),
    ),
    (
        "sim-pty",
        include_str!("../../../fixtures/boards/sim-pty.toml"),
    ),
    (
        "sim-pty-esp8266",
        include_str!("../../../fixtures/boards/sim-pty-esp8266.toml"),
    ),
];

/// The in-process simulated board's profile name.
pub const SIM: &str = "sim";

/// The sketch board's profile name: the Arduino sketch on the host Arduino core.
pub const SIM_SKETCH: &str = "sim-sketch";

/// Whether a profile name is played on the host rather than by a bench board.
pub fn simulated(name: &str) -> bool {
    name == SIM || name == SIM_SKETCH
}

/// Every profile name a scenario may use: the simulators and the bundled boards.
pub fn known_names() -> Vec<&'static str> {
    [SIM, SIM_SKETCH]
        .into_iter()
        .chain(BUNDLED.iter().map(|(name, _)| *name))
        .collect()
}

#[derive(Debug, Clone)]
pub struct Profile {
    pub name: String,
    pub description: String,
    pub chip: Option<Chip>,
    pub baud: u32,
    /// USB `(vendor, product)` ids, for `port = "auto"` and `hil ports`.
    pub usb: Vec<(u16, u16)>,
    pub reset: Sequence,
    pub bootloader: Sequence,
    pub patterns: Patterns,
    pub commands: Commands,
    /// Where the application image goes in flash.
    pub app_offset: u32,
    pub flash_size: u32,
}

/// How to pulse a board's control lines.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Sequence {
    /// DTR / RTS changes and pauses, in order.
    Lines(Vec<LineStep>),
    /// A command for the control socket beside the port (`PORT.ctl`), for ports without
    /// modem lines such as the virtual chip's pseudo-terminal.
    Control(Control),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LineStep {
    Set {
        dtr: Option<bool>,
        rts: Option<bool>,
    },
    Wait(Duration),
}

/// Regexes that turn serial lines into events. Named groups carry the values.
#[derive(Debug, Clone)]
pub struct Patterns {
    /// `version` group: the firmware version that booted.
    pub boot: Regex,
    /// `state` group: `on` or `off`.
    pub relay: Regex,
    /// `state` group: the connection state.
    pub state: Regex,
    pub warning: Regex,
    /// The firmware's answer to the `config` command when it stored the settings.
    pub config_saved: Regex,
    /// Its answer when it refused them.
    pub config_refused: Regex,
}

impl Default for Patterns {
    /// The light controller's serial protocol (`firmware/README.md`).
    fn default() -> Patterns {
        let regex = |pattern: &str| Regex::new(pattern).expect("built-in pattern compiles");
        Patterns {
            boot: regex(r"^HIL boot fw=(?P<firmware>\S+) version=(?P<version>\S+)"),
            relay: regex(r"^HIL relay=(?P<state>on|off)\b"),
            state: regex(r"^HIL state=(?P<state>\w+)"),
            warning: regex(r"^HIL warn=(?P<warning>\S+)"),
            config_saved: regex(r"^HIL config saved"),
            config_refused: regex(r"^HIL warn=bad_config"),
        }
    }
}

impl Patterns {
    /// The version in a boot line, or `None` when the line is no boot line.
    pub fn boot_version<'l>(&self, line: &'l str) -> Option<&'l str> {
        let captures = self.boot.captures(line)?;
        Some(captures.name("version").map_or("", |m| m.as_str()))
    }

    /// The relay state a line reports, if it reports one.
    pub fn relay_on(&self, line: &str) -> Option<bool> {
        let state = self.relay.captures(line)?.name("state")?.as_str();
        Some(state.eq_ignore_ascii_case("on"))
    }

    /// The state or warning event a line of `board` reports, if it reports one.
    pub fn report(&self, board: &str, line: &str) -> Option<EventBody> {
        if let Some(state) = self.state.captures(line).and_then(|c| c.name("state")) {
            return Some(EventBody::BoardState {
                board: board.to_string(),
                state: state.as_str().to_string(),
            });
        }
        let warning = self.warning.captures(line)?.name("warning")?;
        Some(EventBody::BoardWarning {
            board: board.to_string(),
            warning: warning.as_str().to_string(),
        })
    }

    /// The light controller's patterns, compiled once for every simulated board.
    pub fn light_controller() -> &'static Patterns {
        static PATTERNS: std::sync::LazyLock<Patterns> =
            std::sync::LazyLock::new(Patterns::default);
        &PATTERNS
    }
}

/// Settings the firmware stores with its `config` command, by key, in order. The keys
/// are the firmware's (`firmware/README.md`); the profile says how to send them.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Settings(Vec<(&'static str, String)>);

impl Settings {
    /// What a board needs to join a run: where the broker is, who it is.
    pub fn for_run(
        broker: std::net::SocketAddr,
        client_id: &str,
        topic: Option<&str>,
        debounce: Option<Duration>,
    ) -> Settings {
        let mut settings = Settings::default();
        settings.set("broker", broker.to_string());
        settings.set("client_id", client_id.to_string());
        if let Some(topic) = topic {
            settings.set("topic", topic.to_string());
        }
        if let Some(debounce) = debounce {
            settings.set("debounce_ms", debounce.as_millis().to_string());
        }
        settings
    }

    pub fn set(&mut self, key: &'static str, value: String) {
        self.0.push((key, value));
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// As the firmware's console takes them: `key=value` pairs.
    fn pairs(&self) -> String {
        let pairs: Vec<String> = self
            .0
            .iter()
            .map(|(key, value)| format!("{key}={value}"))
            .collect();
        pairs.join(" ")
    }
}

/// Console commands; `{settings}` in `config` becomes `key=value` pairs.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Commands {
    pub press: String,
    pub status: String,
    pub reboot: String,
    pub config: String,
}

impl Commands {
    /// The console line that stores `settings`.
    pub fn config_line(&self, settings: &Settings) -> String {
        self.config.replace("{settings}", &settings.pairs())
    }
}

impl Default for Commands {
    fn default() -> Commands {
        Commands {
            press: "press".into(),
            status: "status".into(),
            reboot: "reboot".into(),
            config: "config {settings}".into(),
        }
    }
}

/// A profile that cannot be used, with the file it came from.
#[derive(Debug, thiserror::Error)]
#[error("board profile {origin}: {message}")]
pub struct ProfileError {
    origin: String,
    message: String,
}

impl Profile {
    /// A bundled profile by name.
    pub fn bundled(name: &str) -> Option<Profile> {
        let (_, text) = BUNDLED.iter().find(|(bundled, _)| *bundled == name)?;
        Some(
            Profile::parse(name, text, &format!("{name} (bundled)"))
                .expect("bundled profiles are valid"),
        )
    }

    /// A profile by name from `dir` (`NAME.toml`), else a bundled one.
    pub fn find(name: &str, dir: Option<&Path>) -> Result<Profile, ProfileError> {
        if let Some(path) = dir.map(|dir| dir.join(format!("{name}.toml"))) {
            if path.exists() {
                return Profile::load(&path);
            }
        }
        Profile::bundled(name).ok_or_else(|| ProfileError {
            origin: name.to_string(),
            message: format!(
                "no such profile; bundled profiles: {}{}",
                BUNDLED.map(|(name, _)| name).join(", "),
                dir.map(|d| format!("; none named {name}.toml in {}", d.display()))
                    .unwrap_or_default()
            ),
        })
    }

    pub fn load(path: &Path) -> Result<Profile, ProfileError> {
        let origin = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|e| ProfileError {
            origin: origin.clone(),
            message: e.to_string(),
        })?;
        let name = path
            .file_stem()
            .map(|stem| stem.to_string_lossy().into_owned())
            .unwrap_or_default();
        Profile::parse(&name, &text, &origin)
    }

    fn parse(name: &str, text: &str, origin: &str) -> Result<Profile, ProfileError> {
        let error = |message: String| ProfileError {
            origin: origin.to_string(),
            message,
        };
        let file: ProfileFile = toml::from_str(text).map_err(|e| error(located(text, &e)))?;
        let chip = file
            .chip
            .as_deref()
            .map(|chip| {
                Chip::from_name(chip).ok_or_else(|| {
                    error(format!("unknown chip {chip:?}: esp8266, esp32 or esp32c3"))
                })
            })
            .transpose()?;
        let usb = file
            .usb
            .iter()
            .map(|id| {
                parse_usb_id(id).ok_or_else(|| {
                    error(format!(
                        "usb id {id:?}: write it as VID:PID in hex, e.g. 10c4:ea60"
                    ))
                })
            })
            .collect::<Result<_, _>>()?;
        let reset = file
            .reset
            .into_sequence()
            .map_err(|m| error(format!("[reset]: {m}")))?;
        let bootloader = file
            .bootloader
            .into_sequence()
            .map_err(|m| error(format!("[bootloader]: {m}")))?;
        let patterns = file.patterns.compile().map_err(error)?;
        let flash_size = parse_size(&file.flash.size).ok_or_else(|| {
            error(format!(
                "[flash] size {:?}: write it like 4MB",
                file.flash.size
            ))
        })?;
        Ok(Profile {
            name: name.to_string(),
            description: file.description,
            chip,
            baud: file.baud,
            usb,
            reset,
            bootloader,
            patterns,
            commands: file.commands,
            app_offset: file.flash.app_offset,
            flash_size,
        })
    }
}

/// The TOML error with its line and column.
pub(crate) fn located(text: &str, error: &toml::de::Error) -> String {
    let message = error.message();
    match error.span() {
        Some(span) => {
            let at = crate::steps::Location::at_offset(text, span.start);
            format!("line {}, column {}: {message}", at.line, at.column)
        }
        None => message.to_string(),
    }
}

fn parse_usb_id(text: &str) -> Option<(u16, u16)> {
    let (vid, pid) = text.split_once(':')?;
    Some((
        u16::from_str_radix(vid, 16).ok()?,
        u16::from_str_radix(pid, 16).ok()?,
    ))
}

fn parse_size(text: &str) -> Option<u32> {
    let upper = text.trim().to_ascii_uppercase();
    let (digits, unit) = upper.split_at(upper.find(|c: char| !c.is_ascii_digit())?);
    let factor = match unit.trim() {
        "KB" | "K" => 1 << 10,
        "MB" | "M" => 1 << 20,
        _ => return None,
    };
    digits.parse::<u32>().ok()?.checked_mul(factor)
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ProfileFile {
    #[serde(default)]
    description: String,
    chip: Option<String>,
    #[serde(default = "default_baud")]
    baud: u32,
    #[serde(default)]
    usb: Vec<String>,
    reset: SequenceFile,
    bootloader: SequenceFile,
    #[serde(default)]
    patterns: PatternsFile,
    #[serde(default)]
    commands: Commands,
    flash: FlashFile,
}

fn default_baud() -> u32 {
    115_200
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SequenceFile {
    steps: Option<Vec<LineStepFile>>,
    control: Option<String>,
}

impl SequenceFile {
    fn into_sequence(self) -> Result<Sequence, String> {
        match (self.steps, self.control) {
            (Some(steps), None) => steps
                .into_iter()
                .map(LineStepFile::into_step)
                .collect::<Result<_, _>>()
                .map(Sequence::Lines),
            (None, Some(command)) => command
                .parse()
                .map(Sequence::Control)
                .map_err(|e| format!("control: {e}")),
            _ => Err(
                "give exactly one of `steps` (DTR/RTS) or `control` (a control-socket command)"
                    .into(),
            ),
        }
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct LineStepFile {
    dtr: Option<bool>,
    rts: Option<bool>,
    wait: Option<String>,
}

impl LineStepFile {
    fn into_step(self) -> Result<LineStep, String> {
        match (self.wait, self.dtr, self.rts) {
            (Some(wait), None, None) => humantime::parse_duration(&wait)
                .map(LineStep::Wait)
                .map_err(|e| format!("wait {wait:?}: {e}")),
            (None, dtr, rts) if dtr.is_some() || rts.is_some() => Ok(LineStep::Set { dtr, rts }),
            _ => {
                Err("each step is either `{ wait = \"100ms\" }` or sets `dtr` and/or `rts`".into())
            }
        }
    }
}

#[derive(Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct PatternsFile {
    boot: Option<String>,
    relay: Option<String>,
    state: Option<String>,
    warning: Option<String>,
    config_saved: Option<String>,
    config_refused: Option<String>,
}

impl PatternsFile {
    fn compile(self) -> Result<Patterns, String> {
        let defaults = Patterns::default();
        let compile = |field: &str,
                       pattern: Option<String>,
                       default: Regex,
                       group: Option<&str>| {
            let Some(pattern) = pattern else {
                return Ok(default);
            };
            let regex = Regex::new(&pattern).map_err(|e| format!("[patterns] {field}: {e}"))?;
            match group {
                Some(group) if !regex.capture_names().flatten().any(|name| name == group) => Err(
                    format!("[patterns] {field}: needs a `(?P<{group}>…)` group"),
                ),
                _ => Ok(regex),
            }
        };
        Ok(Patterns {
            boot: compile("boot", self.boot, defaults.boot, Some("version"))?,
            relay: compile("relay", self.relay, defaults.relay, Some("state"))?,
            state: compile("state", self.state, defaults.state, Some("state"))?,
            warning: compile("warning", self.warning, defaults.warning, None)?,
            config_saved: compile(
                "config_saved",
                self.config_saved,
                defaults.config_saved,
                None,
            )?,
            config_refused: compile(
                "config_refused",
                self.config_refused,
                defaults.config_refused,
                None,
            )?,
        })
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct FlashFile {
    app_offset: u32,
    size: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn state_and_warning_lines_become_events() {
        let patterns = Patterns::light_controller();
        assert_eq!(
            patterns.report("lamp", "HIL state=ACTIVE"),
            Some(EventBody::BoardState {
                board: "lamp".into(),
                state: "ACTIVE".into()
            })
        );
        assert_eq!(
            patterns.report("lamp", "HIL warn=invalid_payload"),
            Some(EventBody::BoardWarning {
                board: "lamp".into(),
                warning: "invalid_payload".into()
            })
        );
        assert_eq!(patterns.report("lamp", "HIL relay=on"), None);
    }

    #[test]
    fn every_bundled_profile_loads() {
        for name in known_names().into_iter().filter(|name| !simulated(name)) {
            let profile = Profile::bundled(name).unwrap();
            assert_eq!(profile.name, name);
            assert_eq!(profile.flash_size, 4 << 20);
        }
    }

    #[test]
    fn the_pty_profile_resets_through_the_control_socket() {
        let profile = Profile::bundled("sim-pty").unwrap();
        assert_eq!(profile.reset, Sequence::Control(Control::Reset));
        assert_eq!(profile.bootloader, Sequence::Control(Control::Bootloader));
    }

    #[test]
    fn classic_auto_reset_holds_en_low_then_releases_it() {
        let profile = Profile::bundled("nodemcu-esp8266").unwrap();
        assert_eq!(
            profile.reset,
            Sequence::Lines(vec![
                LineStep::Set {
                    dtr: Some(false),
                    rts: Some(true)
                },
                LineStep::Wait(Duration::from_millis(100)),
                LineStep::Set {
                    dtr: None,
                    rts: Some(false)
                },
            ])
        );
        assert_eq!(profile.usb[0], (0x1a86, 0x7523));
    }

    #[test]
    fn default_patterns_read_the_light_controller() {
        let patterns = Patterns::default();
        assert_eq!(
            patterns.boot_version("HIL boot fw=light-controller version=1.4.0"),
            Some("1.4.0")
        );
        assert_eq!(patterns.boot_version("HIL relay=on"), None);
        assert_eq!(patterns.relay_on("HIL relay=on"), Some(true));
        assert_eq!(patterns.relay_on("HIL relay=off"), Some(false));
        assert_eq!(patterns.relay_on("HIL state=ACTIVE"), None);
    }

    #[test]
    fn another_firmware_is_a_profile_not_code() {
        let text = r#"
            chip = "esp32c3"
            [reset]
            control = "reset"
            [bootloader]
            control = "bootloader"
            [patterns]
            boot = '^tasmota (?P<version>[\d.]+)'
            relay = '^POWER (?P<state>ON|OFF)$'
            [commands]
            press = "Power TOGGLE"
            [flash]
            app_offset = 0x10000
            size = "4MB"
        "#;
        let profile = Profile::parse("tasmota", text, "tasmota.toml").unwrap();
        assert_eq!(
            profile.patterns.boot_version("tasmota 13.2.0"),
            Some("13.2.0")
        );
        assert_eq!(profile.patterns.relay_on("POWER ON"), Some(true));
        assert_eq!(profile.commands.press, "Power TOGGLE");
        assert_eq!(profile.commands.status, "status");
    }

    #[test]
    fn mistakes_are_named_with_their_place() {
        let missing_group = r#"
            [reset]
            control = "reset"
            [bootloader]
            control = "bootloader"
            [patterns]
            relay = '^relay (on|off)$'
            [flash]
            app_offset = 0
            size = "4MB"
        "#;
        let error = Profile::parse("x", missing_group, "x.toml").unwrap_err();
        assert!(error.to_string().contains("(?P<state>"), "{error}");

        let typo = "baud = 115200\nbuad = 9600\n";
        let error = Profile::parse("x", typo, "x.toml").unwrap_err();
        assert!(error.to_string().contains("line 2, column 1"), "{error}");

        let both = "[reset]\ncontrol = \"reset\"\nsteps = []\n[bootloader]\ncontrol = \"b\"\n[flash]\napp_offset = 0\nsize = \"4MB\"\n";
        let error = Profile::parse("x", both, "x.toml").unwrap_err();
        assert!(error.to_string().contains("exactly one"), "{error}");
    }
}
