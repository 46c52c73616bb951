//! What the functions see as AWS: a TLS-terminating proxy on loopback, with a certificate
//! from a throwaway CA made for this run, in front of the emulator. Every call is a real
//! TLS handshake with real certificate verification, as against AWS's endpoints. It also
//! tallies each call by what AWS bills it as (read and write request units, Secrets
//! Manager calls, events), and keeps when each call arrived and when its answer left, so
//! that a request's critical path can be read off as round trips ([`critical_path`]).

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use connectors_infra::loopback;
use http_body_util::{BodyExt, Full};
use hyper::body::{Bytes, Incoming};
use hyper::{Request, Response};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use serde_json::Value;

/// AWS calls by what they are billed as.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Tally {
    /// Requests that reached the proxy.
    pub calls: u64,
    /// DynamoDB read request units (a strongly consistent read of up to 4 KB is 1; a
    /// transactional read 2 per item).
    pub read_units: u64,
    /// DynamoDB write request units (a write of up to 1 KB is 1; a transactional write 2
    /// per item). Items here are under 1 KB.
    pub write_units: u64,
    pub secrets_calls: u64,
    pub events: u64,
}

impl Tally {
    /// `f` applied to each count of the two.
    fn each(self, other: Tally, f: impl Fn(u64, u64) -> u64) -> Tally {
        Tally {
            calls: f(self.calls, other.calls),
            read_units: f(self.read_units, other.read_units),
            write_units: f(self.write_units, other.write_units),
            secrets_calls: f(self.secrets_calls, other.secrets_calls),
            events: f(self.events, other.events),
        }
    }

    pub fn minus(self, earlier: Tally) -> Tally {
        self.each(earlier, |a, b| a - b)
    }

    pub fn plus(self, other: Tally) -> Tally {
        self.each(other, |a, b| a + b)
    }

    /// Each count divided by `n`, rounded to the nearest: the counts of one of `n` calls
    /// (rounded down, one failed call among 100 took a whole call off the figure).
    pub fn per(self, n: u64) -> Tally {
        let n = n.max(1);
        self.each(self, |a, _| (a + n / 2) / n)
    }

    fn add(&mut self, target: &str, body: &[u8]) {
        self.calls += 1;
        let items = |field: &str| {
            serde_json::from_slice::<Value>(body)
                .ok()
                .and_then(|v| v[field].as_array().map(|a| a.len() as u64))
                .unwrap_or(1)
        };
        match target.split_once('.') {
            Some(("DynamoDB_20120810", op)) => match op {
                "GetItem" | "Query" | "Scan" => self.read_units += 1,
                "TransactGetItems" => self.read_units += 2 * items("TransactItems"),
                "PutItem" | "UpdateItem" | "DeleteItem" => self.write_units += 1,
                "TransactWriteItems" => self.write_units += 2 * items("TransactItems"),
                _ => {}
            },
            Some(("secretsmanager", _)) => self.secrets_calls += 1,
            Some(("AWSEvents", "PutEvents")) => self.events += items("Entries"),
            _ => {}
        }
    }
}

/// One call as the proxy saw it: from its arrival (before it queues for the emulator,
/// which serves one call at a time) to its answer.
#[derive(Clone, Debug)]
pub struct Span {
    /// `service.Operation`, e.g. `DynamoDB_20120810.GetItem`.
    pub operation: String,
    pub start: Instant,
    pub end: Instant,
}

/// The longest chain of calls each of which started after the one before it had
/// answered: the round trips a request waited for one after another. Calls that
/// overlapped count once. (Earliest answer first is optimal for the longest chain of
/// non-overlapping intervals.) Returns the chain's operations, in order.
pub fn critical_path(spans: &[Span]) -> Vec<String> {
    let mut by_end: Vec<&Span> = spans.iter().collect();
    by_end.sort_by_key(|s| s.end);
    let mut chain: Vec<&Span> = Vec::new();
    for span in by_end {
        if chain.last().is_none_or(|last| span.start >= last.end) {
            chain.push(span);
        }
    }
    chain
        .iter()
        .map(|s| s.operation.rsplit('.').next().unwrap_or_default().to_string())
        .collect()
}

