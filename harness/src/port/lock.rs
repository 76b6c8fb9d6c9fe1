//! One user per serial port: two `hil` processes (or two scenarios of one run) never
//! drive one board at once.
//!
//! The lock is an advisory `flock` on a file named after the port in the system's
//! temporary folder, holding who took it, so the one who waits can say who is in the
//! way. The kernel drops the lock when its holder exits, however it exits.

use std::fs::{File, OpenOptions, TryLockError};
use std::io::{Read, Seek, Write};
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
            std::fs::create_dir_all(dir).map_err(io_error)?;
        }
        let mut file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&path)
            .map_err(io_error)?;
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
