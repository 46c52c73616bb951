//! One path, one answer: each percent-encoded path of `infra/encoded-paths.json` gets the
//! same status (and `param`) from the dev server (raw HTTP over loopback, as a client
//! sends it) and from the functions given the events API Gateway builds from it, in both
//! payload versions (`make sam-local-smoke` sends the same table through SAM local).

use crate::support;

use std::sync::Arc;

use connectors_infra::api_gateway::ApiEvent;
use serde_json::Value;
use shared::http::router::route;
use support::Harness;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const ROOT: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/..");

struct Case {
    method: String,
    path: String,
    status: u16,
    param: Option<String>,
}

fn cases() -> Vec<Case> {
    let table: Value =
        serde_json::from_str(&std::fs::read_to_string(format!("{ROOT}/infra/encoded-paths.json")).unwrap()).unwrap();
    table["cases"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| Case {
            method: c["method"].as_str().unwrap().into(),
            path: c["path"].as_str().unwrap().into(),
            status: c["status"].as_u64().unwrap() as u16,
            param: c["param"].as_str().map(String::from),
        })
        .collect()
}

/// A request written byte for byte as a client sends it (no client library re-encodes
/// or normalises the path), and the dev server's answer: status and `param`.
async fn through_dev_server(addr: std::net::SocketAddr, case: &Case, key: &str) -> (u16, Option<String>) {
    let body = if case.method == "POST" { "{}" } else { "" };
    let request = format!(
        "{} {} HTTP/1.1\r\nHost: {addr}\r\nAuthorization: Bearer {key}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        case.method,
        case.path,
        body.len()
    );
    let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut response = Vec::new();
    stream.read_to_end(&mut response).await.unwrap();
    let text = String::from_utf8_lossy(&response);
    let status = text.split(' ').nth(1).unwrap().parse().unwrap();
    let body: Value = text
        .split_once("\r\n\r\n")
        .and_then(|(_, b)| serde_json::from_str(b).ok())
        .unwrap_or(Value::Null);
    (status, body["param"].as_str().map(String::from))
}

/// The event API Gateway sends for the case, served by the function its route belongs to
/// (routed on the decoded path, as API Gateway routes), or by the fallback.
async fn through_events(h: &Harness, case: &Case, key: &str, rest: bool) -> (u16, Option<String>) {
    let body = (case.method == "POST").then(|| serde_json::json!({}));
    let event = ApiEvent::new(&case.method, &case.path).key(key).body(body.as_ref());
    let event = if rest { event.rest_api() } else { event.http_api() };
    let decoded = if rest {
        event["path"].clone()
    } else {
        event["rawPath"].clone()
    };
    let req = lambda_http::request::from_str(&event.to_string()).expect("lambda_http parses the event");
    let reply = match route(&case.method, decoded.as_str().unwrap()) {
        Ok(m) => h.invoke(m.operation, req).await,
        Err(_) => {
            let response = support::as_function(shared::http::UNROUTED_FUNCTION, shared::http::handle_unrouted(req))
                .await
                .unwrap();
            h.record(&case.method, &case.path, response)
        }
    };
    (reply.status, reply.body["param"].as_str().map(String::from))
}

#[tokio::test]
async fn each_encoded_path_gets_one_answer_from_the_dev_server_and_from_both_event_versions() {
    let h = Harness::new().await;
    // As `make dev` runs it: one process serving every route, with the operator's credentials.
    let app = Arc::new(shared::App::new(&h.admin_sdk, h.settings.clone(), h.clock.clone()));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let server = tokio::spawn(connectors_infra::dev_server::run(listener, app));
    for case in cases() {
        let want = (case.status, case.param.clone());
        let (_, key) = h.tenant(false).await;
        assert_eq!(
            through_dev_server(addr, &case, &key).await,
            want,
            "dev server: {} {}",
            case.method,
            case.path
        );
        let (_, key) = h.tenant(false).await;
        assert_eq!(
            through_events(&h, &case, &key, false).await,
            want,
            "HTTP API event: {} {}",
            case.method,
            case.path
        );
        let (_, key) = h.tenant(false).await;
        assert_eq!(
            through_events(&h, &case, &key, true).await,
            want,
            "REST API event: {} {}",
            case.method,
            case.path
        );
    }
    server.abort();
}

/// The events carry the path as API Gateway hands it on: decoded, in every field.
#[test]
fn events_carry_the_decoded_path() {
    let v2 = ApiEvent::new("POST", "/v1/integrations/str%69pe%00").http_api();
    assert_eq!(v2["rawPath"], "/v1/integrations/stripe\u{0}");
    assert_eq!(v2["requestContext"]["http"]["path"], "/v1/integrations/stripe\u{0}");
    assert_eq!(v2["pathParameters"]["connector"], "stripe\u{0}");
    let v1 = ApiEvent::new("PUT", "/v1/integrations/stripe%2Fcredentials").rest_api();
    assert_eq!(v1["path"], "/v1/integrations/stripe/credentials");
    assert_eq!(v1["requestContext"]["path"], "/prod/v1/integrations/stripe/credentials");
    assert_eq!(v1["resource"], "/v1/integrations/{connector}/credentials");
    assert_eq!(v1["pathParameters"]["connector"], "stripe");
}
