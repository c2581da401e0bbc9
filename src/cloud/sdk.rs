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

use std::cell::RefCell;
use std::fmt::Debug;
use std::future::IntoFuture;

use aws_sdk_ec2::error::{ProvideErrorMetadata, SdkError};
use aws_smithy_runtime_api::box_error::BoxError;
use aws_smithy_runtime_api::client::interceptors::context::BeforeTransmitInterceptorContextRef;
use aws_smithy_runtime_api::client::interceptors::Intercept;
use aws_smithy_runtime_api::client::retries::RequestAttempts;
use aws_smithy_runtime_api::client::runtime_components::RuntimeComponents;
use aws_smithy_types::config_bag::ConfigBag;

use super::{call_error, CloudError};

/// An AWS service, as error messages name it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Service(&'static str);

pub(crate) const EC2: Service = Service("EC2");
pub(crate) const ELBV2: Service = Service("ELBv2");
pub(crate) const TAGGING: Service = Service("Tagging");

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
        // The SDK drives its retry loop inside this future, on this task: the
        // [`AttemptRecorder`] of the client reports into this call's slot.
        let (result, attempts) = ATTEMPTS
            .scope(RefCell::new(Attempts::default()), async {
                let result = request.await;
                (result, ATTEMPTS.with(|a| a.borrow().clone()))
            })
            .await;
        result.map_err(|err| call_error(self.0, operation::<E>(), &attempts, err))
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

/// How far the SDK got with one request: what [`call_error`] says besides the
/// error itself. For a paginated read, the page that failed.
#[derive(Debug, Clone, Default)]
pub(crate) struct Attempts {
    /// Attempts made, the first included; 0 when the client records none
    /// (one built without [`AttemptRecorder`]).
    pub(crate) made: u32,
    /// `scheme://host[:port]` the last attempt was sent to, once resolved.
    pub(crate) endpoint: Option<String>,
}

tokio::task_local! {
    static ATTEMPTS: RefCell<Attempts>;
}

/// An SDK interceptor telling [`Service::call`] how many attempts a request
/// took and where it was sent: neither is in the `SdkError` (the attempt
/// count lives only in the orchestrator's `ConfigBag`). Outside
/// [`Service::call`] it records nothing. Every client the adapters use is
/// built with it.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct AttemptRecorder;

impl Intercept for AttemptRecorder {
    fn name(&self) -> &'static str {
        "drctl::AttemptRecorder"
    }

    // Before identity resolution, so an attempt failing for want of
    // credentials is counted too.
    fn read_before_attempt(
        &self,
        _context: &BeforeTransmitInterceptorContextRef<'_>,
        _components: &RuntimeComponents,
        cfg: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        if let Some(n) = cfg.load::<RequestAttempts>() {
            let _ = ATTEMPTS.try_with(|a| a.borrow_mut().made = n.attempts());
        }
        Ok(())
    }

    // The endpoint is resolved inside the attempt; the request is gone once
    // transmitted.
    fn read_before_transmit(
        &self,
        context: &BeforeTransmitInterceptorContextRef<'_>,
        _components: &RuntimeComponents,
        _cfg: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        let endpoint = origin(context.request().uri());
        let _ = ATTEMPTS.try_with(|a| a.borrow_mut().endpoint = Some(endpoint));
        Ok(())
    }
}

/// `scheme://authority` of `uri`, without path or query.
fn origin(uri: &str) -> String {
    let start = uri.find("://").map_or(0, |i| i + 3);
    let end = uri[start..]
        .find(['/', '?'])
        .map_or(uri.len(), |i| start + i);
    uri[..end].to_string()
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
    fn an_origin_drops_path_and_query() {
        assert_eq!(origin("http://127.0.0.1:9/?Action=X"), "http://127.0.0.1:9");
        assert_eq!(
            origin("https://ec2.us-west-2.amazonaws.com/"),
            "https://ec2.us-west-2.amazonaws.com"
        );
        assert_eq!(origin("http://h:1"), "http://h:1");
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
