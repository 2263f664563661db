//! Redis Sentinel: finding the primary of a monitored service through its sentinels.
//!
//! URL: `redis+sentinel://[user:password@]host[:port][,host[:port]…]/service[/db]`, with the
//! optional query `?sentinel_username=…&sentinel_password=…` when the sentinels themselves
//! require a login (port 26379 when omitted). `user:password@` and `db` are for the primary.
//!
//! Discovery follows the Sentinel client protocol: ask each sentinel in turn `SENTINEL
//! GET-MASTER-ADDR-BY-NAME <service>`, connect to the address it names and check with `ROLE`
//! that it is a primary (a sentinel may still name a demoted one for a moment after a
//! failover). Every connection and answer is under the target's timeout: the crate's own
//! `redis::sentinel` connects without one, and a hung sentinel must not hang a client.
//!
//! The stores rediscover after any connection failure, timeout, or `READONLY` answer, so a
//! failover is followed by the next call after the sentinels promoted a replica.

use crate::error::StoreError;
use redis::Value;
use std::time::Duration;

/// The parsed `redis+sentinel://` URL.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SentinelSpec {
    /// The sentinels, as `host:port` (IPv6 hosts in brackets).
    pub sentinels: Vec<String>,
    /// The monitored service (Sentinel's "master name").
    pub service: String,
    /// The primary's database.
    pub db: i64,
    /// `user:password` (as written in the URL, percent-encoded) for the primary, if any.
    userinfo: Option<String>,
    /// `user:password` for the sentinels, if any.
    sentinel_userinfo: Option<String>,
    /// The URL with every password hidden.
    pub shown: String,
}

const SCHEME: &str = "redis+sentinel://";

fn config(url: &str, message: impl Into<String>) -> StoreError {
    StoreError::Config {
        url: url.to_owned(),
        message: message.into(),
    }
}

impl SentinelSpec {
    /// `Ok(None)` when `url` is not a Sentinel URL.
    ///
    /// # Errors
    /// [`StoreError::Config`] when it is one but malformed.
    pub fn parse(url: &str) -> Result<Option<SentinelSpec>, StoreError> {
        if url.starts_with("rediss+sentinel://") {
            return Err(config(
                &crate::target::redact(url),
                "TLS to Sentinel-managed Redis is not supported yet: use redis+sentinel:// on a trusted network",
            ));
        }
        let Some(rest) = url.strip_prefix(SCHEME) else {
            return Ok(None);
        };
        let (rest, query) = match rest.split_once('?') {
            Some((r, q)) => (r, Some(q)),
            None => (rest, None),
        };
        let (authority, path) = rest.split_once('/').unwrap_or((rest, ""));
        let (userinfo, hosts) = match authority.rsplit_once('@') {
            Some((u, h)) => (Some(u.to_owned()), h),
            None => (None, authority),
        };
        let mut sentinel_user = None;
        let mut sentinel_password = None;
        for pair in query.into_iter().flat_map(|q| q.split('&')) {
            match pair.split_once('=') {
                Some(("sentinel_username", v)) => sentinel_user = Some(v.to_owned()),
                Some(("sentinel_password", v)) => sentinel_password = Some(v.to_owned()),
                _ if pair.is_empty() => {}
                _ => {
                    return Err(config(
                        &shown_url(url),
                        format!("unknown query parameter {pair:?} (only sentinel_username and sentinel_password)"),
                    ))
                }
            }
        }
        let sentinel_userinfo = match (sentinel_user, sentinel_password) {
            (None, None) => None,
            (u, p) => Some(format!(
                "{}:{}",
                u.unwrap_or_default(),
                p.unwrap_or_default()
            )),
        };
        let shown = shown_url(url);
        let mut sentinels = Vec::new();
        for h in hosts.split(',').map(str::trim).filter(|h| !h.is_empty()) {
            let has_port = match h.rfind(']') {
                Some(b) => h[b..].contains(':'),
                None => h.contains(':'),
            };
            let hp = if has_port {
                h.to_owned()
            } else {
                format!("{h}:26379")
            };
            let port_ok = hp
                .rsplit_once(':')
                .is_some_and(|(_, p)| p.parse::<u16>().is_ok());
            if !port_ok {
                return Err(config(&shown, format!("bad sentinel address {h:?}")));
            }
            sentinels.push(hp);
        }
        if sentinels.is_empty() {
            return Err(config(
                &shown,
                "no sentinel address: redis+sentinel://host:port[,host:port…]/service",
            ));
        }
        let mut parts = path.split('/').filter(|p| !p.is_empty());
        let service = parts.next().map(str::to_owned).ok_or_else(|| {
            config(
                &shown,
                "no service name: redis+sentinel://host:port[,…]/<service>[/db] (the name the sentinels monitor)",
            )
        })?;
        let db = match parts.next() {
            None => 0,
            Some(d) => d
                .parse::<i64>()
                .map_err(|_| config(&shown, format!("bad database number {d:?}")))?,
        };
        if parts.next().is_some() {
            return Err(config(&shown, "the path is /<service>[/db]"));
        }
        let spec = SentinelSpec {
            sentinels,
            service,
            db,
            userinfo,
            sentinel_userinfo,
            shown,
        };
        // Checked now, so a bad URL is a configuration error at start, not at failover.
        for u in spec.sentinel_urls() {
            redis::Client::open(u.as_str()).map_err(|e| config(&spec.shown, e.to_string()))?;
        }
        redis::Client::open(spec.primary_url("127.0.0.1", 6379).as_str())
            .map_err(|e| config(&spec.shown, e.to_string()))?;
        Ok(Some(spec))
    }

