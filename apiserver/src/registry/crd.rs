//! CustomResourceDefinitions: validating a CRD, turning it into [`ResourceInfo`]s for
//! its served versions, and the conversions between versions.

use std::cmp::Ordering;
use std::sync::Arc;

use serde_json::{Value, json};

use super::jsonpath::JsonPath;
use super::meta::{is_dns_label, is_dns_subdomain, meta_str};
use super::schema;
use super::{NameRule, Printer, ResourceInfo};
use crate::status::Cause;

/// The finalizer that keeps a CRD until its objects are gone.
pub const CLEANUP_FINALIZER: &str = "customresourcecleanup.apiextensions.k8s.io";

/// One `additionalPrinterColumns` entry.
#[derive(Debug, Clone, PartialEq)]
pub struct PrinterColumn {
    pub name: String,
    pub type_: String,
    pub format: String,
    pub description: String,
    pub priority: i64,
    pub path: JsonPath,
}

/// How objects move between versions.
#[derive(Debug, Clone, PartialEq)]
pub enum Conversion {
    /// Only `apiVersion` changes.
    None,
    /// A ConversionReview sent to the CRD's webhook.
    Webhook {
        client_config: Value,
        review_versions: Vec<String>,
    },
}

/// Paths of the scale subresource.
#[derive(Debug, Clone, PartialEq)]
pub struct ScalePaths {
    pub spec_replicas: String,
    pub status_replicas: String,
    pub label_selector: Option<String>,
}

/// What a custom resource's version adds to its [`ResourceInfo`].
#[derive(Debug, Clone, PartialEq)]
pub struct CustomInfo {
    pub crd_name: String,
    pub schema: Option<Value>,
    pub storage_version: String,
    pub conversion: Conversion,
    pub scale: Option<ScalePaths>,
}

/// Kubernetes' version priority: GA before beta before alpha, higher numbers first,
/// other strings last in lexical order. `Less` means `a` is preferred.
pub fn compare_versions(a: &str, b: &str) -> Ordering {
    fn parse(v: &str) -> Option<(u32, u8, u32)> {
        let rest = v.strip_prefix('v')?;
        let digits: String = rest.chars().take_while(char::is_ascii_digit).collect();
        let major: u32 = digits.parse().ok()?;
        let tail = &rest[digits.len()..];
        if tail.is_empty() {
            return Some((major, 2, 0));
        }
        let (stage, n) = if let Some(n) = tail.strip_prefix("beta") {
            (1, n)
        } else if let Some(n) = tail.strip_prefix("alpha") {
            (0, n)
        } else {
            return None;
        };
        Some((major, stage, n.parse().ok()?))
    }
    match (parse(a), parse(b)) {
        (Some((ma, sa, na)), Some((mb, sb, nb))) => sb.cmp(&sa).then(mb.cmp(&ma)).then(nb.cmp(&na)),
        (Some(_), None) => Ordering::Less,
        (None, Some(_)) => Ordering::Greater,
        (None, None) => a.cmp(b),
    }
}

fn str_at<'a>(v: &'a Value, pointer: &str) -> &'a str {
    v.pointer(pointer).and_then(Value::as_str).unwrap_or("")
}

fn version_schema<'a>(crd: &'a Value, version: &'a Value) -> Option<&'a Value> {
    version
        .pointer("/schema/openAPIV3Schema")
        .or_else(|| crd.pointer("/spec/validation/openAPIV3Schema"))
}

