//! EventBridge adapter of [`EventBus`].

use async_trait::async_trait;
use aws_sdk_eventbridge::types::PutEventsRequestEntry;
use aws_sdk_eventbridge::Client;

use crate::domain::error::Dependency;
use crate::ports::{DependencyError, EventBus, OutboxRecord};

use super::errors::{classify, is_throttle_code};

pub struct EventBridgeBus {
    client: Client,
    bus: String,
    source: String,
}

impl EventBridgeBus {
    pub fn new(client: Client, bus: impl Into<String>, source: impl Into<String>) -> Self {
        EventBridgeBus {
            client,
            bus: bus.into(),
            source: source.into(),
        }
    }
}

#[async_trait]
impl EventBus for EventBridgeBus {
    async fn publish(&self, record: &OutboxRecord) -> Result<(), DependencyError> {
        let entry = PutEventsRequestEntry::builder()
            .event_bus_name(&self.bus)
            .source(&self.source)
            .detail_type(&record.detail_type)
            .detail(&record.detail)
            .build();
        let out = self
            .client
            .put_events()
            .entries(entry)
            .send()
            .await
            .map_err(|e| classify(Dependency::EventBridge, "PutEvents", &e))?;
        if out.failed_entry_count() > 0 {
            let code = out.entries().first().and_then(|e| e.error_code()).unwrap_or("");
            tracing::warn!(operation = "PutEvents", error_code = code, event_id = %record.event_id, "event rejected");
            return Err(if is_throttle_code(code) {
                DependencyError::Throttled(Dependency::EventBridge)
            } else {
                DependencyError::Unavailable(Dependency::EventBridge)
            });
        }
        Ok(())
    }
}

/// Creates the bus if it does not exist (local bootstrap; SAM creates it in AWS).
pub async fn ensure_bus(client: &Client, name: &str) -> Result<(), DependencyError> {
    match client.describe_event_bus().name(name).send().await {
        Ok(_) => return Ok(()),
        Err(e)
            if e.as_service_error()
                .is_some_and(|s| s.is_resource_not_found_exception()) => {}
        Err(e) => return Err(classify(Dependency::EventBridge, "DescribeEventBus", &e)),
    }
    match client.create_event_bus().name(name).send().await {
        Ok(_) => Ok(()),
        Err(e)
            if e.as_service_error()
                .is_some_and(|s| s.is_resource_already_exists_exception()) =>
        {
            Ok(())
        }
        Err(e) => Err(classify(Dependency::EventBridge, "CreateEventBus", &e)),
    }
}
