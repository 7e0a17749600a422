//! Command-line flags of `flotilla controller-manager` and `flotilla agent`,
//! named as Karmada's (`--controllers`, `--cluster-status-update-frequency`,
//! ...), with Karmada's defaults and Go-style durations (`10s`, `500ms`,
//! `1m30s`). A main flattens [`Flags`] into its clap command and calls
//! [`Flags::config`].

use std::time::Duration;

use crate::eviction_queue::EvictionRates;
use crate::features::FeatureGates;
use crate::{Config, Error, Result};

/// Parses a Go-style duration: a sequence of `<number><unit>` with units
/// `h`, `m`, `s`, `ms`, `us`, `ns` (`1m30s`, `500ms`, `0.5s`); `0` alone is zero.
pub fn parse_duration(s: &str) -> Result<Duration> {
    let bad = || Error::InvalidConfig(format!("invalid duration {s:?}"));
    let s = s.trim();
    if s == "0" {
        return Ok(Duration::ZERO);
    }
    if s.is_empty() {
        return Err(bad());
    }
    let mut total = 0f64;
    let mut rest = s;
    while !rest.is_empty() {
        let num_len = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .ok_or_else(bad)?;
        let (num, tail) = rest.split_at(num_len);
        let value: f64 = num.parse().map_err(|_| bad())?;
        let unit_len = tail
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(tail.len());
        let (unit, tail) = tail.split_at(unit_len);
        let scale = match unit {
            "h" => 3600.0,
            "m" => 60.0,
            "s" => 1.0,
            "ms" => 1e-3,
            "us" | "µs" => 1e-6,
            "ns" => 1e-9,
            _ => return Err(bad()),
        };
        total += value * scale;
        rest = tail;
    }
    Duration::try_from_secs_f64(total).map_err(|_| bad())
}

fn duration_arg(s: &str) -> Result<Duration, String> {
    parse_duration(s).map_err(|e| e.to_string())
}

fn feature_gates_arg(s: &str) -> Result<FeatureGates, String> {
    FeatureGates::parse(s).map_err(|e| e.to_string())
}

/// Failover flags (Karmada's names and defaults), shared by
/// `flotilla controller-manager` and `flotilla up`.
#[derive(Clone, Debug, clap::Args)]
pub struct FailoverFlags {
    /// Feature gates, `Name=true|false,...`: Failover (default false),
    /// GracefulEviction (default true).
    #[arg(long, value_parser = feature_gates_arg, default_value = "")]
    pub feature_gates: FeatureGates,
    /// Evict workloads from clusters with NoExecute taints they do not
    /// tolerate (needs --feature-gates=Failover=true).
    #[arg(long, default_value_t = false, action = clap::ArgAction::Set, num_args = 0..=1, default_missing_value = "true")]
    pub enable_no_execute_taint_eviction: bool,
    /// Purge mode of NoExecute evictions when the policy names none:
    /// Gracefully (remove the old workload once the new one is healthy) or
    /// Directly (remove it at once).
    #[arg(long, default_value = "Gracefully", value_parser = ["Gracefully", "Directly"])]
    pub no_execute_taint_eviction_purge_mode: String,
    /// How long a graceful eviction waits for the replacement before the old
    /// workload is removed anyway.
    #[arg(long, value_parser = duration_arg, default_value = "10m")]
    pub graceful_eviction_timeout: Duration,
    /// Evictions per second while the clusters are healthy (default 0.5;
    /// `flotilla up`: 50).
    #[arg(long, value_parser = rate_arg)]
    pub resource_eviction_rate: Option<f64>,
    /// Evictions per second of a large federation with too many unhealthy
    /// clusters (default 0.1).
    #[arg(long, value_parser = rate_arg)]
    pub secondary_resource_eviction_rate: Option<f64>,
    /// Share of clusters not Ready above which the federation is unhealthy
    /// (default 0.55).
    #[arg(long, value_parser = fraction_arg)]
    pub unhealthy_cluster_threshold: Option<f64>,
    /// More clusters than this make a large federation, which slows its
    /// evictions when unhealthy; a smaller one stops them (default 10).
    #[arg(long)]
    pub large_cluster_num_threshold: Option<usize>,
}

fn rate_arg(s: &str) -> Result<f64, String> {
    match s.parse::<f64>() {
        Ok(v) if v.is_finite() && v >= 0.0 => Ok(v),
        _ => Err(format!(
            "{s:?} is not a rate (a number of evictions per second, 0 or more)"
        )),
    }
}

fn fraction_arg(s: &str) -> Result<f64, String> {
    match s.parse::<f64>() {
        Ok(v) if (0.0..=1.0).contains(&v) => Ok(v),
        _ => Err(format!("{s:?} is not a fraction between 0 and 1")),
    }
}

