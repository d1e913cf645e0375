//! Message templates: loading the catalog from `templates/*.toml` and
//! rendering a message from a template and the caller's variables.
//!
//! **Invariant:** rendering does no I/O. The catalog is read and every text
//! compiled and checked once, at start; a request only looks up and renders.
//! Rendering is strict: a variable the text uses but the caller did not give
//! is an error, never an empty string in a customer's message.
//! **Invariant:** a render is bounded in time and space ([`budget`]): a
//! text that could loop or build megabytes is refused when it is saved,
//! and a render whose variables could make it build too much is refused
//! before it starts.

pub mod budget;
mod definition;

pub use definition::{
    Category, MAX_FALLBACKS, ProviderTemplateDef, TemplateDef, TemplateProblem, WhatsappTemplate,
    parse_route,
};
use definition::{check_definition, valid_language};

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use minijinja::{Environment, UndefinedBehavior};
use serde_json::{Map, Value};

use crate::message::ProviderTemplate;

/// The language used when a template has no text in the one asked for.
pub const DEFAULT_LANGUAGE: &str = "en";

/// Why the catalog cannot be loaded. Each names the file.
#[derive(Debug, thiserror::Error)]
pub enum CatalogError {
    /// The directory or a file in it could not be read.
    #[error("cannot read templates from {path}: {source}")]
    Read {
        /// What could not be read.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// A file is not a valid template.
    #[error("{path}: {reason}")]
    Invalid {
        /// The file.
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },
}

/// Why a message cannot be rendered. `field` names what the caller must fix.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RenderError {
    /// No template has this name.
    #[error("unknown template {0:?}")]
    UnknownTemplate(String),
    /// The template is disabled (or its stored text fails this chirp's
    /// checks).
    #[error("template {0:?} is disabled")]
    Disabled(String),
    /// A declared variable was not given (or given as null).
    #[error("variable {0:?} is required by this template")]
    MissingVariable(String),
    /// A variable given as an array or object.
    #[error("variable {name:?} must be a string, number or boolean")]
    InvalidVariable {
        /// The variable.
        name: String,
    },
    /// minijinja failed (its words).
    #[error("rendering failed: {0}")]
    Render(String),
    /// The render would cost more than a render may ([`budget`]).
    #[error("rendering refused: {0}")]
    TooLarge(String),
    /// The template names the approved templates of some providers, and
    /// not this one's.
    #[error(
        "template {template:?} has no approved template for provider {provider:?}; it has one for {known}"
    )]
    NotApprovedFor {
        /// The template.
        template: String,
        /// The provider asked for.
        provider: String,
        /// The providers it has one for, listed.
        known: String,
    },
}

impl RenderError {
    /// The request field the error is about, in the API's dotted form.
    pub fn field(&self) -> &'static str {
        match self {
            RenderError::UnknownTemplate(_) | RenderError::Disabled(_) => "template",
            _ => "variables",
        }
    }
}

/// A rendered message: its text and, for the provider, the approved
/// template with its parameters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rendered {
    /// The rendered text.
    pub text: String,
    /// The language rendered.
    pub language: String,
    /// The approved template with its parameters.
    pub provider_template: ProviderTemplate,
    /// The template version it was rendered from.
    pub version: u32,
}

/// The loaded, checked templates.
pub struct Catalog {
    defs: BTreeMap<String, TemplateDef>,
    env: Environment<'static>,
    /// The shape of each compiled text, by `name.language`.
    shapes: BTreeMap<String, budget::Shape>,
}

