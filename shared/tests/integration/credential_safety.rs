//! The credential-safety defects a review found (numbered as in the review), each
//! reproduced on the emulator through the HTTP layer as callers drive it, with the fault
//! proxy or a broken dependency making the rare interleaving happen on purpose:
//!
//! 1. a late retry of a permanent delete or an expiry destroyed a newer connector's secret;
//! 3. an idempotency claim of a killed request blocked its key for 24 h, and a stalled AWS
//!    call ran a request into the Lambda timeout instead of a 503;
//! 4. one undecodable item in the `due` index aborted the sweep, failing outbox records
//!    were retried on every run, and the index had one hot partition per kind;
//! 6. credentials written while a permanent delete raced them left an orphan secret;
//! 7. a disconnected row's TTL equalled its window, so TTL could delete it before the sweeper;
//! 8. idempotency records were shared by an entity's test and live keys, and stored an
//!    unsalted SHA-256 of a body holding credentials;
//! 11. connecting again right after a permanent delete collided with the secret name AWS
//!     was still deleting (a 500).

use crate::support;

use std::collections::{BTreeSet, HashMap};
use std::time::Duration;

use aws_sdk_dynamodb::types::AttributeValue;
use lambda_http::RequestExt;
use serde_json::{json, Value};
use sha2::{Digest, Sha256};
use shared::aws::table::{due_partition, DueKind, TABLE};
use shared::config::Settings;
use shared::domain::api_key::Scope;
use shared::domain::ids::EntityId;
use shared::ports::{GUARD_GRACE_SECONDS, IDEMPOTENCY_LEASE_SECONDS, OUTBOX_GRACE_SECONDS};
use shared::App;
use support::faults::{Fault, FaultProxy};
use support::Harness;

const DAY: i64 = 86_400;
const WINDOW: i64 = 7 * DAY;

/// The harness's wiring with every AWS call sent to `endpoint` (a fault proxy).
fn app_via(h: &Harness, endpoint: &str) -> App {
    h.app_via(endpoint)
}

/// The harness's wiring with a bus that refuses every event (it does not exist): state
/// changes commit and their secret work is done, but each event stays in the outbox.
fn app_with_the_bus_down(h: &Harness) -> App {
    App::new(
        &h.sdk,
        Settings {
            event_bus: "no-such-bus".into(),
            ..h.settings.clone()
        },
        h.clock.clone(),
    )
}

fn types(events: &[Value]) -> Vec<String> {
    events
        .iter()
        .map(|e| e["detail-type"].as_str().unwrap().to_string())
        .collect()
}

fn credentials(secret_key: &str) -> Value {
    json!({"credentials": {"secret_key": secret_key}})
}

/// Every secret stored under `entity`'s prefix, whatever its name (by connector type or by
/// connector id), with whether it is scheduled for deletion.
async fn secrets_of(h: &Harness, entity: EntityId) -> Vec<(String, bool)> {
    h.secrets_of(entity)
        .await
        .iter()
        .filter_map(|s| Some((s.name()?.to_string(), s.deleted_date().is_some())))
        .collect()
}

/// A secret's stored value, if it can be read.
async fn secret_json(h: &Harness, name: &str) -> Option<Value> {
    let out = h.secrets.get_secret_value().secret_id(name).send().await.ok()?;
    serde_json::from_str(out.secret_string()?).ok()
}

/// The one readable secret of `entity`, with its value; fails if there is not exactly one.
async fn the_live_secret(h: &Harness, entity: EntityId, context: &str) -> (String, Value) {
    let secrets = secrets_of(h, entity).await;
    let live: Vec<&String> = secrets.iter().filter(|(_, s)| !s).map(|(n, _)| n).collect();
    assert_eq!(live.len(), 1, "{context}: one live secret expected, found {secrets:?}");
    let value = secret_json(h, live[0])
        .await
        .unwrap_or_else(|| panic!("{context}: the secret {} cannot be read", live[0]));
    (live[0].clone(), value)
}

async fn connect_with_credentials(h: &Harness, key: &str, connector_type: &str, secret_key: &str) -> Value {
    let created = h.as_key(key).post(connector_type, None).await;
    assert_eq!(created.status, 201, "{}", created.raw);
    let put = h
        .as_key(key)
        .put_credentials(connector_type, credentials(secret_key))
        .await;
    assert_eq!(put.status, 200, "{}", put.raw);
    put.body["data"].clone()
}

