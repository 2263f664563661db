//! Every number `docs/ARCHITECTURE.md` states about the segment, computed from this crate's
//! constants and from a table built with the default configuration.
//!
//! Prose numbers are checked as claims: a sentence of the document with `{}` where each number
//! goes (`"A bucket is one cache line of {} slots"`). The document must contain the sentence
//! with the computed numbers, whatever its line breaks. When a constant changes, the test names
//! the line of the document to update and the text it must hold. The byte tables (table header,
//! segment header, entry header) are read row by row and checked against the structs in
//! [`cachekit_shm::layout`].

use cachekit_shm::layout::{
    ClientAreaHeader, ClientRecord, SegmentHeader, TableHeader, BUCKET_BYTES, CLIENT_RECORDS,
    HEADER_BYTES, PAGE, SEGMENT_HEADER_BYTES, SLOTS_PER_BUCKET, STAT_WORDS,
};
use cachekit_shm::{
    Backing, TableConfig, Writer, ENTRY_HEADER_BYTES, INDEX_LOAD_TARGET, MAX_KEY_BYTES,
    MAX_NAMESPACE_BYTES, MAX_REFS, MAX_RETRIES, MAX_TAGS, MAX_TAG_BYTES, MAX_TAG_DEPTH,
    MIN_BUCKETS, VALUE_LEN_CEILING,
};
use core::mem::{offset_of, size_of};
use std::os::unix::fs::FileExt;

const DOC: &str = "docs/ARCHITECTURE.md";

/// The document, and the same text with every run of whitespace (line breaks included) made one
/// space, remembering the line each byte came from.
struct Doc {
    lines: Vec<String>,
    flat: String,
    line_of: Vec<usize>,
}

impl Doc {
    fn dec() -> Doc {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../docs/ARCHITECTURE.md");
        let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("read {path}: {e}"));
        let lines: Vec<String> = text.lines().map(str::to_string).collect();
        let (mut flat, mut line_of) = (String::new(), Vec::new());
        for (i, line) in lines.iter().enumerate() {
            for word in line.split_whitespace() {
                flat.push_str(word);
                flat.push(' ');
                line_of.resize(flat.len(), i + 1);
            }
        }
        Doc {
            lines,
            flat,
            line_of,
        }
    }

    /// Checks that the document says `template` with `values` in place of its `{}`; `what`
    /// says where the numbers come from. Returns what to fix.
    fn claim(&self, template: &str, values: &[String], what: &str) -> Option<String> {
        let pieces: Vec<&str> = template.split("{}").collect();
        assert_eq!(
            pieces.len(),
            values.len() + 1,
            "placeholders of `{template}`"
        );
        let mut want = pieces[0].to_string();
        for (v, p) in values.iter().zip(&pieces[1..]) {
            want.push_str(v);
            want.push_str(p);
        }
        let want = want.split_whitespace().collect::<Vec<_>>().join(" ");
        if self.flat.contains(&want) {
            return None;
        }
        // The longest fixed piece locates the sentence.
        let anchor = pieces
            .iter()
            .map(|p| p.split_whitespace().collect::<Vec<_>>().join(" "))
            .max_by_key(String::len)
            .expect("a piece");
        Some(match self.flat.find(&anchor) {
            Some(at) => {
                let line = self.line_of[at];
                format!(
                    "{DOC}:{line}: must say `{want}` ({what}); the line reads `{}`",
                    self.lines[line - 1].trim()
                )
            }
            None => format!(
                "{DOC} no longer has the sentence `{want}` ({what}): put it back with these \
                 numbers, or, if it was reworded, change its claim in \
                 shm/tests/architecture_doc.rs so that the numbers stay checked"
            ),
        })
    }

    /// The rows of the first table after the line starting with `heading`: (line, cells).
    fn table_after(&self, heading: &str) -> Vec<(usize, Vec<String>)> {
        let start = self
            .lines
            .iter()
            .position(|l| l.starts_with(heading))
            .unwrap_or_else(|| panic!("{DOC} has no heading `{heading}`; update this test"));
        self.lines[start + 1..]
            .iter()
            .enumerate()
            .skip_while(|(_, l)| !l.starts_with('|'))
            .take_while(|(_, l)| l.starts_with('|'))
            .skip(2) // the header row and the alignment row
            .map(|(i, l)| {
                let cells = l
                    .trim_matches('|')
                    .split(" | ")
                    .map(|c| c.trim().to_string())
                    .collect();
                (start + 2 + i, cells)
            })
            .collect()
    }
}

