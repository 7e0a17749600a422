//! Defaulting of built-in kinds: the values kube-apiserver fills in on every write,
//! so objects read back as they do from a real cluster.

use serde_json::{Map, Value, json};

use super::ResourceInfo;

fn set(map: &mut Map<String, Value>, key: &str, value: Value) {
    if map.get(key).is_none_or(Value::is_null) {
        map.insert(key.to_string(), value);
    }
}

fn obj<'a>(value: &'a mut Value, key: &str) -> Option<&'a mut Map<String, Value>> {
    let map = value.as_object_mut()?;
    if map.get(key).is_none_or(Value::is_null) {
        map.insert(key.to_string(), json!({}));
    }
    map.get_mut(key)?.as_object_mut()
}

/// The pull policy Kubernetes picks from an image reference.
fn pull_policy(image: &str) -> &'static str {
    let name = image.rsplit('/').next().unwrap_or(image);
    let digest = image.contains('@');
    match name.split_once(':') {
        _ if digest => "IfNotPresent",
        Some((_, "latest")) | None => "Always",
        Some(_) => "IfNotPresent",
    }
}

fn container(c: &mut Value) {
    let Some(m) = c.as_object_mut() else { return };
    let image = m
        .get("image")
        .and_then(Value::as_str)
        .unwrap_or("")
        .to_string();
    set(m, "imagePullPolicy", json!(pull_policy(&image)));
    set(m, "terminationMessagePath", json!("/dev/termination-log"));
    set(m, "terminationMessagePolicy", json!("File"));
    set(m, "resources", json!({}));
    if let Some(ports) = m.get_mut("ports").and_then(Value::as_array_mut) {
        for p in ports.iter_mut().filter_map(Value::as_object_mut) {
            set(p, "protocol", json!("TCP"));
        }
    }
}

/// Defaults of a pod spec (pods and pod templates).
fn pod_spec(spec: &mut Map<String, Value>, restart: &str) {
    set(spec, "restartPolicy", json!(restart));
    set(spec, "dnsPolicy", json!("ClusterFirst"));
    set(spec, "terminationGracePeriodSeconds", json!(30));
    set(spec, "schedulerName", json!("default-scheduler"));
    set(spec, "securityContext", json!({}));
    for list in ["containers", "initContainers"] {
        if let Some(cs) = spec.get_mut(list).and_then(Value::as_array_mut) {
            cs.iter_mut().for_each(container);
        }
    }
}

fn template(spec: &mut Value, restart: &str) {
    if let Some(t) = obj(spec, "template")
        && let Some(Value::Object(ps)) = t.get_mut("spec")
    {
        pod_spec(ps, restart);
    }
}

/// Fills in the defaults of a built-in object.
pub fn apply(info: &ResourceInfo, object: &mut Value) {
    let kind = (info.group.as_str(), info.plural.as_str());
    if kind == ("", "secrets") {
        if let Some(m) = object.as_object_mut() {
            set(m, "type", json!("Opaque"));
        }
        return;
    }
    let Some(spec) = object.get_mut("spec").filter(|s| s.is_object()) else {
        return;
    };
    match kind {
        ("", "pods") => {
            if let Some(s) = spec.as_object_mut() {
                pod_spec(s, "Always");
                set(s, "enableServiceLinks", json!(true));
            }
        }
        ("apps", "deployments") => {
            if let Some(s) = spec.as_object_mut() {
                set(s, "replicas", json!(1));
                set(s, "revisionHistoryLimit", json!(10));
                set(s, "progressDeadlineSeconds", json!(600));
                set(s, "strategy", json!({}));
                if let Some(st) = s.get_mut("strategy").and_then(Value::as_object_mut) {
                    // `kubectl create deployment` sends `strategy: {}`.
                    set(st, "type", json!("RollingUpdate"));
                }
                if let Some(st) = s.get_mut("strategy").and_then(Value::as_object_mut)
                    && st.get("type").and_then(Value::as_str) == Some("RollingUpdate")
                {
                    set(st, "rollingUpdate", json!({}));
                    if let Some(ru) = st.get_mut("rollingUpdate").and_then(Value::as_object_mut) {
                        set(ru, "maxUnavailable", json!("25%"));
                        set(ru, "maxSurge", json!("25%"));
                    }
                }
            }
            template(spec, "Always");
        }
        ("apps", "replicasets") => {
            if let Some(s) = spec.as_object_mut() {
                set(s, "replicas", json!(1));
            }
            template(spec, "Always");
        }
        ("apps", "statefulsets") => {
            if let Some(s) = spec.as_object_mut() {
                set(s, "replicas", json!(1));
                set(s, "podManagementPolicy", json!("OrderedReady"));
                set(s, "revisionHistoryLimit", json!(10));
                set(
                    s,
                    "updateStrategy",
                    json!({"type": "RollingUpdate", "rollingUpdate": {"partition": 0}}),
                );
                set(
                    s,
                    "persistentVolumeClaimRetentionPolicy",
                    json!({"whenDeleted": "Retain", "whenScaled": "Retain"}),
                );
            }
            template(spec, "Always");
        }
        ("apps", "daemonsets") => {
            if let Some(s) = spec.as_object_mut() {
                set(s, "revisionHistoryLimit", json!(10));
                set(
                    s,
                    "updateStrategy",
                    json!({"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": 1, "maxSurge": 0}}),
                );
            }
            template(spec, "Always");
        }
        ("batch", "jobs") => {
            if let Some(s) = spec.as_object_mut() {
                set(s, "parallelism", json!(1));
                set(s, "backoffLimit", json!(6));
                set(s, "completionMode", json!("NonIndexed"));
                set(s, "suspend", json!(false));
                set(s, "podReplacementPolicy", json!("TerminatingOrFailed"));
                if s.get("completions").is_none() && s.get("parallelism") == Some(&json!(1)) {
                    s.insert("completions".into(), json!(1));
                }
            }
            template(spec, "Never");
        }
        ("batch", "cronjobs") => {
            if let Some(s) = spec.as_object_mut() {
                set(s, "concurrencyPolicy", json!("Allow"));
                set(s, "suspend", json!(false));
                set(s, "successfulJobsHistoryLimit", json!(3));
                set(s, "failedJobsHistoryLimit", json!(1));
            }
            if let Some(js) = spec.pointer_mut("/jobTemplate/spec") {
                template(js, "Never");
            }
        }
        ("", "services") => {
            if let Some(s) = spec.as_object_mut() {
                set(s, "type", json!("ClusterIP"));
                set(s, "sessionAffinity", json!("None"));
                let external = s.get("type").and_then(Value::as_str) == Some("ExternalName");
                if !external {
                    set(s, "ipFamilies", json!(["IPv4"]));
                    set(s, "ipFamilyPolicy", json!("SingleStack"));
                    set(s, "internalTrafficPolicy", json!("Cluster"));
                }
                if let Some(ports) = s.get_mut("ports").and_then(Value::as_array_mut) {
                    for p in ports.iter_mut().filter_map(Value::as_object_mut) {
                        set(p, "protocol", json!("TCP"));
                        if let Some(port) = p.get("port").cloned() {
                            set(p, "targetPort", port);
                        }
                    }
                }
            }
        }
        ("autoscaling", "horizontalpodautoscalers") => {
            if let Some(s) = spec.as_object_mut() {
                set(s, "minReplicas", json!(1));
            }
        }
        _ => {}
    }
}

