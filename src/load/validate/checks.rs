//! What a runbook names outside its stacks: the services it cuts over and
//! what its drill checks look at. Each must exist, in a stack the runbook
//! builds; otherwise a drill would find out only after the whole rebuild.

use std::collections::BTreeSet;
use std::fmt::Display;

use crate::diag::{suggest, Diagnostics, Pos};
use crate::kinds::schema::ValueType;
use crate::load::decode::is_http_start;
use crate::model::expr::{ExprKind, Part, RefTarget, Template};
use crate::model::{Check, Project, ResourceRef, Runbook, Stack};

use super::stack::{missing_output, output_type};
use super::under;

/// What a runbook may name: the project's stacks that it builds.
pub(super) struct Scope<'a> {
    pub(super) project: &'a Project,
    pub(super) runbook: &'a Runbook,
    /// The runbook's stacks and their dependencies.
    pub(super) closure: &'a BTreeSet<String>,
}

/// How far the text of a URL is known before the drill runs.
enum Start {
    /// All of it is `text`.
    Whole,
    /// Then comes a value AWS or the environment gives (an id, a DNS name, a
    /// region): never a URL's scheme.
    Given(String),
    /// Then comes something that does not resolve (reported elsewhere).
    Unknown,
}

impl<'a> Scope<'a> {
    pub(super) fn check_drill(&self, diags: &mut Diagnostics) {
        for (key, check) in self.runbook.drill.keyed_checks() {
            let key = format!("{key}.{}", check.kind());
            match check {
                Check::TargetHealth { target } => {
                    self.resource(target, &key, diags);
                }
                Check::ListenerForwardsTo { listener, target } => {
                    self.resource(listener, &format!("{key}.listener"), diags);
                    self.resource(target, &format!("{key}.target"), diags);
                }
                Check::Http { url, pos, .. } => self.url(url, *pos, &format!("{key}.url"), diags),
                Check::Command { argv, pos, .. } => {
                    if let Some(program) = argv.first() {
                        self.program(program, *pos, &key, diags);
                    }
                }
            }
        }
    }

    /// Whether `target` names a resource of its kind in a stack the runbook
    /// builds; reports why not.
    pub(super) fn resource(
        &self,
        target: &ResourceRef,
        key: &str,
        diags: &mut Diagnostics,
    ) -> bool {
        let Some(stack) = self.stack(&target.stack, target.pos, key, target, diags) else {
            return false;
        };
        if stack.resource(target.kind, &target.name).is_some() {
            return true;
        }
        // The name of another kind is the likelier slip than a misspelling.
        let same_name: Vec<String> = stack
            .resources
            .iter()
            .filter(|r| r.name == target.name)
            .map(|r| format!("`{}`", r.address()))
            .collect();
        let hint = if same_name.is_empty() {
            let same_kind = stack
                .resources
                .iter()
                .filter(|r| r.kind == target.kind)
                .map(|r| r.name.as_str());
            suggest(&target.name, same_kind).or_else(|| {
                Some(format!(
                    "stack `{}` declares no {}",
                    stack.name, target.kind
                ))
            })
        } else {
            Some(format!(
                "stack `{}` has {}",
                stack.name,
                same_name.join(" and ")
            ))
        };
        diags
            .error(
                &self.runbook.file,
                target.pos,
                key,
                format!(
                    "stack `{}` has no {} `{}`",
                    stack.name, target.kind, target.name
                ),
            )
            .with_hint_opt(hint);
        false
    }

