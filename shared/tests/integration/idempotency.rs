//! `Idempotency-Key` on the emulator: replay without re-execution, mismatch, and
//! concurrent duplicates executing once.

use crate::support;

use futures::future::join_all;
use serde_json::{json, Value};
use shared::ports::IDEMPOTENCY_LEASE_SECONDS;
use support::faults::{Fault, FaultProxy};
use support::{Harness, Reply};

#[tokio::test]
async fn a_retry_with_the_same_key_replays_without_executing_again() {
    let h = Harness::new().await;
    let (_, key) = h.tenant(false).await;
    let body = json!({"display_name": "Once"});
    let first = h
        .as_key(&key)
        .idempotency_key("create-stripe-1")
        .post("stripe", Some(body.clone()))
        .await;
    assert_eq!(first.status, 201);
    assert!(first.header("idempotent-replayed").is_none());
    h.clock.advance_seconds(3600);
    let replay = h
        .as_key(&key)
        .idempotency_key("create-stripe-1")
        .post("stripe", Some(body.clone()))
        .await;
    assert_eq!(
        replay.status, 201,
        "the stored status, not 409 already_connected: {}",
        replay.raw
    );
    assert_eq!(replay.body, first.body);
    assert_eq!(replay.header("idempotent-replayed"), Some("true"));
    assert_ne!(
        replay.header("x-request-id"),
        first.header("x-request-id"),
        "a new request id"
    );
    assert_eq!(h.events(1).await.len(), 1, "executed once, announced once");

    // Disconnect and a 204 permanent delete replay too.
    let d1 = h.as_key(&key).idempotency_key("dc-1").delete("stripe").await;
    let d2 = h.as_key(&key).idempotency_key("dc-1").delete("stripe").await;
    assert_eq!((d1.status, d2.status), (200, 200));
    assert_eq!(d1.body, d2.body);
    let p1 = h.as_key(&key).idempotency_key("purge-1").purge("stripe").await;
    let p2 = h.as_key(&key).idempotency_key("purge-1").purge("stripe").await;
    assert_eq!((p1.status, p2.status, p2.raw.as_str()), (204, 204, ""));
    let types: Vec<Value> = h.events(2).await.iter().map(|e| e["detail-type"].clone()).collect();
    assert_eq!(types, ["integration.disconnected", "integration.deleted"]);

    // After 24 hours the key is forgotten and the request executes again.
    h.clock.advance_seconds(24 * 3600);
    let later = h
        .as_key(&key)
        .idempotency_key("create-stripe-1")
        .post("stripe", Some(body.clone()))
        .await;
    assert_eq!(later.status, 201);
    assert_ne!(later.body["data"]["id"], first.body["data"]["id"]);
}

#[tokio::test]
async fn the_same_key_with_a_different_request_is_409_mismatch() {
    let h = Harness::new().await;
    let (_, key) = h.tenant(false).await;
    h.as_key(&key)
        .idempotency_key("k1")
        .post("ups", Some(json!({"display_name": "A"})))
        .await;
    for (method, path, body) in [
        ("POST", "/v1/integrations/ups", Some(json!({"display_name": "B"}))),
        ("POST", "/v1/integrations/fedex", Some(json!({"display_name": "A"}))),
        ("PATCH", "/v1/integrations/ups", Some(json!({"display_name": "A"}))),
    ] {
        let r = h.as_key(&key).idempotency_key("k1").send(method, path, body).await;
        assert_eq!(
            (r.status, r.error_code().as_str()),
            (409, "idempotency_key_mismatch"),
            "{method} {path}"
        );
    }
    assert_eq!(h.as_key(&key).get("fedex").await.status, 404, "not executed");
    // Keys are per entity: another tenant may use the same key.
    let (_, other) = h.tenant(false).await;
    assert_eq!(
        h.as_key(&other).idempotency_key("k1").post("fedex", None).await.status,
        201
    );
    // Bad keys are refused up front.
    let long = "x".repeat(256);
    let r = h.as_key(&key).idempotency_key(&long).post("usps", None).await;
    assert_eq!((r.status, r.body["param"].as_str()), (400, Some("Idempotency-Key")));
}

