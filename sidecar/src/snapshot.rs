//! Snapshots for reboots: the live entries written to a file at a clean stop and every
//! `snapshot_interval_ms`, loaded at start when no previous daemon's segment is found.
//!
//! # Format (version 2, little-endian)
//!
//! ```text
//! header, 64 bytes: magic "CKSNAP01" | u32 format version | u32 flags (1: clean stop) | u64 hash seed |
//!                   u64 tag count | u64 writer clock (last stamp) | u64 created (Unix ms) |
//!                   u64 xxh3-64 of the 56 bytes before it
//! records: u32 body length | u64 xxh3-64 of the body | body
//!   body: u8 kind 1 (entry): u64 stamp | u8 flags (1: expires, 2: grace end) |
//!         u64 expires ms | u64 grace end ms | u8 namespace length | namespace |
//!         u16 key length | key | u8 reference count | per reference: u32 counter index,
//!         u64 counter value | u32 value length | value (the stored envelope, opaque:
//!         an encrypted value stays encrypted)
//!      or u8 kind 2 (Redis stream position, before the entries; version 2 only):
//!         u64 namespace hash | u64 stream id ms | u64 stream id seq | u64 namespace clock
//! ```
//!
//! Version 2 added the stream positions (what the table reflected of each followed
//! namespace's invalidation stream, `tier/resume.rs`), so a snapshot-loaded table is replayed
//! like a carried one; a version-1 file (no positions) still loads, and with a Redis tier its
//! namespaces are then cleared before serving.
//!
//! An entry carries the values of the tag counters it references, so a load needs nothing
//! else to answer exactly as the table did (see `Writer::insert_carried`). Loading verifies
//! each record's checksum and stops at the first that fails or is short (what follows a
//! damaged record is not trusted: its length may be wrong), keeping every entry before it;
//! `insert_carried` then applies the table's own checks (bounds, references, expiry). Expired
//! entries are skipped; TTLs are absolute (expiry and grace end are Unix ms).
//!
//! The file is written next to its final name (`<name>.<kind>.tmp`), fsynced, renamed over it, and
//! the directory fsynced: a crash leaves the old snapshot or the new one, never a mix.

use crate::table::Table;
use anyhow::{Context, Result};
use cachekit_shm::{CarriedEntry, CarriedRef, RefSpace, StreamPosition, Writer};
use std::io::{BufReader, BufWriter, Read, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;
use std::time::{Duration, Instant};
use xxhash_rust::xxh3::xxh3_64;

const MAGIC: &[u8; 8] = b"CKSNAP01";
const VERSION: u32 = 2;
/// The oldest version this build loads (it has no stream positions).
const OLDEST_VERSION: u32 = 1;
const HEADER: usize = 64;
const ENTRY: u8 = 1;
const POSITION: u8 = 2;

/// What a snapshot's header says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Header {
    /// The format version it was written in.
    pub version: u32,
    /// Written at a clean stop (the table was shut down first: no write was acknowledged
    /// after it). Only such a snapshot is loaded: one written while running misses the
    /// deletes and invalidations acknowledged after it.
    pub clean: bool,
    pub space: RefSpace,
    pub last_stamp: u64,
    pub created_ms: u64,
}

fn header_bytes(h: &Header) -> [u8; HEADER] {
    let mut b = [0u8; HEADER];
    b[..8].copy_from_slice(MAGIC);
    b[8..12].copy_from_slice(&h.version.to_le_bytes());
    b[12..16].copy_from_slice(&u32::from(h.clean).to_le_bytes());
    b[16..24].copy_from_slice(&h.space.hash_seed.to_le_bytes());
    b[24..32].copy_from_slice(&h.space.tag_count.to_le_bytes());
    b[32..40].copy_from_slice(&h.last_stamp.to_le_bytes());
    b[40..48].copy_from_slice(&h.created_ms.to_le_bytes());
    let sum = xxh3_64(&b[..56]);
    b[56..64].copy_from_slice(&sum.to_le_bytes());
    b
}

fn u64_at(b: &[u8], at: usize) -> u64 {
    u64::from_le_bytes(b[at..at + 8].try_into().expect("8 bytes"))
}

