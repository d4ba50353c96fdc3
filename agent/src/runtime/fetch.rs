//! The sink's consumer thread: receives from the task's Kafka consumer on an OS thread of its own and hands batches
//! of records to the sink loop through a bounded channel (a few batches: enough for the sink loop to merge the
//! waiting ones into one larger `put` when it falls behind).
//!
//! Two reasons for a thread: the sink loop (convert, transform, `put`) and the consumer (librdkafka's queue, copying
//! records out) then run on two cores at once; and one channel message per batch replaces one async wake-up, timer
//! and queue lock per record. The channel's bound is the backpressure: when the sink is slow the thread waits on
//! `send`, stops polling, and librdkafka stops fetching once its prefetch queue is full (as Kafka Connect's consumer
//! does when `put` is slow). Receiving also serves the group's rebalance callbacks, so it never stops for long.
//!
//! The thread waits for records with `StreamConsumer::recv` on a minimal executor (woken by librdkafka's queue
//! callback), not with a blocking `poll(timeout)`: rdkafka rounds the last fraction of a millisecond of a poll
//! timeout down to a non-blocking poll and spins there, about 1% of a core per idle consumer.
//!
//! Records are copied out of librdkafka's buffers into one arena per batch: a few allocations per batch instead of
//! several per record, and the buffers go back to librdkafka at once. The thread reads through one message stream
//! for its whole life (`StreamConsumer::recv` registers and unregisters a waker slot, two lock round trips, per
//! message), and each batch's topic names are shared by its records (`SinkRecord::topic`).

use std::ops::Range;
use std::sync::Arc;
use std::thread::JoinHandle;

use futures::{FutureExt, StreamExt};
use rdkafka::consumer::{Consumer, ConsumerContext, StreamConsumer};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::{BorrowedMessage, Headers, Message};
use tokio::sync::mpsc;
use tracing::warn;

use super::errors::{ConsumedRecord, Stage};
use sluice_connectors::{ConnectError, SinkRecord};

/// What the consumer thread hands the sink loop: a batch, or the fatal error that ended the consumer (the thread
/// ends after it; the task must fail, not wait for records that will never come).
pub(crate) type Fetched = Result<Polled, KafkaError>;

/// A consumed record converted to Connect data, or the stage that failed and why.
pub(crate) type Converted = Result<SinkRecord, (Stage, ConnectError)>;

