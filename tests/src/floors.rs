//! What each key's writer has had acknowledged, published to every process of a stress run.
//!
//! A small file, mapped shared by every worker, holds three arrays of `u64`, one word per key:
//!
//! | array | written by | when | means |
//! |---|---|---|---|
//! | `hi[k]` | the key's writer | *before* sending a SET | no version above this was ever sent |
//! | `floor[k]` | the key's writer | *after* a SET, DELETE or INVALIDATE was acknowledged | a read that starts now may only return a version ≥ this (or miss) |
//! | `settled[k]` | the key's writer | 0 *before* sending a SET, DELETE or INVALIDATE that covers the key; the version *after* a SET was acknowledged | non-zero: the last operation sent for the key was that SET, and it was acknowledged |
//!
//! `settled` is what a test that stops the daemon mid-run needs to know which keys must still
//! be served: `floor == hi` cannot tell it. A DELETE or INVALIDATE raises the floor to one
//! above every version sent, and a SET of exactly that version which then fails (the daemon
//! is gone) raises `hi` to it: `floor == hi`, yet the last acknowledged operation was the
//! DELETE or INVALIDATE. Nor can it see an operation sent and never answered (the daemon was
//! killed after applying it, before replying): that one changes neither `floor` nor `hi`.
//!
//! A reader loads `floor[k]` before its get and `hi[k]` after it. A hit below the floor is a
//! stale read after an acknowledged write or invalidation (the contract's "no read that starts
//! afterwards returns the old value"); a hit above `hi` is a value nobody wrote.
//!
//! Every word is only ever accessed through `AtomicU64`, in every process.

use std::fs::{File, OpenOptions};
use std::io;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};

use memmap2::MmapRaw;

/// The shared floors of a stress run.
pub struct Floors {
    map: MmapRaw,
    keys: usize,
}

impl Floors {
    /// Bytes of the file for `keys` keys.
    pub fn file_len(keys: usize) -> u64 {
        (keys as u64) * 24
    }

    /// Creates (zeroed) the file for `keys` keys.
    pub fn create(path: &Path, keys: usize) -> io::Result<()> {
        let f = File::create(path)?;
        f.set_len(Self::file_len(keys))
    }

    /// Maps the file made by [`Floors::create`], shared with every other process that maps it.
    pub fn open(path: &Path, keys: usize) -> io::Result<Floors> {
        let f = OpenOptions::new().read(true).write(true).open(path)?;
        let len = f.metadata()?.len();
        if len != Self::file_len(keys) {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!(
                    "{} is {len} bytes, expected {} for {keys} keys",
                    path.display(),
                    Self::file_len(keys)
                ),
            ));
        }
        let map = MmapRaw::map_raw(&f)?;
        Ok(Floors { map, keys })
    }

    fn words(&self) -> &[AtomicU64] {
        let n = self.map.len() / 8;
        debug_assert_eq!(n, 3 * self.keys);
        if n == 0 {
            return &[];
        }
        #[allow(unsafe_code)]
        // SAFETY:
        // - the mapping is `n * 8` bytes long, page-aligned (so aligned for `AtomicU64`), and
        //   lives as long as `self.map`, which outlives the returned borrow;
        // - every process accesses these words only through `AtomicU64` (this module), so the
        //   concurrent writes of other processes are atomic accesses, not data races;
        // - `AtomicU64` has the size and alignment of `u64` and every bit pattern is valid.
        unsafe {
            std::slice::from_raw_parts(self.map.as_ptr().cast::<AtomicU64>(), n)
        }
    }

    /// Number of keys.
    pub fn keys(&self) -> usize {
        self.keys
    }

    /// The floor of key `k`: loaded before a read starts.
    pub fn floor(&self, k: usize) -> u64 {
        // Acquire: pairs with the Release in `raise_floor`, so a write acknowledged before the
        // raise happened before the read that follows this load.
        self.words()[k].load(Ordering::Acquire)
    }

    /// Raises the floor of key `k` to at least `v` (after an acknowledgement).
    pub fn raise_floor(&self, k: usize, v: u64) {
        // Release: pairs with the Acquire load in `floor`.
        self.words()[k].fetch_max(v, Ordering::Release);
    }

    /// The newest version of key `k` ever sent: loaded after a read returns.
    pub fn hi(&self, k: usize) -> u64 {
        // Acquire: pairs with the Release in `raise_hi`.
        self.words()[self.keys + k].load(Ordering::Acquire)
    }

    /// Records that version `v` of key `k` is about to be sent.
    pub fn raise_hi(&self, k: usize, v: u64) {
        // Release: pairs with the Acquire load in `hi`; published before the SET is sent.
        self.words()[self.keys + k].fetch_max(v, Ordering::Release);
    }

    /// Non-zero: the version of an acknowledged SET of key `k` after which nothing was sent
    /// for the key (see the module's table).
    pub fn settled(&self, k: usize) -> u64 {
        // Acquire: pairs with the Release in `settle`.
        self.words()[2 * self.keys + k].load(Ordering::Acquire)
    }

    /// Records, before an operation on key `k` is sent, that its outcome is not known yet.
    pub fn unsettle(&self, k: usize) {
        self.words()[2 * self.keys + k].store(0, Ordering::Release);
    }

    /// Records that the SET of version `v` of key `k` was acknowledged (and nothing was sent
    /// for the key since: only the key's writer calls this, right after the acknowledgement).
    pub fn settle(&self, k: usize, v: u64) {
        // Release: pairs with the Acquire load in `settled`.
        self.words()[2 * self.keys + k].store(v, Ordering::Release);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn two_mappings_of_one_file_see_each_other() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("floors");
        Floors::create(&path, 10).unwrap();
        let a = Floors::open(&path, 10).unwrap();
        let b = Floors::open(&path, 10).unwrap();
        a.raise_floor(3, 7);
        a.raise_floor(3, 5);
        b.raise_hi(9, 11);
        assert_eq!(b.floor(3), 7, "floors only go up");
        assert_eq!(a.hi(9), 11);
        assert_eq!(a.floor(9), 0);
        assert_eq!(b.settled(3), 0);
        a.settle(3, 7);
        assert_eq!(b.settled(3), 7);
        a.unsettle(3);
        assert_eq!(b.settled(3), 0);
        assert_eq!((b.floor(3), b.hi(3)), (7, 0), "the arrays are apart");
        assert!(Floors::open(&path, 11).is_err());
    }
}
