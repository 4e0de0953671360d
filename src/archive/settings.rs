//! The `[archive]` section of the daemon config: where and how the stream archive is written, with
//! its defaults, docs and checks.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use crate::config::ConfigIssue;

/// `[archive]`: every classified message written to rotating, date-partitioned `.jsonl.gz` files.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ArchiveConfig {
    /// Directory of the archive: `DIR/YYYY-MM-DD/sentmon-<start>-<seq>.jsonl.gz`, dated by the UTC
    /// day the messages were processed. Relative paths are resolved from the working directory.
    /// Each replica needs its own directory. Default: none, archiving is off.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub directory: Option<PathBuf>,
    /// A file is completed once this many bytes of JSON lines (uncompressed) went into it, in
    /// bytes, at least 1. Default 67 108 864 (64 MiB, about 10 MiB compressed): a file a labelling
    /// tool opens at once.
    pub rotate_max_bytes: u64,
    /// A file is completed this long after it was opened, in seconds, at least 1, even when the
    /// stream is quiet; files are also completed at UTC midnight. Default 3600: an hour's
    /// messages become visible within the hour.
    pub rotate_max_age_secs: u64,
    /// Date partitions older than this many days (today included) are deleted, at start and at
    /// each new day, in days; 0 keeps everything. Default 30.
    pub retention_days: u32,
}

impl Default for ArchiveConfig {
    fn default() -> Self {
        Self { directory: None, rotate_max_bytes: 64 * 1024 * 1024, rotate_max_age_secs: 3600, retention_days: 30 }
    }
}

impl ArchiveConfig {
    /// Adds every problem of this section to `issues`.
    pub(crate) fn check(&self, issues: &mut Vec<ConfigIssue>) {
        let archive = self;
        if archive.directory.as_ref().is_some_and(|directory| directory.as_os_str().is_empty()) {
            issues.push(ConfigIssue::new(
                "archive.directory",
                "",
                "must not be empty: give a directory, or leave the key out to turn archiving off",
            ));
        }
        if archive.rotate_max_bytes == 0 {
            issues.push(ConfigIssue::new("archive.rotate_max_bytes", 0, "must be at least 1"));
        }
        if archive.rotate_max_age_secs == 0 {
            issues.push(ConfigIssue::new("archive.rotate_max_age_secs", 0, "must be at least 1"));
        }
    }
}
