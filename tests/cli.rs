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
    assert_eq!(manifest["languages"], serde_json::json!(["en"]), "train records the (default) --languages");
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

/// Writes a word-vector directory as `scripts/setup.sh` lays out GloVe: `words.txt` and a
/// float32 `vectors.npy`, where word `i` has every component equal to `i + 1`.
fn write_word_vectors(directory: &Path, words: &[&str], width: i64) {
    std::fs::create_dir_all(directory).unwrap();
    std::fs::write(directory.join("words.txt"), words.iter().map(|word| format!("{word}\n")).collect::<String>())
        .unwrap();
    let rows: Vec<f32> = (0..words.len()).flat_map(|row| vec![row as f32 + 1.0; width as usize]).collect();
    tch::Tensor::from_slice(&rows).view([words.len() as i64, width]).write_npy(directory.join("vectors.npy")).unwrap();
}

#[test]
fn train_with_glove_adds_unseen_words_and_a_frozen_embedding_keeps_their_vectors() {
    let scratch = tempfile::tempdir().unwrap();
    let vectors = scratch.path().join("glove");
    // "shares" occurs in the fixtures; "stagflation" and "downgrade" never do.
    write_word_vectors(&vectors, &["shares", "stagflation", "downgrade"], 16);
    let bundle = scratch.path().join("model");
    let output = run_ok(
        sentmon()
            .args(["train", "--data"])
            .arg(fixture("headlines.sentiment.jsonl"))
            .arg(fixture("headlines.topic.jsonl"))
            .args(["--epochs", "2", "--validation-fraction", "0.2", "--test-fraction", "0.1"])
            .args(tiny_training_args(&bundle))
            .arg("--glove")
            .arg(&vectors)
            .args(["--glove-words", "2", "--embedding-lr-scale", "0"]),
    );
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("2 of") && stderr.contains("start from a pretrained vector"), "{stderr}");

    let tokenizer: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(bundle.join("tokenizer.json")).unwrap()).unwrap();
    let tokens: Vec<&str> =
        tokenizer["vocab"]["tokens"].as_array().unwrap().iter().map(|token| token.as_str().unwrap()).collect();
    let id = |word: &str| tokens.iter().position(|token| *token == word);
    assert!(id("stagflation").is_some(), "an unseen word among the first --glove-words joins the vocabulary");
    assert_eq!(id("downgrade"), None, "--glove-words 2 admits only the two most frequent vector words");

    let weights = tch::Tensor::read_safetensors(bundle.join("weights.safetensors")).unwrap();
    let (_, embedding) = weights.iter().find(|(name, _)| name == "token_embedding.weight").unwrap();
    let row = |word: &str| -> Vec<f32> {
        Vec::<f32>::try_from(embedding.get(id(word).unwrap() as i64).to_kind(tch::Kind::Float)).unwrap()
    };
    assert_eq!(row("shares"), vec![1.0; 16], "frozen: the pretrained vector is kept through training");
    assert_eq!(row("stagflation"), vec![2.0; 16]);

    let mismatch = sentmon()
        .args(["train", "--data"])
        .arg(fixture("headlines.sentiment.jsonl"))
        .arg(fixture("headlines.topic.jsonl"))
        .arg("--out")
        .arg(scratch.path().join("unused"))
        .args(["--embedding-dim", "32", "--glove"])
        .arg(&vectors)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&mismatch.stderr);
    assert!(!mismatch.status.success() && stderr.contains("set it to 16"), "{stderr}");
}

/// Writes a teacher's soft targets that call every "zorblax ..." text `verdict` (a sentiment label).
fn write_zorblax_teacher(path: &Path, verdict: &str) {
    let lines: Vec<String> = (0..120)
        .map(|index| {
            let logits: Vec<String> = ["negative", "neutral", "positive"]
                .iter()
                .map(|label| format!("\"{label}\": {}", if *label == verdict { 6.0 } else { -3.0 }))
                .collect();
            format!(
                "{{\"text\": \"zorblax quarterly update {index}\", \"sentiment_logits\": {{{}}}}}",
                logits.join(", ")
            )
        })
        .collect();
    std::fs::write(path, lines.join("\n") + "\n").unwrap();
}

