//! Where a command talks to: `--sandbox`, `--endpoint-url`, `--region` and
//! `--profile` resolved into SDK settings, and a run's own recorded target
//! used when acting on it later.

use std::sync::Mutex;

use super::GlobalArgs;
use crate::app::Connect;
use crate::cloud::aws::AwsProvider;
use crate::cloud::AwsSettings;
use crate::error::Error;
use crate::journal::{Event as JournalEvent, Journal, RunTarget};
use crate::sandbox::{Sandbox, SandboxStatus, TetheredMoto};

/// The AWS endpoint a command talks to, and the sandbox it may have started
/// for its own lifetime (dropped, and stopped, when the command ends).
pub struct CloudTarget {
    pub settings: AwsSettings,
    pub ephemeral_sandbox: Option<TetheredMoto>,
    pub sandbox: Option<SandboxStatus>,
}

/// Resolves `--sandbox`, `--endpoint-url`, `--region` and `--profile` into settings.
pub async fn cloud_target(global: &GlobalArgs, default_region: &str) -> Result<CloudTarget, Error> {
    let region = global
        .region
        .clone()
        .unwrap_or_else(|| default_region.to_string());
    if !global.sandbox {
        let settings = AwsSettings {
            region: Some(region),
            endpoint_url: global.endpoint_url.clone(),
            profile: global.profile.clone(),
            ..AwsSettings::default()
        };
        return Ok(CloudTarget {
            settings,
            ephemeral_sandbox: None,
            sandbox: None,
        });
    }
    let dir = global.sandbox_dir();
    let running = {
        let dir = dir.clone();
        tokio::task::spawn_blocking(move || Sandbox::new(dir).status())
            .await
            .expect("sandbox status task panicked")?
    };
    if let Some(status) = running {
        return Ok(CloudTarget {
            settings: AwsSettings::sandbox(&status.endpoint, &region),
            ephemeral_sandbox: None,
            sandbox: Some(status),
        });
    }
    if global.keep_sandbox_up {
        // The run's own sandbox went down (a reboot, `sandbox stop`): bring
        // it back for good. moto keeps state in memory, so the run re-plans
        // from what exists there now.
        let status = tokio::task::spawn_blocking(move || Sandbox::new(dir).start())
            .await
            .expect("sandbox start task panicked")?;
        eprintln!(
            "The run's sandbox was down: started it again at {} (pid {}); it stays up (drctl sandbox stop). It starts empty: the run re-plans from what exists.",
            status.endpoint, status.pid
        );
        return Ok(CloudTarget {
            settings: AwsSettings::sandbox(&status.endpoint, &region),
            ephemeral_sandbox: None,
            sandbox: Some(status),
        });
    }
    tracing::info!(
        "no sandbox running; starting one for this command (first time: installs moto into {})",
        dir.join("venv").display()
    );
    let moto = tokio::task::spawn_blocking(move || {
        let venv = dir.join("venv");
        crate::sandbox::ensure_venv(&venv)?;
        TetheredMoto::start(&venv, &dir.join("moto-ephemeral.log"))
    })
    .await
    .expect("sandbox start task panicked")?;
    Ok(CloudTarget {
        settings: AwsSettings::sandbox(moto.endpoint(), &region),
        ephemeral_sandbox: Some(moto),
        sandbox: None,
    })
}

/// Connects through the global options; keeps a sandbox it started alive
/// until the command ends.
pub struct CliConnect<'a> {
    global: &'a GlobalArgs,
    held: Mutex<Vec<CloudTarget>>,
}

impl<'a> CliConnect<'a> {
    pub fn new(global: &'a GlobalArgs) -> Self {
        CliConnect {
            global,
            held: Mutex::new(Vec::new()),
        }
    }
}

impl Connect for CliConnect<'_> {
    fn target(&self, region: &str, state_dir: &std::path::Path) -> RunTarget {
        RunTarget {
            endpoint_url: self.global.endpoint_url.clone(),
            sandbox: self.global.sandbox,
            profile: self.global.profile.clone(),
            region: self
                .global
                .region
                .clone()
                .unwrap_or_else(|| region.to_string()),
            state_dir: crate::store::absolute(state_dir),
            fallback: self.global.fallback.clone(),
        }
    }

    async fn connect(&self, region: &str) -> Result<AwsProvider, Error> {
        let target = cloud_target(self.global, region).await?;
        let provider = AwsProvider::new(&target.settings.load().await)
            .with_profile(target.settings.profile.clone());
        self.held
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(target);
        Ok(provider)
    }
}

/// The global options for acting on run `run_id`: its state directory
/// (found through the per-user index from any directory) and the target it
/// recorded, so `drctl resume ID` works as printed. An option naming another
/// target than the run's is refused.
pub(crate) fn for_run(global: &GlobalArgs, run_id: &str) -> Result<GlobalArgs, Error> {
    let mut effective = global.clone();
    // A store out of reach is no reason to refuse a run kept elsewhere
    // (a rebuild's --state-fallback directory): the index knows where.
    let here = global.store();
    if !here.as_ref().is_ok_and(|store| store.has_run(run_id)) {
        match crate::journal::index::lookup(run_id) {
            Some(store) => effective = effective.at_store(&store),
            None => drop(here?),
        }
    }
    let journal = Journal::open(effective.store()?.as_ref(), run_id)?;
    let target = journal.events()?.into_iter().find_map(|e| match e {
        JournalEvent::RunStarted { target, .. } => target,
        _ => None,
    });
    let Some(target) = target else {
        return Ok(effective); // a run from before targets were recorded
    };
    with_target(
        global,
        effective,
        &format!("run {run_id}"),
        &format!("drctl resume {run_id}"),
        target,
    )
}

/// `global` with `target`'s endpoint, refusing options that name another.
pub(crate) fn with_target(
    global: &GlobalArgs,
    mut effective: GlobalArgs,
    what: &str,
    command: &str,
    target: RunTarget,
) -> Result<GlobalArgs, Error> {
    let describe = |t: &RunTarget| match (&t.endpoint_url, t.sandbox) {
        (_, true) => "the local sandbox (--sandbox)".to_string(),
        (Some(url), false) => format!("--endpoint-url {url}"),
        (None, false) => "AWS".to_string(),
    };
    let differs = (global.sandbox && !target.sandbox)
        || global
            .endpoint_url
            .as_ref()
            .is_some_and(|u| Some(u) != target.endpoint_url.as_ref())
        || global
            .profile
            .as_ref()
            .is_some_and(|p| Some(p) != target.profile.as_ref())
        || global.region.as_ref().is_some_and(|r| r != &target.region);
    if differs {
        return Err(Error::usage(
            format!(
                "{what} runs against {} in {}; the options given name another target",
                describe(&target),
                target.region
            ),
            Some(format!(
                "leave the target options out: `{command}` uses its own"
            )),
        ));
    }
    effective.keep_sandbox_up = target.sandbox;
    effective.endpoint_url = target.endpoint_url;
    effective.sandbox = target.sandbox;
    effective.profile = target.profile;
    effective.region = Some(target.region);
    Ok(effective)
}
