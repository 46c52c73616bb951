//! The Lambda Runtime API of one execution environment, on loopback: a function started
//! with `AWS_LAMBDA_RUNTIME_API` set to [`RuntimeApi::addr`] polls it for events
//! (`GET …/invocation/next`) and posts its answers back, as under Lambda. The bench times
//! the functions through it; a test drives `lambda_runtime` itself through it.
//!
//! It also plays the Extensions API as Lambda does for internal extensions: registration
//! (`POST /2020-01-01/extension/register`, open until the runtime first asks for an
//! event), and `GET /2020-01-01/extension/event/next`, which hands every registered
//! extension the same `INVOKE` event (request id, deadline) as the runtime. An invocation
//! is over only once the runtime has answered and the runtime and every extension have
//! asked for the next event ([`RuntimeApi::settled`]): that is when Lambda freezes the
//! environment, and until then it hands over no other event.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex as StdMutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use http_body_util::{BodyExt, Full};
use hyper::body::{Bytes, Incoming};
use hyper::{Method, Request, Response};
use serde_json::{json, Value};
use tokio::net::TcpListener;
use tokio::sync::{mpsc, Mutex, Notify};

use crate::loopback;

/// The deadline each invocation is given (the function holds its work to it).
const DEADLINE: Duration = Duration::from_secs(30);

/// How long [`RuntimeApi::invoke`] waits for an answer before it gives up.
const ANSWER_WITHIN: Duration = Duration::from_secs(60);

const FUNCTION_ARN: &str = "arn:aws:lambda:us-east-1:123456789012:function:local";
const TRACE_ID: &str = "Root=1-00000000-000000000000000000000000";

/// One invocation, as the Runtime API saw it.
pub struct Answer {
    /// When the event was handed over.
    pub sent: Instant,
    /// When the function posted its answer.
    pub at: Instant,
    pub body: Value,
}

/// An event handed over: to the runtime, and to every registered extension.
#[derive(Clone)]
struct Invocation {
    seq: u64,
    request_id: String,
    deadline_ms: u128,
    event: Value,
}

#[derive(Default)]
struct State {
    /// The last event handed over (`seq` counts from 1).
    current: Option<Invocation>,
    /// The last `seq` the runtime took, and the last one it has asked past (it asked for
    /// the next event after taking it).
    runtime_took: u64,
    runtime_done: u64,
    /// Per registered extension: the same two.
    extensions: HashMap<String, (u64, u64)>,
    /// The extensions that have asked for an event at least once.
    extensions_polled: std::collections::HashSet<String>,
    /// The registered extensions' names (unique).
    names: std::collections::HashSet<String>,
    /// Whether the runtime has asked for an event yet (registration closes then).
    first_poll: Option<Instant>,
    /// When the current invocation was over (everyone asked for the next event).
    settled: Option<(u64, Instant)>,
}

impl State {
    /// Records `settled` once the runtime and every extension have asked past `current`.
    fn check_settled(&mut self) {
        let Some(seq) = self.current.as_ref().map(|c| c.seq) else {
            return;
        };
        let everyone = self.runtime_done >= seq && self.extensions.values().all(|(_, done)| *done >= seq);
        if everyone && self.settled.is_none_or(|(s, _)| s < seq) {
            self.settled = Some((seq, Instant::now()));
        }
    }
}

struct Shared {
    state: StdMutex<State>,
    changed: Notify,
}

impl Shared {
    fn update<T>(&self, f: impl FnOnce(&mut State) -> T) -> T {
        let out = f(&mut self.state.lock().unwrap());
        self.changed.notify_waiters();
        out
    }

    /// Waits until `ready` finds what it waits for in the state.
    async fn wait_for<T>(&self, mut ready: impl FnMut(&mut State) -> Option<T>) -> T {
        loop {
            let changed = self.changed.notified();
            tokio::pin!(changed);
            changed.as_mut().enable();
            if let Some(v) = ready(&mut self.state.lock().unwrap()) {
                return v;
            }
            changed.await;
        }
    }
}

pub struct RuntimeApi {
    pub addr: SocketAddr,
    shared: Arc<Shared>,
    answers: Mutex<mpsc::Receiver<(Instant, Value)>>,
}

