//! Feeds arbitrary bytes to the envelope decoder.
//!
//! Checks that decoding never panics or allocates past `max_value_bytes`, that `decode` and
//! `decode_into` (with a dirty buffer) agree, that `peek_header` agrees with a successful decode,
//! and that every value that decodes re-encodes to an envelope that decodes back to it; a raw
//! envelope must even re-encode to the very same bytes when compression is off.

#![no_main]

use cachekit_envelope::{
    decode, decode_into, encode, encoded_len_bound, peek_header, EnvelopeConfig,
};
use libfuzzer_sys::fuzz_target;

/// Small limit so the fuzzer explores length checks instead of allocating megabytes.
const CFG: EnvelopeConfig = EnvelopeConfig {
    compress_threshold: 32,
    max_value_bytes: 64 * 1024,
};

fuzz_target!(|data: &[u8]| {
    let decoded = decode(&CFG, data);

    let mut reused = vec![0xA5; 97];
    let decoded_into = decode_into(&CFG, data, &mut reused);
    assert_eq!(decoded.is_ok(), decoded_into.is_ok());

    let Ok(value) = decoded else {
        assert!(
            reused.is_empty(),
            "decode_into must leave its buffer empty on error"
        );
        return;
    };
    assert_eq!(reused, value);
    assert!(value.len() <= CFG.max_value_bytes);

    let header = peek_header(data).expect("decode succeeded, so the header is valid");
    assert_eq!(header.original_len as usize, value.len());

    let again = encode(&CFG, &value).expect("a decoded value is within the limits");
    assert!(again.len() <= encoded_len_bound(value.len()));
    let re_header = peek_header(&again).unwrap();
    assert_eq!(re_header.checksum, header.checksum);
    assert_eq!(re_header.original_len, header.original_len);
    assert_eq!(decode(&CFG, &again).unwrap(), value);

    if !header.is_compressed() {
        let never = EnvelopeConfig {
            compress_threshold: usize::MAX,
            ..CFG
        };
        assert_eq!(encode(&never, &value).unwrap(), data);
    }
});
