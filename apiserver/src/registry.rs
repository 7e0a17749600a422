//! The registry: which resources exist ([`Catalog`] of [`ResourceInfo`]) and the one
//! generic [`store::Store`] that implements every verb for all of them.
//!
//! A kind is described by data, not code: group/version/kind, names, scope, which
//! subresources it has, how it prints, which fields can be selected. Built-in kinds
//! are listed in [`builtin`]; CRDs add entries at run time.

pub mod apply;
pub mod builtin;
pub mod cluster;
pub mod conversion;
pub mod crd;
pub mod defaults;
pub mod gc;
pub mod jsonpath;
pub mod meta;
pub mod openapi_schemas;
pub mod patch;
pub mod schema;
pub mod search;
pub mod selector;
pub mod store;
pub mod typed;
pub mod validation;

use std::collections::BTreeMap;
use std::sync::{Arc, RwLock};

/// Which kind-specific table printer a resource uses (see `endpoints::table`).
#[derive(Debug, Clone, PartialEq)]
pub enum Printer {
    /// NAME and AGE.
    NameAge,
    /// NAME and CREATED AT (kube-apiserver's default for kinds without a printer).
    NameCreatedAt,
    /// A built-in printer, named by resource (e.g. `pods`).
    Builtin(String),
    /// A CRD's `additionalPrinterColumns` (after NAME).
    Custom(Arc<Vec<crd::PrinterColumn>>),
}

/// How names of a kind are validated.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NameRule {
    /// RFC 1123 subdomain (most kinds).
    Subdomain,
    /// RFC 1123 label (namespaces, services).
    Label,
    /// Any path segment (RBAC kinds: `system:controller:x`).
    PathSegment,
}

/// Everything the generic handlers need to know about one resource.
#[derive(Debug, Clone)]
pub struct ResourceInfo {
    pub group: String,
    pub version: String,
    pub kind: String,
    pub plural: String,
    pub singular: String,
    pub short_names: Vec<String>,
    pub categories: Vec<String>,
    pub namespaced: bool,
    pub status_subresource: bool,
    pub scale_subresource: bool,
    pub printer: Printer,
    /// Field paths usable in field selectors besides metadata.name/namespace.
    pub field_selectors: Vec<&'static str>,
    pub name_rule: NameRule,
    /// Bump `metadata.generation` on spec changes.
    pub tracks_generation: bool,
    /// The Go package path prefix used for OpenAPI schema names.
    pub openapi_prefix: String,
    /// Set for custom resources (served from a CRD).
    pub custom: Option<Arc<crd::CustomInfo>>,
    /// Only `create` is served (reviews the server answers itself).
    pub create_only: bool,
}

impl ResourceInfo {
    /// `group/version`, or `version` for the core group.
    pub fn api_version(&self) -> String {
        if self.group.is_empty() {
            self.version.clone()
        } else {
            format!("{}/{}", self.group, self.version)
        }
    }

    /// The storage key of one object.
    pub fn key(&self, namespace: Option<&str>, name: &str) -> String {
        match namespace {
            Some(ns) if self.namespaced => format!("{}{ns}/{name}", self.prefix(None)),
            _ => format!("{}{name}", self.prefix(None)),
        }
    }

    /// The storage prefix of all objects, or of those in one namespace.
    pub fn prefix(&self, namespace: Option<&str>) -> String {
        let group = if self.group.is_empty() {
            "core"
        } else {
            &self.group
        };
        match namespace {
            Some(ns) if self.namespaced => format!("/{group}/{}/{ns}/", self.plural),
            _ => format!("/{group}/{}/", self.plural),
        }
    }

    pub fn list_kind(&self) -> String {
        format!("{}List", self.kind)
    }
}

/// The set of served resources; read often, changed when CRDs come and go.
#[derive(Default)]
pub struct Catalog {
    inner: RwLock<Inner>,
    generation: std::sync::atomic::AtomicU64,
}

#[derive(Default, Clone)]
struct Inner {
    /// (group, version, plural) → info.
    resources: BTreeMap<(String, String, String), Arc<ResourceInfo>>,
    /// group → versions, preferred first.
    groups: Vec<(String, Vec<String>)>,
}

