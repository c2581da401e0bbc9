//! The binary's contract: exit codes and messages, help, completions, and
//! hints that name what to type.

use clap::CommandFactory as _;

use crate::support::{drctl, moto_endpoint, Repo, NET};

#[test]
fn validate_accepts_the_examples() {
    let out = drctl()
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .args(["validate", "runbooks/web-dr-drill.toml"])
        .output()
        .expect("run drctl");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        stdout
            .contains("ok: runbook web-dr-drill (3 phases, environment web-dr, region us-west-2)"),
        "{stdout}"
    );
}

#[test]
fn invalid_input_exits_2_with_every_problem() {
    let repo = Repo::with(&[(
        "stacks/net.toml",
        &NET.replace("${var.cidr}", "${var.cdir}")
            .replace("availability_zone", "availability_zon"),
    )]);
    let out = drctl()
        .current_dir(repo.root())
        .args(["validate"])
        .output()
        .expect("run drctl");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains(
            "stacks/net.toml:7:15: resources.vpc.main.cidr_block: unknown variable `cdir`"
        ),
        "{stderr}"
    );
    assert!(
        stderr.contains("unknown key `availability_zon`"),
        "{stderr}"
    );
    assert!(stderr.contains("3 problems found"), "{stderr}");
}

#[test]
fn an_unknown_runbook_is_a_usage_error() {
    let repo = Repo::with(&[]);
    let out = drctl()
        .current_dir(repo.root())
        .args(["graph", "rbb"])
        .output()
        .expect("run drctl");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("no runbook `rbb`"), "{stderr}");
    assert!(stderr.contains("did you mean `rb`?"), "{stderr}");
}

#[test]
fn graph_prints_the_requested_format() {
    let repo = Repo::with(&[]);
    let out = drctl()
        .args([
            "--root",
            repo.root().to_str().unwrap(),
            "graph",
            "rb",
            "--format",
            "mermaid",
        ])
        .output()
        .expect("run drctl");
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("net --> app"));
}

#[test]
fn usage_errors_exit_2() {
    let out = drctl()
        .args(["graph", "--format", "svg", "rb"])
        .output()
        .expect("run drctl");
    assert_eq!(out.status.code(), Some(2));
}

#[test]
fn a_drill_refuses_a_run_id_that_is_no_file_name_before_anything_else() {
    let repo = Repo::with(&[]);
    for bad in ["../escape", "", ".hidden", "a/b"] {
        let (code, _, err) = run_in(&repo, &["drill", "rb", "--run-id", bad]);
        assert_eq!(code, Some(2), "{bad:?}: {err}");
        assert!(err.contains("is not a run id"), "{bad:?}: {err}");
    }
}

/// Runs drctl in `repo` with its own state dir, no terminal on stdin, and
/// moto's credentials (used only by commands given `--endpoint-url`).
fn run_in(repo: &Repo, args: &[&str]) -> (Option<i32>, String, String) {
    crate::support::run_in_repo(repo, args)
}

#[test]
fn help_lists_global_options_exit_codes_and_environment() {
    let out = drctl()
        .env_remove("DRCTL_STATE_DIR")
        .arg("--help")
        .output()
        .expect("run drctl");
    assert_eq!(out.status.code(), Some(0));
    insta::assert_snapshot!("help", String::from_utf8_lossy(&out.stdout));
}

#[test]
fn every_argument_of_every_command_has_help() {
    fn undocumented(cmd: &clap::Command, path: &str, found: &mut Vec<String>) {
        let path = format!("{path} {}", cmd.get_name());
        for arg in cmd.get_arguments() {
            let id = arg.get_id().as_str();
            if !matches!(id, "help" | "version") && arg.get_help().is_none() {
                found.push(format!("{path}: {id}"));
            }
        }
        for sub in cmd.get_subcommands() {
            undocumented(sub, &path, found);
        }
    }
    let mut found = Vec::new();
    undocumented(&drctl::cli::Cli::command(), "", &mut found);
    assert!(found.is_empty(), "arguments without help: {found:#?}");
}

#[test]
fn every_command_has_an_example() {
    let cli = drctl::cli::Cli::command();
    let missing: Vec<_> = cli
        .get_subcommands()
        .filter(|c| {
            !c.get_after_help()
                .is_some_and(|h| h.to_string().contains("drctl "))
        })
        .map(|c| c.get_name().to_string())
        .collect();
    assert!(
        missing.is_empty(),
        "commands without an example: {missing:?}"
    );
}

#[test]
fn bash_completions_cover_the_commands() {
    let out = drctl()
        .args(["completions", "bash"])
        .output()
        .expect("run drctl");
    assert_eq!(out.status.code(), Some(0));
    let script = String::from_utf8_lossy(&out.stdout);
    assert!(script.contains("complete -F _drctl"), "{script}");
    assert!(script.contains("apply"), "{script}");
}

