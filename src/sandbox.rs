//! The local AWS endpoint: moto server, run from a private Python virtualenv.
//!
//! Two lifetimes are offered:
//! * [`TetheredMoto`] belongs to the process that starts it (tests, `--sandbox`
//!   runs). It cannot outlive that process: the launcher reads its stdin and
//!   shuts down at EOF, which the kernel delivers however the owner dies,
//!   SIGKILL included.
//! * [`Sandbox`] backs `drctl sandbox start|stop|status`: a detached server in
//!   its own process group that outlives the command, found again through a
//!   state file.
//!
//! Both run `moto_launcher.py` (embedded below), which binds port 0 so the
//! kernel picks a free port, and reports it through a port file.
//!
//! This module is plain blocking code: it starts processes and waits for them
//! with deadlines, and must not be called from an async task without
//! `spawn_blocking`.

use std::ffi::OsString;
use std::fs::{self, File, OpenOptions, TryLockError};
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::net::{SocketAddr, TcpStream, ToSocketAddrs};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use rustix::io::Errno;
use rustix::process::{kill_process, test_kill_process, Pid, Signal};

/// What `ensure_venv` installs. Pinned: moto's behaviour differs between
/// releases in ways drctl's tests depend on (see shared/AWS-NOTES.md).
pub const MOTO_REQUIREMENT: &str = "moto[server]==5.2.5";

const LAUNCHER_SOURCE: &str = include_str!("sandbox/moto_launcher.py");
/// Its name must contain "moto_launcher": `Sandbox` recognises its server in
/// /proc/PID/cmdline by this file's path.
const LAUNCHER_NAME: &str = "moto_launcher.py";
/// Written into the venv only after pip succeeded, holding the requirement
/// it installed; a venv without it (or with another requirement) is redone.
const MARKER_NAME: &str = "drctl-installed.txt";

/// Importing moto takes about a second on a warm cache, much longer on a
/// cold disk or a loaded CI machine.
const READY_TIMEOUT: Duration = Duration::from_secs(60);
/// The launcher shuts down within about 0.1 s; this allows for a loaded machine.
const TETHER_GRACE: Duration = Duration::from_secs(3);
const TERM_GRACE: Duration = Duration::from_secs(5);
const KILL_GRACE: Duration = Duration::from_secs(2);
const LOG_TAIL_BYTES: u64 = 4096;
const LOG_TAIL_LINES: usize = 30;

#[derive(Debug, thiserror::Error)]
pub enum SandboxError {
    #[error("python3 was not found on PATH: install Python 3 (with the venv module) to use the moto sandbox")]
    PythonMissing {
        #[source]
        source: io::Error,
    },

    #[error(
        "could not create a Python virtualenv in {}: install Python 3 with the venv module \
         (Debian/Ubuntu: `apt install python3-venv`)\n{output}",
        dir.display()
    )]
    VenvCreate { dir: PathBuf, output: String },

    #[error("pip could not install {requirement} into {}:\n{output_tail}", dir.display())]
    PipInstall {
        dir: PathBuf,
        requirement: &'static str,
        output_tail: String,
    },

    #[error("could not run {}", program.display())]
    Spawn {
        program: PathBuf,
        #[source]
        source: io::Error,
    },

    #[error("could not {action} {}", path.display())]
    Io {
        action: &'static str,
        path: PathBuf,
        #[source]
        source: io::Error,
    },

    #[error("could not check on the moto server process (pid {pid})")]
    Wait {
        pid: u32,
        #[source]
        source: io::Error,
    },

    #[error(
        "moto server exited ({status}) before it was ready; its log {} ends with:\n{log_tail}",
        log.display()
    )]
    Exited {
        status: ExitStatus,
        log: PathBuf,
        log_tail: String,
    },

    #[error(
        "moto server did not answer at {} within {} s; its log {} ends with:\n{log_tail}",
        endpoint.as_deref().unwrap_or("(no port reported yet)"),
        waited.as_secs(),
        log.display()
    )]
    NotReady {
        endpoint: Option<String>,
        waited: Duration,
        log: PathBuf,
        log_tail: String,
    },

    #[error("the moto launcher's port file {} is not valid: {content:?}", path.display())]
    PortFile {
        path: PathBuf,
        content: String,
        #[source]
        source: serde_json::Error,
    },

    #[error("could not {action} the sandbox state file {}", path.display())]
    State {
        action: &'static str,
        path: PathBuf,
        #[source]
        source: io::Error,
    },

    #[error(
        "the sandbox state file {} is not valid; remove it (a moto server it recorded may still be running)",
        path.display()
    )]
    StateCorrupt {
        path: PathBuf,
        #[source]
        source: serde_json::Error,
    },

    #[error("could not signal the moto server (pid {pid})")]
    Stop {
        pid: u32,
        #[source]
        source: io::Error,
    },

    #[error("the moto server (pid {pid}) was still running {} s after SIGKILL", waited.as_secs())]
    StopTimeout { pid: u32, waited: Duration },
}

