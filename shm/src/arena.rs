//! The writer's bookkeeping of arena segments: which are free, which is being filled for
//! each lane, and the FIFOs of sealed segments eviction walks. Lives in the daemon's own
//! memory; readers never see it.
//!
//! Eviction is S3-FIFO over whole segments. Every TTL class has two lanes: **small**
//! (probationary: new keys) and **main** (keys read while in small, and keys the ghost
//! remembers as recently evicted from small). Eviction takes the oldest small segment while
//! small segments are at least [`SMALL_PERCENT`] of the segments in use, else the oldest
//! main one; see `Writer::evict_segment` for what happens to the entries.

use std::collections::VecDeque;

/// Number of TTL classes. Entries of one class share segments, so segments expire whole.
pub(crate) const TTL_CLASSES: usize = 8;

/// Lanes: a small and a main lane per TTL class.
pub(crate) const LANES: usize = 2 * TTL_CLASSES;

/// Share of the segments in use (percent) the small lanes may hold before eviction turns to
/// them. S3-FIFO's paper uses 10%; over whole segments 3% measured best with the ghost of
/// `Writer` (`cachekit-bench ratio`; 1–30% tried, 10% 0.8–1.6 points lower at the small capacity), see
/// docs/ARCHITECTURE.md "Eviction". In practice the small lanes are their active segments and
/// one or two sealed ones.
pub(crate) const SMALL_PERCENT: usize = 3;

/// The lane of TTL class `class`: small or main.
pub(crate) fn lane(class: u8, main: bool) -> u8 {
    class + if main { TTL_CLASSES as u8 } else { 0 }
}

/// True for a main lane.
pub(crate) fn is_main(lane: u8) -> bool {
    lane as usize >= TTL_CLASSES
}

/// TTL class of an entry: upper bounds in ms for classes 0..=5, then "longer", then "never".
pub(crate) fn ttl_class(ttl_ms: Option<u64>) -> u8 {
    const BOUNDS: [u64; 6] = [1_000, 10_000, 60_000, 600_000, 3_600_000, 86_400_000];
    match ttl_ms {
        None => 7,
        Some(t) => BOUNDS.iter().position(|b| t <= *b).unwrap_or(6) as u8,
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Use {
    Free,
    Active,
    Sealed,
    /// Being walked by eviction; must not be recycled from under the walk.
    Evicting,
}

#[derive(Clone, Copy, Debug)]
pub(crate) struct SegState {
    pub class: u8,
    /// Its lane (see [`lane`]).
    pub lane: u8,
    pub used: Use,
    /// Index slots that point into this segment.
    pub live: u32,
    /// Bytes written, including the segment header.
    pub write_off: u64,
    pub alloc_seq: u64,
    /// Latest grace deadline of its entries (u64::MAX = never).
    pub max_grace: u64,
}

#[derive(Default)]
pub(crate) struct Class {
    pub active: Option<u32>,
    /// Sealed segments, oldest first.
    pub sealed: VecDeque<u32>,
}

pub(crate) struct Arena {
    pub segs: Vec<SegState>,
    pub free: Vec<u32>,
    /// By lane.
    pub lanes: [Class; LANES],
    pub next_seq: u64,
}

impl Arena {
    pub(crate) fn new(count: u32, header_bytes: u64) -> Arena {
        Arena {
            segs: vec![
                SegState {
                    class: 0,
                    lane: 0,
                    used: Use::Free,
                    live: 0,
                    write_off: header_bytes,
                    alloc_seq: 0,
                    max_grace: 0,
                };
                count as usize
            ],
            // Pop from the end: hand out low segments first.
            free: (0..count).rev().collect(),
            lanes: Default::default(),
            next_seq: 1,
        }
    }

    /// Seals the active segment of `lane`, if any.
    pub(crate) fn seal_active(&mut self, lane: u8) {
        if let Some(a) = self.lanes[lane as usize].active.take() {
            self.segs[a as usize].used = Use::Sealed;
            self.lanes[lane as usize].sealed.push_back(a);
        }
    }

    /// Takes a free segment and makes it the active one of `lane` (TTL class `class`).
    pub(crate) fn activate(&mut self, lane: u8, class: u8) -> Option<u32> {
        let s = self.free.pop()?;
        let seq = self.next_seq;
        self.next_seq += 1;
        let st = &mut self.segs[s as usize];
        st.class = class;
        st.lane = lane;
        st.used = Use::Active;
        st.alloc_seq = seq;
        st.max_grace = 0;
        self.lanes[lane as usize].active = Some(s);
        Some(s)
    }

    /// Segments in use (active or sealed) in the small lanes and in all lanes.
    fn in_use(&self) -> (usize, usize) {
        let mut small = 0;
        let mut all = 0;
        for (i, c) in self.lanes.iter().enumerate() {
            let n = c.sealed.len() + usize::from(c.active.is_some());
            all += n;
            if !is_main(i as u8) {
                small += n;
            }
        }
        (small, all)
    }

    /// The next segment to evict: the oldest sealed small segment while the small lanes hold
    /// at least [`SMALL_PERCENT`] of the segments in use, else the oldest sealed main one;
    /// failing those, the oldest sealed segment of any lane, then the oldest active one.
    pub(crate) fn eviction_victim(&self) -> Option<u32> {
        let oldest =
            |it: &mut dyn Iterator<Item = u32>| it.min_by_key(|s| self.segs[*s as usize].alloc_seq);
        let sealed = |main: bool| {
            oldest(
                &mut self
                    .lanes
                    .iter()
                    .enumerate()
                    .filter(|(i, _)| is_main(*i as u8) == main)
                    .filter_map(|(_, c)| c.sealed.front().copied()),
            )
        };
        let (small, all) = self.in_use();
        let small_first = small * 100 >= all * SMALL_PERCENT;
        sealed(!small_first)
            .or_else(|| sealed(small_first))
            .or_else(|| oldest(&mut self.lanes.iter().filter_map(|c| c.active)))
    }

    /// Removes `seg` from whatever list holds it and marks it as being evicted.
    pub(crate) fn detach(&mut self, seg: u32) {
        let lane = self.segs[seg as usize].lane as usize;
        let c = &mut self.lanes[lane];
        if c.active == Some(seg) {
            c.active = None;
        } else {
            c.sealed.retain(|s| *s != seg);
        }
        self.segs[seg as usize].used = Use::Evicting;
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;

    #[test]
    fn classes() {
        assert_eq!(ttl_class(None), 7);
        assert_eq!(ttl_class(Some(0)), 0);
        assert_eq!(ttl_class(Some(1_000)), 0);
        assert_eq!(ttl_class(Some(1_001)), 1);
        assert_eq!(ttl_class(Some(86_400_001)), 6);
    }
}
