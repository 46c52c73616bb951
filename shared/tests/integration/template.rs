//! template.yaml held to the code: the table definition, the environment, the routes, the
//! sample events, and least-privilege IAM proven by recording what each function's code
//! really calls on the emulator.

use crate::support;

use std::collections::{BTreeMap, BTreeSet};

use connectors_infra::api_gateway::ApiEvent;
use serde_json::{json, Value};
use serde_yaml_ng::Value as Yaml;
use shared::aws::table::TABLE;
use shared::config::ENV_VARS;
use shared::http::router::{route, Operation, ROUTES};
use shared::http::UNROUTED_FUNCTION;
use support::Harness;

const ROOT: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/..");

fn template() -> Yaml {
    let text = std::fs::read_to_string(format!("{ROOT}/template.yaml")).unwrap();
    serde_yaml_ng::from_str(&text).expect("template.yaml parses")
}

fn resources(t: &Yaml) -> &serde_yaml_ng::Mapping {
    t["Resources"].as_mapping().unwrap()
}

/// `(binary name, function resource)` for every function.
fn functions(t: &Yaml) -> BTreeMap<String, &Yaml> {
    resources(t)
        .values()
        .filter(|r| r["Type"] == "AWS::Serverless::Function")
        .map(|r| {
            (
                r["Metadata"]["BuildProperties"]["Binary"].as_str().unwrap().to_string(),
                r,
            )
        })
        .collect()
}

fn strings(v: &Yaml) -> BTreeSet<String> {
    match v {
        Yaml::String(s) => [s.clone()].into(),
        Yaml::Sequence(items) => items.iter().filter_map(|i| i.as_str().map(String::from)).collect(),
        _ => BTreeSet::new(),
    }
}

/// A value as the template writes it: `!Ref LogLevel`, `!GetAtt EventBus.Arn`, `!Sub …`,
/// `!If [A, B, C]`, or the plain string.
fn written(v: &Yaml) -> String {
    match v {
        Yaml::Tagged(t) => format!("{} {}", t.tag, written(&t.value)),
        Yaml::String(s) => s.clone(),
        Yaml::Sequence(items) => format!("[{}]", items.iter().map(written).collect::<Vec<_>>().join(", ")),
        other => format!("{other:?}"),
    }
}

/// The statements of a function's own policies.
fn statements(function: &Yaml) -> Vec<Yaml> {
    function["Properties"]["Policies"]
        .as_sequence()
        .into_iter()
        .flatten()
        .flat_map(|p| p["Statement"].as_sequence().cloned().unwrap_or_default())
        .collect()
}

/// The IAM actions a function's own policies grant.
fn granted(function: &Yaml) -> BTreeSet<String> {
    statements(function)
        .iter()
        .flat_map(|s| strings(&s["Action"]))
        .collect()
}

/// Whether a function may delete secrets without a recovery window: a `DeleteSecret`
/// grant that does not carry the condition excluding it.
fn may_force_delete(function: &Yaml) -> bool {
    statements(function)
        .iter()
        .any(|s| strings(&s["Action"]).contains("secretsmanager:DeleteSecret") && s["Condition"].is_null())
}

/// The functions that serve writes (`Idempotency-Key` requests), by binary name.
fn write_functions() -> BTreeSet<String> {
    ROUTES
        .iter()
        .filter(|(_, _, op)| op.is_write())
        .map(|(_, _, op)| op.function_name().to_string())
        .collect()
}

/// The fingerprint key's secret (write functions only), the plain key (local runs only:
/// never in the template) and the KMS key of the connectors' secrets (credentials only).
const FINGERPRINT_KEY_SECRET: &str = "IDEMPOTENCY_FINGERPRINT_KEY_SECRET";
const PLAIN_FINGERPRINT_KEY: &str = "IDEMPOTENCY_FINGERPRINT_KEY";
const SECRETS_KMS_KEY_ID: &str = "SECRETS_KMS_KEY_ID";

#[test]
fn the_table_matches_the_one_definition() {
    let t = template();
    let table = resources(&t)
        .values()
        .find(|r| r["Type"] == "AWS::DynamoDB::Table")
        .expect("a table");
    let p = &table["Properties"];
    let key = |schema: &Yaml, kind: &str| {
        schema
            .as_sequence()
            .unwrap()
            .iter()
            .find(|k| k["KeyType"] == kind)
            .unwrap()["AttributeName"]
            .as_str()
            .unwrap()
            .to_string()
    };
    assert_eq!(key(&p["KeySchema"], "HASH"), TABLE.partition_key);
    assert_eq!(key(&p["KeySchema"], "RANGE"), TABLE.sort_key);
    assert_eq!(p["BillingMode"], "PAY_PER_REQUEST");
    assert_eq!(p["TimeToLiveSpecification"]["AttributeName"], TABLE.ttl_attribute);
    assert_eq!(p["TimeToLiveSpecification"]["Enabled"], true);
    assert_eq!(
        p["PointInTimeRecoverySpecification"]["PointInTimeRecoveryEnabled"],
        true
    );
    let indexes = p["GlobalSecondaryIndexes"].as_sequence().unwrap();
    assert_eq!(indexes.len(), TABLE.indexes.len());
    for (yaml, code) in indexes.iter().zip(TABLE.indexes) {
        assert_eq!(yaml["IndexName"], code.name);
        assert_eq!(key(&yaml["KeySchema"], "HASH"), code.partition_key);
        assert_eq!(key(&yaml["KeySchema"], "RANGE"), code.sort_key);
        assert_eq!(yaml["Projection"]["ProjectionType"], "ALL");
    }
    let defined: BTreeSet<String> = p["AttributeDefinitions"]
        .as_sequence()
        .unwrap()
        .iter()
        .map(|a| a["AttributeName"].as_str().unwrap().to_string())
        .collect();
    let mut needed: BTreeSet<String> = [TABLE.partition_key, TABLE.sort_key].map(String::from).into();
    for i in TABLE.indexes {
        needed.insert(i.partition_key.into());
        needed.insert(i.sort_key.into());
    }
    assert_eq!(defined, needed);
}

