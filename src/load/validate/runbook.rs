//! The checks of a runbook: its stacks, phases, cutovers and variable
//! overrides, and the environment it claims. What its cutovers and drill
//! checks name is checked in [`checks`](super::checks).

use std::collections::{BTreeMap, BTreeSet};

use crate::diag::{suggest, Diagnostics};
use crate::graph::StackGraph;
use crate::kinds::schema::Ty;
use crate::kinds::KindDef;
use crate::load::decode::check_literal_str;
use crate::model::expr::RefTarget;
use crate::model::{Project, ResourceKind, Runbook, Stack};

use super::checks::Scope;
use super::stack::expr_type;

/// Two runbooks may not claim one environment in one region: each plans to
/// delete what carries the environment's tag and is not declared in its own
/// stacks, so each would delete the other's resources (and `destroy` of
/// either takes both down). Reported at the second claim, naming the first;
/// a runbook asked for alone is compared with every other runbook of the
/// repository all the same.
pub(super) fn check_environment_claims(project: &Project, diags: &mut Diagnostics) {
    let mut earlier: Vec<&Runbook> = Vec::new();
    for runbook in &project.runbooks {
        // A missing environment or region is reported where it is parsed.
        if runbook.environment.is_empty() || runbook.region.is_empty() {
            continue;
        }
        let first = earlier
            .iter()
            .copied()
            .chain(&project.other_runbooks)
            .find(|other| {
                other.file != runbook.file
                    && other.environment == runbook.environment
                    && other.region == runbook.region
            });
        if let Some(first) = first {
            diags
                .error(
                    &runbook.file,
                    runbook.environment_pos,
                    "environment",
                    format!(
                        "environment `{}` in {} is already claimed by runbook {}",
                        runbook.environment,
                        runbook.region,
                        first.file.display()
                    ),
                )
                .with_hint("each runbook deletes the resources of its environment that its stacks do not declare, so two runbooks on one environment delete each other's; give one of them an environment of its own");
        }
        earlier.push(runbook);
    }
}

pub(super) fn check_runbook(project: &Project, runbook: &Runbook, diags: &mut Diagnostics) {
    let graph = StackGraph::new(project);
    let closure: BTreeSet<String> = graph.closure(runbook.stacks.iter().map(|n| n.name.as_str()));
    let mut check = RunbookCheck {
        scope: Scope {
            project,
            runbook,
            closure: &closure,
        },
        phase_of: BTreeMap::new(),
    };
    check.roots(diags);
    check_var_overrides(project, runbook, &closure, diags);
    check.assign_phases(diags);
    if !runbook.phases.is_empty() {
        check.every_stack_in_a_phase(diags);
        check.dependencies_first(diags);
    }
    let cut_over = check.cutovers(diags);
    check.canary_gates(&cut_over, diags);
    check.scope.check_drill(diags);
}

/// A runbook's stacks, phases and cutovers under check.
struct RunbookCheck<'a> {
    scope: Scope<'a>,
    /// Which phase applies each stack, by index into the runbook's phases.
    phase_of: BTreeMap<&'a str, usize>,
}

impl<'a> RunbookCheck<'a> {
    /// A stack that is neither loaded nor reported as unreadable already.
    fn unknown(&self, name: &str) -> bool {
        let project = self.scope.project;
        !project.stacks.contains_key(name) && !project.unreadable_stacks.contains(name)
    }

