//! Integration-test harness: a fresh table, bus, secret prefix and capture queue on the
//! AWS-API emulator (moto server, started by `make test`) for every test, driven through
//! the same HTTP layer the Lambda handlers use. The emulator enforces IAM: the service's
//! code signs every call as the function it runs in (see `iam`), the harness's own setup
//! and inspection calls as an admin.

pub mod caller;
pub mod contract;
pub mod faults;
pub mod iam;
pub mod interleavings;
pub mod recorder;

pub use recorder::{as_function, as_operator};

use std::collections::{BTreeSet, HashMap};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use aws_config::SdkConfig;
use aws_credential_types::provider::SharedCredentialsProvider;
use aws_sdk_dynamodb::types::AttributeValue;
use connectors_infra::watch::route_to_queue;
use lambda_http::http::HeaderMap;
use lambda_http::{Body, Request};
use serde_json::Value;
use shared::aws::items::{connector_sk, entity_pk};
use shared::aws::table::TABLE;
use shared::config::{FingerprintKey, Settings};
use shared::domain::api_key::Scope;
use shared::domain::catalog::ConnectorType;
use shared::domain::ids::EntityId;
use shared::domain::time::Timestamp;
use shared::ports::ManualClock;
use shared::App;

pub const SOURCE: &str = "erp.integrations";

/// Refuses to run anywhere but a loopback emulator: these tests create and delete things.
pub fn emulator_endpoint() -> String {
    let endpoint = std::env::var("AWS_ENDPOINT_URL")
        .expect("AWS_ENDPOINT_URL is not set: run the tests with `make test`, which starts the emulator");
    assert!(
        endpoint.starts_with("http://127.") || endpoint.starts_with("http://localhost"),
        "integration tests only run against a loopback emulator, not {endpoint}"
    );
    endpoint
}

/// The service's own SDK configuration, with longer timeouts: the emulator slows down
/// as the suite fills it (moto copies its tables on every transaction), and a spurious
/// client-side timeout would make tests flaky without saying anything about the code.
/// Calls are signed as the function whose code makes them ([`iam::PerFunction`]), chosen
/// per call: the identity cache is off.
pub async fn emulator_sdk() -> SdkConfig {
    emulator_endpoint();
    let timeouts = aws_config::timeout::TimeoutConfig::builder()
        .connect_timeout(Duration::from_secs(5))
        .operation_attempt_timeout(Duration::from_secs(60))
        .operation_timeout(Duration::from_secs(120))
        .build();
    shared::config::sdk_config()
        .await
        .to_builder()
        .timeout_config(timeouts)
        .credentials_provider(SharedCredentialsProvider::new(iam::PerFunction))
        .identity_cache(aws_config::identity::IdentityCache::no_cache())
        .build()
}

/// As [`emulator_sdk`], signed with the admin's keys: the harness's own calls.
pub async fn admin_sdk() -> SdkConfig {
    emulator_sdk()
        .await
        .to_builder()
        .credentials_provider(SharedCredentialsProvider::new(iam::identities().admin.credentials()))
        .identity_cache(aws_config::identity::IdentityCache::lazy().build())
        .build()
}

#[derive(Debug, Clone)]
pub struct Reply {
    pub status: u16,
    pub headers: HeaderMap,
    pub raw: String,
    pub body: Value,
}

impl Reply {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    /// Asserts the error envelope of openapi.yaml and returns its `code`.
    pub fn error_code(&self) -> String {
        let b = &self.body;
        let keys: BTreeSet<&str> = b
            .as_object()
            .expect("an error body is an object")
            .keys()
            .map(String::as_str)
            .collect();
        let mut expected: BTreeSet<&str> = ["error", "code", "type", "hint", "param", "request_id"].into();
        if b["type"] == "insufficient_scope" {
            expected.insert("required");
        }
        assert_eq!(keys, expected, "envelope fields of {}", self.raw);
        assert!(b["request_id"].as_str().unwrap().starts_with("req_"));
        assert_eq!(
            self.header("x-request-id"),
            b["request_id"].as_str(),
            "request id in header and body"
        );
        assert!(!b["hint"].as_str().unwrap().is_empty());
        b["code"].as_str().unwrap().to_string()
    }
}

