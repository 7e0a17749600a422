use super::*;
use k8s_openapi::api::autoscaling::v2::HPAScalingPolicy;

fn pod(key: &str, usage: Option<i64>, request: i64) -> PodSample {
    PodSample {
        key: key.into(),
        phase: "Running".into(),
        ready: true,
        deleting: false,
        request_milli: Some(request),
        usage_milli: usage,
    }
}

fn ok(current: i32, target: Target, pods: &[PodSample]) -> Proposal {
    resource_replicas(current, "cpu", target, pods, DEFAULT_TOLERANCE).unwrap()
}

#[test]
fn utilization_scales_by_ratio() {
    // 4 pods at 100% of a 50% target: ratio 2, 8 replicas
    let pods: Vec<_> = (0..4)
        .map(|i| pod(&i.to_string(), Some(100), 100))
        .collect();
    let p = ok(4, Target::Utilization(50), &pods);
    assert_eq!(p.replicas, 8);
    assert_eq!(p.utilization, Some(100));
    assert_eq!(p.average_milli, 100);
    // 25% of 50%: half
    let pods: Vec<_> = (0..4).map(|i| pod(&i.to_string(), Some(25), 100)).collect();
    assert_eq!(ok(4, Target::Utilization(50), &pods).replicas, 2);
}

#[test]
fn tolerance_keeps_the_count() {
    // 54% of 50% is within 10%
    let pods: Vec<_> = (0..3).map(|i| pod(&i.to_string(), Some(54), 100)).collect();
    assert_eq!(ok(3, Target::Utilization(50), &pods).replicas, 3);
    // 56% is not: ceil(1.12 * 3) = 4
    let pods: Vec<_> = (0..3).map(|i| pod(&i.to_string(), Some(56), 100)).collect();
    assert_eq!(ok(3, Target::Utilization(50), &pods).replicas, 4);
}

#[test]
fn average_value_target() {
    let pods: Vec<_> = (0..2).map(|i| pod(&i.to_string(), Some(300), 0)).collect();
    let p = ok(2, Target::AverageValue(100), &pods);
    assert_eq!(p.replicas, 6);
    assert_eq!(p.utilization, None);
}

#[test]
fn missing_and_unready_pods() {
    // scale down with a missing pod: it counts at 100% of its request,
    // which lifts the ratio from 0.2 to 0.8, and ceil(0.8 * 3) = 3
    let pods = vec![
        pod("a", Some(10), 100),
        pod("b", Some(10), 100),
        pod("c", None, 100),
    ];
    assert_eq!(ok(3, Target::Utilization(50), &pods).replicas, 3);
    // scale up with an unready pod counted at 0: ratio (200+200+0)/300/50
    let mut unready = pod("c", Some(200), 100);
    unready.ready = false;
    let pods = vec![pod("a", Some(200), 100), pod("b", Some(200), 100), unready];
    // ready ratio 4; with c at 0: 133% / 50% = 2.66 → ceil(2.66*3) = 8
    assert_eq!(ok(3, Target::Utilization(50), &pods).replicas, 8);
    // deleted and failed pods are ignored
    let mut gone = pod("d", Some(1000), 100);
    gone.deleting = true;
    let mut failed = pod("e", Some(1000), 100);
    failed.phase = "Failed".into();
    let pods = vec![pod("a", Some(50), 100), gone, failed];
    assert_eq!(ok(1, Target::Utilization(50), &pods).replicas, 1);
}

#[test]
fn errors_name_the_problem() {
    let e = resource_replicas(1, "cpu", Target::Utilization(50), &[], 0.1).unwrap_err();
    assert_eq!(e, CalcError::NoPods);
    let e = resource_replicas(
        1,
        "cpu",
        Target::Utilization(50),
        &[pod("a", None, 100)],
        0.1,
    )
    .unwrap_err();
    assert_eq!(e, CalcError::NoMetrics);
    let mut no_request = pod("a", Some(1), 0);
    no_request.request_milli = None;
    let e = resource_replicas(1, "cpu", Target::Utilization(50), &[no_request], 0.1).unwrap_err();
    assert!(
        e.to_string().contains("missing request for cpu in pod a"),
        "{e}"
    );
    assert!(
        resource_replicas(
            1,
            "cpu",
            Target::Utilization(0),
            &[pod("a", Some(1), 1)],
            0.1
        )
        .is_err()
    );
}

fn proposal(replicas: i32) -> Vec<(String, Result<Proposal, String>)> {
    vec![(
        "cpu resource utilization (percentage of request)".into(),
        Ok(Proposal {
            replicas,
            utilization: Some(0),
            average_milli: 0,
        }),
    )]
}

