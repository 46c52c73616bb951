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
    /// Where the HMAC key of stored request fingerprints comes from.
    pub fingerprint_key: FingerprintKey,
    /// `SECRETS_KMS_KEY_ID`: the KMS key (ARN) the connectors' secrets are created with;
    /// `None` (unset or empty): Secrets Manager's default key, `aws/secretsmanager`.
    pub secrets_kms_key_id: Option<String>,
    /// `METRIC_NAMESPACE`: the CloudWatch namespace of the EMF lines (deployed,
    /// `Connectors/<Stage>`, so that stages never mix their metrics or alarms).
    pub metric_namespace: String,
}

/// Where the HMAC key of the stored `Idempotency-Key` fingerprints comes from.
#[derive(Clone, PartialEq, Eq)]
pub enum FingerprintKey {
    /// `IDEMPOTENCY_FINGERPRINT_KEY_SECRET`: the secret (ARN or name) holding the key, read
    /// with `GetSecretValue` when the first write with an `Idempotency-Key` needs it.
    Secret(String),
    /// `IDEMPOTENCY_FINGERPRINT_KEY`, or the development default: outside Lambda only (the
    /// dev server, tests, the bench). The default protects nothing.
    Local(String),
    /// Inside Lambda without `IDEMPOTENCY_FINGERPRINT_KEY_SECRET`: no key at all. A write
    /// function refuses to start ([`Settings::for_writes`]); a plain-text key in a
    /// function's environment is never used.
    Missing,
}

/// Never prints a key.
impl std::fmt::Debug for FingerprintKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            FingerprintKey::Secret(id) => f.debug_tuple("Secret").field(id).finish(),
            FingerprintKey::Local(_) => f.write_str("Local(..)"),
            FingerprintKey::Missing => f.write_str("Missing"),
        }
    }
}

/// Why a function refuses to start.
#[derive(thiserror::Error)]
pub enum ConfigError {
    #[error(
        "IDEMPOTENCY_FINGERPRINT_KEY_SECRET is not set: inside Lambda a write function reads its \
         fingerprint key from Secrets Manager and has no built-in one to fall back on"
    )]
    FingerprintKeySecretMissing,
}

/// The reason itself: what `main` prints (`Error: {:?}`) when a function refuses to start.
impl std::fmt::Debug for ConfigError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        std::fmt::Display::fmt(self, f)
    }
}

/// The service's settings, with their defaults (`None`: no default). The template sets
/// each for every function (a test checks), but for `IDEMPOTENCY_FINGERPRINT_KEY_SECRET`
/// (the write functions only), `SECRETS_KMS_KEY_ID` (the credentials function only) and
/// `IDEMPOTENCY_FINGERPRINT_KEY` (never: local runs only). The variables Lambda and SAM
/// set themselves, and `SSL_CERT_FILE` / `SSL_CERT_DIR`, are read by [`sdk_config`].
pub const ENV_VARS: [(&str, Option<&str>); 10] = [
    ("CONNECTORS_TABLE", Some("connectors")),
    ("EVENT_BUS_NAME", Some("integrations")),
    ("EVENT_SOURCE", Some("erp.integrations")),
    ("SECRET_PREFIX", Some("connectors/")),
    ("IDEMPOTENCY_FINGERPRINT_KEY_SECRET", None),
    ("IDEMPOTENCY_FINGERPRINT_KEY", Some("local-development-only")),
    ("SECRETS_KMS_KEY_ID", None),
    ("METRIC_NAMESPACE", Some("Connectors")),
    ("AWS_ENDPOINT_URL", None),
    ("AWS_REGION", None),
];

impl Settings {
    pub fn from_env() -> Self {
        Self::from_lookup(|name| std::env::var(name).ok())
    }

    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Self {
        let set = |name: &str| lookup(name).filter(|v| !v.trim().is_empty());
        let get = |name: &str| {
            set(name).unwrap_or_else(|| {
                ENV_VARS
                    .iter()
                    .find(|(n, _)| *n == name)
                    .and_then(|(_, d)| *d)
                    .unwrap_or_default()
                    .to_string()
            })
        };
        let fingerprint_key = match set("IDEMPOTENCY_FINGERPRINT_KEY_SECRET") {
            Some(secret) => FingerprintKey::Secret(secret),
            None if on_lambda(&lookup) => FingerprintKey::Missing,
            None => FingerprintKey::Local(get("IDEMPOTENCY_FINGERPRINT_KEY")),
        };
        Settings {
            table: get("CONNECTORS_TABLE"),
            event_bus: get("EVENT_BUS_NAME"),
            event_source: get("EVENT_SOURCE"),
            secret_prefix: get("SECRET_PREFIX"),
            fingerprint_key,
            secrets_kms_key_id: set("SECRETS_KMS_KEY_ID"),
            metric_namespace: get("METRIC_NAMESPACE"),
        }
    }

