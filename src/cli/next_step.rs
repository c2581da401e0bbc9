//! The commands the application suggests next ([`NextStep`]), rendered as
//! the `drctl …` lines a person types: on the terminal and in JSON logs.

use std::fmt;

use serde::{Serialize, Serializer};

use crate::events::NextStep;

impl fmt::Display for NextStep {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            NextStep::ApplySaved { plan } => write!(f, "drctl apply {}", plan.display()),
            NextStep::Destroy {
                root,
                runbook,
                environment,
            } => {
                write!(f, "drctl --root {} destroy {runbook}", root.display())?;
                match environment {
                    Some(env) => write!(f, " --environment {env}"),
                    None => Ok(()),
                }
            }
            NextStep::Rollback {
                root,
                runbook,
                service,
            } => write!(
                f,
                "drctl --root {} rollback {runbook} {service}",
                root.display()
            ),
        }
    }
}

/// In JSON too, a next step is the command line to type.
impl Serialize for NextStep {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn next_steps_read_as_the_command_lines_to_type() {
        let destroy = NextStep::Destroy {
            root: "/work/infra".into(),
            runbook: "web".into(),
            environment: Some("web-dr".into()),
        };
        assert_eq!(
            destroy.to_string(),
            "drctl --root /work/infra destroy web --environment web-dr"
        );
        assert_eq!(
            serde_json::to_value(&destroy).unwrap(),
            serde_json::json!("drctl --root /work/infra destroy web --environment web-dr")
        );
        let rollback = NextStep::Rollback {
            root: "/work/infra".into(),
            runbook: "web".into(),
            service: "web.service.web".into(),
        };
        assert_eq!(
            rollback.to_string(),
            "drctl --root /work/infra rollback web web.service.web"
        );
        let apply = NextStep::ApplySaved {
            plan: "/tmp/p.json".into(),
        };
        assert_eq!(apply.to_string(), "drctl apply /tmp/p.json");
    }
}
