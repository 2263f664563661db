//! AES-256-GCM from ring and from RustCrypto `aes-gcm`, at the sizes cachekit values have
//! (100 B, 4 KiB, 64 KiB): the measurement the crate's choice of ring rests on. Then the
//! encrypted envelope itself (encode and decode, which add the header, the random nonce and
//! the associated data) next to the plain one.
//!
//! ```text
//! cargo bench -p cachekit-envelope --bench aead
//! ```

use std::hint::black_box;

use aes_gcm::aead::AeadInOut;
use aes_gcm::{Aes256Gcm, KeyInit};
use cachekit_envelope::{
    decode_into, decode_into_with, encode_into, encode_into_with, Aad, EnvelopeConfig, Keyring,
    MasterKey,
};
use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use ring::aead::{Aad as RingAad, LessSafeKey, Nonce, UnboundKey, AES_256_GCM};

const SIZES: [usize; 3] = [100, 4 << 10, 64 << 10];
const KEY: [u8; 32] = [7; 32];
const NONCE: [u8; 12] = [9; 12];
const AAD: &[u8] = b"header0123456789\x07default\x08\x00\x00\x00user:123";

fn aead(c: &mut Criterion) {
    let ring_key = LessSafeKey::new(UnboundKey::new(&AES_256_GCM, &KEY).unwrap());
    let rc = Aes256Gcm::new_from_slice(&KEY).unwrap();
    for (op, open) in [("seal", false), ("open", true)] {
        let mut g = c.benchmark_group(format!("aes_256_gcm_{op}"));
        for size in SIZES {
            g.throughput(Throughput::Bytes(size as u64));
            let mut buf = vec![0x5Au8; size];
            // For "open": a valid ciphertext and tag of each library, decrypted from a copy.
            let ring_ct = {
                let mut b = buf.clone();
                let tag = ring_key
                    .seal_in_place_separate_tag(
                        Nonce::assume_unique_for_key(NONCE),
                        RingAad::from(AAD),
                        &mut b,
                    )
                    .unwrap();
                b.extend_from_slice(tag.as_ref());
                b
            };
            let rc_ct = {
                let mut b = buf.clone();
                let tag = rc
                    .encrypt_inout_detached(&NONCE.into(), AAD, b.as_mut_slice().into())
                    .unwrap();
                (b, tag)
            };
            assert_eq!(ring_ct[..size], rc_ct.0[..], "the two libraries agree");
            g.bench_with_input(BenchmarkId::new("ring", size), &size, |b, _| {
                let mut work = ring_ct.clone();
                b.iter(|| {
                    if open {
                        work.copy_from_slice(&ring_ct);
                        let pt = ring_key
                            .open_in_place(
                                Nonce::assume_unique_for_key(NONCE),
                                RingAad::from(AAD),
                                &mut work,
                            )
                            .unwrap();
                        black_box(pt.len());
                    } else {
                        let tag = ring_key
                            .seal_in_place_separate_tag(
                                Nonce::assume_unique_for_key(NONCE),
                                RingAad::from(AAD),
                                &mut buf,
                            )
                            .unwrap();
                        let _ = black_box(tag);
                    }
                });
            });
            g.bench_with_input(BenchmarkId::new("aes-gcm", size), &size, |b, _| {
                let mut work = rc_ct.0.clone();
                b.iter(|| {
                    if open {
                        work.copy_from_slice(&rc_ct.0);
                        rc.decrypt_inout_detached(
                            &NONCE.into(),
                            AAD,
                            work.as_mut_slice().into(),
                            &rc_ct.1,
                        )
                        .unwrap();
                        black_box(&work);
                    } else {
                        let tag = rc
                            .encrypt_inout_detached(&NONCE.into(), AAD, buf.as_mut_slice().into())
                            .unwrap();
                        let _ = black_box(tag);
                    }
                });
            });
        }
        g.finish();
    }
}

fn envelope(c: &mut Criterion) {
    let cfg = EnvelopeConfig::DEFAULT;
    let keys = Keyring::new(&MasterKey::from_bytes(KEY), &[], b"default");
    let aad = Aad::new("default", b"user:123");
    let mut g = c.benchmark_group("envelope");
    for size in SIZES {
        // Incompressible bytes: the cipher's cost, not LZ4's.
        let mut x = 0x9E37_79B9_7F4A_7C15u64;
        let value: Vec<u8> = (0..size)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                x as u8
            })
            .collect();
        g.throughput(Throughput::Bytes(size as u64));
        let mut env = Vec::new();
        let mut out = Vec::new();
        g.bench_with_input(BenchmarkId::new("encode_plain", size), &size, |b, _| {
            b.iter(|| encode_into(&cfg, &value, &mut env).unwrap());
        });
        g.bench_with_input(BenchmarkId::new("encode_encrypted", size), &size, |b, _| {
            b.iter(|| encode_into_with(&cfg, Some(&keys), aad, &value, &mut env).unwrap());
        });
        encode_into(&cfg, &value, &mut env).unwrap();
        g.bench_with_input(BenchmarkId::new("decode_plain", size), &size, |b, _| {
            b.iter(|| decode_into(&cfg, &env, &mut out).unwrap());
        });
        encode_into_with(&cfg, Some(&keys), aad, &value, &mut env).unwrap();
        g.bench_with_input(BenchmarkId::new("decode_encrypted", size), &size, |b, _| {
            b.iter(|| decode_into_with(&cfg, Some(&keys), aad, &env, &mut out).unwrap());
        });
    }
    g.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default()
        .warm_up_time(std::time::Duration::from_millis(300))
        .measurement_time(std::time::Duration::from_secs(1));
    targets = aead, envelope
}
criterion_main!(benches);
