//! Holds every response the integration suite sees to `openapi.yaml`: the status must be
//! documented for the operation, and the body must match its schema (JSON Schema 2020-12,
//! `$ref`s resolved against the whole document).

use std::collections::HashMap;
use std::sync::{Mutex, OnceLock};

use serde_json::{json, Value};
use shared::http::router::route;

fn document() -> &'static Value {
    static DOC: OnceLock<Value> = OnceLock::new();
    DOC.get_or_init(|| {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../openapi.yaml");
        let text = std::fs::read_to_string(path).expect("openapi.yaml at the repository root");
        serde_yaml_ng::from_str(&text).expect("openapi.yaml parses")
    })
}

/// Validators by schema pointer, compiled once.
fn validator(pointer: &str) -> &'static jsonschema::Validator {
    static CACHE: OnceLock<Mutex<HashMap<String, &'static jsonschema::Validator>>> = OnceLock::new();
    let mut cache = CACHE.get_or_init(Default::default).lock().unwrap();
    cache.entry(pointer.to_string()).or_insert_with(|| {
        let schema = json!({
            "$schema": "https://json-schema.org/draft/2020-12/schema",
            "components": document()["components"],
            "$ref": pointer,
        });
        Box::leak(Box::new(
            jsonschema::draft202012::new(&schema).expect("schema compiles"),
        ))
    })
}

/// The operation (by `operationId`) the dev router sends this request to.
fn operation(method: &str, path: &str) -> Option<&'static Value> {
    let op = route(method, path).ok()?.operation.operation_id();
    document()["paths"]
        .as_object()?
        .values()
        .flat_map(|item| item.as_object().into_iter().flatten())
        .find_map(|(_, operation)| (operation["operationId"] == op).then_some(operation))
}

/// Panics unless `body` (text) is what `openapi.yaml` documents for this answer.
pub fn check(method: &str, path_and_query: &str, status: u16, body: &str) {
    let path = path_and_query.split('?').next().unwrap_or("");
    let (schema_ref, where_) = match operation(method, path) {
        Some(op) => {
            let response = &op["responses"][status.to_string()];
            assert!(
                response.is_object(),
                "{status} is not documented for {} ({method} {path})",
                op["operationId"]
            );
            match response["content"]["application/json"]["schema"]["$ref"].as_str() {
                Some(r) => (r.to_string(), op["operationId"].to_string()),
                None => {
                    assert!(
                        body.is_empty(),
                        "{status} of {method} {path} documents no body, got {body}"
                    );
                    return;
                }
            }
        }
        // No route: the 404/405 envelope.
        None => (
            "#/components/schemas/Error".to_string(),
            format!("{method} {path} (no route)"),
        ),
    };
    let instance: Value = serde_json::from_str(body).unwrap_or_else(|_| panic!("{where_}: body is not JSON: {body}"));
    let errors: Vec<String> = validator(&schema_ref)
        .iter_errors(&instance)
        .map(|e| format!("{e} at {}", e.instance_path()))
        .collect();
    assert!(
        errors.is_empty(),
        "{where_} {status} breaks {schema_ref}: {errors:?}\nbody: {body}"
    );
}
