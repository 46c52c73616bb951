//! Parsing of the config-only bodies of `POST` (connect) and `PATCH` (edit).
//! Secrets never enter here: any secret-looking field, anywhere in the body, is a 422.

use std::str::FromStr;

use serde_json::{Map, Value};
use uuid::Uuid;

use super::catalog::ConnectorType;
use super::connector::Mode;
use super::secret_names;

/// Fields that carry secrets or tenancy and so may never appear in a config body.
pub const FORBIDDEN_FIELDS: [&str; 8] = [
    "credentials",
    "secret",
    "api_key",
    "access_token",
    "refresh_token",
    "webhook_secret",
    "credentials_secret_arn",
    "entity_id",
];

const MAX_TEXT_LEN: usize = 256;

/// Which body is being parsed: `is_active` is editable only by PATCH.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BodyKind {
    Connect,
    Patch,
}

/// A nullable optional text field: `None` = not sent, `Some(None)` = cleared.
pub type Nullable<T> = Option<Option<T>>;

/// The editable fields a body sent. Absent fields are left as they are.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Edits {
    pub display_name: Option<String>,
    pub mode: Option<Mode>,
    pub is_active: Option<bool>,
    pub config: Option<Map<String, Value>>,
    pub ship_from_name: Nullable<String>,
    pub ship_from_address1: Nullable<String>,
    pub ship_from_city: Nullable<String>,
    pub ship_from_state: Nullable<String>,
    pub ship_from_zip: Nullable<String>,
    pub seller_id: Nullable<String>,
    pub bank_account_id: Nullable<Uuid>,
}

/// A refused body. `forbidden` ones are 422 (a secret or `entity_id` where it may not be);
/// the rest are 400 (a bad or unknown parameter).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct EditError {
    pub param: String,
    pub message: String,
    pub forbidden: bool,
}

fn bad(param: &str, message: impl Into<String>) -> EditError {
    EditError {
        param: param.into(),
        message: message.into(),
        forbidden: false,
    }
}

fn text(param: &str, v: &Value) -> Result<String, EditError> {
    match v {
        Value::String(s)
            if !s.trim().is_empty() && s.chars().count() <= MAX_TEXT_LEN && !s.chars().any(char::is_control) =>
        {
            Ok(s.clone())
        }
        _ => Err(bad(
            param,
            format!(
                "`{param}` must be a non-empty string of at most {MAX_TEXT_LEN} characters without control characters"
            ),
        )),
    }
}

fn nullable_text(param: &str, v: &Value) -> Result<Option<String>, EditError> {
    if v.is_null() {
        Ok(None)
    } else {
        text(param, v).map(Some)
    }
}

/// Checks everything inside `config`: no secret-looking key or value (the global list, a
/// credential key name of this connector type — a `secret_key` in a Stripe config is a
/// secret in disguise — or the rule of [`secret_names`]: 422), keys that are non-empty
/// printable ASCII, and numbers DynamoDB can store (magnitude 1e-130 to 1e126; 400).
fn check_config(connector_type: ConnectorType, value: &Value, path: &str) -> Result<(), EditError> {
    let looks_like_a_credential = |param: String| {
        EditError {
        message: format!(
            "`{param}` looks like a credential: credentials go only to PUT /v1/integrations/{connector_type}/credentials"
        ),
        param,
        forbidden: true,
    }
    };
    match value {
        Value::Object(map) => map.iter().try_for_each(|(k, v)| {
            let here = format!("{path}.{}", printable(k));
            if !secret_names::is_plain_key(k) || k.trim().is_empty() || k.len() > MAX_TEXT_LEN {
                return Err(bad(
                    path,
                    format!("keys in `{path}` must be 1 to {MAX_TEXT_LEN} printable ASCII characters"),
                ));
            }
            let lower = k.to_ascii_lowercase();
            if FORBIDDEN_FIELDS.contains(&lower.as_str())
                || connector_type.entry().accepts(&lower)
                || secret_names::is_secret_name(k)
            {
                return Err(looks_like_a_credential(here));
            }
            check_config(connector_type, v, &here)
        }),
        Value::String(text) if secret_names::is_secret_value(text) => Err(looks_like_a_credential(path.to_string())),
        Value::Array(items) => items
            .iter()
            .enumerate()
            .try_for_each(|(i, v)| check_config(connector_type, v, &format!("{path}[{i}]"))),
        Value::Number(n) => {
            let magnitude = n.as_f64().map(f64::abs).unwrap_or(f64::INFINITY);
            if magnitude == 0.0 || (1e-130..1e126).contains(&magnitude) {
                Ok(())
            } else {
                Err(bad(
                    path,
                    format!("`{path}` must be 0 or have a magnitude between 1e-130 and 1e126"),
                ))
            }
        }
        _ => Ok(()),
    }
}

