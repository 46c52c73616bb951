//! The core routes end to end: HTTP layer → service → DynamoDB, Secrets Manager and
//! EventBridge on the emulator, with state checked in each service directly.

use crate::support;

use futures::future::join_all;
use serde_json::{json, Value};
use shared::domain::api_key::Scope;
use shared::domain::view::ROW_FIELDS;
use support::{as_operator, Harness};

fn field_names(row: &Value) -> Vec<&str> {
    row.as_object()
        .expect("row object")
        .keys()
        .map(String::as_str)
        .collect()
}

#[tokio::test]
async fn connect_returns_201_with_exactly_the_design_fields() {
    let h = Harness::new().await;
    let (entity, key) = h.tenant(false).await;
    let r = h
        .as_key(&key)
        .post(
            "shippo",
            Some(json!({"display_name": "Shipping", "config": {"carrier": "usps"}, "ship_from_city": "Austin"})),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.raw);
    let row = &r.body["data"];
    assert_eq!(field_names(row), ROW_FIELDS, "exactly the row fields, in order");
    assert_eq!(row["entity_id"], entity.to_string());
    assert_eq!(row["connector_type"], "shippo");
    assert_eq!(row["display_name"], "Shipping");
    assert_eq!(row["mode"], "sandbox");
    assert_eq!(row["is_active"], true);
    assert_eq!(row["config"], json!({"carrier": "usps"}));
    assert_eq!(row["credentials_masked"], json!([]));
    assert_eq!(row["has_credentials_secret_arn"], false);
    assert_eq!(row["ship_from_city"], "Austin");
    assert_eq!(row["seller_id"], Value::Null);
    assert_eq!(row["created_at"], h.now().to_string());
    assert!(h.raw_row(entity, "shippo").await.is_some(), "row stored in DynamoDB");
    let events = h.events(1).await;
    assert_eq!(events.len(), 1);
    assert_eq!(events[0]["detail-type"], "integration.connected");
}

#[tokio::test]
async fn get_by_type_and_by_id_name_the_same_row() {
    let h = Harness::new().await;
    let (_, key) = h.tenant(true).await;
    let created = h.as_key(&key).post("avatax", None).await;
    assert_eq!(created.status, 201);
    assert_eq!(created.body["data"]["mode"], "live", "a live key's default mode");
    assert_eq!(
        created.body["data"]["display_name"], "Avalara AvaTax",
        "catalog default name"
    );
    let id = created.body["data"]["id"].as_str().unwrap();
    let by_type = h.as_key(&key).get("avatax").await;
    let by_id = h.as_key(&key).get(id).await;
    assert_eq!(by_type.status, 200);
    assert_eq!(by_type.body, created.body);
    assert_eq!(by_id.body, created.body);
    let missing = h.as_key(&key).get("ups").await;
    assert_eq!((missing.status, missing.error_code().as_str()), (404, "not_found"));
    let unknown_id = h.as_key(&key).get("3c90c3cc-0d44-4b50-8888-8dd25736052a").await;
    assert_eq!(unknown_id.status, 404);
}

#[tokio::test]
async fn connecting_twice_is_409_already_connected() {
    let h = Harness::new().await;
    let (_, key) = h.tenant(false).await;
    assert_eq!(h.as_key(&key).post("stripe", None).await.status, 201);
    let again = h.as_key(&key).post("stripe", Some(json!({"display_name": "x"}))).await;
    assert_eq!((again.status, again.error_code().as_str()), (409, "already_connected"));
    assert_eq!(again.body["type"], "conflict");
    let got = h.as_key(&key).get("stripe").await;
    assert_eq!(
        got.body["data"]["display_name"], "Stripe",
        "the failed connect changed nothing"
    );
}

