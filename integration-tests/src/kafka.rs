//! Looking at Kafka directly (rdkafka): create topics, write records, read a topic from the beginning, count
//! records.

use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use rdkafka::ClientConfig;
use rdkafka::Message;
use rdkafka::Offset;
use rdkafka::TopicPartitionList;
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, ResourceSpecifier, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::Headers;
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::types::RDKafkaErrorCode;

const TIMEOUT: Duration = Duration::from_secs(30);

/// Creates `topic` with `partitions` partitions (replication 1); an existing topic is fine.
pub async fn create_topic(bootstrap: &str, topic: &str, partitions: i32) -> anyhow::Result<()> {
    let admin: AdminClient<DefaultClientContext> = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .create()
        .context("cannot create a Kafka admin client")?;
    let new = NewTopic::new(topic, partitions, TopicReplication::Fixed(1));
    let options = AdminOptions::new().operation_timeout(Some(TIMEOUT));
    let results = admin.create_topics([&new], &options).await.context("CreateTopics failed")?;
    for result in results {
        match result {
            Ok(_) | Err((_, RDKafkaErrorCode::TopicAlreadyExists)) => {}
            Err((name, code)) => bail!("cannot create topic {name}: {code}"),
        }
    }
    // Wait until the topic's metadata is visible, so producers and consumers see it at once.
    let topic = topic.to_string();
    let bootstrap = bootstrap.to_string();
    tokio::task::spawn_blocking(move || partitions_of(&consumer(&bootstrap)?, &topic).map(|_| ())).await?
}

fn consumer(bootstrap: &str) -> anyhow::Result<BaseConsumer> {
    ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("group.id", "sluice-integration-tests-reader")
        .set("enable.auto.commit", "false")
        .set("enable.partition.eof", "false")
        .create()
        .context("cannot create a Kafka consumer")
}

