//! One Lambda execution environment: the Runtime API on loopback (what the function polls
//! for events and posts answers to) and the function's process, started under the CPU
//! quota Lambda gives its memory size.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use connectors_infra::loopback;
use http_body_util::{BodyExt, Full};
use hyper::body::{Bytes, Incoming};
use hyper::{Request, Response};
use serde_json::Value;
use tokio::sync::{mpsc, Mutex};

type Body = Full<Bytes>;

fn respond(status: u16, body: impl Into<Bytes>) -> Response<Body> {
    Response::builder().status(status).body(Full::new(body.into())).unwrap()
}

/// The answer to a function's `GET …/invocation/next`: the event and its headers.
fn next_invocation(id: &str, payload: String) -> Response<Body> {
    let deadline = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis()
        + 30_000;
    let mut r = respond(200, payload);
    let h = r.headers_mut();
    h.insert("lambda-runtime-aws-request-id", id.parse().unwrap());
    h.insert("lambda-runtime-deadline-ms", deadline.to_string().parse().unwrap());
    h.insert(
        "lambda-runtime-invoked-function-arn",
        "arn:aws:lambda:us-east-1:123456789012:function:bench".parse().unwrap(),
    );
    h.insert(
        "lambda-runtime-trace-id",
        "Root=1-00000000-000000000000000000000000".parse().unwrap(),
    );
    r
}

/// The CPU Lambda gives a memory size: one vCPU at 1,769 MB, in proportion below
/// (quota = period × MB / 1,769), as a cgroup v1 `cpu` group. `None` where the controller
/// is not mounted or not writable: the process then runs unthrottled, and the table says so.
pub struct CpuShare {
    pub mb: u32,
    procs: Option<PathBuf>,
}

const CGROUP_CPU: &str = "/sys/fs/cgroup/cpu";
const PERIOD_US: u64 = 100_000;

impl CpuShare {
    pub fn new(mb: u32) -> CpuShare {
        let dir = Path::new(CGROUP_CPU).join(format!("connectors-bench/mb-{mb}"));
        let quota = PERIOD_US * u64::from(mb) / 1769;
        let made = std::fs::create_dir_all(&dir)
            .and_then(|_| std::fs::write(dir.join("cpu.cfs_period_us"), PERIOD_US.to_string()))
            .and_then(|_| std::fs::write(dir.join("cpu.cfs_quota_us"), quota.to_string()));
        match made {
            Ok(()) => CpuShare {
                mb,
                procs: Some(dir.join("cgroup.procs")),
            },
            Err(e) => {
                eprintln!("no CPU quota for {mb} MB ({}: {e}): running unthrottled", dir.display());
                CpuShare { mb, procs: None }
            }
        }
    }

    pub fn enforced(&self) -> bool {
        self.procs.is_some()
    }

    /// The command that runs `binary` inside this group: a shell puts itself in the group
    /// and then becomes the binary (`exec`), so not one instruction runs outside it.
    fn command(&self, binary: &Path) -> tokio::process::Command {
        match &self.procs {
            Some(procs) => {
                let mut cmd = tokio::process::Command::new("/bin/sh");
                cmd.arg("-c")
                    .arg("echo $$ > \"$1\" && exec \"$2\"")
                    .arg("sh")
                    .arg(procs)
                    .arg(binary);
                cmd
            }
            None => tokio::process::Command::new(binary),
        }
    }
}

/// What the function posted back for one invocation.
struct Answer {
    at: Instant,
    body: Value,
}

/// The Runtime API of one execution environment.
struct RuntimeApi {
    addr: SocketAddr,
    events: mpsc::Sender<(String, String)>,
    answers: Mutex<mpsc::Receiver<Answer>>,
    first_next: Arc<std::sync::Mutex<Option<Instant>>>,
    last_answer_at: std::sync::Mutex<Option<Instant>>,
}

impl RuntimeApi {
    async fn start() -> RuntimeApi {
        let listener = tokio::net::TcpListener::bind(SocketAddr::from(([127, 0, 0, 1], 0)))
            .await
            .unwrap();
        let addr = listener.local_addr().unwrap();
        let (events, inbox) = mpsc::channel::<(String, String)>(1);
        let (answered, answers) = mpsc::channel::<Answer>(16);
        let inbox = Arc::new(Mutex::new(inbox));
        let first_next = Arc::new(std::sync::Mutex::new(None));
        let seen = first_next.clone();
        tokio::spawn(loopback::serve(
            listener,
            loopback::plain,
            move |req: Request<Incoming>| {
                let (inbox, answered, seen) = (inbox.clone(), answered.clone(), seen.clone());
                async move {
                    if req.uri().path().ends_with("/invocation/next") {
                        seen.lock().unwrap().get_or_insert(Instant::now());
                        let Some((id, payload)) = inbox.lock().await.recv().await else {
                            return Ok::<_, hyper::Error>(respond(500, "shutting down"));
                        };
                        return Ok(next_invocation(&id, payload));
                    }
                    let at = Instant::now();
                    let bytes = req
                        .into_body()
                        .collect()
                        .await
                        .map(|b| b.to_bytes())
                        .unwrap_or_default();
                    let body = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
                    let _ = answered.send(Answer { at, body }).await;
                    Ok(respond(202, "{}"))
                }
            },
        ));
        RuntimeApi {
            addr,
            events,
            answers: Mutex::new(answers),
            first_next,
            last_answer_at: std::sync::Mutex::new(None),
        }
    }

