//! Decoding a runbook file: environment, region, phases and gates (the
//! `[drill]` table is [`drill`](super::drill)'s).

use toml::de::{DeTable, DeValue};

use crate::diag::{suggest, Diagnostics, Pos, SourceFile};
use crate::model::{
    Gate, ManualGate, Named, OnTimeout, Phase, ResourceKind, ResourceRef, Runbook, Schedule,
    ServiceRef,
};

use super::{file_stem, join, Decoder, Value};

/// The keys a runbook file may have at its top.
const RUNBOOK_KEYS: &[&str] = &[
    "description",
    "environment",
    "region",
    "stacks",
    "schedule",
    "timezone",
    "rto_target",
    "protected",
    "vars",
    "phases",
    "drill",
    "notify",
    "forecast",
    "preflight",
];

/// Parses one runbook file, like [`parse_stack`](super::parse_stack).
pub fn parse_runbook(src: &SourceFile, diags: &mut Diagnostics) -> Option<Runbook> {
    let mut d = Decoder { src, diags };
    let root = d.document()?;
    d.check_keys(&root, "", RUNBOOK_KEYS);
    let environment = d.environment(&root);
    let environment_pos = root
        .get("environment")
        .map_or(Pos { line: 1, column: 1 }, |v| d.pos(v.span()));
    let region = d.region(&root);
    let stacks = d.root_stacks(&root);
    let timezone = d.timezone(&root);
    let schedule = d.schedule(&root, "");
    let rto_target = d.opt_duration(&root, "rto_target", "");
    let protected = d.opt_bool(&root, "protected", "").unwrap_or(false);
    let vars = d.vars(&root);
    let phases = d.phases(&root);
    let drill = d.drill(&root);
    let notify = d.notify(&root);
    let forecast_priors = d.forecast(&root);
    let preflight = d.preflight(&root);
    Some(Runbook {
        name: file_stem(&src.path),
        file: src.path.clone(),
        description: d.opt_str(&root, "description", ""),
        environment: environment.unwrap_or_default(),
        environment_pos,
        region: region.unwrap_or_default(),
        stacks,
        schedule,
        timezone,
        rto_target,
        protected,
        vars,
        phases,
        drill,
        notify,
        forecast_priors,
        preflight,
        rebake_images: false,
        lifetime: None,
    })
}

/// `"STACK.service.NAME" or "STACK.target_group.NAME"`, for messages.
pub(super) fn ref_shapes(kinds: &[ResourceKind]) -> String {
    kinds
        .iter()
        .map(|k| format!("\"STACK.{k}.NAME\""))
        .collect::<Vec<_>>()
        .join(" or ")
}

impl<'a> Decoder<'a> {
    /// `environment`, checked as a name (it is part of tags and names).
    fn environment(&mut self, root: &DeTable<'a>) -> Option<String> {
        let environment = self.req_str(root, "environment", "");
        if let (Some(env), Some((_, value))) = (&environment, root.get_key_value("environment")) {
            self.check_environment_name(env, value);
        }
        environment
    }

    /// `region`, which must look like an AWS region name.
    fn region(&mut self, root: &DeTable<'a>) -> Option<String> {
        let region = self.req_str(root, "region", "");
        if let (Some(region), Some((_, value))) = (&region, root.get_key_value("region")) {
            if !crate::model::is_region_name(region) {
                self.at(
                    value.span(),
                    "region",
                    format!("`{region}` is not an AWS region name"),
                )
                .with_hint("a region looks like \"us-west-2\" or \"eu-central-1\"");
            }
        }
        region
    }

    /// `stacks`: the root stacks, at least one.
    fn root_stacks(&mut self, root: &DeTable<'a>) -> Vec<Named> {
        let stacks = self.name_list(root, "stacks", "");
        if root.get("stacks").is_none() {
            self.missing(
                root,
                "stacks",
                "",
                "a list of root stack names, e.g. [\"web\"]",
            );
        } else if stacks.is_empty() {
            if let Some(v) = root.get("stacks") {
                self.at(v.span(), "stacks", "a runbook needs at least one stack");
            }
        }
        stacks
    }