#[test]
fn every_function_gets_every_setting_the_code_reads() {
    let t = template();
    let global: BTreeSet<String> = t["Globals"]["Function"]["Environment"]["Variables"]
        .as_mapping()
        .unwrap()
        .keys()
        .map(|k| k.as_str().unwrap().to_string())
        .collect();
    let env_json: Value = serde_json::from_str(&std::fs::read_to_string(format!("{ROOT}/env.json")).unwrap()).unwrap();
    for (name, default) in ENV_VARS {
        match (name, default) {
            // Lambda sets the region itself; the endpoint exists only for local runs.
            ("AWS_REGION", _) => {}
            // Only the write functions get it (see the test of the fingerprint key); under
            // sam local, the secret `connectors-admin bootstrap` makes.
            (FINGERPRINT_KEY_SECRET, _) => {
                assert!(env_json["Parameters"][name].is_string(), "{name} in env.json");
            }
            // Local runs only: a plain key in a function's environment is what this replaced.
            (PLAIN_FINGERPRINT_KEY, _) => {
                let text = std::fs::read_to_string(format!("{ROOT}/template.yaml")).unwrap();
                assert!(!text.contains(&format!("{name}:")), "{name} is not in the template");
                assert!(env_json["Parameters"][name].is_null(), "{name} is not in env.json");
            }
            // The credentials function only (see the test of the KMS key); empty under sam
            // local, which cannot resolve the key's `!GetAtt`.
            (SECRETS_KMS_KEY_ID, _) => {
                assert_eq!(env_json["Parameters"][name], "", "{name} in env.json");
            }
            ("AWS_ENDPOINT_URL", _) => {
                // Set only when a local run gives the emulator's URL; absent in AWS.
                let value = &t["Globals"]["Function"]["Environment"]["Variables"][name];
                assert_eq!(
                    written(value),
                    "!If [HasLocalEndpoint, !Ref LocalEndpointUrl, !Ref AWS::NoValue]"
                );
                assert_eq!(t["Parameters"]["LocalEndpointUrl"]["Default"], "");
                assert_eq!(
                    written(&t["Conditions"]["HasLocalEndpoint"]),
                    "!Not [!Equals [!Ref LocalEndpointUrl, ]]"
                );
                assert!(
                    env_json["Parameters"][name].is_string(),
                    "env.json points sam local at the emulator"
                );
            }
            _ => {
                assert!(global.contains(name), "{name} set for every function");
                assert!(env_json["Parameters"][name].is_string(), "{name} in env.json");
            }
        }
    }
    assert!(global.contains("RUST_LOG"));
    for (binary, f) in functions(&t) {
        let own: BTreeSet<String> = f["Properties"]["Environment"]["Variables"]
            .as_mapping()
            .into_iter()
            .flatten()
            .map(|(k, _)| k.as_str().unwrap().to_string())
            .collect();
        let mut allowed = BTreeSet::new();
        if write_functions().contains(&binary) {
            allowed.insert(FINGERPRINT_KEY_SECRET.to_string());
        }
        if binary == "credentials" {
            allowed.insert(SECRETS_KMS_KEY_ID.to_string());
        }
        assert!(
            own.is_subset(&allowed),
            "{binary} relies on the global environment but for {allowed:?}: {own:?}"
        );
        assert_eq!(f["Metadata"]["BuildMethod"], "rust-cargolambda");
    }
    assert_eq!(t["Globals"]["Function"]["Runtime"], "provided.al2023");
    // arm64 unless a local run asks for the machine's own architecture.
    assert_eq!(
        written(&t["Globals"]["Function"]["Architectures"][0]),
        "!Ref Architecture"
    );
    assert_eq!(t["Parameters"]["Architecture"]["Default"], "arm64");
    assert_eq!(t["Globals"]["Function"]["Tracing"], "Active");
}

/// RUST_LOG comes from a parameter that cannot say `trace` (nor anything but a level);
/// `shared::telemetry` caps the crates that log payloads whatever it says (its tests).
#[test]
fn the_log_level_is_one_of_four_levels() {
    let t = template();
    let log_level = &t["Parameters"]["LogLevel"];
    assert_eq!(
        strings(&log_level["AllowedValues"]),
        ["error", "warn", "info", "debug"].map(String::from).into()
    );
    assert_eq!(log_level["Default"], "info");
    let rust_log = &t["Globals"]["Function"]["Environment"]["Variables"]["RUST_LOG"];
    assert_eq!(written(rust_log), "!Ref LogLevel");
}

#[test]
fn routes_in_the_template_are_exactly_the_router_s() {
    let t = template();
    // Path parameter names differ (API Gateway wants one name per level); compare shapes.
    let shape = |p: &str| {
        p.split('/')
            .map(|s| if s.starts_with('{') { "{}" } else { s })
            .collect::<Vec<_>>()
            .join("/")
    };
    let mut in_template = BTreeSet::new();
    let mut routed_paths = BTreeSet::new();
    let mut unrouted_paths = BTreeSet::new();
    for (binary, f) in functions(&t) {
        for event in f["Properties"]["Events"].as_mapping().unwrap().values() {
            // The sweeper's schedule and the sync function's bus rule are not routes.
            if event["Type"] == "Schedule" || event["Type"] == "EventBridgeRule" {
                continue;
            }
            assert_eq!(event["Type"], "Api", "{binary}: every route is on the REST API");
            assert_eq!(written(&event["Properties"]["RestApiId"]), "!Ref Api");
            let method = event["Properties"]["Method"].as_str().unwrap().to_string();
            let path = event["Properties"]["Path"].as_str().unwrap().to_string();
            if binary == UNROUTED_FUNCTION {
                // What matches no route: the function that answers with the envelope.
                unrouted_paths.insert((method, path));
                continue;
            }
            let concrete = path.replace("{connector}", "stripe");
            let served = route(&method, &concrete).unwrap().operation.function_name();
            assert_eq!(
                served, binary,
                "{method} {path} is wired to the function that serves it"
            );
            in_template.insert((method, shape(&path)));
            routed_paths.insert(path);
        }
    }
    let in_router: BTreeSet<(String, String)> = ROUTES.iter().map(|(m, p, _)| (m.to_string(), shape(p))).collect();
    assert_eq!(in_template, in_router);
    // A REST API answers a method its resource lacks with its own 403: every other method
    // of a routed path goes to the fallback by name (405 with Allow; never ANY beside a
    // real method, which SAM local resolves at random), and ANY on /, /v1 and /{proxy+}
    // takes what no resource matches (404).
    const METHODS: [&str; 7] = ["GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS"];
    let mut wanted: BTreeSet<(String, String)> = ["/", "/v1", "/{proxy+}"]
        .map(|p| ("ANY".to_string(), p.to_string()))
        .into();
    for path in &routed_paths {
        for method in METHODS {
            let concrete = path.replace("{connector}", "stripe");
            if route(method, &concrete).is_err() {
                wanted.insert((method.to_string(), path.clone()));
            }
        }
    }
    assert_eq!(unrouted_paths, wanted, "the fallback's routes");
    let sweeper = &functions(&t)["sweeper"];
    assert_eq!(sweeper["Properties"]["Events"]["Sweep"]["Type"], "Schedule");
    assert_eq!(
        sweeper["Properties"]["EventInvokeConfig"]["DestinationConfig"]["OnFailure"]["Type"],
        "SQS"
    );
    let binaries: BTreeSet<String> = functions(&t).into_keys().collect();
    let members: BTreeSet<String> = std::fs::read_dir(format!("{ROOT}/functions"))
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    assert_eq!(binaries, members, "one function per binary in functions/");
}

