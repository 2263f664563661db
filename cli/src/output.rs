//! What the CLI prints: text for people by default, one JSON object with `--json`.

use std::fmt::Write as _;
use std::process::ExitCode;
use std::time::Duration;

use cachekit_client::{Client, Error, Pong, Source, Stats, Value};
use serde_json::{json, Map, Value as Json};

use crate::duration::format_duration;
use crate::{write_stdout, CliError};

/// Exit code of a miss (`get`).
pub const EXIT_MISS: u8 = 1;
/// Exit code when the daemon cannot be reached or does not answer.
pub const EXIT_UNAVAILABLE: u8 = 3;
/// Exit code when the request is refused: not permitted, invalid argument, too large.
pub const EXIT_REFUSED: u8 = 4;
/// Exit code of any other failure.
pub const EXIT_OTHER: u8 = 5;

/// The result of a successful command.
pub struct Outcome {
    json: Json,
    /// Bytes for stdout in text mode.
    text: Vec<u8>,
    /// A note for stderr in both modes.
    note: Option<String>,
    code: u8,
}

impl Outcome {
    pub fn done(json: Json, text: String) -> Outcome {
        let mut text = text.into_bytes();
        text.push(b'\n');
        Outcome {
            json,
            text,
            note: None,
            code: 0,
        }
    }

    /// The command found nothing to act on, or its condition did not hold: nothing on stdout
    /// in text mode, `note` on stderr, exit code 1 (as a miss).
    pub fn not_done(json: Json, note: String) -> Outcome {
        Outcome {
            json,
            text: Vec::new(),
            note: Some(note),
            code: EXIT_MISS,
        }
    }

    /// Text mode already wrote its output to stdout as it came.
    pub fn streamed(json: Json) -> Outcome {
        Outcome {
            json,
            text: Vec::new(),
            note: None,
            code: 0,
        }
    }

    pub fn miss(key: &[u8]) -> Outcome {
        Outcome {
            json: json!({"key": key_text(key), "hit": false}),
            text: Vec::new(),
            note: Some("miss".into()),
            code: EXIT_MISS,
        }
    }

    pub fn finish(self, json: bool) -> ExitCode {
        if json {
            write_stdout(format!("{}\n", self.json).as_bytes());
        } else {
            write_stdout(&self.text);
        }
        if let Some(note) = self.note {
            eprintln!("{note}");
        }
        ExitCode::from(self.code)
    }
}

/// The exit code for an error.
pub fn exit_code(e: &CliError) -> u8 {
    match e {
        CliError::Client(e) if e.is_unavailable() => EXIT_UNAVAILABLE,
        CliError::Client(
            Error::NotPermitted { .. } | Error::InvalidArgument { .. } | Error::TooLarge { .. },
        )
        | CliError::Input(_) => EXIT_REFUSED,
        CliError::Client(_) => EXIT_OTHER,
    }
}

fn error_kind(e: &CliError) -> &'static str {
    match e {
        CliError::Input(_) => "input",
        CliError::Client(e) => match e {
            Error::Unavailable { .. } => "unavailable",
            Error::Timeout { .. } => "timeout",
            Error::NotPermitted { .. } => "not_permitted",
            Error::InvalidArgument { .. } => "invalid_argument",
            Error::TooLarge { .. } => "too_large",
            Error::Protocol { .. } => "protocol",
            Error::Daemon { .. } => "daemon",
            Error::Io(_) => "io",
            Error::Envelope(_) => "envelope",
            _ => "error",
        },
    }
}

/// Prints an error: always a line on stderr, plus a JSON object on stdout with `--json`.
pub fn print_error(e: &CliError, json: bool) {
    if json {
        let obj = json!({"error": {"kind": error_kind(e), "message": e.to_string()}});
        write_stdout(format!("{obj}\n").as_bytes());
    }
    eprintln!("cachekit: error: {e}");
}

/// A key or value for display: itself when it is printable UTF-8, else escaped
/// (`\xff`, `\n`).
pub fn key_text(bytes: &[u8]) -> String {
    match std::str::from_utf8(bytes) {
        Ok(s) if !s.chars().any(char::is_control) => s.to_string(),
        _ => bytes.escape_ascii().to_string(),
    }
}

