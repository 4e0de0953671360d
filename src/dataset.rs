//! Labelled archives: reading JSONL/CSV (optionally gzip), bad-row reports, and the split.
//!
//! Loading never stops at a bad row unless asked to (`strict`): every row that cannot be used is
//! reported with its file and line so the person labelling data can fix it, and the rest is used.
//! The split is a pure function of the normalised text, so it is identical on every run and
//! machine and near-duplicates (the same headline re-posted with a new link) never straddle it.

use std::fmt;
use std::fs::{self, File};
use std::io::{self, BufRead, BufReader, BufWriter, Read, Write};
use std::path::{Path, PathBuf};
use std::str::FromStr;

use anyhow::{Context, bail};
use flate2::read::MultiGzDecoder;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::text::dedup_key;

/// Longest line (JSONL) or record (CSV) accepted, in bytes. The longest real rows are tweets and
/// headlines well under 4 KiB; 1 MiB is only reached by corrupt or binary input, which must become
/// a bad row instead of an unbounded allocation.
const MAX_ROW_BYTES: usize = 1 << 20;

/// Resolution of the split: fractions are honoured to 1/10,000 (0.01%), fine enough for any
/// validation or test share anyone asks for, and a modulus small enough to keep buckets uniform.
const SPLIT_BUCKETS: u64 = 10_000;

/// FNV-1a 64-bit parameters, from the FNV specification (draft-eastlake-fnv): chosen because the
/// algorithm is fixed forever and identical on every platform, unlike `std`'s `DefaultHasher`.
const FNV_OFFSET_BASIS: u64 = 0xcbf2_9ce4_8422_2325;
const FNV_PRIME: u64 = 0x0000_0100_0000_01b3;

/// Upper bound of each split fraction: beyond one half the training set would no longer be the
/// majority, which is always a mistake in the arguments rather than an intent.
const MAX_SPLIT_FRACTION: f64 = 0.5;

/// Human-readable list of what `load_labelled` reads, for error messages.
const SUPPORTED_EXTENSIONS: &str = ".jsonl, .ndjson, .jsonlines, .csv, .tsv (each optionally followed by .gz)";

/// The UTF-8 byte-order mark that Windows tools put at the start of exported files.
const UTF8_BYTE_ORDER_MARK: &[u8] = b"\xEF\xBB\xBF";

/// The two classification tasks, each trained on its own labelled rows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Task {
    Topic,
    Sentiment,
}

impl Task {
    pub fn as_str(self) -> &'static str {
        match self {
            Task::Topic => "topic",
            Task::Sentiment => "sentiment",
        }
    }
}

impl fmt::Display for Task {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.write_str(self.as_str())
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown task {0:?}: expected \"topic\" or \"sentiment\"")]
pub struct UnknownTask(pub String);

impl FromStr for Task {
    type Err = UnknownTask;

    fn from_str(value: &str) -> Result<Self, Self::Err> {
        match value.trim().to_ascii_lowercase().as_str() {
            "topic" => Ok(Task::Topic),
            "sentiment" => Ok(Task::Sentiment),
            _ => Err(UnknownTask(value.to_string())),
        }
    }
}

/// Which field (JSONL) or header column (CSV/TSV) holds the text and each label.
#[derive(Debug, Clone)]
pub struct ColumnNames {
    pub text: String,
    pub topic: String,
    pub sentiment: String,
}

impl ColumnNames {
    fn label(&self, task: Task) -> &str {
        match task {
            Task::Topic => &self.topic,
            Task::Sentiment => &self.sentiment,
        }
    }
}

impl Default for ColumnNames {
    fn default() -> Self {
        ColumnNames { text: "text".to_string(), topic: "topic".to_string(), sentiment: "sentiment".to_string() }
    }
}

/// One usable row. A row with neither label is kept: it is still text for language-model
/// pretraining. Serialised as the split files' row format (absent labels are omitted).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct LabelledText {
    pub text: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub topic: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sentiment: Option<String>,
}

impl LabelledText {
    pub fn label(&self, task: Task) -> Option<&str> {
        match task {
            Task::Topic => self.topic.as_deref(),
            Task::Sentiment => self.sentiment.as_deref(),
        }
    }
}

/// A row that was skipped, with where it is and why. Its `Display` is `path:line: reason`, the form
/// editors and terminals turn into a link.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{}:{line}: {reason}", file.display())]
pub struct BadRow {
    pub file: PathBuf,
    /// 1-based: the physical line for JSONL, the line where the record starts for CSV/TSV.
    pub line: usize,
    pub reason: String,
}

#[derive(Debug)]
pub struct LoadedCorpus {
    pub examples: Vec<LabelledText>,
    pub bad_rows: Vec<BadRow>,
    /// Every file read, in reading order.
    pub files: Vec<PathBuf>,
    /// SHA-256 (hex) over each file's name and decompressed bytes, in order, so a model records
    /// exactly what it was trained on. Precisely: SHA-256 of, per file, the file name's length (u64
    /// little-endian), its UTF-8 bytes and the SHA-256 of its decompressed content. Only the file
    /// name enters, not the directory, so the same data gives the same digest on every machine.
    pub digest: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum FileFormat {
    JsonLines,
    Csv,
    Tsv,
}

/// A file `load_labelled` can read: its row format and whether it is gzip-compressed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct FileKind {
    format: FileFormat,
    gzip: bool,
}

/// Decides by extension (case-insensitive), so a directory can mix formats.
fn file_kind(path: &Path) -> Option<FileKind> {
    let file_name = path.file_name()?.to_str()?.to_ascii_lowercase();
    let (uncompressed_name, gzip) = match file_name.strip_suffix(".gz") {
        Some(stem) => (stem, true),
        None => (file_name.as_str(), false),
    };
    let extension = Path::new(uncompressed_name).extension()?.to_str()?;
    let format = match extension {
        "jsonl" | "ndjson" | "jsonlines" => FileFormat::JsonLines,
        "csv" => FileFormat::Csv,
        "tsv" => FileFormat::Tsv,
        _ => return None,
    };
    Some(FileKind { format, gzip })
}

fn is_hidden(path: &Path) -> bool {
    path.file_name().and_then(|name| name.to_str()).is_some_and(|name| name.starts_with('.'))
}

