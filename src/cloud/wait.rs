//! Waiting on the cloud: poll with a deadline and a short, growing back-off.
//!
//! The SDK's waiters sleep at least 15 s between polls; on the critical path
//! of a recovery that is up to 15 s lost per wait, so drctl polls itself,
//! starting at 250 ms and doubling up to 5 s. A probe reports a terminal
//! failure as an error, which ends the wait at once.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

use tokio::time::Instant;

use super::CloudError;

/// What a wait reports while it polls: the thing waited on, its state now,
/// and how long until the deadline.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Waiting {
    pub on: String,
    pub state: String,
    pub deadline_in: Duration,
}

/// Receives [`Waiting`] reports.
pub type WaitReporter = Arc<dyn Fn(Waiting) + Send + Sync>;

tokio::task_local! {
    static REPORTER: WaitReporter;
    static INTERRUPT: CancellationToken;
}

/// Runs `step` with `stop` as the Ctrl-C its interruptible waits heed:
/// most steps finish what they started, but a wait that can last half an
/// hour (a builder's provisioning) gives up when the run is stopped.
pub async fn interruptible<F: Future>(stop: CancellationToken, step: F) -> F::Output {
    INTERRUPT.scope(stop, step).await
}

/// Whether the run this step belongs to was stopped (Ctrl-C, SIGTERM).
pub fn interrupted() -> bool {
    INTERRUPT
        .try_with(CancellationToken::is_cancelled)
        .unwrap_or(false)
}

/// Runs `step` with its waits reported to `reporter`: the executor learns
/// what each step is waiting on (and until when) without the adapters
/// knowing who listens.
pub async fn reporting_waits<F: Future>(reporter: WaitReporter, step: F) -> F::Output {
    REPORTER.scope(reporter, step).await
}

fn report(waiting: Waiting) {
    let _ = REPORTER.try_with(|reporter| reporter(waiting));
}

/// Pause between polls: `initial`, doubling up to `max`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Backoff {
    pub initial: Duration,
    pub max: Duration,
}

impl Default for Backoff {
    fn default() -> Self {
        Backoff {
            initial: Duration::from_millis(250),
            max: Duration::from_secs(5),
        }
    }
}

impl Backoff {
    /// The pauses, in order (endless).
    pub fn delays(self) -> impl Iterator<Item = Duration> {
        std::iter::successors(Some(self.initial), move |d| Some((*d * 2).min(self.max)))
    }
}

/// One look at the thing waited for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Probe<T> {
    Done(T),
    /// Not yet; the state it is in (shown if the wait times out).
    Waiting(String),
}

/// Polls `probe` until it is [`Probe::Done`], it fails (terminal state or
/// API error), or `deadline` has passed ([`CloudError::Timeout`] naming
/// `what` and the last state seen). The first poll is immediate.
pub async fn until<T, F, Fut>(
    what: &str,
    deadline: Duration,
    backoff: Backoff,
    mut probe: F,
) -> Result<T, CloudError>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<Probe<T>, CloudError>>,
{
    let start = Instant::now();
    let mut delays = backoff.delays();
    loop {
        let state = match probe().await? {
            Probe::Done(value) => return Ok(value),
            Probe::Waiting(state) => state,
        };
        let waited = start.elapsed();
        if waited >= deadline {
            return Err(CloudError::Timeout {
                what: what.to_string(),
                waited,
                last_state: state,
            });
        }
        let pause = delays.next().unwrap_or(backoff.max);
        tracing::debug!(what, state = %state, ?pause, "waiting");
        report(Waiting {
            on: what.to_string(),
            state: state.clone(),
            deadline_in: deadline - waited,
        });
        // Never sleep past the deadline; one last poll happens right at it.
        tokio::time::sleep(pause.min(deadline - waited)).await;
    }
}

