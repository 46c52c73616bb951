//! Work a request leaves for after its answer: publishing a committed write's events and
//! clearing their outbox records, which the answer depends on neither.
//!
//! Lambda freezes the environment once the runtime *and every extension* have asked for
//! the next event, and `lambda_runtime` asks right after posting the response, so a task
//! merely spawned would be frozen mid-call. Inside Lambda a write function therefore
//! registers an internal extension ([`crate::http::run_function`]): on each invocation it waits until the
//! handler has answered and the work the request deferred is done, or until the
//! invocation's deadline is near — then the work still running is aborted, and what it
//! did not finish stays in the outbox for the sweeper, as if the environment had died.
//! That time is billed, and the environment takes no other request meanwhile.
//!
//! Everywhere else (tests, the dev server, a runtime without the Extensions API) nothing
//! collects deferred work and [`defer`] runs it at once, before the answer: the service
//! behaves exactly as it did before this module.

use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

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

/// One invocation's deferred work, once its handler has answered.
struct Answered {
    work: JoinSet<()>,
}

/// The deferred work of each answered request, by Lambda request id, until the extension
/// has waited for it ([`Tracker::settle`]).
#[derive(Default)]
pub struct Tracker {
    answered: Mutex<HashMap<String, Answered>>,
    changed: Notify,
}

/// Hands a request's deferred work to the tracker when dropped: also when the handler's
/// future is dropped or panics, so the extension never waits for an answer that will
/// not come.
struct HandOver<'a> {
    tracker: &'a Tracker,
    request_id: String,
    deferred: Deferred,
}

impl Drop for HandOver<'_> {
    fn drop(&mut self) {
        self.tracker
            .answered(std::mem::take(&mut self.request_id), self.deferred.take());
    }
}

impl Tracker {
    /// Serves one request (`handler`) collecting the work it defers; once it has
    /// answered, that work starts and [`Tracker::settle`] can wait for it.
    pub async fn collect<F: Future>(&self, request_id: String, handler: F) -> F::Output {
        let hand_over = HandOver {
            tracker: self,
            request_id,
            deferred: Deferred::default(),
        };
        DEFERRED.scope(hand_over.deferred.clone(), handler).await
    }

    /// Starts `work`, the deferred work of the request that has just answered.
    fn answered(&self, request_id: String, work: Vec<Work>) {
        let mut tasks = JoinSet::new();
        for w in work {
            tasks.spawn(w);
        }
        let mut answered = self.answered.lock().unwrap_or_else(|e| e.into_inner());
        // An id the extension never waited for (it was not running): forget what is done.
        answered.retain(|_, a| {
            while a.work.try_join_next().is_some() {}
            !a.work.is_empty()
        });
        answered.insert(request_id, Answered { work: tasks });
        drop(answered);
        self.changed.notify_waiters();
    }

    /// Waits until request `request_id` has answered and its deferred work is done, or
    /// until `deadline`: then the work still running is aborted (its outbox records stay
    /// for the sweeper). What happened is logged; this never fails, because the extension
    /// must ask for the next event whatever happened.
    pub async fn settle(&self, request_id: &str, deadline: Instant) -> Settled {
        let answered = loop {
            let changed = self.changed.notified();
            tokio::pin!(changed);
            changed.as_mut().enable();
            if let Some(a) = self
                .answered
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .remove(request_id)
            {
                break a;
            }
            if tokio::time::timeout_at(deadline, changed).await.is_err() {
                tracing::warn!(request_id, "the handler had not answered by the deadline");
                return Settled::NotAnswered;
            }
        };
        let mut work = answered.work;
        let all_done = async {
            while let Some(done) = work.join_next().await {
                if let Err(e) = done {
                    if e.is_panic() {
                        tracing::error!(
                            request_id,
                            "after-answer work panicked; its records stay for the sweeper"
                        );
                    }
                }
            }
        };
        if tokio::time::timeout_at(deadline, all_done).await.is_ok() {
            return Settled::Done;
        }
        let left = work.len();
        work.abort_all();
        while work.join_next().await.is_some() {}
        tracing::warn!(
            request_id,
            left,
            "after-answer work cut at the deadline; its outbox records stay for the sweeper"
        );
        Settled::Cut { left }
    }
}

/// Registers the internal extension that, on each invocation, waits for its after-answer
/// work in `tracker` ([`Tracker::settle`]) before asking for the next event. Must finish
/// before the runtime first asks for an event (Lambda closes registration then); the
/// returned future runs the extension and must be polled beside the runtime.
pub async fn register(
    tracker: Arc<Tracker>,
) -> Result<impl Future<Output = Result<(), lambda_extension::Error>>, lambda_extension::Error> {
    use lambda_extension::{Extension, LambdaEvent, NextEvent};

    let settle = lambda_extension::service_fn(move |event: LambdaEvent| {
        let tracker = tracker.clone();
        async move {
            // Internal extensions get INVOKE events only. Never an error: the extension
            // must ask for the next event whatever happened (an error would end it).
            if let NextEvent::Invoke(invoke) = event.next {
                tracker.settle(&invoke.request_id, abort_at(invoke.deadline_ms)).await;
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

/// How an invocation's after-answer work ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Settled {
    /// All of it finished.
    Done,
    /// `left` tasks were still running at the deadline and were aborted.
    Cut { left: usize },
    /// The handler had not answered by the deadline (nothing was started).
    NotAnswered,
}

/// The instant `deadline_ms` (milliseconds since the epoch, as Lambda gives a deadline)
/// less [`ABORT_MARGIN`].
pub fn abort_at(deadline_ms: u64) -> Instant {
    let now_ms = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64);
    Instant::now() + Duration::from_millis(deadline_ms.saturating_sub(now_ms)).saturating_sub(ABORT_MARGIN)
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
        let tracker = Tracker::default();
        let done = counter();
        let d = done.clone();
        let answer = tracker
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
        let tracker = Tracker::default();
        let finished = counter();
        let f = finished.clone();
        tracker
            .collect("req-3".into(), async {
                defer(async move {
                    tokio::time::sleep(Duration::from_secs(60)).await;
                    f.fetch_add(1, Ordering::SeqCst);
                })
                .await;
            })
            .await;
        let settled = tracker.settle("req-3", Instant::now() + Duration::from_secs(2)).await;
        assert_eq!(settled, Settled::Cut { left: 1 });
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
            t.collect("req-5".into(), async {
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
        let tracker = Tracker::default();
        tracker.collect("never-settled".into(), async {}).await;
        tracker.collect("next".into(), async {}).await;
        let ids: Vec<String> = tracker.answered.lock().unwrap().keys().cloned().collect();
        assert_eq!(ids, vec!["next".to_string()]);
    }

    #[test]
    fn the_abort_instant_keeps_the_margin_before_the_deadline() {
        let now_ms = SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_millis() as u64;
        let left = abort_at(now_ms + 3_000).saturating_duration_since(Instant::now());
        assert!(
            left <= Duration::from_millis(2_500) && left > Duration::from_millis(2_000),
            "{left:?}"
        );
        assert_eq!(
            abort_at(now_ms.saturating_sub(10_000)).saturating_duration_since(Instant::now()),
            Duration::ZERO
        );
    }
}
