//! Property tests for the node's configuration file: whatever a TOML file holds (keys this
//! node knows with values of any type and range, unknown keys, broken syntax), reading and
//! validating it never panics; it is either a configuration or a `ConfigError`. The file
//! is the one input besides the network that a node parses before anyone checked it.

use beehive::node::config::{ConfigError, NodeArgs, RawConfig, Settings};
use proptest::prelude::*;
use proptest::strategy::ValueTree;

/// Every key of the file (see deploy/beehive.toml), with `intervals.*` under its table.
const KEYS: &[&str] = &[
    "http",
    "rpc",
    "admin",
    "advertise",
    "join",
    "mode",
    "target_hops",
    "budget",
    "max_body_bytes",
    "shutdown_ms",
    "successors",
    "suffix",
    "store_bytes",
    "default_ttl",
    "rate_per_sec",
    "open",
    "stale_if_error",
    "stale_while_revalidate",
    "origin_timeout_ms",
    "header_timeout_ms",
    "idle_timeout_ms",
];
const INTERVALS: &[&str] =
    &["stabilize_ms", "fix_fingers_ms", "check_predecessor_ms", "merge_ms", "replication_ms"];

/// A TOML value of any type, with edge cases of each.
fn value() -> BoxedStrategy<String> {
    prop_oneof![
        any::<i64>().prop_map(|n| n.to_string()),
        prop::sample::select(vec![0i64, 1, -1, u32::MAX as i64, i64::MAX, i64::MIN])
            .prop_map(|n| n.to_string()),
        any::<f64>().prop_map(|f| format!("{f:?}")),
        prop::sample::select(vec!["nan", "inf", "-inf", "1e308", "0.0", "-0.0"])
            .prop_map(String::from),
        any::<bool>().prop_map(|b| b.to_string()),
        string_value(),
        prop::collection::vec("[a-z0-9.:]{0,12}", 0..4).prop_map(|v| format!(
            "[{}]",
            v.iter().map(|s| format!("\"{s}\"")).collect::<Vec<_>>().join(", ")
        )),
    ]
    .boxed()
}

/// A TOML string: printable junk, or one of the shapes the string keys expect, right or not.
fn string_value() -> BoxedStrategy<String> {
    prop_oneof![
        "[ -~&&[^\"\\\\]]{0,40}".prop_map(|s| format!("\"{s}\"")),
        prop::sample::select(vec![
            "\"127.0.0.1:0\"",
            "\"0.0.0.0:7000\"",
            "\"[::1]:7000\"",
            "\"localhost\"",
            "\"node1:70000\"",
            "\"chord\"",
            "\"beehive\"",
            "\"http://example.org\"",
            "\"site=http://127.0.0.1:9\"",
            "\"\"",
        ])
        .prop_map(String::from),
    ]
    .boxed()
}

/// A value of the type `key` takes (so most files get past the parser to validation), of
/// any value in that type; now and then a value of any type.
fn value_for(key: &'static str) -> BoxedStrategy<String> {
    let typed: BoxedStrategy<String> = match key {
        // Addresses and the mode are typed in the file: most values should be of the type.
        "http" | "rpc" | "admin" | "advertise" => prop_oneof![
            3 => (any::<[u8; 4]>(), any::<u16>()).prop_map(|(ip, port)| {
                format!("\"{}:{port}\"", std::net::Ipv4Addr::from(ip))
            }),
            1 => string_value(),
        ]
        .boxed(),
        "mode" => {
            prop::sample::select(vec!["\"chord\"", "\"passive\"", "\"beehive\"", "\"pastry\""])
                .prop_map(String::from)
                .boxed()
        }
        "suffix" | "origin" => string_value(),
        "join" => {
            let seed = prop_oneof![
                3 => ("[a-z][a-z0-9]{0,8}", any::<u16>()).prop_map(|(h, p)| format!("{h}:{p}")),
                1 => "[a-z0-9.:]{0,16}",
            ];
            prop::collection::vec(seed, 0..3).prop_map(|v| format!("{v:?}")).boxed()
        }
        "target_hops" => any::<f64>().prop_map(|f| format!("{f:?}")).boxed(),
        "open" => any::<bool>().prop_map(|b| b.to_string()).boxed(),
        _ => prop_oneof![
            prop::sample::select(vec![0u64, 1, 2, 15, 1000, u32::MAX as u64, i64::MAX as u64]),
            any::<u32>().prop_map(u64::from),
        ]
        .prop_map(|n| n.to_string())
        .boxed(),
    };
    prop_oneof![29 => typed, 1 => value()].boxed()
}

