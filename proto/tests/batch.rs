//! SET_MANY, DELETE_MANY and BATCH_RESULTS: golden bytes, and truncated or lying frames that
//! must be refused with an error naming the field (never a panic, never a large allocation).

use cachekit_proto::{
    decode_frame, encode_reply, encode_request, DeleteMany, ErrorCode, Field, Frame, ItemResult,
    Kind, Limits, Message, ProtoError, Reply, Request, SetMany, HEADER_LEN, MAX_BATCH_ITEMS,
    MAX_BATCH_MESSAGE_BYTES,
};

const ID: u32 = 7;

fn frame(kind: u8, body: &[u8]) -> Vec<u8> {
    let mut f = (body.len() as u32).to_le_bytes().to_vec();
    f.extend_from_slice(b"CK");
    f.push(1);
    f.push(kind);
    f.extend_from_slice(&ID.to_le_bytes());
    f.extend_from_slice(body);
    f
}

fn lv(bytes: &[u8]) -> Vec<u8> {
    let mut v = (bytes.len() as u32).to_le_bytes().to_vec();
    v.extend_from_slice(bytes);
    v
}

fn decode_err(bytes: &[u8]) -> ProtoError {
    decode_frame(bytes, &Limits::DEFAULT).expect_err("must not decode")
}

fn round_trip(message: Message, bytes: &[u8]) {
    let mut out = Vec::new();
    match &message {
        Message::Request(r) => {
            r.validate(&Limits::DEFAULT).unwrap();
            encode_request(r, ID, &mut out).unwrap();
        }
        Message::Reply(r) => {
            r.validate(&Limits::DEFAULT).unwrap();
            encode_reply(r, ID, &mut out).unwrap();
        }
    }
    assert_eq!(out, bytes);
    assert_eq!(out.len() as u64, HEADER_LEN as u64 + message.body_len());
    let frame = Frame {
        request_id: ID,
        message,
    };
    assert_eq!(
        decode_frame(bytes, &Limits::DEFAULT),
        Ok(Some((frame, bytes.len())))
    );
    for cut in 0..bytes.len() {
        assert_eq!(decode_frame(&bytes[..cut], &Limits::DEFAULT), Ok(None));
    }
}

fn set_many() -> SetMany {
    SetMany {
        namespace: "app".into(),
        ttl_ms: Some(0x0A0B),
        grace_ms: 3,
        tags: vec!["t/1".into()],
        items: vec![(b"a".to_vec(), vec![1, 2]), (b"bc".to_vec(), Vec::new())],
    }
}

/// The SET_MANY body of [`set_many`], by hand from the table in the crate documentation.
fn set_many_body() -> Vec<u8> {
    [
        lv(b"app"),
        vec![1],
        0x0A0Bu64.to_le_bytes().to_vec(),
        3u64.to_le_bytes().to_vec(),
        1u16.to_le_bytes().to_vec(),
        lv(b"t/1"),
        2u16.to_le_bytes().to_vec(),
        lv(b"a"),
        lv(&[1, 2]),
        lv(b"bc"),
        lv(b""),
    ]
    .concat()
}

#[test]
fn set_many_bytes() {
    round_trip(
        Message::Request(Request::SetMany(set_many())),
        &frame(0x14, &set_many_body()),
    );
    let r = Request::SetMany(set_many());
    assert_eq!(r.kind(), Kind::SetMany);
    assert!(r.is_write());
}

#[test]
fn delete_many_bytes() {
    let body = [lv(b"app"), 2u16.to_le_bytes().to_vec(), lv(b"a"), lv(b"")].concat();
    let r = Request::DeleteMany(DeleteMany {
        namespace: "app".into(),
        keys: vec![b"a".to_vec(), Vec::new()],
    });
    assert!(r.is_write());
    round_trip(Message::Request(r), &frame(0x15, &body));
}

#[test]
fn batch_results_bytes() {
    let body = [
        2u16.to_le_bytes().to_vec(),
        vec![0, 0, 1],
        lv(b""),
        3u16.to_le_bytes().to_vec(),
        vec![0],
        lv(b"big"),
    ]
    .concat();
    let reply = Reply::BatchResults {
        results: vec![
            ItemResult::done(true),
            ItemResult::failed(ErrorCode::TooLarge, "big"),
        ],
    };
    assert!(reply.answers(Kind::SetMany) && reply.answers(Kind::DeleteMany));
    assert!(!reply.answers(Kind::Set) && !Reply::Ok.answers(Kind::SetMany));
    round_trip(Message::Reply(reply), &frame(0x91, &body));
}

#[test]
fn item_messages_are_cut_to_their_limit() {
    let long = "é".repeat(MAX_BATCH_MESSAGE_BYTES);
    let r = ItemResult::failed(ErrorCode::Unavailable, long);
    assert!(r.message.len() <= MAX_BATCH_MESSAGE_BYTES);
    assert!(r.message.len() >= MAX_BATCH_MESSAGE_BYTES - 1);
}

