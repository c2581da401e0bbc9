//! Deleting an image's objects: a builder is terminated; an image is
//! deregistered with its snapshots and its copies in other regions, but
//! never while an instance or a launch template still launches it or one
//! of its copies (checked at the last moment, and said).

use crate::cloud::aws::AwsProvider;
use crate::cloud::ec2::SdkEc2;
use crate::cloud::kinds::common::{gone_ok, is_not_found};
use crate::cloud::CloudError;
use crate::kinds::image::is_builder;
use crate::world::ObservedResource;
use futures_util::future::try_join_all;

pub(super) async fn delete(
    aws: &AwsProvider,
    current: &ObservedResource,
) -> Result<(), CloudError> {
    let address = &current.address;
    if is_builder(current) {
        return super::bake::terminate(aws, address, &current.id).await;
    }
    let region = aws.region();
    let copies = super::copies::recorded(&current.tags);
    // Who launches the image or one of its copies, every region at once.
    let each = std::iter::once((&region, &current.id)).chain(&copies);
    let found = try_join_all(each.map(|(r, id)| async move {
        let users = aws.ec2_in(r).image_users(std::slice::from_ref(id)).await?;
        let copy = (id != &current.id).then(|| format!(" in {r} (copy {id})"));
        Ok::<_, CloudError>(
            users
                .into_iter()
                .map(move |u| format!("{}{}", u.user, copy.clone().unwrap_or_default())),
        )
    }))
    .await?;
    let users: Vec<String> = found.into_iter().flatten().collect();
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
    let snapshots: Vec<String> = found
        .iter()
        .flat_map(crate::cloud::ec2::snapshot_ids)
        .collect();
    match ec2.deregister_image(id).await {
        Err(e) if is_not_found(&e) || e.code() == Some("InvalidAMIID.Unavailable") => {}
        other => other?,
    }
    for snapshot in snapshots {
        gone_ok(ec2.delete_snapshot(&snapshot).await)?;
    }
    Ok(())
}
