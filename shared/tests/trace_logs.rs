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

use std::io::Write;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use http_body_util::{BodyExt, Full};
use hyper::body::{Bytes, Incoming};
use hyper::service::service_fn;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use serde_json::{json, Value};
use shared::api_gateway::ApiEvent;
use shared::http::router::route;
use support::Harness;
use tokio::sync::mpsc;
use tracing_subscriber::layer::{Layer, SubscriberExt};
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::EnvFilter;

#[derive(Clone, Default)]
struct Capture(Arc<Mutex<Vec<u8>>>);

impl Write for Capture {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Capture {
    fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().unwrap()).to_string()
    }
}

/// The Lambda Runtime API of one execution environment: hands out the queued events on
/// `GET …/invocation/next` and passes back what the function posts for each.
struct RuntimeApi {
    addr: SocketAddr,
    events: mpsc::Sender<String>,
    answers: tokio::sync::Mutex<mpsc::Receiver<Value>>,
}

fn respond(status: u16, body: impl Into<Bytes>) -> Response<Full<Bytes>> {
    Response::builder().status(status).body(Full::new(body.into())).unwrap()
}

impl RuntimeApi {
    async fn start() -> RuntimeApi {
        let listener = tokio::net::TcpListener::bind(SocketAddr::from(([127, 0, 0, 1], 0)))
            .await
            .unwrap();
        let addr = listener.local_addr().unwrap();
        let (events, inbox) = mpsc::channel::<String>(1);
        let (answered, answers) = mpsc::channel::<Value>(8);
        let inbox = Arc::new(tokio::sync::Mutex::new(inbox));
        tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    return;
                };
                let (inbox, answered) = (inbox.clone(), answered.clone());
                tokio::spawn(async move {
                    let service = service_fn(move |req: Request<Incoming>| {
                        let (inbox, answered) = (inbox.clone(), answered.clone());
                        async move {
                            if req.uri().path().ends_with("/invocation/next") {
                                let Some(payload) = inbox.lock().await.recv().await else {
                                    return Ok::<_, hyper::Error>(respond(500, "shutting down"));
                                };
                                let deadline = chrono::Utc::now().timestamp_millis() + 30_000;
                                let mut r = respond(200, payload);
                                let h = r.headers_mut();
                                let id = uuid::Uuid::new_v4().to_string();
                                h.insert("lambda-runtime-aws-request-id", id.parse().unwrap());
                                h.insert("lambda-runtime-deadline-ms", deadline.to_string().parse().unwrap());
                                h.insert(
                                    "lambda-runtime-invoked-function-arn",
                                    "arn:aws:lambda:us-east-1:123456789012:function:connectors"
                                        .parse()
                                        .unwrap(),
                                );
                                h.insert(
                                    "lambda-runtime-trace-id",
                                    "Root=1-00000000-000000000000000000000000".parse().unwrap(),
                                );
                                return Ok(r);
                            }
                            let bytes = req
                                .into_body()
                                .collect()
                                .await
                                .map(|b| b.to_bytes())
                                .unwrap_or_default();
                            let _ = answered
                                .send(serde_json::from_slice(&bytes).unwrap_or(Value::Null))
                                .await;
                            Ok(respond(202, "{}"))
                        }
                    });
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                });
            }
        });
        RuntimeApi {
            addr,
            events,
            answers: tokio::sync::Mutex::new(answers),
        }
    }

    /// One invocation: the event in, what the function answered out.
    async fn invoke(&self, event: &Value) -> Value {
        self.events.send(event.to_string()).await.unwrap();
        tokio::time::timeout(Duration::from_secs(60), self.answers.lock().await.recv())
            .await
            .expect("the function answered in time")
            .expect("the runtime API is up")
    }
}

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
            statuses.push(answer["statusCode"].as_u64().unwrap_or_default());
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