fn behavior(up_window: i32, down_window: i32) -> HorizontalPodAutoscalerBehavior {
    let mut up = default_scale_up();
    up.stabilization_window_seconds = Some(up_window);
    let mut down = default_scale_down();
    down.stabilization_window_seconds = Some(down_window);
    HorizontalPodAutoscalerBehavior {
        scale_up: Some(up),
        scale_down: Some(down),
    }
}

fn cond<'a>(p: &'a Plan, t: &str) -> &'a Condition {
    p.conditions.iter().find(|c| c.type_ == t).unwrap()
}

#[test]
fn bounds_and_scaling_limits() {
    let b = behavior(0, 0);
    let bounds = Bounds {
        min: 2,
        max: 6,
        behavior: Some(&b),
    };
    let mut h = History::default();
    let p = plan(&bounds, 4, &proposal(10), &mut h, 1000);
    assert_eq!(p.desired, 6);
    assert!(cond(&p, "ScalingLimited").status);
    assert_eq!(cond(&p, "ScalingLimited").reason, "TooManyReplicas");
    assert_eq!(
        p.rescale_reason.as_deref(),
        Some("cpu resource utilization (percentage of request) above target")
    );
    let p = plan(&bounds, 6, &proposal(1), &mut h, 1100);
    assert_eq!(p.desired, 2);
    assert_eq!(cond(&p, "ScalingLimited").reason, "TooFewReplicas");
    // outside the bounds: brought in without metrics
    let p = plan(&bounds, 9, &[], &mut h, 1200);
    assert_eq!(p.desired, 6);
    // target at zero: disabled
    let p = plan(&bounds, 0, &proposal(3), &mut h, 1300);
    assert_eq!(p.desired, 0);
    assert_eq!(cond(&p, "ScalingActive").reason, "ScalingDisabled");
}

#[test]
fn scale_up_rate_policies() {
    let mut b = behavior(0, 0);
    b.scale_up = Some(HPAScalingRules {
        stabilization_window_seconds: Some(0),
        select_policy: Some("Max".into()),
        policies: Some(vec![HPAScalingPolicy {
            type_: "Pods".into(),
            value: 1,
            period_seconds: 60,
        }]),
        tolerance: None,
    });
    let bounds = Bounds {
        min: 1,
        max: 10,
        behavior: Some(&b),
    };
    let mut h = History::default();
    let p = plan(&bounds, 2, &proposal(8), &mut h, 0);
    assert_eq!(p.desired, 3);
    assert_eq!(cond(&p, "ScalingLimited").reason, "ScaleUpLimit");
    // within the same period the added pod counts: still 3
    let p = plan(&bounds, 3, &proposal(8), &mut h, 30);
    assert_eq!(p.desired, 3);
    // after the period: one more
    let p = plan(&bounds, 3, &proposal(8), &mut h, 61);
    assert_eq!(p.desired, 4);
    // selectPolicy Disabled never scales up
    b.scale_up.as_mut().unwrap().select_policy = Some("Disabled".into());
    let bounds = Bounds {
        min: 1,
        max: 10,
        behavior: Some(&b),
    };
    assert_eq!(
        plan(&bounds, 3, &proposal(8), &mut History::default(), 0).desired,
        3
    );
}

#[test]
fn percent_policies_and_select_min() {
    let rules = HPAScalingRules {
        stabilization_window_seconds: None,
        select_policy: Some("Min".into()),
        policies: Some(vec![
            HPAScalingPolicy {
                type_: "Percent".into(),
                value: 50,
                period_seconds: 60,
            },
            HPAScalingPolicy {
                type_: "Pods".into(),
                value: 1,
                period_seconds: 60,
            },
        ]),
        tolerance: None,
    };
    // Min selects the strictest: scale down removes at most one of 10 (50% would allow 5)
    assert_eq!(scale_down_limit(10, &[], &rules, 0), 9);
    assert_eq!(scale_up_limit(10, &[], &rules, 0), 11);
    let max = HPAScalingRules {
        select_policy: Some("Max".into()),
        ..rules
    };
    assert_eq!(scale_down_limit(10, &[], &max, 0), 5);
    assert_eq!(scale_up_limit(10, &[], &max, 0), 15);
    // a removal within the period moves the period's start
    let ev = [ScaleEvent {
        at: -10,
        change: -5,
    }];
    assert_eq!(scale_down_limit(5, &ev, &max, 0), 5);
}

