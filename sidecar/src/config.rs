//! Configuration: flags, then `CACHEKIT_*` environment variables, then an optional TOML
//! file (`--config`), then built-in defaults. Every setting works with no file at all.

use anyhow::{bail, Context, Result};
use clap::Parser;
use serde::Deserialize;
use std::path::{Path, PathBuf};
use std::time::Duration;

use cachekit_proto::duration::format_duration;

/// cachekitd: the per-host cache daemon. Owns the shared-memory table; clients read hits
/// from it directly and send writes and misses here over a Unix socket.
#[derive(Parser, Debug, Default)]
#[command(version, about)]
pub struct Flags {
    /// TOML configuration file (keys as the long flags, with '_' for '-').
    #[arg(long, env = "CACHEKIT_CONFIG")]
    pub config: Option<PathBuf>,
    /// Runtime directory for the socket and lock file
    /// [default: /run/cachekit if writable, else $XDG_RUNTIME_DIR/cachekit, else /tmp/cachekit-UID].
    #[arg(long, env = "CACHEKIT_DIR")]
    pub dir: Option<PathBuf>,
    /// Instance name: several daemons can run side by side under different names [default: default].
    #[arg(long, env = "CACHEKIT_INSTANCE")]
    pub instance: Option<String>,
    /// Memory for entries, e.g. 64MiB, 1GiB [default: 64MiB].
    #[arg(long, env = "CACHEKIT_MEMORY")]
    pub memory: Option<String>,
    /// Largest value accepted, e.g. 1MiB [default: 1MiB; at most 16MiB-65].
    #[arg(long, env = "CACHEKIT_MAX_VALUE_BYTES")]
    pub max_value_bytes: Option<String>,
    /// Number of tag-generation counters, a power of two [default: 262144].
    #[arg(long, env = "CACHEKIT_TAG_COUNTERS")]
    pub tag_counters: Option<u64>,
    /// Socket file mode, octal [default: 0660].
    #[arg(long, env = "CACHEKIT_SOCKET_MODE")]
    pub socket_mode: Option<String>,
    /// Group that owns the socket (name or gid) [default: the daemon's group].
    #[arg(long, env = "CACHEKIT_SOCKET_GROUP")]
    pub socket_group: Option<String>,
    /// Uids allowed to write, comma-separated, '' for none. Giving writer_uids or writer_gids
    /// replaces both defaults [default: the daemon's uid, if neither is given].
    #[arg(long, env = "CACHEKIT_WRITER_UIDS")]
    pub writer_uids: Option<String>,
    /// Gids allowed to write (primary or supplementary group of the client), comma-separated,
    /// '' for none. Giving writer_uids or writer_gids replaces both defaults [default: the
    /// daemon's gid, if neither is given].
    #[arg(long, env = "CACHEKIT_WRITER_GIDS")]
    pub writer_gids: Option<String>,
    /// Heartbeat interval: milliseconds, or a duration with a unit (250ms, 1.5s, 2m) as every
    /// *_ms setting takes [default: 250].
    #[arg(long, env = "CACHEKIT_HEARTBEAT_MS", value_parser = millis_setting)]
    pub heartbeat_ms: Option<u64>,
    /// Heartbeat age after which clients stop trusting the segment, ms [default: 2000].
    #[arg(long, env = "CACHEKIT_HEARTBEAT_TIMEOUT_MS", value_parser = millis_setting)]
    pub heartbeat_timeout_ms: Option<u64>,
    /// Most client connections at once [default: 1024].
    #[arg(long, env = "CACHEKIT_MAX_CONNECTIONS")]
    pub max_connections: Option<usize>,
    /// Most connections one uid that may not write can hold [default: a quarter of
    /// max_connections].
    #[arg(long, env = "CACHEKIT_MAX_CONNECTIONS_PER_UID")]
    pub max_connections_per_uid: Option<usize>,
    /// The last this many of max_connections are only for peers that may write [default: 64,
    /// or a quarter of max_connections if that is fewer].
    #[arg(long, env = "CACHEKIT_WRITER_RESERVED_CONNECTIONS")]
    pub writer_reserved_connections: Option<usize>,
    /// A connection with no request for this many ms is closed (clients reconnect by
    /// themselves); 0 = never [default: 60000].
    #[arg(long, env = "CACHEKIT_IDLE_TIMEOUT_MS", value_parser = millis_setting)]
    pub idle_timeout_ms: Option<u64>,
    /// Once a frame has started, the rest must arrive within this many ms (or 5s) [default: 5000].
    #[arg(long, env = "CACHEKIT_FRAME_TIMEOUT_MS", value_parser = millis_setting)]
    pub frame_timeout_ms: Option<u64>,
    /// Log filter (error, warn, info, debug, trace, or a tracing filter) [default: info].
    #[arg(long, env = "CACHEKIT_LOG")]
    pub log: Option<String>,
    /// Log format: text or json [default: text].
    #[arg(long, env = "CACHEKIT_LOG_FORMAT")]
    pub log_format: Option<String>,
    /// Redis, the second tier shared by every host: redis://[user:password@]host:port[/db],
    /// rediss://… (TLS) or unix:///path; for a cluster, seed URLs separated by commas
    /// [default: none, the daemon works alone].
    // The text above is clap's --help, not Markdown: `[user:password@]` is no doc link.
    #[allow(rustdoc::broken_intra_doc_links)]
    #[arg(long, env = "CACHEKIT_REDIS_URL")]
    pub redis_url: Option<String>,
    /// Speak the Redis Cluster protocol to redis_url.
    #[arg(long, env = "CACHEKIT_REDIS_CLUSTER")]
    pub redis_cluster: Option<bool>,
    /// Timeout of every Redis call (connect and answer), ms [default: 250].
    #[arg(long, env = "CACHEKIT_REDIS_TIMEOUT_MS", value_parser = millis_setting)]
    pub redis_timeout_ms: Option<u64>,
    /// Writes: "through" (acknowledged once Redis has them) or "behind" (acknowledged at
    /// once, sent to Redis in order by a background task) [default: through].
    #[arg(long, env = "CACHEKIT_REDIS_WRITE_MODE")]
    pub redis_write_mode: Option<String>,
    /// Consecutive Redis failures that open the circuit breaker [default: 5].
    #[arg(long, env = "CACHEKIT_REDIS_BREAKER_FAILURES")]
    pub redis_breaker_failures: Option<u32>,
    /// How long the breaker stays open before one probe, ms [default: 1000].
    #[arg(long, env = "CACHEKIT_REDIS_BREAKER_OPEN_MS", value_parser = millis_setting)]
    pub redis_breaker_open_ms: Option<u64>,
    /// Most writes waiting for Redis (write-behind, or while it is unreachable) [default: 10000].
    #[arg(long, env = "CACHEKIT_REDIS_QUEUE")]
    pub redis_queue: Option<usize>,
    /// Events kept per namespace stream (XADD MAXLEN ~) [default: 100000].
    #[arg(long, env = "CACHEKIT_REDIS_STREAM_MAXLEN")]
    pub redis_stream_maxlen: Option<u64>,
    /// How often every followed stream is read even without a doorbell, ms [default: 1000].
    #[arg(long, env = "CACHEKIT_REDIS_POLL_MS", value_parser = millis_setting)]
    pub redis_poll_ms: Option<u64>,
    /// After this long without reading the streams, clear the followed namespaces (and again
    /// every as long while it lasts), so no other host's invalidation is missed for longer;
    /// 0 = never clear [default: 30000].
    #[arg(long, env = "CACHEKIT_REDIS_STALE_BOUND_MS", value_parser = millis_setting)]
    pub redis_stale_bound_ms: Option<u64>,
    /// How often each followed namespace gets one step of the Redis sweep (1000 keys
    /// visited: dead counters and invalidated records deleted, old records restamped so the
    /// floor can rise), ms; 0 = never sweep [default: 1000].
    #[arg(long, env = "CACHEKIT_REDIS_SWEEP_MS")]
    pub redis_sweep_ms: Option<u64>,
    /// Start with an empty table even when the previous daemon's segment is found (it is
    /// dropped) [default: false, a warm restart carries its entries].
    #[arg(long, env = "CACHEKIT_COLD", num_args = 0..=1, default_missing_value = "true")]
    pub cold: Option<bool>,
    /// Snapshot file: the live entries are written there at a clean stop and every
    /// snapshot_interval_ms (atomically: a temporary file, fsync, rename), and loaded at start
    /// when no previous daemon's segment is found (a reboot) [default: none].
    #[arg(long, env = "CACHEKIT_SNAPSHOT")]
    pub snapshot: Option<std::path::PathBuf>,
    /// Milliseconds between snapshots while running; 0 = only at a clean stop
    /// [default: 300000].
    #[arg(long, env = "CACHEKIT_SNAPSHOT_INTERVAL_MS")]
    pub snapshot_interval_ms: Option<u64>,
    /// Run as the instance's keeper of the segment's memfds (started by cachekitd itself).
    #[arg(long, hide = true)]
    pub keeper: bool,
    /// Serve OpenMetrics at http://ADDR/metrics, e.g. 127.0.0.1:9464 [default: off]. A
    /// non-loopback address also needs metrics_allow_remote.
    #[arg(long, env = "CACHEKIT_METRICS_LISTEN")]
    pub metrics_listen: Option<String>,
    /// Allow metrics_listen on an address other hosts can reach (the metrics name the
    /// namespaces in use).
    #[arg(long, env = "CACHEKIT_METRICS_ALLOW_REMOTE")]
    pub metrics_allow_remote: Option<bool>,
    /// The settings above that came from a `CACHEKIT_*` variable rather than a flag (by
    /// field name), so that errors name the setting as the user gave it.
    #[arg(skip)]
    pub from_env: Vec<String>,
}

