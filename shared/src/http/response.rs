//! Building responses. `error_response` is the one place an [`ApiError`] becomes HTTP.

use lambda_http::http::header::{HeaderValue, ALLOW, CACHE_CONTROL, CONTENT_TYPE, RETRY_AFTER};
use lambda_http::http::StatusCode;
use lambda_http::{Body, Response};
use serde_json::{json, Value};

use crate::domain::error::ApiError;

pub const REQUEST_ID_HEADER: &str = "x-request-id";

/// `req_` + 32 hex digits, new for every request.
pub fn new_request_id() -> String {
    format!("req_{}", crate::domain::ids::fresh_uuid().simple())
}

fn base(status: u16, request_id: &str, body: Body) -> Response<Body> {
    let mut response = Response::new(body);
    *response.status_mut() = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let headers = response.headers_mut();
    headers.insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
    if let Ok(id) = HeaderValue::from_str(request_id) {
        headers.insert(REQUEST_ID_HEADER, id);
    }
    response
}

pub fn json_response(status: u16, request_id: &str, body: &Value) -> Response<Body> {
    let mut response = base(status, request_id, Body::Text(body.to_string()));
    response
        .headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    response
}

pub fn empty_response(status: u16, request_id: &str) -> Response<Body> {
    base(status, request_id, Body::Empty)
}

/// The flat error envelope of openapi.yaml.
pub fn error_response(error: &ApiError, request_id: &str) -> Response<Body> {
    let mut body = json!({
        "error": error.code(),
        "code": error.code(),
        "type": error.kind(),
        "hint": error.hint(),
        "param": error.param(),
        "request_id": request_id,
    });
    if let ApiError::InsufficientScope { required } = error {
        body["required"] = json!(required.as_str());
    }
    let mut response = json_response(error.status(), request_id, &body);
    let headers = response.headers_mut();
    if let Some(seconds) = error.retry_after() {
        headers.insert(RETRY_AFTER, HeaderValue::from(seconds));
    }
    if let ApiError::MethodNotAllowed { allow } = error {
        if let Ok(v) = HeaderValue::from_str(allow) {
            headers.insert(ALLOW, v);
        }
    }
    response
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::api_key::Scope;
    use crate::domain::error::Dependency;

    fn body(r: &Response<Body>) -> Value {
        serde_json::from_slice(r.body().as_ref()).unwrap()
    }

    #[test]
    fn envelope_has_every_field_and_the_request_id_twice() {
        let r = error_response(&ApiError::not_found("No such connector."), "req_abc");
        assert_eq!(r.status(), 404);
        assert_eq!(r.headers()[REQUEST_ID_HEADER], "req_abc");
        let b = body(&r);
        assert_eq!(
            b,
            json!({"error": "not_found", "code": "not_found", "type": "not_found",
                   "hint": "No such connector.", "param": null, "request_id": "req_abc"})
        );
    }

    #[test]
    fn scope_errors_name_the_required_scope_and_throttles_say_when_to_retry() {
        let r = error_response(
            &ApiError::InsufficientScope {
                required: Scope::Credentials,
            },
            "req_1",
        );
        assert_eq!(body(&r)["required"], "integrations:credentials");
        let r = error_response(&ApiError::Unavailable(Dependency::DynamoDb), "req_1");
        assert_eq!(
            (r.status().as_u16(), r.headers()[RETRY_AFTER].to_str().unwrap()),
            (503, "5")
        );
        assert!(!body(&r).to_string().to_lowercase().contains("dynamo"));
        let r = error_response(&ApiError::MethodNotAllowed { allow: "GET".into() }, "req_1");
        assert_eq!(r.headers()[ALLOW], "GET");
    }

    #[test]
    fn request_ids_are_unique_and_prefixed() {
        let (a, b) = (new_request_id(), new_request_id());
        assert!(a.starts_with("req_") && a.len() == 36);
        assert_ne!(a, b);
    }
}
