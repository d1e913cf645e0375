//! The operator console, end to end: the `chirp` binary with the mock
//! MyOperator, and a real browser (Debian's headless Chromium) signing in,
//! reading a message's timeline, resending a failed one, editing a
//! template with its live preview, being refused a bad one at its line,
//! reloading a plugin, changing a phone's preferences, and never loading
//! anything from another origin. Screenshots of each page are saved under
//! `$CARGO_TARGET_TMPDIR/console-screenshots`.

#[path = "../support/mod.rs"]
mod support;

mod browser;
mod security;

use std::time::Duration;

use browser::Browser;
use fantoccini::Locator;
use serde_json::json;
use support::{Reply, World, admin_token, build_plugin_variant};

const PHONE: &str = "+919876543210";

async fn send(chirp: &support::ChirpProcess, total: u32) -> String {
    let (code, answer) = chirp
        .post(
            "/api/notifications/send-message",
            json!({"phone": PHONE, "template": "order_confirmation",
                   "variables": {"order_id": format!("EB-{total}"), "delivery_date": "25 Nov", "total_amount": total}}),
        )
        .await;
    assert_eq!(code, 202, "{answer}");
    answer["id"].as_str().unwrap().to_string()
}

/// Every URL the page loaded is chirp's own.
async fn only_own_origin(browser: &Browser, origin: &str) {
    let urls = browser.loaded_urls().await;
    assert!(!urls.is_empty());
    for url in urls {
        assert!(url.starts_with(origin), "{url} is not from {origin}");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn an_operator_works_the_console_in_a_real_browser() {
    let world = World::new(false, false).await;
    // The first message goes out; the second is refused for good (a 400),
    // until it is resent.
    world
        .mock
        .script([Reply::success("msg-1"), Reply::status(400)]);
    let chirp = world.options.start();
    let origin = chirp.url("");
    let origin = origin.trim_end_matches('/').to_string();
    let sent = send(&chirp, 240).await;
    assert_eq!(chirp.wait_final(&sent).await["status"], "sent");
    let failed = send(&chirp, 99).await;
    assert_eq!(chirp.wait_final(&failed).await["status"], "failed");

    let browser = Browser::start().await;
    let page = |path: &str| format!("{origin}{path}");

    // Signing in: the console sends a stranger to the sign-in page.
    browser.client.goto(&page("/console")).await.unwrap();
    assert_eq!(
        browser.client.current_url().await.unwrap().path(),
        "/console/sign-in"
    );
    browser.shot("sign-in").await;
    browser
        .client
        .find(Locator::Id("token"))
        .await
        .unwrap()
        .send_keys(&admin_token())
        .await
        .unwrap();
    browser
        .click("form[action='/console/sign-in'] button")
        .await;
    browser.wait_text("h1", "Overview", None).await;
    assert!(browser.text("main").await.contains("Last hour"));
    only_own_origin(&browser, &origin).await;
    browser.shot("overview").await;
    // The keyboard's first stop is the link past the navigation.
    browser
        .client
        .find(Locator::Css("body"))
        .await
        .unwrap()
        .send_keys("\u{E004}")
        .await
        .unwrap();
    let focused = browser
        .client
        .execute("return document.activeElement.textContent", vec![])
        .await
        .unwrap();
    assert_eq!(focused, "Skip to content");

    // The message list, masked phones, and one message's timeline.
    browser
        .client
        .goto(&page("/console/messages"))
        .await
        .unwrap();
    let list = browser.text("table.messages").await;
    assert!(list.contains("+9198•••••210"), "{list}");
    assert!(!list.contains(PHONE), "{list}");
    let counts = browser.text("p.counts").await;
    assert!(
        counts.contains("sent 1") && counts.contains("failed 1"),
        "{counts}"
    );
    only_own_origin(&browser, &origin).await;
    browser.shot("messages").await;
    browser
        .client
        .goto(&page("/console/messages?status=sent"))
        .await
        .unwrap();
    let filtered = browser.text("table.messages").await;
    assert_eq!(
        filtered.matches("order_confirmation").count(),
        1,
        "{filtered}"
    );
    browser
        .click(&format!("a[href='/console/messages/{sent}']"))
        .await;
    let timeline = browser.text("ol.timeline").await;
    assert!(timeline.contains("attempt"), "{timeline}");
    assert!(browser.text("main").await.contains(PHONE));
    // Times in India's, UTC on hover.
    let accepted = browser
        .client
        .find(Locator::Css(".facts time"))
        .await
        .unwrap();
    assert!(accepted.text().await.unwrap().ends_with("IST"));
    assert!(
        accepted
            .attr("title")
            .await
            .unwrap()
            .unwrap()
            .ends_with("(UTC)")
    );
    browser.shot("message").await;

    // A failed message, resent from its page, goes out.
    let failed_page = page(&format!("/console/messages/{failed}"));
    browser.client.goto(&failed_page).await.unwrap();
    assert!(browser.text(".facts").await.contains("http_400"));
    browser
        .click(&format!(
            "form[action='/console/messages/{failed}/resend'] button"
        ))
        .await;
    browser
        .wait_text(".facts", "sent", Some(&failed_page))
        .await;
    assert_eq!(chirp.wait_final(&failed).await["status"], "sent");

    // A message waiting for its time, cancelled from its page.
    let (code, answer) = chirp
        .post(
            "/api/notifications/send-message",
            json!({"phone": PHONE, "template": "delivery_delayed",
                   "variables": {"eta_time": "9 AM"}, "send_at": "2999-01-01T00:00:00Z"}),
        )
        .await;
    assert_eq!(code, 202, "{answer}");
    let waiting = answer["id"].as_str().unwrap().to_string();
    browser
        .client
        .goto(&page(&format!("/console/messages/{waiting}")))
        .await
        .unwrap();
    browser
        .click(&format!(
            "form[action='/console/messages/{waiting}/cancel'] button"
        ))
        .await;
    browser.wait_text(".facts", "cancelled", None).await;
    let (_, cancelled) = chirp.get(&format!("/api/notifications/{waiting}")).await;
    assert_eq!(cancelled["status"], "cancelled", "{cancelled:#}");

    // A template: the preview follows the typing (the page's script asks
    // the server to render), a bad edit is shown at its line and not
    // saved, a good one becomes version 2 with its diff.
    let template_page = page("/console/templates/order_confirmation");
    browser.client.goto(&template_page).await.unwrap();
    only_own_origin(&browser, &origin).await;
    let english = browser.client.find(Locator::Id("text-en")).await.unwrap();
    english
        .send_keys(" Thank you for choosing EarlyBird!")
        .await
        .unwrap();
    browser
        .wait_text("#preview", "Thank you for choosing EarlyBird!", None)
        .await;
    assert!(
        browser.text("#preview").await.contains("A-17"),
        "the samples render"
    );
    browser.shot("template-preview").await;
    english.clear().await.unwrap();
    english
        .send_keys("Order {{ order_id }} confirmed.\nDelivery on {{ delivery_date ) }}\nThanks.")
        .await
        .unwrap();
    browser.click("button[value='save']").await;
    let problem = browser.text("#preview .problem").await;
    assert!(problem.contains("text.en, line 2"), "{problem}");
    assert!(
        problem.contains("Delivery on {{ delivery_date ) }}"),
        "{problem}"
    );
    browser.shot("template-refused").await;
    let (_, current) = chirp
        .get("/api/notifications/templates/order_confirmation")
        .await;
    assert_eq!(current["version"], 1, "a refused edit is never saved");
    let english = browser.client.find(Locator::Id("text-en")).await.unwrap();
    english.clear().await.unwrap();
    english
        .send_keys("Order #{{ order_id }} is confirmed, arriving {{ delivery_date }}: ₹{{ total_amount }}.")
        .await
        .unwrap();
    browser.click("button[value='save']").await;
    browser.wait_text("main", "Saved: version 2", None).await;
    assert!(
        browser
            .text(".versions")
            .await
            .contains("+ Order #{{ order_id }} is confirmed")
    );
    let (_, current) = chirp
        .get("/api/notifications/templates/order_confirmation")
        .await;
    assert_eq!(current["version"], 2);
    // Rolling back to version 1 saves its text again, as version 3.
    browser
        .click("form[action='/console/templates/order_confirmation/rollback/1'] button")
        .await;
    browser.wait_text("main", "Saved: version 3", None).await;
    let (_, current) = chirp
        .get("/api/notifications/templates/order_confirmation")
        .await;
    assert_eq!(current["version"], 3);
    assert!(
        current["text"]["en"]
            .as_str()
            .unwrap()
            .starts_with("Order #{{ order_id }} confirmed.")
    );

    // A plugin swapped on disk, reloaded from the console, serves its new
    // version.
    browser
        .client
        .goto(&page("/console/plugins"))
        .await
        .unwrap();
    assert!(browser.text("table.plugins").await.contains("myoperator"));
    let swapped = build_plugin_variant("myoperator", &[("MYOPERATOR_BUILD_VERSION", "0.2.0-swap")]);
    std::fs::copy(swapped, world.options.plugins_dir.join("myoperator.wasm")).unwrap();
    browser
        .click("form[action='/console/plugins/reload'] button")
        .await;
    browser
        .wait_text(
            "table.plugins",
            "0.2.0-swap",
            Some(&page("/console/plugins")),
        )
        .await;
    assert!(browser.text("main").await.contains("Sandbox grants"));
    browser.shot("plugins").await;

    // Preferences: look a phone up, opt it out of marketing.
    browser
        .client
        .goto(&page("/console/preferences?phone=%2B919876543210"))
        .await
        .unwrap();
    browser.click("input[name='opt_out_marketing']").await;
    browser.click("form.prefs button").await;
    browser.wait_text("main", PHONE, None).await;
    let (_, prefs) = chirp.get(&format!("/api/preferences/{PHONE}")).await;
    assert_eq!(prefs["opt_out_marketing"], true, "{prefs}");
    browser.shot("preferences").await;

    // A phone-width screen: nothing wider than the screen but the tables'
    // own scrolling boxes.
    browser.client.set_window_size(390, 844).await.unwrap();
    browser
        .client
        .goto(&page("/console/messages"))
        .await
        .unwrap();
    let overflow = browser
        .client
        .execute(
            "return document.documentElement.scrollWidth - document.documentElement.clientWidth",
            vec![],
        )
        .await
        .unwrap();
    assert!(
        overflow.as_i64().unwrap() <= 0,
        "the page is wider than a phone: {overflow}"
    );
    browser.shot("messages-phone").await;
    browser.client.set_window_size(1280, 800).await.unwrap();

    // The API's docs render from chirp alone.
    browser.client.goto(&page("/api/docs")).await.unwrap();
    assert!(
        browser
            .text("main")
            .await
            .contains("/api/notifications/send-message")
    );
    only_own_origin(&browser, &origin).await;

    // Signing out ends the session.
    browser.client.goto(&page("/console")).await.unwrap();
    browser.click("form.signout button").await;
    browser
        .client
        .goto(&page("/console/messages"))
        .await
        .unwrap();
    assert_eq!(
        browser.client.current_url().await.unwrap().path(),
        "/console/sign-in"
    );
    browser.close().await;
    tokio::time::sleep(Duration::from_millis(10)).await;
}
