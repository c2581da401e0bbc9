//! AWS's state behaviour, modelled in the test proxy and time-scaled.
//!
//! moto makes everything ready at once; AWS does not. A proxy started with
//! [`FaultProxy::moto_as_aws`](crate::proxy::FaultProxy::moto_as_aws) sees
//! every request drctl (or a test's SDK client) makes and every answer moto
//! gives, and rewrites the answers so the unmodified SDK sees what AWS would:
//!
//! - **Instances** are `pending` for [`AwsTimes::instance_pending`] after
//!   RunInstances (or StartInstances), then what moto says. When moto's state
//!   for an instance changes — through StopInstances / TerminateInstances via
//!   the proxy, or inside moto where the proxy cannot see (the sandbox's
//!   builder guest stopping itself) — the model shows `stopping` /
//!   `shutting-down` for the stop / shutdown time counted from the request,
//!   or from the first answer that showed the change, then `stopped` /
//!   `terminated`. `instanceState`'s code always matches its name.
//! - **Images** are `pending` for [`AwsTimes::image_pending`] after
//!   CreateImage / CopyImage, then moto's `available`.
//! - **Load balancers** are `provisioning` for
//!   [`AwsTimes::load_balancer_provisioning`] after CreateLoadBalancer.
//! - **Filters agree**: DescribeInstances' `instance-state-name` and
//!   `instance-state-code` and DescribeImages' `state` filters are taken out of the request moto gets
//!   and applied by the model to the states it shows (a reservation left
//!   empty is dropped); moto does not check signatures, so the changed body
//!   is fine.
//! - **Target health** (DescribeTargetHealth): a group is in use while a
//!   listener's default action or a rule forwards to it, as `TargetGroupArn`
//!   or as a ForwardConfig member of any weight, 0 included (read from moto's
//!   listeners and rules; moto's `LoadBalancerArns` goes stale). A target
//!   moto calls healthy reads `unused` / `Target.NotInUse` while its group
//!   is not in use; `initial` (`Elb.RegistrationInProgress` for one check
//!   interval, then `Elb.InitialHealthChecking`) until interval × healthy
//!   threshold — the group's own settings — after the latest of its group
//!   coming into use, its registration, its load balancer turning active and
//!   its instance booting; then `healthy`. A deregistered target reads
//!   `draining` / `Target.DeregistrationInProgress` for the group's
//!   `deregistration_delay.timeout_seconds`, then is gone. A stopped or
//!   terminated instance keeps moto's answer. [`AwsModel::set_target_health`]
//!   (one target) and [`AwsModel::set_group_health`] (every target of groups
//!   by name prefix) force `unhealthy`, flapping or any state on a target
//!   that would be `initial` or `healthy`.
//! - **Imaging running instances**: [`AwsModel::images_of_unstopped_instances`]
//!   lists the images CreateImage made while the model showed their instance
//!   as anything but `stopped`.
//! - **Observe lag**: [`AwsModel::waits`] lists every wait the model timed
//!   (a boot, stop or shutdown it saw begin, an image or copy pending, a
//!   load balancer provisioning, a target's initial checks), with the drctl
//!   resource it belongs to, when the model made it end, and when an answer
//!   first showed the end ([`ledger`]).
//!
//! What the model sees first already in place (a listener, a registration,
//! a running instance made before the proxy started, or behind its back) it
//! takes as long settled; what it sees happen, it times.
//!
//! Every duration is AWS's, multiplied by [`AwsTimes::scale`], and worked
//! out when an answer is rewritten, so [`AwsModel::set_times`] re-times
//! everything at once: a test can assert a state right after creation at
//! scale 1, then shrink the scale to see the end state soon.
//!
//! [`AwsTimes::for_tests`] reads the scale from `DRCTL_TEST_AWS_SCALE`
//! (default 0.01), so the very same test reruns at AWS's own pace by hand:
//!
//! ```text
//! DRCTL_TEST_AWS_SCALE=1 cargo test --test it NAME
//! ```
//!
//! Faults ([`FaultProxy::set_faults`](crate::proxy::FaultProxy::set_faults))
//! come first: a faulted request never reaches moto or the model. The
//! model's own calls to moto (listeners, rules, target group settings,
//! instance states) are not counted.
//!
//! ```text
//! let proxy = FaultProxy::moto_as_aws(AwsTimes::for_tests());
//! // … drctl --endpoint-url proxy.url() …
//! proxy.aws().set_target_health("i-123", TargetOverride::Unhealthy("Target.FailedHealthChecks"));
//! proxy.aws().set_target_health("i-123", TargetOverride::Flapping { period: Duration::from_secs(1) });
//! proxy.aws().clear_target_health("i-123");
//! proxy.aws().set_times(AwsTimes::realistic().scaled(0.5));
//! ```
//!
//! Not modelled: DescribeInstanceStatus (moto's states as they are); a
//! terminated instance leaves its groups at once (AWS drains it); a
//! deregistration drains whether or not the group was in use.