/// Drives every code path of every function (success, re-connect, expiry, purge,
/// idempotency, errors) and compares the AWS actions recorded with those granted.
#[test]
fn each_function_is_granted_exactly_the_actions_its_code_performs() {
    // Every path of every function driven from one future: in a debug build its polls
    // can outgrow a test thread's 2 MiB stack, so it gets a thread of its own.
    std::thread::Builder::new()
        .stack_size(64 << 20)
        .spawn(|| {
            tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap()
                .block_on(drive_every_path_and_compare_grants())
        })
        .unwrap()
        .join()
        .unwrap();
}

/// Moves the secret's `AWSCURRENT` off the version `connector_type`'s row records (to
/// another of its versions), as a rollback overtaken by a disconnect leaves it: whatever
/// makes the row active next must move it back (`UpdateSecretVersionStage`).
async fn misalign(h: &Harness, entity: shared::domain::ids::EntityId, connector_type: &str) {
    let name = h.secret_name(entity, connector_type).await;
    let described = h.secrets.describe_secret().secret_id(&name).send().await.unwrap();
    let versions = described.version_ids_to_stages().unwrap();
    let current = versions
        .iter()
        .find(|(_, stages)| stages.iter().any(|s| s == "AWSCURRENT"))
        .map(|(id, _)| id.clone())
        .unwrap();
    let other = versions
        .keys()
        .find(|id| **id != current)
        .expect("two versions")
        .clone();
    h.secrets
        .update_secret_version_stage()
        .secret_id(&name)
        .version_stage("AWSCURRENT")
        .move_to_version_id(other)
        .remove_from_version_id(current)
        .send()
        .await
        .unwrap();
}