fn parse_header(b: &[u8; HEADER]) -> Result<Header, String> {
    if &b[..8] != MAGIC {
        return Err("not a cachekit snapshot (bad magic)".into());
    }
    let version = u32::from_le_bytes(b[8..12].try_into().expect("4 bytes"));
    if !(OLDEST_VERSION..=VERSION).contains(&version) {
        return Err(format!(
            "snapshot format {version}, this build reads {OLDEST_VERSION} to {VERSION}"
        ));
    }
    if xxh3_64(&b[..56]) != u64_at(b, 56) {
        return Err("the snapshot header fails its checksum".into());
    }
    let flags = u32::from_le_bytes(b[12..16].try_into().expect("4 bytes"));
    if flags > 1 {
        return Err(format!("unknown snapshot flags {flags:#x}"));
    }
    Ok(Header {
        version,
        clean: flags == 1,
        space: RefSpace {
            hash_seed: u64_at(b, 16),
            tag_count: u64_at(b, 24),
        },
        last_stamp: u64_at(b, 32),
        created_ms: u64_at(b, 40),
    })
}

impl Header {
    /// What names this snapshot in the journal mark ([`mark_journal`]): its header's checksum.
    pub fn token(&self) -> u64 {
        u64_at(&header_bytes(self), 56)
    }
}

/// The journal mark of `instance` in the runtime directory `dir`.
fn mark_path(dir: &Path, instance: &str) -> std::path::PathBuf {
    dir.join(format!("{instance}.snapshot-journal"))
}

/// Creates `path` for writing: new (never an existing file), 0600, not through a link.
fn create_private(path: &Path) -> Result<std::fs::File> {
    std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .custom_flags(libc_flags::NOFOLLOW)
        .open(path)
        .with_context(|| format!("creating {}", path.display()))
}

/// Records, beside the journal of failed writes, that the snapshot named `token` was written
/// at a clean stop with that journal in place. A later start loads the snapshot only if the
/// mark is still there ([`take_journal_mark`]): then every write that failed since the stop is
/// in the journal, which is applied before serving. A reboot that empties the runtime
/// directory (tmpfs) takes the mark with the journal, and the snapshot is not loaded.
pub fn mark_journal(dir: &Path, instance: &str, token: u64) -> Result<()> {
    let path = mark_path(dir, instance);
    let tmp = dir.join(format!("{instance}.snapshot-journal.tmp"));
    let _ = std::fs::remove_file(&tmp);
    let mut f = create_private(&tmp)?;
    f.write_all(format!("{token:016x}\n").as_bytes())
        .and_then(|()| f.sync_all())
        .with_context(|| format!("writing {}", tmp.display()))?;
    std::fs::rename(&tmp, &path)
        .with_context(|| format!("renaming {} to {}", tmp.display(), path.display()))?;
    sync_dir(&path)
}

/// The token of the journal mark of `instance` in `dir`, if there is one this daemon's user
/// wrote, and removes it (at every start: from now on this daemon changes the table, and a
/// snapshot written before must not be loaded later). `Err`: it cannot be removed.
pub fn take_journal_mark(dir: &Path, instance: &str) -> Result<Option<u64>> {
    let path = mark_path(dir, instance);
    let token = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc_flags::NOFOLLOW | libc_flags::NONBLOCK)
        .open(&path)
        .ok()
        .filter(|f| {
            rustix::fs::fstat(f).is_ok_and(|st| {
                st.st_uid == rustix::process::geteuid().as_raw()
                    && rustix::fs::FileType::from_raw_mode(st.st_mode)
                        == rustix::fs::FileType::RegularFile
            })
        })
        .and_then(|f| {
            let mut text = String::new();
            f.take(64).read_to_string(&mut text).ok()?;
            u64::from_str_radix(text.trim(), 16).ok()
        });
    match std::fs::remove_file(&path) {
        Ok(()) => sync_dir(&path)?,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(e).with_context(|| format!("removing {}", path.display())),
    }
    Ok(token)
}

