//! The endpoints controllers' pure part: a Service's Endpoints and EndpointSlices
//! from the pods its selector matches, as the endpoints and endpointslice
//! controllers of kube-controller-manager build them.

use std::collections::BTreeMap;

use serde_json::{Map, Value, json};

use crate::object::{self, map_selects, name, pod_ready, str_at, uid};

/// Label naming the Service of an EndpointSlice.
pub const SERVICE_NAME: &str = "kubernetes.io/service-name";
/// Label naming the controller managing an EndpointSlice.
pub const MANAGED_BY: &str = "endpointslice.kubernetes.io/managed-by";
/// The endpointslice controller's name in [`MANAGED_BY`].
pub const CONTROLLER: &str = "endpointslice-controller.k8s.io";
/// Endpoints per slice, as kube's default `--max-endpoints-per-slice`.
pub const MAX_PER_SLICE: usize = 100;

/// Whether the service's endpoints are managed by the controllers (it has a selector).
pub fn managed(service: &Value) -> bool {
    str_at(service, "/spec/type") != "ExternalName"
        && service
            .pointer("/spec/selector")
            .and_then(Value::as_object)
            .is_some_and(|s| !s.is_empty())
}

/// The pods a Service selects that have an IP and are not finished or deleting.
pub fn selected_pods<'a>(service: &Value, pods: &[&'a Value]) -> Vec<&'a Value> {
    let selector = service
        .pointer("/spec/selector")
        .and_then(Value::as_object)
        .cloned()
        .unwrap_or_default();
    let mut out: Vec<&Value> = pods
        .iter()
        .copied()
        .filter(|p| object::pod_active(p))
        .filter(|p| !str_at(p, "/status/podIP").is_empty())
        .filter(|p| map_selects(&selector, &object::labels(p)))
        .collect();
    out.sort_by(|a, b| name(a).cmp(name(b)));
    out
}

/// A service port's target resolved for one pod (a named port looked up in the
/// pod's containers); `None` when the pod lacks the named port.
fn resolve_port(service_port: &Value, pod: &Value) -> Option<i64> {
    match service_port.get("targetPort") {
        Some(Value::Number(n)) => n.as_i64(),
        Some(Value::String(s)) => {
            if let Ok(n) = s.parse() {
                return Some(n);
            }
            pod.pointer("/spec/containers")
                .and_then(Value::as_array)?
                .iter()
                .flat_map(|c| {
                    c.get("ports")
                        .and_then(Value::as_array)
                        .cloned()
                        .unwrap_or_default()
                })
                .find(|p| str_at(p, "/name") == s)
                .and_then(|p| p.get("containerPort").and_then(Value::as_i64))
        }
        _ => service_port.get("port").and_then(Value::as_i64),
    }
}

fn ports_for(service: &Value, pod: &Value) -> Vec<(String, i64, String, Option<Value>)> {
    service
        .pointer("/spec/ports")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|p| {
            resolve_port(p, pod).map(|port| {
                (
                    str_at(p, "/name").to_string(),
                    port,
                    match str_at(p, "/protocol") {
                        "" => "TCP".to_string(),
                        other => other.to_string(),
                    },
                    p.get("appProtocol").cloned(),
                )
            })
        })
        .collect()
}

fn target_ref(pod: &Value) -> Value {
    json!({"kind": "Pod", "namespace": object::namespace(pod), "name": name(pod), "uid": uid(pod)})
}

/// Ready addresses, not-ready addresses and ports of one Endpoints subset.
type Subset = (Vec<Value>, Vec<Value>, Vec<Value>);

