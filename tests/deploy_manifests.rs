//! The deployment files checked offline: every YAML under `deploy/` parses, and the fields a
//! cluster needs are there and agree with each other (a schema check without a cluster:
//! kubeconform cannot be fetched here). Node command lines in the compose file and the
//! systemd unit are parsed and validated by the node's own configuration code.

use beehive::node::config::{Mode, NodeArgs, NodeConfig, RawConfig, Seed, Settings};
use clap::Parser;
use serde::Deserialize;
use serde_norway::Value;
use std::collections::BTreeMap;
use std::net::{Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};

fn deploy() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("deploy")
}

/// Every document of one YAML file (files may hold several, separated by `---`).
fn documents(path: &Path) -> Vec<Value> {
    let text = std::fs::read_to_string(path).unwrap();
    serde_norway::Deserializer::from_str(&text)
        .map(|d| Value::deserialize(d).unwrap_or_else(|e| panic!("{}: {e}", path.display())))
        .filter(|v| !v.is_null())
        .collect()
}

fn yaml_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            yaml_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "yaml" || e == "yml") {
            out.push(path);
        }
    }
}

/// `v` at a dotted path, panicking with the path when it is missing.
fn at<'a>(v: &'a Value, path: &str) -> &'a Value {
    let mut cur = v;
    for part in path.split('.') {
        cur = match part.parse::<usize>() {
            Ok(i) => cur.get(i),
            Err(_) => cur.get(part),
        }
        .unwrap_or_else(|| panic!("missing `{path}` (at `{part}`)"));
    }
    cur
}

fn text<'a>(v: &'a Value, path: &str) -> &'a str {
    at(v, path).as_str().unwrap_or_else(|| panic!("`{path}` is not a string"))
}

fn list<'a>(v: &'a Value, path: &str) -> &'a Vec<Value> {
    at(v, path).as_sequence().unwrap_or_else(|| panic!("`{path}` is not a list"))
}

fn string_map(v: &Value, path: &str) -> BTreeMap<String, String> {
    at(v, path)
        .as_mapping()
        .unwrap_or_else(|| panic!("`{path}` is not a mapping"))
        .iter()
        .map(|(k, v)| (k.as_str().unwrap().to_string(), v.as_str().unwrap().to_string()))
        .collect()
}

fn is_subset(small: &BTreeMap<String, String>, big: &BTreeMap<String, String>) -> bool {
    !small.is_empty() && small.iter().all(|(k, v)| big.get(k) == Some(v))
}

#[derive(Debug, Parser)]
struct NodeCli {
    #[command(flatten)]
    args: NodeArgs,
}

/// Validates `beehive node ARGS…` with the node's own code; a secret file stands in for the
/// real secret. Returns the validated configuration.
fn validate_node_args(args: &[&str], file: Option<Settings>) -> NodeConfig {
    static CALLS: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    let n = CALLS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let name = format!("beehive-deploy-test-{}-{n}", std::process::id());
    let secret = std::env::temp_dir().join(name);
    std::fs::write(&secret, "a-test-secret-of-enough-bytes").unwrap();
    let mut cli = NodeCli::try_parse_from(std::iter::once("node").chain(args.iter().copied()))
        .unwrap_or_else(|e| panic!("`beehive node {}`: {e}", args.join(" ")));
    cli.args.config = None;
    cli.args.settings.secret_file = Some(secret.clone());
    let file = file.unwrap_or_default();
    let config = RawConfig { args: cli.args, file, ..RawConfig::default() }.validate();
    let _ = std::fs::remove_file(&secret);
    config.unwrap_or_else(|e| panic!("`beehive node {}`: {e}", args.join(" ")))
}

#[test]
fn every_yaml_file_parses() {
    let mut files = Vec::new();
    yaml_files(&deploy(), &mut files);
    assert!(files.len() >= 5, "expected compose.yaml and the k8s manifests, found {files:?}");
    for f in files {
        assert!(!documents(&f).is_empty(), "{} holds no document", f.display());
    }
}

