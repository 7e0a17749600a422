//! The service-import controller (`serviceImport`): for every ServiceImport
//! in the control plane it
//!
//! - creates the Service `derived-<name>` next to it (ClusterIP, no
//!   selector, the import's ports: [`flotilla_api::multicluster::derived_service`]);
//! - records the exporting clusters in the import's `status.clusters`;
//! - dispatches the derived Service and every EndpointSlice collected for
//!   it (`kubernetes.io/service-name: derived-<name>`, from every exporting
//!   cluster, see [`crate::service_export`]) into each cluster the
//!   ServiceImport is propagated to (the clusters of its ResourceBinding),
//!   as Works in their execution namespaces that the execution controller
//!   applies. The Works follow the slices and the binding; they, the member
//!   objects and the derived Service go away with the ServiceImport.
//!
//! In Karmada a policy selecting a ServiceImport gets `propagateDeps: true`
//! and the dependencies distributor carries the derived Service and the
//! slices along; flotilla writes those Works here, under the names Karmada
//! gives Works, labelled `endpointslice.karmada.io/managed-by:
//! service-import-controller` and `endpointslice.karmada.io/namespace|name`.
//!
//! With [`Mode::MultiClusterService`] the same dispatcher is the
//! endpointslice-dispatch controller ([`crate::endpointslice_dispatch`]).

use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use flotilla_api::cluster::Cluster;
use flotilla_api::mcs::ServiceImport;
use flotilla_api::multicluster::{
    self as mcs, BY_ENDPOINTSLICE_DISPATCH, BY_SERVICE_IMPORT, KARMADA_DISPATCH_CONTROLLER,
    KARMADA_SLICE_CONTROLLER, MANAGED_BY_LABEL, MCS_NAME_LABEL, MCS_NAMESPACE_LABEL,
    SERVICE_NAME_KARMADA_LABEL, SERVICE_NAME_LABEL, SERVICE_NAMESPACE_KARMADA_LABEL,
    TYPE_CROSS_CLUSTER,
};
use flotilla_api::names::{binding_name, derived_service_name};
use flotilla_api::networking::MultiClusterService;
use flotilla_api::work::{ResourceBinding, Work};
use k8s_openapi::api::core::v1::Service;
use kube::api::{ApiResource, DynamicObject, Patch, PatchParams};
use kube::runtime::controller::Action;
use kube::runtime::reflector::ObjectRef;
use kube::runtime::watcher;
use kube::{Api, ResourceExt};
use serde_json::{Value, json};

use crate::multicluster::{
    FAMILIES, Kind, Poke, Watch, as_value, converge, labels_match, set_gauges, sync_loop, values,
    work_kind, work_value,
};
use crate::propagation::{Served, condition, is_not_found, set_condition, str_at};
use crate::service_export::owned_selector;
use crate::{Context, ControllerFuture, Result};

/// Which imports the dispatcher serves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// ServiceImports, into the clusters they are propagated to (`serviceImport`).
    ServiceImport,
    /// CrossCluster MultiClusterServices, into their consumer clusters
    /// (`endpointsliceDispatch`).
    MultiClusterService,
}

impl Mode {
    fn owner(self) -> &'static str {
        match self {
            Mode::ServiceImport => BY_SERVICE_IMPORT,
            Mode::MultiClusterService => BY_ENDPOINTSLICE_DISPATCH,
        }
    }

    fn controller(self) -> &'static str {
        match self {
            Mode::ServiceImport => "serviceImport",
            Mode::MultiClusterService => "endpointsliceDispatch",
        }
    }
}

/// The MultiClusterService condition this dispatcher reports.
pub const CONDITION_ENDPOINTSLICE_DISPATCHED: &str = "EndpointSliceDispatched";

/// Starts the controller (the `serviceImport` entry of [`crate::controllers`]).
pub fn start(ctx: Context) -> ControllerFuture {
    Box::pin(run(ctx, Mode::ServiceImport))
}