/// Appends the framed record of `e` to `out`.
pub fn encode_entry(e: &CarriedEntry, out: &mut Vec<u8>) {
    let start = out.len();
    out.extend_from_slice(&[0; 12]);
    out.push(ENTRY);
    out.extend_from_slice(&e.stamp.to_le_bytes());
    let flags = u8::from(e.expires_ms.is_some()) | (u8::from(e.grace_until_ms.is_some()) << 1);
    out.push(flags);
    out.extend_from_slice(&e.expires_ms.unwrap_or(0).to_le_bytes());
    out.extend_from_slice(&e.grace_until_ms.unwrap_or(0).to_le_bytes());
    // Bounded by the table (namespace ≤ 127 bytes, key ≤ 4096, refs ≤ MAX_REFS).
    out.push(e.namespace.len() as u8);
    out.extend_from_slice(e.namespace.as_bytes());
    out.extend_from_slice(&(e.key.len() as u16).to_le_bytes());
    out.extend_from_slice(&e.key);
    out.push(e.refs.len() as u8);
    for r in &e.refs {
        out.extend_from_slice(&r.index.to_le_bytes());
        out.extend_from_slice(&r.counter.to_le_bytes());
    }
    out.extend_from_slice(&(e.value.len() as u32).to_le_bytes());
    out.extend_from_slice(&e.value);
    let body_len = out.len() - start - 12;
    let sum = xxh3_64(&out[start + 12..]);
    out[start..start + 4].copy_from_slice(&(body_len as u32).to_le_bytes());
    out[start + 4..start + 12].copy_from_slice(&sum.to_le_bytes());
}

/// Appends the framed record of stream position `p` to `out`.
fn encode_position(p: &StreamPosition, out: &mut Vec<u8>) {
    let mut body = Vec::with_capacity(33);
    body.push(POSITION);
    for w in [p.namespace_hash, p.id_ms, p.id_seq, p.clock] {
        body.extend_from_slice(&w.to_le_bytes());
    }
    out.extend_from_slice(&(body.len() as u32).to_le_bytes());
    out.extend_from_slice(&xxh3_64(&body).to_le_bytes());
    out.extend_from_slice(&body);
}

fn decode_position(body: &[u8]) -> Option<StreamPosition> {
    if body.len() != 33 || body[0] != POSITION {
        return None;
    }
    let w = |i: usize| u64_at(body, 1 + 8 * i);
    Some(StreamPosition {
        namespace_hash: w(0),
        id_ms: w(1),
        id_seq: w(2),
        clock: w(3),
    })
    .filter(|p| p.namespace_hash != 0)
}

fn decode_entry(body: &[u8]) -> Option<CarriedEntry> {
    let mut b = body;
    let mut take = |n: usize| -> Option<&[u8]> {
        if b.len() < n {
            return None;
        }
        let (h, t) = b.split_at(n);
        b = t;
        Some(h)
    };
    if take(1)?[0] != ENTRY {
        return None;
    }
    let stamp = u64_at(take(8)?, 0);
    let flags = take(1)?[0];
    if flags > 3 {
        return None;
    }
    let expires = u64_at(take(8)?, 0);
    let grace = u64_at(take(8)?, 0);
    let ns_len = take(1)?[0] as usize;
    let namespace = String::from_utf8(take(ns_len)?.to_vec()).ok()?;
    let key_len = u16::from_le_bytes(take(2)?.try_into().ok()?) as usize;
    let key = take(key_len)?.to_vec();
    let nrefs = take(1)?[0] as usize;
    let mut refs = Vec::with_capacity(nrefs);
    for _ in 0..nrefs {
        let index = u32::from_le_bytes(take(4)?.try_into().ok()?);
        let counter = u64_at(take(8)?, 0);
        refs.push(CarriedRef { index, counter });
    }
    let vlen = u32::from_le_bytes(take(4)?.try_into().ok()?) as usize;
    let value = take(vlen)?.to_vec();
    if !b.is_empty() {
        return None;
    }
    Some(CarriedEntry {
        namespace,
        key,
        value,
        stamp,
        expires_ms: (flags & 1 != 0).then_some(expires),
        grace_until_ms: (flags & 2 != 0).then_some(grace),
        refs,
    })
}

/// What writing a snapshot did.
#[derive(Debug, Default, Clone, Copy)]
pub struct Written {
    pub entries: u64,
    pub bytes: u64,
    /// Time the table's lock was held (the walk and the buffered writes).
    pub locked: Duration,
    /// The header's [`Header::token`].
    pub token: u64,
    pub elapsed: Duration,
}

