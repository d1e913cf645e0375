//! Signing in to the console: an admin's JWT, checked once, becomes an
//! HttpOnly, `SameSite=Strict` session cookie that ends with the token;
//! every form carries the session's CSRF token, and every `POST` must
//! come from chirp's own origin.
//!
//! Why sessions kept in memory: signing out ends a session for good
//! (a stateless cookie would live on until it expired), and a restart
//! only asks operators to sign in again. Users with role `user` are
//! refused: the console shows every phone's messages.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{SystemTime, UNIX_EPOCH};

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::http::{HeaderMap, header};
use base64::Engine;

use super::super::AppState;
use super::super::auth::Caller;

/// The cookie's name.
pub const COOKIE: &str = "chirp_console";
/// The most sessions kept at once; past it, the one ending first goes.
const MAX_SESSIONS: usize = 10_000;

/// One signed-in admin.
#[derive(Debug, Clone)]
pub struct Session {
    /// The token's subject.
    pub subject: String,
    /// The token's expiry, in seconds since the Unix epoch.
    pub expires_at: u64,
    /// What every form of this session must carry back.
    pub csrf: String,
}

/// The console's sessions, by cookie value.
#[derive(Default)]
pub struct Sessions {
    by_id: Mutex<HashMap<String, Session>>,
}

fn now_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// 32 random bytes, URL-safe base64; none if the system's generator
/// fails (then nobody signs in).
fn random_token() -> Option<String> {
    let mut bytes = [0u8; 32];
    getrandom::fill(&mut bytes).ok()?;
    Some(base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes))
}

impl Sessions {
    /// Starts a session for `caller` until `expires_at`; returns its id
    /// (none if no random id could be made).
    pub fn start(&self, caller: &Caller, expires_at: u64) -> Option<(String, Session)> {
        let id = random_token()?;
        let session = Session {
            subject: caller.subject.clone(),
            expires_at,
            csrf: random_token()?,
        };
        let mut by_id = self.by_id.lock().unwrap_or_else(|e| e.into_inner());
        let now = now_secs();
        by_id.retain(|_, s| s.expires_at > now);
        if by_id.len() >= MAX_SESSIONS
            && let Some(first) = by_id
                .iter()
                .min_by_key(|(_, s)| s.expires_at)
                .map(|(id, _)| id.clone())
        {
            by_id.remove(&first);
        }
        by_id.insert(id.clone(), session.clone());
        Some((id, session))
    }

    /// The live session of `id`, if any.
    pub fn get(&self, id: &str) -> Option<Session> {
        let by_id = self.by_id.lock().unwrap_or_else(|e| e.into_inner());
        by_id.get(id).filter(|s| s.expires_at > now_secs()).cloned()
    }

    /// Ends session `id`.
    pub fn end(&self, id: &str) {
        let mut by_id = self.by_id.lock().unwrap_or_else(|e| e.into_inner());
        by_id.remove(id);
    }
}

/// The `Set-Cookie` value that starts session `id` until `expires_at`.
pub fn cookie(id: &str, expires_at: u64, secure: bool) -> String {
    let max_age = expires_at.saturating_sub(now_secs());
    let secure = if secure { "; Secure" } else { "" };
    format!("{COOKIE}={id}; Path=/console; HttpOnly; SameSite=Strict; Max-Age={max_age}{secure}")
}

/// The `Set-Cookie` value that ends the session cookie.
pub fn cleared_cookie() -> String {
    format!("{COOKIE}=; Path=/console; HttpOnly; SameSite=Strict; Max-Age=0")
}

/// The session cookie's value in `headers`, if any.
fn cookie_value(headers: &HeaderMap) -> Option<&str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(name, _)| *name == COOKIE)
        .map(|(_, value)| value)
}

