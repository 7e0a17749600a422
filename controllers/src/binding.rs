//! The binding controller (`binding`): turns each scheduled
//! (Cluster)ResourceBinding into one Work per target cluster, in
//! `karmada-es-<cluster>`, rendered by [`flotilla_api::render::render_work`]
//! (replicas revised, Job completions divided, ClusterOverridePolicies then
//! OverridePolicies applied, Karmada's labels and annotations stamped). The
//! manifest is the template as unstructured JSON, so every field reaches the
//! member.
//!
//! Works of clusters no longer targeted are deleted, unless a graceful
//! eviction task (purge mode other than `Directly`) keeps them. On deletion of the
//! binding its finalizer holds it until every Work with its permanent id is
//! gone (the execution controller removes the member objects first).
//!
//! Containment (flotilla's extension): when the binding's policy carries
//! `flotilla.io/contain-template-changes: "true"`, a template change is
//! written to the first cluster of `spec.clusters` only; the other clusters'
//! Works keep the previous rendering until the first cluster reports the
//! workload healthy at the template's new generation.
//!
//! Triggers: the binding itself (a template change reaches it through the
//! detector's update of `spec.resource.resourceVersion`), its Works, any
//! (Cluster)OverridePolicy, and Cluster changes that affect override
//! targeting (labels, spec).

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use flotilla_api::cluster::Cluster;
use flotilla_api::division::{
    divide_job_completions, merge_target_clusters, need_revise_job_completions,
};
use flotilla_api::failover::{containment_holds, containment_requested, first_cluster_proven};
use flotilla_api::names::{cluster_of_execution_space, execution_space_name};
use flotilla_api::policy::{
    CLUSTER_PROPAGATION_POLICY_NAME_ANNOTATION, ClusterOverridePolicy, ClusterPropagationPolicy,
    OverridePolicy, PROPAGATION_POLICY_NAME_ANNOTATION, PROPAGATION_POLICY_NAMESPACE_ANNOTATION,
    PropagationPolicy,
};
use flotilla_api::render::{BindingRef, RenderInput, render_work};
use flotilla_api::work::{TargetCluster, WORK_PERMANENT_ID_LABEL, Work};
use futures::StreamExt;
use kube::api::{DeleteParams, ListParams, PostParams};
use kube::runtime::controller::Action;
use kube::runtime::reflector::{ObjectRef, Store};
use kube::{Api, ResourceExt};
use serde_json::{Value, json};

use crate::overlay::Overlay;
use crate::propagation::{
    BindingResource, Resolver, binding_of_work, cache_ready, cluster_placement_hash, every_change,
    is_conflict, is_not_found, permanent_id, set_finalizer, shared_controller, spec_hash,
    watch_shared, work_spec_hash,
};
use crate::workqueue::RunQueued;
use crate::{Context, ControllerFuture, Error, Result};

/// Starts the binding controller (the `binding` entry of [`crate::controllers`]).
pub fn start(ctx: Context) -> ControllerFuture {
    crate::for_both_binding_kinds!(run, ctx)
}

struct BindingCtx {
    ctx: Context,
    clusters: Store<Cluster>,
    works: Store<Work>,
    overrides: Store<OverridePolicy>,
    cluster_overrides: Store<ClusterOverridePolicy>,
    policies: Store<PropagationPolicy>,
    cluster_policies: Store<ClusterPropagationPolicy>,
    resolver: Resolver,
    /// Works as this controller last wrote them (its Work cache lags).
    written: Overlay<Work>,
}

/// Whether the binding's (Cluster)PropagationPolicy asks for containment of
/// template changes (flotilla's annotation, see [`flotilla_api::failover`]).
fn containment<B: BindingResource>(bctx: &BindingCtx, b: &B) -> bool {
    let a = b.annotations();
    if let (Some(name), Some(ns)) = (
        a.get(PROPAGATION_POLICY_NAME_ANNOTATION),
        a.get(PROPAGATION_POLICY_NAMESPACE_ANNOTATION),
    ) {
        return bctx
            .policies
            .get(&ObjectRef::new(name).within(ns))
            .is_some_and(|p| containment_requested(p.metadata.annotations.as_ref()));
    }
    a.get(CLUSTER_PROPAGATION_POLICY_NAME_ANNOTATION)
        .and_then(|name| bctx.cluster_policies.get(&ObjectRef::new(name)))
        .is_some_and(|p| containment_requested(p.metadata.annotations.as_ref()))
}

