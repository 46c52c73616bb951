//! What looks like a secret in a config body. Secrets enter only through the credentials
//! endpoint; a config key that names a secret, however spelled, or a value in a
//! well-known secret format, is refused (422) rather than stored, returned by every read
//! and published in events. The rule (docs/DECISIONS.md, "Secrets in config"):
//!
//! - a key is normalised — lower-cased, everything but `a-z0-9` dropped (so `apiKey`,
//!   `API-KEY`, `api_key` and `api\u{200b}key` are one name) — and refused if it contains
//!   one of [`SECRET_WORDS`] or ends in `token`;
//! - keys must be printable ASCII, so that no look-alike letters slip past (400);
//! - a string value starting with one of [`SECRET_VALUE_PREFIXES`] is refused.

/// Words that make a normalised key name a secret's.
pub const SECRET_WORDS: [&str; 14] = [
    "secret",
    "password",
    "passwd",
    "passphrase",
    "apikey",
    "privatekey",
    "accesskey",
    "signingkey",
    "credential",
    "bearer",
    "sessionkey",
    "encryptionkey",
    "webhooksecret",
    "pwd",
];

/// Prefixes of secrets in well-known formats (Stripe keys and webhook secrets, AWS
/// access key ids, GitHub and Slack tokens, PEM private keys).
pub const SECRET_VALUE_PREFIXES: [&str; 11] = [
    "sk_live_",
    "sk_test_",
    "rk_live_",
    "rk_test_",
    "whsec_",
    "AKIA",
    "ASIA",
    "ghp_",
    "xoxb-",
    "xoxp-",
    "-----BEGIN",
];

/// `apiKey` → `apikey`.
pub fn normalise(name: &str) -> String {
    name.chars()
        .filter(char::is_ascii_alphanumeric)
        .map(|c| c.to_ascii_lowercase())
        .collect()
}

pub fn is_secret_name(name: &str) -> bool {
    let n = normalise(name);
    n == "pin" || n.ends_with("token") || SECRET_WORDS.iter().any(|w| n.contains(w))
}

pub fn is_secret_value(value: &str) -> bool {
    SECRET_VALUE_PREFIXES.iter().any(|p| value.trim_start().starts_with(p))
}

/// Printable ASCII only: no control, invisible or look-alike characters.
pub fn is_plain_key(name: &str) -> bool {
    !name.is_empty() && name.bytes().all(|b| (0x20..0x7f).contains(&b))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secret_names_are_found_however_they_are_spelled() {
        for name in [
            "apiKey",
            "API-KEY",
            "api_key",
            "Api.Key",
            "password",
            "dbPassword",
            "private_key",
            "client_secret",
            "clientSecret",
            "token",
            "accessToken",
            "refresh_token",
            "x-api-key",
            "webhook_secret",
            "pin",
            "signing_key",
            "bearer",
            "credentials",
        ] {
            assert!(is_secret_name(name), "{name}");
        }
        // Zero-width and other invisible characters do not hide a name…
        assert!(is_secret_name("api\u{200b}key"));
        assert!(is_secret_name("pass\u{2060}word"));
        // …and are refused as keys anyway, like look-alike letters.
        assert!(!is_plain_key("api\u{200b}key"));
        assert!(!is_plain_key("p\u{0430}ssword"));
        for name in [
            "statement_descriptor",
            "region",
            "account_id",
            "tokenizer_mode",
            "currency",
            "ship_speed",
        ] {
            assert!(!is_secret_name(name), "{name}");
            assert!(is_plain_key(name));
        }
    }

    #[test]
    fn well_known_secret_values_are_found() {
        for value in [
            "sk_live_abc",
            "whsec_123",
            "AKIAIOSFODNN7EXAMPLE",
            " -----BEGIN PRIVATE KEY-----",
        ] {
            assert!(is_secret_value(value), "{value}");
        }
        for value in ["ACME", "us-east-1", "skip", "Akiak"] {
            assert!(!is_secret_value(value), "{value}");
        }
    }
}
