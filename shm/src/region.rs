//! Word-atomic access to a block of memory another process may be writing.
//!
//! Shared memory is only ever touched through `AtomicU64` words: never through a
//! `&[u8]`, which would be undefined behaviour while the writer stores into it.
//! Byte ranges are copied with relaxed word loads and stores ([`Region::read_bytes`],
//! [`Region::write_bytes`]); the ordering that makes a copy meaningful comes from the
//! protocol around it (slot Release/Acquire, the segment seqlock).

use crate::sync::{AtomicU64, Ordering};
use core::ptr::NonNull;

/// A view of `words` atomic words. Does not own the memory: the owner ([`Memory`])
/// keeps it alive for as long as the region is reachable.
pub(crate) struct Region {
    base: NonNull<AtomicU64>,
    words: usize,
}

// SAFETY:
// - a Region is a pointer to atomics; every access is an atomic operation, so sharing
//   it between threads cannot cause a data race.
// - the memory outlives the Region (enforced by `Memory`, which owns both).
unsafe impl Send for Region {}
// SAFETY: as for Send: only atomic operations are performed through the pointer.
unsafe impl Sync for Region {}

impl Region {
    /// # Safety
    /// - `base` is 8-byte aligned and valid for reads of `words * 8` bytes for as long
    ///   as the returned Region is used;
    /// - the memory is only accessed through atomic operations by every party that
    ///   touches it while the Region is used;
    /// - if the memory is mapped read-only, the caller performs only loads.
    pub(crate) unsafe fn new(base: NonNull<AtomicU64>, words: usize) -> Self {
        Region { base, words }
    }

    /// Length in bytes.
    #[inline]
    pub(crate) fn len_bytes(&self) -> usize {
        self.words * 8
    }

    /// The word at index `idx`, or `None` when out of bounds.
    #[inline]
    pub(crate) fn word(&self, idx: usize) -> Option<&AtomicU64> {
        if idx < self.words {
            // SAFETY:
            // - idx < words, so the pointer stays inside the block `new` was given;
            // - the block is valid and aligned for AtomicU64 (contract of `new`).
            Some(unsafe { &*self.base.as_ptr().add(idx) })
        } else {
            None
        }
    }

    /// Loads word `idx`; out of bounds reads as `None`.
    #[inline]
    pub(crate) fn load(&self, idx: usize, order: Ordering) -> Option<u64> {
        self.word(idx).map(|w| w.load(order))
    }

    /// Stores word `idx` (writer only). Out-of-bounds stores are a bug of the writer and panic.
    #[inline]
    pub(crate) fn store(&self, idx: usize, value: u64, order: Ordering) {
        self.word(idx)
            .expect("writer stored outside its own region")
            .store(value, order);
    }

    /// Copies `dst.len()` bytes starting at byte `off` with relaxed word loads.
    /// Returns false (and copies nothing useful) when the range is out of bounds.
    #[inline]
    pub(crate) fn read_bytes(&self, off: usize, dst: &mut [u8]) -> bool {
        match off.checked_add(dst.len()) {
            Some(end) if end <= self.len_bytes() => {}
            _ => return false,
        }
        if dst.is_empty() {
            return true;
        }
        // Every word index below is < ceil(end / 8) <= words: checked above. Each load is
        // read as little-endian (memory byte i at bits 8i..8i+8) so that words can be spliced
        // with shifts: the copy makes one 8-byte store per source word whatever the alignment,
        // with no call and no per-byte loop except for the last (at most 7) bytes.
        let (base, words, end) = (self.base.as_ptr(), self.words, off + dst.len());
        let load = |idx: usize| {
            debug_assert!(idx < words && idx * 8 < end);
            // SAFETY:
            // - every idx passed below is < ceil(end / 8) <= words (the range check above), so
            //   the pointer stays inside the block `new` was given;
            // - the block is valid and aligned for AtomicU64 (contract of `new`).
            u64::from_le(unsafe { &*base.add(idx) }.load(Ordering::Relaxed))
        };
        let n = dst.len();
        let mut word = off / 8;
        let shift = 8 * (off % 8) as u32;
        let mut out = 0;
        // The source bytes not yet copied, from the start of `word`: `cur` holds word `word`
        // shifted so that its first uncopied byte is at bits 0..8.
        let mut cur = load(word) >> shift;
        let mut chunks = dst.chunks_exact_mut(8);
        for chunk in &mut chunks {
            // 8 more bytes lie at or before byte off + out + 7 < end: when the start is not
            // aligned they reach into word + 1, which is < ceil(end / 8).
            let v = if shift == 0 {
                let v = cur;
                // The next word exists when another chunk or a tail follows.
                cur = if out + 8 < n { load(word + 1) } else { 0 };
                v
            } else {
                let next = load(word + 1);
                let v = cur | (next << (64 - shift));
                cur = next >> shift;
                v
            };
            let c: &mut [u8; 8] = chunk.try_into().expect("chunks of 8");
            *c = v.to_le_bytes();
            word += 1;
            out += 8;
        }
        let rest = chunks.into_remainder();
        if !rest.is_empty() {
            // `cur` holds 8 - shift/8 bytes of word `word`; the rest come from the next word,
            // which exists when the tail reaches into it.
            let have = 8 - (shift / 8) as usize;
            let v = if rest.len() > have {
                cur | (load(word + 1) << (64 - shift))
            } else {
                cur
            };
            for (d, b) in rest.iter_mut().zip(v.to_le_bytes()) {
                *d = b;
            }
        }
        true
    }

