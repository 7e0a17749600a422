//! What every controller shares: the control-plane client, the timing
//! configuration (Karmada's controller-manager flags and defaults) and the
//! cache of member clients.

use std::time::Duration;

use kube::Client;

use crate::features::{self, FeatureGates};
use crate::member::MemberClients;

/// Timings and switches, named after Karmada's controller-manager / agent
/// flags; [`Config::default`] has Karmada's defaults.
#[derive(Clone, Debug)]
pub struct Config {
    /// `--cluster-status-update-frequency` (10 s): how often a member is probed
    /// and its status written. `flotilla up` uses 1 s.
    pub cluster_status_update_frequency: Duration,
    /// `--cluster-success-threshold` (30 s): how long a cluster must be seen
    /// healthy before Ready flips to True.
    pub cluster_success_threshold: Duration,
    /// `--cluster-failure-threshold` (30 s): how long a cluster must be seen
    /// unhealthy before Ready flips away from True.
    pub cluster_failure_threshold: Duration,
    /// `--cluster-monitor-period` (5 s): how often the cluster controller
    /// checks Pull clusters' leases.
    pub cluster_monitor_period: Duration,
    /// `--cluster-monitor-grace-period` (40 s): a Pull cluster whose lease was
    /// not renewed for this long is marked Ready=Unknown.
    pub cluster_monitor_grace_period: Duration,
    /// `--cluster-startup-grace-period` (60 s): the same, for a cluster that
    /// never posted a Ready condition.
    pub cluster_startup_grace_period: Duration,
    /// `--cluster-lease-duration` (40 s): the agent's Lease duration.
    pub cluster_lease_duration: Duration,
    /// `--cluster-lease-renew-interval-fraction` (0.25): the agent renews its
    /// Lease every duration × fraction (10 s).
    pub cluster_lease_renew_interval_fraction: f64,
    /// Timeout of each request to a member (connect and read); a member that
    /// does not answer in time counts as unreachable.
    pub member_request_timeout: Duration,
    /// `--skipped-propagating-namespaces` (`kube-.*`): regular expressions
    /// (anchored) of namespaces the namespace-sync controller skips.
    pub skipped_propagating_namespaces: Vec<String>,
    /// `--feature-gates`: `Failover` (off) and `GracefulEviction` (on).
    pub feature_gates: FeatureGates,
    /// `--enable-no-execute-taint-eviction` (false): the taint manager evicts
    /// bindings from clusters with NoExecute taints they do not tolerate
    /// (needs the `Failover` gate too).
    pub enable_no_execute_taint_eviction: bool,
    /// `--no-execute-taint-eviction-purge-mode` (`Gracefully`): the purge mode
    /// of taint evictions when the binding's policy names none.
    pub no_execute_taint_eviction_purge_mode: String,
    /// `--graceful-eviction-timeout` (10m): how long a graceful eviction task
    /// waits for the replacement to be healthy before the old cluster's
    /// workload is removed anyway.
    pub graceful_eviction_timeout: Duration,
    /// `--resource-eviction-rate` and its companions: how fast the taint
    /// manager evicts ([`crate::eviction_queue`]).
    pub eviction_rates: crate::eviction_queue::EvictionRates,
    /// `--horizontal-pod-autoscaler-sync-period` (15 s): how often each
    /// FederatedHPA gathers metrics and rescales. `flotilla up` uses 2 s.
    pub horizontal_pod_autoscaler_sync_period: Duration,
    /// `--horizontal-pod-autoscaler-tolerance` (0.1).
    pub horizontal_pod_autoscaler_tolerance: f64,
    /// `--concurrent-schedule-syncs` (flotilla's, 16): how many bindings the
    /// scheduler schedules at once, the waiting ones by priority.
    pub concurrent_schedule_syncs: usize,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            cluster_status_update_frequency: Duration::from_secs(10),
            cluster_success_threshold: Duration::from_secs(30),
            cluster_failure_threshold: Duration::from_secs(30),
            cluster_monitor_period: Duration::from_secs(5),
            cluster_monitor_grace_period: Duration::from_secs(40),
            cluster_startup_grace_period: Duration::from_secs(60),
            cluster_lease_duration: Duration::from_secs(40),
            cluster_lease_renew_interval_fraction: 0.25,
            member_request_timeout: Duration::from_secs(5),
            skipped_propagating_namespaces: vec!["kube-.*".to_string()],
            feature_gates: FeatureGates::default(),
            enable_no_execute_taint_eviction: false,
            no_execute_taint_eviction_purge_mode: "Gracefully".to_string(),
            graceful_eviction_timeout: Duration::from_secs(600),
            eviction_rates: crate::eviction_queue::EvictionRates::default(),
            horizontal_pod_autoscaler_sync_period: Duration::from_secs(15),
            horizontal_pod_autoscaler_tolerance: flotilla_api::autoscaling::hpa::DEFAULT_TOLERANCE,
            concurrent_schedule_syncs: crate::scheduler::DEFAULT_CONCURRENT_SCHEDULE_SYNCS.into(),
        }
    }
}

