//! Property tests: exact round trips, `validate` agreeing with the decoder, and a decoder that
//! never panics on random, truncated or corrupted input.

use std::io::Cursor;

use cachekit_proto::{
    decode_frame, encode_frame, read_frame, Condition, DeleteMany, ErrorCode, FetchHit, Frame,
    Hello, HelloOk, Incr, ItemResult, Kind, Limits, Message, NamespaceInfo, ProtoError, RecvError,
    Reply, Request, ScanItem, ScanRequest, Selection, Set, SetIf, SetMany, HEADER_LEN,
};
use proptest::prelude::*;

fn text(max: usize) -> impl Strategy<Value = String> {
    prop::collection::vec(any::<char>(), 0..=max).prop_map(|c| c.into_iter().collect())
}

fn bytes(max: usize) -> impl Strategy<Value = Vec<u8>> {
    prop::collection::vec(any::<u8>(), 0..=max)
}

/// A tag the grammar (`cachekit_shm::validate_tag`) accepts: 1 to 4 non-empty segments of any
/// characters but `/`, at most 51 bytes.
fn valid_tag() -> impl Strategy<Value = String> {
    let segment = prop::collection::vec(
        any::<char>().prop_filter("a separator", |c| *c != '/'),
        1..=3,
    )
    .prop_map(|c| c.into_iter().collect::<String>());
    prop::collection::vec(segment, 1..=4).prop_map(|segments| segments.join("/"))
}

/// Mostly valid tags, and text the grammar often refuses: empty, `a//b`, `/a`, `a/`, 9 deep.
fn any_tag() -> BoxedStrategy<String> {
    let slashes = prop::collection::vec(prop::sample::select(vec!['a', '/']), 0..=18)
        .prop_map(|c| c.into_iter().collect::<String>());
    prop_oneof![3 => valid_tag(), 1 => text(12), 1 => slashes].boxed()
}

fn tags(tag: BoxedStrategy<String>) -> impl Strategy<Value = Vec<String>> {
    prop::collection::vec(tag, 0..=10)
}

fn request(
    tag: BoxedStrategy<String>,
    ns: BoxedStrategy<String>,
) -> impl Strategy<Value = Request> {
    prop_oneof![
        (any::<u8>(), any::<u8>(), any::<u32>(), text(40)).prop_map(|(min, max, pid, name)| {
            Request::Hello(Hello {
                min_version: min,
                max_version: max,
                client_pid: pid,
                client_name: name,
            })
        }),
        (
            ns.clone(),
            bytes(12),
            bytes(300),
            any::<Option<u64>>(),
            any::<u64>(),
            tags(tag.clone())
        )
            .prop_map(|(namespace, key, value, ttl_ms, grace_ms, tags)| {
                Request::Set(Set {
                    namespace,
                    key,
                    value,
                    ttl_ms,
                    grace_ms,
                    tags,
                })
            }),
        (ns.clone(), bytes(12)).prop_map(|(namespace, key)| Request::Delete { namespace, key }),
        (ns.clone(), tags(tag.clone()), any::<bool>()).prop_map(|(namespace, tags, exact)| {
            Request::Invalidate {
                namespace,
                tags,
                exact,
            }
        }),
        ns.clone()
            .prop_map(|namespace| Request::Clear { namespace }),
        (ns.clone(), bytes(12)).prop_map(|(namespace, key)| Request::Fetch { namespace, key }),
        Just(Request::Stats),
        Just(Request::Ping),
        (
            ns.clone(),
            bytes(12),
            bytes(300),
            any::<Option<u64>>(),
            (any::<u8>(), any::<u64>())
        )
            .prop_map(|(namespace, key, value, ttl_ms, (c, v))| {
                let condition = match c % 3 {
                    0 => Condition::Absent,
                    1 => Condition::Present,
                    _ => Condition::Version(v),
                };
                Request::SetIf(SetIf {
                    set: Set {
                        namespace,
                        key,
                        value,
                        ttl_ms,
                        grace_ms: 0,
                        tags: Vec::new(),
                    },
                    condition,
                })
            }),
        (
            ns.clone(),
            bytes(12),
            any::<i64>(),
            any::<Option<i64>>(),
            any::<Option<u64>>()
        )
            .prop_map(|(namespace, key, delta, initial, ttl_ms)| {
                Request::Incr(Incr {
                    namespace,
                    key,
                    delta,
                    initial,
                    ttl_ms,
                })
            }),
        (ns.clone(), bytes(12)).prop_map(|(namespace, key)| Request::Take { namespace, key }),
        (ns.clone(), bytes(12), any::<Option<u64>>()).prop_map(|(namespace, key, ttl_ms)| {
            Request::Touch {
                namespace,
                key,
                ttl_ms,
            }
        }),
        (
            ns.clone(),
            any::<u64>(),
            bytes(20),
            prop_oneof![Just(String::new()), valid_tag()],
            any::<bool>(),
            0u32..=1000,
            any::<bool>()
        )
            .prop_map(|(namespace, cursor, pattern, tag, exact, count, delete)| {
                let s = ScanRequest {
                    namespace,
                    cursor,
                    selection: Selection {
                        pattern,
                        tag,
                        exact,
                    },
                    count,
                };
                match delete {
                    true => Request::DeleteMatching(s),
                    false => Request::Scan(s),
                }
            }),
        Just(Request::Namespaces),
        (
            ns.clone(),
            any::<Option<u64>>(),
            any::<u64>(),
            tags(tag.clone()),
            prop::collection::vec((bytes(12), bytes(60)), 0..12)
        )
            .prop_map(|(namespace, ttl_ms, grace_ms, tags, items)| {
                Request::SetMany(SetMany {
                    namespace,
                    ttl_ms,
                    grace_ms,
                    tags,
                    items,
                })
            }),
        (ns.clone(), prop::collection::vec(bytes(12), 0..12))
            .prop_map(|(namespace, keys)| Request::DeleteMany(DeleteMany { namespace, keys })),
    ]
}

