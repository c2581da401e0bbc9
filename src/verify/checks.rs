//! A runbook's checks, run after a drill's last phase and after an apply's
//! cutover: is what was built actually serving? Each check reads the cloud afresh (never the plan), and says
//! what it saw. A check that cannot run here is *skipped* with its reason,
//! never passed.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use crate::clock::Clock;
use crate::cloud::aws::AwsProvider;
use crate::cloud::elbv2::{self, Elbv2};
use crate::cloud::wait::{self, Backoff, Probe};
use crate::cloud::CloudError;
use crate::model::{Check, EnvField, Part, RefTarget, ResourceKind, ResourceRef, Template};
use crate::world::{Address, Snapshot};

use crate::error::Error;
use crate::events::{Event as Shown, Sink};
use crate::model::{Named, Project, Runbook};
use crate::outcome::{CheckResult, CheckStatus};
use crate::plan::{self, Plan};

/// What the checks read besides the cloud.
pub struct CheckScope<'a> {
    pub aws: &'a AwsProvider,
    /// The drill environment as rebuilt (observed after the last phase).
    pub snapshot: &'a Snapshot,
    /// Every stack output of the run, by `stack.output`, as plain strings.
    pub outputs: &'a BTreeMap<String, String>,
    pub environment: &'a str,
    pub region: &'a str,
    pub run_id: &'a str,
    /// Commands run from here.
    pub root: &'a Path,
    /// How long `target_health` waits for every target to turn healthy.
    pub health_deadline: Duration,
    pub clock: &'a dyn Clock,
}

/// Runs one check and times it.
pub async fn run(check: &Check, scope: &CheckScope<'_>) -> CheckResult {
    let started_at = scope.clock.now();
    let (status, detail) = match check {
        Check::TargetHealth { target } => target_health(scope, target).await,
        Check::ListenerForwardsTo { listener, target } => {
            listener_forwards_to(scope, listener, target).await
        }
        Check::Http {
            url,
            status,
            timeout,
            ..
        } => http(scope, url, *status, *timeout).await,
        Check::Command { argv, timeout, .. } => command(scope, argv, *timeout).await,
    };
    CheckResult {
        name: check.to_string(),
        kind: check.kind().to_string(),
        status,
        detail,
        started_at,
        duration_ms: scope.clock.now() - started_at,
    }
}

type Verdict = (CheckStatus, String);

fn failed(detail: impl Into<String>) -> Verdict {
    (CheckStatus::Failed, detail.into())
}

fn address(r: &ResourceRef) -> Address {
    Address::new(&r.stack, r.kind, &r.name)
}

/// The target group a check names: a target group's ARN, or a service's
/// live colour's group.
fn target_group_arn(scope: &CheckScope<'_>, target: &ResourceRef) -> Result<String, String> {
    let found = scope
        .snapshot
        .objects()
        .find(|o| o.address == address(target))
        .ok_or_else(|| format!("{target} does not exist in {}", scope.environment))?;
    let export = match target.kind {
        ResourceKind::Service => "target_group_arn",
        _ => "arn",
    };
    found
        .exports
        .get(export)
        .and_then(|v| v.as_str())
        .map(str::to_string)
        .ok_or_else(|| format!("{target} has no {export}"))
}

