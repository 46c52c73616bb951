//! One simulated run: the world, the clients working through their plan, the scheduler,
//! and the two quiescence checks at the end.

use std::collections::{BTreeSet, VecDeque};
use std::sync::atomic::Ordering;
use std::sync::Arc;

use lambda_http::RequestExt;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde_json::{json, Value};
use shared::config::{FingerprintKey, Settings};
use shared::domain::api_key::{KeyId, Scope};
use shared::domain::ids::{ConnectorId, EntityId};
use shared::memory::{Memory, State};
use shared::ports::{SecretRef, GUARD_GRACE_SECONDS, OUTBOX_GRACE_SECONDS};
use shared::service::SweepBudget;
use shared::App;

use crate::check::{self, Answer, Model, Promise, Revoked, Seen, Submission};
use crate::exec::{run_to_end, step, BoxedTask, Scheduled, SimClock, SimHooks};
use crate::plan::{Action, Op, REQUIRED_KEY, TENANTS, TYPES};
use crate::{Options, Outcome};

const PREFIX: &str = "sim/";
/// A request past this is dead (the function's timeout).
pub(crate) const DEADLINE_MS: i64 = 10_000;
const MAX_IN_FLIGHT: usize = 6;
/// Lambda containers serving the requests, each with its own key cache.
const CONTAINERS: usize = 3;
/// How often a scheduled run during a clock jump overlaps another.
const OVERLAPPING_RUN_RATE: f64 = 0.3;
/// How often a client whose key was revoked presents the old one.
const STALE_KEY_RATE: f64 = 0.15;

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
    container: usize,
    /// Another request on this connector, a retry of one, or a sweep ran meanwhile.
    overlapped: bool,
    /// The connector the request found when it started (what a 204 removed).
    found: Option<SecretRef>,
    /// The revoked key it presented (an index into `revoked`).
    revoked_key: Option<usize>,
}

/// A tenant's current key of one mode.
#[derive(Clone)]
struct Key {
    plaintext: String,
    id: KeyId,
}

struct World {
    /// The containers; sweeps run in the first.
    apps: Vec<Arc<App>>,
    memory: Memory,
    clock: Arc<SimClock>,
    hooks: Arc<crate::exec::SimHooks>,
    rng: ChaCha8Rng,
    entities: Vec<String>,
    /// Per tenant: (test key, live key).
    keys: Vec<(Key, Key)>,
    revoked: Vec<Revoked>,
    model: Model,
    outcome: Outcome,
    trace: bool,
}

