//! Leader election of `flotilla controller-manager`: two replicas against one
//! control plane, exactly one acts; when it is killed (SIGKILL, no release),
//! the other takes the Lease once it expires and propagation goes on. The
//! managers run with the identity `flotilla certs` issues and only the
//! control-plane RBAC of deploy/control-plane/rbac.yaml, so this also checks
//! that the controller manager's least-privilege role suffices.

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use flotilla_tests::sim::Sim;
use flotilla_tests::up::{Proc, Up, WAIT, agent_command, wait_for};
use flotilla_tests::{flotilla_bin, run};
use serde_json::Value;

const LEASE: &str = "karmada-controller-manager";
const PROPAGATION: &str = "detector,scheduler,binding,execution,workStatus,bindingStatus";

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// A plain HTTP GET of `http://addr/path` (the metrics listener), body only.
fn http_get(addr: &str, path: &str) -> Result<String, String> {
    let mut s = std::net::TcpStream::connect(addr).map_err(|e| format!("{addr}: {e}"))?;
    s.set_read_timeout(Some(Duration::from_secs(5)))
        .map_err(|e| e.to_string())?;
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )
    .map_err(|e| e.to_string())?;
    let mut text = String::new();
    s.read_to_string(&mut text).map_err(|e| e.to_string())?;
    let (head, body) = text.split_once("\r\n\r\n").ok_or("no HTTP body")?;
    if !head.starts_with("HTTP/1.1 200") {
        return Err(head.to_string());
    }
    Ok(body.to_string())
}

/// A controller manager and the address of its metrics listener.
struct Manager {
    proc: Proc,
    metrics: String,
}

const ELECTION: [&str; 3] = [
    "--leader-elect-lease-duration=5s",
    "--leader-elect-renew-deadline=4s",
    "--leader-elect-retry-period=500ms",
];

impl Manager {
    fn start(up: &Up, kubeconfig: &Path) -> Manager {
        Manager::spawn(
            up,
            "controller-manager",
            Command::new(flotilla_bin())
                .arg("controller-manager")
                .arg("--kubeconfig")
                .arg(kubeconfig)
                .arg("--metrics-bind-address=127.0.0.1:0")
                .arg(format!("--controllers={PROPAGATION}"))
                .args(ELECTION),
        )
    }

    /// `flotilla agent` for the simulated member `sim` (pull mode).
    fn agent(up: &Up, sim: &Sim) -> Manager {
        Manager::spawn(up, "agent", agent_command(up, sim).args(ELECTION))
    }

    fn spawn(up: &Up, what: &str, cmd: &mut Command) -> Manager {
        let mut proc = Proc::spawn(what, cmd, &up.logs());
        let metrics = wait_for(WAIT, "the metrics address", || {
            proc.assert_running();
            proc.err()
                .lines()
                .find_map(|l| l.strip_prefix("flotilla: metrics on http://"))
                .and_then(|rest| rest.strip_suffix("/metrics"))
                .map(str::to_string)
                .ok_or_else(|| "not yet".to_string())
        });
        Manager { proc, metrics }
    }

    fn scrape(&self) -> Result<String, String> {
        http_get(&self.metrics, "/metrics")
    }

    /// `leader_election_master_status{name="karmada-controller-manager"}`.
    fn master_status(&self) -> Result<i64, String> {
        self.master_status_of(LEASE)
    }

    /// `leader_election_master_status{name=LEASE}`.
    fn master_status_of(&self, lease: &str) -> Result<i64, String> {
        let text = self.scrape()?;
        text.lines()
            .find_map(|l| {
                l.strip_prefix(&format!(
                    "leader_election_master_status{{name=\"{lease}\"}} "
                ))
            })
            .and_then(|v| v.trim().parse().ok())
            .ok_or_else(|| format!("no master status in:\n{text}"))
    }

    /// Reconciles counted by the detector so far.
    fn detector_reconciles(&self) -> Result<i64, String> {
        let text = self.scrape()?;
        Ok(text
            .lines()
            .filter(|l| {
                l.starts_with("controller_runtime_reconcile_total{")
                    && l.contains("controller=\"detector\"")
            })
            .filter_map(|l| l.rsplit(' ').next()?.parse::<i64>().ok())
            .sum())
    }
}

fn lease(up: &Up) -> Result<Value, String> {
    let (code, out, err) = up.k(&["get", "lease", "-n", "karmada-system", LEASE, "-o", "json"]);
    if code != 0 {
        return Err(err);
    }
    serde_json::from_str(&out).map_err(|e| e.to_string())
}

fn workload(name: &str) -> String {
    format!(
        r#"apiVersion: apps/v1
kind: Deployment
metadata: {{name: {name}, labels: {{app: {name}}}}}
spec:
  replicas: 2
  selector: {{matchLabels: {{app: {name}}}}}
  template:
    metadata: {{labels: {{app: {name}}}}}
    spec:
      containers: [{{name: c, image: nginx}}]
---
apiVersion: policy.karmada.io/v1alpha1
kind: PropagationPolicy
metadata: {{name: {name}}}
spec:
  resourceSelectors: [{{apiVersion: apps/v1, kind: Deployment, name: {name}}}]
  placement:
    clusterAffinity: {{clusterNames: [member1, member2]}}
"#
    )
}

