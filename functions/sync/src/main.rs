//! The `sync` Lambda, invoked by the bus rule for `sync.reported` events from sync
//! workers: applies the report (`shared::sync_events`). Invalid reports and reports for
//! unknown or disconnected connectors are dropped and counted; a dependency failure is
//! returned as an error, so that Lambda retries the event (then keeps it in the
//! on-failure queue).

use lambda_http::lambda_runtime::{self, LambdaEvent};
use serde_json::Value;

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    shared::telemetry::init();
    let app = shared::App::from_env().await;
    lambda_runtime::run(lambda_runtime::service_fn(|event: LambdaEvent<Value>| {
        let app = &app;
        async move {
            shared::sync_events::handle(app, &event.payload)
                .await
                .map_err(lambda_runtime::Error::from)
        }
    }))
    .await
}
