//! `sentmon eval`: scores a bundle on labelled data, per head.

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
        let matrix = confusion_matrix(&classifier, &corpus.examples, task, args.batch_size.max(1))
            .with_context(|| format!("failed to evaluate the {} head", task.as_str()))?;
        let report = matrix.report(task.as_str());
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
        let macro_f1 =
            confusion_matrix(classifier, examples, task, crate::cli::EVAL_BATCH_SIZE)?.report(task.as_str()).macro_f1;
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

/// Rows whose true label the model does not know still count (always wrong): their labels are
/// appended to the matrix so the figures are honest about them.
fn confusion_matrix(
    classifier: &Classifier,
    examples: &[LabelledText],
    task: Task,
    batch_size: usize,
) -> anyhow::Result<ConfusionMatrix> {
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
    for (chunk_index, chunk) in labelled.chunks(batch_size).enumerate() {
        let texts: Vec<&str> = chunk.iter().map(|(text, _)| *text).collect();
        for (offset, prediction) in classifier.classify(&texts).into_iter().enumerate() {
            let predicted = match task {
                Task::Topic => prediction.topic_index,
                Task::Sentiment => {
                    SENTIMENT_LABELS.iter().position(|label| *label == prediction.sentiment.label()).unwrap_or(0)
                }
            };
            matrix.record(truths[chunk_index * batch_size + offset], predicted);
        }
    }
    Ok(matrix)
}
