//! The service-export controller (`serviceExport`): collects the
//! EndpointSlices of exported Services from the members into the control
//! plane, and reports each export's `Valid` and `Conflict` conditions. The
//! same collector, started for MultiClusterService provider clusters, is
//! the endpointslice-collect controller ([`crate::endpointslice_collect`]).
//!
//! For every Push cluster that is Ready it watches the member's
//! EndpointSlices (those its own endpointslice controller made), Services
//! and, for this controller, ServiceExports. A member slice of a Service
//! that member exports becomes the control-plane EndpointSlice
//! `imported-<cluster>-<slice>` in the same namespace, labelled
//! `kubernetes.io/service-name: derived-<service>` and with its source
//! cluster ([`flotilla_api::multicluster::collected_slice`]); it follows the
//! member slice as pods come and go and goes away with it, with the export,
//! or with the Cluster. While a member is unreachable its collected slices
//! are kept as they were.
//!
//! Karmada passes the member slices through a Work with
//! `suspendDispatching: true` first, and its `endpointSlice` controller
//! turns that Work into the control-plane slice; flotilla writes the slice
//! directly, under the same name and labels.
//!
//! Conditions: on the member's ServiceExport, `Valid` (the Service exists
//! there) and `Conflict` (the Services exported under this name from
//! several members disagree on ports, [`flotilla_api::multicluster::port_conflict`]);
//! on the control plane's ServiceExport of the same name, if there is one,
//! `Valid` lists the exporting clusters and `Conflict` is the same.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use flotilla_api::cluster::Cluster;
use flotilla_api::mcs::ServiceExport;
use flotilla_api::multicluster::{
    self as mcs, BY_ENDPOINTSLICE_COLLECT, BY_SERVICE_EXPORT, KUBE_SLICE_CONTROLLER,
    MANAGED_BY_LABEL, SLICE_MANAGED_BY_LABEL, TYPE_CROSS_CLUSTER,
};
use flotilla_api::networking::MultiClusterService;
use k8s_openapi::api::core::v1::Service;
use k8s_openapi::api::discovery::v1::EndpointSlice;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
use kube::api::{ApiResource, DynamicObject, Patch, PatchParams};
use kube::runtime::controller::Action;
use kube::runtime::watcher;
use kube::{Api, Client, ResourceExt};
use serde_json::{Value, json};

use crate::execution::is_ready;
use crate::multicluster::{
    FAMILIES, Kind, Poke, Watch, as_value, converge, owner_of, set_gauges, sync_loop, values,
};
use crate::propagation::{Served, condition, is_not_found, set_condition, str_at};
use crate::{Context, ControllerFuture, Result};

/// What makes a member's Service exported.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    /// A ServiceExport of the same name in the member (`serviceExport`).
    ServiceExport,
    /// A CrossCluster MultiClusterService naming the member among its
    /// provider clusters (`endpointsliceCollect`).
    MultiClusterService,
}

impl Source {
    /// The `endpointslice.karmada.io/managed-by` value of the slices it collects.
    pub fn owner(self) -> &'static str {
        match self {
            Source::ServiceExport => BY_SERVICE_EXPORT,
            Source::MultiClusterService => BY_ENDPOINTSLICE_COLLECT,
        }
    }

    fn controller(self) -> &'static str {
        match self {
            Source::ServiceExport => "serviceExport",
            Source::MultiClusterService => "endpointsliceCollect",
        }
    }
}

/// `Valid` condition type of a ServiceExport (mcs-api).
pub const CONDITION_VALID: &str = "Valid";
/// `Conflict` condition type of a ServiceExport (mcs-api).
pub const CONDITION_CONFLICT: &str = "Conflict";

/// Starts the controller (the `serviceExport` entry of [`crate::controllers`]).
pub fn start(ctx: Context) -> ControllerFuture {
    Box::pin(run(ctx, Source::ServiceExport))
}

/// The watches of one member.
struct Member {
    endpoint: String,
    client: Client,
    slices: Watch<EndpointSlice>,
    services: Watch<Service>,
    exports: Option<Watch<ServiceExport>>,
}

impl Member {
    fn ready(&self) -> bool {
        self.slices.ready()
            && self.services.ready()
            && self.exports.as_ref().is_none_or(Watch::ready)
    }
}