/// Every supported, non-hidden file under `directory`. Symbolic links to directories are not
/// followed, so a link cycle cannot make the walk endless.
fn collect_directory(directory: &Path, files: &mut Vec<PathBuf>) -> anyhow::Result<()> {
    let entries =
        fs::read_dir(directory).with_context(|| format!("failed to list directory {}", directory.display()))?;
    for entry in entries {
        let entry = entry.with_context(|| format!("failed to list directory {}", directory.display()))?;
        let entry_path = entry.path();
        if is_hidden(&entry_path) {
            continue;
        }
        let file_type = entry.file_type().with_context(|| format!("failed to inspect {}", entry_path.display()))?;
        if file_type.is_dir() {
            collect_directory(&entry_path, files)?;
        } else if file_kind(&entry_path).is_some() && fs::metadata(&entry_path).is_ok_and(|metadata| metadata.is_file())
        {
            files.push(entry_path);
        }
    }
    Ok(())
}

/// Expands the given paths into the ordered list of files to read.
pub(crate) fn resolve_files(paths: &[PathBuf]) -> anyhow::Result<Vec<PathBuf>> {
    if paths.is_empty() {
        bail!("no labelled data paths given");
    }
    let mut files = Vec::new();
    for path in paths {
        let metadata = fs::metadata(path).with_context(|| format!("failed to read {}", path.display()))?;
        if metadata.is_dir() {
            let mut directory_files = Vec::new();
            collect_directory(path, &mut directory_files)?;
            if directory_files.is_empty() {
                bail!("no supported file in directory {} (supported: {SUPPORTED_EXTENSIONS})", path.display());
            }
            // Sorted so the examples and the digest do not depend on the file system's order.
            directory_files.sort();
            files.extend(directory_files);
        } else if file_kind(path).is_some() {
            files.push(path.clone());
        } else {
            bail!("unsupported file type: {} (supported: {SUPPORTED_EXTENSIONS})", path.display());
        }
    }
    Ok(files)
}

/// Feeds every byte read through it into a SHA-256, so the digest covers exactly what was parsed
/// without reading any file twice.
struct DigestingReader<R> {
    inner: R,
    hasher: Sha256,
}

impl<R: Read> Read for DigestingReader<R> {
    fn read(&mut self, buffer: &mut [u8]) -> io::Result<usize> {
        let read_count = self.inner.read(buffer)?;
        self.hasher.update(&buffer[..read_count]);
        Ok(read_count)
    }
}

impl<R: Read> DigestingReader<R> {
    /// Reads whatever the parser left unread (nothing, normally) and returns the content digest.
    fn finish(mut self) -> io::Result<[u8; 32]> {
        io::copy(&mut self, &mut io::sink())?;
        Ok(self.hasher.finalize().into())
    }
}

/// Where parsed rows go. In strict mode the first bad row ends loading with that row as the error.
struct RowSink {
    examples: Vec<LabelledText>,
    bad_rows: Vec<BadRow>,
    strict: bool,
}

impl RowSink {
    fn accept(&mut self, file: &Path, line: usize, row: Result<LabelledText, String>) -> anyhow::Result<()> {
        match row {
            Ok(example) => self.examples.push(example),
            Err(reason) => {
                let bad_row = BadRow { file: file.to_path_buf(), line, reason };
                if self.strict {
                    return Err(bad_row.into());
                }
                self.bad_rows.push(bad_row);
            }
        }
        Ok(())
    }
}

/// Reads labelled text from files or directories.
///
/// Directories are walked recursively in sorted order, reading only supported extensions
/// (.jsonl .ndjson .jsonlines .csv .tsv, each optionally .gz) and skipping hidden entries. A path
/// that does not exist, a directory without a supported file, or a file given explicitly with an
/// unsupported extension is an error naming it.
///
/// JSONL: one object per line, blank lines skipped. CSV/TSV: a header naming the text column is
/// required; empty label cells mean no label. Label values are trimmed and sentiment is
/// lower-cased. Rows that cannot be used become [`BadRow`]s, or with `strict` the first one is
/// returned as the error (a `BadRow`, so callers may downcast).
pub fn load_labelled(paths: &[PathBuf], columns: &ColumnNames, strict: bool) -> anyhow::Result<LoadedCorpus> {
    let files = resolve_files(paths)?;
    let mut sink = RowSink { examples: Vec::new(), bad_rows: Vec::new(), strict };
    let mut corpus_hasher = Sha256::new();
    for file in &files {
        let bad_rows_before = sink.bad_rows.len();
        let content_digest = load_file(file, columns, &mut sink)?;
        let file_name = file.file_name().map(|name| name.to_string_lossy()).unwrap_or_default();
        corpus_hasher.update((file_name.len() as u64).to_le_bytes());
        corpus_hasher.update(file_name.as_bytes());
        corpus_hasher.update(content_digest);
        let file_bad_rows = sink.bad_rows.len() - bad_rows_before;
        if file_bad_rows > 0 {
            tracing::warn!(file = %file.display(), bad_rows = file_bad_rows, "skipped bad rows");
        }
    }
    let digest = corpus_hasher.finalize().iter().map(|byte| format!("{byte:02x}")).collect();
    Ok(LoadedCorpus { examples: sink.examples, bad_rows: sink.bad_rows, files, digest })
}

/// Parses one file into the sink and returns the SHA-256 of its decompressed content.
fn load_file(path: &Path, columns: &ColumnNames, sink: &mut RowSink) -> anyhow::Result<[u8; 32]> {
    let kind = file_kind(path).with_context(|| format!("unsupported file type: {}", path.display()))?;
    let file = File::open(path).with_context(|| format!("failed to open {}", path.display()))?;
    let decompressed: Box<dyn Read> = if kind.gzip { Box::new(MultiGzDecoder::new(file)) } else { Box::new(file) };
    let reader = DigestingReader { inner: decompressed, hasher: Sha256::new() };
    let reader = match kind.format {
        FileFormat::JsonLines => load_json_lines(path, reader, columns, sink)?,
        FileFormat::Csv => load_delimited(path, reader, b',', columns, sink)?,
        FileFormat::Tsv => load_delimited(path, reader, b'\t', columns, sink)?,
    };
    reader.finish().with_context(|| format!("failed to read {}", path.display()))
}

