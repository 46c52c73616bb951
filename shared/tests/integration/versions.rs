//! Credential versions and rollback on the emulator: every status of the two routes, the
//! secret's `AWSCURRENT` value read back after a rollback, the event's `data.version`,
//! credentials stored before versions existed, idempotency, and the fewest Secrets
//! Manager calls of a credentials PUT (with its fallback when the secret is scheduled
//! although the row is active).

use crate::support;

use serde_json::{json, Value};
use shared::domain::api_key::Scope;
use support::faults::{Fault, FaultProxy};
use support::Harness;

/// Connects `t` and stores two versions: `sk_one` alone, then `sk_two` with a
/// publishable key and a webhook secret. Returns the two PUTs' `data.version`s.
async fn two_versions(h: &Harness, key: &str, t: &str) -> (String, String) {
    assert_eq!(h.as_key(key).post(t, None).await.status, 201);
    let first = h
        .as_key(key)
        .put_credentials(t, json!({"credentials": {"secret_key": "sk_one"}}))
        .await;
    assert_eq!(first.status, 200, "{}", first.raw);
    let second = h
        .as_key(key)
        .put_credentials(
            t,
            json!({"credentials": {"secret_key": "sk_two", "publishable_key": "pk_two"}, "webhook_secret": "whsec_two"}),
        )
        .await;
    assert_eq!(second.status, 200, "{}", second.raw);
    let events = h.events(3).await;
    let versions: Vec<String> = events
        .iter()
        .filter(|e| e["detail-type"] == "integration.credentials_updated")
        .map(|e| {
            e["detail"]["data"]["version"]
                .as_str()
                .expect("data.version")
                .to_string()
        })
        .collect();
    assert_eq!(versions.len(), 2, "{events:?}");
    (versions[0].clone(), versions[1].clone())
}

/// The entries of a versions list marked current.
fn current_versions(list: &Value) -> Vec<&Value> {
    list["data"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|v| v["current"] == true)
        .collect()
}

#[tokio::test]
async fn a_rollback_makes_the_older_version_current_in_the_secret_the_row_and_the_event() {
    let h = Harness::new().await;
    let (entity, key) = h.tenant(false).await;
    let (one, two) = two_versions(&h, &key, "stripe").await;
    assert_ne!(one, two);

    let listed = h.as_key(&key).versions("stripe").await;
    assert_eq!(listed.status, 200, "{}", listed.raw);
    assert_eq!(listed.body["object"], "list");
    assert_eq!(listed.body["has_more"], false);
    assert_eq!(listed.body["url"], "/v1/integrations/stripe/credentials/versions");
    let data = listed.body["data"].as_array().unwrap();
    let ids: Vec<&str> = data.iter().map(|v| v["version"].as_str().unwrap()).collect();
    assert_eq!(ids, [two.as_str(), one.as_str()], "newest first");
    assert_eq!(data[0]["credential_keys"], json!(["publishable_key", "secret_key"]));
    assert_eq!(
        (data[0]["has_webhook_secret"].clone(), data[0]["current"].clone()),
        (json!(true), json!(true))
    );
    assert_eq!(
        (data[1]["has_webhook_secret"].clone(), data[1]["current"].clone()),
        (json!(false), json!(false))
    );
    for secret in ["sk_one", "sk_two", "pk_two", "whsec_two"] {
        assert!(!listed.raw.contains(secret), "a value in the versions list");
    }

    let rolled = h.as_key(&key).roll_back("stripe", &one).await;
    assert_eq!(rolled.status, 200, "{}", rolled.raw);
    let row = &rolled.body["data"];
    assert_eq!(row["credentials_masked"], json!(["secret_key"]));
    assert_eq!(row["has_webhook_secret"], false);
    // Read from the emulator: AWSCURRENT now holds the older version's values.
    assert_eq!(
        h.secret_value(entity, "stripe").await.unwrap(),
        json!({"credentials": {"secret_key": "sk_one"}})
    );
    let events = h.events(1).await;
    assert_eq!(events.len(), 1, "{events:?}");
    assert_eq!(events[0]["detail-type"], "integration.credentials_updated");
    assert_eq!(events[0]["detail"]["data"]["version"], one.as_str());
    assert_eq!(
        events[0]["detail"]["data"]["object"]["credentials_masked"],
        json!(["secret_key"])
    );

    let listed = h.as_key(&key).versions("stripe").await;
    let current = current_versions(&listed.body);
    assert_eq!(current.len(), 1);
    assert_eq!(current[0]["version"], one.as_str());

    // The current version again: 200, nothing changes, no event.
    let again = h.as_key(&key).roll_back("stripe", &one).await;
    assert_eq!(again.status, 200);
    assert_eq!(again.body["data"]["updated_at"], row["updated_at"]);
    assert!(h.events(0).await.is_empty(), "no event for a no-op rollback");

    // Forward again, and a PUT after a rollback is current over it.
    assert_eq!(h.as_key(&key).roll_back("stripe", &two).await.status, 200);
    assert_eq!(
        h.secret_value(entity, "stripe").await.unwrap()["credentials"]["secret_key"],
        "sk_two"
    );
    let put = h
        .as_key(&key)
        .put_credentials("stripe", json!({"credentials": {"secret_key": "sk_three"}}))
        .await;
    assert_eq!(put.status, 200);
    assert_eq!(
        h.secret_value(entity, "stripe").await.unwrap()["credentials"]["secret_key"],
        "sk_three"
    );
    assert_eq!(
        h.as_key(&key).versions("stripe").await.body["data"]
            .as_array()
            .unwrap()
            .len(),
        3
    );
}

