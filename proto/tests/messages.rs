//! Golden bytes for every message, and every decode and encode error path, through the public API.

use cachekit_proto::{
    decode_body, decode_frame, decode_header, encode_frame, encode_reply, encode_request,
    EncodeError, ErrorCode, FetchHit, Field, Frame, Hello, HelloOk, Kind, Limits, Message,
    ProtoError, Reply, Request, Set, HEADER_LEN, MAX_CLIENT_NAME_BYTES, MAX_ERROR_MESSAGE_BYTES,
    MAX_STATS, MAX_STAT_NAME_BYTES,
};

/// Builds a frame by hand, following the header table.
fn frame(kind: u8, request_id: u32, body: &[u8]) -> Vec<u8> {
    let mut f = Vec::new();
    f.extend_from_slice(&(body.len() as u32).to_le_bytes());
    f.extend_from_slice(b"CK");
    f.push(1);
    f.push(kind);
    f.extend_from_slice(&request_id.to_le_bytes());
    f.extend_from_slice(body);
    f
}

/// `bytes`/`str` field: u32 length + bytes.
fn lv(bytes: &[u8]) -> Vec<u8> {
    let mut v = (bytes.len() as u32).to_le_bytes().to_vec();
    v.extend_from_slice(bytes);
    v
}

fn cat(parts: &[&[u8]]) -> Vec<u8> {
    parts.concat()
}

fn decode(bytes: &[u8]) -> Result<Option<(Frame, usize)>, ProtoError> {
    decode_frame(bytes, &Limits::DEFAULT)
}

fn decode_err(bytes: &[u8], limits: &Limits) -> ProtoError {
    decode_frame(bytes, limits).expect_err("must not decode")
}

/// Checks that `request` encodes to exactly `bytes`, decodes back, validates, and that every
/// strict prefix asks for more bytes.
fn golden_request(request: Request, bytes: &[u8]) {
    let mut out = Vec::new();
    encode_request(&request, 0xA1B2_C3D4, &mut out).unwrap();
    assert_eq!(out, bytes, "{request:?}");
    assert_eq!(out.len() as u64, HEADER_LEN as u64 + request.body_len());
    request.validate(&Limits::DEFAULT).unwrap();
    let frame = Frame {
        request_id: 0xA1B2_C3D4,
        message: Message::Request(request),
    };
    assert_eq!(decode(bytes), Ok(Some((frame, bytes.len()))));
    for cut in 0..bytes.len() {
        assert_eq!(decode(&bytes[..cut]), Ok(None), "prefix of {cut} bytes");
    }
}

fn golden_reply(reply: Reply, bytes: &[u8]) {
    let mut out = Vec::new();
    encode_reply(&reply, 0xA1B2_C3D4, &mut out).unwrap();
    assert_eq!(out, bytes, "{reply:?}");
    assert_eq!(out.len() as u64, HEADER_LEN as u64 + reply.body_len());
    reply.validate(&Limits::DEFAULT).unwrap();
    let frame = Frame {
        request_id: 0xA1B2_C3D4,
        message: Message::Reply(reply),
    };
    assert_eq!(decode(bytes), Ok(Some((frame, bytes.len()))));
    for cut in 0..bytes.len() {
        assert_eq!(decode(&bytes[..cut]), Ok(None), "prefix of {cut} bytes");
    }
}

const ID: u32 = 0xA1B2_C3D4;

fn set(ttl_ms: Option<u64>) -> Set {
    Set {
        namespace: "app".into(),
        key: b"k\x00\xff".to_vec(),
        value: vec![9, 8, 7],
        ttl_ms,
        grace_ms: 0x0102,
        tags: vec!["posts/1".into(), "t".into()],
    }
}

// ---------------------------------------------------------------- requests

#[test]
fn hello_bytes() {
    let hello = Hello {
        min_version: 1,
        max_version: 3,
        client_pid: 0x1234,
        client_name: "gunicorn".into(),
    };
    let body = cat(&[&[1, 3], &0x1234u32.to_le_bytes(), &lv(b"gunicorn")]);
    assert_eq!(body.len(), 10 + 8);
    golden_request(Request::Hello(hello), &frame(0x01, ID, &body));
}

#[test]
fn hello_new_offers_this_version() {
    let hello = Hello::new("worker");
    assert_eq!((hello.min_version, hello.max_version), (1, 1));
    assert_eq!(hello.client_pid, std::process::id());
}