/// All Kubernetes objects under deploy/k8s, by kind.
fn k8s_objects() -> BTreeMap<String, Vec<Value>> {
    let mut files = Vec::new();
    yaml_files(&deploy().join("k8s"), &mut files);
    let mut by_kind: BTreeMap<String, Vec<Value>> = BTreeMap::new();
    for f in files {
        for doc in documents(&f) {
            let kind = text(&doc, "kind").to_string();
            assert!(at(&doc, "apiVersion").as_str().is_some(), "{}: no apiVersion", f.display());
            if kind != "Kustomization" {
                assert!(!text(&doc, "metadata.name").is_empty());
            }
            by_kind.entry(kind).or_default().push(doc);
        }
    }
    by_kind
}

#[test]
fn statefulset_has_a_headless_service_probes_and_the_secret() {
    let objects = k8s_objects();
    let sets = &objects["StatefulSet"];
    assert_eq!(sets.len(), 1);
    let set = &sets[0];
    assert_eq!(text(set, "apiVersion"), "apps/v1");
    let services = &objects["Service"];
    let service_name = text(set, "spec.serviceName");
    let headless = services
        .iter()
        .find(|s| text(s, "metadata.name") == service_name)
        .unwrap_or_else(|| panic!("no Service named {service_name}"));
    assert_eq!(text(headless, "spec.clusterIP"), "None", "the peer Service must be headless");

    let template_labels = string_map(set, "spec.template.metadata.labels");
    let selector = string_map(set, "spec.selector.matchLabels");
    assert!(is_subset(&selector, &template_labels), "selector {selector:?} vs {template_labels:?}");
    assert!(at(set, "spec.replicas").as_u64().unwrap() >= 3);

    let containers = list(set, "spec.template.spec.containers");
    let node = containers.iter().find(|c| text(c, "name") == "beehive").expect("beehive container");
    assert!(!text(node, "image").is_empty());
    let args: Vec<&str> = list(node, "args").iter().map(|a| a.as_str().unwrap()).collect();
    assert_eq!(args.first(), Some(&"node"), "the container runs `beehive node`");
    let port_names: Vec<&str> = list(node, "ports").iter().map(|p| text(p, "name")).collect();
    for needed in ["rpc", "http", "admin"] {
        assert!(port_names.contains(&needed), "container port `{needed}` missing");
    }
    assert_eq!(text(node, "readinessProbe.httpGet.path"), "/readyz");
    assert_eq!(text(node, "livenessProbe.httpGet.path"), "/healthz");
    for probe in ["readinessProbe", "livenessProbe"] {
        let port = at(node, &format!("{probe}.httpGet.port"));
        assert!(port.as_u64() == Some(9090) || port.as_str() == Some("admin"), "{probe} port");
    }
    for r in ["requests.cpu", "requests.memory", "limits.cpu", "limits.memory"] {
        at(node, &format!("resources.{r}"));
    }

    // The Secret is referenced, and holds the referenced key.
    let secrets = &objects["Secret"];
    let env = list(node, "env");
    let secret_ref = env
        .iter()
        .find_map(|e| e.get("valueFrom").and_then(|v| v.get("secretKeyRef")))
        .expect("the node's env references the cluster Secret");
    let secret = secrets
        .iter()
        .find(|s| text(s, "metadata.name") == text(secret_ref, "name"))
        .expect("the referenced Secret is defined");
    let key = text(secret_ref, "key");
    let data = secret.get("stringData").or_else(|| secret.get("data")).expect("Secret data");
    assert!(data.get(key).is_some(), "Secret lacks key {key}");
    let env_names: Vec<&str> = env.iter().map(|e| text(e, "name")).collect();
    for needed in ["BEEHIVE_SECRET", "BEEHIVE_ADVERTISE", "BEEHIVE_RPC", "BEEHIVE_ADMIN"] {
        assert!(env_names.contains(&needed), "env {needed} missing");
    }

    // Every Service selects the pods and targets a named container port.
    for s in services {
        let sel = string_map(s, "spec.selector");
        assert!(is_subset(&sel, &template_labels), "{} selects no pod", text(s, "metadata.name"));
        for p in list(s, "spec.ports") {
            if let Some(target) = p.get("targetPort").and_then(Value::as_str) {
                assert!(port_names.contains(&target), "targetPort {target} is no container port");
            }
        }
    }

    // Volumes name ConfigMaps that exist; the config they carry is a valid node config once
    // the init container puts the seeds in front of it.
    let configmaps = &objects["ConfigMap"];
    for v in list(set, "spec.template.spec.volumes") {
        if let Some(cm) = v.get("configMap") {
            let name = text(cm, "name");
            let map = configmaps.iter().find(|c| text(c, "metadata.name") == name);
            let map = map.unwrap_or_else(|| panic!("ConfigMap {name} is not defined"));
            let toml_text = format!(
                "join = [\"10.0.0.2:7000\"]\n{}",
                at(map, "data").get("beehive.toml").and_then(Value::as_str).expect("beehive.toml")
            );
            let file: Settings = toml::from_str(&toml_text).unwrap();
            let c = validate_node_args(
                &["--rpc", "0.0.0.0:7000", "--advertise", "10.0.0.1:7000"],
                Some(file),
            );
            assert_eq!(c.join.len(), 1);
        }
    }
}

