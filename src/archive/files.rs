//! The archive on disk: partition and file names, the step that makes a written file visible,
//! recovery of files a crash left half-written, and retention.
//!
//! Layout: `DIR/YYYY-MM-DD/sentmon-<start>-<seq>.jsonl.gz`, where the date is the UTC date on
//! which the records were archived, `<start>` the writer's start time (`20261126T174720Z`) and
//! `<seq>` a counter. A file is written as `.<name>.tmp` beside its final name and renamed only
//! once its gzip stream is finished and synced, so a visible `.jsonl.gz` is always complete. The
//! leading dot and the `.tmp` suffix keep a half-written file out of `sentmon train --data DIR`
//! (which skips hidden files and reads only known extensions) and out of `archive export`.

use std::fs::{self, File};
use std::io::{self, BufRead, BufReader, BufWriter, Write};
use std::path::{Path, PathBuf};

use chrono::{DateTime, NaiveDate, TimeDelta, Utc};
use flate2::Compression;
use flate2::read::MultiGzDecoder;
use flate2::write::GzEncoder;

/// Every archive file's name ends so: what `sentmon train` and `archive export` look for.
pub const ARCHIVE_FILE_SUFFIX: &str = ".jsonl.gz";
const FILE_PREFIX: &str = "sentmon-";
const TEMP_SUFFIX: &str = ".tmp";
/// A recovered copy being written; if the process dies during recovery, the original leftover is
/// still there, so this copy is simply deleted at the next start and recovery runs again.
const RECOVERING_SUFFIX: &str = ".recovering.tmp";
const PARTITION_DATE_FORMAT: &str = "%Y-%m-%d";
const START_TIME_FORMAT: &str = "%Y%m%dT%H%M%SZ";

/// `DIR/2026-11-26`.
pub fn partition_path(directory: &Path, date: NaiveDate) -> PathBuf {
    directory.join(date.format(PARTITION_DATE_FORMAT).to_string())
}

/// `sentmon-20261126T174720Z-000001.jsonl.gz`. Six digits keep names in order in a listing up to
/// a million files per writer start, more than any retention period holds.
pub fn archive_file_name(started: DateTime<Utc>, sequence: u64) -> String {
    format!("{FILE_PREFIX}{}-{sequence:06}{ARCHIVE_FILE_SUFFIX}", started.format(START_TIME_FORMAT))
}

/// The name a file has while it is written: hidden and not `.jsonl.gz`.
pub fn temp_file_name(final_name: &str) -> String {
    format!(".{final_name}{TEMP_SUFFIX}")
}

fn recovering_file_name(final_name: &str) -> String {
    format!(".{final_name}{RECOVERING_SUFFIX}")
}

/// Whether a file name is a completed archive file (what readers of the archive take).
pub fn is_archive_file_name(name: &str) -> bool {
    !name.starts_with('.') && name.ends_with(ARCHIVE_FILE_SUFFIX)
}

/// Makes a finished file visible: syncs its bytes, renames it to its final name and syncs the
/// directory so the rename itself survives a power loss.
pub fn publish(file: File, temp_path: &Path, final_path: &Path) -> io::Result<()> {
    file.sync_all()?;
    drop(file);
    fs::rename(temp_path, final_path)?;
    sync_directory(final_path.parent().unwrap_or(Path::new(".")))
}

/// Makes entries created, renamed or removed in `directory` durable.
pub fn sync_directory(directory: &Path) -> io::Result<()> {
    File::open(directory)?.sync_all()
}

/// What start-up did with one file a crash left behind.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Leftover {
    /// Its readable prefix became the complete file `path`, holding `lines` lines.
    Recovered { leftover: PathBuf, path: PathBuf, lines: u64 },
    /// Nothing in it could be read (the process died before its first flush), so it was removed.
    RemovedEmpty { leftover: PathBuf },
    /// An interrupted recovery's partial copy, or a leftover whose recovered file already exists
    /// (the process died after publishing the copy): removed, nothing is lost.
    RemovedDuplicate { leftover: PathBuf },
}

