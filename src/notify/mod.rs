//! Notifications: `[notify]` webhooks (the repository's `drctl.toml`, and a
//! runbook's, which add to it) told when a gate waits, is decided or times
//! out, a run ends, a drill gives its verdict, a leak is found, a sweep is
//! done.
//!
//! A [`Notifier`] watches a run's journal ([`Journal::watch`]): whichever
//! command writes a gate's wait, a decision or an end (the run itself,
//! `approve`, `reject`, `resume`) sends its notification. Each request is
//! signed (`Drctl-Signature`, see [`payload::signature`]), retried within a
//! bounded time ([`deliver::POLICY`]) and journaled, delivered or not; a
//! notification never fails a run.

mod deliver;
pub mod payload;

use std::path::Path;
use std::sync::{mpsc, Arc};
use std::time::Duration;

use tokio_rustls::rustls::RootCertStore;

use crate::diag::{Diagnostics, SourceFile};
use crate::error::Error;
use crate::journal::{run_state, Decision, Event, Journal, Watcher};
use crate::model::Webhook;

pub use deliver::{shown as shown_url, Policy, POLICY};
pub use payload::{Header, Notice, SweepResult};

/// The repository's settings file (as `cli::state` reads its `[state]`).
const SETTINGS_FILE: &str = "drctl.toml";

/// The header carrying the signature.
pub const SIGNATURE_HEADER: &str = "Drctl-Signature";

/// Sends a run's notifications to its webhooks.
pub struct Notifier {
    header: Header,
    hooks: Vec<Webhook>,
    /// The run passes its gates by policy (`--auto-approve`, a drill's
    /// `auto_approve`): nobody is asked, so nobody is told a gate waits.
    auto_approve: bool,
    policy: Policy,
    roots: Arc<RootCertStore>,
    /// By webhook: whether its last delivery failed (see [`deliver::ONE_TRY`]).
    down: std::sync::Mutex<Vec<bool>>,
}

/// The repository's webhooks (`root/drctl.toml`'s `[notify]`) followed by
/// `runbook`'s; a bad `[notify]` in `drctl.toml` is an error naming file,
/// line and key.
pub fn webhooks(root: &Path, runbook: &[Webhook]) -> Result<Vec<Webhook>, Error> {
    let mut hooks = read_notify(&root.join(SETTINGS_FILE))?;
    hooks.extend(runbook.iter().cloned());
    Ok(hooks)
}

/// The `[notify]` webhooks of `file` (none when there is no such file).
pub fn read_notify(file: &Path) -> Result<Vec<Webhook>, Error> {
    let Ok(text) = std::fs::read_to_string(file) else {
        return Ok(Vec::new());
    };
    let src = SourceFile::new(file, text);
    let mut diags = Diagnostics::new();
    let hooks = crate::load::decode::parse_notify(&src, &mut diags);
    diags.into_result(hooks).map_err(Error::Invalid)
}

impl Notifier {
    /// A notifier for the run `header` names, or none without webhooks.
    pub fn new(header: Header, hooks: Vec<Webhook>, auto_approve: bool) -> Option<Arc<Notifier>> {
        let count = hooks.len();
        (!hooks.is_empty()).then(|| {
            Arc::new(Notifier {
                header,
                hooks,
                auto_approve,
                policy: POLICY,
                roots: crate::verify::http::system_roots(),
                down: std::sync::Mutex::new(vec![false; count]),
            })
        })
    }

