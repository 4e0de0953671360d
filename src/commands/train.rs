//! `sentmon train`: labelled archives -> split -> training -> model bundle.

use std::collections::BTreeSet;

use anyhow::{Context, bail};

use crate::cli::TrainArgs;
use crate::dataset::{self, LabelledText, Split};
use crate::model::train::{TrainingExample, TrainingOptions, TrainingSet};
use crate::model::{self, ModelManifest, SENTIMENT_LABELS, TaskReports};
use crate::text::EncoderConfig;

pub fn run(args: &TrainArgs) -> anyhow::Result<()> {
    train_bundle(args, None).map(|_| ())
}

/// Trains and writes the bundle to `args.out`, recording `parent_version` (the model this one
/// is meant to replace, for the registry's lineage). Progress and figures go to stderr.
pub(crate) fn train_bundle(args: &TrainArgs, parent_version: Option<String>) -> anyhow::Result<ModelManifest> {
    let threads = model::use_command_threads(args.threads);
    let corpus = super::load_corpus(&args.data)?;
    let fractions = super::split_fractions(&args.split);
    let training_set = build_training_set(corpus.examples, fractions, corpus.digest, &corpus.files)?;
    eprintln!(
        "training on {} texts ({} topic classes), validating on {}, testing on {}; {} threads",
        training_set.train.len(),
        training_set.topic_labels.len(),
        training_set.validation.len(),
        training_set.test.len(),
        threads
    );
    let unlabelled = unlabelled_training_texts(&training_set);
    if unlabelled > 0 {
        // Archive rows nobody labelled land here: their predictions are never labels.
        let use_note = if args.pretrain_epochs > 0 { "" } else { ", which is off (see --pretrain-epochs)" };
        eprintln!("{unlabelled} training texts have no label: they serve only language-model pretraining{use_note}");
    }
    let options = training_options(args);
    let mut trained = model::train::train(&training_set, &options)?;
    trained.manifest.parent_version = parent_version;
    let manifest = model::save_trained(trained, &args.out)
        .with_context(|| format!("failed to save the bundle to {}", args.out.display()))?;
    eprintln!("wrote model {} to {}", manifest.version, args.out.display());
    print_reports("validation", &manifest.validation);
    print_reports("test", &manifest.test);
    Ok(manifest)
}

fn training_options(args: &TrainArgs) -> TrainingOptions {
    TrainingOptions {
        epochs: args.epochs,
        patience: args.patience,
        batch_size: args.batch_size,
        learning_rate: args.learning_rate,
        weight_decay: args.weight_decay,
        gradient_clip_norm: args.gradient_clip_norm,
        class_weighting: args.class_weighting,
        pretrain_epochs: args.pretrain_epochs,
        pretrain_learning_rate: args.pretrain_learning_rate,
        language_model_vocab: args.language_model_vocab,
        embedding_dim: args.embedding_dim,
        hidden_size: args.hidden_size,
        feature_dim: args.feature_dim,
        dropout: args.dropout,
        token_dropout: args.token_dropout,
        encoder: EncoderConfig {
            max_tokens: args.max_tokens,
            feature_buckets: args.feature_buckets,
            max_vocab_size: args.max_vocab_size,
            min_token_count: args.min_token_count,
            ..EncoderConfig::default()
        },
        seed: args.seed,
        show_progress: true,
    }
}

