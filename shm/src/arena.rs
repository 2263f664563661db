//! The writer's bookkeeping of arena segments: which are free, which is being filled for
//! each TTL class, and the FIFO of sealed segments eviction walks. Lives in the daemon's
//! own memory; readers never see it.

use std::collections::VecDeque;

/// Number of TTL classes. Entries of one class share segments, so segments expire whole.
pub(crate) const TTL_CLASSES: usize = 8;

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
    pub classes: [Class; TTL_CLASSES],
    pub next_seq: u64,
}

impl Arena {
    pub(crate) fn new(count: u32, header_bytes: u64) -> Arena {
        Arena {
            segs: vec![
                SegState {
                    class: 0,
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
            classes: Default::default(),
            next_seq: 1,
        }
    }

    /// Seals the active segment of `class`, if any.
    pub(crate) fn seal_active(&mut self, class: u8) {
        if let Some(a) = self.classes[class as usize].active.take() {
            self.segs[a as usize].used = Use::Sealed;
            self.classes[class as usize].sealed.push_back(a);
        }
    }

    /// Takes a free segment and makes it the active one of `class`.
    pub(crate) fn activate(&mut self, class: u8) -> Option<u32> {
        let s = self.free.pop()?;
        let seq = self.next_seq;
        self.next_seq += 1;
        let st = &mut self.segs[s as usize];
        st.class = class;
        st.used = Use::Active;
        st.alloc_seq = seq;
        st.max_grace = 0;
        self.classes[class as usize].active = Some(s);
        Some(s)
    }

    /// The oldest sealed segment across classes; failing that, the oldest active one.
    pub(crate) fn eviction_victim(&self) -> Option<u32> {
        let oldest =
            |it: &mut dyn Iterator<Item = u32>| it.min_by_key(|s| self.segs[*s as usize].alloc_seq);
        oldest(
            &mut self
                .classes
                .iter()
                .filter_map(|c| c.sealed.front().copied()),
        )
        .or_else(|| oldest(&mut self.classes.iter().filter_map(|c| c.active)))
    }

    /// Removes `seg` from whatever list holds it and marks it as being evicted.
    pub(crate) fn detach(&mut self, seg: u32) {
        let class = self.segs[seg as usize].class as usize;
        let c = &mut self.classes[class];
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
