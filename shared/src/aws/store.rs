//! DynamoDB adapter of [`ConnectorStore`]: connector rows and outbox records.

use async_trait::async_trait;
use aws_sdk_dynamodb::config::http::HttpResponse;
use aws_sdk_dynamodb::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_dynamodb::operation::transact_write_items::TransactWriteItemsError;
use aws_sdk_dynamodb::types::{AttributeValue, ConditionCheck, Delete, Put, TransactWriteItem};
use aws_sdk_dynamodb::Client;

use crate::domain::catalog::ConnectorType;
use crate::domain::connector::Connector;
use crate::domain::error::Dependency;
use crate::domain::ids::EntityId;
use crate::domain::time::Timestamp;
use crate::ports::{
    ConnectorStore, DependencyError, Due, KeyAnswer, LeaseClaim, OutboxRecord, SecretGuard, StoreError,
};

use super::errors::{classify, is_throttle_code};
use super::items::{connector_item, connector_item_due, connector_sk, entity_pk};
use super::items::{guard_item, guard_key, lease_key, outbox_item, outbox_key, outbox_put, s, Item};
use super::table::{DueKind, TABLE};

pub(crate) fn dynamo<E: ProvideErrorMetadata>(
    operation: &'static str,
) -> impl Fn(SdkError<E, HttpResponse>) -> StoreError {
    move |e| StoreError::Dependency(classify(Dependency::DynamoDb, operation, &e))
}

/// The answer of a single-item write whose condition failing means "someone else got
/// there first" (the record was cleared, the guard renewed, the claim taken over): `Ok`.
pub(crate) fn unless_condition_failed<O, E: ProvideErrorMetadata>(
    operation: &'static str,
    sent: Result<O, SdkError<E, HttpResponse>>,
) -> Result<(), StoreError> {
    match sent {
        Ok(_) => Ok(()),
        Err(e) if e.code() == Some("ConditionalCheckFailedException") => Ok(()),
        Err(e) => Err(dynamo(operation)(e)),
    }
}

pub(crate) fn decode<T: serde::de::DeserializeOwned>(item: Item) -> Result<T, StoreError> {
    serde_dynamo::from_item(item).map_err(|e| {
        // serde_dynamo errors name fields and types, not values.
        tracing::error!(error = %e, "stored item does not decode");
        StoreError::Corrupt
    })
}

/// Every item of an entity's partition whose sort key starts with `prefix` (one Query,
/// paginated).
pub(crate) async fn query_entity<T: serde::de::DeserializeOwned>(
    client: &Client,
    table: &str,
    entity: EntityId,
    prefix: &str,
    consistent: bool,
) -> Result<Vec<T>, StoreError> {
    let mut pages = client
        .query()
        .table_name(table)
        .key_condition_expression("#pk = :pk AND begins_with(#sk, :prefix)")
        .expression_attribute_names("#pk", TABLE.partition_key)
        .expression_attribute_names("#sk", TABLE.sort_key)
        .expression_attribute_values(":pk", s(entity_pk(entity)))
        .expression_attribute_values(":prefix", s(prefix))
        .consistent_read(consistent)
        .into_paginator()
        .items()
        .send();
    let mut out = Vec::new();
    while let Some(item) = pages.next().await {
        out.push(decode(item.map_err(dynamo("Query"))?)?);
    }
    Ok(out)
}

fn transaction_failure(err: &SdkError<TransactWriteItemsError, HttpResponse>) -> StoreError {
    if let Some(TransactWriteItemsError::TransactionCanceledException(cancelled)) = err.as_service_error() {
        let codes: Vec<&str> = cancelled
            .cancellation_reasons()
            .iter()
            .filter_map(|r| r.code())
            .collect();
        if codes
            .iter()
            .any(|c| *c == "ConditionalCheckFailed" || *c == "TransactionConflict")
        {
            tracing::info!(
                operation = "TransactWriteItems",
                ?codes,
                "transaction cancelled by a condition or a conflict"
            );
            return StoreError::ConditionFailed;
        }
        if codes.iter().any(|c| is_throttle_code(c) || *c == "ThrottlingError") {
            tracing::warn!(operation = "TransactWriteItems", ?codes, "transaction throttled");
            return StoreError::Dependency(DependencyError::Throttled(Dependency::DynamoDb));
        }
    }
    StoreError::Dependency(classify(Dependency::DynamoDb, "TransactWriteItems", err))
}