    /// `redis://[login@]host:port` of each sentinel.
    pub fn sentinel_urls(&self) -> Vec<String> {
        let login = self
            .sentinel_userinfo
            .as_ref()
            .map(|u| format!("{u}@"))
            .unwrap_or_default();
        self.sentinels
            .iter()
            .map(|h| format!("redis://{login}{h}"))
            .collect()
    }

    /// `redis://[login@]ip:port/db` of the primary at `ip:port`.
    pub fn primary_url(&self, ip: &str, port: u16) -> String {
        let login = self
            .userinfo
            .as_ref()
            .map(|u| format!("{u}@"))
            .unwrap_or_default();
        let host = if ip.contains(':') && !ip.starts_with('[') {
            format!("[{ip}]")
        } else {
            ip.to_owned()
        };
        format!("redis://{login}{host}:{port}/{}", self.db)
    }
}

/// `url` with the primary's and the sentinels' passwords hidden.
fn shown_url(url: &str) -> String {
    let (base, query) = match url.split_once('?') {
        Some((b, q)) => (b, Some(q)),
        None => (url, None),
    };
    let mut out = crate::target::redact(base);
    if let Some(q) = query {
        let q: Vec<String> = q
            .split('&')
            .map(|p| match p.split_once('=') {
                Some(("sentinel_password", _)) => "sentinel_password=***".to_owned(),
                _ => p.to_owned(),
            })
            .collect();
        out.push('?');
        out.push_str(&q.join("&"));
    }
    out
}

/// The address a sentinel answered `GET-MASTER-ADDR-BY-NAME` with.
/// The primary's address from a sentinel's answer to the lookup; `None` (with why, in
/// `tried`) when that sentinel failed or does not know the service.
fn primary_addr<E: std::fmt::Display>(
    addr: &Result<Value, E>,
    host: &str,
    tried: &mut Vec<String>,
) -> Option<(String, u16)> {
    match addr.as_ref().map(parse_addr) {
        Ok(Some(a)) => Some(a),
        Ok(None) => {
            tried.push(format!("sentinel {host}: no such service"));
            None
        }
        Err(e) => {
            tried.push(format!("sentinel {host}: {e}"));
            None
        }
    }
}

fn parse_addr(v: &Value) -> Option<(String, u16)> {
    let text = |v: &Value| match v {
        Value::BulkString(b) => String::from_utf8(b.clone()).ok(),
        Value::SimpleString(s) => Some(s.clone()),
        _ => None,
    };
    match v {
        Value::Array(a) if a.len() == 2 => Some((text(&a[0])?, text(&a[1])?.parse().ok()?)),
        _ => None,
    }
}

/// Whether a `ROLE` answer is a primary's.
fn is_primary(v: &Value) -> bool {
    match v {
        Value::Array(a) => {
            matches!(a.first(), Some(Value::BulkString(b)) if b == b"master")
                || matches!(a.first(), Some(Value::SimpleString(s)) if s == "master")
        }
        _ => false,
    }
}

