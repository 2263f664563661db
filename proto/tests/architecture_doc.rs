//! The protocol has one description: this crate's documentation (`src/lib.rs`). These tests keep
//! `docs/ARCHITECTURE.md`'s protocol section an exact copy of it, and check its tables and
//! numbers against the code.
//!
//! The copy is the crate documentation between `<!-- protocol:begin` and `<!-- protocol:end`,
//! with headings moved down two levels (`# Frame` becomes `### Frame`) and intra-doc links written
//! as plain code (`` [`Limits`] `` becomes `` `Limits` ``). It stands between the same markers in
//! ARCHITECTURE.md. After editing the crate documentation, rewrite the copy with
//! `CACHEKIT_BLESS=1 cargo test --profile ci -p cachekit-proto --test architecture_doc`.

use cachekit_proto::{
    encode_reply, encode_request, Condition, ErrorCode, FetchHit, Hello, HelloOk, Incr, Kind,
    Lease, LeaseFill, Limits, Reply, Request, ScanRequest, Selection, Set, SetIf, HEADER_LEN,
    MAGIC, MAX_CLIENT_NAME_BYTES, MAX_ERROR_MESSAGE_BYTES, MAX_NAMESPACE_LIST, MAX_PATTERN_BYTES,
    MAX_SCAN_PAGE, MAX_STATS, MAX_STAT_NAME_BYTES, PROTOCOL_VERSION,
};
use std::path::PathBuf;

const BLESS: &str =
    "CACHEKIT_BLESS=1 cargo test --profile ci -p cachekit-proto --test architecture_doc";

fn repo_file(rel: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("..")
        .join(rel)
}

fn read(rel: &str) -> String {
    let path = repo_file(rel);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()))
}

/// The crate documentation of `src/lib.rs` (its `//!` lines, without the `//! ` prefix), with
/// the line number in `lib.rs` of each line.
fn crate_docs() -> Vec<(usize, String)> {
    read("proto/src/lib.rs")
        .lines()
        .enumerate()
        .take_while(|(_, l)| l.starts_with("//!"))
        .map(|(i, l)| {
            let text = l.strip_prefix("//! ").unwrap_or(&l[3..]);
            (i + 1, text.to_string())
        })
        .collect()
}

/// Index of the line starting with `<!-- {name}:begin` and of the one starting with
/// `<!-- {name}:end`; `what` names the file for the message.
fn markers<S: AsRef<str>>(lines: &[S], name: &str, what: &str) -> (usize, usize) {
    let find = |tag: &str| {
        let prefix = format!("<!-- {name}:{tag}");
        let hits: Vec<usize> = (0..lines.len())
            .filter(|&i| lines[i].as_ref().starts_with(&prefix))
            .collect();
        match hits[..] {
            [i] => i,
            _ => panic!(
                "{what} must have exactly one line starting with `{prefix}` (found {}): it marks \
                 where the generated protocol section starts or ends",
                hits.len()
            ),
        }
    };
    let (begin, end) = (find("begin"), find("end"));
    assert!(
        begin < end,
        "{what}: `{name}:begin` must come before `{name}:end`"
    );
    (begin, end)
}

/// The protocol section of the crate documentation, as lines.
fn protocol_source() -> Vec<(usize, String)> {
    let docs = crate_docs();
    let texts: Vec<&str> = docs.iter().map(|(_, t)| t.as_str()).collect();
    let (begin, end) = markers(&texts, "protocol", "proto/src/lib.rs's crate documentation");
    docs[begin + 1..end].to_vec()
}

/// One line of the crate documentation as ARCHITECTURE.md shows it.
fn for_architecture(line: &str) -> String {
    let line = if line.starts_with('#') {
        format!("##{line}")
    } else {
        line.to_string()
    };
    assert!(
        !line.contains("](") && !line.contains("]: "),
        "the protocol docs use a markdown link (`{line}`); write it as [`Name`] (an intra-doc \
         link) or extend for_architecture() in proto/tests/architecture_doc.rs to copy it"
    );
    line.replace("[`", "`").replace("`]", "`")
}

