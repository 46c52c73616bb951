//! The review's cases of a secret left in a state its answer does not say, each driven
//! through the real HTTP layer and service over the in-memory ports in one interleaving
//! chosen call by call (the simulator's executor, no faults). Each runs twice: as the
//! service is, and with the fix taken out (`shared::planted`), where it must go wrong —
//! which is how the service behaved before the fix.

use std::sync::atomic::Ordering;
use std::sync::Arc;

use lambda_http::RequestExt;
use serde_json::{json, Value};
use shared::config::{FingerprintKey, Settings};
use shared::domain::api_key::Scope;
use shared::domain::ids::EntityId;
use shared::memory::Memory;
use shared::planted::{plant, Defect};
use shared::App;
use sim::exec::{run_to_end, step, BoxedTask, Scheduled, SimClock, SimHooks};
use sim::FaultRates;

/// A request's time limit, as the HTTP functions have it.
const DEADLINE_MS: i64 = 10_000;

struct World {
    app: Arc<App>,
    memory: Memory,
    clock: Arc<SimClock>,
    hooks: Arc<SimHooks>,
    key: String,
}

impl World {
    fn new(defect: Option<Defect>) -> World {
        plant(defect);
        let clock = Arc::new(SimClock::new(1_700_000_000_000));
        let no_faults = FaultRates {
            throttled: 0.0,
            unavailable: 0.0,
            after_effect: 0.0,
        };
        let hooks = SimHooks::new(1, no_faults);
        hooks.logging.store(true, Ordering::Relaxed);
        let memory = Memory::new(Arc::new(Scheduled(hooks.clone())), clock.clone(), "sim/");
        let settings = Settings {
            secret_prefix: "sim/".into(),
            fingerprint_key: FingerprintKey::Local("review".into()),
            ..Settings::from_lookup(|_| None)
        };
        let app = Arc::new(memory.app(settings));
        let entity = EntityId::from(uuid::Uuid::from_u128(7));
        let scopes = Scope::ALL.iter().copied().collect();
        let issued = run_to_end(Box::pin(shared::admin::create_key(&app, entity, scopes, false, None)));
        World {
            app,
            memory,
            clock,
            hooks,
            key: issued.expect("a key").plaintext,
        }
    }

    /// A request to `/v1/integrations/{path}` with the functions' deadline from now.
    fn send(&self, method: &str, path: &str, body: Option<Value>) -> BoxedTask<'static, (u16, Value)> {
        let mut context = lambda_http::Context::default();
        context.deadline = u64::try_from(self.clock.ms() + DEADLINE_MS).unwrap();
        let req = lambda_http::http::Request::builder()
            .method(method)
            .uri(format!("https://api.sim/v1/integrations/{path}"))
            .header("authorization", format!("Bearer {}", self.key))
            .header("content-type", "application/json")
            .body(body.map_or(lambda_http::Body::Empty, |b| lambda_http::Body::Text(b.to_string())))
            .unwrap()
            .with_lambda_context(context);
        let app = self.app.clone();
        Box::pin(async move {
            let response = shared::http::handle(&app, req).await;
            let raw = String::from_utf8_lossy(response.body().as_ref()).to_string();
            (
                response.status().as_u16(),
                serde_json::from_str(&raw).unwrap_or(Value::Null),
            )
        })
    }

    fn call(&self, method: &str, path: &str, body: Option<Value>) -> (u16, Value) {
        run_to_end(self.send(method, path, body))
    }

    /// Runs `task` until its last AWS call was `operation` (it then waits before its next).
    fn until_after(&self, task: &mut BoxedTask<'static, (u16, Value)>, operation: &str) {
        loop {
            assert!(step(task).is_none(), "the request ended before calling {operation}");
            let last = self.hooks.log.lock().unwrap().last().cloned().unwrap_or_default();
            if last.contains(&format!(":{operation} ")) {
                return;
            }
        }
    }

    /// Whether connector `id` has a readable secret.
    fn readable(&self, id: &str) -> bool {
        let state = self.memory.state.lock().unwrap();
        state
            .secrets
            .values()
            .any(|s| s.owner.connector_id.to_string() == id && s.deletion_at.is_none())
    }

    /// A stripe connector with credentials, disconnected (its secret scheduled).
    fn disconnected_with_credentials(&self) -> String {
        let (status, body) = self.call("POST", "stripe", Some(json!({})));
        assert_eq!(status, 201, "{body}");
        let credentials = json!({"credentials": {"secret_key": "cred-1"}});
        assert_eq!(self.call("PUT", "stripe/credentials", Some(credentials)).0, 200);
        assert_eq!(self.call("DELETE", "stripe", None).0, 200);
        let id = body["data"]["id"].as_str().unwrap().to_string();
        assert!(!self.readable(&id), "a disconnect schedules the secret's deletion");
        id
    }
}

