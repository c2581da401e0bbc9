//! The one hash drctl writes down: sha256 as lowercase hex (file digests in
//! journals and recipes, plan and spec hashes), of bytes or of a value's
//! JSON form.

use sha2::{Digest, Sha256};

pub fn sha256_hex(bytes: &[u8]) -> String {
    Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// [`sha256_hex`] of a value's JSON form.
pub fn hash_json<T: serde::Serialize>(value: &T) -> String {
    let json = serde_json::to_string(value).expect("plans and observations serialise");
    sha256_hex(json.as_bytes())
}
