//! Whole frames: header plus body. The encoder and the incremental decoder, both free of I/O.

use crate::error::{EncodeError, ProtoError};
use crate::header::{Header, Kind, HEADER_LEN, PROTOCOL_VERSION};
use crate::limits::Limits;
use crate::reply::Reply;
use crate::request::Request;
use crate::wire::Cursor;

/// The message of a frame: a request (kinds `0x01..=0x7F`) or a reply (kinds `0x80..=0xFF`).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Message {
    /// Sent by a client.
    Request(Request),
    /// Sent by the daemon.
    Reply(Reply),
}

impl Message {
    /// The message kind.
    pub fn kind(&self) -> Kind {
        match self {
            Message::Request(r) => r.kind(),
            Message::Reply(r) => r.kind(),
        }
    }

    /// Checks the message against `limits` exactly as the decoder will.
    pub fn validate(&self, limits: &Limits) -> Result<(), ProtoError> {
        match self {
            Message::Request(r) => r.validate(limits),
            Message::Reply(r) => r.validate(limits),
        }
    }

    /// Length of the encoded body in bytes.
    pub fn body_len(&self) -> u64 {
        match self {
            Message::Request(r) => r.body_len(),
            Message::Reply(r) => r.body_len(),
        }
    }
}

/// One decoded frame.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Frame {
    /// The request id from the header: chosen by the client, echoed in the reply.
    pub request_id: u32,
    /// The message.
    pub message: Message,
}

/// Appends a request frame to `out`. On error `out` is left as it was.
///
/// Only the wire format's own bounds are checked; call [`Request::validate`] first to check the
/// connection's [`Limits`].
pub fn encode_request(
    request: &Request,
    request_id: u32,
    out: &mut Vec<u8>,
) -> Result<(), EncodeError> {
    encode_with(request.kind(), request_id, request.body_len(), out, |out| {
        request.encode_body(out)
    })
}

/// Appends a reply frame to `out`. On error `out` is left as it was.
///
/// Only the wire format's own bounds are checked; call [`Reply::validate`] first to check the
/// connection's [`Limits`].
pub fn encode_reply(reply: &Reply, request_id: u32, out: &mut Vec<u8>) -> Result<(), EncodeError> {
    encode_with(reply.kind(), request_id, reply.body_len(), out, |out| {
        reply.encode_body(out)
    })
}

/// Appends a frame to `out`. On error `out` is left as it was.
pub fn encode_frame(frame: &Frame, out: &mut Vec<u8>) -> Result<(), EncodeError> {
    match &frame.message {
        Message::Request(r) => encode_request(r, frame.request_id, out),
        Message::Reply(r) => encode_reply(r, frame.request_id, out),
    }
}

fn encode_with(
    kind: Kind,
    request_id: u32,
    body_len: u64,
    out: &mut Vec<u8>,
    body: impl FnOnce(&mut Vec<u8>) -> Result<(), EncodeError>,
) -> Result<(), EncodeError> {
    let start = out.len();
    // Reserve up front so a 1 MiB value is copied once; an impossible size is caught below.
    if let Ok(extra) = usize::try_from(body_len) {
        out.reserve(extra.saturating_add(HEADER_LEN));
    }
    let mut header = Header {
        body_len: 0,
        version: PROTOCOL_VERSION,
        kind,
        request_id,
    };
    out.extend_from_slice(&header.to_bytes());
    let result = body(out).and_then(|()| {
        let len = out.len() - start - HEADER_LEN;
        u32::try_from(len).map_err(|_| EncodeError::BodyTooLarge { body_len: len })
    });
    match result {
        Ok(len) => {
            header.body_len = len;
            out[start..start + HEADER_LEN].copy_from_slice(&header.to_bytes());
            Ok(())
        }
        Err(e) => {
            out.truncate(start);
            Err(e)
        }
    }
}

/// Decodes one frame from the start of `buf`.
///
/// - `Ok(None)`: `buf` holds a valid prefix of a frame; read more bytes and call again.
/// - `Ok(Some((frame, consumed)))`: one frame, taking the first `consumed` bytes of `buf`.
/// - `Err(_)`: `buf` does not start with a valid frame. Header errors (bad magic, version, kind,
///   or an oversized length) are reported as soon as the 12 header bytes are there, without
///   waiting for the body.
///
/// Never panics. Allocates only after the header passed `limits` and each field passed its limit:
/// byte and string fields take exactly their length, and a list reserves only what the rest of
/// the body can fill, so memory stays a small multiple (list item headers) of the bytes received.
pub fn decode_frame(buf: &[u8], limits: &Limits) -> Result<Option<(Frame, usize)>, ProtoError> {
    let Some(bytes) = buf.first_chunk::<HEADER_LEN>() else {
        return Ok(None);
    };
    let header = Header::parse(bytes, limits)?;
    let Some(body) = buf
        .get(HEADER_LEN..)
        .and_then(|rest| rest.get(..header.body_len as usize))
    else {
        return Ok(None);
    };
    let message = decode_body(&header, body, limits)?;
    let frame = Frame {
        request_id: header.request_id,
        message,
    };
    Ok(Some((frame, header.frame_len())))
}

/// Decodes a body whose header was already checked (for a reader that reads the header, then
/// exactly `header.body_len` bytes). `body` must be that whole body: bytes left over are an error.
pub fn decode_body(header: &Header, body: &[u8], limits: &Limits) -> Result<Message, ProtoError> {
    let mut c = Cursor::new(header.kind, body);
    let message = match Request::decode_body(&mut c, limits) {
        Some(request) => Message::Request(request?),
        None => match Reply::decode_body(&mut c, limits) {
            Some(reply) => Message::Reply(reply?),
            // Every kind is a request or a reply; keep the decoder total anyway.
            None => {
                return Err(ProtoError::UnknownKind {
                    kind: header.kind.as_u8(),
                })
            }
        },
    };
    c.finish()?;
    Ok(message)
}
