//! What API Gateway really sends: HTTP API (v2) and REST API (v1) proxy events, parsed by
//! lambda_http exactly as in Lambda and served by `handle_operation`, the function entry.

use crate::support;

use connectors_infra::api_gateway::ApiEvent;
use serde_json::{json, Value};
use shared::http::router::Operation;
use support::{Harness, Reply};

fn http_api_v2(method: &str, path: &str, key: &str, body: Option<&Value>) -> Value {
    ApiEvent::new(method, path).key(key).body(body).http_api()
}

fn rest_api_v1(method: &str, path: &str, key: &str, body: Option<&Value>) -> Value {
    ApiEvent::new(method, path).key(key).body(body).rest_api()
}

async fn invoke(h: &Harness, operation: Operation, event: Value) -> Reply {
    let req = lambda_http::request::from_str(&event.to_string()).expect("lambda_http parses the event");
    h.invoke(operation, req).await
}

#[tokio::test]
async fn http_api_v2_events_reach_each_operation() {
    let h = Harness::new().await;
    let (_, key) = h.tenant(false).await;
    let r = invoke(
        &h,
        Operation::Connect,
        http_api_v2(
            "POST",
            "/v1/integrations/usps",
            &key,
            Some(&json!({"display_name": "Post"})),
        ),
    )
    .await;
    assert_eq!(r.status, 201, "{}", r.raw);
    let creds = json!({"credentials": {"client_id": "a", "client_secret": "b"}});
    let r = invoke(
        &h,
        Operation::Credentials,
        http_api_v2("PUT", "/v1/integrations/usps/credentials", &key, Some(&creds)),
    )
    .await;
    assert_eq!(
        r.body["data"]["credentials_masked"],
        json!(["client_id", "client_secret"])
    );
    let r = invoke(
        &h,
        Operation::Get,
        http_api_v2("GET", "/v1/integrations/usps", &key, None),
    )
    .await;
    assert_eq!(r.body["data"]["display_name"], "Post");
    let r = invoke(
        &h,
        Operation::List,
        http_api_v2("GET", "/v1/integrations?limit=1&is_active=true", &key, None),
    )
    .await;
    assert_eq!(r.body["data"].as_array().unwrap().len(), 1);
    let r = invoke(
        &h,
        Operation::List,
        http_api_v2("GET", "/v1/integrations?limit=500", &key, None),
    )
    .await;
    assert_eq!(
        (r.status, r.body["param"].as_str()),
        (400, Some("limit")),
        "the query string reaches the handler"
    );
    let r = invoke(
        &h,
        Operation::Disconnect,
        http_api_v2("DELETE", "/v1/integrations/usps", &key, None),
    )
    .await;
    assert_eq!(r.body["data"]["is_active"], false);
}

#[tokio::test]
async fn rest_api_v1_events_with_a_stage_reach_each_operation() {
    let h = Harness::new().await;
    let (_, key) = h.tenant(false).await;
    let r = invoke(
        &h,
        Operation::Connect,
        rest_api_v1("POST", "/v1/integrations/google", &key, None),
    )
    .await;
    assert_eq!(r.status, 201, "{}", r.raw);
    let r = invoke(
        &h,
        Operation::Get,
        rest_api_v1("GET", "/v1/integrations/google", &key, None),
    )
    .await;
    assert_eq!(r.body["data"]["connector_type"], "google");
    let r = invoke(
        &h,
        Operation::List,
        rest_api_v1("GET", "/v1/integrations?mode=sandbox", &key, None),
    )
    .await;
    assert_eq!(r.body["data"].as_array().unwrap().len(), 1);
    let r = invoke(
        &h,
        Operation::Disconnect,
        rest_api_v1("DELETE", "/v1/integrations/google", &key, None),
    )
    .await;
    assert_eq!(r.status, 200);
}

#[tokio::test]
async fn a_function_serves_only_its_own_operation() {
    let h = Harness::new().await;
    let (_, key) = h.tenant(false).await;
    invoke(
        &h,
        Operation::Connect,
        http_api_v2("POST", "/v1/integrations/wwex", &key, None),
    )
    .await;
    // A DELETE wired to the `get` function must not disconnect anything.
    let r = invoke(
        &h,
        Operation::Get,
        http_api_v2("DELETE", "/v1/integrations/wwex", &key, None),
    )
    .await;
    assert_eq!((r.status, r.error_code().as_str()), (404, "not_found"));
    let still = invoke(
        &h,
        Operation::Get,
        http_api_v2("GET", "/v1/integrations/wwex", &key, None),
    )
    .await;
    assert_eq!(still.body["data"]["is_active"], true);
}
