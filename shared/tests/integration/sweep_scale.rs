//! The sweep reads only what is due: with thousands of unrelated rows in the table (and
//! disconnected rows not yet due in the index), finalising 10 due rows reads ~10 items.

use crate::support;

use std::collections::HashMap;

use aws_sdk_dynamodb::types::{AttributeValue, PutRequest, WriteRequest};
use serde_json::json;
use shared::aws::items::connector_item;
use shared::domain::api_key::{KeyId, Principal, Scope};
use shared::domain::catalog::ConnectorType;
use shared::domain::edits::Edits;
use shared::domain::event::{Event, EventType};
use shared::domain::ids::ConnectorId;
use shared::domain::ids::EntityId;
use shared::domain::lifecycle;
use shared::ports::{Clock, OutboxRecord, SecretGuard, SecretRef, GUARD_GRACE_SECONDS};
use shared::service::{SweepBudget, SWEEP_BATCH};
use shared::sweeper::HARD_STOP_MARGIN_MS;
use support::Harness;

const UNRELATED: usize = 5_000;
const NOT_YET_DUE: usize = 200;
const DUE: usize = 10;

async fn batch_write(h: &Harness, items: Vec<HashMap<String, AttributeValue>>) {
    for chunk in items.chunks(25) {
        let requests: Vec<WriteRequest> = chunk
            .iter()
            .map(|item| {
                WriteRequest::builder()
                    .put_request(PutRequest::builder().set_item(Some(item.clone())).build().unwrap())
                    .build()
            })
            .collect();
        let out = h
            .dynamo
            .batch_write_item()
            .request_items(&h.settings.table, requests)
            .send()
            .await
            .unwrap();
        assert!(out.unprocessed_items().is_none_or(|u| u.is_empty()));
    }
}

#[tokio::test]
async fn sweep_cost_follows_due_items_not_table_size() {
    // This test's own logs only (the subscriber is this thread's, not the binary's).
    let _logs = tracing::subscriber::set_default(
        tracing_subscriber::fmt()
            .with_env_filter("info")
            .with_test_writer()
            .finish(),
    );
    let h = Harness::new().await;
    let now = h.now();
    let types: Vec<ConnectorType> = ConnectorType::all().collect();
    let principal = |entity| Principal {
        entity_id: entity,
        key_id: KeyId::parse("key_seed00000000").unwrap(),
        livemode: true,
        scopes: Scope::ALL.into(),
    };

    // Ten real connectors of one tenant, disconnected through the API.
    let (entity, key) = h.tenant(true).await;
    for t in types.iter().take(DUE) {
        h.as_key(&key).post(t, None).await;
        let cred_keys: serde_json::Map<String, serde_json::Value> =
            t.entry().required.iter().map(|k| (k.to_string(), json!("v"))).collect();
        h.as_key(&key)
            .put_credentials(t, json!({ "credentials": cred_keys }))
            .await;
        assert_eq!(h.as_key(&key).delete(t).await.status, 200);
    }
    h.events(DUE * 3).await;
    // Then the unrelated rows (seeded after, so that the setup's own writes stay fast).
    let mut items = Vec::new();
    for i in 0..UNRELATED {
        let p = principal(EntityId::new_random());
        let row = lifecycle::connect(&p, types[i % types.len()], &Edits::default(), now).unwrap();
        // Some are disconnected recently: in the index, but not due for days.
        let row = if i < NOT_YET_DUE {
            lifecycle::disconnect(&row, now.plus_days(3)).unwrap()
        } else {
            row
        };
        items.push(connector_item(&row));
    }
    batch_write(&h, items).await;
    h.clock.advance_seconds(7 * 86_400 - 1);
    // One item at a time: moto copies this 5,000-item table in every transaction and
    // serialises them, so items in flight would wait past the SDK's timeouts.
    let one_at_a_time = SweepBudget::unlimited().in_flight(1);
    assert_eq!(
        h.sweep_within(one_at_a_time).await.expired,
        0,
        "nothing due a second early"
    );
    h.clock.advance_seconds(1);
    let report = h.sweep_within(one_at_a_time).await;
    println!(
        "sweep over {} rows ({NOT_YET_DUE} disconnected, not due): {report:?}",
        UNRELATED + DUE
    );
    assert_eq!(report.expired, DUE);
    assert!(
        report.index_items_read <= DUE + 2,
        "read {} index items for {DUE} due rows in a table of {}",
        report.index_items_read,
        UNRELATED + DUE
    );
    for t in types.iter().take(DUE) {
        assert!(h.raw_row(entity, t.as_str()).await.is_none());
        assert!(h.describe_secret(entity, t.as_str()).await.is_none());
    }
    assert_eq!(h.events(DUE).await.len(), DUE, "one integration.expired per due row");
    // The emulator copies every table on each transaction: drop this big one.
    h.dynamo
        .delete_table()
        .table_name(&h.settings.table)
        .send()
        .await
        .unwrap();
}

