//! The HTTP layer every handler shares: routing, authentication, scopes, JSON in and out.

pub mod idempotency;
pub mod path;
pub mod request;
pub mod response;
pub mod router;

use std::collections::HashMap;
use std::future::Future;
use std::time::{Duration, Instant};

use lambda_http::http::header::{HeaderValue, AUTHORIZATION};
use lambda_http::{Body, Request, RequestExt, Response};
use serde_json::{json, Value};
use tracing::Instrument;

use crate::domain::api_key::Principal;
use crate::domain::connector::Connector;
use crate::domain::edits::{parse_edits, BodyKind};
use crate::domain::error::ApiError;
use crate::domain::versions::versions_view;
use crate::domain::view::project;
use crate::planted::{self, Defect};
use crate::ports::{DependencyError, HeldClaim, IdempotencyClaim, IdempotencyScope};
use crate::service::{parse_connector_type, CommitWitness, ConnectorRef, KeyClaim, Outcome};
use crate::{telemetry, App};

use request::{credentials_body, header, json_body, list_query, query_params, rollback_body};
use response::{empty_response, error_response, json_response, new_request_id};
use router::{route, Operation, RouteMatch};

/// Serves any route: what the local dev server calls.
pub async fn handle(app: &App, req: Request) -> Response<Body> {
    dispatch(app, None, req).await.0
}

/// Serves one operation: what a Lambda function calls. A request for another route (a
/// mis-wired API Gateway integration) is a 404, never served by the wrong function.
/// Writes one EMF metrics line per request.
pub async fn handle_operation(
    app: &App,
    operation: Operation,
    req: Request,
) -> Result<Response<Body>, lambda_http::Error> {
    let metrics = Measured::start(operation.function_name(), &req);
    let (response, request_id) = dispatch(app, Some(operation), req).await;
    metrics.finish(&app.settings.metric_namespace, &response, &request_id);
    Ok(response)
}

/// A write function's whole life inside Lambda: serves `operation`, and registers the
/// internal extension that lets each request publish and clear its events after its
/// answer ([`crate::after_answer`]). Where registering fails (a Runtime API without the
/// Extensions API), the work runs before the answer instead, and the function says why.
pub async fn run_function(app: App, operation: Operation) -> Result<(), lambda_http::Error> {
    // Lives as long as the process; the runtime's layers want a `'static` handler.
    let app: &'static App = Box::leak(Box::new(app));
    let handler = lambda_http::service_fn(move |req| handle_operation(app, operation, req));
    let tracker = std::sync::Arc::new(crate::after_answer::Tracker::default());
    // Before the runtime's first request for an event: registration closes then.
    match crate::after_answer::register(tracker.clone()).await {
        Ok(extension) => crate::after_answer::run(handler, tracker, extension).await,
        Err(e) => {
            tracing::warn!(reason = %e, "no internal extension: events are published before the answer");
            lambda_http::run(handler).await
        }
    }
}

/// Serves what no route matches: the function behind the REST API's fallback routes (each
/// method a routed path lacks, and `ANY` on `/`, `/v1`, `/{proxy+}`), so
/// that an unknown path (404) or a wrong method (405, with `Allow`) gets the envelope and a
/// request id, as from the dev server, instead of API Gateway's own `{"message":"Not
/// Found"}`. Routing is decided before authentication, so it needs no AWS client at all.
pub async fn handle_unrouted(req: Request) -> Result<Response<Body>, lambda_http::Error> {
    let metrics = Measured::start(UNROUTED_FUNCTION, &req);
    let request_id = new_request_id();
    let unrouted = async {
        let path = path::canonical(&req)?;
        Err(match route(req.method().as_str(), &path) {
            Err(error) => error,
            // API Gateway sends a route's own requests to that route's function; one that
            // arrives here anyway is not served by a function granted nothing.
            Ok(_) => ApiError::not_found("No such route on this function."),
        })
    };
    let response = answered(&req, &request_id, || unrouted).await;
    // This function builds no `App`; the namespace is its one setting, read once.
    static NAMESPACE: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    let namespace = NAMESPACE.get_or_init(|| crate::config::Settings::from_env().metric_namespace);
    metrics.finish(namespace, &response, &request_id);
    Ok(response)
}

/// The function (and binary) behind the fallback routes.
pub const UNROUTED_FUNCTION: &str = "fallback";

