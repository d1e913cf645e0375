//! Which routes a message falls back to: its template's `fallback`, or a
//! chain chosen for it, by an admin at send time or by the rules for an
//! event, checked against what the operator approved.
//!
//! Why a file of its own: the operator grants routes (a provider's
//! approved template in `providers`, and for marketing the template's own
//! `fallback`); callers and rules only choose among them. An admin's
//! chain outside the grant is refused; the rules' is cut back to it, so
//! that a rules plugin ahead of the operator's setup never stops events.

use crate::templates::{Category, MAX_FALLBACKS, TemplateDef, parse_route};

/// Who chose a message's fallback chain, if not its template.
#[derive(Debug, Clone, Copy)]
pub enum Chain<'a> {
    /// The template's `fallback`.
    Template,
    /// An admin's, at send time: a route outside the grant is an error.
    Caller(&'a [String]),
    /// The rules', for an event: a route outside the grant is left out.
    Rules(&'a [String]),
}

/// Why a chosen chain cannot be taken as written.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RouteProblem {
    /// More routes than a message falls back to.
    #[error("{given} routes; at most {MAX_FALLBACKS}")]
    TooMany {
        /// How many were given.
        given: usize,
    },
    /// Not `channel:provider`.
    #[error("route {index} is not channel:provider (channel whatsapp or sms)")]
    Malformed {
        /// Its place in the chain.
        index: usize,
    },
    /// A provider named twice, or the message's own provider.
    #[error("route {index} names {provider}, which the chain already has")]
    Repeated {
        /// Its place in the chain.
        index: usize,
        /// The provider.
        provider: String,
    },
    /// A provider without an approved template for this template.
    #[error("route {index}: {provider} has no approved template for {template} in providers")]
    NotApproved {
        /// Its place in the chain.
        index: usize,
        /// The provider.
        provider: String,
        /// The template.
        template: String,
    },
    /// A route a marketing template's own `fallback` does not name.
    #[error(
        "route {index}: {template} is a marketing template; it falls back only to routes its own fallback names"
    )]
    MarketingNotEscalated {
        /// Its place in the chain.
        index: usize,
        /// The template.
        template: String,
    },
}

impl RouteProblem {
    /// The place in the chain it is about, if one.
    pub fn index(&self) -> Option<usize> {
        match self {
            RouteProblem::TooMany { .. } => None,
            RouteProblem::Malformed { index }
            | RouteProblem::Repeated { index, .. }
            | RouteProblem::NotApproved { index, .. }
            | RouteProblem::MarketingNotEscalated { index, .. } => Some(*index),
        }
    }

    /// Whether the route is well formed but outside what the operator
    /// approved (the rules' such routes are left out, not refused).
    fn outside_grant(&self) -> bool {
        matches!(
            self,
            RouteProblem::NotApproved { .. } | RouteProblem::MarketingNotEscalated { .. }
        )
    }
}

