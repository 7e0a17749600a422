//! Feature gates, Karmada's `--feature-gates` (`Name=true,Other=false`): the
//! gates flotilla implements, with Karmada's defaults. `Failover` (beta, off
//! by default) lets the taint manager evict on NoExecute taints (with
//! `--enable-no-execute-taint-eviction`) and the application failover
//! controller act; `GracefulEviction` (beta, on) makes evictions graceful
//! (`gracefulEvictionTasks`) instead of immediate;
//! `PropagationPolicyPreemption` (alpha, off) lets policies with
//! `preemption: Always` take templates over from the policies claiming them;
//! `PriorityBasedScheduling` (beta, on) copies a policy's PriorityClass value
//! into its bindings' `spec.schedulePriority`.

use std::collections::BTreeMap;

use crate::{Error, Result};

/// Gate of cluster and application failover.
pub const FAILOVER: &str = "Failover";
/// Gate of graceful eviction.
pub const GRACEFUL_EVICTION: &str = "GracefulEviction";

/// Gate of policy preemption.
pub const PROPAGATION_POLICY_PREEMPTION: &str = "PropagationPolicyPreemption";
/// Gate of binding priorities from PriorityClasses.
pub const PRIORITY_BASED_SCHEDULING: &str = "PriorityBasedScheduling";

/// The gates flotilla knows and their defaults (Karmada's).
const KNOWN: [(&str, bool); 4] = [
    (FAILOVER, false),
    (GRACEFUL_EVICTION, true),
    (PROPAGATION_POLICY_PREEMPTION, false),
    (PRIORITY_BASED_SCHEDULING, true),
];

/// A set of feature gates: every known gate with its value.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FeatureGates(BTreeMap<&'static str, bool>);

impl Default for FeatureGates {
    fn default() -> Self {
        FeatureGates(KNOWN.into_iter().collect())
    }
}

impl FeatureGates {
    /// Parses `Name=bool,...` over the defaults; an unknown gate or a value
    /// other than `true`/`false` is an error naming it.
    pub fn parse(s: &str) -> Result<Self> {
        let mut gates = Self::default();
        for item in s.split(',').map(str::trim).filter(|i| !i.is_empty()) {
            let (name, value) = item.split_once('=').ok_or_else(|| {
                Error::InvalidConfig(format!(
                    "--feature-gates: {item:?} is not of the form Name=true|false"
                ))
            })?;
            let name = name.trim();
            let known = KNOWN.iter().find(|(k, _)| *k == name).ok_or_else(|| {
                Error::InvalidConfig(format!(
                    "--feature-gates: unrecognized feature gate {name:?} (known: {})",
                    KNOWN.map(|(k, _)| k).join(", ")
                ))
            })?;
            let value = match value.trim().to_ascii_lowercase().as_str() {
                "true" => true,
                "false" => false,
                v => {
                    return Err(Error::InvalidConfig(format!(
                        "--feature-gates: invalid value {v:?} for {name} (true or false)"
                    )));
                }
            };
            gates.0.insert(known.0, value);
        }
        Ok(gates)
    }

    /// Sets one known gate (builder style); unknown names are ignored.
    pub fn with(mut self, name: &str, value: bool) -> Self {
        if let Some((k, _)) = KNOWN.iter().find(|(k, _)| *k == name) {
            self.0.insert(k, value);
        }
        self
    }

    /// Whether `name` is on (unknown gates are off).
    pub fn enabled(&self, name: &str) -> bool {
        self.0.get(name).copied().unwrap_or(false)
    }
}

impl std::fmt::Display for FeatureGates {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let parts: Vec<String> = self.0.iter().map(|(k, v)| format!("{k}={v}")).collect();
        f.write_str(&parts.join(","))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_parse_and_errors() {
        let d = FeatureGates::default();
        assert!(!d.enabled(FAILOVER));
        assert!(d.enabled(GRACEFUL_EVICTION));
        let g = FeatureGates::parse("Failover=true, GracefulEviction=false").unwrap();
        assert!(g.enabled(FAILOVER));
        assert!(!g.enabled(GRACEFUL_EVICTION));
        assert_eq!(
            g.to_string(),
            "Failover=true,GracefulEviction=false,PriorityBasedScheduling=true,PropagationPolicyPreemption=false"
        );
        assert_eq!(FeatureGates::parse("").unwrap(), d);
        for bad in ["Failover", "Nope=true", "Failover=yes"] {
            let e = FeatureGates::parse(bad).unwrap_err().to_string();
            assert!(e.contains("--feature-gates"), "{bad}: {e}");
        }
        assert!(
            FeatureGates::parse("Nope=true")
                .unwrap_err()
                .to_string()
                .contains("Failover, GracefulEviction, PropagationPolicyPreemption")
        );
    }
}
