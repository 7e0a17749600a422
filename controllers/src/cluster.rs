//! The cluster controller (`cluster`): for every Cluster, the finalizer
//! `karmada.io/cluster-controller` and the execution namespace
//! `karmada-es-<cluster>`; on deletion, the terminating NoExecute taint, then
//! the namespace (and the Works in it) removed and no binding left targeting
//! the cluster before the finalizer goes; the automatic not-ready / unreachable
//! NoSchedule taints kept in line with the Ready condition; and a monitor that
//! marks Pull clusters whose Lease expired as Ready=Unknown.

pub mod controller;
pub mod metrics;
pub mod reconcile;

pub use controller::start;
