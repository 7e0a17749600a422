//! Authorization as kube-apiserver does it: the `system:masters` group, then RBAC
//! (Role, ClusterRole with aggregationRule, RoleBinding, ClusterRoleBinding) read
//! from a storage [`Snapshot`]; impersonation headers; escalation prevention on RBAC
//! writes; and the self-review answers behind `kubectl auth can-i` / `whoami`.
//!
//! Start at [`authorize`]: build [`Attributes`] for a request (usually with
//! [`Attributes::from_request`]), and on a denial answer with [`forbidden`].
//! [`impersonate`] turns `Impersonate-*` headers into the user to act as;
//! [`bootstrap_policy`] lists the default roles and bindings to create at start-up.
//! Everything here is pure: no I/O, no state beyond the snapshot passed in.

mod bootstrap;
#[cfg(test)]
mod tests;

use std::collections::{BTreeMap, HashMap, HashSet};
use std::fmt::Write as _;

use serde_json::{Map, Value, json};

pub use self::bootstrap::bootstrap_policy;
use super::auth::User;
use crate::endpoints::request_info::{RequestInfo, Route};
use crate::status::{ApiError, Cause, Details, qualified};
use crate::storage::Snapshot;

/// The API group of Role, ClusterRole, RoleBinding and ClusterRoleBinding.
pub const RBAC_GROUP: &str = "rbac.authorization.k8s.io";
/// Members may do anything (kube's privileged group).
pub const SYSTEM_MASTERS: &str = "system:masters";
/// The group every authenticated user is in.
pub const ALL_AUTHENTICATED: &str = "system:authenticated";
/// The group of anonymous requests.
pub const ALL_UNAUTHENTICATED: &str = "system:unauthenticated";
/// The anonymous user's name.
pub const ANONYMOUS: &str = "system:anonymous";
/// The group of every service account.
pub const SERVICE_ACCOUNTS_GROUP: &str = "system:serviceaccounts";
/// Prefix of service-account user names: `system:serviceaccount:NS:NAME`.
pub const SERVICE_ACCOUNT_USER_PREFIX: &str = "system:serviceaccount:";

const IMPERSONATE_USER: &str = "impersonate-user";
const IMPERSONATE_GROUP: &str = "impersonate-group";
const IMPERSONATE_UID: &str = "impersonate-uid";
const IMPERSONATE_EXTRA_PREFIX: &str = "impersonate-extra-";

// ---------------------------------------------------------------------------
// Attributes and decisions
// ---------------------------------------------------------------------------

/// What a request asks to do, as the authorizer sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Attributes {
    /// A request on an API resource (`/api/...`, `/apis/...` with a resource).
    Resource(ResourceAttributes),
    /// Any other path (`/healthz`, `/version`, `/apis`, discovery documents...).
    NonResource(NonResourceAttributes),
}

/// A resource request. Empty strings mean "not set" (cluster scope, no name...).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ResourceAttributes {
    /// `get`, `list`, `watch`, `create`, `update`, `patch`, `delete`,
    /// `deletecollection`, or a special verb (`impersonate`, `escalate`, `bind`, `use`...).
    pub verb: String,
    /// API group; `""` for the core group.
    pub group: String,
    /// API version; not used by RBAC.
    pub version: String,
    /// Resource (plural), e.g. `pods`.
    pub resource: String,
    /// Subresource, e.g. `status`.
    pub subresource: String,
    /// Namespace; `""` at the cluster scope.
    pub namespace: String,
    /// Object name; `""` for collections.
    pub name: String,
}

/// A non-resource request.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NonResourceAttributes {
    /// The lower-case HTTP method: `get`, `head`, `post`, `put`, `patch`, `delete`...
    pub verb: String,
    /// The URL path, e.g. `/healthz`.
    pub path: String,
}

impl Attributes {
    /// A resource request at the cluster scope; refine it with the builder methods.
    pub fn resource(
        verb: impl Into<String>,
        group: impl Into<String>,
        resource: impl Into<String>,
    ) -> Self {
        Attributes::Resource(ResourceAttributes {
            verb: verb.into(),
            group: group.into(),
            resource: resource.into(),
            ..Default::default()
        })
    }

    /// A non-resource request.
    pub fn non_resource(verb: impl Into<String>, path: impl Into<String>) -> Self {
        Attributes::NonResource(NonResourceAttributes {
            verb: verb.into(),
            path: path.into(),
        })
    }

    /// Sets the namespace of a resource request (no effect on non-resource ones).
    pub fn namespace(mut self, namespace: impl Into<String>) -> Self {
        if let Attributes::Resource(r) = &mut self {
            r.namespace = namespace.into();
        }
        self
    }

    /// Sets the object name of a resource request.
    pub fn name(mut self, name: impl Into<String>) -> Self {
        if let Attributes::Resource(r) = &mut self {
            r.name = name.into();
        }
        self
    }

    /// Sets the subresource of a resource request.
    pub fn subresource(mut self, subresource: impl Into<String>) -> Self {
        if let Attributes::Resource(r) = &mut self {
            r.subresource = subresource.into();
        }
        self
    }

    /// Sets the API version of a resource request.
    pub fn version(mut self, version: impl Into<String>) -> Self {
        if let Attributes::Resource(r) = &mut self {
            r.version = version.into();
        }
        self
    }

    /// The attributes of an HTTP request: its parsed [`Route`] if that is a resource
    /// request, else a non-resource request with the lower-cased method as verb.
    pub fn from_request(
        method: &http::Method,
        path: &str,
        route: &Route,
        query: &HashMap<String, String>,
    ) -> Self {
        match route {
            Route::Resource(info) => Attributes::from_request_info(info, query),
            _ => Attributes::non_resource(method.as_str().to_ascii_lowercase(), path),
        }
    }

    /// The attributes of a resource request, as kube's request-info resolver sets
    /// them: a namespace addresses itself (`namespace` = its name), the subresource
    /// is one path segment, and a list or watch whose field selector pins
    /// `metadata.name` carries that name (so `resourceNames` rules apply to it).
    pub fn from_request_info(info: &RequestInfo, query: &HashMap<String, String>) -> Self {
        let mut namespace = info.namespace.clone().unwrap_or_default();
        let mut name = info.name.clone().unwrap_or_default();
        if namespace.is_empty() && info.group.is_empty() && info.resource == "namespaces" {
            namespace = name.clone();
        }
        let verb = info.verb.as_str();
        if name.is_empty()
            && matches!(verb, "list" | "watch")
            && let Some(n) = query.get("fieldSelector").and_then(|s| selected_name(s))
        {
            name = n;
        }
        let subresource = info
            .subresource
            .as_deref()
            .map(|s| s.split('/').next().unwrap_or(s).to_string())
            .unwrap_or_default();
        Attributes::Resource(ResourceAttributes {
            verb: verb.to_string(),
            group: info.group.clone(),
            version: info.version.clone(),
            resource: info.resource.clone(),
            subresource,
            namespace,
            name,
        })
    }

