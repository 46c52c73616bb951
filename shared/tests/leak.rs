//! Secret canaries: connect with unique credential values, drive every route (and its
//! error paths), then scan every response body and header, every delivered event and
//! every captured log line for any canary or secret ARN.
//!
//! The log capture is the process's global subscriber (the SDK and the runtime log from
//! wherever they run), so this test is a binary of its own, apart from `integration`.

// The harness the integration binary uses whole; this binary uses part of it.
#[allow(dead_code)]
#[path = "integration/support/mod.rs"]
mod support;

use serde_json::{json, Value};
use shared::domain::catalog::ConnectorType;
use support::Harness;

#[path = "integration/support/logs.rs"]
mod logs;

/// Log lines written by the code under test (the same JSON format as in Lambda), through
/// the process's global subscriber.
fn capture_logs() -> logs::Capture {
    let logs = logs::Capture::default();
    let sink = logs.clone();
    tracing_subscriber::fmt()
        .json()
        .with_current_span(true)
        .with_env_filter("debug")
        .with_writer(move || sink.clone())
        .init();
    logs
}

fn canary(connector_type: ConnectorType, key: &str) -> String {
    format!("CANARY-{connector_type}-{key}-{}", uuid::Uuid::new_v4().simple())
}

#[tokio::test]
async fn no_canary_or_secret_arn_escapes_through_any_channel() {
    let logs = capture_logs();
    let h = Harness::new().await;
    let (entity, key) = h.tenant(false).await;
    let mut canaries = Vec::new();
    let mut routes_hit = std::collections::BTreeSet::new();

    for connector_type in ConnectorType::all() {
        let t = connector_type.as_str();
        let entry = connector_type.entry();
        let credentials: serde_json::Map<String, Value> = entry
            .required
            .iter()
            .chain(entry.optional)
            .map(|k| {
                let c = canary(connector_type, k);
                canaries.push(c.clone());
                (k.to_string(), Value::String(c))
            })
            .collect();
        let webhook = canary(connector_type, "webhook");
        canaries.push(webhook.clone());

        // Secrets sent where they do not belong: refused, and never echoed.
        let leaky = h
            .as_key(&key)
            .post(t, Some(json!({"credentials": credentials, "webhook_secret": webhook})))
            .await;
        assert_eq!(leaky.status, 422);
        let early = h
            .as_key(&key)
            .put_credentials(t, json!({"credentials": credentials}))
            .await;
        assert_eq!(early.status, 404);

        assert_eq!(h.as_key(&key).post(t, None).await.status, 201);
        routes_hit.insert("connect");
        let mut with_unknown = credentials.clone();
        with_unknown.insert("not_a_key".into(), Value::String(canary(connector_type, "unknown")));
        canaries.push(with_unknown["not_a_key"].as_str().unwrap().to_string());
        let bad = h
            .as_key(&key)
            .put_credentials(t, json!({"credentials": with_unknown}))
            .await;
        assert_eq!(bad.status, 422);
        let ok = h
            .as_key(&key)
            .put_credentials(t, json!({"credentials": credentials, "webhook_secret": webhook}))
            .await;
        assert_eq!(ok.status, 200, "{}", ok.raw);
        routes_hit.insert("credentials");
        // A second version with canaries of its own, then a rollback to the first.
        let second: serde_json::Map<String, Value> = entry
            .required
            .iter()
            .map(|k| {
                let c = canary(connector_type, &format!("{k}-v2"));
                canaries.push(c.clone());
                (k.to_string(), Value::String(c))
            })
            .collect();
        let newer = h.as_key(&key).put_credentials(t, json!({"credentials": second})).await;
        assert_eq!(newer.status, 200, "{}", newer.raw);
        let versions = h.as_key(&key).versions(t).await;
        assert_eq!(versions.status, 200);
        routes_hit.insert("versions");
        let first = versions.body["data"][1]["version"].as_str().unwrap().to_string();
        assert_eq!(h.as_key(&key).roll_back(t, &first).await.status, 200);
        assert_eq!(h.as_key(&key).roll_back(t, &first).await.status, 200);
        assert_eq!(h.as_key(&key).roll_back(t, "CANARY-not-a-version").await.status, 404);
        routes_hit.insert("rollback");
        let got = h.as_key(&key).get(t).await;
        assert_eq!(got.status, 200);
        routes_hit.insert("get");
        // A worker's error text carrying a token: shown redacted, over HTTP and the bus.
        let token = || format!("sk_live_Ab9{}", uuid::Uuid::new_v4().simple());
        let (http_token, bus_token) = (token(), token());
        canaries.extend([http_token.clone(), bus_token.clone()]);
        let failed =
            |token: &str| json!({"code": "auth_failed", "message": format!("upstream: token {token} revoked")});
        let reported = h
            .as_key(&key)
            .sync_report(t, json!({"outcome": "failed", "error": failed(&http_token)}))
            .await;
        assert_eq!(reported.status, 200, "{}", reported.raw);
        assert_eq!(
            reported.body["data"]["sync_error"],
            "auth_failed: upstream: token [redacted] revoked"
        );
        routes_hit.insert("report");
        let event = json!({"id": uuid::Uuid::new_v4().to_string(), "detail-type": "sync.reported",
            "source": "erp.sync-workers", "detail": {"entity_id": entity.to_string(),
            "connector_id": got.body["data"]["id"], "outcome": "failed", "error": failed(&bus_token)}});
        assert_eq!(
            h.sync_event(&event).await.unwrap(),
            shared::sync_events::Handled::Applied
        );
        assert_eq!(h.as_key(&key).post(t, None).await.status, 409);
        assert_eq!(h.as_key(&key).delete(t).await.status, 200);
        routes_hit.insert("disconnect");
        assert_eq!(h.as_key(&key).delete(t).await.status, 200);
        // The secret really holds the canaries: the scan below is looking for something real.
        let stored = h.describe_secret(entity, t).await.expect("secret exists");
        assert!(stored.arn().unwrap().starts_with("arn:aws:secretsmanager:"));
    }
    assert_eq!(h.as_key(&key).list("?limit=100").await.status, 200);
    routes_hit.insert("list");
    assert_eq!(h.as_key(&key).list("?limit=0").await.status, 400);
    assert_eq!(h.as_key(&key).send("GET", "/v1/nowhere", None).await.status, 404);
    assert_eq!(
        h.as_key("ark_test_ent_aaaaaaaaaaaa_0123456789abcdefghijABCDEFGHIJ01")
            .list("")
            .await
            .status,
        401
    );
    assert_eq!(routes_hit.len(), 8, "every route exercised");

    let events = h.events(16 * 6).await;
    assert_eq!(
        events.len(),
        16 * 6,
        "connected, credentials_updated (two PUTs and a rollback), health_changed, disconnected per type"
    );

    let mut channels: Vec<(String, String)> = Vec::new();
    for r in h.replies.lock().unwrap().iter() {
        channels.push(("response body".into(), r.raw.clone()));
        for (name, value) in &r.headers {
            channels.push((
                "response header".into(),
                format!("{name}: {}", value.to_str().unwrap_or("")),
            ));
        }
    }
    for e in &events {
        channels.push(("event".into(), e.to_string()));
    }
    let log_text = logs.text();
    assert!(log_text.lines().count() > 50, "logs were captured");
    assert!(log_text.contains("request served"));
    for line in log_text.lines() {
        channels.push(("log line".into(), line.to_string()));
    }
    let mut scanned = 0;
    for (channel, text) in &channels {
        scanned += 1;
        for c in &canaries {
            assert!(!text.contains(c.as_str()), "canary {c} leaked in a {channel}: {text}");
        }
        assert!(
            !text.contains("arn:aws:secretsmanager"),
            "secret ARN leaked in a {channel}: {text}"
        );
        assert!(
            !text.contains("CANARY-"),
            "a canary fragment leaked in a {channel}: {text}"
        );
    }
    assert!(scanned > 500, "scanned {scanned} items");
    println!(
        "leak scan: {} canaries over {scanned} items (bodies, headers, events, log lines)",
        canaries.len()
    );
}
