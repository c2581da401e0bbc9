//! Decoding a runbook's `[forecast]` table: `[forecast.priors]`, the
//! runbook's own expected duration of a step kind (`"image:bake" = "8m"`).

use toml::de::{DeTable, DeValue};

use crate::diag::suggest;
use crate::model::forecast::{Priors, StepKind};

use super::{join, Decoder};

impl<'a> Decoder<'a> {
    pub(super) fn forecast(&mut self, root: &DeTable<'a>) -> Priors {
        let mut priors = Priors::new();
        let Some(table) = self.table(root, "forecast", "") else {
            return priors;
        };
        self.check_keys(table, "forecast", &["priors"]);
        let Some(table) = self.table(table, "priors", "forecast") else {
            return priors;
        };
        let known: Vec<String> = StepKind::all().iter().map(ToString::to_string).collect();
        for (key, value) in table.iter() {
            let name = key.get_ref().as_ref();
            let path = join("forecast.priors", name);
            let Some(kind) = StepKind::parse(name) else {
                self.at(key.span(), &path, format!("unknown step kind `{name}`"))
                    .with_hint_opt(suggest(name, known.iter().map(String::as_str)));
                continue;
            };
            let DeValue::String(text) = value.get_ref() else {
                self.wrong_type(value, &path, "a duration such as \"8m\"");
                continue;
            };
            match humantime::parse_duration(text) {
                Ok(d) => {
                    priors.insert(kind, d);
                }
                Err(e) => {
                    self.at(
                        value.span(),
                        &path,
                        format!("invalid duration `{text}`: {e}"),
                    )
                    .with_hint("write a duration like \"45s\", \"8m\" or \"1h 30m\"");
                }
            }
        }
        priors
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use crate::diag::{Diagnostics, SourceFile};
    use crate::load::decode::parse_runbook;
    use crate::model::forecast::{Priors, StepKind};

    /// The runbook with `forecast` under its `[forecast]` line (line 5 on),
    /// its priors and its problems.
    fn parse(forecast: &str) -> (Priors, Vec<String>) {
        let text = format!(
            "environment = \"e\"\nregion = \"us-east-1\"\nstacks = [\"web\"]\n[forecast]\n{forecast}\n"
        );
        let mut diags = Diagnostics::new();
        let runbook = parse_runbook(&SourceFile::new("rb.toml", text), &mut diags);
        let problems = diags.sorted().iter().map(|d| d.to_string()).collect();
        (
            runbook.map(|r| r.forecast_priors).unwrap_or_default(),
            problems,
        )
    }

    #[test]
    fn priors_are_step_kinds_and_durations() {
        let (priors, problems) = parse("priors = { \"image:bake\" = \"8m\", vpc = \"2s\" }");
        assert_eq!(problems, Vec::<String>::new());
        let kind = |k: &str| StepKind::parse(k).unwrap();
        assert_eq!(priors[&kind("image:bake")], Duration::from_secs(480));
        assert_eq!(priors[&kind("vpc")], Duration::from_secs(2));
        let (priors, problems) = parse("");
        assert!(priors.is_empty() && problems.is_empty(), "{problems:?}");
    }

    #[test]
    fn every_bad_prior_is_reported_with_its_line_and_key() {
        let (priors, problems) = parse(
            "[forecast.priors]\n\"image:bakes\" = \"8m\"\nsubnet = 30\nvpc = \"soon\"\n\"service:colour\" = \"3m\"",
        );
        assert_eq!(
            problems,
            [
                "rb.toml:6:1: forecast.priors.image:bakes: unknown step kind `image:bakes`\n  hint: did you mean `image:bake`?",
                "rb.toml:7:10: forecast.priors.subnet: expected a duration such as \"8m\", found integer",
                "rb.toml:8:7: forecast.priors.vpc: invalid duration `soon`: expected number at 0\n  hint: write a duration like \"45s\", \"8m\" or \"1h 30m\"",
            ]
        );
        assert_eq!(priors.len(), 1, "the good one stays: {priors:?}");
        let (_, problems) = parse("prior = {}");
        assert_eq!(
            problems,
            ["rb.toml:5:1: forecast.prior: unknown key `prior`\n  hint: did you mean `priors`?"]
        );
    }
}
