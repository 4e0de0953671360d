//! Tests of `deploy/`: the Prometheus rules (`promtool check` and the rule unit tests), the
//! Alertmanager configuration and template (`amtool`), the Grafana provisioning and dashboard,
//! the compose, Kubernetes and systemd files, and the Dockerfile. None needs a network or a
//! container engine; the tools come from Debian's `prometheus` and `prometheus-alertmanager`
//! packages (scripts/setup.sh installs them; without them these tests skip, except in CI).
//! The dashboard's queries are run against a real Prometheus by tests/prometheus_e2e.rs.

mod common;
mod ops;

use std::collections::BTreeSet;
use std::process::Command;

use common::run_ok;
use ops::*;

const RULES: &str = "deploy/prometheus/rules/sentmon.rules.yml";
const RULE_TESTS: &str = "deploy/prometheus/tests/sentmon.rules.test.yml";
const ALERTMANAGER_CONFIG: &str = "deploy/alertmanager/alertmanager.yml";

#[test]
fn promtool_accepts_the_prometheus_config_and_its_rules() {
    let Some(promtool) = tool_or_skip(&["promtool"], "prometheus") else { return };
    let output = run_ok(
        Command::new(&promtool).args(["check", "config"]).arg(repo_root().join("deploy/prometheus/prometheus.yml")),
    );
    let report = String::from_utf8_lossy(&output.stdout);
    assert!(report.contains("SUCCESS: 1 rule files found"), "the config loads the rule file:\n{report}");
    run_ok(Command::new(&promtool).args(["check", "rules"]).arg(repo_root().join(RULES)));
}

/// The cases are in the test file: a spike fires and resolves after keep_firing_for, the same
/// spike at low volume does not, a significant but small rise stays under the Wilson floor, a
/// slow drift does not fire, replicas' counters are summed (across a counter reset, and a spike
/// no single replica sees fires), and each operational alert fires on its condition.
#[test]
fn promtool_rule_unit_tests_pass() {
    let Some(promtool) = tool_or_skip(&["promtool"], "prometheus") else { return };
    let output = run_ok(Command::new(&promtool).args(["test", "rules"]).arg(repo_root().join(RULE_TESTS)));
    assert!(String::from_utf8_lossy(&output.stdout).contains("SUCCESS"));
}

#[test]
fn every_alert_fires_in_some_rule_unit_test() {
    let rules = yaml_file(RULES);
    let tests = yaml_file(RULE_TESTS);
    let fired: BTreeSet<String> = tests["tests"]
        .as_sequence()
        .unwrap()
        .iter()
        .filter_map(|test| test["alert_rule_test"].as_sequence())
        .flatten()
        .filter(|case| case["exp_alerts"].as_sequence().is_some_and(|alerts| !alerts.is_empty()))
        .map(|case| case["alertname"].as_str().unwrap().to_string())
        .collect();
    for (name, _) in alert_rules(&rules) {
        assert!(fired.contains(&name), "no rule unit test shows {name} firing");
    }
}

#[test]
fn every_alert_has_a_severity_a_summary_a_dashboard_and_a_runbook_section() {
    let operations = read_repo_file("docs/OPERATIONS.md");
    let anchors: BTreeSet<String> = operations
        .lines()
        .filter(|line| line.starts_with('#'))
        .map(|line| heading_anchor(line.trim_start_matches('#')))
        .collect();
    let alerts = alert_rules(&yaml_file(RULES));
    assert!(alerts.len() >= 9, "the spike alert and eight operational alerts");
    for (name, rule) in alerts {
        let severity = rule["labels"]["severity"].as_str().unwrap_or_default();
        assert!(["critical", "warning"].contains(&severity), "{name}: severity {severity:?}");
        let annotations = &rule["annotations"];
        for key in ["summary", "description", "runbook_url", "dashboard"] {
            assert!(annotations[key].as_str().is_some_and(|text| !text.is_empty()), "{name} lacks {key}");
        }
        let runbook = annotations["runbook_url"].as_str().unwrap();
        let (document, anchor) = runbook.split_once('#').unwrap_or_else(|| panic!("{name}: no anchor in {runbook}"));
        assert!(document.ends_with("docs/OPERATIONS.md"), "{name}: runbook {runbook} is not docs/OPERATIONS.md");
        assert_eq!(anchor, name.to_lowercase(), "{name}: the runbook anchor is the alert's name");
        assert!(anchors.contains(anchor), "{name}: docs/OPERATIONS.md has no heading for #{anchor}");
    }
}

#[test]
fn the_spike_alert_has_for_keep_firing_for_and_all_three_gates() {
    let alerts = alert_rules(&yaml_file(RULES));
    let (_, spike) = alerts.iter().find(|(name, _)| name == "SentimentNegativeSpike").expect("the spike alert");
    assert!(spike["for"].as_str().is_some() && spike["keep_firing_for"].as_str().is_some());
    let expression = spike["expr"].as_str().unwrap();
    for gate in [
        "topic:sentmon_negative_ratio:zscore5m >",
        "topic:sentmon_messages_classified:increase5m >=",
        "topic:sentmon_negative_ratio:wilson_lower5m >",
    ] {
        assert!(expression.contains(gate), "the spike alert lacks `{gate}`: {expression}");
    }
}

/// Names in the rules and the dashboard are the ones src/metrics.rs registers (a renamed or
/// mistyped metric would otherwise just return no data).
#[test]
fn rules_and_dashboard_use_only_metrics_that_sentmon_exports() {
    let metrics_source = read_repo_file("src/metrics.rs");
    let exported: BTreeSet<String> = sentmon_identifiers(&metrics_source).into_iter().collect();
    let histograms = [
        "sentmon_batch_size_messages",
        "sentmon_inference_duration_seconds",
        "sentmon_end_to_end_latency_seconds",
        "sentmon_restore_duration_seconds",
    ];
    for file in [RULES, RULE_TESTS, DASHBOARD] {
        for name in sentmon_identifiers(&read_repo_file(file)) {
            let base = ["_bucket", "_sum", "_count"]
                .iter()
                .find_map(|suffix| name.strip_suffix(suffix).filter(|base| histograms.contains(base)))
                .unwrap_or(&name);
            assert!(exported.contains(base), "{file} uses {name}, which src/metrics.rs does not export");
        }
    }
}

