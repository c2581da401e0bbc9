//! `drctl schedule run`: a foreground scheduler that runs due drills one at
//! a time, oldest fire first, until it is told to stop.
//!
//! Each drill is a child process, `drctl [global options] drill RUNBOOK`,
//! exactly what a systemd timer or a crontab line would run: a drill that
//! crashes takes nothing of the daemon with it, and its verdict is its exit
//! code (0 passed, 1 failed, anything else an error). The child runs in its
//! own process group, so a Ctrl-C at the terminal reaches the daemon only,
//! and the daemon forwards one SIGTERM: the drill tears down what it built
//! and ends, the daemon logs its verdict and exits. A further signal is
//! forwarded again (the drill's own "stop now").
//!
//! A fire is marked handled (see [`super::state`]) when its drill starts,
//! so a daemon killed mid-drill does not start that drill again; the
//! drill's own journal is what finishes it (`drctl resume`).
//!
//! One daemon per store runs drills; a second one started on the same
//! store (another machine of the team, for when the first one's dies)
//! stands by until the first ends or, on a shared store, its lease lapses,
//! then takes over, missed fires included. Every fire is also claimed in
//! the store before its drill starts ([`super::state::claim_fire`]), so a
//! fire a CronJob's `drill --scheduled` ran already is not run again.

use std::ffi::OsString;
use std::os::unix::process::ExitStatusExt as _;
use std::path::PathBuf;
use std::process::Stdio;
use std::sync::Arc;
use std::time::{Duration, Instant};

use jiff::{Timestamp, Zoned};
use serde::Serialize;
use tokio::process::Child;
use tokio::sync::mpsc;

use super::state::{self, LastRun, State, Verdict};
use super::{Due, Job, ScheduleError, Scheduled};
use crate::clock::{Clock, Millis};
use crate::store::{Key, Lease, ReportFormat, RunStore};

/// The longest the daemon sleeps before it looks at the clock again, so a
/// wall clock that jumps (NTP, a suspended machine) delays a fire by at most
/// this much.
const MAX_NAP: Duration = Duration::from_secs(60);

/// How to start one drill: a program and the global options it is given
/// before `drill RUNBOOK`.
#[derive(Debug, Clone)]
pub struct DrillCommand {
    pub program: PathBuf,
    pub args: Vec<OsString>,
}

pub struct Config {
    pub scheduled: Vec<Scheduled>,
    /// Holds the scheduler's state and lock, and the drills' reports.
    pub store: Arc<dyn RunStore>,
    pub drill: DrillCommand,
    /// Run what is due now, then return, instead of waiting for more.
    pub once: bool,
    /// How often a daemon standing by tries to take the scheduler's lock.
    pub standby_retry: Duration,
}

/// A request to stop, from SIGTERM or SIGINT (Ctrl-C).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum StopSignal {
    #[serde(rename = "SIGTERM")]
    Term,
    #[serde(rename = "SIGINT")]
    Interrupt,
}

impl std::fmt::Display for StopSignal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            StopSignal::Term => "SIGTERM",
            StopSignal::Interrupt => "SIGINT",
        })
    }
}

/// What a daemon's life came to.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Summary {
    pub ran: usize,
    /// Drills that failed or could not run.
    pub not_passed: usize,
    pub stopped: bool,
}

/// `--now T`: a clock that starts at T and runs at the real pace, so tests
/// set the time without waiting for it.
pub struct OffsetClock {
    start: Instant,
    at: Millis,
}

impl OffsetClock {
    pub fn starting_at(at: Timestamp) -> OffsetClock {
        OffsetClock {
            start: Instant::now(),
            at: at.as_millisecond(),
        }
    }
}

impl Clock for OffsetClock {
    fn now(&self) -> Millis {
        self.at + i64::try_from(self.start.elapsed().as_millis()).unwrap_or(i64::MAX)
    }
}

/// SIGTERM and SIGINT as [`StopSignal`]s on a channel, for [`run`].
pub fn os_signals() -> Result<mpsc::UnboundedReceiver<StopSignal>, ScheduleError> {
    use tokio::signal::unix::{signal, SignalKind};
    let mut term = signal(SignalKind::terminate()).map_err(ScheduleError::Signals)?;
    let mut int = signal(SignalKind::interrupt()).map_err(ScheduleError::Signals)?;
    let (tx, rx) = mpsc::unbounded_channel();
    tokio::spawn(async move {
        loop {
            let signal = tokio::select! {
                Some(()) = term.recv() => StopSignal::Term,
                Some(()) = int.recv() => StopSignal::Interrupt,
                else => break,
            };
            if tx.send(signal).is_err() {
                break;
            }
        }
    });
    Ok(rx)
}

