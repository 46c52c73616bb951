//! Sync reports and connection health end to end, on the emulator: the route's statuses,
//! how reports move the row (order, repeats, redaction), the resets by a credentials
//! change and a restore, `integration.health_changed`, the `?health=` filter, and the
//! same reports arriving on the bus (the `sync` function and the rule's pattern).

use crate::support;

use serde_json::{json, Value};
use shared::domain::api_key::Scope;
use shared::sync_events::Handled;
use support::Harness;

fn failed(code: &str) -> Value {
    json!({"outcome": "failed", "error": {"code": code}})
}

fn succeeded() -> Value {
    json!({"outcome": "succeeded"})
}

/// The `detail-type`s and `previous_health` of the events read back.
fn health_events(events: &[Value]) -> Vec<(String, String)> {
    events
        .iter()
        .filter(|e| e["detail-type"] == "integration.health_changed")
        .map(|e| {
            (
                e["detail"]["data"]["previous_health"].as_str().unwrap().to_string(),
                e["detail"]["data"]["object"]["health"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

#[tokio::test]
async fn every_status_of_the_route() {
    let h = Harness::new().await;
    let (entity, key) = h.tenant(false).await;
    assert_eq!(h.as_key(&key).post("shopify", None).await.status, 201);
    let worker = h.key(entity, &[Scope::Sync], false).await;

    // 200: a sync key reports, and sees the row it reports on.
    let r = h.as_key(&worker).sync_report("shopify", succeeded()).await;
    assert_eq!(r.status, 200, "{}", r.raw);
    let row = &r.body["data"];
    assert_eq!(
        (row["sync_status"].as_str(), row["health"].as_str()),
        (Some("succeeded"), Some("healthy"))
    );
    assert_eq!(row["last_sync_at"], h.now().to_string());
    // By id, too.
    let id = row["id"].as_str().unwrap().to_string();
    assert_eq!(
        h.as_key(&worker).sync_report(&id, failed("rate_limited")).await.status,
        200
    );

    // 400: malformed fields name themselves; 422: what the rules refuse.
    for (body, status, param) in [
        (json!({"outcome": "done"}), 400, "outcome"),
        (
            json!({"outcome": "failed", "error": {"code": "teapot"}}),
            400,
            "error.code",
        ),
        (json!({"outcome": "succeeded", "extra": true}), 400, "extra"),
        (json!({}), 422, "outcome"),
        (json!({"outcome": "failed"}), 422, "error"),
        (
            json!({"outcome": "succeeded", "entity_id": entity.to_string()}),
            422,
            "entity_id",
        ),
        (
            json!({"outcome": "succeeded", "finished_at": h.now().plus_seconds(301).to_string()}),
            422,
            "finished_at",
        ),
    ] {
        let r = h.as_key(&worker).sync_report("shopify", body.clone()).await;
        assert_eq!(r.status, status, "{body}: {}", r.raw);
        assert_eq!(r.error_code(), "validation_error");
        assert_eq!(r.body["param"], param, "{body}");
    }
    // 400: an unknown connector type.
    assert_eq!(h.as_key(&worker).sync_report("acme", succeeded()).await.status, 400);

    // 401 without a key, 403 without the scope (naming it).
    assert_eq!(h.anonymous().sync_report("shopify", succeeded()).await.status, 401);
    let reader = h
        .key(entity, &[Scope::Read, Scope::Write, Scope::Credentials], false)
        .await;
    let r = h.as_key(&reader).sync_report("shopify", succeeded()).await;
    assert_eq!(
        (r.status, r.body["required"].as_str()),
        (403, Some("integrations:sync"))
    );

    // 404: not connected, another entity's row, a live row for a test key.
    assert_eq!(h.as_key(&worker).sync_report("ups", succeeded()).await.status, 404);
    let (_, other) = h.tenant(false).await;
    assert_eq!(h.as_key(&other).sync_report(&id, succeeded()).await.status, 404);
    let live_key = h.key(entity, &Scope::ALL, true).await;
    assert_eq!(h.as_key(&live_key).post("plaid", None).await.status, 201);
    assert_eq!(h.as_key(&worker).sync_report("plaid", succeeded()).await.status, 404);

    // 409 for a disconnected connector.
    assert_eq!(h.as_key(&key).delete("shopify").await.status, 200);
    let r = h.as_key(&worker).sync_report("shopify", succeeded()).await;
    assert_eq!((r.status, r.error_code().as_str()), (409, "connector_inactive"));
}

#[tokio::test]
async fn health_follows_the_reports_and_every_change_is_announced_once() {
    let h = Harness::new().await;
    let (_, key) = h.tenant(false).await;
    h.as_key(&key).post("shippo", None).await;
    h.events(1).await;
    let report = |body: Value| h.as_key(&key).sync_report("shippo", body);
    let health = |r: &support::Reply| r.body["data"]["health"].as_str().unwrap().to_string();

    assert_eq!(health(&report(failed("rate_limited")).await), "degraded");
    assert_eq!(health(&report(failed("upstream_unavailable")).await), "degraded");
    assert_eq!(health(&report(failed("other")).await), "failing");
    let r = report(failed("auth_failed")).await;
    assert_eq!(health(&r), "auth_failed");
    assert_eq!(r.body["data"]["sync_error"], "auth_failed");
    assert_eq!(r.body["data"]["last_sync_at"], Value::Null, "no success yet");
    assert_eq!(health(&report(succeeded()).await), "healthy");
    assert_eq!(health(&report(succeeded()).await), "healthy");
    let events = h.events(4).await;
    assert_eq!(
        health_events(&events),
        [
            ("unknown".into(), "degraded".into()),
            ("degraded".into(), "failing".into()),
            ("failing".into(), "auth_failed".into()),
            ("auth_failed".into(), "healthy".into()),
        ],
        "one event per change of health, none when it stays"
    );
    assert_eq!(events.len(), 4, "reports cause no other event");
    let get = h.as_key(&key).get("shippo").await;
    assert_eq!(get.body["data"]["health"], "healthy", "reads show the stored state");
}

#[tokio::test]
async fn late_and_repeated_reports_change_nothing_and_write_nothing() {
    let h = Harness::new().await;
    let (entity, key) = h.tenant(false).await;
    h.as_key(&key).post("stripe", None).await;
    let at = |s: i64| h.now().plus_seconds(s).to_string();
    let first = h
        .as_key(&key)
        .sync_report(
            "stripe",
            json!({"outcome": "succeeded", "run_id": "run-1", "finished_at": at(-60)}),
        )
        .await;
    assert_eq!(first.status, 200);
    let stored = h
        .raw_item(entity, "CONN#stripe#SYNC")
        .await
        .expect("the sync state item");
    h.clock.advance_seconds(30);
    for body in [
        json!({"outcome": "failed", "error": {"code": "other"}, "run_id": "run-1", "finished_at": at(-10)}),
        json!({"outcome": "failed", "error": {"code": "other"}, "finished_at": at(-120)}),
    ] {
        let r = h.as_key(&key).sync_report("stripe", body.clone()).await;
        assert_eq!(r.status, 200, "{body}");
        assert_eq!(r.body["data"], first.body["data"], "{body}: the current row, unchanged");
    }
    assert_eq!(
        h.raw_item(entity, "CONN#stripe#SYNC").await,
        Some(stored),
        "nothing written"
    );
    // Up to 5 minutes ahead is taken as now.
    let ahead = h
        .as_key(&key)
        .sync_report("stripe", json!({"outcome": "succeeded", "finished_at": at(200)}))
        .await;
    assert_eq!(ahead.body["data"]["last_sync_at"], h.now().to_string());
    assert_eq!(
        ahead.body["data"]["updated_at"],
        h.now().to_string(),
        "the row as shown changed"
    );
}

#[tokio::test]
async fn a_credentials_change_and_a_restore_reset_health_and_keep_the_last_sync() {
    let h = Harness::new().await;
    let (_, key) = h.tenant(false).await;
    h.as_key(&key).post("stripe", None).await;
    h.as_key(&key).sync_report("stripe", succeeded()).await;
    let synced_at = h.now().to_string();
    h.clock.advance_seconds(10);
    let r = h
        .as_key(&key)
        .sync_report(
            "stripe",
            json!({"outcome": "failed", "error": {"code": "auth_failed", "message": "key sk_live_51HxExampleExampleExample0 revoked"}}),
        )
        .await;
    assert_eq!(
        r.body["data"]["sync_error"], "auth_failed: key [redacted] revoked",
        "{}",
        r.raw
    );
    h.events(3).await;

    h.clock.advance_seconds(10);
    let before_reset = h.now().plus_seconds(-1).to_string();
    let put = h
        .as_key(&key)
        .put_credentials("stripe", json!({"credentials": {"secret_key": "sk_test_new"}}))
        .await;
    let row = &put.body["data"];
    assert_eq!(
        (
            row["health"].as_str(),
            row["sync_error"].as_str(),
            row["sync_status"].as_str()
        ),
        (Some("unknown"), None, Some("failed"))
    );
    assert_eq!(row["last_sync_at"], synced_at);
    let events = h.events(2).await;
    assert_eq!(health_events(&events), [("auth_failed".into(), "unknown".into())]);

    // A report that finished before the reset changes nothing; one after it counts from a
    // streak of zero.
    let late = h
        .as_key(&key)
        .sync_report(
            "stripe",
            json!({"outcome": "failed", "error": {"code": "other"}, "finished_at": before_reset}),
        )
        .await;
    assert_eq!(late.body["data"]["health"], "unknown");
    h.clock.advance_seconds(1);
    let r = h.as_key(&key).sync_report("stripe", failed("other")).await;
    assert_eq!(r.body["data"]["health"], "degraded");

    // Disconnect and restore: reset again; a reset of `unknown` health announces nothing.
    h.as_key(&key).delete("stripe").await;
    let back = h.as_key(&key).restore("stripe").await;
    assert_eq!(back.body["data"]["health"], "unknown");
    h.as_key(&key)
        .put_credentials("stripe", json!({"credentials": {"secret_key": "sk_test_2"}}))
        .await;
    let events = h.events(5).await;
    assert_eq!(
        health_events(&events),
        [
            ("unknown".into(), "degraded".into()),
            ("degraded".into(), "unknown".into())
        ]
    );
}

#[tokio::test]
async fn the_list_filters_by_health_and_pages_through_the_filtered_rows() {
    let h = Harness::new().await;
    let (_, key) = h.tenant(false).await;
    for t in ["ups", "fedex", "usps", "wwex", "shippo"] {
        h.as_key(&key).post(t, None).await;
        h.clock.advance_seconds(1);
    }
    for t in ["ups", "usps", "shippo"] {
        h.as_key(&key).sync_report(t, failed("auth_failed")).await;
    }
    h.as_key(&key).sync_report("fedex", succeeded()).await;
    let types = |r: &support::Reply| -> Vec<String> {
        r.body["data"]
            .as_array()
            .unwrap()
            .iter()
            .map(|row| row["connector_type"].as_str().unwrap().to_string())
            .collect()
    };
    let all = h.as_key(&key).list("?health=auth_failed").await;
    assert_eq!(types(&all), ["shippo", "usps", "ups"]);
    let page = h.as_key(&key).list("?health=auth_failed&limit=2").await;
    assert_eq!(
        (types(&page), page.body["has_more"].as_bool()),
        (vec!["shippo".into(), "usps".into()], Some(true))
    );
    let last = page.body["data"][1]["id"].as_str().unwrap();
    let next = h
        .as_key(&key)
        .list(&format!("?health=auth_failed&limit=2&starting_after={last}"))
        .await;
    assert_eq!(
        (types(&next), next.body["has_more"].as_bool()),
        (vec!["ups".into()], Some(false))
    );
    assert_eq!(types(&h.as_key(&key).list("?health=unknown").await), ["wwex"]);
    assert_eq!(types(&h.as_key(&key).list("?health=healthy").await), ["fedex"]);
    let bad = h.as_key(&key).list("?health=sick").await;
    assert_eq!((bad.status, bad.body["param"].as_str()), (400, Some("health")));
}

#[tokio::test]
async fn a_report_takes_an_idempotency_key() {
    let h = Harness::new().await;
    let (_, key) = h.tenant(false).await;
    h.as_key(&key).post("openai", None).await;
    let send = |body: Value| h.as_key(&key).idempotency_key("sync-1").sync_report("openai", body);
    let first = send(failed("rate_limited")).await;
    assert_eq!(first.status, 200);
    h.clock.advance_seconds(5);
    let again = send(failed("rate_limited")).await;
    assert_eq!((again.status, again.header("idempotent-replayed")), (200, Some("true")));
    assert_eq!(again.body, first.body);
    let stored = h.as_key(&key).get("openai").await;
    assert_eq!(
        stored.body["data"]["health"], "degraded",
        "applied once: a streak of one"
    );
    let other = send(succeeded()).await;
    assert_eq!(
        (other.status, other.error_code().as_str()),
        (409, "idempotency_key_mismatch")
    );
}

fn bus_event(entity: &str, connector: &str, extra: Value) -> Value {
    let mut detail = json!({"entity_id": entity, "connector_id": connector});
    detail
        .as_object_mut()
        .unwrap()
        .extend(extra.as_object().unwrap().clone());
    json!({
        "version": "0", "id": uuid::Uuid::new_v4().to_string(), "detail-type": "sync.reported",
        "source": "erp.sync-workers", "account": "123456789012", "time": "2026-12-02T12:00:00Z",
        "region": "us-east-1", "resources": [], "detail": detail
    })
}

#[tokio::test]
async fn reports_from_the_bus_are_applied_dropped_or_retried() {
    let h = Harness::new().await;
    let (entity, key) = h.tenant(true).await;
    let created = h.as_key(&key).post("amazon", None).await;
    let id = created.body["data"]["id"].as_str().unwrap().to_string();
    let entity = entity.to_string();

    // A live row, reached by entity and id; the event's id is the run id.
    let event = bus_event(
        &entity,
        &id,
        json!({"outcome": "failed", "error": {"code": "auth_failed"}}),
    );
    assert_eq!(h.sync_event(&event).await.unwrap(), Handled::Applied);
    let row = h.as_key(&key).get("amazon").await;
    assert_eq!(row.body["data"]["health"], "auth_failed");
    let events = h.events(2).await;
    let changed = events
        .iter()
        .find(|e| e["detail-type"] == "integration.health_changed")
        .unwrap();
    assert_eq!(changed["detail"]["actor"]["key_id"], Value::Null, "the bus is no key");
    // The same event again (EventBridge delivers at least once): nothing changes.
    h.clock.advance_seconds(5);
    assert_eq!(h.sync_event(&event).await.unwrap(), Handled::Applied);
    assert_eq!(h.as_key(&key).get("amazon").await.body, row.body);

    let invalid = bus_event(&entity, &id, json!({"outcome": "failed"}));
    assert_eq!(h.sync_event(&invalid).await.unwrap(), Handled::DroppedInvalid);
    let unknown = bus_event(
        &entity,
        &uuid::Uuid::new_v4().to_string(),
        json!({"outcome": "succeeded"}),
    );
    assert_eq!(h.sync_event(&unknown).await.unwrap(), Handled::DroppedUnknown);
    let other_entity = bus_event(&uuid::Uuid::new_v4().to_string(), &id, json!({"outcome": "succeeded"}));
    assert_eq!(h.sync_event(&other_entity).await.unwrap(), Handled::DroppedUnknown);
    let mut own = bus_event(&entity, &id, json!({"outcome": "succeeded"}));
    own["source"] = json!(support::SOURCE);
    assert_eq!(
        h.sync_event(&own).await.unwrap(),
        Handled::DroppedInvalid,
        "never our own events"
    );
    h.as_key(&key).delete("amazon").await;
    let inactive = bus_event(&entity, &id, json!({"outcome": "succeeded"}));
    assert_eq!(h.sync_event(&inactive).await.unwrap(), Handled::DroppedInactive);

    // A dependency failure is thrown back, for EventBridge to retry.
    h.as_key(&key).restore("amazon").await;
    let proxy = support::faults::FaultProxy::start(&support::emulator_endpoint()).await;
    let faulty = shared::App::from_clients(
        support::clients(&h.sdk, Some(&proxy.url), Some(&h.actions)),
        h.settings.clone(),
        h.clock.clone(),
    );
    proxy.arm_operation("TransactWriteItems", support::faults::Fault::Throttle);
    let retried = bus_event(&entity, &id, json!({"outcome": "succeeded"}));
    assert!(h.sync_event_via(&faulty, &retried).await.is_err());
    assert_eq!(
        h.sync_event(&retried).await.unwrap(),
        Handled::Applied,
        "the retry applies"
    );
    assert_eq!(h.as_key(&key).get("amazon").await.body["data"]["health"], "healthy");
}

/// The rule of template.yaml, routed to a queue on the emulator (moto's
/// `TestEventPattern` matches anything): only `sync.reported` events from other sources
/// reach it.
#[tokio::test]
async fn the_rule_takes_sync_reports_from_other_sources_only() {
    let h = Harness::new().await;
    let template: serde_yaml_ng::Value = serde_yaml_ng::from_str(
        &std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../template.yaml")).unwrap(),
    )
    .unwrap();
    let pattern =
        &template["Resources"]["SyncFunction"]["Properties"]["Events"]["SyncReported"]["Properties"]["Pattern"];
    let pattern = resolve_event_source(pattern);
    assert_eq!(
        pattern,
        json!({"detail-type": ["sync.reported"], "source": [{"anything-but": support::SOURCE}]})
    );
    let queue = connectors_infra::watch::route_pattern_to_queue(
        &h.admin_sdk,
        &h.settings.event_bus,
        &pattern,
        &format!("sync-{}", &h.settings.table[11..]),
    )
    .await
    .unwrap();
    let bus = aws_sdk_eventbridge::Client::new(&h.admin_sdk);
    for (source, detail_type) in [
        ("erp.sync-workers", "sync.reported"),
        (support::SOURCE, "sync.reported"),
        ("erp.sync-workers", "sync.started"),
        ("erp.billing", "sync.reported"),
    ] {
        let entry = aws_sdk_eventbridge::types::PutEventsRequestEntry::builder()
            .event_bus_name(&h.settings.event_bus)
            .source(source)
            .detail_type(detail_type)
            .detail(json!({"outcome": "succeeded"}).to_string())
            .build();
        bus.put_events().entries(entry).send().await.unwrap();
    }
    let got = h
        .sqs
        .receive_message()
        .queue_url(&queue)
        .max_number_of_messages(10)
        .send()
        .await
        .unwrap();
    let sources: Vec<String> = got
        .messages()
        .iter()
        .map(|m| {
            serde_json::from_str::<Value>(m.body().unwrap()).unwrap()["source"]
                .as_str()
                .unwrap()
                .to_string()
        })
        .collect();
    assert_eq!(sources, ["erp.sync-workers", "erp.billing"]);
}

/// The template's YAML as JSON, `!Ref EventSource` read as its default.
fn resolve_event_source(node: &serde_yaml_ng::Value) -> Value {
    use serde_yaml_ng::Value as Y;
    match node {
        Y::Tagged(t) if t.tag == "Ref" && t.value == Y::String("EventSource".into()) => json!(support::SOURCE),
        Y::Mapping(m) => Value::Object(
            m.iter()
                .map(|(k, v)| (k.as_str().unwrap().to_string(), resolve_event_source(v)))
                .collect(),
        ),
        Y::Sequence(s) => Value::Array(s.iter().map(resolve_event_source).collect()),
        Y::String(s) => json!(s),
        other => panic!("unexpected YAML in the pattern: {other:?}"),
    }
}
