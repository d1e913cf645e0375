//! `chirp token`: mints an API token from the configured secret, so that an
//! operator (or a newcomer following the README) can call the API without
//! a token service of their own. It writes what [`super::auth`] checks:
//! `sub`, `role`, `phone` for users, `iat`, `exp`, and the issuer and
//! audience when the operator requires them.

use std::time::Duration;

use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde::Serialize;

use super::auth::Role;
use crate::config::AuthConfig;
use crate::phone::Phone;

/// The longest a minted token may live when the operator sets no
/// `CHIRP_JWT_MAX_LIFETIME`.
pub const MAX_TTL: Duration = Duration::from_secs(30 * 24 * 3600);

/// What to mint.
#[derive(Debug, Clone)]
pub struct TokenRequest {
    /// `admin` or `user`.
    pub role: Role,
    /// Who the token is for (its `sub`).
    pub subject: String,
    /// A user's own phone (required for `user`, refused for `admin`).
    pub phone: Option<String>,
    /// How long the token lives.
    pub ttl: Duration,
}

/// Why a token cannot be minted.
#[derive(Debug, thiserror::Error)]
pub enum MintError {
    #[error("authentication is off (CHIRP_INSECURE_NO_AUTH): there is no secret to sign with")]
    /// Authentication is off.
    NoSecret,
    #[error("--sub must be 1 to 128 printable characters")]
    /// The subject is empty, too long or has control characters.
    Subject,
    #[error("a user token needs --phone (the user sees only that phone's data)")]
    /// A user token without a phone.
    UserWithoutPhone,
    #[error("an admin token carries no phone")]
    /// An admin token with a phone.
    AdminWithPhone,
    #[error("--phone: {0}")]
    /// The phone is not one chirp sends to.
    Phone(#[from] crate::phone::PhoneError),
    #[error("--ttl must be from 1s to {}", humantime::format_duration(*.0))]
    /// The lifetime is outside what chirp accepts (the longest named).
    Lifetime(Duration),
    #[error("cannot sign the token: {0}")]
    /// Signing failed.
    Sign(#[from] jsonwebtoken::errors::Error),
}

#[derive(Serialize)]
struct MintedClaims<'a> {
    sub: &'a str,
    role: Role,
    #[serde(skip_serializing_if = "Option::is_none")]
    phone: Option<String>,
    iat: u64,
    exp: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    iss: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    aud: Option<&'a str>,
}

/// A token for `request`, signed with the current secret of `auth`.
pub fn mint(auth: &AuthConfig, request: &TokenRequest) -> Result<String, MintError> {
    let secret = auth.jwt_secret.as_ref().ok_or(MintError::NoSecret)?;
    let subject = request.subject.as_str();
    if subject.is_empty() || subject.len() > 128 || subject.chars().any(char::is_control) {
        return Err(MintError::Subject);
    }
    let phone = match (request.role, &request.phone) {
        (Role::User, None) => return Err(MintError::UserWithoutPhone),
        (Role::Admin, Some(_)) => return Err(MintError::AdminWithPhone),
        (_, Some(phone)) => Some(Phone::parse(phone)?.as_str().to_string()),
        (Role::Admin, None) => None,
    };
    let longest = auth
        .token_rules
        .max_lifetime
        .unwrap_or(MAX_TTL)
        .min(MAX_TTL);
    if request.ttl < Duration::from_secs(1) || request.ttl > longest {
        return Err(MintError::Lifetime(longest));
    }
    let now = jsonwebtoken::get_current_timestamp();
    let claims = MintedClaims {
        sub: subject,
        role: request.role,
        phone,
        iat: now,
        exp: now + request.ttl.as_secs(),
        iss: auth.token_rules.issuer.as_deref(),
        aud: auth.token_rules.audience.as_deref(),
    };
    Ok(jsonwebtoken::encode(
        &Header::new(Algorithm::HS256),
        &claims,
        &EncodingKey::from_secret(secret.0.as_bytes()),
    )?)
}

#[cfg(test)]
mod tests {
    use super::super::auth::Auth;
    use super::*;
    use crate::config::{Secret, TokenRules};

    fn auth_config(rules: TokenRules) -> AuthConfig {
        AuthConfig {
            jwt_secret: Some(Secret("a-secret-that-is-at-least-32-bytes-long".into())),
            token_rules: rules,
            insecure_no_auth: false,
        }
    }

    fn request(role: Role, phone: Option<&str>, ttl_secs: u64) -> TokenRequest {
        TokenRequest {
            role,
            subject: "ops-anita".into(),
            phone: phone.map(String::from),
            ttl: Duration::from_secs(ttl_secs),
        }
    }

    /// What `chirp token` mints, chirp accepts, with the operator's issuer,
    /// audience and lifetime rules in force.
    #[test]
    fn a_minted_token_passes_the_checks_of_the_same_configuration() {
        let rules = TokenRules {
            issuer: Some("earlybird".into()),
            audience: Some("chirp".into()),
            max_lifetime: Some(Duration::from_secs(8 * 3600)),
            ..TokenRules::default()
        };
        let config = auth_config(rules.clone());
        let verifier = Auth::hs256("a-secret-that-is-at-least-32-bytes-long", &rules);

        let admin = mint(&config, &request(Role::Admin, None, 8 * 3600)).unwrap();
        let caller = verifier.verify(Some(&format!("Bearer {admin}"))).unwrap();
        assert_eq!(
            (caller.subject.as_str(), caller.role),
            ("ops-anita", Role::Admin)
        );

        let user = mint(&config, &request(Role::User, Some("+919876543210"), 60)).unwrap();
        let caller = verifier.verify(Some(&format!("Bearer {user}"))).unwrap();
        assert_eq!(caller.phone.as_deref(), Some("+919876543210"));
    }

    #[test]
    fn what_chirp_would_refuse_is_not_minted() {
        let config = auth_config(TokenRules {
            max_lifetime: Some(Duration::from_secs(3600)),
            ..TokenRules::default()
        });
        for (request, expected) in [
            (request(Role::Admin, None, 7200), "--ttl"),
            (request(Role::Admin, None, 0), "--ttl"),
            (request(Role::User, None, 60), "--phone"),
            (request(Role::User, Some("98765"), 60), "--phone"),
            (request(Role::Admin, Some("+919876543210"), 60), "admin"),
        ] {
            let err = mint(&config, &request).unwrap_err().to_string();
            assert!(err.contains(expected), "{err}");
        }
        let open = AuthConfig {
            jwt_secret: None,
            token_rules: TokenRules::default(),
            insecure_no_auth: true,
        };
        assert!(matches!(
            mint(&open, &request(Role::Admin, None, 60)),
            Err(MintError::NoSecret)
        ));
    }
}
