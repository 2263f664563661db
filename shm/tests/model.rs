//! The table against a plain `HashMap` oracle that models TTL, grace, hierarchical and
//! exact tags, namespaces, deletes and clears, on both backings.
//!
//! With a table large enough never to evict, the table must agree with the oracle on
//! every read, hits and misses alike. With a tiny table that evicts all the time, a hit
//! must still be exactly the oracle's value (eviction may only turn hits into misses).

mod common;

use cachekit_shm::*;
use common::{table, BACKINGS};
use proptest::prelude::*;
use std::collections::HashMap;

const NAMESPACES: [&str; 3] = ["", "app", "other"];
const TAGS: [&str; 6] = ["a", "a/b", "a/b/c", "a/c", "b", "b/a"];
const T0: u64 = 1_700_000_000_000;

#[derive(Clone, Debug)]
enum Op {
    Insert {
        ns: usize,
        key: u8,
        value: Vec<u8>,
        ttl: Option<u64>,
        grace: u64,
        tags: Vec<usize>,
    },
    Delete {
        ns: usize,
        key: u8,
    },
    Invalidate {
        ns: usize,
        tag: usize,
        exact: bool,
    },
    ClearNamespace {
        ns: usize,
    },
    ClearAll,
    Advance {
        ms: u64,
    },
    Expire,
    Get {
        ns: usize,
        key: u8,
    },
}

fn op() -> impl Strategy<Value = Op> {
    let ns = 0..NAMESPACES.len();
    let key = 0u8..12;
    prop_oneof![
        6 => (ns.clone(), key.clone(), prop::collection::vec(any::<u8>(), 0..600),
              prop::option::weighted(0.6, 0u64..4_000), 0u64..3_000,
              prop::collection::vec(0..TAGS.len(), 0..3))
            .prop_map(|(ns, key, value, ttl, grace, tags)| Op::Insert { ns, key, value, ttl, grace, tags }),
        1 => (ns.clone(), key.clone()).prop_map(|(ns, key)| Op::Delete { ns, key }),
        2 => (ns.clone(), 0..TAGS.len(), any::<bool>()).prop_map(|(ns, tag, exact)| Op::Invalidate { ns, tag, exact }),
        1 => ns.clone().prop_map(|ns| Op::ClearNamespace { ns }),
        1 => Just(Op::ClearAll),
        3 => (0u64..2_500).prop_map(|ms| Op::Advance { ms }),
        1 => Just(Op::Expire),
        6 => (ns, key).prop_map(|(ns, key)| Op::Get { ns, key }),
    ]
}

#[derive(Clone, Debug)]
struct Model {
    value: Vec<u8>,
    created: u64,
    ttl: Option<u64>,
    grace: u64,
    tags: Vec<&'static str>,
}

impl Model {
    fn expires(&self) -> Option<u64> {
        self.ttl.map(|t| self.created + t)
    }
    fn grace_until(&self) -> Option<u64> {
        self.expires().map(|e| e + self.grace)
    }
}

#[derive(Default)]
struct Oracle {
    live: HashMap<(usize, u8), Model>,
}

impl Oracle {
    fn visible(&self, ns: usize, key: u8, now: u64) -> Option<&Model> {
        self.live
            .get(&(ns, key))
            .filter(|m| m.grace_until().is_none_or(|g| now < g))
    }
    fn invalidate(&mut self, ns: usize, tag: &str, exact: bool) {
        let under = format!("{tag}/");
        self.live.retain(|(n, _), m| {
            *n != ns
                || !m
                    .tags
                    .iter()
                    .any(|t| *t == tag || (!exact && t.starts_with(&under)))
        });
    }
}

