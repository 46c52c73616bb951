//! The scheduled sweeper's lease on the emulator: runs of the Lambda entry
//! (`shared::sweeper::run`, as the sweeper function, so its grants are the ones checked)
//! never overlap; a run that finds the lease held does nothing and succeeds; a lease whose
//! run died is taken over once it ends; a released lease is free at once.

use crate::support;

use aws_sdk_dynamodb::types::AttributeValue;
use serde_json::Value;
use shared::aws::items::lease_key;
use shared::aws::table::TABLE;
use shared::ports::LeaseClaim;
use shared::sweeper::{
    run, Invocation, SweepSummary, LEASE_MARGIN_SECONDS, RUN_SECONDS_WITHOUT_DEADLINE, SWEEPER_LEASE,
};
use shared::App;
use support::faults::FaultProxy;
use support::{as_function, Harness};

const DAY: i64 = 86_400;

/// One scheduled run served by `app`, as the sweeper function.
async fn scheduled(app: &App, request_id: &str) -> SweepSummary {
    let invocation = Invocation {
        request_id: request_id.into(),
        deadline_ms: 0,
    };
    as_function("sweeper", run(app, invocation))
        .await
        .expect("the run succeeds")
}

/// A disconnect whose window has ended: work for a sweep (one expiry, one event).
async fn expired_disconnect(h: &Harness, connector_type: &str) {
    let (_, key) = h.tenant(false).await;
    assert_eq!(h.as_key(&key).post(connector_type, None).await.status, 201);
    assert_eq!(h.as_key(&key).delete(connector_type).await.status, 200);
    h.events(2).await;
    h.clock.advance_seconds(8 * DAY);
}

/// The lease item as stored, if any.
async fn lease_item(h: &Harness) -> Option<std::collections::HashMap<String, AttributeValue>> {
    h.dynamo
        .get_item()
        .table_name(&h.settings.table)
        .set_key(Some(lease_key(SWEEPER_LEASE)))
        .consistent_read(true)
        .send()
        .await
        .unwrap()
        .item
}

/// Another run's lease, taken directly through the port (as the sweeper).
async fn held_by_another(h: &Harness, until_seconds: i64) {
    let now = h.now();
    let taken = as_function(
        "sweeper",
        h.app
            .service
            .store
            .take_lease(SWEEPER_LEASE, "another-run", now.plus_seconds(until_seconds), now),
    )
    .await
    .unwrap();
    assert_eq!(taken, LeaseClaim::Taken);
}

#[tokio::test]
async fn two_runs_at_once_one_sweeps_the_other_skips_and_both_succeed() {
    let h = Harness::new().await;
    expired_disconnect(&h, "ups").await;
    // Two containers, through one serialising proxy: DynamoDB's isolation of the two
    // conditional puts, which moto lacks on its own.
    let proxy = FaultProxy::start_serializing(&support::emulator_endpoint()).await;
    let container = || {
        App::from_clients(
            support::clients(&h.sdk, Some(&proxy.url), Some(&h.actions)),
            h.settings.clone(),
            h.clock.clone(),
        )
    };
    let (one, other) = (container(), container());
    let (a, b) = tokio::join!(scheduled(&one, "run-a"), scheduled(&other, "run-b"));
    let (winner, loser) = match (a.swept, b.swept) {
        (true, false) => (a, b),
        (false, true) => (b, a),
        both => panic!("exactly one run sweeps: {both:?}"),
    };
    assert_eq!(winner.report.expired, 1);
    assert_eq!(loser.skipped_because, Some("lease_held"));
    assert_eq!(loser.report, Default::default(), "the loser did nothing");
    let json = serde_json::to_value(&loser).unwrap();
    assert_eq!(
        (json["swept"].clone(), json["skipped_because"].clone()),
        (Value::Bool(false), "lease_held".into())
    );
    assert_eq!(json["expired"], 0, "the summary keeps the report's fields");
    assert_eq!(h.events(1).await.len(), 1, "one integration.expired, once");
    assert!(lease_item(&h).await.is_none(), "the winner released the lease");
}

#[tokio::test]
async fn a_run_that_finds_the_lease_held_changes_nothing() {
    let h = Harness::new().await;
    expired_disconnect(&h, "fedex").await;
    held_by_another(&h, 60).await;
    let before = lease_item(&h).await.unwrap();
    let summary = scheduled(&h.app, "late-run").await;
    assert!(!summary.swept);
    assert_eq!(h.outbox().await.len(), 0);
    assert!(h.events(0).await.is_empty(), "no event");
    assert_eq!(lease_item(&h).await.unwrap(), before, "the holder's lease untouched");
    // The expired row is still there for the holder (or the next run) to finalise.
    let scan = h
        .dynamo
        .scan()
        .table_name(&h.settings.table)
        .filter_expression("begins_with(sk, :conn)")
        .expression_attribute_values(":conn", AttributeValue::S("CONN#".into()))
        .send()
        .await
        .unwrap();
    assert_eq!(scan.count(), 1, "the expired row is untouched");
}

#[tokio::test]
async fn a_lease_past_its_end_is_taken_over() {
    let h = Harness::new().await;
    expired_disconnect(&h, "shippo").await;
    // A run that died holding the lease (never released it).
    held_by_another(&h, RUN_SECONDS_WITHOUT_DEADLINE + LEASE_MARGIN_SECONDS).await;
    h.clock.advance_seconds(RUN_SECONDS_WITHOUT_DEADLINE);
    assert!(!scheduled(&h.app, "too-early").await.swept, "still within its end");
    h.clock.advance_seconds(LEASE_MARGIN_SECONDS);
    let summary = scheduled(&h.app, "takes-over").await;
    assert!(summary.swept, "taken over once it ended");
    assert_eq!(summary.report.expired, 1);
    assert!(lease_item(&h).await.is_none(), "and released after");
}

#[tokio::test]
async fn a_released_lease_is_free_for_the_next_run_at_once() {
    let h = Harness::new().await;
    for run_id in ["first", "second", "third"] {
        let summary = scheduled(&h.app, run_id).await;
        assert!(summary.swept, "{run_id}");
        assert!(lease_item(&h).await.is_none(), "{run_id} released it");
    }
    // A release by someone else's token leaves the lease held.
    held_by_another(&h, 60).await;
    let store = &h.app.service.store;
    as_function("sweeper", store.release_lease(SWEEPER_LEASE, "not-the-owner"))
        .await
        .unwrap();
    let item = lease_item(&h).await.expect("still held");
    assert_eq!(item["owner"].as_s().unwrap(), "another-run");
    assert_eq!(item[TABLE.partition_key].as_s().unwrap(), "LEASE#sweeper");
    as_function("sweeper", store.release_lease(SWEEPER_LEASE, "another-run"))
        .await
        .unwrap();
    assert!(scheduled(&h.app, "fourth").await.swept);
}
