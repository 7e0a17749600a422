//! End-to-end test of namespace sync through Works (Karmada's `namespace`
//! controller): a namespace created on the control plane gets one Work per
//! cluster in `karmada-es-<cluster>`, which the execution controller applies
//! (the agent's, for a Pull member); labels follow; deleting the namespace
//! removes the Works and the member namespaces; skipped namespaces get no
//! Work; a member namespace that exists unmanaged is taken over only with
//! the overwrite annotation.
//!
//! Everything runs the real binary on 127.0.0.1, driven by kubectl. Every
//! process started here is killed by PID when its guard drops, and every wait
//! is bounded.

use std::time::{Duration, Instant};

use flotilla_tests::run;
use flotilla_tests::sim::Sim;
use flotilla_tests::up::{Up, WAIT, agent, wait_for};
use serde_json::Value;

/// The namespace Works for `ns` on the control plane, by execution namespace.
fn works_of(up: &Up, ns: &str) -> Result<Vec<(String, Value)>, String> {
    let list = up
        .get_json("flotilla", &["work", "-A"])?
        .ok_or("no work list")?;
    Ok(list["items"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|w| {
            let m = &w["spec"]["workload"]["manifests"][0];
            m["kind"] == "Namespace" && m["metadata"]["name"] == ns
        })
        .map(|w| {
            (
                w["metadata"]["namespace"]
                    .as_str()
                    .unwrap_or("")
                    .to_string(),
                w.clone(),
            )
        })
        .collect())
}

fn execution_spaces(works: &[(String, Value)]) -> Vec<&str> {
    let mut v: Vec<&str> = works.iter().map(|(s, _)| s.as_str()).collect();
    v.sort_unstable();
    v
}

/// The namespace `ns` in a member (context or the sim's kubeconfig), if present.
fn member_ns(up: &Up, member: &Member<'_>, ns: &str) -> Result<Option<Value>, String> {
    match member {
        Member::Context(ctx) => up.get_json(ctx, &["namespace", ns]),
        Member::Sim(sim) => {
            let (code, out, err) =
                run(sim.kubectl(up).args(["get", "namespace", ns, "-o", "json"]));
            if code == 0 {
                serde_json::from_str(&out)
                    .map(Some)
                    .map_err(|e| format!("{e}: {out}"))
            } else if err.contains("NotFound") || err.contains("not found") {
                Ok(None)
            } else {
                Err(err)
            }
        }
    }
}

enum Member<'a> {
    Context(&'a str),
    Sim(&'a Sim),
}

impl Member<'_> {
    fn name(&self) -> &str {
        match self {
            Member::Context(c) => c,
            Member::Sim(s) => &s.name,
        }
    }
}

fn label<'a>(obj: &'a Value, key: &str) -> Option<&'a str> {
    obj.pointer("/metadata/labels")?.get(key)?.as_str()
}

/// Waits until the member's namespace `ns` satisfies `pred`; returns it.
fn wait_member_ns(
    up: &Up,
    member: &Member<'_>,
    ns: &str,
    timeout: Duration,
    what: &str,
    pred: impl Fn(&Value) -> bool,
) -> Value {
    wait_for(
        timeout,
        &format!("namespace {ns} in {}: {what}", member.name()),
        || match member_ns(up, member, ns)? {
            Some(v) if v.pointer("/metadata/deletionTimestamp").is_none() && pred(&v) => Ok(v),
            Some(v) => Err(format!("labels {}", v["metadata"]["labels"])),
            None => Err("absent".into()),
        },
    )
}

fn wait_member_ns_gone(up: &Up, member: &Member<'_>, ns: &str, timeout: Duration) {
    wait_for(
        timeout,
        &format!("namespace {ns} gone from {}", member.name()),
        || match member_ns(up, member, ns)? {
            None => Ok(()),
            Some(v) => Err(format!(
                "still there (deletionTimestamp {})",
                v["metadata"]["deletionTimestamp"]
            )),
        },
    );
}

