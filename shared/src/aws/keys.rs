//! DynamoDB adapter of [`KeyStore`]. Each key is three items written together: by hash
//! (what authentication reads), by id (what revocation finds) and under its entity (what
//! `keys list` queries). None holds key material, only its SHA-256.

use async_trait::async_trait;
use aws_sdk_dynamodb::types::{AttributeValue, Put, TransactWriteItem, Update};
use aws_sdk_dynamodb::Client;

use crate::domain::api_key::{ApiKeyRecord, KeyHash, KeyId};
use crate::domain::ids::EntityId;
use crate::domain::time::Timestamp;
use crate::ports::{KeyStore, StoreError};

use super::items::{entity_pk, s, Item};
use super::store::{decode, dynamo, query_entity};
use super::table::TABLE;

/// The key (`pk`, `sk`) of a key's item by hash: what authentication reads.
pub fn by_hash_key(hash: &KeyHash) -> (String, String) {
    (format!("KEY#{}", hash.as_str()), "KEY".to_string())
}

fn keys_of(record: &ApiKeyRecord, hash: &KeyHash) -> [(String, String); 3] {
    [
        by_hash_key(hash),
        (format!("KEYID#{}", record.key_id), "KEYID".to_string()),
        (entity_pk(record.entity_id), format!("APIKEY#{}", record.key_id)),
    ]
}

pub struct DynamoKeyStore {
    client: Client,
    table: String,
}

impl DynamoKeyStore {
    pub fn new(client: Client, table: impl Into<String>) -> Self {
        DynamoKeyStore {
            client,
            table: table.into(),
        }
    }

    async fn get(&self, pk: String, sk: &str) -> Result<Option<Item>, StoreError> {
        let out = self
            .client
            .get_item()
            .table_name(&self.table)
            .key(TABLE.partition_key, s(pk))
            .key(TABLE.sort_key, s(sk))
            .consistent_read(true)
            .send()
            .await
            .map_err(dynamo("GetItem"))?;
        Ok(out.item)
    }
}

#[async_trait]
impl KeyStore for DynamoKeyStore {
    async fn find(&self, hash: &KeyHash) -> Result<Option<ApiKeyRecord>, StoreError> {
        let (pk, sk) = by_hash_key(hash);
        self.get(pk, &sk).await?.map(decode).transpose()
    }

    async fn create(&self, record: &ApiKeyRecord, hash: &KeyHash) -> Result<(), StoreError> {
        let base: Item = serde_dynamo::to_item(record).expect("a key record always converts");
        let mut request = self.client.transact_write_items();
        for (pk, sk) in keys_of(record, hash) {
            let mut item = base.clone();
            item.insert(TABLE.partition_key.into(), s(pk));
            item.insert(TABLE.sort_key.into(), s(sk));
            item.insert("key_hash".into(), s(hash.as_str()));
            let put = Put::builder()
                .table_name(&self.table)
                .set_item(Some(item))
                .condition_expression("attribute_not_exists(#pk)")
                .expression_attribute_names("#pk", TABLE.partition_key)
                .build()
                .expect("complete put");
            request = request.transact_items(TransactWriteItem::builder().put(put).build());
        }
        request.send().await.map_err(|e| {
            if e.as_service_error()
                .is_some_and(|s| s.is_transaction_canceled_exception())
            {
                StoreError::ConditionFailed
            } else {
                dynamo("TransactWriteItems")(e)
            }
        })?;
        Ok(())
    }

    async fn revoke(&self, key_id: &KeyId, at: Timestamp) -> Result<bool, StoreError> {
        let Some(item) = self.get(format!("KEYID#{key_id}"), "KEYID").await? else {
            return Ok(false);
        };
        let hash = match item.get("key_hash") {
            Some(AttributeValue::S(h)) => KeyHash::from_stored(h.clone()),
            _ => return Err(StoreError::Corrupt),
        };
        let record: ApiKeyRecord = decode(item)?;
        let mut request = self.client.transact_write_items();
        for (pk, sk) in keys_of(&record, &hash) {
            let update = Update::builder()
                .table_name(&self.table)
                .key(TABLE.partition_key, s(pk))
                .key(TABLE.sort_key, s(sk))
                .update_expression("SET revoked_at = if_not_exists(revoked_at, :at)")
                .expression_attribute_values(":at", s(at.to_string()))
                .build()
                .expect("complete update");
            request = request.transact_items(TransactWriteItem::builder().update(update).build());
        }
        request.send().await.map_err(dynamo("TransactWriteItems"))?;
        Ok(true)
    }

    async fn list(&self, entity: EntityId) -> Result<Vec<ApiKeyRecord>, StoreError> {
        query_entity(&self.client, &self.table, entity, "APIKEY#", false).await
    }
}
