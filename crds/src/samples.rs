//! Round-trip tests over Karmada's published samples (`../shared/karmada/samples`,
//! skipped with a note when absent) and flotilla's own `samples/`: every
//! document parses into its Rust type, serialises back without losing a field,
//! and passes defaulting + validation.

use std::path::{Path, PathBuf};

use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::Value;

use crate::{autoscaling, config, mcs, networking, policy, work};

fn karmada_samples_dir() -> PathBuf {
    Path::new(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../shared/karmada/samples"
    ))
    .to_path_buf()
}

fn own_samples_dir() -> PathBuf {
    Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/../samples")).to_path_buf()
}

/// Reads one Karmada sample file by relative path, if the shared directory exists.
pub fn read_karmada_sample(rel: &str) -> Option<String> {
    std::fs::read_to_string(karmada_samples_dir().join(rel)).ok()
}

fn yaml_files(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    let mut entries: Vec<PathBuf> = entries.filter_map(|e| e.ok().map(|e| e.path())).collect();
    entries.sort();
    for p in entries {
        if p.is_dir() {
            yaml_files(&p, out);
        } else if p.extension().is_some_and(|e| e == "yaml" || e == "yml") {
            out.push(p);
        }
    }
}

fn documents(text: &str) -> Vec<Value> {
    serde_saphyr::from_multiple::<Value>(text)
        .unwrap_or_else(|e| panic!("YAML does not parse: {e}"))
        .into_iter()
        .filter(|v| !v.is_null())
        .collect()
}

/// `orig` ⊆ `back`: every field of the original survives with the same value;
/// fields only in `back` must be empty objects (Go structs always serialised).
fn assert_lossless(orig: &Value, back: &Value, path: &str) {
    match (orig, back) {
        (Value::Object(a), Value::Object(b)) => {
            for (k, v) in a {
                let w = b
                    .get(k)
                    .unwrap_or_else(|| panic!("{path}.{k} lost in round trip"));
                assert_lossless(v, w, &format!("{path}.{k}"));
            }
            for (k, v) in b {
                if !a.contains_key(k) {
                    assert_eq!(
                        v,
                        &serde_json::json!({}),
                        "{path}.{k} appeared in round trip"
                    );
                }
            }
        }
        (Value::Array(a), Value::Array(b)) => {
            assert_eq!(a.len(), b.len(), "{path} length changed");
            for (i, (x, y)) in a.iter().zip(b).enumerate() {
                assert_lossless(x, y, &format!("{path}[{i}]"));
            }
        }
        (a, b) => assert_eq!(a, b, "{path} changed"),
    }
}

fn round_trip<T: DeserializeOwned + Serialize>(doc: &Value) -> T {
    let typed: T = serde_json::from_value(doc.clone())
        .unwrap_or_else(|e| panic!("does not parse into its type: {e}"));
    let back = serde_json::to_value(&typed).unwrap_or_else(|e| panic!("does not serialise: {e}"));
    assert_lossless(doc, &back, "");
    typed
}

