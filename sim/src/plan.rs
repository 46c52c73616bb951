//! What the simulated clients do: a plan of operations drawn from the seed. A plan is
//! plain data, so a failing one can be shrunk and printed as a regression test.

use std::fmt;

use rand::Rng;
use rand_chacha::ChaCha8Rng;

/// The connector types the clients use: few, so that tenants collide on them often.
pub const TYPES: [&str; 3] = ["stripe", "shippo", "openai"];
/// The credential key each of [`TYPES`] requires.
pub const REQUIRED_KEY: [&str; 3] = ["secret_key", "api_token", "api_key"];

pub const TENANTS: u8 = 3;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Action {
    /// `POST` (with `"mode": "live"` when `live_mode`).
    Connect {
        live_mode: bool,
    },
    /// `PUT …/credentials` with a value unique to this operation.
    Credentials,
    /// `POST …/credentials/rollback` to the n-th version the row lists (mod their number;
    /// an id no row has when it lists none).
    Rollback(u8),
    /// `GET …/credentials/versions`.
    Versions,
    /// `PATCH {"display_name": …}`.
    Rename,
    /// `PATCH {"is_active": …}`.
    SetActive(bool),
    Disconnect,
    /// `DELETE /v1/integrations/{id}` with the last id this client saw.
    DisconnectById,
    Restore,
    Purge,
    Get,
    List,
    /// `POST …/sync-reports`: a failure (`auth_failed`) or a success, that finished this
    /// many seconds ago (late ones test that they never change a newer state).
    SyncReport {
        failed: bool,
        late_by: u16,
    },
    /// The tenant's key of this mode is revoked through one container and replaced; its
    /// clients keep presenting the old one now and then.
    RevokeKey,
    /// A scheduled sweep.
    Sweep,
    /// The clock jumps this many seconds (requests past their deadline die).
    Jump(i64),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Op {
    pub tenant: u8,
    /// A live key (else a test key).
    pub live: bool,
    pub ty: u8,
    pub action: Action,
    /// `Idempotency-Key: k<n>` (a small range, so keys are reused across requests).
    pub idem: Option<u8>,
    /// How often the client retries the same request after a 429/5xx or no answer.
    pub retries: u8,
}

impl Op {
    /// A request that changes something (and so honours `Idempotency-Key`).
    pub fn is_write(&self) -> bool {
        self.is_request() && !matches!(self.action, Action::Get | Action::List | Action::Versions)
    }

    pub fn is_request(&self) -> bool {
        !matches!(self.action, Action::Sweep | Action::Jump(_) | Action::RevokeKey)
    }
}

/// Draws `n` operations.
pub fn generate(rng: &mut ChaCha8Rng, n: usize) -> Vec<Op> {
    (0..n).map(|_| draw(rng)).collect()
}

fn draw(rng: &mut ChaCha8Rng) -> Op {
    let r = rng.random_range(0..1000);
    let action = match r {
        0..150 => Action::Connect {
            live_mode: rng.random_bool(0.3),
        },
        150..300 => Action::Credentials,
        300..330 => Action::Rollback(rng.random_range(0..3)),
        330..380 => Action::Rename,
        380..440 => Action::SetActive(rng.random_bool(0.5)),
        440..560 => Action::Disconnect,
        560..590 => Action::DisconnectById,
        590..680 => Action::Restore,
        680..740 => Action::Purge,
        740..815 => Action::Get,
        815..820 => Action::RevokeKey,
        820..850 => Action::List,
        850..870 => Action::Versions,
        870..930 => Action::Sweep,
        930..960 => Action::SyncReport {
            failed: rng.random_bool(0.5),
            late_by: if rng.random_bool(0.3) {
                rng.random_range(1..600)
            } else {
                0
            },
        },
        960..985 => Action::Jump(rng.random_range(1..3600)),
        985..995 => Action::Jump(rng.random_range(3600..3 * 86_400)),
        _ => Action::Jump(rng.random_range(6 * 86_400..8 * 86_400)),
    };
    Op {
        tenant: rng.random_range(0..TENANTS),
        live: rng.random_bool(0.5),
        ty: rng.random_range(0..TYPES.len() as u8),
        action,
        idem: rng.random_bool(0.4).then(|| rng.random_range(0..6)),
        retries: rng.random_range(0..3),
    }
}

/// A plan printed as Rust, to paste into `sim/tests/regressions.rs`.
pub struct AsRust<'a>(pub &'a [Op]);

impl fmt::Display for AsRust<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "vec![")?;
        for op in self.0 {
            writeln!(
                f,
                "    Op {{ tenant: {}, live: {}, ty: {}, action: Action::{:?}, idem: {:?}, retries: {} }},",
                op.tenant, op.live, op.ty, op.action, op.idem, op.retries
            )?;
        }
        write!(f, "]")
    }
}