    /// The stack `name`, when it exists and the runbook builds it; reports
    /// why not. `what` is the reference as written, for messages.
    fn stack(
        &self,
        name: &str,
        pos: Pos,
        key: &str,
        what: &dyn Display,
        diags: &mut Diagnostics,
    ) -> Option<&'a Stack> {
        let file = &self.runbook.file;
        let Some(stack) = self.project.stacks.get(name) else {
            if !self.project.unreadable_stacks.contains(name) {
                diags
                    .error(
                        file,
                        pos,
                        key,
                        format!("unknown stack `{name}` in `{what}`"),
                    )
                    .with_hint_opt(suggest(
                        name,
                        self.project.stacks.keys().map(String::as_str),
                    ));
            }
            return None;
        };
        if !self.closure.contains(name) {
            diags
                .error(
                    file,
                    pos,
                    key,
                    format!("stack `{name}` is not part of this runbook"),
                )
                .with_hint("add it to the runbook's `stacks`");
            return None;
        }
        Some(stack)
    }

    /// Each `${stack.…}` in a check's URL is a single value that a stack of
    /// the runbook outputs, and the URL begins with `http://` or `https://`
    /// (through the outputs it begins with, when it begins with one).
    fn url(&self, url: &Template, pos: Pos, key: &str, diags: &mut Diagnostics) {
        let mut resolved = true;
        for r in url.references() {
            let RefTarget::StackOutput { stack, output } = &r.target else {
                continue;
            };
            let Some(stack) = self.stack(stack, r.pos, key, r, diags) else {
                resolved = false;
                continue;
            };
            let Some(o) = stack.output(output) else {
                let (message, hint) = missing_output(stack, output);
                diags
                    .error(&self.runbook.file, r.pos, key, message)
                    .with_hint_opt(hint);
                resolved = false;
                continue;
            };
            let ty = output_type(self.project, stack, &o.value, 0);
            if matches!(ty, ValueType::List | ValueType::Table) {
                diags.error(
                    &self.runbook.file,
                    r.pos,
                    key,
                    format!("`{r}` is {} and cannot be part of a URL", ty.describe()),
                );
                resolved = false;
            }
        }
        if !resolved {
            return;
        }
        let mut text = String::new();
        let start = self.start(url, None, &mut text, 0);
        let scheme_may_follow = ["http://", "https://"]
            .iter()
            .any(|s| s.starts_with(&text.to_ascii_lowercase()));
        let begins_with = match start {
            _ if is_http_start(&text) => return,
            Start::Unknown if scheme_may_follow => return,
            Start::Given(value) => format!("{text}{value}"),
            Start::Whole | Start::Unknown => text,
        };
        diags
            .error(
                &self.runbook.file,
                pos,
                key,
                format!("`{url}` is not an http:// or https:// URL: it begins with `{begins_with}`"),
            )
            .with_hint("a check GETs the URL over HTTP; write the scheme in the URL, e.g. \"http://${stack.STACK.OUTPUT}/health\"");
    }

    /// Appends to `text` what `template` is known to begin with, following
    /// stack outputs and the variables they read (`stack` is the one the
    /// template is written in), and says what stops it.
    fn start(
        &self,
        template: &Template,
        stack: Option<&Stack>,
        text: &mut String,
        depth: usize,
    ) -> Start {
        for part in &template.parts {
            let r = match part {
                Part::Lit(lit) => {
                    text.push_str(lit);
                    continue;
                }
                Part::Ref(r) => r,
            };
            let stop = match &r.target {
                RefTarget::StackOutput { stack, output } => {
                    let found = self
                        .project
                        .stacks
                        .get(stack)
                        .and_then(|s| Some((s, s.output(output)?)));
                    match found.map(|(s, o)| (s, &o.value.kind)) {
                        // A depth past any real chain is a stack cycle, reported elsewhere.
                        Some((s, ExprKind::Str(t))) if depth < 16 => {
                            self.start(t, Some(s), text, depth + 1)
                        }
                        _ => Start::Unknown,
                    }
                }
                RefTarget::Var(name) => {
                    // A runbook's [vars] override the stacks' defaults. A
                    // secret is not followed, lest a message show it.
                    let declared = stack.and_then(|s| s.vars.get(name));
                    let var = self.runbook.vars.get(name).or(declared);
                    let secret = [var, declared].iter().flatten().any(|v| v.sensitive);
                    match var
                        .filter(|_| !secret)
                        .and_then(|v| v.value.as_literal_str())
                    {
                        Some(value) => {
                            text.push_str(value);
                            Start::Whole
                        }
                        None => Start::Unknown,
                    }
                }
                RefTarget::Resource { .. } | RefTarget::Env(_) => Start::Given(r.to_string()),
            };
            if !matches!(stop, Start::Whole) {
                return stop;
            }
        }
        Start::Whole
    }

    /// A program named by a path (it has a `/`) is a file under the project
    /// root; a bare name is looked up on PATH when the drill runs.
    fn program(&self, program: &str, pos: Pos, key: &str, diags: &mut Diagnostics) {
        if !program.contains('/') {
            return;
        }
        let path = under(&self.project.root, program.trim_start_matches("./"));
        if !path.is_file() {
            diags
                .error(
                    &self.runbook.file,
                    pos,
                    key,
                    format!("command `{program}` not found: no file {}", path.display()),
                )
                .with_hint("a path in a command is relative to the project root (the directory holding stacks/ and runbooks/)");
        }
    }
}

#[cfg(test)]
mod tests {
    use crate::load::validate::load_project;

