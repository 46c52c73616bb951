//! A fault-injecting HTTP proxy in front of the emulator. The service's real SDK clients
//! talk to it; it forwards everything to moto except one chosen AWS call (counted by the
//! SDK's `amz-sdk-invocation-id`, so every retry of that call fails too), which gets the
//! armed fault — chosen by its place among all calls, its operation, or its place among
//! that operation's calls ([`FaultProxy::arm_call`]). `LostAnswer` forwards the call and
//! then tells the client it failed, on the first attempt only (the call took effect). It can also hold one call until the test lets it go (to interleave another
//! request deterministically between two steps of an operation), and emulate Secrets
//! Manager's asynchronous deletion, which moto does not.

use std::collections::HashSet;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use connectors_infra::loopback;
use http_body_util::{BodyExt, Full};
use hyper::body::{Bytes, Incoming};
use hyper::{Request, Response};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use tokio::sync::oneshot;

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
    /// The call is forwarded and takes effect, but its answer is lost: the client gets a
    /// 500 `InternalServerError` instead. First attempt only: the SDK's retry of the same
    /// call goes through (and meets the effect of the first).
    LostAnswer,
    /// 400 `InvalidRequestException`, as Secrets Manager answers a change to a secret
    /// scheduled for deletion (the emulator accepts such changes).
    ScheduledSecret,
}

impl Fault {
    /// The faults under which a call does not take effect.
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
    /// Every call from the n-th on (0-based): a dependency browning out for good.
    From(usize),
    /// The n-th call (0-based) of this operation, named `Operation` or
    /// `service.Operation` (the `x-amz-target`, e.g. `secretsmanager.RestoreSecret`).
    Nth(String, usize),
}

/// Whether `target` (an `x-amz-target`) is the operation `name` (bare or with its service).
fn is_operation(target: &str, name: &str) -> bool {
    target == name || target.rsplit('.').next() == Some(name)
}

impl Trigger {
    /// Whether the call just seen — the `seen`-th (1-based), of `operation` — is the one.
    fn fires(&self, seen: usize, operation: &str, failing: &HashSet<String>, calls: &[(String, String)]) -> bool {
        match self {
            Trigger::Nth(op, n) => {
                is_operation(operation, op) && calls.iter().filter(|(_, o)| is_operation(o, op)).count() == n + 1
            }
            Trigger::Step(n) => failing.is_empty() && seen == n + 1,
            Trigger::Operation(op) => failing.is_empty() && operation.rsplit('.').next() == Some(op.as_str()),
            Trigger::From(n) => seen > *n,
        }
    }
}

#[derive(Default)]
struct State {
    /// Which call fails, and how.
    armed: Option<(Trigger, Fault)>,
    /// Distinct calls since arming, in order: (invocation id, service.operation).
    calls: Vec<(String, String)>,
    /// The invocations chosen to fail, once seen.
    failing: HashSet<String>,
    /// Faulted HTTP attempts, for the report.
    injected: usize,
    /// Invocations whose one faulted attempt is over (`LostAnswer`).
    spent: HashSet<String>,
    /// Retried attempts of calls the proxy did not fail: the client gave up on an answer
    /// of the emulator's own (a stall past its attempt timeout), not on an injected fault.
    unfaulted_retries: usize,
}

/// Behaviour set independently of the armed fault (`arm` and `record` leave it alone).
#[derive(Default)]
struct Hooks {
    /// The next call of this operation is held: `reached` is told when it arrives, and it
    /// waits for `release` (forwarded on `true`; dropped unanswered, never reaching the
    /// emulator, when the [`Hold`] goes without releasing it).
    hold: Option<(String, oneshot::Sender<()>, oneshot::Receiver<bool>)>,
    /// The next call of this operation is forwarded only after this delay, and counted
    /// like any other: the emulator being slow, not a fault.
    stall: Option<(String, Duration)>,
    /// Names of secrets force-deleted through this proxy, when Secrets Manager's
    /// asynchronous deletion is emulated (see [`FaultProxy::emulate_async_secret_deletion`]).
    deleting: Option<HashSet<String>>,
}

/// A call held at the proxy (see [`FaultProxy::hold`]).
pub struct Hold {
    reached: Option<oneshot::Receiver<()>>,
    release: Option<oneshot::Sender<bool>>,
}