struct Collector {
    ctx: Context,
    source: Source,
    notify: Arc<Poke>,
    clusters: Watch<Cluster>,
    collected: Watch<DynamicObject>,
    exports: Option<Watch<DynamicObject>>,
    mcs: Option<Watch<MultiClusterService>>,
    members: Mutex<HashMap<String, Arc<Member>>>,
    gauges: Mutex<[HashSet<Vec<String>>; 2]>,
}

fn slice_resource() -> ApiResource {
    ApiResource::erase::<EndpointSlice>(&())
}

fn export_resource() -> ApiResource {
    ApiResource::erase::<ServiceExport>(&())
}

/// Label selector of the objects some multi-cluster controller owns.
pub(crate) fn owned_selector() -> watcher::Config {
    watcher::Config::default().labels(MANAGED_BY_LABEL)
}

/// [`Kind`] of collected EndpointSlices.
pub(crate) fn slice_kind() -> Kind {
    Kind {
        resource: slice_resource(),
        up_to_date: mcs::slice_up_to_date,
        patch: |d| {
            json!({
                "metadata": {"labels": d.pointer("/metadata/labels")},
                "addressType": d.get("addressType"),
                "endpoints": d.get("endpoints").cloned().unwrap_or(json!([])),
                "ports": d.get("ports"),
            })
        },
    }
}

/// Runs the collector for `source` until the process stops.
pub async fn run(ctx: Context, source: Source) -> Result<()> {
    let cp = ctx.control_plane.clone();
    let notify = Arc::new(Poke::new(source.controller()));
    let collector = Collector {
        source,
        clusters: Watch::start(
            Api::all(cp.clone()),
            watcher::Config::default(),
            notify.clone(),
        ),
        collected: Watch::start_with(
            Api::all_with(cp.clone(), &slice_resource()),
            owned_selector(),
            slice_resource(),
            notify.clone(),
        ),
        exports: (source == Source::ServiceExport).then(|| {
            Watch::start_with(
                Api::all_with(cp.clone(), &export_resource()),
                watcher::Config::default(),
                export_resource(),
                notify.clone(),
            )
        }),
        mcs: (source == Source::MultiClusterService).then(|| {
            Watch::start(
                Api::all(cp.clone()),
                watcher::Config::default(),
                notify.clone(),
            )
        }),
        members: Mutex::default(),
        gauges: Mutex::default(),
        notify: notify.clone(),
        ctx,
    };
    sync_loop(source.controller(), notify, Arc::new(collector), sync).await
}

impl Collector {
    fn caches_ready(&self) -> bool {
        self.clusters.ready()
            && self.collected.ready()
            && self.exports.as_ref().is_none_or(Watch::ready)
            && self.mcs.as_ref().is_none_or(Watch::ready)
    }

    fn start_member(&self, cluster: &Cluster, client: Client) -> Member {
        // member clients give up on a read after the member request timeout;
        // the server ends each watch before that, and the watch resumes at once
        let timeout = self
            .ctx
            .config
            .member_request_timeout
            .as_secs()
            .saturating_sub(1)
            .clamp(1, 290) as u32;
        let config = || watcher::Config::default().timeout(timeout);
        let slices = config().labels(&format!("{SLICE_MANAGED_BY_LABEL}={KUBE_SLICE_CONTROLLER}"));
        Member {
            endpoint: cluster.spec.api_endpoint.clone(),
            slices: Watch::start(Api::all(client.clone()), slices, self.notify.clone()),
            services: Watch::start(Api::all(client.clone()), config(), self.notify.clone()),
            exports: (self.source == Source::ServiceExport)
                .then(|| Watch::start(Api::all(client.clone()), config(), self.notify.clone())),
            client,
        }
    }

    /// Starts the watches of Ready members that have none (or whose endpoint
    /// changed) and stops those of clusters that are gone.
    async fn ensure_members(&self, clusters: &[Arc<Cluster>]) {
        let names: HashSet<&str> = clusters.iter().map(|c| c.name()).collect();
        if let Ok(mut m) = self.members.lock() {
            m.retain(|n, _| names.contains(n.as_str()));
        }
        for c in clusters {
            let current = self
                .members
                .lock()
                .ok()
                .and_then(|m| m.get(c.name()).map(|w| w.endpoint.clone()));
            if current.as_deref() == Some(c.spec.api_endpoint.as_str()) || !is_ready(c) {
                continue;
            }
            match self.ctx.members.get(c).await {
                Ok(client) => {
                    let member = Arc::new(self.start_member(c, client));
                    if let Ok(mut m) = self.members.lock() {
                        m.insert(c.name().to_string(), member);
                    }
                }
                Err(e) => tracing::info!(cluster = c.name(), error = %e, "no client for member"),
            }
        }
    }