#[test]
fn set_bytes_with_and_without_ttl() {
    let tags = cat(&[&2u16.to_le_bytes(), &lv(b"posts/1"), &lv(b"t")]);
    let with = cat(&[
        &lv(b"app"),
        &lv(b"k\x00\xff"),
        &[1],
        &7u64.to_le_bytes(),
        &0x0102u64.to_le_bytes(),
        &tags,
        &lv(&[9, 8, 7]),
    ]);
    assert_eq!(with.len(), 31 + 3 + 3 + 3 + (4 + 7) + (4 + 1));
    golden_request(Request::Set(set(Some(7))), &frame(0x02, ID, &with));

    let without = cat(&[
        &lv(b"app"),
        &lv(b"k\x00\xff"),
        &[0],
        &0x0102u64.to_le_bytes(),
        &tags,
        &lv(&[9, 8, 7]),
    ]);
    assert_eq!(without.len(), with.len() - 8);
    golden_request(Request::Set(set(None)), &frame(0x02, ID, &without));
}

#[test]
fn delete_and_fetch_bytes() {
    let body = cat(&[&lv(b"ns"), &lv(b"key")]);
    let delete = Request::Delete {
        namespace: "ns".into(),
        key: b"key".to_vec(),
    };
    golden_request(delete, &frame(0x03, ID, &body));
    let fetch = Request::Fetch {
        namespace: "ns".into(),
        key: b"key".to_vec(),
    };
    golden_request(fetch, &frame(0x06, ID, &body));
}

#[test]
fn invalidate_bytes() {
    for exact in [false, true] {
        let body = cat(&[
            &lv(b"ns"),
            &1u16.to_le_bytes(),
            &lv("posts/ü".as_bytes()),
            &[u8::from(exact)],
        ]);
        let request = Request::Invalidate {
            namespace: "ns".into(),
            tags: vec!["posts/ü".into()],
            exact,
        };
        golden_request(request, &frame(0x04, ID, &body));
    }
}

#[test]
fn clear_stats_ping_bytes() {
    golden_request(
        Request::Clear {
            namespace: "n".into(),
        },
        &frame(0x05, ID, &lv(b"n")),
    );
    golden_request(Request::Stats, &frame(0x07, ID, &[]));
    golden_request(Request::Ping, &frame(0x08, ID, &[]));
}

// ---------------------------------------------------------------- replies

fn hello_ok() -> HelloOk {
    HelloOk {
        version: 1,
        daemon_epoch: 0x1111_2222_3333_4444,
        layout_version: 7,
        segment_size: 1 << 30,
        client_area_size: 1 << 20,
        client_slot: 42,
        heartbeat_timeout_ms: 3000,
        fd_count: 2,
        limits: Limits::DEFAULT,
    }
}

#[test]
fn hello_ok_bytes_follow_the_offset_table() {
    let l = Limits::DEFAULT;
    let body = cat(&[
        &[1],
        &0x1111_2222_3333_4444u64.to_le_bytes(),
        &7u32.to_le_bytes(),
        &(1u64 << 30).to_le_bytes(),
        &(1u64 << 20).to_le_bytes(),
        &42u32.to_le_bytes(),
        &3000u32.to_le_bytes(),
        &[2],
        &(l.max_frame_bytes as u32).to_le_bytes(),
        &(l.max_key_bytes as u32).to_le_bytes(),
        &(l.max_namespace_bytes as u32).to_le_bytes(),
        &(l.max_value_bytes as u32).to_le_bytes(),
        &(l.max_tags as u16).to_le_bytes(),
        &(l.max_tag_bytes as u32).to_le_bytes(),
    ]);
    assert_eq!(body.len(), 60);
    assert_eq!(body[37], 2, "fd_count at body offset 37");
    assert_eq!(
        body[54..56],
        8u16.to_le_bytes(),
        "max_tags at body offset 54"
    );
    golden_reply(Reply::HelloOk(hello_ok()), &frame(0x81, ID, &body));
}

#[test]
fn ok_deleted_miss_bytes() {
    golden_reply(Reply::Ok, &frame(0x82, ID, &[]));
    golden_reply(Reply::Deleted { existed: false }, &frame(0x83, ID, &[0]));
    golden_reply(Reply::Deleted { existed: true }, &frame(0x83, ID, &[1]));
    golden_reply(Reply::FetchMiss, &frame(0x85, ID, &[]));
}

#[test]
fn fetch_hit_bytes() {
    let hit = FetchHit {
        value: b"v".to_vec(),
        created_ms: 5,
        expires_ms: Some(6),
        grace_until_ms: None,
        stale: true,
        version: 0x0102_0304_0506_0708,
    };
    let body = cat(&[
        &5u64.to_le_bytes(),
        &0x0102_0304_0506_0708u64.to_le_bytes(),
        &[1],
        &6u64.to_le_bytes(),
        &[0],
        &[1],
        &lv(b"v"),
    ]);
    assert_eq!(body.len(), 31 + 1);
    golden_reply(Reply::FetchHit(hit), &frame(0x84, ID, &body));
}

