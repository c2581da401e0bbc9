//! Deleting an image's objects: a builder is terminated; an image is
//! deregistered with its snapshots and its copies in other regions, but
//! never while an instance or a launch template still launches it or one
//! of its copies (checked at the last moment, and said).

use super::{copies, is_builder};
use crate::cloud::aws::AwsProvider;
use crate::cloud::ec2::{Ec2, SdkEc2};
use crate::cloud::lookups::users_of;
use crate::cloud::CloudError;
use crate::kinds::common::{gone_ok, is_not_found};
use crate::world::ObservedResource;

pub(super) async fn delete(aws: &AwsProvider, current: &ObservedResource) -> Result<(), CloudError> {
    let address = &current.address;
    if is_builder(current) {
        let ids = [current.id.clone()];
        gone_ok(aws.ec2.terminate_instances(&ids).await)?;
        return crate::kinds::instances::wait_terminated(aws, &format!("{address}: builder"), &ids)
            .await;
    }
    let region = aws.region();
    let copies = copies::recorded(&current.tags);
    let mut users: Vec<String> = users_of(aws, &region, std::slice::from_ref(&current.id))
        .await?
        .into_values()
        .flatten()
        .collect();
    for (copy_region, copy) in &copies {
        for user in users_of(aws, copy_region, std::slice::from_ref(copy))
            .await?
            .into_values()
            .flatten()
        {
            users.push(format!("{user} in {copy_region} (copy {copy})"));
        }
    }
    if !users.is_empty() {
        return Err(CloudError::Failed {
            what: format!("{address} ({})", current.id),
            state: "in use".into(),
            reason: format!(
                "not deregistered: launched by {}. Replace or stop those first",
                users.join(", ")
            ),
        });
    }
    for (copy_region, copy) in &copies {
        deregister(&aws.ec2_in(copy_region), copy).await?;
    }
    deregister(&aws.ec2, &current.id).await
}

/// Deregisters `id` and deletes its snapshots (after: EC2 refuses to delete
/// a snapshot a registered image uses). Gone already is done.
pub(super) async fn deregister(ec2: &SdkEc2, id: &str) -> Result<(), CloudError> {
    let found = ec2.images_by_id(&[id.to_string()]).await?;
    let snapshots: Vec<String> = found.iter().flat_map(super::bake::snapshots_of).collect();
    match ec2.deregister_image(id).await {
        Err(e) if is_not_found(&e) || e.code() == Some("InvalidAMIID.Unavailable") => {}
        other => other?,
    }
    for snapshot in snapshots {
        gone_ok(ec2.delete_snapshot(&snapshot).await)?;
    }
    Ok(())
}