/// One EMF metrics line per request of a Lambda function.
struct Measured {
    function: &'static str,
    cold_start: bool,
    lambda_request_id: Option<String>,
    started: Instant,
}

impl Measured {
    fn start(function: &'static str, req: &Request) -> Self {
        Measured {
            function,
            cold_start: telemetry::take_cold_start(),
            lambda_request_id: req.lambda_context_ref().map(|c| c.request_id.clone()),
            started: Instant::now(),
        }
    }

    fn finish(self, namespace: &str, response: &Response<Body>, request_id: &str) {
        println!(
            "{}",
            telemetry::metric_line(
                namespace,
                self.function,
                response.status().as_u16(),
                self.started.elapsed().as_secs_f64() * 1000.0,
                self.cold_start,
                request_id,
                self.lambda_request_id.as_deref(),
                chrono::Utc::now().timestamp_millis(),
            )
        );
    }
}

async fn dispatch(app: &App, only: Option<Operation>, req: Request) -> (Response<Body>, String) {
    let request_id = new_request_id();
    let response = answered(&req, &request_id, || serve(app, only, &req, &request_id)).await;
    (response, request_id)
}

/// The answer to `req`: what `serve()` gives, or its error's envelope, with the request's
/// ids on every log line and one "request served" line. `serve` is called in here so that
/// its future is not held twice (a debug build's test threads have 2 MiB of stack).
async fn answered<F>(req: &Request, request_id: &str, serve: impl FnOnce() -> F) -> Response<Body>
where
    F: Future<Output = Result<(Response<Body>, Operation), ApiError>>,
{
    let lambda_request_id = req.lambda_context_ref().map(|c| c.request_id.clone());
    // At ERROR level so the ids stay on every line whatever RUST_LOG lets through (an
    // `info` span is dropped under RUST_LOG=warn, and its warnings lose their request).
    let span = tracing::error_span!("request", request_id = %request_id, lambda_request_id);
    async {
        let started = Instant::now();
        let (response, operation) = match serve().await {
            Ok((response, operation)) => (response, Some(operation)),
            Err(error) => {
                if error.status() >= 500 {
                    tracing::error!(code = error.code(), "request failed");
                }
                (error_response(&error, request_id), None)
            }
        };
        let status = response.status().as_u16();
        tracing::info!(
            method = %req.method(),
            operation = operation.map(Operation::function_name),
            status,
            latency_ms = started.elapsed().as_secs_f64() * 1000.0,
            "request served"
        );
        response
    }
    .instrument(span)
    .await
}