#[tokio::test]
async fn secrets_and_entity_id_in_a_connect_body_are_422_and_nothing_is_stored() {
    let h = Harness::new().await;
    let (entity, key) = h.tenant(false).await;
    for field in shared::domain::edits::FORBIDDEN_FIELDS {
        let r = h
            .as_key(&key)
            .post("openai", Some(json!({ field: "CANARY-VALUE" })))
            .await;
        assert_eq!(
            (r.status, r.error_code().as_str()),
            (422, "validation_error"),
            "{field}"
        );
        assert_eq!(r.body["param"], field);
        assert!(!r.raw.contains("CANARY-VALUE"));
    }
    let hidden = h
        .as_key(&key)
        .post("openai", Some(json!({"config": {"auth": {"api_key": "sk-x"}}})))
        .await;
    assert_eq!(
        (hidden.status, hidden.body["param"].as_str()),
        (422, Some("config.auth.api_key"))
    );
    assert!(h.raw_row(entity, "openai").await.is_none(), "nothing stored");
    assert_eq!(h.as_key(&key).get("openai").await.status, 404);
}

#[tokio::test]
async fn unknown_types_and_bad_parameters_are_400_naming_the_valid_values() {
    let h = Harness::new().await;
    let (_, key) = h.tenant(false).await;
    let r = h.as_key(&key).post("paypal", None).await;
    assert_eq!((r.status, r.error_code().as_str()), (400, "validation_error"));
    assert!(
        r.body["hint"].as_str().unwrap().contains("stripe, avatax, shippo"),
        "{}",
        r.raw
    );
    let r = h.as_key(&key).get("paypal").await;
    assert_eq!(r.status, 400);
    let r = h.as_key(&key).post("ups", Some(json!({"mode": "production"}))).await;
    assert_eq!((r.status, r.body["param"].as_str()), (400, Some("mode")));
    let r = h.as_key(&key).post("ups", Some(json!({"colour": "brown"}))).await;
    assert_eq!((r.status, r.body["param"].as_str()), (400, Some("colour")));
}

#[tokio::test]
async fn credentials_are_write_only_stored_in_secrets_manager_with_tags() {
    let h = Harness::new().await;
    let (entity, key) = h.tenant(false).await;
    h.as_key(&key).post("stripe", None).await;
    let r = h
        .as_key(&key).put_credentials("stripe", json!({"credentials": {"secret_key": "sk_test_c1", "publishable_key": "pk_test_c1"}, "webhook_secret": "whsec_c1"}))
        .await;
    assert_eq!(r.status, 200, "{}", r.raw);
    let row = &r.body["data"];
    assert_eq!(row["credentials_masked"], json!(["publishable_key", "secret_key"]));
    assert_eq!(row["has_webhook_secret"], true);
    assert_eq!(row["has_credentials_secret_arn"], true);
    assert_eq!(field_names(row), ROW_FIELDS);
    assert!(!r.raw.contains("sk_test_c1") && !r.raw.contains("whsec_c1") && !r.raw.contains("arn:"));

    let stored = h.secret_value(entity, "stripe").await.expect("secret readable");
    assert_eq!(stored["credentials"]["secret_key"], "sk_test_c1");
    assert_eq!(stored["webhook_secret"], "whsec_c1");
    let described = h.describe_secret(entity, "stripe").await.unwrap();
    let tags: Vec<(String, String)> = described
        .tags()
        .iter()
        .map(|t| (t.key().unwrap().to_string(), t.value().unwrap().to_string()))
        .collect();
    assert!(tags.contains(&("entity_id".into(), entity.to_string())));
    assert!(tags.contains(&("connector_type".into(), "stripe".into())));

    // Replacing: new value, new key set, no webhook secret.
    let r = h
        .as_key(&key)
        .put_credentials("stripe", json!({"credentials": {"secret_key": "sk_test_c2"}}))
        .await;
    assert_eq!(r.status, 200);
    assert_eq!(r.body["data"]["credentials_masked"], json!(["secret_key"]));
    assert_eq!(r.body["data"]["has_webhook_secret"], false);
    assert_eq!(
        h.secret_value(entity, "stripe").await.unwrap()["credentials"]["secret_key"],
        "sk_test_c2"
    );
    let got = h.as_key(&key).get("stripe").await;
    assert_eq!(got.body["data"]["credentials_masked"], json!(["secret_key"]));
    let types: Vec<Value> = h.events(3).await.iter().map(|e| e["detail-type"].clone()).collect();
    assert_eq!(
        types,
        [
            "integration.connected",
            "integration.credentials_updated",
            "integration.credentials_updated"
        ]
    );
}

