//! Propagation benchmark: latency from a Deployment template's create on the
//! control plane to its member Deployments being fully Running, for 10 and
//! 100 simulated members and 1,000 templates, side by side in one run.
//!
//! Each run starts `flotilla up --members N` with the propagation controllers
//! in a separate `flotilla controller-manager` (so their memory is measured
//! on its own), applies one PropagationPolicy per member (template label
//! `slot: K` → divided 1:1 over memberK and memberK+1, so the pods spread
//! evenly) and creates templates of 2 replicas at a steady rate
//! (open loop); a watch on every member records when each template's
//! Deployments report all replicas ready. Latency = that moment − the
//! moment before the template's POST.
//!
//! In the same run, before the templates, the latency of a single API write
//! (sequential ConfigMap creates on the same control plane) is measured, so
//! that propagation is compared with the limit of the machine: template to
//! member p99 against write p99 (goal: at most 10 writes' worth).
//!
//! Run: `cargo build --release -p flotilla && cargo run --release -p
//! flotilla-bench -- propagation [--quick] [--rate N] [--members N]
//! [--pod-ready-delay MS] [--separate-members] [--member-nice N] [--one-process] [--record]`. `--pod-ready-delay` is the simulated
//! members' longest container start (0..=MS ms from a pod's binding to its
//! node to Running; 100 by default, as in `flotilla up`); with 0, Running
//! measures flotilla and the members' workload controllers alone.
//! `--separate-members` runs each member as a `flotilla sim` process joined
//! with `flotilla join`, so that `flotilla up`'s RSS is the control plane's
//! (host and aggregated API servers, webhook, cluster controllers) alone.
//! `--member-nice N` runs those processes at niceness N, so that the 2 cores
//! go to the control plane first, as if the members were other machines.
//! `--one-process` runs the propagation controllers inside `flotilla up`
//! instead, as `flotilla up` does by default: with `--separate-members`, its
//! RSS is then the whole control plane's.
//! `BENCH_HOLD_SECS=N` keeps every process running N seconds after the
//! measurement, to look at them.

use std::collections::HashMap;
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures::StreamExt;
use k8s_openapi::api::apps::v1::Deployment;
use kube::api::{DynamicObject, PostParams};
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Api, Client, ResourceExt};
use serde_json::json;

use crate::harness::{self, Guard, client, flotilla, ms, percentile, rss_mib};

struct Run {
    members: usize,
    templates: usize,
    dispatch_p50: Duration,
    dispatch_p99: Duration,
    p50: Duration,
    p99: Duration,
    max: Duration,
    all_done: Duration,
    up_rss_mib: u64,
    controllers_rss_mib: u64,
    /// Host API writes (and of them 409s) per template while propagating.
    writes_per_template: f64,
    conflicts_per_template: f64,
    write_p50: Duration,
    write_p99: Duration,
}

fn deployment(name: &str, slot: usize) -> DynamicObject {
    serde_json::from_value(json!({
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": name, "namespace": "default", "labels": {"bench": "yes", "slot": slot.to_string()}},
        "spec": {"replicas": 2,
                 "selector": {"matchLabels": {"app": name}},
                 "template": {"metadata": {"labels": {"app": name}},
                              "spec": {"containers": [{"name": "c", "image": "nginx:1.27"}]}}}
    }))
    .expect("deployment")
}

/// Simulated members as processes of their own (`flotilla sim`), joined to
/// the control plane with `flotilla join`, so that `flotilla up` holds the
/// control plane alone and its memory can be read apart from the members'.
struct SeparateMembers {
    processes: Vec<Guard>,
    /// Each member's kubeconfig and context.
    kubeconfigs: Vec<(std::path::PathBuf, String)>,
}

