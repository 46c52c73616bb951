//! The config-only bodies of `POST` (connect) and `PATCH` (edit). Secrets never enter
//! here: a secret-looking field or value, anywhere in the body, is a 422 before anything
//! is parsed.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use uuid::Uuid;

use super::catalog::ConnectorType;
use super::connector::Mode;
use super::error::ApiError;
use super::fields::{nullable, parse_fields, present, printable, Text, MAX_TEXT_LEN};
use super::secrets::{self, SecretKind};

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

/// Which body is being parsed: `is_active` is editable only by PATCH.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BodyKind {
    Connect,
    Patch,
}

/// The editable fields, under the row's own names ([`crate::domain::lifecycle::apply_fields`]
/// copies what was sent onto the row by name). Absent fields are left as they are; only the
/// sent ones serialise. A nullable field is an `Option<Option<_>>`, spelled out (not
/// aliased) so that `skip_serializing_none` sees it: `None` = not sent, `Some(None)` =
/// cleared. Adding an editable field means adding it here and to the row; the secret scan
/// of [`parse_edits`] covers every field of the body without being told.
#[serde_with::skip_serializing_none]
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Edits {
    #[serde(default, deserialize_with = "present")]
    pub display_name: Option<Text>,
    #[serde(default, deserialize_with = "present")]
    pub mode: Option<Mode>,
    /// A lifecycle move, not a field: `lifecycle::edit` reads it, `apply_fields` never.
    #[serde(default, deserialize_with = "present", skip_serializing)]
    pub is_active: Option<bool>,
    #[serde(default, deserialize_with = "present")]
    pub config: Option<Map<String, Value>>,
    #[serde(default, deserialize_with = "nullable")]
    pub ship_from_name: Option<Option<Text>>,
    #[serde(default, deserialize_with = "nullable")]
    pub ship_from_address1: Option<Option<Text>>,
    #[serde(default, deserialize_with = "nullable")]
    pub ship_from_city: Option<Option<Text>>,
    #[serde(default, deserialize_with = "nullable")]
    pub ship_from_state: Option<Option<Text>>,
    #[serde(default, deserialize_with = "nullable")]
    pub ship_from_zip: Option<Option<Text>>,
    #[serde(default, deserialize_with = "nullable")]
    pub seller_id: Option<Option<Text>>,
    #[serde(default, deserialize_with = "nullable")]
    pub bank_account_id: Option<Option<Uuid>>,
}

fn bad(param: &str, message: impl Into<String>) -> ApiError {
    ApiError::bad_request(param, message)
}

/// A config key this service stores: non-empty printable ASCII, so that invisible
/// characters and look-alike letters cannot hide a secret's name.
fn is_storable_key(key: &str) -> bool {
    secrets::is_plain_key(key) && !key.trim().is_empty() && key.len() <= MAX_TEXT_LEN
}

/// The first pass over the body: no secret anywhere a read or an event would show it
/// (422). Every string of every field, at any depth, and every key is scanned for a value
/// in a well-known secret format ([`secrets::find`]); in `config`, a key is also refused
/// if it is a forbidden field, a credential key name of this connector type (a
/// `secret_key` in a Stripe config is a secret in disguise) or a secret name by the rule
/// of [`secrets::is_secret_name`]. `param` is the field's dotted path; a key that itself
/// holds a secret is reported under its parent's, so that the key is never echoed. What
/// is under a key that is not storable is left to [`check_storable`] and `parse_fields`,
/// which refuse the key.
fn find_secrets(connector_type: ConnectorType, body: &Map<String, Value>) -> Result<(), ApiError> {
    body.iter().try_for_each(|(key, value)| {
        if let Some(kind) = secrets::contains_secret(key) {
            return Err(holds_a_secret(connector_type, "body", kind, Place::Key));
        }
        scan(connector_type, value, &printable(key), key == "config")
    })
}

