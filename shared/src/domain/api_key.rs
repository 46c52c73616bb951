//! API keys: `ark_live_ent_<code>_<random>` / `ark_test_ent_<code>_<random>`.
//! `<code>` is the key's public id (`key_<code>`), `<random>` its secret part. Only the
//! SHA-256 of the whole key is stored; a key is found by looking its hash up, so no
//! comparison of secret material ever happens in this process (no timing oracle).

use std::collections::BTreeSet;
use std::fmt;

use rand::distr::{Alphanumeric, SampleString};
use rand::Rng;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::ids::EntityId;
use super::time::Timestamp;

const LIVE_PREFIX: &str = "ark_live_ent_";
const TEST_PREFIX: &str = "ark_test_ent_";
const CODE_LEN: usize = 12;
const RANDOM_LEN: usize = 32;

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum Scope {
    #[serde(rename = "integrations:read")]
    Read,
    #[serde(rename = "integrations:write")]
    Write,
    #[serde(rename = "integrations:credentials")]
    Credentials,
    #[serde(rename = "integrations:purge")]
    Purge,
    /// Sync workers: report run outcomes (and read the row they report on).
    #[serde(rename = "integrations:sync")]
    Sync,
}

impl Scope {
    pub const ALL: [Scope; 5] = [Scope::Read, Scope::Write, Scope::Credentials, Scope::Purge, Scope::Sync];

    pub fn as_str(self) -> &'static str {
        match self {
            Scope::Read => "integrations:read",
            Scope::Write => "integrations:write",
            Scope::Credentials => "integrations:credentials",
            Scope::Purge => "integrations:purge",
            Scope::Sync => "integrations:sync",
        }
    }

    pub fn parse(text: &str) -> Option<Scope> {
        Scope::ALL.into_iter().find(|s| s.as_str() == text)
    }
}

impl fmt::Display for Scope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The public id of a key (`key_<code>`): safe to log, print and store in events.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct KeyId(String);

impl KeyId {
    pub fn parse(text: &str) -> Option<KeyId> {
        let code = text.strip_prefix("key_")?;
        is_code(code).then(|| KeyId(text.to_string()))
    }
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for KeyId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for KeyId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Hex SHA-256 of a whole key: the only form in which keys are stored.
#[derive(Clone, PartialEq, Eq, Hash, Debug)]
pub struct KeyHash(String);

impl KeyHash {
    pub fn of(key: &str) -> KeyHash {
        KeyHash(hex::encode(Sha256::digest(key.as_bytes())))
    }
    pub fn from_stored(hex: String) -> KeyHash {
        KeyHash(hex)
    }
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

fn is_code(s: &str) -> bool {
    s.len() == CODE_LEN && s.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
}

/// A presented key whose shape is right. Its `Debug` never shows the secret part.
pub struct PresentedKey {
    pub livemode: bool,
    pub key_id: KeyId,
    pub hash: KeyHash,
}

impl fmt::Debug for PresentedKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "PresentedKey({}, livemode={})", self.key_id, self.livemode)
    }
}

/// Checks a key's shape. Anything that is not a well-formed key is simply invalid: the
/// caller learns nothing about which part was wrong.
pub fn parse_key(key: &str) -> Option<PresentedKey> {
    let (livemode, rest) = if let Some(rest) = key.strip_prefix(LIVE_PREFIX) {
        (true, rest)
    } else {
        (false, key.strip_prefix(TEST_PREFIX)?)
    };
    let (code, random) = rest.split_once('_')?;
    if !is_code(code) || random.len() != RANDOM_LEN || !random.bytes().all(|b| b.is_ascii_alphanumeric()) {
        return None;
    }
    Some(PresentedKey {
        livemode,
        key_id: KeyId(format!("key_{code}")),
        hash: KeyHash::of(key),
    })
}

/// A freshly minted key: the plaintext is shown once and never stored.
pub struct NewKey {
    pub plaintext: String,
    pub key_id: KeyId,
    pub hash: KeyHash,
}

pub fn generate_key(livemode: bool) -> NewKey {
    const CODE_ALPHABET: &[u8] = b"abcdefghijklmnopqrstuvwxyz0123456789";
    let mut rng = rand::rng();
    let code: String = (0..CODE_LEN)
        .map(|_| CODE_ALPHABET[rng.random_range(0..CODE_ALPHABET.len())] as char)
        .collect();
    let random = Alphanumeric.sample_string(&mut rng, RANDOM_LEN);
    let prefix = if livemode { LIVE_PREFIX } else { TEST_PREFIX };
    let plaintext = format!("{prefix}{code}_{random}");
    NewKey {
        key_id: KeyId(format!("key_{code}")),
        hash: KeyHash::of(&plaintext),
        plaintext,
    }
}

/// What the table keeps about a key.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ApiKeyRecord {
    pub key_id: KeyId,
    pub entity_id: EntityId,
    pub livemode: bool,
    pub scopes: BTreeSet<Scope>,
    pub created_at: Timestamp,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key_expires_at: Option<Timestamp>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub revoked_at: Option<Timestamp>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum AuthError {
    #[error("no API key was sent")]
    Missing,
    #[error("the API key is not valid")]
    Invalid,
    #[error("the API key has expired")]
    Expired,
}

/// Who is calling: the entity and mode come from the key, never from the request.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Principal {
    pub entity_id: EntityId,
    pub key_id: KeyId,
    pub livemode: bool,
    pub scopes: BTreeSet<Scope>,
}

impl Principal {
    pub fn has_scope(&self, scope: Scope) -> bool {
        self.scopes.contains(&scope)
    }
}