async fn drive_every_path_and_compare_grants() {
    let h = Harness::new().await;
    let (entity, key) = h.tenant(false).await;
    let stripe_creds = json!({"credentials": {"secret_key": "sk"}});
    let put_stripe_creds = || h.as_key(&key).put_credentials("stripe", stripe_creds.clone());
    // Each write function's first `Idempotency-Key` request in a container of its own, as
    // deployed: it reads the fingerprint key from its secret.
    let with_secret = h.settings_with_fingerprint_secret().await;
    let containers: BTreeMap<&str, shared::App> = [
        "get",
        "connect",
        "credentials",
        "update",
        "disconnect",
        "restore",
        "report",
    ]
    .into_iter()
    .map(|f| (f, h.container(with_secret.clone())))
    .collect();

    h.as_key(&key).list("").await;
    assert_eq!(
        h.as_key(&key)
            .via(&containers["connect"])
            .idempotency_key("c1")
            .post("stripe", None)
            .await
            .status,
        201
    );
    assert_eq!(
        h.as_key(&key).idempotency_key("c2").post("stripe", None).await.status,
        409
    ); // releases its key
    assert_eq!(
        h.as_key(&key)
            .via(&containers["credentials"])
            .idempotency_key("p1")
            .put_credentials("stripe", stripe_creds.clone())
            .await
            .status,
        200
    );
    assert_eq!(put_stripe_creds().await.status, 200);
    let id = h.as_key(&key).get("stripe").await.body["data"]["id"]
        .as_str()
        .unwrap()
        .to_string();
    h.as_key(&key).get(&id).await;
    // A container of its own: its first request looks its key up.
    assert_eq!(h.as_key(&key).via(&containers["get"]).get("stripe").await.status, 200);
    assert_eq!(
        h.as_key(&key)
            .via(&containers["update"])
            .idempotency_key("u1")
            .patch("stripe", json!({"display_name": "S"}))
            .await
            .status,
        200
    );
    assert_eq!(
        h.as_key(&key).patch("stripe", json!({"is_active": false})).await.status,
        200
    );
    misalign(&h, entity, "stripe").await;
    assert_eq!(
        h.as_key(&key).patch("stripe", json!({"is_active": true})).await.status,
        200
    );
    assert_eq!(
        h.as_key(&key)
            .via(&containers["disconnect"])
            .idempotency_key("d1")
            .delete("stripe")
            .await
            .status,
        200
    );
    misalign(&h, entity, "stripe").await;
    assert_eq!(
        h.as_key(&key)
            .via(&containers["restore"])
            .idempotency_key("r1")
            .restore("stripe")
            .await
            .status,
        200
    );
    // Sync reports: over HTTP (by type and by id, a health change announced) and from the
    // bus (applied, dropped).
    assert_eq!(
        h.as_key(&key)
            .via(&containers["report"])
            .idempotency_key("s1")
            .sync_report("stripe", json!({"outcome": "failed", "error": {"code": "auth_failed"}}))
            .await
            .status,
        200
    );
    assert_eq!(
        h.as_key(&key)
            .sync_report(&id, json!({"outcome": "succeeded"}))
            .await
            .status,
        200
    );
    let bus_report = |outcome: &str| {
        json!({"id": uuid::Uuid::new_v4().to_string(), "detail-type": "sync.reported", "source": "erp.sync-workers",
               "detail": {"entity_id": entity.to_string(), "connector_id": id, "outcome": outcome,
                          "error": if outcome == "failed" { json!({"code": "other"}) } else { Value::Null }}})
    };
    let mut applied = bus_report("failed");
    applied["detail"].as_object_mut().unwrap().retain(|_, v| !v.is_null());
    assert_eq!(
        h.sync_event(&applied).await.unwrap(),
        shared::sync_events::Handled::Applied
    );
    assert_eq!(h.as_key(&key).delete(&id).await.status, 200);
    misalign(&h, entity, "stripe").await;
    let mut inactive = bus_report("succeeded");
    inactive["detail"].as_object_mut().unwrap().retain(|_, v| !v.is_null());
    assert_eq!(
        h.sync_event(&inactive).await.unwrap(),
        shared::sync_events::Handled::DroppedInactive
    );
    assert_eq!(
        h.as_key(&key).post("stripe", None).await.status,
        200,
        "re-connect restores the secret"
    );
    h.as_key(&key).delete("stripe").await;
    assert_eq!(put_stripe_creds().await.status, 200);
    assert_eq!(h.as_key(&key).purge("stripe").await.status, 204);
    // Expiry, through connect and through the sweeper.
    for t in ["ups", "fedex"] {
        let body = json!({"credentials": {"client_id": "c", "client_secret": "s"}});
        h.as_key(&key).post(t, None).await;
        h.as_key(&key).put_credentials(t, body).await;
        h.as_key(&key).delete(t).await;
    }
    h.clock.advance_seconds(8 * 86_400);
    assert_eq!(h.as_key(&key).post("ups", None).await.status, 201);
    let report = h.sweep().await;
    assert_eq!(report.expired, 1);

    // Failure paths: a write that restored the secret and then could not commit puts the
    // secret back in line with the (still disconnected) row — a `DeleteSecret` that the
    // happy path of these functions never makes, but their grants must allow.
    let proxy = support::faults::FaultProxy::start(&support::emulator_endpoint()).await;
    let faulty = shared::App::from_clients(
        support::clients(&h.sdk, Some(&proxy.url), Some(&h.actions)),
        h.settings.clone(),
        h.clock.clone(),
    );
    let shopify = json!({"credentials": {"access_token": "shpat_1"}});
    assert_eq!(h.as_key(&key).post("shopify", None).await.status, 201);
    assert_eq!(
        h.as_key(&key).put_credentials("shopify", shopify.clone()).await.status,
        200
    );
    assert_eq!(h.as_key(&key).delete("shopify").await.status, 200);
    for (method, path, body) in [
        ("POST", "/v1/integrations/shopify", None),
        ("POST", "/v1/integrations/shopify/restore", None),
        ("PATCH", "/v1/integrations/shopify", Some(json!({"is_active": true}))),
        ("PUT", "/v1/integrations/shopify/credentials", Some(shopify.clone())),
    ] {
        // A connect tries the create first (refused: the row is there); its second
        // transaction is the re-connect's commit.
        let commit = usize::from(path == "/v1/integrations/shopify" && method == "POST");
        proxy.arm_call("TransactWriteItems", commit, support::faults::Fault::Throttle);
        let reply = h.as_key(&key).via(&faulty).send(method, path, body).await;
        assert_eq!(reply.status, 429, "{method} {path}: the commit was throttled");
        let (calls, _) = proxy.calls();
        let failed_at = calls.iter().position(|c| c.ends_with(".TransactWriteItems")).unwrap();
        assert!(
            calls[failed_at..].iter().any(|c| c.ends_with(".DeleteSecret")),
            "{method} {path}: the secret was put back in line after the failed commit: {calls:?}"
        );
        let row = h.as_key(&key).get("shopify").await;
        assert_eq!(row.body["data"]["is_active"], false, "{method} {path}");
    }

    // A disconnect overtaken by a restore puts the secret back itself (RestoreSecret from
    // disconnect); one that cannot finish leaves that to the sweeper (RestoreSecret from
    // the sweeper, delivering the disconnect's outbox record against the active row).
    let openai = json!({"credentials": {"api_key": "sk-1"}});
    assert_eq!(h.as_key(&key).post("openai", None).await.status, 201);
    assert_eq!(
        h.as_key(&key).put_credentials("openai", openai.clone()).await.status,
        200
    );
    assert_eq!(h.as_key(&key).put_credentials("openai", openai).await.status, 200);
    for publish_fails in [false, true] {
        let (disconnect, restore) =
            support::interleavings::disconnect_overtaken_by_restore(&h, &faulty, &proxy, &key, "openai", publish_fails)
                .await;
        assert_eq!((disconnect.status, restore.status), (200, 200), "{}", disconnect.raw);
    }
    // The same, with the secret's current version left behind after the restore: the
    // disconnect puts the secret back and moves its current version too.
    let mut hold = proxy.hold("DeleteSecret");
    let disconnect = h.as_key(&key).via(&faulty).delete("openai");
    let restore = async {
        hold.reached().await;
        let restored = h.as_key(&key).restore("openai").await;
        misalign(&h, entity, "openai").await;
        hold.release();
        restored
    };
    let (disconnected, restored) = tokio::join!(disconnect, restore);
    assert_eq!(
        (disconnected.status, restored.status),
        (200, 200),
        "{}",
        disconnected.raw
    );
    // And the sweeper, finishing the record the failed publish left, moves it as well.
    misalign(&h, entity, "openai").await;
    h.clock.advance_seconds(shared::ports::OUTBOX_GRACE_SECONDS + 1);
    let report = h.sweep().await;
    assert_eq!((report.republished, report.failed), (1, 0), "{report:?}");

    let recorded = h.actions.lock().unwrap().clone();
    let t = template();
    let functions = functions(&t);
    for (binary, f) in &functions {
        if binary == UNROUTED_FUNCTION {
            // It answers before any AWS call and is granted nothing.
            assert!(granted(f).is_empty() && !recorded.contains_key(binary));
            continue;
        }
        // Actions, and the facts of calls that conditions test (`key=value`).
        let (facts, used): (BTreeSet<String>, BTreeSet<String>) = recorded
            .get(binary)
            .cloned()
            .unwrap_or_default()
            .into_iter()
            .partition(|a| a.contains('='));
        assert!(!used.is_empty(), "{binary} was exercised");
        assert_eq!(&granted(f), &used, "{binary}: granted (left) vs performed (right)");
        // DeleteSecret without a recovery window: granted exactly where it happens.
        assert_eq!(
            may_force_delete(f),
            facts.contains("secretsmanager:ForceDeleteWithoutRecovery=true"),
            "{binary}: may force-delete secrets (left) vs does (right)"
        );
        // Events only of the source its grant's condition allows (the service's own).
        let sources: BTreeSet<&str> = facts.iter().filter_map(|f| f.strip_prefix("events:source=")).collect();
        if used.contains("events:PutEvents") {
            assert_eq!(
                sources,
                [support::SOURCE].into(),
                "{binary}: sources of the events it puts"
            );
        }
    }
    assert_eq!(
        recorded.keys().cloned().collect::<BTreeSet<_>>(),
        functions.keys().filter(|b| *b != UNROUTED_FUNCTION).cloned().collect()
    );
    // Resources: the table for all; the sweep index only where Query on it happens.
    let sweeper_resources = format!("{:?}", functions["sweeper"]["Properties"]["Policies"]);
    assert!(sweeper_resources.contains("/index/due"));
    assert!(!format!("{:?}", functions["get"]["Properties"]["Policies"]).contains("index"));
}

