//! Hostile input end to end: oversized, malformed, ambiguous and deeply nested bodies,
//! junk in paths, fields, content types, `Authorization` and query strings. Every answer
//! must be the documented envelope (never a 5xx), and nothing may be stored.

use crate::support;

use lambda_http::{Body, Request};
use serde_json::{json, Value};
use shared::domain::api_key::Scope;
use shared::domain::ids::EntityId;
use shared::http::request::MAX_BODY_BYTES;
use support::{as_operator, Harness, Reply};

const STRIPE: &str = "/v1/integrations/stripe";

fn request(method: &str, path: &str, authorization: Option<&str>, content_type: Option<&str>, body: Body) -> Request {
    let mut builder = lambda_http::http::Request::builder()
        .method(method)
        .uri(format!("https://api.test{path}"));
    if let Some(a) = authorization {
        builder = builder.header("authorization", a);
    }
    if let Some(ct) = content_type {
        builder = builder.header("content-type", ct);
    }
    builder.body(body).unwrap()
}

/// `method path` with `Bearer key` and a JSON content type.
async fn send_json(h: &Harness, method: &str, path: &str, key: &str, body: impl Into<Body>) -> Reply {
    let authorization = format!("Bearer {key}");
    h.send(request(
        method,
        path,
        Some(&authorization),
        Some("application/json"),
        body.into(),
    ))
    .await
}

/// The status, the envelope (via `error_code`) and, if given, `param`.
fn assert_error(r: &Reply, status: u16, code: &str, param: Option<&str>, case: &str) {
    let shown: String = r.raw.chars().take(400).collect();
    assert_eq!(r.status, status, "{case}: {shown}");
    assert_eq!(r.error_code(), code, "{case}: {shown}");
    if let Some(p) = param {
        assert_eq!(r.body["param"].as_str(), Some(p), "{case}: {shown}");
    }
}

/// No reply of this harness was a 5xx.
fn assert_no_server_errors(h: &Harness) {
    for r in h.replies.lock().unwrap().iter() {
        assert!(r.status < 500, "a 5xx: {}", r.raw.chars().take(400).collect::<String>());
    }
}

/// The entity has no connector at all: not by GET, not in the list, not in the table,
/// and no event was announced.
async fn assert_nothing_stored(h: &Harness, entity: EntityId, key: &str) {
    let r = h.as_key(key).get("stripe").await;
    assert_eq!((r.status, r.error_code().as_str()), (404, "not_found"));
    let list = h.as_key(key).list("").await;
    assert_eq!(list.status, 200);
    assert_eq!(list.body["data"], json!([]), "nothing listed");
    assert!(h.raw_row(entity, "stripe").await.is_none(), "no row in DynamoDB");
    assert!(h.describe_secret(entity, "stripe").await.is_none(), "no secret");
    assert_eq!(h.events(0).await, Vec::<Value>::new(), "no event");
}

/// A connected stripe row (with credentials) for `key`, returned as GET shows it.
async fn connected_stripe(h: &Harness, key: &str) -> Value {
    let r = h
        .as_key(key)
        .post(
            "stripe",
            Some(json!({"display_name": "Payments", "config": {"statement_descriptor": "ACME"}})),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.raw);
    let r = h
        .as_key(key)
        .put_credentials("stripe", json!({"credentials": {"secret_key": "sk_test_original"}}))
        .await;
    assert_eq!(r.status, 200, "{}", r.raw);
    let r = h.as_key(key).get("stripe").await;
    assert_eq!(r.status, 200);
    r.body
}

async fn assert_unchanged(h: &Harness, key: &str, before: &Value, case: &str) {
    let r = h.as_key(key).get("stripe").await;
    assert_eq!(r.status, 200, "{case}");
    assert_eq!(&r.body, before, "{case}: the row is unchanged");
}

// ---------------------------------------------------------------------------------------
// Body size