/// The condition of every write over a stored row: still the same connector (its `id`:
/// after a permanent delete and a new connect the key holds another connector, whose
/// `version` may equal the old one's) at the expected `version`.
const SAME_ROW_AT_VERSION: &str = "#version = :expected AND #id = :id";

/// Keys a `Delete` or `ConditionCheck` builder (same methods, no common trait) on `row`
/// and makes it hold only while the stored row is still `row`'s connector at `row.version`.
macro_rules! on_row_at_its_version {
    ($builder:expr, $row:expr) => {
        $builder
            .key(TABLE.partition_key, s(entity_pk($row.entity_id)))
            .key(TABLE.sort_key, s(connector_sk($row.connector_type)))
            .condition_expression(SAME_ROW_AT_VERSION)
            .expression_attribute_names("#version", "version")
            .expression_attribute_names("#id", "id")
            .expression_attribute_values(":expected", AttributeValue::N($row.version.to_string()))
            .expression_attribute_values(":id", s($row.id.to_string()))
    };
}

pub struct DynamoConnectorStore {
    client: Client,
    table: String,
}

impl DynamoConnectorStore {
    pub fn new(client: Client, table: impl Into<String>) -> Self {
        DynamoConnectorStore {
            client,
            table: table.into(),
        }
    }
}

#[async_trait]
impl ConnectorStore for DynamoConnectorStore {
    async fn get(&self, entity: EntityId, connector_type: ConnectorType) -> Result<Option<Connector>, StoreError> {
        let out = self
            .client
            .get_item()
            .table_name(&self.table)
            .key(TABLE.partition_key, s(entity_pk(entity)))
            .key(TABLE.sort_key, s(connector_sk(connector_type)))
            .consistent_read(true)
            .send()
            .await
            .map_err(dynamo("GetItem"))?;
        out.item.map(decode).transpose()
    }

    async fn list(&self, entity: EntityId) -> Result<Vec<Connector>, StoreError> {
        query_entity(&self.client, &self.table, entity, "CONN#", true).await
    }

    async fn save(
        &self,
        row: &Connector,
        expected_version: Option<u64>,
        records: &[OutboxRecord],
        answer: Option<&KeyAnswer>,
    ) -> Result<(), StoreError> {
        let put_row = Put::builder()
            .table_name(&self.table)
            .set_item(Some(connector_item(row)));
        let put_row = match expected_version {
            None => put_row
                .condition_expression("attribute_not_exists(#pk)")
                .expression_attribute_names("#pk", TABLE.partition_key),
            Some(v) => put_row
                .condition_expression(SAME_ROW_AT_VERSION)
                .expression_attribute_names("#version", "version")
                .expression_attribute_names("#id", "id")
                .expression_attribute_values(":expected", AttributeValue::N(v.to_string()))
                .expression_attribute_values(":id", s(row.id.to_string())),
        };
        let write = TransactWriteItem::builder()
            .put(put_row.build().expect("complete put"))
            .build();
        self.transact(write, records, answer).await
    }

    async fn delete(
        &self,
        row: &Connector,
        records: &[OutboxRecord],
        answer: Option<&KeyAnswer>,
    ) -> Result<(), StoreError> {
        let delete = on_row_at_its_version!(Delete::builder().table_name(&self.table), row)
            .build()
            .expect("complete delete");
        self.transact(TransactWriteItem::builder().delete(delete).build(), records, answer)
            .await
    }

    async fn clear_outbox(&self, event_id: &str) -> Result<(), StoreError> {
        self.client
            .delete_item()
            .table_name(&self.table)
            .set_key(Some(outbox_key(event_id)))
            .send()
            .await
            .map_err(dynamo("DeleteItem"))?;
        Ok(())
    }

