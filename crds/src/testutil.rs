//! Test helpers: small builders for clusters and policies.

use std::collections::BTreeMap;

use kube::core::ObjectMeta;

use crate::cluster::{Cluster, ClusterSpec};

/// A Push cluster named `name`.
pub fn cluster(name: &str) -> Cluster {
    Cluster {
        metadata: ObjectMeta {
            name: Some(name.into()),
            ..Default::default()
        },
        spec: ClusterSpec {
            sync_mode: "Push".into(),
            ..Default::default()
        },
        status: None,
    }
}

/// A cluster with labels.
pub fn cluster_with_labels(name: &str, labels: &[(&str, &str)]) -> Cluster {
    let mut c = cluster(name);
    c.metadata.labels = Some(
        labels
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect::<BTreeMap<_, _>>(),
    );
    c
}

/// A cluster with provider, region and zones.
pub fn cluster_at(name: &str, provider: &str, region: &str, zones: &[&str]) -> Cluster {
    let mut c = cluster(name);
    c.spec.provider = provider.into();
    c.spec.region = region.into();
    c.spec.zones = zones.iter().map(|z| z.to_string()).collect();
    c
}

/// Parses YAML into a value of type T.
pub fn yaml<T: serde::de::DeserializeOwned>(s: &str) -> T {
    serde_saphyr::from_str(s).expect("test YAML parses")
}
