//! The one place atomics come from, so that the same protocol code runs under loom.
//!
//! With `--cfg loom` every shared word is a `loom::sync::atomic::AtomicU64` and the
//! reader/writer protocol in this crate is model-checked by `tests/loom.rs`.

#[cfg(loom)]
pub(crate) use loom::sync::atomic::{fence, AtomicU64, Ordering};
#[cfg(not(loom))]
pub(crate) use std::sync::atomic::{fence, AtomicU64, Ordering};
