//! Leader election on a `coordination.k8s.io/v1` Lease, so that several
//! replicas of a singleton (the controller manager, a cluster's agent) can run
//! and exactly one of them acts.
//!
//! The protocol is client-go's: a candidate reads the Lease; it may take it
//! when nobody holds it, or when the record has not changed for a whole
//! lease duration *as observed by this candidate's own clock* (so clock skew
//! between machines does not matter); it writes with the Lease's
//! resourceVersion as a precondition, so two candidates cannot both win.
//! The leader renews every retry period; when it has not renewed for the
//! renew deadline it stops acting (the caller exits, as Karmada's components
//! do, and a restart makes it a candidate again). A leader that stops cleanly
//! releases the Lease (empty holder), and a standby takes over at once.
//!
//! Start with [`LeaderElectionFlags`] (Karmada's `--leader-elect*` flags) and
//! [`Elector::lead`]. The state is exported as client-go's
//! `leader_election_master_status{name}` gauge (1 while leading).

use std::future::Future;
use std::sync::{LazyLock, Mutex};
use std::time::{Duration, Instant};

use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::MicroTime;
use k8s_openapi::jiff::Timestamp;
use kube::api::{ObjectMeta, PostParams};
use kube::{Api, Client};
use prometheus::IntGaugeVec;

use crate::flags::parse_duration;
use crate::{Error, Result};

/// The Lease `flotilla controller-manager` elects on (Karmada's controller
/// manager uses the same name).
pub const CONTROLLER_MANAGER_LEASE: &str = "karmada-controller-manager";

/// The Lease the agent of `cluster` elects on (`karmada-agent-<cluster>`, as
/// karmada-agent), on the control plane.
pub fn agent_lease(cluster: &str) -> String {
    format!("karmada-agent-{cluster}")
}

static MASTER_STATUS: LazyLock<IntGaugeVec> = LazyLock::new(|| {
    crate::metrics::gauge_vec(
        "leader_election_master_status",
        "Gauge of if the reporting system is master of the relevant lease, 0 indicates backup, 1 indicates master. 'name' is the string used to identify the lease.",
        &["name"],
    )
});

fn duration_arg(s: &str) -> Result<Duration, String> {
    parse_duration(s).map_err(|e| e.to_string())
}

/// Karmada's leader-election flags, with its defaults (on; 15 s lease,
/// 10 s renew deadline, 2 s retry period, Leases in `karmada-system`).
#[derive(Clone, Debug, clap::Args)]
pub struct LeaderElectionFlags {
    /// Start a leader election client and gain leadership before acting;
    /// run several replicas with this on for high availability.
    #[arg(long, default_value_t = true, action = clap::ArgAction::Set, num_args = 0..=1, default_missing_value = "true")]
    pub leader_elect: bool,
    /// How long a standby waits after the last observed renewal before it
    /// takes the lease of a leader that stopped renewing.
    #[arg(long, value_parser = duration_arg, default_value = "15s")]
    pub leader_elect_lease_duration: Duration,
    /// How long the leader keeps trying to renew before it gives up leading.
    #[arg(long, value_parser = duration_arg, default_value = "10s")]
    pub leader_elect_renew_deadline: Duration,
    /// How long candidates wait between attempts to acquire or renew.
    #[arg(long, value_parser = duration_arg, default_value = "2s")]
    pub leader_elect_retry_period: Duration,
    /// The namespace of the Lease.
    #[arg(long, default_value = "karmada-system")]
    pub leader_elect_resource_namespace: String,
}

impl LeaderElectionFlags {
    /// The election these flags describe for the Lease `lease_name`, or
    /// `None` when `--leader-elect=false`. Fails when the durations do not
    /// satisfy lease duration > renew deadline > retry period > 0, which
    /// client-go requires as well.
    pub fn config(&self, lease_name: &str) -> Result<Option<Config>> {
        if !self.leader_elect {
            return Ok(None);
        }
        let config = Config {
            lease_name: lease_name.to_string(),
            namespace: self.leader_elect_resource_namespace.clone(),
            identity: default_identity(),
            lease_duration: self.leader_elect_lease_duration,
            renew_deadline: self.leader_elect_renew_deadline,
            retry_period: self.leader_elect_retry_period,
        };
        config.validate()?;
        Ok(Some(config))
    }
}

