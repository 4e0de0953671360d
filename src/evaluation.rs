//! Classification metrics: confusion matrix, accuracy, per-class and macro F1 (pure code).
//!
//! The figures follow scikit-learn's defaults so they can be compared with the Python baseline
//! (scripts/baseline.py): an undefined precision, recall or F1 is 0 (`zero_division=0`), and the
//! macro average runs over the classes present in the truth or the predictions (`labels=None`).

use std::collections::BTreeMap;
use std::fmt::Write;

use serde::{Deserialize, Serialize};

/// Widest label shown as a confusion-matrix column header: with 20 topics the matrix must still fit
/// a wide terminal (20 columns of 8 characters is 160), and 7 characters tell the topic names apart.
const MATRIX_HEADER_WIDTH: usize = 7;

/// Counts of (true class, predicted class) pairs over a fixed, ordered label set.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfusionMatrix {
    labels: Vec<String>,
    /// `counts[truth][predicted]`.
    counts: Vec<Vec<u64>>,
}

impl ConfusionMatrix {
    /// # Panics
    /// If a label appears twice: two classes with one name cannot be reported apart.
    pub fn new(labels: Vec<String>) -> Self {
        for (index, label) in labels.iter().enumerate() {
            assert!(!labels[..index].contains(label), "duplicate label {label:?} in confusion matrix");
        }
        let counts = vec![vec![0; labels.len()]; labels.len()];
        ConfusionMatrix { labels, counts }
    }

    /// # Panics
    /// If either index is not a label index: that is a bug in the caller's label mapping.
    pub fn record(&mut self, truth: usize, predicted: usize) {
        let label_count = self.labels.len();
        assert!(
            truth < label_count && predicted < label_count,
            "label index out of range: truth {truth}, predicted {predicted}, {label_count} labels"
        );
        self.counts[truth][predicted] += 1;
    }

    pub fn labels(&self) -> &[String] {
        &self.labels
    }

    pub fn count(&self, truth: usize, predicted: usize) -> u64 {
        self.counts[truth][predicted]
    }

    pub fn total(&self) -> u64 {
        self.counts.iter().flatten().sum()
    }

    fn correct(&self) -> u64 {
        (0..self.labels.len()).map(|index| self.counts[index][index]).sum()
    }

    fn predicted_count(&self, predicted: usize) -> u64 {
        self.counts.iter().map(|row| row[predicted]).sum()
    }

    fn support(&self, truth: usize) -> u64 {
        self.counts[truth].iter().sum()
    }

    /// Accuracy, per-class precision/recall/F1 and macro-F1, as scikit-learn computes them.
    pub fn report(&self, task: &str) -> EvaluationReport {
        let total = self.total();
        let mut per_class = BTreeMap::new();
        let mut present_f1_sum = 0.0;
        let mut present_classes = 0usize;
        for (index, label) in self.labels.iter().enumerate() {
            let true_positives = self.counts[index][index];
            let predicted = self.predicted_count(index);
            let support = self.support(index);
            let false_positives = predicted - true_positives;
            let false_negatives = support - true_positives;
            let metrics = ClassMetrics {
                precision: ratio_or_zero(true_positives, predicted),
                recall: ratio_or_zero(true_positives, support),
                // scikit-learn's form: equal to 2PR/(P+R) where that is defined, and 0 otherwise.
                f1: ratio_or_zero(2 * true_positives, 2 * true_positives + false_positives + false_negatives),
                support,
            };
            if support > 0 || predicted > 0 {
                present_f1_sum += metrics.f1;
                present_classes += 1;
            }
            per_class.insert(label.clone(), metrics);
        }
        let macro_f1 = if present_classes == 0 { 0.0 } else { present_f1_sum / present_classes as f64 };
        EvaluationReport {
            task: task.to_string(),
            n: total,
            accuracy: ratio_or_zero(self.correct(), total),
            macro_f1,
            per_class,
        }
    }
}