pub struct TlsProxy {
    /// `https://localhost:<port>`: what the functions get as `AWS_ENDPOINT_URL`.
    pub url: String,
    /// PEM of the run's CA, for the functions' trust store.
    pub ca_pem: String,
    tally: Arc<Mutex<Tally>>,
    spans: Arc<Mutex<Vec<Span>>>,
    in_flight: Arc<std::sync::atomic::AtomicUsize>,
}

impl TlsProxy {
    pub async fn start(upstream: String) -> TlsProxy {
        let (ca_pem, server_config) = throwaway_ca_and_server_config();
        let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(server_config));
        let listener = tokio::net::TcpListener::bind(SocketAddr::from(([127, 0, 0, 1], 0)))
            .await
            .unwrap();
        let url = format!("https://localhost:{}", listener.local_addr().unwrap().port());
        let tally = Arc::new(Mutex::new(Tally::default()));
        let counter = tally.clone();
        let spans = Arc::new(Mutex::new(Vec::new()));
        let log = spans.clone();
        let in_flight = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        // One request at a time upstream: moto's transactions copy its tables without a
        // lock and fail ("dictionary changed size during iteration") when another request
        // changes them meanwhile, e.g. one a just-killed function had already sent.
        let upstream_lock = Arc::new(tokio::sync::Mutex::new(()));
        let (flying, lock) = (in_flight.clone(), upstream_lock.clone());
        let client: Client<_, Full<Bytes>> = Client::builder(TokioExecutor::new()).build_http();
        let handshake = move |stream| acceptor.clone().accept(stream);
        tokio::spawn(loopback::serve(listener, handshake, move |req: Request<Incoming>| {
            let (client, counter, upstream) = (client.clone(), counter.clone(), upstream.clone());
            let (flying, lock, log) = (flying.clone(), lock.clone(), log.clone());
            async move {
                // Counted until done or dropped (hyper drops the future when the caller, a
                // killed function, goes away).
                let _in_flight = InFlight::enter(flying);
                let start = Instant::now();
                let operation = operation_of(&req);
                let answer = {
                    let _one_at_a_time = lock.lock().await;
                    forward(client, counter, upstream, req, &operation).await
                };
                let end = Instant::now();
                log.lock().unwrap().push(Span { operation, start, end });
                answer
            }
        }));
        TlsProxy {
            url,
            ca_pem,
            tally,
            spans,
            in_flight,
        }
    }

    /// Waits until no request is passing through (one a killed function sent may still be
    /// on its way), so that the harness's own writes never run beside it.
    pub async fn settle(&self) {
        while self.in_flight.load(std::sync::atomic::Ordering::SeqCst) > 0 {
            tokio::time::sleep(std::time::Duration::from_millis(1)).await;
        }
    }

    pub fn tally(&self) -> Tally {
        *self.tally.lock().unwrap()
    }

    /// How many calls have answered so far: a mark for [`TlsProxy::spans_since`].
    pub fn span_mark(&self) -> usize {
        self.spans.lock().unwrap().len()
    }

    /// The calls that answered since `mark`.
    pub fn spans_since(&self, mark: usize) -> Vec<Span> {
        self.spans.lock().unwrap()[mark..].to_vec()
    }

    /// A trust store file: the run's CA, plus the certificates of `extra` (a PEM bundle).
    pub fn trust_file(&self, dir: &Path, name: &str, extra: &[u8]) -> PathBuf {
        let path = dir.join(name);
        let mut pem = self.ca_pem.clone().into_bytes();
        pem.extend_from_slice(extra);
        std::fs::write(&path, pem).unwrap();
        path
    }
}

/// One request passing through, for [`TlsProxy::settle`].
struct InFlight(Arc<std::sync::atomic::AtomicUsize>);

impl InFlight {
    fn enter(count: Arc<std::sync::atomic::AtomicUsize>) -> InFlight {
        count.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        InFlight(count)
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.fetch_sub(1, std::sync::atomic::Ordering::SeqCst);
    }
}

/// The call's `x-amz-target` (`service.Operation`), or empty.
fn operation_of(req: &Request<Incoming>) -> String {
    req.headers()
        .get("x-amz-target")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_string()
}

