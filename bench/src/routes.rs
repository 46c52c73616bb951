//! The routes `make bench` measures, as data: which function serves each, the request
//! it sends for the n-th call, and the state its rows must be in first. Every route seeds
//! its own rows for a fresh entity, so any subset (`BENCH_ONLY`) runs on its own.

use serde_json::{json, Value};
use shared::domain::api_key::Scope;
use shared::domain::catalog::ConnectorType;
use shared::domain::ids::EntityId;

/// What a route's connector rows must be before it runs.
#[derive(Clone, Copy, PartialEq)]
pub enum Needs {
    Nothing,
    /// Connected, with credentials (as a real connector has: the secret is one more call).
    Connected,
    /// Connected with credentials, then disconnected.
    Disconnected,
}

pub struct Route {
    /// The name `BENCH_ONLY` and the result lines use.
    pub name: &'static str,
    /// The function (binary) that serves it.
    pub function: &'static str,
    pub method: &'static str,
    /// `true`: the n-th call acts on the n-th connector type of [`TYPES`]; `false`: on
    /// `stripe` every time.
    pub one_type_per_call: bool,
    pub suffix: &'static str,
    pub query: &'static str,
    pub body: fn(usize) -> Option<Value>,
    pub status: u16,
    pub needs: Needs,
    /// Reads are measured over `BENCH_ITERATIONS` warm calls; the others over one call per
    /// connector type.
    pub read: bool,
}

/// Connector types the one-type-per-call routes walk: the cold call takes the first, the
/// n-th warm call the n-th.
pub const TYPES: [&str; 11] = [
    "avatax",
    "shippo",
    "printnode",
    "postmark",
    "shopify",
    "mapquest",
    "google",
    "openai",
    "plaid",
    "ups",
    "fedex",
];
pub const WRITE_CALLS: usize = TYPES.len() - 1;

fn none(_: usize) -> Option<Value> {
    None
}

pub const ROUTES: [Route; 8] = [
    Route {
        name: "get",
        function: "get",
        method: "GET",
        one_type_per_call: false,
        suffix: "",
        query: "",
        body: none,
        status: 200,
        needs: Needs::Connected,
        read: true,
    },
    Route {
        name: "list",
        function: "list",
        method: "GET",
        one_type_per_call: false,
        suffix: "",
        query: "limit=20",
        body: none,
        status: 200,
        needs: Needs::Connected,
        read: true,
    },
    Route {
        name: "update",
        function: "update",
        method: "PATCH",
        one_type_per_call: false,
        suffix: "",
        query: "",
        body: |i| Some(json!({ "display_name": format!("n{i}") })),
        status: 200,
        needs: Needs::Connected,
        read: false,
    },
    Route {
        name: "credentials",
        function: "credentials",
        method: "PUT",
        one_type_per_call: false,
        suffix: "/credentials",
        query: "",
        body: |i| Some(json!({ "credentials": { "secret_key": format!("sk_{i}") } })),
        status: 200,
        needs: Needs::Connected,
        read: false,
    },
    Route {
        name: "connect",
        function: "connect",
        method: "POST",
        one_type_per_call: true,
        suffix: "",
        query: "",
        body: none,
        status: 201,
        needs: Needs::Nothing,
        read: false,
    },
    Route {
        name: "disconnect",
        function: "disconnect",
        method: "DELETE",
        one_type_per_call: true,
        suffix: "",
        query: "",
        body: none,
        status: 200,
        needs: Needs::Connected,
        read: false,
    },
    Route {
        name: "restore",
        function: "restore",
        method: "POST",
        one_type_per_call: true,
        suffix: "/restore",
        query: "",
        body: none,
        status: 200,
        needs: Needs::Disconnected,
        read: false,
    },
    Route {
        name: "purge",
        function: "disconnect",
        method: "DELETE",
        one_type_per_call: true,
        suffix: "",
        query: "permanent=true",
        body: none,
        status: 204,
        needs: Needs::Connected,
        read: false,
    },
];

impl Route {
    fn connector(&self, call: usize) -> &'static str {
        if self.one_type_per_call {
            TYPES[call]
        } else {
            "stripe"
        }
    }

    /// The API Gateway (HTTP API) event of the `call`-th call.
    pub fn event(&self, call: usize, key: &str) -> Value {
        let path = match self.name {
            "list" => "/v1/integrations".to_string(),
            _ => format!("/v1/integrations/{}{}", self.connector(call), self.suffix),
        };
        let path = if self.query.is_empty() {
            path
        } else {
            format!("{path}?{}", self.query)
        };
        let body = (self.body)(call);
        connectors_infra::api_gateway::ApiEvent::new(self.method, &path)
            .key(key)
            .body(body.as_ref())
            .rest_api()
    }

    /// A fresh entity whose rows are ready for calls `0..calls`, and its key (all scopes).
    /// Seeding is not measured: when the emulator refuses a step (it does, now and then,
    /// under a long run), it starts over with another entity, three times at most.
    pub async fn prepare(&self, app: &shared::App, calls: usize) -> (EntityId, String) {
        for attempt in 1..=3 {
            match self.try_prepare(app, calls).await {
                Ok(ready) => return ready,
                Err(step) => eprintln!("seeding {} (attempt {attempt}): {step}", self.name),
            }
        }
        panic!("seeding {} failed three times", self.name);
    }

    async fn try_prepare(&self, app: &shared::App, calls: usize) -> Result<(EntityId, String), String> {
        let (entity, key) = new_key(app).await?;
        let types: std::collections::BTreeSet<&str> = (0..calls).map(|c| self.connector(c)).collect();
        for t in types {
            if self.needs != Needs::Nothing {
                seed(app, &key, "POST", &format!("/v1/integrations/{t}"), None, 201).await?;
                let entry = ConnectorType::parse(t).unwrap().entry();
                let credentials: serde_json::Map<String, Value> =
                    entry.required.iter().map(|k| (k.to_string(), json!("bench"))).collect();
                let body = json!({ "credentials": credentials });
                seed(
                    app,
                    &key,
                    "PUT",
                    &format!("/v1/integrations/{t}/credentials"),
                    Some(body),
                    200,
                )
                .await?;
            }
            if self.needs == Needs::Disconnected {
                seed(app, &key, "DELETE", &format!("/v1/integrations/{t}"), None, 200).await?;
            }
        }
        Ok((entity, key))
    }
}

/// A new entity and a live key of it with every scope.
pub async fn new_key(app: &shared::App) -> Result<(EntityId, String), String> {
    let entity = EntityId::new_random();
    let key = shared::admin::create_key(app, entity, Scope::ALL.into(), true, None)
        .await
        .map_err(|e| format!("creating a key: {e:?}"))?
        .plaintext;
    Ok((entity, key))
}

/// One request through the shared HTTP layer in this process (not measured).
pub async fn seed(
    app: &shared::App,
    key: &str,
    method: &str,
    path: &str,
    body: Option<Value>,
    status: u16,
) -> Result<(), String> {
    let mut b = lambda_http::http::Request::builder()
        .method(method)
        .uri(path)
        .header("authorization", format!("Bearer {key}"));
    let body = match body {
        Some(v) => {
            b = b.header("content-type", "application/json");
            lambda_http::Body::Text(v.to_string())
        }
        None => lambda_http::Body::Empty,
    };
    let got = shared::http::handle(app, b.body(body).unwrap()).await.status();
    if got != status {
        return Err(format!("{method} {path}: {got}"));
    }
    Ok(())
}
