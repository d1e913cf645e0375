//! Who is calling: `Authorization: Bearer <JWT>`, HS256 only, `exp`
//! required, claims `sub`, `role` (`admin` or `user`) and, for users,
//! `phone`. Handlers take a [`Caller`] (any authenticated caller) or an
//! [`Admin`]; routes that take neither are public (health, readiness,
//! metrics).

use std::sync::Arc;

use axum::extract::{FromRef, FromRequestParts};
use axum::http::StatusCode;
use axum::http::request::Parts;
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde::Deserialize;

use super::{ApiError, AppState};

/// How tokens are checked.
pub enum Auth {
    /// HS256 with this key; the algorithm is pinned, `exp` is required.
    Jwt(Box<(DecodingKey, Validation)>),
    /// Development only (`CHIRP_INSECURE_NO_AUTH`): everyone is an admin.
    Disabled,
}

impl Auth {
    pub fn hs256(secret: &str) -> Auth {
        let mut validation = Validation::new(Algorithm::HS256);
        validation.set_required_spec_claims(&["exp", "sub"]);
        validation.leeway = 5;
        Auth::Jwt(Box::new((
            DecodingKey::from_secret(secret.as_bytes()),
            validation,
        )))
    }
}

/// A role a token can carry.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    Admin,
    User,
}

#[derive(Deserialize)]
struct Claims {
    sub: String,
    role: Role,
    phone: Option<String>,
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

impl<S> FromRequestParts<S> for Caller
where
    S: Send + Sync,
    AppState: FromRef<S>,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let state = AppState::from_ref(state);
        let (key, validation) = match state.auth.as_ref() {
            Auth::Disabled => {
                return Ok(Caller {
                    subject: "development".into(),
                    role: Role::Admin,
                    phone: None,
                });
            }
            Auth::Jwt(jwt) => (&jwt.0, &jwt.1),
        };
        let header = parts
            .headers
            .get(axum::http::header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .ok_or_else(|| unauthorized("send Authorization: Bearer <token>"))?;
        let token = header
            .strip_prefix("Bearer ")
            .ok_or_else(|| unauthorized("the Authorization header must be Bearer <token>"))?;
        let claims = jsonwebtoken::decode::<Claims>(token.trim(), key, validation)
            .map_err(|e| {
                tracing::debug!(error = %e, "token refused");
                unauthorized("the token is invalid or expired")
            })?
            .claims;
        if claims.role == Role::User && claims.phone.is_none() {
            return Err(unauthorized("a user token must carry the user's phone"));
        }
        Ok(Caller {
            subject: claims.sub,
            role: claims.role,
            phone: claims.phone,
        })
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
