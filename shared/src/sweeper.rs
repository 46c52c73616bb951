//! The scheduled function's entry: one sweep, its report as the invocation result.

use crate::service::SweepReport;
use crate::App;

/// A failed sweep fails the invocation, so the schedule's retry policy and on-failure
/// destination see it; whatever it had already done stays done.
pub async fn run(app: &App) -> Result<SweepReport, lambda_http::Error> {
    app.service.sweep().await.map_err(|e| {
        tracing::error!(failure = %e, "sweep failed");
        lambda_http::Error::from(format!("sweep failed: {}", e.code()))
    })
}