#[tokio::test]
async fn every_status_of_the_versions_and_rollback_routes() {
    let h = Harness::new().await;
    let (entity, key) = h.tenant(false).await;
    let (one, _) = two_versions(&h, &key, "stripe").await;
    let rollback = |body: Value| {
        h.as_key(&key)
            .send("POST", "/v1/integrations/stripe/credentials/rollback", Some(body))
    };
    for body in [
        json!({}),
        json!({"version": null}),
        json!({"version": 7}),
        json!({"version": ""}),
    ] {
        let r = rollback(body.clone()).await;
        assert_eq!((r.status, r.error_code()), (400, "validation_error".into()), "{body}");
        assert_eq!(r.body["param"], "version", "{body}");
    }
    let r = h
        .as_key(&key)
        .send("POST", "/v1/integrations/stripe/credentials/rollback", None)
        .await;
    assert_eq!((r.status, r.body["param"].clone()), (400, json!("version")), "no body");
    let r = rollback(json!({"version": one, "extra": 1})).await;
    assert_eq!(r.status, 400, "unknown field");
    let r = h.as_key(&key).roll_back("stripe", "no-such-version").await;
    assert_eq!((r.status, r.error_code()), (404, "not_found".into()));
    assert_eq!(r.body["param"], "version");
    let r = h.as_key(&key).roll_back("fedex", &one).await;
    assert_eq!(
        (r.status, r.body["param"].clone()),
        (404, Value::Null),
        "no such connector"
    );
    let r = h.as_key(&key).roll_back("nope", &one).await;
    assert_eq!(r.status, 400, "unknown connector type");
    assert_eq!(h.as_key(&key).versions("fedex").await.status, 404);

    // Scope: integrations:credentials on both routes.
    let reader = h.key(entity, &[Scope::Read, Scope::Write], false).await;
    for r in [
        h.as_key(&reader).versions("stripe").await,
        h.as_key(&reader).roll_back("stripe", &one).await,
    ] {
        assert_eq!(
            (r.status, r.body["required"].clone()),
            (403, json!("integrations:credentials"))
        );
    }
    // Another entity, and a live row asked for with a test key: 404.
    let (_, stranger) = h.tenant(false).await;
    assert_eq!(h.as_key(&stranger).versions("stripe").await.status, 404);
    assert_eq!(h.as_key(&stranger).roll_back("stripe", &one).await.status, 404);
    let live = h.key(entity, &Scope::ALL, true).await;
    assert_eq!(
        h.as_key(&live)
            .post("shippo", Some(json!({"mode": "live"})))
            .await
            .status,
        201
    );
    assert_eq!(h.as_key(&key).versions("shippo").await.status, 404);
    h.events(1).await;

    // Disconnected: the list still answers, a rollback is 409.
    assert_eq!(h.as_key(&key).delete("stripe").await.status, 200);
    h.events(1).await;
    let listed = h.as_key(&key).versions("stripe").await;
    assert_eq!((listed.status, listed.body["data"].as_array().unwrap().len()), (200, 2));
    let r = h.as_key(&key).roll_back("stripe", &one).await;
    assert_eq!((r.status, r.error_code()), (409, "connector_inactive".into()));
    // Wrong methods: 405 with Allow.
    let r = h
        .as_key(&key)
        .send("DELETE", "/v1/integrations/stripe/credentials/versions", None)
        .await;
    assert_eq!((r.status, r.header("allow")), (405, Some("GET")));
    let r = h
        .as_key(&key)
        .send("GET", "/v1/integrations/stripe/credentials/rollback", None)
        .await;
    assert_eq!((r.status, r.header("allow")), (405, Some("POST")));
    // A row without credentials has no version.
    assert_eq!(h.as_key(&key).post("ups", None).await.status, 201);
    let listed = h.as_key(&key).versions("ups").await;
    assert_eq!(listed.body["data"], json!([]));
}

