//! The horizontal pod autoscaling algorithm, as Kubernetes' HPA controller
//! computes it (`pkg/controller/podautoscaler`), shared by the FederatedHPA
//! controller (pods gathered across member clusters) and the simulated
//! members' HPA controller. Pure: the caller gathers pods and metrics and
//! keeps the per-autoscaler [`History`]; timestamps are Unix seconds.
//!
//! Start with [`plan`]: it takes the scale bounds, behavior, current replica
//! count and one [`Proposal`] per metric (each from [`resource_replicas`])
//! and returns the new count with the `AbleToScale` / `ScalingActive` /
//! `ScalingLimited` conditions Kubernetes sets.

use k8s_openapi::api::autoscaling::v2::{
    HPAScalingRules, HorizontalPodAutoscalerBehavior, HorizontalPodAutoscalerCondition, MetricSpec,
    MetricStatus, MetricValueStatus, ResourceMetricStatus,
};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use serde_json::Value;

/// Kubernetes' `--horizontal-pod-autoscaler-tolerance` default: ratios
/// within 10% of 1.0 do not scale.
pub const DEFAULT_TOLERANCE: f64 = 0.1;

/// Kubernetes' `--horizontal-pod-autoscaler-downscale-stabilization`
/// default, used when `behavior.scaleDown.stabilizationWindowSeconds` is
/// unset (and without behavior).
pub const DEFAULT_DOWNSCALE_STABILIZATION_SECONDS: i64 = 300;

/// One pod as the replica calculator sees it.
#[derive(Debug, Clone, PartialEq)]
pub struct PodSample {
    /// Unique key (a FederatedHPA uses `cluster/name`).
    pub key: String,
    /// `status.phase`.
    pub phase: String,
    /// Whether the `Ready` condition is True.
    pub ready: bool,
    /// Whether the pod has a deletionTimestamp.
    pub deleting: bool,
    /// Sum of the containers' requests of the resource, in milli-units;
    /// `None` when a container has no request.
    pub request_milli: Option<i64>,
    /// Usage from the metrics API, milli-units; `None` when no metric.
    pub usage_milli: Option<i64>,
}

/// What a Resource metric aims at.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Target {
    /// `averageUtilization`: percent of the pods' requests.
    Utilization(i32),
    /// `averageValue`: milli-units per pod.
    AverageValue(i64),
}

/// What one metric proposes.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Proposal {
    /// Replica count the metric asks for.
    pub replicas: i32,
    /// Current average utilization (percent of requests), for Utilization targets.
    pub utilization: Option<i32>,
    /// Current average value per pod, milli-units.
    pub average_milli: i64,
}

/// Why a replica count could not be computed from a metric.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CalcError {
    /// The target selects no pods.
    #[error("no pods matched the scale target's selector")]
    NoPods,
    /// No ready pod has a metric.
    #[error("did not receive metrics for any ready pods")]
    NoMetrics,
    /// Utilization needs requests on every container.
    #[error("missing request for {resource} in pod {pod}")]
    MissingRequest {
        /// The resource (`cpu`, `memory`).
        resource: String,
        /// The pod's key.
        pod: String,
    },
    /// A target value of zero or less.
    #[error("invalid metric target {0}")]
    InvalidTarget(String),
}

fn within(ratio: f64, tolerance: f64) -> bool {
    (1.0 - ratio).abs() <= tolerance
}

/// `(sum usage, sum requests)` of the samples in `used` that have a request.
fn ratio_of(target: Target, used: &[(i64, i64)]) -> (f64, Option<i32>, i64) {
    let n = used.len().max(1) as i64;
    let usage: i64 = used.iter().map(|(u, _)| *u).sum();
    let average = usage / n;
    match target {
        Target::Utilization(t) => {
            let requests: i64 = used.iter().map(|(_, r)| *r).sum();
            let utilization = if requests > 0 {
                (usage.saturating_mul(100) / requests) as i32
            } else {
                0
            };
            (
                f64::from(utilization) / f64::from(t),
                Some(utilization),
                average,
            )
        }
        Target::AverageValue(t) => (usage as f64 / (n as f64 * t as f64), None, average),
    }
}

