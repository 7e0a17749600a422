//! End-to-end tests of HPA distribution (issue 12, "Acceptance"): `flotilla
//! up` with two simulated members, driven by kubectl only. Pod CPU usage is
//! set with the simulated members' `sim.flotilla.io/cpu-usage` annotation on
//! the Deployment template (propagated to the members, or changed for one
//! member with an OverridePolicy); every pod requests 100m, so `50m` is 50%.
//!
//! Every wait is bounded; every process is killed by PID when its guard drops.

use std::time::{Duration, Instant};

use flotilla_tests::up::{Up, WAIT, wait_for};
use serde_json::Value;

fn apply(up: &Up, name: &str, yaml: &str) -> String {
    up.apply(name, yaml)
}

/// Applies `yaml`, expecting a rejection; kubectl's stderr.
fn apply_rejected(up: &Up, name: &str, yaml: &str) -> String {
    let path = up.dir.parent().expect("tmp").join(format!("{name}.yaml"));
    std::fs::write(&path, yaml).expect("write manifest");
    let (code, out, err) = up.k(&["apply", "-f", path.to_str().expect("utf-8 path")]);
    assert_ne!(code, 0, "{name} was accepted: {out}");
    err
}

/// `kubectl get ARGS -o json` in `context`.
fn get(up: &Up, context: &str, args: &[&str]) -> Result<Value, String> {
    let mut full = vec!["--context", context, "get"];
    full.extend_from_slice(args);
    full.extend_from_slice(&["-o", "json"]);
    let (code, out, err) = up.k(&full);
    if code != 0 {
        return Err(err);
    }
    serde_json::from_str(&out).map_err(|e| format!("{e}: {out}"))
}

fn i64_at(v: &Value, pointer: &str) -> Option<i64> {
    v.pointer(pointer).and_then(Value::as_i64)
}

/// `spec.replicas` of Deployment `name` in member1 and member2.
fn member_replicas(up: &Up, name: &str) -> Result<Vec<i64>, String> {
    (1..=2)
        .map(|i| {
            get(up, &format!("member{i}"), &["deploy", name])
                .map(|d| i64_at(&d, "/spec/replicas").unwrap_or(1))
        })
        .collect()
}

fn template_replicas(up: &Up, name: &str) -> Result<i64, String> {
    get(up, "flotilla", &["deploy", name]).map(|d| i64_at(&d, "/spec/replicas").unwrap_or(1))
}

fn condition<'a>(status: &'a Value, type_: &str) -> Option<&'a Value> {
    status
        .get("conditions")?
        .as_array()?
        .iter()
        .find(|c| c["type"] == type_)
}

/// A Deployment of `replicas` pods requesting 100m CPU each, using `usage`.
fn deployment(name: &str, replicas: i64, usage: &str) -> String {
    format!(
        r#"apiVersion: apps/v1
kind: Deployment
metadata:
  name: {name}
  labels: {{app: {name}}}
  annotations:
    sim.flotilla.io/cpu-usage: "{usage}"
spec:
  replicas: {replicas}
  selector:
    matchLabels: {{app: {name}}}
  template:
    metadata:
      labels: {{app: {name}}}
    spec:
      containers:
        - name: main
          image: registry.example/team/{name}:1.0
          resources:
            requests: {{cpu: 100m, memory: 64Mi}}
"#
    )
}

/// Divides the Deployment's replicas 1:1 over member1 and member2.
fn divided_policy(name: &str) -> String {
    format!(
        r#"apiVersion: policy.karmada.io/v1alpha1
kind: PropagationPolicy
metadata:
  name: {name}
spec:
  resourceSelectors:
    - {{apiVersion: apps/v1, kind: Deployment, name: {name}}}
  placement:
    clusterAffinity:
      clusterNames: [member1, member2]
    replicaScheduling:
      replicaSchedulingType: Divided
      replicaDivisionPreference: Weighted
      weightPreference:
        staticWeightList:
          - targetCluster: {{clusterNames: [member1]}}
            weight: 1
          - targetCluster: {{clusterNames: [member2]}}
            weight: 1
"#
    )
}

