//! A route's floor: a `lambda_runtime` function whose only work is the AWS calls the
//! route's contract cannot do without, one after another, built with the same profile and
//! the same SDK configuration code (`shared::config::sdk_config`: TLS provider, trust
//! store, timeouts) as the real functions. Its cold first answer is the least that route
//! can cost; a route's ratio to it measures our overhead, not the contract's.
//!
//! `FLOOR_TABLE`: the table. `FLOOR_STEPS`: the calls, comma-separated, in order (see
//! [`Step`]); `key` runs in the first invocation only, as a function's key cache does.
//! The invocation's event names what they act on (see [`Target`]); the bench seeds it.
//! `FLOOR_WARM_UP=1`: make one `GetItem` during init too, so that the connection and TLS
//! handshake happen before the first invocation (one of the levers `make bench` measures).

use std::sync::atomic::{AtomicBool, Ordering};

use aws_sdk_dynamodb::types::{AttributeValue, Put, TransactWriteItem, Update};
use lambda_http::lambda_runtime::{self, service_fn, LambdaEvent};
use serde::Deserialize;
use serde_json::Value;
use shared::aws::table::TABLE;

/// One AWS call of a floor.
#[derive(Clone, Copy, Debug)]
enum Step {
    /// `GetItem` of the caller's API key (authentication), first invocation only.
    Key,
    /// `GetItem` of the connector row (consistent).
    Read,
    /// `Query` of the entity's partition, 20 items at most (a list page).
    Query,
    /// `TransactWriteItems`: a new row (`attribute_not_exists`) and its outbox record.
    Create,
    /// `TransactWriteItems`: a conditional update of the row and its outbox record.
    Commit,
    /// `PutItem` of a guard item (the credentials routes' record of a secret in flight).
    Guard,
    /// `PutSecretValue`: a new value, made current.
    SecretPut,
    /// `DeleteSecret` with a 7-day recovery window.
    SecretSchedule,
    /// `RestoreSecret`.
    SecretRestore,
    /// `UpdateSecretVersionStage`: `AWSCURRENT` moved from one version to another.
    Stage,
}

impl Step {
    fn parse(name: &str) -> Step {
        match name.trim() {
            "key" => Step::Key,
            "read" => Step::Read,
            "query" => Step::Query,
            "create" => Step::Create,
            "commit" => Step::Commit,
            "guard" => Step::Guard,
            "secret-put" => Step::SecretPut,
            "secret-schedule" => Step::SecretSchedule,
            "secret-restore" => Step::SecretRestore,
            "stage" => Step::Stage,
            other => panic!("FLOOR_STEPS: no step {other:?}"),
        }
    }
}

/// What an invocation acts on: keys as `[pk, sk]`.
#[derive(Deserialize, Default)]
#[serde(default)]
struct Target {
    key: Option<[String; 2]>,
    row: Option<[String; 2]>,
    secret: Option<String>,
    /// For `stage`: `[to, from]` version ids.
    stage: Option<[String; 2]>,
}

struct Floor {
    dynamo: aws_sdk_dynamodb::Client,
    secrets: aws_sdk_secretsmanager::Client,
    table: String,
    steps: Vec<Step>,
    key_looked_up: AtomicBool,
}

type Failure = lambda_runtime::Error;

fn missing(what: &str) -> Failure {
    format!("the event names no {what}").into()
}

fn s(v: &str) -> AttributeValue {
    AttributeValue::S(v.to_string())
}

/// An item of the floor's own (never a connector's): `FLOOR#<uuid>` / `kind`.
fn scratch(kind: &str) -> std::collections::HashMap<String, AttributeValue> {
    let pk = format!("FLOOR#{}", uuid::Uuid::new_v4().simple());
    [
        (TABLE.partition_key.to_string(), s(&pk)),
        (TABLE.sort_key.to_string(), s(kind)),
    ]
    .into()
}

impl Floor {
    async fn get(&self, [pk, sk]: &[String; 2]) -> Result<(), Failure> {
        self.dynamo
            .get_item()
            .table_name(&self.table)
            .key(TABLE.partition_key, s(pk))
            .key(TABLE.sort_key, s(sk))
            .consistent_read(true)
            .send()
            .await?;
        Ok(())
    }

