//! The FederatedHPA controller (`federatedHorizontalPodAutoscaler`): every
//! `--horizontal-pod-autoscaler-sync-period` it gathers the pods of a
//! FederatedHPA's scale target from each member cluster the target's
//! ResourceBinding is scheduled to, with their PodMetrics from the members'
//! `metrics.k8s.io`, runs the Kubernetes HPA algorithm over all of them
//! ([`flotilla_api::autoscaling::hpa`]: tolerance, missing and unready pods,
//! stabilization windows, scaling policies) and writes the template's
//! `spec.replicas` on the control plane. The scheduler then divides the new
//! count among the clusters as for any change of the template.
//!
//! Status follows the HorizontalPodAutoscaler's: `currentReplicas`,
//! `desiredReplicas`, `currentMetrics`, `lastScaleTime` and the conditions
//! `AbleToScale`, `ScalingActive`, `ScalingLimited`. Events:
//! `SuccessfulRescale`, `FailedRescale`, `FailedGetScale`,
//! `FailedGetResourceMetric`. Metrics: the gauges
//! `federatedhpa_current_replicas` / `federatedhpa_desired_replicas`
//! `{namespace,name}` (one series per FederatedHPA, removed with it), and
//! Karmada's `federatedhpa_process_duration_seconds{result}` and
//! `federatedhpa_pull_metrics_duration_seconds{result,metricType}`.
//!
//! Only `Resource` metrics (cpu, memory; Utilization and AverageValue) are
//! computed; `Pods`, `Object`, `External` and `ContainerResource` metrics are
//! reported as failing in `ScalingActive`. Pods of Pull clusters are not
//! reachable from the control plane and are not counted.

use std::collections::HashMap;
use std::sync::{Arc, LazyLock, Mutex};
use std::time::{Duration, Instant};

use flotilla_api::autoscaling::FederatedHPA;
use flotilla_api::autoscaling::hpa::{self, Bounds, History, PodSample, Proposal};
use flotilla_api::cluster::{Cluster, SYNC_MODE_PULL};
use flotilla_api::work::ResourceBinding;
use futures::StreamExt;
use k8s_openapi::api::autoscaling::v2::HorizontalPodAutoscalerStatus;
use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::api::{ApiResource, DynamicObject, ListParams, Patch, PatchParams};
use kube::runtime::controller::Action;
use kube::runtime::watcher;
use kube::{Api, Client, ResourceExt};
use prometheus::{HistogramVec, IntGaugeVec};
use serde_json::{Value, json};

use crate::events::{self, EventType};
use crate::propagation::{Resolver, is_not_found, spec_controller};
use crate::workqueue::RunQueued;
use crate::{Context, ControllerFuture, Error, Result, metrics};

/// The controller's name in `--controllers` and in Events.
pub const NAME: &str = "federatedHorizontalPodAutoscaler";
const COMPONENT: &str = "federatedhpa-controller";

struct Families {
    current: IntGaugeVec,
    desired: IntGaugeVec,
    process: HistogramVec,
    pull: HistogramVec,
}

static FAMILIES: LazyLock<Families> = LazyLock::new(|| Families {
    current: metrics::gauge_vec(
        "federatedhpa_current_replicas",
        "Current replicas of each FederatedHPA's scale target.",
        &["namespace", "name"],
    ),
    desired: metrics::gauge_vec(
        "federatedhpa_desired_replicas",
        "Replicas each FederatedHPA last asked for.",
        &["namespace", "name"],
    ),
    process: metrics::histogram_vec(
        "federatedhpa_process_duration_seconds",
        "Duration of one FederatedHPA sync, by result.",
        &["result"],
        metrics::LATENCY_BUCKETS,
    ),
    pull: metrics::histogram_vec(
        "federatedhpa_pull_metrics_duration_seconds",
        "Duration of pulling metrics from the member clusters, by result and metric type.",
        &["result", "metricType"],
        metrics::LATENCY_BUCKETS,
    ),
});

