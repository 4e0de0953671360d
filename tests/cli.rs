//! End-to-end tests of `sentmon train | eval | classify | split`, run as the real binary.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

mod common;
use common::run_ok;

fn sentmon() -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_sentmon"));
    command.current_dir(env!("CARGO_MANIFEST_DIR"));
    command
}

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures").join(name)
}

fn shared_data() -> Option<PathBuf> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/data/en");
    if path.exists() {
        Some(path)
    } else {
        eprintln!("skipping: ../shared/data not found (tests that need the shared data run in CI)");
        None
    }
}

/// A small, fast architecture: these tests check the plumbing, not the accuracy.
fn tiny_training_args(out: &Path) -> Vec<String> {
    let args = [
        "--out",
        &out.display().to_string(),
        "--embedding-dim",
        "16",
        "--hidden-size",
        "16",
        "--feature-dim",
        "8",
        "--feature-buckets",
        "4096",
        "--seed",
        "1",
        "--threads",
        "1",
        "--batch-size",
        "16",
    ];
    args.iter().map(|arg| arg.to_string()).collect()
}

fn manifest(bundle: &Path) -> serde_json::Value {
    serde_json::from_str(&std::fs::read_to_string(bundle.join("model.json")).unwrap()).unwrap()
}

fn fine_tune_losses(manifest: &serde_json::Value) -> Vec<f64> {
    manifest["training"]["history"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|record| record["phase"] == "fine-tune")
        .map(|record| record["train_loss"].as_f64().unwrap())
        .collect()
}

