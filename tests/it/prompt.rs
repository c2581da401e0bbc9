//! A person at a gate's prompt, on a terminal (a pseudo-terminal here:
//! drctl asks only on one), while another person decides the same gate
//! from another machine: the prompt notices the approval or rejection in
//! the journal and goes on without anyone typing at it. And a run started
//! with `--wait` and no terminal, which waits at its gate for approvals
//! given elsewhere, until the gate's deadline.

use std::fs::File;
use std::io::{BufRead as _, BufReader, Write as _};
use std::os::unix::ffi::OsStrExt as _;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use crate::support::{drctl_at, moto_endpoint, Repo};
use crate::team::{new_bucket, Machine};

/// The most a prompt may take to end: generous, so that a loaded machine
/// does not fail the test; a prompt that never notices waits forever.
const PATIENCE: Duration = Duration::from_secs(240);

/// A pseudo-terminal: the controlling side the test types at, and the
/// terminal side a child reads as its stdin.
fn pseudo_terminal() -> (File, File) {
    use rustix::pty::{grantpt, openpt, ptsname, unlockpt, OpenptFlags};
    let master = openpt(OpenptFlags::RDWR | OpenptFlags::NOCTTY).expect("open a pty");
    grantpt(&master).expect("grantpt");
    unlockpt(&master).expect("unlockpt");
    let name = ptsname(&master, Vec::new()).expect("ptsname");
    let path = Path::new(std::ffi::OsStr::from_bytes(name.to_bytes()));
    let terminal = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(path)
        .expect("open the pty's terminal side");
    (File::from(master), terminal)
}

/// A drctl process asking at a terminal: its output line by line as it
/// comes, and the terminal to type at.
struct AtPrompt {
    child: Child,
    lines: mpsc::Receiver<String>,
    keyboard: Option<File>,
    seen: Vec<String>,
}

impl AtPrompt {
    fn start(cmd: Command) -> AtPrompt {
        let (keyboard, terminal) = pseudo_terminal();
        AtPrompt::start_with(cmd, Stdio::from(terminal), Some(keyboard))
    }

    /// `cmd` with no terminal: its stdin closed.
    fn start_without_terminal(cmd: Command) -> AtPrompt {
        AtPrompt::start_with(cmd, Stdio::null(), None)
    }

    fn start_with(mut cmd: Command, stdin: Stdio, keyboard: Option<File>) -> AtPrompt {
        let mut child = cmd
            .stdin(stdin)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start drctl");
        let (send, lines) = mpsc::channel();
        for out in [
            Box::new(child.stdout.take().unwrap()) as Box<dyn std::io::Read + Send>,
            Box::new(child.stderr.take().unwrap()),
        ] {
            let send = send.clone();
            std::thread::spawn(move || {
                for line in BufReader::new(out).lines().map_while(Result::ok) {
                    let _ = send.send(line);
                }
            });
        }
        AtPrompt {
            child,
            lines,
            keyboard,
            seen: Vec::new(),
        }
    }

    /// `cmd` (an apply) started, its plan confirmed: it and its run's id.
    fn apply_confirmed(cmd: Command) -> (AtPrompt, String) {
        let mut at = AtPrompt::start(cmd);
        // Typed ahead: a prompt's line ends only with what follows it.
        at.type_line("yes");
        let run = at.until("Run ");
        let id = run.split_whitespace().nth(1).expect("a run id").to_string();
        (at, id)
    }

    fn text(&self) -> String {
        self.seen.join("\n")
    }

    /// Reads output until a line contains `needle`; that line.
    fn until(&mut self, needle: &str) -> String {
        loop {
            match self.lines.recv_timeout(PATIENCE) {
                Ok(line) => {
                    self.seen.push(line.clone());
                    if line.contains(needle) {
                        return line;
                    }
                }
                Err(_) => panic!("no `{needle}` from drctl in:\n{}", self.text()),
            }
        }
    }

    fn type_line(&mut self, line: &str) {
        let keyboard = self.keyboard.as_mut().expect("a terminal");
        writeln!(keyboard, "{line}").expect("type at the terminal");
    }

    /// Its exit code once it ended by itself, and all it printed.
    fn end(mut self) -> (Option<i32>, String) {
        loop {
            match self.lines.recv_timeout(PATIENCE) {
                Ok(line) => self.seen.push(line),
                // Its output closed: it is ending.
                Err(mpsc::RecvTimeoutError::Disconnected) => break,
                Err(mpsc::RecvTimeoutError::Timeout) => {
                    let _ = self.child.kill();
                    panic!("drctl still waits at its prompt:\n{}", self.text());
                }
            }
        }
        let status = self.child.wait().expect("wait for drctl");
        (status.code(), self.text())
    }
}

/// `try` until it says yes: the other person's command, given as soon as
/// the run is there to take it.
fn until_accepted(what: &str, mut try_it: impl FnMut() -> (Option<i32>, String)) -> String {
    let mut last = String::new();
    for _ in 0..480 {
        let (code, text) = try_it();
        if code == Some(0) {
            return text;
        }
        last = text;
        std::thread::sleep(Duration::from_millis(500));
    }
    panic!("{what} was never accepted; last answer:\n{last}");
}

#[tokio::test]
async fn a_prompt_on_one_machine_goes_on_when_another_machine_approves() {
    let bucket = new_bucket("prompt").await;
    let a = Machine::new(&bucket, 99, "\"manual\"");
    let b = Machine::new(&bucket, 99, "\"manual\"");

    let (at_a, id) = AtPrompt::apply_confirmed(a.command(&["apply", "rb"]));
    // Nobody types at A's gate: B approves it, as soon as the run waits there.
    until_accepted("B's approval", || {
        b.run(&["approve", &id, "--as", "bob", "--reason", "from B"])
    });
    let (code, text) = at_a.end();
    assert_eq!(code, Some(0), "A went on and finished:\n{text}");
    assert!(text.contains("approved by bob"), "{text}");
    assert!(!text.contains("approved by tester"), "{text}");

    let (code, text) = b.run(&["runs", "show", &id]);
    assert_eq!(code, Some(0), "{text}");
    assert!(text.contains("status: succeeded"), "{text}");
    let (code, text) = a.run(&["destroy", "rb", "--auto-approve"]);
    assert_eq!(code, Some(0), "{text}");
}

