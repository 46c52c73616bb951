//! The Lambda Runtime API of one execution environment, on loopback: a function started
//! with `AWS_LAMBDA_RUNTIME_API` set to [`RuntimeApi::addr`] polls it for events
//! (`GET …/invocation/next`) and posts its answers back, as under Lambda. The bench times
//! the functions through it; a test drives `lambda_runtime` itself through it.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex as StdMutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use http_body_util::{BodyExt, Full};
use hyper::body::{Bytes, Incoming};
use hyper::{Request, Response};
use serde_json::Value;
use tokio::net::TcpListener;
use tokio::sync::{mpsc, Mutex};

use crate::loopback;

/// The deadline each invocation is given (the function holds its work to it).
const DEADLINE: Duration = Duration::from_secs(30);

/// How long [`RuntimeApi::invoke`] waits for an answer before it gives up.
const ANSWER_WITHIN: Duration = Duration::from_secs(60);

/// One invocation, as the Runtime API saw it.
pub struct Answer {
    /// When the event was handed over.
    pub sent: Instant,
    /// When the function posted its answer.
    pub at: Instant,
    pub body: Value,
}

pub struct RuntimeApi {
    pub addr: SocketAddr,
    events: mpsc::Sender<Value>,
    answers: Mutex<mpsc::Receiver<(Instant, Value)>>,
    first_poll: Arc<StdMutex<Option<Instant>>>,
}

impl RuntimeApi {
    pub async fn start() -> RuntimeApi {
        let listener = TcpListener::bind(SocketAddr::from(([127, 0, 0, 1], 0))).await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (events, inbox) = mpsc::channel::<Value>(1);
        let (answered, answers) = mpsc::channel(16);
        let inbox = Arc::new(Mutex::new(inbox));
        let first_poll = Arc::new(StdMutex::new(None));
        let polled = first_poll.clone();
        tokio::spawn(loopback::serve(
            listener,
            loopback::plain,
            move |req: Request<Incoming>| {
                let (inbox, answered, polled) = (inbox.clone(), answered.clone(), polled.clone());
                async move {
                    if req.uri().path().ends_with("/invocation/next") {
                        polled.lock().unwrap().get_or_insert(Instant::now());
                        return Ok::<_, hyper::Error>(match inbox.lock().await.recv().await {
                            Some(event) => next_invocation(&event),
                            None => respond(500, "shutting down".into()),
                        });
                    }
                    let at = Instant::now();
                    let bytes = req
                        .into_body()
                        .collect()
                        .await
                        .map(|b| b.to_bytes())
                        .unwrap_or_default();
                    let _ = answered
                        .send((at, serde_json::from_slice(&bytes).unwrap_or(Value::Null)))
                        .await;
                    Ok(respond(202, "{}".into()))
                }
            },
        ));
        RuntimeApi {
            addr,
            events,
            answers: Mutex::new(answers),
            first_poll,
        }
    }

    /// One invocation: hands `event` over and waits for the function's answer.
    pub async fn invoke(&self, event: &Value) -> Answer {
        let sent = Instant::now();
        self.events.send(event.clone()).await.expect("the Runtime API is up");
        let (at, body) = tokio::time::timeout(ANSWER_WITHIN, self.answers.lock().await.recv())
            .await
            .expect("the function answered in time")
            .expect("the Runtime API is up");
        Answer { sent, at, body }
    }

    /// When the function first asked for an event: the end of its INIT phase.
    pub fn first_poll(&self) -> Option<Instant> {
        *self.first_poll.lock().unwrap()
    }
}

fn respond(status: u16, body: Bytes) -> Response<Full<Bytes>> {
    Response::builder().status(status).body(Full::new(body)).unwrap()
}

/// The answer to `GET …/invocation/next`: the event, with the headers Lambda sends.
fn next_invocation(event: &Value) -> Response<Full<Bytes>> {
    let deadline = SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_millis() + DEADLINE.as_millis();
    let mut r = respond(200, event.to_string().into());
    let h = r.headers_mut();
    h.insert(
        "lambda-runtime-aws-request-id",
        uuid::Uuid::new_v4().to_string().parse().unwrap(),
    );
    h.insert("lambda-runtime-deadline-ms", deadline.to_string().parse().unwrap());
    h.insert(
        "lambda-runtime-invoked-function-arn",
        "arn:aws:lambda:us-east-1:123456789012:function:local".parse().unwrap(),
    );
    h.insert(
        "lambda-runtime-trace-id",
        "Root=1-00000000-000000000000000000000000".parse().unwrap(),
    );
    r
}
