//! The normalised cache key: `http://host:port/path?query`, lowercased host, tracking
//! parameters dropped, query optionally sorted. Its blake3 is the object's [`ObjectKey`].

use crate::config::ProxyConfig;
use crate::host::Target;

/// An object's name on the ring: the first 16 bytes of the blake3 hash of its normalised
/// cache key (big-endian), which is also its ring id. 128 bits keep accidental collisions out
/// of reach for any catalogue a cluster can hold.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ObjectKey(pub u128);

impl ObjectKey {
    /// The key of a normalised cache key string.
    pub fn of(normalised: &str) -> Self {
        let digest = blake3::hash(normalised.as_bytes());
        let mut first = [0u8; 16];
        first.copy_from_slice(&digest.as_bytes()[..16]);
        ObjectKey(u128::from_be_bytes(first))
    }
}

/// The normalised cache key of `path_and_query` at `target`. It is also the URL the origin is
/// asked for, so one key always names one origin resource.
pub fn normalise(target: &Target, path_and_query: &str, config: &ProxyConfig) -> String {
    let (path, query) = match path_and_query.split_once('?') {
        Some((p, q)) => (p, Some(q)),
        None => (path_and_query, None),
    };
    let path = if path.starts_with('/') { path } else { "/" };
    // Built by hand, not with `format!`: this runs for every request, hits included.
    let mut port = itoa::Buffer::new();
    let port = port.format(target.port);
    let mut out = String::with_capacity(8 + target.host.len() + port.len() + path_and_query.len());
    out.push_str("http://");
    out.push_str(&target.host);
    out.make_ascii_lowercase();
    out.push(':');
    out.push_str(port);
    out.push_str(path);
    if let Some(q) = query {
        let mut params: Vec<&str> = q
            .split('&')
            .filter(|p| !p.is_empty())
            .filter(|p| !dropped(p.split('=').next().unwrap_or(p), &config.drop_params))
            .collect();
        if config.sort_query {
            params.sort_unstable();
        }
        if !params.is_empty() {
            out.push('?');
            out.push_str(&params.join("&"));
        }
    }
    out
}

fn dropped(name: &str, drop: &[String]) -> bool {
    drop.iter().any(|d| match d.strip_suffix('*') {
        Some(prefix) => name.starts_with(prefix),
        None => name == d,
    })
}

/// The key of one variant of a `Vary` resource: the primary key's string, a newline, then
/// `name: value` of each varying request header, in the order the response's `Vary` lists them.
pub fn variant_key(normalised: &str, vary_values: &[(String, String)]) -> ObjectKey {
    let mut s = String::from(normalised);
    for (name, value) in vary_values {
        s.push('\n');
        s.push_str(name);
        s.push_str(": ");
        s.push_str(value);
    }
    ObjectKey::of(&s)
}

/// The path and query part of a normalised key (what the origin is asked for).
pub fn path_of(normalised: &str) -> &str {
    let rest = normalised.strip_prefix("http://").unwrap_or(normalised);
    match rest.find('/') {
        Some(i) => &rest[i..],
        None => "/",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t() -> Target {
        Target { host: "Example.COM".into(), port: 80, open: true }
    }

    #[test]
    fn normalisation_table() {
        let plain = ProxyConfig::default();
        let sorted = ProxyConfig { sort_query: true, ..ProxyConfig::default() };
        let cases = [
            (&plain, "/a/b", "http://example.com:80/a/b"),
            (&plain, "", "http://example.com:80/"),
            (&plain, "/p?b=2&a=1", "http://example.com:80/p?b=2&a=1"),
            (&sorted, "/p?b=2&a=1", "http://example.com:80/p?a=1&b=2"),
            (&plain, "/p?utm_source=x&a=1&fbclid=z", "http://example.com:80/p?a=1"),
            (&plain, "/p?utm_medium=x", "http://example.com:80/p"),
            (&plain, "/p?&&a", "http://example.com:80/p?a"),
            (&plain, "/p?", "http://example.com:80/p"),
        ];
        for (cfg, input, want) in cases {
            assert_eq!(normalise(&t(), input, cfg), want, "{input}");
        }
        assert_eq!(path_of("http://example.com:80/p?a=1"), "/p?a=1");
        assert_eq!(path_of("http://example.com:80"), "/");
    }

    #[test]
    fn variants_differ_by_value() {
        let a = variant_key("k", &[("accept-language".into(), "en".into())]);
        let b = variant_key("k", &[("accept-language".into(), "fr".into())]);
        assert_ne!(a, b);
        assert_ne!(a, ObjectKey::of("k"));
    }
}
