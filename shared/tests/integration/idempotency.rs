//! `Idempotency-Key` on the emulator: replay without re-execution, mismatch, and
//! concurrent duplicates executing once.

use crate::support;

use futures::future::join_all;
use serde_json::{json, Value};
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
