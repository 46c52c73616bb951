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

/// A fresh random (version 4) UUID: every id the service makes comes from here. With the
/// `seeded-ids` feature (the simulator's alone), a thread may draw them from a seeded
/// generator instead ([`seed_this_thread`]), so that a simulator seed replays the same
/// ids, and with them the same order of outbox records, versions and idempotency leases.
pub fn fresh_uuid() -> Uuid {
    #[cfg(feature = "seeded-ids")]
    if let Some(id) = seeded::next() {
        return id;
    }
    Uuid::new_v4()
}

#[cfg(feature = "seeded-ids")]
pub use seeded::seed_this_thread;

#[cfg(feature = "seeded-ids")]
mod seeded {
    use std::cell::RefCell;

    use rand::rngs::StdRng;
    use rand::{RngCore, SeedableRng};

    thread_local! {
        static IDS: RefCell<Option<StdRng>> = const { RefCell::new(None) };
    }

    /// From now on this thread's ids come from `seed`; `None` returns it to the system's
    /// randomness.
    pub fn seed_this_thread(seed: Option<u64>) {
        IDS.with(|ids| *ids.borrow_mut() = seed.map(StdRng::seed_from_u64));
    }

    pub(super) fn next() -> Option<uuid::Uuid> {
        IDS.with(|ids| {
            ids.borrow_mut().as_mut().map(|rng| {
                let mut bytes = [0u8; 16];
                rng.fill_bytes(&mut bytes);
                uuid::Builder::from_random_bytes(bytes).into_uuid()
            })
        })
    }
}

macro_rules! uuid_newtype {
    ($t:ident) => {
        impl $t {
            pub fn new_random() -> Self {
                $t(fresh_uuid())
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
