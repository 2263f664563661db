//! Client configuration ([`ClientOptions`]) and per-write options ([`SetOptions`]).

use std::path::{Path, PathBuf};
use std::time::Duration;

use cachekit_envelope::EnvelopeConfig;
use cachekit_proto::paths::DEFAULT_INSTANCE;

use crate::crypto::Encryption;
use crate::error::Error;

/// The namespace used when none is given.
pub const DEFAULT_NAMESPACE: &str = "default";
/// Default [`ClientOptions::connect_timeout`]: 1 s. Connecting to a Unix socket is immediate
/// unless the daemon's backlog is full.
pub const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(1);
/// Default [`ClientOptions::request_timeout`]: 5 s. A FETCH may wait for Redis; the daemon's
/// circuit breaker keeps that far shorter when Redis is sick.
pub const DEFAULT_REQUEST_TIMEOUT: Duration = Duration::from_secs(5);
/// Default [`ClientOptions::pool_size`]: 4 connections. Hits never use a connection; misses and
/// writes hold one for one round trip (about 13 µs plus the daemon's work).
pub const DEFAULT_POOL_SIZE: usize = 4;
/// Default [`ClientOptions::redis_timeout`]: 250 ms, the daemon's default too.
pub const DEFAULT_REDIS_TIMEOUT: Duration = Duration::from_millis(250);

/// How to reach the daemon and how to encode values. Build with [`ClientOptions::new`] (or
/// `Default`) and the builder methods, or [`ClientOptions::from_env`].
///
/// ```
/// use cachekit_client::ClientOptions;
/// use std::time::Duration;
///
/// let opts = ClientOptions::new()
///     .instance("dev")
///     .namespace("sessions")
///     .request_timeout(Duration::from_millis(500));
/// assert_eq!(opts.instance, "dev");
/// ```
#[derive(Clone, PartialEq, Eq)]
pub struct ClientOptions {
    /// The daemon's socket. When set it overrides `instance`; when `None` the socket is
    /// `<dir>/<instance>.sock` in the first runtime directory that holds it (`/run/cachekit`,
    /// `$XDG_RUNTIME_DIR/cachekit`, `/tmp/cachekit-<uid>`, or `$CACHEKIT_DIR` alone), looked up
    /// again on every reconnect.
    pub socket: Option<PathBuf>,
    /// The daemon instance. Default `"default"`.
    pub instance: String,
    /// The namespace of the [`Client`](crate::Client) returned by `connect`. Default
    /// `"default"`. Other namespaces: [`Client::with_namespace`](crate::Client::with_namespace).
    pub namespace: String,
    /// Value encoding: compression threshold and the largest value encoded and decoded.
    ///
    /// **`max_value_bytes` follows the daemon.** Once the client has attached a daemon (its
    /// first HELLO), the largest value it encodes (in [`set`](crate::Client::set)) and
    /// decodes (in every get) is the daemon's own limit, its `--max-value-bytes` (announced in
    /// HELLO_OK as the encoded limit, that plus 64 bytes of envelope headroom):
    ///
    /// - left at the default ([`DEFAULT_MAX_VALUE_BYTES`](cachekit_envelope::DEFAULT_MAX_VALUE_BYTES),
    ///   1 MiB), it means "whatever the daemon allows", larger or smaller than 1 MiB;
    /// - set to any other value, it is a cap of this client's: the smaller of it and the
    ///   daemon's limit applies (a larger one cannot raise the daemon's);
    /// - before the first HELLO (a [`connect_lazy`](crate::Client::connect_lazy) client that
    ///   has not reached the daemon, e.g. reading Redis directly), the value as set here
    ///   applies. A `set` reaches the daemon before checking the value, so it is checked
    ///   against the daemon's limit whenever the daemon is up.
    ///
    /// A cap of exactly the default cannot be told from "follow the daemon"; use 1 MiB − 1
    /// for it. [`Client::max_value_bytes`](crate::Client::max_value_bytes) says which limit is
    /// in force.
    pub envelope: EnvelopeConfig,
    /// How long to wait for the daemon to accept a connection and answer HELLO.
    pub connect_timeout: Duration,
    /// How long to wait for the daemon's reply to one request (and for a free pooled
    /// connection).
    pub request_timeout: Duration,
    /// Most connections open at once; threads beyond it wait for a free one (misses and
    /// writes only: hits use no connection). At least 1.
    pub pool_size: usize,
    /// Name sent in HELLO, for the daemon's logs. Default: this program's file name.
    pub client_name: String,
    /// Redis, for the direct fallback: while the daemon is down (socket refused, or its
    /// heartbeat stale), gets and writes go to Redis directly, with the same record format,
    /// scripts and invalidation log as the daemons, so the other hosts learn of the writes.
    /// `redis://[user:password@]host:port[/db]`, `rediss://…`, `unix:///path`; for a cluster
    /// (with [`redis_cluster`](ClientOptions::redis_cluster)), seed URLs separated by commas.
    /// Default `None`: no fallback (env `CACHEKIT_REDIS_URL`).
    pub redis_url: Option<String>,
    /// `redis_url` lists the seed nodes of a Redis Cluster. Default false.
    pub redis_cluster: bool,
    /// Use the direct fallback when `redis_url` is set. Default true.
    pub redis_fallback: bool,
    /// Timeout of each call of the direct fallback (connect and answer). Default 250 ms.
    pub redis_timeout: Duration,
    /// Client-side encryption of values (AES-256-GCM, per-tenant keys from one master key):
    /// see [`Encryption`]. Default `None`: values are stored in the clear (env
    /// `CACHEKIT_MASTER_KEY` / `CACHEKIT_MASTER_KEY_FILE`, see [`from_env`](ClientOptions::from_env)).
    pub encryption: Option<Encryption>,
    /// A bad encryption variable seen by `from_vars`: `validate` (so `connect`) reports it
    /// rather than silently writing plaintext.
    env_error: Option<String>,
}

