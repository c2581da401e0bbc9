use serde_json::json;

use super::*;
use crate::model::ResourceKind;

/// A journal written one event a line, `<at> <event> <args>`, in the
/// journal's own words (`create`, `approve`); a line `<start>..<end>
/// <address> [<dependency>,…]` is a create and its success.
fn journal(script: &str) -> Vec<Event> {
    let addr = |text: &str| {
        let p: Vec<&str> = text.split('.').collect();
        Address::new(p[0], ResourceKind::from_name(p[1]).expect("a kind"), p[2])
    };
    let mut events = Vec::new();
    for line in script.lines().map(str::trim).filter(|l| !l.is_empty()) {
        let w: Vec<&str> = line.split_whitespace().collect();
        let number = |text: &str| text.parse::<Millis>().expect("a number");
        if let Some((start, end)) = w[0].split_once("..") {
            let deps: Vec<Address> = w
                .get(2)
                .map_or(vec![], |d| d.split(',').map(addr).collect());
            events.push(json!({"event": "intent", "at": number(start), "address": addr(w[1]), "action": "create", "depends_on": deps}));
            events.push(json!({"event": "outcome", "at": number(end), "address": addr(w[1]), "action": "create", "ok": true, "id": "id", "error": null}));
            continue;
        }
        let at = number(w[0]);
        events.push(match w[1] {
            "start" => json!({"event": "phase_started", "at": at, "phase": w[2]}),
            "finish" => json!({"event": "phase_finished", "at": at, "phase": w[2], "failed": number(w[3])}),
            "paused" => json!({"event": "paused", "at": at, "phase": w[2]}),
            "interrupted" => json!({"event": "interrupted", "at": at}),
            "resumed" => json!({"event": "resumed", "at": at, "by": "bob", "pid": 7}),
            "intent" => json!({"event": "intent", "at": at, "address": addr(w[2]), "action": w[3], "phase": w.get(4)}),
            "ok" => json!({"event": "outcome", "at": at, "address": addr(w[2]), "action": w[3], "ok": true, "id": w[4], "error": null}),
            "fail" => json!({"event": "outcome", "at": at, "address": addr(w[2]), "action": w[3], "ok": false, "id": "", "error": w[4..].join(" ")}),
            "decide" => json!({"event": "gate_decision", "at": at, "phase": w[2], "decision": w[3], "by": "alice", "reason": "looked | fine", "waited_ms": number(w[4])}),
            other => panic!("no event `{other}` in the test script"),
        });
    }
    events
        .into_iter()
        .map(|e| serde_json::from_value(e).expect("an event"))
        .collect()
}

fn rows<T>(items: &[T], row: impl Fn(&T) -> String) -> Vec<String> {
    items.iter().map(row).collect()
}

#[test]
fn a_phase_counts_from_its_start_to_its_end_without_its_gate_wait() {
    let events = journal(
        "1000 paused net
         61000 decide net approve 60000
         62000 start net
         62100..70000 net.vpc.main
         70100..75000 net.subnet.a net.vpc.main
         62200..64000 base.security_group.web
         75100 intent net.route_table.public update
         76000 fail net.route_table.public update boom
         77000 finish net 1",
    );
    let [net] = &phases(&events)[..] else {
        panic!("one phase")
    };
    assert_eq!((net.name.as_str(), net.failed), ("net", 1));
    assert_eq!((net.started_at, net.ended_at), (62_000, 77_000));
    assert_eq!(net.duration_ms, 15_000, "the gate's minute is not in it");
    let stacks = rows(&net.stacks, |s| format!("{} {}", s.name, s.duration_ms));
    assert_eq!(stacks, ["net 13900", "base 1800"]);
    assert_eq!(
        rows(&net.steps, |s| format!("{s:?}")),
        [
            "StepTiming { address: \"net.vpc.main\", action: \"create\", kind: Some(\"vpc\"), started_at: 62100, duration_ms: 7900, ok: true, error: None }",
            "StepTiming { address: \"base.security_group.web\", action: \"create\", kind: Some(\"security_group\"), started_at: 62200, duration_ms: 1800, ok: true, error: None }",
            "StepTiming { address: \"net.subnet.a\", action: \"create\", kind: Some(\"subnet\"), started_at: 70100, duration_ms: 4900, ok: true, error: None }",
            "StepTiming { address: \"net.route_table.public\", action: \"update\", kind: Some(\"route_table:update\"), started_at: 75100, duration_ms: 900, ok: false, error: Some(\"boom\") }",
        ]
    );
}