#[tokio::test]
async fn credentials_stored_before_versions_show_as_one_version_and_can_be_rolled_back_to() {
    let h = Harness::new().await;
    let (entity, key) = h.tenant(false).await;
    assert_eq!(h.as_key(&key).post("openai", None).await.status, 201);
    let put = h
        .as_key(&key)
        .put_credentials("openai", json!({"credentials": {"api_key": "sk-before"}}))
        .await;
    assert_eq!(put.status, 200);
    // The row as it was stored before versions existed: no version recorded.
    let (pk, sk) = {
        let raw = h.raw_row(entity, "openai").await.unwrap();
        (raw["pk"].clone(), raw["sk"].clone())
    };
    h.dynamo
        .update_item()
        .table_name(&h.settings.table)
        .key("pk", pk)
        .key("sk", sk)
        .update_expression("REMOVE credential_versions, current_credential_version")
        .send()
        .await
        .unwrap();
    let listed = h.as_key(&key).versions("openai").await;
    assert_eq!(listed.status, 200);
    assert_eq!(
        listed.body["data"],
        json!([{"version": "initial", "created_at": put.body["data"]["created_at"], "credential_keys": ["api_key"], "has_webhook_secret": false, "current": true}])
    );
    assert_eq!(
        h.as_key(&key).roll_back("openai", "initial").await.status,
        200,
        "current: no-op"
    );

    let put = h
        .as_key(&key)
        .put_credentials("openai", json!({"credentials": {"api_key": "sk-after"}}))
        .await;
    assert_eq!(put.status, 200, "{}", put.raw);
    let data = h.as_key(&key).versions("openai").await.body["data"].clone();
    let ids: Vec<&str> = data
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v["version"].as_str().unwrap())
        .collect();
    assert_eq!((ids.len(), ids[1]), (2, "initial"), "{data}");
    assert_eq!(h.as_key(&key).roll_back("openai", "initial").await.status, 200);
    assert_eq!(
        h.secret_value(entity, "openai").await.unwrap()["credentials"]["api_key"],
        "sk-before"
    );
}

