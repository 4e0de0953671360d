//! `sentmon demo`: an embedded broker, a generated headline stream with a negative spike on one
//! topic and a surge of messages about one company, and the full daemon against it (watching the
//! example watchlist's entities), printing each alert as it fires.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use tokio::net::TcpListener;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use crate::alert::{AlertEvent, AlertKind};
use crate::app::{self, Observers};
use crate::cli::DemoArgs;
use crate::config::Config;
use crate::demo::generator::{EntitySurgePlan, SpikePlan, StreamGenerator};
use crate::ingest::embedded::EmbeddedBroker;
use crate::ingest::producer::KafkaSink;

const INPUT_TOPIC: &str = "sentmon.demo.headlines";
const OUTPUT_TOPIC: &str = "sentmon.demo.enriched";
const DEAD_LETTER_TOPIC: &str = "sentmon.demo.dead-letter";
const ALERTS_TOPIC: &str = "sentmon.demo.alerts";
const PARTITIONS: i32 = 4;

/// The demo compresses production's minutes into seconds so a newcomer sees an alert within a
/// minute: 5 s buckets, a 20 s detection view, a baseline after 4 buckets. The spike (default
/// at 30 s) is in the view from then on, and the baseline is ready at 40 s (a bucket joins it
/// once it has left the view), so the alert fires at about 40-45 s.
const DEMO_BUCKET_SECS: u64 = 5;
const DEMO_VIEW_SECS: u64 = 20;
const DEMO_CONTEXT_VIEW_SECS: u64 = 300;
const DEMO_WARMUP_BUCKETS: u64 = 4;
const DEMO_MIN_VOLUME: u64 = 20;
const DEMO_COOLDOWN_SECS: u64 = 60;
/// The example watchlist, built in so the demo runs from any directory; `--watchlist` replaces it.
const EXAMPLE_WATCHLIST: &str = include_str!("../../examples/watchlist.toml");
/// Examples printed under each alert.
const EXAMPLES_SHOWN: usize = 3;

pub fn run(args: &DemoArgs) -> anyhow::Result<()> {
    anyhow::ensure!(
        args.rate > 0.0 && args.rate.is_finite(),
        "--rate {} must be a positive number of messages per second",
        args.rate
    );
    let (start_after_ms, duration_ms) = ((args.spike_after * 1000) as i64, (args.spike_duration * 1000) as i64);
    let generator =
        StreamGenerator::new(args.seed, SpikePlan { topic: args.spike_topic.clone(), start_after_ms, duration_ms })?
            .with_entity_surge(EntitySurgePlan { company: args.surge_entity.clone(), start_after_ms, duration_ms })?;
    // The config names a watchlist file: the built-in one is written to a temporary file for the demo's lifetime.
    let built_in_watchlist = match &args.watchlist {
        Some(_) => None,
        None => {
            let mut file = tempfile::NamedTempFile::new().context("failed to write the demo's watchlist")?;
            std::io::Write::write_all(&mut file, EXAMPLE_WATCHLIST.as_bytes())
                .context("failed to write the demo's watchlist")?;
            Some(file)
        }
    };
    let watchlist = args.watchlist.clone().or_else(|| built_in_watchlist.as_ref().map(|file| file.path().to_owned()));
    let topics: Vec<String> = [INPUT_TOPIC, OUTPUT_TOPIC, DEAD_LETTER_TOPIC, ALERTS_TOPIC].map(String::from).to_vec();
    let broker = EmbeddedBroker::start(PARTITIONS, &topics)?;
    let config = demo_config(args, broker.bootstrap_servers(), watchlist)?;
    let runtime = app::runtime()?;
    let result = runtime.block_on(run_demo(args, config, broker.bootstrap_servers().to_string(), generator));
    broker.stop();
    result
}

