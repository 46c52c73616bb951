//! The sweeper at scale, in simulated time: thousands of due items of every kind, a
//! latency per AWS call, and dependencies that are slow or fail every call.
//!
//! Calls wait on the simulated clock ([`Timers`]), so the sweep's items in flight overlap
//! as they do on Lambda, and a run is held to its deadline exactly as
//! `shared::sweeper::run` holds it: the sweep gets the budget, and a run still going at
//! the hard stop is cut there with its report as it stands (the EMF line it writes).

use std::collections::BTreeMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

use shared::config::Settings;
use shared::domain::api_key::{KeyId, Principal, Scope};
use shared::domain::catalog::ConnectorType;
use shared::domain::edits::Edits;
use shared::domain::error::Dependency;
use shared::domain::ids::{ConnectorId, EntityId};
use shared::domain::lifecycle;
use shared::memory::{Call, Fault, FaultFuture, Hooks, Memory};
use shared::ports::{Clock, DependencyError, OutboxRecord, SecretGuard, SecretRef, GUARD_GRACE_SECONDS};
use shared::service::{SweepBudget, SweepReport};
use shared::sweeper::HARD_STOP_MARGIN_MS;
use shared::App;

use crate::exec::{step, BoxedTask, SimClock};

/// Wake-up times of calls in flight (simulated epoch ms): the driver moves the clock to
/// the earliest.
#[derive(Default)]
pub struct Timers(Mutex<BTreeMap<i64, usize>>);

impl Timers {
    fn add(&self, at: i64) {
        *self.0.lock().unwrap().entry(at).or_default() += 1;
    }
    fn remove(&self, at: i64) {
        let mut timers = self.0.lock().unwrap();
        if let Some(n) = timers.get_mut(&at) {
            *n -= 1;
            if *n == 0 {
                timers.remove(&at);
            }
        }
    }
    fn earliest(&self) -> Option<i64> {
        self.0.lock().unwrap().keys().next().copied()
    }
}

/// Ready once the simulated clock reaches `until`.
struct Sleep {
    until: i64,
    clock: Arc<SimClock>,
    timers: Arc<Timers>,
    registered: bool,
}

impl Future for Sleep {
    type Output = ();
    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        if self.clock.ms() >= self.until {
            if self.registered {
                self.timers.remove(self.until);
                self.registered = false;
            }
            return Poll::Ready(());
        }
        if !self.registered {
            self.timers.add(self.until);
            self.registered = true;
        }
        cx.waker().wake_by_ref();
        Poll::Pending
    }
}

impl Drop for Sleep {
    fn drop(&mut self) {
        if self.registered {
            self.timers.remove(self.until);
        }
    }
}

/// The simulated clock whose timer registers with [`Timers`], so that a wait on it (the
/// sweeper's Secrets Manager rate cap) moves the driver's clock like a call's latency.
struct ScaleClock {
    clock: Arc<SimClock>,
    timers: Arc<Timers>,
}

impl Clock for ScaleClock {
    fn now(&self) -> shared::domain::time::Timestamp {
        self.clock.now()
    }
    fn now_ms(&self) -> i64 {
        self.clock.ms()
    }
    fn timer_ms(&self) -> i64 {
        self.clock.ms()
    }
    fn sleep_until_ms(&self, deadline_ms: i64) -> Pin<Box<dyn Future<Output = ()> + Send>> {
        Box::pin(Sleep {
            until: deadline_ms,
            clock: self.clock.clone(),
            timers: self.timers.clone(),
            registered: false,
        })
    }
}

/// Milliseconds per call, by dependency (and DynamoDB operation).
#[derive(Clone, Copy, Debug)]
pub struct Latency {
    /// `GetItem`, `PutItem`, `DeleteItem`.
    pub dynamo_item_ms: i64,
    pub dynamo_transact_ms: i64,
    pub dynamo_query_ms: i64,
    pub secrets_ms: i64,
    pub events_ms: i64,
}

impl Latency {
    /// Typical in-region latencies: DynamoDB single-digit milliseconds per item call (AWS:
    /// "consistent single-digit millisecond"), a transaction and a query a few times that,
    /// Secrets Manager and EventBridge tens of milliseconds.
    pub const NOMINAL: Latency = Latency {
        dynamo_item_ms: 8,
        dynamo_transact_ms: 25,
        dynamo_query_ms: 15,
        secrets_ms: 60,
        events_ms: 40,
    };

    fn of(&self, call: &Call) -> i64 {
        match (call.dependency, call.operation) {
            (Dependency::DynamoDb, "TransactWriteItems") => self.dynamo_transact_ms,
            (Dependency::DynamoDb, "Query") => self.dynamo_query_ms,
            (Dependency::DynamoDb, _) => self.dynamo_item_ms,
            (Dependency::SecretsManager, _) => self.secrets_ms,
            (Dependency::EventBridge, _) => self.events_ms,
        }
    }
}

