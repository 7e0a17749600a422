//! The pure part of the cluster controller (Karmada
//! `pkg/controllers/cluster/cluster_controller.go`): which automatic taints a
//! cluster should carry, and the health monitor that marks a Pull cluster
//! whose agent stopped renewing its Lease as Ready=Unknown.

use std::time::Duration;

use flotilla_api::cluster::{
    CONDITION_READY, Cluster, SYNC_MODE_PULL, TAINT_CLUSTER_NOT_READY, TAINT_CLUSTER_UNREACHABLE,
};
use k8s_openapi::api::core::v1::Taint;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use k8s_openapi::jiff::Timestamp;

/// Taint key `karmadactl cordon` adds (Karmada `TaintClusterUnscheduler`),
/// effect NoSchedule. The controller never touches it.
pub const TAINT_CLUSTER_UNSCHEDULABLE: &str = "cluster.karmada.io/unschedulable";
/// Taint the controller adds (effect NoExecute) to a Cluster being deleted
/// (Karmada `TaintClusterTerminating`), so that its workloads are evicted.
pub const TAINT_CLUSTER_TERMINATING: &str = "cluster.karmada.io/terminating";
/// Reason set by the monitor when the status stopped being posted.
pub const REASON_STATUS_UNKNOWN: &str = "ClusterStatusUnknown";
/// Message set with [`REASON_STATUS_UNKNOWN`].
pub const MESSAGE_STATUS_UNKNOWN: &str =
    "Cluster status controller stopped posting cluster status.";
/// Reason set by the monitor when no status was ever posted.
pub const REASON_STATUS_NEVER_UPDATED: &str = "ClusterStatusNeverUpdated";
/// Message set with [`REASON_STATUS_NEVER_UPDATED`].
pub const MESSAGE_STATUS_NEVER_UPDATED: &str =
    "Cluster status controller never posted cluster status.";

fn no_schedule(key: &str) -> Taint {
    Taint {
        key: key.into(),
        effect: "NoSchedule".into(),
        value: None,
        time_added: None,
    }
}

/// The Ready condition of a cluster, if any.
pub fn ready_condition(cluster: &Cluster) -> Option<&Condition> {
    cluster
        .status
        .as_ref()?
        .conditions
        .iter()
        .find(|c| c.type_ == CONDITION_READY)
}

/// Karmada `taintClusterByCondition`: Ready False or absent → not-ready
/// (unreachable removed); Unknown → unreachable (not-ready removed); True →
/// both removed. Taints match by key and effect; every other taint (a
/// user's, cordon's) is kept in place. `None` when nothing changes.
pub fn desired_taints(current: &[Taint], ready: Option<&Condition>) -> Option<Vec<Taint>> {
    let (add, remove): (Vec<&str>, Vec<&str>) = match ready.map(|c| c.status.as_str()) {
        Some("True") => (
            vec![],
            vec![TAINT_CLUSTER_NOT_READY, TAINT_CLUSTER_UNREACHABLE],
        ),
        Some("Unknown") => (
            vec![TAINT_CLUSTER_UNREACHABLE],
            vec![TAINT_CLUSTER_NOT_READY],
        ),
        _ => (
            vec![TAINT_CLUSTER_NOT_READY],
            vec![TAINT_CLUSTER_UNREACHABLE],
        ),
    };
    let matches = |t: &Taint, key: &str| t.key == key && t.effect == "NoSchedule";
    let mut out: Vec<Taint> = current
        .iter()
        .filter(|t| !remove.iter().any(|k| matches(t, k)))
        .cloned()
        .collect();
    for key in add {
        if !out.iter().any(|t| matches(t, key)) {
            out.push(no_schedule(key));
        }
    }
    (out != current).then_some(out)
}

/// The taints of a Cluster being deleted: the terminating NoExecute taint
/// added (with `timeAdded` = `now`) unless present; `None` when present.
pub fn terminating_taints(current: &[Taint], now: Timestamp) -> Option<Vec<Taint>> {
    if current
        .iter()
        .any(|t| t.key == TAINT_CLUSTER_TERMINATING && t.effect == "NoExecute")
    {
        return None;
    }
    let mut out = current.to_vec();
    out.push(Taint {
        key: TAINT_CLUSTER_TERMINATING.into(),
        effect: "NoExecute".into(),
        value: None,
        time_added: Some(Time(now)),
    });
    Some(out)
}

/// What the monitor remembers of a cluster (Karmada `clusterHealthData`).
#[derive(Clone, Debug, PartialEq)]
pub struct HealthData {
    /// Last time the cluster showed a sign of life (a changed Ready condition
    /// seen, or the Lease renewed).
    pub probe_timestamp: Timestamp,
    /// The Ready condition seen last.
    pub ready: Option<Condition>,
    /// The Lease renew time seen last.
    pub lease_renew_time: Option<Timestamp>,
}

