//! How the adapters write the table's items: keys, the connector row's item (with its TTL
//! and `due` index keys while disconnected), outbox records and secret guards. The
//! layout of every item kind is in docs/ARCHITECTURE.md.

use std::collections::HashMap;

use aws_sdk_dynamodb::types::{AttributeValue, Put, TransactWriteItem};

use crate::domain::catalog::ConnectorType;
use crate::domain::connector::Connector;
use crate::domain::ids::EntityId;
use crate::domain::sync::SyncState;
use crate::ports::{OutboxRecord, SecretGuard};

use super::table::{due_partition, DueKind, TABLE};

pub(crate) type Item = HashMap<String, AttributeValue>;

/// A disconnected row's TTL lies this long after its recovery window: the sweeper is the
/// one that expires rows (row and `integration.expired` record in one transaction, then
/// the secret's deletion, then the event); TTL, which deletes items
/// at some moment after their deadline, is only the safety net if the sweeper is down
/// for days. Reads treat a row past its window as gone whatever TTL has done.
pub const TTL_MARGIN_DAYS: i64 = 3;

pub(crate) fn s(value: impl Into<String>) -> AttributeValue {
    AttributeValue::S(value.into())
}

pub fn entity_pk(entity: EntityId) -> String {
    format!("ENT#{entity}")
}

pub fn connector_sk(connector_type: ConnectorType) -> String {
    format!("CONN#{connector_type}")
}

/// The sort key of a connector's sync state: right after its row's (`CONN#<type>` <
/// `CONN#<type>#SYNC`, and no connector type is a prefix of another), so one Query reads
/// a row with its state, and the entity's list stays one Query.
pub fn sync_sk(connector_type: ConnectorType) -> String {
    format!("{}{SYNC_SUFFIX}", connector_sk(connector_type))
}

pub(crate) const SYNC_SUFFIX: &str = "#SYNC";

/// The stored item of a connector's sync state (no TTL: a permanent delete or an expiry
/// deletes it with the row; one left by an older connector is ignored by its id).
pub(crate) fn sync_item(entity: EntityId, connector_type: ConnectorType, state: &SyncState) -> Item {
    let mut item: Item = serde_dynamo::to_item(state).expect("a sync state always converts to an item");
    item.extend(sync_key(entity, connector_type));
    item
}

pub(crate) fn sync_key(entity: EntityId, connector_type: ConnectorType) -> Item {
    Item::from([
        (TABLE.partition_key.to_string(), s(entity_pk(entity))),
        (TABLE.sort_key.to_string(), s(sync_sk(connector_type))),
    ])
}

/// The stored item of a row: its fields, its keys and, while disconnected, the TTL
/// attribute and the sparse `due` index keys that the expiry sweep queries.
pub fn connector_item(row: &Connector) -> Item {
    connector_item_due(row, None)
}

/// [`connector_item`], with the expiry's `due` sort key at `retry_at` instead of the end
/// of the window when that is later (the sweeper's back-off after a failed expiry).
pub(crate) fn connector_item_due(row: &Connector, retry_at: Option<crate::domain::time::Timestamp>) -> Item {
    let mut item: Item = serde_dynamo::to_item(row.stored_form()).expect("a connector row always converts to an item");
    item.insert(TABLE.partition_key.into(), s(entity_pk(row.entity_id)));
    item.insert(TABLE.sort_key.into(), s(connector_sk(row.connector_type)));
    if let (false, Some(until)) = (row.is_active, row.recoverable_until) {
        let due = &TABLE.indexes[0];
        let ttl = until.plus_days(TTL_MARGIN_DAYS).unix();
        item.insert(TABLE.ttl_attribute.into(), AttributeValue::N(ttl.to_string()));
        let shard_key = format!("{}#{}", row.entity_id, row.connector_type);
        item.insert(due.partition_key.into(), s(due_partition(DueKind::Expiry, &shard_key)));
        let due_at = retry_at.filter(|at| *at > until).unwrap_or(until);
        item.insert(
            due.sort_key.into(),
            s(format!("{due_at}#{}#{}", row.entity_id, row.connector_type)),
        );
    }
    item
}

