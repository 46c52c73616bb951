//! `make bench`: the functions as Lambda runs them. It plays the Lambda Runtime API on
//! loopback and starts each function's binary as Lambda would, under the CPU quota Lambda
//! gives each memory size, against the emulator behind a TLS proxy (a throwaway CA per
//! run, so every connection makes a real handshake with certificate verification). Per
//! route and memory size: the cold first answer (process start → first response), warm
//! p50/p99, CPU per call, peak RSS, AWS calls, and the cost of a million requests, beside
//! the route's floor measured in the same run under the same TLS and quota: a
//! `lambda_runtime` function whose only work is the AWS calls the route cannot do without
//! before it answers (`src/bin/floor.rs`, the steps in `routes.rs`), on rows seeded as
//! the route's.
//!
//! Settings: `BENCH_ITERATIONS` (default 1000) warm calls per read route,
//! `BENCH_WRITE_CALLS` (default 100) per write route,
//! `BENCH_COLD_STARTS` (default 30) fresh processes per cold-start spread,
//! `BENCH_MEMORY_SIZES` (default `128,256,512,1024`), `BENCH_BIN_DIR` (default: the
//! harness's own directory, where cargo put the functions it built with it), `BENCH_ONLY` (comma-separated route names: get, list, update,
//! credentials, connect, disconnect, restore, purge, versions, rollback, sync-report),
//! `BENCH_LEVERS=0` to skip the levers.

mod cost;
mod proxy;
mod routes;
mod runtime;

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use serde_json::Value;

use proxy::{critical_path, Tally, TlsProxy};
use routes::{Route, ROUTES, WRITE_CALLS};
use runtime::{CpuShare, Process};

/// The roots a function trusts on Lambda (compiled into `shared`): the trust file of a
/// run holds the run's CA plus these, so it has the size it has on Lambda.
const AMAZON_TRUST_SERVICES_PEM: &[u8] = shared::config::AMAZON_TRUST_SERVICES_PEM;
const SYSTEM_BUNDLE: &str = "/etc/ssl/certs/ca-certificates.crt";

struct Settings {
    iterations: usize,
    write_calls: usize,
    cold_starts: usize,
    sizes: Vec<u32>,
    bin_dir: PathBuf,
    only: Option<Vec<String>>,
    levers: bool,
}

impl Settings {
    fn from_env() -> Settings {
        let var = |name: &str| std::env::var(name).ok().filter(|v| !v.trim().is_empty());
        let number = |name: &str, default: usize| var(name).and_then(|v| v.parse().ok()).unwrap_or(default);
        Settings {
            iterations: number("BENCH_ITERATIONS", 1000),
            write_calls: number("BENCH_WRITE_CALLS", WRITE_CALLS),
            cold_starts: number("BENCH_COLD_STARTS", 30),
            sizes: var("BENCH_MEMORY_SIZES")
                .unwrap_or_else(|| "128,256,512,1024".into())
                .split(',')
                .map(|s| s.trim().parse().expect("BENCH_MEMORY_SIZES: numbers of MB"))
                .collect(),
            bin_dir: var("BENCH_BIN_DIR").map(PathBuf::from).unwrap_or_else(|| {
                let exe = std::env::current_exe().expect("the harness's own path");
                exe.parent().expect("the harness's directory").to_path_buf()
            }),
            only: var("BENCH_ONLY").map(|v| v.split(',').map(|s| s.trim().to_string()).collect()),
            levers: var("BENCH_LEVERS").as_deref() != Some("0"),
        }
    }
}