    /// The verb.
    pub fn verb(&self) -> &str {
        match self {
            Attributes::Resource(r) => &r.verb,
            Attributes::NonResource(n) => &n.verb,
        }
    }

    /// The namespace; `""` for cluster-scoped and non-resource requests.
    pub fn namespace_name(&self) -> &str {
        match self {
            Attributes::Resource(r) => &r.namespace,
            Attributes::NonResource(_) => "",
        }
    }
}

/// `metadata.name` pinned by a field selector (`metadata.name=x` or `==x`), if it is a
/// valid path segment.
fn selected_name(selector: &str) -> Option<String> {
    selector.split(',').find_map(|term| {
        let value = term
            .trim()
            .strip_prefix("metadata.name")?
            .trim_start()
            .strip_prefix('=')?;
        let value = value.strip_prefix('=').unwrap_or(value).trim();
        let valid = !value.is_empty()
            && value != "."
            && value != ".."
            && !value.contains('/')
            && !value.contains('%');
        valid.then(|| value.to_string())
    })
}

/// An authorization answer. RBAC only ever allows or has no opinion (which denies).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decision {
    /// Whether the request may go ahead.
    pub allowed: bool,
    /// Why: for an allow, which binding granted it (`RBAC: allowed by ...`, empty for
    /// `system:masters`); for a denial, RBAC resolution errors, usually empty.
    pub reason: String,
}

impl Decision {
    fn allow(reason: impl Into<String>) -> Self {
        Decision {
            allowed: true,
            reason: reason.into(),
        }
    }

    fn deny(reason: impl Into<String>) -> Self {
        Decision {
            allowed: false,
            reason: reason.into(),
        }
    }
}

// ---------------------------------------------------------------------------
// RBAC objects
// ---------------------------------------------------------------------------

/// One RBAC `PolicyRule`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
struct Rule {
    verbs: Vec<String>,
    api_groups: Vec<String>,
    resources: Vec<String>,
    resource_names: Vec<String>,
    non_resource_urls: Vec<String>,
}

fn strings(v: &Value, field: &str) -> Vec<String> {
    v.get(field)
        .and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(Value::as_str)
                .map(String::from)
                .collect()
        })
        .unwrap_or_default()
}

fn str_field<'a>(v: &'a Value, field: &str) -> &'a str {
    v.get(field).and_then(Value::as_str).unwrap_or("")
}

impl Rule {
    fn from_value(v: &Value) -> Self {
        Rule {
            verbs: strings(v, "verbs"),
            api_groups: strings(v, "apiGroups"),
            resources: strings(v, "resources"),
            resource_names: strings(v, "resourceNames"),
            non_resource_urls: strings(v, "nonResourceURLs"),
        }
    }

    fn to_value(&self) -> Value {
        let mut m = Map::new();
        for (k, list) in [
            ("verbs", &self.verbs),
            ("apiGroups", &self.api_groups),
            ("resources", &self.resources),
            ("resourceNames", &self.resource_names),
            ("nonResourceURLs", &self.non_resource_urls),
        ] {
            if !list.is_empty() || k == "verbs" {
                m.insert(k.into(), json!(list));
            }
        }
        Value::Object(m)
    }

    /// kube's `CompactString`: `{APIGroups:["apps"], Resources:["pods"], Verbs:["get"]}`.
    fn compact_string(&self) -> String {
        let mut parts = Vec::new();
        for (label, list) in [
            ("APIGroups", &self.api_groups),
            ("Resources", &self.resources),
            ("NonResourceURLs", &self.non_resource_urls),
            ("ResourceNames", &self.resource_names),
            ("Verbs", &self.verbs),
        ] {
            if !list.is_empty() {
                parts.push(format!("{label}:{}", quote_list(list)));
            }
        }
        format!("{{{}}}", parts.join(", "))
    }
}

fn rules_of(object: &Value) -> Vec<Rule> {
    object
        .get("rules")
        .and_then(Value::as_array)
        .map(|a| a.iter().map(Rule::from_value).collect())
        .unwrap_or_default()
}

fn has(set: &[String], item: &str) -> bool {
    set.iter().any(|s| s == item)
}

/// kube's `RuleAllows`.
fn rule_allows(attrs: &Attributes, rule: &Rule) -> bool {
    let verb_ok = rule.verbs.iter().any(|v| v == "*" || v == attrs.verb());
    if !verb_ok {
        return false;
    }
    match attrs {
        Attributes::Resource(r) => {
            let combined = if r.subresource.is_empty() {
                r.resource.clone()
            } else {
                format!("{}/{}", r.resource, r.subresource)
            };
            let group_ok = rule.api_groups.iter().any(|g| g == "*" || *g == r.group);
            let resource_ok = rule.resources.iter().any(|res| {
                res == "*"
                    || *res == combined
                    || (!r.subresource.is_empty()
                        && res.strip_prefix("*/") == Some(r.subresource.as_str()))
            });
            let name_ok = rule.resource_names.is_empty() || has(&rule.resource_names, &r.name);
            group_ok && resource_ok && name_ok
        }
        Attributes::NonResource(n) => rule.non_resource_urls.iter().any(|u| {
            u == "*"
                || *u == n.path
                || (u.ends_with('*') && n.path.starts_with(u.trim_end_matches('*')))
        }),
    }
}

/// A binding subject.
struct Subject<'a> {
    kind: &'a str,
    name: &'a str,
    namespace: &'a str,
}

fn subjects_of(binding: &Value) -> Vec<Subject<'_>> {
    binding
        .get("subjects")
        .and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .map(|s| Subject {
                    kind: str_field(s, "kind"),
                    name: str_field(s, "name"),
                    namespace: str_field(s, "namespace"),
                })
                .collect()
        })
        .unwrap_or_default()
}

