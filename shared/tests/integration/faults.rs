//! Fault injection at every AWS call of every write operation: each call in turn fails
//! (throttled, 500, timed out, connection dropped) through a proxy in front of the
//! emulator. After each: the answer is a success or a documented 429/503 with
//! `Retry-After`; row, secret and outbox agree; and after the sweeper runs, the final state
//! has been announced and nothing is left behind.
//!
//! `make test` faults every step once, the four kinds (throttle, 500, timeout, dropped
//! connection) taking turns; `FAULTS=all` (used by `make reliability`) injects every kind
//! at every step.

use crate::support;

use std::time::Duration;

use aws_config::retry::RetryConfig;
use aws_config::timeout::TimeoutConfig;
use serde_json::{json, Value};
use shared::domain::catalog::ConnectorType;
use shared::domain::connector::Connector;
use shared::domain::ids::EntityId;
use shared::domain::view::project;
use shared::ports::OUTBOX_GRACE_SECONDS;
use shared::App;
use support::faults::{Fault, FaultProxy};
use support::Harness;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Op {
    Connect,
    Credentials,
    Disconnect,
    Restore,
    Patch,
    Purge,
    Sweep,
    Rollback,
    SyncReport,
}

const OPS: [Op; 9] = [
    Op::Connect,
    Op::Credentials,
    Op::Rollback,
    Op::Disconnect,
    Op::Restore,
    Op::Patch,
    Op::Purge,
    Op::Sweep,
    Op::SyncReport,
];
const TYPE: &str = "shopify";

fn faulty_app(h: &Harness, proxy: &FaultProxy) -> App {
    let timeouts = TimeoutConfig::builder()
        .connect_timeout(Duration::from_millis(500))
        .operation_attempt_timeout(Duration::from_millis(500))
        .operation_timeout(Duration::from_secs(10))
        .build();
    let retry = RetryConfig::standard()
        .with_max_attempts(3)
        .with_initial_backoff(Duration::from_millis(5))
        .with_max_backoff(Duration::from_millis(50));
    let sdk = h.sdk.to_builder().timeout_config(timeouts).retry_config(retry).build();
    let clients = support::clients(&sdk, Some(&proxy.url), None);
    App::from_clients(clients, h.settings.clone(), h.clock.clone())
}

async fn row(h: &Harness, entity: EntityId) -> Option<Connector> {
    support::as_operator(h.app.service.store.get(entity, ConnectorType::parse(TYPE).unwrap()))
        .await
        .unwrap()
}

/// The state each operation starts from, made through the healthy path.
async fn setup(h: &Harness, op: Op) -> (EntityId, String) {
    let (entity, key) = h.tenant(true).await;
    let creds = json!({"credentials": {"access_token": "shpat_1"}});
    if op != Op::Connect {
        assert_eq!(h.as_key(&key).post(TYPE, None).await.status, 201);
    }
    if !matches!(op, Op::Connect | Op::Credentials) {
        assert_eq!(h.as_key(&key).put_credentials(TYPE, creds).await.status, 200);
    }
    if op == Op::Rollback {
        let newer = json!({"credentials": {"access_token": "shpat_newer"}});
        assert_eq!(h.as_key(&key).put_credentials(TYPE, newer).await.status, 200);
    }
    if matches!(op, Op::Restore | Op::Sweep) {
        assert_eq!(h.as_key(&key).delete(TYPE).await.status, 200);
    }
    if op == Op::Sweep {
        h.clock.advance_seconds(7 * 86_400);
    }
    h.events(0).await; // drain the setup's events
    (entity, key)
}