#[tokio::test]
async fn failed_requests_are_not_stored_so_a_corrected_retry_can_run() {
    let h = Harness::new().await;
    let (_, key) = h.tenant(false).await;
    let credentials = json!({"credentials": {"client_id": "a", "client_secret": "b", "refresh_token": "c"}});
    let put = || {
        h.as_key(&key)
            .idempotency_key("creds-1")
            .put_credentials("amazon", credentials.clone())
    };
    let missing = put().await;
    assert_eq!(missing.status, 404);
    h.as_key(&key).post("amazon", None).await;
    let retry = put().await;
    assert_eq!(retry.status, 200, "{}", retry.raw);
}

#[tokio::test]
async fn concurrent_duplicates_execute_once() {
    let h = Harness::isolated().await;
    let (_, key) = h.tenant(false).await;
    let body = json!({"display_name": "Racy"});
    let replies = join_all((0..8).map(|_| {
        h.as_key(&key)
            .idempotency_key("race-1")
            .post("google", Some(body.clone()))
    }))
    .await;
    let created: Vec<&Reply> = replies.iter().filter(|r| r.status == 201).collect();
    assert!(!created.is_empty());
    for r in &replies {
        match r.status {
            201 => assert_eq!(r.body, created[0].body, "replays carry the one result"),
            409 => assert_eq!(r.error_code(), "conflict", "in progress: {}", r.raw),
            other => panic!("unexpected {other}: {}", r.raw),
        }
    }
    let ids: std::collections::BTreeSet<String> = created.iter().map(|r| r.body["data"]["id"].to_string()).collect();
    assert_eq!(ids.len(), 1, "one row");
    let events = h.events(1).await;
    assert_eq!(events.len(), 1, "one execution, one event: {events:?}");
}

// A retry after a committed write gets the committed answer ---------------------------

/// The harness's wiring with every AWS call sent to `endpoint` (a fault proxy).
fn app_via(h: &Harness, endpoint: &str) -> shared::App {
    h.app_via(endpoint)
}

/// `req` as a Lambda invocation with 3 s left: the operation is cut short 1.5 s in.
fn near_deadline(req: lambda_http::Request) -> lambda_http::Request {
    use lambda_http::RequestExt;
    let mut context = lambda_http::Context::default();
    context.deadline = u64::try_from(chrono::Utc::now().timestamp_millis()).unwrap() + 3000;
    req.with_lambda_context(context)
}

fn replayed(reply: &Reply) -> bool {
    reply.header("idempotent-replayed") == Some("true")
}

/// A connect whose transaction committed, cut short at the deadline while its event was
/// being published (503): the retry with the same key is the connect's answer, 201, not
/// a 409 `already_connected` from running again against the new row.
#[tokio::test]
async fn a_connect_committed_then_cut_short_replays_201_on_retry() {
    let h = Harness::new().await;
    let (_, key) = h.tenant(false).await;
    let proxy = FaultProxy::start(&support::emulator_endpoint()).await;
    let app = app_via(&h, &proxy.url);
    let caller = || h.as_key(&key).idempotency_key("connect-cut-1");
    let body = json!({"display_name": "Cut"});

    proxy.arm_operation("PutEvents", Fault::Timeout);
    let req = caller().request("POST", "/v1/integrations/printnode", Some(body.clone()));
    let first = h.send_via(&app, near_deadline(req)).await;
    assert_eq!(
        (first.status, first.error_code().as_str()),
        (503, "service_unavailable")
    );
    proxy.disarm();
    let row = h.as_key(&key).get("printnode").await;
    assert_eq!(row.status, 200, "the connect committed");

    let retry = caller().post("printnode", Some(body)).await;
    assert_eq!(retry.status, 201, "{}", retry.raw);
    assert!(replayed(&retry), "replayed, not executed again");
    assert_eq!(retry.body["data"]["id"], row.body["data"]["id"]);
}

