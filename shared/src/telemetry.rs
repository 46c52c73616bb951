//! Logging and metrics.
//!
//! Logs: one JSON object per line, with the current span's fields — the API `request_id`
//! and the Lambda request id — on every line of a request. `RUST_LOG` filters, but never
//! below [`CAPPED_LEVEL`] for the crates of [`CAPPED_TARGETS`]: at debug and trace they
//! write raw payloads (the Lambda invocation event with its `Authorization` header and
//! body, SDK request and response bodies with secret values, signed headers), so a
//! `RUST_LOG=trace` switched on to debug something must not put credentials in the logs.
//! Metrics: one CloudWatch Embedded Metric Format line per Lambda request (operation,
//! status class, latency, cold start), which CloudWatch turns into metrics without any
//! API call from the function.

use std::sync::atomic::{AtomicBool, Ordering};

use serde_json::json;
use tracing::level_filters::LevelFilter;
use tracing::Subscriber;
use tracing_subscriber::filter::{EnvFilter, FilterExt, Targets};
use tracing_subscriber::fmt::MakeWriter;
use tracing_subscriber::layer::{Filter, Layer, SubscriberExt};
use tracing_subscriber::registry::LookupSpan;
use tracing_subscriber::util::SubscriberInitExt;

/// Log targets (prefixes, as `RUST_LOG` matches them) whose events below
/// [`CAPPED_LEVEL`] carry raw requests, responses or bodies:
/// - `lambda_runtime`: the raw invocation event (`raw JSON event received from Lambda`,
///   trace) — an API Gateway event holds the caller's Bearer key and the request body,
///   credentials included;
/// - `lambda_http`: the adapter that turns that event into the request (it logs nothing
///   below info today; capped so that a version that does cannot leak it);
/// - `aws_`: `aws_smithy_runtime` logs each request and response with its body at trace
///   (`transmitting request`, `read HTTP response body`: `CreateSecret`/`PutSecretValue`
///   carry the secret value), `aws_sigv4` the request being signed with its headers (the
///   session token inside Lambda) and body, `aws_smithy_http_client`, `aws_runtime`,
///   `aws_config` and the `aws_sdk_*` crates their own details;
/// - `hyper`, `h2`, `tower`, `rustls`: connection and frame details of the same traffic.
pub const CAPPED_TARGETS: [&str; 7] = [
    "lambda_runtime",
    "lambda_http",
    "aws_",
    "hyper",
    "h2",
    "tower",
    "rustls",
];

/// The most those crates may log, whatever `RUST_LOG` says.
pub const CAPPED_LEVEL: LevelFilter = LevelFilter::INFO;

/// The filter the functions log through: `directives` (`RUST_LOG` syntax; `info` if they
/// do not parse), and at most [`CAPPED_LEVEL`] for [`CAPPED_TARGETS`]. The cap is a second
/// filter both must pass, so no directive of `directives` (`trace`,
/// `aws_smithy_runtime::client=trace`, …) can lift it.
pub fn filter<S>(directives: &str) -> impl Filter<S>
where
    S: Subscriber + for<'a> LookupSpan<'a>,
{
    let requested = EnvFilter::try_new(directives).unwrap_or_else(|_| EnvFilter::new("info"));
    let cap = CAPPED_TARGETS
        .iter()
        .fold(Targets::new().with_default(LevelFilter::TRACE), |t, target| {
            t.with_target(*target, CAPPED_LEVEL)
        });
    requested.and(cap)
}

/// The JSON log layer, writing to `writer` (stdout in Lambda).
pub fn json_layer<S, W>(writer: W) -> impl Layer<S>
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    W: for<'w> MakeWriter<'w> + Send + Sync + 'static,
{
    tracing_subscriber::fmt::layer()
        .json()
        .with_current_span(true)
        .with_span_list(false)
        .with_target(false)
        .with_writer(writer)
}

/// Installs the JSON layer on stdout, filtered by `RUST_LOG` (default `info`) and capped.
pub fn init() {
    let directives = std::env::var("RUST_LOG").unwrap_or_else(|_| "info".to_string());
    let _ = tracing_subscriber::registry()
        .with(json_layer(std::io::stdout).with_filter(filter(&directives)))
        .try_init();
}

