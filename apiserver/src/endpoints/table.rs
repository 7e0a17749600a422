//! Server-side printing: `meta.k8s.io/v1` Tables with the columns kube-apiserver
//! prints for each built-in kind, ages rendered as kubectl renders them.

use std::sync::Arc;

use serde_json::{Value, json};

use crate::registry::{Printer, ResourceInfo};

/// What each row carries in `object` (`includeObject`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IncludeObject {
    None,
    Metadata,
    Object,
}

impl IncludeObject {
    pub fn parse(s: Option<&str>) -> IncludeObject {
        match s {
            Some("None") => IncludeObject::None,
            Some("Object") => IncludeObject::Object,
            _ => IncludeObject::Metadata,
        }
    }
}

/// kubectl's human duration: `12s`, `5m10s`, `150m`, `5h20m`, `30h`, `4d5h`, `400d`, `3y10d`.
pub fn human_duration(seconds: i64) -> String {
    let s = seconds.max(0);
    if s < 120 {
        return format!("{s}s");
    }
    let minutes = s / 60;
    if minutes < 10 {
        let rem = s % 60;
        return if rem == 0 {
            format!("{minutes}m")
        } else {
            format!("{minutes}m{rem}s")
        };
    }
    if minutes < 180 {
        return format!("{minutes}m");
    }
    let hours = s / 3600;
    if hours < 8 {
        let rem = minutes % 60;
        return if rem == 0 {
            format!("{hours}h")
        } else {
            format!("{hours}h{rem}m")
        };
    }
    if hours < 48 {
        return format!("{hours}h");
    }
    let days = hours / 24;
    if days < 8 {
        let rem = hours % 24;
        return if rem == 0 {
            format!("{days}d")
        } else {
            format!("{days}d{rem}h")
        };
    }
    if days < 365 * 2 {
        return format!("{days}d");
    }
    let years = days / 365;
    if years < 8 {
        let rem = days % 365;
        return if rem == 0 {
            format!("{years}y")
        } else {
            format!("{years}y{rem}d")
        };
    }
    format!("{years}y")
}

/// Age of an RFC 3339 timestamp, or `<unknown>`.
pub fn age(timestamp: Option<&str>, now: jiff::Timestamp) -> String {
    age_text(
        timestamp
            .and_then(|t| t.parse::<jiff::Timestamp>().ok())
            .map(|t| t.as_second()),
        now,
    )
}

/// The text of an age cell: the time since `since` (seconds since the epoch),
/// `<unknown>` without it.
pub fn age_text(since: Option<i64>, now: jiff::Timestamp) -> String {
    match since {
        Some(t) => human_duration(now.as_second() - t),
        None => "<unknown>".into(),
    }
}

/// One cell of a row: a value, or an age, which changes as time passes and is
/// rendered when the row is served (so a row can be computed once and served
/// many times).
#[derive(Debug, Clone, PartialEq)]
pub enum Cell {
    Value(Value),
    /// The time since this instant (seconds since the epoch), `<unknown>` without one.
    Age(Option<i64>),
}

impl From<Value> for Cell {
    fn from(v: Value) -> Cell {
        Cell::Value(v)
    }
}

impl Cell {
    /// The age of an RFC 3339 timestamp (`<unknown>` when absent or malformed).
    pub fn age_of(timestamp: Option<&str>) -> Cell {
        Cell::Age(
            timestamp
                .and_then(|t| t.parse::<jiff::Timestamp>().ok())
                .map(|t| t.as_second()),
        )
    }

    /// The cell as served at `now`.
    pub fn render(self, now: jiff::Timestamp) -> Value {
        match self {
            Cell::Value(v) => v,
            Cell::Age(since) => Value::String(age_text(since, now)),
        }
    }
}

/// A row of cells, each a [`Value`] or a [`Cell`].
macro_rules! cells {
    ($($cell:expr),* $(,)?) => { vec![$(Cell::from($cell)),*] };
}

fn col(name: &str, ty: &str, priority: u8, description: &str) -> Value {
    let format = if name == "Name" { "name" } else { "" };
    json!({"name": name, "type": ty, "format": format, "description": description, "priority": priority})
}

fn s<'a>(v: &'a Value, path: &str) -> &'a str {
    v.pointer(path).and_then(Value::as_str).unwrap_or("")
}

fn n(v: &Value, path: &str) -> i64 {
    v.pointer(path).and_then(Value::as_i64).unwrap_or(0)
}

fn or_none(s: String) -> String {
    if s.is_empty() { "<none>".into() } else { s }
}

fn list<'a>(v: &'a Value, path: &str) -> &'a [Value] {
    v.pointer(path)
        .and_then(Value::as_array)
        .map(Vec::as_slice)
        .unwrap_or(&[])
}

/// `key=value,...` of a label map.
fn map_string(v: Option<&Value>) -> String {
    v.and_then(Value::as_object)
        .map(|m| {
            m.iter()
                .map(|(k, v)| format!("{k}={}", v.as_str().unwrap_or("")))
                .collect::<Vec<_>>()
                .join(",")
        })
        .unwrap_or_default()
}

/// A label selector (`matchLabels` + `matchExpressions`) as text.
pub fn selector_string(sel: Option<&Value>) -> String {
    let Some(sel) = sel else { return String::new() };
    let mut parts = Vec::new();
    if let Some(m) = sel.get("matchLabels").and_then(Value::as_object) {
        for (k, v) in m {
            parts.push(format!("{k}={}", v.as_str().unwrap_or("")));
        }
    }
    for e in sel
        .get("matchExpressions")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        let key = s(e, "/key");
        let values: Vec<&str> = list(e, "/values")
            .iter()
            .filter_map(Value::as_str)
            .collect();
        parts.push(match s(e, "/operator") {
            "In" => format!("{key} in ({})", values.join(",")),
            "NotIn" => format!("{key} notin ({})", values.join(",")),
            "Exists" => key.to_string(),
            "DoesNotExist" => format!("!{key}"),
            _ => continue,
        });
    }
    parts.join(",")
}