#[test]
fn stats_pong_error_bytes() {
    let stats = Reply::Stats {
        counters: vec![("hits".into(), 10), ("misses".into(), u64::MAX)],
    };
    let body = cat(&[
        &2u16.to_le_bytes(),
        &lv(b"hits"),
        &10u64.to_le_bytes(),
        &lv(b"misses"),
        &u64::MAX.to_le_bytes(),
    ]);
    golden_reply(stats, &frame(0x86, ID, &body));

    let pong = Reply::Pong {
        epoch: 3,
        heartbeat_ms: 1_700_000_000_000,
    };
    let body = cat(&[&3u64.to_le_bytes(), &1_700_000_000_000u64.to_le_bytes()]);
    golden_reply(pong, &frame(0x87, ID, &body));

    let error = Reply::error(ErrorCode::TooLarge, "value too large");
    let body = cat(&[&3u16.to_le_bytes(), &lv(b"value too large")]);
    golden_reply(error, &frame(0xFF, ID, &body));
}

#[test]
fn unknown_error_codes_survive_a_round_trip() {
    let body = cat(&[&999u16.to_le_bytes(), &lv(b"from the future")]);
    let (frame, _) = decode(&frame(0xFF, 0, &body)).unwrap().unwrap();
    assert_eq!(
        frame.message,
        Message::Reply(Reply::Error {
            code: ErrorCode::Unknown(999),
            message: "from the future".into()
        })
    );
    for code in 0..=u16::MAX {
        let c = ErrorCode::from_u16(code);
        assert_eq!(c.as_u16(), code);
        assert_eq!(matches!(c, ErrorCode::Unknown(_)), !(1..=8).contains(&code));
    }
    assert_eq!(ErrorCode::TooLarge.to_string(), "too large (3)");
}

#[test]
fn error_constructor_truncates_at_a_char_boundary() {
    let long = "é".repeat(MAX_ERROR_MESSAGE_BYTES); // 2 bytes per char
    let Reply::Error { message, .. } = Reply::error(ErrorCode::Internal, long) else {
        unreachable!()
    };
    assert_eq!(message.len(), MAX_ERROR_MESSAGE_BYTES);
    let long = format!("x{}", "é".repeat(MAX_ERROR_MESSAGE_BYTES));
    let Reply::Error { message, .. } = Reply::error(ErrorCode::Internal, long) else {
        unreachable!()
    };
    assert_eq!(message.len(), MAX_ERROR_MESSAGE_BYTES - 1);
}

#[test]
fn replies_answer_the_right_requests() {
    let hit = Reply::FetchHit(FetchHit {
        value: vec![],
        created_ms: 0,
        expires_ms: None,
        grace_until_ms: None,
        stale: false,
        version: 0,
    });
    let requests: Vec<Kind> = Kind::ALL.into_iter().filter(|k| k.is_request()).collect();
    let cases: [(Reply, &[Kind]); 17] = [
        (Reply::LeaseGranted { token: 1 }, &[Kind::Lease]),
        (
            Reply::VerifyReport(cachekit_proto::VerifyReport {
                next: 0,
                examined: 0,
                repaired: 0,
                counts: vec![],
                sample: vec![],
            }),
            &[Kind::Verify],
        ),
        (Reply::LeaseBusy, &[Kind::Lease]),
        (
            Reply::Stored {
                stored: true,
                version: 1,
            },
            &[Kind::SetIf, Kind::LeaseFill],
        ),
        (
            Reply::Counter {
                present: true,
                value: 1,
                version: 1,
            },
            &[Kind::Incr],
        ),
        (Reply::Found { found: true }, &[Kind::Touch]),
        (
            Reply::ScanPage {
                cursor: 0,
                items: vec![],
            },
            &[Kind::Scan],
        ),
        (
            Reply::DeletedMany {
                cursor: 0,
                deleted: 0,
            },
            &[Kind::DeleteMatching],
        ),
        (
            Reply::NamespaceList { namespaces: vec![] },
            &[Kind::Namespaces],
        ),
        (Reply::HelloOk(hello_ok()), &[Kind::Hello]),
        (
            Reply::Ok,
            &[Kind::Set, Kind::Invalidate, Kind::Clear, Kind::LeaseRelease],
        ),
        (Reply::Deleted { existed: true }, &[Kind::Delete]),
        (hit, &[Kind::Fetch, Kind::Take, Kind::Lease]),
        (Reply::FetchMiss, &[Kind::Fetch, Kind::Take]),
        (Reply::Stats { counters: vec![] }, &[Kind::Stats]),
        (
            Reply::Pong {
                epoch: 0,
                heartbeat_ms: 0,
            },
            &[Kind::Ping],
        ),
        (Reply::error(ErrorCode::Internal, ""), &requests),
    ];
    for (reply, answers) in cases {
        for kind in Kind::ALL.into_iter().filter(|k| k.is_request()) {
            assert_eq!(
                reply.answers(kind),
                answers.contains(&kind),
                "{reply:?} to {kind}"
            );
        }
    }
}

