//! The fake kubelet's pure part: Node objects and the pod statuses a kubelet
//! reports (Running and Ready, or Succeeded for run-to-completion pods).

use serde_json::{Value, json};

use crate::object::{self, str_at};
use crate::quantity;
use crate::schedule::Resources;

/// The kubelet version simulated nodes report.
pub const KUBELET_VERSION: &str = "v1.33.0";

/// A simulated Node: capacity and allocatable, Ready and the pressure conditions,
/// addresses, node info and the well-known labels (topology ones when given).
pub fn node(
    name: &str,
    index: usize,
    capacity: &Resources,
    region: Option<&str>,
    zone: Option<&str>,
) -> Value {
    let now = object::now();
    let resources = json!({
        "cpu": quantity::format_cpu(capacity.cpu_millis),
        "memory": quantity::format_bytes(capacity.memory_bytes),
        "pods": capacity.pods.to_string(),
        "ephemeral-storage": "100Gi",
    });
    let mut labels = json!({
        "kubernetes.io/hostname": name,
        "kubernetes.io/os": "linux",
        "kubernetes.io/arch": "amd64",
        "beta.kubernetes.io/os": "linux",
        "beta.kubernetes.io/arch": "amd64",
        "node.kubernetes.io/instance-type": "flotilla-sim",
    });
    if let Some(r) = region {
        labels["topology.kubernetes.io/region"] = json!(r);
    }
    if let Some(z) = zone {
        labels["topology.kubernetes.io/zone"] = json!(z);
    }
    let condition = |kind: &str, status: &str, reason: &str, message: &str| {
        json!({"type": kind, "status": status, "lastHeartbeatTime": now, "lastTransitionTime": now,
            "reason": reason, "message": message})
    };
    json!({
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": {
            "name": name,
            "labels": labels,
            "annotations": {"node.alpha.kubernetes.io/ttl": "0", "flotilla.io/simulated": "true"},
        },
        "spec": {
            "podCIDR": pod_cidr(index),
            "podCIDRs": [pod_cidr(index)],
            "providerID": format!("flotilla-sim://{name}"),
        },
        "status": {
            "capacity": resources,
            "allocatable": resources,
            "conditions": [
                condition("MemoryPressure", "False", "KubeletHasSufficientMemory", "kubelet has sufficient memory available"),
                condition("DiskPressure", "False", "KubeletHasNoDiskPressure", "kubelet has no disk pressure"),
                condition("PIDPressure", "False", "KubeletHasSufficientPID", "kubelet has sufficient PID available"),
                condition("Ready", "True", "KubeletReady", "kubelet is posting ready status"),
            ],
            "addresses": [
                {"type": "InternalIP", "address": node_ip(index)},
                {"type": "Hostname", "address": name},
            ],
            "daemonEndpoints": {"kubeletEndpoint": {"Port": 10250}},
            "nodeInfo": {
                "machineID": format!("{:032x}", object::fnv32a(name.as_bytes())),
                "systemUUID": format!("{:08x}-0000-0000-0000-000000000000", object::fnv32a(name.as_bytes())),
                "bootID": format!("{:08x}-0000-0000-0000-000000000001", object::fnv32a(name.as_bytes())),
                "kernelVersion": "6.8.0-flotilla",
                "osImage": "flotilla simulated node",
                "containerRuntimeVersion": "containerd://2.0.0",
                "kubeletVersion": KUBELET_VERSION,
                "kubeProxyVersion": KUBELET_VERSION,
                "operatingSystem": "linux",
                "architecture": "amd64",
            },
        },
    })
}

/// The pod CIDR of node `index`: `10.244.<index>.0/24`.
pub fn pod_cidr(index: usize) -> String {
    format!("10.244.{}.0/24", index % 256)
}

/// The InternalIP of node `index`.
pub fn node_ip(index: usize) -> String {
    format!("172.18.{}.{}", index / 250, index % 250 + 2)
}

/// The first free pod IP in a node's CIDR, given the IPs in use there.
pub fn allocate_pod_ip(cidr: &str, used: &std::collections::HashSet<String>) -> Option<String> {
    let base = cidr.strip_suffix(".0/24")?;
    (2..255)
        .map(|h| format!("{base}.{h}"))
        .find(|ip| !used.contains(ip))
}

/// The pod's QoS class from its containers' requests and limits.
pub fn qos_class(pod: &Value) -> &'static str {
    let containers: Vec<&Value> = pod
        .pointer("/spec/containers")
        .and_then(Value::as_array)
        .map(|c| c.iter().collect())
        .unwrap_or_default();
    let mut any = false;
    let mut guaranteed = !containers.is_empty();
    for c in &containers {
        for r in ["cpu", "memory"] {
            let req = str_at(c, &format!("/resources/requests/{r}"));
            let lim = str_at(c, &format!("/resources/limits/{r}"));
            any |= !req.is_empty() || !lim.is_empty();
            if lim.is_empty() || (!req.is_empty() && req != lim) {
                guaranteed = false;
            }
        }
    }
    match (guaranteed, any) {
        (true, _) => "Guaranteed",
        (false, true) => "Burstable",
        _ => "BestEffort",
    }
}

fn container_id(pod: &Value, container: &str) -> String {
    let seed = format!("{}/{}/{container}", object::uid(pod), object::name(pod));
    let h = object::fnv32a(seed.as_bytes());
    format!("containerd://{}", format!("{h:08x}").repeat(8))
}