#[test]
fn architecture_md_has_an_exact_copy_of_the_protocol_docs() {
    let expected: Vec<String> = protocol_source()
        .iter()
        .map(|(_, l)| for_architecture(l))
        .collect();
    let rel = "docs/ARCHITECTURE.md";
    let doc = read(rel);
    let lines: Vec<&str> = doc.lines().collect();
    let (begin, end) = markers(&lines, "protocol", rel);
    let current = &lines[begin + 1..end];
    if current == expected.as_slice() {
        return;
    }
    if std::env::var_os("CACHEKIT_BLESS").is_some_and(|v| v == "1") {
        let mut out: Vec<&str> = lines[..=begin].to_vec();
        out.extend(expected.iter().map(String::as_str));
        out.extend(&lines[end..]);
        let path = repo_file(rel);
        let tmp = path.with_extension("md.tmp");
        std::fs::write(&tmp, out.join("\n") + "\n").expect("write the new ARCHITECTURE.md");
        std::fs::rename(&tmp, &path).expect("replace ARCHITECTURE.md");
        eprintln!("rewrote the protocol section of {rel} from proto/src/lib.rs");
        return;
    }
    let source = protocol_source();
    let i = (0..current.len().max(expected.len()))
        .find(|&i| current.get(i).map(|s| s.to_string()) != expected.get(i).cloned())
        .expect("the sections differ somewhere");
    let show = |l: Option<&str>| l.map_or("(nothing)".to_string(), |l| format!("`{l}`"));
    let src_line = source.get(i).map_or_else(
        || {
            format!(
                "{} (its end marker)",
                source.last().map_or(0, |(n, _)| n + 1)
            )
        },
        |(n, _)| n.to_string(),
    );
    panic!(
        "{rel}:{} is not a copy of proto/src/lib.rs:{src_line}\n  ARCHITECTURE.md: {}\n  lib.rs (as copied): {}\n\
         The protocol section of ARCHITECTURE.md is generated from proto/src/lib.rs's crate \
         documentation: edit lib.rs, then run `{BLESS}` to rewrite the copy.",
        begin + 2 + i,
        show(current.get(i).copied()),
        show(expected.get(i).map(String::as_str)),
    );
}

/// The rows of the table whose header row is `header` in the protocol docs, as cells, with
/// their lib.rs line numbers.
fn table(header: &str) -> Vec<(usize, Vec<String>)> {
    let src = protocol_source();
    let start = src
        .iter()
        .position(|(_, l)| l == header)
        .unwrap_or_else(|| {
            panic!("proto/src/lib.rs's docs have no table `{header}`; update this test")
        });
    src[start + 2..] // after the header row and the alignment row
        .iter()
        .take_while(|(_, l)| l.starts_with('|'))
        .map(|(n, l)| {
            let cells = l
                .trim_matches('|')
                .split(" | ")
                .map(|c| c.trim().to_string())
                .collect();
            (*n, cells)
        })
        .collect()
}

fn parse_num(s: &str) -> u64 {
    let s = s.trim().trim_matches('`');
    match s.strip_prefix("0x") {
        Some(hex) => u64::from_str_radix(hex, 16),
        None => s.parse(),
    }
    .unwrap_or_else(|_| panic!("`{s}` is not a number"))
}

#[test]
fn message_kinds_table_lists_every_kind_with_its_byte() {
    let rows = table("| kind | name | direction | body |");
    for kind in Kind::ALL {
        let hits: Vec<_> = rows.iter().filter(|(_, c)| c[1] == kind.name()).collect();
        let [(line, cells)] = hits[..] else {
            panic!(
                "the message kinds table in proto/src/lib.rs must have one row for {} (has {})",
                kind.name(),
                hits.len()
            );
        };
        assert_eq!(
            parse_num(&cells[0]),
            u64::from(kind.as_u8()),
            "proto/src/lib.rs:{line}: {} is 0x{:02X} in the code",
            kind.name(),
            kind.as_u8()
        );
        let direction = if kind.is_request() {
            "client → daemon"
        } else {
            "daemon → client"
        };
        assert_eq!(cells[2], direction, "proto/src/lib.rs:{line}");
    }
    assert_eq!(
        rows.len(),
        Kind::ALL.len(),
        "the message kinds table in proto/src/lib.rs has a row that is no `Kind`"
    );
}

