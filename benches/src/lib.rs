//! What `chirp-bench` and `chirp-reliability` share: a mock MyOperator
//! that can misbehave, the chirp process under test, and the load
//! generator; and the in-process scenarios of `chirp-bench` (the store
//! alone, and the drain through the component against native).

pub mod load;
pub mod mock;
pub mod native_provider;
pub mod process;
pub mod sandbox_drain;
pub mod store_path;

/// Lowercase hex SHA-256.
pub fn sha256_hex(bytes: &[u8]) -> String {
    use sha2::Digest;
    sha2::Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}
