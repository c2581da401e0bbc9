//! One step's call: its pending values filled in from what earlier steps
//! returned, then the provider's create or update.

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use crate::cloud::provider::{CreateRequest, LateInputs, Provider};
use crate::cloud::CloudError;
use crate::plan::resolve::Resolved;
use crate::plan::{Action, Change};
use crate::planner::normalize::{normalize, spec_hash};
use crate::types::tags::{tag_set, Identity};
use crate::world::{Address, Attrs, ObservedResource, Tags, Value};

/// What a create or update will send, resolved now that its inputs exist.
pub(super) struct Prepared {
    pub(super) attrs: Attrs,
    pub(super) tags: Tags,
    client_token: String,
}

/// Fills in the step's pending values from what earlier steps returned and
/// normalises them: exactly the planned step, with the real ids. The
/// attributes named in `may_wait` are left out while pending (the step
/// gets them under way, [`LateInputs`]).
pub(super) fn prepare(
    change: &Change,
    environment: &str,
    exports: &BTreeMap<Address, Attrs>,
    run_id: &str,
    lifetime: Option<&crate::types::tags::Lifetime>,
    may_wait: &BTreeSet<String>,
) -> Result<Prepared, String> {
    let address = &change.address;
    let pending =
        |key: &str| format!("{address}: `{key}` is still pending on a step that has not run");
    let mut desired: BTreeMap<String, Resolved> = BTreeMap::new();
    for (key, value) in &change.desired {
        match value.fill(exports) {
            Some(filled) => desired.insert(key.clone(), Resolved::Known(filled)),
            None if may_wait.contains(key) => continue,
            None => return Err(pending(key)),
        };
    }
    normalize(address.kind, &mut desired);
    let attrs: Attrs = desired
        .into_iter()
        .map(|(k, v)| match v {
            Resolved::Known(v) => Ok((k, v)),
            Resolved::After { .. } => Err(pending(&k)),
        })
        .collect::<Result<_, _>>()?;
    let mut user_tags = Tags::new();
    for (key, value) in &change.tags {
        let text = match value.fill(exports).ok_or_else(|| pending(key))? {
            Value::Str(s) => s,
            other => other.to_string(),
        };
        user_tags.insert(key.clone(), text);
    }
    let hash = spec_hash(address.kind, &attrs, &user_tags);
    // An update keeps the run that created the resource; a create records this one.
    let created_by = match (&change.action, &change.current) {
        (Action::Update, Some(current)) => current.run_id().unwrap_or(run_id).to_string(),
        _ => run_id.to_string(),
    };
    let identity = Identity::new(environment, &address.stack, &address.resource());
    let tags = tag_set(&identity, &hash, &created_by, lifetime, &user_tags);
    // Same run + same address + same spec → same token, so a retried call
    // cannot create twice on AWS (moto ignores tokens; tags and the journal cover it).
    let client_token: String = format!("{run_id}-{hash}-{}", short_hash(&address.to_string()))
        .chars()
        .take(64)
        .collect();
    Ok(Prepared {
        attrs,
        tags,
        client_token,
    })
}

fn short_hash(s: &str) -> String {
    use sha2::{Digest, Sha256};
    Sha256::digest(s.as_bytes())[..4]
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

pub(super) async fn execute<'c, P: Provider>(
    provider: &P,
    change: &'c Change,
    prepared: Result<Prepared, String>,
    late: Option<LateInputs<'c>>,
) -> (&'c Change, Result<ObservedResource, String>, Duration) {
    let started = Instant::now();
    let result = async {
        let prepared = prepared?;
        let render = |e: CloudError| render_cloud_error(&e);
        match change.action {
            Action::Create | Action::Replace => provider
                .create(&CreateRequest {
                    address: &change.address,
                    attrs: &prepared.attrs,
                    tags: &prepared.tags,
                    client_token: &prepared.client_token,
                    late: late.as_ref(),
                })
                .await
                .map_err(render),
            Action::Update => {
                // An update of what an earlier phase of this run creates (a
                // service's cutover) reads the resource itself when it runs.
                let created_earlier;
                let current = match &change.current {
                    Some(current) => current,
                    None => {
                        created_earlier = ObservedResource {
                            address: change.address.clone(),
                            id: String::new(),
                            attrs: Attrs::new(),
                            exports: Attrs::new(),
                            tags: prepared.tags.clone(),
                        };
                        &created_earlier
                    }
                };
                provider
                    .update(current, &prepared.attrs, &prepared.tags)
                    .await
                    .map_err(render)
            }
            Action::Delete | Action::NoOp => {
                unreachable!("deletions and no-ops are not executed here")
            }
        }
    }
    .await;
    (change, result, started.elapsed())
}

pub(super) fn render_cloud_error(e: &CloudError) -> String {
    match e.hint() {
        Some(hint) => format!("{e} (hint: {hint})"),
        None => e.to_string(),
    }
}
