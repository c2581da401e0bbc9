//! `drctl validate`'s table: broken input → the exact problem, with file,
//! line, column and key. Each case changes one file of the minimal valid repo.

use crate::support::{drctl, drctl_at, moto_endpoint, outcome, Repo, APP, NET, RUNBOOK};

/// A certificate's ARN as AWS writes it.
const CERTIFICATE: &str =
    "arn:aws:acm:us-east-1:123456789012:certificate/0f3c7e2a-5b1d-4c8e-9a6f-2d4b8c1e7f90";

/// The app stack with its listener (at line 9) speaking `protocol`, with
/// `certificate_arn` on line 12 when given.
fn listener(protocol: &str, certificate: Option<&str>) -> String {
    let certificate = certificate.map_or(String::new(), |c| format!("certificate_arn = \"{c}\"\n"));
    APP.replace(
        "protocol = \"HTTP\"\n",
        &format!("protocol = \"{protocol}\"\n{certificate}"),
    )
}

/// (what is broken, file, its new content, the problem expected).
/// The expected text must appear in one reported problem (which includes
/// `file:line:column: key: message` and the hint).
fn cases() -> Vec<(&'static str, &'static str, String, &'static str)> {
    let app_with = |extra: &str| format!("{APP}\n{extra}");
    let runbook = |s: &str| {
        RUNBOOK.replace(
            "stacks = [\"app\"]\n\n[[phases]]",
            &format!("stacks = [\"app\"]\n{s}\n\n[[phases]]"),
        )
    };
    vec![
        ("toml syntax", "stacks/net.toml", "[vars\ncidr = 1\n".into(),
            "stacks/net.toml:1:6: invalid TOML"),
        ("unknown top-level key", "stacks/app.toml", format!("descriptin = \"x\"\n{APP}"),
            "stacks/app.toml:1:1: descriptin: unknown key `descriptin`\n  hint: did you mean `description`?"),
        ("unknown attribute", "stacks/net.toml", NET.replace("cidr_block = \"${var.cidr}\"", "cidr_blok = \"${var.cidr}\""),
            "stacks/net.toml:7:1: resources.vpc.main.cidr_blok: unknown key `cidr_blok`\n  hint: did you mean `cidr_block`?"),
        ("missing required attribute", "stacks/net.toml", NET.replace("availability_zone = \"${env.region}a\"\n", ""),
            "stacks/net.toml:9:19: resources.subnet.a.availability_zone: subnet `a` is missing required attribute `availability_zone`: expected a string"),
        ("an image copied to a region that is no region", "stacks/app.toml",
            app_with("[resources.image.app]\nbase_image = \"ami-1\"\ninstance_type = \"t3.micro\"\nsubnet = \"subnet-1\"\ncopy_to_regions = [\"us-west\"]\n"),
            "stacks/app.toml:26:20: resources.image.app.copy_to_regions[0]: `us-west` is not an AWS region name\n  hint: write a region like \"us-west-2\""),
        ("an image's script path from a variable", "stacks/app.toml",
            app_with("[vars]\nscript = \"files/x.sh\"\n\n[resources.image.app]\nbase_image = \"ami-1\"\ninstance_type = \"t3.micro\"\nsubnet = \"subnet-1\"\nprovision = \"${var.script}\"\n"),
            "resources.image.app.provision: expected a literal path to a script"),
        ("unknown resource kind", "stacks/app.toml", app_with("[resources.bucket.logs]\nname = \"x\"\n"),
            "stacks/app.toml:22:12: resources.bucket: unknown resource kind `bucket`"),
        ("unknown kind is suggested", "stacks/app.toml", app_with("[resources.securitygroup.x]\nvpc = \"x\"\n"),
            "did you mean `security_group`?"),
        ("wrong type", "stacks/app.toml", APP.replace("port = 80\n\n[resources.service", "port = \"80\"\n\n[resources.service"),
            "stacks/app.toml:12:8: resources.listener.http.port: expected an integer from 1 to 65535, found a string"),
        ("integer out of range", "stacks/app.toml", APP.replace("count = 2", "count = -1"),
            "resources.service.web.count: expected an integer ≥ 0, found -1"),
        ("wrong enum value", "stacks/app.toml", APP.replace("protocol = \"HTTP\"", "protocol = \"HTTTP\""),
            "resources.listener.http.protocol: expected one of `HTTP`, `HTTPS`, `TCP`, `TLS`, `UDP`, `TCP_UDP`, found `HTTTP`\n  hint: did you mean `HTTP`?"),
        // AWS refuses these listeners; moto takes some of them.
        ("an HTTPS listener without a certificate", "stacks/app.toml", listener("HTTPS", None),
            "stacks/app.toml:11:12: resources.listener.http.certificate_arn: an HTTPS listener needs `certificate_arn`, the default certificate it presents (AWS refuses HTTPS without one)\n  \
             hint: add certificate_arn = \"arn:aws:acm:…\""),
        ("a TCP listener on an Application Load Balancer", "stacks/app.toml", listener("TCP", None),
            "stacks/app.toml:11:12: resources.listener.http.protocol: an Application Load Balancer takes HTTP or HTTPS listeners, not `TCP`\n  \
             hint: drctl's load balancers are Application Load Balancers (`TCP` is a Network Load Balancer's protocol)"),
        ("a UDP listener", "stacks/app.toml", listener("UDP", None),
            "stacks/app.toml:11:12: resources.listener.http.protocol: an Application Load Balancer takes HTTP or HTTPS listeners, not `UDP`"),
        ("a TCP_UDP listener", "stacks/app.toml", listener("TCP_UDP", None),
            "stacks/app.toml:11:12: resources.listener.http.protocol: an Application Load Balancer takes HTTP or HTTPS listeners, not `TCP_UDP`"),
        ("a TLS listener, even with a certificate", "stacks/app.toml", listener("TLS", Some(CERTIFICATE)),
            "stacks/app.toml:11:12: resources.listener.http.protocol: an Application Load Balancer takes HTTP or HTTPS listeners, not `TLS`"),
        ("a certificate on an HTTP listener", "stacks/app.toml", listener("HTTP", Some(CERTIFICATE)),
            "stacks/app.toml:12:19: resources.listener.http.certificate_arn: `certificate_arn` is for HTTPS listeners; this one is `HTTP`\n  \
             hint: remove certificate_arn, or write protocol = \"HTTPS\""),
        ("a certificate that is not a string", "stacks/app.toml", APP.replace("protocol = \"HTTP\"\n", "protocol = \"HTTPS\"\ncertificate_arn = 443\n"),
            "stacks/app.toml:12:19: resources.listener.http.certificate_arn: expected a string, found an integer"),
        ("unresolved resource reference", "stacks/net.toml", NET.replace("vpc = \"${vpc.main.id}\"", "vpc = \"${vpc.mian.id}\""),
            "stacks/net.toml:10:8: resources.subnet.a.vpc: unknown resource `vpc.mian` in `${vpc.mian.id}`\n  hint: did you mean `main`?"),
        ("unknown exported attribute", "stacks/net.toml", NET.replace("vpc_id = \"${vpc.main.id}\"", "vpc_id = \"${vpc.main.arn}\""),
            "outputs.vpc_id: vpc has no attribute `arn` in `${vpc.main.arn}`\n  hint: a vpc exports: id"),
        ("unresolved stack output", "stacks/app.toml", APP.replace("${stack.net.vpc_id}", "${stack.net.vpc}"),
            "stacks/app.toml:2:8: resources.security_group.web.vpc: stack `net` has no output `vpc`\n  hint: did you mean `vpc_id`?"),
        ("unknown stack in reference", "stacks/app.toml", APP.replace("${stack.net.vpc_id}", "${stack.nett.vpc_id}"),
            "unknown stack `nett` in `${stack.nett.vpc_id}`\n  hint: did you mean `net`?"),
        ("unresolved var", "stacks/net.toml", NET.replace("${var.cidr}", "${var.cdir}"),
            "stacks/net.toml:7:15: resources.vpc.main.cidr_block: unknown variable `cdir` in `${var.cdir}`\n  hint: did you mean `cidr`?"),
        ("malformed reference", "stacks/net.toml", NET.replace("${var.cidr}", "${var.cidr"),
            "stacks/net.toml:7:15: resources.vpc.main.cidr_block: unterminated reference"),
        ("reference of the wrong kind", "stacks/net.toml", NET.replace("vpc = \"${vpc.main.id}\"", "vpc = \"${subnet.a.id}\""),
            "resources.subnet.a.vpc: expected a vpc id, e.g. \"${vpc.NAME.id}\", but `${subnet.a.id}` refers to a subnet"),
        ("list inside a string", "stacks/app.toml", APP.replace("description = \"web\"", "description = \"web ${stack.net.subnet_ids}\""),
            "`${stack.net.subnet_ids}` is a list and cannot be part of a string"),
        ("list where a string is expected", "stacks/app.toml", APP.replace("${stack.net.vpc_id}", "${stack.net.subnet_ids}"),
            "resources.security_group.web.vpc: expected a vpc id, e.g. \"${vpc.NAME.id}\", but `${stack.net.subnet_ids}` is a list"),
        ("duplicate resource", "stacks/net.toml", format!("{NET}\n[resources.vpc.main]\ncidr_block = \"10.1.0.0/16\"\n"),
            "stacks/net.toml:18:16: invalid TOML: duplicate key"),
        ("duplicate phase", "runbooks/rb.toml", RUNBOOK.replace("name = \"switch\"", "name = \"two\""),
            "phases.two: duplicate phase name `two`"),
        ("duplicate stack in a list", "runbooks/rb.toml", RUNBOOK.replace("stacks = [\"app\"]\n\n", "stacks = [\"app\", \"app\"]\n\n"),
            "runbooks/rb.toml:3:18: stacks[1]: duplicate name `app`"),
        ("stack cycle", "stacks/net.toml", format!("depends_on = [\"app\"]\n{NET}"),
            // Reported at the `depends_on` entry, each edge with where it is written.
            "stacks/net.toml:1:15: depends_on: stack dependency cycle: net → app → net\n  \
             net → app (stacks/net.toml:1:15: depends_on)\n  \
             app → net (stacks/app.toml:2:8: resources.security_group.web.vpc = \"${stack.net.vpc_id}\")\n  \
             hint: stacks are applied"),
        ("stack depends on itself", "stacks/net.toml", format!("depends_on = [\"net\"]\n{NET}"),
            "stacks/net.toml:1:15: depends_on: a stack cannot depend on itself"),
        ("resource cycle", "stacks/app.toml", app_with(concat!(
            "[resources.security_group.a]\nvpc = \"${stack.net.vpc_id}\"\ndescription = \"a\"\n",
            "ingress = [{ protocol = \"tcp\", port = 1, security_group = \"${security_group.b.id}\" }]\n\n",
            "[resources.security_group.b]\nvpc = \"${stack.net.vpc_id}\"\ndescription = \"b\"\n",
            "ingress = [{ protocol = \"tcp\", port = 1, security_group = \"${security_group.a.id}\" }]\n")),
            "stacks/app.toml:22:27: resources.security_group.a: resource reference cycle: security_group.a → security_group.b → security_group.a"),
        ("phase before its dependency", "runbooks/rb.toml", RUNBOOK.replace("stacks = [\"net\"]", "stacks = [\"APP\"]").replace("stacks = [\"app\"]\ngate", "stacks = [\"net\"]\ngate").replace("[\"APP\"]", "[\"app\"]"),
            "runbooks/rb.toml:7:11: phases.one.stacks: phase `one` applies `app` before its dependency `net` (phase `two`)"),
        ("stack in no phase", "runbooks/rb.toml", RUNBOOK.replace("stacks = [\"net\"]", "stacks = []"),
            "phases: stack `net` is in no phase"),
        ("stack in two phases", "runbooks/rb.toml", RUNBOOK.replace("stacks = [\"app\"]\ngate", "stacks = [\"app\", \"net\"]\ngate"),
            "phases.two.stacks: stack `net` is already applied in phase `one`"),
        ("phase stack outside the runbook", "runbooks/rb.toml", format!("{RUNBOOK}\n[[phases]]\nname = \"x\"\nstacks = [\"nett\"]\n"),
            "phases.x.stacks: unknown stack `nett`\n  hint: did you mean `net`?"),
        ("invalid CIDR literal", "stacks/net.toml", NET.replace("10.0.1.0/24", "10.0.1.0/33"),
            "stacks/net.toml:11:14: resources.subnet.a.cidr_block: `10.0.1.0/33` is not a valid IPv4 CIDR block"),
        ("CIDR with host bits", "stacks/net.toml", NET.replace("10.0.1.0/24", "10.0.1.5/24"),
            "`10.0.1.5/24` has host bits set\n  hint: did you mean \"10.0.1.0/24\"?"),
        ("invalid CIDR in a var", "stacks/net.toml", NET.replace("10.0.0.0/16", "10.0.0.0/8"),
            "stacks/net.toml:4:1: vars.cidr: `10.0.0.0/8`: AWS accepts VPC and subnet blocks from /16 to /28 (used as resources.vpc.main.cidr_block)"),
        ("invalid CIDR in a runbook var", "runbooks/rb.toml", runbook("\n[vars]\ncidr = \"banana\""),
            "runbooks/rb.toml:6:1: vars.cidr: `banana` is not a valid IPv4 CIDR block (used as resources.vpc.main.cidr_block in stack `net`)"),
        ("runbook var no stack declares", "runbooks/rb.toml", runbook("\n[vars]\ncider = \"10.1.0.0/16\""),
            "vars.cider: no stack of this runbook declares variable `cider`\n  hint: did you mean `cidr`?"),
        ("runbook var of the wrong type", "runbooks/rb.toml", runbook("\n[vars]\ncidr = 16"),
            "vars.cidr: expected a string (the type of `cidr` in stack `net`), found an integer"),
        ("invalid cron", "runbooks/rb.toml", runbook("schedule = \"0 4 * * FUNDAY\""),
            "runbooks/rb.toml:4:12: schedule: invalid cron expression `0 4 * * FUNDAY`"),
        ("invalid timezone", "runbooks/rb.toml", runbook("timezone = \"Mars/Olympus\""),
            "runbooks/rb.toml:4:12: timezone: unknown time zone `Mars/Olympus`"),
        ("invalid duration", "runbooks/rb.toml", runbook("rto_target = \"half an hour\""),
            "runbooks/rb.toml:4:14: rto_target: invalid duration `half an hour`"),
        ("invalid gate timeout", "runbooks/rb.toml", RUNBOOK.replace("approvals = 2,", "approvals = 2, timeout = \"4 fortnights\","),
            "phases.switch.gate.manual.timeout: invalid duration `4 fortnights`"),
        ("unknown gate", "runbooks/rb.toml", RUNBOOK.replace("gate = \"manual\"", "gate = \"sometimes\""),
            "phases.two.gate: unknown gate `sometimes`"),
        ("more approvals than approvers", "runbooks/rb.toml", RUNBOOK.replace("approvals = 2", "approvals = 3"),
            "phases.switch.gate.manual.approvals: 3 approvals needed but only 2 approvers are listed"),
        ("unknown cutover service", "runbooks/rb.toml", RUNBOOK.replace("app.service.web", "app.service.api"),
            "phases.switch.cutover: stack `app` has no service `api`"),
        ("malformed cutover", "runbooks/rb.toml", RUNBOOK.replace("app.service.web", "app.web"),
            "`app.web` does not name a service"),
        ("unknown root stack", "runbooks/rb.toml", RUNBOOK.replace("stacks = [\"app\"]\n\n", "stacks = [\"ap\"]\n\n"),
            "runbooks/rb.toml:3:11: stacks: unknown stack `ap`\n  hint: did you mean `app`?"),
        ("missing environment", "runbooks/rb.toml", RUNBOOK.replace("environment = \"test-env\"\n", ""),
            "environment: missing required key `environment`: expected a string"),
        ("invalid region", "runbooks/rb.toml", RUNBOOK.replace("us-east-1", "us-east"),
            "region: `us-east` is not an AWS region name"),
        ("two runbooks on one environment", "runbooks/other.toml", RUNBOOK.into(),
            "runbooks/rb.toml:1:15: environment: environment `test-env` in us-east-1 is already claimed by runbook runbooks/other.toml\n  hint: each runbook deletes"),
        ("unknown drill key", "runbooks/rb.toml", format!("{RUNBOOK}\n[drill]\nteardown = \"allways\"\n"),
            "drill.teardown: expected `always`, `on_success` or `never`, found `allways`\n  hint: did you mean `always`?"),
        ("notify webhook not a URL", "runbooks/rb.toml", format!("{RUNBOOK}\n[notify]\nwebhooks = [\"hooks.example/x\"]\n"),
            "notify.webhooks[0]: expected an http:// or https:// URL, found `hooks.example/x`"),
        ("security group rule without a port", "stacks/app.toml", APP.replace("port = 80, cidr", "cidr"),
            "resources.security_group.web.ingress[0]: a rule needs `port`, or both `from_port` and `to_port`"),
        ("canary steps", "stacks/app.toml", format!("{APP}strategy = {{ canary = [50, 10] }}\n"),
            "resources.service.web.strategy.canary: canary steps [50, 10] must increase and end at 100"),
        ("a canary gate nobody may pass", "stacks/app.toml",
            format!("{APP}strategy = {{ canary = [10, 100], gate = {{ manual = {{ approvals = 2, approvers = [\"alice\"] }} }} }}\n"),
            "resources.service.web.strategy.gate.manual.approvals: 2 approvals needed but only 1 approver(s) listed"),
        ("an unknown canary gate", "stacks/app.toml", format!("{APP}strategy = {{ canary = [10, 100], gate = \"sometimes\" }}\n"),
            "resources.service.web.strategy.gate: expected one of `auto`, `manual`, found `sometimes`"),
        ("missing provision file", "stacks/app.toml", app_with("[resources.image.app]\nbase_image = \"ami-1e749f67\"\ninstance_type = \"t3.micro\"\nsubnet = \"subnet-1\"\nprovision = \"files/nope.sh\"\n"),
            "resources.image.app.provision: file `files/nope.sh` not found"),
        ("reserved tag", "stacks/app.toml", format!("{APP}tags = {{ \"drctl:env\" = \"x\" }}\n"),
            "tag `drctl:env` is reserved"),
    ]
}