fn partitions_of(consumer: &BaseConsumer, topic: &str) -> anyhow::Result<Vec<i32>> {
    let start = Instant::now();
    loop {
        let metadata = consumer.fetch_metadata(Some(topic), Duration::from_secs(5));
        if let Ok(metadata) = &metadata
            && let Some(t) = metadata.topics().iter().find(|t| t.name() == topic)
            && t.error().is_none()
            && !t.partitions().is_empty()
        {
            return Ok(t.partitions().iter().map(|p| p.id()).collect());
        }
        if start.elapsed() > TIMEOUT {
            bail!("topic {topic} has no metadata after {TIMEOUT:?}: {:?}", metadata.err());
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// The partition ids of `topic` (waits until its metadata is visible).
pub async fn topic_partitions(bootstrap: &str, topic: &str) -> anyhow::Result<Vec<i32>> {
    let (bootstrap, topic) = (bootstrap.to_string(), topic.to_string());
    tokio::task::spawn_blocking(move || partitions_of(&consumer(&bootstrap)?, &topic)).await?
}

/// The current value of the topic config `key` of `topic` (DescribeConfigs), e.g. `cleanup.policy`.
pub async fn topic_config(bootstrap: &str, topic: &str, key: &str) -> anyhow::Result<Option<String>> {
    let admin: AdminClient<DefaultClientContext> = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .create()
        .context("cannot create a Kafka admin client")?;
    let options = AdminOptions::new().request_timeout(Some(TIMEOUT));
    let results =
        admin.describe_configs([&ResourceSpecifier::Topic(topic)], &options).await.context("DescribeConfigs failed")?;
    let Some(result) = results.into_iter().next() else { bail!("DescribeConfigs returned nothing for {topic}") };
    let resource = result.map_err(|code| anyhow::anyhow!("cannot describe the configs of {topic}: {code}"))?;
    Ok(resource.get(key).and_then(|entry| entry.value.clone()))
}

/// Whether `topic` exists (metadata lists it without error).
pub async fn topic_exists(bootstrap: &str, topic: &str) -> anyhow::Result<bool> {
    let (bootstrap, topic) = (bootstrap.to_string(), topic.to_string());
    tokio::task::spawn_blocking(move || {
        let metadata = consumer(&bootstrap)?.fetch_metadata(Some(&topic), Duration::from_secs(5))?;
        Ok(metadata.topics().iter().any(|t| t.name() == topic && t.error().is_none() && !t.partitions().is_empty()))
    })
    .await?
}

/// Number of records in `topic` (sum over partitions of high - low watermark).
pub async fn count_records(bootstrap: &str, topic: &str) -> anyhow::Result<i64> {
    let (bootstrap, topic) = (bootstrap.to_string(), topic.to_string());
    tokio::task::spawn_blocking(move || {
        let consumer = consumer(&bootstrap)?;
        let mut total = 0;
        for partition in partitions_of(&consumer, &topic)? {
            let (low, high) = consumer.fetch_watermarks(&topic, partition, TIMEOUT)?;
            total += high - low;
        }
        Ok(total)
    })
    .await?
}

/// Writes `values` to partition 0 of `topic` in order (no key) and waits for every acknowledgement.
pub async fn produce(bootstrap: &str, topic: &str, values: &[&[u8]]) -> anyhow::Result<()> {
    let producer: FutureProducer = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("acks", "all")
        .create()
        .context("cannot create a Kafka producer")?;
    for value in values {
        producer
            .send(FutureRecord::<(), [u8]>::to(topic).partition(0).payload(value), TIMEOUT)
            .await
            .map_err(|(e, _)| anyhow::anyhow!("producing to {topic}: {e}"))?;
    }
    Ok(())
}

/// A record as read back: value as text and headers (values as text).
#[derive(Debug, Clone)]
pub struct ReadRecord {
    pub value: String,
    pub headers: Vec<(String, String)>,
}

impl ReadRecord {
    /// The value of the first header named `key`.
    pub fn header(&self, key: &str) -> Option<&str> {
        self.headers.iter().find(|(k, _)| k == key).map(|(_, v)| v.as_str())
    }
}

/// Every record value in `topic` as a string (partition by partition, in offset order), read from the beginning
/// up to the high watermarks at the time of the call.
pub async fn read_topic(bootstrap: &str, topic: &str) -> anyhow::Result<Vec<String>> {
    Ok(read_records(bootstrap, topic).await?.into_iter().map(|r| r.value).collect())
}

/// Every record in `topic` with its headers (partition by partition, in offset order), read from the beginning
/// up to the high watermarks at the time of the call.
pub async fn read_records(bootstrap: &str, topic: &str) -> anyhow::Result<Vec<ReadRecord>> {
    Ok(read_keyed(bootstrap, topic)
        .await?
        .into_iter()
        .map(|r| ReadRecord { value: r.value.unwrap_or_default(), headers: r.headers })
        .collect())
}

/// A record read back with its key (text; `None` for a null key or value, so tombstones show) and headers.
#[derive(Debug, Clone)]
pub struct KeyedRecord {
    pub key: Option<String>,
    pub value: Option<String>,
    pub headers: Vec<(String, String)>,
}

/// Every record of `topic` with key and headers (partition by partition, in offset order), read from the beginning
/// up to the high watermarks at the time of the call (empty if the topic does not exist).
pub async fn read_keyed(bootstrap: &str, topic: &str) -> anyhow::Result<Vec<KeyedRecord>> {
    let (bootstrap, topic) = (bootstrap.to_string(), topic.to_string());
    tokio::task::spawn_blocking(move || {
        let consumer = consumer(&bootstrap)?;
        let mut records = Vec::new();
        // One metadata request, no waiting: a topic that does not exist (yet) has no records.
        let metadata = consumer.fetch_metadata(Some(&topic), Duration::from_secs(5))?;
        let partitions: Vec<i32> = metadata
            .topics()
            .iter()
            .filter(|t| t.name() == topic && t.error().is_none())
            .flat_map(|t| t.partitions().iter().map(|p| p.id()))
            .collect();
        for partition in partitions {
            let (low, high) = consumer.fetch_watermarks(&topic, partition, TIMEOUT)?;
            if high <= low {
                continue;
            }
            let mut assignment = TopicPartitionList::new();
            assignment.add_partition_offset(&topic, partition, Offset::Offset(low))?;
            consumer.assign(&assignment)?;
            let start = Instant::now();
            let mut next = low;
            while next < high {
                if start.elapsed() > TIMEOUT {
                    bail!(
                        "read only up to offset {next} of {topic}-{partition} (high watermark {high}) in {TIMEOUT:?}"
                    );
                }
                match consumer.poll(Duration::from_millis(500)) {
                    Some(Ok(message)) => {
                        next = message.offset() + 1;
                        let text = |bytes: Option<&[u8]>| bytes.map(|p| String::from_utf8_lossy(p).into_owned());
                        let headers = message
                            .headers()
                            .map(|h| h.iter().map(|h| (h.key.to_string(), text(h.value).unwrap_or_default())).collect())
                            .unwrap_or_default();
                        records.push(KeyedRecord { key: text(message.key()), value: text(message.payload()), headers });
                    }
                    Some(Err(e)) => bail!("reading {topic}-{partition}: {e}"),
                    None => {}
                }
            }
        }
        Ok(records)
    })
    .await?
}

/// Every (key, value) of every partition of `topic`, from the beginning up to the high watermarks at the time of the
/// call, with `isolation.level=isolation`. Ends when the consumer's position reaches the high watermark (positions
/// move past transaction markers and aborted records too).
pub async fn read_transactional(
    bootstrap: &str,
    topic: &str,
    isolation: &str,
) -> anyhow::Result<Vec<(String, String)>> {
    let (bootstrap, topic, isolation) = (bootstrap.to_string(), topic.to_string(), isolation.to_string());
    tokio::task::spawn_blocking(move || {
        let consumer: BaseConsumer = ClientConfig::new()
            .set("bootstrap.servers", &bootstrap)
            .set("group.id", "sluice-integration-tests-eos-reader")
            .set("enable.auto.commit", "false")
            .set("isolation.level", &isolation)
            .create()
            .context("cannot create a Kafka consumer")?;
        let partitions = partitions_of(&consumer, &topic)?;
        let mut out = Vec::new();
        let text = |bytes: Option<&[u8]>| bytes.map(|b| String::from_utf8_lossy(b).into_owned()).unwrap_or_default();
        for partition in partitions {
            let (low, high) = consumer.fetch_watermarks(&topic, partition, Duration::from_secs(10))?;
            if high <= low {
                continue;
            }
            let mut assignment = TopicPartitionList::new();
            assignment.add_partition_offset(&topic, partition, Offset::Offset(low))?;
            consumer.assign(&assignment)?;
            let start = Instant::now();
            loop {
                let position = consumer.position()?;
                if let Some(Offset::Offset(at)) = position.find_partition(&topic, partition).map(|p| p.offset())
                    && at >= high
                {
                    break;
                }
                if start.elapsed() > Duration::from_secs(60) {
                    bail!("{isolation}: {topic}-{partition} not read up to {high} in 60 s");
                }
                match consumer.poll(Duration::from_millis(200)) {
                    Some(Ok(message)) => out.push((text(message.key()), text(message.payload()))),
                    Some(Err(e)) => bail!("reading {topic}-{partition}: {e}"),
                    None => {}
                }
            }
        }
        Ok(out)
    })
    .await?
}
