//! `/console/templates`: the list, and one template's editor: its text in
//! each language with a live preview rendered by the server, a bad edit
//! shown at its line (and never saved), its versions with what each
//! changed, and rollback.

use std::collections::BTreeMap;

use axum::extract::{Path, State};
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Redirect, Response};
use serde::Serialize;

use super::session::Operator;
use super::{after_post, caller, context, error_page, forged, render};
use crate::api::auth::Admin;
use crate::api::{ApiError, AppState};
use crate::templates::{TemplateDef, TemplateProblem};

/// The most lines of a text the version diff compares.
const MAX_DIFF_LINES: usize = 400;
/// The most versions the editor shows (the newest).
const MAX_VERSIONS_SHOWN: usize = 50;

/// `GET /console/templates`.
pub async fn list(State(state): State<AppState>, operator: Operator) -> Response {
    let answer = crate::api::templates::list(caller(&operator), State(state)).await;
    render::page(
        "templates.html",
        context(
            &operator,
            "templates",
            minijinja::context! { list => minijinja::Value::from_serialize(&answer.0) },
        ),
    )
}

/// A form's fields in order (repeated names kept).
type Pairs = Vec<(String, String)>;

fn form(body: &[u8]) -> Pairs {
    url::form_urlencoded::parse(body)
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect()
}

fn field<'a>(pairs: &'a [(String, String)], name: &str) -> Option<&'a str> {
    pairs
        .iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.as_str())
}

/// The template as the form edits it: its texts by language (an empty
/// one removed), `enabled` and `description`.
fn edited(mut def: TemplateDef, pairs: &[(String, String)]) -> TemplateDef {
    let new_language = (field(pairs, "new_language"), field(pairs, "new_text"));
    // A language added below the others, if both its fields are filled;
    // then every language's field, an empty one removing its language.
    let new_language = match new_language {
        (Some(lang), Some(text)) if !text.trim().is_empty() => {
            Some((format!("text.{}", lang.trim()), text))
        }
        _ => None,
    };
    for (key, text) in new_language
        .as_ref()
        .map(|(k, v)| (k.as_str(), *v))
        .into_iter()
        .chain(pairs.iter().map(|(k, v)| (k.as_str(), v.as_str())))
    {
        let Some(lang) = key.strip_prefix("text.") else {
            continue;
        };
        if text.trim().is_empty() {
            def.text.remove(lang);
        } else if !lang.is_empty() {
            def.text
                .insert(lang.to_string(), text.replace("\r\n", "\n"));
        }
    }
    def.enabled = field(pairs, "enabled").is_some();
    if let Some(description) = field(pairs, "description") {
        def.description = description.trim().to_string();
    }
    def
}

/// A problem with an edit, for the page: the field, the line (and its
/// text) and why.
#[derive(Serialize)]
struct ProblemView {
    field: String,
    line: Option<usize>,
    line_text: Option<String>,
    reason: String,
}

fn problem_view(def: &TemplateDef, problem: TemplateProblem) -> ProblemView {
    let line_text = problem.line.and_then(|n| {
        let lang = problem.field.strip_prefix("text.")?;
        def.text
            .get(lang)?
            .lines()
            .nth(n.checked_sub(1)?)
            .map(String::from)
    });
    ProblemView {
        field: problem.field,
        line: problem.line,
        line_text,
        reason: problem.reason,
    }
}

/// One language's preview.
#[derive(Serialize)]
struct Rendered {
    language: String,
    text: Option<String>,
    problem: Option<String>,
}

/// `def` rendered in each of its languages with its samples, or the
/// problem that stops it.
fn previews(state: &AppState, def: &TemplateDef) -> Result<Vec<Rendered>, ProblemView> {
    let catalog = state
        .templates
        .current()
        .with(def.clone())
        .map_err(|p| problem_view(def, p))?;
    let variables = catalog.sample_variables(&def.name).unwrap_or_default();
    Ok(def
        .text
        .keys()
        .map(
            |lang| match catalog.render(&def.name, Some(lang), &variables) {
                Ok(r) => Rendered {
                    language: lang.clone(),
                    text: Some(r.text),
                    problem: None,
                },
                Err(e) => Rendered {
                    language: lang.clone(),
                    text: None,
                    problem: Some(e.to_string()),
                },
            },
        )
        .collect())
}

