//! The resource detector (`detector`): claims resource templates for
//! (Cluster)PropagationPolicies and writes their (Cluster)ResourceBindings.
//!
//! Every listable, watchable kind the control plane serves is watched — the
//! built-ins and every CRD, found through discovery and found again when
//! CRDs or APIServices change — except Karmada's own groups and events.
//! A template is matched as Karmada does (`pkg/detector`): a policy that
//! already claims it keeps it while it still matches; otherwise the best
//! PropagationPolicy of its namespace, then the best ClusterPropagationPolicy
//! ([`flotilla_api::matching::select_propagation_policy`]). The claim goes
//! onto the template as labels and annotations, and the binding is built by
//! [`flotilla_api::detector::build_binding`]; an existing binding keeps its
//! scheduling result (`spec.clusters` and the other scheduler-owned fields).
//!
//! Policies themselves are looked after here too: a policy without a
//! permanent id gets one (as the webhook would stamp it), gets the policy
//! finalizer, and on deletion its claims are removed from its bindings and
//! templates, which leaves the propagated objects where they are.

use std::collections::{BTreeMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use flotilla_api::detector::{Binding, build_binding, claim_metadata};
use flotilla_api::matching::{
    Claim, Template, preempting_policy, select_propagation_policy, selectors_match,
};
use flotilla_api::policy::{
    CLUSTER_PROPAGATION_POLICY_FINALIZER, CLUSTER_PROPAGATION_POLICY_NAME_ANNOTATION,
    CLUSTER_PROPAGATION_POLICY_PERMANENT_ID_LABEL, ClusterPropagationPolicy,
    PROPAGATION_POLICY_FINALIZER, PROPAGATION_POLICY_NAME_ANNOTATION,
    PROPAGATION_POLICY_NAMESPACE_ANNOTATION, PROPAGATION_POLICY_PERMANENT_ID_LABEL,
    PropagationPolicy, ResourceSelector,
};
use flotilla_api::work::{ClusterResourceBinding, ResourceBinding};
use futures::{StreamExt, stream};
use k8s_openapi::api::scheduling::v1::PriorityClass;
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{ApiResource, DynamicObject, ListParams, Patch, PatchParams, PostParams};
use kube::discovery::{Discovery, Scope, verbs};
use kube::runtime::controller::{Action, Controller};
use kube::runtime::reflector::{ObjectRef, Store};
use kube::runtime::{PredicateConfig, WatchStreamExt, reflector, watcher};
use kube::{Api, Client, Resource, ResourceExt};
use serde_json::{Value, json};
use tokio::sync::broadcast;

use crate::compact::CompactObject;
use crate::features;
use crate::namespace_sync::reconcile::SkipRules;
use crate::propagation::{
    BindingResource, Resolver, every_change, is_conflict, is_not_found, watch_cached,
};
use crate::workqueue::RunQueued;
use crate::{Context, ControllerFuture, Error, Result};

/// API groups whose objects are never resource templates (Karmada always
/// skips its own groups).
pub const SKIPPED_GROUPS: &[&str] = &[
    "cluster.karmada.io",
    "policy.karmada.io",
    "work.karmada.io",
    "search.karmada.io",
    "config.karmada.io",
    "autoscaling.karmada.io",
    "networking.karmada.io",
    "apiregistration.k8s.io",
    "events.k8s.io",
    "coordination.k8s.io",
    "metrics.k8s.io",
];

/// Label that hands a template to another controller (MultiClusterService);
/// the detector then leaves it alone.
pub const CLAIMED_BY_LABEL: &str = "resourcetemplate.karmada.io/claimed-by";

/// Starts the detector (the `detector` entry of [`crate::controllers`]).
pub fn start(ctx: Context) -> ControllerFuture {
    Box::pin(run(ctx))
}

/// A policy that changed, as the per-kind controllers need it to find the
/// templates to look at again.
#[derive(Clone, Debug)]
struct PolicyChange {
    /// Namespace of a PropagationPolicy; `None` for a ClusterPropagationPolicy.
    namespace: Option<String>,
    name: String,
    selectors: Vec<ResourceSelector>,
    /// `activationPreference: Lazy`: templates the policy already claims
    /// take the change only when they change themselves.
    lazy: bool,
}

struct Shared {
    ctx: Context,
    pps: Store<PropagationPolicy>,
    cpps: Store<ClusterPropagationPolicy>,
    skip: SkipRules,
    changes: broadcast::Sender<PolicyChange>,
    resolver: Resolver,
}

async fn run(ctx: Context) -> Result<()> {
    let client = ctx.control_plane.clone();
    let (changes, _) = broadcast::channel(1024);
    // Policy watches: fill the stores, tell the per-kind controllers.
    let (pps, pp_stream) =
        watch_cached(Api::<PropagationPolicy>::all(client.clone()), every_change);
    let (cpps, cpp_stream) = watch_cached(
        Api::<ClusterPropagationPolicy>::all(client.clone()),
        every_change,
    );
    let shared = Arc::new(Shared {
        skip: SkipRules::new(&ctx.config.skipped_propagating_namespaces)?,
        ctx,
        pps: pps.clone(),
        cpps: cpps.clone(),
        changes,
        resolver: Resolver::default(),
    });

    let tx = shared.changes.clone();
    let forward_pp = tokio::spawn(forward(pp_stream, tx.clone(), |p: &PropagationPolicy| {
        PolicyChange {
            namespace: p.namespace(),
            name: p.name_any(),
            selectors: p.spec.resource_selectors.clone(),
            lazy: p.spec.activation_preference == "Lazy" && p.metadata.deletion_timestamp.is_none(),
        }
    }));
    let forward_cpp = tokio::spawn(forward(cpp_stream, tx, |p: &ClusterPropagationPolicy| {
        PolicyChange {
            namespace: None,
            name: p.name_any(),
            selectors: p.spec.0.resource_selectors.clone(),
            lazy: p.spec.0.activation_preference == "Lazy"
                && p.metadata.deletion_timestamp.is_none(),
        }
    }));
    let _ = pps.wait_until_ready().await;
    let _ = cpps.wait_until_ready().await;

    let policies = tokio::spawn(run_policy_controllers(shared.clone()));
    let result = supervise_kinds(shared).await;
    forward_pp.abort();
    forward_cpp.abort();
    policies.abort();
    result
}

async fn forward<K, S>(
    stream: S,
    tx: broadcast::Sender<PolicyChange>,
    change: impl Fn(&K) -> PolicyChange,
) where
    S: futures::Stream<Item = Result<K, watcher::Error>>,
{
    let mut stream = std::pin::pin!(stream);
    while let Some(ev) = stream.next().await {
        match ev {
            Ok(p) => {
                let _ = tx.send(change(&p));
            }
            Err(e) => tracing::warn!(error = %e, "policy watch failed, retrying"),
        }
    }
}

/// Whether a served resource is a possible resource template.
fn propagatable(ar: &ApiResource, caps: &kube::discovery::ApiCapabilities) -> bool {
    let skipped_core =
        ar.group.is_empty() && matches!(ar.plural.as_str(), "events" | "componentstatuses");
    let skipped = SKIPPED_GROUPS.contains(&ar.group.as_str()) || skipped_core;
    let subresource = ar.plural.contains('/');
    !skipped
        && !subresource
        && caps.supports_operation(verbs::LIST)
        && caps.supports_operation(verbs::WATCH)
}

/// Keeps one template controller per propagatable kind, discovering kinds
/// at start and again whenever CRDs change.
async fn supervise_kinds(shared: Arc<Shared>) -> Result<()> {
    let client = shared.ctx.control_plane.clone();
    let (tx, mut rx) = tokio::sync::mpsc::channel::<()>(1);
    let crd_watch = tokio::spawn({
        let tx = tx.clone();
        let stream = watcher(
            Api::<CustomResourceDefinition>::all(client.clone()),
            watcher::Config::default(),
        )
        .default_backoff()
        .touched_objects();
        async move {
            let mut stream = std::pin::pin!(stream);
            while stream.next().await.is_some() {
                let _ = tx.try_send(());
            }
        }
    });
    let mut running: std::collections::HashMap<(String, String), tokio::task::JoinHandle<()>> =
        Default::default();
    let mut rediscover = tokio::time::interval(Duration::from_secs(30));
    loop {
        match Discovery::new(client.clone()).run().await {
            Ok(discovery) => {
                for group in discovery.groups() {
                    for (ar, caps) in group.recommended_resources() {
                        if !propagatable(&ar, &caps) {
                            continue;
                        }
                        let key = (ar.group.clone(), ar.plural.clone());
                        if running.get(&key).is_some_and(|h| !h.is_finished()) {
                            continue;
                        }
                        tracing::debug!(group = %ar.group, resource = %ar.plural, "detector watching kind");
                        let handle = tokio::spawn(run_kind(
                            shared.clone(),
                            ar,
                            caps.scope == Scope::Namespaced,
                        ));
                        running.insert(key, handle);
                    }
                }
            }
            Err(e) => tracing::warn!(error = %e, "detector discovery failed, retrying"),
        }
        tokio::select! {
            r = rx.recv() => {
                if r.is_none() { break; }
                // let a burst of CRD changes settle, and the CRD become established
                tokio::time::sleep(Duration::from_millis(200)).await;
                while rx.try_recv().is_ok() {}
            }
            _ = rediscover.tick() => {}
        }
    }
    crd_watch.abort();
    for h in running.values() {
        h.abort();
    }
    Ok(())
}

struct KindCtx {
    shared: Arc<Shared>,
    resource: ApiResource,
}

/// The templates of one kind a policy change may affect: those its selectors
/// match and those it claims.
fn affected(
    store: &Store<CompactObject>,
    resource: &ApiResource,
    change: &PolicyChange,
) -> Vec<ObjectRef<CompactObject>> {
    store
        .state()
        .iter()
        .filter(|obj| {
            if let Some(ns) = &change.namespace
                && obj.namespace().as_deref() != Some(ns.as_str())
            {
                return false;
            }
            let a = obj.annotations();
            let claimed = match &change.namespace {
                Some(ns) => {
                    a.get(PROPAGATION_POLICY_NAME_ANNOTATION) == Some(&change.name)
                        && a.get(PROPAGATION_POLICY_NAMESPACE_ANNOTATION) == Some(ns)
                }
                None => a.get(CLUSTER_PROPAGATION_POLICY_NAME_ANNOTATION) == Some(&change.name),
            };
            if claimed {
                // a Lazy policy's change waits for the template's own next change
                return !change.lazy;
            }
            selectors_match(&template_of(obj, resource), &change.selectors)
        })
        .map(|obj| ObjectRef::from_obj_with(&**obj, resource.clone()))
        .collect()
}

fn template_of(obj: &CompactObject, resource: &ApiResource) -> Template {
    Template {
        api_version: resource.api_version.clone(),
        kind: resource.kind.clone(),
        namespace: obj.namespace().unwrap_or_default(),
        name: obj.name_any(),
        labels: obj.labels().clone(),
    }
}

async fn run_kind(shared: Arc<Shared>, resource: ApiResource, _namespaced: bool) {
    // the templates are kept as their JSON, parsed when reconciled
    let api = Api::<CompactObject>::all_with(shared.ctx.control_plane.clone(), &resource);
    // status-only updates (e.g. the aggregated status written back) are not
    // changes of the template: they do not wake the detector
    let writer = reflector::store::Writer::new(resource.clone());
    let store = writer.as_reader();
    let templates = reflector(writer, watcher(api, watcher::Config::default()))
        .default_backoff()
        .touched_objects()
        .predicate_filter(CompactObject::spec_hash, PredicateConfig::default());
    let wq = crate::workqueue::Queue::new("detector");
    let controller =
        Controller::for_stream_with(wq.objects(templates), store.clone(), resource.clone());
    let changes = tokio_stream::wrappers::BroadcastStream::new(shared.changes.subscribe());
    let trigger_resource = resource.clone();
    let trigger = changes
        .filter_map(|c| async move { c.ok() })
        .flat_map(move |change| stream::iter(affected(&store, &trigger_resource, &change)));
    let kctx = Arc::new(KindCtx { shared, resource });
    controller
        .reconcile_on(wq.refs(trigger))
        .run_queued(&wq, reconcile_template, error_policy, kctx)
        .for_each(|_| async {})
        .await;
}

fn error_policy(obj: Arc<CompactObject>, err: &Error, _ctx: Arc<KindCtx>) -> Action {
    tracing::warn!(template = %obj.name_any(), error = %err, "detector reconcile failed, retrying");
    Action::requeue(Duration::from_millis(500))
}

/// The template as JSON with its apiVersion and kind (list items may lack them).
fn template_value(mut v: Value, resource: &ApiResource) -> Result<Value> {
    if let Some(m) = v.as_object_mut() {
        m.insert(
            "apiVersion".into(),
            Value::String(resource.api_version.clone()),
        );
        m.insert("kind".into(), Value::String(resource.kind.clone()));
    }
    Ok(v)
}

/// The claim keys a template or binding may carry.
const CLAIM_LABELS: [&str; 2] = [
    PROPAGATION_POLICY_PERMANENT_ID_LABEL,
    CLUSTER_PROPAGATION_POLICY_PERMANENT_ID_LABEL,
];
const CLAIM_ANNOTATIONS: [&str; 3] = [
    PROPAGATION_POLICY_NAMESPACE_ANNOTATION,
    PROPAGATION_POLICY_NAME_ANNOTATION,
    CLUSTER_PROPAGATION_POLICY_NAME_ANNOTATION,
];

/// The policy already claiming the template, if it still exists, is not
/// being deleted and still matches.
fn current_claim<'a>(
    obj: &CompactObject,
    template: &Template,
    pps: &'a [PropagationPolicy],
    cpps: &'a [ClusterPropagationPolicy],
) -> (Option<Claim<'a>>, bool) {
    let a = obj.annotations();
    let l = obj.labels();
    if l.contains_key(PROPAGATION_POLICY_PERMANENT_ID_LABEL)
        && let (Some(ns), Some(name)) = (
            a.get(PROPAGATION_POLICY_NAMESPACE_ANNOTATION),
            a.get(PROPAGATION_POLICY_NAME_ANNOTATION),
        )
    {
        let found = pps.iter().find(|p| {
            p.namespace().as_deref() == Some(ns.as_str())
                && p.name_any() == *name
                && p.metadata.deletion_timestamp.is_none()
                && selectors_match(template, &p.spec.resource_selectors)
        });
        return (found.map(Claim::Propagation), true);
    }
    if l.contains_key(CLUSTER_PROPAGATION_POLICY_PERMANENT_ID_LABEL)
        && let Some(name) = a.get(CLUSTER_PROPAGATION_POLICY_NAME_ANNOTATION)
    {
        let found = cpps.iter().find(|p| {
            p.name_any() == *name
                && p.metadata.deletion_timestamp.is_none()
                && selectors_match(template, &p.spec.0.resource_selectors)
        });
        return (found.map(Claim::ClusterPropagation), true);
    }
    (None, false)
}