/// [`find_secrets`] below one field; `names`: apply the name rule (inside `config`).
fn scan(connector_type: ConnectorType, value: &Value, path: &str, names: bool) -> Result<(), ApiError> {
    match value {
        Value::Object(map) => map.iter().try_for_each(|(k, v)| {
            if let Some(kind) = secrets::contains_secret(k) {
                return Err(holds_a_secret(connector_type, path, kind, Place::Key));
            }
            if !is_storable_key(k) {
                return Ok(());
            }
            let here = format!("{path}.{}", printable(k));
            let lower = k.to_ascii_lowercase();
            if names
                && (FORBIDDEN_FIELDS.contains(&lower.as_str())
                    || connector_type.entry().accepts(&lower)
                    || secrets::is_secret_name(k))
            {
                return Err(looks_like_a_credential(connector_type, here));
            }
            scan(connector_type, v, &here, names)
        }),
        Value::String(text) => match secrets::contains_secret(text) {
            Some(kind) => Err(holds_a_secret(connector_type, path, kind, Place::Value)),
            None => Ok(()),
        },
        Value::Array(items) => items
            .iter()
            .enumerate()
            .try_for_each(|(i, v)| scan(connector_type, v, &format!("{path}[{i}]"), names)),
        _ => Ok(()),
    }
}

const TO_CREDENTIALS: &str = "credentials go only to PUT /v1/integrations";

fn looks_like_a_credential(connector_type: ConnectorType, param: String) -> ApiError {
    let hint = format!("`{param}` looks like a credential: {TO_CREDENTIALS}/{connector_type}/credentials");
    ApiError::unprocessable(param, hint)
}

#[derive(Clone, Copy)]
enum Place {
    Key,
    Value,
}

/// A secret in a value or key at `param`: the hint says what it looks like, never what it is.
fn holds_a_secret(connector_type: ConnectorType, param: &str, kind: SecretKind, place: Place) -> ApiError {
    let what = kind.description();
    let hint = match place {
        Place::Value => format!("`{param}` holds what looks like {what}: {TO_CREDENTIALS}/{connector_type}/credentials, everything else is shown by every read"),
        Place::Key => format!("a key in `{param}` looks like {what}: {TO_CREDENTIALS}/{connector_type}/credentials, everything else is shown by every read"),
    };
    ApiError::unprocessable(param, hint)
}