fn build_training_set(
    examples: Vec<LabelledText>,
    fractions: dataset::SplitFractions,
    data_digest: String,
    files: &[std::path::PathBuf],
) -> anyhow::Result<TrainingSet> {
    let mut train = Vec::new();
    let mut validation = Vec::new();
    let mut test = Vec::new();
    for example in examples {
        match dataset::assign_split(&example.text, fractions) {
            Split::Train => train.push(example),
            Split::Validation => validation.push(example),
            Split::Test => test.push(example),
        }
    }
    // Topic classes are those seen in training, in a stable (sorted) order.
    let topic_labels: Vec<String> =
        train.iter().filter_map(|example| example.topic.clone()).collect::<BTreeSet<_>>().into_iter().collect();
    if topic_labels.is_empty() {
        bail!("the training split has no topic labels; give files with a topic column (see --topic-column)");
    }
    let mut unseen_topic_rows = 0;
    let mut to_training_examples = |examples: Vec<LabelledText>| -> Vec<TrainingExample> {
        examples
            .into_iter()
            .map(|example| {
                let topic = example.topic.as_ref().and_then(|label| {
                    let index = topic_labels.iter().position(|known| known == label);
                    if index.is_none() {
                        unseen_topic_rows += 1;
                    }
                    index
                });
                let sentiment = example
                    .sentiment
                    .as_ref()
                    .and_then(|label| SENTIMENT_LABELS.iter().position(|known| known == label));
                TrainingExample { text: example.text, topic, sentiment }
            })
            .collect()
    };
    let train = to_training_examples(train);
    let validation = to_training_examples(validation);
    let test = to_training_examples(test);
    if unseen_topic_rows > 0 {
        eprintln!(
            "{unseen_topic_rows} held-out rows have a topic that no training row has; their topic label is ignored"
        );
    }
    Ok(TrainingSet {
        topic_labels,
        train,
        validation,
        test,
        data_digest,
        data_files: files.iter().map(|path| path.display().to_string()).collect(),
    })
}

/// Training-split texts with neither label: the pretraining reads them, fine-tuning skips them.
fn unlabelled_training_texts(training_set: &TrainingSet) -> usize {
    training_set.train.iter().filter(|example| example.topic.is_none() && example.sentiment.is_none()).count()
}

fn print_reports(split_name: &str, reports: &TaskReports) {
    for report in [&reports.topic, &reports.sentiment].into_iter().flatten() {
        eprintln!(
            "{split_name} {}: n {} accuracy {:.4} macro-F1 {:.4}",
            report.task, report.n, report.accuracy, report.macro_f1
        );
    }
}

#[cfg(test)]
mod tests {
    use std::io::Write;

    use flate2::Compression;
    use flate2::write::GzEncoder;

    use super::*;
    use crate::archive::record::tests::sample_record;
    use crate::dataset::{ColumnNames, SplitFractions};

    /// Issue 5: an archive row carries the model's predictions; training must see it as text only.
    #[test]
    fn an_unlabelled_archive_row_is_text_for_pretraining_not_a_labelled_example() {
        let directory = tempfile::tempdir().unwrap();
        let labelled = directory.path().join("labelled.jsonl");
        std::fs::write(
            &labelled,
            "{\"text\": \"Fed raises rates again\", \"topic\": \"Fed | Central Banks\"}\n\
             {\"text\": \"Lender collapses\", \"sentiment\": \"negative\"}\n",
        )
        .unwrap();
        let archive_file = directory.path().join("2026-11-26/sentmon-20261126T100000Z-000001.jsonl.gz");
        std::fs::create_dir_all(archive_file.parent().unwrap()).unwrap();
        let mut encoder = GzEncoder::new(std::fs::File::create(&archive_file).unwrap(), Compression::default());
        let archived = sample_record("a1", "Oil slides on supply glut", "Energy | Oil");
        writeln!(encoder, "{}", serde_json::to_string(&archived).unwrap()).unwrap();
        encoder.finish().unwrap();

        let corpus =
            dataset::load_labelled(&[labelled, directory.path().join("2026-11-26")], &ColumnNames::default(), true)
                .unwrap();
        let everything_trains = SplitFractions { validation: 0.0, test: 0.0 };
        let training_set =
            build_training_set(corpus.examples, everything_trains, corpus.digest, &corpus.files).unwrap();
        assert_eq!(training_set.topic_labels, ["Fed | Central Banks"], "the prediction is not a topic class");
        let archived_example =
            training_set.train.iter().find(|example| example.text == archived.text).expect("archive text is kept");
        assert_eq!((archived_example.topic, archived_example.sentiment), (None, None));
        assert_eq!(unlabelled_training_texts(&training_set), 1);
    }
}
