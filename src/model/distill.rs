//! Knowledge distillation: a teacher's logits (written by `scripts/teacher.py`) read from JSONL,
//! matched to training texts, and the loss that makes the student's logits follow them
//! (Tang et al. 2019, "Distilling task-specific knowledge from BERT into simple neural networks").

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::str::FromStr;

use anyhow::{Context, bail, ensure};
use flate2::read::MultiGzDecoder;
use serde::{Deserialize, Serialize};
use tch::{Kind, Reduction, Tensor};

use super::bundle::SENTIMENT_LABELS;
use super::train::TrainingExample;
use crate::dataset::{self, Split, SplitFractions};
use crate::text::dedup_key;

/// A teacher's logits for one text, in the student's class order; a head the teacher did not
/// label is None.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct TeacherLogits {
    pub topic: Option<Vec<f32>>,
    pub sentiment: Option<Vec<f32>>,
}

/// How much matching the teacher's logits weighs against the labels' cross-entropy, per head.
/// One weight for both heads is the usual recipe; separate ones let a head lean harder on its
/// teacher without making the other follow its teacher's bias (a heavier topic weight crowds out
/// the class-weighted labels that keep rare topics alive).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct DistillationWeights {
    pub topic: f64,
    pub sentiment: f64,
}

impl DistillationWeights {
    pub const fn both(weight: f64) -> Self {
        Self { topic: weight, sentiment: weight }
    }
}

impl Default for DistillationWeights {
    fn default() -> Self {
        Self::both(1.0)
    }
}

/// `2` for both heads, or `topic=1,sentiment=2` (a head left out keeps weight 1).
impl FromStr for DistillationWeights {
    type Err = String;

    fn from_str(spec: &str) -> Result<Self, String> {
        let weight = |text: &str| -> Result<f64, String> {
            match text.trim().parse::<f64>() {
                Ok(value) if value.is_finite() && value >= 0.0 => Ok(value),
                _ => Err(format!("{text:?} is not a weight: give a number >= 0, e.g. 2 or topic=1,sentiment=2")),
            }
        };
        if !spec.contains('=') {
            return weight(spec).map(Self::both);
        }
        let mut weights = Self::default();
        for part in spec.split(',') {
            let (head, value) = part.split_once('=').ok_or_else(|| {
                format!("{part:?} in {spec:?} is not head=weight: write topic=1,sentiment=2 or one number for both")
            })?;
            match head.trim() {
                "topic" => weights.topic = weight(value)?,
                "sentiment" => weights.sentiment = weight(value)?,
                other => return Err(format!("{other:?} in {spec:?} is not a head: the heads are topic and sentiment")),
            }
        }
        Ok(weights)
    }
}

impl fmt::Display for DistillationWeights {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.topic == self.sentiment {
            write!(formatter, "{}", self.topic)
        } else {
            write!(formatter, "topic={},sentiment={}", self.topic, self.sentiment)
        }
    }
}

/// One line of a soft-target file: logits keyed by label name, so the file does not depend on
/// the student's class order.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SoftTargetLine {
    text: String,
    #[serde(default)]
    topic_logits: Option<BTreeMap<String, f32>>,
    #[serde(default)]
    sentiment_logits: Option<BTreeMap<String, f32>>,
}

/// What attaching soft targets did, for the training log.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct AttachedSoftTargets {
    /// Training-split texts of `--data` that now carry teacher logits.
    pub matched: usize,
    /// Texts found only in the soft-target files that joined the training split (the transfer set).
    pub added: usize,
    /// Texts that fall in the validation or test split: ignored, so held-out texts stay unseen.
    pub held_out: usize,
}