#[test]
fn a_resumed_phase_counts_its_attempts_and_the_last_completed_pair_of_each_step() {
    // Killed (kill -9: no outcome, no Interrupted) during the subnet's
    // call; resumed an hour later, failed, stopped by Ctrl-C after the
    // phase finished, resumed again.
    let events = journal(
        "10000 start app
         10000..12000 app.vpc.main
         13000 intent app.subnet.a create
         3600000 resumed
         3600500 decide app auto 0
         3601000 start app
         3601000..3604000 app.subnet.a app.vpc.main
         3604000 intent app.instances.web create
         3605000 fail app.instances.web create quota
         3606000 finish app 1
         3606500 interrupted
         7200000 resumed
         7200000 start app
         7200000..7230000 app.instances.web app.subnet.a
         7231000 finish app 0",
    );
    let [app] = &phases(&events)[..] else {
        panic!("one phase however often it started")
    };
    assert_eq!((app.started_at, app.ended_at), (10_000, 7_231_000));
    // 10s→13s (the last event the killed process wrote), then 5s, then 31s.
    assert_eq!(app.duration_ms, 3_000 + 5_000 + 31_000);
    assert_eq!(app.failed, 0, "the last attempt's count");
    assert_eq!(
        rows(&app.steps, |s| format!("{s:?}")),
        [
            "StepTiming { address: \"app.vpc.main\", action: \"create\", kind: Some(\"vpc\"), started_at: 10000, duration_ms: 2000, ok: true, error: None }",
            "StepTiming { address: \"app.subnet.a\", action: \"create\", kind: Some(\"subnet\"), started_at: 3601000, duration_ms: 3000, ok: true, error: None }",
            "StepTiming { address: \"app.instances.web\", action: \"create\", kind: Some(\"instances\"), started_at: 7200000, duration_ms: 30000, ok: true, error: None }",
        ]
    );
}

#[test]
fn a_phase_whose_process_stopped_in_it_ends_at_its_last_event_and_counts_failures() {
    let events = journal(
        "0 start one
         100 intent s.vpc.main create
         900 fail s.vpc.main create denied
         1000 intent s.subnet.a create",
    );
    let one = &phases(&events)[0];
    assert_eq!(
        (one.ended_at, one.duration_ms, one.failed),
        (1_000, 1_000, 1)
    );
    assert_eq!(one.steps.len(), 1, "a call with no outcome is no step");
}

#[test]
fn gates_are_recorded_with_their_decision_in_the_journal_spelling() {
    let events = journal(
        "5 decide compute approve 4
         6 start compute
         9 decide cutover timeout 3",
    );
    let gates = rows(&gates(&events), |g| format!("{g:?}"));
    assert_eq!(
        gates,
        [
            "GateRecord { phase: \"compute\", decision: \"approve\", by: \"alice\", reason: Some(\"looked | fine\"), at: 5, waited_ms: 4 }",
            "GateRecord { phase: \"cutover\", decision: \"timeout\", by: \"alice\", reason: Some(\"looked | fine\"), at: 9, waited_ms: 3 }",
        ]
    );
}

#[test]
fn the_critical_path_is_the_longest_chain_of_dependent_steps() {
    // `n.route_table.main` was unchanged: not journaled, no link.
    let script = |instances_after: &str| {
        journal(&format!(
            "0..10 n.vpc.main
             0..40 a.image.app
             10..15 n.subnet.a n.vpc.main
             10..12 n.security_group.web n.vpc.main
             40..70 w.instances.web n.subnet.a,n.security_group.web,n.route_table.main{instances_after}"
        ))
    };
    let path = critical_path(&script(",a.image.app"));
    // Through the image: 40 + 30 beats vpc, subnet, instances: 10 + 5 + 30.
    assert_eq!((path.bound_ms, path.rto_ratio), (70, None));
    assert_eq!(path.steps, ["a.image.app", "w.instances.web"]);
    let path = critical_path(&script(""));
    assert_eq!(path.bound_ms, 45);
    assert_eq!(
        path.steps,
        ["n.vpc.main", "n.subnet.a", "w.instances.web"],
        "first step first"
    );
}

#[test]
fn critical_path_ties_break_by_address_whatever_the_journal_order() {
    let diamond = |first: &str, second: &str| {
        journal(&format!(
            "0..10 n.vpc.main
             10..15 {first} n.vpc.main
             10..15 {second} n.vpc.main
             15..20 n.route_table.main {first},{second}"
        ))
    };
    let one = critical_path(&diamond("n.subnet.b", "n.subnet.a"));
    assert_eq!(one, critical_path(&diamond("n.subnet.a", "n.subnet.b")));
    assert_eq!(one.bound_ms, 20);
    assert_eq!(
        one.steps,
        ["n.vpc.main", "n.subnet.a", "n.route_table.main"]
    );
}

