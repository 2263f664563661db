//! Encrypted envelopes (flag bit 1): round trips from 0 B to 1 MiB, compressible and not; any
//! single tampered byte fails to decode (and every byte the AEAD covers fails as a decryption
//! failure); a ciphertext moved to another key, namespace or tenant fails authentication; key
//! rotation; no repeated nonce over many encryptions.

use std::collections::HashSet;

use cachekit_envelope::{
    decode_into_with, decode_with, encode_into_with, encode_with, encrypted_len_bound, peek_header,
    Aad, DecodeError, EnvelopeConfig, Keyring, MasterKey, ENCRYPTION_OVERHEAD, FLAG_AES_256_GCM,
    FLAG_LZ4, HEADER_LEN, SEALED_PREFIX_LEN,
};
use proptest::prelude::*;

const CFG: EnvelopeConfig = EnvelopeConfig {
    compress_threshold: 256,
    max_value_bytes: 1 << 20,
};

fn master(n: u8) -> MasterKey {
    MasterKey::from_bytes(std::array::from_fn(|i| n ^ (i as u8).wrapping_mul(29)))
}

fn ring(n: u8, tenant: &str) -> Keyring {
    Keyring::new(&master(n), &[], tenant.as_bytes())
}

/// xorshift bytes: LZ4 cannot shrink them.
fn noise(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect()
}

fn pattern(len: usize) -> Vec<u8> {
    b"secret customer record 0042; "
        .iter()
        .copied()
        .cycle()
        .take(len)
        .collect()
}