/// Validates a CRD as kube-apiserver does (the parts that matter for serving it).
pub fn validate(crd: &Value) -> Vec<Cause> {
    let mut causes = Vec::new();
    let group = str_at(crd, "/spec/group");
    let plural = str_at(crd, "/spec/names/plural");
    let kind = str_at(crd, "/spec/names/kind");
    if group.is_empty() {
        causes.push(Cause::new(
            "FieldValueRequired",
            "spec.group",
            "Required value",
        ));
    } else if !is_dns_subdomain(group) || !group.contains('.') {
        causes.push(Cause::new(
            "FieldValueInvalid",
            "spec.group",
            format!("Invalid value: \"{group}\": should be a domain with at least one dot"),
        ));
    }
    if plural.is_empty() {
        causes.push(Cause::new(
            "FieldValueRequired",
            "spec.names.plural",
            "Required value",
        ));
    } else if !is_dns_label(plural) {
        causes.push(Cause::new("FieldValueInvalid", "spec.names.plural", format!("Invalid value: \"{plural}\": a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-'")));
    }
    let singular = str_at(crd, "/spec/names/singular");
    if !singular.is_empty() && !is_dns_label(singular) {
        causes.push(Cause::new("FieldValueInvalid", "spec.names.singular", format!("Invalid value: \"{singular}\": a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-'")));
    }
    if kind.is_empty() {
        causes.push(Cause::new(
            "FieldValueRequired",
            "spec.names.kind",
            "Required value",
        ));
    }
    let expected_name = format!("{plural}.{group}");
    let name = meta_str(crd, "name");
    if name != expected_name {
        causes.push(Cause::new(
            "FieldValueInvalid",
            "metadata.name",
            format!("Invalid value: \"{name}\": must be spec.names.plural+\".\"+spec.group"),
        ));
    }
    match str_at(crd, "/spec/scope") {
        "Namespaced" | "Cluster" => {}
        "" => causes.push(Cause::new(
            "FieldValueRequired",
            "spec.scope",
            "Required value",
        )),
        s => causes.push(Cause::new(
            "FieldValueNotSupported",
            "spec.scope",
            format!("Unsupported value: \"{s}\": supported values: \"Cluster\", \"Namespaced\""),
        )),
    }
    let versions = crd
        .pointer("/spec/versions")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    if versions.is_empty() {
        causes.push(Cause::new(
            "FieldValueRequired",
            "spec.versions",
            "Required value: must have exactly one version marked as storage version",
        ));
    }
    let storage = versions
        .iter()
        .filter(|v| v.get("storage") == Some(&Value::Bool(true)))
        .count();
    if !versions.is_empty() && storage != 1 {
        causes.push(Cause::new(
            "FieldValueInvalid",
            "spec.versions",
            format!(
                "Invalid value: {storage}: must have exactly one version marked as storage version"
            ),
        ));
    }
    let mut seen = Vec::new();
    for (i, v) in versions.iter().enumerate() {
        let vname = str_at(v, "/name");
        let path = format!("spec.versions[{i}]");
        if !is_dns_label(vname) {
            causes.push(Cause::new(
                "FieldValueInvalid",
                format!("{path}.name"),
                format!("Invalid value: \"{vname}\": a DNS-1035 label is required"),
            ));
        }
        if seen.contains(&vname) {
            causes.push(Cause::new(
                "FieldValueInvalid",
                format!("{path}.name"),
                format!("Invalid value: \"{vname}\": must be unique"),
            ));
        }
        seen.push(vname);
        match version_schema(crd, v) {
            Some(s) => causes.extend(schema::check_structural(
                s,
                &format!("{path}.schema.openAPIV3Schema"),
            )),
            None => causes.push(Cause::new(
                "FieldValueRequired",
                format!("{path}.schema.openAPIV3Schema"),
                "Required value: schemas are required",
            )),
        }
        for (j, c) in v
            .get("additionalPrinterColumns")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .enumerate()
        {
            if let Err(e) = JsonPath::parse(str_at(c, "/jsonPath")) {
                causes.push(Cause::new(
                    "FieldValueInvalid",
                    format!("{path}.additionalPrinterColumns[{j}].jsonPath"),
                    format!("Invalid value: \"{}\": {e}", str_at(c, "/jsonPath")),
                ));
            }
        }
    }
    if !versions
        .iter()
        .any(|v| v.get("served") == Some(&Value::Bool(true)))
        && !versions.is_empty()
    {
        causes.push(Cause::new(
            "FieldValueInvalid",
            "spec.versions",
            "Invalid value: must have at least one served version",
        ));
    }
    match str_at(crd, "/spec/conversion/strategy") {
        "" | "None" => {}
        "Webhook" => {
            if crd
                .pointer("/spec/conversion/webhook/clientConfig")
                .is_none()
            {
                causes.push(Cause::new(
                    "FieldValueRequired",
                    "spec.conversion.webhook.clientConfig",
                    "Required value: required when strategy is set to Webhook",
                ));
            }
            if crd
                .pointer("/spec/conversion/webhook/conversionReviewVersions")
                .and_then(Value::as_array)
                .is_none_or(Vec::is_empty)
            {
                causes.push(Cause::new(
                    "FieldValueRequired",
                    "spec.conversion.webhook.conversionReviewVersions",
                    "Required value: must include at least one of v1, v1beta1",
                ));
            }
        }
        s => causes.push(Cause::new(
            "FieldValueNotSupported",
            "spec.conversion.strategy",
            format!("Unsupported value: \"{s}\": supported values: \"None\", \"Webhook\""),
        )),
    }
    causes
}

