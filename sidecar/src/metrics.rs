//! Metrics: the daemon's counters in the OpenMetrics text format, written with the
//! Prometheus project's `prometheus-client` crate, served at `http://ADDR/metrics`
//! (`--metrics-listen`, off by default) and in answer to a METRICS request (what
//! `cachekit stats --format openmetrics` and `cachekit top` print).
//!
//! One set of counters, two views: every number here is read from what STATS reports
//! (`ops::stats::counters`), the clients' counters files (`slots.rs`), the table's namespace census
//! and the Redis tier; nothing is counted twice. STATS counters without a family of their
//! own below are exported as `cachekit_stat{name="…"}` (type unknown), so nothing STATS
//! shows is missing here.
//!
//! Cost: a scrape reads atomics and the counters files (at most 256, 31 stripes each), except the namespace
//! census (entries and bytes per namespace), a walk of the index a page at a time under
//! the table lock, which is cached and redone at most every [`CENSUS_MAX_AGE`].

use crate::daemon::Daemon;
use anyhow::{bail, Context, Result};
use cachekit_shm::Tallies;
use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric, NoLabelSet};
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::metrics::MetricType;
use prometheus_client::registry::{Registry, Unit};
use std::collections::HashMap;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tracing::{debug, info};

/// How old the cached namespace census may be before a scrape redoes it.
pub const CENSUS_MAX_AGE: Duration = Duration::from_secs(5);
/// Index slots visited per hold of the table lock during the census.
const CENSUS_PAGE: u64 = 4096;
/// Most namespaces with series of their own (the largest by bytes, then by hits): bounds a
/// scrape's size whatever clients do. The rest count in the `unattributed` families.
pub const MAX_NAMESPACE_SERIES: usize = 256;
/// Most namespace names remembered to resolve the tags clients count under.
const MAX_KNOWN_NAMES: usize = 16_384;
/// Longest HTTP request head read (a scrape's is a few hundred bytes).
const MAX_REQUEST_BYTES: usize = 8192;
/// How long one HTTP exchange may take (the listener serves one at a time).
const HTTP_TIMEOUT: Duration = Duration::from_secs(2);

/// The content type of OpenMetrics text.
pub const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// Where `--metrics-listen` binds: `None` when not given (or empty). A non-loopback address
/// is refused unless `allow_remote`: the metrics name every namespace in use.
pub fn resolve_listen(
    text: Option<&str>,
    allow_remote: bool,
    origin: &str,
) -> Result<Option<SocketAddr>> {
    let Some(text) = text.map(str::trim).filter(|t| !t.is_empty()) else {
        return Ok(None);
    };
    let addr: SocketAddr = text.parse().with_context(|| {
        format!("{origin} {text:?} is not an address:port like 127.0.0.1:9464 or [::1]:9464")
    })?;
    if !addr.ip().is_loopback() && !allow_remote {
        bail!(
            "{origin} {text:?} is not a loopback address: other hosts could read the metrics (they name every namespace in use); add --metrics-allow-remote (metrics_allow_remote = true) to mean it, or use 127.0.0.1"
        );
    }
    Ok(Some(addr))
}

#[derive(Default)]
struct Census {
    at: Option<Instant>,
    /// namespace → (entries, bytes)
    sizes: HashMap<String, (u64, u64)>,
}

