//! The routes `make bench` measures, as data: which function serves each, the request
//! it sends for the n-th call, and the state its rows must be in first. Every route seeds
//! its own rows for a fresh entity, so any subset (`BENCH_ONLY`) runs on its own.

use serde_json::{json, Value};
use shared::domain::api_key::{KeyHash, Scope};
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
    /// Connected, with two credential versions (a rollback has one to go back to).
    TwoVersions,
}

/// A route's seeded entities (one per [`TYPES`]-long run of calls, for the routes that
/// take one connector type per call; else one) with their keys, and the credential
/// versions of the first one's `stripe` row (newest first; empty unless the route needs
/// them).
pub struct Prepared {
    /// The entity of each of `keys`.
    pub entities: Vec<EntityId>,
    pub keys: Vec<String>,
    pub versions: Vec<String>,
}

pub struct Route {
    /// The name `BENCH_ONLY` and the result lines use.
    pub name: &'static str,
    /// The function (binary) that serves it.
    pub function: &'static str,
    pub method: &'static str,
    /// `true`: the n-th call acts on connector type `n % TYPES.len()` of [`TYPES`], of
    /// entity `n / TYPES.len()`; `false`: on one entity's `stripe` every time.
    pub one_type_per_call: bool,
    pub suffix: &'static str,
    pub query: &'static str,
    /// The body of the `call`-th call, given the seeded versions (newest first).
    pub body: fn(usize, &[String]) -> Option<Value>,
    pub status: u16,
    pub needs: Needs,
    /// Reads are measured over `BENCH_ITERATIONS` warm calls; the others over
    /// `BENCH_WRITE_CALLS` ([`WRITE_CALLS`]).
    pub read: bool,
    /// The route's floor (`src/bin/floor.rs`): the AWS calls its contract cannot do
    /// without before it answers, in order (`FLOOR_STEPS`): the target critical paths of
    /// docs/PERFORMANCE.md, where the announcement and the outbox record's clearing come
    /// after the answer, and so does a permanent delete's secret deletion. A cold start
    /// adds the key lookup (`key`).
    pub floor: &'static str,
}

/// Connector types the one-type-per-call routes walk, entity after entity.
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
/// Warm calls per write route by default (`BENCH_WRITE_CALLS`): enough for a p99 of its
/// own.
pub const WRITE_CALLS: usize = 100;

fn none(_: usize, _: &[String]) -> Option<Value> {
    None
}

pub const ROUTES: [Route; 11] = [
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
        floor: "key,read",
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
        floor: "key,query",
    },
    Route {
        name: "update",
        function: "update",
        method: "PATCH",
        one_type_per_call: false,
        suffix: "",
        query: "",
        body: |i, _| Some(json!({ "display_name": format!("n{i}") })),
        status: 200,
        needs: Needs::Connected,
        read: false,
        floor: "key,read,commit",
    },
    Route {
        name: "credentials",
        function: "credentials",
        method: "PUT",
        one_type_per_call: false,
        suffix: "/credentials",
        query: "",
        body: |i, _| Some(json!({ "credentials": { "secret_key": format!("sk_{i}") } })),
        status: 200,
        needs: Needs::Connected,
        read: false,
        floor: "key,read,guard,secret-put,commit",
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
        floor: "key,create",
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
        floor: "key,read,commit,secret-schedule",
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
        floor: "key,read,guard,secret-restore,commit",
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
        floor: "key,read,commit",
    },
    // §1b. A read of the versions list (names only; the row's one query).
    Route {
        name: "versions",
        function: "credentials",
        method: "GET",
        one_type_per_call: false,
        suffix: "/credentials/versions",
        query: "",
        body: none,
        status: 200,
        needs: Needs::TwoVersions,
        read: true,
        floor: "key,read",
    },
    // Each call makes the other of the two seeded versions current, so every call is a
    // real rollback (the cold one goes back to the older), never the no-op.
    Route {
        name: "rollback",
        function: "credentials",
        method: "POST",
        one_type_per_call: false,
        suffix: "/credentials/rollback",
        query: "",
        body: |i, versions| Some(json!({ "version": versions[(i + 1) % versions.len()] })),
        status: 200,
        needs: Needs::TwoVersions,
        read: false,
        floor: "key,read,commit,stage",
    },
    // Each call reports a failure with a new message, so every report changes the shown
    // row and writes (a report that changes nothing writes nothing).
    Route {
        name: "sync-report",
        function: "report",
        method: "POST",
        one_type_per_call: false,
        suffix: "/sync-reports",
        query: "",
        body: |i, _| {
            Some(json!({
                "outcome": "failed",
                "error": { "code": "upstream_unavailable", "message": format!("run {i}: upstream answered 502") },
            }))
        },
        status: 200,
        needs: Needs::Connected,
        read: false,
        floor: "key,read,commit",
    },
];