    const NET: &str = r#"[vars]
scheme = "https"

[resources.vpc.main]
cidr_block = "10.0.0.0/16"

[resources.subnet.a]
vpc = "${vpc.main.id}"
cidr_block = "10.0.1.0/24"
availability_zone = "${env.region}a"

[outputs]
subnet_ids = ["${subnet.a.id}"]
host = "example.com"
base = "${var.scheme}://example.com"
"#;

    const WEB: &str = r#"[resources.load_balancer.public]
subnets = "${stack.net.subnet_ids}"

[resources.target_group.blue]
vpc = "vpc-1"
protocol = "HTTP"
port = 80

[resources.listener.http]
load_balancer = "${load_balancer.public.arn}"
protocol = "HTTP"
port = 80

[resources.service.web]
image = "ami-1e749f67"
count = 2
instance_type = "t3.micro"
subnets = "${stack.net.subnet_ids}"
port = 80
listener = "${listener.http.arn}"

[outputs]
url = "http://${load_balancer.public.dns_name}/"
dns = "${load_balancer.public.dns_name}"
"#;

    /// The problems of a project whose runbook (building `web`, not
    /// `other`) has `checks` from line 7 on and `vars`, without the root in paths.
    fn problems(checks: &str, vars: &str) -> Vec<String> {
        let dir = tempfile::tempdir().unwrap();
        let write = |rel: &str, text: &str| {
            let path = dir.path().join(rel);
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(path, text).unwrap();
        };
        write("stacks/net.toml", NET);
        write("stacks/web.toml", WEB);
        write("stacks/other.toml", "[outputs]\nx = \"http://x/\"\n");
        write("checks/smoke.sh", "#!/bin/sh\n");
        write(
            "runbooks/rb.toml",
            &format!("environment = \"e\"\nregion = \"us-east-1\"\nstacks = [\"web\"]\n\n[drill]\nchecks = [\n{checks}\n]\n\n[vars]\n{vars}\n"),
        );
        let (_, diags) = load_project(dir.path(), &[]);
        let root = format!("{}/", dir.path().display());
        diags
            .sorted()
            .iter()
            .map(|d| d.to_string().replace(&root, ""))
            .collect()
    }

    #[test]
    fn checks_that_name_what_the_runbook_builds_are_valid() {
        let checks = concat!(
            "{ target_health = \"web.service.web\" },\n",
            "{ target_health = \"web.target_group.blue\" },\n",
            "{ listener_forwards_to = { listener = \"web.listener.http\", target = \"web.service.web\" } },\n",
            "{ listener_forwards_to = { listener = \"web.listener.http\", target = \"web.target_group.blue\" } },\n",
            "{ http = { url = \"${stack.web.url}health\" } },\n",
            "{ http = { url = \"http://${stack.web.dns}/health?env=${env.name}&region=${env.region}\" } },\n",
            "{ http = { url = \"${stack.net.base}/\" } },\n",
            "{ command = [\"./checks/smoke.sh\", \"arg\"] },\n",
            "{ command = { run = [\"checks/smoke.sh\"], timeout = \"1m\" } },\n",
            // A bare name is looked up on PATH when the drill runs.
            "{ command = [\"curl\", \"-f\"] },",
        );
        assert_eq!(problems(checks, ""), Vec::<String>::new());
    }