    /// Asks the CPU to start loading the cache line holding byte `off` (nothing when it is out
    /// of bounds, or on targets without a prefetch instruction). Reads nothing and changes
    /// nothing the program can observe: it only lets a later load of that line find it
    /// cached, so that misses of lines whose addresses are known early overlap.
    #[inline(always)]
    pub(crate) fn prefetch(&self, off: usize) {
        #[cfg(all(target_arch = "x86_64", not(loom)))]
        if off < self.len_bytes() {
            // SAFETY:
            // - `off` is inside the block `new` was given (checked above), so the pointer is
            //   in bounds of one allocation (or mapping);
            // - a prefetch is a hint: it never faults and neither reads into the program nor
            //   writes, so no access rule of the shared memory is touched.
            unsafe {
                let p = self.base.as_ptr().cast::<u8>().add(off).cast::<i8>();
                core::arch::x86_64::_mm_prefetch::<{ core::arch::x86_64::_MM_HINT_T0 }>(p);
            }
        }
        #[cfg(not(all(target_arch = "x86_64", not(loom))))]
        let _ = off;
    }

    /// Compares the bytes at `off` with `expected` using relaxed word loads, without
    /// copying. `None` when the range is out of bounds.
    #[inline]
    pub(crate) fn eq_bytes(&self, off: usize, expected: &[u8]) -> Option<bool> {
        match off.checked_add(expected.len()) {
            Some(end) if end <= self.len_bytes() => {}
            _ => return None,
        }
        let mut word = off / 8;
        let mut skip = off % 8;
        let mut rest = expected;
        while !rest.is_empty() {
            let take = (8 - skip).min(rest.len());
            let have = self.word_in_bounds(word);
            let same = if take == 8 {
                // A whole word: one compare.
                have == u64::from_ne_bytes(rest[..8].try_into().expect("8 bytes"))
            } else {
                // The expected bytes placed where they sit in the word, and a mask of them:
                // one compare per partial word, no memcmp call.
                let mut want = [0u8; 8];
                let mut mask = [0u8; 8];
                want[skip..skip + take].copy_from_slice(&rest[..take]);
                mask[skip..skip + take].fill(0xFF);
                (have ^ u64::from_ne_bytes(want)) & u64::from_ne_bytes(mask) == 0
            };
            if !same {
                return Some(false);
            }
            rest = &rest[take..];
            skip = 0;
            word += 1;
        }
        Some(true)
    }

    /// Relaxed load of a word the caller has bounds-checked; out of bounds reads as 0
    /// rather than panicking.
    #[inline(always)]
    fn word_in_bounds(&self, idx: usize) -> u64 {
        debug_assert!(idx < self.words);
        if idx < self.words {
            // SAFETY:
            // - idx < words, so the pointer stays inside the block `new` was given;
            // - the block is valid and aligned for AtomicU64 (contract of `new`).
            unsafe { &*self.base.as_ptr().add(idx) }.load(Ordering::Relaxed)
        } else {
            0
        }
    }

    /// Copies `src` to byte `off` with relaxed word stores (writer only). Partial words at
    /// either end are merged with what is there; the writer is the only one storing, so a
    /// load-merge-store cannot lose a concurrent store.
    pub(crate) fn write_bytes(&self, off: usize, src: &[u8]) {
        let end = off + src.len();
        assert!(
            end <= self.len_bytes(),
            "writer wrote outside its own region"
        );
        let mut word = off / 8;
        let mut skip = off % 8;
        let mut inp = 0;
        while inp < src.len() {
            let take = (8 - skip).min(src.len() - inp);
            let w = self.word(word).expect("bounds checked above");
            let mut bytes = if take == 8 {
                [0u8; 8]
            } else {
                w.load(Ordering::Relaxed).to_ne_bytes()
            };
            bytes[skip..skip + take].copy_from_slice(&src[inp..inp + take]);
            w.store(u64::from_ne_bytes(bytes), Ordering::Relaxed);
            inp += take;
            skip = 0;
            word += 1;
        }
    }
}