#[test]
fn error_code_table_matches_error_code() {
    let rows = table("| code | name | meaning |");
    let codes: Vec<_> = rows.iter().map(|(_, c)| parse_num(&c[0])).collect();
    for (line, cells) in &rows {
        let code = ErrorCode::from_u16(parse_num(&cells[0]) as u16);
        assert!(
            !matches!(code, ErrorCode::Unknown(_)),
            "proto/src/lib.rs:{line}: code {} is not an ErrorCode",
            cells[0]
        );
        let name = format!("{code:?}");
        let snake = name
            .chars()
            .enumerate()
            .flat_map(|(i, ch)| {
                let sep = (i > 0 && ch.is_uppercase()).then_some('_');
                sep.into_iter().chain(ch.to_uppercase())
            })
            .collect::<String>();
        assert_eq!(cells[1], snake, "proto/src/lib.rs:{line}");
    }
    // Every assigned code is in the table: the codes are 1..=n with no gap, and n + 1 is unknown.
    let n = codes.len() as u64;
    assert_eq!(codes, (1..=n).collect::<Vec<_>>(), "codes must be 1, 2, …");
    assert!(
        matches!(ErrorCode::from_u16(n as u16 + 1), ErrorCode::Unknown(_)),
        "ErrorCode {} exists but the table in proto/src/lib.rs stops at {n}",
        n + 1
    );
}

/// A message of `kind` whose variable parts are empty and whose options are `none` (`full`:
/// every option present).
fn sample(kind: Kind, full: bool) -> Vec<u8> {
    let ttl = full.then_some(1);
    let mut out = Vec::new();
    let req = match kind {
        Kind::Hello => Some(Request::Hello(Hello::new(""))),
        Kind::Set => Some(Request::Set(Set {
            namespace: String::new(),
            key: Vec::new(),
            value: Vec::new(),
            ttl_ms: ttl,
            grace_ms: 0,
            tags: Vec::new(),
        })),
        Kind::Delete => Some(Request::Delete {
            namespace: String::new(),
            key: Vec::new(),
        }),
        Kind::Invalidate => Some(Request::Invalidate {
            namespace: String::new(),
            tags: Vec::new(),
            exact: false,
        }),
        Kind::Clear => Some(Request::Clear {
            namespace: String::new(),
        }),
        Kind::Fetch => Some(Request::Fetch {
            namespace: String::new(),
            key: Vec::new(),
        }),
        Kind::Stats => Some(Request::Stats),
        Kind::Ping => Some(Request::Ping),
        Kind::SetIf => Some(Request::SetIf(SetIf {
            set: Set {
                namespace: String::new(),
                key: Vec::new(),
                value: Vec::new(),
                ttl_ms: ttl,
                grace_ms: 0,
                tags: Vec::new(),
            },
            condition: Condition::Version(7),
        })),
        Kind::Incr => Some(Request::Incr(Incr {
            namespace: String::new(),
            key: Vec::new(),
            delta: -1,
            initial: full.then_some(-5),
            ttl_ms: ttl,
        })),
        Kind::Take => Some(Request::Take {
            namespace: String::new(),
            key: Vec::new(),
        }),
        Kind::Touch => Some(Request::Touch {
            namespace: String::new(),
            key: Vec::new(),
            ttl_ms: ttl,
        }),
        Kind::Scan | Kind::DeleteMatching => {
            let s = ScanRequest {
                namespace: String::new(),
                cursor: 3,
                selection: Selection::default(),
                count: 0,
            };
            Some(match kind {
                Kind::Scan => Request::Scan(s),
                _ => Request::DeleteMatching(s),
            })
        }
        Kind::Namespaces => Some(Request::Namespaces),
        Kind::Metrics => Some(Request::Metrics),
        Kind::Lease => Some(Request::Lease(Lease {
            namespace: String::new(),
            key: Vec::new(),
            wait_ms: 1,
            lease_ms: 2,
            flags: 0,
        })),
        Kind::LeaseFill => Some(Request::LeaseFill(LeaseFill {
            token: 5,
            set: Set {
                namespace: String::new(),
                key: Vec::new(),
                value: Vec::new(),
                ttl_ms: ttl,
                grace_ms: 0,
                tags: Vec::new(),
            },
        })),
        Kind::LeaseRelease => Some(Request::LeaseRelease {
            namespace: String::new(),
            key: Vec::new(),
            token: 5,
        }),
        Kind::Verify => Some(Request::Verify(cachekit_proto::VerifyRequest {
            cursor: 3,
            max_slots: 0,
            repair: full,
        })),
        Kind::SetMany => Some(Request::SetMany(cachekit_proto::SetMany {
            namespace: String::new(),
            ttl_ms: ttl,
            grace_ms: 0,
            tags: Vec::new(),
            items: Vec::new(),
        })),
        Kind::DeleteMany => Some(Request::DeleteMany(cachekit_proto::DeleteMany {
            namespace: String::new(),
            keys: Vec::new(),
        })),
        _ => None,
    };
    if let Some(req) = req {
        encode_request(&req, 1, &mut out).expect("encode");
    } else {
        encode_reply(&sample_reply(kind, full), 1, &mut out).expect("encode");
    }
    out.split_off(HEADER_LEN)
}

