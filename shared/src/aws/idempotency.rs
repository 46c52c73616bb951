//! DynamoDB adapter of [`IdempotencyStore`]: one item per entity, mode and key
//! (`IDEM#<entity>#<live|test>#<sha256(key)>`), claimed with a conditional put so that
//! concurrent duplicates cannot both execute, taken over by a retry once the claim's
//! lease has run out (while still in progress), and removed by TTL after 24 hours. A write
//! stores its answer in its own transaction (`answer_update`, used by the connector
//! store), so a committed write's key is done however its request ends.

use std::collections::HashMap;

use async_trait::async_trait;
use aws_sdk_dynamodb::types::{AttributeValue, TransactWriteItem, Update};
use aws_sdk_dynamodb::Client;
use sha2::{Digest, Sha256};

use crate::domain::ids::EntityId;
use crate::domain::time::Timestamp;
use crate::ports::{
    FollowUp, HeldClaim, IdempotencyClaim, IdempotencyScope, IdempotencyStore, KeyAnswer, StoreError,
    IDEMPOTENCY_LEASE_SECONDS,
};

use super::items::s;
use super::store::{dynamo, unless_condition_failed};
use super::table::TABLE;

/// A retry within 24 hours replays (docs/DECISIONS.md, "Idempotency").
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

/// What the partition key of every idempotency record of `entity` starts with.
pub fn entity_prefix(entity: EntityId) -> String {
    format!("IDEM#{entity}#")
}

/// The caller's key is hashed: it may hold anything printable, and it is theirs, not ours.
fn pk(scope: IdempotencyScope, key: &str) -> AttributeValue {
    let mode = if scope.livemode { "live" } else { "test" };
    let hash = hex::encode(Sha256::digest(key.as_bytes()));
    s(format!("{}{mode}#{hash}", entity_prefix(scope.entity_id)))
}

/// The claim's key attributes.
fn key_of(scope: IdempotencyScope, key: &str) -> std::collections::HashMap<String, AttributeValue> {
    std::collections::HashMap::from([
        (TABLE.partition_key.to_string(), pk(scope, key)),
        (TABLE.sort_key.to_string(), s("IDEM")),
    ])
}

/// What marks a claimed key's record done with its answer, conditioned on the claim's
/// token: the update expression and its names and values. Without a follow-up, one stored
/// earlier (by the commit's transaction) is removed: the request that committed has done
/// its secret work, and replays need not redo it.
struct DoneUpdate {
    expression: &'static str,
    names: HashMap<String, String>,
    values: HashMap<String, AttributeValue>,
}

const DONE_CONDITION: &str = "#token = :token";

impl DoneUpdate {
    fn new(token: &str, status: u16, body: &str, follow_up: Option<&FollowUp>) -> Result<DoneUpdate, StoreError> {
        let names = [
            ("#state", "state"),
            ("#status", "status"),
            ("#body", "body"),
            ("#token", "token"),
            ("#follow_up", "follow_up"),
        ]
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .into();
        let mut values: HashMap<String, AttributeValue> = [
            (":done", s("done")),
            (":status", AttributeValue::N(status.to_string())),
            (":body", s(body)),
            (":token", s(token)),
        ]
        .map(|(k, v)| (k.to_string(), v))
        .into();
        let expression = match follow_up {
            Some(follow_up) => {
                values.insert(":follow_up".into(), s(follow_up_json(follow_up)?));
                "SET #state = :done, #status = :status, #body = :body, #follow_up = :follow_up"
            }
            None => "SET #state = :done, #status = :status, #body = :body REMOVE #follow_up",
        };
        Ok(DoneUpdate {
            expression,
            names,
            values,
        })
    }
}

/// The write storing `answer` on its key's record, as one item of the transaction that
/// commits the change it answers for; it requires the claim to be still held.
pub(super) fn answer_update(table: &str, answer: &KeyAnswer) -> Result<TransactWriteItem, StoreError> {
    let done = DoneUpdate::new(&answer.token, answer.status, &answer.body, answer.follow_up.as_ref())?;
    let update = Update::builder()
        .table_name(table)
        .set_key(Some(key_of(answer.scope, &answer.key)))
        .condition_expression(DONE_CONDITION)
        .update_expression(done.expression)
        .set_expression_attribute_names(Some(done.names))
        .set_expression_attribute_values(Some(done.values));
    Ok(TransactWriteItem::builder()
        .update(update.build().map_err(|_| StoreError::Corrupt)?)
        .build())
}

fn follow_up_json(follow_up: &FollowUp) -> Result<String, StoreError> {
    serde_json::to_string(follow_up).map_err(|_| StoreError::Corrupt)
}