impl Flags {
    /// The process's flags and `CACHEKIT_*` variables (exits with clap's usage error).
    pub fn from_command_line() -> Flags {
        use clap::{CommandFactory, FromArgMatches};
        let matches = Flags::command().get_matches();
        let mut flags = Flags::from_arg_matches(&matches).unwrap_or_else(|e| e.exit());
        flags.from_env = matches
            .ids()
            .filter(|id| {
                matches.value_source(id.as_str()) == Some(clap::parser::ValueSource::EnvVariable)
            })
            .map(|id| id.as_str().to_string())
            .collect();
        flags
    }
}

/// A setting named as the user gave it: `--memory`, `CACHEKIT_MEMORY`, or `memory in FILE`.
/// `in_flags`: whether a flag or the environment gave it (`from_env` says which); else the
/// file did (`in_file`), or nothing: then it is its default.
fn origin(
    from_env: &[String],
    file: Option<&Path>,
    name: &str,
    in_flags: bool,
    in_file: bool,
) -> String {
    match (in_flags, in_file, file) {
        (true, _, _) if from_env.iter().any(|e| e == name) => {
            format!("CACHEKIT_{}", name.to_ascii_uppercase())
        }
        (true, _, _) => format!("--{}", name.replace('_', "-")),
        (false, true, Some(file)) => format!("{name} in {}", file.display()),
        _ => format!("{name} (default)"),
    }
}