mod ec2;
mod elbv2;
mod health;
mod ledger;
mod query;
mod xml;

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::io;
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

use crate::proxy::{fault_response, Fault, Request, Response, Service};
use query::{Form, Moto};

pub use ledger::{Wait, WaitKind};

/// How long AWS takes over each transition, and the factor applied to all
/// of them. Health checks and draining take each target group's own
/// settings (HealthCheckIntervalSeconds × HealthyThresholdCount, AWS's
/// default 30 s × 5; `deregistration_delay.timeout_seconds`, default 300 s),
/// scaled the same way.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct AwsTimes {
    /// RunInstances or StartInstances to `running`.
    pub instance_pending: Duration,
    /// `stopping` before `stopped`.
    pub instance_stopping: Duration,
    /// `shutting-down` before `terminated`.
    pub instance_shutting_down: Duration,
    /// CreateImage or CopyImage to `available`.
    pub image_pending: Duration,
    /// CreateLoadBalancer to `active`.
    pub load_balancer_provisioning: Duration,
    /// Every duration, the target groups' included, is multiplied by this.
    pub scale: f64,
}

impl AwsTimes {
    /// AWS's own pace, at scale 1.
    pub fn realistic() -> AwsTimes {
        let s = Duration::from_secs;
        AwsTimes {
            instance_pending: s(20),
            instance_stopping: s(15),
            instance_shutting_down: s(10),
            image_pending: s(240),
            load_balancer_provisioning: s(150),
            scale: 1.0,
        }
    }

    /// [`AwsTimes::realistic`] at the scale `DRCTL_TEST_AWS_SCALE` names
    /// (default 0.01: a load balancer is active in 1.5 s).
    pub fn for_tests() -> AwsTimes {
        let scale = match std::env::var("DRCTL_TEST_AWS_SCALE") {
            Ok(v) => v
                .trim()
                .parse()
                .ok()
                .filter(|s: &f64| s.is_finite() && *s >= 0.0)
                .unwrap_or_else(|| panic!("DRCTL_TEST_AWS_SCALE={v:?} is not a factor >= 0")),
            Err(_) => 0.01,
        };
        AwsTimes::realistic().scaled(scale)
    }

    /// These times with the scale multiplied by `factor`.
    pub fn scaled(self, factor: f64) -> AwsTimes {
        assert!(factor.is_finite() && factor >= 0.0, "scale {factor}");
        AwsTimes {
            scale: self.scale * factor,
            ..self
        }
    }

    /// An AWS duration at this scale.
    pub fn of(&self, aws: Duration) -> Duration {
        aws.mul_f64(self.scale)
    }
}

/// A health forced on a target, from the moment it is set.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TargetOverride {
    /// `unhealthy` with this reason (`Target.FailedHealthChecks`,
    /// `Target.Timeout`, `Target.ResponseCodeMismatch`, …).
    Unhealthy(&'static str),
    /// `unhealthy` (`Target.FailedHealthChecks`) for `period`, then
    /// `healthy` for `period`, and so on. The period is taken as given,
    /// not scaled.
    Flapping { period: Duration },
    /// Any state with this reason, e.g. `("unused", "Target.InvalidState")`
    /// for an instance that cannot become healthy, or `("unavailable",
    /// "Elb.InternalError")`.
    State(&'static str, &'static str),
}

/// The model inside one proxy. Get it with
/// [`FaultProxy::aws`](crate::proxy::FaultProxy::aws).
pub struct AwsModel {
    times: Mutex<AwsTimes>,
    state: Mutex<State>,
}

