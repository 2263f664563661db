//! Encryption: an encrypted hit beside a plain one (same daemon, same sizes, the Rust client's
//! `get_into`), with the client's memo of opened values (the default) and without it (every hit
//! opens the value), and AES-256-GCM throughput of the envelope alone (seal = encrypt with a
//! fresh nonce, open = authenticate and decrypt), on incompressible values.

use crate::daemon::Daemon;
use crate::timing::{time_ops, Summary};
use cachekit_client::{
    ClientOptions, Encryption, MasterKey, SetOptions, DEFAULT_MEMO_BYTES, MEMO_MAX_VALUE_BYTES,
};
use cachekit_envelope::{decode_into_with, encode_into_with, Aad, EnvelopeConfig, Keyring};
use serde_json::{json, Value};
use std::hint::black_box;
use std::time::Duration;

/// Sizes of the rows: the 100 B, 4 KiB and 64 KiB.
const SIZES: [usize; 3] = [100, 4096, 65536];

/// Interleaved rounds per size.
const ROUNDS: usize = 5;

fn random(n: usize, seed: u64) -> Vec<u8> {
    let mut x = seed | 1;
    (0..n)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect()
}

/// Plain and encrypted hits at each size (at most `keys` keys each, `ops` timed gets per
/// client), and the AEAD's throughput. Three clients read the same keys in interleaved rounds:
/// plain; encrypted with the default memo of opened values; encrypted with the memo off. The
/// working set is capped so that it fits the default memo (about half its budget), so the memo
/// row is the repeated read of a warm working set.
pub fn hits(daemon: &Daemon, keys: usize, ops: usize) -> Value {
    let plain = daemon.client("crypt-plain");
    let sealed_with = |memo: usize| {
        let opts = ClientOptions::new()
            .socket(daemon.socket())
            .namespace("crypt-sealed")
            .encryption(Encryption::new(MasterKey::from_bytes([0x5A; 32])).memo_bytes(memo));
        cachekit_client::Client::connect(opts).expect("an encrypting client")
    };
    let sealed = sealed_with(DEFAULT_MEMO_BYTES);
    let opening = sealed_with(0);
    let set = SetOptions::new().ttl(Duration::from_secs(3600));
    let mut rows = Vec::new();
    for &size in &SIZES {
        // An entry of the memo holds the envelope (size + 44) and the plaintext; values over
        // MEMO_MAX_VALUE_BYTES are not kept (the memo row then opens every hit too).
        let fits = match size <= MEMO_MAX_VALUE_BYTES {
            true => DEFAULT_MEMO_BYTES / 2 / (2 * size + 200),
            false => usize::MAX,
        };
        let n = keys.min((8 << 20) / size).min(fits).max(16);
        let names: Vec<Vec<u8>> = (0..n)
            .map(|i| format!("c{size}:{i}").into_bytes())
            .collect();
        for (i, k) in names.iter().enumerate() {
            let v = random(size, i as u64 + 1);
            plain.set(k, &v, &set).expect("plain set");
            sealed.set(k, &v, &set).expect("sealed set");
        }
        let mut out = Vec::with_capacity(size);
        let mut time = |c: &cachekit_client::Client| -> Summary {
            let mut i = 0;
            time_ops(ops.div_ceil(ROUNDS), || {
                let k = &names[i % n];
                i += 1;
                let hit = c.get_into(black_box(k), &mut out).expect("get");
                assert!(hit.is_some(), "a pre-set key missed");
            })
        };
        // Interleaved rounds (plain, memo, no memo, plain, ...), each side the median of its
        // rounds' percentiles: what runs first on a cold or busy core does not decide the ratio.
        let (mut ps, mut ss, mut os) = (Vec::new(), Vec::new(), Vec::new());
        for _ in 0..ROUNDS {
            ps.push(time(&plain));
            ss.push(time(&sealed));
            os.push(time(&opening));
        }
        let (p, s, o) = (
            Summary::median_of(&ps),
            Summary::median_of(&ss),
            Summary::median_of(&os),
        );
        rows.push(json!({
            "value_bytes": size,
            "keys": n,
            "plain": p.json(),
            "encrypted": s.json(),
            "encrypted_no_memo": o.json(),
            "ratio_p50": s.p50 / p.p50.max(1.0),
            "ratio_no_memo_p50": o.p50 / p.p50.max(1.0),
        }));
    }
    json!({
        "hits": rows,
        "aead": aead(ops),
        "memo_bytes": DEFAULT_MEMO_BYTES,
        "memo_max_value_bytes": MEMO_MAX_VALUE_BYTES,
    })
}

/// Seal and open of the envelope at each size, in bytes per second.
fn aead(ops: usize) -> Value {
    let cfg = EnvelopeConfig::DEFAULT;
    let master = MasterKey::from_bytes([0x33; 32]);
    let keys = Keyring::new(&master, &[], b"bench");
    let mut rows = Vec::new();
    for &size in &SIZES {
        let value = random(size, 9);
        let aad = || Aad::new("bench", b"k");
        let mut sealed = Vec::new();
        let mut opened = Vec::new();
        let n = (ops * 100 / size.max(100)).max(200);
        let seal = time_ops(n, || {
            encode_into_with(&cfg, Some(&keys), aad(), black_box(&value), &mut sealed)
                .expect("seal");
        });
        let open = time_ops(n, || {
            decode_into_with(&cfg, Some(&keys), aad(), black_box(&sealed), &mut opened)
                .expect("open");
        });
        assert_eq!(opened, value);
        let gbps = |s: &Summary| size as f64 / s.p50.max(1.0);
        rows.push(json!({
            "value_bytes": size,
            "seal": seal.json(),
            "open": open.json(),
            "seal_gb_per_s": gbps(&seal),
            "open_gb_per_s": gbps(&open),
        }));
    }
    json!(rows)
}