/// A re-connect that committed but whose secret step after the transaction failed (503):
/// the retry replays the 200 — after restoring the secret, so the answer is true.
#[tokio::test]
async fn a_reconnect_whose_secret_step_failed_after_commit_replays_200_with_the_secret_live() {
    let h = Harness::new().await;
    let (entity, key) = h.tenant(false).await;
    let proxy = FaultProxy::start(&support::emulator_endpoint()).await;
    let app = app_via(&h, &proxy.url);
    assert_eq!(h.as_key(&key).post("amazon", None).await.status, 201);
    let credentials = json!({"credentials": {"client_id": "a", "client_secret": "b", "refresh_token": "c"}});
    assert_eq!(h.as_key(&key).put_credentials("amazon", credentials).await.status, 200);
    assert_eq!(h.as_key(&key).delete("amazon").await.status, 200);
    let caller = || h.as_key(&key).idempotency_key("reconnect-1").via(&app);

    // The restore before the commit goes through; the one after it (the secret follows
    // the committed row) fails on every attempt.
    proxy.arm_call("secretsmanager.RestoreSecret", 1, Fault::ServerError);
    let first = caller().post("amazon", None).await;
    assert_eq!(first.status, 503, "{}", first.raw);
    proxy.disarm();

    proxy.record();
    let retry = caller().post("amazon", None).await;
    assert_eq!(retry.status, 200, "{}", retry.raw);
    assert!(replayed(&retry));
    let (calls, _) = proxy.calls();
    assert!(
        calls.iter().any(|c| c.ends_with("RestoreSecret")) && !calls.iter().any(|c| c.ends_with("TransactWriteItems")),
        "the replay redid the secret step, and nothing else: {calls:?}"
    );
    assert_eq!(retry.body["data"]["is_active"], true);
    let secret = h.describe_secret(entity, "amazon").await.expect("the secret");
    assert!(
        secret.deleted_date().is_none(),
        "the replayed 200 finds the secret live"
    );
}

/// A permanent delete that committed, cut short while deleting the secret (503): the
/// retry replays the 204, not a 404, and deletes the secret first.
#[tokio::test]
async fn a_purge_committed_then_cut_short_replays_204_and_deletes_the_secret() {
    let h = Harness::new().await;
    let (entity, key) = h.tenant(false).await;
    let proxy = FaultProxy::start(&support::emulator_endpoint()).await;
    let app = app_via(&h, &proxy.url);
    assert_eq!(h.as_key(&key).post("amazon", None).await.status, 201);
    let credentials = json!({"credentials": {"client_id": "a", "client_secret": "b", "refresh_token": "c"}});
    assert_eq!(h.as_key(&key).put_credentials("amazon", credentials).await.status, 200);
    let name = h.secret_name(entity, "amazon").await;
    let caller = || h.as_key(&key).idempotency_key("purge-cut-1");

    proxy.arm_operation("DeleteSecret", Fault::Timeout);
    let req = caller().request("DELETE", "/v1/integrations/amazon?permanent=true", None);
    let first = h.send_via(&app, near_deadline(req)).await;
    assert_eq!(first.status, 503, "{}", first.raw);
    proxy.disarm();
    assert_eq!(h.as_key(&key).get("amazon").await.status, 404, "the delete committed");
    // Cut, the request still owed its commit's secret step: it ran it in the time kept
    // back for answering (only the faulted call was held).
    assert!(
        h.secrets_of(entity).await.is_empty(),
        "the cut request deleted the secret"
    );

    let retry = caller().purge("amazon").await;
    assert_eq!((retry.status, retry.raw.as_str()), (204, ""), "{}", retry.raw);
    assert!(replayed(&retry));
    assert!(
        h.secrets_of(entity)
            .await
            .iter()
            .all(|s| s.name() != Some(name.as_str())),
        "the replayed 204 finds the secret deleted"
    );
}

/// A credentials PUT that committed, cut short while publishing (503): the retry replays
/// the 200 without writing the secret again or announcing a second `credentials_updated`.
#[tokio::test]
async fn a_credentials_put_committed_then_cut_short_replays_without_writing_or_announcing_again() {
    let h = Harness::new().await;
    let (_, key) = h.tenant(false).await;
    let proxy = FaultProxy::start(&support::emulator_endpoint()).await;
    let app = app_via(&h, &proxy.url);
    assert_eq!(h.as_key(&key).post("amazon", None).await.status, 201);
    h.events(1).await;
    let credentials = json!({"credentials": {"client_id": "a", "client_secret": "b", "refresh_token": "c"}});
    let caller = || h.as_key(&key).idempotency_key("creds-cut-1");

    proxy.arm_operation("PutEvents", Fault::Timeout);
    let req = caller().request("PUT", "/v1/integrations/amazon/credentials", Some(credentials.clone()));
    let first = h.send_via(&app, near_deadline(req)).await;
    assert_eq!(first.status, 503, "{}", first.raw);

    proxy.record();
    let retry = caller().via(&app).put_credentials("amazon", credentials).await;
    assert_eq!(retry.status, 200, "{}", retry.raw);
    assert!(replayed(&retry));
    let (calls, _) = proxy.calls();
    assert!(
        !calls
            .iter()
            .any(|c| c.ends_with("PutSecretValue") || c.ends_with("PutEvents")),
        "the retry wrote or announced again: {calls:?}"
    );
    let pending = h.outbox().await;
    assert_eq!(
        pending.len(),
        1,
        "one credentials_updated, left for the sweeper: {pending:?}"
    );
    assert!(h.events(0).await.is_empty(), "nothing announced twice");
}