/// Largest per-class shift `fit_log_probability_shift` tries, and its grid step, in nats.
const SHIFT_LIMIT: f64 = 2.0;
const SHIFT_STEP: f64 = 0.1;
/// Sweeps over the classes; each sweep tries every grid value for every class.
const SHIFT_SWEEPS: usize = 4;

/// Per-class shifts added to log-probabilities that maximise macro-F1 on labelled rows
/// (`log_probabilities[row][class]`, `truths[row]`): a prior-shift correction fitted on validation
/// data. Training with balanced class weights pushes predictions toward rare classes; how far is
/// right for macro-F1 is an empirical question this answers. Class 0's shift stays 0 (only
/// differences matter); coordinate ascent on a grid, moving only on a strict improvement, so
/// with nothing to gain the result is all zeros.
pub fn fit_log_probability_shift(log_probabilities: &[Vec<f64>], truths: &[usize], class_count: usize) -> Vec<f64> {
    let mut shift = vec![0.0; class_count];
    let mut best = macro_f1_with_shift(log_probabilities, truths, &shift);
    let steps = (SHIFT_LIMIT / SHIFT_STEP).round() as i64;
    for _ in 0..SHIFT_SWEEPS {
        let mut improved = false;
        for class in 1..class_count {
            for step in -steps..=steps {
                let mut candidate = shift.clone();
                candidate[class] = step as f64 * SHIFT_STEP;
                let score = macro_f1_with_shift(log_probabilities, truths, &candidate);
                if score > best + 1e-12 {
                    best = score;
                    shift = candidate;
                    improved = true;
                }
            }
        }
        if !improved {
            break;
        }
    }
    shift
}

fn macro_f1_with_shift(log_probabilities: &[Vec<f64>], truths: &[usize], shift: &[f64]) -> f64 {
    let mut matrix = ConfusionMatrix::new((0..shift.len()).map(|class| class.to_string()).collect());
    for (row, &truth) in log_probabilities.iter().zip(truths) {
        let shifted = row.iter().zip(shift).map(|(value, offset)| value + offset);
        let predicted = shifted
            .enumerate()
            .fold((0, f64::NEG_INFINITY), |best, (class, value)| if value > best.1 { (class, value) } else { best })
            .0;
        matrix.record(truth, predicted);
    }
    matrix.report("shift").macro_f1
}

