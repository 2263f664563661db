//! Self-describing stress values.
//!
//! ```text
//! ck1|<key>|<writer>|<version>|<pad>|<checksum>
//! ```
//!
//! - `pad` is `len` pseudo-random hex digits generated from (key, version): incompressible
//!   enough that LZ4 keeps values large (so the daemon's small arena really evicts), and fully
//!   determined, so a reader checks every byte of it.
//! - `checksum` is FNV-1a 64 of everything before the last `|`, in 16 hex digits.
//!
//! A value that does not parse, fails its checksum or pad, or names another key or writer is a
//! *wrong value*: cachekit returned bytes that were never written under that key.

use crate::Rng;

/// What a valid stress value says about itself.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Decoded {
    /// The key it was written under.
    pub key: String,
    /// The writer (one thread of one process) that wrote it.
    pub writer: u32,
    /// The writer's version counter for that key: 1, 2, 3... per key, never reused.
    pub version: u64,
}

/// FNV-1a, 64 bits.
pub fn fnv1a64(bytes: &[u8]) -> u64 {
    let mut h: u64 = 0xCBF2_9CE4_8422_2325;
    for &b in bytes {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0100_0000_01B3);
    }
    h
}

fn pad(key: &str, version: u64, len: usize) -> Vec<u8> {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let mut rng = Rng::new(fnv1a64(key.as_bytes()) ^ version.wrapping_mul(0x9E37_79B9_7F4A_7C15));
    let mut out = Vec::with_capacity(len);
    while out.len() < len {
        let mut bits = rng.next_u64();
        for _ in 0..16 {
            if out.len() == len {
                break;
            }
            out.push(HEX[(bits & 15) as usize]);
            bits >>= 4;
        }
    }
    out
}

/// The value `writer` stores as `version` of `key`, with `pad_len` bytes of padding.
pub fn encode(key: &str, writer: u32, version: u64, pad_len: usize) -> Vec<u8> {
    let mut v = format!("ck1|{key}|{writer}|{version}|").into_bytes();
    v.extend_from_slice(&pad(key, version, pad_len));
    let sum = fnv1a64(&v);
    v.extend_from_slice(format!("|{sum:016x}").as_bytes());
    v
}

/// Parses and verifies a value; the error says what is wrong with it.
pub fn decode(bytes: &[u8]) -> Result<Decoded, String> {
    let shown = || String::from_utf8_lossy(&bytes[..bytes.len().min(80)]).into_owned();
    let cut = bytes
        .iter()
        .rposition(|&b| b == b'|')
        .ok_or_else(|| format!("no checksum field in {:?}", shown()))?;
    let (body, sum) = (&bytes[..cut], &bytes[cut + 1..]);
    let sum = std::str::from_utf8(sum)
        .ok()
        .and_then(|s| u64::from_str_radix(s, 16).ok())
        .ok_or_else(|| format!("unreadable checksum in {:?}", shown()))?;
    if fnv1a64(body) != sum {
        return Err(format!("checksum mismatch in {:?}", shown()));
    }
    let body = std::str::from_utf8(body).map_err(|_| format!("not UTF-8: {:?}", shown()))?;
    let fields: Vec<&str> = body.split('|').collect();
    let [magic, key, writer, version, padding] = fields[..] else {
        return Err(format!("{} fields in {:?}", fields.len(), shown()));
    };
    if magic != "ck1" {
        return Err(format!("bad magic in {:?}", shown()));
    }
    let writer: u32 = writer
        .parse()
        .map_err(|_| format!("bad writer in {:?}", shown()))?;
    let version: u64 = version
        .parse()
        .map_err(|_| format!("bad version in {:?}", shown()))?;
    if padding.as_bytes() != pad(key, version, padding.len()).as_slice() {
        return Err(format!("padding does not match version {version} of {key}"));
    }
    Ok(Decoded {
        key: key.to_string(),
        writer,
        version,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip() {
        let v = encode("w3:k17", 3, 42, 300);
        assert_eq!(
            decode(&v).unwrap(),
            Decoded {
                key: "w3:k17".into(),
                writer: 3,
                version: 42
            }
        );
        assert_eq!(decode(&encode("k", 0, 1, 0)).unwrap().version, 1);
    }

    #[test]
    fn any_flipped_byte_is_caught() {
        let v = encode("w3:k17", 3, 42, 64);
        for i in 0..v.len() {
            let mut bad = v.clone();
            bad[i] ^= 0x01;
            assert!(decode(&bad).is_err(), "flipping byte {i} went unnoticed");
        }
        assert!(decode(&v[..v.len() - 1]).is_err());
        assert!(decode(b"").is_err());
    }

    #[test]
    fn a_value_re_labelled_with_another_version_is_caught() {
        // Same checksum discipline, but the pad belongs to version 41: not a value anybody wrote.
        let mut forged = b"ck1|w3:k17|3|42|".to_vec();
        forged.extend_from_slice(&pad("w3:k17", 41, 32));
        let sum = fnv1a64(&forged);
        forged.extend_from_slice(format!("|{sum:016x}").as_bytes());
        assert!(decode(&forged).unwrap_err().contains("padding"));
    }
}
