//! What the operator sees: saved plans that apply from anywhere, outputs
//! after an apply and from `drctl output`, what a rejection leaves behind.

use std::path::Path;
use std::process::Stdio;

use crate::support::{drctl, moto_endpoint, printed_after, verbatim, Repo};

const REGION: &str = "ap-southeast-2";

fn fleet(env: &str, octet: u8, gate: &str) -> Repo {
    let vars = format!(
        "cidr = \"10.{octet}.0.0/16\"\nsubnet_a_cidr = \"10.{octet}.1.0/24\"\nsubnet_b_cidr = \"10.{octet}.2.0/24\""
    );
    Repo::fleet_rehearsal(env, REGION, &vars, gate)
}

/// Runs the binary in `cwd` with the given global flags and arguments.
fn run_in(cwd: &Path, state: &Path, args: &[&str]) -> (Option<i32>, String) {
    let out = drctl()
        .current_dir(cwd)
        .env("AWS_ACCESS_KEY_ID", "testing")
        .env("AWS_SECRET_ACCESS_KEY", "testing")
        .env("USER", "tester")
        .args(["--state-dir", state.to_str().unwrap()])
        .args(["--endpoint-url", moto_endpoint(), "-q"])
        .args(args)
        .stdin(Stdio::null())
        .output()
        .expect("run drctl");
    let text =
        String::from_utf8_lossy(&out.stdout).to_string() + &String::from_utf8_lossy(&out.stderr);
    (out.status.code(), text)
}

#[tokio::test]
async fn a_saved_plan_applies_from_another_directory_and_outputs_are_shown() {
    let repo = fleet("operator-saved", 161, "\"auto\"");
    let state = tempfile::tempdir().unwrap();
    // Planned in the project root, with a relative path and no --root.
    let (code, text) = run_in(
        repo.root(),
        state.path(),
        &["plan", "rb", "--out", "p.json"],
    );
    assert_eq!(code, Some(0), "{text}");
    let hint = printed_after(&text, "Apply exactly it with: ");
    assert_eq!(hint, "drctl apply p.json");

    // Applied from a subdirectory and from elsewhere, by relative path.
    let elsewhere = tempfile::tempdir().unwrap();
    let relative = pathdiff(repo.path("p.json"), elsewhere.path());
    // As printed (the plan remembers its endpoint), by a relative path.
    let (code, text) = verbatim(elsewhere.path(), &format!("drctl apply {relative}"));
    assert_eq!(code, Some(0), "{text}");
    assert!(text.contains("Apply complete"), "{text}");
    let url = printed_after(&text, "url          = ");
    assert!(
        url.starts_with("\"http://") && url.contains("elb.amazonaws.com"),
        "the load balancer's URL is shown: {text}"
    );

    // The same outputs, read back from what exists (no state file).
    let runbooks = repo.path("runbooks");
    let (code, raw) = run_in(
        &runbooks,
        state.path(),
        &["--root", "..", "output", "rb", "url"],
    );
    assert_eq!(code, Some(0), "{raw}");
    assert_eq!(format!("\"{}\"", raw.trim()), url, "raw value for scripts");
    let (code, json) = run_in(repo.root(), state.path(), &["output", "rb", "--json"]);
    assert_eq!(code, Some(0), "{json}");
    let parsed: serde_json::Value = serde_json::from_str(&json).expect("JSON outputs");
    assert_eq!(parsed["instance_ids"].as_array().map(Vec::len), Some(2));
    let (code, text) = run_in(repo.root(), state.path(), &["output", "rb", "urll"]);
    assert_eq!(code, Some(2), "{text}");
    assert!(text.contains("did you mean `url`"), "{text}");

    let (code, text) = run_in(
        repo.root(),
        state.path(),
        &["destroy", "rb", "--auto-approve"],
    );
    assert_eq!(code, Some(0), "{text}");
}