/// `numerator / denominator`, or 0 when the denominator is 0 (scikit-learn's `zero_division=0`),
/// so no report ever carries a NaN.
fn ratio_or_zero(numerator: u64, denominator: u64) -> f64 {
    if denominator == 0 { 0.0 } else { numerator as f64 / denominator as f64 }
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct ClassMetrics {
    pub precision: f64,
    pub recall: f64,
    pub f1: f64,
    /// Rows whose true label is this class.
    pub support: u64,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct EvaluationReport {
    pub task: String,
    /// Rows evaluated.
    pub n: u64,
    pub accuracy: f64,
    pub macro_f1: f64,
    /// Every label of the matrix, including classes absent from both truth and predictions.
    pub per_class: BTreeMap<String, ClassMetrics>,
}

impl EvaluationReport {
    /// A report for people: accuracy, macro-F1, a per-class table in the matrix's label order, and
    /// the confusion matrix (rows: truth, columns: predicted) with truncated column headers.
    pub fn render_text(&self, matrix: &ConfusionMatrix) -> String {
        let mut output = String::new();
        // Writing into a String cannot fail, hence the ignored fmt::Results below.
        let _ = writeln!(output, "task: {}  rows: {}", self.task, self.n);
        let _ = writeln!(output, "accuracy  {:.4}", self.accuracy);
        let _ = writeln!(output, "macro-F1  {:.4}", self.macro_f1);
        let _ = writeln!(output);

        let label_width = matrix.labels().iter().map(|label| label.chars().count()).chain([5]).max().unwrap_or(5);
        let _ =
            writeln!(output, "{:<label_width$}  {:<9}  {:<9}  {:<9}  support", "label", "precision", "recall", "f1");
        for label in matrix.labels() {
            if let Some(metrics) = self.per_class.get(label) {
                let _ = writeln!(
                    output,
                    "{label:<label_width$}  {:<9.4}  {:<9.4}  {:<9.4}  {}",
                    metrics.precision, metrics.recall, metrics.f1, metrics.support
                );
            }
        }
        let _ = writeln!(output);

        let _ = writeln!(output, "confusion matrix (rows: truth, columns: predicted)");
        let headers: Vec<String> =
            matrix.labels().iter().map(|label| truncate_label(label, MATRIX_HEADER_WIDTH)).collect();
        let widest_count = matrix.counts.iter().flatten().max().map_or(1, |count| count.to_string().len());
        let column_width = headers.iter().map(|header| header.chars().count()).max().unwrap_or(0).max(widest_count);
        let mut header_line = format!("{:<label_width$}", "");
        for header in &headers {
            let _ = write!(header_line, "  {header:>column_width$}");
        }
        let _ = writeln!(output, "{}", header_line.trim_end());
        for (truth, label) in matrix.labels().iter().enumerate() {
            let _ = write!(output, "{label:<label_width$}");
            for count in &matrix.counts[truth] {
                let _ = write!(output, "  {count:>column_width$}");
            }
            let _ = writeln!(output);
        }
        output
    }
}

/// Shortens to `width` characters (not bytes, so CJK labels are cut safely), marking the cut.
fn truncate_label(label: &str, width: usize) -> String {
    if label.chars().count() <= width {
        return label.to_string();
    }
    let mut truncated: String = label.chars().take(width.saturating_sub(1)).collect();
    truncated.push('…');
    truncated
}

#[cfg(test)]
mod tests {
    use super::*;

    fn labels(names: &[&str]) -> Vec<String> {
        names.iter().map(|name| name.to_string()).collect()
    }

    /// Fills a matrix from `rows[truth][predicted]` counts.
    fn matrix_from(names: &[&str], rows: &[&[u64]]) -> ConfusionMatrix {
        let mut matrix = ConfusionMatrix::new(labels(names));
        for (truth, row) in rows.iter().enumerate() {
            for (predicted, &count) in row.iter().enumerate() {
                for _ in 0..count {
                    matrix.record(truth, predicted);
                }
            }
        }
        matrix
    }

    fn assert_close(actual: f64, expected: f64) {
        assert!((actual - expected).abs() < 1e-12, "expected {expected}, got {actual}");
    }

    /// Hand-computed (and checked against sklearn.metrics.classification_report):
    ///
    /// ```text
    ///              predicted: neg neu pos unused   support
    /// truth neg               2   1   0   0        3
    /// truth neu               1   3   0   0        4
    /// truth pos               0   2   0   0        2   (never predicted)
    /// truth unused            0   0   0   0        0   (in neither truth nor predictions)
    /// ```
    /// n = 9, correct = 2 + 3 = 5, accuracy = 5/9.
    /// neg: TP 2, predicted 3 -> P 2/3, R 2/3, F1 = 2*2/(2*2+1+1) = 2/3.
    /// neu: TP 3, predicted 6 -> P 1/2, R 3/4, F1 = 2*3/(2*3+3+1) = 0.6.
    /// pos: TP 0, predicted 0 -> P 0 (undefined, zero_division=0), R 0/2 = 0, F1 0.
    /// unused: all 0, and left out of the macro average (sklearn's labels=None).
    /// macro-F1 = (2/3 + 0.6 + 0) / 3 = 0.42222...
    #[test]
    fn report_matches_hand_computed_example() {
        let matrix = matrix_from(
            &["neg", "neu", "pos", "unused"],
            &[&[2, 1, 0, 0], &[1, 3, 0, 0], &[0, 2, 0, 0], &[0, 0, 0, 0]],
        );
        let report = matrix.report("sentiment");
        assert_eq!(report.task, "sentiment");
        assert_eq!(report.n, 9);
        assert_close(report.accuracy, 5.0 / 9.0);
        let neg = &report.per_class["neg"];
        assert_close(neg.precision, 2.0 / 3.0);
        assert_close(neg.recall, 2.0 / 3.0);
        assert_close(neg.f1, 2.0 / 3.0);
        assert_eq!(neg.support, 3);
        let neu = &report.per_class["neu"];
        assert_close(neu.precision, 0.5);
        assert_close(neu.recall, 0.75);
        assert_close(neu.f1, 0.6);
        assert_eq!(neu.support, 4);
        assert_eq!(report.per_class["pos"], ClassMetrics { precision: 0.0, recall: 0.0, f1: 0.0, support: 2 });
        assert_eq!(report.per_class["unused"], ClassMetrics { precision: 0.0, recall: 0.0, f1: 0.0, support: 0 });
        assert_close(report.macro_f1, (2.0 / 3.0 + 0.6 + 0.0) / 3.0);
    }

    #[test]
    fn class_predicted_but_never_true_counts_in_macro_average() {
        // "b" has no support but is predicted once: P 0, R undefined -> 0, F1 0, and it is averaged.
        let matrix = matrix_from(&["a", "b"], &[&[1, 1], &[0, 0]]);
        let report = matrix.report("topic");
        assert_eq!(report.per_class["b"], ClassMetrics { precision: 0.0, recall: 0.0, f1: 0.0, support: 0 });
        // a: P 1, R 1/2, F1 2/3; macro over {a, b} = 1/3.
        assert_close(report.per_class["a"].f1, 2.0 / 3.0);
        assert_close(report.macro_f1, 1.0 / 3.0);
    }

    #[test]
    fn empty_matrix_reports_zeros_without_nan() {
        let matrix = ConfusionMatrix::new(labels(&["negative", "neutral", "positive"]));
        assert_eq!(matrix.total(), 0);
        let report = matrix.report("sentiment");
        assert_eq!(report.n, 0);
        assert_eq!(report.accuracy, 0.0);
        assert_eq!(report.macro_f1, 0.0);
        assert_eq!(report.per_class.len(), 3);
        for metrics in report.per_class.values() {
            assert_eq!(*metrics, ClassMetrics { precision: 0.0, recall: 0.0, f1: 0.0, support: 0 });
        }
        let json = serde_json::to_string(&report).expect("report serialises");
        assert!(!json.contains("null") && !json.contains("NaN"), "{json}");
        let text = report.render_text(&matrix);
        assert!(!text.contains("NaN"), "{text}");
    }

    #[test]
    fn matrix_with_no_labels_is_empty_and_renders() {
        let matrix = ConfusionMatrix::new(Vec::new());
        let report = matrix.report("topic");
        assert_eq!((report.n, report.accuracy, report.macro_f1), (0, 0.0, 0.0));
        assert!(report.per_class.is_empty());
        assert!(report.render_text(&matrix).contains("accuracy  0.0000"));
    }

    #[test]
    fn perfect_predictions_score_one() {
        let matrix = matrix_from(&["x", "y"], &[&[4, 0], &[0, 6]]);
        let report = matrix.report("topic");
        assert_eq!(report.accuracy, 1.0);
        assert_eq!(report.macro_f1, 1.0);
        assert_eq!(report.per_class["y"], ClassMetrics { precision: 1.0, recall: 1.0, f1: 1.0, support: 6 });
    }

    #[test]
    fn accessors_expose_counts() {
        let matrix = matrix_from(&["a", "b"], &[&[1, 2], &[3, 4]]);
        assert_eq!(matrix.labels(), ["a".to_string(), "b".to_string()]);
        assert_eq!(matrix.count(0, 1), 2);
        assert_eq!(matrix.count(1, 0), 3);
        assert_eq!(matrix.total(), 10);
    }

    #[test]
    #[should_panic(expected = "label index out of range")]
    fn recording_an_unknown_index_panics() {
        ConfusionMatrix::new(labels(&["a"])).record(0, 1);
    }

    #[test]
    #[should_panic(expected = "duplicate label")]
    fn duplicate_labels_panic() {
        ConfusionMatrix::new(labels(&["a", "a"]));
    }

    #[test]
    fn json_field_names_are_stable() {
        let report = matrix_from(&["a", "b"], &[&[1, 0], &[1, 2]]).report("topic");
        let value = serde_json::to_value(&report).expect("report serialises");
        let object = value.as_object().expect("report is an object");
        let mut keys: Vec<&str> = object.keys().map(String::as_str).collect();
        keys.sort_unstable();
        assert_eq!(keys, ["accuracy", "macro_f1", "n", "per_class", "task"]);
        assert_eq!(value["task"], "topic");
        assert_eq!(value["n"], 4);
        let class_a = value["per_class"]["a"].as_object().expect("per-class entry is an object");
        let mut class_keys: Vec<&str> = class_a.keys().map(String::as_str).collect();
        class_keys.sort_unstable();
        assert_eq!(class_keys, ["f1", "precision", "recall", "support"]);
        assert_eq!(value["per_class"]["b"]["support"], 3);
        let round_trip: EvaluationReport = serde_json::from_value(value).expect("report deserialises");
        assert_eq!(round_trip, report);
    }

    #[test]
    fn render_text_shows_metrics_table_and_matrix() {
        let names = ["Fed | Central Banks", "Earnings", "Stock Movement"];
        let matrix = matrix_from(&names, &[&[5, 1, 0], &[0, 12, 3], &[2, 0, 100]]);
        let text = matrix.report("topic").render_text(&matrix);
        assert!(text.contains("accuracy  0.9512"), "{text}");
        assert!(text.contains("macro-F1"), "{text}");
        // Per-class rows use full names, in matrix order, with columns aligned.
        let table_lines: Vec<&str> =
            text.lines().filter(|line| names.iter().any(|name| line.starts_with(name))).collect();
        assert_eq!(table_lines.len(), 6, "three table rows and three matrix rows:\n{text}");
        let header = text.lines().find(|line| line.starts_with("label")).expect("table header");
        let support_column = header.find("support").expect("support column");
        assert!(table_lines[..3].iter().all(|line| line.len() > support_column), "{text}");
        // Matrix headers are truncated and counts right-aligned under them.
        let matrix_header = text.lines().find(|line| line.contains("Earnin…")).expect("matrix header");
        assert!(matrix_header.contains("Fed | …") && matrix_header.contains("Stock …"), "{text}");
        let last_row = text.lines().last().expect("matrix row");
        assert!(last_row.starts_with("Stock Movement") && last_row.ends_with("100"), "{text}");
    }

    #[test]
    fn truncate_label_counts_characters() {
        assert_eq!(truncate_label("Earnings", 7), "Earnin…");
        assert_eq!(truncate_label("IPO", 7), "IPO");
        assert_eq!(truncate_label("宏观经济新闻", 3), "宏观…");
    }

    #[test]
    fn the_fitted_shift_recovers_an_under_predicted_class() {
        // Class 2 is the truth for the last 30 rows, but the model gives it a log-probability 0.5
        // below class 0 on them: only a shift of more than +0.5 on class 2 gets them right.
        let mut log_probabilities = Vec::new();
        let mut truths = Vec::new();
        for _ in 0..60 {
            log_probabilities.push(vec![-0.1, -3.0, -2.0]);
            truths.push(0);
        }
        for _ in 0..30 {
            log_probabilities.push(vec![-0.5, -3.0, -1.0]);
            truths.push(2);
        }
        let shift = fit_log_probability_shift(&log_probabilities, &truths, 3);
        assert_eq!(shift[0], 0.0);
        assert!(shift[2] > 0.5 && shift[2] < 1.9, "{shift:?}");
        assert_eq!(macro_f1_with_shift(&log_probabilities, &truths, &shift), 1.0);
    }

    #[test]
    fn a_model_that_is_already_right_keeps_a_zero_shift() {
        let log_probabilities = vec![vec![-0.1, -2.5], vec![-2.5, -0.1], vec![-0.2, -2.0]];
        assert_eq!(fit_log_probability_shift(&log_probabilities, &[0, 1, 0], 2), vec![0.0, 0.0]);
    }
}
