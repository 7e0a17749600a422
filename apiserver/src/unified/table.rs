//! Tables of the unified view: the kube-apiserver columns of each built-in kind
//! (the same printers the host uses), NAME/AGE for other kinds, and a CLUSTER
//! column right after NAME, as `karmadactl get` prints it. NAME keeps
//! `format: name`, so kubectl still prints `kind/name` in multi-type output; rows
//! carry their objects when asked (`includeObject`).

use std::sync::{Arc, OnceLock};

use serde_json::{Value, json};

use super::Gvr;
use super::cache::CLUSTER_ANNOTATION;
use crate::endpoints::table::{self, IncludeObject, ListMeta};
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
    let mut t = table::table(info, items, include, meta, headers);
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

#[cfg(test)]
mod tests {
    use super::*;

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