/// The idempotency records of `entity` (a Scan of this test's own table: the key layout is
/// the adapter's business, so the test finds them by their partition key's prefix).
async fn idempotency_records(h: &Harness, entity: EntityId) -> Vec<HashMap<String, AttributeValue>> {
    h.dynamo
        .scan()
        .table_name(&h.settings.table)
        .filter_expression("begins_with(pk, :p)")
        .expression_attribute_values(":p", AttributeValue::S(shared::aws::idempotency::entity_prefix(entity)))
        .send()
        .await
        .expect("scan")
        .items()
        .to_vec()
}

fn unix_of(rfc3339: &Value) -> i64 {
    chrono::DateTime::parse_from_rfc3339(rfc3339.as_str().expect("a timestamp"))
        .expect("RFC 3339")
        .timestamp()
}

// 1, purge shape ------------------------------------------------------------------------

#[tokio::test]
async fn a_late_purge_retry_never_touches_the_new_connectors_secret() {
    let h = Harness::new().await;
    let (entity, key) = h.tenant(false).await;
    let old = connect_with_credentials(&h, &key, "stripe", "sk_old").await;
    h.events(2).await;

    // Permanent delete while the bus refuses events: the row and the secret are gone, the
    // `integration.deleted` record (carrying the secret's force-delete) stays behind.
    let bus_down = app_with_the_bus_down(&h);
    let purge = h.as_key(&key).via(&bus_down).purge("stripe").await;
    assert_eq!(purge.status, 204, "{}", purge.raw);
    assert_eq!(h.outbox().await.len(), 1, "the deleted event waits in the outbox");

    // The tenant connects the same type again and stores new credentials.
    let new = connect_with_credentials(&h, &key, "stripe", "sk_new").await;
    assert_ne!(new["id"], old["id"], "a new connector");
    assert_eq!(
        types(&h.events(2).await),
        ["integration.connected", "integration.credentials_updated"]
    );

    // The sweeper retries the old record.
    h.clock.advance_seconds(OUTBOX_GRACE_SECONDS + 1);
    let report = h.sweep().await;
    assert_eq!((report.republished, report.failed), (1, 0));
    let late = h.events(1).await;
    assert_eq!(types(&late), ["integration.deleted"]);
    assert_eq!(late[0]["detail"]["data"]["object"]["id"], old["id"]);

    // The new connector's secret is untouched, and its row still says so.
    let (_, value) = the_live_secret(&h, entity, "after the late purge retry").await;
    assert_eq!(
        value["credentials"]["secret_key"], "sk_new",
        "the new connector's credentials survive the old connector's late delete"
    );
    let row = h.as_key(&key).get("stripe").await;
    assert_eq!(row.body["data"]["id"], new["id"]);
    assert_eq!(row.body["data"]["has_credentials_secret_arn"], true);
    assert!(h.outbox().await.is_empty());
}

// 1, expiry shape -----------------------------------------------------------------------

#[tokio::test]
async fn a_late_expiry_retry_never_touches_the_new_connectors_secret() {
    let h = Harness::new().await;
    let (entity, key) = h.tenant(false).await;
    let old = connect_with_credentials(&h, &key, "stripe", "sk_old").await;
    let off = h.as_key(&key).delete("stripe").await;
    assert_eq!(off.status, 200, "{}", off.raw);
    h.events(3).await;

    // The window passes; the sweeper expires the row while the bus refuses events: row
    // and secret gone, the `integration.expired` record (with its force-delete) left over.
    h.clock.advance_seconds(WINDOW);
    let bus_down = app_with_the_bus_down(&h);
    let report = h.try_sweep_via(&bus_down).await.expect("sweep");
    assert_eq!((report.expired, report.failed), (1, 1), "expired, event not delivered");
    assert_eq!(h.outbox().await.len(), 1, "the expired event waits in the outbox");

    // The tenant connects the same type again and stores new credentials.
    let new = connect_with_credentials(&h, &key, "stripe", "sk_new").await;
    assert_ne!(new["id"], old["id"], "a new connector");
    h.events(2).await;

    // The next sweep re-delivers the old connector's expiry.
    h.clock.advance_seconds(OUTBOX_GRACE_SECONDS + 1);
    let report = h.sweep().await;
    assert_eq!((report.republished, report.failed), (1, 0));
    let late = h.events(1).await;
    assert_eq!(types(&late), ["integration.expired"]);
    assert_eq!(late[0]["detail"]["data"]["object"]["id"], old["id"]);

    let (_, value) = the_live_secret(&h, entity, "after the late expiry retry").await;
    assert_eq!(
        value["credentials"]["secret_key"], "sk_new",
        "the new connector's credentials survive the old connector's late expiry"
    );
    let row = h.as_key(&key).get("stripe").await;
    assert_eq!(
        (row.body["data"]["id"].clone(), row.body["data"]["is_active"].clone()),
        (new["id"].clone(), json!(true))
    );
}

