//! `flotilla get RESOURCE`: the unified multi-cluster view from the command line,
//! like `karmadactl get`: one table of every member's objects with a CLUSTER
//! column, read through the control plane's unified-view prefix (so the member
//! calls are the server's parallel fan-out or its caches, and warnings about
//! missing clusters are printed as the server sends them).

use anyhow::{Context, Result, bail};
use flotilla_apiserver::unified::PREFIX;
use http::header;
use serde_json::Value;

/// What to show.
pub struct Options {
    pub resource: String,
    pub namespace: Option<String>,
    pub all_namespaces: bool,
    pub selector: Option<String>,
    /// Only these clusters (empty: all).
    pub clusters: Vec<String>,
    /// `""` (table), `wide`, `yaml`, `json`, `name`.
    pub output: String,
}

const AGGREGATED: &str = "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList";
const TABLE: &str = "application/json;as=Table;v=v1;g=meta.k8s.io,application/json";

struct Resource {
    group: String,
    version: String,
    plural: String,
    kind: String,
    namespaced: bool,
}

async fn get(client: &kube::Client, path: &str, accept: &str) -> Result<(Value, Vec<String>)> {
    let req = http::Request::get(path)
        .header(header::ACCEPT, accept)
        .body(Vec::new())
        .context("building the request")?;
    let resp = client
        .send(req.map(kube::client::Body::from))
        .await
        .with_context(|| format!("GET {path}"))?;
    let warnings = resp
        .headers()
        .get_all(header::WARNING)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .map(|w| {
            w.trim_start_matches("299 - ")
                .trim_matches('"')
                .replace("\\\"", "\"")
        })
        .collect();
    let status = resp.status();
    let body = http_body_util::BodyExt::collect(resp.into_body())
        .await
        .context("reading the answer")?
        .to_bytes();
    let value: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    if !status.is_success() {
        let message = value["message"].as_str().unwrap_or("").to_string();
        bail!(
            "Error from server ({}): {message}",
            value["reason"].as_str().unwrap_or(status.as_str())
        );
    }
    Ok((value, warnings))
}

