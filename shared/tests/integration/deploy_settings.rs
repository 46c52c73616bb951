//! Settings a deployment gives the functions, on the emulator: the idempotency fingerprint
//! key read from its secret (once per container, only when an `Idempotency-Key` write
//! needs it, a failed read answered with 503 and retried by the next request), and the
//! KMS key the connectors' secrets are created with.

use crate::support;

use serde_json::json;
use shared::config::{FingerprintKey, Settings};
use shared::App;
use support::faults::{Fault, FaultProxy};
use support::Harness;

/// A container whose every AWS call goes through `proxy` (which counts them).
fn container_via(h: &Harness, proxy: &FaultProxy, settings: Settings) -> App {
    App::from_clients(
        support::clients(&h.sdk, Some(&proxy.url), Some(&h.actions)),
        settings,
        h.clock.clone(),
    )
}

fn key_reads(proxy: &FaultProxy) -> usize {
    proxy
        .calls()
        .0
        .iter()
        .filter(|c| c.ends_with(".GetSecretValue"))
        .count()
}

#[tokio::test]
async fn the_fingerprint_key_is_read_once_per_container_and_only_for_an_idempotency_key_write() {
    let h = Harness::new().await;
    let (_, key) = h.tenant(false).await;
    let settings = h.settings_with_fingerprint_secret().await;
    let proxy = FaultProxy::start(&support::emulator_endpoint()).await;
    let app = container_via(&h, &proxy, settings);
    proxy.record();

    assert_eq!(h.as_key(&key).via(&app).post("stripe", None).await.status, 201);
    assert_eq!(h.as_key(&key).via(&app).get("stripe").await.status, 200);
    assert_eq!(h.as_key(&key).via(&app).list("").await.status, 200);
    assert_eq!(key_reads(&proxy), 0, "no Idempotency-Key, no key read");

    let first = h.as_key(&key).via(&app).idempotency_key("i1").post("ups", None).await;
    assert_eq!(first.status, 201);
    assert_eq!(key_reads(&proxy), 1);
    let replay = h.as_key(&key).via(&app).idempotency_key("i1").post("ups", None).await;
    assert_eq!(
        (replay.status, replay.header("idempotent-replayed")),
        (201, Some("true"))
    );
    let body = json!({"credentials": {"secret_key": "sk_1"}});
    let creds = h
        .as_key(&key)
        .via(&app)
        .idempotency_key("i2")
        .put_credentials("stripe", body)
        .await;
    assert_eq!(creds.status, 200);
    assert_eq!(key_reads(&proxy), 1, "kept for the container's life");

    // The replay matched: the fingerprint is the key's, not the default's. A container
    // with another key sees a different fingerprint for the same request.
    let other = h.container(Settings {
        fingerprint_key: FingerprintKey::Local("not-the-secret".into()),
        ..h.settings.clone()
    });
    let mismatch = h.as_key(&key).via(&other).idempotency_key("i1").post("ups", None).await;
    assert_eq!(mismatch.status, 409);
    assert_eq!(mismatch.error_code(), "idempotency_key_mismatch");
}

#[tokio::test]
async fn a_failed_key_read_is_a_503_and_the_next_request_reads_it_again() {
    let h = Harness::new().await;
    let (_, key) = h.tenant(false).await;
    let settings = h.settings_with_fingerprint_secret().await;
    let proxy = FaultProxy::start(&support::emulator_endpoint()).await;
    let app = container_via(&h, &proxy, settings);
    proxy.arm_operation("GetSecretValue", Fault::ServerError);

    let failed = h
        .as_key(&key)
        .via(&app)
        .idempotency_key("k1")
        .post("stripe", None)
        .await;
    assert_eq!(failed.status, 503, "{}", failed.raw);
    assert_eq!(failed.error_code(), "service_unavailable");
    assert_eq!(failed.header("retry-after"), Some("5"));
    assert!(h.as_key(&key).get("stripe").await.status == 404, "nothing was done");

    let retried = h
        .as_key(&key)
        .via(&app)
        .idempotency_key("k1")
        .post("stripe", None)
        .await;
    assert_eq!(retried.status, 201, "{}", retried.raw);
    assert_eq!(key_reads(&proxy), 2, "the failure was not kept");

    // No such secret (or no grant on it): a misconfiguration, still a 503 with the
    // envelope, never a 500 or the error's text.
    let missing = h.container(Settings {
        fingerprint_key: FingerprintKey::Secret("no-such-fingerprint-key".into()),
        ..h.settings.clone()
    });
    let refused = h
        .as_key(&key)
        .via(&missing)
        .idempotency_key("k2")
        .post("ups", None)
        .await;
    assert_eq!(refused.status, 503, "{}", refused.raw);
    assert_eq!(refused.error_code(), "service_unavailable");
    assert!(!refused.raw.contains("no-such-fingerprint-key") && !refused.raw.contains("ResourceNotFound"));
    // An unauthenticated caller gets 401 first, whatever the key read did.
    let anonymous = h
        .anonymous()
        .via(&missing)
        .idempotency_key("k3")
        .post("ups", None)
        .await;
    assert_eq!(anonymous.status, 401);
}

#[tokio::test]
async fn secrets_are_created_with_the_configured_kms_key_and_without_one_otherwise() {
    let h = Harness::new().await;
    let (entity, key) = h.tenant(false).await;
    let kms_key = "arn:aws:kms:us-east-1:123456789012:key/1234abcd-12ab-34cd-56ef-1234567890ab";
    let with_key = h.container(Settings {
        secrets_kms_key_id: Some(kms_key.into()),
        ..h.settings.clone()
    });
    for connector_type in ["stripe", "shippo"] {
        assert_eq!(h.as_key(&key).post(connector_type, None).await.status, 201);
    }
    let body = json!({"credentials": {"secret_key": "sk_1"}});
    let put = h
        .as_key(&key)
        .via(&with_key)
        .put_credentials("stripe", body.clone())
        .await;
    assert_eq!(put.status, 200, "{}", put.raw);
    let described = h.describe_secret(entity, "stripe").await.expect("created");
    assert_eq!(described.kms_key_id(), Some(kms_key));

    let shippo = json!({"credentials": {"api_token": "t"}});
    assert_eq!(h.as_key(&key).put_credentials("shippo", shippo).await.status, 200);
    let described = h.describe_secret(entity, "shippo").await.expect("created");
    assert_eq!(described.kms_key_id(), None, "no KmsKeyId sent: the default key");
}