#[test]
fn a_runbook_named_with_its_extension_is_its_name() {
    let repo = Repo::with(&[]);
    let (code, _, stderr) = run_in(&repo, &["graph", "rb.toml"]);
    assert_eq!(code, Some(0), "{stderr}");

    let (code, _, stderr) = run_in(&repo, &["graph", "rbb.toml"]);
    assert_eq!(code, Some(2), "{stderr}");
    assert!(stderr.contains("no runbook `rbb.toml`"), "{stderr}");
    assert!(stderr.contains("runbooks/rbb.toml"), "{stderr}");
    assert!(stderr.contains("did you mean `rb`?"), "{stderr}");
    assert!(!stderr.contains(".toml.toml"), "{stderr}");
}

#[test]
fn unlock_names_the_lock_by_runbook_or_env_at_region() {
    let repo = Repo::with(&[]);
    let (code, stdout, stderr) = run_in(&repo, &["unlock", "rb"]);
    assert_eq!(code, Some(0), "{stderr}");
    assert_eq!(stdout, "test-env@us-east-1 is not locked.\n");

    let (code, stdout, stderr) = run_in(&repo, &["unlock", "test-env@eu-west-1"]);
    assert_eq!(code, Some(0), "{stderr}");
    assert_eq!(stdout, "test-env@eu-west-1 is not locked.\n");
}

#[test]
fn unlock_of_a_bare_environment_is_a_usage_error_showing_both_forms() {
    let repo = Repo::with(&[]);
    let (code, stdout, stderr) = run_in(&repo, &["unlock", "test-env"]);
    assert_eq!(code, Some(2), "{stdout}{stderr}");
    assert!(
        stderr.contains("`test-env` is neither a runbook nor ENV@REGION"),
        "{stderr}"
    );
    assert!(stderr.contains("`drctl unlock RUNBOOK`"), "{stderr}");
    assert!(
        stderr.contains("`drctl unlock test-env@REGION`"),
        "{stderr}"
    );
    assert!(
        !stderr.contains("us-east-1"),
        "no region is made up: {stderr}"
    );

    let (code, _, stderr) = run_in(&repo, &["unlock", "test-env@"]);
    assert_eq!(code, Some(2), "{stderr}");
    assert!(stderr.contains("ENV@REGION"), "{stderr}");
}

#[test]
fn unlock_removes_a_left_lock_only_when_confirmed() {
    let repo = Repo::with(&[]);
    let lock = repo.path(".drctl/locks/test-env@us-east-1.lock");
    std::fs::create_dir_all(lock.parent().unwrap()).unwrap();
    let holder = drctl::lock::LockHolder {
        pid: 4_000_000,
        host: "elsewhere".into(),
        user: "alice".into(),
        run_id: "run-left".into(),
        since: Default::default(),
    };
    std::fs::write(&lock, serde_json::to_vec(&holder).unwrap()).unwrap();

    let (code, stdout, stderr) = run_in(&repo, &["unlock", "rb"]);
    assert_eq!(code, Some(2), "{stdout}{stderr}");
    assert!(stdout.contains("is locked by run run-left"), "{stdout}");
    assert!(stderr.contains("no terminal to ask on"), "{stderr}");
    assert!(
        stderr.contains("pass --yes: drctl unlock test-env@us-east-1 --yes"),
        "{stderr}"
    );
    assert!(lock.exists(), "an unconfirmed unlock leaves the lock");

    let (code, stdout, stderr) = run_in(&repo, &["unlock", "rb", "--yes"]);
    assert_eq!(code, Some(0), "{stderr}");
    assert!(stdout.contains("Unlocked test-env@us-east-1."), "{stdout}");
    assert!(!lock.exists());
}

#[test]
fn destroy_without_a_terminal_says_to_pass_auto_approve() {
    let repo = Repo::with(&[(
        "runbooks/rb.toml",
        "environment = \"it-cli-destroy\"\nregion = \"us-east-1\"\nstacks = [\"net\"]\n",
    )]);
    let endpoint = ["--endpoint-url", moto_endpoint(), "-q"];
    let (code, stdout, stderr) = run_in(
        &repo,
        &[&endpoint[..], &["apply", "rb", "--auto-approve"]].concat(),
    );
    assert_eq!(code, Some(0), "{stdout}{stderr}");

    let (code, stdout, stderr) = run_in(&repo, &[&endpoint[..], &["destroy", "rb"]].concat());
    assert_eq!(code, Some(2), "{stdout}{stderr}");
    assert!(
        stderr.contains("hint: pass --auto-approve to destroy without asking"),
        "{stderr}"
    );

    let (code, stdout, stderr) = run_in(
        &repo,
        &[&endpoint[..], &["destroy", "rb", "--auto-approve"]].concat(),
    );
    assert_eq!(code, Some(0), "{stdout}{stderr}");
}
