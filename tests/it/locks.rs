//! The environment lock across processes. The second process is this test
//! binary run again, filtered to `helper_process`, which takes and releases
//! the lock when told to on its stdin.

use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};
use std::time::{Duration, Instant};

use drctl::error::Error;
use drctl::lock::{unlock, EnvLock, LockHolder};
use drctl::store::{Key, LocalStore, RunStore as _};

use crate::support::{drctl, moto_endpoint, Repo};

/// Set (to a state dir) only in the helper process.
const HELPER_STATE: &str = "DRCTL_TEST_LOCK_HELPER_STATE";
/// The environment and region the helper takes (`env@region`).
const HELPER_ENVIRONMENT: &str = "DRCTL_TEST_LOCK_HELPER_ENVIRONMENT";
const ENV: &str = "race";
const REGION: &str = "eu-west-1";

/// Where the state directory `state` keeps the lock of `env` in `region`.
fn lock_path(state: &Path, env: &str, region: &str) -> PathBuf {
    LocalStore::new(state).location(&Key::environment_lock(env, region))
}

/// The holder recorded in the lock file at `path`, if it parses.
fn read_holder(path: &Path) -> Option<LockHolder> {
    serde_json::from_slice(&std::fs::read(path).ok()?).ok()
}

/// Not a test: the second process of the tests below, and a no-op unless
/// `DRCTL_TEST_LOCK_HELPER_STATE` is set. It reads commands from stdin, one
/// per line (`take RUN_ID`, `release`, `turns N` for `take_turns`), answers each on a line of
/// its own starting with `helper: `, and exits at the end of its input.
#[test]
fn helper_process() {
    let Some(state) = std::env::var_os(HELPER_STATE) else {
        return;
    };
    let state = Path::new(&state);
    let environment = std::env::var(HELPER_ENVIRONMENT).unwrap();
    let (env, region) = environment.split_once('@').unwrap();
    let mut held = None;
    for line in std::io::stdin().lock().lines() {
        let line = line.unwrap();
        let reply = match line.split_once(' ').unwrap_or((&line, "")) {
            ("take", run_id) => {
                match EnvLock::acquire(&LocalStore::new(state), env, region, run_id) {
                    Ok(lock) => {
                        held = Some(lock);
                        "held".to_string()
                    }
                    Err(e) => format!("refused {e}"),
                }
            }
            ("release", _) => {
                drop(held.take().expect("release without take"));
                "released".to_string()
            }
            ("turns", n) => match take_turns(state, "helper", n.parse().unwrap()) {
                Ok(()) => "done".to_string(),
                Err(e) => format!("failed {e}"),
            },
            _ => panic!("unknown helper command {line:?}"),
        };
        // On a line of its own: libtest writes to the same stdout.
        println!("\nhelper: {reply}");
    }
}

/// The helper process; killed if a test fails while it runs.
struct Helper {
    child: Child,
    stdin: Option<ChildStdin>,
    stdout: BufReader<ChildStdout>,
}

impl Helper {
    /// Takes `ENV` in `REGION` when told to.
    fn start(state: &Path) -> Helper {
        Self::start_for(state, ENV, REGION)
    }

    fn start_for(state: &Path, env: &str, region: &str) -> Helper {
        let mut child = Command::new(std::env::current_exe().unwrap())
            .args(["locks::helper_process", "--exact", "--nocapture"])
            .args(["--test-threads=1", "-q"])
            .env(HELPER_STATE, state)
            .env(HELPER_ENVIRONMENT, format!("{env}@{region}"))
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .expect("start the helper process");
        Helper {
            stdin: child.stdin.take(),
            stdout: BufReader::new(child.stdout.take().unwrap()),
            child,
        }
    }

    fn pid(&self) -> u32 {
        self.child.id()
    }

    fn send(&mut self, command: &str) {
        let stdin = self.stdin.as_mut().unwrap();
        writeln!(stdin, "{command}").unwrap();
        stdin.flush().unwrap();
    }