#[tokio::test]
async fn bodies_over_64_kib_are_413_on_every_write_route() {
    let h = Harness::new().await;
    let (entity, key) = h.tenant(false).await;
    let one_mb_json = json!({"config": {"blob": "x".repeat(1 << 20)}}).to_string();
    let limit_plus_one = {
        let body = format!(r#"{{"config": {{"note": "{}"}}}}"#, "x".repeat(MAX_BODY_BYTES - 24 + 1));
        assert_eq!(body.len(), MAX_BODY_BYTES + 1);
        body
    };
    let cases: Vec<(&str, Option<&str>, Body)> = vec![
        ("1 MB of JSON", Some("application/json"), Body::Text(one_mb_json)),
        (
            "64 KiB + 1 of JSON",
            Some("application/json"),
            Body::Text(limit_plus_one),
        ),
        (
            "64 KiB + 1 of whitespace",
            Some("application/json"),
            Body::Text(" ".repeat(MAX_BODY_BYTES + 1)),
        ),
        (
            "1 MB of binary, no content type",
            None,
            Body::Binary(vec![0xff; 1 << 20]),
        ),
        ("1 MB, text/plain", Some("text/plain"), Body::Text("a".repeat(1 << 20))),
    ];
    let authorization = format!("Bearer {key}");
    for (method, path) in [
        ("POST", STRIPE.to_string()),
        ("PATCH", STRIPE.to_string()),
        ("PUT", format!("{STRIPE}/credentials")),
    ] {
        for (case, content_type, body) in &cases {
            let r = h
                .send(request(
                    method,
                    &path,
                    Some(&authorization),
                    *content_type,
                    body.clone(),
                ))
                .await;
            assert_error(&r, 413, "payload_too_large", None, &format!("{method} {path}: {case}"));
            assert_eq!(r.body["type"], "payload_too_large");
            assert!(r.raw.len() < 1024, "the body is not echoed");
        }
    }
    assert_nothing_stored(&h, entity, &key).await;
    assert_no_server_errors(&h);
}

#[tokio::test]
async fn a_body_of_exactly_64_kib_is_accepted() {
    let h = Harness::new().await;
    let (_, key) = h.tenant(false).await;
    let note = "x".repeat(MAX_BODY_BYTES - 24);
    let body = format!(r#"{{"config": {{"note": "{note}"}}}}"#);
    assert_eq!(body.len(), MAX_BODY_BYTES);
    let r = send_json(&h, "POST", STRIPE, &key, body).await;
    assert_eq!(r.status, 201, "{}", r.raw.chars().take(400).collect::<String>());
    let r = h.as_key(&key).get("stripe").await;
    assert_eq!(r.body["data"]["config"]["note"].as_str(), Some(note.as_str()));
    // And a PATCH at the limit.
    let note = "y".repeat(MAX_BODY_BYTES - 24);
    let r = send_json(
        &h,
        "PATCH",
        STRIPE,
        &key,
        format!(r#"{{"config": {{"note": "{note}"}}}}"#),
    )
    .await;
    assert_eq!(r.status, 200);
    assert_eq!(r.body["data"]["config"]["note"].as_str(), Some(note.as_str()));
    assert_no_server_errors(&h);
}

// ---------------------------------------------------------------------------------------
// Malformed bodies

#[tokio::test]
async fn bodies_that_are_not_valid_utf8_json_are_400_and_store_nothing() {
    let h = Harness::new().await;
    let (entity, key) = h.tenant(false).await;
    let cases: Vec<(&str, Vec<u8>)> = vec![
        (
            "invalid UTF-8 in a string",
            b"{\"display_name\": \"a\xff\xfeb\"}".to_vec(),
        ),
        ("invalid UTF-8 in a key", b"{\"display_\xc3\x28name\": \"a\"}".to_vec()),
        ("overlong UTF-8 encoding", b"{\"display_name\": \"\xc0\xaf\"}".to_vec()),
        (
            "UTF-8 encoded surrogate",
            b"{\"display_name\": \"\xed\xa0\x80\"}".to_vec(),
        ),
        ("lone high surrogate escape", br#"{"display_name": "\ud800"}"#.to_vec()),
        ("lone low surrogate escape", br#"{"display_name": "\udc00"}"#.to_vec()),
        (
            "reversed surrogate pair",
            br#"{"display_name": "\udc00\ud800"}"#.to_vec(),
        ),
        (
            "lone surrogate in a config key",
            br#"{"config": {"\ud83d": 1}}"#.to_vec(),
        ),
        ("raw NUL inside a string", b"{\"display_name\": \"a\x00b\"}".to_vec()),
        ("raw NUL between tokens", b"{\"display_name\":\x00\"a\"}".to_vec()),
        ("NUL after the document", b"{}\x00".to_vec()),
        ("only NUL bytes", vec![0; 64]),
        (
            "UTF-16LE",
            "{\"display_name\": \"a\"}"
                .encode_utf16()
                .flat_map(u16::to_le_bytes)
                .collect(),
        ),
        ("UTF-8 byte order mark", b"\xef\xbb\xbf{}".to_vec()),
        ("two documents", b"{}{}".to_vec()),
        ("trailing comma", br#"{"display_name": "a",}"#.to_vec()),
        ("single quotes", br#"{'display_name': 'a'}"#.to_vec()),
        ("NaN", br#"{"config": {"n": NaN}}"#.to_vec()),
        ("number out of range", br#"{"config": {"n": 1e400}}"#.to_vec()),
        ("unterminated", br#"{"display_name": "a"#.to_vec()),
    ];
    for (method, path) in [("POST", STRIPE.to_string()), ("PUT", format!("{STRIPE}/credentials"))] {
        for (case, bytes) in &cases {
            let r = send_json(&h, method, &path, &key, Body::Binary(bytes.clone())).await;
            let case = format!("{method} {path}: {case}");
            assert_error(&r, 400, "validation_error", Some("body"), &case);
            assert_eq!(r.body["hint"], "The request body is not valid JSON.", "{case}");
        }
    }
    assert_nothing_stored(&h, entity, &key).await;
    assert_no_server_errors(&h);
}

#[tokio::test]
async fn duplicated_json_keys_are_400_naming_the_key_never_the_value() {
    let h = Harness::new().await;
    let (entity, key) = h.tenant(false).await;
    // (route, body, the key the hint names)
    let cases: [(&str, &str, &str); 8] = [
        ("POST", r#"{"display_name": "a", "display_name": "b"}"#, "display_name"),
        ("POST", r#"{"mode": "sandbox", "mode": "live"}"#, "mode"),
        ("POST", r#"{"config": {"region": "us", "region": "eu"}}"#, "region"),
        (
            "POST",
            r#"{"config": {"a": {"b": [{"c": 1, "c": 2}]}}, "display_name": "x"}"#,
            "c",
        ),
        // A key holding a secret is named without it.
        (
            "POST",
            r#"{"config": {"sk_live_51HxVALUE0KEY": 1, "sk_live_51HxVALUE0KEY": 2}}"#,
            "[redacted]",
        ),
        // An escaped spelling is the same key.
        (
            "POST",
            r#"{"display_name": "a", "display_nam\u0065": "b"}"#,
            "display_name",
        ),
        (
            "PUT",
            r#"{"credentials": {"secret_key": "sk_test_VALUE_ONE", "secret_key": "sk_test_VALUE_TWO"}}"#,
            "secret_key",
        ),
        (
            "PUT",
            r#"{"credentials": {"secret_key": "sk_test_VALUE_ONE"}, "credentials": {"secret_key": "sk_test_VALUE_TWO"}}"#,
            "credentials",
        ),
    ];
    for (method, body, duplicate) in cases {
        let path = if method == "PUT" {
            format!("{STRIPE}/credentials")
        } else {
            STRIPE.to_string()
        };
        let r = send_json(&h, method, &path, &key, body.to_string()).await;
        assert_error(&r, 400, "validation_error", Some("body"), body);
        let hint = r.body["hint"].as_str().unwrap();
        assert!(hint.contains(&format!("duplicate key `{duplicate}`")), "{body}: {hint}");
        assert!(!r.raw.contains("VALUE_"), "a value is never echoed: {}", r.raw);
    }
    assert_nothing_stored(&h, entity, &key).await;

    // On an existing row: a PATCH or PUT with a duplicate changes nothing.
    let before = connected_stripe(&h, &key).await;
    for (method, path, body) in [
        (
            "PATCH",
            STRIPE.to_string(),
            r#"{"display_name": "new", "display_name": "newer"}"#,
        ),
        (
            "PATCH",
            STRIPE.to_string(),
            r#"{"is_active": true, "is_active": false}"#,
        ),
        (
            "PUT",
            format!("{STRIPE}/credentials"),
            r#"{"credentials": {"secret_key": "sk_test_VALUE_ONE"}, "webhook_secret": "w", "webhook_secret": "x"}"#,
        ),
    ] {
        let r = send_json(&h, method, &path, &key, body.to_string()).await;
        assert_error(&r, 400, "validation_error", Some("body"), body);
        assert_unchanged(&h, &key, &before, body).await;
    }
    assert_eq!(
        h.secret_value(entity, "stripe").await,
        Some(json!({"credentials": {"secret_key": "sk_test_original"}})),
        "the secret is unchanged"
    );
    assert_no_server_errors(&h);
}

#[tokio::test]
async fn deep_nesting_is_400_without_a_crash() {
    let h = Harness::new().await;
    let (entity, key) = h.tenant(false).await;
    let nested = |levels: usize| format!("{}1{}", r#"{"a":"#.repeat(levels), "}".repeat(levels));
    // Depth counts the top-level object: `{"config": X}` puts X at level 2.
    let cases: Vec<(&str, String, u16, &str)> = vec![
        ("33 levels", nested(33), 400, "validation_error"),
        (
            "33 levels through config",
            format!(r#"{{"config": {}}}"#, nested(32)),
            400,
            "validation_error",
        ),
        (
            "10,000 levels of arrays",
            format!("{}{}", "[".repeat(10_000), "]".repeat(10_000)),
            400,
            "validation_error",
        ),
        (
            "10,000 levels in config",
            format!(r#"{{"config": {}}}"#, nested(10_000)),
            400,
            "validation_error",
        ),
        ("65,536 unclosed [", "[".repeat(MAX_BODY_BYTES), 400, "validation_error"),
        // Larger than the body limit: refused before it is read.
        ("100,000 unclosed [", "[".repeat(100_000), 413, "payload_too_large"),
    ];
    for (method, path) in [
        ("POST", STRIPE.to_string()),
        ("PATCH", STRIPE.to_string()),
        ("PUT", format!("{STRIPE}/credentials")),
    ] {
        for (case, body, status, code) in &cases {
            let r = send_json(&h, method, &path, &key, body.clone()).await;
            let case = format!("{method} {path}: {case}");
            let param = (*status == 400).then_some("body");
            assert_error(&r, *status, code, param, &case);
            if *status == 400 {
                assert!(
                    r.body["hint"].as_str().unwrap().contains("more than 32 levels"),
                    "{case}: {}",
                    r.raw
                );
            }
        }
    }
    assert_nothing_stored(&h, entity, &key).await;

    // 32 levels are fine, and come back as sent.
    let config = format!(r#"{{"config": {}}}"#, nested(31));
    let r = send_json(&h, "POST", STRIPE, &key, config.clone()).await;
    assert_eq!(r.status, 201, "{}", r.raw);
    let sent: Value = serde_json::from_str(&config).unwrap();
    assert_eq!(r.body["data"]["config"], sent["config"]);
    let r = h.as_key(&key).get("stripe").await;
    assert_eq!(r.body["data"]["config"], sent["config"]);
    assert_no_server_errors(&h);
}

// ---------------------------------------------------------------------------------------
// Paths and fields

#[tokio::test]
async fn hostile_path_segments_are_400_or_404_never_5xx() {
    let h = Harness::new().await;
    let (entity, key) = h.tenant(false).await;
    let long = "a".repeat(10_000);
    let segments: Vec<(&str, &str)> = vec![
        ("NUL inside a type", "str%00ipe"),
        ("NUL after a type", "stripe%00"),
        ("percent-encoded emoji", "%F0%9F%92%A5"),
        ("encoded slash traversal", "..%2F"),
        ("encoded traversal to another type", "..%2F..%2Fintegrations%2Fups"),
        ("encoded dots", "%2e%2e"),
        ("invalid percent escape", "%ZZ"),
        ("invalid UTF-8 escape", "%FF%FE"),
        ("encoded space", "stripe%20"),
        ("upper case type", "STRIPE"),
        ("right-to-left override", "%E2%80%AEepirts"),
        ("UUID with NUL", "3c90c3cc-0d44-4b50-8888-8dd25736052a%00"),
        ("10,000 characters", long.as_str()),
    ];
    let routes = [
        ("GET", ""),
        ("POST", ""),
        ("PATCH", ""),
        ("DELETE", ""),
        ("DELETE", "?permanent=true"),
        ("PUT", "/credentials"),
        ("POST", "/restore"),
    ];
    for (case, segment) in &segments {
        for (method, suffix) in routes {
            let path = format!("/v1/integrations/{segment}{suffix}");
            let body = (method == "PUT").then(|| json!({"credentials": {"secret_key": "sk_test_x"}}));
            let r = h.as_key(&key).send(method, &path, body).await;
            let label = format!("{method} …/{case}{suffix}");
            assert!(r.status == 400 || r.status == 404, "{label}: {} {}", r.status, r.raw);
            let code = r.error_code();
            if r.status == 400 {
                assert_eq!(
                    (code.as_str(), r.body["param"].as_str()),
                    ("validation_error", Some("connector_type")),
                    "{label}"
                );
            }
            assert!(r.raw.len() < 1024, "{label}: the segment is not echoed");
        }
    }
    // Raw traversal is not resolved: these paths match no route.
    for path in [
        "/v1/integrations/../integrations",
        "/v1/integrations/stripe/../ups",
        "/v1/integrations/./stripe",
        "/v1/integrations//stripe",
        "/v1/integrations/stripe/credentials/extra",
    ] {
        let r = h.as_key(&key).send("GET", path, None).await;
        assert_error(&r, 404, "not_found", None, path);
    }
    assert_nothing_stored(&h, entity, &key).await;
    assert_no_server_errors(&h);
}

#[tokio::test]
async fn control_characters_in_text_fields_are_400_and_other_unicode_is_kept() {
    let h = Harness::new().await;
    let (_, key) = h.tenant(false).await;
    let before = connected_stripe(&h, &key).await;
    let max_emoji = "💥".repeat(256);
    let too_many_emoji = "💥".repeat(257);
    // (field, value, accepted)
    let cases: Vec<(&str, &str, bool)> = vec![
        ("display_name", "\u{0}", false),
        ("display_name", "Pay\u{0}ments", false),
        ("display_name", "Pay\nments", false),
        ("display_name", "Pay\tments", false),
        ("display_name", "\u{1b}[31mred", false),
        ("display_name", "del\u{7f}", false),
        ("display_name", "next line\u{85}", false),
        ("display_name", too_many_emoji.as_str(), false),
        ("display_name", "   ", false),
        ("ship_from_city", "Aus\u{0}tin", false),
        ("seller_id", "id\r\n", false),
        // Not control characters: kept as sent.
        ("display_name", "💥 Payments", true),
        ("display_name", "👩‍👩‍👧 family (ZWJ sequence)", true),
        ("display_name", max_emoji.as_str(), true),
        ("display_name", "Zahlungen – Größe ß 支付 دفع", true),
        // U+202E (right-to-left override) is a format character, not a control one.
        ("display_name", "\u{202e}stnemyaP", true),
        ("ship_from_city", "São Paulo 🏙", true),
    ];
    let mut current = before;
    for (field, value, accepted) in cases {
        let r = h.as_key(&key).patch("stripe", json!({ field: value })).await;
        let case = format!("{field} = {value:?}");
        if accepted {
            assert_eq!(r.status, 200, "{case}: {}", r.raw);
            assert_eq!(r.body["data"][field].as_str(), Some(value), "{case}");
            current = h.as_key(&key).get("stripe").await.body;
            assert_eq!(current["data"][field].as_str(), Some(value), "{case}: stored as sent");
        } else {
            assert_error(&r, 400, "validation_error", Some(field), &case);
            assert!(!r.raw.contains(value), "{case}: the value is not echoed");
            assert_unchanged(&h, &key, &current, &case).await;
        }
    }
    // The same rules on connect.
    let r = h
        .as_key(&key)
        .post("ups", Some(json!({"display_name": "U\u{0}PS"})))
        .await;
    assert_error(&r, 400, "validation_error", Some("display_name"), "connect with NUL");
    assert_eq!(h.as_key(&key).get("ups").await.status, 404);
    let r = h
        .as_key(&key)
        .post("ups", Some(json!({"display_name": "📦 UPS"})))
        .await;
    assert_eq!(
        (r.status, r.body["data"]["display_name"].as_str()),
        (201, Some("📦 UPS"))
    );
    assert_no_server_errors(&h);
}

#[tokio::test]
async fn wrong_content_types_are_415_and_json_variants_are_accepted() {
    let h = Harness::new().await;
    let (entity, key) = h.tenant(false).await;
    let authorization = format!("Bearer {key}");
    let body = r#"{"display_name": "Payments"}"#;
    for content_type in [
        Some("text/plain"),
        Some("text/json"),
        Some("multipart/form-data; boundary=----x"),
        Some("application/x-www-form-urlencoded"),
        Some("application/jsonp"),
        Some("application/jsonx"),
        Some("application/json-seq"),
        Some("application/xml"),
        Some("application/octet-stream"),
        Some(""),
        Some("json"),
        None,
    ] {
        for (method, path) in [
            ("POST", STRIPE.to_string()),
            ("PATCH", STRIPE.to_string()),
            ("PUT", format!("{STRIPE}/credentials")),
        ] {
            let r = h
                .send(request(
                    method,
                    &path,
                    Some(&authorization),
                    content_type,
                    Body::Text(body.into()),
                ))
                .await;
            let case = format!("{method} {path} with {content_type:?}");
            assert_error(&r, 415, "unsupported_media_type", None, &case);
            assert_eq!(r.body["type"], "unsupported_media_type", "{case}");
        }
    }
    assert_nothing_stored(&h, entity, &key).await;

    // JSON, spelled any documented way, is read.
    let accepted = [
        ("stripe", "application/json; charset=utf-8"),
        ("ups", "APPLICATION/JSON"),
        ("shippo", "application/json;charset=UTF-8"),
        ("avatax", "application/merge-patch+json"),
    ];
    for (connector_type, content_type) in accepted {
        let r = h
            .send(request(
                "POST",
                &format!("/v1/integrations/{connector_type}"),
                Some(&authorization),
                Some(content_type),
                Body::Text(body.into()),
            ))
            .await;
        assert_eq!(
            (r.status, r.body["data"]["display_name"].as_str()),
            (201, Some("Payments")),
            "{content_type}"
        );
    }
    // No body needs no content type.
    let r = h
        .send(request(
            "POST",
            "/v1/integrations/fedex",
            Some(&authorization),
            None,
            Body::Empty,
        ))
        .await;
    assert_eq!(r.status, 201);
    assert_no_server_errors(&h);
}

// ---------------------------------------------------------------------------------------
// Authorization

/// A random alphanumeric string of `len` characters.
fn alphanumeric(len: usize) -> String {
    uuid::Uuid::new_v4()
        .simple()
        .to_string()
        .repeat(len.div_ceil(32))
        .chars()
        .take(len)
        .collect()
}

#[tokio::test]
async fn junk_authorization_headers_are_401_and_store_nothing() {
    let h = Harness::new().await;
    let (entity, key) = h.tenant(false).await;
    // `ark_test_ent_<code>_<random>`: the real code, a different random part.
    let (prefix_and_code, random) = key.rsplit_once('_').unwrap();
    let mut other_random = alphanumeric(random.len());
    if other_random == random {
        other_random = other_random.to_uppercase();
    }
    let wrong_secret = format!("{prefix_and_code}_{other_random}");
    let other_mode = key.replacen("ark_test_", "ark_live_", 1);
    let ten_kb = "A".repeat(10 * 1024);
    let ten_kb_key_shaped = format!("{prefix_and_code}_{}", alphanumeric(10 * 1024));
    let cases: Vec<(&str, String, &str)> = vec![
        ("`Bearer` alone", "Bearer".into(), "invalid_api_key"),
        ("`Bearer` and two spaces", "Bearer  ".into(), "invalid_api_key"),
        ("two spaces", "  ".into(), "missing_api_key"),
        ("Basic", "Basic dXNlcjpwYXNz".into(), "invalid_api_key"),
        ("Basic with the key", format!("Basic {key}"), "invalid_api_key"),
        ("the key without a scheme", key.clone(), "invalid_api_key"),
        ("tab instead of space", format!("Bearer\t{key}"), "invalid_api_key"),
        ("two keys", format!("Bearer {key} {key}"), "invalid_api_key"),
        ("key and junk", format!("Bearer {key}, Basic x"), "invalid_api_key"),
        ("key plus one character", format!("Bearer {key}x"), "invalid_api_key"),
        (
            "key minus one character",
            format!("Bearer {}", &key[..key.len() - 1]),
            "invalid_api_key",
        ),
        (
            "real code, wrong secret part",
            format!("Bearer {wrong_secret}"),
            "invalid_api_key",
        ),
        (
            "live prefix on a test key",
            format!("Bearer {other_mode}"),
            "invalid_api_key",
        ),
        (
            "upper-cased key",
            format!("Bearer {}", key.to_uppercase()),
            "invalid_api_key",
        ),
        ("10 KB token", format!("Bearer {ten_kb}"), "invalid_api_key"),
        (
            "10 KB key-shaped token",
            format!("Bearer {ten_kb_key_shaped}"),
            "invalid_api_key",
        ),
        ("10 KB header without scheme", ten_kb.clone(), "invalid_api_key"),
    ];
    let body = r#"{"display_name": "Payments"}"#;
    for (case, authorization, code) in &cases {
        let r = h
            .send(request(
                "POST",
                STRIPE,
                Some(authorization),
                Some("application/json"),
                Body::Text(body.into()),
            ))
            .await;
        assert_error(&r, 401, code, None, case);
        assert_eq!(r.body["type"], "permission_error", "{case}");
        assert!(!r.raw.contains(&key[13..]), "{case}: no key material echoed");
        assert!(r.raw.len() < 1024, "{case}: the header is not echoed");
    }
    // A header that is not valid UTF-8 cannot be read at all: treated as absent.
    let mut req = request("POST", STRIPE, None, Some("application/json"), Body::Text(body.into()));
    req.headers_mut().insert(
        "authorization",
        lambda_http::http::HeaderValue::from_bytes(format!("Bearer {key}\u{e9}").as_bytes()).unwrap(),
    );
    let r = h.send(req).await;
    assert_error(&r, 401, "missing_api_key", None, "non-UTF-8 header");

    // Revoked and expired keys of the same entity.
    let revoked = as_operator(shared::admin::create_key(
        &h.app,
        entity,
        Scope::ALL.into(),
        false,
        None,
    ))
    .await
    .unwrap();
    assert!(as_operator(shared::admin::revoke_key(&h.app, &revoked.record.key_id))
        .await
        .unwrap());
    let expiring = as_operator(shared::admin::create_key(
        &h.app,
        entity,
        Scope::ALL.into(),
        false,
        Some(1),
    ))
    .await
    .unwrap();
    let r = h.as_key(&expiring.plaintext).list("").await;
    assert_eq!(r.status, 200, "valid before it expires");
    h.clock.advance_seconds(86_400);
    for (case, k, code) in [
        ("revoked", &revoked.plaintext, "invalid_api_key"),
        ("expired", &expiring.plaintext, "expired_api_key"),
    ] {
        for (method, path, body) in [
            ("GET", "/v1/integrations".to_string(), None),
            ("POST", STRIPE.to_string(), Some(json!({"display_name": "x"}))),
            (
                "PUT",
                format!("{STRIPE}/credentials"),
                Some(json!({"credentials": {"secret_key": "sk_test_x"}})),
            ),
        ] {
            let r = h.as_key(k).send(method, &path, body).await;
            assert_error(&r, 401, code, None, &format!("{case}: {method} {path}"));
        }
    }
    // The tenant's own key still works, and saw nothing.
    assert_nothing_stored(&h, entity, &key).await;
    assert_no_server_errors(&h);
}

#[tokio::test]
async fn a_tolerated_authorization_spelling_still_authenticates() {
    // Not junk: the scheme is case-insensitive and surrounding blanks are trimmed.
    let h = Harness::new().await;
    let (_, key) = h.tenant(false).await;
    for authorization in [
        format!("bearer {key}"),
        format!("BEARER {key}"),
        format!("Bearer  {key}"),
        format!("  Bearer {key}  "),
    ] {
        let r = h
            .send(request(
                "GET",
                "/v1/integrations",
                Some(&authorization),
                None,
                Body::Empty,
            ))
            .await;
        assert_eq!(r.status, 200, "{authorization:?}: {}", r.raw);
    }
}

// ---------------------------------------------------------------------------------------
// Query strings

#[tokio::test]
async fn junk_query_strings_are_400_and_change_nothing() {
    let h = Harness::new().await;
    let (_, key) = h.tenant(false).await;
    let before = connected_stripe(&h, &key).await;
    let repeated_limit = vec!["limit=1"; 200].join("&");
    let many_unknown = (0..200).map(|i| format!("p{i}=1")).collect::<Vec<_>>().join("&");
    let long_name = format!("{}=1", "n".repeat(10_000));
    // (query, param, or None when which one is named depends on the order of a map)
    let cases: Vec<(&str, Option<&str>)> = vec![
        ("limit=1e3", Some("limit")),
        ("limit=-1", Some("limit")),
        ("limit=%00", Some("limit")),
        ("limit=", Some("limit")),
        ("limit", Some("limit")),
        ("limit=1.0", Some("limit")),
        ("limit=0x10", Some("limit")),
        ("limit=+5", Some("limit")),
        ("limit=%2B5", Some("limit")),
        ("limit=%F0%9F%92%A5", Some("limit")),
        ("limit=%FF", Some("limit")),
        ("limit=99999999999999999999999", Some("limit")),
        ("limit=5&limit=5", Some("limit")),
        (repeated_limit.as_str(), Some("limit")),
        ("mode[]=live", Some("mode[]")),
        ("mode=LIVE", Some("mode")),
        ("mode=live%00", Some("mode")),
        ("is_active=1", Some("is_active")),
        ("starting_after=%00", Some("starting_after")),
        ("starting_after=..%2F", Some("starting_after")),
        ("li%00mit=5", Some("limit")),
        (many_unknown.as_str(), None),
        (long_name.as_str(), None),
    ];
    for (query, param) in &cases {
        let path = format!("/v1/integrations?{query}");
        let r = h.as_key(&key).send("GET", &path, None).await;
        let case: String = query.chars().take(80).collect();
        assert_error(&r, 400, "validation_error", *param, &case);
        assert!(r.raw.len() < 1024, "{case}: the query is not echoed");
    }
    // The same junk on writes: the row stays as it was.
    for (method, query) in [
        ("DELETE", "permanent=%00"),
        ("DELETE", "permanent=1"),
        ("DELETE", "permanent=true&permanent=true"),
        ("DELETE", repeated_limit.as_str()),
        ("PATCH", "x=1&x=2"),
        ("POST", "a=1&a=1"),
    ] {
        let path = format!("{STRIPE}?{query}");
        let body = (method == "PATCH").then(|| json!({"display_name": "changed"}));
        let r = h.as_key(&key).send(method, &path, body).await;
        let case: String = format!("{method} {}", query.chars().take(80).collect::<String>());
        assert_error(&r, 400, "validation_error", None, &case);
        assert_unchanged(&h, &key, &before, &case).await;
    }
    assert_no_server_errors(&h);
}

// ---------------------------------------------------------------------------------------
// Bugs this suite found outside the request parser (now fixed): kept as regressions.

#[tokio::test]
async fn an_empty_config_key_is_refused_and_cannot_poison_the_entity() {
    let h = Harness::new().await;
    let (_, key) = h.tenant(false).await;
    let r = send_json(&h, "POST", STRIPE, &key, r#"{"config": {"": 1}}"#.to_string()).await;
    assert_error(&r, 400, "validation_error", Some("config"), "empty key");
    for (method, path) in [
        ("GET", STRIPE.to_string()),
        ("GET", "/v1/integrations".to_string()),
        ("DELETE", format!("{STRIPE}?permanent=true")),
    ] {
        let r = h.as_key(&key).send(method, &path, None).await;
        assert!(r.status < 500, "{method} {path} after it: {}", r.raw);
    }
}

#[tokio::test]
async fn numbers_dynamodb_cannot_store_are_a_400_naming_the_field() {
    let h = Harness::new().await;
    let (_, key) = h.tenant(false).await;
    for n in ["1e300", "-1e300", "1e-300"] {
        let r = send_json(&h, "POST", STRIPE, &key, format!(r#"{{"config": {{"n": {n}}}}}"#)).await;
        assert_error(&r, 400, "validation_error", Some("config.n"), n);
    }
}

#[tokio::test]
async fn a_non_ascii_idempotency_key_is_refused_not_ignored() {
    let h = Harness::new().await;
    let (_, key) = h.tenant(false).await;
    let authorization = format!("Bearer {key}");
    let mut replies = Vec::new();
    for _ in 0..2 {
        let mut req = request("POST", STRIPE, Some(&authorization), None, Body::Empty);
        req.headers_mut().insert(
            "idempotency-key",
            lambda_http::http::HeaderValue::from_bytes("clé-1".as_bytes()).unwrap(),
        );
        replies.push(h.send(req).await);
    }
    // Either refused (400 on both) or honoured (the retry replays the 201).
    let statuses = (replies[0].status, replies[1].status);
    assert_eq!(statuses, (400, 400), "{}", replies[1].raw);
    assert_eq!(replies[0].body["param"], "Idempotency-Key");
}

// ---------------------------------------------------------------------------------------
// Secrets in free text (docs/DECISIONS.md, "Secrets in config"): a value in a well-known
// secret format is refused wherever it stands in the row's text, not only under a
// secret's name in `config`.

/// A Shopify admin API token inside a sentence, nested in `config`, on connect: it was
/// stored (201), returned by every read and published in the `integration.connected`
/// event.
#[tokio::test]
async fn a_shopify_admin_token_in_config_is_a_422_and_nothing_is_stored() {
    let h = Harness::new().await;
    let (entity, key) = h.tenant(false).await;
    let token = "shpat_0123456789abcdef0123456789abcdef";
    let body =
        json!({"config": {"shop": "acme.myshopify.com", "notes": [{"text": format!("admin token is {token}")}]}});
    let r = h.as_key(&key).post("shopify", Some(body)).await;
    assert_error(
        &r,
        422,
        "validation_error",
        Some("config.notes[0].text"),
        "shpat_ in config",
    );
    assert!(!r.raw.contains(token), "the token is not echoed: {}", r.raw);
    assert_eq!(h.as_key(&key).get("shopify").await.status, 404);
    assert!(h.raw_row(entity, "shopify").await.is_none(), "no row in DynamoDB");
    assert_eq!(h.events(0).await, Vec::<Value>::new(), "no event");
}

/// The detector's corpus (`shared/src/domain/secret_corpus.json`): secret-shaped values
/// (kind, value) and ordinary settings.
fn secret_corpus() -> (Vec<String>, Vec<String>) {
    let corpus: Value = serde_json::from_str(include_str!("../../src/domain/secret_corpus.json")).unwrap();
    let strings = |list: &Value, at: Option<usize>| -> Vec<String> {
        let list = list.as_array().unwrap().iter();
        list.map(|v| at.map_or(v, |i| &v[i]).as_str().unwrap().to_string())
            .collect()
    };
    (strings(&corpus["refused"], Some(1)), strings(&corpus["ordinary"], None))
}

/// Neither the value nor any line of it (a PEM key has several) is in the answer.
fn assert_not_echoed(r: &Reply, secret: &str, case: &str) {
    for line in secret.lines().filter(|l| l.len() > 3) {
        assert!(!r.raw.contains(line), "{case}: echoed: {}", r.raw);
    }
}

/// The text fields a connect or edit takes, where each refused value is tried in turn.
const TEXT_FIELDS: [&str; 7] = [
    "display_name",
    "seller_id",
    "ship_from_name",
    "ship_from_address1",
    "ship_from_city",
    "ship_from_state",
    "ship_from_zip",
];

#[tokio::test]
async fn the_secret_corpus_is_refused_on_connect_and_nothing_is_stored() {
    let h = Harness::new().await;
    let (entity, key) = h.tenant(false).await;
    let (refused, _) = secret_corpus();
    assert!(refused.len() >= 50);
    for (i, secret) in refused.iter().enumerate() {
        let field = TEXT_FIELDS[i % TEXT_FIELDS.len()];
        for (body, param) in [
            (json!({"display_name": secret}), "display_name"),
            (json!({ field: secret, "config": {"region": "us"} }), field),
            (
                json!({"display_name": "Payments", "config": {"shop": {"notes": ["ok", {"text": secret}]}}}),
                "config.shop.notes[1].text",
            ),
        ] {
            let r = send_json(&h, "POST", STRIPE, &key, body.to_string()).await;
            let case = format!("POST {param} = {secret:?}");
            assert_error(&r, 422, "validation_error", Some(param), &case);
            assert_not_echoed(&r, secret, &case);
        }
    }
    assert_nothing_stored(&h, entity, &key).await;
    assert_no_server_errors(&h);
}

#[tokio::test]
async fn the_secret_corpus_is_refused_on_edit_and_the_row_is_unchanged() {
    let h = Harness::new().await;
    let (_, key) = h.tenant(false).await;
    let before = connected_stripe(&h, &key).await;
    h.events(2).await; // connected, credentials: what follows must announce nothing
    let (refused, _) = secret_corpus();
    for (i, secret) in refused.iter().enumerate() {
        let field = TEXT_FIELDS[i % TEXT_FIELDS.len()];
        for (body, param) in [
            (json!({"display_name": secret}), "display_name"),
            (json!({ field: secret }), field),
            (json!({"config": {"a": [{"b": {"c": secret}}]}}), "config.a[0].b.c"),
            // A secret as a key: named by its parent, never echoed.
            (
                json!({"config": {"headers": { secret.as_str(): "x" }}}),
                "config.headers",
            ),
        ] {
            let r = send_json(&h, "PATCH", STRIPE, &key, body.to_string()).await;
            let case = format!("PATCH {param} = {secret:?}");
            assert_error(&r, 422, "validation_error", Some(param), &case);
            assert_not_echoed(&r, secret, &case);
        }
    }
    assert_unchanged(&h, &key, &before, "after every refused edit").await;
    assert_eq!(h.events(0).await, Vec::<Value>::new(), "no event");
    assert_no_server_errors(&h);
}

#[tokio::test]
async fn the_ordinary_settings_of_the_corpus_are_stored_as_sent() {
    let h = Harness::new().await;
    let (_, key) = h.tenant(false).await;
    let (_, ordinary) = secret_corpus();
    assert!(ordinary.len() >= 50);
    // All of them in one connect…
    let config = json!({"settings": ordinary, "nested": {"list": [{"value": ordinary[0]}]}});
    let r = h.as_key(&key).post("stripe", Some(json!({"config": config}))).await;
    assert_eq!(r.status, 201, "{}", r.raw);
    assert_eq!(r.body["data"]["config"], config);
    // …and each in an edit, in `config` and in a text field when it fits one.
    for (i, value) in ordinary.iter().enumerate() {
        let mut body = json!({"config": {"note": {"list": [value]}}});
        let field = TEXT_FIELDS[i % TEXT_FIELDS.len()];
        if shared::domain::fields::Text::new(value).is_some() {
            body[field] = json!(value);
        }
        let r = h.as_key(&key).patch("stripe", body.clone()).await;
        assert_eq!(r.status, 200, "{value:?}: {}", r.raw);
        assert_eq!(r.body["data"]["config"], body["config"], "{value:?}");
        if body.get(field).is_some() {
            assert_eq!(r.body["data"][field], body[field], "{value:?}");
        }
    }
    let stored = h.as_key(&key).get("stripe").await;
    assert_eq!(
        stored.body["data"]["config"]["note"]["list"][0],
        json!(ordinary.last().unwrap())
    );
    assert_no_server_errors(&h);
}