/// One line of a diff: `+`, `-` or ` `, and the line.
#[derive(Serialize)]
struct DiffLine {
    sign: &'static str,
    text: String,
}

/// The lines that differ between `old` and `new` (longest common
/// subsequence; long texts are not compared).
fn line_diff(old: &str, new: &str) -> Vec<DiffLine> {
    let a: Vec<&str> = old.lines().collect();
    let b: Vec<&str> = new.lines().collect();
    if a.len() > MAX_DIFF_LINES || b.len() > MAX_DIFF_LINES {
        return vec![DiffLine {
            sign: "~",
            text: format!("({} -> {} lines; too long to compare)", a.len(), b.len()),
        }];
    }
    let mut lcs = vec![vec![0usize; b.len() + 1]; a.len() + 1];
    for i in (0..a.len()).rev() {
        for j in (0..b.len()).rev() {
            lcs[i][j] = if a[i] == b[j] {
                lcs[i + 1][j + 1] + 1
            } else {
                lcs[i + 1][j].max(lcs[i][j + 1])
            };
        }
    }
    let (mut i, mut j, mut out) = (0, 0, Vec::new());
    while i < a.len() || j < b.len() {
        if i < a.len() && j < b.len() && a[i] == b[j] {
            out.push(DiffLine {
                sign: " ",
                text: a[i].into(),
            });
            i += 1;
            j += 1;
        } else if j < b.len() && (i == a.len() || lcs[i][j + 1] >= lcs[i + 1][j]) {
            out.push(DiffLine {
                sign: "+",
                text: b[j].into(),
            });
            j += 1;
        } else {
            out.push(DiffLine {
                sign: "-",
                text: a[i].into(),
            });
            i += 1;
        }
    }
    out
}

/// A saved version and what it changed from the one before, by language.
#[derive(Serialize)]
struct VersionView {
    version: u64,
    saved_at: String,
    enabled: bool,
    changes: BTreeMap<String, Vec<DiffLine>>,
}

async fn versions(state: &AppState, operator: &Operator, name: &str) -> Vec<VersionView> {
    let Ok(list) = crate::api::templates::versions(
        caller(operator),
        State(state.clone()),
        Path(name.to_string()),
    )
    .await
    else {
        return Vec::new();
    };
    let list = serde_json::to_value(&list.0).unwrap_or_default();
    let mut items = list["items"].as_array().cloned().unwrap_or_default();
    // The newest, and the one before the oldest shown (to diff against).
    if items.len() > MAX_VERSIONS_SHOWN + 1 {
        items.drain(..items.len() - MAX_VERSIONS_SHOWN - 1);
    }
    let first_shown = items.len().saturating_sub(MAX_VERSIONS_SHOWN);
    let mut views = Vec::with_capacity(items.len());
    let empty = serde_json::Map::new();
    for (i, item) in items.iter().enumerate().skip(first_shown) {
        let before = i
            .checked_sub(1)
            .and_then(|p| items[p]["text"].as_object())
            .unwrap_or(&empty);
        let now = item["text"].as_object().unwrap_or(&empty);
        let mut changes = BTreeMap::new();
        for lang in before.keys().chain(now.keys()) {
            let old = before
                .get(lang)
                .and_then(|v| v.as_str())
                .unwrap_or_default();
            let new = now.get(lang).and_then(|v| v.as_str()).unwrap_or_default();
            if old != new {
                changes.insert(lang.clone(), line_diff(old, new));
            }
        }
        views.push(VersionView {
            version: item["version"].as_u64().unwrap_or(0),
            saved_at: item["saved_at"].as_str().unwrap_or_default().to_string(),
            enabled: item["enabled"].as_bool().unwrap_or(false),
            changes,
        });
    }
    views.reverse();
    views
}

/// The editor for `def` (as saved, or as edited), with its preview or
/// the problem that stops it.
async fn editor(
    state: &AppState,
    operator: &Operator,
    def: &TemplateDef,
    status: axum::http::StatusCode,
    saved: bool,
) -> Response {
    let (preview, problem) = match previews(state, def) {
        Ok(p) => (Some(p), None),
        Err(p) => (None, Some(p)),
    };
    let versions = versions(state, operator, &def.name).await;
    let mut response = render::page(
        "template.html",
        context(
            operator,
            "templates",
            minijinja::context! {
                template => minijinja::Value::from_serialize(def),
                category => format!("{:?}", def.category).to_lowercase(),
                preview => minijinja::Value::from_serialize(&preview),
                problem => minijinja::Value::from_serialize(&problem),
                versions => minijinja::Value::from_serialize(&versions),
                saved,
            },
        ),
    );
    *response.status_mut() = status;
    response
}

