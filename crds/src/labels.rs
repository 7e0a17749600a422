//! Kubernetes label machinery Karmada relies on: `metav1.LabelSelector`
//! matching (with apimachinery's conversion rules), node-selector-requirement
//! matching as used for cluster field selectors, and the label key/value
//! syntax checks (`IsQualifiedName`, `IsValidLabelValue`, DNS-1123).

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::NodeSelectorRequirement;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;

/// Whether `selector` matches `labels`, following `metav1.LabelSelectorAsSelector`:
/// an empty selector matches everything; a selector that cannot be converted
/// (unknown operator, `In`/`NotIn` without values, `Exists` with values) matches
/// nothing, as Karmada treats the conversion error.
pub fn selector_matches(selector: &LabelSelector, labels: &BTreeMap<String, String>) -> bool {
    if let Some(ml) = &selector.match_labels {
        for (k, v) in ml {
            if labels.get(k) != Some(v) {
                return false;
            }
        }
    }
    for req in selector.match_expressions.iter().flatten() {
        let values = req.values.as_deref().unwrap_or_default();
        let present = labels.get(&req.key);
        let ok = match req.operator.as_str() {
            "In" => {
                if values.is_empty() {
                    return false;
                }
                present.is_some_and(|v| values.contains(v))
            }
            "NotIn" => {
                if values.is_empty() {
                    return false;
                }
                present.is_none_or(|v| !values.contains(v))
            }
            "Exists" => {
                if !values.is_empty() {
                    return false;
                }
                present.is_some()
            }
            "DoesNotExist" => {
                if !values.is_empty() {
                    return false;
                }
                present.is_none()
            }
            _ => return false,
        };
        if !ok {
            return false;
        }
    }
    true
}

/// Whether node-selector-style requirements match a set of fields, following
/// `NodeSelectorRequirementsAsSelector` (operators In, NotIn, Exists,
/// DoesNotExist, Gt, Lt). An invalid requirement makes the whole match fail.
pub fn requirements_match(
    reqs: &[NodeSelectorRequirement],
    fields: &BTreeMap<String, String>,
) -> bool {
    for req in reqs {
        let values = req.values.as_deref().unwrap_or_default();
        let present = fields.get(&req.key);
        let ok = match req.operator.as_str() {
            "In" => !values.is_empty() && present.is_some_and(|v| values.contains(v)),
            "NotIn" => !values.is_empty() && present.is_none_or(|v| !values.contains(v)),
            "Exists" => values.is_empty() && present.is_some(),
            "DoesNotExist" => values.is_empty() && present.is_none(),
            "Gt" | "Lt" => {
                let [bound] = values else { return false };
                let Ok(bound) = bound.parse::<i64>() else {
                    return false;
                };
                match present.and_then(|v| v.parse::<i64>().ok()) {
                    Some(v) if req.operator == "Gt" => v > bound,
                    Some(v) => v < bound,
                    None => false,
                }
            }
            _ => false,
        };
        if !ok {
            return false;
        }
    }
    true
}

fn is_dns1123_label_chars(s: &str) -> bool {
    let b = s.as_bytes();
    !b.is_empty()
        && b.iter()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == b'-')
        && b[0] != b'-'
        && b[b.len() - 1] != b'-'
}

/// DNS-1123 label check (`validation.IsDNS1123Label`): at most 63 lowercase
/// alphanumerics or '-', starting and ending alphanumeric. Returns the error messages.
pub fn dns1123_label_errors(s: &str) -> Vec<String> {
    let mut errs = Vec::new();
    if s.len() > 63 {
        errs.push("must be no more than 63 bytes".to_string());
    }
    if !is_dns1123_label_chars(s) {
        errs.push("a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', and must start and end with an alphanumeric character (e.g. 'my-name',  or '123-abc', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?')".to_string());
    }
    errs
}

/// DNS-1035 label check (`validation.IsDNS1035Label`): at most 63 lowercase
/// alphanumerics or '-', starting with a letter and ending alphanumeric.
pub fn dns1035_label_errors(s: &str) -> Vec<String> {
    let mut errs = Vec::new();
    if s.len() > 63 {
        errs.push("must be no more than 63 bytes".to_string());
    }
    let b = s.as_bytes();
    let ok = !b.is_empty()
        && b[0].is_ascii_lowercase()
        && (b[b.len() - 1].is_ascii_lowercase() || b[b.len() - 1].is_ascii_digit())
        && b.iter()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == b'-');
    if !ok {
        errs.push("a DNS-1035 label must consist of lower case alphanumeric characters or '-', start with an alphabetic character, and end with an alphanumeric character (e.g. 'my-name',  or 'abc-123', regex used for validation is '[a-z]([-a-z0-9]*[a-z0-9])?')".to_string());
    }
    errs
}

