//! What a notification says, as bytes (pure): drctl's JSON payload or
//! Slack's incoming-webhook shape, and the `Drctl-Signature` header that
//! signs it. Only names, counts, commands, times and paths go in: never a
//! stack's attributes, user data, scripts, vars or the signing secret.

use hmac::{Hmac, KeyInit, Mac};
use serde::Serialize;
use sha2::Sha256;

use crate::model::NotifyFormat;

/// Whose notification it is: the top-level fields every payload has.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Header {
    pub runbook: String,
    /// The environment the run works on (a drill's own, `…-drill-…`).
    pub environment: String,
    pub run_id: String,
}

/// One notification: its `event` and the event's own fields.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum Notice {
    /// A manual gate waits for approval.
    GateWaiting {
        phase: String,
        /// The phase plan's summary, as the approver is shown it.
        summary: Option<String>,
        approvals_needed: u32,
        /// Only these may approve (empty: anyone).
        approvers: Vec<String>,
        /// The exact commands that decide the gate and go on.
        approve: String,
        reject: String,
        resume: String,
        /// When the gate's timeout runs out (RFC 3339, UTC), if it has one.
        deadline: Option<String>,
    },
    GateDecided {
        phase: String,
        /// `approve` or `reject`.
        decision: String,
        by: String,
        reason: Option<String>,
        waited_seconds: f64,
    },
    GateTimedOut {
        phase: String,
        reason: Option<String>,
        waited_seconds: f64,
    },
    /// A run's end: `succeeded`, `failed` or `rejected`.
    RunFinished { status: String },
    DrillFinished {
        /// `passed` or `failed`.
        verdict: String,
        rto_seconds: Option<f64>,
        rto_target_seconds: Option<f64>,
        /// RTO within its target (`null` when either is missing).
        rto_met: Option<bool>,
        /// The drill report (JSON), where the run store keeps it.
        report: String,
    },
    /// Objects still carrying a drill's tags after its teardown.
    LeakFound { resources: Vec<String> },
    /// `drctl sweep`'s result (see [`SweepResult`]).
    SweepFinished(SweepResult),
    /// `drctl preflight` found that a rebuild would not work in `region`.
    PreflightFailed {
        region: String,
        /// Each failed finding: `check subject: evidence`.
        failed: Vec<String>,
        /// Findings that could not be proved either way (not failures
        /// unless `--strict`).
        unknown: usize,
    },
}

/// What a sweep did, for [`crate::notify::sweep_finished`].
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct SweepResult {
    /// `--dry-run`: found, nothing deleted.
    pub dry_run: bool,
    pub regions: Vec<String>,
    /// The expired drills whose leftovers it found (their run ids).
    pub drills: Vec<String>,
    /// Objects found expired, and of them deleted.
    pub found: usize,
    pub deleted: usize,
    /// Objects still there after the sweep (type and id), with why.
    pub left: Vec<String>,
}

