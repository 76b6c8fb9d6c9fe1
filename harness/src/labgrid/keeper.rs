//! The keeper: a small `hil labgrid-keeper` child that gives back a reservation (and the
//! place, once acquired) when the `hil` that made it is gone, however it went. Its stdin
//! is a pipe from that `hil`; end of input, whether the holder dropped it or the kernel
//! closed it after a crash or a SIGKILL, is the signal to release and cancel. It runs in
//! a process group of its own, so the Ctrl-C that stops `hil` does not stop it too.

use std::io::{BufRead, Write};
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Child, ChildStdin, Command, Stdio};
use std::time::Duration;

use wait_timeout::ChildExt;

use super::client::{Client, CALL_DEADLINE};
use super::LabgridError;

/// What the holder says on the pipe once the place is acquired.
const ACQUIRED: &str = "acquired";

/// The holder's end of a running keeper.
pub struct Keeper {
    child: Child,
    pipe: Option<ChildStdin>,
}

impl Keeper {
    /// Starts `hil labgrid-keeper` for reservation `token`.
    pub fn spawn(hil: &Path, client: &Client, token: &str) -> Result<Keeper, LabgridError> {
        let mut child = Command::new(hil)
            .args([
                "labgrid-keeper",
                "--coordinator",
                client.coordinator(),
                token,
            ])
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .process_group(0)
            .spawn()
            .map_err(|e| LabgridError::Keeper(format!("cannot start {}: {e}", hil.display())))?;
        let pipe = child.stdin.take();
        Ok(Keeper { child, pipe })
    }

    /// From now on the keeper releases the place as well.
    pub fn acquired(&mut self) -> Result<(), LabgridError> {
        let pipe = self.pipe.as_mut().expect("the pipe is open until release");
        writeln!(pipe, "{ACQUIRED}")
            .and_then(|()| pipe.flush())
            .map_err(|e| LabgridError::Keeper(format!("the keeper stopped early: {e}")))
    }

    /// Ends the pipe and waits until the keeper has given everything back.
    pub fn release(&mut self) {
        self.pipe.take();
        // Two calls (release, cancel), each with its own deadline.
        match self
            .child
            .wait_timeout(CALL_DEADLINE * 2 + Duration::from_secs(1))
        {
            Ok(Some(_)) => {}
            _ => {
                let _ = self.child.kill();
                let _ = self.child.wait();
            }
        }
    }
}

impl Drop for Keeper {
    fn drop(&mut self) {
        self.release();
    }
}

/// The keeper's side: waits for the end of stdin, then releases the place (if the
/// holder acquired it) and cancels the reservation. Returns what could not be given back.
pub fn serve(client: &Client, token: &str) -> Result<(), String> {
    let mut acquired = false;
    for line in std::io::stdin().lock().lines() {
        match line {
            Ok(line) if line == ACQUIRED => acquired = true,
            Ok(_) => {}
            Err(_) => break,
        }
    }
    let place = format!("+{token}");
    let mut left = Vec::new();
    if acquired {
        if let Err(e) = client.call(&["-p", &place, "release"]) {
            left.push(format!(
                "the place of reservation {token} is still acquired ({e}); free it with \
                 `labgrid-client -p +{token} release --kick`"
            ));
        }
    }
    if let Err(e) = client.call(&["cancel-reservation", token]) {
        left.push(format!(
            "reservation {token} is still there ({e}); labgrid drops it 60 s after its last \
             use, or `labgrid-client cancel-reservation {token}`"
        ));
    }
    if left.is_empty() {
        Ok(())
    } else {
        Err(left.join("; "))
    }
}
