//! What a plan needs of its region, read off the plan (pure): the images it
//! launches or reuses, where its instances go (type and zone), how many
//! instances, load balancers and target groups it adds, and the mutating
//! calls it makes, each as a dry run where one can be tried now.

use std::collections::{BTreeMap, BTreeSet};

use super::calls::{calls, Service};
use crate::cloud::ec2::DryRun;
use crate::model::ResourceKind;
use crate::plan::resolve::{Pending, Resolved};
use crate::plan::{Action, Change, Plan};
use crate::world::{base_filter_key, Address, Snapshot, Value};

/// Everything the checks ask the region about.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Needs {
    pub shape: Shape,
    pub images: Vec<ImageNeed>,
    pub placements: Vec<Placement>,
    /// Zones the plan puts subnets (and so instances) in.
    pub zones: BTreeSet<String>,
    /// Launches whose instance type is known only when the run gets there
    /// (it reads another step's output): where they go cannot be checked.
    pub unplaced: Vec<Address>,
    /// What the plan adds: new instances, load balancers, target groups.
    pub adds: Adds,
    /// By service and action.
    pub calls: BTreeMap<(Service, &'static str), CallNeed>,
}

/// The plan's size, and what makes it invalid.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Shape {
    pub phases: usize,
    /// Steps that do something (no-ops left out), cleanup included.
    pub steps: usize,
    pub summary: String,
    pub problems: Vec<String>,
}

/// An image the plan needs in the region.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub enum ImageNeed {
    /// Launched, reused or baked from: must be available in the region.
    Id {
        id: String,
        /// `base image of app-image.image.app`, `image of web.service.web`.
        role: String,
    },
    /// A base-image filter that matched nothing in the region.
    NoMatch { address: Address, filter: String },
    /// Made by another step of this run (that step's own need covers it).
    FromRun { address: Address, from: Address },
}

/// Instances of one type going into one zone.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Placement {
    pub address: Address,
    pub instance_type: String,
    /// `None`: the subnet is neither planned nor found, so its zone is unknown.
    pub zone: Option<String>,
    pub subnet: String,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Adds {
    pub instances: u64,
    pub load_balancers: u64,
    pub target_groups: u64,
}

/// One mutating call the plan makes: which steps make it, the dry runs that
/// can be tried now, and why it cannot be tried for the others.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct CallNeed {
    pub by: BTreeSet<Address>,
    pub dry_runs: BTreeSet<DryRun>,
    pub untried: BTreeSet<String>,
}

impl Needs {
    /// What `plan`, made against `snapshot`, needs of its region.
    pub fn of(plan: &Plan, snapshot: &Snapshot) -> Needs {
        let steps: Vec<(usize, &Change)> = plan
            .phases
            .iter()
            .enumerate()
            .flat_map(|(i, p)| p.changes.iter().map(move |c| (i, c)))
            .chain(plan.cleanup.iter().map(|c| (plan.phases.len(), c)))
            .collect();
        let planned: BTreeMap<&Address, &Change> = steps
            .iter()
            .filter(|(_, c)| c.action != Action::Delete)
            .map(|(_, c)| (&c.address, *c))
            .collect();
        let world = World { planned, snapshot };
        let mut needs = Needs {
            shape: shape(plan, &steps, snapshot),
            ..Needs::default()
        };
        for (_, change) in &steps {
            needs.read(change, &world);
        }
        needs
    }

    fn read(&mut self, change: &Change, world: &World<'_>) {
        let kind = change.address.kind;
        let doing = !matches!(change.action, Action::NoOp | Action::Delete);
        if kind == ResourceKind::Image && change.action != Action::Delete {
            self.image_of_recipe(change);
        }
        if doing && matches!(kind, ResourceKind::Instances | ResourceKind::Service) {
            self.launch_image(change);
        }
        if doing {
            self.place(change, world);
            self.count(change);
        }
        for (service, action) in calls(kind, change.action) {
            let need = self.calls.entry((service, action)).or_default();
            need.by.insert(change.address.clone());
            match dry_run(service, action, change, world) {
                Ok(call) => {
                    need.dry_runs.insert(call);
                }
                Err(why) => {
                    need.untried.insert(why);
                }
            }
        }
    }