#[cfg_attr(not(feature = "async"), allow(dead_code))]
/// `master_replid` from `INFO replication`: the primary's history. A promoted replica starts
/// a new one, so a change means another server's history (a failover, or a restart).
fn replid(info: &str) -> Option<String> {
    info.lines()
        .find_map(|l| l.strip_prefix("master_replid:"))
        .map(|s| s.trim().to_owned())
}

fn lookup_cmd(service: &str) -> redis::Cmd {
    let mut c = redis::cmd("SENTINEL");
    c.arg("GET-MASTER-ADDR-BY-NAME").arg(service);
    c
}

fn not_found(spec: &SentinelSpec, tried: &[String]) -> StoreError {
    StoreError::Unreachable {
        target: spec.shown.clone(),
        message: format!(
            "no sentinel named a reachable primary of service {:?} ({}); a failover may be under way",
            spec.service,
            tried.join("; ")
        ),
    }
}

/// A connection to the primary, found through the sentinels (blocking).
#[cfg(feature = "sync")]
pub(crate) fn connect_blocking(
    spec: &SentinelSpec,
    timeout: Duration,
) -> Result<redis::Connection, StoreError> {
    let open = |url: &str| -> redis::RedisResult<redis::Connection> {
        let c = redis::Client::open(url)?.get_connection_with_timeout(timeout)?;
        c.set_read_timeout(Some(timeout))?;
        c.set_write_timeout(Some(timeout))?;
        Ok(c)
    };
    let mut tried = Vec::new();
    for (url, host) in spec.sentinel_urls().iter().zip(&spec.sentinels) {
        let addr = open(url).and_then(|mut c| lookup_cmd(&spec.service).query::<Value>(&mut c));
        let Some((ip, port)) = primary_addr(&addr, host, &mut tried) else {
            continue;
        };
        let primary = open(&spec.primary_url(&ip, port)).and_then(|mut c| {
            let role: Value = redis::cmd("ROLE").query(&mut c)?;
            Ok((c, role))
        });
        match primary {
            Ok((c, role)) if is_primary(&role) => return Ok(c),
            Ok(_) => tried.push(format!("{ip}:{port} (named by {host}) is not a primary")),
            Err(e) => tried.push(format!("{ip}:{port} (named by {host}): {e}")),
        }
    }
    Err(not_found(spec, &tried))
}

/// The primary found through the sentinels, connected (async).
#[cfg(feature = "async")]
pub(crate) struct Found {
    /// `redis://…` of the primary.
    pub url: String,
    /// A multiplexed connection to it.
    pub conn: redis::aio::MultiplexedConnection,
    /// Its history: `master_replid`, or its address when INFO is not allowed.
    pub identity: String,
}

#[cfg(feature = "async")]
pub(crate) async fn connect_async(
    spec: &SentinelSpec,
    timeout: Duration,
) -> Result<Found, StoreError> {
    let cfg = redis::AsyncConnectionConfig::new()
        .set_connection_timeout(Some(timeout))
        .set_response_timeout(Some(timeout));
    let open = |url: String| {
        let cfg = cfg.clone();
        async move {
            redis::Client::open(url.as_str())?
                .get_multiplexed_async_connection_with_config(&cfg)
                .await
        }
    };
    let mut tried = Vec::new();
    for (url, host) in spec.sentinel_urls().into_iter().zip(&spec.sentinels) {
        let addr = match open(url).await {
            Ok(mut c) => lookup_cmd(&spec.service).query_async::<Value>(&mut c).await,
            Err(e) => Err(e),
        };
        let Some((ip, port)) = primary_addr(&addr, host, &mut tried) else {
            continue;
        };
        let url = spec.primary_url(&ip, port);
        let checked = async {
            let mut c = open(url.clone()).await?;
            let role: Value = redis::cmd("ROLE").query_async(&mut c).await?;
            let info: Option<String> = redis::cmd("INFO")
                .arg("replication")
                .query_async(&mut c)
                .await
                .ok();
            Ok::<_, redis::RedisError>((c, role, info))
        };
        match checked.await {
            Ok((conn, role, info)) if is_primary(&role) => {
                let identity = info
                    .as_deref()
                    .and_then(replid)
                    .unwrap_or_else(|| format!("{ip}:{port}"));
                return Ok(Found {
                    url,
                    conn,
                    identity,
                });
            }
            Ok(_) => tried.push(format!("{ip}:{port} (named by {host}) is not a primary")),
            Err(e) => tried.push(format!("{ip}:{port} (named by {host}): {e}")),
        }
    }
    Err(not_found(spec, &tried))
}

