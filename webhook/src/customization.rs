//! ResourceInterpreterCustomization admission (Karmada
//! `/validate-resourceinterpretercustomization`), the one rule set that reads
//! cluster state: a customization may not set a script for an interpreter
//! operation that another customization of the same target (apiVersion and
//! kind) already sets, and every script it sets must load as Lua 5.1 (the
//! dialect of Karmada's gopher-lua). Loading compiles only; nothing runs.
//!
//! The server lists the existing customizations before the review is handled
//! ([`crate::handler::Lookups`]); [`validate`] is pure over that list.

use flotilla_api::admission::AdmissionError;
use flotilla_api::config::{CustomizationRules, LuaScript, ResourceInterpreterCustomization};
use flotilla_api::validation::FieldError;

/// One interpreter operation: Karmada's name, the field under
/// `spec.customizations`, and how to read its script.
pub struct Rule {
    /// Karmada's `InterpreterOperation` name, e.g. `InterpretReplica`.
    pub operation: &'static str,
    /// The field under `spec.customizations`, e.g. `replicaResource`.
    pub field: &'static str,
    script: fn(&CustomizationRules) -> Option<&LuaScript>,
}

impl Rule {
    /// The rule's script in `c`, when set and non-empty.
    pub fn script<'a>(&self, c: &'a ResourceInterpreterCustomization) -> Option<&'a str> {
        (self.script)(&c.spec.customizations)
            .map(|s| s.lua_script.as_str())
            .filter(|s| !s.is_empty())
    }
}

/// Every operation a customization can script, in Karmada's order.
pub const RULES: &[Rule] = &[
    Rule {
        operation: "Retain",
        field: "retention",
        script: |c| c.retention.as_ref(),
    },
    Rule {
        operation: "InterpretReplica",
        field: "replicaResource",
        script: |c| c.replica_resource.as_ref(),
    },
    Rule {
        operation: "InterpretComponent",
        field: "componentResource",
        script: |c| c.component_resource.as_ref(),
    },
    Rule {
        operation: "ReviseReplica",
        field: "replicaRevision",
        script: |c| c.replica_revision.as_ref(),
    },
    Rule {
        operation: "InterpretStatus",
        field: "statusReflection",
        script: |c| c.status_reflection.as_ref(),
    },
    Rule {
        operation: "AggregateStatus",
        field: "statusAggregation",
        script: |c| c.status_aggregation.as_ref(),
    },
    Rule {
        operation: "InterpretHealth",
        field: "healthInterpretation",
        script: |c| c.health_interpretation.as_ref(),
    },
    Rule {
        operation: "InterpretDependency",
        field: "dependencyInterpretation",
        script: |c| c.dependency_interpretation.as_ref(),
    },
];

fn deny(field: String, message: String) -> AdmissionError {
    AdmissionError::Denied {
        causes: vec![FieldError::denied(&field, message.clone())],
        message,
    }
}

/// Admits `new` against the customizations already stored (`existing`,
/// including `new`'s own stored version on UPDATE, which is skipped by name).
/// The first conflict or load error denies, as Karmada's webhook does.
pub fn validate(
    new: &ResourceInterpreterCustomization,
    existing: &[ResourceInterpreterCustomization],
) -> Result<(), AdmissionError> {
    let name = new.metadata.name.as_deref().unwrap_or_default();
    for other in existing {
        let other_name = other.metadata.name.as_deref().unwrap_or_default();
        if other_name == name || other.spec.target != new.spec.target {
            continue;
        }
        for rule in RULES {
            if rule.script(other).is_some() && rule.script(new).is_some() {
                return Err(deny(
                    format!("spec.customizations.{}", rule.field),
                    format!(
                        "conflicting with InterpreterOperation({}) of existing ResourceInterpreterCustomization({other_name})",
                        rule.operation
                    ),
                ));
            }
        }
    }
    for rule in RULES {
        if let Some(script) = rule.script(new) {
            let field = format!("spec.customizations.{}.luaScript", rule.field);
            if let Err(e) = load(script, &field) {
                return Err(deny(
                    field,
                    format!(
                        "InterpreterOperation({}) Lua script error: {e}",
                        rule.operation
                    ),
                ));
            }
        }
    }
    Ok(())
}