/// `DeleteSecret` with `ForceDeleteWithoutRecovery` (no recovery window) only where a
/// function must force-delete: disconnect (`?permanent=true`), the sweeper (expiry) and
/// connect (finishes an expired row's expiry before connecting anew). The others may only
/// schedule a deletion: their grant holds the condition (`…IfExists`: a call that leaves
/// the parameter out schedules, with a window). The least-privilege test checks the
/// same sets against the calls the code makes; the emulator cannot (moto ignores `Bool`
/// conditions).
#[test]
fn only_the_functions_that_must_force_delete_secrets_may() {
    let t = template();
    let mut force = BTreeSet::new();
    for (binary, f) in functions(&t) {
        for statement in statements(f) {
            if !strings(&statement["Action"]).contains("secretsmanager:DeleteSecret") {
                continue;
            }
            if statement["Condition"].is_null() {
                force.insert(binary.clone());
            } else {
                assert_eq!(
                    statement["Condition"]["BoolIfExists"]["secretsmanager:ForceDeleteWithoutRecovery"], "false",
                    "{binary}"
                );
                assert_eq!(
                    strings(&statement["Action"]),
                    ["secretsmanager:DeleteSecret".to_string()].into(),
                    "{binary}: the condition applies to DeleteSecret alone"
                );
            }
        }
    }
    assert_eq!(force, ["connect", "disconnect", "sweeper"].map(String::from).into());
}

/// Every grant of `events:PutEvents` holds only for the service's own source: its
/// condition names the `EventSource` parameter, the value `EVENT_SOURCE` gives the code
/// (the least-privilege test checks that every event the code puts has that source). The
/// sync rule takes reports from any source but that one, so no function can send one.
#[test]
fn every_grant_to_put_events_holds_the_service_s_own_source() {
    let t = template();
    let configured = &t["Globals"]["Function"]["Environment"]["Variables"]["EVENT_SOURCE"];
    assert_eq!(written(configured), "!Ref EventSource");
    let mut grants = BTreeSet::new();
    for (binary, f) in functions(&t) {
        for statement in statements(f) {
            if !strings(&statement["Action"]).contains("events:PutEvents") {
                continue;
            }
            assert_eq!(
                strings(&statement["Action"]),
                ["events:PutEvents".to_string()].into(),
                "{binary}: the condition applies to PutEvents alone"
            );
            assert_eq!(
                written(&statement["Condition"]["StringEquals"]["events:source"]),
                "!Ref EventSource",
                "{binary}: PutEvents without the source condition"
            );
            grants.insert(binary.clone());
        }
    }
    assert!(grants.contains("connect") && grants.contains("sweeper"), "{grants:?}");
}

/// The resources of every grant: the table (the sweeper also its `due` index), this
/// stage's secrets (`{SecretPrefix}{Stage}/`, the prefix the code is given), the
/// fingerprint key's secret (read only), the bus.
/// Nothing is granted on `*`, and no secret outside the stage's prefix.
#[test]
fn each_function_s_grants_are_scoped_to_its_resources() {
    let t = template();
    let table = "!GetAtt ConnectorsTable.Arn";
    let index = "!Sub ${ConnectorsTable.Arn}/index/due";
    let secrets =
        "!Sub arn:${AWS::Partition}:secretsmanager:${AWS::Region}:${AWS::AccountId}:secret:${SecretPrefix}${Stage}/*";
    let bus = "!GetAtt EventBus.Arn";
    let fingerprint_key = FINGERPRINT_KEY_GRANT;
    let prefix = written(&t["Globals"]["Function"]["Environment"]["Variables"]["SECRET_PREFIX"]);
    assert_eq!(prefix, "!Sub ${SecretPrefix}${Stage}/", "each stage its own prefix");
    assert!(
        secrets.ends_with(&format!("{}*", prefix.trim_start_matches("!Sub "))),
        "the grants cover the prefix the code is given, and only that"
    );
    for (binary, f) in functions(&t) {
        for statement in statements(f) {
            assert_eq!(statement["Effect"], "Allow");
            let actions = strings(&statement["Action"]);
            let services: BTreeSet<&str> = actions.iter().map(|a| a.split(':').next().unwrap()).collect();
            assert_eq!(services.len(), 1, "{binary}: one service per statement: {actions:?}");
            let resources: BTreeSet<String> = match &statement["Resource"] {
                Yaml::Sequence(items) => items.iter().map(written).collect(),
                one => [written(one)].into(),
            };
            let allowed: BTreeSet<String> = match *services.first().unwrap() {
                "dynamodb" if binary == "sweeper" => [table, index].map(String::from).into(),
                "dynamodb" => [table.to_string()].into(),
                // Reading a secret's value: the fingerprint key's secret alone, and nothing
                // else on it.
                "secretsmanager" if actions.contains("secretsmanager:GetSecretValue") => {
                    assert_eq!(actions.len(), 1, "{binary}: {actions:?}");
                    [fingerprint_key.to_string()].into()
                }
                "secretsmanager" => [secrets.to_string()].into(),
                "events" => [bus.to_string()].into(),
                other => panic!("{binary}: unexpected service {other}"),
            };
            assert!(
                !resources.is_empty() && resources.is_subset(&allowed),
                "{binary}: {actions:?} on {resources:?}"
            );
        }
    }
}

