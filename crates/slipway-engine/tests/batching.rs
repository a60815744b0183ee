//! Dynamic batching, per-model workers and admission control, on the real credit model:
//! requests that wait together run as one batch and get exactly their own answers; a request
//! whose values fail the model fails alone; a full queue refuses at once; a slow model does
//! not hold up a fast one. On one thread (a one-core server's network runtime), a quick
//! model's batches run on that thread, and a slow model keeps to its worker.

use std::sync::Arc;
use std::time::Duration;

use slipway_core::{CoreError, Model, Signature, Tensor, TensorData};
use slipway_engine::{Engine, EngineError, ModelConfig};

use slipway_testkit::{credit_row as row, load_credit as credit};

/// A model that refuses rows whose `age_in_years` is 13 (or, `panics`, panics on them), and
/// sleeps `delay` per batch.
struct Wrapped {
    inner: Arc<dyn Model>,
    delay: Duration,
    panics: bool,
}

impl Model for Wrapped {
    fn signature(&self) -> &Signature {
        self.inner.signature()
    }

    fn infer(&self, inputs: &[Tensor]) -> Result<Vec<Tensor>, CoreError> {
        std::thread::sleep(self.delay);
        let age = inputs.iter().find(|t| t.name == "age_in_years").unwrap();
        if let TensorData::Fp64(v) = &age.data
            && v.contains(&13.0)
        {
            assert!(!self.panics, "a bug in the model");
            return Err(CoreError::InvalidInput("age 13 is refused".into()));
        }
        self.inner.infer(inputs)
    }
}

fn wrapped(delay: Duration) -> slipway_runtime::Loaded {
    let mut l = credit();
    l.model = Arc::new(Wrapped {
        inner: l.model,
        delay,
        panics: false,
    });
    l
}

/// Sends `n` requests to `served` together (request `bad` with age 13) and checks that every
/// other one got exactly what the model answers for its row alone. Returns the error `bad`
/// got, and the largest batch any request ran in.
async fn together(
    engine: &Arc<Engine>,
    served: &Arc<slipway_engine::Served>,
    n: usize,
    bad: Option<usize>,
) -> (Option<EngineError>, usize) {
    let tasks: Vec<_> = (0..n)
        .map(|i| {
            let engine = Arc::clone(engine);
            let served = Arc::clone(served);
            let mut inputs = row(i);
            if Some(i) == bad {
                let age = inputs
                    .iter_mut()
                    .find(|t| t.name == "age_in_years")
                    .unwrap();
                age.data = TensorData::Fp64(vec![13.0]);
            }
            tokio::spawn(async move { engine.infer_timed(served, inputs).await })
        })
        .collect();
    let (mut refused, mut biggest) = (None, 0);
    for (i, t) in tasks.into_iter().enumerate() {
        match t.await.unwrap() {
            Err(e) if Some(i) == bad => refused = Some(e),
            result => {
                let (out, timing) = result.unwrap_or_else(|e| panic!("row {i}: {e}"));
                assert_eq!(out, served.model.infer(&row(i)).unwrap(), "row {i}");
                biggest = biggest.max(timing.batch_rows);
            }
        }
    }
    (refused, biggest)
}

/// A model that panics fails the request that made it panic, with an internal error, and
/// nothing else: its batch-mates are answered, and so is every request after it, whether the
/// batch ran on a worker or on the runtime's thread.
#[test]
fn a_panicking_model_fails_only_its_request_and_keeps_serving() {
    for multi in [true, false] {
        let runtime = if multi {
            tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .build()
                .unwrap()
        } else {
            tokio::runtime::Builder::new_current_thread()
                .build()
                .unwrap()
        };
        runtime.block_on(async {
            let engine = Arc::new(Engine::with_defaults(config(
                "instances=1,inline_budget_us=1000000",
            )));
            let mut l = credit();
            l.model = Arc::new(Wrapped {
                inner: l.model,
                delay: Duration::ZERO,
                panics: true,
            });
            engine.add("credit", "1", l);
            let served = engine.get("credit", None).unwrap();
            for round in 0..3 {
                let bad = (round == 1).then_some(5);
                let (refused, _) = together(&engine, &served, 16, bad).await;
                if bad.is_some() {
                    assert!(
                        matches!(&refused, Some(EngineError::Internal(m)) if m.contains("bug")),
                        "{refused:?}"
                    );
                }
            }
            if !multi {
                assert!(inline_runs(&served) > 0);
            }
        });
    }
}

