//! The taint manager's eviction rate limit (Karmada's eviction queue,
//! `--resource-eviction-rate` and its companions): evictions are let through
//! at `rate` per second while the federation is healthy; when more than
//! `unhealthy_threshold` of the clusters are not Ready, a large federation
//! (more than `large_cluster_threshold` clusters) slows to `secondary_rate`
//! and a small one stops evicting until enough clusters are back — many
//! clusters failing at once more likely means the control plane lost them
//! than that they all died, and moving everything at once would overload the
//! survivors. The rate is worked out again for every eviction.

use std::sync::Mutex;
use std::time::Duration;

use tokio::time::Instant;

/// The eviction-rate settings (Karmada's flags and defaults).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct EvictionRates {
    /// `--resource-eviction-rate` (0.5): evictions per second when healthy.
    pub rate: f64,
    /// `--secondary-resource-eviction-rate` (0.1): evictions per second of a
    /// large, unhealthy federation.
    pub secondary_rate: f64,
    /// `--unhealthy-cluster-threshold` (0.55): the share of clusters not
    /// Ready above which the federation counts as unhealthy.
    pub unhealthy_threshold: f64,
    /// `--large-cluster-num-threshold` (10): more clusters than this make a
    /// large federation.
    pub large_cluster_threshold: usize,
}

impl Default for EvictionRates {
    fn default() -> Self {
        EvictionRates {
            rate: 0.5,
            secondary_rate: 0.1,
            unhealthy_threshold: 0.55,
            large_cluster_threshold: 10,
        }
    }
}

impl EvictionRates {
    /// Evictions per second with `unhealthy` of `total` clusters not Ready
    /// (0: none now).
    pub fn current(&self, total: usize, unhealthy: usize) -> f64 {
        if total == 0 || (unhealthy as f64 / total as f64) <= self.unhealthy_threshold {
            return self.rate;
        }
        if total > self.large_cluster_threshold {
            self.secondary_rate
        } else {
            0.0
        }
    }
}

/// Hands out eviction slots at the current rate.
pub struct EvictionQueue {
    rates: EvictionRates,
    /// When the next eviction may happen.
    next: Mutex<Option<Instant>>,
}

/// How often a paused queue looks at the clusters again.
const PAUSED_RECHECK: Duration = Duration::from_secs(1);

impl EvictionQueue {
    /// A queue with these settings.
    pub fn new(rates: EvictionRates) -> Self {
        EvictionQueue {
            rates,
            next: Mutex::new(None),
        }
    }

    /// The settings.
    pub fn rates(&self) -> EvictionRates {
        self.rates
    }

    /// Waits for the next eviction slot; `health` says (total, not Ready)
    /// clusters now and is asked again while evictions are paused.
    pub async fn admit(&self, health: impl Fn() -> (usize, usize)) {
        loop {
            let (total, unhealthy) = health();
            let rate = self.rates.current(total, unhealthy);
            if rate <= 0.0 || !rate.is_finite() {
                tokio::time::sleep(PAUSED_RECHECK).await;
                continue;
            }
            let slot = {
                let mut next = self.next.lock().unwrap_or_else(|e| e.into_inner());
                let now = Instant::now();
                let slot = next.map_or(now, |n| n.max(now));
                *next = Some(slot + Duration::from_secs_f64(1.0 / rate));
                slot
            };
            tokio::time::sleep_until(slot).await;
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;

    #[test]
    fn rates_follow_the_federations_health() {
        let r = EvictionRates::default();
        assert_eq!(r.current(3, 0), 0.5);
        assert_eq!(r.current(3, 1), 0.5); // 33 % is below 55 %
        assert_eq!(r.current(3, 2), 0.0); // small and unhealthy: paused
        assert_eq!(r.current(20, 11), 0.5); // exactly 55 % is not above it
        assert_eq!(r.current(20, 12), 0.1); // large and unhealthy: slowed
        assert_eq!(r.current(0, 0), 0.5);
    }

    #[tokio::test(start_paused = true)]
    async fn slots_are_spaced_by_the_rate_and_wait_while_paused() {
        let q = Arc::new(EvictionQueue::new(EvictionRates {
            rate: 2.0,
            ..Default::default()
        }));
        let start = Instant::now();
        for _ in 0..3 {
            q.admit(|| (3, 0)).await;
        }
        // now, +0.5 s, +1 s
        assert_eq!(start.elapsed(), Duration::from_millis(1000));
        // two of three clusters down: paused until one comes back
        let down = Arc::new(std::sync::atomic::AtomicUsize::new(2));
        let waiting = {
            let (q, down) = (q.clone(), down.clone());
            tokio::spawn(async move {
                q.admit(|| (3, down.load(std::sync::atomic::Ordering::SeqCst)))
                    .await;
                Instant::now()
            })
        };
        tokio::time::sleep(Duration::from_secs(5)).await;
        assert!(!waiting.is_finished(), "evictions are paused");
        down.store(0, std::sync::atomic::Ordering::SeqCst);
        let admitted = waiting.await.expect("admitted");
        assert!(
            admitted - start <= Duration::from_secs(7),
            "resumed within a recheck"
        );
    }
}
