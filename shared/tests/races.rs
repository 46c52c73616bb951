//! Races: many clients at once on one connector — disconnect, restore, PATCH, new
//! credentials — and afterwards the row, the secret and the event stream must agree:
//! every stored change announced exactly once, in an order the lifecycle allows.

mod support;

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;

use futures::future::join_all;
use serde_json::{json, Value};
use shared::domain::catalog::ConnectorType;
use shared::domain::time::Timestamp;
use shared::domain::view::project;
use shared::ports::{Clock, ManualClock};
use support::faults::FaultProxy;
use support::Harness;

/// Every reading is one second after the previous, so each stored change has its own
/// `updated_at` and the events can be put back in order.
struct TickingClock(AtomicI64);

impl Clock for TickingClock {
    fn now(&self) -> Timestamp {
        Timestamp::from_unix(self.0.fetch_add(1, Ordering::SeqCst)).unwrap()
    }
}

pub const RACERS: usize = 32;

fn rounds() -> usize {
    std::env::var("RACE_ROUNDS")
        .ok()
        .and_then(|r| r.parse().ok())
        .unwrap_or(3)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn racing_clients_leave_a_consistent_row_secret_and_event_stream() {
    let start = chrono::Utc::now().timestamp();
    let ticking = Arc::new(TickingClock(AtomicI64::new(start)));
    // DynamoDB's transaction isolation, which moto lacks (see `start_serializing`).
    let proxy = FaultProxy::start_serializing(&support::emulator_endpoint()).await;
    let h = Harness::with_clock_and_endpoint(
        Arc::new(ManualClock::new(Timestamp::from_unix(start).unwrap())),
        ticking.clone(),
        Some(&proxy.url),
    )
    .await;
    let (entity, key) = h.tenant(false).await;
    let base = "/v1/integrations/stripe";
    assert_eq!(h.call("POST", base, Some(&key), None).await.status, 201);
    let creds = |n: usize| json!({"credentials": {"secret_key": format!("sk_{n}")}});
    assert_eq!(
        h.call("PUT", &format!("{base}/credentials"), Some(&key), Some(creds(0)))
            .await
            .status,
        200
    );
    let stripe = ConnectorType::parse("stripe").unwrap();
    let first_version = h.app.service.store.get(entity, stripe).await.unwrap().unwrap().version;
    assert_eq!(
        h.events(2).await.len(),
        2,
        "the setup's connected and credentials_updated"
    );

    let mut statuses: BTreeMap<u16, usize> = BTreeMap::new();
    for round in 0..rounds() {
        let calls = (0..RACERS).map(|i| {
            let (method, path, body) = match i % 4 {
                0 => ("DELETE", base.to_string(), None),
                1 => ("POST", format!("{base}/restore"), None),
                2 => (
                    "PATCH",
                    base.to_string(),
                    Some(json!({"display_name": format!("r{round}-c{i}")})),
                ),
                _ => ("PUT", format!("{base}/credentials"), Some(creds(round * RACERS + i))),
            };
            let key = key.clone();
            let h = &h;
            async move { h.call(method, &path, Some(&key), body).await }
        });
        for r in join_all(calls).await {
            assert!(matches!(r.status, 200 | 409), "{}", r.raw);
            if r.status == 409 {
                assert_eq!(r.error_code(), "conflict", "a lost race is a 409 conflict");
            }
            *statuses.entry(r.status).or_default() += 1;
        }
    }

    // Let the sweeper deliver anything a racer left in the outbox.
    ticking
        .0
        .fetch_add(shared::ports::OUTBOX_GRACE_SECONDS + 1, Ordering::SeqCst);
    let final_row = h.app.service.store.get(entity, stripe).await.unwrap().unwrap();
    let report = h.app.service.sweep().await.unwrap();
    assert_eq!(report.failed, 0);

    // Secret agrees with the row.
    let secret = h.describe_secret(entity, "stripe").await.expect("secret kept");
    assert_eq!(
        secret.deleted_date().is_some(),
        !final_row.is_active,
        "secret scheduled iff disconnected"
    );
    if final_row.is_active {
        assert!(h.secret_value(entity, "stripe").await.is_some());
    }

    // Events: one group per stored change (same updated_at), none lost, none invented.
    let events: Vec<Value> = h.events(1).await;
    let mut by_change: BTreeMap<String, Vec<&Value>> = BTreeMap::new();
    let mut ids = std::collections::BTreeSet::new();
    for e in &events {
        let d = &e["detail"];
        if ids.contains(d["id"].as_str().unwrap()) {
            continue;
        }
        ids.insert(d["id"].as_str().unwrap().to_string());
        by_change
            .entry(d["data"]["object"]["updated_at"].as_str().unwrap().to_string())
            .or_default()
            .push(e);
    }
    let changes = (final_row.version - first_version) as usize;
    assert_eq!(
        by_change.len(),
        changes,
        "every stored change announced, and only those"
    );

    // In updated_at order, the moves follow the lifecycle.
    let mut active = true;
    let mut last_object = Value::Null;
    // Within one change the events were written in this order (delivery may reorder).
    let precedence = |t: &str| match t {
        "integration.restored" => 0,
        "integration.updated" | "integration.credentials_updated" => 1,
        "integration.disconnected" => 2,
        other => panic!("unexpected {other}"),
    };
    for group in by_change.values_mut() {
        group.sort_by_key(|e| precedence(e["detail"]["type"].as_str().unwrap()));
        for e in group.iter() {
            match e["detail"]["type"].as_str().unwrap() {
                "integration.disconnected" => {
                    assert!(active, "disconnected while disconnected");
                    active = false;
                }
                "integration.restored" => {
                    assert!(!active, "restored while active");
                    active = true;
                }
                _ => {}
            }
        }
        let object = &group[0]["detail"]["data"]["object"];
        assert!(
            group.iter().all(|e| &e["detail"]["data"]["object"] == object),
            "one change, one object"
        );
        assert_eq!(
            object["is_active"], active,
            "the object shows the state after the change"
        );
        last_object = object.clone();
    }
    assert_eq!(active, final_row.is_active);
    assert_eq!(
        last_object,
        project(&final_row),
        "the last announcement is the final state"
    );
    println!(
        "races: {RACERS} racers x {} rounds; answers {statuses:?}; {changes} changes, {} events, final active={}",
        rounds(),
        ids.len(),
        final_row.is_active
    );
}
