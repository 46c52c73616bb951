//! What looks like a secret: a name that says so, or text in a well-known secret format.
//! Secrets enter only through the credentials endpoint; everything else a caller sends is
//! returned by every read and published in events, so connect and edit refuse (422) what
//! this module finds (`edits::parse_edits`), and text this service writes itself can be
//! cleaned with [`redact`]. The rule (docs/DECISIONS.md, "Secrets in config"):
//!
//! - **Names** ([`is_secret_name`]): a key is normalised — lower-cased, everything but
//!   `a-z0-9` dropped (so `apiKey`, `API-KEY`, `api_key` and `api\u{200b}key` are one
//!   name) — and is a secret's if it contains one of [`SECRET_WORDS`], ends in one of
//!   [`SECRET_ENDINGS`], is `pin`, or its last word is one of [`SECRET_LAST_WORDS`]
//!   (`smtp_pass`, `dbPw`; as a word, so `bypass` is not). Keys must be printable ASCII,
//!   so that no look-alike letters slip past ([`is_plain_key`]).
//! - **Values** ([`find`], [`contains_secret`], [`redact`]): anywhere in a text, at the
//!   start of a word, one of the formats of [`FORMATS`] (the catalog providers' key and
//!   token formats, AWS, GitHub and Slack tokens), a JWT, a `Bearer` or `Basic`
//!   authorization value, a URL with a password, or a PEM private key.
//!
//! What cannot be told from an ordinary value is not looked for: a bare UUID (Postmark's
//! server tokens are UUIDs, and so is every id), a hex or base64 string (Plaid secrets,
//! Avalara license keys, MapQuest keys, OAuth client secrets of UPS, FedEx, USPS, WWEX),
//! or a password without its URL.

use std::borrow::Cow;
use std::ops::Range;

// ---------------------------------------------------------------------------------------
// Names

/// Words that make a normalised key name a secret's.
pub const SECRET_WORDS: [&str; 16] = [
    "secret",
    "password",
    "passwd",
    "passphrase",
    "passcode",
    "apikey",
    "privatekey",
    "accesskey",
    "signingkey",
    "licensekey",
    "credential",
    "bearer",
    "sessionkey",
    "encryptionkey",
    "webhooksecret",
    "pwd",
];

/// Endings that make a normalised key name a secret's: `refresh_token`, `authTokens`,
/// `Proxy-Authorization` (but not `authorization_url` or `tokenizer_mode`).
pub const SECRET_ENDINGS: [&str; 3] = ["token", "tokens", "authorization"];

/// Last words that make a key name a secret's (`auth.pass`, `smtp_pass`, `dbPw`), as
/// words, so that `cache_bypass` and `compass` are not.
pub const SECRET_LAST_WORDS: [&str; 2] = ["pass", "pw"];

/// `apiKey` → `apikey`.
pub fn normalise(name: &str) -> String {
    name.chars()
        .filter(char::is_ascii_alphanumeric)
        .map(|c| c.to_ascii_lowercase())
        .collect()
}

/// The last word of a name, lower-cased: words end at anything but `a-zA-Z0-9` and
/// before an upper-case letter that follows a lower-case one or a digit (`dbPass` →
/// `pass`, `SMTP_PASS` → `pass`, `bypass` → `bypass`).
fn last_word(name: &str) -> String {
    let chars: Vec<char> = name
        .trim_end_matches(|c: char| !c.is_ascii_alphanumeric())
        .chars()
        .collect();
    let mut start = chars.len();
    while start > 0 && chars[start - 1].is_ascii_alphanumeric() {
        start -= 1;
        let camel_hump = start > 0 && chars[start].is_ascii_uppercase() && !chars[start - 1].is_ascii_uppercase();
        if camel_hump && chars[start - 1].is_ascii_alphanumeric() {
            break;
        }
    }
    chars[start..].iter().collect::<String>().to_ascii_lowercase()
}

pub fn is_secret_name(name: &str) -> bool {
    let n = normalise(name);
    n == "pin"
        || SECRET_WORDS.iter().any(|w| n.contains(w))
        || SECRET_ENDINGS.iter().any(|e| n.ends_with(e))
        || SECRET_LAST_WORDS.contains(&last_word(name).as_str())
}

/// Printable ASCII only: no control, invisible or look-alike characters.
pub fn is_plain_key(name: &str) -> bool {
    !name.is_empty() && name.bytes().all(|b| (0x20..0x7f).contains(&b))
}

