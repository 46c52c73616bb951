//! Settings, read only from the environment, with the design's defaults.

use std::time::Duration;

use aws_config::environment::EnvironmentVariableCredentialsProvider;
use aws_config::timeout::TimeoutConfig;
use aws_config::{BehaviorVersion, Region, SdkConfig};
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
    /// `IDEMPOTENCY_FINGERPRINT_KEY`: the HMAC key of stored request fingerprints (one per
    /// deployment; the template generates it in Secrets Manager). Local runs use a fixed
    /// development key, which protects nothing and is only there so they need no setup.
    pub fingerprint_key: String,
}

/// The service's settings, with their defaults (`None`: the SDK's own lookup); the
/// template sets each for every function (a test checks). The variables Lambda and SAM
/// set themselves, and `SSL_CERT_FILE` / `SSL_CERT_DIR`, are read by [`sdk_config`].
pub const ENV_VARS: [(&str, Option<&str>); 7] = [
    ("CONNECTORS_TABLE", Some("connectors")),
    ("EVENT_BUS_NAME", Some("integrations")),
    ("EVENT_SOURCE", Some("erp.integrations")),
    ("SECRET_PREFIX", Some("connectors/")),
    ("IDEMPOTENCY_FINGERPRINT_KEY", Some("local-development-only")),
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
            fingerprint_key: get("IDEMPOTENCY_FINGERPRINT_KEY"),
        }
    }
}

/// One `SdkConfig` per container: rustls with ring (smaller and faster to build than the
/// default aws-lc stack), short timeouts so an outage becomes a quick 503 rather than a
/// Lambda timeout (a call gives up after 4 s; the whole request is also held to the
/// invocation's deadline by `http::within_budget`). `AWS_ENDPOINT_URL` and `AWS_REGION` are honoured by aws-config itself.
///
/// Inside Lambda the runtime hands the function its region and its role's credentials as
/// environment variables, which the default chain would read first anyway; taking them
/// from there directly skips building the default region and credential chains (about 3 ms of every cold start,
/// measured by `make bench`). Elsewhere (the admin CLI, tests, a laptop with profiles or
/// SSO) the default chains run as usual. See [`Roots`] for the TLS trust store.
pub async fn sdk_config() -> SdkConfig {
    let lookup = |name: &str| std::env::var(name).ok();
    sdk_config_for(lambda_region(lookup), Roots::choose(lookup)).await
}

/// A variable's value, if it is set and not empty.
fn non_empty(lookup: &impl Fn(&str) -> Option<String>, name: &str) -> Option<String> {
    lookup(name).filter(|v| !v.is_empty())
}

/// `Some(region)` when running in Lambda with the credentials in the environment.
fn lambda_region(lookup: impl Fn(&str) -> Option<String>) -> Option<String> {
    let set = |name: &str| non_empty(&lookup, name);
    let in_lambda = set("AWS_LAMBDA_FUNCTION_NAME").is_some() && set("AWS_ACCESS_KEY_ID").is_some();
    in_lambda.then(|| set("AWS_REGION")).flatten()
}

/// The roots the HTTPS client trusts.
///
/// Inside Lambda the functions only talk to AWS endpoints, whose certificates all chain to
/// Amazon Trust Services; trusting those five roots (compiled in) instead of parsing the
/// system bundle of ~150 saves about 0.8 ms of every cold start (`make bench`, with an
/// Amazon-Linux-like single bundle) and narrows who could impersonate AWS to the function.
/// With `SSL_CERT_FILE` or `SSL_CERT_DIR` set (a TLS-inspecting proxy, a custom HTTPS
/// endpoint) the trust store is what they name, as rustls-native-certs reads them: a full
/// bundle that also holds the proxy's CA, say. Anywhere else — laptops, CI, the admin CLI,
/// and `sam local` (which sets `AWS_SAM_LOCAL`) — the platform's store is used.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Roots {
    /// The five roots compiled in from `amazon_trust_services.pem`.
    AmazonTrustServices,
    /// The platform's store, or what `SSL_CERT_FILE` / `SSL_CERT_DIR` name.
    System,
}

/// The roots AWS endpoints chain to, which the functions trust inside Lambda.
pub const AMAZON_TRUST_SERVICES_PEM: &[u8] = include_bytes!("amazon_trust_services.pem");

impl Roots {
    fn choose(lookup: impl Fn(&str) -> Option<String>) -> Roots {
        let set = |name: &str| non_empty(&lookup, name).is_some();
        let on_lambda = set("AWS_LAMBDA_FUNCTION_NAME") && !set("AWS_SAM_LOCAL");
        let store_named = set("SSL_CERT_FILE") || set("SSL_CERT_DIR");
        if on_lambda && !store_named {
            Roots::AmazonTrustServices
        } else {
            Roots::System
        }
    }

    fn tls_context(self) -> tls::TlsContext {
        let store = match self {
            Roots::AmazonTrustServices => tls::TrustStore::empty().with_pem_certificate(AMAZON_TRUST_SERVICES_PEM),
            Roots::System => tls::TrustStore::default(),
        };
        tls::TlsContext::builder()
            .with_trust_store(store)
            .build()
            .expect("a trust store without extra server names is always valid")
    }
}