/// Ensure a virtualenv with [`MOTO_REQUIREMENT`] exists in `venv_dir`, and
/// return the path of its python.
///
/// Idempotent, and safe to call from several processes at once: the work
/// happens under an exclusive lock on `<venv_dir>.lock`. pip is skipped when
/// the venv's marker file records that exactly `MOTO_REQUIREMENT` was
/// installed. The first call takes about a minute (pip downloads moto and its
/// dependencies); later ones take milliseconds.
pub fn ensure_venv(venv_dir: &Path) -> Result<PathBuf, SandboxError> {
    let python = venv_dir.join("bin").join("python");
    let marker = venv_dir.join(MARKER_NAME);
    if let Some(parent) = venv_dir.parent().filter(|p| !p.as_os_str().is_empty()) {
        fs::create_dir_all(parent).map_err(io_error("create directory", parent))?;
    }
    let mut lock_path = OsString::from(venv_dir.as_os_str());
    lock_path.push(".lock");
    let _lock = lock_exclusive(
        Path::new(&lock_path),
        "another drctl is preparing the moto virtualenv; waiting for it",
    )?;

    // `exists` follows the symlink: a venv whose base Python was removed or
    // upgraded away reads as missing and is rebuilt.
    let python_ok = python.exists();
    if python_ok && marker_matches(&marker) {
        return Ok(python);
    }
    if !python_ok {
        create_venv(venv_dir)?;
    }
    // A failed or interrupted pip run must not leave an old marker behind.
    match fs::remove_file(&marker) {
        Err(e) if e.kind() != io::ErrorKind::NotFound => {
            return Err(io_error("remove", &marker)(e));
        }
        _ => {}
    }

    tracing::info!(
        venv = %venv_dir.display(),
        "installing {MOTO_REQUIREMENT}; the first time takes a minute or two"
    );
    let output = Command::new(&python)
        .args([
            "-m",
            "pip",
            "install",
            "--disable-pip-version-check",
            "--no-input",
            "--quiet",
            MOTO_REQUIREMENT,
        ])
        .stdin(Stdio::null())
        .output()
        .map_err(|source| SandboxError::Spawn {
            program: python.clone(),
            source,
        })?;
    if !output.status.success() {
        return Err(SandboxError::PipInstall {
            dir: venv_dir.to_path_buf(),
            requirement: MOTO_REQUIREMENT,
            output_tail: tail_lines(&combined_output(&output), LOG_TAIL_LINES),
        });
    }
    write_atomic(&marker, format!("{MOTO_REQUIREMENT}\n").as_bytes())
        .map_err(io_error("write", &marker))?;
    Ok(python)
}

fn marker_matches(marker: &Path) -> bool {
    fs::read_to_string(marker).is_ok_and(|s| s.trim() == MOTO_REQUIREMENT)
}

fn create_venv(venv_dir: &Path) -> Result<(), SandboxError> {
    let mut cmd = Command::new("python3");
    cmd.args(["-m", "venv"]);
    // Only ever clear a directory that is a venv: the path comes from the
    // user's state dir, and a mistake there must not empty another folder.
    if venv_dir.join("pyvenv.cfg").exists() {
        cmd.arg("--clear");
    }
    let output = cmd
        .arg(venv_dir)
        .stdin(Stdio::null())
        .output()
        .map_err(|source| match source.kind() {
            io::ErrorKind::NotFound => SandboxError::PythonMissing { source },
            _ => SandboxError::Spawn {
                program: "python3".into(),
                source,
            },
        })?;
    if !output.status.success() {
        // Debian's "ensurepip is not available" explanation goes to stdout.
        return Err(SandboxError::VenvCreate {
            dir: venv_dir.to_path_buf(),
            output: tail_lines(&combined_output(&output), LOG_TAIL_LINES),
        });
    }
    Ok(())
}

/// A moto server owned by this process. It exits when this value is dropped,
/// and also when this process exits however it exits (SIGKILL included),
/// because the launcher watches its stdin and shuts down at EOF.
pub struct TetheredMoto {
    endpoint: String,
    /// Its stdin pipe is the tether: closing the write end asks it to stop.
    child: Child,
}