    async fn clear_outbox_if_unchanged(&self, event_id: &str, row: &Connector) -> Result<bool, StoreError> {
        let delete = Delete::builder()
            .table_name(&self.table)
            .set_key(Some(outbox_key(event_id)))
            .build()
            .expect("complete delete");
        let check = on_row_at_its_version!(ConditionCheck::builder().table_name(&self.table), row)
            .build()
            .expect("complete condition check");
        let sent = self
            .client
            .transact_write_items()
            .transact_items(TransactWriteItem::builder().delete(delete).build())
            .transact_items(TransactWriteItem::builder().condition_check(check).build())
            .send()
            .await;
        match sent.map_err(|e| transaction_failure(&e)) {
            Ok(_) => Ok(true),
            Err(StoreError::ConditionFailed) => Ok(false),
            Err(e) => Err(e),
        }
    }

    async fn reschedule_outbox(&self, record: &OutboxRecord) -> Result<(), StoreError> {
        let sent = self
            .client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(outbox_item(record)))
            .condition_expression("attribute_exists(#pk)")
            .expression_attribute_names("#pk", TABLE.partition_key)
            .send()
            .await;
        // Cleared meanwhile (delivered by someone else): nothing to reschedule.
        unless_condition_failed("PutItem", sent)
    }

    async fn due_expiries(&self, now: Timestamp, limit: usize, first_shard: u32) -> Result<Due<Connector>, StoreError> {
        // `due_at` is `<recoverable_until or retry time>#<entity>#<type>`; `~` sorts after
        // every id character, so `<= now#~` takes every row due at or before now.
        self.query_due(DueKind::Expiry, format!("{now}#~"), limit, first_shard)
            .await
    }

    async fn defer_expiry(&self, row: &Connector, retry_at: Timestamp) -> Result<(), StoreError> {
        // The row as it is stored (same version, same fields), only keyed later in the
        // index: a `PutItem` (which the sweeper may send) rather than an `UpdateItem`.
        let sent = self
            .client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(connector_item_due(row, Some(retry_at))))
            .condition_expression(SAME_ROW_AT_VERSION)
            .expression_attribute_names("#version", "version")
            .expression_attribute_names("#id", "id")
            .expression_attribute_values(":expected", AttributeValue::N(row.version.to_string()))
            .expression_attribute_values(":id", s(row.id.to_string()))
            .send()
            .await;
        // Moved or gone meanwhile: the newer write decides what is due.
        unless_condition_failed("PutItem", sent)
    }

    async fn due_outbox(
        &self,
        now: Timestamp,
        limit: usize,
        first_shard: u32,
    ) -> Result<Due<OutboxRecord>, StoreError> {
        self.query_due(DueKind::Outbox, format!("{now}#~"), limit, first_shard)
            .await
    }

    async fn guard_secret(&self, guard: &SecretGuard) -> Result<(), StoreError> {
        self.client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(guard_item(guard)))
            .send()
            .await
            .map_err(dynamo("PutItem"))?;
        Ok(())
    }

    async fn due_guards(
        &self,
        before: Timestamp,
        limit: usize,
        first_shard: u32,
    ) -> Result<Due<SecretGuard>, StoreError> {
        self.query_due(DueKind::Guard, format!("{before}#~"), limit, first_shard)
            .await
    }

    async fn defer_guard(&self, guard: &SecretGuard) -> Result<(), StoreError> {
        let sent = self
            .client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(guard_item(guard)))
            .condition_expression("#write = :write")
            .expression_attribute_names("#write", "write_id")
            .expression_attribute_values(":write", s(guard.write_id.to_string()))
            .send()
            .await;
        // Renewed by a newer write, or cleared: not ours to postpone.
        unless_condition_failed("PutItem", sent)
    }

    async fn clear_guard(&self, guard: &SecretGuard) -> Result<(), StoreError> {
        let sent = self
            .client
            .delete_item()
            .table_name(&self.table)
            .set_key(Some(guard_key(&guard.secret.connector_id)))
            .condition_expression("#write = :write")
            .expression_attribute_names("#write", "write_id")
            .expression_attribute_values(":write", s(guard.write_id.to_string()))
            .send()
            .await;
        // Renewed by a newer write, or gone: either way not ours to remove.
        unless_condition_failed("DeleteItem", sent)
    }

    async fn take_lease(
        &self,
        name: &str,
        owner: &str,
        until: Timestamp,
        now: Timestamp,
    ) -> Result<LeaseClaim, StoreError> {
        let sent = self
            .client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(lease_key(name)))
            .item("owner", s(owner))
            .item("lease_until", AttributeValue::N(until.unix().to_string()))
            .item("taken_at", s(now.to_string()))
            .condition_expression("attribute_not_exists(#pk) OR #until <= :now")
            .expression_attribute_names("#pk", TABLE.partition_key)
            .expression_attribute_names("#until", "lease_until")
            .expression_attribute_values(":now", AttributeValue::N(now.unix().to_string()))
            .send()
            .await;
        match sent {
            Ok(_) => Ok(LeaseClaim::Taken),
            Err(e) if e.code() == Some("ConditionalCheckFailedException") => Ok(LeaseClaim::HeldElsewhere),
            Err(e) => Err(dynamo("PutItem")(e)),
        }
    }

    async fn release_lease(&self, name: &str, owner: &str) -> Result<(), StoreError> {
        let sent = self
            .client
            .delete_item()
            .table_name(&self.table)
            .set_key(Some(lease_key(name)))
            .condition_expression("#owner = :owner")
            .expression_attribute_names("#owner", "owner")
            .expression_attribute_values(":owner", s(owner))
            .send()
            .await;
        // Taken over after ours ran out, or gone: not ours to remove.
        unless_condition_failed("DeleteItem", sent)
    }
}