/// The Endpoints object of a Service.
pub fn endpoints(service: &Value, pods: &[&Value]) -> Value {
    let publish = service.pointer("/spec/publishNotReadyAddresses") == Some(&Value::Bool(true));
    let mut subsets: BTreeMap<String, Subset> = BTreeMap::new();
    for pod in selected_pods(service, pods) {
        let ports = ports_for(service, pod);
        let key = serde_json::to_string(&ports).unwrap_or_default();
        let entry = subsets.entry(key).or_insert_with(|| {
            let ports = ports
                .iter()
                .map(|(n, port, proto, app)| {
                    let mut p = json!({"port": port, "protocol": proto});
                    if !n.is_empty() {
                        p["name"] = json!(n);
                    }
                    if let Some(a) = app {
                        p["appProtocol"] = a.clone();
                    }
                    p
                })
                .collect();
            (Vec::new(), Vec::new(), ports)
        });
        let address = json!({
            "ip": str_at(pod, "/status/podIP"),
            "nodeName": str_at(pod, "/spec/nodeName"),
            "targetRef": target_ref(pod),
        });
        if pod_ready(pod) || publish {
            entry.0.push(address);
        } else {
            entry.1.push(address);
        }
    }
    let subsets: Vec<Value> = subsets
        .into_values()
        .map(|(ready, not_ready, ports)| {
            let mut s = Map::new();
            if !ready.is_empty() {
                s.insert("addresses".into(), json!(ready));
            }
            if !not_ready.is_empty() {
                s.insert("notReadyAddresses".into(), json!(not_ready));
            }
            if !ports.is_empty() {
                s.insert("ports".into(), json!(ports));
            }
            Value::Object(s)
        })
        .collect();
    let mut object = json!({
        "apiVersion": "v1",
        "kind": "Endpoints",
        "metadata": {
            "name": name(service),
            "namespace": object::namespace(service),
            "labels": service_labels(service),
        },
    });
    if !subsets.is_empty() {
        object["subsets"] = json!(subsets);
    }
    object
}

fn service_labels(service: &Value) -> Map<String, Value> {
    let mut labels = object::labels(service);
    if str_at(service, "/spec/clusterIP") == "None" {
        labels.insert("service.kubernetes.io/headless".into(), json!(""));
    }
    labels
}

/// The EndpointSlices a Service should have (without names: the controller gives
/// new ones `generateName: <service>-`). Pods are grouped by resolved ports and
/// split at [`MAX_PER_SLICE`].
pub fn endpoint_slices(
    service: &Value,
    pods: &[&Value],
    zones: &BTreeMap<String, String>,
) -> Vec<Value> {
    let publish = service.pointer("/spec/publishNotReadyAddresses") == Some(&Value::Bool(true));
    let mut groups: BTreeMap<String, (Vec<Value>, Vec<Value>)> = BTreeMap::new();
    for pod in selected_pods(service, pods) {
        let ports = ports_for(service, pod);
        let key = serde_json::to_string(&ports).unwrap_or_default();
        let entry = groups.entry(key).or_insert_with(|| {
            let ports = ports
                .iter()
                .map(|(n, port, proto, app)| {
                    let mut p = json!({"name": n, "port": port, "protocol": proto});
                    if let Some(a) = app {
                        p["appProtocol"] = a.clone();
                    }
                    p
                })
                .collect();
            (Vec::new(), ports)
        });
        let ready = pod_ready(pod);
        let node = str_at(pod, "/spec/nodeName");
        let mut endpoint = json!({
            "addresses": [str_at(pod, "/status/podIP")],
            "conditions": {"ready": ready || publish, "serving": ready, "terminating": false},
            "nodeName": node,
            "targetRef": target_ref(pod),
        });
        if let Some(zone) = zones.get(node) {
            endpoint["zone"] = json!(zone);
        }
        entry.0.push(endpoint);
    }
    let mut labels = service_labels(service);
    labels.insert(SERVICE_NAME.into(), json!(name(service)));
    labels.insert(MANAGED_BY.into(), json!(CONTROLLER));
    let slice = |endpoints: Vec<Value>, ports: Vec<Value>| {
        json!({
            "apiVersion": "discovery.k8s.io/v1",
            "kind": "EndpointSlice",
            "metadata": {
                "generateName": format!("{}-", name(service)),
                "namespace": object::namespace(service),
                "labels": labels,
                "ownerReferences": [object::controller_ref("v1", "Service", service)],
            },
            "addressType": "IPv4",
            "endpoints": endpoints,
            "ports": ports,
        })
    };
    let mut out = Vec::new();
    for (_, (endpoints, ports)) in groups {
        for chunk in endpoints.chunks(MAX_PER_SLICE) {
            out.push(slice(chunk.to_vec(), ports.clone()));
        }
    }
    if out.is_empty() {
        // kube keeps one empty slice (with the service's ports) for a service with no endpoints.
        let ports: Vec<Value> = service
            .pointer("/spec/ports")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .map(|p| {
                json!({"name": str_at(p, "/name"), "port": p.get("targetPort").and_then(Value::as_i64).or(p.get("port").and_then(Value::as_i64)),
                    "protocol": if str_at(p, "/protocol").is_empty() { "TCP" } else { str_at(p, "/protocol") }})
            })
            .collect();
        out.push(slice(Vec::new(), ports));
    }
    out
}

