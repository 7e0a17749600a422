//! What the end-to-end scenarios share: the release binary, `flotilla up`
//! started and stopped by PID, kube clients from its kubeconfig, progress
//! bars, percentiles, and recording results (JSON in `bench/results/`, the
//! Markdown table between the scenario's markers in `docs/benchmarks.md`).

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use kube::Client;

/// The `flotilla` binary measured: `FLOTILLA_BIN`, else the release build.
pub fn flotilla() -> PathBuf {
    std::env::var_os("FLOTILLA_BIN")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../target/release/flotilla")
        })
}

/// A child killed by PID on drop.
pub struct Guard(pub Child);

impl Drop for Guard {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// A process's resident memory in MiB.
pub fn rss_mib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines().find(|l| l.starts_with("VmRSS:")).and_then(|l| {
                l.split_whitespace()
                    .nth(1)
                    .and_then(|v| v.parse::<u64>().ok())
            })
        })
        .unwrap_or(0)
        / 1024
}

/// A process's CPU time so far (user + system), in seconds.
pub fn cpu_secs(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // the fields after the command name, which is in parentheses
    let fields: Vec<&str> = stat
        .rsplit_once(')')
        .map(|(_, rest)| rest.split_whitespace().collect())
        .unwrap_or_default();
    let ticks = |i: usize| {
        fields
            .get(i)
            .and_then(|v| v.parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    // utime and stime are fields 14 and 15 of the line, 12 and 13 here
    (ticks(11) + ticks(12)) / 100.0
}

/// A kube client for `context` of `kubeconfig`.
pub async fn client(kubeconfig: &Path, context: &str) -> Client {
    let kc = kube::config::Kubeconfig::read_from(kubeconfig).expect("kubeconfig");
    let opts = kube::config::KubeConfigOptions {
        context: Some(context.to_string()),
        ..Default::default()
    };
    let mut config = kube::Config::from_custom_kubeconfig(kc, &opts)
        .await
        .expect("client config");
    config.read_timeout = Some(Duration::from_secs(300));
    Client::try_from(config).expect("client")
}

/// A running `flotilla up` in a temporary directory.
pub struct Up {
    /// The process.
    pub process: Guard,
    /// DIR/kubeconfig.
    pub kubeconfig: PathBuf,
    /// The temporary directory (logs in it).
    pub dir: tempfile::TempDir,
}

/// Starts `flotilla up --members N --nodes NODES` with `extra` arguments and
/// waits until its kubeconfig names every member.
pub async fn up(members: usize, nodes: usize, extra: &[&str]) -> Up {
    let dir = tempfile::tempdir().expect("tmp");
    let log = std::fs::File::create(dir.path().join("up.log")).expect("log");
    let process = Guard(
        Command::new(flotilla())
            .args(["up", "--bind", "127.0.0.1:0", "--members"])
            .arg(members.to_string())
            .arg("--nodes")
            .arg(nodes.to_string())
            .arg("--dir")
            .arg(dir.path().join("state"))
            .args(extra)
            .env(
                "RUST_LOG",
                std::env::var("BENCH_UP_LOG").unwrap_or_else(|_| "warn".into()),
            )
            .stdout(Stdio::piped())
            .stderr(log)
            .spawn()
            .expect("flotilla up"),
    );
    let kubeconfig = dir.path().join("state/kubeconfig");
    let started = Instant::now();
    let last = if members == 0 {
        "flotilla".to_string()
    } else {
        format!("member{members}")
    };
    while !std::fs::read_to_string(&kubeconfig).is_ok_and(|k| k.contains(&last)) {
        assert!(
            started.elapsed() < Duration::from_secs(300),
            "flotilla up not ready after 5 minutes"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    if members > 0 {
        unified_caches_started(&dir.path().join("state"), members).await;
    }
    Up {
        process,
        kubeconfig,
        dir,
    }
}

/// The Prometheus text of a server's `/metrics`.
pub async fn metrics(server: &Client) -> Result<String, kube::Error> {
    let request = http::Request::get("/metrics")
        .body(Vec::new())
        .expect("request");
    server.request_text(request).await
}

/// The value after `--name` on the command line, parsed.
pub fn flag<T: std::str::FromStr>(args: &[String], name: &str) -> Option<T> {
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1))
        .and_then(|v| v.parse().ok())
}

/// A client of the aggregated API server `flotilla up` runs in `state`.
pub async fn aggregated_client(state: &Path) -> Client {
    let path = state.join("aggregated-apiserver/kubeconfig");
    let kc = kube::config::Kubeconfig::read_from(&path).expect("aggregated kubeconfig");
    let context = kc.current_context.clone().expect("a current context");
    client(&path, &context).await
}

/// Waits until the unified view caches every member's pods, and a little
/// longer for their first lists: the caches fill once after start-up, with
/// every member's objects at once, and a measurement should not include that.
pub async fn unified_caches_started(state: &Path, members: usize) {
    let aggregated = aggregated_client(state).await;
    let started = Instant::now();
    loop {
        let text = metrics(&aggregated).await.unwrap_or_default();
        let caching = text
            .lines()
            .filter(|l| {
                l.starts_with("flotilla_unified_cache_objects{") && l.contains("resource=\"pods\"")
            })
            .count();
        if caching >= members {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(300),
            "the unified view caches {caching} of {members} members' pods after 5 minutes"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    tokio::time::sleep(Duration::from_secs(2)).await;
}

/// A progress bar on stderr for `len` steps of `what`.
pub fn progress(len: usize, what: &str) -> indicatif::ProgressBar {
    let bar = indicatif::ProgressBar::new(len as u64);
    bar.set_style(
        indicatif::ProgressStyle::with_template(
            "{msg:<40} [{bar:30}] {pos}/{len} ({elapsed}, eta {eta})",
        )
        .expect("valid template")
        .progress_chars("=> "),
    );
    bar.set_message(what.to_string());
    bar
}

/// The `p`-th percentile (0–100) of sorted samples.
pub fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let i = ((sorted.len() as f64 - 1.0) * p / 100.0).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

/// Milliseconds with one decimal.
pub fn ms(d: Duration) -> f64 {
    (d.as_secs_f64() * 1e4).round() / 10.0
}

/// Prints the table; with `--record`, writes `bench/results/SCENARIO.json`
/// and puts the table between `<!-- bench:SCENARIO -->` and
/// `<!-- /bench:SCENARIO -->` in `docs/benchmarks.md`.
pub fn record(scenario: &str, results: &serde_json::Value, table: &str) {
    println!("{table}");
    if !std::env::args().any(|a| a == "--record") {
        return;
    }
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let results_dir = root.join("results");
    std::fs::create_dir_all(&results_dir).expect("bench/results");
    let mut doc = serde_json::json!({
        "scenario": scenario,
        "recorded": jiff_now(),
        "machine": machine(),
        "command": format!("cargo run --release -p flotilla-bench -- {}", std::env::args().skip(1).collect::<Vec<_>>().join(" ")),
    });
    doc["results"] = results.clone();
    std::fs::write(
        results_dir.join(format!("{scenario}.json")),
        serde_json::to_vec_pretty(&doc).expect("json"),
    )
    .expect("write results");
    let docs = root.join("../docs/benchmarks.md");
    let text = std::fs::read_to_string(&docs).expect("docs/benchmarks.md");
    let (open, close) = (
        format!("<!-- bench:{scenario} -->"),
        format!("<!-- /bench:{scenario} -->"),
    );
    let (Some(a), Some(b)) = (text.find(&open), text.find(&close)) else {
        eprintln!("docs/benchmarks.md has no {open} … {close} markers; table not recorded there");
        return;
    };
    let body = format!(
        "{open}\n{table}\n\nRecorded {} on {} with `{}`.\n",
        doc["recorded"].as_str().unwrap_or_default(),
        doc["machine"].as_str().unwrap_or_default(),
        doc["command"].as_str().unwrap_or_default()
    );
    let updated = format!("{}{body}{}", &text[..a], &text[b..]);
    std::fs::write(&docs, updated).expect("write docs/benchmarks.md");
    eprintln!("recorded in bench/results/{scenario}.json and docs/benchmarks.md");
}

fn jiff_now() -> String {
    jiff::Timestamp::now()
        .strftime("%Y-%m-%d %H:%M UTC")
        .to_string()
}

/// Cores, memory and the load when the run ended.
fn machine() -> String {
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    let mem_gib = std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|m| {
            m.lines()
                .find(|l| l.starts_with("MemTotal:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|v| v.parse::<u64>().ok())
        })
        .map_or(0, |kib| kib / 1024 / 1024);
    let load = std::fs::read_to_string("/proc/loadavg")
        .ok()
        .and_then(|l| l.split_whitespace().next().map(str::to_string))
        .unwrap_or_default();
    format!("{cores} cores, {mem_gib} GiB, load average {load}")
}
