//! A Kafka producer with its own delivery-report thread, like rdkafka's `ThreadedProducer` but cheap when idle.
//!
//! `ThreadedProducer` serves delivery reports by calling `poll(100 ms)` in a loop, and rdkafka's `poll` turns the
//! last fraction of a millisecond before its deadline into non-blocking polls (the remaining time is rounded down
//! to 0 ms): every idle producer spun for up to 1 ms per 100 ms, about 1% of a core. Here the loop polls five
//! seconds at a time, which leaves 0.02%; reports are still served as they arrive (`poll` handles every event up
//! to its deadline). Dropping the producer does not wait for the thread: it ends within those seconds and drops
//! the client last (its queue was flushed or its transaction ended before; nothing is left to send).

use std::ops::Deref;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use rdkafka::ClientConfig;
use rdkafka::error::KafkaResult;
use rdkafka::producer::{BaseProducer, ProducerContext};

/// How long one `poll` of the report thread blocks.
const REPORT_POLL: Duration = Duration::from_secs(5);

pub(crate) struct PolledProducer<C: ProducerContext + 'static> {
    producer: Arc<BaseProducer<C>>,
    stop: Arc<AtomicBool>,
}

impl<C: ProducerContext + 'static> PolledProducer<C> {
    pub fn new(config: &ClientConfig, context: C, thread_name: &str) -> KafkaResult<Self> {
        let producer: Arc<BaseProducer<C>> = Arc::new(config.create_with_context(context)?);
        let stop = Arc::new(AtomicBool::new(false));
        let (polled, stopping) = (producer.clone(), stop.clone());
        std::thread::Builder::new()
            .name(thread_name.chars().take(15).collect())
            .spawn(move || {
                while !stopping.load(Ordering::Relaxed) {
                    polled.poll(REPORT_POLL);
                }
            })
            .map_err(|e| {
                rdkafka::error::KafkaError::ClientCreation(format!("cannot start the delivery report thread: {e}"))
            })?;
        Ok(PolledProducer { producer, stop })
    }
}

impl<C: ProducerContext + 'static> Deref for PolledProducer<C> {
    type Target = BaseProducer<C>;

    fn deref(&self) -> &BaseProducer<C> {
        &self.producer
    }
}

impl<C: ProducerContext + 'static> Drop for PolledProducer<C> {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}
