//! Model check of the reader/writer protocol with loom: a segment is recycled and
//! rewritten while a reader copies an entry out of it.
//!
//! Run: `RUSTFLAGS="--cfg loom" cargo test -p cachekit-shm --release --test loom -- --test-threads=1`.
//! Two more tests leave out one fence each (the reader's Acquire fence, the writer's
//! Release fence): the model must then find a torn read, so they are expected to panic.
#![cfg(loom)]

use cachekit_shm::weaken::{self, Fence};
use cachekit_shm::{Backing, InsertOptions, TableConfig, Writer};
use loom::sync::Arc;
use loom::thread;

const OLD: [u8; 16] = [0xAA; 16];
const NEW: [u8; 16] = [0x55; 16];

fn model(preemptions: usize, leave_out: Fence) {
    weaken::set(leave_out);
    let mut b = loom::model::Builder::new();
    b.preemption_bound = Some(preemptions);
    b.check(|| {
        let cfg = TableConfig {
            arena_bytes: 2 * 8192,
            segment_bytes: Some(8192),
            max_value_bytes: 64,
            expected_entry_bytes: 1 << 20,
            tag_counters: 1,
            hash_seed: Some(1),
            epoch: Some(1),
        };
        let mut w = Writer::create(&cfg, Backing::Heap).unwrap();
        w.insert("n", b"k", &OLD, &InsertOptions::default())
            .unwrap();
        let r = Arc::new(w.reader());
        let r2 = r.clone();
        let reader = thread::spawn(move || {
            let got = r2.get("n", b"k").map(|(v, _)| v);
            assert!(
                got.is_none()
                    || got.as_deref() == Some(&OLD[..])
                    || got.as_deref() == Some(&NEW[..]),
                "torn read: {got:?}"
            );
        });
        // Evict the only segment (its entry is dropped or copied forward), then write a
        // new value: the free list hands the recycled segment straight back, so the new
        // entry lands on the bytes the reader may be copying.
        assert!(w.evict());
        w.insert("n", b"k", &NEW, &InsertOptions::default())
            .unwrap();
        reader.join().unwrap();
        assert_eq!(
            r.stats().corrupt,
            0,
            "a torn copy slipped past the seqlock and was caught only by the check"
        );
    });
}

#[test]
fn recycled_segment_under_a_reader() {
    model(2, Fence::None);
}

#[test]
#[should_panic(expected = "torn")]
fn without_the_reader_fence_a_torn_read_is_found() {
    model(2, Fence::Reader);
}

#[test]
#[should_panic(expected = "torn")]
fn without_the_writer_fence_a_torn_read_is_found() {
    model(2, Fence::Writer);
}