    /// `timezone`, an IANA name (UTC when absent): the schedule's clock.
    fn timezone(&mut self, root: &DeTable<'a>) -> String {
        let timezone = self
            .opt_str(root, "timezone", "")
            .unwrap_or_else(|| "UTC".to_string());
        if let Some(v) = root.get("timezone") {
            if jiff::tz::TimeZone::get(&timezone).is_err() {
                self.at(
                    v.span(),
                    "timezone",
                    format!("unknown time zone `{timezone}`"),
                )
                .with_hint(
                    "use an IANA name such as \"UTC\", \"Europe/Berlin\" or \"America/New_York\"",
                );
            }
        }
        timezone
    }

    /// `[preflight]`: its `schedule` (read in the runbook's `timezone`).
    fn preflight(&mut self, root: &DeTable<'a>) -> crate::model::Preflight {
        let Some(table) = self.table(root, "preflight", "") else {
            return crate::model::Preflight::default();
        };
        self.check_keys(table, "preflight", &["schedule"]);
        crate::model::Preflight {
            schedule: self.schedule(table, "preflight"),
        }
    }

    /// `schedule` in `table` (at `path`), a five-field cron expression.
    fn schedule(&mut self, table: &DeTable<'a>, path: &str) -> Option<Schedule> {
        let expression = self.opt_str(table, "schedule", path)?;
        match expression.parse::<croner::Cron>() {
            Ok(cron) => Some(Schedule { expression, cron }),
            Err(e) => {
                let span = table.get("schedule").map(|v| v.span()).unwrap_or(0..0);
                self.at(
                    span,
                    &join(path, "schedule"),
                    format!("invalid cron expression `{expression}`: {e}"),
                )
                .with_hint(
                    "five fields: minute hour day-of-month month day-of-week, e.g. \"0 4 * * SAT\"",
                );
                None
            }
        }
    }

    fn phases(&mut self, root: &DeTable<'a>) -> Vec<Phase> {
        let Some(value) = root.get("phases") else {
            return Vec::new();
        };
        let DeValue::Array(items) = value.get_ref() else {
            self.wrong_type(value, "phases", "an array of tables ([[phases]])");
            return Vec::new();
        };
        let mut phases: Vec<Phase> = Vec::new();
        for (i, item) in items.iter().enumerate() {
            let path = format!("phases[{i}]");
            let Some(table) = self.as_table(item, &path) else {
                continue;
            };
            self.check_keys(
                table,
                &path,
                &["name", "stacks", "cutover", "gate", "barrier"],
            );
            let pos = self.pos(item.span());
            let Some(name) = self.req_str(table, "name", &path) else {
                continue;
            };
            let path = format!("phases.{name}");
            if phases.iter().any(|p| p.name == name) {
                self.at_pos(pos, &path, format!("duplicate phase name `{name}`"));
            }
            let stacks = self.name_list(table, "stacks", &path);
            let cutover = self
                .name_list(table, "cutover", &path)
                .into_iter()
                .filter_map(|n| self.service_ref(&n, &join(&path, "cutover")))
                .collect::<Vec<_>>();
            if stacks.is_empty() && cutover.is_empty() {
                self.at_pos(pos, &path, format!("phase `{name}` has nothing to do"))
                    .with_hint(
                        "list `stacks = [...]` to apply, or `cutover = [\"STACK.service.NAME\"]`",
                    );
            }
            let gate = table
                .get("gate")
                .map(|g| self.gate(g, &join(&path, "gate")))
                .unwrap_or_default();
            let barrier = self.opt_bool(table, "barrier", &path).unwrap_or(false);
            phases.push(Phase {
                name,
                stacks,
                cutover,
                gate,
                barrier,
                pos,
            });
        }
        phases
    }

    /// `"STACK.service.NAME"`
    pub(super) fn service_ref(&mut self, named: &Named, path: &str) -> Option<ServiceRef> {
        let r = self.resource_ref(named, path, &[ResourceKind::Service])?;
        Some(ServiceRef {
            stack: r.stack,
            name: r.name,
            pos: r.pos,
        })
    }

