//! Policy matching: which (Cluster)PropagationPolicy claims a resource
//! template, and in which order OverridePolicies apply. Mirrors Karmada's
//! `pkg/util/selector.go` (`ResourceSelectorPriority`), `pkg/detector/compare.go`
//! (`getHighestPriorityPropagationPolicy`) and the ordering in
//! `pkg/util/overridemanager/overridemanager.go`.
//!
//! Start at [`select_propagation_policy`]. Templates are taken as raw JSON
//! (what controllers hold as a `DynamicObject`) through [`Template`].

use std::collections::BTreeMap;

use serde_json::Value;

use crate::labels::selector_matches;
use crate::policy::{
    ClusterPropagationPolicy, PropagationPolicy, PropagationSpec, ResourceSelector,
};

/// How specifically a selector matches a template (Karmada `ImplicitPriority`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum ImplicitPriority {
    /// No match.
    MisMatch = 0,
    /// Matched by apiVersion/kind only.
    MatchAll = 1,
    /// Matched by label selector.
    MatchLabelSelector = 2,
    /// Matched by name.
    MatchName = 3,
}

/// The identifying fields of a resource template.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Template {
    /// apiVersion.
    pub api_version: String,
    /// Kind.
    pub kind: String,
    /// Namespace (empty when cluster-scoped).
    pub namespace: String,
    /// Name.
    pub name: String,
    /// Labels.
    pub labels: BTreeMap<String, String>,
}

impl Template {
    /// Reads apiVersion, kind, namespace, name and labels from an object.
    pub fn from_value(obj: &Value) -> Self {
        let s = |p: &str| {
            obj.pointer(p)
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_string()
        };
        let labels = obj
            .pointer("/metadata/labels")
            .and_then(Value::as_object)
            .map(|m| {
                m.iter()
                    .filter_map(|(k, v)| v.as_str().map(|v| (k.clone(), v.to_string())))
                    .collect()
            })
            .unwrap_or_default();
        Template {
            api_version: s("/apiVersion"),
            kind: s("/kind"),
            namespace: s("/metadata/namespace"),
            name: s("/metadata/name"),
            labels,
        }
    }
}

/// How `selector` matches `template` (Karmada `ResourceSelectorPriority`):
/// apiVersion and kind compared as strings, selector namespace (if set) must
/// equal the template's; then name (label selector ignored), no label selector
/// (match all), or label selector.
pub fn resource_selector_priority(
    template: &Template,
    selector: &ResourceSelector,
) -> ImplicitPriority {
    if template.api_version != selector.api_version
        || template.kind != selector.kind
        || (!selector.namespace.is_empty() && template.namespace != selector.namespace)
    {
        return ImplicitPriority::MisMatch;
    }
    if !selector.name.is_empty() {
        return if selector.name == template.name {
            ImplicitPriority::MatchName
        } else {
            ImplicitPriority::MisMatch
        };
    }
    match &selector.label_selector {
        None => ImplicitPriority::MatchAll,
        Some(ls) if selector_matches(ls, &template.labels) => ImplicitPriority::MatchLabelSelector,
        Some(_) => ImplicitPriority::MisMatch,
    }
}

/// The best priority over several selectors (Karmada `ResourceMatchSelectorsPriority`).
pub fn selectors_priority(template: &Template, selectors: &[ResourceSelector]) -> ImplicitPriority {
    selectors
        .iter()
        .map(|s| resource_selector_priority(template, s))
        .max()
        .unwrap_or(ImplicitPriority::MisMatch)
}

/// Whether any selector matches (Karmada `ResourceMatchSelectors`).
pub fn selectors_match(template: &Template, selectors: &[ResourceSelector]) -> bool {
    selectors_priority(template, selectors) > ImplicitPriority::MisMatch
}