/// Finds every temporary file in the partitions under `directory` and turns each into a complete
/// file holding its readable prefix, or removes it. Run before a writer starts, so nothing in
/// the archive is left half-written by an earlier process.
///
/// One writer per directory: a second live daemon's file in progress would be taken for a
/// leftover. Replicas therefore each need their own archive directory.
pub fn recover_leftovers(directory: &Path) -> io::Result<Vec<Leftover>> {
    let mut outcomes = Vec::new();
    for partition in partition_directories(directory)? {
        // (final name, is an interrupted recovery's copy) of every temporary file of ours.
        let mut leftovers = Vec::new();
        for entry in fs::read_dir(&partition)? {
            let name = entry?.file_name().to_string_lossy().into_owned();
            let Some(hidden_name) = name.strip_prefix('.') else { continue };
            if let Some(final_name) = hidden_name.strip_suffix(RECOVERING_SUFFIX) {
                leftovers.push((final_name.to_owned(), true));
            } else if let Some(final_name) = hidden_name.strip_suffix(TEMP_SUFFIX) {
                leftovers.push((final_name.to_owned(), false));
            }
        }
        // Only files this module names; anything else hidden there is not ours to touch.
        leftovers.retain(|(final_name, _)| final_name.starts_with(FILE_PREFIX) && is_archive_file_name(final_name));
        // Interrupted recoveries first, so their names are free when their originals are redone.
        leftovers.sort_by(|(name, recovering), (other_name, other_recovering)| {
            other_recovering.cmp(recovering).then_with(|| name.cmp(other_name))
        });
        let outcomes_before = outcomes.len();
        for (final_name, recovering) in leftovers {
            let outcome = if recovering {
                let leftover = partition.join(recovering_file_name(&final_name));
                fs::remove_file(&leftover)?;
                Leftover::RemovedDuplicate { leftover }
            } else {
                recover_one(&partition, &final_name)?
            };
            outcomes.push(outcome);
        }
        if outcomes.len() > outcomes_before {
            sync_directory(&partition)?;
        }
    }
    Ok(outcomes)
}

fn recover_one(partition: &Path, final_name: &str) -> io::Result<Leftover> {
    let leftover = partition.join(temp_file_name(final_name));
    let final_path = partition.join(final_name);
    if final_path.exists() {
        fs::remove_file(&leftover)?;
        return Ok(Leftover::RemovedDuplicate { leftover });
    }
    let recovering_path = partition.join(recovering_file_name(final_name));
    let mut encoder = GzEncoder::new(BufWriter::new(File::create(&recovering_path)?), Compression::default());
    let lines = copy_readable_lines(&leftover, &mut encoder)?;
    let file = encoder.finish()?.into_inner().map_err(io::IntoInnerError::into_error)?;
    if lines == 0 {
        drop(file);
        fs::remove_file(&recovering_path)?;
        fs::remove_file(&leftover)?;
        return Ok(Leftover::RemovedEmpty { leftover });
    }
    publish(file, &recovering_path, &final_path)?;
    fs::remove_file(&leftover)?;
    Ok(Leftover::Recovered { leftover, path: final_path, lines })
}

/// Copies the complete, valid JSON lines at the start of a possibly truncated gzip file. A stream
/// cut by a crash decodes up to the last flush and then fails; whatever follows the last newline,
/// or a line that is not JSON (garbage after a power loss), ends the copy.
fn copy_readable_lines(gzip_path: &Path, output: &mut impl Write) -> io::Result<u64> {
    let mut reader = BufReader::new(MultiGzDecoder::new(File::open(gzip_path)?));
    let mut line = Vec::new();
    let mut lines = 0;
    loop {
        line.clear();
        match reader.read_until(b'\n', &mut line) {
            Ok(_) if line.last() == Some(&b'\n') => {}
            // End of the readable data: a cut line, the end of the file, or the cut itself.
            Ok(_) | Err(_) => return Ok(lines),
        }
        if serde_json::from_slice::<serde::de::IgnoredAny>(&line).is_err() {
            return Ok(lines);
        }
        output.write_all(&line)?;
        lines += 1;
    }
}