/// A cluster IP from the service range (10.96.0.0/12) not in `used`.
pub fn allocate_cluster_ip(used: &std::collections::HashSet<String>) -> Option<String> {
    use rand::Rng;
    let mut rng = rand::rng();
    for _ in 0..1024 {
        // 10.96.0.0/12 spans 10.96.0.0 – 10.111.255.255; skip .0 and the first address.
        let n: u32 = rng.random_range(2..(1 << 20) - 1);
        let ip = std::net::Ipv4Addr::from(0x0A60_0000 + n).to_string();
        if !used.contains(&ip) {
            return Some(ip);
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn info(plural: &str) -> ResourceInfo {
        crate::registry::builtin::resources()
            .into_iter()
            .find(|r| r.plural == plural)
            .expect("kind")
    }

    #[test]
    fn deployment_defaults() {
        let mut d = json!({"spec": {"template": {"spec": {"containers": [{"name": "a", "image": "nginx"}, {"name": "b", "image": "nginx:1.25", "ports": [{"containerPort": 80}]}]}}}});
        apply(&info("deployments"), &mut d);
        assert_eq!(d["spec"]["replicas"], 1);
        assert_eq!(d["spec"]["strategy"]["rollingUpdate"]["maxSurge"], "25%");
        let mut empty = json!({"spec": {"strategy": {}, "template": {"spec": {"containers": []}}}});
        apply(&info("deployments"), &mut empty);
        assert_eq!(empty["spec"]["strategy"]["type"], "RollingUpdate");
        let c = &d["spec"]["template"]["spec"]["containers"];
        assert_eq!(c[0]["imagePullPolicy"], "Always");
        assert_eq!(c[1]["imagePullPolicy"], "IfNotPresent");
        assert_eq!(c[1]["ports"][0]["protocol"], "TCP");
        assert_eq!(d["spec"]["template"]["spec"]["restartPolicy"], "Always");
    }

    #[test]
    fn service_defaults_and_ips() {
        let mut s = json!({"spec": {"ports": [{"port": 80}]}});
        apply(&info("services"), &mut s);
        assert_eq!(s["spec"]["type"], "ClusterIP");
        assert_eq!(s["spec"]["ports"][0]["targetPort"], 80);
        let ip = allocate_cluster_ip(&Default::default()).expect("ip");
        assert!(
            ip.starts_with("10.9") || ip.starts_with("10.10") || ip.starts_with("10.11"),
            "{ip}"
        );
        assert_eq!(pull_policy("registry:5000/app"), "Always");
        assert_eq!(pull_policy("registry:5000/app:v1"), "IfNotPresent");
        assert_eq!(pull_policy("app@sha256:abc"), "IfNotPresent");
    }
}