#[test]
fn the_critical_path_links_a_dependency_only_once_it_had_finished() {
    // The vpc's update in phase two began with the subnet, so the subnet
    // did not wait for it; the update in phase three follows the one in
    // phase two, which follows the create.
    let events = journal(
        "0 start one
         0..10 n.vpc.main
         10 finish one 0
         10 start two
         11 intent n.vpc.main update
         11..20 n.subnet.a n.vpc.main
         50 ok n.vpc.main update vpc-1
         50 finish two 0
         50 start three
         50 intent n.vpc.main update
         51 ok n.vpc.main update vpc-1",
    );
    let path = critical_path(&events);
    assert_eq!(path.steps, ["n.vpc.main", "n.vpc.main", "n.vpc.main"]);
    assert_eq!(path.bound_ms, 10 + 39 + 1);
}

#[test]
fn resources_created_are_the_last_successful_create_or_replace_of_each_address() {
    let events = journal(
        "1 ok n.vpc.main create vpc-1
         2 fail n.subnet.a create no
         3 ok n.security_group.web update sg-1
         4 ok w.instances.web create i-1
         5 ok w.instances.web replace i-2
         6 ok n.vpc.main delete vpc-1",
    );
    let created = rows(&resources_created(&events), |c| {
        format!("{} {}", c.address, c.id)
    });
    assert_eq!(created, ["n.vpc.main vpc-1", "w.instances.web i-2"]);
}

#[test]
fn an_empty_journal_has_no_phases_and_no_path_and_no_rto_ratio() {
    assert!(phases(&[]).is_empty() && gates(&[]).is_empty());
    assert!(resources_created(&[]).is_empty());
    let path = critical_path(&[]);
    assert_eq!((path.bound_ms, path.steps.len()), (0, 0));
    assert_eq!(rto_ratio(90_000, path.bound_ms), None);
    assert_eq!(rto_ratio(90_000, 60_000), Some(1.5));
}

#[test]
fn pipelined_phases_overlap_and_each_step_counts_in_its_own_phase() {
    // `second` starts while `first` runs; its step is begun after `second`
    // started, but a later step of `first` is still `first`'s.
    let events = journal(
        "1000 start first
         1000 intent net.vpc.main create first
         1000 start second
         1000 intent side.vpc.main create second
         3000 ok side.vpc.main create vpc-2
         3000 finish second 0
         5000 ok net.vpc.main create vpc-1
         5000 intent net.subnet.a create first
         9000 ok net.subnet.a create subnet-1
         9000 finish first 0",
    );
    let timings = phases(&events);
    let shown = rows(&timings, |p| {
        let steps = rows(&p.steps, |s| s.address.clone()).join(",");
        format!("{} {}..{} {}", p.name, p.started_at, p.ended_at, steps)
    });
    assert_eq!(
        shown,
        [
            "first 1000..9000 net.vpc.main,net.subnet.a",
            "second 1000..3000 side.vpc.main",
        ]
    );
}

#[test]
fn the_phase_order_bound_sums_each_phases_own_longest_chain() {
    // one: vpc 10 → subnet 5; group 2 (vpc). two: instances 30 (subnet),
    // image 40 (nothing). Cleanup: an old group's deletion, 3.
    let events = journal(
        "0 start one
         0..10 n.vpc.main
         10..15 n.subnet.a n.vpc.main
         10..12 n.security_group.web n.vpc.main
         15 finish one 0
         15 start two
         15..45 w.instances.web n.subnet.a
         15..55 a.image.app
         55 finish two 0
         56 intent n.security_group.old delete
         59 ok n.security_group.old delete sg-0",
    );
    let bound = phase_order(&events);
    let phases = rows(&bound.phases, |p| {
        format!("{} {} {}", p.name, p.bound_ms, p.steps.join(" → "))
    });
    assert_eq!(
        phases,
        [
            "one 15 n.vpc.main → n.subnet.a",
            "two 40 a.image.app",
            "cleanup 3 n.security_group.old",
        ]
    );
    assert_eq!((bound.bound_ms, bound.rto_ratio), (15 + 40 + 3, None));
    // The dependency graph's bound ignores the phases: vpc, subnet,
    // instances (10 + 5 + 30), the image beside them.
    let path = critical_path(&events);
    assert_eq!(path.bound_ms, 45);
    assert!(path.bound_ms <= bound.bound_ms);
    assert_eq!(phase_order(&[]).phases.len(), 0);
}