struct Dispatcher {
    ctx: Context,
    mode: Mode,
    clusters: Watch<Cluster>,
    collected: Watch<DynamicObject>,
    works: Watch<Work>,
    imports: Option<Watch<ServiceImport>>,
    bindings: Option<Watch<ResourceBinding>>,
    derived: Option<Watch<Service>>,
    mcs: Option<Watch<MultiClusterService>>,
    gauges: Mutex<[HashSet<Vec<String>>; 2]>,
}

impl Dispatcher {
    fn caches_ready(&self) -> bool {
        self.clusters.ready()
            && self.collected.ready()
            && self.works.ready()
            && self.imports.as_ref().is_none_or(Watch::ready)
            && self.bindings.as_ref().is_none_or(Watch::ready)
            && self.derived.as_ref().is_none_or(Watch::ready)
            && self.mcs.as_ref().is_none_or(Watch::ready)
    }
}

/// Runs the dispatcher for `mode` until the process stops.
pub async fn run(ctx: Context, mode: Mode) -> Result<()> {
    let cp = ctx.control_plane.clone();
    let notify = Arc::new(Poke::new(mode.controller()));
    let slices = ApiResource::erase::<k8s_openapi::api::discovery::v1::EndpointSlice>(&());
    let imports = mode == Mode::ServiceImport;
    let d = Dispatcher {
        mode,
        clusters: Watch::start(
            Api::all(cp.clone()),
            watcher::Config::default(),
            notify.clone(),
        ),
        collected: Watch::start_with(
            Api::all_with(cp.clone(), &slices),
            owned_selector(),
            slices.clone(),
            notify.clone(),
        ),
        works: Watch::start(Api::all(cp.clone()), owned_selector(), notify.clone()),
        imports: imports.then(|| {
            Watch::start(
                Api::all(cp.clone()),
                watcher::Config::default(),
                notify.clone(),
            )
        }),
        bindings: imports.then(|| {
            Watch::start(
                Api::all(cp.clone()),
                watcher::Config::default(),
                notify.clone(),
            )
        }),
        derived: imports
            .then(|| Watch::start(Api::all(cp.clone()), owned_selector(), notify.clone())),
        mcs: (!imports).then(|| {
            Watch::start(
                Api::all(cp.clone()),
                watcher::Config::default(),
                notify.clone(),
            )
        }),
        gauges: Mutex::default(),
        ctx,
    };
    sync_loop(mode.controller(), notify, Arc::new(d), sync).await
}

/// [`Kind`] of derived Services: compared by ports, type, session affinity
/// and labels (the API server fills in target ports and cluster IPs).
fn service_kind() -> Kind {
    Kind {
        resource: ApiResource::erase::<Service>(&()),
        up_to_date: |s, d| {
            mcs::service_ports(s) == mcs::service_ports(d)
                && str_at(s, "/spec/type") == str_at(d, "/spec/type")
                && affinity(s) == affinity(d)
                && labels_match(s, d)
        },
        patch: |d| {
            json!({
                "metadata": {"labels": d.pointer("/metadata/labels")},
                "spec": {
                    "type": d.pointer("/spec/type"),
                    "ports": d.pointer("/spec/ports"),
                    "sessionAffinity": d.pointer("/spec/sessionAffinity").cloned().unwrap_or(json!("None")),
                    "sessionAffinityConfig": d.pointer("/spec/sessionAffinityConfig"),
                },
            })
        },
    }
}

fn affinity(v: &Value) -> &str {
    match str_at(v, "/spec/sessionAffinity") {
        "" => "None",
        a => a,
    }
}

fn endpoints_in(slice: &Value) -> i64 {
    slice
        .get("endpoints")
        .and_then(Value::as_array)
        .map_or(0, |e| e.len() as i64)
}