/// Writes the header and every live entry of `t` to `w`: call it under the table's lock, so
/// the snapshot is one consistent cut (writes wait for the walk). `clean`: the table is shut
/// down (a clean stop).
pub fn dump(t: &Table, w: &mut impl Write, now: u64, clean: bool) -> std::io::Result<Written> {
    let started = Instant::now();
    let src = t.as_source();
    let h = Header {
        version: VERSION,
        clean,
        space: src.ref_space(),
        last_stamp: src.last_stamp(),
        created_ms: now,
    };
    w.write_all(&header_bytes(&h))?;
    let mut written = Written {
        bytes: HEADER as u64,
        token: h.token(),
        ..Written::default()
    };
    let mut out = Vec::with_capacity(64 << 10);
    // The positions first: they say what the entries after them reflect.
    for p in t.stream_positions() {
        encode_position(&p, &mut out);
    }
    w.write_all(&out)?;
    written.bytes += out.len() as u64;
    let mut err = None;
    src.entries(now, |e| {
        if err.is_some() {
            return;
        }
        out.clear();
        encode_entry(e, &mut out);
        written.entries += 1;
        written.bytes += out.len() as u64;
        if let Err(e) = w.write_all(&out) {
            err = Some(e);
        }
    });
    written.locked = started.elapsed();
    err.map_or(Ok(written), Err)
}

/// Writes a snapshot to `path` atomically (see the module docs); `fill` writes its bytes
/// ([`dump`] under the table's lock). `kind` names the temporary file (`<path>.<kind>.tmp`),
/// so a periodic write and the stop's never share one.
pub fn write(
    path: &Path,
    kind: &str,
    fill: impl FnOnce(&mut BufWriter<std::fs::File>) -> std::io::Result<Written>,
) -> Result<Written> {
    let started = Instant::now();
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(format!(".{kind}.tmp"));
    let tmp = std::path::PathBuf::from(tmp);
    // A temporary a crash left behind is removed (unlink removes a symlink itself, never what
    // it points to); then a new file, exclusively and without following a link planted since,
    // readable by this user only (a snapshot holds every cached value).
    match std::fs::remove_file(&tmp) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(e).with_context(|| format!("removing the stale {}", tmp.display())),
    }
    let file = create_private(&tmp)?;
    let mut w = BufWriter::with_capacity(1 << 20, file);
    let mut written = fill(&mut w).with_context(|| format!("writing {}", tmp.display()))?;
    let file = w
        .into_inner()
        .map_err(|e| e.into_error())
        .with_context(|| format!("writing {}", tmp.display()))?;
    file.sync_all()
        .with_context(|| format!("fsync of {}", tmp.display()))?;
    std::fs::rename(&tmp, path)
        .with_context(|| format!("renaming {} to {}", tmp.display(), path.display()))?;
    sync_dir(path)?;
    written.elapsed = started.elapsed();
    Ok(written)
}

fn sync_dir(path: &Path) -> Result<()> {
    let dir = path
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    std::fs::File::open(dir)
        .and_then(|d| d.sync_all())
        .with_context(|| format!("fsync of {}", dir.display()))
}

/// Removes the snapshot at `path` (at start, once it is loaded or found unusable): the table
/// changes from now on, and a snapshot left behind would bring back what those changes remove
/// if the next start had to load it. The next clean stop writes a new one.
pub fn retire(path: &Path) -> Result<()> {
    match std::fs::remove_file(path) {
        Ok(()) => sync_dir(path),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(e).with_context(|| format!("removing {}", path.display())),
    }
}

/// What loading a snapshot did.
#[derive(Debug, Default, Clone)]
pub struct Loaded {
    /// Entry records read.
    pub records: u64,
    /// Stream-position records restored.
    pub positions: u64,
    pub loaded: u64,
    /// Entries `insert_carried` refused (expired, invalidated, failing checks), by reason.
    pub dropped: cachekit_shm::DropCounts,
    /// Why reading stopped before the end of the file, if it did.
    pub stopped: Option<String>,
    pub bytes: u64,
    pub elapsed: Duration,
}

/// Opens the snapshot at `path` for reading, if it is one this daemon can trust: a regular
/// file owned by this daemon's user and not writable by group or others (anyone else able to
/// write it could plant entries every client would be served).
fn open_trusted(path: &Path) -> Result<std::fs::File, String> {
    // NONBLOCK: a FIFO at the path must not hang the start (no effect on a regular file).
    let f = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc_flags::NONBLOCK)
        .open(path)
        .map_err(|e| format!("{}: {e}", path.display()))?;
    let st = rustix::fs::fstat(&f).map_err(|e| format!("{}: fstat: {e}", path.display()))?;
    let me = rustix::process::geteuid().as_raw();
    if rustix::fs::FileType::from_raw_mode(st.st_mode) != rustix::fs::FileType::RegularFile {
        return Err(format!("{} is not a regular file", path.display()));
    }
    if st.st_uid != me || st.st_mode & 0o022 != 0 {
        return Err(format!(
            "{} is owned by uid {} with mode {:o}; a snapshot is loaded only when owned by this daemon's user (uid {me}) and not writable by group or others: remove it, or fix its owner and mode",
            path.display(),
            st.st_uid,
            st.st_mode & 0o7777
        ));
    }
    Ok(f)
}

