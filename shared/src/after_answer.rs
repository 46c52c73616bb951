//! Work a request leaves for after its answer: publishing a committed write's events and
//! clearing their outbox records, which the answer depends on neither.
//!
//! Lambda freezes the environment once the runtime *and every extension* have asked for
//! the next event, and `lambda_runtime` asks right after posting the response, so a task
//! merely spawned would be frozen mid-call. Inside Lambda a write function therefore
//! registers an internal extension ([`register`], from [`crate::http::run_function`]) and
//! runs its handler under a runtime layer ([`run`]) that collects each invocation's
//! deferred work and starts it once the answer is posted. On each invocation the
//! extension waits until that work is done, or until the invocation's deadline is near:
//! then the work still running is aborted, and what it did not finish stays in the
//! outbox for the sweeper, as when a process dies after its commit. That time is billed,
//! and the environment takes no other request meanwhile.
//!
//! Everywhere else (tests, the dev server, a runtime without the Extensions API) nothing
//! collects deferred work and [`defer`] runs it at once, before the answer: the service
//! behaves exactly as it did before this module.

use std::collections::{HashMap, HashSet};
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use lambda_http::lambda_runtime::{tower, LambdaInvocation};
use lambda_http::Error as BoxError;
use tokio::sync::Notify;
use tokio::task::JoinSet;
use tokio::time::Instant;
use tracing::Instrument;

type Work = Pin<Box<dyn Future<Output = ()> + Send + 'static>>;

/// How long before the invocation's deadline the work still running is aborted: Lambda
/// must get the extension's next-event request before it times the invocation out.
pub const ABORT_MARGIN: Duration = Duration::from_millis(500);

/// The work one request deferred, collected while it runs.
#[derive(Clone, Default)]
struct Deferred(Arc<Mutex<Vec<Work>>>);

impl Deferred {
    fn take(&self) -> Vec<Work> {
        std::mem::take(&mut *self.0.lock().unwrap_or_else(|e| e.into_inner()))
    }
}

tokio::task_local! {
    /// Where the current request's deferred work goes (set by [`Tracker::collect`]).
    static DEFERRED: Deferred;
}

/// Whether the current request collects deferred work: if not, [`defer`] runs it now.
pub fn collecting() -> bool {
    DEFERRED.try_with(|_| ()).is_ok()
}

/// Runs `work` after the current request's answer if the request collects deferred work
/// (inside Lambda, with the extension registered), else now. The work keeps the tracing
/// span it was deferred in, so its logs carry the request's fields.
pub async fn defer(work: impl Future<Output = ()> + Send + 'static) {
    let work = work.instrument(tracing::Span::current());
    match DEFERRED.try_with(Deferred::clone) {
        Ok(deferred) => deferred
            .0
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(Box::pin(work)),
        Err(_) => work.await,
    }
}

/// One invocation's deferred work, once its answer is posted: one task running the
/// pieces in the order they were deferred (a connect over an expired row announces the
/// expiry before the new connection).
struct Answered {
    work: JoinSet<()>,
}

/// The deferred work of each answered invocation, by Lambda request id, until the
/// extension has waited for it ([`Tracker::settle`]).
#[derive(Default)]
pub struct Tracker {
    state: Mutex<TrackerState>,
    changed: Notify,
}

#[derive(Default)]
struct TrackerState {
    answered: HashMap<String, Answered>,
    /// Invocations the extension stopped waiting for before they answered: their work is
    /// dropped unstarted when it comes (its records stay for the sweeper).
    abandoned: HashSet<String>,
}

/// Hands an invocation's deferred work to the tracker when dropped: also when its future
/// is dropped or panics, so the extension never waits for an answer that will not come.
struct HandOver {
    tracker: Arc<Tracker>,
    request_id: String,
    deferred: Deferred,
}

impl Drop for HandOver {
    fn drop(&mut self) {
        self.tracker
            .answered(std::mem::take(&mut self.request_id), self.deferred.take());
    }
}

impl Tracker {
    /// Runs one invocation (`invocation`: the handler and the posting of its answer),
    /// collecting the work it defers; once it is over, that work starts and
    /// [`Tracker::settle`] can wait for it.
    pub async fn collect<F: Future>(self: Arc<Self>, request_id: String, invocation: F) -> F::Output {
        let hand_over = HandOver {
            tracker: self,
            request_id,
            deferred: Deferred::default(),
        };
        DEFERRED.scope(hand_over.deferred.clone(), invocation).await
    }