/// Converts a consumed record (key, value and headers) whose topic name is `topic`; run by the consumer thread.
pub(crate) type Convert = Arc<dyn Fn(&ConsumedRecord<'_>, &Arc<str>) -> Converted + Send + Sync>;

/// A batch as the consumer thread converted it: the records that converted, in order, and the ones that did not.
#[derive(Default)]
pub(crate) struct ConvertedBatch {
    pub records: Vec<SinkRecord>,
    /// By batch index, ascending; every index of the batch is in `records` or here, once.
    pub failures: Vec<(usize, (Stage, ConnectError))>,
}

/// Records polled in one go, in consumption order, with their bytes in one arena.
#[derive(Default)]
pub(crate) struct Polled {
    /// Set once the consumer thread converted the batch; taken by the sink loop.
    converted: Option<ConvertedBatch>,
    arena: Vec<u8>,
    /// Header keys of all records, concatenated (`PolledHeader::key` ranges into it).
    header_keys: String,
    records: Vec<PolledRecord>,
    headers: Vec<PolledHeader>,
    /// The distinct topics of the batch (usually one); `PolledRecord::topic` indexes it.
    topics: Vec<Arc<str>>,
}

struct PolledRecord {
    topic: usize,
    partition: i32,
    offset: i64,
    timestamp: Option<i64>,
    key: Option<Range<usize>>,
    value: Option<Range<usize>>,
    headers: Range<usize>,
}

struct PolledHeader {
    key: Range<usize>,
    value: Option<Range<usize>>,
}

impl Polled {
    fn with_capacity(records: usize, bytes: usize) -> Self {
        Polled { arena: Vec::with_capacity(bytes), records: Vec::with_capacity(records), ..Default::default() }
    }

    pub fn len(&self) -> usize {
        self.records.len()
    }

    pub fn is_empty(&self) -> bool {
        self.records.is_empty()
    }

    fn copy(&mut self, bytes: &[u8]) -> Range<usize> {
        let start = self.arena.len();
        self.arena.extend_from_slice(bytes);
        start..self.arena.len()
    }

    fn push(&mut self, message: &BorrowedMessage<'_>) {
        let topic = match self.topics.iter().position(|t| **t == *message.topic()) {
            Some(index) => index,
            None => {
                self.topics.push(Arc::from(message.topic()));
                self.topics.len() - 1
            }
        };
        let key = message.key().map(|k| self.copy(k));
        let value = message.payload().map(|v| self.copy(v));
        let first_header = self.headers.len();
        if let Some(headers) = message.headers() {
            for header in headers.iter() {
                let start = self.header_keys.len();
                self.header_keys.push_str(header.key);
                let key = start..self.header_keys.len();
                let value = header.value.map(|v| self.copy(v));
                self.headers.push(PolledHeader { key, value });
            }
        }
        self.records.push(PolledRecord {
            topic,
            partition: message.partition(),
            offset: message.offset(),
            timestamp: message.timestamp().to_millis(),
            key,
            value,
            headers: first_header..self.headers.len(),
        });
    }

    /// Record `index` as consumed (`index < len()`).
    pub fn record(&self, index: usize) -> ConsumedRecord<'_> {
        let r = &self.records[index];
        let bytes = |range: &Option<Range<usize>>| range.clone().map(|range| &self.arena[range]);
        ConsumedRecord {
            topic: &self.topics[r.topic],
            partition: r.partition,
            offset: r.offset,
            timestamp: r.timestamp,
            key: bytes(&r.key),
            value: bytes(&r.value),
            // Most records have no headers: no trip through `collect` for them (1% of a JDBC sink's profile).
            headers: if r.headers.is_empty() {
                Vec::new()
            } else {
                self.headers[r.headers.clone()]
                    .iter()
                    .map(|h| (&self.header_keys[h.key.clone()], bytes(&h.value)))
                    .collect()
            },
        }
    }

    /// The shared topic name of record `index` (`index < len()`).
    pub fn topic(&self, index: usize) -> &Arc<str> {
        &self.topics[self.records[index].topic]
    }

    /// Converts every record of the batch with `convert`.
    fn convert(&mut self, convert: &Convert) {
        let mut converted = ConvertedBatch { records: Vec::with_capacity(self.len()), failures: Vec::new() };
        for index in 0..self.len() {
            match convert(&self.record(index), self.topic(index)) {
                Ok(record) => converted.records.push(record),
                Err(failure) => converted.failures.push((index, failure)),
            }
        }
        self.converted = Some(converted);
    }

    /// The records as the consumer thread converted them (`None` if it did not).
    pub fn take_converted(&mut self) -> Option<ConvertedBatch> {
        self.converted.take()
    }

    /// The next offset to consume per topic and partition after this batch.
    pub fn next_offsets(&self) -> impl Iterator<Item = (&str, i32, i64)> {
        let mut next: Vec<(usize, i32, i64)> = Vec::new();
        for r in &self.records {
            match next.iter_mut().find(|(t, p, _)| *t == r.topic && *p == r.partition) {
                Some(entry) => entry.2 = entry.2.max(r.offset + 1),
                None => next.push((r.topic, r.partition, r.offset + 1)),
            }
        }
        next.into_iter().map(|(t, p, o)| (&*self.topics[t], p, o))
    }
}

/// The running consumer thread. It ends when the batch receiver is dropped; `stop` waits for that.
pub(crate) struct Fetcher {
    thread: Option<JoinHandle<()>>,
}