/// `GET /console/templates/{name}`.
pub async fn edit(
    State(state): State<AppState>,
    operator: Operator,
    Path(name): Path<String>,
    axum::extract::RawQuery(query): axum::extract::RawQuery,
) -> Response {
    match crate::api::templates::current(&state, &name) {
        Ok(def) => {
            let saved = query.is_some_and(|q| q.contains("saved=1"));
            editor(&state, &operator, &def, axum::http::StatusCode::OK, saved).await
        }
        Err(e) => error_page(Some(&operator), &e),
    }
}

/// A posted edit of template `name`, from this session's own form: the
/// form's fields and the template as they edit it, or the page that
/// refuses it.
fn posted_edit(
    state: &AppState,
    operator: &Operator,
    name: &str,
    headers: &HeaderMap,
    body: &[u8],
) -> Result<(Pairs, TemplateDef), Box<Response>> {
    let pairs = form(body);
    if !operator.may_post(headers, field(&pairs, "csrf").unwrap_or_default()) {
        return Err(Box::new(forged(operator)));
    }
    match crate::api::templates::current(state, name) {
        Ok(def) => {
            let def = edited(def, &pairs);
            Ok((pairs, def))
        }
        Err(e) => Err(Box::new(error_page(Some(operator), &e))),
    }
}

/// `POST /console/templates/{name}`: `action=save` saves the edit (a bad
/// one is shown at its line, unsaved); `action=preview` only shows it.
pub async fn save(
    State(state): State<AppState>,
    operator: Operator,
    Path(name): Path<String>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Response {
    let (pairs, def) = match posted_edit(&state, &operator, &name, &headers, &body) {
        Ok(edit) => edit,
        Err(refused) => return *refused,
    };
    if state.templates.current().with(def.clone()).is_err() {
        return editor(
            &state,
            &operator,
            &def,
            axum::http::StatusCode::UNPROCESSABLE_ENTITY,
            false,
        )
        .await;
    }
    if field(&pairs, "action") == Some("preview") {
        return editor(&state, &operator, &def, axum::http::StatusCode::OK, false).await;
    }
    match crate::api::templates::save(&state, def).await {
        Ok(_) => Redirect::to(&format!("/console/templates/{name}?saved=1")).into_response(),
        Err(e) => error_page(Some(&operator), &e),
    }
}

/// `POST /console/templates/{name}/preview`: the edit's preview alone
/// (the page's script swaps it in as the operator types).
pub async fn preview(
    State(state): State<AppState>,
    operator: Operator,
    Path(name): Path<String>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Response {
    let def = match posted_edit(&state, &operator, &name, &headers, &body) {
        Ok((_, def)) => def,
        Err(refused) => return *refused,
    };
    let (preview, problem) = match previews(&state, &def) {
        Ok(p) => (Some(p), None),
        Err(p) => (None, Some(p)),
    };
    render::page(
        "preview.html",
        minijinja::context! {
            preview => minijinja::Value::from_serialize(&preview),
            problem => minijinja::Value::from_serialize(&problem),
        },
    )
}

/// `POST /console/templates/{name}/rollback/{version}`.
pub async fn rollback(
    State(state): State<AppState>,
    operator: Operator,
    Path((name, version)): Path<(String, String)>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Response {
    let pairs = form(&body);
    if !operator.may_post(&headers, field(&pairs, "csrf").unwrap_or_default()) {
        return forged(&operator);
    }
    let to = format!("/console/templates/{name}?saved=1");
    let answer: Result<_, ApiError> = crate::api::templates::rollback(
        Admin(caller(&operator)),
        State(state),
        Path((name, version)),
    )
    .await;
    after_post(&operator, answer, &to)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_diff_shows_what_changed_line_by_line() {
        let diff = line_diff("a\nb\nc", "a\nB\nc\nd");
        let signs: String = diff.iter().map(|d| d.sign).collect();
        let texts: Vec<&str> = diff.iter().map(|d| d.text.as_str()).collect();
        assert_eq!(signs, " +- +");
        assert_eq!(texts, ["a", "B", "b", "c", "d"]);
    }
}