    /// Starts `work`, the deferred work of the invocation that has just answered.
    fn answered(&self, request_id: String, work: Vec<Work>) {
        let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        if state.abandoned.remove(&request_id) {
            if !work.is_empty() {
                tracing::warn!(
                    request_id,
                    "answered after the deadline: its after-answer work is left for the sweeper"
                );
            }
            return;
        }
        let mut tasks = JoinSet::new();
        if !work.is_empty() {
            tasks.spawn(async move {
                for piece in work {
                    piece.await;
                }
            });
        }
        // An id the extension never waited for (it was not running): forget what is done.
        state.answered.retain(|_, a| {
            while a.work.try_join_next().is_some() {}
            !a.work.is_empty()
        });
        state.answered.insert(request_id, Answered { work: tasks });
        drop(state);
        self.changed.notify_waiters();
    }

    /// Waits until invocation `request_id` has answered (at most until its `deadline`)
    /// and its deferred work is done (at most until [`ABORT_MARGIN`] before the
    /// deadline: then the work still running is aborted, and its outbox records stay for
    /// the sweeper). What happened is logged; this never fails, because the extension
    /// must ask for the next event whatever happened.
    pub async fn settle(&self, request_id: &str, deadline: Instant) -> Settled {
        let answered = loop {
            let changed = self.changed.notified();
            tokio::pin!(changed);
            changed.as_mut().enable();
            {
                let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
                if let Some(a) = state.answered.remove(request_id) {
                    break a;
                }
                if Instant::now() >= deadline {
                    state.abandoned.insert(request_id.to_string());
                    tracing::warn!(request_id, "the handler had not answered by the deadline");
                    return Settled::NotAnswered;
                }
            }
            let _ = tokio::time::timeout_at(deadline, changed).await;
        };
        let mut work = answered.work;
        let all_done = async {
            while let Some(done) = work.join_next().await {
                if done.is_err_and(|e| e.is_panic()) {
                    tracing::error!(
                        request_id,
                        "after-answer work panicked; its records stay for the sweeper"
                    );
                }
            }
        };
        let cut_at = deadline.checked_sub(ABORT_MARGIN).unwrap_or(deadline);
        if tokio::time::timeout_at(cut_at, all_done).await.is_ok() {
            return Settled::Done;
        }
        work.abort_all();
        while work.join_next().await.is_some() {}
        tracing::warn!(
            request_id,
            "after-answer work cut at the deadline; its outbox records stay for the sweeper"
        );
        Settled::Cut
    }
}

/// How an invocation's after-answer work ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Settled {
    /// All of it finished.
    Done,
    /// It was still running [`ABORT_MARGIN`] before the deadline and was aborted.
    Cut,
    /// The invocation had not answered by the deadline: its work, when it comes, is
    /// dropped unstarted.
    NotAnswered,
}

/// The instant of `deadline_ms` (milliseconds since the epoch, as Lambda gives a
/// deadline) on this process's monotonic clock.
pub fn instant_of(deadline_ms: u64) -> Instant {
    let now_ms = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64);
    Instant::now() + Duration::from_millis(deadline_ms.saturating_sub(now_ms))
}

/// A runtime layer that runs each invocation — the handler and the posting of its
/// answer — under [`Tracker::collect`], so that its deferred work starts only once the
/// caller has the answer, and every invocation (even one the handler never saw, such as
/// an event `lambda_http` could not read) gets an entry the extension can wait for.
struct CollectLayer(Arc<Tracker>);

impl<S> tower::Layer<S> for CollectLayer {
    type Service = Collecting<S>;

    fn layer(&self, inner: S) -> Collecting<S> {
        Collecting {
            inner,
            tracker: self.0.clone(),
        }
    }
}

struct Collecting<S> {
    inner: S,
    tracker: Arc<Tracker>,
}

impl<S> tower::Service<LambdaInvocation> for Collecting<S>
where
    S: tower::Service<LambdaInvocation, Response = (), Error = BoxError>,
    S::Future: Send + 'static,
{
    type Response = ();
    type Error = BoxError;
    type Future = Pin<Box<dyn Future<Output = Result<(), BoxError>> + Send>>;

    fn poll_ready(&mut self, cx: &mut std::task::Context<'_>) -> std::task::Poll<Result<(), BoxError>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, invocation: LambdaInvocation) -> Self::Future {
        let request_id = invocation.context.request_id.clone();
        let served = self.inner.call(invocation);
        Box::pin(self.tracker.clone().collect(request_id, served))
    }
}