impl Notice {
    /// The `event` field: `gate_waiting`, `run_finished`, …
    pub fn name(&self) -> &'static str {
        match self {
            Notice::GateWaiting { .. } => "gate_waiting",
            Notice::GateDecided { .. } => "gate_decided",
            Notice::GateTimedOut { .. } => "gate_timed_out",
            Notice::RunFinished { .. } => "run_finished",
            Notice::DrillFinished { .. } => "drill_finished",
            Notice::LeakFound { .. } => "leak_found",
            Notice::SweepFinished(_) => "sweep_finished",
            Notice::PreflightFailed { .. } => "preflight_failed",
        }
    }

    /// One line for people (Slack's text).
    fn sentence(&self, h: &Header) -> String {
        let who = format!("{} ({}, run {})", h.runbook, h.environment, h.run_id);
        match self {
            Notice::GateWaiting {
                phase,
                summary,
                approve,
                deadline,
                ..
            } => format!(
                ":raised_hand: {who}: the gate before phase `{phase}` waits for approval{}{}.\nApprove with `{approve}`",
                summary.as_ref().map(|s| format!(" ({s})")).unwrap_or_default(),
                deadline.as_ref().map(|d| format!(", until {d}")).unwrap_or_default(),
            ),
            Notice::GateDecided {
                phase,
                decision,
                by,
                reason,
                ..
            } => format!(
                "{who}: the gate before phase `{phase}`: {decision} by {by}{}",
                reason.as_ref().map(|r| format!(": \"{r}\"")).unwrap_or_default()
            ),
            Notice::GateTimedOut { phase, .. } => {
                format!(":alarm_clock: {who}: the gate before phase `{phase}` timed out; the run is rejected")
            }
            Notice::RunFinished { status } => format!("{who}: run {status}"),
            Notice::DrillFinished {
                verdict,
                rto_seconds,
                rto_target_seconds,
                report,
                ..
            } => format!(
                "{who}: drill {verdict}, RTO {} (target {}); report {report}",
                seconds_said(*rto_seconds),
                seconds_said(*rto_target_seconds)
            ),
            Notice::LeakFound { resources } => format!(
                ":warning: {who}: {} object(s) left after the drill's teardown: {}",
                resources.len(),
                resources.join(", ")
            ),
            Notice::PreflightFailed {
                region,
                failed,
                unknown,
            } => format!(
                ":rotating_light: {who}: preflight in {region} failed, a rebuild there would not work now: {}{}",
                match failed.len() {
                    0 => "unknowns with --strict".to_string(),
                    _ => failed.join("; "),
                },
                match unknown {
                    0 => String::new(),
                    n => format!(" ({n} unknown)"),
                }
            ),
            Notice::SweepFinished(s) => format!(
                "{who}: sweep{} found {} expired object(s) of {} drill(s), deleted {}, {} left",
                if s.dry_run { " (dry run)" } else { "" },
                s.found,
                s.drills.len(),
                s.deleted,
                s.left.len()
            ),
        }
    }
}

fn seconds_said(seconds: Option<f64>) -> String {
    match seconds {
        Some(s) => format!("{s:.0}s"),
        None => "none".into(),
    }
}

/// The body of `notice` in `format`, at `at` (RFC 3339).
pub fn body(format: NotifyFormat, header: &Header, notice: &Notice, at: &str) -> Vec<u8> {
    let value = match format {
        NotifyFormat::Json => {
            let mut value = serde_json::to_value(notice).expect("notices serialise");
            if let (Some(object), serde_json::Value::Object(head)) = (
                value.as_object_mut(),
                serde_json::to_value(header).expect("headers serialise"),
            ) {
                object.extend(head);
                object.insert("at".into(), at.into());
            }
            value
        }
        NotifyFormat::Slack => {
            let text = notice.sentence(header);
            serde_json::json!({
                "text": text,
                "blocks": [
                    {"type": "section", "text": {"type": "mrkdwn", "text": text}},
                    {"type": "context", "elements": [
                        {"type": "mrkdwn", "text": format!("drctl · {} · {at}", notice.name())}
                    ]}
                ]
            })
        }
    };
    serde_json::to_vec(&value).expect("JSON serialises")
}

/// The `Drctl-Signature` header's value for `body` sent at `t` (Unix
/// seconds): `t=<t>,v1=<hex HMAC-SHA256 of "<t>.<body>">`. The time is in
/// the signed text, so a receiver can refuse a replayed old request.
pub fn signature(secret: &[u8], t: i64, body: &[u8]) -> String {
    format!(
        "t={t},v1={}",
        hex(&hmac_sha256(
            secret,
            &[t.to_string().as_bytes(), b".", body]
        ))
    )
}