/// Bindings that name `policy` (by the claim annotations).
fn bindings_of_policy<B: BindingResource>(
    store: &Store<B>,
    name_key: &str,
    name: &str,
    namespace: Option<&str>,
) -> Vec<ObjectRef<B>> {
    store
        .state()
        .iter()
        .filter(|b| {
            let a = b.annotations();
            a.get(name_key).map(String::as_str) == Some(name)
                && namespace.is_none_or(|ns| {
                    a.get(PROPAGATION_POLICY_NAMESPACE_ANNOTATION)
                        .map(String::as_str)
                        == Some(ns)
                })
        })
        .map(|b| ObjectRef::from_obj(&**b))
        .collect()
}

fn all_refs<B: BindingResource>(store: &Store<B>) -> Vec<ObjectRef<B>> {
    store
        .state()
        .iter()
        .map(|b| ObjectRef::from_obj(&**b))
        .collect()
}

async fn run<B: BindingResource>(ctx: Context) -> Result<()> {
    let cp = ctx.control_plane.clone();
    let (clusters, cluster_changes) = watch_shared(
        &ctx,
        Api::<Cluster>::all(cp.clone()),
        cluster_placement_hash,
    );
    // Work status changes do not concern the binding controller
    let (works, work_changes) = watch_shared(&ctx, Api::<Work>::all(cp.clone()), work_spec_hash);
    let (overrides, override_changes) =
        watch_shared(&ctx, Api::<OverridePolicy>::all(cp.clone()), every_change);
    let (cluster_overrides, cluster_override_changes) = watch_shared(
        &ctx,
        Api::<ClusterOverridePolicy>::all(cp.clone()),
        every_change,
    );

    // the containment annotation of flotilla's extension
    let (policies, policy_changes) = watch_shared(
        &ctx,
        Api::<PropagationPolicy>::all(cp.clone()),
        every_change,
    );
    let (cluster_policies, cluster_policy_changes) = watch_shared(
        &ctx,
        Api::<ClusterPropagationPolicy>::all(cp.clone()),
        every_change,
    );

    let wq = crate::workqueue::Queue::new("binding");
    let controller = shared_controller(&wq, &ctx, Api::<B>::all(cp), spec_hash::<B>);
    let (b1, b2, b3) = (controller.store(), controller.store(), controller.store());
    let (b4, b5) = (controller.store(), controller.store());
    controller
        .watches_shared_stream(
            work_changes,
            wq.mapper(|w: Arc<Work>| binding_of_work::<B>(&w)),
        )
        .watches_shared_stream(
            cluster_changes,
            wq.mapper(move |_: Arc<Cluster>| all_refs(&b1)),
        )
        .watches_shared_stream(
            override_changes,
            wq.mapper(move |p: Arc<OverridePolicy>| {
                let ns = p.namespace();
                b2.state()
                    .iter()
                    .filter(|b| b.namespace() == ns)
                    .map(|b| ObjectRef::from_obj(&**b))
                    .collect::<Vec<_>>()
            }),
        )
        .watches_shared_stream(
            cluster_override_changes,
            wq.mapper(move |_: Arc<ClusterOverridePolicy>| all_refs(&b3)),
        )
        .watches_shared_stream(
            policy_changes,
            wq.mapper(move |p: Arc<PropagationPolicy>| {
                let ns = p.namespace().unwrap_or_default();
                bindings_of_policy(
                    &b4,
                    PROPAGATION_POLICY_NAME_ANNOTATION,
                    &p.name_any(),
                    Some(&ns),
                )
            }),
        )
        .watches_shared_stream(
            cluster_policy_changes,
            wq.mapper(move |p: Arc<ClusterPropagationPolicy>| {
                bindings_of_policy(
                    &b5,
                    CLUSTER_PROPAGATION_POLICY_NAME_ANNOTATION,
                    &p.name_any(),
                    None,
                )
            }),
        )
        .run_queued(
            &wq,
            reconcile::<B>,
            error_policy::<B>,
            Arc::new(BindingCtx {
                ctx,
                clusters,
                works: works.clone(),
                overrides,
                cluster_overrides,
                policies,
                cluster_policies,
                resolver: Resolver::default(),
                written: Overlay::new(works.clone()),
            }),
        )
        .for_each(|_| async {})
        .await;
    Ok(())
}