async fn serve(
    app: &App,
    only: Option<Operation>,
    req: &Request,
    request_id: &str,
) -> Result<(Response<Body>, Operation), ApiError> {
    let path = path::canonical(req)?;
    let RouteMatch { operation, connector } = route(req.method().as_str(), &path)?;
    // The cap holds on every route, whether or not the route reads a body.
    if req.body().len() > request::MAX_BODY_BYTES {
        return Err(ApiError::PayloadTooLarge);
    }
    // API Gateway's own reading of the path (`pathParameters`) must agree with ours: a
    // request it routed here by another reading is not served by this function.
    let delivered = req
        .path_parameters_ref()
        .and_then(|p| p.first("connector").map(str::to_owned));
    let disagrees = delivered.is_some_and(|d| connector.as_deref() != Some(d.as_str()));
    // A function serves the operations named for it (the credentials function serves
    // every credentials route).
    let foreign = only.is_some_and(|o| o.function_name() != operation.function_name());
    if foreign || (only.is_some() && disagrees) {
        return Err(ApiError::not_found("No such route on this function."));
    }
    // A write with an `Idempotency-Key` needs the fingerprint key: its first fetch in a
    // container runs beside the API key's lookup instead of after it. Its result is looked
    // at only where it is needed, so authentication and validation errors come first.
    let wants_fingerprint = operation.is_write() && req.headers().contains_key("idempotency-key");
    let (principal, fingerprint_key) =
        tokio::join!(app.service.authenticate(header(req, AUTHORIZATION.as_str())), async {
            match wants_fingerprint {
                true => Some(app.fingerprint_key.fingerprint_key().await),
                false => None,
            }
        });
    let principal = principal?;
    let params = query_params(req)?;
    let permanent = operation == Operation::Disconnect && permanent_flag(&params)?;
    let required = operation.scope(permanent);
    if !principal.has_scope(required) {
        return Err(ApiError::InsufficientScope { required });
    }
    let segment = connector.as_deref().unwrap_or("");
    // Read raw: a value that is not visible ASCII must be refused, not silently ignored.
    let idempotency_key = match req.headers().get("idempotency-key") {
        Some(raw) if operation.is_write() => Some(idempotency::validate_key(raw.to_str().unwrap_or(""))?),
        _ => None,
    };
    let Some(key) = idempotency_key else {
        let witness = CommitWitness::default();
        // Boxed (here and below): the operations' futures are large, and a debug build's
        // test threads have 2 MiB of stack.
        let work = Box::pin(run(app, operation, &principal, segment, params, permanent, req));
        let result = within_budget(app, req, witness.watch(work)).await;
        settle_if_cut(app, req, &result, &witness).await;
        let (status, body) = result?;
        return Ok((respond(status, body.as_ref(), request_id), operation));
    };
    let fingerprint_key = match fingerprint_key {
        Some(fetched) => fetched,
        None => app.fingerprint_key.fingerprint_key().await,
    }
    .map_err(fingerprint_key_failed)?;
    let fingerprint = idempotency::fingerprint(req, &fingerprint_key);
    let scope = IdempotencyScope {
        entity_id: principal.entity_id,
        livemode: principal.livemode,
    };
    match app
        .service
        .idempotency
        .claim(scope, key, &fingerprint, app.service.clock.now())
        .await?
    {
        IdempotencyClaim::Replay {
            status,
            body,
            follow_up,
        } => {
            // The first request committed but did not finish the secret work after it:
            // finish it first, so that the replayed answer is true of the secret too.
            if let Some(follow_up) = follow_up {
                within_budget(app, req, app.service.follow_up(follow_up)).await?;
            }
            let body: Option<Value> = serde_json::from_str(&body).ok();
            let mut response = respond(status, body.as_ref(), request_id);
            response
                .headers_mut()
                .insert("idempotent-replayed", HeaderValue::from_static("true"));
            Ok((response, operation))
        }
        IdempotencyClaim::Mismatch => Err(ApiError::Conflict {
            code: "idempotency_key_mismatch",
            hint: "This Idempotency-Key was used with a different request in the last 24 hours; use a new key.".into(),
        }),
        IdempotencyClaim::InProgress => Err(ApiError::Conflict {
            code: "conflict",
            hint: "A request with this Idempotency-Key is still in progress; retry shortly.".into(),
        }),
        IdempotencyClaim::Claimed { token } => {
            let witness = CommitWitness::for_claim(KeyClaim {
                scope,
                key: key.to_string(),
                token: token.clone(),
            });
            let work = Box::pin(run(app, operation, &principal, segment, params, permanent, req));
            let result = within_budget(app, req, witness.watch(work)).await;
            settle_if_cut(app, req, &result, &witness).await;
            // A committed write stored the key's answer in its own transaction (with the
            // secret work a replay redoes first). A success stores its answer here, with
            // no follow-up left: the secret work is done. An error after the commit (the
            // secret step, the deadline) leaves the stored answer alone, so a retry
            // replays it instead of running again against the new state. An error before
            // any commit releases the key: safe to re-execute, and a transient one
            // (429/503) must be retryable with the same key.
            let committed = result.is_err() && witness.committed().is_some();
            if committed {
                tracing::warn!("the change committed before the request failed; the key keeps its answer");
            }
            let store = &app.service.idempotency;
            let claim = HeldClaim {
                scope,
                key,
                token: &token,
            };
            let bookkeeping = async {
                match &result {
                    Ok((status, body)) => {
                        let text = body.as_ref().map(Value::to_string).unwrap_or_default();
                        store.complete(claim, *status, &text, None).await
                    }
                    Err(_) if committed => Ok(()),
                    Err(_) => store.release(claim).await,
                }
            };
            // Held to the deadline too: a request cut short because DynamoDB stalls would
            // otherwise stall here as well and be killed before it answers. A claim left
            // behind is freed by its lease.
            let saved = by(app, deadline_less(req, SEND_MARGIN), bookkeeping).await;
            let stored = match saved {
                Some(Ok(())) => true,
                Some(Err(e)) => {
                    tracing::warn!(failure = %e, "idempotency record not updated");
                    false
                }
                None => {
                    tracing::warn!("idempotency record not updated before the deadline; its lease frees the key");
                    false
                }
            };
            // A success that committed nothing (a no-op, a repeat) and whose answer could
            // not be stored is not given: once the lease passes, a retry with the key runs
            // again against whatever state is then, and may answer differently, so the
            // caller must not have seen this answer as the key's. A 503 says "retry"; a
            // committed success keeps the answer its transaction stored.
            if !stored && result.is_ok() && witness.committed().is_none() {
                return Err(ApiError::Unavailable(crate::domain::error::Dependency::DynamoDb));
            }
            let (status, body) = result?;
            Ok((respond(status, body.as_ref(), request_id), operation))
        }
    }
}