/// The due runs, one per runbook, the oldest pending fire first.
pub fn due_runs<'a>(
    scheduled: &'a [Scheduled],
    state: &State,
    now: Timestamp,
) -> Vec<(&'a Scheduled, Due)> {
    let mut due: Vec<_> = scheduled
        .iter()
        .filter_map(|s| {
            let handled = state.runbooks.get(&s.key())?.handled_through;
            Some((s, super::due(&s.cron, &s.tz, handled, now)?))
        })
        .collect();
    due.sort_by_key(|(_, d)| d.oldest.timestamp());
    due
}

/// The earliest fire after `now` among all runbooks.
pub fn next_fire(scheduled: &[Scheduled], now: Timestamp) -> Option<(&Scheduled, Zoned)> {
    scheduled
        .iter()
        .filter_map(|s| Some((s, super::fires(&s.cron, &s.tz, now).next()?.at)))
        .min_by_key(|(_, at)| at.timestamp())
}

/// Runs the scheduler until a stop arrives on `stop` (or, with
/// `config.once`, until what was due has run); reports through `log`.
pub async fn run(
    config: &Config,
    clock: &dyn Clock,
    stop: &mut mpsc::UnboundedReceiver<StopSignal>,
    log: &dyn Fn(Timestamp, &Event),
) -> Result<Summary, ScheduleError> {
    let now = || Timestamp::from_millisecond(clock.now()).unwrap_or_else(|_| Timestamp::now());
    let Some(_lock) = take_lock(config, stop, log, &now).await? else {
        log(now(), &Event::Stopped);
        return Ok(Summary {
            stopped: true,
            ..Summary::default()
        });
    };
    let mut state = state::load(config.store.as_ref())?;
    let started = now();
    let keys: Vec<String> = config.scheduled.iter().map(Scheduled::key).collect();
    let added = state.reconcile(keys.iter().map(String::as_str), started);
    state::save(config.store.as_ref(), &state)?;
    log(started, &watching(config, &state, &added));

    let mut summary = Summary::default();
    let mut daemon = Daemon {
        config,
        state: &mut state,
        stop,
        log,
        now: &now,
    };
    if config.once {
        for (scheduled, due) in due_runs(&config.scheduled, daemon.state, now()) {
            if !daemon.start(scheduled, due, &mut summary).await? {
                break;
            }
        }
    } else {
        let mut announced: Option<Timestamp> = None;
        loop {
            let t = now();
            let first_due = due_runs(&config.scheduled, daemon.state, t)
                .into_iter()
                .next();
            if let Some((scheduled, due)) = first_due {
                if !daemon.start(scheduled, due, &mut summary).await? {
                    break;
                }
                continue;
            }
            let next = next_fire(&config.scheduled, t);
            if let Some((scheduled, at)) = &next {
                if announced != Some(at.timestamp()) {
                    announced = Some(at.timestamp());
                    log(
                        t,
                        &Event::Waiting {
                            job: scheduled.job,
                            runbook: scheduled.runbook.clone(),
                            fire: at.to_string(),
                        },
                    );
                }
            }
            let nap = next
                .and_then(|(_, at)| t.duration_until(at.timestamp()).try_into().ok())
                .map_or(MAX_NAP, |d: Duration| d.min(MAX_NAP));
            tokio::select! {
                () = tokio::time::sleep(nap) => {}
                signal = recv(daemon.stop) => {
                    log(now(), &Event::Stopping { signal, in_flight: None });
                    summary.stopped = true;
                    break;
                }
            }
        }
    }
    log(now(), &Event::Stopped);
    Ok(summary)
}

fn watching(config: &Config, state: &State, added: &[String]) -> Event {
    let runbooks = config
        .scheduled
        .iter()
        .map(|s| {
            let handled = state.runbooks.get(&s.key()).map(|r| r.handled_through);
            Watched {
                job: s.job,
                runbook: s.runbook.clone(),
                schedule: s.expression.clone(),
                timezone: s.timezone.clone(),
                new: added.contains(&s.key()),
                next: handled
                    .and_then(|h| super::fires(&s.cron, &s.tz, h).next())
                    .map(|f| f.at.to_string()),
            }
        })
        .collect();
    Event::Watching {
        state_file: config.store.location(&Key::schedule_state()),
        runbooks,
    }
}

/// The scheduler's lock, once this daemon has it; `None` when a stop came
/// first. While another daemon holds it, this one stands by and tries
/// again every `standby_retry` (a daemon run `--once` is refused instead:
/// the other one is running what is due).
async fn take_lock(
    config: &Config,
    stop: &mut mpsc::UnboundedReceiver<StopSignal>,
    log: &dyn Fn(Timestamp, &Event),
    now: &dyn Fn() -> Timestamp,
) -> Result<Option<Box<dyn Lease>>, ScheduleError> {
    let mut announced = false;
    loop {
        match lock(config.store.as_ref()) {
            Ok(lease) => return Ok(Some(lease)),
            Err(ScheduleError::Busy { path, holder }) if !config.once => {
                if !announced {
                    announced = true;
                    log(now(), &Event::Standby { lock: path, holder });
                }
            }
            Err(e) => return Err(e),
        }
        tokio::select! {
            () = tokio::time::sleep(config.standby_retry) => {}
            signal = recv(stop) => {
                log(now(), &Event::Stopping { signal, in_flight: None });
                return Ok(None);
            }
        }
    }
}