#[tracing::instrument(skip_all, fields(kind = %kctx.resource.kind, template = %obj.name_any()))]
async fn reconcile_template(obj: Arc<CompactObject>, kctx: Arc<KindCtx>) -> Result<Action> {
    let shared = &kctx.shared;
    let namespace = obj.namespace().unwrap_or_default();
    if obj.metadata.deletion_timestamp.is_some()
        || (!namespace.is_empty() && !namespace_propagatable(&shared.skip, &namespace))
        || obj.labels().contains_key(CLAIMED_BY_LABEL)
        || (namespace == "kube-system" && obj.name_any() == "extension-apiserver-authentication")
    {
        return Ok(Action::await_change());
    }
    let value = template_value(obj.value()?, &kctx.resource)?;
    let template = Template::from_value(&value);
    let pps: Vec<PropagationPolicy> = shared
        .pps
        .state()
        .iter()
        .filter(|p| namespace.is_empty() || p.namespace().as_deref() == Some(namespace.as_str()))
        .map(|p| (**p).clone())
        .collect();
    let cpps: Vec<ClusterPropagationPolicy> =
        shared.cpps.state().iter().map(|p| (**p).clone()).collect();
    let matching = std::time::Instant::now();
    let (kept, was_claimed) = current_claim(&obj, &template, &pps, &cpps);
    let preemptor = kept
        .filter(|_| {
            shared
                .ctx
                .config
                .feature_gates
                .enabled(features::PROPAGATION_POLICY_PREEMPTION)
        })
        .and_then(|k| preempting_policy(&template, &k, &pps, &cpps).map(|p| (k, p)));
    let claim = match preemptor {
        Some((_, p)) => Some(p),
        None => kept.or_else(|| select_propagation_policy(&template, &pps, &cpps)),
    };
    METRICS.matched(matching.elapsed());
    let api = Api::<DynamicObject>::all_with(shared.ctx.control_plane.clone(), &kctx.resource);
    let api = if namespace.is_empty() {
        api
    } else {
        Api::namespaced_with(shared.ctx.control_plane.clone(), &namespace, &kctx.resource)
    };
    let Some(claim) = claim else {
        if !was_claimed
            && matches!(
                kctx.resource.kind.as_str(),
                "ConfigMap" | "Secret" | "ServiceAccount" | "PersistentVolumeClaim"
            )
        {
            refresh_attached_binding(shared, &obj, &kctx.resource).await?;
        }
        if was_claimed {
            // its policy is gone or no longer matches: release the template
            // and its binding (which keeps its clusters, unscheduled)
            release_template(&api, &obj).await?;
            release_binding(shared, &obj, &kctx.resource).await?;
        }
        return Ok(Action::await_change());
    };
    let (labels, annotations) = claim_metadata(&claim);
    if labels.values().any(String::is_empty) {
        // the policy has no permanent id yet; the policy controller adds one
        return Ok(Action::requeue(Duration::from_millis(100)));
    }
    let applying = std::time::Instant::now();
    let applied = async {
        let value = match claim_patch(&obj, &labels, &annotations) {
            Some(patch) => {
                let updated = api
                    .patch(
                        &obj.name_any(),
                        &PatchParams::default(),
                        &Patch::Merge(&patch),
                    )
                    .await?;
                template_value(serde_json::to_value(updated)?, &kctx.resource)?
            }
            None => value,
        };
        let priority = schedule_priority(shared, &claim).await?;
        match build_binding(&value, &claim) {
            Binding::Namespaced(mut rb) => {
                rb.spec.schedule_priority = priority;
                upsert_binding(&shared.ctx.control_plane, rb).await
            }
            Binding::Cluster(mut crb) => {
                crb.spec.0.schedule_priority = priority;
                upsert_binding(&shared.ctx.control_plane, crb).await
            }
        }
    }
    .await;
    METRICS.applied(applied.is_ok(), applying.elapsed());
    if let Some((old, new)) = preemptor {
        let ok = applied.is_ok();
        METRICS.preemption(ok);
        let message = match &applied {
            Ok(_) => format!(
                "{} preempted {} successfully",
                describe(&new),
                describe(&old).to_lowercase()
            ),
            Err(e) => format!(
                "{} failed to preempt {}: {e}",
                describe(&new),
                describe(&old).to_lowercase()
            ),
        };
        let r = &kctx.resource;
        crate::events::record(
            &shared.ctx.control_plane,
            "resource-detector",
            crate::events::reference(
                &r.api_version,
                &r.kind,
                &namespace,
                &obj.name_any(),
                obj.uid().as_deref().unwrap_or_default(),
            ),
            if ok {
                crate::events::EventType::Normal
            } else {
                crate::events::EventType::Warning
            },
            if ok {
                "PreemptPolicySucceed"
            } else {
                "PreemptPolicyFailed"
            },
            &message,
        )
        .await;
    }
    applied
}