impl TetheredMoto {
    /// Prepare the venv (see [`ensure_venv`]), start moto on a free port of
    /// 127.0.0.1 and wait until it answers. The server's output is appended to
    /// `log_file`.
    pub fn start(venv_dir: &Path, log_file: &Path) -> Result<TetheredMoto, SandboxError> {
        let python = ensure_venv(venv_dir)?;
        let launcher = install_launcher(venv_dir)?;
        let (log, log_start) = open_log(log_file)?;
        let port_file = unique_sibling(log_file, "port");

        let mut command = launcher_command(&python, &launcher, &port_file, log, log_file)?;
        // Its own process group: the owner's Ctrl-C (SIGINT to the terminal's
        // foreground group) must not cut the endpoint from under the owner's
        // in-flight calls; the tether ends it when the owner goes.
        command
            .arg("--tether")
            .stdin(Stdio::piped())
            .process_group(0);
        let mut child = command.spawn().map_err(|source| SandboxError::Spawn {
            program: python.clone(),
            source,
        })?;
        let ready = wait_ready(&mut child, &port_file, log_file, log_start);
        let _ = fs::remove_file(&port_file);
        match ready {
            Ok(ready) => Ok(TetheredMoto {
                endpoint: ready.endpoint(),
                child,
            }),
            Err(e) => {
                let _ = child.kill();
                let _ = child.wait();
                Err(e)
            }
        }
    }

    /// `http://127.0.0.1:PORT`
    pub fn endpoint(&self) -> &str {
        &self.endpoint
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }
}