/// Memory that backs a [`Region`]: a heap block (tests, loom) or a shared mapping.
pub(crate) struct Memory {
    region: Region,
    _owner: Owner,
}

enum Owner {
    /// A `Vec`, not a `Box`: every move of a `Box` (into this enum, into an `Arc`) asserts
    /// unique ownership of its block, which under the aliasing model invalidates the
    /// Region's pointer into it (Miri reports the Region's next access as undefined
    /// behaviour). Moving a `Vec` moves only its pointer, length and capacity.
    Heap(#[allow(dead_code)] Vec<AtomicU64>),
    #[cfg(not(loom))]
    Mapped(#[allow(dead_code)] memmap2::MmapRaw),
}

impl Memory {
    /// A zeroed heap block of `bytes` (rounded up to whole words).
    pub(crate) fn heap(bytes: usize) -> Memory {
        let words = bytes.div_ceil(8);
        let mut block: Vec<AtomicU64> = (0..words).map(|_| AtomicU64::new(0)).collect();
        // A raw pointer straight from the Vec: no reference to the block is made, so none
        // can be invalidated later.
        let base = NonNull::new(block.as_mut_ptr()).expect("a Vec's pointer is never null");
        // SAFETY:
        // - the Vec's buffer is aligned for AtomicU64 and holds `words` of them;
        // - it is owned by the returned Memory next to the Region, never resized and never
        //   moved out (moving the Vec does not move its buffer);
        // - it is only accessed through atomics.
        let region = unsafe { Region::new(base, words) };
        Memory {
            region,
            _owner: Owner::Heap(block),
        }
    }

    /// Wraps a mapping. `words` must not exceed the mapping.
    #[cfg(not(loom))]
    pub(crate) fn mapped(map: memmap2::MmapRaw) -> Memory {
        let words = map.len() / 8;
        let base = NonNull::new(map.as_mut_ptr().cast::<AtomicU64>())
            .expect("mmap never returns a null mapping");
        // SAFETY:
        // - mmap returns page-aligned memory, valid for map.len() bytes while `map` lives;
        // - `map` is owned by the returned Memory next to the Region;
        // - every party (this process and the others mapping the same file) touches it
        //   only through atomic word operations; read-only mappings are only loaded from.
        let region = unsafe { Region::new(base, words) };
        Memory {
            region,
            _owner: Owner::Mapped(map),
        }
    }

    #[inline]
    pub(crate) fn region(&self) -> &Region {
        &self.region
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;

    #[test]
    fn bytes_round_trip_at_every_alignment() {
        let mem = Memory::heap(128);
        let r = mem.region();
        for off in 0..16 {
            for len in 0..40 {
                let src: Vec<u8> = (0..len).map(|i| (i * 7 + off + 1) as u8).collect();
                r.write_bytes(off, &src);
                let mut dst = vec![0u8; len];
                assert!(r.read_bytes(off, &mut dst));
                assert_eq!(dst, src, "off {off} len {len}");
            }
        }
    }

    #[test]
    fn reads_up_to_the_end_at_every_alignment() {
        let mem = Memory::heap(64);
        let r = mem.region();
        let all: Vec<u8> = (0..64).map(|i| (i * 13 + 5) as u8).collect();
        r.write_bytes(0, &all);
        for off in 0..64 {
            let mut dst = vec![0u8; 64 - off];
            assert!(r.read_bytes(off, &mut dst), "off {off}");
            assert_eq!(dst, all[off..], "off {off}");
        }
    }

    #[test]
    fn partial_writes_keep_neighbours() {
        let mem = Memory::heap(32);
        let r = mem.region();
        r.write_bytes(0, &[0xAA; 32]);
        r.write_bytes(3, &[1, 2, 3]);
        let mut all = [0u8; 32];
        assert!(r.read_bytes(0, &mut all));
        assert_eq!(&all[..3], &[0xAA; 3]);
        assert_eq!(&all[3..6], &[1, 2, 3]);
        assert_eq!(&all[6..], &[0xAA; 26]);
    }

    #[test]
    fn out_of_bounds_reads_fail() {
        let mem = Memory::heap(16);
        let r = mem.region();
        let mut d = [0u8; 4];
        assert!(!r.read_bytes(14, &mut d));
        assert!(!r.read_bytes(usize::MAX - 1, &mut d));
        assert!(r.read_bytes(12, &mut d));
        assert!(r.load(2, Ordering::Relaxed).is_none());
    }
}