#[tokio::test]
async fn credentials_are_validated_against_the_catalog_and_need_a_connector() {
    let h = Harness::new().await;
    let (entity, key) = h.tenant(false).await;
    let none = h
        .as_key(&key)
        .put_credentials("plaid", json!({"credentials": {"client_id": "a", "secret": "b"}}))
        .await;
    assert_eq!(none.status, 404, "not connected yet");
    assert!(
        h.describe_secret(entity, "plaid").await.is_none(),
        "no secret for an unknown connector"
    );

    h.as_key(&key).post("plaid", None).await;
    for (body, param) in [
        (json!({"credentials": {"client_id": "a"}}), "credentials.secret"),
        (
            json!({"credentials": {"client_id": "a", "secret": "b", "password": "c"}}),
            "credentials.password",
        ),
        (
            json!({"credentials": {"client_id": "a", "secret": 7}}),
            "credentials.secret",
        ),
        (json!({"credentials": "nope"}), "credentials"),
        (json!({"webhook_secret": "w"}), "credentials"),
        (
            json!({"credentials": {"client_id": "a", "secret": "b"}, "entity_id": "x"}),
            "entity_id",
        ),
    ] {
        let r = h.as_key(&key).put_credentials("plaid", body.clone()).await;
        assert_eq!((r.status, r.error_code().as_str()), (422, "validation_error"), "{body}");
        assert_eq!(r.body["param"], param, "{body}");
    }
    let missing = h
        .as_key(&key)
        .put_credentials("plaid", json!({"credentials": {}}))
        .await;
    assert!(missing.body["hint"].as_str().unwrap().contains("client_id, secret"));
    assert!(
        h.describe_secret(entity, "plaid").await.is_none(),
        "nothing stored by refused bodies"
    );
    let unknown = h
        .as_key(&key)
        .put_credentials("plaid", json!({"credentials": {}, "extra": 1}))
        .await;
    assert_eq!(unknown.status, 400);
}