// 3, lease ------------------------------------------------------------------------------

#[tokio::test]
async fn a_claim_left_by_a_killed_request_is_taken_over_once_its_lease_runs_out() {
    let h = Harness::new().await;
    let (_, key) = h.tenant(false).await;
    let proxy = FaultProxy::start(&support::emulator_endpoint()).await;
    let app = app_via(&h, &proxy.url);
    let body = json!({"display_name": "Warehouse"});
    let caller = || h.as_key(&key).idempotency_key("order-7");

    // The request claims its key, then is killed (Lambda timeout, crash) while its
    // transaction is on the wire: the claim stays `in_progress`, nothing was written.
    let mut hold = proxy.hold("TransactWriteItems");
    tokio::select! {
        r = caller().via(&app).post("shippo", Some(body.clone())) => {
            panic!("the request was to be killed mid-way, yet answered {}", r.status)
        }
        _ = hold.reached() => {}
    }
    drop(hold); // the held transaction never reaches the table

    // While the lease runs, a retry is told the first request is still in progress.
    let early = caller().post("shippo", Some(body.clone())).await;
    assert_eq!(
        (early.status, early.error_code().as_str()),
        (409, "conflict"),
        "{}",
        early.raw
    );
    h.clock.advance_seconds(IDEMPOTENCY_LEASE_SECONDS - 1);
    let still = caller().post("shippo", Some(body.clone())).await;
    assert_eq!(still.status, 409, "the lease still runs: {}", still.raw);

    // Once it ran out: a different request with the key is still a mismatch…
    h.clock.advance_seconds(1);
    let other = caller().post("shippo", Some(json!({"display_name": "Other"}))).await;
    assert_eq!(
        (other.status, other.error_code().as_str()),
        (409, "idempotency_key_mismatch"),
        "{}",
        other.raw
    );
    // …and the same request takes the claim over and executes.
    let retry = caller().post("shippo", Some(body.clone())).await;
    assert_eq!(
        retry.status, 201,
        "a retry after the lease takes over the killed request's claim: {}",
        retry.raw
    );
    assert_eq!(retry.body["data"]["display_name"], "Warehouse");
    let replay = caller().post("shippo", Some(body)).await;
    assert_eq!(replay.status, 201);
    assert_eq!(replay.header("idempotent-replayed"), Some("true"));
    assert_eq!(replay.body["data"]["id"], retry.body["data"]["id"]);
    assert_eq!(types(&h.events(1).await), ["integration.connected"], "executed once");
}

// 3, deadline ---------------------------------------------------------------------------

/// The 503 of a request cut at its deadline: the envelope, `Retry-After`, and the cut's own
/// hint (not a dependency's failure).
fn assert_cut_at_its_deadline(reply: &support::Reply) {
    assert_eq!(
        (reply.status, reply.error_code().as_str()),
        (503, "service_unavailable"),
        "{}",
        reply.raw
    );
    let hint = reply.body["hint"].as_str().unwrap_or_default();
    assert!(hint.contains("ran out of time"), "{}", reply.raw);
    assert!(reply.header("retry-after").is_some(), "503 with Retry-After");
}

