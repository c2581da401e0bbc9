//! Decoding a `[notify]` section, of a runbook or of the repository's
//! `drctl.toml`:
//!
//! ```toml
//! [notify]
//! webhooks = ["https://hooks.example.com/drctl"]
//! format = "json"                 # or "slack"
//! secret_env = "DRCTL_WEBHOOK_SECRET"
//! ```

use toml::de::{DeTable, DeValue};

use crate::diag::{suggest, Diagnostics, SourceFile};
use crate::model::{NotifyFormat, Webhook};

use super::Decoder;

const NOTIFY_KEYS: &[&str] = &["webhooks", "format", "secret_env"];

/// The webhooks of `src`'s `[notify]` section (none without one); every
/// other table of the file is left to its own reader.
pub fn parse_notify(src: &SourceFile, diags: &mut Diagnostics) -> Vec<Webhook> {
    let mut d = Decoder { src, diags };
    match d.document() {
        Some(root) => d.notify(&root),
        None => Vec::new(),
    }
}

impl<'a> Decoder<'a> {
    /// `[notify]`: each webhook with the section's format and secret.
    pub(super) fn notify(&mut self, root: &DeTable<'a>) -> Vec<Webhook> {
        let Some(table) = self.table(root, "notify", "") else {
            return Vec::new();
        };
        self.check_keys(table, "notify", NOTIFY_KEYS);
        let format = match self.opt_str(table, "format", "notify").as_deref() {
            None | Some("json") => NotifyFormat::Json,
            Some("slack") => NotifyFormat::Slack,
            Some(other) => {
                let span = table.get("format").map(|v| v.span()).unwrap_or(0..0);
                self.at(
                    span,
                    "notify.format",
                    format!("expected `json` or `slack`, found `{other}`"),
                )
                .with_hint_opt(suggest(other, ["json", "slack"]));
                NotifyFormat::Json
            }
        };
        let secret_env = self.opt_str(table, "secret_env", "notify");
        if let (Some(name), Some(value)) = (&secret_env, table.get("secret_env")) {
            let ok = name.starts_with(|c: char| c.is_ascii_alphabetic() || c == '_')
                && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
            if !ok {
                self.at(
                    value.span(),
                    "notify.secret_env",
                    format!("expected the name of an environment variable, found `{name}`"),
                )
                .with_hint("name the variable that holds the secret (e.g. \"DRCTL_WEBHOOK_SECRET\"), never the secret itself");
            }
        }
        let Some(value) = table.get("webhooks") else {
            self.missing(
                table,
                "webhooks",
                "notify",
                "a list of URLs (\"https://…\")",
            );
            return Vec::new();
        };
        let DeValue::Array(items) = value.get_ref() else {
            self.wrong_type(value, "notify.webhooks", "a list of URLs (\"https://…\")");
            return Vec::new();
        };
        let mut webhooks = Vec::new();
        for (i, item) in items.iter().enumerate() {
            let path = format!("notify.webhooks[{i}]");
            let DeValue::String(url) = item.get_ref() else {
                self.wrong_type(item, &path, "a URL (string)");
                continue;
            };
            let rest = url
                .strip_prefix("https://")
                .or_else(|| url.strip_prefix("http://"));
            let ok = rest.is_some_and(|r| {
                let host = r.split(['/', '?', '#']).next().unwrap_or_default();
                !host.is_empty() && !host.contains(char::is_whitespace)
            });
            if !ok {
                self.at(
                    item.span(),
                    &path,
                    format!("expected an http:// or https:// URL, found `{url}`"),
                );
                continue;
            }
            webhooks.push(Webhook {
                url: url.to_string(),
                format,
                secret_env: secret_env.clone(),
            });
        }
        webhooks
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<Vec<Webhook>, String> {
        let src = SourceFile::new(std::path::Path::new("drctl.toml"), text.to_string());
        let mut diags = Diagnostics::new();
        let hooks = parse_notify(&src, &mut diags);
        match diags.is_empty() {
            true => Ok(hooks),
            false => Err(diags.to_string()),
        }
    }

    #[test]
    fn a_notify_section_names_its_webhooks_format_and_secret() {
        let hooks = parse(
            "[state]\nurl = \"x\"\n[notify]\nwebhooks = [\"https://h.example/a\", \"http://127.0.0.1:9/b\"]\nformat = \"slack\"\nsecret_env = \"HOOK_SECRET\"\n",
        )
        .unwrap();
        assert_eq!(hooks.len(), 2);
        assert_eq!(hooks[1].url, "http://127.0.0.1:9/b");
        assert_eq!(hooks[0].format, NotifyFormat::Slack);
        assert_eq!(hooks[0].secret_env.as_deref(), Some("HOOK_SECRET"));
        assert_eq!(parse("# none\n").unwrap(), []);
    }

    #[test]
    fn bad_notify_sections_say_file_line_key_and_what_was_expected() {
        let table = [
            (
                "[notify]\nformat = \"json\"\n",
                "drctl.toml:2",
                "notify.webhooks",
            ),
            (
                "[notify]\nwebhooks = [\"ftp://x/y\"]\n",
                "drctl.toml:2",
                "notify.webhooks[0]",
            ),
            (
                "[notify]\nwebhooks = \"https://x\"\n",
                "drctl.toml:2",
                "a list of URLs",
            ),
            (
                "[notify]\nwebhooks = []\nformat = \"slak\"\n",
                "drctl.toml:3",
                "`json` or `slack`",
            ),
            (
                "[notify]\nwebhooks = []\nsecret_env = \"s3cr3t value\"\n",
                "drctl.toml:3",
                "notify.secret_env",
            ),
            (
                "[notify]\nwebhooks = []\nsecret = \"x\"\n",
                "drctl.toml:3",
                "unknown key `secret`",
            ),
        ];
        for (text, at, says) in table {
            let error = parse(text).unwrap_err();
            assert!(
                error.contains(at) && error.contains(says),
                "{text:?}: {error}"
            );
        }
    }
}