impl Drop for TetheredMoto {
    fn drop(&mut self) {
        drop(self.child.stdin.take());
        let deadline = Instant::now() + TETHER_GRACE;
        let mut backoff = Backoff::new(deadline);
        loop {
            match self.child.try_wait() {
                Ok(Some(_)) => return,
                Ok(None) if backoff.sleep() => {}
                _ => break,
            }
        }
        tracing::warn!(
            pid = self.child.id(),
            "moto server did not exit within {} s of its stdin closing; killing it",
            TETHER_GRACE.as_secs()
        );
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// What `drctl sandbox status` reports, and what `<dir>/sandbox.json` holds.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize, PartialEq)]
pub struct SandboxStatus {
    pub pid: u32,
    /// `http://127.0.0.1:PORT`
    pub endpoint: String,
    /// RFC 3339, UTC.
    pub started_at: String,
    /// moto's version, as the running server reported it.
    pub moto: String,
}

/// `drctl sandbox start|stop|status`: a detached moto server that outlives the
/// command. Layout of `dir` (normally `<state_dir>/sandbox`): `venv/`,
/// `sandbox.json` (the state), `moto.log` (appended to by every start),
/// `moto_launcher.py`, and lock files.
pub struct Sandbox {
    dir: PathBuf,
}

/// What the state file says, checked against the system.
enum Probe {
    Absent,
    /// The recorded process is gone, or the pid now belongs to something else.
    Stale,
    /// Our launcher is alive but does not answer (hung, or still starting).
    Unresponsive(SandboxStatus),
    Running(SandboxStatus),
}

impl Sandbox {
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        Sandbox { dir: dir.into() }
    }

    fn venv_dir(&self) -> PathBuf {
        self.dir.join("venv")
    }
    fn state_path(&self) -> PathBuf {
        self.dir.join("sandbox.json")
    }
    fn log_path(&self) -> PathBuf {
        self.dir.join("moto.log")
    }
    fn port_path(&self) -> PathBuf {
        self.dir.join("moto.port")
    }
    /// Absolute, because it is what identifies our server in
    /// /proc/PID/cmdline, whatever directory the command was run from.
    fn launcher_path(&self) -> Result<PathBuf, SandboxError> {
        let path = self.dir.join(LAUNCHER_NAME);
        std::path::absolute(&path).map_err(io_error("resolve", &path))
    }

    /// Serialises start, stop and status between processes, so that two
    /// starts cannot launch two servers and a status cannot remove the state
    /// a concurrent start just wrote.
    fn lock(&self) -> Result<File, SandboxError> {
        fs::create_dir_all(&self.dir).map_err(io_error("create directory", &self.dir))?;
        lock_exclusive(
            &self.dir.join("sandbox.lock"),
            "another drctl sandbox command is running; waiting for it",
        )
    }

    /// Start the sandbox, or return the one already running and answering.
    pub fn start(&self) -> Result<SandboxStatus, SandboxError> {
        // Outside the sandbox lock, which `status` also takes: a first-time
        // install holds its own lock for a minute.
        let python = ensure_venv(&self.venv_dir())?;
        let _lock = self.lock()?;
        match self.probe()? {
            Probe::Running(status) => return Ok(status),
            Probe::Unresponsive(status) => {
                tracing::warn!(
                    pid = status.pid,
                    endpoint = %status.endpoint,
                    "the recorded moto server does not answer; stopping it and starting a new one"
                );
                terminate(status.pid)?;
                self.remove_state()?;
            }
            Probe::Stale => self.remove_state()?,
            Probe::Absent => {}
        }

        install_launcher(&self.dir)?;
        let launcher = self.launcher_path()?;
        let log_path = self.log_path();
        let port_file = self.port_path();
        remove_if_exists(&port_file)?;
        let (log, log_start) = open_log(&log_path)?;
        let mut command = launcher_command(&python, &launcher, &port_file, log, &log_path)?;
        // Its own process group, so the Ctrl-C or hang-up of the terminal that
        // ran `drctl sandbox start` does not reach it.
        command.stdin(Stdio::null()).process_group(0);
        let mut child = command.spawn().map_err(|source| SandboxError::Spawn {
            program: python.clone(),
            source,
        })?;

        let outcome = wait_ready(&mut child, &port_file, &log_path, log_start).and_then(|ready| {
            let status = SandboxStatus {
                pid: child.id(),
                endpoint: ready.endpoint(),
                started_at: rfc3339_utc(SystemTime::now()),
                moto: ready.moto,
            };
            // A server whose state is not recorded could never be stopped by
            // `drctl sandbox stop`: the write must succeed or the server goes.
            self.write_state(&status)?;
            Ok(status)
        });
        let _ = fs::remove_file(&port_file);
        match outcome {
            // `child` is dropped without waiting: the server lives on. When
            // this process exits it is re-parented; until then `pid_alive`
            // treats it as gone once it is a zombie.
            Ok(status) => {
                tracing::info!(pid = status.pid, endpoint = %status.endpoint, "moto sandbox started");
                Ok(status)
            }
            Err(e) => {
                let _ = child.kill();
                let _ = child.wait();
                Err(e)
            }
        }
    }

    /// The running sandbox: `Some` only if the recorded pid is alive, is our
    /// launcher, and its endpoint answers. A state file naming a process that
    /// is gone (or a pid reused by another program) is removed.
    pub fn status(&self) -> Result<Option<SandboxStatus>, SandboxError> {
        let _lock = self.lock()?;
        match self.probe()? {
            Probe::Running(status) => Ok(Some(status)),
            Probe::Unresponsive(status) => {
                // Kept: `stop` (or the next `start`) can still end it.
                tracing::warn!(
                    pid = status.pid,
                    endpoint = %status.endpoint,
                    "the moto sandbox process is alive but does not answer"
                );
                Ok(None)
            }
            Probe::Stale => {
                self.remove_state()?;
                Ok(None)
            }
            Probe::Absent => Ok(None),
        }
    }

    /// Stop the sandbox: SIGTERM, up to 5 s for a clean exit, then SIGKILL.
    /// Returns what was stopped, or `None` if nothing was running.
    pub fn stop(&self) -> Result<Option<SandboxStatus>, SandboxError> {
        let _lock = self.lock()?;
        let stopped = match self.probe()? {
            Probe::Absent => return Ok(None),
            Probe::Stale => None,
            Probe::Running(status) | Probe::Unresponsive(status) => {
                terminate(status.pid)?;
                Some(status)
            }
        };
        self.remove_state()?;
        remove_if_exists(&self.port_path())?;
        Ok(stopped)
    }

    fn probe(&self) -> Result<Probe, SandboxError> {
        let Some(status) = self.read_state()? else {
            return Ok(Probe::Absent);
        };
        let launcher = self.launcher_path()?;
        if !pid_alive(status.pid) || !runs_launcher(status.pid, &launcher) {
            return Ok(Probe::Stale);
        }
        if endpoint_answers(&status.endpoint) {
            Ok(Probe::Running(status))
        } else {
            Ok(Probe::Unresponsive(status))
        }
    }

    fn read_state(&self) -> Result<Option<SandboxStatus>, SandboxError> {
        let path = self.state_path();
        let text = match fs::read_to_string(&path) {
            Ok(text) => text,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(source) => {
                return Err(SandboxError::State {
                    action: "read",
                    path,
                    source,
                })
            }
        };
        serde_json::from_str(&text)
            .map(Some)
            .map_err(|source| SandboxError::StateCorrupt { path, source })
    }

    fn write_state(&self, status: &SandboxStatus) -> Result<(), SandboxError> {
        let path = self.state_path();
        let mut json =
            serde_json::to_string_pretty(status).map_err(|source| SandboxError::StateCorrupt {
                path: path.clone(),
                source,
            })?;
        json.push('\n');
        write_atomic(&path, json.as_bytes()).map_err(|source| SandboxError::State {
            action: "write",
            path,
            source,
        })
    }

    fn remove_state(&self) -> Result<(), SandboxError> {
        let path = self.state_path();
        match fs::remove_file(&path) {
            Err(e) if e.kind() != io::ErrorKind::NotFound => Err(SandboxError::State {
                action: "remove",
                path,
                source: e,
            }),
            _ => Ok(()),
        }
    }
}

/// True when an HTTP GET of `{endpoint}/moto-api/` gets an HTTP response,
/// whatever its status. Plain `http://` endpoints only; bounded by short
/// connect and read timeouts, so it returns within a few seconds.
pub fn endpoint_answers(endpoint: &str) -> bool {
    let Some(authority) = http_authority(endpoint) else {
        return false;
    };
    let Ok(addrs) = authority.to_socket_addrs() else {
        return false;
    };
    addrs
        .into_iter()
        .any(|addr| http_get_answers(addr, &authority))
}

/// `host:port` of an `http://` URL, with port 80 when none is given.
fn http_authority(endpoint: &str) -> Option<String> {
    let scheme_len = "http://".len();
    if endpoint.len() < scheme_len || !endpoint[..scheme_len].eq_ignore_ascii_case("http://") {
        return None;
    }
    let rest = &endpoint[scheme_len..];
    let authority = rest.split(['/', '?', '#']).next().unwrap_or_default();
    // Userinfo is never part of a moto endpoint; refuse rather than guess.
    if authority.is_empty() || authority.contains('@') {
        return None;
    }
    // "[::1]" has colons but no port; "[::1]:5000" and "host:5000" have one.
    let has_port = match authority.rfind(':') {
        Some(i) => !authority[..i].ends_with('[') && !authority.ends_with(']'),
        None => false,
    };
    Some(if has_port {
        authority.to_string()
    } else {
        format!("{authority}:80")
    })
}

fn http_get_answers(addr: SocketAddr, authority: &str) -> bool {
    let Ok(mut stream) = TcpStream::connect_timeout(&addr, Duration::from_secs(1)) else {
        return false;
    };
    if stream
        .set_read_timeout(Some(Duration::from_secs(2)))
        .is_err()
        || stream
            .set_write_timeout(Some(Duration::from_secs(1)))
            .is_err()
    {
        return false;
    }
    let request =
        format!("GET /moto-api/ HTTP/1.0\r\nHost: {authority}\r\nConnection: close\r\n\r\n");
    if stream.write_all(request.as_bytes()).is_err() {
        return false;
    }
    let mut head = [0u8; 5];
    let mut filled = 0;
    while filled < head.len() {
        match stream.read(&mut head[filled..]) {
            Ok(0) | Err(_) => return false,
            Ok(n) => filled += n,
        }
    }
    &head == b"HTTP/"
}

/// What the launcher writes to its port file once it is bound.
#[derive(serde::Deserialize)]
struct LauncherReady {
    port: u16,
    #[serde(default)]
    moto: String,
}

impl LauncherReady {
    fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }
}

