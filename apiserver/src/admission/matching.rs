//! Which webhooks a request reaches: the webhook list in configuration order, and
//! kube-apiserver's predicates — `rules` (operations, apiGroups, apiVersions,
//! resources with subresources, scope), `namespaceSelector`, `objectSelector` and
//! `matchPolicy`, then the webhook's `matchConditions` ([`super::conditions`]).
//!
//! Everything here is pure: it reads webhook configurations and namespaces from a
//! [`Snapshot`] and decides; nothing is called.

use serde_json::Value;

use super::{Attributes, Operation};
use crate::status::ApiError;
use crate::storage::Snapshot;

/// Storage prefix of MutatingWebhookConfigurations.
pub const MUTATING_PREFIX: &str = "/admissionregistration.k8s.io/mutatingwebhookconfigurations/";
/// Storage prefix of ValidatingWebhookConfigurations.
pub const VALIDATING_PREFIX: &str =
    "/admissionregistration.k8s.io/validatingwebhookconfigurations/";

/// A group/version/resource.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Gvr {
    pub group: String,
    pub version: String,
    pub resource: String,
}

/// A group/version/kind.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Gvk {
    pub group: String,
    pub version: String,
    pub kind: String,
}

/// One webhook of one configuration, borrowed from the snapshot.
#[derive(Debug, Clone, Copy)]
pub struct Hook<'s> {
    /// `metadata.name` of the configuration.
    pub configuration: &'s str,
    /// Position in the configuration's `webhooks` list.
    pub index: usize,
    /// The webhook entry (`name`, `clientConfig`, `rules`, ...).
    pub spec: &'s Value,
}

impl<'s> Hook<'s> {
    /// The webhook's `name`.
    pub fn name(&self) -> &'s str {
        self.spec.get("name").and_then(Value::as_str).unwrap_or("")
    }

    /// A key unique among the webhooks of one kind (configuration and index).
    pub fn id(&self) -> String {
        format!("{}/{}", self.configuration, self.index)
    }

    fn str_field(&self, field: &str) -> Option<&'s str> {
        self.spec.get(field).and_then(Value::as_str)
    }

    /// `failurePolicy: Ignore` (the default is `Fail`).
    pub fn ignores_failures(&self) -> bool {
        self.str_field("failurePolicy") == Some("Ignore")
    }

    /// `timeoutSeconds`, default 10, kept within 1..=30.
    pub fn timeout_seconds(&self) -> u64 {
        self.spec
            .get("timeoutSeconds")
            .and_then(Value::as_u64)
            .unwrap_or(10)
            .clamp(1, 30)
    }

    /// `sideEffects`, if set.
    pub fn side_effects(&self) -> Option<&'s str> {
        self.str_field("sideEffects")
    }

    /// `reinvocationPolicy: IfNeeded` (mutating webhooks; the default is `Never`).
    pub fn reinvoke_if_needed(&self) -> bool {
        self.str_field("reinvocationPolicy") == Some("IfNeeded")
    }

    /// `matchPolicy: Exact` (the v1 default is `Equivalent`).
    pub fn exact_match(&self) -> bool {
        self.str_field("matchPolicy") == Some("Exact")
    }

    /// `admissionReviewVersions` (v1 if unset).
    pub fn review_versions(&self) -> Vec<&'s str> {
        match self
            .spec
            .get("admissionReviewVersions")
            .and_then(Value::as_array)
        {
            Some(list) => list.iter().filter_map(Value::as_str).collect(),
            None => vec!["v1"],
        }
    }

    /// `matchConditions` (CEL expressions that must all hold), empty if unset.
    pub fn match_conditions(&self) -> &'s [Value] {
        self.spec
            .get("matchConditions")
            .and_then(Value::as_array)
            .map(Vec::as_slice)
            .unwrap_or_default()
    }

    /// `clientConfig`.
    pub fn client_config(&self) -> Option<&'s Value> {
        self.spec.get("clientConfig")
    }
}

/// All webhooks under `prefix`, configurations in name order (storage key order is
/// name order), webhooks in list order — the order kube-apiserver calls them in.
pub fn hooks<'s>(snapshot: &'s Snapshot, prefix: &'s str) -> Vec<Hook<'s>> {
    let mut out = Vec::new();
    for kv in snapshot.range(prefix, None) {
        let configuration = kv
            .kept()
            .pointer("/metadata/name")
            .and_then(Value::as_str)
            .unwrap_or("");
        for (index, spec) in kv
            .kept()
            .get("webhooks")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .enumerate()
        {
            out.push(Hook {
                configuration,
                index,
                spec,
            });
        }
    }
    out
}

/// How a matching webhook is to be called: the resource and kind it sees, which
/// differ from the request's when matched through `matchPolicy: Equivalent`.
#[derive(Debug, Clone, PartialEq)]
pub struct Invocation {
    pub resource: Gvr,
    pub subresource: String,
    pub kind: Gvk,
}

