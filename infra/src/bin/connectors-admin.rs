//! `connectors-admin`: issue, revoke and list API keys, and create the local resources.
//! Reads the same environment as the functions.

use std::process::ExitCode;

use clap::{Parser, Subcommand};
use shared::domain::api_key::{KeyId, Scope};
use shared::domain::ids::EntityId;
use shared::App;

#[derive(Parser)]
#[command(name = "connectors-admin", about = "Operator tooling for the connectors service")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// API keys.
    Keys {
        #[command(subcommand)]
        action: KeyAction,
    },
    /// Create the table (with TTL) and the event bus if they are missing, and the fingerprint
    /// key's secret if IDEMPOTENCY_FINGERPRINT_KEY_SECRET names one that is missing.
    Bootstrap,
    /// Run the sweep once (expiries, left-behind events, secret guards), as the scheduled function does.
    Sweep,
    /// Watch what the service publishes on the bus.
    Events {
        #[command(subcommand)]
        action: EventAction,
    },
}

#[derive(Subcommand)]
enum EventAction {
    /// Route the bus to a queue and print each event (one JSON per line) as it arrives.
    Watch {
        /// Stop after this many events.
        #[arg(long)]
        count: Option<usize>,
    },
}

#[derive(Subcommand)]
enum KeyAction {
    /// Issue a key; the key itself is printed alone on the last line.
    Create {
        #[arg(long)]
        entity: EntityId,
        /// integrations:read | integrations:write | integrations:credentials | integrations:purge |
        /// integrations:sync
        #[arg(long = "scope", required = true, value_parser = parse_scope)]
        scopes: Vec<Scope>,
        /// A live key (`ark_live_ent_…`); test keys see only sandbox connectors.
        #[arg(long)]
        live: bool,
        #[arg(long, value_parser = clap::value_parser!(i64).range(1..=3650))]
        expires_in_days: Option<i64>,
    },
    /// Revoke a key by its id (`key_…`).
    Revoke { key_id: String },
    /// List an entity's keys (ids, scopes, dates; never key material).
    List {
        #[arg(long)]
        entity: EntityId,
    },
}

fn parse_scope(text: &str) -> Result<Scope, String> {
    Scope::parse(text).ok_or_else(|| {
        format!(
            "unknown scope; use one of: {}",
            Scope::ALL.map(Scope::as_str).join(", ")
        )
    })
}

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    let sdk = shared::config::sdk_config().await;
    let settings = shared::config::Settings::from_env();
    let result: Result<(), String> = async {
        match cli.command {
            Command::Bootstrap => {
                shared::admin::bootstrap(&sdk, &settings)
                    .await
                    .map_err(|e| e.to_string())?;
                println!(
                    "table `{}` and event bus `{}` are ready",
                    settings.table, settings.event_bus
                );
                if let shared::config::FingerprintKey::Secret(name) = &settings.fingerprint_key {
                    println!("fingerprint key secret `{name}` is ready");
                }
            }
            Command::Sweep => {
                let app = App::new(&sdk, settings, std::sync::Arc::new(shared::ports::SystemClock));
                // The scheduled function's budget: its 60 s timeout from now.
                let budget = shared::service::SweepBudget::seconds_from(
                    shared::ports::Clock::now_ms(app.service.clock.as_ref()),
                    shared::sweeper::RUN_SECONDS_WITHOUT_DEADLINE,
                );
                let report = app.service.sweep(budget).await.map_err(|e| e.code().to_string())?;
                println!("{}", serde_json::to_string(&report).unwrap_or_default());
            }
            Command::Events {
                action: EventAction::Watch { count },
            } => {
                connectors_infra::watch::watch(&sdk, &settings, count).await?;
            }
            Command::Keys { action } => {
                let app = App::new(&sdk, settings, std::sync::Arc::new(shared::ports::SystemClock));
                match action {
                    KeyAction::Create {
                        entity,
                        scopes,
                        live,
                        expires_in_days,
                    } => {
                        let issued = shared::admin::create_key(
                            &app,
                            entity,
                            scopes.into_iter().collect(),
                            live,
                            expires_in_days,
                        )
                        .await
                        .map_err(|e| e.to_string())?;
                        let r = &issued.record;
                        let scopes: Vec<&str> = r.scopes.iter().map(|s| s.as_str()).collect();
                        println!(
                            "created {} key {} for entity {} with scopes {}{}",
                            if r.livemode { "live" } else { "test" },
                            r.key_id,
                            r.entity_id,
                            scopes.join(" "),
                            r.key_expires_at.map(|t| format!(", expires {t}")).unwrap_or_default()
                        );
                        println!("{}", issued.plaintext);
                    }
                    KeyAction::Revoke { key_id } => {
                        let id = KeyId::parse(&key_id).ok_or("not a key id (key_ followed by 12 letters or digits)")?;
                        if !shared::admin::revoke_key(&app, &id).await.map_err(|e| e.to_string())? {
                            return Err(format!("no key {id}"));
                        }
                        println!("revoked {id}");
                    }
                    KeyAction::List { entity } => {
                        for r in app.service.keys.list(entity).await.map_err(|e| e.to_string())? {
                            let scopes: Vec<&str> = r.scopes.iter().map(|s| s.as_str()).collect();
                            println!(
                                "{}\t{}\t{}\tcreated {}\texpires {}\trevoked {}",
                                r.key_id,
                                if r.livemode { "live" } else { "test" },
                                scopes.join(","),
                                r.created_at,
                                r.key_expires_at
                                    .map(|t| t.to_string())
                                    .unwrap_or_else(|| "never".into()),
                                r.revoked_at.map(|t| t.to_string()).unwrap_or_else(|| "no".into()),
                            );
                        }
                    }
                }
            }
        }
        Ok(())
    }
    .await;
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("connectors-admin: {message}");
            ExitCode::FAILURE
        }
    }
}
