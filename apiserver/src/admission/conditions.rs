//! `matchConditions` of admission webhooks: CEL expressions that must all be true
//! for a webhook to be called, as kube-apiserver evaluates them.
//!
//! Each expression sees `object` and `oldObject` (null when absent) and `request`
//! (the AdmissionRequest's attributes: `kind`, `resource`, `subResource`,
//! `requestKind`, `requestResource`, `requestSubResource`, `name`, `namespace`,
//! `operation`, `userInfo`, `dryRun`, `options`). `authorizer` is not offered:
//! an expression naming it is refused when the configuration is written.
//!
//! Evaluation ([`evaluate`]): any condition that is false skips the webhook, even
//! when others failed; otherwise a failed condition (a missing field, a type
//! mismatch) decides by `failurePolicy` — `Ignore` skips the webhook, `Fail`
//! refuses the request (403, as kube-apiserver's "failing closed").
//!
//! Writing a configuration ([`validate`]): at most 64 conditions per webhook,
//! names required, qualified and unique, and every expression must parse and
//! refer only to the variables above (compile errors are 422 Invalid at
//! `webhooks[i].matchConditions[j].expression`). Unlike kube-apiserver there is no
//! type checker: an expression that does not yield a bool is an evaluation error,
//! and functions outside the CEL standard library are only found at evaluation.

use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;

use serde_json::Value;

use crate::status::Cause;

/// kube-apiserver's limit on conditions per webhook.
pub const MAX_CONDITIONS: usize = 64;

/// The variables an expression may read.
pub const VARIABLES: &[&str] = &["object", "oldObject", "request"];

/// Identifiers CEL resolves itself (type names).
const TYPE_NAMES: &[&str] = &[
    "int",
    "uint",
    "double",
    "bool",
    "string",
    "bytes",
    "list",
    "map",
    "null_type",
    "type",
    "dyn",
];

/// Compiles `expression` and checks that it reads only the offered variables.
/// The error is kube's `compilation failed: ERROR: <input>:L:C: ...` text.
pub fn compile(expression: &str) -> Result<cel::Program, String> {
    let program =
        cel::Program::compile(expression).map_err(|e| format!("compilation failed: {e}"))?;
    let mut bound = BTreeSet::new();
    comprehension_variables(program.expression(), &mut bound);
    let references = program.references();
    let mut unknown: Vec<&str> = references
        .variables()
        .into_iter()
        .filter(|v| !VARIABLES.contains(v) && !TYPE_NAMES.contains(v) && !bound.contains(*v))
        .collect();
    unknown.sort_unstable();
    if let Some(name) = unknown.first() {
        let (line, column) = position(&program, name);
        return Err(format!(
            "compilation failed: ERROR: <input>:{line}:{column}: undeclared reference to '{name}' (in container '')"
        ));
    }
    Ok(program)
}

/// Names bound by comprehensions (`all(x, ...)`, `map(x, ...)`, ...).
fn comprehension_variables(e: &cel::IdedExpr, out: &mut BTreeSet<String>) {
    use cel::common::ast::{EntryExpr, Expr};
    match &e.expr {
        Expr::Comprehension(c) => {
            out.insert(c.iter_var.clone());
            if let Some(v) = &c.iter_var2 {
                out.insert(v.clone());
            }
            out.insert(c.accu_var.clone());
            for sub in [
                &c.iter_range,
                &c.accu_init,
                &c.loop_cond,
                &c.loop_step,
                &c.result,
            ] {
                comprehension_variables(sub, out);
            }
        }
        Expr::Call(call) => {
            if let Some(t) = &call.target {
                comprehension_variables(t, out);
            }
            for a in &call.args {
                comprehension_variables(a, out);
            }
        }
        Expr::List(l) => l
            .elements
            .iter()
            .for_each(|x| comprehension_variables(x, out)),
        Expr::Map(m) => {
            for entry in &m.entries {
                match &entry.expr {
                    EntryExpr::MapEntry(me) => {
                        comprehension_variables(&me.key, out);
                        comprehension_variables(&me.value, out);
                    }
                    EntryExpr::StructField(f) => comprehension_variables(&f.value, out),
                }
            }
        }
        Expr::Struct(s) => {
            for entry in &s.entries {
                if let EntryExpr::StructField(f) = &entry.expr {
                    comprehension_variables(&f.value, out);
                }
            }
        }
        Expr::Select(s) => comprehension_variables(&s.operand, out),
        Expr::Ident(_) | Expr::Literal(_) | Expr::Unspecified => {}
    }
}