/// One route at one memory size.
struct Row {
    route: &'static str,
    function: &'static str,
    mb: u32,
    cold: Spread,
    floor_cold: Spread,
    /// The median of route ÷ floor over the cold starts where both answered (see
    /// [`Cold::paired_ratio`]).
    paired_ratio: f64,
    /// Every cold start, route then floor, in the order they were started.
    cold_pairs: Vec<ColdPair>,
    init_ms: f64,
    p50_ms: f64,
    p99_ms: f64,
    floor_p50_ms: f64,
    floor_p99_ms: f64,
    cpu_ms: f64,
    rss_mib: f64,
    per_call: Tally,
    warm_n: usize,
    /// Calls (cold or warm) that did not get the route's status.
    failures: usize,
    /// The floor's calls that failed (a cold one is left out of its spread, as the
    /// route's are): the emulator times out a transaction now and then under a long run.
    floor_failures: usize,
    /// USD per million warm requests: Lambda, then the route's AWS calls.
    lambda_per_million: f64,
    aws_per_million: f64,
    /// USD a cold start adds over a warm call (its whole first answer is billed).
    cold_extra: f64,
    /// The median warm call's critical path: its AWS calls that ran one after another
    /// (calls that overlapped count once), from the proxy's timestamps.
    path: Vec<String>,
    /// AWS calls per warm call, rounded.
    aws_calls: u64,
    /// Of those, the calls made after the answer (inside the invocation), rounded.
    after_answer_calls: u64,
    /// Warm median from event to the invocation's end (after-answer work included): what
    /// Lambda bills.
    busy_p50_ms: f64,
    /// Internal extensions the function registered (1: it publishes after the answer).
    extensions: usize,
}

/// One round of cold starts: the route's first answer, then its floor's (`None`: failed).
type ColdPair = (Option<Duration>, Option<Duration>);

/// The cold starts of a route and its floor, started alternately: each pair ran back to
/// back on the same machine. `None` where the call failed.
#[derive(Default)]
struct Cold {
    /// (route, floor) per round.
    pairs: Vec<ColdPair>,
    /// The route's init durations (successful starts).
    init: Vec<Duration>,
    /// Cold calls of the route that did not get its status, and of the floor that failed.
    failures: usize,
    floor_failures: usize,
}

impl Cold {
    fn own(&self) -> Vec<Duration> {
        self.pairs.iter().filter_map(|p| p.0).collect()
    }

    fn floor(&self) -> Vec<Duration> {
        self.pairs.iter().filter_map(|p| p.1).collect()
    }

    /// The median of route ÷ floor within each pair: a round's two processes see the
    /// same moment of a shared, drifting machine, which the ratio of the two medians
    /// (over different moments) does not. NaN without a complete pair.
    fn paired_ratio(&self) -> f64 {
        let mut ratios: Vec<f64> = self
            .pairs
            .iter()
            .filter_map(|&(own, floor)| Some(ms(own?) / ms(floor?)))
            .collect();
        ratios.sort_by(f64::total_cmp);
        if ratios.is_empty() {
            return f64::NAN;
        }
        ratios[((ratios.len() as f64 - 1.0) * 0.5).round() as usize]
    }
}

/// Min, median and p90 of a sample, in ms (infinite when empty).
#[derive(Clone, Copy)]
struct Spread {
    min: f64,
    median: f64,
    p90: f64,
}

impl Spread {
    fn of(mut sample: Vec<Duration>) -> Spread {
        sample.sort();
        if sample.is_empty() {
            return Spread {
                min: f64::INFINITY,
                median: f64::INFINITY,
                p90: f64::INFINITY,
            };
        }
        Spread {
            min: ms(sample[0]),
            median: ms(percentile(&sample, 0.5)),
            p90: ms(percentile(&sample, 0.9)),
        }
    }
}

impl std::fmt::Display for Spread {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:.1} / {:.1} / {:.1}", self.min, self.median, self.p90)
    }
}

impl Row {
    /// Median cold first answer over the floor's median.
    fn cold_ratio(&self) -> f64 {
        self.cold.median / self.floor_cold.median
    }
    fn cold_p90_ratio(&self) -> f64 {
        self.cold.p90 / self.floor_cold.p90
    }
    fn p99_ratio(&self) -> f64 {
        self.p99_ms / self.floor_p99_ms
    }
    fn cost_per_million(&self) -> f64 {
        self.lambda_per_million + self.aws_per_million
    }
}

