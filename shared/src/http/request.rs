//! Reading requests: body limits, content type, JSON, query strings.

use std::collections::HashMap;

use lambda_http::http::header::CONTENT_TYPE;
use lambda_http::{Body, Request};
use serde_json::Value;

use crate::domain::connector::Mode;
use crate::domain::error::ApiError;
use crate::service::ListQuery;

/// DESIGN.md §1: request bodies are capped at 64 KiB.
pub const MAX_BODY_BYTES: usize = 64 * 1024;

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
    let value: Value = serde_json::from_slice(bytes)
        .map_err(|_| ApiError::bad_request("body", "The request body is not valid JSON."))?;
    Ok(Some(value))
}

/// Query parameters; a repeated name is a 400 (which value would win is ambiguous).
pub fn query_params(req: &Request) -> Result<HashMap<String, String>, ApiError> {
    let pairs: Vec<(String, String)> = serde_urlencoded::from_str(req.uri().query().unwrap_or(""))
        .map_err(|_| ApiError::bad_request("query", "The query string is malformed."))?;
    let mut params = HashMap::new();
    for (k, v) in pairs {
        if params.contains_key(&k) {
            return Err(ApiError::bad_request(
                k.clone(),
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
                query.limit = value
                    .parse()
                    .ok()
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

    #[test]
    fn json_content_types() {
        assert!(is_json_content_type("application/json"));
        assert!(is_json_content_type("Application/JSON; charset=utf-8"));
        assert!(is_json_content_type("application/merge-patch+json"));
        assert!(!is_json_content_type("text/plain"));
        assert!(!is_json_content_type("application/x-www-form-urlencoded"));
    }
}
