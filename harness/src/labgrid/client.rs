//! `labgrid-client`, run as a child process with a deadline on every call: what it
//! prints on stdout is the answer, the last line of its stderr the reason for a refusal.

use std::io::Read;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use wait_timeout::ChildExt;

use super::LabgridError;

/// How `ci/test.sh` installs labgrid where hil looks for it.
pub const INSTALL: &str =
    "ci/test.sh (it creates ${HIL_VENV:-~/.cache/hil/venv} with `pip install labgrid`), \
     or point HIL_LABGRID_CLIENT at a labgrid-client";

/// One call to the coordinator answers in well under a second on a quiet farm; this only
/// bounds a coordinator that stopped answering.
pub const CALL_DEADLINE: Duration = Duration::from_secs(15);

/// labgrid's own default when neither `--labgrid-coordinator` nor `LG_COORDINATOR` says.
pub const DEFAULT_COORDINATOR: &str = "127.0.0.1:20408";

/// labgrid's client, pointed at one coordinator.
#[derive(Debug, Clone)]
pub struct Client {
    program: PathBuf,
    coordinator: String,
}

impl Client {
    /// `HIL_LABGRID_CLIENT`, the test venv, or `labgrid-client` on the PATH.
    pub fn find(coordinator: &str) -> Result<Client, LabgridError> {
        let program = crate::venv::find("HIL_LABGRID_CLIENT", "labgrid-client", INSTALL)
            .map_err(LabgridError::NotInstalled)?;
        Ok(Client {
            program,
            coordinator: coordinator.to_string(),
        })
    }

    pub fn program(&self) -> &std::path::Path {
        &self.program
    }

    pub fn coordinator(&self) -> &str {
        &self.coordinator
    }

    /// A `labgrid-client -x COORDINATOR ARGS…` ready to start, printing as it goes.
    pub fn command(&self, args: &[&str]) -> Command {
        let mut command = Command::new(&self.program);
        command
            .arg("-x")
            .arg(&self.coordinator)
            .args(args)
            // Lines as they are printed, not when Python's pipe buffer fills.
            .env("PYTHONUNBUFFERED", "1")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        command
    }

    /// Runs `labgrid-client ARGS…` and returns what it printed, or why it refused.
    pub fn call(&self, args: &[&str]) -> Result<String, LabgridError> {
        self.call_within(args, CALL_DEADLINE)
    }

    /// Like [`Client::call`], with its own deadline (a wait for a reservation).
    pub fn call_within(&self, args: &[&str], within: Duration) -> Result<String, LabgridError> {
        let child = self.start(args)?;
        self.answer(args, child, within)
    }

    /// Two calls at once (each client spends most of its time starting Python), both
    /// answers in order.
    pub fn call_both(
        &self,
        first: &[&str],
        second: &[&str],
    ) -> (Result<String, LabgridError>, Result<String, LabgridError>) {
        let (one, two) = (self.start(first), self.start(second));
        (
            one.and_then(|child| self.answer(first, child, CALL_DEADLINE)),
            two.and_then(|child| self.answer(second, child, CALL_DEADLINE)),
        )
    }

    fn start(&self, args: &[&str]) -> Result<Child, LabgridError> {
        self.command(args).spawn().map_err(|e| {
            LabgridError::NotInstalled(format!(
                "cannot start {} ({e}); install labgrid with {INSTALL}",
                self.program.display()
            ))
        })
    }

    fn answer(
        &self,
        args: &[&str],
        child: Child,
        within: Duration,
    ) -> Result<String, LabgridError> {
        let what = format!("labgrid-client {}", args.join(" "));
        match finish(child, within) {
            Finished::Done {
                success: true,
                stdout,
                ..
            } => Ok(stdout),
            Finished::Done { stderr, .. } => Err(self.refusal(&what, &stderr)),
            Finished::Late => Err(LabgridError::Silent {
                command: what,
                within: humantime::format_duration(within).to_string(),
            }),
        }
    }

    /// labgrid's own reason, one line; an unreachable coordinator said as such.
    fn refusal(&self, what: &str, stderr: &str) -> LabgridError {
        if stderr.contains("Could not connect to coordinator") {
            return LabgridError::Unreachable {
                coordinator: self.coordinator.clone(),
            };
        }
        let said = stderr
            .lines()
            .map(str::trim)
            .rfind(|line| !line.is_empty())
            .unwrap_or("no reason given")
            .trim_start_matches("labgrid-client: ")
            .to_string();
        LabgridError::Refused {
            command: what.to_string(),
            said,
        }
    }
}

enum Finished {
    Done {
        success: bool,
        stdout: String,
        stderr: String,
    },
    /// Still running at the deadline: killed.
    Late,
}

/// Waits up to `within` for `child`, reading its pipes meanwhile (so a chatty child
/// never blocks on a full pipe); kills it at the deadline.
fn finish(mut child: Child, within: Duration) -> Finished {
    let drain = |pipe: Option<Box<dyn Read + Send>>| {
        std::thread::spawn(move || {
            let mut text = String::new();
            if let Some(mut pipe) = pipe {
                let _ = pipe.read_to_string(&mut text);
            }
            text
        })
    };
    let stdout = drain(
        child
            .stdout
            .take()
            .map(|p| Box::new(p) as Box<dyn Read + Send>),
    );
    let stderr = drain(
        child
            .stderr
            .take()
            .map(|p| Box::new(p) as Box<dyn Read + Send>),
    );
    let status = match child.wait_timeout(within) {
        Ok(Some(status)) => status,
        Ok(None) | Err(_) => {
            let _ = child.kill();
            let _ = child.wait();
            return Finished::Late;
        }
    };
    Finished::Done {
        success: status.success(),
        stdout: stdout.join().unwrap_or_default(),
        stderr: stderr.join().unwrap_or_default(),
    }
}
