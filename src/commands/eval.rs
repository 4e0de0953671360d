//! `sentmon eval`: scores a bundle on labelled data, per head.

use std::collections::BTreeMap;

use anyhow::{Context, bail};

use crate::cli::EvalArgs;
use crate::dataset::{LabelledText, Task};
use crate::evaluation::ConfusionMatrix;
use crate::model::{self, Classifier, SENTIMENT_LABELS};
use crate::registry::gate::HeadScores;

pub fn run(args: &EvalArgs) -> anyhow::Result<()> {
    let threads = model::use_command_threads(args.threads);
    eprintln!("scoring with {threads} libtorch thread(s)");
    let classifier = Classifier::load(&args.model)?;
    let corpus = super::load_corpus(&args.data)?;
    let has_label = |task: Task| corpus.examples.iter().any(|example| label_of(example, task).is_some());
    let tasks: Vec<Task> = match args.task {
        Some(task) => vec![task],
        None => [Task::Topic, Task::Sentiment].into_iter().filter(|&task| has_label(task)).collect(),
    };
    if tasks.is_empty() {
        bail!(
            "no row of {:?} has a topic or sentiment label (see --topic-column / --sentiment-column)",
            args.data.paths
        );
    }
    for task in tasks {
        let HeadEvaluation { matrix, unsupported } =
            evaluate_head(&classifier, &corpus.examples, task, args.batch_size.max(1))
                .with_context(|| format!("failed to evaluate the {} head", task.as_str()))?;
        let report = matrix.report(task.as_str());
        if !unsupported.is_empty() {
            // On stderr, so that --json output stays one report per line.
            let by_language: Vec<String> =
                unsupported.iter().map(|(language, rows)| format!("{language} {rows}")).collect();
            eprintln!(
                "{} {} rows skipped, in a language model {} does not serve ({}): not scored, neither right nor wrong",
                unsupported.values().sum::<usize>(),
                task.as_str(),
                classifier.version(),
                by_language.join(", ")
            );
        }
        if args.json {
            println!("{}", serde_json::to_string(&report)?);
        } else {
            println!("model {} on {} {} labels", classifier.version(), report.n, task.as_str());
            println!("{}", report.render_text(&matrix));
        }
    }
    Ok(())
}

/// Each head's macro-F1 on `examples`, for the quality gate; a head no example labels is None.
pub(crate) fn head_scores(classifier: &Classifier, examples: &[LabelledText]) -> anyhow::Result<HeadScores> {
    let mut scores = HeadScores::default();
    for task in [Task::Topic, Task::Sentiment] {
        if !examples.iter().any(|example| label_of(example, task).is_some()) {
            continue;
        }
        let macro_f1 = evaluate_head(classifier, examples, task, crate::cli::EVAL_BATCH_SIZE)?
            .matrix
            .report(task.as_str())
            .macro_f1;
        match task {
            Task::Topic => scores.topic_macro_f1 = Some(macro_f1),
            Task::Sentiment => scores.sentiment_macro_f1 = Some(macro_f1),
        }
    }
    Ok(scores)
}

fn label_of(example: &LabelledText, task: Task) -> Option<&str> {
    match task {
        Task::Topic => example.topic.as_deref(),
        Task::Sentiment => example.sentiment.as_deref(),
    }
}

/// One head's confusion matrix over the rows the model's language gate lets through, and the rows it refused, by
/// language. A refused row is the model declining to answer, as the daemon does: scoring it as wrong would blame the
/// model for text no loaded model serves, and scoring its guess would hide that it cannot read it.
struct HeadEvaluation {
    matrix: ConfusionMatrix,
    unsupported: BTreeMap<String, usize>,
}

/// Rows whose true label the model does not know still count (always wrong): their labels are
/// appended to the matrix so the figures are honest about them.
fn evaluate_head(
    classifier: &Classifier,
    examples: &[LabelledText],
    task: Task,
    batch_size: usize,
) -> anyhow::Result<HeadEvaluation> {
    let mut labels: Vec<String> = match task {
        Task::Topic => classifier.manifest().topic_labels.clone(),
        Task::Sentiment => SENTIMENT_LABELS.iter().map(|label| label.to_string()).collect(),
    };
    let labelled: Vec<(&str, &str)> = examples
        .iter()
        .filter_map(|example| label_of(example, task).map(|label| (example.text.as_str(), label)))
        .collect();
    if labelled.is_empty() {
        bail!("no row has a {} label", task.as_str());
    }
    let mut truths = Vec::with_capacity(labelled.len());
    for (_, label) in &labelled {
        let index = match labels.iter().position(|known| known == label) {
            Some(index) => index,
            None => {
                labels.push(label.to_string());
                labels.len() - 1
            }
        };
        truths.push(index);
    }
    let mut matrix = ConfusionMatrix::new(labels);
    let mut unsupported = BTreeMap::new();
    let mut scored = 0;
    for (chunk, chunk_truths) in labelled.chunks(batch_size).zip(truths.chunks(batch_size)) {
        // Labelled archives carry no declared language: the script decides.
        let messages: Vec<(&str, Option<&str>)> = chunk.iter().map(|(text, _)| (*text, None)).collect();
        for (gated, &truth) in classifier.classify_gated(&messages).into_iter().zip(chunk_truths) {
            let prediction = match gated {
                Ok(prediction) => prediction,
                Err(refused) => {
                    *unsupported.entry(refused.language).or_insert(0) += 1;
                    continue;
                }
            };
            let predicted = match task {
                Task::Topic => prediction.topic_index,
                Task::Sentiment => {
                    SENTIMENT_LABELS.iter().position(|label| *label == prediction.sentiment.label()).unwrap_or(0)
                }
            };
            matrix.record(truth, predicted);
            scored += 1;
        }
    }
    if scored == 0 {
        bail!(
            "every {} row is in a language model {} does not serve (it serves {:?}); nothing to score",
            task.as_str(),
            classifier.version(),
            classifier.manifest().languages
        );
    }
    Ok(HeadEvaluation { matrix, unsupported })
}