impl Catalog {
    /// Loads every `*.toml` in `dir`, compiling and checking each text.
    pub fn load(dir: &Path) -> Result<Catalog, CatalogError> {
        let read_error = |source| CatalogError::Read {
            path: dir.into(),
            source,
        };
        let mut paths: Vec<PathBuf> = std::fs::read_dir(dir)
            .map_err(read_error)?
            .filter_map(|entry| entry.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|e| e == "toml"))
            .collect();
        paths.sort();
        let mut defs = Vec::new();
        for path in paths {
            let text = std::fs::read_to_string(&path).map_err(|source| CatalogError::Read {
                path: path.clone(),
                source,
            })?;
            let def: TemplateDef = toml::from_str(&text).map_err(|e| CatalogError::Invalid {
                path: path.clone(),
                reason: e.to_string(),
            })?;
            defs.push((path, def));
        }
        Catalog::from_defs(defs)
    }

    /// Builds a catalog from definitions; the path names each in errors.
    pub fn from_defs(defs: Vec<(PathBuf, TemplateDef)>) -> Result<Catalog, CatalogError> {
        let mut catalog = Catalog::empty();
        for (path, def) in defs {
            let invalid = |reason: String| CatalogError::Invalid {
                path: path.clone(),
                reason,
            };
            catalog
                .add_checked(&def)
                .map_err(|p| invalid(p.to_string()))?;
            if catalog.defs.insert(def.name.clone(), def).is_some() {
                return Err(invalid("a template of this name is defined twice".into()));
            }
        }
        Ok(catalog)
    }

    /// Builds the catalog from the store's definitions. A definition that
    /// this chirp refuses (saved by an older one, before a check it now
    /// makes) does not stop chirp: it is kept disabled, its texts not
    /// compiled, and returned with why, so an operator can fix it.
    pub fn from_stored(defs: Vec<TemplateDef>) -> (Catalog, Vec<(String, TemplateProblem)>) {
        let mut catalog = Catalog::empty();
        let mut refused = Vec::new();
        for mut def in defs {
            if let Err(problem) = catalog.add_checked(&def) {
                def.enabled = false;
                def.text.clear();
                refused.push((def.name.clone(), problem));
            }
            catalog.defs.insert(def.name.clone(), def);
        }
        (catalog, refused)
    }

    fn empty() -> Catalog {
        let mut env = Environment::new();
        env.set_undefined_behavior(UndefinedBehavior::Strict);
        env.set_fuel(Some(budget::FUEL));
        Catalog {
            defs: BTreeMap::new(),
            env,
            shapes: BTreeMap::new(),
        }
    }

    /// The same catalog with `def` added or replacing the template of its
    /// name; the definition is checked first.
    pub fn with(&self, def: TemplateDef) -> Result<Catalog, TemplateProblem> {
        let mut next = Catalog {
            defs: self.defs.clone(),
            env: self.env.clone(),
            shapes: self.shapes.clone(),
        };
        for language in self
            .defs
            .get(&def.name)
            .into_iter()
            .flat_map(|d| d.text.keys())
        {
            let key = template_key(&def.name, language);
            next.env.remove_template(&key);
            next.shapes.remove(&key);
        }
        next.add_checked(&def)?;
        next.defs.insert(def.name.clone(), def);
        Ok(next)
    }

    /// Example variables of a template: its `sample`, and the variable's
    /// own name in angle brackets for any the sample leaves out.
    pub fn sample_variables(&self, name: &str) -> Option<Map<String, Value>> {
        let def = self.defs.get(name)?;
        Some(
            def.variables
                .iter()
                .map(|v| {
                    let value = def
                        .sample
                        .get(v)
                        .cloned()
                        .unwrap_or_else(|| Value::String(format!("<{v}>")));
                    (v.clone(), value)
                })
                .collect(),
        )
    }

    /// The template named `name`, if any.
    pub fn get(&self, name: &str) -> Option<&TemplateDef> {
        self.defs.get(name)
    }

    /// Every template, by name.
    pub fn all(&self) -> impl Iterator<Item = &TemplateDef> {
        self.defs.values()
    }

    /// Renders template `name` in `language` (falling back to English) with
    /// the caller's `variables`. Renders disabled templates too: whether to
    /// send is the caller's decision.
    pub fn render(
        &self,
        name: &str,
        language: Option<&str>,
        variables: &Map<String, Value>,
    ) -> Result<Rendered, RenderError> {
        let def = self
            .defs
            .get(name)
            .ok_or_else(|| RenderError::UnknownTemplate(name.into()))?;
        for variable in &def.variables {
            match variables.get(variable) {
                None | Some(Value::Null) => {
                    return Err(RenderError::MissingVariable(variable.clone()));
                }
                Some(Value::Array(_) | Value::Object(_)) => {
                    return Err(RenderError::InvalidVariable {
                        name: variable.clone(),
                    });
                }
                Some(_) => {}
            }
        }
        let language = language
            .filter(|l| def.text.contains_key(*l))
            .unwrap_or(DEFAULT_LANGUAGE);
        let key = template_key(name, language);
        let Some(shape) = self.shapes.get(&key) else {
            // A stored text this chirp refused: its template is disabled.
            return Err(RenderError::Disabled(name.into()));
        };
        let longest = def
            .variables
            .iter()
            .filter_map(|v| variables.get(v))
            .map(|value| plain_text(value).len())
            .max()
            .unwrap_or(0);
        budget::Budget::admit(*shape, longest).map_err(RenderError::TooLarge)?;
        let mut output = budget::CappedOutput::default();
        let rendered = self
            .env
            .get_template(&key)
            .and_then(|t| t.render_captured_to(variables, &mut output).map(|_| ()));
        if let Err(e) = rendered {
            return Err(if output.overflowed {
                RenderError::TooLarge(format!(
                    "the text would be longer than {} bytes",
                    budget::MAX_RENDERED_BYTES
                ))
            } else if e.kind() == minijinja::ErrorKind::OutOfFuel {
                RenderError::TooLarge("the render took more steps than a render may".into())
            } else {
                RenderError::Render(e.to_string())
            });
        }
        let text = output.text;
        let parameters = def
            .whatsapp
            .parameters
            .iter()
            .map(|p| plain_text(&variables[p]))
            .collect();
        Ok(Rendered {
            text,
            language: language.into(),
            provider_template: ProviderTemplate {
                name: def.whatsapp.template.clone(),
                language: language.into(),
                parameters,
            },
            version: def.version,
        })
    }
}