/// API Gateway throttles the whole stage before a function runs (each request costs at
/// least a strongly consistent read of its key, even an unknown one), and every route
/// that may write to Secrets Manager lower still.
#[test]
fn the_api_is_throttled() {
    let t = template();
    let settings = resources(&t)["Api"]["Properties"]["MethodSettings"]
        .as_sequence()
        .unwrap();
    let limits = |path: &str, method: &str| {
        let s = settings
            .iter()
            .find(|s| s["ResourcePath"] == path && s["HttpMethod"] == method)
            .unwrap_or_else(|| panic!("method settings for {method} {path}"));
        (written(&s["ThrottlingRateLimit"]), written(&s["ThrottlingBurstLimit"]))
    };
    let pair = |rate: &str, burst: &str| (format!("!Ref {rate}"), format!("!Ref {burst}"));
    assert_eq!(limits("/*", "*"), pair("ApiRateLimit", "ApiBurstLimit"));
    for (path, method) in [
        ("/~1v1~1integrations~1{connector}~1credentials", "PUT"),
        ("/~1v1~1integrations~1{connector}~1restore", "POST"),
        ("/~1v1~1integrations~1{connector}~1credentials~1rollback", "POST"),
        ("/~1v1~1integrations~1{connector}", "DELETE"),
        ("/~1v1~1integrations~1{connector}", "PATCH"),
        ("/~1v1~1integrations~1{connector}", "POST"),
    ] {
        assert_eq!(
            limits(path, method),
            pair("SecretWriteRateLimit", "SecretWriteBurstLimit")
        );
    }
    assert_eq!(settings.len(), 7, "no other method overrides the stage's limits");
    for parameter in [
        "ApiRateLimit",
        "ApiBurstLimit",
        "SecretWriteRateLimit",
        "SecretWriteBurstLimit",
    ] {
        let p = &t["Parameters"][parameter];
        assert_eq!(p["Type"], "Number");
        assert!(p["Default"].as_u64().is_some_and(|d| d >= 1), "{parameter}");
        assert_eq!(p["MinValue"], 1, "{parameter}: never 0 (that stops all traffic)");
    }
}

/// The one secret whose value functions may read: the fingerprint key, by name.
const FINGERPRINT_KEY_GRANT: &str = "!Sub arn:${AWS::Partition}:secretsmanager:${AWS::Region}:${AWS::AccountId}:secret:connectors-${Stage}-idempotency-fingerprint-key-??????";

/// The write functions (and only they) get the name of the idempotency fingerprint key's
/// secret, generated per deployment, and may read that one secret (`GetSecretValue`,
/// right after their table grant); the key itself is in no function's environment. The
/// secret sits outside the connectors' prefix (its name has no `/`), so no function's
/// other secret grants reach it.
#[test]
fn the_write_functions_get_a_generated_fingerprint_key() {
    let t = template();
    let key = &resources(&t)["IdempotencyFingerprintKey"];
    assert_eq!(key["Type"], "AWS::SecretsManager::Secret");
    assert!(key["Properties"]["GenerateSecretString"]["PasswordLength"]
        .as_u64()
        .is_some_and(|n| n >= 32));
    assert!(!written(&key["Properties"]["Name"]).contains('/'));
    // The grant names the secret by its name and the six characters Secrets Manager
    // appends to an ARN (a !Ref would close a cycle through the KMS key's policy).
    let name = written(&key["Properties"]["Name"]);
    assert!(
        FINGERPRINT_KEY_GRANT.ends_with(&format!(":secret:{}-??????", name.trim_start_matches("!Sub "))),
        "{name}"
    );
    let (mut with_key, mut may_read) = (BTreeSet::new(), BTreeSet::new());
    for (binary, f) in functions(&t) {
        let variables = &f["Properties"]["Environment"]["Variables"];
        assert!(variables[PLAIN_FINGERPRINT_KEY].is_null(), "{binary}: no plain key");
        let value = &variables[FINGERPRINT_KEY_SECRET];
        if !value.is_null() {
            assert_eq!(written(value), "!Ref IdempotencyFingerprintKey", "{binary}");
            with_key.insert(binary.clone());
        }
        let statements = statements(f);
        for (i, s) in statements.iter().enumerate() {
            if !strings(&s["Action"]).contains("secretsmanager:GetSecretValue") {
                continue;
            }
            assert_eq!(s["Sid"], "FingerprintKey", "{binary}");
            assert_eq!(
                strings(&s["Action"]),
                ["secretsmanager:GetSecretValue".to_string()].into(),
                "{binary}"
            );
            assert_eq!(written(&s["Resource"]), FINGERPRINT_KEY_GRANT, "{binary}");
            assert_eq!(statements[i - 1]["Sid"], "Table", "{binary}: right after the table's");
            may_read.insert(binary.clone());
        }
    }
    assert_eq!(with_key, write_functions());
    assert_eq!(may_read, write_functions());
    let global = &t["Globals"]["Function"]["Environment"]["Variables"];
    assert!(global[FINGERPRINT_KEY_SECRET].is_null(), "not for the read functions");
}

/// The credentials function (the only one that creates secrets) creates them with the
/// stack's KMS key, which rotates.
#[test]
fn the_connectors_secrets_are_created_with_the_stack_s_kms_key() {
    let t = template();
    let key = &resources(&t)["SecretsKey"];
    assert_eq!(key["Type"], "AWS::KMS::Key");
    assert_eq!(key["Properties"]["EnableKeyRotation"], true);
    for (binary, f) in functions(&t) {
        let value = &f["Properties"]["Environment"]["Variables"][SECRETS_KMS_KEY_ID];
        if binary == "credentials" {
            assert_eq!(written(value), "!GetAtt SecretsKey.Arn");
            assert!(granted(f).contains("secretsmanager:CreateSecret"));
        } else {
            assert!(value.is_null(), "{binary}");
            assert!(!granted(f).contains("secretsmanager:CreateSecret"), "{binary}");
        }
    }
}

/// The sweeper's outbox metrics (EMF, in the stage's namespace) have alarms:
/// any record undelivered for over an hour, any item it could not read.
#[test]
fn the_sweeper_s_outbox_metrics_raise_alarms() {
    let t = template();
    for metric in ["undelivered_records", "bad_items"] {
        let alarm = resources(&t)
            .values()
            .find(|r| r["Type"] == "AWS::CloudWatch::Alarm" && r["Properties"]["MetricName"] == metric)
            .unwrap_or_else(|| panic!("an alarm on {metric}"));
        let p = &alarm["Properties"];
        // The namespace every function writes its EMF lines in (METRIC_NAMESPACE).
        let namespace = &t["Globals"]["Function"]["Environment"]["Variables"]["METRIC_NAMESPACE"];
        assert_eq!(written(namespace), "!Sub Connectors/${Stage}");
        assert_eq!(written(&p["Namespace"]), written(namespace), "{metric}");
        assert_eq!(p["Dimensions"][0]["Name"], "function");
        assert_eq!(p["Dimensions"][0]["Value"], "sweeper");
        assert_eq!(p["Dimensions"].as_sequence().unwrap().len(), 1);
        assert_eq!(p["Threshold"], 1);
        assert_eq!(p["ComparisonOperator"], "GreaterThanOrEqualToThreshold");
        assert!(written(&p["AlarmActions"]).contains("AlarmTopicArn"));
    }
}