fn sample_reply(kind: Kind, full: bool) -> Reply {
    match kind {
        Kind::HelloOk => Reply::HelloOk(hello_ok()),
        Kind::Ok => Reply::Ok,
        Kind::Deleted => Reply::Deleted { existed: true },
        Kind::FetchHit => Reply::FetchHit(FetchHit {
            value: Vec::new(),
            created_ms: 0,
            expires_ms: full.then_some(1),
            grace_until_ms: full.then_some(2),
            stale: false,
            version: 9,
        }),
        Kind::Stored => Reply::Stored {
            stored: true,
            version: 1,
        },
        Kind::Counter => Reply::Counter {
            present: true,
            value: -1,
            version: 1,
        },
        Kind::Found => Reply::Found { found: true },
        Kind::ScanPage => Reply::ScanPage {
            cursor: 0,
            items: Vec::new(),
        },
        Kind::DeletedMany => Reply::DeletedMany {
            cursor: 0,
            deleted: 2,
        },
        Kind::NamespaceList => Reply::NamespaceList {
            namespaces: Vec::new(),
        },
        Kind::LeaseGranted => Reply::LeaseGranted { token: 1 },
        Kind::LeaseBusy => Reply::LeaseBusy,
        Kind::VerifyReport => Reply::VerifyReport(cachekit_proto::VerifyReport {
            next: 0,
            examined: 1,
            repaired: 0,
            counts: Vec::new(),
            sample: Vec::new(),
        }),
        Kind::MetricsText => Reply::Metrics {
            text: String::new(),
        },
        Kind::BatchResults => Reply::BatchResults {
            results: Vec::new(),
        },
        Kind::FetchMiss => Reply::FetchMiss,
        Kind::StatsReply => Reply::Stats {
            counters: Vec::new(),
        },
        Kind::Pong => Reply::Pong {
            epoch: 0,
            heartbeat_ms: 0,
        },
        Kind::Error => Reply::error(ErrorCode::Internal, ""),
        request => panic!("{request} is a request"),
    }
}

/// A HELLO_OK whose fields all hold different values, by field name.
fn hello_ok() -> HelloOk {
    HelloOk {
        version: 0x11,
        daemon_epoch: 0x2222_2222_2222_2202,
        layout_version: 0x3333_3303,
        segment_size: 0x4444_4444_4444_4404,
        client_area_size: 0x5555_5555_5555_5505,
        client_slot: 0x6666_6606,
        heartbeat_timeout_ms: 0x7777_7707,
        fd_count: 0x08,
        limits: Limits {
            max_frame_bytes: 0x0909_0909,
            max_key_bytes: 0x0A0A_0A0A,
            max_namespace_bytes: 0x0B0B_0B0B,
            max_value_bytes: 0x0C0C_0C0C,
            max_tags: 0x0D0D,
            max_tag_bytes: 0x0E0E_0E0E,
        },
        flags: 0x0F,
    }
}