impl DynamoConnectorStore {
    /// One transaction: the row's write and the outbox records of its events.
    async fn transact(
        &self,
        row_write: TransactWriteItem,
        records: &[OutboxRecord],
        answer: Option<&KeyAnswer>,
    ) -> Result<(), StoreError> {
        let mut request = self.client.transact_write_items().transact_items(row_write);
        for record in records {
            request = request.transact_items(outbox_put(&self.table, record));
        }
        if let Some(answer) = answer {
            request = request.transact_items(super::idempotency::answer_update(&self.table, answer)?);
        }
        // The same token on an SDK retry of a timed-out attempt makes DynamoDB treat it as
        // the same transaction instead of failing its conditions against its own writes.
        if let Some(first) = records.first() {
            request = request.client_request_token(&first.event_id);
        }
        request.send().await.map_err(|e| transaction_failure(&e))?;
        Ok(())
    }

    /// Queries every shard of `kind` in the sparse `due` index, from `first_shard` on:
    /// reads only due items, oldest first within a shard. Its cost grows with what is
    /// due, never with the table. Items that do not decode are counted and skipped.
    async fn query_due<T: serde::de::DeserializeOwned>(
        &self,
        kind: DueKind,
        upper_bound: String,
        limit: usize,
        first_shard: u32,
    ) -> Result<Due<T>, StoreError> {
        let index = &TABLE.indexes[0];
        let mut due = Due {
            items: Vec::new(),
            items_read: 0,
            bad_items: 0,
        };
        for shard in kind.partitions(first_shard) {
            let mut start = None;
            while due.items.len() < limit {
                let page = self
                    .client
                    .query()
                    .table_name(&self.table)
                    .index_name(index.name)
                    .key_condition_expression("#pk = :shard AND #sk <= :bound")
                    .expression_attribute_names("#pk", index.partition_key)
                    .expression_attribute_names("#sk", index.sort_key)
                    .expression_attribute_values(":shard", s(shard.clone()))
                    .expression_attribute_values(":bound", s(upper_bound.clone()))
                    .limit((limit - due.items.len()).min(100) as i32)
                    .set_exclusive_start_key(start)
                    .send()
                    .await
                    .map_err(dynamo("Query"))?;
                due.items_read += page.scanned_count() as usize;
                start = page.last_evaluated_key.clone();
                for item in page.items.unwrap_or_default() {
                    match decode(item) {
                        Ok(v) => due.items.push(v),
                        Err(_) => due.bad_items += 1,
                    }
                }
                if start.is_none() {
                    break;
                }
            }
        }
        Ok(due)
    }
}