/// The user with the groups the authenticator adds: every non-anonymous user is in
/// `system:authenticated`.
fn effective_groups(user: &User) -> Vec<String> {
    let mut groups = user.groups.clone();
    let anonymous =
        user.name == ANONYMOUS || has(&groups, ALL_UNAUTHENTICATED) || user.name.is_empty();
    if !anonymous && !has(&groups, ALL_AUTHENTICATED) {
        groups.push(ALL_AUTHENTICATED.to_string());
    }
    groups
}

/// kube's `appliesToUser`; a ServiceAccount subject without namespace means the
/// binding's namespace.
fn applies_to(name: &str, groups: &[String], subject: &Subject<'_>, namespace: &str) -> bool {
    match subject.kind {
        "User" => name == subject.name,
        "Group" => has(groups, subject.name),
        "ServiceAccount" => {
            let ns = if subject.namespace.is_empty() {
                namespace
            } else {
                subject.namespace
            };
            !ns.is_empty() && split_service_account_username(name) == Some((ns, subject.name))
        }
        _ => false,
    }
}

fn describe_subject(subject: &Subject<'_>, binding_namespace: &str) -> String {
    match subject.kind {
        "ServiceAccount" => {
            let ns = if subject.namespace.is_empty() {
                binding_namespace
            } else {
                subject.namespace
            };
            format!(
                "{} {}",
                subject.kind,
                quote(&format!("{}/{ns}", subject.name))
            )
        }
        kind => format!("{kind} {}", quote(subject.name)),
    }
}

/// What a rule was found through, or why a binding's role could not be read.
enum Visit<'a> {
    Rule { source: &'a str, rule: &'a Rule },
    Error(String),
}