impl FailoverFlags {
    /// Applies these flags to `config`.
    pub fn apply(&self, config: Config) -> Config {
        let rates = self.eviction_rates(config.eviction_rates);
        config
            .feature_gates(self.feature_gates.clone())
            .no_execute_taint_eviction(
                self.enable_no_execute_taint_eviction,
                &self.no_execute_taint_eviction_purge_mode,
            )
            .graceful_eviction_timeout(self.graceful_eviction_timeout)
            .eviction_rates(rates)
    }

    /// `base` with the eviction-rate flags given on the command line.
    pub fn eviction_rates(&self, base: EvictionRates) -> EvictionRates {
        EvictionRates {
            rate: self.resource_eviction_rate.unwrap_or(base.rate),
            secondary_rate: self
                .secondary_resource_eviction_rate
                .unwrap_or(base.secondary_rate),
            unhealthy_threshold: self
                .unhealthy_cluster_threshold
                .unwrap_or(base.unhealthy_threshold),
            large_cluster_threshold: self
                .large_cluster_num_threshold
                .unwrap_or(base.large_cluster_threshold),
        }
    }
}

/// Controller flags (Karmada's names and defaults).
#[derive(Clone, Debug, clap::Args)]
pub struct Flags {
    /// Controllers to run: `*` for all, `name` to enable, `-name` to disable
    /// (cluster, clusterStatus, namespace, detector, scheduler, binding,
    /// execution, workStatus, bindingStatus, dependencies, clusterTaintPolicy,
    /// gracefulEviction, applicationFailover, federatedHorizontalPodAutoscaler,
    /// cronFederatedHorizontalPodAutoscaler, hpaScaleTargetMarker,
    /// deploymentReplicasSyncer, serviceExport, endpointsliceCollect,
    /// serviceImport, endpointsliceDispatch, multiclusterservice).
    #[arg(long, value_delimiter = ',', default_value = "*")]
    pub controllers: Vec<String>,
    /// How often member status is collected and written.
    #[arg(long, value_parser = duration_arg, default_value = "10s")]
    pub cluster_status_update_frequency: Duration,
    /// How long a member must be seen healthy before Ready turns True.
    #[arg(long, value_parser = duration_arg, default_value = "30s")]
    pub cluster_success_threshold: Duration,
    /// How long a member must be seen unhealthy before Ready leaves True.
    #[arg(long, value_parser = duration_arg, default_value = "30s")]
    pub cluster_failure_threshold: Duration,
    /// How often Pull clusters' leases are checked.
    #[arg(long, value_parser = duration_arg, default_value = "5s")]
    pub cluster_monitor_period: Duration,
    /// A Pull cluster silent for this long is marked Ready=Unknown.
    #[arg(long, value_parser = duration_arg, default_value = "40s")]
    pub cluster_monitor_grace_period: Duration,
    /// The same, for a cluster that never posted Ready.
    #[arg(long, value_parser = duration_arg, default_value = "60s")]
    pub cluster_startup_grace_period: Duration,
    /// Lease duration of Pull clusters (agent).
    #[arg(long, value_parser = duration_arg, default_value = "40s")]
    pub cluster_lease_duration: Duration,
    /// The agent renews its lease every duration × this fraction.
    #[arg(long, default_value_t = 0.25)]
    pub cluster_lease_renew_interval_fraction: f64,
    /// Namespaces (anchored regular expressions) never propagated to members.
    #[arg(long, value_delimiter = ',', default_value = "kube-.*")]
    pub skipped_propagating_namespaces: Vec<String>,
    /// Timeout of each request to a member cluster.
    #[arg(long, value_parser = duration_arg, default_value = "5s")]
    pub member_request_timeout: Duration,
    /// Failover flags.
    #[command(flatten)]
    pub failover: FailoverFlags,
    /// `--horizontal-pod-autoscaler-sync-period`: how often each
    /// FederatedHPA is synced.
    #[arg(long, value_parser = duration_arg, default_value = "15s")]
    pub horizontal_pod_autoscaler_sync_period: Duration,
    /// `--horizontal-pod-autoscaler-tolerance`: the minimum change (from
    /// 1.0) in the desired-to-actual metrics ratio that scales.
    #[arg(long, default_value_t = 0.1)]
    pub horizontal_pod_autoscaler_tolerance: f64,
    /// How many bindings the scheduler schedules at once (flotilla's; waiting
    /// bindings go highest `schedulePriority` first). 1 schedules one at a
    /// time, as Karmada's single scheduling worker.
    #[arg(long, default_value_t = crate::scheduler::DEFAULT_CONCURRENT_SCHEDULE_SYNCS,
          value_parser = clap::value_parser!(u16).range(1..))]
    pub concurrent_schedule_syncs: u16,
}