/// A stop request; a closed channel never asks to stop.
async fn recv(stop: &mut mpsc::UnboundedReceiver<StopSignal>) -> StopSignal {
    match stop.recv().await {
        Some(signal) => signal,
        None => std::future::pending().await,
    }
}

struct Daemon<'a> {
    config: &'a Config,
    state: &'a mut State,
    stop: &'a mut mpsc::UnboundedReceiver<StopSignal>,
    log: &'a dyn Fn(Timestamp, &Event),
    now: &'a dyn Fn() -> Timestamp,
}

/// One drill (or preflight) the daemon starts: what names it in the log
/// and the state file.
struct Launch {
    job: Job,
    runbook: String,
    /// Its schedule's [`Scheduled::key`]: its entry in the state file.
    key: String,
    /// The newest fire it stands for, in the runbook's time zone.
    fire: String,
    run_id: String,
    started: Timestamp,
}

/// How a drill's process ended, or why it could not run.
#[derive(Debug, Default)]
struct Exit {
    code: Option<i32>,
    /// The signal that killed it, if one did.
    signal: Option<i32>,
    error: Option<String>,
    /// A stop was asked for (and forwarded) while it ran.
    stopping: bool,
}

impl Exit {
    fn error(error: String) -> Exit {
        Exit {
            error: Some(error),
            ..Exit::default()
        }
    }
}

