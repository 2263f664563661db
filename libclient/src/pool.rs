//! A small pool of daemon connections, shared by every thread of a client.
//!
//! Only misses and writes use it (hits read the segment), and each holds a connection for one
//! round trip, so a mutex around a `Vec` is enough. At most `size` connections are open at
//! once; a thread that finds them all busy waits on a condition variable, up to the request
//! timeout. Connections are opened outside the lock.
//!
//! A round trip costs two syscalls (one send, one receive) and the pool adds none while it is
//! busy: the condition variable is signalled only when a thread waits on it (a signal is a
//! `futex` call even with no waiter), and a connection is checked for a close by the daemon
//! only when it sat idle for [`RECHECK_IDLE_AFTER`].

use std::sync::{Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use crate::conn::Conn;
use crate::error::Error;

pub(crate) struct Pool {
    state: Mutex<State>,
    freed: Condvar,
    size: usize,
}

struct State {
    idle: Vec<Conn>,
    /// Connections open: idle, lent out, or being opened.
    open: usize,
    /// Bumped by [`Pool::clear`]; connections lent out before it are closed on return.
    generation: u64,
    /// Threads waiting on `freed`.
    waiting: usize,
}

/// How long a connection may sit idle in the pool before a checkout checks that the daemon
/// did not close it (a `recv` that peeks). The daemon closes a connection only after its
/// `idle_timeout_ms` without a request (100 ms at the least) or when it stops; half the
/// shortest idle timeout leaves room for the reply's way back. A stopped daemon is found by
/// the request itself, which is retried once on a fresh connection (`Shared::request`).
pub(crate) const RECHECK_IDLE_AFTER: Duration = Duration::from_millis(50);

/// A connection lent out by the pool; goes back on drop unless marked broken.
pub(crate) struct Lease<'a> {
    pool: &'a Pool,
    conn: Option<Conn>,
    generation: u64,
    /// Whether the connection was used before (a failure on it may just mean the daemon
    /// restarted since; worth one retry on a fresh connection).
    pub(crate) reused: bool,
    broken: bool,
}

impl Pool {
    pub(crate) fn new(size: usize) -> Pool {
        Pool {
            state: Mutex::new(State {
                idle: Vec::new(),
                open: 0,
                generation: 0,
                waiting: 0,
            }),
            freed: Condvar::new(),
            size: size.max(1),
        }
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // The state is consistent at every unlock, so a panic elsewhere leaves it usable.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// An idle connection, or a new one from `open` if fewer than `size` are open, or the
    /// first one freed within `wait`.
    pub(crate) fn checkout(
        &self,
        wait: Duration,
        open: impl FnOnce() -> Result<Conn, Error>,
    ) -> Result<Lease<'_>, Error> {
        // Taken when a wait starts: a free connection needs no clock read.
        let mut deadline = None;
        let mut state = self.lock();
        loop {
            if let Some(conn) = state.idle.pop() {
                if conn.idle_for() >= RECHECK_IDLE_AFTER && conn.closed_by_daemon() {
                    // The daemon closed it while idle (its idle timeout): not a failure, and
                    // not a sign the daemon is gone. Take another, or open a fresh one.
                    state.open -= 1;
                    drop(conn);
                    continue;
                }
                return Ok(Lease {
                    pool: self,
                    conn: Some(conn),
                    generation: state.generation,
                    reused: true,
                    broken: false,
                });
            }
            if state.open < self.size {
                state.open += 1;
                let generation = state.generation;
                drop(state);
                return match open() {
                    Ok(conn) => Ok(Lease {
                        pool: self,
                        conn: Some(conn),
                        generation,
                        reused: false,
                        broken: false,
                    }),
                    Err(e) => {
                        self.release_slot();
                        Err(e)
                    }
                };
            }
            let now = Instant::now();
            let deadline = *deadline.get_or_insert(now + wait);
            if now >= deadline {
                return Err(Error::Timeout {
                    operation: "free connection from the pool",
                    after: wait,
                });
            }
            state.waiting += 1;
            state = self
                .freed
                .wait_timeout(state, deadline - now)
                .unwrap_or_else(|e| e.into_inner())
                .0;
            state.waiting -= 1;
        }
    }

    fn release_slot(&self) {
        let mut state = self.lock();
        state.open -= 1;
        self.wake_one(state);
    }

    /// Wakes a thread waiting for a connection, if any. Takes the lock's guard: `waiting` is
    /// read under the lock the waiters count themselves under, so none is missed.
    fn wake_one(&self, state: MutexGuard<'_, State>) {
        let waiting = state.waiting > 0;
        drop(state);
        if waiting {
            self.freed.notify_one();
        }
    }

    /// Closes every idle connection, and every lent one when it comes back: after a failure
    /// that suggests the daemon went away, none of them is worth trying.
    pub(crate) fn clear(&self) {
        let mut state = self.lock();
        state.generation += 1;
        let closed = std::mem::take(&mut state.idle);
        state.open -= closed.len();
        let waiting = state.waiting > 0;
        drop(state);
        if waiting {
            self.freed.notify_all();
        }
        drop(closed);
    }

    /// (open, idle) connection counts.
    pub(crate) fn counts(&self) -> (usize, usize) {
        let state = self.lock();
        (state.open, state.idle.len())
    }
}

impl Lease<'_> {
    pub(crate) fn conn(&mut self) -> &mut Conn {
        self.conn
            .as_mut()
            .expect("a lease holds its connection until dropped")
    }

    /// The connection is out of sync or dead: close it instead of returning it.
    pub(crate) fn mark_broken(&mut self) {
        self.broken = true;
    }
}

impl Drop for Lease<'_> {
    fn drop(&mut self) {
        let Some(conn) = self.conn.take() else { return };
        let mut state = self.pool.lock();
        let closed = if self.broken || conn.poisoned || self.generation != state.generation {
            state.open -= 1;
            Some(conn)
        } else {
            state.idle.push(conn);
            None
        };
        self.pool.wake_one(state);
        drop(closed);
    }
}
