//! Tests of the network and bundles on small random-initialised models (no data needed).

use tch::nn::VarStore;
use tch::{Device, Kind, Tensor};

use super::batch::TensorBatch;
use super::bundle::{self, ModelManifest, SplitRows, TaskReports, TrainingSummary};
use super::classifier::{Classifier, predict};
use super::network::{Architecture, Network};
use crate::text::{EncodedText, EncoderConfig, TextEncoder};

const TEXTS: [&str; 6] = [
    "Fed raises rates again",
    "$AAPL beats earnings estimates and lifts guidance for the full year, shares jump 5% after hours",
    "oil",
    "央行宣布降准，股市大涨",
    "Bank shares slide after regulators open an investigation into lending practices https://t.co/abc",
    "",
];

fn tiny_encoder() -> TextEncoder {
    let config = EncoderConfig { feature_buckets: 1024, min_token_count: 1, ..EncoderConfig::default() };
    TextEncoder::build(config, TEXTS.iter().copied())
}

fn tiny_architecture(encoder: &TextEncoder) -> Architecture {
    Architecture {
        vocab_size: encoder.vocab().len() as i64,
        embedding_dim: 16,
        hidden_size: 12,
        feature_buckets: i64::from(encoder.config().feature_buckets),
        feature_dim: 8,
        topic_classes: 4,
        sentiment_classes: 3,
        dropout: 0.3,
        token_dropout: 0.1,
    }
}

fn tiny_network(seed: i64) -> (VarStore, Network, TextEncoder, Architecture) {
    tch::manual_seed(seed);
    let encoder = tiny_encoder();
    let architecture = tiny_architecture(&encoder);
    let variables = VarStore::new(Device::Cpu);
    let network = Network::new(&variables.root(), &architecture);
    (variables, network, encoder, architecture)
}

fn logits(network: &Network, encoded: &[&EncodedText]) -> (Tensor, Tensor) {
    let _no_grad = tch::no_grad_guard();
    let heads = network.head_logits(&TensorBatch::new(encoded), false);
    (heads.topic, heads.sentiment)
}

#[test]
fn a_padded_batch_gives_exactly_what_each_text_gives_alone() {
    let (_variables, network, encoder, _) = tiny_network(1);
    let encoded: Vec<EncodedText> = TEXTS.iter().map(|text| encoder.encode(text)).collect();
    let lengths: Vec<usize> = encoded.iter().map(|text| text.token_ids.len()).collect();
    assert!(lengths.iter().min() < lengths.iter().max(), "the batch must need padding: {lengths:?}");
    let encoded_refs: Vec<&EncodedText> = encoded.iter().collect();
    let (batch_topic, batch_sentiment) = logits(&network, &encoded_refs);
    for (row, text) in encoded.iter().enumerate() {
        let (alone_topic, alone_sentiment) = logits(&network, &[text]);
        let topic_error = (batch_topic.get(row as i64) - alone_topic.get(0)).abs().max().double_value(&[]);
        let sentiment_error = (batch_sentiment.get(row as i64) - alone_sentiment.get(0)).abs().max().double_value(&[]);
        assert!(topic_error < 1e-5 && sentiment_error < 1e-5, "text {row}: errors {topic_error} / {sentiment_error}");
    }
}

#[test]
fn inference_is_deterministic_because_dropout_is_off() {
    let (_variables, network, encoder, _) = tiny_network(2);
    let encoded: Vec<EncodedText> = TEXTS.iter().map(|text| encoder.encode(text)).collect();
    let encoded_refs: Vec<&EncodedText> = encoded.iter().collect();
    let first = predict(&network, &encoded_refs, &[]);
    let second = predict(&network, &encoded_refs, &[]);
    assert_eq!(first, second);
    let (training_topic, _) = {
        let heads = network.head_logits(&TensorBatch::new(&encoded_refs), true);
        (heads.topic, heads.sentiment)
    };
    let (inference_topic, _) = logits(&network, &encoded_refs);
    assert!(
        (training_topic - inference_topic).abs().max().double_value(&[]) > 0.0,
        "dropout 0.3 should change training-mode outputs; if not, the test is not testing anything"
    );
}

