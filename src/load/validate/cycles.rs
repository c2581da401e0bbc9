//! Stack dependency cycles, reported with every edge that makes them.

use crate::diag::{Diagnostics, Pos};
use crate::graph::StackGraph;
use crate::model::expr::RefTarget;
use crate::model::{Project, Stack};

/// Each stack dependency cycle, reported at one of its edges and listing
/// every edge with the file, line and key that creates it, so that every file
/// to look at is named. The report starts at an edge written as `depends_on`
/// when the cycle has one: an explicit ordering is the usual edge to drop
/// (and the one most likely just added), where a `${stack.…}` reference
/// carries data the stack needs.
pub(super) fn check_stack_cycles(project: &Project, diags: &mut Diagnostics) {
    let graph = StackGraph::new(project);
    for cycle in graph.cycles() {
        // `cycle[i]` depends on `cycle[i + 1]`, the last on the first.
        let Some(mut edges) = cycle
            .iter()
            .zip(cycle.iter().cycle().skip(1))
            .map(|(from, to)| {
                let stack = project.stacks.get(from)?;
                let cause = dependency_causes(stack).into_iter().find(|c| &c.on == to)?;
                Some((stack, cause))
            })
            .collect::<Option<Vec<_>>>()
        else {
            continue;
        };
        let start = edges
            .iter()
            .position(|(_, c)| c.key == "depends_on")
            .unwrap_or(0);
        edges.rotate_left(start);
        let mut path: Vec<&str> = edges.iter().map(|(s, _)| s.name.as_str()).collect();
        path.push(path[0]);
        let mut message = format!("stack dependency cycle: {}", path.join(" → "));
        for (stack, cause) in &edges {
            message.push_str(&format!(
                "\n  {} → {} ({}:{}:{}: {})",
                stack.name,
                cause.on,
                stack.file.display(),
                cause.pos.line,
                cause.pos.column,
                cause.what
            ));
        }
        let (stack, first) = &edges[0];
        diags
            .error(&stack.file, first.pos, first.key.clone(), message)
            .with_hint("stacks are applied in dependency order; break the cycle by dropping one of these edges, or by moving what they share into a stack of its own");
    }
}

/// What makes a stack depend on another: a `depends_on` entry or a
/// `${stack.….…}` reference, where it is written.
struct DependencyCause {
    /// The stack depended on.
    on: String,
    pos: Pos,
    /// The key it is written under: `depends_on`, `resources.….attr`, `outputs.x`.
    key: String,
    /// The key, and for a reference what it reads.
    what: String,
}

/// Every `depends_on` entry and `${stack.…}` reference of `stack`, in that
/// order (`depends_on` first, then the file's order).
fn dependency_causes(stack: &Stack) -> Vec<DependencyCause> {
    let explicit = stack.depends_on.iter().map(|d| DependencyCause {
        on: d.name.clone(),
        pos: d.pos,
        key: "depends_on".into(),
        what: "depends_on".into(),
    });
    let resources = stack.resources.iter().flat_map(|r| {
        let attrs = r
            .attrs
            .iter()
            .map(move |(k, v)| (format!("resources.{}.{k}", r.address()), v));
        let tags = r
            .tags
            .iter()
            .map(move |(k, v)| (format!("resources.{}.tags.{k}", r.address()), v));
        attrs.chain(tags)
    });
    let outputs = stack
        .outputs
        .iter()
        .map(|o| (format!("outputs.{}", o.name), &o.value));
    let references = resources.chain(outputs).flat_map(|(key, value)| {
        value
            .references()
            .into_iter()
            .filter_map(move |r| match &r.target {
                RefTarget::StackOutput { stack, output } => Some(DependencyCause {
                    on: stack.clone(),
                    pos: r.pos,
                    what: format!("{key} = \"${{stack.{stack}.{output}}}\""),
                    key: key.clone(),
                }),
                _ => None,
            })
    });
    explicit.chain(references).collect()
}