/// What the functions and the floor are started with.
struct World {
    app: shared::App,
    table: String,
    proxy: Arc<TlsProxy>,
    env: HashMap<String, String>,
    floor_env: HashMap<String, String>,
    bin_dir: PathBuf,
}

impl World {
    /// A new table, bus and secret prefix named by `suffix`, and the functions' and the
    /// floors' environment for them.
    async fn new(
        sdk: &aws_config::SdkConfig,
        proxy: Arc<TlsProxy>,
        roots: &Path,
        suffix: &str,
        settings: &Settings,
    ) -> World {
        let config = shared::config::Settings {
            table: format!("bench-{suffix}"),
            event_bus: format!("bench-{suffix}"),
            event_source: "erp.integrations".into(),
            secret_prefix: format!("bench-{suffix}/"),
            // As deployed: the write functions refuse to start inside Lambda without the
            // key's secret (the bench runs them as Lambda runs them); bootstrap makes it.
            fingerprint_key: shared::config::FingerprintKey::Secret(format!("bench-{suffix}-fingerprint-key")),
            secrets_kms_key_id: None,
            metric_namespace: "Connectors/bench".into(),
        };
        shared::admin::bootstrap(sdk, &config).await.expect("bootstrap");
        let app = shared::App::new(sdk, config.clone(), Arc::new(shared::ports::SystemClock));
        let env: HashMap<String, String> = [
            ("AWS_ENDPOINT_URL", proxy.url.clone()),
            ("AWS_REGION", "us-east-1".into()),
            ("AWS_ACCESS_KEY_ID", "testing".into()),
            ("AWS_SECRET_ACCESS_KEY", "testing".into()),
            ("AWS_EC2_METADATA_DISABLED", "true".into()),
            ("CONNECTORS_TABLE", config.table.clone()),
            ("EVENT_BUS_NAME", config.event_bus.clone()),
            ("EVENT_SOURCE", config.event_source.clone()),
            ("SECRET_PREFIX", config.secret_prefix.clone()),
            (
                "IDEMPOTENCY_FINGERPRINT_KEY_SECRET",
                format!("bench-{suffix}-fingerprint-key"),
            ),
            ("METRIC_NAMESPACE", config.metric_namespace.clone()),
            ("SSL_CERT_FILE", roots.display().to_string()),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v))
        .collect();
        let mut floor_env = env.clone();
        floor_env.insert("FLOOR_TABLE".into(), config.table.clone());
        World {
            app,
            table: config.table,
            proxy,
            env,
            floor_env,
            bin_dir: settings.bin_dir.clone(),
        }
    }

    async fn drop_table(&self, sdk: &aws_config::SdkConfig) {
        self.proxy.settle().await;
        let _ = aws_sdk_dynamodb::Client::new(sdk)
            .delete_table()
            .table_name(&self.table)
            .send()
            .await;
    }

    fn binary(&self, name: &str) -> PathBuf {
        self.bin_dir.join(name)
    }

    /// `route`'s floor, started as a function is.
    async fn floor(&self, route: &Route, share: &CpuShare) -> Process {
        let mut env = self.floor_env.clone();
        env.insert("FLOOR_STEPS".into(), route.floor.into());
        Process::spawn(&self.binary("floor"), "floor", share, &env).await
    }

    /// Cold first answers of `route` and of its floor, started alternately (each in a
    /// fresh group) so that both see the same machine; the route's median init too, and
    /// how many cold calls of the route did not get its status and of the floor failed
    /// (left out of the spreads).
    async fn cold(&self, route: &Route, share: &CpuShare, n: usize) -> Cold {
        let mut cold = Cold::default();
        for _ in 0..n {
            let floor_ready = route.prepare(&self.app, 1).await;
            let event = &route.floor_events(&self.app, &floor_ready, 1).await[0];
            self.proxy.settle().await;
            let f = self.floor(route, share).await;
            let (d, _, answer) = f.cold_first_answer(event).await;
            let floor = if answer == Value::Bool(true) {
                Some(d)
            } else {
                eprintln!("{}'s floor at {} MB, cold: {answer}", route.name, share.mb);
                cold.floor_failures += 1;
                None
            };
            drop(f);
            self.proxy.settle().await;
            let ready = route.prepare(&self.app, 1).await;
            let p = Process::spawn(&self.binary(route.function), route.function, share, &self.env).await;
            let (d, i, answer) = p.cold_first_answer(&route.event(0, &ready)).await;
            let own = if answer["statusCode"] == route.status {
                cold.init.push(i);
                Some(d)
            } else {
                eprintln!("{} at {} MB, cold: {}", route.name, share.mb, answer["statusCode"]);
                cold.failures += 1;
                None
            };
            cold.pairs.push((own, floor));
        }
        cold
    }

    async fn measure(&self, route: &Route, share: &CpuShare, settings: &Settings) -> Row {
        let mut cold_starts = self.cold(route, share, settings.cold_starts).await;
        let (cold, floor_cold) = (Spread::of(cold_starts.own()), Spread::of(cold_starts.floor()));
        let init_ms = ms(median(&mut cold_starts.init));
        let (mut failures, mut floor_failures) = (cold_starts.failures, cold_starts.floor_failures);
        let warm = if route.read {
            settings.iterations
        } else {
            settings.write_calls
        };
        self.proxy.settle().await;
        let ready = route.prepare(&self.app, warm + 1).await;
        let floor_ready = route.prepare(&self.app, warm + 1).await;
        let floor_events = route.floor_events(&self.app, &floor_ready, warm + 1).await;
        self.proxy.settle().await;
        let p = Process::spawn(&self.binary(route.function), route.function, share, &self.env).await;
        let f = self.floor(route, share).await;
        // Call 0 of each warms the process; it is the cold call measured above.
        p.invoke(&route.event(0, &ready)).await;
        f.invoke(&floor_events[0]).await;
        let (mut lat, mut floor) = (Vec::new(), Vec::new());
        let mut tally = Tally::default();
        let mut billed = 0.0;
        let cpu_before = p.cpu_time();
        let mut paths = Vec::new();
        let (mut busy, mut after_answer) = (Vec::new(), 0);
        for (call, floor_event) in floor_events.iter().enumerate().skip(1) {
            let before = self.proxy.tally();
            let mark = self.proxy.span_mark();
            let invoked = p.invoke(&route.event(call, &ready)).await;
            // The caller waits for the calls made before the answer; the rest (publish and
            // clear, inside the invocation but after the answer) it does not.
            let (before_answer, after): (Vec<_>, Vec<_>) = self
                .proxy
                .spans_since(mark)
                .into_iter()
                .partition(|span| span.start < invoked.at);
            paths.push(critical_path(&before_answer));
            after_answer += after.len();
            if invoked.body["statusCode"] != route.status {
                eprintln!(
                    "{} at {} MB, warm call {call}: {}",
                    route.name, share.mb, invoked.body["statusCode"]
                );
                failures += 1;
            }
            tally = tally.plus(self.proxy.tally().minus(before));
            // Lambda bills the invocation until the extensions are done too.
            billed += cost::billed_ms(ms(invoked.busy));
            busy.push(invoked.busy);
            lat.push(invoked.answer);
            let floor_call = f.invoke(floor_event).await;
            if floor_call.body != Value::Bool(true) {
                eprintln!(
                    "{}'s floor at {} MB, warm call {call}: {}",
                    route.name, share.mb, floor_call.body
                );
                floor_failures += 1;
            }
            floor.push(floor_call.answer);
        }
        let cpu_ms = ms(p.cpu_time() - cpu_before) / warm as f64;
        let mean_billed = billed / warm as f64;
        lat.sort();
        floor.sort();
        paths.sort_by_key(Vec::len);
        let path = paths.get(paths.len() / 2).cloned().unwrap_or_default();
        Row {
            route: route.name,
            function: route.function,
            mb: share.mb,
            cold,
            floor_cold,
            paired_ratio: cold_starts.paired_ratio(),
            cold_pairs: cold_starts.pairs,
            init_ms,
            p50_ms: ms(percentile(&lat, 0.5)),
            p99_ms: ms(percentile(&lat, 0.99)),
            floor_p50_ms: ms(percentile(&floor, 0.5)),
            floor_p99_ms: ms(percentile(&floor, 0.99)),
            cpu_ms,
            rss_mib: p.peak_rss_kib() as f64 / 1024.0,
            per_call: tally.per(warm as u64),
            warm_n: warm,
            failures,
            floor_failures,
            lambda_per_million: cost::lambda(mean_billed, share.mb) * 1e6,
            aws_per_million: cost::aws_calls(tally, warm) * 1e6,
            cold_extra: cost::lambda(cost::billed_ms(cold.median), share.mb) - cost::lambda(mean_billed, share.mb),
            path,
            aws_calls: (tally.calls as f64 / warm.max(1) as f64).round() as u64,
            after_answer_calls: (after_answer as f64 / warm.max(1) as f64).round() as u64,
            busy_p50_ms: ms(median(&mut busy)),
            extensions: p.extensions(),
        }
    }
}

