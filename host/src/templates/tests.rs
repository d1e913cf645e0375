//! Loading, checking and rendering templates.

use super::*;
use serde_json::json;

fn repo_catalog() -> Catalog {
    Catalog::load(&Path::new(env!("CARGO_MANIFEST_DIR")).join("../templates")).unwrap()
}

fn vars(value: Value) -> Map<String, Value> {
    value.as_object().unwrap().clone()
}

#[test]
fn the_ten_seed_templates_load() {
    let names: Vec<_> = repo_catalog().all().map(|d| d.name.clone()).collect();
    assert_eq!(
        names,
        [
            "churn_risk",
            "delivery_confirmed",
            "delivery_delayed",
            "delivery_reminder",
            "new_product",
            "order_confirmation",
            "pause_confirmation",
            "payment_confirmation",
            "payment_reminder",
            "subscription_confirmation",
        ]
    );
}

#[test]
fn renders_text_and_provider_parameters_in_order() {
    let rendered = repo_catalog()
        .render(
            "order_confirmation",
            None,
            &vars(json!({"order_id": "A-17", "delivery_date": "25 Nov", "total_amount": 240})),
        )
        .unwrap();
    assert!(
        rendered.text.starts_with("Order #A-17 confirmed"),
        "{}",
        rendered.text
    );
    assert_eq!(rendered.provider_template.name, "order_confirmation");
    assert_eq!(
        rendered.provider_template.parameters,
        ["A-17", "25 Nov", "240"]
    );
}

#[test]
fn a_missing_variable_is_named() {
    let err = repo_catalog()
        .render(
            "order_confirmation",
            None,
            &vars(json!({"order_id": "A-17"})),
        )
        .unwrap_err();
    assert_eq!(err, RenderError::MissingVariable("delivery_date".into()));
}

#[test]
fn unknown_language_falls_back_to_english() {
    let rendered = repo_catalog()
        .render(
            "delivery_delayed",
            Some("ta"),
            &vars(json!({"eta_time": "8:30 AM"})),
        )
        .unwrap();
    assert_eq!(rendered.language, "en");
    assert!(rendered.text.contains("⏰ Delivery ETA: 8:30 AM"));
}

/// Behind the check at saving, the render's own limits: a loop that
/// gets past it (here added to the environment directly) runs out of
/// fuel, and a text that gets too long stops at the cap. Without fuel
/// the loop is 10^10 steps.
#[test]
fn a_render_that_gets_past_the_check_is_stopped_by_fuel_and_the_output_cap() {
    let mut catalog = Catalog::empty();
    catalog
        .env
        .add_template_owned(
            "loop".to_string(),
            "{% for a in range(100000) %}{% for b in range(100000) %}{% endfor %}{% endfor %}"
                .to_string(),
        )
        .unwrap();
    let err = catalog
        .env
        .get_template("loop")
        .unwrap()
        .render(minijinja::context! {})
        .unwrap_err();
    assert_eq!(err.kind(), minijinja::ErrorKind::OutOfFuel);

    let def: TemplateDef = toml::from_str(
        r#"name = "long"
category = "transactional"
variables = ["a"]
whatsapp = { template = "long", parameters = ["a"] }
text = { en = "{{ a }}{{ a }}{{ a }}{{ a }}{{ a }}{{ a }}{{ a }}{{ a }}" }"#,
    )
    .unwrap();
    let catalog = Catalog::from_defs(vec![("long.toml".into(), def)]).unwrap();
    let big = "x".repeat(2_500);
    let err = catalog
        .render("long", None, &vars(json!({ "a": big })))
        .unwrap_err();
    assert!(matches!(err, RenderError::TooLarge(_)), "{err:?}");
    assert!(
        catalog
            .render("long", None, &vars(json!({ "a": "short" })))
            .is_ok()
    );
}

#[test]
fn a_text_using_an_undeclared_variable_is_refused_at_load() {
    let def: TemplateDef = toml::from_str(
        r#"name = "x"
category = "transactional"
variables = ["a"]
whatsapp = { template = "x", parameters = ["a"] }
text = { en = "{{ a }} {{ b }}" }"#,
    )
    .unwrap();
    let err = Catalog::from_defs(vec![("x.toml".into(), def)])
        .err()
        .unwrap();
    assert!(err.to_string().contains("\"b\""), "{err}");
}

