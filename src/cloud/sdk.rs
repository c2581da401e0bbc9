//! The one way the adapters call the SDK: a failed request becomes a
//! [`CloudError`] naming the service and the operation, a paginated Describe
//! is read to its last page the same way, and an output missing what the API
//! promises is reported alike.
//!
//! The operation's name is read from the SDK's own per-operation types
//! (`CreateVpcError`, `CreateVpcOutput`), so no call site spells it and it
//! cannot disagree with the request actually sent.
//!
//! ```text
//! let out = EC2.call(self.client.create_vpc().cidr_block(cidr).send()).await?;
//! let id = EC2.required(out, "VpcId", |o| o.vpc?.vpc_id)?;
//! // Every page:
//! let vpcs = EC2.call(self.client.describe_vpcs().into_paginator().items().send().try_collect()).await?;
//! ```

use std::fmt::Debug;
use std::future::IntoFuture;

use aws_sdk_ec2::error::{ProvideErrorMetadata, SdkError};

use super::{call_error, CloudError};

/// An AWS service, as error messages name it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Service(&'static str);

pub(crate) const EC2: Service = Service("EC2");
pub(crate) const ELBV2: Service = Service("ELBv2");

impl Service {
    /// Awaits one request: a fluent builder's `send()`, or, to read every
    /// page of a paginated Describe, its `into_paginator().items().send()
    /// .try_collect()` (which stops at the first failed page).
    pub(crate) async fn call<T, E, R>(
        self,
        request: impl IntoFuture<Output = Result<T, SdkError<E, R>>>,
    ) -> Result<T, CloudError>
    where
        E: ProvideErrorMetadata + std::error::Error + 'static,
        R: Debug,
    {
        request
            .await
            .map_err(|err| call_error(self.0, operation::<E>(), err))
    }

    /// What `value` takes out of an operation's `output`, or the error
    /// naming the `field` the API promised and did not return.
    pub(crate) fn required<O, V>(
        self,
        output: O,
        field: &'static str,
        value: impl FnOnce(O) -> Option<V>,
    ) -> Result<V, CloudError> {
        value(output).ok_or(CloudError::MissingField {
            service: self.0,
            operation: operation::<O>(),
            field,
        })
    }
}

/// The API operation a generated per-operation SDK type belongs to:
/// `aws_sdk_ec2::operation::create_vpc::CreateVpcError` and `…CreateVpcOutput`
/// both give `CreateVpc`. `type_name` is best-effort by its contract; the
/// tests below pin what it gives for both SDK crates.
fn operation<T>() -> &'static str {
    let path = std::any::type_name::<T>();
    let name = path.rsplit("::").next().unwrap_or(path);
    name.strip_suffix("Error")
        .or_else(|| name.strip_suffix("Output"))
        .unwrap_or(name)
}

#[cfg(test)]
mod tests {
    use super::*;
    use aws_sdk_ec2::operation::create_vpc::{CreateVpcError, CreateVpcOutput};
    use aws_sdk_ec2::operation::describe_vpcs::DescribeVpcsError;
    use aws_sdk_elasticloadbalancingv2::operation::describe_target_health::DescribeTargetHealthError;

    #[test]
    fn operations_are_named_by_the_sdk_types() {
        assert_eq!(operation::<CreateVpcError>(), "CreateVpc");
        assert_eq!(operation::<CreateVpcOutput>(), "CreateVpc");
        assert_eq!(operation::<DescribeVpcsError>(), "DescribeVpcs");
        assert_eq!(
            operation::<DescribeTargetHealthError>(),
            "DescribeTargetHealth"
        );
    }

    #[test]
    fn a_missing_field_names_service_operation_and_field() {
        let err = EC2
            .required(CreateVpcOutput::builder().build(), "VpcId", |o| {
                o.vpc?.vpc_id
            })
            .unwrap_err();
        assert_eq!(err.to_string(), "EC2 CreateVpc returned no VpcId");
    }
}