fn tiny_manifest(architecture: Architecture) -> ModelManifest {
    let training = TrainingSummary {
        data_digest: "test".to_string(),
        data_files: Vec::new(),
        soft_target_files: Vec::new(),
        rows: SplitRows::default(),
        seed: 0,
        pretrain_epochs: 0,
        init_from: None,
        epochs_run: 0,
        best_epoch: 0,
        elapsed_seconds: 0.0,
        history: Vec::new(),
        options: serde_json::Value::Null,
    };
    let topic_labels = (0..architecture.topic_classes).map(|index| format!("topic {index}")).collect();
    ModelManifest::new(architecture, topic_labels, training, TaskReports::default(), TaskReports::default())
}

/// Weights are stored as float16; round the in-memory model the same way so the comparison
/// after loading can be exact.
fn round_weights_to_half(variables: &VarStore) {
    tch::no_grad(|| {
        for (_, mut variable) in variables.variables() {
            let rounded = variable.to_kind(Kind::Half).to_kind(Kind::Float);
            variable.copy_(&rounded);
        }
    });
}

#[test]
fn a_saved_bundle_loads_and_predicts_the_same() {
    let (variables, network, encoder, architecture) = tiny_network(3);
    round_weights_to_half(&variables);
    let directory = tempfile::tempdir().unwrap();
    let manifest = bundle::save_bundle(directory.path(), &variables, &encoder, tiny_manifest(architecture)).unwrap();
    assert!(!manifest.version.is_empty());

    let classifier = Classifier::load(directory.path()).unwrap();
    assert_eq!(classifier.version(), manifest.version);
    let encoded: Vec<EncodedText> = TEXTS.iter().map(|text| encoder.encode(text)).collect();
    let encoded_refs: Vec<&EncodedText> = encoded.iter().collect();
    let expected = predict(&network, &encoded_refs, &[]);
    let loaded = classifier.classify(&TEXTS);
    for (row, (expected, loaded)) in expected.iter().zip(&loaded).enumerate() {
        assert_eq!(expected.topic_index, loaded.topic_index, "row {row}");
        assert!((expected.topic_probability - loaded.topic_probability).abs() < 1e-6, "row {row}");
        assert!((expected.sentiment.negative - loaded.sentiment.negative).abs() < 1e-6, "row {row}");
    }
}

#[test]
fn a_bundle_with_truncated_weights_is_rejected() {
    let (variables, _network, encoder, architecture) = tiny_network(4);
    let directory = tempfile::tempdir().unwrap();
    bundle::save_bundle(directory.path(), &variables, &encoder, tiny_manifest(architecture)).unwrap();
    let weights_path = directory.path().join(bundle::WEIGHTS_FILE);
    let weights = std::fs::read(&weights_path).unwrap();
    std::fs::write(&weights_path, &weights[..weights.len() / 2]).unwrap();
    let error = Classifier::load(directory.path()).err().expect("truncated weights must not load");
    assert!(format!("{error:#}").contains("weights"), "{error:#}");
}

#[test]
fn a_bundle_whose_manifest_disagrees_with_its_weights_is_rejected() {
    let (variables, _network, encoder, architecture) = tiny_network(5);
    let directory = tempfile::tempdir().unwrap();
    bundle::save_bundle(directory.path(), &variables, &encoder, tiny_manifest(architecture.clone())).unwrap();
    let manifest_path = directory.path().join(bundle::MANIFEST_FILE);
    let mut manifest: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&manifest_path).unwrap()).unwrap();
    manifest["architecture"]["hidden_size"] = serde_json::json!(architecture.hidden_size + 1);
    std::fs::write(&manifest_path, manifest.to_string()).unwrap();
    let error = Classifier::load(directory.path()).err().expect("mismatched shapes must not load");
    assert!(format!("{error:#}").contains("shape"), "{error:#}");

    manifest["architecture"]["hidden_size"] = serde_json::json!(architecture.hidden_size);
    manifest["topic_labels"] = serde_json::json!(["only one"]);
    std::fs::write(&manifest_path, manifest.to_string()).unwrap();
    let error = Classifier::load(directory.path()).err().expect("label count must match the head");
    assert!(format!("{error:#}").contains("topic labels"), "{error:#}");
}