impl Route {
    fn connector(&self, call: usize) -> &'static str {
        if self.one_type_per_call {
            TYPES[call % TYPES.len()]
        } else {
            "stripe"
        }
    }

    /// Which of the prepared entities the `call`-th call acts on.
    fn entity_of(&self, call: usize) -> usize {
        if self.one_type_per_call {
            call / TYPES.len()
        } else {
            0
        }
    }

    /// The API Gateway (REST API) event of the `call`-th call.
    pub fn event(&self, call: usize, ready: &Prepared) -> Value {
        let path = match self.name {
            "list" => "/v1/integrations".to_string(),
            _ => format!("/v1/integrations/{}{}", self.connector(call), self.suffix),
        };
        let path = if self.query.is_empty() {
            path
        } else {
            format!("{path}?{}", self.query)
        };
        let body = (self.body)(call, &ready.versions);
        connectors_infra::api_gateway::ApiEvent::new(self.method, &path)
            .key(&ready.keys[self.entity_of(call)])
            .body(body.as_ref())
            .rest_api()
    }

    /// The floor's event for each of calls `0..calls` (see `src/bin/floor.rs`), on rows
    /// `ready` for it (seeded as for the route, never the route's own): the caller's key,
    /// the connector row, its secret and, for a rollback, the version moves that make each
    /// call a real one (the current version and the other, alternately).
    pub async fn floor_events(&self, app: &shared::App, ready: &Prepared, calls: usize) -> Vec<Value> {
        let mut events = Vec::with_capacity(calls);
        for call in 0..calls {
            let (entity, key) = (ready.entities[self.entity_of(call)], &ready.keys[self.entity_of(call)]);
            let connector_type = ConnectorType::parse(self.connector(call)).unwrap();
            let row = app
                .service
                .store
                .get(entity, connector_type)
                .await
                .expect("the floor's row reads back");
            let secret = row
                .as_ref()
                .filter(|r| r.has_secret())
                .map(|r| shared::aws::secrets::secret_name(&app.settings.secret_prefix, &r.secret_ref()));
            let stage = row.as_ref().and_then(|r| {
                let current = r.current_version_record()?;
                let other = r.credential_versions.iter().find(|v| v.id != current.id)?;
                let (to, from) = if call % 2 == 0 {
                    (other, current)
                } else {
                    (current, other)
                };
                Some([to.secret_version_id.clone(), from.secret_version_id.clone()])
            });
            events.push(json!({
                "key": shared::aws::keys::by_hash_key(&KeyHash::of(key)),
                "row": [shared::aws::items::entity_pk(entity), shared::aws::items::connector_sk(connector_type)],
                "secret": secret,
                "stage": stage,
            }));
        }
        events
    }

    /// A fresh entity whose rows are ready for calls `0..calls`, and its key (all scopes).
    /// Seeding is not measured: when the emulator refuses a step (it does, now and then,
    /// under a long run), it starts over with another entity, three times at most.
    pub async fn prepare(&self, app: &shared::App, calls: usize) -> Prepared {
        for attempt in 1..=3 {
            match self.try_prepare(app, calls).await {
                Ok(ready) => return ready,
                Err(step) => eprintln!("seeding {} (attempt {attempt}): {step}", self.name),
            }
        }
        panic!("seeding {} failed three times", self.name);
    }

    async fn try_prepare(&self, app: &shared::App, calls: usize) -> Result<Prepared, String> {
        let count = self.entity_of(calls.max(1) - 1) + 1;
        let (mut keys, mut entities) = (Vec::new(), Vec::new());
        for n in 0..count {
            let (entity, key) = new_key(app).await?;
            let calls_here = (0..calls).filter(|c| self.entity_of(*c) == n);
            let types: std::collections::BTreeSet<&str> = calls_here.map(|c| self.connector(c)).collect();
            self.seed_rows(app, &key, types).await?;
            entities.push(entity);
            keys.push(key);
        }
        let key = &keys[0];
        let versions = match self.needs {
            Needs::TwoVersions => {
                let path = format!("/v1/integrations/{}/credentials/versions", self.connector(0));
                let list = seed(app, key, "GET", &path, None, 200).await?;
                list["data"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .filter_map(|v| v["version"].as_str().map(str::to_string))
                    .collect()
            }
            _ => Vec::new(),
        };
        Ok(Prepared {
            entities,
            keys,
            versions,
        })
    }

    /// Puts the rows of `types` of `key`'s entity in the state the route needs.
    async fn seed_rows(
        &self,
        app: &shared::App,
        key: &str,
        types: std::collections::BTreeSet<&str>,
    ) -> Result<(), String> {
        for t in types {
            if self.needs != Needs::Nothing {
                seed(app, key, "POST", &format!("/v1/integrations/{t}"), None, 201).await?;
                let entry = ConnectorType::parse(t).unwrap().entry();
                let writes = if self.needs == Needs::TwoVersions { 2 } else { 1 };
                for write in 0..writes {
                    let credentials: serde_json::Map<String, Value> = entry
                        .required
                        .iter()
                        .map(|k| (k.to_string(), json!(format!("bench-{write}"))))
                        .collect();
                    let body = json!({ "credentials": credentials });
                    let path = format!("/v1/integrations/{t}/credentials");
                    seed(app, key, "PUT", &path, Some(body), 200).await?;
                }
            }
            if self.needs == Needs::Disconnected {
                seed(app, key, "DELETE", &format!("/v1/integrations/{t}"), None, 200).await?;
            }
        }
        Ok(())
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

/// One request through the shared HTTP layer in this process (not measured); its JSON
/// body (`null` when it has none).
pub async fn seed(
    app: &shared::App,
    key: &str,
    method: &str,
    path: &str,
    body: Option<Value>,
    status: u16,
) -> Result<Value, String> {
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
    let response = shared::http::handle(app, b.body(body).unwrap()).await;
    let got = response.status();
    if got != status {
        return Err(format!("{method} {path}: {got}"));
    }
    Ok(serde_json::from_slice(response.body()).unwrap_or(Value::Null))
}