/// `target` relative to `from` (both absolute), e.g. `../../tmp/x/p.json`.
fn pathdiff(target: std::path::PathBuf, from: &Path) -> String {
    let target = target.canonicalize().unwrap();
    let from = from.canonicalize().unwrap();
    let common = target
        .components()
        .zip(from.components())
        .take_while(|(a, b)| a == b)
        .count();
    let ups = from.components().count() - common;
    let mut out: Vec<String> = vec!["..".to_string(); ups];
    out.extend(
        target
            .components()
            .skip(common)
            .map(|c| c.as_os_str().to_string_lossy().into_owned()),
    );
    out.join("/")
}

#[tokio::test]
async fn a_rejected_run_says_what_it_left_built_and_how_to_remove_it() {
    let repo = fleet("operator-rejected", 162, "\"manual\"");
    let state = tempfile::tempdir().unwrap();
    let root = repo.root().to_str().unwrap().to_string();
    let (code, text) = run_in(repo.root(), state.path(), &["apply", "rb"]);
    assert_eq!(code, Some(3), "{text}");
    let id = printed_after(&text, "then continue: drctl resume ")
        .split_whitespace()
        .next()
        .unwrap()
        .to_string();
    let (code, text) = run_in(
        repo.root(),
        state.path(),
        &["reject", &id, "--as", "carol", "--reason", "wrong window"],
    );
    assert_eq!(code, Some(0), "{text}");
    assert!(
        text.contains("left 7 resource(s) of operator-rejected built")
            && text.contains("network.vpc.main"),
        "{text}"
    );
    let destroy = printed_after(&text, "Remove them with: ");
    assert_eq!(destroy, format!("drctl --root {root} destroy rb"));
    // Run as printed (with this test's endpoint and state flags), from elsewhere.
    let elsewhere = tempfile::tempdir().unwrap();
    let mut args: Vec<&str> = destroy.split(' ').skip(1).collect();
    args.push("--auto-approve");
    let (code, text) = run_in(elsewhere.path(), state.path(), &args);
    assert_eq!(code, Some(0), "{text}");
    assert!(
        text.contains("Nothing carries drctl:env=operator-rejected any more"),
        "{text}"
    );
}

#[tokio::test]
async fn the_printed_approve_and_resume_work_verbatim_from_anywhere() {
    let repo = fleet("operator-verbatim", 163, "\"manual\"");
    let state = tempfile::tempdir().unwrap();
    // The endpoint comes from --endpoint-url alone (no environment variable).
    let (code, text) = run_in(
        repo.root(),
        state.path(),
        &["--root", repo.root().to_str().unwrap(), "apply", "rb"],
    );
    assert_eq!(code, Some(3), "{text}");
    let approve = printed_after(&text, "Approve with:  ").to_string();
    let resume = printed_after(&text, "then continue: ").to_string();
    let elsewhere = tempfile::tempdir().unwrap();

    // Another target named explicitly is refused, not silently used.
    let id = resume.split_whitespace().last().unwrap();
    let (code, text) = verbatim(
        elsewhere.path(),
        &format!("drctl --endpoint-url http://127.0.0.1:9 resume {id}"),
    );
    assert_eq!(code, Some(2), "{text}");
    assert!(
        text.contains("the options given name another target"),
        "{text}"
    );

    let (code, text) = verbatim(elsewhere.path(), &format!("{approve} --as alice"));
    assert_eq!(code, Some(0), "{text}");
    assert!(text.contains("Approved by alice"), "{text}");
    let (code, text) = verbatim(elsewhere.path(), &resume);
    assert_eq!(code, Some(0), "{text}");
    assert!(text.contains("Outputs:"), "{text}");
    let (code, text) = verbatim(elsewhere.path(), &format!("drctl runs show {id}"));
    assert_eq!(code, Some(0), "{text}");
    assert!(text.contains("status: succeeded"), "{text}");
    let (code, text) = run_in(
        repo.root(),
        state.path(),
        &[
            "--root",
            repo.root().to_str().unwrap(),
            "destroy",
            "rb",
            "--auto-approve",
        ],
    );
    assert_eq!(code, Some(0), "{text}");
}

