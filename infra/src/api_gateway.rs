//! API Gateway proxy events as Lambda receives them: HTTP API (payload 2.0) and REST API
//! (payload 1.0, stage `prod`). The path is given as a client sends it (percent-encoded)
//! and written as API Gateway hands it on: percent-decoded, in `rawPath` and
//! `requestContext.http.path` (2.0), `path` and `requestContext.path` (1.0), and
//! `pathParameters`; the query string stays as sent. The one source of such events for the tests, the bench
//! and the sample events in `events/` (for `sam local invoke -e`), which a test holds to
//! what this module writes, byte for byte.
//!
//! ```
//! let event = connectors_infra::api_gateway::ApiEvent::new("GET", "/v1/integrations?limit=10")
//!     .key("ark_test_…")
//!     .http_api();
//! assert_eq!(event["rawQueryString"], "limit=10");
//! ```

use serde_json::{json, Map, Value};

/// The API and caller the events come from (documentation values: a made-up API id,
/// an address of TEST-NET-3).
const API_ID: &str = "abcdef1234";
const HOST: &str = "abcdef1234.execute-api.us-east-1.amazonaws.com";
const SOURCE_IP: &str = "203.0.113.10";
const USER_AGENT: &str = "curl/8.5.0";

/// One request, as a caller sends it to API Gateway.
#[derive(Clone, Debug)]
pub struct ApiEvent<'a> {
    method: &'a str,
    /// Percent-decoded, as API Gateway delivers it.
    path: String,
    /// Without the `?`; taken as written (values are not percent-decoded).
    query: &'a str,
    key: Option<&'a str>,
    body: Option<String>,
}

impl<'a> ApiEvent<'a> {
    /// `path` may carry a query string (`/v1/integrations?limit=10`).
    pub fn new(method: &'a str, path: &'a str) -> Self {
        let (path, query) = path.split_once('?').unwrap_or((path, ""));
        ApiEvent {
            method,
            path: percent_encoding::percent_decode_str(path)
                .decode_utf8_lossy()
                .into_owned(),
            query,
            key: None,
            body: None,
        }
    }

    /// `Authorization: Bearer <key>`.
    pub fn key(mut self, key: &'a str) -> Self {
        self.key = Some(key);
        self
    }

    /// A JSON body, as its compact text (`None`: no body).
    pub fn body(mut self, body: Option<&Value>) -> Self {
        self.body = body.map(Value::to_string);
        self
    }

    /// The route's resource as template.yaml declares it (`/v1/integrations/{connector}…`)
    /// and its `{connector}` segment, or `None` where no route matches (HTTP API's
    /// `$default` route: the fallback function).
    fn resource(&self) -> Option<(String, Option<&str>)> {
        shared::http::router::route(self.method, &self.path).ok()?;
        let rest = self.path.strip_prefix("/v1/integrations")?;
        Some(match rest.strip_prefix('/') {
            None => ("/v1/integrations".to_string(), None),
            Some(rest) => {
                let (connector, tail) = rest.split_once('/').map_or((rest, ""), |(c, t)| (c, t));
                let tail = if tail.is_empty() {
                    String::new()
                } else {
                    format!("/{tail}")
                };
                (format!("/v1/integrations/{{connector}}{tail}"), Some(connector))
            }
        })
    }

    fn query_parameters(&self) -> Option<Map<String, Value>> {
        (!self.query.is_empty()).then(|| {
            self.query
                .split('&')
                .map(|pair| {
                    let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
                    (name.to_string(), json!(value))
                })
                .collect()
        })
    }

    /// The HTTP API (payload 2.0) event. Keys absent from a real event (no body, no query,
    /// no path parameters) are absent here too.
    pub fn http_api(&self) -> Value {
        let resource = self.resource();
        let route_key = match &resource {
            Some((template, _)) => format!("{} {template}", self.method),
            None => "$default".to_string(),
        };
        let mut headers = Map::new();
        if let Some(key) = self.key {
            headers.insert("authorization".into(), json!(format!("Bearer {key}")));
        }
        headers.insert("content-type".into(), json!("application/json"));
        headers.insert("host".into(), json!(HOST));
        headers.insert("user-agent".into(), json!(USER_AGENT));
        let mut event = json!({
            "version": "2.0",
            "routeKey": route_key,
            "rawPath": self.path,
            "rawQueryString": self.query,
            "headers": headers,
            "requestContext": {
                "accountId": "123456789012",
                "apiId": API_ID,
                "domainName": HOST,
                "domainPrefix": API_ID,
                "http": {
                    "method": self.method,
                    "path": self.path,
                    "protocol": "HTTP/1.1",
                    "sourceIp": SOURCE_IP,
                    "userAgent": USER_AGENT
                },
                "requestId": "JKJaXmPLvHcESHA=",
                "routeKey": route_key,
                "stage": "$default",
                "time": "23/Nov/2026:18:00:00 +0000",
                "timeEpoch": 1795370400000u64
            },
            "isBase64Encoded": false
        });
        let object = event.as_object_mut().expect("an object");
        if let Some(connector) = resource.and_then(|(_, c)| c) {
            object.insert("pathParameters".into(), json!({ "connector": connector }));
        }
        if let Some(query) = self.query_parameters() {
            object.insert("queryStringParameters".into(), Value::Object(query));
        }
        if let Some(body) = &self.body {
            object.insert("body".into(), json!(body));
        }
        event
    }

    /// The REST API (payload 1.0) event, through stage `prod` (its path carries the stage).
    /// A path no route matches is taken as a resource of its own.
    pub fn rest_api(&self) -> Value {
        let (resource, connector) = self.resource().unwrap_or((self.path.clone(), None));
        let mut headers = Map::new();
        if let Some(key) = self.key {
            headers.insert("Authorization".into(), json!(format!("Bearer {key}")));
        }
        headers.insert("Content-Type".into(), json!("application/json"));
        headers.insert("Host".into(), json!(HOST));
        let multi = |map: &Map<String, Value>| -> Map<String, Value> {
            map.iter().map(|(k, v)| (k.clone(), json!([v]))).collect()
        };
        let query = self.query_parameters();
        json!({
            "resource": resource,
            "path": self.path,
            "httpMethod": self.method,
            "headers": headers,
            "multiValueHeaders": multi(&headers),
            "queryStringParameters": query,
            "multiValueQueryStringParameters": query.as_ref().map(multi),
            "pathParameters": connector.map(|c| json!({ "connector": c })),
            "stageVariables": null,
            "requestContext": {
                "accountId": "123456789012",
                "apiId": API_ID,
                "resourceId": "a1b2c3",
                "stage": "prod",
                "requestId": "c6af9ac6-7b61-11e6-9a41-93e8deadbeef",
                "httpMethod": self.method,
                "path": format!("/prod{}", self.path),
                "resourcePath": resource,
                "protocol": "HTTP/1.1",
                "identity": {
                    "sourceIp": SOURCE_IP,
                    "userAgent": USER_AGENT
                }
            },
            "body": self.body,
            "isBase64Encoded": false
        })
    }
}
