//! The connectors service: domain, ports, AWS adapters and the HTTP layer that every
//! Lambda function (and the local dev server) shares.

pub mod admin;
pub mod after_answer;
pub mod aws;
pub mod config;
pub mod domain;
pub mod fingerprint_key;
pub mod http;
pub mod key_cache;
pub mod memory;
pub mod on_first_use;
pub mod planted;
pub mod ports;
pub mod rate_cap;
pub mod service;
pub mod sweeper;
pub mod sync_events;
pub mod telemetry;

use std::sync::Arc;

use aws_config::SdkConfig;

use crate::aws::events::EventBridgeBus;
use crate::aws::idempotency::DynamoIdempotencyStore;
use crate::aws::keys::DynamoKeyStore;
use crate::aws::secrets::SecretsManagerVault;
use crate::aws::store::DynamoConnectorStore;
use crate::config::{ConfigError, Settings};
use crate::key_cache::CachedKeyStore;
use crate::on_first_use::OnFirstUse;
use crate::ports::{Clock, EventBus, FingerprintKeySource, SystemClock, Vault};
use crate::service::Service;

/// Everything a handler needs, built once per container.
pub struct App {
    pub service: Service,
    pub settings: Settings,
    /// The HMAC key of `Idempotency-Key` fingerprints (fetched on first need, see
    /// [`fingerprint_key`]).
    pub fingerprint_key: Arc<dyn FingerprintKeySource>,
}

impl App {
    /// Settings from the environment, one `SdkConfig`, the wall clock.
    pub async fn from_env() -> App {
        let sdk = config::sdk_config().await;
        App::new(&sdk, Settings::from_env(), Arc::new(SystemClock))
    }

    /// As [`App::from_env`], for the write functions (connect, update, credentials,
    /// disconnect, restore): inside Lambda they refuse to start without
    /// `IDEMPOTENCY_FINGERPRINT_KEY_SECRET` ([`Settings::for_writes`]).
    pub async fn from_env_for_writes() -> Result<App, ConfigError> {
        let settings = Settings::for_writes(|name| std::env::var(name).ok()).inspect_err(|e| {
            tracing::error!(failure = %e, "not starting");
        })?;
        let sdk = config::sdk_config().await;
        Ok(App::new(&sdk, settings, Arc::new(SystemClock)))
    }

    /// As [`App::from_env`], for the read-only functions (get, list): they never call
    /// Secrets Manager or EventBridge, so those clients are built only if a call ever does.
    pub async fn from_env_for_reads() -> App {
        let sdk = config::sdk_config().await;
        let settings = Settings::from_env();
        let (secrets, events) = (sdk.clone(), sdk.clone());
        let (prefix, bus, source) = (
            settings.secret_prefix.clone(),
            settings.event_bus.clone(),
            settings.event_source.clone(),
        );
        let kms_key_id = settings.secrets_kms_key_id.clone();
        let vault = OnFirstUse::new(move || {
            SecretsManagerVault::new(aws_sdk_secretsmanager::Client::new(&secrets), &prefix)
                .with_kms_key_id(kms_key_id.clone())
        });
        let bus =
            OnFirstUse::new(move || EventBridgeBus::new(aws_sdk_eventbridge::Client::new(&events), &bus, &source));
        let fingerprint_key =
            fingerprint_key::from_setting(&settings.fingerprint_key, || aws_sdk_secretsmanager::Client::new(&sdk));
        App::assemble(
            aws_sdk_dynamodb::Client::new(&sdk),
            Arc::new(vault),
            Arc::new(bus),
            fingerprint_key,
            settings,
            Arc::new(SystemClock),
        )
    }

    /// The AWS adapters from one `SdkConfig`; the clock is injectable for tests.
    pub fn new(sdk: &SdkConfig, settings: Settings, clock: Arc<dyn Clock>) -> App {
        let clients = Clients {
            dynamodb: aws_sdk_dynamodb::Client::new(sdk),
            secrets: aws_sdk_secretsmanager::Client::new(sdk),
            events: aws_sdk_eventbridge::Client::new(sdk),
        };
        App::from_clients(clients, settings, clock)
    }

    /// The adapters over clients built elsewhere (e.g. with interceptors in tests).
    pub fn from_clients(clients: Clients, settings: Settings, clock: Arc<dyn Clock>) -> App {
        let Clients {
            dynamodb,
            secrets,
            events,
        } = clients;
        let fingerprint_key = fingerprint_key::from_setting(&settings.fingerprint_key, || secrets.clone());
        let vault = Arc::new(
            SecretsManagerVault::new(secrets, &settings.secret_prefix)
                .with_kms_key_id(settings.secrets_kms_key_id.clone()),
        );
        let bus = Arc::new(EventBridgeBus::new(events, &settings.event_bus, &settings.event_source));
        App::assemble(dynamodb, vault, bus, fingerprint_key, settings, clock)
    }

    fn assemble(
        dynamodb: aws_sdk_dynamodb::Client,
        vault: Arc<dyn Vault>,
        bus: Arc<dyn EventBus>,
        fingerprint_key: Arc<dyn FingerprintKeySource>,
        settings: Settings,
        clock: Arc<dyn Clock>,
    ) -> App {
        let service = Service {
            store: Arc::new(DynamoConnectorStore::new(dynamodb.clone(), &settings.table)),
            keys: Arc::new(CachedKeyStore::new(
                Arc::new(DynamoKeyStore::new(dynamodb.clone(), &settings.table)),
                clock.clone(),
            )),
            idempotency: Arc::new(DynamoIdempotencyStore::new(dynamodb, &settings.table)),
            vault,
            bus,
            clock,
        };
        App {
            service,
            settings,
            fingerprint_key,
        }
    }
}

/// The three AWS clients the service uses.
pub struct Clients {
    pub dynamodb: aws_sdk_dynamodb::Client,
    pub secrets: aws_sdk_secretsmanager::Client,
    pub events: aws_sdk_eventbridge::Client,
}
