//! flotilla's end-to-end tests, one module per capability: each starts the real
//! `flotilla` binary (see `flotilla_tests::flotilla_bin`) and drives it with
//! kubectl and kube-rs.
//!
//! They are one test binary rather than one per file: every test binary links the
//! whole dependency tree (about 250 MB each in a debug build), so two dozen of them
//! cost gigabytes of disk and minutes of linking on a 2-core machine. nextest still
//! runs every test in a process of its own. Run one module with
//! `cargo nextest run -p flotilla-tests -E 'test(/^propagation::/)'`.

mod admission;
mod aggregation;
mod cluster_proxy;
mod conversion;
mod deploy;
mod etcd;
mod failover;
mod hpa;
mod kube_client;
mod kube_semantics;
mod kubectl;
mod kubectl_semantics;
mod leader_election;
mod member_faults;
mod members;
mod monitoring;
mod namespace_works;
mod policy_features;
mod propagation;
mod rbac;
mod services;
mod tokens;
mod unified;
mod webhook;
