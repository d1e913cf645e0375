//! What `chirp-bench` and `chirp-reliability` share: a mock MyOperator
//! that can misbehave, the chirp process under test, and the load
//! generator; and the store-alone scenario of `chirp-bench`.

pub mod load;
pub mod mock;
pub mod process;
pub mod store_path;

/// Lowercase hex SHA-256.
pub fn sha256_hex(bytes: &[u8]) -> String {
    use sha2::Digest;
    sha2::Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}