fn annotate_usage(up: &Up, name: &str, usage: &str) {
    up.k_ok(&[
        "annotate",
        "deploy",
        name,
        &format!("sim.flotilla.io/cpu-usage={usage}"),
        "--overwrite",
    ]);
}

fn fhpa(up: &Up) -> Result<Value, String> {
    get(up, "flotilla", &["federatedhpa", "web"])
}

#[test]
fn federated_hpa_scales_the_template_from_member_metrics() {
    let up = Up::start(2);
    apply(
        &up,
        "web",
        &format!(
            "{}---\n{}---\n{}",
            deployment("web", 4, "50m"),
            divided_policy("web"),
            r#"apiVersion: autoscaling.karmada.io/v1alpha1
kind: FederatedHPA
metadata:
  name: web
spec:
  scaleTargetRef: {apiVersion: apps/v1, kind: Deployment, name: web}
  minReplicas: 1
  maxReplicas: 6
  metrics:
    - type: Resource
      resource:
        name: cpu
        target: {type: Utilization, averageUtilization: 50}
  behavior:
    scaleDown:
      stabilizationWindowSeconds: 10
"#
        ),
    );
    wait_for(WAIT, "web divided 2:2", || {
        let got = member_replicas(&up, "web")?;
        (got == [2, 2]).then_some(()).ok_or(format!("{got:?}"))
    });
    // at the target: the metric is read from both members and nothing moves
    wait_for(WAIT, "FederatedHPA reading 50% over 4 pods", || {
        let h = fhpa(&up)?;
        let st = &h["status"];
        let util = i64_at(st, "/currentMetrics/0/resource/current/averageUtilization");
        let active = condition(st, "ScalingActive").map(|c| c["status"].clone());
        if util == Some(50)
            && active == Some("True".into())
            && i64_at(st, "/desiredReplicas") == Some(4)
        {
            Ok(())
        } else {
            Err(st.to_string())
        }
    });
    assert_eq!(template_replicas(&up, "web"), Ok(4));

    // 100%: ratio 2 asks for 8, capped by maxReplicas 6; members follow 3:3
    annotate_usage(&up, "web", "100m");
    wait_for(WAIT, "template scaled to maxReplicas 6", || {
        let r = template_replicas(&up, "web")?;
        (r == 6)
            .then_some(())
            .ok_or(format!("{r}; {}", fhpa(&up)?["status"]))
    });
    wait_for(WAIT, "members at 3:3", || {
        let got = member_replicas(&up, "web")?;
        (got == [3, 3]).then_some(()).ok_or(format!("{got:?}"))
    });
    wait_for(WAIT, "status limited by maxReplicas", || {
        let h = fhpa(&up)?;
        let st = &h["status"];
        let limited = condition(st, "ScalingLimited").cloned().unwrap_or_default();
        if limited["status"] == "True"
            && limited["reason"] == "TooManyReplicas"
            && st.get("lastScaleTime").is_some()
            && i64_at(st, "/desiredReplicas") == Some(6)
        {
            Ok(())
        } else {
            Err(st.to_string())
        }
    });
    let events = up.k_ok(&[
        "get",
        "events",
        "--field-selector",
        "involvedObject.kind=FederatedHPA,involvedObject.name=web",
        "-o",
        "json",
    ]);
    assert!(
        events.contains("SuccessfulRescale") && events.contains("New size: 6"),
        "{events}"
    );

    // 40%: 0.8 × 6 asks for 5, but the 6 recommended within the last 10 s
    // holds the count until the window passes; then 5 and, with 0.8 × 5 = 4, 4
    annotate_usage(&up, "web", "40m");
    let lowered = Instant::now();
    wait_for(WAIT, "scale-down held by the stabilization window", || {
        let h = fhpa(&up)?;
        let able = condition(&h["status"], "AbleToScale")
            .cloned()
            .unwrap_or_default();
        (able["reason"] == "ScaleDownStabilized")
            .then_some(())
            .ok_or(h["status"].to_string())
    });
    assert_eq!(template_replicas(&up, "web"), Ok(6));
    wait_for(Duration::from_secs(90), "template scaled down to 4", || {
        let r = template_replicas(&up, "web")?;
        (r == 4)
            .then_some(())
            .ok_or(format!("{r}; {}", fhpa(&up)?["status"]))
    });
    assert!(
        lowered.elapsed() >= Duration::from_secs(10),
        "scaled down before the 10 s stabilization window: {:?}",
        lowered.elapsed()
    );
    wait_for(WAIT, "members back at 2:2", || {
        let got = member_replicas(&up, "web")?;
        (got == [2, 2]).then_some(()).ok_or(format!("{got:?}"))
    });
}