// ---------------------------------------------------------------- framing

#[test]
fn frames_back_to_back_are_consumed_one_at_a_time() {
    let mut buf = Vec::new();
    encode_request(&Request::Ping, 1, &mut buf).unwrap();
    encode_reply(&Reply::Ok, 2, &mut buf).unwrap();
    let (first, used) = decode(&buf).unwrap().unwrap();
    assert_eq!((first.request_id, used), (1, HEADER_LEN));
    let (second, used2) = decode(&buf[used..]).unwrap().unwrap();
    assert_eq!(second.message, Message::Reply(Reply::Ok));
    assert_eq!(used + used2, buf.len());
}

#[test]
fn encoding_appends_and_leaves_the_buffer_alone_on_error() {
    let mut out = b"prefix".to_vec();
    let frame = Frame {
        request_id: 9,
        message: Message::Request(Request::Ping),
    };
    encode_frame(&frame, &mut out).unwrap();
    assert_eq!(&out[..6], b"prefix");
    assert_eq!(decode(&out[6..]).unwrap().unwrap().0, frame);

    let before = out.clone();
    let hello = Request::Hello(Hello::new("n".repeat(MAX_CLIENT_NAME_BYTES + 1)));
    assert_eq!(
        encode_request(&hello, 1, &mut out),
        Err(EncodeError::FieldTooLarge {
            field: Field::ClientName,
            len: 256,
            limit: 255
        })
    );
    assert_eq!(out, before);
}

#[test]
fn decode_header_and_body_separately() {
    let mut buf = Vec::new();
    encode_request(&Request::Set(set(Some(1))), 77, &mut buf).unwrap();
    let header = decode_header(&buf, &Limits::DEFAULT).unwrap().unwrap();
    assert_eq!((header.kind, header.request_id), (Kind::Set, 77));
    assert_eq!(header.frame_len(), buf.len());
    let message = decode_body(&header, &buf[HEADER_LEN..], &Limits::DEFAULT).unwrap();
    assert_eq!(message, Message::Request(Request::Set(set(Some(1)))));
}

// ---------------------------------------------------------------- header errors

#[test]
fn header_errors_come_before_the_body() {
    let ping = frame(0x08, 1, &[]);
    let mut bad = ping.clone();
    bad[5] = b'!';
    assert!(matches!(decode(&bad), Err(ProtoError::BadMagic { .. })));
    let mut bad = ping.clone();
    bad[6] = 2;
    assert_eq!(
        decode(&bad),
        Err(ProtoError::UnsupportedVersion { found: 2 })
    );
    let mut bad = ping.clone();
    bad[7] = 0x42;
    assert_eq!(decode(&bad), Err(ProtoError::UnknownKind { kind: 0x42 }));

    // A header announcing 4 GiB: refused with only the 12 header bytes present.
    let mut huge = ping;
    huge[..4].copy_from_slice(&u32::MAX.to_le_bytes());
    let err = decode(&huge).unwrap_err();
    assert!(matches!(
        err,
        ProtoError::FrameTooLarge {
            frame_bytes: 4_294_967_307,
            ..
        }
    ));
    assert_eq!(err.code(), ErrorCode::TooLarge);
}

#[test]
fn frame_limit_applies_to_header_plus_body() {
    let bytes = frame(0x05, 1, &lv(b"abcd")); // 12 + 8 = 20 bytes
    let at = Limits {
        max_frame_bytes: 20,
        ..Limits::DEFAULT
    };
    assert!(decode_frame(&bytes, &at).unwrap().is_some());
    let under = Limits {
        max_frame_bytes: 19,
        ..Limits::DEFAULT
    };
    assert_eq!(
        decode_err(&bytes, &under),
        ProtoError::FrameTooLarge {
            frame_bytes: 20,
            max_frame_bytes: 19
        }
    );
    let clear = Request::Clear {
        namespace: "abcd".into(),
    };
    assert_eq!(clear.validate(&at), Ok(()));
    assert_eq!(clear.validate(&under), Err(decode_err(&bytes, &under)));
}

// ---------------------------------------------------------------- body errors

