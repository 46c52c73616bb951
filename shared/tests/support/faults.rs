//! A fault-injecting HTTP proxy in front of the emulator. The service's real SDK clients
//! talk to it; it forwards everything to moto except one chosen AWS call (counted by the
//! SDK's `amz-sdk-invocation-id`, so every retry of that call fails too), which gets the
//! armed fault. It can also hold one call back until the test lets it through, to place
//! another request inside a chosen gap of the first.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use http_body_util::{BodyExt, Full};
use hyper::body::{Bytes, Incoming};
use hyper::service::service_fn;
use hyper::{Request, Response};
use hyper_util::client::legacy::Client;
use hyper_util::rt::{TokioExecutor, TokioIo};

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Fault {
    /// 400 `ThrottlingException` on every attempt.
    Throttle,
    /// 500 `InternalServerError` on every attempt.
    ServerError,
    /// No answer for longer than the client's attempt timeout.
    Timeout,
    /// The connection is dropped without an answer.
    Dropped,
}

impl Fault {
    pub const ALL: [Fault; 4] = [Fault::Throttle, Fault::ServerError, Fault::Timeout, Fault::Dropped];
}

/// How long a `Timeout` fault stalls (the faulty clients time out well before).
pub const STALL: Duration = Duration::from_millis(1500);

/// The call an armed proxy fails (every attempt of it).
enum Trigger {
    /// The n-th distinct call from now on (0-based).
    Step(usize),
    /// The first call of this operation (e.g. `TransactWriteItems`).
    Operation(String),
}

impl Trigger {
    /// Whether the call just seen — the `seen`-th (1-based), of `operation` — is the one.
    fn fires(&self, seen: usize, operation: &str) -> bool {
        match self {
            Trigger::Step(n) => seen == n + 1,
            Trigger::Operation(op) => operation.rsplit('.').next() == Some(op.as_str()),
        }
    }
}

/// A call held at the proxy (see [`FaultProxy::hold_operation`]).
#[derive(Clone, Default)]
pub struct Hold {
    reached: Arc<tokio::sync::Notify>,
    release: Arc<tokio::sync::Notify>,
}

impl Hold {
    /// Waits until the held call has reached the proxy (it is not forwarded yet).
    pub async fn reached(&self) {
        self.reached.notified().await;
    }

    /// Forwards it.
    pub fn release(&self) {
        self.release.notify_one();
    }
}

#[derive(Default)]
struct State {
    /// The next call of this operation waits for its release before it is forwarded.
    hold: Option<(String, Hold)>,
    /// Which call fails, and how.
    armed: Option<(Trigger, Fault)>,
    /// Distinct calls since arming, in order: (invocation id, service.operation).
    calls: Vec<(String, String)>,
    /// The invocation chosen to fail, once seen.
    failing: Option<String>,
    /// Faulted HTTP attempts, for the report.
    injected: usize,
}

#[derive(Clone)]
pub struct FaultProxy {
    pub url: String,
    state: Arc<Mutex<State>>,
}

/// Held while a DynamoDB call is forwarded, when the proxy serialises them (see
/// [`FaultProxy::start_serializing`]).
type Serializer = Option<Arc<tokio::sync::Mutex<()>>>;

type Upstream = Client<hyper_util::client::legacy::connect::HttpConnector, Full<Bytes>>;

impl FaultProxy {
    pub async fn start(upstream: &str) -> FaultProxy {
        Self::spawn(upstream, None).await
    }

    /// A proxy that also forwards DynamoDB calls one at a time. moto applies a
    /// transaction's condition checks and writes without any lock, so two concurrent
    /// transactions can both pass a `version` check; DynamoDB serialises them. Tests about
    /// races put this in front of moto to get DynamoDB's isolation.
    pub async fn start_serializing(upstream: &str) -> FaultProxy {
        Self::spawn(upstream, Some(Arc::new(tokio::sync::Mutex::new(())))).await
    }

