//! Property tests for the pure functions that see network input: none may panic, and their
//! answers stay within bounds.

use beehive_proxy::config::ProxyConfig;
use beehive_proxy::host::{map_host, Target};
use beehive_proxy::key::normalise;
use beehive_proxy::range::{parse_range, RangeAnswer};
use beehive_proxy::CachedObject;
use proptest::prelude::*;

proptest! {
    #[test]
    fn decode_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
        let _ = CachedObject::decode(&bytes);
        let mut framed = b"BHO2".to_vec();
        framed.extend_from_slice(&bytes);
        let _ = CachedObject::decode(&framed);
    }

    #[test]
    fn host_mapping_never_panics(host in "\\PC{0,80}", open in any::<bool>()) {
        let cfg = ProxyConfig { open_mode: open, ..ProxyConfig::default() };
        if let Ok(t) = map_host(&host, &cfg) {
            prop_assert!(t.port != 0);
            prop_assert!(!t.host.is_empty());
        }
    }

    /// Host headers shaped like the real thing and its abuses: labels, the CDN suffix, ports
    /// (none, empty, zero, huge), IPv4 and bracketed IPv6 literals, stray dots and percent
    /// escapes, upper case.
    #[test]
    fn host_shapes_never_panic_and_map_to_a_real_target(
        labels in prop::collection::vec("[a-zA-Z0-9%_\\-]{0,12}|[0-9]{1,3}|\\[[0-9a-f:.]{0,20}\\]", 0..6),
        suffix in prop::sample::select(vec!["", ".beehive.localhost", ".BEEHIVE.localhost.", ".localhost"]),
        port in prop::option::of("[0-9]{0,7}"),
        open in any::<bool>(),
    ) {
        let mut host = labels.join(".");
        host.push_str(suffix);
        if let Some(p) = port {
            host.push(':');
            host.push_str(&p);
        }
        let mut cfg = ProxyConfig { open_mode: open, ..ProxyConfig::default() };
        cfg.origins.insert("site".into(), ("127.0.0.1".into(), 9));
        if let Ok(t) = map_host(&host, &cfg) {
            prop_assert!(t.port != 0);
            prop_assert!(!t.host.is_empty());
            prop_assert!(open || !t.open, "an open target only in open mode");
        }
    }

    #[test]
    fn ranges_stay_inside_the_body(v in "bytes=[0-9]{0,4}-[0-9]{0,4}", len in 0u64..5000) {
        match parse_range(Some(&v), len) {
            RangeAnswer::Part { start, end } => prop_assert!(start <= end && end < len),
            RangeAnswer::Whole | RangeAnswer::Unsatisfiable => {}
        }
    }

    #[test]
    fn normalisation_is_idempotent(path in "/[a-z/]{0,10}(\\?[a-z_=&]{0,30})?", sort in any::<bool>()) {
        let cfg = ProxyConfig { sort_query: sort, ..ProxyConfig::default() };
        let t = Target { host: "o".into(), port: 80, open: false };
        let once = normalise(&t, &path, &cfg);
        let prefix = "http://o:80";
        let twice = normalise(&t, &once[prefix.len()..], &cfg);
        prop_assert_eq!(once, twice);
    }
}
