//! The files in `deploy/` against the daemon they deploy: the systemd unit, the Dockerfile and
//! the Kubernetes manifests start the binary with arguments it accepts and a configuration it
//! parses, give it longer to stop than its shutdown grace, and probe the listeners it opens; the
//! Prometheus rules and the Grafana dashboard use only metrics and labels the daemon exposes,
//! and every alert has its entry in the runbook. (`promtool check rules` and `promtool test
//! rules` run in `.ci/run` where promtool can be installed.)

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::Command;

use salary_sync::config::Config;
use salary_sync::metrics;

fn repo(path: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(path)
}

fn read(path: &str) -> String {
    std::fs::read_to_string(repo(path)).unwrap_or_else(|e| panic!("cannot read {path}: {e}"))
}

/// Every YAML document of a multi-document file.
fn yaml_documents(text: &str) -> Vec<serde_yaml::Value> {
    serde_yaml::Deserializer::from_str(text)
        .map(|doc| serde::Deserialize::deserialize(doc).expect("a YAML document"))
        .collect()
}

fn kind<'a>(docs: &'a [serde_yaml::Value], kind: &str) -> &'a serde_yaml::Value {
    docs.iter()
        .find(|d| d["kind"].as_str() == Some(kind))
        .unwrap_or_else(|| panic!("no {kind} in the manifest"))
}

/// The binary accepts `args` up to the subcommand: `ARGS --help` exits 0.
fn binary_accepts(args: &[&str]) {
    let out = Command::new(env!("CARGO_BIN_EXE_salary-sync"))
        .args(args)
        .arg("--help")
        .output()
        .expect("the salary-sync binary runs");
    assert!(
        out.status.success(),
        "salary-sync {args:?} --help failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// The value of `Key=` in the unit's `[Service]` section.
fn unit_value<'a>(unit: &'a str, key: &str) -> &'a str {
    unit.lines()
        .find_map(|l| l.strip_prefix(&format!("{key}=")))
        .unwrap_or_else(|| panic!("the unit has no {key}="))
}

/// "30s", "1min 30s", "90" (seconds) as seconds.
fn systemd_seconds(value: &str) -> u64 {
    value
        .split_whitespace()
        .map(|part| {
            let digits: String = part.chars().take_while(char::is_ascii_digit).collect();
            let n: u64 = digits.parse().expect("a number in a systemd time span");
            match &part[digits.len()..] {
                "" | "s" | "sec" => n,
                "min" | "m" => n * 60,
                unit => panic!("unexpected systemd time unit {unit:?}"),
            }
        })
        .sum()
}

#[test]
fn the_systemd_unit_starts_the_daemon_and_outlasts_its_grace() {
    let unit = read("deploy/systemd/salary-sync.service");
    let exec = unit_value(&unit, "ExecStart");
    let mut words = exec.split_whitespace();
    assert_eq!(words.next(), Some("/usr/local/bin/salary-sync"));
    let args: Vec<&str> = words.collect();
    assert_eq!(args.last(), Some(&"run"), "ExecStart runs the daemon");
    binary_accepts(&args);
    assert_eq!(unit_value(&unit, "StateDirectory"), "salary-sync");
    assert_eq!(unit_value(&unit, "StateDirectoryMode"), "0700");
    assert_eq!(unit_value(&unit, "UMask"), "0077");
    assert_eq!(unit_value(&unit, "ExecReload"), "/bin/kill -HUP $MAINPID");
    // The example config the unit's comment points at stops within its grace.
    let example = Config::parse(&read("examples/salary-sync.toml")).expect("the example parses");
    let stop_s = systemd_seconds(unit_value(&unit, "TimeoutStopSec"));
    assert!(
        stop_s * 1000 > example.shutdown_grace_ms,
        "TimeoutStopSec {stop_s} s must exceed shutdown_grace_ms {}",
        example.shutdown_grace_ms
    );
}

