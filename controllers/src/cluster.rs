//! The cluster controller (`cluster`): for every Cluster, the finalizer
//! `karmada.io/cluster-controller` and the execution namespace
//! `karmada-es-<cluster>`; on deletion, the namespace (and the Works in it)
//! removed before the finalizer; the automatic not-ready / unreachable
//! NoSchedule taints kept in line with the Ready condition; and a monitor that
//! marks Pull clusters whose Lease expired as Ready=Unknown.

pub mod controller;
pub mod reconcile;

pub use controller::start;
