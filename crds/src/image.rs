//! Container image references, parsed the way Karmada's imageOverrider does
//! (`pkg/util/imageparser`): the distribution reference grammar
//! `[host[:port]/]repository[:tag][@digest]`, with the host split off only
//! when the first path segment contains `.` or `:` or is `localhost`. No
//! default registry and no `library/` prefix is ever added; when both a tag
//! and a digest are present the tag is kept and the digest dropped.

use std::fmt;

/// Why an image string is not a valid reference (distribution/reference errors).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    /// Empty string.
    #[error("repository name must have at least one component")]
    NameEmpty,
    /// Invalid characters or structure.
    #[error("invalid reference format")]
    InvalidFormat,
    /// Upper-case letters in the repository path.
    #[error("invalid reference format: repository name (library/{0}) must be lowercase")]
    NameContainsUppercase(String),
    /// Name longer than 255 characters.
    #[error("repository name must not be more than 255 characters")]
    NameTooLong,
    /// Digest algorithm not sha256/sha512.
    #[error("unsupported digest algorithm")]
    UnsupportedDigest,
    /// Digest hex of the wrong length.
    #[error("invalid checksum digest length")]
    InvalidDigestLength,
}

/// Result of this module.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// The parts of an image reference (Karmada `imageparser.Components`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Components {
    /// Registry host with optional port; empty when absent.
    pub hostname: String,
    /// Repository path.
    pub repository: String,
    /// Tag; empty when absent.
    pub tag: String,
    /// Digest (`algo:hex`); empty when absent or when a tag is present.
    pub digest: String,
}

impl fmt::Display for Components {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.full_repository())?;
        if !self.tag.is_empty() {
            write!(f, ":{}", self.tag)
        } else if !self.digest.is_empty() {
            write!(f, "@{}", self.digest)
        } else {
            Ok(())
        }
    }
}

impl Components {
    /// `host/repository`, or just the repository without a host.
    pub fn full_repository(&self) -> String {
        if self.hostname.is_empty() {
            self.repository.clone()
        } else {
            format!("{}/{}", self.hostname, self.repository)
        }
    }

    /// The tag if set, else the digest.
    pub fn tag_or_digest(&self) -> &str {
        if self.tag.is_empty() {
            &self.digest
        } else {
            &self.tag
        }
    }

    /// Sets the tag if `input` is a valid tag (clearing the digest), else the
    /// digest if it is a valid digest (clearing the tag), else changes nothing.
    pub fn set_tag_or_digest(&mut self, input: &str) {
        if is_tag(input) {
            self.tag = input.to_string();
            self.digest.clear();
        } else if is_digest_syntax(input) {
            self.digest = input.to_string();
            self.tag.clear();
        }
    }

    /// Removes the tag if present, else the digest.
    pub fn remove_tag_or_digest(&mut self) {
        if !self.tag.is_empty() {
            self.tag.clear();
        } else {
            self.digest.clear();
        }
    }
}

fn is_word(c: u8) -> bool {
    c.is_ascii_alphanumeric() || c == b'_'
}

/// Whether `s` matches the tag grammar `[\w][\w.-]{0,127}` (anchored).
pub fn is_tag(s: &str) -> bool {
    let b = s.as_bytes();
    !b.is_empty()
        && b.len() <= 128
        && is_word(b[0])
        && b[1..]
            .iter()
            .all(|c| is_word(*c) || *c == b'.' || *c == b'-')
}

/// Whether `s` matches the digest grammar `algorithm:hex{32,}` (anchored).
pub fn is_digest_syntax(s: &str) -> bool {
    let Some((algo, hex)) = s.split_once(':') else {
        return false;
    };
    let algo_ok = !algo.is_empty()
        && algo.split(['-', '_', '+', '.']).all(|part| {
            let b = part.as_bytes();
            !b.is_empty() && b[0].is_ascii_alphabetic() && b.iter().all(u8::is_ascii_alphanumeric)
        });
    algo_ok && hex.len() >= 32 && hex.bytes().all(|c| c.is_ascii_hexdigit())
}

fn is_path_component(s: &str) -> bool {
    // [a-z0-9]+ ((?:[._]|__|[-]+) [a-z0-9]+)*
    let b = s.as_bytes();
    if b.is_empty() || !b[0].is_ascii_lowercase() && !b[0].is_ascii_digit() {
        return false;
    }
    let alnum = |c: u8| c.is_ascii_lowercase() || c.is_ascii_digit();
    let mut i = 0;
    while i < b.len() {
        if alnum(b[i]) {
            i += 1;
            continue;
        }
        let start = i;
        while i < b.len() && !alnum(b[i]) {
            i += 1;
        }
        let sep = &s[start..i];
        let ok = sep == "." || sep == "_" || sep == "__" || sep.bytes().all(|c| c == b'-');
        if !ok || i == b.len() {
            return false;
        }
    }
    true
}

