//! Decoding a runbook's `[drill]` table: teardown, approvals and the checks
//! that end the measured recovery time.
//!
//! A check is a table with exactly one key, its kind:
//! `{ target_health = "STACK.KIND.NAME" }`,
//! `{ listener_forwards_to = { listener = "…", target = "…" } }`,
//! `{ http = { url = "…", status = 200, timeout = "30s" } }`,
//! `{ command = ["./checks/smoke.sh"] }` or `{ command = { run = [...], timeout = "5m" } }`.

use std::time::Duration;

use toml::de::{DeTable, DeValue};

use crate::diag::{suggest, Pos};
use crate::model::expr::{ExprKind, Part, RefTarget, Template};
use crate::model::{Check, Drill, Named, ResourceKind, ResourceRef, Teardown};

use super::runbook::ref_shapes;
use super::{join, Decoder, Value};

/// The kinds of check: the one key of a check's table.
const CHECK_KINDS: [&str; 4] = ["target_health", "listener_forwards_to", "http", "command"];

/// What `target_health` and a forward's `target` may name: a target group,
/// or a service (meaning its live colour's target group).
const TARGETS: &[ResourceKind] = &[ResourceKind::TargetGroup, ResourceKind::Service];

const HTTP_TIMEOUT: Duration = Duration::from_secs(30);
/// The RTO clock runs while a check waits; one GET that needs longer than
/// this is a broken check, not a slow service.
const HTTP_TIMEOUT_MAX: Duration = Duration::from_secs(600);
const COMMAND_TIMEOUT: Duration = Duration::from_secs(300);

impl<'a> Decoder<'a> {
    pub(super) fn drill(&mut self, root: &DeTable<'a>) -> Drill {
        let mut drill = Drill::default();
        let Some(table) = self.table(root, "drill", "") else {
            return drill;
        };
        self.check_keys(
            table,
            "drill",
            &["teardown", "auto_approve", "rebake", "ttl", "checks"],
        );
        match self.opt_str(table, "teardown", "drill").as_deref() {
            None => {}
            Some("always") => drill.teardown = Teardown::Always,
            Some("on_success") => drill.teardown = Teardown::OnSuccess,
            Some("never") => drill.teardown = Teardown::Never,
            Some(other) => {
                let span = table.get("teardown").map(|v| v.span()).unwrap_or(0..0);
                self.at(
                    span,
                    "drill.teardown",
                    format!("expected `always`, `on_success` or `never`, found `{other}`"),
                )
                .with_hint_opt(suggest(other, ["always", "on_success", "never"]));
            }
        }
        if let Some(auto) = self.opt_bool(table, "auto_approve", "drill") {
            drill.auto_approve = auto;
        }
        if let Some(rebake) = self.opt_bool(table, "rebake", "drill") {
            drill.rebake = rebake;
        }
        if let Some(ttl) = self.opt_duration(table, "ttl", "drill") {
            if ttl.is_zero() {
                let span = table.get("ttl").map(|v| v.span()).unwrap_or(0..0);
                self.at(span, "drill.ttl", "expected a ttl more than 0s, found 0s")
                    .with_hint("write a duration like \"6h\" or \"2d\"");
            }
            drill.ttl = Some(ttl);
        }
        if let Some(value) = table.get("checks") {
            let DeValue::Array(items) = value.get_ref() else {
                self.wrong_type(value, "drill.checks", "a list of checks");
                return drill;
            };
            for (i, item) in items.iter().enumerate() {
                if let Some(check) = self.check(item, &format!("drill.checks[{i}]")) {
                    drill.checks.push(check);
                    drill.check_indices.push(i);
                }
            }
        }
        drill
    }

