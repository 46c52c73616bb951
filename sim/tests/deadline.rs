//! The 503 at the deadline, on the simulated clock: a request whose DynamoDB calls never
//! return is cut 1.5 s before its invocation's deadline, its `Idempotency-Key`
//! bookkeeping 0.25 s before it, and it answers before the deadline — measured on the
//! simulator's clock, which the executor moves 50 ms per step, not on the wall clock.
//! The emulator's `credential_safety.rs` tests run the same path through the AWS SDK.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use lambda_http::RequestExt;
use serde_json::Value;
use shared::config::{FingerprintKey, Settings};
use shared::domain::api_key::Scope;
use shared::domain::error::Dependency;
use shared::domain::ids::EntityId;
use shared::memory::{Call, Fault, FaultFuture, Hooks, Memory};
use sim::exec::{run_to_end, step, SimClock};

const DEADLINE_MS: i64 = 10_000;
const STEP_MS: i64 = 50;

/// DynamoDB calls past the first `free` ones never return.
struct StallDynamoDb {
    calls: AtomicUsize,
    free: AtomicUsize,
}

impl Hooks for StallDynamoDb {
    fn call(&self, call: Call) -> FaultFuture {
        if call.dependency == Dependency::DynamoDb
            && self.calls.fetch_add(1, Ordering::SeqCst) >= self.free.load(Ordering::SeqCst)
        {
            return Box::pin(std::future::pending());
        }
        Box::pin(std::future::ready(Fault::None))
    }
}

/// Sends a connect with `idempotency_key` after `free` more DynamoDB calls are let
/// through; returns its status, body, and when (simulated ms after it started) it
/// answered.
fn stalled_connect(idempotency_key: Option<&str>, free: usize) -> (u16, Value, i64) {
    let clock = Arc::new(SimClock::new(1_700_000_000_000));
    let hooks = Arc::new(StallDynamoDb {
        calls: AtomicUsize::new(0),
        free: AtomicUsize::new(usize::MAX),
    });
    let memory = Memory::new(hooks.clone(), clock.clone(), "sim/");
    let settings = Settings {
        fingerprint_key: FingerprintKey::Local("deadline".into()),
        ..Settings::from_lookup(|_| None)
    };
    let app = Arc::new(memory.app(settings));
    let entity = EntityId::from(uuid::Uuid::from_u128(9));
    let scopes = Scope::ALL.iter().copied().collect();
    let key = run_to_end(Box::pin(shared::admin::create_key(&app, entity, scopes, false, None)))
        .expect("a key")
        .plaintext;
    hooks
        .free
        .store(hooks.calls.load(Ordering::SeqCst) + free, Ordering::SeqCst);

    let started = clock.ms();
    let mut context = lambda_http::Context::default();
    context.deadline = u64::try_from(started + DEADLINE_MS).unwrap();
    let mut builder = lambda_http::http::Request::builder()
        .method("POST")
        .uri("https://api.sim/v1/integrations/stripe")
        .header("authorization", format!("Bearer {key}"));
    if let Some(k) = idempotency_key {
        builder = builder.header("idempotency-key", k);
    }
    let req = builder
        .body(lambda_http::Body::Empty)
        .unwrap()
        .with_lambda_context(context);
    let mut task: sim::exec::BoxedTask<'static, (u16, Value)> = Box::pin(async move {
        let response = shared::http::handle(&app, req).await;
        let raw = String::from_utf8_lossy(response.body().as_ref()).to_string();
        (
            response.status().as_u16(),
            serde_json::from_str(&raw).unwrap_or(Value::Null),
        )
    });
    loop {
        if let Some((status, body)) = step(&mut task) {
            return (status, body, clock.ms() - started);
        }
        assert!(clock.ms() - started < 2 * DEADLINE_MS, "never answered");
        clock.advance_ms(STEP_MS);
    }
}

fn ran_out_of_time(body: &Value) -> bool {
    body["hint"].as_str().is_some_and(|h| h.contains("ran out of time"))
}

#[test]
fn a_request_whose_dynamodb_call_never_returns_answers_503_before_its_deadline() {
    // The key's lookup passes; the connect's first read never returns.
    let (status, body, answered_after) = stalled_connect(None, 1);
    assert_eq!((status, ran_out_of_time(&body)), (503, true), "{body}");
    assert_eq!(body["code"], "service_unavailable");
    // Cut once 8.5 s have passed, at the first step after.
    assert!(
        (DEADLINE_MS - 1_500..DEADLINE_MS - 1_500 + STEP_MS).contains(&answered_after),
        "answered {answered_after} ms after it started"
    );
}

#[test]
fn a_claim_release_that_stalls_too_is_cut_before_the_deadline() {
    // The key's lookup and the claim pass; everything after stalls, the claim's release
    // included.
    let (status, body, answered_after) = stalled_connect(Some("deadline-2"), 2);
    assert_eq!((status, ran_out_of_time(&body)), (503, true), "{body}");
    // The operation is cut at 8.5 s, the release at 9.75 s: the answer comes between, and
    // before the deadline.
    assert!(
        (DEADLINE_MS - 250..DEADLINE_MS).contains(&answered_after),
        "answered {answered_after} ms after it started"
    );
}