/// Replicas for one Resource metric (Kubernetes `GetResourceReplicas` /
/// `GetRawResourceReplicas`): pods being deleted or Failed are ignored;
/// Pending pods (and, for cpu, pods not yet Ready) count as unready; ready
/// pods without a metric are missing. Within the tolerance the count stays;
/// otherwise missing pods are assumed at 100% of their request (or the
/// target value) when scaling down and at 0 when scaling up, unready pods at
/// 0 when scaling up, and a recomputed ratio that changes direction or falls
/// within the tolerance keeps the current count.
pub fn resource_replicas(
    current: i32,
    resource: &str,
    target: Target,
    pods: &[PodSample],
    tolerance: f64,
) -> Result<Proposal, CalcError> {
    match target {
        Target::Utilization(t) if t <= 0 => {
            return Err(CalcError::InvalidTarget(format!("averageUtilization {t}")));
        }
        Target::AverageValue(v) if v <= 0 => {
            return Err(CalcError::InvalidTarget(format!("averageValue {v}m")));
        }
        _ => {}
    }
    if pods.is_empty() {
        return Err(CalcError::NoPods);
    }
    let cpu = resource == "cpu";
    let (mut ready, mut unready, mut missing) = (Vec::new(), Vec::new(), Vec::new());
    for p in pods {
        if p.deleting || p.phase == "Failed" {
            continue;
        }
        if p.phase == "Pending" || p.phase.is_empty() {
            unready.push(p);
            continue;
        }
        if p.usage_milli.is_none() {
            missing.push(p);
            continue;
        }
        if cpu && !p.ready {
            unready.push(p);
            continue;
        }
        ready.push(p);
    }
    let request = |p: &PodSample| -> Result<i64, CalcError> {
        match (target, p.request_milli) {
            (Target::Utilization(_), Some(r)) if r > 0 => Ok(r),
            (Target::Utilization(_), _) => Err(CalcError::MissingRequest {
                resource: resource.to_string(),
                pod: p.key.clone(),
            }),
            (Target::AverageValue(_), r) => Ok(r.unwrap_or(0)),
        }
    };
    let mut used = Vec::with_capacity(ready.len());
    for p in &ready {
        used.push((p.usage_milli.unwrap_or(0), request(p)?));
    }
    if used.is_empty() {
        return Err(CalcError::NoMetrics);
    }
    let (ratio, utilization, average_milli) = ratio_of(target, &used);
    let proposal = |replicas| Proposal {
        replicas,
        utilization,
        average_milli,
    };
    let scale_up_with_unready = !unready.is_empty() && ratio > 1.0;
    if !scale_up_with_unready && missing.is_empty() {
        if within(ratio, tolerance) {
            return Ok(proposal(current));
        }
        return Ok(proposal((ratio * used.len() as f64).ceil() as i32));
    }
    if !missing.is_empty() {
        for p in &missing {
            let r = request(p)?;
            let assumed = if ratio < 1.0 {
                match target {
                    Target::Utilization(t) => r * i64::from(t.max(100)) / 100,
                    Target::AverageValue(v) => v,
                }
            } else {
                0
            };
            if ratio != 1.0 {
                used.push((assumed, r));
            }
        }
    }
    if scale_up_with_unready {
        for p in &unready {
            used.push((0, request(p)?));
        }
    }
    let (new_ratio, _, _) = ratio_of(target, &used);
    if within(new_ratio, tolerance)
        || (ratio < 1.0 && new_ratio > 1.0)
        || (ratio > 1.0 && new_ratio < 1.0)
    {
        return Ok(proposal(current));
    }
    let replicas = (new_ratio * used.len() as f64).ceil() as i32;
    if (new_ratio < 1.0 && replicas > current) || (new_ratio > 1.0 && replicas < current) {
        return Ok(proposal(current));
    }
    Ok(proposal(replicas))
}