pub(crate) fn outbox_item(record: &OutboxRecord) -> Item {
    let due = &TABLE.indexes[0];
    let mut item: Item = serde_dynamo::to_item(record).expect("an outbox record always converts to an item");
    for (name, value) in outbox_key(&record.event_id) {
        item.insert(name, value);
    }
    // No TTL: an undelivered event is never dropped; the sweeper retries it with back-off
    // and alarms while it stays undelivered.
    item.insert(
        due.partition_key.into(),
        s(due_partition(DueKind::Outbox, &record.event_id)),
    );
    item.insert(
        due.sort_key.into(),
        s(format!("{}#{}", record.next_attempt_at, record.event_id)),
    );
    item
}

/// A secret guard's primary key: one per connector (a renewal replaces it).
pub(crate) fn guard_key(connector_id: &crate::domain::ids::ConnectorId) -> Item {
    Item::from([
        (TABLE.partition_key.to_string(), s(format!("GUARD#{connector_id}"))),
        (TABLE.sort_key.to_string(), s("GUARD")),
    ])
}

pub(crate) fn guard_item(guard: &SecretGuard) -> Item {
    let due = &TABLE.indexes[0];
    let mut item: Item = serde_dynamo::to_item(guard).expect("a guard always converts to an item");
    item.extend(guard_key(&guard.secret.connector_id));
    item.insert(
        due.partition_key.into(),
        s(due_partition(DueKind::Guard, &guard.secret.connector_id.to_string())),
    );
    item.insert(
        due.sort_key.into(),
        s(format!("{}#{}", guard.index_key(), guard.secret.connector_id)),
    );
    item
}

/// A lease's primary key (`LEASE#<name>` / `LEASE`): a prefix of its own, never `KEY#` or
/// `KEYID#`, whose items no function may touch.
pub fn lease_key(name: &str) -> Item {
    Item::from([
        (TABLE.partition_key.to_string(), s(format!("LEASE#{name}"))),
        (TABLE.sort_key.to_string(), s("LEASE")),
    ])
}

/// An outbox record's primary key.
pub(crate) fn outbox_key(event_id: &str) -> Item {
    Item::from([
        (TABLE.partition_key.to_string(), s(format!("OUTBOX#{event_id}"))),
        (TABLE.sort_key.to_string(), s("OUTBOX")),
    ])
}

pub(crate) fn outbox_put(table: &str, record: &OutboxRecord) -> TransactWriteItem {
    let put = Put::builder()
        .table_name(table)
        .set_item(Some(outbox_item(record)))
        .condition_expression("attribute_not_exists(#pk)")
        .expression_attribute_names("#pk", TABLE.partition_key)
        .build()
        .expect("complete put");
    TransactWriteItem::builder().put(put).build()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Items already in the table are found by these formats: the tests take their keys
    /// from these helpers, so this is what holds the formats themselves still.
    #[test]
    fn key_formats_never_change() {
        let entity: EntityId = "3c90c3cc-0d44-4b50-8888-8dd25736052a".parse().unwrap();
        let stripe = ConnectorType::parse("stripe").unwrap();
        assert_eq!(entity_pk(entity), "ENT#3c90c3cc-0d44-4b50-8888-8dd25736052a");
        assert_eq!(connector_sk(stripe), "CONN#stripe");
        assert_eq!(sync_sk(stripe), "CONN#stripe#SYNC");
        assert_eq!(
            super::super::idempotency::entity_prefix(entity),
            "IDEM#3c90c3cc-0d44-4b50-8888-8dd25736052a#"
        );
        let lease = lease_key("sweeper");
        assert_eq!(lease[TABLE.partition_key].as_s().unwrap(), "LEASE#sweeper");
        assert_eq!(lease[TABLE.sort_key].as_s().unwrap(), "LEASE");
    }
}
