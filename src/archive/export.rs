//! A sample of the archive for labelling: deduplicated by normalised text, stratified by
//! predicted topic, written as a CSV that `sentmon train --data` reads once an analyst has
//! filled its `topic` and `sentiment` columns.

use std::cell::Cell;
use std::collections::{BTreeMap, HashSet};
use std::fs::File;
use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::rc::Rc;

use anyhow::{Context, bail};
use flate2::read::MultiGzDecoder;
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use super::record::ArchiveRecord;
use crate::dataset::{fnv1a_64, resolve_files};
use crate::text::dedup_key;

/// The CSV's columns. `topic` and `sentiment` come right after the text and start empty: they
/// are what the analyst fills, under the names `sentmon train` reads labels from. The model's
/// guesses follow as `predicted_*` hints, which training ignores.
const CSV_HEADER: [&str; 12] = [
    "text",
    "topic",
    "sentiment",
    "predicted_topic",
    "predicted_topic_prob",
    "predicted_sentiment",
    "predicted_negative_prob",
    "predicted_neutral_prob",
    "predicted_positive_prob",
    "model_version",
    "id",
    "event_time",
];

/// What went into a sample.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct SampleSummary {
    pub files: usize,
    pub rows: usize,
    /// Rows whose normalised text had been seen already (re-posts, retweets, replays).
    pub duplicates: usize,
    /// Lines that are not archive rows, skipped.
    pub bad_rows: usize,
    /// Distinct texts per predicted topic, before sampling.
    pub distinct_by_topic: BTreeMap<String, usize>,
}

/// Draws up to `sample_size` rows with distinct normalised text from the archive files under
/// `paths`, the same number from each predicted topic where it has enough (equal allocation, so
/// rare topics get labelled too; topics with fewer rows give their share to the others), in a
/// shuffled order. The same files and seed give the same sample.
///
/// Memory stays bounded on large archives: one 64-bit hash per distinct text and at most
/// `sample_size` rows per topic (a reservoir sample of each topic).
pub fn sample_for_labelling(
    paths: &[PathBuf],
    sample_size: usize,
    seed: u64,
) -> anyhow::Result<(Vec<ArchiveRecord>, SampleSummary)> {
    let files: Vec<PathBuf> = resolve_files(paths)?.into_iter().filter(|path| is_json_lines(path)).collect();
    if files.is_empty() {
        bail!("no archive files (.jsonl.gz or .jsonl) under {}", display_paths(paths));
    }
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut summary = SampleSummary { files: files.len(), ..SampleSummary::default() };
    let mut seen_texts = HashSet::new();
    let mut reservoirs: BTreeMap<String, Vec<ArchiveRecord>> = BTreeMap::new();
    for file in &files {
        for_each_row(file, |row, _| {
            summary.rows += 1;
            let Ok(record) = serde_json::from_slice::<ArchiveRecord>(row) else {
                summary.bad_rows += 1;
                return Ok(());
            };
            if !seen_texts.insert(fnv1a_64(dedup_key(&record.text).as_bytes())) {
                summary.duplicates += 1;
                return Ok(());
            }
            let distinct = summary.distinct_by_topic.entry(record.predicted.topic.clone()).or_default();
            *distinct += 1;
            let reservoir = reservoirs.entry(record.predicted.topic.clone()).or_default();
            // Algorithm R: after n rows, each is in the reservoir with probability size / n.
            if reservoir.len() < sample_size {
                reservoir.push(record);
            } else {
                let slot = rng.random_range(0..*distinct);
                if slot < sample_size {
                    reservoir[slot] = record;
                }
            }
            Ok(())
        })?;
    }
    let mut sample = take_equal_shares(reservoirs, sample_size, &mut rng);
    sample.shuffle(&mut rng);
    Ok((sample, summary))
}

