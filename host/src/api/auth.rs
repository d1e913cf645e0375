//! Who is calling: `Authorization: Bearer <JWT>`, HS256 only, `exp`
//! required, claims `sub`, `role` (`admin` or `user`) and, for users,
//! `phone`. Handlers take a [`Caller`] (any authenticated caller) or an
//! [`Admin`]; routes that take neither are public (health, readiness,
//! metrics).
//!
//! The token is verified once per request, by [`authenticate`], before the
//! rate limit (which counts the verified subject, however the header was
//! spelled) and before any handler. Checked: the signature (the current
//! secret, or during a rotation the previous one), `exp`, `nbf` when
//! present, and, if the operator set them, the issuer, the audience and
//! the longest lifetime a token may have. Leeway for clocks: 5 s.

use std::sync::Arc;
use std::time::Duration;

use axum::extract::{FromRef, FromRequestParts};
use axum::http::StatusCode;
use axum::http::request::Parts;
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde::{Deserialize, Serialize};

use super::{ApiError, AppState};
pub use crate::config::TokenRules;

/// How far a token's times may be off chirp's clock.
pub(super) const LEEWAY_SECS: u64 = 5;

/// How tokens are checked.
pub enum Auth {
    /// HS256 tokens, checked as [`Jwt`] says.
    Jwt(Box<Jwt>),
    /// Development only (`CHIRP_INSECURE_NO_AUTH`): everyone is an admin.
    Disabled,
}

/// HS256 with the algorithm pinned: the keys to try, in order, and what
/// else a token must satisfy.
pub struct Jwt {
    keys: Vec<DecodingKey>,
    validation: Validation,
    max_lifetime: Option<Duration>,
}

impl Auth {
    /// Tokens signed with `secret` (or `rules.previous_secret`).
    pub fn hs256(secret: &str, rules: &TokenRules) -> Auth {
        let mut validation = Validation::new(Algorithm::HS256);
        validation.set_required_spec_claims(&["exp", "sub"]);
        validation.validate_nbf = true;
        validation.leeway = LEEWAY_SECS;
        if let Some(issuer) = &rules.issuer {
            validation.set_issuer(&[issuer]);
            validation.required_spec_claims.insert("iss".into());
        }
        match &rules.audience {
            Some(audience) => {
                validation.set_audience(&[audience]);
                validation.required_spec_claims.insert("aud".into());
            }
            None => validation.validate_aud = false,
        }
        let keys = std::iter::once(secret)
            .chain(rules.previous_secret.as_ref().map(|s| s.0.as_str()))
            .map(|s| DecodingKey::from_secret(s.as_bytes()))
            .collect();
        Auth::Jwt(Box::new(Jwt {
            keys,
            validation,
            max_lifetime: rules.max_lifetime,
        }))
    }

    /// The caller a request's `Authorization` header names, verified.
    pub fn verify(&self, header: Option<&str>) -> Result<Caller, ApiError> {
        if let Auth::Disabled = self {
            return self.verify_token("").map(|(caller, _)| caller);
        }
        let header = header.ok_or_else(|| unauthorized("send Authorization: Bearer <token>"))?;
        let token = header
            .split_once(' ')
            .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
            .map(|(_, token)| token.trim())
            .ok_or_else(|| unauthorized("the Authorization header must be Bearer <token>"))?;
        self.verify_token(token).map(|(caller, _)| caller)
    }

    /// The caller `token` names, verified, and when it expires (seconds
    /// since the Unix epoch; without authentication, in 12 hours).
    pub fn verify_token(&self, token: &str) -> Result<(Caller, u64), ApiError> {
        let jwt = match self {
            Auth::Disabled => {
                let caller = Caller {
                    subject: "development".into(),
                    role: Role::Admin,
                    phone: None,
                };
                return Ok((caller, jsonwebtoken::get_current_timestamp() + 12 * 3600));
            }
            Auth::Jwt(jwt) => jwt,
        };
        let claims = jwt.decode(token)?;
        if claims.role == Role::User && claims.phone.is_none() {
            return Err(unauthorized("a user token must carry the user's phone"));
        }
        let caller = Caller {
            subject: claims.sub,
            role: claims.role,
            phone: claims.phone,
        };
        Ok((caller, claims.exp))
    }
}

