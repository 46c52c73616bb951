//! What the in-memory AWS holds, and how its own clocks move it on (TTL deletion, the end
//! of Secrets Manager's recovery windows and of a deleted name's unusable period).

use std::collections::BTreeMap;

use crate::domain::api_key::ApiKeyRecord;
use crate::domain::catalog::ConnectorType;
use crate::domain::connector::Connector;
use crate::domain::ids::{ConnectorId, EntityId};
use crate::domain::sync::SyncState;
use crate::ports::{FollowUp, OutboxRecord, SecretGuard, SecretRef};

/// DynamoDB deletes an item some time after its TTL passes: up to ~48 hours, AWS says.
pub const TTL_MAX_DELAY_SECONDS: i64 = 48 * 3600;

/// After a forced deletion, Secrets Manager refuses the name for a short while.
pub const DELETED_NAME_BLOCKED_SECONDS: i64 = 60;

/// A connector row item.
#[derive(Clone, Debug)]
pub struct StoredRow {
    pub row: Connector,
    /// The TTL attribute (epoch seconds), as the DynamoDB adapter writes it.
    pub ttl: Option<i64>,
    /// When TTL will actually delete the item (drawn once the TTL has passed).
    pub reap_at: Option<i64>,
    /// The sweeper's next attempt at expiring it, after a failed one (the `due` index
    /// key's time when later than the window's end); dropped by any write of the row.
    pub retry_at: Option<crate::domain::time::Timestamp>,
}

/// A secret under one name.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Secret {
    /// The connector its tags name.
    pub owner: SecretRef,
    /// Its versions, oldest first.
    pub versions: Vec<SecretVersion>,
    /// Set while scheduled for deletion: when Secrets Manager deletes it.
    pub deletion_at: Option<i64>,
}

/// Secrets Manager keeps at most this many versions: past it, it removes the oldest
/// versions that carry no staging label ("deprecated").
pub const MAX_SECRET_VERSIONS: usize = 100;

/// One version of a secret.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SecretVersion {
    pub id: String,
    pub value: String,
    pub labels: std::collections::BTreeSet<String>,
}

impl Secret {
    /// What a reader of `AWSCURRENT` gets.
    pub fn current_value(&self) -> Option<&str> {
        self.versions
            .iter()
            .find(|v| v.labels.contains("AWSCURRENT"))
            .map(|v| v.value.as_str())
    }

    /// The version holding `label`.
    pub fn holder(&self, label: &str) -> Option<&SecretVersion> {
        self.versions.iter().find(|v| v.labels.contains(label))
    }

    /// Moves `label` to version `to` (from whichever version had it).
    pub fn move_label(&mut self, label: &str, to: &str) {
        for v in &mut self.versions {
            if v.id == to {
                v.labels.insert(label.to_string());
            } else {
                v.labels.remove(label);
            }
        }
    }
}

#[derive(Clone, Debug)]
pub struct IdempotencyRecord {
    pub fingerprint: String,
    pub token: String,
    pub lease_until: i64,
    pub expires_at: i64,
    /// `Some` once done: the stored answer, and the secret work a replay redoes first.
    pub answer: Option<(u16, String, Option<FollowUp>)>,
}

#[derive(Default)]
pub struct State {
    /// Insertion counter: orders index reads deterministically.
    pub(super) seq: u64,
    pub rows: BTreeMap<(EntityId, ConnectorType), StoredRow>,
    /// Sync state items, beside their rows (no TTL: deleted with the row).
    pub syncs: BTreeMap<(EntityId, ConnectorType), SyncState>,
    pub outbox: BTreeMap<String, (u64, OutboxRecord)>,
    pub guards: BTreeMap<ConnectorId, (u64, SecretGuard)>,
    pub(super) keys: BTreeMap<String, ApiKeyRecord>,
    pub idempotency: BTreeMap<(EntityId, bool, String), IdempotencyRecord>,
    /// `ClientRequestToken`s of applied transactions, with when they were used.
    pub(super) tokens: BTreeMap<String, i64>,
    pub secrets: BTreeMap<String, Secret>,
    /// Names force-deleted recently, until when they cannot be used.
    pub deleted_names: BTreeMap<String, i64>,
    /// Every outbox record ever committed (with its row change), for the checks.
    pub committed: Vec<OutboxRecord>,
    /// Every event the bus accepted.
    pub published: Vec<OutboxRecord>,
    /// Secret actions that found a secret tagged for another connector under the name.
    pub foreign_touches: Vec<(SecretRef, SecretRef)>,
    /// Leases by name: the owner and until when (epoch seconds) it holds them.
    pub leases: BTreeMap<String, (String, i64)>,
}

impl State {
    pub(super) fn next_seq(&mut self) -> u64 {
        self.seq += 1;
        self.seq
    }

    /// Moves the AWS-side clocks to `now`: TTL deletes items whose moment has come (the
    /// moment drawn by `delay` in `0..=TTL_MAX_DELAY_SECONDS` once the TTL has passed);
    /// secrets whose recovery window ended are deleted; blocked names are freed.
    pub fn advance(&mut self, now: i64, mut delay: impl FnMut() -> i64) {
        self.rows.retain(|_, stored| match (stored.ttl, stored.reap_at) {
            (Some(ttl), None) if ttl <= now => {
                stored.reap_at = Some(ttl + delay().clamp(0, TTL_MAX_DELAY_SECONDS));
                stored.reap_at > Some(now)
            }
            (Some(_), Some(at)) => at > now,
            _ => true,
        });
        self.idempotency
            .retain(|_, r| r.expires_at + TTL_MAX_DELAY_SECONDS > now);
        self.secrets.retain(|_, s| s.deletion_at.is_none_or(|at| at > now));
        self.deleted_names.retain(|_, until| *until > now);
    }
}