/// The metrics' own state: the census cache and the names clients' tags resolve to.
pub struct Metrics {
    started: Instant,
    census: Mutex<Census>,
    /// Tag (see `Slots::namespace_tag`) → namespace, learnt from the census.
    names: Mutex<HashMap<u64, String>>,
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics {
            started: Instant::now(),
            census: Mutex::default(),
            names: Mutex::default(),
        }
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl Metrics {
    /// Entries and bytes per namespace, at most [`CENSUS_MAX_AGE`] old.
    fn census(&self, d: &Daemon) -> HashMap<String, (u64, u64)> {
        let mut c = lock(&self.census);
        if c.at.is_some_and(|at| at.elapsed() < CENSUS_MAX_AGE) {
            return c.sizes.clone();
        }
        let mut seen: HashMap<Vec<u8>, (u64, u64)> = HashMap::new();
        let mut cursor = 0;
        loop {
            cursor = d.table.read(|t| {
                t.namespace_census(cursor, CENSUS_PAGE, |ns, bytes| {
                    let e = seen.entry(ns.to_vec()).or_default();
                    e.0 += 1;
                    e.1 += bytes;
                })
            });
            if cursor == 0 {
                break;
            }
        }
        c.sizes = seen
            .into_iter()
            .filter_map(|(ns, v)| Some((String::from_utf8(ns).ok()?, v)))
            .collect();
        c.at = Some(Instant::now());
        let mut names = lock(&self.names);
        for ns in c.sizes.keys() {
            if names.len() >= MAX_KNOWN_NAMES {
                break;
            }
            names
                .entry(d.slots.namespace_tag(ns))
                .or_insert_with(|| ns.clone());
        }
        c.sizes.clone()
    }
}

/// One namespace's line of every per-namespace family.
#[derive(Clone, Debug, Default)]
struct NamespaceRow {
    entries: u64,
    bytes: u64,
    tallies: Tallies,
}

/// Everything one scrape shows, gathered first, then encoded.
#[derive(Debug)]
struct Snapshot {
    stats: Vec<(String, u64)>,
    namespaces: Vec<(String, NamespaceRow)>,
    omitted_namespaces: u64,
    unattributed: Tallies,
    uptime_seconds: f64,
    memory_bytes: u64,
    tier: Option<TierSnapshot>,
}

#[derive(Debug)]
struct TierSnapshot {
    breaker: &'static str,
    queue_len: u64,
    queue_limit: u64,
    followed: Vec<(String, u64)>,
    replay_lag_seconds: f64,
    redis_seconds: Histogram,
    fill_seconds: Histogram,
}

/// STATS counters with a family of their own: (STATS name, metric name, type, help). The
/// metric name is given without the `_total` suffix the encoder adds to counters.
const NAMED: &[(&str, &str, MetricType, &str)] = &[
    ("requests", "cachekit_requests", MetricType::Counter, "Requests received over the socket (hits from shared memory send none)."),
    ("sets", "cachekit_sets", MetricType::Counter, "SET requests."),
    ("deletes", "cachekit_deletes", MetricType::Counter, "DELETE requests."),
    ("invalidates", "cachekit_invalidations", MetricType::Counter, "INVALIDATE requests (tag invalidations)."),
    ("clears", "cachekit_clears", MetricType::Counter, "CLEAR requests (namespace clears)."),
    ("fetches", "cachekit_fetches", MetricType::Counter, "FETCH requests: misses of the shared segment sent to the daemon."),
    ("errors", "cachekit_errors", MetricType::Counter, "Requests answered with an ERROR."),
    ("table_evictions", "cachekit_evictions", MetricType::Counter, "Entries dropped by segment eviction to make room."),
    ("table_live_entries", "cachekit_entries", MetricType::Gauge, "Entries in the table."),
    ("connections_open", "cachekit_connected_clients", MetricType::Gauge, "Open client connections."),
    ("client_records_in_use", "cachekit_client_processes", MetricType::Gauge, "Client processes holding a counters file (host-wide counters)."),
    ("redis_queue_full", "cachekit_redis_queue_refused", MetricType::Counter, "Writes refused (ERROR UNAVAILABLE) because redis_queue writes already waited for Redis: backpressure."),
];

/// Host-wide tallies by namespace name, from the clients' counters files.
fn host_by_namespace(d: &Daemon, m: &Metrics) -> (HashMap<String, Tallies>, Tallies) {
    let host = d.slots.host();
    let names = lock(&m.names);
    let mut by_ns: HashMap<String, Tallies> = HashMap::new();
    let mut unattributed = host.unattributed;
    for (tag, t) in host.by_tag {
        match names.get(&tag) {
            Some(ns) => {
                let e = by_ns.entry(ns.clone()).or_default();
                *e = e.saturating_add(t);
            }
            None => unattributed = unattributed.saturating_add(t),
        }
    }
    (by_ns, unattributed)
}

fn snapshot(d: &Daemon) -> Snapshot {
    let m = &d.metrics;
    let sizes = m.census(d);
    let (mut hits, mut unattributed) = host_by_namespace(d, m);
    let mut rows: HashMap<String, NamespaceRow> = sizes
        .into_iter()
        .map(|(ns, (entries, bytes))| {
            (
                ns,
                NamespaceRow {
                    entries,
                    bytes,
                    tallies: Tallies::default(),
                },
            )
        })
        .collect();
    for (ns, t) in hits.drain() {
        rows.entry(ns).or_default().tallies = t;
    }
    let mut namespaces: Vec<(String, NamespaceRow)> = rows.into_iter().collect();
    namespaces.sort_by(|a, b| {
        (b.1.bytes, b.1.tallies.hits)
            .cmp(&(a.1.bytes, a.1.tallies.hits))
            .then(a.0.cmp(&b.0))
    });
    let omitted = namespaces.len().saturating_sub(MAX_NAMESPACE_SERIES);
    for (_, r) in namespaces.drain(MAX_NAMESPACE_SERIES.min(namespaces.len())..) {
        unattributed = unattributed.saturating_add(r.tallies);
    }
    namespaces.sort_by(|a, b| a.0.cmp(&b.0));
    Snapshot {
        stats: crate::ops::counters(d),
        namespaces,
        omitted_namespaces: omitted as u64,
        unattributed,
        uptime_seconds: m.started.elapsed().as_secs_f64(),
        memory_bytes: d.cfg.memory_bytes,
        tier: d.tier.as_ref().map(|t| {
            let v = t.view();
            TierSnapshot {
                breaker: v.breaker,
                queue_len: v.queue_len,
                queue_limit: v.queue_limit,
                followed: v.followed,
                replay_lag_seconds: v.replay_lag_seconds,
                redis_seconds: t.redis_seconds.clone(),
                fill_seconds: t.fill_seconds.clone(),
            }
        }),
    }
}

type Enc<'a> = DescriptorEncoder<'a>;
type Res = Result<(), std::fmt::Error>;

fn counter(e: &mut Enc<'_>, name: &str, help: &str, unit: Option<&Unit>, v: u64) -> Res {
    let c = ConstCounter::new(v);
    c.encode(e.encode_descriptor(name, help, unit, c.metric_type())?)
}

fn gauge(e: &mut Enc<'_>, name: &str, help: &str, unit: Option<&Unit>, v: i64) -> Res {
    let g = ConstGauge::new(v);
    g.encode(e.encode_descriptor(name, help, unit, g.metric_type())?)
}

fn gauge_f(e: &mut Enc<'_>, name: &str, help: &str, unit: Option<&Unit>, v: f64) -> Res {
    let g = ConstGauge::new(v);
    g.encode(e.encode_descriptor(name, help, unit, g.metric_type())?)
}

/// One family with a `namespace` label, a line per namespace.
fn per_namespace(
    e: &mut Enc<'_>,
    (name, help, unit, kind): (&str, &str, Option<&Unit>, MetricType),
    rows: &[(String, NamespaceRow)],
    value: impl Fn(&NamespaceRow) -> u64,
) -> Res {
    let mut m = e.encode_descriptor(name, help, unit, kind)?;
    for (ns, r) in rows {
        let labels = [("namespace", ns.as_str())];
        let mut f = m.encode_family(&labels)?;
        match kind {
            MetricType::Counter => f.encode_counter::<NoLabelSet, u64, u64>(&value(r), None)?,
            _ => f.encode_gauge(&clamp(value(r)))?,
        }
    }
    Ok(())
}

fn clamp(v: u64) -> i64 {
    v.min(i64::MAX as u64) as i64
}

impl Collector for Snapshot {
    fn encode(&self, mut e: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let stat = |name: &str| {
            self.stats
                .iter()
                .find(|(k, _)| k == name)
                .map_or(0, |(_, v)| *v)
        };
        let e = &mut e;
        e.encode_descriptor(
            "cachekit_build_info",
            "The daemon's version, as a label.",
            None,
            MetricType::Gauge,
        )?
        .encode_family(&[("version", env!("CARGO_PKG_VERSION"))])?
        .encode_gauge(&1i64)?;
        let rows = &self.namespaces;
        per_namespace(
            e,
            ("cachekit_hits", "Lookups served from the shared segment, host-wide (every client process's counters file, plus those of exited ones).", None, MetricType::Counter),
            rows,
            |r| r.tallies.hits,
        )?;
        per_namespace(
            e,
            (
                "cachekit_stale_hits",
                "Of the hits, those served inside the grace window.",
                None,
                MetricType::Counter,
            ),
            rows,
            |r| r.tallies.stale_hits,
        )?;
        per_namespace(
            e,
            (
                "cachekit_misses",
                "Lookups the shared segment could not answer, host-wide.",
                None,
                MetricType::Counter,
            ),
            rows,
            |r| r.tallies.misses,
        )?;
        let u = self.unattributed;
        counter(e, "cachekit_unattributed_hits", "Hits counted without a namespace: a client using more namespaces than its counters file has slots (8), a namespace no longer in the table, or past the series limit.", None, u.hits)?;
        counter(
            e,
            "cachekit_unattributed_stale_hits",
            "Stale hits counted without a namespace.",
            None,
            u.stale_hits,
        )?;
        counter(
            e,
            "cachekit_unattributed_misses",
            "Misses counted without a namespace.",
            None,
            u.misses,
        )?;
        per_namespace(
            e,
            (
                "cachekit_namespace_entries",
                "Entries each namespace holds (census at most 5 s old).",
                None,
                MetricType::Gauge,
            ),
            rows,
            |r| r.entries,
        )?;
        per_namespace(
            e,
            ("cachekit_namespace_size", "Bytes each namespace's entries take in the arena (headers, keys, tags, values; census at most 5 s old).", Some(&Unit::Bytes), MetricType::Gauge),
            rows,
            |r| r.bytes,
        )?;
        gauge(
            e,
            "cachekit_namespaces_omitted",
            "Namespaces without series of their own (over the series limit).",
            None,
            clamp(self.omitted_namespaces),
        )?;
        for (stat_name, name, kind, help) in NAMED {
            match kind {
                MetricType::Counter => counter(e, name, help, None, stat(stat_name))?,
                _ => gauge(e, name, help, None, clamp(stat(stat_name)))?,
            }
        }
        let used = stat("table_used_bytes");
        gauge(
            e,
            "cachekit_memory_used",
            "Arena bytes in segments holding entries (live or dead).",
            Some(&Unit::Bytes),
            clamp(used),
        )?;
        gauge(
            e,
            "cachekit_memory_free",
            "Arena bytes not in use (memory less used).",
            Some(&Unit::Bytes),
            clamp(self.memory_bytes.saturating_sub(used)),
        )?;
        gauge(
            e,
            "cachekit_memory_limit",
            "Arena bytes configured (--memory).",
            Some(&Unit::Bytes),
            clamp(self.memory_bytes),
        )?;
        gauge_f(
            e,
            "cachekit_uptime",
            "Seconds since the daemon started.",
            Some(&Unit::Seconds),
            self.uptime_seconds,
        )?;
        if let Some(t) = &self.tier {
            let mut m = e.encode_descriptor(
                "cachekit_redis_breaker_state",
                "The Redis circuit breaker: 1 for its current state.",
                None,
                MetricType::Gauge,
            )?;
            for s in ["closed", "open", "half_open"] {
                m.encode_family(&[("state", s)])?
                    .encode_gauge(&i64::from(s == t.breaker))?;
            }
            gauge(
                e,
                "cachekit_redis_queue_length",
                "Writes waiting for Redis (write-behind, or Redis unreachable).",
                None,
                clamp(t.queue_len),
            )?;
            gauge(
                e,
                "cachekit_redis_queue_limit",
                "Most writes that may wait for Redis (redis_queue); past it writes are refused.",
                None,
                clamp(t.queue_limit),
            )?;
            gauge_f(e, "cachekit_redis_replay_lag", "Seconds since the follower last read every followed invalidation stream to its end (0 before the first read).", Some(&Unit::Seconds), t.replay_lag_seconds)?;
            let mut m = e.encode_descriptor(
                "cachekit_redis_followed_clock",
                "Per followed namespace stream, the clock value of the last event this host applied.",
                None,
                MetricType::Gauge,
            )?;
            for (ns, seq) in &t.followed {
                m.encode_family(&[("namespace", ns.as_str())])?
                    .encode_gauge(&clamp(*seq))?;
            }
            t.redis_seconds.encode(e.encode_descriptor(
                "cachekit_redis_request",
                "Time of each Redis call made for a client request.",
                Some(&Unit::Seconds),
                MetricType::Histogram,
            )?)?;
            t.fill_seconds.encode(e.encode_descriptor(
                "cachekit_fill",
                "Time of each read-through of a miss: Redis fetch, checks and fill of the table.",
                Some(&Unit::Seconds),
                MetricType::Histogram,
            )?)?;
        }
        let named: Vec<&str> = NAMED.iter().map(|n| n.0).collect();
        let mut m = e.encode_descriptor(
            "cachekit_stat",
            "Every other STATS counter, by its STATS name (see `cachekit stats`).",
            None,
            MetricType::Unknown,
        )?;
        for (k, v) in &self.stats {
            if !named.contains(&k.as_str()) {
                m.encode_family(&[("name", k.as_str())])?
                    .encode_gauge(&clamp(*v))?;
            }
        }
        Ok(())
    }
}

/// The OpenMetrics text of the daemon now (ends with `# EOF`).
pub fn render(d: &Daemon) -> String {
    let mut registry = Registry::default();
    registry.register_collector(Box::new(snapshot(d)));
    let mut out = String::new();
    if let Err(e) = prometheus_client::encoding::text::encode(&mut out, &registry) {
        debug!(error = %e, "encoding the metrics failed");
    }
    out
}

/// Binds `addr` and serves `GET /metrics` on its own thread, one exchange at a time, each
/// bounded by [`HTTP_TIMEOUT`] and [`MAX_REQUEST_BYTES`]. It only reads the daemon's
/// counters (and, every [`CENSUS_MAX_AGE`] at most, walks the table a page per lock hold).
pub fn serve(d: Arc<Daemon>, addr: SocketAddr) -> Result<()> {
    let listener = TcpListener::bind(addr).with_context(|| {
        format!("binding the metrics listener on {addr} (--metrics-listen); pick a free port")
    })?;
    let bound = listener.local_addr().unwrap_or(addr);
    info!(listen = %bound, "metrics at http://{bound}/metrics");
    std::thread::Builder::new()
        .name("cachekitd-metrics".into())
        .spawn(move || {
            for conn in listener.incoming() {
                match conn {
                    Ok(s) => {
                        if let Err(e) = exchange(&d, s) {
                            debug!(error = %e, "metrics request");
                        }
                    }
                    Err(e) => {
                        debug!(error = %e, "accepting a metrics connection");
                        std::thread::sleep(Duration::from_millis(10));
                    }
                }
            }
        })?;
    Ok(())
}

/// One HTTP/1.1 exchange: reads the request head, answers, closes.
fn exchange(d: &Daemon, mut s: TcpStream) -> std::io::Result<()> {
    s.set_read_timeout(Some(HTTP_TIMEOUT))?;
    s.set_write_timeout(Some(HTTP_TIMEOUT))?;
    let deadline = Instant::now() + HTTP_TIMEOUT;
    let mut head = Vec::with_capacity(512);
    let mut buf = [0u8; 1024];
    while !head.windows(4).any(|w| w == b"\r\n\r\n") {
        if head.len() > MAX_REQUEST_BYTES || Instant::now() > deadline {
            return respond(
                &mut s,
                "431 Request Header Fields Too Large",
                "text/plain",
                "",
            );
        }
        let n = s.read(&mut buf)?;
        if n == 0 {
            return Ok(());
        }
        head.extend_from_slice(&buf[..n]);
    }
    let line = head.split(|&b| b == b'\r').next().unwrap_or_default();
    let line = String::from_utf8_lossy(line);
    let mut parts = line.split(' ');
    let (method, target) = (parts.next().unwrap_or(""), parts.next().unwrap_or(""));
    let path = target.split('?').next().unwrap_or("");
    match (method, path) {
        ("GET", "/metrics") => respond(&mut s, "200 OK", CONTENT_TYPE, &render(d)),
        ("GET", _) => respond(
            &mut s,
            "404 Not Found",
            "text/plain",
            "only /metrics is served here\n",
        ),
        _ => respond(
            &mut s,
            "405 Method Not Allowed",
            "text/plain",
            "GET /metrics\n",
        ),
    }
}

fn respond(s: &mut TcpStream, status: &str, ctype: &str, body: &str) -> std::io::Result<()> {
    let head = format!(
        "HTTP/1.1 {status}\r\nContent-Type: {ctype}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    s.write_all(head.as_bytes())?;
    s.write_all(body.as_bytes())?;
    s.flush()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loopback_is_accepted_and_other_addresses_need_the_extra_flag() {
        assert_eq!(resolve_listen(None, false, "x").unwrap(), None);
        assert_eq!(resolve_listen(Some(""), false, "x").unwrap(), None);
        assert!(resolve_listen(Some("127.0.0.1:9464"), false, "x")
            .unwrap()
            .is_some());
        assert!(resolve_listen(Some("[::1]:9464"), false, "x")
            .unwrap()
            .is_some());
        let e = resolve_listen(Some("0.0.0.0:9464"), false, "--metrics-listen")
            .unwrap_err()
            .to_string();
        assert!(e.contains("--metrics-allow-remote"), "{e}");
        assert!(e.contains("--metrics-listen"), "{e}");
        assert!(resolve_listen(Some("0.0.0.0:9464"), true, "x")
            .unwrap()
            .is_some());
        let e = resolve_listen(Some("localhost"), false, "--metrics-listen")
            .unwrap_err()
            .to_string();
        assert!(e.contains("127.0.0.1:9464"), "{e}");
    }
}