#[tokio::main]
async fn main() {
    let settings = Settings::from_env();
    let endpoint = std::env::var("AWS_ENDPOINT_URL").expect("run `make bench` (it starts the emulator)");
    let suffix = uuid::Uuid::new_v4().simple().to_string()[..10].to_string();
    // The harness talks to the emulator directly, with patient timeouts (what it does is
    // not measured); only the measured processes go through the TLS proxy.
    let sdk = shared::config::sdk_config()
        .await
        .to_builder()
        .timeout_config(
            aws_config::timeout::TimeoutConfig::builder()
                .connect_timeout(Duration::from_secs(5))
                .operation_attempt_timeout(Duration::from_secs(30))
                .operation_timeout(Duration::from_secs(60))
                .build(),
        )
        .build();
    let proxy = Arc::new(TlsProxy::start(endpoint).await);
    let dir = std::env::temp_dir().join(format!("connectors-bench-{suffix}"));
    std::fs::create_dir_all(&dir).unwrap();
    let lambda_roots = proxy.trust_file(&dir, "lambda-roots.pem", AMAZON_TRUST_SERVICES_PEM);

    let selected: Vec<&Route> = ROUTES
        .iter()
        .filter(|r| settings.only.as_ref().is_none_or(|o| o.iter().any(|n| n == r.name)))
        .collect();
    let mut rows = Vec::new();
    let mut quota_enforced = true;
    for &mb in &settings.sizes {
        let share = CpuShare::new(mb);
        quota_enforced &= share.enforced();
        for route in &selected {
            // A table of its own per route and size, dropped after it: moto copies every
            // table on every transaction, so with 100 warm writes per route a shared
            // table slowed the later routes into timeouts.
            let name = format!("{suffix}-{mb}-{}", route.name);
            let world = World::new(&sdk, proxy.clone(), &lambda_roots, &name, &settings).await;
            rows.push(world.measure(route, &share, &settings).await);
            world.drop_table(&sdk).await;
        }
    }
    print_table(&rows, quota_enforced);
    if settings.levers {
        let world = World::new(
            &sdk,
            proxy.clone(),
            &lambda_roots,
            &format!("{suffix}-levers"),
            &settings,
        )
        .await;
        levers(&world, &dir).await;
        world.drop_table(&sdk).await;
    }
    let chosen = choose(&rows);
    let template = template_memory_sizes();
    println!("\nmemory size per function: cheapest size meeting the targets (template.yaml has)");
    for (function, pick) in &chosen {
        let has = template.get(function.as_str()).copied();
        match pick {
            Some(mb) => println!("  {function}: {mb} MB (template: {has:?})"),
            None => println!("  {function}: no measured size meets the targets (template: {has:?})"),
        }
    }
    println!();
    for r in &rows {
        let at_chosen = template.get(r.function).copied() == Some(r.mb);
        if r.mb == 128 || at_chosen {
            println!(
                "cold-first-answer route={} mb={} ms={:.1} floor_ms={:.1} ratio={:.2} p90_ratio={:.2} paired_ratio={:.2}",
                r.route,
                r.mb,
                r.cold.median,
                r.floor_cold.median,
                r.cold_ratio(),
                r.cold_p90_ratio(),
                r.paired_ratio
            );
        }
    }
    // The raw samples behind every spread, for a second look at a surprising median.
    for r in &rows {
        let list = |side: fn(&ColdPair) -> Option<Duration>| {
            r.cold_pairs
                .iter()
                .map(|p| side(p).map_or("failed".to_string(), |d| format!("{:.1}", ms(d))))
                .collect::<Vec<_>>()
                .join(",")
        };
        println!(
            "cold-samples route={} mb={} route_ms={} floor_ms={}",
            r.route,
            r.mb,
            list(|p| p.0),
            list(|p| p.1)
        );
    }
    for r in rows.iter().filter(|r| r.mb == 128) {
        println!(
            "critical-path route={} round_trips={} aws_calls={} after_answer_calls={} path={}",
            r.route,
            r.path.len(),
            r.aws_calls,
            r.after_answer_calls,
            r.path.join(">")
        );
    }
    let _ = std::fs::remove_dir_all(&dir);
}

