//! Embedded Kafka-protocol broker: librdkafka's mock cluster on its own thread, for the demo and tests.
//!
//! The mock cluster speaks the real Kafka protocol on a random 127.0.0.1 port, so other processes
//! (the daemon, `sentmon replay`, kcat) reach it like any broker. It keeps data in memory only and
//! holds at most 5 MiB per partition (older messages are dropped silently): a demo and test broker,
//! never a production one.

use std::sync::mpsc;
use std::thread::JoinHandle;
use std::time::Duration;

use anyhow::Context;
use rdkafka::ClientConfig;
use rdkafka::producer::{BaseProducer, DefaultProducerContext, Producer};

/// Partitions librdkafka's mock gives a topic it creates on first use (`defaults.partition_cnt` in
/// rdkafka_mock.c). The mock has no setting or call that changes it, so only topics created up
/// front by [`EmbeddedBroker::start`] get the requested count.
pub const AUTO_CREATED_TOPIC_PARTITIONS: i32 = 4;

/// One broker is enough: the mock keeps everything in one process, so more brokers add no
/// durability, only leader elections that slow tests down.
const BROKER_COUNT: &str = "1";

/// With one broker every partition has exactly one replica.
const REPLICATION_FACTOR: i32 = 1;

/// The mock waits this long (3 s by default) after a group's first member joins before assigning
/// partitions, as real Kafka's `group.initial.rebalance.delay.ms` does to gather members. Tests and
/// the demo start one member at a time, so the wait only delays the first message.
const GROUP_INITIAL_REBALANCE_DELAY_MS: i32 = 0;

/// How often the host thread serves the owning client's queue (its log lines and errors) while it
/// waits to be stopped; nothing else is served there, so the value only bounds log latency.
const CLIENT_POLL_INTERVAL: Duration = Duration::from_millis(200);

/// A running mock cluster. Dropping the handle (or calling [`EmbeddedBroker::stop`]) shuts it down.
///
/// `rdkafka::mocking::MockCluster` is not `Send` and borrows the client that owns it, so both live on
/// a dedicated thread; this handle is `Send` and only carries the address and the stop signal.
pub struct EmbeddedBroker {
    bootstrap_servers: String,
    stop_sender: Option<mpsc::Sender<()>>,
    host_thread: Option<JoinHandle<()>>,
}

impl EmbeddedBroker {
    /// Starts a one-broker mock cluster and creates `topics` with `partitions` partitions each.
    /// Topics that are not listed are created on first use with [`AUTO_CREATED_TOPIC_PARTITIONS`].
    pub fn start(partitions: i32, topics: &[String]) -> anyhow::Result<EmbeddedBroker> {
        anyhow::ensure!(
            partitions >= 1,
            "invalid partition count {partitions}: a topic needs at least 1 partition (e.g. --partitions 4)"
        );
        if let Some(empty_index) = topics.iter().position(|topic| topic.trim().is_empty()) {
            anyhow::bail!("topic number {} to create is empty: give each topic a name", empty_index + 1);
        }
        let topics = topics.to_vec();
        let (ready_sender, ready_receiver) = mpsc::channel::<anyhow::Result<String>>();
        let (stop_sender, stop_receiver) = mpsc::channel::<()>();
        let host_thread = std::thread::Builder::new()
            .name("embedded-broker".to_string())
            .spawn(move || host_cluster(partitions, &topics, &ready_sender, &stop_receiver))
            .context("failed to start the embedded broker thread")?;
        let bootstrap_servers = match ready_receiver.recv() {
            Ok(Ok(bootstrap_servers)) => bootstrap_servers,
            Ok(Err(error)) => {
                let _ = host_thread.join();
                return Err(error);
            }
            Err(_) => {
                let _ = host_thread.join();
                anyhow::bail!("the embedded broker thread ended before reporting its address (it panicked; see above)");
            }
        };
        Ok(EmbeddedBroker { bootstrap_servers, stop_sender: Some(stop_sender), host_thread: Some(host_thread) })
    }

    /// The `bootstrap.servers` value clients use, e.g. `127.0.0.1:40123`.
    pub fn bootstrap_servers(&self) -> &str {
        &self.bootstrap_servers
    }

    /// Stops the cluster and waits for its thread; clients still connected see the broker go away.
    pub fn stop(mut self) {
        self.shut_down();
    }

    fn shut_down(&mut self) {
        // Dropping the sender wakes the host thread's `recv` as well as sending would.
        self.stop_sender.take();
        let Some(host_thread) = self.host_thread.take() else {
            return;
        };
        if host_thread.join().is_err() {
            tracing::error!("embedded broker thread panicked while shutting down");
        }
    }
}

impl Drop for EmbeddedBroker {
    fn drop(&mut self) {
        self.shut_down();
    }
}

