//! `make bench`: plays the Lambda Runtime API on loopback, starts each function's release
//! binary as Lambda would (`AWS_LAMBDA_RUNTIME_API` and the usual environment), feeds it
//! API Gateway (HTTP API v2) events against the emulator, and measures cold init, warm
//! latency, peak RSS and AWS calls per invocation — beside the floors measured in the same
//! run: a hello-world `lambda_runtime` binary (init) and a bare SDK `GetItem` (latency).
//! Prints a markdown table. `BENCH_ITERATIONS` (default 1000) warm invocations per route,
//! `BENCH_COLD_STARTS` (default 20) fresh processes per cold-init median, `BENCH_BIN_DIR`
//! (default `target/release`) the binaries to measure, `BENCH_ONLY` a comma-separated
//! subset of route labels, `BENCH_SSL_CERT_FILE` / `BENCH_SSL_CERT_DIR` the functions'
//! `SSL_CERT_FILE` / `SSL_CERT_DIR` (unset by default, as on Lambda).

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use http_body_util::{BodyExt, Full};
use hyper::body::{Bytes, Incoming};
use hyper::service::service_fn;
use hyper::{Request, Response};
use hyper_util::client::legacy::Client;
use hyper_util::rt::{TokioExecutor, TokioIo};
use serde_json::{json, Value};
use shared::domain::api_key::Scope;
use shared::domain::ids::EntityId;
use tokio::sync::{mpsc, Mutex};

type Body = Full<Bytes>;

fn respond(status: u16, body: impl Into<Bytes>) -> Response<Body> {
    Response::builder().status(status).body(Full::new(body.into())).unwrap()
}

/// What the function posted back for one invocation.
struct Answer {
    at: Instant,
    body: Value,
}

/// The Runtime API of one execution environment.
struct RuntimeApi {
    addr: SocketAddr,
    events: mpsc::Sender<(String, String)>,
    answers: Mutex<mpsc::Receiver<Answer>>,
    first_next: Arc<std::sync::Mutex<Option<Instant>>>,
}

impl RuntimeApi {
    async fn start() -> RuntimeApi {
        let listener = tokio::net::TcpListener::bind(SocketAddr::from(([127, 0, 0, 1], 0)))
            .await
            .unwrap();
        let addr = listener.local_addr().unwrap();
        let (events, inbox) = mpsc::channel::<(String, String)>(1);
        let (answered, answers) = mpsc::channel::<Answer>(16);
        let inbox = Arc::new(Mutex::new(inbox));
        let first_next = Arc::new(std::sync::Mutex::new(None));
        let seen = first_next.clone();
        tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    return;
                };
                let (inbox, answered, seen) = (inbox.clone(), answered.clone(), seen.clone());
                tokio::spawn(async move {
                    let service = service_fn(move |req: Request<Incoming>| {
                        let (inbox, answered, seen) = (inbox.clone(), answered.clone(), seen.clone());
                        async move {
                            let path = req.uri().path().to_string();
                            if path.ends_with("/invocation/next") {
                                seen.lock().unwrap().get_or_insert(Instant::now());
                                let Some((id, payload)) = inbox.lock().await.recv().await else {
                                    return Ok::<_, hyper::Error>(respond(500, "shutting down"));
                                };
                                let deadline = std::time::SystemTime::now()
                                    .duration_since(std::time::UNIX_EPOCH)
                                    .unwrap()
                                    .as_millis()
                                    + 30_000;
                                let mut r = respond(200, payload);
                                let h = r.headers_mut();
                                h.insert("lambda-runtime-aws-request-id", id.parse().unwrap());
                                h.insert("lambda-runtime-deadline-ms", deadline.to_string().parse().unwrap());
                                h.insert(
                                    "lambda-runtime-invoked-function-arn",
                                    "arn:aws:lambda:us-east-1:123456789012:function:bench".parse().unwrap(),
                                );
                                h.insert(
                                    "lambda-runtime-trace-id",
                                    "Root=1-00000000-000000000000000000000000".parse().unwrap(),
                                );
                                return Ok(r);
                            }
                            let at = Instant::now();
                            let bytes = req
                                .into_body()
                                .collect()
                                .await
                                .map(|b| b.to_bytes())
                                .unwrap_or_default();
                            let body = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
                            let _ = answered.send(Answer { at, body }).await;
                            Ok(respond(202, "{}"))
                        }
                    });
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                });
            }
        });
        RuntimeApi {
            addr,
            events,
            answers: Mutex::new(answers),
            first_next,
        }
    }

    /// One invocation: hands the event over and waits for the answer.
    async fn invoke(&self, payload: &Value) -> (Duration, Value) {
        let sent = Instant::now();
        self.events
            .send((uuid::Uuid::new_v4().to_string(), payload.to_string()))
            .await
            .unwrap();
        let answer = tokio::time::timeout(Duration::from_secs(30), self.answers.lock().await.recv())
            .await
            .expect("function answered in time")
            .expect("function alive");
        (answer.at - sent, answer.body)
    }
}

