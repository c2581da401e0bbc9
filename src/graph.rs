//! The stack dependency graph, a runbook's phases, and their renderings.
//!
//! Pure: built from the loaded [`Project`]; no I/O.

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::fmt::Write as _;

use petgraph::algo::{tarjan_scc, toposort};
use petgraph::graph::{DiGraph, NodeIndex};
use petgraph::visit::EdgeRef;
use petgraph::Direction;

use crate::model::{Gate, Project, RefTarget, Resource, Runbook, ServiceRef, Stack};

/// Stacks as nodes; an edge `a → b` means `b` depends on `a` (a is applied first).
pub struct StackGraph<'p> {
    graph: DiGraph<&'p str, ()>,
    index: BTreeMap<&'p str, NodeIndex>,
    project: &'p Project,
}

impl<'p> StackGraph<'p> {
    /// Edges come from `depends_on` and `${stack.X.…}`; names of unknown stacks are ignored
    /// here (validation reports them).
    pub fn new(project: &'p Project) -> Self {
        let mut graph = DiGraph::new();
        let index: BTreeMap<&str, NodeIndex> = project
            .stacks
            .keys()
            .map(|name| (name.as_str(), graph.add_node(name.as_str())))
            .collect();
        for stack in project.stacks.values() {
            let to = index[stack.name.as_str()];
            for dep in stack.dependencies() {
                if let Some(&from) = index.get(dep.name.as_str()) {
                    if from != to {
                        graph.update_edge(from, to, ());
                    }
                }
            }
        }
        StackGraph {
            graph,
            index,
            project,
        }
    }

    /// Each dependency cycle, as stack names in "depends on" order:
    /// `[web, network]` means web depends on network, which depends on web.
    pub fn cycles(&self) -> Vec<Vec<String>> {
        find_cycles(&self.graph)
            .into_iter()
            .map(|cycle| {
                let mut names: Vec<String> =
                    cycle.iter().map(|&n| self.graph[n].to_string()).collect();
                names.reverse();
                // Start at the alphabetically first stack, so the message is stable.
                let first = (0..names.len()).min_by_key(|&i| &names[i]).unwrap_or(0);
                names.rotate_left(first);
                names
            })
            .collect()
    }

    /// The roots and everything they depend on, transitively.
    pub fn closure<'a>(&self, roots: impl IntoIterator<Item = &'a str>) -> BTreeSet<String> {
        let mut seen = BTreeSet::new();
        let mut queue: VecDeque<NodeIndex> = roots
            .into_iter()
            .filter_map(|r| self.index.get(r).copied())
            .collect();
        while let Some(n) = queue.pop_front() {
            if seen.insert(self.graph[n].to_string()) {
                queue.extend(self.graph.neighbors_directed(n, Direction::Incoming));
            }
        }
        seen
    }

    /// The direct dependencies of a stack, sorted.
    pub fn dependencies(&self, stack: &str) -> Vec<&'p str> {
        let Some(&n) = self.index.get(stack) else {
            return Vec::new();
        };
        let mut deps: Vec<&str> = self
            .graph
            .edges_directed(n, Direction::Incoming)
            .map(|e| self.graph[e.source()])
            .collect();
        deps.sort();
        deps
    }

    /// The given stacks in layers: each stack one layer after its deepest
    /// dependency. Stacks in one layer do not depend on each other.
    /// Empty when the stacks contain a cycle.
    pub fn layers(&self, stacks: &BTreeSet<String>) -> Vec<Vec<String>> {
        let Ok(order) = toposort(&self.graph, None) else {
            return Vec::new();
        };
        let mut depth: BTreeMap<NodeIndex, usize> = BTreeMap::new();
        let mut layers: Vec<Vec<String>> = Vec::new();
        for n in order {
            let name = self.graph[n];
            if !stacks.contains(name) {
                continue;
            }
            let d = self
                .graph
                .neighbors_directed(n, Direction::Incoming)
                .filter_map(|dep| depth.get(&dep).map(|d| d + 1))
                .max()
                .unwrap_or(0);
            depth.insert(n, d);
            if layers.len() <= d {
                layers.resize(d + 1, Vec::new());
            }
            layers[d].push(name.to_string());
        }
        for layer in &mut layers {
            layer.sort();
        }
        layers
    }

    /// `stacks` sorted so that dependencies come first (ties by name).
    pub fn topological(&self, stacks: &[String]) -> Vec<String> {
        let set: BTreeSet<String> = stacks.iter().cloned().collect();
        self.layers(&set).into_iter().flatten().collect()
    }

    pub fn stack(&self, name: &str) -> Option<&'p Stack> {
        self.project.stacks.get(name)
    }
}

/// A runbook phase as it will run: stacks in dependency order, services to
/// cut over, and the gate passed before it.
#[derive(Debug, Clone, PartialEq)]
pub struct PhaseSpec {
    pub name: String,
    pub stacks: Vec<String>,
    pub cutover: Vec<ServiceRef>,
    pub gate: Gate,
    /// Strict order kept even when nobody waits at a gate (`barrier = true`).
    pub barrier: bool,
}