#[test]
fn the_declared_parameter_count_matches_the_built_network() {
    let (variables, _network, _encoder, architecture) = tiny_network(6);
    let built: i64 = variables.variables().values().map(Tensor::numel).map(|count| count as i64).sum();
    assert_eq!(architecture.parameter_count(), Some(built));
}

#[test]
fn a_bundle_declaring_huge_sizes_is_rejected_before_anything_is_allocated() {
    let (variables, _network, encoder, architecture) = tiny_network(7);
    let directory = tempfile::tempdir().unwrap();
    bundle::save_bundle(directory.path(), &variables, &encoder, tiny_manifest(architecture)).unwrap();
    let manifest_path = directory.path().join(bundle::MANIFEST_FILE);
    let mut manifest: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&manifest_path).unwrap()).unwrap();
    // Sizes each within its own bound that the weights file cannot hold: about 1 GB if built.
    for field in ["embedding_dim", "hidden_size", "feature_dim"] {
        manifest["architecture"][field] = serde_json::json!(4096);
    }
    std::fs::write(&manifest_path, manifest.to_string()).unwrap();
    let error = Classifier::load(directory.path()).err().expect("sizes the weights cannot hold must not load");
    assert!(format!("{error:#}").contains("too few for the parameter shapes"), "{error:#}");

    // And beyond any weights file: 10,000 topics on top of those sizes.
    let labels: Vec<String> = (0..10_000).map(|index| format!("topic {index}")).collect();
    manifest["architecture"]["topic_classes"] = serde_json::json!(labels.len());
    manifest["topic_labels"] = serde_json::json!(labels);
    std::fs::write(&manifest_path, manifest.to_string()).unwrap();
    let error = Classifier::load(directory.path()).err().expect("a huge declared model must not load");
    assert!(format!("{error:#}").contains("more than 500000000 parameters"), "{error:#}");
}

#[test]
fn a_weights_file_with_a_hostile_header_is_rejected() {
    let (variables, _network, encoder, architecture) = tiny_network(8);
    let directory = tempfile::tempdir().unwrap();
    bundle::save_bundle(directory.path(), &variables, &encoder, tiny_manifest(architecture)).unwrap();
    let weights_path = directory.path().join(bundle::WEIGHTS_FILE);
    let mut weights = std::fs::read(&weights_path).unwrap();
    // The first 8 bytes give the JSON header's length: claim an absurd one.
    weights[..8].copy_from_slice(&(u64::MAX / 2).to_le_bytes());
    std::fs::write(&weights_path, &weights).unwrap();
    let error = Classifier::load(directory.path()).err().expect("a lying header must not load");
    assert!(format!("{error:#}").contains("weights"), "{error:#}");
    // A header that is not JSON at all.
    weights[..8].copy_from_slice(&16_u64.to_le_bytes());
    weights[8..24].copy_from_slice(b"not json at all!");
    std::fs::write(&weights_path, &weights).unwrap();
    assert!(Classifier::load(directory.path()).is_err());
}

#[test]
fn predictions_of_a_large_batch_are_in_input_order_whatever_the_length_sorting() {
    let (_variables, network, encoder, _) = tiny_network(6);
    let texts: Vec<String> =
        (0..100).map(|index| format!("{} {}", TEXTS[index % TEXTS.len()], "word ".repeat(index % 7))).collect();
    let encoded: Vec<EncodedText> = texts.iter().map(|text| encoder.encode(text)).collect();
    let encoded_refs: Vec<&EncodedText> = encoded.iter().collect();
    let together = predict(&network, &encoded_refs, &[]);
    for (index, text) in encoded.iter().enumerate() {
        let alone = &predict(&network, &[text], &[])[0];
        assert_eq!(together[index].topic_index, alone.topic_index, "text {index}");
        assert!((together[index].sentiment.negative - alone.sentiment.negative).abs() < 1e-5, "text {index}");
    }
}

