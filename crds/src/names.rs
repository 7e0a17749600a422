//! Object naming rules Karmada uses (`pkg/util/names/names.go`): execution
//! namespaces, binding and Work names, derived objects. Controllers must use
//! these so that objects land under the same names Karmada would give them.

use crate::division::fnv1a32;

/// Prefix of a member cluster's execution namespace.
pub const EXECUTION_SPACE_PREFIX: &str = "karmada-es-";
/// Namespace of Karmada's own components.
pub const NAMESPACE_KARMADA_SYSTEM: &str = "karmada-system";
/// Namespace of cluster secrets and leases.
pub const NAMESPACE_KARMADA_CLUSTER: &str = "karmada-cluster";

/// `karmada-es-<cluster>` (Karmada `GenerateExecutionSpaceName`).
pub fn execution_space_name(cluster: &str) -> String {
    format!("{EXECUTION_SPACE_PREFIX}{cluster}")
}

/// The cluster of an execution namespace, `None` if the name lacks the
/// prefix (Karmada `GetClusterName`).
pub fn cluster_of_execution_space(namespace: &str) -> Option<&str> {
    namespace.strip_prefix(EXECUTION_SPACE_PREFIX)
}

/// Whether a namespace is reserved: `karmada-system`, `karmada-cluster` or an
/// execution namespace (Karmada `IsReservedNamespace`).
pub fn is_reserved_namespace(namespace: &str) -> bool {
    namespace == NAMESPACE_KARMADA_SYSTEM
        || namespace == NAMESPACE_KARMADA_CLUSTER
        || namespace.starts_with(EXECUTION_SPACE_PREFIX)
}

/// Kubernetes' `rand.SafeEncodeString`: each byte mapped into an alphabet
/// without vowels and confusable characters.
pub fn safe_encode(s: &str) -> String {
    const ALPHABET: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";
    s.bytes()
        .map(|b| ALPHABET[usize::from(b) % ALPHABET.len()] as char)
        .collect()
}

fn hash_encode(s: &str) -> String {
    safe_encode(&fnv1a32(s.as_bytes()).to_string())
}

/// (Cluster)ResourceBinding name: lowercase(`<name>-<kind>`) with `:`
/// replaced by `.` (Karmada `GenerateBindingName`).
pub fn binding_name(kind: &str, name: &str) -> String {
    format!("{}-{}", name.replace(':', "."), kind).to_lowercase()
}

/// Work name: `<name>-<hash>` where the hash covers
/// lowercase(`[<namespace>-]<name>-<kind>`) (Karmada `GenerateWorkName`).
pub fn work_name(kind: &str, name: &str, namespace: &str) -> String {
    let name = name.replace(':', ".").to_lowercase();
    let key = if namespace.is_empty() {
        format!("{name}-{kind}")
    } else {
        format!("{namespace}-{name}-{kind}")
    }
    .to_lowercase();
    format!("{name}-{}", hash_encode(&key))
}

/// The hash used in `resourcebinding.karmada.io/depended-by-<hash>` labels
/// (Karmada `GenerateBindingReferenceKey`).
pub fn binding_reference_key(namespace: &str, name: &str) -> String {
    if namespace.is_empty() {
        hash_encode(name)
    } else {
        hash_encode(&format!("{namespace}/{name}"))
    }
}

/// `imported-<cluster>-<slice>` (Karmada `GenerateEndpointSliceName`).
pub fn imported_endpoint_slice_name(slice: &str, cluster: &str) -> String {
    format!("imported-{cluster}-{slice}")
}

/// `derived-<service>` (Karmada `GenerateDerivedServiceName`).
pub fn derived_service_name(service: &str) -> String {
    format!("derived-{service}")
}

/// `karmada-<cluster>`: the ServiceAccount Karmada uses in a member (Karmada
/// `GenerateServiceAccountName`).
pub fn service_account_name(cluster: &str) -> String {
    format!("karmada-{cluster}")
}

/// `<cluster>-impersonator` (Karmada `GenerateImpersonationSecretName`).
pub fn impersonation_secret_name(cluster: &str) -> String {
    format!("{cluster}-impersonator")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn execution_spaces() {
        assert_eq!(
            execution_space_name("member-cluster-normal"),
            "karmada-es-member-cluster-normal"
        );
        assert_eq!(
            cluster_of_execution_space("karmada-es-member-cluster-normal"),
            Some("member-cluster-normal")
        );
        assert_eq!(cluster_of_execution_space("member-cluster-normal"), None);
        assert_eq!(cluster_of_execution_space(""), None);
        assert!(is_reserved_namespace("karmada-system"));
        assert!(is_reserved_namespace("karmada-cluster"));
        assert!(is_reserved_namespace("karmada-es-m1"));
        assert!(!is_reserved_namespace("default"));
    }

    #[test]
    fn binding_names() {
        let cases = [
            ("Pods", "pod", "pod-pods"),
            ("Pods", "Pod", "pod-pods"),
            (
                "Role",
                "system:controller:tom",
                "system.controller.tom-role",
            ),
            ("ClusterRole", "system::tom", "system..tom-clusterrole"),
            (
                "RoleBinding",
                "system::tt:tom",
                "system..tt.tom-rolebinding",
            ),
            (
                "ClusterRoleBinding",
                "system:tt:tom",
                "system.tt.tom-clusterrolebinding",
            ),
            ("Deployment", "nginx", "nginx-deployment"),
        ];
        for (kind, name, want) in cases {
            assert_eq!(binding_name(kind, name), want, "{kind} {name}");
        }
    }

    #[test]
    fn work_names() {
        assert_eq!(
            work_name("Deployment", "nginx", "default"),
            "nginx-687f7fb96f"
        );
        assert_eq!(
            work_name("Pod", "pod", ""),
            format!("pod-{}", safe_encode(&fnv1a32(b"pod-pod").to_string()))
        );
        assert_eq!(
            work_name("Pods", "Pod", "default"),
            format!(
                "pod-{}",
                safe_encode(&fnv1a32(b"default-pod-pods").to_string())
            )
        );
        assert_eq!(
            work_name("Pods", "work:pod", "default"),
            format!(
                "work.pod-{}",
                safe_encode(&fnv1a32(b"default-work.pod-pods").to_string())
            )
        );
    }

    #[test]
    fn safe_encoding_maps_digits() {
        assert_eq!(safe_encode("0123456789"), "456789bcdf");
        assert_eq!(
            binding_reference_key("", "c"),
            safe_encode(&fnv1a32(b"c").to_string())
        );
        assert_eq!(
            binding_reference_key("a", "b-c"),
            safe_encode(&fnv1a32(b"a/b-c").to_string())
        );
    }

    #[test]
    fn derived_names() {
        assert_eq!(imported_endpoint_slice_name("s1", "m1"), "imported-m1-s1");
        assert_eq!(derived_service_name("serve"), "derived-serve");
        assert_eq!(service_account_name("m1"), "karmada-m1");
        assert_eq!(impersonation_secret_name("m1"), "m1-impersonator");
    }
}
