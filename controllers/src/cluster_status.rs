//! The cluster status controller (`clusterStatus`) for Push clusters: every
//! `cluster_status_update_frequency` it probes each member and writes the
//! Cluster's status (Ready with Karmada's thresholds, kubernetesVersion,
//! apiEnablements, nodeSummary, resourceSummary) through the status
//! subresource. The agent ([`crate::agent`]) runs the same [`sync_status`]
//! for its Pull cluster.

pub mod controller;
pub mod reconcile;

pub use controller::{start, sync_status};
