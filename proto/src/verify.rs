//! VERIFY and VERIFY_REPORT: one page of an integrity walk of the live table (`cachekit verify`).

use crate::error::{EncodeError, Field, ProtoError};
use crate::limits::{MAX_STATS, MAX_STAT_NAME_BYTES};
use crate::wire::{self, Cursor, WIRE_MAX_LEN};

/// Most damaged entries one VERIFY_REPORT names.
pub const MAX_VERIFY_SAMPLE: usize = 16;

/// The body of VERIFY.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct VerifyRequest {
    /// Where to start: 0, then the `next` of the previous page.
    pub cursor: u64,
    /// About how many index slots to visit (whole buckets; 0 = the daemon's default).
    pub max_slots: u64,
    /// Drop the damaged entries found (needs the writer permission).
    pub repair: bool,
}

/// One damaged entry in a VERIFY_REPORT.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct VerifyBad {
    /// Its index slot.
    pub slot: u64,
    /// Why it failed (`check_failed`, `misplaced`, …).
    pub reason: String,
    /// Its namespace, when it could be read (else empty).
    pub namespace: String,
    /// Its key, when it could be read (else empty).
    pub key: Vec<u8>,
}

/// The body of VERIFY_REPORT.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct VerifyReport {
    /// Where the next page starts; 0 = the walk is done.
    pub next: u64,
    /// Slots in use visited.
    pub examined: u64,
    /// Damaged entries dropped (with `repair`).
    pub repaired: u64,
    /// Entries that failed, by reason (damage, and apart from it expired and invalidated).
    pub counts: Vec<(String, u64)>,
    /// The first damaged entries of the page, at most [`MAX_VERIFY_SAMPLE`].
    pub sample: Vec<VerifyBad>,
}

pub(crate) fn request_len() -> u64 {
    17
}

pub(crate) fn put_request(out: &mut Vec<u8>, v: &VerifyRequest) {
    wire::put_u64(out, v.cursor);
    wire::put_u64(out, v.max_slots);
    wire::put_flag(out, v.repair);
}

pub(crate) fn decode_request(c: &mut Cursor<'_>) -> Result<VerifyRequest, ProtoError> {
    Ok(VerifyRequest {
        cursor: c.u64("cursor")?,
        max_slots: c.u64("max_slots")?,
        repair: c.flag("repair")?,
    })
}

pub(crate) fn check_report(r: &VerifyReport) -> Result<(), ProtoError> {
    wire::check_count(Field::Stats, r.counts.len(), MAX_STATS)?;
    for (name, _) in &r.counts {
        wire::check_len(Field::StatName, name.len(), MAX_STAT_NAME_BYTES)?;
    }
    wire::check_count(Field::Items, r.sample.len(), MAX_VERIFY_SAMPLE)?;
    for b in &r.sample {
        wire::check_len(Field::StatName, b.reason.len(), MAX_STAT_NAME_BYTES)?;
    }
    Ok(())
}

pub(crate) fn report_len(r: &VerifyReport) -> u64 {
    use wire::bytes_len;
    24 + 2
        + r.counts
            .iter()
            .map(|(n, _)| bytes_len(n.len()) + 8)
            .sum::<u64>()
        + 2
        + r.sample
            .iter()
            .map(|b| {
                8 + bytes_len(b.reason.len())
                    + bytes_len(b.namespace.len())
                    + bytes_len(b.key.len())
            })
            .sum::<u64>()
}

pub(crate) fn put_report(out: &mut Vec<u8>, r: &VerifyReport) -> Result<(), EncodeError> {
    wire::put_u64(out, r.next);
    wire::put_u64(out, r.examined);
    wire::put_u64(out, r.repaired);
    wire::put_count(out, Field::Stats, r.counts.len(), MAX_STATS)?;
    for (name, n) in &r.counts {
        wire::put_bytes(out, Field::StatName, name.as_bytes(), MAX_STAT_NAME_BYTES)?;
        wire::put_u64(out, *n);
    }
    wire::put_count(out, Field::Items, r.sample.len(), MAX_VERIFY_SAMPLE)?;
    for b in &r.sample {
        wire::put_u64(out, b.slot);
        wire::put_bytes(
            out,
            Field::StatName,
            b.reason.as_bytes(),
            MAX_STAT_NAME_BYTES,
        )?;
        wire::put_bytes(out, Field::Namespace, b.namespace.as_bytes(), WIRE_MAX_LEN)?;
        wire::put_bytes(out, Field::Key, &b.key, WIRE_MAX_LEN)?;
    }
    Ok(())
}

pub(crate) fn decode_report(
    c: &mut Cursor<'_>,
    limits: &crate::Limits,
) -> Result<VerifyReport, ProtoError> {
    let next = c.u64("next")?;
    let examined = c.u64("examined")?;
    let repaired = c.u64("repaired")?;
    let (count, capacity) = c.count(Field::Stats, MAX_STATS, 12)?;
    let mut counts = Vec::with_capacity(capacity);
    for _ in 0..count {
        let name = c.str(Field::StatName, MAX_STAT_NAME_BYTES)?.to_owned();
        counts.push((name, c.u64("count")?));
    }
    let (count, capacity) = c.count(Field::Items, MAX_VERIFY_SAMPLE, 20)?;
    let mut sample = Vec::with_capacity(capacity);
    for _ in 0..count {
        sample.push(VerifyBad {
            slot: c.u64("slot")?,
            reason: c.str(Field::StatName, MAX_STAT_NAME_BYTES)?.to_owned(),
            namespace: c
                .str(Field::Namespace, limits.max_namespace_bytes)?
                .to_owned(),
            key: c.bytes(Field::Key, limits.max_key_bytes)?.to_vec(),
        });
    }
    Ok(VerifyReport {
        next,
        examined,
        repaired,
        counts,
        sample,
    })
}