/// One election: which Lease, who this candidate is, and its timing.
#[derive(Clone, Debug)]
pub struct Config {
    /// The Lease's name.
    pub lease_name: String,
    /// The Lease's namespace.
    pub namespace: String,
    /// This candidate's identity (`holderIdentity` while it leads).
    pub identity: String,
    /// See [`LeaderElectionFlags::leader_elect_lease_duration`].
    pub lease_duration: Duration,
    /// See [`LeaderElectionFlags::leader_elect_renew_deadline`].
    pub renew_deadline: Duration,
    /// See [`LeaderElectionFlags::leader_elect_retry_period`].
    pub retry_period: Duration,
}

impl Config {
    fn validate(&self) -> Result<()> {
        let bad = |m: &str| Err(Error::InvalidConfig(m.to_string()));
        if self.lease_name.is_empty() || self.namespace.is_empty() {
            return bad("--leader-elect-resource-namespace and the lease name must not be empty");
        }
        if self.retry_period.is_zero() {
            return bad("--leader-elect-retry-period must be greater than zero");
        }
        if self.renew_deadline <= self.retry_period {
            return bad(
                "--leader-elect-renew-deadline must be greater than --leader-elect-retry-period",
            );
        }
        if self.lease_duration <= self.renew_deadline {
            return bad(
                "--leader-elect-lease-duration must be greater than --leader-elect-renew-deadline",
            );
        }
        Ok(())
    }
}

/// `<hostname>_<random>`, as client-go makes identities: unique per process
/// and readable (in a pod, the hostname is the pod's name).
pub fn default_identity() -> String {
    let host = std::env::var("HOSTNAME")
        .ok()
        .filter(|h| !h.is_empty())
        .or_else(|| {
            std::fs::read_to_string("/proc/sys/kernel/hostname")
                .ok()
                .map(|h| h.trim().to_string())
        })
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "flotilla".to_string());
    format!("{host}_{}", uuid::Uuid::new_v4())
}

/// The last Lease record this candidate saw, and when it saw it change.
struct Observed {
    resource_version: String,
    at: Instant,
}

/// A candidate in one election.
pub struct Elector {
    api: Api<Lease>,
    config: Config,
    observed: Mutex<Option<Observed>>,
}

/// What one attempt to acquire or renew found.
#[derive(Debug, PartialEq, Eq)]
enum Attempt {
    /// This candidate holds the Lease now.
    Held,
    /// Another candidate holds a Lease that has not expired.
    HeldByOther(String),
}

impl Elector {
    /// A candidate talking to the API server of `client`.
    pub fn new(client: Client, config: Config) -> Self {
        MASTER_STATUS
            .with_label_values(&[config.lease_name.as_str()])
            .set(0);
        Elector {
            api: Api::namespaced(client, &config.namespace),
            config,
            observed: Mutex::new(None),
        }
    }

    /// This candidate's configuration.
    pub fn config(&self) -> &Config {
        &self.config
    }

    fn set_leading(&self, leading: bool) {
        MASTER_STATUS
            .with_label_values(&[self.config.lease_name.as_str()])
            .set(i64::from(leading));
    }

    /// Waits to become the leader, then runs `work` while renewing the Lease.
    /// Returns `work`'s result (after releasing the Lease) when it ends,
    /// `Ok(())` (after stopping `work` and releasing) when `shutdown`
    /// completes, and [`Error::LeadershipLost`] when the Lease could not be
    /// renewed within the renew deadline (`work` is stopped; the caller
    /// should exit, as another replica may be acting already).
    pub async fn lead<W, S>(&self, work: impl FnOnce() -> W, shutdown: S) -> Result<()>
    where
        W: Future<Output = Result<()>>,
        S: Future<Output = ()>,
    {
        tokio::pin!(shutdown);
        tokio::select! {
            () = self.acquire() => {}
            () = &mut shutdown => return Ok(()),
        }
        self.set_leading(true);
        let outcome = {
            let work = work();
            tokio::pin!(work);
            tokio::select! {
                r = &mut work => r,
                e = self.keep_renewing() => {
                    self.set_leading(false);
                    return Err(e);
                }
                () = &mut shutdown => Ok(()),
            }
        };
        self.release().await;
        outcome
    }

