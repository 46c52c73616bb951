//! Logging: one JSON object per line, with the span fields (the API `request_id`, and the
//! Lambda request id from lambda_runtime's span) on every line. `RUST_LOG` filters.

use tracing_subscriber::EnvFilter;

pub fn init() {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let _ = tracing_subscriber::fmt()
        .json()
        .with_env_filter(filter)
        .with_current_span(true)
        .with_span_list(false)
        .with_target(false)
        .try_init();
}