#[test]
fn cron_federated_hpa_rule_sets_min_replicas_and_records_history() {
    let up = Up::start(2);
    apply(
        &up,
        "cron",
        &format!(
            "{}---\n{}---\n{}---\n{}",
            deployment("web", 2, "50m"),
            deployment("batch", 1, "10m"),
            divided_policy("web"),
            r#"apiVersion: autoscaling.karmada.io/v1alpha1
kind: FederatedHPA
metadata:
  name: web
spec:
  scaleTargetRef: {apiVersion: apps/v1, kind: Deployment, name: web}
  minReplicas: 1
  maxReplicas: 8
  metrics:
    - type: Resource
      resource:
        name: cpu
        target: {type: Utilization, averageUtilization: 50}
---
apiVersion: autoscaling.karmada.io/v1alpha1
kind: CronFederatedHPA
metadata:
  name: web-cron
spec:
  scaleTargetRef: {apiVersion: autoscaling.karmada.io/v1alpha1, kind: FederatedHPA, name: web}
  rules:
    - name: every-minute
      schedule: "* * * * *"
      timeZone: Asia/Shanghai
      targetMinReplicas: 4
      successfulHistoryLimit: 2
---
apiVersion: autoscaling.karmada.io/v1alpha1
kind: CronFederatedHPA
metadata:
  name: batch-cron
spec:
  scaleTargetRef: {apiVersion: apps/v1, kind: Deployment, name: batch}
  rules:
    - name: every-minute
      schedule: "*/1 * * * *"
      targetReplicas: 3
---
apiVersion: autoscaling.karmada.io/v1alpha1
kind: CronFederatedHPA
metadata:
  name: ghost-cron
spec:
  scaleTargetRef: {apiVersion: autoscaling.karmada.io/v1alpha1, kind: FederatedHPA, name: ghost}
  rules:
    - name: every-minute
      schedule: "@always"
      targetMaxReplicas: 3
"#
        ),
    );
    wait_for(WAIT, "the rule's next run in status", || {
        let c = get(&up, "flotilla", &["cronfederatedhpa", "web-cron"])?;
        let h = &c["status"]["executionHistories"][0];
        (h["ruleName"] == "every-minute" && h["nextExecutionTime"].is_string())
            .then_some(())
            .ok_or(c["status"].to_string())
    });
    // the rule runs at the next minute boundary
    let run = wait_for(Duration::from_secs(75), "a successful run", || {
        let c = get(&up, "flotilla", &["cronfederatedhpa", "web-cron"])?;
        let h = c["status"]["executionHistories"][0].clone();
        h["successfulExecutions"][0]
            .is_object()
            .then_some(h)
            .ok_or(c["status"].to_string())
    });
    let s = &run["successfulExecutions"][0];
    assert_eq!(s["appliedMinReplicas"], 4, "{run}");
    let scheduled = s["scheduleTime"].as_str().expect("scheduleTime");
    assert!(scheduled.ends_with(":00Z"), "on a minute: {scheduled}");
    assert!(run["nextExecutionTime"].as_str() > Some(scheduled), "{run}");
    assert_eq!(
        i64_at(&fhpa(&up).expect("fhpa"), "/spec/minReplicas"),
        Some(4)
    );
    // the FederatedHPA brings the template up to its new minimum
    wait_for(WAIT, "template at minReplicas 4", || {
        let r = template_replicas(&up, "web")?;
        (r == 4).then_some(()).ok_or(format!("{r}"))
    });
    let events = up.k_ok(&[
        "get",
        "events",
        "--field-selector",
        "involvedObject.kind=CronFederatedHPA",
        "-o",
        "json",
    ]);
    assert!(events.contains("ScaleSucceeded"), "{events}");

    // a rule aimed at a workload sets its replicas
    let batch = wait_for(WAIT, "the batch rule's run", || {
        let c = get(&up, "flotilla", &["cronfederatedhpa", "batch-cron"])?;
        let h = c["status"]["executionHistories"][0].clone();
        h["successfulExecutions"][0]
            .is_object()
            .then_some(h)
            .ok_or(c["status"].to_string())
    });
    assert_eq!(
        batch["successfulExecutions"][0]["appliedReplicas"], 3,
        "{batch}"
    );
    assert_eq!(template_replicas(&up, "batch"), Ok(3));
    // a missing target is a failed run with the reason
    let ghost = wait_for(WAIT, "the ghost rule's failed run", || {
        let c = get(&up, "flotilla", &["cronfederatedhpa", "ghost-cron"])?;
        let h = c["status"]["executionHistories"][0].clone();
        h["failedExecutions"][0]
            .is_object()
            .then_some(h)
            .ok_or(c["status"].to_string())
    });
    assert_eq!(
        ghost["failedExecutions"][0]["message"], "FederatedHPA ghost not found",
        "{ghost}"
    );
}

