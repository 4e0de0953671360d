//! The rotating archive writer: appends records to the current gzip file and closes it on size,
//! age or a change of date. Synchronous and single-threaded (it runs on the archive thread);
//! the clock is passed in, so rotation is tested without waiting.

use std::fs::{self, File};
use std::io::{self, BufWriter, Write};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, NaiveDate, Utc};
use flate2::Compression;
use flate2::write::GzEncoder;

use super::files::{self, Leftover};
use super::record::ArchiveRecord;
use crate::config::ArchiveConfig;
use crate::metrics::Metrics;

/// How often the open file's compressed data is pushed to the operating system. A crash (even
/// kill -9) then loses at most this much of the archive: the rest is recovered from the
/// temporary file at the next start. Each flush costs a little compression (it ends a deflate
/// block), which at once a second is negligible.
pub const FLUSH_INTERVAL: Duration = Duration::from_secs(1);

/// Where and how files are written: `[archive]` with the directory required.
#[derive(Debug, Clone)]
pub struct WriterSettings {
    pub directory: PathBuf,
    pub rotate_max_bytes: u64,
    pub rotate_max_age: Duration,
    pub retention_days: u32,
}

impl WriterSettings {
    /// `None` when archiving is off (no directory configured).
    pub fn from_config(config: &ArchiveConfig) -> Option<WriterSettings> {
        Some(WriterSettings {
            directory: config.directory.clone()?,
            rotate_max_bytes: config.rotate_max_bytes,
            rotate_max_age: Duration::from_secs(config.rotate_max_age_secs),
            retention_days: config.retention_days,
        })
    }
}

/// A file being written under its temporary name.
struct OpenFile {
    encoder: GzEncoder<BufWriter<File>>,
    temp_path: PathBuf,
    final_path: PathBuf,
    date: NaiveDate,
    opened_at: DateTime<Utc>,
    last_flush: DateTime<Utc>,
    uncompressed_bytes: u64,
    records: u64,
}

pub struct ArchiveWriter {
    settings: WriterSettings,
    metrics: Arc<Metrics>,
    /// Part of every file name, so a restarted writer never reuses an earlier one's names.
    started: DateTime<Utc>,
    next_sequence: u64,
    current: Option<OpenFile>,
    /// The date retention last ran for: it runs again when the date changes.
    retention_date: NaiveDate,
    line: Vec<u8>,
}

impl ArchiveWriter {
    /// Creates the directory, turns crash leftovers into complete files (or removes them) and
    /// applies retention. Leftovers are logged one by one: they are rare and an operator wants to
    /// know what a crash cost.
    pub fn open(settings: WriterSettings, metrics: Arc<Metrics>, now: DateTime<Utc>) -> io::Result<ArchiveWriter> {
        fs::create_dir_all(&settings.directory)?;
        for leftover in files::recover_leftovers(&settings.directory)? {
            match leftover {
                Leftover::Recovered { leftover, path, lines } => {
                    metrics.archive.files.inc();
                    tracing::warn!(leftover = %leftover.display(), file = %path.display(), lines, "recovered the readable part of an archive file left by a crash");
                }
                Leftover::RemovedEmpty { leftover } => {
                    tracing::warn!(leftover = %leftover.display(), "removed an archive file left by a crash: nothing in it was readable");
                }
                Leftover::RemovedDuplicate { leftover } => {
                    tracing::info!(leftover = %leftover.display(), "removed an interrupted recovery's leftover: its data is in a complete file");
                }
            }
        }
        let today = now.date_naive();
        remove_expired(&settings, today)?;
        Ok(ArchiveWriter {
            settings,
            metrics,
            started: now,
            next_sequence: 1,
            current: None,
            retention_date: today,
            line: Vec::new(),
        })
    }

