//! One simulated run: the world, the clients working through their plan, the scheduler,
//! and the two quiescence checks at the end.

use std::collections::VecDeque;
use std::sync::atomic::Ordering;
use std::sync::Arc;

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde_json::{json, Value};
use shared::config::{FingerprintKey, Settings};
use shared::domain::api_key::Scope;
use shared::domain::ids::EntityId;
use shared::memory::Memory;
use shared::ports::{GUARD_GRACE_SECONDS, OUTBOX_GRACE_SECONDS};
use shared::service::SweepBudget;
use shared::App;

use crate::check::{self, Answer, Model, Seen, Submission};
use crate::exec::{run_to_end, step, BoxedTask, Scheduled, SimClock, SimHooks};
use crate::plan::{Action, Op, REQUIRED_KEY, TENANTS, TYPES};
use crate::{Options, Outcome};

const PREFIX: &str = "sim/";
/// A request past this is dead (the function's timeout).
pub(crate) const DEADLINE_MS: i64 = 10_000;
const MAX_IN_FLIGHT: usize = 6;

struct Reply {
    status: u16,
    replayed: bool,
    body: Value,
}

/// One attempt of one planned operation.
struct Running {
    task: BoxedTask<'static, Option<Reply>>,
    index: usize,
    op: Op,
    attempt: u8,
    started_ms: i64,
}

struct World {
    app: Arc<App>,
    memory: Memory,
    clock: Arc<SimClock>,
    hooks: Arc<crate::exec::SimHooks>,
    rng: ChaCha8Rng,
    entities: Vec<String>,
    /// Per tenant: (test key, live key).
    keys: Vec<(String, String)>,
    model: Model,
    outcome: Outcome,
    trace: bool,
}

pub fn run(seed: u64, plan: &[Op], options: &Options) -> Outcome {
    let clock = Arc::new(SimClock::new(1_700_000_000_000));
    let hooks = SimHooks::new(seed, options.rates);
    hooks.logging.store(options.trace, Ordering::Relaxed);
    let memory = Memory::new(Arc::new(Scheduled(hooks.clone())), clock.clone(), PREFIX);
    let settings = Settings {
        secret_prefix: PREFIX.into(),
        fingerprint_key: FingerprintKey::Local(format!("sim-{seed}")),
        ..Settings::from_lookup(|_| None)
    };
    let app = Arc::new(memory.app(settings));
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    hooks.enabled.store(false, Ordering::Relaxed);
    let mut entities = Vec::new();
    let mut keys = Vec::new();
    for _ in 0..TENANTS {
        let entity = EntityId::from(uuid::Uuid::from_u128(rng.random()));
        let key = |live| {
            let scopes = Scope::ALL.iter().copied().collect();
            let issued = run_to_end(Box::pin(shared::admin::create_key(&app, entity, scopes, live, None)));
            issued.expect("keys are created without faults").plaintext
        };
        keys.push((key(false), key(true)));
        entities.push(entity.to_string());
    }
    hooks.enabled.store(true, Ordering::Relaxed);
    let mut world = World {
        app,
        memory,
        clock,
        hooks,
        rng,
        entities,
        keys,
        model: Model::default(),
        outcome: Outcome::default(),
        trace: options.trace,
    };
    world.drive(plan, options);
    world.settle();
    let mut outcome = world.outcome;
    outcome.faults = world.hooks.counts.lock().unwrap().clone();
    outcome
}

impl World {
    fn note(&mut self, line: impl FnOnce() -> String) {
        if self.trace {
            let calls: Vec<String> = std::mem::take(&mut *self.hooks.log.lock().unwrap());
            for call in calls {
                self.outcome.trace.push(format!("      {call}"));
            }
            let at = self.clock.ms();
            self.outcome.trace.push(format!("t={at} {}", line()));
        }
    }