/// Whether a `POST` comes from the page chirp served: its `Origin` (or,
/// without one, its `Referer`) names this request's own host. A form on
/// another site cannot forge one.
pub fn same_origin(headers: &HeaderMap) -> bool {
    let Some(host) = headers.get(header::HOST).and_then(|v| v.to_str().ok()) else {
        return false;
    };
    let from = headers
        .get(header::ORIGIN)
        .or_else(|| headers.get(header::REFERER))
        .and_then(|v| v.to_str().ok())
        .and_then(|v| url::Url::parse(v).ok());
    from.is_some_and(|url| {
        let origin_host = match (url.host_str(), url.port()) {
            (Some(h), Some(p)) => format!("{h}:{p}"),
            (Some(h), None) => h.to_string(),
            _ => return false,
        };
        origin_host.eq_ignore_ascii_case(host)
    })
}

/// A request from a signed-in admin: the session and its cookie's id.
pub struct Operator {
    /// The session's id (the cookie's value).
    pub id: String,
    /// The session.
    pub session: Session,
}

/// Why a console request is not served: sent to the sign-in page.
pub struct SignInFirst;

impl axum::response::IntoResponse for SignInFirst {
    fn into_response(self) -> axum::response::Response {
        axum::response::Redirect::to("/console/sign-in").into_response()
    }
}

impl FromRequestParts<AppState> for Operator {
    type Rejection = SignInFirst;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        let id = cookie_value(&parts.headers).ok_or(SignInFirst)?;
        let session = state.console.get(id).ok_or(SignInFirst)?;
        Ok(Operator {
            id: id.to_string(),
            session,
        })
    }
}

impl Operator {
    /// Whether a form's `csrf` field is this session's, and the request
    /// comes from chirp's own origin.
    pub fn may_post(&self, headers: &HeaderMap, csrf: &str) -> bool {
        let expected = self.session.csrf.as_bytes();
        let given = csrf.as_bytes();
        // Constant time: the comparison must not tell how much matched.
        let same = expected.len() == given.len()
            && expected
                .iter()
                .zip(given)
                .fold(0u8, |acc, (a, b)| acc | (a ^ b))
                == 0;
        same && same_origin(headers)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (k, v) in pairs {
            map.append(*k, HeaderValue::from_str(v).unwrap());
        }
        map
    }

    #[test]
    fn a_post_from_another_origin_is_not_taken() {
        let own = headers(&[
            ("host", "127.0.0.1:8080"),
            ("origin", "http://127.0.0.1:8080"),
        ]);
        assert!(same_origin(&own));
        for forged in [
            headers(&[
                ("host", "127.0.0.1:8080"),
                ("origin", "http://evil.example"),
            ]),
            headers(&[
                ("host", "127.0.0.1:8080"),
                ("origin", "http://127.0.0.1:9090"),
            ]),
            headers(&[("host", "127.0.0.1:8080")]),
            headers(&[("host", "127.0.0.1:8080"), ("origin", "null")]),
        ] {
            assert!(!same_origin(&forged), "{forged:?}");
        }
        let referred = headers(&[
            ("host", "127.0.0.1:8080"),
            ("referer", "http://127.0.0.1:8080/console/messages"),
        ]);
        assert!(same_origin(&referred));
    }

    #[test]
    fn a_session_ends_when_signed_out_or_expired() {
        let sessions = Sessions::default();
        let caller = Caller {
            subject: "ops".into(),
            role: crate::api::Role::Admin,
            phone: None,
        };
        let (id, session) = sessions.start(&caller, now_secs() + 60).unwrap();
        assert_eq!(sessions.get(&id).unwrap().csrf, session.csrf);
        sessions.end(&id);
        assert!(sessions.get(&id).is_none());
        let (old, _) = sessions.start(&caller, now_secs() - 1).unwrap();
        assert!(sessions.get(&old).is_none());
        let cookie_header = headers(&[("cookie", "a=b; chirp_console=xyz")]);
        assert_eq!(cookie_value(&cookie_header), Some("xyz"));
    }
}