    /// Appends one record, first closing the current file if it is due (size, age, date) and
    /// opening a new one if none is open. On an error the current file is abandoned: its
    /// temporary file stays for recovery at the next start, and the next record opens a new one.
    pub fn write(&mut self, record: &ArchiveRecord, now: DateTime<Utc>) -> io::Result<()> {
        self.rotate_if_due(now)?;
        self.line.clear();
        serde_json::to_writer(&mut self.line, record).map_err(io::Error::other)?;
        self.line.push(b'\n');
        let file = match self.current.take() {
            Some(file) => file,
            None => self.open_file(now)?,
        };
        let file = self.current.insert(file);
        let written = file.encoder.write_all(&self.line);
        if written.is_err() {
            self.current = None;
            return written;
        }
        file.uncompressed_bytes += self.line.len() as u64;
        file.records += 1;
        self.metrics.archive.records.inc();
        self.flush_if_due(now)
    }

    /// Periodic upkeep while no record arrives: flushes, and closes a file that is due, so a quiet
    /// stream's last records still become a visible file within `rotate_max_age`.
    pub fn tick(&mut self, now: DateTime<Utc>) -> io::Result<()> {
        self.rotate_if_due(now)?;
        self.flush_if_due(now)
    }

    /// Closes the current file, making it visible (clean shutdown).
    pub fn close(&mut self) -> io::Result<()> {
        self.finish_current()
    }

    fn rotate_if_due(&mut self, now: DateTime<Utc>) -> io::Result<()> {
        let today = now.date_naive();
        if let Some(file) = &self.current {
            let age = (now - file.opened_at).to_std().unwrap_or_default();
            let due = file.date != today
                || age >= self.settings.rotate_max_age
                || file.uncompressed_bytes >= self.settings.rotate_max_bytes;
            if due {
                self.finish_current()?;
            }
        }
        if today != self.retention_date {
            remove_expired(&self.settings, today)?;
            self.retention_date = today;
        }
        Ok(())
    }

    fn flush_if_due(&mut self, now: DateTime<Utc>) -> io::Result<()> {
        let Some(file) = &mut self.current else { return Ok(()) };
        if (now - file.last_flush).to_std().unwrap_or_default() < FLUSH_INTERVAL {
            return Ok(());
        }
        let flushed = file.encoder.flush();
        file.last_flush = now;
        if flushed.is_err() {
            self.current = None;
        }
        flushed
    }

    fn finish_current(&mut self) -> io::Result<()> {
        let Some(file) = self.current.take() else { return Ok(()) };
        let buffered = file.encoder.finish()?;
        let finished = buffered.into_inner().map_err(io::IntoInnerError::into_error)?;
        files::publish(finished, &file.temp_path, &file.final_path)?;
        self.metrics.archive.files.inc();
        tracing::debug!(file = %file.final_path.display(), records = file.records, "archive file complete");
        Ok(())
    }

    /// Opens the next file in today's partition. Names already taken (an earlier run started in
    /// the same second) are skipped, and the temporary file is created exclusively, so no file
    /// is ever overwritten.
    fn open_file(&mut self, now: DateTime<Utc>) -> io::Result<OpenFile> {
        let date = now.date_naive();
        let partition = files::partition_path(&self.settings.directory, date);
        if !partition.is_dir() {
            fs::create_dir_all(&partition)?;
            files::sync_directory(&self.settings.directory)?;
        }
        loop {
            let final_name = files::archive_file_name(self.started, self.next_sequence);
            self.next_sequence += 1;
            let final_path = partition.join(&final_name);
            if final_path.exists() {
                continue;
            }
            let temp_path = partition.join(files::temp_file_name(&final_name));
            let file = match File::options().write(true).create_new(true).open(&temp_path) {
                Ok(file) => file,
                Err(error) if error.kind() == io::ErrorKind::AlreadyExists => continue,
                Err(error) => return Err(error),
            };
            let encoder = GzEncoder::new(BufWriter::new(file), Compression::default());
            return Ok(OpenFile {
                encoder,
                temp_path,
                final_path,
                date,
                opened_at: now,
                last_flush: now,
                uncompressed_bytes: 0,
                records: 0,
            });
        }
    }
}