fn error_policy<B: BindingResource>(b: Arc<B>, err: &Error, _ctx: Arc<BindingCtx>) -> Action {
    tracing::warn!(binding = %b.name_any(), error = %err, "binding reconcile failed, retrying");
    Action::requeue(Duration::from_millis(500))
}

/// Works of this binding (by its permanent id), from the cache.
fn works_of(works: &Store<Work>, id_label: &str, id: &str) -> Vec<Arc<Work>> {
    works
        .state()
        .into_iter()
        .filter(|w| w.labels().get(id_label).map(String::as_str) == Some(id))
        .collect()
}

#[tracing::instrument(skip_all, fields(binding = %b.name_any()))]
async fn reconcile<B: BindingResource>(b: Arc<B>, bctx: Arc<BindingCtx>) -> Result<Action> {
    let cp = bctx.ctx.control_plane.clone();
    let id = permanent_id(&*b);
    if b.meta().deletion_timestamp.is_some() {
        return finalize(&*b, &bctx, &id).await;
    }
    if id.is_empty() {
        return Ok(Action::await_change());
    }
    let ready = cache_ready(&bctx.clusters).await
        && cache_ready(&bctx.works).await
        && cache_ready(&bctx.overrides).await
        && cache_ready(&bctx.cluster_overrides).await
        && cache_ready(&bctx.policies).await
        && cache_ready(&bctx.cluster_policies).await;
    if !ready {
        return Ok(Action::requeue(Duration::from_millis(100)));
    }
    let spec = b.spec();
    let r = &spec.resource;
    let resolved = match bctx
        .resolver
        .resolve("", &cp, &r.api_version, &r.kind)
        .await
    {
        Ok(res) => res,
        Err(Error::Kube(e)) if is_not_found(&e) => {
            return Ok(Action::requeue(Duration::from_secs(5)));
        }
        Err(e) => return Err(e),
    };
    let Some(template) = resolved
        .api(cp.clone(), &r.namespace)
        .get_opt(&r.name)
        .await?
    else {
        // the template is gone; garbage collection deletes this binding
        return Ok(Action::await_change());
    };
    if template.metadata.uid.as_deref() != Some(r.uid.as_str()) && !r.uid.is_empty() {
        return Ok(Action::await_change());
    }
    let template_generation = template.metadata.generation.unwrap_or_default();
    let mut template = serde_json::to_value(&template)?;
    if let Some(m) = template.as_object_mut() {
        m.insert("apiVersion".into(), json!(r.api_version));
        m.insert("kind".into(), json!(r.kind));
    }

    let required: Vec<TargetCluster> = spec
        .required_by
        .iter()
        .flat_map(|s| s.clusters.iter().cloned())
        .collect();
    let targets = merge_target_clusters(&spec.clusters, required);
    let completions =
        if r.kind == "Job" && need_revise_job_completions(spec.replicas, spec.placement.as_ref()) {
            template
                .pointer("/spec/completions")
                .and_then(Value::as_i64)
                .map(|c| divide_job_completions(c as i32, &spec.clusters, &r.uid))
        } else {
            None
        };
    let overrides: Vec<OverridePolicy> = bctx
        .overrides
        .state()
        .iter()
        .filter(|p| p.namespace().as_deref() == Some(r.namespace.as_str()))
        .map(|p| (**p).clone())
        .collect();
    let cluster_overrides: Vec<ClusterOverridePolicy> = bctx
        .cluster_overrides
        .state()
        .iter()
        .map(|p| (**p).clone())
        .collect();
    let namespace = b.namespace().unwrap_or_default();
    let name = b.name_any();
    let existing = works_of(&bctx.works, B::ID_LABEL, &id);
    let syncing = std::time::Instant::now();
    let mut errors = Vec::new();
    // containment: the other clusters wait for the first to prove the change
    let contain = containment(&bctx, &*b);
    let first = spec
        .clusters
        .first()
        .map(|c| c.name.clone())
        .unwrap_or_default();
    let first_proven = first_cluster_proven(
        b.status()
            .and_then(|s| s.aggregated_status.iter().find(|i| i.cluster_name == first)),
        template_generation,
    );
    let mut held = Vec::new();
    let mut stale = false;
    let mut writes = Vec::new();
    for target in &targets {
        let Some(cluster) = bctx.clusters.get(&ObjectRef::new(&target.name)) else {
            continue;
        };
        let job_completions = completions.as_ref().map(|c| {
            c.iter()
                .find(|t| t.name == target.name)
                .map(|t| t.replicas)
                .unwrap_or(0)
        });
        let ws = execution_space_name(&target.name);
        let wname = flotilla_api::names::work_name(&r.kind, &r.name, &r.namespace);
        let current = bctx.written.newest(
            Some(&ws),
            &wname,
            bctx.works.get(&ObjectRef::new(&wname).within(&ws)),
        );
        if contain && containment_holds(&target.name, &first, first_proven, current.is_some()) {
            held.push(target.name.clone());
            continue;
        }
        let fresh_id: BTreeMap<String, String> = BTreeMap::from([(
            WORK_PERMANENT_ID_LABEL.to_string(),
            uuid::Uuid::new_v4().to_string(),
        )]);
        let labels = current
            .as_ref()
            .map(|w| w.labels().clone())
            .filter(|l| l.contains_key(WORK_PERMANENT_ID_LABEL))
            .unwrap_or(fresh_id);
        let work = match render_work(&RenderInput {
            template: &template,
            binding: BindingRef {
                name: &name,
                namespace: &namespace,
                permanent_id: &id,
            },
            spec,
            target,
            cluster: &cluster,
            job_completions,
            cluster_overrides: &cluster_overrides,
            overrides: &overrides,
            existing_labels: Some(&labels),
        }) {
            Ok(w) => w,
            Err(e) => {
                errors.push(format!("cluster {}: {e}", target.name));
                continue;
            }
        };
        let (cp, overlay) = (&cp, &bctx.written);
        writes.push(async move {
            let written = write_work(cp, overlay, current.as_deref(), work).await;
            (&target.name, written)
        });
    }
    // one cluster's Work does not wait for another's: written side by side
    for (cluster, written) in futures::future::join_all(writes).await {
        match written {
            Ok(Written::Done) => {}
            Ok(Written::Stale) => stale = true,
            Err(e) => errors.push(format!("cluster {cluster}: {e}")),
        }
    }
    // Works for clusters no longer targeted, except those a graceful
    // eviction keeps until the replacement is healthy
    let retained = flotilla_api::failover::retained_clusters(spec);
    for w in &existing {
        let cluster = w
            .namespace()
            .as_deref()
            .and_then(cluster_of_execution_space)
            .map(str::to_string)
            .unwrap_or_default();
        if !targets.iter().any(|t| t.name == cluster)
            && !retained.contains(&cluster.as_str())
            && w.metadata.deletion_timestamp.is_none()
        {
            delete_work(&cp, w).await?;
            bctx.written.forget(w.namespace().as_deref(), &w.name_any());
        }
    }
    SYNC_DURATION
        .with_label_values(&[crate::metrics::result(errors.is_empty())])
        .observe(syncing.elapsed().as_secs_f64());
    if !errors.is_empty() {
        return Err(Error::InvalidConfig(format!(
            "rendering works failed: {}",
            errors.join("; ")
        )));
    }
    if stale {
        // a Work changed under us (often only its status, which does not wake
        // this controller): render again shortly
        return Ok(Action::requeue(Duration::from_millis(200)));
    }
    if !held.is_empty() {
        // the first cluster's status does not wake this controller: look again
        tracing::debug!(first = %first, held = ?held, generation = template_generation, "template change contained to the first cluster");
        return Ok(Action::requeue(Duration::from_secs(1)));
    }
    Ok(Action::await_change())
}