/// How Karmada's events name a policy (capitalised; Karmada writes the
/// preempted one in lower case).
fn describe(claim: &Claim<'_>) -> String {
    match claim {
        Claim::Propagation(p) => format!(
            "Propagation policy({}/{})",
            p.namespace().unwrap_or_default(),
            p.name_any()
        ),
        Claim::ClusterPropagation(p) => format!("Cluster propagation policy({})", p.name_any()),
    }
}

/// The binding's `spec.schedulePriority` (gate `PriorityBasedScheduling`):
/// the value of the PriorityClass the policy names, as Karmada reads it. A
/// PriorityClass that does not exist is an error, retried until it does.
async fn schedule_priority(
    shared: &Shared,
    claim: &Claim<'_>,
) -> Result<Option<flotilla_api::work::BindingSchedulePriority>> {
    let spec = match claim {
        Claim::Propagation(p) => &p.spec,
        Claim::ClusterPropagation(p) => &p.spec.0,
    };
    let Some(sp) = spec.schedule_priority.as_ref() else {
        return Ok(None);
    };
    if !shared
        .ctx
        .config
        .feature_gates
        .enabled(features::PRIORITY_BASED_SCHEDULING)
    {
        return Ok(None);
    }
    let api: Api<PriorityClass> = Api::all(shared.ctx.control_plane.clone());
    match api.get_opt(&sp.priority_class_name).await? {
        Some(pc) => Ok(Some(flotilla_api::work::BindingSchedulePriority {
            priority: pc.value,
        })),
        None => Err(Error::InvalidConfig(format!(
            "PriorityClass {:?} named by {} does not exist",
            sp.priority_class_name,
            describe(claim)
        ))),
    }
}

