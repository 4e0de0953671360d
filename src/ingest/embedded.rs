//! Embedded Kafka-protocol broker: librdkafka's mock cluster on its own thread, for the demo and tests.
//!
//! The mock cluster speaks the real Kafka protocol on a random 127.0.0.1 port, so other processes
//! (the daemon, `sentmon replay`, kcat) reach it like any broker. It keeps data in memory only and
//! holds at most 5 MiB per partition (older messages are dropped silently): a demo and test broker,
//! never a production one.
//!
//! Tests inject faults through the handle ([`EmbeddedBroker::broker_down`],
//! [`EmbeddedBroker::push_request_errors`], ...): each call is forwarded to the thread that owns the
//! cluster and returns once the fault is in effect.

use std::sync::mpsc;
use std::thread::JoinHandle;
use std::time::Duration;

use anyhow::Context;
use rdkafka::ClientConfig;
use rdkafka::mocking::MockCluster;
use rdkafka::producer::{BaseProducer, DefaultProducerContext, Producer};
use rdkafka::types::{RDKafkaApiKey, RDKafkaRespErr};

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

/// How often the host thread serves the owning client's queue (its log lines and errors) between
/// fault commands; nothing else is served there, so the value only bounds log latency.
const CLIENT_POLL_INTERVAL: Duration = Duration::from_millis(200);

/// The mock's broker id that stands for every broker of the cluster.
const ALL_BROKERS: i32 = -1;

/// A fault the host thread applies to the cluster it owns.
#[derive(Debug)]
enum Fault {
    BrokersDown,
    BrokersUp,
    PushRequestErrors { api_key: RDKafkaApiKey, errors: Vec<RDKafkaRespErr> },
    ClearRequestErrors { api_key: RDKafkaApiKey },
}

/// A fault and where to report that it is in effect (or why it could not be applied).
struct FaultCommand {
    fault: Fault,
    applied_sender: mpsc::Sender<anyhow::Result<()>>,
}

