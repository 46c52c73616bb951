//! `RUST_LOG=trace` must not write secrets. Write requests go through lambda_runtime
//! itself (the Lambda Runtime API is played on loopback, so the runtime's own handling of
//! the raw invocation event runs), the handler, and the service's real SDK calls to the
//! emulator, all logged through `shared::telemetry`'s filter set to `trace`. The canary
//! credential values, webhook secret and Bearer key must never appear in that output.
//!
//! A second layer logs the same events through a plain `trace` filter, without the cap:
//! it must contain the canaries, which shows that these paths really do write them at
//! trace, and that the cap is what keeps them out.
//!
//! The subscriber is global (the runtime and the SDK log from wherever they run), so this
//! binary holds this one test.

// The harness the integration binary uses whole; this binary uses part of it.
#[allow(dead_code)]
#[path = "integration/support/mod.rs"]
mod support;

use connectors_infra::api_gateway::ApiEvent;
use connectors_infra::runtime_api::RuntimeApi;
use logs::Capture;
use serde_json::json;
use shared::http::router::route;
use support::Harness;
use tracing_subscriber::layer::{Layer, SubscriberExt};
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::EnvFilter;

#[path = "integration/support/logs.rs"]
mod logs;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn trace_logging_writes_no_credential_and_no_bearer_key() {
    let (capped, raw) = (Capture::default(), Capture::default());
    let (capped_sink, raw_sink) = (capped.clone(), raw.clone());
    tracing_subscriber::registry()
        .with(
            shared::telemetry::json_layer(move || capped_sink.clone()).with_filter(shared::telemetry::filter("trace")),
        )
        .with(shared::telemetry::json_layer(move || raw_sink.clone()).with_filter(EnvFilter::new("trace")))
        .init();

    let h = Harness::new().await;
    let (_, key) = h.tenant(false).await;
    let canary = |name: &str| format!("CANARY-{name}-{}", uuid::Uuid::new_v4().simple());
    let (first, second, webhook) = (canary("sk1"), canary("sk2"), canary("whsec"));

    let api = RuntimeApi::start().await;
    for (name, value) in [
        ("AWS_LAMBDA_RUNTIME_API", api.addr.to_string()),
        ("AWS_LAMBDA_FUNCTION_NAME", "connectors".to_string()),
        ("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "128".to_string()),
        ("AWS_LAMBDA_FUNCTION_VERSION", "$LATEST".to_string()),
    ] {
        // One test in this binary: nothing else reads the environment concurrently.
        std::env::set_var(name, value);
    }
    // One handler for every route (each function's binary serves one; the code is the same).
    let app = &h.app;
    let handler = lambda_http::service_fn(move |req: lambda_http::Request| {
        let operation = route(req.method().as_str(), req.uri().path())
            .expect("a routed event")
            .operation;
        support::as_function(
            operation.function_name(),
            shared::http::handle_operation(app, operation, req),
        )
    });
    let runtime = lambda_http::run(handler);

    let base = "/v1/integrations/stripe";
    let credentials = |secret: &str| json!({"credentials": {"secret_key": secret}, "webhook_secret": webhook});
    let invocations = async {
        let mut statuses = Vec::new();
        for (method, path, body) in [
            ("POST", base.to_string(), None),
            ("PUT", format!("{base}/credentials"), Some(credentials(&first))),
            ("PUT", format!("{base}/credentials"), Some(credentials(&second))),
            ("DELETE", base.to_string(), None),
            ("POST", format!("{base}/restore"), None),
        ] {
            let answer = api
                .invoke(&ApiEvent::new(method, &path).key(&key).body(body.as_ref()).http_api())
                .await;
            statuses.push(answer.body["statusCode"].as_u64().unwrap_or_default());
        }
        statuses
    };
    let statuses = tokio::select! {
        stopped = runtime => panic!("the runtime stopped: {stopped:?}"),
        statuses = invocations => statuses,
    };
    assert_eq!(statuses, [201, 200, 200, 200, 200]);

    let (capped, raw) = (capped.text(), raw.text());
    let secrets = [first.as_str(), second.as_str(), webhook.as_str(), key.as_str()];
    // Without the cap, trace writes every one of them: the raw event (the Bearer key, the
    // credentials), the SDK's request bodies (CreateSecret, PutSecretValue).
    for secret in secrets {
        assert!(
            raw.contains(secret),
            "uncapped trace does not write {secret}: the test lost its teeth"
        );
    }
    assert!(raw.contains("raw JSON event received from Lambda"));
    assert!(raw.contains("transmitting request"));
    // With it, trace still logs (the service's own lines and the capped crates' info), but
    // none of them.
    assert!(capped.contains("request served"), "the capped log has the requests");
    for line in capped.lines() {
        for secret in secrets {
            assert!(!line.contains(secret), "a secret in the trace log: {line}");
        }
        assert!(!line.contains("CANARY-"), "a canary fragment in the trace log: {line}");
    }
    println!(
        "trace canaries: {} log lines capped, {} uncapped",
        capped.lines().count(),
        raw.lines().count()
    );
}