fn launcher_command(
    python: &Path,
    launcher: &Path,
    port_file: &Path,
    log: File,
    log_path: &Path,
) -> Result<Command, SandboxError> {
    let log_for_stdout = log
        .try_clone()
        .map_err(io_error("duplicate the handle of", log_path))?;
    let mut command = Command::new(python);
    // -I: the user's PYTHONPATH, PYTHONHOME and user site-packages must not
    // change which moto runs. -u: log lines reach the log as they happen.
    command
        .arg("-I")
        .arg("-u")
        .arg(launcher)
        .arg("--port-file")
        .arg(port_file)
        .stdout(log_for_stdout)
        .stderr(log);
    Ok(command)
}

/// Wait until the launcher has reported its port and the port answers HTTP,
/// failing early with the log's tail if the process dies first.
fn wait_ready(
    child: &mut Child,
    port_file: &Path,
    log_path: &Path,
    log_start: u64,
) -> Result<LauncherReady, SandboxError> {
    let started = Instant::now();
    let mut backoff = Backoff::new(started + READY_TIMEOUT);
    let mut ready: Option<LauncherReady> = None;
    loop {
        match child.try_wait() {
            Ok(Some(status)) => {
                return Err(SandboxError::Exited {
                    status,
                    log: log_path.to_path_buf(),
                    log_tail: log_tail(log_path, log_start),
                })
            }
            Ok(None) => {}
            Err(source) => {
                return Err(SandboxError::Wait {
                    pid: child.id(),
                    source,
                })
            }
        }
        if ready.is_none() {
            ready = read_port_file(port_file)?;
        }
        match ready.take() {
            Some(r) if endpoint_answers(&r.endpoint()) => {
                tracing::debug!(
                    elapsed_ms = started.elapsed().as_millis() as u64,
                    endpoint = %r.endpoint(),
                    "moto server ready"
                );
                return Ok(r);
            }
            other => ready = other,
        }
        if !backoff.sleep() {
            return Err(SandboxError::NotReady {
                endpoint: ready.as_ref().map(LauncherReady::endpoint),
                waited: started.elapsed(),
                log: log_path.to_path_buf(),
                log_tail: log_tail(log_path, log_start),
            });
        }
    }
}

