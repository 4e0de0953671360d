//! Tests of `deploy/`: the Prometheus rules (`promtool check` and the rule unit tests), the
//! Alertmanager configuration and template (`amtool`), the Grafana provisioning and dashboard,
//! the compose, Kubernetes and systemd files, and the Dockerfile. None needs a network or a
//! container engine; the tools come from Debian's `prometheus` and `prometheus-alertmanager`
//! packages (scripts/setup.sh installs them; without them these tests skip, except in CI).
//! The dashboard's queries are run against a real Prometheus by tests/prometheus_e2e.rs.

mod ops;

use std::collections::BTreeSet;
use std::process::Command;

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
    assert!(alerts.len() >= 8, "the spike alert and seven operational alerts");
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
    let histograms =
        ["sentmon_batch_size_messages", "sentmon_inference_duration_seconds", "sentmon_end_to_end_latency_seconds"];
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
    assert!(group_by.contains(&"topic"), "notifications are grouped by topic: {group_by:?}");
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
