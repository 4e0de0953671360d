//! The model registry: a directory of versioned bundles plus an atomically replaced pointer to
//! the promoted one, and a promotion history for rollback.
//!
//! ```text
//! REGISTRY/
//!   versions/<version>/      model.json, tokenizer.json, weights.safetensors (+ gate.json)
//!   PROMOTED                 the promoted version, one line; replaced by rename, never edited
//!   promotions.jsonl         one line per promotion: time, version, previous, reason
//! ```
//!
//! The daemon reads only `PROMOTED` (a few bytes) on each poll, so watching is cheap. Writers
//! (`sentmon models ...`, `sentmon retrain`) are expected to be one at a time (a cron job or an
//! operator); two concurrent promotions both succeed and the later rename wins, which the history
//! shows.

pub mod gate;

use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::{Context, bail, ensure};
use serde::{Deserialize, Serialize};

use crate::model::bundle::{self, ModelManifest};

pub const VERSIONS_DIR: &str = "versions";
pub const POINTER_FILE: &str = "PROMOTED";
pub const HISTORY_FILE: &str = "promotions.jsonl";
/// Promotions whose reason starts with this undo the one before them (see `rollback`).
const ROLLBACK_REASON_PREFIX: &str = "rollback from ";

/// One line of `promotions.jsonl`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Promotion {
    pub at: String,
    pub version: String,
    pub previous: Option<String>,
    /// Why: "manual", "rollback", "retrain: gate passed", "initial".
    pub reason: String,
}

/// A version in the registry, as `sentmon models list` shows it.
#[derive(Debug, Clone)]
pub struct VersionEntry {
    pub version: String,
    pub manifest: ModelManifest,
    pub promoted: bool,
}

#[derive(Debug, Clone)]
pub struct Registry {
    root: PathBuf,
}

impl Registry {
    /// True if `path` looks like a registry (it has a `versions/` directory or a pointer), as
    /// opposed to a single bundle directory.
    pub fn is_registry(path: &Path) -> bool {
        path.join(VERSIONS_DIR).is_dir() || path.join(POINTER_FILE).is_file()
    }

    /// Opens an existing registry; the error says how to create one.
    pub fn open(root: &Path) -> anyhow::Result<Registry> {
        ensure!(
            Registry::is_registry(root),
            "{} is not a model registry (no {VERSIONS_DIR}/ directory); create one with \
             `sentmon models add BUNDLE_DIR --registry {} --promote`",
            root.display(),
            root.display()
        );
        Ok(Registry { root: root.to_path_buf() })
    }