static COLD: AtomicBool = AtomicBool::new(true);

/// `true` exactly once per process: for the first request a container serves.
pub fn take_cold_start() -> bool {
    COLD.swap(false, Ordering::Relaxed)
}

/// One bus sync report's outcome as an EMF line in `namespace` (dimension `function` =
/// `sync`): a count of 1 under the outcome's name (`sync_events::OUTCOMES`).
pub fn sync_metric_line(namespace: &str, outcome: &str, now_ms: i64) -> String {
    one_count_line(namespace, "sync", outcome, now_ms)
}

/// An EMF line in `namespace` counting 1 of `metric` for `function` (its one dimension).
fn one_count_line(namespace: &str, function: &str, metric: &str, now_ms: i64) -> String {
    json!({
        "_aws": {
            "Timestamp": now_ms,
            "CloudWatchMetrics": [{
                "Namespace": namespace,
                "Dimensions": [["function"]],
                "Metrics": [{"Name": metric, "Unit": "Count"}]
            }]
        },
        "function": function,
        metric: 1,
    })
    .to_string()
}

/// One sweep's metrics as an EMF line in `namespace` (dimension `function` =
/// `sweeper`): what the template's alarms on undelivered records and undecodable index
/// items watch.
pub fn sweep_metric_line(namespace: &str, report: &crate::service::SweepReport, now_ms: i64) -> String {
    json!({
        "_aws": {
            "Timestamp": now_ms,
            "CloudWatchMetrics": [{
                "Namespace": namespace,
                "Dimensions": [["function"]],
                "Metrics": [
                    {"Name": "undelivered_records", "Unit": "Count"},
                    {"Name": "bad_items", "Unit": "Count"},
                    {"Name": "failed", "Unit": "Count"},
                    {"Name": "orphans_deleted", "Unit": "Count"},
                    {"Name": "expired", "Unit": "Count"},
                    {"Name": "lease_skips", "Unit": "Count"},
                    {"Name": "budget_exhausted", "Unit": "Count"},
                    {"Name": "left_for_next_run", "Unit": "Count"},
                    {"Name": "query_failures", "Unit": "Count"},
                    {"Name": "expiries_attempted", "Unit": "Count"},
                    {"Name": "outbox_attempted", "Unit": "Count"},
                    {"Name": "guards_attempted", "Unit": "Count"}
                ]
            }]
        },
        "function": "sweeper",
        "undelivered_records": report.undelivered,
        "bad_items": report.bad_items,
        "failed": report.failed,
        "orphans_deleted": report.orphans_deleted,
        "expired": report.expired,
        "lease_skips": 0,
        "budget_exhausted": u8::from(report.budget_exhausted),
        "left_for_next_run": report.left_for_next_run,
        "query_failures": report.query_failures,
        "expiries_attempted": report.expiries_attempted,
        "outbox_attempted": report.outbox_attempted,
        "guards_attempted": report.guards_attempted,
        "first_shard": report.first_shard,
    })
    .to_string()
}

/// A scheduled run that found another holding the sweeper's lease and did nothing: only
/// `lease_skips` (it looked at nothing, so it reports no zeros for the sweep's metrics).
pub fn sweep_skipped_metric_line(namespace: &str, now_ms: i64) -> String {
    one_count_line(namespace, "sweeper", "lease_skips", now_ms)
}