fn containers_images(v: &Value, path: &str) -> (String, String) {
    let cs = list(v, path);
    let names: Vec<&str> = cs.iter().map(|c| s(c, "/name")).collect();
    let images: Vec<&str> = cs.iter().map(|c| s(c, "/image")).collect();
    (names.join(","), images.join(","))
}

/// Column definitions and a row renderer for a printer.
pub fn columns(printer: &Printer) -> Vec<Value> {
    let name = col(
        "Name",
        "string",
        0,
        "Name must be unique within a namespace.",
    );
    let age = col(
        "Age",
        "string",
        0,
        "CreationTimestamp is a timestamp representing the server time when this object was created.",
    );
    let containers = col(
        "Containers",
        "string",
        1,
        "Names of each container in the template.",
    );
    let images = col(
        "Images",
        "string",
        1,
        "Images referenced by each container in the template.",
    );
    let selector = col("Selector", "string", 1, "The label selector.");
    let kind = match printer {
        Printer::NameAge => return vec![name, age],
        Printer::NameCreatedAt => {
            return vec![
                name,
                col(
                    "Created At",
                    "date",
                    0,
                    "CreationTimestamp is a timestamp representing the server time when this object was created.",
                ),
            ];
        }
        Printer::Builtin(kind) => kind.as_str(),
        Printer::Custom(cols) => {
            let mut out = vec![name];
            for c in cols.iter() {
                // Date columns are rendered as ages on the server.
                let ty = if c.type_ == "date" {
                    "string"
                } else {
                    c.type_.as_str()
                };
                out.push(json!({"name": c.name, "type": ty, "format": c.format, "description": c.description, "priority": c.priority}));
            }
            return out;
        }
    };
    match kind {
        "pods" => vec![
            name,
            col(
                "Ready",
                "string",
                0,
                "The aggregate readiness state of this pod for accepting traffic.",
            ),
            col(
                "Status",
                "string",
                0,
                "The aggregate status of the containers in this pod.",
            ),
            col(
                "Restarts",
                "string",
                0,
                "The number of times the containers in this pod have been restarted and when the last container in this pod has restarted.",
            ),
            age,
            col(
                "IP",
                "string",
                1,
                "IP address allocated to the pod. Routable at least within the cluster. Empty if not yet allocated.",
            ),
            col(
                "Node",
                "string",
                1,
                "NodeName is a request to schedule this pod onto a specific node.",
            ),
            col(
                "Nominated Node",
                "string",
                1,
                "nominatedNodeName is set only when this pod preempts other pods on the node.",
            ),
            col(
                "Readiness Gates",
                "string",
                1,
                "If specified, all readiness gates will be evaluated for pod readiness.",
            ),
        ],
        "deployments" => vec![
            name,
            col("Ready", "string", 0, "Number of the pod with ready state"),
            col(
                "Up-to-date",
                "string",
                0,
                "Total number of non-terminated pods targeted by this deployment that have the desired template spec.",
            ),
            col(
                "Available",
                "string",
                0,
                "Total number of available pods (ready for at least minReadySeconds) targeted by this deployment.",
            ),
            age,
            containers,
            images,
            selector,
        ],
        "replicasets" => vec![
            name,
            col(
                "Desired",
                "integer",
                0,
                "Replicas is the number of desired replicas.",
            ),
            col(
                "Current",
                "integer",
                0,
                "Replicas is the most recently observed number of replicas.",
            ),
            col(
                "Ready",
                "integer",
                0,
                "The number of ready replicas for this replica set.",
            ),
            age,
            containers,
            images,
            selector,
        ],
        "statefulsets" => vec![
            name,
            col("Ready", "string", 0, "Number of the pod with ready state"),
            age,
            containers,
            images,
        ],
        "daemonsets" => vec![
            name,
            col(
                "Desired",
                "integer",
                0,
                "The total number of nodes that should be running the daemon pod.",
            ),
            col(
                "Current",
                "integer",
                0,
                "The number of nodes that are running at least 1 daemon pod and are supposed to run the daemon pod.",
            ),
            col(
                "Ready",
                "integer",
                0,
                "The number of nodes that should be running the daemon pod and have one or more of the daemon pod running and ready.",
            ),
            col(
                "Up-to-date",
                "integer",
                0,
                "The total number of nodes that are running updated daemon pod",
            ),
            col(
                "Available",
                "integer",
                0,
                "The number of nodes that should be running the daemon pod and have one or more of the daemon pod running and available.",
            ),
            col(
                "Node Selector",
                "string",
                0,
                "NodeSelector is a selector which must be true for the pod to fit on a node.",
            ),
            age,
            containers,
            images,
            selector,
        ],
        "jobs" => vec![
            name,
            col("Status", "string", 0, "Status of the job."),
            col(
                "Completions",
                "string",
                0,
                "The desired number of successfully finished pods the job should be run with.",
            ),
            col(
                "Duration",
                "string",
                0,
                "Time required to complete the job.",
            ),
            age,
            containers,
            images,
            selector,
        ],
        "cronjobs" => vec![
            name,
            col(
                "Schedule",
                "string",
                0,
                "The schedule in Cron format, see https://en.wikipedia.org/wiki/Cron.",
            ),
            col(
                "Timezone",
                "string",
                0,
                "The time zone name for the given schedule, see https://en.wikipedia.org/wiki/List_of_tz_database_time_zones.",
            ),
            col(
                "Suspend",
                "boolean",
                0,
                "This flag tells the controller to suspend subsequent executions.",
            ),
            col(
                "Active",
                "integer",
                0,
                "A list of pointers to currently running jobs.",
            ),
            col(
                "Last Schedule",
                "string",
                0,
                "Information when was the last time the job was successfully scheduled.",
            ),
            age,
            containers,
            images,
            selector,
        ],
        "horizontalpodautoscalers" => vec![
            name,
            col(
                "Reference",
                "string",
                0,
                "reference to scaled resource; horizontal pod autoscaler will learn the current resource consumption and will set the desired number of pods by using its Scale subresource.",
            ),
            col(
                "Targets",
                "string",
                0,
                "metrics contains the specifications for which to use to calculate the desired replica count.",
            ),
            col(
                "MinPods",
                "string",
                0,
                "minReplicas is the lower limit for the number of replicas to which the autoscaler can scale down.",
            ),
            col(
                "MaxPods",
                "integer",
                0,
                "maxReplicas is the upper limit for the number of replicas to which the autoscaler can scale up.",
            ),
            col(
                "Replicas",
                "integer",
                0,
                "currentReplicas is current number of replicas of pods managed by this autoscaler.",
            ),
            age,
        ],
        "services" => vec![
            name,
            col(
                "Type",
                "string",
                0,
                "type determines how the Service is exposed.",
            ),
            col(
                "Cluster-IP",
                "string",
                0,
                "clusterIP is the IP address of the service.",
            ),
            col(
                "External-IP",
                "string",
                0,
                "externalIPs is a list of IP addresses for which nodes in the cluster will also accept traffic for this service.",
            ),
            col(
                "Port(s)",
                "string",
                0,
                "The list of ports that are exposed by this service.",
            ),
            age,
            col(
                "Selector",
                "string",
                1,
                "Route service traffic to pods with label keys and values matching this selector.",
            ),
        ],
        "endpoints" => vec![
            name,
            col(
                "Endpoints",
                "string",
                0,
                "Endpoints is the list of endpoints.",
            ),
            age,
        ],
        "endpointslices" => vec![
            name,
            col(
                "AddressType",
                "string",
                0,
                "addressType specifies the type of address carried by this EndpointSlice.",
            ),
            col(
                "Ports",
                "string",
                0,
                "ports specifies the list of network ports exposed by each endpoint in this slice.",
            ),
            col(
                "Endpoints",
                "string",
                0,
                "endpoints is a list of unique endpoints in this slice.",
            ),
            age,
        ],
        "namespaces" => vec![
            name,
            col("Status", "string", 0, "The status of the namespace"),
            age,
        ],
        "configmaps" => vec![
            name,
            col("Data", "string", 0, "Data contains the configuration data."),
            age,
        ],
        "secrets" => vec![
            name,
            col("Type", "string", 0, "The type of the secret"),
            col(
                "Data",
                "string",
                0,
                "The number of data entries in the secret",
            ),
            age,
        ],
        "serviceaccounts" => vec![
            name,
            col(
                "Secrets",
                "string",
                0,
                "Secrets is a list of the secrets in the same namespace that pods running using this ServiceAccount are allowed to use.",
            ),
            age,
        ],
        "nodes" => vec![
            name,
            col("Status", "string", 0, "The status of the node"),
            col("Roles", "string", 0, "The roles of the node"),
            age,
            col(
                "Version",
                "string",
                0,
                "Kubelet Version reported by the node.",
            ),
            col(
                "Internal-IP",
                "string",
                1,
                "List of addresses reachable to the node.",
            ),
            col(
                "External-IP",
                "string",
                1,
                "List of addresses reachable to the node.",
            ),
            col(
                "OS-Image",
                "string",
                1,
                "OS Image reported by the node from /etc/os-release (e.g. Debian GNU/Linux 7 (wheezy)).",
            ),
            col(
                "Kernel-Version",
                "string",
                1,
                "Kernel Version reported by the node from 'uname -r' (e.g. 3.16.0-0.bpo.4-amd64).",
            ),
            col(
                "Container-Runtime",
                "string",
                1,
                "ContainerRuntime Version reported by the node through runtime remote API (e.g. containerd://1.4.2).",
            ),
        ],
        "persistentvolumeclaims" => vec![
            name,
            col(
                "Status",
                "string",
                0,
                "Phase represents the current phase of PersistentVolumeClaim.",
            ),
            col(
                "Volume",
                "string",
                0,
                "VolumeName is the binding reference to the PersistentVolume backing this claim.",
            ),
            col(
                "Capacity",
                "string",
                0,
                "capacity represents the actual resources of the underlying volume.",
            ),
            col(
                "Access Modes",
                "string",
                0,
                "AccessModes contains the desired access modes the volume should have.",
            ),
            col(
                "StorageClass",
                "string",
                0,
                "StorageClassName is name of the StorageClass required by the claim.",
            ),
            col(
                "VolumeAttributesClass",
                "string",
                0,
                "VolumeAttributesClassName may be used to set the VolumeAttributesClass used by this claim.",
            ),
            age,
            col(
                "VolumeMode",
                "string",
                1,
                "volumeMode defines what type of volume is required by the claim.",
            ),
        ],
        "events" => vec![
            col("Last Seen", "string", 0, "Time when last event occurred"),
            col(
                "Type",
                "string",
                0,
                "Type of this event (Normal, Warning), new types could be added in the future.",
            ),
            col("Reason", "string", 0, "Reason is why the action was taken."),
            col("Object", "string", 0, "The object this Event is about."),
            col(
                "Subobject",
                "string",
                1,
                "The subobject this Event is about.",
            ),
            col("Source", "string", 1, "The component reporting this event."),
            col(
                "Message",
                "string",
                0,
                "A human-readable description of the status of this operation.",
            ),
            col(
                "First Seen",
                "string",
                1,
                "The time at which the event was first recorded.",
            ),
            col(
                "Count",
                "string",
                1,
                "The number of times this event has occurred.",
            ),
            col(
                "Name",
                "string",
                1,
                "Name must be unique within a namespace.",
            ),
        ],
        "leases" => vec![
            name,
            col(
                "Holder",
                "string",
                0,
                "HolderIdentity contains the identity of the holder of a current lease.",
            ),
            age,
        ],
        "ingresses" => vec![
            name,
            col(
                "Class",
                "string",
                0,
                "ingressClassName is the name of an IngressClass cluster resource.",
            ),
            col(
                "Hosts",
                "string",
                0,
                "Hosts that incoming requests are matched against before the ingress rule",
            ),
            col(
                "Address",
                "string",
                0,
                "Address is a list containing ingress points for the load-balancer",
            ),
            col(
                "Ports",
                "string",
                0,
                "Ports of TLS configurations that open",
            ),
            age,
        ],
        "rolebindings" => vec![
            name,
            col(
                "Role",
                "string",
                0,
                "RoleRef references a Role in the current namespace or a ClusterRole in the global namespace.",
            ),
            age,
            col("Users", "string", 1, "Users in the roleBinding"),
            col("Groups", "string", 1, "Groups in the roleBinding"),
            col(
                "ServiceAccounts",
                "string",
                1,
                "ServiceAccounts in the roleBinding",
            ),
        ],
        "apiservices" => vec![
            name,
            col(
                "Service",
                "string",
                0,
                "The reference to the service that hosts this API endpoint.",
            ),
            col(
                "Available",
                "string",
                0,
                "Whether this service is available.",
            ),
            age,
        ],
        "webhookconfigurations" => vec![
            name,
            col(
                "Webhooks",
                "integer",
                0,
                "Webhooks indicates the number of webhooks registered in this configuration",
            ),
            age,
        ],
        _ => vec![name, age],
    }
}