#[test]
fn body_sizes_in_the_headings_are_what_the_encoder_writes() {
    let mut documented = Vec::new();
    for (line, text) in protocol_source() {
        let Some((names, size)) = text.strip_prefix("**").and_then(|t| t.split_once(" — "))
        else {
            continue;
        };
        // "**SET** (0x02)", "**STATS** (0x07), **PING** (0x08)"
        let kinds: Vec<Kind> = names
            .split("(0x")
            .skip(1)
            .map(|t| {
                let byte = u8::from_str_radix(&t[..2], 16).expect("a kind byte");
                Kind::from_u8(byte)
                    .unwrap_or_else(|| panic!("proto/src/lib.rs:{line}: 0x{byte:02X} is no Kind"))
            })
            .collect();
        // "empty body.", "1 byte", "60 bytes, fixed", "23 (31 with a TTL) + …", "15 to 31 + …"
        let numbers: Vec<u64> = size
            .split(|c: char| !c.is_ascii_digit())
            .filter(|t| !t.is_empty())
            .take(2)
            .map(|t| t.parse().expect("digits"))
            .collect();
        let (least, most) = if size.starts_with("empty body") {
            (0, 0)
        } else if size.contains(" with a TTL)") || size.contains(" to ") {
            (numbers[0], numbers[1])
        } else {
            (numbers[0], numbers[0])
        };
        for kind in kinds {
            let (small, big) = (sample(kind, false).len(), sample(kind, true).len());
            assert_eq!(
                (small as u64, big as u64),
                (least, most),
                "proto/src/lib.rs:{line}: the body of {kind} is {small} bytes with empty \
                 fields and no options, {big} with every option; the heading says `{size}`"
            );
            documented.push(kind);
        }
    }
    for kind in Kind::ALL {
        assert_eq!(
            documented.iter().filter(|k| **k == kind).count(),
            1,
            "{kind} needs exactly one body heading (`**{kind}** (0x..) — size`) in \
             proto/src/lib.rs"
        );
    }
}

#[test]
fn request_reply_table_is_what_reply_answers_accepts() {
    let rows = table("| request | replies |");
    let name = |n: &str| {
        Kind::ALL
            .into_iter()
            .find(|k| k.name() == n)
            .unwrap_or_else(|| panic!("`{n}` in the request/replies table is no Kind"))
    };
    let mut requests = Vec::new();
    for (line, cells) in &rows {
        let replies: Vec<Kind> = cells[1].split(", ").map(name).collect();
        for request in cells[0].split(", ").map(name) {
            for reply in Kind::ALL.into_iter().filter(|k| !k.is_request()) {
                let answers = sample_reply(reply, false).answers(request);
                assert_eq!(
                    answers,
                    replies.contains(&reply),
                    "proto/src/lib.rs:{line}: Reply::answers says {reply} {} {request}",
                    if answers {
                        "answers"
                    } else {
                        "does not answer"
                    }
                );
            }
            requests.push(request);
        }
    }
    let mut all: Vec<Kind> = Kind::ALL.into_iter().filter(|k| k.is_request()).collect();
    all.sort_by_key(|k| k.as_u8());
    requests.sort_by_key(|k| k.as_u8());
    assert_eq!(
        requests, all,
        "every request has one row in the request/replies table"
    );
}

/// Reads the `width`-byte little-endian integer at `off`.
fn le(bytes: &[u8], off: usize, width: usize) -> u64 {
    let mut w = [0u8; 8];
    w[..width].copy_from_slice(&bytes[off..off + width]);
    u64::from_le_bytes(w)
}

