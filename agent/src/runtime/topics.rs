//! Topic creation for source tasks (`topic.creation.*`, KIP-158): before the first record goes to a topic the
//! task has not seen yet, the topic is created with the settings of the first matching topic creation group.
//! A topic that already exists is left as it is, as in Kafka Connect.

use std::collections::HashSet;
use std::time::Duration;

use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::types::RDKafkaErrorCode;
use sluice_connectors::topic_creation::{TopicCreationGroups, uses_topic_creation};
use tracing::{info, warn};

use super::{TaskContext, TaskError};

/// How long one CreateTopics request may take before the task fails.
const CREATE_TIMEOUT: Duration = Duration::from_secs(30);

/// Creates the topics of one source task; remembers which topics it already made sure of.
pub(crate) struct TopicCreator {
    admin: AdminClient<DefaultClientContext>,
    groups: TopicCreationGroups,
    /// Topics created or found to exist: no request for them again.
    known: HashSet<String>,
}

impl TopicCreator {
    /// `None` when the connector does not use topic creation or the worker disabled it
    /// (`topic.creation.enable=false`).
    pub fn new(ctx: &TaskContext) -> Result<Option<TopicCreator>, TaskError> {
        let connector_config = ctx.connector_config();
        if !uses_topic_creation(&connector_config) {
            return Ok(None);
        }
        if !ctx.worker.topic_creation_enable {
            warn!(
                "the connector sets topic.creation.* but the worker has topic.creation.enable=false; not creating topics"
            );
            return Ok(None);
        }
        let groups = TopicCreationGroups::from_config(&connector_config).map_err(|errors| {
            let (key, message) = errors.into_iter().next().unwrap_or_default();
            TaskError::Config { key, message }
        })?;
        let admin = ctx
            .worker
            .admin_config(&connector_config, &ctx.id)
            .create()
            .map_err(TaskError::kafka("failed to create the Kafka admin client for topic creation"))?;
        Ok(Some(TopicCreator { admin, groups, known: HashSet::new() }))
    }

    /// Makes sure `topic` exists, creating it with its group's settings if it does not.
    pub async fn ensure(&mut self, topic: &str) -> Result<(), TaskError> {
        if self.known.contains(topic) {
            return Ok(());
        }
        let spec = self.groups.spec_for(topic);
        let mut new = NewTopic::new(topic, spec.partitions, TopicReplication::Fixed(spec.replication_factor));
        for (key, value) in &spec.configs {
            new = new.set(key, value);
        }
        let options = AdminOptions::new().operation_timeout(Some(CREATE_TIMEOUT)).request_timeout(Some(CREATE_TIMEOUT));
        let context = || format!("Unable to create topic `{topic}` (topic creation group `{}`)", spec.group);
        let results = self.admin.create_topics([&new], &options).await.map_err(TaskError::kafka(context()))?;
        for result in results {
            match result {
                Ok(_) => info!(
                    topic,
                    group = %spec.group,
                    partitions = spec.partitions,
                    replication_factor = spec.replication_factor,
                    configs = ?spec.configs,
                    "created topic"
                ),
                Err((_, RDKafkaErrorCode::TopicAlreadyExists)) => {}
                Err((_, code)) => {
                    return Err(TaskError::Kafka {
                        context: context(),
                        source: rdkafka::error::KafkaError::AdminOp(code),
                    });
                }
            }
        }
        self.known.insert(topic.to_string());
        Ok(())
    }
}