/// Serves `handler` as `lambda_http::run` does, with each invocation's deferred work
/// collected in `tracker` ([`CollectLayer`]), beside `extension` (from [`register`]). An
/// error of either ends the process: Lambda then starts a fresh environment.
pub async fn run<S, R, E>(
    handler: S,
    tracker: Arc<Tracker>,
    extension: impl Future<Output = Result<(), lambda_extension::Error>>,
) -> Result<(), BoxError>
where
    S: tower::Service<lambda_http::Request, Response = R, Error = E> + Send + 'static,
    S::Future: Send + 'static,
    R: lambda_http::IntoResponse + 'static,
    E: std::fmt::Debug + Into<lambda_http::lambda_runtime::Diagnostic> + 'static,
{
    let runtime = lambda_http::lambda_runtime::Runtime::new(lambda_http::Adapter::from(handler))
        .layer(lambda_http::lambda_runtime::layers::TracingLayer::new())
        .layer(CollectLayer(tracker));
    let extension = async {
        extension.await.inspect_err(|e| {
            tracing::error!(failure = %e, "the after-answer extension stopped; the function exits");
        })
    };
    tokio::try_join!(runtime.run(), extension).map(|_| ())
}

/// Registers the internal extension that, on each invocation, waits for its after-answer
/// work in `tracker` ([`Tracker::settle`]) before asking for the next event. Must finish
/// before the runtime first asks for an event (Lambda closes registration then); the
/// returned future runs the extension and must be polled beside the runtime.
pub async fn register(
    tracker: Arc<Tracker>,
) -> Result<impl Future<Output = Result<(), lambda_extension::Error>>, lambda_extension::Error> {
    use lambda_extension::{Extension, LambdaEvent, NextEvent};

    // The crate's client panics without it.
    if std::env::var_os("AWS_LAMBDA_RUNTIME_API").is_none() {
        return Err("AWS_LAMBDA_RUNTIME_API is not set".into());
    }

    let settle = lambda_extension::service_fn(move |event: LambdaEvent| {
        let tracker = tracker.clone();
        async move {
            // Internal extensions get INVOKE events only. Never an error: the extension
            // must ask for the next event whatever happened (an error would end it).
            if let NextEvent::Invoke(invoke) = event.next {
                tracker.settle(&invoke.request_id, instant_of(invoke.deadline_ms)).await;
            }
            Ok::<(), lambda_extension::Error>(())
        }
    });
    let extension = Extension::new()
        .with_events(&["INVOKE"])
        .with_extension_name("after-answer")
        .with_events_processor(settle)
        .register()
        .await?;
    Ok(extension.run())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};

    fn counter() -> Arc<AtomicUsize> {
        Arc::new(AtomicUsize::new(0))
    }

    #[tokio::test]
    async fn without_a_collector_deferred_work_runs_before_defer_returns() {
        let done = counter();
        let d = done.clone();
        assert!(!collecting());
        defer(async move {
            d.fetch_add(1, Ordering::SeqCst);
        })
        .await;
        assert_eq!(done.load(Ordering::SeqCst), 1);
    }

    #[tokio::test(start_paused = true)]
    async fn collected_work_starts_after_the_answer_and_settle_waits_for_it() {
        let tracker = Arc::new(Tracker::default());
        let done = counter();
        let d = done.clone();
        let answer = tracker
            .clone()
            .collect("req-1".into(), async {
                assert!(collecting());
                defer(async move {
                    tokio::time::sleep(Duration::from_millis(300)).await;
                    d.fetch_add(1, Ordering::SeqCst);
                })
                .await;
                "answer"
            })
            .await;
        assert_eq!(answer, "answer");
        assert_eq!(done.load(Ordering::SeqCst), 0, "the work waited for the answer");
        let settled = tracker.settle("req-1", Instant::now() + Duration::from_secs(5)).await;
        assert_eq!(settled, Settled::Done);
        assert_eq!(done.load(Ordering::SeqCst), 1);
    }

    #[tokio::test(start_paused = true)]
    async fn settle_may_start_before_the_handler_answers() {
        let tracker = Arc::new(Tracker::default());
        let done = counter();
        let waiting = {
            let tracker = tracker.clone();
            tokio::spawn(async move { tracker.settle("req-2", Instant::now() + Duration::from_secs(5)).await })
        };
        tokio::time::sleep(Duration::from_millis(100)).await;
        let d = done.clone();
        tracker
            .clone()
            .collect("req-2".into(), async {
                defer(async move {
                    d.fetch_add(1, Ordering::SeqCst);
                })
                .await;
            })
            .await;
        assert_eq!(waiting.await.unwrap(), Settled::Done);
        assert_eq!(done.load(Ordering::SeqCst), 1);
    }

    #[tokio::test(start_paused = true)]
    async fn work_still_running_at_the_deadline_is_aborted() {
        let tracker = Arc::new(Tracker::default());
        let finished = counter();
        let f = finished.clone();
        tracker
            .clone()
            .collect("req-3".into(), async {
                defer(async move {
                    tokio::time::sleep(Duration::from_secs(60)).await;
                    f.fetch_add(1, Ordering::SeqCst);
                })
                .await;
            })
            .await;
        let settled = tracker.settle("req-3", Instant::now() + Duration::from_secs(2)).await;
        assert_eq!(settled, Settled::Cut);
        tokio::time::sleep(Duration::from_secs(120)).await;
        assert_eq!(finished.load(Ordering::SeqCst), 0, "aborted work never finishes");
    }

    #[tokio::test(start_paused = true)]
    async fn a_handler_that_never_answers_does_not_hold_the_extension_past_the_deadline() {
        let tracker = Tracker::default();
        let settled = tracker.settle("req-4", Instant::now() + Duration::from_secs(1)).await;
        assert_eq!(settled, Settled::NotAnswered);
    }

    #[tokio::test(start_paused = true)]
    async fn a_dropped_or_panicking_handler_still_counts_as_answered() {
        let tracker = Arc::new(Tracker::default());
        let t = tracker.clone();
        let panicked = tokio::spawn(async move {
            t.clone()
                .collect("req-5".into(), async {
                    defer(async {}).await;
                    panic!("handler bug");
                })
                .await
        })
        .await;
        assert!(panicked.is_err());
        let settled = tracker.settle("req-5", Instant::now() + Duration::from_secs(1)).await;
        assert_eq!(
            settled,
            Settled::Done,
            "the panic handed its work over; nothing waited for it"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn ids_the_extension_never_waited_for_are_forgotten_once_done() {
        let tracker = Arc::new(Tracker::default());
        tracker.clone().collect("never-settled".into(), async {}).await;
        tracker.clone().collect("next".into(), async {}).await;
        let ids: Vec<String> = tracker.state.lock().unwrap().answered.keys().cloned().collect();
        assert_eq!(ids, vec!["next".to_string()]);
    }

    #[tokio::test(start_paused = true)]
    async fn work_of_an_invocation_that_answers_after_the_deadline_never_starts() {
        let tracker = Arc::new(Tracker::default());
        let settled = tracker.settle("late", Instant::now() + Duration::from_secs(1)).await;
        assert_eq!(settled, Settled::NotAnswered);
        let ran = counter();
        let r = ran.clone();
        tracker
            .clone()
            .collect("late".into(), async {
                defer(async move {
                    r.fetch_add(1, Ordering::SeqCst);
                })
                .await;
            })
            .await;
        tokio::time::sleep(Duration::from_secs(5)).await;
        assert_eq!(ran.load(Ordering::SeqCst), 0, "left for the sweeper, not run unwatched");
        assert!(tracker.state.lock().unwrap().answered.is_empty());
    }

    #[tokio::test(start_paused = true)]
    async fn an_invocation_s_pieces_run_in_the_order_they_were_deferred() {
        let tracker = Arc::new(Tracker::default());
        let order = Arc::new(Mutex::new(Vec::new()));
        let (first, second) = (order.clone(), order.clone());
        tracker
            .clone()
            .collect("ordered".into(), async {
                defer(async move {
                    tokio::time::sleep(Duration::from_millis(200)).await;
                    first.lock().unwrap().push("expired");
                })
                .await;
                defer(async move {
                    second.lock().unwrap().push("connected");
                })
                .await;
            })
            .await;
        assert_eq!(
            tracker.settle("ordered", Instant::now() + Duration::from_secs(5)).await,
            Settled::Done
        );
        assert_eq!(*order.lock().unwrap(), ["expired", "connected"]);
    }

    #[test]
    fn a_deadline_in_epoch_milliseconds_becomes_an_instant() {
        let now_ms = SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_millis() as u64;
        let left = instant_of(now_ms + 3_000).saturating_duration_since(Instant::now());
        assert!(
            left <= Duration::from_millis(3_000) && left > Duration::from_millis(2_500),
            "{left:?}"
        );
        assert_eq!(
            instant_of(now_ms.saturating_sub(10_000)).saturating_duration_since(Instant::now()),
            Duration::ZERO
        );
    }
}
