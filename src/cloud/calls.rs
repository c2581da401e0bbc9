//! Counting the API calls a provider makes, per operation.

use std::collections::BTreeMap;
use std::fmt;
use std::sync::{Arc, Mutex};

use aws_smithy_runtime_api::box_error::BoxError;
use aws_smithy_runtime_api::client::interceptors::context::BeforeSerializationInterceptorContextRef;
use aws_smithy_runtime_api::client::interceptors::Intercept;
use aws_smithy_runtime_api::client::orchestrator::Metadata;
use aws_smithy_runtime_api::client::runtime_components::RuntimeComponents;
use aws_smithy_types::config_bag::ConfigBag;

/// API calls made, per operation name (`DescribeVpcs`, `RunInstances`, …;
/// one per operation, retries of the same operation not counted again).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CallStats(BTreeMap<String, usize>);

impl CallStats {
    pub fn total(&self) -> usize {
        self.0.values().sum()
    }

    /// Calls that may change something: every operation whose name does not
    /// start with `Describe`, `Get` or `List`.
    pub fn mutating(&self) -> usize {
        self.mutating_calls().values().sum()
    }

    /// The mutating operations and their counts (for assertion messages).
    pub fn mutating_calls(&self) -> BTreeMap<String, usize> {
        self.0
            .iter()
            .filter(|(op, _)| !is_read_only(op))
            .map(|(op, n)| (op.clone(), *n))
            .collect()
    }

    /// Calls of one operation.
    pub fn get(&self, operation: &str) -> usize {
        self.0.get(operation).copied().unwrap_or(0)
    }

    pub fn operations(&self) -> &BTreeMap<String, usize> {
        &self.0
    }

    /// The calls made after `earlier` was taken.
    pub fn since(&self, earlier: &CallStats) -> CallStats {
        CallStats(
            self.0
                .iter()
                .map(|(op, n)| (op.clone(), n - earlier.get(op).min(*n)))
                .filter(|(_, n)| *n > 0)
                .collect(),
        )
    }
}

impl fmt::Display for CallStats {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, (op, n)) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str(", ")?;
            }
            write!(f, "{op}×{n}")?;
        }
        Ok(())
    }
}

fn is_read_only(operation: &str) -> bool {
    ["Describe", "Get", "List"]
        .iter()
        .any(|p| operation.starts_with(p))
}

/// An SDK interceptor counting operations by name; one instance is shared
/// by the provider's EC2 and ELBv2 clients.
#[derive(Debug, Clone, Default)]
pub struct CallCounter(Arc<Mutex<BTreeMap<String, usize>>>);

impl CallCounter {
    pub fn stats(&self) -> CallStats {
        CallStats(self.0.lock().unwrap_or_else(|e| e.into_inner()).clone())
    }
}

impl Intercept for CallCounter {
    fn name(&self) -> &'static str {
        "drctl::CallCounter"
    }

    // Not `read_before_execution`: client interceptors run that before the
    // operation's configuration (and its name) is in the bag. Serialization
    // happens once per operation, before the retry loop.
    fn read_before_serialization(
        &self,
        _context: &BeforeSerializationInterceptorContextRef<'_>,
        _components: &RuntimeComponents,
        cfg: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        if let Some(metadata) = cfg.load::<Metadata>() {
            *self
                .0
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .entry(metadata.name().to_string())
                .or_default() += 1;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn call_stats_tell_mutating_calls_apart() {
        let stats = CallStats(BTreeMap::from([
            ("DescribeVpcs".to_string(), 3),
            ("GetConsoleOutput".to_string(), 1),
            ("ListTagsForResource".to_string(), 1),
            ("CreateVpc".to_string(), 2),
            ("ModifyListener".to_string(), 1),
        ]));
        assert_eq!(stats.total(), 8);
        assert_eq!(stats.mutating(), 3);
        assert_eq!(stats.get("CreateVpc"), 2);
        let earlier = CallStats(BTreeMap::from([("DescribeVpcs".to_string(), 1)]));
        let since = stats.since(&earlier);
        assert_eq!(since.get("DescribeVpcs"), 2);
        assert_eq!(since.total(), 7);
        assert!(stats.to_string().contains("CreateVpc×2"));
    }
}
