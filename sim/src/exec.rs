//! The simulated world's machinery: a clock the simulator moves, fault hooks drawing from
//! a seeded generator, and a one-thread executor that polls one request at a time, one
//! AWS call at a time, in an order the seed decides.

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Waker};

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use shared::domain::error::Dependency;
use shared::domain::time::Timestamp;
use shared::memory::{Call, Fault, FaultFuture, Hooks};
use shared::ports::{Clock, DependencyError};

/// The simulated wall clock, in milliseconds, and its timer.
pub struct SimClock(Arc<AtomicI64>);

impl SimClock {
    pub fn new(start_ms: i64) -> Self {
        SimClock(Arc::new(AtomicI64::new(start_ms)))
    }
    pub fn advance_ms(&self, ms: i64) {
        self.0.fetch_add(ms, Ordering::SeqCst);
    }
    pub fn ms(&self) -> i64 {
        self.0.load(Ordering::SeqCst)
    }
    pub fn seconds(&self) -> i64 {
        self.ms().div_euclid(1000)
    }
}

impl Clock for SimClock {
    fn now(&self) -> Timestamp {
        Timestamp::from_unix(self.seconds()).expect("the simulated clock stays in range")
    }

    fn now_ms(&self) -> i64 {
        self.ms()
    }

    fn timer_ms(&self) -> i64 {
        self.ms()
    }

    /// Ready once the simulated clock has reached `deadline_ms`: a request's deadline
    /// cuts its future in the executor, between two of its AWS calls.
    fn sleep_until_ms(&self, deadline_ms: i64) -> Pin<Box<dyn Future<Output = ()> + Send>> {
        Box::pin(Until {
            now: self.0.clone(),
            deadline_ms,
        })
    }
}

struct Until {
    now: Arc<AtomicI64>,
    deadline_ms: i64,
}

impl Future for Until {
    type Output = ();
    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        if self.now.load(Ordering::SeqCst) >= self.deadline_ms {
            Poll::Ready(())
        } else {
            // The clock moves between polls without waking anyone: ask to be polled again.
            cx.waker().wake_by_ref();
            Poll::Pending
        }
    }
}

/// Faults injected, by kind.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct FaultCounts {
    pub throttled: u64,
    pub unavailable: u64,
    /// Took effect, then reported a failure.
    pub failed_after_effect: u64,
    /// Requests (or sweeps) killed between two calls.
    pub killed: u64,
    pub calls: u64,
}

impl FaultCounts {
    pub fn add(&mut self, other: &FaultCounts) {
        self.throttled += other.throttled;
        self.unavailable += other.unavailable;
        self.failed_after_effect += other.failed_after_effect;
        self.killed += other.killed;
        self.calls += other.calls;
    }
}

/// Probability of each fault per AWS call.
#[derive(Clone, Copy, Debug)]
pub struct FaultRates {
    pub throttled: f64,
    pub unavailable: f64,
    pub after_effect: f64,
}

pub struct SimHooks {
    rng: Mutex<ChaCha8Rng>,
    pub enabled: AtomicBool,
    rates: FaultRates,
    pub counts: Mutex<FaultCounts>,
    /// The last calls' descriptions, for the trace.
    pub log: Mutex<Vec<String>>,
    pub logging: AtomicBool,
    /// Which task is being polled (for the trace).
    pub current: Mutex<String>,
}

impl SimHooks {
    pub fn new(seed: u64, rates: FaultRates) -> Arc<Self> {
        Arc::new(SimHooks {
            rng: Mutex::new(ChaCha8Rng::seed_from_u64(seed ^ 0x5eed_fa17)),
            enabled: AtomicBool::new(true),
            rates,
            counts: Mutex::new(FaultCounts::default()),
            log: Mutex::new(Vec::new()),
            logging: AtomicBool::new(false),
            current: Mutex::new(String::new()),
        })
    }

    fn draw(&self, call: Call) -> Fault {
        let mut counts = self.counts.lock().unwrap();
        counts.calls += 1;
        let fault = if self.enabled.load(Ordering::Relaxed) {
            let r: f64 = self.rng.lock().unwrap().random();
            let FaultRates {
                throttled,
                unavailable,
                after_effect,
            } = self.rates;
            if r < throttled {
                counts.throttled += 1;
                Fault::Before(DependencyError::Throttled(call.dependency))
            } else if r < throttled + unavailable {
                counts.unavailable += 1;
                Fault::Before(DependencyError::Unavailable(call.dependency))
            } else if r < throttled + unavailable + after_effect {
                counts.failed_after_effect += 1;
                Fault::After(DependencyError::Unavailable(call.dependency))
            } else {
                Fault::None
            }
        } else {
            Fault::None
        };
        if self.logging.load(Ordering::Relaxed) {
            let dep = match call.dependency {
                Dependency::DynamoDb => "dynamodb",
                Dependency::SecretsManager => "secretsmanager",
                Dependency::EventBridge => "events",
            };
            let task = self.current.lock().unwrap().clone();
            self.log.lock().unwrap().push(match call.secret_of {
                Some(id) => format!("{task} {dep}:{} [{id}] {fault:?}", call.operation),
                None => format!("{task} {dep}:{} {fault:?}", call.operation),
            });
        }
        fault
    }
}

/// `Pending` once, then ready: the point where the executor may switch requests.
struct YieldOnce(bool);

impl Future for YieldOnce {
    type Output = ();
    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        if self.0 {
            Poll::Ready(())
        } else {
            self.0 = true;
            // Ready to go on at the next poll: combinators that poll only what was woken
            // (the sweep's `buffer_unordered`) must hear of it.
            cx.waker().wake_by_ref();
            Poll::Pending
        }
    }
}

/// The [`Hooks`] the in-memory ports call: a scheduling point, then a drawn fault.
pub struct Scheduled(pub Arc<SimHooks>);

impl Hooks for Scheduled {
    fn call(&self, call: Call) -> FaultFuture {
        let hooks = self.0.clone();
        Box::pin(async move {
            YieldOnce(false).await;
            hooks.draw(call)
        })
    }
}

pub type BoxedTask<'a, T> = Pin<Box<dyn Future<Output = T> + 'a>>;

/// Polls `task` once; `Some` when it finished.
pub fn step<T>(task: &mut BoxedTask<'_, T>) -> Option<T> {
    let mut cx = Context::from_waker(Waker::noop());
    match task.as_mut().poll(&mut cx) {
        Poll::Ready(v) => Some(v),
        Poll::Pending => None,
    }
}

/// Runs `task` to its end (nothing else is scheduled meanwhile).
pub fn run_to_end<T>(mut task: BoxedTask<'_, T>) -> T {
    loop {
        if let Some(v) = step(&mut task) {
            return v;
        }
    }
}