impl std::fmt::Debug for ClientOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClientOptions")
            .field("socket", &self.socket)
            .field("instance", &self.instance)
            .field("namespace", &self.namespace)
            .field("envelope", &self.envelope)
            .field("connect_timeout", &self.connect_timeout)
            .field("request_timeout", &self.request_timeout)
            .field("pool_size", &self.pool_size)
            .field("client_name", &self.client_name)
            // Never print a password.
            .field(
                "redis_url",
                &self
                    .redis_url
                    .as_deref()
                    .map(cachekit_redis::target::redact),
            )
            .field("redis_cluster", &self.redis_cluster)
            .field("redis_fallback", &self.redis_fallback)
            .field("redis_timeout", &self.redis_timeout)
            .field("encryption", &self.encryption)
            .finish()
    }
}

impl Default for ClientOptions {
    /// [`ClientOptions::from_env`]: the built-in defaults overridden by `CACHEKIT_SOCKET`,
    /// `CACHEKIT_INSTANCE`, `CACHEKIT_NAMESPACE`, ..., as every other binding (C, Go, Python)
    /// and the CLI start from the environment. For the built-in defaults alone:
    /// `ClientOptions::from_vars(|_| None)`.
    fn default() -> Self {
        Self::from_env()
    }
}

impl ClientOptions {
    /// The built-in defaults, with no environment.
    fn builtin() -> Self {
        ClientOptions {
            socket: None,
            instance: DEFAULT_INSTANCE.to_string(),
            namespace: DEFAULT_NAMESPACE.to_string(),
            envelope: EnvelopeConfig::DEFAULT,
            connect_timeout: DEFAULT_CONNECT_TIMEOUT,
            request_timeout: DEFAULT_REQUEST_TIMEOUT,
            pool_size: DEFAULT_POOL_SIZE,
            client_name: default_client_name(),
            redis_url: None,
            redis_cluster: false,
            redis_fallback: true,
            redis_timeout: DEFAULT_REDIS_TIMEOUT,
            encryption: None,
            env_error: None,
        }
    }
}

fn default_client_name() -> String {
    let name = std::env::args_os()
        .next()
        .map(PathBuf::from)
        .and_then(|p| p.file_name().map(|n| n.to_string_lossy().into_owned()))
        .filter(|n| !n.is_empty())
        .unwrap_or_else(|| "cachekit-client".to_string());
    truncate_utf8(name, cachekit_proto::MAX_CLIENT_NAME_BYTES)
}

fn truncate_utf8(mut s: String, max: usize) -> String {
    if s.len() > max {
        let mut end = max;
        while !s.is_char_boundary(end) {
            end -= 1;
        }
        s.truncate(end);
    }
    s
}