fn propagate(up: &Up, name: &str) {
    let path = up.dir.join(format!("{name}.yaml"));
    std::fs::write(&path, workload(name)).expect("write manifest");
    up.k_ok(&["apply", "-f", path.to_str().expect("path")]);
    for member in ["member1", "member2"] {
        wait_for(WAIT, &format!("{name} in {member}"), || {
            let (code, _, err) = up.k(&["--context", member, "get", "deploy", name]);
            if code == 0 { Ok(()) } else { Err(err) }
        });
    }
}

/// The controller manager's kubeconfig from `flotilla certs`, with a PKI
/// directory seeded with the control plane's CA (so the identity it issues
/// is trusted there), pointed at this control plane.
fn controller_manager_kubeconfig(up: &Up) -> PathBuf {
    let pki = up.dir.parent().expect("tmp").join("pki");
    std::fs::create_dir_all(pki.join("apiserver")).expect("pki dir");
    for f in ["ca.crt", "ca.key"] {
        std::fs::copy(
            up.dir.join("apiserver").join(f),
            pki.join("apiserver").join(f),
        )
        .expect("copy the CA");
    }
    let (code, out, err) = run(Command::new(flotilla_bin())
        .arg("certs")
        .arg("--pki-dir")
        .arg(&pki));
    assert_eq!(code, 0, "flotilla certs: {err}");
    let kc = pki
        .join("kubeconfigs")
        .join("controller-manager.kubeconfig");
    assert!(
        out.contains(&kc.display().to_string()),
        "flotilla certs lists {}:\n{out}",
        kc.display()
    );
    let server = up
        .k_ok(&[
            "config",
            "view",
            "--minify",
            "--context",
            "flotilla",
            "-o",
            "jsonpath={.clusters[0].cluster.server}",
        ])
        .trim()
        .to_string();
    let text = std::fs::read_to_string(&kc).expect("kubeconfig");
    let text = text
        .lines()
        .map(|l| {
            if l.trim_start().starts_with("server: ") {
                format!("    server: {server}")
            } else {
                l.to_string()
            }
        })
        .collect::<Vec<_>>()
        .join("\n");
    let out = pki.join("controller-manager-test.kubeconfig");
    std::fs::write(&out, text).expect("write kubeconfig");
    out
}

#[test]
fn one_controller_manager_leads_and_a_standby_takes_over_after_sigkill() {
    let up = Up::start_with(2, &["--controllers=cluster,clusterStatus,namespace"]);
    for f in [
        "deploy/control-plane/namespaces.yaml",
        "deploy/control-plane/rbac.yaml",
    ] {
        up.k_ok(&["apply", "-f", repo().join(f).to_str().expect("path")]);
    }
    let kubeconfig = controller_manager_kubeconfig(&up);
    // the identity has the role's rights and no more
    let can = |verb: &str, what: &str| {
        up.k(&[
            "auth",
            "can-i",
            verb,
            what,
            "--as",
            "system:karmada:controller-manager",
        ])
        .1
        .trim()
        .to_string()
    };
    assert_eq!(can("create", "works.work.karmada.io"), "yes");
    assert_eq!(
        can("create", "clusterroles.rbac.authorization.k8s.io"),
        "no"
    );
    assert_eq!(can("delete", "secrets"), "no");

    let mut managers = vec![
        Manager::start(&up, &kubeconfig),
        Manager::start(&up, &kubeconfig),
    ];
    // exactly one leads
    let leader = wait_for(WAIT, "one leader and one standby", || {
        let statuses: Vec<i64> = managers
            .iter_mut()
            .map(|m| {
                m.proc.assert_running();
                m.master_status()
            })
            .collect::<Result<_, _>>()?;
        match statuses.as_slice() {
            [1, 0] => Ok(0),
            [0, 1] => Ok(1),
            other => Err(format!("master status {other:?}")),
        }
    });
    let standby = 1 - leader;
    let first = lease(&up).expect("the Lease exists");
    let first_holder = first
        .pointer("/spec/holderIdentity")
        .and_then(Value::as_str)
        .expect("a holder")
        .to_string();
    assert_eq!(
        first
            .pointer("/spec/leaseDurationSeconds")
            .and_then(Value::as_i64),
        Some(5)
    );

    propagate(&up, "before-failover");
    assert!(
        managers[leader].detector_reconciles().expect("scrape") > 0,
        "the leader runs the detector"
    );
    assert_eq!(
        managers[standby].detector_reconciles().expect("scrape"),
        0,
        "the standby runs no controller"
    );
    assert_eq!(managers[standby].master_status(), Ok(0));

    // SIGKILL the leader: it cannot release the Lease
    let killed = managers.remove(leader);
    let mut killed_proc = killed.proc;
    killed_proc.kill();
    let kill_time = Instant::now();
    let survivor = &mut managers[0];
    wait_for(WAIT, "the standby to take the Lease", || {
        survivor.proc.assert_running();
        match survivor.master_status()? {
            1 => Ok(()),
            s => Err(format!("master status {s}")),
        }
    });
    let takeover = kill_time.elapsed();
    let after = lease(&up).expect("the Lease");
    let holder = after
        .pointer("/spec/holderIdentity")
        .and_then(Value::as_str)
        .unwrap_or_default();
    assert!(!holder.is_empty() && holder != first_holder, "{after}");
    assert_eq!(
        after
            .pointer("/spec/leaseTransitions")
            .and_then(Value::as_i64),
        Some(
            first
                .pointer("/spec/leaseTransitions")
                .and_then(Value::as_i64)
                .unwrap_or(0)
                + 1
        ),
        "{after}"
    );
    eprintln!("standby took over {takeover:?} after SIGKILL (lease duration 5s)");

    propagate(&up, "after-failover");
    survivor.proc.assert_running();
    assert!(survivor.detector_reconciles().expect("scrape") > 0);
}