const PER_KIND: usize = 200;

/// The time budget with the real adapters: ~200 due items of every kind and a synthetic
/// deadline (10 s, or more when the emulator is slow to answer the index reads). The
/// harness's clock stands still, so the sweep keeps starting items and the run is cut at
/// its hard stop (2 s before the deadline): it has attempted every kind, says
/// `budget_exhausted`, and released its lease (its EMF line is written from this report).
#[tokio::test]
async fn a_run_over_hundreds_of_due_items_of_every_kind_stops_at_its_deadline_having_tried_every_kind() {
    let h = Harness::new().await;
    let now = h.now();
    let types: Vec<ConnectorType> = ConnectorType::all().collect();
    let principal = |entity| Principal {
        entity_id: entity,
        key_id: KeyId::parse("key_seed00000000").unwrap(),
        livemode: true,
        scopes: Scope::ALL.into(),
    };
    let mut rows = Vec::new();
    for i in 0..PER_KIND {
        let p = principal(EntityId::new_random());
        let row = lifecycle::connect(&p, types[i % types.len()], &Edits::default(), now.plus_days(-9)).unwrap();
        rows.push(connector_item(&lifecycle::disconnect(&row, now.plus_days(-8)).unwrap()));
    }
    batch_write(&h, rows).await;
    let store = &h.app.service.store;
    for i in 0..PER_KIND {
        let p = principal(EntityId::new_random());
        let row = lifecycle::connect(&p, types[i % types.len()], &Edits::default(), now).unwrap();
        let event = Event::new(EventType::Connected, &row, None, now.plus_seconds(-600));
        let record = OutboxRecord::new(&event, &row, None);
        support::as_function("connect", store.save(&row, None, &[record], None))
            .await
            .unwrap();
        let orphan = SecretRef {
            entity_id: EntityId::new_random(),
            connector_id: ConnectorId::new_random(),
            connector_type: types[i % types.len()],
        };
        let guard = SecretGuard::new(orphan, now.plus_seconds(-GUARD_GRACE_SECONDS - 60));
        support::as_function("credentials", store.guard_secret(&guard))
            .await
            .unwrap();
    }
    // The deadline leaves the work room after the three index reads that come first, at
    // the speed this emulator answers them now: late in a full suite it answers them
    // several times slower than fresh, and a fixed 10 s was once spent on them alone.
    let reads = std::time::Instant::now();
    let (expiries, outbox, guards) = support::as_function("sweeper", async {
        futures::join!(
            store.due_expiries(now, SWEEP_BATCH, 0),
            store.due_outbox(now, SWEEP_BATCH, 0),
            store.due_guards(now.plus_seconds(-GUARD_GRACE_SECONDS), SWEEP_BATCH, 0),
        )
    })
    .await;
    let reads = reads.elapsed();
    assert_eq!(
        (
            expiries.unwrap().items.len(),
            outbox.unwrap().items.len(),
            guards.unwrap().items.len()
        ),
        (PER_KIND, PER_KIND, PER_KIND),
        "every seeded item is due"
    );
    let deadline_in = (HARD_STOP_MARGIN_MS as u128 + (3 * reads.as_millis()).max(5_000) + 3_000) as i64;
    let started = std::time::Instant::now();
    let deadline_ms = h.clock.now_ms() + deadline_in;
    let summary = support::as_function(
        "sweeper",
        shared::sweeper::run(
            &h.app,
            shared::sweeper::Invocation {
                request_id: "scale".into(),
                deadline_ms: deadline_ms as u64,
            },
        ),
    )
    .await
    .unwrap();
    let took = started.elapsed();
    let r = &summary.report;
    println!(
        "{PER_KIND} due of each kind, index reads {reads:?}, {deadline_in} ms deadline, cut after {took:?}: {r:?}"
    );
    assert!(summary.swept && r.budget_exhausted, "{r:?}");
    let started = r.expiries_attempted + r.outbox_attempted + r.guards_attempted;
    assert_eq!(r.left_for_next_run, 3 * PER_KIND - started, "the rest waits: {r:?}");
    // When the cut comes (at the hard stop, the report and the lease's release before the
    // deadline) is asserted without wall time: in paused time by
    // `sweeper::tests::a_run_still_going_at_its_hard_stop_is_cut_there_and_reports`, and
    // on the simulated clock by `sim/tests/sweep_scale.rs`.
    assert!(
        r.expiries_attempted > 0 && r.outbox_attempted > 0 && r.guards_attempted > 0,
        "every kind attempted: {r:?}"
    );
    assert!(r.expired + r.republished + r.orphans_deleted > 0);
    // The emulator copies every table on each transaction: drop this one.
    h.dynamo
        .delete_table()
        .table_name(&h.settings.table)
        .send()
        .await
        .unwrap();
}
