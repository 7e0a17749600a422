//! The namespace sync controller (`namespace`): namespaces created on the
//! control plane appear in every member and are removed from them when
//! deleted, except the ones Karmada skips (reserved `karmada-system`,
//! `karmada-cluster`, `karmada-es-*`; `default`; `--skipped-propagating-namespaces`,
//! `kube-.*` by default; label `namespace.karmada.io/skip-auto-propagation: "true"`).
//!
//! Karmada does this through one Work per cluster (owned by the Namespace)
//! that the execution controller applies. Until flotilla has Works and the
//! execution controller, this controller writes to Push members directly,
//! through the same member clients as the status controller, and only to
//! Ready members (as the execution controller only applies to Ready
//! clusters). Member namespaces it creates carry `karmada.io/managed: "true"`,
//! and it deletes only namespaces with that label, so a member's own
//! namespaces are never removed. Pull members get namespaces once the agent
//! applies Works.

pub mod controller;
pub mod reconcile;

pub use controller::start;