/// Karmada's detector metrics.
struct DetectorMetrics {
    match_duration: prometheus::HistogramVec,
    apply_duration: prometheus::HistogramVec,
    apply_attempts: prometheus::IntCounterVec,
    preemptions: prometheus::IntCounterVec,
}

static METRICS: std::sync::LazyLock<DetectorMetrics> =
    std::sync::LazyLock::new(|| DetectorMetrics {
        match_duration: crate::metrics::histogram_vec(
            "resource_match_policy_duration_seconds",
            "Duration in seconds to find a matched propagation policy for a resource template.",
            &[],
            crate::metrics::LATENCY_BUCKETS,
        ),
        apply_duration: crate::metrics::histogram_vec(
            "resource_apply_policy_duration_seconds",
            "Duration in seconds to apply a propagation policy to a resource template, by result.",
            &["result"],
            crate::metrics::LATENCY_BUCKETS,
        ),
        apply_attempts: crate::metrics::counter_vec(
            "policy_apply_attempts_total",
            "Number of attempts to apply a propagation policy to a resource template, by result.",
            &["result"],
        ),
        preemptions: crate::metrics::counter_vec(
            "policy_preemption_total",
            "Number of preemptions of a resource template from one policy by another, by result.",
            &["result"],
        ),
    });

impl DetectorMetrics {
    fn matched(&self, elapsed: Duration) {
        self.match_duration
            .with_label_values(&[] as &[&str])
            .observe(elapsed.as_secs_f64());
    }

