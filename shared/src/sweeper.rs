//! The scheduled function's entry: one sweep, its report as the invocation result.

use crate::service::SweepReport;
use crate::App;

/// A failed sweep fails the invocation, so the schedule's retry policy and on-failure
/// destination see it; whatever it had already done stays done.
/// Each finished sweep writes one EMF metrics line (`undelivered_records`, `bad_items`,
/// …), which the template's alarms watch.
pub async fn run(app: &App) -> Result<SweepReport, lambda_http::Error> {
    let report = app.service.sweep().await.map_err(|e| {
        tracing::error!(failure = %e, "sweep failed");
        lambda_http::Error::from(format!("sweep failed: {}", e.code()))
    })?;
    println!(
        "{}",
        crate::telemetry::sweep_metric_line(&report, chrono::Utc::now().timestamp_millis())
    );
    Ok(report)
}