    /// `"STACK.KIND.NAME"` naming a resource of one of `kinds`. Whether it
    /// exists, in a stack the runbook builds, is for validation.
    pub(super) fn resource_ref(
        &mut self,
        named: &Named,
        path: &str,
        kinds: &[ResourceKind],
    ) -> Option<ResourceRef> {
        let wanted = kinds
            .iter()
            .map(|k| format!("a {k}"))
            .collect::<Vec<_>>()
            .join(" or ");
        let hint = format!(
            "write {}, e.g. \"web.{}.web\"",
            ref_shapes(kinds),
            kinds.first().map_or("service", |k| k.name())
        );
        let text = &named.name;
        match text.split('.').collect::<Vec<_>>().as_slice() {
            [stack, kind, name] if !stack.is_empty() && !name.is_empty() => {
                match ResourceKind::from_name(kind) {
                    Some(kind) if kinds.contains(&kind) => Some(ResourceRef {
                        stack: stack.to_string(),
                        kind,
                        name: name.to_string(),
                        pos: named.pos,
                    }),
                    Some(kind) => {
                        self.at_pos(
                            named.pos,
                            path,
                            format!("`{text}` names a {kind}, not {wanted}"),
                        )
                        .with_hint(hint);
                        None
                    }
                    None => {
                        self.at_pos(
                            named.pos,
                            path,
                            format!(
                                "`{text}` does not name {wanted}: `{kind}` is not a resource kind"
                            ),
                        )
                        .with_hint_opt(
                            suggest(kind, kinds.iter().map(|k| k.name())).or(Some(hint)),
                        );
                        None
                    }
                }
            }
            _ => {
                self.at_pos(named.pos, path, format!("`{text}` does not name {wanted}"))
                    .with_hint(hint);
                None
            }
        }
    }

    fn gate(&mut self, value: &Value<'a>, path: &str) -> Gate {
        match value.get_ref() {
            DeValue::String(s) if s == "auto" => Gate::Auto,
            DeValue::String(s) if s == "manual" => Gate::Manual(ManualGate::default()),
            DeValue::Table(table) => {
                self.check_keys(table, path, &["manual"]);
                let Some(manual) = self.table(table, "manual", path) else {
                    if table.get("manual").is_none() {
                        self.at(value.span(), path, "expected `{ manual = { … } }`");
                    }
                    return Gate::Auto;
                };
                let path = join(path, "manual");
                self.check_keys(
                    manual,
                    &path,
                    &["approvals", "approvers", "timeout", "on_timeout"],
                );
                let approvers: Vec<String> = self
                    .name_list(manual, "approvers", &path)
                    .into_iter()
                    .map(|n| n.name)
                    .collect();
                let approvals = self.opt_int(manual, "approvals", &path, 1).unwrap_or(1) as u32;
                if !approvers.is_empty() && approvals as usize > approvers.len() {
                    let span = manual
                        .get("approvals")
                        .map(|v| v.span())
                        .unwrap_or(value.span());
                    self.at(
                        span,
                        &join(&path, "approvals"),
                        format!(
                            "{approvals} approvals needed but only {} approver{} listed",
                            approvers.len(),
                            if approvers.len() == 1 { " is" } else { "s are" }
                        ),
                    );
                }
                let timeout = self.opt_duration(manual, "timeout", &path);
                let on_timeout = match self.opt_str(manual, "on_timeout", &path).as_deref() {
                    None | Some("wait") => OnTimeout::Wait,
                    Some("reject") => OnTimeout::Reject,
                    Some(other) => {
                        let span = manual.get("on_timeout").map(|v| v.span()).unwrap_or(0..0);
                        self.at(
                            span,
                            &join(&path, "on_timeout"),
                            format!("expected `reject` or `wait`, found `{other}`"),
                        );
                        OnTimeout::Wait
                    }
                };
                if on_timeout == OnTimeout::Reject && timeout.is_none() {
                    let span = manual.get("on_timeout").map(|v| v.span()).unwrap_or(0..0);
                    self.at(
                        span,
                        &join(&path, "on_timeout"),
                        "`on_timeout` needs a `timeout`",
                    )
                    .with_hint("add e.g. `timeout = \"4h\"`");
                }
                Gate::Manual(ManualGate {
                    approvals,
                    approvers,
                    timeout,
                    on_timeout,
                })
            }
            DeValue::String(s) => {
                self.at(value.span(), path, format!("unknown gate `{s}`"))
                    .with_hint("a gate is \"auto\", \"manual\" or { manual = { approvals = 2 } }");
                Gate::Auto
            }
            _ => {
                self.wrong_type(value, path, "\"auto\", \"manual\" or { manual = { … } }");
                Gate::Auto
            }
        }
    }
}
