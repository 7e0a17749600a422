//! Manifests the end-to-end suites apply, as YAML text.

/// A Deployment `name` (label `app: NAME` plus `extra_labels`, written as
/// `, key: value` pairs) of `replicas` pods running `image`.
pub fn deployment(name: &str, replicas: i64, image: &str, extra_labels: &str) -> String {
    format!(
        r#"apiVersion: apps/v1
kind: Deployment
metadata:
  name: {name}
  labels: {{app: {name}{extra_labels}}}
spec:
  replicas: {replicas}
  selector:
    matchLabels: {{app: {name}}}
  template:
    metadata:
      labels: {{app: {name}}}
    spec:
      containers:
        - name: main
          image: {image}
"#
    )
}

/// A PropagationPolicy `name` selecting Deployment `target` by name, to
/// `clusters` (duplicated), with `extra_spec` (indented lines) appended to
/// its spec.
pub fn policy(name: &str, target: &str, clusters: &[&str], extra_spec: &str) -> String {
    format!(
        r#"apiVersion: policy.karmada.io/v1alpha1
kind: PropagationPolicy
metadata:
  name: {name}
spec:
  resourceSelectors:
    - {{apiVersion: apps/v1, kind: Deployment, name: {target}}}
  placement:
    clusterAffinity:
      clusterNames: [{}]
{extra_spec}"#,
        clusters.join(", ")
    )
}