/// What a pass wants: Works, and per cluster how many slices and endpoints.
#[derive(Default)]
struct Plan {
    works: Vec<Value>,
    slices: BTreeMap<Vec<String>, i64>,
    endpoints: BTreeMap<Vec<String>, i64>,
}

impl Plan {
    fn slice(&mut self, controller: &str, cluster: &str, slice: &Value) {
        let key = vec![cluster.to_string(), controller.to_string()];
        *self.slices.entry(key.clone()).or_default() += 1;
        *self.endpoints.entry(key).or_default() += endpoints_in(slice);
    }
}

async fn sync(d: Arc<Dispatcher>) -> Result<Action> {
    if !d.caches_ready() {
        return Ok(Action::requeue(Duration::from_millis(100)));
    }
    let collected = values(&d.collected.store);
    let mut plan = Plan::default();
    match d.mode {
        Mode::ServiceImport => plan_imports(&d, &collected, &mut plan).await?,
        Mode::MultiClusterService => plan_mcs(&d, &collected, &mut plan).await?,
    }
    let owner = d.mode.owner();
    let stored = values(&d.works.store);
    let written = converge(
        &d.ctx.control_plane,
        &work_kind(),
        owner,
        &stored,
        plan.works,
    )
    .await?;
    if written != Default::default() {
        tracing::debug!(?written, controller = d.mode.controller(), "dispatch Works");
    }
    if let Ok(mut g) = d.gauges.lock() {
        set_gauges(&FAMILIES.dispatched_slices, &mut g[0], plan.slices);
        set_gauges(&FAMILIES.dispatched_endpoints, &mut g[1], plan.endpoints);
    }
    Ok(Action::await_change())
}

fn work_labels(owner: &str, extra: &[(&str, &str)]) -> BTreeMap<String, String> {
    let mut l = BTreeMap::from([(MANAGED_BY_LABEL.to_string(), owner.to_string())]);
    for (k, v) in extra {
        l.insert((*k).to_string(), (*v).to_string());
    }
    l
}

async fn plan_imports(d: &Dispatcher, collected: &[Value], plan: &mut Plan) -> Result<()> {
    let (Some(imports), Some(bindings), Some(derived)) = (&d.imports, &d.bindings, &d.derived)
    else {
        return Ok(());
    };
    let cp = d.ctx.control_plane.clone();
    let mut services = Vec::new();
    for imp in imports.store.state() {
        if imp.metadata.deletion_timestamp.is_some() {
            continue;
        }
        let (ns, name) = (imp.namespace().unwrap_or_default(), imp.name_any());
        let imp_value = as_value(&*imp);
        let Some(member_service) = mcs::derived_service(&imp_value) else {
            continue;
        };
        let labels = work_labels(
            BY_SERVICE_IMPORT,
            &[
                (SERVICE_NAME_KARMADA_LABEL, name.as_str()),
                (SERVICE_NAMESPACE_KARMADA_LABEL, ns.as_str()),
            ],
        );
        let mut cp_service = member_service.clone();
        cp_service["metadata"]["labels"] = json!(labels);
        services.push(cp_service);
        let derived_name = derived_service_name(&name);
        let slices: Vec<&Value> = collected
            .iter()
            .filter(|s| {
                str_at(s, "/metadata/namespace") == ns
                    && s.pointer("/metadata/labels")
                        .and_then(|l| l.get(SERVICE_NAME_LABEL))
                        .and_then(Value::as_str)
                        == Some(derived_name.as_str())
            })
            .collect();
        let exporting: BTreeSet<&str> = slices.iter().map(|s| mcs::provision_cluster(s)).collect();
        let want: Vec<Value> = exporting.iter().map(|c| json!({"cluster": c})).collect();
        let have = imp_value
            .pointer("/status/clusters")
            .cloned()
            .unwrap_or(json!([]));
        if have != json!(want) {
            let api: Api<ServiceImport> = Api::namespaced(cp.clone(), &ns);
            match api
                .patch_status(
                    &name,
                    &PatchParams::default(),
                    &Patch::Merge(&json!({"status": {"clusters": want}})),
                )
                .await
            {
                Ok(_) => {}
                Err(e) if is_not_found(&e) => {}
                Err(e) => return Err(e.into()),
            }
        }
        let Some(binding) = bindings
            .store
            .get(&ObjectRef::new(&binding_name("ServiceImport", &name)).within(&ns))
            .filter(|b| {
                b.spec.resource.kind == "ServiceImport" && b.metadata.deletion_timestamp.is_none()
            })
        else {
            continue;
        };
        for target in &binding.spec.clusters {
            let c = target.name.as_str();
            plan.works.push(work_value(&mcs::dispatch_work(
                &member_service,
                c,
                labels.clone(),
            )));
            for s in &slices {
                let m = mcs::member_slice(s, &derived_name, KARMADA_SLICE_CONTROLLER);
                plan.slice(BY_SERVICE_IMPORT, c, s);
                plan.works
                    .push(work_value(&mcs::dispatch_work(&m, c, labels.clone())));
            }
        }
    }
    let stored = values(&derived.store);
    converge(&cp, &service_kind(), BY_SERVICE_IMPORT, &stored, services).await?;
    Ok(())
}