/// A `*_ms` setting: milliseconds as a bare integer (the form these settings always took), or
/// a duration with its unit in the grammar of every setting (`250ms`, `1.5s`, `2m`), rounded
/// up to a whole millisecond.
fn millis_setting(text: &str) -> std::result::Result<u64, String> {
    let d =
        cachekit_proto::duration::parse_duration(text, cachekit_proto::duration::BareUnit::Millis)?;
    let ms = d.as_nanos().div_ceil(1_000_000);
    u64::try_from(ms).map_err(|_| format!("{text:?} is too long"))
}

/// [`millis_setting`] for a TOML key: an integer (ms) or a string with a unit.
fn millis_in_file<'de, D: serde::Deserializer<'de>>(
    de: D,
) -> std::result::Result<Option<u64>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Millis {
        Integer(u64),
        Text(String),
    }
    match Millis::deserialize(de)? {
        Millis::Integer(ms) => Ok(Some(ms)),
        Millis::Text(t) => millis_setting(&t)
            .map(Some)
            .map_err(serde::de::Error::custom),
    }
}

/// The same settings as a TOML file.
#[derive(Deserialize, Debug, Default)]
#[serde(deny_unknown_fields)]
struct FileConfig {
    dir: Option<PathBuf>,
    instance: Option<String>,
    memory: Option<String>,
    max_value_bytes: Option<String>,
    tag_counters: Option<u64>,
    socket_mode: Option<String>,
    socket_group: Option<String>,
    writer_uids: Option<Vec<u32>>,
    writer_gids: Option<Vec<u32>>,
    #[serde(default, deserialize_with = "millis_in_file")]
    heartbeat_ms: Option<u64>,
    #[serde(default, deserialize_with = "millis_in_file")]
    heartbeat_timeout_ms: Option<u64>,
    max_connections: Option<usize>,
    max_connections_per_uid: Option<usize>,
    writer_reserved_connections: Option<usize>,
    #[serde(default, deserialize_with = "millis_in_file")]
    idle_timeout_ms: Option<u64>,
    #[serde(default, deserialize_with = "millis_in_file")]
    frame_timeout_ms: Option<u64>,
    log: Option<String>,
    log_format: Option<String>,
    redis_url: Option<String>,
    redis_cluster: Option<bool>,
    #[serde(default, deserialize_with = "millis_in_file")]
    redis_timeout_ms: Option<u64>,
    redis_write_mode: Option<String>,
    redis_breaker_failures: Option<u32>,
    #[serde(default, deserialize_with = "millis_in_file")]
    redis_breaker_open_ms: Option<u64>,
    redis_queue: Option<usize>,
    redis_stream_maxlen: Option<u64>,
    #[serde(default, deserialize_with = "millis_in_file")]
    redis_poll_ms: Option<u64>,
    #[serde(default, deserialize_with = "millis_in_file")]
    redis_stale_bound_ms: Option<u64>,
    redis_sweep_ms: Option<u64>,
    cold: Option<bool>,
    metrics_listen: Option<String>,
    metrics_allow_remote: Option<bool>,
    snapshot: Option<std::path::PathBuf>,
    snapshot_interval_ms: Option<u64>,
}

/// The resolved configuration.
#[derive(Debug, Clone)]
pub struct Config {
    pub dir: Option<PathBuf>,
    pub instance: String,
    pub memory_bytes: u64,
    /// Where `memory_bytes` came from, as the user gave it (`--memory 1TiB`), for messages.
    pub memory_setting: String,
    pub max_value_bytes: u64,
    pub tag_counters: u64,
    pub socket_mode: u32,
    pub socket_group: Option<u32>,
    pub writer_uids: Vec<u32>,
    pub writer_gids: Vec<u32>,
    pub heartbeat: Duration,
    pub heartbeat_timeout: Duration,
    pub max_connections: usize,
    /// See [`Connections`].
    pub connections: Connections,
    pub frame_timeout: Duration,
    pub log: String,
    pub log_json: bool,
    /// The Redis tier, if configured.
    pub redis: Option<RedisConfig>,
    /// Start empty even when the previous daemon's segment is found (see `warm.rs`).
    pub cold: bool,
    /// Where to serve OpenMetrics (`metrics.rs`); `None`: off.
    pub metrics_listen: Option<std::net::SocketAddr>,
    /// The snapshot file, if any (see `snapshot.rs`).
    pub snapshot: Option<std::path::PathBuf>,
    /// Between two snapshots while running; `None` = only at a clean stop.
    pub snapshot_interval: Option<Duration>,
}

/// Who may hold how many connections, and for how long without a request
/// (`max_connections` itself stays in `Config`).
#[derive(Debug, Clone, Copy)]
pub struct Connections {
    /// Most connections one uid that may not write can hold.
    pub per_uid: usize,
    /// The last this many of `max_connections` are for peers that may write.
    pub writer_reserved: usize,
    /// A connection with no request for this long is closed; `None`: never.
    pub idle_timeout: Option<Duration>,
}

/// The shortest `idle_timeout_ms` accepted: shorter would close a busy client's pooled
/// connections between its requests (each reconnect costs a HELLO), for no gain.
pub const MIN_IDLE_TIMEOUT_MS: u64 = 100;