/// Everything the model has seen.
#[derive(Debug, Default)]
struct State {
    instances: ec2::Instances,
    images: ec2::Images,
    load_balancers: elbv2::LoadBalancers,
    groups: elbv2::Groups,
    /// By target id, in every group; with when each was set.
    overrides: HashMap<String, (TargetOverride, Instant)>,
    /// By target group name prefix, for every target of those groups.
    group_overrides: BTreeMap<String, (TargetOverride, Instant)>,
    /// CreateImage calls made while the model showed the instance other
    /// than `stopped`: their image ids.
    unstopped_images: Vec<String>,
    /// The waits timed, and when answers showed them.
    ledger: ledger::Ledger,
}

impl State {
    /// The health forced on every target of `group` (an ARN), by the
    /// longest name prefix that matches it.
    fn forced_on_group(&self, group: &str) -> Option<&(TargetOverride, Instant)> {
        // arn:aws:elasticloadbalancing:REGION:ACCOUNT:targetgroup/NAME/ID
        let name = group.split(':').nth(5)?.split('/').nth(1)?;
        self.group_overrides
            .iter()
            .rev()
            .find(|(prefix, _)| name.starts_with(prefix.as_str()))
            .map(|(_, forced)| forced)
    }
}

/// Why the model could not answer: the client's connection failed (the
/// proxy drops it, as for any upstream failure), or one of the model's own
/// calls to moto did (answered 500, so the SDK retries and the log says why).
enum Failure {
    Io(io::Error),
    Model(String),
}

impl From<io::Error> for Failure {
    fn from(e: io::Error) -> Failure {
        Failure::Io(e)
    }
}

impl From<String> for Failure {
    fn from(e: String) -> Failure {
        Failure::Model(e)
    }
}

impl AwsModel {
    pub(crate) fn new(times: AwsTimes) -> AwsModel {
        AwsModel {
            times: Mutex::new(times),
            state: Mutex::new(State::default()),
        }
    }

    /// From the next answer on, every state is timed by `times`, those
    /// already under way included.
    pub fn set_times(&self, times: AwsTimes) {
        *self.times.lock().unwrap_or_else(|e| e.into_inner()) = times;
    }