/// Keeps each key's first line: a key twice is a parse error, and most files should parse.
fn first_of_each(lines: Vec<String>) -> String {
    let mut seen = std::collections::HashSet::new();
    lines
        .into_iter()
        .filter(|l| seen.insert(l.split(" = ").next().unwrap_or_default().to_string()))
        .collect()
}

/// A file of known keys (and the odd unknown one) with arbitrary values, tables included.
fn file_text() -> impl Strategy<Value = String> {
    let line = prop::sample::select(KEYS.to_vec())
        .prop_flat_map(|k| value_for(k).prop_map(move |v| format!("{k} = {v}\n")));
    let interval = prop::sample::select(INTERVALS.to_vec())
        .prop_flat_map(|k| value_for(k).prop_map(move |v| format!("{k} = {v}\n")));
    let origin = ("[a-z]{0,6}", value_for("origin")).prop_map(|(k, v)| format!("{k:?} = {v}\n"));
    (
        prop::collection::vec(line, 0..12),
        prop::collection::vec(interval, 0..4),
        prop::collection::vec(origin, 0..3),
        prop::bool::weighted(0.05),
    )
        .prop_map(|(lines, intervals, origins, unknown)| {
            let mut text = first_of_each(lines);
            // Now and then a key this node does not know (a typo): refused by the parser.
            if unknown {
                text.push_str("rcp = \"127.0.0.1:7000\"\n");
            }
            text.push_str("[intervals]\n");
            text.push_str(&first_of_each(intervals));
            text.push_str("[origins]\n");
            text.push_str(&first_of_each(origins));
            text
        })
}

/// Parses `text` as the node does, then validates it with a good secret file and no flags.
fn load(text: &str, secret_file: &std::path::Path) -> Result<(), ConfigError> {
    let Ok(mut file) = toml::from_str::<Settings>(text) else { return Ok(()) };
    file.secret_file = Some(secret_file.to_owned());
    RawConfig { args: NodeArgs::default(), file, env_secret: None, env_admin_token: None }
        .validate()
        .map(|_| ())
}

/// Written once: the tests run in parallel and a rewrite would truncate it under a reader.
fn secret_file() -> std::path::PathBuf {
    static PATH: std::sync::OnceLock<std::path::PathBuf> = std::sync::OnceLock::new();
    PATH.get_or_init(|| {
        let name = format!("beehive-config-props-{}", std::process::id());
        let path = std::env::temp_dir().join(name);
        std::fs::write(&path, "a cluster secret of at least 16 bytes\n").unwrap();
        path
    })
    .clone()
}

/// Bounded so the file runs in a second or two in a debug build.
fn config() -> ProptestConfig {
    ProptestConfig { cases: 512, failure_persistence: None, ..ProptestConfig::default() }
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn any_file_of_known_keys_is_a_config_or_an_error(text in file_text()) {
        let secret = secret_file();
        // A panic fails the property; an error names what to fix.
        if let Err(e) = load(&text, &secret) {
            prop_assert!(!e.to_string().is_empty());
        }
    }

    #[test]
    fn arbitrary_text_never_panics(text in "\\PC{0,200}") {
        let secret = secret_file();
        let _ = load(&text, &secret);
    }
}

#[test]
fn the_generator_reaches_validation_and_both_outcomes() {
    // The property above is only worth something if generated files parse and then both
    // pass and fail validation: check the two ends by hand.
    let secret = secret_file();
    let ok = load("rpc = \"127.0.0.1:0\"\n[intervals]\n[origins]\n", &secret);
    assert!(ok.is_ok(), "{ok:?}");
    let e = load("rpc = \"0.0.0.0:7000\"\n[intervals]\n[origins]\n", &secret).unwrap_err();
    assert!(e.to_string().contains("advertise"), "{e}");
    let e = load("[intervals]\nstabilize_ms = 0\n[origins]\n", &secret).unwrap_err();
    assert!(e.to_string().contains("stabilize"), "{e}");
}

#[test]
fn most_generated_files_reach_validation() {
    // The properties are only as good as the share of files that get past the parser.
    let secret = secret_file();
    let mut runner = proptest::test_runner::TestRunner::deterministic();
    let strategy = file_text();
    let (mut parsed, total) = (0, 400);
    for _ in 0..total {
        let text = strategy.new_tree(&mut runner).unwrap().current();
        if toml::from_str::<Settings>(&text).is_ok() {
            parsed += 1;
            let _ = load(&text, &secret);
        }
    }
    assert!(parsed * 2 > total, "only {parsed} of {total} generated files parse");
}
