//! `drctl sweep`: the command line of [`crate::drill::sweep`].

use super::commands::{context, sink, CLOCK};
use super::{CliConnect, GlobalArgs, SweepArgs};
use crate::clock::Clock;
use crate::drill::sweep::{self, SweepRequest, SweepSummary};
use crate::error::{exit, Error};

pub async fn sweep_command(global: &GlobalArgs, args: &SweepArgs) -> Result<u8, Error> {
    let sink = sink(global);
    let ctx = context(global, sink.as_ref())?;
    // `--region a,b`: where to look; each region is then reached as itself.
    let regions: Vec<String> = (global.region.iter())
        .flat_map(|r| r.split(','))
        .map(|r| r.trim().to_string())
        .filter(|r| !r.is_empty())
        .collect();
    let mut reach = global.clone();
    reach.region = None;
    let request = SweepRequest {
        root: global.root.clone(),
        regions,
        dry_run: args.dry_run,
        yes: args.yes,
        parallelism: args.parallelism.into(),
        ..SweepRequest::new(args.runbooks.clone())
    };
    let summary = sweep::sweep(&ctx, &CliConnect::new(&reach), &request).await;
    ctx.sink.flush();
    let summary = summary?;
    if args.json {
        println!(
            "{}",
            serde_json::to_string_pretty(&summary).expect("summaries serialise")
        );
    } else {
        print!("{}", render(&summary, CLOCK.now()));
    }
    Ok(if summary.ok() {
        exit::OK
    } else {
        exit::FAILURE
    })
}

/// The summary for people.
pub fn render(summary: &SweepSummary, now: i64) -> String {
    let mut out = String::new();
    let regions = summary.regions.join(", ");
    if summary.drills.is_empty() {
        out.push_str(&format!("Nothing expired to sweep in {regions}.\n"));
    }
    for drill in &summary.drills {
        let verb = match (
            summary.dry_run,
            drill.failed.is_empty() && drill.left.is_empty(),
        ) {
            (true, _) => "Would sweep",
            (false, true) => "Swept",
            (false, false) => "Swept (incompletely)",
        };
        out.push_str(&format!("{verb} {}\n", drill.line(now)));
        for (address, id) in &drill.resources {
            out.push_str(&format!("  - {address} {id}\n"));
        }
        for failed in &drill.failed {
            out.push_str(&format!("  ! {failed}\n"));
        }
        if !drill.left.is_empty() {
            out.push_str(&format!(
                "  ! still tagged drctl:env={}: {}\n",
                drill.environment,
                drill.left.join(", ")
            ));
        }
        if let Some(run) = &drill.run_id {
            out.push_str(&format!("  journal: drctl runs show {run}\n"));
        }
    }
    for kept in &summary.kept {
        out.push_str(&format!(
            "Left alone: {} ({}): {}\n",
            kept.environment, kept.region, kept.reason
        ));
    }
    if summary.dry_run && !summary.drills.is_empty() {
        out.push_str("Dry run: nothing was deleted. Run `drctl sweep --yes` to sweep.\n");
    }
    out
}