impl Catalog {
    /// What provider `provider` is to send for template `name` rendered in
    /// `language` with `variables` (already checked by `render`): the
    /// provider's own approved template if the template names any, in
    /// `language` when approved in it, else its first approved language;
    /// the `whatsapp` mapping if the template names none.
    pub fn provider_template(
        &self,
        name: &str,
        provider: &str,
        language: &str,
        variables: &Map<String, Value>,
    ) -> Result<ProviderTemplate, RenderError> {
        let def = self
            .defs
            .get(name)
            .ok_or_else(|| RenderError::UnknownTemplate(name.into()))?;
        let values = |names: &[String]| {
            names
                .iter()
                .map(|p| variables.get(p).map(plain_text).unwrap_or_default())
                .collect()
        };
        if def.providers.is_empty() {
            return Ok(ProviderTemplate {
                name: def.whatsapp.template.clone(),
                language: language.into(),
                parameters: values(&def.whatsapp.parameters),
            });
        }
        let approved = def
            .providers
            .get(provider)
            .ok_or_else(|| RenderError::NotApprovedFor {
                template: name.into(),
                provider: provider.into(),
                known: def.providers.keys().cloned().collect::<Vec<_>>().join(", "),
            })?;
        let language = approved
            .languages
            .iter()
            .find(|l| l.as_str() == language)
            .or(approved.languages.first())
            .cloned()
            .unwrap_or_else(|| language.into());
        let parameters: Vec<String> = values(&approved.parameters);
        Ok(ProviderTemplate {
            name: approved.template.clone(),
            language,
            parameters: match approved.truncate_to {
                Some(n) => parameters
                    .into_iter()
                    .map(|p| p.chars().take(n).collect())
                    .collect(),
                None => parameters,
            },
        })
    }
}

fn template_key(name: &str, language: &str) -> String {
    format!("{name}.{language}")
}

/// A JSON scalar as the text a customer reads: strings without quotes.
fn plain_text(value: &Value) -> String {
    match value {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

impl Catalog {
    /// Checks `def` and adds its texts, with their shapes.
    fn add_checked(&mut self, def: &TemplateDef) -> Result<(), TemplateProblem> {
        check_definition(def)?;
        let declared: BTreeSet<&str> = def.variables.iter().map(String::as_str).collect();
        for (language, text) in &def.text {
            let field = format!("text.{language}");
            if !valid_language(language) {
                return Err(TemplateProblem::new(
                    field,
                    "a language is a code such as en or hi",
                ));
            }
            let shape = budget::check(text).map_err(|refusal| TemplateProblem {
                field: field.clone(),
                line: refusal.line,
                reason: refusal.reason,
            })?;
            let key = template_key(&def.name, language);
            let syntax = |e: minijinja::Error| TemplateProblem {
                field: field.clone(),
                line: e.line(),
                reason: e
                    .detail()
                    .map(str::to_string)
                    .unwrap_or_else(|| e.to_string()),
            };
            self.env
                .add_template_owned(key.clone(), text.clone())
                .map_err(syntax)?;
            let compiled = self.env.get_template(&key).map_err(syntax)?;
            let used = compiled.undeclared_variables(false);
            if let Some(unknown) = used.iter().find(|v| !declared.contains(v.as_str())) {
                let line = text
                    .lines()
                    .position(|l| l.contains(unknown.as_str()))
                    .map(|i| i + 1);
                self.env.remove_template(&key);
                return Err(TemplateProblem {
                    field,
                    line,
                    reason: format!("uses {unknown:?}, which is not among the variables"),
                });
            }
            self.shapes.insert(key, shape);
        }
        Ok(())
    }
}

/// The catalog in force, replaced whole on every edit: readers take an
/// `Arc` and render without holding any lock.
pub struct Templates {
    current: std::sync::RwLock<std::sync::Arc<Catalog>>,
}

impl Templates {
    /// `catalog` in force.
    pub fn new(catalog: Catalog) -> Templates {
        Templates {
            current: std::sync::RwLock::new(std::sync::Arc::new(catalog)),
        }
    }

    /// The catalog as it is now.
    pub fn current(&self) -> std::sync::Arc<Catalog> {
        // Held only to clone the Arc; a poisoned lock still holds a whole
        // catalog (the write is a single assignment).
        self.current
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Puts `catalog` in force.
    pub fn replace(&self, catalog: Catalog) {
        *self.current.write().unwrap_or_else(|e| e.into_inner()) = std::sync::Arc::new(catalog);
    }
}

#[cfg(test)]
mod tests;
