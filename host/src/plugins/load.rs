//! Loading one plugin file: compile (or read the compile cache), link,
//! find its world, ask it to describe itself, grant it what the operator
//! addressed to it, and self-test it. Only a file that passes every step
//! is handed to the registry.
//!
//! **Invariant:** the operator grants, the plugin asks. A plugin is known
//! by its file's name (`myoperator.wasm` holds plugin `myoperator`; a file
//! whose component calls itself anything else is refused), and it gets the
//! settings and sandbox policy the operator addressed to that name, only
//! for the settings it declared. The name a component gives itself never
//! reaches anything it was not given.

use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;
use std::time::SystemTime;

use super::bindings::{self, Descriptor};
use super::call::check_answer;
use super::host::{Grant, Outbound};
use super::names;
use super::policy::Policy;
use super::worlds::{ProviderComponent, RulesComponent};
use super::{CallError, LoadError, Loaded, LoadedProvider, LoadedRules, Meta, Plugins, World};
use crate::config::PluginSettings;

impl Plugins {
    /// Compiles, links, describes and self-tests one file's `bytes`.
    pub(super) async fn prepare(
        &self,
        path: &Path,
        bytes: Vec<u8>,
        sha256: &str,
    ) -> Result<Loaded, LoadError> {
        let rejected = |reason: String| LoadError::Rejected {
            path: path.into(),
            reason,
        };
        let name = names::of_file(path).ok_or_else(|| {
            rejected(format!(
                "a plugin file is named after its plugin, <name>.wasm, where the name is {}",
                names::NAME_RULE
            ))
        })?;
        // Compiling is CPU-bound and can take a while: keep it off the
        // async workers that serve requests.
        let compiler = self.compiler.clone();
        let sha = sha256.to_string();
        let (component, origin) =
            tokio::task::spawn_blocking(move || compiler.compile(&bytes, &sha))
                .await
                .map_err(|e| rejected(e.to_string()))?
                .map_err(|e| rejected(format!("not a valid component: {e}")))?;
        let instance_pre = self
            .linker
            .instantiate_pre(&component)
            .map_err(|e| rejected(format!("imports something chirp does not provide: {e:#}")))?;
        let meta = |world, version: String, hosts| Meta {
            name: name.clone(),
            world,
            version,
            sha256: sha256.into(),
            file: path.into(),
            loaded_at: SystemTime::now(),
            origin,
            hosts,
        };
        if let Some(pre) = ProviderComponent::find(&instance_pre) {
            let (descriptor, grant) = self.describe_provider(&pre, path, &name).await?;
            self.self_test_provider(&pre, grant.clone())
                .await
                .map_err(|e| rejected(format!("self-test failed: {e}")))?;
            let meta = meta(
                World::Provider,
                descriptor.version.clone(),
                grant.hosts.clone(),
            );
            return Ok(Loaded::Provider(Arc::new(LoadedProvider {
                meta,
                descriptor,
                grant,
                pre,
            })));
        }
        if let Some(pre) = RulesComponent::find(&instance_pre) {
            let (kinds, version, grant) = self.prepare_rules(&pre, path, &name).await?;
            return Ok(Loaded::Rules(Arc::new(LoadedRules {
                meta: meta(World::Rules, version, vec![]),
                kinds,
                grant,
                pre,
            })));
        }
        Err(rejected(
            "exports neither chirp:plugin/delivery (world provider or webhook-provider) nor \
             chirp:plugin/selection (world rules, cancelling-rules or routing-rules), at version 0.2.x or 0.1.0"
                .into(),
        ))
    }