// ---------------------------------------------------------------------------------------
// Values

/// What was found. [`SecretKind::description`] may be shown to the caller; the text never.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum SecretKind {
    StripeKey,
    StripeWebhookSecret,
    ShopifyToken,
    ShippoToken,
    OpenAiKey,
    GoogleApiKey,
    GoogleOAuth,
    AmazonToken,
    EbayToken,
    PlaidToken,
    AwsAccessKeyId,
    GitHubToken,
    SlackToken,
    Jwt,
    Bearer,
    Basic,
    UrlPassword,
    PrivateKey,
}

impl SecretKind {
    /// A stable snake_case name (tests, logs, metrics).
    pub fn name(self) -> &'static str {
        self.about().0
    }

    /// What it looks like, for a hint: "a Stripe secret or restricted key".
    pub fn description(self) -> &'static str {
        self.about().1
    }

    fn about(self) -> (&'static str, &'static str) {
        use SecretKind::*;
        match self {
            StripeKey => ("stripe_key", "a Stripe secret or restricted key"),
            StripeWebhookSecret => ("stripe_webhook_secret", "a Stripe webhook signing secret"),
            ShopifyToken => ("shopify_token", "a Shopify access token or shared secret"),
            ShippoToken => ("shippo_token", "a Shippo API token"),
            OpenAiKey => ("openai_key", "an OpenAI-style `sk-` API key"),
            GoogleApiKey => ("google_api_key", "a Google API key"),
            GoogleOAuth => ("google_oauth", "a Google OAuth client secret or token"),
            AmazonToken => ("amazon_token", "a Login with Amazon token or client secret"),
            EbayToken => ("ebay_token", "an eBay OAuth token"),
            PlaidToken => ("plaid_token", "a Plaid access or processor token"),
            AwsAccessKeyId => ("aws_access_key_id", "an AWS access key id"),
            GitHubToken => ("github_token", "a GitHub token"),
            SlackToken => ("slack_token", "a Slack token"),
            Jwt => ("jwt", "a JSON Web Token"),
            Bearer => ("bearer", "a Bearer authorization value"),
            Basic => ("basic", "a Basic authorization value"),
            UrlPassword => ("url_password", "a password in a URL"),
            PrivateKey => ("private_key", "a PEM private key"),
        }
    }
}

/// A secret in a text: its kind and where it stands (byte offsets, on `char` boundaries).
/// For an authorization value the range is the credential after the scheme; for a URL,
/// the password.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Found {
    pub kind: SecretKind,
    pub range: Range<usize>,
}

/// What [`redact`] puts in a secret's place.
pub const REDACTED: &str = "[redacted]";

/// The first secret in `text`, if any.
pub fn find(text: &str) -> Option<Found> {
    find_all(text).next()
}

/// The kind of the first secret in `text`, if any.
pub fn contains_secret(text: &str) -> Option<SecretKind> {
    find(text).map(|f| f.kind)
}

/// Every secret in `text`, left to right, not overlapping.
pub fn find_all(text: &str) -> impl Iterator<Item = Found> + '_ {
    let bytes = text.as_bytes();
    let mut from = 0;
    std::iter::from_fn(move || {
        let found = (from..bytes.len()).find_map(|i| secret_at(bytes, i))?;
        from = found.range.end;
        Some(found)
    })
}

/// `text` with every secret replaced by [`REDACTED`]; borrowed when there is none.
pub fn redact(text: &str) -> Cow<'_, str> {
    let mut out: Option<String> = None;
    let mut copied = 0;
    for found in find_all(text) {
        let out = out.get_or_insert_with(|| String::with_capacity(text.len()));
        out.push_str(&text[copied..found.range.start]);
        out.push_str(REDACTED);
        copied = found.range.end;
    }
    match out {
        None => Cow::Borrowed(text),
        Some(mut out) => {
            out.push_str(&text[copied..]);
            Cow::Owned(out)
        }
    }
}

/// A secret format known by its prefix: the prefix, then a run of `body` characters of
/// `min..=max` length (`mixed`: with an upper-case letter, a lower-case one and a digit in
/// its first [`HEAD`] characters), then the end of the word.
pub struct Format {
    pub kind: SecretKind,
    pub prefixes: &'static [&'static str],
    pub body: fn(u8) -> bool,
    pub min: usize,
    pub max: usize,
    pub mixed: bool,
}

/// How far a failed attempt reads: every format's `min` is at most this, so a long text
/// of near misses costs `HEAD` per word, not its whole length.
const HEAD: usize = 64;
const ANY: usize = usize::MAX;