impl Connections {
    /// Resolves the three connection settings, each as given (flag, else file) with the name
    /// the user gave it by, against `max_connections`.
    fn resolve(
        (per_uid, per_uid_from): (Option<usize>, String),
        (writer_reserved, reserved_from): (Option<usize>, String),
        (idle_ms, idle_from): (Option<u64>, String),
        max_connections: usize,
    ) -> Result<Connections> {
        let per_uid = per_uid.unwrap_or((max_connections / 4).max(1));
        if per_uid == 0 || per_uid > max_connections {
            bail!("max_connections_per_uid = {per_uid} ({per_uid_from}) must be between 1 and max_connections = {max_connections}");
        }
        let writer_reserved = writer_reserved.unwrap_or((max_connections / 4).min(64));
        if writer_reserved >= max_connections {
            bail!("writer_reserved_connections = {writer_reserved} ({reserved_from}) must be below max_connections = {max_connections}, so that peers that may not write get at least one connection");
        }
        let idle_ms = idle_ms.unwrap_or(60_000);
        if idle_ms != 0 && idle_ms < MIN_IDLE_TIMEOUT_MS {
            bail!("idle_timeout_ms = {idle_ms} ({idle_from}) must be 0 (never) or at least {MIN_IDLE_TIMEOUT_MS}");
        }
        Ok(Connections {
            per_uid,
            writer_reserved,
            idle_timeout: (idle_ms != 0).then(|| Duration::from_millis(idle_ms)),
        })
    }
}

/// How writes reach Redis.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WriteMode {
    /// Acknowledged once Redis has the write (while Redis is healthy).
    Through,
    /// Acknowledged once applied on this host; sent to Redis in order by a background task.
    Behind,
}

/// The Redis tier's settings.
#[derive(Debug, Clone)]
pub struct RedisConfig {
    pub target: cachekit_redis::Target,
    pub write_mode: WriteMode,
    pub breaker_failures: u32,
    pub breaker_open: Duration,
    pub queue: usize,
    pub stream_maxlen: u64,
    pub poll: Duration,
    pub stale_bound: Option<Duration>,
    /// One sweep step per followed namespace this often; `None` = no sweep.
    pub sweep: Option<Duration>,
}