async fn forward(
    client: Client<hyper_util::client::legacy::connect::HttpConnector, Full<Bytes>>,
    tally: Arc<Mutex<Tally>>,
    upstream: String,
    req: Request<Incoming>,
    target: &str,
) -> Result<Response<Full<Bytes>>, std::io::Error> {
    let (parts, body) = req.into_parts();
    let body = body.collect().await.map(|b| b.to_bytes()).unwrap_or_default();
    tally.lock().unwrap().add(target, &body);
    let uri = format!(
        "{upstream}{}",
        parts.uri.path_and_query().map(|p| p.as_str()).unwrap_or("/")
    );
    let mut out = Request::builder().method(parts.method).uri(uri);
    for (k, v) in &parts.headers {
        out = out.header(k, v);
    }
    let resp = client
        .request(out.body(Full::new(body)).unwrap())
        .await
        .map_err(std::io::Error::other)?;
    let (parts, body) = resp.into_parts();
    let body = body.collect().await.map(|b| b.to_bytes()).unwrap_or_default();
    Ok(Response::from_parts(parts, Full::new(body)))
}

/// A CA made for this run only, and a server certificate it signs for `localhost`.
fn throwaway_ca_and_server_config() -> (String, rustls::ServerConfig) {
    let ca_key = rcgen::KeyPair::generate().unwrap();
    let mut ca_params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    ca_params
        .distinguished_name
        .push(rcgen::DnType::CommonName, "connectors bench throwaway CA");
    let ca = ca_params.self_signed(&ca_key).unwrap();
    let leaf_key = rcgen::KeyPair::generate().unwrap();
    let leaf = rcgen::CertificateParams::new(vec!["localhost".to_string()])
        .unwrap()
        .signed_by(&leaf_key, &ca, &ca_key)
        .unwrap();
    let chain = vec![
        CertificateDer::from(leaf.der().to_vec()),
        CertificateDer::from(ca.der().to_vec()),
    ];
    let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(leaf_key.serialize_der()));
    let config = rustls::ServerConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(chain, key)
        .unwrap();
    (ca.pem(), config)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_per_call_round_to_the_nearest() {
        let total = Tally {
            calls: 799,
            read_units: 100,
            write_units: 849,
            secrets_calls: 299,
            events: 0,
        };
        let one = total.per(100);
        assert_eq!(
            (
                one.calls,
                one.read_units,
                one.write_units,
                one.secrets_calls,
                one.events
            ),
            (8, 1, 8, 3, 0)
        );
    }

    #[test]
    fn the_critical_path_counts_overlapping_calls_once() {
        let t0 = Instant::now();
        let at = |ms: u64| t0 + std::time::Duration::from_millis(ms);
        let span = |op: &str, start, end| Span {
            operation: format!("svc.{op}"),
            start: at(start),
            end: at(end),
        };
        // Read, then a secret step and a publish side by side (the emulator answering
        // them one after the other), then the clear.
        let spans = vec![
            span("GetItem", 0, 10),
            span("DeleteSecret", 11, 20),
            span("PutEvents", 12, 30),
            span("DeleteItem", 31, 40),
        ];
        assert_eq!(critical_path(&spans), ["GetItem", "DeleteSecret", "DeleteItem"]);
        let sequential = vec![span("GetItem", 0, 10), span("PutEvents", 10, 20)];
        assert_eq!(critical_path(&sequential).len(), 2);
        assert!(critical_path(&[]).is_empty());
    }

    #[test]
    fn calls_are_tallied_by_what_aws_bills_them_as() {
        let mut t = Tally::default();
        t.add("DynamoDB_20120810.GetItem", b"{}");
        t.add(
            "DynamoDB_20120810.TransactWriteItems",
            br#"{"TransactItems": [{}, {}]}"#,
        );
        t.add("DynamoDB_20120810.UpdateItem", b"{}");
        t.add("secretsmanager.PutSecretValue", b"{}");
        t.add("AWSEvents.PutEvents", br#"{"Entries": [{}]}"#);
        t.add("", b"");
        let want = Tally {
            calls: 6,
            read_units: 1,
            write_units: 5,
            secrets_calls: 1,
            events: 1,
        };
        assert_eq!(t, want);
        assert_eq!(
            t.minus(Tally {
                calls: 1,
                ..Tally::default()
            })
            .calls,
            5
        );
    }
}