impl Jwt {
    fn decode(&self, token: &str) -> Result<Claims, ApiError> {
        let refused = |e: jsonwebtoken::errors::Error| {
            tracing::debug!(error = %e, "token refused");
            unauthorized("the token is invalid or expired")
        };
        let mut last = None;
        for key in &self.keys {
            match jsonwebtoken::decode::<Claims>(token, key, &self.validation) {
                Ok(decoded) => {
                    self.check_lifetime(&decoded.claims)?;
                    return Ok(decoded.claims);
                }
                // Only a signature made with another key is worth trying
                // the next key for.
                Err(e) if *e.kind() == jsonwebtoken::errors::ErrorKind::InvalidSignature => {
                    last = Some(e);
                }
                Err(e) => return Err(refused(e)),
            }
        }
        Err(last.map(refused).unwrap_or_else(|| unauthorized("no key")))
    }

    fn check_lifetime(&self, claims: &Claims) -> Result<(), ApiError> {
        let now = jsonwebtoken::get_current_timestamp();
        if claims.iat.is_some_and(|iat| iat > now + LEEWAY_SECS) {
            return Err(unauthorized("the token was issued in the future"));
        }
        if let Some(max) = self.max_lifetime {
            let from = claims.iat.unwrap_or(now);
            if claims.exp.saturating_sub(from) > max.as_secs() + LEEWAY_SECS {
                return Err(unauthorized(&format!(
                    "the token lives longer than the {} s chirp accepts (CHIRP_JWT_MAX_LIFETIME)",
                    max.as_secs()
                )));
            }
        }
        Ok(())
    }
}

/// A role a token can carry.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// Everything: sending, templates, plugins, every phone's data.
    Admin,
    /// Reading templates, and their own phone's history and preferences.
    User,
}

/// What chirp reads of a token.
#[derive(Deserialize)]
struct Claims {
    sub: String,
    role: Role,
    phone: Option<String>,
    exp: u64,
    iat: Option<u64>,
}

/// An authenticated caller.
#[derive(Debug, Clone)]
pub struct Caller {
    pub subject: String,
    pub role: Role,
    /// A user's own phone; users see only this recipient's data.
    pub phone: Option<String>,
}

impl Caller {
    /// Admins may act on any phone; a user only on their own.
    pub fn may_access(&self, phone: &str) -> Result<(), ApiError> {
        match self.role {
            Role::Admin => Ok(()),
            Role::User if self.phone.as_deref() == Some(phone) => Ok(()),
            Role::User => Err(forbidden("a user may only access their own phone's data")),
        }
    }

    pub fn is_admin(&self) -> bool {
        self.role == Role::Admin
    }
}

fn unauthorized(message: &str) -> ApiError {
    ApiError::new(StatusCode::UNAUTHORIZED, "unauthorized", message)
}

pub fn forbidden(message: &str) -> ApiError {
    ApiError::new(StatusCode::FORBIDDEN, "forbidden", message)
}

/// The outcome of verifying a request's token, left in its extensions by
/// [`authenticate`] for the rate limit and the extractors.
#[derive(Clone)]
pub struct Verified(pub Result<Caller, ApiError>);

/// Verifies the request's token once, before anything else reads it.
pub async fn authenticate(
    auth: SharedAuth,
    mut request: axum::extract::Request,
    next: axum::middleware::Next,
) -> axum::response::Response {
    let header = request
        .headers()
        .get(axum::http::header::AUTHORIZATION)
        .map(|v| v.to_str().map_err(|_| ()));
    let verified = match header {
        Some(Err(())) => Err(unauthorized("the Authorization header is not valid text")),
        Some(Ok(value)) => auth.verify(Some(value)),
        None => auth.verify(None),
    };
    request.extensions_mut().insert(Verified(verified));
    next.run(request).await
}

impl<S> FromRequestParts<S> for Caller
where
    S: Send + Sync,
    AppState: FromRef<S>,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        if let Some(Verified(verified)) = parts.extensions.get::<Verified>() {
            return verified.clone();
        }
        // Not behind `authenticate` (a router built without it): verify here.
        let header = parts
            .headers
            .get(axum::http::header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok());
        AppState::from_ref(state).auth.verify(header)
    }
}

/// A caller with the `admin` role.
pub struct Admin(pub Caller);

