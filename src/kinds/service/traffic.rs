//! Moving a service's traffic: health first, then the listener's default
//! action in one ModifyListener call (blue/green, rollback) or one per
//! canary weight, each weight watched before the next. A gated canary's step
//! stops at its next weight (`until`); the run goes on behind a gate.

use std::collections::BTreeMap;
use std::time::Duration;

use super::colours::{live, Colour};
use super::canary::Canary;
use super::{LIVE_SINCE_TAG, REPLACED_AT_TAG};
use crate::cloud::aws::AwsProvider;
use crate::cloud::elbv2::{DefaultAction, Elbv2, TargetHealth};
use crate::cloud::wait::{self, Probe};
use crate::cloud::{tags, CloudError};
use crate::kinds::common::Want;
use crate::world::{Address, Attrs};

/// Until every one of `ids` is a healthy target of the group, or `deadline`.
/// A target AWS reports as not running (stopped, terminated) ends the wait
/// at once: it will not become healthy.
pub(super) async fn wait_healthy(
    aws: &AwsProvider,
    what: &str,
    arn: &str,
    ids: &[String],
    deadline: Duration,
) -> Result<(), CloudError> {
    wait::until(
        &format!("{what}: every target healthy"),
        deadline,
        aws.waits.backoff,
        || async {
            let health = aws.elbv2.target_health(arn).await?;
            match verdict(&health, ids) {
                Verdict::Healthy => Ok(Probe::Done(())),
                Verdict::Waiting(state) => Ok(Probe::Waiting(state)),
                Verdict::Never(reason) => Err(CloudError::Failed {
                    what: what.to_string(),
                    state: "unhealthy".into(),
                    reason,
                }),
            }
        },
    )
    .await
}

enum Verdict {
    Healthy,
    Waiting(String),
    Never(String),
}

fn verdict(health: &[TargetHealth], ids: &[String]) -> Verdict {
    let mut not_yet = Vec::new();
    for id in ids {
        match health.iter().find(|t| &t.id == id) {
            Some(t) if t.state == "healthy" => {}
            Some(t) if t.state == "unused" && t.reason.as_deref() == Some("Target.InvalidState") => {
                return Verdict::Never(format!("{id} is not running (stopped or terminated)"));
            }
            Some(t) => not_yet.push(format!(
                "{id} {}{}",
                t.state,
                t.reason.as_deref().map(|r| format!(" ({r})")).unwrap_or_default()
            )),
            None => not_yet.push(format!("{id} not registered")),
        }
    }
    if ids.is_empty() {
        return Verdict::Never("no targets (count is 0): nothing to be healthy".into());
    }
    if not_yet.is_empty() {
        Verdict::Healthy
    } else {
        Verdict::Waiting(format!(
            "{} of {} healthy; {}",
            ids.len() - not_yet.len(),
            ids.len(),
            not_yet.join("; ")
        ))
    }
}

/// Every target healthy right now (one DescribeTargetHealth), or why not.
async fn healthy_now(aws: &AwsProvider, arn: &str, ids: &[String]) -> Result<(), String> {
    let health = aws.elbv2.target_health(arn).await.map_err(|e| e.to_string())?;
    match verdict(&health, ids) {
        Verdict::Healthy => Ok(()),
        Verdict::Waiting(why) | Verdict::Never(why) => Err(why),
    }
}

/// Moves the listener from colour `from` to colour `to` (both in `attrs`),
/// after re-checking `to`'s health: all the way, or up to the weight
/// `until` (a gated canary). A resumed cutover goes on from where the
/// traffic is (no move if `to` has its share already); once `to` has it
/// all, the colours' and the listener's tags are written. A listener found
/// elsewhere than planned is left alone.
pub(super) async fn cutover(
    aws: &AwsProvider,
    address: &Address,
    attrs: &Attrs,
    colours: &[Colour],
) -> Result<(), CloudError> {
    let want = Want::new(address, attrs);
    let to = want.str("to")?;
    let from = want.opt_str("from")?.unwrap_or("");
    let listener = want.str("listener")?;
    let until = match attrs.get("until") {
        None => 100,
        Some(_) => i64::from(want.i32("until")?),
    };
    let failed = |state: &str, reason: String| CloudError::Failed {
        what: format!("cutover of {address} to {to}"),
        state: state.to_string(),
        reason,
    };
    let Some(target) = colours
        .iter()
        .find(|c| c.name == to && c.complete && !c.target_group.is_empty())
    else {
        return Err(failed(
            "missing",
            format!("the {to} colour does not exist or never finished; the listener was not touched"),
        ));
    };
    let live_now = live(colours);
    let old = colours.iter().find(|c| c.name == from && !from.is_empty());
    let moved_from = live_now.map(|l| l.name.as_str()).unwrap_or("");
    if moved_from != from && moved_from != to {
        return Err(failed(
            "moved",
            format!(
                "the listener forwards to {}, not to {} as planned; re-plan",
                if moved_from.is_empty() { "no colour" } else { moved_from },
                if from.is_empty() { "no colour" } else { from }
            ),
        ));
    }
    let moved = target.traffic < until;
    if moved {
        move_traffic(aws, listener, target, old, attrs, until)
            .await
            .map_err(|(state, why)| failed(state, why))?;
    }
    // From its first cutover on, the listener's traffic is the service's.
    aws.elbv2
        .add_tags(listener, &BTreeMap::from([(tags::TRAFFIC.to_string(), address.to_string())]))
        .await?;
    if until < 100 {
        // Part of the way: the colours change hands at the last weight.
        return Ok(());
    }
    // Stamped when the traffic moves, or missing after a run cut short
    // between the move and the stamps (a resume must not restart the clock).
    let now = jiff::Timestamp::now().as_millisecond().to_string();
    if moved || target.live_since.is_none() {
        aws.elbv2
            .add_tags(&target.target_group, &BTreeMap::from([(LIVE_SINCE_TAG.to_string(), now.clone())]))
            .await?;
        aws.elbv2
            .remove_tags(&target.target_group, &[REPLACED_AT_TAG.to_string()])
            .await?;
    }
    if let Some(old) = old.filter(|o| moved || o.replaced_at.is_none()) {
        aws.elbv2
            .add_tags(&old.target_group, &BTreeMap::from([(REPLACED_AT_TAG.to_string(), now)]))
            .await?;
    }
    Ok(())
}

