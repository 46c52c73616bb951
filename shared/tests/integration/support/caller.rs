//! Typed requests: who calls (`h.as_key(&key)`, `h.anonymous()`), with which extra
//! headers, and one method per route of openapi.yaml:
//!
//! ```text
//! h.as_key(&key).post("stripe", Some(json!({"display_name": "Payments"}))).await
//! h.as_key(&key).idempotency_key("k1").put_credentials("stripe", json!({...})).await
//! h.as_key(&key).list("?limit=2").await
//! h.anonymous().get("stripe").await
//! ```
//!
//! `send` is the raw form, for requests that are deliberately odd (unrouted paths,
//! methods no route has, a body where none belongs).

use std::fmt::Display;
use std::future::Future;

use lambda_http::Request;
use serde_json::Value;
use shared::App;

use super::{request, Harness, Reply};

const BASE: &str = "/v1/integrations";

/// A caller of the API: a Bearer key or none, extra headers, and the app that serves it
/// (the harness's own unless [`Caller::via`] names another).
pub struct Caller<'a> {
    h: &'a Harness,
    key: Option<&'a str>,
    headers: Vec<(String, String)>,
    app: Option<&'a App>,
}

impl Harness {
    /// Requests that carry `Authorization: Bearer <key>`.
    pub fn as_key<'a>(&'a self, key: &'a str) -> Caller<'a> {
        self.caller(Some(key))
    }

    /// Requests without `Authorization`.
    pub fn anonymous(&self) -> Caller<'_> {
        self.caller(None)
    }

    /// Requests with a key or without, as `key` says (for keys chosen at run time).
    pub fn caller<'a>(&'a self, key: Option<&'a str>) -> Caller<'a> {
        Caller {
            h: self,
            key,
            headers: Vec::new(),
            app: None,
        }
    }
}

impl<'a> Caller<'a> {
    /// An extra header on every request of this caller.
    pub fn header(mut self, name: &str, value: &str) -> Self {
        self.headers.push((name.to_string(), value.to_string()));
        self
    }

    pub fn idempotency_key(self, key: &str) -> Self {
        self.header("idempotency-key", key)
    }

    /// Served by `app` (e.g. one whose clients go through a fault proxy) against the
    /// harness's resources, instead of by the harness's own app.
    pub fn via(mut self, app: &'a App) -> Self {
        self.app = Some(app);
        self
    }

    /// The request this caller sends, as API Gateway would hand it over.
    pub fn request(&self, method: &str, path: &str, body: Option<Value>) -> Request {
        let headers: Vec<(&str, &str)> = self.headers.iter().map(|(n, v)| (n.as_str(), v.as_str())).collect();
        request(method, path, self.key, &headers, body)
    }

    /// Any method and path: the raw form, for requests no route method fits. The request
    /// is built at once, so the answer's future borrows the harness, not this caller
    /// (`(0..6).map(|_| h.as_key(&key).post(..))` works).
    pub fn send(&self, method: &str, path: &str, body: Option<Value>) -> impl Future<Output = Reply> + use<'a> {
        let req = self.request(method, path, body);
        let (h, app) = (self.h, self.app.unwrap_or(&self.h.app));
        // Boxed: a test awaiting many requests would otherwise hold each one's (large)
        // future in its own, and outgrow a debug test thread's stack.
        Box::pin(async move { h.send_via(app, req).await })
    }

    /// `GET /v1/integrations{query}`, `query` empty or starting with `?`.
    pub fn list(&self, query: &str) -> impl Future<Output = Reply> + use<'a> {
        self.send("GET", &format!("{BASE}{query}"), None)
    }

    /// `GET /v1/integrations/{connector}` (a type or a connector id).
    pub fn get<C: Display>(&self, connector: C) -> impl Future<Output = Reply> + use<'a, C> {
        self.send("GET", &format!("{BASE}/{connector}"), None)
    }

    /// `POST /v1/integrations/{connector}`: connect, with a body or without.
    pub fn post<C: Display>(&self, connector: C, body: Option<Value>) -> impl Future<Output = Reply> + use<'a, C> {
        self.send("POST", &format!("{BASE}/{connector}"), body)
    }

    /// `PATCH /v1/integrations/{connector}`.
    pub fn patch<C: Display>(&self, connector: C, body: Value) -> impl Future<Output = Reply> + use<'a, C> {
        self.send("PATCH", &format!("{BASE}/{connector}"), Some(body))
    }

    /// `PUT /v1/integrations/{connector}/credentials`.
    pub fn put_credentials<C: Display>(&self, connector: C, body: Value) -> impl Future<Output = Reply> + use<'a, C> {
        self.send("PUT", &format!("{BASE}/{connector}/credentials"), Some(body))
    }

    /// `DELETE /v1/integrations/{connector}`: disconnect.
    pub fn delete<C: Display>(&self, connector: C) -> impl Future<Output = Reply> + use<'a, C> {
        self.send("DELETE", &format!("{BASE}/{connector}"), None)
    }

    /// `DELETE /v1/integrations/{connector}?permanent=true`.
    pub fn purge<C: Display>(&self, connector: C) -> impl Future<Output = Reply> + use<'a, C> {
        self.send("DELETE", &format!("{BASE}/{connector}?permanent=true"), None)
    }

    /// `GET /v1/integrations/{connector}/credentials/versions`.
    pub fn versions<C: Display>(&self, connector: C) -> impl Future<Output = Reply> + use<'a, C> {
        self.send("GET", &format!("{BASE}/{connector}/credentials/versions"), None)
    }

    /// `POST /v1/integrations/{connector}/credentials/rollback` with `{"version": …}`.
    pub fn roll_back<C: Display>(&self, connector: C, version: &str) -> impl Future<Output = Reply> + use<'a, C> {
        let body = serde_json::json!({ "version": version });
        self.send("POST", &format!("{BASE}/{connector}/credentials/rollback"), Some(body))
    }

    /// `POST /v1/integrations/{connector}/sync-reports`.
    pub fn sync_report<C: Display>(&self, connector: C, body: Value) -> impl Future<Output = Reply> + use<'a, C> {
        self.send("POST", &format!("{BASE}/{connector}/sync-reports"), Some(body))
    }

    /// `POST /v1/integrations/{connector}/restore`.
    pub fn restore<C: Display>(&self, connector: C) -> impl Future<Output = Reply> + use<'a, C> {
        self.send("POST", &format!("{BASE}/{connector}/restore"), None)
    }
}