    /// Sends `notice` to every webhook at once, waits for them (within the
    /// delivery policy's deadline), and journals each delivery or failure
    /// in `journal` when there is one. Never fails.
    pub fn send(&self, journal: Option<&Journal>, notice: &Notice) {
        let now = jiff::Timestamp::now();
        let (tx, rx) = mpsc::channel();
        let policies: Vec<Policy> = (self.down.lock().expect("webhooks down").iter())
            .map(|&down| if down { deliver::ONE_TRY } else { self.policy })
            .collect();
        for (index, hook) in self.hooks.iter().enumerate() {
            let body = payload::body(hook.format, &self.header, notice, &now.to_string());
            let mut headers = Vec::new();
            if let Some(name) = &hook.secret_env {
                match std::env::var(name) {
                    Ok(secret) if !secret.is_empty() => headers.push((
                        SIGNATURE_HEADER,
                        payload::signature(secret.as_bytes(), now.as_second(), &body),
                    )),
                    _ => {
                        let _ = tx.send((
                            index,
                            deliver::Delivery {
                                attempts: 0,
                                result: Err(format!(
                                    "not sent: the signing secret's variable {name} is not set"
                                )),
                            },
                        ));
                        continue;
                    }
                }
            }
            let (tx, url, policy, roots) = (
                tx.clone(),
                hook.url.clone(),
                policies[index],
                self.roots.clone(),
            );
            std::thread::spawn(move || {
                let delivery = deliver::post(&url, &headers, &body, policy, &roots);
                let _ = tx.send((index, delivery));
            });
        }
        drop(tx);
        let mut done: Vec<Option<deliver::Delivery>> = vec![None; self.hooks.len()];
        let longest = policies
            .iter()
            .map(|p| p.deadline)
            .max()
            .unwrap_or_default();
        let deadline = std::time::Instant::now() + longest + Duration::from_millis(500);
        blocking(|| {
            while let Some(left) = deadline.checked_duration_since(std::time::Instant::now()) {
                match rx.recv_timeout(left) {
                    Ok((index, delivery)) => done[index] = Some(delivery),
                    Err(_) => break,
                }
            }
        });
        for (index, (hook, delivery)) in self.hooks.iter().zip(done).enumerate() {
            let policy = policies[index];
            let delivery = delivery.unwrap_or(deliver::Delivery {
                attempts: policy.attempts,
                result: Err(format!(
                    "no answer within {}",
                    humantime::format_duration(policy.deadline)
                )),
            });
            self.down.lock().expect("webhooks down")[index] = delivery.result.is_err();
            let (webhook, at) = (deliver::shown(&hook.url), crate::journal::now_millis());
            let record = match delivery.result {
                Ok(status) => Event::Notified {
                    at,
                    notice: notice.name().into(),
                    webhook,
                    attempts: delivery.attempts,
                    status,
                },
                Err(error) => {
                    tracing::warn!(
                        "notification {} to {webhook} failed: {error}",
                        notice.name()
                    );
                    Event::NotifyFailed {
                        at,
                        notice: notice.name().into(),
                        webhook,
                        attempts: delivery.attempts,
                        error,
                    }
                }
            };
            if let Some(journal) = journal {
                if let Err(e) = journal.append(&record) {
                    tracing::warn!("could not journal a notification: {e}");
                }
            }
        }
    }

    /// What a journal record tells the webhooks, if anything.
    fn notice(&self, journal: &Journal, event: &Event) -> Option<Notice> {
        let run = &self.header.run_id;
        Some(match event {
            Event::GateWaiting {
                phase,
                gate,
                summary,
                at,
                ..
            } if !self.auto_approve => {
                let since = journal
                    .events()
                    .ok()
                    .and_then(|events| run_state(&events).waiting)
                    .filter(|w| &w.phase == phase)
                    .map_or(*at, |w| w.since);
                Notice::GateWaiting {
                    phase: phase.clone(),
                    summary: summary.clone(),
                    approvals_needed: gate.approvals,
                    approvers: gate.approvers.clone(),
                    approve: format!("drctl approve {run} --gate {phase}"),
                    reject: format!("drctl reject {run}"),
                    resume: format!("drctl resume {run}"),
                    deadline: gate.timeout_secs.and_then(|secs| {
                        let end =
                            since.checked_add(i64::try_from(secs).ok()?.checked_mul(1000)?)?;
                        Some(jiff::Timestamp::from_millisecond(end).ok()?.to_string())
                    }),
                }
            }
            Event::GateDecision {
                phase,
                decision: decision @ (Decision::Approve | Decision::Reject),
                by,
                reason,
                waited_ms,
                ..
            } => Notice::GateDecided {
                phase: phase.clone(),
                decision: match decision {
                    Decision::Approve => "approve",
                    _ => "reject",
                }
                .into(),
                by: by.clone(),
                reason: reason.clone(),
                waited_seconds: *waited_ms as f64 / 1000.0,
            },
            Event::GateDecision {
                phase,
                decision: Decision::Timeout,
                reason,
                waited_ms,
                ..
            } => Notice::GateTimedOut {
                phase: phase.clone(),
                reason: reason.clone(),
                waited_seconds: *waited_ms as f64 / 1000.0,
            },
            Event::RunFinished { status, .. } => Notice::RunFinished {
                status: serde_json::to_value(status)
                    .ok()?
                    .as_str()
                    .unwrap_or("unknown")
                    .to_string(),
            },
            Event::DrillFinished {
                passed,
                report,
                verdict,
                rto_ms,
                rto_target_ms,
                ..
            } => Notice::DrillFinished {
                verdict: verdict
                    .clone()
                    .unwrap_or_else(|| if *passed { "passed" } else { "failed" }.into()),
                rto_seconds: rto_ms.map(|ms| ms as f64 / 1000.0),
                rto_target_seconds: rto_target_ms.map(|ms| ms as f64 / 1000.0),
                rto_met: rto_ms
                    .zip(*rto_target_ms)
                    .map(|(rto, target)| rto <= target),
                report: report.display().to_string(),
            },
            Event::LeakFound { resources, .. } => Notice::LeakFound {
                resources: resources.clone(),
            },
            _ => return None,
        })
    }
}

