//! Classifies SDK failures into [`DependencyError`]. Only the error *code* is logged —
//! AWS messages can echo request content, so they are never logged or returned.

use aws_sdk_dynamodb::config::http::HttpResponse;
use aws_sdk_dynamodb::error::{ProvideErrorMetadata, SdkError};

use crate::domain::error::Dependency;
use crate::ports::DependencyError;

const THROTTLE_CODES: [&str; 6] = [
    "ThrottlingException",
    "Throttling",
    "ProvisionedThroughputExceededException",
    "RequestLimitExceeded",
    "TooManyRequestsException",
    "ThrottledException",
];

pub(crate) fn is_throttle_code(code: &str) -> bool {
    THROTTLE_CODES.contains(&code)
}

pub(crate) fn classify<E>(
    dependency: Dependency,
    operation: &'static str,
    err: &SdkError<E, HttpResponse>,
) -> DependencyError
where
    E: ProvideErrorMetadata,
{
    let code = err.code().unwrap_or("");
    let failure = match err {
        SdkError::TimeoutError(_) | SdkError::DispatchFailure(_) | SdkError::ResponseError(_) => {
            DependencyError::Unavailable(dependency)
        }
        SdkError::ServiceError(ctx) => {
            if is_throttle_code(code) || ctx.raw().status().as_u16() == 429 {
                DependencyError::Throttled(dependency)
            } else if ctx.raw().status().is_server_error() {
                DependencyError::Unavailable(dependency)
            } else {
                DependencyError::Rejected(dependency)
            }
        }
        _ => DependencyError::Rejected(dependency),
    };
    tracing::warn!(dependency = ?dependency, operation, error_code = code, failure = ?failure, "AWS call failed");
    failure
}