pub fn run(seed: u64, plan: &[Op], options: &Options) -> Outcome {
    shared::planted::plant(options.plant);
    // The ids the service makes come from the seed too, so a seed replays exactly.
    shared::domain::ids::seed_this_thread(Some(seed));
    let clock = Arc::new(SimClock::new(1_700_000_000_000));
    let hooks = SimHooks::new(seed, options.rates);
    hooks.logging.store(options.trace, Ordering::Relaxed);
    let memory = Memory::new(Arc::new(Scheduled(hooks.clone())), clock.clone(), PREFIX);
    let settings = Settings {
        secret_prefix: PREFIX.into(),
        fingerprint_key: FingerprintKey::Local(format!("sim-{seed}")),
        ..Settings::from_lookup(|_| None)
    };
    let apps: Vec<Arc<App>> = (0..CONTAINERS)
        .map(|_| Arc::new(memory.app(settings.clone())))
        .collect();
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    hooks.enabled.store(false, Ordering::Relaxed);
    let mut entities = Vec::new();
    let mut keys = Vec::new();
    for _ in 0..TENANTS {
        let entity = EntityId::from(uuid::Uuid::from_u128(rng.random()));
        keys.push((new_key(&apps[0], entity, false), new_key(&apps[0], entity, true)));
        entities.push(entity.to_string());
    }
    hooks.enabled.store(true, Ordering::Relaxed);
    let mut world = World {
        apps,
        memory,
        clock,
        hooks,
        rng,
        entities,
        keys,
        revoked: Vec::new(),
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

/// Marks requests that overlap: any two while a sweep runs, and two writes on one
/// connector (tenant and type).
fn mark_overlaps(running: &mut [Running]) {
    let touches = |r: &Running| (r.op.is_write() || r.op.action == Action::Sweep).then_some((r.op.tenant, r.op.ty));
    let sweeping = running.iter().any(|r| r.op.action == Action::Sweep);
    for i in 0..running.len() {
        let Some(mine) = touches(&running[i]) else { continue };
        let shared = running
            .iter()
            .enumerate()
            .any(|(j, other)| j != i && other.op.is_write() && touches(other) == Some(mine));
        if sweeping || shared {
            running[i].overlapped = true;
        }
    }
}

/// Connectors with an item the sweeper has not finished: an outbox record or guard
/// still there, or an expiry backed off.
fn backed_off(state: &State) -> BTreeSet<ConnectorId> {
    let records = state.outbox.values().map(|(_, r)| r.connector_id);
    let guards = state.guards.values().map(|(_, g)| g.secret.connector_id);
    let expiries = state.rows.values().filter(|r| r.retry_at.is_some()).map(|r| r.row.id);
    records.chain(guards).chain(expiries).collect()
}

/// A key holding every scope (an admin action: no faults are drawn meanwhile).
fn new_key(app: &App, entity: EntityId, live: bool) -> Key {
    let scopes = Scope::ALL.iter().copied().collect();
    let issued = run_to_end(Box::pin(shared::admin::create_key(app, entity, scopes, live, None)))
        .expect("keys are created without faults");
    Key {
        plaintext: issued.plaintext,
        id: issued.record.key_id,
    }
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
                    let started = self.start(index, op, attempt);
                    running.push(started);
                } else if next < plan.len() {
                    let op = plan[next];
                    match op.action {
                        Action::Jump(seconds) => self.jump(seconds, &mut running, &mut retries),
                        Action::RevokeKey => self.revoke(op),
                        _ => {
                            let sweeping = running.iter().any(|r| r.op.action == Action::Sweep);
                            if op.action == Action::Sweep && sweeping {
                                self.outcome.overlapping_sweeps += 1;
                            }
                            let started = self.start(next, op, 0);
                            running.push(started);
                        }
                    }
                    next += 1;
                } else if let Some((index, op, attempt)) = retries.pop_front() {
                    let started = self.start(index, op, attempt);
                    running.push(started);
                }
                mark_overlaps(&mut running);
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
                running.iter_mut().for_each(|r| r.overlapped = true);
                if self.rng.random_bool(OVERLAPPING_RUN_RATE) {
                    self.overlapping_sweeps();
                } else {
                    self.sweep();
                }
            }
        }
    }

    fn start(&mut self, index: usize, op: Op, attempt: u8) -> Running {
        self.outcome.operations += 1;
        let started_ms = self.clock.ms();
        let container = if op.action == Action::Sweep {
            0
        } else {
            self.rng.random_range(0..CONTAINERS)
        };
        let app = self.apps[container].clone();
        let entity: EntityId = self.entities[op.tenant as usize].parse().expect("an entity id");
        let found = self.memory.state.lock().unwrap().rows.values().find_map(|stored| {
            let row = &stored.row;
            (row.entity_id == entity && row.connector_type.as_str() == TYPES[op.ty as usize]).then(|| row.secret_ref())
        });
        let mut revoked_key = None;
        let task: BoxedTask<'static, Option<Reply>> = if op.action == Action::Sweep {
            // Cut at the same deadline as requests (`kill_overdue`), and told so.
            let budget = SweepBudget::until(started_ms + DEADLINE_MS);
            Box::pin(async move {
                let _ = app.service.sweep(budget).await;
                None
            })
        } else {
            revoked_key = self.stale_key(&op);
            let req = self.request(index, &op, revoked_key, started_ms);
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
            container,
            overlapped: false,
            found,
            revoked_key,
        }
    }

    /// Sometimes a client still presents its tenant's last revoked key of that mode.
    fn stale_key(&mut self, op: &Op) -> Option<usize> {
        let last = self
            .revoked
            .iter()
            .rposition(|r| r.tenant == op.tenant && r.live == op.live)?;
        self.rng.random_bool(STALE_KEY_RATE).then_some(last)
    }

    /// Revokes the tenant's key of `op`'s mode through a drawn container and issues a
    /// new one (admin actions: no faults meanwhile).
    fn revoke(&mut self, op: Op) {
        let container = self.rng.random_range(0..CONTAINERS);
        let app = self.apps[container].clone();
        let entity: EntityId = self.entities[op.tenant as usize].parse().expect("an entity id");
        let slot = &mut self.keys[op.tenant as usize];
        let current = if op.live { &mut slot.1 } else { &mut slot.0 };
        let old = current.clone();
        self.hooks.enabled.store(false, Ordering::Relaxed);
        let revoked = run_to_end(Box::pin(shared::admin::revoke_key(&app, &old.id)));
        *current = new_key(&app, entity, op.live);
        self.hooks.enabled.store(true, Ordering::Relaxed);
        assert_eq!(revoked.ok(), Some(true), "the key exists and its revocation is stored");
        let at_ms = self.clock.ms();
        self.revoked.push(Revoked {
            key: old.plaintext,
            tenant: op.tenant,
            live: op.live,
            at_ms,
            container,
        });
        self.note(|| {
            format!(
                "key of tenant {} (live: {}) revoked through container {container}",
                op.tenant, op.live
            )
        });
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

    fn request(&self, index: usize, op: &Op, revoked_key: Option<usize>, started_ms: i64) -> lambda_http::Request {
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
            Action::Sweep | Action::Jump(_) | Action::RevokeKey => unreachable!("not a request"),
        };
        let path = if path.starts_with('?') {
            format!("/v1/integrations{path}")
        } else {
            format!("/v1/integrations/{path}")
        };
        let (test, live) = &self.keys[op.tenant as usize];
        let key = match revoked_key {
            Some(r) => &self.revoked[r].key,
            None if op.live => &live.plaintext,
            None => &test.plaintext,
        };
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
        // The function's deadline, as Lambda hands it over: the request cuts itself short
        // (503) before it, on the simulated clock.
        let mut context = lambda_http::Context::default();
        context.deadline = u64::try_from(started_ms + DEADLINE_MS).expect("a positive deadline");
        builder
            .body(body)
            .expect("a valid request")
            .with_lambda_context(context)
    }

    fn killed(&mut self, dead: Running, retries: &mut VecDeque<(usize, Op, u8)>, why: &str) {
        self.hooks.counts.lock().unwrap().killed += 1;
        self.note(|| format!("#{}.{} {why}", dead.index, dead.attempt));
        self.record_credentials(&dead, Answer::Unknown);
        if let Some(k) = dead.op.idem.filter(|_| dead.op.is_write()) {
            let scope = (dead.op.tenant, dead.op.live, k);
            self.model.key_unseen.entry(scope).or_default().push(dead.started_ms);
        }
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
        let ran_out = reply.body["hint"]
            .as_str()
            .is_some_and(|h| h.contains("ran out of time"));
        self.outcome.deadline_cuts += u64::from(reply.status == 503 && ran_out);
        self.outcome.revoked_key_requests += u64::from(done.revoked_key.is_some());
        if let Some(r) = done.revoked_key {
            check::revoked_key(
                &self.revoked[r],
                done.container,
                done.started_ms,
                reply.status,
                &mut self.outcome.violations,
            );
        }
        if !done.overlapped && !reply.replayed {
            if let Some((secret, promise)) = self.promise(&done, &reply) {
                self.outcome.answers_checked += 1;
                let state = self.memory.state.lock().unwrap();
                check::at_answer(&state, PREFIX, secret, &promise, &mut self.outcome.violations);
            }
        }
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

    /// Two scheduled runs at once (a retried run overlapping the next one), interleaved
    /// call by call in an order the seed draws: what invariant 8 is about.
    fn overlapping_sweeps(&mut self) {
        self.outcome.overlapping_sweeps += 1;
        let budget = SweepBudget::seconds_from(self.clock.ms(), 60);
        let (a, b) = (self.apps[0].clone(), self.apps[1 % CONTAINERS].clone());
        let mut runs: Vec<BoxedTask<'static, ()>> = vec![
            Box::pin(async move {
                let _ = a.service.sweep(budget).await;
            }),
            Box::pin(async move {
                let _ = b.service.sweep(budget).await;
            }),
        ];
        while !runs.is_empty() {
            let pick = self.rng.random_range(0..runs.len());
            if step(&mut runs[pick]).is_some() {
                drop(runs.swap_remove(pick));
            }
        }
        self.note(|| "two overlapping sweeps done".to_string());
    }

    /// A whole scheduled run (the clock stands still meanwhile), with the template's 60 s.
    fn sweep(&mut self) {
        let app = self.apps[0].clone();
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

    /// Invariants 1–3; with `first_sweep`, over the connectors nothing waits for.
    fn check_settled(&mut self, first_sweep: bool) {
        let state = self.memory.state.lock().unwrap();
        let waiting = if first_sweep {
            backed_off(&state)
        } else {
            BTreeSet::new()
        };
        check::settled(
            &state,
            &self.model,
            &self.entities,
            PREFIX,
            &waiting,
            &mut self.outcome.violations,
        );
    }

    /// What a 2xx answer promises about the secret (invariant 9), and of which connector.
    fn promise(&self, done: &Running, reply: &Reply) -> Option<(SecretRef, Promise)> {
        if !(200..300).contains(&reply.status) {
            return None;
        }
        let data = &reply.body["data"];
        let answered = || {
            Some(SecretRef {
                entity_id: data["entity_id"].as_str()?.parse().ok()?,
                connector_id: data["id"].as_str()?.parse().ok()?,
                connector_type: shared::domain::catalog::ConnectorType::parse(data["connector_type"].as_str()?).ok()?,
            })
        };
        let promise = match done.op.action {
            Action::Connect { .. } | Action::Restore | Action::SetActive(true) => Promise::Readable,
            Action::Credentials => Promise::Holds(Self::credential_value(done.index)),
            Action::Disconnect | Action::DisconnectById | Action::SetActive(false) => Promise::Scheduled,
            Action::Purge => return done.found.map(|found| (found, Promise::Unreadable)),
            _ => return None,
        };
        Some((answered()?, promise))
    }

    /// Quiescence: faults off; the sweeper runs past every grace period and back-off,
    /// then past every window, TTL and Secrets Manager deadline.
    fn settle(&mut self) {
        self.hooks.enabled.store(false, Ordering::Relaxed);
        // One sweep once the grace periods have passed: everything the sweeper did not
        // back off before the faults stopped agrees with its row.
        self.advance(OUTBOX_GRACE_SECONDS.max(GUARD_GRACE_SECONDS) + 1);
        self.sweep();
        self.check_settled(true);
        // Then past every back-off (an hour at most): everything agrees.
        for _ in 0..3 {
            self.advance(3601);
            self.sweep();
        }
        self.check_settled(false);
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