/// Parses a connect or patch body (already known to be JSON).
pub fn parse_edits(connector_type: ConnectorType, body: &Value, kind: BodyKind) -> Result<Edits, EditError> {
    let Value::Object(map) = body else {
        return Err(bad("body", "the request body must be a JSON object"));
    };
    if let Some(field) = map.keys().find(|k| FORBIDDEN_FIELDS.contains(&k.as_str())) {
        let message = if field == "entity_id" {
            "`entity_id` comes from the API key and may not be sent".to_string()
        } else {
            format!("`{field}` may not be sent here: credentials go only to PUT /v1/integrations/{connector_type}/credentials")
        };
        return Err(EditError {
            param: field.clone(),
            message,
            forbidden: true,
        });
    }
    let mut edits = Edits::default();
    for (key, value) in map {
        let k = key.as_str();
        match k {
            "display_name" => edits.display_name = Some(text(k, value)?),
            "mode" => {
                edits.mode = Some(
                    value
                        .as_str()
                        .and_then(Mode::parse)
                        .ok_or_else(|| bad(k, "`mode` must be \"sandbox\" or \"live\""))?,
                )
            }
            "is_active" if kind == BodyKind::Patch => {
                edits.is_active = Some(value.as_bool().ok_or_else(|| bad(k, "`is_active` must be a boolean"))?)
            }
            "config" => {
                let Value::Object(config) = value else {
                    return Err(bad(k, "`config` must be a JSON object"));
                };
                check_config(connector_type, value, "config")?;
                edits.config = Some(config.clone());
            }
            "ship_from_name" => edits.ship_from_name = Some(nullable_text(k, value)?),
            "ship_from_address1" => edits.ship_from_address1 = Some(nullable_text(k, value)?),
            "ship_from_city" => edits.ship_from_city = Some(nullable_text(k, value)?),
            "ship_from_state" => edits.ship_from_state = Some(nullable_text(k, value)?),
            "ship_from_zip" => edits.ship_from_zip = Some(nullable_text(k, value)?),
            "seller_id" => edits.seller_id = Some(nullable_text(k, value)?),
            "bank_account_id" => {
                edits.bank_account_id = Some(match value {
                    Value::Null => None,
                    Value::String(s) => Some(
                        uuid::fmt::Hyphenated::from_str(s)
                            .map(|h| h.into_uuid())
                            .map_err(|_| bad(k, "`bank_account_id` must be a UUID"))?,
                    ),
                    _ => return Err(bad(k, "`bank_account_id` must be a UUID")),
                })
            }
            _ => {
                let allowed = if kind == BodyKind::Patch {
                    "display_name, mode, is_active, config, ship_from_name, ship_from_address1, ship_from_city, ship_from_state, ship_from_zip, seller_id, bank_account_id"
                } else {
                    "display_name, mode, config, ship_from_name, ship_from_address1, ship_from_city, ship_from_state, ship_from_zip, seller_id, bank_account_id"
                };
                return Err(bad(
                    k,
                    format!("unknown parameter `{}`; accepted: {allowed}", printable(k)),
                ));
            }
        }
    }
    Ok(edits)
}