fn alnum(c: u8) -> bool {
    c.is_ascii_alphanumeric()
}
fn hex(c: u8) -> bool {
    c.is_ascii_hexdigit()
}
fn base64(c: u8) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, b'+' | b'/' | b'=')
}
fn base64url(c: u8) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, b'-' | b'_')
}
fn dotted_base64url(c: u8) -> bool {
    base64url(c) || c == b'.'
}
fn word(c: u8) -> bool {
    c.is_ascii_alphanumeric() || c == b'_'
}
fn hex_or_dash(c: u8) -> bool {
    hex(c) || c == b'-'
}
fn upper_or_digit(c: u8) -> bool {
    c.is_ascii_uppercase() || c.is_ascii_digit()
}
fn amazon(c: u8) -> bool {
    base64(c) || matches!(c, b'-' | b'_' | b'.' | b'|')
}
/// Visible ASCII but quotes.
fn visible(c: u8) -> bool {
    c.is_ascii_graphic() && !matches!(c, b'"' | b'\'')
}

/// Distinctive prefixes (Stripe, Shopify, Shippo, Slack) need one character after them;
/// prefixes that could start ordinary text need the format's length, and some its mix of
/// characters (`sk-SK` is a locale, `sk-widget-large-blue-2024` a slug).
#[rustfmt::skip]
pub static FORMATS: [Format; 17] = {
    use SecretKind::*;
    const fn f(kind: SecretKind, prefixes: &'static [&'static str], body: fn(u8) -> bool, min: usize, max: usize, mixed: bool) -> Format {
        Format { kind, prefixes, body, min, max, mixed }
    }
    [
        f(StripeKey, &["sk_live_", "sk_test_", "rk_live_", "rk_test_"], alnum, 1, ANY, false),
        f(StripeWebhookSecret, &["whsec_"], base64, 1, ANY, false),
        f(ShopifyToken, &["shpat_", "shpca_", "shppa_", "shpss_"], alnum, 1, ANY, false),
        f(ShippoToken, &["shippo_live_", "shippo_test_"], alnum, 1, ANY, false),
        f(SlackToken, &["xoxb-", "xoxp-", "xoxa-", "xoxc-", "xoxr-", "xoxs-", "xoxe-", "xapp-"], base64url, 1, ANY, false),
        // OpenAI: `sk-` + 48 (legacy), `sk-proj-…`, `sk-svcacct-…`, `sk-admin-…`.
        f(OpenAiKey, &["sk-"], base64url, 20, ANY, true),
        f(GoogleApiKey, &["AIza"], base64url, 35, 35, false),
        // Google OAuth: client secrets, access tokens, refresh tokens.
        f(GoogleOAuth, &["GOCSPX-"], base64url, 20, ANY, false),
        f(GoogleOAuth, &["ya29."], dotted_base64url, 20, ANY, false),
        f(GoogleOAuth, &["1//0"], base64url, 20, ANY, true),
        // Login with Amazon (Amazon SP-API): refresh and access tokens, client secrets.
        f(AmazonToken, &["Atzr|", "Atza|"], amazon, 20, ANY, false),
        f(AmazonToken, &["amzn1.oa2-cs.v1."], hex, 16, ANY, false),
        f(EbayToken, &["v^1.1#"], visible, 20, ANY, false),
        // Plaid: `access-<environment>-<uuid>`, `processor-<environment>-<uuid>`.
        f(PlaidToken, &["access-sandbox-", "access-development-", "access-production-",
                        "processor-sandbox-", "processor-development-", "processor-production-"], hex_or_dash, 32, ANY, false),
        f(AwsAccessKeyId, &["AKIA", "ASIA"], upper_or_digit, 16, 16, false),
        f(GitHubToken, &["ghp_", "gho_", "ghu_", "ghs_", "ghr_"], alnum, 30, ANY, false),
        f(GitHubToken, &["github_pat_"], word, 20, ANY, false),
    ]
};

impl Format {
    /// The length of this format's secret at the start of `text`, if one is there.
    fn len_at(&self, text: &[u8]) -> Option<usize> {
        let prefix = self.prefixes.iter().find(|p| text.starts_with(p.as_bytes()))?;
        let body = &text[prefix.len()..];
        let head = run(body, self.body, HEAD);
        if head < self.min || (self.mixed && !is_mixed(&body[..head])) {
            return None;
        }
        let len = run(body, self.body, self.max.saturating_add(1));
        let ends_word = !body.get(len).is_some_and(u8::is_ascii_alphanumeric);
        (len <= self.max && ends_word).then_some(prefix.len() + len)
    }
}