#[test]
fn propagated_hpa_scales_each_member_and_the_template_shows_the_sum() {
    let up = Up::start(2);
    apply(
        &up,
        "hpa",
        &format!(
            "{}---\n{}---\n{}",
            deployment("web", 4, "50m"),
            divided_policy("web"),
            r#"apiVersion: autoscaling/v2
kind: HorizontalPodAutoscaler
metadata:
  name: web
spec:
  scaleTargetRef: {apiVersion: apps/v1, kind: Deployment, name: web}
  minReplicas: 1
  maxReplicas: 4
  metrics:
    - type: Resource
      resource:
        name: cpu
        target: {type: Utilization, averageUtilization: 50}
---
apiVersion: policy.karmada.io/v1alpha1
kind: PropagationPolicy
metadata:
  name: web-hpa
spec:
  resourceSelectors:
    - {apiVersion: autoscaling/v2, kind: HorizontalPodAutoscaler, name: web}
  placement:
    clusterAffinity:
      clusterNames: [member1, member2]
    replicaScheduling:
      replicaSchedulingType: Duplicated
"#
        ),
    );
    wait_for(WAIT, "web divided 2:2", || {
        let got = member_replicas(&up, "web")?;
        (got == [2, 2]).then_some(()).ok_or(format!("{got:?}"))
    });
    wait_for(WAIT, "the template marked retain-replicas", || {
        let d = get(&up, "flotilla", &["deploy", "web"])?;
        (d["metadata"]["labels"]["resourcetemplate.karmada.io/retain-replicas"] == "true")
            .then_some(())
            .ok_or(d["metadata"].to_string())
    });
    for m in ["member1", "member2"] {
        wait_for(WAIT, &format!("the same HPA in {m}"), || {
            let h = get(&up, m, &["hpa", "web"])?;
            (i64_at(&h, "/spec/maxReplicas") == Some(4))
                .then_some(())
                .ok_or(h.to_string())
        });
    }
    // member1's pods get busy (100% of their request): its HPA doubles them
    apply(
        &up,
        "busy-member1",
        r#"apiVersion: policy.karmada.io/v1alpha1
kind: OverridePolicy
metadata:
  name: busy-member1
spec:
  resourceSelectors:
    - {apiVersion: apps/v1, kind: Deployment, name: web}
  overrideRules:
    - targetCluster: {clusterNames: [member1]}
      overriders:
        annotationsOverrider:
          - operator: replace
            value: {sim.flotilla.io/cpu-usage: 100m}
"#,
    );
    wait_for(WAIT, "member1 scaled by its HPA to 4", || {
        let got = member_replicas(&up, "web")?;
        (got == [4, 2]).then_some(()).ok_or(format!("{got:?}"))
    });
    // the template's replicas become the members' sum
    wait_for(WAIT, "template spec.replicas 6", || {
        let r = template_replicas(&up, "web")?;
        (r == 6).then_some(()).ok_or(format!("{r}"))
    });
    // and the control plane does not push its 3:3 division onto the members
    let until = Instant::now() + Duration::from_secs(5);
    while Instant::now() < until {
        assert_eq!(member_replicas(&up, "web"), Ok(vec![4, 2]));
        std::thread::sleep(Duration::from_millis(500));
    }
    // the members' HPA statuses, summed into the template's
    wait_for(WAIT, "aggregated HPA status", || {
        let h = get(&up, "flotilla", &["hpa", "web"])?;
        let st = &h["status"];
        (i64_at(st, "/desiredReplicas") == Some(6) && i64_at(st, "/currentReplicas") == Some(6))
            .then_some(())
            .ok_or(st.to_string())
    });
    let m1 = get(&up, "member1", &["hpa", "web"]).expect("member1 hpa");
    let limited = condition(&m1["status"], "ScalingLimited")
        .cloned()
        .unwrap_or_default();
    assert_eq!(limited["reason"], "TooManyReplicas", "{}", m1["status"]);

    // deleting the HPA unmarks the template
    up.k_ok(&["delete", "hpa", "web"]);
    wait_for(WAIT, "retain-replicas label removed", || {
        let d = get(&up, "flotilla", &["deploy", "web"])?;
        d["metadata"]["labels"]
            .get("resourcetemplate.karmada.io/retain-replicas")
            .is_none()
            .then_some(())
            .ok_or(d["metadata"].to_string())
    });
}