    fn applied(&self, ok: bool, elapsed: Duration) {
        let result = crate::metrics::result(ok);
        self.apply_duration
            .with_label_values(&[result])
            .observe(elapsed.as_secs_f64());
        self.apply_attempts.with_label_values(&[result]).inc();
    }

    fn preemption(&self, ok: bool) {
        self.preemptions
            .with_label_values(&[crate::metrics::result(ok)])
            .inc();
    }
}

/// A dependency that follows a workload (`propagateDeps`) has an attached
/// binding the detector did not write; when the dependency changes, its
/// binding's `spec.resource.resourceVersion` is brought up to date so that
/// the binding controller renders the change into the Works.
async fn refresh_attached_binding(
    shared: &Shared,
    obj: &CompactObject,
    resource: &ApiResource,
) -> Result<()> {
    let Some(ns) = obj.namespace() else {
        return Ok(());
    };
    let api: Api<ResourceBinding> = Api::namespaced(shared.ctx.control_plane.clone(), &ns);
    let name = flotilla_api::names::binding_name(&resource.kind, &obj.name_any());
    let Some(rb) = api.get_opt(&name).await? else {
        return Ok(());
    };
    let rv = obj.resource_version().unwrap_or_default();
    if rb.spec.required_by.is_empty() || rb.spec.resource.resource_version == rv {
        return Ok(());
    }
    let patch = json!({"spec": {"resource": {"resourceVersion": rv}}});
    match api
        .patch(&name, &PatchParams::default(), &Patch::Merge(&patch))
        .await
    {
        Ok(_) => Ok(()),
        Err(e) if is_not_found(&e) => Ok(()),
        Err(e) => Err(e.into()),
    }
}