    /// The Services (namespace, name) each MultiClusterService exports from `cluster`.
    fn mcs_exports(&self, cluster: &str, all: &[String]) -> HashSet<(String, String)> {
        let Some(w) = &self.mcs else {
            return HashSet::new();
        };
        w.store
            .state()
            .iter()
            .filter(|m| m.metadata.deletion_timestamp.is_none())
            .filter(|m| mcs::invalid_types(&m.spec).is_none())
            .filter(|m| m.spec.types.iter().any(|t| t == TYPE_CROSS_CLUSTER))
            .filter(|m| {
                mcs::mcs_clusters(&m.spec, all)
                    .0
                    .iter()
                    .any(|p| p == cluster)
            })
            .map(|m| (m.namespace().unwrap_or_default(), m.name_any()))
            .collect()
    }
}

type ServiceKey = (String, String);

async fn sync(c: Arc<Collector>) -> Result<Action> {
    if !c.caches_ready() {
        return Ok(Action::requeue(Duration::from_millis(100)));
    }
    let clusters: Vec<Arc<Cluster>> = c
        .clusters
        .store
        .state()
        .into_iter()
        .filter(|cl| Served::Push.serves(cl) && cl.metadata.deletion_timestamp.is_none())
        .collect();
    c.ensure_members(&clusters).await;
    let mut all: Vec<String> = clusters.iter().map(|cl| cl.name().to_string()).collect();
    all.sort();
    let members: BTreeMap<String, Arc<Member>> = c
        .members
        .lock()
        .map(|m| m.iter().map(|(k, v)| (k.clone(), v.clone())).collect())
        .unwrap_or_default();
    let ready: HashMap<&str, bool> = clusters
        .iter()
        .map(|cl| (cl.name(), is_ready(cl)))
        .collect();
    let owner = c.source.owner();
    let source_label = match c.source {
        Source::ServiceExport => "ServiceExport",
        Source::MultiClusterService => "MultiClusterService",
    };
    let mut desired = Vec::new();
    let mut unknown: HashSet<String> = all.iter().cloned().collect();
    let mut exported_gauge = BTreeMap::new();
    let mut endpoints_gauge = BTreeMap::new();
    // (namespace, service) -> cluster -> ports, of every exported Service that exists
    let mut ports: BTreeMap<ServiceKey, BTreeMap<String, Vec<mcs::Port>>> = BTreeMap::new();
    for (name, m) in &members {
        if !m.ready() || !ready.get(name.as_str()).copied().unwrap_or(false) {
            continue;
        }
        unknown.remove(name);
        let exported: HashSet<ServiceKey> = match &m.exports {
            Some(e) => e
                .store
                .state()
                .iter()
                .filter(|x| x.metadata.deletion_timestamp.is_none())
                .map(|x| (x.namespace().unwrap_or_default(), x.name_any()))
                .collect(),
            None => c.mcs_exports(name, &all),
        };
        for svc in m.services.store.state() {
            let key = (svc.namespace().unwrap_or_default(), svc.name_any());
            if exported.contains(&key) {
                ports
                    .entry(key)
                    .or_default()
                    .insert(name.clone(), mcs::service_ports(&as_value(&*svc)));
            }
        }
        let mut endpoints = 0i64;
        for slice in m.slices.store.state() {
            let v = as_value(&*slice);
            let Some(service) = mcs::collectable_service(&v) else {
                continue;
            };
            let key = (
                str_at(&v, "/metadata/namespace").to_string(),
                service.to_string(),
            );
            if !exported.contains(&key) {
                continue;
            }
            if let Some(collected) = mcs::collected_slice(&v, name, owner) {
                endpoints += collected
                    .get("endpoints")
                    .and_then(Value::as_array)
                    .map_or(0, |e| e.len() as i64);
                desired.push(collected);
            }
        }
        exported_gauge.insert(
            vec![name.clone(), source_label.to_string()],
            exported.len() as i64,
        );
        endpoints_gauge.insert(vec![name.clone(), source_label.to_string()], endpoints);
    }
    let stored = values(&c.collected.store);
    // members not heard from keep what was collected from them
    for s in &stored {
        if owner_of(s) == owner && unknown.contains(mcs::provision_cluster(s)) {
            desired.push(s.clone());
        }
    }
    let written = converge(&c.ctx.control_plane, &slice_kind(), owner, &stored, desired).await?;
    if written != Default::default() {
        tracing::debug!(
            ?written,
            controller = c.source.controller(),
            "collected EndpointSlices"
        );
    }
    if let Ok(mut g) = c.gauges.lock() {
        set_gauges(&FAMILIES.exported_services, &mut g[0], exported_gauge);
        set_gauges(&FAMILIES.collected_endpoints, &mut g[1], endpoints_gauge);
    }
    if c.source == Source::ServiceExport {
        report_conditions(&c, &members, &ports).await?;
    }
    Ok(Action::await_change())
}

