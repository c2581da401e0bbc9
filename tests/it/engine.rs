//! The engine's contracts: approvals bind to the plan shown.

use crate::support::{drctl_at, moto_endpoint, outcome, Repo};

use drctl::cloud::aws::AwsProvider;
use drctl::cloud::provider::Provider;
use drctl::cloud::AwsSettings;

/// Runs the binary quietly, unless `args` ask for more logging.
fn run(repo: &Repo, state: &std::path::Path, args: &[&str]) -> (Option<i32>, String) {
    run_via(moto_endpoint(), repo, state, args)
}

fn run_via(
    endpoint: &str,
    repo: &Repo,
    state: &std::path::Path,
    args: &[&str],
) -> (Option<i32>, String) {
    let quiet: &[&str] = if args.contains(&"-vv") { &[] } else { &["-q"] };
    outcome(
        drctl_at(repo.root(), state, endpoint)
            .args(quiet)
            .args(args),
    )
}

async fn found(env: &str, region: &str) -> Vec<drctl::world::ObservedResource> {
    let provider = AwsProvider::new(&AwsSettings::sandbox(moto_endpoint(), region).load().await);
    provider.discover(env).await.expect("discover")
}

#[tokio::test]
async fn an_approval_is_for_the_plan_shown_and_an_edited_stack_waits_for_a_new_one() {
    let vars = "cidr = \"10.92.0.0/16\"\nsubnet_a_cidr = \"10.92.1.0/24\"\nsubnet_b_cidr = \"10.92.2.0/24\"";
    let env = "bound-approval";
    let region = "us-west-2";
    let repo = Repo::fleet_rehearsal(env, region, vars, "\"manual\"");
    let state = tempfile::tempdir().unwrap();
    let (code, text) = run(&repo, state.path(), &["apply", "rb"]);
    assert_eq!(code, Some(3), "{text}");
    assert!(text.contains("count           = 2"), "{text}");
    let id = crate::support::first_run_id(state.path());

    // While the run waits, someone edits the fleet; alice approves what she
    // saw at the gate (two instances).
    let fleet = repo.path("stacks/fleet.toml");
    let text = std::fs::read_to_string(&fleet).unwrap();
    std::fs::write(&fleet, text.replace("fleet_size = 2", "fleet_size = 3")).unwrap();
    let (code, text) = run(&repo, state.path(), &["approve", &id, "--as", "alice"]);
    assert_eq!(code, Some(0), "{text}");

    // Resume re-plans: three instances is not what alice approved.
    let (code, text) = run(&repo, state.path(), &["resume", &id]);
    assert_eq!(code, Some(3), "{text}");
    assert!(
        text.contains("stacks/fleet.toml")
            && text.contains("needs approving again")
            && text.contains("count           = 3"),
        "{text}"
    );
    let now = found(env, region).await;
    assert!(
        !now.iter()
            .any(|o| o.address.to_string() == "fleet.instances.app"),
        "nothing of the unapproved phase ran"
    );
    let (_, journal) = run(&repo, state.path(), &["runs", "show", &id]);
    assert!(journal.contains("approved by alice"), "{journal}");

    // Approved again, for the plan now shown: that is what runs.
    let (code, text) = run(&repo, state.path(), &["approve", &id, "--as", "alice"]);
    assert_eq!(code, Some(0), "{text}");
    let (code, text) = run(&repo, state.path(), &["resume", &id]);
    assert_eq!(code, Some(0), "{text}");
    let fleet = found(env, region)
        .await
        .into_iter()
        .find(|o| o.address.to_string() == "fleet.instances.app")
        .expect("the fleet");
    assert_eq!(fleet.attrs["count"], drctl::world::Value::Int(3));
    let (code, text) = run(&repo, state.path(), &["destroy", "rb", "--auto-approve"]);
    assert_eq!(code, Some(0), "{text}");
}

/// Every file under `dir`, recursively, as text.
fn files_under(dir: &std::path::Path) -> Vec<(std::path::PathBuf, String)> {
    let mut out = Vec::new();
    let Ok(entries) = std::fs::read_dir(dir) else {
        return out;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        if path.is_symlink() {
            continue; // the shared moto venv
        }
        if path.is_dir() {
            out.extend(files_under(&path));
        } else if let Ok(bytes) = std::fs::read(&path) {
            out.push((path, String::from_utf8_lossy(&bytes).into_owned()));
        }
    }
    out
}