/// Forwards to the emulator and counts AWS calls.
#[derive(Clone)]
struct CountingProxy {
    url: String,
    calls: Arc<AtomicUsize>,
}

impl CountingProxy {
    async fn start(upstream: String) -> CountingProxy {
        let listener = tokio::net::TcpListener::bind(SocketAddr::from(([127, 0, 0, 1], 0)))
            .await
            .unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let calls = Arc::new(AtomicUsize::new(0));
        let counter = calls.clone();
        let client: Client<_, Body> = Client::builder(TokioExecutor::new()).build_http();
        tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    return;
                };
                let (client, counter, upstream) = (client.clone(), counter.clone(), upstream.clone());
                tokio::spawn(async move {
                    let service = service_fn(move |req: Request<Incoming>| {
                        let (client, counter, upstream) = (client.clone(), counter.clone(), upstream.clone());
                        async move {
                            counter.fetch_add(1, Ordering::SeqCst);
                            let (parts, body) = req.into_parts();
                            let body = body.collect().await.map(|b| b.to_bytes()).unwrap_or_default();
                            let uri = format!(
                                "{upstream}{}",
                                parts.uri.path_and_query().map(|p| p.as_str()).unwrap_or("/")
                            );
                            let mut out = Request::builder().method(parts.method).uri(uri);
                            for (k, v) in &parts.headers {
                                out = out.header(k, v);
                            }
                            let resp = client
                                .request(out.body(Full::new(body)).unwrap())
                                .await
                                .map_err(std::io::Error::other)?;
                            let (parts, body) = resp.into_parts();
                            let body = body.collect().await.map(|b| b.to_bytes()).unwrap_or_default();
                            Ok::<_, std::io::Error>(Response::from_parts(parts, Full::new(body)))
                        }
                    });
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                });
            }
        });
        CountingProxy { url, calls }
    }

    fn count(&self) -> usize {
        self.calls.load(Ordering::SeqCst)
    }
}

fn http_event(method: &str, path: &str, query: &str, key: &str, body: Option<Value>) -> Value {
    json!({
        "version": "2.0", "routeKey": "$default", "rawPath": path, "rawQueryString": query,
        "headers": {"authorization": format!("Bearer {key}"), "content-type": "application/json"},
        "requestContext": {"accountId": "123456789012", "apiId": "bench", "domainName": "bench.local", "domainPrefix": "bench",
            "http": {"method": method, "path": path, "protocol": "HTTP/1.1", "sourceIp": "127.0.0.1", "userAgent": "bench"},
            "requestId": "bench", "routeKey": "$default", "stage": "$default", "time": "23/Nov/2026:00:00:00 +0000", "timeEpoch": 0},
        "body": body.map(|b| b.to_string()), "isBase64Encoded": false
    })
}

struct Process {
    child: tokio::process::Child,
    api: RuntimeApi,
    spawned: Instant,
}