/// How the simulated AWS behaves during the runs.
#[derive(Clone, Debug)]
pub struct Conditions {
    pub latency: Latency,
    /// Calls that fail, every time (after their latency): a dependency, and an
    /// operation of it or every operation (`None`).
    pub failing: Vec<(Dependency, Option<&'static str>)>,
}

/// Latency and failures per call, on the simulated clock; off while the world is seeded.
pub struct ScaleHooks {
    clock: Arc<SimClock>,
    timers: Arc<Timers>,
    conditions: Conditions,
    pub enabled: AtomicBool,
    /// Secrets Manager calls per connector (how often each item's secret was tried).
    pub secret_calls: Mutex<BTreeMap<ConnectorId, usize>>,
    /// Calls by dependency and operation.
    pub calls: Mutex<BTreeMap<(&'static str, &'static str), usize>>,
    /// Secrets Manager calls started in each simulated second.
    pub secret_calls_per_second: Mutex<BTreeMap<i64, usize>>,
}

impl Hooks for ScaleHooks {
    fn call(&self, call: Call) -> FaultFuture {
        if !self.enabled.load(Ordering::Relaxed) {
            return Box::pin(std::future::ready(Fault::None));
        }
        let dep = match call.dependency {
            Dependency::DynamoDb => "dynamodb",
            Dependency::SecretsManager => "secretsmanager",
            Dependency::EventBridge => "events",
        };
        *self.calls.lock().unwrap().entry((dep, call.operation)).or_default() += 1;
        if let Some(id) = call.secret_of {
            *self.secret_calls.lock().unwrap().entry(id).or_default() += 1;
        }
        if call.dependency == Dependency::SecretsManager {
            let second = self.clock.ms().div_euclid(1000);
            *self.secret_calls_per_second.lock().unwrap().entry(second).or_default() += 1;
        }
        let fails = self
            .conditions
            .failing
            .iter()
            .any(|(d, op)| *d == call.dependency && op.is_none_or(|o| o == call.operation));
        let sleep = Sleep {
            until: self.clock.ms() + self.conditions.latency.of(&call),
            clock: self.clock.clone(),
            timers: self.timers.clone(),
            registered: false,
        };
        Box::pin(async move {
            sleep.await;
            if fails {
                Fault::Before(DependencyError::Unavailable(call.dependency))
            } else {
                Fault::None
            }
        })
    }
}

/// One scheduled run as the sweeper function ends it.
#[derive(Clone, Debug)]
pub struct Run {
    /// The report as the run's EMF line has it (cut or not).
    pub report: SweepReport,
    /// Cut at the hard stop rather than finished.
    pub cut: bool,
    /// From the run's start to its report, simulated ms.
    pub elapsed_ms: i64,
    pub deadline_ms: i64,
}

/// A world of due items and the sweeper's schedule over it.
pub struct ScaleWorld {
    pub app: App,
    pub memory: Memory,
    pub clock: Arc<SimClock>,
    pub timers: Arc<Timers>,
    pub hooks: Arc<ScaleHooks>,
}

/// How many due items of each kind to seed.
#[derive(Clone, Copy, Debug)]
pub struct Load {
    pub expiries: usize,
    pub records: usize,
    pub guards: usize,
}

impl ScaleWorld {
    pub fn new(conditions: Conditions, load: Load) -> Self {
        let clock = Arc::new(SimClock::new(1_700_000_000_000));
        let timers = Arc::new(Timers::default());
        let hooks = Arc::new(ScaleHooks {
            clock: clock.clone(),
            timers: timers.clone(),
            conditions,
            enabled: AtomicBool::new(false),
            secret_calls: Mutex::new(BTreeMap::new()),
            calls: Mutex::new(BTreeMap::new()),
            secret_calls_per_second: Mutex::new(BTreeMap::new()),
        });
        let scale_clock = Arc::new(ScaleClock {
            clock: clock.clone(),
            timers: timers.clone(),
        });
        let memory = Memory::new(hooks.clone(), scale_clock, "scale/");
        // As the sweeper function runs it: Secrets Manager held to its rate cap.
        let app = shared::sweeper::with_secret_rate_cap(memory.app(Settings::from_lookup(|_| None)));
        let world = ScaleWorld {
            app,
            memory,
            clock,
            timers,
            hooks,
        };
        world.seed(load);
        world.hooks.enabled.store(true, Ordering::Relaxed);
        world
    }