#[tokio::test]
async fn a_request_stalled_near_its_lambda_deadline_answers_503_with_the_envelope_in_time() {
    let h = Harness::new().await;
    let (_, key) = h.tenant(false).await;
    let proxy = FaultProxy::start(&support::emulator_endpoint()).await;
    let app = app_via(&h, &proxy.url);
    let caller = || h.as_key(&key).idempotency_key("deadline-1");

    // Every attempt of the connect's transaction stalls (1.5 s each, three attempts); the
    // invocation has 3 s left.
    proxy.arm_operation("TransactWriteItems", Fault::Timeout);
    let left = Duration::from_millis(3000);
    let mut context = lambda_http::Context::default();
    context.request_id = "lambda-request-1".into();
    context.deadline = u64::try_from(chrono::Utc::now().timestamp_millis()).unwrap() + left.as_millis() as u64;
    let req = caller().request("POST", "/v1/integrations/printnode", None);
    let reply = h.send_via(&app, req.with_lambda_context(context)).await;
    // Cut by the deadline (1.5 s before it), not by the SDK giving up after its three
    // attempts (4.5 s, past the deadline): the answer says it ran out of time. That the
    // cut comes before the deadline on the clock is shown without wall time by
    // `sim/tests/deadline.rs`.
    assert_cut_at_its_deadline(&reply);
    proxy.disarm();

    // The claim was released: the retry with the same key executes.
    let retry = caller().post("printnode", None).await;
    assert_eq!(retry.status, 201, "{}", retry.raw);
}

/// Found while writing these tests: when a request is cut short because DynamoDB stalls,
/// the Idempotency-Key claim is released with one more DynamoDB call — which stalls too,
/// past the margin kept for answering, so Lambda kills the request after all.
#[tokio::test]
async fn a_request_cut_short_while_dynamodb_stalls_still_answers_before_its_deadline() {
    let h = Harness::new().await;
    let (_, key) = h.tenant(false).await;
    let proxy = FaultProxy::start(&support::emulator_endpoint()).await;
    let app = app_via(&h, &proxy.url);
    let path = "/v1/integrations/mapquest";
    let caller = || h.as_key(&key).idempotency_key("deadline-2");

    // The key is read and the claim written; from then on every DynamoDB call stalls.
    proxy.arm_from(2, Fault::Timeout);
    let left = Duration::from_millis(3000);
    let mut context = lambda_http::Context::default();
    context.deadline = u64::try_from(chrono::Utc::now().timestamp_millis()).unwrap() + left.as_millis() as u64;
    let req = caller().request("POST", path, None).with_lambda_context(context);
    let response = support::handle_as_function(&app, req).await;
    let (calls, _) = proxy.calls();
    assert!(
        calls.len() >= 2 && calls[0].ends_with("GetItem") && calls[1].ends_with("PutItem"),
        "the key read and the claim came first: {calls:?}"
    );
    // The claim's release stalls too and is cut 0.25 s before the deadline; that both
    // cuts come before the deadline on the clock is shown without wall time by
    // `sim/tests/deadline.rs`.
    let reply = h.record("POST", path, response);
    assert_cut_at_its_deadline(&reply);
    proxy.disarm();

    // The claim could not be released; its lease frees the key.
    h.clock.advance_seconds(IDEMPOTENCY_LEASE_SECONDS);
    let retry = caller().post("mapquest", None).await;
    assert_eq!(retry.status, 201, "{}", retry.raw);
}

// 4, bad items --------------------------------------------------------------------------

