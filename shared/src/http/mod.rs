//! The HTTP layer every handler shares: routing, authentication, scopes, JSON in and out.

pub mod request;
pub mod response;
pub mod router;

use std::time::Instant;

use lambda_http::http::header::AUTHORIZATION;
use lambda_http::{Body, Request, Response};
use serde_json::{json, Value};
use tracing::Instrument;

use crate::domain::connector::Connector;
use crate::domain::edits::{parse_edits, BodyKind, EditError};
use crate::domain::error::ApiError;
use crate::domain::view::project;
use crate::service::{parse_connector_type, ConnectorRef, Outcome};
use crate::App;

use request::{header, json_body, list_query, query_params};
use response::{error_response, json_response, new_request_id};
use router::{route, Operation, RouteMatch};

/// Serves any route: what the local dev server calls.
pub async fn handle(app: &App, req: Request) -> Response<Body> {
    dispatch(app, None, req).await
}

/// Serves one operation: what a Lambda function calls. A request for another route (a
/// mis-wired API Gateway integration) is a 404, never served by the wrong function.
pub async fn handle_operation(
    app: &App,
    operation: Operation,
    req: Request,
) -> Result<Response<Body>, lambda_http::Error> {
    Ok(dispatch(app, Some(operation), req).await)
}

async fn dispatch(app: &App, only: Option<Operation>, req: Request) -> Response<Body> {
    let request_id = new_request_id();
    let span = tracing::info_span!("request", request_id = %request_id);
    async {
        let started = Instant::now();
        let (response, operation) = match serve(app, only, &req, &request_id).await {
            Ok((response, operation)) => (response, Some(operation)),
            Err(error) => (error_response(&error, &request_id), None),
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
    let RouteMatch {
        operation,
        connector,
    } = route(req.method().as_str(), req.uri().path())?;
    if only.is_some_and(|o| o != operation) {
        return Err(ApiError::not_found("No such route on this function."));
    }
    let principal = app
        .service
        .authenticate(header(req, AUTHORIZATION.as_str()))
        .await?;
    let required = operation.scope();
    if !principal.has_scope(required) {
        return Err(ApiError::InsufficientScope { required });
    }
    let segment = connector.as_deref().unwrap_or("");
    let service = &app.service;
    let (status, body) = match operation {
        Operation::List => {
            let query = list_query(query_params(req)?)?;
            let page = service.list(&principal, &query).await?;
            let data: Vec<Value> = page.rows.iter().map(project).collect();
            (
                200,
                json!({"object": "list", "data": data, "has_more": page.has_more, "url": "/v1/integrations"}),
            )
        }
        Operation::Get => (
            200,
            data(
                &service
                    .get(&principal, ConnectorRef::parse(segment)?)
                    .await?,
            ),
        ),
        Operation::Connect => {
            let connector_type = parse_connector_type(segment)?;
            let body = json_body(req)?.unwrap_or_else(|| json!({}));
            let edits =
                parse_edits(connector_type, &body, BodyKind::Connect).map_err(edit_error)?;
            let (row, outcome) = service.connect(&principal, connector_type, &edits).await?;
            (
                if outcome == Outcome::Created {
                    201
                } else {
                    200
                },
                data(&row),
            )
        }
        Operation::Credentials => {
            let connector_type = parse_connector_type(segment)?;
            let body = json_body(req)?.unwrap_or(Value::Null);
            let (credentials, webhook_secret) = credentials_body(&body)?;
            (
                200,
                data(
                    &service
                        .put_credentials(&principal, connector_type, credentials, webhook_secret)
                        .await?,
                ),
            )
        }
        Operation::Disconnect => {
            let (row, _) = service
                .disconnect(&principal, ConnectorRef::parse(segment)?)
                .await?;
            (200, data(&row))
        }
    };
    Ok((json_response(status, request_id, &body), operation))
}

fn data(row: &Connector) -> Value {
    json!({ "data": project(row) })
}

fn edit_error(e: EditError) -> ApiError {
    if e.forbidden {
        ApiError::unprocessable(e.param, e.message)
    } else {
        ApiError::bad_request(e.param, e.message)
    }
}

/// `{"credentials": {…}, "webhook_secret": "…"}` and nothing else.
fn credentials_body(body: &Value) -> Result<(&Value, Option<&Value>), ApiError> {
    let Value::Object(map) = body else {
        return Err(ApiError::bad_request(
            "body",
            "Send a JSON object: {\"credentials\": {…}, \"webhook_secret\": \"…\"}.",
        ));
    };
    if let Some(other) = map
        .keys()
        .find(|k| *k != "credentials" && *k != "webhook_secret")
    {
        let other = request::printable(other);
        return Err(if other == "entity_id" {
            ApiError::unprocessable(
                "entity_id",
                "`entity_id` comes from the API key and may not be sent.",
            )
        } else {
            ApiError::bad_request(
                other.clone(),
                format!("Unknown parameter `{other}`; accepted: credentials, webhook_secret."),
            )
        });
    }
    let credentials = map
        .get("credentials")
        .ok_or_else(|| ApiError::unprocessable("credentials", "`credentials` is required."))?;
    Ok((credentials, map.get("webhook_secret")))
}