/// Reads soft-target files (JSONL, optionally .gz) into teacher logits keyed by the normalised
/// text (`text::dedup_key`, the key the split hashes). Several files may label different heads
/// of the same text; two files labelling one head of one text are an error.
pub fn read_soft_targets(
    paths: &[PathBuf],
    topic_labels: &[String],
) -> anyhow::Result<HashMap<String, (String, TeacherLogits)>> {
    let sentiment_labels: Vec<String> = SENTIMENT_LABELS.iter().map(|label| label.to_string()).collect();
    let mut targets: HashMap<String, (String, TeacherLogits)> = HashMap::new();
    // Which file gave each text's head its logits: a text repeated within one file (the same
    // tweet with another link) keeps its first logits, but two files for one head are two
    // teachers, which is a mistake.
    let mut labelled_by: HashMap<(String, &str), usize> = HashMap::new();
    for (file_index, path) in paths.iter().enumerate() {
        let file = std::fs::File::open(path)
            .with_context(|| format!("cannot open soft-target file {}: check --soft-targets", path.display()))?;
        let reader: Box<dyn std::io::Read> = if path.extension().is_some_and(|extension| extension == "gz") {
            Box::new(MultiGzDecoder::new(file))
        } else {
            Box::new(file)
        };
        for (line_index, line) in BufReader::new(reader).lines().enumerate() {
            let place = || format!("{}:{}", path.display(), line_index + 1);
            let line = line.with_context(|| format!("cannot read {}", place()))?;
            if line.trim().is_empty() {
                continue;
            }
            let parsed: SoftTargetLine = serde_json::from_str(&line).with_context(|| {
                format!(
                    "{} is not a soft-target line ({{\"text\": ..., \"sentiment_logits\": {{\"negative\": 1.2, ...}}}}, as \
                     scripts/teacher.py label writes)",
                    place()
                )
            })?;
            let topic =
                parsed.topic_logits.map(|logits| in_class_order(logits, topic_labels, "topic", &place)).transpose()?;
            let sentiment = parsed
                .sentiment_logits
                .map(|logits| in_class_order(logits, &sentiment_labels, "sentiment", &place))
                .transpose()?;
            ensure!(
                topic.is_some() || sentiment.is_some(),
                "{} has neither topic_logits nor sentiment_logits",
                place()
            );
            let key = dedup_key(&parsed.text);
            let (_, entry) = targets.entry(key.clone()).or_insert_with(|| (parsed.text, TeacherLogits::default()));
            for (head, slot, logits) in
                [("topic", &mut entry.topic, topic), ("sentiment", &mut entry.sentiment, sentiment)]
            {
                let Some(logits) = logits else { continue };
                match labelled_by.get(&(key.clone(), head)) {
                    None => {
                        labelled_by.insert((key.clone(), head), file_index);
                        *slot = Some(logits);
                    }
                    Some(&earlier) if earlier == file_index => {}
                    Some(&earlier) => bail!(
                        "{} gives {head} logits for a text that {} already labelled: one teacher per head",
                        place(),
                        paths[earlier].display()
                    ),
                }
            }
        }
    }
    Ok(targets)
}

/// Orders a head's logits like the student's classes, insisting on exactly those classes.
fn in_class_order(
    logits: BTreeMap<String, f32>,
    labels: &[String],
    head: &str,
    place: &dyn Fn() -> String,
) -> anyhow::Result<Vec<f32>> {
    if let Some(unknown) = logits.keys().find(|label| !labels.contains(label)) {
        bail!(
            "{}: the teacher's {head} class {unknown:?} is not one the training data has ({}): the teacher must be \
             fitted on the same labels",
            place(),
            labels.join(", ")
        );
    }
    labels
        .iter()
        .map(|label| match logits.get(label) {
            Some(value) if value.is_finite() => Ok(*value),
            Some(value) => bail!("{}: {head} logit of {label:?} is {value}, not a finite number", place()),
            None => bail!("{}: {head} logits lack the class {label:?}", place()),
        })
        .collect()
}

/// Gives each training-split example its teacher logits, and adds the soft-target texts that
/// `--data` lacks to the training split when their hash puts them there. A text the split holds
/// out is never trained on, whichever file it came from.
pub fn attach_soft_targets(
    train: &mut Vec<TrainingExample>,
    mut targets: HashMap<String, (String, TeacherLogits)>,
    fractions: SplitFractions,
) -> AttachedSoftTargets {
    let mut attached = AttachedSoftTargets::default();
    for example in train.iter_mut() {
        if let Some((_, logits)) = targets.remove(&dedup_key(&example.text)) {
            example.teacher = Some(logits);
            attached.matched += 1;
        }
    }
    let mut transfer: Vec<(String, TeacherLogits)> = targets.into_values().collect();
    // HashMap order is random: sort so the training set, and so the model, is reproducible.
    transfer.sort_by(|left, right| left.0.cmp(&right.0));
    for (text, logits) in transfer {
        if dataset::assign_split(&text, fractions) == Split::Train {
            train.push(TrainingExample { text, topic: None, sentiment: None, teacher: Some(logits) });
            attached.added += 1;
        } else {
            attached.held_out += 1;
        }
    }
    attached
}