#[tokio::test]
async fn an_undecodable_item_in_the_due_index_is_skipped_and_counted_not_fatal() {
    let h = Harness::new().await;
    let (entity, key) = h.tenant(false).await;
    // A disconnected row that will be due, and an outbox record left behind.
    assert_eq!(h.as_key(&key).post("ups", None).await.status, 201);
    assert_eq!(h.as_key(&key).delete("ups").await.status, 200);
    assert_eq!(h.as_key(&key).post("fedex", None).await.status, 201);
    let bus_down = app_with_the_bus_down(&h);
    let edit = json!({"display_name": "Freight"});
    assert_eq!(h.as_key(&key).via(&bus_down).patch("fedex", edit).await.status, 200);
    h.events(3).await;
    let expiry_partition = h.raw_row(entity, "ups").await.unwrap()["due_pk"].clone();
    let outbox = h.outbox().await;
    assert_eq!(outbox.len(), 1);
    let outbox_partition = outbox[0]["due_pk"].clone();

    // Hand-written junk in the same index partitions, sorted before the good items.
    for (n, partition) in [expiry_partition, outbox_partition].into_iter().enumerate() {
        h.dynamo
            .put_item()
            .table_name(&h.settings.table)
            .item(TABLE.partition_key, AttributeValue::S(format!("JUNK#{n}")))
            .item(TABLE.sort_key, AttributeValue::S("JUNK".into()))
            .item("due_pk", partition)
            .item("due_at", AttributeValue::S("1970-01-01T00:00:00Z#junk".into()))
            .item("entity_id", AttributeValue::S("not-an-entity".into()))
            .item("event_id", AttributeValue::N("7".into()))
            .send()
            .await
            .unwrap();
    }

    h.clock.advance_seconds(WINDOW);
    let report = h
        .try_sweep_via(&h.app)
        .await
        .expect("one undecodable item must not stop the sweep");
    assert_eq!(report.bad_items, 2, "each undecodable item counted: {report:?}");
    assert_eq!(
        (report.expired, report.republished, report.failed),
        (1, 1, 0),
        "{report:?}"
    );
    assert!(h.raw_row(entity, "ups").await.is_none(), "the due row was expired");
    let mut events = types(&h.events(2).await);
    events.sort();
    assert_eq!(events, ["integration.expired", "integration.updated"]);
}

// 4, back-off ---------------------------------------------------------------------------

#[tokio::test]
async fn an_outbox_record_that_keeps_failing_backs_off_and_is_reported_undelivered() {
    let h = Harness::new().await;
    let (_, key) = h.tenant(false).await;
    assert_eq!(h.as_key(&key).post("shopify", None).await.status, 201);
    h.events(1).await;
    let bus_down = app_with_the_bus_down(&h);
    let off = h.as_key(&key).via(&bus_down).delete("shopify").await;
    assert_eq!(off.status, 200, "{}", off.raw);

    // The bus stays down: each failed attempt pushes the next one further out.
    h.clock.advance_seconds(OUTBOX_GRACE_SECONDS + 1);
    let first = h.try_sweep_via(&bus_down).await.unwrap();
    assert_eq!((first.republished, first.failed), (0, 1), "{first:?}");
    let again = h.try_sweep_via(&bus_down).await.unwrap();
    assert_eq!(
        again.failed, 0,
        "a record that just failed is not retried by every run, it backs off: {again:?}"
    );
    let stored = h.outbox().await;
    assert_eq!(stored.len(), 1, "still kept");
    assert_eq!(stored[0]["attempts"].as_n().unwrap(), "1");

    // Each later attempt waits longer (2, 4, 8… minutes, capped at an hour).
    let mut waited = OUTBOX_GRACE_SECONDS + 1;
    for (attempt, delay) in [(2, 120), (3, 240), (4, 480)] {
        h.clock.advance_seconds(delay - 1);
        assert_eq!(
            h.try_sweep_via(&bus_down).await.unwrap().failed,
            0,
            "attempt {attempt} too early"
        );
        h.clock.advance_seconds(1);
        waited += delay;
        let report = h.try_sweep_via(&bus_down).await.unwrap();
        assert_eq!(report.failed, 1, "attempt {attempt}: {report:?}");
        assert_eq!(report.undelivered, 0, "younger than an hour");
    }
    // Failing for over an hour, it is reported undelivered.
    h.clock.advance_seconds(2 * 3600 - waited);
    let late = h.try_sweep_via(&bus_down).await.unwrap();
    assert_eq!((late.failed, late.undelivered), (1, 1), "{late:?}");

    // The bus is back: the next due attempt delivers it, once.
    h.clock.advance_seconds(3600);
    let report = h.sweep().await;
    assert_eq!((report.republished, report.failed), (1, 0), "{report:?}");
    assert_eq!(types(&h.events(1).await), ["integration.disconnected"]);
    assert!(h.outbox().await.is_empty());
}

// 4, shards -----------------------------------------------------------------------------