/// Starts the controller (the `federatedHorizontalPodAutoscaler` entry of
/// [`crate::controllers`]).
pub fn start(ctx: Context) -> ControllerFuture {
    Box::pin(run(ctx))
}

struct HpaCtx {
    ctx: Context,
    resolver: Resolver,
    histories: Mutex<HashMap<(String, String), History>>,
}

async fn run(ctx: Context) -> Result<()> {
    let api = Api::<FederatedHPA>::all(ctx.control_plane.clone());
    let hctx = Arc::new(HpaCtx {
        ctx,
        resolver: Resolver::default(),
        histories: Mutex::default(),
    });
    let forget = hctx.clone();
    // a deleted FederatedHPA's series and memory go with it
    let deletions = watcher(api.clone(), watcher::Config::default()).for_each(move |ev| {
        if let Ok(watcher::Event::Delete(h)) = ev {
            let ns = h.namespace().unwrap_or_default();
            let name = h.name_any();
            forget_replicas(&ns, &name);
            if let Ok(mut m) = forget.histories.lock() {
                m.remove(&(ns, name));
            }
        }
        async {}
    });
    let wq = crate::workqueue::Queue::new(NAME);
    let controller = spec_controller(&wq, api)
        .run_queued(&wq, reconcile, error_policy, hctx)
        .for_each(|_| async {});
    futures::join!(deletions, controller);
    Ok(())
}

fn error_policy(h: Arc<FederatedHPA>, err: &Error, _ctx: Arc<HpaCtx>) -> Action {
    tracing::warn!(federatedhpa = %h.name_any(), error = %err, "federatedhpa sync failed, retrying");
    Action::requeue(Duration::from_secs(2))
}

/// A `labelSelector` query from a LabelSelector (JSON).
pub fn selector_query(selector: &Value) -> String {
    let mut parts = Vec::new();
    if let Some(m) = selector.get("matchLabels").and_then(Value::as_object) {
        for (k, v) in m {
            parts.push(format!("{k}={}", v.as_str().unwrap_or_default()));
        }
    }
    for e in selector
        .get("matchExpressions")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        let key = e.get("key").and_then(Value::as_str).unwrap_or_default();
        let values: Vec<&str> = e
            .get("values")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .filter_map(Value::as_str)
            .collect();
        match e
            .get("operator")
            .and_then(Value::as_str)
            .unwrap_or_default()
        {
            "In" => parts.push(format!("{key} in ({})", values.join(","))),
            "NotIn" => parts.push(format!("{key} notin ({})", values.join(","))),
            "Exists" => parts.push(key.to_string()),
            "DoesNotExist" => parts.push(format!("!{key}")),
            _ => {}
        }
    }
    parts.join(",")
}

/// Pods (with their metrics) of one cluster, or why they could not be read.
type ClusterPods = std::result::Result<Vec<(String, Value, Option<Value>)>, String>;

async fn member_pods(
    ctx: &Context,
    cluster_name: &str,
    namespace: &str,
    selector: &str,
) -> ClusterPods {
    let clusters: Api<Cluster> = Api::all(ctx.control_plane.clone());
    let cluster = clusters
        .get(cluster_name)
        .await
        .map_err(|e| format!("cluster {cluster_name}: {e}"))?;
    if cluster.spec.sync_mode == SYNC_MODE_PULL {
        return Err(format!(
            "cluster {cluster_name} is in Pull mode and its metrics are not reachable"
        ));
    }
    let client: Client = ctx.members.get(&cluster).await.map_err(|e| e.to_string())?;
    let lp = ListParams::default().labels(selector);
    let pods = Api::<Pod>::namespaced(client.clone(), namespace)
        .list(&lp)
        .await
        .map_err(|e| format!("cluster {cluster_name}: listing pods: {e}"))?;
    let ar = ApiResource {
        group: "metrics.k8s.io".into(),
        version: "v1beta1".into(),
        api_version: "metrics.k8s.io/v1beta1".into(),
        kind: "PodMetrics".into(),
        plural: "pods".into(),
    };
    let pod_metrics = Api::<DynamicObject>::namespaced_with(client, namespace, &ar)
        .list(&lp)
        .await
        .map_err(|e| format!("cluster {cluster_name}: listing pod metrics: {e}"))?;
    let mut by_name: HashMap<String, Value> = HashMap::new();
    for m in pod_metrics.items {
        let name = m.name_any();
        if let Ok(v) = serde_json::to_value(&m) {
            by_name.insert(name, v);
        }
    }
    Ok(pods
        .items
        .into_iter()
        .filter_map(|p| {
            let name = p.name_any();
            let v = serde_json::to_value(&p).ok()?;
            Some((format!("{cluster_name}/{name}"), v, by_name.remove(&name)))
        })
        .collect())
}

