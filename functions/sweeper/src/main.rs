//! The `sweeper` Lambda, invoked by an EventBridge schedule: finalises expired
//! disconnects, re-publishes outbox records left behind and settles secret guards, under
//! a lease so that runs never overlap. The event's content is not used; the run's summary
//! is its result (and a log line).

use lambda_http::lambda_runtime::{self, LambdaEvent};
use serde_json::Value;

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    shared::telemetry::init();
    let app = shared::sweeper::with_secret_rate_cap(shared::App::from_env().await);
    lambda_runtime::run(lambda_runtime::service_fn(|event: LambdaEvent<Value>| {
        shared::sweeper::run(&app, shared::sweeper::Invocation::from(&event.context))
    }))
    .await
}
