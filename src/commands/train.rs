//! `sentmon train`: labelled archives -> split -> training -> model bundle.

use std::collections::{BTreeMap, BTreeSet};

use anyhow::{Context, bail};

use crate::cli::TrainArgs;
use crate::dataset::{self, LabelledText, Split};
use crate::model::train::{TrainingExample, TrainingOptions, TrainingSet};
use crate::model::{self, ModelManifest, SENTIMENT_LABELS, TaskReports, distill};
use crate::text::EncoderConfig;
use crate::text::language::LanguageGate;

pub fn run(args: &TrainArgs) -> anyhow::Result<()> {
    train_bundle(args, None).map(|_| ())
}

/// Trains and writes the bundle to `args.out`, recording `parent_version` (the model this one
/// is meant to replace, for the registry's lineage). Progress and figures go to stderr.
pub(crate) fn train_bundle(args: &TrainArgs, parent_version: Option<String>) -> anyhow::Result<ModelManifest> {
    let threads = model::use_command_threads(args.threads);
    let language_gate = LanguageGate::new(&args.languages).context("invalid --languages")?;
    let corpus = super::load_corpus(&args.data)?;
    let fractions = super::split_fractions(&args.split);
    let mut training_set = build_training_set(corpus.examples, fractions, corpus.digest, &corpus.files)?;
    if !args.soft_targets.is_empty() {
        let targets = distill::read_soft_targets(&args.soft_targets, &training_set.topic_labels)?;
        let attached = distill::attach_soft_targets(&mut training_set.train, targets, fractions);
        eprintln!(
            "teacher logits: {} training texts of --data, {} transfer texts added to training, {} held-out texts ignored",
            attached.matched, attached.added, attached.held_out
        );
        training_set.soft_target_files = args.soft_targets.iter().map(|path| path.display().to_string()).collect();
    }
    check_training_languages(&training_set, &language_gate)?;
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
        eprintln!(
            "{unlabelled} training texts have neither a label nor teacher logits: they serve only language-model \
             pretraining{use_note}"
        );
    }
    let options = training_options(args);
    let mut trained = model::train::train(&training_set, &options)?;
    trained.manifest.parent_version = parent_version;
    trained.manifest.languages = args.languages.clone();
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
        word_vectors: args.glove.clone(),
        word_vector_vocab: args.glove_words,
        embedding_learning_rate_scale: args.embedding_lr_scale,
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
        init_from: args.init_from.clone(),
        distillation_weights: args.distill_weight,
        transfer_per_epoch: args.transfer_per_epoch,
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
                TrainingExample { text: example.text, topic, sentiment, teacher: None }
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
        soft_target_files: Vec::new(),
    })
}

/// Above this share of training texts the declared languages do not cover, training stops: a few stray tweets in
/// another script are noise in any scraped set, but a tenth means the data is meant for a language the bundle would
/// not declare, and its gate would refuse the very messages it learned from.
const MAX_UNCOVERED_TRAINING_SHARE: f64 = 0.1;

/// Checks the training texts against the languages the bundle will declare (see [`MAX_UNCOVERED_TRAINING_SHARE`]).
fn check_training_languages(training_set: &TrainingSet, gate: &LanguageGate) -> anyhow::Result<()> {
    let mut uncovered: BTreeMap<String, usize> = BTreeMap::new();
    let mut example = None;
    for text in training_set.train.iter().map(|training_example| training_example.text.as_str()) {
        if let Err(refused) = gate.check(text, None) {
            example.get_or_insert(text);
            *uncovered.entry(refused.language).or_insert(0) += 1;
        }
    }
    let Some(example) = example else {
        return Ok(());
    };
    let count: usize = uncovered.values().sum();
    let by_language: Vec<String> = uncovered.iter().map(|(language, rows)| format!("{language} {rows}")).collect();
    let summary = format!(
        "{count} of {} training texts are in a script that --languages {} does not cover ({}; for example {example:?})",
        training_set.train.len(),
        gate.languages().join(","),
        by_language.join(", ")
    );
    if count as f64 > MAX_UNCOVERED_TRAINING_SHARE * training_set.train.len() as f64 {
        bail!("{summary}: declare their languages (e.g. --languages en,zh) or remove them from the data");
    }
    eprintln!("{summary}; they train the model, but the daemon will answer such messages with null");
    Ok(())
}

/// Training-split texts with neither label nor teacher logits: the pretraining reads them, fine-tuning skips them.
fn unlabelled_training_texts(training_set: &TrainingSet) -> usize {
    training_set
        .train
        .iter()
        .filter(|example| example.topic.is_none() && example.sentiment.is_none() && example.teacher.is_none())
        .count()
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

    fn training_set_of(texts: &[&str]) -> TrainingSet {
        TrainingSet {
            topic_labels: vec!["Macro".to_owned()],
            train: texts
                .iter()
                .map(|text| TrainingExample { text: text.to_string(), topic: Some(0), sentiment: None, teacher: None })
                .collect(),
            validation: Vec::new(),
            test: Vec::new(),
            data_digest: String::new(),
            data_files: Vec::new(),
            soft_target_files: Vec::new(),
        }
    }

    /// Issue 10: a bundle declares its languages; data mostly in another script must not ship as English.
    #[test]
    fn training_stops_when_the_declared_languages_miss_more_than_a_tenth_of_the_texts() {
        let english = LanguageGate::new(&["en".to_owned()]).unwrap();
        let mut texts = vec!["Fed cuts rates"; 19];
        texts.push("央行降息");
        check_training_languages(&training_set_of(&texts), &english).expect("one in twenty is noise");
        texts.extend(["股市大涨", "Сбербанк растёт"]);
        let error = check_training_languages(&training_set_of(&texts), &english).unwrap_err().to_string();
        assert!(error.contains("3 of 22 training texts"), "{error}");
        assert!(error.contains("und-Cyrl 1, zh 2"), "{error}");
        assert!(error.contains("--languages en,zh"), "the message names the fix: {error}");
        let bilingual = LanguageGate::new(&["en".to_owned(), "zh".to_owned(), "ru".to_owned()]).unwrap();
        check_training_languages(&training_set_of(&texts), &bilingual).expect("declared languages cover them");
    }

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
