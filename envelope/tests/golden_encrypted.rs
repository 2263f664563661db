//! Golden vectors of encrypted envelopes (flag bit 1): the derivations (tenant key id, hashed
//! key) and the envelope bytes, pinned byte for byte with a fixed master key and a fixed nonce
//! (through the test-only `encode_into_with_fixed_nonce`; real encryptions draw the nonce from
//! the OS RNG).
//!
//! `tests/golden/encrypted.txt` holds, per vector: name, master key, tenant, namespace, key,
//! compress threshold, nonce, input, the key id, the hashed key and the envelope (bytes in
//! hex). The test encodes each input and compares, decodes each envelope back, and checks the
//! derivations, so a change to the format, the associated data or a derivation fails here.
//! Regenerate only for a deliberate format change (with a `FORMAT_VERSION` bump):
//!
//! ```text
//! cargo test -p cachekit-envelope --test golden_encrypted -- --ignored regenerate
//! ```

use std::collections::HashMap;
use std::fmt::Write as _;
use std::path::PathBuf;

use cachekit_envelope::{
    decode_with, encode_into_with_fixed_nonce, Aad, EnvelopeConfig, KeyHasher, Keyring, MasterKey,
};

struct Input {
    name: &'static str,
    master: [u8; 32],
    tenant: &'static str,
    namespace: &'static str,
    key: &'static [u8],
    threshold: usize,
    nonce: [u8; 12],
    input: Vec<u8>,
}

fn inputs() -> Vec<Input> {
    let counting: [u8; 32] = std::array::from_fn(|i| i as u8);
    let compressible: Vec<u8> = b"cachekit golden vector 0123456789\n"
        .iter()
        .copied()
        .cycle()
        .take(1024)
        .collect();
    vec![
        Input {
            name: "empty",
            master: counting,
            tenant: "default",
            namespace: "default",
            key: b"k",
            threshold: 256,
            nonce: [0; 12],
            input: Vec::new(),
        },
        Input {
            name: "short_raw",
            master: counting,
            tenant: "default",
            namespace: "default",
            key: b"user:1",
            threshold: 256,
            nonce: std::array::from_fn(|i| 0xA0 + i as u8),
            input: b"hello, cachekit".to_vec(),
        },
        Input {
            name: "compressed_1k_other_tenant",
            master: [0x42; 32],
            tenant: "acme",
            namespace: "sessions",
            key: b"session:abc",
            threshold: 256,
            nonce: [0xFF; 12],
            input: compressible,
        },
    ]
}

fn path() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/golden/encrypted.txt")
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().fold(String::new(), |mut s, b| {
        let _ = write!(s, "{b:02x}");
        s
    })
}

fn cfg(threshold: usize) -> EnvelopeConfig {
    EnvelopeConfig {
        compress_threshold: threshold,
        ..EnvelopeConfig::DEFAULT
    }
}

/// The fields of one vector as the file writes them.
fn render(v: &Input) -> Vec<(&'static str, String)> {
    let master = MasterKey::from_bytes(v.master);
    let keys = Keyring::new(&master, &[], v.tenant.as_bytes());
    let mut env = Vec::new();
    encode_into_with_fixed_nonce(
        &cfg(v.threshold),
        &keys,
        Aad::new(v.namespace, v.key),
        &v.input,
        v.nonce,
        &mut env,
    )
    .unwrap();
    vec![
        ("name", v.name.to_string()),
        ("master", hex(&v.master)),
        ("tenant", v.tenant.to_string()),
        ("namespace", v.namespace.to_string()),
        ("key", hex(v.key)),
        ("threshold", v.threshold.to_string()),
        ("nonce", hex(&v.nonce)),
        ("input", hex(&v.input)),
        ("key_id", format!("{:08x}", keys.key_id())),
        (
            "hashed_key",
            String::from_utf8(KeyHasher::new(&master, v.tenant.as_bytes()).hash(v.key)).unwrap(),
        ),
        ("envelope", hex(&env)),
    ]
}

fn parse(text: &str) -> Vec<HashMap<String, String>> {
    text.split("\n\n")
        .map(|block| {
            block
                .lines()
                .filter(|l| !l.trim().is_empty() && !l.starts_with('#'))
                .map(|l| {
                    let (k, v) = l.split_once('=').expect("expected `key = value`");
                    (k.trim().to_string(), v.trim().to_string())
                })
                .collect::<HashMap<_, _>>()
        })
        .filter(|m| !m.is_empty())
        .collect()
}

#[test]
fn encrypted_golden_vectors_encode_and_decode_byte_for_byte() {
    let text = std::fs::read_to_string(path()).expect("read tests/golden/encrypted.txt");
    let stored = parse(&text);
    let inputs = inputs();
    assert_eq!(stored.len(), inputs.len(), "the file and inputs() differ");
    for (fields, input) in stored.iter().zip(&inputs) {
        for (name, value) in render(input) {
            assert_eq!(
                fields.get(name),
                Some(&value),
                "{}: field {name} changed; see the module docs before regenerating",
                input.name
            );
        }
        // And the checked-in envelope decodes to the input.
        let env: Vec<u8> = (0..fields["envelope"].len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&fields["envelope"][i..i + 2], 16).unwrap())
            .collect();
        let keys = Keyring::new(
            &MasterKey::from_bytes(input.master),
            &[],
            input.tenant.as_bytes(),
        );
        let aad = Aad::new(input.namespace, input.key);
        assert_eq!(
            decode_with(&EnvelopeConfig::DEFAULT, Some(&keys), aad, &env).unwrap(),
            input.input
        );
    }
}

#[test]
#[ignore = "writes tests/golden/encrypted.txt; run only for a deliberate format change"]
fn regenerate() {
    let mut text = String::from(
        "# cachekit-envelope golden vectors of encrypted envelopes (flag bit 1), format version 1.\n\
         # Checked by tests/golden_encrypted.rs, which says how to regenerate. Bytes in hex;\n\
         # key_id is the u32 (printed big-endian) stored little-endian at offset 8.\n",
    );
    for v in inputs() {
        text.push('\n');
        for (name, value) in render(&v) {
            let sep = if value.is_empty() { "" } else { " " };
            let _ = writeln!(text, "{name} ={sep}{value}");
        }
    }
    std::fs::write(path(), text).unwrap();
}