impl<S> FromRequestParts<S> for Admin
where
    S: Send + Sync,
    AppState: FromRef<S>,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let caller = Caller::from_request_parts(parts, state).await?;
        if caller.is_admin() {
            Ok(Admin(caller))
        } else {
            Err(forbidden("this needs the admin role"))
        }
    }
}

/// Shared so the state stays cheap to clone.
pub type SharedAuth = Arc<Auth>;

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const SECRET: &str = "the-current-secret-of-32-bytes-or-more";
    const OLD: &str = "the-previous-secret-of-32-bytes-or-more";

    fn token(secret: &str, claims: serde_json::Value) -> String {
        jsonwebtoken::encode(
            &jsonwebtoken::Header::new(Algorithm::HS256),
            &claims,
            &jsonwebtoken::EncodingKey::from_secret(secret.as_bytes()),
        )
        .unwrap()
    }

    fn now() -> u64 {
        jsonwebtoken::get_current_timestamp()
    }

    fn admin(extra: serde_json::Value) -> serde_json::Value {
        let mut claims = json!({"sub": "ops", "role": "admin", "exp": now() + 600});
        claims
            .as_object_mut()
            .unwrap()
            .extend(extra.as_object().unwrap().clone());
        claims
    }

    fn check(auth: &Auth, token: &str) -> Result<Caller, ApiError> {
        auth.verify(Some(&format!("Bearer {token}")))
    }

    #[test]
    fn a_token_not_yet_valid_is_refused() {
        let auth = Auth::hs256(SECRET, &TokenRules::default());
        assert!(check(&auth, &token(SECRET, admin(json!({"nbf": now() - 10})))).is_ok());
        let early = token(SECRET, admin(json!({"nbf": now() + 3600})));
        assert_eq!(check(&auth, &early).unwrap_err().status, 401);
        let future = token(SECRET, admin(json!({"iat": now() + 3600})));
        assert_eq!(check(&auth, &future).unwrap_err().status, 401);
    }

    #[test]
    fn a_previous_secret_verifies_until_it_is_removed() {
        let old = token(OLD, admin(json!({})));
        let rotating = Auth::hs256(
            SECRET,
            &TokenRules {
                previous_secret: Some(crate::config::Secret(OLD.into())),
                ..TokenRules::default()
            },
        );
        assert!(check(&rotating, &old).is_ok());
        assert!(check(&rotating, &token(SECRET, admin(json!({})))).is_ok());
        let rotated = Auth::hs256(SECRET, &TokenRules::default());
        assert_eq!(check(&rotated, &old).unwrap_err().status, 401);
        // An expired token is not retried with the other key and stays refused.
        let expired = token(OLD, admin(json!({"exp": now() - 3600})));
        assert_eq!(check(&rotating, &expired).unwrap_err().status, 401);
    }

    #[test]
    fn the_operator_can_require_issuer_audience_and_a_short_life() {
        let strict = Auth::hs256(
            SECRET,
            &TokenRules {
                max_lifetime: Some(Duration::from_secs(3600)),
                issuer: Some("earlybird".into()),
                audience: Some("chirp".into()),
                ..TokenRules::default()
            },
        );
        let good = json!({"iss": "earlybird", "aud": "chirp", "iat": now(), "exp": now() + 600});
        assert!(check(&strict, &token(SECRET, admin(good))).is_ok());
        for bad in [
            json!({"aud": "chirp"}),
            json!({"iss": "earlybird"}),
            json!({"iss": "other", "aud": "chirp"}),
            json!({"iss": "earlybird", "aud": "other"}),
            json!({"iss": "earlybird", "aud": "chirp", "exp": now() + 30 * 86_400}),
            json!({"iss": "earlybird", "aud": "chirp", "iat": now() - 86_400, "exp": now() + 600}),
        ] {
            let refused = check(&strict, &token(SECRET, admin(bad.clone())));
            assert!(refused.is_err(), "{bad}");
        }
    }

    #[test]
    fn the_scheme_is_read_however_it_is_spelled() {
        let auth = Auth::hs256(SECRET, &TokenRules::default());
        let t = token(SECRET, admin(json!({})));
        for header in [
            format!("Bearer {t}"),
            format!("bearer {t}"),
            format!("BEARER  {t} "),
        ] {
            assert_eq!(auth.verify(Some(&header)).unwrap().subject, "ops");
        }
        assert!(auth.verify(Some(&format!("Basic {t}"))).is_err());
        assert!(auth.verify(Some(&t)).is_err());
    }
}
