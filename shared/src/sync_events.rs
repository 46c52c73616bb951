//! The `sync` function's entry: a sync report that arrived on the bus (detail-type
//! `sync.reported`, from any source but this service's own). The report is applied as
//! `POST …/sync-reports` would apply it, to the connector the detail names by entity and
//! id (whatever its mode: the bus is not a key).
//!
//! What retrying cannot fix is dropped and counted, never thrown back to be retried: a
//! report that is not valid, or one for a connector that is unknown, expired or
//! disconnected. A dependency failure (and a race lost three times) is thrown, so that
//! Lambda invokes the function with the event again (twice, then the on-failure queue
//! keeps it); applying a report twice changes nothing (its `run_id`, the event's `id`
//! when the detail has none, is remembered).

use serde_json::{Map, Value};

use crate::domain::error::ApiError;
use crate::domain::ids::{ConnectorId, EntityId};
use crate::domain::sync::{self, RunId};
use crate::{telemetry, App};

/// The detail-type the rule routes to this function.
pub const DETAIL_TYPE: &str = "sync.reported";

/// What became of one event.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Handled {
    Applied,
    /// Not a valid report (or not one of ours to take: wrong detail-type, our own source).
    DroppedInvalid,
    /// No such connector, or past its recovery window.
    DroppedUnknown,
    DroppedInactive,
}

/// The names of the outcomes the EMF line counts: each [`Handled`], then `retried`.
pub const OUTCOMES: [&str; 5] = [
    "applied",
    "dropped_invalid",
    "dropped_unknown",
    "dropped_inactive",
    "retried",
];

/// A failure worth retrying (throttled, unavailable, a lost race).
#[derive(Debug, thiserror::Error)]
#[error("sync report not applied, to be retried: {0}")]
pub struct Retry(&'static str);

/// Handles one EventBridge event and writes its EMF line (namespace `METRIC_NAMESPACE`,
/// dimension `function=sync`).
pub async fn handle(app: &App, event: &Value) -> Result<Handled, Retry> {
    let handled = apply(app, event).await;
    let outcome = match &handled {
        Ok(Handled::Applied) => OUTCOMES[0],
        Ok(Handled::DroppedInvalid) => OUTCOMES[1],
        Ok(Handled::DroppedUnknown) => OUTCOMES[2],
        Ok(Handled::DroppedInactive) => OUTCOMES[3],
        Err(_) => OUTCOMES[4],
    };
    println!(
        "{}",
        telemetry::sync_metric_line(
            &app.settings.metric_namespace,
            outcome,
            chrono::Utc::now().timestamp_millis()
        )
    );
    match &handled {
        Ok(Handled::Applied) => tracing::info!("sync report applied"),
        Ok(dropped) => tracing::warn!(outcome = ?dropped, "sync report dropped"),
        Err(e) => tracing::warn!(failure = %e, "sync report to be retried"),
    }
    handled
}

async fn apply(app: &App, event: &Value) -> Result<Handled, Retry> {
    let Some((entity_id, connector_id, body)) = report_of(event, &app.settings.event_source) else {
        return Ok(Handled::DroppedInvalid);
    };
    let service = &app.service;
    let Ok(report) = sync::parse_report(&body, service.clock.now()) else {
        return Ok(Handled::DroppedInvalid);
    };
    match service.report_sync_from_bus(entity_id, connector_id, &report).await {
        Ok(_) => Ok(Handled::Applied),
        Err(ApiError::NotFound { .. }) => Ok(Handled::DroppedUnknown),
        Err(ApiError::Conflict {
            code: "connector_inactive",
            ..
        }) => Ok(Handled::DroppedInactive),
        Err(e) => Err(Retry(e.code())),
    }
}

/// The entity, the connector and the report body of a `sync.reported` event from another
/// source; the event's `id` becomes the `run_id` when the detail has none.
fn report_of(event: &Value, own_source: &str) -> Option<(EntityId, ConnectorId, Value)> {
    if event.get("detail-type")?.as_str()? != DETAIL_TYPE || event.get("source")?.as_str()? == own_source {
        return None;
    }
    let mut detail: Map<String, Value> = event.get("detail")?.as_object()?.clone();
    let entity_id: EntityId = detail.remove("entity_id")?.as_str()?.parse().ok()?;
    let connector_id: ConnectorId = detail.remove("connector_id")?.as_str()?.parse().ok()?;
    if !detail.contains_key("run_id") {
        let id = event.get("id").and_then(Value::as_str).and_then(RunId::new)?;
        detail.insert("run_id".into(), Value::String(id.as_str().to_string()));
    }
    Some((entity_id, connector_id, Value::Object(detail)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn event(detail: Value) -> Value {
        json!({"id": "7bf73129-1428-4cd3-a780-95db273d1602", "detail-type": DETAIL_TYPE,
               "source": "erp.sync-workers", "detail": detail})
    }

    #[test]
    fn the_detail_names_the_connector_and_the_event_id_is_the_default_run_id() {
        let entity = EntityId::new_random();
        let connector = ConnectorId::new_random();
        let detail =
            json!({"entity_id": entity.to_string(), "connector_id": connector.to_string(), "outcome": "succeeded"});
        let (e, c, body) = report_of(&event(detail.clone()), "erp.integrations").unwrap();
        assert_eq!((e, c), (entity, connector));
        assert_eq!(
            body,
            json!({"outcome": "succeeded", "run_id": "7bf73129-1428-4cd3-a780-95db273d1602"})
        );
        let mut with_run = detail.clone();
        with_run["run_id"] = json!("r-1");
        assert_eq!(
            report_of(&event(with_run), "erp.integrations").unwrap().2["run_id"],
            "r-1"
        );
        assert!(
            report_of(&event(detail.clone()), "erp.sync-workers").is_none(),
            "our own source"
        );
        let mut other = event(detail);
        other["detail-type"] = json!("integration.updated");
        assert!(report_of(&other, "erp.integrations").is_none());
        assert!(report_of(
            &event(json!({"entity_id": "x", "connector_id": "y"})),
            "erp.integrations"
        )
        .is_none());
    }

    #[test]
    fn the_outcomes_are_named_as_the_result_says() {
        for (handled, name) in [
            (Handled::Applied, "applied"),
            (Handled::DroppedInvalid, "dropped_invalid"),
            (Handled::DroppedUnknown, "dropped_unknown"),
            (Handled::DroppedInactive, "dropped_inactive"),
        ] {
            assert_eq!(serde_json::to_value(handled).unwrap(), name);
            assert!(OUTCOMES.contains(&name));
        }
    }

    #[test]
    fn the_metric_line_counts_the_outcome() {
        let line: Value =
            serde_json::from_str(&telemetry::sync_metric_line("Connectors", "dropped_unknown", 1)).unwrap();
        assert_eq!(line["dropped_unknown"], 1);
        assert_eq!(
            line["_aws"]["CloudWatchMetrics"][0]["Metrics"][0]["Name"],
            "dropped_unknown"
        );
        assert_eq!(line["function"], "sync");
    }
}