/// Karmada `tryUpdateClusterHealth` for one cluster at `now`: updates the
/// health data from the Ready condition (any change is a sign of life) and (Pull only) the Lease renew
/// time, and returns the Ready condition to write when the cluster has shown
/// no sign of life for the grace period (the startup grace period if it never
/// posted Ready): Unknown with `ClusterStatusUnknown`, or
/// `ClusterStatusNeverUpdated` when there was no Ready condition. Push
/// clusters are left to the status controller (`None`).
pub fn monitor(
    cluster: &Cluster,
    saved: Option<&HealthData>,
    lease_renew_time: Option<Timestamp>,
    now: Timestamp,
    grace: Duration,
    startup_grace: Duration,
) -> (HealthData, Option<Condition>) {
    let current = ready_condition(cluster);
    let created = cluster
        .metadata
        .creation_timestamp
        .as_ref()
        .map_or(now, |t| t.0);
    let mut health = match (saved, current) {
        (None, None) => HealthData {
            probe_timestamp: created,
            ready: None,
            lease_renew_time: None,
        },
        (None, Some(_)) | (Some(HealthData { ready: None, .. }), Some(_)) => HealthData {
            probe_timestamp: now,
            ready: current.cloned(),
            lease_renew_time: saved.and_then(|s| s.lease_renew_time),
        },
        (Some(s), None) => HealthData {
            probe_timestamp: if s.ready.is_some() {
                now
            } else {
                s.probe_timestamp
            },
            ready: None,
            lease_renew_time: s.lease_renew_time,
        },
        (Some(s), Some(c)) => {
            // any change of the posted condition counts as a sign of life
            let changed = s.ready.as_ref() != Some(c);
            HealthData {
                probe_timestamp: if changed { now } else { s.probe_timestamp },
                ready: Some(c.clone()),
                lease_renew_time: s.lease_renew_time,
            }
        }
    };
    if cluster.spec.sync_mode != SYNC_MODE_PULL {
        return (health, None);
    }
    if let Some(renew) = lease_renew_time
        && health.lease_renew_time.is_none_or(|old| old < renew)
    {
        health.lease_renew_time = Some(renew);
        health.probe_timestamp = now;
    }
    let grace = if current.is_none() {
        startup_grace
    } else {
        grace
    };
    let grace_ms = i64::try_from(grace.as_millis()).unwrap_or(i64::MAX);
    if now.as_millisecond()
        <= health
            .probe_timestamp
            .as_millisecond()
            .saturating_add(grace_ms)
    {
        return (health, None);
    }
    let update = match current {
        None => Some(Condition {
            type_: CONDITION_READY.into(),
            status: "Unknown".into(),
            reason: REASON_STATUS_NEVER_UPDATED.into(),
            message: MESSAGE_STATUS_NEVER_UPDATED.into(),
            last_transition_time: Time(now),
            observed_generation: None,
        }),
        Some(c) if c.status != "Unknown" => Some(Condition {
            status: "Unknown".into(),
            reason: REASON_STATUS_UNKNOWN.into(),
            message: MESSAGE_STATUS_UNKNOWN.into(),
            last_transition_time: Time(now),
            ..c.clone()
        }),
        Some(_) => None,
    };
    if let Some(u) = &update {
        health.ready = Some(u.clone());
    }
    (health, update)
}

/// Whether the Works of a deleted cluster must lose their finalizers before
/// the execution namespace can go: a Pull cluster that is not Ready has no
/// agent to remove them (Karmada `removeExecutionSpace`).
pub fn strip_work_finalizers(cluster: &Cluster) -> bool {
    cluster.spec.sync_mode == SYNC_MODE_PULL
        && ready_condition(cluster).is_none_or(|c| c.status != "True")
}

#[cfg(test)]
mod tests {
    use super::*;
    use flotilla_api::cluster::{ClusterSpec, ClusterStatus};

    fn cond(status: &str, t: i64) -> Condition {
        Condition {
            type_: CONDITION_READY.into(),
            status: status.into(),
            reason: "R".into(),
            message: "m".into(),
            last_transition_time: Time(ts(t)),
            observed_generation: None,
        }
    }

    fn ts(s: i64) -> Timestamp {
        Timestamp::from_second(s).unwrap()
    }

    fn keys(t: &[Taint]) -> Vec<&str> {
        t.iter().map(|t| t.key.as_str()).collect()
    }

