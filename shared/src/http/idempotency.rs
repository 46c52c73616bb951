//! `Idempotency-Key` checks: the key's shape and the request's fingerprint.

use hmac::{Hmac, Mac};
use lambda_http::Request;
use sha2::Sha256;

use crate::domain::error::ApiError;

pub const MAX_KEY_LEN: usize = 255;

pub fn validate_key(key: &str) -> Result<&str, ApiError> {
    if key.is_empty() || key.len() > MAX_KEY_LEN || !key.bytes().all(|b| b.is_ascii_graphic() || b == b' ') {
        return Err(ApiError::bad_request(
            "Idempotency-Key",
            format!("`Idempotency-Key` must be 1 to {MAX_KEY_LEN} printable ASCII characters."),
        ));
    }
    Ok(key)
}

/// What "the same request" means: method, path, query and body bytes — as an
/// HMAC-SHA256 under the deployment's fingerprint key, because a credentials body holds
/// secrets, and a plain hash of a short secret stored in a table every function can read
/// could be reversed by guessing.
pub fn fingerprint(req: &Request, key: &[u8]) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(key).expect("HMAC takes keys of any length");
    mac.update(req.method().as_str().as_bytes());
    mac.update(b"\n");
    mac.update(req.uri().path().as_bytes());
    mac.update(b"?");
    mac.update(req.uri().query().unwrap_or("").as_bytes());
    mac.update(b"\n");
    mac.update(req.body().as_ref());
    hex::encode(mac.finalize().into_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn req(method: &str, uri: &str, body: &str) -> Request {
        lambda_http::http::Request::builder()
            .method(method)
            .uri(uri)
            .body(lambda_http::Body::Text(body.into()))
            .unwrap()
    }

    #[test]
    fn keys_are_bounded_printable_ascii() {
        assert!(validate_key("order-123 retry").is_ok());
        assert!(validate_key(&"k".repeat(255)).is_ok());
        for bad in ["", &"k".repeat(256), "tab\there", "é"] {
            assert_eq!(validate_key(bad).unwrap_err().status(), 400, "{bad:?}");
        }
    }

    #[test]
    fn fingerprint_changes_with_method_path_query_body_and_key() {
        let fingerprint = |r: &Request| super::fingerprint(r, b"k1");
        let base = fingerprint(&req("POST", "/v1/integrations/stripe", "{}"));
        assert_ne!(
            base,
            super::fingerprint(&req("POST", "/v1/integrations/stripe", "{}"), b"k2")
        );
        assert_eq!(base, fingerprint(&req("POST", "/v1/integrations/stripe", "{}")));
        assert_ne!(base, fingerprint(&req("PATCH", "/v1/integrations/stripe", "{}")));
        assert_ne!(base, fingerprint(&req("POST", "/v1/integrations/ups", "{}")));
        assert_ne!(base, fingerprint(&req("POST", "/v1/integrations/stripe?x=1", "{}")));
        assert_ne!(base, fingerprint(&req("POST", "/v1/integrations/stripe", "{\"a\":1}")));
    }
}