/// Round-trips one document of a known kind and validates it; returns
/// whether the kind was known.
fn check_document(doc: &Value) -> bool {
    let kind = doc.get("kind").and_then(Value::as_str).unwrap_or_default();
    let api = doc
        .get("apiVersion")
        .and_then(Value::as_str)
        .unwrap_or_default();
    match (api, kind) {
        ("policy.karmada.io/v1alpha1", "PropagationPolicy") => {
            let mut p: policy::PropagationPolicy = round_trip(doc);
            if p.metadata.namespace.is_none() {
                p.metadata.namespace = Some("default".into());
            }
            let ns = p.metadata.namespace.clone().unwrap_or_default();
            crate::defaults::apply_propagation_schema_defaults(&mut p.spec);
            crate::defaults::default_propagation_policy(
                &mut p,
                &ns,
                Some("00000000-0000-4000-8000-000000000000"),
            );
            let errs = crate::validation::validate_propagation_policy(&p, None);
            assert!(errs.is_empty(), "sample does not validate: {errs:?}");
        }
        ("policy.karmada.io/v1alpha1", "ClusterPropagationPolicy") => {
            let mut p: policy::ClusterPropagationPolicy = round_trip(doc);
            crate::defaults::apply_propagation_schema_defaults(&mut p.spec.0);
            crate::defaults::default_cluster_propagation_policy(
                &mut p,
                Some("00000000-0000-4000-8000-000000000000"),
            );
            let errs = crate::validation::validate_cluster_propagation_policy(&p, None);
            assert!(errs.is_empty(), "sample does not validate: {errs:?}");
        }
        ("policy.karmada.io/v1alpha1", "OverridePolicy") => {
            let mut p: policy::OverridePolicy = round_trip(doc);
            if p.metadata.namespace.is_none() {
                p.metadata.namespace = Some("default".into());
            }
            let ns = p.metadata.namespace.clone().unwrap_or_default();
            crate::defaults::default_override_policy(&mut p, &ns);
            let errs = crate::validation::validate_override_policy(&p);
            assert!(errs.is_empty(), "sample does not validate: {errs:?}");
        }
        ("policy.karmada.io/v1alpha1", "ClusterOverridePolicy") => {
            let p: policy::ClusterOverridePolicy = round_trip(doc);
            let errs = crate::validation::validate_cluster_override_policy(&p);
            assert!(errs.is_empty(), "sample does not validate: {errs:?}");
        }
        ("work.karmada.io/v1alpha2", "ResourceBinding") => {
            let _: work::ResourceBinding = round_trip(doc);
        }
        ("work.karmada.io/v1alpha2", "ClusterResourceBinding") => {
            let _: work::ClusterResourceBinding = round_trip(doc);
        }
        ("work.karmada.io/v1alpha1", "Work") => {
            let _: work::Work = round_trip(doc);
        }
        ("cluster.karmada.io/v1alpha1", "Cluster") => {
            let c: crate::cluster::Cluster = round_trip(doc);
            let errs = crate::validation::validate_cluster(&c);
            assert!(errs.is_empty(), "sample does not validate: {errs:?}");
        }
        ("autoscaling.karmada.io/v1alpha1", "FederatedHPA") => {
            let mut h: autoscaling::FederatedHPA = round_trip(doc);
            crate::defaults::default_federated_hpa(&mut h);
            let errs = crate::validation::validate_federated_hpa(&h);
            assert!(errs.is_empty(), "sample does not validate: {errs:?}");
        }
        ("autoscaling.karmada.io/v1alpha1", "CronFederatedHPA") => {
            let h: autoscaling::CronFederatedHPA = round_trip(doc);
            let errs = crate::validation::validate_cron_federated_hpa(&h);
            assert!(errs.is_empty(), "sample does not validate: {errs:?}");
        }
        ("networking.karmada.io/v1alpha1", "MultiClusterService") => {
            let _: networking::MultiClusterService = round_trip(doc);
        }
        ("networking.karmada.io/v1alpha1", "MultiClusterIngress") => {
            let _: networking::MultiClusterIngress = round_trip(doc);
        }
        ("multicluster.x-k8s.io/v1alpha1", "ServiceExport") => {
            let _: mcs::ServiceExport = round_trip(doc);
        }
        ("multicluster.x-k8s.io/v1alpha1", "ServiceImport") => {
            let _: mcs::ServiceImport = round_trip(doc);
        }
        ("search.karmada.io/v1alpha1", "ResourceRegistry") => {
            let _: crate::search::ResourceRegistry = round_trip(doc);
        }
        ("config.karmada.io/v1alpha1", "ResourceInterpreterCustomization") => {
            let _: config::ResourceInterpreterCustomization = round_trip(doc);
        }
        _ => return false,
    }
    true
}

fn check_dir(dir: &Path) -> (usize, usize) {
    let mut files = Vec::new();
    yaml_files(dir, &mut files);
    let (mut docs, mut known) = (0, 0);
    for f in files {
        let text = std::fs::read_to_string(&f).unwrap_or_default();
        for doc in documents(&text) {
            docs += 1;
            let ok = std::panic::catch_unwind(|| check_document(&doc))
                .unwrap_or_else(|_| panic!("{} failed (see above)", f.display()));
            if ok {
                known += 1;
            }
        }
    }
    (docs, known)
}

#[test]
fn karmada_samples_round_trip_and_validate() {
    let dir = karmada_samples_dir();
    if !dir.is_dir() {
        eprintln!(
            "note: {} not found; skipping Karmada sample round trips",
            dir.display()
        );
        return;
    }
    let (docs, known) = check_dir(&dir);
    eprintln!("checked {docs} documents, {known} Karmada kinds");
    assert!(
        known >= 5,
        "expected the Karmada policies among the samples"
    );
}

#[test]
fn own_samples_round_trip_and_validate() {
    let dir = own_samples_dir();
    if !dir.is_dir() {
        eprintln!("note: {} not found; skipping", dir.display());
        return;
    }
    let (docs, known) = check_dir(&dir);
    eprintln!("checked {docs} documents, {known} Karmada kinds");
    assert!(known >= 15, "every kind has a flotilla sample");
}
