//! End-to-end benchmark through the embedded broker (`sentmon broker`, its own process): sentmon
//! against the Python way a team would otherwise write it (`benches/python_way.py`: confluent-kafka
//! and a PyTorch LSTM of the shipped model's size, per-message and batched), on the same messages,
//! topics, partitions and machine, in one run. Without `SENTMON_BENCH_PYTHON` (set by
//! scripts/bench.sh) it measures sentmon alone.
//!
//! For each consumer, in rounds so that background load on a shared machine hits all alike:
//! 1. throughput: a backlog pre-produced once to one input topic; the consumer (a fresh group, its
//!    own output topic) works through it; messages/s between the broker timestamps of the first
//!    and the last output record, so start-up and the group join are not counted;
//! 2. latency: a fresh input topic; warm-up messages until the consumer answers (group joined, model
//!    warm), then a fixed offered rate; produce -> enriched record read back, quantiles;
//! 3. the consumer process's peak RSS (VmHWM) in the throughput run.
//!
//! Medians over the rounds, then the ratios sentmon / Python. Run: `cargo bench --bench pipeline`,
//! or `scripts/bench.sh` for the whole suite. `SENTMON_BENCH_ROUNDS` (default 3) sets the rounds,
//! `SENTMON_BENCH_BACKLOG` (default 30,000) the backlog's messages, `SENTMON_BENCH_LATENCY_RATE`
//! (default 200) the latency runs' offered messages/s and `SENTMON_BENCH_LATENCY_BURST_MS`
//! (default 0: evenly spaced) sends them in bursts of that length. At high rates use bursts: the
//! mock broker finds each fetch's offset by walking every stored batch of the partition, so one
//! message per produce batch makes its fetches slower as the run goes on (benches/soak.rs).

mod common;

use std::collections::HashMap;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use common::{BrokerProcess, ChildProcess, TopicReader};
use rdkafka::message::Message;
use rdkafka::producer::Producer;

/// Long enough that sentmon's run lasts several seconds; the per-message Python consumer takes
/// about two minutes over it.
const DEFAULT_BACKLOG: usize = 30_000;
/// The default offered rate of the latency runs: one rate for every consumer, low enough that the
/// per-message Python consumer keeps up, so the figures compare latency, not queueing.
const DEFAULT_OFFERED_RATE: usize = 200;
const LATENCY_SECONDS: f64 = 20.0;
/// Sent before a latency run and waited for: the first answer proves the group has joined and
/// the model has run once, neither of which is what the latency figures are about.
const WARMUP_MESSAGES: usize = 20;
const DEFAULT_ROUNDS: usize = 3;
/// The batched Python consumer forms batches as sentmon does (64 messages or 20 ms).
const PYTHON_MODES: [Consumer; 2] = [Consumer::PythonPerMessage, Consumer::PythonBatched];

#[derive(Clone, Copy, PartialEq)]
enum Consumer {
    Sentmon,
    PythonPerMessage,
    PythonBatched,
}

impl Consumer {
    fn label(self) -> &'static str {
        match self {
            Consumer::Sentmon => "sentmon (2 workers)",
            Consumer::PythonPerMessage => "Python per-message",
            Consumer::PythonBatched => "Python batched",
        }
    }

    fn slug(self) -> &'static str {
        match self {
            Consumer::Sentmon => "sentmon",
            Consumer::PythonPerMessage => "python-per-message",
            Consumer::PythonBatched => "python-batched",
        }
    }
}

struct Bench {
    brokers: String,
    backlog: usize,
    scratch: tempfile::TempDir,
    python: Option<PathBuf>,
    python_threads: usize,
    texts: Vec<String>,
    /// Messages/s offered in the latency runs, and the bursts they are sent in.
    offered_rate: f64,
    burst: Duration,
}

impl Bench {
    /// Starts `consumer` reading `input` as group `name`, writing `{name}.out`.
    fn start(&self, consumer: Consumer, input: &str, name: &str) -> ChildProcess {
        let python = || self.python.as_deref().expect("Python consumers run only with SENTMON_BENCH_PYTHON");
        match consumer {
            Consumer::Sentmon => common::start_daemon(self.scratch.path(), &self.brokers, input, name).0,
            Consumer::PythonPerMessage => {
                common::start_python(python(), &self.brokers, input, name, "per-message", self.python_threads)
            }
            Consumer::PythonBatched => {
                common::start_python(python(), &self.brokers, input, name, "batched", self.python_threads)
            }
        }
    }
}

