//! Every failure a caller can see. Mapped to the HTTP envelope in exactly one place
//! (`http::response`). Hints are written for callers: never AWS text, never a secret.

use super::api_key::{AuthError, Scope};

/// Which dependency failed, for logs (never shown to callers).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dependency {
    DynamoDb,
    SecretsManager,
    EventBridge,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ApiError {
    /// 400 (bad parameter) or 422 (forbidden field, credential rules).
    #[error("validation error on {param:?}: {hint}")]
    Validation {
        unprocessable: bool,
        param: Option<String>,
        hint: String,
    },
    #[error(transparent)]
    Auth(#[from] AuthError),
    #[error("missing scope {required}")]
    InsufficientScope { required: Scope },
    #[error("not found")]
    NotFound { hint: String, param: Option<String> },
    #[error("conflict {code}")]
    Conflict { code: &'static str, hint: String },
    #[error("recovery window expired")]
    RecoveryWindowExpired,
    #[error("body too large")]
    PayloadTooLarge,
    #[error("unsupported media type")]
    UnsupportedMediaType,
    #[error("method not allowed")]
    MethodNotAllowed { allow: String },
    #[error("{0:?} throttled")]
    Throttled(Dependency),
    #[error("{0:?} unavailable")]
    Unavailable(Dependency),
    /// The request's deadline (the Lambda invocation's, less a margin to answer) passed
    /// before its work was done: 503, retry. What it did so far is safe to leave (the
    /// outbox and the sweeper finish it).
    #[error("deadline exceeded")]
    OutOfTime,
    /// A bug or a misconfiguration: logged in full server-side, shown as a bare 500.
    #[error("internal error")]
    Internal,
}

impl ApiError {
    pub fn bad_request(param: impl Into<String>, hint: impl Into<String>) -> Self {
        ApiError::Validation {
            unprocessable: false,
            param: Some(param.into()),
            hint: hint.into(),
        }
    }

    pub fn unprocessable(param: impl Into<String>, hint: impl Into<String>) -> Self {
        ApiError::Validation {
            unprocessable: true,
            param: Some(param.into()),
            hint: hint.into(),
        }
    }

    pub fn not_found(hint: impl Into<String>) -> Self {
        ApiError::NotFound {
            hint: hint.into(),
            param: None,
        }
    }

    /// 404 for something a parameter names (a credential version), with `param` set.
    pub fn not_found_param(param: impl Into<String>, hint: impl Into<String>) -> Self {
        ApiError::NotFound {
            hint: hint.into(),
            param: Some(param.into()),
        }
    }

    pub fn status(&self) -> u16 {
        match self {
            ApiError::Validation {
                unprocessable: false, ..
            } => 400,
            ApiError::Validation {
                unprocessable: true, ..
            } => 422,
            ApiError::Auth(_) => 401,
            ApiError::InsufficientScope { .. } => 403,
            ApiError::NotFound { .. } => 404,
            ApiError::MethodNotAllowed { .. } => 405,
            ApiError::Conflict { .. } => 409,
            ApiError::RecoveryWindowExpired => 410,
            ApiError::PayloadTooLarge => 413,
            ApiError::UnsupportedMediaType => 415,
            ApiError::Throttled(_) => 429,
            ApiError::Unavailable(_) | ApiError::OutOfTime => 503,
            ApiError::Internal => 500,
        }
    }

    /// The envelope's `type`: the category a client branches on.
    pub fn kind(&self) -> &'static str {
        match self {
            ApiError::Validation { .. } => "validation_error",
            ApiError::Auth(_) => "permission_error",
            ApiError::InsufficientScope { .. } => "insufficient_scope",
            ApiError::NotFound { .. } => "not_found",
            ApiError::MethodNotAllowed { .. } => "method_not_allowed",
            ApiError::Conflict { .. } => "conflict",
            ApiError::RecoveryWindowExpired => "recovery_window_expired",
            ApiError::PayloadTooLarge => "payload_too_large",
            ApiError::UnsupportedMediaType => "unsupported_media_type",
            ApiError::Throttled(_) => "rate_limited",
            ApiError::Unavailable(_) | ApiError::OutOfTime => "service_unavailable",
            ApiError::Internal => "internal_error",
        }
    }

    /// The envelope's `code` (and `error`): the specific reason.
    pub fn code(&self) -> &'static str {
        match self {
            ApiError::Auth(AuthError::Missing) => "missing_api_key",
            ApiError::Auth(AuthError::Invalid) => "invalid_api_key",
            ApiError::Auth(AuthError::Expired) => "expired_api_key",
            ApiError::Conflict { code, .. } => code,
            other => other.kind(),
        }
    }

    pub fn hint(&self) -> String {
        match self {
            ApiError::Validation { hint, .. } | ApiError::NotFound { hint, .. } | ApiError::Conflict { hint, .. } => {
                hint.clone()
            }
            ApiError::Auth(AuthError::Missing) => "Send your API key as `Authorization: Bearer <key>`.".into(),
            ApiError::Auth(AuthError::Invalid) => {
                "The API key is not valid: it is malformed, unknown or revoked.".into()
            }
            ApiError::Auth(AuthError::Expired) => "The API key has expired; create a new one.".into(),
            ApiError::InsufficientScope { required } => {
                format!("This request needs an API key with the `{required}` scope.")
            }
            ApiError::MethodNotAllowed { allow } => format!("This path accepts only: {allow}."),
            ApiError::RecoveryWindowExpired => {
                "The 7-day recovery window of this connector has passed; connect it again.".into()
            }
            ApiError::PayloadTooLarge => "Request bodies are limited to 64 KiB.".into(),
            ApiError::UnsupportedMediaType => "Send the body as JSON with `Content-Type: application/json`.".into(),
            ApiError::Throttled(_) => "The service is busy; retry after the number of seconds in `Retry-After`.".into(),
            ApiError::Unavailable(_) => {
                "A dependency is temporarily unavailable; retry after the number of seconds in `Retry-After`.".into()
            }
            ApiError::OutOfTime => {
                "The request ran out of time; retry it (with the same Idempotency-Key, if you sent one) after the number of seconds in `Retry-After`.".into()
            }
            ApiError::Internal => {
                "Something went wrong on our side; quote the request_id if you contact support.".into()
            }
        }
    }

    pub fn param(&self) -> Option<&str> {
        match self {
            ApiError::Validation { param, .. } | ApiError::NotFound { param, .. } => param.as_deref(),
            _ => None,
        }
    }

    /// Seconds a client should wait before retrying, for 429 and 503.
    pub fn retry_after(&self) -> Option<u32> {
        match self {
            ApiError::Throttled(_) => Some(1),
            ApiError::Unavailable(_) | ApiError::OutOfTime => Some(5),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses_and_codes_follow_the_design() {
        let cases: Vec<(ApiError, u16, &str, &str)> = vec![
            (
                ApiError::bad_request("limit", "x"),
                400,
                "validation_error",
                "validation_error",
            ),
            (
                ApiError::unprocessable("entity_id", "x"),
                422,
                "validation_error",
                "validation_error",
            ),
            (AuthError::Missing.into(), 401, "permission_error", "missing_api_key"),
            (AuthError::Invalid.into(), 401, "permission_error", "invalid_api_key"),
            (AuthError::Expired.into(), 401, "permission_error", "expired_api_key"),
            (
                ApiError::InsufficientScope { required: Scope::Purge },
                403,
                "insufficient_scope",
                "insufficient_scope",
            ),
            (ApiError::not_found("x"), 404, "not_found", "not_found"),
            (
                ApiError::Conflict {
                    code: "already_connected",
                    hint: "x".into(),
                },
                409,
                "conflict",
                "already_connected",
            ),
            (
                ApiError::RecoveryWindowExpired,
                410,
                "recovery_window_expired",
                "recovery_window_expired",
            ),
            (ApiError::PayloadTooLarge, 413, "payload_too_large", "payload_too_large"),
            (
                ApiError::UnsupportedMediaType,
                415,
                "unsupported_media_type",
                "unsupported_media_type",
            ),
            (
                ApiError::Throttled(Dependency::DynamoDb),
                429,
                "rate_limited",
                "rate_limited",
            ),
            (
                ApiError::Unavailable(Dependency::SecretsManager),
                503,
                "service_unavailable",
                "service_unavailable",
            ),
            (ApiError::Internal, 500, "internal_error", "internal_error"),
        ];
        for (e, status, kind, code) in cases {
            assert_eq!((e.status(), e.kind(), e.code()), (status, kind, code), "{e:?}");
            assert!(!e.hint().is_empty());
            assert_eq!(e.retry_after().is_some(), status == 429 || status == 503);
        }
    }
}
