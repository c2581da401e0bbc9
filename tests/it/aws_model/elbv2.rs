//! Load balancers and target health as AWS shows them. A target group is
//! in use while a listener's default action or a rule forwards to it, at
//! any weight (0 included); only then are its targets health-checked.
//! moto does not keep a group's `LoadBalancerArns` up to date after
//! ModifyListener, so the model reads listeners and rules itself.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::time::{Duration, Instant};

use super::health::{self, Checks, Shown};
use super::ledger::{self, WaitKind};
use super::query::Moto;
use super::xml::Element;
use super::{AwsTimes, State};
use crate::proxy::Service;

/// Target groups: which are in use, and their targets' histories.
#[derive(Debug, Default)]
pub struct Groups {
    /// Regions whose listeners the model has read once: what it found then
    /// predates the model and counts as long settled.
    pub baselined: HashSet<String>,
    in_use: HashMap<String, InUse>,
    registered: HashMap<(String, String), Registered>,
    draining: HashMap<(String, String), Draining>,
}

#[derive(Debug)]
struct InUse {
    /// `None`: in use since before the model looked.
    since: Option<Instant>,
    /// The load balancers whose listeners forward to the group.
    load_balancers: BTreeSet<String>,
}

#[derive(Debug)]
struct Registered {
    at: Instant,
    port: Option<String>,
}

#[derive(Debug)]
struct Draining {
    since: Instant,
    /// The group's deregistration delay, unscaled.
    delay: Duration,
    port: String,
}

/// Group ARN → the load balancers forwarding to it.
pub type Forwarding = BTreeMap<String, BTreeSet<String>>;

/// Every group a listener or rule of the region forwards to, asked of moto:
/// DescribeLoadBalancers, then DescribeListeners per load balancer and
/// DescribeRules per listener.
pub fn forwarding(moto: &mut Moto) -> Result<Forwarding, String> {
    let mut found = Forwarding::new();
    let lbs = moto.elbv2_all(
        &[("Action", "DescribeLoadBalancers")],
        "LoadBalancers/member",
    )?;
    for lb in lbs.iter().map(|m| m.text_at("LoadBalancerArn")) {
        let listeners = moto.elbv2_all(
            &[("Action", "DescribeListeners"), ("LoadBalancerArn", &lb)],
            "Listeners/member",
        );
        // Deleted meanwhile (the SDK user may be tearing down): no listeners.
        let listeners = skip_not_found(listeners)?;
        for listener in &listeners {
            let rules = moto.elbv2_all(
                &[
                    ("Action", "DescribeRules"),
                    ("ListenerArn", &listener.text_at("ListenerArn")),
                ],
                "Rules/member",
            );
            let actions = skip_not_found(rules)?
                .into_iter()
                .filter_map(|r| r.child("Actions").cloned())
                .chain(listener.child("DefaultActions").cloned());
            for action in actions {
                // Both `TargetGroupArn` of a plain forward and each member
                // of a ForwardConfig, whatever its weight.
                for group in action.descendants("TargetGroupArn") {
                    found.entry(group.text()).or_default().insert(lb.clone());
                }
            }
        }
    }
    Ok(found)
}

fn skip_not_found(listed: Result<Vec<Element>, String>) -> Result<Vec<Element>, String> {
    match listed {
        Err(e) if e.contains("NotFound") => Ok(Vec::new()),
        other => other,
    }
}

/// The region of an ELBv2 ARN.
fn region_of(arn: &str) -> &str {
    arn.split(':').nth(3).unwrap_or("")
}

impl Groups {
    /// The groups of `region` in use are those in `forwarding`: a group new
    /// to use is in use from `now`, one no longer forwarded to is out of use.
    pub fn in_use(&mut self, region: &str, forwarding: Forwarding, now: Instant) {
        self.in_use
            .retain(|g, _| region_of(g) != region || forwarding.contains_key(g));
        self.add(forwarding, Some(now));
    }

    /// The first look at a region: what is in use predates the model. It
    /// only adds, so that a change a concurrent request made meanwhile
    /// (and timed) stands.
    pub fn baseline(&mut self, forwarding: Forwarding) {
        self.add(forwarding, None);
    }

    fn add(&mut self, forwarding: Forwarding, since: Option<Instant>) {
        for (group, lbs) in forwarding {
            self.in_use
                .entry(group)
                .or_insert(InUse {
                    since,
                    load_balancers: BTreeSet::new(),
                })
                .load_balancers = lbs;
        }
    }