#[test]
fn each_broken_input_reports_its_problem() {
    let mut failures = Vec::new();
    for (what, file, content, expected) in cases() {
        let repo = Repo::with(&[(file, &content)]);
        let problems = repo.problems();
        if !problems.iter().any(|p| p.contains(expected)) {
            failures.push(format!(
                "{what}: expected a problem containing\n    {expected:?}\n  got\n    {problems:#?}"
            ));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
}

#[test]
fn a_gated_canary_needs_a_cutover_phase_after_its_stack() {
    let stack = format!("{APP}strategy = {{ canary = [10, 50, 100], gate = \"manual\" }}\n");
    assert_eq!(
        Repo::with(&[("stacks/app.toml", &stack)]).problems(),
        Vec::<String>::new()
    );
    // Cut over in the phase that applies its stack: the traffic would move
    // as soon as the colour is healthy, with no gate between the weights.
    let same_phase = RUNBOOK.replace(
        "stacks = [\"app\"]\ngate = \"manual\"",
        "stacks = [\"app\"]\ncutover = [\"app.service.web\"]\ngate = \"manual\"",
    );
    let same_phase = same_phase.replace(
        "[[phases]]\nname = \"switch\"\ncutover = [\"app.service.web\"]\n",
        "[[phases]]\nname = \"switch\"\n",
    );
    let problems = Repo::with(&[
        ("stacks/app.toml", &stack),
        ("runbooks/rb.toml", &same_phase),
    ])
    .problems();
    assert!(
        problems.iter().any(|p| p.contains(
            "resources.service.web.strategy.gate: runbook `rb` has no cutover phase for `app.service.web` after the one applying its stack"
        ) && p.contains("hint: add a phase after the one applying stack `app`")),
        "{problems:#?}"
    );
}

#[test]
fn the_minimal_repo_and_the_examples_are_valid() {
    assert_eq!(Repo::with(&[]).problems(), Vec::<String>::new());
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let (project, diags) = drctl::load::validate::load_project(root, &[]);
    assert!(diags.is_empty(), "{diags}");
    assert!(!project.runbooks.is_empty());
    assert!(["network", "app-image", "web"]
        .iter()
        .all(|s| project.stacks.contains_key(*s)));
}

#[test]
fn a_stack_that_is_not_toml_does_not_cascade_into_reference_errors() {
    let repo = Repo::with(&[("stacks/net.toml", "[vars\n")]);
    let problems = repo.problems();
    assert_eq!(problems.len(), 1, "{problems:#?}");
    assert!(
        problems[0].starts_with("stacks/net.toml:1:6: invalid TOML"),
        "{problems:#?}"
    );
}

#[test]
fn every_problem_is_reported_at_once() {
    let repo = Repo::with(&[
        (
            "stacks/net.toml",
            &NET.replace("${var.cidr}", "${var.cdir}")
                .replace("10.0.1.0/24", "10.0.1.0/99"),
        ),
        (
            "runbooks/rb.toml",
            &RUNBOOK.replace("gate = \"manual\"", "gate = \"sometimes\""),
        ),
    ]);
    let problems = repo.problems();
    assert_eq!(problems.len(), 3, "{problems:#?}");
}

/// A cycle through three files: every edge is listed with the file, line
/// and key that creates it, and the report stands at the `depends_on` edge.
#[test]
fn a_stack_cycle_lists_each_edge_where_it_is_written() {
    let repo = Repo::with(&[
        (
            "stacks/net.toml",
            &NET.replace("[outputs]\n", "[outputs]\nzone = \"${stack.dns.zone}\"\n"),
        ),
        (
            "stacks/dns.toml",
            "depends_on = [\"app\"]\n\n[outputs]\nzone = \"example.internal\"\n",
        ),
    ]);
    let cycles: Vec<String> = repo
        .problems()
        .into_iter()
        .filter(|p| p.contains("cycle"))
        .collect();
    assert_eq!(
        cycles,
        [concat!(
            "stacks/dns.toml:1:15: depends_on: stack dependency cycle: dns → app → net → dns\n",
            "  dns → app (stacks/dns.toml:1:15: depends_on)\n",
            "  app → net (stacks/app.toml:2:8: resources.security_group.web.vpc = \"${stack.net.vpc_id}\")\n",
            "  net → dns (stacks/net.toml:15:9: outputs.zone = \"${stack.dns.zone}\")\n",
            "  hint: stacks are applied in dependency order; break the cycle by dropping one of these edges, or by moving what they share into a stack of its own"
        )]
    );
}

/// The app stack with a target group and a URL output for drill checks to name.
fn app_with_checkables() -> String {
    format!(
        "{APP}\n[resources.target_group.blue]\nvpc = \"${{stack.net.vpc_id}}\"\nprotocol = \"HTTP\"\nport = 80\n\n\
         [outputs]\nurl = \"http://${{load_balancer.lb.dns_name}}/\"\n"
    )
}

/// `drctl validate` in `repo`.
fn validate(repo: &Repo) -> std::process::Output {
    drctl()
        .current_dir(repo.root())
        .arg("validate")
        .output()
        .expect("run drctl")
}

#[test]
fn a_runbook_with_each_kind_of_drill_check_is_valid() {
    let runbook = format!(
        "{RUNBOOK}\n[drill]\nchecks = [\n  \
         {{ target_health = \"app.service.web\" }},\n  \
         {{ target_health = \"app.target_group.blue\" }},\n  \
         {{ listener_forwards_to = {{ listener = \"app.listener.http\", target = \"app.service.web\" }} }},\n  \
         {{ http = {{ url = \"${{stack.app.url}}health\", status = 200, timeout = \"30s\" }} }},\n  \
         {{ command = [\"./checks/smoke.sh\", \"--quick\"] }},\n  \
         {{ command = {{ run = [\"true\"], timeout = \"1m\" }} }},\n]\n"
    );
    let repo = Repo::with(&[
        ("stacks/app.toml", &app_with_checkables()),
        ("runbooks/rb.toml", &runbook),
        ("checks/smoke.sh", "#!/bin/sh\nexit 0\n"),
    ]);
    let out = validate(&repo);
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stdout}{stderr}");
    assert!(stdout.contains("ok: runbook rb"), "{stdout}");
}

#[test]
fn broken_drill_checks_exit_2_naming_file_line_and_key() {
    // The checks start on the runbook's line 21.
    let runbook = format!(
        "{RUNBOOK}\n[drill]\nchecks = [\n  \
         {{ target_health = \"app.target_group.web\" }},\n  \
         {{ listener_forwards_to = {{ listener = \"app.listener.http\", target = \"net.service.web\" }} }},\n  \
         {{ http = {{ url = \"ftp://${{stack.app.url}}\", status = 200 }} }},\n  \
         {{ http = {{ url = \"${{stack.app.url}}health\", status = 99 }} }},\n  \
         {{ command = [\"./checks/smoke.sh\"] }},\n  \
         {{ target_health = \"app.service.web\", command = [\"true\"] }},\n]\n"
    );
    let repo = Repo::with(&[
        ("stacks/app.toml", &app_with_checkables()),
        ("runbooks/rb.toml", &runbook),
    ]);
    let out = validate(&repo);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    for expected in [
        "runbooks/rb.toml:21:21: drill.checks[0].target_health: stack `app` has no target_group `web`\n  hint: stack `app` has `security_group.web` and `service.web`",
        "runbooks/rb.toml:22:71: drill.checks[1].listener_forwards_to.target: stack `net` has no service `web`\n  hint: stack `net` declares no service",
        "runbooks/rb.toml:23:20: drill.checks[2].http.url: `ftp://${stack.app.url}` is not an http:// or https:// URL",
        "runbooks/rb.toml:24:55: drill.checks[3].http.status: expected an integer from 100 to 599, found 99",
        "runbooks/rb.toml:25:16: drill.checks[4].command: command `./checks/smoke.sh` not found: no file checks/smoke.sh",
        "runbooks/rb.toml:26:3: drill.checks[5]: a check has exactly one kind, found `target_health` and `command`",
        "6 problems found",
    ] {
        assert!(stderr.contains(expected), "expected {expected:?} in\n{stderr}");
    }
}

/// Listeners AWS refuses are refused at load time: exit 2 with file, line
/// and key, and not one call to AWS.
#[test]
fn refused_listeners_exit_2_before_any_aws_call() {
    // A second listener from line 22, its protocol on line 24.
    let stack = format!(
        "{}\n[resources.listener.raw]\nload_balancer = \"${{load_balancer.lb.arn}}\"\nprotocol = \"TCP\"\nport = 8080\n",
        listener("HTTPS", None)
    );
    let repo = Repo::with(&[("stacks/app.toml", &stack)]);
    let state = tempfile::tempdir().expect("state dir");
    // Nothing listens on port 9 (discard): a plan that called AWS would get
    // no answer there (and retry for minutes), not exit 2 with the stack's
    // problems.
    let (code, text) =
        outcome(drctl_at(repo.root(), state.path(), "http://127.0.0.1:9").args(["plan", "rb"]));
    assert_eq!(code, Some(2), "{text}");
    for expected in [
        "stacks/app.toml:11:12: resources.listener.http.certificate_arn: an HTTPS listener needs `certificate_arn`",
        "stacks/app.toml:24:12: resources.listener.raw.protocol: an Application Load Balancer takes HTTP or HTTPS listeners, not `TCP`",
        "2 problems found",
    ] {
        assert!(text.contains(expected), "expected {expected:?} in\n{text}");
    }
}

#[test]
fn an_https_listener_with_a_certificate_and_a_tcp_target_group_are_valid() {
    let written = format!(
        "{}\n[resources.target_group.raw]\nvpc = \"${{stack.net.vpc_id}}\"\nprotocol = \"TCP\"\nport = 8080\n",
        listener("HTTPS", Some(CERTIFICATE))
    );
    let from_a_var = format!(
        "{}\n[vars]\ncertificate = \"{CERTIFICATE}\"\n",
        listener("HTTPS", Some("${var.certificate}"))
    );
    for stack in [written, from_a_var] {
        assert_eq!(
            Repo::with(&[("stacks/app.toml", &stack)]).problems(),
            Vec::<String>::new(),
            "{stack}"
        );
    }
}

/// The certificate goes to CreateListener and is read back as written: no
/// drift, and another certificate is an update in place from the one AWS has.
#[test]
fn an_https_listener_plans_applies_and_reads_back_its_certificate() {
    // moto's CreateListener insists that an ACM certificate exists (drctl
    // has no ACM client to import one) but takes an IAM certificate's ARN.
    const FIRST: &str = "arn:aws:iam::123456789012:server-certificate/drctl-it-https-a";
    const SECOND: &str = "arn:aws:iam::123456789012:server-certificate/drctl-it-https-b";
    let vars = "cidr = \"10.78.0.0/16\"\nsubnet_a_cidr = \"10.78.1.0/24\"\nsubnet_b_cidr = \"10.78.2.0/24\"";
    let repo = Repo::fleet_rehearsal("it-https", "us-west-2", vars, "\"auto\"");
    repo.edit("stacks/fleet.toml", |text| {
        text.replace(
            "protocol = \"HTTP\"\nport = 80\ndefault_target_group",
            &format!("protocol = \"HTTPS\"\nport = 443\ncertificate_arn = \"{FIRST}\"\ndefault_target_group"),
        )
    });
    let state = tempfile::tempdir().expect("state dir");
    let run =
        |args: &[&str]| outcome(drctl_at(repo.root(), state.path(), moto_endpoint()).args(args));

    let (code, text) = run(&["validate"]);
    assert_eq!(code, Some(0), "{text}");
    let (code, text) = run(&["plan", "rb", "--detailed-exitcode"]);
    assert_eq!(code, Some(4), "{text}");
    assert!(
        text.contains("+ listener.http")
            && text.contains(&format!("certificate_arn      = \"{FIRST}\"")),
        "{text}"
    );
    let (code, text) = run(&["apply", "rb", "--auto-approve"]);
    assert_eq!(code, Some(0), "{text}");
    let (code, text) = run(&["plan", "rb", "--detailed-exitcode"]);
    assert_eq!(code, Some(0), "no drift once applied: {text}");

    // The change shows the certificate read back from AWS (a spec-hash
    // difference alone would show no `before`), and updates in place.
    repo.edit("stacks/fleet.toml", |text| text.replace(FIRST, SECOND));
    let (code, text) = run(&["plan", "rb", "--detailed-exitcode"]);
    assert_eq!(code, Some(4), "{text}");
    assert!(
        text.contains(&format!("certificate_arn : \"{FIRST}\" → \"{SECOND}\""))
            && text.contains("Plan: 0 to add, 1 to change, 0 to replace, 0 to destroy."),
        "{text}"
    );

    let (code, text) = run(&["destroy", "rb", "--auto-approve"]);
    assert_eq!(code, Some(0), "{text}");
}