impl ApiKeyRecord {
    /// Turns a stored record found by the presented key's hash into a principal.
    pub fn authenticate(&self, presented: &PresentedKey, now: Timestamp) -> Result<Principal, AuthError> {
        // The hash already binds the whole key; these guard against a corrupted record.
        if self.revoked_at.is_some() || self.key_id != presented.key_id || self.livemode != presented.livemode {
            return Err(AuthError::Invalid);
        }
        if self.key_expires_at.is_some_and(|at| now >= at) {
            return Err(AuthError::Expired);
        }
        Ok(Principal {
            entity_id: self.entity_id,
            key_id: self.key_id.clone(),
            livemode: self.livemode,
            scopes: self.scopes.clone(),
        })
    }
}

/// Extracts the key from an `Authorization` header value (`Bearer <key>`, scheme
/// case-insensitive as RFC 7235 says).
pub fn bearer_token(header: Option<&str>) -> Result<&str, AuthError> {
    let value = header
        .map(str::trim)
        .filter(|v| !v.is_empty())
        .ok_or(AuthError::Missing)?;
    let (scheme, token) = value.split_once(' ').ok_or(AuthError::Invalid)?;
    if !scheme.eq_ignore_ascii_case("bearer") {
        return Err(AuthError::Invalid);
    }
    let token = token.trim();
    if token.is_empty() {
        return Err(AuthError::Missing);
    }
    Ok(token)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn now() -> Timestamp {
        Timestamp::parse("2026-01-01T00:00:00Z").unwrap()
    }

    fn record_for(key: &NewKey, livemode: bool) -> ApiKeyRecord {
        ApiKeyRecord {
            key_id: key.key_id.clone(),
            entity_id: EntityId::new_random(),
            livemode,
            scopes: [Scope::Read].into(),
            created_at: now(),
            key_expires_at: None,
            revoked_at: None,
        }
    }

    #[test]
    fn generated_keys_parse_back_to_their_id_and_hash() {
        for live in [true, false] {
            let k = generate_key(live);
            assert!(k
                .plaintext
                .starts_with(if live { "ark_live_ent_" } else { "ark_test_ent_" }));
            let p = parse_key(&k.plaintext).expect("well formed");
            assert_eq!(p.livemode, live);
            assert_eq!(p.key_id, k.key_id);
            assert_eq!(p.hash, k.hash);
            assert_eq!(p.hash.as_str().len(), 64);
            assert!(!format!("{p:?}").contains(&k.plaintext[k.plaintext.len() - 32..]));
        }
        assert_ne!(generate_key(true).plaintext, generate_key(true).plaintext);
    }

    #[test]
    fn malformed_keys_are_rejected() {
        let good = generate_key(false).plaintext;
        for bad in [
            "",
            "sk_live_123",
            &good[..good.len() - 1],
            &format!("{good}x"),
            &good.replace("ark_test_ent_", "ark_prod_ent_"),
            &good.replacen('_', "-", 4),
            "ark_test_ent_ABCDEFGHIJKL_0123456789abcdef0123456789abcdef",
        ] {
            assert!(parse_key(bad).is_none(), "{bad}");
        }
    }

    #[test]
    fn hash_is_sha256_hex() {
        assert_eq!(
            KeyHash::of("abc").as_str(),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }

    #[test]
    fn revoked_expired_and_mismatched_records_do_not_authenticate() {
        let k = generate_key(true);
        let p = parse_key(&k.plaintext).unwrap();
        let rec = record_for(&k, true);
        assert_eq!(rec.authenticate(&p, now()).unwrap().entity_id, rec.entity_id);

        let revoked = ApiKeyRecord {
            revoked_at: Some(now()),
            ..rec.clone()
        };
        assert_eq!(revoked.authenticate(&p, now()), Err(AuthError::Invalid));

        let expired = ApiKeyRecord {
            key_expires_at: Some(now()),
            ..rec.clone()
        };
        assert_eq!(expired.authenticate(&p, now()), Err(AuthError::Expired));
        let later = ApiKeyRecord {
            key_expires_at: Some(now().plus_seconds(1)),
            ..rec.clone()
        };
        assert!(later.authenticate(&p, now()).is_ok());

        let wrong_mode = ApiKeyRecord { livemode: false, ..rec };
        assert_eq!(wrong_mode.authenticate(&p, now()), Err(AuthError::Invalid));
    }

    #[test]
    fn scopes_round_trip_and_are_checked() {
        for s in Scope::ALL {
            assert_eq!(Scope::parse(s.as_str()), Some(s));
            assert_eq!(serde_json::to_value(s).unwrap(), s.as_str());
        }
        assert_eq!(Scope::parse("integrations:admin"), None);
        let p = Principal {
            entity_id: EntityId::new_random(),
            key_id: KeyId::parse("key_abcdefghij12").unwrap(),
            livemode: false,
            scopes: [Scope::Read, Scope::Credentials].into(),
        };
        assert!(p.has_scope(Scope::Read) && p.has_scope(Scope::Credentials));
        assert!(!p.has_scope(Scope::Write) && !p.has_scope(Scope::Purge));
    }

    #[test]
    fn bearer_header_parsing() {
        assert_eq!(bearer_token(None), Err(AuthError::Missing));
        assert_eq!(bearer_token(Some("  ")), Err(AuthError::Missing));
        assert_eq!(bearer_token(Some("Basic abc")), Err(AuthError::Invalid));
        assert_eq!(bearer_token(Some("Bearer")), Err(AuthError::Invalid));
        assert_eq!(bearer_token(Some("bearer  ark_x ")), Ok("ark_x"));
        assert_eq!(bearer_token(Some("Bearer ark_x")), Ok("ark_x"));
    }
}
