//! End-to-end tests of the detector's policy features beyond first matching
//! (issue 9): preemption (`PropagationPolicyPreemption`), `activationPreference:
//! Lazy`, and `schedulePriority` from a PriorityClass
//! (`PriorityBasedScheduling`), on `flotilla up` with two members, through
//! kubectl only.

use std::time::Duration;

use flotilla_tests::manifests;
use flotilla_tests::up::{Up, WAIT, wait_for};
use serde_json::Value;

fn deployment(name: &str, extra_label: &str) -> String {
    manifests::deployment(
        name,
        1,
        &format!("registry.example/team/{name}:1.0"),
        extra_label,
    )
}

/// A PropagationPolicy selecting Deployment `target` by name, to `cluster`.
fn policy(name: &str, target: &str, cluster: &str, extra_spec: &str) -> String {
    manifests::policy(name, target, &[cluster], extra_spec)
}

/// Which members hold Deployment `name`.
fn holders(up: &Up, name: &str) -> Result<Vec<String>, String> {
    let mut out = Vec::new();
    for i in 1..=up.members {
        let member = format!("member{i}");
        if up.get_json(&member, &["deploy", name])?.is_some() {
            out.push(member);
        }
    }
    Ok(out)
}

fn wait_holders(up: &Up, name: &str, want: &[&str]) {
    wait_for(WAIT, &format!("deployment {name} only in {want:?}"), || {
        let got = holders(up, name)?;
        if got == want {
            Ok(())
        } else {
            Err(format!("in {got:?}"))
        }
    });
}

/// The policy named in the template's claim annotation.
fn claimed_by(up: &Up, name: &str) -> Result<String, String> {
    let d = up
        .get_json("flotilla", &["deploy", name])?
        .ok_or("no template")?;
    Ok(
        d.pointer("/metadata/annotations/propagationpolicy.karmada.io~1name")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string(),
    )
}

#[test]
fn preemption_moves_a_template_to_the_higher_policy_when_enabled() {
    let up = Up::start_with(2, &["--feature-gates=PropagationPolicyPreemption=true"]);
    up.apply("web", &deployment("web", ""));
    up.apply("low", &policy("low", "web", "member1", "  priority: 1\n"));
    wait_holders(&up, "web", &["member1"]);

    // Higher priority but preemption Never: the claim stays.
    up.apply(
        "never",
        &policy(
            "never",
            "web",
            "member2",
            "  priority: 9\n  preemption: Never\n",
        ),
    );
    // A preempting policy of equal priority is not enough either.
    up.apply(
        "equal",
        &policy(
            "equal",
            "web",
            "member2",
            "  priority: 1\n  preemption: Always\n",
        ),
    );
    // Only this one outranks the claim and asks to preempt.
    up.apply(
        "high",
        &policy(
            "high",
            "web",
            "member2",
            "  priority: 5\n  preemption: Always\n",
        ),
    );
    wait_holders(&up, "web", &["member2"]);
    assert_eq!(claimed_by(&up, "web").expect("template"), "high");
    let binding = up
        .get_json("flotilla", &["resourcebinding", "web-deployment"])
        .expect("get")
        .expect("binding");
    assert_eq!(
        binding
            .pointer("/metadata/annotations/propagationpolicy.karmada.io~1name")
            .and_then(Value::as_str),
        Some("high")
    );
    let events = up.k_ok(&[
        "get",
        "events",
        "--field-selector",
        "reason=PreemptPolicySucceed",
        "-o",
        "jsonpath={.items[*].message}",
    ]);
    assert!(
        events
            .contains("Propagation policy(default/high) preempted propagation policy(default/low)"),
        "{events}"
    );
    // The preempted policy may be deleted without touching the workload.
    up.k_ok(&["delete", "propagationpolicy", "low"]);
    wait_holders(&up, "web", &["member2"]);
}

