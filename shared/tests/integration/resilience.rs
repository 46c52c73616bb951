//! Dependencies failing: callers get 503 + Retry-After (never AWS text), state stays
//! consistent, and an event the bus refused waits in the outbox instead of being lost.

use crate::support;

use std::sync::Arc;

use serde_json::json;
use shared::aws::events::EventBridgeBus;
use shared::aws::idempotency::DynamoIdempotencyStore;
use shared::aws::keys::DynamoKeyStore;
use shared::aws::secrets::SecretsManagerVault;
use shared::aws::store::DynamoConnectorStore;
use shared::service::Service;
use shared::App;
use support::Harness;

/// Nothing listens here: connections are refused at once.
const CLOSED: &str = "http://127.0.0.1:9";

fn dynamo(h: &Harness, endpoint: Option<&str>) -> aws_sdk_dynamodb::Client {
    let mut b = aws_sdk_dynamodb::config::Builder::from(&h.sdk);
    if let Some(e) = endpoint {
        b = b.endpoint_url(e);
    }
    aws_sdk_dynamodb::Client::from_conf(b.build())
}

/// The harness's wiring, with the named dependencies pointed at a closed port.
fn app_with_outage(h: &Harness, dynamo_down: bool, secrets_down: bool, bus_down: bool) -> App {
    let at = |down: bool| down.then_some(CLOSED);
    let mut sm = aws_sdk_secretsmanager::config::Builder::from(&h.sdk);
    if let Some(e) = at(secrets_down) {
        sm = sm.endpoint_url(e);
    }
    let mut eb = aws_sdk_eventbridge::config::Builder::from(&h.sdk);
    if let Some(e) = at(bus_down) {
        eb = eb.endpoint_url(e);
    }
    let s = &h.settings;
    App {
        service: Service {
            store: Arc::new(DynamoConnectorStore::new(dynamo(h, at(dynamo_down)), &s.table)),
            keys: Arc::new(DynamoKeyStore::new(dynamo(h, at(dynamo_down)), &s.table)),
            idempotency: Arc::new(DynamoIdempotencyStore::new(dynamo(h, at(dynamo_down)), &s.table)),
            vault: Arc::new(SecretsManagerVault::new(
                aws_sdk_secretsmanager::Client::from_conf(sm.build()),
                &s.secret_prefix,
            )),
            bus: Arc::new(EventBridgeBus::new(
                aws_sdk_eventbridge::Client::from_conf(eb.build()),
                &s.event_bus,
                &s.event_source,
            )),
            clock: h.clock.clone(),
        },
        settings: s.clone(),
        fingerprint_key: Arc::new(shared::fingerprint_key::LocalKey::new("resilience")),
    }
}

/// One request served by `app` (an app with an outage), recorded and checked against the
/// contract like every other reply: status, `Retry-After`, body, raw body.
async fn call(
    h: &Harness,
    app: &App,
    method: &str,
    path: &str,
    key: &str,
    body: Option<serde_json::Value>,
) -> (u16, Option<String>, serde_json::Value, String) {
    let r = h.as_key(key).via(app).send(method, path, body).await;
    let retry = r.header("retry-after").map(str::to_string);
    (r.status, retry, r.body, r.raw)
}

fn assert_no_internals(raw: &str) {
    for word in [
        "dynamo",
        "secretsmanager",
        "eventbridge",
        "amazonaws",
        "127.0.0.1",
        "dispatch",
        "connection refused",
        "Error {",
    ] {
        assert!(
            !raw.to_lowercase().contains(&word.to_lowercase()),
            "{word} leaked in {raw}"
        );
    }
}

#[tokio::test]
async fn dynamodb_down_is_a_clean_503_with_retry_after() {
    let h = Harness::new().await;
    let (_, key) = h.tenant(false).await;
    let down = app_with_outage(&h, true, false, false);
    for (method, path) in [
        ("GET", "/v1/integrations"),
        ("GET", "/v1/integrations/stripe"),
        ("POST", "/v1/integrations/stripe"),
        ("DELETE", "/v1/integrations/stripe"),
    ] {
        let (status, retry, body, raw) = call(&h, &down, method, path, &key, None).await;
        assert_eq!(status, 503, "{method} {path}: {raw}");
        assert_eq!(retry.as_deref(), Some("5"));
        assert_eq!(body["code"], "service_unavailable");
        assert!(body["request_id"].as_str().unwrap().starts_with("req_"));
        assert_no_internals(&raw);
    }
}