async fn plan_mcs(d: &Dispatcher, collected: &[Value], plan: &mut Plan) -> Result<()> {
    let Some(all_mcs) = &d.mcs else {
        return Ok(());
    };
    let mut all: Vec<String> = d
        .clusters
        .store
        .state()
        .iter()
        .filter(|c| Served::Push.serves(c) && c.metadata.deletion_timestamp.is_none())
        .map(|c| c.name().to_string())
        .collect();
    all.sort();
    for m in all_mcs.store.state() {
        if m.metadata.deletion_timestamp.is_some()
            || mcs::invalid_types(&m.spec).is_some()
            || !m.spec.types.iter().any(|t| t == TYPE_CROSS_CLUSTER)
        {
            continue;
        }
        let (ns, name) = (m.namespace().unwrap_or_default(), m.name_any());
        let (providers, consumers) = mcs::mcs_clusters(&m.spec, &all);
        let slices: Vec<&Value> = collected
            .iter()
            .filter(|s| {
                mcs::exported_service(s) == (ns.as_str(), name.as_str())
                    && providers.iter().any(|p| p == mcs::provision_cluster(s))
            })
            .collect();
        let labels = work_labels(
            BY_ENDPOINTSLICE_DISPATCH,
            &[
                (MCS_NAME_LABEL, name.as_str()),
                (MCS_NAMESPACE_LABEL, ns.as_str()),
            ],
        );
        for c in &consumers {
            for s in slices.iter().filter(|s| mcs::provision_cluster(s) != c) {
                let member = mcs::member_slice(s, &name, KARMADA_DISPATCH_CONTROLLER);
                plan.slice(BY_ENDPOINTSLICE_DISPATCH, c, s);
                plan.works
                    .push(work_value(&mcs::dispatch_work(&member, c, labels.clone())));
            }
        }
        let from: BTreeSet<&str> = slices.iter().map(|s| mcs::provision_cluster(s)).collect();
        let message = format!(
            "EndpointSlices from clusters [{}] dispatched to consumer clusters [{}]",
            from.into_iter().collect::<Vec<_>>().join(", "),
            consumers.join(", ")
        );
        let cond = condition(
            CONDITION_ENDPOINTSLICE_DISPATCHED,
            true,
            "EndpointSliceDispatchedSucceed",
            &message,
            m.metadata.generation,
        );
        let current = m
            .status
            .as_ref()
            .and_then(|s| s.conditions.clone())
            .unwrap_or_default();
        let mut next = current.clone();
        if set_condition(&mut next, cond) {
            crate::multicluster_service::write_conditions(&d.ctx.control_plane, &ns, &name, &next)
                .await?;
        }
    }
    Ok(())
}