#[tokio::test]
async fn a_rollback_takes_an_idempotency_key() {
    let h = Harness::new().await;
    let (_, key) = h.tenant(false).await;
    let (one, two) = two_versions(&h, &key, "stripe").await;
    let send = |version: &str, idem: &str| {
        h.as_key(&key).idempotency_key(idem).send(
            "POST",
            "/v1/integrations/stripe/credentials/rollback",
            Some(json!({"version": version})),
        )
    };
    let first = send(&one, "rb-1").await;
    assert_eq!(first.status, 200);
    assert_eq!(h.events(1).await.len(), 1);
    // Another change in between: the replay still answers the first outcome, unexecuted.
    assert_eq!(h.as_key(&key).roll_back("stripe", &two).await.status, 200);
    h.events(1).await;
    let replay = send(&one, "rb-1").await;
    assert_eq!(
        (replay.status, replay.header("idempotent-replayed")),
        (200, Some("true"))
    );
    assert_eq!(replay.body, first.body);
    assert!(h.events(0).await.is_empty(), "a replay announces nothing");
    assert_eq!(
        h.as_key(&key).get("stripe").await.body["data"]["has_webhook_secret"],
        true,
        "not re-executed"
    );
    let mismatch = send(&two, "rb-1").await;
    assert_eq!(
        (mismatch.status, mismatch.error_code()),
        (409, "idempotency_key_mismatch".into())
    );
}

/// Issue-23 call budget: over an active row with a secret, a PUT makes no CreateSecret and
/// no RestoreSecret — the staged write and the move of AWSCURRENT. When Secrets Manager
/// says the secret is scheduled although the row is active (the emulator accepts such
/// writes, so the proxy answers as AWS does), it restores and writes again.
#[tokio::test]
async fn a_credentials_put_makes_only_the_secret_calls_the_row_says_it_needs() {
    let h = Harness::new().await;
    let (entity, key) = h.tenant(false).await;
    two_versions(&h, &key, "stripe").await;
    let proxy = FaultProxy::start(&support::emulator_endpoint()).await;
    let faulty = shared::App::from_clients(
        support::clients(&h.sdk, Some(&proxy.url), None),
        h.settings.clone(),
        h.clock.clone(),
    );
    let body = json!({"credentials": {"secret_key": "sk_three"}});
    proxy.record();
    let put = h.as_key(&key).via(&faulty).put_credentials("stripe", body).await;
    assert_eq!(put.status, 200, "{}", put.raw);
    let (calls, _) = proxy.calls();
    let secrets: Vec<&String> = calls.iter().filter(|c| c.starts_with("secretsmanager.")).collect();
    assert_eq!(
        secrets,
        [
            "secretsmanager.PutSecretValue",
            "secretsmanager.UpdateSecretVersionStage"
        ],
        "{calls:?}"
    );
    assert_eq!(
        h.secret_value(entity, "stripe").await.unwrap()["credentials"]["secret_key"],
        "sk_three"
    );

    proxy.arm_call("secretsmanager.PutSecretValue", 0, Fault::ScheduledSecret);
    let body = json!({"credentials": {"secret_key": "sk_four"}});
    let put = h.as_key(&key).via(&faulty).put_credentials("stripe", body).await;
    assert_eq!(put.status, 200, "{}", put.raw);
    let (calls, injected) = proxy.calls();
    assert_eq!(injected, 1);
    let secrets: Vec<&String> = calls.iter().filter(|c| c.starts_with("secretsmanager.")).collect();
    assert_eq!(
        secrets,
        [
            "secretsmanager.PutSecretValue",
            "secretsmanager.RestoreSecret",
            "secretsmanager.PutSecretValue",
            "secretsmanager.UpdateSecretVersionStage"
        ],
        "{calls:?}"
    );
    assert_eq!(
        h.secret_value(entity, "stripe").await.unwrap()["credentials"]["secret_key"],
        "sk_four"
    );
    h.events(2).await;
}