/// The gate between the canary weights of the services `phase` cuts over:
/// the first such service's `strategy.gate`, else the phase's own gate.
pub fn canary_gate(project: &Project, phase: &PhaseSpec) -> Gate {
    phase
        .cutover
        .iter()
        .find_map(|service| {
            let stack = project.stacks.get(&service.stack)?;
            let resource = stack.resource(crate::model::ResourceKind::Service, &service.name)?;
            crate::kinds::service::canary_gate(resource)
        })
        .unwrap_or_else(|| phase.gate.clone())
}

/// The phases of a valid runbook: as written, or the graph's layers (no gates)
/// when the runbook has no `[[phases]]`.
pub fn runbook_phases(project: &Project, runbook: &Runbook) -> Vec<PhaseSpec> {
    let graph = StackGraph::new(project);
    if runbook.phases.is_empty() {
        let closure = graph.closure(runbook.stacks.iter().map(|s| s.name.as_str()));
        return graph
            .layers(&closure)
            .into_iter()
            .enumerate()
            .map(|(i, stacks)| PhaseSpec {
                name: format!("layer-{}", i + 1),
                stacks,
                cutover: Vec::new(),
                gate: Gate::Auto,
                barrier: false,
            })
            .collect();
    }
    runbook
        .phases
        .iter()
        .map(|p| {
            let names: Vec<String> = p.stacks.iter().map(|s| s.name.clone()).collect();
            PhaseSpec {
                name: p.name.clone(),
                stacks: graph.topological(&names),
                cutover: p.cutover.clone(),
                gate: p.gate.clone(),
                barrier: p.barrier,
            }
        })
        .collect()
}

/// A stack's resources, each after the resources it refers to; otherwise in
/// file order. (Validation has rejected cycles.)
pub fn resource_order(stack: &Stack) -> Vec<&Resource> {
    let index_of = |kind, name: &str| {
        stack
            .resources
            .iter()
            .position(|r| r.kind == kind && r.name == name)
    };
    let deps: Vec<BTreeSet<usize>> = stack
        .resources
        .iter()
        .enumerate()
        .map(|(i, r)| {
            r.references()
                .filter_map(|reference| match &reference.target {
                    RefTarget::Resource { kind, name, .. } => index_of(*kind, name),
                    _ => None,
                })
                .filter(|&d| d != i)
                .collect()
        })
        .collect();
    let mut done = vec![false; stack.resources.len()];
    let mut order = Vec::new();
    while order.len() < stack.resources.len() {
        let next = (0..stack.resources.len())
            .find(|&i| !done[i] && deps[i].iter().all(|&d| done[d]))
            // Only reachable with a cycle; fall back to file order.
            .or_else(|| (0..stack.resources.len()).find(|&i| !done[i]))
            .expect("an unfinished resource exists");
        done[next] = true;
        order.push(&stack.resources[next]);
    }
    order
}

/// Every cycle of a directed graph (one per strongly connected component that
/// has one), as the nodes along it in edge direction; the closing edge back
/// to the first node is implied.
pub fn find_cycles<N, E>(graph: &DiGraph<N, E>) -> Vec<Vec<NodeIndex>> {
    let mut cycles = Vec::new();
    for scc in tarjan_scc(graph) {
        let start = *scc.iter().min().expect("an SCC is never empty");
        if scc.len() == 1 {
            if graph.contains_edge(start, start) {
                cycles.push(vec![start]);
            }
            continue;
        }
        let members: BTreeSet<NodeIndex> = scc.iter().copied().collect();
        // Shortest path from start back to itself within the component (BFS).
        let mut parent: BTreeMap<NodeIndex, NodeIndex> = BTreeMap::new();
        let mut queue = VecDeque::from([start]);
        'search: while let Some(n) = queue.pop_front() {
            for next in graph.neighbors(n) {
                if !members.contains(&next) {
                    continue;
                }
                if next == start {
                    let mut path = vec![n];
                    let mut at = n;
                    while at != start {
                        at = parent[&at];
                        path.push(at);
                    }
                    path.reverse();
                    cycles.push(path);
                    break 'search;
                }
                if let std::collections::btree_map::Entry::Vacant(e) = parent.entry(next) {
                    e.insert(n);
                    queue.push_back(next);
                }
            }
        }
    }
    cycles
}

/// Output formats of `drctl graph`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GraphFormat {
    Text,
    Dot,
    Mermaid,
}

/// How a gate reads in plans and graphs, e.g. "manual, 2 approvals from alice/bob".
pub fn gate_label(gate: &Gate) -> String {
    match gate {
        Gate::Auto => "auto".into(),
        Gate::Manual(m) => {
            let mut s = format!(
                "manual, {} approval{}",
                m.approvals,
                if m.approvals == 1 { "" } else { "s" }
            );
            if !m.approvers.is_empty() {
                let _ = write!(s, " from {}", m.approvers.join("/"));
            }
            if let Some(t) = m.timeout {
                let _ = write!(s, ", timeout {}", humantime::format_duration(t));
            }
            s
        }
    }
}

