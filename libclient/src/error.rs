//! The client's error type: one enum for every operation, each variant saying what to do.

use std::io;
use std::path::Path;
use std::time::Duration;

use cachekit_proto::{ErrorCode, ProtoError, RecvError, SendError};

/// Why a client operation failed.
///
/// Gets never return [`Error::Unavailable`] or [`Error::Timeout`]: when neither the segment nor
/// the daemon can answer, a get is a miss (`Ok(None)`), and the client counts it in
/// [`LocalStats::unavailable_misses`](crate::LocalStats::unavailable_misses). Writes, `stats` and
/// `ping` do return them.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The daemon cannot be reached (not running, socket missing, connection lost) or said it
    /// cannot serve now (Redis down for a write, shutting down). The message says how to start it.
    #[error("{message}")]
    Unavailable {
        /// What is wrong and what to do.
        message: String,
    },
    /// The daemon or the socket's permissions refuse this process.
    #[error("not permitted: {message}")]
    NotPermitted {
        /// The daemon's explanation, or which file refused access.
        message: String,
    },
    /// An argument is refused: an empty or malformed namespace or tag, an unknown instance name.
    #[error("invalid argument: {message}")]
    InvalidArgument {
        /// What is wrong with which argument.
        message: String,
    },
    /// A key, namespace, value, tag or tag list is over a limit; the message names the limit and
    /// where to raise it.
    #[error("too large: {message}")]
    TooLarge {
        /// Which field, how large, which limit.
        message: String,
    },
    /// The daemon did not answer within `request_timeout` (or `connect_timeout`); it is stuck or
    /// overloaded. The connection was dropped.
    #[error("cachekitd did not answer a {operation} within {} ms; it is stuck or overloaded (raise {} if this is expected)", .after.as_millis(), timeout_setting(operation))]
    Timeout {
        /// The request that timed out (`"HELLO"`, `"SET"`, ...).
        operation: &'static str,
        /// The timeout in force.
        after: Duration,
    },
    /// The daemon answered something this client does not understand: a different protocol
    /// version, a malformed frame, a reply to the wrong request. Upgrade one side.
    #[error("protocol error talking to cachekitd: {message}")]
    Protocol {
        /// What was wrong with the conversation.
        message: String,
    },
    /// The daemon reported an internal failure (or an error code this client does not know).
    #[error("cachekitd failed: {message} ({code})")]
    Daemon {
        /// The daemon's error code.
        code: ErrorCode,
        /// The daemon's message.
        message: String,
    },
    /// An operating-system error that is none of the above (socket options, mapping the segment).
    #[error("I/O error: {0}")]
    Io(#[from] io::Error),
    /// A stored value is not a valid envelope (not written by a cachekit client, damaged, or
    /// written with a larger `max_value_bytes`). The message says what to do.
    #[error(transparent)]
    Envelope(#[from] cachekit_envelope::DecodeError),
    /// An encrypted value did not decrypt: a wrong master key or tenant, a tampered byte, or a
    /// ciphertext copied from another key or namespace. Never garbage, never a miss.
    #[error("decrypt error: {message}")]
    Decrypt {
        /// Why, and what to do.
        message: String,
    },
    /// The value is encrypted and this client has no key: the message says how to configure it.
    #[error("{message}")]
    Encrypted {
        /// What to configure.
        message: String,
    },
    /// The value is plaintext and this client requires encryption
    /// ([`Encryption::require_encryption`](crate::Encryption::require_encryption)).
    #[error("{message}")]
    Plaintext {
        /// What to do.
        message: String,
    },
}

impl Error {
    /// The error of a value that failed to decode: the encryption cases get their own
    /// variants, everything else is [`Error::Envelope`].
    pub(crate) fn from_decode(e: cachekit_envelope::DecodeError) -> Error {
        use cachekit_envelope::DecodeError as D;
        match e {
            e if e.is_decrypt_failure() => Error::Decrypt {
                message: e.to_string(),
            },
            D::Encrypted => Error::Encrypted {
                message: e.to_string(),
            },
            D::Plaintext => Error::Plaintext {
                message: e.to_string(),
            },
            e => Error::Envelope(e),
        }
    }
}

/// How an UNAVAILABLE answer *from* the daemon starts (the daemon is alive, something behind it
/// is not), as opposed to a daemon that cannot be reached.
const DAEMON_SAYS_UNAVAILABLE: &str = "cachekitd is unavailable: ";

impl Error {
    /// Whether the daemon itself is gone or stuck (not reachable, or not answering), as opposed
    /// to a daemon that answered "unavailable".
    pub(crate) fn is_daemon_gone(&self) -> bool {
        matches!(self, Error::Timeout { .. }) || self.is_connection_lost()
    }

    /// Whether the daemon was found gone: its socket missing or refusing connections, or a
    /// connection to it closed or reset ([`Error::Unavailable`] not answered by the daemon
    /// itself). A timeout is not: the daemon may be slow rather than gone.
    pub(crate) fn is_connection_lost(&self) -> bool {
        matches!(self, Error::Unavailable { message } if !message.starts_with(DAEMON_SAYS_UNAVAILABLE))
    }

    /// Whether the daemon could not be reached or did not answer ([`Error::Unavailable`],
    /// [`Error::Timeout`]): the cases in which a get becomes a miss.
    pub fn is_unavailable(&self) -> bool {
        matches!(self, Error::Unavailable { .. } | Error::Timeout { .. })
    }

    /// Maps an ERROR reply from the daemon.
    pub(crate) fn from_daemon(code: ErrorCode, message: String) -> Error {
        match code {
            ErrorCode::TooLarge => Error::TooLarge { message },
            ErrorCode::NotPermitted => Error::NotPermitted { message },
            ErrorCode::Unavailable => Error::Unavailable {
                message: format!("{DAEMON_SAYS_UNAVAILABLE}{message}"),
            },
            ErrorCode::InvalidArgument => Error::InvalidArgument { message },
            ErrorCode::BadFrame | ErrorCode::UnsupportedVersion | ErrorCode::UnexpectedMessage => {
                Error::Protocol {
                    message: format!("cachekitd answered {code}: {message}"),
                }
            }
            ErrorCode::Internal | ErrorCode::Unknown(_) => Error::Daemon { code, message },
        }
    }

    /// Maps a local validation failure of a request (the same checks the daemon runs).
    pub(crate) fn from_validation(e: ProtoError) -> Error {
        match e.code() {
            ErrorCode::TooLarge => Error::TooLarge {
                message: e.to_string(),
            },
            _ => Error::InvalidArgument {
                message: e.to_string(),
            },
        }
    }

    /// Maps a failure to reach the daemon's socket.
    pub(crate) fn connect_failed(socket: &Path, start_hint: &str, e: &io::Error) -> Error {
        let shown = socket.display();
        match e.kind() {
            io::ErrorKind::PermissionDenied => Error::NotPermitted {
                message: format!(
                    "cannot connect to cachekitd at {shown}: {e}; run as a user the socket \
                     allows (the daemon's group) or ask the operator to widen its mode"
                ),
            },
            io::ErrorKind::ConnectionRefused if not_a_socket(socket).is_some() => {
                Error::Unavailable {
                    message: format!(
                        "{shown} is {}, not a socket: no cachekitd listens there; point the \
                         client at the daemon's socket (the daemon's --dir and --instance), or \
                         start it with `{start_hint}`",
                        not_a_socket(socket).unwrap_or("not a socket")
                    ),
                }
            }
            io::ErrorKind::ConnectionRefused => Error::Unavailable {
                message: format!(
                    "cachekitd is not running at {shown} (the socket exists but nobody listens: \
                     a stopped daemon left it behind); start it with `{start_hint}`"
                ),
            },
            io::ErrorKind::NotFound => Error::Unavailable {
                message: format!(
                    "cachekitd is not running at {shown}; start it with `{start_hint}`"
                ),
            },
            io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut => Error::Unavailable {
                message: format!(
                    "cachekitd at {shown} did not accept the connection in time (its backlog is \
                     full: it is stuck or overloaded); check it, or restart it with `{start_hint}`"
                ),
            },
            _ => Error::Unavailable {
                message: format!(
                    "cannot connect to cachekitd at {shown}: {e}; start it with `{start_hint}`"
                ),
            },
        }
    }

    /// Maps a failure to send a request on an established connection.
    pub(crate) fn from_send(e: SendError, operation: &'static str, timeout: Duration) -> Error {
        match e {
            SendError::Encode(e) => Error::TooLarge {
                message: e.to_string(),
            },
            SendError::Io(e) => Error::from_conn_io(e, operation, timeout),
            other => Error::Protocol {
                message: other.to_string(),
            },
        }
    }

    /// Maps a failure to receive a reply on an established connection.
    pub(crate) fn from_recv(e: RecvError, operation: &'static str, timeout: Duration) -> Error {
        match e {
            RecvError::Closed => Error::Unavailable {
                message: format!(
                    "cachekitd closed the connection during a {operation} (it stopped or \
                     restarted); the client reconnects on the next call"
                ),
            },
            RecvError::Io(e) => Error::from_conn_io(e, operation, timeout),
            other => Error::Protocol {
                message: other.to_string(),
            },
        }
    }

    fn from_conn_io(e: io::Error, operation: &'static str, timeout: Duration) -> Error {
        match e.kind() {
            io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut => Error::Timeout {
                operation,
                after: timeout,
            },
            io::ErrorKind::BrokenPipe
            | io::ErrorKind::ConnectionReset
            | io::ErrorKind::ConnectionAborted
            | io::ErrorKind::UnexpectedEof => Error::Unavailable {
                message: format!(
                    "lost the connection to cachekitd during a {operation} ({e}): it stopped or \
                     restarted; the client reconnects on the next call"
                ),
            },
            _ => Error::Io(e),
        }
    }

    /// Whether the connection this error happened on must be dropped (it may be out of sync).
    pub(crate) fn breaks_connection(&self) -> bool {
        !matches!(
            self,
            Error::NotPermitted { .. }
                | Error::InvalidArgument { .. }
                | Error::TooLarge { .. }
                | Error::Daemon { .. }
                | Error::Envelope(_)
        )
    }
}

/// What `path` is when it exists and is not a socket ("a regular file", "a directory"), so
/// that a refused connection is not blamed on a stopped daemon.
fn not_a_socket(path: &Path) -> Option<&'static str> {
    use std::os::unix::fs::FileTypeExt;
    let t = std::fs::metadata(path).ok()?.file_type();
    if t.is_socket() {
        None
    } else if t.is_dir() {
        Some("a directory")
    } else if t.is_file() {
        Some("a regular file")
    } else {
        Some("a special file")
    }
}

