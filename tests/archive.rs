//! The stream archive end to end (issue 5): `sentmon run` archiving a continuous stream from a
//! real Kafka-protocol broker. A kill -9 mid-write leaves no corrupt file visible and a restart
//! recovers the leftover; a SIGTERM drain archives exactly the records it emitted.

mod common;

use std::io::Read;
use std::path::{Path, PathBuf};

use common::*;
use flate2::read::MultiGzDecoder;
use serde_json::Value;

/// Messages per second the feed offers: well under what the daemon classifies, so the archive
/// keeps pace and files rotate every second or two.
const FEED_RATE: usize = 100;
/// The feed stops by itself after this many messages (over three minutes at `FEED_RATE`).
const FEED_LIMIT: usize = 20_000;

/// `[archive]` with a small rotation size; age rotation and retention kept out of the way.
fn archive_section(directory: &Path, rotate_max_bytes: u64) -> String {
    format!(
        "[archive]\ndirectory = \"{}\"\nrotate_max_bytes = {rotate_max_bytes}\nrotate_max_age_secs = 600\nretention_days = 0\n",
        directory.display()
    )
}

/// Every file in the archive's partitions: (visible `.jsonl.gz` files, hidden files).
fn archive_listing(directory: &Path) -> (Vec<PathBuf>, Vec<PathBuf>) {
    let mut visible = Vec::new();
    let mut hidden = Vec::new();
    let Ok(partitions) = std::fs::read_dir(directory) else { return (visible, hidden) };
    for partition in partitions {
        for entry in std::fs::read_dir(partition.unwrap().path()).unwrap() {
            let path = entry.unwrap().path();
            let name = path.file_name().unwrap().to_string_lossy().into_owned();
            if name.starts_with('.') {
                hidden.push(path);
            } else {
                assert!(name.starts_with("sentmon-") && name.ends_with(".jsonl.gz"), "unexpected file {path:?}");
                visible.push(path);
            }
        }
    }
    visible.sort();
    hidden.sort();
    (visible, hidden)
}

/// Decodes a visible archive file to its end (a truncated gzip stream fails here) and checks
/// that every line is an archive row with the expected fields.
fn read_archive_file(path: &Path) -> Vec<Value> {
    let mut text = String::new();
    MultiGzDecoder::new(std::fs::File::open(path).unwrap())
        .read_to_string(&mut text)
        .unwrap_or_else(|error| panic!("{} does not decode completely: {error}", path.display()));
    assert!(text.ends_with('\n'), "{} ends inside a line", path.display());
    text.lines()
        .map(|line| {
            let row: Value =
                serde_json::from_str(line).unwrap_or_else(|error| panic!("{}: {error}: {line}", path.display()));
            for field in ["id", "key", "text", "event_time", "processed_at", "model_version"] {
                assert!(row[field].is_string(), "{field} in {row}");
            }
            assert_eq!(row["source_topic"], INPUT_TOPIC);
            assert!(row["source_partition"].is_i64() && row["source_offset"].is_i64(), "{row}");
            let predicted = &row["predicted"];
            assert!(predicted["topic"].is_string() && predicted["topic_prob"].is_f64(), "{row}");
            assert!(["negative", "neutral", "positive"].contains(&predicted["sentiment"].as_str().unwrap()), "{row}");
            assert!(predicted["sentiment_probs"]["negative"].is_f64(), "{row}");
            assert!(
                row.get("topic").is_none() && row.get("sentiment").is_none(),
                "predictions are never labels: {row}"
            );
            row
        })
        .collect()
}

