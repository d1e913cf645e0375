//! API tokens for test and benchmark instances: HS256 with the instance's
//! secret, claims `sub`, `role`, `exp` and, for users, `phone`.

use serde_json::json;

/// A token for `role` (and `phone`, for users) named `subject`, valid for
/// `ttl_secs` (negative: already expired), signed with `secret`.
pub fn token(
    secret: &str,
    subject: &str,
    role: &str,
    phone: Option<&str>,
    ttl_secs: i64,
) -> String {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0);
    let mut claims = json!({"sub": subject, "role": role, "exp": now + ttl_secs});
    if let Some(phone) = phone {
        claims["phone"] = json!(phone);
    }
    jsonwebtoken::encode(
        &jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256),
        &claims,
        &jsonwebtoken::EncodingKey::from_secret(secret.as_bytes()),
    )
    .expect("HS256 signs any claims")
}