/// The answer when the fingerprint key cannot be had: the request can be retried (429 or
/// 503, with `Retry-After`), and a misconfiguration (no such secret, no grant) is a 503
/// too rather than a 500, since it is a dependency the caller cannot fix. The adapter
/// logged the failure by its error code; the key itself is never logged.
fn fingerprint_key_failed(e: DependencyError) -> ApiError {
    match e {
        DependencyError::Throttled(d) => ApiError::Throttled(d),
        DependencyError::Unavailable(d) | DependencyError::Rejected(d) => ApiError::Unavailable(d),
    }
}

fn respond(status: u16, body: Option<&Value>, request_id: &str) -> Response<Body> {
    match body {
        Some(body) => json_response(status, request_id, body),
        None => empty_response(status, request_id),
    }
}

/// `?permanent=true|false` on DELETE.
fn permanent_flag(params: &HashMap<String, String>) -> Result<bool, ApiError> {
    match params.get("permanent") {
        None => Ok(false),
        Some(value) => request::parse_bool("permanent", value),
    }
}

/// Time kept back from the invocation's deadline to answer (and release an
/// Idempotency-Key claim) after the operation is cut short.
const ANSWER_MARGIN: Duration = Duration::from_millis(1500);

/// Time kept back from the deadline when a cut operation's secret work is settled
/// ([`settle_if_cut`]): what remains is the bookkeeping's.
const SETTLE_MARGIN: Duration = Duration::from_millis(750);

/// Time kept back from the deadline to hand the answer to the runtime: what the
/// Idempotency-Key bookkeeping after the operation may not eat into.
const SEND_MARGIN: Duration = Duration::from_millis(250);

/// The moment `margin` before the Lambda invocation's deadline (epoch milliseconds);
/// `None` without one (the dev server, a context built by hand in tests).
fn deadline_less(req: &Request, margin: Duration) -> Option<i64> {
    let deadline_ms = i64::try_from(req.lambda_context_ref()?.deadline).ok()?;
    if deadline_ms == 0 {
        return None;
    }
    Some(deadline_ms.saturating_sub(margin.as_millis() as i64))
}

/// `work`'s output, or `None` if the app's clock reaches `until_ms` first (the future is
/// then dropped where it stands; the timer is looked at first, so a call still waiting
/// when the time is up is not made). The clock's timer, not tokio's: the simulator's
/// executor runs this path on its own clock.
async fn by<T>(app: &App, until_ms: Option<i64>, work: impl Future<Output = T>) -> Option<T> {
    // On the heap: an operation's future is large, and a debug build's test threads have
    // 2 MiB of stack.
    let work = Box::pin(work);
    let Some(until_ms) = until_ms else {
        return Some(work.await);
    };
    match futures::future::select(app.service.clock.sleep_until_ms(until_ms), work).await {
        futures::future::Either::Left(_) => None,
        futures::future::Either::Right((out, _)) => Some(out),
    }
}

/// Runs `work` (one operation: `None` as body means an empty response, 204; or a
/// replay's follow-up) until the invocation's deadline less [`ANSWER_MARGIN`], so that a
/// stalled AWS call ends in a 503 with the envelope instead of Lambda killing the
/// request mid-way. Cut short, it is a 503: whatever it did is safe to leave half-done
/// (the outbox and the sweeper finish it; the operations are safe to repeat; a committed
/// write's answer is already the key's), and [`settle_if_cut`] finishes its secret step.
async fn within_budget<T>(
    app: &App,
    req: &Request,
    work: impl Future<Output = Result<T, ApiError>>,
) -> Result<T, ApiError> {
    by(app, deadline_less(req, ANSWER_MARGIN), work)
        .await
        .unwrap_or_else(|| {
            tracing::warn!("request cut short at its deadline");
            Err(ApiError::OutOfTime)
        })
}