/// Picks the policy with the highest explicit priority (nil = 0), then the
/// highest implicit priority, then the smallest name; `None` if nothing
/// matches (Karmada `getHighestPriorityPropagationPolicy`). Candidates are
/// `(name, spec)` pairs; policies being deleted should be left out by the caller
/// or are skipped when `deleting` says so.
pub fn highest_priority<'a, T>(
    policies: impl IntoIterator<Item = (&'a str, &'a PropagationSpec, T)>,
    template: &Template,
) -> Option<T> {
    let mut best: Option<(i32, ImplicitPriority, &'a str, T)> = None;
    for (name, spec, item) in policies {
        let implicit = selectors_priority(template, &spec.resource_selectors);
        if implicit == ImplicitPriority::MisMatch {
            continue;
        }
        let explicit = spec.priority.unwrap_or(0);
        let better = match &best {
            None => true,
            Some((be, bi, bn, _)) => {
                explicit > *be
                    || (explicit == *be && (implicit > *bi || (implicit == *bi && name < *bn)))
            }
        };
        if better {
            best = Some((explicit, implicit, name, item));
        }
    }
    best.map(|(_, _, _, item)| item)
}

/// Which policy claims a template first: the best PropagationPolicy in the
/// template's namespace (namespaced templates only), else the best
/// ClusterPropagationPolicy (Karmada detector order). Policies with a
/// deletionTimestamp are skipped.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Claim<'a> {
    /// Claimed by a PropagationPolicy.
    Propagation(&'a PropagationPolicy),
    /// Claimed by a ClusterPropagationPolicy.
    ClusterPropagation(&'a ClusterPropagationPolicy),
}

/// See [`Claim`]: PropagationPolicies of the template's namespace first, then
/// ClusterPropagationPolicies, each by [`highest_priority`].
pub fn select_propagation_policy<'a>(
    template: &Template,
    pps: &'a [PropagationPolicy],
    cpps: &'a [ClusterPropagationPolicy],
) -> Option<Claim<'a>> {
    if !template.namespace.is_empty() {
        let candidates = pps
            .iter()
            .filter(|p| p.metadata.deletion_timestamp.is_none())
            .filter(|p| p.metadata.namespace.as_deref().unwrap_or_default() == template.namespace)
            .map(|p| (p.metadata.name.as_deref().unwrap_or_default(), &p.spec, p));
        if let Some(p) = highest_priority(candidates, template) {
            return Some(Claim::Propagation(p));
        }
    }
    let candidates = cpps
        .iter()
        .filter(|p| p.metadata.deletion_timestamp.is_none())
        .map(|p| (p.metadata.name.as_deref().unwrap_or_default(), &p.spec.0, p));
    highest_priority(candidates, template).map(Claim::ClusterPropagation)
}

