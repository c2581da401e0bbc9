//! Processes by pid: liveness, identifying our launcher, and stopping it.

use std::fs;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;
use std::time::{Duration, Instant};

use rustix::io::Errno;
use rustix::process::{kill_process, test_kill_process, Pid, Signal};

use super::SandboxError;

const TERM_GRACE: Duration = Duration::from_secs(5);
const KILL_GRACE: Duration = Duration::from_secs(2);

/// SIGTERM, then SIGKILL after `TERM_GRACE`; returns once the process is gone.
/// The caller has checked that `pid` is our launcher.
pub(super) fn terminate(pid: u32) -> Result<(), SandboxError> {
    let Some(target) = to_pid(pid) else {
        return Ok(());
    };
    for (signal, grace) in [(Signal::TERM, TERM_GRACE), (Signal::KILL, KILL_GRACE)] {
        match kill_process(target, signal) {
            Ok(()) => {}
            Err(Errno::SRCH) => return Ok(()),
            Err(e) => {
                return Err(SandboxError::Stop {
                    pid,
                    source: e.into(),
                })
            }
        }
        if wait_for_exit(target, grace) {
            return Ok(());
        }
        if signal == Signal::TERM {
            tracing::warn!(
                pid,
                "moto server did not exit within {} s of SIGTERM; sending SIGKILL",
                TERM_GRACE.as_secs()
            );
        }
    }
    Err(SandboxError::StopTimeout {
        pid,
        waited: KILL_GRACE,
    })
}

fn wait_for_exit(pid: Pid, grace: Duration) -> bool {
    let mut backoff = Backoff::new(Instant::now() + grace);
    loop {
        // When this very process started the server (a test calling start
        // then stop), it is our child: reap it, or it lingers as a zombie.
        // For anyone else's child this fails with ECHILD, which is fine.
        let _ = rustix::process::waitpid(Some(pid), rustix::process::WaitOptions::NOHANG);
        if !pid_alive(pid.as_raw_pid() as u32) {
            return true;
        }
        if !backoff.sleep() {
            return false;
        }
    }
}

fn to_pid(pid: u32) -> Option<Pid> {
    i32::try_from(pid).ok().and_then(Pid::from_raw)
}

/// The process exists and has not exited. A zombie has exited: it only waits
/// for its parent to collect its status. (Also used for lock holders.)
pub fn pid_alive(pid: u32) -> bool {
    let Some(target) = to_pid(pid) else {
        return false;
    };
    match test_kill_process(target) {
        // EPERM: it exists, under another user.
        Ok(()) | Err(Errno::PERM) => {}
        Err(_) => return false,
    }
    let Ok(stat) = fs::read_to_string(format!("/proc/{pid}/stat")) else {
        return true;
    };
    // "PID (COMM) STATE ...": COMM may itself contain ") ".
    let state = stat
        .rfind(')')
        .and_then(|i| stat[i + 1..].split_whitespace().next());
    state != Some("Z")
}

/// Whether `pid` runs the launcher at `launcher`, so that a recycled pid is
/// never signalled. Where /proc is not mounted this cannot be checked, and
/// the endpoint check has to suffice.
pub(super) fn runs_launcher(pid: u32, launcher: &Path) -> bool {
    match fs::read(format!("/proc/{pid}/cmdline")) {
        Ok(cmdline) => cmdline
            .split(|&b| b == 0)
            .any(|arg| arg == launcher.as_os_str().as_bytes()),
        Err(_) => !Path::new("/proc/self").exists(),
    }
}

/// A sleep that grows from 10 ms to 250 ms and never passes its deadline.
pub(super) struct Backoff {
    deadline: Instant,
    next: Duration,
}

impl Backoff {
    pub(super) fn new(deadline: Instant) -> Self {
        Backoff {
            deadline,
            next: Duration::from_millis(10),
        }
    }

    /// Sleep once; false (without sleeping) when the deadline has passed.
    pub(super) fn sleep(&mut self) -> bool {
        let now = Instant::now();
        if now >= self.deadline {
            return false;
        }
        std::thread::sleep(self.next.min(self.deadline - now));
        self.next = (self.next * 2).min(Duration::from_millis(250));
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::process::Command;

    #[test]
    fn pid_liveness() {
        assert!(pid_alive(std::process::id()));
        assert!(!pid_alive(0));
        assert!(!pid_alive(u32::MAX));
        let mut child = Command::new("true").spawn().expect("spawn true");
        let pid = child.id();
        // Unreaped, it is a zombie: exited, so not alive.
        let deadline = Instant::now() + Duration::from_secs(5);
        let mut backoff = Backoff::new(deadline);
        while pid_alive(pid) && backoff.sleep() {}
        assert!(!pid_alive(pid));
        child.wait().expect("reap");
    }
}
