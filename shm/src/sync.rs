//! The one place atomics come from, so that the same protocol code runs under loom.
//!
//! With `--cfg loom` every shared word is a `loom::sync::atomic::AtomicU64` and the
//! reader/writer protocol in this crate is model-checked by `tests/loom.rs`.

#[cfg(loom)]
pub(crate) use loom::sync::atomic::{fence, AtomicU64, Ordering};
#[cfg(not(loom))]
pub(crate) use std::sync::atomic::{fence, AtomicU64, Ordering};

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
