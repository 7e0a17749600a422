//! The multiclusterservice controller (`multiclusterservice`): for every
//! MultiClusterService (`networking.karmada.io/v1alpha1`) of type
//! `CrossCluster`, propagates the control plane's Service of the same name
//! into its provider and consumer clusters (`providerClusters` /
//! `consumerClusters`, every cluster when empty), as Works labelled
//! `endpointslice.karmada.io/managed-by: multiclusterservice-controller` and
//! `multiclusterservice.karmada.io/name|namespace`, and reports the
//! `ServiceApplied` condition. A cluster that already gets the Service
//! through a PropagationPolicy keeps that Work. The endpoints follow through
//! [`crate::endpointslice_collect`] and [`crate::endpointslice_dispatch`].
//!
//! Bad `spec.types` gives `ServiceApplied=False` naming the field. Type
//! `LoadBalancer` is recorded and reported with `LoadBalancerExposed=False`
//! (reason `Unsupported`): flotilla provisions no load balancers.
//!
//! Everything the controller wrote goes away with the MultiClusterService
//! (its Works, and through them the member Services).

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use flotilla_api::cluster::Cluster;
use flotilla_api::multicluster::{
    self as mcs, BY_MULTICLUSTER_SERVICE, MANAGED_BY_LABEL, MCS_NAME_LABEL, MCS_NAMESPACE_LABEL,
    TYPE_CROSS_CLUSTER, TYPE_LOAD_BALANCER,
};
use flotilla_api::networking::MultiClusterService;
use flotilla_api::work::Work;
use k8s_openapi::api::core::v1::Service;
use kube::api::{Patch, PatchParams};
use kube::runtime::controller::Action;
use kube::runtime::reflector::ObjectRef;
use kube::runtime::watcher;
use kube::{Api, ResourceExt};
use serde_json::json;

use crate::multicluster::{
    Poke, Watch, as_value, converge, sync_loop, values, work_kind, work_value,
};
use crate::propagation::{Served, condition, is_not_found, set_condition};
use crate::service_export::owned_selector;
use crate::{Context, ControllerFuture, Result};

/// Condition: the Service was propagated to the provider and consumer clusters.
pub const CONDITION_SERVICE_APPLIED: &str = "ServiceApplied";
/// Condition: a load balancer exposes the service (never True in flotilla).
pub const CONDITION_LOAD_BALANCER_EXPOSED: &str = "LoadBalancerExposed";

/// Starts the controller (the `multiclusterservice` entry of [`crate::controllers`]).
pub fn start(ctx: Context) -> ControllerFuture {
    Box::pin(run(ctx))
}

struct Mcs {
    ctx: Context,
    clusters: Watch<Cluster>,
    mcs: Watch<MultiClusterService>,
    services: Watch<Service>,
    works: Watch<Work>,
}

/// Runs the controller until the process stops.
pub async fn run(ctx: Context) -> Result<()> {
    let cp = ctx.control_plane.clone();
    let notify = Arc::new(Poke::new("multiclusterservice"));
    let all = || watcher::Config::default();
    let state = Mcs {
        clusters: Watch::start(Api::all(cp.clone()), all(), notify.clone()),
        mcs: Watch::start(Api::all(cp.clone()), all(), notify.clone()),
        services: Watch::start(Api::all(cp.clone()), all(), notify.clone()),
        works: Watch::start(Api::all(cp.clone()), owned_selector(), notify.clone()),
        ctx,
    };
    sync_loop("multiclusterservice", notify, Arc::new(state), sync).await
}

