//! The one hash drctl writes down: sha256 as lowercase hex (file digests in
//! journals and recipes, plan and spec hashes).

use sha2::{Digest, Sha256};

pub fn sha256_hex(bytes: &[u8]) -> String {
    Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}