fn demo_config(args: &DemoArgs, bootstrap_servers: &str, watchlist: Option<PathBuf>) -> anyhow::Result<Config> {
    let mut config = Config::default();
    config.kafka.brokers = bootstrap_servers.to_string();
    config.kafka.group_id = "sentmon-demo".to_string();
    config.kafka.input_topics = vec![INPUT_TOPIC.to_string()];
    config.kafka.output_topic = OUTPUT_TOPIC.to_string();
    config.kafka.dead_letter_topic = DEAD_LETTER_TOPIC.to_string();
    config.kafka.alerts_topic = ALERTS_TOPIC.to_string();
    config.model.path = args.model.clone();
    config.http.listen = args.http_listen.clone();
    config.windows.bucket_width_secs = DEMO_BUCKET_SECS;
    config.windows.view_widths_secs = vec![DEMO_VIEW_SECS, DEMO_CONTEXT_VIEW_SECS];
    config.windows.allowed_lateness_secs = 2;
    config.windows.idle_close_delay_secs = DEMO_BUCKET_SECS;
    config.detector.view_width_secs = DEMO_VIEW_SECS;
    config.detector.warmup_buckets = DEMO_WARMUP_BUCKETS;
    config.detector.min_volume = DEMO_MIN_VOLUME;
    config.detector.cooldown_secs = DEMO_COOLDOWN_SECS;
    config.entities.watchlist = watchlist;
    config.validate().map_err(crate::config::ConfigError::Invalid)?;
    Ok(config)
}

async fn run_demo(
    args: &DemoArgs,
    config: Config,
    bootstrap_servers: String,
    generator: StreamGenerator,
) -> anyhow::Result<()> {
    let address = config.http.listen_addr().context("invalid --http-listen")?;
    let listener = TcpListener::bind(address).await.with_context(|| {
        format!("failed to listen on {address} (in use? pass --http-listen 127.0.0.1:0 or another port)")
    })?;
    let http_address = listener.local_addr()?;
    println!("sentmon demo");
    println!(
        "  embedded Kafka broker : {bootstrap_servers}  (topics {INPUT_TOPIC} -> {OUTPUT_TOPIC}, alerts on {ALERTS_TOPIC})"
    );
    println!("  metrics               : http://{http_address}/metrics   (also /healthz, /readyz)");
    println!(
        "  stream                : {} msg/s across 20 topics; negative spike on \"{}\" and a surge of \"{}\" news from {} s for {} s",
        args.rate, args.spike_topic, args.surge_entity, args.spike_after, args.spike_duration
    );
    println!(
        "  stop with Ctrl-C{}",
        args.duration.map(|seconds| format!(" (or after {seconds} s)")).unwrap_or_default()
    );

    let shutdown = CancellationToken::new();
    app::shutdown_on_signals(shutdown.clone())?;
    if let Some(seconds) = args.duration {
        let timer = shutdown.clone();
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_secs(seconds)).await;
            timer.cancel();
        });
    }
    let sink = Arc::new(KafkaSink::new(&bootstrap_servers, std::iter::empty())?);
    let producer_task = tokio::spawn(produce_stream(sink, generator, args.rate, shutdown.clone()));
    let (alerts_sender, alerts) = mpsc::unbounded_channel();
    let printer_task = tokio::spawn(print_alerts(alerts));
    let result = app::run(config, listener, shutdown.clone(), Observers { alerts: Some(alerts_sender) }).await;
    shutdown.cancel();
    let produced = producer_task.await.unwrap_or(0);
    let _ = printer_task.await;
    println!("demo stopped after {produced} generated messages");
    result
}

/// Produces the generated stream on schedule (message i is due at start + i / rate, so the
/// long-run rate is exact whatever each send costs).
async fn produce_stream(
    sink: Arc<KafkaSink>,
    mut generator: StreamGenerator,
    rate: f64,
    stop: CancellationToken,
) -> u64 {
    let started = tokio::time::Instant::now();
    let mut sent = 0u64;
    loop {
        let due = started + Duration::from_secs_f64(sent as f64 / rate);
        tokio::select! {
            () = stop.cancelled() => return sent,
            () = tokio::time::sleep_until(due) => {}
        }
        let elapsed_ms = started.elapsed().as_millis() as i64;
        let message = generator.next_message(elapsed_ms, app::now_ms());
        let sink = Arc::clone(&sink);
        tokio::spawn(async move {
            let payload = message.to_json();
            if let Err(error) = sink.send(INPUT_TOPIC, Some(message.id.as_bytes()), payload.as_bytes(), &[]).await {
                tracing::warn!(%error, "demo producer failed to send a message");
            }
        });
        sent += 1;
    }
}

async fn print_alerts(mut alerts: mpsc::UnboundedReceiver<AlertEvent>) {
    while let Some(alert) = alerts.recv().await {
        match alert.kind {
            AlertKind::Firing => {
                println!("\nALERT    {}", alert.summary());
                for example in alert.examples.iter().take(EXAMPLES_SHOWN) {
                    println!("         {:>4.0}% negative  {}", example.negative_probability * 100.0, example.text);
                }
            }
            AlertKind::Resolved => println!("\nRESOLVED {}", alert.summary()),
        }
    }
}
