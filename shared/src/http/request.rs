//! Reading requests: body limits, content type, JSON, query strings.

use std::cell::RefCell;
use std::collections::HashMap;
use std::fmt;

use lambda_http::http::header::CONTENT_TYPE;
use lambda_http::{Body, Request};
use serde::de::{self, DeserializeSeed, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_json::{Map, Number, Value};

use crate::domain::connector::Mode;
use crate::domain::error::ApiError;
use crate::service::ListQuery;

/// openapi.yaml: request bodies are capped at 64 KiB.
pub const MAX_BODY_BYTES: usize = 64 * 1024;

/// How deeply arrays and objects may nest in a body (the top-level value is level 1).
pub const MAX_JSON_DEPTH: usize = 32;

pub fn header<'r>(req: &'r Request, name: &str) -> Option<&'r str> {
    req.headers().get(name).and_then(|v| v.to_str().ok())
}

fn is_json_content_type(value: &str) -> bool {
    let essence = value.split(';').next().unwrap_or("").trim().to_ascii_lowercase();
    essence == "application/json" || (essence.starts_with("application/") && essence.ends_with("+json"))
}

/// The body as JSON. An empty body is `None`; anything else must be JSON, ≤ 64 KiB.
pub fn json_body(req: &Request) -> Result<Option<Value>, ApiError> {
    let bytes: &[u8] = match req.body() {
        Body::Empty => return Ok(None),
        other => other.as_ref(),
    };
    if bytes.len() > MAX_BODY_BYTES {
        return Err(ApiError::PayloadTooLarge);
    }
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Ok(None);
    }
    if !header(req, CONTENT_TYPE.as_str()).is_some_and(is_json_content_type) {
        return Err(ApiError::UnsupportedMediaType);
    }
    parse_json(bytes).map(Some)
}

/// Why a syntactically fine body was refused while it was being read.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Refusal {
    DuplicateKey(String),
    TooDeep,
}

/// Strict JSON: like `serde_json::from_slice::<Value>`, but a key repeated within one
/// object (which would otherwise silently keep the last value) and nesting deeper than
/// [`MAX_JSON_DEPTH`] are refused. Reading stops at the first refusal, so no input can
/// recurse further than that depth.
pub fn parse_json(bytes: &[u8]) -> Result<Value, ApiError> {
    let refusal = RefCell::new(None);
    let mut de = serde_json::Deserializer::from_slice(bytes);
    let parsed = StrictValue {
        depth: 0,
        refusal: &refusal,
    }
    .deserialize(&mut de)
    .and_then(|value| de.end().map(|()| value));
    match (parsed, refusal.into_inner()) {
        (Ok(value), _) => Ok(value),
        (Err(_), Some(Refusal::DuplicateKey(key))) => Err(ApiError::bad_request(
            "body",
            format!(
                "The request body has a duplicate key `{}`; a key may appear only once in each JSON object.",
                printable(&key)
            ),
        )),
        (Err(_), Some(Refusal::TooDeep)) => Err(ApiError::bad_request(
            "body",
            format!("The request body nests arrays and objects more than {MAX_JSON_DEPTH} levels deep."),
        )),
        (Err(_), None) => Err(ApiError::bad_request("body", "The request body is not valid JSON.")),
    }
}

/// Builds a `Value` at nesting `depth` (of the container holding it), recording the
/// first refusal in `refusal`: serde's error type only carries text, which would have to
/// be parsed back.
#[derive(Clone, Copy)]
struct StrictValue<'r> {
    depth: usize,
    refusal: &'r RefCell<Option<Refusal>>,
}

impl StrictValue<'_> {
    /// The seed for the members of a container opened at this level.
    fn enter<E: de::Error>(self) -> Result<Self, E> {
        if self.depth >= MAX_JSON_DEPTH {
            return Err(self.refuse(Refusal::TooDeep));
        }
        Ok(StrictValue {
            depth: self.depth + 1,
            refusal: self.refusal,
        })
    }

    fn refuse<E: de::Error>(self, refusal: Refusal) -> E {
        let message = match &refusal {
            Refusal::DuplicateKey(_) => "duplicate key",
            Refusal::TooDeep => "nested too deeply",
        };
        self.refusal.borrow_mut().get_or_insert(refusal);
        E::custom(message)
    }
}