fn applied(work: &Value) -> Option<(String, String)> {
    work.pointer("/status/conditions")?
        .as_array()?
        .iter()
        .find(|c| c["type"] == "Applied")
        .map(|c| {
            (
                c["status"].as_str().unwrap_or("").to_string(),
                c["message"].as_str().unwrap_or("").to_string(),
            )
        })
}

#[test]
fn namespaces_reach_push_and_pull_members_through_works() {
    let up = Up::start(2);
    let base = up.dir.parent().expect("tmp").to_path_buf();
    let sim = Sim::start("pull1", &base);
    let push = [Member::Context("member1"), Member::Context("member2")];
    let pull = Member::Sim(&sim);

    // a skipped namespace, and a member namespace that exists unmanaged
    up.apply(
        "team-skip",
        "apiVersion: v1\nkind: Namespace\nmetadata:\n  name: team-skip\n  labels: {namespace.karmada.io/skip-auto-propagation: \"true\"}\n",
    );
    up.k_ok(&["--context", "member1", "create", "namespace", "team-y"]);

    // create → one Work per cluster, the namespace in every member
    let started = Instant::now();
    up.k_ok(&["create", "namespace", "team-x"]);
    let works = wait_for(WAIT, "Works of team-x in both execution spaces", || {
        let w = works_of(&up, "team-x")?;
        if execution_spaces(&w) == ["karmada-es-member1", "karmada-es-member2"] {
            Ok(w)
        } else {
            Err(format!("{:?}", execution_spaces(&w)))
        }
    });
    let table = up.k_ok(&["get", "work", "-A"]);
    for (space, w) in &works {
        let name = w["metadata"]["name"].as_str().expect("name");
        assert!(
            table
                .lines()
                .any(|l| l.starts_with(space.as_str()) && l.contains(name)),
            "kubectl get work -A lists {space}/{name}:\n{table}"
        );
        let owner = &w["metadata"]["ownerReferences"][0];
        assert_eq!(
            (&owner["kind"], &owner["name"], &owner["controller"]),
            (
                &Value::from("Namespace"),
                &Value::from("team-x"),
                &Value::from(true)
            ),
            "{w}"
        );
        assert!(
            w["metadata"]["finalizers"]
                .as_array()
                .is_some_and(|f| f.iter().any(|x| x == "karmada.io/execution-controller")),
            "{w}"
        );
    }
    assert_eq!(
        works[0].1["metadata"]["name"], works[1].1["metadata"]["name"],
        "the same Work name in every execution space"
    );
    for m in &push {
        wait_member_ns(&up, m, "team-x", WAIT, "managed", |v| {
            label(v, "karmada.io/managed") == Some("true")
        });
    }
    eprintln!("team-x reached 2 push members in {:?}", started.elapsed());

    // a cluster that joins later gets every namespace: the Pull member, through its agent
    let joined = Instant::now();
    let _agent = agent(&up, &sim);
    wait_for(WAIT * 2, "Work of team-x for pull1", || {
        let w = works_of(&up, "team-x")?;
        if execution_spaces(&w).contains(&"karmada-es-pull1") {
            Ok(())
        } else {
            Err(format!("{:?}", execution_spaces(&w)))
        }
    });
    wait_member_ns(&up, &pull, "team-x", WAIT * 2, "managed", |v| {
        label(v, "karmada.io/managed") == Some("true")
    });
    eprintln!(
        "team-x reached the pull member {:?} after its agent started",
        joined.elapsed()
    );

    // the skipped namespace has no Work and reaches no member
    let skip = works_of(&up, "team-skip").expect("works");
    assert!(skip.is_empty(), "team-skip has Works: {skip:?}");
    for m in push.iter().chain([&pull]) {
        assert!(
            member_ns(&up, m, "team-skip").expect("get").is_none(),
            "team-skip is not in {}",
            m.name()
        );
    }

    // a label added on the control plane reaches every member; a member-only label stays
    up.k_ok(&[
        "--context",
        "member1",
        "label",
        "namespace",
        "team-x",
        "local=kept",
    ]);
    up.k_ok(&["label", "namespace", "team-x", "tier=gold"]);
    for m in push.iter().chain([&pull]) {
        wait_member_ns(&up, m, "team-x", WAIT, "tier=gold", |v| {
            label(v, "tier") == Some("gold") && label(v, "karmada.io/managed") == Some("true")
        });
    }
    let m1 = member_ns(&up, &push[0], "team-x")
        .expect("get")
        .expect("team-x");
    assert_eq!(label(&m1, "local"), Some("kept"), "member-only label: {m1}");

    // a member namespace that existed unmanaged: the Work reports the conflict…
    up.k_ok(&["create", "namespace", "team-y"]);
    wait_member_ns(&up, &push[1], "team-y", WAIT, "managed", |v| {
        label(v, "karmada.io/managed") == Some("true")
    });
    wait_for(WAIT, "Applied=False on team-y's Work for member1", || {
        let w = works_of(&up, "team-y")?;
        let w = w
            .iter()
            .find(|(s, _)| s == "karmada-es-member1")
            .ok_or("no Work yet")?;
        match applied(&w.1) {
            Some((s, m)) if s == "False" && m.contains("conflict-resolution") => Ok(()),
            other => Err(format!("{other:?}")),
        }
    });
    let y = member_ns(&up, &push[0], "team-y")
        .expect("get")
        .expect("team-y");
    assert_eq!(label(&y, "karmada.io/managed"), None, "not taken over: {y}");
    // … until the namespace asks to overwrite
    up.k_ok(&[
        "annotate",
        "namespace",
        "team-y",
        "work.karmada.io/conflict-resolution=overwrite",
    ]);
    wait_member_ns(&up, &push[0], "team-y", WAIT, "taken over", |v| {
        label(v, "karmada.io/managed") == Some("true")
    });

    // deleting on the control plane removes the Works and the member namespaces
    up.k_ok(&["delete", "namespace", "team-x", "--wait=false"]);
    wait_for(WAIT, "Works of team-x gone", || {
        let w = works_of(&up, "team-x")?;
        if w.is_empty() {
            Ok(())
        } else {
            Err(format!("{:?}", execution_spaces(&w)))
        }
    });
    for m in push.iter().chain([&pull]) {
        wait_member_ns_gone(&up, m, "team-x", WAIT);
    }
}

