//! The virtual chip's end of the cable: a pseudo-terminal whose slave (`/dev/pts/N`) is
//! the serial port hosts open, and an optional symlink to it with a stable name.

use std::ffi::OsStr;
use std::io;
use std::os::fd::OwnedFd;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use rustix::fs::{Mode, OFlags};
use rustix::pty::OpenptFlags;
use rustix::termios::OptionalActions;
use tokio::io::unix::AsyncFd;
use tokio::time::{timeout_at, Instant};

/// A write that the host does not drain within this long is dropped, as bytes sent down
/// a UART nobody listens to are lost.
const WRITE_DEADLINE: Duration = Duration::from_secs(2);

/// The master side, and the slave kept open so that the master never reads EIO while
/// no host has the port open (between esptool runs, say).
pub struct Pty {
    master: AsyncFd<OwnedFd>,
    slave: OwnedFd,
    path: PathBuf,
}

impl Pty {
    /// A raw (no echo, no line editing) pseudo-terminal, its slave readable and
    /// writable by the owner only.
    pub fn open() -> io::Result<Pty> {
        let master =
            rustix::pty::openpt(OpenptFlags::RDWR | OpenptFlags::NOCTTY | OpenptFlags::CLOEXEC)?;
        rustix::pty::grantpt(&master)?;
        rustix::pty::unlockpt(&master)?;
        let name = rustix::pty::ptsname(&master, Vec::new())?;
        let path = PathBuf::from(OsStr::from_bytes(name.as_bytes()));
        let slave = rustix::fs::open(
            &path,
            OFlags::RDWR | OFlags::NOCTTY | OFlags::CLOEXEC,
            Mode::empty(),
        )?;
        let mut termios = rustix::termios::tcgetattr(&slave)?;
        termios.make_raw();
        rustix::termios::tcsetattr(&slave, OptionalActions::Now, &termios)?;
        rustix::fs::fchmod(&slave, Mode::from_raw_mode(0o600))?;
        rustix::fs::fcntl_setfl(&master, OFlags::NONBLOCK)?;
        // SAFETY: the OwnedFd is a valid open descriptor, and the AsyncFd owns it from
        // here on: nothing else closes or replaces it while it is registered.
        let master = unsafe { AsyncFd::register(master)? };
        Ok(Pty {
            master,
            slave,
            path,
        })
    }

    /// `/dev/pts/N`.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The baud rate the host last set on its end (both ends share one termios).
    pub fn baud(&self) -> io::Result<u32> {
        Ok(rustix::termios::tcgetattr(&self.slave)?.output_speed())
    }

    pub fn set_baud(&self, baud: u32) -> io::Result<()> {
        let mut termios = rustix::termios::tcgetattr(&self.slave)?;
        termios.set_speed(baud)?;
        Ok(rustix::termios::tcsetattr(
            &self.slave,
            OptionalActions::Now,
            &termios,
        )?)
    }

    /// Waits for bytes from the host.
    pub async fn read(&self, buf: &mut [u8]) -> io::Result<usize> {
        loop {
            let mut ready = self.master.readable().await?;
            if let Ok(result) = ready.try_io(|fd| Ok(rustix::io::read(fd.get_ref(), &mut *buf)?)) {
                return result;
            }
        }
    }

    /// Sends bytes to the host; fails with `TimedOut` when the host stops draining them.
    pub async fn write_all(&self, mut bytes: &[u8]) -> io::Result<()> {
        let deadline = Instant::now() + WRITE_DEADLINE;
        while !bytes.is_empty() {
            let mut ready = timeout_at(deadline, self.master.writable())
                .await
                .map_err(|_| {
                    io::Error::new(
                        io::ErrorKind::TimedOut,
                        format!("nobody read the port for {WRITE_DEADLINE:?}"),
                    )
                })??;
            if let Ok(written) = ready.try_io(|fd| Ok(rustix::io::write(fd.get_ref(), bytes)?)) {
                bytes = &bytes[written?..];
            }
        }
        Ok(())
    }
}

/// A symlink to the pty, removed again on drop (socat's `link=`).
pub struct Link {
    path: PathBuf,
}

impl Link {
    /// Links `path` to `target`. A leftover symlink at `path` (from a run that was
    /// killed) is replaced; anything else there is left alone and reported.
    pub fn create(path: &Path, target: &Path) -> Result<Link, String> {
        match std::fs::symlink_metadata(path) {
            Ok(meta) if meta.file_type().is_symlink() => std::fs::remove_file(path)
                .map_err(|e| format!("cannot replace the old link {}: {e}", path.display()))?,
            Ok(_) => {
                return Err(format!(
                    "{} exists and is not a symlink; remove it or choose another --link",
                    path.display()
                ))
            }
            Err(_) => {}
        }
        std::os::unix::fs::symlink(target, path).map_err(|e| {
            format!(
                "cannot create the link {} -> {}: {e}",
                path.display(),
                target.display()
            )
        })?;
        Ok(Link {
            path: path.to_path_buf(),
        })
    }
}

impl Drop for Link {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}
