use super::*;
use crate::ports::ManualClock;
use std::cell::{Cell, RefCell};

const MS: Duration = Duration::from_millis(1);

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

/// Runs `fut` on the manual clock (see [`ManualClock::run`]).
async fn run<T>(clock: &ManualClock, fut: impl Future<Output = T>) -> T {
    let out = clock.run(Duration::from_secs(60), fut).await;
    out.expect("finishes within a minute of clock time")
}

#[test]
fn delays_double_from_initial_and_stop_at_max() {
    let b = Backoff::new(ms(100), ms(1_000));
    let delays: Vec<u64> = (1..=6).map(|n| b.delay(n).as_millis() as u64).collect();
    assert_eq!(delays, [100, 200, 400, 800, 1_000, 1_000]);
    // Zero failures is read as the first; huge counts neither overflow nor pass the cap.
    assert_eq!(b.delay(0), ms(100));
    assert_eq!(b.delay(u32::MAX), ms(1_000));
    assert_eq!(Backoff::uncapped(ms(50)).delay(4), ms(400));
    assert_eq!(
        Backoff::uncapped(ms(50)).delay(u32::MAX),
        ms(50) * (1 << 31)
    );
}

#[tokio::test]
async fn retry_waits_the_backoff_on_the_clock_and_stops_after_the_attempts() {
    let clock = ManualClock::new(0);
    let started = RefCell::new(Vec::new());
    let out: Result<(), u32> = run(
        &clock,
        retry(
            &clock,
            Backoff::new(ms(100), ms(300)),
            4,
            |_, _| true,
            |attempt| {
                started.borrow_mut().push((attempt, clock.now_ms()));
                async move { Err(attempt) }
            },
        ),
    )
    .await;
    assert_eq!(out, Err(4), "the last error is returned");
    assert_eq!(*started.borrow(), [(1, 0), (2, 100), (3, 300), (4, 600)]);
}

#[tokio::test]
async fn retry_returns_the_first_success() {
    let clock = ManualClock::new(0);
    let out: Result<u32, &str> = run(
        &clock,
        retry(
            &clock,
            Backoff::uncapped(ms(10)),
            5,
            |_, _| true,
            |attempt| async move {
                if attempt < 3 {
                    Err("busy")
                } else {
                    Ok(attempt)
                }
            },
        ),
    )
    .await;
    assert_eq!(out, Ok(3));
    assert_eq!(clock.now_ms(), 30);
}

#[tokio::test]
async fn a_non_retriable_error_returns_at_once() {
    let clock = ManualClock::new(0);
    let calls = Cell::new(0);
    let out: Result<(), &str> = retry(
        &clock,
        Backoff::uncapped(ms(10)),
        5,
        |e, _| *e != "fatal",
        |_| {
            calls.set(calls.get() + 1);
            async { Err("fatal") }
        },
    )
    .await;
    assert_eq!(out, Err("fatal"));
    assert_eq!(calls.get(), 1);
    assert_eq!(clock.now_ms(), 0, "no wait");
}

#[tokio::test]
async fn retriable_is_asked_only_when_another_attempt_is_allowed() {
    let clock = ManualClock::new(0);
    let asked = RefCell::new(Vec::new());
    let out: Result<(), ()> = run(
        &clock,
        retry(
            &clock,
            Backoff::uncapped(MS),
            3,
            |_, attempt| {
                asked.borrow_mut().push(attempt);
                true
            },
            |_| async { Err(()) },
        ),
    )
    .await;
    assert_eq!(out, Err(()));
    assert_eq!(*asked.borrow(), [1, 2]);
}

#[tokio::test]
async fn retry_counts_limits_and_resets() {
    let clock = ManualClock::new(0);
    let mut r = Retry::new(&clock, Backoff::new(ms(10), ms(20))).limit(2);
    assert_eq!(r.attempt(), 1);
    assert!(!r.exhausted());
    run(&clock, r.wait()).await;
    assert_eq!((r.attempt(), clock.now_ms()), (2, 10));
    assert!(r.exhausted());
    r.reset();
    assert_eq!(r.attempt(), 1);
    run(&clock, r.wait()).await;
    assert_eq!(clock.now_ms(), 20, "back to the first wait after a reset");
    let mut unlimited = Retry::new(&clock, Backoff::new(ms(10), ms(20)));
    for _ in 0..5 {
        run(&clock, unlimited.wait()).await;
    }
    assert!(!unlimited.exhausted());
    assert_eq!(unlimited.attempt(), 6);
}
