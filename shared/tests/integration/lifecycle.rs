//! The lifecycle (docs/DECISIONS.md, "Lifecycle") on the emulator: every transition of the lifecycle diagram, with the row,
//! the secret and the delivered events checked after each.

use crate::support;

use serde_json::{json, Value};
use shared::domain::api_key::Scope;
use support::Harness;

fn types(events: &[Value]) -> Vec<String> {
    events
        .iter()
        .map(|e| e["detail-type"].as_str().unwrap().to_string())
        .collect()
}

async fn connected_with_credentials(h: &Harness, key: &str, t: &str, credentials: Value) -> Value {
    assert_eq!(h.as_key(key).post(t, None).await.status, 201);
    let r = h
        .as_key(key)
        .put_credentials(t, json!({ "credentials": credentials }))
        .await;
    assert_eq!(r.status, 200, "{}", r.raw);
    h.events(2).await;
    r.body["data"].clone()
}

#[tokio::test]
async fn disconnect_restore_disconnect_keeps_one_row_and_one_secret() {
    let h = Harness::new().await;
    let (entity, key) = h.tenant(false).await;
    let row = connected_with_credentials(&h, &key, "stripe", json!({"secret_key": "sk_1"})).await;

    assert_eq!(h.as_key(&key).delete("stripe").await.status, 200);
    assert!(h.secret_value(entity, "stripe").await.is_none());
    h.clock.advance_seconds(3600);
    let restored = h.as_key(&key).restore("stripe").await;
    assert_eq!(restored.status, 200, "{}", restored.raw);
    let data = &restored.body["data"];
    assert_eq!(
        (data["id"].clone(), data["is_active"].clone()),
        (row["id"].clone(), json!(true))
    );
    assert_eq!(
        (data["disconnected_at"].clone(), data["recoverable_until"].clone()),
        (Value::Null, Value::Null)
    );
    assert_eq!(data["credentials_masked"], json!(["secret_key"]));
    assert!(
        !h.raw_row(entity, "stripe").await.unwrap().contains_key("ttl"),
        "TTL attribute removed"
    );
    assert!(
        h.describe_secret(entity, "stripe")
            .await
            .unwrap()
            .deleted_date()
            .is_none(),
        "secret restored"
    );
    assert_eq!(
        h.secret_value(entity, "stripe").await.unwrap()["credentials"]["secret_key"],
        "sk_1"
    );

    assert_eq!(h.as_key(&key).delete("stripe").await.status, 200);
    assert!(h
        .describe_secret(entity, "stripe")
        .await
        .unwrap()
        .deleted_date()
        .is_some());
    assert_eq!(
        types(&h.events(3).await),
        [
            "integration.disconnected",
            "integration.restored",
            "integration.disconnected"
        ]
    );
}

#[tokio::test]
async fn restore_is_a_noop_when_active_404_when_unknown_410_when_too_late() {
    let h = Harness::new().await;
    let (entity, key) = h.tenant(false).await;
    assert_eq!(h.as_key(&key).restore("ups").await.status, 404);
    h.as_key(&key).post("ups", None).await;
    h.events(1).await;
    let noop = h.as_key(&key).restore("ups").await;
    assert_eq!(
        (noop.status, noop.body["data"]["is_active"].clone()),
        (200, json!(true))
    );
    assert!(h.events(0).await.is_empty(), "no event for a no-op");

    h.as_key(&key).delete("ups").await;
    h.clock.advance_seconds(7 * 86_400);
    let late = h.as_key(&key).restore("ups").await;
    assert_eq!(
        (late.status, late.error_code().as_str()),
        (410, "recovery_window_expired")
    );
    assert!(
        h.raw_row(entity, "ups").await.is_some(),
        "the row still exists until swept"
    );
    let patch = h.as_key(&key).patch("ups", json!({"is_active": true})).await;
    assert_eq!(patch.status, 410);
}

#[tokio::test]
async fn posting_a_disconnected_connector_reconnects_it_with_its_credentials() {
    let h = Harness::new().await;
    let (entity, key) = h.tenant(false).await;
    let row = connected_with_credentials(&h, &key, "shippo", json!({"api_token": "tok_1"})).await;
    h.as_key(&key).delete("shippo").await;
    let again = h
        .as_key(&key)
        .post("shippo", Some(json!({"display_name": "Back"})))
        .await;
    assert_eq!(again.status, 200, "re-connect is 200, not 201: {}", again.raw);
    let data = &again.body["data"];
    assert_eq!(data["id"], row["id"], "same row");
    assert_eq!(
        (data["is_active"].clone(), data["display_name"].clone()),
        (json!(true), json!("Back"))
    );
    assert_eq!(
        data["credentials_masked"],
        json!(["api_token"]),
        "kept credentials come back"
    );
    assert_eq!(
        h.secret_value(entity, "shippo").await.unwrap()["credentials"]["api_token"],
        "tok_1"
    );
    assert_eq!(
        types(&h.events(2).await),
        ["integration.disconnected", "integration.restored"]
    );
}