fn pod_cells(p: &Value, age: Cell) -> Vec<Cell> {
    let statuses = list(p, "/status/containerStatuses");
    let total = list(p, "/spec/containers").len();
    let ready = statuses
        .iter()
        .filter(|c| c.get("ready") == Some(&Value::Bool(true)))
        .count();
    let restarts: i64 = statuses.iter().map(|c| n(c, "/restartCount")).sum();
    let mut reason = s(p, "/status/reason").to_string();
    if reason.is_empty() {
        reason = s(p, "/status/phase").to_string();
    }
    for c in statuses {
        if let Some(w) = c.pointer("/state/waiting/reason").and_then(Value::as_str) {
            reason = w.to_string();
        } else if let Some(t) = c
            .pointer("/state/terminated/reason")
            .and_then(Value::as_str)
        {
            reason = t.to_string();
        }
    }
    if p.pointer("/metadata/deletionTimestamp").is_some() {
        reason = "Terminating".into();
    }
    if reason.is_empty() {
        reason = "Pending".into();
    }
    let gates = list(p, "/spec/readinessGates");
    let gates = if gates.is_empty() {
        "<none>".to_string()
    } else {
        let true_count = gates
            .iter()
            .filter(|g| {
                list(p, "/status/conditions")
                    .iter()
                    .any(|c| s(c, "/type") == s(g, "/conditionType") && s(c, "/status") == "True")
            })
            .count();
        format!("{true_count}/{}", gates.len())
    };
    cells![
        json!(s(p, "/metadata/name")),
        json!(format!("{ready}/{total}")),
        json!(reason),
        json!(restarts.to_string()),
        age,
        json!(or_none(s(p, "/status/podIP").into())),
        json!(or_none(s(p, "/spec/nodeName").into())),
        json!(or_none(s(p, "/status/nominatedNodeName").into())),
        json!(gates),
    ]
}

