//! The model's record of the waits it imposes, for benchmarks: each wait's
//! end as the model rules it, and the first answer to a client that showed
//! that end. The difference is the client's observe lag: how late it
//! noticed what AWS had finished.
//!
//! Only answers to the proxy's clients count (DescribeInstances,
//! DescribeImages, DescribeLoadBalancers, DescribeTargetHealth); the
//! model's own calls to moto are not answers anyone sees. A wait belongs
//! to the drctl resource whose request created the thing waited on, read
//! from that request's `drctl:stack` and `drctl:resource` tags.

use std::collections::{HashMap, HashSet};
use std::time::{Duration, Instant};

use super::ec2::Images;
use super::elbv2::LoadBalancers;
use super::query::Form;
use super::xml::Element;
use super::AwsTimes;

/// What is waited on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum WaitKind {
    /// An instance `pending` → `running`.
    Boot,
    /// `stopping` → `stopped`.
    Stop,
    /// `shutting-down` → `terminated`.
    Terminate,
    /// A CreateImage image `pending` → `available`.
    Image,
    /// A CopyImage copy `pending` → `available`.
    Copy,
    /// A load balancer `provisioning` → `active`.
    LoadBalancer,
    /// A target `initial` → `healthy`.
    TargetHealth,
}

/// One wait the model imposed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Wait {
    pub kind: WaitKind,
    /// The instance or image id, the load balancer's ARN, or for a target
    /// `GROUP-ARN TARGET-ID`.
    pub id: String,
    /// `stack.kind.name` of the drctl resource it belongs to: from the tags
    /// of the request that created it (a copy without them: its source's;
    /// a target: its instance's). `None` for what drctl did not tag.
    pub owner: Option<String>,
    /// How long the model makes it last, scaled (for a target: interval ×
    /// healthy threshold, counted from the latest of its group coming into
    /// use, its registration, its load balancer turning active and its
    /// instance booting).
    pub length: Duration,
    /// The first answer that showed it under way.
    pub seen_waiting: Option<Instant>,
    /// When the model made it end, as ruled at the first answer that
    /// showed the end.
    pub ready: Option<Instant>,
    /// That answer.
    pub seen_ready: Option<Instant>,
}

impl Wait {
    /// How late a client saw the end of a wait it had watched (seen under
    /// way, then ended); `None` for one nobody watched.
    pub fn lag(&self) -> Option<Duration> {
        self.seen_waiting?;
        Some(self.seen_ready?.saturating_duration_since(self.ready?))
    }
}

/// One answer's view of a wait.
pub struct Shown {
    pub kind: WaitKind,
    pub id: String,
    /// When it began, for waits a thing can go through more than once (an
    /// instance started again boots again); `None` for the others.
    pub began: Option<Instant>,
    pub length: Duration,
    /// When it ends (or ended), as the model rules it now.
    pub ready: Instant,
    /// Whether the answer showed it under way, rather than ended.
    pub under_way: bool,
}

/// Every wait, and the owners of what the proxy saw created.
#[derive(Debug, Default)]
pub struct Ledger {
    waits: Vec<Wait>,
    index: HashMap<(WaitKind, String, Option<Instant>), usize>,
    /// `stack.kind.name` by instance id, image id or load balancer ARN.
    owners: HashMap<String, String>,
    /// Images made by CopyImage.
    copies: HashSet<String>,
}

impl Ledger {
    /// The waits, in the order an answer first showed each.
    pub fn waits(&self) -> Vec<Wait> {
        self.waits.clone()
    }

    /// `ids` were created by a request whose drctl tags name `owner`.
    pub fn own(&mut self, ids: impl IntoIterator<Item = String>, owner: Option<String>) {
        if let Some(owner) = owner {
            for id in ids.into_iter().filter(|id| !id.is_empty()) {
                self.owners.insert(id, owner.clone());
            }
        }
    }

    pub fn owner_of(&self, id: &str) -> Option<String> {
        self.owners.get(id).cloned()
    }

    /// Image `id` is a CopyImage copy.
    pub fn copied(&mut self, id: &str) {
        self.copies.insert(id.to_string());
    }

    /// A DescribeImages answer, as rewritten: the images the model saw made.
    pub fn images_shown(
        &mut self,
        images: &Images,
        times: &AwsTimes,
        now: Instant,
        root: &Element,
    ) {
        let length = times.of(times.image_pending);
        for item in root.all("imagesSet/item") {
            let id = item.text_at("imageId");
            let state = item.text_at("imageState");
            let Some(created) = images.get(&id) else {
                continue;
            };
            if state != "pending" && state != "available" {
                continue;
            }
            let kind = match self.copies.contains(&id) {
                true => WaitKind::Copy,
                false => WaitKind::Image,
            };
            let under_way = state == "pending";
            let ready = *created + length;
            let began = None;
            self.shown(
                Shown {
                    kind,
                    id,
                    began,
                    length,
                    ready,
                    under_way,
                },
                now,
            );
        }
    }