/// The key in the sample events, for a real test key to replace.
const SAMPLE_KEY: &str = "ark_test_ent_placeholder0_REPLACEWITHAREALTESTKEYFROMADMIN";

/// The entity and connector in events/sync-reported.json, for a real row's to replace.
const SAMPLE_ENTITY: &str = "00000000-0000-4000-8000-00000000e171";
const SAMPLE_CONNECTOR: &str = "00000000-0000-4000-8000-0000000c0c1d";

/// Every file in events/ but the sweeper's schedule and the bus's sync report: its name
/// and the event it holds.
fn sample_events() -> Vec<(String, Value)> {
    let stripe = "/v1/integrations/stripe";
    let connect = json!({"display_name": "Payments", "config": {"statement_descriptor": "ACME"}});
    let credentials = json!({
        "credentials": {"secret_key": "sk_test_example", "publishable_key": "pk_test_example"},
        "webhook_secret": "whsec_example"
    });
    let update = json!({"display_name": "Payments EU"});
    let report = json!({"outcome": "failed", "error": {"code": "rate_limited", "message": "429 from upstream"}});
    let samples = [
        ("connect", ApiEvent::new("POST", stripe).body(Some(&connect))),
        (
            "credentials",
            ApiEvent::new("PUT", "/v1/integrations/stripe/credentials").body(Some(&credentials)),
        ),
        ("get", ApiEvent::new("GET", stripe)),
        ("list", ApiEvent::new("GET", "/v1/integrations?limit=10&is_active=true")),
        ("update", ApiEvent::new("PATCH", stripe).body(Some(&update))),
        (
            "report",
            ApiEvent::new("POST", "/v1/integrations/stripe/sync-reports").body(Some(&report)),
        ),
        ("disconnect", ApiEvent::new("DELETE", stripe)),
        ("restore", ApiEvent::new("POST", "/v1/integrations/stripe/restore")),
        (
            "purge",
            ApiEvent::new("DELETE", "/v1/integrations/stripe?permanent=true"),
        ),
    ];
    let mut files = Vec::new();
    for (name, event) in samples {
        let event = event.key(SAMPLE_KEY);
        files.push((format!("{name}-http-api.json"), event.http_api()));
        files.push((format!("{name}-rest-api.json"), event.rest_api()));
    }
    // A GET of the PUT-only credentials path matches no route: the fallback's.
    let unrouted = ApiEvent::new("GET", "/v1/integrations/stripe/credentials").key(SAMPLE_KEY);
    files.push(("fallback-http-api.json".to_string(), unrouted.http_api()));
    files.push(("fallback-rest-api.json".to_string(), unrouted.rest_api()));
    files
}

/// The files in events/ are exactly what `connectors_infra::api_gateway` writes, so that they, the
/// tests and the bench cannot drift apart. `UPDATE_EVENTS=1` rewrites them.
#[test]
fn the_sample_events_are_what_the_builder_writes() {
    for (file, event) in sample_events() {
        let path = format!("{ROOT}/events/{file}");
        let written = serde_json::to_string_pretty(&event).unwrap() + "\n";
        if std::env::var("UPDATE_EVENTS").as_deref() == Ok("1") {
            std::fs::write(&path, &written).unwrap();
        }
        let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("events/{file}: {e}"));
        assert_eq!(
            text, written,
            "events/{file} is not what connectors_infra::api_gateway writes (UPDATE_EVENTS=1 rewrites it)"
        );
    }
}

/// Every file in events/ through the function it is for, in lifecycle order.
#[tokio::test]
async fn every_sample_event_gets_its_documented_answer() {
    let h = Harness::new().await;
    let expected: [(&str, Operation, u16); 9] = [
        ("connect", Operation::Connect, 201),
        ("credentials", Operation::Credentials, 200),
        ("get", Operation::Get, 200),
        ("list", Operation::List, 200),
        ("update", Operation::Update, 200),
        ("report", Operation::SyncReport, 200),
        ("disconnect", Operation::Disconnect, 200),
        ("restore", Operation::Restore, 200),
        ("purge", Operation::Disconnect, 204),
    ];
    let mut files: BTreeSet<String> = std::fs::read_dir(format!("{ROOT}/events"))
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    for flavour in ["http-api", "rest-api"] {
        let (_, key) = h.tenant(false).await;
        for (name, operation, status) in expected {
            let file = format!("{name}-{flavour}.json");
            assert!(files.remove(&file), "events/{file} exists");
            let text = std::fs::read_to_string(format!("{ROOT}/events/{file}")).unwrap();
            assert!(text.contains(SAMPLE_KEY), "{file} carries the placeholder key");
            let text = text.replace(SAMPLE_KEY, &key);
            let req = lambda_http::request::from_str(&text).unwrap_or_else(|e| panic!("{file}: {e}"));
            let reply = h.invoke(operation, req).await;
            assert_eq!(reply.status, status, "{file}: {}", reply.raw);
        }
    }
    // What matches no route (here a GET of the PUT-only credentials path): the fallback's
    // 405 with the envelope and `Allow`, and no AWS call (its user may make none), in both
    // payload versions.
    for flavour in ["http-api", "rest-api"] {
        let file = format!("fallback-{flavour}.json");
        assert!(files.remove(&file));
        let text = std::fs::read_to_string(format!("{ROOT}/events/{file}")).unwrap();
        let req = lambda_http::request::from_str(&text).unwrap();
        let response = support::as_function(UNROUTED_FUNCTION, shared::http::handle_unrouted(req))
            .await
            .unwrap();
        let reply = h.record("GET", "/v1/integrations/stripe/credentials", response);
        assert_eq!(
            (reply.status, reply.body["code"].as_str()),
            (405, Some("method_not_allowed")),
            "{file}: {}",
            reply.raw
        );
        assert!(reply.body["request_id"]
            .as_str()
            .is_some_and(|id| id.starts_with("req_")));
    }
    // The bus's sample: its placeholder entity and connector replaced by a real row's.
    assert!(files.remove("sync-reported.json"));
    let (entity, key) = h.tenant(true).await;
    let row = h.as_key(&key).post("shopify", None).await.body["data"].clone();
    let text = std::fs::read_to_string(format!("{ROOT}/events/sync-reported.json"))
        .unwrap()
        .replace(SAMPLE_ENTITY, &entity.to_string())
        .replace(SAMPLE_CONNECTOR, row["id"].as_str().unwrap());
    let event: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(event["detail-type"], shared::sync_events::DETAIL_TYPE);
    assert_eq!(
        h.sync_event(&event).await.unwrap(),
        shared::sync_events::Handled::Applied
    );
    assert_eq!(
        h.as_key(&key).get("shopify").await.body["data"]["health"],
        "auth_failed"
    );
    assert!(files.remove("sweeper-schedule.json"));
    let schedule: Value =
        serde_json::from_str(&std::fs::read_to_string(format!("{ROOT}/events/sweeper-schedule.json")).unwrap())
            .unwrap();
    assert_eq!(schedule["detail-type"], "Scheduled Event");
    let invocation = shared::sweeper::Invocation::default();
    let summary = support::as_function("sweeper", shared::sweeper::run(&h.app, invocation))
        .await
        .unwrap();
    assert!(summary.swept);
    assert_eq!(summary.report.failed, 0);
    assert!(files.is_empty(), "unexpected files in events/: {files:?}");
}