/// Karmada's `binding_sync_work_duration_seconds{result}`.
static SYNC_DURATION: std::sync::LazyLock<prometheus::HistogramVec> =
    std::sync::LazyLock::new(|| {
        crate::metrics::histogram_vec(
            "binding_sync_work_duration_seconds",
            "Duration in seconds to sync the Works of a binding, by result.",
            &["result"],
            crate::metrics::LATENCY_BUCKETS,
        )
    });
/// What became of a Work write.
pub(crate) enum Written {
    /// Created, updated, or nothing to change.
    Done,
    /// The cached copy was stale (conflict): to be written again.
    Stale,
}

/// Creates the Work, or updates it when its spec, labels, annotations or
/// (when the new Work names any) owners differ. Shared with the namespace
/// sync controller, whose Works are owned by their Namespace.
pub(crate) async fn write_work(
    cp: &kube::Client,
    written: &Overlay<Work>,
    current: Option<&Work>,
    mut work: Work,
) -> Result<Written> {
    let ns = work.namespace().unwrap_or_default();
    let api: Api<Work> = Api::namespaced(cp.clone(), &ns);
    let Some(current) = current else {
        return match api.create(&PostParams::default(), &work).await {
            Ok(created) => {
                written.record(created);
                Ok(Written::Done)
            }
            // created meanwhile (by another writer, or before a restart)
            Err(e) if is_conflict(&e) => Ok(Written::Stale),
            Err(e) => Err(e.into()),
        };
    };
    let mut labels = current.labels().clone();
    labels.extend(work.labels().clone());
    let mut annotations = current.annotations().clone();
    // the override annotations disappear when no policy applies any more
    annotations.remove(flotilla_api::policy::APPLIED_OVERRIDES_ANNOTATION);
    annotations.remove(flotilla_api::policy::APPLIED_CLUSTER_OVERRIDES_ANNOTATION);
    annotations.extend(work.annotations().clone());
    // Works that name no owner keep the current ones
    let owners = work
        .metadata
        .owner_references
        .take()
        .or_else(|| current.metadata.owner_references.clone());
    if current.spec == work.spec
        && current.labels() == &labels
        && current.annotations() == &annotations
        && current.metadata.owner_references == owners
    {
        return Ok(Written::Done);
    }
    let mut finalizers = current.finalizers().to_vec();
    for f in work.finalizers() {
        if !finalizers.contains(f) {
            finalizers.push(f.clone());
        }
    }
    work.metadata = current.metadata.clone();
    work.metadata.labels = Some(labels);
    work.metadata.annotations = Some(annotations);
    work.metadata.finalizers = Some(finalizers);
    work.metadata.owner_references = owners;
    work.metadata.managed_fields = None;
    work.status = None;
    match api
        .replace(&current.name_any(), &PostParams::default(), &work)
        .await
    {
        Ok(replaced) => {
            written.record(replaced);
            Ok(Written::Done)
        }
        // stale copy: try again with the new version
        Err(e) if is_conflict(&e) || is_not_found(&e) => {
            written.forget(Some(&ns), &current.name_any());
            Ok(Written::Stale)
        }
        Err(e) => Err(e.into()),
    }
}

