//! `connectors-dev`: serves the API on loopback (`connectors_infra::dev_server`), the
//! same `shared::http` code the Lambda functions run, all routes in one process.

use std::net::SocketAddr;
use std::sync::Arc;

use shared::App;

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    shared::telemetry::init();
    let port: u16 = std::env::var("PORT").ok().and_then(|p| p.parse().ok()).unwrap_or(3000);
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    let app = Arc::new(App::from_env().await);
    let listener = tokio::net::TcpListener::bind(addr).await?;
    eprintln!("connectors API on http://{addr}/v1/integrations");
    Err(connectors_infra::dev_server::run(listener, app).await.into())
}