/// Visits the rules granted to a user in `namespace` (`""`: cluster-wide only) in
/// kube's order: ClusterRoleBindings, then the namespace's RoleBindings. Stops when
/// `visit` returns false.
fn visit_rules(
    snapshot: &Snapshot,
    name: &str,
    groups: &[String],
    namespace: &str,
    visit: &mut dyn FnMut(Visit<'_>) -> bool,
) {
    let crb_prefix = format!("/{RBAC_GROUP}/clusterrolebindings/");
    for kv in snapshot.range(&crb_prefix, None) {
        let binding = kv.kept();
        let subjects = subjects_of(binding);
        let Some(subject) = subjects.iter().find(|s| applies_to(name, groups, s, "")) else {
            continue;
        };
        let (kind, role) = role_ref(binding);
        let source = format!(
            "ClusterRoleBinding {} of {kind} {} to {}",
            quote(object_name(binding)),
            quote(role),
            describe_subject(subject, "")
        );
        if !visit_role(snapshot, kind, role, "", &source, visit) {
            return;
        }
    }
    if namespace.is_empty() {
        return;
    }
    let rb_prefix = format!("/{RBAC_GROUP}/rolebindings/{namespace}/");
    for kv in snapshot.range(&rb_prefix, None) {
        let binding = kv.kept();
        let subjects = subjects_of(binding);
        let Some(subject) = subjects
            .iter()
            .find(|s| applies_to(name, groups, s, namespace))
        else {
            continue;
        };
        let (kind, role) = role_ref(binding);
        let source = format!(
            "RoleBinding {} of {kind} {} to {}",
            quote(&format!("{}/{namespace}", object_name(binding))),
            quote(role),
            describe_subject(subject, namespace)
        );
        if !visit_role(snapshot, kind, role, namespace, &source, visit) {
            return;
        }
    }
}

fn visit_role(
    snapshot: &Snapshot,
    kind: &str,
    role: &str,
    namespace: &str,
    source: &str,
    visit: &mut dyn FnMut(Visit<'_>) -> bool,
) -> bool {
    match role_ref_rules(snapshot, kind, role, namespace) {
        Ok(rules) => rules.iter().all(|rule| visit(Visit::Rule { source, rule })),
        Err(e) => visit(Visit::Error(e)),
    }
}

fn role_ref(binding: &Value) -> (&str, &str) {
    let r = binding.get("roleRef").unwrap_or(&Value::Null);
    (str_field(r, "kind"), str_field(r, "name"))
}

fn object_name(object: &Value) -> &str {
    object
        .pointer("/metadata/name")
        .and_then(Value::as_str)
        .unwrap_or("")
}

/// The rules a `roleRef` points at, or kube's error text when it cannot be read.
fn role_ref_rules(
    snapshot: &Snapshot,
    kind: &str,
    name: &str,
    namespace: &str,
) -> Result<Vec<Rule>, String> {
    match kind {
        "Role" => snapshot
            .get(&format!("/{RBAC_GROUP}/roles/{namespace}/{name}"))
            .map(|kv| rules_of(kv.kept()))
            .ok_or_else(|| format!("role.{RBAC_GROUP} {} not found", quote(name))),
        "ClusterRole" => snapshot
            .get(&format!("/{RBAC_GROUP}/clusterroles/{name}"))
            .map(|kv| cluster_role_rules(snapshot, kv.kept()))
            .ok_or_else(|| format!("clusterrole.{RBAC_GROUP} {} not found", quote(name))),
        other => Err(format!("unsupported role reference kind: {}", quote(other))),
    }
}

/// A ClusterRole's rules: its own, or for an aggregated role, computed on the fly.
fn cluster_role_rules(snapshot: &Snapshot, role: &Value) -> Vec<Rule> {
    if role.get("aggregationRule").is_some_and(|a| !a.is_null()) {
        aggregated(snapshot, role)
    } else {
        rules_of(role)
    }
}

/// What the aggregation controller would write into an aggregated ClusterRole: the
/// rules of every ClusterRole its selectors match (other than itself), deduplicated,
/// following aggregated roles transitively (so `admin` gets `edit` gets `view`).
fn aggregated(snapshot: &Snapshot, root: &Value) -> Vec<Rule> {
    let prefix = format!("/{RBAC_GROUP}/clusterroles/");
    let mut seen: HashSet<String> = HashSet::from([object_name(root).to_string()]);
    let mut queue: Vec<&Value> = vec![root];
    let mut out: Vec<Rule> = Vec::new();
    while let Some(aggregator) = queue.pop() {
        let selectors: Vec<&Value> = aggregator
            .pointer("/aggregationRule/clusterRoleSelectors")
            .and_then(Value::as_array)
            .map(|a| a.iter().collect())
            .unwrap_or_default();
        for selector in selectors {
            for kv in snapshot.range(&prefix, None) {
                let candidate = kv.kept();
                let name = object_name(candidate);
                if seen.contains(name) || !selector_matches(selector, candidate) {
                    continue;
                }
                seen.insert(name.to_string());
                if candidate
                    .get("aggregationRule")
                    .is_some_and(|a| !a.is_null())
                {
                    queue.push(candidate);
                } else {
                    for rule in rules_of(candidate) {
                        if !out.contains(&rule) {
                            out.push(rule);
                        }
                    }
                }
            }
        }
    }
    out
}

/// Whether a `metav1.LabelSelector` matches an object's labels (empty: everything).
fn selector_matches(selector: &Value, object: &Value) -> bool {
    let labels = object
        .pointer("/metadata/labels")
        .and_then(Value::as_object);
    let label = |k: &str| labels.and_then(|l| l.get(k)).and_then(Value::as_str);
    let labels_ok = selector
        .get("matchLabels")
        .and_then(Value::as_object)
        .is_none_or(|m| m.iter().all(|(k, v)| label(k) == v.as_str()));
    let expressions_ok = selector
        .get("matchExpressions")
        .and_then(Value::as_array)
        .is_none_or(|exprs| {
            exprs.iter().all(|e| {
                let key = str_field(e, "key");
                let values = strings(e, "values");
                match (str_field(e, "operator"), label(key)) {
                    ("In", Some(v)) => has(&values, v),
                    ("In", None) => false,
                    ("NotIn", Some(v)) => !has(&values, v),
                    ("NotIn", None) => true,
                    ("Exists", found) => found.is_some(),
                    ("DoesNotExist", found) => found.is_none(),
                    _ => false,
                }
            })
        });
    labels_ok && expressions_ok
}

/// The rules a ClusterRole grants, as JSON, if it has an `aggregationRule`: serve
/// these as its `rules` (kube's aggregation controller writes them into the object).
pub fn aggregated_rules(snapshot: &Snapshot, cluster_role: &Value) -> Option<Vec<Value>> {
    cluster_role
        .get("aggregationRule")
        .filter(|a| !a.is_null())
        .map(|_| {
            aggregated(snapshot, cluster_role)
                .iter()
                .map(Rule::to_value)
                .collect()
        })
}

// ---------------------------------------------------------------------------
// Authorization
// ---------------------------------------------------------------------------

/// Authorizes a request as kube-apiserver with `--authorization-mode=RBAC`:
/// members of `system:masters` may do anything; otherwise the request is allowed
/// when a rule of a Role or ClusterRole bound to the user (by name, group — every
/// user is in `system:authenticated` — or service account) matches it.
/// ClusterRoleBindings apply everywhere; RoleBindings only in their namespace.
/// kube-apiserver's bootstrap policy as a read-only snapshot, for servers
/// that store no RBAC objects of their own (the aggregated API server):
/// their callers get what the bootstrap roles grant — `system:monitoring`
/// may read `/metrics`, everyone `/healthz` and `/version` — and
/// `system:masters` everything.
pub fn bootstrap_snapshot() -> &'static Snapshot {
    static SNAPSHOT: std::sync::LazyLock<Snapshot> = std::sync::LazyLock::new(|| {
        let mut snapshot = Snapshot::empty();
        for (key, value) in bootstrap_policy() {
            let key: std::sync::Arc<str> = key.into();
            snapshot.map.insert(
                key.clone(),
                crate::storage::KeyValue::new(key, std::sync::Arc::new(value), 1),
            );
        }
        snapshot.revision = 1;
        snapshot
    });
    &SNAPSHOT
}

pub fn authorize(snapshot: &Snapshot, user: &User, attrs: &Attributes) -> Decision {
    let groups = effective_groups(user);
    if has(&groups, SYSTEM_MASTERS) {
        return Decision::allow("");
    }
    let mut allowed_by = None;
    let mut errors: Vec<String> = Vec::new();
    visit_rules(
        snapshot,
        &user.name,
        &groups,
        attrs.namespace_name(),
        &mut |v| match v {
            Visit::Rule { source, rule } => {
                if rule_allows(attrs, rule) {
                    allowed_by = Some(format!("RBAC: allowed by {source}"));
                    return false;
                }
                true
            }
            Visit::Error(e) => {
                if !errors.contains(&e) {
                    errors.push(e);
                }
                true
            }
        },
    );
    match allowed_by {
        Some(reason) => Decision::allow(reason),
        None if errors.is_empty() => Decision::deny(""),
        None => Decision::deny(format!("RBAC: {}", aggregate(&errors))),
    }
}

/// kube's error aggregate text: one error as is, several as `[a, b]`.
fn aggregate(errors: &[String]) -> String {
    match errors {
        [one] => one.clone(),
        many => format!("[{}]", many.join(", ")),
    }
}

/// The kube-apiserver text for a denied request (without the resource prefix):
/// `User "alice" cannot list resource "nodes" in API group "" at the cluster scope`.
pub fn forbidden_message(attrs: &Attributes, user: &User) -> String {
    let who = quote(&user.name);
    match attrs {
        Attributes::NonResource(n) => {
            format!("User {who} cannot {} path {}", n.verb, quote(&n.path))
        }
        Attributes::Resource(r) => {
            let resource = if r.subresource.is_empty() {
                r.resource.clone()
            } else {
                format!("{}/{}", r.resource, r.subresource)
            };
            let scope = if r.namespace.is_empty() {
                "at the cluster scope".to_string()
            } else {
                format!("in the namespace {}", quote(&r.namespace))
            };
            format!(
                "User {who} cannot {} resource {} in API group {} {scope}",
                r.verb,
                quote(&resource),
                quote(&r.group)
            )
        }
    }
}

/// The 403 `Status` kube-apiserver answers a denied request with, e.g.
/// `nodes is forbidden: User "alice" cannot list resource "nodes" in API group "" at
/// the cluster scope` (`reason`, when not empty, is appended after `: `), with
/// `details` {name, group, kind = resource}.
pub fn forbidden(attrs: &Attributes, user: &User, reason: &str) -> ApiError {
    let mut message = sanitize(&forbidden_message(attrs, user));
    if !reason.is_empty() {
        message = format!("{message}: {reason}");
    }
    let (group, resource, name) = match attrs {
        Attributes::Resource(r) => (r.group.as_str(), r.resource.as_str(), r.name.as_str()),
        Attributes::NonResource(_) => ("", "", ""),
    };
    forbidden_error(group, resource, name, &message)
}

/// kube's `NewForbidden(groupResource, name, err)`.
fn forbidden_error(group: &str, resource: &str, name: &str, message: &str) -> ApiError {
    let message = if group.is_empty() && resource.is_empty() {
        format!("forbidden: {message}")
    } else if name.is_empty() {
        format!("{} is forbidden: {message}", qualified(resource, group))
    } else {
        format!(
            "{} {} is forbidden: {message}",
            qualified(resource, group),
            quote(name)
        )
    };
    ApiError {
        code: 403,
        reason: "Forbidden",
        message,
        details: Some(Details {
            name: name.into(),
            group: group.into(),
            kind: resource.into(),
            ..Default::default()
        }),
    }
}

/// Escapes what could read as HTML, as kube does in Forbidden messages.
fn sanitize(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

/// A string quoted as Go's `%q` does.
fn quote(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\u{7}' => out.push_str("\\a"),
            '\u{8}' => out.push_str("\\b"),
            '\u{c}' => out.push_str("\\f"),
            '\u{b}' => out.push_str("\\v"),
            c if (c as u32) < 0x20 || c as u32 == 0x7f => {
                let _ = write!(out, "\\x{:02x}", c as u32);
            }
            c if c.is_control() => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// A string list as Go's `%q` prints it: `["a" "b"]`.
fn quote_list(items: &[String]) -> String {
    let quoted: Vec<String> = items.iter().map(|s| quote(s)).collect();
    format!("[{}]", quoted.join(" "))
}

// ---------------------------------------------------------------------------
// Service accounts
// ---------------------------------------------------------------------------

/// `system:serviceaccount:NS:NAME`.
pub fn service_account_username(namespace: &str, name: &str) -> String {
    format!("{SERVICE_ACCOUNT_USER_PREFIX}{namespace}:{name}")
}

/// `(namespace, name)` of a service-account user name, if it is one (a DNS label
/// namespace and a DNS subdomain name, as kube validates).
pub fn split_service_account_username(user: &str) -> Option<(&str, &str)> {
    let (namespace, name) = user
        .strip_prefix(SERVICE_ACCOUNT_USER_PREFIX)?
        .split_once(':')?;
    let valid = crate::registry::meta::is_dns_label(namespace)
        && crate::registry::meta::is_dns_subdomain(name);
    valid.then_some((namespace, name))
}

/// The groups of a service account: `system:serviceaccounts`,
/// `system:serviceaccounts:NS` (the authenticator adds `system:authenticated`).
pub fn service_account_groups(namespace: &str) -> Vec<String> {
    vec![
        SERVICE_ACCOUNTS_GROUP.to_string(),
        format!("{SERVICE_ACCOUNTS_GROUP}:{namespace}"),
    ]
}

/// The user a service-account token authenticates as.
pub fn service_account_user(namespace: &str, name: &str, uid: &str) -> User {
    let mut groups = service_account_groups(namespace);
    groups.push(ALL_AUTHENTICATED.to_string());
    User {
        name: service_account_username(namespace, name),
        uid: uid.to_string(),
        groups,
        extra: Default::default(),
    }
}

// ---------------------------------------------------------------------------
// Impersonation
// ---------------------------------------------------------------------------

/// The result of impersonation headers: the user to act as, and the user extras
/// (`Impersonate-Extra-KEY`, key lower-cased, then percent-decoded), which [`User`]
/// does not carry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Impersonated {
    /// The impersonated user.
    pub user: User,
    /// Extra fields, key → values.
    pub extra: BTreeMap<String, Vec<String>>,
}

/// [`impersonate_with_extra`] without the extras.
pub fn impersonate(
    snapshot: &Snapshot,
    user: &User,
    headers: &http::HeaderMap,
) -> Result<Option<User>, ApiError> {
    impersonate_with_extra(snapshot, user, headers).map(|i| i.map(|i| i.user))
}

/// Applies `Impersonate-User`, `Impersonate-Group` (repeatable), `Impersonate-Uid`
/// and `Impersonate-Extra-*` as kube-apiserver does: `Ok(None)` without such
/// headers; otherwise each requested value must be allowed to `user` by the
/// `impersonate` verb — on `users`, `groups`, `serviceaccounts` (in the account's
/// namespace, for a `system:serviceaccount:NS:NAME` user), `uids` and
/// `userextras/KEY` (the last two in group `authentication.k8s.io`) — checked in that
/// order, the first denial answering 403 as kube words it. The new user's groups are
/// the ones given (a service account's own groups when none are) plus
/// `system:authenticated`. Groups, extras or a uid without a user are a 500, as in kube.
/// The caller removes the headers before passing the request on.
pub fn impersonate_with_extra(
    snapshot: &Snapshot,
    user: &User,
    headers: &http::HeaderMap,
) -> Result<Option<Impersonated>, ApiError> {
    let text = |v: &http::HeaderValue| String::from_utf8_lossy(v.as_bytes()).into_owned();
    let requested_user = headers.get(IMPERSONATE_USER).map(text).unwrap_or_default();
    let requested_groups: Vec<String> = headers
        .get_all(IMPERSONATE_GROUP)
        .iter()
        .map(text)
        .collect();
    let mut extras: Vec<(String, String)> = Vec::new();
    for (name, value) in headers {
        if let Some(key) = name.as_str().strip_prefix(IMPERSONATE_EXTRA_PREFIX) {
            let key = crate::endpoints::request_info::percent_decode(key, false);
            extras.push((key, text(value)));
        }
    }
    let requested_uid = headers.get(IMPERSONATE_UID).map(text).unwrap_or_default();
    if requested_user.is_empty() {
        if requested_groups.is_empty() && extras.is_empty() && requested_uid.is_empty() {
            return Ok(None);
        }
        let mut asked: Vec<String> = requested_groups
            .iter()
            .map(|g| format!("Group {}", quote(g)))
            .collect();
        asked.extend(
            extras
                .iter()
                .map(|(k, v)| format!("UserExtra {}={}", quote(k), quote(v))),
        );
        if !requested_uid.is_empty() {
            asked.push(format!("UID {}", quote(&requested_uid)));
        }
        return Err(ApiError::internal(format!(
            "requested [{}] without impersonating a user",
            asked.join(", ")
        )));
    }

    let check = |attrs: Attributes| -> Result<(), ApiError> {
        let decision = authorize(snapshot, user, &attrs);
        if decision.allowed {
            Ok(())
        } else {
            Err(forbidden(&attrs, user, &decision.reason))
        }
    };
    let mut groups: Vec<String> = Vec::new();
    match split_service_account_username(&requested_user) {
        Some((namespace, name)) => {
            check(
                Attributes::resource("impersonate", "", "serviceaccounts")
                    .namespace(namespace)
                    .name(name),
            )?;
            if requested_groups.is_empty() {
                groups = service_account_groups(namespace);
            }
        }
        None => check(Attributes::resource("impersonate", "", "users").name(&requested_user))?,
    }
    for group in &requested_groups {
        check(Attributes::resource("impersonate", "", "groups").name(group))?;
        groups.push(group.clone());
    }
    let mut extra: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for (key, value) in extras {
        check(
            Attributes::resource("impersonate", "authentication.k8s.io", "userextras")
                .subresource(&key)
                .name(&value),
        )?;
        extra.entry(key).or_default().push(value);
    }
    if !requested_uid.is_empty() {
        check(
            Attributes::resource("impersonate", "authentication.k8s.io", "uids")
                .name(&requested_uid),
        )?;
    }

    if requested_user == ANONYMOUS {
        if !has(&groups, ALL_UNAUTHENTICATED) {
            groups.push(ALL_UNAUTHENTICATED.to_string());
        }
    } else if !has(&groups, ALL_AUTHENTICATED) && !has(&groups, ALL_UNAUTHENTICATED) {
        groups.push(ALL_AUTHENTICATED.to_string());
    }
    Ok(Some(Impersonated {
        user: User {
            name: requested_user,
            uid: requested_uid,
            groups,
            extra: extra.clone(),
        },
        extra,
    }))
}

/// Removes every `Impersonate-*` header, as kube does before handling an
/// impersonated request.
pub fn strip_impersonation_headers(headers: &mut http::HeaderMap) {
    let names: Vec<http::HeaderName> = headers
        .keys()
        .filter(|n| n.as_str().starts_with("impersonate-"))
        .cloned()
        .collect();
    for name in names {
        headers.remove(name);
    }
}

// ---------------------------------------------------------------------------
// Escalation prevention
// ---------------------------------------------------------------------------

/// The rules granted to a user in `namespace` (`""`: cluster-wide only), and the
/// errors met resolving bindings. Members of `system:masters` get `*` rules first,
/// as kube's privileged-group authorizer reports.
fn rules_for(snapshot: &Snapshot, user: &User, namespace: &str) -> (Vec<Rule>, Vec<String>) {
    let groups = effective_groups(user);
    let mut rules = Vec::new();
    if has(&groups, SYSTEM_MASTERS) {
        rules.push(Rule {
            verbs: vec!["*".into()],
            api_groups: vec!["*".into()],
            resources: vec!["*".into()],
            ..Default::default()
        });
        rules.push(Rule {
            verbs: vec!["*".into()],
            non_resource_urls: vec!["*".into()],
            ..Default::default()
        });
    }
    let mut errors = Vec::new();
    visit_rules(snapshot, &user.name, &groups, namespace, &mut |v| {
        match v {
            Visit::Rule { rule, .. } => rules.push(rule.clone()),
            Visit::Error(e) => errors.push(e),
        }
        true
    });
    (rules, errors)
}

/// kube's `BreakdownRule`: one rule per group × resource × verb (× name), and per
/// URL × verb.
fn breakdown(rule: &Rule) -> Vec<Rule> {
    let one = |s: &String| vec![s.clone()];
    let mut out = Vec::new();
    for group in &rule.api_groups {
        for resource in &rule.resources {
            for verb in &rule.verbs {
                let base = Rule {
                    api_groups: one(group),
                    resources: one(resource),
                    verbs: one(verb),
                    ..Default::default()
                };
                if rule.resource_names.is_empty() {
                    out.push(base);
                } else {
                    for name in &rule.resource_names {
                        out.push(Rule {
                            resource_names: one(name),
                            ..base.clone()
                        });
                    }
                }
            }
        }
    }
    for url in &rule.non_resource_urls {
        for verb in &rule.verbs {
            out.push(Rule {
                non_resource_urls: one(url),
                verbs: one(verb),
                ..Default::default()
            });
        }
    }
    out
}

/// kube's `ruleCovers`: whether `owner` grants everything `sub` does.
fn rule_covers(owner: &Rule, sub: &Rule) -> bool {
    let has_all = |set: &[String], items: &[String]| items.iter().all(|i| has(set, i));
    let verbs = has(&owner.verbs, "*") || has_all(&owner.verbs, &sub.verbs);
    let groups = has(&owner.api_groups, "*") || has_all(&owner.api_groups, &sub.api_groups);
    let resources = has(&owner.resources, "*")
        || sub.resources.iter().all(|r| {
            has(&owner.resources, r)
                || r.split_once('/')
                    .is_some_and(|(_, sub)| has(&owner.resources, &format!("*/{sub}")))
        });
    let urls = sub.non_resource_urls.iter().all(|path| {
        owner
            .non_resource_urls
            .iter()
            .any(|o| o == path || (o.ends_with('*') && path.starts_with(o.trim_end_matches('*'))))
    });
    let names = if sub.resource_names.is_empty() {
        owner.resource_names.is_empty()
    } else {
        owner.resource_names.is_empty() || has_all(&owner.resource_names, &sub.resource_names)
    };
    verbs && groups && resources && urls && names
}

/// kube's `CompactRules`: simple rules on one group and resource merge their verbs.
fn compact(rules: Vec<Rule>) -> Vec<Rule> {
    let mut out: Vec<Rule> = Vec::new();
    for rule in rules {
        let simple = rule.api_groups.len() == 1
            && rule.resources.len() == 1
            && rule.resource_names.is_empty()
            && rule.non_resource_urls.is_empty();
        let existing = out.iter_mut().find(|r| {
            simple
                && r.resource_names.is_empty()
                && r.non_resource_urls.is_empty()
                && r.api_groups == rule.api_groups
                && r.resources == rule.resources
        });
        match existing {
            Some(r) => r.verbs.extend(rule.verbs),
            None => out.push(rule),
        }
    }
    out
}

/// kube's `ConfirmNoEscalation`: the user must already hold every rule it grants.
fn confirm_no_escalation(
    snapshot: &Snapshot,
    user: &User,
    namespace: &str,
    rules: &[Rule],
) -> Result<(), String> {
    let (owned, errors) = rules_for(snapshot, user, namespace);
    let missing: Vec<Rule> = rules
        .iter()
        .flat_map(breakdown)
        .filter(|sub| !owned.iter().any(|o| rule_covers(o, sub)))
        .collect();
    if missing.is_empty() {
        return Ok(());
    }
    let mut lines: Vec<String> = compact(missing).iter().map(Rule::compact_string).collect();
    lines.sort();
    lines.dedup();
    let mut msg = format!(
        "user {} (groups={}) is attempting to grant RBAC permissions not currently held:\n{}",
        quote(&user.name),
        quote_list(&effective_groups(user)),
        lines.join("\n")
    );
    if !errors.is_empty() {
        msg.push_str(&format!("; resolution errors: [{}]", aggregate(&errors)));
    }
    Err(msg)
}

/// Kubernetes' escalation prevention for a create or update of a Role, ClusterRole,
/// RoleBinding or ClusterRoleBinding (`attrs` is the request, `object` the new
/// object; other resources pass). Members of `system:masters` pass. A role passes if
/// the user may `escalate` it or already holds every rule in it (an
/// `aggregationRule` needs cluster-admin rights); a binding passes if the user may
/// `bind` the referenced role or already holds all its rules. Failures are 403s as
/// kube words them.
pub fn check_rbac_write(
    snapshot: &Snapshot,
    user: &User,
    attrs: &Attributes,
    object: &Value,
) -> Result<(), ApiError> {
    let Attributes::Resource(request) = attrs else {
        return Ok(());
    };
    if request.group != RBAC_GROUP || has(&effective_groups(user), SYSTEM_MASTERS) {
        return Ok(());
    }
    let name = object_name(object);
    let namespace = object
        .pointer("/metadata/namespace")
        .and_then(Value::as_str)
        .unwrap_or(&request.namespace);
    let resource = request.resource.as_str();
    let deny = |message: String| forbidden_error(RBAC_GROUP, resource, name, &message);
    match resource {
        "roles" | "clusterroles" => {
            let escalate = Attributes::resource("escalate", RBAC_GROUP, resource)
                .version("*")
                .namespace(&request.namespace)
                .name(&request.name);
            if authorize(snapshot, user, &escalate).allowed {
                return Ok(());
            }
            let namespace = if resource == "roles" { namespace } else { "" };
            confirm_no_escalation(snapshot, user, namespace, &rules_of(object)).map_err(deny)?;
            if resource == "clusterroles"
                && object.get("aggregationRule").is_some_and(|a| !a.is_null())
            {
                let full = [
                    Rule {
                        verbs: vec!["*".into()],
                        api_groups: vec!["*".into()],
                        resources: vec!["*".into()],
                        ..Default::default()
                    },
                    Rule {
                        verbs: vec!["*".into()],
                        non_resource_urls: vec!["*".into()],
                        ..Default::default()
                    },
                ];
                confirm_no_escalation(snapshot, user, "", &full).map_err(|_| {
                    deny("must have cluster-admin privileges to use the aggregationRule".into())
                })?;
            }
            Ok(())
        }
        "rolebindings" | "clusterrolebindings" => {
            let namespace = if resource == "rolebindings" {
                namespace
            } else {
                ""
            };
            let reference = object.get("roleRef").unwrap_or(&Value::Null);
            let (kind, role) = role_ref(object);
            let bind_resource = match kind {
                "ClusterRole" => Some("clusterroles"),
                "Role" => Some("roles"),
                _ => None,
            };
            if let Some(bind_resource) = bind_resource {
                let bind =
                    Attributes::resource("bind", str_field(reference, "apiGroup"), bind_resource)
                        .namespace(namespace)
                        .name(role);
                if authorize(snapshot, user, &bind).allowed {
                    return Ok(());
                }
            }
            let rules = role_ref_rules(snapshot, kind, role, namespace).map_err(deny)?;
            confirm_no_escalation(snapshot, user, namespace, &rules).map_err(deny)
        }
        _ => Ok(()),
    }
}

// ---------------------------------------------------------------------------
// Self reviews
// ---------------------------------------------------------------------------

/// Answers an authorization.k8s.io/v1 `SelfSubjectAccessReview` (`kubectl auth
/// can-i`): the review echoed back with `status.allowed` (and `reason` when there is
/// one) for `spec.resourceAttributes` or `spec.nonResourceAttributes`. A spec with
/// neither or both is 422 Invalid, as in kube.
pub fn self_subject_access_review(
    snapshot: &Snapshot,
    user: &User,
    body: &Value,
) -> Result<Value, ApiError> {
    let spec = body.get("spec").unwrap_or(&Value::Null);
    let attrs = access_review_attributes("SelfSubjectAccessReview", spec)?;
    Ok(access_review_answer(
        snapshot,
        user,
        &attrs,
        body,
        "SelfSubjectAccessReview",
    ))
}

/// Answers an authorization.k8s.io/v1 `SubjectAccessReview` (cluster scope,
/// `namespace` none) or `LocalSubjectAccessReview` (in `namespace`): may the user
/// of `spec.user`, `spec.groups` and `spec.uid` do what the spec asks? At least one
/// of user or groups is required; a local review asks about resources in its own
/// namespace only, as in kube.
pub fn subject_access_review(
    snapshot: &Snapshot,
    body: &Value,
    namespace: Option<&str>,
) -> Result<Value, ApiError> {
    let kind = if namespace.is_some() {
        "LocalSubjectAccessReview"
    } else {
        "SubjectAccessReview"
    };
    let spec = body.get("spec").unwrap_or(&Value::Null);
    let user = User {
        name: str_field(spec, "user").to_string(),
        uid: str_field(spec, "uid").to_string(),
        groups: strings(spec, "groups"),
        extra: Default::default(),
    };
    if user.name.is_empty() && user.groups.is_empty() {
        return Err(ApiError::invalid(
            "authorization.k8s.io",
            kind,
            "",
            vec![Cause::new(
                "FieldValueInvalid",
                "spec.user",
                "Invalid value: \"\": at least one of user or group must be specified",
            )],
        ));
    }
    let mut body = body.clone();
    if let Some(namespace) = namespace {
        if spec
            .get("nonResourceAttributes")
            .is_some_and(|v| !v.is_null())
        {
            return Err(review_invalid(
                kind,
                "spec.nonResourceAttributes",
                "disallowed on this kind of request",
            ));
        }
        let object_namespace = body
            .pointer("/metadata/namespace")
            .and_then(Value::as_str)
            .unwrap_or("");
        if !object_namespace.is_empty() && object_namespace != namespace {
            return Err(ApiError::bad_request(
                "the namespace of the provided object does not match the namespace sent on the request",
            ));
        }
        if body
            .pointer("/spec/resourceAttributes/namespace")
            .and_then(Value::as_str)
            != Some(namespace)
        {
            return Err(ApiError::bad_request(format!(
                "spec.resourceAttributes.namespace must match namespace: {namespace}"
            )));
        }
        if !body.get("metadata").is_some_and(Value::is_object) {
            body["metadata"] = json!({});
        }
        body["metadata"]["namespace"] = namespace.into();
    }
    let attrs = access_review_attributes(kind, spec)?;
    Ok(access_review_answer(snapshot, &user, &attrs, &body, kind))
}

/// The attributes an access review's spec asks about: `resourceAttributes` or
/// `nonResourceAttributes`. Neither or both is 422 Invalid, as in kube.
fn access_review_attributes(kind: &str, spec: &Value) -> Result<Attributes, ApiError> {
    let present = |f: &str| spec.get(f).filter(|v| !v.is_null());
    match (
        present("resourceAttributes"),
        present("nonResourceAttributes"),
    ) {
        (Some(r), None) => Ok(Attributes::Resource(ResourceAttributes {
            verb: str_field(r, "verb").into(),
            group: str_field(r, "group").into(),
            version: str_field(r, "version").into(),
            resource: str_field(r, "resource").into(),
            subresource: str_field(r, "subresource").into(),
            namespace: str_field(r, "namespace").into(),
            name: str_field(r, "name").into(),
        })),
        (None, Some(n)) => Ok(Attributes::non_resource(
            str_field(n, "verb"),
            str_field(n, "path"),
        )),
        (Some(_), Some(_)) => Err(review_invalid(
            kind,
            "spec.nonResourceAttributes",
            "cannot be specified in combination with resourceAttributes",
        )),
        (None, None) => Err(review_invalid(
            kind,
            "spec.resourceAttributes",
            "exactly one of nonResourceAttributes or resourceAttributes must be specified",
        )),
    }
}

/// The review echoed back with `status.allowed` (and `reason` when there is one).
fn access_review_answer(
    snapshot: &Snapshot,
    user: &User,
    attrs: &Attributes,
    body: &Value,
    kind: &str,
) -> Value {
    let decision = authorize(snapshot, user, attrs);
    let mut status = json!({"allowed": decision.allowed});
    if !decision.reason.is_empty() {
        status["reason"] = decision.reason.into();
    }
    let mut review = review_envelope(body, "authorization.k8s.io/v1", kind);
    review["status"] = status;
    review
}

/// Answers an authorization.k8s.io/v1 `SelfSubjectRulesReview` (`kubectl auth can-i
/// --list`): the rules the user holds in `spec.namespace`. No namespace is a 400, as
/// in kube.
pub fn self_subject_rules_review(
    snapshot: &Snapshot,
    user: &User,
    body: &Value,
) -> Result<Value, ApiError> {
    let namespace = body
        .pointer("/spec/namespace")
        .and_then(Value::as_str)
        .unwrap_or("");
    if namespace.is_empty() {
        return Err(ApiError::bad_request("no namespace on request"));
    }
    let (rules, errors) = rules_for(snapshot, user, namespace);
    let mut resource_rules = Vec::new();
    let mut non_resource_rules = Vec::new();
    for rule in &rules {
        if !rule.resources.is_empty() {
            let mut r = json!({"verbs": rule.verbs});
            for (k, list) in [
                ("apiGroups", &rule.api_groups),
                ("resources", &rule.resources),
                ("resourceNames", &rule.resource_names),
            ] {
                if !list.is_empty() {
                    r[k] = json!(list);
                }
            }
            resource_rules.push(r);
        }
        if !rule.non_resource_urls.is_empty() {
            non_resource_rules
                .push(json!({"verbs": rule.verbs, "nonResourceURLs": rule.non_resource_urls}));
        }
    }
    let mut status = json!({
        "resourceRules": resource_rules,
        "nonResourceRules": non_resource_rules,
        "incomplete": !errors.is_empty(),
    });
    if !errors.is_empty() {
        status["evaluationError"] = aggregate(&errors).into();
    }
    let mut review = review_envelope(body, "authorization.k8s.io/v1", "SelfSubjectRulesReview");
    review["status"] = status;
    Ok(review)
}

/// Answers an authentication.k8s.io/v1 `SelfSubjectReview` (`kubectl auth whoami`).
pub fn self_subject_review(user: &User) -> Value {
    let mut user_info = json!({"username": user.name});
    if !user.uid.is_empty() {
        user_info["uid"] = user.uid.clone().into();
    }
    if !user.groups.is_empty() {
        user_info["groups"] = json!(user.groups);
    }
    if !user.extra.is_empty() {
        user_info["extra"] = json!(user.extra);
    }
    json!({
        "apiVersion": "authentication.k8s.io/v1",
        "kind": "SelfSubjectReview",
        "metadata": {"creationTimestamp": null},
        "status": {"userInfo": user_info},
    })
}

/// The request echoed back as the response object.
pub(crate) fn review_envelope(body: &Value, api_version: &str, kind: &str) -> Value {
    let mut review = match body {
        Value::Object(_) => body.clone(),
        _ => json!({}),
    };
    review["apiVersion"] = api_version.into();
    review["kind"] = kind.into();
    if !review.get("metadata").is_some_and(Value::is_object) {
        review["metadata"] = json!({});
    }
    if review.pointer("/metadata/creationTimestamp").is_none() {
        review["metadata"]["creationTimestamp"] = Value::Null;
    }
    review
}

fn review_invalid(kind: &str, field: &str, message: &str) -> ApiError {
    ApiError::invalid(
        "authorization.k8s.io",
        kind,
        "",
        vec![Cause::new(
            "FieldValueInvalid",
            field,
            format!("Invalid value: \"null\": {message}"),
        )],
    )
}
