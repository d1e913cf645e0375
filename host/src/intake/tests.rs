//! The intake's decisions, without a store or a plugin.

use super::*;
use crate::preferences::Consent;

/// A retry may spell its variables in another order: it is the same
/// request.
#[test]
fn a_requests_fingerprint_ignores_the_order_of_its_variables() {
    let catalog =
        Catalog::load(&std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../templates"))
            .unwrap();
    let phone = Phone::parse("+919876543210").unwrap();
    let preferences = Preferences::defaults_for(phone.as_str());
    let recipient = Recipient {
        phone: &phone,
        preferences: &preferences,
        consent: Consent::default(),
    };
    let print = |variables: &str| {
        let variables: Map<String, Value> = serde_json::from_str(variables).unwrap();
        let draft = Draft {
            template: "order_confirmation",
            language: None,
            variables: &variables,
            reference_id: None,
            idempotency_key: Some("k".into()),
            not_before: None,
            expires_at: None,
            override_opt_out: false,
            fingerprint: None,
            chain: Chain::Template,
        };
        template_message(&catalog, &recipient, draft, "myoperator", 0)
            .unwrap()
            .fingerprint
    };
    let a = print(r#"{"order_id": "A", "delivery_date": "d", "total_amount": 1}"#);
    let b = print(r#"{"total_amount": 1, "delivery_date": "d", "order_id": "A"}"#);
    let c = print(r#"{"order_id": "B", "delivery_date": "d", "total_amount": 1}"#);
    assert_eq!(a, b);
    assert_ne!(a, c);
}

fn catalog() -> Catalog {
    Catalog::load(&std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../templates")).unwrap()
}

/// Preferences opted out of marketing, and of everything.
fn opted_out_of_marketing_and_of_all(phone: &Phone) -> (Preferences, Preferences) {
    let marketing = Preferences {
        opt_out_marketing: true,
        ..Preferences::defaults_for(phone.as_str())
    };
    let all = Preferences {
        opt_out_all: true,
        ..Preferences::defaults_for(phone.as_str())
    };
    (marketing, all)
}

fn draft<'a>(template: &'a str, variables: &'a Map<String, Value>) -> Draft<'a> {
    Draft {
        template,
        language: None,
        variables,
        reference_id: None,
        idempotency_key: None,
        not_before: None,
        expires_at: None,
        override_opt_out: false,
        fingerprint: None,
        chain: Chain::Template,
    }
}

/// Who opted out of what decides, per category, whether a message is
/// stored to be sent or stored as skipped with the reason; an override
/// lets transactional messages through and is refused for marketing.
#[test]
fn opt_outs_skip_by_category_and_an_override_is_for_transactional_only() {
    let catalog = catalog();
    let phone = Phone::parse("+919876543210").unwrap();
    let eta: Map<String, Value> = serde_json::from_str(r#"{"eta_time": "9 AM"}"#).unwrap();
    let none = Map::new();
    let message = |prefs: &Preferences, template: &str, variables, override_opt_out| {
        let recipient = Recipient {
            phone: &phone,
            preferences: prefs,
            consent: Consent::default(),
        };
        let draft = Draft {
            override_opt_out,
            ..draft(template, variables)
        };
        template_message(&catalog, &recipient, draft, "myoperator", 1_000)
    };
    let (marketing_out, all_out) = opted_out_of_marketing_and_of_all(&phone);
    // Marketing opt-out: marketing skipped, transactional sent.
    let skipped = message(&marketing_out, "churn_risk", &none, false).unwrap();
    assert!(skipped.skip.is_some(), "{skipped:?}");
    let sent = message(&marketing_out, "delivery_delayed", &eta, false).unwrap();
    assert!(sent.skip.is_none(), "{sent:?}");
    // Everything opted out: transactional skipped too, unless overridden.
    assert!(
        message(&all_out, "delivery_delayed", &eta, false)
            .unwrap()
            .skip
            .is_some()
    );
    assert!(
        message(&all_out, "delivery_delayed", &eta, true)
            .unwrap()
            .skip
            .is_none()
    );
    // Marketing is never overridden.
    assert!(matches!(
        message(&all_out, "churn_risk", &none, true),
        Err(IntakeError::OverrideNotAllowed { .. })
    ));
}

/// What the caller gave decides the key and the due time: no key is a
/// key of its own, and a send time in the past is now.
#[test]
fn a_message_without_a_key_gets_its_own_and_is_never_due_before_it_was_accepted() {
    let catalog = catalog();
    let phone = Phone::parse("+919876543210").unwrap();
    let preferences = Preferences::defaults_for(phone.as_str());
    let recipient = Recipient {
        phone: &phone,
        preferences: &preferences,
        consent: Consent::default(),
    };
    let eta: Map<String, Value> = serde_json::from_str(r#"{"eta_time": "9 AM"}"#).unwrap();
    let early = Draft {
        not_before: Some(10),
        ..draft("delivery_delayed", &eta)
    };
    let message = template_message(&catalog, &recipient, early, "myoperator", 5_000).unwrap();
    assert_eq!(message.idempotency_key, message.id);
    assert_eq!(message.not_before, 5_000);
    assert_eq!(message.text, "⏰ Delivery ETA: 9 AM. Sorry for the delay!");
    // A missing variable or an unknown template is an error, not a
    // message with a hole in it.
    let none = Map::new();
    assert!(matches!(
        template_message(
            &catalog,
            &recipient,
            draft("delivery_delayed", &none),
            "m",
            0
        ),
        Err(IntakeError::Render(RenderError::MissingVariable(_)))
    ));
    assert!(matches!(
        template_message(&catalog, &recipient, draft("no_such", &none), "m", 0),
        Err(IntakeError::Render(RenderError::UnknownTemplate(_)))
    ));
}

/// Free text is transactional: an opt-out of marketing lets it
/// through, an opt-out of everything skips it.
#[test]
fn free_text_is_skipped_only_by_an_opt_out_of_everything() {
    let phone = Phone::parse("+919876543210").unwrap();
    let text = |prefs: &Preferences| {
        let recipient = Recipient {
            phone: &phone,
            preferences: prefs,
            consent: Consent::default(),
        };
        let draft = TextDraft {
            text: "your milk is coming".into(),
            reference_id: None,
            idempotency_key: Some("k".into()),
            not_before: None,
            expires_at: None,
            override_opt_out: false,
        };
        text_message(&recipient, draft, "myoperator", 0, None).unwrap()
    };
    let (marketing_out, all_out) = opted_out_of_marketing_and_of_all(&phone);
    assert!(text(&marketing_out).skip.is_none());
    assert!(text(&all_out).skip.is_some());
}

/// With the operator's opt-in policy on, marketing goes only to a
/// recipient whose preferences record an opt-in; transactional messages
/// need none. Off (the default), nothing changes.
#[test]
fn marketing_needs_a_recorded_opt_in_when_the_operator_asks_for_one() {
    let catalog = catalog();
    let phone = Phone::parse("+919876543210").unwrap();
    let none = Map::new();
    let eta: Map<String, Value> = serde_json::from_str(r#"{"eta_time": "9 AM"}"#).unwrap();
    let strict = Consent {
        marketing_needs_opt_in: true,
        ..Consent::default()
    };
    let skip_of = |prefs: &Preferences, consent, template: &str, variables| {
        let recipient = Recipient {
            phone: &phone,
            preferences: prefs,
            consent,
        };
        template_message(&catalog, &recipient, draft(template, variables), "m", 0)
            .unwrap()
            .skip
            .map(|note| note.code)
    };
    let silent = Preferences::defaults_for(phone.as_str());
    let consented = Preferences {
        opt_in: Some(crate::preferences::OptIn {
            source: "app-signup".into(),
            at: 1,
            wording: "marketing-v3".into(),
        }),
        ..silent.clone()
    };
    assert_eq!(
        skip_of(&silent, strict, "churn_risk", &none).as_deref(),
        Some("no_opt_in")
    );
    assert_eq!(skip_of(&consented, strict, "churn_risk", &none), None);
    assert_eq!(skip_of(&silent, strict, "delivery_delayed", &eta), None);
    assert_eq!(
        skip_of(&silent, Consent::default(), "churn_risk", &none),
        None
    );
}

/// With the window asked for, free text goes only to a phone that wrote in
/// the 24 hours before the send: a scheduled send counts from its time.
#[test]
fn free_text_needs_the_customers_window_when_the_operator_asks_for_it() {
    let phone = Phone::parse("+919876543210").unwrap();
    let prefs = Preferences::defaults_for(phone.as_str());
    let hour = 3_600_000;
    let now = 100 * hour;
    let send = |consent: Consent, last: Option<Millis>, at: Option<Millis>| {
        let recipient = Recipient {
            phone: &phone,
            preferences: &prefs,
            consent,
        };
        let draft = TextDraft {
            text: "your milk is coming".into(),
            reference_id: None,
            idempotency_key: None,
            not_before: at,
            expires_at: None,
            override_opt_out: false,
        };
        text_message(&recipient, draft, "meta-whatsapp", now, last).map(|m| m.not_before)
    };
    let window = Consent {
        free_text_needs_window: true,
        ..Consent::default()
    };
    assert_eq!(send(window, Some(now - 23 * hour), None).ok(), Some(now));
    for (last, at) in [
        (None, None),
        (Some(now - 24 * hour), None),
        (Some(now - hour), Some(now + 24 * hour)),
    ] {
        assert!(
            matches!(
                send(window, last, at),
                Err(IntakeError::OutsideServiceWindow { .. })
            ),
            "{last:?} {at:?}"
        );
    }
    // Off, free text goes whenever.
    assert_eq!(send(Consent::default(), None, None).ok(), Some(now));
}

/// A template's `expire_after` counts from the message's time to be sent;
/// a caller's `expires_at` overrides it, and one that leaves no moment to
/// send is refused rather than stored to expire.
#[test]
fn expiry_comes_from_the_template_or_the_caller_and_must_leave_time_to_send() {
    let catalog = catalog();
    let phone = Phone::parse("+919876543210").unwrap();
    let preferences = Preferences::defaults_for(phone.as_str());
    let recipient = Recipient {
        phone: &phone,
        preferences: &preferences,
        consent: Consent::default(),
    };
    let eta: Map<String, Value> = serde_json::from_str(r#"{"eta_time": "9 AM"}"#).unwrap();
    let hour = 3_600_000;
    // delivery_delayed expires 2 h after its time to be sent.
    let scheduled = Draft {
        not_before: Some(10 * hour),
        ..draft("delivery_delayed", &eta)
    };
    let message = template_message(&catalog, &recipient, scheduled, "myoperator", hour).unwrap();
    assert_eq!(message.expires_at, Some(12 * hour));
    let overridden = Draft {
        expires_at: Some(20 * hour),
        ..draft("delivery_delayed", &eta)
    };
    let message = template_message(&catalog, &recipient, overridden, "myoperator", hour).unwrap();
    assert_eq!(message.expires_at, Some(20 * hour));
    // order_confirmation says nothing: it never expires.
    let order: Map<String, Value> =
        serde_json::from_str(r#"{"order_id": "A", "delivery_date": "d", "total_amount": 1}"#)
            .unwrap();
    let message = template_message(
        &catalog,
        &recipient,
        draft("order_confirmation", &order),
        "myoperator",
        hour,
    )
    .unwrap();
    assert_eq!(message.expires_at, None);
    for (not_before, expires_at) in [(None, hour), (None, hour - 1), (Some(5 * hour), 5 * hour)] {
        let too_early = Draft {
            not_before,
            expires_at: Some(expires_at),
            ..draft("delivery_delayed", &eta)
        };
        assert!(matches!(
            template_message(&catalog, &recipient, too_early, "myoperator", hour),
            Err(IntakeError::ExpiresBeforeSend { .. })
        ));
    }
    let text = TextDraft {
        text: "hello".into(),
        reference_id: None,
        idempotency_key: None,
        not_before: None,
        expires_at: Some(hour),
        override_opt_out: false,
    };
    assert!(matches!(
        text_message(&recipient, text, "myoperator", hour, None),
        Err(IntakeError::ExpiresBeforeSend { .. })
    ));
}