pub struct Harness {
    /// The service's configuration: calls signed as the running function.
    pub sdk: SdkConfig,
    /// The harness's own: calls signed as the admin.
    pub admin_sdk: SdkConfig,
    pub settings: Settings,
    pub clock: Arc<ManualClock>,
    pub app: App,
    pub sqs: aws_sdk_sqs::Client,
    pub dynamo: aws_sdk_dynamodb::Client,
    pub secrets: aws_sdk_secretsmanager::Client,
    queue_url: String,
    /// Every reply this harness produced, for the leak checks.
    pub replies: Mutex<Vec<Reply>>,
    /// Every event read back from the capture queue.
    pub delivered: Mutex<Vec<Value>>,
    /// AWS actions performed per function (see `recorder`).
    pub actions: recorder::Calls,
}

impl Harness {
    pub async fn new() -> Harness {
        let clock = Arc::new(ManualClock::new(Timestamp::from_datetime(chrono::Utc::now())));
        Harness::with_clock(clock.clone(), clock).await
    }

    /// A harness whose service reaches DynamoDB one call at a time, through a serialising
    /// proxy: concurrent conditional writes then get DynamoDB's isolation, which moto
    /// lacks (it checks a condition and writes without a lock, so two requests in flight
    /// at once can both pass an `attribute_not_exists`; see
    /// [`faults::FaultProxy::start_serializing`]).
    pub async fn isolated() -> Harness {
        let proxy = faults::FaultProxy::start_serializing(&emulator_endpoint()).await;
        let clock = Arc::new(ManualClock::new(Timestamp::from_datetime(chrono::Utc::now())));
        Harness::with_clock_and_endpoint(clock.clone(), clock, Some(&proxy.url)).await
    }

    /// A harness whose service reads `service_clock` (e.g. one that ticks on its own);
    /// `clock` is the manual one tests move.
    pub async fn with_clock(clock: Arc<ManualClock>, service_clock: Arc<dyn shared::ports::Clock>) -> Harness {
        Harness::with_clock_and_endpoint(clock, service_clock, None).await
    }

    /// As [`Harness::with_clock`], with every AWS call sent to `endpoint` (a proxy in
    /// front of the emulator) instead.
    pub async fn with_clock_and_endpoint(
        clock: Arc<ManualClock>,
        service_clock: Arc<dyn shared::ports::Clock>,
        endpoint: Option<&str>,
    ) -> Harness {
        let sdk = emulator_sdk().await;
        let admin_sdk = admin_sdk().await;
        let suffix = uuid::Uuid::new_v4().simple().to_string()[..12].to_string();
        let settings = Settings {
            table: format!("connectors-{suffix}"),
            event_bus: format!("integrations-{suffix}"),
            event_source: SOURCE.to_string(),
            secret_prefix: format!("connectors-{suffix}/"),
            fingerprint_key: FingerprintKey::Local(format!("fingerprint-{suffix}")),
            secrets_kms_key_id: None,
            metric_namespace: "Connectors/test".to_string(),
        };
        shared::admin::bootstrap(&admin_sdk, &settings)
            .await
            .expect("bootstrap on the emulator");
        let sqs = aws_sdk_sqs::Client::new(&admin_sdk);
        let queue_url = route_to_queue(&admin_sdk, &settings.event_bus, SOURCE, &format!("capture-{suffix}"))
            .await
            .expect("the bus routes to a capture queue");
        let actions = recorder::Calls::default();
        let clients = clients(&sdk, endpoint, Some(&actions));
        let app = App::from_clients(clients, settings.clone(), service_clock);
        Harness {
            dynamo: aws_sdk_dynamodb::Client::new(&admin_sdk),
            secrets: aws_sdk_secretsmanager::Client::new(&admin_sdk),
            sdk,
            admin_sdk,
            settings,
            clock,
            app,
            sqs,
            queue_url,
            replies: Mutex::new(Vec::new()),
            delivered: Mutex::new(Vec::new()),
            actions,
        }
    }

    /// A new secret holding a fingerprint key (as the template generates one), created by
    /// the operator, and this harness's settings naming it
    /// (`IDEMPOTENCY_FINGERPRINT_KEY_SECRET`).
    pub async fn settings_with_fingerprint_secret(&self) -> Settings {
        let name = format!("{}-fingerprint-key", self.settings.table);
        self.secrets
            .create_secret()
            .name(&name)
            .secret_string(uuid::Uuid::new_v4().simple().to_string())
            .send()
            .await
            .expect("fingerprint key secret created");
        Settings {
            fingerprint_key: FingerprintKey::Secret(name),
            ..self.settings.clone()
        }
    }

