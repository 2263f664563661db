//! Figures of a warm restart's carry, for the notes: time to carry 1M entries and a 1 GiB table,
//! and the hit ratio of a read of every key right after a warm restart against a cold one.
//!
//! `cargo test --profile ci -p cachekit-shm --test carry_figures -- --ignored --nocapture`
//! (needs about 2.5 GiB of memory: the old and the new table side by side, as in the daemon).

#![cfg(not(loom))]

use cachekit_shm::{carry, Backing, InsertOptions, OldTable, TableConfig, Writer};

fn figures(label: &str, arena_bytes: u64, entries: usize, value_bytes: usize) {
    let cfg = TableConfig {
        arena_bytes,
        expected_entry_bytes: (value_bytes + 48) as u64,
        hash_seed: Some(15),
        ..TableConfig::default()
    };
    let mut old = Writer::create(&cfg, Backing::Heap).unwrap();
    let now = cachekit_shm::now_ms();
    let value = vec![0xA5u8; value_bytes];
    let tags: [&[&str]; 2] = [&[], &["posts/1"]];
    for i in 0..entries {
        let key = format!("key:{i:08}");
        let opts = InsertOptions {
            ttl_ms: Some(3_600_000),
            grace_ms: 0,
            tags: tags[i % 2],
        };
        old.insert_at("app", key.as_bytes(), &value, &opts, now)
            .unwrap();
    }
    let live = old.stat(cachekit_shm::Stat::LiveEntries);
    let src = OldTable::of_writer(&old);
    let mut new = Writer::create(&cfg, Backing::Heap).unwrap();
    let report = carry(&src, &mut new, now);
    // The same workload read right after the restart: every key once.
    let (warm, cold_table) = (new.reader(), Writer::create(&cfg, Backing::Heap).unwrap());
    let cold = cold_table.reader();
    let (mut warm_hits, mut cold_hits) = (0u64, 0u64);
    for i in 0..entries {
        let key = format!("key:{i:08}");
        warm_hits += u64::from(warm.get_at("app", key.as_bytes(), Some(now)).is_some());
        cold_hits += u64::from(cold.get_at("app", key.as_bytes(), Some(now)).is_some());
    }
    let secs = report.elapsed.as_secs_f64();
    eprintln!(
        "{label}: table {} MiB, {live} live entries of {value_bytes} B; carried {} ({} MiB of values) in {:.3} s \
         = {:.0} entries/s, {:.0} MiB/s; dropped {:?}; hit ratio of a read of every key written: \
         warm {:.1}%, cold {:.1}%",
        old.table_bytes() >> 20,
        report.carried,
        report.value_bytes >> 20,
        secs,
        report.carried as f64 / secs,
        (old.table_bytes() >> 20) as f64 / secs,
        report.dropped.named().into_iter().filter(|(_, n)| *n > 0).collect::<Vec<_>>(),
        100.0 * warm_hits as f64 / entries as f64,
        100.0 * cold_hits as f64 / entries as f64,
    );
    assert_eq!(report.carried, live);
    assert_eq!(report.dropped.total(), 0);
}

#[test]
fn carry_figures_small() {
    figures("10k entries", 8 << 20, 10_000, 100);
}

#[test]
#[ignore = "deep: figures for the notes, about 2.5 GiB of memory and a minute"]
fn deep_carry_figures_1m_entries_and_1_gib() {
    figures("1M entries", 256 << 20, 1_000_000, 100);
    figures("1 GiB", 1 << 30, 1_000_000, 900);
}
