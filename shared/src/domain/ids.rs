//! Identifiers: entities (tenants) and connector rows are UUIDs.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// The tenant a key and its rows belong to. Taken from the API key, never from a request.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct EntityId(Uuid);

/// A connector row's stable `id`; it survives disconnect and restore.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct ConnectorId(Uuid);

macro_rules! uuid_newtype {
    ($t:ident) => {
        impl $t {
            pub fn new_random() -> Self {
                $t(Uuid::new_v4())
            }
            pub fn as_uuid(&self) -> &Uuid {
                &self.0
            }
        }
        impl From<Uuid> for $t {
            fn from(u: Uuid) -> Self {
                $t(u)
            }
        }
        impl FromStr for $t {
            type Err = uuid::Error;
            /// Only the hyphenated form: a path segment like `stripe` must not parse.
            fn from_str(s: &str) -> Result<Self, Self::Err> {
                uuid::fmt::Hyphenated::from_str(s).map(|h| $t(h.into_uuid()))
            }
        }
        impl fmt::Display for $t {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                fmt::Display::fmt(&self.0.hyphenated(), f)
            }
        }
        impl fmt::Debug for $t {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                fmt::Display::fmt(self, f)
            }
        }
    };
}

uuid_newtype!(EntityId);
uuid_newtype!(ConnectorId);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_hyphenated_uuids_parse() {
        let id: ConnectorId = "3c90c3cc-0d44-4b50-8888-8dd25736052a".parse().unwrap();
        assert_eq!(id.to_string(), "3c90c3cc-0d44-4b50-8888-8dd25736052a");
        assert!("3c90c3cc0d444b5088888dd25736052a".parse::<ConnectorId>().is_err());
        assert!("stripe".parse::<EntityId>().is_err());
    }
}