/// A namespace labelled skip-auto-propagation after it was synced loses its
/// Works and leaves the members; a Work deleted by hand comes back.
#[test]
fn skipping_later_removes_and_deleted_works_come_back() {
    let up = Up::start(1);
    let member = Member::Context("member1");
    up.k_ok(&["create", "namespace", "team-z"]);
    let works = wait_for(WAIT, "Work of team-z", || {
        let w = works_of(&up, "team-z")?;
        if w.len() == 1 {
            Ok(w)
        } else {
            Err(format!("{:?}", execution_spaces(&w)))
        }
    });
    wait_member_ns(&up, &member, "team-z", WAIT, "managed", |v| {
        label(v, "karmada.io/managed") == Some("true")
    });
    let name = works[0].1["metadata"]["name"]
        .as_str()
        .expect("name")
        .to_string();
    let uid = works[0].1["metadata"]["uid"].clone();
    up.k_ok(&[
        "delete",
        "work",
        "-n",
        "karmada-es-member1",
        &name,
        "--wait=false",
    ]);
    wait_for(WAIT, "a new Work of team-z", || {
        let w = works_of(&up, "team-z")?;
        match w.first() {
            Some((_, w)) if w["metadata"]["uid"] != uid => Ok(()),
            _ => Err(format!("{:?}", execution_spaces(&w))),
        }
    });
    wait_member_ns(&up, &member, "team-z", WAIT, "managed", |v| {
        label(v, "karmada.io/managed") == Some("true")
    });

    up.k_ok(&[
        "label",
        "namespace",
        "team-z",
        "namespace.karmada.io/skip-auto-propagation=true",
    ]);
    wait_for(WAIT, "Works of team-z gone", || {
        let w = works_of(&up, "team-z")?;
        if w.is_empty() {
            Ok(())
        } else {
            Err(format!("{:?}", execution_spaces(&w)))
        }
    });
    wait_member_ns_gone(&up, &member, "team-z", WAIT);
}