/// The last pass over `config`: what DynamoDB can store back (400) — storable keys, and
/// numbers of magnitude 0 or 1e-130 to 1e126.
fn check_storable(value: &Value, path: &str) -> Result<(), ApiError> {
    match value {
        Value::Object(map) => map.iter().try_for_each(|(k, v)| {
            if !is_storable_key(k) {
                return Err(bad(
                    path,
                    format!("keys in `{path}` must be 1 to {MAX_TEXT_LEN} printable ASCII characters"),
                ));
            }
            check_storable(v, &format!("{path}.{}", printable(k)))
        }),
        Value::Array(items) => items
            .iter()
            .enumerate()
            .try_for_each(|(i, v)| check_storable(v, &format!("{path}[{i}]"))),
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

/// Parses a connect or patch body (already known to be JSON). The scan for secrets comes
/// first (422 wherever they hide, in any field, whatever else is wrong), then the typed
/// fields and what `config` holds (400).
pub fn parse_edits(connector_type: ConnectorType, body: &Value, kind: BodyKind) -> Result<Edits, ApiError> {
    let Value::Object(map) = body else {
        return Err(bad("body", "the request body must be a JSON object"));
    };
    if let Some(field) = map.keys().find(|k| FORBIDDEN_FIELDS.contains(&k.as_str())) {
        let message = if field == "entity_id" {
            "`entity_id` comes from the API key and may not be sent".to_string()
        } else {
            format!("`{field}` may not be sent here: credentials go only to PUT /v1/integrations/{connector_type}/credentials")
        };
        return Err(ApiError::unprocessable(field.clone(), message));
    }
    find_secrets(connector_type, map)?;
    let patch_only: &[&str] = if kind == BodyKind::Patch { &[] } else { &["is_active"] };
    let edits: Edits = parse_fields(map.clone(), patch_only)?;
    if edits.config.is_some() {
        check_storable(&map["config"], "config")?;
    }
    Ok(edits)
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
        assert_eq!(e.display_name, Text::new("Payments"));
        assert_eq!(e.mode, Some(Mode::Live));
        assert_eq!(e.seller_id, Some(None));
        assert_eq!(e.ship_from_zip, Some(Text::new("62701")));
        assert!(e.bank_account_id.unwrap().is_some());
        assert_eq!(e.is_active, None);
    }

    #[test]
    fn every_forbidden_field_is_a_422_naming_it() {
        for f in FORBIDDEN_FIELDS {
            let e = parse_edits(stripe(), &json!({ f: "x", "display_name": "ok" }), BodyKind::Connect).unwrap_err();
            assert_eq!((e.status(), e.param()), (422, Some(f)));
            assert!(!e.hint().contains("\"x\""));
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
            // Names added with the value rule.
            (json!({"auth": {"user": "u", "pass": "p"}}), "config.auth.pass"),
            (
                json!({"headers": {"Authorization": "x"}}),
                "config.headers.Authorization",
            ),
            (json!({"smtp": {"pw": "p"}}), "config.smtp.pw"),
            // Values anywhere: inside sentences, arrays, deep.
            (json!({"dsn": "postgres://erp:s3cr3t@db/erp"}), "config.dsn"),
            (
                json!({"a": [[{"b": ["ok", "use Bearer abcdef0123456789"]}]]}),
                "config.a[0][0].b[1]",
            ),
        ] {
            let e = parse_edits(stripe(), &json!({ "config": config }), BodyKind::Patch).unwrap_err();
            assert_eq!((e.status(), e.param()), (422, Some(param)));
        }
    }

    #[test]
    fn a_secret_in_config_is_a_422_whatever_else_is_wrong() {
        for body in [
            json!({"mode": "prod", "config": {"api_key": "k"}}),
            json!({"colour": 1, "config": {"api_key": "k"}}),
            json!({"config": {"api_key": "k"}, "display_name": ""}),
            json!({"config": {"n": 1e300, "list": [{"": 1}], "api_key": "k"}}),
        ] {
            let e = parse_edits(stripe(), &body, BodyKind::Patch).unwrap_err();
            assert_eq!((e.status(), e.param()), (422, Some("config.api_key")), "{body}");
        }
    }

    fn corpus() -> (Vec<String>, Vec<String>) {
        let corpus: Value = serde_json::from_str(include_str!("secret_corpus.json")).unwrap();
        let strings = |list: &Value, at: Option<usize>| -> Vec<String> {
            let list = list.as_array().unwrap().iter();
            list.map(|v| at.map_or(v, |i| &v[i]).as_str().unwrap().to_string())
                .collect()
        };
        (strings(&corpus["refused"], Some(1)), strings(&corpus["ordinary"], None))
    }

    /// The fields of `Edits` that take text: whatever field is added, the scan covers it.
    fn text_fields() -> Vec<&'static str> {
        let fields = crate::domain::fields::names_of::<Edits>().iter().copied();
        let takes_text = |f: &&str| parse_edits(stripe(), &json!({ *f: "ACME" }), BodyKind::Patch).is_ok();
        fields.filter(takes_text).collect()
    }

    #[test]
    fn a_secret_in_any_text_field_or_anywhere_in_config_is_a_422_that_never_quotes_it() {
        let (refused, _) = corpus();
        let fields = text_fields();
        assert_eq!(fields.len(), 7, "display_name, five ship_from_*, seller_id: {fields:?}");
        for (i, secret) in refused.iter().enumerate() {
            let field = fields[i % fields.len()];
            for (body, param) in [
                (json!({ field: secret }), field.to_string()),
                (
                    json!({"config": {"a": {"list": ["ok", secret]}}}),
                    "config.a.list[1]".to_string(),
                ),
                // In a key: reported under its parent, so that the key is not echoed.
                (
                    json!({"config": {"a": { secret.as_str(): true }}}),
                    "config.a".to_string(),
                ),
                (json!({ secret.as_str(): 1 }), "body".to_string()),
            ] {
                for kind in [BodyKind::Connect, BodyKind::Patch] {
                    let e = parse_edits(stripe(), &body, kind).unwrap_err();
                    assert_eq!((e.status(), e.param()), (422, Some(param.as_str())), "{body}");
                    assert!(e.hint().contains(" looks like "), "{}", e.hint());
                    for line in secret.lines().filter(|l| l.len() > 3) {
                        assert!(!e.hint().contains(line), "{}", e.hint());
                    }
                }
            }
        }
    }

    #[test]
    fn ordinary_settings_pass_in_config_and_in_text_fields() {
        let (_, ordinary) = corpus();
        for (i, value) in ordinary.iter().enumerate() {
            let body = json!({"config": {"settings": {"list": [value], "note": value}}});
            let e = parse_edits(stripe(), &body, BodyKind::Connect).unwrap();
            assert_eq!(e.config.unwrap()["settings"]["list"][0], *value);
            if Text::new(value).is_some() {
                let field = text_fields()[i % 7];
                let e = parse_edits(stripe(), &json!({ field: value }), BodyKind::Patch);
                assert!(e.is_ok(), "{field}: {value:?}");
            }
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
            assert_eq!((e.status(), e.param()), (400, Some(param)), "{config}");
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
            assert_eq!((e.status(), e.param()), (400, Some(param)), "{body}");
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