    /// A new container: this harness's clients (recording actions) and `settings`, with
    /// nothing cached yet (keys, the fingerprint key).
    pub fn container(&self, settings: Settings) -> App {
        App::from_clients(
            clients(&self.sdk, None, Some(&self.actions)),
            settings,
            self.clock.clone(),
        )
    }

    /// A container of this harness whose AWS calls go through `endpoint` (a fault proxy).
    pub fn app_via(&self, endpoint: &str) -> App {
        App::from_clients(
            clients(&self.sdk, Some(endpoint), None),
            self.settings.clone(),
            self.clock.clone(),
        )
    }

    pub fn now(&self) -> Timestamp {
        use shared::ports::Clock;
        self.clock.now()
    }

    /// A key for `entity` with `scopes`, issued by the operator.
    pub async fn key(&self, entity: EntityId, scopes: &[Scope], live: bool) -> String {
        as_operator(shared::admin::create_key(
            &self.app,
            entity,
            scopes.iter().copied().collect(),
            live,
            None,
        ))
        .await
        .expect("key created")
        .plaintext
    }

    /// A new entity and a key with every scope.
    pub async fn tenant(&self, live: bool) -> (EntityId, String) {
        let entity = EntityId::new_random();
        (entity, self.key(entity, &Scope::ALL, live).await)
    }

    /// Serves a request as the function its route belongs to would (recording that
    /// function's AWS actions), and checks the answer against openapi.yaml.
    pub async fn send(&self, req: Request) -> Reply {
        self.send_via(&self.app, req).await
    }

    /// As [`Harness::send`], served by `app` (e.g. one whose clients go through a fault
    /// proxy) against this harness's resources.
    pub async fn send_via(&self, app: &App, req: Request) -> Reply {
        let method = req.method().to_string();
        let path = req.uri().path_and_query().map(|p| p.to_string()).unwrap_or_default();
        let response = handle_as_function(app, req).await;
        self.record(&method, &path, response)
    }

    /// Runs one sweep as the sweeper function.
    pub async fn sweep(&self) -> shared::service::SweepReport {
        self.try_sweep_via(&self.app).await.expect("sweep")
    }

    /// One sweep as the sweeper function, within `budget`.
    pub async fn sweep_within(&self, budget: shared::service::SweepBudget) -> shared::service::SweepReport {
        as_function("sweeper", self.app.service.sweep(budget))
            .await
            .expect("sweep")
    }

    /// One sweep as the sweeper function, served by `app`, its error kept.
    pub async fn try_sweep_via(
        &self,
        app: &App,
    ) -> Result<shared::service::SweepReport, shared::domain::error::ApiError> {
        as_function("sweeper", app.service.sweep(shared::service::SweepBudget::unlimited())).await
    }

    /// One EventBridge event handled as the `sync` function handles it.
    pub async fn sync_event(&self, event: &Value) -> Result<shared::sync_events::Handled, shared::sync_events::Retry> {
        self.sync_event_via(&self.app, event).await
    }

    /// As [`Harness::sync_event`], served by `app`.
    pub async fn sync_event_via(
        &self,
        app: &App,
        event: &Value,
    ) -> Result<shared::sync_events::Handled, shared::sync_events::Retry> {
        as_function("sync", shared::sync_events::handle(app, event)).await
    }

    /// What a Lambda function's entry point does with `req` (`handle_operation`), as that
    /// function; the answer is recorded and checked like [`Harness::send`]'s.
    pub async fn invoke(&self, operation: shared::http::router::Operation, req: Request) -> Reply {
        let method = req.method().to_string();
        let path = req.uri().path_and_query().map(|p| p.to_string()).unwrap_or_default();
        let response = as_function(
            operation.function_name(),
            shared::http::handle_operation(&self.app, operation, req),
        )
        .await
        .expect("handle_operation never fails");
        self.record(&method, &path, response)
    }

    pub fn record(&self, method: &str, path: &str, response: lambda_http::Response<Body>) -> Reply {
        let raw = String::from_utf8_lossy(response.body().as_ref()).to_string();
        let reply = Reply {
            status: response.status().as_u16(),
            headers: response.headers().clone(),
            body: serde_json::from_str(&raw).unwrap_or(Value::Null),
            raw,
        };
        assert!(
            reply.header("x-request-id").is_some_and(|id| id.starts_with("req_")),
            "every response has x-request-id"
        );
        contract::check(method, path, reply.status, &reply.raw);
        self.replies.lock().unwrap().push(reply.clone());
        reply
    }