#[test]
fn kustomization_lists_every_manifest() {
    let dir = deploy().join("k8s");
    let kust = &documents(&dir.join("kustomization.yaml"))[0];
    let listed: Vec<&str> = list(kust, "resources").iter().map(|r| r.as_str().unwrap()).collect();
    for f in &listed {
        assert!(dir.join(f).is_file(), "kustomization lists a missing file {f}");
    }
    let mut files = Vec::new();
    yaml_files(&dir, &mut files);
    for f in files {
        let name = f.file_name().unwrap().to_str().unwrap();
        assert!(name == "kustomization.yaml" || listed.contains(&name), "{name} not listed");
    }
}

#[test]
fn compose_runs_five_nodes_and_the_origin() {
    let compose = &documents(&deploy().join("compose.yaml"))[0];
    let services = at(compose, "services").as_mapping().expect("services");
    let subnet = list(compose, "networks.beehive.ipam.config")[0]
        .get("subnet")
        .and_then(Value::as_str)
        .expect("a fixed subnet")
        .to_string();
    let (net, bits) = subnet.split_once('/').unwrap();
    let net: Ipv4Addr = net.parse().unwrap();
    let mask = u32::MAX << (32 - bits.parse::<u32>().unwrap());
    let in_subnet = |ip: Ipv4Addr| u32::from(ip) & mask == u32::from(net) & mask;

    let mut nodes = Vec::new();
    let mut origin = None;
    let mut published = Vec::new();
    for (name, svc) in services {
        let name = name.as_str().unwrap();
        assert_eq!(text(svc, "image"), "beehive:local", "{name}: image");
        let command: Vec<&str> = list(svc, "command").iter().map(|a| a.as_str().unwrap()).collect();
        let ip: Ipv4Addr = text(svc, "networks.beehive.ipv4_address").parse().unwrap();
        assert!(in_subnet(ip), "{name}: {ip} outside {subnet}");
        for p in svc.get("ports").and_then(Value::as_sequence).into_iter().flatten() {
            let p = p.as_str().unwrap();
            assert!(p.starts_with("127.0.0.1:"), "{name}: publish on loopback only, not {p}");
            published.push(p.split(':').nth(1).unwrap().to_string());
        }
        match command.first() {
            Some(&"node") => nodes.push((name, ip, command, svc)),
            Some(&"origin") => origin = Some((ip, command)),
            other => panic!("{name}: unknown subcommand {other:?}"),
        }
    }
    assert_eq!(nodes.len(), 5, "five beehive nodes");
    let (origin_ip, origin_cmd) = origin.expect("the built-in origin service");
    let listen = origin_cmd.iter().position(|a| *a == "--listen").expect("origin --listen");
    let origin_port = origin_cmd[listen + 1].rsplit_once(':').unwrap().1;
    let mut unique = published.clone();
    unique.sort();
    unique.dedup();
    assert_eq!(unique.len(), published.len(), "a host port is published twice");

    let advertised: Vec<SocketAddr> = nodes
        .iter()
        .map(|(name, ip, command, svc)| {
            let env = string_map(svc, "environment");
            assert!(env.contains_key("BEEHIVE_SECRET"), "{name}: no cluster secret");
            let c = validate_node_args(&command[1..], None);
            let adv = c.advertise.expect("advertise");
            assert_eq!(adv.ip(), std::net::IpAddr::V4(*ip), "{name} advertises its own address");
            let (host, port) = &c.proxy.origins["site"];
            assert_eq!(*host, origin_ip.to_string(), "{name}: origin address");
            assert_eq!(port.to_string(), origin_port, "{name}: origin port");
            adv
        })
        .collect();
    let mut seeds = 0;
    for (name, _, command, _) in &nodes {
        let c = validate_node_args(&command[1..], None);
        for j in &c.join {
            // A service name stands for that service's fixed address.
            let addr = match j {
                Seed::Addr(a) => *a,
                Seed::Host { name: host, port } => {
                    let (_, ip, _, _) = nodes
                        .iter()
                        .find(|(n, ..)| n == host)
                        .unwrap_or_else(|| panic!("{name} joins {host}, which is not a service"));
                    SocketAddr::new((*ip).into(), *port)
                }
            };
            assert!(advertised.contains(&addr), "{name} joins {j}, which no node advertises");
        }
        seeds += usize::from(c.join.is_empty());
    }
    assert_eq!(seeds, 1, "exactly one node starts the ring");
}

