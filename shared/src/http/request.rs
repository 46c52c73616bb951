//! Reading requests: body limits, content type, JSON, query strings.

use crate::domain::sync::Health;
use std::cell::RefCell;
use std::collections::HashMap;
use std::fmt;

use lambda_http::http::header::CONTENT_TYPE;
use lambda_http::{Body, Request};
use serde::de::{self, DeserializeSeed, Deserializer, MapAccess, SeqAccess, Visitor};
use serde::Deserialize;
use serde_json::{Map, Number, Value};

use crate::domain::connector::Mode;
use crate::domain::error::ApiError;
use crate::domain::fields::{parse_fields, parse_params, present, Field};
use crate::domain::ids::ConnectorId;
use crate::service::ListQuery;

/// openapi.yaml: request bodies are capped at 64 KiB.
pub const MAX_BODY_BYTES: usize = 64 * 1024;

/// How deeply arrays and objects may nest in a body (the top-level value is level 1).
pub const MAX_JSON_DEPTH: usize = 32;

pub fn header<'r>(req: &'r Request, name: &str) -> Option<&'r str> {
    req.headers().get(name).and_then(|v| v.to_str().ok())
}

fn is_json_content_type(value: &str) -> bool {
    let essence = value.split(';').next().unwrap_or("").trim().to_ascii_lowercase();
    essence == "application/json" || (essence.starts_with("application/") && essence.ends_with("+json"))
}

/// The body as JSON. An empty body is `None`; anything else must be JSON, ≤ 64 KiB.
pub fn json_body(req: &Request) -> Result<Option<Value>, ApiError> {
    let bytes: &[u8] = match req.body() {
        Body::Empty => return Ok(None),
        other => other.as_ref(),
    };
    if bytes.len() > MAX_BODY_BYTES {
        return Err(ApiError::PayloadTooLarge);
    }
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Ok(None);
    }
    if !header(req, CONTENT_TYPE.as_str()).is_some_and(is_json_content_type) {
        return Err(ApiError::UnsupportedMediaType);
    }
    parse_json(bytes).map(Some)
}

/// Why a syntactically fine body was refused while it was being read.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Refusal {
    DuplicateKey(String),
    TooDeep,
}

/// Strict JSON: like `serde_json::from_slice::<Value>`, but a key repeated within one
/// object (which would otherwise silently keep the last value) and nesting deeper than
/// [`MAX_JSON_DEPTH`] are refused. Reading stops at the first refusal, so no input can
/// recurse further than that depth.
pub fn parse_json(bytes: &[u8]) -> Result<Value, ApiError> {
    let refusal = RefCell::new(None);
    let mut de = serde_json::Deserializer::from_slice(bytes);
    let parsed = StrictValue {
        depth: 0,
        refusal: &refusal,
    }
    .deserialize(&mut de)
    .and_then(|value| de.end().map(|()| value));
    match (parsed, refusal.into_inner()) {
        (Ok(value), _) => Ok(value),
        (Err(_), Some(Refusal::DuplicateKey(key))) => Err(ApiError::bad_request(
            "body",
            format!(
                "The request body has a duplicate key `{}`; a key may appear only once in each JSON object.",
                printable(&key)
            ),
        )),
        (Err(_), Some(Refusal::TooDeep)) => Err(ApiError::bad_request(
            "body",
            format!("The request body nests arrays and objects more than {MAX_JSON_DEPTH} levels deep."),
        )),
        (Err(_), None) => Err(ApiError::bad_request("body", "The request body is not valid JSON.")),
    }
}

/// Builds a `Value` at nesting `depth` (of the container holding it), recording the
/// first refusal in `refusal`: serde's error type only carries text, which would have to
/// be parsed back.
#[derive(Clone, Copy)]
struct StrictValue<'r> {
    depth: usize,
    refusal: &'r RefCell<Option<Refusal>>,
}