impl Process {
    async fn spawn(binary: &PathBuf, function: &str, env: &HashMap<String, String>) -> Process {
        let api = RuntimeApi::start().await;
        let mut cmd = tokio::process::Command::new(binary);
        cmd.env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env("AWS_LAMBDA_RUNTIME_API", api.addr.to_string())
            .env("AWS_LAMBDA_FUNCTION_NAME", function)
            .env("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "128")
            .env("AWS_LAMBDA_FUNCTION_VERSION", "$LATEST")
            .env("AWS_LAMBDA_LOG_GROUP_NAME", format!("/aws/lambda/{function}"))
            .env("AWS_LAMBDA_LOG_STREAM_NAME", "bench")
            .env("RUST_LOG", "off")
            .envs(env)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .kill_on_drop(true);
        let spawned = Instant::now();
        let child = cmd
            .spawn()
            .unwrap_or_else(|e| panic!("spawn {}: {e}", binary.display()));
        Process { child, api, spawned }
    }

    /// exec → first `GET /next`.
    async fn init_time(&self) -> Duration {
        loop {
            if let Some(at) = *self.api.first_next.lock().unwrap() {
                return at - self.spawned;
            }
            tokio::time::sleep(Duration::from_micros(200)).await;
        }
    }

    /// Median exec → first `GET /next` over `n` fresh processes (one cold start is too
    /// noisy on a shared machine to divide by).
    async fn median_init(binary: &PathBuf, function: &str, env: &HashMap<String, String>, n: usize) -> Duration {
        let mut inits = Vec::with_capacity(n);
        for _ in 0..n {
            let p = Process::spawn(binary, function, env).await;
            inits.push(p.init_time().await);
        }
        inits.sort();
        percentile(&inits, 0.5)
    }

    /// CPU time the process has used so far (`/proc/<pid>/schedstat`, nanoseconds).
    fn cpu_time(&self) -> Duration {
        let stat = std::fs::read_to_string(format!("/proc/{}/schedstat", self.child.id().unwrap())).unwrap_or_default();
        Duration::from_nanos(stat.split_whitespace().next().and_then(|n| n.parse().ok()).unwrap_or(0))
    }

    fn peak_rss_kib(&self) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id().unwrap())).unwrap_or_default();
        status
            .lines()
            .find(|l| l.starts_with("VmHWM:"))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|n| n.parse().ok())
            .unwrap_or(0)
    }
}

/// The connector types `connect` creates (one per warm call), in order; disconnect,
/// restore and permanent delete then walk the first eleven.
const CONNECTED: [&str; 15] = [
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
    "usps",
    "amazon",
    "ebay",
    "wwex",
];

