//! One user per serial port: two `hil` processes (or two scenarios of one run) never
//! drive one board at once.
//!
//! The lock is an advisory `flock` on a file named after the port in the system's
//! temporary folder, holding who took it, so the one who waits can say who is in the
//! way. The kernel drops the lock when its holder exits, however it exits.

use std::fs::{File, OpenOptions, TryLockError};
use std::io::{Read, Seek, Write};
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// How often a waiting process tries again.
const RETRY: Duration = Duration::from_millis(50);

/// A held port; dropping it releases the port.
#[derive(Debug)]
pub struct PortLock {
    _file: File,
}

#[derive(Debug, thiserror::Error)]
pub enum LockError {
    #[error("{port} is in use by {holder}; waited {waited} (raise it with --lock-timeout)")]
    Busy {
        port: String,
        holder: String,
        waited: String,
    },
    #[error("cannot lock {port}: {source} (lock file {lock_file})")]
    Io {
        port: String,
        lock_file: String,
        source: std::io::Error,
    },
}

impl PortLock {
    /// Takes the port's lock, waiting up to `timeout` for its holder to let go.
    pub fn acquire(port: &Path, timeout: Duration) -> Result<PortLock, LockError> {
        let path = lock_file(port);
        let io_error = |source| LockError::Io {
            port: port.display().to_string(),
            lock_file: path.display().to_string(),
            source,
        };
        if let Some(dir) = path.parent() {
            lock_dir(dir).map_err(io_error)?;
        }
        // Never through a symlink: another user could point one at a file of ours,
        // which taking the lock would then truncate.
        let mut file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .mode(0o666)
            .custom_flags(rustix::fs::OFlags::NOFOLLOW.bits() as i32)
            .open(&path)
            .map_err(io_error)?;
        // Past the umask, so another user's hil can take the lock too; only the file's
        // owner may change it, and for anyone else it already is so.
        let _ = file.set_permissions(std::fs::Permissions::from_mode(0o666));
        let started = Instant::now();
        loop {
            match file.try_lock() {
                Ok(()) => break,
                Err(TryLockError::WouldBlock) if started.elapsed() < timeout => {
                    std::thread::sleep(RETRY.min(timeout.saturating_sub(started.elapsed())));
                }
                Err(TryLockError::WouldBlock) => {
                    return Err(LockError::Busy {
                        port: port.display().to_string(),
                        holder: holder(&mut file),
                        waited: humantime::format_duration(timeout).to_string(),
                    })
                }
                Err(TryLockError::Error(source)) => return Err(io_error(source)),
            }
        }
        file.set_len(0).map_err(io_error)?;
        file.rewind().map_err(io_error)?;
        writeln!(file, "{}", whoami()).map_err(io_error)?;
        Ok(PortLock { _file: file })
    }
}

/// `/tmp/hil-locks/dev_ttyUSB0.lock`: one file per port; a symlinked port (the virtual
/// chip's `--link`) locks the device it points at.
fn lock_file(port: &Path) -> PathBuf {
    let device = std::fs::canonicalize(port).unwrap_or_else(|_| port.to_path_buf());
    let name: String = device
        .to_string_lossy()
        .trim_start_matches('/')
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
        .collect();
    std::env::temp_dir()
        .join("hil-locks")
        .join(format!("{name}.lock"))
}

/// The shared folder of lock files: made world-writable and sticky, like /tmp, so that
/// every user's hil sees every lock and none can remove another's; a symlink in its place
/// is refused.
fn lock_dir(dir: &Path) -> std::io::Result<()> {
    match std::fs::symlink_metadata(dir) {
        Ok(meta) if meta.is_dir() => Ok(()),
        Ok(_) => Err(std::io::Error::other(format!(
            "{} is not a folder (a symlink?); remove it",
            dir.display()
        ))),
        Err(_) => {
            std::fs::create_dir_all(dir)?;
            std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o1777))
        }
    }
}

fn whoami() -> String {
    let command: Vec<String> = std::env::args().collect();
    format!("pid {} ({})", std::process::id(), command.join(" "))
}

fn holder(file: &mut File) -> String {
    let mut text = String::new();
    let _ = file.rewind().and_then(|()| file.read_to_string(&mut text));
    match text.trim() {
        "" => "another process".to_string(),
        holder => holder.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_second_user_waits_then_names_the_first() {
        let dir = tempfile::tempdir().unwrap();
        let port = dir.path().join("ttyTEST");
        std::fs::write(&port, "").unwrap();
        let first = PortLock::acquire(&port, Duration::ZERO).unwrap();
        let error = PortLock::acquire(&port, Duration::from_millis(120)).unwrap_err();
        let text = error.to_string();
        assert!(
            text.contains(&format!("pid {}", std::process::id())),
            "{text}"
        );
        assert!(text.contains("waited 120ms"), "{text}");
        drop(first);
        PortLock::acquire(&port, Duration::ZERO).unwrap();
    }

    #[test]
    fn a_lock_file_that_is_a_symlink_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let port = dir.path().join("ttyPLANTED");
        std::fs::write(&port, "").unwrap();
        let victim = dir.path().join("precious");
        std::fs::write(&victim, "keep me").unwrap();
        let planted = lock_file(&port);
        lock_dir(planted.parent().unwrap()).unwrap();
        let _ = std::fs::remove_file(&planted);
        std::os::unix::fs::symlink(&victim, &planted).unwrap();
        let result = PortLock::acquire(&port, Duration::ZERO);
        std::fs::remove_file(&planted).unwrap();
        assert!(matches!(result, Err(LockError::Io { .. })), "{result:?}");
        assert_eq!(std::fs::read_to_string(&victim).unwrap(), "keep me");
    }

    #[test]
    fn a_symlink_locks_the_device_it_points_at() {
        let dir = tempfile::tempdir().unwrap();
        let device = dir.path().join("pts7");
        std::fs::write(&device, "").unwrap();
        let link = dir.path().join("lamp");
        std::os::unix::fs::symlink(&device, &link).unwrap();
        let _held = PortLock::acquire(&device, Duration::ZERO).unwrap();
        assert!(matches!(
            PortLock::acquire(&link, Duration::ZERO),
            Err(LockError::Busy { .. })
        ));
    }
}