/// The fixed header words of a table built with `cfg`, by field.
struct Built {
    words: Vec<u64>,
    table_bytes: u64,
}

impl Built {
    fn new(cfg: &TableConfig) -> Built {
        let w = Writer::create(cfg, Backing::Memfd).expect("create a table");
        let fd = w.fds().expect("memfd").table_fd().try_clone_to_owned();
        let file = std::fs::File::from(fd.expect("dup the table fd"));
        let mut page = vec![0u8; size_of::<TableHeader>()];
        file.read_exact_at(&mut page, 0).expect("read the header");
        let words = page
            .chunks(8)
            .map(|c| u64::from_le_bytes(c.try_into().expect("8 bytes")))
            .collect();
        Built {
            words,
            table_bytes: w.table_bytes() as u64,
        }
    }

    fn word(&self, byte_offset: usize) -> u64 {
        self.words[byte_offset / 8]
    }
}

fn bits(max: usize) -> u32 {
    usize::BITS - max.leading_zeros()
}

/// `n` with thousands separators: 524,288.
fn thousands(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// `n` rounded to two significant digits, with thousands separators: 6,800.
fn two_digits(x: f64) -> String {
    let scale = 10f64.powi(x.log10().floor() as i32 - 1).max(1.0);
    thousands(((x / scale).round() * scale) as u64)
}

/// A byte count: `16 MiB`, `82 MiB + 4 KiB`.
fn size(n: u64) -> String {
    let (mib, kib) = (n >> 20, (n >> 10) & 1023);
    assert_eq!(n & 1023, 0, "{n} is not whole KiB");
    match (mib, kib) {
        (0, k) => format!("{k} KiB"),
        (m, 0) => format!("{m} MiB"),
        (m, k) => format!("{m} MiB + {k} KiB"),
    }
}

/// One decimal, none when it is 0: `3`, `1.5`, `21.3`.
fn dec(x: f64) -> String {
    let s = format!("{x:.1}");
    s.strip_suffix(".0").map_or(s.clone(), str::to_string)
}

/// Poisson estimate of the share of entries that find their bucket of `slots` full, at `load`
/// entries per bucket: E[max(X - slots, 0)] / load for X ~ Poisson(load).
fn overflow(load: f64, slots: usize) -> f64 {
    let mut p = (-load).exp(); // P(X = 0)
    let mut excess = 0.0;
    for k in 1..200 {
        p *= load / k as f64;
        if k > slots {
            excess += (k - slots) as f64 * p;
        }
    }
    excess / load
}

#[test]
fn the_index_is_sized_by_the_rule_the_document_states() {
    // E = arena / expected_entry_bytes; B = max(MIN_BUCKETS, next_pow2(ceil(E / target))).
    let mut loads = Vec::new();
    for segments in 2..=40u64 {
        let cfg = TableConfig {
            arena_bytes: segments << 21,
            hash_seed: Some(1),
            epoch: Some(1),
            ..TableConfig::default()
        };
        let built = Built::new(&cfg);
        let entries = cfg.arena_bytes / cfg.expected_entry_bytes;
        let buckets = built.word(offset_of!(TableHeader, bucket_count));
        assert_eq!(
            buckets,
            entries
                .div_ceil(INDEX_LOAD_TARGET)
                .next_power_of_two()
                .max(MIN_BUCKETS),
            "a table of {segments} segments of 2 MiB does not follow the sizing rule that \
             {DOC} states under \"Sizing\": update the rule there and in this test"
        );
        loads.push(entries as f64 / buckets as f64);
    }
    let target = INDEX_LOAD_TARGET as f64;
    assert!(loads.iter().all(|l| *l > target / 2.0 && *l <= target));
    assert!(
        loads.contains(&target),
        "the rounding reaches the target load"
    );
}

#[test]
fn the_document_states_the_numbers_of_the_code() {
    let doc = Doc::dec();
    let defaults = TableConfig::default();
    let built = Built::new(&TableConfig {
        hash_seed: Some(1),
        epoch: Some(1),
        ..TableConfig::default()
    });
    let w = |f: usize| built.word(f);
    let n = |v: u64| v.to_string();
    let u = |v: usize| v.to_string();

    // The index at the defaults, from the table itself.
    let buckets = w(offset_of!(TableHeader, bucket_count));
    let arena =
        w(offset_of!(TableHeader, segment_count)) * w(offset_of!(TableHeader, segment_bytes));
    assert_eq!(
        arena, defaults.arena_bytes,
        "the default arena is whole segments"
    );
    let entries = arena / defaults.expected_entry_bytes;
    let index_bytes = buckets * BUCKET_BYTES;
    let tag_bytes = w(offset_of!(TableHeader, tag_count)) * 8;
    assert_eq!(
        w(offset_of!(TableHeader, index_off)),
        w(offset_of!(TableHeader, tag_off)) + tag_bytes,
        "the default tag counters are whole pages"
    );
    assert_eq!(
        built.table_bytes,
        HEADER_BYTES + tag_bytes + index_bytes + arena,
        "the default index is whole pages"
    );
    let target = INDEX_LOAD_TARGET as f64;
    let default_load = entries as f64 / buckets as f64;
    let slot = size_of::<u64>() as u64;
    let per_entry = |load: f64| BUCKET_BYTES as f64 / load;
    let one_in = |load: f64| two_digits(1.0 / overflow(load, SLOTS_PER_BUCKET));
    assert_eq!(
        BUCKET_BYTES,
        SLOTS_PER_BUCKET as u64 * slot,
        "a bucket is its slots"
    );

    // The entry header's packed word, from the limits its fields must hold.
    let widths = [
        bits(VALUE_LEN_CEILING),
        bits(MAX_KEY_BYTES),
        bits(MAX_NAMESPACE_BYTES),
        bits(MAX_REFS),
    ];
    let check_bits = 64 - widths.iter().sum::<u32>();
    let overhead = ENTRY_HEADER_BYTES as u64 + slot;
    let records_off = size_of::<ClientAreaHeader>();
    let bits_off = records_off + CLIENT_RECORDS as usize * size_of::<ClientRecord>();

    #[rustfmt::skip]
    let claims: Vec<(&str, Vec<String>, &str)> = vec![
        ("retries (at most `MAX_RETRIES` = {} times)", vec![n(MAX_RETRIES.into())], "MAX_RETRIES"),
        // The segment.
        ("Every section starts on a {}-byte page.", vec![n(PAGE)], "layout::PAGE"),
        ("offset 0 {} tag_off+8·T (page) index_off+{}·B (page)", vec![n(HEADER_BYTES), n(BUCKET_BYTES)], "HEADER_BYTES, BUCKET_BYTES"),
        ("| {} page | T × u64 | B buckets × {} B |", vec![n(HEADER_BYTES / PAGE), n(BUCKET_BYTES)], "HEADER_BYTES / PAGE, BUCKET_BYTES"),
        ("### Table header (offset 0, `layout::TableHeader`, {} bytes used of {})", vec![u(size_of::<TableHeader>()), n(HEADER_BYTES)], "size_of::<TableHeader>(), HEADER_BYTES"),
        ("byte offset of the tag counters ({})", vec![n(w(offset_of!(TableHeader, tag_off)))], "tag_off of a default table"),
        ("T, a power of two (default 2^{})", vec![defaults.tag_counters.trailing_zeros().to_string()], "TableConfig::default().tag_counters"),
        ("B, a power of two ≥ {}", vec![n(MIN_BUCKETS)], "MIN_BUCKETS"),
        ("a power of two, {} KiB to 4 GiB", vec![n(PAGE >> 10)], "PAGE"),
        ("xxh3 of bytes 0..{}, seeded with the magic", vec![u(offset_of!(TableHeader, geometry_check))], "offset of geometry_check"),
        // The index.
        ("### Index (`index_off`, B buckets of {} bytes)", vec![n(BUCKET_BYTES)], "BUCKET_BYTES"),
        ("A bucket is one cache line of {} slots", vec![u(SLOTS_PER_BUCKET)], "SLOTS_PER_BUCKET"),
        ("A reader scans the {} slots of one bucket", vec![u(SLOTS_PER_BUCKET)], "SLOTS_PER_BUCKET"),
        ("When all {} slots of a bucket are taken", vec![u(SLOTS_PER_BUCKET)], "SLOTS_PER_BUCKET"),
        ("Let E = arena bytes / `expected_entry_bytes` (default {})", vec![n(defaults.expected_entry_bytes)], "TableConfig::default()"),
        ("B is the smallest power of two ≥ E / {}, and at least {} (the access bitmap is whole 64-bit words)", vec![n(INDEX_LOAD_TARGET), n(MIN_BUCKETS)], "INDEX_LOAD_TARGET, MIN_BUCKETS"),
        ("the index is sized for {} entries per {}-slot bucket, and rounding B up to a power of two leaves between {} and {}.",
            vec![n(INDEX_LOAD_TARGET), u(SLOTS_PER_BUCKET), dec(target / 2.0), dec(target)], "INDEX_LOAD_TARGET"),
        ("1 in {} at {} entries per bucket, 1 in {} at {}, 1 in {} at {}.",
            vec![one_in(target), dec(target), one_in(default_load), dec(default_load), one_in(target / 2.0), dec(target / 2.0)],
            "Poisson overflow of SLOTS_PER_BUCKET slots at INDEX_LOAD_TARGET, the default load and half the target"),
        ("At the defaults ({} arena, {}-byte entries) E = {}, B = {}: {} entries per bucket and a {} index; with the {} of tag counters and the header page the table segment is {}.",
            vec![size(arena), n(defaults.expected_entry_bytes), thousands(entries), thousands(buckets), dec(default_load), size(index_bytes), size(tag_bytes), size(built.table_bytes)],
            "a table built with TableConfig::default()"),
        // The arena and the entries.
        ("| segment header ({} B) | entry |", vec![n(SEGMENT_HEADER_BYTES)], "SEGMENT_HEADER_BYTES"),
        ("### Entry ({}-byte header + data, packed with no padding)", vec![u(ENTRY_HEADER_BYTES)], "ENTRY_HEADER_BYTES"),
        ("`value_len:{} \\| key_len:{} \\| ns_len:{} \\| ref_count:{} \\| check:{}`",
            vec![widths[0].to_string(), widths[1].to_string(), widths[2].to_string(), widths[3].to_string(), check_bits.to_string()],
            "the bits VALUE_LEN_CEILING, MAX_KEY_BYTES, MAX_NAMESPACE_BYTES and MAX_REFS need; the check has the rest of 64"),
        ("`check` is {} bits of a mix", vec![check_bits.to_string()], "64 bits minus the length fields"),
        ("{} bits miss 1 random corruption in {}", vec![check_bits.to_string(), n(1 << check_bits)], "the check's bits"),
        ("**Per-entry overhead**: {} bytes of entry header + {} bytes of index slot = **{} bytes**", vec![u(ENTRY_HEADER_BYTES), n(slot), n(overhead)], "ENTRY_HEADER_BYTES + a u64 slot"),
        ("it costs {} bytes / (entries per bucket) per entry, of which {} are the entry's own slot: {} to {} bytes as the rounding falls ({} to {} of them empty slots), {} bytes ({} empty) at the defaults, where the index is 1/{} of the arena.",
            vec![n(BUCKET_BYTES), n(slot), dec(per_entry(target)), dec(per_entry(target / 2.0)),
                 dec(per_entry(target) - slot as f64), dec(per_entry(target / 2.0) - slot as f64),
                 dec(per_entry(default_load)), dec(per_entry(default_load) - slot as f64), n(arena / index_bytes)],
            "BUCKET_BYTES / load between INDEX_LOAD_TARGET / 2 and INDEX_LOAD_TARGET, and at the default load"),
        // The client area.
        ("| 0 | {} | header: magic `\"CKSHMCA1\"`, layout version, length, record count ({}), records offset", vec![u(records_off), n(CLIENT_RECORDS)], "size_of::<ClientAreaHeader>(), CLIENT_RECORDS"),
        ("| {} | {} × {} | reserved: the per-client records of earlier builds", vec![u(records_off), n(CLIENT_RECORDS), u(size_of::<ClientRecord>())], "CLIENT_RECORDS, size_of::<ClientRecord>()"),
        ("| {} | B | access bitmap: one bit per index slot ({} per bucket) |", vec![u(bits_off), u(SLOTS_PER_BUCKET)], "the records' end"),
        // Limits.
        ("| key | {} bytes | {}-bit length field", vec![u(MAX_KEY_BYTES), widths[1].to_string()], "MAX_KEY_BYTES"),
        ("| namespace | {} bytes | {}-bit length field |", vec![u(MAX_NAMESPACE_BYTES), widths[2].to_string()], "MAX_NAMESPACE_BYTES"),
        ("| value | `max_value_bytes` (default {}, at most {} − 1) | {}-bit length field", vec![size(defaults.max_value_bytes), size(VALUE_LEN_CEILING as u64 + 1), widths[0].to_string()], "TableConfig::default(), VALUE_LEN_CEILING"),
        ("| tags per entry | {} | bounds the references (≤ 1 + {} × {} = {} of {}) |", vec![u(MAX_TAGS), u(MAX_TAGS), u(MAX_TAG_DEPTH), u(1 + MAX_TAGS * MAX_TAG_DEPTH), u(MAX_REFS)], "MAX_TAGS, MAX_TAG_DEPTH, MAX_REFS"),
        ("| tag depth | {} segments |", vec![u(MAX_TAG_DEPTH)], "MAX_TAG_DEPTH"),
        ("| tag length | {} bytes |", vec![u(MAX_TAG_BYTES)], "MAX_TAG_BYTES"),
        // Departures and limitations.
        ("which is how the entry header fits in {} bytes", vec![u(ENTRY_HEADER_BYTES)], "ENTRY_HEADER_BYTES"),
        ("**The check is {} bits**, to keep the header at {} bytes and the per-entry overhead at {} bytes.", vec![check_bits.to_string(), u(ENTRY_HEADER_BYTES), n(overhead)], "the entry header"),
        ("1 entry in {} dropped early at the defaults ({} entries per bucket) and 1 in {} where the rounding leaves {}",
            vec![one_in(default_load), dec(default_load), one_in(target), dec(target)], "as under \"Sizing\""),
        ("passes the {}-bit check about 1 time in {}", vec![check_bits.to_string(), two_digits((1u64 << check_bits) as f64)], "the check's bits"),
        ("get only the {} bits.", vec![check_bits.to_string()], "the check's bits"),
    ];
    let mut wrong: Vec<String> = claims
        .iter()
        .filter_map(|(t, v, what)| doc.claim(t, v, what))
        .collect();

    // The byte tables: every row's offset and size, against the structs.
    let header_fields: [(&str, usize, usize); 19] = [
        ("magic", offset_of!(TableHeader, magic), 8),
        ("layout_version", offset_of!(TableHeader, layout_version), 8),
        ("total_bytes", offset_of!(TableHeader, total_bytes), 8),
        ("hash_seed", offset_of!(TableHeader, hash_seed), 8),
        ("tag_off", offset_of!(TableHeader, tag_off), 8),
        ("tag_count", offset_of!(TableHeader, tag_count), 8),
        ("index_off", offset_of!(TableHeader, index_off), 8),
        ("bucket_count", offset_of!(TableHeader, bucket_count), 8),
        ("arena_off", offset_of!(TableHeader, arena_off), 8),
        ("segment_bytes", offset_of!(TableHeader, segment_bytes), 8),
        ("segment_count", offset_of!(TableHeader, segment_count), 8),
        (
            "max_value_bytes",
            offset_of!(TableHeader, max_value_bytes),
            8,
        ),
        (
            "client_area_bytes",
            offset_of!(TableHeader, client_area_bytes),
            8,
        ),
        ("geometry_check", offset_of!(TableHeader, geometry_check), 8),
        ("epoch", offset_of!(TableHeader, epoch), 8),
        ("heartbeat_ms", offset_of!(TableHeader, heartbeat_ms), 8),
        (
            "flush_generation",
            offset_of!(TableHeader, flush_generation),
            8,
        ),
        ("last_stamp", offset_of!(TableHeader, last_stamp), 8),
        (
            &format!("stats[{STAT_WORDS}]"),
            offset_of!(TableHeader, stats),
            8 * STAT_WORDS,
        ),
    ];
    wrong.extend(check_layout(
        &doc,
        "### Table header",
        &header_fields,
        size_of::<TableHeader>(),
    ));
    let segment_fields = [
        ("generation", offset_of!(SegmentHeader, generation), 8),
        ("ttl_class", offset_of!(SegmentHeader, ttl_class), 8),
        ("write_offset", offset_of!(SegmentHeader, write_offset), 8),
        ("alloc_seq", offset_of!(SegmentHeader, alloc_seq), 8),
        (
            "max_grace_until",
            offset_of!(SegmentHeader, max_grace_until),
            8,
        ),
        ("reserved", offset_of!(SegmentHeader, reserved), 24),
    ];
    wrong.extend(check_layout(
        &doc,
        "Segment header (`layout::SegmentHeader`)",
        &segment_fields,
        size_of::<SegmentHeader>(),
    ));
    wrong.extend(check_entry_table(&doc));

    assert!(
        wrong.is_empty(),
        "{DOC} no longer matches shm's constants; fix each line below (the numbers come from the \
         code, see shm/tests/architecture_doc.rs):\n- {}",
        wrong.join("\n- ")
    );
}

/// Checks a byte table (`| offset | size | field | ... |`) against `(field, offset, size)` of a
/// struct of `total` bytes.
fn check_layout(
    doc: &Doc,
    heading: &str,
    fields: &[(&str, usize, usize)],
    total: usize,
) -> Vec<String> {
    let mut wrong = Vec::new();
    let rows = doc.table_after(heading);
    for (line, cells) in &rows {
        let name = cells[2].trim_matches('`');
        let Some((_, off, len)) = fields.iter().find(|(f, _, _)| *f == name) else {
            wrong.push(format!(
                "{DOC}:{line}: field `{name}` of the {heading} table is not in the struct (or \
                 not yet in this test's list of its fields)"
            ));
            continue;
        };
        if cells[0] != off.to_string() || cells[1] != len.to_string() {
            wrong.push(format!(
                "{DOC}:{line}: `{name}` is at offset {off}, {len} bytes long: the row must start \
                 `| {off} | {len} | `"
            ));
        }
    }
    let documented: usize = rows
        .iter()
        .filter_map(|(_, c)| c[1].parse::<usize>().ok())
        .sum();
    if rows.len() != fields.len() || documented != total {
        wrong.push(format!(
            "{DOC}: the {heading} table has {} rows of {documented} bytes; the struct has {} \
             fields of {total} bytes: add the missing rows",
            rows.len(),
            fields.len()
        ));
    }
    wrong
}

/// The entry header table: its fixed fields follow each other and end where the variable part
/// starts, at ENTRY_HEADER_BYTES.
fn check_entry_table(doc: &Doc) -> Vec<String> {
    let mut wrong = Vec::new();
    let mut end = 0;
    for (line, cells) in doc.table_after("### Entry (") {
        let Ok(off) = cells[0].parse::<usize>() else {
            continue; // "…": after the variable-length fields
        };
        if off != end {
            wrong.push(format!("{DOC}:{line}: this field starts at byte {end}"));
        }
        match cells[1].parse::<usize>() {
            Ok(len) => end = off + len,
            Err(_) => {
                if off != ENTRY_HEADER_BYTES {
                    wrong.push(format!(
                        "{DOC}:{line}: the entry header is ENTRY_HEADER_BYTES = \
                         {ENTRY_HEADER_BYTES} bytes, so its data starts at {ENTRY_HEADER_BYTES}"
                    ));
                }
                return wrong;
            }
        }
    }
    wrong.push(format!(
        "{DOC}: the entry table has no variable-length row after its header"
    ));
    wrong
}