/// A caller's text (a field name, a parameter) echoed in a hint: no control characters,
/// cut short.
pub fn printable(text: &str) -> String {
    text.chars().filter(|c| !c.is_control()).take(64).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn stripe() -> ConnectorType {
        ConnectorType::parse("stripe").unwrap()
    }

    #[test]
    fn parses_every_editable_field() {
        let e = parse_edits(
            stripe(),
            &json!({
                "display_name": "Payments", "mode": "live", "config": {"statement_descriptor": "ACME"},
                "ship_from_name": "ACME", "ship_from_address1": "1 Main", "ship_from_city": "Springfield",
                "ship_from_state": "IL", "ship_from_zip": "62701", "seller_id": null,
                "bank_account_id": "3c90c3cc-0d44-4b50-8888-8dd25736052a"
            }),
            BodyKind::Connect,
        )
        .unwrap();
        assert_eq!(e.display_name.as_deref(), Some("Payments"));
        assert_eq!(e.mode, Some(Mode::Live));
        assert_eq!(e.seller_id, Some(None));
        assert_eq!(e.ship_from_zip, Some(Some("62701".into())));
        assert!(e.bank_account_id.unwrap().is_some());
        assert_eq!(e.is_active, None);
    }

    #[test]
    fn every_forbidden_field_is_a_422_naming_it() {
        for f in FORBIDDEN_FIELDS {
            let e = parse_edits(stripe(), &json!({ f: "x", "display_name": "ok" }), BodyKind::Connect).unwrap_err();
            assert!(e.forbidden, "{f}");
            assert_eq!(e.param, f);
            assert!(!e.message.contains("\"x\""));
        }
    }

    #[test]
    fn secrets_hidden_inside_config_are_forbidden() {
        for (config, param) in [
            (json!({"nested": {"api_key": "k"}}), "config.nested.api_key"),
            (json!({"secret_key": "sk"}), "config.secret_key"),
            (json!({"list": [{"Access_Token": "t"}]}), "config.list[0].Access_Token"),
            // Under other names and spellings (each was stored and echoed before).
            (json!({"apiKey": "k"}), "config.apiKey"),
            (json!({"db": {"password": "p"}}), "config.db.password"),
            (json!({"private_key": "k"}), "config.private_key"),
            (json!({"clientSecret": "s"}), "config.clientSecret"),
            (json!({"token": "t"}), "config.token"),
            // A value in a well-known secret format, whatever its key.
            (json!({"note": "sk_live_123"}), "config.note"),
        ] {
            let e = parse_edits(stripe(), &json!({ "config": config }), BodyKind::Patch).unwrap_err();
            assert!(e.forbidden);
            assert_eq!(e.param, param);
        }
    }

    #[test]
    fn config_keys_and_numbers_must_be_storable() {
        for (config, param) in [
            (json!({"": 1}), "config"),
            (json!({"a": {" ": 1}}), "config.a"),
            (json!({"a\u{0}b": 1}), "config"),
            (json!({"api\u{200b}key": 1}), "config"),
            (json!({"p\u{0430}ssword": 1}), "config"),
            (json!({"n": 1e300}), "config.n"),
            (json!({"n": -1e130}), "config.n"),
            (json!({"list": [1e-300]}), "config.list[0]"),
        ] {
            let e = parse_edits(stripe(), &json!({ "config": config }), BodyKind::Patch).unwrap_err();
            assert!(!e.forbidden, "{config}");
            assert_eq!(e.param, param, "{config}");
        }
        let ok = json!({"config": {"n": 0, "m": -0.5, "big": 1e125, "small": 1e-129, "i": 9007199254740993u64}});
        assert!(parse_edits(stripe(), &ok, BodyKind::Patch).is_ok());
    }

    #[test]
    fn bad_and_unknown_parameters_are_400s() {
        for (body, param) in [
            (json!({"mode": "prod"}), "mode"),
            (json!({"display_name": ""}), "display_name"),
            (json!({"display_name": "a\u{0}b"}), "display_name"),
            (json!({"display_name": "x".repeat(257)}), "display_name"),
            (json!({"config": []}), "config"),
            (json!({"bank_account_id": "nope"}), "bank_account_id"),
            (json!({"is_active": false}), "is_active"),
            (json!({"colour": "blue"}), "colour"),
        ] {
            let e = parse_edits(stripe(), &body, BodyKind::Connect).unwrap_err();
            assert!(!e.forbidden);
            assert_eq!(e.param, param);
        }
        assert!(parse_edits(stripe(), &json!([1]), BodyKind::Connect).is_err());
        assert_eq!(
            parse_edits(stripe(), &json!({"is_active": false}), BodyKind::Patch)
                .unwrap()
                .is_active,
            Some(false)
        );
    }
}