/// One consumer's figures, one entry per round.
#[derive(Default)]
struct Figures {
    messages_per_second: Vec<f64>,
    p50_ms: Vec<f64>,
    p99_ms: Vec<f64>,
    peak_rss_mib: Vec<f64>,
}

fn main() {
    if !common::bench_requested() {
        return;
    }
    let python = std::env::var_os(common::PYTHON_ENV).map(PathBuf::from);
    let python_threads: usize = env_or("SENTMON_BENCH_PYTHON_THREADS", 1);
    let rounds: usize = env_or("SENTMON_BENCH_ROUNDS", DEFAULT_ROUNDS);
    let backlog: usize = env_or("SENTMON_BENCH_BACKLOG", DEFAULT_BACKLOG);
    let mut consumers = vec![Consumer::Sentmon];
    if python.is_some() {
        consumers.extend(PYTHON_MODES);
    }
    let mut topics = vec!["backlog.in".to_string()];
    for round in 1..=rounds {
        for consumer in &consumers {
            let name = format!("{}.{round}", consumer.slug());
            topics.extend(common::output_topics(&name));
            topics.push(format!("{name}.latency.in"));
            topics.extend(common::output_topics(&format!("{name}.latency")));
        }
    }
    let broker = BrokerProcess::start(&topics);
    let bench = Bench {
        brokers: broker.bootstrap_servers().to_string(),
        backlog,
        scratch: tempfile::tempdir().unwrap(),
        python,
        python_threads,
        texts: common::texts("topic"),
        offered_rate: env_or("SENTMON_BENCH_LATENCY_RATE", DEFAULT_OFFERED_RATE) as f64,
        burst: Duration::from_millis(env_or("SENTMON_BENCH_LATENCY_BURST_MS", 0) as u64),
    };
    println!(
        "end-to-end bench: {} partitions, `sentmon broker` in its own process, {} distinct texts from {}, \
         backlog {backlog} messages, latency at {:.0} messages/s (bursts of {} ms) for {LATENCY_SECONDS:.0} s, \
         {rounds} rounds",
        common::PARTITIONS,
        bench.texts.len(),
        common::texts_file("topic").display(),
        bench.offered_rate,
        bench.burst.as_millis(),
    );
    match &bench.python {
        Some(python) => println!(
            "Python: {} with torch.set_num_threads({python_threads}), random weights of the shipped model's sizes",
            python.display()
        ),
        None => println!("Python consumers skipped: set {} (scripts/bench.sh does)", common::PYTHON_ENV),
    }

    let producer = common::producer(&bench.brokers);
    for index in 0..backlog {
        let payload = serde_json::json!({"id": index.to_string(), "text": bench.texts[index % bench.texts.len()]});
        common::send(&producer, "backlog.in", &index.to_string(), payload.to_string().as_bytes());
    }
    producer.flush(Duration::from_secs(60)).unwrap();

    let mut figures: HashMap<&str, Figures> = HashMap::new();
    for round in 1..=rounds {
        for &consumer in &consumers {
            let name = format!("{}.{round}", consumer.slug());
            let (rate, peak_rss) = throughput(&bench, consumer, &name);
            let (p50, p99) = latency(&bench, consumer, &name);
            println!(
                "round {round}, {:<20} {rate:>7.0} messages/s, p50 {p50:>4.0} ms, p99 {p99:>5.0} ms, peak RSS {peak_rss:.0} MiB",
                consumer.label()
            );
            let entry = figures.entry(consumer.slug()).or_default();
            entry.messages_per_second.push(rate);
            entry.p50_ms.push(p50);
            entry.p99_ms.push(p99);
            entry.peak_rss_mib.push(peak_rss);
        }
    }
    drop(broker);
    print_table(&consumers, &figures, rounds, bench.offered_rate);
}

/// Messages/s over the backlog, and the consumer's peak RSS.
fn throughput(bench: &Bench, consumer: Consumer, name: &str) -> (f64, f64) {
    let mut process = bench.start(consumer, "backlog.in", name);
    let reader = TopicReader::new(&bench.brokers, &format!("{name}.out"));
    let mut timestamps: HashMap<Vec<u8>, i64> = HashMap::new();
    reader.read(Instant::now() + Duration::from_secs(1800), |message| {
        let timestamp = message.timestamp().to_millis().unwrap_or(0);
        timestamps.entry(message.key().unwrap_or_default().to_vec()).or_insert(timestamp);
        timestamps.len() < bench.backlog
    });
    assert_eq!(timestamps.len(), bench.backlog, "{}: records missing", consumer.label());
    let peak_rss = common::memory_mib(process.id(), "VmHWM");
    process.stop();
    let first = timestamps.values().min().unwrap();
    let last = timestamps.values().max().unwrap();
    (bench.backlog as f64 / (last - first).max(1) as f64 * 1000.0, peak_rss)
}

