//! Kafka TLS and SASL settings reach librdkafka through the config (file and environment), and
//! the secrets in them never appear in the daemon's logs, its /metrics, or `check-config`.
//!
//! librdkafka's mock cluster speaks neither TLS nor SASL, so these tests show the settings were
//! applied by the client's own failure against it ("SSL handshake failed", "SASL authentication"),
//! which only happens when librdkafka was built with OpenSSL and SASL and received the options.
//! A handshake that succeeds needs a real TLS/SASL broker, which this machine does not have.

mod common;

use std::process::{Command, Stdio};
use std::time::Duration;

use common::*;

const SECRET: &str = "s3cr3t-hunter2-do-not-log";

/// Runs the daemon with `producer_options` (TOML lines for `[kafka.producer_options]`) and the
/// `environment` (pass-through variables) until its log shows `evidence`, and checks the secret is
/// in none of the log, /metrics, /readyz and `check-config`'s output; the daemon is not ready (it
/// cannot reach the broker) and still shuts down cleanly.
fn assert_applied_and_secret_kept(producer_options: &str, environment: &[(&str, &str)], evidence: &str) {
    let scratch = tempfile::tempdir().unwrap();
    let broker = start_broker();
    let http_port = free_port();
    let extra = format!("[kafka.producer_options]\n{producer_options}\n");
    let config = write_config(scratch.path(), broker.bootstrap_servers(), http_port, &extra);
    let daemon = Daemon::start_with_env(&config, http_port, scratch.path(), environment);
    daemon.wait_for_log(evidence, Duration::from_secs(60));
    let metrics = daemon.metrics();
    assert!(metrics.contains("sentmon_ready 0"), "cannot authenticate, so not ready:\n{metrics}");
    assert!(!metrics.contains(SECRET));
    let readiness = http_get(http_port, "/readyz").unwrap();
    assert_ne!(readiness.0, 200);
    assert!(!readiness.1.contains(SECRET));
    let log_path = daemon.log_path.clone();
    assert!(daemon.terminate(Duration::from_secs(30)).success());
    let log = std::fs::read_to_string(log_path).unwrap();
    assert!(!log.contains(SECRET), "the secret leaked into the log:\n{log}");

    let check = Command::new(env!("CARGO_BIN_EXE_sentmon"))
        .arg("check-config")
        .arg(&config)
        .envs(environment.iter().copied())
        .stderr(Stdio::piped())
        .output()
        .unwrap();
    let printed = format!("{}{}", String::from_utf8_lossy(&check.stdout), String::from_utf8_lossy(&check.stderr));
    assert!(check.status.success(), "{printed}");
    assert!(!printed.contains(SECRET), "check-config printed the secret:\n{printed}");
    assert!(printed.contains("<redacted>"), "{printed}");
}

#[test]
fn sasl_settings_reach_librdkafka_and_the_password_stays_secret() {
    // The producer's settings come from the file, the consumer's from the environment; librdkafka's
    // own security debug logging is on, to show it does not print the password either.
    let producer_options = format!(
        "\"security.protocol\" = \"SASL_PLAINTEXT\"\n\"sasl.mechanism\" = \"PLAIN\"\n\"sasl.username\" = \"alice\"\n\"sasl.password\" = \"{SECRET}\"\n\"debug\" = \"security\""
    );
    let environment = [
        ("SENTMON__KAFKA__CONSUMER_OPTIONS__SECURITY_PROTOCOL", "SASL_PLAINTEXT"),
        ("SENTMON__KAFKA__CONSUMER_OPTIONS__SASL_MECHANISM", "PLAIN"),
        ("SENTMON__KAFKA__CONSUMER_OPTIONS__SASL_USERNAME", "alice"),
        ("SENTMON__KAFKA__CONSUMER_OPTIONS__SASL_PASSWORD", SECRET),
    ];
    assert_applied_and_secret_kept(&producer_options, &environment, "Failed to initialize SASL authentication");
}

#[test]
fn tls_settings_reach_librdkafka_and_secrets_from_the_environment_stay_secret() {
    // The key password comes from the environment, the way a Kubernetes Secret would supply it.
    let producer_options = "\"security.protocol\" = \"SSL\"\n\"ssl.endpoint.identification.algorithm\" = \"https\"";
    let environment = [
        ("SENTMON__KAFKA__CONSUMER_OPTIONS__SECURITY_PROTOCOL", "SSL"),
        ("SENTMON__KAFKA__CONSUMER_OPTIONS__SSL_KEY_PASSWORD", SECRET),
        ("SENTMON__KAFKA__PRODUCER_OPTIONS__SSL_KEY_PASSWORD", SECRET),
    ];
    assert_applied_and_secret_kept(producer_options, &environment, "SSL handshake failed");
}
