//! `[notify]` webhooks through the binary, against moto and a receiver in
//! this test: what is posted for a gate, its decision, a run's and a
//! drill's end; the signature; Slack's shape; a receiver that fails.

use std::io::{Read, Write};
use std::net::TcpListener;
use std::sync::{Arc, Mutex};

use hmac::{Hmac, KeyInit, Mac};
use serde_json::Value;

use crate::support::{drctl_at, moto_endpoint, outcome, Repo};

const REGION: &str = "us-west-2";
const SECRET_ENV: &str = "DRCTL_TEST_NOTIFY_SECRET";
const SECRET: &str = "notify-secret-7f3a9c";

/// One request a receiver got, and the status it answered.
#[derive(Debug, Clone)]
struct Got {
    request_line: String,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
    answered: u16,
}

impl Got {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    fn json(&self) -> Value {
        serde_json::from_slice(&self.body).expect("a JSON body")
    }
}

/// A local HTTP receiver answering 500 to its first `fail_first` requests
/// and 200 to the rest, keeping every request.
pub(crate) struct Receiver {
    pub(crate) url: String,
    got: Arc<Mutex<Vec<Got>>>,
}

impl Receiver {
    pub(crate) fn start(fail_first: usize) -> Receiver {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!(
            "http://127.0.0.1:{}/hook/T0KEN",
            listener.local_addr().unwrap().port()
        );
        let got = Arc::new(Mutex::new(Vec::new()));
        let kept = got.clone();
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(mut stream) = stream else { continue };
                let Some(mut request) = read_request(&mut stream) else {
                    continue;
                };
                let mut got = kept.lock().unwrap();
                let answered = if got.len() < fail_first { 500 } else { 200 };
                request.answered = answered;
                got.push(request);
                drop(got);
                let _ = write!(
                    stream,
                    "HTTP/1.1 {answered} X\r\ncontent-length: 0\r\nconnection: close\r\n\r\n"
                );
            }
        });
        Receiver { url, got }
    }

    fn got(&self) -> Vec<Got> {
        self.got.lock().unwrap().clone()
    }

    /// The requests for `event`, as JSON.
    pub(crate) fn events(&self, event: &str) -> Vec<Value> {
        self.got()
            .iter()
            .map(Got::json)
            .filter(|v| v["event"] == event)
            .collect()
    }
}

/// One request (its answer not yet chosen).
fn read_request(stream: &mut std::net::TcpStream) -> Option<Got> {
    let mut data = Vec::new();
    let mut buf = [0u8; 4096];
    let end = loop {
        if let Some(i) = data.windows(4).position(|w| w == b"\r\n\r\n") {
            break i + 4;
        }
        let n = stream.read(&mut buf).ok()?;
        if n == 0 {
            return None;
        }
        data.extend_from_slice(&buf[..n]);
    };
    let head = String::from_utf8_lossy(&data[..end]).to_string();
    let mut lines = head.split("\r\n");
    let request_line = lines.next()?.to_string();
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(n, v)| (n.trim().to_string(), v.trim().to_string()))
        .collect();
    let length: usize = headers
        .iter()
        .find(|(n, _)| n.eq_ignore_ascii_case("content-length"))
        .and_then(|(_, v)| v.parse().ok())
        .unwrap_or(0);
    let mut body = data[end..].to_vec();
    while body.len() < length {
        let n = stream.read(&mut buf).ok()?;
        if n == 0 {
            break;
        }
        body.extend_from_slice(&buf[..n]);
    }
    Some(Got {
        request_line,
        headers,
        body,
        answered: 0,
    })
}

/// Checks `Drctl-Signature` against the body with the secret.
fn assert_signed(got: &Got) {
    let header = got.header("Drctl-Signature").expect("a signature header");
    let (t, v1) = header
        .strip_prefix("t=")
        .and_then(|rest| rest.split_once(",v1="))
        .unwrap_or_else(|| panic!("t=…,v1=…: {header}"));
    assert!(t.parse::<i64>().is_ok(), "{header}");
    let mut mac = <Hmac<sha2::Sha256> as KeyInit>::new_from_slice(SECRET.as_bytes()).unwrap();
    mac.update(format!("{t}.").as_bytes());
    mac.update(&got.body);
    let expected: String = mac
        .finalize()
        .into_bytes()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    assert_eq!(v1, expected, "the signature verifies with the secret");
}