/// Whether an existing slice already carries what a desired one does.
pub fn slice_matches(existing: &Value, desired: &Value) -> bool {
    let labels_ok = object::labels(existing) == object::labels(desired);
    labels_ok
        && existing.get("endpoints").cloned().unwrap_or(json!([]))
            == desired.get("endpoints").cloned().unwrap_or(json!([]))
        && existing.get("ports").cloned().unwrap_or(json!([]))
            == desired.get("ports").cloned().unwrap_or(json!([]))
        && existing.get("addressType") == desired.get("addressType")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pod(name: &str, ip: &str, ready: bool) -> Value {
        json!({"metadata": {"name": name, "namespace": "default", "uid": format!("{name}-uid"), "labels": {"app": "web"}},
            "spec": {"nodeName": "n0", "containers": [{"name": "c", "ports": [{"name": "http", "containerPort": 8080}]}]},
            "status": {"phase": "Running", "podIP": ip, "conditions": [{"type": "Ready", "status": if ready {"True"} else {"False"}}]}})
    }

    #[test]
    fn slices_and_endpoints_from_pods() {
        let svc = json!({"metadata": {"name": "web", "namespace": "default", "uid": "s"},
            "spec": {"selector": {"app": "web"}, "ports": [{"name": "http", "port": 80, "targetPort": "http"}]}});
        let a = pod("a", "10.244.0.2", true);
        let b = pod("b", "10.244.0.3", false);
        let other = json!({"metadata": {"name": "x", "labels": {"app": "db"}}, "status": {"podIP": "10.244.0.9"}});
        let zones = BTreeMap::from([("n0".to_string(), "z1".to_string())]);
        let slices = endpoint_slices(&svc, &[&a, &b, &other], &zones);
        assert_eq!(slices.len(), 1);
        let s = &slices[0];
        assert_eq!(
            str_at(s, "/metadata/labels/kubernetes.io~1service-name"),
            "web"
        );
        assert_eq!(s["addressType"], json!("IPv4"));
        assert_eq!(s["ports"][0]["port"], json!(8080));
        assert_eq!(s["endpoints"].as_array().map(Vec::len), Some(2));
        assert_eq!(s["endpoints"][0]["conditions"]["ready"], json!(true));
        assert_eq!(s["endpoints"][1]["conditions"]["ready"], json!(false));
        assert_eq!(s["endpoints"][0]["zone"], json!("z1"));
        let e = endpoints(&svc, &[&a, &b]);
        assert_eq!(e["subsets"][0]["addresses"][0]["ip"], json!("10.244.0.2"));
        assert_eq!(
            e["subsets"][0]["notReadyAddresses"][0]["ip"],
            json!("10.244.0.3")
        );
        assert!(slice_matches(
            s,
            &endpoint_slices(&svc, &[&a, &b], &zones)[0]
        ));
    }
}