#[test]
fn truncated_bodies_name_the_field() {
    // PONG needs 16 bytes; give it 15.
    let err = decode_err(&frame(0x87, 1, &[0; 15]), &Limits::DEFAULT);
    assert_eq!(
        err,
        ProtoError::Truncated {
            kind: Kind::Pong,
            field: "heartbeat_ms",
            needed: 8,
            remaining: 7
        }
    );
    assert!(err
        .to_string()
        .contains("PONG body is truncated in field `heartbeat_ms`"));
    assert_eq!(err.code(), ErrorCode::BadFrame);

    // A key length that points past the end of the body.
    let body = cat(&[&lv(b"ns"), &100u32.to_le_bytes(), b"short"]);
    assert_eq!(
        decode_err(&frame(0x06, 1, &body), &Limits::DEFAULT),
        ProtoError::Truncated {
            kind: Kind::Fetch,
            field: "key",
            needed: 100,
            remaining: 5
        }
    );

    // DELETED with an empty body; HELLO_OK cut short.
    assert!(matches!(
        decode_err(&frame(0x83, 1, &[]), &Limits::DEFAULT),
        ProtoError::Truncated {
            field: "existed",
            ..
        }
    ));
    let mut ok = Vec::new();
    encode_reply(&Reply::HelloOk(hello_ok()), 1, &mut ok).unwrap();
    let body = &ok[HEADER_LEN..ok.len() - 1];
    assert!(matches!(
        decode_err(&frame(0x81, 1, body), &Limits::DEFAULT),
        ProtoError::Truncated {
            field: "max_tag_bytes",
            needed: 4,
            remaining: 3,
            ..
        }
    ));
}

#[test]
fn trailing_bytes_inside_a_body_are_rejected() {
    assert_eq!(
        decode_err(&frame(0x08, 1, &[0]), &Limits::DEFAULT),
        ProtoError::TrailingBytes {
            kind: Kind::Ping,
            extra: 1
        }
    );
    assert_eq!(
        decode_err(&frame(0x83, 1, &[1, 0, 0]), &Limits::DEFAULT),
        ProtoError::TrailingBytes {
            kind: Kind::Deleted,
            extra: 2
        }
    );
    let body = cat(&[&lv(b"ns"), b"x"]);
    let err = decode_err(&frame(0x05, 1, &body), &Limits::DEFAULT);
    assert_eq!(
        err.to_string(),
        "CLEAR body has 1 unexpected trailing bytes after its last field"
    );
}

fn small_limits() -> Limits {
    Limits {
        max_frame_bytes: 4096,
        max_key_bytes: 4,
        max_namespace_bytes: 3,
        max_value_bytes: 5,
        max_tags: 2,
        max_tag_bytes: 6,
    }
}

/// Decoding under `limits` fails with `expected`, and `validate` agrees.
fn rejects(message: Message, limits: &Limits, expected: ProtoError) {
    let mut bytes = Vec::new();
    encode_frame(
        &Frame {
            request_id: 1,
            message: message.clone(),
        },
        &mut bytes,
    )
    .unwrap();
    assert_eq!(decode_err(&bytes, limits), expected, "{message:?}");
    assert_eq!(message.validate(limits), Err(expected), "{message:?}");
}

#[test]
fn every_limited_field_is_checked() {
    let l = small_limits();
    let too_large = |field, len, limit| ProtoError::FieldTooLarge { field, len, limit };
    let base = Set {
        namespace: "ns".into(),
        key: b"key".to_vec(),
        value: b"val".to_vec(),
        ttl_ms: None,
        grace_ms: 0,
        tags: vec!["t".into()],
    };
    let ok = Message::Request(Request::Set(base.clone()));
    ok.validate(&l).unwrap();

    let with = |f: &dyn Fn(&mut Set)| {
        let mut s = base.clone();
        f(&mut s);
        Message::Request(Request::Set(s))
    };
    rejects(
        with(&|s| s.namespace = "nspc".into()),
        &l,
        too_large(Field::Namespace, 4, 3),
    );
    rejects(
        with(&|s| s.key = b"key!!".to_vec()),
        &l,
        too_large(Field::Key, 5, 4),
    );
    rejects(
        with(&|s| s.value = vec![0; 6]),
        &l,
        too_large(Field::Value, 6, 5),
    );
    rejects(
        with(&|s| s.tags = vec!["tag/long".into()]),
        &l,
        too_large(Field::Tag, 8, 6),
    );
    rejects(
        with(&|s| s.tags = vec!["a".into(), "b".into(), "c".into()]),
        &l,
        ProtoError::TooManyItems {
            field: Field::Tags,
            count: 3,
            limit: 2,
        },
    );
    rejects(
        Message::Request(Request::Invalidate {
            namespace: "ns".into(),
            tags: vec!["a".into(); 3],
            exact: false,
        }),
        &l,
        ProtoError::TooManyItems {
            field: Field::Tags,
            count: 3,
            limit: 2,
        },
    );
    rejects(
        Message::Request(Request::Delete {
            namespace: "ns".into(),
            key: vec![0; 5],
        }),
        &l,
        too_large(Field::Key, 5, 4),
    );
    rejects(
        Message::Reply(Reply::FetchHit(FetchHit {
            value: vec![0; 6],
            created_ms: 0,
            expires_ms: None,
            grace_until_ms: None,
            stale: false,
            version: 0,
        })),
        &l,
        too_large(Field::Value, 6, 5),
    );
}

