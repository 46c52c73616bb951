//! The write path's calls, as the proxy sees them: which a write makes, and which it
//! makes side by side (docs/ARCHITECTURE.md, "Which calls overlap").

use std::time::Duration;

use serde_json::json;

use crate::support::{self, faults::FaultProxy, Harness, Reply};

/// Polls the proxy's calls until `operation` has been seen (or `wait` has passed).
async fn seen(proxy: &FaultProxy, operation: &str, wait: Duration) -> bool {
    let until = tokio::time::Instant::now() + wait;
    loop {
        if proxy.calls().0.iter().any(|c| c.ends_with(operation)) {
            return true;
        }
        if tokio::time::Instant::now() >= until {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// A connect that creates its row tries the conditional create first: no read of the
/// row before it (the create's condition is what tells a row there).
#[tokio::test]
async fn a_connect_of_a_new_row_makes_no_read_before_its_create() {
    let h = Harness::new().await;
    let (_, key) = h.tenant(false).await;
    let proxy = FaultProxy::start(&support::emulator_endpoint()).await;
    let app = h.app_via(&proxy.url);
    // The key's lookup is cached by the container's first request.
    assert_eq!(h.as_key(&key).via(&app).get("ups").await.status, 404);
    proxy.record();
    let created = h.as_key(&key).via(&app).post("ups", None).await;
    assert_eq!(created.status, 201, "{}", created.raw);
    let (calls, _) = proxy.calls();
    let ops: Vec<&str> = calls.iter().map(|c| c.rsplit('.').next().unwrap_or_default()).collect();
    assert_eq!(ops, ["TransactWriteItems", "PutEvents", "DeleteItem"], "{calls:?}");
    // Over an existing row the refused create is followed by the read, and the answer
    // is as before.
    let again = h.as_key(&key).via(&app).post("ups", None).await;
    assert_eq!((again.status, again.error_code().as_str()), (409, "already_connected"));
}

/// A tenant with a `connector_type` row holding `credentials`, and a container whose
/// calls go through a recording proxy.
async fn connected_behind_a_proxy(
    connector_type: &str,
    credentials: serde_json::Value,
) -> (Harness, shared::domain::ids::EntityId, String, FaultProxy, shared::App) {
    let h = Harness::new().await;
    let (entity, key) = h.tenant(false).await;
    assert_eq!(h.as_key(&key).post(connector_type, None).await.status, 201);
    let put = h.as_key(&key).put_credentials(connector_type, credentials).await;
    assert_eq!(put.status, 200, "{}", put.raw);
    h.events(2).await;
    let proxy = FaultProxy::start(&support::emulator_endpoint()).await;
    let app = h.app_via(&proxy.url);
    proxy.record();
    (h, entity, key, proxy, app)
}

/// Runs `request` with its `held` call held until `watched` has been seen at the proxy
/// (or `wait` has passed): its answer, and whether `watched` came while `held` waited.
async fn seen_while_held<F: std::future::Future<Output = Reply>>(
    proxy: &FaultProxy,
    held: &str,
    watched: &str,
    wait: Duration,
    request: F,
) -> (Reply, bool) {
    let mut hold = proxy.hold(held);
    let watch = async {
        hold.reached().await;
        let came = seen(proxy, watched, wait).await;
        hold.release();
        came
    };
    tokio::join!(request, watch)
}

/// A disconnect only takes access away, so its event goes out while its secret step is
/// still in flight; the request still answers only once that step is done.
#[tokio::test]
async fn a_disconnect_announces_beside_its_secret_step() {
    let creds = json!({"credentials": {"api_token": "t"}});
    let (h, entity, key, proxy, app) = connected_behind_a_proxy("shippo", creds).await;
    let disconnect = h.as_key(&key).via(&app).delete("shippo");
    let wait = Duration::from_secs(5);
    let (reply, announced) = seen_while_held(&proxy, "DeleteSecret", "PutEvents", wait, disconnect).await;
    assert_eq!(reply.status, 200, "{}", reply.raw);
    assert!(announced, "the event waited for the secret step: {:?}", proxy.calls().0);
    let secret = h.describe_secret(entity, "shippo").await.expect("kept");
    assert!(secret.deleted_date().is_some(), "scheduled before the answer");
    assert!(h.outbox().await.is_empty(), "delivered and cleared");
}

/// A credentials PUT grants access to new values: its event goes out only once its
/// version is current, so a consumer that reads the secret on hearing of it gets them.
#[tokio::test]
async fn a_credentials_put_announces_only_once_its_version_is_current() {
    let first = json!({"credentials": {"secret_key": "sk_one"}});
    let (h, entity, key, proxy, app) = connected_behind_a_proxy("stripe", first).await;
    let second = json!({"credentials": {"secret_key": "sk_two"}});
    let put = h.as_key(&key).via(&app).put_credentials("stripe", second);
    let wait = Duration::from_millis(500);
    let (reply, announced_early) = seen_while_held(&proxy, "UpdateSecretVersionStage", "PutEvents", wait, put).await;
    assert_eq!(reply.status, 200, "{}", reply.raw);
    assert!(
        !announced_early,
        "announced before the version was current: {:?}",
        proxy.calls().0
    );
    let events = h.events(1).await;
    assert_eq!(events[0]["detail-type"], "integration.credentials_updated");
    let value = h.secret_value(entity, "stripe").await.expect("readable");
    assert_eq!(value["credentials"]["secret_key"], "sk_two");
}