impl ClientOptions {
    /// The defaults: instance `default`, namespace `default`, 1 s connect timeout, 5 s request
    /// timeout, 4 connections, default envelope; then the environment, as
    /// [`from_env`](ClientOptions::from_env) (an explicit builder call wins over it).
    pub fn new() -> Self {
        Self::default()
    }

    /// The defaults overridden by the environment: `CACHEKIT_SOCKET`, `CACHEKIT_INSTANCE`,
    /// `CACHEKIT_NAMESPACE`, `CACHEKIT_REDIS_URL`, `CACHEKIT_REDIS_CLUSTER` (empty variables are
    /// ignored). `CACHEKIT_DIR` is honoured when the socket is looked up.
    ///
    /// Encryption: `CACHEKIT_MASTER_KEY` (64 hex digits or base64 of 32 bytes) or
    /// `CACHEKIT_MASTER_KEY_FILE` (a file of mode 0600 or 0400 holding the key) turns it on;
    /// then `CACHEKIT_PREVIOUS_MASTER_KEYS` (comma-separated), `CACHEKIT_TENANT`,
    /// `CACHEKIT_HASH_KEYS=1`, `CACHEKIT_REQUIRE_ENCRYPTION=1` and
    /// `CACHEKIT_ENCRYPTION_MEMO_BYTES` (0 = no memo of opened values) set the rest of
    /// [`Encryption`]. A bad value is reported by [`validate`](ClientOptions::validate), so
    /// [`Client::connect`](crate::Client::connect) fails rather than writing plaintext.
    pub fn from_env() -> Self {
        Self::from_vars(|name| std::env::var(name).ok())
    }

    /// [`ClientOptions::from_env`] with the variables read through `var`.
    pub fn from_vars(var: impl Fn(&str) -> Option<String>) -> Self {
        let get = |name: &str| var(name).filter(|v| !v.is_empty());
        let mut opts = Self::builtin();
        if let Some(socket) = get("CACHEKIT_SOCKET") {
            opts.socket = Some(PathBuf::from(socket));
        }
        if let Some(instance) = get("CACHEKIT_INSTANCE") {
            opts.instance = instance;
        }
        if let Some(namespace) = get("CACHEKIT_NAMESPACE") {
            opts.namespace = namespace;
        }
        if let Some(url) = get("CACHEKIT_REDIS_URL") {
            opts.redis_url = Some(url);
        }
        if let Some(cluster) = get("CACHEKIT_REDIS_CLUSTER") {
            opts.redis_cluster = matches!(cluster.as_str(), "1" | "true" | "yes");
        }
        match Encryption::from_vars(&var) {
            Ok(enc) => opts.encryption = enc,
            Err(e) => opts.env_error = Some(e.to_string()),
        }
        opts
    }

    /// Client-side encryption (see [`Encryption`]).
    pub fn encryption(mut self, encryption: Encryption) -> Self {
        self.encryption = Some(encryption);
        self.env_error = None;
        self
    }

    /// Connect to this socket instead of looking one up by instance.
    pub fn socket(mut self, path: impl Into<PathBuf>) -> Self {
        self.socket = Some(path.into());
        self
    }

    /// The daemon instance whose socket to look up.
    pub fn instance(mut self, instance: impl Into<String>) -> Self {
        self.instance = instance.into();
        self
    }

    /// The namespace of the client.
    pub fn namespace(mut self, namespace: impl Into<String>) -> Self {
        self.namespace = namespace.into();
        self
    }

    /// The envelope configuration (see [`ClientOptions::envelope`] for how its
    /// `max_value_bytes` combines with the daemon's limit).
    pub fn envelope(mut self, envelope: EnvelopeConfig) -> Self {
        self.envelope = envelope;
        self
    }

    /// The connect (and HELLO) timeout.
    pub fn connect_timeout(mut self, timeout: Duration) -> Self {
        self.connect_timeout = timeout;
        self
    }

    /// The per-request timeout.
    pub fn request_timeout(mut self, timeout: Duration) -> Self {
        self.request_timeout = timeout;
        self
    }

    /// The most connections open at once.
    pub fn pool_size(mut self, size: usize) -> Self {
        self.pool_size = size;
        self
    }

    /// The name sent in HELLO (cut to 255 bytes).
    pub fn client_name(mut self, name: impl Into<String>) -> Self {
        self.client_name = truncate_utf8(name.into(), cachekit_proto::MAX_CLIENT_NAME_BYTES);
        self
    }