    pub fn registered(&mut self, group: &str, targets: &[(String, Option<String>)], now: Instant) {
        for (id, port) in targets {
            let key = (group.to_string(), id.clone());
            self.draining.remove(&key);
            let port = port.clone();
            self.registered.insert(key, Registered { at: now, port });
        }
    }

    pub fn deregistered(
        &mut self,
        group: &str,
        targets: &[(String, Option<String>)],
        info: &GroupInfo,
        now: Instant,
    ) {
        for (id, port) in targets {
            let key = (group.to_string(), id.clone());
            let registered = self.registered.remove(&key);
            let port = port
                .clone()
                .or(registered.and_then(|r| r.port))
                .unwrap_or_else(|| info.port.clone());
            let delay = info.deregistration_delay;
            self.draining.insert(
                key,
                Draining {
                    since: now,
                    delay,
                    port,
                },
            );
        }
    }
}

/// What the model needs of one target group's settings.
#[derive(Debug, Clone)]
pub struct GroupInfo {
    pub port: String,
    pub health_check_port: String,
    /// Interval and interval × healthy threshold, unscaled.
    pub interval: Duration,
    pub to_healthy: Duration,
    pub deregistration_delay: Duration,
}

/// `group`'s settings, from DescribeTargetGroups and (if `with_delay`)
/// DescribeTargetGroupAttributes; AWS's defaults where moto says nothing.
pub fn group_info(moto: &mut Moto, group: &str, with_delay: bool) -> Result<GroupInfo, String> {
    let root = moto.call(
        Service::Elbv2,
        &[
            ("Action", "DescribeTargetGroups"),
            ("TargetGroupArns.member.1", group),
        ],
    )?;
    let tg = root
        .at("DescribeTargetGroupsResult/TargetGroups/member")
        .ok_or_else(|| format!("no target group {group}"))?;
    let number = |name: &str, default: u64| tg.text_at(name).parse().unwrap_or(default);
    let interval = Duration::from_secs(number("HealthCheckIntervalSeconds", 30));
    let mut delay = 300;
    if with_delay {
        let attrs = moto.call(
            Service::Elbv2,
            &[
                ("Action", "DescribeTargetGroupAttributes"),
                ("TargetGroupArn", group),
            ],
        )?;
        for attr in attrs.all("DescribeTargetGroupAttributesResult/Attributes/member") {
            if attr.text_at("Key") == "deregistration_delay.timeout_seconds" {
                delay = attr.text_at("Value").parse().unwrap_or(delay);
            }
        }
    }
    Ok(GroupInfo {
        port: tg.text_at("Port"),
        health_check_port: Some(tg.text_at("HealthCheckPort"))
            .filter(|p| !p.is_empty())
            .unwrap_or_else(|| "traffic-port".into()),
        interval,
        to_healthy: interval * number("HealthyThresholdCount", 5) as u32,
        deregistration_delay: Duration::from_secs(delay),
    })
}

/// Load balancers the proxy saw created, by ARN: when.
pub type LoadBalancers = HashMap<String, Instant>;

pub fn load_balancers_created(lbs: &mut LoadBalancers, root: &Element, now: Instant) {
    for arn in root.all("CreateLoadBalancerResult/LoadBalancers/member/LoadBalancerArn") {
        lbs.insert(arn.text(), now);
    }
}

/// When `arn` turns active; `None` for one the model did not see created.
fn active_from(lbs: &LoadBalancers, arn: &str, times: &AwsTimes) -> Option<Instant> {
    lbs.get(arn)
        .map(|created| *created + times.of(times.load_balancer_provisioning))
}

/// A DescribeLoadBalancers answer with new load balancers `provisioning`.
pub fn describe_load_balancers(
    lbs: &LoadBalancers,
    times: &AwsTimes,
    now: Instant,
    root: &mut Element,
) {
    root.each_mut(
        "DescribeLoadBalancersResult/LoadBalancers/member",
        &mut |lb| {
            let provisioning =
                active_from(lbs, &lb.text_at("LoadBalancerArn"), times).is_some_and(|at| now < at);
            if provisioning && lb.text_at("State/Code") == "active" {
                if let Some(code) = lb.at_mut("State/Code") {
                    code.set_text("provisioning");
                }
            }
        },
    );
}

/// The facts a DescribeTargetHealth answer is judged on, gathered from moto
/// before the model's state is locked.
pub struct Facts {
    pub group: String,
    /// Targets the request named (`Targets.member.N.Id`); empty for all.
    pub asked: Vec<String>,
    pub info: GroupInfo,
}

