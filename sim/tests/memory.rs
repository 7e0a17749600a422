//! Memory of idle simulated members: RSS growth per member, measured over ten
//! that have each answered discovery and a list of nodes and pods.
//! Ignored by default (it measures, and release builds are what count):
//! `cargo test --release -p flotilla-sim --test memory -- --ignored --nocapture`.

use std::time::Duration;

fn rss_bytes() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|kb| kb.parse::<u64>().ok())
        })
        .map_or(0, |kb| kb * 1024)
}

#[tokio::test(flavor = "multi_thread")]
#[ignore = "measurement; run explicitly"]
async fn idle_member_memory() {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let dir = tempfile::tempdir().expect("tempdir");
    let first = flotilla_sim::start(flotilla_sim::Config::new("m0", dir.path().join("m0")))
        .await
        .expect("member");
    tokio::time::sleep(Duration::from_millis(500)).await;
    let before = rss_bytes();
    let n = 10;
    let mut members = vec![first];
    let started = std::time::Instant::now();
    for i in 1..=n {
        let name = format!("m{i}");
        members.push(
            flotilla_sim::start(flotilla_sim::Config::new(&name, dir.path().join(&name)))
                .await
                .expect("member"),
        );
    }
    println!("started {n} members in {:?}", started.elapsed());
    // As the cluster status controller does: discovery, nodes and pods.
    for m in &members {
        let kubeconfig = kube::config::Kubeconfig::read_from(m.kubeconfig()).expect("kubeconfig");
        let config = kube::Config::from_custom_kubeconfig(kubeconfig, &Default::default())
            .await
            .expect("config");
        let client = kube::Client::try_from(config).expect("client");
        client.list_api_groups().await.expect("discovery");
        client.list_core_api_versions().await.expect("discovery");
        let nodes: kube::Api<k8s_openapi::api::core::v1::Node> = kube::Api::all(client.clone());
        nodes.list(&Default::default()).await.expect("nodes");
        let pods: kube::Api<k8s_openapi::api::core::v1::Pod> = kube::Api::all(client);
        pods.list(&Default::default()).await.expect("pods");
    }
    tokio::time::sleep(Duration::from_secs(1)).await;
    let after = rss_bytes();
    let per = (after.saturating_sub(before)) as f64 / n as f64 / (1024.0 * 1024.0);
    println!(
        "idle member: {per:.1} MiB RSS each (over {n}; total {:.1} MiB)",
        after as f64 / 1048576.0
    );
    for m in members {
        m.stop().await;
    }
    assert!(per < 20.0, "{per:.1} MiB per idle member");
}