    /// An image resource: the image it reuses, or the base a bake starts from.
    fn image_of_recipe(&mut self, change: &Change) {
        let address = &change.address;
        if let (Action::NoOp | Action::Update, Some(current)) = (change.action, &change.current) {
            self.images.push(ImageNeed::Id {
                id: current.id.clone(),
                role: format!("image of {address} (its recipe's)"),
            });
            return;
        }
        if change.action == Action::Update {
            return;
        }
        match change.desired.get("base_image") {
            Some(Resolved::Known(Value::Str(id))) => self.images.push(ImageNeed::Id {
                id: id.clone(),
                role: format!("base image of {address} (a bake starts from it)"),
            }),
            Some(Resolved::Known(Value::Table(filter))) => {
                let (owners, name) = crate::kinds::image::base_filter(filter);
                self.images.push(ImageNeed::NoMatch {
                    address: address.clone(),
                    filter: base_filter_key(&owners, &name),
                });
            }
            Some(pending @ Resolved::After { .. }) => {
                for from in pending.pending_on() {
                    self.images.push(ImageNeed::FromRun {
                        address: address.clone(),
                        from,
                    });
                }
            }
            _ => {}
        }
    }

    /// A fleet's or a service's image.
    fn launch_image(&mut self, change: &Change) {
        let address = &change.address;
        match change.desired.get("image") {
            Some(Resolved::Known(Value::Str(id))) => self.images.push(ImageNeed::Id {
                id: id.clone(),
                role: format!("image of {address}"),
            }),
            Some(pending @ Resolved::After { .. }) => {
                for from in pending.pending_on() {
                    self.images.push(ImageNeed::FromRun {
                        address: address.clone(),
                        from,
                    });
                }
            }
            _ => {}
        }
    }

    /// Subnets' zones; instances' (and a bake's builder's) type per zone.
    fn place(&mut self, change: &Change, world: &World<'_>) {
        let kind = change.address.kind;
        if kind == ResourceKind::Subnet {
            if let Some(zone) = change.known_str("availability_zone") {
                self.zones.insert(zone);
            }
            return;
        }
        let subnets = match kind {
            ResourceKind::Image if change.action == Action::Create => "subnet",
            ResourceKind::Instances | ResourceKind::Service => "subnets",
            _ => return,
        };
        let Some(instance_type) = change.known_str("instance_type") else {
            self.unplaced.push(change.address.clone());
            return;
        };
        let mut refs = Vec::new();
        if let Some(value) = change.desired.get(subnets) {
            subnet_refs(value, &mut refs);
        }
        for subnet in refs {
            let zone = world.zone(&subnet);
            if let Some(zone) = &zone {
                self.zones.insert(zone.clone());
            }
            self.placements.push(Placement {
                address: change.address.clone(),
                instance_type: instance_type.clone(),
                zone,
                subnet: subnet.to_string(),
            });
        }
    }

    fn count(&mut self, change: &Change) {
        let count = || change.desired.get("count").and_then(Resolved::known);
        let count = || count().and_then(Value::as_int).unwrap_or(0).max(0) as u64;
        match change.address.kind {
            ResourceKind::Instances => self.adds.instances += count(),
            // A new colour: its fleet and its own target group. An update
            // that only moves traffic needs neither; counted as if it made
            // a colour (the larger need).
            ResourceKind::Service => {
                self.adds.instances += count();
                self.adds.target_groups += 1;
            }
            ResourceKind::Image if change.action == Action::Create => self.adds.instances += 1,
            ResourceKind::LoadBalancer if change.action != Action::Update => {
                self.adds.load_balancers += 1
            }
            ResourceKind::TargetGroup if change.action != Action::Update => {
                self.adds.target_groups += 1
            }
            _ => {}
        }
    }
}

/// What the plan makes and what exists: where a subnet is.
struct World<'a> {
    planned: BTreeMap<&'a Address, &'a Change>,
    snapshot: &'a Snapshot,
}

/// A subnet as a step names it: an id that exists, or one planned.
#[derive(Debug, Clone)]
enum SubnetRef {
    Id(String),
    Planned(Address),
}