impl Config {
    pub fn resolve(mut flags: Flags) -> Result<Config> {
        let from_env = std::mem::take(&mut flags.from_env);
        let config_file = flags.config.clone();
        let named = |name: &str, in_flags: bool, in_file: bool| {
            origin(&from_env, config_file.as_deref(), name, in_flags, in_file)
        };
        let file = match &flags.config {
            Some(p) => {
                let text = std::fs::read_to_string(p)
                    .with_context(|| format!("reading config file {}", p.display()))?;
                toml::from_str::<FileConfig>(&text)
                    .with_context(|| format!("parsing config file {}", p.display()))?
            }
            None => FileConfig::default(),
        };
        let instance = flags
            .instance
            .or(file.instance)
            .unwrap_or_else(|| "default".into());
        cachekit_proto::paths::validate_instance(&instance).map_err(anyhow::Error::msg)?;
        let memory_from = named("memory", flags.memory.is_some(), file.memory.is_some());
        let memory_text = flags
            .memory
            .clone()
            .or(file.memory)
            .unwrap_or_else(|| "64MiB".into());
        let memory_bytes = parse_size(&memory_text).context(memory_from.clone())?;
        let max_value_from = named(
            "max_value_bytes",
            flags.max_value_bytes.is_some(),
            file.max_value_bytes.is_some(),
        );
        let max_value_bytes = parse_size(
            &flags
                .max_value_bytes
                .clone()
                .or(file.max_value_bytes)
                .unwrap_or_else(|| "1MiB".into()),
        )
        .context(max_value_from.clone())?;
        // The daemon stores encoded values up to 64 bytes larger than this.
        let ceiling = (cachekit_shm::VALUE_LEN_CEILING - cachekit_proto::ENVELOPE_HEADROOM) as u64;
        if max_value_bytes == 0 || max_value_bytes > ceiling {
            bail!("max_value_bytes = {max_value_bytes} ({max_value_from}) must be between 1 and {ceiling} (16 MiB - 65)");
        }
        let tag_counters_from = named(
            "tag_counters",
            flags.tag_counters.is_some(),
            file.tag_counters.is_some(),
        );
        let tag_counters = flags.tag_counters.or(file.tag_counters).unwrap_or(1 << 18);
        if !tag_counters.is_power_of_two() || tag_counters > 1 << 32 {
            bail!("{tag_counters_from} {tag_counters} must be a power of two no larger than 4294967296");
        }
        let mode_from = named(
            "socket_mode",
            flags.socket_mode.is_some(),
            file.socket_mode.is_some(),
        );
        let mode_text = flags
            .socket_mode
            .or(file.socket_mode)
            .unwrap_or_else(|| "0660".into());
        let socket_mode = u32::from_str_radix(mode_text.trim_start_matches("0o"), 8)
            .ok()
            .filter(|m| *m <= 0o777)
            .with_context(|| {
                format!("{mode_from} {mode_text:?} is not an octal file mode like 0660")
            })?;
        let socket_group = match flags.socket_group.or(file.socket_group) {
            Some(g) => Some(resolve_group(&g)?),
            None => None,
        };
        let heartbeat =
            Duration::from_millis(flags.heartbeat_ms.or(file.heartbeat_ms).unwrap_or(250));
        let heartbeat_timeout = Duration::from_millis(
            flags
                .heartbeat_timeout_ms
                .or(file.heartbeat_timeout_ms)
                .unwrap_or(2000),
        );
        if heartbeat.is_zero() || heartbeat_timeout < heartbeat * 2 {
            let timeout_from = named(
                "heartbeat_timeout_ms",
                flags.heartbeat_timeout_ms.is_some(),
                file.heartbeat_timeout_ms.is_some(),
            );
            let heartbeat_from = named(
                "heartbeat_ms",
                flags.heartbeat_ms.is_some(),
                file.heartbeat_ms.is_some(),
            );
            bail!(
                "{timeout_from} ({}) must be at least twice {heartbeat_from} ({}), and the heartbeat above 0",
                format_duration(heartbeat_timeout),
                format_duration(heartbeat)
            );
        }
        let (writer_uids, writer_gids) = writers(
            match &flags.writer_uids {
                Some(text) => Some(parse_ids(text, &named("writer_uids", true, false))?),
                None => file.writer_uids,
            },
            match &flags.writer_gids {
                Some(text) => Some(parse_ids(text, &named("writer_gids", true, false))?),
                None => file.writer_gids,
            },
        );
        let log_format_from = named(
            "log_format",
            flags.log_format.is_some(),
            file.log_format.is_some(),
        );
        let max_connections = flags
            .max_connections
            .or(file.max_connections)
            .unwrap_or(1024)
            .max(1);
        let connections = Connections::resolve(
            (
                flags
                    .max_connections_per_uid
                    .or(file.max_connections_per_uid),
                named(
                    "max_connections_per_uid",
                    flags.max_connections_per_uid.is_some(),
                    file.max_connections_per_uid.is_some(),
                ),
            ),
            (
                flags
                    .writer_reserved_connections
                    .or(file.writer_reserved_connections),
                named(
                    "writer_reserved_connections",
                    flags.writer_reserved_connections.is_some(),
                    file.writer_reserved_connections.is_some(),
                ),
            ),
            (
                flags.idle_timeout_ms.or(file.idle_timeout_ms),
                named(
                    "idle_timeout_ms",
                    flags.idle_timeout_ms.is_some(),
                    file.idle_timeout_ms.is_some(),
                ),
            ),
            max_connections,
        )?;
        let stale_names = (
            named(
                "redis_stale_bound_ms",
                flags.redis_stale_bound_ms.is_some(),
                file.redis_stale_bound_ms.is_some(),
            ),
            named(
                "redis_poll_ms",
                flags.redis_poll_ms.is_some(),
                file.redis_poll_ms.is_some(),
            ),
        );
        let log_format = flags
            .log_format
            .or(file.log_format)
            .unwrap_or_else(|| "text".into());
        if log_format != "text" && log_format != "json" {
            bail!("{log_format_from} {log_format:?}: use text or json");
        }
        let metrics_listen = crate::metrics::resolve_listen(
            flags
                .metrics_listen
                .as_deref()
                .or(file.metrics_listen.as_deref()),
            flags
                .metrics_allow_remote
                .or(file.metrics_allow_remote)
                .unwrap_or(false),
            &named(
                "metrics_listen",
                flags.metrics_listen.is_some(),
                file.metrics_listen.is_some(),
            ),
        )?;
        Config {
            metrics_listen,
            dir: flags.dir.or(file.dir),
            instance,
            memory_bytes,
            memory_setting: format!("{memory_from} {memory_text}"),
            max_value_bytes,
            tag_counters,
            socket_mode,
            socket_group,
            writer_uids,
            writer_gids,
            heartbeat,
            heartbeat_timeout,
            max_connections,
            connections,
            frame_timeout: Duration::from_millis(
                flags
                    .frame_timeout_ms
                    .or(file.frame_timeout_ms)
                    .unwrap_or(5000)
                    .max(1),
            ),
            log: flags.log.or(file.log).unwrap_or_else(|| "info".into()),
            log_json: log_format == "json",
            cold: flags.cold.or(file.cold).unwrap_or(false),
            snapshot: flags.snapshot.clone().or(file.snapshot),
            snapshot_interval: match flags
                .snapshot_interval_ms
                .or(file.snapshot_interval_ms)
                .unwrap_or(300_000)
            {
                0 => None,
                ms => Some(Duration::from_millis(ms)),
            },
            redis: match flags
                .redis_url
                .clone()
                .or(file.redis_url.clone())
                .filter(|u| !u.is_empty())
            {
                None => None,
                Some(url) => Some(RedisConfig {
                    target: cachekit_redis::Target::parse(
                        &url,
                        flags.redis_cluster.or(file.redis_cluster).unwrap_or(false),
                        Duration::from_millis(
                            flags
                                .redis_timeout_ms
                                .or(file.redis_timeout_ms)
                                .unwrap_or(250),
                        ),
                    )
                    .context(named(
                        "redis_url",
                        flags.redis_url.is_some(),
                        file.redis_url.is_some(),
                    ))?,
                    write_mode: match flags
                        .redis_write_mode
                        .as_deref()
                        .or(file.redis_write_mode.as_deref())
                        .unwrap_or("through")
                    {
                        "through" => WriteMode::Through,
                        "behind" => WriteMode::Behind,
                        other => bail!(
                            "{} {other:?}: use through or behind",
                            named(
                                "redis_write_mode",
                                flags.redis_write_mode.is_some(),
                                file.redis_write_mode.is_some()
                            )
                        ),
                    },
                    breaker_failures: flags
                        .redis_breaker_failures
                        .or(file.redis_breaker_failures)
                        .unwrap_or(5)
                        .max(1),
                    breaker_open: Duration::from_millis(
                        flags
                            .redis_breaker_open_ms
                            .or(file.redis_breaker_open_ms)
                            .unwrap_or(1000)
                            .max(1),
                    ),
                    queue: flags
                        .redis_queue
                        .or(file.redis_queue)
                        .unwrap_or(10_000)
                        .max(1),
                    stream_maxlen: flags
                        .redis_stream_maxlen
                        .or(file.redis_stream_maxlen)
                        .unwrap_or(100_000)
                        .max(1),
                    poll: Duration::from_millis(
                        flags
                            .redis_poll_ms
                            .or(file.redis_poll_ms)
                            .unwrap_or(1000)
                            .max(10),
                    ),
                    stale_bound: match flags
                        .redis_stale_bound_ms
                        .or(file.redis_stale_bound_ms)
                        .unwrap_or(30_000)
                    {
                        0 => None,
                        ms => Some(Duration::from_millis(ms)),
                    },
                    sweep: match flags.redis_sweep_ms.or(file.redis_sweep_ms).unwrap_or(1000) {
                        0 => None,
                        ms => Some(Duration::from_millis(ms.max(10))),
                    },
                }),
            },
        }
        .check_redis(stale_names)
    }

