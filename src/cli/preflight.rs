//! `drctl preflight`: the checks as a table (or JSON), JUnit on request,
//! and the exit code: 0 when nothing failed, 1 when a check failed (or,
//! with `--strict`, one is unknown).

use std::path::PathBuf;

use clap::Args;

use super::{CliConnect, GlobalArgs};
use crate::cli::commands::context;
use crate::error::{exit, Error};
use crate::events::NullSink;
use crate::preflight::{self, render, PreflightRequest};

#[derive(Debug, Args)]
pub struct PreflightArgs {
    /// The runbook (path or name); `--region` checks another region than its own.
    pub runbook: String,
    /// Print the report as JSON.
    #[arg(long)]
    pub json: bool,
    /// Also write the report as JUnit XML (a testcase per finding; unknown ones skipped).
    #[arg(long, value_name = "FILE")]
    pub junit: Option<PathBuf>,
    /// Fail (exit 1) on an unknown too, not only on a failed check.
    #[arg(long)]
    pub strict: bool,
}

pub async fn preflight_command(global: &GlobalArgs, args: &PreflightArgs) -> Result<u8, Error> {
    // Nothing below reports through a sink: the report is the output.
    let sink = NullSink;
    let ctx = context(global, &sink)?;
    let request = PreflightRequest {
        root: global.root.clone(),
        runbook: args.runbook.clone(),
        strict: args.strict,
    };
    let report = preflight::preflight(&ctx, &CliConnect::new(global), &request).await?;
    if let Some(path) = &args.junit {
        std::fs::write(path, render::junit(&report)).map_err(|source| Error::Io {
            action: "write",
            path: path.clone(),
            source,
        })?;
    }
    if args.json {
        println!(
            "{}",
            serde_json::to_string_pretty(&report).expect("reports serialise")
        );
    } else if matches!(global.log_format, super::LogFormat::Json) {
        // One line, as every line of a JSON log (`schedule run` passes its
        // --log-format on to the preflights it starts).
        println!(
            "{}",
            serde_json::json!({ "event": "preflight_report", "report": report })
        );
    } else {
        print!("{}", render::table(&report, args.strict));
    }
    Ok(match report.failed(args.strict) {
        true => exit::FAILURE,
        false => exit::OK,
    })
}