    /// Retries every retry period (with up to 20 % jitter, as client-go)
    /// until this candidate holds the Lease.
    pub async fn acquire(&self) {
        let c = &self.config;
        tracing::info!(lease = %c.lease_name, namespace = %c.namespace, identity = %c.identity, "attempting to acquire leader lease");
        let mut last_holder = String::new();
        loop {
            match self.try_acquire_or_renew().await {
                Ok(Attempt::Held) => {
                    tracing::info!(lease = %c.lease_name, identity = %c.identity, "acquired leader lease; leading");
                    return;
                }
                Ok(Attempt::HeldByOther(holder)) => {
                    if holder != last_holder {
                        tracing::info!(lease = %c.lease_name, leader = %holder, "new leader elected; standing by");
                        last_holder = holder;
                    }
                }
                Err(e) => {
                    tracing::warn!(lease = %c.lease_name, error = %e, "acquiring leader lease failed; retrying")
                }
            }
            tokio::time::sleep(jittered(c.retry_period)).await;
        }
    }

    /// Renews every retry period, as client-go does: each round retries
    /// (every retry period) until it renews or the renew deadline, counted
    /// from the round's start, passes. Returns when a round fails or another
    /// candidate holds the Lease; since the renew deadline is shorter than
    /// the lease duration, this leader stops before anyone may take over.
    async fn keep_renewing(&self) -> Error {
        let c = &self.config;
        loop {
            tokio::time::sleep(c.retry_period).await;
            let round = Instant::now();
            loop {
                let Some(remaining) = c.renew_deadline.checked_sub(round.elapsed()) else {
                    tracing::error!(lease = %c.lease_name, deadline = ?c.renew_deadline, "leader lease not renewed within the renew deadline; stopping");
                    return Error::LeadershipLost(c.lease_name.clone());
                };
                match tokio::time::timeout(remaining, self.try_acquire_or_renew()).await {
                    Ok(Ok(Attempt::Held)) => break,
                    Ok(Ok(Attempt::HeldByOther(holder))) => {
                        tracing::error!(lease = %c.lease_name, leader = %holder, "leader lease taken by another candidate; stopping");
                        return Error::LeadershipLost(c.lease_name.clone());
                    }
                    Ok(Err(e)) => {
                        tracing::warn!(lease = %c.lease_name, error = %e, "renewing leader lease failed; retrying");
                        let left = c.renew_deadline.saturating_sub(round.elapsed());
                        tokio::time::sleep(c.retry_period.min(left)).await;
                    }
                    Err(_) => {
                        tracing::warn!(lease = %c.lease_name, "renewing leader lease timed out")
                    }
                }
            }
        }
    }

    /// Gives the Lease up (empty holder, 1 s duration) if this candidate
    /// holds it, so that a standby takes over without waiting; best effort.
    pub async fn release(&self) {
        self.set_leading(false);
        let c = &self.config;
        let Ok(Some(mut lease)) = self.api.get_opt(&c.lease_name).await else {
            return;
        };
        let spec = lease.spec.get_or_insert_with(LeaseSpec::default);
        if spec.holder_identity.as_deref() != Some(c.identity.as_str()) {
            return;
        }
        spec.holder_identity = None;
        spec.lease_duration_seconds = Some(1);
        spec.renew_time = Some(MicroTime(Timestamp::now()));
        match self
            .api
            .replace(&c.lease_name, &PostParams::default(), &lease)
            .await
        {
            Ok(_) => tracing::info!(lease = %c.lease_name, "released leader lease"),
            Err(e) => {
                tracing::warn!(lease = %c.lease_name, error = %e, "releasing leader lease failed")
            }
        }
    }

