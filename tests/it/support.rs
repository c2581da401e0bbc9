//! Test fixtures: throw-away repositories and the shared moto server.

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use drctl::sandbox::{ensure_venv, TetheredMoto};

/// A minimal valid repository: two stacks and one phased runbook.
pub const NET: &str = r#"description = "network"

[vars]
cidr = "10.0.0.0/16"

[resources.vpc.main]
cidr_block = "${var.cidr}"

[resources.subnet.a]
vpc = "${vpc.main.id}"
cidr_block = "10.0.1.0/24"
availability_zone = "${env.region}a"

[outputs]
vpc_id = "${vpc.main.id}"
subnet_ids = ["${subnet.a.id}"]
"#;

pub const APP: &str = r#"[resources.security_group.web]
vpc = "${stack.net.vpc_id}"
description = "web"
ingress = [{ protocol = "tcp", port = 80, cidr = "0.0.0.0/0" }]

[resources.load_balancer.lb]
subnets = "${stack.net.subnet_ids}"

[resources.listener.http]
load_balancer = "${load_balancer.lb.arn}"
protocol = "HTTP"
port = 80

[resources.service.web]
image = "ami-1e749f67"
count = 2
instance_type = "t3.micro"
subnets = "${stack.net.subnet_ids}"
port = 80
listener = "${listener.http.arn}"
"#;

pub const RUNBOOK: &str = r#"environment = "test-env"
region = "us-east-1"
stacks = ["app"]

[[phases]]
name = "one"
stacks = ["net"]

[[phases]]
name = "two"
stacks = ["app"]
gate = "manual"

[[phases]]
name = "switch"
cutover = ["app.service.web"]
gate = { manual = { approvals = 2, approvers = ["alice", "bob"] } }
"#;

/// A repository in a temporary directory.
pub struct Repo {
    pub dir: tempfile::TempDir,
}

impl Repo {
    /// The minimal valid repository, with `overrides` (path, content) written over it;
    /// an empty content deletes the file.
    pub fn with(overrides: &[(&str, &str)]) -> Repo {
        let repo = Repo {
            dir: tempfile::tempdir().expect("temp dir"),
        };
        repo.write("stacks/net.toml", NET);
        repo.write("stacks/app.toml", APP);
        repo.write("runbooks/rb.toml", RUNBOOK);
        for (path, content) in overrides {
            if content.is_empty() {
                std::fs::remove_file(repo.path(path)).expect("remove fixture file");
            } else {
                repo.write(path, content);
            }
        }
        repo
    }

    /// The example `network` and `fleet` stacks (the fleet of moto's stock
    /// Amazon Linux image, not the baked app image) with a two-phase runbook
    /// `rb` for environment `env` in `region`: `vars` (TOML lines) under
    /// `[vars]`, and `gate` before the `compute` phase.
    pub fn fleet_rehearsal(env: &str, region: &str, vars: &str, gate: &str) -> Repo {
        let repo = Repo::with(&[]);
        let examples = Path::new(env!("CARGO_MANIFEST_DIR")).join("stacks");
        for stack in ["network", "fleet"] {
            let text = std::fs::read_to_string(examples.join(format!("{stack}.toml")))
                .expect("read example stack");
            // moto's built-in Amazon Linux image instead of the baked app
            // image: tests of baking are in bake.rs, these are of the rest.
            let text = text.replace("${stack.app-image.image_id}", "ami-1e749f67");
            repo.write(&format!("stacks/{stack}.toml"), &text);
        }
        repo.write(
            "runbooks/rb.toml",
            &format!(
                "environment = \"{env}\"\nregion = \"{region}\"\nstacks = [\"fleet\"]\n\n[vars]\n{vars}\n\n\
                 [[phases]]\nname = \"foundation\"\nstacks = [\"network\"]\n\n\
                 [[phases]]\nname = \"compute\"\nstacks = [\"fleet\"]\ngate = {gate}\n"
            ),
        );
        repo
    }

    pub fn path(&self, rel: &str) -> PathBuf {
        self.dir.path().join(rel)
    }

    pub fn root(&self) -> &Path {
        self.dir.path()
    }

    /// Rewrites file `rel` through `change`.
    pub fn edit(&self, rel: &str, change: impl FnOnce(&str) -> String) {
        let text = std::fs::read_to_string(self.path(rel)).expect("read fixture");
        self.write(rel, &change(&text));
    }

    pub fn write(&self, rel: &str, content: &str) {
        let path = self.path(rel);
        std::fs::create_dir_all(path.parent().expect("has parent")).expect("mkdir");
        std::fs::write(path, content).expect("write fixture");
    }

