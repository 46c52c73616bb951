//! Logging and metrics.
//!
//! Logs: one JSON object per line, with the current span's fields — the API `request_id`
//! and the Lambda request id — on every line of a request. `RUST_LOG` filters.
//! Metrics: one CloudWatch Embedded Metric Format line per Lambda request (operation,
//! status class, latency, cold start), which CloudWatch turns into metrics without any
//! API call from the function.

use std::sync::atomic::{AtomicBool, Ordering};

use serde_json::json;
use tracing_subscriber::EnvFilter;

pub const METRIC_NAMESPACE: &str = "Connectors";

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

static COLD: AtomicBool = AtomicBool::new(true);

/// `true` exactly once per process: for the first request a container serves.
pub fn take_cold_start() -> bool {
    COLD.swap(false, Ordering::Relaxed)
}

/// One request's metrics as an EMF line.
pub fn metric_line(
    function: &str,
    status: u16,
    latency_ms: f64,
    cold_start: bool,
    request_id: &str,
    lambda_request_id: Option<&str>,
    now_ms: i64,
) -> String {
    json!({
        "_aws": {
            "Timestamp": now_ms,
            "CloudWatchMetrics": [{
                "Namespace": METRIC_NAMESPACE,
                "Dimensions": [["function", "status_class"], ["function"]],
                "Metrics": [
                    {"Name": "latency", "Unit": "Milliseconds"},
                    {"Name": "requests", "Unit": "Count"},
                    {"Name": "cold_starts", "Unit": "Count"}
                ]
            }]
        },
        "function": function,
        "status_class": format!("{}xx", status / 100),
        "status": status,
        "latency": latency_ms,
        "requests": 1,
        "cold_starts": u8::from(cold_start),
        "cold_start": cold_start,
        "request_id": request_id,
        "lambda_request_id": lambda_request_id,
    })
    .to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn emf_line_declares_its_metrics_and_dimensions() {
        let line = metric_line("get", 404, 12.5, true, "req_1", Some("abc-123"), 1_700_000_000_000);
        let v: serde_json::Value = serde_json::from_str(&line).unwrap();
        let directive = &v["_aws"]["CloudWatchMetrics"][0];
        assert_eq!(directive["Namespace"], "Connectors");
        for metric in directive["Metrics"].as_array().unwrap() {
            let name = metric["Name"].as_str().unwrap();
            assert!(v[name].is_number(), "{name} has a value");
        }
        for dims in directive["Dimensions"].as_array().unwrap() {
            for d in dims.as_array().unwrap() {
                assert!(v[d.as_str().unwrap()].is_string(), "dimension {d} has a value");
            }
        }
        assert_eq!(
            (v["status_class"].as_str(), v["cold_starts"].as_u64()),
            (Some("4xx"), Some(1))
        );
        assert_eq!(v["lambda_request_id"], "abc-123");
        assert!(!line.contains('\n'));
    }
}