impl Inner {
    fn add(&mut self, info: ResourceInfo) {
        let group = info.group.clone();
        let version = info.version.clone();
        self.resources.insert(
            (group.clone(), version.clone(), info.plural.clone()),
            Arc::new(info),
        );
        match self.groups.iter_mut().find(|(g, _)| *g == group) {
            Some((_, versions)) => {
                if !versions.contains(&version) {
                    versions.push(version);
                    versions.sort_by(|a, b| crd::compare_versions(a, b));
                }
            }
            None => self.groups.push((group, vec![version])),
        }
    }

    fn remove(&mut self, group: &str, plural: &str) {
        self.resources
            .retain(|(g, _, p), _| !(g == group && p == plural));
        let remaining: Vec<String> = self
            .resources
            .keys()
            .filter(|(g, _, _)| g == group)
            .map(|(_, v, _)| v.clone())
            .collect();
        self.groups.retain_mut(|(g, versions)| {
            if g != group {
                return true;
            }
            versions.retain(|v| remaining.contains(v));
            !versions.is_empty()
        });
    }
}

impl Catalog {
    /// A catalog of the built-in kinds.
    pub fn builtin() -> Self {
        let catalog = Catalog::default();
        for info in builtin::resources() {
            catalog.add(info);
        }
        catalog
    }

    /// Bumped on every change; caches of derived documents key on it.
    pub fn generation(&self) -> u64 {
        self.generation.load(std::sync::atomic::Ordering::Acquire)
    }

    /// The catalog of the aggregated API server: Karmada's Cluster and
    /// ResourceRegistry resources.
    pub fn aggregated() -> Self {
        let catalog = Catalog::default();
        catalog.add(cluster::resource());
        catalog.add(search::resource());
        catalog
    }

    /// Adds (or replaces) a resource.
    pub fn add(&self, info: ResourceInfo) {
        self.generation
            .fetch_add(1, std::sync::atomic::Ordering::AcqRel);
        self.inner.write().expect("catalog lock").add(info);
    }

    /// Removes every version of a group/resource; drops the group when it empties.
    pub fn remove(&self, group: &str, plural: &str) {
        self.generation
            .fetch_add(1, std::sync::atomic::Ordering::AcqRel);
        self.inner
            .write()
            .expect("catalog lock")
            .remove(group, plural);
    }

    /// Replaces every version of a group/resource with `infos` in one step, so no
    /// request sees the resource missing in between.
    pub fn replace(&self, group: &str, plural: &str, infos: Vec<ResourceInfo>) {
        self.generation
            .fetch_add(1, std::sync::atomic::Ordering::AcqRel);
        let mut inner = self.inner.write().expect("catalog lock");
        inner.remove(group, plural);
        for info in infos {
            inner.add(info);
        }
    }

    /// The served version of a group/resource that has one, if any.
    pub fn find_resource(&self, group: &str, plural: &str) -> Option<Arc<ResourceInfo>> {
        let inner = self.inner.read().expect("catalog lock");
        inner
            .resources
            .iter()
            .find(|((g, _, p), _)| g == group && p == plural)
            .map(|(_, i)| i.clone())
    }

    /// The resource at group/version/plural.
    pub fn get(&self, group: &str, version: &str, plural: &str) -> Option<Arc<ResourceInfo>> {
        let inner = self.inner.read().expect("catalog lock");
        inner
            .resources
            .get(&(group.to_string(), version.to_string(), plural.to_string()))
            .cloned()
    }

    /// Whether a group/version is served at all.
    pub fn has_version(&self, group: &str, version: &str) -> bool {
        let inner = self.inner.read().expect("catalog lock");
        inner
            .groups
            .iter()
            .any(|(g, vs)| g == group && vs.iter().any(|v| v == version))
    }

    /// Groups in registration order with their versions (preferred first).
    pub fn groups(&self) -> Vec<(String, Vec<String>)> {
        self.inner.read().expect("catalog lock").groups.clone()
    }

    /// Resources of one group/version, sorted by plural.
    pub fn resources(&self, group: &str, version: &str) -> Vec<Arc<ResourceInfo>> {
        let inner = self.inner.read().expect("catalog lock");
        inner
            .resources
            .iter()
            .filter(|((g, v, _), _)| g == group && v == version)
            .map(|(_, info)| info.clone())
            .collect()
    }
}