    /// Asks a rules plugin who it is, grants it its sandbox policy (rules
    /// get no settings and no HTTP) and self-tests it with an event.
    async fn prepare_rules(
        &self,
        pre: &RulesComponent,
        path: &Path,
        name: &str,
    ) -> Result<(Vec<String>, String, Arc<Grant>), LoadError> {
        let rejected = |reason: String| LoadError::Rejected {
            path: path.into(),
            reason,
        };
        let policy = self.policy(name)?;
        let grant = Arc::new(Grant {
            plugin: name.into(),
            limits: policy.limits,
            ..Grant::default()
        });
        let descriptor = self
            .call(pre, grant.clone(), async |rules, store| {
                rules.describe(store).await
            })
            .await
            .map_err(|e| rejected(format!("describe() failed: {e}")))?;
        check_identity(name, &descriptor.name, &descriptor.version).map_err(&rejected)?;
        if descriptor.kinds.len() > MAX_DECLARED || descriptor.kinds.iter().any(|k| k.len() > 64) {
            return Err(rejected(format!(
                "describe() lists more than {MAX_DECLARED} event kinds, or one longer than 64 bytes"
            )));
        }
        let probe = bindings::Event {
            kind: descriptor.kinds.first().cloned().unwrap_or_default(),
            reference_id: "self-test".into(),
            payload: "{}".into(),
            recipient: bindings::Profile {
                phone: "+919876543210".into(),
                name: None,
                language: None,
                timezone: None,
                opt_outs: vec![],
            },
            now_ms: crate::message::now_millis().max(0) as u64,
        };
        // Any answer, decisions or an error naming the event's problem,
        // passes: the test is that the plugin answers within its limits.
        let _answer = self
            .call(pre, grant.clone(), async |rules, store| {
                rules.decide(store, &probe).await
            })
            .await
            .map_err(|e| rejected(format!("self-test failed: {e}")))?;
        Ok((descriptor.kinds, descriptor.version, grant))
    }

    /// Asks a provider who it is, with no settings; resolves the settings
    /// and sandbox policy the operator addressed to `name`; asks again,
    /// configured, since its hosts may depend on its settings.
    async fn describe_provider(
        &self,
        pre: &ProviderComponent,
        path: &Path,
        name: &str,
    ) -> Result<(Descriptor, Arc<Grant>), LoadError> {
        let rejected = |reason: String| LoadError::Rejected {
            path: path.into(),
            reason,
        };
        let describe = async |grant: Arc<Grant>| {
            self.call(pre, grant, async |p, store| p.describe(store).await)
                .await
                .map_err(|e| rejected(format!("describe() failed: {e}")))
        };
        let bare = Arc::new(Grant {
            plugin: name.into(),
            limits: self.defaults.clone(),
            ..Grant::default()
        });
        let first = describe(bare).await?;
        check_identity(name, &first.name, &first.version).map_err(&rejected)?;
        check_declarations(&first).map_err(&rejected)?;
        let settings = self.resolve_settings(name, &first)?;
        let policy = self.policy(name)?;
        let configured = Arc::new(Grant {
            plugin: name.into(),
            settings,
            hosts: Vec::new(),
            allow_private: policy.allow_private,
            limits: policy.limits.clone(),
        });
        let descriptor = describe(configured.clone()).await?;
        if descriptor.name != first.name {
            return Err(rejected(
                "describe() changed its name once configured".into(),
            ));
        }
        check_declarations(&descriptor).map_err(&rejected)?;
        let grant = Arc::new(Grant {
            hosts: policy.reachable(&descriptor.hosts),
            ..(*configured).clone()
        });
        Ok((descriptor, grant))
    }

    /// The operator's sandbox policy for `name`.
    fn policy(&self, name: &str) -> Result<Policy, LoadError> {
        Policy::read(&self.settings, name, &self.defaults).map_err(|source| LoadError::Policy {
            plugin: name.into(),
            source,
        })
    }

