//! Stream archive: every classified message, once its enriched record is acknowledged, appended
//! on a dedicated thread to rotating, date-partitioned `.jsonl.gz` files that are complete or
//! absent after a crash; and the sample export that analysts label (docs/LABELLING.md).
//!
//! The emit path only queues a record (bounded channel); gzip and file I/O run on the
//! `sentmon-archive` thread. A full queue makes the emit path wait, so a slow disk slows
//! consumption instead of losing records silently. A failing disk (full, read-only) must not
//! stop classification, which matters more than the archive: records are then dropped and
//! counted (`sentmon_archive_records_dropped_total`) until a retry succeeds.

pub mod export;
pub mod files;
pub mod record;
pub mod settings;
pub mod writer;

use std::io;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use chrono::Utc;
use tokio::sync::mpsc;

pub use record::{ArchiveRecord, Predicted};
pub use writer::{ArchiveWriter, FLUSH_INTERVAL, WriterSettings};

use crate::metrics::Metrics;

/// Records waiting for the archive thread. A healthy disk takes records far faster than the model
/// produces them (gzip compresses tens of MB/s on one core, the model classifies about 5,000
/// short texts/s on two), so the queue only fills when the disk stalls; 4,096 records (about
/// 2 MB) absorb a stall of about a second at full speed before the emit path waits.
const QUEUE_CAPACITY: usize = 4096;

/// After a write error, records are dropped (and counted) for this long before writing is tried
/// again: a broken disk then costs one log line per interval instead of one per message.
const RETRY_AFTER_ERROR: Duration = Duration::from_secs(10);

enum Command {
    Record(Box<ArchiveRecord>),
    /// Write everything queued before this, complete the current file and stop.
    Close,
}

/// Hands records to the archive thread; cheap to clone.
#[derive(Clone)]
pub struct ArchiveSink {
    sender: mpsc::Sender<Command>,
    metrics: Arc<Metrics>,
}

impl ArchiveSink {
    /// Queues a record, waiting while the queue is full (backpressure).
    pub async fn archive(&self, record: ArchiveRecord) {
        if self.sender.send(Command::Record(Box::new(record))).await.is_err() {
            // Only after `ArchiveThread::close`: a drain that ran out of time left emit tasks running.
            self.metrics.archive.records_dropped.inc();
        }
    }
}

/// The running archive thread, kept by whoever shuts the daemon down.
pub struct ArchiveThread {
    sender: mpsc::Sender<Command>,
    thread: std::thread::JoinHandle<()>,
}

impl ArchiveThread {
    /// Writes every record queued so far, completes the current file and waits for the thread.
    pub async fn close(self) {
        // A send error means the thread has already stopped; joining below reports why.
        let _ = self.sender.send(Command::Close).await;
        let thread = self.thread;
        match tokio::task::spawn_blocking(move || thread.join()).await {
            Ok(Ok(())) => tracing::info!("archive closed"),
            _ => tracing::error!("the archive thread panicked; its open file is recovered at the next start"),
        }
    }
}

/// Opens the archive (recovering crash leftovers, applying retention) and starts its thread.
/// Fails when the directory cannot be created or read: a daemon configured to archive should
/// not start without it.
pub async fn start(settings: WriterSettings, metrics: Arc<Metrics>) -> anyhow::Result<(ArchiveSink, ArchiveThread)> {
    let directory = settings.directory.clone();
    let writer_metrics = Arc::clone(&metrics);
    let writer = tokio::task::spawn_blocking(move || ArchiveWriter::open(settings, writer_metrics, Utc::now()))
        .await
        .context("archive start-up panicked")?
        .with_context(|| format!("failed to open the archive directory {}", directory.display()))?;
    let (sender, receiver) = mpsc::channel(QUEUE_CAPACITY);
    let thread_metrics = Arc::clone(&metrics);
    let thread = std::thread::Builder::new()
        .name("sentmon-archive".to_owned())
        .spawn(move || write_until_closed(writer, receiver, &thread_metrics))
        .context("failed to start the archive thread")?;
    tracing::info!(directory = %directory.display(), "archiving classified messages");
    Ok((ArchiveSink { sender: sender.clone(), metrics }, ArchiveThread { sender, thread }))
}