    fn known(&self) -> impl Iterator<Item = &'a str> {
        self.scope.project.stacks.keys().map(String::as_str)
    }

    /// The runbook's `stacks` name stacks that exist.
    fn roots(&self, diags: &mut Diagnostics) {
        let runbook = self.scope.runbook;
        for root in &runbook.stacks {
            if self.unknown(&root.name) {
                diags
                    .error(
                        &runbook.file,
                        root.pos,
                        "stacks",
                        format!("unknown stack `{}`", root.name),
                    )
                    .with_hint_opt(suggest(&root.name, self.known()));
            }
        }
    }

    /// Each phase's stacks: known, part of the runbook, and in no other
    /// phase; fills in [`Self::phase_of`].
    fn assign_phases(&mut self, diags: &mut Diagnostics) {
        let runbook = self.scope.runbook;
        let file = &runbook.file;
        for (i, phase) in runbook.phases.iter().enumerate() {
            let key = format!("phases.{}.stacks", phase.name);
            for s in &phase.stacks {
                if self.scope.project.unreadable_stacks.contains(&s.name) {
                    continue;
                }
                if self.unknown(&s.name) {
                    diags
                        .error(file, s.pos, &key, format!("unknown stack `{}`", s.name))
                        .with_hint_opt(suggest(&s.name, self.known()));
                } else if !self.scope.closure.contains(&s.name) {
                    diags
                        .error(
                            file,
                            s.pos,
                            &key,
                            format!("stack `{}` is not part of this runbook", s.name),
                        )
                        .with_hint(
                            "add it (or a stack that depends on it) to the runbook's `stacks`",
                        );
                } else if let Some(&other) = self.phase_of.get(s.name.as_str()) {
                    diags.error(file, s.pos, &key, format!(
                        "stack `{}` is already applied in phase `{}`; a stack lands in exactly one phase",
                        s.name, runbook.phases[other].name
                    ));
                } else {
                    self.phase_of.insert(&s.name, i);
                }
            }
        }
    }

    /// With phases, every stack the runbook needs is applied in one.
    fn every_stack_in_a_phase(&self, diags: &mut Diagnostics) {
        let runbook = self.scope.runbook;
        for stack in self.scope.closure {
            if !self.phase_of.contains_key(stack.as_str()) {
                let pos = runbook.phases[0].pos;
                diags
                    .error(&runbook.file, pos, "phases", format!("stack `{stack}` is in no phase"))
                    .with_hint("every stack the runbook needs (its roots and their dependencies) must be listed in one phase");
            }
        }
    }

    /// A stack's dependencies are applied in its phase or an earlier one:
    /// it reads what they export.
    fn dependencies_first(&self, diags: &mut Diagnostics) {
        let runbook = self.scope.runbook;
        for (i, phase) in runbook.phases.iter().enumerate() {
            for s in &phase.stacks {
                let Some(stack) = self.scope.project.stacks.get(&s.name) else {
                    continue;
                };
                for dep in stack.dependencies() {
                    let Some(&j) = self.phase_of.get(dep.name.as_str()) else {
                        continue;
                    };
                    if j <= i {
                        continue;
                    }
                    diags
                        .error(
                            &runbook.file,
                            s.pos,
                            format!("phases.{}.stacks", phase.name),
                            format!(
                                "phase `{}` applies `{}` before its dependency `{}` (phase `{}`)",
                                phase.name, s.name, dep.name, runbook.phases[j].name
                            ),
                        )
                        .with_hint(format!(
                            "move `{}` to phase `{}` or later",
                            s.name, runbook.phases[j].name
                        ));
                }
            }
        }
    }

    /// Each cutover names a service of the runbook, after the phase that
    /// applies its stack, once. Returns the phase cutting over each service.
    fn cutovers(&self, diags: &mut Diagnostics) -> BTreeMap<String, &'a str> {
        let runbook = self.scope.runbook;
        let mut cut_over: BTreeMap<String, &str> = BTreeMap::new();
        for (i, phase) in runbook.phases.iter().enumerate() {
            let key = format!("phases.{}.cutover", phase.name);
            for service in &phase.cutover {
                if !self.scope.resource(&service.into(), &key, diags) {
                    continue;
                }
                if let Some(&j) = self.phase_of.get(service.stack.as_str()) {
                    if j > i {
                        diags.error(
                            &runbook.file,
                            service.pos,
                            &key,
                            format!(
                                "phase `{}` cuts over `{service}` before its stack is applied (phase `{}`)",
                                phase.name, runbook.phases[j].name
                            ),
                        );
                    }
                }
                if let Some(previous) = cut_over.insert(service.to_string(), &phase.name) {
                    diags.error(
                        &runbook.file,
                        service.pos,
                        &key,
                        format!("`{service}` is already cut over in phase `{previous}`"),
                    );
                }
            }
        }
        cut_over
    }

    /// A canary with a `gate` between its weights stops in a cutover phase
    /// of its own; without one the traffic would move at once and the gate
    /// would never be asked.
    fn canary_gates(&self, cut_over: &BTreeMap<String, &str>, diags: &mut Diagnostics) {
        let Scope {
            project,
            runbook,
            closure,
        } = self.scope;
        for stack in closure.iter().filter_map(|s| project.stacks.get(s)) {
            let services = stack
                .resources
                .iter()
                .filter(|r| r.kind == ResourceKind::Service);
            for service in services {
                if crate::kinds::service::canary_gate(service).is_none() {
                    continue;
                }
                let address = format!("{}.service.{}", stack.name, service.name);
                let own_phase = self
                    .phase_of
                    .get(stack.name.as_str())
                    .map(|&i| runbook.phases[i].name.as_str());
                let in_a_later_phase = cut_over
                    .get(&address)
                    .is_some_and(|p| Some(*p) != own_phase);
                if in_a_later_phase {
                    continue;
                }
                let gate = service
                    .attr("strategy")
                    .and_then(|s| s.get("gate"))
                    .expect("a canary gate is declared");
                diags
                    .error(
                        &stack.file,
                        gate.pos,
                        format!("resources.service.{}.strategy.gate", service.name),
                        format!(
                            "runbook `{}` has no cutover phase for `{address}` after the one applying its stack, so nothing would stop between its canary weights",
                            runbook.name
                        ),
                    )
                    .with_hint(format!(
                        "add a phase after the one applying stack `{}` with `cutover = [\"{address}\"]`, or drop `gate`",
                        stack.name
                    ));
            }
        }
    }
}