#[test]
fn the_dockerfile_runs_the_daemon_as_a_non_root_user_with_a_store_volume() {
    let file = read("deploy/docker/Dockerfile");
    let instruction = |name: &str| -> Vec<&str> {
        file.lines()
            .filter_map(|l| l.strip_prefix(&format!("{name} ")))
            .collect()
    };
    let json_array = |text: &str| -> Vec<String> {
        serde_json::from_str(text).unwrap_or_else(|e| panic!("not a JSON array: {text}: {e}"))
    };
    let entry = json_array(instruction("ENTRYPOINT").last().expect("an ENTRYPOINT"));
    let cmd = json_array(instruction("CMD").last().expect("a CMD"));
    assert_eq!(entry[0], "/usr/local/bin/salary-sync");
    assert_eq!(cmd, ["run"]);
    let args: Vec<&str> = entry[1..].iter().chain(&cmd).map(String::as_str).collect();
    binary_accepts(&args);
    let user = instruction("USER");
    assert!(
        user.last()
            .is_some_and(|u| !u.starts_with("0") && !u.starts_with("root")),
        "the last USER is not root: {user:?}"
    );
    assert!(
        file.contains("ca-certificates"),
        "CA certificates installed"
    );
    assert!(
        instruction("VOLUME")
            .iter()
            .any(|v| v.contains("/var/lib/salary-sync")),
        "the store directory is a volume"
    );
}

#[test]
fn the_kubernetes_statefulset_runs_one_replica_with_probes_on_the_health_listener() {
    let docs = yaml_documents(&read("deploy/kubernetes/salary-sync.yaml"));
    let config_text = kind(&docs, "ConfigMap")["data"]["salary-sync.toml"]
        .as_str()
        .expect("the ConfigMap holds salary-sync.toml");
    let config = Config::parse(config_text).expect("the ConfigMap's config parses");
    let health = config
        .health_listen
        .expect("the config has a health_listen for the probes");
    let webhook = config
        .webhook
        .as_ref()
        .expect("the config has a webhook")
        .listen;

    let set = kind(&docs, "StatefulSet");
    assert_eq!(
        set["spec"]["replicas"].as_u64(),
        Some(1),
        "never two daemons"
    );
    let pod = &set["spec"]["template"]["spec"];
    let grace_s = pod["terminationGracePeriodSeconds"]
        .as_u64()
        .expect("terminationGracePeriodSeconds");
    assert!(grace_s * 1000 > config.shutdown_grace_ms);
    let container = &pod["containers"][0];
    let args: Vec<&str> = container["args"]
        .as_sequence()
        .expect("container args")
        .iter()
        .filter_map(serde_yaml::Value::as_str)
        .collect();
    assert_eq!(args, ["run"]);

    let ports: BTreeMap<&str, u64> = container["ports"]
        .as_sequence()
        .expect("container ports")
        .iter()
        .filter_map(|p| Some((p["name"].as_str()?, p["containerPort"].as_u64()?)))
        .collect();
    assert_eq!(ports.get("metrics"), Some(&u64::from(health.port())));
    assert_eq!(ports.get("webhook"), Some(&u64::from(webhook.port())));
    for (probe, path) in [
        ("livenessProbe", "/healthz"),
        ("readinessProbe", "/readyz"),
        ("startupProbe", "/healthz"),
    ] {
        let get = &container[probe]["httpGet"];
        assert_eq!(get["path"].as_str(), Some(path), "{probe}");
        assert_eq!(get["port"].as_str(), Some("metrics"), "{probe}");
    }
    // The store lives on the volume.
    let store_mount = container["volumeMounts"]
        .as_sequence()
        .expect("volume mounts")
        .iter()
        .find(|m| m["name"].as_str() == Some("store"))
        .and_then(|m| m["mountPath"].as_str())
        .expect("the store volume is mounted");
    assert!(config.store.starts_with(store_mount));
}

/// Family names and the label names seen on their samples, from a rendered exposition in
/// which every family has at least one sample.
fn exposed() -> BTreeMap<String, BTreeSet<String>> {
    metrics::transition("acme", "failed", "failed", Some("overlap"));
    metrics::payroll_answer("tripletex", 200);
    metrics::rate_budget_remaining("acme", 5);
    metrics::rate_budget_wait("acme");
    metrics::step_duration("acme", "pending", 0.01);
    metrics::transition_commit(0.001);
    metrics::webhook_request(202);
    metrics::event_ingested("accepted");
    let text = metrics::render(&metrics::Gauges {
        integrations: vec!["acme".to_owned()],
        ready: true,
        ..metrics::Gauges::default()
    });
    let mut families = BTreeMap::<String, BTreeSet<String>>::new();
    for line in text
        .lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
    {
        let name_end = line.find(['{', ' ']).unwrap_or(line.len());
        let labels = &line[name_end..];
        let entry = families.entry(line[..name_end].to_owned()).or_default();
        if let Some(inner) = labels.strip_prefix('{').and_then(|l| l.split('}').next()) {
            for pair in inner.split(',') {
                if let Some((label, _)) = pair.split_once('=') {
                    entry.insert(label.to_owned());
                }
            }
        }
    }
    families
}