#[test]
fn limit_errors_say_what_to_do() {
    let err = ProtoError::FieldTooLarge {
        field: Field::Value,
        len: 3 << 20,
        limit: 1 << 20,
    };
    assert_eq!(
        err.to_string(),
        "value is 3145728 bytes, over max_value_bytes = 1048576; shrink it, or raise the limit \
         in the daemon's configuration (clients learn it from HELLO_OK)"
    );
    let err = ProtoError::TooManyItems {
        field: Field::Tags,
        count: 9,
        limit: 8,
    };
    assert_eq!(
        err.to_string(),
        "9 tags, over max_tags = 8; group them under a common parent tag"
    );
}

/// A SET or INVALIDATE whose tag breaks the table's grammar is refused at decode with
/// INVALID_ARGUMENT and the grammar's own message (and `validate` refuses it the same way); a
/// tag over the table's length limit is TOO_LARGE even when the connection's limit is higher.
#[test]
fn tags_that_break_the_grammar_are_refused_at_decode() {
    let set = |tags: &[&str]| {
        Message::Request(Request::Set(Set {
            namespace: "ns".into(),
            key: b"k".to_vec(),
            value: b"v".to_vec(),
            ttl_ms: None,
            grace_ms: 0,
            tags: tags.iter().map(|t| t.to_string()).collect(),
        }))
    };
    let invalidate = |tags: &[&str]| {
        Message::Request(Request::Invalidate {
            namespace: "ns".into(),
            tags: tags.iter().map(|t| t.to_string()).collect(),
            exact: false,
        })
    };
    let l = Limits::DEFAULT;
    let deepest = "a/b/c/d/e/f/g/h";
    for ok in [
        set(&["posts/123/comments", deepest]),
        invalidate(&[deepest]),
    ] {
        ok.validate(&l).unwrap();
        let mut bytes = Vec::new();
        let frame = Frame {
            request_id: 1,
            message: ok,
        };
        encode_frame(&frame, &mut bytes).unwrap();
        assert_eq!(decode(&bytes), Ok(Some((frame, bytes.len()))));
    }
    let cases = [
        ("a//b", "tag \"a//b\" has an empty segment"),
        ("/a", "empty segment"),
        ("a/", "empty segment"),
        ("", "tag \"\" has an empty segment"),
        ("a/b/c/d/e/f/g/h/i", "has 9 segments, over the limit of 8"),
    ];
    for (tag, words) in cases {
        for message in [set(&["fine", tag]), invalidate(&["fine", tag])] {
            // The encoder does not check the grammar (a test or a fuzzer may send any tag).
            let mut bytes = Vec::new();
            encode_frame(
                &Frame {
                    request_id: 9,
                    message: message.clone(),
                },
                &mut bytes,
            )
            .unwrap();
            let err = decode_err(&bytes, &l);
            assert!(
                matches!(err, ProtoError::InvalidTag { .. }),
                "{tag:?}: {err:?}"
            );
            assert_eq!(err.code(), ErrorCode::InvalidArgument, "{tag:?}");
            assert!(err.to_string().contains(words), "{tag:?}: {err}");
            assert_eq!(message.validate(&l), Err(err), "{tag:?}");
        }
    }
    // Longer than the table's 1024 bytes: too large, whatever the connection allows.
    let wide = Limits {
        max_tag_bytes: 4096,
        ..l
    };
    let long = "t".repeat(1025);
    rejects(
        set(&[&long]),
        &wide,
        ProtoError::FieldTooLarge {
            field: Field::Tag,
            len: 1025,
            limit: 1024,
        },
    );
    assert_eq!(
        set(&[&long]).validate(&l).unwrap_err().to_string(),
        "tag is 1025 bytes, over max_tag_bytes = 1024; use a shorter tag path"
    );
}