    /// One invocation: hands the event over and waits for the answer.
    async fn invoke(&self, payload: &Value) -> (Duration, Value) {
        let sent = Instant::now();
        self.events
            .send((uuid::Uuid::new_v4().to_string(), payload.to_string()))
            .await
            .unwrap();
        let answer = tokio::time::timeout(Duration::from_secs(30), self.answers.lock().await.recv())
            .await
            .expect("function answered in time")
            .expect("function alive");
        *self.last_answer_at.lock().unwrap() = Some(answer.at);
        (answer.at - sent, answer.body)
    }
}

/// A function process with its own Runtime API: one execution environment.
pub struct Process {
    child: tokio::process::Child,
    api: RuntimeApi,
    spawned: Instant,
}

impl Process {
    /// Starts `binary` as Lambda would (`AWS_LAMBDA_RUNTIME_API` and the usual variables),
    /// inside `share`'s CPU quota.
    pub async fn spawn(binary: &Path, function: &str, share: &CpuShare, env: &HashMap<String, String>) -> Process {
        let api = RuntimeApi::start().await;
        let mut cmd = share.command(binary);
        cmd.env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env("AWS_LAMBDA_RUNTIME_API", api.addr.to_string())
            .env("AWS_LAMBDA_FUNCTION_NAME", function)
            .env("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", share.mb.to_string())
            .env("AWS_LAMBDA_FUNCTION_VERSION", "$LATEST")
            .env("AWS_LAMBDA_LOG_GROUP_NAME", format!("/aws/lambda/{function}"))
            .env("AWS_LAMBDA_LOG_STREAM_NAME", "bench")
            .env("RUST_LOG", "off")
            .envs(env)
            .kill_on_drop(true);
        // `BENCH_LOG_DIR`: each function's logs (at `info`) appended to <dir>/<function>.log.
        match std::env::var("BENCH_LOG_DIR") {
            Ok(dir) => {
                let log = std::fs::OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(Path::new(&dir).join(format!("{function}.log")))
                    .expect("BENCH_LOG_DIR is a writable directory");
                cmd.env("RUST_LOG", "info").stdout(log.try_clone().unwrap()).stderr(log);
            }
            Err(_) => {
                cmd.stdout(std::process::Stdio::null())
                    .stderr(std::process::Stdio::null());
            }
        }
        let spawned = Instant::now();
        let child = cmd
            .spawn()
            .unwrap_or_else(|e| panic!("spawn {}: {e}", binary.display()));
        Process { child, api, spawned }
    }

    /// Process start → first `GET /next`: the INIT phase.
    pub async fn init_time(&self) -> Duration {
        loop {
            if let Some(at) = *self.api.first_next.lock().unwrap() {
                return at - self.spawned;
            }
            tokio::time::sleep(Duration::from_micros(200)).await;
        }
    }

    /// One invocation: its duration (event handed over → answer posted) and the answer.
    pub async fn invoke(&self, payload: &Value) -> (Duration, Value) {
        self.api.invoke(payload).await
    }

    /// Process start → the first answer: init, handshakes and the first invocation.
    pub async fn cold_first_answer(&self, payload: &Value) -> (Duration, Duration, Value) {
        let (_, answer) = self.api.invoke(payload).await;
        let at = self.api.last_answer_at.lock().unwrap().expect("answered");
        (at - self.spawned, self.init_time().await, answer)
    }

    /// CPU time the process has used so far (`/proc/<pid>/schedstat`, nanoseconds).
    pub fn cpu_time(&self) -> Duration {
        let stat = std::fs::read_to_string(format!("/proc/{}/schedstat", self.child.id().unwrap())).unwrap_or_default();
        Duration::from_nanos(stat.split_whitespace().next().and_then(|n| n.parse().ok()).unwrap_or(0))
    }

    pub fn peak_rss_kib(&self) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id().unwrap())).unwrap_or_default();
        status
            .lines()
            .find(|l| l.starts_with("VmHWM:"))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|n| n.parse().ok())
            .unwrap_or(0)
    }
}