/// The listener from `old` (if any) to `target`, up to `until` percent: one
/// call, or one per canary weight above the share `target` already has,
/// each watched. A canary whose new colour falls unhealthy goes back to
/// `old` whole.
async fn move_traffic(
    aws: &AwsProvider,
    listener: &str,
    target: &Colour,
    old: Option<&Colour>,
    attrs: &Attrs,
    until: i64,
) -> Result<(), (&'static str, String)> {
    let to = &target.name;
    let canary = Canary::of(attrs);
    let stepped = canary.steps.len() > 1;
    if let Err(why) = healthy_now(aws, &target.target_group, &target.instances).await {
        // A canary under way goes back; anything else stays where it is.
        return Err(match old.filter(|_| stepped && target.traffic > 0) {
            Some(old) => {
                let at = format!("{to} is not healthy at {}% ({why})", target.traffic);
                ("aborted", abort(aws, listener, old, at).await)
            }
            None => (
                "unhealthy",
                format!("{to} is not healthy just before the cutover ({why}); the listener was not touched"),
            ),
        });
    }
    let call = |e: CloudError| ("failed", e.to_string());
    if let (true, Some(old)) = (stepped, old) {
        mark_live(aws, old, target).await.map_err(call)?;
        let weights = canary.steps.iter().copied();
        for share in weights.filter(|p| *p < 100 && *p > target.traffic && *p <= until) {
            let weights = [
                (target.target_group.clone(), share as i32),
                (old.target_group.clone(), 100 - share as i32),
            ];
            aws.elbv2
                .set_default_action(listener, DefaultAction::Weighted(&weights))
                .await
                .map_err(call)?;
            if let Err(why) = watch(aws, &target.target_group, &target.instances, canary.wait).await {
                return Err(("aborted", abort(aws, listener, old, format!("canary at {share}%: {why}")).await));
            }
        }
    }
    if until < 100 {
        return Ok(());
    }
    aws.elbv2
        .set_default_action(listener, DefaultAction::Forward(&target.target_group))
        .await
        .map_err(call)
}

/// Before traffic is shared: `old` is the live colour and `canary` is not,
/// whatever their `live-since` said (a listener moved by hand leaves the
/// canary with a newer one), so the live colour is known at every weight.
async fn mark_live(aws: &AwsProvider, old: &Colour, canary: &Colour) -> Result<(), CloudError> {
    if canary.live_since.is_some() {
        aws.elbv2
            .remove_tags(&canary.target_group, &[LIVE_SINCE_TAG.to_string()])
            .await?;
    }
    if old.live_since.is_none() || old.live_since < canary.live_since {
        let now = jiff::Timestamp::now().as_millisecond().to_string();
        aws.elbv2
            .add_tags(&old.target_group, &BTreeMap::from([(LIVE_SINCE_TAG.to_string(), now)]))
            .await?;
    }
    Ok(())
}

/// `colour` as it is once it takes no traffic: a canary under way (a share,
/// not the live colour) sends its share back to the live colour first, as
/// when the declaration changed while it was stopped between weights.
pub(super) async fn canary_sent_back(
    aws: &AwsProvider,
    colours: &[Colour],
    colour: &Colour,
) -> Result<Colour, CloudError> {
    let Some(live) = live(colours).filter(|l| colour.traffic > 0 && l.name != colour.name) else {
        return Ok(colour.clone());
    };
    aws.elbv2
        .set_default_action(&live.listener, DefaultAction::Forward(&live.target_group))
        .await?;
    Ok(Colour {
        traffic: 0,
        ..colour.clone()
    })
}

/// All the traffic back on `old` after a canary went wrong (`why`): what
/// happened, in words.
async fn abort(aws: &AwsProvider, listener: &str, old: &Colour, why: String) -> String {
    let back = aws
        .elbv2
        .set_default_action(listener, DefaultAction::Forward(&old.target_group))
        .await;
    match back {
        Ok(()) => format!("{why}; all traffic is back on {}", old.name),
        Err(e) => format!("{why}; moving all traffic back to {} failed too: {e}", old.name),
    }
}

/// Watches a canary weight for `wait`: every target must stay healthy.
async fn watch(aws: &AwsProvider, arn: &str, ids: &[String], wait: Duration) -> Result<(), String> {
    let start = tokio::time::Instant::now();
    let mut pauses = aws.waits.backoff.delays();
    loop {
        healthy_now(aws, arn, ids).await?;
        let left = wait.saturating_sub(start.elapsed());
        if left.is_zero() {
            return Ok(());
        }
        tokio::time::sleep(pauses.next().unwrap_or(left).min(left)).await;
    }
}
