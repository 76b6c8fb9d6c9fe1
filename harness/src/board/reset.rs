//! How a board is reset, put into its serial loader, or held in reset: one abstraction
//! for every caller — `hil flash` before and after writing, and the serial board's
//! `reset` and `power_cycle` steps — so a profile's wiring is driven one way only.
//!
//! A [`BoardReset`] is a profile's sequences resolved for one port: DTR/RTS steps go to
//! whatever lines the port has (ioctls on a local port, RFC 2217 commands on a remote
//! one, both behind [`ModemLines`]); control commands go to the socket beside the port
//! (a virtual chip's `PORT.ctl`) or the one the bench config names. Driving is blocking,
//! as line changes and their pauses are; async callers run it on a blocking thread.
//! (espflash's `connection/reset.rs` is the model: a strategy per wiring, one way to run it.)

use std::path::{Path, PathBuf};
use std::time::Duration;

use super::profile::{LineStep, Profile, Sequence};
use crate::chip::{control_socket_path, send_control, Control, ControlError};
use crate::port::{LinesError, ModemLines, PortName};

/// A virtual chip answers a command at once; this bounds a hung one.
const CONTROL_DEADLINE: Duration = Duration::from_secs(5);

/// A board's reset wiring on one port.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BoardReset {
    reset: Sequence,
    bootloader: Sequence,
    /// Where `control` sequences go; `None` only when the profile has none.
    control: Option<PathBuf>,
}

/// Why a board could not be reset.
#[derive(Debug, thiserror::Error)]
pub enum ResetError {
    #[error("{0}; a port without modem lines needs a profile with `control` sequences")]
    Lines(#[from] LinesError),
    #[error(transparent)]
    Control(#[from] ControlError),
}

impl ResetError {
    /// A stable name for the kind of failure, for machine-readable reports.
    pub fn kind(&self) -> &'static str {
        match self {
            ResetError::Lines(_) => "port_io",
            ResetError::Control(_) => "control_socket",
        }
    }
}

impl BoardReset {
    /// The wiring `profile` describes, on `port`. Control commands go to the `configured`
    /// socket, else to the one beside a local port (`PORT.ctl`); a remote port has no
    /// "beside", so a profile with control sequences there needs one configured.
    pub fn for_port(
        profile: &Profile,
        port: &PortName,
        configured: Option<&Path>,
    ) -> Result<BoardReset, String> {
        let uses_control = [&profile.reset, &profile.bootloader]
            .iter()
            .any(|sequence| matches!(sequence, Sequence::Control(_)));
        let control = match (configured, port) {
            (Some(socket), _) => Some(socket.to_path_buf()),
            (None, PortName::Device(path)) if uses_control => Some(control_socket_path(path)),
            (None, PortName::Rfc2217(_)) if uses_control => {
                return Err(format!(
                    "profile {} resets the board through a control socket, which a remote port \
                     ({port}) has no place for: set `control = \"PATH\"` for this board in hil.toml",
                    profile.name
                ))
            }
            (None, _) => None,
        };
        Ok(BoardReset {
            reset: profile.reset.clone(),
            bootloader: profile.bootloader.clone(),
            control,
        })
    }

    /// A virtual chip's wiring: every line change is a command on its control `socket`.
    pub fn virtual_chip(socket: PathBuf) -> BoardReset {
        BoardReset {
            reset: Sequence::Control(Control::Reset),
            bootloader: Sequence::Control(Control::Bootloader),
            control: Some(socket),
        }
    }

    /// Pulses EN: the board reboots into its application.
    pub fn reset(&self, lines: &mut dyn ModemLines) -> Result<(), ResetError> {
        self.run(&self.reset, lines)
    }

    /// Resets with the boot strap held: the board waits in its serial loader.
    pub fn bootloader(&self, lines: &mut dyn ModemLines) -> Result<(), ResetError> {
        self.run(&self.bootloader, lines)
    }