/// Runs the operation through the faulty clients; the HTTP status (the sweep maps its
/// error to the status a caller would see).
async fn run(h: &Harness, app: &App, op: Op, key: &str) -> u16 {
    let base = format!("/v1/integrations/{TYPE}");
    let (method, path, body) = match op {
        Op::Connect => ("POST", base.clone(), Some(json!({"display_name": "Shop"}))),
        Op::Credentials => (
            "PUT",
            format!("{base}/credentials"),
            Some(json!({"credentials": {"access_token": "shpat_2"}})),
        ),
        Op::Disconnect => ("DELETE", base.clone(), None),
        Op::Restore => ("POST", format!("{base}/restore"), None),
        Op::Patch => (
            "PATCH",
            base.clone(),
            Some(json!({"display_name": "Off", "is_active": false})),
        ),
        Op::Purge => ("DELETE", format!("{base}?permanent=true"), None),
        Op::Rollback => {
            // The older of the setup's two versions (listed through the healthy app).
            let listed = h.as_key(key).versions(TYPE).await;
            let older = listed.body["data"][1]["version"].clone();
            (
                "POST",
                format!("{base}/credentials/rollback"),
                Some(json!({"version": older})),
            )
        }
        // Moves health (unknown → auth_failed): the sync state and its event.
        Op::SyncReport => (
            "POST",
            format!("{base}/sync-reports"),
            Some(json!({"outcome": "failed", "error": {"code": "auth_failed"}, "run_id": "run-1"})),
        ),
        Op::Sweep => {
            // One item at a time: the cases number the calls, and items in flight together
            // (the expiry and the guard of one connector) would order them differently
            // from run to run.
            let budget = shared::service::SweepBudget::unlimited().in_flight(1);
            return match support::as_function("sweeper", app.service.sweep(budget)).await {
                Ok(_) => 200,
                Err(e) => e.status(),
            };
        }
    };
    let reply = h.as_key(key).via(app).send(method, &path, body).await;
    if matches!(reply.status, 429 | 503) {
        assert!(
            reply.header("retry-after").is_some(),
            "{op:?}: {} without Retry-After",
            reply.status
        );
    }
    reply.status
}

/// Row and secret agree: an active row that claims a secret has a live one, whose
/// `AWSCURRENT` is the version the row records (once `settled`); a disconnected row's
/// secret is scheduled for deletion (once `settled`); no row, no secret (once `settled`).
async fn assert_consistent(h: &Harness, entity: EntityId, settled: bool, context: &str) {
    let secret = h.describe_secret(entity, TYPE).await;
    let scheduled = secret.as_ref().is_some_and(|s| s.deleted_date().is_some());
    let stored = row(h, entity).await;
    if let (true, Some(r), Some(s)) = (settled, &stored, &secret) {
        if let (true, false, Some(recorded)) = (r.is_active, scheduled, r.current_version_record()) {
            let current = s
                .version_ids_to_stages()
                .and_then(|v| v.iter().find(|(_, stages)| stages.iter().any(|l| l == "AWSCURRENT")))
                .map(|(id, _)| id.as_str());
            assert_eq!(
                current,
                Some(recorded.secret_version_id.as_str()),
                "{context}: the secret's current version is not the row's"
            );
        }
    }
    match stored {
        Some(r) if r.is_active && r.has_secret() => {
            assert!(
                secret.is_some() && !scheduled,
                "{context}: active row without a live secret"
            )
        }
        Some(r) if r.is_active => assert!(!scheduled, "{context}: scheduled secret behind an active row"),
        Some(r) if r.has_secret() && settled => {
            assert!(
                secret.is_none() || scheduled,
                "{context}: disconnected row with a readable secret"
            )
        }
        Some(_) => {}
        None if settled => assert!(secret.is_none() || scheduled, "{context}: no row but a live secret"),
        None => {}
    }
}

struct Case {
    millis: u128,
    op: Op,
    step: usize,
    call: String,
    fault: Fault,
    status: u16,
    /// Faulted HTTP attempts.
    injected: usize,
}

/// How one run went, beyond what `one_case` asserts on every run.
struct Outcome {
    calls: Vec<String>,
    case: Option<Case>,
    status: u16,
    /// The emulator, not the proxy, made a call fail (a stall past the attempt timeout,
    /// seen as a retry of a call the proxy let through): the run may have taken another
    /// path than the quiet one whose steps the cases number, so it proves nothing about
    /// the planned fault. Row, secret and outbox must agree after it all the same.
    noisy: bool,
}

