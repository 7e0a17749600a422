//! Tables of the unified view: the kube-apiserver columns of each built-in kind
//! (the same printers the host uses), NAME/AGE for other kinds, and a CLUSTER
//! column right after NAME, as `karmadactl get` prints it. NAME keeps
//! `format: name`, so kubectl still prints `kind/name` in multi-type output; rows
//! carry their objects when asked (`includeObject`).

use std::sync::{Arc, OnceLock};

use serde_json::{Value, json};

use super::Gvr;
use super::cache::{CLUSTER_ANNOTATION, Object};
use crate::endpoints::table::{self, Cell, IncludeObject, ListMeta};
use crate::registry::{Printer, ResourceInfo};

fn builtin() -> &'static Vec<ResourceInfo> {
    static BUILTIN: OnceLock<Vec<ResourceInfo>> = OnceLock::new();
    BUILTIN.get_or_init(crate::registry::builtin::resources)
}

fn builtin_info(gvr: &Gvr) -> Option<&'static ResourceInfo> {
    builtin()
        .iter()
        .find(|r| r.group == gvr.group && r.version == gvr.version && r.plural == gvr.plural)
}

/// Whether the resource is a Kubernetes built-in (printed with kube's columns).
pub fn is_builtin(gvr: &Gvr) -> bool {
    builtin_info(gvr).is_some()
}

/// The printer description of a member resource: kube's columns for a
/// built-in, its CRD's columns for a custom resource, else NAME and AGE.
pub fn info_for(gvr: &Gvr) -> ResourceInfo {
    match builtin_info(gvr) {
        Some(info) => info.clone(),
        None => {
            let mut info = builtin()
                .iter()
                .find(|r| r.plural == "configmaps")
                .cloned()
                .unwrap_or_else(|| unreachable!("configmaps are built in"));
            info.printer = match &gvr.columns {
                Some(columns) => Printer::Custom(columns.clone()),
                None => Printer::NameAge,
            };
            info
        }
    }
}

/// The cluster an object came from.
pub fn cluster_of(v: &Value) -> &str {
    v.pointer("/metadata/annotations")
        .and_then(|a| a.get(CLUSTER_ANNOTATION))
        .and_then(Value::as_str)
        .unwrap_or("")
}

/// The CLUSTER column.
pub fn cluster_column() -> Value {
    json!({"name": "Cluster", "type": "string", "format": "", "priority": 0,
           "description": "The member cluster the object is in."})
}

/// A Table of `items` with the CLUSTER column; `headers` false leaves the column
/// definitions out (watch events after the first).
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
    let mut t = table::table_at(info, items, include, meta, headers, now);
    if let Some(cols) = t["columnDefinitions"].as_array_mut()
        && !cols.is_empty()
    {
        cols.insert(1.min(cols.len()), cluster_column());
    }
    if let Some(rows) = t["rows"].as_array_mut() {
        for (row, item) in rows.iter_mut().zip(items) {
            if let Some(cells) = row["cells"].as_array_mut() {
                cells.insert(1.min(cells.len()), json!(cluster_of(item)));
            }
        }
    }
    t
}

/// The column definitions of a member resource's Tables, CLUSTER after the first.
pub fn columns(info: &ResourceInfo) -> Vec<Value> {
    let mut cols = table::columns(&info.printer);
    if !cols.is_empty() {
        cols.insert(1, cluster_column());
    }
    cols
}

/// A Table row's cells, computed once when the object is cached: the JSON
/// array of the cells (CLUSTER after the first) with the age cells left out,
/// and where each age goes. Serving the row writes the bytes with the ages
/// rendered in between, so a Table page costs about what a JSON page does.
#[derive(Debug, Default, PartialEq)]
pub struct Row {
    json: Box<[u8]>,
    /// (offset in `json`, the instant the age counts from).
    ages: Box<[(u32, Option<i64>)]>,
}

impl Row {
    /// The row of an (annotated) object under `printer`.
    pub fn new(printer: &Printer, object: &Value) -> Row {
        let mut cells = table::row_cells(printer, object);
        cells.insert(1.min(cells.len()), Cell::Value(json!(cluster_of(object))));
        let mut json = Vec::with_capacity(160);
        let mut ages = Vec::new();
        json.push(b'[');
        for (i, cell) in cells.iter().enumerate() {
            if i > 0 {
                json.push(b',');
            }
            match cell {
                Cell::Value(v) => {
                    let _ = serde_json::to_writer(&mut json, v);
                }
                Cell::Age(since) => ages.push((json.len() as u32, *since)),
            }
        }
        json.push(b']');
        Row {
            json: json.into_boxed_slice(),
            ages: ages.into_boxed_slice(),
        }
    }