impl Hold {
    /// Waits until the held call has arrived at the proxy (where it now waits).
    pub async fn reached(&mut self) {
        if let Some(reached) = self.reached.take() {
            reached.await.expect("the held call never arrived");
        }
    }

    /// Lets the held call through to the emulator.
    pub fn release(&mut self) {
        if let Some(release) = self.release.take() {
            let _ = release.send(true);
        }
    }
}

/// Dropped without `release`: the held call is dropped unanswered and never reaches the
/// emulator (as if the process making it had been killed before it was sent).
impl Drop for Hold {
    fn drop(&mut self) {
        if let Some(release) = self.release.take() {
            let _ = release.send(false);
        }
    }
}

#[derive(Clone)]
pub struct FaultProxy {
    pub url: String,
    state: Arc<Mutex<State>>,
    hooks: Arc<Mutex<Hooks>>,
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
        let hooks = Arc::new(Mutex::new(Hooks::default()));
        let client: Upstream = Client::builder(TokioExecutor::new()).build_http();
        let upstream = upstream.trim_end_matches('/').to_string();
        let (shared, shared_hooks) = (state.clone(), hooks.clone());
        tokio::spawn(loopback::serve(listener, loopback::plain, move |req| {
            let (state, client, upstream) = (shared.clone(), client.clone(), upstream.clone());
            forward(state, shared_hooks.clone(), client, upstream, serializer.clone(), req)
        }));
        FaultProxy { url, state, hooks }
    }

    /// Holds the next `operation` call (e.g. `CreateSecret`) at the proxy until the
    /// returned [`Hold`] releases it: another request can then run between the step
    /// before it and the call itself, deterministically.
    pub fn hold(&self, operation: &str) -> Hold {
        let (reached_tx, reached_rx) = oneshot::channel();
        let (release_tx, release_rx) = oneshot::channel();
        self.hooks.lock().unwrap().hold = Some((operation.to_string(), reached_tx, release_rx));
        Hold {
            reached: Some(reached_rx),
            release: Some(release_tx),
        }
    }

    /// Forwards the next `operation` call (e.g. `GetItem`) only after `delay`, as a slow
    /// emulator would answer it; the call is not faulted (see
    /// [`FaultProxy::unfaulted_retries`]).
    pub fn stall(&self, operation: &str, delay: Duration) {
        self.hooks.lock().unwrap().stall = Some((operation.to_string(), delay));
    }

    /// Emulates Secrets Manager's asynchronous deletion, which moto lacks (it deletes at
    /// once): after `DeleteSecret` with `ForceDeleteWithoutRecovery`, AWS removes the
    /// secret in the background, and until it is gone, creating a secret of that name (or
    /// writing, restoring or reading it) fails with `InvalidRequestException` ("a secret
    /// with this name is already scheduled for deletion"). Here the name stays refused for
    /// the proxy's lifetime.
    pub fn emulate_async_secret_deletion(&self) {
        self.hooks.lock().unwrap().deleting = Some(HashSet::new());
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

    /// Fails the `nth` (0-based) `operation` call from now on with `fault`; `operation` is
    /// bare (`PutItem`) or names its service too (`secretsmanager.RestoreSecret`).
    pub fn arm_call(&self, operation: &str, nth: usize, fault: Fault) {
        *self.state.lock().unwrap() = State {
            armed: Some((Trigger::Nth(operation.to_string(), nth), fault)),
            ..State::default()
        };
    }

    /// Fails every AWS call from the `step`-th on (every attempt of each) with `fault`.
    pub fn arm_from(&self, step: usize, fault: Fault) {
        *self.state.lock().unwrap() = State {
            armed: Some((Trigger::From(step), fault)),
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

    /// How many attempts since `arm`/`record` retried a call the proxy let through: the
    /// emulator itself was too slow (or failed), so the run is not the one the test
    /// planned — its calls may differ from a quiet run's.
    pub fn unfaulted_retries(&self) -> usize {
        self.state.lock().unwrap().unfaulted_retries
    }

    pub fn disarm(&self) {
        self.state.lock().unwrap().armed = None;
    }
}

enum Decision {
    Pass,
    Fail(Fault),
}

/// The Secrets Manager calls refused while their secret's name is still being deleted.
const REFUSED_WHILE_DELETING: [&str; 6] = [
    "CreateSecret",
    "PutSecretValue",
    "RestoreSecret",
    "UpdateSecret",
    "GetSecretValue",
    "TagResource",
];

/// The secret a Secrets Manager request names (`Name` on create, `SecretId` otherwise).
fn secret_named(body: &Bytes) -> Option<String> {
    let json: serde_json::Value = serde_json::from_slice(body).ok()?;
    json.get("SecretId")
        .or_else(|| json.get("Name"))
        .and_then(|v| v.as_str())
        .map(str::to_string)
}

async fn forward(
    state: Arc<Mutex<State>>,
    hooks: Arc<Mutex<Hooks>>,
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
    let operation_name = operation.rsplit('.').next().unwrap_or("").to_string();
    let held = {
        let mut h = hooks.lock().unwrap();
        let due = h.hold.as_ref().is_some_and(|(op, _, _)| *op == operation_name);
        if due {
            h.hold.take()
        } else {
            None
        }
    };
    if let Some((_, reached, release)) = held {
        let _ = reached.send(());
        if release.await != Ok(true) {
            return Err(std::io::Error::other("held call dropped: its caller was killed"));
        }
    }
    let secrets = operation.starts_with("secretsmanager.");
    let secret = secrets.then(|| secret_named(&body)).flatten();
    let refused = {
        let h = hooks.lock().unwrap();
        match (&h.deleting, &secret) {
            (Some(names), Some(name)) => {
                names.contains(name) && REFUSED_WHILE_DELETING.contains(&operation_name.as_str())
            }
            _ => false,
        }
    };
    if refused {
        let message = if operation_name == "CreateSecret" {
            "You can't create this secret because a secret with this name is already scheduled for deletion."
        } else {
            "You can't perform this operation on the secret because it was marked for deletion."
        };
        return Ok(error(400, "InvalidRequestException", message));
    }
    let force_delete = operation_name == "DeleteSecret"
        && serde_json::from_slice::<serde_json::Value>(&body)
            .ok()
            .and_then(|j| j.get("ForceDeleteWithoutRecovery").and_then(|v| v.as_bool()))
            == Some(true);
    let decision = {
        let mut s = state.lock().unwrap();
        let seen_before = s.calls.iter().any(|(id, _)| *id == invocation);
        if seen_before && !s.failing.contains(&invocation) {
            s.unfaulted_retries += 1;
        }
        if !invocation.is_empty() && !seen_before {
            s.calls.push((invocation.clone(), operation.clone()));
            let seen = s.calls.len();
            if s.armed
                .as_ref()
                .is_some_and(|(t, _)| t.fires(seen, &operation, &s.failing, &s.calls))
            {
                s.failing.insert(invocation.clone());
            }
        }
        match &s.armed {
            Some((_, fault)) if s.failing.contains(&invocation) && !s.spent.contains(&invocation) => {
                let fault = *fault;
                s.injected += 1;
                if fault == Fault::LostAnswer {
                    s.spent.insert(invocation.clone());
                }
                Decision::Fail(fault)
            }
            _ => Decision::Pass,
        }
    };
    match decision {
        Decision::Fail(Fault::Throttle) => Ok(error(400, "ThrottlingException", "Rate exceeded")),
        Decision::Fail(Fault::ServerError) => Ok(error(500, "InternalServerError", "Injected failure")),
        Decision::Fail(Fault::ScheduledSecret) => Ok(error(
            400,
            "InvalidRequestException",
            "You can't perform this operation on the secret because it was marked for deletion.",
        )),
        Decision::Fail(Fault::Timeout) => {
            tokio::time::sleep(STALL).await;
            Ok(error(500, "InternalServerError", "Too late"))
        }
        // Returning an error makes hyper drop the connection without an answer.
        Decision::Fail(Fault::Dropped) => Err(std::io::Error::other("injected: connection dropped")),
        Decision::Pass | Decision::Fail(Fault::LostAnswer) => {
            let stall = {
                let mut h = hooks.lock().unwrap();
                match &h.stall {
                    Some((op, _)) if *op == operation_name => h.stall.take().map(|(_, delay)| delay),
                    _ => None,
                }
            };
            if let Some(delay) = stall {
                tokio::time::sleep(delay).await;
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
            if force_delete && parts.status.is_success() {
                if let (Some(names), Some(name)) = (&mut hooks.lock().unwrap().deleting, secret) {
                    names.insert(name);
                }
            }
            if matches!(decision, Decision::Fail(Fault::LostAnswer)) {
                return Ok(error(500, "InternalServerError", "Injected: the answer was lost"));
            }
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