fn wire_limits() -> impl Strategy<Value = Limits> {
    (
        any::<u32>(),
        any::<u32>(),
        any::<u32>(),
        any::<u32>(),
        any::<u16>(),
        any::<u32>(),
    )
        .prop_map(|(frame, key, ns, value, tags, tag)| Limits {
            max_frame_bytes: frame as usize,
            max_key_bytes: key as usize,
            max_namespace_bytes: ns as usize,
            max_value_bytes: value as usize,
            max_tags: tags.into(),
            max_tag_bytes: tag as usize,
        })
}

fn reply() -> impl Strategy<Value = Reply> {
    prop_oneof![
        (
            (any::<u8>(), any::<u64>(), any::<u32>(), any::<u64>()),
            (any::<u64>(), any::<u32>(), any::<u32>(), any::<u8>()),
            (wire_limits(), any::<u8>())
        )
            .prop_map(
                |((version, epoch, layout, seg), (area, slot, hb, fds), (limits, flags))| {
                    Reply::HelloOk(HelloOk {
                        version,
                        daemon_epoch: epoch,
                        layout_version: layout,
                        segment_size: seg,
                        client_area_size: area,
                        client_slot: slot,
                        heartbeat_timeout_ms: hb,
                        fd_count: fds,
                        limits,
                        flags,
                    })
                }
            ),
        Just(Reply::Ok),
        any::<bool>().prop_map(|existed| Reply::Deleted { existed }),
        (
            bytes(300),
            any::<u64>(),
            any::<Option<u64>>(),
            any::<Option<u64>>(),
            (any::<bool>(), any::<u64>())
        )
            .prop_map(
                |(value, created_ms, expires_ms, grace_until_ms, (stale, version))| {
                    Reply::FetchHit(FetchHit {
                        value,
                        created_ms,
                        expires_ms,
                        grace_until_ms,
                        stale,
                        version,
                    })
                }
            ),
        (any::<bool>(), any::<u64>())
            .prop_map(|(stored, version)| Reply::Stored { stored, version }),
        (any::<bool>(), any::<i64>(), any::<u64>()).prop_map(|(present, value, version)| {
            Reply::Counter {
                present,
                value,
                version,
            }
        }),
        any::<bool>().prop_map(|found| Reply::Found { found }),
        (
            any::<u64>(),
            prop::collection::vec(
                (
                    bytes(12),
                    any::<u32>(),
                    any::<u64>(),
                    any::<Option<u64>>(),
                    any::<Option<u64>>(),
                    any::<u64>()
                )
                    .prop_map(
                        |(key, value_len, created_ms, expires_ms, grace_until_ms, version)| {
                            ScanItem {
                                key,
                                value_len,
                                created_ms,
                                expires_ms,
                                grace_until_ms,
                                version,
                            }
                        }
                    ),
                0..20
            )
        )
            .prop_map(|(cursor, items)| Reply::ScanPage { cursor, items }),
        (any::<u64>(), any::<u64>())
            .prop_map(|(cursor, deleted)| Reply::DeletedMany { cursor, deleted }),
        prop::collection::vec((text(20), any::<u64>(), any::<u64>()), 0..20).prop_map(|l| {
            Reply::NamespaceList {
                namespaces: l
                    .into_iter()
                    .map(|(namespace, entries, bytes)| NamespaceInfo {
                        namespace,
                        entries,
                        bytes,
                    })
                    .collect(),
            }
        }),
        Just(Reply::FetchMiss),
        prop::collection::vec((text(20), any::<u64>()), 0..20)
            .prop_map(|counters| Reply::Stats { counters }),
        (any::<u64>(), any::<u64>()).prop_map(|(epoch, heartbeat_ms)| Reply::Pong {
            epoch,
            heartbeat_ms
        }),
        (any::<u16>(), text(60))
            .prop_map(|(code, message)| Reply::error(ErrorCode::from_u16(code), message)),
        prop::collection::vec((0u16..12, any::<bool>(), text(30)), 0..20).prop_map(|l| {
            Reply::BatchResults {
                results: l
                    .into_iter()
                    .map(|(code, existed, message)| match code {
                        0 => ItemResult::done(existed),
                        code => ItemResult::failed(ErrorCode::from_u16(code), message),
                    })
                    .collect(),
            }
        }),
    ]
}

