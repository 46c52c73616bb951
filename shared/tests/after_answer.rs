//! Inside Lambda a write answers before its events are published, and the invocation is
//! not over until they are: the handler runs under `lambda_runtime` against the Runtime
//! API played on loopback (with its Extensions API), the after-answer extension
//! registered as a write function registers it, and the service's real SDK calls go to
//! the emulator through a proxy that holds the `PutEvents` call.
//!
//! The Runtime API address is process-wide (both the runtime and the extension read it
//! from the environment), so this binary holds this one test.

// The harness the integration binary uses whole; this binary uses part of it.
#[allow(dead_code)]
#[path = "integration/support/mod.rs"]
mod support;

use std::sync::Arc;
use std::time::Duration;

use connectors_infra::api_gateway::ApiEvent;
use connectors_infra::runtime_api::RuntimeApi;
use shared::after_answer::{self, Tracker};
use shared::http::router::Operation;
use support::faults::FaultProxy;
use support::Harness;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_write_answers_before_its_events_are_published_and_the_invocation_waits_for_them() {
    // The publish and clear run in tasks of their own, outside the request's: they sign
    // as the one function this binary serves.
    support::iam::whole_process_is("connect");
    let h = Harness::new().await;
    let (_, key) = h.tenant(true).await;
    let api = RuntimeApi::start().await;
    for (name, value) in [
        ("AWS_LAMBDA_RUNTIME_API", api.addr.to_string()),
        ("AWS_LAMBDA_FUNCTION_NAME", "connect".to_string()),
        ("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "128".to_string()),
        ("AWS_LAMBDA_FUNCTION_VERSION", "$LATEST".to_string()),
    ] {
        // One test in this binary: nothing else reads the environment concurrently.
        std::env::set_var(name, value);
    }

    // As `http::run_function` does: register first, then serve under the collecting
    // layer (here with the proxy in front of the emulator, and signed as `connect`).
    let tracker = Arc::new(Tracker::default());
    let extension = after_answer::register(tracker.clone())
        .await
        .expect("the Runtime API takes the extension");
    assert_eq!(api.extensions(), 1);
    let proxy = FaultProxy::start(&support::emulator_endpoint()).await;
    let app: &'static shared::App = Box::leak(Box::new(shared::App::from_clients(
        support::clients(&h.sdk, Some(&proxy.url), None),
        h.settings.clone(),
        h.clock.clone(),
    )));
    let handler = lambda_http::service_fn(move |req: lambda_http::Request| {
        support::as_function("connect", shared::http::handle_operation(app, Operation::Connect, req))
    });
    let serving = after_answer::run(handler, tracker, extension);

    let scenario = async {
        let mut publish = proxy.hold("PutEvents");
        let event = ApiEvent::new("POST", "/v1/integrations/stripe").key(&key).http_api();
        let answer = api.invoke(&event).await;
        assert_eq!(answer.body["statusCode"], 201, "{}", answer.body);
        // The answer is out while the publish is still held: it did not wait for it.
        publish.reached().await;
        assert_eq!(h.outbox().await.len(), 1, "the record waits for its publish");
        // And the invocation is not over: the extension has not asked for the next event.
        let early = tokio::time::timeout(Duration::from_millis(300), api.settled()).await;
        assert!(early.is_err(), "the invocation ended with its publish still running");

        publish.release();
        let settled = api.settled().await;
        assert!(settled >= answer.at);
        let events = h.events(1).await;
        assert_eq!(events.len(), 1, "{events:?}");
        assert_eq!(events[0]["detail-type"], "integration.connected");
        assert!(h.outbox().await.is_empty(), "cleared before the invocation ended");

        // The next invocation is handed over only now, and is served the same way.
        let again = api.invoke(&event).await;
        assert_eq!(again.body["statusCode"], 409, "{}", again.body);
    };
    tokio::select! {
        stopped = serving => panic!("the runtime or the extension stopped: {stopped:?}"),
        () = scenario => {}
    }
}
