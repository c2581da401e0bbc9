//! A gated canary stopping at each weight and rolled back whole, and a kill
//! during the checks after a cutover resumed to its rollback.

use super::*;

#[tokio::test]
async fn a_gated_canary_waits_at_each_weight_and_a_rollback_takes_it_back_whole() {
    let env = "svc-canary-gate";
    let strategy = "{ canary = [10, 50, 100], gate = \"manual\" }";
    let s = Svc::new(repo(env, 73, "ami-1e749f67", strategy));
    let (repo, state, proxy) = (&s.repo, &s.state, &s.proxy);
    let run = |args: &[&str]| s.run(args);
    let modify_listener = || s.modify_listener();
    let elsewhere = tempfile::tempdir().unwrap();
    // Approves the gate the run printed, as alice, and resumes as printed.
    let approve_and_resume = |text: &str, gate: &str| {
        let approve = printed_after(text, "Approve with:  ");
        assert!(approve.ends_with(&format!("--gate {gate}")), "{text}");
        let (code, out) = verbatim(elsewhere.path(), &format!("{approve} --as alice"));
        assert_eq!(code, Some(0), "{out}");
        verbatim(elsewhere.path(), printed_after(text, "then continue: "))
    };
    // The first colour takes all the traffic at once: there is none to share.
    let (code, text) = run(&["apply", "rb", "--auto-approve"]);
    assert_eq!(code, Some(0), "{text}");

    set_image(repo, "ami-1e749f67", "ami-2e749f68");
    proxy.reset_counts();
    let (code, mut text) = run(&["apply", "rb"]);
    assert_eq!(code, Some(3), "{text}");
    for (gate, share) in [("cutover", 10), ("cutover@50%", 50)] {
        let (code, next) = approve_and_resume(&text, gate);
        assert_eq!(code, Some(3), "stops at {share}%: {next}");
        assert!(
            next.contains(&format!("now {share}% → ")),
            "the next step is shown at the gate: {next}"
        );
        let mut now = colours(env).await;
        now.sort();
        assert_eq!(
            now,
            [
                ("blue".to_string(), 100 - share, 2),
                ("green".to_string(), share, 2)
            ]
        );
        assert_eq!(
            live(env).await,
            "blue",
            "blue stays live until green has it all"
        );
        text = next;
    }
    assert_eq!(
        modify_listener(),
        1 + 2,
        "green joins at 0, then one call per weight so far"
    );
    let (code, plan) = run(&["plan", "rb"]);
    assert_eq!(code, Some(0), "{plan}");
    assert!(
        plan.contains("green colour of app.service.web takes 50% of the traffic")
            && plan.contains("(gate before it: cutover@100%, manual, 1 approval)"),
        "{plan}"
    );
    let (code, text) = approve_and_resume(&text, "cutover@100%");
    assert_eq!(code, Some(0), "{text}");
    assert_eq!(
        modify_listener(),
        1 + 3,
        "joined at 0, then 10/90, 50/50, 100/0"
    );
    assert_eq!(live(env).await, "green");

    // A canary stopped at 10% goes back whole in one call: when its run is
    // rejected at the gate, and with `drctl rollback`.
    set_image(repo, "ami-2e749f68", "ami-3e749f69");
    let at_ten_percent = || {
        let (code, text) = run(&["apply", "rb"]);
        assert_eq!(code, Some(3), "{text}");
        let (code, text) = approve_and_resume(&text, "cutover");
        assert_eq!(code, Some(3), "{text}");
        assert!(text.contains("--gate cutover@50%"), "{text}");
        printed_after(&text, "or end it:     ").to_string()
    };
    let reject = at_ten_percent();
    proxy.reset_counts();
    let (code, out) = verbatim(elsewhere.path(), &reject);
    assert_eq!(code, Some(0), "{out}");
    assert!(
        out.contains("at the gate before `cutover@50%`")
            && out.contains("the canary of blue stops at 10%, all traffic back to green"),
        "{out}"
    );
    // The run sending it back records why: the rejection.
    assert!(
        journals(state.path())
            .iter()
            .any(|(_, j)| j.contains("tester rejected the canary at gate cutover@50%")),
        "no rollback run approved by the rejection"
    );
    assert_eq!(modify_listener(), 1);
    assert_eq!(share(env, "green").await, 100);

    at_ten_percent();
    proxy.reset_counts();
    let (code, out) = run(&["rollback", "rb", "app.service.web"]);
    assert_eq!(code, Some(0), "{out}");
    assert!(
        out.contains("the canary of blue stops at 10%, all traffic back to green"),
        "{out}"
    );
    assert_eq!(modify_listener(), 1);
    assert_eq!(live(env).await, "green");
    assert_eq!(share(env, "green").await, 100);

    // A canary gate that times out rejects the run, and the canary goes back.
    let timing_out = "gate = { manual = { timeout = \"1s\", on_timeout = \"reject\" } }";
    repo.edit("stacks/app.toml", |text| {
        text.replace("gate = \"manual\"", timing_out)
    });
    let resume = at_ten_percent().replace("reject", "resume");
    std::thread::sleep(Duration::from_millis(1500));
    proxy.reset_counts();
    let (code, out) = verbatim(elsewhere.path(), &resume);
    assert_eq!(code, Some(1), "{out}");
    assert!(
        out.contains("rejected by its timeout")
            && out.contains("the canary of blue stops at 10%, all traffic back to green"),
        "{out}"
    );
    assert_eq!(modify_listener(), 1);
    assert_eq!(share(env, "green").await, 100);

    let (code, text) = run(&["destroy", "rb", "--auto-approve"]);
    assert_eq!(code, Some(0), "{text}");
}