#[tokio::test]
async fn a_prompt_ends_when_another_terminal_rejects_the_run() {
    // The local store: two terminals of one machine.
    let local = Local::new("prompt-reject", 96, "\"manual\"");
    let (at_a, id) = AtPrompt::apply_confirmed(local.command(&["apply", "rb"]));
    until_accepted("the rejection", || {
        local.run(&["reject", &id, "--as", "bob", "--reason", "no"])
    });
    let (code, text) = at_a.end();
    assert_eq!(code, Some(1), "A ended, rejected:\n{text}");
    assert!(text.contains("rejected by bob"), "{text}");

    let (code, text) = local.run(&["runs", "show", &id]);
    assert_eq!(code, Some(0), "{text}");
    assert!(text.contains("status: rejected"), "{text}");
    let (code, text) = local.run(&["destroy", "rb", "--auto-approve"]);
    assert_eq!(code, Some(0), "{text}");
}

/// The example fleet with a manual gate before `compute` of `gate`, in a
/// state directory of its own: `drctl ARGS` there.
struct Local {
    repo: Repo,
    state: tempfile::TempDir,
}

impl Local {
    fn new(env: &str, octet: u8, gate: &str) -> Local {
        let vars = format!(
            "cidr = \"10.{octet}.0.0/16\"\nsubnet_a_cidr = \"10.{octet}.1.0/24\"\nsubnet_b_cidr = \"10.{octet}.2.0/24\""
        );
        Local {
            repo: Repo::fleet_rehearsal(env, "us-west-2", &vars, gate),
            state: tempfile::tempdir().unwrap(),
        }
    }

    fn command(&self, args: &[&str]) -> Command {
        let mut cmd = drctl_at(self.repo.root(), self.state.path(), moto_endpoint());
        cmd.current_dir(self.repo.root()).args(args);
        cmd
    }

    fn run(&self, args: &[&str]) -> (Option<i32>, String) {
        crate::support::outcome(&mut self.command(args))
    }
}

#[tokio::test]
async fn a_run_started_with_wait_and_no_terminal_goes_on_when_someone_approves() {
    let local = Local::new("wait-approve", 97, "\"manual\"");
    let mut waiting = AtPrompt::start_without_terminal(local.command(&["apply", "rb", "--wait"]));
    let id = waiting
        .until("Run ")
        .split_whitespace()
        .nth(1)
        .expect("a run id")
        .to_string();
    waiting.until("Waiting at the gate before phase `compute`");
    until_accepted("the approval", || {
        local.run(&["approve", &id, "--as", "bob"])
    });
    let (code, text) = waiting.end();
    assert_eq!(code, Some(0), "it went on and finished:\n{text}");
    assert!(text.contains("approved by bob"), "{text}");
    let (code, text) = local.run(&["destroy", "rb", "--auto-approve"]);
    assert_eq!(code, Some(0), "{text}");
}

#[tokio::test]
async fn a_run_waiting_for_approvals_is_rejected_at_the_gates_deadline() {
    let local = Local::new(
        "wait-deadline",
        98,
        "{ manual = { timeout = \"3s\", on_timeout = \"reject\" } }",
    );
    let waiting = AtPrompt::start_without_terminal(local.command(&["apply", "rb", "--wait"]));
    // Nobody approves: the deadline ends the wait.
    let (code, text) = waiting.end();
    assert_eq!(code, Some(1), "rejected:\n{text}");
    assert!(
        text.contains("Waiting at the gate before phase `compute`")
            && text.contains("rejected by its timeout (no approval within 3s)"),
        "{text}"
    );
    let (code, text) = local.run(&["destroy", "rb", "--auto-approve"]);
    assert_eq!(code, Some(0), "{text}");
}

#[tokio::test]
async fn an_approval_on_another_machine_is_posted_to_the_teams_webhook() {
    let bucket = new_bucket("notify").await;
    let hook = crate::notify::Receiver::start(0);
    let settings = format!("\n[notify]\nwebhooks = [\"{}\"]\n", hook.url);
    let a = Machine::new(&bucket, 100, "\"manual\"");
    let b = Machine::new(&bucket, 100, "\"manual\"");
    a.add_settings(&settings);
    b.add_settings(&settings);
    let (code, text) = a.run(&["apply", "rb"]);
    assert_eq!(code, Some(3), "paused at the gate: {text}");
    let approve = crate::support::printed_after(&text, "drctl approve ");
    let id = approve.split_whitespace().next().unwrap().to_string();
    assert_eq!(hook.events("gate_waiting").len(), 1);
    // A's checkout is gone: B's own says where the team's webhook is.
    drop(a);
    let (code, text) = b.run(&["approve", &id, "--as", "bob"]);
    assert_eq!(code, Some(0), "{text}");
    let decided = hook.events("gate_decided");
    assert!(
        decided.len() == 1 && decided[0]["by"] == "bob" && decided[0]["run_id"] == id.as_str(),
        "{decided:?}"
    );
    let (code, text) = b.run(&["resume", &id]);
    assert_eq!(code, Some(0), "{text}");
    let (code, text) = b.run(&["destroy", "rb", "--auto-approve"]);
    assert_eq!(code, Some(0), "{text}");
}