    /// The settings of a write function (connect, update, credentials, disconnect,
    /// restore): as [`Settings::from_lookup`], but inside Lambda it is an error not to be
    /// given the fingerprint key's secret.
    pub fn for_writes(lookup: impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let settings = Self::from_lookup(lookup);
        match settings.fingerprint_key {
            FingerprintKey::Missing => Err(ConfigError::FingerprintKeySecretMissing),
            _ => Ok(settings),
        }
    }
}

/// Running in AWS Lambda proper: `AWS_LAMBDA_FUNCTION_NAME` set, and not under `sam local`
/// (which sets `AWS_SAM_LOCAL`; samcli/local/lambdafn/env_vars.py).
fn on_lambda(lookup: &impl Fn(&str) -> Option<String>) -> bool {
    non_empty(lookup, "AWS_LAMBDA_FUNCTION_NAME").is_some() && non_empty(lookup, "AWS_SAM_LOCAL").is_none()
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
        let store_named = set("SSL_CERT_FILE") || set("SSL_CERT_DIR");
        if on_lambda(&lookup) && !store_named {
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
        assert_eq!(s.metric_namespace, "Connectors");
        assert_eq!(s.secrets_kms_key_id, None);
        assert_eq!(
            s.fingerprint_key,
            FingerprintKey::Local("local-development-only".into())
        );
        let s = Settings::from_lookup(|n| (n == "CONNECTORS_TABLE").then(|| "t2".to_string()));
        assert_eq!(s.table, "t2");
        assert_eq!(s.event_bus, "integrations");
        let s = Settings::from_lookup(env(&[
            ("METRIC_NAMESPACE", "Connectors/prod"),
            ("SECRETS_KMS_KEY_ID", "arn:aws:kms:eu-west-1:111122223333:key/k"),
        ]));
        assert_eq!(s.metric_namespace, "Connectors/prod");
        assert_eq!(
            s.secrets_kms_key_id.as_deref(),
            Some("arn:aws:kms:eu-west-1:111122223333:key/k")
        );
        let s = Settings::from_lookup(env(&[("SECRETS_KMS_KEY_ID", "")]));
        assert_eq!(s.secrets_kms_key_id, None, "empty is unset (env.json sets it so)");
    }

    #[test]
    fn the_fingerprint_key_comes_from_its_secret_and_inside_lambda_from_nowhere_else() {
        let secret = (
            "IDEMPOTENCY_FINGERPRINT_KEY_SECRET",
            "arn:aws:secretsmanager:eu-west-1:1:secret:k",
        );
        let literal = ("IDEMPOTENCY_FINGERPRINT_KEY", "plain-text");
        let lambda = ("AWS_LAMBDA_FUNCTION_NAME", "connect");
        let sam = ("AWS_SAM_LOCAL", "true");
        let key = |vars: &[(&str, &str)]| Settings::from_lookup(env(vars)).fingerprint_key;
        let expected = FingerprintKey::Secret(secret.1.into());
        assert_eq!(key(&[secret, literal]), expected);
        assert_eq!(key(&[secret, lambda]), expected);
        assert_eq!(key(&[literal]), FingerprintKey::Local("plain-text".into()));
        assert_eq!(key(&[sam, lambda, literal]), FingerprintKey::Local("plain-text".into()));
        // Inside Lambda: neither the literal nor the public default.
        assert_eq!(key(&[lambda, literal]), FingerprintKey::Missing);
        assert_eq!(key(&[lambda]), FingerprintKey::Missing);

        // A write function refuses to start without the secret inside Lambda only.
        assert!(matches!(
            Settings::for_writes(env(&[lambda, literal])),
            Err(ConfigError::FingerprintKeySecretMissing)
        ));
        assert!(Settings::for_writes(env(&[lambda, secret])).is_ok());
        assert!(Settings::for_writes(env(&[lambda, sam])).is_ok());
        assert!(Settings::for_writes(env(&[])).is_ok());
        // Debug output never shows a key.
        assert!(!format!("{:?}", Settings::from_lookup(env(&[literal]))).contains("plain-text"));
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