    /// A DescribeLoadBalancers answer, as rewritten: the load balancers the
    /// model saw created.
    pub fn load_balancers_shown(
        &mut self,
        lbs: &LoadBalancers,
        times: &AwsTimes,
        now: Instant,
        root: &Element,
    ) {
        let length = times.of(times.load_balancer_provisioning);
        for lb in root.all("DescribeLoadBalancersResult/LoadBalancers/member") {
            let id = lb.text_at("LoadBalancerArn");
            let state = lb.text_at("State/Code");
            let Some(created) = lbs.get(&id) else {
                continue;
            };
            if state != "provisioning" && state != "active" {
                continue;
            }
            let (kind, ready, began) = (WaitKind::LoadBalancer, *created + length, None);
            let under_way = state == "provisioning";
            self.shown(
                Shown {
                    kind,
                    id,
                    began,
                    length,
                    ready,
                    under_way,
                },
                now,
            );
        }
    }

    /// An answer at `now` showed `shown`.
    pub fn shown(&mut self, shown: Shown, now: Instant) {
        let key = (shown.kind, shown.id.clone(), shown.began);
        let owner = match shown.kind {
            WaitKind::TargetHealth => shown
                .id
                .split_once(' ')
                .and_then(|(_, target)| self.owner_of(target)),
            _ => self.owner_of(&shown.id),
        };
        let waits = &mut self.waits;
        let at = *self.index.entry(key).or_insert_with(|| {
            waits.push(Wait {
                kind: shown.kind,
                id: shown.id.clone(),
                owner: None,
                length: shown.length,
                seen_waiting: None,
                ready: None,
                seen_ready: None,
            });
            waits.len() - 1
        });
        let wait = &mut self.waits[at];
        if wait.owner.is_none() {
            wait.owner = owner;
        }
        if shown.under_way {
            wait.seen_waiting.get_or_insert(now);
        } else if wait.seen_ready.is_none() {
            wait.length = shown.length;
            wait.ready = Some(shown.ready);
            wait.seen_ready = Some(now);
        }
    }
}

/// `stack.kind.name` from a create request's `drctl:stack` and
/// `drctl:resource` tags (EC2's `TagSpecification.N.Tag.M.Key` and ELBv2's
/// `Tags.member.N.Key` alike).
pub fn owner(form: &Form) -> Option<String> {
    let tag = |name: &str| {
        form.0
            .iter()
            .find(|(k, v)| k.ends_with(".Key") && v == name)
            .and_then(|(k, _)| form.get(&format!("{}.Value", &k[..k.len() - ".Key".len()])))
            .map(str::to_string)
    };
    Some(format!(
        "{}.{}",
        tag("drctl:stack")?,
        tag("drctl:resource")?
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: Duration = Duration::from_secs(1);

    fn shown(under_way: bool, ready: Instant) -> Shown {
        Shown {
            kind: WaitKind::Image,
            id: "ami-1".into(),
            began: None,
            length: 240 * S,
            ready,
            under_way,
        }
    }

    #[test]
    fn a_watched_wait_lags_from_its_end_to_the_first_answer_showing_it() {
        let (mut ledger, t0) = (Ledger::default(), Instant::now());
        ledger.own(["ami-1".to_string()], Some("app-image.image.app".into()));
        let ready = t0 + 240 * S;
        ledger.shown(shown(true, ready), t0 + S);
        ledger.shown(shown(true, ready), t0 + 200 * S);
        assert_eq!(ledger.waits()[0].lag(), None, "not ended yet");
        ledger.shown(shown(false, ready), t0 + 243 * S);
        ledger.shown(shown(false, ready), t0 + 250 * S);
        let wait = &ledger.waits()[0];
        assert_eq!(wait.owner.as_deref(), Some("app-image.image.app"));
        assert_eq!(wait.seen_waiting, Some(t0 + S));
        assert_eq!(wait.lag(), Some(3 * S), "from the first answer showing it");
    }

    #[test]
    fn a_wait_first_seen_ended_was_not_watched() {
        let (mut ledger, t0) = (Ledger::default(), Instant::now());
        ledger.shown(shown(false, t0), t0 + 60 * S);
        assert_eq!(ledger.waits()[0].lag(), None);
        assert_eq!(ledger.waits()[0].owner, None);
    }

    #[test]
    fn owners_are_read_from_either_services_tags() {
        let ec2 = Form::of(&[
            ("Action", "RunInstances"),
            ("TagSpecification.1.ResourceType", "instance"),
            ("TagSpecification.1.Tag.1.Key", "drctl:resource"),
            ("TagSpecification.1.Tag.1.Value", "service.web"),
            ("TagSpecification.1.Tag.2.Key", "drctl:stack"),
            ("TagSpecification.1.Tag.2.Value", "web"),
        ]);
        assert_eq!(owner(&ec2).as_deref(), Some("web.service.web"));
        let elbv2 = Form::of(&[
            ("Tags.member.1.Key", "drctl:stack"),
            ("Tags.member.1.Value", "web"),
            ("Tags.member.2.Key", "drctl:resource"),
            ("Tags.member.2.Value", "load_balancer.public"),
        ]);
        assert_eq!(owner(&elbv2).as_deref(), Some("web.load_balancer.public"));
        assert_eq!(owner(&Form::of(&[("Action", "RunInstances")])), None);
    }
}