/// Issue 10: bundles written before the `languages` field (the shipped one until 2026-12-02) load
/// unchanged and serve English.
#[test]
fn a_manifest_without_languages_serves_english() {
    let shipped = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("models/default");
    let mut manifest: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(shipped.join(bundle::MANIFEST_FILE)).unwrap()).unwrap();
    assert!(manifest.as_object_mut().unwrap().remove("languages").is_some(), "today's format names its languages");
    let older = tempfile::tempdir().unwrap();
    std::fs::write(older.path().join(bundle::MANIFEST_FILE), manifest.to_string()).unwrap();
    assert_eq!(bundle::read_manifest(older.path()).unwrap().languages, ["en"]);
}

#[test]
fn a_bundle_records_its_languages_and_rejects_unknown_ones() {
    let (variables, _network, encoder, architecture) = tiny_network(6);
    let directory = tempfile::tempdir().unwrap();
    let mut manifest = tiny_manifest(architecture);
    manifest.languages = vec!["en".to_owned(), "zh".to_owned()];
    bundle::save_bundle(directory.path(), &variables, &encoder, manifest).unwrap();
    assert_eq!(bundle::read_manifest(directory.path()).unwrap().languages, ["en", "zh"]);

    let manifest_path = directory.path().join(bundle::MANIFEST_FILE);
    let text = std::fs::read_to_string(&manifest_path).unwrap();
    std::fs::write(&manifest_path, text.replacen("\"zh\"", "\"chinese\"", 1)).unwrap();
    let error = Classifier::load(directory.path()).err().expect("an unknown language must not load");
    assert!(format!("{error:#}").contains("unknown language code \"chinese\""), "{error:#}");
}

/// Refused texts get no forward pass, and the rest keep their order and their predictions.
#[test]
fn gated_classification_answers_readable_texts_and_refuses_the_rest() {
    let (variables, _network, encoder, architecture) = tiny_network(7);
    let directory = tempfile::tempdir().unwrap();
    bundle::save_bundle(directory.path(), &variables, &encoder, tiny_manifest(architecture)).unwrap();
    let classifier = Classifier::load(directory.path()).unwrap();
    let messages = [
        ("Fed raises rates again", None),
        ("央行宣布降准，股市大涨", None),
        ("oil", Some("de")),
        ("$AAPL beats estimates 🚀", None),
    ];
    let gated = classifier.classify_gated(&messages);
    let alone = classifier.classify(&["Fed raises rates again", "$AAPL beats estimates 🚀"]);
    for (gated, alone) in [(&gated[0], &alone[0]), (&gated[3], &alone[1])] {
        let gated = gated.as_ref().expect("a Latin-script text passes");
        assert_eq!(gated.topic_index, alone.topic_index);
        assert!((gated.sentiment.negative - alone.sentiment.negative).abs() < 1e-5, "{gated:?} vs {alone:?}");
    }
    assert_eq!(gated[1].as_ref().unwrap_err().language, "zh");
    assert_eq!(gated[2].as_ref().unwrap_err().language, "de");
}

/// Issue 11: `eval` used every core for libtorch threads; `eval` and `train` now take the
/// daemon's one thread unless `--threads` asks for more.
#[test]
fn commands_use_one_libtorch_thread_unless_told_otherwise() {
    assert_eq!(super::use_command_threads(None), 1);
    assert_eq!(tch::get_num_threads(), 1);
    assert_eq!(super::use_command_threads(Some(3)), 3);
    assert_eq!(tch::get_num_threads(), 3);
    super::set_compute_threads(1);
}