fn is_domain(s: &str) -> bool {
    let (host, port) = if let Some(rest) = s.strip_prefix('[') {
        // IPv6 literal
        let Some(end) = rest.find(']') else {
            return false;
        };
        let inner = &rest[..end];
        if inner.is_empty() || !inner.bytes().all(|c| c.is_ascii_hexdigit() || c == b':') {
            return false;
        }
        let after = &rest[end + 1..];
        return after.is_empty()
            || after
                .strip_prefix(':')
                .is_some_and(|p| !p.is_empty() && p.bytes().all(|c| c.is_ascii_digit()));
    } else {
        match s.split_once(':') {
            Some((h, p)) => (h, Some(p)),
            None => (s, None),
        }
    };
    if let Some(p) = port
        && (p.is_empty() || !p.bytes().all(|c| c.is_ascii_digit()))
    {
        return false;
    }
    !host.is_empty()
        && host.split('.').all(|c| {
            let b = c.as_bytes();
            !b.is_empty()
                && b[0].is_ascii_alphanumeric()
                && b[b.len() - 1].is_ascii_alphanumeric()
                && b.iter().all(|x| x.is_ascii_alphanumeric() || *x == b'-')
        })
}

fn valid_name(name: &str) -> bool {
    let parts: Vec<&str> = name.split('/').collect();
    match parts.as_slice() {
        [] => false,
        [only] => is_path_component(only),
        [first, rest @ ..] => {
            (is_domain(first) || is_path_component(first))
                && rest.iter().all(|p| is_path_component(p))
        }
    }
}

/// Splits a repository name into host and remote name (Karmada
/// `SplitHostname`): the first segment is a host only if it contains `.` or
/// `:` or is `localhost`.
pub fn split_hostname(name: &str) -> (&str, &str) {
    match name.find('/') {
        Some(i) if name[..i].contains(['.', ':']) || &name[..i] == "localhost" => {
            (&name[..i], &name[i + 1..])
        }
        _ => ("", name),
    }
}

/// Parses an image reference (Karmada `imageparser.Parse`).
pub fn parse(image: &str) -> Result<Components> {
    if image.is_empty() {
        return Err(Error::NameEmpty);
    }
    let (rest, digest) = match image.split_once('@') {
        Some((r, d)) => (r, Some(d)),
        None => (image, None),
    };
    let (name, tag) = match rest.rfind(':') {
        Some(i) if !rest[i..].contains('/') => (&rest[..i], Some(&rest[i + 1..])),
        _ => (rest, None),
    };
    if tag.is_some_and(|t| !is_tag(t))
        || digest.is_some_and(|d| !is_digest_syntax(d))
        || !valid_name(name)
    {
        if valid_name(&name.to_lowercase())
            && tag.is_none_or(is_tag)
            && digest.is_none_or(is_digest_syntax)
        {
            return Err(Error::NameContainsUppercase(name.to_string()));
        }
        return Err(Error::InvalidFormat);
    }
    if name.len() > 255 {
        return Err(Error::NameTooLong);
    }
    if let Some(d) = digest {
        let (algo, hex) = d.split_once(':').unwrap_or_default();
        let want = match algo {
            "sha256" => 64,
            "sha384" => 96,
            "sha512" => 128,
            _ => return Err(Error::UnsupportedDigest),
        };
        if hex.len() != want || hex.bytes().any(|c| c.is_ascii_uppercase()) {
            return Err(Error::InvalidDigestLength);
        }
    }
    let (host, repo) = split_hostname(name);
    let mut c = Components {
        hostname: host.to_string(),
        repository: repo.to_string(),
        ..Default::default()
    };
    match (tag, digest) {
        (Some(t), _) => c.tag = t.to_string(),
        (None, Some(d)) => c.digest = d.to_string(),
        (None, None) => {}
    }
    Ok(c)
}

#[cfg(test)]
mod tests {
    use super::*;

    const DIGEST: &str = "sha256:50d858e0985ecc7f60418aaf0cc5ab587f42c2570a884095a9e8ccacd0f6545c";

    #[test]
    fn parse_table() {
        let digest_image = format!("fictional.registry.example:10443/subpath/imagename@{DIGEST}");
        let cases: Vec<(&str, &str, &str, &str, &str)> = vec![
            ("pause", "", "pause", "", ""),
            (
                "subpath/imagename:v1.0.0",
                "",
                "subpath/imagename",
                "v1.0.0",
                "",
            ),
            (
                "fictional.registry.example/imagename:v1.0.0",
                "fictional.registry.example",
                "imagename",
                "v1.0.0",
                "",
            ),
            (
                "fictional.registry.example:10443/subpath/imagename:v1.0.0",
                "fictional.registry.example:10443",
                "subpath/imagename",
                "v1.0.0",
                "",
            ),
            (
                &digest_image,
                "fictional.registry.example:10443",
                "subpath/imagename",
                "",
                DIGEST,
            ),
            ("localhost/app", "localhost", "app", "", ""),
            ("localhost:5000/app:1", "localhost:5000", "app", "1", ""),
            (
                "10.10.10.10:10443/subpath/imagename",
                "10.10.10.10:10443",
                "subpath/imagename",
                "",
                "",
            ),
        ];
        for (image, host, repo, tag, digest) in cases {
            let c = parse(image).unwrap_or_else(|e| panic!("{image}: {e}"));
            assert_eq!(
                (
                    c.hostname.as_str(),
                    c.repository.as_str(),
                    c.tag.as_str(),
                    c.digest.as_str()
                ),
                (host, repo, tag, digest),
                "{image}"
            );
            assert_eq!(c.to_string(), image, "round trip of {image}");
        }
    }