async fn start_separate_members(
    dir: &std::path::Path,
    kubeconfig: &std::path::Path,
    members: usize,
    pod_ready_delay_ms: u64,
    nice: u32,
) -> SeparateMembers {
    use std::io::BufRead;
    let mut processes = Vec::new();
    let mut outputs = Vec::new();
    for m in 1..=members {
        let mut child = Command::new("nice")
            .arg(format!("-n{nice}"))
            .arg(flotilla())
            .args(["sim", "--nodes", "4", "--name"])
            .arg(format!("member{m}"))
            .arg("--data-dir")
            .arg(dir.join(format!("members/member{m}")))
            .arg(format!("--pod-ready-delay={pod_ready_delay_ms}"))
            .env("RUST_LOG", "warn")
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("flotilla sim");
        outputs.push(std::io::BufReader::new(
            child.stdout.take().expect("stdout"),
        ));
        processes.push(Guard(child));
    }
    let mut kubeconfigs = Vec::new();
    for (m, out) in outputs.iter_mut().enumerate() {
        let mut line = String::new();
        out.read_line(&mut line).expect("sim output");
        let path = line
            .trim_end()
            .strip_suffix(')')
            .and_then(|l| l.rsplit_once("(kubeconfig: "))
            .map(|(_, p)| std::path::PathBuf::from(p))
            .unwrap_or_else(|| panic!("member{}: unexpected output {line:?}", m + 1));
        let kc = kube::config::Kubeconfig::read_from(&path).expect("member kubeconfig");
        let context = kc.current_context.expect("a current context");
        let joined = Command::new(flotilla())
            .arg("join")
            .arg(format!("member{}", m + 1))
            .arg("--cluster-kubeconfig")
            .arg(&path)
            .arg("--kubeconfig")
            .arg(kubeconfig)
            .args(["--context", "flotilla"])
            .output()
            .expect("flotilla join");
        assert!(
            joined.status.success(),
            "flotilla join member{}: {}",
            m + 1,
            String::from_utf8_lossy(&joined.stderr)
        );
        kubeconfigs.push((path, context));
    }
    SeparateMembers {
        processes,
        kubeconfigs,
    }
}