    /// One check; `None` when anything in it is wrong (and reported), so that
    /// validation does not report what follows from it.
    fn check(&mut self, item: &Value<'a>, path: &str) -> Option<Check> {
        let one_of = "a check is one of { target_health = … }, { listener_forwards_to = { … } }, { http = { … } } or { command = [...] }";
        let DeValue::Table(table) = item.get_ref() else {
            self.wrong_type(item, path, "a check table")
                .with_hint(one_of);
            return None;
        };
        self.check_keys(table, path, &CHECK_KINDS);
        let kinds: Vec<_> = table
            .iter()
            .filter(|(key, _)| CHECK_KINDS.contains(&key.get_ref().as_ref()))
            .collect();
        let [(key, value)] = kinds.as_slice() else {
            if kinds.len() > 1 {
                let names: Vec<String> = kinds
                    .iter()
                    .map(|(k, _)| format!("`{}`", k.get_ref()))
                    .collect();
                self.at(
                    item.span(),
                    path,
                    format!(
                        "a check has exactly one kind, found {}",
                        names.join(" and ")
                    ),
                )
                .with_hint("write each check as its own { … } in the list");
            } else if table.is_empty() {
                self.at(item.span(), path, "empty check").with_hint(one_of);
            }
            return None;
        };
        let before = self.diags.len();
        let path = join(path, key.get_ref());
        let check = match key.get_ref().as_ref() {
            "target_health" => self
                .ref_value(value, &path, TARGETS)
                .map(|target| Check::TargetHealth { target }),
            "listener_forwards_to" => self.listener_forwards_to(value, &path),
            "http" => self.http(value, &path),
            "command" => self.command(value, &path),
            _ => None,
        };
        check.filter(|_| self.diags.len() == before)
    }

    /// A string naming a resource of one of `kinds`.
    fn ref_value(
        &mut self,
        value: &Value<'a>,
        path: &str,
        kinds: &[ResourceKind],
    ) -> Option<ResourceRef> {
        let DeValue::String(text) = value.get_ref() else {
            self.wrong_type(value, path, &format!("a string like {}", ref_shapes(kinds)));
            return None;
        };
        let named = Named {
            name: text.to_string(),
            pos: self.pos(value.span()),
        };
        self.resource_ref(&named, path, kinds)
    }

    /// `key`, required, naming a resource of one of `kinds`.
    fn ref_key(
        &mut self,
        table: &DeTable<'a>,
        key: &str,
        prefix: &str,
        kinds: &[ResourceKind],
    ) -> Option<ResourceRef> {
        let Some(value) = table.get(key) else {
            self.missing(
                table,
                key,
                prefix,
                &format!("a string like {}", ref_shapes(kinds)),
            );
            return None;
        };
        self.ref_value(value, &join(prefix, key), kinds)
    }