/// The printer columns of one `spec.versions[]` entry of a CRD, with
/// kube-apiserver's default Age column when it lists none.
pub(crate) fn columns(version: &Value) -> Vec<PrinterColumn> {
    let mut cols: Vec<PrinterColumn> = version
        .get("additionalPrinterColumns")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|c| {
            Some(PrinterColumn {
                name: str_at(c, "/name").to_string(),
                type_: str_at(c, "/type").to_string(),
                format: str_at(c, "/format").to_string(),
                description: str_at(c, "/description").to_string(),
                priority: c.get("priority").and_then(Value::as_i64).unwrap_or(0),
                path: JsonPath::parse(str_at(c, "/jsonPath")).ok()?,
            })
        })
        .collect();
    if version.get("additionalPrinterColumns").is_none() {
        // kube-apiserver's defaulting gives every CRD an Age column.
        cols.push(PrinterColumn {
            name: "Age".into(),
            type_: "date".into(),
            format: String::new(),
            description: String::new(),
            priority: 0,
            path: JsonPath::parse(".metadata.creationTimestamp").expect("static path"),
        });
    }
    cols
}

/// The resources a valid CRD serves: one per served version, preferred first.
pub fn resources(crd: &Value) -> Vec<ResourceInfo> {
    let group = str_at(crd, "/spec/group").to_string();
    let names = crd
        .pointer("/spec/names")
        .cloned()
        .unwrap_or_else(|| json!({}));
    let plural = str_at(&names, "/plural").to_string();
    let kind = str_at(&names, "/kind").to_string();
    let singular = match str_at(&names, "/singular") {
        "" => kind.to_ascii_lowercase(),
        s => s.to_string(),
    };
    let list = |field: &str| -> Vec<String> {
        names
            .get(field)
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .filter_map(Value::as_str)
            .map(String::from)
            .collect()
    };
    let versions = crd
        .pointer("/spec/versions")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    let storage_version = versions
        .iter()
        .find(|v| v.get("storage") == Some(&Value::Bool(true)))
        .map(|v| str_at(v, "/name").to_string())
        .unwrap_or_default();
    let conversion = match str_at(crd, "/spec/conversion/strategy") {
        "Webhook" => Conversion::Webhook {
            client_config: crd
                .pointer("/spec/conversion/webhook/clientConfig")
                .cloned()
                .unwrap_or(Value::Null),
            review_versions: crd
                .pointer("/spec/conversion/webhook/conversionReviewVersions")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
                .filter_map(Value::as_str)
                .map(String::from)
                .collect(),
        },
        _ => Conversion::None,
    };
    let mut out: Vec<ResourceInfo> = versions
        .iter()
        .filter(|v| v.get("served") == Some(&Value::Bool(true)))
        .map(|v| {
            let version = str_at(v, "/name").to_string();
            let scale = v.pointer("/subresources/scale").map(|s| ScalePaths {
                spec_replicas: str_at(s, "/specReplicasPath").to_string(),
                status_replicas: str_at(s, "/statusReplicasPath").to_string(),
                label_selector: s
                    .get("labelSelectorPath")
                    .and_then(Value::as_str)
                    .map(String::from),
            });
            let selectable: Vec<&'static str> = Vec::new();
            ResourceInfo {
                group: group.clone(),
                version: version.clone(),
                kind: kind.clone(),
                plural: plural.clone(),
                singular: singular.clone(),
                short_names: list("shortNames"),
                categories: list("categories"),
                namespaced: str_at(crd, "/spec/scope") == "Namespaced",
                status_subresource: v.pointer("/subresources/status").is_some(),
                scale_subresource: scale.is_some(),
                printer: Printer::Custom(Arc::new(columns(v))),
                field_selectors: selectable,
                name_rule: NameRule::Subdomain,
                tracks_generation: true,
                openapi_prefix: group.split('.').rev().collect::<Vec<_>>().join(".")
                    + "."
                    + &version,
                create_only: false,
                custom: Some(Arc::new(CustomInfo {
                    crd_name: meta_str(crd, "name").to_string(),
                    schema: version_schema(crd, v).cloned(),
                    storage_version: storage_version.clone(),
                    conversion: conversion.clone(),
                    scale,
                })),
            }
        })
        .collect();
    out.sort_by(|a, b| compare_versions(&a.version, &b.version));
    out
}