/// Mean squared error between the student's and the teacher's logits over the given rows, each
/// side centred first: a softmax ignores a constant shift of the logits, so the student need
/// not copy the teacher's arbitrary offset. Tang et al. found MSE on logits better than
/// cross-entropy on softened probabilities for a BiLSTM student.
pub fn logit_matching_loss(student_logits: &Tensor, rows: &[(usize, &[f32])]) -> Option<Tensor> {
    if rows.is_empty() {
        return None;
    }
    let indices: Vec<i64> = rows.iter().map(|&(row, _)| row as i64).collect();
    let classes = rows[0].1.len() as i64;
    let flat: Vec<f32> = rows.iter().flat_map(|&(_, logits)| logits.iter().copied()).collect();
    let teacher = Tensor::from_slice(&flat).view([rows.len() as i64, classes]);
    let student = student_logits.index_select(0, &Tensor::from_slice(&indices));
    let centre = |logits: &Tensor| logits - logits.mean_dim(-1, true, Kind::Float);
    Some(centre(&student).mse_loss(&centre(&teacher), Reduction::Mean))
}

#[cfg(test)]
mod tests {
    use std::io::Write;
    use std::path::Path;

    use super::*;

    fn write_lines(directory: &Path, name: &str, lines: &[&str]) -> PathBuf {
        let path = directory.join(name);
        std::fs::write(&path, lines.join("\n") + "\n").unwrap();
        path
    }

    #[test]
    fn distillation_weights_take_one_number_or_one_per_head_and_name_a_bad_value() {
        assert_eq!("2".parse::<DistillationWeights>(), Ok(DistillationWeights::both(2.0)));
        assert_eq!(
            "sentiment=2, topic=0.5".parse::<DistillationWeights>(),
            Ok(DistillationWeights { topic: 0.5, sentiment: 2.0 })
        );
        assert_eq!(
            "sentiment=2".parse::<DistillationWeights>(),
            Ok(DistillationWeights { topic: 1.0, sentiment: 2.0 })
        );
        for weights in [DistillationWeights::both(1.5), DistillationWeights { topic: 1.0, sentiment: 2.0 }] {
            assert_eq!(weights.to_string().parse::<DistillationWeights>(), Ok(weights), "Display round-trips");
        }
        let negative = "-1".parse::<DistillationWeights>().unwrap_err();
        assert!(negative.contains("\"-1\"") && negative.contains(">= 0"), "{negative}");
        let head = "topc=1".parse::<DistillationWeights>().unwrap_err();
        assert!(head.contains("\"topc\"") && head.contains("topic and sentiment"), "{head}");
        let not_a_pair = "topic=1,2".parse::<DistillationWeights>().unwrap_err();
        assert!(not_a_pair.contains("\"2\"") && not_a_pair.contains("head=weight"), "{not_a_pair}");
        assert!("topic=nan".parse::<DistillationWeights>().unwrap_err().contains("\"nan\""));
    }

    fn topics() -> Vec<String> {
        vec!["Energy".to_owned(), "Macro".to_owned()]
    }

