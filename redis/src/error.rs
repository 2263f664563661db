//! Errors of the Redis tier. Every message says what to do.

use std::time::Duration;

/// Why a Redis operation failed.
#[derive(Debug, Clone, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// The Redis URL (or cluster seed list) is not usable.
    #[error("bad Redis URL {url}: {message}; use redis://[user:password@]host:port[/db], rediss://… for TLS, unix:///path/to/redis.sock, or redis+sentinel://host:port[,host:port…]/service[/db]")]
    Config {
        /// The URL, with any password replaced by `***`.
        url: String,
        /// What is wrong.
        message: String,
    },
    /// Redis cannot be reached or the connection was lost.
    #[error("Redis at {target} is unreachable: {message}; check that it is running and reachable from this host")]
    Unreachable {
        /// Where (password hidden).
        target: String,
        /// The underlying error.
        message: String,
    },
    /// Redis did not answer in time.
    #[error("Redis at {target} did not answer {operation} within {} ms; it is overloaded or unreachable (raise redis_timeout_ms if this is expected)", .after.as_millis())]
    Timeout {
        /// Where (password hidden).
        target: String,
        /// What was asked.
        operation: &'static str,
        /// The timeout in force.
        after: Duration,
    },
    /// Redis refused the command (permissions, out of memory, script error, cluster down).
    #[error("Redis refused {operation}: {message}; check the Redis user's ACL (it needs strings, streams, scripting and pub/sub on ck:*) and Redis's memory")]
    Server {
        /// What was asked.
        operation: &'static str,
        /// Redis's error.
        message: String,
    },
    /// Redis answered something of an unexpected shape.
    #[error("unexpected Redis reply: {message}; is this a Redis 7 compatible server?")]
    BadReply {
        /// What was wrong.
        message: String,
    },
    /// A read-modify-write found the key changed by another writer at every attempt.
    #[error("the key was changed by other writers during each of {attempts} attempts of an atomic operation (heavy contention on one key); nothing was changed: retry")]
    Contention {
        /// Attempts made.
        attempts: u32,
    },
    /// A stored record cannot be decoded.
    #[error("bad cachekit record in Redis: {message}")]
    BadRecord {
        /// What was wrong.
        message: String,
    },
}

impl StoreError {
    /// Maps a redis-rs error for operation `operation` against `target`.
    pub fn from_redis(e: &redis::RedisError, target: &str, operation: &'static str) -> StoreError {
        if e.is_timeout() {
            return StoreError::Timeout {
                target: target.to_owned(),
                operation,
                after: Duration::ZERO,
            };
        }
        match e.kind() {
            redis::ErrorKind::InvalidClientConfig | redis::ErrorKind::AuthenticationFailed => {
                StoreError::Config {
                    url: target.to_owned(),
                    message: e.to_string(),
                }
            }
            redis::ErrorKind::Server(_) => StoreError::Server {
                operation,
                message: e.to_string(),
            },
            redis::ErrorKind::Parse | redis::ErrorKind::UnexpectedReturnType => {
                StoreError::BadReply {
                    message: format!("{operation}: {e}"),
                }
            }
            _ => StoreError::Unreachable {
                target: target.to_owned(),
                message: e.to_string(),
            },
        }
    }

    /// Whether the failure says something about Redis's health (and so counts towards the
    /// circuit breaker): unreachable, timed out. A refused command or a bad record does not.
    pub fn is_outage(&self) -> bool {
        matches!(
            self,
            StoreError::Unreachable { .. } | StoreError::Timeout { .. }
        ) || matches!(self, StoreError::Server { message, .. } if is_transient_server_error(message))
    }
}

/// Server errors that mean "not now" rather than "never": loading, failover, cluster down.
fn is_transient_server_error(message: &str) -> bool {
    [
        "LOADING",
        "CLUSTERDOWN",
        "TRYAGAIN",
        "MASTERDOWN",
        "READONLY",
        "BUSY",
    ]
    .iter()
    .any(|c| message.contains(c))
}