#[tokio::test]
async fn due_items_spread_over_every_shard_and_the_sweep_reads_them_all() {
    let h = Harness::new().await;
    // One tenant per expiry shard (the shard is a hash of the row's identity).
    let mut by_shard: HashMap<String, EntityId> = HashMap::new();
    while by_shard.len() < DueKind::Expiry.partitions(0).count() {
        let entity = EntityId::new_random();
        by_shard
            .entry(due_partition(DueKind::Expiry, &format!("{entity}#ups")))
            .or_insert(entity);
    }
    let entities: Vec<EntityId> = by_shard.into_values().collect();
    let bus_down = app_with_the_bus_down(&h);
    for entity in &entities {
        let key = h.key(*entity, &Scope::ALL, false).await;
        assert_eq!(h.as_key(&key).post("ups", None).await.status, 201);
        // Disconnected with the bus down: an outbox record each too.
        let off = h.as_key(&key).via(&bus_down).delete("ups").await;
        assert_eq!(off.status, 200, "{}", off.raw);
    }
    h.events(entities.len()).await;

    let mut expiry_partitions = BTreeSet::new();
    for entity in &entities {
        let row = h.raw_row(*entity, "ups").await.unwrap();
        expiry_partitions.insert(row["due_pk"].as_s().unwrap().clone());
    }
    assert_eq!(
        expiry_partitions.len(),
        entities.len(),
        "each row in its own index partition: {expiry_partitions:?}"
    );
    let outbox = h.outbox().await;
    assert_eq!(outbox.len(), entities.len());
    let outbox_partitions: BTreeSet<String> = outbox.iter().map(|r| r["due_pk"].as_s().unwrap().clone()).collect();
    assert!(
        outbox_partitions.len() >= 4,
        "outbox records spread over the shards: {outbox_partitions:?}"
    );

    h.clock.advance_seconds(WINDOW);
    let report = h.sweep().await;
    assert_eq!(
        (report.expired, report.republished, report.failed, report.bad_items),
        (entities.len(), entities.len(), 0, 0),
        "every shard read: {report:?}"
    );
    for entity in &entities {
        assert!(h.raw_row(*entity, "ups").await.is_none());
    }
    assert!(h.outbox().await.is_empty());
    let events = types(&h.events(2 * entities.len()).await);
    assert_eq!(
        events.iter().filter(|t| *t == "integration.expired").count(),
        entities.len()
    );
    assert_eq!(
        events.iter().filter(|t| *t == "integration.disconnected").count(),
        entities.len()
    );
}

// 6 -------------------------------------------------------------------------------------

#[tokio::test]
async fn credentials_racing_a_permanent_delete_leave_no_secret_once_the_sweeper_ran() {
    let h = Harness::new().await;
    let (entity, key) = h.tenant(false).await;
    assert_eq!(h.as_key(&key).post("stripe", None).await.status, 201);
    let proxy = FaultProxy::start(&support::emulator_endpoint()).await;
    let app = app_via(&h, &proxy.url);

    // The PUT has read the row; its secret is about to be created when the permanent
    // delete runs to completion; then the secret is created, for a row that is gone.
    let mut hold = proxy.hold("CreateSecret");
    let put = h
        .as_key(&key)
        .via(&app)
        .put_credentials("stripe", credentials("sk_raced"));
    let purge = async {
        hold.reached().await;
        let gone = h.as_key(&key).purge("stripe").await;
        hold.release();
        gone
    };
    let (put, gone) = tokio::join!(put, purge);
    assert_eq!(gone.status, 204, "{}", gone.raw);
    assert!(
        matches!(put.status, 404 | 409),
        "the PUT lost to the delete: {}",
        put.raw
    );
    assert!(h.raw_row(entity, "stripe").await.is_none(), "no row");
    assert_eq!(
        secrets_of(&h, entity).await.len(),
        1,
        "the raced PUT created its secret after the delete"
    );

    // Once the longest request could still be running, the sweeper deletes the orphan.
    h.clock.advance_seconds(GUARD_GRACE_SECONDS + 1);
    let report = h.sweep().await;
    assert_eq!(report.orphans_deleted, 1, "{report:?}");
    assert_eq!(
        secrets_of(&h, entity).await,
        Vec::<(String, bool)>::new(),
        "no secret is left without its connector row"
    );
    // The tenant's next connect starts clean.
    assert_eq!(h.as_key(&key).post("stripe", None).await.status, 201);
    assert_eq!(h.sweep().await.orphans_deleted, 0);
}