/// Outcome of reading one line with [`read_bounded_line`].
enum BoundedLine {
    /// The line (without its terminator) is in the buffer.
    Complete,
    /// The line was over [`MAX_ROW_BYTES`]; it was skipped and the buffer is empty.
    TooLong { length: usize },
}

/// Like `read_until(b'\n')`, but never buffers more than `MAX_ROW_BYTES` (plus a `\r`): an
/// over-long line is consumed and reported instead. Returns `None` at end of input.
fn read_bounded_line(reader: &mut impl BufRead, line: &mut Vec<u8>) -> io::Result<Option<BoundedLine>> {
    // Room for a CRLF terminator's '\r', so the limit applies to the content alone.
    let buffer_limit = MAX_ROW_BYTES + 1;
    line.clear();
    let mut length = 0;
    let mut consumed_any = false;
    let mut ends_with_carriage_return = false;
    loop {
        let available = match reader.fill_buf() {
            Ok(available) => available,
            Err(error) if error.kind() == io::ErrorKind::Interrupted => continue,
            Err(error) => return Err(error),
        };
        if available.is_empty() {
            if !consumed_any {
                return Ok(None);
            }
            break;
        }
        consumed_any = true;
        let newline_position = available.iter().position(|&byte| byte == b'\n');
        let chunk = &available[..newline_position.unwrap_or(available.len())];
        length += chunk.len();
        if let Some(&last_byte) = chunk.last() {
            ends_with_carriage_return = last_byte == b'\r';
        }
        if length <= buffer_limit {
            line.extend_from_slice(chunk);
        }
        let consumed = newline_position.map_or(available.len(), |position| position + 1);
        reader.consume(consumed);
        if newline_position.is_some() {
            break;
        }
    }
    if ends_with_carriage_return {
        line.pop();
        length -= 1;
    }
    if length > MAX_ROW_BYTES {
        line.clear();
        return Ok(Some(BoundedLine::TooLong { length }));
    }
    Ok(Some(BoundedLine::Complete))
}

fn load_json_lines<R: Read>(
    path: &Path,
    reader: DigestingReader<R>,
    columns: &ColumnNames,
    sink: &mut RowSink,
) -> anyhow::Result<DigestingReader<R>> {
    let mut buffered = BufReader::new(reader);
    let mut line = Vec::new();
    let mut line_number = 0;
    while let Some(outcome) =
        read_bounded_line(&mut buffered, &mut line).with_context(|| format!("failed to read {}", path.display()))?
    {
        line_number += 1;
        let row = match outcome {
            BoundedLine::TooLong { length } => Err(too_long_reason("line", length)),
            BoundedLine::Complete => {
                let content =
                    if line_number == 1 { line.strip_prefix(UTF8_BYTE_ORDER_MARK).unwrap_or(&line) } else { &line };
                if content.iter().all(u8::is_ascii_whitespace) {
                    continue;
                }
                parse_json_row(content, columns)
            }
        };
        sink.accept(path, line_number, row)?;
    }
    Ok(buffered.into_inner())
}

fn too_long_reason(what: &str, length: usize) -> String {
    format!("{what} is {length} bytes, over the {MAX_ROW_BYTES}-byte limit")
}

fn parse_json_row(line: &[u8], columns: &ColumnNames) -> Result<LabelledText, String> {
    let line = std::str::from_utf8(line).map_err(|error| format!("invalid UTF-8 at byte {}", error.valid_up_to()))?;
    let value: serde_json::Value = serde_json::from_str(line).map_err(|error| {
        // Every row is one line, so serde_json's "at line 1" would only mislead next to file:line.
        let message = error.to_string();
        let position_suffix = format!(" at line {} column {}", error.line(), error.column());
        let bare_message = message.strip_suffix(&position_suffix).unwrap_or(&message);
        format!("invalid JSON: {bare_message} at column {}", error.column())
    })?;
    let serde_json::Value::Object(object) = value else {
        return Err(format!("expected a JSON object, found {}", json_type_name(&value)));
    };
    let text = match object.get(&columns.text) {
        None => return Err(format!("missing {:?} field", columns.text)),
        Some(serde_json::Value::String(text)) => text,
        Some(other) => return Err(format!("{:?} is {}, expected a string", columns.text, json_type_name(other))),
    };
    if text.trim().is_empty() {
        return Err(format!("empty {:?} field", columns.text));
    }
    let label = |task: Task| -> Result<Option<String>, String> {
        let field = columns.label(task);
        match object.get(field) {
            None | Some(serde_json::Value::Null) => Ok(None),
            Some(serde_json::Value::String(raw)) => Ok(normalise_label(task, raw)),
            Some(other) => Err(format!("{field:?} is {}, expected a string", json_type_name(other))),
        }
    };
    Ok(LabelledText { text: text.clone(), topic: label(Task::Topic)?, sentiment: label(Task::Sentiment)? })
}

fn json_type_name(value: &serde_json::Value) -> &'static str {
    match value {
        serde_json::Value::Null => "null",
        serde_json::Value::Bool(_) => "a boolean",
        serde_json::Value::Number(_) => "a number",
        serde_json::Value::String(_) => "a string",
        serde_json::Value::Array(_) => "an array",
        serde_json::Value::Object(_) => "an object",
    }
}

/// Trims, and lower-cases sentiment so "Negative" and "negative" are one class; topic names keep
/// their case because they are shown to people as written ("Fed | Central Banks").
fn normalise_label(task: Task, raw: &str) -> Option<String> {
    let trimmed = raw.trim();
    if trimmed.is_empty() {
        return None;
    }
    Some(match task {
        Task::Topic => trimmed.to_string(),
        Task::Sentiment => trimmed.to_lowercase(),
    })
}