#[tokio::test]
async fn new_credentials_on_a_disconnected_connector_restore_and_replace() {
    let h = Harness::new().await;
    let (entity, key) = h.tenant(false).await;
    connected_with_credentials(&h, &key, "openai", json!({"api_key": "sk-old"})).await;
    h.as_key(&key).delete("openai").await;
    let r = h
        .as_key(&key)
        .put_credentials(
            "openai",
            json!({"credentials": {"api_key": "sk-new", "project_id": "p"}}),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.raw);
    assert_eq!(r.body["data"]["is_active"], true);
    assert_eq!(r.body["data"]["credentials_masked"], json!(["api_key", "project_id"]));
    assert!(h
        .describe_secret(entity, "openai")
        .await
        .unwrap()
        .deleted_date()
        .is_none());
    assert_eq!(
        h.secret_value(entity, "openai").await.unwrap()["credentials"]["api_key"],
        "sk-new"
    );
    assert_eq!(
        types(&h.events(3).await),
        [
            "integration.disconnected",
            "integration.restored",
            "integration.credentials_updated"
        ]
    );
}

#[tokio::test]
async fn patch_edits_fields_and_moves_the_lifecycle_announcing_only_changes() {
    let h = Harness::new().await;
    let (entity, key) = h.tenant(false).await;
    let row = connected_with_credentials(&h, &key, "avatax", json!({"account_id": "a", "license_key": "l"})).await;
    let edit = json!({"display_name": "Tax", "config": {"company": "ACME"}, "ship_from_zip": "10001", "bank_account_id": "3c90c3cc-0d44-4b50-8888-8dd25736052a"});
    let r = h.as_key(&key).patch("avatax", edit.clone()).await;
    assert_eq!(r.status, 200, "{}", r.raw);
    let d = &r.body["data"];
    assert_eq!(
        (
            d["display_name"].clone(),
            d["config"].clone(),
            d["ship_from_zip"].clone()
        ),
        (json!("Tax"), json!({"company": "ACME"}), json!("10001"))
    );
    assert_eq!(d["id"], row["id"]);
    assert_eq!(types(&h.events(1).await), ["integration.updated"]);

    let same = h.as_key(&key).patch("avatax", edit).await;
    assert_eq!(
        (same.status, same.body["data"]["updated_at"].clone()),
        (200, d["updated_at"].clone())
    );
    assert!(h.events(0).await.is_empty(), "nothing changed, nothing announced");

    let cleared = h.as_key(&key).patch("avatax", json!({"ship_from_zip": null})).await;
    assert_eq!(cleared.body["data"]["ship_from_zip"], Value::Null);
    h.events(1).await;

    let off = h.as_key(&key).patch("avatax", json!({"is_active": false})).await;
    assert_eq!((off.status, off.body["data"]["is_active"].clone()), (200, json!(false)));
    assert!(off.body["data"]["recoverable_until"].is_string());
    assert!(
        h.describe_secret(entity, "avatax")
            .await
            .unwrap()
            .deleted_date()
            .is_some(),
        "PATCH false disconnects"
    );
    let on = h.as_key(&key).patch("avatax", json!({"is_active": true})).await;
    assert_eq!(on.body["data"]["is_active"], true);
    assert!(
        h.describe_secret(entity, "avatax")
            .await
            .unwrap()
            .deleted_date()
            .is_none(),
        "PATCH true restores"
    );
    assert_eq!(
        types(&h.events(2).await),
        ["integration.disconnected", "integration.restored"]
    );

    for (body, status, param) in [
        (json!({"mode": "live"}), 422, "mode"),
        (json!({"webhook_secret": "w"}), 422, "webhook_secret"),
        (json!({"entity_id": entity.to_string()}), 422, "entity_id"),
        (json!({"is_active": "yes"}), 400, "is_active"),
        (json!({"id": "x"}), 400, "id"),
    ] {
        let r = h.as_key(&key).patch("avatax", body.clone()).await;
        assert_eq!((r.status, r.body["param"].as_str()), (status, Some(param)), "{body}");
    }
    assert_eq!(
        h.as_key(&key).patch("ups", json!({"display_name": "x"})).await.status,
        404
    );
}

