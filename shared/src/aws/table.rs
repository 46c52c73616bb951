//! The one definition of the DynamoDB table: keys, TTL attribute and indexes. The local
//! bootstrap creates the table from it; a test holds template.yaml to it.
//!
//! Item layout (single table):
//! | item | pk | sk |
//! |---|---|---|
//! | connector row | `ENT#<entity_id>` | `CONN#<connector_type>` |
//! | API key, by hash (auth) | `KEY#<sha256>` | `KEY` |
//! | API key, by id (revoke) | `KEYID#<key_id>` | `KEYID` |
//! | API key, by entity (list) | `ENT#<entity_id>` | `APIKEY#<key_id>` |
//! | outbox record | `OUTBOX#<event_id>` | `OUTBOX` |
//! | secret guard | `GUARD#<connector_id>` | `GUARD` |
//! | idempotency record | `IDEM#<entity_id>#<live\|test>#<sha256(key)>` | `IDEM` |
//!
//! The sparse `due` index holds only items with a deadline: disconnected rows
//! (`due_pk = EXPIRY#<shard>`, `due_at = recoverable_until#…`), outbox records
//! (`due_pk = OUTBOX#<shard>`, `due_at = next_attempt_at#…`) and secret guards
//! (`due_pk = GUARD#<shard>`, `due_at = created_at#…`), so the sweep is a Query per
//! shard, never a Scan. The partition key is sharded ([`DUE_SHARDS`] per kind) so that
//! no single index partition takes every tenant's writes (an index partition accepts
//! about 1,000 writes a second, and a throttled index throttles the table's writes).

use aws_sdk_dynamodb::types::{
    AttributeDefinition, BillingMode, GlobalSecondaryIndex, KeySchemaElement, KeyType, Projection, ProjectionType,
    ScalarAttributeType, TimeToLiveSpecification,
};
use aws_sdk_dynamodb::Client;

use crate::domain::error::Dependency;
use crate::ports::DependencyError;

use super::errors::classify;

pub struct IndexDefinition {
    pub name: &'static str,
    pub partition_key: &'static str,
    pub sort_key: &'static str,
}

pub struct TableDefinition {
    pub partition_key: &'static str,
    pub sort_key: &'static str,
    /// Epoch seconds; DynamoDB TTL deletes items some time after it passes.
    pub ttl_attribute: &'static str,
    pub indexes: &'static [IndexDefinition],
}

pub const TABLE: TableDefinition = TableDefinition {
    partition_key: "pk",
    sort_key: "sk",
    ttl_attribute: "ttl",
    indexes: &[IndexDefinition {
        name: "due",
        partition_key: "due_pk",
        sort_key: "due_at",
    }],
};

/// Index partitions per kind of due item.
pub const DUE_SHARDS: u32 = crate::ports::DUE_SHARDS;

/// The kinds of item the sweep finds through the `due` index.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DueKind {
    Expiry,
    Outbox,
    Guard,
}

impl DueKind {
    fn prefix(self) -> &'static str {
        match self {
            DueKind::Expiry => "EXPIRY",
            DueKind::Outbox => "OUTBOX",
            DueKind::Guard => "GUARD",
        }
    }

    /// Every index partition key of this kind, from `first` (mod [`DUE_SHARDS`]) round
    /// to the one before it: what one sweep queries, in that order.
    pub fn partitions(self, first: u32) -> impl Iterator<Item = String> {
        (0..DUE_SHARDS).map(move |i| format!("{}#{:02}", self.prefix(), (first + i) % DUE_SHARDS))
    }
}

/// The shard of an item, by a stable hash (FNV-1a) of `shard_key` (the item's own
/// identity; the in-memory store shards by it too).
pub fn due_shard(shard_key: &str) -> u32 {
    let hash = shard_key
        .bytes()
        .fold(0x811c_9dc5_u32, |h, b| (h ^ u32::from(b)).wrapping_mul(0x0100_0193));
    hash % DUE_SHARDS
}

