//! The plugin author's tools: `chirp plugin check FILE.wasm` and
//! `chirp plugin send FILE.wasm --to +91... --text ... [--url URL]`.
//!
//! Both load the file exactly as the server would (compile, link,
//! describe, self-test), so "check passes" means "chirp will load it".
//! Settings come from the environment (`CHIRP_PLUGINS__<PLUGIN>__<SETTING>`,
//! and the sandbox policy from `CHIRP_SANDBOX__<PLUGIN>__<KEY>`); for `check`,
//! required settings that are not set are filled with a placeholder and
//! reported.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::path::Path;
use std::time::Instant;

use crate::config::PluginSettings;
use crate::plugins::{self, LoadError, Plugins, Sync, World, bindings};

/// Why a tool could not do its job.
#[derive(Debug, thiserror::Error)]
pub enum ToolError {
    #[error(transparent)]
    /// The file cannot be loaded.
    Load(#[from] LoadError),
    /// wasmtime refused the engine's configuration.
    #[error("cannot start the WebAssembly engine: {0:#}")]
    Engine(wasmtime::Error),
    #[error("{0}")]
    /// The command line is not usable.
    Usage(String),
    #[error("the plugin did not answer: {0}")]
    /// The plugin's call failed.
    Call(#[from] plugins::CallError),
}

const PLACEHOLDER: &str = "chirp-check-placeholder";

/// Loads `file` with `env` as its settings, filling missing required
/// settings with a placeholder if `placeholders`. Returns the plugins, the
/// loaded plugin's metadata and the variables that got placeholders.
async fn load(
    file: &Path,
    mut env: HashMap<String, String>,
    placeholders: bool,
) -> Result<(Plugins, plugins::Meta, Vec<String>), ToolError> {
    let cache = std::env::temp_dir().join("chirp-plugin-check-cache");
    let mut filled = Vec::new();
    loop {
        let settings = PluginSettings::new(&env, HashMap::new(), HashMap::new())
            .map_err(|e| ToolError::Usage(e.to_string()))?;
        let plugins =
            Plugins::new(plugins::Setup::new(settings, &cache)).map_err(ToolError::Engine)?;
        match plugins.sync_file(file).await {
            Ok(Sync::Loaded(meta)) => return Ok((plugins, meta, filled)),
            Ok(other) => {
                return Err(ToolError::Usage(format!(
                    "{} was not loaded ({other:?})",
                    file.display()
                )));
            }
            Err(LoadError::MissingSetting { variable, .. })
                if placeholders && !filled.contains(&variable) =>
            {
                env.insert(variable.clone(), PLACEHOLDER.into());
                filled.push(variable);
            }
            Err(e) => return Err(e.into()),
        }
    }
}

/// `chirp plugin check FILE.wasm`: what the file is and whether chirp
/// would load it. Returns the report to print.
pub async fn check(file: &Path) -> Result<String, ToolError> {
    let started = Instant::now();
    let env: HashMap<String, String> = std::env::vars().collect();
    let (plugins, meta, filled) = load(file, env, true).await?;
    let mut out = String::new();
    let _ = writeln!(out, "file:      {}", file.display());
    let _ = writeln!(out, "sha256:    {}", meta.sha256);
    let _ = writeln!(out, "world:     {:?}", meta.world);
    let _ = writeln!(out, "name:      {}", meta.name);
    let _ = writeln!(out, "version:   {}", meta.version);
    match meta.world {
        World::Provider => {
            if let Some(p) = plugins.provider(&meta.name) {
                let _ = writeln!(out, "settings:");
                for s in &p.descriptor.settings {
                    let variable = PluginSettings::variable(&meta.name, &s.name);
                    let state = if filled.contains(&variable) {
                        "NOT SET (placeholder used for this check)".to_string()
                    } else if std::env::var(&variable).is_ok() {
                        "set".to_string()
                    } else if let Some(d) = &s.default_value {
                        format!("default {d}")
                    } else {
                        "not set".to_string()
                    };
                    let _ = writeln!(
                        out,
                        "  {:<18} {:<9} {:<7} {:<32} {} — {}",
                        s.name,
                        if s.required { "required" } else { "optional" },
                        if s.secret { "secret" } else { "" },
                        variable,
                        state,
                        s.description
                    );
                }
                let _ = writeln!(out, "hosts:     {}", p.descriptor.hosts.join(", "));
            }
        }
        World::Rules => {}
    }
    let _ = writeln!(
        out,
        "self-test: passed (describe and a sample call against the stub HTTP function)"
    );
    let _ = writeln!(out, "loaded in: {} ms", started.elapsed().as_millis());
    if !filled.is_empty() {
        let _ = writeln!(
            out,
            "note:      chirp serve would refuse to start until these are set: {}",
            filled.join(", ")
        );
    }
    Ok(out)
}

/// `chirp plugin send FILE.wasm --to PHONE --text TEXT [--url BASE]`: one
/// real send through the plugin. `--url` sets the plugin's `base-url`
/// setting and lets it reach loopback and private addresses (a local mock).
pub async fn send(
    file: &Path,
    to: &str,
    text: &str,
    url: Option<&str>,
) -> Result<String, ToolError> {
    let phone =
        crate::phone::Phone::parse(to).map_err(|e| ToolError::Usage(format!("--to {e}")))?;
    let mut env: HashMap<String, String> = std::env::vars().collect();
    // Learn the plugin's name, then load it again with the URL settings.
    let (plugins, meta, _) = load(file, env.clone(), true).await?;
    if meta.world != World::Provider {
        return Err(ToolError::Usage(format!("{} is not a provider", meta.name)));
    }
    let declares_base_url = plugins
        .provider(&meta.name)
        .is_some_and(|p| p.descriptor.settings.iter().any(|s| s.name == "base-url"));
    if url.is_some() && !declares_base_url {
        return Err(ToolError::Usage(format!(
            "--url sets the plugin's base-url setting, and {} declares none",
            meta.name
        )));
    }
    if let Some(url) = url {
        env.insert(PluginSettings::variable(&meta.name, "base-url"), url.into());
        env.insert(
            PluginSettings::sandbox_variable(&meta.name, "allow_private"),
            "true".into(),
        );
    }
    let (plugins, meta, _) = load(file, env, false).await?;
    let id = ulid::Ulid::new().to_string();
    let message = bindings::Message {
        id: id.clone(),
        recipient: phone.as_str().into(),
        text: text.into(),
        template: None,
        idempotency_key: id,
    };
    let started = Instant::now();
    let (version, answer) = plugins
        .send(&meta.name, &message)
        .await
        .map_err(|e| ToolError::Usage(e.to_string()))?;
    let elapsed = started.elapsed().as_millis();
    let outcome = match answer? {
        Ok(receipt) => format!(
            "sent (provider message id: {})",
            receipt.provider_message_id.as_deref().unwrap_or("none")
        ),
        Err(bindings::SendError::Retryable((f, after))) => format!(
            "retryable failure {}: {}{}",
            f.code,
            f.message,
            after
                .map(|ms| format!(" (retry after {ms} ms)"))
                .unwrap_or_default()
        ),
        Err(bindings::SendError::Permanent(f)) => {
            format!("permanent failure {}: {}", f.code, f.message)
        }
    };
    Ok(format!(
        "{} {version}: {outcome} in {elapsed} ms\n",
        meta.name
    ))
}