#[tokio::test]
async fn a_sandbox_run_resumes_on_the_sandbox_as_printed() {
    let repo = fleet("operator-sandbox", 164, "\"manual\"");
    let state = crate::support::state_dir_sharing_venv();
    let sandboxed = |args: &[&str]| {
        let out = drctl()
            .current_dir(repo.root())
            .args(["--state-dir", state.path().to_str().unwrap(), "-q"])
            .args(args)
            .stdin(Stdio::null())
            .output()
            .expect("run drctl");
        let text = String::from_utf8_lossy(&out.stdout).to_string()
            + &String::from_utf8_lossy(&out.stderr);
        (out.status.code(), text)
    };
    let (code, text) = sandboxed(&["sandbox", "start"]);
    assert_eq!(code, Some(0), "{text}");
    let (code, text) = sandboxed(&["--sandbox", "apply", "rb"]);
    assert_eq!(code, Some(3), "{text}");
    let approve = printed_after(&text, "Approve with:  ").to_string();
    let resume = printed_after(&text, "then continue: ").to_string();
    let elsewhere = tempfile::tempdir().unwrap();
    let (code, text) = verbatim(elsewhere.path(), &format!("{approve} --as alice"));
    assert_eq!(code, Some(0), "{text}");
    // No --sandbox typed: the run knows it ran on the sandbox.
    let (code, text) = verbatim(elsewhere.path(), &resume);
    assert_eq!(code, Some(0), "{text}");
    let (code, text) = sandboxed(&["--sandbox", "destroy", "rb", "--auto-approve"]);
    assert_eq!(code, Some(0), "{text}");
    let (code, text) = sandboxed(&["sandbox", "stop"]);
    assert_eq!(code, Some(0), "{text}");
}

#[tokio::test]
async fn piped_output_carries_no_escape_codes() {
    let repo = fleet("operator-plain", 165, "\"auto\"");
    let state = tempfile::tempdir().unwrap();
    let root = repo.root().to_str().unwrap().to_string();
    let mut seen = Vec::new();
    for args in [
        &["--help"][..],
        &["-v", "plan", "rb"],
        &["-v", "apply", "rb", "--auto-approve"],
        &["runs"],
        &["plan", "no-such-runbook"],
        &["-v", "destroy", "rb", "--auto-approve"],
    ] {
        let mut all = vec!["--root", root.as_str()];
        all.extend_from_slice(args);
        // -v and -q conflict: run_in adds -q, so drop it for -v runs.
        let out = drctl()
            .current_dir(repo.root())
            .env("AWS_ACCESS_KEY_ID", "testing")
            .env("AWS_SECRET_ACCESS_KEY", "testing")
            .env_remove("NO_COLOR")
            .args(["--state-dir", state.path().to_str().unwrap()])
            .args(["--endpoint-url", moto_endpoint()])
            .args(&all)
            .stdin(Stdio::null())
            .output()
            .expect("run drctl");
        let text = String::from_utf8_lossy(&out.stdout).to_string()
            + &String::from_utf8_lossy(&out.stderr);
        assert!(
            !text.contains('\u{1b}'),
            "{args:?} printed an escape code: {text:?}"
        );
        seen.push(text);
    }
    assert!(seen[2].contains("Apply complete"), "{}", seen[2]);
}

#[tokio::test]
async fn anywhere_in_the_project_is_the_project_with_its_state() {
    let repo = fleet("operator-anywhere", 166, "\"auto\"");
    let in_dir = |dir: &Path, args: &[&str]| {
        let out = drctl()
            .current_dir(dir)
            .env("AWS_ACCESS_KEY_ID", "testing")
            .env("AWS_SECRET_ACCESS_KEY", "testing")
            .env_remove("DRCTL_STATE_DIR")
            .args(["--endpoint-url", moto_endpoint(), "-q"])
            .args(args)
            .stdin(Stdio::null())
            .output()
            .expect("run drctl");
        let text = String::from_utf8_lossy(&out.stdout).to_string()
            + &String::from_utf8_lossy(&out.stderr);
        (out.status.code(), text)
    };
    // No --root, no --state-dir: found upward, as git finds its repository.
    let deep = repo.path("docs/notes");
    std::fs::create_dir_all(&deep).unwrap();
    let (code, text) = in_dir(&deep, &["plan", "rb"]);
    assert_eq!(code, Some(0), "{text}");
    let (code, text) = in_dir(&repo.path("runbooks"), &["apply", "rb", "--auto-approve"]);
    assert_eq!(code, Some(0), "{text}");
    assert!(
        repo.path(".drctl/runs").is_dir(),
        "the run is journaled in the project root's .drctl"
    );
    let (code, text) = in_dir(&repo.path("stacks"), &["runs"]);
    assert_eq!(code, Some(0), "{text}");
    assert!(text.contains("operator-anywhere"), "{text}");
    let (code, text) = in_dir(repo.root(), &["destroy", "rb", "--auto-approve"]);
    assert_eq!(code, Some(0), "{text}");
}