/// Line and column (1-based) of the first identifier `name` in the source.
fn position(program: &cel::Program, name: &str) -> (usize, usize) {
    fn find(e: &cel::IdedExpr, name: &str) -> Option<u64> {
        use cel::common::ast::{EntryExpr, Expr};
        match &e.expr {
            Expr::Ident(n) if n == name => Some(e.id),
            Expr::Call(c) => c
                .target
                .as_deref()
                .and_then(|t| find(t, name))
                .or_else(|| c.args.iter().find_map(|a| find(a, name))),
            Expr::Select(s) => find(&s.operand, name),
            Expr::List(l) => l.elements.iter().find_map(|x| find(x, name)),
            Expr::Map(m) => m.entries.iter().find_map(|entry| match &entry.expr {
                EntryExpr::MapEntry(me) => find(&me.key, name).or_else(|| find(&me.value, name)),
                EntryExpr::StructField(f) => find(&f.value, name),
            }),
            Expr::Comprehension(c) => [
                &c.iter_range,
                &c.accu_init,
                &c.loop_cond,
                &c.loop_step,
                &c.result,
            ]
            .into_iter()
            .find_map(|x| find(x, name)),
            _ => None,
        }
    }
    let info = program.source_info();
    let Some(start) = find(program.expression(), name)
        .and_then(|id| info.offset_for(id))
        .map(|(start, _)| start as usize)
    else {
        return (1, 1);
    };
    let before = info.source.get(..start).unwrap_or_default();
    let line = before.matches('\n').count() + 1;
    let column = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
    (line, column)
}

/// The CEL value of a JSON value (integers are `int`, as in Kubernetes).
pub fn to_cel(v: &Value) -> cel::Value {
    match v {
        Value::Null => cel::Value::Null,
        Value::Bool(b) => cel::Value::Bool(*b),
        Value::Number(n) => match n.as_i64() {
            Some(i) => cel::Value::Int(i),
            None => match n.as_u64() {
                Some(u) => cel::Value::UInt(u),
                None => cel::Value::Float(n.as_f64().unwrap_or(f64::NAN)),
            },
        },
        Value::String(s) => cel::Value::String(Arc::new(s.clone())),
        Value::Array(a) => cel::Value::List(Arc::new(a.iter().map(to_cel).collect())),
        Value::Object(m) => {
            let map: HashMap<cel::objects::Key, cel::Value> = m
                .iter()
                .map(|(k, v)| (cel::objects::Key::String(Arc::new(k.clone())), to_cel(v)))
                .collect();
            cel::Value::Map(cel::objects::Map { map: Arc::new(map) })
        }
    }
}

/// What the conditions decided.
#[derive(Debug, Clone, PartialEq)]
pub enum Decision {
    /// Every condition held: call the webhook.
    Call,
    /// A condition was false, or one failed under `failurePolicy: Ignore`.
    Skip,
    /// A condition failed under `failurePolicy: Fail`: refuse the request with
    /// this text (one error as is, several as `[e1, e2]`).
    Refuse(String),
}

/// Evaluates `conditions` (the webhook's `matchConditions`) over the request.
pub fn evaluate(
    conditions: &[Value],
    object: Option<&Value>,
    old_object: Option<&Value>,
    request: &Value,
    ignore_failures: bool,
) -> Decision {
    let mut context = cel::Context::default();
    context.add_variable_from_value("object", object.map_or(cel::Value::Null, to_cel));
    context.add_variable_from_value("oldObject", old_object.map_or(cel::Value::Null, to_cel));
    context.add_variable_from_value("request", to_cel(request));
    let mut errors = Vec::new();
    for condition in conditions {
        let expression = condition
            .get("expression")
            .and_then(Value::as_str)
            .unwrap_or_default();
        let result = compile(expression).and_then(|p| match p.execute(&context) {
            Ok(cel::Value::Bool(b)) => Ok(b),
            Ok(other) => Err(format!(
                "expression '{expression}' resulted in error: no such overload: expected a bool, got {:?}",
                other.type_of()
            )),
            Err(e) => Err(format!("expression '{expression}' resulted in error: {e}")),
        });
        match result {
            Ok(true) => {}
            Ok(false) => return Decision::Skip,
            Err(e) => errors.push(e),
        }
    }
    match errors.as_slice() {
        [] => Decision::Call,
        _ if ignore_failures => Decision::Skip,
        [one] => Decision::Refuse(one.clone()),
        many => Decision::Refuse(format!("[{}]", many.join(", "))),
    }
}

