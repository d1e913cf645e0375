//! What the handlers enforce that the derived schemas cannot say, written
//! into the OpenAPI document: the phone pattern wherever a phone goes,
//! the range of times,
//! exactly one of `template` and `text`, and, each time the document is
//! served, the names that exist now (the templates and the variables each
//! requires, the loaded providers, the event types the rules plugin
//! knows). A client generated from the
//! document, or a fuzzer such as schemathesis, then sends what chirp takes.

use serde_json::{Value, json};

use super::AppState;
use crate::phone;
use crate::templates::Category;

/// The fixed constraints, once, when the document is built.
pub(super) fn fixed(document: &mut Value) {
    for_each_object(document, &mut |object| {
        // Parameters named `phone` (path and query).
        if object.get("name").and_then(Value::as_str) == Some("phone")
            && let Some(schema) = object.get_mut("schema").and_then(Value::as_object_mut)
        {
            schema.insert("pattern".into(), json!(phone::PATTERN));
        }
        // Times: RFC 3339, from 1970 (`extract::parse_time`).
        if object.get("format").and_then(Value::as_str) == Some("date-time") {
            object.insert("pattern".into(), json!(super::extract::TIME_PATTERN));
        }
        // Properties named `phone` (bodies).
        if let Some(phone) = object
            .get_mut("properties")
            .and_then(|p| p.get_mut("phone"))
            .and_then(Value::as_object_mut)
        {
            phone.insert("pattern".into(), json!(phone::PATTERN));
        }
    });
}

/// The names that exist now, written as enums where a request names one.
pub(super) fn live(document: &mut Value, state: &AppState) {
    let catalog = state.templates.current();
    let templates: Vec<Value> = catalog.all().map(|t| json!(t.name)).collect();
    let providers: Vec<Value> = state
        .plugins
        .active()
        .into_iter()
        .filter(|m| m.world == crate::plugins::World::Provider)
        .map(|m| json!(m.name))
        .collect();
    let kinds: Vec<Value> = state
        .plugins
        .rules(&state.rules)
        .map(|rules| state.plugins.rules_kinds(&rules.name))
        .unwrap_or_default()
        .into_iter()
        .map(Value::from)
        .collect();
    // `text`, or a template with the variables it requires; never both,
    // never neither.
    let text = json!({
        "required": ["text"],
        "properties": {"text": {"type": "string"}, "template": {"type": "null"},
                       "variables": {"type": "null"}},
    });
    let content: Vec<Value> = std::iter::once(text)
        .chain(catalog.all().map(|t| {
            // A variable is a string, number or boolean (null is not given).
            let given: serde_json::Map<String, Value> = t
                .variables
                .iter()
                .map(|v| (v.clone(), json!({"type": ["string", "number", "boolean"]})))
                .collect();
            let (required, variables) = if t.variables.is_empty() {
                (json!(["template"]), json!({"type": ["object", "null"]}))
            } else {
                (
                    json!(["template", "variables"]),
                    json!({"type": "object", "required": t.variables, "properties": given}),
                )
            };
            // Opt-outs of marketing are never overridden.
            let override_opt_out = match t.category {
                Category::Marketing => json!({"enum": [false, null]}),
                Category::Transactional => json!({"type": ["boolean", "null"]}),
            };
            json!({
                "required": required,
                "properties": {"template": {"const": t.name}, "text": {"type": "null"},
                               "variables": variables, "override_opt_out": override_opt_out},
            })
        }))
        .collect();
    if let Some(send) = document.pointer_mut("/components/schemas/SendMessageRequest") {
        send["oneOf"] = Value::Array(content);
    }
    let schemas = "/components/schemas";
    set_enum(
        document,
        &format!("{schemas}/SendMessageRequest/properties/provider"),
        &providers,
        true,
    );
    set_enum(
        document,
        &format!("{schemas}/PreferencesEdit/properties/opt_out_templates/items"),
        &templates,
        false,
    );
    set_enum(
        document,
        &format!("{schemas}/EventRequest/properties/type"),
        &kinds,
        false,
    );
}

fn set_enum(document: &mut Value, pointer: &str, names: &[Value], nullable: bool) {
    if let Some(schema) = document.pointer_mut(pointer).and_then(Value::as_object_mut) {
        let mut values = names.to_vec();
        if nullable {
            values.push(Value::Null);
        }
        schema.insert("enum".into(), Value::Array(values));
    }
}

fn for_each_object(value: &mut Value, visit: &mut impl FnMut(&mut serde_json::Map<String, Value>)) {
    match value {
        Value::Object(object) => {
            visit(object);
            for child in object.values_mut() {
                for_each_object(child, visit);
            }
        }
        Value::Array(items) => {
            for child in items {
                for_each_object(child, visit);
            }
        }
        _ => {}
    }
}
