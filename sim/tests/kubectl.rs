//! A simulated member through stock kubectl: `rollout status` finishes, `top`
//! reads the metrics API, `get` prints. Skipped when kubectl is not installed.

use std::time::Duration;

async fn kubectl(kubeconfig: &std::path::Path, args: &[&str]) -> (bool, String) {
    let output = tokio::time::timeout(
        Duration::from_secs(30),
        tokio::process::Command::new("kubectl")
            .arg("--kubeconfig")
            .arg(kubeconfig)
            .args(args)
            .output(),
    )
    .await
    .expect("kubectl finishes in time")
    .expect("kubectl runs");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    (output.status.success(), text)
}

const WORKLOADS: &str = r#"
apiVersion: apps/v1
kind: StatefulSet
metadata: {name: db}
spec:
  replicas: 2
  serviceName: db
  selector: {matchLabels: {app: db}}
  template:
    metadata: {labels: {app: db}}
    spec: {containers: [{name: db, image: postgres}]}
---
apiVersion: apps/v1
kind: DaemonSet
metadata: {name: agent}
spec:
  selector: {matchLabels: {app: agent}}
  template:
    metadata: {labels: {app: agent}}
    spec: {containers: [{name: agent, image: agent}]}
---
apiVersion: batch/v1
kind: Job
metadata: {name: once}
spec:
  template:
    spec:
      restartPolicy: Never
      containers: [{name: once, image: busybox}]
"#;

#[tokio::test]
async fn kubectl_rollout_status_and_top() {
    if std::process::Command::new("kubectl")
        .arg("version")
        .arg("--client")
        .output()
        .is_err()
    {
        eprintln!("kubectl not installed; skipping");
        return;
    }
    let _ = rustls::crypto::ring::default_provider().install_default();
    let dir = tempfile::tempdir().expect("tempdir");
    let member = flotilla_sim::start(flotilla_sim::Config::new("member1", dir.path()))
        .await
        .expect("member");
    let kc = member.kubeconfig().to_path_buf();
    let (ok, out) = kubectl(
        &kc,
        &[
            "create",
            "deployment",
            "web",
            "--image=nginx",
            "--replicas=3",
        ],
    )
    .await;
    assert!(ok, "{out}");
    let (ok, out) = kubectl(
        &kc,
        &["rollout", "status", "deployment/web", "--timeout=20s"],
    )
    .await;
    assert!(ok && out.contains("successfully rolled out"), "{out}");
    let (ok, out) = kubectl(&kc, &["get", "deployment", "web"]).await;
    assert!(ok && out.contains("3/3"), "{out}");
    let (ok, out) = kubectl(&kc, &["get", "nodes"]).await;
    assert!(
        ok && out.contains("member1-node-0") && out.contains("Ready"),
        "{out}"
    );
    let mut top = String::new();
    for _ in 0..100 {
        let (ok, out) = kubectl(&kc, &["top", "pods"]).await;
        top = out;
        if ok && top.lines().count() == 4 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(top.contains("web-") && top.contains("10m"), "{top}");
    for args in [
        &["get", "pods", "-o", "wide"][..],
        &["get", "rs,endpointslices,deploy"][..],
        &["describe", "deployment", "web"][..],
    ] {
        eprintln!(
            "$ kubectl {}\n{}",
            args.join(" "),
            kubectl(&kc, args).await.1
        );
    }
    eprintln!("$ kubectl top pods\n{top}");
    let manifests = dir.path().join("workloads.yaml");
    std::fs::write(&manifests, WORKLOADS).expect("manifests");
    let (ok, out) = kubectl(&kc, &["apply", "-f", &manifests.display().to_string()]).await;
    assert!(ok, "{out}");
    for target in ["statefulset/db", "daemonset/agent"] {
        let (ok, out) = kubectl(&kc, &["rollout", "status", target, "--timeout=20s"]).await;
        assert!(ok, "{target}: {out}");
    }
    let (ok, out) = kubectl(
        &kc,
        &[
            "wait",
            "--for=condition=complete",
            "job/once",
            "--timeout=20s",
        ],
    )
    .await;
    assert!(ok && out.contains("condition met"), "{out}");
    let (ok, out) = kubectl(&kc, &["top", "nodes"]).await;
    eprintln!("$ kubectl top nodes\n{out}");
    assert!(ok && out.contains("member1-node-0"), "{out}");
    member.stop().await;
}