/// The routes (`(channel, provider)`) a message of `def` sent through
/// `provider` falls back to, in order, as `chain` says.
pub fn fallback_routes<'a>(
    def: &'a TemplateDef,
    provider: &str,
    chain: Chain<'a>,
) -> Result<Vec<(&'a str, &'a str)>, RouteProblem> {
    let (routes, strict) = match chain {
        // Checked when the template was saved; its provider is skipped.
        Chain::Template => {
            return Ok(def
                .fallback
                .iter()
                .filter_map(|route| parse_route(route))
                .filter(|(_, to)| *to != provider)
                .collect());
        }
        Chain::Caller(routes) => (routes, true),
        Chain::Rules(routes) => (routes, false),
    };
    if routes.len() > MAX_FALLBACKS {
        return Err(RouteProblem::TooMany {
            given: routes.len(),
        });
    }
    let mut chosen: Vec<(&str, &str)> = Vec::with_capacity(routes.len());
    for (index, route) in routes.iter().enumerate() {
        let (channel, to) = parse_route(route).ok_or(RouteProblem::Malformed { index })?;
        if to == provider || chosen.iter().any(|(_, p)| *p == to) {
            return Err(RouteProblem::Repeated {
                index,
                provider: to.into(),
            });
        }
        let refused = if !def.providers.contains_key(to) {
            Some(RouteProblem::NotApproved {
                index,
                provider: to.into(),
                template: def.name.clone(),
            })
        } else if def.category == Category::Marketing && !def.fallback.contains(route) {
            Some(RouteProblem::MarketingNotEscalated {
                index,
                template: def.name.clone(),
            })
        } else {
            None
        };
        match refused {
            None => chosen.push((channel, to)),
            Some(problem) if strict || !problem.outside_grant() => return Err(problem),
            Some(problem) => {
                tracing::debug!(template = %def.name, %route, %problem, "the rules chose a route the operator has not approved; left out");
                crate::telemetry::route_left_out(&def.name);
            }
        }
    }
    Ok(chosen)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn def(category: &str, fallback: &[&str]) -> TemplateDef {
        let text = format!(
            r#"name = "late"
category = "{category}"
variables = []
whatsapp = {{ template = "late", parameters = [] }}
fallback = {fallback:?}
[providers.myoperator]
template = "late"
languages = ["en"]
parameters = []
[providers.msg91-sms]
template = "1207161234567890123"
languages = ["en"]
parameters = []
[text]
en = "Late"
"#
        );
        toml::from_str(&text).unwrap()
    }

    fn routes(list: &[&str]) -> Vec<String> {
        list.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn a_chosen_chain_replaces_the_templates() {
        let def = def("transactional", &[]);
        let chain = routes(&["sms:msg91-sms"]);
        for choice in [Chain::Caller(&chain), Chain::Rules(&chain)] {
            assert_eq!(
                fallback_routes(&def, "myoperator", choice),
                Ok(vec![("sms", "msg91-sms")])
            );
        }
        assert_eq!(
            fallback_routes(&def, "myoperator", Chain::Caller(&[])),
            Ok(vec![])
        );
    }

    /// An admin's route outside the grant is refused; the rules' is left
    /// out. Without the approval check, `sms:other` is taken and a
    /// message would go to a provider with no approved (DLT) template
    /// (checked once with the check switched off: this test fails).
    #[test]
    fn a_route_the_operator_did_not_approve_is_refused_or_left_out() {
        let def = def("transactional", &[]);
        let chain = routes(&["sms:other", "sms:msg91-sms"]);
        assert!(matches!(
            fallback_routes(&def, "myoperator", Chain::Caller(&chain)),
            Err(RouteProblem::NotApproved { index: 0, .. })
        ));
        assert_eq!(
            fallback_routes(&def, "myoperator", Chain::Rules(&chain)),
            Ok(vec![("sms", "msg91-sms")])
        );
    }

    #[test]
    fn marketing_falls_back_only_where_its_template_says() {
        let chain = routes(&["sms:msg91-sms"]);
        let silent = def("marketing", &[]);
        assert!(matches!(
            fallback_routes(&silent, "myoperator", Chain::Caller(&chain)),
            Err(RouteProblem::MarketingNotEscalated { .. })
        ));
        assert_eq!(
            fallback_routes(&silent, "myoperator", Chain::Rules(&chain)),
            Ok(vec![])
        );
        let says_so = def("marketing", &["sms:msg91-sms"]);
        assert_eq!(
            fallback_routes(&says_so, "myoperator", Chain::Rules(&chain)),
            Ok(vec![("sms", "msg91-sms")])
        );
    }

    #[test]
    fn a_malformed_chain_is_refused_whoever_chose_it() {
        let def = def("transactional", &[]);
        for (chain, expected) in [
            (
                routes(&["fax:msg91-sms"]),
                RouteProblem::Malformed { index: 0 },
            ),
            (
                routes(&["sms:msg91-sms", "sms:msg91-sms"]),
                RouteProblem::Repeated {
                    index: 1,
                    provider: "msg91-sms".into(),
                },
            ),
            (
                routes(&["whatsapp:myoperator"]),
                RouteProblem::Repeated {
                    index: 0,
                    provider: "myoperator".into(),
                },
            ),
            (
                routes(&["sms:a", "sms:b", "sms:c", "sms:d"]),
                RouteProblem::TooMany { given: 4 },
            ),
        ] {
            assert_eq!(
                fallback_routes(&def, "myoperator", Chain::Rules(&chain)),
                Err(expected.clone())
            );
            assert_eq!(
                fallback_routes(&def, "myoperator", Chain::Caller(&chain)),
                Err(expected)
            );
        }
    }
}
