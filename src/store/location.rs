//! Where a run store is: a local state directory, or a prefix in an S3
//! bucket a team shares (`s3://BUCKET/PREFIX`). Journaled by every run (as
//! its target's `state_dir`) so `drctl resume ID` finds the store again.

use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

/// A store's place.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StoreLocation {
    /// A state directory on this machine (`.drctl` by default).
    Local(PathBuf),
    Bucket(BucketLocation),
}

/// A store in S3: `s3://bucket/prefix`, and how to reach and write it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BucketLocation {
    pub bucket: String,
    /// Empty, or ending in `/`.
    pub prefix: String,
    /// The bucket's region (default: the AWS configuration's).
    pub region: Option<String>,
    /// SSE-KMS with this key; SSE-S3 without one.
    pub kms_key: Option<String>,
    /// How long a lock holder that stops renewing keeps the lock.
    pub lease: Duration,
}

/// A lock's lease unless `[state] lease` says otherwise: renewed every 20 s,
/// lapsed a minute after its holder's last renewal.
pub const DEFAULT_LEASE: Duration = Duration::from_secs(60);

impl StoreLocation {
    /// `s3://BUCKET[/PREFIX]`, or a path. An `s3:` URL without a bucket, or
    /// another scheme, is refused (a typo must not become a local folder).
    pub fn parse(text: &str) -> Result<StoreLocation, String> {
        if let Some(rest) = text.strip_prefix("s3://") {
            let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
            if bucket.len() < 3 || !bucket.chars().all(valid_bucket_char) {
                return Err(format!(
                    "`{text}`: expected s3://BUCKET/PREFIX with a bucket name of 3 or more lowercase letters, digits, dots and hyphens"
                ));
            }
            let prefix = prefix.trim_matches('/');
            return Ok(StoreLocation::Bucket(BucketLocation {
                bucket: bucket.to_string(),
                prefix: match prefix.is_empty() {
                    true => String::new(),
                    false => format!("{prefix}/"),
                },
                region: None,
                kms_key: None,
                lease: DEFAULT_LEASE,
            }));
        }
        if let Some((scheme, _)) = text.split_once("://") {
            return Err(format!(
                "`{text}`: a store is a directory or s3://BUCKET/PREFIX, not {scheme}://"
            ));
        }
        Ok(StoreLocation::Local(PathBuf::from(text)))
    }
}

fn valid_bucket_char(c: char) -> bool {
    c.is_ascii_lowercase() || c.is_ascii_digit() || c == '.' || c == '-'
}

impl fmt::Display for StoreLocation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            StoreLocation::Local(dir) => write!(f, "{}", dir.display()),
            StoreLocation::Bucket(b) => write!(f, "{b}"),
        }
    }
}

impl fmt::Display for BucketLocation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "s3://{}/{}",
            self.bucket,
            self.prefix.trim_end_matches('/')
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_store_is_a_bucket_url_or_a_directory_and_nothing_else() {
        let StoreLocation::Bucket(b) = StoreLocation::parse("s3://team-dr/drctl/prod/").unwrap()
        else {
            panic!("a bucket")
        };
        assert_eq!(
            (b.bucket.as_str(), b.prefix.as_str()),
            ("team-dr", "drctl/prod/")
        );
        assert_eq!(b.to_string(), "s3://team-dr/drctl/prod");
        let StoreLocation::Bucket(b) = StoreLocation::parse("s3://team-dr").unwrap() else {
            panic!("a bucket")
        };
        assert_eq!(b.prefix, "");
        assert_eq!(
            StoreLocation::parse(".drctl").unwrap(),
            StoreLocation::Local(".drctl".into())
        );
        for bad in ["s3://", "s3://ab/x", "s3://Team/x", "gs://bucket/x"] {
            assert!(StoreLocation::parse(bad).is_err(), "{bad}");
        }
    }
}