    /// Holds EN low, as power loss stops a board, until the next reset: through the
    /// control socket when the reset goes there, else RTS (EN on the auto-reset circuit).
    pub fn hold(&self, lines: &mut dyn ModemLines) -> Result<(), ResetError> {
        let hold = match self.reset {
            Sequence::Control(_) => Sequence::Control(Control::Hold),
            Sequence::Lines(_) => Sequence::Lines(vec![LineStep::Set {
                dtr: None,
                rts: Some(true),
            }]),
        };
        self.run(&hold, lines)
    }

    fn run(&self, sequence: &Sequence, lines: &mut dyn ModemLines) -> Result<(), ResetError> {
        match sequence {
            Sequence::Control(command) => {
                let socket = self
                    .control
                    .as_deref()
                    .expect("for_port gives a socket to every profile with control sequences");
                Ok(send_control(socket, *command, CONTROL_DEADLINE)?)
            }
            Sequence::Lines(steps) => {
                for step in steps {
                    match *step {
                        LineStep::Set { dtr, rts } => {
                            if let Some(dtr) = dtr {
                                lines.set_dtr(dtr)?;
                            }
                            if let Some(rts) = rts {
                                lines.set_rts(rts)?;
                            }
                        }
                        LineStep::Wait(pause) => std::thread::sleep(pause),
                    }
                }
                Ok(())
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Lines that remember what was set, in order.
    #[derive(Default)]
    struct Recorded(Vec<(&'static str, bool)>);

    impl ModemLines for Recorded {
        fn set_dtr(&mut self, on: bool) -> Result<(), LinesError> {
            self.0.push(("dtr", on));
            Ok(())
        }

        fn set_rts(&mut self, on: bool) -> Result<(), LinesError> {
            self.0.push(("rts", on));
            Ok(())
        }
    }

    #[test]
    fn control_sockets_sit_beside_local_ports_or_are_configured() {
        let pty = Profile::bundled("sim-pty").unwrap();
        let local = PortName::Device("/tmp/bench/lamp".into());
        assert_eq!(
            BoardReset::for_port(&pty, &local, None),
            Ok(BoardReset::virtual_chip("/tmp/bench/lamp.ctl".into()))
        );
        let remote = PortName::Rfc2217("bench:4000".into());
        let error = BoardReset::for_port(&pty, &remote, None).unwrap_err();
        assert!(error.contains("control = "), "{error}");
        assert_eq!(
            BoardReset::for_port(&pty, &remote, Some(Path::new("/run/c3.ctl"))),
            Ok(BoardReset::virtual_chip("/run/c3.ctl".into()))
        );
        let lines = Profile::bundled("nodemcu-esp8266").unwrap();
        assert!(BoardReset::for_port(&lines, &remote, None).is_ok());
    }

    #[test]
    fn the_classic_circuit_pulses_en_and_holds_it_through_rts() {
        let profile = Profile::bundled("nodemcu-esp8266").unwrap();
        let wiring =
            BoardReset::for_port(&profile, &PortName::Device("/dev/ttyUSB0".into()), None).unwrap();
        let mut lines = Recorded::default();
        wiring.reset(&mut lines).unwrap();
        assert_eq!(lines.0, [("dtr", false), ("rts", true), ("rts", false)]);
        let mut lines = Recorded::default();
        wiring.hold(&mut lines).unwrap();
        assert_eq!(lines.0, [("rts", true)]);
    }

    #[test]
    fn a_virtual_chip_that_is_not_there_is_a_control_socket_failure() {
        let folder = tempfile::tempdir().unwrap();
        let wiring = BoardReset::virtual_chip(folder.path().join("gone.ctl"));
        let error = wiring.reset(&mut Recorded::default()).unwrap_err();
        assert_eq!(error.kind(), "control_socket");
        assert!(error.to_string().contains("gone.ctl"), "{error}");
    }
}
