//! `verify`: walks the live table a page of buckets at a time, checking every slot and entry as
//! a warm restart's carry would (`check.rs`), and with `repair` drops what fails.

use crate::check::{check_slot, CarriedEntry, DropCounts, DropReason};
use crate::layout::SLOTS_PER_BUCKET;
use crate::sync::Ordering;
use crate::walk::Cursor;
use crate::Writer;

/// One damaged entry of a [`VerifyPage`]: what could be read of it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BadEntry {
    /// The slot index (`bucket * 8 + i`).
    pub slot: u64,
    /// Why it failed.
    pub reason: DropReason,
    /// Its namespace and key, when they could be read (empty otherwise).
    pub namespace: String,
    /// See `namespace`.
    pub key: Vec<u8>,
}

/// What one page of [`Writer::verify_page`] found.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct VerifyPage {
    /// Where the next page starts; 0 once the whole index was visited.
    pub next: Cursor,
    /// Slots in use visited.
    pub examined: u64,
    /// Entries that failed, by reason: damage ([`DropReason::is_damage`]) plus, counted apart,
    /// expired and invalidated entries (normal: a read misses them, expiry reclaims them).
    pub counts: DropCounts,
    /// Damaged entries dropped (with `repair`).
    pub repaired: u64,
    /// The first damaged entries of the page, at most the `sample` asked for.
    pub sample: Vec<BadEntry>,
}

impl Writer {
    /// Verifies the buckets of the slots from `cursor` on, at least one bucket and about
    /// `max_slots` slots. With `repair`, clears the slots of damaged entries (a read then
    /// misses them instead of counting them corrupt). Keeps at most `sample` damaged entries.
    pub fn verify_page(
        &mut self,
        cursor: Cursor,
        max_slots: u64,
        now: u64,
        repair: bool,
        sample: usize,
    ) -> VerifyPage {
        let g = self.geo;
        let spb = SLOTS_PER_BUCKET as u64;
        let first = cursor / spb;
        let last = first
            .saturating_add((max_slots / spb).max(1))
            .min(g.bucket_count);
        let mut page = VerifyPage::default();
        let mut entries: Vec<CarriedEntry> = vec![CarriedEntry::default(); SLOTS_PER_BUCKET];
        for bucket in first..last {
            let mut verdict: [Option<Result<(), DropReason>>; SLOTS_PER_BUCKET] =
                [None; SLOTS_PER_BUCKET];
            for (i, e) in entries.iter_mut().enumerate() {
                let s = self.load_slot(bucket, i);
                if s == 0 {
                    continue;
                }
                page.examined += 1;
                e.namespace.clear();
                e.key.clear();
                verdict[i] = Some(check_slot(self.r(), &g, bucket, s, now, e));
            }
            // The same key in two slots: the older one is damage.
            for i in 0..SLOTS_PER_BUCKET {
                if verdict[i] != Some(Ok(())) {
                    continue;
                }
                let (e, mut dup) = (&entries[i], false);
                for j in 0..SLOTS_PER_BUCKET {
                    let o = &entries[j];
                    if j != i
                        && matches!(
                            verdict[j],
                            Some(Ok(()))
                                | Some(Err(DropReason::Expired))
                                | Some(Err(DropReason::Invalidated))
                        )
                        && o.key == e.key
                        && o.namespace == e.namespace
                        && (o.stamp, j) > (e.stamp, i)
                    {
                        dup = true;
                    }
                }
                if dup {
                    verdict[i] = Some(Err(DropReason::Duplicate));
                }
            }
            for (i, v) in verdict.iter().enumerate() {
                let Some(Err(reason)) = *v else { continue };
                page.counts.add(reason);
                if !reason.is_damage() {
                    continue;
                }
                if page.sample.len() < sample {
                    page.sample.push(BadEntry {
                        slot: bucket * spb + i as u64,
                        reason,
                        namespace: entries[i].namespace.clone(),
                        key: entries[i].key.clone(),
                    });
                }
                if repair {
                    let s = self.load_slot(bucket, i);
                    // Release: as a delete's clear; a reader that loads 0 misses.
                    self.r().store(g.slot_word(bucket, i), 0, Ordering::Release);
                    self.release(s);
                    page.repaired += 1;
                }
            }
        }
        page.next = if last >= g.bucket_count {
            0
        } else {
            last * spb
        };
        page
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use crate::testing::TableLayout;
    use crate::{Backing, InsertOptions, TableConfig, Writer};

    #[test]
    fn a_clean_table_verifies_and_a_damaged_entry_is_found_and_repaired() {
        let cfg = TableConfig {
            arena_bytes: 256 << 10,
            segment_bytes: Some(16 << 10),
            max_value_bytes: 4 << 10,
            tag_counters: 256,
            hash_seed: Some(5),
            ..TableConfig::default()
        };
        let mut w = Writer::create(&cfg, Backing::Heap).unwrap();
        let now = crate::now_ms();
        for i in 0..100u32 {
            let k = format!("k{i}");
            w.insert_at(
                "ns",
                k.as_bytes(),
                &[i as u8; 50],
                &InsertOptions::default(),
                now,
            )
            .unwrap();
        }
        let walk = |w: &mut Writer, repair| {
            let (mut c, mut damage, mut repaired, mut sample) = (0, 0, 0, Vec::new());
            loop {
                let p = w.verify_page(c, 64, now, repair, 4);
                damage += p.counts.damage();
                repaired += p.repaired;
                sample.extend(p.sample);
                c = p.next;
                if c == 0 {
                    return (damage, repaired, sample);
                }
            }
        };
        assert_eq!(walk(&mut w, false).0, 0);
        let span = TableLayout::of(&w).entry(&w, "ns", b"k7").unwrap();
        let at = span.value().start as usize;
        let b = w.raw_read(at, 1).unwrap()[0];
        w.raw_write(at, &[b ^ 0x40]);
        let (damage, repaired, sample) = walk(&mut w, false);
        assert_eq!((damage, repaired), (1, 0));
        assert_eq!(sample[0].key, b"k7");
        assert_eq!(sample[0].reason, crate::DropReason::CheckFailed);
        assert_eq!(walk(&mut w, true).1, 1, "repaired");
        assert_eq!(walk(&mut w, false).0, 0, "clean after the repair");
        assert!(w.reader().get("ns", b"k7").is_none());
        assert!(w.reader().get("ns", b"k8").is_some());
    }
}