fn service_ports(v: &Value) -> String {
    let ports: Vec<String> = list(v, "/spec/ports")
        .iter()
        .map(|p| {
            let proto = p.get("protocol").and_then(Value::as_str).unwrap_or("TCP");
            match p.get("nodePort").and_then(Value::as_i64) {
                Some(np) => format!("{}:{np}/{proto}", n(p, "/port")),
                None => format!("{}/{proto}", n(p, "/port")),
            }
        })
        .collect();
    or_none(ports.join(","))
}

/// The cells of one row as served at `now`.
fn cells(printer: &Printer, v: &Value, now: jiff::Timestamp) -> Vec<Value> {
    row_cells(printer, v)
        .into_iter()
        .map(|c| c.render(now))
        .collect()
}

/// The cells of one row, ages left to render (see [`Cell`]).
pub fn row_cells(printer: &Printer, v: &Value) -> Vec<Cell> {
    let name = json!(s(v, "/metadata/name"));
    let created = v
        .pointer("/metadata/creationTimestamp")
        .and_then(Value::as_str);
    let age_s = Cell::age_of(created);
    let kind = match printer {
        Printer::NameAge => return cells![name, age_s],
        Printer::NameCreatedAt => return cells![name, json!(created.unwrap_or(""))],
        Printer::Builtin(k) => k.as_str(),
        Printer::Custom(cols) => {
            let mut out = cells![name];
            out.extend(cols.iter().map(|c| custom_cell(c, v)));
            return out;
        }
    };
    let (containers, images) = containers_images(v, "/spec/template/spec/containers");
    let selector = selector_string(v.pointer("/spec/selector"));
    match kind {
        "pods" => pod_cells(v, age_s),
        "deployments" => cells![
            name,
            json!(format!(
                "{}/{}",
                n(v, "/status/readyReplicas"),
                v.pointer("/spec/replicas")
                    .and_then(Value::as_i64)
                    .unwrap_or(1)
            )),
            json!(n(v, "/status/updatedReplicas")),
            json!(n(v, "/status/availableReplicas")),
            age_s,
            json!(containers),
            json!(images),
            json!(selector),
        ],
        "replicasets" => cells![
            name,
            json!(
                v.pointer("/spec/replicas")
                    .and_then(Value::as_i64)
                    .unwrap_or(1)
            ),
            json!(n(v, "/status/replicas")),
            json!(n(v, "/status/readyReplicas")),
            age_s,
            json!(containers),
            json!(images),
            json!(selector),
        ],
        "statefulsets" => cells![
            name,
            json!(format!(
                "{}/{}",
                n(v, "/status/readyReplicas"),
                v.pointer("/spec/replicas")
                    .and_then(Value::as_i64)
                    .unwrap_or(1)
            )),
            age_s,
            json!(containers),
            json!(images),
        ],
        "daemonsets" => cells![
            name,
            json!(n(v, "/status/desiredNumberScheduled")),
            json!(n(v, "/status/currentNumberScheduled")),
            json!(n(v, "/status/numberReady")),
            json!(n(v, "/status/updatedNumberScheduled")),
            json!(n(v, "/status/numberAvailable")),
            json!(or_none(map_string(
                v.pointer("/spec/template/spec/nodeSelector")
            ))),
            age_s,
            json!(containers),
            json!(images),
            json!(selector),
        ],
        "jobs" => {
            let conditions = list(v, "/status/conditions");
            let has = |t: &str| {
                conditions
                    .iter()
                    .any(|c| s(c, "/type") == t && s(c, "/status") == "True")
            };
            let status = if has("Complete") {
                "Complete"
            } else if has("Failed") {
                "Failed"
            } else if has("Suspended") {
                "Suspended"
            } else if v.pointer("/metadata/deletionTimestamp").is_some() {
                "Terminating"
            } else {
                "Running"
            };
            let completions = match v.pointer("/spec/completions").and_then(Value::as_i64) {
                Some(c) => format!("{}/{c}", n(v, "/status/succeeded")),
                None => format!("{}/1", n(v, "/status/succeeded")),
            };
            let start = v
                .pointer("/status/startTime")
                .and_then(Value::as_str)
                .and_then(|t| t.parse::<jiff::Timestamp>().ok());
            let end = v
                .pointer("/status/completionTime")
                .and_then(Value::as_str)
                .and_then(|t| t.parse::<jiff::Timestamp>().ok());
            let duration = match (start, end) {
                (Some(a), Some(b)) => {
                    Cell::from(json!(human_duration(b.as_second() - a.as_second())))
                }
                (Some(a), None) => Cell::Age(Some(a.as_second())),
                _ => Cell::from(json!("")),
            };
            cells![
                name,
                json!(status),
                json!(completions),
                duration,
                age_s,
                json!(containers),
                json!(images),
                json!(selector),
            ]
        }
        "cronjobs" => {
            let (c, i) = containers_images(v, "/spec/jobTemplate/spec/template/spec/containers");
            let last = v
                .pointer("/status/lastScheduleTime")
                .and_then(Value::as_str);
            cells![
                name,
                json!(s(v, "/spec/schedule")),
                json!(or_none(s(v, "/spec/timeZone").into())),
                json!(
                    v.pointer("/spec/suspend")
                        .and_then(Value::as_bool)
                        .unwrap_or(false)
                ),
                json!(list(v, "/status/active").len()),
                if last.is_some() {
                    Cell::age_of(last)
                } else {
                    Cell::from(json!("<none>"))
                },
                age_s,
                json!(c),
                json!(i),
                json!(or_none(selector_string(
                    v.pointer("/spec/jobTemplate/spec/selector")
                ))),
            ]
        }
        "horizontalpodautoscalers" => {
            let reference = format!(
                "{}/{}",
                s(v, "/spec/scaleTargetRef/kind"),
                s(v, "/spec/scaleTargetRef/name")
            );
            let targets: Vec<String> = list(v, "/spec/metrics")
                .iter()
                .map(|m| {
                    let target = m
                        .pointer("/resource/target/averageUtilization")
                        .and_then(Value::as_i64);
                    let name = s(m, "/resource/name");
                    match target {
                        Some(t) => format!("{name}: <unknown>/{t}%"),
                        None => "<unknown>".into(),
                    }
                })
                .collect();
            cells![
                name,
                json!(reference),
                json!(or_none(targets.join(", "))),
                json!(
                    v.pointer("/spec/minReplicas")
                        .and_then(Value::as_i64)
                        .unwrap_or(1)
                        .to_string()
                ),
                json!(n(v, "/spec/maxReplicas")),
                json!(n(v, "/status/currentReplicas")),
                age_s,
            ]
        }
        "services" => {
            let ty = v
                .pointer("/spec/type")
                .and_then(Value::as_str)
                .unwrap_or("ClusterIP");
            let external: Vec<&str> = list(v, "/spec/externalIPs")
                .iter()
                .filter_map(Value::as_str)
                .collect();
            let lb: Vec<&str> = list(v, "/status/loadBalancer/ingress")
                .iter()
                .map(|i| {
                    if s(i, "/ip").is_empty() {
                        s(i, "/hostname")
                    } else {
                        s(i, "/ip")
                    }
                })
                .collect();
            let external_ip = match ty {
                "LoadBalancer" if lb.is_empty() && external.is_empty() => "<pending>".to_string(),
                "LoadBalancer" => [lb, external].concat().join(","),
                "ExternalName" => s(v, "/spec/externalName").to_string(),
                _ => or_none(external.join(",")),
            };
            cells![
                name,
                json!(ty),
                json!(or_none(s(v, "/spec/clusterIP").into())),
                json!(external_ip),
                json!(service_ports(v)),
                age_s,
                json!(or_none(map_string(v.pointer("/spec/selector")))),
            ]
        }
        "endpoints" => {
            let mut eps = Vec::new();
            for subset in list(v, "/subsets") {
                for a in list(subset, "/addresses") {
                    for p in list(subset, "/ports") {
                        eps.push(format!("{}:{}", s(a, "/ip"), n(p, "/port")));
                    }
                }
            }
            cells![name, json!(or_none(eps.join(","))), age_s]
        }
        "endpointslices" => {
            let ports: Vec<String> = list(v, "/ports")
                .iter()
                .map(|p| n(p, "/port").to_string())
                .collect();
            let addrs: Vec<&str> = list(v, "/endpoints")
                .iter()
                .flat_map(|e| list(e, "/addresses").iter().filter_map(Value::as_str))
                .collect();
            let shown = if addrs.len() > 3 {
                format!("{} + {} more...", addrs[..3].join(","), addrs.len() - 3)
            } else {
                or_none(addrs.join(","))
            };
            cells![
                name,
                json!(s(v, "/addressType")),
                json!(or_none(ports.join(","))),
                json!(shown),
                age_s,
            ]
        }
        "namespaces" => cells![name, json!(s(v, "/status/phase")), age_s],
        "configmaps" => {
            let count = v
                .get("data")
                .and_then(Value::as_object)
                .map_or(0, |m| m.len())
                + v.get("binaryData")
                    .and_then(Value::as_object)
                    .map_or(0, |m| m.len());
            cells![name, json!(count), age_s]
        }
        "secrets" => {
            let count = v
                .get("data")
                .and_then(Value::as_object)
                .map_or(0, |m| m.len())
                + v.get("stringData")
                    .and_then(Value::as_object)
                    .map_or(0, |m| m.len());
            let ty = v.get("type").and_then(Value::as_str).unwrap_or("Opaque");
            cells![name, json!(ty), json!(count), age_s]
        }
        "serviceaccounts" => cells![name, json!(list(v, "/secrets").len()), age_s],
        "nodes" => {
            let ready = list(v, "/status/conditions")
                .iter()
                .find(|c| s(c, "/type") == "Ready");
            let mut status = match ready.map(|c| s(c, "/status")) {
                Some("True") => "Ready".to_string(),
                _ => "NotReady".to_string(),
            };
            if v.pointer("/spec/unschedulable").and_then(Value::as_bool) == Some(true) {
                status.push_str(",SchedulingDisabled");
            }
            let roles: Vec<&str> = v
                .pointer("/metadata/labels")
                .and_then(Value::as_object)
                .map(|l| {
                    l.keys()
                        .filter_map(|k| k.strip_prefix("node-role.kubernetes.io/"))
                        .collect()
                })
                .unwrap_or_default();
            let addr = |t: &str| {
                list(v, "/status/addresses")
                    .iter()
                    .find(|a| s(a, "/type") == t)
                    .map(|a| s(a, "/address").to_string())
                    .unwrap_or_else(|| "<none>".into())
            };
            cells![
                name,
                json!(status),
                json!(or_none(roles.join(","))),
                age_s,
                json!(s(v, "/status/nodeInfo/kubeletVersion")),
                json!(addr("InternalIP")),
                json!(addr("ExternalIP")),
                json!(or_none(s(v, "/status/nodeInfo/osImage").into())),
                json!(or_none(s(v, "/status/nodeInfo/kernelVersion").into())),
                json!(or_none(
                    s(v, "/status/nodeInfo/containerRuntimeVersion").into()
                )),
            ]
        }
        "persistentvolumeclaims" => {
            let modes: Vec<&str> = list(v, "/status/accessModes")
                .iter()
                .filter_map(Value::as_str)
                .map(|m| match m {
                    "ReadWriteOnce" => "RWO",
                    "ReadOnlyMany" => "ROX",
                    "ReadWriteMany" => "RWX",
                    "ReadWriteOncePod" => "RWOP",
                    other => other,
                })
                .collect();
            cells![
                name,
                json!(if s(v, "/status/phase").is_empty() {
                    "Pending"
                } else {
                    s(v, "/status/phase")
                }),
                json!(s(v, "/spec/volumeName")),
                json!(s(v, "/status/capacity/storage")),
                json!(modes.join(",")),
                json!(s(v, "/spec/storageClassName")),
                json!(or_none(s(v, "/spec/volumeAttributesClassName").into())),
                age_s,
                json!(
                    v.pointer("/spec/volumeMode")
                        .and_then(Value::as_str)
                        .unwrap_or("Filesystem")
                ),
            ]
        }
        "events" => {
            let last = [
                "/lastTimestamp",
                "/eventTime",
                "/series/lastObservedTime",
                "/metadata/creationTimestamp",
            ]
            .iter()
            .find_map(|p| v.pointer(p).and_then(Value::as_str));
            let first = v
                .pointer("/firstTimestamp")
                .and_then(Value::as_str)
                .or_else(|| v.pointer("/eventTime").and_then(Value::as_str));
            let object = format!(
                "{}/{}",
                s(v, "/involvedObject/kind").to_ascii_lowercase(),
                s(v, "/involvedObject/name")
            );
            let source = {
                let c = if s(v, "/source/component").is_empty() {
                    s(v, "/reportingComponent")
                } else {
                    s(v, "/source/component")
                };
                let h = s(v, "/source/host");
                if h.is_empty() {
                    c.to_string()
                } else {
                    format!("{c}, {h}")
                }
            };
            cells![
                Cell::age_of(last),
                json!(s(v, "/type")),
                json!(s(v, "/reason")),
                json!(object),
                json!(s(v, "/involvedObject/fieldPath")),
                json!(source),
                json!(s(v, "/message").trim()),
                Cell::age_of(first),
                json!(
                    v.get("count")
                        .and_then(Value::as_i64)
                        .unwrap_or(1)
                        .to_string()
                ),
                name,
            ]
        }
        "leases" => cells![name, json!(s(v, "/spec/holderIdentity")), age_s],
        "ingresses" => {
            let hosts: Vec<&str> = list(v, "/spec/rules")
                .iter()
                .map(|r| s(r, "/host"))
                .filter(|h| !h.is_empty())
                .collect();
            let addrs: Vec<&str> = list(v, "/status/loadBalancer/ingress")
                .iter()
                .map(|i| {
                    if s(i, "/ip").is_empty() {
                        s(i, "/hostname")
                    } else {
                        s(i, "/ip")
                    }
                })
                .collect();
            let ports = if list(v, "/spec/tls").is_empty() {
                "80"
            } else {
                "80, 443"
            };
            cells![
                name,
                json!(or_none(s(v, "/spec/ingressClassName").into())),
                json!(if hosts.is_empty() {
                    "*".to_string()
                } else {
                    hosts.join(",")
                }),
                json!(addrs.join(",")),
                json!(ports),
                age_s,
            ]
        }
        "rolebindings" => {
            let subjects = list(v, "/subjects");
            let of = |k: &str| -> String {
                subjects
                    .iter()
                    .filter(|x| s(x, "/kind") == k)
                    .map(|x| {
                        if k == "ServiceAccount" {
                            format!("{}/{}", s(x, "/namespace"), s(x, "/name"))
                        } else {
                            s(x, "/name").to_string()
                        }
                    })
                    .collect::<Vec<_>>()
                    .join(", ")
            };
            cells![
                name,
                json!(format!(
                    "{}/{}",
                    s(v, "/roleRef/kind"),
                    s(v, "/roleRef/name")
                )),
                age_s,
                json!(of("User")),
                json!(of("Group")),
                json!(of("ServiceAccount")),
            ]
        }
        "apiservices" => {
            let service = if v.pointer("/spec/service").is_some_and(|s| !s.is_null()) {
                format!(
                    "{}/{}",
                    s(v, "/spec/service/namespace"),
                    s(v, "/spec/service/name")
                )
            } else {
                "Local".into()
            };
            let available = list(v, "/status/conditions")
                .iter()
                .find(|c| s(c, "/type") == "Available")
                .map(|c| {
                    if s(c, "/status") == "True" {
                        "True".to_string()
                    } else {
                        format!("{} ({})", s(c, "/status"), s(c, "/reason"))
                    }
                })
                .unwrap_or_else(|| "Unknown".into());
            cells![name, json!(service), json!(available), age_s]
        }
        "webhookconfigurations" => cells![name, json!(list(v, "/webhooks").len()), age_s],
        _ => cells![name, age_s],
    }
}