/// The policy that takes a claimed template over by preemption, if any
/// (Karmada's `PropagationPolicyPreemption`, with `preemption: Always` on the
/// preempting policy): a PropagationPolicy of the template's namespace
/// preempts a PropagationPolicy of lower explicit priority, and any
/// ClusterPropagationPolicy whatever its priority; a ClusterPropagationPolicy
/// preempts only a ClusterPropagationPolicy of lower explicit priority.
/// Among several, the best by [`highest_priority`] wins, PropagationPolicies
/// first. `claimed` is the policy now claiming the template.
pub fn preempting_policy<'a>(
    template: &Template,
    claimed: &Claim<'_>,
    pps: &'a [PropagationPolicy],
    cpps: &'a [ClusterPropagationPolicy],
) -> Option<Claim<'a>> {
    let preempts = |spec: &PropagationSpec| spec.preemption == "Always";
    let (claimed_is_pp, claimed_name, claimed_ns, claimed_priority) = match claimed {
        Claim::Propagation(p) => (
            true,
            p.metadata.name.as_deref().unwrap_or_default(),
            p.metadata.namespace.as_deref().unwrap_or_default(),
            p.spec.priority.unwrap_or(0),
        ),
        Claim::ClusterPropagation(p) => (
            false,
            p.metadata.name.as_deref().unwrap_or_default(),
            "",
            p.spec.0.priority.unwrap_or(0),
        ),
    };
    if !template.namespace.is_empty() {
        let candidates = pps
            .iter()
            .filter(|p| p.metadata.deletion_timestamp.is_none() && preempts(&p.spec))
            .filter(|p| p.metadata.namespace.as_deref().unwrap_or_default() == template.namespace)
            .filter(|p| {
                let name = p.metadata.name.as_deref().unwrap_or_default();
                !claimed_is_pp
                    || ((name, template.namespace.as_str()) != (claimed_name, claimed_ns)
                        && p.spec.priority.unwrap_or(0) > claimed_priority)
            })
            .map(|p| (p.metadata.name.as_deref().unwrap_or_default(), &p.spec, p));
        if let Some(p) = highest_priority(candidates, template) {
            return Some(Claim::Propagation(p));
        }
    }
    if claimed_is_pp {
        return None;
    }
    let candidates = cpps
        .iter()
        .filter(|p| p.metadata.deletion_timestamp.is_none() && preempts(&p.spec.0))
        .filter(|p| {
            p.metadata.name.as_deref().unwrap_or_default() != claimed_name
                && p.spec.0.priority.unwrap_or(0) > claimed_priority
        })
        .map(|p| (p.metadata.name.as_deref().unwrap_or_default(), &p.spec.0, p));
    highest_priority(candidates, template).map(Claim::ClusterPropagation)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testutil::yaml;

    fn deployment(name: &str, ns: &str, labels: &[(&str, &str)]) -> Template {
        Template {
            api_version: "apps/v1".into(),
            kind: "Deployment".into(),
            namespace: ns.into(),
            name: name.into(),
            labels: labels
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        }
    }

    fn sel(s: &str) -> ResourceSelector {
        yaml(s)
    }

    #[test]
    fn selector_priority_table() {
        let t = deployment("nginx", "default", &[("app", "nginx")]);
        let cases: &[(&str, &str, ImplicitPriority)] = &[
            (
                "api version mismatch",
                "{apiVersion: apps/v2, kind: Deployment}",
                ImplicitPriority::MisMatch,
            ),
            (
                "kind mismatch",
                "{apiVersion: apps/v1, kind: StatefulSet}",
                ImplicitPriority::MisMatch,
            ),
            (
                "namespace mismatch",
                "{apiVersion: apps/v1, kind: Deployment, namespace: other}",
                ImplicitPriority::MisMatch,
            ),
            (
                "namespace unset, name matched",
                "{apiVersion: apps/v1, kind: Deployment, name: nginx}",
                ImplicitPriority::MatchName,
            ),
            (
                "name not matched",
                "{apiVersion: apps/v1, kind: Deployment, name: web}",
                ImplicitPriority::MisMatch,
            ),
            (
                "name matched, labels not matched and ignored",
                "{apiVersion: apps/v1, kind: Deployment, name: nginx, labelSelector: {matchLabels: {app: web}}}",
                ImplicitPriority::MatchName,
            ),
            (
                "name not matched, labels matched",
                "{apiVersion: apps/v1, kind: Deployment, name: web, labelSelector: {matchLabels: {app: nginx}}}",
                ImplicitPriority::MisMatch,
            ),
            (
                "labels not matched",
                "{apiVersion: apps/v1, kind: Deployment, labelSelector: {matchLabels: {app: web}}}",
                ImplicitPriority::MisMatch,
            ),
            (
                "labels matched",
                "{apiVersion: apps/v1, kind: Deployment, labelSelector: {matchLabels: {app: nginx}}}",
                ImplicitPriority::MatchLabelSelector,
            ),
            (
                "match all",
                "{apiVersion: apps/v1, kind: Deployment}",
                ImplicitPriority::MatchAll,
            ),
            (
                "labels error",
                "{apiVersion: apps/v1, kind: Deployment, labelSelector: {matchExpressions: [{key: app, operator: Foo}]}}",
                ImplicitPriority::MisMatch,
            ),
            (
                "same namespace",
                "{apiVersion: apps/v1, kind: Deployment, namespace: default}",
                ImplicitPriority::MatchAll,
            ),
        ];
        for (name, s, want) in cases {
            assert_eq!(resource_selector_priority(&t, &sel(s)), *want, "{name}");
        }
    }

    #[test]
    fn selectors_priority_takes_max() {
        let t = deployment("nginx", "default", &[]);
        let all = sel("{apiVersion: apps/v1, kind: Deployment}");
        let by_name = sel("{apiVersion: apps/v1, kind: Deployment, name: nginx}");
        let miss = sel("{apiVersion: v1, kind: Service}");
        assert_eq!(selectors_priority(&t, &[]), ImplicitPriority::MisMatch);
        assert_eq!(
            selectors_priority(&t, &[all.clone(), all.clone()]),
            ImplicitPriority::MatchAll
        );
        assert_eq!(
            selectors_priority(&t, &[all.clone(), by_name.clone()]),
            ImplicitPriority::MatchName
        );
        assert_eq!(
            selectors_priority(&t, &[by_name, all.clone()]),
            ImplicitPriority::MatchName
        );
        assert!(selectors_match(&t, &[miss.clone(), all]));
        assert!(!selectors_match(&t, &[miss]));
    }

    fn pp(name: &str, priority: Option<i32>, selector: &str) -> PropagationPolicy {
        let mut p: PropagationPolicy = yaml(&format!(
            "apiVersion: policy.karmada.io/v1alpha1\nkind: PropagationPolicy\nmetadata: {{name: {name}, namespace: default}}\nspec:\n  resourceSelectors: [{selector}]"
        ));
        p.spec.priority = priority;
        p
    }

    fn claimed_name(c: Option<Claim<'_>>) -> String {
        match c {
            Some(Claim::Propagation(p)) => p.metadata.name.clone().unwrap_or_default(),
            Some(Claim::ClusterPropagation(p)) => {
                format!("cpp:{}", p.metadata.name.clone().unwrap_or_default())
            }
            None => "none".into(),
        }
    }

    #[test]
    fn name_beats_label_at_equal_priority() {
        let t = deployment("nginx", "default", &[("app", "nginx")]);
        let pps = vec![
            pp(
                "a",
                Some(0),
                "{apiVersion: apps/v1, kind: Deployment, labelSelector: {matchLabels: {app: nginx}}}",
            ),
            pp(
                "b",
                Some(0),
                "{apiVersion: apps/v1, kind: Deployment, name: nginx}",
            ),
        ];
        assert_eq!(claimed_name(select_propagation_policy(&t, &pps, &[])), "b");
    }

    #[test]
    fn explicit_priority_wins_over_specificity() {
        let t = deployment("nginx", "default", &[("app", "nginx")]);
        let pps = vec![
            pp(
                "a",
                Some(0),
                "{apiVersion: apps/v1, kind: Deployment, labelSelector: {matchLabels: {app: nginx}}}",
            ),
            pp(
                "b",
                Some(-1),
                "{apiVersion: apps/v1, kind: Deployment, name: nginx}",
            ),
        ];
        assert_eq!(claimed_name(select_propagation_policy(&t, &pps, &[])), "a");
    }

    #[test]
    fn nil_priority_counts_as_zero_and_name_breaks_ties() {
        let t = deployment("nginx", "default", &[]);
        let pps = vec![
            pp("zeta", None, "{apiVersion: apps/v1, kind: Deployment}"),
            pp("alpha", Some(0), "{apiVersion: apps/v1, kind: Deployment}"),
        ];
        assert_eq!(
            claimed_name(select_propagation_policy(&t, &pps, &[])),
            "alpha"
        );
        let pps = vec![
            pp("zeta", Some(1), "{apiVersion: apps/v1, kind: Deployment}"),
            pps[1].clone(),
        ];
        assert_eq!(
            claimed_name(select_propagation_policy(&t, &pps, &[])),
            "zeta"
        );
    }

    #[test]
    fn pp_beats_cpp_regardless_of_priority() {
        let t = deployment("nginx", "default", &[]);
        let pps = vec![pp(
            "low",
            Some(-10),
            "{apiVersion: apps/v1, kind: Deployment}",
        )];
        let cpp: ClusterPropagationPolicy = yaml(
            "apiVersion: policy.karmada.io/v1alpha1\nkind: ClusterPropagationPolicy\nmetadata: {name: high}\nspec:\n  priority: 100\n  resourceSelectors: [{apiVersion: apps/v1, kind: Deployment, name: nginx}]",
        );
        let cpps = vec![cpp];
        assert_eq!(
            claimed_name(select_propagation_policy(&t, &pps, &cpps)),
            "low"
        );
        assert_eq!(
            claimed_name(select_propagation_policy(&t, &[], &cpps)),
            "cpp:high"
        );
        // Cluster-scoped templates never match a PropagationPolicy.
        let mut cr = t.clone();
        cr.namespace.clear();
        assert_eq!(
            claimed_name(select_propagation_policy(&cr, &pps, &cpps)),
            "cpp:high"
        );
    }

    #[test]
    fn policies_in_other_namespaces_or_deleting_are_skipped() {
        let t = deployment("nginx", "default", &[]);
        let mut other = pp("other", Some(5), "{apiVersion: apps/v1, kind: Deployment}");
        other.metadata.namespace = Some("prod".into());
        let mut deleting = pp(
            "deleting",
            Some(5),
            "{apiVersion: apps/v1, kind: Deployment}",
        );
        deleting.metadata.deletion_timestamp =
            Some(k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(
                k8s_openapi::jiff::Timestamp::UNIX_EPOCH,
            ));
        let pps = vec![
            other,
            deleting,
            pp("ok", None, "{apiVersion: apps/v1, kind: Deployment}"),
        ];
        assert_eq!(claimed_name(select_propagation_policy(&t, &pps, &[])), "ok");
        assert_eq!(
            claimed_name(select_propagation_policy(
                &deployment("x", "default", &[]),
                &[],
                &[]
            )),
            "none"
        );
    }

    #[test]
    fn template_from_value() {
        let v: Value = yaml(
            "apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: web, namespace: d, labels: {a: b}}",
        );
        let t = Template::from_value(&v);
        assert_eq!(t, deployment("web", "d", &[("a", "b")]));
    }

    #[test]
    fn preemption_follows_karmada_rules() {
        let t = deployment("nginx", "default", &[]);
        let pp = |name: &str, priority: i32, preemption: &str| -> PropagationPolicy {
            yaml(&format!(
                "metadata: {{name: {name}, namespace: default}}\nspec: {{priority: {priority}, preemption: {preemption}, resourceSelectors: [{{apiVersion: apps/v1, kind: Deployment, name: nginx}}], placement: {{}}}}"
            ))
        };
        let cpp = |name: &str, priority: i32, preemption: &str| -> ClusterPropagationPolicy {
            yaml(&format!(
                "metadata: {{name: {name}}}\nspec: {{priority: {priority}, preemption: {preemption}, resourceSelectors: [{{apiVersion: apps/v1, kind: Deployment, name: nginx}}], placement: {{}}}}"
            ))
        };
        let name = |c: Option<Claim<'_>>| match c {
            Some(Claim::Propagation(p)) => {
                format!("pp/{}", p.metadata.name.clone().unwrap_or_default())
            }
            Some(Claim::ClusterPropagation(p)) => {
                format!("cpp/{}", p.metadata.name.clone().unwrap_or_default())
            }
            None => "none".into(),
        };
        let low = pp("low", 1, "Never");
        let pps = vec![
            low.clone(),
            pp("high", 5, "Always"),
            pp("higher-never", 9, "Never"),
        ];
        // a higher PP with Always preempts; one with Never does not
        assert_eq!(
            name(preempting_policy(&t, &Claim::Propagation(&low), &pps, &[])),
            "pp/high"
        );
        // equal priority is not enough
        let same = vec![low.clone(), pp("same", 1, "Always")];
        assert_eq!(
            name(preempting_policy(&t, &Claim::Propagation(&low), &same, &[])),
            "none"
        );
        // a PP preempts a CPP whatever the priorities
        let top = cpp("top", 100, "Never");
        let weak = vec![pp("weak", -5, "Always")];
        assert_eq!(
            name(preempting_policy(
                &t,
                &Claim::ClusterPropagation(&top),
                &weak,
                &[]
            )),
            "pp/weak"
        );
        // a CPP preempts only a lower CPP, never a PP
        let cpps = vec![top.clone(), cpp("boss", 200, "Always")];
        assert_eq!(
            name(preempting_policy(
                &t,
                &Claim::ClusterPropagation(&top),
                &[],
                &cpps
            )),
            "cpp/boss"
        );
        assert_eq!(
            name(preempting_policy(
                &t,
                &Claim::Propagation(&low),
                std::slice::from_ref(&low),
                &cpps
            )),
            "none"
        );
        // a policy does not preempt itself
        let boss = cpps[1].clone();
        assert_eq!(
            name(preempting_policy(
                &t,
                &Claim::ClusterPropagation(&boss),
                &[],
                &cpps
            )),
            "none"
        );
        // a selector that does not match never preempts
        let other = deployment("other", "default", &[]);
        assert_eq!(
            name(preempting_policy(
                &other,
                &Claim::Propagation(&low),
                &pps,
                &[]
            )),
            "none"
        );
    }
}