/// A running mock cluster. Dropping the handle (or calling [`EmbeddedBroker::stop`]) shuts it down.
///
/// `rdkafka::mocking::MockCluster` is not `Send` and borrows the client that owns it, so both live on
/// a dedicated thread; this handle is `Send` and carries the address and a channel to that thread,
/// whose closing is also the stop signal.
pub struct EmbeddedBroker {
    bootstrap_servers: String,
    command_sender: Option<mpsc::Sender<FaultCommand>>,
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
        let (command_sender, command_receiver) = mpsc::channel::<FaultCommand>();
        let host_thread = std::thread::Builder::new()
            .name("embedded-broker".to_string())
            .spawn(move || host_cluster(partitions, &topics, &ready_sender, &command_receiver))
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
        Ok(EmbeddedBroker { bootstrap_servers, command_sender: Some(command_sender), host_thread: Some(host_thread) })
    }

    /// The `bootstrap.servers` value clients use, e.g. `127.0.0.1:40123`.
    pub fn bootstrap_servers(&self) -> &str {
        &self.bootstrap_servers
    }

    /// Takes every broker down, as when the broker process dies: open connections are closed and
    /// new ones refused until [`EmbeddedBroker::broker_up`]. The data is kept, so clients that
    /// reconnect find every message and committed offset as they were.
    pub fn broker_down(&self) -> anyhow::Result<()> {
        self.apply(Fault::BrokersDown)
    }

    /// Makes every broker accept connections again after [`EmbeddedBroker::broker_down`].
    pub fn broker_up(&self) -> anyhow::Result<()> {
        self.apply(Fault::BrokersUp)
    }

    /// Makes the next `errors.len()` requests of kind `api_key`, from any client, fail with these
    /// error codes in order (one error per request); later requests succeed again. Requests are
    /// counted cluster-wide, so a test's own producer also consumes `Produce` errors.
    ///
    /// Retriable codes (e.g. `RD_KAFKA_RESP_ERR_NOT_ENOUGH_REPLICAS`) are retried inside librdkafka
    /// and only delay delivery; permanent ones (e.g. `RD_KAFKA_RESP_ERR_INVALID_RECORD`)
    /// fail the records of that request back to the application. Avoid
    /// `RD_KAFKA_RESP_ERR_TOPIC_AUTHORIZATION_FAILED` for transient faults: librdkafka then marks the
    /// topic as denied and fails every later send at once until its next metadata refresh.
    pub fn push_request_errors(&self, api_key: RDKafkaApiKey, errors: &[RDKafkaRespErr]) -> anyhow::Result<()> {
        self.apply(Fault::PushRequestErrors { api_key, errors: errors.to_vec() })
    }

    /// Drops the errors still queued by [`EmbeddedBroker::push_request_errors`] for `api_key`, so a
    /// test can hold a fault for a measured time, then end it.
    pub fn clear_request_errors(&self, api_key: RDKafkaApiKey) -> anyhow::Result<()> {
        self.apply(Fault::ClearRequestErrors { api_key })
    }

    /// Sends a fault to the host thread and waits until it is in effect.
    fn apply(&self, fault: Fault) -> anyhow::Result<()> {
        let command_sender = self.command_sender.as_ref().context("the embedded broker is stopped")?;
        let (applied_sender, applied_receiver) = mpsc::channel();
        let description = format!("{fault:?}");
        command_sender
            .send(FaultCommand { fault, applied_sender })
            .map_err(|_| anyhow::anyhow!("the embedded broker thread has ended; cannot apply {description}"))?;
        applied_receiver
            .recv()
            .map_err(|_| anyhow::anyhow!("the embedded broker thread ended while applying {description}"))?
    }

    /// Stops the cluster and waits for its thread; clients still connected see the broker go away.
    pub fn stop(mut self) {
        self.shut_down();
    }

    fn shut_down(&mut self) {
        // Closing the channel wakes the host thread's `recv` and tells it to stop.
        self.command_sender.take();
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

/// Body of the host thread: owns the client and its mock cluster, and applies faults, until the
/// command channel closes.
fn host_cluster(
    partitions: i32,
    topics: &[String],
    ready_sender: &mpsc::Sender<anyhow::Result<String>>,
    command_receiver: &mpsc::Receiver<FaultCommand>,
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
    let Some(cluster) = owner.client().mock_cluster() else {
        // configure_cluster has already found the cluster; this cannot happen.
        tracing::error!("the embedded broker's client lost its mock cluster; faults cannot be injected");
        return;
    };
    loop {
        match command_receiver.recv_timeout(CLIENT_POLL_INTERVAL) {
            Ok(FaultCommand { fault, applied_sender }) => {
                tracing::debug!(?fault, "embedded broker: injecting a fault");
                let _ = applied_sender.send(apply_fault(&cluster, fault));
            }
            Err(mpsc::RecvTimeoutError::Timeout) => {}
            Err(mpsc::RecvTimeoutError::Disconnected) => break,
        }
        owner.poll(Duration::ZERO);
    }
    tracing::debug!("embedded broker stopped");
}

/// Applies one fault through rust-rdkafka's safe mock API, which wraps every call used here.
fn apply_fault(cluster: &MockCluster<'_, DefaultProducerContext>, fault: Fault) -> anyhow::Result<()> {
    match fault {
        Fault::BrokersDown => cluster.broker_down(ALL_BROKERS).context("failed to take the brokers down")?,
        Fault::BrokersUp => cluster.broker_up(ALL_BROKERS).context("failed to bring the brokers up")?,
        Fault::PushRequestErrors { api_key, errors } => cluster.request_errors(api_key, &errors),
        Fault::ClearRequestErrors { api_key } => cluster.clear_request_errors(api_key),
    }
    Ok(())
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
    fn a_broker_taken_down_refuses_clients_until_it_is_brought_up() {
        const DOWN_CHECK_TIMEOUT: Duration = Duration::from_secs(2);
        let broker = EmbeddedBroker::start(1, &["news".to_string()]).expect("broker starts");
        let consumer: BaseConsumer =
            ClientConfig::new().set("bootstrap.servers", broker.bootstrap_servers()).create().expect("consumer");
        broker.broker_down().expect("brokers go down");
        assert!(consumer.fetch_metadata(Some("news"), DOWN_CHECK_TIMEOUT).is_err(), "a down broker answers");
        broker.broker_up().expect("brokers come up");
        assert!(consumer.fetch_metadata(Some("news"), METADATA_TIMEOUT).is_ok(), "the broker is back");
    }

    #[test]
    fn pushed_produce_errors_fail_that_many_requests_then_stop() {
        use rdkafka::error::{KafkaError, RDKafkaErrorCode};
        use rdkafka::producer::{BaseRecord, ThreadedProducer};
        use rdkafka::types::RDKafkaRespErr::RD_KAFKA_RESP_ERR_INVALID_RECORD;

        let broker = EmbeddedBroker::start(1, &["news".to_string()]).expect("broker starts");
        let delivery_results = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        struct RecordResults(std::sync::Arc<std::sync::Mutex<Vec<Result<(), KafkaError>>>>);
        impl rdkafka::ClientContext for RecordResults {}
        impl rdkafka::producer::ProducerContext for RecordResults {
            type DeliveryOpaque = ();
            fn delivery(&self, result: &rdkafka::message::DeliveryResult<'_>, _: ()) {
                self.0.lock().unwrap().push(result.as_ref().map(|_| ()).map_err(|(error, _)| error.clone()));
            }
        }
        let producer: ThreadedProducer<RecordResults> = ClientConfig::new()
            .set("bootstrap.servers", broker.bootstrap_servers())
            .create_with_context(RecordResults(std::sync::Arc::clone(&delivery_results)))
            .expect("producer");
        broker
            .push_request_errors(RDKafkaApiKey::Produce, &[RD_KAFKA_RESP_ERR_INVALID_RECORD])
            .expect("errors are pushed");
        for _ in 0..2 {
            producer.send(BaseRecord::<(), str>::to("news").payload("headline")).expect("queued");
            producer.flush(METADATA_TIMEOUT).expect("flushed");
        }
        let results = delivery_results.lock().unwrap().clone();
        assert_eq!(
            results,
            vec![Err(KafkaError::MessageProduction(RDKafkaErrorCode::InvalidRecord)), Ok(())],
            "the first request fails with the pushed error, the second succeeds"
        );
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