#[tracing::instrument(skip_all, fields(federatedhpa = %h.name_any()))]
async fn reconcile(h: Arc<FederatedHPA>, hctx: Arc<HpaCtx>) -> Result<Action> {
    let started = Instant::now();
    let out = sync(&h, &hctx).await;
    FAMILIES
        .process
        .with_label_values(&[if out.is_ok() { "success" } else { "error" }])
        .observe(started.elapsed().as_secs_f64());
    out?;
    Ok(Action::requeue(
        hctx.ctx.config.horizontal_pod_autoscaler_sync_period,
    ))
}

async fn sync(h: &FederatedHPA, hctx: &HpaCtx) -> Result<()> {
    if h.metadata.deletion_timestamp.is_some() {
        return Ok(());
    }
    let cp = hctx.ctx.control_plane.clone();
    let ns = h.namespace().unwrap_or_default();
    let name = h.name_any();
    let reference = events::reference(
        "autoscaling.karmada.io/v1alpha1",
        "FederatedHPA",
        &ns,
        &name,
        h.metadata.uid.as_deref().unwrap_or_default(),
    );
    let r = &h.spec.scale_target_ref;
    let api_version = r.api_version.clone().unwrap_or_else(|| "apps/v1".into());
    let now = k8s_openapi::jiff::Timestamp::now();
    let old = h.status.clone().unwrap_or_default();
    let template = match hctx.resolver.resolve("", &cp, &api_version, &r.kind).await {
        Ok(res) => res.api(cp.clone(), &ns).get_opt(&r.name).await?,
        Err(Error::Kube(e)) if is_not_found(&e) => None,
        Err(e) => return Err(e),
    };
    let Some(template) = template else {
        let message = format!(
            "the HPA controller was unable to get the target's current scale: {} {} not found",
            r.kind, r.name
        );
        let conditions = vec![hpa_condition(
            "AbleToScale",
            false,
            "FailedGetScale",
            &message,
        )];
        if condition_changed(&old, "AbleToScale", "FailedGetScale") {
            events::record(
                &cp,
                COMPONENT,
                reference,
                EventType::Warning,
                "FailedGetScale",
                &message,
            )
            .await;
        }
        let status = HorizontalPodAutoscalerStatus {
            conditions: Some(hpa::status_conditions(
                old.conditions.as_deref().unwrap_or_default(),
                &conditions,
                &Time(now),
            )),
            ..old.clone()
        };
        return write_status(&cp, &ns, &name, &old, status).await;
    };
    let tv = serde_json::to_value(&template)?;
    let current = tv
        .pointer("/spec/replicas")
        .and_then(Value::as_i64)
        .unwrap_or(1) as i32;
    let selector = tv
        .pointer("/spec/selector")
        .map(selector_query)
        .unwrap_or_default();

    // the pods, across the clusters the template is scheduled to
    let binding = Api::<ResourceBinding>::namespaced(cp.clone(), &ns)
        .get_opt(&flotilla_api::names::binding_name(&r.kind, &r.name))
        .await?;
    let clusters: Vec<String> = binding
        .map(|b| b.spec.clusters.iter().map(|c| c.name.clone()).collect())
        .unwrap_or_default();
    let pulled = Instant::now();
    let gathered = futures::future::join_all(
        clusters
            .iter()
            .map(|c| member_pods(&hctx.ctx, c, &ns, &selector)),
    )
    .await;
    let mut pods = Vec::new();
    let mut unreachable = Vec::new();
    for g in gathered {
        match g {
            Ok(p) => pods.extend(p),
            Err(e) => unreachable.push(e),
        }
    }
    let pull_result = if unreachable.is_empty() {
        "success"
    } else {
        "error"
    };
    FAMILIES
        .pull
        .with_label_values(&[pull_result, "Resource"])
        .observe(pulled.elapsed().as_secs_f64());
    for e in &unreachable {
        tracing::debug!(error = %e, "federatedhpa: a member's pods are not counted");
    }

    let mut proposals: Vec<(String, std::result::Result<Proposal, String>)> = Vec::new();
    let mut current_metrics = Vec::new();
    for m in &h.spec.metrics {
        match hpa::resource_target(m) {
            Ok((resource, target)) => {
                let samples: Vec<PodSample> = pods
                    .iter()
                    .map(|(key, p, pm)| hpa::pod_sample(key.clone(), p, pm.as_ref(), &resource))
                    .collect();
                let result = if selector.is_empty() {
                    Err("the scale target has no selector".to_string())
                } else {
                    hpa::resource_replicas(
                        current,
                        &resource,
                        target,
                        &samples,
                        hctx.ctx.config.horizontal_pod_autoscaler_tolerance,
                    )
                    .map_err(|e| {
                        if unreachable.is_empty() {
                            e.to_string()
                        } else {
                            format!("{e} ({})", unreachable.join("; "))
                        }
                    })
                };
                if let Ok(p) = &result {
                    current_metrics.push(hpa::metric_status(&resource, p));
                }
                proposals.push((hpa::metric_name(&resource, target), result));
            }
            Err(e) => proposals.push((m.type_.clone(), Err(e))),
        }
    }
    let bounds = Bounds {
        min: h.spec.min_replicas.unwrap_or(1),
        max: h.spec.max_replicas,
        behavior: h.spec.behavior.as_ref(),
    };
    let mut plan = {
        let mut histories = hctx
            .histories
            .lock()
            .map_err(|_| Error::Stopped(NAME.into(), "history lock poisoned".into()))?;
        let history = histories.entry((ns.clone(), name.clone())).or_default();
        hpa::plan(&bounds, current, &proposals, history, now.as_second())
    };
    if let Some(failed) = plan
        .conditions
        .iter()
        .find(|c| c.type_ == "ScalingActive" && !c.status && c.reason == "FailedGetResourceMetric")
        && condition_changed(&old, "ScalingActive", failed.reason)
    {
        events::record(
            &cp,
            COMPONENT,
            reference.clone(),
            EventType::Warning,
            failed.reason,
            &failed.message,
        )
        .await;
    }
    let mut last_scale_time = old.last_scale_time.clone();
    if plan.desired != current {
        let patch = json!({"spec": {"replicas": plan.desired}});
        let api = hctx
            .resolver
            .resolve("", &cp, &api_version, &r.kind)
            .await?
            .api(cp.clone(), &ns);
        match api
            .patch(&r.name, &PatchParams::default(), &Patch::Merge(&patch))
            .await
        {
            Ok(_) => {
                hpa::rescaled(&mut plan.conditions, plan.desired, None);
                last_scale_time = Some(Time(now));
                let reason = plan.rescale_reason.clone().unwrap_or_default();
                tracing::info!(from = current, to = plan.desired, %reason, "federatedhpa rescaled its target");
                events::record(
                    &cp,
                    COMPONENT,
                    reference,
                    EventType::Normal,
                    "SuccessfulRescale",
                    &format!("New size: {}; reason: {reason}", plan.desired),
                )
                .await;
            }
            Err(e) => {
                let message = e.to_string();
                hpa::rescaled(&mut plan.conditions, plan.desired, Some(&message));
                events::record(
                    &cp,
                    COMPONENT,
                    reference,
                    EventType::Warning,
                    "FailedRescale",
                    &format!("New size: {}; error: {message}", plan.desired),
                )
                .await;
            }
        }
    }
    let status = HorizontalPodAutoscalerStatus {
        current_replicas: Some(
            tv.pointer("/status/replicas")
                .and_then(Value::as_i64)
                .map_or(current, |n| n as i32),
        ),
        desired_replicas: plan.desired,
        current_metrics: (!current_metrics.is_empty()).then_some(current_metrics),
        conditions: Some(hpa::status_conditions(
            old.conditions.as_deref().unwrap_or_default(),
            &plan.conditions,
            &Time(now),
        )),
        last_scale_time,
        observed_generation: h.metadata.generation,
    };
    record_replicas(
        &ns,
        &name,
        status.current_replicas.unwrap_or(0),
        status.desired_replicas,
    );
    write_status(&cp, &ns, &name, &old, status).await
}