#[tokio::test]
async fn disconnect_keeps_credentials_seven_days_and_announces_it_once() {
    let h = Harness::new().await;
    let (entity, key) = h.tenant(false).await;
    h.as_key(&key).post("ups", None).await;
    h.as_key(&key)
        .put_credentials(
            "ups",
            json!({"credentials": {"client_id": "id", "client_secret": "cs"}}),
        )
        .await;
    h.events(2).await;
    h.clock.advance_seconds(60);
    let disconnected_at = h.now();

    let r = h.as_key(&key).delete("ups").await;
    assert_eq!(r.status, 200, "{}", r.raw);
    let row = &r.body["data"];
    assert_eq!(row["is_active"], false);
    assert_eq!(row["disconnected_at"], disconnected_at.to_string());
    assert_eq!(row["recoverable_until"], disconnected_at.plus_days(7).to_string());
    assert_eq!(
        row["credentials_masked"],
        json!(["client_id", "client_secret"]),
        "names kept for recovery"
    );

    // The TTL attribute lies a safety margin after the window: the sweeper expires the
    // row; TTL only cleans up if the sweeper is down for days.
    let item = h.raw_row(entity, "ups").await.unwrap();
    let ttl = item["ttl"].as_n().unwrap().parse::<i64>().unwrap();
    let margin = shared::aws::items::TTL_MARGIN_DAYS;
    assert_eq!(ttl, disconnected_at.plus_days(7 + margin).unix());

    // Secrets Manager: scheduled for deletion ~7 days out, unreadable now.
    let secret = h.describe_secret(entity, "ups").await.expect("kept for recovery");
    let deletion = secret.deleted_date().expect("scheduled for deletion").secs();
    let expected = chrono::Utc::now().timestamp() + 7 * 86_400;
    assert!((deletion - expected).abs() < 120, "deletion {deletion} vs ~{expected}");
    assert!(
        h.secret_value(entity, "ups").await.is_none(),
        "credentials unreadable while disconnected"
    );

    // The event, with the masked row.
    let events = h.events(1).await;
    assert_eq!(events.len(), 1, "{events:?}");
    let e = &events[0];
    assert_eq!(e["detail-type"], "integration.disconnected");
    assert_eq!(e["source"], support::SOURCE);
    let d = &e["detail"];
    assert!(d["id"].as_str().unwrap().starts_with("evt_"));
    assert_eq!(d["type"], "integration.disconnected");
    assert_eq!(d["entity_id"], entity.to_string());
    assert_eq!(d["livemode"], false);
    assert_eq!(d["api_version"], shared::domain::event::API_VERSION);
    assert_eq!(d["created_at"], disconnected_at.to_string());
    assert!(d["actor"]["key_id"].as_str().unwrap().starts_with("key_"));
    assert_eq!(d["data"]["object"], r.body["data"]);
    assert!(h.outbox().await.is_empty(), "published events leave no outbox record");

    // A repeat is a 200 no-op: same row, no second event.
    h.clock.advance_seconds(60);
    let again = h.as_key(&key).delete("ups").await;
    assert_eq!(again.status, 200);
    assert_eq!(again.body, r.body);
    assert!(h.events(0).await.is_empty(), "no second event");
}

#[tokio::test]
async fn disconnect_by_id_and_rows_without_credentials() {
    let h = Harness::new().await;
    let (entity, key) = h.tenant(false).await;
    let created = h.as_key(&key).post("postmark", None).await;
    let id = created.body["data"]["id"].as_str().unwrap();
    let r = h.as_key(&key).delete(id).await;
    assert_eq!(r.status, 200);
    assert_eq!(r.body["data"]["id"], id);
    assert_eq!(r.body["data"]["is_active"], false);
    assert!(h.describe_secret(entity, "postmark").await.is_none());
    let listed = h.as_key(&key).list("").await;
    assert_eq!(
        listed.body["data"][0]["id"], id,
        "disconnected rows inside their window are listed"
    );
}

#[tokio::test]
async fn a_row_past_its_window_is_gone_for_every_reader() {
    let h = Harness::new().await;
    let (entity, key) = h.tenant(false).await;
    let created = h.as_key(&key).post("fedex", None).await;
    let id = created.body["data"]["id"].as_str().unwrap().to_string();
    h.as_key(&key).delete("fedex").await;
    h.clock.advance_seconds(7 * 86_400 - 1);
    assert_eq!(h.as_key(&key).get("fedex").await.status, 200, "one second left");
    h.clock.advance_seconds(1);
    assert!(h.raw_row(entity, "fedex").await.is_some(), "still stored (TTL is lazy)");
    for connector in ["fedex", id.as_str()] {
        assert_eq!(h.as_key(&key).get(connector).await.status, 404);
        assert_eq!(h.as_key(&key).delete(connector).await.status, 404);
    }
    assert_eq!(h.as_key(&key).list("").await.body["data"], json!([]));
    // Connecting again makes a new row in its place.
    let again = h.as_key(&key).post("fedex", None).await;
    assert_eq!(again.status, 201, "{}", again.raw);
    assert_ne!(again.body["data"]["id"], id.as_str());
    assert_eq!(again.body["data"]["is_active"], true);
    assert!(
        !h.raw_row(entity, "fedex").await.unwrap().contains_key("ttl"),
        "TTL attribute gone"
    );
}