    /// Every problem `validate` finds, one line each, with paths relative to the repo.
    pub fn problems(&self) -> Vec<String> {
        let (_, diags) = drctl::load::validate::load_project(self.root(), &[]);
        let root = format!("{}/", self.root().display());
        diags
            .sorted()
            .iter()
            .map(|d| d.to_string().replace(&root, ""))
            .collect()
    }
}

/// The endpoint of this test process's moto server, started on first use.
/// The venv is cached under target/ so only the first run on a machine pays
/// for pip.
pub fn moto_endpoint() -> &'static str {
    static MOTO: OnceLock<TetheredMoto> = OnceLock::new();
    MOTO.get_or_init(|| {
        let log = Path::new(env!("CARGO_TARGET_TMPDIR")).join("drctl-moto/moto.log");
        TetheredMoto::start(&moto_venv(), &log)
            .unwrap_or_else(|e| panic!("cannot start moto for the tests: {e}"))
    })
    .endpoint()
}

/// The tests' moto virtualenv, installed on first use (a minute or two) and
/// kept under target/ for later runs.
pub fn moto_venv() -> PathBuf {
    static VENV: OnceLock<PathBuf> = OnceLock::new();
    VENV.get_or_init(|| {
        let venv = Path::new(env!("CARGO_TARGET_TMPDIR")).join("drctl-moto/venv");
        ensure_venv(&venv).unwrap_or_else(|e| panic!("cannot install moto for the tests: {e}"));
        venv
    })
    .clone()
}

/// A state directory whose sandbox shares the tests' venv (no second install).
pub fn state_dir_sharing_venv() -> tempfile::TempDir {
    let state = tempfile::tempdir().expect("temp dir");
    std::fs::create_dir_all(state.path().join("sandbox")).expect("mkdir");
    std::os::unix::fs::symlink(moto_venv(), state.path().join("sandbox/venv")).expect("symlink");
    state
}

/// The drctl binary built for these tests, with its per-user run index
/// under target/ rather than the user's home.
pub fn drctl() -> std::process::Command {
    let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_drctl"));
    cmd.env(
        "XDG_STATE_HOME",
        Path::new(env!("CARGO_TARGET_TMPDIR")).join("drctl-index"),
    );
    cmd
}

/// `drctl` for repository `root` with state in `state`, talking to
/// `endpoint` with moto's credentials as user `tester`, stdin closed.
pub fn drctl_at(root: &Path, state: &Path, endpoint: &str) -> std::process::Command {
    let mut cmd = drctl();
    cmd.env("AWS_ACCESS_KEY_ID", "testing")
        .env("AWS_SECRET_ACCESS_KEY", "testing")
        .env("USER", "tester")
        .args(["--root", root.to_str().expect("a UTF-8 path")])
        .args(["--state-dir", state.to_str().expect("a UTF-8 path")])
        .args(["--endpoint-url", endpoint])
        .stdin(std::process::Stdio::null());
    cmd
}

/// Runs `cmd`: its exit code, and stdout then stderr as one text.
pub fn outcome(cmd: &mut std::process::Command) -> (Option<i32>, String) {
    let out = cmd.output().expect("run drctl");
    let text =
        String::from_utf8_lossy(&out.stdout).to_string() + &String::from_utf8_lossy(&out.stderr);
    (out.status.code(), text)
}

/// The command drctl printed after `prefix`, up to the end of its line.
pub fn printed_after<'a>(text: &'a str, prefix: &str) -> &'a str {
    let at = text
        .find(prefix)
        .unwrap_or_else(|| panic!("no `{prefix}` in: {text}"))
        + prefix.len();
    text[at..].lines().next().unwrap().trim()
}

/// Runs a command exactly as drctl printed it, in `cwd`, with nothing but
/// credentials in the environment.
pub fn verbatim(cwd: &Path, printed: &str) -> (Option<i32>, String) {
    let words: Vec<&str> = printed.split_whitespace().collect();
    assert_eq!(words.first(), Some(&"drctl"), "{printed}");
    let out = drctl()
        .current_dir(cwd)
        .env("AWS_ACCESS_KEY_ID", "testing")
        .env("AWS_SECRET_ACCESS_KEY", "testing")
        .env_remove("AWS_ENDPOINT_URL")
        .env("USER", "tester")
        .args(&words[1..])
        .stdin(std::process::Stdio::null())
        .output()
        .expect("run drctl");
    let text =
        String::from_utf8_lossy(&out.stdout).to_string() + &String::from_utf8_lossy(&out.stderr);
    (out.status.code(), text)
}