/// Sets the replica gauges of one FederatedHPA.
fn record_replicas(ns: &str, name: &str, current: i32, desired: i32) {
    let f = &*FAMILIES;
    f.current
        .with_label_values(&[ns, name])
        .set(i64::from(current));
    f.desired
        .with_label_values(&[ns, name])
        .set(i64::from(desired));
}

/// Drops the replica gauges of a deleted FederatedHPA.
fn forget_replicas(ns: &str, name: &str) {
    let f = &*FAMILIES;
    let _ = f.current.remove_label_values(&[ns, name]);
    let _ = f.desired.remove_label_values(&[ns, name]);
}

fn hpa_condition(
    type_: &'static str,
    status: bool,
    reason: &'static str,
    message: &str,
) -> hpa::Condition {
    hpa::Condition {
        type_,
        status,
        reason,
        message: message.to_string(),
    }
}

fn condition_changed(old: &HorizontalPodAutoscalerStatus, type_: &str, reason: &str) -> bool {
    !old.conditions
        .iter()
        .flatten()
        .any(|c| c.type_ == type_ && c.reason.as_deref() == Some(reason))
}

async fn write_status(
    cp: &Client,
    ns: &str,
    name: &str,
    old: &HorizontalPodAutoscalerStatus,
    status: HorizontalPodAutoscalerStatus,
) -> Result<()> {
    if *old == status {
        return Ok(());
    }
    let api = Api::<FederatedHPA>::namespaced(cp.clone(), ns);
    // a merge patch that also drops the fields the new status lacks
    let mut new = serde_json::to_value(&status)?;
    if let (Some(n), Value::Object(o)) = (new.as_object_mut(), serde_json::to_value(old)?) {
        for k in o.keys() {
            n.entry(k.clone()).or_insert(Value::Null);
        }
    }
    let patch = json!({ "status": new });
    match api
        .patch_status(name, &PatchParams::default(), &Patch::Merge(&patch))
        .await
    {
        Ok(_) => Ok(()),
        Err(e) if is_not_found(&e) => Ok(()),
        Err(e) => Err(e.into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn selectors_become_queries() {
        let s = json!({"matchLabels": {"app": "web"}, "matchExpressions": [
            {"key": "tier", "operator": "In", "values": ["a", "b"]},
            {"key": "x", "operator": "Exists"},
            {"key": "y", "operator": "DoesNotExist"},
            {"key": "z", "operator": "NotIn", "values": ["c"]},
        ]});
        assert_eq!(selector_query(&s), "app=web,tier in (a,b),x,!y,z notin (c)");
        assert_eq!(selector_query(&json!({})), "");
    }

    #[test]
    fn replica_gauges_per_federated_hpa() {
        record_replicas("team", "web", 4, 6);
        let text = metrics::encode();
        assert!(
            text.contains(r#"federatedhpa_current_replicas{name="web",namespace="team"} 4"#),
            "{text}"
        );
        assert!(
            text.contains(r#"federatedhpa_desired_replicas{name="web",namespace="team"} 6"#),
            "{text}"
        );
        forget_replicas("team", "web");
        assert!(!metrics::encode().contains(r#"namespace="team""#));
    }
}
