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
    async fn publish(&self, records: &[OutboxRecord]) -> Result<(), DependencyError> {
        // More than PutEvents takes at once never comes from one request; split anyway.
        for chunk in records.chunks(MAX_ENTRIES_PER_CALL) {
            self.put_events(chunk).await?;
        }
        Ok(())
    }
}

/// `PutEvents` takes at most 10 entries per call.
const MAX_ENTRIES_PER_CALL: usize = 10;

impl EventBridgeBus {
    async fn put_events(&self, records: &[OutboxRecord]) -> Result<(), DependencyError> {
        let entries = records
            .iter()
            .map(|record| {
                PutEventsRequestEntry::builder()
                    .event_bus_name(&self.bus)
                    .source(&self.source)
                    .detail_type(&record.detail_type)
                    .detail(&record.detail)
                    .build()
            })
            .collect();
        let out = self
            .client
            .put_events()
            .set_entries(Some(entries))
            .send()
            .await
            .map_err(|e| classify(Dependency::EventBridge, "PutEvents", &e))?;
        if out.failed_entry_count() == 0 {
            return Ok(());
        }
        // Entries answer in the order they were sent; a refused one carries its code.
        let refused = out
            .entries()
            .iter()
            .zip(records)
            .find_map(|(entry, record)| entry.error_code().map(|code| (code, &record.event_id)));
        let (code, event_id) = refused.map_or(("", &records[0].event_id), |(c, id)| (c, id));
        tracing::warn!(operation = "PutEvents", error_code = code, event_id = %event_id, "event rejected");
        Err(if is_throttle_code(code) {
            DependencyError::Throttled(Dependency::EventBridge)
        } else {
            DependencyError::Unavailable(Dependency::EventBridge)
        })
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