#[tokio::test]
async fn secrets_never_reach_output_logs_journals_or_saved_plans() {
    const VAR_SECRET: &str = "s3cr3t-Pa55w0rd-42";
    const LITERAL_SECRET: &str = "TOKEN=plain-literal-secret-77";
    let vars = format!(
        "cidr = \"10.93.0.0/16\"\nsubnet_a_cidr = \"10.93.1.0/24\"\nsubnet_b_cidr = \"10.93.2.0/24\"\n\
         db_password = {{ value = \"{VAR_SECRET}\", sensitive = true }}"
    );
    let (env, region) = ("secret-keeper", "us-west-2");
    let repo = Repo::fleet_rehearsal(env, region, &vars, "\"auto\"");
    let fleet = repo.path("stacks/fleet.toml");
    let text = std::fs::read_to_string(&fleet).unwrap();
    let text = text
        .replace(
            "[vars]\n",
            "[vars]\ndb_password = { value = \"\", sensitive = true }\n",
        )
        .replace(
            "user_data = \"#!/bin/bash\\n",
            &format!(
                "user_data = \"#!/bin/bash\\nexport {LITERAL_SECRET} DB=${{var.db_password}}\\n"
            ),
        );
    std::fs::write(&fleet, text).unwrap();
    let state = tempfile::tempdir().unwrap();
    let saved = state.path().join("p.json");
    let saved = saved.to_str().unwrap();

    let mut outputs = Vec::new();
    for args in [
        &["-vv", "plan", "rb"][..],
        &["plan", "rb", "--json"],
        &["--log-format", "json", "plan", "rb", "--out", saved],
        &["-vv", "apply", saved],
        &["plan", "rb", "--detailed-exitcode"],
    ] {
        let (code, text) = run(&repo, state.path(), args);
        assert!(code == Some(0) || code == Some(4), "{args:?}: {text}");
        outputs.push((format!("{args:?}"), text));
    }
    let plan_text = &outputs[0].1;
    assert!(
        plan_text.contains("user_data") && plan_text.contains("(sensitive, sha256 "),
        "the plan shows that there is user data, not what: {plan_text}"
    );
    let id = crate::support::first_run_id(state.path());
    let (_, show) = run(&repo, state.path(), &["runs", "show", &id]);
    outputs.push(("runs show".into(), show));

    // The secret did reach the instances (the saved plan was applied with it).
    let config = AwsSettings::sandbox(moto_endpoint(), region).load().await;
    let provider = AwsProvider::new(&config);
    let fleet = provider
        .discover(env)
        .await
        .unwrap()
        .into_iter()
        .find(|o| o.address.to_string() == "fleet.instances.app")
        .expect("the fleet");
    let user_data = aws_sdk_ec2::Client::new(&config)
        .describe_instance_attribute()
        .instance_id(&fleet.id)
        .attribute(aws_sdk_ec2::types::InstanceAttributeName::UserData)
        .send()
        .await
        .unwrap();
    let encoded = user_data
        .user_data()
        .and_then(|v| v.value())
        .unwrap_or_default();
    let decoded = aws_smithy_types::base64::decode(encoded).unwrap();
    let decoded = String::from_utf8_lossy(&decoded);
    assert!(
        decoded.contains(LITERAL_SECRET) && decoded.contains(VAR_SECRET),
        "{decoded}"
    );

    let (code, text) = run(
        &repo,
        state.path(),
        &["-vv", "destroy", "rb", "--auto-approve"],
    );
    assert_eq!(code, Some(0), "{text}");
    outputs.push(("destroy".into(), text));
    for secret in [VAR_SECRET, LITERAL_SECRET] {
        for (what, text) in &outputs {
            assert!(!text.contains(secret), "{what} printed {secret}: {text}");
        }
        for (path, text) in files_under(state.path()) {
            assert!(!text.contains(secret), "{} holds {secret}", path.display());
        }
    }
}