    /// The table under a check's kind, with a hint that shows its shape.
    fn check_table<'v>(
        &mut self,
        value: &'v Value<'a>,
        path: &str,
        shape: &str,
    ) -> Option<&'v DeTable<'a>> {
        match value.get_ref() {
            DeValue::Table(table) => Some(table),
            _ => {
                self.wrong_type(value, path, "a table")
                    .with_hint(format!("write {shape}"));
                None
            }
        }
    }

    fn listener_forwards_to(&mut self, value: &Value<'a>, path: &str) -> Option<Check> {
        let table = self.check_table(
            value,
            path,
            "{ listener = \"STACK.listener.NAME\", target = \"STACK.service.NAME\" }",
        )?;
        self.check_keys(table, path, &["listener", "target"]);
        let listener = self.ref_key(table, "listener", path, &[ResourceKind::Listener]);
        let target = self.ref_key(table, "target", path, TARGETS);
        Some(Check::ListenerForwardsTo {
            listener: listener?,
            target: target?,
        })
    }

    fn http(&mut self, value: &Value<'a>, path: &str) -> Option<Check> {
        let table = self.check_table(
            value,
            path,
            "{ url = \"http://${stack.STACK.OUTPUT}/health\", status = 200, timeout = \"30s\" }",
        )?;
        self.check_keys(table, path, &["url", "status", "timeout"]);
        let url = self.url(table, path);
        let status = self
            .opt_int_in(table, "status", path, 100..=599)
            .unwrap_or(200);
        let timeout = self.check_timeout(table, path, HTTP_TIMEOUT, Some(HTTP_TIMEOUT_MAX));
        let (url, pos) = url?;
        Some(Check::Http {
            url,
            status: u16::try_from(status).ok()?,
            timeout,
            pos,
        })
    }

    /// A check's `url`: a template over stack outputs and the environment,
    /// beginning with `http://` or `https://` (checked here when it begins
    /// with text; through the outputs it begins with by validation).
    fn url(&mut self, table: &DeTable<'a>, prefix: &str) -> Option<(Template, Pos)> {
        let path = join(prefix, "url");
        let Some(value) = table.get("url") else {
            self.missing(
                table,
                "url",
                prefix,
                "a URL like \"http://${stack.STACK.OUTPUT}/health\"",
            );
            return None;
        };
        if !matches!(value.get_ref(), DeValue::String(_)) {
            self.wrong_type(value, &path, "a URL (a string)");
            return None;
        }
        let expr = self.expr(value, &path)?;
        let ExprKind::Str(url) = expr.kind else {
            return None;
        };
        for r in url.references() {
            if !matches!(r.target, RefTarget::StackOutput { .. } | RefTarget::Env(_)) {
                self.at_pos(
                    r.pos,
                    &path,
                    format!("`{r}` cannot be used in a check's URL"),
                )
                .with_hint("a URL may use ${stack.STACK.OUTPUT}, ${env.name} and ${env.region}");
            }
        }
        match url.parts.first() {
            None => {
                self.at_pos(expr.pos, &path, "the URL is empty");
            }
            Some(Part::Lit(text)) if !is_http_start(text) => {
                self.at_pos(
                    expr.pos,
                    &path,
                    format!("`{url}` is not an http:// or https:// URL"),
                )
                .with_hint("a check GETs the URL over HTTP; begin it with http:// or https://");
            }
            Some(Part::Lit(text)) if url.parts.len() == 1 && !has_host(text) => {
                self.at_pos(expr.pos, &path, format!("`{url}` names no host"));
            }
            _ => {}
        }
        Some((url, expr.pos))
    }

    fn command(&mut self, value: &Value<'a>, path: &str) -> Option<Check> {
        match value.get_ref() {
            DeValue::Array(_) => {
                let (argv, pos) = self.argv(value, path)?;
                Some(Check::Command {
                    argv,
                    timeout: COMMAND_TIMEOUT,
                    pos,
                })
            }
            DeValue::Table(table) => {
                self.check_keys(table, path, &["run", "timeout"]);
                let timeout = self.check_timeout(table, path, COMMAND_TIMEOUT, None);
                let Some(run) = table.get("run") else {
                    self.missing(
                        table,
                        "run",
                        path,
                        "the command as a list, e.g. [\"./checks/smoke.sh\"]",
                    );
                    return None;
                };
                let (argv, pos) = self.argv(run, &join(path, "run"))?;
                Some(Check::Command { argv, timeout, pos })
            }
            _ => {
                self.wrong_type(
                    value,
                    path,
                    "a list like [\"./checks/smoke.sh\", \"arg\"] or a table { run = [...], timeout = \"5m\" }",
                );
                None
            }
        }
    }

    /// The program and its arguments, with where the program is named.
    fn argv(&mut self, value: &Value<'a>, path: &str) -> Option<(Vec<String>, Pos)> {
        let DeValue::Array(items) = value.get_ref() else {
            self.wrong_type(
                value,
                path,
                "a list of strings, e.g. [\"./checks/smoke.sh\"]",
            );
            return None;
        };
        let mut argv = Vec::new();
        for (i, item) in items.iter().enumerate() {
            match item.get_ref() {
                DeValue::String(s) => argv.push(s.to_string()),
                _ => {
                    self.wrong_type(item, &format!("{path}[{i}]"), "a string");
                }
            }
        }
        let Some(program) = items.first() else {
            self.at(
                value.span(),
                path,
                "a command needs at least the program to run",
            )
            .with_hint("e.g. [\"./checks/smoke.sh\"]");
            return None;
        };
        if matches!(program.get_ref(), DeValue::String(s) if s.is_empty()) {
            self.at(
                program.span(),
                &format!("{path}[0]"),
                "the program to run is empty",
            );
        }
        Some((argv, self.pos(program.span())))
    }

    /// A check's `timeout`: more than zero and at most `max`; `default` when unset.
    fn check_timeout(
        &mut self,
        table: &DeTable<'a>,
        prefix: &str,
        default: Duration,
        max: Option<Duration>,
    ) -> Duration {
        let Some(timeout) = self.opt_duration(table, "timeout", prefix) else {
            return default;
        };
        if timeout.is_zero() || max.is_some_and(|max| timeout > max) {
            let span = table.get("timeout").map(|v| v.span()).unwrap_or(0..0);
            let limit = max
                .map(|max| format!(" and at most {}", humantime::format_duration(max)))
                .unwrap_or_default();
            self.at(
                span,
                &join(prefix, "timeout"),
                format!(
                    "expected a timeout more than 0s{limit}, found {}",
                    humantime::format_duration(timeout)
                ),
            );
        }
        timeout
    }
}