/// Sizes from 0 to 1 MiB, dense near the edges (0, the compression threshold, 1 MiB).
fn size() -> impl Strategy<Value = usize> {
    prop_oneof![
        0..300usize,
        300..70_000usize,
        Just(1usize << 20),
        ((1usize << 20) - 4096..=(1usize << 20)),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

    #[test]
    fn round_trips_from_0_bytes_to_1_mib(len in size(), compressible in any::<bool>(), seed in any::<u64>()) {
        let keys = ring(1, "shop");
        let aad = Aad::new("shop", b"cart:7");
        let value = if compressible { pattern(len) } else { noise(len, seed) };
        let env = encode_with(&CFG, Some(&keys), aad, &value).unwrap();
        prop_assert!(env.len() <= encrypted_len_bound(value.len()));
        prop_assert!(env[3] & FLAG_AES_256_GCM != 0);
        let lz4 = env[3] & FLAG_LZ4 != 0;
        prop_assert_eq!(lz4, compressible && len >= 256, "LZ4 as for a plaintext envelope");
        if !lz4 {
            prop_assert_eq!(env.len(), value.len() + ENCRYPTION_OVERHEAD);
        }
        prop_assert_eq!(decode_with(&CFG, Some(&keys), aad, &env).unwrap(), value.clone());
        // The plaintext appears nowhere in the envelope (for values long enough to tell).
        if len >= 16 {
            let probe = &value[len / 2 - 8..len / 2 + 8];
            prop_assert!(!env.windows(16).any(|w| w == probe));
        }
    }

    #[test]
    fn any_single_tampered_byte_fails(len in 0..2000usize, compressible in any::<bool>(), at in any::<prop::sample::Index>(), bit in 0..8u8) {
        let keys = ring(1, "shop").require_encryption(true);
        let aad = Aad::new("shop", b"cart:7");
        let value = if compressible { pattern(len) } else { noise(len, 7) };
        let mut env = encode_with(&CFG, Some(&keys), aad, &value).unwrap();
        let i = at.index(env.len());
        env[i] ^= 1 << bit;
        let err = decode_with(&CFG, Some(&keys), aad, &env).unwrap_err();
        // Bytes 0..4 are checked before anything else (magic, version, flags: the typed
        // structural errors; clearing the encryption bit makes a "plaintext" value, refused
        // because this keyring requires encryption). From byte 4 on, the AEAD decides.
        if i >= 4 {
            prop_assert!(err.is_decrypt_failure(), "byte {} bit {}: {}", i, bit, err);
        }
    }
}

#[test]
fn every_byte_of_an_envelope_is_covered() {
    // The exhaustive version of the property above, for one raw and one LZ4 envelope: every
    // bit of every byte.
    for value in [noise(100, 3), pattern(4096)] {
        let keys = ring(1, "shop");
        let aad = Aad::new("shop", b"cart:7");
        let env = encode_with(&CFG, Some(&keys), aad, &value).unwrap();
        for i in 0..env.len() {
            for bit in 0..8 {
                let mut bad = env.clone();
                bad[i] ^= 1 << bit;
                match decode_with(&CFG, Some(&keys), aad, &bad) {
                    Ok(v) => panic!(
                        "byte {i} bit {bit} flipped still decoded ({} bytes)",
                        v.len()
                    ),
                    Err(e) if i >= 4 => assert!(e.is_decrypt_failure(), "byte {i} bit {bit}: {e}"),
                    Err(_) => {}
                }
            }
        }
        // Cut short or extended by one byte: a decryption failure too.
        for cut in [&env[..env.len() - 1], &env[..ENCRYPTION_OVERHEAD - 1]] {
            let e = decode_with(&CFG, Some(&keys), aad, cut).unwrap_err();
            assert!(e.is_decrypt_failure(), "{e}");
        }
        let mut longer = env.clone();
        longer.push(0);
        let e = decode_with(&CFG, Some(&keys), aad, &longer).unwrap_err();
        assert!(e.is_decrypt_failure(), "{e}");
    }
}

#[test]
fn moved_to_another_key_namespace_or_tenant_fails() {
    let keys = ring(1, "shop");
    let env = encode_with(&CFG, Some(&keys), Aad::new("shop", b"cart:7"), b"card 4111").unwrap();
    for (ns, key) in [
        ("shop", &b"cart:8"[..]),
        ("shop2", b"cart:7"),
        ("sho", b"pcart:7"),
    ] {
        let e = decode_with(&CFG, Some(&keys), Aad::new(ns, key), &env).unwrap_err();
        assert!(
            matches!(e, DecodeError::Authentication),
            "{ns}/{key:?}: {e}"
        );
    }
    // Another tenant's keyring (same master): its key id differs, so "not your key".
    let other = ring(1, "bank");
    let e = decode_with(&CFG, Some(&other), Aad::new("shop", b"cart:7"), &env).unwrap_err();
    assert!(matches!(e, DecodeError::UnknownKeyId { .. }), "{e}");
    assert!(e.to_string().contains("none of this client's keys"), "{e}");
    // A wrong master key: the same.
    let e = decode_with(
        &CFG,
        Some(&ring(2, "shop")),
        Aad::new("shop", b"cart:7"),
        &env,
    )
    .unwrap_err();
    assert!(e.is_decrypt_failure(), "{e}");
    // And with the key id forged to match, the tag still does not verify.
    let mut forged = env.clone();
    forged[8..12].copy_from_slice(&ring(2, "shop").key_id().to_le_bytes());
    let e = decode_with(
        &CFG,
        Some(&ring(2, "shop")),
        Aad::new("shop", b"cart:7"),
        &forged,
    )
    .unwrap_err();
    assert!(matches!(e, DecodeError::Authentication), "{e}");
}

#[test]
fn without_a_key_and_with_require_encryption() {
    let keys = ring(1, "shop");
    let aad = Aad::new("shop", b"k");
    let sealed = encode_with(&CFG, Some(&keys), aad, b"v").unwrap();
    let e = decode_with(&CFG, None, aad, &sealed).unwrap_err();
    assert!(matches!(e, DecodeError::Encrypted), "{e}");
    assert!(e.to_string().contains("CACHEKIT_MASTER_KEY"), "{e}");
    assert!(matches!(peek_header(&sealed), Err(DecodeError::Encrypted)));
    let plain = encode_with(&CFG, None, aad, b"v").unwrap();
    assert_eq!(decode_with(&CFG, Some(&keys), aad, &plain).unwrap(), b"v");
    let strict = ring(1, "shop").require_encryption(true);
    let e = decode_with(&CFG, Some(&strict), aad, &plain).unwrap_err();
    assert!(matches!(e, DecodeError::Plaintext), "{e}");
    // Counters are plaintext by nature: accepted even so.
    let counter = cachekit_envelope::encode_integer(41);
    assert_eq!(
        decode_with(&CFG, Some(&strict), aad, &counter).unwrap(),
        b"41"
    );
    // But the flag alone is no pass: a flagged payload that is not an integer, or a
    // compressed one, is plaintext like any other.
    let mut smuggled = encode_with(&CFG, None, aad, b"secret").unwrap();
    smuggled[3] = cachekit_envelope::FLAG_INTEGER;
    let e = decode_with(&CFG, Some(&strict), aad, &smuggled).unwrap_err();
    assert!(matches!(e, DecodeError::Plaintext), "{e}");
    let mut packed = counter.clone();
    packed[3] |= FLAG_LZ4;
    let e = decode_with(&CFG, Some(&strict), aad, &packed).unwrap_err();
    assert!(matches!(e, DecodeError::Plaintext), "{e}");
}

#[test]
fn rotation_reads_old_values_and_writes_with_the_new_key() {
    let old = Keyring::new(&master(1), &[], b"shop");
    let rotated = Keyring::new(&master(2), &[master(1)], b"shop");
    let aad = Aad::new("shop", b"k");
    let before = encode_with(&CFG, Some(&old), aad, b"old value").unwrap();
    assert_eq!(
        decode_with(&CFG, Some(&rotated), aad, &before).unwrap(),
        b"old value"
    );
    let after = encode_with(&CFG, Some(&rotated), aad, b"new value").unwrap();
    assert_eq!(
        u32::from_le_bytes(after[8..12].try_into().unwrap()),
        rotated.key_id()
    );
    assert_ne!(rotated.key_id(), old.key_id());
    assert!(decode_with(&CFG, Some(&old), aad, &after)
        .unwrap_err()
        .is_decrypt_failure());
}

#[test]
fn over_the_limit_is_refused_after_authenticating() {
    let keys = ring(1, "t");
    let aad = Aad::new("t", b"k");
    let env = encode_with(&CFG, Some(&keys), aad, &pattern(5000)).unwrap();
    let small = EnvelopeConfig {
        max_value_bytes: 4096,
        ..CFG
    };
    let e = decode_with(&small, Some(&keys), aad, &env).unwrap_err();
    assert!(
        matches!(
            e,
            DecodeError::TooLarge {
                len: 5000,
                max: 4096
            }
        ),
        "{e}"
    );
    let mut out = vec![1, 2, 3];
    assert!(decode_into_with(&small, Some(&keys), aad, &env, &mut out).is_err());
    assert!(out.is_empty(), "nothing is left in the output on error");
}

#[test]
fn the_header_is_the_documented_one() {
    let keys = ring(1, "t");
    let env = encode_with(&CFG, Some(&keys), Aad::new("t", b"k"), b"hello").unwrap();
    assert_eq!(&env[..4], &[0xF8, 0x4B, 1, FLAG_AES_256_GCM]);
    assert_eq!(&env[4..8], &5u32.to_le_bytes());
    assert_eq!(&env[8..12], &keys.key_id().to_le_bytes());
    assert_eq!(&env[12..16], &[0; 4]);
    assert_eq!(env.len(), SEALED_PREFIX_LEN + 5 + 16);
    assert_eq!(HEADER_LEN + 12, SEALED_PREFIX_LEN);
}

/// Encrypts `n` short values and checks that no nonce repeats (kept as 12-byte arrays, sorted).
fn no_repeated_nonce(n: usize) {
    let keys = ring(1, "t");
    let aad = Aad::new("t", b"k");
    let mut env = Vec::new();
    let mut nonces: Vec<[u8; 12]> = Vec::with_capacity(n);
    for _ in 0..n {
        encode_into_with(&CFG, Some(&keys), aad, b"x", &mut env).unwrap();
        nonces.push(env[HEADER_LEN..SEALED_PREFIX_LEN].try_into().unwrap());
    }
    nonces.sort_unstable();
    let repeats = nonces.windows(2).filter(|w| w[0] == w[1]).count();
    assert_eq!(repeats, 0, "{repeats} repeated nonces in {n} encryptions");
}

#[test]
fn one_million_encryptions_repeat_no_nonce() {
    // The set also shows the nonces are not a counter or constant in some bytes: every byte
    // position takes many values.
    let keys = ring(1, "t");
    let aad = Aad::new("t", b"k");
    let mut env = Vec::new();
    let mut seen = HashSet::with_capacity(1 << 20);
    for _ in 0..1_000_000 {
        encode_into_with(&CFG, Some(&keys), aad, b"x", &mut env).unwrap();
        let nonce: [u8; 12] = env[HEADER_LEN..SEALED_PREFIX_LEN].try_into().unwrap();
        assert!(seen.insert(nonce), "nonce {nonce:02x?} repeated");
    }
    for pos in 0..12 {
        let distinct: HashSet<u8> = seen.iter().take(10_000).map(|n| n[pos]).collect();
        assert!(
            distinct.len() > 200,
            "nonce byte {pos} takes only {} values",
            distinct.len()
        );
    }
}

#[test]
#[ignore = "10 M encryptions (about 10 s and 120 MB): run by scripts/test --deep"]
fn deep_ten_million_encryptions_repeat_no_nonce() {
    no_repeated_nonce(10_000_000);
}
