//! Fault tests with a misbehaving member (issue 15, "Fault tests"): a member
//! that answers slowly, and one that answers every request with an error.
//! `flotilla up` runs two well-behaved members; member3 is a separate
//! `flotilla sim` process whose faults are switched through its
//! `--faults-file` while it runs. Everything is checked through kubectl.

use flotilla_tests::manifests;
use flotilla_tests::sim::Sim;
use flotilla_tests::up::{Up, WAIT, wait_for};
use serde_json::Value;

fn deployment(name: &str, image: &str) -> String {
    manifests::deployment(name, 1, image, "")
}

/// Duplicated to all three members.
fn policy(name: &str) -> String {
    manifests::policy(name, name, &["member1", "member2", "member3"], "")
}

/// The image of Deployment `name` in `context` (None = absent).
fn image_in(up: &Up, sim: &Sim, context: &str, name: &str) -> Result<Option<String>, String> {
    let d = if context == "member3" {
        let out = sim
            .kubectl(up)
            .args(["get", "deploy", name, "-o", "json"])
            .output()
            .map_err(|e| e.to_string())?;
        if !out.status.success() {
            let err = String::from_utf8_lossy(&out.stderr).to_string();
            return if err.contains("NotFound") {
                Ok(None)
            } else {
                Err(err)
            };
        }
        Some(serde_json::from_slice::<Value>(&out.stdout).map_err(|e| e.to_string())?)
    } else {
        up.get_json(context, &["deploy", name])?
    };
    Ok(d.and_then(|d| {
        d.pointer("/spec/template/spec/containers/0/image")
            .and_then(Value::as_str)
            .map(str::to_string)
    }))
}

fn wait_image(up: &Up, sim: &Sim, contexts: &[&str], name: &str, image: &str) {
    wait_for(WAIT, &format!("{name} at {image} in {contexts:?}"), || {
        for c in contexts {
            let got = image_in(up, sim, c, name)?;
            if got.as_deref() != Some(image) {
                return Err(format!("{c}: {got:?}"));
            }
        }
        Ok(())
    });
}

/// Ready replicas in the template's aggregated status.
fn template_ready(up: &Up, name: &str) -> Result<i64, String> {
    let d = up
        .get_json("flotilla", &["deploy", name])?
        .ok_or("no template")?;
    Ok(d.pointer("/status/readyReplicas")
        .and_then(Value::as_i64)
        .unwrap_or(0))
}

fn ready_status(up: &Up, cluster: &str) -> Result<String, String> {
    let c = up.cluster(cluster)?;
    Ok(c.pointer("/status/conditions")
        .and_then(Value::as_array)
        .and_then(|cs| cs.iter().find(|c| c["type"] == "Ready"))
        .and_then(|c| c["status"].as_str())
        .unwrap_or("")
        .to_string())
}

fn start() -> (Up, Sim) {
    let up = Up::start(2);
    let base = up.dir.parent().expect("tmp").to_path_buf();
    let sim = Sim::start_with("member3", &base, true);
    sim.join(&up);
    up.wait_cluster("member3", WAIT, "Ready", |c| {
        c.pointer("/status/conditions")
            .and_then(Value::as_array)
            .is_some_and(|cs| {
                cs.iter()
                    .any(|c| c["type"] == "Ready" && c["status"] == "True")
            })
    });
    (up, sim)
}

#[test]
fn a_slow_member_gets_its_share_and_holds_nobody_back() {
    let (up, mut sim) = start();
    // Every chunk of traffic to and from member3 waits 300 ms each way: a
    // request takes about a second, a new TLS connection more.
    sim.set_faults("latency: 300ms\n");
    up.apply("web", &deployment("web", "web:1"));
    up.apply("web-policy", &policy("web"));
    wait_image(
        &up,
        &sim,
        &["member1", "member2", "member3"],
        "web",
        "web:1",
    );
    wait_for(
        WAIT,
        "template READY 3 across the members",
        || match template_ready(&up, "web")? {
            3 => Ok(()),
            n => Err(format!("{n} ready")),
        },
    );
    // An update reaches every member, the slow one too.
    up.apply("web", &deployment("web", "web:2"));
    wait_image(
        &up,
        &sim,
        &["member1", "member2", "member3"],
        "web",
        "web:2",
    );
    assert_eq!(ready_status(&up, "member3").expect("cluster"), "True");
    sim.set_faults("");
}

#[test]
fn a_failing_member_is_marked_not_ready_and_catches_up_after() {
    let (up, mut sim) = start();
    up.apply("api", &deployment("api", "api:1"));
    up.apply("api-policy", &policy("api"));
    wait_image(
        &up,
        &sim,
        &["member1", "member2", "member3"],
        "api",
        "api:1",
    );

    // member3 answers every request with 503.
    sim.set_faults("failing: true\n");
    wait_for(WAIT, "member3 Ready=False", || {
        match ready_status(&up, "member3")?.as_str() {
            "False" | "Unknown" => Ok(()),
            s => Err(format!("Ready={s}")),
        }
    });
    // The others take a template change; member3's placement stays (failover
    // is off by default).
    up.apply("api", &deployment("api", "api:2"));
    wait_image(&up, &sim, &["member1", "member2"], "api", "api:2");
    let binding = up
        .get_json("flotilla", &["resourcebinding", "api-deployment"])
        .expect("get")
        .expect("binding");
    let clusters: Vec<&str> = binding
        .pointer("/spec/clusters")
        .and_then(Value::as_array)
        .map(|cs| cs.iter().filter_map(|c| c["name"].as_str()).collect())
        .unwrap_or_default();
    assert_eq!(clusters, ["member1", "member2", "member3"]);

    // Back to health: the change held back reaches member3, nothing lost.
    sim.set_faults("failing: false\n");
    wait_for(WAIT, "member3 Ready=True", || {
        match ready_status(&up, "member3")?.as_str() {
            "True" => Ok(()),
            s => Err(format!("Ready={s}")),
        }
    });
    wait_image(
        &up,
        &sim,
        &["member1", "member2", "member3"],
        "api",
        "api:2",
    );
    wait_for(WAIT, "template READY 3 again", || {
        match template_ready(&up, "api")? {
            3 => Ok(()),
            n => Err(format!("{n} ready")),
        }
    });
}