/// One request's metrics as an EMF line in `namespace`.
#[allow(clippy::too_many_arguments)]
pub fn metric_line(
    namespace: &str,
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
                "Namespace": namespace,
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
    fn a_sweep_reports_its_undelivered_records_and_bad_items_as_emf_metrics() {
        let report = crate::service::SweepReport {
            undelivered: 2,
            bad_items: 1,
            ..Default::default()
        };
        let line: serde_json::Value = serde_json::from_str(&sweep_metric_line("Connectors/test", &report, 1)).unwrap();
        assert_eq!(line["function"], "sweeper");
        assert_eq!(
            (line["undelivered_records"].as_u64(), line["bad_items"].as_u64()),
            (Some(2), Some(1))
        );
        let names: Vec<&str> = line["_aws"]["CloudWatchMetrics"][0]["Metrics"]
            .as_array()
            .unwrap()
            .iter()
            .map(|m| m["Name"].as_str().unwrap())
            .collect();
        assert!(names.contains(&"undelivered_records") && names.contains(&"bad_items"));
        assert_eq!(line["_aws"]["CloudWatchMetrics"][0]["Namespace"], "Connectors/test");
        assert_eq!(line["lease_skips"], 0);

        let skipped: serde_json::Value =
            serde_json::from_str(&sweep_skipped_metric_line("Connectors/test", 1)).unwrap();
        let directive = &skipped["_aws"]["CloudWatchMetrics"][0];
        assert_eq!(directive["Namespace"], "Connectors/test");
        assert_eq!(directive["Metrics"].as_array().unwrap().len(), 1);
        assert_eq!(
            (skipped["lease_skips"].as_u64(), skipped.get("bad_items")),
            (Some(1), None)
        );
    }

    #[test]
    fn emf_line_declares_its_metrics_and_dimensions() {
        let line = metric_line(
            "Connectors/prod",
            "get",
            404,
            12.5,
            true,
            "req_1",
            Some("abc-123"),
            1_700_000_000_000,
        );
        let v: serde_json::Value = serde_json::from_str(&line).unwrap();
        let directive = &v["_aws"]["CloudWatchMetrics"][0];
        assert_eq!(
            directive["Namespace"], "Connectors/prod",
            "the namespace is the setting's"
        );
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

    #[derive(Clone, Default)]
    struct Capture(std::sync::Arc<std::sync::Mutex<Vec<u8>>>);

    impl std::io::Write for Capture {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    /// What the capped filter lets through of one event per (target, level).
    fn logged(directives: &str) -> String {
        let capture = Capture::default();
        let sink = capture.clone();
        let subscriber =
            tracing_subscriber::registry().with(json_layer(move || sink.clone()).with_filter(filter(directives)));
        tracing::subscriber::with_default(subscriber, || {
            tracing::trace!(target: "lambda_runtime::layers::api_response", "lambda_runtime trace");
            tracing::debug!(target: "aws_smithy_runtime::client::orchestrator", "aws_smithy_runtime debug");
            tracing::trace!(target: "aws_sigv4::http_request::sign", "aws_sigv4 trace");
            tracing::trace!(target: "aws_sdk_secretsmanager::client", "aws_sdk trace");
            tracing::trace!(target: "hyper_util::client::legacy", "hyper_util trace");
            tracing::info!(target: "aws_smithy_runtime::client::orchestrator", "aws_smithy_runtime info");
            tracing::trace!(target: "shared::service", "shared trace");
        });
        let text = String::from_utf8(capture.0.lock().unwrap().clone()).unwrap();
        text
    }

    #[test]
    fn trace_reaches_our_code_but_never_the_crates_that_log_payloads() {
        for directives in [
            "trace",
            "lambda_runtime=trace,aws_smithy_runtime=trace,aws_sigv4=trace,hyper_util=trace,trace",
            "aws_smithy_runtime::client::orchestrator=trace,lambda_runtime::layers=trace,shared=trace",
        ] {
            let text = logged(directives);
            assert!(text.contains("shared trace"), "{directives}: {text}");
            assert!(
                text.contains("aws_smithy_runtime info"),
                "{directives}: capped at info, not off"
            );
            for capped in [
                "lambda_runtime trace",
                "aws_smithy_runtime debug",
                "aws_sigv4 trace",
                "aws_sdk trace",
                "hyper_util trace",
            ] {
                assert!(!text.contains(capped), "{directives} let through {capped}");
            }
        }
        let text = logged("warn");
        assert!(text.is_empty(), "the directives still filter: {text}");
        let text = logged("not a directive ===");
        assert!(text.contains("aws_smithy_runtime info") && !text.contains("shared trace"));
    }
}
