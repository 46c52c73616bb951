//! The `fallback` Lambda, behind the REST API's fallback routes: whatever matches no
//! route of the API gets the error envelope (404, or 405 with `Allow`) from
//! `shared::http`, not API Gateway's bare `{"message":"Not Found"}`. It builds no AWS
//! client: nothing it answers needs one.

#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    shared::telemetry::init();
    lambda_http::run(lambda_http::service_fn(shared::http::handle_unrouted)).await
}
