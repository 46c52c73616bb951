//! The dev server's request handling (`connectors-dev`): each request handed, as hyper
//! parsed it, to the same `shared::http` code the Lambda functions run (all routes in one
//! process). A library module so that the tests serve through it exactly as `make dev` does.

use std::convert::Infallible;
use std::sync::Arc;

use http_body_util::{BodyExt, Full, Limited};
use hyper::body::{Bytes, Incoming};
use shared::http::request::MAX_BODY_BYTES;
use shared::App;

use crate::loopback;

/// Read at most one byte past the API's cap so the shared layer answers 413 itself.
const READ_LIMIT: usize = MAX_BODY_BYTES + 1;

pub async fn serve(app: Arc<App>, req: hyper::Request<Incoming>) -> Result<hyper::Response<Full<Bytes>>, Infallible> {
    let (parts, body) = req.into_parts();
    let (bytes, unread) = match Limited::new(body, READ_LIMIT).collect().await {
        Ok(collected) => (collected.to_bytes().to_vec(), false),
        // Over the limit (or a broken connection): hand on a body the shared layer rejects.
        Err(_) => (vec![b' '; READ_LIMIT], true),
    };
    let body = if bytes.is_empty() {
        lambda_http::Body::Empty
    } else {
        lambda_http::Body::Binary(bytes)
    };
    let response = shared::http::handle(&app, lambda_http::http::Request::from_parts(parts, body)).await;
    let (mut parts, body) = response.into_parts();
    if unread {
        // The rest of the body is never read, so the connection cannot carry another
        // request: say so, or a client reusing it finds it closed under its next request.
        parts.headers.insert(
            hyper::header::CONNECTION,
            hyper::header::HeaderValue::from_static("close"),
        );
    }
    Ok(hyper::Response::from_parts(
        parts,
        Full::new(Bytes::copy_from_slice(body.as_ref())),
    ))
}

/// Serves the API on `listener` until accepting fails.
pub async fn run(listener: tokio::net::TcpListener, app: Arc<App>) -> std::io::Error {
    loopback::serve(listener, loopback::plain, move |req| serve(app.clone(), req)).await
}