/// The status of a pod that has started: Running and Ready, with IPs, start time
/// and running container statuses.
pub fn running_status(pod: &Value, host_ip: &str, pod_ip: &str) -> Value {
    let now = object::now();
    let started = {
        let s = str_at(pod, "/status/startTime");
        if s.is_empty() {
            now.clone()
        } else {
            s.to_string()
        }
    };
    let statuses: Vec<Value> = containers(pod, "containers")
        .iter()
        .map(|c| {
            json!({
                "name": str_at(c, "/name"),
                "image": str_at(c, "/image"),
                "imageID": format!("{}@sha256:{}", str_at(c, "/image"), format!("{:08x}", object::fnv32a(str_at(c, "/image").as_bytes())).repeat(8)),
                "containerID": container_id(pod, str_at(c, "/name")),
                "ready": true,
                "started": true,
                "restartCount": 0,
                "state": {"running": {"startedAt": started}},
                "lastState": {},
            })
        })
        .collect();
    let condition = |kind: &str| json!({"type": kind, "status": "True", "lastProbeTime": null, "lastTransitionTime": now});
    let mut status = json!({
        "phase": "Running",
        "conditions": [
            condition("PodReadyToStartContainers"),
            condition("Initialized"),
            condition("Ready"),
            condition("ContainersReady"),
            condition("PodScheduled"),
        ],
        "hostIP": host_ip,
        "hostIPs": [{"ip": host_ip}],
        "podIP": pod_ip,
        "podIPs": [{"ip": pod_ip}],
        "startTime": started,
        "qosClass": qos_class(pod),
        "containerStatuses": statuses,
    });
    let inits = terminated_statuses(pod, "initContainers", &started, &now);
    if !inits.is_empty() {
        status["initContainerStatuses"] = json!(inits);
    }
    status
}

fn containers(pod: &Value, field: &str) -> Vec<Value> {
    pod.pointer(&format!("/spec/{field}"))
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default()
}

fn terminated_statuses(pod: &Value, field: &str, started: &str, finished: &str) -> Vec<Value> {
    containers(pod, field)
        .iter()
        .map(|c| {
            json!({
                "name": str_at(c, "/name"),
                "image": str_at(c, "/image"),
                "imageID": "",
                "containerID": container_id(pod, str_at(c, "/name")),
                "ready": false,
                "started": false,
                "restartCount": 0,
                "state": {"terminated": {"exitCode": 0, "reason": "Completed", "startedAt": started, "finishedAt": finished, "containerID": container_id(pod, str_at(c, "/name"))}},
                "lastState": {},
            })
        })
        .collect()
}

/// The status of a run-to-completion pod that has finished successfully.
pub fn succeeded_status(pod: &Value) -> Value {
    let now = object::now();
    let started = str_at(pod, "/status/startTime").to_string();
    let mut status = pod.get("status").cloned().unwrap_or_else(|| json!({}));
    status["phase"] = json!("Succeeded");
    let condition = |kind: &str, s: &str, reason: Option<&str>| {
        let mut c =
            json!({"type": kind, "status": s, "lastProbeTime": null, "lastTransitionTime": now});
        if let Some(r) = reason {
            c["reason"] = json!(r);
        }
        c
    };
    status["conditions"] = json!([
        condition("PodReadyToStartContainers", "False", None),
        condition("Initialized", "True", None),
        condition("Ready", "False", Some("PodCompleted")),
        condition("ContainersReady", "False", Some("PodCompleted")),
        condition("PodScheduled", "True", None),
    ]);
    status["containerStatuses"] = json!(terminated_statuses(pod, "containers", &started, &now));
    status
}

/// The `PodScheduled=False` status of a pod that fits no node.
pub fn unschedulable_status(pod: &Value, message: &str) -> Value {
    let mut status = pod.get("status").cloned().unwrap_or_else(|| json!({}));
    status["phase"] = json!("Pending");
    status["conditions"] = json!([{
        "type": "PodScheduled",
        "status": "False",
        "lastProbeTime": null,
        "lastTransitionTime": object::now(),
        "reason": "Unschedulable",
        "message": message,
    }]);
    status
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn node_shape() {
        let n = node(
            "m1-node-0",
            0,
            &Resources {
                cpu_millis: 4000,
                memory_bytes: 8 << 30,
                pods: 110,
            },
            Some("r"),
            Some("z"),
        );
        assert_eq!(str_at(&n, "/status/allocatable/cpu"), "4");
        assert_eq!(str_at(&n, "/status/allocatable/memory"), "8Gi");
        assert_eq!(str_at(&n, "/status/nodeInfo/kubeletVersion"), "v1.33.0");
        assert_eq!(
            str_at(&n, "/metadata/labels/topology.kubernetes.io~1zone"),
            "z"
        );
    }

    #[test]
    fn ips_and_qos() {
        let mut used = std::collections::HashSet::new();
        assert_eq!(
            allocate_pod_ip("10.244.1.0/24", &used).as_deref(),
            Some("10.244.1.2")
        );
        used.insert("10.244.1.2".to_string());
        assert_eq!(
            allocate_pod_ip("10.244.1.0/24", &used).as_deref(),
            Some("10.244.1.3")
        );
        let g = json!({"spec": {"containers": [{"resources": {"limits": {"cpu": "1", "memory": "1Gi"}}}]}});
        assert_eq!(qos_class(&g), "Guaranteed");
        let b = json!({"spec": {"containers": [{"resources": {"requests": {"cpu": "1"}}}]}});
        assert_eq!(qos_class(&b), "Burstable");
        assert_eq!(
            qos_class(&json!({"spec": {"containers": [{}]}})),
            "BestEffort"
        );
        let pod = json!({"metadata": {"name": "p"}, "spec": {"containers": [{"name": "c", "image": "nginx"}]}});
        let s = running_status(&pod, "172.18.0.2", "10.244.0.2");
        assert_eq!(s["phase"], json!("Running"));
        assert_eq!(s["containerStatuses"][0]["ready"], json!(true));
    }
}