/// How long one bare SDK call takes (a floor call must succeed).
async fn timed<T, E: std::fmt::Debug>(call: impl std::future::Future<Output = Result<T, E>>) -> Duration {
    let started = Instant::now();
    call.await.expect("floor call");
    started.elapsed()
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    sorted[((sorted.len() as f64 - 1.0) * p).round() as usize]
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

struct Row {
    route: String,
    init_ms: f64,
    first_ms: f64,
    p50_ms: f64,
    p99_ms: f64,
    rss_mib: f64,
    /// p50 of bare `GetItem`s interleaved one for one with this route's warm calls: the
    /// latency floor under the same conditions (the emulator slows as it fills).
    floor_p50_ms: f64,
    /// The function process's CPU time per warm call (user + system), in ms.
    cpu_ms: f64,
    calls: f64,
    n: usize,
}

#[tokio::main]
async fn main() {
    let endpoint = std::env::var("AWS_ENDPOINT_URL").expect("run `make bench` (it starts the emulator)");
    let iterations: usize = std::env::var("BENCH_ITERATIONS")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(1000);
    let cold_starts: usize = std::env::var("BENCH_COLD_STARTS")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(20);
    let bin_dir = PathBuf::from(std::env::var("BENCH_BIN_DIR").unwrap_or_else(|_| "target/release".into()));
    let suffix = uuid::Uuid::new_v4().simple().to_string()[..10].to_string();
    let settings = shared::config::Settings {
        table: format!("bench-{suffix}"),
        event_bus: format!("bench-{suffix}"),
        event_source: "erp.integrations".into(),
        secret_prefix: format!("bench-{suffix}/"),
        fingerprint_key: format!("fingerprint-{suffix}"),
    };
    let sdk = shared::config::sdk_config().await;
    shared::admin::bootstrap(&sdk, &settings).await.expect("bootstrap");
    let app = shared::App::new(&sdk, settings.clone(), Arc::new(shared::ports::SystemClock));
    let entity = EntityId::new_random();
    let key = shared::admin::create_key(&app, entity, Scope::ALL.into(), true, None)
        .await
        .unwrap()
        .plaintext;
    let proxy = CountingProxy::start(endpoint.clone()).await;
    let env: HashMap<String, String> = [
        ("AWS_ENDPOINT_URL", proxy.url.clone()),
        ("AWS_REGION", "us-east-1".into()),
        ("AWS_ACCESS_KEY_ID", "testing".into()),
        ("AWS_SECRET_ACCESS_KEY", "testing".into()),
        ("AWS_EC2_METADATA_DISABLED", "true".into()),
        ("CONNECTORS_TABLE", settings.table.clone()),
        ("EVENT_BUS_NAME", settings.event_bus.clone()),
        ("EVENT_SOURCE", settings.event_source.clone()),
        ("SECRET_PREFIX", settings.secret_prefix.clone()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v))
    // Lambda sets no SSL_CERT_* variables, so the functions get none, unless asked for
    // with BENCH_SSL_CERT_FILE / BENCH_SSL_CERT_DIR (to measure the system-store path).
    .chain(
        ["SSL_CERT_FILE", "SSL_CERT_DIR"]
            .into_iter()
            .filter_map(|k| Some((k.to_string(), std::env::var(format!("BENCH_{k}")).ok()?))),
    )
    .collect();

    // Seed: a connected stripe row with credentials (through the shared HTTP layer), before
    // the floors, so the bare GetItem reads the same item the functions read.
    let seed = |method: &'static str, path: &str, body: Option<Value>| {
        let mut b = lambda_http::http::Request::builder()
            .method(method)
            .uri(path.to_string())
            .header("authorization", format!("Bearer {key}"));
        let body = match body {
            Some(v) => {
                b = b.header("content-type", "application/json");
                lambda_http::Body::Text(v.to_string())
            }
            None => lambda_http::Body::Empty,
        };
        shared::http::handle(&app, b.body(body).unwrap())
    };
    assert_eq!(seed("POST", "/v1/integrations/stripe", None).await.status(), 201);
    assert_eq!(
        seed(
            "PUT",
            "/v1/integrations/stripe/credentials",
            Some(json!({"credentials": {"secret_key": "sk"}}))
        )
        .await
        .status(),
        200
    );

    // Floor 1: the hello-world function's cold init and first answer.
    let mut rows = Vec::new();
    let init = Process::median_init(&bin_dir.join("hello-lambda"), "hello", &env, cold_starts).await;
    let hello = Process::spawn(&bin_dir.join("hello-lambda"), "hello", &env).await;
    let hello_init = hello.init_time().await;
    let (first, _) = hello.api.invoke(&json!({})).await;
    let mut lat = Vec::new();
    let cpu_before = hello.cpu_time();
    for _ in 0..iterations {
        lat.push(hello.api.invoke(&json!({})).await.0);
    }
    let cpu_ms = ms(hello.cpu_time() - cpu_before) / iterations as f64;
    lat.sort();
    rows.push(Row {
        route: "floor: hello-world lambda_runtime".into(),
        init_ms: ms(init),
        first_ms: ms(hello_init + first),
        p50_ms: ms(percentile(&lat, 0.5)),
        p99_ms: ms(percentile(&lat, 0.99)),
        rss_mib: hello.peak_rss_kib() as f64 / 1024.0,
        floor_p50_ms: 0.0,
        cpu_ms,
        calls: 0.0,
        n: iterations,
    });
    drop(hello);

    // Floor 2: a bare SDK GetItem round trip through the same proxy to the same emulator.
    let dynamo = aws_sdk_dynamodb::Client::from_conf(
        aws_sdk_dynamodb::config::Builder::from(&sdk)
            .endpoint_url(&proxy.url)
            .build(),
    );
    use aws_sdk_dynamodb::types::AttributeValue;
    let pk = AttributeValue::S(format!("ENT#{entity}"));
    let floor_get = || {
        timed(
            dynamo
                .get_item()
                .table_name(&settings.table)
                .key("pk", pk.clone())
                .key("sk", AttributeValue::S("CONN#stripe".into()))
                .consistent_read(true)
                .send(),
        )
    };
    // ... and the bare Query that `list` makes (the entity's connector rows).
    let floor_query = || {
        timed(
            dynamo
                .query()
                .table_name(&settings.table)
                .key_condition_expression("pk = :pk AND begins_with(sk, :conn)")
                .expression_attribute_values(":pk", pk.clone())
                .expression_attribute_values(":conn", AttributeValue::S("CONN#".into()))
                .consistent_read(true)
                .send(),
        )
    };
    let mut getitem = Vec::new();
    let mut query = Vec::new();
    for _ in 0..iterations {
        getitem.push(floor_get().await);
        query.push(floor_query().await);
    }
    getitem.sort();
    query.sort();
    let getitem_p50 = percentile(&getitem, 0.5);
    for (route, lat) in [("floor: bare SDK GetItem", &getitem), ("floor: bare SDK Query", &query)] {
        rows.push(Row {
            route: route.into(),
            init_ms: 0.0,
            first_ms: 0.0,
            p50_ms: ms(percentile(lat, 0.5)),
            p99_ms: ms(percentile(lat, 0.99)),
            rss_mib: 0.0,
            floor_p50_ms: ms(percentile(lat, 0.5)),
            cpu_ms: 0.0,
            calls: 1.0,
            n: iterations,
        });
    }

    // The routes: (function, label, events for the cold call and each warm call, expected status).
    type EventFn = Box<dyn Fn(usize) -> Value>;
    let k = key.clone();
    let routes: Vec<(&str, &str, EventFn, u16, usize)> = vec![
        (
            "get",
            "get",
            Box::new(move |_| http_event("GET", "/v1/integrations/stripe", "", &k, None)),
            200,
            iterations,
        ),
        (
            "list",
            "list",
            {
                let k = key.clone();
                Box::new(move |_| http_event("GET", "/v1/integrations", "limit=20", &k, None))
            },
            200,
            iterations,
        ),
        (
            "update",
            "update (PATCH)",
            {
                let k = key.clone();
                Box::new(move |i| {
                    http_event(
                        "PATCH",
                        "/v1/integrations/stripe",
                        "",
                        &k,
                        Some(json!({"display_name": format!("n{i}")})),
                    )
                })
            },
            200,
            iterations,
        ),
        (
            "credentials",
            "credentials (PUT)",
            {
                let k = key.clone();
                Box::new(move |i| {
                    http_event(
                        "PUT",
                        "/v1/integrations/stripe/credentials",
                        "",
                        &k,
                        Some(json!({"credentials": {"secret_key": format!("sk_{i}")}})),
                    )
                })
            },
            200,
            iterations,
        ),
        (
            "connect",
            "connect",
            {
                let k = key.clone();
                let types = CONNECTED;
                Box::new(move |i| {
                    http_event(
                        "POST",
                        &format!("/v1/integrations/{}", types[i % types.len()]),
                        "",
                        &k,
                        None,
                    )
                })
            },
            201,
            10,
        ),
        (
            "disconnect",
            "disconnect",
            {
                let k = key.clone();
                let types = &CONNECTED[..=10];
                Box::new(move |i| {
                    http_event(
                        "DELETE",
                        &format!("/v1/integrations/{}", types[i % types.len()]),
                        "",
                        &k,
                        None,
                    )
                })
            },
            200,
            10,
        ),
        (
            "restore",
            "restore",
            {
                let k = key.clone();
                let types = &CONNECTED[..=10];
                Box::new(move |i| {
                    http_event(
                        "POST",
                        &format!("/v1/integrations/{}/restore", types[i % types.len()]),
                        "",
                        &k,
                        None,
                    )
                })
            },
            200,
            10,
        ),
        (
            "disconnect",
            "permanent delete",
            {
                let k = key.clone();
                let types = &CONNECTED[..=10];
                Box::new(move |i| {
                    http_event(
                        "DELETE",
                        &format!("/v1/integrations/{}", types[i % types.len()]),
                        "permanent=true",
                        &k,
                        None,
                    )
                })
            },
            204,
            10,
        ),
    ];
    // `BENCH_ONLY=get,list`: just those routes (quick side-by-side comparisons).
    let only: Option<Vec<String>> = std::env::var("BENCH_ONLY")
        .ok()
        .map(|v| v.split(',').map(|s| s.trim().to_string()).collect());
    for (function, label, event, expected, warm) in routes {
        if only.as_ref().is_some_and(|o| !o.iter().any(|l| l == label)) {
            continue;
        }
        if label == "disconnect" {
            // Disconnect, restore and permanent delete act on the rows `connect` made;
            // give them credentials, as real connectors have (the secret is one more call).
            for t in &CONNECTED[..=10] {
                let entry = shared::domain::catalog::ConnectorType::parse(t).unwrap().entry();
                let credentials: serde_json::Map<String, Value> =
                    entry.required.iter().map(|k| (k.to_string(), json!("bench"))).collect();
                let path = format!("/v1/integrations/{t}/credentials");
                let body = json!({ "credentials": credentials });
                assert_eq!(seed("PUT", &path, Some(body)).await.status(), 200, "{t}");
            }
        }
        let init = Process::median_init(&bin_dir.join(function), function, &env, cold_starts).await;
        let p = Process::spawn(&bin_dir.join(function), function, &env).await;
        let own_init = p.init_time().await;
        let (first, answer) = p.api.invoke(&event(0)).await;
        assert_eq!(answer["statusCode"], expected, "{label} cold: {answer}");
        let mut lat = Vec::new();
        let before = proxy.count();
        let cpu_before = p.cpu_time();
        let mut floor = Vec::new();
        for i in 1..=warm {
            let (d, answer) = p.api.invoke(&event(i)).await;
            assert_eq!(answer["statusCode"], expected, "{label} warm {i}: {answer}");
            lat.push(d);
            floor.push(if label == "list" {
                floor_query().await
            } else {
                floor_get().await
            });
        }
        // The interleaved floor calls went through the proxy too.
        let calls = (proxy.count() - before - warm) as f64 / warm as f64;
        floor.sort();
        let cpu_ms = ms(p.cpu_time() - cpu_before) / warm as f64;
        lat.sort();
        rows.push(Row {
            route: label.into(),
            init_ms: ms(init),
            first_ms: ms(own_init + first),
            p50_ms: ms(percentile(&lat, 0.5)),
            p99_ms: ms(percentile(&lat, 0.99)),
            rss_mib: p.peak_rss_kib() as f64 / 1024.0,
            floor_p50_ms: ms(percentile(&floor, 0.5)),
            cpu_ms,
            calls,
            n: warm,
        });
    }

    let hello_init = rows[0].init_ms;
    println!("| route | cold init ms (× hello) | exec→first answer ms | warm p50 ms (× floor beside it: Query for list, else GetItem) | warm p99 ms | CPU ms / warm call | peak RSS MiB | AWS calls / warm call | warm n |");
    println!("|---|---|---|---|---|---|---|---|---|");
    for r in &rows {
        let floor = if r.floor_p50_ms > 0.0 {
            r.floor_p50_ms
        } else {
            ms(getitem_p50)
        };
        let init = if r.init_ms > 0.0 {
            format!("{:.1} ({:.2}×)", r.init_ms, r.init_ms / hello_init)
        } else {
            "—".into()
        };
        println!(
            "| {} | {} | {:.1} | {:.2} ({:.2}× of {:.2}) | {:.2} | {:.2} | {:.1} | {:.1} | {} |",
            r.route,
            init,
            r.first_ms,
            r.p50_ms,
            r.p50_ms / floor,
            floor,
            r.p99_ms,
            r.cpu_ms,
            r.rss_mib,
            r.calls,
            r.n
        );
    }
}