/// A recommendation remembered for stabilization.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Recommendation {
    /// When it was made.
    pub at: i64,
    /// The replicas it proposed (before stabilization).
    pub replicas: i32,
}

/// A scaling that happened, remembered for the rate policies.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ScaleEvent {
    /// When.
    pub at: i64,
    /// Replicas added (positive) or removed (negative).
    pub change: i32,
}

/// What the controller remembers per autoscaler between syncs (Kubernetes
/// keeps the same in memory).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct History {
    /// Recent recommendations.
    pub recommendations: Vec<Recommendation>,
    /// Recent scalings.
    pub events: Vec<ScaleEvent>,
}

/// A condition to set on the autoscaler's status.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Condition {
    /// `AbleToScale`, `ScalingActive` or `ScalingLimited`.
    pub type_: &'static str,
    /// `True` / `False`.
    pub status: bool,
    /// CamelCase reason.
    pub reason: &'static str,
    /// Human-readable message.
    pub message: String,
}

impl Condition {
    fn new(type_: &'static str, status: bool, reason: &'static str, message: String) -> Self {
        Condition {
            type_,
            status,
            reason,
            message,
        }
    }
}

/// The inputs of one sync besides the metrics.
#[derive(Debug, Clone)]
pub struct Bounds<'a> {
    /// `minReplicas` (default 1).
    pub min: i32,
    /// `maxReplicas`.
    pub max: i32,
    /// `behavior`, if set.
    pub behavior: Option<&'a HorizontalPodAutoscalerBehavior>,
}

/// The result of one sync.
#[derive(Debug, Clone, PartialEq)]
pub struct Plan {
    /// Replicas the target should have.
    pub desired: i32,
    /// Why it changes (for the `SuccessfulRescale` event), when it does.
    pub rescale_reason: Option<String>,
    /// Conditions to set.
    pub conditions: Vec<Condition>,
}

/// One sync of an autoscaler (Kubernetes `reconcileAutoscaler` after the
/// metrics): a target at 0 replicas with minReplicas above 0 is left alone
/// (scaling disabled); a count outside [min, max] is brought into it;
/// otherwise the largest metric proposal is stabilized and rate-limited by
/// the behavior (or the defaults without behavior) and bounded by min/max.
/// `proposals` holds `(metric name, result)` per metric; when every one
/// failed the count stays and `ScalingActive` is False. `history` is updated
/// (recommendation stored; a scale event when the count changes).
pub fn plan(
    bounds: &Bounds<'_>,
    current: i32,
    proposals: &[(String, Result<Proposal, String>)],
    history: &mut History,
    now: i64,
) -> Plan {
    let mut conditions = vec![Condition::new(
        "AbleToScale",
        true,
        "SucceededGetScale",
        "the HPA controller was able to get the target's current scale".into(),
    )];
    if current == 0 && bounds.min != 0 {
        conditions.push(Condition::new(
            "ScalingActive",
            false,
            "ScalingDisabled",
            "scaling is disabled since the replica count of the target is zero".into(),
        ));
        return Plan {
            desired: 0,
            rescale_reason: None,
            conditions,
        };
    }
    let desired;
    let mut rescale_reason = None;
    if current > bounds.max {
        desired = bounds.max;
        rescale_reason = Some("Current number of replicas above Spec.MaxReplicas".to_string());
    } else if current < bounds.min {
        desired = bounds.min;
        rescale_reason = Some("Current number of replicas below Spec.MinReplicas".to_string());
    } else {
        let best = proposals
            .iter()
            .filter_map(|(name, r)| r.as_ref().ok().map(|p| (name, p.replicas)))
            .max_by_key(|(_, r)| *r);
        let Some((metric, proposed)) = best else {
            let message = proposals
                .iter()
                .filter_map(|(name, r)| r.as_ref().err().map(|e| format!("{name}: {e}")))
                .collect::<Vec<_>>()
                .join("; ");
            conditions.push(Condition::new(
                "ScalingActive",
                false,
                "FailedGetResourceMetric",
                if message.is_empty() {
                    "the HPA has no metrics".into()
                } else {
                    format!("the HPA was unable to compute the replica count: {message}")
                },
            ));
            return Plan {
                desired: current,
                rescale_reason: None,
                conditions,
            };
        };
        conditions.push(Condition::new(
            "ScalingActive",
            true,
            "ValidMetricFound",
            format!("the HPA was able to successfully calculate a replica count from {metric}"),
        ));
        let (stabilized, limited) = match bounds.behavior {
            Some(b) => {
                let up = b.scale_up.clone().unwrap_or_else(default_scale_up);
                let down = b.scale_down.clone().unwrap_or_else(default_scale_down);
                with_behavior(bounds, &up, &down, current, proposed, history, now)
            }
            None => without_behavior(bounds, current, proposed, history, now),
        };
        conditions[0] = stabilized;
        conditions.push(limited.1);
        desired = limited.0;
        if desired != current {
            rescale_reason = Some(if desired > current {
                format!("{metric} above target")
            } else {
                "All metrics below target".to_string()
            });
        }
    }
    if desired != current {
        history.events.push(ScaleEvent {
            at: now,
            change: desired - current,
        });
    }
    Plan {
        desired,
        rescale_reason,
        conditions,
    }
}