#[test]
fn frame_header_table_matches_the_encoder() {
    let mut frame = Vec::new();
    encode_reply(
        &Reply::Pong {
            epoch: 0,
            heartbeat_ms: 0,
        },
        0xA1B2_C3D4,
        &mut frame,
    )
    .expect("encode");
    let values = [
        ("body_len", (frame.len() - HEADER_LEN) as u64),
        ("magic", u64::from(MAGIC)),
        ("version", u64::from(PROTOCOL_VERSION)),
        ("kind", u64::from(Kind::Pong.as_u8())),
        ("request_id", 0xA1B2_C3D4),
    ];
    let rows = table("| offset | size | field | value |");
    let mut end = 0;
    for (line, cells) in &rows {
        let field = cells[2].trim_matches('`');
        let off = parse_num(&cells[0]) as usize;
        if field == "body" {
            assert_eq!(
                off, HEADER_LEN,
                "proto/src/lib.rs:{line}: the body starts at HEADER_LEN"
            );
            continue;
        }
        let (_, value) = values
            .iter()
            .find(|(f, _)| *f == field)
            .unwrap_or_else(|| panic!("proto/src/lib.rs:{line}: unknown header field {field}"));
        let width = parse_num(&cells[1]) as usize;
        assert_eq!(
            off, end,
            "proto/src/lib.rs:{line}: fields follow each other"
        );
        assert_eq!(
            le(&frame, off, width),
            *value,
            "proto/src/lib.rs:{line}: {field}"
        );
        end = off + width;
    }
    assert_eq!(
        end, HEADER_LEN,
        "the header table covers the {HEADER_LEN} header bytes"
    );
    assert_eq!(
        rows.len(),
        values.len() + 1,
        "one row per header field, then the body"
    );
}

#[test]
fn hello_ok_table_matches_the_encoder() {
    let h = hello_ok();
    let l = h.limits;
    let values = [
        ("version", u64::from(h.version)),
        ("daemon_epoch", h.daemon_epoch),
        ("layout_version", u64::from(h.layout_version)),
        ("segment_size", h.segment_size),
        ("client_area_size", h.client_area_size),
        ("client_slot", u64::from(h.client_slot)),
        ("heartbeat_timeout_ms", u64::from(h.heartbeat_timeout_ms)),
        ("fd_count", u64::from(h.fd_count)),
        ("max_frame_bytes", l.max_frame_bytes as u64),
        ("max_key_bytes", l.max_key_bytes as u64),
        ("max_namespace_bytes", l.max_namespace_bytes as u64),
        ("max_value_bytes", l.max_value_bytes as u64),
        ("max_tags", l.max_tags as u64),
        ("max_tag_bytes", l.max_tag_bytes as u64),
        ("flags", u64::from(h.flags)),
    ];
    let body = sample(Kind::HelloOk, false);
    let rows = table("| body offset | field | type | notes |");
    let mut end = 0;
    for (line, cells) in &rows {
        let off = parse_num(&cells[0]) as usize;
        let field = cells[1].trim_matches('`');
        let width = match cells[2].as_str() {
            "u8" => 1,
            "u16" => 2,
            "u32" => 4,
            "u64" => 8,
            t => panic!("proto/src/lib.rs:{line}: HELLO_OK fields are integers, not {t}"),
        };
        let (_, value) = values
            .iter()
            .find(|(f, _)| *f == field)
            .unwrap_or_else(|| panic!("proto/src/lib.rs:{line}: unknown HELLO_OK field {field}"));
        assert_eq!(
            off, end,
            "proto/src/lib.rs:{line}: fields follow each other"
        );
        assert_eq!(
            le(&body, off, width),
            *value,
            "proto/src/lib.rs:{line}: {field}"
        );
        end = off + width;
    }
    assert_eq!(end, body.len(), "the HELLO_OK table covers its whole body");
    assert_eq!(rows.len(), values.len(), "one row per HELLO_OK field");
}