/// A repository with a network phase, then a manual gate before a
/// security-group phase; `[notify]` in `drctl.toml` and the runbook.
struct Setup {
    repo: Repo,
    state: tempfile::TempDir,
}

impl Setup {
    fn new(env: &str, octet: u8, repository: &str, runbook: &str) -> Setup {
        let repo = Repo::with(&[("stacks/app.toml", ""), ("runbooks/rb.toml", "")]);
        repo.write(
            "stacks/net.toml",
            "[vars]\ncidr = \"10.0.0.0/16\"\nsubnet = \"10.0.1.0/24\"\n\n\
             [resources.vpc.main]\ncidr_block = \"${var.cidr}\"\n\n\
             [resources.subnet.a]\nvpc = \"${vpc.main.id}\"\ncidr_block = \"${var.subnet}\"\navailability_zone = \"${env.region}a\"\n\n\
             [outputs]\nvpc_id = \"${vpc.main.id}\"\n",
        );
        repo.write(
            "stacks/guard.toml",
            "[resources.security_group.web]\nvpc = \"${stack.net.vpc_id}\"\ndescription = \"web\"\n\
             ingress = [{ protocol = \"tcp\", port = 80, cidr = \"0.0.0.0/0\" }]\n",
        );
        repo.write(
            "runbooks/rb.toml",
            &format!(
                "environment = \"{env}\"\nregion = \"{REGION}\"\nstacks = [\"guard\"]\nrto_target = \"20m\"\n\n\
                 [vars]\ncidr = \"10.{octet}.0.0/16\"\nsubnet = \"10.{octet}.1.0/24\"\n\n\
                 [[phases]]\nname = \"foundation\"\nstacks = [\"net\"]\n\n\
                 [[phases]]\nname = \"guard\"\nstacks = [\"guard\"]\n\
                 gate = {{ manual = {{ timeout = \"4h\", on_timeout = \"reject\" }} }}\n\n\
                 [drill]\nteardown = \"always\"\nauto_approve = true\n\n{runbook}"
            ),
        );
        if !repository.is_empty() {
            repo.write("drctl.toml", repository);
        }
        Setup {
            repo,
            state: tempfile::tempdir().unwrap(),
        }
    }

    fn run(&self, args: &[&str]) -> (Option<i32>, String) {
        let mut cmd = drctl_at(self.repo.root(), self.state.path(), moto_endpoint());
        cmd.env(SECRET_ENV, SECRET).args(args);
        outcome(&mut cmd)
    }

    fn run_id(&self) -> String {
        crate::support::first_run_id(self.state.path())
    }

    fn journal(&self, id: &str) -> Vec<Value> {
        std::fs::read_to_string(self.state.path().join("runs").join(id).join("events.jsonl"))
            .unwrap()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect()
    }
}

fn notify_section(urls: &[&str], format: &str) -> String {
    let urls: Vec<String> = urls.iter().map(|u| format!("\"{u}\"")).collect();
    format!(
        "[notify]\nwebhooks = [{}]\nformat = \"{format}\"\nsecret_env = \"{SECRET_ENV}\"\n",
        urls.join(", ")
    )
}

