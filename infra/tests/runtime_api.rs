//! The Runtime API stand-in plays Lambda's rules for internal extensions: what the bench's
//! freeze and the after-answer test rely on.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use connectors_infra::runtime_api::RuntimeApi;
use http_body_util::{BodyExt, Full};
use hyper::body::Bytes;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use serde_json::{json, Value};

struct Reply {
    status: u16,
    headers: hyper::HeaderMap,
    body: Value,
}

async fn call(addr: SocketAddr, method: &str, path: &str, headers: Vec<(&str, String)>, body: Value) -> Reply {
    let http = Client::builder(TokioExecutor::new()).build_http::<Full<Bytes>>();
    let mut req = hyper::Request::builder()
        .method(method)
        .uri(format!("http://{addr}{path}"));
    for (name, value) in headers {
        req = req.header(name, value);
    }
    let res = http
        .request(req.body(Full::new(Bytes::from(body.to_string()))).unwrap())
        .await
        .unwrap();
    let (parts, body) = res.into_parts();
    let bytes = body.collect().await.unwrap().to_bytes();
    Reply {
        status: parts.status.as_u16(),
        headers: parts.headers,
        body: serde_json::from_slice(&bytes).unwrap_or(Value::Null),
    }
}

async fn register(addr: SocketAddr, name: &str, events: Value) -> Reply {
    call(
        addr,
        "POST",
        "/2020-01-01/extension/register",
        vec![("lambda-extension-name", name.to_string())],
        json!({ "events": events }),
    )
    .await
}

fn extension_next(addr: SocketAddr, id: &str) -> tokio::task::JoinHandle<Reply> {
    let id = id.to_string();
    tokio::spawn(async move {
        call(
            addr,
            "GET",
            "/2020-01-01/extension/event/next",
            vec![("lambda-extension-identifier", id)],
            Value::Null,
        )
        .await
    })
}

fn runtime_next(addr: SocketAddr) -> tokio::task::JoinHandle<Reply> {
    tokio::spawn(async move { call(addr, "GET", "/2018-06-01/runtime/invocation/next", vec![], Value::Null).await })
}

#[tokio::test]
async fn registration_takes_internal_extensions_only_and_closes_at_the_runtime_s_first_poll() {
    let api = RuntimeApi::start().await;
    let refused = register(api.addr, "flush", json!(["INVOKE", "SHUTDOWN"])).await;
    assert_eq!(
        (refused.status, refused.body["errorType"].as_str()),
        (403, Some("Extension.InvalidEventType"))
    );
    let taken = register(api.addr, "flush", json!(["INVOKE"])).await;
    assert_eq!(taken.status, 200);
    assert!(taken.headers.contains_key("lambda-extension-identifier"));
    assert_eq!(taken.body["functionName"], "local");
    let twice = register(api.addr, "flush", json!(["INVOKE"])).await;
    assert_eq!(
        (twice.status, twice.body["errorType"].as_str()),
        (403, Some("Extension.AlreadyRegistered"))
    );

    let _runtime = runtime_next(api.addr);
    while api.first_poll().is_none() {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let late = register(api.addr, "late", json!(["INVOKE"])).await;
    assert_eq!(
        (late.status, late.body["errorType"].as_str()),
        (403, Some("Extension.RegistrationClosed"))
    );
    assert_eq!(api.extensions(), 1);
}

#[tokio::test]
async fn an_invocation_is_over_only_once_the_runtime_and_every_extension_asked_for_the_next_event() {
    let api = Arc::new(RuntimeApi::start().await);
    // The event is handed over before the extension registers (as the bench does right
    // after starting a process): the extension still gets it.
    let invoking = {
        let api = api.clone();
        tokio::spawn(async move { api.invoke(&json!({"n": 1})).await.body })
    };
    tokio::time::sleep(Duration::from_millis(50)).await;
    let registered = register(api.addr, "after-answer", json!(["INVOKE"])).await;
    let id = registered.headers["lambda-extension-identifier"]
        .to_str()
        .unwrap()
        .to_string();

    // The runtime gets the first event only once every extension has asked for one.
    let runtime = runtime_next(api.addr);
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert!(
        !runtime.is_finished(),
        "the runtime got the event before the extension asked"
    );
    let seen_by_extension = extension_next(api.addr, &id).await.unwrap();
    let seen_by_runtime = runtime.await.unwrap();
    assert_eq!(seen_by_extension.body["eventType"], "INVOKE");
    let request_id = seen_by_runtime.headers["lambda-runtime-aws-request-id"]
        .to_str()
        .unwrap()
        .to_string();
    assert_eq!(seen_by_extension.body["requestId"], request_id.as_str());
    assert_eq!(seen_by_runtime.body, json!({"n": 1}));

    // Only the held invocation's answer counts.
    let stray = call(
        api.addr,
        "POST",
        "/2018-06-01/runtime/invocation/someone-else/response",
        vec![],
        json!({}),
    )
    .await;
    assert_eq!(stray.status, 404);
    let path = format!("/2018-06-01/runtime/invocation/{request_id}/response");
    assert_eq!(
        call(api.addr, "POST", &path, vec![], json!({"statusCode": 201}))
            .await
            .status,
        202
    );
    assert_eq!(invoking.await.unwrap(), json!({"statusCode": 201}));

    // Answered, and the runtime asks for the next event: not over while the extension works.
    let _runtime_waits = runtime_next(api.addr);
    let early = tokio::time::timeout(Duration::from_millis(200), api.settled()).await;
    assert!(early.is_err(), "over before the extension asked for the next event");
    let _extension_waits = extension_next(api.addr, &id);
    tokio::time::timeout(Duration::from_secs(5), api.settled())
        .await
        .expect("over once the runtime and the extension both asked");
}