    /// Redis for the direct fallback (see [`ClientOptions::redis_url`]).
    pub fn redis_url(mut self, url: impl Into<String>) -> Self {
        self.redis_url = Some(url.into());
        self
    }

    /// Whether `redis_url` lists Redis Cluster seed nodes.
    pub fn redis_cluster(mut self, cluster: bool) -> Self {
        self.redis_cluster = cluster;
        self
    }

    /// Turns the direct fallback on or off (on by default when `redis_url` is set).
    pub fn redis_fallback(mut self, on: bool) -> Self {
        self.redis_fallback = on;
        self
    }

    /// The timeout of each direct Redis call.
    pub fn redis_timeout(mut self, timeout: Duration) -> Self {
        self.redis_timeout = timeout;
        self
    }

    /// The parsed Redis target of the direct fallback, if it is on.
    pub(crate) fn redis_target(&self) -> Result<Option<cachekit_redis::Target>, Error> {
        match (&self.redis_url, self.redis_fallback) {
            (Some(url), true) => {
                cachekit_redis::Target::parse(url, self.redis_cluster, self.redis_timeout)
                    .map(Some)
                    .map_err(|e| Error::InvalidArgument {
                        message: format!("redis_url: {e}"),
                    })
            }
            _ => Ok(None),
        }
    }

    /// Checks the options; [`Client::connect`](crate::Client::connect) calls it.
    pub fn validate(&self) -> Result<(), Error> {
        if let Some(message) = &self.env_error {
            return Err(Error::InvalidArgument {
                message: format!("{message} (from the environment)"),
            });
        }
        if self.socket.is_none() {
            cachekit_proto::paths::validate_instance(&self.instance)
                .map_err(|message| Error::InvalidArgument { message })?;
        }
        crate::limits::check_namespace(&self.namespace, &cachekit_proto::Limits::DEFAULT)?;
        if self.pool_size == 0 {
            return Err(Error::InvalidArgument {
                message: "pool_size is 0; it must be at least 1".into(),
            });
        }
        self.redis_target()?;
        for (name, t) in [
            ("connect_timeout", self.connect_timeout),
            ("request_timeout", self.request_timeout),
            ("redis_timeout", self.redis_timeout),
        ] {
            if t.is_zero() {
                return Err(Error::InvalidArgument {
                    message: format!("{name} is 0; give it a positive duration"),
                });
            }
        }
        Ok(())
    }

    /// The socket to connect to now: `socket`, or the instance's socket looked up in the
    /// runtime directories.
    pub fn resolve_socket(&self) -> PathBuf {
        match &self.socket {
            Some(p) => p.clone(),
            None => cachekit_proto::paths::client_socket(&self.instance),
        }
    }

    /// The command that starts the daemon these options point at, for error messages.
    pub(crate) fn start_hint(&self) -> String {
        let env_dir = std::env::var_os("CACHEKIT_DIR").filter(|d| !d.is_empty());
        start_hint(
            self.socket.as_deref(),
            &self.instance,
            env_dir.as_deref().map(Path::new),
        )
    }
}

/// `cachekitd`, with the flags that make it listen where the client looks.
fn start_hint(socket: Option<&Path>, instance: &str, env_dir: Option<&Path>) -> String {
    let (dir, instance) = match socket {
        Some(p) => {
            let stem = p
                .file_name()
                .and_then(|n| n.to_str())
                .and_then(|n| n.strip_suffix(".sock"));
            match (p.parent(), stem) {
                (Some(dir), Some(stem)) if !stem.is_empty() => (Some(dir), stem),
                _ => return "cachekitd (configured to listen on this socket)".to_string(),
            }
        }
        None => (env_dir, instance),
    };
    let mut hint = "cachekitd".to_string();
    if let Some(dir) = dir {
        hint.push_str(&format!(" --dir {}", dir.display()));
    }
    if instance != DEFAULT_INSTANCE {
        hint.push_str(&format!(" --instance {instance}"));
    }
    hint
}

