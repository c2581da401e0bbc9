//! Moving a service's traffic: health first, then the listener's default
//! action in one ModifyListener call (blue/green, rollback) or one per
//! canary weight, each weight watched before the next. A gated canary's step
//! stops at its next weight (`until`); the run goes on behind a gate.

use crate::cloud::kinds::service::in_use;
use std::collections::BTreeMap;
use std::time::Duration;

use super::health::{healthy_now, wait_healthy};
use crate::kinds::service::canary::Canary;
use crate::kinds::service::colours::{live, Colour};

use crate::cloud::aws::AwsProvider;
use crate::cloud::elbv2::{DefaultAction, Elbv2};
use crate::cloud::CloudError;
use crate::kinds::common::Want;
use crate::kinds::service::op::Move;
use crate::kinds::service::{duration_of, HEALTH_TIMEOUT_DEFAULT, LIVE_SINCE_TAG, REPLACED_AT_TAG};
use crate::types::tags;
use crate::world::{Address, Attrs, Tags};

/// Moves the listener from colour `from` to colour `to` (both in `attrs`),
/// after re-checking `to`'s health: all the way, or up to the weight
/// `until` (a gated canary). A resumed cutover goes on from where the
/// traffic is (no move if `to` has its share already); once `to` has it
/// all, its test rule goes and the colours' and the listener's tags are
/// written. A listener found elsewhere than planned is left alone.
pub(super) async fn cutover(
    aws: &AwsProvider,
    address: &Address,
    attrs: &Attrs,
    colours: &[Colour],
    moved: &Move,
) -> Result<(), CloudError> {
    let want = Want::new(address, attrs);
    let (to, from, until) = (moved.to.as_str(), moved.from.as_str(), moved.up_to());
    let listener = want.str("listener")?;
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
            format!(
                "the {to} colour does not exist or never finished; the listener was not touched"
            ),
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
                if moved_from.is_empty() {
                    "no colour"
                } else {
                    moved_from
                },
                if from.is_empty() { "no colour" } else { from }
            ),
        ));
    }
    let moved = target.traffic < until;
    if moved {
        let traffic = Traffic {
            listener,
            colours,
            target,
            old,
        };
        traffic
            .move_up_to(aws, attrs, until)
            .await
            .map_err(|(state, why)| failed(state, why))?;
    }
    // From its first cutover on, the listener's traffic is the service's.
    aws.elbv2
        .add_tags(
            listener,
            &BTreeMap::from([(tags::TRAFFIC.to_string(), address.to_string())]),
        )
        .await?;
    if until < 100 {
        // Part of the way: the colours change hands at the last weight.
        return Ok(());
    }
    // Test traffic now reaches it through the default action.
    in_use::drop_test_rules(aws, listener, target).await?;
    // Stamped when the traffic moves, or missing after a run cut short
    // between the move and the stamps (a resume must not restart the clock).
    let now = jiff::Timestamp::now().as_millisecond().to_string();
    if moved || target.live_since.is_none() {
        aws.elbv2
            .add_tags(
                &target.target_group,
                &BTreeMap::from([(LIVE_SINCE_TAG.to_string(), now.clone())]),
            )
            .await?;
        aws.elbv2
            .remove_tags(&target.target_group, &[REPLACED_AT_TAG.to_string()])
            .await?;
    }
    if let Some(old) = old.filter(|o| moved || o.replaced_at.is_none()) {
        aws.elbv2
            .add_tags(
                &old.target_group,
                &BTreeMap::from([(REPLACED_AT_TAG.to_string(), now)]),
            )
            .await?;
    }
    Ok(())
}

/// One move of a listener's traffic: to `target`, from `old` (if any).
struct Traffic<'a> {
    listener: &'a str,
    /// The service's colours as read when the step began.
    colours: &'a [Colour],
    target: &'a Colour,
    old: Option<&'a Colour>,
}

impl Traffic<'_> {
    /// Up to `until` percent on `target`: one call, or one per canary
    /// weight above the share it already has, each watched. A canary whose
    /// new colour falls unhealthy goes back to `old` whole, in one call.
    async fn move_up_to(
        &self,
        aws: &AwsProvider,
        attrs: &Attrs,
        until: i64,
    ) -> Result<(), (&'static str, String)> {
        let (target, old) = (self.target, self.old);
        let to = &target.name;
        let canary = Canary::of(attrs);
        let stepped = canary.steps.len() > 1;
        if let Err(why) = self.ready(aws, attrs).await {
            // A canary under way goes back; anything else stays where it is.
            return Err(match old.filter(|_| stepped && target.traffic > 0) {
                Some(old) => {
                    let at = format!("{to} is not healthy at {}% ({why})", target.traffic);
                    ("aborted", self.abort(aws, old, at).await)
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
                self.set(aws, target, share, Some(old))
                    .await
                    .map_err(call)?;
                if let Err(why) =
                    watch(aws, &target.target_group, &target.instances, canary.wait).await
                {
                    return Err((
                        "aborted",
                        self.abort(aws, old, format!("canary at {share}%: {why}"))
                            .await,
                    ));
                }
            }
        }
        if until < 100 {
            return Ok(());
        }
        self.set(aws, target, 100, old).await.map_err(call)
    }

    /// `to` at `share` percent, `from` at the rest, the service's other
    /// members at 0: one ModifyListener call.
    async fn set(
        &self,
        aws: &AwsProvider,
        to: &Colour,
        share: i64,
        from: Option<&Colour>,
    ) -> Result<(), CloudError> {
        let weights = in_use::shares(self.colours, self.listener, to, share, from);
        aws.elbv2
            .set_default_action(self.listener, DefaultAction::Weighted(&weights))
            .await
    }

    /// `target` healthy just before traffic moves to it. A colour not in
    /// use on the listener (made before drctl kept idle colours there, or
    /// beside a listener found in the single-target form) is put in use
    /// first and given its health timeout, as AWS checks it only then.
    async fn ready(&self, aws: &AwsProvider, attrs: &Attrs) -> Result<(), String> {
        let target = self.target;
        let in_use = target.listener == self.listener || !target.test_rule.is_empty();
        if in_use {
            return healthy_now(aws, &target.target_group, &target.instances).await;
        }
        in_use::put_in_use(aws, self.listener, target, live(self.colours), &Tags::new())
            .await
            .map_err(|e| e.to_string())?;
        let deadline = duration_of(attrs, "health_timeout", HEALTH_TIMEOUT_DEFAULT);
        let what = format!("{} colour", target.name);
        wait_healthy(
            aws,
            &what,
            &target.target_group,
            &target.instances,
            deadline,
        )
        .await
        .map_err(|e| e.to_string())
    }

    /// All the traffic back on `old` after a canary went wrong (`why`),
    /// the canary kept in use at weight 0: what happened, in words.
    async fn abort(&self, aws: &AwsProvider, old: &Colour, why: String) -> String {
        match self.set(aws, old, 100, Some(self.target)).await {
            Ok(()) => format!("{why}; all traffic is back on {}", old.name),
            Err(e) => format!(
                "{why}; moving all traffic back to {} failed too: {e}",
                old.name
            ),
        }
    }
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
            .add_tags(
                &old.target_group,
                &BTreeMap::from([(LIVE_SINCE_TAG.to_string(), now)]),
            )
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
    let traffic = Traffic {
        listener: &live.listener,
        colours,
        target: colour,
        old: Some(live),
    };
    traffic.set(aws, live, 100, Some(colour)).await?;
    Ok(Colour {
        traffic: 0,
        ..colour.clone()
    })
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