/// moto's DescribeTargetHealth answer as AWS would give it. Targets moto
/// does not call healthy (a stopped instance's `unused`, an unknown one's
/// `Target.NotRegistered`) keep moto's word, except those the model knows
/// to be draining; those moto has already forgotten are put back.
pub fn describe_target_health(
    state: &mut State,
    times: &AwsTimes,
    now: Instant,
    facts: &Facts,
    root: &mut Element,
) {
    let group = &facts.group;
    let group_forced = state.forced_on_group(group).cloned();
    let in_use = state.groups.in_use.get(group);
    // The group is checked from the first of its load balancers to turn
    // active (one the model never saw created has long been active).
    let lb_active = in_use.and_then(|u| {
        u.load_balancers
            .iter()
            .map(|lb| active_from(&state.load_balancers, lb, times))
            .collect::<Option<Vec<Instant>>>()
            .and_then(|at| at.into_iter().min())
    });
    let interval = times.of(facts.info.interval);
    let to_healthy = times.of(facts.info.to_healthy);
    state
        .groups
        .draining
        .retain(|(g, _), d| g != group || now < d.since + times.of(d.delay));

    let path = "DescribeTargetHealthResult/TargetHealthDescriptions";
    let mut seen = HashSet::new();
    // The initial checks this answer showed under way or ended, for the
    // ledger: those the model timed, nothing forced on them.
    let mut checking: Vec<ledger::Shown> = Vec::new();
    root.each_mut(&format!("{path}/member"), &mut |member| {
        let id = member.text_at("Target/Id");
        seen.insert(id.clone());
        let key = (group.clone(), id.clone());
        let moto = (
            member.text_at("TargetHealth/State"),
            member.text_at("TargetHealth/Reason"),
        );
        let shown = match (moto.0.as_str(), moto.1.as_str()) {
            ("unused", "Target.NotRegistered") if state.groups.draining.contains_key(&key) => {
                Shown::DRAINING
            }
            ("healthy", _) => {
                // Registered again behind the model's back: moto knows best.
                state.groups.draining.remove(&key);
                let instance_up = state.instances.get(&id).and_then(|i| i.running_from(times));
                let registered = state.groups.registered.get(&key).map(|r| r.at);
                let from = [
                    in_use.and_then(|u| u.since),
                    registered,
                    lb_active,
                    instance_up,
                ]
                .into_iter()
                .flatten()
                .max();
                let checks = Checks {
                    from,
                    interval,
                    to_healthy,
                };
                let forced = state.overrides.get(&id).or(group_forced.as_ref());
                let shown = health::judge(in_use.is_some(), checks, forced, now);
                if let (Some(from), None, true) = (checks.from, forced, in_use.is_some()) {
                    checking.push(ledger::Shown {
                        kind: WaitKind::TargetHealth,
                        id: format!("{group} {id}"),
                        began: None,
                        length: to_healthy,
                        ready: from + to_healthy,
                        under_way: shown != Shown::HEALTHY,
                    });
                }
                shown
            }
            _ => {
                state.groups.draining.remove(&key);
                return;
            }
        };
        if let Some(health) = member.child_mut("TargetHealth") {
            *health = shown.to_element();
        }
    });
    for shown in checking {
        state.ledger.shown(shown, now);
    }

    let mut back: Vec<(&String, &Draining)> = state
        .groups
        .draining
        .iter()
        .filter(|((g, id), _)| g == group && !seen.contains(id))
        .filter(|((_, id), _)| facts.asked.is_empty() || facts.asked.contains(id))
        .map(|((_, id), d)| (id, d))
        .collect();
    back.sort_by_key(|(id, _)| id.to_string());
    if back.is_empty() {
        return;
    }
    let Some(list) = root.at_mut(path) else {
        return;
    };
    for (id, draining) in back {
        let mut target = Element::new("Target");
        target
            .push(Element::with_text("Id", id))
            .push(Element::with_text("Port", &draining.port));
        let mut member = Element::new("member");
        member
            .push(target)
            .push(Element::with_text(
                "HealthCheckPort",
                &facts.info.health_check_port,
            ))
            .push(Shown::DRAINING.to_element());
        list.push(member);
    }
}

/// The targets moto's answer names.
pub fn targets_named(root: &Element) -> BTreeSet<String> {
    root.all("DescribeTargetHealthResult/TargetHealthDescriptions/member/Target/Id")
        .into_iter()
        .map(Element::text)
        .collect()
}