/// Round-robin over the topics (each reservoir shuffled first) until `sample_size` rows are taken.
fn take_equal_shares(
    reservoirs: BTreeMap<String, Vec<ArchiveRecord>>,
    sample_size: usize,
    rng: &mut ChaCha8Rng,
) -> Vec<ArchiveRecord> {
    let mut queues: Vec<std::vec::IntoIter<ArchiveRecord>> = reservoirs
        .into_values()
        .map(|mut reservoir| {
            reservoir.shuffle(rng);
            reservoir.into_iter()
        })
        .collect();
    let mut sample = Vec::with_capacity(sample_size);
    while sample.len() < sample_size {
        let taken_before = sample.len();
        for queue in &mut queues {
            if sample.len() == sample_size {
                break;
            }
            sample.extend(queue.next());
        }
        if sample.len() == taken_before {
            break;
        }
    }
    sample
}

/// Writes the sample as CSV for labelling. Refuses to replace an existing file: it may hold an
/// analyst's labels.
pub fn write_labelling_csv(sample: &[ArchiveRecord], out: &Path) -> anyhow::Result<()> {
    let file = File::options().write(true).create_new(true).open(out).with_context(|| {
        format!("failed to create {} (an existing file is never replaced: it may hold labels)", out.display())
    })?;
    let mut writer = csv::Writer::from_writer(file);
    writer.write_record(CSV_HEADER)?;
    for record in sample {
        let predicted = &record.predicted;
        writer.write_record([
            record.text.as_str(),
            "",
            "",
            &predicted.topic,
            &predicted.topic_prob.to_string(),
            &predicted.sentiment,
            &predicted.sentiment_probs.negative.to_string(),
            &predicted.sentiment_probs.neutral.to_string(),
            &predicted.sentiment_probs.positive.to_string(),
            &record.model_version,
            record.id.as_deref().unwrap_or_default(),
            record.event_time.as_deref().unwrap_or_default(),
        ])?;
    }
    writer.flush().with_context(|| format!("failed to write {}", out.display()))?;
    Ok(())
}

/// Whether a path names a JSON lines file, plain or gzipped.
pub(crate) fn is_json_lines(path: &Path) -> bool {
    let name = path.file_name().map(|name| name.to_string_lossy().to_ascii_lowercase()).unwrap_or_default();
    name.ends_with(".jsonl.gz") || name.ends_with(".jsonl")
}

/// Calls `visit` with each non-blank line of a JSON lines file, decompressing `.gz`, and with the bytes of the file
/// (compressed, as on disk) read so far, for progress bars. Stops at the first error `visit` returns.
pub(crate) fn for_each_row(path: &Path, mut visit: impl FnMut(&[u8], u64) -> anyhow::Result<()>) -> anyhow::Result<()> {
    let file = File::open(path).with_context(|| format!("failed to open {}", path.display()))?;
    let bytes_read = Rc::new(Cell::new(0));
    let counted = CountingReader { inner: file, bytes_read: Rc::clone(&bytes_read) };
    let gzip = path.extension().is_some_and(|extension| extension.eq_ignore_ascii_case("gz"));
    let decompressed: Box<dyn Read> = if gzip { Box::new(MultiGzDecoder::new(counted)) } else { Box::new(counted) };
    let mut reader = BufReader::new(decompressed);
    let mut line = Vec::new();
    loop {
        line.clear();
        let read = reader.read_until(b'\n', &mut line).with_context(|| format!("failed to read {}", path.display()))?;
        if read == 0 {
            return Ok(());
        }
        if !line.iter().all(u8::is_ascii_whitespace) {
            visit(&line, bytes_read.get())?;
        }
    }
}

/// Counts the bytes read through it.
struct CountingReader<R> {
    inner: R,
    bytes_read: Rc<Cell<u64>>,
}

impl<R: Read> Read for CountingReader<R> {
    fn read(&mut self, buffer: &mut [u8]) -> std::io::Result<usize> {
        let read = self.inner.read(buffer)?;
        self.bytes_read.set(self.bytes_read.get() + read as u64);
        Ok(read)
    }
}