impl RuntimeApi {
    pub async fn start() -> RuntimeApi {
        let listener = TcpListener::bind(SocketAddr::from(([127, 0, 0, 1], 0))).await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (answered, answers) = mpsc::channel(16);
        let shared = Arc::new(Shared {
            state: StdMutex::new(State::default()),
            changed: Notify::new(),
        });
        let serving = shared.clone();
        tokio::spawn(loopback::serve(
            listener,
            loopback::plain,
            move |req: Request<Incoming>| {
                let (shared, answered) = (serving.clone(), answered.clone());
                async move { Ok::<_, hyper::Error>(route(&shared, &answered, req).await) }
            },
        ));
        RuntimeApi {
            addr,
            shared,
            answers: Mutex::new(answers),
        }
    }

    /// One invocation: once the one before is over (as Lambda hands over no event
    /// before), hands `event` over (to the runtime and every extension) and waits for the
    /// function's answer.
    pub async fn invoke(&self, event: &Value) -> Answer {
        if self.shared.state.lock().unwrap().current.is_some() {
            self.settled().await;
        }
        let sent = Instant::now();
        let deadline_ms = SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_millis() + DEADLINE.as_millis();
        self.shared.update(|s| {
            let seq = s.current.as_ref().map_or(1, |c| c.seq + 1);
            s.current = Some(Invocation {
                seq,
                request_id: uuid::Uuid::new_v4().to_string(),
                deadline_ms,
                event: event.clone(),
            });
        });
        let (at, body) = tokio::time::timeout(ANSWER_WITHIN, self.answers.lock().await.recv())
            .await
            .expect("the function answered in time")
            .expect("the Runtime API is up");
        Answer { sent, at, body }
    }

    /// When the last invocation was over: the runtime and every registered extension had
    /// asked for the next event. Lambda freezes the environment then.
    pub async fn settled(&self) -> Instant {
        let settled = self.shared.wait_for(|s| {
            let seq = s.current.as_ref()?.seq;
            s.settled.filter(|(settled, _)| *settled == seq).map(|(_, at)| at)
        });
        // Lambda would time the invocation out and reset the environment.
        tokio::time::timeout(ANSWER_WITHIN, settled)
            .await
            .expect("the runtime and every extension asked for the next event in time")
    }

    /// How many extensions registered.
    pub fn extensions(&self) -> usize {
        self.shared.state.lock().unwrap().extensions.len()
    }

    /// When the function first asked for an event: the end of its INIT phase.
    pub fn first_poll(&self) -> Option<Instant> {
        self.shared.state.lock().unwrap().first_poll
    }
}

async fn route(
    shared: &Shared,
    answered: &mpsc::Sender<(Instant, Value)>,
    req: Request<Incoming>,
) -> Response<Full<Bytes>> {
    let path = req.uri().path().to_string();
    let extension = req
        .headers()
        .get("lambda-extension-identifier")
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    let name = req
        .headers()
        .get("lambda-extension-name")
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    match (req.method(), path.as_str()) {
        (&Method::GET, "/2018-06-01/runtime/invocation/next") => runtime_next(shared).await,
        (&Method::POST, "/2020-01-01/extension/register") => {
            let body = req
                .into_body()
                .collect()
                .await
                .map(|b| b.to_bytes())
                .unwrap_or_default();
            register(shared, name, &body)
        }
        (&Method::GET, "/2020-01-01/extension/event/next") => match extension {
            Some(id) => extension_next(shared, id).await,
            None => respond(403, json!({"errorType": "Extension.MissingExtensionIdentifier"})),
        },
        // An extension's init or exit error: acknowledged, not an answer.
        (&Method::POST, "/2020-01-01/extension/init/error" | "/2020-01-01/extension/exit/error") => {
            respond(202, json!({}))
        }
        // The runtime's answer to the current invocation, or its init error.
        (&Method::POST, p) if is_answer(shared, p) => {
            let at = Instant::now();
            let bytes = req
                .into_body()
                .collect()
                .await
                .map(|b| b.to_bytes())
                .unwrap_or_default();
            let _ = answered
                .send((at, serde_json::from_slice(&bytes).unwrap_or(Value::Null)))
                .await;
            respond(202, json!({}))
        }
        _ => respond(404, json!({"errorType": "NotFound", "errorMessage": path})),
    }
}

/// `POST /2018-06-01/runtime/init/error`, or `…/invocation/{id}/response` or `/error` for
/// the invocation the runtime holds.
fn is_answer(shared: &Shared, path: &str) -> bool {
    if path == "/2018-06-01/runtime/init/error" {
        return true;
    }
    let Some(rest) = path.strip_prefix("/2018-06-01/runtime/invocation/") else {
        return false;
    };
    let Some((id, "response" | "error")) = rest.split_once('/') else {
        return false;
    };
    let state = shared.state.lock().unwrap();
    state
        .current
        .as_ref()
        .is_some_and(|c| c.request_id == id && c.seq == state.runtime_took)
}

