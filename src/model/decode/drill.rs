//! Decoding a runbook's `[drill]` table: teardown, approvals and the checks
//! that end the measured recovery time.

use toml::de::{DeTable, DeValue};

use crate::diag::suggest;
use crate::model::{Check, Drill, Named, Teardown};

use super::{join, Decoder};

impl<'a> Decoder<'a> {
    pub(super) fn drill(&mut self, root: &DeTable<'a>) -> Drill {
        let mut drill = Drill::default();
        let Some(table) = self.table(root, "drill", "") else {
            return drill;
        };
        self.check_keys(table, "drill", &["teardown", "auto_approve", "checks"]);
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
        if let Some(value) = table.get("checks") {
            let DeValue::Array(items) = value.get_ref() else {
                self.wrong_type(value, "drill.checks", "a list of checks");
                return drill;
            };
            for (i, item) in items.iter().enumerate() {
                let path = format!("drill.checks[{i}]");
                let Some(check) = self.as_table(item, &path) else {
                    continue;
                };
                self.check_keys(check, &path, &["target_health"]);
                if check.len() != 1 {
                    self.at(
                        item.span(),
                        &path,
                        "a check is one of: { target_health = \"STACK.service.NAME\" }",
                    );
                    continue;
                }
                if let Some(target) = self.opt_str(check, "target_health", &path) {
                    let pos = check
                        .get("target_health")
                        .map(|v| self.pos(v.span()))
                        .unwrap_or_default();
                    let named = Named { name: target, pos };
                    if let Some(service) = self.service_ref(&named, &join(&path, "target_health")) {
                        drill.checks.push(Check::TargetHealth {
                            target: crate::model::ResourceRef {
                                stack: service.stack,
                                kind: crate::model::ResourceKind::Service,
                                name: service.name,
                                pos: service.pos,
                            },
                        });
                    }
                }
            }
        }
        drill
    }
}