#[test]
fn leader_election_flags_are_checked() {
    let (code, _, err) = run(Command::new(flotilla_bin()).args([
        "controller-manager",
        "--leader-elect-lease-duration=2s",
        "--leader-elect-renew-deadline=5s",
    ]));
    assert_ne!(code, 0);
    assert!(
        err.contains(
            "--leader-elect-lease-duration must be greater than --leader-elect-renew-deadline"
        ),
        "{err}"
    );
}

/// The waiting pair of candidates, as (leader, standby) indices.
fn one_leader(candidates: &mut [Manager], lease: &str) -> (usize, usize) {
    wait_for(WAIT, &format!("one leader of {lease}"), || {
        let statuses: Vec<i64> = candidates
            .iter_mut()
            .map(|m| {
                m.proc.assert_running();
                m.master_status_of(lease)
            })
            .collect::<Result<_, _>>()?;
        match statuses.as_slice() {
            [1, 0] => Ok((0, 1)),
            [0, 1] => Ok((1, 0)),
            other => Err(format!("master status {other:?}")),
        }
    })
}

fn in_member(up: &Up, sim: &Sim, name: &str) {
    wait_for(WAIT, &format!("{name} in {}", sim.name), || {
        let (code, _, err) = run(up
            .kubectl()
            .env("KUBECONFIG", sim.kubeconfig())
            .args(["get", "deploy", name]));
        if code == 0 { Ok(()) } else { Err(err) }
    });
}

fn pull_workload(up: &Up, cluster: &str, name: &str) {
    let yaml = workload(name).replace("[member1, member2]", &format!("[{cluster}]"));
    let path = up.dir.join(format!("{name}.yaml"));
    std::fs::write(&path, yaml).expect("write manifest");
    up.k_ok(&["apply", "-f", path.to_str().expect("path")]);
}

/// Two agents of one pull-mode member: one (the holder of
/// `karmada-agent-<cluster>`) registers it and applies its Works; after it
/// is killed the other takes over and Works keep reaching the member. A
/// clean stop (SIGTERM) releases the Lease.
#[test]
fn one_agent_of_a_pull_member_leads_and_a_standby_takes_over() {
    let up = Up::start(0);
    let base = up.dir.parent().expect("tmp").to_path_buf();
    let sim = Sim::start("pullha", &base);
    let lease_name = "karmada-agent-pullha";
    let mut agents = vec![Manager::agent(&up, &sim), Manager::agent(&up, &sim)];
    let (leader, _) = one_leader(&mut agents, lease_name);
    up.wait_cluster("pullha", WAIT, "Pull and Ready", |c| {
        c["spec"]["syncMode"] == "Pull"
            && c.pointer("/status/conditions")
                .and_then(Value::as_array)
                .is_some_and(|cs| {
                    cs.iter()
                        .any(|x| x["type"] == "Ready" && x["status"] == "True")
                })
    });
    pull_workload(&up, "pullha", "pull-before");
    in_member(&up, &sim, "pull-before");

    let mut killed = agents.remove(leader);
    killed.proc.kill();
    let survivor = &mut agents[0];
    wait_for(WAIT, "the standby agent to lead", || {
        survivor.proc.assert_running();
        match survivor.master_status_of(lease_name)? {
            1 => Ok(()),
            s => Err(format!("master status {s}")),
        }
    });
    pull_workload(&up, "pullha", "pull-after");
    in_member(&up, &sim, "pull-after");

    // a clean stop gives the Lease up at once
    survivor.proc.terminate(WAIT);
    let (code, out, err) = up.k(&[
        "get",
        "lease",
        "-n",
        "karmada-system",
        lease_name,
        "-o",
        "json",
    ]);
    assert_eq!(code, 0, "{err}");
    let lease: Value = serde_json::from_str(&out).expect("json");
    assert!(
        lease
            .pointer("/spec/holderIdentity")
            .is_none_or(|h| h == ""),
        "released: {lease}"
    );
}