async fn sdk_config_for(lambda_region: Option<String>, roots: Roots) -> SdkConfig {
    let http_client = aws_smithy_http_client::Builder::new()
        .tls_provider(tls::Provider::Rustls(CryptoMode::Ring))
        .tls_context(roots.tls_context())
        .build_https();
    let timeouts = TimeoutConfig::builder()
        .connect_timeout(Duration::from_secs(2))
        .operation_attempt_timeout(Duration::from_secs(2))
        .operation_timeout(Duration::from_secs(4))
        .build();
    let loader = aws_config::defaults(BehaviorVersion::latest())
        .http_client(http_client)
        .timeout_config(timeouts);
    let loader = match lambda_region {
        Some(region) => loader
            .region(Region::new(region))
            .credentials_provider(EnvironmentVariableCredentialsProvider::new()),
        None => loader,
    };
    loader.load().await
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

    /// An environment of exactly these variables.
    fn env<'a>(vars: &'a [(&'a str, &'a str)]) -> impl Fn(&str) -> Option<String> + 'a {
        move |name| vars.iter().find(|(n, _)| *n == name).map(|(_, v)| v.to_string())
    }

    #[test]
    fn the_lambda_shortcut_only_applies_inside_lambda_with_credentials_in_the_environment() {
        let lambda = [
            ("AWS_LAMBDA_FUNCTION_NAME", "get"),
            ("AWS_ACCESS_KEY_ID", "ASIA"),
            ("AWS_REGION", "eu-west-1"),
        ];
        assert_eq!(lambda_region(env(&lambda)), Some("eu-west-1".to_string()));
        // A laptop with a profile, or a container without credentials in its environment.
        assert_eq!(lambda_region(env(&lambda[1..])), None);
        assert_eq!(lambda_region(env(&[lambda[0], lambda[2]])), None);
        assert_eq!(lambda_region(env(&lambda[..2])), None);
    }

    #[test]
    fn inside_lambda_only_the_amazon_roots_are_trusted_unless_a_store_is_named() {
        assert_eq!(
            Roots::choose(env(&[("AWS_LAMBDA_FUNCTION_NAME", "get")])),
            Roots::AmazonTrustServices
        );
        assert_eq!(Roots::choose(env(&[])), Roots::System);
        // `sam local` sets AWS_SAM_LOCAL (samcli/local/lambdafn/env_vars.py).
        assert_eq!(
            Roots::choose(env(&[("AWS_LAMBDA_FUNCTION_NAME", "get"), ("AWS_SAM_LOCAL", "true")])),
            Roots::System
        );
        assert_eq!(
            Roots::choose(env(&[
                ("AWS_LAMBDA_FUNCTION_NAME", "get"),
                ("SSL_CERT_FILE", "/etc/proxy.pem")
            ])),
            Roots::System
        );
        assert_eq!(
            Roots::choose(env(&[
                ("AWS_LAMBDA_FUNCTION_NAME", "get"),
                ("SSL_CERT_DIR", "/etc/certs")
            ])),
            Roots::System
        );
        assert_eq!(
            Roots::choose(env(&[("AWS_LAMBDA_FUNCTION_NAME", "get"), ("SSL_CERT_FILE", "")])),
            Roots::AmazonTrustServices
        );
    }

    /// The compiled-in roots are five genuine certificates: each block is, byte for byte,
    /// one of the system's Mozilla roots (Debian's or Amazon Linux's bundle).
    #[test]
    fn the_compiled_in_roots_are_the_five_amazon_trust_services_roots_from_the_system_bundle() {
        let pem = std::str::from_utf8(AMAZON_TRUST_SERVICES_PEM).unwrap();
        let blocks: Vec<&str> = pem
            .split("-----BEGIN CERTIFICATE-----")
            .skip(1)
            .map(|b| b.split("-----END CERTIFICATE-----").next().unwrap().trim())
            .collect();
        assert_eq!(blocks.len(), 5);
        let bundle = ["/etc/ssl/certs/ca-certificates.crt", "/etc/pki/tls/certs/ca-bundle.crt"]
            .iter()
            .find_map(|path| std::fs::read_to_string(path).ok())
            .expect("a system CA bundle (Debian's or Amazon Linux's ca-certificates)");
        for block in &blocks {
            assert!(bundle.contains(block), "not a system root: {}", &block[..64]);
        }
    }

    #[tokio::test]
    async fn inside_lambda_the_config_reads_region_and_credentials_from_the_environment() {
        use aws_sdk_dynamodb::config::ProvideCredentials;
        let sdk = sdk_config_for(Some("eu-west-1".into()), Roots::AmazonTrustServices).await;
        assert_eq!(sdk.region().map(|r| r.as_ref()), Some("eu-west-1"));
        // The environment provider answers from AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY, which
        // `make test` sets; a missing pair would be an error here, not a silent fallback.
        let credentials = sdk.credentials_provider().unwrap().provide_credentials().await;
        assert_eq!(credentials.is_ok(), std::env::var("AWS_SECRET_ACCESS_KEY").is_ok());
    }

    /// The SDK's own loader accepts the compiled-in roots (it panics on a PEM it cannot
    /// parse): a call through a client built on them gets as far as the network.
    #[tokio::test]
    async fn a_client_on_the_amazon_roots_builds_its_connector_and_reaches_the_network() {
        let sdk = sdk_config_for(None, Roots::AmazonTrustServices).await;
        let config = aws_sdk_dynamodb::config::Builder::from(&sdk)
            .region(Region::new("eu-west-1"))
            .credentials_provider(aws_sdk_dynamodb::config::Credentials::new(
                "AKID", "secret", None, None, "test",
            ))
            .endpoint_url("http://127.0.0.1:9") // discard port: nothing listens
            .retry_config(aws_config::retry::RetryConfig::disabled())
            .build();
        let err = aws_sdk_dynamodb::Client::from_conf(config)
            .list_tables()
            .send()
            .await
            .unwrap_err();
        assert!(
            matches!(err, aws_sdk_dynamodb::error::SdkError::DispatchFailure(_)),
            "{err:?}"
        );
    }
}
