//! Orders of concurrent requests that racing clients reach only by chance, made
//! deterministic with the fault proxy's hold.

use shared::App;

use super::faults::{Fault, FaultProxy};
use super::{Harness, Reply};

/// A disconnect of `connector_type` (an active connector with credentials) served by
/// `faulty`, whose calls go through `proxy`, is overtaken by a restore: its secret call
/// (`DeleteSecret`, after its commit) is held back until a restore, served by the
/// harness's own app, has read the disconnected row, restored the secret and committed
/// the active row. The disconnect's scheduled deletion then lands on the secret of an
/// active connector, and the disconnect must notice that the row moved and put the secret
/// back (`RestoreSecret`). With `publish_fails`, the disconnect's event cannot be
/// published either, so it stops there: its outbox record keeps that duty for the sweeper.
/// Returns the disconnect's and the restore's answers.
pub async fn disconnect_overtaken_by_restore(
    h: &Harness,
    faulty: &App,
    proxy: &FaultProxy,
    key: &str,
    connector_type: &str,
    publish_fails: bool,
) -> (Reply, Reply) {
    let mut hold = proxy.hold("DeleteSecret");
    if publish_fails {
        // Armed before the disconnect starts: it publishes beside its secret step.
        proxy.arm_operation("PutEvents", Fault::Throttle);
    }
    let disconnect = h.as_key(key).via(faulty).delete(connector_type);
    let restore = async move {
        hold.reached().await;
        let restored = h.as_key(key).restore(connector_type).await;
        hold.release();
        restored
    };
    tokio::join!(disconnect, restore)
}
