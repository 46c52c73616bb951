//! Credential versions: every credentials PUT makes one, a rollback makes an earlier one
//! current again. The row keeps their metadata (names only, never a value); the values
//! live in the connector's secret, one secret version per credential version, each kept
//! labelled with one of [`LISTED_VERSIONS`] staging labels so that Secrets Manager never
//! deprecates a listed version (docs/DECISIONS.md, "Credential versions").

use std::collections::BTreeSet;

use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use super::connector::Connector;
use super::time::Timestamp;

/// How many versions a row lists (and keeps reachable): the newest, plus the current one.
/// Each holds a staging label of its own; with `AWSCURRENT`, `AWSPREVIOUS` and
/// `AWSPENDING` that stays under Secrets Manager's 20 labels per secret.
pub const LISTED_VERSIONS: usize = 10;

/// The id shown for credentials stored before versions existed (the row has a secret
/// but records no version): stable, so that the one version listed keeps its id when the
/// first PUT after this feature records it.
pub const INITIAL_VERSION_ID: &str = "initial";

/// One credential version as the row records it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CredentialVersion {
    /// The opaque id callers see.
    pub id: String,
    /// The secret's `VersionId` holding its values (the `ClientRequestToken` it was
    /// written with; for versions this service wrote, the same as `id`).
    pub secret_version_id: String,
    pub created_at: Timestamp,
    pub credential_keys: BTreeSet<String>,
    pub has_webhook_secret: bool,
    /// The staging label slot (`0..LISTED_VERSIONS`) that keeps it reachable.
    pub slot: u8,
}

impl CredentialVersion {
    /// A new version written with a fresh id, in `slot`.
    pub fn new(
        credential_keys: BTreeSet<String>,
        has_webhook_secret: bool,
        slot: u8,
        now: Timestamp,
    ) -> CredentialVersion {
        let id = crate::domain::ids::fresh_uuid().to_string();
        CredentialVersion {
            secret_version_id: id.clone(),
            id,
            created_at: now,
            credential_keys,
            has_webhook_secret,
            slot,
        }
    }

    /// The staging label of its slot.
    pub fn label(&self) -> String {
        slot_label(self.slot)
    }
}

/// The staging label of `slot`.
pub fn slot_label(slot: u8) -> String {
    format!("v{slot}")
}

impl Connector {
    /// The recorded version that is current, if the row records versions.
    pub fn current_version_record(&self) -> Option<&CredentialVersion> {
        let current = self.current_credential_version.as_deref()?;
        self.credential_versions.iter().find(|v| v.id == current)
    }

    /// The row with `initial` recorded as its one, current version, if it still records
    /// none (credentials stored before versions existed).
    pub fn recording_initial(mut self, initial: &CredentialVersion) -> Connector {
        if self.has_unrecorded_version() {
            self.credential_versions = vec![initial.clone()];
            self.current_credential_version = Some(initial.id.clone());
        }
        self
    }

    /// Credentials stored before versions existed: a secret, no recorded version.
    pub fn has_unrecorded_version(&self) -> bool {
        self.has_secret() && self.credential_versions.is_empty()
    }

    /// The slot a new version takes: a free one, else that of the oldest version that is
    /// not current (its label moves to the new version, and it is no longer listed).
    pub fn next_version_slot(&self) -> u8 {
        let taken: BTreeSet<u8> = self.credential_versions.iter().map(|v| v.slot).collect();
        if let Some(free) = (0..LISTED_VERSIONS as u8).find(|s| !taken.contains(s)) {
            return free;
        }
        let current = self.current_credential_version.as_deref();
        self.credential_versions
            .iter()
            .rev()
            .find(|v| Some(v.id.as_str()) != current)
            .map_or(0, |v| v.slot)
    }
}

/// The initial version of a row that has credentials but records no version, once its
/// secret's current `VersionId` is known (and labelled in `slot`).
pub fn initial_version(row: &Connector, secret_version_id: String, slot: u8) -> CredentialVersion {
    CredentialVersion {
        id: INITIAL_VERSION_ID.to_string(),
        secret_version_id,
        created_at: row.created_at,
        credential_keys: row.credential_keys.clone(),
        has_webhook_secret: row.has_webhook_secret,
        slot,
    }
}

/// `GET …/credentials/versions`: newest first, names only. A row with credentials stored
/// before versions existed shows them as one version, current.
pub fn versions_view(row: &Connector) -> Vec<Value> {
    let entry = |id: &str, created_at: Timestamp, keys: &BTreeSet<String>, webhook: bool, current: bool| {
        json!({
            "version": id,
            "created_at": created_at,
            "credential_keys": keys.iter().collect::<Vec<_>>(),
            "has_webhook_secret": webhook,
            "current": current,
        })
    };
    if row.has_unrecorded_version() {
        return vec![entry(
            INITIAL_VERSION_ID,
            row.created_at,
            &row.credential_keys,
            row.has_webhook_secret,
            true,
        )];
    }
    let current = row.current_credential_version.as_deref();
    row.credential_versions
        .iter()
        .map(|v| {
            entry(
                &v.id,
                v.created_at,
                &v.credential_keys,
                v.has_webhook_secret,
                Some(v.id.as_str()) == current,
            )
        })
        .collect()
}