/// `GET …/invocation/next`: the runtime is done with what it took; it gets the next event.
async fn runtime_next(shared: &Shared) -> Response<Full<Bytes>> {
    shared.update(|s| {
        s.first_poll.get_or_insert(Instant::now());
        s.runtime_done = s.runtime_took;
        s.check_settled();
    });
    // As Lambda: init ends, and the first event goes out, once every extension has asked
    // for one too.
    let invocation = shared
        .wait_for(|s| {
            let next = s.current.clone().filter(|c| c.seq > s.runtime_took)?;
            if s.runtime_took == 0 && !s.extensions_polled.is_superset(&s.extensions.keys().cloned().collect()) {
                return None;
            }
            s.runtime_took = next.seq;
            Some(next)
        })
        .await;
    let mut r = respond(200, invocation.event.clone());
    let h = r.headers_mut();
    h.insert("lambda-runtime-aws-request-id", invocation.request_id.parse().unwrap());
    h.insert(
        "lambda-runtime-deadline-ms",
        invocation.deadline_ms.to_string().parse().unwrap(),
    );
    h.insert("lambda-runtime-invoked-function-arn", FUNCTION_ARN.parse().unwrap());
    h.insert("lambda-runtime-trace-id", TRACE_ID.parse().unwrap());
    r
}

/// `POST /2020-01-01/extension/register`: open until the runtime first asks for an event.
/// Lambda's rules for an internal extension: a name, and `INVOKE` as its only event.
fn register(shared: &Shared, name: Option<String>, body: &[u8]) -> Response<Full<Bytes>> {
    let events: Vec<String> = serde_json::from_slice::<Value>(body)
        .ok()
        .and_then(|b| serde_json::from_value(b["events"].clone()).ok())
        .unwrap_or_default();
    if events.iter().any(|e| e != "INVOKE") {
        return respond(
            403,
            json!({"errorType": "Extension.InvalidEventType", "errorMessage": "ShutdownEventNotSupportedForInternalExtension"}),
        );
    }
    let Some(name) = name.filter(|n| !n.is_empty()) else {
        return respond(403, json!({"errorType": "Extension.MissingExtensionName"}));
    };
    let id = uuid::Uuid::new_v4().to_string();
    let refused = shared.update(|s| {
        if s.first_poll.is_some() {
            return Some("Extension.RegistrationClosed");
        }
        if !s.names.insert(name) {
            return Some("Extension.AlreadyRegistered");
        }
        // From the first event on, even one handed over before it registered.
        s.extensions.insert(id.clone(), (0, 0));
        None
    });
    if let Some(error) = refused {
        return respond(403, json!({"errorType": error}));
    }
    let mut r = respond(
        200,
        json!({"functionName": "local", "functionVersion": "$LATEST", "handler": "bootstrap"}),
    );
    r.headers_mut()
        .insert("lambda-extension-identifier", id.parse().unwrap());
    r
}

/// `GET /2020-01-01/extension/event/next`: the extension is done with what it got; it gets
/// the next `INVOKE` event.
async fn extension_next(shared: &Shared, id: String) -> Response<Full<Bytes>> {
    let known = shared.update(|s| match s.extensions.get_mut(&id) {
        Some((took, done)) => {
            *done = *took;
            s.extensions_polled.insert(id.clone());
            s.check_settled();
            true
        }
        None => false,
    });
    if !known {
        return respond(403, json!({"errorType": "Extension.UnknownExtensionIdentifier"}));
    }
    let invocation = shared
        .wait_for(|s| {
            let next = s.current.clone()?;
            let (took, _) = s.extensions.get_mut(&id)?;
            if next.seq <= *took {
                return None;
            }
            *took = next.seq;
            Some(next)
        })
        .await;
    respond(
        200,
        json!({
            "eventType": "INVOKE",
            "deadlineMs": invocation.deadline_ms as u64,
            "requestId": invocation.request_id,
            "invokedFunctionArn": FUNCTION_ARN,
            "tracing": {"type": "X-Amzn-Trace-Id", "value": TRACE_ID},
        }),
    )
}

fn respond(status: u16, body: impl Into<ResponseBody>) -> Response<Full<Bytes>> {
    Response::builder()
        .status(status)
        .body(Full::new(body.into().0))
        .unwrap()
}

/// A response body: JSON, or bytes as they are.
struct ResponseBody(Bytes);

impl From<Value> for ResponseBody {
    fn from(v: Value) -> Self {
        ResponseBody(v.to_string().into())
    }
}