    /// Checks the Redis settings against each other; `(stale_from, poll_from)` name the two
    /// settings as the user gave them.
    fn check_redis(self, (stale_from, poll_from): (String, String)) -> Result<Config> {
        if let Some(r) = &self.redis {
            if r.stale_bound.is_some_and(|b| b < r.poll * 2) {
                bail!(
                    "{stale_from} ({}) must be at least twice {poll_from} ({}), or 0 to never clear",
                    format_duration(r.stale_bound.unwrap_or_default()),
                    format_duration(r.poll)
                );
            }
        }
        Ok(self)
    }

    /// The runtime directory: the configured one, or the first candidate we can create
    /// and write.
    pub fn runtime_dir(&self) -> Result<PathBuf> {
        if let Some(d) = &self.dir {
            ensure_dir(d)?;
            return Ok(d.clone());
        }
        let mut errors = Vec::new();
        for d in cachekit_proto::paths::candidate_dirs() {
            match ensure_dir(&d) {
                Ok(()) => return Ok(d),
                Err(e) => errors.push(format!("{}: {e:#}", d.display())),
            }
        }
        bail!(
            "no usable runtime directory ({}); pass --dir",
            errors.join("; ")
        )
    }
}

/// Who may write: `(writer_uids, writer_gids)` from the lists given (flag, environment or
/// file, each list resolved on its own). Neither given: the daemon's own uid and gid. Either
/// given: both exactly as given, the one not given empty; so `--writer-uids 0` lets root
/// alone write, not also whoever has the daemon's group.
fn writers(uids: Option<Vec<u32>>, gids: Option<Vec<u32>>) -> (Vec<u32>, Vec<u32>) {
    match (uids, gids) {
        (None, None) => (
            vec![rustix::process::getuid().as_raw()],
            vec![rustix::process::getgid().as_raw()],
        ),
        (uids, gids) => (uids.unwrap_or_default(), gids.unwrap_or_default()),
    }
}

/// A comma-separated list of ids; empty (or only spaces) for none.
fn parse_ids(text: &str, setting: &str) -> Result<Vec<u32>> {
    text.split(',')
        .map(str::trim)
        .filter(|t| !t.is_empty())
        .map(|t| {
            t.parse().with_context(|| {
                format!("{setting} {text:?}: {t:?} is not a numeric id; give ids like 0,1000 (or '' for none)")
            })
        })
        .collect()
}

/// Creates the runtime directory if needed, and checks that nobody else controls it: it holds
/// the socket, the locks and the failed-write journal, so a directory another user owns (say
/// `/tmp/cachekit-UID` made first by someone else), or one others may write without the sticky
/// bit, would let them replace the journal and undo failed writes.
fn ensure_dir(d: &Path) -> Result<()> {
    use std::os::unix::fs::{MetadataExt, PermissionsExt};
    if !d.exists() {
        std::fs::create_dir_all(d).with_context(|| format!("creating {}", d.display()))?;
        // Whatever the umask: a directory this daemon made is written by it alone.
        std::fs::set_permissions(d, std::fs::Permissions::from_mode(0o755))
            .with_context(|| format!("setting the mode of {}", d.display()))?;
    }
    rustix::fs::access(d, rustix::fs::Access::WRITE_OK)
        .with_context(|| format!("{} is not writable", d.display()))?;
    let meta = std::fs::metadata(d).with_context(|| format!("reading {}", d.display()))?;
    let me = rustix::process::geteuid().as_raw();
    if meta.uid() != me && meta.uid() != 0 {
        bail!(
            "{} is owned by uid {}, not by cachekitd's uid {me} or root: another user may have made it; remove it, or pass --dir with a directory of your own",
            d.display(),
            meta.uid()
        );
    }
    let mode = meta.mode() & 0o7777;
    if mode & 0o022 != 0 && mode & 0o1000 == 0 {
        bail!(
            "{} (mode {mode:04o}) can be written by other users and has no sticky bit, so they could replace what cachekitd keeps there; run `chmod go-w {}`, or pass --dir with a directory of your own",
            d.display(),
            d.display()
        );
    }
    Ok(())
}

fn resolve_group(g: &str) -> Result<u32> {
    if let Ok(gid) = g.parse() {
        return Ok(gid);
    }
    let groups = std::fs::read_to_string("/etc/group").context("reading /etc/group")?;
    groups
        .lines()
        .find_map(|l| {
            let mut f = l.split(':');
            (f.next() == Some(g))
                .then(|| f.nth(1).and_then(|gid| gid.parse().ok()))
                .flatten()
        })
        .with_context(|| format!("no group named {g:?}"))
}