/// p50 and p99 of produce -> record read back at the offered rate.
fn latency(bench: &Bench, consumer: Consumer, name: &str) -> (f64, f64) {
    let input = format!("{name}.latency.in");
    let latency_name = format!("{name}.latency");
    let _process = bench.start(consumer, &input, &latency_name);
    let reader = TopicReader::new(&bench.brokers, &format!("{latency_name}.out"));
    let producer = common::producer(&bench.brokers);
    common::send_paced(&producer, &input, &bench.texts, f64::INFINITY, 0..WARMUP_MESSAGES, "warmup-", Duration::ZERO);
    let mut warmed_up = 0;
    let answered = reader.read(Instant::now() + Duration::from_secs(120), |message| {
        warmed_up += usize::from(message.key().is_some_and(|key| key.starts_with(b"warmup-")));
        warmed_up < WARMUP_MESSAGES
    });
    assert!(answered, "{}: no answer to the warm-up messages within 120 s", consumer.label());

    let total = (bench.offered_rate * LATENCY_SECONDS) as usize;
    let reading = std::thread::spawn(move || {
        let mut latencies: HashMap<Vec<u8>, i64> = HashMap::new();
        reader.read(Instant::now() + Duration::from_secs(600), |message| {
            let key = message.key().unwrap_or_default();
            if !key.starts_with(b"warmup-") {
                let latency = common::now_ms() - common::sent_ms(message.payload().unwrap_or_default());
                latencies.entry(key.to_vec()).or_insert(latency);
            }
            latencies.len() < total
        });
        latencies
    });
    common::send_paced(&producer, &input, &bench.texts, bench.offered_rate, 0..total, "", bench.burst);
    producer.flush(Duration::from_secs(60)).unwrap();
    let mut latencies: Vec<i64> = reading.join().expect("latency reader").into_values().collect();
    assert_eq!(latencies.len(), total, "{}: records missing", consumer.label());
    latencies.sort_unstable();
    (common::quantile(&latencies, 0.5) as f64, common::quantile(&latencies, 0.99) as f64)
}

fn print_table(consumers: &[Consumer], figures: &HashMap<&str, Figures>, rounds: usize, offered_rate: f64) {
    let median = |consumer: Consumer, pick: fn(&Figures) -> &Vec<f64>| common::median(pick(&figures[consumer.slug()]));
    println!();
    println!("median of {rounds} rounds");
    println!("| consumer | messages/s (backlog) | p50 ms | p99 ms (at {offered_rate:.0}/s) | peak RSS MiB |");
    println!("|---|---|---|---|---|");
    for &consumer in consumers {
        println!(
            "| {} | {:.0} | {:.0} | {:.0} | {:.0} |",
            consumer.label(),
            median(consumer, |f| &f.messages_per_second),
            median(consumer, |f| &f.p50_ms),
            median(consumer, |f| &f.p99_ms),
            median(consumer, |f| &f.peak_rss_mib),
        );
    }
    for (python, target) in [(Consumer::PythonPerMessage, 5.0), (Consumer::PythonBatched, 2.0)] {
        if !consumers.contains(&python) {
            continue;
        }
        let speedup =
            median(Consumer::Sentmon, |f| &f.messages_per_second) / median(python, |f| &f.messages_per_second);
        let p99_ratio = median(Consumer::Sentmon, |f| &f.p99_ms) / median(python, |f| &f.p99_ms);
        println!(
            "sentmon / {}: {speedup:.1}x the messages/s (target >= {target}x: {}); p99 latency {p99_ratio:.2}x \
             (below 1: sentmon's is lower)",
            python.label(),
            if speedup >= target { "met" } else { "NOT met" }
        );
    }
}

fn env_or(name: &str, default: usize) -> usize {
    std::env::var(name)
        .map_or(default, |value| value.parse().unwrap_or_else(|_| panic!("{name}={value:?} is not a whole number")))
}