async fn target_health(scope: &CheckScope<'_>, target: &ResourceRef) -> Verdict {
    let arn = match target_group_arn(scope, target) {
        Ok(arn) => arn,
        Err(why) => return failed(why),
    };
    let what = format!("every target of {target} healthy");
    let waited = wait::until(&what, scope.health_deadline, Backoff::default(), || async {
        let health = scope.aws.elbv2.target_health(&arn).await?;
        if health.is_empty() {
            // Nothing to be healthy is not healthy; and nothing registers
            // targets behind drctl's back, so waiting would not help.
            return Err(CloudError::Failed {
                what: target.to_string(),
                state: "empty".into(),
                reason: "no registered target (nothing to be healthy is not healthy)".into(),
            });
        }
        let unhealthy: Vec<String> = health
            .iter()
            .filter(|t| t.state != "healthy")
            .map(|t| {
                let why = t
                    .reason
                    .as_deref()
                    .map(|r| format!(", {r}"))
                    .unwrap_or_default();
                format!("{} {}{why}", t.id, t.state)
            })
            .collect();
        Ok(if unhealthy.is_empty() {
            Probe::Done(health.len())
        } else {
            Probe::Waiting(format!(
                "{} of {} healthy; {}",
                health.len() - unhealthy.len(),
                health.len(),
                unhealthy.join("; ")
            ))
        })
    })
    .await;
    match waited {
        Ok(n) => (CheckStatus::Passed, format!("{n} of {n} target(s) healthy")),
        Err(e) => failed(e.to_string()),
    }
}

async fn listener_forwards_to(
    scope: &CheckScope<'_>,
    listener: &ResourceRef,
    target: &ResourceRef,
) -> Verdict {
    let Some(listener_arn) = scope
        .snapshot
        .objects()
        .find(|o| o.address == address(listener))
        .map(|o| o.id.clone())
    else {
        return failed(format!(
            "{listener} does not exist in {}",
            scope.environment
        ));
    };
    let expected = match target_group_arn(scope, target) {
        Ok(arn) => arn,
        Err(why) => return failed(why),
    };
    let live = match scope.aws.elbv2.listener(&listener_arn).await {
        Ok(Some(live)) => live,
        Ok(None) => return failed(format!("{listener} is gone ({listener_arn})")),
        Err(e) => return failed(e.to_string()),
    };
    match elbv2::forwarded_target_group(live.default_actions()) {
        Some(arn) if arn == expected => (
            CheckStatus::Passed,
            format!("{listener} forwards to {target}"),
        ),
        Some(other) => failed(format!(
            "{listener} forwards to {other}, not to {target} ({expected})"
        )),
        None => failed(format!(
            "{listener}'s default action does not forward to one target group"
        )),
    }
}

/// The URL with its references filled in, or what is missing.
pub fn fill_url(url: &Template, scope: &CheckScope<'_>) -> Result<String, String> {
    let mut out = String::new();
    for part in &url.parts {
        match part {
            Part::Lit(text) => out.push_str(text),
            Part::Ref(r) => match &r.target {
                RefTarget::StackOutput { stack, output } => {
                    let key = format!("{stack}.{output}");
                    match scope.outputs.get(&key) {
                        Some(value) => out.push_str(value),
                        None => return Err(format!("no output {key}")),
                    }
                }
                RefTarget::Env(EnvField::Name) => out.push_str(scope.environment),
                RefTarget::Env(EnvField::Region) => out.push_str(scope.region),
                other => return Err(format!("${{{other}}} cannot be used in a check")),
            },
        }
    }
    Ok(out)
}

async fn http(scope: &CheckScope<'_>, url: &Template, status: u16, timeout: Duration) -> Verdict {
    let url = match fill_url(url, scope) {
        Ok(url) => url,
        Err(why) => return failed(why),
    };
    match super::http::get(&url, timeout).await {
        Ok(super::http::Answer::Status(got)) if got == status => {
            (CheckStatus::Passed, format!("GET {url} answered {got}"))
        }
        Ok(super::http::Answer::Status(got)) => {
            failed(format!("GET {url} answered {got}, expected {status}"))
        }
        Ok(super::http::Answer::CannotCheck(why)) => (
            CheckStatus::Skipped,
            format!("skipped: {why} (not counted as passed)"),
        ),
        Err(why) => failed(format!("GET {url}: {why}")),
    }
}