fn read_port_file(path: &Path) -> Result<Option<LauncherReady>, SandboxError> {
    // The launcher renames a complete file into place: no partial reads.
    let content = match fs::read_to_string(path) {
        Ok(content) => content,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(io_error("read", path)(e)),
    };
    serde_json::from_str(&content)
        .map(Some)
        .map_err(|source| SandboxError::PortFile {
            path: path.to_path_buf(),
            content,
            source,
        })
}

/// Write the embedded launcher as `dir/moto_launcher.py` unless it is there
/// already with the same content.
fn install_launcher(dir: &Path) -> Result<PathBuf, SandboxError> {
    fs::create_dir_all(dir).map_err(io_error("create directory", dir))?;
    let path = dir.join(LAUNCHER_NAME);
    if fs::read(&path).is_ok_and(|current| current == LAUNCHER_SOURCE.as_bytes()) {
        return Ok(path);
    }
    // Atomic, so a concurrent start never runs a half-written script.
    write_atomic(&path, LAUNCHER_SOURCE.as_bytes()).map_err(io_error("write", &path))?;
    Ok(path)
}

/// SIGTERM, then SIGKILL after `TERM_GRACE`; returns once the process is gone.
/// The caller has checked that `pid` is our launcher.
fn terminate(pid: u32) -> Result<(), SandboxError> {
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
fn runs_launcher(pid: u32, launcher: &Path) -> bool {
    match fs::read(format!("/proc/{pid}/cmdline")) {
        Ok(cmdline) => cmdline
            .split(|&b| b == 0)
            .any(|arg| arg == launcher.as_os_str().as_bytes()),
        Err(_) => !Path::new("/proc/self").exists(),
    }
}

/// A sleep that grows from 10 ms to 250 ms and never passes its deadline.
struct Backoff {
    deadline: Instant,
    next: Duration,
}

impl Backoff {
    fn new(deadline: Instant) -> Self {
        Backoff {
            deadline,
            next: Duration::from_millis(10),
        }
    }

    /// Sleep once; false (without sleeping) when the deadline has passed.
    fn sleep(&mut self) -> bool {
        let now = Instant::now();
        if now >= self.deadline {
            return false;
        }
        std::thread::sleep(self.next.min(self.deadline - now));
        self.next = (self.next * 2).min(Duration::from_millis(250));
        true
    }
}

fn lock_exclusive(path: &Path, waiting_message: &str) -> Result<File, SandboxError> {
    let file = OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(path)
        .map_err(io_error("open lock file", path))?;
    match file.try_lock() {
        Ok(()) => return Ok(file),
        Err(TryLockError::WouldBlock) => {
            tracing::info!(lock = %path.display(), "{waiting_message}");
        }
        Err(TryLockError::Error(e)) => return Err(io_error("lock", path)(e)),
    }
    file.lock().map_err(io_error("lock", path))?;
    Ok(file)
}

/// Open `path` for appending, returning it and its current length (where this
/// run's output starts).
fn open_log(path: &Path) -> Result<(File, u64), SandboxError> {
    if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
        fs::create_dir_all(parent).map_err(io_error("create directory", parent))?;
    }
    let file = OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .map_err(io_error("open log file", path))?;
    let start = file
        .metadata()
        .map_err(io_error("read metadata of", path))?
        .len();
    Ok((file, start))
}

/// The last lines written to the log since `start`, for error messages.
fn log_tail(path: &Path, start: u64) -> String {
    let read = || -> io::Result<String> {
        let mut file = File::open(path)?;
        let len = file.metadata()?.len();
        let from = start.max(len.saturating_sub(LOG_TAIL_BYTES));
        file.seek(SeekFrom::Start(from))?;
        let mut bytes = Vec::new();
        file.read_to_end(&mut bytes)?;
        Ok(String::from_utf8_lossy(&bytes).into_owned())
    };
    match read() {
        Ok(text) if text.trim().is_empty() => "(nothing)".to_string(),
        Ok(text) => tail_lines(&text, LOG_TAIL_LINES),
        Err(e) => format!("(could not read it: {e})"),
    }
}