#[test]
fn preemption_is_off_without_the_gate_and_lazy_waits_for_the_template() {
    let up = Up::start(2);
    // Preemption needs the gate (alpha, off by default, as in Karmada).
    up.apply("api", &deployment("api", ""));
    up.apply("api-low", &policy("api-low", "api", "member1", ""));
    wait_holders(&up, "api", &["member1"]);
    up.apply(
        "api-high",
        &policy(
            "api-high",
            "api",
            "member2",
            "  priority: 5\n  preemption: Always\n",
        ),
    );

    // Lazy: a policy change waits for the template's own next change.
    up.apply("jobs", &deployment("jobs", ""));
    let lazy = |cluster: &str| {
        policy(
            "jobs-lazy",
            "jobs",
            cluster,
            "  activationPreference: Lazy\n",
        )
    };
    up.apply("jobs-lazy", &lazy("member1"));
    wait_holders(&up, "jobs", &["member1"]);
    up.apply("jobs-lazy", &lazy("member2"));
    // Give the detector and the rest of the pipeline a fair chance to act
    // on the policy change (they do not), then check nothing moved — for
    // the lazy template and for the unpreempted one.
    std::thread::sleep(Duration::from_secs(3));
    assert_eq!(holders(&up, "jobs").expect("members"), ["member1"]);
    assert_eq!(holders(&up, "api").expect("members"), ["member1"]);
    assert_eq!(claimed_by(&up, "api").expect("template"), "api-low");
    // The template changes: now the policy's new placement applies.
    up.apply("jobs", &deployment("jobs", ", tier: batch"));
    wait_holders(&up, "jobs", &["member2"]);
}

#[test]
fn bindings_carry_the_priority_of_the_policy_priority_class() {
    let up = Up::start(2);
    let with_priority = |name: &str, target: &str, class: &str| {
        policy(
            name,
            target,
            "member1",
            &format!(
                "  schedulePriority:\n    priorityClassSource: KubePriorityClass\n    priorityClassName: {class}\n"
            ),
        )
    };
    up.apply(
        "urgent-class",
        "apiVersion: scheduling.k8s.io/v1\nkind: PriorityClass\nmetadata:\n  name: urgent\nvalue: 1000\ndescription: flotilla test\n",
    );
    assert!(
        up.k_ok(&["get", "priorityclasses"]).contains("urgent"),
        "PriorityClasses are served"
    );
    up.apply("pay", &deployment("pay", ""));
    up.apply("pay-policy", &with_priority("pay-policy", "pay", "urgent"));
    let priority = |binding: &str| -> Result<i64, String> {
        let b = up
            .get_json("flotilla", &["resourcebinding", binding])?
            .ok_or("no binding yet")?;
        b.pointer("/spec/schedulePriority/priority")
            .and_then(Value::as_i64)
            .ok_or_else(|| format!("spec {}", b["spec"]))
    };
    let got = wait_for(WAIT, "binding with the class's priority", || {
        priority("pay-deployment")
    });
    assert_eq!(got, 1000);
    wait_holders(&up, "pay", &["member1"]);

    // A class that does not exist yet holds the binding back until it does.
    up.apply("late", &deployment("late", ""));
    up.apply(
        "late-policy",
        &with_priority("late-policy", "late", "later"),
    );
    std::thread::sleep(Duration::from_secs(2));
    assert!(
        up.get_json("flotilla", &["resourcebinding", "late-deployment"])
            .expect("get")
            .is_none(),
        "no binding while the PriorityClass is missing"
    );
    up.apply(
        "later-class",
        "apiVersion: scheduling.k8s.io/v1\nkind: PriorityClass\nmetadata:\n  name: later\nvalue: -5\n",
    );
    let got = wait_for(WAIT, "binding once the class exists", || {
        priority("late-deployment")
    });
    assert_eq!(got, -5);
    wait_holders(&up, "late", &["member1"]);
}

/// A PropagationPolicy for the Deployments labelled `tier: TIER`, to member1,
/// scheduled at the priority of PriorityClass `class`.
fn tier_policy(tier: &str, class: &str) -> String {
    format!(
        r#"apiVersion: policy.karmada.io/v1alpha1
kind: PropagationPolicy
metadata:
  name: {tier}-tier
spec:
  resourceSelectors:
    - apiVersion: apps/v1
      kind: Deployment
      labelSelector:
        matchLabels: {{tier: {tier}}}
  placement:
    clusterAffinity:
      clusterNames: [member1]
  schedulePriority:
    priorityClassSource: KubePriorityClass
    priorityClassName: {class}
"#
    )
}