/// Options of one [`Client::set`](crate::Client::set): lifetime and tags.
///
/// ```
/// use cachekit_client::SetOptions;
/// use std::time::Duration;
///
/// let opts = SetOptions::new()
///     .ttl(Duration::from_secs(30))
///     .grace(Duration::from_secs(5))
///     .tag("posts/123");
/// assert_eq!(opts.tags, ["posts/123"]);
/// ```
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SetOptions {
    /// Time to live; `None` or zero = never expires (until evicted, deleted or invalidated).
    pub ttl: Option<Duration>,
    /// How long after expiry the value may still be served, marked stale, while a caller
    /// refreshes it. Default 0.
    pub grace: Duration,
    /// Tag paths (`posts/123/comments`) the entry belongs to, for [`Client::invalidate`](crate::Client::invalidate).
    pub tags: Vec<String>,
    /// The entry is written already expired (then `ttl` must be `None`): with
    /// [`Client::cas`](crate::Client::cas) this is a compare-and-delete, how a lock is
    /// released. A TTL of zero is not this: it means "never expires".
    pub expired: bool,
}

impl SetOptions {
    /// No TTL, no grace, no tags.
    pub fn new() -> Self {
        Self::default()
    }

    /// Sets the time to live (zero = never expires, as no TTL).
    pub fn ttl(mut self, ttl: Duration) -> Self {
        self.ttl = Some(ttl);
        self
    }

    /// Writes the entry already expired (see [`SetOptions::expired`]).
    pub fn expired(mut self) -> Self {
        self.expired = true;
        self
    }

    /// Sets the grace period.
    pub fn grace(mut self, grace: Duration) -> Self {
        self.grace = grace;
        self
    }

    /// Adds a tag.
    pub fn tag(mut self, tag: impl Into<String>) -> Self {
        self.tags.push(tag.into());
        self
    }

    /// Adds tags.
    pub fn tags<I, S>(mut self, tags: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.tags.extend(tags.into_iter().map(Into::into));
        self
    }
}

/// The wire's TTL for a TTL option: `None` and `Some(Duration::ZERO)` both mean "never expires"
/// (the rule every binding and the CLI follow; to drop a key, delete it). On the wire, `Some(0)`
/// is "expired at once", which only [`SetOptions::expired`] asks for.
pub(crate) fn ttl_ms(ttl: Option<Duration>) -> Option<u64> {
    ttl.filter(|t| !t.is_zero()).map(duration_ms)
}

/// The wire's TTL of a set: [`ttl_ms`] of its TTL, or 0 (expired at once) for
/// [`SetOptions::expired`].
pub(crate) fn set_ttl_ms(options: &SetOptions) -> Result<Option<u64>, crate::Error> {
    match (options.expired, ttl_ms(options.ttl)) {
        (false, ttl) => Ok(ttl),
        (true, None) => Ok(Some(0)),
        (true, Some(t)) => Err(crate::Error::InvalidArgument {
            message: format!("SetOptions has expired and a TTL of {t} ms; give one of them"),
        }),
    }
}