/// The emulator really enforces each function's grants: what a function is not granted is
/// refused (403) before it happens, what it is granted goes through, and a key the
/// emulator does not know is refused outright.
#[tokio::test]
async fn the_emulator_refuses_what_a_function_is_not_granted() {
    let h = Harness::new().await;
    let secrets = aws_sdk_secretsmanager::Client::new(&h.sdk);
    let name = format!("{}nobody/stripe", h.settings.secret_prefix);
    let delete = || {
        secrets
            .delete_secret()
            .secret_id(&name)
            .recovery_window_in_days(7)
            .send()
    };

    let refused = support::as_function("get", delete()).await.unwrap_err();
    assert_eq!(
        refused.raw_response().map(|r| r.status().as_u16()),
        Some(403),
        "get may not delete secrets: {refused:?}"
    );
    let allowed = support::as_function("disconnect", delete()).await.unwrap_err();
    assert!(
        allowed
            .as_service_error()
            .is_some_and(|e| e.is_resource_not_found_exception()),
        "disconnect may (and finds nothing to delete): {allowed:?}"
    );

    let dynamo = aws_sdk_dynamodb::Client::new(&h.sdk);
    let item = |pk: &str| {
        dynamo
            .put_item()
            .table_name(&h.settings.table)
            .item(
                TABLE.partition_key,
                aws_sdk_dynamodb::types::AttributeValue::S(pk.into()),
            )
            .item(
                TABLE.sort_key,
                aws_sdk_dynamodb::types::AttributeValue::S("probe".into()),
            )
            .send()
    };
    let refused = support::as_function("list", item("probe")).await.unwrap_err();
    assert_eq!(refused.raw_response().map(|r| r.status().as_u16()), Some(403));
    support::as_function("connect", item("probe"))
        .await
        .expect("connect may put items");

    let stranger = aws_sdk_dynamodb::Client::from_conf(
        aws_sdk_dynamodb::config::Builder::from(&h.admin_sdk)
            .credentials_provider(aws_sdk_dynamodb::config::Credentials::new(
                "AKIAUNKNOWNTESTKEY00",
                "not-a-key",
                None,
                None,
                "test",
            ))
            .build(),
    );
    let refused = stranger.list_tables().send().await.unwrap_err();
    assert_eq!(refused.raw_response().map(|r| r.status().as_u16()), Some(403));
}

/// Every alarm on the functions' own metrics (EMF, the stage's namespace) watches a
/// metric and a dimension set the code writes: a 5xx alarm on `requests` by `function`
/// and `status_class=5xx` for each HTTP function, the sweeper's on its run line.
#[test]
fn the_alarms_on_the_functions_metrics_watch_what_the_code_writes() {
    let t = template();
    let request = |function: &str| -> Value {
        serde_json::from_str(&shared::telemetry::metric_line(
            "Connectors/dev",
            function,
            503,
            1.0,
            false,
            "req_x",
            None,
            0,
        ))
        .unwrap()
    };
    let sweep: Value = serde_json::from_str(&shared::telemetry::sweep_metric_line(
        "Connectors/dev",
        &Default::default(),
        0,
    ))
    .unwrap();
    let mut watched = BTreeSet::new();
    for (id, alarm) in resources(&t) {
        let p = &alarm["Properties"];
        if alarm["Type"] != "AWS::CloudWatch::Alarm" || written(&p["Namespace"]) != "!Sub Connectors/${Stage}" {
            continue;
        }
        let dims: BTreeMap<String, String> = p["Dimensions"]
            .as_sequence()
            .unwrap()
            .iter()
            .map(|d| (d["Name"].as_str().unwrap().into(), d["Value"].as_str().unwrap().into()))
            .collect();
        let line = match dims["function"].as_str() {
            "sweeper" => sweep.clone(),
            // One line per event, counting its outcome under the outcome's name.
            "sync" => {
                let metric = p["MetricName"].as_str().unwrap();
                let outcomes = shared::sync_events::OUTCOMES;
                assert!(outcomes.contains(&metric), "{id:?}: {metric} is one of {outcomes:?}");
                serde_json::from_str(&shared::telemetry::sync_metric_line("Connectors/dev", metric, 0)).unwrap()
            }
            http => request(http),
        };
        let directive = &line["_aws"]["CloudWatchMetrics"][0];
        let metric = p["MetricName"].as_str().unwrap();
        assert!(
            directive["Metrics"]
                .as_array()
                .unwrap()
                .iter()
                .any(|m| m["Name"] == metric),
            "{id:?}: {metric} is written"
        );
        let names: BTreeSet<&str> = dims.keys().map(String::as_str).collect();
        assert!(
            directive["Dimensions"].as_array().unwrap().iter().any(|set| set
                .as_array()
                .unwrap()
                .iter()
                .map(|d| d.as_str().unwrap())
                .collect::<BTreeSet<_>>()
                == names),
            "{id:?}: the dimension set {names:?} is written"
        );
        for (name, value) in &dims {
            assert_eq!(line[name.as_str()], value.as_str(), "{id:?}: {name}");
        }
        watched.insert(dims["function"].clone());
    }
    let mut http: BTreeSet<String> = functions(&t).into_keys().collect();
    http.remove("sweeper");
    for binary in &http {
        assert!(watched.contains(binary), "a 5xx alarm for {binary}");
    }
    assert!(watched.contains("sweeper"));
}