/// Whether text that begins a URL begins it with an HTTP scheme.
pub fn is_http_start(text: &str) -> bool {
    let text = text.to_ascii_lowercase();
    text.starts_with("http://") || text.starts_with("https://")
}

/// Whether a whole URL has something between its scheme and its path.
fn has_host(url: &str) -> bool {
    url.split_once("://")
        .and_then(|(_, rest)| rest.split(['/', '?', '#']).next())
        .is_some_and(|host| !host.is_empty())
}

#[cfg(test)]
mod tests {
    use crate::diag::{Diagnostics, SourceFile};
    use crate::load::decode::parse_runbook;
    use crate::model::Check;

    /// A runbook whose `checks` list holds `checks`, from line 7 on.
    fn parse(checks: &str) -> (Vec<Check>, Vec<String>) {
        let text = format!(
            "environment = \"e\"\nregion = \"us-east-1\"\nstacks = [\"web\"]\n\n[drill]\nchecks = [\n{checks}\n]\n"
        );
        let mut diags = Diagnostics::new();
        let runbook = parse_runbook(&SourceFile::new("rb.toml", text), &mut diags);
        let problems = diags.sorted().iter().map(|d| d.to_string()).collect();
        (
            runbook.map(|r| r.drill.checks).unwrap_or_default(),
            problems,
        )
    }

    /// The runbook `head` + `[drill]` `drill`, and its problems.
    fn runbook(head: &str, drill: &str) -> (Option<crate::model::Runbook>, Vec<String>) {
        let text = format!(
            "environment = \"e\"\nregion = \"us-east-1\"\nstacks = [\"web\"]\n{head}\n[drill]\n{drill}\n"
        );
        let mut diags = Diagnostics::new();
        let runbook = parse_runbook(&SourceFile::new("rb.toml", text), &mut diags);
        (
            runbook,
            diags.sorted().iter().map(|d| d.to_string()).collect(),
        )
    }

    #[test]
    fn a_drill_lives_its_ttl_or_four_rto_targets_and_at_least_two_hours() {
        use std::time::Duration;
        let hours = |h: u64| Duration::from_secs(h * 3600);
        let ttl = |head: &str, drill: &str| runbook(head, drill).0.unwrap().drill_ttl();
        assert_eq!(ttl("", "ttl = \"1s\""), Duration::from_secs(1));
        assert_eq!(ttl("rto_target = \"1h\"", "ttl = \"3d\""), hours(72));
        assert_eq!(ttl("rto_target = \"1h\"", ""), hours(4));
        assert_eq!(ttl("rto_target = \"10m\"", ""), hours(2));
        assert_eq!(ttl("", ""), hours(2));
        let (_, problems) = runbook("", "ttl = \"soon\"");
        assert_eq!(problems.len(), 1, "{problems:?}");
        assert!(
            problems[0].contains("rb.toml:6:") && problems[0].contains("drill.ttl"),
            "{problems:?}"
        );
        let (_, problems) = runbook("", "ttl = \"0s\"");
        assert!(
            problems[0].contains("drill.ttl") && problems[0].contains("more than 0s"),
            "{problems:?}"
        );
    }

    #[test]
    fn each_kind_of_check_with_its_defaults() {
        let (checks, problems) = parse(concat!(
            "{ target_health = \"web.service.web\" },\n",
            "{ target_health = \"web.target_group.blue\" },\n",
            "{ listener_forwards_to = { listener = \"web.listener.http\", target = \"web.target_group.blue\" } },\n",
            "{ http = { url = \"${stack.web.url}health\" } },\n",
            "{ http = { url = \"HTTPS://${env.name}.example.com/\", status = 204, timeout = \"5s\" } },\n",
            "{ command = [\"./checks/smoke.sh\", \"--fast\"] },\n",
            "{ command = { run = [\"true\"], timeout = \"1m\" } },",
        ));
        assert_eq!(problems, Vec::<String>::new());
        let shown: Vec<String> = checks.iter().map(Check::to_string).collect();
        assert_eq!(
            shown,
            [
                "target_health web.service.web",
                "target_health web.target_group.blue",
                "listener_forwards_to web.listener.http → web.target_group.blue",
                "http ${stack.web.url}health → 200",
                "http HTTPS://${env.name}.example.com/ → 204",
                "command ./checks/smoke.sh --fast",
                "command true",
            ]
        );
        let secs = |check: &Check| match check {
            Check::Http { timeout, .. } | Check::Command { timeout, .. } => timeout.as_secs(),
            _ => 0,
        };
        assert_eq!(
            checks[3..].iter().map(secs).collect::<Vec<_>>(),
            [30, 5, 300, 60]
        );
        // Positions: the URL's opening quote, the program's.
        let Check::Http { pos, url, .. } = &checks[3] else {
            panic!("{checks:?}")
        };
        assert_eq!((pos.line, pos.column), (10, 18));
        let r = url.references().next().map(|r| r.pos);
        assert_eq!(r.map(|p| (p.line, p.column)), Some((10, 19)));
        let Check::Command { pos, .. } = &checks[5] else {
            panic!("{checks:?}")
        };
        assert_eq!((pos.line, pos.column), (12, 14));
    }