/// CSV and TSV. Quotes are honoured in both: pandas writes TSV with CSV-style quoting, and a quote
/// in the middle of an unquoted field is kept literally, so raw TSV with quotes in text still reads.
fn load_delimited<R: Read>(
    path: &Path,
    reader: DigestingReader<R>,
    delimiter: u8,
    columns: &ColumnNames,
    sink: &mut RowSink,
) -> anyhow::Result<DigestingReader<R>> {
    // Flexible so a ragged row is reported as a bad row here, not a parse error that aborts the file.
    let mut csv_reader =
        csv::ReaderBuilder::new().delimiter(delimiter).has_headers(true).flexible(true).from_reader(reader);
    let header: Vec<String> = csv_reader
        .byte_headers()
        .with_context(|| format!("failed to read the header of {}", path.display()))?
        .iter()
        .enumerate()
        .map(|(index, name)| {
            let name = if index == 0 { name.strip_prefix(UTF8_BYTE_ORDER_MARK).unwrap_or(name) } else { name };
            String::from_utf8_lossy(name).trim().to_string()
        })
        .collect();
    let column_index = |name: &str| header.iter().position(|column| column == name);
    let Some(text_index) = column_index(&columns.text) else {
        bail!("{}: header has no {:?} column (found: {})", path.display(), columns.text, header.join(", "));
    };
    let label_indices =
        [(Task::Topic, column_index(&columns.topic)), (Task::Sentiment, column_index(&columns.sentiment))];
    let mut record = csv::ByteRecord::new();
    while csv_reader.read_byte_record(&mut record).with_context(|| format!("failed to read {}", path.display()))? {
        let line_number = record.position().map_or(0, |position| position.line() as usize);
        let row = parse_delimited_row(&record, &header, text_index, &label_indices, columns);
        sink.accept(path, line_number, row)?;
    }
    Ok(csv_reader.into_inner())
}

fn parse_delimited_row(
    record: &csv::ByteRecord,
    header: &[String],
    text_index: usize,
    label_indices: &[(Task, Option<usize>)],
    columns: &ColumnNames,
) -> Result<LabelledText, String> {
    let record_length = record.as_slice().len();
    if record_length > MAX_ROW_BYTES {
        return Err(too_long_reason("row", record_length));
    }
    if record.len() != header.len() {
        return Err(format!("row has {} fields, header has {}", record.len(), header.len()));
    }
    let field = |index: usize| -> Result<&str, String> {
        std::str::from_utf8(&record[index]).map_err(|_| format!("invalid UTF-8 in {:?} column", header[index]))
    };
    let text = field(text_index)?;
    if text.trim().is_empty() {
        return Err(format!("empty {:?} field", columns.text));
    }
    let mut example = LabelledText { text: text.to_string(), topic: None, sentiment: None };
    for &(task, index) in label_indices {
        let Some(index) = index else { continue };
        let label = normalise_label(task, field(index)?);
        match task {
            Task::Topic => example.topic = label,
            Task::Sentiment => example.sentiment = label,
        }
    }
    Ok(example)
}

/// Which part of the data a row belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Split {
    Train,
    Validation,
    Test,
}

impl Split {
    pub const ALL: [Split; 3] = [Split::Train, Split::Validation, Split::Test];

    pub fn as_str(self) -> &'static str {
        match self {
            Split::Train => "train",
            Split::Validation => "validation",
            Split::Test => "test",
        }
    }
}

/// Shares of the data held out for validation and test; the rest trains.
#[derive(Debug, Clone, Copy, Serialize, Deserialize)]
pub struct SplitFractions {
    pub validation: f64,
    pub test: f64,
}

impl Default for SplitFractions {
    /// 10% / 10%: the usual hold-out that still leaves ~950 sentiment and ~1,700 topic rows in each
    /// held-out part of the shipped data, enough for a stable macro-F1.
    fn default() -> Self {
        SplitFractions { validation: 0.1, test: 0.1 }
    }
}

#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum InvalidSplitFractions {
    #[error("{name} fraction {value} is outside [0, {MAX_SPLIT_FRACTION}]")]
    OutOfRange { name: &'static str, value: f64 },
    #[error("validation and test fractions add up to {sum}, leaving nothing to train on")]
    NothingLeftToTrain { sum: f64 },
}

impl SplitFractions {
    pub fn validate(&self) -> Result<(), InvalidSplitFractions> {
        for (name, value) in [("validation", self.validation), ("test", self.test)] {
            // Written so that NaN fails too.
            if !(0.0..=MAX_SPLIT_FRACTION).contains(&value) {
                return Err(InvalidSplitFractions::OutOfRange { name, value });
            }
        }
        let sum = self.validation + self.test;
        if sum >= 1.0 {
            return Err(InvalidSplitFractions::NothingLeftToTrain { sum });
        }
        Ok(())
    }
}

/// FNV-1a, 64-bit.
pub(crate) fn fnv1a_64(bytes: &[u8]) -> u64 {
    bytes.iter().fold(FNV_OFFSET_BASIS, |hash, &byte| (hash ^ u64::from(byte)).wrapping_mul(FNV_PRIME))
}

/// Deterministic and platform-independent: the FNV-1a 64 hash of `crate::text::dedup_key(text)`
/// picks one of 10,000 buckets; the lowest `test` share of buckets is Test, the next `validation`
/// share Validation, the rest Train. Each share is rounded to whole buckets. Near-duplicates share a
/// dedup key and hence a split. Fractions are expected to be valid (see [`SplitFractions::validate`]).
pub fn assign_split(text: &str, fractions: SplitFractions) -> Split {
    let bucket = fnv1a_64(dedup_key(text).as_bytes()) % SPLIT_BUCKETS;
    let test_buckets = (fractions.test * SPLIT_BUCKETS as f64).round() as u64;
    let validation_buckets = (fractions.validation * SPLIT_BUCKETS as f64).round() as u64;
    if bucket < test_buckets {
        Split::Test
    } else if bucket < test_buckets + validation_buckets {
        Split::Validation
    } else {
        Split::Train
    }
}

/// Rows written per split by [`write_split`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct SplitCounts {
    pub train: usize,
    pub validation: usize,
    pub test: usize,
}