/// Kubernetes' default scale-up rules: no stabilization, Max of
/// Percent 100 / 15 s and Pods 4 / 15 s.
pub fn default_scale_up() -> HPAScalingRules {
    HPAScalingRules {
        stabilization_window_seconds: Some(0),
        select_policy: Some("Max".into()),
        policies: Some(vec![policy("Percent", 100, 15), policy("Pods", 4, 15)]),
        tolerance: None,
    }
}

/// Kubernetes' default scale-down rules: the downscale stabilization
/// window, Percent 100 / 15 s.
pub fn default_scale_down() -> HPAScalingRules {
    HPAScalingRules {
        stabilization_window_seconds: None,
        select_policy: Some("Max".into()),
        policies: Some(vec![policy("Percent", 100, 15)]),
        tolerance: None,
    }
}

fn policy(t: &str, value: i32, period: i32) -> k8s_openapi::api::autoscaling::v2::HPAScalingPolicy {
    k8s_openapi::api::autoscaling::v2::HPAScalingPolicy {
        type_: t.into(),
        value,
        period_seconds: period,
    }
}

/// Remembers `proposed` and returns the stabilized recommendation: not
/// above the highest proposal within the scale-down window, not below the
/// lowest within the scale-up window, else the current count.
fn stabilize(
    history: &mut History,
    current: i32,
    proposed: i32,
    up_window: i64,
    down_window: i64,
    now: i64,
) -> i32 {
    let mut up = proposed;
    let mut down = proposed;
    for r in &history.recommendations {
        if r.at > now - up_window {
            up = up.min(r.replicas);
        }
        if r.at > now - down_window {
            down = down.max(r.replicas);
        }
    }
    let keep = up_window.max(down_window);
    history.recommendations.retain(|r| r.at >= now - keep);
    history.recommendations.push(Recommendation {
        at: now,
        replicas: proposed,
    });
    current.max(up).min(down)
}