    #[test]
    fn tag_wins_over_digest() {
        let c = parse(&format!("nginx:1.19@{DIGEST}")).unwrap();
        assert_eq!(c.tag, "1.19");
        assert_eq!(c.digest, "");
        assert_eq!(c.to_string(), "nginx:1.19");
    }

    #[test]
    fn split_hostname_table() {
        let cases = [
            ("", "", ""),
            ("imagename", "", "imagename"),
            ("subpath/imagename", "", "subpath/imagename"),
            (
                "fictional.registry.example/subpath/imagename",
                "fictional.registry.example",
                "subpath/imagename",
            ),
            (
                "fictional.registry.example:10443/subpath/imagename",
                "fictional.registry.example:10443",
                "subpath/imagename",
            ),
            (
                "10.10.10.10:10443/subpath/imagename",
                "10.10.10.10:10443",
                "subpath/imagename",
            ),
        ];
        for (input, host, repo) in cases {
            assert_eq!(split_hostname(input), (host, repo), "{input}");
        }
    }

    #[test]
    fn component_edits() {
        let mut c = parse("imagename:v1.0.0").unwrap();
        c.hostname = "fictional.registry.example".into();
        assert_eq!(c.to_string(), "fictional.registry.example/imagename:v1.0.0");
        c.hostname = "gcr.io".into();
        assert_eq!(c.to_string(), "gcr.io/imagename:v1.0.0");
        c.hostname.clear();
        assert_eq!(c.to_string(), "imagename:v1.0.0");

        let mut c = parse("gcr.io/kube-apiserver").unwrap();
        c.set_tag_or_digest("v1.19.0");
        assert_eq!(c.to_string(), "gcr.io/kube-apiserver:v1.19.0");
        c.remove_tag_or_digest();
        assert_eq!(c.to_string(), "gcr.io/kube-apiserver");
        c.set_tag_or_digest(DIGEST);
        assert_eq!(c.to_string(), format!("gcr.io/kube-apiserver@{DIGEST}"));
        c.remove_tag_or_digest();
        assert_eq!(c.to_string(), "gcr.io/kube-apiserver");
        c.set_tag_or_digest("not a tag!");
        assert_eq!(c.to_string(), "gcr.io/kube-apiserver");
    }

    #[test]
    fn invalid_references() {
        assert_eq!(parse(""), Err(Error::NameEmpty));
        assert!(matches!(
            parse("Nginx"),
            Err(Error::NameContainsUppercase(_))
        ));
        assert_eq!(parse("nginx:"), Err(Error::InvalidFormat));
        assert_eq!(parse("ngi nx"), Err(Error::InvalidFormat));
        assert_eq!(
            parse("nginx@md5:0123456789abcdef0123456789abcdef"),
            Err(Error::UnsupportedDigest)
        );
        assert_eq!(
            parse("nginx@sha256:0123456789abcdef0123456789abcdef"),
            Err(Error::InvalidDigestLength)
        );
        assert_eq!(
            parse(&format!("{}/x", "a".repeat(255))),
            Err(Error::NameTooLong)
        );
    }
}

#[cfg(test)]
mod props {
    use proptest::prelude::*;

    use super::*;

    fn host() -> impl Strategy<Value = String> {
        prop_oneof![
            Just(String::new()),
            "[a-z][a-z0-9]{0,6}\\.[a-z]{2,4}",
            "[a-z][a-z0-9]{0,6}\\.[a-z]{2,4}:[1-9][0-9]{1,4}",
            Just("localhost".to_string()),
            Just("localhost:5000".to_string()),
        ]
    }

    proptest! {
        /// Formatting the components and parsing them back is the identity.
        #[test]
        fn parse_inverts_display(
            host in host(),
            repo in "[a-z0-9]{1,8}(/[a-z0-9]{1,8}){0,2}",
            tag in prop_oneof![Just(String::new()), "[A-Za-z0-9_][A-Za-z0-9_.-]{0,20}"],
            digest in prop_oneof![Just(String::new()), "[0-9a-f]{64}".prop_map(|h| format!("sha256:{h}"))],
        ) {
            let c = Components { hostname: host, repository: repo, tag: tag.clone(), digest: if tag.is_empty() { digest } else { String::new() } };
            let parsed = parse(&c.to_string()).unwrap();
            prop_assert_eq!(parsed, c);
        }
    }
}