/// Attempts at one case before an emulator that keeps stalling fails the test.
const ATTEMPTS: usize = 3;

/// [`one_case`] again while the emulator's own stalls spoil it (see [`Outcome::noisy`]):
/// a quiet run must answer 2xx when nothing is faulted and meet its fault when one is.
async fn planned_case(shared: &Harness, op: Op, step: Option<(usize, Fault)>) -> (Vec<String>, Option<Case>) {
    for attempt in 1..=ATTEMPTS {
        let outcome = one_case(shared, op, step).await;
        let planned = match (&outcome.case, step) {
            (Some(case), Some(_)) => case.injected > 0,
            (_, None) => matches!(outcome.status, 200 | 201 | 204),
            (None, Some(_)) => unreachable!("a faulted run reports its case"),
        };
        if planned {
            return (outcome.calls, outcome.case);
        }
        let context = format!(
            "{op:?} with {:?} at step {:?} ({})",
            step.map(|s| s.1),
            step.map(|s| s.0),
            outcome.calls.join(" → ")
        );
        assert!(
            outcome.noisy,
            "{context}: answered {} with the emulator quiet; {}",
            outcome.status,
            if step.is_some() {
                "the fault was not injected"
            } else {
                "the healthy run failed"
            }
        );
        eprintln!("{context}: the emulator stalled (attempt {attempt} of {ATTEMPTS}); running the case again");
    }
    panic!("{op:?} at step {step:?}: the emulator stalled in all {ATTEMPTS} attempts");
}