    /// Due items, written through the store with faults and latency off: disconnected
    /// rows past their window, outbox records past their grace (a third with a secret to
    /// force-delete), guards past their grace whose row is gone.
    fn seed(&self, load: Load) {
        let now = self.clock.now();
        let types: Vec<ConnectorType> = ConnectorType::all().collect();
        let store = &self.app.service.store;
        let mut n: u128 = 0;
        let mut entity = || {
            n += 1;
            EntityId::from(uuid::Uuid::from_u128(0x5ca1e << 64 | n))
        };
        let principal = |entity_id| Principal {
            entity_id,
            key_id: KeyId::parse("key_seed00000000").expect("a key id"),
            livemode: true,
            scopes: Scope::ALL.into(),
        };
        crate::exec::run_to_end(Box::pin(async {
            let long_ago = now.plus_days(-8);
            for i in 0..load.expiries {
                let p = principal(entity());
                let row = lifecycle::connect(&p, types[i % types.len()], &Edits::default(), long_ago).unwrap();
                let mut gone = lifecycle::disconnect(&row, long_ago).unwrap();
                gone.version = row.version + 1;
                store.save(&gone, None, &[], None).await.unwrap();
            }
            for i in 0..load.records {
                let p = principal(entity());
                let row = lifecycle::connect(&p, types[i % types.len()], &Edits::default(), now).unwrap();
                let created = now.plus_seconds(-600);
                let record = OutboxRecord {
                    event_id: format!("evt_scale_{i:06}"),
                    detail_type: "integration.updated".into(),
                    detail: "{}".into(),
                    created_at: created,
                    entity_id: row.entity_id,
                    connector_type: row.connector_type,
                    connector_id: row.id,
                    secret_action: (i % 3 == 0).then_some(shared::ports::SecretAction::ForceDelete),
                    attempts: 0,
                    next_attempt_at: created.plus_seconds(60),
                };
                store.save(&row, None, &[record], None).await.unwrap();
            }
            for i in 0..load.guards {
                let secret = SecretRef {
                    entity_id: entity(),
                    connector_id: ConnectorId::new_random(),
                    connector_type: types[i % types.len()],
                };
                let guard = SecretGuard::new(secret, now.plus_seconds(-GUARD_GRACE_SECONDS - 60));
                store.guard_secret(&guard).await.unwrap();
            }
        }));
    }

    /// Due items left of each kind (as the index would list them now).
    pub fn due(&self) -> (usize, usize, usize) {
        let state = self.memory.state.lock().unwrap();
        let now = self.clock.now();
        let expiries = state.rows.values().filter(|r| r.row.is_expired(now)).count();
        let records = state.outbox.len();
        let guards = state.guards.len();
        (expiries, records, guards)
    }

    /// One run with `seconds` until its deadline, driven in simulated time.
    pub fn run(&self, seconds: i64) -> Run {
        let started = self.clock.ms();
        let deadline_ms = started + seconds * 1000;
        let hard_stop = deadline_ms - HARD_STOP_MARGIN_MS;
        let progress = Mutex::new(SweepReport::default());
        let mut cut = false;
        {
            let service = &self.app.service;
            let progress = &progress;
            let mut task: BoxedTask<'_, _> =
                Box::pin(async move { service.sweep_into(SweepBudget::until(deadline_ms), progress).await });
            let mut idle_polls = 0;
            loop {
                if step(&mut task).is_some() {
                    break;
                }
                match self.timers.earliest() {
                    Some(next) if next > hard_stop => {
                        self.clock.advance_ms(hard_stop - self.clock.ms());
                        cut = true;
                        break;
                    }
                    Some(next) => {
                        self.clock.advance_ms(next - self.clock.ms());
                        idle_polls = 0;
                    }
                    // A combinator yielded without waiting on a call: poll again.
                    None => {
                        idle_polls += 1;
                        assert!(idle_polls < 1_000, "a sweep waits on nothing");
                    }
                }
            }
        }
        let mut report = progress.into_inner().unwrap();
        if cut {
            report.cut();
        }
        Run {
            report,
            cut,
            elapsed_ms: self.clock.ms() - started,
            deadline_ms: seconds * 1000,
        }
    }

    /// Moves the clock on to `at_ms` (the next scheduled run), if it is not there yet.
    pub fn wait_until(&self, at_ms: i64) {
        if at_ms > self.clock.ms() {
            self.clock.advance_ms(at_ms - self.clock.ms());
        }
    }

    /// `runs` scheduled runs, one every `period_seconds`, each with `timeout_seconds`.
    pub fn schedule(&self, runs: usize, period_seconds: i64, timeout_seconds: i64) -> Vec<Run> {
        (0..runs)
            .map(|_| {
                let start = self.clock.ms();
                let run = self.run(timeout_seconds);
                self.wait_until(start + period_seconds * 1000);
                run
            })
            .collect()
    }
}

/// One line per run, for the docs: items per kind, what was left, cut or not.
pub fn describe(runs: &[Run]) -> String {
    let mut out = String::new();
    for (i, run) in runs.iter().enumerate() {
        let r = &run.report;
        out.push_str(&format!(
            "run {i:2}: shard {:2} | attempted expiries {:4} records {:4} guards {:4} | expired {:4} republished {:4} guards done {:4} failed {:4} | left {:4} | budget_exhausted {} cut {} | {:.1}s of {}s\n",
            r.first_shard,
            r.expiries_attempted,
            r.outbox_attempted,
            r.guards_attempted,
            r.expired,
            r.republished,
            r.orphans_deleted + r.guards_cleared,
            r.failed,
            r.left_for_next_run,
            r.budget_exhausted,
            run.cut,
            run.elapsed_ms as f64 / 1000.0,
            run.deadline_ms / 1000,
        ));
    }
    out
}