/// Removes the partitions older than the last `retention_days` dates (today included); 0 keeps
/// everything. Only directories named like a partition are touched. Returns what was removed.
pub fn remove_expired_partitions(directory: &Path, today: NaiveDate, retention_days: u32) -> io::Result<Vec<PathBuf>> {
    if retention_days == 0 {
        return Ok(Vec::new());
    }
    let oldest_kept = today - TimeDelta::days(i64::from(retention_days) - 1);
    let mut removed = Vec::new();
    for partition in partition_directories(directory)? {
        let Some(date) = partition_date(&partition) else { continue };
        if date < oldest_kept {
            fs::remove_dir_all(&partition)?;
            removed.push(partition);
        }
    }
    if !removed.is_empty() {
        sync_directory(directory)?;
    }
    Ok(removed)
}

fn partition_date(partition: &Path) -> Option<NaiveDate> {
    let name = partition.file_name()?.to_str()?;
    NaiveDate::parse_from_str(name, PARTITION_DATE_FORMAT).ok()
}

/// The date-named directories directly under `directory`, sorted.
fn partition_directories(directory: &Path) -> io::Result<Vec<PathBuf>> {
    let mut partitions = Vec::new();
    for entry in fs::read_dir(directory)? {
        let entry = entry?;
        let path = entry.path();
        if entry.file_type()?.is_dir() && partition_date(&path).is_some() {
            partitions.push(path);
        }
    }
    partitions.sort();
    Ok(partitions)
}

#[cfg(test)]
pub(crate) mod tests {
    use std::io::Read;

    use super::*;

    /// Decodes a whole gzip file, failing on a truncated or corrupt stream.
    pub(crate) fn decode_complete(path: &Path) -> io::Result<String> {
        let mut text = String::new();
        MultiGzDecoder::new(File::open(path)?).read_to_string(&mut text)?;
        Ok(text)
    }

    /// `lines` gzipped with a flush after each, as the writer flushes periodically: every flush
    /// makes what came before it readable from a file cut anywhere later.
    pub(crate) fn flushed_gzip(lines: &[String]) -> Vec<u8> {
        let mut encoder = GzEncoder::new(Vec::new(), Compression::default());
        for line in lines {
            writeln!(encoder, "{line}").unwrap();
            encoder.flush().unwrap();
        }
        encoder.finish().unwrap()
    }

    /// Writes the first `keep_bytes` of `bytes`, as a crash leaves a file.
    fn write_cut(path: &Path, bytes: &[u8], keep_bytes: usize) {
        fs::write(path, &bytes[..keep_bytes.min(bytes.len())]).unwrap();
    }

    fn json_lines(count: usize) -> Vec<String> {
        (0..count).map(|index| format!("{{\"text\":\"line {index}\"}}")).collect()
    }

    #[test]
    fn names_sort_by_start_and_sequence_and_temp_names_are_hidden() {
        let started = DateTime::parse_from_rfc3339("2026-11-26T17:47:20.345Z").unwrap().with_timezone(&Utc);
        let name = archive_file_name(started, 7);
        assert_eq!(name, "sentmon-20261126T174720Z-000007.jsonl.gz");
        assert!(archive_file_name(started, 8) > name && archive_file_name(started, 10) > archive_file_name(started, 9));
        assert_eq!(temp_file_name(&name), ".sentmon-20261126T174720Z-000007.jsonl.gz.tmp");
        assert!(is_archive_file_name(&name));
        assert!(!is_archive_file_name(&temp_file_name(&name)));
        assert!(!is_archive_file_name(&recovering_file_name(&name)));
        let date = NaiveDate::from_ymd_opt(2026, 1, 5).unwrap();
        assert_eq!(partition_path(Path::new("/a"), date), Path::new("/a/2026-01-05"));
    }

    #[test]
    fn a_truncated_leftover_is_recovered_up_to_its_last_complete_line() {
        let directory = tempfile::tempdir().unwrap();
        let partition = directory.path().join("2026-11-26");
        fs::create_dir(&partition).unwrap();
        let name = "sentmon-20261126T174720Z-000003.jsonl.gz";
        let leftover = partition.join(temp_file_name(name));
        let lines = json_lines(50);
        let compressed = flushed_gzip(&lines);
        // Cut in the middle of the compressed data: some lines readable, the stream unfinished.
        write_cut(&leftover, &compressed, compressed.len() * 2 / 3);
        assert!(decode_complete(&leftover).is_err(), "a cut stream must not decode as complete");

        let outcomes = recover_leftovers(directory.path()).unwrap();
        let [Leftover::Recovered { path, lines: recovered_lines, .. }] = outcomes.as_slice() else {
            panic!("{outcomes:?}")
        };
        assert_eq!(path, &partition.join(name));
        assert!(*recovered_lines > 10 && *recovered_lines < 50, "{recovered_lines}");
        let text = decode_complete(path).unwrap();
        let expected: Vec<&str> = lines.iter().take(*recovered_lines as usize).map(String::as_str).collect();
        assert_eq!(text.lines().collect::<Vec<_>>(), expected);
        assert!(!leftover.exists());
        let names: Vec<String> =
            fs::read_dir(&partition).unwrap().map(|entry| entry.unwrap().file_name().into_string().unwrap()).collect();
        assert_eq!(names, [name]);
    }

