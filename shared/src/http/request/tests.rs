//! Request parsing: the strict JSON reader, query strings, list parameters.

use super::*;

fn params(pairs: &[(&str, &str)]) -> HashMap<String, String> {
    pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
}

#[test]
fn list_query_defaults_and_bounds() {
    let q = list_query(params(&[])).unwrap();
    assert_eq!((q.limit, q.is_active, q.mode), (20, None, None));
    assert_eq!(
        list_query(params(&[("limit", "100"), ("is_active", "false"), ("mode", "live")]))
            .unwrap()
            .limit,
        100
    );
    for (k, v) in [
        ("limit", "0"),
        ("limit", "101"),
        ("limit", "x"),
        ("limit", "+5"),
        ("limit", "-1"),
        ("limit", " 5"),
        ("limit", "1e3"),
        ("limit", ""),
        ("is_active", "yes"),
        ("mode", "prod"),
        ("starting_after", "stripe"),
        ("colour", "x"),
    ] {
        let e = list_query(params(&[(k, v)])).unwrap_err();
        assert_eq!((e.status(), e.param()), (400, Some(k)), "{k}={v}");
    }
    let id = "3c90c3cc-0d44-4b50-8888-8dd25736052a";
    assert!(list_query(params(&[("starting_after", id), ("ending_before", id)])).is_err());
}

fn refused(body: &[u8]) -> (u16, Option<String>, String) {
    let e = parse_json(body).unwrap_err();
    (e.status(), e.param().map(str::to_string), e.hint())
}

fn nested(open: &str, close: &str, levels: usize) -> String {
    format!("{}1{}", open.repeat(levels), close.repeat(levels))
}

#[test]
fn strict_parse_equals_serde_json_on_ordinary_documents() {
    for text in [
        r#"{}"#,
        r#"[]"#,
        r#"null"#,
        r#""x""#,
        r#"{"display_name": "Payments", "config": {"a": [1, -2, 3.5, 1e3, true, null, "é\u00e9"], "b": {}}}"#,
        r#"{"big": 18446744073709551615, "neg": -9223372036854775808, "f": 0.1, "e": "\ud83d\udca5"}"#,
        r#"{"same": {"k": 1}, "other": {"k": 2}, "list": [{"k": 1}, {"k": 2}]}"#,
        "  {\"padded\": true}\n\t ",
    ] {
        let expected: Value = serde_json::from_str(text).unwrap();
        let got = parse_json(text.as_bytes()).unwrap();
        assert_eq!(got, expected, "{text}");
        assert_eq!(got.to_string(), expected.to_string(), "key order kept: {text}");
    }
}

