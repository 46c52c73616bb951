//! `connectors-admin events watch`: routes the bus to a queue and prints each event as it
//! arrives, so a developer can see what the service announces.

use aws_config::SdkConfig;
use aws_sdk_eventbridge::types::Target;
use aws_sdk_sqs::types::QueueAttributeName;
use shared::config::Settings;

pub async fn watch(sdk: &SdkConfig, settings: &Settings, limit: Option<usize>) -> Result<(), String> {
    let sqs = aws_sdk_sqs::Client::new(sdk);
    let name = format!("{}-watch", settings.event_bus);
    let queue_url = route_to_queue(sdk, &settings.event_bus, &settings.event_source, &name).await?;
    eprintln!("watching bus `{}` (Ctrl-C to stop)", settings.event_bus);
    let mut seen = 0;
    loop {
        let out = sqs
            .receive_message()
            .queue_url(&queue_url)
            .max_number_of_messages(10)
            .wait_time_seconds(1)
            .send()
            .await
            .map_err(|_| "cannot read the watch queue")?;
        for message in out.messages() {
            println!("{}", message.body().unwrap_or_default());
            if let Some(handle) = message.receipt_handle() {
                let _ = sqs
                    .delete_message()
                    .queue_url(&queue_url)
                    .receipt_handle(handle)
                    .send()
                    .await;
            }
            seen += 1;
            if limit.is_some_and(|l| seen >= l) {
                return Ok(());
            }
        }
    }
}

/// Creates the queue `name` and a rule of the same name that sends every event of `source`
/// on `bus` to it; returns the queue's URL. The integration tests read events this way too.
pub async fn route_to_queue(sdk: &SdkConfig, bus: &str, source: &str, name: &str) -> Result<String, &'static str> {
    route_pattern_to_queue(sdk, bus, &serde_json::json!({ "source": [source] }), name).await
}

/// Routes the events of `bus` that match `pattern` (an EventBridge event pattern) to a new
/// queue `name`; returns the queue's URL.
pub async fn route_pattern_to_queue(
    sdk: &SdkConfig,
    bus: &str,
    pattern: &serde_json::Value,
    name: &str,
) -> Result<String, &'static str> {
    let sqs = aws_sdk_sqs::Client::new(sdk);
    let events = aws_sdk_eventbridge::Client::new(sdk);
    let queue_url = sqs
        .create_queue()
        .queue_name(name)
        .send()
        .await
        .map_err(|_| "cannot create the watch queue (is the emulator running?)")?
        .queue_url
        .unwrap_or_default();
    let attributes = sqs
        .get_queue_attributes()
        .queue_url(&queue_url)
        .attribute_names(QueueAttributeName::QueueArn)
        .send()
        .await
        .map_err(|_| "cannot read the watch queue")?;
    let queue_arn = attributes
        .attributes()
        .and_then(|a| a.get(&QueueAttributeName::QueueArn))
        .cloned()
        .unwrap_or_default();
    let pattern = pattern.to_string();
    events
        .put_rule()
        .name(name)
        .event_bus_name(bus)
        .event_pattern(pattern)
        .send()
        .await
        .map_err(|_| "cannot create the watch rule (run `connectors-admin bootstrap` first)")?;
    let target = Target::builder()
        .id("watch")
        .arn(queue_arn)
        .build()
        .map_err(|_| "bad target")?;
    events
        .put_targets()
        .rule(name)
        .event_bus_name(bus)
        .targets(target)
        .send()
        .await
        .map_err(|_| "cannot attach the watch queue")?;
    Ok(queue_url)
}