impl<'de> DeserializeSeed<'de> for StrictValue<'_> {
    type Value = Value;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<Value, D::Error> {
        deserializer.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for StrictValue<'_> {
    type Value = Value;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any JSON value")
    }

    fn visit_unit<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }

    fn visit_bool<E>(self, v: bool) -> Result<Value, E> {
        Ok(Value::Bool(v))
    }

    fn visit_i64<E>(self, v: i64) -> Result<Value, E> {
        Ok(Value::Number(v.into()))
    }

    fn visit_u64<E>(self, v: u64) -> Result<Value, E> {
        Ok(Value::Number(v.into()))
    }

    fn visit_f64<E>(self, v: f64) -> Result<Value, E> {
        // JSON text has no NaN or infinity, and serde_json refuses out-of-range numbers.
        Ok(Number::from_f64(v).map_or(Value::Null, Value::Number))
    }

    fn visit_str<E>(self, v: &str) -> Result<Value, E> {
        Ok(Value::String(v.to_owned()))
    }

    fn visit_string<E>(self, v: String) -> Result<Value, E> {
        Ok(Value::String(v))
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        let inner = self.enter()?;
        let mut items = Vec::new();
        while let Some(item) = seq.next_element_seed(inner)? {
            items.push(item);
        }
        Ok(Value::Array(items))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Value, A::Error> {
        let inner = self.enter()?;
        let mut object = Map::new();
        while let Some(key) = map.next_key::<String>()? {
            if object.contains_key(&key) {
                return Err(self.refuse(Refusal::DuplicateKey(key)));
            }
            let value = map.next_value_seed(inner)?;
            object.insert(key, value);
        }
        Ok(Value::Object(object))
    }
}

/// Query parameters; a repeated name is a 400 (which value would win is ambiguous).
pub fn query_params(req: &Request) -> Result<HashMap<String, String>, ApiError> {
    let pairs: Vec<(String, String)> = serde_urlencoded::from_str(req.uri().query().unwrap_or(""))
        .map_err(|_| ApiError::bad_request("query", "The query string is malformed."))?;
    let mut params = HashMap::new();
    for (k, v) in pairs {
        if params.contains_key(&k) {
            return Err(ApiError::bad_request(
                printable(&k),
                format!("`{}` may be given only once.", printable(&k)),
            ));
        }
        params.insert(k, v);
    }
    Ok(params)
}

/// A caller's text echoed in a hint: no control characters, cut short.
pub fn printable(text: &str) -> String {
    text.chars().filter(|c| !c.is_control()).take(64).collect()
}

fn parse_bool(name: &str, value: &str) -> Result<bool, ApiError> {
    match value {
        "true" => Ok(true),
        "false" => Ok(false),
        _ => Err(ApiError::bad_request(name, format!("`{name}` must be true or false."))),
    }
}

pub fn list_query(params: HashMap<String, String>) -> Result<ListQuery, ApiError> {
    let mut query = ListQuery {
        limit: 20,
        starting_after: None,
        ending_before: None,
        is_active: None,
        mode: None,
    };
    for (name, value) in params {
        let n = name.as_str();
        match n {
            "limit" => {
                // Digits only: `str::parse` would also take a sign (`+5`).
                query.limit = Some(value.as_str())
                    .filter(|v| !v.is_empty() && v.bytes().all(|b| b.is_ascii_digit()))
                    .and_then(|v| v.parse().ok())
                    .filter(|l| (1..=100).contains(l))
                    .ok_or_else(|| ApiError::bad_request(n, "`limit` must be an integer from 1 to 100."))?
            }
            "starting_after" | "ending_before" => {
                let id = value
                    .parse()
                    .map_err(|_| ApiError::bad_request(n, format!("`{n}` must be a connector id (UUID).")))?;
                if n == "starting_after" {
                    query.starting_after = Some(id);
                } else {
                    query.ending_before = Some(id);
                }
            }
            "is_active" => query.is_active = Some(parse_bool(n, &value)?),
            "mode" => {
                query.mode = Some(
                    Mode::parse(&value).ok_or_else(|| ApiError::bad_request(n, "`mode` must be sandbox or live."))?,
                )
            }
            _ => {
                return Err(ApiError::bad_request(
                    printable(n),
                    format!(
                        "Unknown parameter `{}`; accepted: limit, starting_after, ending_before, is_active, mode.",
                        printable(n)
                    ),
                ))
            }
        }
    }
    if query.starting_after.is_some() && query.ending_before.is_some() {
        return Err(ApiError::bad_request(
            "ending_before",
            "Use either `starting_after` or `ending_before`, not both.",
        ));
    }
    Ok(query)
}

#[cfg(test)]
mod tests {
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
}