    #[test]
    fn logits_are_put_in_the_students_class_order_and_heads_from_two_files_merge() {
        let directory = tempfile::tempdir().unwrap();
        let sentiment = write_lines(
            directory.path(),
            "sentiment.jsonl",
            &[r#"{"text": "Oil slides!", "sentiment_logits": {"positive": 3.0, "negative": 1.0, "neutral": 2.0}}"#],
        );
        let topic_path = directory.path().join("topic.jsonl.gz");
        let mut gzip =
            flate2::write::GzEncoder::new(std::fs::File::create(&topic_path).unwrap(), flate2::Compression::default());
        writeln!(gzip, r#"{{"text": "oil slides", "topic_logits": {{"Macro": -1.0, "Energy": 4.0}}}}"#).unwrap();
        gzip.finish().unwrap();

        let targets = read_soft_targets(&[sentiment, topic_path], &topics()).unwrap();
        assert_eq!(targets.len(), 1, "the same normalised text is one entry");
        let (text, logits) = &targets[&dedup_key("Oil slides!")];
        assert_eq!(text, "Oil slides!");
        assert_eq!(logits.sentiment.as_deref(), Some(&[1.0, 2.0, 3.0][..]), "negative, neutral, positive");
        assert_eq!(logits.topic.as_deref(), Some(&[4.0, -1.0][..]), "sorted topic classes: Energy, Macro");
    }

    #[test]
    fn a_teacher_with_other_classes_or_two_answers_for_one_head_is_refused_with_the_line() {
        let directory = tempfile::tempdir().unwrap();
        let error_of = |lines: &[&str]| {
            let path = write_lines(directory.path(), "soft.jsonl", lines);
            format!("{:#}", read_soft_targets(&[path], &topics()).unwrap_err())
        };
        let unknown = error_of(&[r#"{"text": "a", "topic_logits": {"Energy": 1.0, "Macro": 0.0, "Crypto": 2.0}}"#]);
        assert!(unknown.contains("soft.jsonl:1") && unknown.contains("\"Crypto\""), "{unknown}");
        let missing = error_of(&["", r#"{"text": "a", "sentiment_logits": {"negative": 1.0, "neutral": 0.0}}"#]);
        assert!(missing.contains("soft.jsonl:2") && missing.contains("lack the class \"positive\""), "{missing}");
        let first_teacher = write_lines(
            directory.path(),
            "first.jsonl",
            &[
                r#"{"text": "a b", "topic_logits": {"Energy": 1.0, "Macro": 0.0}}"#,
                r#"{"text": "A, b", "topic_logits": {"Energy": 0.0, "Macro": 1.0}}"#,
            ],
        );
        let repeated = read_soft_targets(std::slice::from_ref(&first_teacher), &topics()).unwrap();
        assert_eq!(repeated[&dedup_key("a b")].1.topic, Some(vec![1.0, 0.0]), "a repeat within a file keeps the first");
        let second_teacher = write_lines(
            directory.path(),
            "second.jsonl",
            &[r#"{"text": "a b!", "topic_logits": {"Energy": 1.0, "Macro": 0.0}}"#],
        );
        let twice = format!("{:#}", read_soft_targets(&[first_teacher, second_teacher], &topics()).unwrap_err());
        assert!(twice.contains("second.jsonl:1") && twice.contains("first.jsonl already labelled"), "{twice}");
        let neither = error_of(&[r#"{"text": "a"}"#]);
        assert!(neither.contains("neither"), "{neither}");
        let not_json = error_of(&["text,sentiment"]);
        assert!(not_json.contains("scripts/teacher.py"), "{not_json}");
    }

    #[test]
    fn attaching_keeps_held_out_texts_out_and_adds_transfer_texts_to_training() {
        let fractions = SplitFractions { validation: 0.3, test: 0.3 };
        let texts: Vec<String> = (0..200).map(|index| format!("transfer text number {index}")).collect();
        let logits = || TeacherLogits { topic: None, sentiment: Some(vec![1.0, 0.0, -1.0]) };
        let mut targets: HashMap<String, (String, TeacherLogits)> =
            texts.iter().map(|text| (dedup_key(text), (text.clone(), logits()))).collect();
        targets.insert(dedup_key("Labelled text"), ("labelled text".to_owned(), logits()));
        let mut train =
            vec![TrainingExample { text: "Labelled text".to_owned(), topic: Some(0), sentiment: None, teacher: None }];

        let attached = attach_soft_targets(&mut train, targets, fractions);
        let in_train = texts.iter().filter(|text| dataset::assign_split(text, fractions) == Split::Train).count();
        assert_eq!(attached, AttachedSoftTargets { matched: 1, added: in_train, held_out: 200 - in_train });
        assert!(in_train > 0 && in_train < 200);
        assert_eq!(train[0].teacher, Some(logits()), "a --data text gets its logits");
        assert!(train[1..].iter().all(|example| dataset::assign_split(&example.text, fractions) == Split::Train));
        let order: Vec<&str> = train[1..].iter().map(|example| example.text.as_str()).collect();
        assert!(order.is_sorted(), "transfer texts join in a reproducible order");
    }

    #[test]
    fn logit_matching_ignores_a_constant_shift_and_grows_with_disagreement() {
        let student = Tensor::from_slice(&[1.0f32, 2.0, 3.0, 0.0, 0.0, 0.0]).view([2, 3]);
        let shifted = [11.0f32, 12.0, 13.0];
        let same = logit_matching_loss(&student, &[(0, &shifted[..])]).unwrap().double_value(&[]);
        assert!(same.abs() < 1e-9, "{same}");
        let opposite = [3.0f32, 2.0, 1.0];
        let far = logit_matching_loss(&student, &[(0, &opposite[..])]).unwrap().double_value(&[]);
        assert!((far - 8.0 / 3.0).abs() < 1e-6, "centred (-1,0,1) vs (1,0,-1): mean of 4,0,4 = {far}");
        let second_row = logit_matching_loss(&student, &[(1, &opposite[..])]).unwrap().double_value(&[]);
        assert!((second_row - 2.0 / 3.0).abs() < 1e-6, "row 1 is all zeros: {second_row}");
        assert!(logit_matching_loss(&student, &[]).is_none());
    }
}