/// Issue 10: the student learns the teacher's logits on a transfer set that no label covers, and
/// held-out texts of the soft-target file never train. "zorblax" occurs in no labelled text, so
/// only the teacher can tell the student what it means; two teachers with opposite verdicts
/// must give students with opposite answers. With the sentiment head's distillation weight at 0
/// (`--distill-weight topic=1,sentiment=0`) the verdicts must make no difference at all.
#[test]
fn train_with_soft_targets_learns_the_teachers_verdict_on_transfer_texts() {
    let scratch = tempfile::tempdir().unwrap();
    let mut answers = Vec::new();
    let mut unweighted_probabilities = Vec::new();
    for verdict in ["negative", "positive"] {
        let soft_targets = scratch.path().join(format!("{verdict}.jsonl"));
        write_zorblax_teacher(&soft_targets, verdict);
        for distill_weight in ["1", "topic=1,sentiment=0"] {
            let bundle = scratch.path().join(format!("{verdict}-{distill_weight}"));
            let output = run_ok(
                sentmon()
                    .args(["train", "--data"])
                    .arg(fixture("headlines.sentiment.jsonl"))
                    .arg(fixture("headlines.topic.jsonl"))
                    .args([
                        "--epochs",
                        "8",
                        "--patience",
                        "8",
                        "--validation-fraction",
                        "0.2",
                        "--test-fraction",
                        "0.1",
                    ])
                    .args(tiny_training_args(&bundle))
                    .args(["--learning-rate", "0.01", "--distill-weight", distill_weight, "--soft-targets"])
                    .arg(&soft_targets)
                    .args(["--transfer-per-epoch", "60"]),
            );
            let stderr = String::from_utf8_lossy(&output.stderr);
            let manifest: serde_json::Value =
                serde_json::from_str(&std::fs::read_to_string(bundle.join("model.json")).unwrap()).unwrap();
            let added = manifest["training"]["rows"]["train_teacher_sentiment"].as_u64().unwrap();
            assert!(added > 60 && added < 120, "only the training split's share of 120 transfer texts: {added}");
            assert!(
                stderr.contains(&format!(
                    "{added} transfer texts added to training, {} held-out texts ignored",
                    120 - added
                )),
                "{stderr}"
            );
            assert_eq!(manifest["training"]["soft_target_files"][0], soft_targets.display().to_string());
            let lines = classify_stdin(&bundle, "zorblax quarterly update\n");
            if distill_weight == "1" {
                answers.push(lines[0]["sentiment"].as_str().unwrap().to_owned());
            } else {
                unweighted_probabilities.push(lines[0]["sentiment_probs"].clone());
            }
        }
    }
    assert_eq!(answers, ["negative", "positive"], "the student follows its teacher");
    assert_eq!(
        unweighted_probabilities[0], unweighted_probabilities[1],
        "with the sentiment weight at 0 the teacher's sentiment verdict changes nothing"
    );
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
fn pretrain_help_teaches_the_corpus_caps_and_checkpoints_and_train_help_the_init_from() {
    let help = String::from_utf8(run_ok(sentmon().args(["pretrain", "--help"])).stdout).unwrap();
    for option in [
        "--corpus",
        "--text-field",
        "--data",
        "--out",
        "--max-sequences",
        "--max-duration",
        "--checkpoint-every",
        "resume",
    ] {
        assert!(help.contains(option), "pretrain --help lacks {option}:\n{help}");
    }
    assert!(help.contains("train --init-from"), "the help shows the next step:\n{help}");
    let train_help = String::from_utf8(run_ok(sentmon().args(["train", "--help"])).stdout).unwrap();
    assert!(train_help.contains("--init-from"), "{train_help}");
}

/// Issue 10: a pretrained encoder is an artefact that fine-tuning starts from, and the bundle says so.
#[test]
fn pretrain_on_a_gzip_corpus_then_train_from_the_encoder() {
    let scratch = tempfile::tempdir().unwrap();
    let corpus = scratch.path().join("unlabelled.jsonl.gz");
    let mut gzip = flate2::write::GzEncoder::new(std::fs::File::create(&corpus).unwrap(), Default::default());
    for file in ["headlines.sentiment.jsonl", "headlines.topic.jsonl"] {
        for line in std::fs::read_to_string(fixture(file)).unwrap().lines() {
            let text = serde_json::from_str::<serde_json::Value>(line).unwrap()["text"].as_str().unwrap().to_owned();
            writeln!(gzip, "{}", serde_json::json!({ "body": format!("{text} today") })).unwrap();
        }
    }
    gzip.finish().unwrap();
    let encoder = scratch.path().join("encoder");
    let sizes = ["--embedding-dim", "16", "--hidden-size", "16", "--threads", "1", "--batch-size", "16"];
    let pretrain = |cap: &str| {
        run_ok(
            sentmon()
                .args(["pretrain", "--corpus"])
                .arg(&corpus)
                .args(["--text-field", "body", "--max-sequences", cap, "--out"])
                .arg(&encoder)
                .arg("--data")
                .arg(fixture("headlines.sentiment.jsonl"))
                .arg(fixture("headlines.topic.jsonl"))
                .args(sizes),
        )
    };
    let first: serde_json::Value = serde_json::from_slice(&pretrain("32").stdout).unwrap();
    assert_eq!(first["sequences_seen"], 32);
    let resumed = pretrain("64");
    assert!(String::from_utf8_lossy(&resumed.stderr).contains("resuming from"), "a second run resumes");
    let second: serde_json::Value = serde_json::from_slice(&resumed.stdout).unwrap();
    assert_eq!(second["sequences_seen"], 64);

    let bundle = scratch.path().join("model");
    run_ok(
        sentmon()
            .args(["train", "--epochs", "1", "--patience", "1", "--init-from"])
            .arg(&encoder)
            .arg("--data")
            .arg(fixture("headlines.sentiment.jsonl"))
            .arg(fixture("headlines.topic.jsonl"))
            .args(tiny_training_args(&bundle)),
    );
    let init_from = &manifest(&bundle)["training"]["init_from"];
    let encoder_manifest = std::fs::read(encoder.join("encoder.json")).unwrap();
    let digest = format!("{:x}", <sha2::Sha256 as sha2::Digest>::digest(&encoder_manifest));
    assert_eq!(init_from["manifest_sha256"], digest.as_str(), "{init_from}");
    assert_eq!(init_from["sequences_seen"], 64);
    let tokenizer = |directory: &Path| -> serde_json::Value {
        serde_json::from_str(&std::fs::read_to_string(directory.join("tokenizer.json")).unwrap()).unwrap()
    };
    assert_eq!(tokenizer(&bundle)["vocab"], tokenizer(&encoder)["vocab"], "the bundle keeps the encoder's vocabulary");
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

/// README's first command: the demo must show an alert for the spiking topic within about a minute, and (issue 13)
/// a volume alert for the watched company whose news surges.
#[test]
fn the_demo_fires_an_alert_for_the_spiking_topic_and_the_surging_entity_within_about_a_minute() {
    let output = run_ok(sentmon().args(["demo", "--duration", "70", "--http-listen", "127.0.0.1:0"]));
    let stdout = String::from_utf8(output.stdout).unwrap();
    assert!(stdout.contains("embedded Kafka broker") && stdout.contains("/metrics"), "{stdout}");
    let alerts: Vec<&str> = stdout.lines().filter(|line| line.starts_with("ALERT")).collect();
    assert!(
        alerts.iter().any(|alert| alert.contains("on topic Fed | Central Banks")),
        "an alert names the spiking topic:\n{stdout}"
    );
    assert!(
        alerts.iter().any(|alert| alert.contains("negative volume surge on entity JPMorgan Chase")),
        "a volume alert names the surging entity:\n{stdout}"
    );
}

fn shipped_model() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("models/default")
}

/// Issue 10: the shipped English model answered "央行降息，股市大涨" neutral at 0.95 probability, a confident answer
/// to text it cannot read. Now it declines, in the fields the daemon's records use.
#[test]
fn classify_answers_null_for_a_language_the_model_does_not_serve() {
    let input = "央行降息，股市大涨\n\
                 {\"id\": 7, \"text\": \"Die Aktie steigt\", \"lang\": \"de\"}\n\
                 $AAPL beats estimates 🚀\n\
                 {\"text\": \"\"}\n";
    let lines = classify_stdin(&shipped_model(), input);
    assert_eq!(lines.len(), 4, "{lines:?}");
    for (line, language) in [(&lines[0], "zh"), (&lines[1], "de")] {
        for unanswered in ["topic", "topic_prob", "sentiment", "sentiment_probs"] {
            assert!(line.get(unanswered).is_some_and(serde_json::Value::is_null), "{unanswered} is null: {line}");
        }
        assert_eq!(line["unsupported_language"], language, "{line}");
        assert!(line["model_version"].is_string() && line.get("error").is_none(), "{line}");
    }
    assert_eq!(lines[0]["text"], "央行降息，股市大涨");
    assert_eq!(lines[1]["id"], 7);
    assert!(lines[2]["sentiment"].is_string() && lines[2].get("unsupported_language").is_none(), "{}", lines[2]);
    assert!(lines[3]["error"].is_string() && lines[3].get("topic").is_none(), "{}", lines[3]);
}

/// Rows the model cannot read are neither right nor wrong: `eval` leaves them out and says how many.
#[test]
fn eval_skips_and_reports_rows_in_a_language_the_model_does_not_serve() {
    let scratch = tempfile::tempdir().unwrap();
    let data = scratch.path().join("mixed.jsonl");
    std::fs::write(
        &data,
        "{\"text\": \"Shares plunge after profit warning\", \"sentiment\": \"negative\"}\n\
         {\"text\": \"央行降息，股市大涨\", \"sentiment\": \"positive\"}\n\
         {\"text\": \"Company beats estimates and raises guidance\", \"sentiment\": \"positive\"}\n",
    )
    .unwrap();
    let output = run_ok(
        sentmon()
            .args(["eval", "--model", &shipped_model().display().to_string(), "--task", "sentiment", "--json"])
            .arg("--data")
            .arg(&data),
    );
    let report: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(report["n"], 2, "only the readable rows are scored: {report}");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("1 sentiment rows skipped") && stderr.contains("(zh 1)"), "{stderr}");
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

/// Issue 11: the Kubernetes init container and the systemd unit seed the registry at every start,
/// so seeding must change nothing once the registry serves a model, including one promoted since.
#[test]
fn models_add_if_absent_seeds_an_empty_registry_once_and_leaves_a_served_one_alone() {
    let scratch = tempfile::tempdir().unwrap();
    let registry = scratch.path().join("registry");
    let shipped = Path::new(env!("CARGO_MANIFEST_DIR")).join("models/default");
    let seed = |bundle: &Path| {
        let output = run_ok(
            sentmon()
                .args(["models", "add"])
                .arg(bundle)
                .arg("--registry")
                .arg(&registry)
                .args(["--promote", "--if-absent"]),
        );
        String::from_utf8(output.stdout).unwrap()
    };
    let promoted = || std::fs::read_to_string(registry.join("PROMOTED")).unwrap().trim().to_owned();
    let promotions = || std::fs::read_to_string(registry.join("promotions.jsonl")).unwrap().lines().count();
    let shipped_manifest: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(shipped.join("model.json")).unwrap()).unwrap();
    let shipped_version = shipped_manifest["version"].as_str().unwrap().to_owned();

    let first = seed(&shipped);
    assert!(first.contains(&format!("promoted {shipped_version}")), "{first}");
    assert_eq!(promoted(), shipped_version);
    let again = seed(&shipped);
    assert!(again.contains("nothing to do"), "{again}");
    assert_eq!(promotions(), 1, "a second seed promoted again");

    // An operator's promotion since the seed survives the next start.
    let other = scratch.path().join("other");
    std::fs::create_dir(&other).unwrap();
    for file in ["tokenizer.json", "weights.safetensors"] {
        std::fs::copy(shipped.join(file), other.join(file)).unwrap();
    }
    let manifest = std::fs::read_to_string(shipped.join("model.json")).unwrap();
    std::fs::write(other.join("model.json"), manifest.replace(&shipped_version, "20261202-000000-retrained")).unwrap();
    run_ok(sentmon().args(["models", "add"]).arg(&other).arg("--registry").arg(&registry).arg("--promote"));
    let after_promotion = seed(&shipped);
    assert!(after_promotion.contains("already serves 20261202-000000-retrained"), "{after_promotion}");
    assert_eq!(promoted(), "20261202-000000-retrained");

    // Seeding means promoting: without --promote the flag is refused.
    let refused = sentmon()
        .args(["models", "add"])
        .arg(&shipped)
        .arg("--registry")
        .arg(&registry)
        .arg("--if-absent")
        .output()
        .unwrap();
    assert!(!refused.status.success());
}