/// Whether a CRD's status says it is established.
pub fn is_established(crd: &Value) -> bool {
    crd.pointer("/status/conditions")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .any(|c| str_at(c, "/type") == "Established" && str_at(c, "/status") == "True")
}

/// The status kube-apiserver gives an accepted CRD.
pub fn accepted_status(crd: &Value, now: &str) -> Value {
    let mut stored: Vec<Value> = crd
        .pointer("/status/storedVersions")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    if let Some(v) = crd
        .pointer("/spec/versions")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .find(|v| v.get("storage") == Some(&Value::Bool(true)))
        .and_then(|v| v.get("name"))
        && !stored.contains(v)
    {
        stored.push(v.clone());
    }
    let mut names = crd
        .pointer("/spec/names")
        .cloned()
        .unwrap_or_else(|| json!({}));
    if names.get("singular").is_none()
        && let Some(k) = names.get("kind").and_then(Value::as_str)
    {
        names["singular"] = json!(k.to_ascii_lowercase());
    }
    if names.get("listKind").is_none()
        && let Some(k) = names.get("kind").and_then(Value::as_str)
    {
        names["listKind"] = json!(format!("{k}List"));
    }
    json!({
        "acceptedNames": names,
        "conditions": [
            {"type": "NamesAccepted", "status": "True", "lastTransitionTime": now, "reason": "NoConflicts", "message": "no conflicts found"},
            {"type": "Established", "status": "True", "lastTransitionTime": now, "reason": "InitialNamesAccepted", "message": "the initial names have been accepted"},
        ],
        "storedVersions": stored,
    })
}

/// Rewrites a custom object to another version of its group (strategy None).
pub fn convert_none(object: &Value, group: &str, version: &str) -> Value {
    let mut out = object.clone();
    out["apiVersion"] = json!(format!("{group}/{version}"));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn crd() -> Value {
        json!({"apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
            "metadata": {"name": "widgets.example.com"},
            "spec": {"group": "example.com", "scope": "Namespaced",
                "names": {"plural": "widgets", "kind": "Widget", "shortNames": ["wd"]},
                "versions": [
                    {"name": "v1alpha1", "served": true, "storage": false, "schema": {"openAPIV3Schema": {"type": "object"}}},
                    {"name": "v1", "served": true, "storage": true, "schema": {"openAPIV3Schema": {"type": "object"}},
                     "subresources": {"status": {}}, "additionalPrinterColumns": [{"name": "Mode", "type": "string", "jsonPath": ".spec.mode"}]}]}})
    }

    #[test]
    fn version_priority() {
        let mut v = vec!["v1alpha1", "v2", "v1beta2", "v1", "foo", "v1beta1", "v10"];
        v.sort_by(|a, b| compare_versions(a, b));
        assert_eq!(
            v,
            vec!["v10", "v2", "v1", "v1beta2", "v1beta1", "v1alpha1", "foo"]
        );
    }

    #[test]
    fn served_versions_preferred_first() {
        assert!(validate(&crd()).is_empty());
        let r = resources(&crd());
        assert_eq!(
            r.iter().map(|i| i.version.as_str()).collect::<Vec<_>>(),
            vec!["v1", "v1alpha1"]
        );
        assert!(r[0].status_subresource && !r[1].status_subresource);
        assert_eq!(
            r[0].custom.as_ref().map(|c| c.storage_version.as_str()),
            Some("v1")
        );
        assert_eq!(r[0].openapi_prefix, "com.example.v1");
    }

    #[test]
    fn invalid_crds() {
        let mut bad = crd();
        bad["metadata"]["name"] = json!("wrong");
        bad["spec"]["versions"][0]["storage"] = json!(true);
        bad["spec"]["versions"][1]["schema"]["openAPIV3Schema"] = json!({"properties": {"a": {}}});
        let fields: Vec<String> = validate(&bad).into_iter().map(|c| c.field).collect();
        assert!(fields.contains(&"metadata.name".to_string()), "{fields:?}");
        assert!(fields.contains(&"spec.versions".to_string()), "{fields:?}");
        assert!(
            fields
                .iter()
                .any(|f| f.starts_with("spec.versions[1].schema.openAPIV3Schema")),
            "{fields:?}"
        );
    }
}
