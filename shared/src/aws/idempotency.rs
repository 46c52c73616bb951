//! DynamoDB adapter of [`IdempotencyStore`]: one item per entity and key
//! (`IDEM#<entity>#<sha256(key)>`), claimed with a conditional put so that concurrent
//! duplicates cannot both execute, and removed by TTL after 24 hours.

use async_trait::async_trait;
use aws_sdk_dynamodb::types::AttributeValue;
use aws_sdk_dynamodb::Client;
use sha2::{Digest, Sha256};

use crate::domain::ids::EntityId;
use crate::domain::time::Timestamp;
use crate::ports::{IdempotencyClaim, IdempotencyStore, StoreError};

use super::store::{dynamo, s};
use super::table::TABLE;

/// DESIGN.md §1: a retry within 24 hours replays.
pub const IDEMPOTENCY_WINDOW_SECONDS: i64 = 24 * 3600;

pub struct DynamoIdempotencyStore {
    client: Client,
    table: String,
}

impl DynamoIdempotencyStore {
    pub fn new(client: Client, table: impl Into<String>) -> Self {
        DynamoIdempotencyStore {
            client,
            table: table.into(),
        }
    }
}

/// The caller's key is hashed: it may hold anything printable, and it is theirs, not ours.
fn pk(entity: EntityId, key: &str) -> AttributeValue {
    s(format!("IDEM#{entity}#{}", hex::encode(Sha256::digest(key.as_bytes()))))
}

fn text(item: &std::collections::HashMap<String, AttributeValue>, name: &str) -> Option<String> {
    item.get(name).and_then(|v| v.as_s().ok()).cloned()
}

#[async_trait]
impl IdempotencyStore for DynamoIdempotencyStore {
    async fn claim(
        &self,
        entity: EntityId,
        key: &str,
        fingerprint: &str,
        now: Timestamp,
    ) -> Result<IdempotencyClaim, StoreError> {
        let expires = now.plus_seconds(IDEMPOTENCY_WINDOW_SECONDS).unix();
        let put = self
            .client
            .put_item()
            .table_name(&self.table)
            .item(TABLE.partition_key, pk(entity, key))
            .item(TABLE.sort_key, s("IDEM"))
            .item("fingerprint", s(fingerprint))
            .item("state", s("in_progress"))
            .item(TABLE.ttl_attribute, AttributeValue::N(expires.to_string()))
            // New, or older than the window (TTL deletes lazily).
            .condition_expression("attribute_not_exists(#pk) OR #ttl <= :now")
            .expression_attribute_names("#pk", TABLE.partition_key)
            .expression_attribute_names("#ttl", TABLE.ttl_attribute)
            .expression_attribute_values(":now", AttributeValue::N(now.unix().to_string()))
            .send()
            .await;
        match put {
            Ok(_) => return Ok(IdempotencyClaim::Claimed),
            Err(e)
                if e.as_service_error()
                    .is_some_and(|s| s.is_conditional_check_failed_exception()) => {}
            Err(e) => return Err(dynamo("PutItem")(e)),
        }
        let existing = self
            .client
            .get_item()
            .table_name(&self.table)
            .key(TABLE.partition_key, pk(entity, key))
            .key(TABLE.sort_key, s("IDEM"))
            .consistent_read(true)
            .send()
            .await
            .map_err(dynamo("GetItem"))?
            .item
            .unwrap_or_default();
        if text(&existing, "fingerprint").as_deref() != Some(fingerprint) {
            return Ok(IdempotencyClaim::Mismatch);
        }
        let status = existing
            .get("status")
            .and_then(|v| v.as_n().ok())
            .and_then(|n| n.parse().ok());
        Ok(match (text(&existing, "state").as_deref(), status) {
            (Some("done"), Some(status)) => IdempotencyClaim::Replay {
                status,
                body: text(&existing, "body").unwrap_or_default(),
            },
            _ => IdempotencyClaim::InProgress,
        })
    }

    async fn complete(&self, entity: EntityId, key: &str, status: u16, body: &str) -> Result<(), StoreError> {
        self.client
            .update_item()
            .table_name(&self.table)
            .key(TABLE.partition_key, pk(entity, key))
            .key(TABLE.sort_key, s("IDEM"))
            .update_expression("SET #state = :done, #status = :status, #body = :body")
            .expression_attribute_names("#state", "state")
            .expression_attribute_names("#status", "status")
            .expression_attribute_names("#body", "body")
            .expression_attribute_values(":done", s("done"))
            .expression_attribute_values(":status", AttributeValue::N(status.to_string()))
            .expression_attribute_values(":body", s(body))
            .send()
            .await
            .map_err(dynamo("UpdateItem"))?;
        Ok(())
    }

    async fn release(&self, entity: EntityId, key: &str) -> Result<(), StoreError> {
        self.client
            .delete_item()
            .table_name(&self.table)
            .key(TABLE.partition_key, pk(entity, key))
            .key(TABLE.sort_key, s("IDEM"))
            .send()
            .await
            .map_err(dynamo("DeleteItem"))?;
        Ok(())
    }
}