/// A runbook's `[vars]` must name variables its stacks declare, with the same
/// type, and a value that fits wherever a stack uses it.
fn check_var_overrides(
    project: &Project,
    runbook: &Runbook,
    closure: &BTreeSet<String>,
    diags: &mut Diagnostics,
) {
    let stacks: Vec<&Stack> = closure
        .iter()
        .filter_map(|s| project.stacks.get(s))
        .collect();
    for (name, var) in &runbook.vars {
        let declared: Vec<&Stack> = stacks
            .iter()
            .copied()
            .filter(|s| s.vars.contains_key(name))
            .collect();
        if declared.is_empty() {
            let all: BTreeSet<&str> = stacks
                .iter()
                .flat_map(|s| s.vars.keys().map(String::as_str))
                .collect();
            diags
                .error(
                    &runbook.file,
                    var.pos,
                    format!("vars.{name}"),
                    format!("no stack of this runbook declares variable `{name}`"),
                )
                .with_hint_opt(suggest(name, all));
            continue;
        }
        let found = expr_type(&var.value);
        for stack in declared {
            let default = expr_type(&stack.vars[name].value);
            if default != found {
                diags.error(
                    &runbook.file,
                    var.pos,
                    format!("vars.{name}"),
                    format!(
                        "expected {} (the type of `{name}` in stack `{}`), found {}",
                        default.describe(),
                        stack.name,
                        found.describe()
                    ),
                );
                continue;
            }
            let Some(text) = var.value.as_literal_str() else {
                continue;
            };
            for (ty, path) in whole_var_uses(stack, name) {
                if let Err((message, hint)) = check_literal_str(ty, text, &stack.file) {
                    diags
                        .error(
                            &runbook.file,
                            var.pos,
                            format!("vars.{name}"),
                            format!("{message} (used as {path} in stack `{}`)", stack.name),
                        )
                        .with_hint_opt(hint);
                }
            }
        }
    }
}

/// Where a stack uses `${var.<name>}` as a whole attribute value, with the attribute's type.
fn whole_var_uses(stack: &Stack, var: &str) -> Vec<(&'static Ty, String)> {
    let mut uses = Vec::new();
    for resource in &stack.resources {
        for field in resource.kind.fields() {
            let Some(value) = resource.attr(field.name) else {
                continue;
            };
            if let Some(RefTarget::Var(name)) = value.as_whole_ref().map(|r| &r.target) {
                if name == var {
                    uses.push((
                        &field.ty,
                        format!(
                            "resources.{}.{}.{}",
                            resource.kind, resource.name, field.name
                        ),
                    ));
                }
            }
        }
    }
    uses
}

#[cfg(test)]
mod tests {
    use std::path::{Path, PathBuf};

    use crate::load::validate::load_project;

    fn runbook(env: &str, region: &str) -> String {
        format!("environment = \"{env}\"\nregion = \"{region}\"\nstacks = [\"s\"]\n")
    }

    fn claims(root: &Path, selected: &[&str]) -> Vec<String> {
        let selected: Vec<PathBuf> = selected.iter().map(|s| root.join(s)).collect();
        let (_, diags) = load_project(root, &selected);
        let prefix = format!("{}/", root.display());
        diags
            .sorted()
            .iter()
            .map(|d| d.to_string().replace(&prefix, ""))
            .map(|d| d.lines().next().unwrap().to_string())
            .collect()
    }

    #[test]
    fn a_runbook_asked_for_alone_is_compared_with_every_other_runbook() {
        let dir = tempfile::tempdir().unwrap();
        let write = |rel: &str, text: &str| {
            let path = dir.path().join(rel);
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(path, text).unwrap();
        };
        write("stacks/s.toml", "");
        write("runbooks/a.toml", &runbook("web", "us-east-1"));
        write("runbooks/b.toml", &runbook("web", "us-east-1"));
        // The same environment in another region is another environment.
        write("runbooks/c.toml", &runbook("web", "eu-west-1"));
        // Another runbook's own problems are not this command's.
        write("runbooks/d.toml", "environment = \n");
        let root = dir.path();

        let at_b = "runbooks/b.toml:1:15: environment: environment `web` in us-east-1 is already claimed by runbook runbooks/a.toml";
        let at_a = "runbooks/a.toml:1:15: environment: environment `web` in us-east-1 is already claimed by runbook runbooks/b.toml";
        assert_eq!(claims(root, &["runbooks/b.toml"]), [at_b]);
        assert_eq!(claims(root, &["runbooks/a.toml"]), [at_a]);
        // Both asked for: reported once, at the second.
        assert_eq!(
            claims(root, &["runbooks/a.toml", "runbooks/b.toml"]),
            [at_b]
        );
        // A runbook named by another spelling of its path is not its own rival.
        assert_eq!(
            claims(root, &["runbooks/../runbooks/c.toml"]),
            Vec::<String>::new()
        );
        // All of them: d's problem, and the claim once.
        let all = claims(root, &[]);
        assert_eq!(all.len(), 2, "{all:#?}");
        assert_eq!(all[0], at_b);
        assert!(all[1].starts_with("runbooks/d.toml:1:"), "{all:#?}");
    }
}