async fn sync(s: Arc<Mcs>) -> Result<Action> {
    if !(s.clusters.ready() && s.mcs.ready() && s.services.ready() && s.works.ready()) {
        return Ok(Action::requeue(Duration::from_millis(100)));
    }
    let mut all: Vec<String> = s
        .clusters
        .store
        .state()
        .iter()
        .filter(|c| Served::Push.serves(c) && c.metadata.deletion_timestamp.is_none())
        .map(|c| c.name().to_string())
        .collect();
    all.sort();
    let mut works = Vec::new();
    for m in s.mcs.store.state() {
        if m.metadata.deletion_timestamp.is_some() {
            continue;
        }
        let (ns, name) = (m.namespace().unwrap_or_default(), m.name_any());
        let generation = m.metadata.generation;
        let mut wanted = Vec::new();
        if let Some(msg) = mcs::invalid_types(&m.spec) {
            wanted.push(condition(
                CONDITION_SERVICE_APPLIED,
                false,
                "InvalidSpec",
                &msg,
                generation,
            ));
        } else if m.spec.types.iter().any(|t| t == TYPE_CROSS_CLUSTER) {
            match s.services.store.get(&ObjectRef::new(&name).within(&ns)) {
                None => wanted.push(condition(
                    CONDITION_SERVICE_APPLIED,
                    false,
                    "ServiceNotFound",
                    &format!("Service {ns}/{name} does not exist in the control plane"),
                    generation,
                )),
                Some(svc) => {
                    let (providers, consumers) = mcs::mcs_clusters(&m.spec, &all);
                    let mut targets: Vec<String> =
                        providers.iter().chain(consumers.iter()).cloned().collect();
                    targets.sort();
                    targets.dedup();
                    let mut manifest = as_value(&*svc);
                    manifest["apiVersion"] = json!("v1");
                    manifest["kind"] = json!("Service");
                    let labels = BTreeMap::from([
                        (
                            MANAGED_BY_LABEL.to_string(),
                            BY_MULTICLUSTER_SERVICE.to_string(),
                        ),
                        (MCS_NAME_LABEL.to_string(), name.clone()),
                        (MCS_NAMESPACE_LABEL.to_string(), ns.clone()),
                    ]);
                    for c in &targets {
                        works.push(work_value(&mcs::dispatch_work(
                            &manifest,
                            c,
                            labels.clone(),
                        )));
                    }
                    wanted.push(condition(
                        CONDITION_SERVICE_APPLIED,
                        true,
                        "ServiceAppliedSucceed",
                        &format!(
                            "Service propagated to provider clusters [{}] and consumer clusters [{}]",
                            providers.join(", "),
                            consumers.join(", ")
                        ),
                        generation,
                    ));
                }
            }
        }
        if m.spec.types.iter().any(|t| t == TYPE_LOAD_BALANCER) {
            wanted.push(condition(
                CONDITION_LOAD_BALANCER_EXPOSED,
                false,
                "Unsupported",
                "spec.types: LoadBalancer is recorded but flotilla provisions no load balancers; CrossCluster is supported",
                generation,
            ));
        }
        let current = m
            .status
            .as_ref()
            .and_then(|st| st.conditions.clone())
            .unwrap_or_default();
        let mut next = current.clone();
        let mut changed = false;
        for c in wanted {
            changed |= set_condition(&mut next, c);
        }
        if changed {
            write_conditions(&s.ctx.control_plane, &ns, &name, &next).await?;
        }
    }
    let stored = values(&s.works.store);
    converge(
        &s.ctx.control_plane,
        &work_kind(),
        BY_MULTICLUSTER_SERVICE,
        &stored,
        works,
    )
    .await?;
    Ok(Action::await_change())
}

/// Writes a MultiClusterService's `status.conditions` (gone already: nothing to do).
pub(crate) async fn write_conditions(
    client: &kube::Client,
    namespace: &str,
    name: &str,
    conditions: &[k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition],
) -> Result<()> {
    let api: Api<MultiClusterService> = Api::namespaced(client.clone(), namespace);
    match api
        .patch_status(
            name,
            &PatchParams::default(),
            &Patch::Merge(&json!({"status": {"conditions": conditions}})),
        )
        .await
    {
        Ok(_) => Ok(()),
        Err(e) if is_not_found(&e) => Ok(()),
        Err(e) => Err(e.into()),
    }
}