fn print_table(rows: &[Row], quota: bool) {
    println!(
        "CPU quota per memory size: {}",
        if quota {
            "enforced (cgroup cpu, period × MB / 1769)"
        } else {
            "NOT enforced (no writable cgroup cpu controller)"
        }
    );
    println!("| route | MB | cold first answer ms, min / median / p90 | floor, min / median / p90 | × floor, median (p90) | init ms | warm p50 ms (floor) | warm p99 ms (floor, ×) | billed p50 ms (extensions) | CPU ms/call | peak RSS MiB | AWS calls (RRU/WRU/SM/events) per call | USD per 1M warm: Lambda + AWS = total | a cold start adds USD | warm n | failed calls (floor's) |");
    println!("|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|");
    for r in rows {
        println!(
            "| {} | {} | {} | {} | {:.2}× ({:.2}×) | {:.1} | {:.2} ({:.2}) | {:.2} ({:.2}, {:.2}×) | {:.2} ({}) | {:.2} | {:.1} | {} ({}/{}/{}/{}) | {:.2} + {:.2} = {:.2} | {:.7} | {} | {} ({}) |",
            r.route,
            r.mb,
            r.cold,
            r.floor_cold,
            r.cold_ratio(),
            r.cold_p90_ratio(),
            r.init_ms,
            r.p50_ms,
            r.floor_p50_ms,
            r.p99_ms,
            r.floor_p99_ms,
            r.p99_ratio(),
            r.busy_p50_ms,
            r.extensions,
            r.cpu_ms,
            r.rss_mib,
            r.per_call.calls,
            r.per_call.read_units,
            r.per_call.write_units,
            r.per_call.secrets_calls,
            r.per_call.events,
            r.lambda_per_million,
            r.aws_per_million,
            r.cost_per_million(),
            r.cold_extra,
            r.warm_n,
            r.failures,
            r.floor_failures
        );
    }
}