#[tokio::test]
async fn a_kill_during_the_checks_after_a_cutover_is_resumed_to_its_rollback() {
    let env = "svc-checks-kill";
    let s = Svc::new(repo(env, 74, "ami-1e749f67", "\"blue_green\""));
    let (repo, state, proxy) = (&s.repo, &s.state, &s.proxy);
    // Once `armed` exists, the check kills drctl (its parent) the first
    // time and fails after that.
    let check =
        "if [ -e armed ]; then if [ -e killed ]; then exit 1; fi; touch killed; kill -9 $PPID; fi";
    with_checks(
        repo,
        &format!("[{{ command = [\"sh\", \"-c\", \"{check}\"] }}]"),
    );
    let drctl = || s.drctl();
    let (code, text) = outcome(drctl().args(["apply", "rb", "--auto-approve"]));
    assert_eq!(code, Some(0), "{text}");
    // The resume of run `id`: exit 1, and traffic back on blue in one call.
    let resume_rolls_back_to_blue = |id: &str| {
        proxy.reset_counts();
        let (code, text) = outcome(drctl().args(["resume", id]));
        assert_eq!(code, Some(1), "{text}");
        assert!(text.contains("app.service.web is back on blue"), "{text}");
        assert_eq!(proxy.counts("elbv2:ModifyListener").calls(), 1);
        live(env)
    };

    set_image(repo, "ami-1e749f67", "ami-2e749f68");
    repo.write("armed", "");
    let out = drctl()
        .args(["apply", "rb", "--auto-approve"])
        .output()
        .unwrap();
    use std::os::unix::process::ExitStatusExt;
    assert_eq!(out.status.signal(), Some(9), "{out:?}");
    assert_eq!(
        live(env).await,
        "green",
        "killed after the cutover, in the checks"
    );
    let id = runs_by_start(state.path()).pop().unwrap();
    let (_, shown) = outcome(drctl().args(["runs", "show", &id]));
    assert!(
        !shown.contains("status: succeeded"),
        "its checks never finished: {shown}"
    );

    assert_eq!(resume_rolls_back_to_blue(&id).await, "blue");
    let (_, shown) = outcome(drctl().args(["runs", "show", &id]));
    assert!(shown.contains("status: failed"), "{shown}");
    let (code, text) = outcome(drctl().args(["resume", &id]));
    assert_eq!(code, Some(2), "{text}");
    assert!(text.contains("nothing to resume"), "{text}");

    // Killed once the checks failed, before the rollback: the resume rolls
    // back on what was recorded, without checking again (they would pass).
    set_image(repo, "ami-2e749f68", "ami-3e749f69");
    killed_after(drctl().args(["apply", "rb", "--auto-approve"]), "checked");
    assert_eq!(live(env).await, "green");
    std::fs::remove_file(repo.path("armed")).unwrap();
    let id = runs_by_start(state.path()).pop().unwrap();
    assert_eq!(resume_rolls_back_to_blue(&id).await, "blue");

    let (code, text) = outcome(drctl().args(["destroy", "rb", "--auto-approve"]));
    assert_eq!(code, Some(0), "{text}");
}