pub(crate) fn display_paths(paths: &[PathBuf]) -> String {
    paths.iter().map(|path| path.display().to_string()).collect::<Vec<_>>().join(", ")
}

#[cfg(test)]
mod tests {
    use std::fs;
    use std::io::Write;

    use flate2::Compression;
    use flate2::write::GzEncoder;

    use super::*;
    use crate::archive::record::tests::sample_record;
    use crate::dataset::{ColumnNames, load_labelled};

    fn write_archive(path: &Path, records: &[ArchiveRecord]) {
        fs::create_dir_all(path.parent().unwrap()).unwrap();
        let mut encoder = GzEncoder::new(File::create(path).unwrap(), Compression::default());
        for record in records {
            serde_json::to_writer(&mut encoder, record).unwrap();
            encoder.write_all(b"\n").unwrap();
        }
        encoder.finish().unwrap();
    }

    /// 60 rows of a common topic, 3 of a rare one, and re-posts of the common ones.
    fn archive_with_skewed_topics(directory: &Path) {
        let common: Vec<ArchiveRecord> = (0..60)
            .map(|index| sample_record(&format!("c{index}"), &format!("Stocks rally for day {index}"), "Markets"))
            .collect();
        let rare: Vec<ArchiveRecord> = (0..3)
            .map(|index| sample_record(&format!("r{index}"), &format!("IPO number {index} priced"), "IPO"))
            .collect();
        let reposts: Vec<ArchiveRecord> = (0..20)
            .map(|index| {
                sample_record(
                    &format!("d{index}"),
                    &format!("STOCKS rally for day {index}! https://t.co/x{index}"),
                    "Markets",
                )
            })
            .collect();
        write_archive(&directory.join("2026-11-25/sentmon-a-000001.jsonl.gz"), &common);
        write_archive(&directory.join("2026-11-26/sentmon-b-000001.jsonl.gz"), &[rare, reposts].concat());
        fs::write(directory.join("2026-11-26/.sentmon-b-000002.jsonl.gz.tmp"), "not read").unwrap();
    }

    #[test]
    fn sample_is_deduplicated_stratified_and_reproducible() {
        let directory = tempfile::tempdir().unwrap();
        archive_with_skewed_topics(directory.path());
        let paths = [directory.path().to_path_buf()];
        let (sample, summary) = sample_for_labelling(&paths, 10, 7).unwrap();
        assert_eq!(
            summary,
            SampleSummary {
                files: 2,
                rows: 83,
                duplicates: 20,
                bad_rows: 0,
                distinct_by_topic: BTreeMap::from([("IPO".to_owned(), 3), ("Markets".to_owned(), 60)]),
            }
        );
        assert_eq!(sample.len(), 10);
        let rare_count = sample.iter().filter(|record| record.predicted.topic == "IPO").count();
        assert_eq!(rare_count, 3, "every rare row is taken before the common topic fills the rest");
        let keys: HashSet<String> = sample.iter().map(|record| dedup_key(&record.text)).collect();
        assert_eq!(keys.len(), 10, "no two rows with the same normalised text");
        assert!(sample.iter().all(|record| !record.id.as_deref().unwrap().starts_with('d')), "re-posts come later");

        let (again, _) = sample_for_labelling(&paths, 10, 7).unwrap();
        assert_eq!(again, sample, "same seed, same sample");
        let (other_seed, _) = sample_for_labelling(&paths, 10, 8).unwrap();
        assert_ne!(other_seed, sample);
        let (everything, _) = sample_for_labelling(&paths, 1000, 7).unwrap();
        assert_eq!(everything.len(), 63);
    }