/// DNS-1123 subdomain check (`validation.IsDNS1123Subdomain`).
pub fn dns1123_subdomain_errors(s: &str) -> Vec<String> {
    let mut errs = Vec::new();
    if s.len() > 253 {
        errs.push("must be no more than 253 bytes".to_string());
    }
    if s.is_empty() || !s.split('.').all(is_dns1123_label_chars) {
        errs.push("a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character (e.g. 'example.com', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')".to_string());
    }
    errs
}

fn is_qualified_name_part(s: &str) -> bool {
    let b = s.as_bytes();
    !b.is_empty()
        && b[0].is_ascii_alphanumeric()
        && b[b.len() - 1].is_ascii_alphanumeric()
        && b.iter()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, b'-' | b'_' | b'.'))
}

/// Qualified name check used for label and annotation keys
/// (`validation.IsQualifiedName`): `[prefix/]name`, name at most 63
/// characters of `[A-Za-z0-9_.-]` starting and ending alphanumeric, prefix a
/// DNS-1123 subdomain. Returns the error messages.
pub fn qualified_name_errors(s: &str) -> Vec<String> {
    let mut errs = Vec::new();
    let parts: Vec<&str> = s.split('/').collect();
    let name = match parts.as_slice() {
        [name] => *name,
        [prefix, name] => {
            if prefix.is_empty() {
                errs.push("prefix part must be non-empty".to_string());
            } else {
                for e in dns1123_subdomain_errors(prefix) {
                    errs.push(format!("prefix part {e}"));
                }
            }
            *name
        }
        _ => {
            errs.push("a qualified name must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character (e.g. 'MyName',  or 'my.name',  or '123-abc', regex used for validation is '([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]') with an optional DNS subdomain prefix and '/' (e.g. 'example.com/MyName')".to_string());
            return errs;
        }
    };
    if name.is_empty() {
        errs.push("name part must be non-empty".to_string());
    } else if name.len() > 63 {
        errs.push("name part must be no more than 63 bytes".to_string());
    }
    if !is_qualified_name_part(name) {
        errs.push("name part must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character (e.g. 'MyName',  or 'my.name',  or '123-abc', regex used for validation is '([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]')".to_string());
    }
    errs
}

/// Label value check (`validation.IsValidLabelValue`): empty, or at most 63
/// characters of `[A-Za-z0-9_.-]` starting and ending alphanumeric.
pub fn label_value_errors(s: &str) -> Vec<String> {
    let mut errs = Vec::new();
    if s.len() > 63 {
        errs.push("must be no more than 63 bytes".to_string());
    }
    if !s.is_empty() && !is_qualified_name_part(s) {
        errs.push("a valid label must be an empty string or consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character (e.g. 'MyValue',  or 'my_value',  or '12345', regex used for validation is '(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?')".to_string());
    }
    errs
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelectorRequirement;

    fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    fn expr(key: &str, op: &str, values: &[&str]) -> LabelSelectorRequirement {
        LabelSelectorRequirement {
            key: key.into(),
            operator: op.into(),
            values: if values.is_empty() {
                None
            } else {
                Some(values.iter().map(|s| s.to_string()).collect())
            },
        }
    }

    #[test]
    fn empty_selector_matches_all() {
        assert!(selector_matches(&LabelSelector::default(), &labels(&[])));
    }

    #[test]
    fn match_labels_and_expressions() {
        let sel = LabelSelector {
            match_labels: Some(labels(&[("app", "web")])),
            match_expressions: Some(vec![
                expr("env", "NotIn", &["prod"]),
                expr("tier", "Exists", &[]),
            ]),
        };
        assert!(selector_matches(
            &sel,
            &labels(&[("app", "web"), ("tier", "a")])
        ));
        assert!(!selector_matches(
            &sel,
            &labels(&[("app", "web"), ("tier", "a"), ("env", "prod")])
        ));
        assert!(!selector_matches(&sel, &labels(&[("app", "web")])));
    }

    #[test]
    fn invalid_selector_matches_nothing() {
        let sel = LabelSelector {
            match_labels: None,
            match_expressions: Some(vec![expr("a", "In", &[])]),
        };
        assert!(!selector_matches(&sel, &labels(&[("a", "b")])));
    }

    #[test]
    fn qualified_names() {
        assert!(qualified_name_errors("app").is_empty());
        assert!(qualified_name_errors("example.com/app").is_empty());
        assert!(!qualified_name_errors("-app").is_empty());
        assert!(!qualified_name_errors("a/b/c").is_empty());
        assert!(!qualified_name_errors("Example.com/app").is_empty());
        assert!(!qualified_name_errors(&"a".repeat(64)).is_empty());
        assert!(label_value_errors("").is_empty());
        // An empty name part reports both the emptiness and the format, as Kubernetes does.
        assert_eq!(qualified_name_errors("example.com/").len(), 2);
        assert_eq!(
            qualified_name_errors("/a")[0],
            "prefix part must be non-empty"
        );
        assert!(!label_value_errors("a b").is_empty());
    }
}