    async fn transact(&self, first: TransactWriteItem) -> Result<(), Failure> {
        let outbox = Put::builder()
            .table_name(&self.table)
            .set_item(Some(scratch("OUTBOX")))
            .build()?;
        self.dynamo
            .transact_write_items()
            .transact_items(first)
            .transact_items(TransactWriteItem::builder().put(outbox).build())
            .send()
            .await?;
        Ok(())
    }

    async fn run(&self, step: Step, t: &Target) -> Result<(), Failure> {
        let secret = || t.secret.as_deref().ok_or_else(|| missing("secret"));
        let row = || t.row.as_ref().ok_or_else(|| missing("row"));
        match step {
            Step::Key => {
                if !self.key_looked_up.swap(true, Ordering::Relaxed) {
                    self.get(t.key.as_ref().ok_or_else(|| missing("key"))?).await?;
                }
            }
            Step::Read => self.get(row()?).await?,
            Step::Query => {
                self.dynamo
                    .query()
                    .table_name(&self.table)
                    .key_condition_expression(format!("{} = :pk", TABLE.partition_key))
                    .expression_attribute_values(":pk", s(&row()?[0]))
                    .limit(20)
                    .send()
                    .await?;
            }
            Step::Create => {
                let put = Put::builder()
                    .table_name(&self.table)
                    .set_item(Some(scratch("ROW")))
                    .condition_expression(format!("attribute_not_exists({})", TABLE.partition_key))
                    .build()?;
                self.transact(TransactWriteItem::builder().put(put).build()).await?;
            }
            Step::Commit => {
                let [pk, sk] = row()?;
                let update = Update::builder()
                    .table_name(&self.table)
                    .key(TABLE.partition_key, s(pk))
                    .key(TABLE.sort_key, s(sk))
                    .update_expression("SET floor_writes = if_not_exists(floor_writes, :zero) + :one")
                    .condition_expression(format!("attribute_exists({})", TABLE.partition_key))
                    .expression_attribute_values(":zero", AttributeValue::N("0".into()))
                    .expression_attribute_values(":one", AttributeValue::N("1".into()))
                    .build()?;
                self.transact(TransactWriteItem::builder().update(update).build())
                    .await?;
            }
            Step::Guard => {
                self.dynamo
                    .put_item()
                    .table_name(&self.table)
                    .set_item(Some(scratch("GUARD")))
                    .condition_expression(format!("attribute_not_exists({})", TABLE.partition_key))
                    .send()
                    .await?;
            }
            Step::SecretPut => {
                self.secrets
                    .put_secret_value()
                    .secret_id(secret()?)
                    .secret_string(uuid::Uuid::new_v4().to_string())
                    .send()
                    .await?;
            }
            Step::SecretSchedule => {
                self.secrets
                    .delete_secret()
                    .secret_id(secret()?)
                    .recovery_window_in_days(7)
                    .send()
                    .await?;
            }
            Step::SecretRestore => {
                self.secrets.restore_secret().secret_id(secret()?).send().await?;
            }
            Step::Stage => {
                let [to, from] = t.stage.as_ref().ok_or_else(|| missing("stage"))?;
                self.secrets
                    .update_secret_version_stage()
                    .secret_id(secret()?)
                    .version_stage("AWSCURRENT")
                    .move_to_version_id(to)
                    .remove_from_version_id(from)
                    .send()
                    .await?;
            }
        }
        Ok(())
    }
}

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    let sdk = shared::config::sdk_config().await;
    let var = |name: &str| std::env::var(name).unwrap_or_default();
    let floor = Floor {
        dynamo: aws_sdk_dynamodb::Client::new(&sdk),
        secrets: aws_sdk_secretsmanager::Client::new(&sdk),
        table: var("FLOOR_TABLE"),
        steps: var("FLOOR_STEPS")
            .split(',')
            .filter(|s| !s.is_empty())
            .map(Step::parse)
            .collect(),
        key_looked_up: AtomicBool::new(false),
    };
    if var("FLOOR_WARM_UP") == "1" {
        floor.get(&["FLOOR#warm-up".into(), "WARM-UP".into()]).await?;
    }
    let floor = &floor;
    lambda_runtime::run(service_fn(move |event: LambdaEvent<Value>| async move {
        let target: Target = serde_json::from_value(event.payload)?;
        for &step in &floor.steps {
            floor.run(step, &target).await.map_err(|e| format!("{step:?}: {e}"))?;
        }
        Ok::<_, lambda_runtime::Error>(Value::Bool(true))
    }))
    .await
}
