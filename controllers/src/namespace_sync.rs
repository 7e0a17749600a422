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
//! clusters). Member namespaces it writes carry `karmada.io/managed: "true"`
//! and the control plane's labels and annotations (member-only ones are
//! kept); a member namespace of the same name that already exists is taken
//! over, as Karmada's namespace Works use conflict resolution `overwrite`.
//! It deletes only namespaces with the managed label, so a member's own
//! namespaces that the control plane never had are never removed. Pull
//! members are out of the control plane's reach: until the agent applies
//! Works, the agent runs the same [`sync_namespaces`] against its member.

pub mod controller;
pub mod reconcile;

pub use controller::{start, sync_namespaces};