/// The archive thread: writes records as they come, and between them flushes and rotates on time.
fn write_until_closed(mut writer: ArchiveWriter, mut receiver: mpsc::Receiver<Command>, metrics: &Metrics) {
    // A private timer-only runtime to wait for a record or the next flush: the daemon's runtime
    // never runs this thread's blocking file I/O.
    let timer = match tokio::runtime::Builder::new_current_thread().enable_time().build() {
        Ok(timer) => timer,
        Err(error) => {
            tracing::error!(%error, "cannot start the archive thread's timer; archiving is off");
            return;
        }
    };
    let mut backoff = ErrorBackoff::default();
    loop {
        // The timeout is built inside the block: a timer needs the runtime's context.
        let next = timer.block_on(async { tokio::time::timeout(FLUSH_INTERVAL, receiver.recv()).await });
        let skipping = backoff.is_waiting(Instant::now());
        let result = match next {
            Ok(Some(Command::Close) | None) => break,
            Ok(Some(Command::Record(_))) if skipping => {
                metrics.archive.records_dropped.inc();
                continue;
            }
            Ok(Some(Command::Record(record))) => writer.write(&record, Utc::now()).inspect_err(|_| {
                metrics.archive.records_dropped.inc();
            }),
            Err(_no_record_within_flush_interval) if skipping => continue,
            Err(_no_record_within_flush_interval) => writer.tick(Utc::now()),
        };
        match result {
            Ok(()) => backoff.succeeded(),
            Err(error) => backoff.failed(&error, metrics),
        }
    }
    if let Err(error) = writer.close() {
        metrics.archive.errors.inc();
        tracing::error!(%error, "failed to complete the last archive file; it is recovered at the next start");
    }
}

/// Spaces out retries after a write error, so a broken disk is reported once per retry.
#[derive(Default)]
struct ErrorBackoff {
    retry_at: Option<Instant>,
}

impl ErrorBackoff {
    fn is_waiting(&self, now: Instant) -> bool {
        self.retry_at.is_some_and(|retry_at| now < retry_at)
    }

    fn failed(&mut self, error: &io::Error, metrics: &Metrics) {
        metrics.archive.errors.inc();
        tracing::warn!(%error, retry_in_secs = RETRY_AFTER_ERROR.as_secs(), "archive write failed; records are dropped until a retry succeeds");
        self.retry_at = Some(Instant::now() + RETRY_AFTER_ERROR);
    }

    fn succeeded(&mut self) {
        if self.retry_at.take().is_some() {
            tracing::info!("archive writing resumed");
        }
    }
}

#[cfg(test)]
mod tests {
    use std::fs;

    use super::files::tests::decode_complete;
    use super::record::tests::sample_record;
    use super::*;

    #[tokio::test]
    async fn close_writes_every_queued_record_into_complete_files() {
        let directory = tempfile::tempdir().unwrap();
        let metrics = Arc::new(Metrics::new().unwrap());
        let settings = WriterSettings {
            directory: directory.path().to_path_buf(),
            rotate_max_bytes: 2048,
            rotate_max_age: Duration::from_secs(3600),
            retention_days: 0,
        };
        let (sink, thread) = start(settings, Arc::clone(&metrics)).await.unwrap();
        for index in 0..100 {
            sink.archive(sample_record(&format!("m{index}"), &format!("headline {index}"), "Earnings")).await;
        }
        thread.close().await;
        sink.archive(sample_record("late", "after close", "Earnings")).await;

        let mut lines = 0;
        let mut files = 0;
        for partition in fs::read_dir(directory.path()).unwrap() {
            for entry in fs::read_dir(partition.unwrap().path()).unwrap() {
                let path = entry.unwrap().path();
                assert!(files::is_archive_file_name(&path.file_name().unwrap().to_string_lossy()), "{path:?}");
                lines += decode_complete(&path).unwrap().lines().count();
                files += 1;
            }
        }
        assert_eq!(lines, 100);
        assert!(files > 1, "rotated by size");
        assert_eq!(metrics.archive.records.get(), 100);
        assert_eq!(metrics.archive.files.get(), files as u64);
        assert_eq!((metrics.archive.records_dropped.get(), metrics.archive.errors.get()), (1, 0));
    }

    #[tokio::test]
    async fn an_unusable_directory_is_a_start_up_error_naming_it() {
        let directory = tempfile::tempdir().unwrap();
        let not_a_directory = directory.path().join("file");
        fs::write(&not_a_directory, "x").unwrap();
        let settings = WriterSettings {
            directory: not_a_directory.clone(),
            rotate_max_bytes: 1,
            rotate_max_age: Duration::from_secs(1),
            retention_days: 0,
        };
        let error = start(settings, Arc::new(Metrics::new().unwrap())).await.err().expect("a file is not a directory");
        assert!(format!("{error:#}").contains(&not_a_directory.display().to_string()), "{error:#}");
    }
}