/// Writes `train.jsonl`, `validation.jsonl` and `test.jsonl` into `directory` (created if needed),
/// one `{"text", "topic"?, "sentiment"?}` object per line, so outside baselines score on exactly
/// sentmon's split. Each file is written beside its final name and renamed into place, so a failed
/// run never leaves a truncated split that looks complete.
pub fn write_split(
    examples: &[LabelledText],
    fractions: SplitFractions,
    directory: &Path,
) -> anyhow::Result<SplitCounts> {
    fractions.validate().context("failed to write the split")?;
    fs::create_dir_all(directory).with_context(|| format!("failed to create directory {}", directory.display()))?;
    let assigned: Vec<Split> = examples.iter().map(|example| assign_split(&example.text, fractions)).collect();
    let mut counts = SplitCounts::default();
    for split in Split::ALL {
        let final_path = directory.join(format!("{}.jsonl", split.as_str()));
        let partial_path = directory.join(format!(".{}.jsonl.partial", split.as_str()));
        let write_rows = || -> anyhow::Result<usize> {
            let mut written = 0;
            let mut writer = BufWriter::new(File::create(&partial_path)?);
            for (example, _) in examples.iter().zip(&assigned).filter(|(_, assigned_split)| **assigned_split == split) {
                serde_json::to_writer(&mut writer, example)?;
                writer.write_all(b"\n")?;
                written += 1;
            }
            writer.into_inner().map_err(io::IntoInnerError::into_error)?.sync_all()?;
            fs::rename(&partial_path, &final_path)?;
            Ok(written)
        };
        let split_rows = write_rows().with_context(|| format!("failed to write {}", final_path.display()))?;
        match split {
            Split::Train => counts.train = split_rows,
            Split::Validation => counts.validation = split_rows,
            Split::Test => counts.test = split_rows,
        }
    }
    Ok(counts)
}

#[cfg(test)]
mod tests {
    use std::collections::{BTreeMap, HashSet};

    use flate2::Compression;
    use flate2::write::GzEncoder;

    use super::*;

    fn write_file(directory: &Path, name: &str, content: &[u8]) -> PathBuf {
        let path = directory.join(name);
        if let Some(parent) = path.parent() {
            fs::create_dir_all(parent).expect("create parent directory");
        }
        fs::write(&path, content).expect("write test file");
        path
    }

    fn gzip(content: &[u8]) -> Vec<u8> {
        let mut encoder = GzEncoder::new(Vec::new(), Compression::default());
        encoder.write_all(content).expect("compress");
        encoder.finish().expect("finish compression")
    }

    fn load(paths: &[PathBuf]) -> LoadedCorpus {
        load_labelled(paths, &ColumnNames::default(), false).expect("load labelled data")
    }

    fn example(text: &str, topic: Option<&str>, sentiment: Option<&str>) -> LabelledText {
        LabelledText {
            text: text.to_string(),
            topic: topic.map(str::to_string),
            sentiment: sentiment.map(str::to_string),
        }
    }

