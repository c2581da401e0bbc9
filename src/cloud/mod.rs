//! AWS, reached only through the official SDK: client configuration and one
//! small adapter trait per service, so the engine reads as intent and tests can
//! point the real SDK at moto server.

pub mod aws;
pub mod background;
pub mod calls;
pub mod ec2;
pub mod elbv2;
pub mod kinds;
pub(crate) mod lookups;
pub mod names;
pub mod provider;
mod sdk;
pub mod tagging;
pub mod wait;

use std::time::Duration;

use aws_config::retry::RetryConfig;
use aws_config::timeout::TimeoutConfig;
use aws_config::{BehaviorVersion, Region, SdkConfig};
use aws_credential_types::provider::error::CredentialsError;
use aws_sdk_ec2::config::retry::{RetryPartition, TokenBucket};
use aws_sdk_ec2::config::Credentials;
use aws_sdk_ec2::error::{ProvideErrorMetadata, SdkError};
use aws_smithy_runtime_api::client::http::SharedHttpClient;
use aws_smithy_types::error::display::DisplayErrorContext;

/// Where and as whom to call AWS. Filled from the global CLI options.
#[derive(Debug, Clone)]
pub struct AwsSettings {
    /// `--region`; otherwise the runbook's region; otherwise aws-config's chain.
    pub region: Option<String>,
    /// `--endpoint-url` or the sandbox; `AWS_ENDPOINT_URL` is honoured by aws-config itself.
    pub endpoint_url: Option<String>,
    pub profile: Option<String>,
    /// Fixed credentials (the sandbox uses moto's "testing" pair).
    pub static_credentials: Option<(String, String)>,
    /// Attempts per call, including the first; throttling, 5xx and dropped
    /// connections are retried (the SDK's standard mode).
    pub max_attempts: u32,
    /// The back-off before the first retry; it doubles per attempt up to
    /// `max_backoff`, and each wait is drawn at random below it (full jitter).
    pub initial_backoff: Duration,
    pub max_backoff: Duration,
    pub connect_timeout: Duration,
    /// One attempt of one API call.
    pub attempt_timeout: Duration,
    /// One API call, all attempts included.
    pub operation_timeout: Duration,
}

impl Default for AwsSettings {
    fn default() -> Self {
        AwsSettings {
            region: None,
            endpoint_url: None,
            profile: None,
            static_credentials: None,
            // A control plane must ride out sustained throttling rather than
            // leave a phase half done: 25 attempts, as Terraform's AWS provider.
            max_attempts: 25,
            initial_backoff: Duration::from_secs(1),
            max_backoff: Duration::from_secs(20),
            connect_timeout: Duration::from_secs(5),
            attempt_timeout: Duration::from_secs(30),
            // 24 back-offs are at most 1+2+4+8+16+19×20 = 411 s (about half
            // that on average): the whole call must outlast them.
            operation_timeout: Duration::from_secs(600),
        }
    }
}

impl AwsSettings {
    /// Settings for a moto server at `endpoint`.
    pub fn sandbox(endpoint: &str, region: &str) -> Self {
        AwsSettings {
            region: Some(region.to_string()),
            endpoint_url: Some(endpoint.to_string()),
            static_credentials: Some(("testing".into(), "testing".into())),
            ..AwsSettings::default()
        }
    }

    /// The SDK configuration every service client is built from.
    pub async fn load(&self) -> SdkConfig {
        let mut loader = aws_config::defaults(BehaviorVersion::latest())
            .http_client(https_client())
            .retry_config(
                RetryConfig::standard()
                    .with_max_attempts(self.max_attempts)
                    .with_initial_backoff(self.initial_backoff)
                    .with_max_backoff(self.max_backoff),
            )
            .timeout_config(
                TimeoutConfig::builder()
                    .connect_timeout(self.connect_timeout)
                    .operation_attempt_timeout(self.attempt_timeout)
                    .operation_timeout(self.operation_timeout)
                    .build(),
            );
        if let Some(region) = &self.region {
            loader = loader.region(Region::new(region.clone()));
        }
        if let Some(endpoint) = &self.endpoint_url {
            loader = loader.endpoint_url(endpoint);
        }
        if let Some(profile) = &self.profile {
            loader = loader.profile_name(profile);
        }
        if let Some((key, secret)) = &self.static_credentials {
            loader =
                loader.credentials_provider(Credentials::new(key, secret, None, None, "drctl"));
        }
        loader.load().await
    }
}