/// Parses `64MiB`, `1G`, `512k`, `1048576` (binary units; `B` optional).
pub fn parse_size(s: &str) -> Result<u64> {
    let t = s.trim();
    let split = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    let n: u64 = num
        .parse()
        .with_context(|| format!("{s:?} is not a size like 64MiB"))?;
    let mult: u64 = match unit
        .trim()
        .to_ascii_lowercase()
        .trim_end_matches('b')
        .trim_end_matches('i')
    {
        "" => 1,
        "k" => 1 << 10,
        "m" => 1 << 20,
        "g" => 1 << 30,
        "t" => 1 << 40,
        _ => bail!("{s:?}: unknown unit {unit:?}; use B, KiB, MiB, GiB or TiB"),
    };
    n.checked_mul(mult)
        .with_context(|| format!("{s:?} is too large"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes() {
        assert_eq!(parse_size("64MiB").unwrap(), 64 << 20);
        assert_eq!(parse_size("1G").unwrap(), 1 << 30);
        assert_eq!(parse_size("512k").unwrap(), 512 << 10);
        assert_eq!(parse_size("100").unwrap(), 100);
        assert_eq!(parse_size("2 MB").unwrap(), 2 << 20);
        assert!(parse_size("12XB").is_err());
        assert!(parse_size("MiB").is_err());
    }

    #[test]
    fn defaults_need_no_file() {
        let c = Config::resolve(Flags::default()).unwrap();
        assert_eq!(c.instance, "default");
        assert_eq!(c.memory_bytes, 64 << 20);
        assert_eq!(c.socket_mode, 0o660);
    }

    #[test]
    fn redis_is_off_by_default_and_checked_when_on() {
        assert!(Config::resolve(Flags::default()).unwrap().redis.is_none());
        let on = |f: Flags| {
            Config::resolve(Flags {
                redis_url: Some("redis://u:pw@127.0.0.1:6379/0".into()),
                ..f
            })
        };
        let c = on(Flags::default()).unwrap().redis.unwrap();
        assert_eq!(c.write_mode, WriteMode::Through);
        assert_eq!(c.stale_bound, Some(Duration::from_secs(30)));
        assert_eq!(c.target.shown, "redis://u:***@127.0.0.1:6379/0");
        let behind = on(Flags {
            redis_write_mode: Some("behind".into()),
            redis_stale_bound_ms: Some(0),
            ..Flags::default()
        })
        .unwrap()
        .redis
        .unwrap();
        assert_eq!(
            (behind.write_mode, behind.stale_bound),
            (WriteMode::Behind, None)
        );
        let bad_mode = on(Flags {
            redis_write_mode: Some("sideways".into()),
            ..Flags::default()
        })
        .unwrap_err();
        assert!(format!("{bad_mode:#}").contains("through or behind"));
        let bad_bound = on(Flags {
            redis_stale_bound_ms: Some(100),
            ..Flags::default()
        })
        .unwrap_err();
        assert!(format!("{bad_bound:#}").contains("redis_poll_ms"));
        let bad_url = Config::resolve(Flags {
            redis_url: Some("http://x".into()),
            ..Flags::default()
        })
        .unwrap_err();
        assert!(format!("{bad_url:#}").contains("redis://"), "{bad_url:#}");
    }

    #[test]
    fn connection_limits_default_from_max_connections_and_are_checked() {
        let c = Config::resolve(Flags::default()).unwrap().connections;
        assert_eq!((c.per_uid, c.writer_reserved), (256, 64));
        assert_eq!(c.idle_timeout, Some(Duration::from_secs(60)));
        let small = Config::resolve(Flags {
            max_connections: Some(8),
            idle_timeout_ms: Some(0),
            ..Flags::default()
        })
        .unwrap()
        .connections;
        assert_eq!(
            (small.per_uid, small.writer_reserved, small.idle_timeout),
            (2, 2, None)
        );
        let refused = |f: Flags, words: &[&str]| {
            let e = format!("{:#}", Config::resolve(f).unwrap_err());
            for w in words {
                assert!(e.contains(w), "{e}");
            }
        };
        refused(
            Flags {
                max_connections_per_uid: Some(0),
                ..Flags::default()
            },
            &["max_connections_per_uid = 0", "--max-connections-per-uid"],
        );
        refused(
            Flags {
                max_connections: Some(4),
                writer_reserved_connections: Some(4),
                ..Flags::default()
            },
            &["writer_reserved_connections = 4", "max_connections = 4"],
        );
        refused(
            Flags {
                idle_timeout_ms: Some(5),
                ..Flags::default()
            },
            &["idle_timeout_ms = 5", "--idle-timeout-ms"],
        );
    }

    #[test]
    fn giving_either_writer_list_replaces_both_defaults() {
        let own = (
            vec![rustix::process::getuid().as_raw()],
            vec![rustix::process::getgid().as_raw()],
        );
        assert_eq!(writers(None, None), own);
        assert_eq!(writers(Some(vec![0]), None), (vec![0], vec![]));
        assert_eq!(writers(None, Some(vec![7])), (vec![], vec![7]));
        assert_eq!(writers(Some(vec![]), Some(vec![])), (vec![], vec![]));
        assert_eq!(parse_ids("", "--writer-gids").unwrap(), Vec::<u32>::new());
        assert_eq!(parse_ids("0, 1000,", "--writer-uids").unwrap(), [0, 1000]);
        let e = parse_ids("0,root", "--writer-uids").unwrap_err();
        assert!(format!("{e:#}").contains("--writer-uids"), "{e:#}");
        let c = Config::resolve(Flags {
            writer_gids: Some(String::new()),
            ..Flags::default()
        })
        .unwrap();
        assert_eq!((c.writer_uids, c.writer_gids), (vec![], vec![]));
    }

    #[test]
    fn a_bad_setting_is_named_as_the_user_gave_it() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("c.toml");
        std::fs::write(&p, "memory = \"abc\"\n").unwrap();
        let from_file = Config::resolve(Flags {
            config: Some(p.clone()),
            ..Flags::default()
        })
        .unwrap_err();
        let e = format!("{from_file:#}");
        assert!(
            e.starts_with(&format!("memory in {}: ", p.display())),
            "{e}"
        );
        let from_env = Config::resolve(Flags {
            memory: Some("abc".into()),
            from_env: vec!["memory".into()],
            ..Flags::default()
        })
        .unwrap_err();
        assert!(
            format!("{from_env:#}").starts_with("CACHEKIT_MEMORY: "),
            "{from_env:#}"
        );
        let from_flag = Config::resolve(Flags {
            memory: Some("abc".into()),
            ..Flags::default()
        })
        .unwrap_err();
        assert!(
            format!("{from_flag:#}").starts_with("--memory: "),
            "{from_flag:#}"
        );
        let c = Config::resolve(Flags::default()).unwrap();
        assert_eq!(c.memory_setting, "memory (default) 64MiB");
    }

    #[test]
    fn millisecond_settings_take_a_duration_with_a_unit_too() {
        let flags = Flags::try_parse_from([
            "cachekitd",
            "--heartbeat-ms",
            "0.1s",
            "--heartbeat-timeout-ms",
            "1500",
            "--redis-poll-ms",
            "2s",
        ])
        .unwrap();
        assert_eq!(
            (
                flags.heartbeat_ms,
                flags.heartbeat_timeout_ms,
                flags.redis_poll_ms
            ),
            (Some(100), Some(1500), Some(2000))
        );
        let e = Flags::try_parse_from(["cachekitd", "--idle-timeout-ms=-1s"]).unwrap_err();
        assert!(e.to_string().contains("--idle-timeout-ms"), "{e}");
        assert!(e.to_string().contains("negative duration"), "{e}");

        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("c.toml");
        std::fs::write(
            &p,
            "heartbeat_ms = \"1.5s\"\nheartbeat_timeout_ms = 6000\nidle_timeout_ms = \"2m\"\n",
        )
        .unwrap();
        let c = Config::resolve(Flags {
            config: Some(p.clone()),
            ..Flags::default()
        })
        .unwrap();
        assert_eq!(c.heartbeat, Duration::from_millis(1500));
        assert_eq!(c.heartbeat_timeout, Duration::from_secs(6));
        assert_eq!(c.connections.idle_timeout, Some(Duration::from_secs(120)));
        std::fs::write(&p, "frame_timeout_ms = \"5 parsecs\"\n").unwrap();
        let e = Config::resolve(Flags {
            config: Some(p.clone()),
            ..Flags::default()
        })
        .unwrap_err();
        let e = format!("{e:#}");
        assert!(
            e.contains("frame_timeout_ms") && e.contains("like 250ms, 1.5s"),
            "{e}"
        );

        // A check between two settings names each as it was given.
        std::fs::write(&p, "heartbeat_ms = \"1s\"\n").unwrap();
        let e = Config::resolve(Flags {
            config: Some(p.clone()),
            heartbeat_timeout_ms: Some(1500),
            from_env: vec!["heartbeat_timeout_ms".into()],
            ..Flags::default()
        })
        .unwrap_err();
        assert_eq!(
            format!("{e:#}"),
            format!(
                "CACHEKIT_HEARTBEAT_TIMEOUT_MS (1.5s) must be at least twice heartbeat_ms in {} (1s), and the heartbeat above 0",
                p.display()
            )
        );
    }

    #[test]
    fn flags_override_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("c.toml");
        std::fs::write(&p, "memory = \"32MiB\"\ninstance = \"fromfile\"\n").unwrap();
        let c = Config::resolve(Flags {
            config: Some(p.clone()),
            instance: Some("flag".into()),
            ..Flags::default()
        })
        .unwrap();
        assert_eq!((c.instance.as_str(), c.memory_bytes), ("flag", 32 << 20));
        std::fs::write(&p, "memroy = \"32MiB\"\n").unwrap();
        let e = Config::resolve(Flags {
            config: Some(p),
            ..Flags::default()
        })
        .unwrap_err();
        assert!(format!("{e:#}").contains("memroy"), "{e:#}");
    }

    #[test]
    fn a_runtime_directory_someone_else_controls_is_refused() {
        use std::os::unix::fs::PermissionsExt;
        let t = tempfile::tempdir().unwrap();
        // Made here whatever the umask: not writable by others.
        let made = t.path().join("made/here");
        let old = rustix::process::umask(rustix::fs::Mode::from_raw_mode(0));
        let r = ensure_dir(&made);
        rustix::process::umask(old);
        r.unwrap();
        assert_eq!(
            std::fs::metadata(&made).unwrap().permissions().mode() & 0o7777,
            0o755
        );
        let ok = t.path().join("mine");
        std::fs::create_dir(&ok).unwrap();
        std::fs::set_permissions(&ok, std::fs::Permissions::from_mode(0o750)).unwrap();
        ensure_dir(&ok).unwrap();
        // Writable by others: refused unless sticky (like /tmp).
        std::fs::set_permissions(&ok, std::fs::Permissions::from_mode(0o777)).unwrap();
        let e = format!("{:#}", ensure_dir(&ok).unwrap_err());
        assert!(e.contains("chmod go-w") && e.contains("0777"), "{e}");
        std::fs::set_permissions(&ok, std::fs::Permissions::from_mode(0o1777)).unwrap();
        ensure_dir(&ok).unwrap();
        // Owned by another user (the tests run as root, which may chown).
        let theirs = t.path().join("theirs");
        std::fs::create_dir(&theirs).unwrap();
        rustix::fs::chown(&theirs, Some(rustix::fs::Uid::from_raw(65534)), None)
            .expect("chown (these tests run as root, as scripts/test does)");
        let e = format!("{:#}", ensure_dir(&theirs).unwrap_err());
        assert!(e.contains("owned by uid 65534"), "{e}");
    }
}