/// Runs `ops`, checking reads. `strict`: every read must agree with the oracle.
fn run(ops: &[Op], cfg: &TableConfig, backing: Backing, strict: bool) -> Result<(), TestCaseError> {
    let (mut w, r) = table(cfg, backing);
    let mut o = Oracle::default();
    let mut now = T0;
    let check =
        |r: &Reader, o: &Oracle, ns: usize, key: u8, now: u64| -> Result<(), TestCaseError> {
            let got = r.get_at(NAMESPACES[ns], &[key], Some(now));
            match (got, o.visible(ns, key, now)) {
                (Some((v, meta)), Some(m)) => {
                    prop_assert_eq!(&v, &m.value, "value of {}/{}", ns, key);
                    prop_assert_eq!(meta.created_ms, m.created);
                    prop_assert_eq!(meta.expires_ms, m.expires());
                    prop_assert_eq!(meta.grace_until_ms, m.grace_until());
                    prop_assert_eq!(meta.stale, m.expires().is_some_and(|e| now >= e));
                }
                (Some((v, _)), None) => {
                    prop_assert!(false, "stale or phantom hit {:?} for {}/{}", v, ns, key)
                }
                (None, Some(_)) if strict => prop_assert!(false, "miss for live {}/{}", ns, key),
                (None, _) => {}
            }
            Ok(())
        };
    for op in ops {
        match op {
            Op::Insert {
                ns,
                key,
                value,
                ttl,
                grace,
                tags,
            } => {
                let tags: Vec<&'static str> = tags.iter().map(|t| TAGS[*t]).collect();
                let opts = InsertOptions {
                    ttl_ms: *ttl,
                    grace_ms: *grace,
                    tags: &tags,
                };
                w.insert_at(NAMESPACES[*ns], &[*key], value, &opts, now)
                    .unwrap();
                o.live.insert(
                    (*ns, *key),
                    Model {
                        value: value.clone(),
                        created: now,
                        ttl: *ttl,
                        grace: *grace,
                        tags,
                    },
                );
            }
            Op::Delete { ns, key } => {
                let was = w.delete(NAMESPACES[*ns], &[*key]);
                if strict {
                    // The oracle forgets expired entries lazily; the table may still hold them.
                    prop_assert!(was || o.visible(*ns, *key, now).is_none());
                }
                o.live.remove(&(*ns, *key));
            }
            Op::Invalidate { ns, tag, exact } => {
                let mode = if *exact {
                    InvalidateMode::Exact
                } else {
                    InvalidateMode::Hierarchical
                };
                w.invalidate_at(NAMESPACES[*ns], TAGS[*tag], mode, now)
                    .unwrap();
                o.invalidate(*ns, TAGS[*tag], *exact);
            }
            Op::ClearNamespace { ns } => {
                w.clear_namespace_at(NAMESPACES[*ns], now);
                o.live.retain(|(n, _), _| n != ns);
            }
            Op::ClearAll => {
                w.clear_all();
                o.live.clear();
            }
            Op::Advance { ms } => now += ms,
            Op::Expire => {
                w.expire_at(now);
            }
            Op::Get { ns, key } => check(&r, &o, *ns, *key, now)?,
        }
    }
    for ns in 0..NAMESPACES.len() {
        for key in 0..12 {
            check(&r, &o, ns, key, now)?;
        }
    }
    if strict {
        prop_assert_eq!(
            w.stat(Stat::Evictions) + w.stat(Stat::BucketEvictions),
            0,
            "strict runs must not evict"
        );
    }
    Ok(())
}

fn roomy() -> TableConfig {
    TableConfig {
        arena_bytes: 2 << 20,
        segment_bytes: Some(64 << 10),
        max_value_bytes: 4 << 10,
        tag_counters: 1 << 20,
        // Fixed: with the small tag alphabet above, no two tag counters collide (a
        // collision would only cause extra misses, which the strict model forbids).
        hash_seed: Some(0xC0FFEE),
        ..TableConfig::default()
    }
}

fn tiny() -> TableConfig {
    TableConfig {
        arena_bytes: 32 << 10,
        segment_bytes: Some(8 << 10),
        max_value_bytes: 1 << 10,
        expected_entry_bytes: 512,
        tag_counters: 64,
        hash_seed: Some(7),
        ..TableConfig::default()
    }
}

/// Cases per property, and operations per case of the evicting model: fewer under Miri,
/// which runs about a thousand times slower.
const CASES: u32 = if cfg!(miri) { 2 } else { 192 };
const EVICTING_OPS: usize = if cfg!(miri) { 40 } else { 300 };

proptest! {
    #![proptest_config(ProptestConfig { cases: CASES, ..ProptestConfig::default() })]

    #[test]
    #[cfg_attr(miri, ignore = "a 10 MiB table (2^20 tag counters): hours under Miri; the evicting model below runs instead")]
    fn agrees_with_the_oracle(ops in prop::collection::vec(op(), 1..120)) {
        for b in BACKINGS {
            run(&ops, &roomy(), b, true)?;
        }
    }

    #[test]
    fn evicting_never_returns_a_wrong_value(ops in prop::collection::vec(op(), 1..EVICTING_OPS)) {
        for b in BACKINGS {
            run(&ops, &tiny(), b, false)?;
        }
    }
}