/// The HTTP client of every SDK call, the credential providers' (SSO, STS,
/// IMDS, ECS) included: the SDK's default client — hyper 1.x, rustls, the
/// system's root certificates, `HTTPS_PROXY`/`NO_PROXY` — with ring as the
/// crypto provider instead of aws-lc, whose C build the SDK's
/// `default-https-client` feature would compile (see Cargo.toml). It speaks
/// plain http too (moto on loopback).
fn https_client() -> SharedHttpClient {
    use aws_smithy_http_client::proxy::ProxyConfig;
    use aws_smithy_http_client::tls::{rustls_provider::CryptoMode, Provider};
    use aws_smithy_http_client::{Builder, Connector};

    Builder::new().build_with_connector_fn(|settings, components| {
        let mut connector = Connector::builder().tls_provider(Provider::Rustls(CryptoMode::Ring));
        connector.set_connector_settings(settings.cloned());
        if let Some(components) = components {
            connector.set_sleep_impl(components.sleep_impl());
        }
        connector.set_proxy_config(Some(ProxyConfig::from_env()));
        connector.build()
    })
}

/// The retry partition of drctl's clients for `service`: its own retry quota,
/// unlimited. The SDK's default quota (500 tokens, 5 per throttled retry, lost
/// when a retry fails again) runs dry under sustained throttling and then
/// fails calls with attempts left; drctl's bounded parallelism and growing
/// back-off already keep its retries from storming.
pub(crate) fn retry_partition(service: &'static str) -> RetryPartition {
    RetryPartition::custom(service)
        .token_bucket(TokenBucket::unlimited())
        .build()
}

/// A failed AWS call, named by service and operation, in one line: the AWS
/// error code and message, or for a request that got no answer a short
/// classified reason; how many attempts were made when there were retries.
/// The SDK's whole error chain is kept in `detail` (logged at debug level,
/// i.e. shown with `-v`): it is a screen of `Debug` output for dispatch
/// failures, never a headline.
#[derive(Debug, thiserror::Error)]
pub enum CloudError {
    #[error("{service} {operation} failed{}: {reason}", after(*attempts))]
    NoCredentials {
        service: &'static str,
        operation: &'static str,
        /// "no AWS credentials found …", or why loading them failed.
        reason: String,
        attempts: u32,
        detail: String,
    },
    #[error("{service} {operation} failed{}{}: {message}", code.as_deref().map(|c| format!(" ({c})")).unwrap_or_default(), after(*attempts))]
    Call {
        service: &'static str,
        operation: &'static str,
        code: Option<String>,
        /// AWS's message, or what became of a request that got no answer.
        message: String,
        /// Attempts made, the first included (0: not recorded).
        attempts: u32,
        detail: String,
    },
    #[error("{service} {operation} returned no {field}")]
    MissingField {
        service: &'static str,
        operation: &'static str,
        field: &'static str,
    },
    /// A wait passed its deadline ([`wait::until`]).
    #[error("timed out after {:.1}s waiting for {what} (last state: {last_state})", waited.as_secs_f64())]
    Timeout {
        what: String,
        waited: Duration,
        last_state: String,
    },
    /// Something reached a state it will not leave by waiting (an instance
    /// terminated while starting, a load balancer `failed`).
    #[error("{what} is {state}: {reason}")]
    Failed {
        what: String,
        state: String,
        reason: String,
    },
    #[error("{operation} of `{kind}` resources is not supported yet")]
    Unsupported {
        kind: String,
        operation: &'static str,
    },
    /// The attributes handed to the provider are not in the normalised shape.
    #[error(transparent)]
    InvalidAttr(#[from] crate::kinds::common::BadAttr),
}

impl CloudError {
    /// What the user can do about it.
    pub fn hint(&self) -> Option<&'static str> {
        match self {
            CloudError::NoCredentials { .. } => Some(
                "set AWS_PROFILE or pass --profile, export AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY, or use --sandbox for the local emulator",
            ),
            CloudError::Call { code: Some(c), .. } if c.contains("Throttl") => {
                Some("AWS is throttling this account; drctl retried with back-off. Lower --parallelism or try again")
            }
            CloudError::Timeout { .. } => Some(
                "the resource may still get there: `drctl resume RUN_ID` continues without creating duplicates",
            ),
            _ => None,
        }
    }

    /// The AWS error code, e.g. `InvalidVpcID.NotFound`.
    pub fn code(&self) -> Option<&str> {
        match self {
            CloudError::Call { code, .. } => code.as_deref(),
            _ => None,
        }
    }
}

