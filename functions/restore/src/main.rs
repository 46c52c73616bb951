//! The `restore` Lambda: builds the shared state once per container and lends it to every
//! invocation; the request itself is served by `shared::http`, which inside Lambda
//! publishes its events after the answer (an internal extension waits for that).
//! Inside Lambda it refuses to start without its fingerprint key's secret
//! (`IDEMPOTENCY_FINGERPRINT_KEY_SECRET`).

use shared::http::router::Operation;

#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    shared::telemetry::init();
    let app = shared::App::from_env_for_writes().await?;
    shared::http::run_function(app, Operation::Restore).await
}