/// One cell of a CRD printer column.
fn custom_cell(col: &crate::registry::crd::PrinterColumn, v: &Value) -> Cell {
    let found = col.path.find(v);
    let Some(first) = found.first() else {
        return Cell::from(Value::Null);
    };
    Cell::from(match col.type_.as_str() {
        "date" => return Cell::age_of(first.as_str()),
        "integer" | "number" | "boolean" if found.len() == 1 => (*first).clone(),
        _ => {
            let text: Vec<String> = found
                .iter()
                .map(|x| match x {
                    Value::String(s) => s.clone(),
                    other => other.to_string(),
                })
                .collect();
            json!(text.join(","))
        }
    })
}

/// `PartialObjectMetadata` of an object.
pub fn partial_metadata(v: &Value) -> Value {
    json!({
        "kind": "PartialObjectMetadata",
        "apiVersion": "meta.k8s.io/v1",
        "metadata": v.get("metadata").cloned().unwrap_or_else(|| json!({})),
    })
}

/// `PartialObjectMetadata` for a table row: without managedFields, which no
/// printer shows and which dominate the size of most objects.
fn row_metadata(v: &Value) -> Value {
    let metadata = match v.get("metadata").and_then(Value::as_object) {
        Some(m) => Value::Object(
            m.iter()
                .filter(|(k, _)| k.as_str() != "managedFields")
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect(),
        ),
        None => json!({}),
    };
    json!({"kind": "PartialObjectMetadata", "apiVersion": "meta.k8s.io/v1", "metadata": metadata})
}

