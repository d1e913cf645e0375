//! Standard Webhooks 1.0 signatures: a secret is `whsec_` and a random key
//! in base64; a post is signed with HMAC-SHA256 over
//! `{webhook-id}.{webhook-timestamp}.{body}`, sent as `v1,<base64>`, one
//! per secret in force, separated by spaces (during a rotation a receiver
//! holding either secret verifies). Pure.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use hmac::{Hmac, Mac};
use sha2::Sha256;

/// What Standard Webhooks puts before a secret's key.
const PREFIX: &str = "whsec_";
/// Bytes of key in a secret chirp makes (Standard Webhooks asks for 24 to
/// 64).
const KEY_BYTES: usize = 32;

/// A secret that is not `whsec_` and base64.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("a secret is \"whsec_\" followed by a key of 24 to 64 bytes in base64")]
pub struct BadSecret;

/// A new random secret.
pub fn new_secret() -> Result<String, getrandom::Error> {
    let mut key = [0u8; KEY_BYTES];
    getrandom::fill(&mut key)?;
    Ok(format!("{PREFIX}{}", STANDARD.encode(key)))
}

/// The key of `secret`, checked.
pub fn key_of(secret: &str) -> Result<Vec<u8>, BadSecret> {
    let encoded = secret.strip_prefix(PREFIX).ok_or(BadSecret)?;
    let key = STANDARD.decode(encoded).map_err(|_| BadSecret)?;
    if !(24..=64).contains(&key.len()) {
        return Err(BadSecret);
    }
    Ok(key)
}

/// `v1,<signature>` of one post with one key.
pub fn sign(key: &[u8], webhook_id: &str, timestamp: i64, body: &[u8]) -> String {
    let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(key)
        .unwrap_or_else(|_| unreachable!("HMAC takes a key of any length"));
    mac.update(webhook_id.as_bytes());
    mac.update(b".");
    mac.update(timestamp.to_string().as_bytes());
    mac.update(b".");
    mac.update(body);
    format!("v1,{}", STANDARD.encode(mac.finalize().into_bytes()))
}

/// The `webhook-signature` header's value: one signature per key.
pub fn header(keys: &[Vec<u8>], webhook_id: &str, timestamp: i64, body: &[u8]) -> String {
    keys.iter()
        .map(|key| sign(key, webhook_id, timestamp, body))
        .collect::<Vec<_>>()
        .join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_specifications_example_signs_the_same() {
        // The example of the Standard Webhooks reference libraries.
        let key = key_of("whsec_C2FVsBQIhrscChlQIMV+b5sSYspob7oD").unwrap();
        assert_eq!(
            sign(
                &key,
                "msg_27UH4WbU6Z5A5EzD8u03UvzRbpk",
                1649367553,
                br#"{"email":"test@example.com","username":"test_user"}"#
            ),
            "v1,tZ1I4/hDygAJgO5TYxiSd6Sd0kDW6hPenDe+bTa3Kkw="
        );
    }

    #[test]
    fn secrets_are_checked_and_new_ones_are_valid() {
        let secret = new_secret().unwrap();
        assert_eq!(key_of(&secret).unwrap().len(), KEY_BYTES);
        assert_ne!(secret, new_secret().unwrap());
        for bad in [
            "C2FVsBQIhrscChlQIMV+b5sSYspob7oD",
            "whsec_!!",
            "whsec_c2hvcnQ=",
        ] {
            assert_eq!(key_of(bad), Err(BadSecret), "{bad}");
        }
    }

    #[test]
    fn a_rotation_signs_with_both_secrets() {
        let (a, b) = (vec![1u8; 32], vec![2u8; 32]);
        let value = header(&[a.clone(), b.clone()], "msg_1", 1, b"{}");
        let parts: Vec<&str> = value.split(' ').collect();
        assert_eq!(
            parts,
            [sign(&a, "msg_1", 1, b"{}"), sign(&b, "msg_1", 1, b"{}")]
        );
    }
}