impl Fetcher {
    /// Starts polling `consumer` (already subscribed); batches of at most `max_batch` records, at most `waiting`
    /// of them waiting for the sink loop (besides the one it works on and the one the thread fills).
    ///
    /// The thread also converts each batch with `convert` before handing it over, so that converting (parsing JSON,
    /// mostly) runs on its core while the sink loop waits for `put`.
    pub fn spawn<C: ConsumerContext + 'static>(
        consumer: Arc<StreamConsumer<C>>,
        max_batch: usize,
        waiting: usize,
        convert: Convert,
        name: String,
    ) -> std::io::Result<(Fetcher, mpsc::Receiver<Fetched>)> {
        let (tx, rx) = mpsc::channel(waiting.max(1));
        let span = tracing::Span::current();
        let thread = std::thread::Builder::new().name(name).spawn(move || {
            let _entered = span.enter();
            futures::executor::block_on(fetch_loop(&consumer, &tx, max_batch, &convert));
        })?;
        Ok((Fetcher { thread: Some(thread) }, rx))
    }

    /// Waits for the thread to end; call after dropping the batch receiver.
    pub fn stop(mut self) {
        if let Some(thread) = self.thread.take()
            && thread.join().is_err()
        {
            warn!("the sink's consumer thread panicked");
        }
    }
}

async fn fetch_loop<C: ConsumerContext + 'static>(
    consumer: &StreamConsumer<C>,
    tx: &mpsc::Sender<Fetched>,
    max_batch: usize,
    convert: &Convert,
) {
    let mut expected_bytes = 0;
    // One stream for the thread's life: `recv` would register and drop a waker slot (two locks) per message.
    let mut messages = consumer.stream();
    loop {
        // Wait for the first record only; then take what is already there, like Kafka Connect's `poll`.
        let first = futures::select_biased! {
            _ = tx.closed().fuse() => return,
            received = messages.next().fuse() => received.expect("kafka streams never terminate"),
        };
        let mut batch = Polled::with_capacity(max_batch, expected_bytes);
        let mut next = Some(first);
        while let Some(received) = next {
            match received {
                Ok(message) => batch.push(&message),
                // A fatal error (e.g. fenced by a static member with the same group.instance.id) ends the client
                // for good: nothing more will come. Records already copied are dropped (never put, not committed).
                Err(err) if is_fatal(consumer, &err) => {
                    let _ = tx.send(Err(err)).await;
                    return;
                }
                // Mostly transient (broker down, topic not yet created); librdkafka recovers by itself.
                Err(err) => warn!(error = %err, "consumer error"),
            }
            if batch.len() >= max_batch {
                break;
            }
            next = messages.next().now_or_never().flatten();
        }
        if batch.is_empty() {
            continue;
        }
        expected_bytes = batch.arena.len();
        batch.convert(convert);
        if tx.send(Ok(batch)).await.is_err() {
            return;
        }
    }
}

/// True when the consumer is dead because another member joined its group with the same `group.instance.id`.
pub(crate) fn fenced_by_instance<C: ConsumerContext + 'static>(consumer: &StreamConsumer<C>) -> bool {
    consumer.client().fatal_error().is_some_and(|(code, _)| code == RDKafkaErrorCode::FencedInstanceId)
}

/// True when the consumer cannot recover from `err` by itself.
pub(crate) fn is_fatal<C: ConsumerContext + 'static>(consumer: &StreamConsumer<C>, err: &KafkaError) -> bool {
    matches!(err, KafkaError::MessageConsumptionFatal(_)) || consumer.client().fatal_error().is_some()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn next_offsets_are_per_topic_and_partition() {
        let mut polled = Polled { topics: vec![Arc::from("a"), Arc::from("b")], ..Default::default() };
        for (topic, partition, offset) in [(0, 0, 5), (1, 0, 7), (0, 0, 6), (0, 1, 2)] {
            let value = Some(polled.copy(b"v"));
            polled.records.push(PolledRecord {
                topic,
                partition,
                offset,
                timestamp: None,
                key: None,
                value,
                headers: 0..0,
            });
        }
        let next: Vec<_> = polled.next_offsets().collect();
        assert_eq!(next, vec![("a", 0, 7), ("b", 0, 8), ("a", 1, 3)]);
        let record = polled.record(1);
        assert_eq!((record.topic, record.offset, record.value), ("b", 7, Some(&b"v"[..])));
    }
}
