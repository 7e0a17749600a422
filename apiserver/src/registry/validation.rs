//! Validation of built-in kinds: the checks users most often trip over, with
//! kube-apiserver's field paths and messages.

use serde_json::Value;

use super::ResourceInfo;
use crate::status::Cause;

fn non_negative(object: &Value, pointer: &str, field: &str, causes: &mut Vec<Cause>) {
    if let Some(n) = object.pointer(pointer).and_then(Value::as_i64)
        && n < 0
    {
        causes.push(Cause::new(
            "FieldValueInvalid",
            field,
            format!("Invalid value: {n}: must be greater than or equal to 0"),
        ));
    }
}

fn containers(spec: &Value, path: &str, causes: &mut Vec<Cause>) {
    match spec.get("containers").and_then(Value::as_array) {
        None => causes.push(Cause::new(
            "FieldValueRequired",
            format!("{path}.containers"),
            "Required value",
        )),
        Some(list) if list.is_empty() => causes.push(Cause::new(
            "FieldValueRequired",
            format!("{path}.containers"),
            "Required value",
        )),
        Some(list) => {
            for (i, c) in list.iter().enumerate() {
                if c.get("name")
                    .and_then(Value::as_str)
                    .is_none_or(str::is_empty)
                {
                    causes.push(Cause::new(
                        "FieldValueRequired",
                        format!("{path}.containers[{i}].name"),
                        "Required value",
                    ));
                }
                if c.get("image")
                    .and_then(Value::as_str)
                    .is_none_or(str::is_empty)
                {
                    causes.push(Cause::new(
                        "FieldValueRequired",
                        format!("{path}.containers[{i}].image"),
                        "Required value",
                    ));
                }
            }
        }
    }
}

/// Checks of a workload with a pod template and a selector.
fn workload(object: &Value, causes: &mut Vec<Cause>) {
    non_negative(object, "/spec/replicas", "spec.replicas", causes);
    if object
        .pointer("/spec/strategy/type")
        .and_then(Value::as_str)
        == Some("Recreate")
        && object
            .pointer("/spec/strategy/rollingUpdate")
            .is_some_and(|r| !r.is_null())
    {
        causes.push(Cause::new(
            "FieldValueForbidden",
            "spec.strategy.rollingUpdate",
            "Forbidden: may not be specified when strategy `type` is 'Recreate'",
        ));
    }
    let selector = object.pointer("/spec/selector");
    if selector.is_none_or(|s| s.as_object().is_none_or(|m| m.is_empty())) {
        causes.push(Cause::new(
            "FieldValueRequired",
            "spec.selector",
            "Required value",
        ));
    }
    let labels = object
        .pointer("/spec/template/metadata/labels")
        .and_then(Value::as_object);
    if let Some(match_labels) = selector
        .and_then(|s| s.get("matchLabels"))
        .and_then(Value::as_object)
    {
        let ok = match_labels
            .iter()
            .all(|(k, v)| labels.and_then(|l| l.get(k)) == Some(v));
        if !ok {
            let shown: Vec<String> = labels
                .into_iter()
                .flatten()
                .map(|(k, v)| format!("{}:{v}", Value::String(k.clone())))
                .collect();
            causes.push(Cause::new(
                "FieldValueInvalid",
                "spec.template.metadata.labels",
                format!("Invalid value: map[string]string{{{}}}: `selector` does not match template `labels`", shown.join(", ")),
            ));
        }
    }
    match object.pointer("/spec/template/spec") {
        Some(spec) => containers(spec, "spec.template.spec", causes),
        None => causes.push(Cause::new(
            "FieldValueRequired",
            "spec.template.spec.containers",
            "Required value",
        )),
    }
}

/// Validates a built-in object; empty when valid.
pub fn builtin(info: &ResourceInfo, object: &Value) -> Vec<Cause> {
    let mut causes = Vec::new();
    match (info.group.as_str(), info.plural.as_str()) {
        ("apps", "deployments" | "replicasets" | "statefulsets" | "daemonsets") => {
            workload(object, &mut causes)
        }
        ("", "pods") => match object.get("spec") {
            Some(spec) => containers(spec, "spec", &mut causes),
            None => causes.push(Cause::new(
                "FieldValueRequired",
                "spec.containers",
                "Required value",
            )),
        },
        ("", "services") => {
            for (i, p) in object
                .pointer("/spec/ports")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
                .enumerate()
            {
                match p.get("port").and_then(Value::as_i64) {
                    Some(n) if (1..=65535).contains(&n) => {}
                    Some(n) => causes.push(Cause::new(
                        "FieldValueInvalid",
                        format!("spec.ports[{i}].port"),
                        format!("Invalid value: {n}: must be between 1 and 65535, inclusive"),
                    )),
                    None => causes.push(Cause::new(
                        "FieldValueRequired",
                        format!("spec.ports[{i}].port"),
                        "Required value",
                    )),
                }
            }
        }
        ("", "configmaps" | "secrets") => {
            for field in ["data", "binaryData", "stringData"] {
                for key in object
                    .get(field)
                    .and_then(Value::as_object)
                    .into_iter()
                    .flat_map(|m| m.keys())
                {
                    let ok = !key.is_empty()
                        && key.len() <= 253
                        && key
                            .chars()
                            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'));
                    if !ok {
                        causes.push(Cause::new("FieldValueInvalid", format!("{field}"), format!("Invalid value: \"{key}\": a valid config key must consist of alphanumeric characters, '-', '_' or '.'")));
                    }
                }
            }
            // A service-account token Secret must name its ServiceAccount.
            if info.plural == "secrets"
                && object.get("type").and_then(Value::as_str)
                    == Some(crate::server::legacy_tokens::SECRET_TYPE)
                && object
                    .pointer("/metadata/annotations")
                    .and_then(|a| a.get(crate::server::legacy_tokens::NAME_ANNOTATION))
                    .and_then(Value::as_str)
                    .is_none_or(str::is_empty)
            {
                causes.push(Cause::new(
                    "FieldValueRequired",
                    format!(
                        "metadata.annotations[{}]",
                        crate::server::legacy_tokens::NAME_ANNOTATION
                    ),
                    "Required value",
                ));
            }
        }
        (
            "admissionregistration.k8s.io",
            "mutatingwebhookconfigurations" | "validatingwebhookconfigurations",
        ) => causes.extend(crate::admission::conditions::validate(object)),
        _ => {}
    }
    causes
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn deploy() -> ResourceInfo {
        crate::registry::builtin::resources()
            .into_iter()
            .find(|r| r.plural == "deployments")
            .expect("deployments")
    }

    #[test]
    fn deployments() {
        let ok = json!({"spec": {"replicas": 1, "selector": {"matchLabels": {"app": "a"}},
            "template": {"metadata": {"labels": {"app": "a"}}, "spec": {"containers": [{"name": "c", "image": "i"}]}}}});
        assert!(builtin(&deploy(), &ok).is_empty());
        let mut bad = ok.clone();
        bad["spec"]["replicas"] = json!(-1);
        let c = builtin(&deploy(), &bad);
        assert_eq!(c[0].field, "spec.replicas");
        assert_eq!(
            c[0].message,
            "Invalid value: -1: must be greater than or equal to 0"
        );
        let mut bad = ok;
        bad["spec"]["template"]["metadata"]["labels"]["app"] = json!("b");
        assert_eq!(
            builtin(&deploy(), &bad)[0].field,
            "spec.template.metadata.labels"
        );
    }
}