#[test]
fn a_waiting_gate_its_rejection_and_the_runs_end_are_posted_signed() {
    let json = Receiver::start(0);
    let slack = Receiver::start(0);
    let s = Setup::new(
        "notify-gate",
        161,
        &notify_section(&[&json.url], "json"),
        &notify_section(&[&slack.url], "slack"),
    );
    let (code, text) = s.run(&["apply", "rb"]);
    assert_eq!(code, Some(3), "paused at the gate: {text}");
    let id = s.run_id();

    let waiting = json.events("gate_waiting");
    assert_eq!(waiting.len(), 1, "{:?}", json.got());
    let w = &waiting[0];
    assert_eq!(w["runbook"], "rb");
    assert_eq!(w["environment"], "notify-gate");
    assert_eq!(w["run_id"], id.as_str());
    assert_eq!(w["phase"], "guard");
    assert!(w["summary"].as_str().unwrap().contains("1 to add"), "{w:#}");
    // The exact command the CLI printed.
    let printed = crate::support::printed_after(&text, "Approve with:");
    assert_eq!(w["approve"], printed, "{w:#}");
    assert_eq!(w["approve"], format!("drctl approve {id} --gate guard"));
    assert_eq!(w["reject"], format!("drctl reject {id}"));
    assert_eq!(w["resume"], format!("drctl resume {id}"));
    let deadline: jiff::Timestamp = w["deadline"].as_str().unwrap().parse().unwrap();
    let hours = (deadline - jiff::Timestamp::now()).get_seconds() as f64 / 3600.0;
    assert!((3.5..=4.0).contains(&hours), "{w:#}");
    let got = json.got();
    assert!(
        got[0].request_line.starts_with("POST /hook/T0KEN HTTP/1.1"),
        "{got:?}"
    );
    assert_eq!(got[0].header("Content-Type"), Some("application/json"));

    // The runbook's webhook is added to the repository's, in Slack's shape.
    let slack_got = slack.got();
    assert_eq!(slack_got.len(), 1, "{slack_got:?}");
    let message = slack_got[0].json();
    let said = message["text"].as_str().unwrap();
    assert!(
        said.contains("guard") && said.contains(&format!("drctl approve {id} --gate guard")),
        "{said}"
    );
    assert_eq!(message["blocks"][0]["type"], "section");

    let (code, text) = s.run(&["reject", &id, "--reason", "not today"]);
    assert_eq!(code, Some(0), "{text}");
    let decided = json.events("gate_decided");
    assert_eq!(decided.len(), 1, "{:?}", json.got());
    assert_eq!(decided[0]["decision"], "reject");
    assert_eq!(decided[0]["by"], "tester");
    assert_eq!(decided[0]["reason"], "not today");
    let finished = json.events("run_finished");
    assert_eq!(finished.len(), 1, "{:?}", json.got());
    assert_eq!(finished[0]["status"], "rejected");
    assert_eq!(finished[0]["run_id"], id.as_str());

    for got in json.got().iter().chain(slack.got().iter()) {
        assert_signed(got);
        let body = String::from_utf8_lossy(&got.body);
        assert!(!body.contains(SECRET), "no secret in a payload: {body}");
        assert_eq!(got.answered, 200);
    }
    // Each delivery is journaled, without the webhook's path (a token).
    let journal = s.journal(&id);
    let delivered: Vec<&Value> = journal
        .iter()
        .filter(|e| e["event"] == "notified")
        .collect();
    assert_eq!(delivered.len(), 6, "{journal:#?}");
    let everything = serde_json::to_string(&journal).unwrap();
    assert!(
        !everything.contains("T0KEN") && !everything.contains(SECRET),
        "{everything}"
    );
    let (code, shown) = s.run(&["runs", "show", &id]);
    assert_eq!(code, Some(0), "{shown}");
    assert!(
        shown.contains("of gate_waiting (HTTP 200, 1 attempt)"),
        "{shown}"
    );
    assert!(!shown.contains(SECRET));
}

#[test]
fn a_failing_webhook_is_retried_a_bounded_number_of_times_and_never_fails_the_run() {
    let failing = Receiver::start(usize::MAX);
    let flaky = Receiver::start(2);
    let refused = {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        format!("http://127.0.0.1:{}/gone", l.local_addr().unwrap().port())
    };
    let s = Setup::new(
        "notify-fail",
        162,
        &notify_section(&[&failing.url, &refused], "json"),
        &notify_section(&[&flaky.url], "json"),
    );
    let (code, text) = s.run(&["apply", "rb"]);
    assert_eq!(
        code,
        Some(3),
        "paused at the gate as without notifications: {text}"
    );
    let id = s.run_id();
    // Three attempts each, then given up; the flaky one gets through on its third.
    let answered: Vec<u16> = failing.got().iter().map(|g| g.answered).collect();
    assert_eq!(answered, [500, 500, 500]);
    let answered: Vec<u16> = flaky.got().iter().map(|g| g.answered).collect();
    assert_eq!(answered, [500, 500, 200]);
    assert!(flaky
        .got()
        .iter()
        .all(|g| g.json()["event"] == "gate_waiting"));

    let journal = s.journal(&id);
    let failed: Vec<&Value> = journal
        .iter()
        .filter(|e| e["event"] == "notify_failed")
        .collect();
    assert_eq!(failed.len(), 2, "{journal:#?}");
    assert!(failed
        .iter()
        .all(|f| f["attempts"] == 3 && f["notice"] == "gate_waiting"));
    assert!(
        failed.iter().any(|f| f["error"] == "HTTP 500"),
        "{failed:?}"
    );
    assert!(
        failed
            .iter()
            .any(|f| f["error"].as_str().unwrap().starts_with("cannot connect")),
        "{failed:?}"
    );
    let delivered: Vec<&Value> = journal
        .iter()
        .filter(|e| e["event"] == "notified")
        .collect();
    assert_eq!(delivered.len(), 1, "{journal:#?}");
    assert_eq!(delivered[0]["attempts"], 3);

    let (_, shown) = s.run(&["runs", "show", &id]);
    assert!(
        shown.contains("notification gate_waiting to http://127.0.0.1:")
            && shown.contains("failed after 3 attempts: HTTP 500 (the run went on)"),
        "{shown}"
    );
    assert!(shown.contains("status: paused at a gate"), "{shown}");
}

