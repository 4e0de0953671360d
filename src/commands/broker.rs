//! `sentmon broker`: hosts an embedded Kafka-protocol broker for other processes until SIGINT/SIGTERM.

use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::Context;

use crate::cli::BrokerArgs;
use crate::ingest::embedded::{AUTO_CREATED_TOPIC_PARTITIONS, EmbeddedBroker};

pub fn run(args: &BrokerArgs) -> anyhow::Result<()> {
    let broker = EmbeddedBroker::start(args.partitions, &args.topics)?;
    if args.partitions != AUTO_CREATED_TOPIC_PARTITIONS {
        tracing::info!(
            partitions = args.partitions,
            auto_created_partitions = AUTO_CREATED_TOPIC_PARTITIONS,
            "only topics given with --topic get the requested partitions; the embedded broker creates other topics with its fixed default"
        );
    }
    let mut stdout = std::io::stdout().lock();
    writeln!(stdout, "bootstrap servers: {}", broker.bootstrap_servers())
        .and_then(|()| stdout.flush())
        .context("failed to print the bootstrap address")?;
    drop(stdout);
    if let Some(address_file) = &args.address_file {
        write_address_file(address_file, broker.bootstrap_servers())?;
    }
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("failed to start the signal-handling runtime")?;
    let signal_name = runtime.block_on(wait_for_shutdown_signal())?;
    tracing::info!(signal = signal_name, "stopping the embedded broker");
    broker.stop();
    if let Some(address_file) = &args.address_file {
        // A file left behind would point the next reader at a broker that no longer exists.
        match std::fs::remove_file(address_file) {
            Err(error) if error.kind() != std::io::ErrorKind::NotFound => {
                tracing::warn!(path = %address_file.display(), %error, "failed to remove the address file");
            }
            _ => {}
        }
    }
    Ok(())
}

/// Writes `address` to a temporary file beside `path` and renames it into place, so a reader
/// polling for `path` never sees it empty or half-written.
fn write_address_file(path: &Path, address: &str) -> anyhow::Result<()> {
    let file_name = path
        .file_name()
        .with_context(|| format!("invalid --address-file {}: give a file path, not a directory", path.display()))?;
    let mut temporary_name = std::ffi::OsString::from(".");
    temporary_name.push(file_name);
    temporary_name.push(format!(".{}.tmp", std::process::id()));
    let temporary_path: PathBuf = path.with_file_name(temporary_name);
    std::fs::write(&temporary_path, format!("{address}\n"))
        .with_context(|| format!("failed to write the address file {}", temporary_path.display()))?;
    if let Err(error) = std::fs::rename(&temporary_path, path) {
        let _ = std::fs::remove_file(&temporary_path);
        return Err(anyhow::Error::new(error)
            .context(format!("failed to move the address file into place at {}", path.display())));
    }
    Ok(())
}

/// Resolves on the first SIGINT (Ctrl-C) or SIGTERM (systemd, Kubernetes, `kill`) and names it.
async fn wait_for_shutdown_signal() -> anyhow::Result<&'static str> {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        let mut terminate = signal(SignalKind::terminate()).context("failed to listen for SIGTERM")?;
        tokio::select! {
            result = tokio::signal::ctrl_c() => result.map(|()| "SIGINT").context("failed to listen for SIGINT"),
            _ = terminate.recv() => Ok("SIGTERM"),
        }
    }
    #[cfg(not(unix))]
    {
        tokio::signal::ctrl_c().await.context("failed to listen for Ctrl-C")?;
        Ok("Ctrl-C")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn address_file_holds_the_address_and_no_temporary_file_is_left() {
        let directory = tempfile::tempdir().expect("temporary directory");
        let path = directory.path().join("broker.addr");
        write_address_file(&path, "127.0.0.1:40000").expect("address file is written");
        assert_eq!(std::fs::read_to_string(&path).expect("file is read"), "127.0.0.1:40000\n");
        let entries = std::fs::read_dir(directory.path()).expect("directory is listed").count();
        assert_eq!(entries, 1, "only the address file remains");
    }

    #[test]
    fn address_file_error_names_the_path() {
        let error = write_address_file(Path::new("/nonexistent-directory/broker.addr"), "127.0.0.1:1")
            .expect_err("a missing directory fails");
        assert!(format!("{error:#}").contains("/nonexistent-directory"), "{error:#}");
    }
}