    /// Works through the plan: arrivals, retries, scheduling, kills, clock and TTL.
    fn drive(&mut self, plan: &[Op], options: &Options) {
        let mut next = 0;
        let mut running: Vec<Running> = Vec::new();
        let mut retries: VecDeque<(usize, Op, u8)> = VecDeque::new();
        loop {
            let idle = running.is_empty() && retries.is_empty();
            if next >= plan.len() && idle {
                break;
            }
            // Arrivals: a retry or the next planned operation.
            if running.len() < MAX_IN_FLIGHT && (idle || self.rng.random_bool(0.35)) {
                if let Some((index, op, attempt)) = retries.pop_front().filter(|_| self.rng.random_bool(0.5)) {
                    running.push(self.start(index, op, attempt));
                } else if next < plan.len() {
                    let op = plan[next];
                    match op.action {
                        Action::Jump(seconds) => self.jump(seconds, &mut running, &mut retries),
                        _ => {
                            let sweeping = running.iter().any(|r| r.op.action == Action::Sweep);
                            if op.action == Action::Sweep && sweeping {
                                self.outcome.overlapping_sweeps += 1;
                            }
                            running.push(self.start(next, op, 0));
                        }
                    }
                    next += 1;
                } else if let Some((index, op, attempt)) = retries.pop_front() {
                    running.push(self.start(index, op, attempt));
                }
            }
            let tick = self.rng.random_range(0..400);
            self.advance_ms(tick);
            self.kill_overdue(&mut running, &mut retries);
            if running.is_empty() {
                continue;
            }
            let pick = self.rng.random_range(0..running.len());
            if self.rng.random_bool(options.kill_rate) {
                let dead = running.swap_remove(pick);
                self.killed(dead, &mut retries, "killed");
                continue;
            }
            if self.trace {
                let r = &running[pick];
                *self.hooks.current.lock().unwrap() = format!("#{}.{}", r.index, r.attempt);
            }
            if let Some(reply) = step(&mut running[pick].task) {
                let done = running.swap_remove(pick);
                self.finished(done, reply, &mut retries);
            }
            let mut state = self.memory.state.lock().unwrap();
            check::every_step(&mut state, &mut self.outcome.violations);
            check::sync_reports(&state, &mut self.model.latest_reports, &mut self.outcome.violations);
        }
    }

    /// Requests past their deadline die where they stand.
    fn kill_overdue(&mut self, running: &mut Vec<Running>, retries: &mut VecDeque<(usize, Op, u8)>) {
        let now_ms = self.clock.ms();
        let mut i = 0;
        while i < running.len() {
            if now_ms - running[i].started_ms > DEADLINE_MS {
                let dead = running.swap_remove(i);
                self.killed(dead, retries, "past its deadline");
            } else {
                i += 1;
            }
        }
    }

    /// The clock jumps ahead; the schedule goes on meanwhile (a sweep every hour of the
    /// jump here, every few minutes in the template), faults and all.
    fn jump(&mut self, seconds: i64, running: &mut Vec<Running>, retries: &mut VecDeque<(usize, Op, u8)>) {
        self.note(|| format!("clock jumps {seconds}s"));
        let mut left = seconds;
        while left > 0 {
            let hop = left.min(3600);
            left -= hop;
            self.advance_ms(hop * 1000);
            self.kill_overdue(running, retries);
            if hop == 3600 || left == 0 {
                self.sweep();
            }
        }
    }