/// The length of the run of `class` characters at the start of `text`, read up to `limit`.
fn run(text: &[u8], class: fn(u8) -> bool, limit: usize) -> usize {
    text.iter().take(limit).take_while(|&&c| class(c)).count()
}

fn is_mixed(text: &[u8]) -> bool {
    text.iter().any(u8::is_ascii_uppercase)
        && text.iter().any(u8::is_ascii_lowercase)
        && text.iter().any(u8::is_ascii_digit)
}

fn has_letter_and_digit(text: &[u8]) -> bool {
    text.iter().any(u8::is_ascii_alphabetic) && text.iter().any(u8::is_ascii_digit)
}

/// The secret that starts at byte `i` of `text`, if one does. Every format starts with
/// an ASCII character, so a match is always on a `char` boundary.
fn secret_at(text: &[u8], i: usize) -> Option<Found> {
    let rest = &text[i..];
    let found = |kind, len| {
        Some(Found {
            kind,
            range: i..i + len,
        })
    };
    if rest.starts_with(PEM_BEGIN) {
        return private_key(rest).and_then(|len| found(SecretKind::PrivateKey, len));
    }
    // Everything else starts a word: `risk_live_x` holds no Stripe key.
    if i > 0 && text[i - 1].is_ascii_alphanumeric() {
        return None;
    }
    if let Some((kind, len)) = FORMATS.iter().find_map(|f| f.len_at(rest).map(|len| (f.kind, len))) {
        return found(kind, len);
    }
    if let Some(len) = jwt(rest) {
        return found(SecretKind::Jwt, len);
    }
    let shifted = |(kind, range): (SecretKind, Range<usize>)| Found {
        kind,
        range: i + range.start..i + range.end,
    };
    authorization(rest).or_else(|| url_password(rest)).map(shifted)
}

/// `eyJ…` (a base64url JSON header), `.`, a payload, `.`, a signature of 16 or more.
/// An unsigned token (`alg: none`, empty signature) proves nothing and is not one.
fn jwt(text: &[u8]) -> Option<usize> {
    if !text.starts_with(b"eyJ") {
        return None;
    }
    let header = run(text, base64url, 1024);
    let payload_at = header + 1;
    if header < 10 || text.get(header) != Some(&b'.') {
        return None;
    }
    let payload = run(&text[payload_at..], base64url, ANY);
    let signature_at = payload_at + payload + 1;
    if payload < 2 || text.get(payload_at + payload) != Some(&b'.') {
        return None;
    }
    let signature = run(&text[signature_at..], base64url, ANY);
    (signature >= 16).then_some(signature_at + signature)
}

/// `Bearer <token>` or `Basic <base64 of user:password>`, schemes in any case: the
/// credential's range. A bearer token is 8 or more token68 characters with a letter and a
/// digit (so `Bearer tokens expire` and `Bearer {token}` pass); a basic one must decode to
/// text with a `:` and something after it (so `Basic authentication` passes).
fn authorization(text: &[u8]) -> Option<(SecretKind, Range<usize>)> {
    let starts = |scheme: &[u8]| text.len() > scheme.len() && text[..scheme.len()].eq_ignore_ascii_case(scheme);
    let (kind, scheme) = if starts(b"bearer") {
        (SecretKind::Bearer, 6)
    } else if starts(b"basic") {
        (SecretKind::Basic, 5)
    } else {
        return None;
    };
    let spaces = run(&text[scheme..], |c| c == b' ' || c == b'\t', 16);
    if spaces == 0 {
        return None;
    }
    let start = scheme + spaces;
    let credential = &text[start..];
    // Each run ends at a space, where the next scheme would start: read in full.
    let len = if kind == SecretKind::Bearer {
        let token = run(
            credential,
            |c| base64url(c) || matches!(c, b'.' | b'~' | b'+' | b'/'),
            ANY,
        );
        let is_token = token >= 8 && has_letter_and_digit(&credential[..token]);
        is_token.then(|| token + run(&credential[token..], |c| c == b'=', ANY))?
    } else {
        let encoded = run(credential, |c| c.is_ascii_alphanumeric() || c == b'+' || c == b'/', ANY);
        let decoded = decode_base64(&credential[..encoded]);
        let user_password = std::str::from_utf8(&decoded)
            .ok()
            .filter(|s| !s.chars().any(char::is_control))
            .and_then(|s| s.split_once(':'))
            .is_some_and(|(_, password)| !password.is_empty());
        user_password.then(|| encoded + run(&credential[encoded..], |c| c == b'=', 2))?
    };
    if credential.get(len).is_some_and(u8::is_ascii_alphanumeric) {
        return None;
    }
    Some((kind, start..start + len))
}