impl std::fmt::Display for SubnetRef {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            SubnetRef::Id(id) => f.write_str(id),
            SubnetRef::Planned(address) => write!(f, "{address}"),
        }
    }
}

impl World<'_> {
    fn zone(&self, subnet: &SubnetRef) -> Option<String> {
        match subnet {
            SubnetRef::Planned(address) => self
                .planned
                .get(address)
                .and_then(|c| c.known_str("availability_zone"))
                .or_else(|| observed_zone(self.snapshot.get(address)?)),
            SubnetRef::Id(id) => self
                .snapshot
                .objects()
                .find(|o| o.address.kind == ResourceKind::Subnet && &o.id == id)
                .and_then(observed_zone),
        }
    }

    /// The id of `subnet` if it exists now.
    fn existing_id(&self, subnet: &SubnetRef) -> Option<String> {
        match subnet {
            SubnetRef::Id(id) => Some(id.clone()),
            SubnetRef::Planned(address) => Some(self.snapshot.get(address)?.id.clone()),
        }
    }
}

fn observed_zone(o: &crate::world::ObservedResource) -> Option<String> {
    o.attrs
        .get("availability_zone")
        .and_then(Value::as_str)
        .map(str::to_string)
}

fn subnet_refs(value: &Resolved, out: &mut Vec<SubnetRef>) {
    match value {
        Resolved::Known(Value::Str(id)) => out.push(SubnetRef::Id(id.clone())),
        Resolved::Known(Value::List(items)) => out.extend(
            items
                .iter()
                .filter_map(Value::as_str)
                .map(|s| SubnetRef::Id(s.to_string())),
        ),
        Resolved::Known(_) => {}
        Resolved::After { pending, .. } => match pending {
            Pending::Export { address, .. } => out.push(SubnetRef::Planned(address.clone())),
            Pending::List(items) => items.iter().for_each(|i| subnet_refs(i, out)),
            Pending::Table(_) | Pending::Concat(_) => {}
        },
    }
}

/// The dry run of `action` for `change` with what exists now, or why none
/// can be tried.
fn dry_run(
    service: Service,
    action: &'static str,
    change: &Change,
    world: &World<'_>,
) -> Result<DryRun, String> {
    if service == Service::Elbv2 {
        return Err("ELBv2 has no dry run: unchecked".into());
    }
    let current = change
        .current
        .as_ref()
        .filter(|_| change.action != Action::Create);
    let made_here = |what: &str| format!("needs the id of {what} this run makes: not tried");
    match action {
        "CreateInternetGateway" => Ok(DryRun::CreateInternetGateway),
        "CreateSecurityGroup" => Ok(DryRun::CreateSecurityGroup {
            vpc: change.known_str("vpc"),
        }),
        "RunInstances" => {
            let (image, subnets) = match change.address.kind {
                ResourceKind::Image => ("base_image", "subnet"),
                _ => ("image", "subnets"),
            };
            let image = change
                .known_str(image)
                .ok_or_else(|| made_here("the image"))?;
            let instance_type = change
                .known_str("instance_type")
                .ok_or("its instance type is known only later: not tried")?;
            let mut refs = Vec::new();
            if let Some(value) = change.desired.get(subnets) {
                subnet_refs(value, &mut refs);
            }
            Ok(DryRun::RunInstances {
                image,
                instance_type,
                subnet: refs.first().and_then(|s| world.existing_id(s)),
            })
        }
        "AuthorizeSecurityGroupIngress" => match current {
            Some(group) => Ok(DryRun::AuthorizeSecurityGroupIngress {
                group: group.id.clone(),
            }),
            None => Err(made_here("the security group")),
        },
        "CreateTags" => match current {
            Some(object) => Ok(DryRun::CreateTags {
                resources: vec![object.id.clone()],
            }),
            None => Err(made_here("what it tags")),
        },
        "TerminateInstances" => {
            let ids: Vec<String> = current
                .and_then(|c| c.exports.get("ids"))
                .and_then(Value::as_str_list)
                .map(|ids| ids.into_iter().map(str::to_string).collect())
                .unwrap_or_default();
            match ids.is_empty() {
                false => Ok(DryRun::TerminateInstances { ids }),
                true => Err(made_here("the instances")),
            }
        }
        _ => Err("its dry run is not one drctl's tests verify: not tried".into()),
    }
}

