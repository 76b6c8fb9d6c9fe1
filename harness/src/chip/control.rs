//! The virtual chip's control channel: what DTR/RTS and a cable do on a real bench,
//! which a pty cannot carry (its modem-line ioctls fail with ENOTTY).
//!
//! A Unix stream socket at `LINK.ctl`. One command per line; the chip answers each with
//! one line, `ok` once the command took effect (`unplug`: before the cable is pulled,
//! as nothing answers after) or `error: ...`:
//!
//! ```text
//! reset        EN pulse: the chip reboots from flash
//! bootloader   reset with the boot strap held: the chip waits in the serial loader
//! hold         hold EN low: the chip stops at once, as on power loss (its MQTT
//!              connection drops without DISCONNECT, the console falls silent) until
//!              the next reset or bootloader
//! unplug       pull the cable: the pty closes and the virtual chip ends
//! ```

use std::fmt;
use std::io::{self, BufRead, BufReader, Write};
use std::os::unix::fs::FileTypeExt;
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, AsyncWriteExt};
use tokio::net::{UnixListener, UnixStream as AsyncUnixStream};
use tokio::sync::{mpsc, oneshot};

/// A command on the control channel.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Control {
    Reset,
    Bootloader,
    Hold,
    Unplug,
}

impl Control {
    const ALL: [Control; 4] = [
        Control::Reset,
        Control::Bootloader,
        Control::Hold,
        Control::Unplug,
    ];

    pub fn word(self) -> &'static str {
        match self {
            Control::Reset => "reset",
            Control::Bootloader => "bootloader",
            Control::Hold => "hold",
            Control::Unplug => "unplug",
        }
    }
}

impl fmt::Display for Control {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.word())
    }
}

impl FromStr for Control {
    type Err = String;

    fn from_str(word: &str) -> Result<Control, String> {
        Control::ALL
            .into_iter()
            .find(|c| c.word() == word)
            .ok_or_else(|| format!("unknown command {word:?}: reset, bootloader, hold or unplug"))
    }
}

/// The path of the control socket that belongs to the port at `port`.
pub fn socket_path(port: &Path) -> PathBuf {
    let mut path = port.as_os_str().to_owned();
    path.push(".ctl");
    PathBuf::from(path)
}

/// A command for the chip, and where to say it was carried out.
pub type Request = (Control, oneshot::Sender<()>);

/// The listening socket; removed again on drop.
pub struct ControlSocket {
    listener: UnixListener,
    path: PathBuf,
    /// Holds the socket when no `--link` gave it a place.
    _dir: Option<tempfile::TempDir>,
}

impl ControlSocket {
    /// Listens at `path`, or in a fresh temporary directory. A leftover socket at `path`
    /// (from a run that was killed) is replaced; anything else there is reported.
    pub fn bind(path: Option<PathBuf>) -> Result<ControlSocket, String> {
        let (path, dir) = match path {
            Some(path) => (path, None),
            None => {
                let dir = tempfile::Builder::new()
                    .prefix("hil-chip-")
                    .tempdir()
                    .map_err(|e| {
                        format!("cannot create a directory for the control socket: {e}")
                    })?;
                (dir.path().join("ctl"), Some(dir))
            }
        };
        match std::fs::symlink_metadata(&path) {
            Ok(meta) if meta.file_type().is_socket() => std::fs::remove_file(&path)
                .map_err(|e| format!("cannot replace the old socket {}: {e}", path.display()))?,
            Ok(_) => {
                return Err(format!(
                    "{} exists and is not a socket; remove it or choose another --link",
                    path.display()
                ))
            }
            Err(_) => {}
        }
        let listener = UnixListener::bind(&path)
            .map_err(|e| format!("cannot listen on {}: {e}", path.display()))?;
        Ok(ControlSocket {
            listener,
            path,
            _dir: dir,
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Accepts connections; each line on one becomes a request. Returns only if the
    /// socket fails.
    pub async fn serve(&self, requests: &mpsc::Sender<Request>) -> io::Error {
        loop {
            match self.listener.accept().await {
                Ok((stream, _)) => {
                    tokio::spawn(serve_connection(stream, requests.clone()));
                }
                Err(error) => return error,
            }
        }
    }
}

impl Drop for ControlSocket {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

async fn serve_connection(stream: AsyncUnixStream, requests: mpsc::Sender<Request>) {
    let (read, mut write) = stream.into_split();
    let mut lines = tokio::io::BufReader::new(read).lines();
    while let Ok(Some(line)) = lines.next_line().await {
        let reply = match line.trim().parse::<Control>() {
            Err(error) => format!("error: {error}\n"),
            Ok(Control::Unplug) => {
                // Nothing answers once the cable is out.
                let _ = write.write_all(b"ok\n").await;
                let (done, _) = oneshot::channel();
                let _ = requests.send((Control::Unplug, done)).await;
                return;
            }
            Ok(command) => {
                let (done, carried_out) = oneshot::channel();
                let sent = requests.send((command, done)).await.is_ok();
                if sent && carried_out.await.is_ok() {
                    "ok\n".to_string()
                } else {
                    "error: the chip stopped\n".to_string()
                }
            }
        };
        if write.write_all(reply.as_bytes()).await.is_err() {
            return;
        }
    }
}

/// Why a command on a control socket did not take effect.
#[derive(Debug, thiserror::Error)]
pub enum ControlError {
    #[error("control socket {}: {source} (is the virtual chip running? `hil sim --pty` makes the socket)", socket.display())]
    Io { socket: PathBuf, source: io::Error },
    #[error("control socket {} did not answer `{command}` within {}s", socket.display(), within.as_secs_f32())]
    Silent {
        socket: PathBuf,
        command: Control,
        within: Duration,
    },
    #[error("control socket {} closed without answering `{command}`", socket.display())]
    Closed { socket: PathBuf, command: Control },
    #[error("control socket {} refused `{command}`: {answer}", socket.display())]
    Refused {
        socket: PathBuf,
        command: Control,
        answer: String,
    },
}

/// Sends one command to a virtual chip and waits (at most `timeout`) for its answer.
pub fn send(socket: &Path, command: Control, timeout: Duration) -> Result<(), ControlError> {
    let fail = |source: io::Error| match source.kind() {
        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut => ControlError::Silent {
            socket: socket.to_path_buf(),
            command,
            within: timeout,
        },
        _ => ControlError::Io {
            socket: socket.to_path_buf(),
            source,
        },
    };
    let mut stream = UnixStream::connect(socket).map_err(fail)?;
    stream.set_read_timeout(Some(timeout)).map_err(fail)?;
    stream.set_write_timeout(Some(timeout)).map_err(fail)?;
    writeln!(stream, "{command}").map_err(fail)?;
    let mut reply = String::new();
    BufReader::new(stream).read_line(&mut reply).map_err(fail)?;
    match reply.trim() {
        "ok" => Ok(()),
        "" => Err(ControlError::Closed {
            socket: socket.to_path_buf(),
            command,
        }),
        other => Err(ControlError::Refused {
            socket: socket.to_path_buf(),
            command,
            answer: other.to_string(),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn commands_parse_and_print_as_their_word() {
        for command in Control::ALL {
            assert_eq!(command.word().parse::<Control>(), Ok(command));
        }
        assert!("reboot"
            .parse::<Control>()
            .unwrap_err()
            .contains("reset, bootloader"));
    }

    #[test]
    fn the_socket_sits_beside_the_port() {
        assert_eq!(
            socket_path(Path::new("/tmp/bench/c3")),
            PathBuf::from("/tmp/bench/c3.ctl")
        );
    }
}