/// The metric names and the `by (...)` labels a PromQL expression uses.
fn promql_names(expr: &str) -> (Vec<String>, Vec<String>) {
    let mut metrics = Vec::new();
    let mut labels = Vec::new();
    let mut rest = expr;
    while let Some(start) = rest.find(|c: char| c.is_ascii_alphabetic() || c == '_') {
        let word_len = rest[start..]
            .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
            .unwrap_or(rest.len() - start);
        let word = &rest[start..start + word_len];
        let after = &rest[start + word_len..];
        let inside_quotes = rest[..start].matches('"').count() % 2 == 1;
        if !inside_quotes && (word.starts_with("salary_sync_") || word.starts_with("process_")) {
            metrics.push(word.to_owned());
        }
        if (word == "by" || word == "without") && after.trim_start().starts_with('(') {
            let group = after.trim_start()[1..].split(')').next().unwrap_or("");
            labels.extend(group.split(',').map(|l| l.trim().to_owned()));
        }
        rest = after;
    }
    (metrics, labels)
}

/// Every metric and grouping label in `exprs` is exposed by the daemon.
fn assert_exposed(source: &str, exprs: &[String]) {
    let families = exposed();
    let all_labels: BTreeSet<&String> = families.values().flatten().collect();
    for expr in exprs {
        let (names, labels) = promql_names(expr);
        assert!(
            !names.is_empty() || expr.contains("up{"),
            "{source}: no salary-sync metric in {expr}"
        );
        for name in names {
            assert!(
                families.contains_key(&name),
                "{source}: {name} (in {expr}) is not exposed; exposed: {:?}",
                families.keys().collect::<Vec<_>>()
            );
        }
        for label in labels.iter().filter(|l| *l != "le") {
            assert!(
                all_labels.contains(label),
                "{source}: label {label} (in {expr}) is on no exposed series"
            );
        }
    }
}

#[test]
fn the_alert_rules_watch_exposed_metrics_and_each_has_a_runbook_entry() {
    let rules: serde_yaml::Value =
        serde_yaml::from_str(&read("deploy/prometheus/alerts.yml")).expect("alerts.yml is YAML");
    let rules: Vec<&serde_yaml::Value> = rules["groups"]
        .as_sequence()
        .expect("rule groups")
        .iter()
        .flat_map(|g| g["rules"].as_sequence().expect("rules").iter())
        .collect();
    let exprs: Vec<String> = rules
        .iter()
        .map(|r| r["expr"].as_str().expect("an expr").to_owned())
        .collect();
    assert_exposed("alerts.yml", &exprs);

    let runbook = read("docs/runbook.md");
    let alerts_section = runbook
        .split("\n## Alerts\n")
        .nth(1)
        .expect("docs/runbook.md has an ## Alerts section");
    for rule in &rules {
        let name = rule["alert"].as_str().expect("an alert name");
        assert!(
            alerts_section.contains(&format!("`{name}`")),
            "{name} has no entry in the runbook's Alerts section"
        );
        assert_eq!(
            rule["annotations"]["runbook"].as_str(),
            Some("docs/runbook.md#alerts"),
            "{name}"
        );
    }
    // What the issue asks the rules to watch.
    for watched in [
        "salary_sync_held_salaries",
        "salary_sync_failures_total",
        "salary_sync_oldest_non_terminal_age_seconds",
        "salary_sync_integration_unhealthy",
        "salary_sync_ready",
        "salary_sync_events_ingested_total",
    ] {
        assert!(
            exprs.iter().any(|e| e.contains(watched)),
            "no rule watches {watched}"
        );
    }
}

#[test]
fn the_grafana_dashboard_queries_exposed_metrics() {
    let dashboard: serde_json::Value =
        serde_json::from_str(&read("deploy/grafana/salary-sync.json")).expect("dashboard JSON");
    let exprs: Vec<String> = dashboard["panels"]
        .as_array()
        .expect("panels")
        .iter()
        .flat_map(|p| p["targets"].as_array().into_iter().flatten())
        .filter_map(|t| t["expr"].as_str().map(str::to_owned))
        .collect();
    assert!(exprs.len() >= 10, "the dashboard has its queries");
    assert_exposed("salary-sync.json", &exprs);
}

#[test]
fn promql_names_finds_metrics_and_grouping_labels() {
    let (names, labels) = promql_names(
        r#"sum by (integration, code) (increase(salary_sync_failures_total{job="salary_sync_x"}[15m])) > 0"#,
    );
    assert_eq!(names, ["salary_sync_failures_total"]);
    assert_eq!(labels, ["integration", "code"]);
}
