//! `drctl rollback` and `drctl retire`: a service's traffic back to its
//! previous colour, and old colours removed once `retire_after` has passed.

use clap::Args;

use tokio_util::sync::CancellationToken;

use super::{CliConnect, GlobalArgs};
use crate::app::{self, TrafficRequest, TrafficResult};
use crate::cli::commands::{context, print_end, sink, watch_ctrl_c};
use crate::error::Error;

#[derive(Debug, Args)]
pub struct RollbackArgs {
    /// The runbook whose environment to act on (path or name).
    pub runbook: String,
    /// The service: `stack.service.name`, or its name if that is unique.
    pub service: String,
}

#[derive(Debug, Args)]
pub struct RetireArgs {
    /// The runbook whose environment to act on (path or name).
    pub runbook: String,
    /// Only this service (`stack.service.name` or its name); default: all.
    pub service: Option<String>,
}

pub async fn rollback_command(global: &GlobalArgs, args: &RollbackArgs) -> Result<u8, Error> {
    run(global, &args.runbook, Some(args.service.clone()), true).await
}

pub async fn retire_command(global: &GlobalArgs, args: &RetireArgs) -> Result<u8, Error> {
    run(global, &args.runbook, args.service.clone(), false).await
}

async fn run(
    global: &GlobalArgs,
    runbook: &str,
    service: Option<String>,
    rollback: bool,
) -> Result<u8, Error> {
    let sink = sink(global);
    let ctx = context(global, sink.as_ref())?;
    let request = TrafficRequest {
        root: global.root.clone(),
        runbook: runbook.to_string(),
        service,
        parallelism: 4,
    };
    let cancel = CancellationToken::new();
    let watcher = tokio::spawn(watch_ctrl_c(cancel.clone(), global.store()?));
    let connect = CliConnect::new(global);
    let result = if rollback {
        app::rollback(&ctx, &connect, &request, &cancel).await
    } else {
        app::retire(&ctx, &connect, &request, &cancel).await
    };
    watcher.abort();
    ctx.sink.flush();
    match result? {
        TrafficResult::Nothing(why) => {
            println!("Nothing to do: {why}.");
            Ok(crate::error::exit::OK)
        }
        TrafficResult::Run(result) => Ok(print_end(global, result)),
    }
}