/// A first credentials PUT waits after writing its guard; a permanent delete of its
/// connector runs and answers 204; then the PUT creates the secret (the name is free: the
/// connector had none). Returns the PUT's status and whether the removed connector's
/// secret is readable once the PUT has answered.
fn credentials_racing_a_purge(defect: Option<Defect>) -> (u16, bool) {
    let w = World::new(defect);
    let (status, body) = w.call("POST", "stripe", Some(json!({})));
    assert_eq!(status, 201);
    let id = body["data"]["id"].as_str().unwrap().to_string();
    let credentials = json!({"credentials": {"secret_key": "cred-2"}});
    let mut put = w.send("PUT", "stripe/credentials", Some(credentials));
    w.until_after(&mut put, "PutItem");
    assert_eq!(w.call("DELETE", "stripe?permanent=true", None).0, 204);
    let (status, _) = run_to_end(put);
    (status, w.readable(&id))
}

#[test]
fn credentials_racing_a_permanent_delete_leave_no_readable_secret_when_they_answer() {
    assert_eq!(credentials_racing_a_purge(None), (404, false));
    // Before: the settle step saw no row and did nothing; the secret stayed readable
    // until the sweeper reached the PUT's guard.
    assert_eq!(
        credentials_racing_a_purge(Some(Defect::GoneConnectorSecretKept)),
        (404, true)
    );
}

/// A request on a disconnected connector with credentials is cut at its deadline right
/// after `operation` revived the secret, before its commit. Returns its status and
/// whether the (still disconnected) connector's secret is readable once it answered.
fn cut_after(method: &str, path: &str, body: Option<Value>, operation: &str, defect: Option<Defect>) -> (u16, bool) {
    let w = World::new(defect);
    let id = w.disconnected_with_credentials();
    let mut request = w.send(method, path, body);
    w.until_after(&mut request, operation);
    // Past the deadline less the 1.5 s the HTTP layer keeps to answer.
    w.clock.advance_ms(DEADLINE_MS - 1_000);
    let (status, _) = run_to_end(request);
    (status, w.readable(&id))
}

#[test]
fn a_credentials_put_cut_at_its_deadline_after_writing_the_secret_leaves_it_scheduled() {
    let body = || Some(json!({"credentials": {"secret_key": "cred-3"}}));
    let put = |defect| cut_after("PUT", "stripe/credentials", body(), "PutSecretValue", defect);
    assert_eq!(put(None), (503, false));
    // Before: the cut dropped the settle step; the disconnected connector's secret stayed
    // readable until its guard was due.
    assert_eq!(put(Some(Defect::NoSettleWhenCut)), (503, true));
}

#[test]
fn a_restore_or_reconnect_cut_at_its_deadline_after_restoring_the_secret_leaves_it_scheduled() {
    let restore = |defect| cut_after("POST", "stripe/restore", None, "RestoreSecret", defect);
    assert_eq!(restore(None), (503, false));
    assert_eq!(restore(Some(Defect::NoSettleWhenCut)), (503, true));
    let reconnect = |defect| cut_after("POST", "stripe", Some(json!({})), "RestoreSecret", defect);
    assert_eq!(reconnect(None), (503, false));
    assert_eq!(reconnect(Some(Defect::NoSettleWhenCut)), (503, true));
}