    fn start(&mut self, index: usize, op: Op, attempt: u8) -> Running {
        self.outcome.operations += 1;
        let started_ms = self.clock.ms();
        let app = self.app.clone();
        let task: BoxedTask<'static, Option<Reply>> = if op.action == Action::Sweep {
            // Cut at the same deadline as requests (`kill_overdue`), and told so.
            let budget = SweepBudget::until(started_ms + DEADLINE_MS);
            Box::pin(async move {
                let _ = app.service.sweep(budget).await;
                None
            })
        } else {
            let req = self.request(index, &op);
            if let Some(k) = op.idem.filter(|_| op.is_write()) {
                self.model
                    .key_starts
                    .entry((op.tenant, op.live, k))
                    .or_default()
                    .push(started_ms);
            }
            Box::pin(async move {
                let response = shared::http::handle(&app, req).await;
                let raw = String::from_utf8_lossy(response.body().as_ref()).to_string();
                Some(Reply {
                    status: response.status().as_u16(),
                    replayed: response.headers().contains_key("idempotent-replayed"),
                    body: serde_json::from_str(&raw).unwrap_or(Value::Null),
                })
            })
        };
        self.note(|| format!("start #{index}.{attempt} {op:?}"));
        Running {
            task,
            index,
            op,
            attempt,
            started_ms,
        }
    }

    fn credential_value(index: usize) -> String {
        format!("cred-{index:06}")
    }

    /// The id of the `n`-th version `op`'s connector lists now (what a client that just
    /// listed them would send), or one no connector has.
    fn listed_version(&self, op: &Op, n: u8) -> String {
        let state = self.memory.state.lock().unwrap();
        let entity: shared::domain::ids::EntityId = self.entities[op.tenant as usize].parse().expect("an entity id");
        let ty = shared::domain::catalog::ConnectorType::parse(TYPES[op.ty as usize]).expect("a simulated type");
        let versions = state
            .rows
            .get(&(entity, ty))
            .map(|stored| stored.row.credential_versions.clone());
        match versions.unwrap_or_default() {
            listed if listed.is_empty() => "no-such-version".to_string(),
            listed => listed[n as usize % listed.len()].id.clone(),
        }
    }

    fn request(&self, index: usize, op: &Op) -> lambda_http::Request {
        let ty = TYPES[op.ty as usize];
        let target = match op.action {
            Action::DisconnectById => self
                .model
                .last_id
                .get(&(op.tenant, op.ty))
                .cloned()
                .unwrap_or_else(|| ty.to_string()),
            _ => ty.to_string(),
        };
        let (method, path, body) = match op.action {
            Action::Connect { live_mode } => {
                let mut body = json!({"display_name": format!("n{index}")});
                if live_mode {
                    body["mode"] = json!("live");
                }
                ("POST", ty.to_string(), Some(body))
            }
            Action::Credentials => {
                let credentials = json!({ REQUIRED_KEY[op.ty as usize]: Self::credential_value(index) });
                (
                    "PUT",
                    format!("{ty}/credentials"),
                    Some(json!({ "credentials": credentials })),
                )
            }
            Action::Rename => (
                "PATCH",
                ty.to_string(),
                Some(json!({"display_name": format!("r{index}")})),
            ),
            Action::SetActive(on) => ("PATCH", ty.to_string(), Some(json!({ "is_active": on }))),
            Action::Disconnect | Action::DisconnectById => ("DELETE", target, None),
            Action::Restore => ("POST", format!("{ty}/restore"), None),
            Action::Purge => ("DELETE", format!("{ty}?permanent=true"), None),
            Action::Rollback(n) => {
                let version = self.listed_version(op, n);
                (
                    "POST",
                    format!("{ty}/credentials/rollback"),
                    Some(json!({ "version": version })),
                )
            }
            Action::Versions => ("GET", format!("{ty}/credentials/versions"), None),
            Action::Get => ("GET", ty.to_string(), None),
            Action::List => ("GET", "?limit=100".to_string(), None),
            Action::SyncReport { failed, late_by } => {
                let finished_at = shared::ports::Clock::now(&*self.clock).plus_seconds(-i64::from(late_by));
                let mut body = json!({"outcome": "succeeded", "finished_at": finished_at.to_string()});
                if failed {
                    body = json!({"outcome": "failed", "error": {"code": "auth_failed"}, "finished_at": finished_at.to_string()});
                }
                ("POST", format!("{ty}/sync-reports"), Some(body))
            }
            Action::Sweep | Action::Jump(_) => unreachable!("not a request"),
        };
        let path = if path.starts_with('?') {
            format!("/v1/integrations{path}")
        } else {
            format!("/v1/integrations/{path}")
        };
        let (test, live) = &self.keys[op.tenant as usize];
        let key = if op.live { live } else { test };
        let mut builder = lambda_http::http::Request::builder()
            .method(method)
            .uri(format!("https://api.sim{path}"))
            .header("authorization", format!("Bearer {key}"));
        if let Some(k) = op.idem {
            builder = builder.header("idempotency-key", format!("k{k}"));
        }
        let body = match body {
            Some(v) => {
                builder = builder.header("content-type", "application/json");
                lambda_http::Body::Text(v.to_string())
            }
            None => lambda_http::Body::Empty,
        };
        builder.body(body).expect("a valid request")
    }

    fn killed(&mut self, dead: Running, retries: &mut VecDeque<(usize, Op, u8)>, why: &str) {
        self.hooks.counts.lock().unwrap().killed += 1;
        self.note(|| format!("#{}.{} {why}", dead.index, dead.attempt));
        self.record_credentials(&dead, Answer::Unknown);
        if dead.op.is_request() && dead.attempt < dead.op.retries {
            retries.push_back((dead.index, dead.op, dead.attempt + 1));
        }
    }

    fn finished(&mut self, done: Running, reply: Option<Reply>, retries: &mut VecDeque<(usize, Op, u8)>) {
        let Some(reply) = reply else {
            self.note(|| format!("#{} sweep done", done.index));
            return;
        };
        self.note(|| {
            format!(
                "#{}.{} answered {} {}",
                done.index, done.attempt, reply.status, reply.body
            )
        });
        let op = done.op;
        let seen = Seen {
            tenant: op.tenant,
            live: op.live,
            entity: &self.entities[op.tenant as usize],
            idem: op.idem.filter(|_| op.is_write()),
            started_ms: done.started_ms,
            now_ms: self.clock.ms(),
            status: reply.status,
            replayed: reply.replayed,
            body: &reply.body,
        };
        check::answer(&mut self.model, &seen, &mut self.outcome.violations);
        if let Some(id) = reply.body["data"]["id"].as_str() {
            self.model.last_id.insert((op.tenant, op.ty), id.to_string());
        }
        let answer = match reply.status {
            200 => Answer::Accepted(reply.body["data"]["id"].as_str().unwrap_or_default().to_string()),
            400 | 401 | 403 | 404 | 413 | 415 | 422 => Answer::Rejected,
            _ => Answer::Unknown,
        };
        self.record_credentials(&done, answer);
        if (reply.status == 429 || reply.status >= 500) && done.attempt < op.retries {
            retries.push_back((done.index, op, done.attempt + 1));
        }
    }

    fn record_credentials(&mut self, attempt: &Running, answer: Answer) {
        if attempt.op.action != Action::Credentials {
            return;
        }
        let submission = Submission {
            value: Self::credential_value(attempt.index),
            start_ms: attempt.started_ms,
            end_ms: self.clock.ms(),
            answer,
        };
        self.model
            .submissions
            .entry((attempt.op.tenant, attempt.op.ty))
            .or_default()
            .push(submission);
    }

    /// A whole scheduled run (the clock stands still meanwhile), with the template's 60 s.
    fn sweep(&mut self) {
        let app = self.app.clone();
        let budget = SweepBudget::seconds_from(self.clock.ms(), 60);
        let report = run_to_end(Box::pin(async move { app.service.sweep(budget).await }));
        self.note(|| format!("whole sweep {report:?}"));
    }

    fn advance(&mut self, seconds: i64) {
        self.advance_ms(seconds * 1000);
    }

    /// Moves the clock, then the AWS-side clocks (TTL, Secrets Manager) with it.
    fn advance_ms(&mut self, ms: i64) {
        self.clock.advance_ms(ms);
        let now = self.clock.seconds();
        let mut delay_rng = ChaCha8Rng::seed_from_u64(self.rng.random());
        self.memory.state.lock().unwrap().advance(now, || {
            delay_rng.random_range(0..=shared::memory::TTL_MAX_DELAY_SECONDS)
        });
    }

    /// Quiescence: faults off; the sweeper runs past every grace period and back-off,
    /// then past every window, TTL and Secrets Manager deadline.
    fn settle(&mut self) {
        self.hooks.enabled.store(false, Ordering::Relaxed);
        self.advance(OUTBOX_GRACE_SECONDS.max(GUARD_GRACE_SECONDS) + 1);
        for _ in 0..3 {
            self.sweep();
            self.advance(3601);
        }
        self.sweep();
        {
            let state = self.memory.state.lock().unwrap();
            check::settled(
                &state,
                &self.model,
                &self.entities,
                PREFIX,
                &mut self.outcome.violations,
            );
        }
        // The schedule keeps running (here: every 6 hours) while every window, TTL and
        // Secrets Manager deadline passes.
        for _ in 0..4 * 12 {
            self.advance(6 * 3600);
            self.sweep();
        }
        let mut state = self.memory.state.lock().unwrap();
        check::quiescent(&state, &mut self.outcome.violations);
        check::every_step(&mut state, &mut self.outcome.violations);
    }
}
