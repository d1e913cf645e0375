//! `/api/docs`: the OpenAPI document as one server-rendered page, with
//! no script and nothing from another origin (it used to load a renderer
//! from a CDN, which a machine without internet cannot reach and a strict
//! CSP forbids).

use axum::response::Response;
use serde::Serialize;
use serde_json::Value;

use super::render;

/// One operation of the document, for the page.
#[derive(Serialize)]
struct Operation {
    method: String,
    path: String,
    anchor: String,
    summary: String,
    description: String,
    parameters: Vec<Parameter>,
    body: Option<String>,
    responses: Vec<(String, String)>,
}

#[derive(Serialize)]
struct Parameter {
    name: String,
    place: String,
    required: bool,
    description: String,
}

/// The operations of `document`, grouped by tag in the document's order.
fn operations(document: &Value) -> Vec<(String, Vec<Operation>)> {
    let mut groups: Vec<(String, Vec<Operation>)> = Vec::new();
    let text = |v: &Value| v.as_str().unwrap_or_default().to_string();
    for (path, item) in document["paths"].as_object().into_iter().flatten() {
        for (method, op) in item.as_object().into_iter().flatten() {
            if !["get", "post", "put", "patch", "delete"].contains(&method.as_str()) {
                continue;
            }
            let tag = op["tags"][0].as_str().unwrap_or("other").to_string();
            let body = op["requestBody"]["content"]
                .as_object()
                .and_then(|c| c.values().next())
                .and_then(|c| c.get("example"))
                .and_then(|e| serde_json::to_string_pretty(e).ok());
            let operation = Operation {
                method: method.to_uppercase(),
                path: path.clone(),
                anchor: format!("{method}-{path}")
                    .chars()
                    .map(|c| if c.is_ascii_alphanumeric() { c } else { '-' })
                    .collect(),
                summary: text(&op["summary"]),
                description: text(&op["description"]),
                parameters: op["parameters"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .map(|p| Parameter {
                        name: text(&p["name"]),
                        place: text(&p["in"]),
                        required: p["required"].as_bool().unwrap_or(false),
                        description: text(&p["description"]),
                    })
                    .collect(),
                body,
                responses: op["responses"]
                    .as_object()
                    .into_iter()
                    .flatten()
                    .map(|(code, r)| (code.clone(), text(&r["description"])))
                    .collect(),
            };
            match groups.iter_mut().find(|(t, _)| *t == tag) {
                Some((_, ops)) => ops.push(operation),
                None => groups.push((tag, vec![operation])),
            }
        }
    }
    groups
}

/// The page for `document`.
pub fn page(document: &Value) -> Response {
    let groups = operations(document);
    render::page(
        "docs.html",
        minijinja::context! {
            title => document["info"]["title"].as_str().unwrap_or("chirp API"),
            version => document["info"]["version"].as_str().unwrap_or_default(),
            description => document["info"]["description"].as_str().unwrap_or_default(),
            groups => minijinja::Value::from_serialize(&groups),
        },
    )
}