/// Field errors of `webhooks[*].matchConditions` in a webhook configuration.
pub fn validate(configuration: &Value) -> Vec<Cause> {
    let mut causes = Vec::new();
    let Some(webhooks) = configuration.get("webhooks").and_then(Value::as_array) else {
        return causes;
    };
    for (i, hook) in webhooks.iter().enumerate() {
        let Some(conditions) = hook.get("matchConditions").and_then(Value::as_array) else {
            continue;
        };
        let path = format!("webhooks[{i}].matchConditions");
        if conditions.len() > MAX_CONDITIONS {
            causes.push(Cause::new(
                "FieldValueTooMany",
                &path,
                format!(
                    "Too many: {}: must have at most {MAX_CONDITIONS} items",
                    conditions.len()
                ),
            ));
        }
        let mut names = BTreeSet::new();
        for (j, condition) in conditions.iter().enumerate() {
            let here = format!("{path}[{j}]");
            let name = condition
                .get("name")
                .and_then(Value::as_str)
                .unwrap_or_default();
            if name.is_empty() {
                causes.push(Cause::new(
                    "FieldValueRequired",
                    format!("{here}.name"),
                    "Required value",
                ));
            } else {
                for m in flotilla_api::labels::qualified_name_errors(name) {
                    causes.push(Cause::new(
                        "FieldValueInvalid",
                        format!("{here}.name"),
                        format!("Invalid value: {}: {m}", Value::from(name)),
                    ));
                }
                if !names.insert(name) {
                    causes.push(Cause::new(
                        "FieldValueDuplicate",
                        format!("{here}.name"),
                        format!("Duplicate value: {}", Value::from(name)),
                    ));
                }
            }
            let expression = condition
                .get("expression")
                .and_then(Value::as_str)
                .unwrap_or_default();
            if expression.is_empty() {
                causes.push(Cause::new(
                    "FieldValueRequired",
                    format!("{here}.expression"),
                    "Required value",
                ));
            } else if let Err(e) = compile(expression) {
                causes.push(Cause::new(
                    "FieldValueInvalid",
                    format!("{here}.expression"),
                    format!("Invalid value: {}: {e}", Value::from(expression)),
                ));
            }
        }
    }
    causes
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn conditions(exprs: &[&str]) -> Vec<Value> {
        exprs
            .iter()
            .enumerate()
            .map(|(i, e)| json!({"name": format!("c{i}"), "expression": e}))
            .collect()
    }

    fn request() -> Value {
        json!({"operation": "CREATE", "namespace": "default", "name": "web",
               "resource": {"group": "", "version": "v1", "resource": "configmaps"},
               "userInfo": {"username": "admin", "groups": ["system:masters"]}})
    }

    #[test]
    fn all_true_calls_any_false_skips() {
        let cm =
            json!({"metadata": {"name": "web", "labels": {"tier": "web"}}, "data": {"n": "1"}});
        let eval = |exprs: &[&str], ignore| {
            evaluate(&conditions(exprs), Some(&cm), None, &request(), ignore)
        };
        assert_eq!(
            eval(
                &[
                    "request.operation == 'CREATE'",
                    "object.metadata.labels.tier == 'web' && oldObject == null",
                    "request.userInfo.groups.exists(g, g == 'system:masters')",
                    "has(object.data) && size(object.data) == 1",
                ],
                false
            ),
            Decision::Call
        );
        assert_eq!(
            eval(&["request.namespace == 'kube-system'"], false),
            Decision::Skip
        );
        // A false condition wins over a failing one, whatever the policy.
        assert_eq!(
            eval(&["object.spec.replicas > 1", "false"], false),
            Decision::Skip
        );
    }

    #[test]
    fn errors_follow_the_failure_policy() {
        let cm = json!({"metadata": {"name": "web"}});
        let conds = conditions(&["object.spec.replicas > 1"]);
        assert_eq!(
            evaluate(&conds, Some(&cm), None, &request(), true),
            Decision::Skip
        );
        match evaluate(&conds, Some(&cm), None, &request(), false) {
            Decision::Refuse(m) => assert_eq!(
                m,
                "expression 'object.spec.replicas > 1' resulted in error: No such key: spec"
            ),
            other => panic!("{other:?}"),
        }
        match evaluate(
            &conditions(&["'not a bool'"]),
            Some(&cm),
            None,
            &request(),
            false,
        ) {
            Decision::Refuse(m) => assert!(m.contains("expected a bool"), "{m}"),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn configurations_are_checked_when_written() {
        let mut many: Vec<Value> = conditions(&["true"; 65]);
        many[1]["name"] = json!("c0");
        many[2]["name"] = json!("not a name");
        many[3]["expression"] = json!("object.metadata.name ==");
        many[4]["expression"] = json!("objekt.metadata.name == 'x'");
        many[5]["expression"] = json!("");
        many[6]["expression"] = json!("object.items.all(i, i > 0) && [1].map(x, x * 2) == [2]");
        let causes =
            validate(&json!({"webhooks": [{"name": "a"}, {"name": "b", "matchConditions": many}]}));
        let fields: Vec<&str> = causes.iter().map(|c| c.field.as_str()).collect();
        assert_eq!(
            fields,
            [
                "webhooks[1].matchConditions",
                "webhooks[1].matchConditions[1].name",
                "webhooks[1].matchConditions[2].name",
                "webhooks[1].matchConditions[3].expression",
                "webhooks[1].matchConditions[4].expression",
                "webhooks[1].matchConditions[5].expression",
            ],
            "{causes:?}"
        );
        assert_eq!(
            causes[0].message,
            "Too many: 65: must have at most 64 items"
        );
        assert!(
            causes[3].message.starts_with(
                "Invalid value: \"object.metadata.name ==\": compilation failed: ERROR: <input>:1:"
            ),
            "{}",
            causes[3].message
        );
        assert_eq!(
            causes[4].message,
            "Invalid value: \"objekt.metadata.name == 'x'\": compilation failed: ERROR: <input>:1:1: undeclared reference to 'objekt' (in container '')"
        );
    }
}