#[test]
fn invalid_autoscalers_are_rejected_with_field_paths() {
    let up = Up::start(0);
    let err = apply_rejected(
        &up,
        "min-above-max",
        r#"apiVersion: autoscaling.karmada.io/v1alpha1
kind: FederatedHPA
metadata:
  name: bad
spec:
  scaleTargetRef: {apiVersion: apps/v1, kind: Deployment, name: web}
  minReplicas: 5
  maxReplicas: 2
"#,
    );
    assert!(
        err.contains("spec.maxReplicas") && err.contains("minReplicas"),
        "{err}"
    );
    let cron = |schedule: &str, tz: &str| {
        format!(
            r#"apiVersion: autoscaling.karmada.io/v1alpha1
kind: CronFederatedHPA
metadata:
  name: bad
spec:
  scaleTargetRef: {{apiVersion: apps/v1, kind: Deployment, name: web}}
  rules:
    - name: r
      schedule: "{schedule}"
      timeZone: {tz}
      targetReplicas: 2
"#
        )
    };
    let err = apply_rejected(&up, "bad-cron", &cron("61 * * * *", "UTC"));
    assert!(err.contains("spec.rules[0].schedule"), "{err}");
    let err = apply_rejected(&up, "bad-tz", &cron("0 * * * *", "Mars/Olympus_Mons"));
    assert!(
        err.contains("spec.rules[0].timeZone") && err.contains("Mars/Olympus_Mons"),
        "{err}"
    );
    // a valid one passes
    apply(&up, "good-cron", &cron("0 8 * * MON-FRI", "Europe/Paris"));
}