/// Writes `conditions` onto an object whose current ones are `current`,
/// when anything changed.
async fn write_conditions(
    api: &Api<DynamicObject>,
    name: &str,
    current: &[Condition],
    wanted: Vec<Condition>,
) -> Result<()> {
    let mut next = current.to_vec();
    let mut changed = false;
    for cond in wanted {
        changed |= set_condition(&mut next, cond);
    }
    if !changed {
        return Ok(());
    }
    match api
        .patch_status(
            name,
            &PatchParams::default(),
            &Patch::Merge(&json!({"status": {"conditions": next}})),
        )
        .await
    {
        Ok(_) => Ok(()),
        Err(e) if is_not_found(&e) => Ok(()),
        Err(e) => Err(e.into()),
    }
}

fn conflict_condition(conflict: Option<&String>) -> Condition {
    match conflict {
        Some(msg) => condition(CONDITION_CONFLICT, true, "PortConflict", msg, None),
        None => condition(
            CONDITION_CONFLICT,
            false,
            "NoConflict",
            "the exported Services agree on their ports",
            None,
        ),
    }
}

async fn report_conditions(
    c: &Collector,
    members: &BTreeMap<String, Arc<Member>>,
    ports: &BTreeMap<ServiceKey, BTreeMap<String, Vec<mcs::Port>>>,
) -> Result<()> {
    let conflicts: BTreeMap<&ServiceKey, String> = ports
        .iter()
        .filter_map(|(k, by)| mcs::port_conflict(by).map(|m| (k, m)))
        .collect();
    for (name, m) in members {
        let Some(exports) = &m.exports else { continue };
        if !m.ready() {
            continue;
        }
        for e in exports.store.state() {
            let key = (e.namespace().unwrap_or_default(), e.name_any());
            let exists = ports.get(&key).is_some_and(|by| by.contains_key(name));
            let valid = if exists {
                condition(
                    CONDITION_VALID,
                    true,
                    "ServiceExported",
                    "the Service is exported",
                    None,
                )
            } else {
                condition(
                    CONDITION_VALID,
                    false,
                    "ServiceNotFound",
                    &format!(
                        "Service {}/{} does not exist in cluster {name}",
                        key.0, key.1
                    ),
                    None,
                )
            };
            let current = e
                .status
                .as_ref()
                .map(|s| s.conditions.clone())
                .unwrap_or_default();
            let api = Api::namespaced_with(m.client.clone(), &key.0, &export_resource());
            let wanted = vec![valid, conflict_condition(conflicts.get(&key))];
            if let Err(err) = write_conditions(&api, &key.1, &current, wanted).await {
                tracing::info!(cluster = %name, export = %key.1, error = %err, "writing ServiceExport status failed");
            }
        }
    }
    let Some(cp_exports) = &c.exports else {
        return Ok(());
    };
    for e in values(&cp_exports.store) {
        let key = (
            str_at(&e, "/metadata/namespace").to_string(),
            str_at(&e, "/metadata/name").to_string(),
        );
        let clusters: BTreeSet<&String> =
            ports.get(&key).into_iter().flat_map(|b| b.keys()).collect();
        let valid = if clusters.is_empty() {
            condition(
                CONDITION_VALID,
                false,
                "NotExported",
                "no member cluster has both this ServiceExport and its Service",
                None,
            )
        } else {
            let names: Vec<&str> = clusters.iter().map(|s| s.as_str()).collect();
            condition(
                CONDITION_VALID,
                true,
                "ServiceExported",
                &format!("exported from clusters {}", names.join(", ")),
                None,
            )
        };
        let api = Api::namespaced_with(c.ctx.control_plane.clone(), &key.0, &export_resource());
        let current = crate::multicluster::conditions_of(&e);
        write_conditions(
            &api,
            &key.1,
            &current,
            vec![valid, conflict_condition(conflicts.get(&key))],
        )
        .await?;
    }
    Ok(())
}