#[test]
fn fixed_protocol_limits_are_checked_when_decoding() {
    let l = Limits::DEFAULT;
    // Build over-limit frames by hand: the encoder refuses to.
    let name = vec![b'n'; MAX_CLIENT_NAME_BYTES + 1];
    let hello = cat(&[&[1, 1], &0u32.to_le_bytes(), &lv(&name)]);
    assert_eq!(
        decode_err(&frame(0x01, 1, &hello), &l),
        ProtoError::FieldTooLarge {
            field: Field::ClientName,
            len: 256,
            limit: MAX_CLIENT_NAME_BYTES
        }
    );
    let stat = cat(&[
        &1u16.to_le_bytes(),
        &lv(&[b's'; MAX_STAT_NAME_BYTES + 1]),
        &[0; 8],
    ]);
    assert!(matches!(
        decode_err(&frame(0x86, 1, &stat), &l),
        ProtoError::FieldTooLarge {
            field: Field::StatName,
            ..
        }
    ));
    let many = ((MAX_STATS + 1) as u16).to_le_bytes();
    assert_eq!(
        decode_err(&frame(0x86, 1, &many), &l),
        ProtoError::TooManyItems {
            field: Field::Stats,
            count: MAX_STATS + 1,
            limit: MAX_STATS
        }
    );
    let message = cat(&[
        &1u16.to_le_bytes(),
        &lv(&[b'm'; MAX_ERROR_MESSAGE_BYTES + 1]),
    ]);
    let err = decode_err(&frame(0xFF, 1, &message), &l);
    assert!(matches!(
        err,
        ProtoError::FieldTooLarge {
            field: Field::ErrorMessage,
            ..
        }
    ));
    assert!(
        err.to_string().contains("this is a fixed protocol limit"),
        "{err}"
    );
}

#[test]
fn fixed_protocol_limits_are_checked_when_encoding() {
    let mut out = Vec::new();
    let stats = Reply::Stats {
        counters: vec![("c".into(), 0); MAX_STATS + 1],
    };
    assert_eq!(
        encode_reply(&stats, 1, &mut out),
        Err(EncodeError::TooManyItems {
            field: Field::Stats,
            count: MAX_STATS + 1,
            limit: MAX_STATS
        })
    );
    let stats = Reply::Stats {
        counters: vec![("s".repeat(MAX_STAT_NAME_BYTES + 1), 0)],
    };
    assert!(matches!(
        encode_reply(&stats, 1, &mut out),
        Err(EncodeError::FieldTooLarge {
            field: Field::StatName,
            ..
        })
    ));
    let error = Reply::Error {
        code: ErrorCode::Internal,
        message: "m".repeat(MAX_ERROR_MESSAGE_BYTES + 1),
    };
    assert!(matches!(
        encode_reply(&error, 1, &mut out),
        Err(EncodeError::FieldTooLarge {
            field: Field::ErrorMessage,
            ..
        })
    ));
    assert!(error.validate(&Limits::DEFAULT).is_err());
    assert!(out.is_empty());
}

#[test]
fn hello_ok_limits_must_fit_their_wire_fields() {
    let mut out = Vec::new();
    let mut ok = hello_ok();
    ok.limits.max_tags = 70_000;
    assert_eq!(
        encode_reply(&Reply::HelloOk(ok), 1, &mut out),
        Err(EncodeError::LimitOutOfRange {
            setting: "max_tags",
            value: 70_000,
            max: 65_535
        })
    );
    let mut ok = hello_ok();
    ok.limits.max_value_bytes = usize::MAX;
    assert!(matches!(
        encode_reply(&Reply::HelloOk(ok), 1, &mut out),
        Err(EncodeError::LimitOutOfRange {
            setting: "max_value_bytes",
            ..
        })
    ));
    assert!(out.is_empty());
}

#[test]
fn strings_must_be_utf8_but_keys_and_values_need_not() {
    let bad = [b'o', b'k', 0xC3, 0x28];
    let l = Limits::DEFAULT;
    let utf8 = |field| ProtoError::InvalidUtf8 {
        field,
        valid_up_to: 2,
    };
    assert_eq!(
        decode_err(&frame(0x05, 1, &lv(&bad)), &l),
        utf8(Field::Namespace)
    );
    let inv = cat(&[&lv(b"ns"), &1u16.to_le_bytes(), &lv(&bad), &[0]]);
    assert_eq!(decode_err(&frame(0x04, 1, &inv), &l), utf8(Field::Tag));
    let hello = cat(&[&[1, 1], &0u32.to_le_bytes(), &lv(&bad)]);
    assert_eq!(
        decode_err(&frame(0x01, 1, &hello), &l),
        utf8(Field::ClientName)
    );
    let stat = cat(&[&1u16.to_le_bytes(), &lv(&bad), &[0; 8]]);
    assert_eq!(
        decode_err(&frame(0x86, 1, &stat), &l),
        utf8(Field::StatName)
    );
    let error = cat(&[&1u16.to_le_bytes(), &lv(&bad)]);
    let err = decode_err(&frame(0xFF, 1, &error), &l);
    assert_eq!(err, utf8(Field::ErrorMessage));
    assert_eq!(err.code(), ErrorCode::BadFrame);

    // The same bytes are fine as a key and as a value.
    let fetch = cat(&[&lv(b"ns"), &lv(&bad)]);
    assert!(decode(&frame(0x06, 1, &fetch)).unwrap().is_some());
    let hit = cat(&[&[0; 16], &[0, 0, 0], &lv(&bad)]);
    assert!(decode(&frame(0x84, 1, &hit)).unwrap().is_some());
}