/// `[Section]` → key → values (keys may repeat).
fn unit_file(text: &str) -> BTreeMap<String, BTreeMap<String, Vec<String>>> {
    let mut out: BTreeMap<String, BTreeMap<String, Vec<String>>> = BTreeMap::new();
    let mut section = String::new();
    for line in text.lines().map(str::trim) {
        if line.is_empty() || line.starts_with('#') || line.starts_with(';') {
            continue;
        }
        if let Some(s) = line.strip_prefix('[').and_then(|l| l.strip_suffix(']')) {
            section = s.to_string();
            continue;
        }
        let (k, v) = line.split_once('=').expect("key=value");
        out.entry(section.clone()).or_default().entry(k.into()).or_default().push(v.into());
    }
    out
}

#[test]
fn systemd_unit_runs_beehive_node_hardened() {
    let text = std::fs::read_to_string(deploy().join("beehive.service")).unwrap();
    let unit = unit_file(&text);
    let service = &unit["Service"];
    let exec = &service["ExecStart"];
    assert_eq!(exec.len(), 1);
    let argv: Vec<&str> = exec[0].split_whitespace().collect();
    assert!(argv[0].starts_with('/') && argv[0].ends_with("/beehive"), "absolute path: {argv:?}");
    assert_eq!(argv[1], "node");
    let args: Vec<String> = argv[2..].iter().map(|a| a.replace("%d", "/run/credentials")).collect();
    let cli =
        NodeCli::try_parse_from(std::iter::once("node").chain(args.iter().map(String::as_str)))
            .expect("ExecStart's flags parse");
    assert!(cli.args.config.is_some(), "ExecStart names the config file");
    for (key, value) in [
        ("DynamicUser", "yes"),
        ("NoNewPrivileges", "yes"),
        ("ProtectSystem", "strict"),
        ("ProtectHome", "yes"),
        ("PrivateTmp", "yes"),
        ("PrivateDevices", "yes"),
        ("KillSignal", "SIGTERM"),
    ] {
        assert_eq!(service.get(key).map(|v| v[0].as_str()), Some(value), "{key}");
    }
    assert!(service.contains_key("LoadCredential"), "the secret is passed as a credential");
    assert!(unit["Install"].contains_key("WantedBy"));
    // The example config the unit points at is the one shipped in deploy/.
    let example: Settings =
        toml::from_str(&std::fs::read_to_string(deploy().join("beehive.toml")).unwrap()).unwrap();
    validate_node_args(&[], Some(Settings { secret_file: None, ..example }));
}