#[test]
fn scale_down_waits_for_the_stabilization_window() {
    let b = behavior(0, 30);
    let bounds = Bounds {
        min: 1,
        max: 10,
        behavior: Some(&b),
    };
    let mut h = History::default();
    assert_eq!(plan(&bounds, 4, &proposal(8), &mut h, 0).desired, 8);
    // load drops: the 8 recommended 10 s ago holds the count
    let p = plan(&bounds, 8, &proposal(2), &mut h, 10);
    assert_eq!(p.desired, 8);
    assert_eq!(cond(&p, "AbleToScale").reason, "ScaleDownStabilized");
    let p = plan(&bounds, 8, &proposal(2), &mut h, 25);
    assert_eq!(p.desired, 8);
    // once the window passed, the highest recent recommendation is 2
    let p = plan(&bounds, 8, &proposal(2), &mut h, 41);
    assert_eq!(p.desired, 2);
    assert_eq!(
        p.rescale_reason.as_deref(),
        Some("All metrics below target")
    );
}

#[test]
fn no_behavior_uses_defaults() {
    let bounds = Bounds {
        min: 1,
        max: 100,
        behavior: None,
    };
    let mut h = History::default();
    // scale up limited to max(2x, 4)
    let p = plan(&bounds, 1, &proposal(50), &mut h, 0);
    assert_eq!(p.desired, 4);
    assert_eq!(cond(&p, "ScalingLimited").reason, "ScaleUpLimit");
    // scale down held for 300 s by the 50 recommended at 0
    assert_eq!(plan(&bounds, 4, &proposal(1), &mut h, 100).desired, 4);
    assert_eq!(plan(&bounds, 4, &proposal(1), &mut h, 301).desired, 1);
}

#[test]
fn all_metrics_failing_keeps_the_count() {
    let bounds = Bounds {
        min: 1,
        max: 10,
        behavior: None,
    };
    let p = plan(
        &bounds,
        3,
        &[(
            "cpu".into(),
            Err("did not receive metrics for any ready pods".into()),
        )],
        &mut History::default(),
        0,
    );
    assert_eq!(p.desired, 3);
    let c = cond(&p, "ScalingActive");
    assert!(!c.status);
    assert_eq!(c.reason, "FailedGetResourceMetric");
    assert!(
        c.message.contains("cpu: did not receive metrics"),
        "{}",
        c.message
    );
}

#[test]
fn samples_from_pod_json() {
    let pod = serde_json::json!({
        "metadata": {"name": "p"},
        "spec": {"containers": [
            {"name": "a", "resources": {"requests": {"cpu": "100m", "memory": "64Mi"}}},
            {"name": "b", "resources": {"requests": {"cpu": "0.2"}}},
        ]},
        "status": {"phase": "Running", "conditions": [{"type": "Ready", "status": "True"}]},
    });
    let m = serde_json::json!({"containers": [
        {"name": "a", "usage": {"cpu": "150m", "memory": "10Mi"}},
        {"name": "b", "usage": {"cpu": "50m", "memory": "1Mi"}},
    ]});
    let s = pod_sample("c/p".into(), &pod, Some(&m), "cpu");
    assert_eq!(
        (s.request_milli, s.usage_milli, s.ready),
        (Some(300), Some(200), true)
    );
    // b has no memory request
    let s = pod_sample("c/p".into(), &pod, None, "memory");
    assert_eq!((s.request_milli, s.usage_milli), (None, None));
    let p = Proposal {
        replicas: 2,
        utilization: Some(66),
        average_milli: 200,
    };
    let st = metric_status("cpu", &p);
    let cur = st.resource.unwrap().current;
    assert_eq!(cur.average_utilization, Some(66));
    assert_eq!(cur.average_value.unwrap().0, "200m");
}

#[test]
fn metric_targets() {
    use k8s_openapi::api::autoscaling::v2::{MetricTarget, ResourceMetricSource};
    let m = |t: &str, u: Option<i32>, v: Option<&str>| MetricSpec {
        type_: "Resource".into(),
        resource: Some(ResourceMetricSource {
            name: "cpu".into(),
            target: MetricTarget {
                type_: t.into(),
                average_utilization: u,
                average_value: v.map(|v| Quantity(v.into())),
                value: None,
            },
        }),
        ..Default::default()
    };
    assert_eq!(
        resource_target(&m("Utilization", Some(50), None))
            .unwrap()
            .1,
        Target::Utilization(50)
    );
    assert_eq!(
        resource_target(&m("AverageValue", None, Some("250m")))
            .unwrap()
            .1,
        Target::AverageValue(250)
    );
    let pods = MetricSpec {
        type_: "Pods".into(),
        ..Default::default()
    };
    assert_eq!(
        resource_target(&pods).unwrap_err(),
        "metric type Pods is not supported"
    );
    let now = Time(jiff::Timestamp::UNIX_EPOCH);
    let later = Time(jiff::Timestamp::from_second(60).unwrap());
    let c = vec![Condition::new(
        "ScalingActive",
        true,
        "ValidMetricFound",
        "ok".into(),
    )];
    let first = status_conditions(&[], &c, &now);
    let again = status_conditions(&first, &c, &later);
    assert_eq!(again[0].last_transition_time, Some(now));
}