#[tokio::test]
async fn secrets_manager_down_during_credentials_changes_nothing() {
    let h = Harness::new().await;
    let (entity, key) = h.tenant(false).await;
    h.as_key(&key).post("openai", None).await;
    let down = app_with_outage(&h, false, true, false);
    let (status, retry, _, raw) = call(
        &h,
        &down,
        "PUT",
        "/v1/integrations/openai/credentials",
        &key,
        Some(json!({"credentials": {"api_key": "sk-CANARY-1"}})),
    )
    .await;
    assert_eq!((status, retry.as_deref()), (503, Some("5")), "{raw}");
    assert_no_internals(&raw);
    assert!(!raw.contains("CANARY"));
    let row = h.as_key(&key).get("openai").await;
    assert_eq!(row.body["data"]["credentials_masked"], json!([]), "row unchanged");
    assert_eq!(row.body["data"]["has_credentials_secret_arn"], false);
    assert!(h.describe_secret(entity, "openai").await.is_none());
}

#[tokio::test]
async fn a_refused_event_stays_in_the_outbox_and_the_caller_still_gets_200() {
    let h = Harness::new().await;
    let (entity, key) = h.tenant(false).await;
    h.as_key(&key).post("stripe", None).await;
    h.as_key(&key)
        .put_credentials("stripe", json!({"credentials": {"secret_key": "sk"}}))
        .await;
    assert_eq!(h.events(2).await.len(), 2);
    assert!(h.outbox().await.is_empty());

    let bus_down = app_with_outage(&h, false, false, true);
    let (status, _, body, raw) = call(&h, &bus_down, "DELETE", "/v1/integrations/stripe", &key, None).await;
    assert_eq!(status, 200, "{raw}");
    assert_eq!(body["data"]["is_active"], false);
    assert!(
        h.describe_secret(entity, "stripe")
            .await
            .unwrap()
            .deleted_date()
            .is_some(),
        "secret scheduled all the same"
    );
    assert!(h.events(0).await.is_empty(), "nothing reached the bus");
    let outbox = h.outbox().await;
    assert_eq!(outbox.len(), 1, "the event waits in the outbox");
    assert_eq!(outbox[0]["detail_type"].as_s().unwrap(), "integration.disconnected");
    let detail: serde_json::Value = serde_json::from_str(outbox[0]["detail"].as_s().unwrap()).unwrap();
    assert_eq!(detail["data"]["object"], body["data"]);
}

#[tokio::test]
async fn secrets_manager_down_during_disconnect_is_503_and_a_retry_finishes_the_job() {
    let h = Harness::new().await;
    let (entity, key) = h.tenant(false).await;
    h.as_key(&key).post("shippo", None).await;
    h.as_key(&key)
        .put_credentials("shippo", json!({"credentials": {"api_token": "t"}}))
        .await;
    h.events(2).await;
    let down = app_with_outage(&h, false, true, false);
    let (status, retry, _, _) = call(&h, &down, "DELETE", "/v1/integrations/shippo", &key, None).await;
    assert_eq!((status, retry.as_deref()), (503, Some("5")));
    assert!(
        h.describe_secret(entity, "shippo")
            .await
            .unwrap()
            .deleted_date()
            .is_none(),
        "secret not yet scheduled"
    );
    // The retry (dependencies back) is a no-op on the row but schedules the secret.
    let again = h.as_key(&key).delete("shippo").await;
    assert_eq!(again.status, 200);
    assert!(h
        .describe_secret(entity, "shippo")
        .await
        .unwrap()
        .deleted_date()
        .is_some());
    // A disconnect announces itself beside its secret step (it only takes access away),
    // so the event went out; the record stays, since the secret step failed. The
    // sweeper finishes it and re-announces the same event once (consumers dedupe on id).
    let announced = h.events(1).await;
    assert_eq!(announced.len(), 1, "announced by the request");
    assert_eq!(announced[0]["detail-type"], "integration.disconnected");
    assert_eq!(h.outbox().await.len(), 1, "the secret duty waits for the sweeper");
    h.clock.advance_seconds(shared::ports::OUTBOX_GRACE_SECONDS + 1);
    let report = h.sweep().await;
    assert_eq!((report.republished, report.failed), (1, 0));
    let events = h.events(1).await;
    assert_eq!(events.len(), 1, "re-announced once");
    assert_eq!(
        events[0]["detail"]["id"], announced[0]["detail"]["id"],
        "the same event"
    );
    assert_eq!(h.sweep().await.republished, 0);
    assert!(h.events(0).await.is_empty(), "no further duplicate");
}