impl Watcher for Notifier {
    fn written(&self, journal: &Journal, event: &Event) {
        if let Some(notice) = self.notice(journal, event) {
            self.send(Some(journal), &notice);
        }
    }

    fn as_any(&self) -> &dyn std::any::Any {
        self
    }
}

/// Runs `wait` where blocking is allowed: off the async runtime's worker
/// threads' duty when there is a multi-threaded runtime.
fn blocking(wait: impl FnOnce()) {
    use tokio::runtime::{Handle, RuntimeFlavor};
    match Handle::try_current().map(|h| h.runtime_flavor()) {
        Ok(RuntimeFlavor::MultiThread) => tokio::task::block_in_place(wait),
        _ => wait(),
    }
}

/// Watches `journal`'s run with the webhooks of its repository and
/// runbook, as its start record names them; nothing without webhooks.
/// A bad `[notify]` is an error (file, line, key), before anything is
/// recorded by the caller.
pub fn watch(journal: &Journal) -> Result<(), Error> {
    let events = journal.events()?;
    let Some(Event::RunStarted {
        run_id,
        runbook,
        root,
        runbook_file,
        environment,
        auto_approve,
        ..
    }) = events.first()
    else {
        return Ok(());
    };
    // On another machine of the team (a shared store), the run's
    // repository is the checkout drctl runs in, the runbook at the same
    // place in it (as `resume` finds it).
    let (root, runbook_file) = match root.is_dir() {
        true => (root.clone(), runbook_file.clone()),
        false => {
            let here = std::env::current_dir()
                .ok()
                .and_then(|cwd| crate::load::find_root(&cwd))
                .unwrap_or_else(|| root.clone());
            let relative = runbook_file.strip_prefix(root).unwrap_or(runbook_file);
            (here.clone(), here.join(relative))
        }
    };
    let hooks = webhooks(&root, &read_notify(&runbook_file)?)?;
    let header = Header {
        runbook: runbook.clone(),
        environment: environment.clone(),
        run_id: run_id.clone(),
    };
    if let Some(notifier) = Notifier::new(header, hooks, auto_approve.is_some()) {
        journal.watch(notifier);
    }
    Ok(())
}

/// Sends `notice` through the notifier watching `journal` (none: nothing
/// is sent), journaling the delivery there.
pub fn send(journal: &Journal, notice: &Notice) {
    if let Some(notifier) = journal
        .watcher()
        .and_then(|w| w.as_any().downcast_ref::<Notifier>())
    {
        notifier.send(Some(journal), notice);
    }
}

/// A sweep's result, sent as `sweep_finished` to the webhooks watching the
/// sweep's journal (see [`watch`]).
pub fn sweep_finished(journal: &Journal, result: SweepResult) {
    send(journal, &Notice::SweepFinished(result));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_webhook_that_is_down_costs_the_full_retries_once_then_one_short_try() {
        // A port nobody listens on: bind one, then close it.
        let port = {
            let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            l.local_addr().unwrap().port()
        };
        let hook = crate::model::Webhook {
            url: format!("http://127.0.0.1:{port}/gone"),
            format: crate::model::NotifyFormat::Json,
            secret_env: None,
        };
        let header = Header {
            runbook: "rb".into(),
            environment: "env".into(),
            run_id: "r-1".into(),
        };
        let notifier = Notifier::new(header, vec![hook], false).expect("a webhook");
        let dir = tempfile::tempdir().unwrap();
        let store = crate::store::local(dir.path());
        let journal = Journal::create(store.as_ref(), "r-1").unwrap();
        let notice = Notice::SweepFinished(SweepResult {
            dry_run: false,
            regions: vec!["eu-west-1".into()],
            drills: Vec::new(),
            found: 0,
            deleted: 0,
            left: Vec::new(),
        });
        for _ in 0..3 {
            notifier.send(Some(&journal), &notice);
        }
        let attempts: Vec<u32> = journal
            .events()
            .unwrap()
            .iter()
            .filter_map(|e| match e {
                Event::NotifyFailed { attempts, .. } => Some(*attempts),
                _ => None,
            })
            .collect();
        assert_eq!(attempts, [POLICY.attempts, 1, 1]);
    }
}