/// The environment a check command runs with: the drill's outputs as
/// `DRCTL_OUTPUT_<STACK>_<NAME>`, and where it runs (`AWS_REGION`, and
/// `AWS_ENDPOINT_URL` when the drill runs against an endpoint override).
pub fn command_env(scope: &CheckScope<'_>) -> BTreeMap<String, String> {
    let mut env: BTreeMap<String, String> = scope
        .outputs
        .iter()
        .map(|(key, value)| (format!("DRCTL_OUTPUT_{}", env_name(key)), value.clone()))
        .collect();
    env.insert("DRCTL_ENV".into(), scope.environment.into());
    env.insert("DRCTL_REGION".into(), scope.region.into());
    env.insert("DRCTL_RUN_ID".into(), scope.run_id.into());
    // The script's own AWS calls go where the drill went.
    env.insert("AWS_REGION".into(), scope.region.into());
    if let Some(endpoint) = scope.aws.endpoint_url() {
        env.insert("AWS_ENDPOINT_URL".into(), endpoint.into());
    }
    if let Some(profile) = scope.aws.profile() {
        env.insert("AWS_PROFILE".into(), profile.into());
    }
    env
}

/// `fleet.url` → `FLEET_URL`.
fn env_name(key: &str) -> String {
    key.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() {
                c.to_ascii_uppercase()
            } else {
                '_'
            }
        })
        .collect()
}

async fn command(scope: &CheckScope<'_>, argv: &[String], timeout: Duration) -> Verdict {
    let Some((program, args)) = argv.split_first() else {
        return failed("empty command");
    };
    // A relative path is the project's own script.
    let program_path = if program.contains('/') {
        scope.root.join(program)
    } else {
        program.into()
    };
    let mut child = tokio::process::Command::new(&program_path);
    child
        .args(args)
        .current_dir(scope.root)
        .envs(command_env(scope))
        .stdin(std::process::Stdio::null())
        .kill_on_drop(true);
    let run = tokio::time::timeout(timeout, child.output()).await;
    let output = match run {
        Err(_) => return failed(format!("{program} did not finish within {timeout:?}")),
        Ok(Err(e)) => return failed(format!("cannot run {}: {e}", program_path.display())),
        Ok(Ok(output)) => output,
    };
    let said = last_line(&output.stderr).or_else(|| last_line(&output.stdout));
    let said = said.map(|l| format!(": {l}")).unwrap_or_default();
    match output.status.code() {
        Some(0) => (CheckStatus::Passed, format!("{program} exited 0{said}")),
        Some(code) => failed(format!("{program} exited {code}{said}")),
        None => failed(format!("{program} was killed by a signal{said}")),
    }
}

/// The last non-empty line a command printed, shortened.
fn last_line(bytes: &[u8]) -> Option<String> {
    let text = String::from_utf8_lossy(bytes);
    let line = text.lines().rev().find(|l| !l.trim().is_empty())?.trim();
    Some(if line.chars().count() > 200 {
        format!("{}…", line.chars().take(200).collect::<String>())
    } else {
        line.to_string()
    })
}

/// Where and how a runbook's checks run.
pub struct CheckRun<'a> {
    pub clock: &'a dyn Clock,
    /// Each result is shown as it comes.
    pub sink: &'a dyn Sink,
    pub provider: &'a AwsProvider,
    pub project: &'a Project,
    pub runbook: &'a Runbook,
    pub run_id: &'a str,
    /// For every target of a `target_health` check to turn healthy.
    pub health_deadline: Duration,
}