/// Deletes a Work (in the background: the execution controller's finalizer
/// removes its member objects first); gone already is fine.
pub(crate) async fn delete_work(cp: &kube::Client, w: &Work) -> Result<()> {
    let api: Api<Work> = Api::namespaced(cp.clone(), &w.namespace().unwrap_or_default());
    match api.delete(&w.name_any(), &DeleteParams::background()).await {
        Ok(_) => Ok(()),
        Err(e) if is_not_found(&e) => Ok(()),
        Err(e) => Err(e.into()),
    }
}

/// The binding is being deleted: delete its Works, and release the binding
/// once none is left.
async fn finalize<B: BindingResource>(b: &B, bctx: &BindingCtx, id: &str) -> Result<Action> {
    if !b.finalizers().iter().any(|f| f == B::FINALIZER) {
        return Ok(Action::await_change());
    }
    let cp = bctx.ctx.control_plane.clone();
    if !id.is_empty() {
        let lp = ListParams::default().labels(&format!("{}={id}", B::ID_LABEL));
        let works = Api::<Work>::all(cp.clone()).list(&lp).await?;
        if !works.items.is_empty() {
            for w in &works.items {
                if w.metadata.deletion_timestamp.is_none() {
                    delete_work(&cp, w).await?;
                }
            }
            return Ok(Action::requeue(Duration::from_millis(200)));
        }
    }
    let api = B::api(cp, &b.namespace().unwrap_or_default());
    set_finalizer(&api, b, B::FINALIZER, false).await
}
