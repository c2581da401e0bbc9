//! What a run works with once its files are loaded and its environment is
//! reached: one value, built where a command starts (apply, resume, the
//! commands that move traffic, a drill) and passed down to the run's
//! finish, the checks after a cutover and their rollback.

use tokio_util::sync::CancellationToken;

use super::{Context, Loaded};
use crate::cloud::aws::AwsProvider;
use crate::execute::ApplyOptions;
use crate::journal::Journal;
use crate::run::RunContext;

pub(crate) struct Session<'s, C> {
    pub ctx: &'s Context<'s>,
    /// How the command reached its environment (and how a run records it).
    pub connect: &'s C,
    pub provider: &'s AwsProvider,
    pub loaded: &'s Loaded,
    /// How many steps run at once.
    pub parallelism: usize,
    /// The stop request (Ctrl-C, SIGTERM): nothing new starts once it is set.
    pub cancel: &'s CancellationToken,
}

impl<C> Session<'_, C> {
    /// How the engine runs `journal`'s run for this session;
    /// `checks_follow`: the caller checks the environment after a cutover
    /// and journals the finish.
    pub fn run_context<'r>(&'r self, journal: &'r Journal, checks_follow: bool) -> RunContext<'r> {
        RunContext {
            project: &self.loaded.project,
            runbook: self.loaded.runbook(),
            journal,
            options: ApplyOptions {
                parallelism: self.parallelism,
                run_id: journal.run_id.clone(),
                lifetime: self.loaded.runbook().lifetime.clone(),
            },
            cancel: self.cancel,
            clock: self.ctx.clock,
            sink: self.ctx.sink,
            checks_follow,
        }
    }
}

// References and a count: copied freely, whatever `C` is.
impl<C> Clone for Session<'_, C> {
    fn clone(&self) -> Self {
        *self
    }
}

impl<C> Copy for Session<'_, C> {}
