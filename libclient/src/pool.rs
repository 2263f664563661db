//! A small pool of daemon connections, shared by every thread of a client.
//!
//! Only misses and writes use it (hits read the segment), and each holds a connection for one
//! round trip, so a mutex around a `Vec` is enough. At most `size` connections are open at
//! once; a thread that finds them all busy waits on a condition variable, up to the request
//! timeout. Connections are opened outside the lock.

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
}

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
        let deadline = Instant::now() + wait;
        let mut state = self.lock();
        loop {
            if let Some(conn) = state.idle.pop() {
                if conn.closed_by_daemon() {
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
            if now >= deadline {
                return Err(Error::Timeout {
                    operation: "free connection from the pool",
                    after: wait,
                });
            }
            state = self
                .freed
                .wait_timeout(state, deadline - now)
                .unwrap_or_else(|e| e.into_inner())
                .0;
        }
    }

    fn release_slot(&self) {
        let mut state = self.lock();
        state.open -= 1;
        drop(state);
        self.freed.notify_one();
    }

    /// Closes every idle connection, and every lent one when it comes back: after a failure
    /// that suggests the daemon went away, none of them is worth trying.
    pub(crate) fn clear(&self) {
        let mut state = self.lock();
        state.generation += 1;
        let closed = std::mem::take(&mut state.idle);
        state.open -= closed.len();
        drop(state);
        self.freed.notify_all();
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
        if self.broken || conn.poisoned || self.generation != state.generation {
            state.open -= 1;
            drop(state);
            drop(conn);
        } else {
            state.idle.push(conn);
            drop(state);
        }
        self.pool.freed.notify_one();
    }
}