fn config(settings: &str) -> ModelConfig {
    let mut c = ModelConfig::default();
    c.apply(settings).unwrap();
    c
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requests_waiting_together_run_as_one_batch_and_get_their_own_answers() {
    let engine = Arc::new(Engine::with_defaults(config(
        "instances=1,max_batch_size=64,max_queue_delay_us=50000",
    )));
    engine.add("credit", "1", credit());
    let served = engine.get("credit", None).unwrap();
    // Each request gets exactly what the model answers for its row alone.
    let (_, biggest) = together(&engine, &served, 48, None).await;
    assert!(biggest > 1, "no request ran in a merged batch");
    assert!(
        served
            .scheduler
            .batches
            .merged
            .load(std::sync::atomic::Ordering::Relaxed)
            > 0
    );
    let executions = executions(&served);
    assert!(executions < 48, "{executions} executions for 48 requests");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_the_model_refuses_fails_alone() {
    let engine = Arc::new(Engine::with_defaults(config(
        "instances=1,max_batch_size=64,max_queue_delay_us=50000",
    )));
    engine.add("credit", "1", wrapped(Duration::ZERO));
    let served = engine.get("credit", None).unwrap();
    let (refused, _) = together(&engine, &served, 20, Some(7)).await;
    assert!(matches!(refused, Some(EngineError::Internal(m)) if m.contains("age 13")));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_queue_refuses_at_once_and_accepted_requests_succeed() {
    let engine = Arc::new(Engine::with_defaults(config(
        "instances=1,batching=off,queue_capacity=2",
    )));
    engine.add("credit", "1", wrapped(Duration::from_millis(100)));
    let served = engine.get("credit", None).unwrap();
    let tasks: Vec<_> = (0..8)
        .map(|i| {
            let engine = Arc::clone(&engine);
            let served = Arc::clone(&served);
            tokio::spawn(async move { engine.infer(served, row(i)).await })
        })
        .collect();
    let (mut ok, mut refused) = (0, 0);
    for t in tasks {
        match t.await.unwrap() {
            Ok(_) => ok += 1,
            Err(EngineError::Overloaded(m)) => {
                assert!(m.contains("retry"), "{m}");
                refused += 1;
            }
            Err(e) => panic!("{e}"),
        }
    }
    // One running and two waiting at most: the rest refused.
    assert!(refused >= 4, "{refused} refused");
    assert_eq!(ok + refused, 8);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn batching_off_runs_every_request_alone() {
    let engine = Arc::new(Engine::with_defaults(config("instances=1,batching=off")));
    engine.add("credit", "1", credit());
    let served = engine.get("credit", None).unwrap();
    let tasks: Vec<_> = (0..16)
        .map(|i| {
            let engine = Arc::clone(&engine);
            let served = Arc::clone(&served);
            tokio::spawn(async move { engine.infer_timed(served, row(i)).await })
        })
        .collect();
    for t in tasks {
        assert_eq!(t.await.unwrap().unwrap().1.batch_rows, 1);
    }
    assert_eq!(
        served
            .scheduler
            .batches
            .merged
            .load(std::sync::atomic::Ordering::Relaxed),
        0
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_model_does_not_hold_up_a_fast_one() {
    let engine = Arc::new(Engine::with_defaults(config("instances=1")));
    engine.add("slow", "1", wrapped(Duration::from_secs(2)));
    engine.add("fast", "1", credit());
    let slow = {
        let engine = Arc::clone(&engine);
        let served = engine.get("slow", None).unwrap();
        tokio::spawn(async move { engine.infer(served, row(0)).await })
    };
    tokio::time::sleep(Duration::from_millis(50)).await;
    let fast = engine.get("fast", None).unwrap();
    engine.infer(fast, row(1)).await.unwrap();
    // The fast model answered while the slow one was still running.
    assert!(!slow.is_finished());
    slow.await.unwrap().unwrap();
}

/// Executions of `served`'s model, on any thread.
fn executions(served: &slipway_engine::Served) -> u64 {
    let by_size = served.scheduler.batches.snapshot();
    by_size.iter().map(|(_, n, _)| n).sum()
}

fn inline_runs(served: &slipway_engine::Served) -> u64 {
    served
        .scheduler
        .batches
        .inline
        .load(std::sync::atomic::Ordering::Relaxed)
}

#[tokio::test(flavor = "current_thread")]
async fn on_one_thread_a_quick_model_runs_the_batch_itself_and_a_bad_request_fails_alone() {
    // A generous budget: what counts as quick must not depend on how fast a debug build is.
    let engine = Arc::new(Engine::with_defaults(config(
        "instances=1,inline_budget_us=1000000",
    )));
    engine.add("credit", "1", wrapped(Duration::ZERO));
    let served = engine.get("credit", None).unwrap();
    // The model is not measured yet: the first request goes to its worker.
    engine.infer(Arc::clone(&served), row(0)).await.unwrap();
    assert_eq!(inline_runs(&served), 0);
    // Requests spawned together are all read before the batch runs; the second round holds
    // one request the model refuses.
    for round in 0..2 {
        let bad = (round == 1).then_some(7);
        let (refused, biggest) = together(&engine, &served, 24, bad).await;
        if bad.is_some() {
            assert!(matches!(refused, Some(EngineError::Internal(m)) if m.contains("age 13")));
        }
        if bad.is_none() {
            assert_eq!(
                biggest, 24,
                "the requests read together did not run as one batch"
            );
        }
    }
    assert!(
        inline_runs(&served) > 0,
        "nothing ran on the runtime's thread"
    );
}

#[tokio::test(flavor = "current_thread")]
async fn on_one_thread_a_slow_model_keeps_to_its_worker() {
    let engine = Arc::new(Engine::with_defaults(config("instances=1")));
    engine.add("slow", "1", wrapped(Duration::from_millis(300)));
    engine.set_model_config("fast", config("instances=1,inline_budget_us=1000000"));
    engine.add("fast", "1", credit());
    let slow = engine.get("slow", None).unwrap();
    let fast = engine.get("fast", None).unwrap();
    // Each measured once.
    engine.infer(Arc::clone(&slow), row(0)).await.unwrap();
    engine.infer(Arc::clone(&fast), row(0)).await.unwrap();
    let running = {
        let engine = Arc::clone(&engine);
        let slow = Arc::clone(&slow);
        tokio::spawn(async move { engine.infer(slow, row(1)).await })
    };
    tokio::time::sleep(Duration::from_millis(50)).await;
    for i in 0..4 {
        engine.infer(Arc::clone(&fast), row(i)).await.unwrap();
    }
    // Had the slow model run on this thread, nothing else could have run until it finished.
    assert!(!running.is_finished());
    running.await.unwrap().unwrap();
    assert_eq!(inline_runs(&slow), 0);
    assert!(inline_runs(&fast) > 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn per_model_settings_survive_a_swap() {
    let engine = Engine::with_defaults(config("instances=2"));
    engine.set_model_config(
        "credit",
        config("instances=1,max_batch_size=8,queue_capacity=5"),
    );
    engine.add("credit", "1", credit());
    engine.add("credit", "2", credit());
    let served = engine.get("credit", None).unwrap();
    assert_eq!(served.version, "2");
    assert_eq!(served.scheduler.config().max_batch_size, 8);
    assert_eq!(served.scheduler.config().queue_capacity, 5);
    assert_eq!(engine.model_config("other").instances, 2);
}

#[test]
fn admission_bounds_the_rows_in_hand() {
    let engine = Engine::with_defaults(config("instances=1,queue_capacity=3"));
    engine.add("credit", "1", credit());
    let served = engine.get("credit", None).unwrap();
    let s = &served.scheduler;
    let mut a = s.admit().unwrap();
    let mut b = s.admit().unwrap();
    // Admitted requests hold nothing until they claim their real rows, and then exactly those.
    assert_eq!(s.in_hand(), 0);
    a.claim(2).unwrap();
    assert!(matches!(b.claim(2), Err(EngineError::Overloaded(_))));
    b.claim(1).unwrap();
    assert_eq!(s.in_hand(), 3);
    // Full: refused before a body is read.
    assert!(matches!(s.admit(), Err(EngineError::Overloaded(_))));
    drop((a, b));
    assert_eq!(s.in_hand(), 0);
    // A request larger than the capacity never fits, even when nothing else is in hand.
    let mut big = s.admit().unwrap();
    assert!(matches!(big.claim(4), Err(EngineError::TooLarge(_))));
    assert_eq!(s.in_hand(), 0);
    // Claiming again with the same count is free; fewer rows give some back.
    big.claim(3).unwrap();
    big.claim(3).unwrap();
    assert_eq!(s.in_hand(), 3);
    big.claim(1).unwrap();
    assert_eq!(s.in_hand(), 1);
    drop(big);
    assert_eq!(s.in_hand(), 0);
}

/// Requests claiming rows from many threads at once never hold more than the capacity
/// together (the guess-based admission let three 1 M-row requests in against 2,048).
#[test]
fn concurrent_claims_never_pass_the_capacity() {
    let engine = Engine::with_defaults(config("instances=1,queue_capacity=100"));
    engine.add("credit", "1", credit());
    let served = engine.get("credit", None).unwrap();
    let most = std::sync::atomic::AtomicUsize::new(0);
    let admitted = std::sync::atomic::AtomicUsize::new(0);
    std::thread::scope(|scope| {
        for t in 0..4 {
            let (served, most, admitted) = (&served, &most, &admitted);
            scope.spawn(move || {
                for i in 0..2_000 {
                    let Ok(mut a) = served.scheduler.admit() else {
                        continue;
                    };
                    // Growing claims, as the V1 reader makes them record by record.
                    let want = 1 + (i * 7 + t * 13) % 60;
                    if (1..=want).all(|n| a.claim(n).is_ok()) {
                        admitted.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    }
                    most.fetch_max(
                        served.scheduler.in_hand(),
                        std::sync::atomic::Ordering::Relaxed,
                    );
                }
            });
        }
    });
    assert!(most.into_inner() <= 100);
    assert!(admitted.into_inner() > 0);
    assert_eq!(served.scheduler.in_hand(), 0);
}

/// An engine outlives the runtime that first used it (a second runtime, as a test harness or
/// an embedding program may make) and keeps answering, from a current-thread runtime and from
/// a multi-thread one.
#[test]
fn answers_reach_each_runtime_that_asks() {
    let engine = Arc::new(Engine::with_defaults(config("instances=1")));
    engine.add("credit", "1", credit());
    let want = engine
        .get("credit", None)
        .unwrap()
        .model
        .infer(&row(3))
        .unwrap();
    for (round, multi) in [(0, false), (1, true), (2, false)] {
        let runtime = if multi {
            tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .enable_time()
                .build()
                .unwrap()
        } else {
            tokio::runtime::Builder::new_current_thread()
                .enable_time()
                .build()
                .unwrap()
        };
        let engine = Arc::clone(&engine);
        let want = want.clone();
        runtime.block_on(async move {
            let served = engine.get("credit", None).unwrap();
            let tasks: Vec<_> = (0..16)
                .map(|_| {
                    let engine = Arc::clone(&engine);
                    let served = Arc::clone(&served);
                    tokio::spawn(async move { engine.infer(served, row(3)).await })
                })
                .collect();
            for t in tasks {
                let answer = tokio::time::timeout(Duration::from_secs(10), t)
                    .await
                    .unwrap_or_else(|_| panic!("round {round}: no answer within 10 s"));
                assert_eq!(answer.unwrap().unwrap(), want, "round {round}");
            }
        });
    }
}

/// A request queued for a runtime's own thread when that runtime stops before running it is
/// answered (Unavailable), and the model's queue opens again for the next runtime.
#[test]
fn a_request_left_by_a_stopped_runtime_is_answered_and_the_queue_reopens() {
    let engine = Arc::new(Engine::with_defaults(config(
        "instances=1,inline_budget_us=1000000",
    )));
    engine.add("credit", "1", credit());
    let served = engine.get("credit", None).unwrap();
    let one_thread = || {
        tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .build()
            .unwrap()
    };
    let first = one_thread();
    // Measured once (on the worker), so the next request is queued for the runtime's thread.
    first
        .block_on(engine.infer(Arc::clone(&served), row(0)))
        .unwrap();
    let mut left = Box::pin(engine.infer(Arc::clone(&served), row(1)));
    first.block_on(async {
        // Polled once: queued, and the task that would run it spawned but not yet run.
        tokio::select! {
            biased;
            _ = &mut left => panic!("answered before its task ran"),
            () = std::future::ready(()) => {}
        }
    });
    drop(first);
    let second = one_thread();
    second.block_on(async {
        let guard = Duration::from_secs(30);
        let answer = tokio::time::timeout(guard, &mut left)
            .await
            .expect("never answered");
        assert!(matches!(answer, Err(EngineError::Unavailable(m)) if m.contains("stopped")));
        let answer = tokio::time::timeout(guard, engine.infer(Arc::clone(&served), row(2)))
            .await
            .expect("the queue stayed closed");
        assert_eq!(answer.unwrap(), served.model.infer(&row(2)).unwrap());
    });
    assert!(inline_runs(&served) > 0);
}

/// A model that turns slow while its requests wait for the runtime's thread: the batch that
/// made it slow ran there, and the rest go to its worker instead of holding the thread.
#[tokio::test(flavor = "current_thread")]
async fn on_one_thread_a_model_that_turns_slow_hands_the_rest_to_its_worker() {
    struct Switchable {
        inner: Arc<dyn Model>,
        slow: std::sync::atomic::AtomicBool,
    }
    impl Model for Switchable {
        fn signature(&self) -> &Signature {
            self.inner.signature()
        }
        fn infer(&self, inputs: &[Tensor]) -> Result<Vec<Tensor>, CoreError> {
            if self.slow.load(std::sync::atomic::Ordering::Relaxed) {
                std::thread::sleep(Duration::from_millis(100));
            }
            self.inner.infer(inputs)
        }
    }
    let engine = Arc::new(Engine::with_defaults(config(
        "instances=1,batching=off,inline_budget_us=1000",
    )));
    let mut l = credit();
    let model = Arc::new(Switchable {
        inner: l.model,
        slow: false.into(),
    });
    l.model = Arc::clone(&model) as Arc<dyn Model>;
    engine.add("credit", "1", l);
    let served = engine.get("credit", None).unwrap();
    engine.infer(Arc::clone(&served), row(0)).await.unwrap();
    engine.infer(Arc::clone(&served), row(1)).await.unwrap();
    let before = inline_runs(&served);
    assert_eq!(
        before, 1,
        "the quick model did not run on the runtime's thread"
    );
    model.slow.store(true, std::sync::atomic::Ordering::Relaxed);
    // Three requests read together, each its own batch (batching is off).
    together(&engine, &served, 3, None).await;
    assert_eq!(inline_runs(&served), before + 1);
    let executions = executions(&served);
    assert_eq!(
        executions, 5,
        "two measured, one slow here, two on the worker"
    );
}

/// A caller that goes away (a client that disconnects, a gRPC deadline) does not free the rows
/// of work still queued: they are held until the job is done, and a job whose caller has gone
/// is not run.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rows_stay_held_until_the_work_is_done_even_when_the_caller_leaves() {
    let engine = Arc::new(Engine::with_defaults(config(
        "instances=1,batching=off,queue_capacity=3,inline_budget_us=0",
    )));
    engine.add("credit", "1", wrapped(Duration::from_millis(300)));
    let served = engine.get("credit", None).unwrap();
    let running = {
        let (engine, served) = (Arc::clone(&engine), Arc::clone(&served));
        tokio::spawn(async move { engine.infer(served, row(0)).await })
    };
    tokio::time::sleep(Duration::from_millis(50)).await;
    let queued = {
        let (engine, served) = (Arc::clone(&engine), Arc::clone(&served));
        tokio::spawn(async move { engine.infer(served, row(1)).await })
    };
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert_eq!(served.scheduler.in_hand(), 2);
    queued.abort();
    let _ = queued.await;
    // The queued job still holds its row: the model cannot be handed more than its capacity.
    assert_eq!(served.scheduler.in_hand(), 2);
    running.await.unwrap().unwrap();
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(served.scheduler.in_hand(), 0);
    // The abandoned request was not run: one execution, the first request's.
    let executions: u64 = served
        .scheduler
        .batches
        .snapshot()
        .iter()
        .map(|b| b.1)
        .sum();
    assert_eq!(executions, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn inputs_that_disagree_on_their_rows_are_refused() {
    let engine = Engine::with_defaults(config("instances=1"));
    engine.add("credit", "1", credit());
    let served = engine.get("credit", None).unwrap();
    let mut inputs = row(0);
    // The last input claims two rows, the others one: admission counts two, the model refuses.
    let last = inputs.last_mut().unwrap();
    last.data = match &last.data {
        TensorData::Bytes(v) => TensorData::Bytes(vec![v[0].clone(), v[0].clone()]),
        TensorData::Fp64(v) => TensorData::Fp64(vec![v[0], v[0]]),
        other @ (TensorData::Bool(_) | TensorData::Int64(_) | TensorData::Fp32(_)) => other.clone(),
    };
    last.shape = vec![2];
    let err = engine.infer(served, inputs).await.unwrap_err();
    assert!(
        matches!(&err, EngineError::InvalidInput(m) if m.contains("same rows")),
        "{err:?}"
    );
}
