//! The one path every entry point routes on.
//!
//! API Gateway (REST and HTTP APIs alike) and SAM local hand a function the request's path
//! percent-decoded — `%00` arrives as a NUL, `%20` as a space, `%2F` as a `/` — and
//! lambda_http keeps it as `raw_http_path()` (the event's `path` or `rawPath`), while its
//! `uri()` is rebuilt by the `url` crate, which trims control characters and spaces from
//! the ends, drops tabs and newlines and resolves `.`/`..`. Routing on `uri()` made
//! `POST /v1/integrations/stripe%00` a 201 through SAM and a 4xx from the dev server. So:
//! inside Lambda the path is `raw_http_path()`; from the dev server (hyper keeps the path
//! as sent) it is percent-decoded here, once. Either way it is then refused when it holds
//! what no route of this API has (below), so that one request gets one answer
//! everywhere. An encoded `/` is a separator like any other: API Gateway cannot keep it
//! apart, so the dev server does not either.

use std::borrow::Cow;

use lambda_http::{Request, RequestExt};
use percent_encoding::percent_decode_str;

use crate::domain::error::ApiError;

/// The request's path, decoded once, checked: what the router sees.
pub fn canonical(req: &Request) -> Result<String, ApiError> {
    let path = match req.raw_http_path() {
        // The dev server (and a request built by hand): the path as the client sent it.
        "" => decode(req.uri().path())?,
        delivered => delivered.to_string(),
    };
    check(&path)?;
    Ok(path)
}

/// `encoded` percent-decoded once. Bytes that are not UTF-8 once decoded are a 400.
pub fn decode(encoded: &str) -> Result<String, ApiError> {
    let bytes: Cow<[u8]> = percent_decode_str(encoded).into();
    match std::str::from_utf8(&bytes) {
        Ok(path) => Ok(path.to_string()),
        Err(e) => Err(refused(&String::from_utf8_lossy(&bytes), e.valid_up_to())),
    }
}

/// Refuses a decoded path holding a control character, DEL, `\`, a `%` left over (the
/// client encoded a `%`), a non-ASCII character (400 in the connector segment, else 404),
/// or a `.`/`..` segment (404): no route, connector type or connector id has one, and each
/// is read differently by some layer between the caller and the function.
pub fn check(path: &str) -> Result<(), ApiError> {
    if let Some(at) = path
        .char_indices()
        .find(|&(_, c)| c.is_control() || c == '\\' || c == '%' || !c.is_ascii())
        .map(|(i, _)| i)
    {
        return Err(refused(path, at));
    }
    // A dot segment is path structure, never a connector: no route has one, whichever
    // segment it stands in.
    if path.split('/').any(|segment| segment == "." || segment == "..") {
        return Err(no_route());
    }
    Ok(())
}

/// A 400 naming `connector_type` when the fault is in the path's connector segment
/// (`/v1/integrations/<here>`), else a 404: no route has such a path. The hint never
/// quotes the path.
fn refused(path: &str, at: usize) -> ApiError {
    let connector = path
        .find("/v1/integrations/")
        .map(|i| i + "/v1/integrations/".len())
        .map(|start| {
            let end = path[start..].find('/').map_or(path.len(), |e| start + e);
            start..end
        });
    match connector {
        Some(segment) if segment.contains(&at) || (segment.is_empty() && at == segment.start) => {
            ApiError::bad_request(
                "connector_type",
                "The connector in the path must be a connector type or a connector id: ASCII letters, digits and dashes only.",
            )
        }
        _ => no_route(),
    }
}

fn no_route() -> ApiError {
    ApiError::not_found("No such route; see the API reference for the /v1/integrations paths.")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn answer(encoded: &str) -> Result<String, (u16, Option<String>)> {
        let refusal = |e: ApiError| (e.status(), e.param().map(String::from));
        let decoded = decode(encoded).map_err(refusal)?;
        check(&decoded).map_err(refusal)?;
        Ok(decoded)
    }

    #[test]
    fn decoded_once_and_an_encoded_slash_is_a_separator() {
        assert_eq!(
            answer("/v1/integrations/str%69pe"),
            Ok("/v1/integrations/stripe".into())
        );
        assert_eq!(
            answer("/v1/integrations/stripe%2Fcredentials"),
            Ok("/v1/integrations/stripe/credentials".into())
        );
        // Decoded once: an encoded `%` stays a `%`, which is refused.
        assert_eq!(
            answer("/v1/integrations/stripe%2500"),
            Err((400, Some("connector_type".into())))
        );
        // `?` and `#` decoded from %3F / %23 are part of the segment (an unknown type later).
        assert_eq!(
            answer("/v1/integrations/stripe%3F"),
            Ok("/v1/integrations/stripe?".into())
        );
        assert_eq!(
            answer("/v1/integrations/stripe%20"),
            Ok("/v1/integrations/stripe ".into())
        );
    }

    #[test]
    fn what_no_route_holds_is_refused_in_the_connector_segment_as_400_elsewhere_as_404() {
        for bad in ["%00", "%09", "%0A", "%7F", "%5C", "%C3%A9", "%E2%80%8B"] {
            assert_eq!(
                answer(&format!("/v1/integrations/stripe{bad}")),
                Err((400, Some("connector_type".into()))),
                "{bad}"
            );
            assert_eq!(
                answer(&format!("/v1/integrations/stripe/credentials{bad}")),
                Err((404, None)),
                "{bad}"
            );
        }
        assert_eq!(answer("/v1/integrations/%2e%2e"), Err((404, None)));
        assert_eq!(answer("/v1/integrations/stripe/%2E/credentials"), Err((404, None)));
        assert_eq!(answer("/v1/%2e%2e/integrations"), Err((404, None)));
        // Not UTF-8 once decoded.
        assert_eq!(
            answer("/v1/integrations/stripe%FF"),
            Err((400, Some("connector_type".into())))
        );
        // A dot inside a segment is no `.` segment.
        assert!(check("/v1/integrations/a.b").is_ok());
    }
}
