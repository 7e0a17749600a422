//! Resource quantities (`100m`, `1.5`, `128Mi`, `1G`, `1e3`): parsing into CPU
//! millicores and bytes, and formatting back.

/// Parses a Kubernetes quantity into its value in base units.
pub fn parse(s: &str) -> Option<f64> {
    let s = s.trim();
    if s.is_empty() {
        return None;
    }
    const SUFFIXES: [(&str, f64); 15] = [
        ("Ki", 1024.0),
        ("Mi", 1048576.0),
        ("Gi", 1073741824.0),
        ("Ti", 1099511627776.0),
        ("Pi", 1125899906842624.0),
        ("Ei", 1152921504606846976.0),
        ("n", 1e-9),
        ("u", 1e-6),
        ("m", 1e-3),
        ("k", 1e3),
        ("M", 1e6),
        ("G", 1e9),
        ("T", 1e12),
        ("P", 1e15),
        ("E", 1e18),
    ];
    for (suffix, factor) in SUFFIXES {
        if let Some(number) = s.strip_suffix(suffix) {
            return number.parse::<f64>().ok().map(|n| n * factor);
        }
    }
    s.parse::<f64>().ok()
}

/// CPU in millicores (rounded up), from a quantity such as `250m` or `2`.
pub fn cpu_millis(s: &str) -> Option<i64> {
    parse(s).map(|v| (v * 1000.0).ceil() as i64)
}

/// Bytes (rounded up), from a quantity such as `128Mi`.
pub fn bytes(s: &str) -> Option<i64> {
    parse(s).map(|v| v.ceil() as i64)
}

/// Formats millicores as a quantity (`2` or `250m`).
pub fn format_cpu(millis: i64) -> String {
    if millis % 1000 == 0 {
        (millis / 1000).to_string()
    } else {
        format!("{millis}m")
    }
}

/// Formats bytes as a quantity, in the largest binary unit that divides it.
pub fn format_bytes(bytes: i64) -> String {
    for (suffix, factor) in [("Gi", 1i64 << 30), ("Mi", 1 << 20), ("Ki", 1 << 10)] {
        if bytes != 0 && bytes % factor == 0 {
            return format!("{}{suffix}", bytes / factor);
        }
    }
    bytes.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_formats() {
        assert_eq!(cpu_millis("100m"), Some(100));
        assert_eq!(cpu_millis("1.5"), Some(1500));
        assert_eq!(cpu_millis("2"), Some(2000));
        assert_eq!(bytes("128Mi"), Some(128 << 20));
        assert_eq!(bytes("1G"), Some(1_000_000_000));
        assert_eq!(bytes("1e3"), Some(1000));
        assert_eq!(bytes("x"), None);
        assert_eq!(format_cpu(4000), "4");
        assert_eq!(format_cpu(250), "250m");
        assert_eq!(format_bytes(8 << 30), "8Gi");
        assert_eq!(format_bytes(1536 << 10), "1536Ki");
    }
}