#[test]
fn a_duplicated_key_at_any_depth_is_a_400_naming_the_key_not_the_value() {
    for (text, key) in [
        (r#"{"display_name": "a", "display_name": "b"}"#, "display_name"),
        (r#"{"config": {"region": "us", "region": "eu"}}"#, "region"),
        (r#"{"config": {"list": [{"x": 1}, {"y": 1, "y": 2}]}}"#, "y"),
        (r#"[[{"a": {"deep": 1, "deep": 1}}]]"#, "deep"),
        // Escapes decode before the comparison: `\u0061` is `a`.
        (r#"{"a": "sk_live_first", "\u0061": "sk_live_second"}"#, "a"),
        (r#"{"": 1, "": 2}"#, ""),
    ] {
        let (status, param, hint) = refused(text.as_bytes());
        assert_eq!((status, param.as_deref()), (400, Some("body")), "{text}");
        assert!(hint.contains(&format!("duplicate key `{key}`")), "{text}: {hint}");
        assert!(!hint.contains("sk_live"), "values are never echoed: {hint}");
    }
}

#[test]
fn a_duplicated_key_is_echoed_printable_and_short() {
    let long = "k".repeat(1000);
    let text = format!(r#"{{"{long}": 1, "{long}": 2}}"#);
    let (_, _, hint) = refused(text.as_bytes());
    assert!(hint.contains(&format!("`{}`", "k".repeat(64))), "{hint}");
    assert!(!hint.contains(&"k".repeat(65)), "cut to 64 characters");
    let (_, _, hint) = refused(r#"{"a\u0000\u001b[31m\u202e": 1, "a\u0000\u001b[31m\u202e": 2}"#.as_bytes());
    assert!(!hint.chars().any(char::is_control), "{hint:?}");
}

#[test]
fn nesting_is_limited_to_32_levels_of_arrays_and_objects() {
    assert_eq!(MAX_JSON_DEPTH, 32);
    for (open, close) in [("[", "]"), (r#"{"a":"#, "}"), (r#"[{"a":"#, "}]")] {
        let levels = MAX_JSON_DEPTH / open.matches(['[', '{']).count();
        let ok = nested(open, close, levels);
        assert!(parse_json(ok.as_bytes()).is_ok(), "{levels} levels are fine: {ok}");
    }
    for text in [
        nested("[", "]", 33),
        nested(r#"{"a":"#, "}", 33),
        format!(r#"{{"config": {}}}"#, nested(r#"{"k":"#, "}", 32)),
        format!(r#"[{}, {}]"#, nested("[", "]", 31), nested("[", "]", 32)),
    ] {
        let (status, param, hint) = refused(text.as_bytes());
        assert_eq!((status, param.as_deref()), (400, Some("body")), "{text}");
        assert!(hint.contains("more than 32 levels"), "{hint}");
    }
    // Width is not depth.
    let wide = format!("[{}]", vec!["[[1]]"; 5000].join(","));
    assert!(parse_json(wide.as_bytes()).is_ok());
}

#[test]
fn hostile_nesting_is_refused_without_deep_recursion() {
    // On a 128 KiB stack: reading stops at level 33 whatever the input's depth, so no
    // body can recurse further (serde_json alone would go to 128 levels, then give a
    // generic error).
    let outcome = std::thread::Builder::new()
        .stack_size(128 * 1024)
        .spawn(|| {
            [
                "[".repeat(100_000),
                r#"{"a":"#.repeat(100_000),
                nested("[", "]", 10_000),
                format!("{}{}", "[{\"a\":".repeat(50_000), "1"),
            ]
            .iter()
            .map(|text| refused(text.as_bytes()))
            .collect::<Vec<_>>()
        })
        .unwrap()
        .join()
        .expect("no stack overflow");
    for (status, param, hint) in outcome {
        assert_eq!((status, param.as_deref()), (400, Some("body")));
        assert!(hint.contains("more than 32 levels"), "{hint}");
    }
}

fn any_json() -> impl proptest::strategy::Strategy<Value = Value> {
    use proptest::prelude::*;
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        any::<u64>().prop_map(Value::from),
        any::<f64>()
            .prop_filter("finite", |f| f.is_finite())
            .prop_map(Value::from),
        any::<String>().prop_map(Value::String),
    ];
    leaf.prop_recursive(8, 64, 6, |inner| {
        prop_oneof![
            proptest::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
            proptest::collection::vec((any::<String>(), inner), 0..6)
                .prop_map(|pairs| Value::Object(pairs.into_iter().collect())),
        ]
    })
}

proptest::proptest! {
    /// Any document without duplicates and within the depth limit reads back as
    /// serde_json reads it.
    #[test]
    fn strict_parse_round_trips_any_value(value in any_json()) {
        let text = serde_json::to_string(&value).unwrap();
        proptest::prop_assert_eq!(parse_json(text.as_bytes()).unwrap(), value.clone());
        let pretty = serde_json::to_vec_pretty(&value).unwrap();
        proptest::prop_assert_eq!(parse_json(&pretty).unwrap(), value);
    }
}

#[test]
fn malformed_bodies_are_a_generic_400() {
    for body in [
        &b"{"[..],
        b"{\"a\": 1} trailing",
        b"{\"a\": 1}{\"b\": 2}",
        b"{\"a\xff\": 1}",
        b"{\"a\": \"\xc3\x28\"}",
        br#"{"a": "\ud800"}"#,
        br#"{"a": "\udc00x"}"#,
        b"{\"a\": \"x\x00y\"}",
        b"{\"a\": 1}\x00",
        b"\x00",
        b"{'a': 1}",
        b"{\"a\": 1,}",
        b"{\"a\": NaN}",
        b"{\"a\": 1e400}",
        b"\xef\xbb\xbf{}",
    ] {
        let (status, param, hint) = refused(body);
        assert_eq!((status, param.as_deref()), (400, Some("body")), "{body:?}");
        assert_eq!(hint, "The request body is not valid JSON.", "{body:?}");
    }
}

fn request(content_type: Option<&str>, body: Body) -> Request {
    let mut builder = lambda_http::http::Request::builder()
        .method("POST")
        .uri("https://api.test/v1/integrations/stripe");
    if let Some(ct) = content_type {
        builder = builder.header("content-type", ct);
    }
    builder.body(body).unwrap()
}

#[test]
fn json_body_keeps_limits_media_type_and_empty_bodies() {
    let json = Some("application/json");
    // Exactly at the limit is read; one byte more is a 413 whatever the content.
    let at_limit = format!(r#"{{"config": {{"note": "{}"}}}}"#, "x".repeat(MAX_BODY_BYTES - 24));
    assert_eq!(at_limit.len(), MAX_BODY_BYTES);
    assert!(json_body(&request(json, Body::Text(at_limit.clone())))
        .unwrap()
        .is_some());
    let over = format!("{at_limit} ");
    let e = json_body(&request(json, Body::Text(over))).unwrap_err();
    assert_eq!(e, ApiError::PayloadTooLarge);
    let e = json_body(&request(None, Body::Binary(vec![0xff; 1 << 20]))).unwrap_err();
    assert_eq!(e, ApiError::PayloadTooLarge);
    // Empty and blank bodies are no body, with or without a content type.
    assert_eq!(json_body(&request(None, Body::Empty)).unwrap(), None);
    assert_eq!(json_body(&request(None, Body::Text(" \r\n\t".into()))).unwrap(), None);
    // Anything else needs a JSON content type.
    for ct in [None, Some("text/plain"), Some("multipart/form-data; boundary=x")] {
        let e = json_body(&request(ct, Body::Text("{}".into()))).unwrap_err();
        assert_eq!(e, ApiError::UnsupportedMediaType, "{ct:?}");
    }
    let ok = json_body(&request(
        Some("application/json; charset=utf-8"),
        Body::Binary(br#"{"a": 1}"#.to_vec()),
    ));
    assert_eq!(ok.unwrap(), Some(serde_json::json!({"a": 1})));
    // The strict reader is the one in use.
    let e = json_body(&request(json, Body::Text(r#"{"a": 1, "a": 2}"#.into()))).unwrap_err();
    assert!(e.hint().contains("duplicate key `a`"));
    let e = json_body(&request(json, Body::Text("[".repeat(MAX_BODY_BYTES)))).unwrap_err();
    assert!(e.hint().contains("more than 32 levels"));
}

#[test]
fn a_repeated_query_parameter_is_named_printably() {
    let req = lambda_http::http::Request::builder()
        .uri("https://api.test/v1/integrations?li%00mit=1&li%00mit=2")
        .body(Body::Empty)
        .unwrap();
    let e = query_params(&req).unwrap_err();
    assert_eq!((e.status(), e.param()), (400, Some("limit")));
}

#[test]
fn json_content_types() {
    assert!(is_json_content_type("application/json"));
    assert!(is_json_content_type("Application/JSON; charset=utf-8"));
    assert!(is_json_content_type("application/merge-patch+json"));
    assert!(!is_json_content_type("text/plain"));
    assert!(!is_json_content_type("application/x-www-form-urlencoded"));
}

#[test]
fn the_credentials_body_takes_credentials_and_a_webhook_secret_only() {
    use serde_json::json;
    let (credentials, webhook) =
        credentials_body(json!({"credentials": {"secret_key": "sk"}, "webhook_secret": "wh"})).unwrap();
    assert_eq!((credentials, webhook), (json!({"secret_key": "sk"}), Some(json!("wh"))));
    for (body, status, param) in [
        (json!([1]), 400, "body"),
        (json!({}), 422, "credentials"),
        (json!({"credentials": {}, "colour": 1}), 400, "colour"),
        // `entity_id` is a 422 wherever it stands among the keys.
        (
            json!({"colour": 1, "entity_id": "x", "credentials": {}}),
            422,
            "entity_id",
        ),
    ] {
        let e = credentials_body(body.clone()).unwrap_err();
        assert_eq!((e.status(), e.param()), (status, Some(param)), "{body}");
    }
    let e = credentials_body(json!({"credentials": {}, "colour": 1})).unwrap_err();
    assert_eq!(
        e.hint(),
        "Unknown parameter `colour`; accepted: credentials, webhook_secret."
    );
}