#[tokio::test]
async fn a_failed_run_prints_a_resume_that_works_verbatim_and_sums_up_the_whole_run() {
    use crate::proxy::{Fault, FaultProxy, Faults};
    let proxy = FaultProxy::moto(Faults::none().nth(
        "CreateLoadBalancer",
        1,
        Fault::Error("ValidationError".into()),
    ));
    let repo = fleet("operator-failed", 165, "\"auto\"");
    let state = tempfile::tempdir().unwrap();
    let out = drctl()
        .current_dir(repo.root())
        .env("AWS_ACCESS_KEY_ID", "testing")
        .env("AWS_SECRET_ACCESS_KEY", "testing")
        .args(["--state-dir", state.path().to_str().unwrap()])
        .args(["--endpoint-url", proxy.url()])
        .args(["apply", "rb", "--auto-approve"])
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let text =
        String::from_utf8_lossy(&out.stdout).to_string() + &String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{text}");
    assert!(
        text.contains(
            "fleet.load_balancer.public: ELBv2 CreateLoadBalancer failed (ValidationError)"
        ),
        "{text}"
    );
    let resume = printed_after(&text, "Resume after fixing the cause with: ").to_string();

    proxy.set_faults(Faults::none());
    let elsewhere = tempfile::tempdir().unwrap();
    let (code, text) = verbatim(elsewhere.path(), &resume);
    assert_eq!(code, Some(0), "{text}");
    assert!(text.contains("Apply complete"), "{text}");
    assert!(
        text.contains("11 added, 0 changed, 0 replaced, 0 destroyed"),
        "{text}"
    );
    let (code, text) = run_in(
        repo.root(),
        state.path(),
        &["destroy", "rb", "--auto-approve"],
    );
    assert_eq!(code, Some(0), "{text}");
}

#[tokio::test]
async fn a_sandbox_run_whose_sandbox_went_down_brings_it_back_up() {
    let repo = fleet("operator-sandbox-down", 166, "\"auto\"");
    // The first phase waits at a gate: nothing is built before the pause.
    let runbook = std::fs::read_to_string(repo.path("runbooks/rb.toml")).unwrap();
    repo.write(
        "runbooks/rb.toml",
        &runbook.replace(
            "stacks = [\"network\"]\n",
            "stacks = [\"network\"]\ngate = \"manual\"\n",
        ),
    );
    let state = crate::support::state_dir_sharing_venv();
    let sandboxed = |args: &[&str]| {
        let out = drctl()
            .current_dir(repo.root())
            .args(["--state-dir", state.path().to_str().unwrap()])
            .args(args)
            .stdin(Stdio::null())
            .output()
            .expect("run drctl");
        let text = String::from_utf8_lossy(&out.stdout).to_string()
            + &String::from_utf8_lossy(&out.stderr);
        (out.status.code(), text)
    };
    let (code, text) = sandboxed(&["sandbox", "start"]);
    assert_eq!(code, Some(0), "{text}");
    let (code, text) = sandboxed(&["--sandbox", "apply", "rb"]);
    assert_eq!(code, Some(3), "{text}");
    let approve = printed_after(&text, "Approve with:  ").to_string();
    let resume = printed_after(&text, "then continue: ").to_string();
    let (code, text) = sandboxed(&["sandbox", "stop"]);
    assert_eq!(code, Some(0), "{text}");

    let elsewhere = tempfile::tempdir().unwrap();
    let (code, text) = verbatim(elsewhere.path(), &format!("{approve} --as alice"));
    assert_eq!(code, Some(0), "{text}");
    let (code, text) = verbatim(elsewhere.path(), &resume);
    assert_eq!(code, Some(0), "{text}");
    assert!(
        text.contains("The run's sandbox was down: started it again"),
        "{text}"
    );
    let (code, text) = sandboxed(&["sandbox", "status"]);
    assert_eq!(code, Some(0), "it stays up: {text}");
    let (code, text) = sandboxed(&["--sandbox", "destroy", "rb", "--auto-approve"]);
    assert_eq!(code, Some(0), "{text}");
    assert!(
        text.contains("11"),
        "what the resume built is on the restarted sandbox: {text}"
    );
    let (code, text) = sandboxed(&["sandbox", "stop"]);
    assert_eq!(code, Some(0), "{text}");
}