/// Standard base64 without padding; what does not decode to whole bytes is dropped.
fn decode_base64(text: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(text.len() * 3 / 4);
    let (mut acc, mut bits) = (0u32, 0);
    for &c in text {
        let sextet = match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a' + 26,
            b'0'..=b'9' => c - b'0' + 52,
            b'+' => 62,
            _ => 63,
        };
        acc = (acc << 6 | u32::from(sextet)) & 0xfff;
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
        }
    }
    out
}

/// `scheme://user:password@host…` with a non-empty password: the password's range.
/// `https://user@host` and `https://user:@host` have none.
fn url_password(text: &[u8]) -> Option<(SecretKind, Range<usize>)> {
    if !text.first()?.is_ascii_alphabetic() {
        return None;
    }
    let scheme = run(
        text,
        |c| c.is_ascii_alphanumeric() || matches!(c, b'+' | b'-' | b'.'),
        33,
    );
    if scheme > 32 || !text[scheme..].starts_with(b"://") {
        return None;
    }
    let start = scheme + 3;
    let authority_len = run(
        &text[start..],
        |c| !c.is_ascii_whitespace() && !matches!(c, b'/' | b'?' | b'#' | b'"' | b'\'' | b'<' | b'>' | b'`'),
        ANY,
    );
    let authority = &text[start..start + authority_len];
    let at = authority.iter().rposition(|&c| c == b'@')?;
    let colon = authority[..at].iter().position(|&c| c == b':')?;
    (colon + 1 < at).then(|| (SecretKind::UrlPassword, start + colon + 1..start + at))
}

const PEM_BEGIN: &[u8] = b"-----BEGIN ";

/// `-----BEGIN … PRIVATE KEY…-----` (PKCS#8, RSA, EC, OpenSSH, encrypted, PGP blocks),
/// through its `-----END …-----` line or the end of the text. Certificates and public
/// keys are not secrets.
fn private_key(text: &[u8]) -> Option<usize> {
    let label = &text[PEM_BEGIN.len()..];
    let len = run(label, |c| c.is_ascii_uppercase() || c.is_ascii_digit() || c == b' ', 64);
    if !label[len..].starts_with(b"-----") || !contains(&label[..len], b"PRIVATE KEY") {
        return None;
    }
    let end = position(text, b"-----END ")
        .and_then(|e| position(&text[e + 9..], b"-----").map(|dashes| e + 9 + dashes + 5))
        .unwrap_or(text.len());
    Some(end)
}

fn position(text: &[u8], needle: &[u8]) -> Option<usize> {
    text.windows(needle.len()).position(|w| w == needle)
}