    /// Opens a registry, creating its directory layout if it does not exist yet.
    pub fn open_or_create(root: &Path) -> anyhow::Result<Registry> {
        let versions = root.join(VERSIONS_DIR);
        std::fs::create_dir_all(&versions)
            .with_context(|| format!("failed to create the registry directory {}", versions.display()))?;
        Ok(Registry { root: root.to_path_buf() })
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    pub fn bundle_dir(&self, version: &str) -> PathBuf {
        self.root.join(VERSIONS_DIR).join(version)
    }

    /// A fresh directory inside the registry for a bundle being written; `add_staged` moves it
    /// into place. Staging inside the registry keeps the final move a same-filesystem rename.
    pub fn staging_dir(&self) -> anyhow::Result<PathBuf> {
        let name = format!(".staging-{}-{}", std::process::id(), chrono::Utc::now().format("%Y%m%d%H%M%S%f"));
        let path = self.root.join(VERSIONS_DIR).join(name);
        std::fs::create_dir_all(&path).with_context(|| format!("failed to create {}", path.display()))?;
        Ok(path)
    }

    /// Moves a complete bundle written into `staged` (from `staging_dir`) to `versions/<version>`.
    pub fn add_staged(&self, staged: &Path) -> anyhow::Result<String> {
        let manifest = bundle::read_manifest(staged)?;
        let target = self.bundle_dir(&manifest.version);
        ensure!(!target.exists(), "version {} is already in the registry at {}", manifest.version, target.display());
        sync_directory_contents(staged)?;
        std::fs::rename(staged, &target)
            .with_context(|| format!("failed to move {} to {}", staged.display(), target.display()))?;
        sync_directory(&self.root.join(VERSIONS_DIR))?;
        Ok(manifest.version)
    }

    /// Copies an existing bundle directory into the registry under its own version.
    pub fn add_copy(&self, bundle_dir: &Path) -> anyhow::Result<String> {
        let manifest = bundle::read_manifest(bundle_dir)?;
        if self.bundle_dir(&manifest.version).exists() {
            bail!("version {} is already in the registry {}", manifest.version, self.root.display());
        }
        let staged = self.staging_dir()?;
        for file in [bundle::MANIFEST_FILE, bundle::TOKENIZER_FILE, bundle::WEIGHTS_FILE] {
            std::fs::copy(bundle_dir.join(file), staged.join(file))
                .with_context(|| format!("failed to copy {} from {}", file, bundle_dir.display()))?;
        }
        self.add_staged(&staged)
    }

    /// The promoted version, or None if nothing has been promoted yet.
    pub fn promoted(&self) -> anyhow::Result<Option<String>> {
        let pointer = self.root.join(POINTER_FILE);
        match std::fs::read_to_string(&pointer) {
            Ok(content) => {
                let version = content.trim();
                ensure!(!version.is_empty(), "{} is empty: promote a version again", pointer.display());
                Ok(Some(version.to_string()))
            }
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(error) => Err(error).with_context(|| format!("failed to read {}", pointer.display())),
        }
    }

    /// The promoted version's bundle directory; an error names the fix if there is none.
    pub fn promoted_bundle(&self) -> anyhow::Result<(String, PathBuf)> {
        let Some(version) = self.promoted()? else {
            bail!(
                "registry {} has no promoted version; promote one with `sentmon models promote VERSION --registry {}`",
                self.root.display(),
                self.root.display()
            );
        };
        let directory = self.bundle_dir(&version);
        Ok((version, directory))
    }

    /// Every complete version (staging leftovers are skipped), oldest first by creation time.
    pub fn versions(&self) -> anyhow::Result<Vec<VersionEntry>> {
        let promoted = self.promoted()?;
        let versions_dir = self.root.join(VERSIONS_DIR);
        let mut entries = Vec::new();
        let listing =
            std::fs::read_dir(&versions_dir).with_context(|| format!("failed to list {}", versions_dir.display()))?;
        for item in listing {
            let item = item?;
            let name = item.file_name().to_string_lossy().into_owned();
            if name.starts_with('.') || !item.path().is_dir() {
                continue;
            }
            let manifest = bundle::read_manifest(&item.path())?;
            entries.push(VersionEntry {
                promoted: promoted.as_deref() == Some(name.as_str()),
                version: name,
                manifest,
            });
        }
        entries.sort_by(|left, right| {
            (left.manifest.created_at.as_str(), left.version.as_str())
                .cmp(&(right.manifest.created_at.as_str(), right.version.as_str()))
        });
        Ok(entries)
    }

    /// Points the registry at `version` (which must hold a readable manifest) and records why.
    /// The pointer is written to a temporary file, synced, and renamed over the old one, so a
    /// reader sees the old version or the new one, never a torn write.
    pub fn promote(&self, version: &str, reason: &str) -> anyhow::Result<Promotion> {
        let directory = self.bundle_dir(version);
        ensure!(
            directory.is_dir(),
            "version {version:?} is not in the registry {} (see `sentmon models list`)",
            self.root.display()
        );
        let manifest = bundle::read_manifest(&directory)?;
        ensure!(
            manifest.version == version,
            "{} declares version {:?}, not {version:?}: the registry is inconsistent",
            directory.display(),
            manifest.version
        );
        let previous = self.promoted()?;
        let pointer = self.root.join(POINTER_FILE);
        let temporary = self.root.join(format!(".{POINTER_FILE}.{}", std::process::id()));
        {
            let mut file = std::fs::File::create(&temporary)
                .with_context(|| format!("failed to write {}", temporary.display()))?;
            file.write_all(format!("{version}\n").as_bytes())?;
            file.sync_all()?;
        }
        std::fs::rename(&temporary, &pointer).with_context(|| format!("failed to replace {}", pointer.display()))?;
        sync_directory(&self.root)?;
        let promotion = Promotion {
            at: chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
            version: version.to_string(),
            previous,
            reason: reason.to_string(),
        };
        self.append_history(&promotion)?;
        Ok(promotion)
    }

    /// Promotes the version that was promoted before the current one. Promotions form a stack:
    /// each rollback pops one, so rolling back twice from v3 goes to v2, then v1.
    pub fn rollback(&self) -> anyhow::Result<Promotion> {
        let Some(current) = self.promoted()? else {
            bail!("registry {} has no promoted version to roll back from", self.root.display());
        };
        let mut stack: Vec<String> = Vec::new();
        for promotion in self.history()? {
            if promotion.reason.starts_with(ROLLBACK_REASON_PREFIX) {
                stack.pop();
            } else {
                stack.push(promotion.version);
            }
        }
        ensure!(
            stack.last() == Some(&current),
            "{} points at {current}, which {} does not show as the latest promotion; promote a version explicitly",
            self.root.join(POINTER_FILE).display(),
            self.root.join(HISTORY_FILE).display()
        );
        let Some(previous) = stack.len().checked_sub(2).map(|index| stack[index].clone()) else {
            bail!(
                "{current} is the first promoted version in {}: there is nothing to roll back to",
                self.root.join(HISTORY_FILE).display()
            );
        };
        self.promote(&previous, &format!("{ROLLBACK_REASON_PREFIX}{current}"))
    }

    pub fn history(&self) -> anyhow::Result<Vec<Promotion>> {
        let path = self.root.join(HISTORY_FILE);
        let content = match std::fs::read_to_string(&path) {
            Ok(content) => content,
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(error) => return Err(error).with_context(|| format!("failed to read {}", path.display())),
        };
        content
            .lines()
            .enumerate()
            .filter(|(_, line)| !line.trim().is_empty())
            .map(|(index, line)| {
                serde_json::from_str(line)
                    .with_context(|| format!("{}:{}: not a promotion record", path.display(), index + 1))
            })
            .collect()
    }

    fn append_history(&self, promotion: &Promotion) -> anyhow::Result<()> {
        let path = self.root.join(HISTORY_FILE);
        let mut file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&path)
            .with_context(|| format!("failed to open {}", path.display()))?;
        file.write_all(format!("{}\n", serde_json::to_string(promotion)?).as_bytes())?;
        file.sync_all()?;
        Ok(())
    }
}

/// Resolves a `[model] path` (a bundle or a registry) to the bundle to serve and its version.
pub fn resolve_model_path(path: &Path) -> anyhow::Result<(String, PathBuf)> {
    if Registry::is_registry(path) {
        Registry::open(path)?.promoted_bundle()
    } else {
        let manifest = bundle::read_manifest(path)?;
        Ok((manifest.version, path.to_path_buf()))
    }
}

fn sync_directory(directory: &Path) -> anyhow::Result<()> {
    std::fs::File::open(directory)
        .and_then(|handle| handle.sync_all())
        .with_context(|| format!("failed to sync directory {}", directory.display()))
}

fn sync_directory_contents(directory: &Path) -> anyhow::Result<()> {
    for item in std::fs::read_dir(directory)? {
        let path = item?.path();
        if path.is_file() {
            std::fs::File::open(&path)
                .and_then(|handle| handle.sync_all())
                .with_context(|| format!("failed to sync {}", path.display()))?;
        }
    }
    sync_directory(directory)
}

#[cfg(test)]
mod tests;
