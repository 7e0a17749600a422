//! Every pod read through the unified view of a running `flotilla up`
//! (context `flotilla-all`, through the host's aggregation) by a client that
//! does not rate-limit (kube-rs over one kept-alive HTTPS connection), the way
//! kubectl asks but without client-go's limiter, decoding or printing:
//!
//! - one request, as a Table (kubectl's Accept, rows with their
//!   PartialObjectMetadata, as `get pods -A --chunk-size=0` asks) and as JSON;
//! - pages of 500 following `continue`, as a Table (what `get pods -A` asks
//!   by default) and as JSON.
//!
//! Each way is timed to the last byte of the last answer, `RUNS` times (default
//! 3), ways alternating; every run checks that `WANT` pods came back (when set).
//! Prints one line per way: `NAME p50_seconds min_seconds bytes`. Used by
//! `bench/unified.sh` next to kubectl's own times.
//!
//! Run: `KUBECONFIG=... RUNS=3 WANT=10000 flotilla-bench unified-read`.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use kube::Client;

use crate::harness::{self, percentile};

/// kubectl's Accept header for `get` (Table, falling back to JSON).
const TABLE: &str = "application/json;as=Table;v=v1;g=meta.k8s.io,application/json;as=Table;v=v1beta1;g=meta.k8s.io,application/json";
const JSON: &str = "application/json";

/// One GET of the unified view's pods; the body.
async fn get(client: &Client, accept: &str, query: &str) -> String {
    let request = http::Request::get(format!("/api/v1/pods?{query}"))
        .header("accept", accept)
        .body(Vec::new())
        .expect("request");
    client.request_text(request).await.expect("list pods")
}

/// The continue token in a list's metadata (written before its items or
/// rows; with 100 clusters the metadata alone is several KiB), if any.
fn continue_token(body: &str) -> Option<String> {
    let scan = &body[..body.floor_char_boundary(1 << 20)];
    let end = ["\"items\":", "\"rows\":"]
        .iter()
        .filter_map(|k| scan.find(k))
        .min()
        .unwrap_or(scan.len());
    let head = &scan[..end];
    let at = head.find("\"continue\":\"")? + "\"continue\":\"".len();
    let len = head[at..].find('"')?;
    Some(head[at..at + len].to_string())
}

/// Pods in an answer: Table rows, or list items (each has the cluster
/// annotation once; inside JSON strings quotes are escaped, so neither
/// pattern appears in a value).
fn count(body: &str, table: bool) -> usize {
    let pattern = if table {
        "{\"cells\":"
    } else {
        "\"resource.karmada.io/cached-from-cluster\":"
    };
    body.matches(pattern).count()
}

/// Reads every pod one way; (time to the last byte, pods, bytes).
async fn read(client: &Client, table: bool, paged: bool) -> (Duration, usize, usize) {
    let accept = if table { TABLE } else { JSON };
    let started = Instant::now();
    let mut bodies = Vec::new();
    if paged {
        let mut query = "limit=500".to_string();
        loop {
            let body = get(client, accept, &query).await;
            let next = continue_token(&body);
            bodies.push(body);
            match next {
                Some(token) => query = format!("limit=500&continue={token}"),
                None => break,
            }
        }
    } else {
        bodies.push(get(client, accept, "").await);
    }
    let elapsed = started.elapsed();
    let pods = bodies.iter().map(|b| count(b, table)).sum();
    let bytes = bodies.iter().map(String::len).sum();
    (elapsed, pods, bytes)
}

/// The `unified-read` scenario.
pub async fn scenario() {
    let kubeconfig = PathBuf::from(std::env::var_os("KUBECONFIG").expect("KUBECONFIG"));
    let runs: usize = std::env::var("RUNS")
        .ok()
        .and_then(|r| r.parse().ok())
        .unwrap_or(3);
    let want: Option<usize> = std::env::var("WANT").ok().and_then(|w| w.parse().ok());
    let client = harness::client(&kubeconfig, "flotilla-all").await;
    let ways = [
        ("table_one_request", true, false),
        ("json_one_request", false, false),
        ("table_pages_of_500", true, true),
        ("json_pages_of_500", false, true),
    ];
    let mut times: Vec<Vec<Duration>> = vec![Vec::new(); ways.len()];
    let mut sizes = vec![0; ways.len()];
    for _ in 0..runs {
        for (i, &(name, table, paged)) in ways.iter().enumerate() {
            let (elapsed, pods, bytes) = read(&client, table, paged).await;
            if let Some(want) = want
                && pods != want
            {
                eprintln!("{name}: {pods} of {want} pods");
            }
            times[i].push(elapsed);
            sizes[i] = bytes;
        }
    }
    for (i, &(name, _, _)) in ways.iter().enumerate() {
        times[i].sort();
        println!(
            "{name} {:.3} {:.3} {}",
            percentile(&times[i], 50.0).as_secs_f64(),
            times[i][0].as_secs_f64(),
            sizes[i]
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_and_counts() {
        let page = r#"{"kind":"Table","apiVersion":"meta.k8s.io/v1","metadata":{"resourceVersion":"x","continue":"abc%3D"},"rows":[{"cells":["a"]},{"cells":["b \"{\"cells\":"]}]}"#;
        assert_eq!(continue_token(page).as_deref(), Some("abc%3D"));
        let long = format!(
            r#"{{"metadata":{{"resourceVersion":"{}","continue":"tok"}},"items":[]}}"#,
            "r".repeat(9000)
        );
        assert_eq!(continue_token(&long).as_deref(), Some("tok"));
        assert_eq!(count(page, true), 2);
        assert_eq!(
            continue_token(r#"{"metadata":{"resourceVersion":"x"}}"#),
            None
        );
    }
}
