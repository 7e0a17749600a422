//! The namespace sync controller (`namespace`): namespaces created on the
//! control plane appear in every member cluster and leave them when deleted,
//! except the ones Karmada skips (reserved `karmada-system`,
//! `karmada-cluster`, `karmada-es-*`; `default`; `--skipped-propagating-namespaces`,
//! `kube-.*` by default; label `namespace.karmada.io/skip-auto-propagation: "true"`).
//!
//! As in Karmada, it does so through Works: for each synced namespace, one
//! Work per cluster (Push and Pull alike, every Cluster not being deleted)
//! in `karmada-es-<cluster>`, named `work_name("Namespace", name, "")`,
//! carrying the Namespace with the cluster's ClusterOverridePolicies applied
//! ([`reconcile::namespace_work`]). The execution controller applies it (the
//! agent's for Pull clusters) once the cluster is Ready, and the work-status
//! controller reports it and puts it back after a hand edit or deletion.
//! The member namespace carries `karmada.io/managed: "true"`, the control
//! plane's labels and annotations, and the Work's bookkeeping annotations;
//! member-only labels and annotations are kept.
//!
//! The Works are owned by the namespace (controller owner reference):
//! deleting the namespace lets garbage collection delete them, and the
//! execution controller then deletes the member namespaces (only those
//! labelled managed). A new cluster gets a Work for every namespace; a
//! namespace labelled skip-auto-propagation after it was synced loses its
//! Works (Karmada leaves them; flotilla removes them, as it did before Works).
//!
//! A member namespace that exists without the managed label is not taken
//! over: its Work reports `Applied=False` with the conflict, as in Karmada,
//! unless the control-plane namespace is annotated
//! `work.karmada.io/conflict-resolution: overwrite` (the annotation travels
//! in the manifest).

pub mod controller;
pub mod reconcile;

pub use controller::start;
