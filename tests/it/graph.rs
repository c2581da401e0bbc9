//! The stack graph: layers, closure, phases and their renderings.

use drctl::graph::{render, runbook_phases, GraphFormat, StackGraph};
use drctl::load::validate::load_project;
use drctl::model::Gate;

use crate::support::{Repo, RUNBOOK};

const LAYERED: &str = "environment = \"e\"\nregion = \"us-east-1\"\nstacks = [\"app\"]\n";

#[test]
fn without_phases_the_layers_are_the_phases() {
    let repo = Repo::with(&[
        ("runbooks/rb.toml", LAYERED),
        ("stacks/extra.toml", "depends_on = [\"net\"]\n"),
        (
            "stacks/app.toml",
            &format!("depends_on = [\"extra\"]\n{}", crate::support::APP),
        ),
    ]);
    let (project, diags) = load_project(repo.root(), &[]);
    assert!(diags.is_empty(), "{diags}");
    let phases = runbook_phases(&project, &project.runbooks[0]);
    let shape: Vec<(String, Vec<String>)> = phases
        .iter()
        .map(|p| (p.name.clone(), p.stacks.clone()))
        .collect();
    assert_eq!(
        shape,
        vec![
            ("layer-1".to_string(), vec!["net".to_string()]),
            ("layer-2".to_string(), vec!["extra".to_string()]),
            ("layer-3".to_string(), vec!["app".to_string()]),
        ]
    );
    assert!(
        phases.iter().all(|p| p.gate == Gate::Auto),
        "no gate stops a layered run"
    );
}

#[test]
fn independent_stacks_share_a_layer_and_closure_pulls_in_dependencies() {
    let repo = Repo::with(&[
        ("stacks/a.toml", "depends_on = [\"net\"]\n"),
        ("stacks/b.toml", "depends_on = [\"net\"]\n"),
        ("stacks/top.toml", "depends_on = [\"a\", \"b\"]\n"),
        (
            "runbooks/rb.toml",
            &LAYERED.replace("[\"app\"]", "[\"top\"]"),
        ),
    ]);
    let (project, diags) = load_project(repo.root(), &[]);
    assert!(diags.is_empty(), "{diags}");
    let graph = StackGraph::new(&project);
    let closure = graph.closure(["top"]);
    assert_eq!(
        closure.into_iter().collect::<Vec<_>>(),
        ["a", "b", "net", "top"]
    );
    let layers = graph.layers(&graph.closure(["top"]));
    assert_eq!(layers, vec![vec!["net"], vec!["a", "b"], vec!["top"]]);
}

#[test]
fn declared_phases_keep_their_gates_and_order() {
    let repo = Repo::with(&[]);
    let (project, diags) = load_project(repo.root(), &[]);
    assert!(diags.is_empty(), "{diags}");
    let phases = runbook_phases(&project, &project.runbooks[0]);
    let names: Vec<&str> = phases.iter().map(|p| p.name.as_str()).collect();
    assert_eq!(names, ["one", "two", "switch"]);
    assert_eq!(phases[0].gate, Gate::Auto);
    match &phases[2].gate {
        Gate::Manual(m) => {
            assert_eq!(m.approvals, 2);
            assert_eq!(m.approvers, ["alice", "bob"]);
        }
        other => panic!("expected a manual gate, got {other:?}"),
    }
    assert_eq!(phases[2].cutover[0].to_string(), "app.service.web");
}

#[test]
fn renderings_show_phases_gates_and_edges() {
    let repo = Repo::with(&[("runbooks/rb.toml", RUNBOOK)]);
    let (project, diags) = load_project(repo.root(), &[]);
    assert!(diags.is_empty(), "{diags}");
    let runbook = &project.runbooks[0];
    assert_eq!(
        render(&project, runbook, GraphFormat::Text),
        "runbook rb (environment test-env, region us-east-1)\n\
         phase 1 one  [gate: auto]\n  net\n\
         phase 2 two  [gate: manual, 1 approval]\n  app  (after net)\n\
         phase 3 switch  [gate: manual, 2 approvals from alice/bob]\n  cutover app.service.web\n"
    );
    let dot = render(&project, runbook, GraphFormat::Dot);
    assert!(dot.starts_with("digraph \"rb\" {"), "{dot}");
    assert!(dot.contains("\"net\" -> \"app\";"), "{dot}");
    assert!(
        dot.contains("label=\"two [gate: manual, 1 approval]\";"),
        "{dot}"
    );
    let mermaid = render(&project, runbook, GraphFormat::Mermaid);
    assert!(mermaid.starts_with("flowchart LR\n"), "{mermaid}");
    assert!(mermaid.contains("  net --> app\n"), "{mermaid}");
    assert!(
        mermaid.contains("app --> cutover_app_service_web"),
        "{mermaid}"
    );
}