/// Renders a runbook's stack graph and phases.
pub fn render(project: &Project, runbook: &Runbook, format: GraphFormat) -> String {
    let graph = StackGraph::new(project);
    let phases = runbook_phases(project, runbook);
    match format {
        GraphFormat::Text => render_text(&graph, runbook, &phases),
        GraphFormat::Dot => render_dot(&graph, runbook, &phases),
        GraphFormat::Mermaid => render_mermaid(&graph, &phases),
    }
}

fn render_text(graph: &StackGraph<'_>, runbook: &Runbook, phases: &[PhaseSpec]) -> String {
    let mut out = format!(
        "runbook {} (environment {}, region {})\n",
        runbook.name, runbook.environment, runbook.region
    );
    for (i, phase) in phases.iter().enumerate() {
        let _ = writeln!(
            out,
            "phase {} {}  [gate: {}]",
            i + 1,
            phase.name,
            gate_label(&phase.gate)
        );
        for stack in &phase.stacks {
            let deps = graph.dependencies(stack);
            if deps.is_empty() {
                let _ = writeln!(out, "  {stack}");
            } else {
                let _ = writeln!(out, "  {stack}  (after {})", deps.join(", "));
            }
        }
        for service in &phase.cutover {
            let _ = writeln!(out, "  cutover {service}");
        }
    }
    out
}

fn render_dot(graph: &StackGraph<'_>, runbook: &Runbook, phases: &[PhaseSpec]) -> String {
    let mut out = format!(
        "digraph \"{}\" {{\n  rankdir=LR;\n  node [shape=box];\n",
        runbook.name
    );
    for (i, phase) in phases.iter().enumerate() {
        let _ = writeln!(out, "  subgraph \"cluster_{i}\" {{");
        let _ = writeln!(
            out,
            "    label=\"{} [gate: {}]\";",
            phase.name,
            gate_label(&phase.gate)
        );
        for stack in &phase.stacks {
            let _ = writeln!(out, "    \"{stack}\";");
        }
        for service in &phase.cutover {
            let _ = writeln!(out, "    \"cutover {service}\" [shape=ellipse];");
        }
        out.push_str("  }\n");
    }
    for phase in phases {
        for stack in &phase.stacks {
            for dep in graph.dependencies(stack) {
                let _ = writeln!(out, "  \"{dep}\" -> \"{stack}\";");
            }
        }
        for service in &phase.cutover {
            let _ = writeln!(out, "  \"{}\" -> \"cutover {service}\";", service.stack);
        }
    }
    out.push_str("}\n");
    out
}

fn mermaid_id(name: &str) -> String {
    name.chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
        .collect()
}

fn render_mermaid(graph: &StackGraph<'_>, phases: &[PhaseSpec]) -> String {
    let mut out = String::from("flowchart LR\n");
    for (i, phase) in phases.iter().enumerate() {
        let _ = writeln!(
            out,
            "  subgraph phase{i}[\"{} (gate: {})\"]",
            phase.name,
            gate_label(&phase.gate)
        );
        for stack in &phase.stacks {
            let _ = writeln!(out, "    {}[\"{stack}\"]", mermaid_id(stack));
        }
        for service in &phase.cutover {
            let id = mermaid_id(&format!("cutover_{service}"));
            let _ = writeln!(out, "    {id}([\"cutover {service}\"])");
        }
        out.push_str("  end\n");
    }
    for phase in phases {
        for stack in &phase.stacks {
            for dep in graph.dependencies(stack) {
                let _ = writeln!(out, "  {} --> {}", mermaid_id(dep), mermaid_id(stack));
            }
        }
        for service in &phase.cutover {
            let id = mermaid_id(&format!("cutover_{service}"));
            let _ = writeln!(out, "  {} --> {id}", mermaid_id(&service.stack));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn graph(edges: &[(u32, u32)], n: u32) -> DiGraph<u32, ()> {
        let mut g = DiGraph::new();
        let nodes: Vec<_> = (0..n).map(|i| g.add_node(i)).collect();
        for &(a, b) in edges {
            g.add_edge(nodes[a as usize], nodes[b as usize], ());
        }
        g
    }

    #[test]
    fn finds_each_cycle_once_in_edge_order() {
        let g = graph(&[(0, 1), (1, 2), (2, 0), (3, 3), (3, 4)], 5);
        let cycles: Vec<Vec<u32>> = find_cycles(&g)
            .into_iter()
            .map(|c| c.into_iter().map(|n| g[n]).collect())
            .collect();
        assert_eq!(cycles.len(), 2, "{cycles:?}");
        assert!(cycles.contains(&vec![0, 1, 2]));
        assert!(cycles.contains(&vec![3]));
    }

    #[test]
    fn acyclic_graphs_have_no_cycles() {
        let g = graph(&[(0, 1), (0, 2), (1, 2)], 3);
        assert!(find_cycles(&g).is_empty());
    }
}
