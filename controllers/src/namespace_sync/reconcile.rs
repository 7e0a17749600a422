//! Which namespaces go to members (Karmada `namespaceShouldBeSynced` plus the
//! skip label) and what to create or delete in one member.

use std::collections::BTreeMap;

use flotilla_api::names::is_reserved_namespace;
use k8s_openapi::api::core::v1::Namespace;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

use crate::{Error, Result};

/// Label that opts a namespace out of propagation (value `"true"`).
pub const LABEL_SKIP_AUTO_PROPAGATION: &str = "namespace.karmada.io/skip-auto-propagation";
/// Label on member objects Karmada manages (`karmada.io/managed: "true"`).
pub const LABEL_MANAGED: &str = "karmada.io/managed";

/// The skip rules: reserved namespaces, `default`, and anchored regular
/// expressions (`--skipped-propagating-namespaces`).
#[derive(Clone, Debug)]
pub struct SkipRules {
    patterns: Vec<regex_lite::Regex>,
}

impl SkipRules {
    /// Compiles each pattern as `^pattern$`, as Karmada does.
    pub fn new(patterns: &[String]) -> Result<Self> {
        let patterns = patterns
            .iter()
            .map(|p| {
                regex_lite::Regex::new(&format!("^{p}$")).map_err(|e| {
                    Error::InvalidConfig(format!("skipped propagating namespace {p:?}: {e}"))
                })
            })
            .collect::<Result<_>>()?;
        Ok(SkipRules { patterns })
    }

    /// Whether a namespace name may be synced (Karmada `namespaceShouldBeSynced`).
    pub fn name_should_sync(&self, name: &str) -> bool {
        !(is_reserved_namespace(name)
            || name == "default"
            || self.patterns.iter().any(|r| r.is_match(name)))
    }

    /// Whether a control-plane namespace goes to members: name rules, the skip
    /// label, and not being deleted.
    pub fn should_sync(&self, ns: &Namespace) -> bool {
        let name = ns.metadata.name.as_deref().unwrap_or_default();
        let skip_label = ns
            .metadata
            .labels
            .as_ref()
            .and_then(|l| l.get(LABEL_SKIP_AUTO_PROPAGATION))
            .is_some_and(|v| v == "true");
        !name.is_empty()
            && ns.metadata.deletion_timestamp.is_none()
            && !skip_label
            && self.name_should_sync(name)
    }
}

/// What to do in one member.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Plan {
    /// Namespaces to create.
    pub create: Vec<Namespace>,
    /// Existing member namespaces to merge-patch with these labels and
    /// annotations (a pre-existing member namespace is taken over, as
    /// Karmada's namespace Works use conflict resolution `overwrite`).
    pub update: Vec<Namespace>,
    /// Names of managed namespaces to delete.
    pub delete: Vec<String>,
}

/// The namespace a member gets for a control-plane namespace: same name,
/// labels and annotations, plus `karmada.io/managed: "true"`.
pub fn member_namespace(ns: &Namespace) -> Namespace {
    let mut labels: BTreeMap<String, String> = ns.metadata.labels.clone().unwrap_or_default();
    labels.insert(LABEL_MANAGED.into(), "true".into());
    let annotations: BTreeMap<String, String> = ns
        .metadata
        .annotations
        .clone()
        .unwrap_or_default()
        .into_iter()
        .filter(|(k, _)| k != "kubectl.kubernetes.io/last-applied-configuration")
        .collect();
    Namespace {
        metadata: ObjectMeta {
            name: ns.metadata.name.clone(),
            labels: Some(labels),
            annotations: (!annotations.is_empty()).then_some(annotations),
            ..Default::default()
        },
        ..Default::default()
    }
}

fn is_subset(
    want: Option<&BTreeMap<String, String>>,
    have: Option<&BTreeMap<String, String>>,
) -> bool {
    want.into_iter()
        .flatten()
        .all(|(k, v)| have.and_then(|h| h.get(k)) == Some(v))
}