    #[test]
    fn unreadable_leftovers_and_interrupted_recoveries_are_removed() {
        let directory = tempfile::tempdir().unwrap();
        let partition = directory.path().join("2026-11-26");
        fs::create_dir(&partition).unwrap();
        // Died before the first flush: a gzip header at most.
        let empty = partition.join(temp_file_name("sentmon-20261126T174720Z-000001.jsonl.gz"));
        write_cut(&empty, &flushed_gzip(&json_lines(3)), 10);
        // Died while recovering: the partial copy goes, the original is recovered again.
        let original_name = "sentmon-20261126T174720Z-000002.jsonl.gz";
        let original = partition.join(temp_file_name(original_name));
        fs::write(&original, flushed_gzip(&json_lines(5))).unwrap();
        let partial_copy = partition.join(recovering_file_name(original_name));
        write_cut(&partial_copy, &flushed_gzip(&json_lines(2)), 30);
        // Died after publishing a recovered copy but before removing the original.
        let done_name = "sentmon-20261126T174720Z-000004.jsonl.gz";
        fs::write(partition.join(done_name), flushed_gzip(&json_lines(4))).unwrap();
        let done_leftover = partition.join(temp_file_name(done_name));
        write_cut(&done_leftover, &flushed_gzip(&json_lines(4)), 40);
        // Not a name this module gives: left alone.
        fs::write(partition.join(".notes.tmp"), "someone else's").unwrap();
        fs::write(partition.join(".tmp"), "").unwrap();

        let outcomes = recover_leftovers(directory.path()).unwrap();
        assert_eq!(
            outcomes,
            [
                Leftover::RemovedDuplicate { leftover: partial_copy },
                Leftover::RemovedEmpty { leftover: empty },
                Leftover::Recovered { leftover: original, path: partition.join(original_name), lines: 5 },
                Leftover::RemovedDuplicate { leftover: done_leftover },
            ]
        );
        let mut names: Vec<String> =
            fs::read_dir(&partition).unwrap().map(|entry| entry.unwrap().file_name().into_string().unwrap()).collect();
        names.sort();
        assert_eq!(names, [".notes.tmp", ".tmp", original_name, done_name]);
        assert_eq!(decode_complete(&partition.join(done_name)).unwrap().lines().count(), 4, "left untouched");
    }

    #[test]
    fn retention_keeps_the_last_days_and_only_touches_partitions() {
        let directory = tempfile::tempdir().unwrap();
        for name in ["2026-11-20", "2026-11-23", "2026-11-24", "2026-11-26", "notes", "2026-13-01"] {
            fs::create_dir(directory.path().join(name)).unwrap();
        }
        fs::write(directory.path().join("2026-11-01"), "a file, not a partition").unwrap();
        let today = NaiveDate::from_ymd_opt(2026, 11, 26).unwrap();
        assert!(remove_expired_partitions(directory.path(), today, 0).unwrap().is_empty(), "0 keeps everything");
        let removed = remove_expired_partitions(directory.path(), today, 3).unwrap();
        assert_eq!(removed, [directory.path().join("2026-11-20"), directory.path().join("2026-11-23")]);
        let mut names: Vec<String> = fs::read_dir(directory.path())
            .unwrap()
            .map(|entry| entry.unwrap().file_name().into_string().unwrap())
            .collect();
        names.sort();
        assert_eq!(names, ["2026-11-01", "2026-11-24", "2026-11-26", "2026-13-01", "notes"]);
        let removed = remove_expired_partitions(directory.path(), today, 1).unwrap();
        assert_eq!(removed, [directory.path().join("2026-11-24")], "1 keeps today only");
    }
}