    fn reply(&mut self) -> String {
        let mut line = String::new();
        loop {
            line.clear();
            let n = self.stdout.read_line(&mut line).unwrap();
            assert!(n > 0, "the helper process ended without answering");
            if let Some(reply) = line.trim_end().strip_prefix("helper: ") {
                return reply.to_string();
            }
        }
    }

    fn ask(&mut self, command: &str) -> String {
        self.send(command);
        self.reply()
    }
}

impl Drop for Helper {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Takes the lock `turns` times, busy-retrying when refused, and checks
/// while holding it that nobody else does: it creates `inside` exclusively
/// (a second holder would find it there) and finds its own record at the
/// lock's path (a holder of a file that was unlinked meanwhile would not).
fn take_turns(state: &Path, who: &str, turns: usize) -> Result<(), String> {
    let deadline = Instant::now() + Duration::from_secs(120);
    let inside = state.join("inside");
    let path = lock_path(state, ENV, REGION);
    let mut held = 0;
    while held < turns {
        if Instant::now() > deadline {
            return Err(format!("{who} held the lock only {held} times in 120s"));
        }
        let run_id = format!("{who}-{held}");
        let lock = match EnvLock::acquire(&LocalStore::new(state), ENV, REGION, &run_id) {
            Ok(lock) => lock,
            Err(Error::Locked { .. }) => continue,
            Err(e) => return Err(format!("{who}: {e}")),
        };
        std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&inside)
            .map_err(|e| format!("{who} holds the lock, and so does someone else: {e}"))?;
        let recorded = read_holder(&path).map(|h| h.run_id);
        if recorded.as_deref() != Some(run_id.as_str()) {
            return Err(format!(
                "{who} holds the lock as {run_id}, but its file names {recorded:?}"
            ));
        }
        std::fs::remove_file(&inside).map_err(|e| e.to_string())?;
        drop(lock);
        held += 1;
    }
    Ok(())
}

#[test]
fn two_processes_racing_for_one_environment_never_both_hold_it() {
    let state = tempfile::tempdir().unwrap();
    let path = lock_path(state.path(), ENV, REGION);
    let mut helper = Helper::start(state.path());
    let mut wins = (0, 0);
    for round in 0..20 {
        // The helper, blocked on its stdin, starts taking the lock as this
        // process does.
        helper.send(&format!("take helper-{round}"));
        let mine = EnvLock::acquire(
            &LocalStore::new(state.path()),
            ENV,
            REGION,
            &format!("here-{round}"),
        );
        let theirs = helper.reply();
        let (winner, refusal) = match (&mine, theirs.strip_prefix("refused ")) {
            (Ok(_), Some(refusal)) => ("here", refusal.to_string()),
            (Err(e), None) if theirs == "held" => ("helper", e.to_string()),
            _ => panic!(
                "round {round}: this process got {mine:?}, the helper {theirs:?}; exactly one must hold the lock"
            ),
        };
        // The loser names the winner, unless the winner had the OS lock but
        // had not yet written its record.
        let expected = format!("environment {ENV} in {REGION} is locked by ");
        assert!(
            refusal.starts_with(&format!("{expected}run {winner}-{round} (pid "))
                || refusal
                    == format!("{expected}another drctl process that is taking it right now"),
            "round {round}: {refusal}"
        );
        assert_eq!(
            read_holder(&path).map(|h| h.run_id),
            Some(format!("{winner}-{round}"))
        );
        match mine {
            Ok(lock) => {
                wins.0 += 1;
                drop(lock);
            }
            Err(_) => {
                wins.1 += 1;
                assert_eq!(helper.ask("release"), "released");
            }
        }
        assert!(!path.exists(), "round {round}: released");
    }
    eprintln!("wins: this process {}, the helper {}", wins.0, wins.1);
}

