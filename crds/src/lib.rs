//! flotilla-api: the Karmada API in Rust — types, CRD manifests, validation,
//! defaulting and the pure algorithms (division, overrides, matching).
//!
//! Everything here is I/O-free and tokio-free. Start with the kinds
//! ([`policy`], [`work`], [`cluster`], [`autoscaling`], [`networking`],
//! [`mcs`], [`search`], [`config`]), then the algorithms:
//!
//! - [`scheduling`]: one scheduling pass for a binding, built from
//!   [`placement`] (filters, spread selection), [`estimator`] (available
//!   replicas) and [`division`] (replica division);
//! - [`matching`]: which (Cluster)PropagationPolicy claims a template, and
//!   [`detector`]: the claim metadata and the binding built for it;
//! - [`overrides`]: override application, with [`image`] parsing;
//! - [`render`]: the Work a binding produces for one cluster;
//! - [`interpreter`]: replicas/requirements, health, status reflection and
//!   aggregation of the built-in workloads;
//! - [`names`]: binding, Work and execution-namespace names;
//! - [`failover`]: ClusterTaintPolicy, taint eviction and graceful eviction
//!   decisions.
//!
//! Admission: [`admission`] routes AdmissionReview objects to [`defaults`]
//! and [`validation`] (Kubernetes-style [`FieldError`]s with Karmada's
//! messages). [`crd`] renders the CustomResourceDefinitions that
//! `flotilla crds` prints ([`crd_manifests`]); [`work::convert_binding`]
//! serves the binding CRDs' conversion webhook.

// kube's `printcolumn(...)` attributes repeat `type_ = ...`, which this lint misreads.
#![allow(clippy::duplicated_attributes)]
#![warn(missing_docs)]
#![cfg_attr(test, allow(clippy::unwrap_used))]

pub mod admission;
pub mod autoscaling;
pub mod cluster;
pub mod config;
pub mod crd;
pub mod defaults;
pub mod dependencies;
pub mod detector;
pub mod division;
pub mod estimator;
pub mod failover;
pub mod image;
pub mod interpreter;
pub mod labels;
pub mod matching;
pub mod mcs;
pub mod multicluster;
pub mod names;
pub mod networking;
pub mod overrides;
pub mod packed;
pub mod placement;
pub mod policy;
pub mod quantity;
pub mod raw;
pub mod render;
pub mod scheduling;
pub mod schema;
pub mod search;
pub mod validation;
pub mod work;

#[cfg(test)]
mod samples;
#[cfg(test)]
pub(crate) mod testutil;

pub use crd::{crd_manifests, crd_values};
pub use validation::FieldError;