/// Per function, the cheapest measured size at which every route it serves meets the
/// targets: every call answered as documented, cold first answer ≤ 1.25× the route's
/// floor and warm p99 ≤ 1.5× its floor's.
fn choose(rows: &[Row]) -> BTreeMap<String, Option<u32>> {
    let mut by_function: BTreeMap<String, BTreeMap<u32, Vec<&Row>>> = BTreeMap::new();
    for r in rows {
        by_function
            .entry(r.function.into())
            .or_default()
            .entry(r.mb)
            .or_default()
            .push(r);
    }
    by_function
        .into_iter()
        .map(|(function, sizes)| {
            let meets = |r: &&Row| r.failures == 0 && r.cold_ratio() <= 1.25 && r.p99_ratio() <= 1.5;
            let cost = |rs: &Vec<&Row>| rs.iter().map(|r| r.cost_per_million()).sum::<f64>();
            let pick = sizes
                .iter()
                .filter(|(_, rs)| rs.iter().all(meets))
                .min_by(|a, b| cost(a.1).total_cmp(&cost(b.1)))
                .map(|(mb, _)| *mb);
            (function, pick)
        })
        .collect()
}

/// `MemorySize` of each function in template.yaml (its own, else the global one).
fn template_memory_sizes() -> BTreeMap<String, u32> {
    let text = std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("../template.yaml")).unwrap();
    let t: serde_yaml_ng::Value = serde_yaml_ng::from_str(&text).unwrap();
    let global = t["Globals"]["Function"]["MemorySize"].as_u64();
    t["Resources"]
        .as_mapping()
        .unwrap()
        .values()
        .filter(|r| r["Type"] == "AWS::Serverless::Function")
        .filter_map(|r| {
            let binary = r["Metadata"]["BuildProperties"]["Binary"].as_str()?.to_string();
            let mb = r["Properties"]["MemorySize"].as_u64().or(global)?;
            Some((binary, mb as u32))
        })
        .collect()
}