/// Compares the control plane's namespaces with a member's: create the synced
/// ones the member lacks; update those whose labels or annotations lack the
/// control plane's (member-only ones are kept); delete member namespaces labelled managed whose
/// control-plane namespace is gone, being deleted or no longer synced.
pub fn plan(control_plane: &[Namespace], member: &[Namespace], rules: &SkipRules) -> Plan {
    let wanted: BTreeMap<&str, &Namespace> = control_plane
        .iter()
        .filter(|ns| rules.should_sync(ns))
        .filter_map(|ns| Some((ns.metadata.name.as_deref()?, ns)))
        .collect();
    let present: BTreeMap<&str, &Namespace> = member
        .iter()
        .filter_map(|ns| Some((ns.metadata.name.as_deref()?, ns)))
        .collect();
    let update = wanted
        .iter()
        .filter_map(|(name, ns)| {
            let have = present.get(name)?;
            if have.metadata.deletion_timestamp.is_some() {
                return None;
            }
            let want = member_namespace(ns);
            let same = is_subset(want.metadata.labels.as_ref(), have.metadata.labels.as_ref())
                && is_subset(
                    want.metadata.annotations.as_ref(),
                    have.metadata.annotations.as_ref(),
                );
            (!same).then_some(want)
        })
        .collect();
    let create = wanted
        .iter()
        .filter(|(name, _)| !present.contains_key(*name))
        .map(|(_, ns)| member_namespace(ns))
        .collect();
    let delete = member
        .iter()
        .filter(|ns| {
            ns.metadata.deletion_timestamp.is_none()
                && ns
                    .metadata
                    .labels
                    .as_ref()
                    .and_then(|l| l.get(LABEL_MANAGED))
                    .is_some_and(|v| v == "true")
        })
        .filter_map(|ns| ns.metadata.name.clone())
        .filter(|name| !wanted.contains_key(name.as_str()) && rules.name_should_sync(name))
        .collect();
    Plan {
        create,
        update,
        delete,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ns(name: &str, labels: &[(&str, &str)]) -> Namespace {
        Namespace {
            metadata: ObjectMeta {
                name: Some(name.into()),
                labels: Some(
                    labels
                        .iter()
                        .map(|(k, v)| (k.to_string(), v.to_string()))
                        .collect(),
                ),
                ..Default::default()
            },
            ..Default::default()
        }
    }

    fn rules() -> SkipRules {
        SkipRules::new(&["kube-.*".to_string()]).unwrap()
    }

    #[test]
    fn skip_rules() {
        let r = rules();
        for skipped in [
            "default",
            "kube-system",
            "kube-public",
            "kube-node-lease",
            "karmada-system",
            "karmada-cluster",
            "karmada-es-member1",
        ] {
            assert!(!r.name_should_sync(skipped), "{skipped}");
        }
        for synced in ["apps", "kube", "my-kube-x", "karmada-foo"] {
            assert!(r.name_should_sync(synced), "{synced}");
        }
        assert!(!r.should_sync(&ns("apps", &[(LABEL_SKIP_AUTO_PROPAGATION, "true")])));
        assert!(r.should_sync(&ns("apps", &[(LABEL_SKIP_AUTO_PROPAGATION, "false")])));
        let mut deleting = ns("apps", &[]);
        deleting.metadata.deletion_timestamp =
            Some(k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(
                k8s_openapi::jiff::Timestamp::UNIX_EPOCH,
            ));
        assert!(!r.should_sync(&deleting));
        assert!(SkipRules::new(&["(".to_string()]).is_err());
        assert!(
            !SkipRules::new(&["team-.*".to_string()])
                .unwrap()
                .name_should_sync("team-a")
        );
    }

    #[test]
    fn plans() {
        let cp = vec![
            ns("default", &[]),
            ns("kube-system", &[]),
            ns("apps", &[("team", "a")]),
            ns("web", &[]),
            ns("private", &[(LABEL_SKIP_AUTO_PROPAGATION, "true")]),
        ];
        let member = vec![
            ns("default", &[]),
            ns("kube-system", &[]),
            ns("web", &[]),
            ns("gone", &[(LABEL_MANAGED, "true")]),
            ns("own", &[]),
            ns("private", &[(LABEL_MANAGED, "true")]),
        ];
        let p = plan(&cp, &member, &rules());
        assert_eq!(p.create.len(), 1);
        let created = &p.create[0];
        assert_eq!(created.metadata.name.as_deref(), Some("apps"));
        let labels = created.metadata.labels.as_ref().unwrap();
        assert_eq!(labels.get("team").map(String::as_str), Some("a"));
        assert_eq!(labels.get(LABEL_MANAGED).map(String::as_str), Some("true"));
        // "own" is the member's own (not managed); "private" became skipped
        assert_eq!(p.delete, vec!["gone".to_string(), "private".to_string()]);
        // "web" existed unmanaged: taken over
        assert_eq!(p.update.len(), 1);
        assert_eq!(p.update[0].metadata.name.as_deref(), Some("web"));
        assert_eq!(
            p.update[0]
                .metadata
                .labels
                .as_ref()
                .unwrap()
                .get(LABEL_MANAGED)
                .map(String::as_str),
            Some("true")
        );
        // in sync: nothing to do
        let mut member2: Vec<Namespace> = ["default", "web"]
            .iter()
            .map(|n| ns(n, &[(LABEL_MANAGED, "true"), ("extra", "kept")]))
            .collect();
        member2.push(ns("apps", &[(LABEL_MANAGED, "true"), ("team", "a")]));
        assert_eq!(plan(&cp, &member2, &rules()), Plan::default());
        // a label changed on the control plane
        let mut cp2 = cp.clone();
        cp2[2] = ns("apps", &[("team", "b")]);
        let p = plan(&cp2, &member2, &rules());
        assert_eq!(p.update.len(), 1);
        assert_eq!(
            p.update[0]
                .metadata
                .labels
                .as_ref()
                .unwrap()
                .get("team")
                .map(String::as_str),
            Some("b")
        );
    }
}