/// Milliseconds for the wire, rounding a positive sub-millisecond duration up to 1 ms (so a tiny
/// TTL never turns into "expires at creation") and saturating at `u64::MAX`.
pub(crate) fn duration_ms(d: Duration) -> u64 {
    let ms = u64::try_from(d.as_millis()).unwrap_or(u64::MAX);
    if ms == 0 && !d.is_zero() {
        1
    } else {
        ms
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    #[test]
    fn defaults() {
        let o = ClientOptions::from_vars(|_| None);
        assert_eq!(o.instance, "default");
        assert_eq!(o.namespace, "default");
        assert_eq!(o.socket, None);
        assert_eq!(o.pool_size, 4);
        assert_eq!(o.envelope, EnvelopeConfig::DEFAULT);
        assert!(!o.client_name.is_empty());
        o.validate().unwrap();
    }

    #[test]
    fn start_hints_point_where_the_client_looks() {
        assert_eq!(start_hint(None, "default", None), "cachekitd");
        assert_eq!(start_hint(None, "dev", None), "cachekitd --instance dev");
        assert_eq!(
            start_hint(None, "dev", Some(Path::new("/tmp/ck"))),
            "cachekitd --dir /tmp/ck --instance dev"
        );
        assert_eq!(
            start_hint(Some(Path::new("/srv/ck/default.sock")), "x", None),
            "cachekitd --dir /srv/ck"
        );
        assert_eq!(
            start_hint(Some(Path::new("/srv/ck/a.sock")), "x", None),
            "cachekitd --dir /srv/ck --instance a"
        );
        assert_eq!(
            start_hint(Some(Path::new("/srv/ck/socket")), "x", None),
            "cachekitd (configured to listen on this socket)"
        );
    }

    #[test]
    fn environment_overrides() {
        let vars: HashMap<&str, &str> = [
            ("CACHEKIT_SOCKET", "/tmp/x.sock"),
            ("CACHEKIT_INSTANCE", "dev"),
            ("CACHEKIT_NAMESPACE", ""),
        ]
        .into();
        let o = ClientOptions::from_vars(|k| vars.get(k).map(|v| v.to_string()));
        assert_eq!(o.socket, Some(PathBuf::from("/tmp/x.sock")));
        assert_eq!(o.instance, "dev");
        assert_eq!(o.namespace, "default", "empty variables are ignored");
        assert_eq!(o.resolve_socket(), PathBuf::from("/tmp/x.sock"));
    }

    #[test]
    fn builder_and_validation() {
        let o = ClientOptions::new().instance("dev").namespace("app");
        o.validate().unwrap();
        assert!(matches!(
            ClientOptions::new().instance("../etc").validate(),
            Err(Error::InvalidArgument { .. })
        ));
        // An explicit socket makes the instance irrelevant.
        ClientOptions::new()
            .instance("../etc")
            .socket("/tmp/s.sock")
            .validate()
            .unwrap();
        assert!(matches!(
            ClientOptions::new().namespace("").validate(),
            Err(Error::InvalidArgument { .. })
        ));
        assert!(matches!(
            ClientOptions::new().namespace("n".repeat(128)).validate(),
            Err(Error::TooLarge { .. })
        ));
        assert!(ClientOptions::new().pool_size(0).validate().is_err());
        assert!(ClientOptions::new()
            .request_timeout(Duration::ZERO)
            .validate()
            .is_err());
        let long = ClientOptions::new().client_name("é".repeat(200));
        assert!(long.client_name.len() <= 255);
    }

    #[test]
    fn redis_options() {
        let o = ClientOptions::new();
        assert_eq!(o.redis_url, None);
        assert!(o.redis_fallback);
        assert_eq!(o.redis_target().unwrap().map(|t| t.urls), None);
        let o = o.redis_url("redis://app:hunter2@10.0.0.1:6379");
        o.validate().unwrap();
        assert!(o.redis_target().unwrap().is_some());
        let shown = format!("{o:?}");
        assert!(!shown.contains("hunter2"), "{shown}");
        assert!(shown.contains("app:***@"), "{shown}");
        assert_eq!(
            o.clone()
                .redis_fallback(false)
                .redis_target()
                .unwrap()
                .map(|t| t.urls),
            None
        );
        assert!(matches!(
            ClientOptions::new().redis_url("nope://").validate(),
            Err(Error::InvalidArgument { .. })
        ));
        assert!(ClientOptions::new()
            .redis_url("redis://a:1,redis://b:2")
            .validate()
            .is_err());
        ClientOptions::new()
            .redis_url("redis://a:1,redis://b:2")
            .redis_cluster(true)
            .validate()
            .unwrap();
        let vars: HashMap<&str, &str> = [("CACHEKIT_REDIS_URL", "redis://r:6379")].into();
        let o = ClientOptions::from_vars(|k| vars.get(k).map(|v| v.to_string()));
        assert_eq!(o.redis_url.as_deref(), Some("redis://r:6379"));
    }

    #[test]
    fn set_options_builder() {
        let o = SetOptions::new()
            .ttl(Duration::from_secs(1))
            .tags(["a", "b/c"])
            .tag("d");
        assert_eq!(o.ttl, Some(Duration::from_secs(1)));
        assert_eq!(o.grace, Duration::ZERO);
        assert_eq!(o.tags, ["a", "b/c", "d"]);
    }

    #[test]
    fn durations_round_up_to_a_millisecond() {
        assert_eq!(duration_ms(Duration::ZERO), 0);
        assert_eq!(duration_ms(Duration::from_micros(10)), 1);
        assert_eq!(duration_ms(Duration::from_millis(1500)), 1500);
        assert_eq!(duration_ms(Duration::MAX), u64::MAX);
    }

    #[test]
    fn a_zero_ttl_means_never_expires() {
        assert_eq!(ttl_ms(None), None);
        assert_eq!(ttl_ms(Some(Duration::ZERO)), None);
        assert_eq!(ttl_ms(Some(Duration::from_micros(10))), Some(1));
        assert_eq!(ttl_ms(Some(Duration::from_secs(2))), Some(2000));
    }
}
