//! Settings, read only from the environment, with the design's defaults.

use std::time::Duration;

use aws_config::timeout::TimeoutConfig;
use aws_config::{BehaviorVersion, SdkConfig};
use aws_smithy_http_client::tls::{self, rustls_provider::CryptoMode};

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Settings {
    /// `CONNECTORS_TABLE`
    pub table: String,
    /// `EVENT_BUS_NAME`
    pub event_bus: String,
    /// `EVENT_SOURCE`
    pub event_source: String,
    /// `SECRET_PREFIX`
    pub secret_prefix: String,
}

/// Every variable the code reads, with its default (`None`: the SDK's own lookup).
pub const ENV_VARS: [(&str, Option<&str>); 6] = [
    ("CONNECTORS_TABLE", Some("connectors")),
    ("EVENT_BUS_NAME", Some("integrations")),
    ("EVENT_SOURCE", Some("erp.integrations")),
    ("SECRET_PREFIX", Some("connectors/")),
    ("AWS_ENDPOINT_URL", None),
    ("AWS_REGION", None),
];

impl Settings {
    pub fn from_env() -> Self {
        Self::from_lookup(|name| std::env::var(name).ok())
    }

    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Self {
        let get = |name: &str| {
            lookup(name).filter(|v| !v.trim().is_empty()).unwrap_or_else(|| {
                ENV_VARS
                    .iter()
                    .find(|(n, _)| *n == name)
                    .and_then(|(_, d)| *d)
                    .unwrap_or_default()
                    .to_string()
            })
        };
        Settings {
            table: get("CONNECTORS_TABLE"),
            event_bus: get("EVENT_BUS_NAME"),
            event_source: get("EVENT_SOURCE"),
            secret_prefix: get("SECRET_PREFIX"),
        }
    }
}

/// One `SdkConfig` per container: rustls with ring (smaller and faster to build than the
/// default aws-lc stack), short timeouts so an outage becomes a quick 503 rather than a
/// Lambda timeout. `AWS_ENDPOINT_URL` and `AWS_REGION` are honoured by aws-config itself.
pub async fn sdk_config() -> SdkConfig {
    let http_client = aws_smithy_http_client::Builder::new()
        .tls_provider(tls::Provider::Rustls(CryptoMode::Ring))
        .build_https();
    let timeouts = TimeoutConfig::builder()
        .connect_timeout(Duration::from_secs(2))
        .operation_attempt_timeout(Duration::from_secs(4))
        .operation_timeout(Duration::from_secs(12))
        .build();
    aws_config::defaults(BehaviorVersion::latest())
        .http_client(http_client)
        .timeout_config(timeouts)
        .load()
        .await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_and_overrides() {
        let s = Settings::from_lookup(|_| None);
        assert_eq!(s.table, "connectors");
        assert_eq!(s.event_bus, "integrations");
        assert_eq!(s.event_source, "erp.integrations");
        assert_eq!(s.secret_prefix, "connectors/");
        let s = Settings::from_lookup(|n| (n == "CONNECTORS_TABLE").then(|| "t2".to_string()));
        assert_eq!(s.table, "t2");
        assert_eq!(s.event_bus, "integrations");
    }
}