/// One table row.
fn row(info: &ResourceInfo, v: &Value, include: IncludeObject, now: jiff::Timestamp) -> Value {
    let mut row = json!({"cells": cells(&info.printer, v, now)});
    match include {
        IncludeObject::None => {}
        IncludeObject::Metadata => row["object"] = row_metadata(v),
        IncludeObject::Object => row["object"] = v.clone(),
    }
    row
}

/// `metadata` without managedFields, serialized without copying it.
struct RowMetadata<'a>(&'a serde_json::Map<String, Value>);

impl serde::Serialize for RowMetadata<'_> {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        let mut map = serializer.serialize_map(None)?;
        for (k, v) in self.0 {
            if k != "managedFields" {
                map.serialize_entry(k, v)?;
            }
        }
        map.end()
    }
}

/// Writes a Table of `items` as JSON straight into `out`, without building the
/// intermediate document (lists of thousands of rows).
pub fn write_table(
    out: &mut Vec<u8>,
    info: &ResourceInfo,
    items: &[Arc<Value>],
    include: IncludeObject,
    meta: &ListMeta,
) {
    let now = jiff::Timestamp::now();
    let metadata = meta.to_json();
    out.extend_from_slice(b"{\"kind\":\"Table\",\"apiVersion\":\"meta.k8s.io/v1\",\"metadata\":");
    let _ = serde_json::to_writer(&mut *out, &metadata);
    out.extend_from_slice(b",\"columnDefinitions\":");
    let _ = serde_json::to_writer(&mut *out, &columns(&info.printer));
    out.extend_from_slice(b",\"rows\":[");
    let empty = serde_json::Map::new();
    for (i, v) in items.iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        out.extend_from_slice(b"{\"cells\":");
        let _ = serde_json::to_writer(&mut *out, &cells(&info.printer, v, now));
        match include {
            IncludeObject::None => {}
            IncludeObject::Metadata => {
                out.extend_from_slice(b",\"object\":{\"kind\":\"PartialObjectMetadata\",\"apiVersion\":\"meta.k8s.io/v1\",\"metadata\":");
                let m = v
                    .get("metadata")
                    .and_then(Value::as_object)
                    .unwrap_or(&empty);
                let _ = serde_json::to_writer(&mut *out, &RowMetadata(m));
                out.push(b'}');
            }
            IncludeObject::Object => {
                out.extend_from_slice(b",\"object\":");
                let _ = serde_json::to_writer(&mut *out, v.as_ref());
            }
        }
        out.push(b'}');
    }
    out.extend_from_slice(b"]}");
}

