//! ELBv2 calls that `drctl preflight` makes. ELBv2 has no dry run: its
//! mutating calls cannot be tried, only its limits read.
//!
//! moto 5.2.5 answers DescribeAccountLimits with fixed defaults
//! (`application-load-balancers` 20, `network-load-balancers` 20,
//! `target-groups` 3000, …), one page (`moto/elbv2/responses.py`).

use std::collections::BTreeMap;

use super::SdkElbv2;
use crate::cloud::sdk::ELBV2;
use crate::cloud::CloudError;

impl SdkElbv2 {
    /// The account's ELBv2 limits in this region, by name
    /// (`application-load-balancers`, `target-groups`, …); every page.
    pub async fn account_limits(&self) -> Result<BTreeMap<String, u64>, CloudError> {
        let mut limits = BTreeMap::new();
        let mut marker: Option<String> = None;
        loop {
            let request = self
                .client
                .describe_account_limits()
                .set_marker(marker.clone());
            let out = ELBV2.call(request.send()).await?;
            for limit in out.limits() {
                // `Max` is a string on the wire ("20").
                if let (Some(name), Some(max)) = (limit.name(), limit.max()) {
                    if let Ok(max) = max.trim().parse::<u64>() {
                        limits.insert(name.to_string(), max);
                    }
                }
            }
            match out.next_marker() {
                Some(next) if !next.is_empty() && Some(next) != marker.as_deref() => {
                    marker = Some(next.to_string());
                }
                _ => return Ok(limits),
            }
        }
    }
}