fn with_behavior(
    bounds: &Bounds<'_>,
    up: &HPAScalingRules,
    down: &HPAScalingRules,
    current: i32,
    proposed: i32,
    history: &mut History,
    now: i64,
) -> (Condition, (i32, Condition)) {
    let up_window = i64::from(up.stabilization_window_seconds.unwrap_or(0).max(0));
    let down_window = down
        .stabilization_window_seconds
        .map_or(DEFAULT_DOWNSCALE_STABILIZATION_SECONDS, |w| {
            i64::from(w.max(0))
        });
    let stabilized = stabilize(history, current, proposed, up_window, down_window, now);
    let able = if stabilized != proposed {
        if stabilized < proposed {
            Condition::new(
                "AbleToScale",
                true,
                "ScaleUpStabilized",
                "recent recommendations were lower than current one, applying the lowest recent recommendation".into(),
            )
        } else {
            Condition::new(
                "AbleToScale",
                true,
                "ScaleDownStabilized",
                "recent recommendations were higher than current one, applying the highest recent recommendation".into(),
            )
        }
    } else {
        Condition::new(
            "AbleToScale",
            true,
            "ReadyForNewScale",
            "recommended size matches current size".into(),
        )
    };
    let longest = |r: &HPAScalingRules| {
        r.policies
            .iter()
            .flatten()
            .map(|p| i64::from(p.period_seconds))
            .max()
            .unwrap_or(0)
    };
    let keep = longest(up).max(longest(down));
    history.events.retain(|e| e.at > now - keep);
    let (desired, reason, message) = if stabilized > current {
        let limit = scale_up_limit(current, &history.events, up, now).max(current);
        let (max, reason, message) = if bounds.max > limit {
            (
                limit,
                "ScaleUpLimit",
                "the desired replica count is increasing faster than the maximum scale rate",
            )
        } else {
            (
                bounds.max,
                "TooManyReplicas",
                "the desired replica count is more than the maximum replica count",
            )
        };
        if stabilized > max {
            (max, reason, message)
        } else {
            (
                stabilized,
                "DesiredWithinRange",
                "the desired count is within the acceptable range",
            )
        }
    } else if stabilized < current {
        let limit = scale_down_limit(current, &history.events, down, now).min(current);
        let (min, reason, message) = if bounds.min < limit {
            (
                limit,
                "ScaleDownLimit",
                "the desired replica count is decreasing faster than the maximum scale rate",
            )
        } else {
            (
                bounds.min,
                "TooFewReplicas",
                "the desired replica count is less than the minimum replica count",
            )
        };
        if stabilized < min {
            (min, reason, message)
        } else {
            (
                stabilized,
                "DesiredWithinRange",
                "the desired count is within the acceptable range",
            )
        }
    } else {
        (
            stabilized,
            "DesiredWithinRange",
            "the desired count is within the acceptable range",
        )
    };
    let limited = Condition::new(
        "ScalingLimited",
        desired != stabilized,
        reason,
        message.into(),
    );
    (able, (desired, limited))
}

fn without_behavior(
    bounds: &Bounds<'_>,
    current: i32,
    proposed: i32,
    history: &mut History,
    now: i64,
) -> (Condition, (i32, Condition)) {
    let stabilized = stabilize(
        history,
        current,
        proposed,
        0,
        DEFAULT_DOWNSCALE_STABILIZATION_SECONDS,
        now,
    );
    let able = if stabilized == proposed {
        Condition::new(
            "AbleToScale",
            true,
            "ReadyForNewScale",
            "recommended size matches current size".into(),
        )
    } else {
        Condition::new(
            "AbleToScale",
            true,
            "ScaleDownStabilized",
            "recent recommendations were higher than current one, applying the highest recent recommendation".into(),
        )
    };
    let up_limit = (current.saturating_mul(2)).max(4);
    let (desired, reason, message) = if stabilized < bounds.min {
        (
            bounds.min,
            "TooFewReplicas",
            "the desired replica count is less than the minimum replica count",
        )
    } else if stabilized > bounds.max.min(up_limit) {
        if up_limit < bounds.max {
            (
                up_limit,
                "ScaleUpLimit",
                "the desired replica count is increasing faster than the maximum scale rate",
            )
        } else {
            (
                bounds.max,
                "TooManyReplicas",
                "the desired replica count is more than the maximum replica count",
            )
        }
    } else {
        (
            stabilized,
            "DesiredWithinRange",
            "the desired count is within the acceptable range",
        )
    };
    let limited = Condition::new(
        "ScalingLimited",
        desired != stabilized,
        reason,
        message.into(),
    );
    (able, (desired, limited))
}