fn is_condition_failure<E: aws_sdk_dynamodb::error::ProvideErrorMetadata>(e: &E) -> bool {
    e.code() == Some("ConditionalCheckFailedException")
}

fn text(item: &std::collections::HashMap<String, AttributeValue>, name: &str) -> Option<String> {
    item.get(name).and_then(|v| v.as_s().ok()).cloned()
}

#[async_trait]
impl IdempotencyStore for DynamoIdempotencyStore {
    async fn claim(
        &self,
        scope: IdempotencyScope,
        key: &str,
        fingerprint: &str,
        now: Timestamp,
    ) -> Result<IdempotencyClaim, StoreError> {
        let expires = now.plus_seconds(IDEMPOTENCY_WINDOW_SECONDS).unix();
        let lease_until = now.plus_seconds(IDEMPOTENCY_LEASE_SECONDS).unix();
        let token = uuid::Uuid::new_v4().to_string();
        let put = self
            .client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(key_of(scope, key)))
            .item("fingerprint", s(fingerprint))
            .item("state", s("in_progress"))
            .item("token", s(&token))
            .item("lease_until", AttributeValue::N(lease_until.to_string()))
            .item(TABLE.ttl_attribute, AttributeValue::N(expires.to_string()))
            // New, older than the window (TTL deletes lazily), or the same request whose
            // claim's lease ran out (its request was killed): take it.
            .condition_expression(
                "attribute_not_exists(#pk) OR #ttl <= :now \
                 OR (#state = :in_progress AND #lease <= :now AND #fp = :fp)",
            )
            .expression_attribute_names("#pk", TABLE.partition_key)
            .expression_attribute_names("#ttl", TABLE.ttl_attribute)
            .expression_attribute_names("#state", "state")
            .expression_attribute_names("#lease", "lease_until")
            .expression_attribute_names("#fp", "fingerprint")
            .expression_attribute_values(":now", AttributeValue::N(now.unix().to_string()))
            .expression_attribute_values(":in_progress", s("in_progress"))
            .expression_attribute_values(":fp", s(fingerprint))
            .send()
            .await;
        match put {
            Ok(_) => return Ok(IdempotencyClaim::Claimed { token }),
            Err(e) if e.as_service_error().is_some_and(is_condition_failure) => {}
            Err(e) => return Err(dynamo("PutItem")(e)),
        }
        let existing = self
            .client
            .get_item()
            .table_name(&self.table)
            .set_key(Some(key_of(scope, key)))
            .consistent_read(true)
            .send()
            .await
            .map_err(dynamo("GetItem"))?
            .item
            .unwrap_or_default();
        // Our own claim: the put took effect but its answer was lost, and the SDK's retry
        // of it met it. Still ours (the token is new to every claim).
        if text(&existing, "token").as_deref() == Some(token.as_str()) {
            return Ok(IdempotencyClaim::Claimed { token });
        }
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
                follow_up: match text(&existing, "follow_up") {
                    Some(json) => Some(serde_json::from_str(&json).map_err(|_| StoreError::Corrupt)?),
                    None => None,
                },
            },
            _ => IdempotencyClaim::InProgress,
        })
    }

    async fn complete(
        &self,
        claim: HeldClaim<'_>,
        status: u16,
        body: &str,
        follow_up: Option<FollowUp>,
    ) -> Result<(), StoreError> {
        let done = DoneUpdate::new(claim.token, status, body, follow_up.as_ref())?;
        let sent = self
            .client
            .update_item()
            .table_name(&self.table)
            .set_key(Some(key_of(claim.scope, claim.key)))
            .condition_expression(DONE_CONDITION)
            .update_expression(done.expression)
            .set_expression_attribute_names(Some(done.names))
            .set_expression_attribute_values(Some(done.values))
            .send()
            .await;
        // Taken over by a retry after our lease ran out: its answer is the one kept.
        unless_condition_failed("UpdateItem", sent)
    }

    async fn release(&self, claim: HeldClaim<'_>) -> Result<(), StoreError> {
        let sent = self
            .client
            .delete_item()
            .table_name(&self.table)
            .set_key(Some(key_of(claim.scope, claim.key)))
            // A done key keeps its answer: a request whose change committed must not free
            // its key for a retry that would run again against the new state.
            .condition_expression("#token = :token AND #state = :in_progress")
            .expression_attribute_names("#token", "token")
            .expression_attribute_names("#state", "state")
            .expression_attribute_values(":token", s(claim.token))
            .expression_attribute_values(":in_progress", s("in_progress"))
            .send()
            .await;
        unless_condition_failed("DeleteItem", sent)
    }
}