/// Body of the host thread: owns the client and its mock cluster until the stop signal arrives.
fn host_cluster(
    partitions: i32,
    topics: &[String],
    ready_sender: &mpsc::Sender<anyhow::Result<String>>,
    stop_receiver: &mpsc::Receiver<()>,
) {
    // The cluster is created by a client configured with `test.mock.num.brokers` rather than by
    // `MockCluster::new`, because only this way is the raw cluster pointer reachable (through the
    // client) for the settings rust-rdkafka does not wrap. The client owns the cluster and destroys
    // it when dropped.
    let owner_result: Result<BaseProducer<DefaultProducerContext>, _> =
        ClientConfig::new().set("test.mock.num.brokers", BROKER_COUNT).create();
    let owner = match owner_result {
        Ok(owner) => owner,
        Err(error) => {
            let _ = ready_sender.send(Err(anyhow::Error::new(error).context("failed to create the embedded broker")));
            return;
        }
    };
    let bootstrap_servers = match configure_cluster(&owner, partitions, topics) {
        Ok(bootstrap_servers) => bootstrap_servers,
        Err(error) => {
            let _ = ready_sender.send(Err(error));
            return;
        }
    };
    tracing::debug!(%bootstrap_servers, partitions, ?topics, "embedded broker started");
    if ready_sender.send(Ok(bootstrap_servers)).is_err() {
        return;
    }
    while let Err(mpsc::RecvTimeoutError::Timeout) = stop_receiver.recv_timeout(CLIENT_POLL_INTERVAL) {
        owner.poll(Duration::ZERO);
    }
    tracing::debug!("embedded broker stopped");
}

/// Creates the requested topics, removes the group join delay and returns the bootstrap address.
fn configure_cluster(
    owner: &BaseProducer<DefaultProducerContext>,
    partitions: i32,
    topics: &[String],
) -> anyhow::Result<String> {
    let cluster = owner
        .client()
        .mock_cluster()
        .context("librdkafka did not create a mock cluster for a client with test.mock.num.brokers set")?;
    for topic in topics {
        cluster
            .create_topic(topic, partitions, REPLICATION_FACTOR)
            .with_context(|| format!("failed to create topic {topic:?} with {partitions} partitions"))?;
    }
    // SAFETY: the pointer comes from a live client that owns the cluster and outlives this call;
    // the setter takes the cluster's own lock, so calling it from this thread is safe.
    unsafe {
        let cluster_pointer = rdkafka::bindings::rd_kafka_handle_mock_cluster(owner.client().native_ptr());
        anyhow::ensure!(!cluster_pointer.is_null(), "the embedded broker's client has no mock cluster");
        rdkafka::bindings::rd_kafka_mock_group_initial_rebalance_delay_ms(
            cluster_pointer,
            GROUP_INITIAL_REBALANCE_DELAY_MS,
        );
    }
    Ok(cluster.bootstrap_servers())
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use rdkafka::ClientConfig;
    use rdkafka::consumer::{BaseConsumer, Consumer};

    use super::*;

    const METADATA_TIMEOUT: Duration = Duration::from_secs(10);

    fn partition_count(bootstrap_servers: &str, topic: &str) -> usize {
        let consumer: BaseConsumer = ClientConfig::new()
            .set("bootstrap.servers", bootstrap_servers)
            // Consumers do not create topics by asking about them unless told to; producers do.
            .set("allow.auto.create.topics", "true")
            .create()
            .expect("consumer is created");
        let metadata = consumer.fetch_metadata(Some(topic), METADATA_TIMEOUT).expect("metadata arrives");
        metadata.topics()[0].partitions().len()
    }

    #[test]
    fn creates_listed_topics_with_the_requested_partitions_and_auto_creates_others() {
        let broker = EmbeddedBroker::start(3, &["news".to_string(), "comments".to_string()]).expect("broker starts");
        assert!(broker.bootstrap_servers().starts_with("127.0.0.1:"), "{}", broker.bootstrap_servers());
        assert_eq!(partition_count(broker.bootstrap_servers(), "news"), 3);
        assert_eq!(partition_count(broker.bootstrap_servers(), "comments"), 3);
        assert_eq!(partition_count(broker.bootstrap_servers(), "not-listed"), AUTO_CREATED_TOPIC_PARTITIONS as usize);
        broker.stop();
    }

    #[test]
    fn a_consumer_group_gets_its_partitions_without_the_initial_rebalance_delay() {
        // The mock's default delay is 3 s; with it removed the first assignment takes well under that.
        const FIRST_ASSIGNMENT_LIMIT: Duration = Duration::from_millis(2_500);
        let broker = EmbeddedBroker::start(2, &["news".to_string()]).expect("broker starts");
        let consumer: BaseConsumer = ClientConfig::new()
            .set("bootstrap.servers", broker.bootstrap_servers())
            .set("group.id", "rebalance-delay-test")
            .create()
            .expect("consumer is created");
        consumer.subscribe(&["news"]).expect("subscription starts");
        let started_at = std::time::Instant::now();
        while consumer.assignment().expect("assignment is readable").count() == 0 {
            assert!(started_at.elapsed() < FIRST_ASSIGNMENT_LIMIT, "no assignment after {FIRST_ASSIGNMENT_LIMIT:?}");
            let _ = consumer.poll(Duration::from_millis(50));
        }
    }

    #[test]
    fn rejects_a_partition_count_below_one() {
        let error = EmbeddedBroker::start(0, &[]).err().expect("0 partitions is rejected");
        assert!(error.to_string().contains("invalid partition count 0"), "{error}");
    }

    #[test]
    fn handle_is_send_so_async_code_can_own_it() {
        fn assert_send<T: Send>() {}
        assert_send::<EmbeddedBroker>();
    }
}
