//! Golden vectors: the envelope format, pinned byte for byte.
//!
//! `tests/golden/vectors.txt` holds, per vector, a name, the `compress_threshold` used, the input
//! value and its envelope, both in hex. `golden_vectors_encode_and_decode_byte_for_byte` encodes
//! each input and compares with the checked-in envelope, and decodes each checked-in envelope back
//! to its input, so any change to the format (header, flags, checksum, LZ4 use) fails here.
//!
//! Regenerate only for a deliberate format change (with a `FORMAT_VERSION` bump), or after an
//! `lz4_flex` upgrade that changes its compressed bytes but still decodes the old vectors:
//!
//! ```text
//! cargo test -p cachekit-envelope --test golden -- --ignored regenerate_golden_vectors
//! ```
//!
//! then review the diff of `tests/golden/vectors.txt`.

use std::fmt::Write as _;
use std::path::PathBuf;

use cachekit_envelope::{decode, encode, peek_header, EnvelopeConfig, DEFAULT_MAX_VALUE_BYTES};

struct Vector {
    name: String,
    threshold: usize,
    input: Vec<u8>,
    envelope: Vec<u8>,
}

fn path() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/golden/vectors.txt")
}

fn cfg(compress_threshold: usize) -> EnvelopeConfig {
    EnvelopeConfig {
        compress_threshold,
        max_value_bytes: DEFAULT_MAX_VALUE_BYTES,
    }
}

/// The inputs, built deterministically. The checked-in file is the source of truth; this list
/// only feeds the regenerator and checks that the file still holds every vector.
fn inputs() -> Vec<(&'static str, usize, Vec<u8>)> {
    let pattern = b"cachekit golden vector 0123456789\n";
    let compressible_1k: Vec<u8> = pattern.iter().copied().cycle().take(1024).collect();
    // xorshift64 with a fixed seed: 300 bytes LZ4 cannot shrink.
    let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
    let incompressible: Vec<u8> = (0..300)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x.to_le_bytes()[0]
        })
        .collect();
    vec![
        ("empty", 256, Vec::new()),
        ("short_raw", 256, b"hello, cachekit".to_vec()),
        ("compressible_1k", 256, compressible_1k.clone()),
        ("incompressible_300", 256, incompressible),
        // Compressible, but under the threshold: stored raw.
        (
            "compressible_below_threshold",
            256,
            compressible_1k[..200].to_vec(),
        ),
        // Threshold 0: even a short value is compressed when that shrinks it.
        ("short_compressed_threshold_0", 0, vec![b'a'; 64]),
    ]
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().fold(String::new(), |mut s, b| {
        let _ = write!(s, "{b:02x}");
        s
    })
}

fn unhex(s: &str) -> Vec<u8> {
    assert!(s.len().is_multiple_of(2), "odd-length hex");
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).expect("bad hex digit"))
        .collect()
}

/// Parses blocks of `key = value` lines separated by blank lines; `#` starts a comment line.
fn parse(text: &str) -> Vec<Vector> {
    let mut out = Vec::new();
    for block in text.split("\n\n") {
        let mut fields = std::collections::HashMap::new();
        for line in block.lines().map(str::trim) {
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let (k, v) = line.split_once('=').expect("expected `key = value`");
            fields.insert(k.trim().to_owned(), v.trim().to_owned());
        }
        if fields.is_empty() {
            continue;
        }
        let get = |k: &str| {
            fields
                .get(k)
                .unwrap_or_else(|| panic!("missing `{k}`"))
                .clone()
        };
        out.push(Vector {
            name: get("name"),
            threshold: get("threshold").parse().expect("threshold"),
            input: unhex(&get("input")),
            envelope: unhex(&get("envelope")),
        });
    }
    out
}

#[test]
fn golden_vectors_encode_and_decode_byte_for_byte() {
    let text = std::fs::read_to_string(path()).expect("read tests/golden/vectors.txt");
    let vectors = parse(&text);
    let expected: Vec<_> = inputs();
    assert_eq!(
        vectors.iter().map(|v| v.name.as_str()).collect::<Vec<_>>(),
        expected.iter().map(|(n, _, _)| *n).collect::<Vec<_>>(),
        "the vector file and inputs() list different vectors"
    );
    let mut compressed = 0;
    for (v, (_, threshold, input)) in vectors.iter().zip(&expected) {
        assert_eq!(
            (&v.input, v.threshold),
            (input, *threshold),
            "{}: checked-in input differs",
            v.name
        );
        let cfg = cfg(v.threshold);
        assert_eq!(
            hex(&encode(&cfg, &v.input).unwrap()),
            hex(&v.envelope),
            "{}: encoding changed; see the module docs before regenerating",
            v.name
        );
        assert_eq!(
            decode(&cfg, &v.envelope).unwrap(),
            v.input,
            "{}: decoding changed",
            v.name
        );
        compressed += usize::from(peek_header(&v.envelope).unwrap().is_compressed());
    }
    assert_eq!(
        compressed, 2,
        "compressible_1k and short_compressed_threshold_0"
    );
}

#[test]
#[ignore = "writes tests/golden/vectors.txt; run only for a deliberate format change"]
fn regenerate_golden_vectors() {
    let mut text = String::from(
        "# cachekit-envelope golden vectors, envelope format version 1.\n\
         # Checked by tests/golden.rs. Regenerate (deliberate format change only):\n\
         #   cargo test -p cachekit-envelope --test golden -- --ignored regenerate_golden_vectors\n\
         # Fields: name, compress_threshold, input (hex), envelope (hex); max_value_bytes = 1 MiB.\n",
    );
    for (name, threshold, input) in inputs() {
        let envelope = encode(&cfg(threshold), &input).unwrap();
        // `input =` alone for the empty value: no trailing whitespace in the file.
        let input = hex(&input);
        let sep = if input.is_empty() { "" } else { " " };
        let _ = write!(
            text,
            "\nname = {name}\nthreshold = {threshold}\ninput ={sep}{input}\nenvelope = {}\n",
            hex(&envelope)
        );
    }
    std::fs::write(path(), text).expect("write tests/golden/vectors.txt");
}