    /// Reads events from the capture queue until `count` arrived (or a few seconds
    /// passed), then keeps listening briefly so extra (duplicate) events are seen too.
    pub async fn events(&self, count: usize) -> Vec<Value> {
        let mut got = Vec::new();
        let deadline = Instant::now() + Duration::from_secs(5);
        let mut quiet_until: Option<Instant> = None;
        loop {
            let out = self
                .sqs
                .receive_message()
                .queue_url(&self.queue_url)
                .max_number_of_messages(10)
                .wait_time_seconds(0)
                .send()
                .await
                .expect("receive from capture queue");
            let messages = out.messages();
            for m in messages {
                let event: Value = serde_json::from_str(m.body().unwrap()).expect("event JSON");
                got.push(event);
                self.sqs
                    .delete_message()
                    .queue_url(&self.queue_url)
                    .receipt_handle(m.receipt_handle().unwrap())
                    .send()
                    .await
                    .unwrap();
            }
            let now = Instant::now();
            // Done once `count` arrived and the queue has stayed empty for a moment (moto
            // delivers during PutEvents, so anything late is a duplicate worth seeing).
            if !messages.is_empty() {
                quiet_until = None;
            } else if got.len() >= count {
                let until = *quiet_until.get_or_insert(now + Duration::from_millis(60));
                if now >= until {
                    break;
                }
            }
            if now >= deadline {
                break;
            }
            if messages.is_empty() {
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }
        self.delivered.lock().unwrap().extend(got.iter().cloned());
        got
    }

    /// The name of the newest secret of `entity`'s `connector_type` connector (secrets
    /// are named by connector id; this finds them by their `connector_type` tag), or a
    /// name nothing has if there is none.
    pub async fn secret_name(&self, entity: EntityId, connector_type: &str) -> String {
        let prefix = format!("{}{entity}/", self.settings.secret_prefix);
        self.secrets_of(entity)
            .await
            .iter()
            .filter(|s| {
                s.tags()
                    .iter()
                    .any(|t| t.key() == Some("connector_type") && t.value() == Some(connector_type))
            })
            .max_by_key(|s| s.created_date().map(|d| d.as_nanos()))
            .and_then(|s| s.name().map(str::to_string))
            .unwrap_or_else(|| format!("{prefix}none-{connector_type}"))
    }

    /// Every secret stored under `entity`'s prefix, whatever its name, scheduled for
    /// deletion or not.
    pub async fn secrets_of(&self, entity: EntityId) -> Vec<aws_sdk_secretsmanager::types::SecretListEntry> {
        let prefix = format!("{}{entity}/", self.settings.secret_prefix);
        let listed = self
            .secrets
            .list_secrets()
            .include_planned_deletion(true)
            .filters(
                aws_sdk_secretsmanager::types::Filter::builder()
                    .key(aws_sdk_secretsmanager::types::FilterNameStringType::Name)
                    .values(&prefix)
                    .build(),
            )
            .send()
            .await
            .expect("list secrets");
        listed
            .secret_list()
            .iter()
            .filter(|s| s.name().is_some_and(|n| n.starts_with(&prefix)))
            .cloned()
            .collect()
    }

    pub async fn describe_secret(
        &self,
        entity: EntityId,
        connector_type: &str,
    ) -> Option<aws_sdk_secretsmanager::operation::describe_secret::DescribeSecretOutput> {
        match self
            .secrets
            .describe_secret()
            .secret_id(self.secret_name(entity, connector_type).await)
            .send()
            .await
        {
            Ok(out) => Some(out),
            Err(e)
                if e.as_service_error()
                    .is_some_and(|s| s.is_resource_not_found_exception()) =>
            {
                None
            }
            Err(e) => panic!("describe_secret: {e:?}"),
        }
    }

    /// The secret's current value (`AWSCURRENT`, what readers ask for), or `None` if it
    /// cannot be read (absent or scheduled for deletion).
    pub async fn secret_value(&self, entity: EntityId, connector_type: &str) -> Option<Value> {
        let out = self
            .secrets
            .get_secret_value()
            .secret_id(self.secret_name(entity, connector_type).await)
            .version_stage("AWSCURRENT")
            .send()
            .await
            .ok()?;
        serde_json::from_str(out.secret_string()?).ok()
    }

    /// The raw stored item of a connector row.
    /// The item of `entity`'s partition under sort key `sk`, read as the operator.
    pub async fn raw_item(&self, entity: EntityId, sk: &str) -> Option<HashMap<String, AttributeValue>> {
        self.dynamo
            .get_item()
            .table_name(&self.settings.table)
            .key(TABLE.partition_key, AttributeValue::S(entity_pk(entity)))
            .key(TABLE.sort_key, AttributeValue::S(sk.to_string()))
            .consistent_read(true)
            .send()
            .await
            .unwrap()
            .item
    }

    pub async fn raw_row(&self, entity: EntityId, connector_type: &str) -> Option<HashMap<String, AttributeValue>> {
        self.dynamo
            .get_item()
            .table_name(&self.settings.table)
            .key(TABLE.partition_key, AttributeValue::S(entity_pk(entity)))
            .key(
                TABLE.sort_key,
                AttributeValue::S(connector_sk(ConnectorType::parse(connector_type).unwrap())),
            )
            .consistent_read(true)
            .send()
            .await
            .unwrap()
            .item
    }

    /// Outbox records still waiting (read from every shard of the sparse `due` index).
    pub async fn outbox(&self) -> Vec<HashMap<String, AttributeValue>> {
        let mut items = Vec::new();
        for shard in shared::aws::table::DueKind::Outbox.partitions(0) {
            let out = self
                .dynamo
                .query()
                .table_name(&self.settings.table)
                .index_name("due")
                .key_condition_expression("due_pk = :p")
                .expression_attribute_values(":p", AttributeValue::S(shard))
                .send()
                .await
                .unwrap();
            items.extend(out.items().iter().cloned());
        }
        items
    }
}

/// Serves `req` with `app` as the function its route belongs to would (signing its AWS
/// calls with that function's keys); an unrouted request makes no AWS call.
pub async fn handle_as_function(app: &App, req: Request) -> lambda_http::Response<Body> {
    let function = shared::http::router::route(req.method().as_str(), req.uri().path())
        .map(|m| m.operation.function_name())
        .unwrap_or(shared::http::UNROUTED_FUNCTION);
    as_function(function, shared::http::handle(app, req)).await
}

/// The service's clients from `sdk`, optionally sent to `endpoint` (a proxy in front of
/// the emulator) and recording AWS actions. The endpoint is set per service: a service
/// config built from an `SdkConfig` prefers `AWS_ENDPOINT_URL` from the environment.
pub fn clients(sdk: &SdkConfig, endpoint: Option<&str>, actions: Option<&recorder::Calls>) -> shared::Clients {
    macro_rules! client {
        ($sdk_crate:ident, $prefix:literal) => {{
            let mut b = $sdk_crate::config::Builder::from(sdk);
            if let Some(url) = endpoint {
                b = b.endpoint_url(url);
            }
            if let Some(calls) = actions {
                b = b.interceptor(recorder::Recorder::new($prefix, calls.clone()));
            }
            $sdk_crate::Client::from_conf(b.build())
        }};
    }
    shared::Clients {
        dynamodb: client!(aws_sdk_dynamodb, "dynamodb"),
        secrets: client!(aws_sdk_secretsmanager, "secretsmanager"),
        events: client!(aws_sdk_eventbridge, "events"),
    }
}

/// A request as API Gateway would hand it over: optional Bearer key, extra headers, and a
/// JSON body (with its content type) if given.
pub fn request(method: &str, path: &str, key: Option<&str>, headers: &[(&str, &str)], body: Option<Value>) -> Request {
    let mut builder = lambda_http::http::Request::builder()
        .method(method)
        .uri(format!("https://api.test{path}"));
    if let Some(k) = key {
        builder = builder.header("authorization", format!("Bearer {k}"));
    }
    for (name, value) in headers {
        builder = builder.header(*name, *value);
    }
    let body = match body {
        Some(v) => {
            builder = builder.header("content-type", "application/json");
            Body::Text(v.to_string())
        }
        None => Body::Empty,
    };
    builder.body(body).unwrap()
}

/// moto copies every table on each transaction, so a suite that leaves its tables behind
/// gets slower test by test: each harness drops its table when it goes.
impl Drop for Harness {
    fn drop(&mut self) {
        let (dynamo, table) = (self.dynamo.clone(), self.settings.table.clone());
        let _ = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            let _ = rt.block_on(dynamo.delete_table().table_name(table).send());
        })
        .join();
    }
}
