//! Waiting on the cloud: poll with a deadline, at a cadence that notices
//! readiness soon after it happens.
//!
//! The SDK's waiters sleep at least 15 s between polls; on the critical path
//! of a recovery that is up to 15 s lost per wait, so drctl polls itself.
//! The pause after a poll is a twentieth of the time waited so far, at
//! least 250 ms and at most 5 s ([`Backoff::pause_after`]): whatever the
//! wait, a state reached between two polls is seen at most max(250 ms, 5 %
//! of the time waited) later — half of what a recovery may lose there —
//! and a wait of minutes costs a poll every few seconds (a Describe call,
//! far below AWS's rate limits), not hundreds. A throttled poll doubles the pause instead of
//! ending the wait. A probe reports a terminal failure as an error, which
//! ends the wait at once.

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

/// Pause between polls: between `initial` and `max`.
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
    /// Pauses between retries of a failing call: `initial`, doubling up to
    /// `max` (endless).
    pub fn delays(self) -> impl Iterator<Item = Duration> {
        std::iter::successors(Some(self.initial), move |d| Some((*d * 2).min(self.max)))
    }

    /// The pause after a poll made `waited` into a wait: a twentieth of
    /// it, within `initial..=max`. What turns ready just after a poll is
    /// seen by the next, so this is the most a wait can notice late.
    pub fn pause_after(self, waited: Duration) -> Duration {
        (waited / 20).clamp(self.initial, self.max.max(self.initial))
    }
}

/// Whether AWS refused a call for its rate: the wait slows down rather than
/// gives up (the SDK retried the call itself already).
fn throttled(e: &CloudError) -> bool {
    e.code().is_some_and(|c| {
        c.contains("Throttl") || c == "RequestLimitExceeded" || c == "TooManyRequestsException"
    })
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
    // Doubled by each throttled poll in a row, reset by an answer.
    let mut slowed: u32 = 0;
    let mut state = String::from("not yet seen");
    loop {
        match probe().await {
            Ok(Probe::Done(value)) => return Ok(value),
            Ok(Probe::Waiting(now)) => {
                state = now;
                slowed = 0;
            }
            Err(e) if throttled(&e) && start.elapsed() < deadline => {
                slowed = (slowed + 1).min(6);
                tracing::debug!(what, error = %e, "throttled; polling slower");
            }
            Err(e) => return Err(e),
        }
        let waited = start.elapsed();
        if waited >= deadline {
            return Err(CloudError::Timeout {
                what: what.to_string(),
                waited,
                last_state: state,
            });
        }
        let pause = backoff.pause_after(waited) * 2u32.pow(slowed);
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
            .take(8)
            .map(|d| d.as_millis() as u64)
            .collect();
        assert_eq!(delays, [250, 500, 1000, 2000, 4000, 5000, 5000, 5000]);
    }

    #[test]
    fn a_wait_notices_readiness_within_a_twentieth_of_the_time_waited() {
        let backoff = Backoff::default();
        let ms = |w: u64| backoff.pause_after(Duration::from_millis(w)).as_millis() as u64;
        assert_eq!(ms(0), 250, "at least 250 ms");
        assert_eq!(ms(1_000), 250);
        assert_eq!(ms(20_000), 1_000, "a twentieth of 20 s");
        assert_eq!(ms(90_000), 4_500);
        assert_eq!(ms(3_600_000), 5_000, "at most 5 s");
        // The observe lag bound of issue 22: max(1 s, 10 % of the wait).
        for waited in (0..3_600_000).step_by(7_919) {
            assert!(ms(waited) <= 1_000u64.max(waited / 10), "{waited}");
        }
    }

    #[tokio::test]
    async fn a_throttled_poll_slows_the_wait_down_instead_of_ending_it() {
        let polls = Cell::new(0);
        let out = until("lb active", Duration::from_secs(5), FAST, || {
            polls.set(polls.get() + 1);
            let n = polls.get();
            async move {
                match n {
                    1 | 2 => Err(CloudError::Call {
                        service: "ELBv2",
                        operation: "DescribeLoadBalancers",
                        code: Some("Throttling".into()),
                        message: "Rate exceeded".into(),
                        attempts: 3,
                        detail: String::new(),
                    }),
                    3 => Ok(Probe::Waiting("provisioning".into())),
                    _ => Ok(Probe::Done(n)),
                }
            }
        })
        .await
        .unwrap();
        assert_eq!(out, 4);
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