    /// The settings plugin `name` declared, with the operator's values for
    /// `name`, or their defaults.
    fn resolve_settings(
        &self,
        name: &str,
        d: &Descriptor,
    ) -> Result<HashMap<String, String>, LoadError> {
        let mut settings = HashMap::new();
        for setting in &d.settings {
            if let Some(old) = self.settings.renamed(name, &setting.name) {
                return Err(LoadError::RenamedSetting {
                    plugin: name.into(),
                    setting: setting.name.clone(),
                    old,
                    variable: PluginSettings::variable(name, &setting.name),
                });
            }
            let value = self
                .settings
                .lookup(name, &setting.name)
                .or_else(|| setting.default_value.clone());
            match value {
                Some(v) => {
                    settings.insert(setting.name.clone(), v);
                }
                None if setting.required => {
                    return Err(LoadError::MissingSetting {
                        plugin: name.into(),
                        setting: setting.name.clone(),
                        variable: PluginSettings::variable(name, &setting.name),
                    });
                }
                None => {}
            }
        }
        Ok(settings)
    }

    /// One send of a sample message against the stub HTTP function: the
    /// plugin must answer, within its limits, something chirp can use.
    async fn self_test_provider(
        &self,
        pre: &ProviderComponent,
        grant: Arc<Grant>,
    ) -> Result<(), CallError> {
        let sample = bindings::Message {
            id: "self-test".into(),
            recipient: "+919876543210".into(),
            text: "chirp self-test".into(),
            template: Some(bindings::TemplateRef {
                name: "self_test".into(),
                language: "en".into(),
                parameters: vec!["1".into()],
            }),
            idempotency_key: "self-test".into(),
        };
        let answer = self
            .call_with(pre, grant, Outbound::SelfTest, async |p, store| {
                p.send(store, &sample).await
            })
            .await?;
        check_answer(&answer)
    }
}

/// The most settings, hosts or event kinds a plugin may declare.
const MAX_DECLARED: usize = 64;

/// The name a component gives itself must be the name of its file: the
/// operator chose the file, and settings are addressed to that name.
fn check_identity(file_name: &str, name: &str, version: &str) -> Result<(), String> {
    if name != file_name {
        return Err(format!(
            "describe() gave the name {:?}; this file may hold plugin {file_name:?} only \
             (a plugin file is named after its plugin: {}.wasm)",
            name.chars().take(64).collect::<String>(),
            if names::is_valid(name) {
                name
            } else {
                "<name>"
            }
        ));
    }
    if version.is_empty() || version.len() > 64 || version.chars().any(char::is_control) {
        return Err("describe() gave an empty, overlong or unprintable version".into());
    }
    Ok(())
}

/// A provider's declared settings and hosts, within bounds: setting names
/// that spell one variable each, hosts of sane length.
fn check_declarations(d: &Descriptor) -> Result<(), String> {
    if d.settings.len() > MAX_DECLARED || d.hosts.len() > MAX_DECLARED {
        return Err(format!(
            "describe() declares more than {MAX_DECLARED} settings or hosts"
        ));
    }
    if let Some(bad) = d.settings.iter().find(|s| !names::is_valid(&s.name)) {
        return Err(format!(
            "describe() declares the setting {:?}; setting names are {}",
            bad.name.chars().take(64).collect::<String>(),
            names::NAME_RULE
        ));
    }
    if d.hosts.iter().any(|h| h.is_empty() || h.len() > 260) {
        return Err("describe() declares an empty or overlong host".into());
    }
    if d.settings.iter().any(|s| {
        s.description.len() > 1024 || s.default_value.as_ref().is_some_and(|v| v.len() > 4096)
    }) {
        return Err(
            "describe() gives a setting a description over 1 KiB or a default over 4 KiB".into(),
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_component_must_call_itself_what_its_file_is_called() {
        assert!(check_identity("myoperator", "myoperator", "0.1.0").is_ok());
        let err = check_identity("acme", "myoperator", "0.1.0").unwrap_err();
        assert!(err.contains("acme"), "{err}");
        assert!(check_identity("chirp", "chirp", "").is_err());
        assert!(check_identity("chirp", "chirp", "1\n2").is_err());
    }
}