pub fn opt(v: Option<u64>) -> Json {
    v.map_or(Json::Null, Json::from)
}

fn source_name(s: Source) -> &'static str {
    match s {
        Source::Segment => "segment",
        Source::Daemon => "daemon",
        Source::Computed => "computed",
    }
}

/// A hit for `get`.
pub fn value(key: &[u8], v: &Value, raw: bool) -> Outcome {
    let (value_json, encoding) = match std::str::from_utf8(&v.bytes) {
        Ok(s) => (Json::from(s), "utf8"),
        Err(_) => (Json::from(v.bytes.escape_ascii().to_string()), "escaped"),
    };
    let json = json!({
        "key": key_text(key),
        "hit": true,
        "value": value_json,
        "encoding": encoding,
        "bytes": v.bytes.len(),
        "stale": v.stale,
        "created_ms": v.created_ms,
        "expires_ms": opt(v.expires_ms),
        "grace_until_ms": opt(v.grace_until_ms),
        "source": source_name(v.source),
        "version": v.version,
        "integer": v.integer,
    });
    let text = if raw {
        v.bytes.clone()
    } else {
        let mut t = match std::str::from_utf8(&v.bytes) {
            Ok(s) => s.as_bytes().to_vec(),
            Err(_) => v.bytes.escape_ascii().to_string().into_bytes(),
        };
        if t.last() != Some(&b'\n') {
            t.push(b'\n');
        }
        t
    };
    let note = v.stale.then(|| {
        let ago = v
            .expires_ms
            .map(|e| now_ms().saturating_sub(e))
            .map(|ms| format!(" {} ago", format_duration(Duration::from_millis(ms))))
            .unwrap_or_default();
        format!("stale: expired{ago}, served within its grace period")
    });
    Outcome {
        json,
        text,
        note,
        code: 0,
    }
}

pub fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

/// The answer to `ping`.
pub fn ping(client: &Client, pong: Pong) -> Outcome {
    let age = now_ms().saturating_sub(pong.heartbeat_ms);
    let socket = client.options().resolve_socket();
    Outcome::done(
        json!({
            "ok": true,
            "socket": socket.display().to_string(),
            "epoch": pong.epoch,
            "heartbeat_ms": pong.heartbeat_ms,
            "heartbeat_age_ms": age,
            "rtt_us": pong.rtt.as_micros() as u64,
        }),
        format!(
            "PONG from cachekitd at {}: epoch {:#x}, heartbeat {} ago, round trip {} µs",
            socket.display(),
            pong.epoch,
            format_duration(Duration::from_millis(age)),
            pong.rtt.as_micros()
        ),
    )
}

/// The answer to `stats`.
/// The name of a STATS counter that holds an enum: `redis_state` is the Redis circuit
/// breaker's state (0 closed, 1 open, 2 half-open, as `sidecar/src/tier/breaker.rs` numbers it).
pub fn enum_name(counter: &str, value: u64) -> Option<&'static str> {
    match (counter, value) {
        ("redis_state", 0) => Some("closed"),
        ("redis_state", 1) => Some("open"),
        ("redis_state", 2) => Some("half_open"),
        ("redis_state", _) => Some("unknown"),
        _ => None,
    }
}