/// The levers, each side by side at 128 MB on the floor and on get: opening the
/// connection during init or not, and a trust store of Lambda's size against the whole
/// system bundle.
async fn levers(world: &World, dir: &Path) {
    let share = CpuShare::new(128);
    let n = 20;
    let get = &ROUTES[0];
    let mut floor = world.floor_env.clone();
    floor.insert("FLOOR_STEPS".into(), "read".into());
    let mut warm_up = floor.clone();
    warm_up.insert("FLOOR_WARM_UP".into(), "1".into());
    let system = std::fs::read(SYSTEM_BUNDLE).unwrap_or_default();
    let big_roots = world.proxy.trust_file(dir, "system-roots.pem", &system);
    let mut big_env = world.env.clone();
    big_env.insert("SSL_CERT_FILE".into(), big_roots.display().to_string());
    let ready = get.prepare(&world.app, 1).await;
    let read = get.floor_events(&world.app, &ready, 1).await.remove(0);
    let (mut a, mut b, mut c, mut d) = (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    for _ in 0..n {
        for (env, binary, event, out) in [
            (&floor, "floor", read.clone(), &mut a),
            (&warm_up, "floor", read.clone(), &mut b),
            (&world.env, "get", get.event(0, &ready), &mut c),
            (&big_env, "get", get.event(0, &ready), &mut d),
        ] {
            let p = Process::spawn(&world.binary(binary), binary, &share, env).await;
            out.push(p.cold_first_answer(&event).await.0);
        }
    }
    let certs = |pem: &[u8]| String::from_utf8_lossy(pem).matches("BEGIN CERTIFICATE").count() + 1;
    println!("\nlevers at 128 MB, cold first answer, median of {n} each, started alternately:");
    println!(
        "  floor, GetItem in the first invocation:  {:.1} ms",
        ms(median(&mut a))
    );
    println!(
        "  floor, GetItem already during init:      {:.1} ms",
        ms(median(&mut b))
    );
    println!(
        "  get, {} trusted roots (as on Lambda):    {:.1} ms",
        certs(AMAZON_TRUST_SERVICES_PEM),
        ms(median(&mut c))
    );
    println!(
        "  get, {} trusted roots (system bundle): {:.1} ms",
        certs(&system),
        ms(median(&mut d))
    );
}

fn median(v: &mut [Duration]) -> Duration {
    v.sort();
    if v.is_empty() {
        return Duration::MAX;
    }
    percentile(v, 0.5)
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    sorted[((sorted.len() as f64 - 1.0) * p).round() as usize]
}

/// Milliseconds; `Duration::MAX` (no sample) is infinite.
fn ms(d: Duration) -> f64 {
    if d == Duration::MAX {
        return f64::INFINITY;
    }
    d.as_secs_f64() * 1000.0
}