    /// Writes the cells' JSON array, ages as at `now`.
    pub fn write(&self, out: &mut Vec<u8>, now: jiff::Timestamp) {
        if self.json.is_empty() {
            out.extend_from_slice(b"[]");
            return;
        }
        let mut from = 0;
        for &(at, since) in self.ages.iter() {
            out.extend_from_slice(&self.json[from..at as usize]);
            // an age is digits and unit letters, or <unknown>: nothing to escape
            out.push(b'"');
            out.extend_from_slice(table::age_text(since, now).as_bytes());
            out.push(b'"');
            from = at as usize;
        }
        out.extend_from_slice(&self.json[from..]);
    }

    /// The heap the row takes.
    pub fn heap_size(&self) -> usize {
        self.json.len() + std::mem::size_of_val(&*self.ages)
    }
}

/// Writes a Table of cached objects as JSON into `out`, rows from the cells
/// each object keeps ([`Row`]) and their objects from slices of their cached
/// JSON: nothing is parsed. The same document as [`table`] of the parsed
/// objects, with `headers`.
pub fn write_table(
    out: &mut Vec<u8>,
    info: &ResourceInfo,
    items: &[Arc<Object>],
    include: IncludeObject,
    meta: &ListMeta,
    now: jiff::Timestamp,
) {
    let metadata = meta.to_json();
    out.extend_from_slice(b"{\"kind\":\"Table\",\"apiVersion\":\"meta.k8s.io/v1\",\"metadata\":");
    let _ = serde_json::to_writer(&mut *out, &metadata);
    out.extend_from_slice(b",\"columnDefinitions\":");
    let _ = serde_json::to_writer(&mut *out, &columns(info));
    out.extend_from_slice(b",\"rows\":[");
    for (i, o) in items.iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        out.extend_from_slice(b"{\"cells\":");
        o.write_row_cells(out, now);
        match include {
            IncludeObject::None => {}
            IncludeObject::Metadata => {
                out.extend_from_slice(b",\"object\":{\"kind\":\"PartialObjectMetadata\",\"apiVersion\":\"meta.k8s.io/v1\",\"metadata\":");
                o.write_metadata(out);
                out.push(b'}');
            }
            IncludeObject::Object => {
                out.extend_from_slice(b",\"object\":");
                o.json.write_to(out);
            }
        }
        out.push(b'}');
    }
    out.extend_from_slice(b"]}");
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::registry::crd::PrinterColumn;
    use crate::registry::jsonpath::JsonPath;
    use crate::unified::cache::{self, Shape};

    /// Objects of several kinds, in the states whose cells differ (ages of
    /// every sort, managedFields first, in the middle, alone or absent).
    fn samples() -> Vec<(Gvr, Value)> {
        let pods = Gvr::new("", "v1", "pods", "Pod", true);
        let mf = json!([{"manager": "m", "operation": "Update", "fieldsV1": {"f:spec": {}}}]);
        let widgets = Gvr {
            columns: Some(Arc::new(vec![
                PrinterColumn {
                    name: "Size".into(),
                    type_: "integer".into(),
                    format: String::new(),
                    description: "how big".into(),
                    priority: 0,
                    path: JsonPath::parse(".spec.size").expect("path"),
                },
                PrinterColumn {
                    name: "Seen".into(),
                    type_: "date".into(),
                    format: String::new(),
                    description: "when".into(),
                    priority: 1,
                    path: JsonPath::parse(".status.seen").expect("path"),
                },
            ])),
            ..Gvr::new("example.com", "v1", "widgets", "Widget", true)
        };
        vec![
            (
                pods.clone(),
                json!({"kind": "Pod", "apiVersion": "v1",
                "metadata": {"name": "web-1", "namespace": "ns", "creationTimestamp": "2026-11-26T08:13:34Z",
                    "labels": {"app": "web"}, "managedFields": mf, "resourceVersion": "7"},
                "spec": {"containers": [{"name": "a"}, {"name": "b"}], "nodeName": "n1",
                    "readinessGates": [{"conditionType": "x"}]},
                "status": {"phase": "Running", "podIP": "10.0.0.1",
                    "conditions": [{"type": "x", "status": "True"}],
                    "containerStatuses": [{"ready": true, "restartCount": 2},
                        {"ready": false, "restartCount": 1, "state": {"waiting": {"reason": "CrashLoopBackOff"}}}]}}),
            ),
            (
                pods.clone(),
                json!({"metadata": {"managedFields": mf, "name": "first", "namespace": "ns",
                "deletionTimestamp": "2026-11-26T09:00:00Z", "creationTimestamp": "not a time"}}),
            ),
            (pods.clone(), json!({"metadata": {"managedFields": mf}})),
            (
                pods,
                json!({"metadata": {"name": "bare", "namespace": "ns"}, "status": {}}),
            ),
            (
                Gvr::new("apps", "v1", "deployments", "Deployment", true),
                json!({
                "metadata": {"name": "d", "namespace": "ns", "creationTimestamp": "2020-01-01T00:00:00Z", "managedFields": mf},
                "spec": {"replicas": 3, "selector": {"matchLabels": {"app": "d"}},
                    "template": {"spec": {"containers": [{"name": "c", "image": "nginx"}]}}},
                "status": {"readyReplicas": 2, "updatedReplicas": 3, "availableReplicas": 2}}),
            ),
            (
                Gvr::new("batch", "v1", "jobs", "Job", true),
                json!({
                "metadata": {"name": "running", "namespace": "ns", "creationTimestamp": "2026-11-26T08:00:00Z"},
                "status": {"startTime": "2026-11-26T08:00:05Z"}}),
            ),
            (
                Gvr::new("batch", "v1", "jobs", "Job", true),
                json!({
                "metadata": {"name": "done", "namespace": "ns", "creationTimestamp": "2026-11-26T08:00:00Z"},
                "spec": {"completions": 2},
                "status": {"startTime": "2026-11-26T08:00:05Z", "completionTime": "2026-11-26T08:03:05Z",
                    "succeeded": 2, "conditions": [{"type": "Complete", "status": "True"}]}}),
            ),
            (
                Gvr::new("batch", "v1", "cronjobs", "CronJob", true),
                json!({
                "metadata": {"name": "c", "namespace": "ns", "creationTimestamp": "2026-11-20T08:00:00Z"},
                "spec": {"schedule": "*/5 * * * *"},
                "status": {"lastScheduleTime": "2026-11-26T08:10:00Z"}}),
            ),
            (
                Gvr::new("batch", "v1", "cronjobs", "CronJob", true),
                json!({
                "metadata": {"name": "never", "namespace": "ns"}, "spec": {"schedule": "@daily"}}),
            ),
            (
                Gvr::new("", "v1", "events", "Event", true),
                json!({
                "metadata": {"name": "e", "namespace": "ns", "creationTimestamp": "2026-11-26T08:00:00Z"},
                "type": "Normal", "reason": "Pulled", "message": " pulled \"nginx\" ",
                "involvedObject": {"kind": "Pod", "name": "web-1"},
                "firstTimestamp": "2026-11-25T08:00:00Z", "lastTimestamp": "2026-11-26T08:00:00Z", "count": 4}),
            ),
            (
                Gvr::new("", "v1", "nodes", "Node", false),
                json!({
                "metadata": {"name": "n1", "creationTimestamp": "2026-11-26T08:00:00Z",
                    "labels": {"node-role.kubernetes.io/control-plane": ""}},
                "status": {"conditions": [{"type": "Ready", "status": "True"}],
                    "addresses": [{"type": "InternalIP", "address": "172.18.0.2"}],
                    "nodeInfo": {"kubeletVersion": "v1.33.0"}}}),
            ),
            (
                Gvr::new("", "v1", "services", "Service", true),
                json!({
                "metadata": {"name": "s", "namespace": "ns", "creationTimestamp": "2026-11-26T08:00:00Z"},
                "spec": {"type": "NodePort", "clusterIP": "10.96.0.9",
                    "ports": [{"port": 80, "nodePort": 30080, "protocol": "TCP"}], "selector": {"app": "web"}}}),
            ),
            (
                widgets.clone(),
                json!({"metadata": {"name": "w", "namespace": "ns", "managedFields": mf},
                "spec": {"size": 3}, "status": {"seen": "2026-11-26T07:00:00Z"}}),
            ),
            (
                widgets,
                json!({"metadata": {"name": "w2", "namespace": "ns"}, "spec": {}}),
            ),
            (
                Gvr::new("example.com", "v1", "gadgets", "Gadget", true),
                json!({
                "metadata": {"name": "g", "namespace": "ns", "creationTimestamp": "2026-11-26T08:13:00Z"}}),
            ),
        ]
    }

    #[test]
    fn cached_rows_make_the_same_table_as_converted_objects() {
        let now: jiff::Timestamp = "2026-11-26T10:00:00Z".parse().expect("time");
        let meta = ListMeta {
            resource_version: "rv".into(),
            continue_token: Some("token".into()),
            remaining: None,
        };
        for (i, (gvr, object)) in samples().into_iter().enumerate() {
            let annotated = cache::annotate(object, &format!("member{i}"), &gvr);
            let cached = Arc::new(Object::new(&annotated, &Shape::of(&gvr)));
            // The cached JSON is what serde_json writes, managedFields left out.
            let mut served = annotated.clone();
            if let Some(m) = served["metadata"].as_object_mut() {
                m.shift_remove("managedFields");
            }
            assert_eq!(
                String::from_utf8_lossy(&cached.json.bytes()),
                serde_json::to_string(&served).expect("json"),
                "{}",
                gvr.plural
            );
            let info = info_for(&gvr);
            for include in [
                IncludeObject::None,
                IncludeObject::Metadata,
                IncludeObject::Object,
            ] {
                let items = [cached.clone(), cached.clone()];
                let mut written = Vec::new();
                write_table(&mut written, &info, &items, include, &meta, now);
                let parsed = [Arc::new(cached.value()), Arc::new(cached.value())];
                let converted = table_at(&info, &parsed, include, &meta, true, now);
                assert_eq!(
                    String::from_utf8_lossy(&written),
                    serde_json::to_string(&converted).expect("json"),
                    "{} {include:?}",
                    gvr.plural
                );
            }
            // A metadata list's item: the whole metadata but managedFields.
            let mut m = Vec::new();
            cached.write_metadata(&mut m);
            let m: Value = serde_json::from_slice(&m).expect("metadata");
            let mut want = annotated["metadata"].clone();
            if let Some(w) = want.as_object_mut() {
                w.shift_remove("managedFields");
            }
            assert_eq!(m, want, "{}", gvr.plural);
        }
        // Ages move on with the clock, the rest stays.
        let (gvr, pod) = samples().remove(0);
        let cached = Object::new(&cache::annotate(pod, "m", &gvr), &Shape::of(&gvr));
        let later: jiff::Timestamp = "2026-11-27T10:00:00Z".parse().expect("time");
        let cells = |at| {
            let mut out = Vec::new();
            cached.write_row_cells(&mut out, at);
            serde_json::from_slice::<Value>(&out).expect("cells")
        };
        assert_eq!(cells(now)[5], "106m");
        assert_eq!(cells(later)[5], "25h");
        assert_eq!(cells(now)[1], "m");
        assert_eq!(cells(now)[3], "CrashLoopBackOff");
    }

    #[test]
    fn cluster_column_after_name() {
        let gvr = Gvr::new("", "v1", "pods", "Pod", true);
        let pod = Arc::new(json!({"metadata": {"name": "p", "namespace": "ns",
            "annotations": {CLUSTER_ANNOTATION: "member2"}}, "status": {"phase": "Running"}}));
        let t = table(
            &info_for(&gvr),
            &[pod],
            IncludeObject::Object,
            &ListMeta::default(),
            true,
        );
        let cols = t["columnDefinitions"].as_array().expect("columns");
        assert_eq!(cols[0]["name"], "Name");
        assert_eq!(cols[0]["format"], "name");
        assert_eq!(cols[1]["name"], "Cluster");
        assert_eq!(cols[3]["name"], "Status");
        assert_eq!(t["rows"][0]["cells"][0], "p");
        assert_eq!(t["rows"][0]["cells"][1], "member2");
        assert_eq!(t["rows"][0]["cells"][3], "Running");
        assert_eq!(t["rows"][0]["object"]["metadata"]["name"], "p");
        let other = Gvr {
            group: "example.com".into(),
            plural: "widgets".into(),
            kind: "Widget".into(),
            ..gvr
        };
        let t = table(
            &info_for(&other),
            &[],
            IncludeObject::None,
            &ListMeta::default(),
            true,
        );
        let names: Vec<_> = t["columnDefinitions"]
            .as_array()
            .expect("cols")
            .iter()
            .map(|c| c["name"].clone())
            .collect();
        assert_eq!(names, [json!("Name"), json!("Cluster"), json!("Age")]);
    }
}