/// A template approved on one provider's account sends there with that
/// account's name, language and parameter order, and is refused for a
/// provider that has none, rather than sent wrong; with no providers
/// named, `whatsapp` serves every provider.
#[test]
fn each_provider_sends_its_own_approved_template() {
    let mut def = repo_catalog().get("order_confirmation").unwrap().clone();
    def.providers.insert(
        "meta-standby".into(),
        ProviderTemplateDef {
            template: "order_confirmed_v2".into(),
            languages: vec!["en_US".into(), "hi".into()],
            parameters: vec!["total_amount".into(), "order_id".into()],
            truncate_to: None,
        },
    );
    let catalog = Catalog::from_stored(vec![def.clone()]).0;
    let variables =
        vars(json!({"order_id": "A-17", "delivery_date": "25 Nov", "total_amount": 240}));
    let hindi = catalog
        .provider_template("order_confirmation", "meta-standby", "hi", &variables)
        .unwrap();
    assert_eq!(
        (hindi.name.as_str(), hindi.language.as_str()),
        ("order_confirmed_v2", "hi")
    );
    assert_eq!(hindi.parameters, ["240", "A-17"]);
    let english = catalog
        .provider_template("order_confirmation", "meta-standby", "en", &variables)
        .unwrap();
    assert_eq!(english.language, "en_US");
    let refused = catalog.provider_template("order_confirmation", "myoperator", "en", &variables);
    assert!(
        matches!(&refused, Err(RenderError::NotApprovedFor { known, .. }) if known == "meta-standby"),
        "{refused:?}"
    );
    let legacy = repo_catalog()
        .provider_template("order_confirmation", "anyone", "en", &variables)
        .unwrap();
    assert_eq!(legacy.name, "order_confirmation");
    assert_eq!(legacy.parameters, ["A-17", "25 Nov", "240"]);

    // Checked when loaded and edited: only the template's variables, a
    // provider's name, some languages.
    for (provider, approved, field) in [
        (
            "meta-standby",
            ProviderTemplateDef {
                template: "x".into(),
                languages: vec!["en".into()],
                parameters: vec!["not_a_variable".into()],
                truncate_to: None,
            },
            "providers.meta-standby.parameters",
        ),
        (
            "meta-standby",
            ProviderTemplateDef {
                template: "x".into(),
                languages: vec![],
                parameters: vec![],
                truncate_to: None,
            },
            "providers.meta-standby.languages",
        ),
        (
            "Not A Name",
            ProviderTemplateDef {
                template: "x".into(),
                languages: vec!["en".into()],
                parameters: vec![],
                truncate_to: None,
            },
            "providers",
        ),
    ] {
        let mut bad = def.clone();
        bad.providers = [(provider.to_string(), approved)].into_iter().collect();
        let (_, refused) = Catalog::from_stored(vec![bad]);
        assert_eq!(
            refused.first().map(|(_, p)| p.field.as_str()),
            Some(field),
            "{refused:?}"
        );
    }
}

/// `expire_after` reads as a duration from a minute to a year and a day;
/// anything else is refused at load, naming the field.
#[test]
fn expire_after_is_a_bounded_duration() {
    let catalog = repo_catalog();
    let eta = catalog.get("delivery_delayed").unwrap();
    assert_eq!(
        eta.expire_after(),
        Some(std::time::Duration::from_secs(2 * 3600))
    );
    for (text, fine) in [
        ("30m", true),
        ("366d", true),
        ("59s", false),
        ("367d", false),
        ("soon", false),
        ("", false),
    ] {
        let mut def = eta.clone();
        def.expire_after = Some(text.into());
        let checked = catalog.with(def);
        assert_eq!(checked.is_ok(), fine, "{text:?}");
        if let Err(problem) = checked {
            assert_eq!(problem.field, "expire_after");
        }
    }
}