fn namespace_propagatable(skip: &SkipRules, namespace: &str) -> bool {
    // `default` is a fine place for templates; only the namespace sync
    // controller skips it
    namespace == "default" || skip.name_should_sync(namespace)
}

/// The merge patch putting the claim on a template (and taking any other
/// policy's claim off), or `None` when it is already there.
fn claim_patch(
    obj: &CompactObject,
    labels: &BTreeMap<String, String>,
    annotations: &BTreeMap<String, String>,
) -> Option<Value> {
    let mut l = serde_json::Map::new();
    let mut a = serde_json::Map::new();
    for key in CLAIM_LABELS {
        match labels.get(key) {
            Some(v) if obj.labels().get(key) != Some(v) => {
                l.insert(key.into(), json!(v));
            }
            None if obj.labels().contains_key(key) => {
                l.insert(key.into(), Value::Null);
            }
            _ => {}
        }
    }
    for key in CLAIM_ANNOTATIONS {
        match annotations.get(key) {
            Some(v) if obj.annotations().get(key) != Some(v) => {
                a.insert(key.into(), json!(v));
            }
            None if obj.annotations().contains_key(key) => {
                a.insert(key.into(), Value::Null);
            }
            _ => {}
        }
    }
    if l.is_empty() && a.is_empty() {
        return None;
    }
    Some(json!({"metadata": {"labels": l, "annotations": a}}))
}

fn release_patch() -> Value {
    let l: serde_json::Map<String, Value> = CLAIM_LABELS
        .iter()
        .map(|k| (k.to_string(), Value::Null))
        .collect();
    let a: serde_json::Map<String, Value> = CLAIM_ANNOTATIONS
        .iter()
        .map(|k| (k.to_string(), Value::Null))
        .collect();
    json!({"metadata": {"labels": l, "annotations": a}})
}

async fn release_template(api: &Api<DynamicObject>, obj: &CompactObject) -> Result<()> {
    match api
        .patch(
            &obj.name_any(),
            &PatchParams::default(),
            &Patch::Merge(&release_patch()),
        )
        .await
    {
        Ok(_) => Ok(()),
        Err(e) if is_not_found(&e) => Ok(()),
        Err(e) => Err(e.into()),
    }
}

async fn release_binding(
    shared: &Shared,
    obj: &CompactObject,
    resource: &ApiResource,
) -> Result<()> {
    let name = flotilla_api::names::binding_name(&resource.kind, &obj.name_any());
    let cp = shared.ctx.control_plane.clone();
    let res = match obj.namespace() {
        Some(ns) => Api::<ResourceBinding>::namespaced(cp, &ns)
            .patch(
                &name,
                &PatchParams::default(),
                &Patch::Merge(&release_patch()),
            )
            .await
            .map(|_| ()),
        None => Api::<ClusterResourceBinding>::all(cp)
            .patch(
                &name,
                &PatchParams::default(),
                &Patch::Merge(&release_patch()),
            )
            .await
            .map(|_| ()),
    };
    match res {
        Ok(()) => Ok(()),
        Err(e) if is_not_found(&e) => Ok(()),
        Err(e) => Err(e.into()),
    }
}