    /// One read-then-write round of client-go's tryAcquireOrRenew.
    async fn try_acquire_or_renew(&self) -> Result<Attempt> {
        let c = &self.config;
        let now = MicroTime(Timestamp::now());
        let duration_secs = i32::try_from(c.lease_duration.as_secs().max(1)).unwrap_or(i32::MAX);
        let Some(mut lease) = self.api.get_opt(&c.lease_name).await? else {
            let lease = Lease {
                metadata: ObjectMeta {
                    name: Some(c.lease_name.clone()),
                    namespace: Some(c.namespace.clone()),
                    ..Default::default()
                },
                spec: Some(LeaseSpec {
                    holder_identity: Some(c.identity.clone()),
                    lease_duration_seconds: Some(duration_secs),
                    acquire_time: Some(now.clone()),
                    renew_time: Some(now),
                    lease_transitions: Some(0),
                    ..Default::default()
                }),
            };
            return match self.api.create(&PostParams::default(), &lease).await {
                Ok(created) => {
                    self.observe(&created, true);
                    Ok(Attempt::Held)
                }
                Err(kube::Error::Api(s)) if s.code == 409 => Ok(Attempt::HeldByOther(
                    "(just created by another candidate)".into(),
                )),
                Err(e) => Err(e.into()),
            };
        };
        self.observe(&lease, false);
        let spec = lease.spec.get_or_insert_with(LeaseSpec::default);
        let holder = spec.holder_identity.clone().unwrap_or_default();
        let mine = holder == c.identity;
        if !holder.is_empty() && !mine && !self.observed_expired() {
            return Ok(Attempt::HeldByOther(holder));
        }
        if !mine {
            spec.acquire_time = Some(now.clone());
            spec.lease_transitions = Some(spec.lease_transitions.unwrap_or(0) + 1);
        }
        spec.holder_identity = Some(c.identity.clone());
        spec.lease_duration_seconds = Some(duration_secs);
        spec.renew_time = Some(now);
        match self
            .api
            .replace(&c.lease_name, &PostParams::default(), &lease)
            .await
        {
            Ok(updated) => {
                self.observe(&updated, true);
                Ok(Attempt::Held)
            }
            // someone else wrote first: read again next round
            Err(kube::Error::Api(s)) if s.code == 409 => Ok(Attempt::HeldByOther(holder)),
            Err(e) => Err(e.into()),
        }
    }

    /// Records `lease` as seen now if it changed since the last look (or
    /// always, for this candidate's own writes).
    fn observe(&self, lease: &Lease, own_write: bool) {
        let rv = lease.metadata.resource_version.clone().unwrap_or_default();
        let mut observed = self.observed.lock().expect("observed lock");
        let changed = observed.as_ref().is_none_or(|o| o.resource_version != rv);
        if changed || own_write {
            *observed = Some(Observed {
                resource_version: rv,
                at: Instant::now(),
            });
        }
    }

    /// Whether the record has been unchanged for a whole lease duration.
    fn observed_expired(&self) -> bool {
        let observed = self.observed.lock().expect("observed lock");
        observed
            .as_ref()
            .is_none_or(|o| o.at.elapsed() >= self.config.lease_duration)
    }
}

/// `d` plus up to 20 % (client-go's JitterFactor 1.2).
fn jittered(d: Duration) -> Duration {
    let frac = f64::from(uuid::Uuid::new_v4().as_bytes()[0]) / 255.0 * 0.2;
    d.mul_f64(1.0 + frac)
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    struct Cmd {
        #[command(flatten)]
        le: LeaderElectionFlags,
    }

    #[test]
    fn flags_have_karmadas_defaults() {
        let cmd = Cmd::try_parse_from(["x"]).unwrap();
        let c = cmd.le.config(CONTROLLER_MANAGER_LEASE).unwrap().unwrap();
        assert_eq!(c.lease_name, "karmada-controller-manager");
        assert_eq!(c.namespace, "karmada-system");
        assert_eq!(c.lease_duration, Duration::from_secs(15));
        assert_eq!(c.renew_deadline, Duration::from_secs(10));
        assert_eq!(c.retry_period, Duration::from_secs(2));
        let a = default_identity();
        assert_ne!(a, default_identity(), "identities are unique per candidate");
        let off = Cmd::try_parse_from(["x", "--leader-elect=false"]).unwrap();
        assert!(off.le.config("x").unwrap().is_none());
    }

    #[test]
    fn inconsistent_durations_are_refused_by_name() {
        for (args, flag) in [
            (
                vec!["x", "--leader-elect-renew-deadline=20s"],
                "--leader-elect-lease-duration",
            ),
            (
                vec!["x", "--leader-elect-retry-period=10s"],
                "--leader-elect-renew-deadline",
            ),
            (vec!["x", "--leader-elect-retry-period=0"], "retry-period"),
        ] {
            let cmd = Cmd::try_parse_from(args.clone()).unwrap();
            let err = cmd.le.config("x").unwrap_err().to_string();
            assert!(err.contains(flag), "{args:?}: {err}");
        }
        assert!(Cmd::try_parse_from(["x", "--leader-elect-lease-duration=soon"]).is_err());
    }

    #[test]
    fn jitter_stays_within_a_fifth() {
        for _ in 0..50 {
            let j = jittered(Duration::from_secs(10));
            assert!(
                j >= Duration::from_secs(10) && j <= Duration::from_secs(12),
                "{j:?}"
            );
        }
    }
}