/// Whether a failed call means the connection may no longer reach the primary: look it up
/// through the sentinels again.
#[cfg(feature = "async")]
pub(crate) fn should_rediscover(e: &redis::RedisError) -> bool {
    e.is_io_error()
        || e.is_connection_dropped()
        || e.is_connection_refusal()
        || e.is_unrecoverable_error()
        || e.is_timeout()
        || matches!(e.code(), Some("READONLY" | "MASTERDOWN" | "LOADING"))
}

/// KEYS: clock. ARGV: a clock value `known`. Raises the namespace clock to `known` if it is
/// below (no event: the next write's event then jumps, which every follower takes as a gap);
/// answers the clock as it was. After a failover, a host that saw clock values the new
/// primary never reached calls this, so new writes never reuse a value a host already
/// applied. MGET, not GET: `cmdstat_get` counts fills only.
#[cfg(feature = "async")]
const RAISE_CLOCK: &str = r"
local c = tonumber(redis.call('MGET', KEYS[1])[1] or '0')
if c < tonumber(ARGV[1]) then redis.call('SET', KEYS[1], ARGV[1]) end
return c
";

#[cfg(feature = "async")]
static RAISE_CLOCK_SCRIPT: std::sync::LazyLock<redis::Script> =
    std::sync::LazyLock::new(|| redis::Script::new(RAISE_CLOCK));

#[cfg(feature = "async")]
pub(crate) fn raise_clock_invocation(ns: &str, known: u64) -> redis::ScriptInvocation<'static> {
    let mut inv = RAISE_CLOCK_SCRIPT.prepare_invoke();
    inv.key(crate::keys::NsKeys::new(ns).clock()).arg(known);
    inv
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_url_forms() {
        let s = SentinelSpec::parse("redis+sentinel://10.0.0.1:26380,10.0.0.2/cache")
            .unwrap()
            .unwrap();
        assert_eq!(s.sentinels, ["10.0.0.1:26380", "10.0.0.2:26379"]);
        assert_eq!(s.service, "cache");
        assert_eq!(s.db, 0);
        assert_eq!(s.primary_url("10.0.0.9", 6379), "redis://10.0.0.9:6379/0");
        assert_eq!(s.sentinel_urls()[1], "redis://10.0.0.2:26379");

        let s = SentinelSpec::parse(
            "redis+sentinel://app:s%40cret@[::1]:5000/cache/3?sentinel_password=pw",
        )
        .unwrap()
        .unwrap();
        assert_eq!(s.sentinels, ["[::1]:5000"]);
        assert_eq!(s.db, 3);
        assert_eq!(
            s.primary_url("::1", 7000),
            "redis://app:s%40cret@[::1]:7000/3"
        );
        assert_eq!(s.sentinel_urls(), ["redis://:pw@[::1]:5000"]);
        assert!(
            !s.shown.contains("cret") && !s.shown.contains("=pw"),
            "{}",
            s.shown
        );

        assert!(SentinelSpec::parse("redis://h:1").unwrap().is_none());
        for bad in [
            "redis+sentinel://h:1",
            "redis+sentinel:///svc",
            "redis+sentinel://h:x/svc",
            "redis+sentinel://h/svc/db",
            "redis+sentinel://h/svc?nope=1",
            "rediss+sentinel://h/svc",
        ] {
            assert!(SentinelSpec::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn answers() {
        let b = |s: &str| Value::BulkString(s.as_bytes().to_vec());
        assert_eq!(
            parse_addr(&Value::Array(vec![b("127.0.0.1"), b("6380")])),
            Some(("127.0.0.1".into(), 6380))
        );
        assert_eq!(parse_addr(&Value::Nil), None);
        assert!(is_primary(&Value::Array(vec![b("master"), Value::Int(0)])));
        assert!(!is_primary(&Value::Array(vec![b("slave")])));
        assert_eq!(
            replid("# Replication\r\nrole:master\r\nmaster_replid:abc\r\n").as_deref(),
            Some("abc")
        );
    }
}