/// Creates the binding, or updates the existing one in place keeping what
/// the scheduler and other controllers own in its spec.
async fn upsert_binding<B: BindingResource>(cp: &Client, mut desired: B) -> Result<Action> {
    let namespace = desired.meta().namespace.clone().unwrap_or_default();
    let name = desired.meta().name.clone().unwrap_or_default();
    let api = B::api(cp.clone(), &namespace);
    let Some(existing) = api.get_opt(&name).await? else {
        desired
            .meta_mut()
            .labels
            .get_or_insert_with(Default::default)
            .entry(B::ID_LABEL.to_string())
            .or_insert_with(|| uuid::Uuid::new_v4().to_string());
        return match api.create(&PostParams::default(), &desired).await {
            Ok(_) => Ok(Action::await_change()),
            Err(e) if is_conflict(&e) => Ok(Action::requeue(Duration::from_millis(50))),
            Err(e) => Err(e.into()),
        };
    };
    let template_uid = desired
        .meta()
        .owner_references
        .as_ref()
        .and_then(|o| o.first())
        .map(|o| o.uid.clone());
    let stale = existing
        .meta()
        .owner_references
        .iter()
        .flatten()
        .any(|o| o.controller == Some(true) && Some(&o.uid) != template_uid.as_ref());
    if stale {
        // a binding of an earlier template of the same name: wait for GC
        return Ok(Action::requeue(Duration::from_secs(1)));
    }
    let mut merged = existing.clone();
    {
        let meta = merged.meta_mut();
        let labels = meta.labels.get_or_insert_with(Default::default);
        for k in CLAIM_LABELS {
            labels.remove(k);
        }
        labels.extend(desired.meta().labels.clone().unwrap_or_default());
        labels
            .entry(B::ID_LABEL.to_string())
            .or_insert_with(|| uuid::Uuid::new_v4().to_string());
        let annotations = meta.annotations.get_or_insert_with(Default::default);
        for k in CLAIM_ANNOTATIONS {
            annotations.remove(k);
        }
        annotations.extend(desired.meta().annotations.clone().unwrap_or_default());
        meta.owner_references = desired.meta().owner_references.clone();
        let finalizers = meta.finalizers.get_or_insert_with(Default::default);
        if !finalizers.iter().any(|f| f == B::FINALIZER) {
            finalizers.push(B::FINALIZER.to_string());
        }
    }
    let mut spec = desired.spec().clone();
    let old = existing.spec();
    spec.clusters = old.clusters.clone();
    spec.reschedule_triggered_at = old.reschedule_triggered_at.clone();
    spec.graceful_eviction_tasks = old.graceful_eviction_tasks.clone();
    spec.required_by = old.required_by.clone();
    if let Some(s) = spec.suspension.as_mut() {
        s.scheduling = old.suspension.as_ref().and_then(|o| o.scheduling);
    }
    *merged.spec_mut() = spec;
    if merged.meta() == existing.meta() && merged.spec() == existing.spec() {
        return Ok(Action::await_change());
    }
    match api.replace(&name, &PostParams::default(), &merged).await {
        Ok(_) => Ok(Action::await_change()),
        Err(e) if is_conflict(&e) => Ok(Action::requeue(Duration::from_millis(50))),
        Err(e) => Err(e.into()),
    }
}

// ---------------------------------------------------------------------------
// Policies: permanent ids, finalizers, and releasing claims on deletion.

async fn run_policy_controllers(shared: Arc<Shared>) {
    let cp = shared.ctx.control_plane.clone();
    let pp = Controller::new(
        Api::<PropagationPolicy>::all(cp.clone()),
        watcher::Config::default(),
    )
    .run(
        |p, s| reconcile_policy(PolicyRef::Namespaced(p), s),
        policy_error,
        shared.clone(),
    )
    .for_each(|_| async {});
    let cpp = Controller::new(
        Api::<ClusterPropagationPolicy>::all(cp),
        watcher::Config::default(),
    )
    .run(
        |p, s| reconcile_policy(PolicyRef::Cluster(p), s),
        policy_error,
        shared,
    )
    .for_each(|_| async {});
    futures::join!(pp, cpp);
}

fn policy_error<K: Resource>(p: Arc<K>, err: &Error, _s: Arc<Shared>) -> Action {
    tracing::warn!(policy = ?p.meta().name, error = %err, "policy reconcile failed, retrying");
    Action::requeue(Duration::from_secs(1))
}

enum PolicyRef {
    Namespaced(Arc<PropagationPolicy>),
    Cluster(Arc<ClusterPropagationPolicy>),
}