/// Paging fields of a Table or List.
#[derive(Debug, Default, Clone)]
pub struct ListMeta {
    pub resource_version: String,
    pub continue_token: Option<String>,
    pub remaining: Option<usize>,
}

impl ListMeta {
    /// The list's `metadata`: resourceVersion, and continue and
    /// remainingItemCount when set.
    pub fn to_json(&self) -> Value {
        let mut metadata = json!({"resourceVersion": self.resource_version});
        if let Some(c) = &self.continue_token {
            metadata["continue"] = json!(c);
        }
        if let Some(r) = self.remaining {
            metadata["remainingItemCount"] = json!(r);
        }
        metadata
    }
}

/// A Table of `items`; `headers` false leaves the column definitions out (watch events
/// after the first).
pub fn table(
    info: &ResourceInfo,
    items: &[Arc<Value>],
    include: IncludeObject,
    meta: &ListMeta,
    headers: bool,
) -> Value {
    table_at(info, items, include, meta, headers, jiff::Timestamp::now())
}

/// [`table`] with its ages as at `now`.
pub fn table_at(
    info: &ResourceInfo,
    items: &[Arc<Value>],
    include: IncludeObject,
    meta: &ListMeta,
    headers: bool,
    now: jiff::Timestamp,
) -> Value {
    let metadata = meta.to_json();
    json!({
        "kind": "Table",
        "apiVersion": "meta.k8s.io/v1",
        "metadata": metadata,
        "columnDefinitions": if headers { columns(&info.printer) } else { Vec::new() },
        "rows": items.iter().map(|v| row(info, v, include, now)).collect::<Vec<_>>(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_as_kubectl_prints_them() {
        for (secs, want) in [
            (12, "12s"),
            (119, "119s"),
            (120, "2m"),
            (310, "5m10s"),
            (540, "9m"),
            (9000, "150m"),
            (19200, "5h20m"),
            (30 * 3600, "30h"),
            (4 * 86400 + 5 * 3600, "4d5h"),
            (400 * 86400, "400d"),
            (3 * 365 * 86400 + 10 * 86400, "3y10d"),
            (9 * 365 * 86400, "9y"),
            (-5, "0s"),
        ] {
            assert_eq!(human_duration(secs), want, "{secs}s");
        }
    }

    #[test]
    fn every_builtin_printer_has_matching_cells() {
        let now = jiff::Timestamp::now();
        let obj = json!({"metadata": {"name": "x", "creationTimestamp": "2020-01-01T00:00:00Z"}});
        for info in crate::registry::builtin::resources() {
            let c = columns(&info.printer);
            let cells = cells(&info.printer, &obj, now);
            assert_eq!(c.len(), cells.len(), "{}", info.plural);
        }
    }

    #[test]
    fn written_table_equals_built_table() {
        let info = crate::registry::builtin::resources()
            .into_iter()
            .find(|r| r.plural == "pods")
            .expect("pods");
        let pod = Arc::new(
            json!({"metadata": {"name": "p", "namespace": "ns", "creationTimestamp": "2020-01-01T00:00:00Z",
            "managedFields": [{"manager": "x"}]}, "spec": {"containers": [{"name": "a"}]}, "status": {"phase": "Running"}}),
        );
        let meta = ListMeta {
            resource_version: "7".into(),
            continue_token: Some("c".into()),
            remaining: Some(3),
        };
        for include in [
            IncludeObject::None,
            IncludeObject::Metadata,
            IncludeObject::Object,
        ] {
            let mut out = Vec::new();
            write_table(&mut out, &info, &[pod.clone(), pod.clone()], include, &meta);
            let written: Value = serde_json::from_slice(&out).expect("valid JSON");
            assert_eq!(
                written,
                table(&info, &[pod.clone(), pod.clone()], include, &meta, true)
            );
        }
    }

    #[test]
    fn pod_row() {
        let pod = json!({"metadata": {"name": "web-1"}, "spec": {"containers": [{"name": "a"}], "nodeName": "n1"},
            "status": {"phase": "Running", "podIP": "10.0.0.1", "containerStatuses": [{"ready": true, "restartCount": 2}]}});
        let c = cells(
            &Printer::Builtin("pods".into()),
            &pod,
            jiff::Timestamp::now(),
        );
        assert_eq!(c[1], "1/1");
        assert_eq!(c[2], "Running");
        assert_eq!(c[3], "2");
        assert_eq!(c[5], "10.0.0.1");
        assert_eq!(c[6], "n1");
    }
}