/// The option that bounds a wait for `operation`: the connection's HELLO waits for
/// `connect_timeout`, every other request for `request_timeout`.
pub(crate) fn timeout_setting(operation: &str) -> &'static str {
    if operation == "HELLO" {
        "connect_timeout"
    } else {
        "request_timeout"
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_timeout_names_the_option_that_bounded_it() {
        let hello = Error::Timeout {
            operation: "HELLO",
            after: Duration::from_secs(1),
        };
        assert!(
            hello.to_string().contains("raise connect_timeout"),
            "{hello}"
        );
        let get = Error::Timeout {
            operation: "GET",
            after: Duration::from_secs(5),
        };
        assert!(get.to_string().contains("raise request_timeout"), "{get}");
    }

    #[test]
    fn daemon_codes_map_to_variants() {
        let m = || "msg".to_string();
        assert!(matches!(
            Error::from_daemon(ErrorCode::TooLarge, m()),
            Error::TooLarge { .. }
        ));
        assert!(matches!(
            Error::from_daemon(ErrorCode::NotPermitted, m()),
            Error::NotPermitted { .. }
        ));
        assert!(Error::from_daemon(ErrorCode::Unavailable, m()).is_unavailable());
        assert!(matches!(
            Error::from_daemon(ErrorCode::InvalidArgument, m()),
            Error::InvalidArgument { .. }
        ));
        for code in [
            ErrorCode::BadFrame,
            ErrorCode::UnsupportedVersion,
            ErrorCode::UnexpectedMessage,
        ] {
            assert!(matches!(
                Error::from_daemon(code, m()),
                Error::Protocol { .. }
            ));
        }
        for code in [ErrorCode::Internal, ErrorCode::Unknown(99)] {
            assert!(matches!(
                Error::from_daemon(code, m()),
                Error::Daemon { .. }
            ));
        }
    }

    #[test]
    fn daemon_messages_are_kept() {
        let e = Error::from_daemon(
            ErrorCode::TooLarge,
            "value is 2 MiB, over max_value_bytes = 1 MiB".into(),
        );
        assert_eq!(
            e.to_string(),
            "too large: value is 2 MiB, over max_value_bytes = 1 MiB"
        );
    }

    #[test]
    fn connect_errors_say_how_to_start_the_daemon() {
        let path = Path::new("/run/cachekit/default.sock");
        let e = Error::connect_failed(path, "cachekitd", &io::ErrorKind::NotFound.into());
        assert!(e.is_unavailable());
        assert_eq!(
            e.to_string(),
            "cachekitd is not running at /run/cachekit/default.sock; start it with `cachekitd`"
        );
        let refused = Error::connect_failed(
            path,
            "cachekitd --instance dev",
            &io::ErrorKind::ConnectionRefused.into(),
        );
        assert!(refused.is_unavailable());
        assert!(refused
            .to_string()
            .contains("start it with `cachekitd --instance dev`"));
        let denied =
            Error::connect_failed(path, "cachekitd", &io::ErrorKind::PermissionDenied.into());
        assert!(matches!(denied, Error::NotPermitted { .. }));
    }

    #[test]
    fn io_errors_on_a_connection() {
        let t = Duration::from_millis(250);
        let e = Error::from_recv(RecvError::Io(io::ErrorKind::WouldBlock.into()), "FETCH", t);
        assert!(matches!(
            e,
            Error::Timeout {
                operation: "FETCH",
                ..
            }
        ));
        assert!(e.to_string().contains("within 250 ms"));
        assert!(Error::from_recv(RecvError::Closed, "SET", t).is_unavailable());
        assert!(
            Error::from_send(SendError::Io(io::ErrorKind::BrokenPipe.into()), "SET", t)
                .is_unavailable()
        );
        assert!(Error::from_recv(RecvError::Closed, "SET", t).breaks_connection());
        assert!(!Error::from_daemon(ErrorCode::TooLarge, String::new()).breaks_connection());
    }

    #[test]
    fn a_lost_connection_is_told_from_a_slow_or_answering_daemon() {
        let t = Duration::from_millis(250);
        let socket = Path::new("/run/cachekit/x.sock");
        let refused = io::Error::from(io::ErrorKind::ConnectionRefused);
        let missing = io::Error::from(io::ErrorKind::NotFound);
        let reset = SendError::Io(io::ErrorKind::ConnectionReset.into());
        for lost in [
            Error::connect_failed(socket, "cachekitd", &refused),
            Error::connect_failed(socket, "cachekitd", &missing),
            Error::from_recv(RecvError::Closed, "DELETE", t),
            Error::from_send(reset, "SET", t),
        ] {
            assert!(lost.is_connection_lost() && lost.is_daemon_gone(), "{lost}");
        }
        let slow = Error::from_recv(RecvError::Io(io::ErrorKind::WouldBlock.into()), "GET", t);
        assert!(!slow.is_connection_lost() && slow.is_daemon_gone());
        let answered = Error::from_daemon(ErrorCode::Unavailable, "redis is down".into());
        assert!(!answered.is_connection_lost() && !answered.is_daemon_gone());
    }

    #[test]
    fn validation_errors_name_the_limit() {
        let req = cachekit_proto::Request::Fetch {
            namespace: "ns".into(),
            key: vec![0; 5000],
        };
        let e = Error::from_validation(req.validate(&cachekit_proto::Limits::DEFAULT).unwrap_err());
        assert!(matches!(e, Error::TooLarge { .. }));
        assert!(e.to_string().contains("max_key_bytes = 4096"), "{e}");
    }
}