/// One run of `op` with `step` faulted (or none: learning the steps). Operations other
/// than the sweep share `shared` (a fresh entity per case keeps them apart); a sweep acts
/// on the whole table, so each sweep case gets its own.
async fn one_case(shared: &Harness, op: Op, step: Option<(usize, Fault)>) -> Outcome {
    let started = std::time::Instant::now();
    let own;
    let h = if op == Op::Sweep {
        own = Harness::new().await;
        &own
    } else {
        shared
    };
    let proxy = FaultProxy::start(&support::emulator_endpoint()).await;
    let app = faulty_app(h, &proxy);
    let (entity, key) = setup(h, op).await;
    let before = row(h, entity).await;
    match step {
        Some((n, fault)) => proxy.arm(n, fault),
        None => proxy.record(),
    }
    let status = run(h, &app, op, &key).await;
    proxy.disarm();
    let (calls, injected) = proxy.calls();
    let noisy = proxy.unfaulted_retries() > 0;
    let context = format!(
        "{op:?} with {:?} at step {:?} ({})",
        step.map(|s| s.1),
        step.map(|s| s.0),
        calls.join(" → ")
    );
    assert!(
        matches!(status, 200 | 201 | 204 | 429 | 503),
        "{context}: answered {status}, not a success or a documented 429/503"
    );
    assert_consistent(h, entity, false, &context).await;

    // The sweeper (healthy) finishes whatever the fault left behind.
    h.clock.advance_seconds(OUTBOX_GRACE_SECONDS + 1);
    let report = h.sweep().await;
    assert_eq!(report.failed, 0, "{context}");
    assert!(h.outbox().await.is_empty(), "{context}: outbox not drained");
    assert_consistent(h, entity, true, &context).await;

    // Nothing lost: if the state changed, its final form was announced; if not, nothing was.
    let after = row(h, entity).await;
    let events: Vec<Value> = h.events(0).await;
    // A sync report changes the sync state, never the row's version.
    let state = |r: &Option<Connector>| r.as_ref().map(|r| (r.version, project(r)));
    let changed = state(&before) != state(&after);
    match (&after, changed) {
        (Some(r), true) => {
            let object = project(r);
            assert!(
                events.iter().any(|e| e["detail"]["data"]["object"] == object),
                "{context}: final state never announced; events: {events:?}"
            );
        }
        (None, true) => assert!(
            events.iter().any(|e| matches!(
                e["detail-type"].as_str(),
                Some("integration.deleted" | "integration.expired")
            )),
            "{context}: removal never announced"
        ),
        (_, false) => assert!(
            events.is_empty(),
            "{context}: events for a change that did not happen: {events:?}"
        ),
    }
    let case = step.map(|(n, fault)| Case {
        millis: started.elapsed().as_millis(),
        op,
        step: n,
        call: calls.get(n).cloned().unwrap_or_default(),
        fault,
        status,
        injected,
    });
    Outcome {
        calls,
        case,
        noisy,
        status,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_aws_call_of_every_write_can_fail_without_losing_or_leaking_anything() {
    // `FAULTS=all`: every kind at every step. Otherwise every step once, the kinds taking
    // turns (fast enough for `make test`).
    let all = std::env::var("FAULTS").as_deref() == Ok("all");
    let kinds_at = |step: usize| -> Vec<Fault> {
        if all {
            Fault::ALL.to_vec()
        } else {
            vec![Fault::ALL[step % Fault::ALL.len()]]
        }
    };
    let mut cases = Vec::new();
    for op in OPS {
        let shared = Harness::new().await;
        let (calls, _) = planned_case(&shared, op, None).await;
        assert!(calls.len() >= 3, "{op:?} makes AWS calls: {calls:?}");
        for step in 0..calls.len() {
            for fault in &kinds_at(step) {
                let (_, case) = planned_case(&shared, op, Some((step, *fault))).await;
                cases.push(case.unwrap());
            }
        }
    }
    let steps: usize = cases
        .iter()
        .filter(|c| c.fault == Fault::ALL[c.step % 4] || all)
        .count();
    let kinds: std::collections::BTreeSet<Fault> = cases.iter().map(|c| c.fault).collect();
    let refused = cases.iter().filter(|c| c.status >= 400).count();
    println!(
        "fault injection: {} cases over {} operations and {} fault kinds ({:?}); {refused} answered 429/503, {} succeeded (retried or deferred); all consistent after the sweep",
        cases.len(),
        OPS.len(),
        kinds.len(),
        kinds,
        cases.len() - refused
    );
    for c in &cases {
        println!(
            "  {:?} step {} {} {:?} → {} ({} ms)",
            c.op, c.step, c.call, c.fault, c.status, c.millis
        );
    }
    assert!(steps >= 45, "every step of every operation faulted: {steps}");
    assert_eq!(kinds.len(), 4, "every fault kind used");
}

/// The matrix reruns a case only when the emulator itself made a call fail: a call it
/// stalls on past the attempt timeout is retried by the SDK and counted as such, while the
/// retries of a call the proxy fails on purpose are not.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_emulator_stall_is_told_apart_from_an_injected_fault() {
    let h = Harness::new().await;
    let (_, key) = setup(&h, Op::Patch).await;
    let proxy = FaultProxy::start(&support::emulator_endpoint()).await;
    let app = faulty_app(&h, &proxy);

    // The emulator stalls on the read past the 500 ms attempt timeout, then answers.
    proxy.record();
    proxy.stall("GetItem", Duration::from_millis(800));
    let reply = h.as_key(&key).via(&app).get(TYPE).await;
    assert_eq!(reply.status, 200, "the SDK's retry of the stalled read succeeds");
    assert_eq!(proxy.calls().1, 0, "nothing was injected");
    assert!(proxy.unfaulted_retries() >= 1, "the stall was not seen as a retry");

    // An injected fault is retried on every attempt, and none of those retries counts.
    proxy.arm(0, Fault::Throttle);
    let reply = h.as_key(&key).via(&app).get(TYPE).await;
    assert_eq!(reply.status, 429, "{}", reply.body);
    assert!(proxy.calls().1 >= 2, "every attempt of the call was faulted");
    assert_eq!(proxy.unfaulted_retries(), 0);
}