pub fn stats(client: &Client, stats: &Stats) -> Outcome {
    let mut daemon: Map<String, Json> = stats
        .daemon
        .iter()
        .map(|(k, v)| (k.clone(), Json::from(*v)))
        .collect();
    // Enums by name as well as by number.
    for (k, v) in &stats.daemon {
        if let Some(name) = enum_name(k, *v) {
            daemon.insert(format!("{k}_name"), Json::from(name));
        }
    }
    let l = &stats.local;
    let local = json!({
        "requests": l.requests,
        "connects": l.connects,
        "segment_hits": l.segment_hits,
        "segment_misses": l.segment_misses,
        "fetches": l.fetches,
        "unavailable_misses": l.unavailable_misses,
        "stale_heartbeat": l.stale_heartbeat,
        "reattaches": l.reattaches,
        "decode_errors": l.decode_errors,
    });
    let segment = stats.segment.map(|s| {
        json!({
            "epoch": s.epoch,
            "heartbeat_ms": s.heartbeat_ms,
            "heartbeat_age_ms": now_ms().saturating_sub(s.heartbeat_ms),
            "heartbeat_timeout_ms": s.heartbeat_timeout_ms,
            "live": s.live,
        })
    });
    let socket = client.options().resolve_socket();
    let mut text = String::new();
    let _ = writeln!(text, "cachekitd at {}", socket.display());
    match stats.segment {
        Some(s) => {
            let age = now_ms().saturating_sub(s.heartbeat_ms);
            let _ = writeln!(
                text,
                "segment: epoch {:#x}, heartbeat {} ago ({}; timeout {} ms)",
                s.epoch,
                format_duration(Duration::from_millis(age)),
                if s.live { "live" } else { "STALE" },
                s.heartbeat_timeout_ms
            );
        }
        None => {
            let _ = writeln!(text, "segment: not attached");
        }
    }
    let width = stats.daemon.iter().map(|(k, _)| k.len()).max().unwrap_or(0);
    for (k, v) in &stats.daemon {
        match enum_name(k, *v) {
            Some(name) => {
                let _ = writeln!(text, "  {k:<width$}  {name}");
            }
            None => {
                let _ = writeln!(text, "  {k:<width$}  {v}");
            }
        }
    }
    text.pop();
    Outcome::done(
        json!({
            "socket": socket.display().to_string(),
            "daemon": daemon,
            "client": local,
            "segment": segment,
        }),
        text,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_timeout_names_the_flag_the_user_gave() {
        for operation in ["HELLO", "GET"] {
            let e = CliError::Client(Error::Timeout {
                operation,
                after: Duration::from_secs(5),
            });
            let text = e.to_string();
            assert!(text.contains("(raise --timeout if"), "{text}");
            assert!(!text.contains("_timeout"), "{text}");
        }
    }

    #[test]
    fn exit_codes() {
        let unavailable = CliError::Client(Error::Unavailable {
            message: "down".into(),
        });
        assert_eq!(exit_code(&unavailable), EXIT_UNAVAILABLE);
        let timeout = CliError::Client(Error::Timeout {
            operation: "GET",
            after: Duration::from_secs(1),
        });
        assert_eq!(exit_code(&timeout), EXIT_UNAVAILABLE);
        let large = CliError::Client(Error::TooLarge {
            message: "x".into(),
        });
        assert_eq!(exit_code(&large), EXIT_REFUSED);
        assert_eq!(exit_code(&CliError::Input("x".into())), EXIT_REFUSED);
        let proto = CliError::Client(Error::Protocol {
            message: "x".into(),
        });
        assert_eq!(exit_code(&proto), EXIT_OTHER);
        assert_eq!(error_kind(&large), "too_large");
    }

    #[test]
    fn keys_are_shown_escaped_when_not_printable() {
        assert_eq!(key_text(b"user:1"), "user:1");
        assert_eq!(key_text("é".as_bytes()), "é");
        assert_eq!(key_text(b"a\nb"), "a\\nb");
        assert_eq!(key_text(&[0xff, b'a']), "\\xffa");
    }

    fn sample(bytes: &[u8], stale: bool) -> Value {
        // Values are built by the client; go through its public fields.
        Value {
            bytes: bytes.to_vec(),
            created_ms: 1,
            expires_ms: Some(2),
            grace_until_ms: None,
            stale,
            source: Source::Segment,
            version: 7,
            integer: false,
        }
    }

    #[test]
    fn values_in_text_json_and_raw() {
        let o = value(b"k", &sample(b"hello", false), false);
        assert_eq!(o.text, b"hello\n");
        assert_eq!(o.json["value"], "hello");
        assert_eq!(o.json["encoding"], "utf8");
        assert_eq!(o.json["source"], "segment");
        assert_eq!(o.json["grace_until_ms"], Json::Null);
        assert!(o.note.is_none());
        let raw = value(b"k", &sample(&[0, 0xff], false), true);
        assert_eq!(raw.text, [0, 0xff]);
        assert_eq!(raw.json["encoding"], "escaped");
        assert_eq!(raw.json["value"], "\\x00\\xff");
        let stale = value(b"k", &sample(b"v", true), false);
        assert!(stale.note.unwrap().starts_with("stale: expired"));
        assert_eq!(stale.json["stale"], true);
    }
}
