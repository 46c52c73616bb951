//! Defects the deterministic simulator can plant, one at a time, to show that its
//! invariants find them (the table in docs/RELIABILITY.md, "Planted defects").
//!
//! Compiled in only with the `planted-defects` feature, which only the simulator turns
//! on (the Lambda builds name their packages, so it never reaches a bootstrap). Without
//! it [`on`] is a constant `false` and every planted branch is dead code. With it, a
//! defect is planted only by `plant`, for the calling thread; nothing reads the
//! environment here.

/// Each one re-creates a defect a review or the simulator once found (or one an
/// invariant exists to catch), at the place the fix now stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Defect {
    /// A reactivation neither restores the secret before its commit nor makes it follow
    /// the row after (`commit_reactivation`): a restore answers 200 over a secret still
    /// scheduled for deletion.
    RestoreWithoutSecret,
    /// Only the `FollowRow` after a reactivation's commit is dropped.
    NoFollowRowAfterReactivation,
    /// No secret guard before a reactivation restores the secret.
    NoGuardBeforeReactivation,
    /// A disconnected row's secret is scheduled for deletion only when the row claims
    /// credentials.
    ScheduleOnlyClaimedSecrets,
    /// Secrets named by `{entity}/{connector_type}` instead of the connector's id.
    SecretsNamedByType,
    /// The guard check never deletes a secret whose row is gone.
    NoOrphanCleanup,
    /// The store's delete (expiry, permanent delete) loses its version condition, so two
    /// sweeps can both finalise one connector.
    UnconditionalDelete,
    /// A permanent delete answers 204 even when the secret's forced deletion failed.
    PurgeIgnoresFailedDeletion,
    /// A request cut at its deadline does not settle the secret it touched.
    NoSettleWhenCut,
    /// Reconciling the secret of a connector whose row is gone does nothing (a
    /// credentials write that lands after a permanent delete leaves it readable).
    GoneConnectorSecretKept,
}

impl Defect {
    pub const ALL: [Defect; 10] = [
        Defect::RestoreWithoutSecret,
        Defect::NoFollowRowAfterReactivation,
        Defect::NoGuardBeforeReactivation,
        Defect::ScheduleOnlyClaimedSecrets,
        Defect::SecretsNamedByType,
        Defect::NoOrphanCleanup,
        Defect::UnconditionalDelete,
        Defect::PurgeIgnoresFailedDeletion,
        Defect::NoSettleWhenCut,
        Defect::GoneConnectorSecretKept,
    ];

    /// The name `SIM_PLANT` takes: the variant's, in kebab case.
    pub fn name(self) -> &'static str {
        match self {
            Defect::RestoreWithoutSecret => "restore-without-secret",
            Defect::NoFollowRowAfterReactivation => "no-follow-row-after-reactivation",
            Defect::NoGuardBeforeReactivation => "no-guard-before-reactivation",
            Defect::ScheduleOnlyClaimedSecrets => "schedule-only-claimed-secrets",
            Defect::SecretsNamedByType => "secrets-named-by-type",
            Defect::NoOrphanCleanup => "no-orphan-cleanup",
            Defect::UnconditionalDelete => "unconditional-delete",
            Defect::PurgeIgnoresFailedDeletion => "purge-ignores-failed-deletion",
            Defect::NoSettleWhenCut => "no-settle-when-cut",
            Defect::GoneConnectorSecretKept => "gone-connector-secret-kept",
        }
    }

    pub fn parse(name: &str) -> Option<Defect> {
        Defect::ALL.into_iter().find(|d| d.name() == name)
    }
}

#[cfg(feature = "planted-defects")]
thread_local! {
    /// Per thread: the simulator runs a whole world on one thread, and tests of several
    /// worlds run side by side.
    static PLANTED: std::cell::Cell<Option<Defect>> = const { std::cell::Cell::new(None) };
}

/// Plants `defect` (or none) for the calling thread.
#[cfg(feature = "planted-defects")]
pub fn plant(defect: Option<Defect>) {
    PLANTED.with(|p| p.set(defect));
}

/// Whether `defect` is planted on this thread.
#[inline]
pub fn on(defect: Defect) -> bool {
    #[cfg(feature = "planted-defects")]
    {
        PLANTED.with(|p| p.get()) == Some(defect)
    }
    #[cfg(not(feature = "planted-defects"))]
    {
        let _ = defect;
        false
    }
}
