//! Property tests: every value round-trips under every threshold, the encoder keeps its size
//! promises, and damage is detected rather than decoded into a different value.

use cachekit_envelope::{
    decode, decode_into, encode, encode_into, encoded_len_bound, peek_header, EnvelopeConfig,
    FLAG_LZ4, FORMAT_VERSION, HEADER_LEN, MAGIC,
};
use proptest::prelude::*;
use xxhash_rust::xxh3::xxh3_64;

/// Values of three kinds: random bytes (incompressible), a short pattern repeated, and runs of
/// bytes (both compressible, to different degrees).
fn value() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        prop::collection::vec(any::<u8>(), 0..2048),
        (prop::collection::vec(any::<u8>(), 1..24), 0..4096usize).prop_map(|(pat, len)| pat
            .iter()
            .copied()
            .cycle()
            .take(len)
            .collect()),
        prop::collection::vec((any::<u8>(), 1..80usize), 0..64).prop_map(|runs| runs
            .into_iter()
            .flat_map(|(b, n)| std::iter::repeat_n(b, n))
            .collect()),
    ]
}

fn threshold() -> impl Strategy<Value = usize> {
    prop_oneof![0..5000usize, Just(256), Just(usize::MAX)]
}

fn cfg(compress_threshold: usize) -> EnvelopeConfig {
    EnvelopeConfig {
        compress_threshold,
        max_value_bytes: 1 << 20,
    }
}

proptest! {
    #[test]
    fn round_trip(value in value(), threshold in threshold()) {
        let cfg = cfg(threshold);
        let env = encode(&cfg, &value).unwrap();
        prop_assert!(env.len() <= encoded_len_bound(value.len()));
        prop_assert_eq!(&env[..2], &MAGIC);

        let h = peek_header(&env).unwrap();
        prop_assert_eq!(h.version, FORMAT_VERSION);
        prop_assert_eq!(h.original_len as usize, value.len());
        prop_assert_eq!(h.checksum, xxh3_64(&value));
        if h.is_compressed() {
            prop_assert_eq!(h.flags, FLAG_LZ4);
            prop_assert!(value.len() >= threshold);
            prop_assert!(env.len() < HEADER_LEN + value.len(), "compressed only when it shrinks");
        } else {
            prop_assert_eq!(h.flags, 0);
            prop_assert_eq!(&env[HEADER_LEN..], &value[..]);
        }

        prop_assert_eq!(decode(&cfg, &env).unwrap(), value.clone());
        // The reader's configuration does not need the writer's threshold.
        prop_assert_eq!(decode(&EnvelopeConfig::default(), &env).unwrap(), value.clone());
    }

    #[test]
    fn reused_buffers_give_the_same_bytes(
        first in value(),
        second in value(),
        threshold in threshold(),
    ) {
        let cfg = cfg(threshold);
        let mut env = Vec::new();
        let mut out = Vec::new();
        encode_into(&cfg, &first, &mut env).unwrap();
        decode_into(&cfg, &env, &mut out).unwrap();
        prop_assert_eq!(&out, &first);
        encode_into(&cfg, &second, &mut env).unwrap();
        prop_assert_eq!(&env, &encode(&cfg, &second).unwrap());
        decode_into(&cfg, &env, &mut out).unwrap();
        prop_assert_eq!(&out, &second);
    }

    #[test]
    fn a_flipped_byte_never_decodes_to_another_value(
        value in value(),
        threshold in threshold(),
        pos in any::<prop::sample::Index>(),
        mask in 1..=255u8,
    ) {
        let cfg = cfg(threshold);
        let mut env = encode(&cfg, &value).unwrap();
        let i = pos.index(env.len());
        env[i] ^= mask;
        // LZ4 has redundancy (a match offset may move to identical bytes), so a flip can still
        // decode to the original value; it must never decode to anything else.
        if let Ok(decoded) = decode(&cfg, &env) {
            prop_assert_eq!(decoded, value);
        }
    }

    #[test]
    fn a_truncated_envelope_is_rejected(value in value(), threshold in threshold(), cut in any::<prop::sample::Index>()) {
        let cfg = cfg(threshold);
        let env = encode(&cfg, &value).unwrap();
        let len = cut.index(env.len());
        prop_assert!(decode(&cfg, &env[..len]).is_err());
    }

    #[test]
    fn arbitrary_bytes_behind_a_valid_header_prefix_never_panic(
        flags in 0..=1u8,
        original_len in 0..4096u32,
        tail in prop::collection::vec(any::<u8>(), 0..512),
    ) {
        let mut env = MAGIC.to_vec();
        env.extend_from_slice(&[FORMAT_VERSION, flags]);
        env.extend_from_slice(&original_len.to_le_bytes());
        env.extend_from_slice(&tail);
        let cfg = cfg(256);
        if let Ok(v) = decode(&cfg, &env) {
            // Only possible when the checksum in `tail` happens to match.
            prop_assert_eq!(v.len(), original_len as usize);
        }
    }
}