/// Admission of the admission configuration kinds themselves is never sent to
/// webhooks (so a broken webhook cannot lock its own configuration).
pub fn is_exempt(attrs: &Attributes<'_>) -> bool {
    attrs.info.group == "admissionregistration.k8s.io"
        && matches!(
            attrs.info.kind.as_str(),
            "ValidatingWebhookConfiguration"
                | "MutatingWebhookConfiguration"
                | "ValidatingAdmissionPolicy"
                | "ValidatingAdmissionPolicyBinding"
                | "MutatingAdmissionPolicy"
                | "MutatingAdmissionPolicyBinding"
        )
}

fn is_namespace_resource(resource: &Gvr) -> bool {
    resource.group.is_empty() && resource.version == "v1" && resource.resource == "namespaces"
}

/// One rule's view of a request.
struct RuleInput<'a> {
    operation: Operation,
    resource: &'a Gvr,
    subresource: &'a str,
    namespace: &'a str,
}

fn exact_or_wildcard(items: Option<&Value>, requested: &str) -> bool {
    items
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .any(|i| i == "*" || i == requested)
}

/// Whether one `RuleWithOperations` matches.
fn rule_matches(rule: &Value, input: &RuleInput<'_>) -> bool {
    let scope_ok = match rule.get("scope").and_then(Value::as_str) {
        None | Some("*") => true,
        Some("Namespaced") => !is_namespace_resource(input.resource) && !input.namespace.is_empty(),
        Some("Cluster") => is_namespace_resource(input.resource) || input.namespace.is_empty(),
        Some(_) => false,
    };
    scope_ok
        && exact_or_wildcard(rule.get("operations"), input.operation.as_str())
        && exact_or_wildcard(rule.get("apiGroups"), &input.resource.group)
        && exact_or_wildcard(rule.get("apiVersions"), &input.resource.version)
        && rule
            .get("resources")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .filter_map(Value::as_str)
            .any(|r| {
                let (res, sub) = r.split_once('/').unwrap_or((r, ""));
                (res == "*" || res == input.resource.resource)
                    && (sub == "*" || sub == input.subresource)
            })
}

/// The first rule match, trying the request's own version first and then (with
/// `matchPolicy: Equivalent`) the other served versions of the same group/resource.
pub fn match_rules(hook: &Hook<'_>, attrs: &Attributes<'_>) -> Option<Invocation> {
    let resource = attrs.resource();
    let subresource = attrs.subresource.unwrap_or("").to_string();
    let namespace = attrs.review_namespace().unwrap_or("");
    let rules: Vec<&Value> = hook
        .spec
        .get("rules")
        .and_then(Value::as_array)
        .map(|r| r.iter().collect())
        .unwrap_or_default();
    let input = RuleInput {
        operation: attrs.operation,
        resource: &resource,
        subresource: &subresource,
        namespace,
    };
    if rules.iter().any(|r| rule_matches(r, &input)) {
        return Some(Invocation {
            kind: attrs.kind(),
            resource,
            subresource,
        });
    }
    if hook.exact_match() {
        return None;
    }
    for rule in &rules {
        for version in attrs.other_versions {
            if *version == resource.version {
                continue;
            }
            let equivalent = Gvr {
                version: version.clone(),
                ..resource.clone()
            };
            let input = RuleInput {
                resource: &equivalent,
                ..input
            };
            if rule_matches(rule, &input) {
                let mut kind = attrs.kind();
                kind.version = version.clone();
                return Some(Invocation {
                    resource: equivalent,
                    subresource,
                    kind,
                });
            }
        }
    }
    None
}

/// A `metav1.LabelSelector` (`matchLabels` and `matchExpressions`) against labels.
/// An empty or absent selector matches everything.
pub fn selector_matches(selector: Option<&Value>, labels: Option<&Value>) -> Result<bool, String> {
    let Some(selector) = selector.filter(|s| !s.is_null()) else {
        return Ok(true);
    };
    let label = |key: &str| labels.and_then(|l| l.get(key)).and_then(Value::as_str);
    if let Some(match_labels) = selector.get("matchLabels").and_then(Value::as_object) {
        for (key, want) in match_labels {
            if label(key) != want.as_str() {
                return Ok(false);
            }
        }
    }
    for expr in selector
        .get("matchExpressions")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        let key = expr.get("key").and_then(Value::as_str).unwrap_or("");
        let values: Vec<&str> = expr
            .get("values")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .filter_map(Value::as_str)
            .collect();
        let operator = expr.get("operator").and_then(Value::as_str).unwrap_or("");
        let ok = match operator {
            "In" => label(key).is_some_and(|v| values.contains(&v)),
            "NotIn" => label(key).is_none_or(|v| !values.contains(&v)),
            "Exists" => label(key).is_some(),
            "DoesNotExist" => label(key).is_none(),
            other => {
                return Err(format!(
                    "\"{other}\" is not a valid label selector operator"
                ));
            }
        };
        if !ok {
            return Ok(false);
        }
    }
    Ok(true)
}