/// `sentmon_...` identifiers that are metric names (not recording-rule names, whose
/// `level:metric:operation` form has colons around them).
fn sentmon_identifiers(text: &str) -> Vec<String> {
    let bytes = text.as_bytes();
    let mut names = Vec::new();
    let mut index = 0;
    while let Some(offset) = text[index..].find("sentmon_") {
        let start = index + offset;
        let mut end = start;
        while end < bytes.len() && (bytes[end].is_ascii_alphanumeric() || bytes[end] == b'_') {
            end += 1;
        }
        let preceded_by_identifier = start > 0
            && (bytes[start - 1].is_ascii_alphanumeric() || bytes[start - 1] == b'_' || bytes[start - 1] == b':');
        let followed_by_colon = bytes.get(end) == Some(&b':');
        if !preceded_by_identifier && !followed_by_colon {
            names.push(text[start..end].to_string());
        }
        index = end;
    }
    names
}

#[test]
fn amtool_accepts_the_alertmanager_config() {
    let Some(amtool) = tool_or_skip(&["amtool"], "prometheus-alertmanager") else { return };
    let output = run_ok(Command::new(&amtool).arg("check-config").arg(repo_root().join(ALERTMANAGER_CONFIG)));
    let report = String::from_utf8_lossy(&output.stdout);
    assert!(report.contains("1 templates") && report.contains("inhibit rules"), "{report}");
}

/// Routing by severity (and the analysts' team label), grouping by topic, and the inhibit rule.
#[test]
fn alertmanager_routes_by_severity_groups_by_topic_and_inhibits_consequences() {
    let config = yaml_file(ALERTMANAGER_CONFIG);
    let group_by: Vec<&str> =
        config["route"]["group_by"].as_sequence().unwrap().iter().map(|label| label.as_str().unwrap()).collect();
    assert!(
        group_by.contains(&"topic") && group_by.contains(&"entity"),
        "notifications are grouped by topic and by entity: {group_by:?}"
    );
    assert!(!config["inhibit_rules"].as_sequence().unwrap().is_empty());

    let Some(amtool) = tool_or_skip(&["amtool"], "prometheus-alertmanager") else { return };
    let config_path = repo_root().join(ALERTMANAGER_CONFIG);
    for (labels, receiver) in [
        (&["alertname=SentmonDown", "severity=critical", "job=sentmon"][..], "on-call-pager"),
        (&["alertname=SentmonStalled", "severity=critical", "job=sentmon"][..], "on-call-pager"),
        (
            &["alertname=SentimentNegativeSpike", "severity=warning", "team=analysts", "topic=Macro"][..],
            "analysts-chat",
        ),
        (
            &["alertname=SentimentEntityNegativeSurge", "severity=warning", "team=analysts", "entity=UBS"][..],
            "analysts-chat",
        ),
        (&["alertname=SentmonConsumerLagGrowing", "severity=warning", "job=sentmon"][..], "operations-chat"),
    ] {
        run_ok(
            Command::new(&amtool)
                .args(["config", "routes", "test", "--verify.receivers", receiver])
                .arg(format!("--config.file={}", config_path.display()))
                .args(labels),
        );
    }
}