fn hmac_sha256(key: &[u8], parts: &[&[u8]]) -> Vec<u8> {
    let mut mac = <Hmac<Sha256> as KeyInit>::new_from_slice(key).expect("HMAC takes any key");
    for part in parts {
        mac.update(part);
    }
    mac.finalize().into_bytes().to_vec()
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn header() -> Header {
        Header {
            runbook: "web".into(),
            environment: "web-dr".into(),
            run_id: "20260101-000000-abcd".into(),
        }
    }

    #[test]
    fn hmac_sha256_matches_rfc_4231() {
        // RFC 4231, test cases 1 and 2.
        assert_eq!(
            hex(&hmac_sha256(&[0x0b; 20], &[b"Hi There"])),
            "b0344c61d8db38535ca8afceaf0bf12b881dc200c9833da726e9376c2e32cff7"
        );
        assert_eq!(
            hex(&hmac_sha256(
                b"Jefe",
                &[b"what do ya want ", b"for nothing?"]
            )),
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
    }

    #[test]
    fn the_signature_is_over_the_time_and_the_body() {
        let signed = signature(b"Jefe", 1_700_000_000, b"{}");
        let expected = hex(&hmac_sha256(b"Jefe", &[b"1700000000.{}"]));
        assert_eq!(signed, format!("t=1700000000,v1={expected}"));
    }

    #[test]
    fn a_json_payload_has_the_event_the_run_and_its_own_fields() {
        let notice = Notice::GateWaiting {
            phase: "compute".into(),
            summary: Some("2 to add".into()),
            approvals_needed: 1,
            approvers: vec![],
            approve: "drctl approve R --gate compute".into(),
            reject: "drctl reject R".into(),
            resume: "drctl resume R".into(),
            deadline: None,
        };
        let body = body(
            NotifyFormat::Json,
            &header(),
            &notice,
            "2026-01-01T00:00:00Z",
        );
        let value: serde_json::Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(value["event"], "gate_waiting");
        assert_eq!(value["runbook"], "web");
        assert_eq!(value["environment"], "web-dr");
        assert_eq!(value["run_id"], "20260101-000000-abcd");
        assert_eq!(value["phase"], "compute");
        assert_eq!(value["approve"], "drctl approve R --gate compute");
        assert_eq!(value["deadline"], serde_json::Value::Null);
        assert_eq!(value["at"], "2026-01-01T00:00:00Z");

        let sweep = Notice::SweepFinished(SweepResult {
            found: 3,
            deleted: 3,
            ..SweepResult::default()
        });
        let value: serde_json::Value =
            serde_json::from_slice(&super::body(NotifyFormat::Json, &header(), &sweep, "t"))
                .unwrap();
        assert_eq!(value["event"], "sweep_finished");
        assert_eq!(value["deleted"], 3);
        assert_eq!(sweep.name(), "sweep_finished");
        let preflight = Notice::PreflightFailed {
            region: "us-west-2".into(),
            failed: vec!["images ami-1: not found in us-west-2".into()],
            unknown: 2,
        };
        let value: serde_json::Value =
            serde_json::from_slice(&super::body(NotifyFormat::Json, &header(), &preflight, "t"))
                .unwrap();
        assert_eq!(value["event"], "preflight_failed");
        assert_eq!(value["failed"][0], "images ami-1: not found in us-west-2");
        assert_eq!(value["unknown"], 2);
    }

    #[test]
    fn a_slack_payload_is_text_and_blocks() {
        let notice = Notice::DrillFinished {
            verdict: "passed".into(),
            rto_seconds: Some(42.0),
            rto_target_seconds: Some(1800.0),
            rto_met: Some(true),
            report: "/r/report.json".into(),
        };
        let body = body(NotifyFormat::Slack, &header(), &notice, "t");
        let value: serde_json::Value = serde_json::from_slice(&body).unwrap();
        let text = value["text"].as_str().unwrap();
        assert!(
            text.contains("drill passed, RTO 42s (target 1800s)"),
            "{text}"
        );
        assert_eq!(value["blocks"][0]["type"], "section");
        assert!(value.get("event").is_none());
    }
}
