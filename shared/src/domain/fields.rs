//! Typed request fields: the bodies of `POST`/`PATCH`/`PUT …/credentials` and the list
//! query string are deserialised into `#[serde(deny_unknown_fields)]` structs whose field
//! types say what they accept ([`Field`]). A refusal names the field (`param`) and says what
//! it must be, in words of this module: serde's own messages would quote the caller's value,
//! which may be a secret sent to the wrong place.

use std::collections::HashMap;
use std::str::FromStr;

use serde::de::{DeserializeOwned, Deserializer, Error as _};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use uuid::Uuid;

use super::connector::Mode;
use super::error::ApiError;
use super::ids::ConnectorId;
use super::secrets;

/// The longest text a caller may store in a field.
pub const MAX_TEXT_LEN: usize = 256;

/// A value type of a request field.
pub trait Field: Sized {
    /// Completes "`<param>` must be …".
    const MUST_BE: &'static str;
    /// The field's value, or `None` when `value` is not one.
    fn from_json(value: Value) -> Option<Self>;
}

/// Caller text: non-empty, at most [`MAX_TEXT_LEN`] characters, no control characters.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(transparent)]
pub struct Text(String);

impl Text {
    pub fn new(text: &str) -> Option<Text> {
        let fits =
            !text.trim().is_empty() && text.chars().count() <= MAX_TEXT_LEN && !text.chars().any(char::is_control);
        fits.then(|| Text(text.to_string()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl Field for Text {
    const MUST_BE: &'static str = "a non-empty string of at most 256 characters without control characters";
    fn from_json(value: Value) -> Option<Self> {
        value.as_str().and_then(Text::new)
    }
}

impl Field for Mode {
    const MUST_BE: &'static str = "\"sandbox\" or \"live\"";
    fn from_json(value: Value) -> Option<Self> {
        value.as_str().and_then(Mode::parse)
    }
}

impl Field for bool {
    const MUST_BE: &'static str = "a boolean";
    fn from_json(value: Value) -> Option<Self> {
        value.as_bool()
    }
}

impl Field for Map<String, Value> {
    const MUST_BE: &'static str = "a JSON object";
    fn from_json(value: Value) -> Option<Self> {
        match value {
            Value::Object(map) => Some(map),
            _ => None,
        }
    }
}

impl Field for Uuid {
    const MUST_BE: &'static str = "a UUID";
    fn from_json(value: Value) -> Option<Self> {
        // Only the hyphenated form, as for connector ids.
        value
            .as_str()
            .and_then(|s| uuid::fmt::Hyphenated::from_str(s).ok())
            .map(|h| h.into_uuid())
    }
}

impl Field for ConnectorId {
    const MUST_BE: &'static str = "a connector id (UUID)";
    fn from_json(value: Value) -> Option<Self> {
        value.as_str().and_then(|s| s.parse().ok())
    }
}

/// Any JSON value: what it must hold is checked later (credentials against the catalog).
impl Field for Value {
    const MUST_BE: &'static str = "JSON";
    fn from_json(value: Value) -> Option<Self> {
        Some(value)
    }
}

/// For `#[serde(default, deserialize_with = "present")]` on an `Option<T>`: absent is
/// `None`; `null` is refused like any other value that is not a `T`.
pub fn present<'de, D: Deserializer<'de>, T: Field>(deserializer: D) -> Result<Option<T>, D::Error> {
    T::from_json(Value::deserialize(deserializer)?)
        .map(Some)
        .ok_or_else(|| D::Error::custom(T::MUST_BE))
}

/// For `#[serde(default, deserialize_with = "nullable")]` on an `Option<Option<T>>`:
/// absent is `None` (left as it is), `null` is `Some(None)` (cleared).
pub fn nullable<'de, D: Deserializer<'de>, T: Field>(deserializer: D) -> Result<Option<Option<T>>, D::Error> {
    match Value::deserialize(deserializer)? {
        Value::Null => Ok(Some(None)),
        value => T::from_json(value)
            .map(|v| Some(Some(v)))
            .ok_or_else(|| D::Error::custom(T::MUST_BE)),
    }
}

/// The names of `T`'s fields, from its derived `Deserialize` (so never restated by hand).
pub fn names_of<'de, T: Deserialize<'de>>() -> &'static [&'static str] {
    serde_aux::serde_introspection::serde_introspect::<T>()
}

/// Deserialises `T` from a JSON object. A field that does not fit, or one `T` does not have
/// (`except` counts as not having), is a 400 naming it.
pub fn parse_fields<T: DeserializeOwned>(object: Map<String, Value>, except: &[&str]) -> Result<T, ApiError> {
    let accepted: Vec<&str> = names_of::<T>()
        .iter()
        .copied()
        .filter(|n| !except.contains(n))
        .collect();
    let unknown = |name: &str| {
        let name = printable(name);
        ApiError::bad_request(
            name.clone(),
            format!("Unknown parameter `{name}`; accepted: {}.", accepted.join(", ")),
        )
    };
    if let Some(name) = object.keys().find(|k| except.contains(&k.as_str())) {
        return Err(unknown(name));
    }
    serde_path_to_error::deserialize(Value::Object(object)).map_err(|e| {
        let param = e.path().to_string();
        if accepted.contains(&param.as_str()) {
            // One of ours: `present`/`nullable` say only what the field must be.
            ApiError::bad_request(param.clone(), format!("`{param}` must be {}.", e.inner()))
        } else {
            unknown(&param)
        }
    })
}

/// [`parse_fields`] over a query string's parameters (each a string).
pub fn parse_params<T: DeserializeOwned>(params: HashMap<String, String>) -> Result<T, ApiError> {
    parse_fields(params.into_iter().map(|(k, v)| (k, Value::String(v))).collect(), &[])
}

/// A caller's text (a field name, a parameter) echoed in a hint or `param`: no control
/// characters, no secret ([`secrets::redact`], after the control characters are gone so
/// that none can split a secret from the detector), cut short.
pub fn printable(text: &str) -> String {
    let visible: String = text.chars().filter(|c| !c.is_control()).collect();
    secrets::redact(&visible).chars().take(64).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Sample {
        #[serde(default, deserialize_with = "present")]
        name: Option<Text>,
        #[serde(default, deserialize_with = "nullable")]
        note: Option<Option<Text>>,
        #[serde(default, deserialize_with = "present")]
        on: Option<bool>,
    }

    fn parse(body: Value, except: &[&str]) -> Result<Sample, ApiError> {
        parse_fields(body.as_object().unwrap().clone(), except)
    }

    #[test]
    fn absent_null_and_set_are_told_apart() {
        let s = parse(json!({"note": null}), &[]).unwrap();
        assert_eq!((s.name, s.note, s.on), (None, Some(None), None));
        let s = parse(json!({"name": "a", "note": "b", "on": true}), &[]).unwrap();
        assert_eq!(s.name.unwrap().as_str(), "a");
        assert_eq!(s.note, Some(Text::new("b")));
    }

    #[test]
    fn a_refusal_names_the_field_and_never_quotes_the_value() {
        for (body, param) in [
            (json!({"name": null}), "name"),
            (json!({"name": "sk_live_secret\u{0}"}), "name"),
            (json!({"on": "sk_live_secret"}), "on"),
            (json!({"note": 987654}), "note"),
        ] {
            let e = parse(body.clone(), &[]).unwrap_err();
            assert_eq!((e.status(), e.param()), (400, Some(param)), "{body}");
            assert!(e.hint().starts_with(&format!("`{param}` must be ")), "{}", e.hint());
            assert!(
                !e.hint().contains("sk_live") && !e.hint().contains("987654"),
                "{}",
                e.hint()
            );
        }
    }

    #[test]
    fn unknown_and_excepted_fields_list_the_accepted_ones() {
        let e = parse(json!({"name": "a", "colour\u{7}": 1}), &[]).unwrap_err();
        assert_eq!(e.param(), Some("colour"));
        assert_eq!(e.hint(), "Unknown parameter `colour`; accepted: name, note, on.");
        let e = parse(json!({"on": true}), &["on"]).unwrap_err();
        assert_eq!(e.hint(), "Unknown parameter `on`; accepted: name, note.");
    }

    #[test]
    fn a_name_echoed_in_a_hint_never_carries_a_secret() {
        assert_eq!(printable("region\u{7}"), "region");
        assert_eq!(printable("sk_live_\u{0}51HxExample"), "[redacted]");
        assert_eq!(printable(&format!("{}x", "a".repeat(70))), "a".repeat(64));
        let jwt = "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxIn0.SflKxwRJSMeKKF2QT4fwpMeJf36POk6yJV_adQssw5c";
        assert_eq!(
            printable(&format!("key {jwt}")),
            "key [redacted]",
            "redacted before it is cut"
        );
        let e = parse(json!({"Bearer abc123def456": 1}), &[]).unwrap_err();
        assert_eq!(e.param(), Some("Bearer [redacted]"));
        assert!(!e.hint().contains("abc123"), "{}", e.hint());
        let e = parse_params::<Sample>([("shpat_0123abcd".to_string(), "1".to_string())].into()).unwrap_err();
        assert!(e.hint().starts_with("Unknown parameter `[redacted]`"), "{}", e.hint());
    }

    #[test]
    fn text_is_bounded_and_printable() {
        assert!(Text::new(&"x".repeat(MAX_TEXT_LEN)).is_some());
        assert!(
            Text::MUST_BE.contains(&format!(" {MAX_TEXT_LEN} ")),
            "the hint states the bound"
        );
        for bad in ["", "  ", "a\u{0}b", "a\nb", &"x".repeat(MAX_TEXT_LEN + 1)] {
            assert!(Text::new(bad).is_none(), "{bad:?}");
        }
    }
}