    /// (what, one check written on line 7, the whole first problem).
    const BROKEN: &[(&str, &str, &str)] = &[
        ("unknown kind", "{ target_helth = \"web.service.web\" }",
            "rb.toml:7:3: drill.checks[0].target_helth: unknown key `target_helth`\n  hint: did you mean `target_health`?"),
        ("two kinds in one check", "{ target_health = \"web.service.web\", command = [\"true\"] }",
            "rb.toml:7:1: drill.checks[0]: a check has exactly one kind, found `target_health` and `command`\n  hint: write each check as its own { … } in the list"),
        ("empty check", "{}",
            "rb.toml:7:1: drill.checks[0]: empty check\n  hint: a check is one of"),
        ("a check that is not a table", "\"web.service.web\"",
            "rb.toml:7:1: drill.checks[0]: expected a check table, found string\n  hint: a check is one of"),
        ("target of the wrong kind", "{ target_health = \"web.listener.http\" }",
            "rb.toml:7:19: drill.checks[0].target_health: `web.listener.http` names a listener, not a target_group or a service\n  hint: write \"STACK.target_group.NAME\" or \"STACK.service.NAME\", e.g. \"web.target_group.web\""),
        ("target that is no reference", "{ target_health = \"web.web\" }",
            "rb.toml:7:19: drill.checks[0].target_health: `web.web` does not name a target_group or a service"),
        ("misspelt kind in a target", "{ target_health = \"web.servce.web\" }",
            "rb.toml:7:19: drill.checks[0].target_health: `web.servce.web` does not name a target_group or a service: `servce` is not a resource kind\n  hint: did you mean `service`?"),
        ("forward without a target", "{ listener_forwards_to = { listener = \"web.listener.http\" } }",
            "rb.toml:7:28: drill.checks[0].listener_forwards_to.target: missing required key `target`: expected a string like \"STACK.target_group.NAME\" or \"STACK.service.NAME\""),
        ("forward from a service", "{ listener_forwards_to = { listener = \"web.service.web\", target = \"web.service.web\" } }",
            "rb.toml:7:39: drill.checks[0].listener_forwards_to.listener: `web.service.web` names a service, not a listener"),
        ("forward with a misspelt key", "{ listener_forwards_to = { listener = \"web.listener.http\", targt = \"web.service.web\" } }",
            "rb.toml:7:28: drill.checks[0].listener_forwards_to.target: missing required key `target`"),
        ("forward as a string", "{ listener_forwards_to = \"web.listener.http\" }",
            "rb.toml:7:26: drill.checks[0].listener_forwards_to: expected a table, found string\n  hint: write { listener = \"STACK.listener.NAME\", target = \"STACK.service.NAME\" }"),
        ("url of another scheme", "{ http = { url = \"ftp://example.com/\" } }",
            "rb.toml:7:18: drill.checks[0].http.url: `ftp://example.com/` is not an http:// or https:// URL"),
        ("url without a host", "{ http = { url = \"http:///health\" } }",
            "rb.toml:7:18: drill.checks[0].http.url: `http:///health` names no host"),
        ("url with a resource reference", "{ http = { url = \"http://${load_balancer.public.dns_name}/\" } }",
            "rb.toml:7:26: drill.checks[0].http.url: `${load_balancer.public.dns_name}` cannot be used in a check's URL\n  hint: a URL may use ${stack.STACK.OUTPUT}, ${env.name} and ${env.region}"),
        ("url with a var", "{ http = { url = \"http://${var.host}/\" } }",
            "rb.toml:7:26: drill.checks[0].http.url: `${var.host}` cannot be used in a check's URL"),
        ("url with a malformed reference", "{ http = { url = \"http://${stack.web}/\" } }",
            "rb.toml:7:26: drill.checks[0].http.url: malformed reference `${stack.web}`: expected `${stack.STACK.OUTPUT}`"),
        ("empty url", "{ http = { url = \"\" } }",
            "rb.toml:7:18: drill.checks[0].http.url: the URL is empty"),
        ("no url", "{ http = { status = 200 } }",
            "rb.toml:7:12: drill.checks[0].http.url: missing required key `url`"),
        ("status out of range", "{ http = { url = \"http://x/\", status = 700 } }",
            "rb.toml:7:40: drill.checks[0].http.status: expected an integer from 100 to 599, found 700"),
        ("status as a string", "{ http = { url = \"http://x/\", status = \"200\" } }",
            "rb.toml:7:40: drill.checks[0].http.status: expected an integer from 100 to 599, found string"),
        ("zero timeout", "{ http = { url = \"http://x/\", timeout = \"0s\" } }",
            "rb.toml:7:41: drill.checks[0].http.timeout: expected a timeout more than 0s and at most 10m, found 0s"),
        ("timeout over the limit", "{ http = { url = \"http://x/\", timeout = \"11m\" } }",
            "rb.toml:7:41: drill.checks[0].http.timeout: expected a timeout more than 0s and at most 10m, found 11m"),
        ("misspelt http key", "{ http = { url = \"http://x/\", stauts = 200 } }",
            "rb.toml:7:31: drill.checks[0].http.stauts: unknown key `stauts`\n  hint: did you mean `status`?"),
        ("empty command", "{ command = [] }",
            "rb.toml:7:13: drill.checks[0].command: a command needs at least the program to run"),
        ("empty program", "{ command = [\"\", \"x\"] }",
            "rb.toml:7:14: drill.checks[0].command[0]: the program to run is empty"),
        ("argument that is no string", "{ command = [\"./x.sh\", 1] }",
            "rb.toml:7:24: drill.checks[0].command[1]: expected a string, found integer"),
        ("command as a string", "{ command = \"./x.sh\" }",
            "rb.toml:7:13: drill.checks[0].command: expected a list like [\"./checks/smoke.sh\", \"arg\"] or a table { run = [...], timeout = \"5m\" }, found string"),
        ("command table without run", "{ command = { timeout = \"1m\" } }",
            "rb.toml:7:15: drill.checks[0].command.run: missing required key `run`"),
        ("command table with a misspelt key", "{ command = { run = [\"true\"], tiemout = \"1m\" } }",
            "rb.toml:7:31: drill.checks[0].command.tiemout: unknown key `tiemout`\n  hint: did you mean `timeout`?"),
        ("zero command timeout", "{ command = { run = [\"true\"], timeout = \"0s\" } }",
            "rb.toml:7:41: drill.checks[0].command.timeout: expected a timeout more than 0s, found 0s"),
    ];

    #[test]
    fn each_broken_check_reports_its_problem_and_is_dropped() {
        let mut failures = Vec::new();
        for (what, check, expected) in BROKEN {
            let (checks, problems) = parse(check);
            let first = problems.first().map(String::as_str).unwrap_or("(none)");
            if !first.starts_with(expected) || !checks.is_empty() {
                failures.push(format!(
                    "{what}: expected\n    {expected:?}\n  got\n    {problems:#?}\n  checks {checks:?}"
                ));
            }
        }
        assert!(failures.is_empty(), "{}", failures.join("\n\n"));
    }

    #[test]
    fn a_broken_check_leaves_the_others() {
        let (checks, problems) =
            parse("{ target_health = \"web.web\" },\n{ command = [\"true\"] },\n{ checks = 1 },");
        assert_eq!(problems.len(), 2, "{problems:#?}");
        assert!(
            problems[1].starts_with("rb.toml:9:3: drill.checks[2].checks: unknown key `checks`"),
            "{problems:#?}"
        );
        assert_eq!(checks.len(), 1);
        assert_eq!(checks[0].kind(), "command");
    }
}