#[tokio::test]
async fn list_is_newest_first_with_cursors_and_filters() {
    let h = Harness::new().await;
    let (_, key) = h.tenant(true).await;
    let types = ["stripe", "avatax", "shippo", "printnode", "postmark"];
    let mut ids = Vec::new();
    for t in types {
        let mode = if t == "shippo" { "sandbox" } else { "live" };
        let r = h.as_key(&key).post(t, Some(json!({ "mode": mode }))).await;
        ids.push(r.body["data"]["id"].as_str().unwrap().to_string());
        h.clock.advance_seconds(1);
    }
    h.as_key(&key).delete("printnode").await;
    ids.reverse(); // newest first

    let all = h.as_key(&key).list("").await;
    assert_eq!(all.status, 200);
    let b = &all.body;
    assert_eq!(
        (b["object"].as_str(), b["url"].as_str(), b["has_more"].as_bool()),
        (Some("list"), Some("/v1/integrations"), Some(false))
    );
    let listed: Vec<&str> = b["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["id"].as_str().unwrap())
        .collect();
    assert_eq!(listed, ids);
    for row in b["data"].as_array().unwrap() {
        assert_eq!(field_names(row), ROW_FIELDS);
    }

    let page1 = h.as_key(&key).list("?limit=2").await;
    assert_eq!(page1.body["has_more"], true);
    let last = page1.body["data"][1]["id"].as_str().unwrap();
    assert_eq!(last, ids[1]);
    let page2 = h.as_key(&key).list(&format!("?limit=2&starting_after={last}")).await;
    let p2: Vec<&str> = page2.body["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["id"].as_str().unwrap())
        .collect();
    assert_eq!(p2, &ids[2..4]);
    assert_eq!(page2.body["has_more"], true);
    let page3 = h
        .as_key(&key)
        .list(&format!("?limit=2&starting_after={}", ids[3]))
        .await;
    assert_eq!(page3.body["data"].as_array().unwrap().len(), 1);
    assert_eq!(page3.body["has_more"], false);
    let back = h.as_key(&key).list(&format!("?limit=2&ending_before={}", ids[4])).await;
    let bk: Vec<&str> = back.body["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["id"].as_str().unwrap())
        .collect();
    assert_eq!(bk, &ids[2..4]);
    assert_eq!(back.body["has_more"], true);

    let inactive = h.as_key(&key).list("?is_active=false").await;
    assert_eq!(inactive.body["data"].as_array().unwrap().len(), 1);
    assert_eq!(inactive.body["data"][0]["connector_type"], "printnode");
    let sandbox = h.as_key(&key).list("?mode=sandbox").await;
    assert_eq!(sandbox.body["data"].as_array().unwrap().len(), 1);
    assert_eq!(sandbox.body["data"][0]["connector_type"], "shippo");

    for bad in [
        "limit=0",
        "limit=101",
        "is_active=maybe",
        "mode=prod",
        "starting_after=nope",
        "foo=bar",
        "limit=1&limit=2",
    ] {
        let r = h.as_key(&key).list(&format!("?{bad}")).await;
        assert_eq!((r.status, r.error_code().as_str()), (400, "validation_error"), "{bad}");
    }
    let stranger = "3c90c3cc-0d44-4b50-8888-8dd25736052a";
    let r = h.as_key(&key).list(&format!("?starting_after={stranger}")).await;
    assert_eq!((r.status, r.body["param"].as_str()), (400, Some("starting_after")));
}

#[tokio::test]
async fn authentication_failures_are_401_with_the_right_code() {
    let h = Harness::new().await;
    let (entity, _) = h.tenant(false).await;
    let r = h.anonymous().list("").await;
    assert_eq!((r.status, r.error_code().as_str()), (401, "missing_api_key"));
    assert_eq!(r.body["type"], "permission_error");
    for bad in [
        "nope",
        "ark_test_ent_abc",
        "ark_test_ent_abcdefghij12_0123456789abcdefghijABCDEFGHIJ01",
    ] {
        let r = h.as_key(bad).list("").await;
        assert_eq!((r.status, r.error_code().as_str()), (401, "invalid_api_key"), "{bad}");
    }
    let r = h
        .anonymous()
        .header("authorization", "Basic dXNlcjpwYXNz")
        .list("")
        .await;
    assert_eq!(r.error_code(), "invalid_api_key");

    // Revoked.
    let read_key = || async {
        as_operator(shared::admin::create_key(
            &h.app,
            entity,
            [Scope::Read].into(),
            false,
            None,
        ))
        .await
        .unwrap()
    };
    let issued = read_key().await;
    assert_eq!(h.as_key(&issued.plaintext).list("").await.status, 200);
    assert!(as_operator(shared::admin::revoke_key(&h.app, &issued.record.key_id))
        .await
        .unwrap());
    let r = h.as_key(&issued.plaintext).list("").await;
    assert_eq!((r.status, r.error_code().as_str()), (401, "invalid_api_key"));
    let listed = as_operator(h.app.service.keys.list(entity)).await.unwrap();
    assert!(listed
        .iter()
        .any(|k| k.key_id == issued.record.key_id && k.revoked_at.is_some()));

    // Revoked from another container (the admin CLI, say): this container may honour
    // its cached key for at most KEY_CACHE_SECONDS, then refuses it.
    let elsewhere = shared::App::new(&h.sdk, h.settings.clone(), h.clock.clone());
    let cached = read_key().await;
    let h = &h;
    let list = |key: String| async move { h.as_key(&key).list("").await };
    assert_eq!(list(cached.plaintext.clone()).await.status, 200);
    assert!(
        as_operator(shared::admin::revoke_key(&elsewhere, &cached.record.key_id))
            .await
            .unwrap()
    );
    assert_eq!(list(cached.plaintext.clone()).await.status, 200, "still cached here");
    h.clock.advance_seconds(shared::key_cache::KEY_CACHE_SECONDS - 1);
    assert_eq!(list(cached.plaintext.clone()).await.status, 200, "still cached here");
    h.clock.advance_seconds(1);
    let r = list(cached.plaintext.clone()).await;
    assert_eq!((r.status, r.error_code().as_str()), (401, "invalid_api_key"));

    // Expired (by the injected clock).
    let expiring = as_operator(shared::admin::create_key(
        &h.app,
        entity,
        [Scope::Read].into(),
        false,
        Some(1),
    ))
    .await
    .unwrap();
    assert_eq!(h.as_key(&expiring.plaintext).list("").await.status, 200);
    h.clock.advance_seconds(86_400);
    let r = h.as_key(&expiring.plaintext).list("").await;
    assert_eq!((r.status, r.error_code().as_str()), (401, "expired_api_key"));
}

#[tokio::test]
async fn each_route_needs_its_scope() {
    let h = Harness::new().await;
    let entity = shared::domain::ids::EntityId::new_random();
    let all = h.key(entity, &Scope::ALL, false).await;
    h.as_key(&all).post("stripe", None).await;
    let cases: [(&str, &str, Option<Value>, Scope); 8] = [
        ("GET", "/v1/integrations", None, Scope::Read),
        ("GET", "/v1/integrations/stripe", None, Scope::Read),
        ("POST", "/v1/integrations/ups", None, Scope::Write),
        (
            "PATCH",
            "/v1/integrations/stripe",
            Some(json!({"display_name": "S"})),
            Scope::Write,
        ),
        (
            "PUT",
            "/v1/integrations/stripe/credentials",
            Some(json!({"credentials": {"secret_key": "s"}})),
            Scope::Credentials,
        ),
        ("DELETE", "/v1/integrations/stripe", None, Scope::Write),
        ("POST", "/v1/integrations/stripe/restore", None, Scope::Write),
        ("DELETE", "/v1/integrations/stripe?permanent=true", None, Scope::Purge),
    ];

    for (method, path, body, needed) in cases {
        let others: Vec<Scope> = Scope::ALL.into_iter().filter(|s| *s != needed).collect();
        let key = h.key(entity, &others, false).await;
        let r = h.as_key(&key).send(method, path, body.clone()).await;
        assert_eq!(
            (r.status, r.error_code().as_str()),
            (403, "insufficient_scope"),
            "{method} {path}"
        );
        assert_eq!(r.body["required"], needed.as_str());
        let key = h.key(entity, &[needed], false).await;
        let ok = h.as_key(&key).send(method, path, body).await;
        assert!(ok.status < 300, "{method} {path} with {needed}: {}", ok.raw);
    }
}

#[tokio::test]
async fn another_entitys_rows_do_not_exist_for_you() {
    let h = Harness::new().await;
    let (owner, owner_key) = h.tenant(true).await;
    let (_, other_key) = h.tenant(true).await;
    let created = h.as_key(&owner_key).post("shopify", None).await;
    let id = created.body["data"]["id"].as_str().unwrap();
    for (method, path, body) in [
        ("GET", "/v1/integrations/shopify".to_string(), None),
        ("GET", format!("/v1/integrations/{id}"), None),
        ("DELETE", "/v1/integrations/shopify".to_string(), None),
        ("DELETE", format!("/v1/integrations/{id}"), None),
        (
            "PUT",
            "/v1/integrations/shopify/credentials".to_string(),
            Some(json!({"credentials": {"access_token": "t"}})),
        ),
    ] {
        let r = h.as_key(&other_key).send(method, &path, body).await;
        assert_eq!(
            (r.status, r.error_code().as_str()),
            (404, "not_found"),
            "{method} {path}"
        );
    }
    assert_eq!(h.as_key(&other_key).list("").await.body["data"], json!([]));
    let still = h.as_key(&owner_key).get("shopify").await;
    assert_eq!(still.body["data"]["is_active"], true, "untouched");
    assert!(h.describe_secret(owner, "shopify").await.is_none());
    // The other entity can have its own shopify row.
    assert_eq!(h.as_key(&other_key).post("shopify", None).await.status, 201);
}

#[tokio::test]
async fn test_keys_see_and_change_only_sandbox_rows() {
    let h = Harness::new().await;
    let entity = shared::domain::ids::EntityId::new_random();
    let live = h.key(entity, &Scope::ALL, true).await;
    let test = h.key(entity, &Scope::ALL, false).await;
    let row = h.as_key(&live).post("amazon", None).await;
    assert_eq!(row.body["data"]["mode"], "live");
    let id = row.body["data"]["id"].as_str().unwrap();
    assert_eq!(h.as_key(&test).get("amazon").await.status, 404);
    assert_eq!(h.as_key(&test).get(id).await.status, 404);
    assert_eq!(h.as_key(&test).delete("amazon").await.status, 404);
    assert_eq!(h.as_key(&test).list("").await.body["data"], json!([]));
    let r = h.as_key(&test).post("ebay", Some(json!({"mode": "live"}))).await;
    assert_eq!((r.status, r.body["param"].as_str()), (422, Some("mode")));
    // A sandbox row is visible to both.
    let sandbox = h.as_key(&test).post("ebay", None).await;
    assert_eq!(sandbox.body["data"]["mode"], "sandbox");
    // Re-connecting a disconnected sandbox row cannot turn it live with a test key.
    assert_eq!(h.as_key(&test).delete("ebay").await.status, 200);
    let r = h.as_key(&test).post("ebay", Some(json!({"mode": "live"}))).await;
    assert_eq!((r.status, r.body["param"].as_str()), (422, Some("mode")));
    let back = h.as_key(&test).post("ebay", None).await;
    assert_eq!(
        (back.status, back.body["data"]["mode"].as_str()),
        (200, Some("sandbox"))
    );
    assert_eq!(h.as_key(&live).get("ebay").await.status, 200);
    assert_eq!(h.as_key(&live).list("").await.body["data"].as_array().unwrap().len(), 2);
}

#[tokio::test]
async fn unknown_routes_wrong_methods_and_bad_bodies_get_the_envelope() {
    let h = Harness::new().await;
    let (_, key) = h.tenant(false).await;
    let r = h.as_key(&key).send("GET", "/v1/nothing", None).await;
    assert_eq!((r.status, r.error_code().as_str()), (404, "not_found"));
    let r = h.as_key(&key).send("POST", "/v1/integrations", None).await;
    assert_eq!((r.status, r.error_code().as_str()), (405, "method_not_allowed"));
    assert_eq!(r.header("allow"), Some("GET"));

    let big = json!({"config": {"blob": "x".repeat(70 * 1024)}});
    let r = h.as_key(&key).post("stripe", Some(big)).await;
    assert_eq!((r.status, r.error_code().as_str()), (413, "payload_too_large"));

    let form = lambda_http::http::Request::builder()
        .method("POST")
        .uri("https://api.test/v1/integrations/stripe")
        .header("authorization", format!("Bearer {key}"))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(lambda_http::Body::Text("display_name=x".into()))
        .unwrap();
    let r = h.send(form).await;
    assert_eq!((r.status, r.error_code().as_str()), (415, "unsupported_media_type"));

    for raw in ["{\"display_name\": ", "[1, 2", "\u{0}"] {
        let req = lambda_http::http::Request::builder()
            .method("POST")
            .uri("https://api.test/v1/integrations/stripe")
            .header("authorization", format!("Bearer {key}"))
            .header("content-type", "application/json")
            .body(lambda_http::Body::Text(raw.into()))
            .unwrap();
        let r = h.send(req).await;
        assert_eq!((r.status, r.body["param"].as_str()), (400, Some("body")), "{raw:?}");
    }
    let binary = lambda_http::http::Request::builder()
        .method("POST")
        .uri("https://api.test/v1/integrations/stripe")
        .header("authorization", format!("Bearer {key}"))
        .header("content-type", "application/json")
        .body(lambda_http::Body::Binary(vec![0xff, 0xfe, b'{']))
        .unwrap();
    assert_eq!(h.send(binary).await.status, 400, "invalid UTF-8");
    assert_eq!(h.as_key(&key).get("stripe").await.status, 404, "nothing stored");
}

#[tokio::test]
async fn concurrent_connects_create_one_row_and_concurrent_disconnects_one_event() {
    let h = Harness::isolated().await;
    let (_, key) = h.tenant(false).await;
    let calls = (0..6).map(|_| h.as_key(&key).post("mapquest", None));
    let statuses: Vec<u16> = join_all(calls).await.iter().map(|r| r.status).collect();
    assert_eq!(statuses.iter().filter(|s| **s == 201).count(), 1, "{statuses:?}");
    assert_eq!(statuses.iter().filter(|s| **s == 409).count(), 5, "{statuses:?}");
    assert_eq!(h.events(1).await.len(), 1);

    let calls = (0..6).map(|_| h.as_key(&key).delete("mapquest"));
    let replies = join_all(calls).await;
    for r in &replies {
        assert!(r.status == 200 || r.status == 409, "{}", r.raw);
    }
    assert!(replies.iter().any(|r| r.status == 200));
    let events = h.events(1).await;
    assert_eq!(events.len(), 1, "one disconnect, one event: {events:?}");
    assert_eq!(events[0]["detail-type"], "integration.disconnected");
}