/// After a cut (503 at the deadline): the secret step the operation owed, in the time
/// kept back for answering. A restore, re-connect or credentials write cut after
/// reviving a disconnected connector's secret, and before its commit, would otherwise
/// leave it readable until the sweeper reaches the guard; one cut after its commit
/// would leave the secret behind its row until the outbox record is swept. What does
/// not finish by [`SETTLE_MARGIN`] is left to those.
async fn settle_if_cut<T>(app: &App, req: &Request, result: &Result<T, ApiError>, witness: &CommitWitness) {
    if !matches!(result, Err(ApiError::OutOfTime)) || planted::on(Defect::NoSettleWhenCut) {
        return;
    }
    let Some(owed) = witness.owed() else { return };
    match by(app, deadline_less(req, SETTLE_MARGIN), app.service.follow_up(owed)).await {
        Some(Ok(())) => {}
        Some(Err(e)) => tracing::warn!(code = e.code(), "a cut request's secret left for the sweeper"),
        None => tracing::warn!("a cut request's secret not settled before the deadline; left for the sweeper"),
    }
}

async fn run(
    app: &App,
    operation: Operation,
    principal: &Principal,
    segment: &str,
    params: HashMap<String, String>,
    permanent: bool,
    req: &Request,
) -> Result<(u16, Option<Value>), ApiError> {
    let service = &app.service;
    Ok(match operation {
        Operation::List => {
            let query = list_query(params)?;
            let page = service.list(principal, &query).await?;
            let data: Vec<Value> = page.rows.iter().map(project).collect();
            (
                200,
                Some(json!({"object": "list", "data": data, "has_more": page.has_more, "url": "/v1/integrations"})),
            )
        }
        Operation::Get => (
            200,
            Some(data(&service.get(principal, ConnectorRef::parse(segment)?).await?)),
        ),
        Operation::Connect => {
            let connector_type = parse_connector_type(segment)?;
            let body = json_body(req)?.unwrap_or_else(|| json!({}));
            let edits = parse_edits(connector_type, &body, BodyKind::Connect)?;
            let (row, outcome) = service.connect(principal, connector_type, &edits).await?;
            (if outcome == Outcome::Created { 201 } else { 200 }, Some(data(&row)))
        }
        Operation::Update => {
            let connector_type = parse_connector_type(segment)?;
            let body = json_body(req)?.unwrap_or_else(|| json!({}));
            let edits = parse_edits(connector_type, &body, BodyKind::Patch)?;
            (
                200,
                Some(data(&service.update(principal, connector_type, &edits).await?)),
            )
        }
        Operation::Credentials => {
            let connector_type = parse_connector_type(segment)?;
            let body = json_body(req)?.unwrap_or(Value::Null);
            let (credentials, webhook_secret) = credentials_body(body)?;
            // Boxed: the credentials steps make a large future, and a debug build's test
            // threads have 2 MiB of stack.
            let put =
                Box::pin(service.put_credentials(principal, connector_type, &credentials, webhook_secret.as_ref()));
            (200, Some(data(&put.await?)))
        }
        Operation::Disconnect if permanent => {
            service.purge(principal, ConnectorRef::parse(segment)?).await?;
            (204, None)
        }
        Operation::Disconnect => {
            let row = service.disconnect(principal, ConnectorRef::parse(segment)?).await?;
            (200, Some(data(&row)))
        }
        Operation::Restore => (
            200,
            Some(data(&service.restore(principal, parse_connector_type(segment)?).await?)),
        ),
        Operation::CredentialVersions => {
            let row = service.get(principal, ConnectorRef::parse(segment)?).await?;
            let url = format!("/v1/integrations/{segment}/credentials/versions");
            (
                200,
                Some(json!({"object": "list", "data": versions_view(&row), "has_more": false, "url": url})),
            )
        }
        Operation::Rollback => {
            let connector_type = parse_connector_type(segment)?;
            let version = rollback_body(json_body(req)?.unwrap_or(Value::Null))?;
            let row = service
                .roll_back_credentials(principal, connector_type, &version)
                .await?;
            (200, Some(data(&row)))
        }
        Operation::SyncReport => {
            let r = ConnectorRef::parse(segment)?;
            let body = json_body(req)?.unwrap_or_else(|| json!({}));
            (200, Some(data(&service.report_sync(principal, r, &body).await?)))
        }
    })
}

fn data(row: &Connector) -> Value {
    json!({ "data": project(row) })
}
