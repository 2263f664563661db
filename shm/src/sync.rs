//! The one place atomics come from, so that the same protocol code runs under loom.
//!
//! With `--cfg loom` every shared word is a `loom::sync::atomic::AtomicU64` and the
//! reader/writer protocol in this crate is model-checked by `tests/loom.rs`. Clippy
//! (`shm/clippy.toml`, `disallowed-types`) refuses std atomics in the rest of the crate.

#![allow(clippy::disallowed_types, clippy::disallowed_methods)]

#[cfg(loom)]
pub(crate) use loom::sync::atomic::{fence, AtomicU64, Ordering};
#[cfg(not(loom))]
pub(crate) use std::sync::atomic::Ordering;

/// A word of shared memory: std's `AtomicU64` under a type of this crate, so that the ban
/// on std's atomics everywhere else cannot be dodged by naming them through here. Same
/// layout (`repr(transparent)`): a mapping is viewed as a slice of these.
#[cfg(not(loom))]
#[repr(transparent)]
pub(crate) struct AtomicU64(std::sync::atomic::AtomicU64);

#[cfg(not(loom))]
impl AtomicU64 {
    #[inline(always)]
    pub(crate) const fn new(v: u64) -> AtomicU64 {
        AtomicU64(std::sync::atomic::AtomicU64::new(v))
    }

    #[inline(always)]
    pub(crate) fn load(&self, order: Ordering) -> u64 {
        self.0.load(order)
    }

    #[inline(always)]
    pub(crate) fn store(&self, v: u64, order: Ordering) {
        self.0.store(v, order)
    }

    #[inline(always)]
    pub(crate) fn fetch_and(&self, v: u64, order: Ordering) -> u64 {
        self.0.fetch_and(v, order)
    }

    #[inline(always)]
    pub(crate) fn fetch_or(&self, v: u64, order: Ordering) -> u64 {
        self.0.fetch_or(v, order)
    }

    #[inline(always)]
    pub(crate) fn fetch_add(&self, v: u64, order: Ordering) -> u64 {
        self.0.fetch_add(v, order)
    }

    #[inline(always)]
    pub(crate) fn compare_exchange(
        &self,
        current: u64,
        new: u64,
        success: Ordering,
        failure: Ordering,
    ) -> Result<u64, u64> {
        self.0.compare_exchange(current, new, success, failure)
    }
}

/// std's fence, for the same reason as [`AtomicU64`].
#[cfg(not(loom))]
#[inline(always)]
pub(crate) fn fence(order: Ordering) {
    std::sync::atomic::fence(order)
}

/// A process-local statistics counter: never in shared memory and not part of the
/// protocol, so std's even under loom (it keeps the model small).
#[derive(Default)]
pub(crate) struct LocalCounter(std::sync::atomic::AtomicU64);

impl LocalCounter {
    /// Adds one; returns the count before.
    #[inline]
    pub(crate) fn bump(&self) -> u64 {
        self.0.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
    }

    /// Adds one without a read-modify-write: a plain load and store, for a counter that one
    /// thread at a time writes (a locked add per hit would keep back-to-back hits from
    /// overlapping). Another thread may read it meanwhile.
    #[inline]
    pub(crate) fn bump_owned(&self) {
        let v = self.0.load(std::sync::atomic::Ordering::Relaxed);
        self.0.store(v + 1, std::sync::atomic::Ordering::Relaxed);
    }

    #[inline]
    pub(crate) fn get(&self) -> u64 {
        self.0.load(std::sync::atomic::Ordering::Relaxed)
    }
}

/// A process-local set of up to 64 claimed indexes (which thread owns which counter stripe):
/// never in shared memory, std's even under loom.
pub(crate) struct Claims(std::sync::atomic::AtomicU64);

impl Claims {
    pub(crate) const fn new() -> Claims {
        Claims(std::sync::atomic::AtomicU64::new(0))
    }

    /// Claims the lowest free index; `None` when all 64 are taken. Acquire: the new owner sees
    /// what the last owner stored before its [`release`](Claims::release).
    pub(crate) fn claim(&self) -> Option<usize> {
        use std::sync::atomic::Ordering as O;
        let mut cur = self.0.load(O::Relaxed);
        loop {
            if cur == u64::MAX {
                return None;
            }
            let i = (!cur).trailing_zeros() as usize;
            match self
                .0
                .compare_exchange_weak(cur, cur | 1 << i, O::Acquire, O::Relaxed)
            {
                Ok(_) => return Some(i),
                Err(now) => cur = now,
            }
        }
    }

    /// Frees index `i` (Release: see [`claim`](Claims::claim)).
    pub(crate) fn release(&self, i: usize) {
        self.0
            .fetch_and(!(1u64 << i), std::sync::atomic::Ordering::Release);
    }
}

/// Under loom only: switches off one fence of the protocol, so the model check can show
/// that the fence is needed (the weakened model must fail).
#[cfg(loom)]
#[doc(hidden)]
pub mod weaken {
    use std::sync::atomic::{AtomicU8, Ordering};

    static MODE: AtomicU8 = AtomicU8::new(0);

    /// Which fence to leave out.
    #[derive(Clone, Copy, Debug, PartialEq, Eq)]
    #[repr(u8)]
    pub enum Fence {
        /// Keep every fence.
        None = 0,
        /// The reader's Acquire fence before re-checking the segment generation.
        Reader = 1,
        /// The writer's Release fence after bumping the generation on recycle.
        Writer = 2,
    }

    /// Sets the fence to leave out (process-wide; run loom tests single-threaded).
    pub fn set(f: Fence) {
        MODE.store(f as u8, Ordering::SeqCst);
    }

    pub(crate) fn skips(f: Fence) -> bool {
        MODE.load(Ordering::SeqCst) == f as u8
    }
}