impl Config {
    /// Sets `--cluster-status-update-frequency`.
    pub fn cluster_status_update_frequency(mut self, d: Duration) -> Self {
        self.cluster_status_update_frequency = d;
        self
    }
    /// Sets both `--cluster-success-threshold` and `--cluster-failure-threshold`.
    pub fn cluster_thresholds(mut self, success: Duration, failure: Duration) -> Self {
        self.cluster_success_threshold = success;
        self.cluster_failure_threshold = failure;
        self
    }
    /// Sets `--cluster-monitor-period` and `--cluster-monitor-grace-period`.
    pub fn cluster_monitor(mut self, period: Duration, grace: Duration) -> Self {
        self.cluster_monitor_period = period;
        self.cluster_monitor_grace_period = grace;
        self
    }
    /// Sets `--cluster-startup-grace-period`.
    pub fn cluster_startup_grace_period(mut self, d: Duration) -> Self {
        self.cluster_startup_grace_period = d;
        self
    }
    /// Sets `--cluster-lease-duration` and `--cluster-lease-renew-interval-fraction`.
    pub fn cluster_lease(mut self, duration: Duration, renew_fraction: f64) -> Self {
        self.cluster_lease_duration = duration;
        self.cluster_lease_renew_interval_fraction = renew_fraction;
        self
    }
    /// Sets the per-request timeout towards members.
    pub fn member_request_timeout(mut self, d: Duration) -> Self {
        self.member_request_timeout = d;
        self
    }
    /// Sets `--skipped-propagating-namespaces`.
    pub fn skipped_propagating_namespaces(mut self, v: Vec<String>) -> Self {
        self.skipped_propagating_namespaces = v;
        self
    }
    /// Sets `--feature-gates`.
    pub fn feature_gates(mut self, gates: FeatureGates) -> Self {
        self.feature_gates = gates;
        self
    }
    /// Sets `--enable-no-execute-taint-eviction` and
    /// `--no-execute-taint-eviction-purge-mode`.
    pub fn no_execute_taint_eviction(mut self, enabled: bool, purge_mode: &str) -> Self {
        self.enable_no_execute_taint_eviction = enabled;
        self.no_execute_taint_eviction_purge_mode = purge_mode.to_string();
        self
    }
    /// Sets `--graceful-eviction-timeout`.
    pub fn graceful_eviction_timeout(mut self, d: Duration) -> Self {
        self.graceful_eviction_timeout = d;
        self
    }
    /// Sets the eviction rates.
    pub fn eviction_rates(mut self, rates: crate::eviction_queue::EvictionRates) -> Self {
        self.eviction_rates = rates;
        self
    }
    /// Whether the taint manager runs: the `Failover` gate and
    /// `--enable-no-execute-taint-eviction`, as in Karmada.
    pub fn taint_eviction_enabled(&self) -> bool {
        self.feature_gates.enabled(features::FAILOVER) && self.enable_no_execute_taint_eviction
    }
    /// Sets `--horizontal-pod-autoscaler-sync-period`.
    pub fn horizontal_pod_autoscaler_sync_period(mut self, d: Duration) -> Self {
        self.horizontal_pod_autoscaler_sync_period = d;
        self
    }
    /// The agent's lease renew interval (duration × fraction, at least 100 ms).
    pub fn lease_renew_interval(&self) -> Duration {
        self.cluster_lease_duration
            .mul_f64(self.cluster_lease_renew_interval_fraction.clamp(0.0, 1.0))
            .max(Duration::from_millis(100))
    }
}

/// Shared by every controller; cheap to clone.
#[derive(Clone)]
pub struct Context {
    /// Client to the control plane (Karmada apiserver equivalent).
    pub control_plane: Client,
    /// Timings and switches.
    pub config: Config,
    /// Clients to Push members, built from their Clusters' secrets.
    pub members: MemberClients,
    /// The watches and caches the controllers of this process share.
    pub caches: crate::shared_cache::SharedCaches,
}

impl Context {
    /// A context with a fresh member-client cache.
    pub fn new(control_plane: Client, config: Config) -> Self {
        let members = MemberClients::new(control_plane.clone(), config.member_request_timeout);
        Context {
            control_plane,
            config,
            members,
            caches: Default::default(),
        }
    }
}