impl Daemon<'_> {
    /// Runs one due drill or preflight to its end; `false` when a stop was
    /// asked for (before it started, or while it ran).
    async fn start(
        &mut self,
        scheduled: &Scheduled,
        due: Due,
        summary: &mut Summary,
    ) -> Result<bool, ScheduleError> {
        if let Ok(signal) = self.stop.try_recv() {
            (self.log)(
                (self.now)(),
                &Event::Stopping {
                    signal,
                    in_flight: None,
                },
            );
            summary.stopped = true;
            return Ok(false);
        }
        let started = (self.now)();
        // The drill is told its run id, so its report is known by name (a
        // file's modification time may lag the clock on coarse file systems).
        let run_id =
            crate::app::new_run_id(&crate::clock::ManualClock::at(started.as_millisecond()));
        let launch = Launch {
            job: scheduled.job,
            runbook: scheduled.runbook.clone(),
            key: scheduled.key(),
            fire: due.newest.at.to_string(),
            run_id,
            started,
        };
        let fire = due.newest.at.timestamp();
        let store = self.config.store.as_ref();
        let claim = state::claim_fire(store, &launch.key, fire.as_millisecond(), &launch.run_id)?;
        if let state::FireClaim::Taken(by) = claim {
            (self.log)(
                started,
                &Event::FireTaken {
                    job: launch.job,
                    runbook: launch.runbook.clone(),
                    fire: launch.fire,
                    by,
                },
            );
            self.record(&launch.key, |entry| entry.handled_through = fire)?;
            return Ok(true);
        }
        self.record_start(&launch, &due)?;
        let exit = self.run_child(&launch, &due).await;
        self.finish(launch, exit, summary)
    }

    /// Marks the fire handled before the drill starts, so a daemon killed
    /// mid-drill does not start it again (the drill's journal finishes it).
    fn record_start(&mut self, launch: &Launch, due: &Due) -> Result<(), ScheduleError> {
        self.record(&launch.key, |entry| {
            entry.handled_through = due.newest.at.timestamp();
            entry.last_run = Some(LastRun {
                fire: due.newest.at.timestamp(),
                fires: due.count,
                started_at: launch.started,
                finished_at: None,
                verdict: None,
                exit_code: None,
            });
        })
    }

    /// Starts the drill's process and waits for it; a drill that cannot be
    /// started is an [`Exit`] with an error, not an error of the daemon.
    async fn run_child(&mut self, launch: &Launch, due: &Due) -> Exit {
        let drill = &self.config.drill;
        let mut command = tokio::process::Command::new(&drill.program);
        command
            .args(&drill.args)
            .arg(launch.job.command())
            .arg(&launch.runbook);
        if launch.job == Job::Drill {
            command.arg("--run-id").arg(&launch.run_id);
        }
        let child = command
            .stdin(Stdio::null())
            // Its own process group: a Ctrl-C at the terminal reaches the
            // daemon only, which forwards one SIGTERM (see the module docs).
            .process_group(0)
            .spawn();
        let child = match child {
            Ok(child) => child,
            Err(e) => return Exit::error(format!("cannot start {}: {e}", drill.program.display())),
        };
        let pid = child.id().unwrap_or_default();
        let started = match launch.job {
            Job::Drill => Event::DrillStarted {
                runbook: launch.runbook.clone(),
                fire: launch.fire.clone(),
                shift: due.newest.shift,
                fires: due.count,
                pid,
                run_id: launch.run_id.clone(),
            },
            Job::Preflight => Event::PreflightStarted {
                runbook: launch.runbook.clone(),
                fire: launch.fire.clone(),
                shift: due.newest.shift,
                fires: due.count,
                pid,
            },
        };
        (self.log)(launch.started, &started);
        // A preflight has nothing to tear down: a stop ends it at once.
        let in_flight = (launch.job == Job::Drill).then(|| launch.runbook.clone());
        self.wait(child, pid, in_flight).await
    }

    /// Waits for the drill to end, forwarding every stop request to it (the
    /// drill tears down what it built before it exits); the first one is
    /// logged.
    async fn wait(&mut self, mut child: Child, pid: u32, in_flight: Option<String>) -> Exit {
        let mut stopping = false;
        let status = loop {
            tokio::select! {
                status = child.wait() => break status,
                signal = recv(self.stop) => {
                    forward_term(pid);
                    if !stopping {
                        stopping = true;
                        (self.log)((self.now)(), &Event::Stopping {
                            signal,
                            in_flight: in_flight.clone(),
                        });
                    }
                }
            }
        };
        let exit = match status {
            Ok(status) => Exit {
                code: status.code(),
                signal: status.signal(),
                ..Exit::default()
            },
            Err(e) => Exit::error(format!("cannot wait for the drill: {e}")),
        };
        Exit { stopping, ..exit }
    }

    /// Records the drill's verdict in the state file and the summary, and
    /// logs it with the report it wrote; `false` when a stop was asked for.
    fn finish(
        &mut self,
        launch: Launch,
        exit: Exit,
        summary: &mut Summary,
    ) -> Result<bool, ScheduleError> {
        let verdict = Verdict::from_exit(exit.code);
        let finished = (self.now)();
        self.record(&launch.key, |entry| {
            if let Some(run) = &mut entry.last_run {
                run.finished_at = Some(finished);
                run.verdict = Some(verdict);
                run.exit_code = exit.code;
            }
        })?;
        summary.ran += 1;
        if verdict != Verdict::Passed {
            summary.not_passed += 1;
        }
        summary.stopped |= exit.stopping;
        let store = self.config.store.as_ref();
        let duration_ms = finished.as_millisecond() - launch.started.as_millisecond();
        let event = match launch.job {
            Job::Drill => {
                let report = Key::report(&launch.runbook, &launch.run_id, ReportFormat::Json);
                let wrote_report = matches!(store.get(&report), Ok(Some(_)));
                Event::DrillFinished {
                    runbook: launch.runbook,
                    fire: launch.fire,
                    verdict,
                    exit_code: exit.code,
                    signal: exit.signal,
                    duration_ms,
                    report: wrote_report.then(|| store.location(&report)),
                    error: exit.error,
                }
            }
            // Its report went to its own output (the daemon's log); a
            // failing one notified its webhooks itself.
            Job::Preflight => Event::PreflightFinished {
                runbook: launch.runbook,
                fire: launch.fire,
                verdict,
                exit_code: exit.code,
                signal: exit.signal,
                duration_ms,
                error: exit.error,
            },
        };
        (self.log)(finished, &event);
        Ok(!exit.stopping)
    }

    /// Changes one runbook's state and writes the state file.
    fn record(
        &mut self,
        runbook: &str,
        change: impl FnOnce(&mut state::RunbookState),
    ) -> Result<(), ScheduleError> {
        if let Some(entry) = self.state.runbooks.get_mut(runbook) {
            change(entry);
        }
        state::save(self.config.store.as_ref(), self.state)
    }
}

/// Asks the drill to tear down and stop. It may have ended already.
fn forward_term(pid: u32) {
    use rustix::process::{kill_process, Pid, Signal};
    if let Some(pid) = i32::try_from(pid).ok().and_then(Pid::from_raw) {
        let _ = kill_process(pid, Signal::TERM);
    }
}

/// One daemon per store: two would run the same drills twice. Locally an
/// OS lock, released by the kernel however the daemon ends.
fn lock(store: &dyn RunStore) -> Result<Box<dyn Lease>, ScheduleError> {
    Ok(store.lock_scheduler(&format!("pid {}", std::process::id()))?)
}

#[path = "daemon_log.rs"]
mod log;
pub use log::{Event, Watched};

#[cfg(test)]
#[path = "daemon_tests.rs"]
mod tests;
