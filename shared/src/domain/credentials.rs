//! Credential intake: validation against the catalog, and a payload type whose values can
//! never reach a log line or a response by accident (no `Serialize`, redacted `Debug`).

use std::collections::BTreeMap;
use std::fmt;

use serde_json::{Map, Value};

use super::catalog::ConnectorType;

/// Longest credential value or webhook secret accepted, in bytes.
pub const MAX_SECRET_VALUE_LEN: usize = 4096;

/// A secret string. `Debug` prints `[redacted]`; there is no `Display` or `Serialize`.
#[derive(Clone, PartialEq, Eq)]
pub struct SecretValue(String);

impl SecretValue {
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for SecretValue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[redacted]")
    }
}

/// What is stored in Secrets Manager for one connector.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SecretPayload {
    pub credentials: BTreeMap<String, SecretValue>,
    pub webhook_secret: Option<SecretValue>,
}

impl SecretPayload {
    /// Credential key names, sorted: what `credentials_masked` shows.
    pub fn key_names(&self) -> Vec<String> {
        self.credentials.keys().cloned().collect()
    }

    /// The `SecretString` written to Secrets Manager. The only place values are serialised.
    pub fn to_secret_string(&self) -> String {
        let credentials: Map<String, Value> = self
            .credentials
            .iter()
            .map(|(k, v)| (k.clone(), Value::String(v.0.clone())))
            .collect();
        let mut doc = Map::new();
        doc.insert("credentials".into(), Value::Object(credentials));
        if let Some(w) = &self.webhook_secret {
            doc.insert("webhook_secret".into(), Value::String(w.0.clone()));
        }
        Value::Object(doc).to_string()
    }
}

/// Why a credentials body was refused. Messages name keys, never values.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CredentialError {
    #[error("`credentials` must be an object of strings")]
    NotAnObject,
    #[error("`{key}` is not a credential key of {connector_type}; it accepts: {accepted}")]
    UnknownKey {
        connector_type: ConnectorType,
        key: String,
        accepted: String,
    },
    #[error("{connector_type} requires the credential keys: {}", missing.join(", "))]
    MissingKeys {
        connector_type: ConnectorType,
        missing: Vec<String>,
    },
    #[error("`{key}` must be a non-empty string of at most {MAX_SECRET_VALUE_LEN} bytes")]
    BadValue { key: String },
}

impl CredentialError {
    /// The request field the error is about, for the envelope's `param`.
    pub fn param(&self) -> String {
        match self {
            CredentialError::NotAnObject => "credentials".into(),
            CredentialError::UnknownKey { key, .. } | CredentialError::BadValue { key } => {
                if key == "webhook_secret" {
                    key.clone()
                } else {
                    format!("credentials.{key}")
                }
            }
            CredentialError::MissingKeys { missing, .. } => format!("credentials.{}", missing[0]),
        }
    }
}

fn secret_value(key: &str, value: &Value) -> Result<SecretValue, CredentialError> {
    match value {
        Value::String(s) if !s.is_empty() && s.len() <= MAX_SECRET_VALUE_LEN => Ok(SecretValue(s.clone())),
        _ => Err(CredentialError::BadValue { key: key.into() }),
    }
}

/// Checks `credentials` (and the optional webhook secret) against the catalog entry of
/// `connector_type`: every key known, every required key present, every value a string.
pub fn validate(
    connector_type: ConnectorType,
    credentials: &Value,
    webhook_secret: Option<&Value>,
) -> Result<SecretPayload, CredentialError> {
    let entry = connector_type.entry();
    let Value::Object(map) = credentials else {
        return Err(CredentialError::NotAnObject);
    };
    let mut out = BTreeMap::new();
    for (key, value) in map {
        if !entry.accepts(key) {
            let accepted = entry
                .required
                .iter()
                .chain(entry.optional)
                .copied()
                .collect::<Vec<_>>()
                .join(", ");
            return Err(CredentialError::UnknownKey {
                connector_type,
                key: key.clone(),
                accepted,
            });
        }
        out.insert(key.clone(), secret_value(key, value)?);
    }
    let missing: Vec<String> = entry
        .required
        .iter()
        .filter(|k| !out.contains_key(**k))
        .map(|k| k.to_string())
        .collect();
    if !missing.is_empty() {
        return Err(CredentialError::MissingKeys {
            connector_type,
            missing,
        });
    }
    let webhook_secret = match webhook_secret {
        None | Some(Value::Null) => None,
        Some(v) => Some(secret_value("webhook_secret", v)?),
    };
    Ok(SecretPayload {
        credentials: out,
        webhook_secret,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn stripe() -> ConnectorType {
        ConnectorType::parse("stripe").unwrap()
    }

    #[test]
    fn accepts_required_and_optional_keys() {
        let p = validate(
            stripe(),
            &json!({"secret_key": "sk_canary", "publishable_key": "pk_canary"}),
            Some(&json!("whsec_canary")),
        )
        .unwrap();
        assert_eq!(p.key_names(), vec!["publishable_key", "secret_key"]);
        assert_eq!(p.webhook_secret.as_ref().unwrap().expose(), "whsec_canary");
    }

    #[test]
    fn rejects_unknown_keys_naming_the_accepted_ones() {
        let e = validate(stripe(), &json!({"secret_key": "x", "api_key": "y"}), None).unwrap_err();
        assert_eq!(e.param(), "credentials.api_key");
        assert!(e.to_string().contains("secret_key, publishable_key"));
    }

    #[test]
    fn rejects_missing_required_keys() {
        let e = validate(stripe(), &json!({"publishable_key": "pk"}), None).unwrap_err();
        assert!(matches!(e, CredentialError::MissingKeys { ref missing, .. } if missing == &["secret_key"]));
        let avatax = ConnectorType::parse("avatax").unwrap();
        let e = validate(avatax, &json!({}), None).unwrap_err();
        assert!(e.to_string().contains("account_id, license_key"));
    }

    #[test]
    fn rejects_non_string_empty_and_oversized_values() {
        for bad in [
            json!(1),
            json!(""),
            json!(null),
            json!({"a": 1}),
            json!("x".repeat(4097)),
        ] {
            let e = validate(stripe(), &json!({ "secret_key": bad }), None).unwrap_err();
            assert_eq!(
                e,
                CredentialError::BadValue {
                    key: "secret_key".into()
                }
            );
        }
        assert_eq!(
            validate(stripe(), &json!(["secret_key"]), None).unwrap_err(),
            CredentialError::NotAnObject
        );
        let e = validate(stripe(), &json!({"secret_key": "x"}), Some(&json!(42))).unwrap_err();
        assert_eq!(e.param(), "webhook_secret");
    }

    #[test]
    fn values_never_show_in_debug_or_errors() {
        let p = validate(
            stripe(),
            &json!({"secret_key": "sk_live_CANARY"}),
            Some(&json!("whsec_CANARY")),
        )
        .unwrap();
        let debug = format!("{p:?}");
        assert!(!debug.contains("CANARY"), "{debug}");
        let e = validate(
            stripe(),
            &json!({"secret_key": "sk_live_CANARY", "bogus": "CANARY2"}),
            None,
        )
        .unwrap_err();
        assert!(!format!("{e} {e:?}").contains("CANARY"));
        assert!(p.to_secret_string().contains("sk_live_CANARY"));
    }
}