    async fn spawn(upstream: &str, serializer: Serializer) -> FaultProxy {
        let listener = tokio::net::TcpListener::bind(SocketAddr::from(([127, 0, 0, 1], 0)))
            .await
            .unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let state = Arc::new(Mutex::new(State::default()));
        let client: Upstream = Client::builder(TokioExecutor::new()).build_http();
        let upstream = upstream.trim_end_matches('/').to_string();
        let shared = state.clone();
        tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    return;
                };
                let (state, client, upstream) = (shared.clone(), client.clone(), upstream.clone());
                let serializer = serializer.clone();
                tokio::spawn(async move {
                    let service = service_fn(move |req| {
                        forward(state.clone(), client.clone(), upstream.clone(), serializer.clone(), req)
                    });
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                });
            }
        });
        FaultProxy { url, state }
    }

    /// Fails the `step`-th AWS call from now on (every attempt of it) with `fault`.
    pub fn arm(&self, step: usize, fault: Fault) {
        *self.state.lock().unwrap() = State {
            armed: Some((Trigger::Step(step), fault)),
            ..State::default()
        };
    }

    /// Fails the first `operation` call (e.g. `TransactWriteItems`) from now on, every
    /// attempt of it, with `fault`.
    pub fn arm_operation(&self, operation: &str, fault: Fault) {
        *self.state.lock().unwrap() = State {
            armed: Some((Trigger::Operation(operation.to_string()), fault)),
            ..State::default()
        };
    }

    /// Starts counting calls without failing any.
    pub fn record(&self) {
        *self.state.lock().unwrap() = State::default();
    }

    /// The calls seen since `arm`/`record` (`service.Operation`), and how many attempts
    /// were faulted.
    pub fn calls(&self) -> (Vec<String>, usize) {
        let s = self.state.lock().unwrap();
        (s.calls.iter().map(|(_, op)| op.clone()).collect(), s.injected)
    }

    /// Holds back the next `operation` call (e.g. `DeleteSecret`) until [`Hold::release`]:
    /// the caller is left waiting for its answer meanwhile.
    pub fn hold_operation(&self, operation: &str) -> Hold {
        let hold = Hold::default();
        self.state.lock().unwrap().hold = Some((operation.to_string(), hold.clone()));
        hold
    }

    pub fn disarm(&self) {
        self.state.lock().unwrap().armed = None;
    }
}

enum Decision {
    Pass,
    Fail(Fault),
}

async fn forward(
    state: Arc<Mutex<State>>,
    client: Upstream,
    upstream: String,
    serializer: Serializer,
    req: Request<Incoming>,
) -> Result<Response<Full<Bytes>>, std::io::Error> {
    let (parts, body) = req.into_parts();
    let body = body.collect().await.map(|b| b.to_bytes()).unwrap_or_default();
    let header = |name: &str| {
        parts
            .headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_string()
    };
    let invocation = header("amz-sdk-invocation-id");
    let operation = header("x-amz-target");
    let decision = {
        let mut s = state.lock().unwrap();
        if !invocation.is_empty() && !s.calls.iter().any(|(id, _)| *id == invocation) {
            s.calls.push((invocation.clone(), operation.clone()));
            let seen = s.calls.len();
            if s.failing.is_none() && s.armed.as_ref().is_some_and(|(t, _)| t.fires(seen, &operation)) {
                s.failing = Some(invocation.clone());
            }
        }
        match (&s.failing, &s.armed) {
            (Some(id), Some((_, fault))) if *id == invocation => {
                let fault = *fault;
                s.injected += 1;
                Decision::Fail(fault)
            }
            _ => Decision::Pass,
        }
    };
    match decision {
        Decision::Fail(Fault::Throttle) => Ok(error(400, "ThrottlingException", "Rate exceeded")),
        Decision::Fail(Fault::ServerError) => Ok(error(500, "InternalServerError", "Injected failure")),
        Decision::Fail(Fault::Timeout) => {
            tokio::time::sleep(STALL).await;
            Ok(error(500, "InternalServerError", "Too late"))
        }
        // Returning an error makes hyper drop the connection without an answer.
        Decision::Fail(Fault::Dropped) => Err(std::io::Error::other("injected: connection dropped")),
        Decision::Pass => {
            let held = {
                let mut s = state.lock().unwrap();
                let matches = s
                    .hold
                    .as_ref()
                    .is_some_and(|(op, _)| operation.rsplit('.').next() == Some(op.as_str()));
                if matches {
                    s.hold.take().map(|(_, hold)| hold)
                } else {
                    None
                }
            };
            if let Some(hold) = held {
                hold.reached.notify_one();
                hold.release.notified().await;
            }
            let _turn = match &serializer {
                Some(lock) if operation.starts_with("DynamoDB") => Some(lock.lock().await),
                _ => None,
            };
            let uri = format!(
                "{upstream}{}",
                parts.uri.path_and_query().map(|p| p.as_str()).unwrap_or("/")
            );
            let mut out = Request::builder().method(parts.method.clone()).uri(uri);
            for (name, value) in &parts.headers {
                out = out.header(name, value);
            }
            let response = client
                .request(out.body(Full::new(body)).unwrap())
                .await
                .map_err(std::io::Error::other)?;
            let (parts, body) = response.into_parts();
            let body = body.collect().await.map(|b| b.to_bytes()).unwrap_or_default();
            Ok(Response::from_parts(parts, Full::new(body)))
        }
    }
}

fn error(status: u16, code: &str, message: &str) -> Response<Full<Bytes>> {
    let body = format!(r#"{{"__type":"{code}","message":"{message}"}}"#);
    Response::builder()
        .status(status)
        .header("content-type", "application/x-amz-json-1.0")
        .header("x-amzn-errortype", code)
        .body(Full::new(Bytes::from(body)))
        .unwrap()
}