/// Compiles `script` as a Lua 5.1 chunk named `chunk` (which Lua puts at the
/// head of its error messages); the error text on failure.
pub fn load(script: &str, chunk: &str) -> Result<(), String> {
    let lua = mlua::Lua::new_with(mlua::StdLib::NONE, mlua::LuaOptions::default())
        .map_err(|e| e.to_string())?;
    match lua
        .load(script)
        .set_name(format!("={chunk}"))
        .into_function()
    {
        Ok(_) => Ok(()),
        Err(mlua::Error::SyntaxError { message, .. }) => Err(message),
        Err(e) => Err(e.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn ric(
        name: &str,
        kind: &str,
        customizations: serde_json::Value,
    ) -> ResourceInterpreterCustomization {
        serde_json::from_value(json!({
            "apiVersion": "config.karmada.io/v1alpha1", "kind": "ResourceInterpreterCustomization",
            "metadata": {"name": name},
            "spec": {"target": {"apiVersion": "apps/v1", "kind": kind}, "customizations": customizations},
        }))
        .expect("decodes")
    }

    const REPLICAS: &str = "function GetReplicas(obj)\n  return obj.spec.replicas, {}\nend";
    const HEALTH: &str = "function InterpretHealth(obj)\n  return obj.status.readyReplicas == obj.spec.replicas\nend";

    #[test]
    fn scripts_must_load() {
        let ok = ric(
            "ok",
            "Deployment",
            json!({"replicaResource": {"luaScript": REPLICAS}, "healthInterpretation": {"luaScript": HEALTH}}),
        );
        assert_eq!(validate(&ok, &[]), Ok(()));
        let bad = ric(
            "bad",
            "Deployment",
            json!({"healthInterpretation": {"luaScript": "function InterpretHealth(obj)\n  return obj.status ==\nend"}}),
        );
        match validate(&bad, &[]) {
            Err(AdmissionError::Denied { message, causes }) => {
                assert!(
                    message.starts_with("InterpreterOperation(InterpretHealth) Lua script error: spec.customizations.healthInterpretation.luaScript:3:"),
                    "{message}"
                );
                assert_eq!(
                    causes[0].field,
                    "spec.customizations.healthInterpretation.luaScript"
                );
            }
            other => panic!("{other:?}"),
        }
        // Lua 5.1: `goto` is not a statement there (it is in 5.2+).
        assert!(load("goto done\n::done::", "x").is_err());
        assert!(load("local t = {} ; t[#t + 1] = 'a'", "x").is_ok());
    }

    #[test]
    fn same_operation_on_same_target_conflicts() {
        let existing = [
            ric(
                "first",
                "Deployment",
                json!({"replicaResource": {"luaScript": REPLICAS}}),
            ),
            ric(
                "other-kind",
                "StatefulSet",
                json!({"healthInterpretation": {"luaScript": HEALTH}}),
            ),
        ];
        let conflicting = ric(
            "second",
            "Deployment",
            json!({"healthInterpretation": {"luaScript": HEALTH}, "replicaResource": {"luaScript": REPLICAS}}),
        );
        match validate(&conflicting, &existing) {
            Err(AdmissionError::Denied { message, causes }) => {
                assert_eq!(
                    message,
                    "conflicting with InterpreterOperation(InterpretReplica) of existing ResourceInterpreterCustomization(first)"
                );
                assert_eq!(causes[0].field, "spec.customizations.replicaResource");
            }
            other => panic!("{other:?}"),
        }
        // Another operation on the same target, or the same one on another target, is fine.
        let health = ric(
            "second",
            "Deployment",
            json!({"healthInterpretation": {"luaScript": HEALTH}}),
        );
        assert_eq!(validate(&health, &existing), Ok(()));
        // An update of `first` itself does not conflict with its stored version.
        assert_eq!(validate(&existing[0], &existing), Ok(()));
    }
}