/// Waits until every Cluster is Ready.
async fn clusters_ready(cp: &Client, members: usize) {
    let api = Api::<DynamicObject>::all_with(
        cp.clone(),
        &kube::api::ApiResource {
            group: "cluster.karmada.io".into(),
            version: "v1alpha1".into(),
            api_version: "cluster.karmada.io/v1alpha1".into(),
            kind: "Cluster".into(),
            plural: "clusters".into(),
        },
    );
    let started = Instant::now();
    loop {
        let ready = api.list(&Default::default()).await.map_or(0, |l| {
            l.items
                .iter()
                .filter(|c| {
                    c.data["status"]["conditions"]
                        .as_array()
                        .into_iter()
                        .flatten()
                        .any(|c| c["type"] == "Ready" && c["status"] == "True")
                })
                .count()
        });
        if ready >= members {
            return;
        }
        assert!(
            started.elapsed() < Duration::from_secs(300),
            "{ready} of {members} clusters Ready after 5 minutes"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// The controllers the separate controller manager runs.
const PROPAGATION_CONTROLLERS: &str = "--controllers=detector,scheduler,binding,execution,workStatus,bindingStatus,dependencies,namespace";

/// With `--one-process`, `flotilla up` runs them itself, beside its cluster controllers.
const PROPAGATION_IN_UP: &str = "--controllers=cluster,clusterStatus,detector,scheduler,binding,execution,workStatus,bindingStatus,dependencies,namespace";

async fn run(
    members: usize,
    templates: usize,
    rate: f64,
    pod_ready_delay_ms: u64,
    separate: bool,
    one_process: bool,
    nice: u32,
) -> Run {
    let ready_delay = format!("--pod-ready-delay={pod_ready_delay_ms}");
    let running = harness::up(
        if separate { 0 } else { members },
        4,
        &[
            if one_process {
                PROPAGATION_IN_UP
            } else {
                // the controller manager runs the namespace controller (as
                // Karmada's does): its cache of every Work would be counted
                // as `flotilla up`'s own otherwise
                "--controllers=cluster,clusterStatus"
            },
            &ready_delay,
        ],
    )
    .await;
    let (dir, kubeconfig, up) = (&running.dir, running.kubeconfig.clone(), &running.process);
    let separate = if separate {
        let started =
            start_separate_members(dir.path(), &kubeconfig, members, pod_ready_delay_ms, nice)
                .await;
        clusters_ready(&client(&kubeconfig, "flotilla").await, members).await;
        harness::unified_caches_started(&dir.path().join("state"), members).await;
        Some(started)
    } else {
        None
    };
    let member_client = |m: usize| {
        let (path, context) = match &separate {
            Some(s) => s.kubeconfigs[m - 1].clone(),
            None => (kubeconfig.clone(), format!("member{m}")),
        };
        async move { client(&path, &context).await }
    };
    let cm_log = std::fs::File::create(dir.path().join("cm.log")).expect("log");
    let controllers_started = Instant::now();
    let controllers = (!one_process).then(|| {
        Guard(
            Command::new(flotilla())
                .arg("controller-manager")
                .arg("--kubeconfig")
                .arg(&kubeconfig)
                .args(["--context", "flotilla"])
                .arg("--metrics-bind-address=127.0.0.1:0")
                .arg("--leader-elect=false")
                .arg(PROPAGATION_CONTROLLERS)
                .env("RUST_LOG", "warn")
                .stdout(Stdio::null())
                .stderr(cm_log)
                .spawn()
                .expect("controller-manager"),
        )
    });
    let cp = client(&kubeconfig, "flotilla").await;
    let pp_resource = kube::api::ApiResource {
        group: "policy.karmada.io".into(),
        version: "v1alpha1".into(),
        api_version: "policy.karmada.io/v1alpha1".into(),
        kind: "PropagationPolicy".into(),
        plural: "propagationpolicies".into(),
    };
    let pp_api = Api::<DynamicObject>::namespaced_with(cp.clone(), "default", &pp_resource);
    for k in 1..=members {
        let next = k % members + 1;
        let policy: DynamicObject = serde_json::from_value(json!({
            "apiVersion": "policy.karmada.io/v1alpha1", "kind": "PropagationPolicy",
            "metadata": {"name": format!("slot-{k}"), "namespace": "default"},
            "spec": {"resourceSelectors": [{"apiVersion": "apps/v1", "kind": "Deployment",
                                             "labelSelector": {"matchLabels": {"bench": "yes", "slot": k.to_string()}}}],
                     "placement": {
                         "clusterAffinity": {"clusterNames": [format!("member{k}"), format!("member{next}")]},
                         "replicaScheduling": {"replicaSchedulingType": "Divided",
                                               "replicaDivisionPreference": "Weighted",
                                               "weightPreference": {"staticWeightList": [
                                                   {"targetCluster": {"clusterNames": [format!("member{k}")]}, "weight": 1},
                                                   {"targetCluster": {"clusterNames": [format!("member{next}")]}, "weight": 1}]}}}}
        }))
        .expect("policy");
        pp_api
            .create(&PostParams::default(), &policy)
            .await
            .expect("policy created");
    }
    // ready replicas per template, summed over the members
    let ready: Arc<Mutex<HashMap<String, HashMap<usize, i32>>>> = Arc::default();
    let done: Arc<Mutex<HashMap<String, Instant>>> = Arc::default();
    // when every member Deployment of a template exists (control plane's part)
    let dispatched: Arc<Mutex<HashMap<String, Instant>>> = Arc::default();
    let mut watches = Vec::new();
    for m in 1..=members {
        let member = member_client(m).await;
        let api: Api<Deployment> = Api::namespaced(member, "default");
        let (ready, done, dispatched) = (ready.clone(), done.clone(), dispatched.clone());
        watches.push(tokio::spawn(async move {
            let stream = watcher(api, watcher::Config::default())
                .default_backoff()
                .applied_objects();
            let mut stream = std::pin::pin!(stream);
            while let Some(Ok(d)) = stream.next().await {
                let n = d
                    .status
                    .as_ref()
                    .and_then(|s| s.ready_replicas)
                    .unwrap_or(0);
                let want = d.spec.as_ref().and_then(|s| s.replicas).unwrap_or(1);
                let name = d.name_any();
                let mut r = ready.lock().expect("lock");
                let per = r.entry(name.clone()).or_default();
                per.insert(m, if n >= want { n } else { 0 });
                if per.len() >= 2 {
                    dispatched
                        .lock()
                        .expect("lock")
                        .entry(name.clone())
                        .or_insert_with(Instant::now);
                }
                let all_ready = per.values().sum::<i32>() >= 2;
                drop(r);
                if all_ready {
                    done.lock()
                        .expect("lock")
                        .entry(name)
                        .or_insert_with(Instant::now);
                }
            }
        }));
    }
    let stages = Stages::default();
    watches.extend(stages.watch(&cp));
    // wait until every member watch has listed
    tokio::time::sleep(Duration::from_millis(500)).await;
    let (write_p50, write_p99) = write_latency(&cp, 500).await;
    let writes_before = host_writes(&cp).await;
    let api: Api<DynamicObject> = Api::namespaced_with(
        cp.clone(),
        "default",
        &kube::api::ApiResource::erase::<Deployment>(&()),
    );
    let interval = Duration::from_secs_f64(1.0 / rate);
    let t0 = Instant::now();
    eprintln!(
        "first template {:.1} s after the controller manager started",
        (t0 - controllers_started).as_secs_f64()
    );
    let mut created: HashMap<String, Instant> = HashMap::new();
    let mut posts = Vec::new();
    let bar = harness::progress(templates, &format!("templates to {members} members"));
    for i in 0..templates {
        bar.inc(1);
        let name = format!("bench-{i:05}");
        let due = t0 + interval * i as u32;
        tokio::time::sleep_until(due.into()).await;
        created.insert(name.clone(), Instant::now());
        let api = api.clone();
        posts.push(tokio::spawn(async move {
            api.create(&PostParams::default(), &deployment(&name, i % members + 1))
                .await
                .expect("create");
        }));
    }
    for p in posts {
        p.await.expect("post");
    }
    bar.finish_and_clear();
    let deadline = Instant::now() + Duration::from_secs(600);
    loop {
        let n = done.lock().expect("lock").len();
        if n >= templates || Instant::now() > deadline {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let all_done = t0.elapsed();
    // the status writes settle after the last pod runs
    tokio::time::sleep(Duration::from_secs(2)).await;
    let writes_after = host_writes(&cp).await;
    eprintln!(
        "host storage commits slower than 50 / 100 / 250 ms: {}",
        slow_commits(&cp).await
    );
    eprintln!("host storage: {}", host_storage(&cp).await);
    eprintln!(
        "unified view caches, estimated heap by resource: {}",
        unified_cache_heap(&harness::aggregated_client(&dir.path().join("state")).await).await
    );
    let per_template = |a: u64, b: u64| a.saturating_sub(b) as f64 / templates as f64;
    eprintln!(
        "CPU time: flotilla up {:.1} s, controllers {:.1} s",
        harness::cpu_secs(up.0.id()),
        controllers
            .as_ref()
            .map_or(0.0, |c| harness::cpu_secs(c.0.id()))
    );
    // RSS is anonymous memory (the heap) plus the binary's code mapped from
    // its file, which the two processes share
    let pids = [
        ("flotilla up", Some(up.0.id())),
        ("controllers", controllers.as_ref().map(|c| c.0.id())),
    ];
    for (name, pid) in pids.into_iter().filter_map(|(n, p)| Some((n, p?))) {
        let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
        let field = |name: &str| {
            status
                .lines()
                .find(|l| l.starts_with(name))
                .map_or(String::new(), |l| {
                    l.split_whitespace().skip(1).collect::<Vec<_>>().join(" ")
                })
        };
        eprintln!(
            "{name}: RssAnon {}, RssFile {}, threads {}, open files {}",
            field("RssAnon:"),
            field("RssFile:"),
            field("Threads:"),
            std::fs::read_dir(format!("/proc/{pid}/fd")).map_or(0, |d| d.count())
        );
    }
    let up_rss_mib = rss_mib(up.0.id());
    if let Some(secs) = std::env::var("BENCH_HOLD_SECS")
        .ok()
        .and_then(|s| s.parse().ok())
    {
        // time to look at the processes as the run left them (gdb, /proc)
        eprintln!(
            "holding {secs} s: flotilla up is PID {}, the controllers {}",
            up.0.id(),
            controllers.as_ref().map_or(0, |c| c.0.id())
        );
        tokio::time::sleep(Duration::from_secs(secs)).await;
    }
    if let Some(s) = &separate {
        let sims: u64 = s.processes.iter().map(|p| rss_mib(p.0.id())).sum();
        eprintln!("the {members} member processes: {sims} MiB RSS in all");
    }
    let controllers_rss_mib = controllers.as_ref().map_or(0, |c| rss_mib(c.0.id()));
    let done = done.lock().expect("lock").clone();
    let dispatched = dispatched.lock().expect("lock").clone();
    let mut dlat: Vec<Duration> = created
        .iter()
        .filter_map(|(n, c)| dispatched.get(n).map(|d| d.saturating_duration_since(*c)))
        .collect();
    dlat.sort();
    let mut lat: Vec<Duration> = created
        .iter()
        .filter_map(|(n, c)| done.get(n).map(|d| d.saturating_duration_since(*c)))
        .collect();
    assert_eq!(
        lat.len(),
        templates,
        "every template propagated within 10 minutes"
    );
    lat.sort();
    stages.report(&created, &dispatched, &done);
    timeline(t0, &created, &dispatched);
    report_warnings(&dir.path().join("cm.log"));
    for w in watches {
        w.abort();
    }
    drop(controllers);
    drop(separate);
    drop(running);
    Run {
        members,
        templates,
        dispatch_p50: dlat[dlat.len() / 2],
        dispatch_p99: dlat[(dlat.len() * 99 / 100).min(dlat.len() - 1)],
        p50: lat[lat.len() / 2],
        p99: lat[(lat.len() * 99 / 100).min(lat.len() - 1)],
        max: lat[lat.len() - 1],
        all_done,
        up_rss_mib,
        controllers_rss_mib,
        writes_per_template: per_template(writes_after.0, writes_before.0),
        conflicts_per_template: per_template(writes_after.1, writes_before.1),
        write_p50,
        write_p99,
    }
}

/// How many Works of a template were seen, and when the second was.
type WorksSeen = (usize, Option<Instant>);

/// When the control plane's steps of each template were first seen: its
/// ResourceBinding, the binding scheduled to two clusters, and both Works.
/// Printed (not recorded) after a run, to show where the slow templates
/// lost their time.
#[derive(Clone, Default)]
struct Stages {
    binding: Arc<Mutex<HashMap<String, Instant>>>,
    scheduled: Arc<Mutex<HashMap<String, Instant>>>,
    works: Arc<Mutex<HashMap<String, WorksSeen>>>,
}

impl Stages {
    fn watch(&self, cp: &Client) -> Vec<tokio::task::JoinHandle<()>> {
        let resource = |version: &str, kind: &str, plural: &str| kube::api::ApiResource {
            group: "work.karmada.io".into(),
            version: version.into(),
            api_version: format!("work.karmada.io/{version}"),
            kind: kind.into(),
            plural: plural.into(),
        };
        let rbs = Api::<DynamicObject>::namespaced_with(
            cp.clone(),
            "default",
            &resource("v1alpha2", "ResourceBinding", "resourcebindings"),
        );
        let works =
            Api::<DynamicObject>::all_with(cp.clone(), &resource("v1alpha1", "Work", "works"));
        let this = self.clone();
        let on_binding = tokio::spawn(async move {
            let stream = watcher(rbs, watcher::Config::default())
                .default_backoff()
                .applied_objects();
            let mut stream = std::pin::pin!(stream);
            while let Some(Ok(rb)) = stream.next().await {
                let Some(template) = rb.data["spec"]["resource"]["name"].as_str() else {
                    continue;
                };
                let now = Instant::now();
                this.binding
                    .lock()
                    .expect("lock")
                    .entry(template.to_string())
                    .or_insert(now);
                let clusters = rb.data["spec"]["clusters"].as_array().map_or(0, Vec::len);
                if clusters >= 2 {
                    this.scheduled
                        .lock()
                        .expect("lock")
                        .entry(template.to_string())
                        .or_insert(now);
                }
            }
        });
        let this = self.clone();
        let on_work = tokio::spawn(async move {
            let stream = watcher(works, watcher::Config::default())
                .default_backoff()
                .applied_objects();
            let mut stream = std::pin::pin!(stream);
            let mut seen = std::collections::HashSet::new();
            while let Some(Ok(work)) = stream.next().await {
                let Some(template) =
                    work.data["spec"]["workload"]["manifests"][0]["metadata"]["name"].as_str()
                else {
                    continue;
                };
                if !seen.insert(work.name_any() + "/" + &work.namespace().unwrap_or_default()) {
                    continue;
                }
                let mut works = this.works.lock().expect("lock");
                let entry = works.entry(template.to_string()).or_default();
                entry.0 += 1;
                if entry.0 >= 2 && entry.1.is_none() {
                    entry.1 = Some(Instant::now());
                }
            }
        });
        vec![on_binding, on_work]
    }

    /// Prints the p50/p99 of each step and the steps of the ten slowest
    /// templates to reach their members.
    fn report(
        &self,
        created: &HashMap<String, Instant>,
        dispatched: &HashMap<String, Instant>,
        done: &HashMap<String, Instant>,
    ) {
        let binding = self.binding.lock().expect("lock").clone();
        let scheduled = self.scheduled.lock().expect("lock").clone();
        let works: HashMap<String, Instant> = self
            .works
            .lock()
            .expect("lock")
            .iter()
            .filter_map(|(k, (_, t))| t.map(|t| (k.clone(), t)))
            .collect();
        let steps: [(&str, &HashMap<String, Instant>); 5] = [
            ("binding", &binding),
            ("scheduled", &scheduled),
            ("works", &works),
            ("in members", dispatched),
            ("running", done),
        ];
        let at = |name: &str, c: &Instant| -> Vec<Option<Duration>> {
            steps
                .iter()
                .map(|(_, m)| m.get(name).map(|t| t.saturating_duration_since(*c)))
                .collect()
        };
        eprintln!("steps after the template's POST (ms), p50 / p99:");
        for (i, (step, _)) in steps.iter().enumerate() {
            let mut v: Vec<Duration> = created.iter().filter_map(|(n, c)| at(n, c)[i]).collect();
            v.sort();
            eprintln!(
                "  {step:<11} {:>8.1} / {:>8.1}  ({} seen)",
                ms(percentile(&v, 50.0)),
                ms(percentile(&v, 99.0)),
                v.len()
            );
        }
        let mut slow: Vec<(&String, Duration)> = created
            .iter()
            .filter_map(|(n, c)| {
                dispatched
                    .get(n)
                    .map(|d| (n, d.saturating_duration_since(*c)))
            })
            .collect();
        slow.sort_by_key(|(_, d)| std::cmp::Reverse(*d));
        eprintln!(
            "slowest to reach their members (ms): binding, scheduled, works, in members, running"
        );
        for (name, _) in slow.iter().take(10) {
            let row: Vec<String> = at(name, &created[*name])
                .iter()
                .map(|d| d.map_or("-".into(), |d| format!("{:.0}", ms(d))))
                .collect();
            eprintln!("  {name}: {}", row.join(", "));
        }
    }
}

/// Prints the slowest time to reach the members of the templates created in
/// each 5 s window of the run, to show whether a slow tail is spread or a burst.
fn timeline(
    t0: Instant,
    created: &HashMap<String, Instant>,
    dispatched: &HashMap<String, Instant>,
) {
    let mut windows: std::collections::BTreeMap<u64, Duration> = Default::default();
    for (name, c) in created {
        if let Some(d) = dispatched.get(name) {
            let w = c.saturating_duration_since(t0).as_secs() / 5 * 5;
            let slot = windows.entry(w).or_default();
            *slot = (*slot).max(d.saturating_duration_since(*c));
        }
    }
    let row: Vec<String> = windows
        .iter()
        .map(|(w, d)| format!("{w}s:{:.0}", ms(*d)))
        .collect();
    eprintln!(
        "slowest to reach the members by creation time (ms): {}",
        row.join(" ")
    );
}

/// Prints how often each warning of the controller-manager's log occurred.
fn report_warnings(log: &std::path::Path) {
    let Ok(text) = std::fs::read_to_string(log) else {
        return;
    };
    let mut counts: HashMap<String, usize> = HashMap::new();
    for line in text
        .lines()
        .filter(|l| l.contains("WARN") || l.contains("ERROR"))
    {
        // the message without colours, timestamp and fields (object names)
        let mut plain = String::with_capacity(line.len());
        let mut escape = false;
        for c in line.chars() {
            match c {
                '\u{1b}' => escape = true,
                'm' if escape => escape = false,
                _ if !escape => plain.push(c),
                _ => {}
            }
        }
        let key: String = plain
            .split_whitespace()
            .skip(1)
            .filter(|w| !w.contains('='))
            .take(10)
            .collect::<Vec<_>>()
            .join(" ");
        *counts.entry(key).or_default() += 1;
    }
    let mut counts: Vec<_> = counts.into_iter().collect();
    counts.sort_by_key(|(_, n)| std::cmp::Reverse(*n));
    for (line, n) in counts.iter().take(10) {
        eprintln!("  {n:>6} × {line}");
    }
}

/// The host API server's write requests so far, and how many of them were
/// refused with 409 (from its `apiserver_request_total`): the work the
/// controllers cause, which does not depend on how loaded the machine is.
async fn host_writes(cp: &Client) -> (u64, u64) {
    let text = harness::metrics(cp).await.expect("host metrics");
    let (mut writes, mut conflicts) = (0, 0);
    for line in text.lines() {
        let Some(labels) = line.strip_prefix("apiserver_request_total{") else {
            continue;
        };
        let write = ["POST", "PUT", "PATCH", "DELETE"]
            .iter()
            .any(|v| labels.contains(&format!("verb=\"{v}\"")));
        if !write {
            continue;
        }
        let n: f64 = line
            .rsplit(' ')
            .next()
            .and_then(|v| v.parse().ok())
            .unwrap_or(0.0);
        writes += n as u64;
        if labels.contains("code=\"409\"") {
            conflicts += n as u64;
        }
    }
    (writes, conflicts)
}

/// How many of the host's storage writes took more than 50, 100 and 250 ms
/// to commit, of how many (its `flotilla_storage_operation_duration_seconds`):
/// a slow disk stalls every write behind it.
async fn slow_commits(cp: &Client) -> String {
    let text = harness::metrics(cp).await.expect("host metrics");
    let family = "flotilla_storage_operation_duration_seconds";
    let sum = |prefix: &str, le: Option<&str>| -> f64 {
        text.lines()
            .filter(|l| l.starts_with(prefix))
            .filter(|l| le.is_none_or(|le| l.contains(&format!("le=\"{le}\""))))
            .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
            .sum()
    };
    let all = sum(&format!("{family}_count"), None);
    let over = |le: &str| all - sum(&format!("{family}_bucket"), Some(le));
    format!(
        "{} / {} / {} of {all}",
        over("0.05"),
        over("0.1"),
        over("0.25")
    )
}

/// The unified view's caches by resource, largest first, from the aggregated
/// server's `flotilla_unified_cache_heap_bytes` (summed over the members).
async fn unified_cache_heap(aggregated: &Client) -> String {
    let text = harness::metrics(aggregated).await.unwrap_or_default();
    mib_by_resource(&text, "flotilla_unified_cache_heap_bytes", usize::MAX)
}

/// The host's stored objects: the JSON of the largest resources, and the
/// watch history.
async fn host_storage(cp: &Client) -> String {
    let text = harness::metrics(cp).await.unwrap_or_default();
    let gauge = |name: &str| {
        text.lines()
            .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    format!(
        "objects' JSON {}; watch history {} events, {:.1} MiB",
        mib_by_resource(&text, "flotilla_storage_object_bytes", 8),
        gauge("flotilla_storage_watch_history_events"),
        gauge("flotilla_storage_watch_history_bytes") / 1048576.0
    )
}

/// The `top` largest values of a metric summed by its `resource` label, in MiB.
fn mib_by_resource(text: &str, metric: &str, top: usize) -> String {
    let mut by_resource: HashMap<String, f64> = HashMap::new();
    let prefix = format!("{metric}{{");
    for line in text.lines().filter(|l| l.starts_with(&prefix)) {
        let resource = line
            .split("resource=\"")
            .nth(1)
            .and_then(|r| r.split('"').next())
            .unwrap_or_default();
        let bytes: f64 = line
            .rsplit(' ')
            .next()
            .and_then(|v| v.parse().ok())
            .unwrap_or(0.0);
        *by_resource.entry(resource.to_string()).or_default() += bytes;
    }
    let mut sorted: Vec<_> = by_resource.into_iter().collect();
    sorted.sort_by(|a, b| b.1.total_cmp(&a.1));
    sorted
        .iter()
        .take(top)
        .map(|(r, b)| format!("{r} {:.1} MiB", b / 1048576.0))
        .collect::<Vec<_>>()
        .join(", ")
}

/// p50 and p99 of `n` sequential ConfigMap creates on the control plane:
/// the latency of one API write, the unit propagation is compared with.
async fn write_latency(cp: &Client, n: usize) -> (Duration, Duration) {
    let api: Api<DynamicObject> = Api::namespaced_with(
        cp.clone(),
        "default",
        &kube::api::ApiResource::erase::<k8s_openapi::api::core::v1::ConfigMap>(&()),
    );
    let bar = harness::progress(n, "single API writes");
    let mut samples = Vec::with_capacity(n);
    for i in 0..n {
        let cm: DynamicObject = serde_json::from_value(json!({
            "apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {"name": format!("write-{i:05}"), "namespace": "default"},
            "data": {"k": "v"}
        }))
        .expect("configmap");
        let started = Instant::now();
        api.create(&PostParams::default(), &cm)
            .await
            .expect("create");
        samples.push(started.elapsed());
        bar.inc(1);
    }
    bar.finish_and_clear();
    samples.sort();
    (percentile(&samples, 50.0), percentile(&samples, 99.0))
}

/// The `propagation` scenario.
pub async fn scenario() {
    let args: Vec<String> = std::env::args().collect();
    let quick = args.iter().any(|a| a == "--quick");
    let rate: f64 = harness::flag(&args, "--rate").unwrap_or(20.0);
    // the simulated members' longest container start (`flotilla up`'s default: 100 ms)
    let pod_ready_delay_ms: u64 = harness::flag(&args, "--pod-ready-delay").unwrap_or(100);
    // members as `flotilla sim` processes joined with `flotilla join`, so that
    // `flotilla up`'s RSS is the control plane's alone
    let separate = args.iter().any(|a| a == "--separate-members");
    // the propagation controllers inside `flotilla up`, as its users run them
    let one_process = args.iter().any(|a| a == "--one-process");
    // the separate members' niceness: they stand in for other machines, so
    // that they need not take the control plane's CPU
    let member_nice: u32 = harness::flag(&args, "--member-nice").unwrap_or(0);
    let templates = if quick { 100 } else { 1_000 };
    let only: Option<usize> = harness::flag(&args, "--members");
    let sizes: Vec<usize> = match only {
        Some(n) => vec![n],
        None if quick => vec![10],
        None => vec![10, 100],
    };
    let mut runs = Vec::new();
    for &members in &sizes {
        eprintln!("propagating {templates} templates to {members} members at {rate}/s ...");
        runs.push(
            run(
                members,
                templates,
                rate,
                pod_ready_delay_ms,
                separate,
                one_process,
                member_nice,
            )
            .await,
        );
    }
    let mut table = format!(
        "| members | templates | rate | simulated pod start | single write p50 | p99 | in members p50 | p99 | p99 / write p99 (goal ≤ 10) | Running p50 | p99 | max | all Running after | `flotilla up` RSS ({}) | controllers RSS | host writes per template | of them 409 |\n|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|",
        match (separate, one_process) {
            (true, false) => "host alone",
            (true, true) => "host and controllers",
            (false, false) => "host + members",
            (false, true) => "host, controllers + members",
        }
    );
    let mut results = Vec::new();
    for r in &runs {
        let ratio = r.dispatch_p99.as_secs_f64() / r.write_p99.as_secs_f64().max(1e-9);
        table.push_str(&format!(
            "\n| {} | {} | {rate}/s | 0–{pod_ready_delay_ms} ms | {} ms | {} ms | {} ms | {} ms | {ratio:.1} | {} ms | {} ms | {} ms | {:.1} s | {} MiB | {} MiB | {:.1} | {:.1} |",
            r.members,
            r.templates,
            ms(r.write_p50),
            ms(r.write_p99),
            ms(r.dispatch_p50),
            ms(r.dispatch_p99),
            ms(r.p50),
            ms(r.p99),
            ms(r.max),
            r.all_done.as_secs_f64(),
            r.up_rss_mib,
            r.controllers_rss_mib,
            r.writes_per_template,
            r.conflicts_per_template
        ));
        results.push(json!({
            "members": r.members, "templates": r.templates, "rate_per_s": rate,
            "pod_ready_delay_max_ms": pod_ready_delay_ms,
            "members_in_separate_processes": separate,
            "controllers_in_up": one_process,
            "write_ms": {"p50": ms(r.write_p50), "p99": ms(r.write_p99)},
            "in_members_ms": {"p50": ms(r.dispatch_p50), "p99": ms(r.dispatch_p99)},
            "in_members_p99_over_write_p99": ratio,
            "running_ms": {"p50": ms(r.p50), "p99": ms(r.p99), "max": ms(r.max)},
            "all_running_s": r.all_done.as_secs_f64(),
            "up_rss_mib": r.up_rss_mib, "controllers_rss_mib": r.controllers_rss_mib,
            "host_writes_per_template": r.writes_per_template,
            "host_409s_per_template": r.conflicts_per_template,
        }));
    }
    harness::record("propagation", &json!(results), &table);
}