/// The plan's size, and what makes it invalid: a step reading a resource
/// neither planned nor found, a value pending on a phase that is not before
/// its own, steps that wait on each other in a circle.
fn shape(plan: &Plan, steps: &[(usize, &Change)], snapshot: &Snapshot) -> Shape {
    let phase_of: BTreeMap<&Address, usize> = steps
        .iter()
        .filter(|(_, c)| c.action != Action::Delete)
        .map(|(i, c)| (&c.address, *i))
        .collect();
    let phase_index: BTreeMap<&str, usize> = plan
        .phases
        .iter()
        .enumerate()
        .map(|(i, p)| (p.name.as_str(), i))
        .collect();
    let mut problems = Vec::new();
    for (phase, change) in steps.iter().filter(|(_, c)| c.action != Action::Delete) {
        for read in &change.depends_on {
            if !phase_of.contains_key(read) && snapshot.get(read).is_none() {
                problems.push(format!(
                    "{} reads {read}, which is neither planned nor found",
                    change.address
                ));
            }
        }
        for value in change.desired.values().chain(change.tags.values()) {
            if let Resolved::After { phase: waits, .. } = value {
                match phase_index.get(waits.as_str()) {
                    Some(w) if w <= phase => {}
                    Some(_) => problems.push(format!(
                        "{} waits on phase {waits}, which comes after its own",
                        change.address
                    )),
                    None => problems.push(format!(
                        "{} waits on phase {waits}, which the plan does not have",
                        change.address
                    )),
                }
            }
        }
    }
    if let Some(circle) = circle(steps) {
        problems.push(format!("steps wait on each other: {}", circle.join(" → ")));
    }
    let summary = plan.summary();
    Shape {
        phases: plan.phases.len(),
        steps: steps
            .iter()
            .filter(|(_, c)| c.action != Action::NoOp)
            .count(),
        summary: summary.to_string(),
        problems,
    }
}

/// A circle of `depends_on` among the planned steps, if there is one. A
/// resource's steps count as one node; one reading its own address reads
/// the earlier step of it (a cutover its new colour), not a circle.
fn circle(steps: &[(usize, &Change)]) -> Option<Vec<String>> {
    let mut edges: BTreeMap<&Address, BTreeSet<Address>> = BTreeMap::new();
    for (_, change) in steps.iter().filter(|(_, c)| c.action != Action::Delete) {
        let reads = change.depends_on.iter().filter(|d| **d != change.address);
        edges
            .entry(&change.address)
            .or_default()
            .extend(reads.cloned());
    }
    let edges: BTreeMap<&Address, &BTreeSet<Address>> =
        edges.iter().map(|(a, reads)| (*a, reads)).collect();
    // 1: on the path being walked, 2: done.
    let mut mark: BTreeMap<&Address, u8> = BTreeMap::new();
    fn walk<'a>(
        at: &'a Address,
        edges: &BTreeMap<&'a Address, &'a BTreeSet<Address>>,
        mark: &mut BTreeMap<&'a Address, u8>,
        path: &mut Vec<&'a Address>,
    ) -> Option<Vec<String>> {
        match mark.get(at) {
            Some(2) => return None,
            Some(_) => {
                let start = path.iter().position(|a| *a == at).unwrap_or(0);
                let mut circle: Vec<String> = path[start..].iter().map(|a| a.to_string()).collect();
                circle.push(at.to_string());
                return Some(circle);
            }
            None => {}
        }
        mark.insert(at, 1);
        path.push(at);
        for next in edges.get(at).into_iter().flat_map(|e| e.iter()) {
            if let Some((next, _)) = edges.get_key_value(next) {
                if let Some(found) = walk(next, edges, mark, path) {
                    return Some(found);
                }
            }
        }
        path.pop();
        mark.insert(at, 2);
        None
    }
    for at in edges.keys() {
        if let Some(found) = walk(at, &edges, &mut mark, &mut Vec::new()) {
            return Some(found);
        }
    }
    None
}

#[cfg(test)]
#[path = "needs_tests.rs"]
mod tests;
