//! The circuit breaker around Redis: closed (calls go through) → open after
//! `failures_to_open` consecutive failures (calls are refused at once) → half-open after
//! `open_for` (one probe goes through; success closes, failure opens again).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// The state, as reported in STATS (`redis_state`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum State {
    /// Calls go through.
    Closed = 0,
    /// Calls are refused until `open_for` has passed.
    Open = 1,
    /// One probe is in flight.
    HalfOpen = 2,
}

struct Inner {
    state: State,
    consecutive: u32,
    since: Instant,
}

pub struct Breaker {
    inner: Mutex<Inner>,
    failures_to_open: u32,
    open_for: Duration,
    pub opens: AtomicU64,
}

impl Breaker {
    pub fn new(failures_to_open: u32, open_for: Duration) -> Breaker {
        Breaker {
            inner: Mutex::new(Inner {
                state: State::Closed,
                consecutive: 0,
                since: Instant::now(),
            }),
            failures_to_open: failures_to_open.max(1),
            open_for,
            opens: AtomicU64::new(0),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub fn state(&self) -> State {
        self.lock().state
    }

    /// Whether a call may go to Redis now. In the open state, the first caller after
    /// `open_for` becomes the half-open probe; a probe that never reports back is replaced
    /// after another `open_for`.
    pub fn allow(&self) -> bool {
        let mut b = self.lock();
        match b.state {
            State::Closed => true,
            State::Open | State::HalfOpen if b.since.elapsed() >= self.open_for => {
                b.state = State::HalfOpen;
                b.since = Instant::now();
                true
            }
            State::Open | State::HalfOpen => false,
        }
    }

    pub fn success(&self) {
        let mut b = self.lock();
        b.consecutive = 0;
        if b.state != State::Closed {
            tracing::info!("Redis is back: circuit breaker closed");
            b.state = State::Closed;
            b.since = Instant::now();
        }
    }

    pub fn failure(&self) {
        let mut b = self.lock();
        b.consecutive = b.consecutive.saturating_add(1);
        let trip = b.state == State::HalfOpen
            || (b.state == State::Closed && b.consecutive >= self.failures_to_open);
        if trip {
            if b.state == State::Closed {
                self.opens.fetch_add(1, Ordering::Relaxed);
                tracing::warn!(
                    failures = b.consecutive,
                    open_ms = self.open_for.as_millis() as u64,
                    "Redis keeps failing: circuit breaker open (hits are still served; misses answer at once; writes are queued)"
                );
            }
            b.state = State::Open;
            b.since = Instant::now();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn closed_open_half_open_closed() {
        let b = Breaker::new(3, Duration::from_millis(30));
        for _ in 0..2 {
            assert!(b.allow());
            b.failure();
        }
        assert_eq!(b.state(), State::Closed);
        b.failure();
        assert_eq!(b.state(), State::Open);
        assert!(!b.allow());
        std::thread::sleep(Duration::from_millis(40));
        assert!(b.allow(), "the probe");
        assert_eq!(b.state(), State::HalfOpen);
        assert!(!b.allow(), "one probe at a time");
        b.failure();
        assert_eq!(b.state(), State::Open);
        std::thread::sleep(Duration::from_millis(40));
        assert!(b.allow());
        b.success();
        assert_eq!(b.state(), State::Closed);
        assert_eq!(b.opens.load(Ordering::Relaxed), 1);
    }
}
