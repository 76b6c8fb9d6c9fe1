//! The light controller as `firmware/README.md` describes it, written again in Rust,
//! without the C core: the oracle an explored run is judged by. It takes the inputs a
//! board gets (commands delivered to it, presses, power loss, connections) and says
//! what the board must do.

/// What a command payload means to the firmware.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Command {
    On,
    Off,
    /// Anything else: `HIL warn=invalid_payload`, nothing changes.
    Invalid,
}

impl Command {
    /// "The payload, trimmed of ASCII whitespace, is `on` or `off` in any letter case."
    pub fn parse(payload: &[u8]) -> Command {
        let trimmed = payload.trim_ascii();
        if trimmed.eq_ignore_ascii_case(b"on") {
            Command::On
        } else if trimmed.eq_ignore_ascii_case(b"off") {
            Command::Off
        } else {
            Command::Invalid
        }
    }
}

/// What the model expects the board to do next, besides the relay.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Expect {
    /// Publish `T/state` with this payload (now, when connected).
    pub state: Option<&'static str>,
    /// Publish `T` with this payload (a press).
    pub switch: Option<&'static str>,
    /// Print `HIL warn=invalid_payload`.
    pub warning: bool,
}

/// One board's state, as the contract defines it.
#[derive(Debug, Clone, Default)]
pub struct Board {
    pub relay: bool,
    /// A press not yet published on `T` (the switch changed while offline).
    pub pending: bool,
    /// Connected to the broker (CONNACK seen, the connection not ended).
    pub connected: bool,
}

pub fn on_off(on: bool) -> &'static str {
    if on {
        "on"
    } else {
        "off"
    }
}

impl Board {
    /// Power-on and reset: "relay off"; what was in RAM is gone.
    pub fn power_loss(&mut self) {
        *self = Board::default();
    }

    /// A command on `T` delivered to the board.
    pub fn command(&mut self, payload: &[u8]) -> Expect {
        let wanted = match Command::parse(payload) {
            Command::Invalid => {
                return Expect {
                    warning: true,
                    ..Expect::default()
                }
            }
            Command::On => true,
            Command::Off => false,
        };
        if wanted == self.relay {
            // "The same state again does nothing."
            return Expect::default();
        }
        self.relay = wanted;
        Expect {
            state: self.connected.then_some(on_off(wanted)),
            ..Expect::default()
        }
    }

    /// A (debounced) press: toggles at once, published on `T` and `T/state` when
    /// connected, otherwise on `T` after the next connect.
    pub fn press(&mut self) -> Expect {
        self.relay = !self.relay;
        let now = on_off(self.relay);
        self.pending = true;
        Expect {
            state: self.connected.then_some(now),
            switch: Some(now),
            warning: false,
        }
    }

    /// CONNACK: `T/status` online, then `T` if a press waits, then `T/state`.
    pub fn connected(&mut self) -> Expect {
        self.connected = true;
        Expect {
            state: Some(on_off(self.relay)),
            switch: self.pending.then_some(on_off(self.relay)),
            warning: false,
        }
    }

    /// The board published `payload` on `T`: what a press left to publish is done when
    /// it says the relay's state; `false` when no press asked for it (a command never
    /// makes the device publish on `T`).
    pub fn published_switch(&mut self, payload: &[u8]) -> bool {
        if self.pending && payload == on_off(self.relay).as_bytes() {
            self.pending = false;
            true
        } else {
            false
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn commands_are_trimmed_and_read_in_any_case() {
        for on in [&b"on"[..], b"ON", b" oN\n", b"\ton\r"] {
            assert_eq!(Command::parse(on), Command::On, "{on:?}");
        }
        assert_eq!(Command::parse(b"Off "), Command::Off);
        for bad in [&b""[..], b"toggle", b"onn", b"o n", b"1", b"\xff"] {
            assert_eq!(Command::parse(bad), Command::Invalid, "{bad:?}");
        }
    }

    #[test]
    fn a_board_follows_commands_once_and_presses_wait_for_a_connection() {
        let mut board = Board::default();
        assert_eq!(board.connected().state, Some("off"));
        assert_eq!(board.command(b"ON").state, Some("on"));
        assert_eq!(board.command(b"on"), Expect::default(), "same state again");
        assert!(board.command(b"toggle").warning);
        board.connected = false;
        let press = board.press();
        assert_eq!((press.switch, press.state), (Some("off"), None));
        assert!(!board.published_switch(b"on"), "not the relay's state");
        let connect = board.connected();
        assert_eq!(connect.switch, Some("off"));
        assert!(board.published_switch(b"off"));
        assert!(!board.published_switch(b"off"), "published once");
        board.power_loss();
        assert!(!board.relay && !board.pending && !board.connected);
    }
}