/// Connects the application layer to an endpoint: the tests' moto server,
/// or a fault proxy in front of it.
pub struct ConnectTo(pub String);

impl ConnectTo {
    pub fn moto() -> Self {
        ConnectTo(moto_endpoint().to_string())
    }
}

impl drctl::app::Connect for ConnectTo {
    async fn connect(&self, region: &str) -> Result<drctl::cloud::aws::AwsProvider, drctl::Error> {
        let settings = drctl::cloud::AwsSettings::sandbox(&self.0, region);
        Ok(drctl::cloud::aws::AwsProvider::new(&settings.load().await))
    }

    fn target(&self, region: &str, state_dir: &Path) -> drctl::journal::RunTarget {
        drctl::journal::RunTarget {
            endpoint_url: Some(self.0.clone()),
            sandbox: false,
            profile: None,
            region: region.to_string(),
            state_dir: state_dir.to_path_buf(),
            fallback: None,
        }
    }
}

/// Runs the binary in `repo`'s root with its own state directory
/// (`.drctl` inside it) and sandbox credentials: (exit code, stdout, stderr).
pub fn run_in_repo(repo: &Repo, args: &[&str]) -> (Option<i32>, String, String) {
    let out = drctl()
        .current_dir(repo.root())
        .env_remove("DRCTL_STATE_DIR")
        .env("AWS_ACCESS_KEY_ID", "testing")
        .env("AWS_SECRET_ACCESS_KEY", "testing")
        .args(["--state-dir", repo.path(".drctl").to_str().unwrap()])
        .args(args)
        .stdin(std::process::Stdio::null())
        .output()
        .expect("run drctl");
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stdout).to_string(),
        String::from_utf8_lossy(&out.stderr).to_string(),
    )
}

/// The id of the first run under `state_dir` (the only one, in most tests).
pub fn first_run_id(state_dir: &Path) -> String {
    std::fs::read_dir(state_dir.join("runs"))
        .expect("a runs directory")
        .next()
        .expect("a run")
        .expect("a readable entry")
        .file_name()
        .into_string()
        .expect("a UTF-8 run id")
}

/// Every run's journal (`events.jsonl`) under `state_dir`, by run id.
pub fn journals(state_dir: &Path) -> Vec<(String, String)> {
    let Ok(runs) = std::fs::read_dir(state_dir.join("runs")) else {
        return Vec::new();
    };
    runs.filter_map(|e| {
        let dir = e.ok()?.path();
        let journal = std::fs::read_to_string(dir.join("events.jsonl")).ok()?;
        Some((dir.file_name()?.to_string_lossy().to_string(), journal))
    })
    .collect()
}

/// The run ids under `state_dir`, oldest first by their journals' start
/// (two runs started in one second do not sort by id).
pub fn runs_by_start(state_dir: &Path) -> Vec<String> {
    let mut runs: Vec<(i64, String)> = journals(state_dir)
        .into_iter()
        .map(|(id, journal)| {
            let first: serde_json::Value =
                serde_json::from_str(journal.lines().next().expect("a start record")).unwrap();
            (first["at"].as_i64().expect("a start time"), id)
        })
        .collect();
    runs.sort();
    runs.into_iter().map(|(_, id)| id).collect()
}

/// The drills' JSON reports of `runbook` under `state_dir`, oldest first,
/// with their paths.
pub fn json_reports(state_dir: &Path, runbook: &str) -> Vec<(PathBuf, serde_json::Value)> {
    let mut paths: Vec<PathBuf> = std::fs::read_dir(state_dir.join("reports").join(runbook))
        .map(|d| d.map(|e| e.unwrap().path()).collect())
        .unwrap_or_default();
    paths.retain(|p| p.extension().is_some_and(|x| x == "json"));
    paths.sort();
    paths
        .into_iter()
        .map(|p| {
            let report = serde_json::from_str(&std::fs::read_to_string(&p).unwrap()).unwrap();
            (p, report)
        })
        .collect()
}

/// Runs `command` with a SIGKILL right after the journal's `event` (a
/// number, or an event's name), asserts it was killed, and returns what it
/// printed.
pub fn killed_after(command: &mut std::process::Command, event: &str) -> String {
    use std::os::unix::process::ExitStatusExt;
    let out = command
        .env("DRCTL_CRASH_AFTER_EVENT", event)
        .output()
        .expect("run drctl");
    let text =
        String::from_utf8_lossy(&out.stdout).to_string() + &String::from_utf8_lossy(&out.stderr);
    assert_eq!(
        out.status.signal(),
        Some(9),
        "killed after event {event}: {text}"
    );
    text
}