    #[test]
    fn the_labelled_csv_trains_and_unlabelled_rows_stay_unlabelled() {
        let directory = tempfile::tempdir().unwrap();
        archive_with_skewed_topics(directory.path());
        let (sample, _) = sample_for_labelling(&[directory.path().to_path_buf()], 4, 1).unwrap();
        let csv_path = directory.path().join("to-label.csv");
        write_labelling_csv(&sample, &csv_path).unwrap();
        assert!(write_labelling_csv(&sample, &csv_path).is_err(), "an existing file is never replaced");

        // Untouched, the export is text with hints but no labels.
        let untouched = load_labelled(std::slice::from_ref(&csv_path), &ColumnNames::default(), true).unwrap();
        assert_eq!(untouched.examples.len(), 4);
        assert!(untouched.examples.iter().all(|example| example.topic.is_none() && example.sentiment.is_none()));

        // The analyst labels the first row's topic and the second row's sentiment.
        let mut reader = csv::Reader::from_path(&csv_path).unwrap();
        let header = reader.headers().unwrap().clone();
        assert_eq!(header.iter().collect::<Vec<_>>(), CSV_HEADER);
        let mut rows: Vec<csv::StringRecord> = reader.records().map(Result::unwrap).collect();
        let labelled_csv = directory.path().join("labelled.csv");
        let mut writer = csv::Writer::from_path(&labelled_csv).unwrap();
        writer.write_record(&header).unwrap();
        let set_cell = |row: &csv::StringRecord, column: usize, value: &str| -> csv::StringRecord {
            row.iter().enumerate().map(|(index, cell)| if index == column { value } else { cell }).collect()
        };
        rows[0] = set_cell(&rows[0], 1, "IPO");
        rows[1] = set_cell(&rows[1], 2, "Positive");
        for row in &rows {
            writer.write_record(row).unwrap();
        }
        writer.flush().unwrap();
        let labelled = load_labelled(&[labelled_csv], &ColumnNames::default(), true).unwrap();
        let labels: Vec<(Option<&str>, Option<&str>)> =
            labelled.examples.iter().map(|example| (example.topic.as_deref(), example.sentiment.as_deref())).collect();
        assert_eq!(labels, [(Some("IPO"), None), (None, Some("positive")), (None, None), (None, None)]);
        assert_eq!(labelled.examples[0].text, sample[0].text);
    }

    /// Regression guard for issue 5: the model's predictions in an archive row must never be
    /// read as labels, or a retrained model would learn its own mistakes.
    #[test]
    fn archive_rows_are_unlabelled_text_until_an_analyst_adds_labels() {
        let directory = tempfile::tempdir().unwrap();
        archive_with_skewed_topics(directory.path());
        let mut labelled_row =
            serde_json::to_value(sample_record("l1", "Lender misses estimates", "Earnings")).unwrap();
        labelled_row["sentiment"] = "negative".into();
        labelled_row["topic"] = "Company | Product News".into();
        let labelled_file = directory.path().join("2026-11-26/labelled.jsonl");
        fs::write(&labelled_file, format!("{labelled_row}\n")).unwrap();

        let corpus = load_labelled(&[directory.path().to_path_buf()], &ColumnNames::default(), true).unwrap();
        assert_eq!(corpus.files.len(), 3, "the temporary file is not read: {:?}", corpus.files);
        assert_eq!(corpus.examples.len(), 84);
        let (labelled, unlabelled): (Vec<_>, Vec<_>) =
            corpus.examples.iter().partition(|example| example.topic.is_some() || example.sentiment.is_some());
        assert_eq!(unlabelled.len(), 83, "every row with only predictions is unlabelled");
        assert_eq!(labelled.len(), 1);
        assert_eq!(labelled[0].topic.as_deref(), Some("Company | Product News"));
        assert_eq!(labelled[0].sentiment.as_deref(), Some("negative"));
    }

    #[test]
    fn paths_without_archive_files_are_an_error() {
        let directory = tempfile::tempdir().unwrap();
        fs::write(directory.path().join("labels.csv"), "text\nx\n").unwrap();
        let error = sample_for_labelling(&[directory.path().to_path_buf()], 5, 1).unwrap_err();
        assert!(error.to_string().starts_with("no archive files"), "{error}");
    }
}
