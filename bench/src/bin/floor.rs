//! The floor every route is compared with: a `lambda_runtime` function whose only work is
//! one bare SDK `GetItem` per invocation, built with the same profile and the same SDK
//! configuration code (`shared::config::sdk_config`: TLS provider, trust store, timeouts)
//! as the real functions. Its cold first answer is the least any function that reads
//! DynamoDB can cost; its warm p99 the least a read can take.
//!
//! `FLOOR_TABLE`, `FLOOR_PK`, `FLOOR_SK`: the item to read. `FLOOR_WARM_UP=1`: make one
//! `GetItem` during init too, so that the connection and TLS handshake happen before the
//! first invocation (one of the levers `make bench` measures).

use aws_sdk_dynamodb::types::AttributeValue;
use lambda_http::lambda_runtime::{self, service_fn, LambdaEvent};
use serde_json::Value;

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    let sdk = shared::config::sdk_config().await;
    let dynamo = aws_sdk_dynamodb::Client::new(&sdk);
    let var = |name: &str| std::env::var(name).unwrap_or_default();
    let (table, pk, sk) = (var("FLOOR_TABLE"), var("FLOOR_PK"), var("FLOOR_SK"));
    let get = || {
        dynamo
            .get_item()
            .table_name(&table)
            .key("pk", AttributeValue::S(pk.clone()))
            .key("sk", AttributeValue::S(sk.clone()))
            .consistent_read(true)
            .send()
    };
    if var("FLOOR_WARM_UP") == "1" {
        get().await?;
    }
    let get = &get;
    lambda_runtime::run(service_fn(move |_: LambdaEvent<Value>| async move {
        let found = get().await?.item.is_some();
        Ok::<_, lambda_runtime::Error>(Value::Bool(found))
    }))
    .await
}