fn message(
    tag: BoxedStrategy<String>,
    ns: BoxedStrategy<String>,
) -> impl Strategy<Value = Message> {
    prop_oneof![
        request(tag, ns).prop_map(Message::Request),
        reply().prop_map(Message::Reply),
    ]
}

fn frame_with(
    tag: BoxedStrategy<String>,
    ns: BoxedStrategy<String>,
) -> impl Strategy<Value = Frame> {
    (any::<u32>(), message(tag, ns)).prop_map(|(request_id, message)| Frame {
        request_id,
        message,
    })
}

/// A frame that decodes (under wide enough limits): its tags obey the grammar and its
/// namespace is not empty.
fn frame() -> impl Strategy<Value = Frame> {
    let ns = prop::collection::vec(any::<char>(), 1..=10).prop_map(|c| c.into_iter().collect());
    frame_with(valid_tag().boxed(), ns.boxed())
}

/// A frame whose tags may break the grammar and whose namespace may be empty: it encodes, and
/// the decoder may refuse it.
fn any_frame() -> impl Strategy<Value = Frame> {
    frame_with(any_tag(), text(10).boxed())
}

/// Limits small enough that the generated messages cross them often.
fn small_limits() -> impl Strategy<Value = Limits> {
    (
        0usize..400,
        0usize..14,
        0usize..12,
        0usize..300,
        0usize..11,
        0usize..14,
    )
        .prop_map(|(frame, key, ns, value, tags, tag)| Limits {
            max_frame_bytes: frame,
            max_key_bytes: key,
            max_namespace_bytes: ns,
            max_value_bytes: value,
            max_tags: tags,
            max_tag_bytes: tag,
        })
}

fn encode(frame: &Frame) -> Vec<u8> {
    let mut out = Vec::new();
    encode_frame(frame, &mut out).expect("generated messages are encodable");
    out
}

/// The decoder's contract on arbitrary input: no panic; a decoded frame consumed a prefix of the
/// input, re-encodes to exactly those bytes, and passes `validate`; `read_frame` agrees.
fn check_arbitrary_input(input: &[u8], limits: &Limits) -> Result<(), TestCaseError> {
    let decoded = decode_frame(input, limits);
    if let Ok(Some((frame, consumed))) = &decoded {
        prop_assert!(*consumed >= HEADER_LEN && *consumed <= input.len());
        prop_assert_eq!(encode(frame), &input[..*consumed]);
        prop_assert_eq!(frame.message.validate(limits), Ok(()));
    }
    let mut reader = Cursor::new(input);
    match (read_frame(&mut reader, limits), decoded) {
        (Ok(read), Ok(Some((frame, consumed)))) => {
            prop_assert_eq!(read, frame);
            prop_assert_eq!(reader.position(), consumed as u64);
        }
        (Err(RecvError::Closed | RecvError::Io(_)), Ok(None)) => {}
        (Err(RecvError::Header(e)), Err(d)) => prop_assert_eq!(e, d),
        (Err(RecvError::Body { error, .. }), Err(d)) => prop_assert_eq!(error, d),
        (read, decoded) => {
            prop_assert!(false, "read_frame {:?} vs decode_frame {:?}", read, decoded)
        }
    }
    Ok(())
}