#[test]
fn dockerfile_needs_no_base_image() {
    let text = std::fs::read_to_string(deploy().join("Dockerfile")).unwrap();
    let instructions: Vec<&str> =
        text.lines().map(str::trim).filter(|l| !l.is_empty() && !l.starts_with('#')).collect();
    let froms: Vec<&&str> = instructions.iter().filter(|l| l.starts_with("FROM ")).collect();
    assert_eq!(froms, [&"FROM scratch"], "one stage, from scratch: nothing to pull");
    assert!(instructions.iter().any(|l| l.starts_with("COPY beehive ")));
    assert!(instructions.iter().any(|l| l.starts_with("ENTRYPOINT ")));
    assert!(instructions.iter().any(|l| l.starts_with("USER ") && !l.contains("root")));
}

/// The StatefulSet's init container turns seed DNS names into `join = [...]`: run its script
/// with `sh` against a stand-in `nslookup` that prints busybox's format.
#[test]
fn the_seed_init_script_writes_the_join_line() {
    let objects = k8s_objects();
    let set = &objects["StatefulSet"][0];
    let init = &list(set, "spec.template.spec.initContainers")[0];
    let script = list(init, "command").last().unwrap().as_str().unwrap();
    let dir = std::env::temp_dir().join(format!("beehive-seeds-{}", std::process::id()));
    for sub in ["bin", "config", "run"] {
        std::fs::create_dir_all(dir.join(sub)).unwrap();
    }
    let fake = "#!/bin/sh\n\
        printf 'Server:\\t\\t10.96.0.10\\nAddress:\\t10.96.0.10#53\\n\\n'\n\
        case \"$1\" in\n\
          beehive-0.*) printf 'Name:\\t%s\\nAddress: 10.1.0.10\\n' \"$1\" ;;\n\
          beehive-1.*) printf 'Name:\\t%s\\nAddress: 10.1.0.11\\n' \"$1\" ;;\n\
          beehive-2.*) printf 'Name:\\t%s\\nAddress: 10.1.0.12\\n' \"$1\" ;;\n\
          *) printf \"** server can't find %s: NXDOMAIN\\n\" \"$1\"; exit 1 ;;\n\
        esac\n";
    let nslookup = dir.join("bin/nslookup");
    std::fs::write(&nslookup, fake).unwrap();
    std::process::Command::new("chmod").arg("+x").arg(&nslookup).status().unwrap();
    std::fs::write(dir.join("config/beehive.toml"), "mode = \"beehive\"\n").unwrap();
    let script = script
        .replace("/config/", &format!("{}/config/", dir.display()))
        .replace("/run/beehive", &format!("{}/run", dir.display()));
    let path = format!("{}/bin:/usr/bin:/bin", dir.display());
    for (pod, join) in [
        ("beehive-0", r#"join = ["10.1.0.11:7000"]"#),
        ("beehive-1", r#"join = ["10.1.0.10:7000"]"#),
        ("beehive-3", r#"join = ["10.1.0.10:7000", "10.1.0.12:7000"]"#),
        ("beehive-5", r#"join = ["10.1.0.10:7000"]"#),
    ] {
        let out = std::process::Command::new("sh")
            .args(["-c", &script])
            .env_clear()
            .env("PATH", &path)
            .env("POD_NAME", pod)
            .env("NAMESPACE", "default")
            .output()
            .unwrap();
        assert!(out.status.success(), "{pod}: {}", String::from_utf8_lossy(&out.stderr));
        let written = std::fs::read_to_string(dir.join("run/beehive.toml")).unwrap();
        assert_eq!(written.lines().next(), Some(join), "{pod}");
        let file: Settings = toml::from_str(&written).unwrap();
        assert_eq!(file.mode, Some(Mode::Beehive));
    }
    let _ = std::fs::remove_dir_all(&dir);
}

/// deploy/beehive.toml documents every setting (set, or commented out as `# key = …`), and
/// what it sets is the default, so the file and the code cannot drift apart.
#[test]
fn the_example_config_lists_every_setting_at_its_default() {
    let text = std::fs::read_to_string(deploy().join("beehive.toml")).unwrap();
    let example: toml::Table = toml::from_str(&text).unwrap();
    let mut all = NodeConfig::default();
    all.chord.replication.budget = Some(1.0);
    all.http = Some("127.0.0.1:8080".parse().unwrap());
    all.advertise = Some("10.0.0.5:7000".parse().unwrap());
    let mut every = Settings::of(&all);
    every.secret_file = Some("/etc/beehive/secret".into());
    let every: toml::Table = toml::from_str(&every.to_toml()).unwrap();
    let defaults: toml::Table =
        toml::from_str(&Settings::of(&NodeConfig::default()).to_toml()).unwrap();
    let documented = |key: &str| {
        text.lines()
            .map(|l| l.trim_start_matches(['#', ' ']))
            .any(|l| l.strip_prefix(key).is_some_and(|rest| rest.trim_start().starts_with('=')))
    };
    for (key, value) in &every {
        match value.as_table() {
            Some(table) if key != "origins" => {
                assert!(text.contains(&format!("[{key}]")), "no [{key}] table");
                for (sub, _) in table {
                    assert!(documented(sub), "{key}.{sub} is not in deploy/beehive.toml");
                    let set = example.get(key).and_then(|t| t.get(sub));
                    assert_eq!(set, defaults[key].get(sub), "{key}.{sub}: not the default");
                }
            }
            _ => {
                assert!(documented(key) || key == "origins", "{key} is not in deploy/beehive.toml");
                if let (Some(set), false) =
                    (example.get(key), ["secret_file", "origins"].contains(&key.as_str()))
                {
                    assert_eq!(Some(set), defaults.get(key), "{key}: not the default");
                }
            }
        }
    }
}

/// `beehive node --check` in a child process: flags over `BEEHIVE_*` over the file over the
/// defaults, printed as a file that reads back; an unknown key exits 2 and names itself.
#[test]
fn node_check_prints_the_layers_merged() {
    let dir = std::env::temp_dir().join(format!("beehive-check-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("node.toml");
    std::fs::write(&file, "mode = \"chord\"\nsuccessors = 3\ntarget_hops = 0.5\n").unwrap();
    let check = |extra: &[&str]| {
        let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_beehive"));
        cmd.args(["node", "--check", "--config", file.to_str().unwrap()]).args(extra);
        for (key, _) in std::env::vars().filter(|(k, _)| k.starts_with("BEEHIVE_")) {
            cmd.env_remove(key);
        }
        cmd.env("BEEHIVE_SECRET", "a-test-secret-of-enough-bytes")
            .env("BEEHIVE_MODE", "passive")
            .env("BEEHIVE_SUCCESSORS", "5")
            .output()
            .unwrap()
    };
    let out = check(&["--successors", "7"]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(!stdout.contains("a-test-secret"), "the secret was printed");
    let effective: Settings = toml::from_str(&stdout).expect("--check prints a config file");
    assert_eq!(effective.mode, Some(Mode::Passive), "the environment beats the file");
    assert_eq!(effective.successors, Some(7), "a flag beats the environment");
    assert_eq!(effective.target_hops, Some(0.5), "the file beats the default");
    let defaults = Settings::of(&NodeConfig::default());
    assert_eq!(effective.intervals, defaults.intervals, "the rest are the defaults");

    std::fs::write(&file, "mode = \"chord\"\nsucessors = 3\n").unwrap();
    let out = check(&[]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("unknown field `sucessors`"), "{stderr}");
    let _ = std::fs::remove_dir_all(&dir);
}