#[test]
fn constants_quoted_in_the_docs_have_their_values() {
    let known: [(&str, u64); 15] = [
        ("MAX_BATCH_ITEMS", cachekit_proto::MAX_BATCH_ITEMS as u64),
        (
            "MAX_BATCH_MESSAGE_BYTES",
            cachekit_proto::MAX_BATCH_MESSAGE_BYTES as u64,
        ),
        ("MAX_PATTERN_BYTES", MAX_PATTERN_BYTES as u64),
        ("MAX_SCAN_PAGE", MAX_SCAN_PAGE as u64),
        ("MAX_NAMESPACE_LIST", MAX_NAMESPACE_LIST as u64),
        (
            "MAX_VERIFY_SAMPLE",
            cachekit_proto::MAX_VERIFY_SAMPLE as u64,
        ),
        ("PROTOCOL_VERSION", u64::from(PROTOCOL_VERSION)),
        ("MAGIC", u64::from(MAGIC)),
        ("HEADER_LEN", HEADER_LEN as u64),
        ("MAX_CLIENT_NAME_BYTES", MAX_CLIENT_NAME_BYTES as u64),
        ("MAX_STATS", MAX_STATS as u64),
        ("MAX_STAT_NAME_BYTES", MAX_STAT_NAME_BYTES as u64),
        ("MAX_ERROR_MESSAGE_BYTES", MAX_ERROR_MESSAGE_BYTES as u64),
        (
            "cachekit_shm::MAX_TAG_DEPTH",
            cachekit_shm::MAX_TAG_DEPTH as u64,
        ),
        (
            "cachekit_shm::MAX_TAG_BYTES",
            cachekit_shm::MAX_TAG_BYTES as u64,
        ),
    ];
    let mut quoted = 0;
    for (line, text) in protocol_source() {
        // "[`NAME`] = 255"
        for (i, _) in text.match_indices("`] = ") {
            let name_start = text[..i].rfind("[`").expect("an intra-doc link") + 2;
            let name = &text[name_start..i];
            let number: String = text[i + 5..]
                .chars()
                .take_while(|c| c.is_ascii_hexdigit() || *c == 'x')
                .collect();
            let (_, value) = known.iter().find(|(n, _)| *n == name).unwrap_or_else(|| {
                panic!(
                    "proto/src/lib.rs:{line} quotes {name}; add it to `known` in \
                     proto/tests/architecture_doc.rs so its value is checked"
                )
            });
            assert_eq!(
                parse_num(&number),
                *value,
                "proto/src/lib.rs:{line}: {name} is {value} (0x{value:X}) in the code"
            );
            quoted += 1;
        }
    }
    assert!(quoted >= known.len(), "every constant of `known` is quoted");
    let header = format!("Every frame is a {HEADER_LEN}-byte header");
    assert!(
        protocol_source()
            .iter()
            .any(|(_, l)| l.starts_with(&header)),
        "proto/src/lib.rs's `# Frame` must say `{header}`"
    );
}

fn size(n: usize) -> String {
    const KIB: usize = 1 << 10;
    const MIB: usize = 1 << 20;
    match (n / MIB, n % MIB) {
        (0, _) => n.to_string(),
        (m, 0) => format!("{m} MiB"),
        (m, r) if r % KIB == 0 => format!("{m} MiB + {} KiB", r / KIB),
        _ => n.to_string(),
    }
}

#[test]
fn default_limits_in_the_docs_are_limits_default() {
    let l = Limits::DEFAULT;
    let expected = format!(
        "(defaults: key {} bytes, namespace {}, value {}, {} tags of {} bytes, frame {})",
        l.max_key_bytes,
        l.max_namespace_bytes,
        size(l.max_value_bytes),
        l.max_tags,
        l.max_tag_bytes,
        size(l.max_frame_bytes)
    );
    let src = protocol_source();
    let text = src
        .iter()
        .map(|(_, l)| l.as_str())
        .collect::<Vec<_>>()
        .join(" ");
    if !text.contains(&expected) {
        let line = src
            .iter()
            .find(|(_, l)| l.contains("(defaults:"))
            .map_or(0, |(n, _)| *n);
        panic!("proto/src/lib.rs:{line}: the `# Limits` section must say `{expected}`");
    }
}