/// Replicas added and removed within the last `period` seconds.
fn changes_within(events: &[ScaleEvent], period: i64, now: i64) -> (i32, i32) {
    events
        .iter()
        .filter(|e| e.at > now - period)
        .fold((0, 0), |(added, removed), e| {
            if e.change > 0 {
                (added + e.change, removed)
            } else {
                (added, removed - e.change)
            }
        })
}

/// The most replicas the scale-up policies allow now (`Max` selects the
/// most permissive policy, `Min` the strictest, `Disabled` none).
pub fn scale_up_limit(
    current: i32,
    events: &[ScaleEvent],
    rules: &HPAScalingRules,
    now: i64,
) -> i32 {
    let select = rules.select_policy.as_deref().unwrap_or("Max");
    if select == "Disabled" {
        return current;
    }
    let mut out: Option<i32> = None;
    for p in rules.policies.iter().flatten() {
        let (added, removed) = changes_within(events, i64::from(p.period_seconds), now);
        let start = current - added + removed;
        let proposed = if p.type_ == "Pods" {
            start + p.value
        } else {
            (f64::from(start) * (1.0 + f64::from(p.value) / 100.0)).ceil() as i32
        };
        out = Some(match (out, select) {
            (None, _) => proposed,
            (Some(o), "Min") => o.min(proposed),
            (Some(o), _) => o.max(proposed),
        });
    }
    out.unwrap_or(current)
}

/// The fewest replicas the scale-down policies allow now.
pub fn scale_down_limit(
    current: i32,
    events: &[ScaleEvent],
    rules: &HPAScalingRules,
    now: i64,
) -> i32 {
    let select = rules.select_policy.as_deref().unwrap_or("Max");
    if select == "Disabled" {
        return current;
    }
    let mut out: Option<i32> = None;
    for p in rules.policies.iter().flatten() {
        let (added, removed) = changes_within(events, i64::from(p.period_seconds), now);
        let start = current - added + removed;
        let proposed = if p.type_ == "Pods" {
            start - p.value
        } else {
            (f64::from(start) * (1.0 - f64::from(p.value) / 100.0)) as i32
        };
        out = Some(match (out, select) {
            (None, _) => proposed,
            (Some(o), "Min") => o.max(proposed),
            (Some(o), _) => o.min(proposed),
        });
    }
    out.unwrap_or(current)
}

/// The resource and target of a metric, or why it is not computed: only
/// `Resource` metrics are (`Pods`, `Object`, `External` and
/// `ContainerResource` are reported as unsupported).
pub fn resource_target(m: &MetricSpec) -> Result<(String, Target), String> {
    let Some(r) = m.resource.as_ref().filter(|_| m.type_ == "Resource") else {
        return Err(format!("metric type {} is not supported", m.type_));
    };
    match r.target.type_.as_str() {
        "Utilization" => r
            .target
            .average_utilization
            .map(|u| (r.name.clone(), Target::Utilization(u)))
            .ok_or_else(|| format!("{} target has no averageUtilization", r.name)),
        "AverageValue" => r
            .target
            .average_value
            .as_ref()
            .and_then(crate::quantity::of)
            .map(|q| (r.name.clone(), Target::AverageValue(q.milli_value() as i64)))
            .ok_or_else(|| format!("{} target has no valid averageValue", r.name)),
        t => Err(format!(
            "{} target type {t} is not supported for Resource metrics",
            r.name
        )),
    }
}

/// How Kubernetes names a metric in conditions and events.
pub fn metric_name(resource: &str, target: Target) -> String {
    match target {
        Target::Utilization(_) => {
            format!("{resource} resource utilization (percentage of request)")
        }
        Target::AverageValue(_) => format!("{resource} resource"),
    }
}

