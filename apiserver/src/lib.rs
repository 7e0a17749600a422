//! flotilla-apiserver: a Kubernetes-compatible API server.
//!
//! Layers, each knowing only the one below: [`server`] (TLS, authentication, the
//! accept loop) → [`endpoints`] (URL → `RequestInfo`, content negotiation,
//! discovery, OpenAPI, tables, watch streams) → [`registry`] (the catalogue of kinds
//! and the one generic store) → [`storage`] (revisioned key-value storage).
//! Start at [`server::run`].

pub mod admission;
pub mod aggregator;
pub mod cluster_proxy;
pub mod endpoints;
pub mod metrics;
pub use flotilla_api::packed;
pub mod registry;
pub mod server;
pub mod status;
pub mod storage;
pub mod unified;
pub mod webhook_client;
