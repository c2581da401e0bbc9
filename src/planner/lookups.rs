//! What planning looks up besides the environment's resources: the base
//! images its bakes start from and the regions whose baked images it may
//! reuse.

use std::collections::BTreeMap;

use crate::graph::runbook_phases;
use crate::kinds::image::base_filter;
use crate::model::{Project, ResourceKind, Runbook};
use crate::plan::resolve::{Resolved, Scope};
use crate::world::{LookupRequest, Value};

/// The lookups a plan of `runbook` needs for its images: base-image filters
/// to resolve, and the regions whose drctl images it may reuse (its own and
/// every copy region). Nothing when it has no image.
pub fn lookups_needed(project: &Project, runbook: &Runbook) -> LookupRequest {
    let exports = BTreeMap::new();
    let scope = Scope {
        project,
        runbook,
        exports: &exports,
    };
    let mut request = LookupRequest::default();
    for phase in runbook_phases(project, runbook) {
        for stack in phase.stacks.iter().filter_map(|s| project.stacks.get(s)) {
            for resource in stack
                .resources
                .iter()
                .filter(|r| r.kind == ResourceKind::Image)
            {
                request.image_regions.insert(runbook.region.clone());
                if let Some(Resolved::Known(Value::Table(filter))) =
                    resource.attr("base_image").map(|e| scope.resolve(stack, e))
                {
                    let wanted = base_filter(&filter);
                    if !request.base_filters.contains(&wanted) {
                        request.base_filters.push(wanted);
                    }
                }
                if let Some(Resolved::Known(regions)) = resource
                    .attr("copy_to_regions")
                    .map(|e| scope.resolve(stack, e))
                {
                    for region in regions.as_str_list().unwrap_or_default() {
                        request.image_regions.insert(region.to_string());
                    }
                }
            }
        }
    }
    request
}