fn quantity_milli(v: &Value) -> Option<i64> {
    v.as_str()
        .and_then(crate::quantity::parse)
        .map(|q| q.milli_value() as i64)
        .or_else(|| v.as_i64().map(|n| n * 1000))
}

/// A [`PodSample`] for `resource` from a Pod and its PodMetrics
/// (`metrics.k8s.io`), both as JSON; `key` names the pod.
pub fn pod_sample(key: String, pod: &Value, metrics: Option<&Value>, resource: &str) -> PodSample {
    let mut request = Some(0i64);
    for c in pod
        .pointer("/spec/containers")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        let r = c
            .pointer("/resources/requests")
            .and_then(|r| r.get(resource))
            .and_then(quantity_milli);
        request = match (request, r) {
            (Some(a), Some(b)) => Some(a + b),
            _ => None,
        };
    }
    let usage = metrics.map(|m| {
        m.get("containers")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .filter_map(|c| {
                c.pointer("/usage")
                    .and_then(|u| u.get(resource))
                    .and_then(quantity_milli)
            })
            .sum()
    });
    let ready = pod
        .pointer("/status/conditions")
        .and_then(Value::as_array)
        .is_some_and(|cs| {
            cs.iter().any(|c| {
                c.get("type").and_then(Value::as_str) == Some("Ready")
                    && c.get("status").and_then(Value::as_str) == Some("True")
            })
        });
    PodSample {
        key,
        phase: pod
            .pointer("/status/phase")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string(),
        ready,
        deleting: pod.pointer("/metadata/deletionTimestamp").is_some(),
        request_milli: request,
        usage_milli: usage,
    }
}

fn format_milli(resource: &str, milli: i64) -> Quantity {
    if milli % 1000 == 0 {
        Quantity((milli / 1000).to_string())
    } else if resource == "cpu" || milli < 1_000_000 {
        Quantity(format!("{milli}m"))
    } else {
        Quantity((milli / 1000).to_string())
    }
}

/// The `currentMetrics` entry of a computed Resource metric.
pub fn metric_status(resource: &str, p: &Proposal) -> MetricStatus {
    MetricStatus {
        type_: "Resource".into(),
        resource: Some(ResourceMetricStatus {
            name: resource.to_string(),
            current: MetricValueStatus {
                average_utilization: p.utilization,
                average_value: Some(format_milli(resource, p.average_milli)),
                value: None,
            },
        }),
        ..Default::default()
    }
}

/// Status conditions from a [`Plan`]'s, keeping `lastTransitionTime` of
/// those whose status did not change.
pub fn status_conditions(
    old: &[HorizontalPodAutoscalerCondition],
    new: &[Condition],
    now: &Time,
) -> Vec<HorizontalPodAutoscalerCondition> {
    new.iter()
        .map(|c| {
            let status = if c.status { "True" } else { "False" };
            let since = old
                .iter()
                .find(|o| o.type_ == c.type_ && o.status == status)
                .and_then(|o| o.last_transition_time.clone())
                .unwrap_or_else(|| now.clone());
            HorizontalPodAutoscalerCondition {
                type_: c.type_.to_string(),
                status: status.to_string(),
                reason: Some(c.reason.to_string()),
                message: Some(c.message.clone()),
                last_transition_time: Some(since),
            }
        })
        .collect()
}

/// The `AbleToScale` condition after the target was (or could not be)
/// updated, replacing the plan's.
pub fn rescaled(conditions: &mut [Condition], desired: i32, error: Option<&str>) {
    for c in conditions.iter_mut().filter(|c| c.type_ == "AbleToScale") {
        *c = match error {
            None => Condition::new(
                "AbleToScale",
                true,
                "SucceededRescale",
                format!("the HPA controller was able to update the target scale to {desired}"),
            ),
            Some(e) => Condition::new(
                "AbleToScale",
                false,
                "FailedUpdateScale",
                format!("the HPA controller was unable to update the target scale: {e}"),
            ),
        };
    }
}

#[cfg(test)]
mod tests;