    fn fixture(name: &str) -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures").join(name)
    }

    fn bad_row_summary(corpus: &LoadedCorpus) -> Vec<(usize, String)> {
        corpus.bad_rows.iter().map(|bad_row| (bad_row.line, bad_row.reason.clone())).collect()
    }

    #[test]
    fn task_parses_prints_and_serialises_lower_case() {
        for task in [Task::Topic, Task::Sentiment] {
            assert_eq!(task.as_str().parse::<Task>(), Ok(task));
            assert_eq!(task.to_string(), task.as_str());
            assert_eq!(serde_json::to_string(&task).expect("serialise"), format!("\"{}\"", task.as_str()));
            assert_eq!(serde_json::from_str::<Task>(&format!("\"{task}\"")).expect("deserialise"), task);
        }
        assert_eq!(" Sentiment ".parse::<Task>(), Ok(Task::Sentiment));
        let error = "mood".parse::<Task>().expect_err("unknown task");
        assert_eq!(error.to_string(), "unknown task \"mood\": expected \"topic\" or \"sentiment\"");
    }

    #[test]
    fn json_lines_keep_unlabelled_rows_and_normalise_labels() {
        let directory = tempfile::tempdir().expect("temp dir");
        let content = "\u{feff}{\"text\": \"Fed holds rates\", \"topic\": \" Fed | Central Banks \"}\n\
                       \n   \n\
                       {\"text\": \"Shares slump\", \"sentiment\": \" Negative\", \"source\": \"wire\"}\r\n\
                       {\"text\": \"Markets open\", \"topic\": null, \"sentiment\": \"\"}\n\
                       {\"text\": \"Both labels\", \"topic\": \"Markets\", \"sentiment\": \"POSITIVE\"}";
        let path = write_file(directory.path(), "rows.jsonl", content.as_bytes());
        let corpus = load(std::slice::from_ref(&path));
        assert!(corpus.bad_rows.is_empty(), "{:?}", corpus.bad_rows);
        assert_eq!(
            corpus.examples,
            [
                example("Fed holds rates", Some("Fed | Central Banks"), None),
                example("Shares slump", None, Some("negative")),
                example("Markets open", None, None),
                example("Both labels", Some("Markets"), Some("positive")),
            ]
        );
        assert_eq!(corpus.examples[3].label(Task::Topic), Some("Markets"));
        assert_eq!(corpus.examples[3].label(Task::Sentiment), Some("positive"));
        assert_eq!(corpus.files, [path]);
        assert_eq!(corpus.digest.len(), 64);
    }

    #[test]
    fn gzip_json_lines_read_like_plain_ones() {
        let directory = tempfile::tempdir().expect("temp dir");
        let content = b"{\"text\": \"Oil jumps\", \"topic\": \"Energy | Oil\"}\n{\"text\": \"Bad\" \n";
        let plain = load(&[write_file(directory.path(), "plain/rows.ndjson", content)]);
        let compressed = load(&[write_file(directory.path(), "compressed/rows.ndjson.gz", &gzip(content))]);
        assert_eq!(compressed.examples, plain.examples);
        assert_eq!(bad_row_summary(&compressed), bad_row_summary(&plain));
        assert_eq!(compressed.bad_rows[0].line, 2);
        // The digest covers decompressed bytes and the file name, which differs here by ".gz".
        let renamed = load(&[write_file(directory.path(), "renamed/rows.ndjson", content)]);
        assert_eq!(renamed.digest, plain.digest);
        assert_ne!(compressed.digest, plain.digest);
    }

    #[test]
    fn csv_with_custom_column_names_and_multi_line_fields() {
        let directory = tempfile::tempdir().expect("temp dir");
        let content = "id,headline,category,tone\n\
                       1,\"Bank beats, raises outlook\",Earnings,Positive\n\
                       2,\"A headline\nover two lines\",,\n\
                       3,Gold slips,Gold | Metals | Materials,\n\
                       4,Ragged row,Markets\n\
                       5,,Markets,neutral\n";
        let path = write_file(directory.path(), "archive.csv", content.as_bytes());
        let columns =
            ColumnNames { text: "headline".to_string(), topic: "category".to_string(), sentiment: "tone".to_string() };
        let corpus = load_labelled(&[path], &columns, false).expect("load csv");
        assert_eq!(
            corpus.examples,
            [
                example("Bank beats, raises outlook", Some("Earnings"), Some("positive")),
                example("A headline\nover two lines", None, None),
                example("Gold slips", Some("Gold | Metals | Materials"), None),
            ]
        );
        // The multi-line record starts on line 3, so the ragged row is on physical line 6.
        assert_eq!(
            bad_row_summary(&corpus),
            [(6, "row has 3 fields, header has 4".to_string()), (7, "empty \"headline\" field".to_string())]
        );
        assert!(corpus.bad_rows[0].to_string().ends_with("archive.csv:6: row has 3 fields, header has 4"));
    }

    #[test]
    fn tsv_without_label_columns_reads_unlabelled_text() {
        let directory = tempfile::tempdir().expect("temp dir");
        let content = "\u{feff}text\tsource\nCEO says \"demand is strong\"\twire\nRates rise\tblog\n";
        let corpus = load(&[write_file(directory.path(), "stream.TSV", content.as_bytes())]);
        assert!(corpus.bad_rows.is_empty(), "{:?}", corpus.bad_rows);
        assert_eq!(
            corpus.examples,
            [example("CEO says \"demand is strong\"", None, None), example("Rates rise", None, None)]
        );
    }

    #[test]
    fn csv_gz_and_invalid_utf8_cell() {
        let directory = tempfile::tempdir().expect("temp dir");
        let content = b"text,sentiment\nGood row,neutral\nCaf\xe9 row,neutral\nBad label,\xff\n";
        let corpus = load(&[write_file(directory.path(), "rows.csv.gz", &gzip(content))]);
        assert_eq!(corpus.examples, [example("Good row", None, Some("neutral"))]);
        assert_eq!(
            bad_row_summary(&corpus),
            [
                (3, "invalid UTF-8 in \"text\" column".to_string()),
                (4, "invalid UTF-8 in \"sentiment\" column".to_string())
            ]
        );
    }

    #[test]
    fn csv_without_text_column_names_the_columns_found() {
        let directory = tempfile::tempdir().expect("temp dir");
        let path = write_file(directory.path(), "wrong.csv", b"headline, topic\nRates rise,Macro\n");
        let error = load_labelled(&[path], &ColumnNames::default(), false).expect_err("no text column");
        let message = format!("{error:#}");
        assert!(message.contains("wrong.csv: header has no \"text\" column (found: headline, topic)"), "{message}");
    }

    #[test]
    fn empty_csv_is_an_error_not_a_silent_empty_corpus() {
        let directory = tempfile::tempdir().expect("temp dir");
        let path = write_file(directory.path(), "empty.csv", b"");
        let message = format!("{:#}", load_labelled(&[path], &ColumnNames::default(), false).expect_err("no header"));
        assert!(message.contains("header has no \"text\" column (found: )"), "{message}");
    }

    #[test]
    fn directories_are_walked_recursively_in_sorted_order() {
        let directory = tempfile::tempdir().expect("temp dir");
        let root = directory.path();
        write_file(root, "b.jsonl", b"{\"text\": \"b\"}\n");
        write_file(root, "a/z.csv", b"text\na/z\n");
        write_file(root, "a/c.jsonl", b"{\"text\": \"a/c\"}\n");
        write_file(root, "readme.md", b"not data");
        write_file(root, "notes.json", b"{\"text\": \"plain JSON is not JSON Lines\"}");
        write_file(root, ".hidden.jsonl", b"{\"text\": \"hidden\"}\n");
        write_file(root, ".cache/d.jsonl", b"{\"text\": \"hidden directory\"}\n");
        let corpus = load(&[root.to_path_buf()]);
        let texts: Vec<&str> = corpus.examples.iter().map(|example| example.text.as_str()).collect();
        assert_eq!(texts, ["a/c", "a/z", "b"]);
        assert_eq!(corpus.files, [root.join("a/c.jsonl"), root.join("a/z.csv"), root.join("b.jsonl")]);
        // An explicit file is read in the order given, after the directory.
        let with_file = load(&[root.join("a"), root.join("b.jsonl")]);
        assert_eq!(with_file.files, [root.join("a/c.jsonl"), root.join("a/z.csv"), root.join("b.jsonl")]);
    }

    #[test]
    fn unusable_paths_are_errors_naming_them() {
        let directory = tempfile::tempdir().expect("temp dir");
        let missing = directory.path().join("missing.jsonl");
        let message =
            format!("{:#}", load_labelled(std::slice::from_ref(&missing), &ColumnNames::default(), false).unwrap_err());
        assert!(message.contains(&missing.display().to_string()), "{message}");

        let empty_directory = directory.path().join("empty");
        write_file(&empty_directory, "notes.txt", b"nothing to read");
        let message = format!(
            "{:#}",
            load_labelled(std::slice::from_ref(&empty_directory), &ColumnNames::default(), false).unwrap_err()
        );
        assert!(
            message.contains(&format!("no supported file in directory {}", empty_directory.display())),
            "{message}"
        );

        let spreadsheet = write_file(directory.path(), "labels.xlsx", b"binary");
        let message = format!(
            "{:#}",
            load_labelled(std::slice::from_ref(&spreadsheet), &ColumnNames::default(), false).unwrap_err()
        );
        assert!(message.contains(&format!("unsupported file type: {}", spreadsheet.display())), "{message}");
        assert!(message.contains(".jsonl, .ndjson, .jsonlines, .csv, .tsv"), "{message}");

        assert!(load_labelled(&[], &ColumnNames::default(), false).is_err());
    }

    #[test]
    fn every_bad_row_kind_is_reported_with_file_and_line() {
        let path = fixture("bad_rows.jsonl");
        let corpus = load(std::slice::from_ref(&path));
        assert_eq!(
            bad_row_summary(&corpus),
            [
                (2, "invalid JSON: EOF while parsing a value at column 68".to_string()),
                (4, "expected a JSON object, found an array".to_string()),
                (5, "missing \"text\" field".to_string()),
                (6, "\"text\" is a number, expected a string".to_string()),
                (7, "empty \"text\" field".to_string()),
                (8, "\"sentiment\" is a number, expected a string".to_string()),
                (11, "\"topic\" is an array, expected a string".to_string()),
                (12, "invalid UTF-8 at byte 13".to_string()),
            ]
        );
        assert_eq!(corpus.bad_rows[2].to_string(), format!("{}:5: missing \"text\" field", path.display()),);
        assert_eq!(
            corpus.examples,
            [
                example("Gold edges higher as the dollar weakens", Some("Gold | Metals | Materials"), None),
                example("Lender cuts outlook as bad loans pile up", None, Some("negative")),
                example("US markets close early for the holiday", None, None),
                example("Euro slips against the dollar after weak factory data", Some("Currencies"), Some("negative")),
            ]
        );
    }

    #[test]
    fn invalid_json_reason_gives_the_column() {
        let columns = ColumnNames::default();
        assert_eq!(parse_json_row(b"oops", &columns), Err("invalid JSON: expected value at column 1".to_string()));
        assert_eq!(
            parse_json_row(b"\"just a string\"", &columns),
            Err("expected a JSON object, found a string".to_string())
        );
        assert_eq!(
            parse_json_row(b"{\"text\": \"x\", \"topic\": true}", &columns),
            Err("\"topic\" is a boolean, expected a string".to_string())
        );
    }

    #[test]
    fn over_long_rows_are_bad_rows_and_reading_goes_on() {
        let directory = tempfile::tempdir().expect("temp dir");
        let long_text = "x".repeat(MAX_ROW_BYTES + 10);
        let json_lines = format!("{{\"text\": \"{long_text}\"}}\n{{\"text\": \"after\"}}\n");
        let corpus = load(&[write_file(directory.path(), "long.jsonl", json_lines.as_bytes())]);
        assert_eq!(corpus.examples, [example("after", None, None)]);
        assert_eq!(
            bad_row_summary(&corpus),
            [(1, format!("line is {} bytes, over the 1048576-byte limit", MAX_ROW_BYTES + 22))]
        );

        let csv = format!("text\n{long_text}\nafter\n");
        let corpus = load(&[write_file(directory.path(), "long.csv", csv.as_bytes())]);
        assert_eq!(corpus.examples, [example("after", None, None)]);
        assert_eq!(
            bad_row_summary(&corpus),
            [(2, format!("row is {} bytes, over the 1048576-byte limit", MAX_ROW_BYTES + 10))]
        );
    }

    #[test]
    fn a_line_of_exactly_the_limit_is_accepted() {
        let line = format!("{{\"text\": \"{}\"}}", "y".repeat(MAX_ROW_BYTES - 12));
        assert_eq!(line.len(), MAX_ROW_BYTES);
        let mut reader = io::Cursor::new(format!("{line}\r\n"));
        let mut buffer = Vec::new();
        assert!(matches!(read_bounded_line(&mut reader, &mut buffer), Ok(Some(BoundedLine::Complete))));
        assert_eq!(buffer.len(), MAX_ROW_BYTES);
        assert!(matches!(read_bounded_line(&mut reader, &mut buffer), Ok(None)));
        let mut reader = io::Cursor::new(format!("{line}y\r\nnext"));
        assert!(matches!(
            read_bounded_line(&mut reader, &mut buffer),
            Ok(Some(BoundedLine::TooLong { length })) if length == MAX_ROW_BYTES + 1
        ));
        assert!(buffer.is_empty());
        assert!(matches!(read_bounded_line(&mut reader, &mut buffer), Ok(Some(BoundedLine::Complete))));
        assert_eq!(buffer, b"next");
    }

    #[test]
    fn strict_mode_returns_the_first_bad_row() {
        let path = fixture("bad_rows.jsonl");
        let error = load_labelled(std::slice::from_ref(&path), &ColumnNames::default(), true).expect_err("strict");
        let bad_row = error.downcast_ref::<BadRow>().expect("the error is the bad row");
        assert_eq!((bad_row.file.as_path(), bad_row.line), (path.as_path(), 2));
        assert_eq!(
            error.to_string(),
            format!("{}:2: invalid JSON: EOF while parsing a value at column 68", path.display())
        );
        // Clean data loads the same in strict mode.
        let strict = load_labelled(&[fixture("headlines.topic.jsonl")], &ColumnNames::default(), true).expect("clean");
        assert_eq!(strict.examples.len(), 40);
    }

    #[test]
    fn digest_is_stable_and_follows_content() {
        let directory = tempfile::tempdir().expect("temp dir");
        let path = write_file(directory.path(), "data.jsonl", b"{\"text\": \"one\"}\n");
        let first = load(std::slice::from_ref(&path)).digest;
        assert_eq!(load(std::slice::from_ref(&path)).digest, first);
        write_file(directory.path(), "data.jsonl", b"{\"text\": \"two\"}\n");
        let changed = load(std::slice::from_ref(&path)).digest;
        assert_ne!(changed, first);
        // Bytes that parse to nothing (a blank line) still change what was trained on.
        write_file(directory.path(), "data.jsonl", b"{\"text\": \"two\"}\n\n");
        assert_ne!(load(std::slice::from_ref(&path)).digest, changed);
        // File order matters, and moving one name's bytes to the other is not a collision.
        let other = write_file(directory.path(), "other.jsonl", b"{\"text\": \"three\"}\n");
        assert_ne!(load(&[path.clone(), other.clone()]).digest, load(&[other, path]).digest);
        let digest = load(&[fixture("headlines.sentiment.jsonl")]).digest;
        assert!(digest.chars().all(|character| character.is_ascii_hexdigit() && !character.is_ascii_uppercase()));
    }

    #[test]
    fn fixtures_load_cleanly_with_balanced_labels() {
        let sentiment = load(&[fixture("headlines.sentiment.jsonl")]);
        assert!(sentiment.bad_rows.is_empty());
        let mut sentiment_counts = BTreeMap::new();
        for example in &sentiment.examples {
            *sentiment_counts.entry(example.sentiment.clone().expect("sentiment label")).or_insert(0) += 1;
        }
        assert_eq!(
            sentiment_counts,
            BTreeMap::from([("negative".to_string(), 14), ("neutral".to_string(), 14), ("positive".to_string(), 14)])
        );

        let topic = load(&[fixture("headlines.topic.jsonl")]);
        assert!(topic.bad_rows.is_empty());
        let topics: HashSet<&str> = topic.examples.iter().filter_map(|example| example.label(Task::Topic)).collect();
        assert_eq!(topic.examples.len(), 40);
        assert!(topics.len() >= 5, "{topics:?}");
    }

    #[test]
    fn fnv1a_matches_the_reference_vectors() {
        // Test vectors from the FNV reference implementation (test_fnv.c).
        assert_eq!(fnv1a_64(b""), 0xcbf2_9ce4_8422_2325);
        assert_eq!(fnv1a_64(b"a"), 0xaf63_dc4c_8601_ec8c);
        assert_eq!(fnv1a_64(b"foobar"), 0x8594_4171_f739_67e8);
    }

    #[test]
    fn split_is_deterministic_and_keeps_near_duplicates_together() {
        let fractions = SplitFractions::default();
        for index in 0..500 {
            let headline = format!("Company {index} beats estimates, shares rise");
            let split = assign_split(&headline, fractions);
            assert_eq!(assign_split(&headline, fractions), split);
            let reposted = format!("{} https://t.co/link{index}", headline.to_uppercase());
            assert_eq!(assign_split(&reposted, fractions), split, "{reposted}");
            let repunctuated = format!("  company {index} -- beats estimates; shares rise!!");
            assert_eq!(assign_split(&repunctuated, fractions), split, "{repunctuated}");
        }
    }

    #[test]
    fn split_respects_fractions_on_synthetic_texts() {
        let fractions = SplitFractions { validation: 0.15, test: 0.05 };
        let mut counts = SplitCounts::default();
        for index in 0..10_000 {
            match assign_split(&format!("synthetic headline number {index} about markets"), fractions) {
                Split::Train => counts.train += 1,
                Split::Validation => counts.validation += 1,
                Split::Test => counts.test += 1,
            }
        }
        // Binomial standard deviations are about 36 (validation) and 22 (test); allow ~4 of them.
        assert!((1_350..=1_650).contains(&counts.validation), "{counts:?}");
        assert!((410..=590).contains(&counts.test), "{counts:?}");
        let nothing_held_out = SplitFractions { validation: 0.0, test: 0.0 };
        assert!((0..1_000).all(|index| assign_split(&format!("row {index}"), nothing_held_out) == Split::Train));
    }

    #[test]
    fn split_fractions_are_validated() {
        assert_eq!(SplitFractions::default().validate(), Ok(()));
        assert_eq!(SplitFractions { validation: 0.5, test: 0.0 }.validate(), Ok(()));
        let too_big = SplitFractions { validation: 0.6, test: 0.1 }.validate().unwrap_err();
        assert_eq!(too_big.to_string(), "validation fraction 0.6 is outside [0, 0.5]");
        assert!(SplitFractions { validation: 0.1, test: -0.1 }.validate().is_err());
        assert!(SplitFractions { validation: f64::NAN, test: 0.1 }.validate().is_err());
        assert!(matches!(
            SplitFractions { validation: 0.5, test: 0.5 }.validate(),
            Err(InvalidSplitFractions::NothingLeftToTrain { .. })
        ));
    }

    #[test]
    fn write_split_writes_loadable_files_that_match_assign_split() {
        let directory = tempfile::tempdir().expect("temp dir");
        let mut examples = load(&[fixture("headlines.sentiment.jsonl"), fixture("headlines.topic.jsonl")]).examples;
        examples.push(example("Unlabelled stream text", None, None));
        let fractions = SplitFractions { validation: 0.2, test: 0.2 };
        let output = directory.path().join("nested/split");
        let counts = write_split(&examples, fractions, &output).expect("write split");
        assert_eq!(counts.train + counts.validation + counts.test, examples.len());
        assert!(counts.validation > 0 && counts.test > 0, "{counts:?}");
        for split in Split::ALL {
            let written = load(&[output.join(format!("{}.jsonl", split.as_str()))]);
            let expected: Vec<LabelledText> =
                examples.iter().filter(|example| assign_split(&example.text, fractions) == split).cloned().collect();
            assert_eq!(written.examples, expected, "{split:?}");
        }
        let first_line = fs::read_to_string(output.join("train.jsonl")).expect("read train");
        let first_line = first_line.lines().next().expect("a train row");
        let keys: Vec<String> = serde_json::from_str::<serde_json::Map<String, serde_json::Value>>(first_line)
            .expect("row object")
            .keys()
            .cloned()
            .collect();
        assert!(keys == ["sentiment", "text"] || keys == ["text", "topic"], "{first_line}");
        assert_eq!(fs::read_dir(&output).expect("list split").count(), 3, "no partial files left behind");
        assert_eq!(serde_json::to_string(&counts).expect("serialise counts").matches(':').count(), 3);
        assert!(write_split(&examples, SplitFractions { validation: 0.9, test: 0.0 }, &output).is_err());
    }

    #[test]
    fn shared_english_data_loads_with_the_documented_counts() {
        let shared_data = Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/data");
        if !shared_data.exists() {
            println!("skipping: ../shared/data not found (tests that need the shared data run in CI)");
            return;
        }
        let corpus = load_labelled(
            &[shared_data.join("en/sentiment.train.jsonl"), shared_data.join("en/topic.train.jsonl")],
            &ColumnNames::default(),
            true,
        )
        .expect("load the shared English data");
        assert!(corpus.bad_rows.is_empty());
        let mut sentiment_counts = BTreeMap::new();
        let mut topic_counts = BTreeMap::new();
        for example in &corpus.examples {
            if let Some(sentiment) = example.label(Task::Sentiment) {
                *sentiment_counts.entry(sentiment).or_insert(0) += 1;
            }
            if let Some(topic) = example.label(Task::Topic) {
                *topic_counts.entry(topic).or_insert(0) += 1;
            }
        }
        // Figures from ../shared/data/README.md.
        assert_eq!(sentiment_counts.values().sum::<usize>(), 9_543);
        assert_eq!(sentiment_counts, BTreeMap::from([("negative", 1_442), ("neutral", 6_178), ("positive", 1_923)]));
        assert_eq!(topic_counts.values().sum::<usize>(), 16_990);
        assert_eq!(topic_counts.len(), 20);
        assert_eq!(
            (topic_counts["IPO"], topic_counts["Gold | Metals | Materials"], topic_counts["Currencies"]),
            (44, 69, 166)
        );
        assert_eq!(corpus.examples.len(), 9_543 + 16_990, "no row carries both labels");
    }
}