#[test]
fn two_processes_taking_turns_hold_the_lock_one_at_a_time() {
    let state = tempfile::tempdir().unwrap();
    let mut helper = Helper::start(state.path());
    helper.send("turns 100");
    let mine = take_turns(state.path(), "here", 100);
    let theirs = helper.reply();
    assert_eq!(mine, Ok(()));
    assert_eq!(theirs, "done");
}

#[test]
fn the_lock_of_a_killed_holder_is_free_at_once_and_unlock_waits_for_a_live_one() {
    let state = tempfile::tempdir().unwrap();
    let path = lock_path(state.path(), ENV, REGION);
    let mut helper = Helper::start(state.path());
    assert_eq!(helper.ask("take helper-1"), "held");
    let err = unlock(&LocalStore::new(state.path()), ENV, REGION).unwrap_err();
    assert!(matches!(err, Error::LockInUse { .. }), "{err:?}");
    assert!(
        err.to_string()
            .contains(&format!("run helper-1 (pid {} on ", helper.pid())),
        "{err}"
    );
    assert_eq!(read_holder(&path).unwrap().run_id, "helper-1", "kept");

    // SIGKILL: no destructor runs, the record stays, and the kernel releases
    // the OS lock as the process ends.
    helper.child.kill().unwrap();
    helper.child.wait().unwrap();
    assert_eq!(read_holder(&path).unwrap().run_id, "helper-1");
    let lock = EnvLock::acquire(&LocalStore::new(state.path()), ENV, REGION, "here-2").unwrap();
    assert_eq!(read_holder(&path).unwrap().run_id, "here-2");
    drop(lock);
}

/// What `tests/it/gates.rs`'s `a_second_run_on_a_locked_environment_is_refused`
/// checked with a hand-written lock file: with OS locks, a holder is a
/// process that holds the lock.
#[test]
fn apply_is_refused_while_another_process_holds_the_environment() {
    let region = "us-west-2";
    let vars = "cidr = \"10.95.0.0/16\"\nsubnet_a_cidr = \"10.95.1.0/24\"\nsubnet_b_cidr = \"10.95.2.0/24\"";
    let repo = Repo::fleet_rehearsal("lock-held", region, vars, "\"auto\"");
    let state = tempfile::tempdir().unwrap();
    let run = |args: &[&str]| {
        let out = drctl()
            .env("AWS_ACCESS_KEY_ID", "testing")
            .env("AWS_SECRET_ACCESS_KEY", "testing")
            .args(["--root", repo.root().to_str().unwrap()])
            .args(["--state-dir", state.path().to_str().unwrap()])
            .args(["--endpoint-url", moto_endpoint(), "-q"])
            .args(args)
            .stdin(Stdio::null())
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&out.stdout).to_string()
            + &String::from_utf8_lossy(&out.stderr);
        (out.status.code(), text)
    };
    let plan = || run(&["plan", "rb", "--detailed-exitcode"]);
    let before = plan();
    assert_eq!(before.0, Some(4), "{}", before.1);

    let mut helper = Helper::start_for(state.path(), "lock-held", region);
    assert_eq!(helper.ask("take 20260101T000000-beef"), "held");
    let (code, text) = run(&["apply", "rb", "--auto-approve"]);
    assert_eq!(code, Some(1), "{text}");
    assert!(
        text.contains("is locked by run 20260101T000000-beef")
            && text.contains(&format!("pid {}", helper.pid())),
        "{text}"
    );
    assert_eq!(plan(), before, "a refused run touches nothing");

    assert_eq!(helper.ask("release"), "released");
    let (code, text) = run(&["apply", "rb", "--auto-approve"]);
    assert_eq!(code, Some(0), "{text}");
    assert!(!lock_path(state.path(), "lock-held", region).exists());
    let (code, text) = run(&["destroy", "rb", "--auto-approve"]);
    assert_eq!(code, Some(0), "{text}");
}
