//! The one routing table: method and path pattern to operation. The dev server dispatches
//! through it; each Lambda checks that what API Gateway sent it is its own operation.

use crate::domain::api_key::Scope;
use crate::domain::error::ApiError;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Operation {
    List,
    Get,
    Connect,
    Update,
    Credentials,
    Disconnect,
    Restore,
    CredentialVersions,
    Rollback,
    SyncReport,
}

impl Operation {
    /// The function (and binary) that serves this operation.
    pub fn function_name(self) -> &'static str {
        match self {
            Operation::List => "list",
            Operation::Get => "get",
            Operation::Connect => "connect",
            Operation::Update => "update",
            Operation::Credentials => "credentials",
            Operation::Disconnect => "disconnect",
            Operation::Restore => "restore",
            Operation::SyncReport => "report",
            // The credentials function serves every route about a connector's credentials.
            Operation::CredentialVersions | Operation::Rollback => "credentials",
        }
    }

    /// Its `operationId` in openapi.yaml.
    pub fn operation_id(self) -> &'static str {
        match self {
            Operation::CredentialVersions => "credentialVersions",
            Operation::Rollback => "rollbackCredentials",
            other => other.function_name(),
        }
    }

    /// The scope a request needs; a permanent delete needs `integrations:purge`.
    pub fn scope(self, permanent: bool) -> Scope {
        match self {
            Operation::List | Operation::Get => Scope::Read,
            Operation::Disconnect if permanent => Scope::Purge,
            Operation::Connect | Operation::Update | Operation::Disconnect | Operation::Restore => Scope::Write,
            Operation::Credentials | Operation::CredentialVersions | Operation::Rollback => Scope::Credentials,
            Operation::SyncReport => Scope::Sync,
        }
    }

    /// Writes accept `Idempotency-Key`.
    pub fn is_write(self) -> bool {
        !matches!(self, Operation::List | Operation::Get | Operation::CredentialVersions)
    }
}

/// `(method, path pattern, operation)`; `{…}` is one path segment.
pub const ROUTES: [(&str, &str, Operation); 10] = [
    ("GET", "/v1/integrations", Operation::List),
    ("GET", "/v1/integrations/{connector}", Operation::Get),
    ("POST", "/v1/integrations/{connector_type}", Operation::Connect),
    ("PATCH", "/v1/integrations/{connector_type}", Operation::Update),
    ("DELETE", "/v1/integrations/{connector}", Operation::Disconnect),
    (
        "PUT",
        "/v1/integrations/{connector_type}/credentials",
        Operation::Credentials,
    ),
    ("POST", "/v1/integrations/{connector_type}/restore", Operation::Restore),
    // Credential versions.
    (
        "GET",
        "/v1/integrations/{connector}/credentials/versions",
        Operation::CredentialVersions,
    ),
    (
        "POST",
        "/v1/integrations/{connector_type}/credentials/rollback",
        Operation::Rollback,
    ),
    // Connection health.
    (
        "POST",
        "/v1/integrations/{connector}/sync-reports",
        Operation::SyncReport,
    ),
];

#[derive(Debug, PartialEq, Eq)]
pub struct RouteMatch {
    pub operation: Operation,
    /// The `{connector}` / `{connector_type}` segment, if the pattern has one.
    pub connector: Option<String>,
}

/// API Gateway REST APIs prefix the stage (`/prod/v1/…`); custom domains may add a base
/// path. Everything before `/v1/` is not ours.
fn api_path(path: &str) -> &str {
    let path = match path.find("/v1/") {
        Some(i) => &path[i..],
        None if path.ends_with("/v1") => "/v1",
        None => path,
    };
    path.strip_suffix('/').filter(|p| !p.is_empty()).unwrap_or(path)
}

fn matches(pattern: &str, path: &str) -> Option<Option<String>> {
    let mut pattern_parts = pattern.split('/');
    let mut path_parts = path.split('/');
    let mut captured = None;
    loop {
        match (pattern_parts.next(), path_parts.next()) {
            (None, None) => return Some(captured),
            (Some(p), Some(s)) if p.starts_with('{') => {
                if s.is_empty() {
                    return None;
                }
                captured = Some(s.to_string());
            }
            (Some(p), Some(s)) if p == s => {}
            _ => return None,
        }
    }
}

pub fn route(method: &str, path: &str) -> Result<RouteMatch, ApiError> {
    let path = api_path(path);
    let mut allowed: Vec<&'static str> = Vec::new();
    for (m, pattern, operation) in ROUTES {
        if let Some(connector) = matches(pattern, path) {
            if m == method {
                return Ok(RouteMatch { operation, connector });
            }
            allowed.push(m);
        }
    }
    if allowed.is_empty() {
        return Err(ApiError::not_found(
            "No such route; see the API reference for the /v1/integrations paths.",
        ));
    }
    Err(ApiError::MethodNotAllowed {
        allow: allowed.join(", "),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_route_matches_itself_only() {
        for (method, pattern, operation) in ROUTES {
            let path = pattern
                .replace("{connector}", "stripe")
                .replace("{connector_type}", "stripe");
            let m = route(method, &path).unwrap();
            assert_eq!(m.operation, operation);
            assert_eq!(m.connector.is_some(), pattern.contains('{'));
        }
    }

    #[test]
    fn stage_prefixes_and_trailing_slashes_are_ignored() {
        assert_eq!(
            route("GET", "/prod/v1/integrations").unwrap().operation,
            Operation::List
        );
        assert_eq!(route("GET", "/v1/integrations/").unwrap().operation, Operation::List);
        let m = route("PUT", "/dev/v1/integrations/ups/credentials").unwrap();
        assert_eq!(
            (m.operation, m.connector.as_deref()),
            (Operation::Credentials, Some("ups"))
        );
    }

    #[test]
    fn unknown_paths_are_404_and_wrong_methods_405() {
        for path in [
            "/",
            "/v2/integrations",
            "/v1/integrations/stripe/nope",
            "/v1/integrationsx",
            "/v1/integrations//credentials",
        ] {
            assert_eq!(route("GET", path).unwrap_err().status(), 404, "{path}");
        }
        let e = route("PATCH", "/v1/integrations").unwrap_err();
        assert_eq!(e, ApiError::MethodNotAllowed { allow: "GET".into() });
        let e = route("GET", "/v1/integrations/stripe/credentials").unwrap_err();
        assert_eq!(e, ApiError::MethodNotAllowed { allow: "PUT".into() });
        let e = route("PUT", "/v1/integrations/stripe").unwrap_err();
        assert_eq!(
            e,
            ApiError::MethodNotAllowed {
                allow: "GET, POST, PATCH, DELETE".into()
            }
        );
        let e = route("GET", "/v1/integrations/stripe/restore").unwrap_err();
        assert_eq!(e, ApiError::MethodNotAllowed { allow: "POST".into() });
        let e = route("POST", "/v1/integrations/stripe/credentials/versions").unwrap_err();
        assert_eq!(e, ApiError::MethodNotAllowed { allow: "GET".into() });
        let e = route("GET", "/v1/integrations/stripe/credentials/rollback").unwrap_err();
        assert_eq!(e, ApiError::MethodNotAllowed { allow: "POST".into() });
    }
}