#[test]
fn kill_9_mid_write_leaves_only_complete_files_and_a_restart_recovers_the_leftover() {
    let _serial = serial();
    let scratch = tempfile::tempdir().unwrap();
    let archive_directory = scratch.path().join("archive");
    let broker = start_broker();
    let brokers = broker.bootstrap_servers();
    // About 240 rows per file: a file lives two to three seconds, so it is flushed (every second)
    // before it is completed and the kill finds readable data in it.
    let extra = archive_section(&archive_directory, 96 * 1024);
    let http_port = free_port();
    let mut daemon =
        Daemon::start(&write_config(scratch.path(), brokers, http_port, &extra), http_port, scratch.path());
    daemon.wait_ready(GENEROUS);
    let feed = Feed::start(brokers, headline_messages(FEED_LIMIT, "kill"), FEED_RATE);

    wait_for("two complete files and a flushed file in progress", GENEROUS, || {
        let (visible, hidden) = archive_listing(&archive_directory);
        visible.len() >= 2 && hidden.iter().any(|path| std::fs::metadata(path).is_ok_and(|metadata| metadata.len() > 0))
    });
    daemon.child.kill().unwrap(); // SIGKILL
    daemon.child.wait().unwrap();

    let (visible, leftovers) = archive_listing(&archive_directory);
    let rows: usize = visible.iter().map(|path| read_archive_file(path).len()).sum();
    assert!(rows > 0);
    assert!(!leftovers.is_empty(), "the kill happened mid-write");
    for leftover in &leftovers {
        let name = leftover.file_name().unwrap().to_string_lossy();
        assert!(name.ends_with(".jsonl.gz.tmp"), "only temporary files are hidden: {name}");
    }
    // What training reads from the directory: the complete files only, every row unlabelled.
    let corpus = sentmon::dataset::load_labelled(
        std::slice::from_ref(&archive_directory),
        &sentmon::dataset::ColumnNames::default(),
        true,
    )
    .unwrap();
    assert_eq!(corpus.files, visible);
    assert_eq!(corpus.examples.len(), rows);
    assert!(corpus.examples.iter().all(|example| example.topic.is_none() && example.sentiment.is_none()));

    let restart_port = free_port();
    let restarted =
        Daemon::start(&write_config(scratch.path(), brokers, restart_port, &extra), restart_port, scratch.path());
    restarted.wait_ready(GENEROUS);
    let log = restarted.log();
    for leftover in &leftovers {
        assert!(!leftover.exists(), "{leftover:?} is still there after the restart; log:\n{log}");
        // Recovered under the name it would have had, and complete; or removed when it held
        // nothing readable yet (killed before its first flush).
        let hidden_name = leftover.file_name().unwrap().to_string_lossy().into_owned();
        let recovered = leftover.with_file_name(&hidden_name[1..hidden_name.len() - ".tmp".len()]);
        if recovered.exists() {
            assert!(!read_archive_file(&recovered).is_empty(), "{recovered:?}");
        }
    }
    assert!(
        log.contains("recovered the readable part of an archive file left by a crash")
            || log.contains("removed an archive file left by a crash"),
        "{log}"
    );
    let recovered_lines: Vec<&str> = log.lines().filter(|line| line.contains("recovered the readable part")).collect();
    println!("restart after kill -9: {recovered_lines:?}");

    wait_for("the restarted daemon to archive", GENEROUS, || {
        restarted.metric_sum("sentmon_archive_records_total") > 0.0
    });
    let produced = feed.stop();
    let status = restarted.terminate(GENEROUS);
    assert!(status.success(), "{status:?}");
    let (visible, hidden) = archive_listing(&archive_directory);
    assert!(hidden.is_empty(), "a clean shutdown leaves no temporary file: {hidden:?}");
    let archived: usize = visible.iter().map(|path| read_archive_file(path).len()).sum();
    println!("{produced} produced, {archived} archived over both runs, {} files", visible.len());
}

#[test]
fn sigterm_under_load_archives_exactly_the_records_it_emitted() {
    let _serial = serial();
    let scratch = tempfile::tempdir().unwrap();
    let archive_directory = scratch.path().join("archive");
    let broker = start_broker();
    let brokers = broker.bootstrap_servers();
    let extra = archive_section(&archive_directory, 16 * 1024);
    let http_port = free_port();
    let daemon = Daemon::start(&write_config(scratch.path(), brokers, http_port, &extra), http_port, scratch.path());
    daemon.wait_ready(GENEROUS);
    let feed = Feed::start(brokers, headline_messages(FEED_LIMIT, "drain"), FEED_RATE);
    wait_for("three complete files", GENEROUS, || archive_listing(&archive_directory).0.len() >= 3);

    let status = daemon.terminate(GENEROUS);
    assert!(status.success(), "{status:?}");
    let produced = feed.stop();

    let (visible, hidden) = archive_listing(&archive_directory);
    assert!(hidden.is_empty(), "the drain completes the open file: {hidden:?}");
    let mut archived: Vec<(i64, i64)> = visible
        .iter()
        .flat_map(|path| read_archive_file(path))
        .map(|row| (row["source_partition"].as_i64().unwrap(), row["source_offset"].as_i64().unwrap()))
        .collect();
    archived.sort_unstable();
    let emitted_records = read_topic(brokers, OUTPUT_TOPIC, archived.len(), GENEROUS, SETTLE);
    let mut emitted: Vec<(i64, i64)> = emitted_records
        .iter()
        .map(|record| {
            let value = json(record);
            (value["source_partition"].as_i64().unwrap(), value["source_offset"].as_i64().unwrap())
        })
        .collect();
    emitted.sort_unstable();
    println!("{produced} produced, {} emitted, {} archived in {} files", emitted.len(), archived.len(), visible.len());
    assert!(archived.len() > 100 && archived.len() <= produced);
    assert_eq!(archived, emitted, "every emitted record is archived once, and nothing else");

    // What analysts do next: export a sample to label; untouched, it is text without labels.
    let to_label = scratch.path().join("to-label.csv");
    let export = std::process::Command::new(env!("CARGO_BIN_EXE_sentmon"))
        .args(["archive", "export", "--sample", "50", "--seed", "3", "--from"])
        .arg(&archive_directory)
        .arg("--out")
        .arg(&to_label)
        .output()
        .unwrap();
    assert!(export.status.success(), "{}", String::from_utf8_lossy(&export.stderr));
    let exported = sentmon::dataset::load_labelled(
        std::slice::from_ref(&to_label),
        &sentmon::dataset::ColumnNames::default(),
        true,
    )
    .unwrap();
    assert_eq!(exported.examples.len(), 50);
    assert!(exported.examples.iter().all(|example| example.topic.is_none() && example.sentiment.is_none()));
}
