//! One accept loop for the local HTTP stand-ins on loopback: the dev server, the bench's
//! Lambda Runtime API and TLS proxy, and the tests' fault proxy. Each connection gets a
//! task of its own and hyper's HTTP/1.1 server; the handler is called once per request.

use std::error::Error;
use std::future::Future;
use std::io;

use hyper::body::{Body, Incoming};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::{TcpListener, TcpStream};

type BoxError = Box<dyn Error + Send + Sync>;

/// For [`serve`]: plain HTTP, the connection as accepted.
pub async fn plain(stream: TcpStream) -> io::Result<TcpStream> {
    Ok(stream)
}

/// Serves `listener` until accepting fails, and returns that error. Each accepted
/// connection is first handed to `wrap` ([`plain`], or a TLS handshake); a connection
/// `wrap` refuses is dropped.
pub async fn serve<W, WF, S, H, F, B, E>(listener: TcpListener, wrap: W, handler: H) -> io::Error
where
    W: Fn(TcpStream) -> WF + Clone + Send + 'static,
    WF: Future<Output = io::Result<S>> + Send,
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    H: Fn(Request<Incoming>) -> F + Clone + Send + 'static,
    F: Future<Output = Result<Response<B>, E>> + Send + 'static,
    B: Body + Send + 'static,
    B::Data: Send,
    B::Error: Into<BoxError>,
    E: Into<BoxError>,
{
    loop {
        let stream = match listener.accept().await {
            Ok((stream, _)) => stream,
            Err(e) => return e,
        };
        let (wrap, handler) = (wrap.clone(), handler.clone());
        tokio::spawn(async move {
            let Ok(stream) = wrap(stream).await else {
                return;
            };
            // A client that goes away mid-request is no error of the server's.
            let _ = http1::Builder::new()
                .serve_connection(TokioIo::new(stream), service_fn(handler))
                .await;
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http_body_util::{BodyExt, Empty, Full};
    use hyper::body::Bytes;
    use hyper_util::client::legacy::Client;
    use hyper_util::rt::TokioExecutor;
    use std::convert::Infallible;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Arc;

    #[tokio::test]
    async fn every_request_reaches_the_handler_and_its_answer_comes_back() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/", listener.local_addr().unwrap());
        let calls = Arc::new(AtomicUsize::new(0));
        let counted = calls.clone();
        tokio::spawn(serve(listener, plain, move |req: Request<Incoming>| {
            let n = counted.fetch_add(1, Ordering::SeqCst) + 1;
            async move { Ok::<_, Infallible>(Response::new(Full::new(Bytes::from(format!("{} {n}", req.method()))))) }
        }));
        let client: Client<_, Empty<Bytes>> = Client::builder(TokioExecutor::new()).build_http();
        for n in 1..=3 {
            let response = client.get(url.parse().unwrap()).await.unwrap();
            let body = response.into_body().collect().await.unwrap().to_bytes();
            assert_eq!(body, format!("GET {n}"));
        }
        assert_eq!(calls.load(Ordering::SeqCst), 3);
    }
}