#[test]
fn flags_must_be_zero_or_one() {
    let l = Limits::DEFAULT;
    let flag = |kind, field, value| ProtoError::InvalidFlag { kind, field, value };
    assert_eq!(
        decode_err(&frame(0x83, 1, &[2]), &l),
        flag(Kind::Deleted, "existed", 2)
    );
    let inv = cat(&[&lv(b"ns"), &0u16.to_le_bytes(), &[0xFF]]);
    assert_eq!(
        decode_err(&frame(0x04, 1, &inv), &l),
        flag(Kind::Invalidate, "exact", 0xFF)
    );
    let set = cat(&[&lv(b"ns"), &lv(b"k"), &[7]]);
    assert_eq!(
        decode_err(&frame(0x02, 1, &set), &l),
        flag(Kind::Set, "ttl_ms", 7)
    );
    let hit = cat(&[&[0; 16], &[3]]);
    assert_eq!(
        decode_err(&frame(0x84, 1, &hit), &l),
        flag(Kind::FetchHit, "expires_ms", 3)
    );
    let hit = cat(&[&[0; 16], &[0, 0, 2]]);
    let err = decode_err(&frame(0x84, 1, &hit), &l);
    assert_eq!(err, flag(Kind::FetchHit, "stale", 2));
    assert_eq!(
        err.to_string(),
        "FETCH_HIT field `stale` must be 0 or 1, found 2"
    );
}

#[test]
fn a_huge_count_in_a_tiny_body_is_cheap() {
    // 1024 counters announced, none present: fails as truncated without reserving for 1024.
    let body = (MAX_STATS as u16).to_le_bytes();
    assert!(matches!(
        decode_err(&frame(0x86, 1, &body), &Limits::DEFAULT),
        ProtoError::Truncated {
            kind: Kind::StatsReply,
            ..
        }
    ));
}

#[test]
fn proto_errors_map_to_error_codes() {
    let cases = [
        (ProtoError::BadMagic { found: 0 }, ErrorCode::BadFrame),
        (
            ProtoError::UnsupportedVersion { found: 9 },
            ErrorCode::UnsupportedVersion,
        ),
        (ProtoError::UnknownKind { kind: 0 }, ErrorCode::BadFrame),
        (
            ProtoError::TooManyItems {
                field: Field::Tags,
                count: 9,
                limit: 8,
            },
            ErrorCode::TooLarge,
        ),
        (
            ProtoError::InvalidTag {
                message: "tag \"a//b\" has an empty segment".into(),
            },
            ErrorCode::InvalidArgument,
        ),
    ];
    for (err, code) in cases {
        assert_eq!(err.code(), code);
    }
}

/// An empty namespace is refused at decode (INVALID_ARGUMENT, the connection goes on), by
/// `validate`, and by `validate_namespace`, the one rule the client libraries apply too: every
/// request that carries a namespace.
#[test]
fn an_empty_namespace_is_refused_at_decode_in_every_request() {
    let l = Limits::DEFAULT;
    let requests = [
        Request::Set(Set {
            namespace: String::new(),
            key: b"k".to_vec(),
            value: b"v".to_vec(),
            ttl_ms: None,
            grace_ms: 0,
            tags: vec![],
        }),
        Request::Delete {
            namespace: String::new(),
            key: b"k".to_vec(),
        },
        Request::Fetch {
            namespace: String::new(),
            key: b"k".to_vec(),
        },
        Request::Invalidate {
            namespace: String::new(),
            tags: vec!["t".into()],
            exact: false,
        },
        Request::Clear {
            namespace: String::new(),
        },
    ];
    for req in requests {
        let kind = req.kind();
        let message = Message::Request(req);
        // The encoder does not check it (a test or a fuzzer may send anything).
        let mut bytes = Vec::new();
        encode_frame(
            &Frame {
                request_id: 3,
                message: message.clone(),
            },
            &mut bytes,
        )
        .unwrap();
        let err = decode_err(&bytes, &l);
        assert_eq!(err, ProtoError::EmptyNamespace, "{kind:?}");
        assert_eq!(err.code(), ErrorCode::InvalidArgument);
        assert!(err.to_string().contains("namespace is empty"), "{err}");
        assert_eq!(message.validate(&l), Err(err), "{kind:?}");
    }
    assert_eq!(
        cachekit_proto::validate_namespace("", &l),
        Err(ProtoError::EmptyNamespace)
    );
    assert_eq!(cachekit_proto::validate_namespace("a", &l), Ok(()));
}