    pub fn times(&self) -> AwsTimes {
        *self.times.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Forces `health` on target `id` (an instance id, or an IP target's
    /// address) in every group, whenever it would otherwise read `initial`
    /// or `healthy`.
    pub fn set_target_health(&self, id: &str, health: TargetOverride) {
        if let TargetOverride::Flapping { period } = &health {
            assert!(!period.is_zero(), "a flapping period must not be zero");
        }
        self.state()
            .overrides
            .insert(id.to_string(), (health, Instant::now()));
    }

    /// Back to the modelled health for target `id`.
    pub fn clear_target_health(&self, id: &str) {
        self.state().overrides.remove(id);
    }

    /// Forces `health` on every target of the target groups whose names
    /// start with `name_prefix` (groups a run has yet to create included),
    /// whenever a target would otherwise read `initial` or `healthy`. A
    /// target's own override comes first; of two prefixes, the longer.
    pub fn set_group_health(&self, name_prefix: &str, health: TargetOverride) {
        if let TargetOverride::Flapping { period } = &health {
            assert!(!period.is_zero(), "a flapping period must not be zero");
        }
        self.state()
            .group_overrides
            .insert(name_prefix.to_string(), (health, Instant::now()));
    }

    /// Back to the modelled health for the groups of `name_prefix`.
    pub fn clear_group_health(&self, name_prefix: &str) {
        self.state().group_overrides.remove(name_prefix);
    }

    /// The images CreateImage made while the model showed their instance
    /// as anything but `stopped` (`running`, `stopping`, …), in order: on
    /// AWS such an image is taken of a running machine.
    pub fn images_of_unstopped_instances(&self) -> Vec<String> {
        self.state().unstopped_images.clone()
    }

    /// Every wait the model timed that an answer has shown, in the order
    /// first shown, with when it ended and when an answer first showed
    /// that ([`Wait::lag`]).
    pub fn waits(&self) -> Vec<Wait> {
        self.state().ledger.waits()
    }

    fn state(&self) -> MutexGuard<'_, State> {
        // A panicking test thread must not hide the model from the others.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Forwards `request` to moto through `send` and answers as AWS would.
    pub(crate) fn exchange(
        &self,
        request: &Request,
        service: Service,
        action: &str,
        send: &mut dyn FnMut(&Request) -> io::Result<Response>,
    ) -> io::Result<Response> {
        let mut moto = Moto {
            template: request,
            send,
        };
        match self.handle(&mut moto, service, action) {
            Ok(response) => Ok(response),
            Err(Failure::Io(e)) => Err(e),
            Err(Failure::Model(why)) => {
                eprintln!("aws model: {action}: {why}");
                Ok(fault_response(&Fault::Status(500), service, "aws-model"))
            }
        }
    }

    fn handle(&self, moto: &mut Moto, service: Service, action: &str) -> Result<Response, Failure> {
        let request = moto.template;
        let times = self.times();
        match (service, action) {
            (Service::Ec2, "DescribeInstances") => {
                let mut form = Form::parse(&request.body);
                let filters = ec2::StateFilters::take(&mut form);
                let response = moto.forward(&with_form(request, &form))?;
                self.rewrite(response, |state, now, root| {
                    ec2::describe_instances(&mut state.instances, &times, now, root, &filters);
                    for shown in ec2::waits_shown(&state.instances, &times, root) {
                        state.ledger.shown(shown, now);
                    }
                })
            }
            (
                Service::Ec2,
                "RunInstances" | "StartInstances" | "StopInstances" | "TerminateInstances",
            ) => {
                let owner = ledger::owner(&Form::parse(&request.body));
                let response = moto.forward(request)?;
                self.rewrite(response, |state, now, root| {
                    ec2::changed(&mut state.instances, root, now);
                    let ids = root.all("instancesSet/item");
                    let ids = ids.iter().map(|i| i.text_at("instanceId"));
                    state.ledger.own(ids, owner);
                })
            }
            (Service::Ec2, "CreateImage") => {
                // What AWS shows of the instance when it is imaged: a bake
                // that images its builder before AWS shows it stopped has a
                // race moto hides.
                let form = Form::parse(&request.body);
                let instance = form.get("InstanceId").unwrap_or_default().to_string();
                let states = ec2::ask_states(moto, &BTreeSet::from([instance.clone()]))?;
                let shown = {
                    let (mut state, now) = (self.state(), Instant::now());
                    ec2::observe_all(&mut state.instances, &states, now);
                    let known = state.instances.get(&instance);
                    known.map(|i| i.shown(&times, now).to_string())
                };
                let owner = ledger::owner(&form);
                let response = moto.forward(request)?;
                self.rewrite(response, |state, now, root| {
                    ec2::image_created(&mut state.images, root, now);
                    state.ledger.own([root.text_at("imageId")], owner);
                    if shown.as_deref() != Some("stopped") {
                        state.unstopped_images.push(root.text_at("imageId"));
                    }
                })
            }
            (Service::Ec2, "CopyImage") => {
                let form = Form::parse(&request.body);
                let source = form.get("SourceImageId").unwrap_or_default().to_string();
                let owner = ledger::owner(&form);
                let response = moto.forward(request)?;
                self.rewrite(response, |state, now, root| {
                    ec2::image_created(&mut state.images, root, now);
                    let copy = root.text_at("imageId");
                    let owner = owner.or_else(|| state.ledger.owner_of(&source));
                    state.ledger.copied(&copy);
                    state.ledger.own([copy], owner);
                })
            }
            (Service::Ec2, "DescribeImages") => {
                let mut form = Form::parse(&request.body);
                let filters = form.take_filters("state");
                let response = moto.forward(&with_form(request, &form))?;
                self.rewrite(response, |state, now, root| {
                    ec2::describe_images(&state.images, &times, now, root, &filters);
                    state.ledger.images_shown(&state.images, &times, now, root);
                })
            }
            (Service::Elbv2, _) => self.elbv2(moto, action, &times),
            _ => Ok(moto.forward(request)?),
        }
    }

    fn elbv2(&self, moto: &mut Moto, action: &str, times: &AwsTimes) -> Result<Response, Failure> {
        let request = moto.template;
        let region = query::region(request).unwrap_or_default();
        // The first look at a region's listeners comes before its first
        // change, so that what was in use before counts as settled and what
        // this request puts in use is timed.
        if self.state().groups.baselined.insert(region.clone()) {
            let found = elbv2::forwarding(moto)?;
            self.state().groups.baseline(found);
        }
        let form = Form::parse(&request.body);
        let targets = || -> Vec<(String, Option<String>)> {
            let ports: HashMap<u32, String> =
                form.list("Targets.member.", ".Port").into_iter().collect();
            form.list("Targets.member.", ".Id")
                .into_iter()
                .map(|(n, id)| (id, ports.get(&n).cloned()))
                .collect()
        };
        let group = form.get("TargetGroupArn").unwrap_or_default().to_string();
        let owner = ledger::owner(&form);
        let response = moto.forward(request)?;
        if response.status != 200 {
            return Ok(response);
        }
        match action {
            "CreateLoadBalancer" => self.rewrite(response, |state, now, root| {
                elbv2::load_balancers_created(&mut state.load_balancers, root, now);
                let arns =
                    root.all("CreateLoadBalancerResult/LoadBalancers/member/LoadBalancerArn");
                state.ledger.own(arns.iter().map(|a| a.text()), owner);
            }),
            "DescribeLoadBalancers" => self.rewrite(response, |state, now, root| {
                elbv2::describe_load_balancers(&state.load_balancers, times, now, root);
                let lbs = &state.load_balancers;
                state.ledger.load_balancers_shown(lbs, times, now, root);
            }),
            "RegisterTargets" => {
                self.state()
                    .groups
                    .registered(&group, &targets(), Instant::now());
                Ok(response)
            }
            "DeregisterTargets" => {
                let now = Instant::now();
                let info = elbv2::group_info(moto, &group, true)?;
                self.state()
                    .groups
                    .deregistered(&group, &targets(), &info, now);
                Ok(response)
            }
            "DescribeTargetHealth" => {
                let found = elbv2::forwarding(moto)?;
                let info = elbv2::group_info(moto, &group, false)?;
                let mut doc = parse(&response)?;
                let instances = ec2::ask_states(moto, &elbv2::targets_named(&doc.root))?;
                let facts = elbv2::Facts {
                    group,
                    asked: targets().into_iter().map(|(id, _)| id).collect(),
                    info,
                };
                let now = Instant::now();
                let mut state = self.state();
                state.groups.in_use(&region, found, now);
                ec2::observe_all(&mut state.instances, &instances, now);
                elbv2::describe_target_health(&mut state, times, now, &facts, &mut doc.root);
                Ok(with_body(response, &doc))
            }
            "CreateListener" | "ModifyListener" | "DeleteListener" | "CreateRule"
            | "ModifyRule" | "DeleteRule" | "SetRulePriorities" | "DeleteLoadBalancer"
            | "DeleteTargetGroup" => {
                let found = elbv2::forwarding(moto)?;
                self.state().groups.in_use(&region, found, Instant::now());
                Ok(response)
            }
            _ => Ok(response),
        }
    }

    /// `response` (if a success) with its document changed by `change`,
    /// the model's state locked meanwhile.
    fn rewrite(
        &self,
        response: Response,
        change: impl FnOnce(&mut State, Instant, &mut xml::Element),
    ) -> Result<Response, Failure> {
        if response.status != 200 {
            return Ok(response);
        }
        let mut doc = parse(&response)?;
        change(&mut self.state(), Instant::now(), &mut doc.root);
        Ok(with_body(response, &doc))
    }
}

fn parse(response: &Response) -> Result<xml::Document, String> {
    xml::parse(&String::from_utf8_lossy(&response.body)).map_err(|e| format!("moto's answer: {e}"))
}

fn with_body(mut response: Response, doc: &xml::Document) -> Response {
    response.body = doc.to_xml().into_bytes();
    response
}

/// `request` with `form` as its body; untouched if nothing was taken out.
fn with_form(request: &Request, form: &Form) -> Request {
    let mut changed = request.clone();
    if *form != Form::parse(&request.body) {
        changed.body = form.encode();
    }
    changed
}