#[test]
fn a_truncated_set_many_names_the_field() {
    let body = set_many_body();
    // Cut inside the last value's length prefix: the frame header says so, the body ends early.
    let cut = &body[..body.len() - 2];
    assert_eq!(
        decode_err(&frame(0x14, cut)),
        ProtoError::Truncated {
            kind: Kind::SetMany,
            field: "value",
            needed: 4,
            remaining: 2
        }
    );
    // No items count at all.
    let head = &body[..body.len() - 2 - (4 + 1 + 4 + 2 + 4 + 2 + 4)];
    assert!(matches!(
        decode_err(&frame(0x14, head)),
        ProtoError::Truncated {
            kind: Kind::SetMany,
            field: "batch items",
            ..
        }
    ));
}

#[test]
fn a_lying_item_count_is_refused() {
    // Announces 5 items, carries 2: truncated at the third key, not a panic.
    let mut body = set_many_body();
    let at = body.len() - (4 + 1 + 4 + 2 + 4 + 2 + 4) - 2;
    body[at..at + 2].copy_from_slice(&5u16.to_le_bytes());
    assert!(matches!(
        decode_err(&frame(0x14, &body)),
        ProtoError::Truncated {
            kind: Kind::SetMany,
            field: "key",
            ..
        }
    ));
    // Announces 1 item, carries 2: the rest is trailing bytes.
    body[at..at + 2].copy_from_slice(&1u16.to_le_bytes());
    assert!(matches!(
        decode_err(&frame(0x14, &body)),
        ProtoError::TrailingBytes {
            kind: Kind::SetMany,
            ..
        }
    ));
    // A value length pointing far past the end of the body.
    let body = [
        lv(b"app"),
        vec![0],
        0u64.to_le_bytes().to_vec(),
        0u16.to_le_bytes().to_vec(),
        1u16.to_le_bytes().to_vec(),
        lv(b"k"),
        1_000_000u32.to_le_bytes().to_vec(),
        b"short".to_vec(),
    ]
    .concat();
    assert_eq!(
        decode_err(&frame(0x14, &body)),
        ProtoError::Truncated {
            kind: Kind::SetMany,
            field: "value",
            needed: 1_000_000,
            remaining: 5
        }
    );
}

#[test]
fn more_items_than_the_protocol_allows_are_refused() {
    let over = (MAX_BATCH_ITEMS + 1) as u16;
    let body = [lv(b"app"), over.to_le_bytes().to_vec()].concat();
    let err = decode_err(&frame(0x15, &body));
    assert_eq!(
        err,
        ProtoError::TooManyItems {
            field: Field::BatchItems,
            count: MAX_BATCH_ITEMS + 1,
            limit: MAX_BATCH_ITEMS
        }
    );
    assert_eq!(err.code(), ErrorCode::TooLarge);
    assert!(err.to_string().contains("MAX_BATCH_ITEMS"), "{err}");
    // The sender learns it before sending.
    let r = Request::DeleteMany(DeleteMany {
        namespace: "app".into(),
        keys: vec![Vec::new(); MAX_BATCH_ITEMS + 1],
    });
    assert!(matches!(
        r.validate(&Limits::DEFAULT),
        Err(ProtoError::TooManyItems { .. })
    ));
    // And the largest reply the daemon can send fits the frame limit.
    let results = vec![ItemResult::failed(ErrorCode::Internal, "x".repeat(400)); MAX_BATCH_ITEMS];
    let reply = Reply::BatchResults { results };
    reply.validate(&Limits::DEFAULT).unwrap();
    assert!(HEADER_LEN as u64 + reply.body_len() <= Limits::DEFAULT.largest_frame());
}

#[test]
fn one_item_over_a_limit_refuses_the_whole_frame() {
    let limits = Limits {
        max_value_bytes: 1,
        ..Limits::DEFAULT
    };
    let r = Request::SetMany(set_many());
    assert!(matches!(
        r.validate(&limits),
        Err(ProtoError::FieldTooLarge {
            field: Field::Value,
            len: 2,
            limit: 1
        })
    ));
    let mut wire = Vec::new();
    encode_request(&r, ID, &mut wire).unwrap();
    assert!(matches!(
        decode_frame(&wire, &limits),
        Err(ProtoError::FieldTooLarge {
            field: Field::Value,
            ..
        })
    ));
}

#[test]
fn a_huge_count_in_a_tiny_body_is_cheap() {
    // 1000 keys announced in a 9-byte body: refused without reserving room for 1000 keys.
    let body = [lv(b"a"), 1000u16.to_le_bytes().to_vec(), vec![0; 3]].concat();
    assert!(matches!(
        decode_err(&frame(0x15, &body)),
        ProtoError::Truncated { field: "key", .. }
    ));
    let reply = [1000u16.to_le_bytes().to_vec(), vec![0, 0]].concat();
    assert!(matches!(
        decode_err(&frame(0x91, &reply)),
        ProtoError::Truncated {
            kind: Kind::BatchResults,
            ..
        }
    ));
}

#[test]
fn results_flags_must_be_zero_or_one() {
    let body = [1u16.to_le_bytes().to_vec(), vec![0, 0, 2], lv(b"")].concat();
    assert!(matches!(
        decode_err(&frame(0x91, &body)),
        ProtoError::InvalidFlag {
            field: "existed",
            value: 2,
            ..
        }
    ));
}