proptest! {
    #[test]
    fn frames_round_trip_exactly(frame in frame()) {
        let bytes = encode(&frame);
        prop_assert_eq!(bytes.len() as u64, HEADER_LEN as u64 + frame.message.body_len());
        let decoded = decode_frame(&bytes, &Limits { max_frame_bytes: usize::MAX, ..wide() });
        prop_assert_eq!(decoded, Ok(Some((frame.clone(), bytes.len()))));
        // And through the blocking reader.
        let read = read_frame(&mut Cursor::new(&bytes), &wide()).unwrap();
        prop_assert_eq!(read, frame);
    }

    #[test]
    fn requests_and_replies_keep_their_kind(frame in any_frame()) {
        let kind = frame.message.kind();
        let bytes = encode(&frame);
        prop_assert_eq!(bytes[7], kind.as_u8());
        prop_assert_eq!(Kind::from_u8(bytes[7]), Some(kind));
        prop_assert_eq!(kind.is_request(), matches!(frame.message, Message::Request(_)));
    }

    #[test]
    fn validate_agrees_with_the_decoder(frame in any_frame(), limits in small_limits()) {
        let bytes = encode(&frame);
        let decoded = decode_frame(&bytes, &limits);
        let validated = frame.message.validate(&limits);
        prop_assert_eq!(validated.is_ok(), matches!(decoded, Ok(Some(_))));
        // When the frame fits, both report the same first problem.
        if bytes.len() <= limits.max_frame_bytes {
            prop_assert_eq!(decoded.map(|_| ()), validated);
        } else {
            let too_large = matches!(decoded, Err(ProtoError::FrameTooLarge { .. }));
            prop_assert!(too_large);
        }
    }

    #[test]
    fn valid_messages_fit_largest_frame(frame in any_frame(), limits in small_limits()) {
        let unbounded = Limits { max_frame_bytes: usize::MAX, ..limits };
        if frame.message.validate(&unbounded).is_ok() {
            prop_assert!(encode(&frame).len() as u64 <= limits.largest_frame());
        }
    }

    #[test]
    fn every_truncation_needs_more(frame in any_frame()) {
        let bytes = encode(&frame);
        for cut in 0..bytes.len() {
            prop_assert_eq!(decode_frame(&bytes[..cut], &wide()), Ok(None));
            check_arbitrary_input(&bytes[..cut], &wide())?;
        }
    }

    #[test]
    fn a_tag_decodes_exactly_when_the_grammar_accepts_it(tag in any_tag(), exact in any::<bool>()) {
        let request = Request::Invalidate { namespace: "ns".into(), tags: vec![tag.clone()], exact };
        let bytes = encode(&Frame { request_id: 1, message: Message::Request(request) });
        let decoded = decode_frame(&bytes, &wide());
        if cachekit_shm::validate_tag(&tag).is_ok() {
            prop_assert!(matches!(decoded, Ok(Some(_))), "{:?}: {:?}", tag, decoded);
        } else {
            let refused = matches!(&decoded, Err(e @ ProtoError::InvalidTag { .. }) if e.code() == ErrorCode::InvalidArgument);
            prop_assert!(refused, "{:?}: {:?}", tag, decoded);
        }
    }

    #[test]
    fn random_bytes_never_panic(input in bytes(200), limits in small_limits()) {
        check_arbitrary_input(&input, &limits)?;
        check_arbitrary_input(&input, &Limits::DEFAULT)?;
    }

    #[test]
    fn random_bodies_behind_valid_headers_never_panic(
        kind in prop::sample::select(Kind::ALL.to_vec()),
        id in any::<u32>(),
        body in bytes(120),
        limits in small_limits(),
    ) {
        let mut input = Vec::new();
        input.extend_from_slice(&(body.len() as u32).to_le_bytes());
        input.extend_from_slice(b"CK");
        input.extend_from_slice(&[1, kind.as_u8()]);
        input.extend_from_slice(&id.to_le_bytes());
        input.extend_from_slice(&body);
        check_arbitrary_input(&input, &limits)?;
        check_arbitrary_input(&input, &wide())?;
    }

    #[test]
    fn corrupted_frames_never_panic(
        frame in any_frame(),
        flips in prop::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..4),
        limits in small_limits(),
    ) {
        let mut bytes = encode(&frame);
        for (at, xor) in flips {
            let i = at.index(bytes.len());
            bytes[i] ^= xor;
        }
        check_arbitrary_input(&bytes, &limits)?;
        check_arbitrary_input(&bytes, &wide())?;
    }
}

/// Limits wide enough for every generated message.
fn wide() -> Limits {
    Limits {
        max_frame_bytes: 1 << 20,
        max_key_bytes: 64,
        max_namespace_bytes: 64,
        max_value_bytes: 1024,
        max_tags: 16,
        max_tag_bytes: 64,
    }
}