/// Rollbacks racing credentials PUTs on one connector: whichever commits last, the
/// secret's `AWSCURRENT` ends as the version the row records as current (its VersionId is
/// the version's id), and the versions list marks exactly that one current.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn rollbacks_racing_puts_leave_the_secret_at_the_version_the_row_records() {
    use std::sync::Arc;
    // DynamoDB's transaction isolation, which the emulator lacks (see `start_serializing`).
    let proxy = FaultProxy::start_serializing(&support::emulator_endpoint()).await;
    let clock = Arc::new(shared::ports::ManualClock::new(
        shared::domain::time::Timestamp::from_datetime(chrono::Utc::now()),
    ));
    let h = Harness::with_clock_and_endpoint(clock.clone(), clock, Some(&proxy.url)).await;
    let (entity, key) = h.tenant(false).await;
    let (one, two) = two_versions(&h, &key, "stripe").await;
    for round in 0..3 {
        let calls = (0..12).map(|i| {
            let caller = h.as_key(&key);
            let (one, two) = (one.clone(), two.clone());
            async move {
                match i % 3 {
                    0 => caller.roll_back("stripe", &one).await,
                    1 => caller.roll_back("stripe", &two).await,
                    _ => {
                        let body = json!({"credentials": {"secret_key": format!("sk_r{round}_{i}")}});
                        caller.put_credentials("stripe", body).await
                    }
                }
            }
        });
        for reply in futures::future::join_all(calls).await {
            assert!([200, 409, 503].contains(&reply.status), "{}", reply.raw);
        }
        h.clock.advance_seconds(shared::ports::OUTBOX_GRACE_SECONDS + 1);
        h.sweep().await;
        let listed = h.as_key(&key).versions("stripe").await;
        let current = current_versions(&listed.body);
        assert_eq!(current.len(), 1, "{}", listed.raw);
        let secret = h
            .secrets
            .get_secret_value()
            .secret_id(h.secret_name(entity, "stripe").await)
            .version_stage("AWSCURRENT")
            .send()
            .await
            .unwrap();
        assert_eq!(
            secret.version_id(),
            current[0]["version"].as_str(),
            "round {round}: the secret's current version is the one the row records"
        );
        let row = h.as_key(&key).get("stripe").await;
        assert_eq!(row.body["data"]["credentials_masked"], current[0]["credential_keys"]);
        h.events(0).await;
    }
}

/// Issue-23: the events of one request go out in one `PutEvents`. A credentials PUT on a
/// disconnected row restores it: `integration.restored` and
/// `integration.credentials_updated` come from one call, and both records are cleared.
#[tokio::test]
async fn a_request_with_two_events_publishes_them_in_one_call() {
    let h = Harness::new().await;
    let (_, key) = h.tenant(false).await;
    two_versions(&h, &key, "stripe").await;
    assert_eq!(h.as_key(&key).delete("stripe").await.status, 200);
    h.events(1).await;
    let proxy = FaultProxy::start(&support::emulator_endpoint()).await;
    let faulty = shared::App::from_clients(
        support::clients(&h.sdk, Some(&proxy.url), None),
        h.settings.clone(),
        h.clock.clone(),
    );
    proxy.record();
    let body = json!({"credentials": {"secret_key": "sk_three"}});
    let put = h.as_key(&key).via(&faulty).put_credentials("stripe", body).await;
    assert_eq!(put.status, 200, "{}", put.raw);
    let (calls, _) = proxy.calls();
    let publishes = calls.iter().filter(|c| c.ends_with("PutEvents")).count();
    assert_eq!(publishes, 1, "{calls:?}");
    let mut types: Vec<String> = h
        .events(2)
        .await
        .iter()
        .map(|e| e["detail-type"].as_str().unwrap_or_default().to_string())
        .collect();
    types.sort();
    assert_eq!(types, ["integration.credentials_updated", "integration.restored"]);
    assert!(h.outbox().await.is_empty(), "both records cleared");
}