    /// (what, one check on line 7, runbook vars, the whole first problem).
    const BROKEN: &[(&str, &str, &str, &str)] = &[
        ("unknown stack", "{ target_health = \"webb.service.web\" }", "",
            "runbooks/rb.toml:7:19: drill.checks[0].target_health: unknown stack `webb` in `webb.service.web`\n  hint: did you mean `web`?"),
        ("stack the runbook does not build", "{ target_health = \"other.service.web\" }", "",
            "runbooks/rb.toml:7:19: drill.checks[0].target_health: stack `other` is not part of this runbook\n  hint: add it to the runbook's `stacks`"),
        ("unknown service", "{ target_health = \"web.service.webb\" }", "",
            "runbooks/rb.toml:7:19: drill.checks[0].target_health: stack `web` has no service `webb`\n  hint: did you mean `web`?"),
        ("a service named as a target group", "{ target_health = \"web.target_group.web\" }", "",
            "runbooks/rb.toml:7:19: drill.checks[0].target_health: stack `web` has no target_group `web`\n  hint: stack `web` has `service.web`"),
        ("a kind the stack has none of", "{ target_health = \"net.service.web\" }", "",
            "runbooks/rb.toml:7:19: drill.checks[0].target_health: stack `net` has no service `web`\n  hint: stack `net` declares no service"),
        ("unknown listener", "{ listener_forwards_to = { listener = \"web.listener.htp\", target = \"web.service.web\" } }", "",
            "runbooks/rb.toml:7:39: drill.checks[0].listener_forwards_to.listener: stack `web` has no listener `htp`\n  hint: did you mean `http`?"),
        ("unknown forward target", "{ listener_forwards_to = { listener = \"web.listener.http\", target = \"web.target_group.bleu\" } }", "",
            "runbooks/rb.toml:7:69: drill.checks[0].listener_forwards_to.target: stack `web` has no target_group `bleu`\n  hint: did you mean `blue`?"),
        ("unknown output", "{ http = { url = \"${stack.web.ur}health\" } }", "",
            "runbooks/rb.toml:7:19: drill.checks[0].http.url: stack `web` has no output `ur`\n  hint: did you mean `url`?"),
        ("unknown stack in a URL", "{ http = { url = \"http://${stack.webb.dns}/\" } }", "",
            "runbooks/rb.toml:7:26: drill.checks[0].http.url: unknown stack `webb` in `${stack.webb.dns}`\n  hint: did you mean `web`?"),
        ("output of a stack the runbook does not build", "{ http = { url = \"${stack.other.x}\" } }", "",
            "runbooks/rb.toml:7:19: drill.checks[0].http.url: stack `other` is not part of this runbook"),
        ("a list in a URL", "{ http = { url = \"http://x/${stack.net.subnet_ids}\" } }", "",
            "runbooks/rb.toml:7:28: drill.checks[0].http.url: `${stack.net.subnet_ids}` is a list and cannot be part of a URL"),
        ("an output that is a DNS name", "{ http = { url = \"${stack.web.dns}/health\" } }", "",
            "runbooks/rb.toml:7:18: drill.checks[0].http.url: `${stack.web.dns}/health` is not an http:// or https:// URL: it begins with `${load_balancer.public.dns_name}`\n  hint: a check GETs the URL over HTTP"),
        ("an output that is a host name", "{ http = { url = \"${stack.net.host}/health\" } }", "",
            "runbooks/rb.toml:7:18: drill.checks[0].http.url: `${stack.net.host}/health` is not an http:// or https:// URL: it begins with `example.com/health`"),
        ("a runbook var that breaks the scheme", "{ http = { url = \"${stack.net.base}/\" } }", "scheme = \"ftp\"",
            "runbooks/rb.toml:7:18: drill.checks[0].http.url: `${stack.net.base}/` is not an http:// or https:// URL: it begins with `ftp://example.com/`"),
        ("a URL that begins with the environment", "{ http = { url = \"${env.name}.example.com\" } }", "",
            "runbooks/rb.toml:7:18: drill.checks[0].http.url: `${env.name}.example.com` is not an http:// or https:// URL: it begins with `${env.name}`"),
        ("missing command file", "{ command = [\"./checks/smoke.bash\"] }", "",
            "runbooks/rb.toml:7:14: drill.checks[0].command: command `./checks/smoke.bash` not found: no file checks/smoke.bash\n  hint: a path in a command is relative to the project root"),
        ("a directory as a command", "{ command = { run = [\"./checks\"] } }", "",
            "runbooks/rb.toml:7:22: drill.checks[0].command: command `./checks` not found: no file checks"),
    ];

    #[test]
    fn a_url_is_not_judged_by_a_secret_so_no_message_shows_it() {
        let url = "{ http = { url = \"${stack.net.base}/\" } }";
        let secret = "scheme = { value = \"ftp\", sensitive = true }";
        assert_eq!(problems(url, secret), Vec::<String>::new());
    }

    #[test]
    fn a_check_that_did_not_decode_keeps_the_others_keys() {
        let problems = problems(
            "{ target_health = \"web\" },\n{ command = [\"./nope\"] }",
            "",
        );
        assert_eq!(problems.len(), 2, "{problems:#?}");
        assert!(
            problems[1].starts_with(
                "runbooks/rb.toml:8:14: drill.checks[1].command: command `./nope` not found"
            ),
            "{problems:#?}"
        );
    }

    #[test]
    fn each_check_naming_what_is_not_there_reports_it() {
        let mut failures = Vec::new();
        for (what, check, vars, expected) in BROKEN {
            let problems = problems(check, vars);
            let first = problems.first().map(String::as_str).unwrap_or("(none)");
            if !first.starts_with(expected) || problems.len() != 1 {
                failures.push(format!(
                    "{what}: expected one problem\n    {expected:?}\n  got\n    {problems:#?}"
                ));
            }
        }
        assert!(failures.is_empty(), "{}", failures.join("\n\n"));
    }
}