impl Flags {
    /// The [`Config`] these flags describe.
    pub fn config(&self) -> Config {
        let config = Config {
            cluster_status_update_frequency: self.cluster_status_update_frequency,
            cluster_success_threshold: self.cluster_success_threshold,
            cluster_failure_threshold: self.cluster_failure_threshold,
            cluster_monitor_period: self.cluster_monitor_period,
            cluster_monitor_grace_period: self.cluster_monitor_grace_period,
            cluster_startup_grace_period: self.cluster_startup_grace_period,
            cluster_lease_duration: self.cluster_lease_duration,
            cluster_lease_renew_interval_fraction: self.cluster_lease_renew_interval_fraction,
            member_request_timeout: self.member_request_timeout,
            skipped_propagating_namespaces: self.skipped_propagating_namespaces.clone(),
            horizontal_pod_autoscaler_sync_period: self.horizontal_pod_autoscaler_sync_period,
            horizontal_pod_autoscaler_tolerance: self.horizontal_pod_autoscaler_tolerance,
            concurrent_schedule_syncs: self.concurrent_schedule_syncs.into(),
            ..Config::default()
        };
        self.failover.apply(config)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    struct Cmd {
        #[command(flatten)]
        flags: Flags,
    }

    #[test]
    fn durations() {
        assert_eq!(parse_duration("10s").unwrap(), Duration::from_secs(10));
        assert_eq!(parse_duration("1m30s").unwrap(), Duration::from_secs(90));
        assert_eq!(parse_duration("500ms").unwrap(), Duration::from_millis(500));
        assert_eq!(parse_duration("0.5s").unwrap(), Duration::from_millis(500));
        assert_eq!(parse_duration("1h").unwrap(), Duration::from_secs(3600));
        assert_eq!(parse_duration("0").unwrap(), Duration::ZERO);
        for bad in ["", "10", "s", "10x", "1.2.3s"] {
            assert!(parse_duration(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn defaults_are_karmadas() {
        let cmd = Cmd::try_parse_from(["x"]).unwrap();
        let c = cmd.flags.config();
        let d = Config::default();
        assert_eq!(
            c.cluster_status_update_frequency,
            d.cluster_status_update_frequency
        );
        assert_eq!(c.cluster_failure_threshold, d.cluster_failure_threshold);
        assert_eq!(
            c.cluster_monitor_grace_period,
            d.cluster_monitor_grace_period
        );
        assert_eq!(c.lease_renew_interval(), Duration::from_secs(10));
        assert_eq!(
            c.skipped_propagating_namespaces,
            vec!["kube-.*".to_string()]
        );
        assert_eq!(cmd.flags.controllers, vec!["*".to_string()]);
        assert_eq!(
            c.horizontal_pod_autoscaler_sync_period,
            d.horizontal_pod_autoscaler_sync_period
        );
        assert_eq!(c.horizontal_pod_autoscaler_tolerance, 0.1);
        let cmd = Cmd::try_parse_from([
            "x",
            "--controllers=*,-namespace",
            "--cluster-status-update-frequency=1s",
        ])
        .unwrap();
        assert_eq!(
            cmd.flags.controllers,
            vec!["*".to_string(), "-namespace".to_string()]
        );
        assert_eq!(
            cmd.flags.config().cluster_status_update_frequency,
            Duration::from_secs(1)
        );
    }

    #[test]
    fn failover_flags() {
        let c = Cmd::try_parse_from(["x"]).unwrap().flags.config();
        assert!(!c.taint_eviction_enabled(), "failover is off by default");
        assert_eq!(c.no_execute_taint_eviction_purge_mode, "Gracefully");
        assert_eq!(c.graceful_eviction_timeout, Duration::from_secs(600));
        let only_flag = Cmd::try_parse_from(["x", "--enable-no-execute-taint-eviction"]).unwrap();
        assert!(
            !only_flag.flags.config().taint_eviction_enabled(),
            "the gate is needed too"
        );
        let on = Cmd::try_parse_from([
            "x",
            "--feature-gates=Failover=true",
            "--enable-no-execute-taint-eviction=true",
            "--no-execute-taint-eviction-purge-mode=Directly",
            "--graceful-eviction-timeout=30s",
        ])
        .unwrap()
        .flags
        .config();
        assert!(on.taint_eviction_enabled());
        assert_eq!(on.no_execute_taint_eviction_purge_mode, "Directly");
        assert_eq!(on.graceful_eviction_timeout, Duration::from_secs(30));
        for bad in [
            "--feature-gates=Nope=true",
            "--no-execute-taint-eviction-purge-mode=Never",
        ] {
            assert!(Cmd::try_parse_from(["x", bad]).is_err(), "{bad}");
        }
    }
}