/// Runs `op` until it succeeds, retrying (with back-off, up to `deadline`)
/// while its error satisfies `retryable` — e.g. `DependencyViolation` while
/// AWS releases the network interfaces of something just deleted. Other
/// errors, and a retryable one after the deadline, are returned as they are.
pub async fn retry_while<T, F, Fut>(
    what: &str,
    deadline: Duration,
    backoff: Backoff,
    retryable: impl Fn(&CloudError) -> bool,
    mut op: F,
) -> Result<T, CloudError>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, CloudError>>,
{
    let start = Instant::now();
    let mut delays = backoff.delays();
    loop {
        match op().await {
            Ok(value) => return Ok(value),
            Err(e) if retryable(&e) && start.elapsed() < deadline => {
                let pause = delays.next().unwrap_or(backoff.max);
                tracing::debug!(what, error = %e, ?pause, "retrying");
                tokio::time::sleep(pause.min(deadline.saturating_sub(start.elapsed()))).await;
            }
            Err(e) => return Err(e),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::cell::Cell;
    use std::sync::Mutex;

    use super::*;

    #[tokio::test]
    async fn a_wait_reports_what_it_waits_on_to_the_step_running_it() {
        let seen = Arc::new(Mutex::new(Vec::new()));
        let sink = seen.clone();
        let reporter: WaitReporter = Arc::new(move |w| sink.lock().unwrap().push(w));
        let polls = Cell::new(0);
        let out = reporting_waits(
            reporter,
            until("lb to become active", Duration::from_secs(60), FAST, || {
                polls.set(polls.get() + 1);
                let n = polls.get();
                async move {
                    Ok(if n < 3 {
                        Probe::Waiting("provisioning".into())
                    } else {
                        Probe::Done(())
                    })
                }
            }),
        )
        .await;
        assert!(out.is_ok());
        let seen = seen.lock().unwrap();
        assert_eq!(seen.len(), 2, "one report per poll that found it not done");
        assert_eq!(seen[0].on, "lb to become active");
        assert_eq!(seen[0].state, "provisioning");
        assert!(seen[0].deadline_in <= Duration::from_secs(60));
    }

    const FAST: Backoff = Backoff {
        initial: Duration::from_millis(1),
        max: Duration::from_millis(8),
    };

    #[test]
    fn delays_double_up_to_the_cap() {
        let delays: Vec<u64> = Backoff::default()
            .delays()
            .take(7)
            .map(|d| d.as_millis() as u64)
            .collect();
        assert_eq!(delays, [250, 500, 1000, 2000, 4000, 5000, 5000]);
    }

    #[tokio::test]
    async fn returns_as_soon_as_the_probe_is_done() {
        let polls = Cell::new(0);
        let out = until("thing", Duration::from_secs(5), FAST, || {
            polls.set(polls.get() + 1);
            let n = polls.get();
            async move {
                Ok(if n < 3 {
                    Probe::Waiting("pending".into())
                } else {
                    Probe::Done(n)
                })
            }
        })
        .await
        .unwrap();
        assert_eq!(out, 3);
    }

    #[tokio::test]
    async fn a_wait_that_never_succeeds_times_out_naming_what_and_where() {
        let started = std::time::Instant::now();
        let err = until(
            "instance i-1 running",
            Duration::from_millis(60),
            FAST,
            || async { Ok::<Probe<()>, _>(Probe::Waiting("pending".into())) },
        )
        .await
        .unwrap_err();
        assert!(started.elapsed() < Duration::from_secs(2));
        let text = err.to_string();
        assert!(
            text.starts_with("timed out after ") && text.contains("instance i-1 running"),
            "{text}"
        );
        assert!(text.contains("last state: pending"), "{text}");
        assert!(
            matches!(err, CloudError::Timeout { waited, .. } if waited >= Duration::from_millis(60))
        );
    }

    #[tokio::test]
    async fn a_terminal_state_ends_the_wait_at_once() {
        let polls = Cell::new(0);
        let err = until(
            "load balancer active",
            Duration::from_secs(60),
            FAST,
            || {
                polls.set(polls.get() + 1);
                async {
                    Err::<Probe<()>, _>(CloudError::Failed {
                        what: "load balancer x".into(),
                        state: "failed".into(),
                        reason: "no capacity".into(),
                    })
                }
            },
        )
        .await
        .unwrap_err();
        assert_eq!(polls.get(), 1);
        assert!(err.to_string().contains("no capacity"), "{err}");
    }

    fn violation() -> CloudError {
        CloudError::Call {
            service: "EC2",
            operation: "DeleteSecurityGroup",
            code: Some("DependencyViolation".into()),
            message: "in use".into(),
            attempts: 1,
            detail: String::new(),
        }
    }

    #[tokio::test]
    async fn retries_only_retryable_errors_until_the_deadline() {
        let is_violation = |e: &CloudError| e.code() == Some("DependencyViolation");

        let tries = Cell::new(0);
        let out = retry_while(
            "delete sg",
            Duration::from_secs(5),
            FAST,
            is_violation,
            || {
                tries.set(tries.get() + 1);
                let n = tries.get();
                async move {
                    if n < 3 {
                        Err(violation())
                    } else {
                        Ok(n)
                    }
                }
            },
        )
        .await
        .unwrap();
        assert_eq!(out, 3);

        let err = retry_while(
            "delete sg",
            Duration::from_millis(30),
            FAST,
            is_violation,
            || async { Err::<(), _>(violation()) },
        )
        .await
        .unwrap_err();
        assert_eq!(err.code(), Some("DependencyViolation"));

        let tries = Cell::new(0);
        let err = retry_while(
            "delete sg",
            Duration::from_secs(5),
            FAST,
            is_violation,
            || {
                tries.set(tries.get() + 1);
                async {
                    Err::<(), _>(CloudError::Unsupported {
                        kind: "image".into(),
                        operation: "create",
                    })
                }
            },
        )
        .await
        .unwrap_err();
        assert_eq!(tries.get(), 1);
        assert!(matches!(err, CloudError::Unsupported { .. }));
    }
}