// 7 -------------------------------------------------------------------------------------

#[tokio::test]
async fn a_disconnected_rows_ttl_lies_a_margin_after_its_window_so_the_sweeper_expires_it() {
    let h = Harness::new().await;
    let (entity, key) = h.tenant(false).await;
    let row = connect_with_credentials(&h, &key, "stripe", "sk_1").await;
    let off = h.as_key(&key).delete("stripe").await;
    assert_eq!(off.status, 200, "{}", off.raw);
    h.events(3).await;

    let until = unix_of(&off.body["data"]["recoverable_until"]);
    let item = h.raw_row(entity, "stripe").await.unwrap();
    let ttl: i64 = item["ttl"].as_n().unwrap().parse().unwrap();
    assert!(
        ttl > until,
        "TTL ({ttl}) must lie after the window ({until}), or DynamoDB may delete the row before the sweeper expires it"
    );
    assert_eq!(ttl - until, shared::aws::items::TTL_MARGIN_DAYS * DAY, "by the margin");

    // The window passes (TTL has not): the sweeper expires the row in full.
    h.clock.advance_seconds(WINDOW);
    assert!(h.now().unix() < ttl, "TTL not yet due");
    let report = h.sweep().await;
    assert_eq!((report.expired, report.failed), (1, 0), "{report:?}");
    let events = h.events(1).await;
    assert_eq!(types(&events), ["integration.expired"]);
    assert_eq!(events[0]["detail"]["data"]["object"]["id"], row["id"]);
    assert!(h.raw_row(entity, "stripe").await.is_none(), "row gone");
    assert_eq!(
        secrets_of(&h, entity).await,
        Vec::<(String, bool)>::new(),
        "secret gone"
    );
}

// 8, per mode ---------------------------------------------------------------------------

#[tokio::test]
async fn test_and_live_keys_of_one_entity_never_see_each_others_idempotent_answers() {
    let h = Harness::new().await;
    let entity = EntityId::new_random();
    let live = h.key(entity, &Scope::ALL, true).await;
    let test = h.key(entity, &Scope::ALL, false).await;

    // A test key uses a key first; the live key's own request with it is not pre-empted.
    let sandbox = h.as_key(&test).idempotency_key("order-1").post("shippo", None).await;
    assert_eq!(sandbox.status, 201, "{}", sandbox.raw);
    let live_ups = h.as_key(&live).idempotency_key("order-1").post("ups", None).await;
    assert_eq!(
        live_ups.status, 201,
        "the live key's request is not blocked by the test key's use of the same key: {}",
        live_ups.raw
    );
    assert_eq!(live_ups.body["data"]["mode"], "live");

    // The live key's answer is never replayed to the test key.
    let body = json!({"display_name": "Payments"});
    let live_stripe = h
        .as_key(&live)
        .idempotency_key("order-2")
        .post("stripe", Some(body.clone()))
        .await;
    assert_eq!(live_stripe.status, 201, "{}", live_stripe.raw);
    let live_id = live_stripe.body["data"]["id"].as_str().unwrap().to_string();
    let probe = h
        .as_key(&test)
        .idempotency_key("order-2")
        .post("stripe", Some(body))
        .await;
    assert_eq!(
        probe.header("idempotent-replayed"),
        None,
        "the test key got the live key's stored answer: {}",
        probe.raw
    );
    assert!(
        !probe.raw.contains(&live_id),
        "a live row shown to a test key: {}",
        probe.raw
    );

    // Each key still replays its own answers.
    let again = h.as_key(&live).idempotency_key("order-1").post("ups", None).await;
    assert_eq!((again.status, again.header("idempotent-replayed")), (201, Some("true")));
    assert_eq!(again.body["data"]["id"], live_ups.body["data"]["id"]);
    let again = h.as_key(&test).idempotency_key("order-1").post("shippo", None).await;
    assert_eq!((again.status, again.header("idempotent-replayed")), (201, Some("true")));
    assert_eq!(again.body["data"]["id"], sandbox.body["data"]["id"]);
}

// 8, fingerprint ------------------------------------------------------------------------