#[tokio::test]
async fn region_given_on_the_command_line_is_the_runs_region() {
    let repo = fleet("operator-region", 167, "\"auto\"");
    let state = tempfile::tempdir().unwrap();
    let args = |rest: &[&str]| {
        let mut all = vec![
            "--root",
            repo.root().to_str().unwrap(),
            "--region",
            "ca-central-1",
        ];
        all.extend_from_slice(rest);
        all.into_iter().map(str::to_string).collect::<Vec<_>>()
    };
    let run = |rest: &[&str]| {
        let all = args(rest);
        let refs: Vec<&str> = all.iter().map(String::as_str).collect();
        run_in(repo.root(), state.path(), &refs)
    };
    let (code, text) = run(&["apply", "rb", "--auto-approve"]);
    assert_eq!(code, Some(0), "{text}");
    let id = crate::support::first_run_id(state.path());
    let journal =
        std::fs::read_to_string(state.path().join("runs").join(&id).join("events.jsonl")).unwrap();
    assert!(
        journal
            .lines()
            .next()
            .unwrap()
            .contains("\"region\":\"ca-central-1\""),
        "{journal}"
    );
    let (code, text) = run(&["destroy", "rb", "--auto-approve"]);
    assert_eq!(code, Some(0), "{text}");
    assert!(text.contains("ca-central-1"), "{text}");
}

#[tokio::test]
async fn a_run_stopped_by_an_error_between_steps_prints_a_resume_that_works() {
    use crate::proxy::{Fault, FaultProxy, Faults};
    // The second look at the environment (the re-plan before the first
    // phase) is refused: the run has started, so it is left to `resume`.
    let proxy = FaultProxy::moto(Faults::none().nth(
        "ec2:DescribeVpcs",
        2,
        Fault::Error("UnauthorizedOperation".into()),
    ));
    let repo = fleet("operator-stopped", 168, "\"auto\"");
    let state = tempfile::tempdir().unwrap();
    let run = |args: &[&str]| {
        crate::support::outcome(
            crate::support::drctl_at(repo.root(), state.path(), proxy.url()).args(args),
        )
    };
    let (code, text) = run(&["apply", "rb", "--auto-approve"]);
    assert_eq!(code, Some(1), "{text}");
    assert!(text.contains("UnauthorizedOperation"), "{text}");
    let resume = printed_after(&text, "continue it with: ").to_string();
    let id = resume.split_whitespace().last().unwrap().to_string();
    let (_, shown) = run(&["runs", "show", &id]);
    assert!(shown.contains("status: interrupted"), "{shown}");

    proxy.set_faults(Faults::none());
    let elsewhere = tempfile::tempdir().unwrap();
    let (code, text) = verbatim(elsewhere.path(), &resume);
    assert_eq!(code, Some(0), "{text}");
    assert!(text.contains("Apply complete"), "{text}");
    let (code, text) = run(&["destroy", "rb", "--auto-approve"]);
    assert_eq!(code, Some(0), "{text}");
}