/// The open(2) flags the std has no names for.
mod libc_flags {
    pub const NOFOLLOW: i32 = rustix::fs::OFlags::NOFOLLOW.bits() as i32;
    pub const NONBLOCK: i32 = rustix::fs::OFlags::NONBLOCK.bits() as i32;
}

/// Reads the header of the snapshot at `path`.
pub fn read_header(path: &Path) -> Result<Header, String> {
    let mut f = open_trusted(path)?;
    let mut h = [0u8; HEADER];
    f.read_exact(&mut h)
        .map_err(|e| format!("{}: the header is short ({e})", path.display()))?;
    parse_header(&h)
}

/// Loads every entry of the snapshot at `path` that verifies into `writer` (created with the
/// header's hash seed), and raises its clock to the snapshot's. `max_body`: the largest record
/// body believable (the table's largest value and entry overhead).
pub fn load(path: &Path, writer: &mut Writer, now: u64, max_body: usize) -> Result<Loaded, String> {
    let started = Instant::now();
    let f = open_trusted(path)?;
    let mut r = BufReader::with_capacity(1 << 20, f);
    let mut h = [0u8; HEADER];
    r.read_exact(&mut h)
        .map_err(|e| format!("{}: the header is short ({e})", path.display()))?;
    let header = parse_header(&h)?;
    if !header.clean {
        return Err(format!(
            "{} was written while the daemon ran (snapshot_interval_ms), not at a clean stop: deletes and invalidations acknowledged after it are not in it, so it is not loaded",
            path.display()
        ));
    }
    if writer.ref_space().hash_seed != header.space.hash_seed {
        return Err("the table was not created with the snapshot's hash seed".into());
    }
    let mut out = Loaded {
        bytes: HEADER as u64,
        ..Loaded::default()
    };
    let mut body = Vec::new();
    loop {
        let mut frame = [0u8; 12];
        match read_full(&mut r, &mut frame) {
            Ok(0) => break,
            Ok(12) => {}
            Ok(_) => {
                out.stopped = Some("the last record is short (truncated file)".into());
                break;
            }
            Err(e) => {
                out.stopped = Some(format!("read error: {e}"));
                break;
            }
        }
        let len = u32::from_le_bytes(frame[..4].try_into().expect("4 bytes")) as usize;
        let sum = u64_at(&frame, 4);
        if len == 0 || len > max_body {
            out.stopped = Some(format!("a record claims {len} bytes (damaged)"));
            break;
        }
        body.resize(len, 0);
        match read_full(&mut r, &mut body) {
            Ok(n) if n == len => {}
            Ok(_) => {
                out.stopped = Some("the last record is short (truncated file)".into());
                break;
            }
            Err(e) => {
                out.stopped = Some(format!("read error: {e}"));
                break;
            }
        }
        out.bytes += 12 + len as u64;
        if xxh3_64(&body) != sum {
            out.stopped = Some("a record fails its checksum (damaged)".into());
            break;
        }
        if header.version >= 2 && body[0] == POSITION {
            let Some(p) = decode_position(&body) else {
                out.stopped = Some("a record does not parse (damaged)".into());
                break;
            };
            writer.restore_stream_position(p);
            out.positions += 1;
            continue;
        }
        let Some(e) = decode_entry(&body) else {
            out.stopped = Some("a record does not parse (damaged)".into());
            break;
        };
        out.records += 1;
        match writer.insert_carried(&e, header.space, now) {
            Ok(_) => out.loaded += 1,
            Err(reason) => out.dropped.add(reason),
        }
    }
    writer.observe_stamp(header.last_stamp, now);
    out.elapsed = started.elapsed();
    Ok(out)
}

/// Reads until `buf` is full or the end of the file; the bytes read.
fn read_full(r: &mut impl Read, buf: &mut [u8]) -> std::io::Result<usize> {
    let mut n = 0;
    while n < buf.len() {
        match r.read(&mut buf[n..]) {
            Ok(0) => break,
            Ok(k) => n += k,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(n)
}

#[cfg(test)]
mod tests;
