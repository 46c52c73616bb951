//! One Lambda execution environment: the Runtime API on loopback (what the function polls
//! for events and posts answers to) and the function's process, started under the CPU
//! quota Lambda gives its memory size.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use connectors_infra::runtime_api::RuntimeApi;
use serde_json::Value;

/// The CPU Lambda gives a memory size: one vCPU at 1,769 MB, in proportion below
/// (quota = period × MB / 1,769), as cgroup v1 `cpu` groups. Every process gets a fresh
/// group of its own: CFS bandwidth is accounted per group, so a process started in a
/// group its predecessor had throttled would begin by waiting out the rest of that
/// period, and its cold start would measure the predecessor. Without a mounted, writable
/// controller the processes run unthrottled, and the table says so.
pub struct CpuShare {
    pub mb: u32,
    /// `connectors-bench/mb-<MB>` under the controller; `None`: no quota possible.
    base: Option<PathBuf>,
    made: std::sync::Mutex<Vec<PathBuf>>,
}

const CGROUP_CPU: &str = "/sys/fs/cgroup/cpu";
const PERIOD_US: u64 = 100_000;

impl CpuShare {
    pub fn new(mb: u32) -> CpuShare {
        let base = Path::new(CGROUP_CPU).join(format!("connectors-bench/mb-{mb}"));
        let share = CpuShare {
            mb,
            base: Some(base.clone()),
            made: Default::default(),
        };
        // One group made up front tells whether the controller takes groups at all.
        match share.fresh_group() {
            Ok(_) => share,
            Err(e) => {
                eprintln!(
                    "no CPU quota for {mb} MB ({}: {e}): running unthrottled",
                    base.display()
                );
                CpuShare {
                    mb,
                    base: None,
                    made: Default::default(),
                }
            }
        }
    }

    pub fn enforced(&self) -> bool {
        self.base.is_some()
    }

    /// A new group with this size's quota; its `cgroup.procs`.
    fn fresh_group(&self) -> std::io::Result<PathBuf> {
        static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
        let base = self.base.as_ref().expect("a quota");
        let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let dir = base.join(format!("p{}-{n}", std::process::id()));
        std::fs::create_dir_all(&dir)?;
        self.made.lock().unwrap().push(dir.clone());
        std::fs::write(dir.join("cpu.cfs_period_us"), PERIOD_US.to_string())?;
        let quota = PERIOD_US * u64::from(self.mb) / 1769;
        std::fs::write(dir.join("cpu.cfs_quota_us"), quota.to_string())?;
        Ok(dir.join("cgroup.procs"))
    }

    /// The command that runs `binary` inside a fresh group: a shell puts itself in the
    /// group and then becomes the binary (`exec`), so not one instruction runs outside it.
    fn command(&self, binary: &Path) -> tokio::process::Command {
        if self.base.is_none() {
            return tokio::process::Command::new(binary);
        }
        let procs = self.fresh_group().expect("a fresh cgroup (the first one was made)");
        let mut cmd = tokio::process::Command::new("/bin/sh");
        cmd.arg("-c")
            .arg("echo $$ > \"$1\" && exec \"$2\"")
            .arg("sh")
            .arg(procs)
            .arg(binary);
        cmd
    }
}

impl Drop for CpuShare {
    /// Removes the groups it made, their processes gone by now (a group still busy is
    /// left behind, empty soon after: harmless).
    fn drop(&mut self) {
        for dir in self.made.lock().unwrap().drain(..) {
            let _ = std::fs::remove_dir(dir);
        }
    }
}

/// One invocation, as the bench measures it.
pub struct Invoked {
    /// Event handed over → answer posted: what the caller waits for.
    pub answer: Duration,
    /// Event handed over → the invocation over (the runtime and every extension asked for
    /// the next event): what Lambda bills.
    pub busy: Duration,
    /// When the answer was posted.
    pub at: Instant,
    pub body: Value,
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
            if let Some(at) = self.api.first_poll() {
                return at - self.spawned;
            }
            tokio::time::sleep(Duration::from_micros(200)).await;
        }
    }

    /// One invocation: thaws the process, hands the event over, and once the invocation
    /// is over (the runtime and every extension asked for the next event) freezes the
    /// process as Lambda freezes the environment: a task still running then makes no
    /// progress until the next invocation.
    pub async fn invoke(&self, payload: &Value) -> Invoked {
        self.signal(libc::SIGCONT);
        let answer = self.api.invoke(payload).await;
        let settled = self.api.settled().await;
        self.signal(libc::SIGSTOP);
        Invoked {
            answer: answer.at - answer.sent,
            busy: settled - answer.sent,
            at: answer.at,
            body: answer.body,
        }
    }

    /// Process start → the first answer: init, handshakes and the first invocation; the
    /// INIT phase; the answer.
    pub async fn cold_first_answer(&self, payload: &Value) -> (Duration, Duration, Value) {
        let invoked = self.invoke(payload).await;
        let first_answer = invoked.at - self.spawned;
        (first_answer, self.init_time().await, invoked.body)
    }

    /// How many internal extensions the function registered.
    pub fn extensions(&self) -> usize {
        self.api.extensions()
    }

    fn signal(&self, signal: libc::c_int) {
        if let Some(pid) = self.child.id() {
            // SAFETY: kill(2) on our own child's pid; it has no memory effects here.
            unsafe {
                libc::kill(pid as libc::pid_t, signal);
            }
        }
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