#[tokio::test]
async fn the_stored_fingerprint_of_a_credentials_put_is_no_plain_sha256_of_its_body() {
    let h = Harness::new().await;
    let (entity, key) = h.tenant(false).await;
    assert_eq!(h.as_key(&key).post("stripe", None).await.status, 201);
    let path = "/v1/integrations/stripe/credentials";
    let body = credentials("sk_live_CANARY4242");
    let put = h
        .as_key(&key)
        .idempotency_key("creds-1")
        .put_credentials("stripe", body.clone())
        .await;
    assert_eq!(put.status, 200, "{}", put.raw);

    let records = idempotency_records(&h, entity).await;
    assert_eq!(records.len(), 1, "{records:?}");
    let stored = records[0]["fingerprint"].as_s().unwrap();
    let sent = body.to_string();
    let sha256 = |bytes: &[u8]| hex::encode(Sha256::digest(bytes));
    assert_ne!(
        *stored,
        sha256(sent.as_bytes()),
        "the fingerprint is SHA-256 of the body"
    );
    assert_ne!(
        *stored,
        sha256(format!("PUT\n{path}?\n{sent}").as_bytes()),
        "the fingerprint is an unsalted SHA-256 of the request: anyone who can read the table can test guesses of the credentials against it"
    );
    for (name, value) in &records[0] {
        assert!(
            !format!("{value:?}").contains("CANARY4242"),
            "credential value stored in `{name}`"
        );
    }
    // Still the same request for idempotency: the retry replays.
    let retry = h
        .as_key(&key)
        .idempotency_key("creds-1")
        .put_credentials("stripe", body)
        .await;
    assert_eq!(retry.header("idempotent-replayed"), Some("true"));
}

// 11 ------------------------------------------------------------------------------------

#[tokio::test]
async fn connecting_again_right_after_a_permanent_delete_gets_a_fresh_readable_secret() {
    let h = Harness::new().await;
    let (entity, key) = h.tenant(false).await;
    // As on AWS: a force-deleted secret's name stays taken while it is being deleted.
    let proxy = FaultProxy::start(&support::emulator_endpoint()).await;
    proxy.emulate_async_secret_deletion();
    let aws = app_via(&h, &proxy.url);

    assert_eq!(h.as_key(&key).via(&aws).post("stripe", None).await.status, 201);
    let first = h
        .as_key(&key)
        .via(&aws)
        .put_credentials("stripe", credentials("sk_old"))
        .await;
    assert_eq!(first.status, 200, "{}", first.raw);
    let old_id = first.body["data"]["id"].as_str().unwrap().to_string();
    let (old_secret, _) = the_live_secret(&h, entity, "before the delete").await;

    let gone = h.as_key(&key).via(&aws).purge("stripe").await;
    assert_eq!(gone.status, 204, "{}", gone.raw);
    // The old name is still being deleted (the emulation is in force).
    let through_proxy = aws_sdk_secretsmanager::config::Builder::from(&support::admin_sdk().await)
        .endpoint_url(&proxy.url)
        .build();
    let refused = aws_sdk_secretsmanager::Client::from_conf(through_proxy)
        .create_secret()
        .name(&old_secret)
        .secret_string("{}")
        .send()
        .await;
    assert!(
        matches!(&refused, Err(e) if e.as_service_error().is_some_and(|s| s.is_invalid_request_exception())),
        "the old name is refused while AWS deletes it"
    );
    let again = h.as_key(&key).via(&aws).post("stripe", None).await;
    assert_eq!(again.status, 201, "{}", again.raw);
    assert_ne!(again.body["data"]["id"], old_id);
    let put = h
        .as_key(&key)
        .via(&aws)
        .put_credentials("stripe", credentials("sk_new"))
        .await;
    assert_eq!(
        put.status, 200,
        "new credentials right after a permanent delete: {}",
        put.raw
    );
    assert_eq!(put.body["data"]["credentials_masked"], json!(["secret_key"]));

    let (new_secret, value) = the_live_secret(&h, entity, "after the re-connect").await;
    assert_eq!(value["credentials"]["secret_key"], "sk_new");
    assert_ne!(new_secret, old_secret, "the new connector has its own secret");
    assert!(
        secret_json(&h, &old_secret).await.is_none(),
        "the old connector's secret is gone"
    );
    let old = h.as_key(&key).via(&aws).get(old_id).await;
    assert_eq!(old.status, 404);
}