fn contains(text: &[u8], needle: &[u8]) -> bool {
    position(text, needle).is_some()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The corpus of secret-shaped and ordinary values, shared with the integration test
    /// that sends it through the API (`hostile_input::the_secret_corpus_…`).
    fn corpus() -> (Vec<(String, String)>, Vec<String>) {
        let corpus: serde_json::Value = serde_json::from_str(include_str!("secret_corpus.json")).unwrap();
        let refused = corpus["refused"]
            .as_array()
            .unwrap()
            .iter()
            .map(|case| {
                (
                    case[0].as_str().unwrap().to_string(),
                    case[1].as_str().unwrap().to_string(),
                )
            })
            .collect();
        let ordinary = corpus["ordinary"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_str().unwrap().to_string())
            .collect();
        (refused, ordinary)
    }

    #[test]
    fn the_corpus_is_told_apart() {
        let (refused, ordinary) = corpus();
        assert!(
            refused.len() >= 50 && ordinary.len() >= 50,
            "{} / {}",
            refused.len(),
            ordinary.len()
        );
        for (kind, text) in &refused {
            assert_eq!(
                contains_secret(text).map(SecretKind::name),
                Some(kind.as_str()),
                "{text:?}"
            );
        }
        for text in &ordinary {
            assert_eq!(find(text), None, "{text:?}");
        }
        // Every kind is in the corpus.
        let kinds: std::collections::HashSet<&str> = refused.iter().map(|(k, _)| k.as_str()).collect();
        for format in &FORMATS {
            assert!(
                kinds.contains(format.kind.name()),
                "{:?} has no corpus case",
                format.kind
            );
        }
        for kind in ["jwt", "bearer", "basic", "url_password", "private_key"] {
            assert!(kinds.contains(kind), "{kind} has no corpus case");
        }
    }

    #[test]
    fn secrets_are_found_inside_sentences_and_ranges_cover_them() {
        let text = "For the Shopify store use shpat_0123456789abcdef0123456789abcdef, thanks";
        let found = find(text).unwrap();
        assert_eq!(found.kind, SecretKind::ShopifyToken);
        assert_eq!(&text[found.range], "shpat_0123456789abcdef0123456789abcdef");
        let text = "call https://erp:s3cr3t@db.internal:5432/erp then Authorization: Basic dXNlcjpwYXNzd29yZA== ok";
        let found: Vec<(SecretKind, &str)> = find_all(text).map(|f| (f.kind, &text[f.range])).collect();
        assert_eq!(
            found,
            [
                (SecretKind::UrlPassword, "s3cr3t"),
                (SecretKind::Basic, "dXNlcjpwYXNzd29yZA==")
            ]
        );
    }

    #[test]
    fn redaction_replaces_each_secret_and_keeps_the_rest() {
        for (text, redacted) in [
            (
                "Stripe said: Invalid API Key provided: sk_live_51HxExample0123456789",
                "Stripe said: Invalid API Key provided: [redacted]",
            ),
            (
                "GET https://acme:pa55word@feeds.example.com/x.csv failed (401)",
                "GET https://acme:[redacted]@feeds.example.com/x.csv failed (401)",
            ),
            (
                "headers: Authorization: Bearer 0a1b2c3d4e5f6a7b8c9d; Proxy-Authorization: Basic dXNlcjpwYXNzd29yZA==",
                "headers: Authorization: Bearer [redacted]; Proxy-Authorization: Basic [redacted]",
            ),
            (
                "two keys: AKIAIOSFODNN7EXAMPLE and AKIAI44QH8DHBEXAMPLE.",
                "two keys: [redacted] and [redacted].",
            ),
            (
                "ключ «sk_test_4eC39HqLyjWDarjtT1zdp7dc» — отклонён",
                "ключ «[redacted]» — отклонён",
            ),
            (
                "key:\n-----BEGIN PRIVATE KEY-----\nMIIEvQIBADANBg\n-----END PRIVATE KEY-----\nend",
                "key:\n[redacted]\nend",
            ),
            ("-----BEGIN EC PRIVATE KEY-----\nMHcCAQEEI (cut)", "[redacted]"),
            ("sk_live_abc", "[redacted]"),
        ] {
            assert_eq!(redact(text), redacted, "{text:?}");
        }
    }

    #[test]
    fn text_without_a_secret_is_borrowed_unchanged() {
        let (_, ordinary) = corpus();
        for text in ordinary
            .iter()
            .map(String::as_str)
            .chain(["", "é", "Bearer", "https://", "-----BEGIN "])
        {
            assert!(matches!(redact(text), Cow::Borrowed(t) if t == text), "{text:?}");
        }
    }

    #[test]
    fn near_misses_are_not_secrets() {
        // Every word a near miss of some format, over a whole 64 KiB body. How long the
        // scan takes is not asserted here (`make test` asserts no wall time); a scan that
        // turned quadratic would show as this test's own run time.
        for unit in [
            "sk-sk",
            "eyJ-",
            "a://",
            "Bearer x ",
            "basic a ",
            "ASIA-",
            "-----BEGIN X-",
        ] {
            let text = unit.repeat(65_536 / unit.len());
            assert_eq!(find(&text), None, "{unit}");
        }
    }

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
            // Added with the value rule (each was stored and echoed before).
            "authorization",
            "Proxy-Authorization",
            "pass",
            "smtp_pass",
            "dbPass",
            "DB_PASS",
            "pw",
            "userPW",
            "passcode",
            "license_key",
            "auth_tokens",
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
            "key_rotation_days",
            "api_version",
            "public_key_id",
            "publishable_key",
            "authorization_url",
            "authorization_endpoint",
            "token_url",
            "auth_method",
            "cache_bypass",
            "compass",
            "passenger_count",
            "dsn_region",
            "power",
            "pwa_enabled",
        ] {
            assert!(!is_secret_name(name), "{name}");
            assert!(is_plain_key(name));
        }
    }
}