#[test]
fn a_secret_variable_that_is_not_set_sends_nothing_unsigned() {
    let json = Receiver::start(0);
    let s = Setup::new(
        "notify-nosecret",
        163,
        "",
        &notify_section(&[&json.url], "json"),
    );
    let mut cmd = drctl_at(s.repo.root(), s.state.path(), moto_endpoint());
    cmd.env_remove(SECRET_ENV).args(["apply", "rb"]);
    let (code, text) = outcome(&mut cmd);
    assert_eq!(code, Some(3), "{text}");
    assert!(json.got().is_empty(), "{:?}", json.got());
    let journal = s.journal(&s.run_id());
    let failed: Vec<&Value> = journal
        .iter()
        .filter(|e| e["event"] == "notify_failed")
        .collect();
    assert_eq!(failed.len(), 1, "{journal:#?}");
    assert!(
        failed[0]["error"].as_str().unwrap().contains(SECRET_ENV),
        "{failed:?}"
    );
    assert_eq!(failed[0]["attempts"], 0);
}

#[test]
fn a_drill_posts_its_verdict_with_rto_against_target_and_the_report() {
    let json = Receiver::start(0);
    let s = Setup::new(
        "notify-drill",
        164,
        &notify_section(&[&json.url], "json"),
        "",
    );
    let (code, text) = s.run(&["drill", "rb"]);
    assert_eq!(code, Some(0), "{text}");
    let id = s.run_id();
    // Its gate passes by the drill's policy: nobody is asked, nobody told.
    assert!(json.events("gate_waiting").is_empty(), "{:?}", json.got());
    let verdicts = json.events("drill_finished");
    assert_eq!(verdicts.len(), 1, "{:?}", json.got());
    let v = &verdicts[0];
    assert_eq!(v["verdict"], "passed", "{v:#}");
    assert_eq!(v["runbook"], "rb");
    assert_eq!(v["run_id"], id.as_str());
    assert!(
        v["environment"]
            .as_str()
            .unwrap()
            .starts_with("notify-drill-drill-"),
        "{v:#}"
    );
    assert_eq!(v["rto_target_seconds"], 1200.0);
    assert!(v["rto_seconds"].as_f64().unwrap() > 0.0, "{v:#}");
    assert_eq!(v["rto_met"], true);
    let report = std::path::Path::new(v["report"].as_str().unwrap());
    assert!(report.is_file(), "{v:#}");
    assert!(json.events("leak_found").is_empty(), "{:?}", json.got());
    for got in json.got() {
        assert_signed(&got);
    }
}