/// The runbook's checks against the environment as observed, all at once:
/// after a drill's rebuild, and after an apply's cutover.
pub async fn run_all(
    how: &CheckRun<'_>,
    (snapshot, plan): &(Snapshot, Plan),
    cancel: &CancellationToken,
) -> Result<Vec<CheckResult>, Error> {
    let CheckRun {
        clock,
        sink,
        provider,
        project,
        runbook,
        run_id,
        health_deadline,
    } = *how;
    let checks = &runbook.drill.checks;
    // Every stack's outputs, not only the roots': a check may read any.
    let mut every_stack = runbook.clone();
    let stacks: std::collections::BTreeSet<&String> = plan
        .phases
        .iter()
        .flat_map(|p| p.changes.iter().map(|c| &c.address.stack))
        .collect();
    every_stack.stacks = stacks
        .into_iter()
        .map(|name| Named {
            name: name.clone(),
            pos: Default::default(),
        })
        .collect();
    let outputs = plan::outputs(project, &every_stack, plan)
        .into_iter()
        .filter_map(|o| {
            let value = match o.value.known()? {
                crate::world::Value::Str(s) => s.clone(),
                other => other.to_string(),
            };
            Some((format!("{}.{}", o.stack, o.name), value))
        })
        .collect();
    let scope = CheckScope {
        aws: provider,
        snapshot,
        outputs: &outputs,
        environment: &runbook.environment,
        region: &runbook.region,
        run_id,
        root: &project.root,
        health_deadline,
        clock,
    };
    // The checks are independent: all at once, so one waiting out its
    // deadline (a name not in DNS yet) does not delay the others' verdicts.
    let scope = &scope;
    let one = |check| async move {
        let begun = clock.now();
        let result = tokio::select! {
            result = run(check, scope) => result,
            // Ctrl-C or SIGTERM must not wait out a check's deadline.
            () = cancel.cancelled() => CheckResult {
                name: check.to_string(),
                kind: check.kind().to_string(),
                status: CheckStatus::Failed,
                detail: "interrupted (Ctrl-C or SIGTERM)".into(),
                started_at: begun,
                duration_ms: clock.now() - begun,
            },
        };
        sink.event(&Shown::DrillCheck {
            result: result.clone(),
        });
        result
    };
    let results = futures_util::future::join_all(checks.iter().map(one)).await;
    Ok(results)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn output_names_become_environment_variables() {
        assert_eq!(env_name("fleet.url"), "FLEET_URL");
        assert_eq!(env_name("app-image.id"), "APP_IMAGE_ID");
    }

    #[test]
    fn a_check_command_calls_aws_where_and_as_the_drill_did() {
        let config = aws_config::SdkConfig::builder()
            .behavior_version(aws_config::BehaviorVersion::latest())
            .region(aws_config::Region::new("eu-west-1"))
            .endpoint_url("http://127.0.0.1:5000")
            .build();
        let aws = AwsProvider::new(&config).with_profile(Some("dr-drills".into()));
        let outputs = BTreeMap::from([("fleet.url".to_string(), "http://x/".to_string())]);
        let snapshot = Snapshot::default();
        let clock = crate::clock::SystemClock;
        let scope = CheckScope {
            aws: &aws,
            snapshot: &snapshot,
            outputs: &outputs,
            environment: "fleet-dr-drill-1",
            region: "eu-west-1",
            run_id: "r-1",
            root: Path::new("."),
            health_deadline: Duration::from_secs(1),
            clock: &clock,
        };
        let env = command_env(&scope);
        for (key, value) in [
            ("DRCTL_OUTPUT_FLEET_URL", "http://x/"),
            ("DRCTL_ENV", "fleet-dr-drill-1"),
            ("AWS_REGION", "eu-west-1"),
            ("AWS_ENDPOINT_URL", "http://127.0.0.1:5000"),
            ("AWS_PROFILE", "dr-drills"),
        ] {
            assert_eq!(env.get(key).map(String::as_str), Some(value), "{key}");
        }
    }

    #[test]
    fn last_line_skips_blank_lines_and_shortens() {
        assert_eq!(last_line(b"one\ntwo\n\n"), Some("two".into()));
        assert_eq!(last_line(b"  \n"), None);
        let long = "x".repeat(300);
        assert_eq!(last_line(long.as_bytes()).unwrap().chars().count(), 201);
    }
}
