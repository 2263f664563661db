//! Feeds arbitrary bytes to the frame decoder, requests and replies alike, as a stream of
//! back-to-back frames. Checks that decoding never panics, that every decoded frame re-encodes to
//! exactly the bytes it consumed and passes `validate`, that tighter limits never accept what
//! the defaults refuse, and that the blocking reader agrees with the incremental decoder.

#![no_main]

use std::io::Cursor;

use cachekit_proto::{decode_frame, encode_frame, read_frame, Limits, RecvError, HEADER_LEN};
use libfuzzer_sys::fuzz_target;

/// Every field at most its default, most far below, so the fuzzer reaches each limit check.
const TIGHT: Limits = Limits {
    max_frame_bytes: 512,
    max_key_bytes: 16,
    max_namespace_bytes: 8,
    max_value_bytes: 64,
    max_tags: 2,
    max_tag_bytes: 8,
};

fuzz_target!(|data: &[u8]| {
    let mut rest = data;
    loop {
        let decoded = decode_frame(rest, &Limits::DEFAULT);
        let tight = decode_frame(rest, &TIGHT);

        // The blocking reader sees the same thing as the incremental decoder.
        let mut reader = Cursor::new(rest);
        match (read_frame(&mut reader, &Limits::DEFAULT), &decoded) {
            (Ok(frame), Ok(Some((expected, consumed)))) => {
                assert_eq!(&frame, expected);
                assert_eq!(reader.position(), *consumed as u64);
            }
            (Err(RecvError::Closed | RecvError::Io(_)), Ok(None)) => {}
            (Err(RecvError::Header(e)), Err(expected)) => assert_eq!(&e, expected),
            (Err(RecvError::Body { error, .. }), Err(expected)) => assert_eq!(&error, expected),
            (read, decoded) => panic!("read_frame {read:?} but decode_frame {decoded:?}"),
        }

        let Ok(Some((frame, consumed))) = decoded else {
            // Limits only ever shrink, so the tight decoder cannot accept more.
            assert!(
                !matches!(tight, Ok(Some(_))),
                "tight limits accepted {tight:?}"
            );
            return;
        };
        assert!(consumed >= HEADER_LEN && consumed <= rest.len());

        let mut again = Vec::new();
        encode_frame(&frame, &mut again).expect("a decoded frame must re-encode");
        assert_eq!(again, &rest[..consumed], "re-encoding changed the bytes");
        assert_eq!(frame.message.validate(&Limits::DEFAULT), Ok(()));
        assert_eq!(frame.message.body_len() as usize + HEADER_LEN, consumed);

        match tight {
            Ok(Some((tight_frame, tight_consumed))) => {
                assert_eq!((tight_frame, tight_consumed), (frame.clone(), consumed));
                assert_eq!(frame.message.validate(&TIGHT), Ok(()));
            }
            Ok(None) => unreachable!("the whole frame is there"),
            Err(e) => assert_eq!(
                frame.message.validate(&TIGHT).map_err(|v| v.code()),
                Err(e.code())
            ),
        }

        rest = &rest[consumed..];
    }
});