/// The index partition key of an item of `kind`, spread by [`due_shard`].
pub fn due_partition(kind: DueKind, shard_key: &str) -> String {
    format!("{}#{:02}", kind.prefix(), due_shard(shard_key))
}

fn key(name: &str, key_type: KeyType) -> KeySchemaElement {
    KeySchemaElement::builder()
        .attribute_name(name)
        .key_type(key_type)
        .build()
        .expect("complete key schema")
}

fn string_attribute(name: &str) -> AttributeDefinition {
    AttributeDefinition::builder()
        .attribute_name(name)
        .attribute_type(ScalarAttributeType::S)
        .build()
        .expect("complete attribute definition")
}

/// Creates the table (on-demand, with TTL) if it does not exist. Safe to run repeatedly.
pub async fn ensure_table(client: &Client, name: &str) -> Result<bool, DependencyError> {
    match client.describe_table().table_name(name).send().await {
        Ok(_) => {
            enable_ttl(client, name).await?;
            return Ok(false);
        }
        Err(e)
            if e.as_service_error()
                .is_some_and(|s| s.is_resource_not_found_exception()) => {}
        Err(e) => return Err(classify(Dependency::DynamoDb, "DescribeTable", &e)),
    }
    let mut create = client
        .create_table()
        .table_name(name)
        .billing_mode(BillingMode::PayPerRequest)
        .key_schema(key(TABLE.partition_key, KeyType::Hash))
        .key_schema(key(TABLE.sort_key, KeyType::Range))
        .attribute_definitions(string_attribute(TABLE.partition_key))
        .attribute_definitions(string_attribute(TABLE.sort_key));
    for index in TABLE.indexes {
        create = create
            .attribute_definitions(string_attribute(index.partition_key))
            .attribute_definitions(string_attribute(index.sort_key))
            .global_secondary_indexes(
                GlobalSecondaryIndex::builder()
                    .index_name(index.name)
                    .key_schema(key(index.partition_key, KeyType::Hash))
                    .key_schema(key(index.sort_key, KeyType::Range))
                    .projection(Projection::builder().projection_type(ProjectionType::All).build())
                    .build()
                    .expect("complete index"),
            );
    }
    match create.send().await {
        Ok(_) => {}
        // Another bootstrap created it between our describe and create.
        Err(e) if e.as_service_error().is_some_and(|s| s.is_resource_in_use_exception()) => {}
        Err(e) => return Err(classify(Dependency::DynamoDb, "CreateTable", &e)),
    }
    enable_ttl(client, name).await?;
    Ok(true)
}

async fn enable_ttl(client: &Client, name: &str) -> Result<(), DependencyError> {
    let current = client
        .describe_time_to_live()
        .table_name(name)
        .send()
        .await
        .map_err(|e| classify(Dependency::DynamoDb, "DescribeTimeToLive", &e))?;
    let enabled = current.time_to_live_description().is_some_and(|d| {
        d.attribute_name() == Some(TABLE.ttl_attribute)
            && d.time_to_live_status().is_some_and(|s| s.as_str() == "ENABLED")
    });
    if enabled {
        return Ok(());
    }
    client
        .update_time_to_live()
        .table_name(name)
        .time_to_live_specification(
            TimeToLiveSpecification::builder()
                .attribute_name(TABLE.ttl_attribute)
                .enabled(true)
                .build()
                .expect("complete TTL spec"),
        )
        .send()
        .await
        .map_err(|e| classify(Dependency::DynamoDb, "UpdateTimeToLive", &e))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn due_items_spread_over_every_shard_and_each_lands_in_a_queried_partition() {
        let mut seen = std::collections::BTreeSet::new();
        for i in 0..1000 {
            let partition = due_partition(DueKind::Outbox, &format!("evt_{i}"));
            assert!(DueKind::Outbox.partitions(0).any(|p| p == partition), "{partition}");
            seen.insert(partition);
        }
        assert_eq!(seen.len(), DUE_SHARDS as usize);
        assert_eq!(due_partition(DueKind::Guard, "x"), due_partition(DueKind::Guard, "x"));
    }
}