fn remove_expired(settings: &WriterSettings, today: NaiveDate) -> io::Result<()> {
    for partition in files::remove_expired_partitions(&settings.directory, today, settings.retention_days)? {
        tracing::info!(partition = %partition.display(), retention_days = settings.retention_days, "removed an expired archive partition");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use chrono::TimeDelta;

    use super::*;
    use crate::archive::files::tests::{decode_complete, flushed_gzip};
    use crate::archive::record::tests::sample_record;

    const START: &str = "2026-11-26T10:00:00Z";

    fn at(offset_secs: i64) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(START).unwrap().with_timezone(&Utc) + TimeDelta::seconds(offset_secs)
    }

    fn settings(directory: &Path) -> WriterSettings {
        WriterSettings {
            directory: directory.to_path_buf(),
            rotate_max_bytes: 1 << 20,
            rotate_max_age: Duration::from_secs(3600),
            retention_days: 0,
        }
    }

    fn open(settings: WriterSettings, now: DateTime<Utc>) -> (ArchiveWriter, Arc<Metrics>) {
        let metrics = Arc::new(Metrics::new().unwrap());
        (ArchiveWriter::open(settings, Arc::clone(&metrics), now).unwrap(), metrics)
    }

    fn record(index: usize) -> ArchiveRecord {
        sample_record(&format!("m{index}"), &format!("Headline number {index}"), "Earnings")
    }

    /// Every name in a partition, sorted, hidden ones included.
    fn names_in(partition: &Path) -> Vec<String> {
        let mut names: Vec<String> =
            fs::read_dir(partition).unwrap().map(|entry| entry.unwrap().file_name().into_string().unwrap()).collect();
        names.sort();
        names
    }

    fn ids_in(path: &Path) -> Vec<String> {
        decode_complete(path)
            .unwrap()
            .lines()
            .map(|line| serde_json::from_str::<ArchiveRecord>(line).unwrap().id.unwrap())
            .collect()
    }

    #[test]
    fn files_rotate_on_size_and_hold_every_record_in_order() {
        let directory = tempfile::tempdir().unwrap();
        let record_bytes = serde_json::to_vec(&record(0)).unwrap().len() as u64 + 1;
        let settings = WriterSettings { rotate_max_bytes: 3 * record_bytes, ..settings(directory.path()) };
        let (mut writer, metrics) = open(settings, at(0));
        for index in 0..7 {
            writer.write(&record(index), at(0)).unwrap();
        }
        let partition = directory.path().join("2026-11-26");
        assert_eq!(
            names_in(&partition),
            [
                ".sentmon-20261126T100000Z-000003.jsonl.gz.tmp",
                "sentmon-20261126T100000Z-000001.jsonl.gz",
                "sentmon-20261126T100000Z-000002.jsonl.gz",
            ],
            "two full files visible, the third still being written under a hidden name"
        );
        writer.close().unwrap();
        let names = names_in(&partition);
        assert_eq!(names.len(), 3);
        let ids: Vec<Vec<String>> = names.iter().map(|name| ids_in(&partition.join(name))).collect();
        assert_eq!(ids, [vec!["m0", "m1", "m2"], vec!["m3", "m4", "m5"], vec!["m6"]]);
        assert_eq!((metrics.archive.records.get(), metrics.archive.files.get()), (7, 3));
    }

    #[test]
    fn files_rotate_on_age_even_without_new_records_and_on_a_new_date() {
        let directory = tempfile::tempdir().unwrap();
        let settings = WriterSettings { rotate_max_age: Duration::from_secs(60), ..settings(directory.path()) };
        let (mut writer, _) = open(settings, at(0));
        writer.write(&record(0), at(0)).unwrap();
        writer.tick(at(59)).unwrap();
        let partition = directory.path().join("2026-11-26");
        assert_eq!(names_in(&partition), [".sentmon-20261126T100000Z-000001.jsonl.gz.tmp"]);
        writer.tick(at(60)).unwrap();
        assert_eq!(names_in(&partition), ["sentmon-20261126T100000Z-000001.jsonl.gz"]);

        // A file opened before midnight is closed by the first record after it.
        let before_midnight = 14 * 3600 - 10;
        writer.write(&record(1), at(before_midnight)).unwrap();
        writer.write(&record(2), at(before_midnight + 20)).unwrap();
        writer.close().unwrap();
        assert_eq!(ids_in(&partition.join("sentmon-20261126T100000Z-000002.jsonl.gz")), ["m1"]);
        let next_day = directory.path().join("2026-11-27");
        assert_eq!(names_in(&next_day), ["sentmon-20261126T100000Z-000003.jsonl.gz"]);
        assert_eq!(ids_in(&next_day.join("sentmon-20261126T100000Z-000003.jsonl.gz")), ["m2"]);
    }

    #[test]
    fn the_open_file_is_flushed_so_a_crash_leaves_a_readable_prefix() {
        let directory = tempfile::tempdir().unwrap();
        let (mut writer, _) = open(settings(directory.path()), at(0));
        writer.write(&record(0), at(0)).unwrap();
        writer.write(&record(1), at(1)).unwrap();
        writer.write(&record(2), at(1)).unwrap();
        // A crash: the writer never closes, and what it buffered since the last flush is lost.
        std::mem::forget(writer);
        open(settings(directory.path()), at(10));
        let partition = directory.path().join("2026-11-26");
        assert_eq!(names_in(&partition), ["sentmon-20261126T100000Z-000001.jsonl.gz"]);
        assert_eq!(ids_in(&partition.join("sentmon-20261126T100000Z-000001.jsonl.gz")), ["m0", "m1"]);
    }

    #[test]
    fn a_restart_in_the_same_second_does_not_overwrite_files() {
        let directory = tempfile::tempdir().unwrap();
        for index in 0..2 {
            let (mut writer, _) = open(settings(directory.path()), at(0));
            writer.write(&record(index), at(0)).unwrap();
            writer.close().unwrap();
        }
        let partition = directory.path().join("2026-11-26");
        let names = names_in(&partition);
        assert_eq!(names, ["sentmon-20261126T100000Z-000001.jsonl.gz", "sentmon-20261126T100000Z-000002.jsonl.gz"]);
        assert_eq!(ids_in(&partition.join(&names[0])), ["m0"]);
        assert_eq!(ids_in(&partition.join(&names[1])), ["m1"]);
    }

    #[test]
    fn opening_recovers_leftovers_and_applies_retention() {
        let directory = tempfile::tempdir().unwrap();
        let old_partition = directory.path().join("2026-11-01");
        fs::create_dir(&old_partition).unwrap();
        let yesterday = directory.path().join("2026-11-25");
        fs::create_dir(&yesterday).unwrap();
        let lines: Vec<String> = (0..3).map(|index| serde_json::to_string(&record(index)).unwrap()).collect();
        let compressed = flushed_gzip(&lines);
        let leftover_name = files::temp_file_name("sentmon-20261125T230000Z-000009.jsonl.gz");
        fs::write(yesterday.join(&leftover_name), &compressed[..compressed.len() - 12]).unwrap();

        let settings = WriterSettings { retention_days: 7, ..settings(directory.path()) };
        let (mut writer, metrics) = open(settings, at(0));
        assert!(!old_partition.exists(), "older than 7 days");
        assert_eq!(names_in(&yesterday), ["sentmon-20261125T230000Z-000009.jsonl.gz"]);
        assert_eq!(ids_in(&yesterday.join("sentmon-20261125T230000Z-000009.jsonl.gz")), ["m0", "m1", "m2"]);
        assert_eq!(metrics.archive.files.get(), 1, "a recovered file counts as completed");

        // Retention runs again when the date changes while writing.
        writer.write(&record(3), at(7 * 24 * 3600)).unwrap();
        writer.close().unwrap();
        assert!(!yesterday.exists());
    }
}