fn is_empty_selector(selector: Option<&Value>) -> bool {
    match selector {
        None | Some(Value::Null) => true,
        Some(s) => {
            s.get("matchLabels")
                .and_then(Value::as_object)
                .is_none_or(|m| m.is_empty())
                && s.get("matchExpressions")
                    .and_then(Value::as_array)
                    .is_none_or(|m| m.is_empty())
        }
    }
}

/// `namespaceSelector`: requests for cluster-scoped objects (other than Namespaces)
/// always match; a Namespace being created or updated is matched on its own new
/// labels; everything else on the labels of its namespace as stored (404 if the
/// namespace does not exist, as kube-apiserver answers).
pub fn namespace_matches(
    hook: &Hook<'_>,
    attrs: &Attributes<'_>,
    object: Option<&Value>,
    snapshot: &Snapshot,
) -> Result<bool, ApiError> {
    let selector = hook.spec.get("namespaceSelector");
    let is_namespace = attrs.is_namespace();
    let namespace = if is_namespace {
        attrs
            .namespace
            .filter(|n| !n.is_empty())
            .unwrap_or(attrs.name)
    } else {
        attrs.namespace.unwrap_or("")
    };
    if namespace.is_empty() && !is_namespace {
        return Ok(true);
    }
    if is_empty_selector(selector) {
        return Ok(true);
    }
    let internal = |e: String| ApiError::internal(format!("Internal error occurred: {e}"));
    if is_namespace
        && attrs.subresource.is_none()
        && matches!(attrs.operation, Operation::Create | Operation::Update)
    {
        let labels = object.and_then(|o| o.pointer("/metadata/labels"));
        return selector_matches(selector, labels).map_err(internal);
    }
    let Some(stored) = snapshot.get(&format!("/core/namespaces/{namespace}")) else {
        return Err(ApiError::not_found("", "namespaces", namespace));
    };
    selector_matches(selector, stored.kept().pointer("/metadata/labels")).map_err(internal)
}

/// `objectSelector`: matches when the new object's or the old object's labels match.
pub fn object_matches(
    hook: &Hook<'_>,
    object: Option<&Value>,
    old_object: Option<&Value>,
) -> Result<bool, ApiError> {
    let selector = hook.spec.get("objectSelector");
    if is_empty_selector(selector) {
        return Ok(true);
    }
    let check = |o: Option<&Value>| -> Result<bool, ApiError> {
        match o {
            None => Ok(false),
            Some(o) => selector_matches(selector, o.pointer("/metadata/labels"))
                .map_err(|e| ApiError::internal(format!("Internal error occurred: {e}"))),
        }
    };
    Ok(check(object)? || check(old_object)?)
}

/// kube-apiserver's `ShouldCallHook`: selector errors count only for webhooks whose
/// rules match; no match → `Ok(None)`.
pub fn should_call(
    hook: &Hook<'_>,
    attrs: &Attributes<'_>,
    object: Option<&Value>,
    snapshot: &Snapshot,
) -> Result<Option<Invocation>, ApiError> {
    let namespace = namespace_matches(hook, attrs, object, snapshot);
    if matches!(namespace, Ok(false)) {
        return Ok(None);
    }
    let objects = object_matches(hook, object, attrs.old_object);
    if matches!(objects, Ok(false)) {
        return Ok(None);
    }
    let Some(invocation) = match_rules(hook, attrs) else {
        return Ok(None);
    };
    namespace?;
    objects?;
    let conditions = hook.match_conditions();
    if conditions.is_empty() {
        return Ok(Some(invocation));
    }
    let mut review = super::review::request("v1", "", attrs, &invocation, None, None);
    let mut request = review["request"].take();
    if let Some(r) = request.as_object_mut() {
        for field in ["uid", "object", "oldObject"] {
            r.remove(field);
        }
    }
    match super::conditions::evaluate(
        conditions,
        object,
        attrs.old_object,
        &request,
        hook.ignores_failures(),
    ) {
        super::conditions::Decision::Call => Ok(Some(invocation)),
        super::conditions::Decision::Skip => {
            tracing::debug!(webhook = hook.name(), "matchConditions exclude the request");
            Ok(None)
        }
        super::conditions::Decision::Refuse(error) => {
            tracing::warn!(webhook = hook.name(), %error, "failed evaluating match conditions, failing closed");
            let resource = crate::status::qualified(&attrs.info.plural, &attrs.info.group);
            let message = if attrs.name.is_empty() {
                format!("{resource} is forbidden: {error}")
            } else {
                format!("{resource} \"{}\" is forbidden: {error}", attrs.name)
            };
            Err(ApiError::forbidden(message).with_details(
                &attrs.info.group,
                &attrs.info.plural,
                attrs.name,
            ))
        }
    }
}
