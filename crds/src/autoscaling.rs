//! `autoscaling.karmada.io/v1alpha1`: FederatedHPA and CronFederatedHPA.
//! Mirrors Karmada's `pkg/apis/autoscaling/v1alpha1/federatedhpa_types.go`
//! and `cronfederatedhpa_types.go`; metric, behaviour and status types are the
//! standard `autoscaling/v2` ones.

pub mod cron;
pub mod hpa;

use k8s_openapi::api::autoscaling::v2::{
    CrossVersionObjectReference, HorizontalPodAutoscalerBehavior, HorizontalPodAutoscalerStatus,
    MetricSpec,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// Desired state of a FederatedHPA (Karmada `FederatedHPASpec`).
#[derive(CustomResource, Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[kube(
    group = "autoscaling.karmada.io",
    version = "v1alpha1",
    kind = "FederatedHPA",
    plural = "federatedhpas",
    singular = "federatedhpa",
    namespaced,
    shortname = "fhpa",
    category = "karmada-io",
    status = "HorizontalPodAutoscalerStatus",
    doc = "FederatedHPA is centralized HPA that can aggregate the metrics in multiple clusters.",
    printcolumn(
        name = "REFERENCE-KIND",
        type_ = "string",
        json_path = ".spec.scaleTargetRef.kind"
    ),
    printcolumn(
        name = "REFERENCE-NAME",
        type_ = "string",
        json_path = ".spec.scaleTargetRef.name"
    ),
    printcolumn(name = "MINPODS", type_ = "integer", json_path = ".spec.minReplicas"),
    printcolumn(name = "MAXPODS", type_ = "integer", json_path = ".spec.maxReplicas"),
    printcolumn(
        name = "REPLICAS",
        type_ = "integer",
        json_path = ".status.currentReplicas"
    ),
    printcolumn(
        name = "AGE",
        type_ = "date",
        json_path = ".metadata.creationTimestamp"
    ),
    derive = "PartialEq",
    derive = "Default"
)]
#[serde(rename_all = "camelCase")]
pub struct FederatedHPASpec {
    /// The scaled workload.
    pub scale_target_ref: CrossVersionObjectReference,
    /// Lower bound (webhook default 1).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min_replicas: Option<i32>,
    /// Upper bound.
    pub max_replicas: i32,
    /// Metrics (webhook default: cpu utilization 80%).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub metrics: Vec<MetricSpec>,
    /// Scaling behaviour.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub behavior: Option<HorizontalPodAutoscalerBehavior>,
}

/// One cron rule (Karmada `CronFederatedHPARule`).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct CronFederatedHPARule {
    /// Rule name, unique, 1..32 characters.
    #[schemars(extend("maxLength" = 32, "minLength" = 1))]
    pub name: String,
    /// Cron schedule.
    pub schedule: String,
    /// Replicas for a non-FederatedHPA target.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target_replicas: Option<i32>,
    /// minReplicas for a FederatedHPA target.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target_min_replicas: Option<i32>,
    /// maxReplicas for a FederatedHPA target.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target_max_replicas: Option<i32>,
    /// Suspend the rule (default false).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(extend("default" = false))]
    pub suspend: Option<bool>,
    /// IANA time zone.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub time_zone: Option<String>,
    /// Successful history kept (default 3, 1..32).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(extend("default" = 3, "minimum" = 1, "maximum" = 32))]
    pub successful_history_limit: Option<i32>,
    /// Failed history kept (default 3, 0..32).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(extend("default" = 3, "minimum" = 0, "maximum" = 32))]
    pub failed_history_limit: Option<i32>,
}

/// Desired state of a CronFederatedHPA (Karmada `CronFederatedHPASpec`).
#[derive(CustomResource, Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[kube(
    group = "autoscaling.karmada.io",
    version = "v1alpha1",
    kind = "CronFederatedHPA",
    plural = "cronfederatedhpas",
    singular = "cronfederatedhpa",
    namespaced,
    shortname = "cronfhpa",
    category = "karmada-io",
    status = "CronFederatedHPAStatus",
    doc = "CronFederatedHPA represents a collection of repeating schedule to scale replica number of a specific workload.",
    printcolumn(
        name = "REFERENCE-KIND",
        type_ = "string",
        json_path = ".spec.scaleTargetRef.kind"
    ),
    printcolumn(
        name = "REFERENCE-NAME",
        type_ = "string",
        json_path = ".spec.scaleTargetRef.name"
    ),
    printcolumn(
        name = "AGE",
        type_ = "date",
        json_path = ".metadata.creationTimestamp"
    ),
    derive = "PartialEq",
    derive = "Default"
)]
#[serde(rename_all = "camelCase")]
pub struct CronFederatedHPASpec {
    /// The scaled workload or FederatedHPA.
    pub scale_target_ref: CrossVersionObjectReference,
    /// Rules.
    pub rules: Vec<CronFederatedHPARule>,
}

/// Observed state (Karmada `CronFederatedHPAStatus`).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct CronFederatedHPAStatus {
    /// One history per rule.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub execution_histories: Vec<ExecutionHistory>,
}

/// Execution history of a rule (Karmada `ExecutionHistory`).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ExecutionHistory {
    /// Rule name.
    pub rule_name: String,
    /// Next run.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_execution_time: Option<Time>,
    /// Successful runs.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub successful_executions: Vec<SuccessfulExecution>,
    /// Failed runs.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub failed_executions: Vec<FailedExecution>,
}

/// A successful run (Karmada `SuccessfulExecution`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct SuccessfulExecution {
    /// Scheduled time.
    pub schedule_time: Time,
    /// Actual time.
    pub execution_time: Time,
    /// Replicas set.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub applied_replicas: Option<i32>,
    /// maxReplicas set.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub applied_max_replicas: Option<i32>,
    /// minReplicas set.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub applied_min_replicas: Option<i32>,
}

/// A failed run (Karmada `FailedExecution`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct FailedExecution {
    /// Scheduled time.
    pub schedule_time: Time,
    /// Actual time.
    pub execution_time: Time,
    /// Why it failed.
    pub message: String,
}