#[test]
fn the_notification_template_names_the_topic_the_rates_and_the_dashboard() {
    let Some(amtool) = tool_or_skip(&["amtool"], "prometheus-alertmanager") else { return };
    let scratch = tempfile::tempdir().unwrap();
    let summary =
        "negative spike on topic Fed | Central Banks: negative rate 41% vs 12% baseline (z=5.3, 230 messages in 5m)";
    let dashboard = "https://grafana.example.com/d/sentmon-overview/sentmon?var-topic=Fed+%7C+Central+Banks";
    let alert = serde_json::json!({
        "status": "firing",
        "labels": {"alertname": "SentimentNegativeSpike", "severity": "warning", "topic": "Fed | Central Banks"},
        "annotations": {"summary": summary, "description": "more negative than usual", "dashboard": dashboard,
                        "runbook_url": "https://git.example.com/sentmon/blob/main/docs/OPERATIONS.md#sentimentnegativespike"},
    });
    let data = serde_json::json!({
        "receiver": "analysts-chat", "status": "firing", "alerts": [alert],
        "groupLabels": {"alertname": "SentimentNegativeSpike", "topic": "Fed | Central Banks"},
        "commonLabels": {"alertname": "SentimentNegativeSpike", "severity": "warning", "topic": "Fed | Central Banks"},
        "commonAnnotations": {}, "externalURL": "http://alertmanager.example:9093",
    });
    let data_path = scratch.path().join("data.json");
    std::fs::write(&data_path, data.to_string()).unwrap();
    let render = |template: &str| {
        let output = run_ok(
            Command::new(&amtool)
                .args(["template", "render"])
                .arg(format!("--template.glob={}", repo_root().join("deploy/alertmanager/templates/*.tmpl").display()))
                .arg(format!("--template.text={template}"))
                .arg(format!("--template.data={}", data_path.display())),
        );
        String::from_utf8_lossy(&output.stdout).into_owned()
    };
    let title = render(r#"{{ template "sentmon.title" . }}"#);
    assert_eq!(title.trim(), "[FIRING:1] SentimentNegativeSpike on topic Fed | Central Banks");
    let text = render(r#"{{ template "sentmon.text" . }}"#);
    for expected in [summary, "Topic: Fed | Central Banks", &format!("Dashboard: {dashboard}"), "Runbook: https://"] {
        assert!(text.contains(expected), "the message lacks {expected:?}:\n{text}");
    }

    // An entity alert names its entity in the title and the text.
    let entity_labels =
        serde_json::json!({"alertname": "SentimentEntityNegativeSurge", "severity": "warning", "entity": "UBS"});
    let entity_data = serde_json::json!({
        "receiver": "analysts-chat", "status": "firing",
        "alerts": [{"status": "firing", "labels": entity_labels, "annotations": {"summary": "negative surge on entity UBS"}}],
        "groupLabels": {"alertname": "SentimentEntityNegativeSurge", "entity": "UBS"},
        "commonLabels": entity_labels, "commonAnnotations": {}, "externalURL": "http://alertmanager.example:9093",
    });
    std::fs::write(&data_path, entity_data.to_string()).unwrap();
    assert_eq!(
        render(r#"{{ template "sentmon.title" . }}"#).trim(),
        "[FIRING:1] SentimentEntityNegativeSurge on entity UBS"
    );
    let text = render(r#"{{ template "sentmon.text" . }}"#);
    assert!(text.contains("Entity: UBS") && !text.contains("Topic:"), "{text}");
}

const DASHBOARD: &str = "deploy/grafana/dashboards/sentmon.json";

fn dashboard() -> serde_json::Value {
    serde_json::from_str(&read_repo_file(DASHBOARD)).expect("the dashboard is JSON")
}

/// The number after `<recorded series> >` in the spike alert's expression.
fn spike_threshold(series: &str) -> f64 {
    let alerts = alert_rules(&yaml_file(RULES));
    let (_, spike) = alerts.iter().find(|(name, _)| name == "SentimentNegativeSpike").unwrap();
    let expression = spike["expr"].as_str().unwrap();
    let after =
        expression.split(&format!("{series} >")).nth(1).unwrap_or_else(|| panic!("no `{series} >` in {expression}"));
    after.split_whitespace().next().unwrap().parse().unwrap()
}

#[test]
fn grafana_provisioning_points_at_the_dashboards_and_the_datasource_the_panels_name() {
    let datasources = yaml_file("deploy/grafana/provisioning/datasources/prometheus.yml");
    let datasource = &datasources["datasources"][0];
    assert_eq!(datasource["type"].as_str(), Some("prometheus"));
    let uid = datasource["uid"].as_str().unwrap();
    let providers = yaml_file("deploy/grafana/provisioning/dashboards/sentmon.yml");
    assert_eq!(providers["providers"][0]["type"].as_str(), Some("file"));
    assert!(providers["providers"][0]["options"]["path"].as_str().is_some());

    let dashboard = dashboard();
    for panel in dashboard["panels"].as_array().unwrap().iter().filter(|panel| panel["type"] != "row") {
        assert_eq!(panel["datasource"]["uid"].as_str(), Some(uid), "panel {}", panel["title"]);
        for target in panel["targets"].as_array().unwrap() {
            assert_eq!(target["datasource"]["uid"].as_str(), Some(uid), "panel {}", panel["title"]);
        }
    }
}

#[test]
fn the_dashboard_has_the_panels_and_variables_operators_need() {
    let dashboard = dashboard();
    assert_eq!(dashboard["uid"], "sentmon-overview", "the alerts' dashboard links use this uid");
    let rules = read_repo_file(RULES);
    assert!(rules.contains("/d/sentmon-overview/"), "the alerts link to the dashboard");

    let variables: Vec<&str> = dashboard["templating"]["list"]
        .as_array()
        .unwrap()
        .iter()
        .map(|variable| variable["name"].as_str().unwrap())
        .collect();
    assert_eq!(variables, ["topic", "instance"]);

    let panels: Vec<&serde_json::Value> =
        dashboard["panels"].as_array().unwrap().iter().filter(|panel| panel["type"] != "row").collect();
    let titles: Vec<String> = panels.iter().map(|panel| panel["title"].as_str().unwrap().to_lowercase()).collect();
    for wanted in [
        "volume per topic",
        "negative rate per topic",
        "spike z-score",
        "active alerts",
        "sentiment mix",
        "throughput",
        "end-to-end latency",
        "batch size",
        "consumer lag",
        "dead letters",
        "model version",
    ] {
        assert!(titles.iter().any(|title| title.contains(wanted)), "no panel for {wanted:?}: {titles:?}");
    }
    let mut ids = BTreeSet::new();
    for panel in &panels {
        assert!(ids.insert(panel["id"].as_i64().unwrap()), "duplicate panel id in {}", panel["title"]);
        let grid = &panel["gridPos"];
        assert!(
            grid["x"].as_i64().unwrap() + grid["w"].as_i64().unwrap() <= 24,
            "{} overflows the grid",
            panel["title"]
        );
        let targets = panel["targets"].as_array().unwrap();
        assert!(!targets.is_empty(), "{} has no query", panel["title"]);
        for target in targets {
            assert!(target["expr"].as_str().is_some_and(|expr| !expr.trim().is_empty()), "{}", panel["title"]);
        }
    }
}

/// The dashboard draws the alert's thresholds; if someone tunes the rule, the line must follow.
#[test]
fn the_dashboard_draws_the_thresholds_the_spike_alert_uses() {
    let dashboard = dashboard();
    let panels = dashboard["panels"].as_array().unwrap();
    for (title_prefix, series) in [
        ("Spike z-score", "topic:sentmon_negative_ratio:zscore5m"),
        ("Wilson lower bound", "topic:sentmon_negative_ratio:wilson_lower5m"),
    ] {
        let panel = panels
            .iter()
            .find(|panel| panel["title"].as_str().unwrap().starts_with(title_prefix))
            .unwrap_or_else(|| panic!("no {title_prefix} panel"));
        let steps = panel["fieldConfig"]["defaults"]["thresholds"]["steps"].as_array().unwrap();
        let drawn = steps.last().unwrap()["value"].as_f64().unwrap();
        assert_eq!(drawn, spike_threshold(series), "{title_prefix}: the drawn threshold differs from the rule's");
        assert_eq!(panel["fieldConfig"]["defaults"]["custom"]["thresholdsStyle"]["mode"], "line");
    }
}

const COMPOSE: &str = "deploy/compose/compose.yaml";
const SAMPLE_STREAM: &str = "deploy/compose/sample/stream.jsonl.gz";
/// The compose sample: 45 minutes at 10 messages/s, spike on Fed | Central Banks in minutes
/// 35-40 (after the Prometheus spike alert's 30-minute warm-up).
const SAMPLE_MINUTES: u64 = 45;
const SAMPLE_RATE_PER_SECOND: u64 = 10;

#[test]
fn compose_runs_kafka_in_kraft_mode_and_the_whole_stack_with_files_that_exist() {
    let compose = yaml_file(COMPOSE);
    let services = compose["services"].as_mapping().unwrap();
    let names: BTreeSet<&str> = services.keys().map(|key| key.as_str().unwrap()).collect();
    for wanted in ["kafka", "kafka-topics", "sentmon", "replay", "prometheus", "alertmanager", "grafana"] {
        assert!(names.contains(wanted), "compose lacks {wanted}: {names:?}");
    }
    let kafka = &compose["services"]["kafka"]["environment"];
    assert_eq!(kafka["KAFKA_PROCESS_ROLES"].as_str(), Some("broker,controller"), "KRaft: no ZooKeeper");
    assert!(kafka.get("KAFKA_ZOOKEEPER_CONNECT").is_none());

    let compose_dir = repo_root().join("deploy/compose");
    for (name, service) in services {
        assert!(service.get("image").is_some() || service.get("build").is_some(), "{name:?} has no image");
        for volume in service.get("volumes").and_then(|volumes| volumes.as_sequence()).into_iter().flatten() {
            let host = volume.as_str().unwrap().split(':').next().unwrap();
            assert!(compose_dir.join(host).exists(), "{name:?} mounts {host}, which does not exist");
        }
        // Published ports stay on loopback: metrics and UIs reveal topics and volumes.
        for port in service.get("ports").and_then(|ports| ports.as_sequence()).into_iter().flatten() {
            assert!(port.as_str().unwrap().starts_with("127.0.0.1:"), "{name:?} publishes {port:?} beyond loopback");
        }
    }
    let build = &compose["services"]["sentmon"]["build"];
    let context = compose_dir.join(build["context"].as_str().unwrap());
    assert!(context.join(build["dockerfile"].as_str().unwrap()).is_file());
    let replay: Vec<&str> = compose["services"]["replay"]["command"]
        .as_sequence()
        .unwrap()
        .iter()
        .map(|part| part.as_str().unwrap())
        .collect();
    assert!(replay.contains(&"/data/stream.jsonl.gz"), "the replay job feeds the sample: {replay:?}");
    // The scrape target and Alertmanager address in prometheus.yml are compose's service names.
    let prometheus = read_repo_file("deploy/prometheus/prometheus.yml");
    assert!(prometheus.contains("'sentmon:9898'") && prometheus.contains("'alertmanager:9093'"));
}

#[test]
fn the_compose_sample_stream_is_live_json_with_ids() {
    let file = std::fs::File::open(repo_root().join(SAMPLE_STREAM)).unwrap();
    let text = std::io::read_to_string(flate2::read::GzDecoder::new(file)).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len() as u64, SAMPLE_MINUTES * 60 * SAMPLE_RATE_PER_SECOND);
    for line in lines {
        let message: serde_json::Value = serde_json::from_str(line).unwrap();
        assert!(message["id"].is_string() && message["text"].is_string(), "{line}");
        assert!(message.get("ts").is_none(), "no event time: replayed now, the stream is live: {line}");
    }
}

/// Rewrites the compose sample stream: `cargo test --test operations -- --ignored regenerate`.
#[test]
#[ignore = "writes deploy/compose/sample/stream.jsonl.gz; run by hand after changing the generator"]
fn regenerate_the_compose_sample_stream() {
    use sentmon::demo::generator::{SpikePlan, StreamGenerator};
    use std::io::Write as _;
    let spike =
        SpikePlan { topic: "Fed | Central Banks".to_string(), start_after_ms: 35 * 60_000, duration_ms: 5 * 60_000 };
    let mut generator = StreamGenerator::new(45, spike).unwrap();
    let file = std::fs::File::create(repo_root().join(SAMPLE_STREAM)).unwrap();
    let mut encoder = flate2::write::GzEncoder::new(file, flate2::Compression::best());
    for index in 0..SAMPLE_MINUTES * 60 * SAMPLE_RATE_PER_SECOND {
        let elapsed_ms = (index * 1000 / SAMPLE_RATE_PER_SECOND) as i64;
        let message = generator.next_message(elapsed_ms, elapsed_ms);
        let line = serde_json::json!({"id": message.id, "text": message.text, "source": message.source});
        writeln!(encoder, "{line}").unwrap();
    }
    encoder.finish().unwrap();
}

const K8S: &str = "deploy/k8s";

fn k8s_objects() -> Vec<serde_yaml::Value> {
    let kustomization = yaml_file(&format!("{K8S}/kustomization.yaml"));
    kustomization["resources"]
        .as_sequence()
        .unwrap()
        .iter()
        .flat_map(|resource| yaml_documents(&format!("{K8S}/{}", resource.as_str().unwrap())))
        .collect()
}

fn k8s_object<'a>(objects: &'a [serde_yaml::Value], kind: &str, name: &str) -> &'a serde_yaml::Value {
    objects
        .iter()
        .find(|object| object["kind"].as_str() == Some(kind) && object["metadata"]["name"].as_str() == Some(name))
        .unwrap_or_else(|| panic!("no {kind} {name} in {K8S}"))
}

/// The config the ConfigMap carries, written to a file.
fn k8s_config(objects: &[serde_yaml::Value], directory: &std::path::Path) -> std::path::PathBuf {
    let config = k8s_object(objects, "ConfigMap", "sentmon-config")["data"]["sentmon.toml"].as_str().unwrap();
    let path = directory.join("sentmon.toml");
    std::fs::write(&path, config).unwrap();
    path
}

#[test]
fn the_deployment_probes_health_and_readiness_on_the_configured_port_as_a_non_root_user() {
    let objects = k8s_objects();
    let kinds: BTreeSet<&str> = objects.iter().map(|object| object["kind"].as_str().unwrap()).collect();
    for kind in ["Deployment", "Service", "ConfigMap", "PodMonitor", "CronJob", "PersistentVolumeClaim"] {
        assert!(kinds.contains(kind), "{K8S} lacks a {kind}: {kinds:?}");
    }
    let scratch = tempfile::tempdir().unwrap();
    let config: toml::Value =
        toml::from_str(&std::fs::read_to_string(k8s_config(&objects, scratch.path())).unwrap()).unwrap();
    let listen = config["http"]["listen"].as_str().unwrap();
    let port: i64 = listen.rsplit(':').next().unwrap().parse().unwrap();
    assert!(listen.starts_with("0.0.0.0:"), "the kubelet and Prometheus reach the pod's address, not its loopback");

    let deployment = k8s_object(&objects, "Deployment", "sentmon");
    let replicas = deployment["spec"]["replicas"].as_i64().unwrap();
    assert!(replicas >= 1);
    let pod = &deployment["spec"]["template"];
    let container = &pod["spec"]["containers"][0];
    let ports = container["ports"].as_sequence().unwrap();
    let http = ports.iter().find(|candidate| candidate["name"].as_str() == Some("http")).expect("an http port");
    assert_eq!(http["containerPort"].as_i64(), Some(port), "containerPort matches http.listen");
    for (probe, path) in [("livenessProbe", "/healthz"), ("startupProbe", "/healthz"), ("readinessProbe", "/readyz")] {
        let get = &container[probe]["httpGet"];
        assert_eq!(get["path"].as_str(), Some(path), "{probe}");
        assert!(get["port"].as_str() == Some("http") || get["port"].as_i64() == Some(port), "{probe} port");
    }
    assert_eq!(pod["metadata"]["annotations"]["prometheus.io/port"].as_str(), Some(port.to_string().as_str()));
    let security = &pod["spec"]["securityContext"];
    assert_eq!(security["runAsNonRoot"].as_bool(), Some(true));
    assert!(security["runAsUser"].as_i64().unwrap() > 0);
    assert_eq!(container["securityContext"]["allowPrivilegeEscalation"].as_bool(), Some(false));
    assert_eq!(container["securityContext"]["readOnlyRootFilesystem"].as_bool(), Some(true));
    assert!(container["resources"]["requests"]["cpu"].as_str().is_some());
    assert!(container["resources"]["limits"]["memory"].as_str().is_some());
    let grace = pod["spec"]["terminationGracePeriodSeconds"].as_i64().unwrap();
    assert!(grace > config["shutdown"]["grace_secs"].as_integer().unwrap(), "the pod outlives sentmon's drain");
    let args: Vec<&str> = container["args"].as_sequence().unwrap().iter().map(|arg| arg.as_str().unwrap()).collect();
    assert_eq!(args, ["run", "--config", "/etc/sentmon/sentmon.toml"]);

    let service = k8s_object(&objects, "Service", "sentmon");
    assert_eq!(service["spec"]["ports"][0]["targetPort"].as_str(), Some("http"));
    let pod_monitor = k8s_object(&objects, "PodMonitor", "sentmon");
    assert_eq!(pod_monitor["spec"]["podMetricsEndpoints"][0]["path"].as_str(), Some("/metrics"));
    assert_eq!(pod_monitor["spec"]["jobLabel"].as_str(), Some("app.kubernetes.io/name"));
    assert_eq!(
        pod["metadata"]["labels"]["app.kubernetes.io/name"].as_str(),
        Some("sentmon"),
        "the job label the rules expect (job=\"sentmon\")"
    );

    let cronjob = k8s_object(&objects, "CronJob", "sentmon-retrain");
    assert_eq!(cronjob["spec"]["concurrencyPolicy"].as_str(), Some("Forbid"));
    let job_pod = &cronjob["spec"]["jobTemplate"]["spec"]["template"]["spec"];
    let retrain: Vec<&str> =
        job_pod["containers"][0]["args"].as_sequence().unwrap().iter().map(|arg| arg.as_str().unwrap()).collect();
    assert_eq!(retrain, ["retrain", "--config", "/etc/sentmon/sentmon.toml"]);
    assert_eq!(job_pod["securityContext"]["runAsNonRoot"].as_bool(), Some(true));
}

#[test]
fn the_kubernetes_config_passes_sentmon_check_config() {
    let objects = k8s_objects();
    let scratch = tempfile::tempdir().unwrap();
    let path = k8s_config(&objects, scratch.path());
    run_ok(Command::new(env!("CARGO_BIN_EXE_sentmon")).arg("check-config").arg(&path));
}

/// The split fleet (issue 12): the overlay makes the base Deployment the classify processes and adds the
/// aggregators, the compose override does the same, and the shared config passes `check-config` in both roles.
#[test]
fn the_split_fleet_layouts_run_classify_and_aggregate_processes_on_a_config_that_checks() {
    let overlay = yaml_file(&format!("{K8S}/fleet/kustomization.yaml"));
    let resources: Vec<&str> =
        overlay["resources"].as_sequence().unwrap().iter().map(|resource| resource.as_str().unwrap()).collect();
    assert_eq!(resources, ["../", "deployment-aggregate.yaml", "podmonitor-aggregate.yaml"]);
    let patch = overlay["patches"][0]["patch"].as_str().unwrap();
    assert_eq!(overlay["patches"][0]["target"]["name"].as_str(), Some("sentmon"));
    assert!(patch.contains("SENTMON__PIPELINE__ROLE") && patch.contains("value: classify"), "{patch}");

    let aggregators = yaml_file(&format!("{K8S}/fleet/deployment-aggregate.yaml"));
    assert_eq!(aggregators["kind"].as_str(), Some("Deployment"));
    let pod = &aggregators["spec"]["template"]["spec"];
    assert_eq!(pod["securityContext"]["runAsNonRoot"].as_bool(), Some(true));
    let container = &pod["containers"][0];
    let environment = container_environment(container, "sentmon-aggregate-0");
    assert!(environment.contains(&("SENTMON__PIPELINE__ROLE".to_string(), "aggregate".to_string())));
    assert_eq!(container["readinessProbe"]["httpGet"]["path"].as_str(), Some("/readyz"));
    assert_eq!(pod["volumes"][0]["configMap"]["name"].as_str(), Some("sentmon-config"));
    // The aggregators are scraped under the job the rules select, by a PodMonitor of their own.
    let monitor = yaml_file(&format!("{K8S}/fleet/podmonitor-aggregate.yaml"));
    assert_eq!(monitor["spec"]["selector"]["matchLabels"], aggregators["spec"]["template"]["metadata"]["labels"]);
    let endpoint = &monitor["spec"]["podMetricsEndpoints"][0];
    assert_eq!(endpoint["port"], container["ports"][0]["name"]);
    assert_eq!(endpoint["relabelings"][0]["targetLabel"].as_str(), Some("job"));
    assert_eq!(endpoint["relabelings"][0]["replacement"].as_str(), Some("sentmon"));

    let compose = yaml_file("deploy/compose/compose.fleet.yaml");
    assert_eq!(compose["services"]["sentmon"]["environment"]["SENTMON__PIPELINE__ROLE"].as_str(), Some("classify"));
    let aggregate_service = &compose["services"]["sentmon-aggregate"];
    assert_eq!(aggregate_service["environment"]["SENTMON__PIPELINE__ROLE"].as_str(), Some("aggregate"));
    let topics = compose["services"]["kafka-topics"]["command"][0].as_str().unwrap();
    assert!(topics.contains("sentmon-repartition") && topics.contains("cleanup.policy=compact"), "{topics}");
    // Prometheus scrapes the aggregate processes too: the override mounts a target file where
    // prometheus.yml's file_sd_configs of job `sentmon` looks, naming the aggregate service.
    let mounts = compose["services"]["prometheus"]["volumes"].as_sequence().unwrap();
    let mount =
        mounts.iter().filter_map(|mount| mount.as_str()).find(|mount| mount.starts_with("./fleet-targets:")).unwrap();
    let target_folder = mount.split(':').nth(1).unwrap();
    let prometheus = yaml_file("deploy/prometheus/prometheus.yml");
    let sentmon_job =
        prometheus["scrape_configs"].as_sequence().unwrap().iter().find(|job| job["job_name"] == "sentmon").unwrap();
    assert_eq!(sentmon_job["file_sd_configs"][0]["files"][0].as_str(), Some(format!("{target_folder}/*.yml").as_str()));
    let targets = yaml_file("deploy/compose/fleet-targets/aggregate.yml");
    assert_eq!(targets[0]["targets"][0].as_str(), Some("sentmon-aggregate:9898"));
    assert!(
        aggregate_service["ports"][0].as_str().unwrap().ends_with(":9898"),
        "the aggregate service listens on 9898"
    );

    let objects = k8s_objects();
    let scratch = tempfile::tempdir().unwrap();
    let path = k8s_config(&objects, scratch.path());
    for role in ["classify", "aggregate"] {
        let environment = [("SENTMON__PIPELINE__ROLE".to_string(), role.to_string())];
        let config = effective_config(&path, &environment);
        assert_eq!(config["pipeline"]["role"].as_str(), Some(role));
    }
}

/// `kubectl kustomize` builds the kustomization offline. kubectl is not among the tools set-up
/// installs, so this check runs only where it is present, in CI too.
#[test]
fn kustomize_builds_the_kubernetes_manifests_when_kubectl_is_present() {
    let Some(kubectl) = find_tool(&["kubectl"]) else {
        eprintln!("SKIPPED: kubectl not on PATH (optional; not installed by scripts/setup.sh)");
        return;
    };
    let output = run_ok(Command::new(kubectl).arg("kustomize").arg(repo_root().join(K8S)));
    let built = String::from_utf8_lossy(&output.stdout);
    assert!(built.contains("image: registry.example.com/sentmon:0.1.0"), "the image is set:\n{built}");
    assert!(built.contains("namespace: sentmon"));
}

const SYSTEMD: &str = "deploy/systemd";

#[test]
fn the_systemd_unit_is_hardened_and_drains_before_it_is_killed() {
    let unit = read_repo_file(&format!("{SYSTEMD}/sentmon.service"));
    let settings: Vec<(&str, &str)> = unit
        .lines()
        .filter(|line| !line.starts_with('#'))
        .filter_map(|line| line.split_once('='))
        .map(|(key, value)| (key.trim(), value.trim()))
        .collect();
    let value = |key: &str| settings.iter().find(|(name, _)| *name == key).map(|(_, value)| *value);
    assert_eq!(value("User"), Some("sentmon"), "a dedicated user");
    for (key, expected) in [
        ("NoNewPrivileges", "yes"),
        ("ProtectSystem", "strict"),
        ("ProtectHome", "yes"),
        ("PrivateTmp", "yes"),
        ("PrivateDevices", "yes"),
        ("CapabilityBoundingSet", ""),
        ("RestrictAddressFamilies", "AF_INET AF_INET6 AF_UNIX"),
        ("KillSignal", "SIGTERM"),
        ("RestartPreventExitStatus", "64"),
    ] {
        assert_eq!(value(key), Some(expected), "{key}");
    }
    assert!(value("ExecStart").unwrap().ends_with("sentmon run --config /etc/sentmon/sentmon.toml"));
    let stop_timeout: u64 = value("TimeoutStopSec").unwrap().parse().unwrap();
    assert!(stop_timeout > 30, "longer than shutdown.grace_secs' default");
    let timer = read_repo_file(&format!("{SYSTEMD}/sentmon-retrain.timer"));
    assert!(timer.contains("OnCalendar=") && timer.contains("Persistent=true"));
    assert!(read_repo_file(&format!("{SYSTEMD}/sentmon-retrain.service")).contains("sentmon retrain --config "));
}

/// `systemd-analyze verify` on the units, with ExecStart pointed at the test build (verify
/// checks that the binary exists), and `systemd-analyze security --offline` on the service.
#[test]
fn systemd_analyze_verifies_the_units_and_rates_the_service_exposure_low() {
    let Some(systemd_analyze) = find_tool(&["systemd-analyze"]) else {
        eprintln!("SKIPPED: systemd-analyze not on PATH");
        return;
    };
    let scratch = tempfile::tempdir().unwrap();
    let units = ["sentmon.service", "sentmon-retrain.service", "sentmon-retrain.timer"];
    for unit in units {
        let text = read_repo_file(&format!("{SYSTEMD}/{unit}"))
            .replace("/opt/sentmon/bin/sentmon", env!("CARGO_BIN_EXE_sentmon"));
        std::fs::write(scratch.path().join(unit), text).unwrap();
    }
    let output = run_ok(Command::new(&systemd_analyze).arg("verify").args(units).current_dir(scratch.path()));
    let complaints = String::from_utf8_lossy(&output.stderr);
    assert!(complaints.trim().is_empty(), "systemd-analyze verify complains:\n{complaints}");

    let output = Command::new(&systemd_analyze)
        .args(["security", "--offline=true", "sentmon.service"])
        .current_dir(scratch.path())
        .output()
        .unwrap();
    let report = String::from_utf8_lossy(&output.stdout);
    let Some(level) = report.lines().find_map(|line| line.split("Overall exposure level for sentmon.service: ").nth(1))
    else {
        eprintln!("SKIPPED: systemd-analyze security --offline gave no rating here:\n{report}");
        return;
    };
    let exposure: f64 = level.split_whitespace().next().unwrap().parse().unwrap();
    // 0 is fully locked down, 10 unprotected; 2 is systemd's upper bound for "OK".
    assert!(exposure <= 2.0, "exposure {exposure}:\n{report}");
}

#[test]
fn the_dockerfile_is_multi_stage_runs_as_non_root_and_ships_only_the_runtime_libraries() {
    let dockerfile = read_repo_file("Dockerfile");
    let instructions: Vec<&str> = dockerfile.lines().filter(|line| !line.trim_start().starts_with('#')).collect();
    let stages = instructions.iter().filter(|line| line.starts_with("FROM ")).count();
    assert!(stages >= 2, "a build stage and a runtime stage");
    let user = instructions.iter().rev().find_map(|line| line.strip_prefix("USER ")).expect("a USER");
    assert!(!["root", "0", "0:0"].contains(&user.trim()), "runs as {user}");
    // libtorch comes from setup.sh's pinned PyPI wheels, not a second copy of the recipe.
    assert!(dockerfile.contains("./scripts/setup.sh"));
    let runtime = dockerfile.rsplit("\nFROM ").next().unwrap();
    let libraries: BTreeSet<&str> =
        runtime.split_whitespace().filter_map(|word| word.strip_prefix("/src/.libtorch/lib/")).collect();
    assert_eq!(
        libraries,
        BTreeSet::from(["libtorch_cpu.so", "libc10.so", "libgomp.so.1", "libcudart.so.13", "libcupti.so.13"]),
        "the five runtime libraries (../shared/LIBTORCH.md)"
    );
    assert!(!runtime.contains("libtorch_cuda"), "never libtorch_cuda");
    let ignored = read_repo_file(".dockerignore");
    for path in ["target", ".libtorch", ".git"] {
        assert!(ignored.lines().any(|line| line.trim() == path), ".dockerignore lacks {path}");
    }
}

/// The image's `ENV` settings, as every container started from it gets them.
fn dockerfile_environment() -> Vec<(String, String)> {
    let dockerfile = read_repo_file("Dockerfile");
    let runtime = dockerfile.rsplit("\nFROM ").next().unwrap();
    let instructions =
        runtime.lines().filter(|line| !line.trim_start().starts_with('#')).collect::<Vec<_>>().join("\n");
    let env = instructions.split("\nENV ").nth(1).expect("an ENV instruction in the runtime stage");
    let env = env.split("\nUSER ").next().unwrap().replace("\\\n", " ");
    env.split_whitespace()
        .filter_map(|word| word.split_once('=').map(|(key, value)| (key.to_string(), value.to_string())))
        .collect()
}

/// The image's working directory: where relative paths in the config resolve.
fn dockerfile_workdir() -> String {
    let dockerfile = read_repo_file("Dockerfile");
    dockerfile.lines().rev().find_map(|line| line.strip_prefix("WORKDIR ")).unwrap().trim().to_string()
}

/// Runs `sentmon check-config` with exactly `environment` (nothing of the test's own), as a
/// deployment starts the daemon, and returns the effective config it prints.
fn effective_config(config: &std::path::Path, environment: &[(String, String)]) -> toml::Value {
    let output = run_ok(
        Command::new(env!("CARGO_BIN_EXE_sentmon"))
            .arg("check-config")
            .arg(config)
            .env_clear()
            .envs(environment.iter().map(|(key, value)| (key.as_str(), value.as_str()))),
    );
    toml::from_str(&String::from_utf8(output.stdout).unwrap()).unwrap()
}

/// `[model] path` as the process opens it from `working_directory`.
fn served_model_path(config: &toml::Value, working_directory: &str) -> String {
    let path = config["model"]["path"].as_str().unwrap();
    if path.starts_with('/') { path.to_string() } else { format!("{working_directory}/{path}") }
}

/// A Kubernetes container's `env`, with `$(VAR)` references to earlier entries expanded and
/// downward-API values given as a pod would get them.
fn container_environment(container: &serde_yaml::Value, pod_name: &str) -> Vec<(String, String)> {
    let mut environment: Vec<(String, String)> = Vec::new();
    for entry in container["env"].as_sequence().map(Vec::as_slice).unwrap_or_default() {
        let name = entry["name"].as_str().unwrap().to_string();
        let value = match entry["value"].as_str() {
            Some(value) => environment.iter().fold(value.to_string(), |value, (earlier, earlier_value)| {
                value.replace(&format!("$({earlier})"), earlier_value)
            }),
            None => {
                assert_eq!(entry["valueFrom"]["fieldRef"]["fieldPath"].as_str(), Some("metadata.name"), "{name}");
                pod_name.to_string()
            }
        };
        environment.push((name, value));
    }
    environment
}

/// The `--registry` a seeding init container fills, after checking it seeds from the image's bundle.
fn seeded_registry(pod: &serde_yaml::Value) -> String {
    let init = &pod["initContainers"][0];
    let args: Vec<&str> = init["args"].as_sequence().unwrap().iter().map(|arg| arg.as_str().unwrap()).collect();
    assert_eq!(args[..3], ["models", "add", "/opt/sentmon/models/default"]);
    assert!(args.contains(&"--promote") && args.contains(&"--if-absent"), "idempotent seeding: {args:?}");
    let registry = args[args.iter().position(|arg| *arg == "--registry").unwrap() + 1];
    let mounts = init["volumeMounts"].as_sequence().unwrap();
    assert!(
        mounts.iter().any(|mount| registry.starts_with(mount["mountPath"].as_str().unwrap())
            && mount["readOnly"].as_bool() != Some(true)),
        "the init container can write {registry}"
    );
    registry.to_string()
}

/// Issue 11: the image's `ENV SENTMON__MODEL__PATH` beat the ConfigMap's registry, so the pods
/// served the baked-in bundle for ever and the retrain CronJob failed. Each container's config as
/// Kubernetes starts it (the ConfigMap, the image's ENV, the pod's env) must serve the registry
/// the init containers seed, archive on the writable volume, and pass check-config.
#[test]
fn kubernetes_pods_and_the_retrain_cronjob_serve_the_seeded_registry_as_the_containers_see_it() {
    let objects = k8s_objects();
    let scratch = tempfile::tempdir().unwrap();
    let config = k8s_config(&objects, scratch.path());
    let workdir = dockerfile_workdir();

    let pod = &k8s_object(&objects, "Deployment", "sentmon")["spec"]["template"]["spec"];
    let registry = seeded_registry(pod);
    let container = &pod["containers"][0];
    let mut environment = dockerfile_environment();
    environment.extend(container_environment(container, "sentmon-7d9f-x2k4q"));
    let effective = effective_config(&config, &environment);
    assert_eq!(served_model_path(&effective, &workdir), registry, "the Deployment's model");
    let archive = effective["archive"]["directory"].as_str().expect("the pods archive the stream");
    assert_eq!(archive, "/var/lib/sentmon/archive/sentmon-7d9f-x2k4q", "one archive directory per pod");
    let mounts = container["volumeMounts"].as_sequence().unwrap();
    assert!(
        mounts.iter().any(|mount| archive.starts_with(mount["mountPath"].as_str().unwrap())
            && mount["readOnly"].as_bool() != Some(true)),
        "the archive {archive} is on a volume the daemon can write"
    );

    let job_pod =
        &k8s_object(&objects, "CronJob", "sentmon-retrain")["spec"]["jobTemplate"]["spec"]["template"]["spec"];
    assert_eq!(seeded_registry(job_pod), registry, "the CronJob seeds the same registry");
    let mut environment = dockerfile_environment();
    environment.extend(container_environment(&job_pod["containers"][0], "sentmon-retrain-29001-abcde"));
    let effective = effective_config(&config, &environment);
    assert_eq!(served_model_path(&effective, &workdir), registry, "the CronJob retrains into the pods' registry");
    assert!(!effective["retrain"]["data"].as_array().unwrap().is_empty(), "the CronJob has data to train on");
}

/// The compose stack runs the image with the config it ships: the image's ENV and the service's
/// environment on the example config, which must serve the bundle the image carries.
#[test]
fn the_compose_daemon_serves_the_bundle_in_the_image_as_its_container_sees_it() {
    let dockerfile = read_repo_file("Dockerfile");
    assert!(dockerfile.contains("COPY config/sentmon.example.toml /etc/sentmon/sentmon.toml"));
    assert!(dockerfile.contains("COPY models/default /opt/sentmon/models/default"));
    let compose = yaml_file("deploy/compose/compose.yaml");
    let service = &compose["services"]["sentmon"];
    assert!(service["command"].is_null(), "the image's CMD: run --config /etc/sentmon/sentmon.toml");
    let mut environment = dockerfile_environment();
    for (key, value) in service["environment"].as_mapping().unwrap() {
        environment.push((key.as_str().unwrap().to_string(), value.as_str().unwrap().to_string()));
    }
    let effective = effective_config(&repo_root().join("config/sentmon.example.toml"), &environment);
    assert_eq!(served_model_path(&effective, &dockerfile_workdir()), "/opt/sentmon/models/default");
    assert_eq!(effective["http"]["listen"].as_str(), Some("0.0.0.0:9898"), "reachable from outside the container");
    assert_eq!(effective["kafka"]["brokers"].as_str(), Some("kafka:9092"));
}

/// The systemd units start `sentmon` with their `Environment=` on deploy/systemd/sentmon.toml from
/// their `WorkingDirectory`; both must use the registry the units seed.
#[test]
fn the_systemd_units_serve_and_retrain_the_registry_they_seed_as_systemd_starts_them() {
    for unit in ["sentmon.service", "sentmon-retrain.service"] {
        let text = read_repo_file(&format!("{SYSTEMD}/{unit}"));
        let settings: Vec<(&str, &str)> =
            text.lines().filter(|line| !line.starts_with('#')).filter_map(|line| line.split_once('=')).collect();
        let value = |key: &str| settings.iter().find(|(name, _)| *name == key).map(|(_, value)| *value).unwrap();
        let environment: Vec<(String, String)> = settings
            .iter()
            .filter(|(key, _)| *key == "Environment")
            .map(|(_, assignment)| assignment.split_once('=').unwrap())
            .map(|(key, value)| (key.to_string(), value.to_string()))
            .collect();
        let seed: Vec<&str> = value("ExecStartPre").split_whitespace().collect();
        assert_eq!(seed[1..4], ["models", "add", "/opt/sentmon/models/default"], "{unit}");
        assert!(seed.contains(&"--promote") && seed.contains(&"--if-absent"), "{unit}: idempotent seeding");
        let registry = seed[seed.iter().position(|arg| *arg == "--registry").unwrap() + 1];
        assert!(value("ExecStart").contains("--config /etc/sentmon/sentmon.toml"), "{unit}");
        let effective = effective_config(&repo_root().join(SYSTEMD).join("sentmon.toml"), &environment);
        assert_eq!(served_model_path(&effective, value("WorkingDirectory")), registry, "{unit}");
        let archive = effective["archive"]["directory"].as_str().unwrap();
        assert!(archive.starts_with("/var/lib/sentmon/"), "{unit}: the archive is in the units' only writable place");
    }
}
