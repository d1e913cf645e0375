//! What the console refuses, over plain HTTP: a user's token, a form
//! without its session's token or from another origin, a session after
//! sign-out; and the headers that keep every page to chirp's own files.

use reqwest::header;
use reqwest::redirect::Policy;

use super::support::{JWT_SECRET, World, admin_token, token_with};

fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(Policy::none())
        .build()
        .unwrap()
}

/// Signs in with `token` from chirp's own page; the response.
async fn sign_in(origin: &str, token: &str) -> reqwest::Response {
    client()
        .post(format!("{origin}/console/sign-in"))
        .header(header::ORIGIN, origin)
        .form(&[("token", token)])
        .send()
        .await
        .unwrap()
}

/// The session cookie a response sets (`name=value`), and its attributes.
fn session_cookie(response: &reqwest::Response) -> (String, String) {
    let set = response
        .headers()
        .get(header::SET_COOKIE)
        .expect("a session cookie")
        .to_str()
        .unwrap()
        .to_string();
    let pair = set.split(';').next().unwrap().to_string();
    (pair, set)
}

/// The CSRF token in a page's forms.
fn csrf_of(html: &str) -> String {
    let at = html.find("name=\"csrf\" value=\"").expect("a csrf field") + 19;
    html[at..].split('"').next().unwrap().to_string()
}

#[tokio::test(flavor = "multi_thread")]
async fn the_console_takes_only_an_admins_own_forms() {
    let world = World::new(false, false).await;
    let chirp = world.options.start();
    let origin = chirp.url("").trim_end_matches('/').to_string();

    // Without a session: the sign-in page, for every page.
    for path in ["/console", "/console/messages", "/console/plugins"] {
        let response = client()
            .get(format!("{origin}{path}"))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 303, "{path}");
        assert_eq!(response.headers()[header::LOCATION], "/console/sign-in");
    }

    // A user's token, an expired one, garbage: refused.
    let user = token_with(JWT_SECRET, "user", Some("+919876543210"), 3600);
    assert_eq!(sign_in(&origin, &user).await.status(), 403);
    let expired = token_with(JWT_SECRET, "admin", None, -3600);
    assert_eq!(sign_in(&origin, &expired).await.status(), 401);
    assert_eq!(sign_in(&origin, "not-a-token").await.status(), 401);
    // Signing in from another site's page (login CSRF): refused.
    let foreign = client()
        .post(format!("{origin}/console/sign-in"))
        .header(header::ORIGIN, "http://evil.example")
        .form(&[("token", admin_token().as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(foreign.status(), 403);

    // An admin's: an HttpOnly, SameSite=Strict cookie that ends with the
    // token (an hour).
    let response = sign_in(&origin, &admin_token()).await;
    assert_eq!(response.status(), 303);
    let (cookie, attributes) = session_cookie(&response);
    assert!(attributes.contains("HttpOnly"), "{attributes}");
    assert!(attributes.contains("SameSite=Strict"), "{attributes}");
    let max_age: u64 = attributes
        .split("Max-Age=")
        .nth(1)
        .and_then(|v| v.split(';').next())
        .unwrap()
        .parse()
        .unwrap();
    assert!((3500..=3600).contains(&max_age), "{attributes}");

    let page = client()
        .get(format!("{origin}/console/plugins"))
        .header(header::COOKIE, &cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(page.status(), 200);
    let csp = page.headers()[header::CONTENT_SECURITY_POLICY]
        .to_str()
        .unwrap()
        .to_string();
    assert!(
        csp.contains("default-src 'none'") && csp.contains("script-src 'self'"),
        "{csp}"
    );
    assert_eq!(page.headers()[header::X_FRAME_OPTIONS], "DENY");
    assert_eq!(page.headers()[header::CACHE_CONTROL], "no-store");
    let html = page.text().await.unwrap();
    assert!(!html.contains("<script>"), "no inline script");
    let csrf = csrf_of(&html);

    // A form without the session's token, or with another, or from
    // another origin, changes nothing. (Checked once with `may_post`
    // answering true: these reloads went through.)
    let reload = |csrf: String, from: &'static str| {
        let cookie = cookie.clone();
        let origin = origin.clone();
        async move {
            client()
                .post(format!("{origin}/console/plugins/reload"))
                .header(header::COOKIE, cookie)
                .header(
                    header::ORIGIN,
                    if from.is_empty() {
                        origin.clone()
                    } else {
                        from.to_string()
                    },
                )
                .form(&[("csrf", csrf)])
                .send()
                .await
                .unwrap()
                .status()
        }
    };
    assert_eq!(reload(String::new(), "").await, 403);
    assert_eq!(reload("A".repeat(csrf.len()), "").await, 403);
    assert_eq!(reload(csrf.clone(), "http://evil.example").await, 403);
    assert_eq!(reload(csrf.clone(), "").await, 303);

    // The docs page: chirp's own stylesheet, no script from anywhere.
    let docs = client()
        .get(format!("{origin}/api/docs"))
        .send()
        .await
        .unwrap();
    assert_eq!(docs.status(), 200);
    assert!(docs.headers().contains_key(header::CONTENT_SECURITY_POLICY));
    let html = docs.text().await.unwrap();
    assert!(!html.contains("<script"), "the docs page loads no script");
    assert!(!html.contains("https://"), "nothing from another origin");
    assert!(html.contains("send-message"), "the operations are listed");

    // Signing out ends the session on the server: the old cookie is
    // worth nothing.
    let out = client()
        .post(format!("{origin}/console/sign-out"))
        .header(header::COOKIE, &cookie)
        .header(header::ORIGIN, &origin)
        .form(&[("csrf", csrf.as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(out.status(), 303);
    let after = client()
        .get(format!("{origin}/console"))
        .header(header::COOKIE, &cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(after.status(), 303);
}