#[test]
fn the_scheduler_takes_higher_priority_bindings_first() {
    // the controllers run without the scheduler: bindings pile up unscheduled
    let up = Up::start_with(2, &["--controllers=*,-scheduler"]);
    up.apply(
        "classes",
        "apiVersion: scheduling.k8s.io/v1\nkind: PriorityClass\nmetadata:\n  name: batch\nvalue: 10\n---\napiVersion: scheduling.k8s.io/v1\nkind: PriorityClass\nmetadata:\n  name: critical\nvalue: 100000\n",
    );
    up.apply("low-tier", &tier_policy("low", "batch"));
    up.apply("high-tier", &tier_policy("high", "critical"));
    const N: usize = 8;
    // the low-priority templates first, and named to sort first, so that
    // neither creation order nor list order would schedule the high ones first
    for i in 0..N {
        let name = format!("batch-{i}");
        up.apply(&name, &deployment(&name, ", tier: low"));
    }
    for i in 0..N {
        let name = format!("critical-{i}");
        up.apply(&name, &deployment(&name, ", tier: high"));
    }
    wait_for(
        WAIT,
        "every binding, with its priority, unscheduled",
        || {
            let list = up
                .get_json("flotilla", &["resourcebindings"])?
                .ok_or("no list")?;
            let items = list["items"].as_array().cloned().unwrap_or_default();
            let with_priority = items
                .iter()
                .filter(|b| b.pointer("/spec/schedulePriority/priority").is_some())
                .count();
            let scheduled = items
                .iter()
                .filter(|b| b.pointer("/spec/clusters/0").is_some())
                .count();
            if scheduled > 0 {
                return Err(format!("{scheduled} scheduled without a scheduler"));
            }
            if with_priority == 2 * N {
                Ok(())
            } else {
                Err(format!("{with_priority} of {} bindings", 2 * N))
            }
        },
    );
    // every change of the bindings from now on, in the order of the writes
    let kubeconfig = up.kubeconfig();
    let mut watch = flotilla_tests::up::Proc::spawn(
        "kubectl-watch-rb",
        up.kubectl().arg("--kubeconfig").arg(&kubeconfig).args([
            "--context",
            "flotilla",
            "get",
            "resourcebindings",
            "--watch",
            "-o",
            r#"jsonpath={.metadata.name} {.spec.clusters[0].name}{"\n"}"#,
        ]),
        &up.logs(),
    );
    watch.wait_stdout("critical-", WAIT);
    // the scheduler starts, in a controller manager of its own, scheduling
    let mut scheduler = flotilla_tests::up::Proc::spawn(
        "scheduler",
        std::process::Command::new(flotilla_tests::flotilla_bin())
            .arg("controller-manager")
            .arg("--kubeconfig")
            .arg(&kubeconfig)
            .args([
                "--context",
                "flotilla",
                "--controllers=scheduler",
                // one binding at a time, as Karmada's scheduler: the order
                // of the writes is the order of the queue
                "--concurrent-schedule-syncs=1",
                "--leader-elect=false",
                "--metrics-bind-address=127.0.0.1:0",
            ]),
        &up.logs(),
    );
    let order = wait_for(WAIT, "every binding scheduled", || {
        scheduler.assert_running();
        let mut order: Vec<String> = Vec::new();
        for line in watch.out().lines() {
            let mut words = line.split_whitespace();
            let (Some(name), Some(_cluster)) = (words.next(), words.next()) else {
                continue;
            };
            if !order.iter().any(|n| n == name) {
                order.push(name.to_string());
            }
        }
        if order.len() == 2 * N {
            Ok(order)
        } else {
            Err(format!("scheduled so far: {order:?}"))
        }
    });
    scheduler.kill();
    watch.kill();
    eprintln!("scheduling order: {order:?}");
    // Every high-priority binding goes before every low-priority one, except
    // perhaps a low binding or two whose reconcile found the scheduler idle
    // and took a turn before the others queued up (by arrival order alone,
    // the 8 low ones, created first and listed first, would go first).
    let last_high = order
        .iter()
        .rposition(|n| n.starts_with("critical-"))
        .expect("high bindings");
    let low_before = order[..last_high]
        .iter()
        .filter(|n| n.starts_with("batch-"))
        .count();
    assert!(
        low_before <= 2,
        "{low_before} low-priority bindings were scheduled before the last high-priority one: {order:?}"
    );
    // and the deployments reach the member
    wait_holders(&up, "critical-0", &["member1"]);
    wait_holders(&up, "batch-0", &["member1"]);
}