#[tokio::test]
async fn permanent_delete_by_type_and_by_id_is_204_and_leaves_nothing() {
    let h = Harness::new().await;
    let entity = shared::domain::ids::EntityId::new_random();
    let key = h.key(entity, &Scope::ALL, false).await;
    let writer = h.key(entity, &[Scope::Read, Scope::Write], false).await;
    let row = connected_with_credentials(&h, &key, "plaid", json!({"client_id": "c", "secret": "s"})).await;
    connected_with_credentials(
        &h,
        &key,
        "ebay",
        json!({"client_id": "c", "client_secret": "s", "refresh_token": "r"}),
    )
    .await;

    let denied = h.as_key(&writer).purge("plaid").await;
    assert_eq!(
        (denied.status, denied.body["required"].as_str()),
        (403, Some("integrations:purge"))
    );
    let bad = h
        .as_key(&key)
        .send("DELETE", "/v1/integrations/plaid?permanent=yes", None)
        .await;
    assert_eq!((bad.status, bad.body["param"].as_str()), (400, Some("permanent")));

    let gone = h.as_key(&key).purge("plaid").await;
    assert_eq!((gone.status, gone.raw.as_str()), (204, ""), "204 with an empty body");
    assert!(gone.header("content-type").is_none());
    assert!(h.raw_row(entity, "plaid").await.is_none(), "row deleted");
    assert!(
        h.describe_secret(entity, "plaid").await.is_none(),
        "secret force-deleted"
    );
    let events = h.events(1).await;
    assert_eq!(types(&events), ["integration.deleted"]);
    assert_eq!(events[0]["detail"]["data"]["object"]["id"], row["id"]);

    let id = h.as_key(&key).get("ebay").await.body["data"]["id"]
        .as_str()
        .unwrap()
        .to_string();
    h.as_key(&key).delete("ebay").await; // disconnected rows can be purged too
    let by_id = h.as_key(&key).purge(id).await;
    assert_eq!(by_id.status, 204);
    assert!(h.describe_secret(entity, "ebay").await.is_none());
    assert_eq!(
        types(&h.events(2).await),
        ["integration.disconnected", "integration.deleted"]
    );
    assert_eq!(h.as_key(&key).purge("ebay").await.status, 404);
    assert!(h.outbox().await.is_empty());
}

#[tokio::test]
async fn the_sweeper_finalises_a_disconnect_once_its_window_has_passed() {
    let h = Harness::new().await;
    let (entity, key) = h.tenant(false).await;
    let row = connected_with_credentials(&h, &key, "printnode", json!({"api_key": "k"})).await;
    h.as_key(&key).delete("printnode").await;
    h.events(1).await;

    h.clock.advance_seconds(7 * 86_400 - 60);
    let early = h.sweep().await;
    assert_eq!(early.expired, 0, "not due yet");
    assert!(h.raw_row(entity, "printnode").await.is_some());

    h.clock.advance_seconds(60);
    let report = h.sweep().await;
    assert_eq!((report.expired, report.failed), (1, 0));
    assert!(h.raw_row(entity, "printnode").await.is_none(), "row gone");
    assert!(h.describe_secret(entity, "printnode").await.is_none(), "secret gone");
    let events = h.events(1).await;
    assert_eq!(types(&events), ["integration.expired"]);
    assert_eq!(
        events[0]["detail"]["actor"]["key_id"],
        Value::Null,
        "done by the system"
    );
    assert_eq!(events[0]["detail"]["data"]["object"]["id"], row["id"]);
    let again = h.sweep().await;
    assert_eq!((again.expired, again.republished), (0, 0));
    assert!(h.events(0).await.is_empty(), "expired is announced once");
}

#[tokio::test]
async fn connecting_over_an_expired_row_announces_its_expiry_first() {
    let h = Harness::new().await;
    let (entity, key) = h.tenant(false).await;
    let old = connected_with_credentials(&h, &key, "mapquest", json!({"api_key": "k"})).await;
    h.as_key(&key).delete("mapquest").await;
    h.clock.advance_seconds(8 * 86_400);
    let new = h.as_key(&key).post("mapquest", None).await;
    assert_eq!(new.status, 201);
    assert_ne!(new.body["data"]["id"], old["id"]);
    assert_eq!(new.body["data"]["credentials_masked"], json!([]));
    assert!(
        h.describe_secret(entity, "mapquest").await.is_none(),
        "old credentials gone"
    );
    assert_eq!(
        types(&h.events(3).await),
        [
            "integration.disconnected",
            "integration.expired",
            "integration.connected"
        ]
    );
}

#[tokio::test]
async fn an_event_the_bus_refused_is_delivered_exactly_once_by_the_next_sweep() {
    let h = Harness::new().await;
    let (_, key) = h.tenant(false).await;
    h.as_key(&key).post("postmark", None).await;
    h.events(1).await;
    // Publish fails (the bus does not exist), the API answers normally.
    let broken = shared::App::new(
        &h.sdk,
        shared::config::Settings {
            event_bus: "no-such-bus".into(),
            ..h.settings.clone()
        },
        h.clock.clone(),
    );
    let r = h.as_key(&key).via(&broken).delete("postmark").await;
    assert_eq!((r.status, r.body["data"]["is_active"].clone()), (200, json!(false)));
    assert!(h.events(0).await.is_empty());
    assert_eq!(h.outbox().await.len(), 1, "kept in the outbox");

    let young = h.sweep().await;
    assert_eq!(
        young.republished, 0,
        "records within the grace period are the handler's"
    );
    h.clock.advance_seconds(shared::ports::OUTBOX_GRACE_SECONDS);
    let report = h.sweep().await;
    assert_eq!(report.republished, 1);
    let events = h.events(1).await;
    assert_eq!(types(&events), ["integration.disconnected"]);
    assert_eq!(events[0]["detail"]["data"]["object"], r.body["data"]);
    assert!(h.outbox().await.is_empty());
    assert_eq!(h.sweep().await.republished, 0);
    assert!(h.events(0).await.is_empty(), "exactly once");
}