#[tokio::test]
async fn a_gate_that_times_out_is_posted_unsigned_without_a_secret() {
    use drctl::app::{self, ApplyRequest, ApplyResult, Context};
    use drctl::run::RunEnd;
    let json = Receiver::start(0);
    let s = Setup::new(
        "notify-timeout",
        165,
        "",
        &format!("[notify]\nwebhooks = [\"{}\"]\n", json.url),
    );
    // Through the application layer with a clock the test moves: no sleep.
    let clock = drctl::clock::ManualClock::at(1_800_000_000_000);
    let sink = drctl::events::Collect::default();
    let ctx = Context {
        store: drctl::store::local(s.state.path()),
        clock: &clock,
        sink: &sink,
    };
    let connect = crate::support::ConnectTo::moto();
    let request = ApplyRequest {
        root: Some(s.repo.root().to_path_buf()),
        target: "rb".into(),
        auto_approve: None,
        parallelism: 4,
    };
    let cancel = tokio_util::sync::CancellationToken::new();
    let Ok(ApplyResult::Run(app::RunResult {
        run_id: id, end, ..
    })) = app::apply(&ctx, &connect, &request, &cancel).await
    else {
        panic!("expected a run");
    };
    assert!(matches!(end, RunEnd::Paused { .. }), "{end:?}");
    let waiting = json.events("gate_waiting");
    assert_eq!(waiting.len(), 1, "{:?}", json.got());
    assert_eq!(
        waiting[0]["deadline"], "2027-01-15T12:00:00Z",
        "4h after the wait began"
    );
    clock.advance(std::time::Duration::from_secs(4 * 3600 + 1));
    let end = app::resume(&ctx, &connect, &id, 4, &cancel)
        .await
        .unwrap()
        .end;
    assert!(
        matches!(&end, RunEnd::Rejected { by, .. } if by == "timeout"),
        "{end:?}"
    );
    let timed_out = json.events("gate_timed_out");
    assert_eq!(timed_out.len(), 1, "{:?}", json.got());
    assert_eq!(timed_out[0]["phase"], "guard");
    assert_eq!(timed_out[0]["run_id"], id.as_str());
    assert_eq!(timed_out[0]["waited_seconds"], 14401.0);
    assert!(json.events("gate_decided").is_empty());
    assert_eq!(json.events("run_finished")[0]["status"], "rejected");
    assert!(json
        .got()
        .iter()
        .all(|g| g.header("Drctl-Signature").is_none()));
}

#[tokio::test]
async fn a_leak_after_a_drill_is_posted_with_its_failed_verdict() {
    use std::os::unix::fs::PermissionsExt;
    let json = Receiver::start(0);
    // The check makes a VPC carrying the drill's environment tag behind
    // drctl's back (with moto's own boto3), as a forgotten script would.
    let s = Setup::new(
        "notify-leak",
        166,
        &notify_section(&[&json.url], "json"),
        "checks = [{ command = [\"./checks/stray.sh\"] }]\n",
    );
    s.repo.write(
        "checks/stray.sh",
        r#"#!/bin/sh
exec "$MOTO_PYTHON" -c '
import os, boto3
ec2 = boto3.client("ec2", endpoint_url=os.environ["AWS_ENDPOINT_URL"], region_name=os.environ["DRCTL_REGION"],
                   aws_access_key_id="testing", aws_secret_access_key="testing")
ec2.create_vpc(CidrBlock="10.236.0.0/16", TagSpecifications=[{"ResourceType": "vpc",
    "Tags": [{"Key": "drctl:env", "Value": os.environ["DRCTL_ENV"]}]}])
'
"#,
    );
    let script = s.repo.path("checks/stray.sh");
    std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).unwrap();
    let mut cmd = drctl_at(s.repo.root(), s.state.path(), moto_endpoint());
    cmd.env(SECRET_ENV, SECRET)
        .env("MOTO_ENDPOINT", moto_endpoint())
        .env(
            "MOTO_PYTHON",
            crate::support::moto_venv().join("bin/python"),
        )
        .args(["drill", "rb"]);
    let (code, text) = outcome(&mut cmd);
    assert_eq!(code, Some(1), "{text}");
    let leaks = json.events("leak_found");
    assert_eq!(leaks.len(), 1, "{:?}", json.got());
    assert!(
        leaks[0]["environment"]
            .as_str()
            .unwrap()
            .starts_with("notify-leak-drill-"),
        "{:#}",
        leaks[0]
    );
    let resources = leaks[0]["resources"].as_array().unwrap();
    assert_eq!(resources.len(), 1, "{:#}", leaks[0]);
    let vpc = resources[0]
        .as_str()
        .unwrap()
        .strip_prefix("ec2:vpc ")
        .unwrap();
    assert!(vpc.starts_with("vpc-"), "{resources:?}");
    assert_eq!(json.events("drill_finished")[0]["verdict"], "failed");
    for got in json.got() {
        assert_signed(&got);
    }

    let config = drctl::cloud::AwsSettings::sandbox(moto_endpoint(), REGION)
        .load()
        .await;
    aws_sdk_ec2::Client::new(&config)
        .delete_vpc()
        .vpc_id(vpc)
        .send()
        .await
        .unwrap();
}