/// Finds a resource by plural, singular, short name or kind in the unified discovery.
async fn resolve(client: &kube::Client, name: &str) -> Result<Resource> {
    let name = name.to_ascii_lowercase();
    for path in [format!("{PREFIX}/api"), format!("{PREFIX}/apis")] {
        let (doc, _) = get(client, &path, AGGREGATED).await?;
        for group in doc["items"].as_array().into_iter().flatten() {
            let g = group
                .pointer("/metadata/name")
                .and_then(Value::as_str)
                .unwrap_or("");
            let Some(version) = group["versions"].as_array().and_then(|v| v.first()) else {
                continue;
            };
            for r in version["resources"].as_array().into_iter().flatten() {
                let plural = r["resource"].as_str().unwrap_or("");
                let kind = r
                    .pointer("/responseKind/kind")
                    .and_then(Value::as_str)
                    .unwrap_or("");
                let singular = r["singularResource"].as_str().unwrap_or("");
                let short = r["shortNames"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .any(|s| s == name.as_str());
                let qualified = format!("{plural}.{g}");
                if plural == name
                    || singular == name
                    || kind.to_ascii_lowercase() == name
                    || short
                    || qualified == name
                {
                    return Ok(Resource {
                        group: g.to_string(),
                        version: version["version"].as_str().unwrap_or("v1").to_string(),
                        plural: plural.to_string(),
                        kind: kind.to_string(),
                        namespaced: r["scope"] == "Namespaced",
                    });
                }
            }
        }
    }
    bail!("the server doesn't have a resource type \"{name}\"")
}

fn encode(s: &str) -> String {
    s.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

fn cluster_of(object: &Value) -> &str {
    object
        .pointer("/metadata/annotations/resource.karmada.io~1cached-from-cluster")
        .and_then(Value::as_str)
        .unwrap_or("")
}

/// Runs `flotilla get` against the control plane `client`.
pub async fn run(client: kube::Client, opts: &Options) -> Result<()> {
    let r = resolve(&client, &opts.resource).await?;
    let base = if r.group.is_empty() {
        format!("{PREFIX}/api/{}", r.version)
    } else {
        format!("{PREFIX}/apis/{}/{}", r.group, r.version)
    };
    let namespace = (!opts.all_namespaces && r.namespaced)
        .then(|| opts.namespace.clone().unwrap_or_else(|| "default".into()));
    let mut path = match &namespace {
        Some(ns) => format!("{base}/namespaces/{ns}/{}", r.plural),
        None => format!("{base}/{}", r.plural),
    };
    let mut query = Vec::new();
    if let Some(s) = &opts.selector {
        query.push(format!("labelSelector={}", encode(s)));
    }
    if let [only] = opts.clusters.as_slice() {
        query.push(format!(
            "fieldSelector={}",
            encode(&format!("cluster={only}"))
        ));
    }
    let table = matches!(opts.output.as_str(), "" | "wide" | "name");
    if table {
        query.push("includeObject=Object".into());
    }
    if !query.is_empty() {
        path = format!("{path}?{}", query.join("&"));
    }
    let (doc, warnings) = get(
        &client,
        &path,
        if table { TABLE } else { "application/json" },
    )
    .await?;
    for w in warnings {
        eprintln!("Warning: {w}");
    }
    let wanted =
        |o: &Value| opts.clusters.is_empty() || opts.clusters.iter().any(|c| c == cluster_of(o));
    match opts.output.as_str() {
        "json" | "yaml" => {
            let mut doc = doc;
            if let Some(items) = doc["items"].as_array_mut() {
                items.retain(|o| wanted(o));
            }
            if opts.output == "json" {
                println!("{}", serde_json::to_string_pretty(&doc)?);
            } else {
                print!("{}", serde_saphyr::to_string(&doc)?);
            }
        }
        "name" => {
            for row in doc["rows"].as_array().into_iter().flatten() {
                if wanted(&row["object"]) {
                    let kind = r.kind.to_ascii_lowercase();
                    let name = row["cells"][0].as_str().unwrap_or("");
                    if r.group.is_empty() {
                        println!("{kind}/{name}");
                    } else {
                        println!("{kind}.{}/{name}", r.group);
                    }
                }
            }
        }
        "" | "wide" => print_table(
            &doc,
            opts.output == "wide",
            namespace.is_none() && r.namespaced,
            &wanted,
        ),
        other => bail!("unknown output format \"{other}\": use wide, yaml, json or name"),
    }
    Ok(())
}

fn print_table(doc: &Value, wide: bool, with_namespace: bool, wanted: &dyn Fn(&Value) -> bool) {
    let columns: Vec<(usize, String)> = doc["columnDefinitions"]
        .as_array()
        .into_iter()
        .flatten()
        .enumerate()
        .filter(|(_, c)| wide || c["priority"].as_i64().unwrap_or(0) == 0)
        .map(|(i, c)| (i, c["name"].as_str().unwrap_or("").to_ascii_uppercase()))
        .collect();
    let mut lines: Vec<Vec<String>> = Vec::new();
    let mut header: Vec<String> = columns.iter().map(|(_, n)| n.clone()).collect();
    if with_namespace {
        header.insert(0, "NAMESPACE".into());
    }
    lines.push(header);
    for row in doc["rows"].as_array().into_iter().flatten() {
        if !wanted(&row["object"]) {
            continue;
        }
        let mut cells: Vec<String> = columns
            .iter()
            .map(|(i, _)| match &row["cells"][*i] {
                Value::String(s) => s.clone(),
                Value::Null => "<none>".into(),
                other => other.to_string(),
            })
            .collect();
        if with_namespace {
            let ns = row
                .pointer("/object/metadata/namespace")
                .and_then(Value::as_str)
                .unwrap_or("");
            cells.insert(0, ns.to_string());
        }
        lines.push(cells);
    }
    if lines.len() == 1 {
        eprintln!("No resources found");
        return;
    }
    let widths: Vec<usize> = (0..lines[0].len())
        .map(|i| {
            lines
                .iter()
                .map(|l| l.get(i).map_or(0, String::len))
                .max()
                .unwrap_or(0)
        })
        .collect();
    for l in lines {
        let text: Vec<String> = l
            .iter()
            .enumerate()
            .map(|(i, c)| format!("{c:<w$}", w = widths[i]))
            .collect();
        println!("{}", text.join("   ").trim_end());
    }
}