/// The claim's `PutItem` takes effect but its answer is lost; the SDK's retry fails its
/// condition on our own claim. The request recognises its token and executes, instead of
/// answering "still in progress" (and blocking its key for the lease).
#[tokio::test]
async fn a_claim_whose_answer_was_lost_is_recognised_as_our_own() {
    let h = Harness::new().await;
    let (_, key) = h.tenant(false).await;
    let proxy = FaultProxy::start(&support::emulator_endpoint()).await;
    let app = app_via(&h, &proxy.url);
    let caller = || h.as_key(&key).idempotency_key("lost-claim-1").via(&app);

    proxy.arm_call("PutItem", 0, Fault::LostAnswer);
    let first = caller().post("ups", None).await;
    let (calls, injected) = proxy.calls();
    assert_eq!(injected, 1, "the claim's answer was lost: {calls:?}");
    assert_eq!(first.status, 201, "{}", first.raw);
    let retry = caller().post("ups", None).await;
    assert_eq!((retry.status, replayed(&retry)), (201, true), "{}", retry.raw);
    assert_eq!(retry.body, first.body);
}

/// A connect killed right after its transaction committed (while publishing), before any
/// bookkeeping: once the claim's lease has run out, the retry replays the 201 — the
/// answer was stored by the transaction itself — instead of taking the claim over and
/// running again into a 409 `already_connected`.
#[tokio::test]
async fn a_connect_killed_after_its_commit_replays_201_once_the_lease_runs_out() {
    let h = Harness::new().await;
    let (_, key) = h.tenant(false).await;
    let proxy = FaultProxy::start(&support::emulator_endpoint()).await;
    let app = app_via(&h, &proxy.url);
    let caller = || h.as_key(&key).idempotency_key("killed-1").via(&app);

    let mut hold = proxy.hold("PutEvents");
    let first = caller().post("shippo", None);
    tokio::select! {
        reply = first => panic!("answered before its event was published: {}", reply.raw),
        () = hold.reached() => {}
    }
    drop(hold); // the request is gone, and its held call with it
    let row = h.as_key(&key).get("shippo").await;
    assert_eq!(row.status, 200, "the connect committed");

    h.clock.advance_seconds(IDEMPOTENCY_LEASE_SECONDS);
    let retry = caller().post("shippo", None).await;
    assert_eq!(retry.status, 201, "{}", retry.raw);
    assert!(replayed(&retry));
    assert_eq!(retry.body["data"]["id"], row.body["data"]["id"]);
}

/// The connect's transaction takes effect but its answer is lost. Whatever the request
/// then answers (DynamoDB's `ClientRequestToken` makes the SDK's retry succeed; moto runs
/// it again and fails its condition, so the request sees a lost race), the key was made
/// done by that transaction and is not released: the retry replays the 201.
#[tokio::test]
async fn a_connect_whose_transaction_answer_was_lost_replays_201_on_retry() {
    let h = Harness::new().await;
    let (_, key) = h.tenant(false).await;
    let proxy = FaultProxy::start(&support::emulator_endpoint()).await;
    let app = app_via(&h, &proxy.url);
    let caller = || h.as_key(&key).idempotency_key("lost-commit-1").via(&app);

    proxy.arm_call("TransactWriteItems", 0, Fault::LostAnswer);
    let first = caller().post("ebay", None).await;
    assert_eq!(
        proxy.calls().1,
        1,
        "the transaction's answer was lost: {:?} {}",
        proxy.calls(),
        first.raw
    );
    proxy.disarm();
    let row = h.as_key(&key).get("ebay").await;
    assert_eq!(row.status, 200, "the connect committed; first answer: {}", first.raw);

    let retry = caller().post("ebay", None).await;
    assert_eq!(retry.status, 201, "first answer: {}; retry: {}", first.raw, retry.raw);
    assert!(replayed(&retry));
    assert_eq!(retry.body["data"]["id"], row.body["data"]["id"]);
}