fn classify_stdin(bundle: &Path, input: &str) -> Vec<serde_json::Value> {
    let mut child = sentmon()
        .args(["classify", "--model", &bundle.display().to_string(), "--batch-size", "2"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(input.as_bytes()).unwrap();
    let output = child.wait_with_output().unwrap();
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    String::from_utf8(output.stdout).unwrap().lines().map(|line| serde_json::from_str(line).unwrap()).collect()
}

#[test]
fn train_eval_and_classify_work_together_on_the_fixtures() {
    let scratch = tempfile::tempdir().unwrap();
    let bundle = scratch.path().join("model");
    run_ok(
        sentmon()
            .args(["train", "--data"])
            .arg(fixture("headlines.sentiment.jsonl"))
            .arg(fixture("headlines.topic.jsonl"))
            .args(["--epochs", "6", "--patience", "6", "--validation-fraction", "0.2", "--test-fraction", "0.1"])
            .args(tiny_training_args(&bundle)),
    );
    for file in ["model.json", "tokenizer.json", "weights.safetensors"] {
        assert!(bundle.join(file).exists(), "bundle lacks {file}");
    }
    let manifest = manifest(&bundle);
    assert_eq!(manifest["sentiment_labels"], serde_json::json!(["negative", "neutral", "positive"]));
    assert!(manifest["training"]["data_digest"].as_str().unwrap().len() == 64);
    let losses = fine_tune_losses(&manifest);
    assert!(losses.first() > losses.last(), "training loss should fall: {losses:?}");

    let eval = run_ok(
        sentmon()
            .args(["eval", "--model", &bundle.display().to_string(), "--task", "sentiment", "--json", "--data"])
            .arg(fixture("headlines.sentiment.jsonl")),
    );
    let stdout = String::from_utf8(eval.stdout).unwrap();
    let report: serde_json::Value = serde_json::from_str(stdout.lines().last().unwrap()).unwrap();
    assert_eq!(report["task"], "sentiment");
    let rows = std::fs::read_to_string(fixture("headlines.sentiment.jsonl"))
        .unwrap()
        .lines()
        .filter(|line| !line.trim().is_empty())
        .count();
    assert_eq!(report["n"].as_u64().unwrap() as usize, rows);
    for field in ["accuracy", "macro_f1"] {
        let value = report[field].as_f64().unwrap();
        assert!((0.0..=1.0).contains(&value), "{field} = {value}");
    }
    for label in ["negative", "neutral", "positive"] {
        for field in ["precision", "recall", "f1", "support"] {
            assert!(report["per_class"][label][field].is_number(), "per_class.{label}.{field} missing: {report}");
        }
    }

    let human = run_ok(
        sentmon()
            .args(["eval", "--model", &bundle.display().to_string(), "--data"])
            .arg(fixture("headlines.topic.jsonl")),
    );
    let human = String::from_utf8(human.stdout).unwrap();
    assert!(human.contains("macro") && human.contains("accuracy"), "{human}");

    let input = "Fed hikes rates by 50 basis points\n\
                 {\"id\": 7, \"text\": \"Shares tumble after profit warning\"}\n\
                 \n\
                 {\"id\": 8, \"text\": \n\
                 {\"id\": 9, \"body\": \"no text field\"}\n\
                 {\"text\": \"   \"}\n\
                 Oil rallies on supply cuts\n";
    let lines = classify_stdin(&bundle, input);
    assert_eq!(lines.len(), 7, "one output line per input line: {lines:?}");
    let version = manifest["version"].as_str().unwrap();
    for (index, line) in lines.iter().enumerate() {
        assert_eq!(line["line"].as_u64().unwrap() as usize, index + 1);
        assert_eq!(line["model_version"], version);
    }
    for index in [0, 1, 6] {
        let line = &lines[index];
        assert!(line["error"].is_null(), "{line}");
        assert!(line["topic"].is_string() && line["topic_prob"].is_number(), "{line}");
        let probabilities = &line["sentiment_probs"];
        let sum: f64 =
            ["negative", "neutral", "positive"].iter().map(|label| probabilities[label].as_f64().unwrap()).sum();
        assert!((sum - 1.0).abs() < 1e-4, "{line}");
        assert!(["negative", "neutral", "positive"].contains(&line["sentiment"].as_str().unwrap()));
    }
    assert_eq!(lines[1]["id"], 7);
    assert_eq!(lines[2]["error"], "empty line");
    assert!(lines[3]["error"].as_str().unwrap().starts_with("malformed JSON"), "{}", lines[3]);
    assert!(lines[4]["error"].as_str().unwrap().contains("no \"text\""), "{}", lines[4]);
    assert!(lines[5]["error"].as_str().unwrap().contains("empty"), "{}", lines[5]);
}

#[test]
fn train_reports_bad_rows_with_file_and_line_and_strict_makes_them_fatal() {
    let scratch = tempfile::tempdir().unwrap();
    let lenient = run_ok(
        sentmon()
            .args(["train", "--epochs", "1", "--validation-fraction", "0.2", "--test-fraction", "0.0", "--data"])
            .arg(fixture("headlines.topic.jsonl"))
            .arg(fixture("headlines.sentiment.jsonl"))
            .arg(fixture("bad_rows.jsonl"))
            .args(tiny_training_args(&scratch.path().join("lenient"))),
    );
    let stderr = String::from_utf8(lenient.stderr).unwrap();
    assert!(stderr.contains("bad_rows.jsonl:"), "bad rows must be named by file:line: {stderr}");
    assert!(stderr.contains("bad rows skipped"), "{stderr}");

    let strict = sentmon()
        .args(["train", "--strict", "--epochs", "1", "--data"])
        .arg(fixture("bad_rows.jsonl"))
        .args(tiny_training_args(&scratch.path().join("strict")))
        .output()
        .unwrap();
    assert!(!strict.status.success());
    let stderr = String::from_utf8(strict.stderr).unwrap();
    assert!(stderr.contains("bad_rows.jsonl:"), "{stderr}");
}

#[test]
fn a_missing_model_is_reported_with_its_path() {
    let output =
        sentmon().args(["classify", "--model", "/nonexistent/bundle", "-"]).stdin(Stdio::null()).output().unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8(output.stderr).unwrap();
    assert!(stderr.contains("/nonexistent/bundle"), "{stderr}");
}

#[test]
fn the_shipped_model_classifies_obvious_headlines_sensibly() {
    let bundle = Path::new(env!("CARGO_MANIFEST_DIR")).join("models/default");
    let lines = classify_stdin(
        &bundle,
        "Shares plunge after the company misses estimates, slashes guidance and announces layoffs\n\
         Stock soars to a record high after blowout earnings and a raised full-year outlook\n\
         Fed raises interest rates by a quarter point, signals more hikes ahead\n",
    );
    assert_eq!(lines[0]["sentiment"], "negative", "{}", lines[0]);
    assert_eq!(lines[1]["sentiment"], "positive", "{}", lines[1]);
    assert_eq!(lines[2]["topic"], "Fed | Central Banks", "{}", lines[2]);
}

#[test]
fn a_tiny_training_run_on_the_real_data_lowers_the_loss() {
    let Some(shared) = shared_data() else { return };
    let scratch = tempfile::tempdir().unwrap();
    // Every 12th row of each file: ~2,200 real rows covering every class, a few seconds to train.
    let sample = scratch.path().join("sample.jsonl");
    let mut sample_rows = String::new();
    for file in ["sentiment.train.jsonl", "topic.train.jsonl"] {
        let content = std::fs::read_to_string(shared.join(file)).unwrap();
        for line in content.lines().step_by(12) {
            sample_rows.push_str(line);
            sample_rows.push('\n');
        }
    }
    std::fs::write(&sample, sample_rows).unwrap();
    let bundle = scratch.path().join("model");
    run_ok(
        sentmon()
            .args(["train", "--epochs", "3", "--patience", "3", "--data"])
            .arg(&sample)
            .args(tiny_training_args(&bundle)),
    );
    let manifest = manifest(&bundle);
    let losses = fine_tune_losses(&manifest);
    assert_eq!(losses.len(), 3);
    assert!(losses[0] > losses[2], "loss should fall over 3 epochs on real data: {losses:?}");
    let sentiment_accuracy = manifest["validation"]["sentiment"]["accuracy"].as_f64().unwrap();
    assert!(sentiment_accuracy > 0.5, "better than always-neutral-ish chance on 3 classes: {sentiment_accuracy}");
}

#[test]
fn split_writes_the_three_files_that_train_uses() {
    let scratch = tempfile::tempdir().unwrap();
    let out = scratch.path().join("split");
    let output = run_ok(
        sentmon()
            .args(["split", "--out", &out.display().to_string(), "--data"])
            .arg(fixture("headlines.topic.jsonl"))
            .arg(fixture("headlines.sentiment.jsonl")),
    );
    assert!(!output.stdout.is_empty());
    let total: usize = ["train.jsonl", "validation.jsonl", "test.jsonl"]
        .iter()
        .map(|file| std::fs::read_to_string(out.join(file)).unwrap().lines().count())
        .sum();
    let expected: usize = ["headlines.topic.jsonl", "headlines.sentiment.jsonl"]
        .iter()
        .map(|file| {
            std::fs::read_to_string(fixture(file)).unwrap().lines().filter(|line| !line.trim().is_empty()).count()
        })
        .sum();
    assert_eq!(total, expected);
}

#[test]
fn check_config_prints_the_example_and_bad_configs_exit_64_listing_every_problem() {
    let example = Path::new(env!("CARGO_MANIFEST_DIR")).join("config/sentmon.example.toml");
    let output = run_ok(sentmon().arg("check-config").arg(&example));
    let stdout = String::from_utf8(output.stdout).unwrap();
    assert!(stdout.contains("[kafka]") && stdout.contains("input_topics"), "{stdout}");

    let scratch = tempfile::tempdir().unwrap();
    let bad = scratch.path().join("bad.toml");
    std::fs::write(
        &bad,
        "[kafka]\nbrokers = \"\"\ninput_topics = []\n[kafka.consumer_options]\n\"sasl.password\" = \"hunter2\"\n[batch]\nmax_size = 0\n",
    )
    .unwrap();
    for subcommand in [vec!["check-config"], vec!["run", "--config"]] {
        let output = sentmon().args(&subcommand).arg(&bad).output().unwrap();
        assert_eq!(output.status.code(), Some(64), "{subcommand:?}: bad config exits 64");
        let stderr = String::from_utf8(output.stderr).unwrap();
        for problem in ["kafka.brokers", "kafka.input_topics", "batch.max_size"] {
            assert!(stderr.contains(problem), "{subcommand:?} must report {problem} with the others: {stderr}");
        }
        assert!(!stderr.contains("hunter2"), "secrets never appear in error output");
    }

    let secret = scratch.path().join("secret.toml");
    std::fs::write(
        &secret,
        "[kafka]\nbrokers = \"localhost:9092\"\ninput_topics = [\"news\"]\n[kafka.consumer_options]\n\"sasl.password\" = \"hunter2\"\n",
    )
    .unwrap();
    let output = run_ok(sentmon().arg("check-config").arg(&secret));
    let stdout = String::from_utf8(output.stdout).unwrap();
    assert!(stdout.contains("sasl.password") && !stdout.contains("hunter2"), "redacted: {stdout}");
}

/// README's first command: the demo must show an alert for the spiking topic within about a minute.
#[test]
fn the_demo_fires_an_alert_for_the_spiking_topic_within_about_a_minute() {
    let output = run_ok(sentmon().args(["demo", "--duration", "70", "--http-listen", "127.0.0.1:0"]));
    let stdout = String::from_utf8(output.stdout).unwrap();
    assert!(stdout.contains("embedded Kafka broker") && stdout.contains("/metrics"), "{stdout}");
    let alert =
        stdout.lines().find(|line| line.starts_with("ALERT")).unwrap_or_else(|| panic!("no alert in:\n{stdout}"));
    assert!(alert.contains("Fed | Central Banks"), "the alert names the spiking topic: {alert}");
}

/// Issue 11: `eval` used every core for libtorch threads and ran about 50 times slower than
/// `classify` under load; it now follows the daemon's policy (1 thread), and `--threads` changes it.
#[test]
fn eval_uses_one_libtorch_thread_unless_threads_says_otherwise() {
    let model = Path::new(env!("CARGO_MANIFEST_DIR")).join("models/default");
    for (threads, expected) in
        [(None, "scoring with 1 libtorch thread(s)"), (Some("2"), "scoring with 2 libtorch thread(s)")]
    {
        let mut command = sentmon();
        command.args(["eval", "--task", "sentiment", "--json", "--model"]).arg(&model);
        if let Some(threads) = threads {
            command.args(["--threads", threads]);
        }
        let output = run_ok(command.arg("--data").arg(fixture("headlines.sentiment.jsonl")));
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(stderr.contains(expected), "{stderr}");
    }
    let zero = sentmon()
        .args(["eval", "--threads", "0", "--data"])
        .arg(fixture("headlines.sentiment.jsonl"))
        .output()
        .unwrap();
    assert_eq!(zero.status.code(), Some(2), "{}", String::from_utf8_lossy(&zero.stderr));
}