async fn reconcile_policy(policy: PolicyRef, shared: Arc<Shared>) -> Result<Action> {
    let cp = shared.ctx.control_plane.clone();
    let (meta, id_label, finalizer, api): (_, _, _, Api<DynamicObject>) = match &policy {
        PolicyRef::Namespaced(p) => (
            p.meta().clone(),
            PROPAGATION_POLICY_PERMANENT_ID_LABEL,
            PROPAGATION_POLICY_FINALIZER,
            Api::namespaced_with(
                cp.clone(),
                p.meta().namespace.as_deref().unwrap_or_default(),
                &ApiResource::erase::<PropagationPolicy>(&()),
            ),
        ),
        PolicyRef::Cluster(p) => (
            p.meta().clone(),
            CLUSTER_PROPAGATION_POLICY_PERMANENT_ID_LABEL,
            CLUSTER_PROPAGATION_POLICY_FINALIZER,
            Api::all_with(
                cp.clone(),
                &ApiResource::erase::<ClusterPropagationPolicy>(&()),
            ),
        ),
    };
    let name = meta.name.clone().unwrap_or_default();
    let has_finalizer = meta.finalizers.iter().flatten().any(|f| f == finalizer);
    if meta.deletion_timestamp.is_some() {
        if !has_finalizer {
            return Ok(Action::await_change());
        }
        let id = meta
            .labels
            .as_ref()
            .and_then(|l| l.get(id_label))
            .cloned()
            .unwrap_or_default();
        if !id.is_empty() {
            release_claims(&shared, id_label, &id).await?;
        }
        let finalizers: Vec<&String> = meta
            .finalizers
            .iter()
            .flatten()
            .filter(|f| *f != finalizer)
            .collect();
        let patch = json!({"metadata": {"finalizers": finalizers, "resourceVersion": meta.resource_version}});
        return match api
            .patch(&name, &PatchParams::default(), &Patch::Merge(&patch))
            .await
        {
            Ok(_) => Ok(Action::await_change()),
            Err(e) if is_not_found(&e) => Ok(Action::await_change()),
            Err(e) if is_conflict(&e) => Ok(Action::requeue(Duration::from_millis(50))),
            Err(e) => Err(e.into()),
        };
    }
    let has_id = meta
        .labels
        .as_ref()
        .is_some_and(|l| l.get(id_label).is_some_and(|v| !v.is_empty()));
    if has_id && has_finalizer {
        return Ok(Action::await_change());
    }
    let mut finalizers: Vec<String> = meta.finalizers.clone().unwrap_or_default();
    if !has_finalizer {
        finalizers.push(finalizer.to_string());
    }
    let mut patch =
        json!({"metadata": {"finalizers": finalizers, "resourceVersion": meta.resource_version}});
    if !has_id {
        patch["metadata"]["labels"] = json!({ id_label: uuid::Uuid::new_v4().to_string() });
    }
    match api
        .patch(&name, &PatchParams::default(), &Patch::Merge(&patch))
        .await
    {
        Ok(_) => Ok(Action::await_change()),
        Err(e) if is_not_found(&e) => Ok(Action::await_change()),
        Err(e) if is_conflict(&e) => Ok(Action::requeue(Duration::from_millis(50))),
        Err(e) => Err(e.into()),
    }
}

/// Takes a deleted policy's claim off every binding carrying its id and off
/// each binding's template. Bindings, Works and member objects stay.
async fn release_claims(shared: &Shared, id_label: &str, id: &str) -> Result<()> {
    let cp = shared.ctx.control_plane.clone();
    let lp = ListParams::default().labels(&format!("{id_label}={id}"));
    let mut templates = Vec::new();
    for rb in Api::<ResourceBinding>::all(cp.clone()).list(&lp).await? {
        templates.push(rb.spec.resource.clone());
        Api::<ResourceBinding>::namespaced(cp.clone(), &rb.namespace().unwrap_or_default())
            .patch(
                &rb.name_any(),
                &PatchParams::default(),
                &Patch::Merge(&release_patch()),
            )
            .await
            .map(|_| ())
            .or_else(ignore_not_found)?;
    }
    for crb in Api::<ClusterResourceBinding>::all(cp.clone())
        .list(&lp)
        .await?
    {
        templates.push(crb.spec.0.resource.clone());
        Api::<ClusterResourceBinding>::all(cp.clone())
            .patch(
                &crb.name_any(),
                &PatchParams::default(),
                &Patch::Merge(&release_patch()),
            )
            .await
            .map(|_| ())
            .or_else(ignore_not_found)?;
    }
    let seen: Mutex<HashSet<(String, String, String, String)>> = Mutex::default();
    for t in templates {
        let key = (
            t.api_version.clone(),
            t.kind.clone(),
            t.namespace.clone(),
            t.name.clone(),
        );
        if !seen.lock().map(|mut s| s.insert(key)).unwrap_or(true) {
            continue;
        }
        let resolved = match shared
            .resolver
            .resolve("", &cp, &t.api_version, &t.kind)
            .await
        {
            Ok(r) => r,
            Err(Error::Kube(e)) if is_not_found(&e) => continue,
            Err(e) => return Err(e),
        };
        resolved
            .api(cp.clone(), &t.namespace)
            .patch(
                &t.name,
                &PatchParams::default(),
                &Patch::Merge(&release_patch()),
            )
            .await
            .map(|_| ())
            .or_else(ignore_not_found)?;
    }
    Ok(())
}

fn ignore_not_found(e: kube::Error) -> Result<(), kube::Error> {
    if is_not_found(&e) { Ok(()) } else { Err(e) }
}