fn tail_lines(text: &str, n: usize) -> String {
    let lines: Vec<&str> = text.trim_end().lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

fn combined_output(output: &std::process::Output) -> String {
    let mut text = String::from_utf8_lossy(&output.stdout).into_owned();
    if !text.is_empty() && !text.ends_with('\n') {
        text.push('\n');
    }
    text.push_str(&String::from_utf8_lossy(&output.stderr));
    text
}

/// `<dir>/.<name>.<pid>.<n>.<ext>`: unique within this host, in the same
/// directory (hence file system) as `path`, so a rename into it is atomic.
fn unique_sibling(path: &Path, ext: &str) -> PathBuf {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    path.with_file_name(format!(".{name}.{}.{n}.{ext}", std::process::id()))
}

fn write_atomic(path: &Path, bytes: &[u8]) -> io::Result<()> {
    let tmp = unique_sibling(path, "tmp");
    let result = (|| {
        let mut file = File::create(&tmp)?;
        file.write_all(bytes)?;
        file.sync_all()?;
        fs::rename(&tmp, path)
    })();
    if result.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    result
}

fn remove_if_exists(path: &Path) -> Result<(), SandboxError> {
    match fs::remove_file(path) {
        Err(e) if e.kind() != io::ErrorKind::NotFound => Err(io_error("remove", path)(e)),
        _ => Ok(()),
    }
}

fn io_error(action: &'static str, path: &Path) -> impl FnOnce(io::Error) -> SandboxError {
    let path = path.to_path_buf();
    move |source| SandboxError::Io {
        action,
        path,
        source,
    }
}

/// RFC 3339 in UTC, second precision (std has no calendar).
fn rfc3339_utc(time: SystemTime) -> String {
    // A clock before 1970 is a broken clock; the epoch is as good as any.
    let secs = time
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let (year, month, day) = civil_from_days((secs / 86_400) as i64);
    let rem = secs % 86_400;
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

/// Days since 1970-01-01 to (year, month, day), proleptic Gregorian
/// (Howard Hinnant's `civil_from_days`).
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::TcpListener;

    fn scratch_dir(name: &str) -> PathBuf {
        let dir =
            std::env::temp_dir().join(format!("drctl-sandbox-test-{name}-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir).expect("create scratch dir");
        dir
    }

    fn status_with_pid(pid: u32) -> SandboxStatus {
        SandboxStatus {
            pid,
            endpoint: "http://127.0.0.1:1".to_string(),
            started_at: "2026-01-02T03:04:05Z".to_string(),
            moto: "5.2.5".to_string(),
        }
    }

    #[test]
    fn state_file_round_trips() {
        let sandbox = Sandbox::new(scratch_dir("roundtrip"));
        assert_eq!(sandbox.read_state().expect("read"), None);
        let status = status_with_pid(1234);
        sandbox.write_state(&status).expect("write");
        assert_eq!(sandbox.read_state().expect("read"), Some(status));
        sandbox.remove_state().expect("remove");
        assert_eq!(sandbox.read_state().expect("read"), None);
        let _ = fs::remove_dir_all(&sandbox.dir);
    }

    #[test]
    fn corrupt_state_file_is_reported_not_discarded() {
        let sandbox = Sandbox::new(scratch_dir("corrupt"));
        fs::write(sandbox.state_path(), "{not json").expect("write");
        let err = sandbox.status().expect_err("corrupt state");
        assert!(matches!(err, SandboxError::StateCorrupt { .. }), "{err}");
        assert!(sandbox.state_path().exists());
        let _ = fs::remove_dir_all(&sandbox.dir);
    }

    #[test]
    fn status_removes_state_of_a_dead_pid() {
        let sandbox = Sandbox::new(scratch_dir("deadpid"));
        // Above Linux's largest pid_max (2^22): never a live process.
        sandbox
            .write_state(&status_with_pid(i32::MAX as u32))
            .expect("write");
        assert_eq!(sandbox.status().expect("status"), None);
        assert!(!sandbox.state_path().exists());
        let _ = fs::remove_dir_all(&sandbox.dir);
    }

    #[test]
    fn stop_never_signals_a_recycled_pid() {
        // The state names a live process that is not our launcher: this test.
        let sandbox = Sandbox::new(scratch_dir("recycled"));
        sandbox
            .write_state(&status_with_pid(std::process::id()))
            .expect("write");
        assert_eq!(sandbox.stop().expect("stop"), None);
        assert!(!sandbox.state_path().exists());
        assert_eq!(sandbox.stop().expect("stop again"), None);
        let _ = fs::remove_dir_all(&sandbox.dir);
    }

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

    #[test]
    fn endpoint_answers_false_on_a_closed_port() {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        let port = listener.local_addr().expect("addr").port();
        drop(listener);
        assert!(!endpoint_answers(&format!("http://127.0.0.1:{port}")));
    }

    #[test]
    fn endpoint_answers_true_on_any_http_status() {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        let port = listener.local_addr().expect("addr").port();
        let server = std::thread::spawn(move || {
            let (mut stream, _) = listener.accept().expect("accept");
            let mut request = [0u8; 1024];
            let n = stream.read(&mut request).expect("read");
            stream
                .write_all(b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n")
                .expect("write");
            String::from_utf8_lossy(&request[..n]).into_owned()
        });
        assert!(endpoint_answers(&format!("http://127.0.0.1:{port}/")));
        let request = server.join().expect("server thread");
        assert!(
            request.starts_with("GET /moto-api/ HTTP/1.0\r\n"),
            "{request}"
        );
    }

    #[test]
    fn endpoint_answers_false_when_not_http() {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        let port = listener.local_addr().expect("addr").port();
        let server = std::thread::spawn(move || {
            let (mut stream, _) = listener.accept().expect("accept");
            let _ = stream.write_all(b"SSH-2.0-OpenSSH\r\n");
        });
        assert!(!endpoint_answers(&format!("http://127.0.0.1:{port}")));
        server.join().expect("server thread");
        assert!(!endpoint_answers("https://127.0.0.1:443"));
        assert!(!endpoint_answers("127.0.0.1:5000"));
    }

    #[test]
    fn authority_parsing() {
        let cases = [
            ("http://127.0.0.1:5000", Some("127.0.0.1:5000")),
            ("HTTP://localhost:5000/moto-api/", Some("localhost:5000")),
            ("http://localhost", Some("localhost:80")),
            ("http://[::1]:5000", Some("[::1]:5000")),
            ("http://[::1]", Some("[::1]:80")),
            ("http://h:1?x", Some("h:1")),
            ("http://", None),
            ("http://user@h:1", None),
            ("https://h:1", None),
            ("", None),
        ];
        for (input, want) in cases {
            assert_eq!(http_authority(input).as_deref(), want, "{input}");
        }
    }

    #[test]
    fn rfc3339_formatting() {
        assert_eq!(rfc3339_utc(UNIX_EPOCH), "1970-01-01T00:00:00Z");
        let t = UNIX_EPOCH + Duration::from_secs(951_782_400 + 3_723); // 2000-02-29
        assert_eq!(rfc3339_utc(t), "2000-02-29T01:02:03Z");
        let t = UNIX_EPOCH + Duration::from_secs(1_798_761_599); // last second of 2026
        assert_eq!(rfc3339_utc(t), "2026-12-31T23:59:59Z");
    }

    #[test]
    fn log_tail_shows_only_this_runs_last_lines() {
        let dir = scratch_dir("logtail");
        let log = dir.join("moto.log");
        fs::write(&log, "old run\n").expect("write");
        let start = fs::metadata(&log).expect("metadata").len();
        let mut text = String::new();
        for i in 0..100 {
            text.push_str(&format!("line {i}\n"));
        }
        let mut file = OpenOptions::new().append(true).open(&log).expect("open");
        file.write_all(text.as_bytes()).expect("append");
        let tail = log_tail(&log, start);
        assert!(!tail.contains("old run"));
        assert!(tail.ends_with("line 99"));
        assert_eq!(tail.lines().count(), LOG_TAIL_LINES);
        assert_eq!(
            log_tail(&log, fs::metadata(&log).expect("m").len()),
            "(nothing)"
        );
        let _ = fs::remove_dir_all(&dir);
    }

    #[test]
    fn launcher_is_written_once_and_atomically() {
        let dir = scratch_dir("launcher");
        let path = install_launcher(&dir).expect("install");
        assert_eq!(fs::read_to_string(&path).expect("read"), LAUNCHER_SOURCE);
        let modified = fs::metadata(&path)
            .and_then(|m| m.modified())
            .expect("mtime");
        install_launcher(&dir).expect("install again");
        let again = fs::metadata(&path)
            .and_then(|m| m.modified())
            .expect("mtime");
        assert_eq!(modified, again);
        // Only the launcher: no temporary files left behind.
        assert_eq!(fs::read_dir(&dir).expect("ls").count(), 1);
        let _ = fs::remove_dir_all(&dir);
    }
}