/// " after N attempts" when the call was retried.
fn after(attempts: u32) -> String {
    if attempts > 1 {
        format!(" after {attempts} attempts")
    } else {
        String::new()
    }
}

/// Turns an SDK error into a one-line [`CloudError`] for `service
/// operation`; `attempts` is what the client's [`sdk::AttemptRecorder`] saw.
pub(crate) fn call_error<E, R>(
    service: &'static str,
    operation: &'static str,
    attempts: &sdk::Attempts,
    err: SdkError<E, R>,
) -> CloudError
where
    E: ProvideErrorMetadata + std::error::Error + 'static,
    R: std::fmt::Debug,
{
    let detail = DisplayErrorContext(&err).to_string();
    tracing::debug!(service, operation, attempts = attempts.made, %detail, "AWS call failed");
    let endpoint = attempts.endpoint.as_deref().unwrap_or("the AWS endpoint");
    // The SDK error's own `Display` names only its variant ("dispatch
    // failure"); what happened is in its sources.
    let chain = std::error::Error::source(&err)
        .map(causes)
        .unwrap_or_default();
    // The innermost cause's message is the specific one ("Connection refused
    // (os error 111)"); the outer ones only say which layer failed.
    let root = || short(&chain.last().map_or_else(String::new, |e| e.to_string()));
    if let Some(credentials) = chain
        .iter()
        .find_map(|e| e.downcast_ref::<CredentialsError>())
    {
        let reason = match credentials {
            CredentialsError::CredentialsNotLoaded(_) => {
                "no AWS credentials found (profile/env/IMDS)".to_string()
            }
            // Its first cause says which provider failed and how ("failed
            // to load IMDS session token"); deeper ones are transport noise.
            other => {
                let why = std::error::Error::source(other)
                    .map_or_else(|| other.to_string(), |e| e.to_string());
                format!("cannot load AWS credentials: {}", short(&why))
            }
        };
        return CloudError::NoCredentials {
            service,
            operation,
            reason,
            attempts: attempts.made,
            detail,
        };
    }
    let code = err.code().map(str::to_string);
    let message = match &err {
        SdkError::ServiceError(_) => err.message().map_or_else(|| "(no message)".into(), short),
        SdkError::TimeoutError(_) => root(),
        SdkError::DispatchFailure(d) => {
            let refused = chain
                .iter()
                .filter_map(|e| e.downcast_ref::<std::io::Error>())
                .any(|e| e.kind() == std::io::ErrorKind::ConnectionRefused);
            if d.is_timeout() {
                format!("timed out reaching {endpoint}: {}", root())
            } else if refused {
                format!("cannot connect to {endpoint} (connection refused)")
            } else if d.is_io() || (!d.is_user() && attempts.endpoint.is_some()) {
                // Sent (the recorder saw it go), and no usable answer came:
                // a dropped connection, a reset, a DNS failure.
                format!("no answer from {endpoint}: {}", root())
            } else {
                // Failed before transmission: endpoint resolution, signing.
                format!("request not sent: {}", root())
            }
        }
        SdkError::ResponseError(_) => {
            format!("unreadable response from {endpoint}: {}", root())
        }
        _ => root(),
    };
    CloudError::Call {
        service,
        operation,
        code,
        message,
        attempts: attempts.made,
        detail,
    }
}

/// `err` and its sources, outermost first.
fn causes<'a>(
    err: &'a (dyn std::error::Error + 'static),
) -> Vec<&'a (dyn std::error::Error + 'static)> {
    std::iter::successors(Some(err), |e| e.source()).collect()
}

/// `text` on one line and at most [`SHORT`] characters: a headline, not a dump.
fn short(text: &str) -> String {
    let line = text.split_whitespace().collect::<Vec<_>>().join(" ");
    match line.char_indices().nth(SHORT) {
        Some((cut, _)) => format!("{}…", &line[..cut]),
        None => line,
    }
}

const SHORT: usize = 160;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_headline_is_one_short_line() {
        assert_eq!(short("a\n  b\tc"), "a b c");
        let long = "x".repeat(500);
        assert_eq!(short(&long).chars().count(), SHORT + 1);
        assert!(short(&long).ends_with('…'));
        assert_eq!(after(0), "");
        assert_eq!(after(1), "");
        assert_eq!(after(25), " after 25 attempts");
    }
}