impl StrictValue<'_> {
    /// The seed for the members of a container opened at this level.
    fn enter<E: de::Error>(self) -> Result<Self, E> {
        if self.depth >= MAX_JSON_DEPTH {
            return Err(self.refuse(Refusal::TooDeep));
        }
        Ok(StrictValue {
            depth: self.depth + 1,
            refusal: self.refusal,
        })
    }

    fn refuse<E: de::Error>(self, refusal: Refusal) -> E {
        let message = match &refusal {
            Refusal::DuplicateKey(_) => "duplicate key",
            Refusal::TooDeep => "nested too deeply",
        };
        self.refusal.borrow_mut().get_or_insert(refusal);
        E::custom(message)
    }
}

impl<'de> DeserializeSeed<'de> for StrictValue<'_> {
    type Value = Value;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<Value, D::Error> {
        deserializer.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for StrictValue<'_> {
    type Value = Value;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any JSON value")
    }

    fn visit_unit<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }

    fn visit_bool<E>(self, v: bool) -> Result<Value, E> {
        Ok(Value::Bool(v))
    }

    fn visit_i64<E>(self, v: i64) -> Result<Value, E> {
        Ok(Value::Number(v.into()))
    }

    fn visit_u64<E>(self, v: u64) -> Result<Value, E> {
        Ok(Value::Number(v.into()))
    }

    fn visit_f64<E>(self, v: f64) -> Result<Value, E> {
        // JSON text has no NaN or infinity, and serde_json refuses out-of-range numbers.
        Ok(Number::from_f64(v).map_or(Value::Null, Value::Number))
    }

    fn visit_str<E>(self, v: &str) -> Result<Value, E> {
        Ok(Value::String(v.to_owned()))
    }

    fn visit_string<E>(self, v: String) -> Result<Value, E> {
        Ok(Value::String(v))
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        let inner = self.enter()?;
        let mut items = Vec::new();
        while let Some(item) = seq.next_element_seed(inner)? {
            items.push(item);
        }
        Ok(Value::Array(items))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Value, A::Error> {
        let inner = self.enter()?;
        let mut object = Map::new();
        while let Some(key) = map.next_key::<String>()? {
            if object.contains_key(&key) {
                return Err(self.refuse(Refusal::DuplicateKey(key)));
            }
            let value = map.next_value_seed(inner)?;
            object.insert(key, value);
        }
        Ok(Value::Object(object))
    }
}

/// Query parameters; a repeated name is a 400 (which value would win is ambiguous).
pub fn query_params(req: &Request) -> Result<HashMap<String, String>, ApiError> {
    let pairs: Vec<(String, String)> = serde_urlencoded::from_str(req.uri().query().unwrap_or(""))
        .map_err(|_| ApiError::bad_request("query", "The query string is malformed."))?;
    let mut params = HashMap::new();
    for (k, v) in pairs {
        if params.contains_key(&k) {
            return Err(ApiError::bad_request(
                printable(&k),
                format!("`{}` may be given only once.", printable(&k)),
            ));
        }
        params.insert(k, v);
    }
    Ok(params)
}

pub use crate::domain::fields::printable;

/// A query-string boolean: `true` or `false`, nothing else.
struct Flag(bool);

impl Field for Flag {
    const MUST_BE: &'static str = "true or false";
    fn from_json(value: Value) -> Option<Self> {
        match value.as_str()? {
            "true" => Some(Flag(true)),
            "false" => Some(Flag(false)),
            _ => None,
        }
    }
}

/// A page size: digits only (`str::parse` would also take a sign, `+5`), 1 to 100.
struct Limit(usize);

impl Field for Limit {
    const MUST_BE: &'static str = "an integer from 1 to 100";
    fn from_json(value: Value) -> Option<Self> {
        let digits = value
            .as_str()
            .filter(|v| !v.is_empty() && v.bytes().all(|b| b.is_ascii_digit()))?;
        digits.parse().ok().filter(|l| (1..=100).contains(l)).map(Limit)
    }
}

