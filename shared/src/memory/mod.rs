//! In-memory ports: the store, key store, idempotency store, vault and bus over one
//! shared [`State`], for fast tests and the deterministic simulator. They follow the AWS
//! semantics the service relies on (written down in docs/RELIABILITY.md, "The in-memory
//! ports"), and the contract tests run the same checks against them and against the
//! emulator-backed adapters so that the two cannot drift.
//!
//! Every call first goes through [`Hooks::call`]: a point where the simulator may switch
//! to another request, kill this one, or inject a fault before or after the call's effect.

mod state;
mod store;
mod vault;

use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};

pub use state::{IdempotencyRecord, Secret, State, StoredRow, DELETED_NAME_BLOCKED_SECONDS, TTL_MAX_DELAY_SECONDS};

use crate::config::{FingerprintKey, Settings};
use crate::domain::error::Dependency;
use crate::domain::ids::ConnectorId;
use crate::fingerprint_key::{LocalKey, NoKey};
use crate::key_cache::CachedKeyStore;
use crate::ports::{Clock, DependencyError, FingerprintKeySource};
use crate::service::Service;
use crate::App;

/// One AWS call as the in-memory ports see it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Call {
    pub dependency: Dependency,
    pub operation: &'static str,
    /// The connector whose secret a vault call is about (for traces).
    pub secret_of: Option<ConnectorId>,
}

/// What to do to one call.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Fault {
    None,
    /// Fail without effect (throttled, refused, or lost on the way).
    Before(DependencyError),
    /// Take effect, then report a failure (a timeout after the service acted).
    After(DependencyError),
}

pub type FaultFuture = Pin<Box<dyn Future<Output = Fault> + Send>>;

/// The simulator's hold on every call. The default does nothing.
pub trait Hooks: Send + Sync {
    fn call(&self, call: Call) -> FaultFuture;
}

pub struct NoFaults;

impl Hooks for NoFaults {
    fn call(&self, _: Call) -> FaultFuture {
        Box::pin(std::future::ready(Fault::None))
    }
}

/// The shared state, the hooks and the clock the in-memory ports run on.
#[derive(Clone)]
pub struct Memory {
    pub state: Arc<Mutex<State>>,
    hooks: Arc<dyn Hooks>,
    clock: Arc<dyn Clock>,
    secret_prefix: String,
}

impl Memory {
    pub fn new(hooks: Arc<dyn Hooks>, clock: Arc<dyn Clock>, secret_prefix: &str) -> Self {
        Memory {
            state: Arc::new(Mutex::new(State::default())),
            hooks,
            clock,
            secret_prefix: secret_prefix.to_string(),
        }
    }

    /// Runs `effect` on the state as one AWS call, with whatever fault the hooks inject.
    async fn call<T>(
        &self,
        dependency: Dependency,
        operation: &'static str,
        effect: impl FnOnce(&mut State, i64) -> T,
    ) -> Result<T, DependencyError> {
        self.call_on(dependency, operation, None, effect).await
    }

    async fn call_on<T>(
        &self,
        dependency: Dependency,
        operation: &'static str,
        secret_of: Option<ConnectorId>,
        effect: impl FnOnce(&mut State, i64) -> T,
    ) -> Result<T, DependencyError> {
        let call = Call {
            dependency,
            operation,
            secret_of,
        };
        let fault = self.hooks.call(call).await;
        if let Fault::Before(e) = fault {
            return Err(e);
        }
        let now = self.clock.now().unix();
        let out = effect(&mut self.state.lock().expect("state lock"), now);
        match fault {
            Fault::After(e) => Err(e),
            _ => Ok(out),
        }
    }

    /// An [`App`] whose every port is this memory (keys cached as in the functions). The
    /// fingerprint key is the settings' local one; a key in a secret is not emulated here
    /// (such an app answers an `Idempotency-Key` write with 503).
    pub fn app(&self, settings: Settings) -> App {
        let me = Arc::new(self.clone());
        let service = Service {
            store: me.clone(),
            keys: Arc::new(CachedKeyStore::new(me.clone(), self.clock.clone())),
            vault: me.clone(),
            bus: me.clone(),
            idempotency: me,
            clock: self.clock.clone(),
        };
        let fingerprint_key = match &settings.fingerprint_key {
            FingerprintKey::Local(key) => Arc::new(LocalKey::new(key)) as Arc<dyn FingerprintKeySource>,
            FingerprintKey::Secret(_) | FingerprintKey::Missing => Arc::new(NoKey),
        };
        App {
            service,
            settings,
            fingerprint_key,
        }
    }
}