    #[test]
    fn taints_follow_ready() {
        let user = Taint {
            key: TAINT_CLUSTER_UNSCHEDULABLE.into(),
            effect: "NoSchedule".into(),
            ..Default::default()
        };
        // no condition yet: not-ready
        let t = desired_taints(std::slice::from_ref(&user), None).unwrap();
        assert_eq!(
            keys(&t),
            vec![TAINT_CLUSTER_UNSCHEDULABLE, TAINT_CLUSTER_NOT_READY]
        );
        assert_eq!(t[1].effect, "NoSchedule");
        assert!(t[1].time_added.is_none());
        // False: unchanged
        assert_eq!(desired_taints(&t, Some(&cond("False", 0))), None);
        // Unknown: unreachable replaces not-ready
        let t = desired_taints(&t, Some(&cond("Unknown", 0))).unwrap();
        assert_eq!(
            keys(&t),
            vec![TAINT_CLUSTER_UNSCHEDULABLE, TAINT_CLUSTER_UNREACHABLE]
        );
        // True: both gone, cordon kept
        let t = desired_taints(&t, Some(&cond("True", 0))).unwrap();
        assert_eq!(keys(&t), vec![TAINT_CLUSTER_UNSCHEDULABLE]);
        assert_eq!(desired_taints(&t, Some(&cond("True", 0))), None);
        // a user's not-ready taint with another effect is not ours
        let other = Taint {
            key: TAINT_CLUSTER_NOT_READY.into(),
            effect: "NoExecute".into(),
            ..Default::default()
        };
        assert_eq!(
            desired_taints(std::slice::from_ref(&other), Some(&cond("True", 0))),
            None
        );
    }

    fn pull(ready: Option<Condition>) -> Cluster {
        let mut c = Cluster::new(
            "m",
            ClusterSpec {
                sync_mode: SYNC_MODE_PULL.into(),
                ..Default::default()
            },
        );
        c.metadata.creation_timestamp = Some(Time(ts(0)));
        c.status = Some(ClusterStatus {
            conditions: ready.into_iter().collect(),
            ..Default::default()
        });
        c
    }

    #[test]
    fn lease_expiry_marks_unknown() {
        let g = Duration::from_secs(40);
        let sg = Duration::from_secs(60);
        let c = pull(Some(cond("True", 0)));
        let (h, u) = monitor(&c, None, Some(ts(5)), ts(5), g, sg);
        assert!(u.is_none());
        // renewals keep it alive
        let (h, u) = monitor(&c, Some(&h), Some(ts(40)), ts(40), g, sg);
        assert!(u.is_none());
        assert_eq!(h.probe_timestamp, ts(40));
        let (h, u) = monitor(&c, Some(&h), Some(ts(40)), ts(80), g, sg);
        assert!(u.is_none());
        // no renewal for more than 40 s
        let (h, u) = monitor(&c, Some(&h), Some(ts(40)), ts(81), g, sg);
        let u = u.unwrap();
        assert_eq!(
            (u.status.as_str(), u.reason.as_str()),
            ("Unknown", "ClusterStatusUnknown")
        );
        assert_eq!(
            u.message,
            "Cluster status controller stopped posting cluster status."
        );
        // already Unknown: nothing more to write
        let c2 = pull(Some(u));
        let (h, u) = monitor(&c2, Some(&h), Some(ts(40)), ts(90), g, sg);
        assert!(u.is_none());
        // the lease is renewed again: no write from the monitor (the agent posts Ready)
        let (_, u) = monitor(&c2, Some(&h), Some(ts(95)), ts(95), g, sg);
        assert!(u.is_none());
    }

    #[test]
    fn never_posted_uses_startup_grace() {
        let g = Duration::from_secs(40);
        let sg = Duration::from_secs(60);
        let c = pull(None);
        let (h, u) = monitor(&c, None, None, ts(50), g, sg);
        assert!(u.is_none());
        let (_, u) = monitor(&c, Some(&h), None, ts(61), g, sg);
        assert_eq!(u.unwrap().reason, "ClusterStatusNeverUpdated");
        // push clusters are never touched
        let mut push = pull(None);
        push.spec.sync_mode = "Push".into();
        assert!(monitor(&push, None, None, ts(1000), g, sg).1.is_none());
    }

    #[test]
    fn terminating_taint() {
        let cordon = Taint {
            key: TAINT_CLUSTER_UNSCHEDULABLE.into(),
            effect: "NoSchedule".into(),
            ..Default::default()
        };
        let t = terminating_taints(std::slice::from_ref(&cordon), ts(7)).unwrap();
        assert_eq!(
            keys(&t),
            vec![TAINT_CLUSTER_UNSCHEDULABLE, TAINT_CLUSTER_TERMINATING]
        );
        assert_eq!(t[1].effect, "NoExecute");
        assert_eq!(t[1].time_added, Some(Time(ts(7))));
        assert_eq!(terminating_taints(&t, ts(8)), None);
    }

    #[test]
    fn finalizers_stripped_for_unready_pull() {
        assert!(strip_work_finalizers(&pull(None)));
        assert!(strip_work_finalizers(&pull(Some(cond("False", 0)))));
        assert!(!strip_work_finalizers(&pull(Some(cond("True", 0)))));
        let mut push = pull(None);
        push.spec.sync_mode = "Push".into();
        assert!(!strip_work_finalizers(&push));
    }
}