/// `true` or `false`, nothing else, for the query parameter `name`.
pub fn parse_bool(name: &str, value: &str) -> Result<bool, ApiError> {
    Flag::from_json(Value::String(value.to_string()))
        .map(|Flag(on)| on)
        .ok_or_else(|| ApiError::bad_request(name, format!("`{name}` must be {}.", Flag::MUST_BE)))
}

/// The list route's query string.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ListParams {
    #[serde(default, deserialize_with = "present")]
    limit: Option<Limit>,
    #[serde(default, deserialize_with = "present")]
    starting_after: Option<ConnectorId>,
    #[serde(default, deserialize_with = "present")]
    ending_before: Option<ConnectorId>,
    #[serde(default, deserialize_with = "present")]
    is_active: Option<Flag>,
    #[serde(default, deserialize_with = "present")]
    mode: Option<Mode>,
    #[serde(default, deserialize_with = "present")]
    health: Option<Health>,
}

pub fn list_query(params: HashMap<String, String>) -> Result<ListQuery, ApiError> {
    let p: ListParams = parse_params(params)?;
    if p.starting_after.is_some() && p.ending_before.is_some() {
        return Err(ApiError::bad_request(
            "ending_before",
            "Use either `starting_after` or `ending_before`, not both.",
        ));
    }
    Ok(ListQuery {
        limit: p.limit.map_or(20, |Limit(l)| l),
        starting_after: p.starting_after,
        ending_before: p.ending_before,
        is_active: p.is_active.map(|Flag(on)| on),
        mode: p.mode,
        health: p.health,
    })
}

/// The body of `PUT …/credentials`: `{"credentials": {…}, "webhook_secret": "…"}` and nothing
/// else. What the values must be is the catalog's to say (the service checks them).
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CredentialsBody {
    #[serde(default, deserialize_with = "present")]
    pub credentials: Option<Value>,
    #[serde(default, deserialize_with = "present")]
    pub webhook_secret: Option<Value>,
}

pub fn credentials_body(body: Value) -> Result<(Value, Option<Value>), ApiError> {
    let Value::Object(map) = body else {
        return Err(ApiError::bad_request(
            "body",
            "Send a JSON object: {\"credentials\": {…}, \"webhook_secret\": \"…\"}.",
        ));
    };
    if map.contains_key("entity_id") {
        return Err(ApiError::unprocessable(
            "entity_id",
            "`entity_id` comes from the API key and may not be sent.",
        ));
    }
    let body: CredentialsBody = parse_fields(map, &[])?;
    let credentials = body
        .credentials
        .ok_or_else(|| ApiError::unprocessable("credentials", "`credentials` is required."))?;
    Ok((credentials, body.webhook_secret))
}

/// The body of `POST …/credentials/rollback`: `{"version": "…"}`, required (so that the
/// call is safe to repeat) and nothing else.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RollbackBody {
    #[serde(default, deserialize_with = "present")]
    version: Option<Value>,
}

pub fn rollback_body(body: Value) -> Result<String, ApiError> {
    let missing = || {
        ApiError::bad_request(
            "version",
            "`version` is required: the id of a version from GET …/credentials/versions.",
        )
    };
    let Value::Object(map) = body else {
        return Err(missing());
    };
    if map.contains_key("entity_id") {
        return Err(ApiError::unprocessable(
            "entity_id",
            "`entity_id` comes from the API key and may not be sent.",
        ));
    }
    let body: RollbackBody = parse_fields(map, &[])?;
    match body.version {
        Some(Value::String(v)) if !v.is_empty() && v.len() <= 64 => Ok(v),
        Some(_) => Err(ApiError::bad_request(
            "version",
            "`version` must be a version id (a string) from GET …/credentials/versions.",
        )),
        None => Err(missing()),
    }
}

#[cfg(test)]
mod tests;
