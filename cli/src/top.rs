//! `cachekit top`: a live view of the daemon, like `redis-cli --stat`, read from the same
//! OpenMetrics text its `--metrics-listen` endpoint serves (one set of counters, two views):
//! lookups and writes per second, the host-wide hit ratio, memory, evictions, per namespace.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::time::{Duration, Instant};

use cachekit_client::Client;
use serde_json::{json, Value as Json};

use crate::output::Outcome;
use crate::CliError;

/// One line of OpenMetrics text: family sample name, labels, value.
#[derive(Debug, Clone, PartialEq)]
pub struct Line {
    pub name: String,
    pub labels: Vec<(String, String)>,
    pub value: f64,
}

/// Parses the sample lines of OpenMetrics text (comments skipped; a line that does not
/// parse is skipped too: the daemon writes them, this only reads them back).
pub fn parse(text: &str) -> Vec<Line> {
    text.lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
        .filter_map(parse_line)
        .collect()
}

fn parse_line(l: &str) -> Option<Line> {
    let name_end = l.find(['{', ' '])?;
    let name = l[..name_end].to_string();
    let mut rest = &l[name_end..];
    let mut labels = Vec::new();
    if let Some(r) = rest.strip_prefix('{') {
        let mut chars = r.char_indices();
        let mut key = String::new();
        let mut end = None;
        while let Some((i, c)) = chars.next() {
            match c {
                '}' => {
                    end = Some(i + 1);
                    break;
                }
                ',' => {}
                '=' => {
                    // A quoted value with \\, \" and \n escapes.
                    if chars.next()?.1 != '"' {
                        return None;
                    }
                    let mut v = String::new();
                    loop {
                        match chars.next()?.1 {
                            '"' => break,
                            '\\' => match chars.next()?.1 {
                                'n' => v.push('\n'),
                                other => v.push(other),
                            },
                            other => v.push(other),
                        }
                    }
                    labels.push((std::mem::take(&mut key), v));
                }
                c => key.push(c),
            }
        }
        rest = &r[end?..];
    }
    let value = rest.split_whitespace().next()?.parse().ok()?;
    Some(Line {
        name,
        labels,
        value,
    })
}

/// One reading of the metrics.
struct Sample {
    at: Instant,
    lines: Vec<Line>,
}

impl Sample {
    fn take(client: &Client) -> Result<Sample, CliError> {
        let text = client.metrics()?;
        Ok(Sample {
            at: Instant::now(),
            lines: parse(&text),
        })
    }

    /// The sum of every line of `name` (whatever its labels).
    fn sum(&self, name: &str) -> f64 {
        self.lines
            .iter()
            .filter(|l| l.name == name)
            .map(|l| l.value)
            .sum()
    }

    /// `name`'s value per namespace label.
    fn by_namespace(&self, name: &str) -> BTreeMap<String, f64> {
        let mut out = BTreeMap::new();
        for l in self.lines.iter().filter(|l| l.name == name) {
            if let Some((_, ns)) = l.labels.iter().find(|(k, _)| k == "namespace") {
                *out.entry(ns.clone()).or_default() += l.value;
            }
        }
        out
    }

    fn lookups(&self) -> (f64, f64, f64) {
        (
            self.sum("cachekit_hits_total") + self.sum("cachekit_unattributed_hits_total"),
            self.sum("cachekit_misses_total") + self.sum("cachekit_unattributed_misses_total"),
            self.sum("cachekit_stale_hits_total")
                + self.sum("cachekit_unattributed_stale_hits_total"),
        )
    }

    fn writes(&self) -> f64 {
        [
            "cachekit_sets_total",
            "cachekit_deletes_total",
            "cachekit_invalidations_total",
            "cachekit_clears_total",
        ]
        .iter()
        .map(|n| self.sum(n))
        .sum()
    }

    fn breaker(&self) -> Option<String> {
        self.lines
            .iter()
            .find(|l| l.name == "cachekit_redis_breaker_state" && l.value == 1.0)
            .and_then(|l| l.labels.iter().find(|(k, _)| k == "state"))
            .map(|(_, v)| v.clone())
    }
}

fn ratio(hits: f64, misses: f64) -> Option<f64> {
    (hits + misses > 0.0).then(|| hits / (hits + misses))
}

fn per_s(now: f64, before: f64, secs: f64) -> f64 {
    ((now - before).max(0.0) / secs * 10.0).round() / 10.0
}

/// The report of two samples `a` then `b`, as JSON.
fn report(a: &Sample, b: &Sample) -> Json {
    let secs = b.at.duration_since(a.at).as_secs_f64().max(1e-3);
    let (hits, misses, stale) = b.lookups();
    let (hits0, misses0, _) = a.lookups();
    let ns_hits = b.by_namespace("cachekit_hits_total");
    let ns_hits0 = a.by_namespace("cachekit_hits_total");
    let ns_misses = b.by_namespace("cachekit_misses_total");
    let ns_stale = b.by_namespace("cachekit_stale_hits_total");
    let ns_entries = b.by_namespace("cachekit_namespace_entries");
    let ns_bytes = b.by_namespace("cachekit_namespace_size_bytes");
    let mut names: Vec<&String> = ns_entries.keys().chain(ns_hits.keys()).collect();
    names.sort();
    names.dedup();
    let get = |m: &BTreeMap<String, f64>, k: &str| m.get(k).copied().unwrap_or(0.0);
    let namespaces: Vec<Json> = names
        .iter()
        .map(|ns| {
            let (h, m) = (get(&ns_hits, ns), get(&ns_misses, ns));
            json!({
                "name": ns,
                "entries": get(&ns_entries, ns) as u64,
                "bytes": get(&ns_bytes, ns) as u64,
                "hits": h as u64,
                "stale_hits": get(&ns_stale, ns) as u64,
                "misses": m as u64,
                "hit_ratio": ratio(h, m),
                "hits_per_s": per_s(h, get(&ns_hits0, ns), secs),
            })
        })
        .collect();
    json!({
        "interval_s": (secs * 1000.0).round() / 1000.0,
        "ops_per_s": per_s(hits + misses + b.writes(), hits0 + misses0 + a.writes(), secs),
        "lookups_per_s": per_s(hits + misses, hits0 + misses0, secs),
        "writes_per_s": per_s(b.writes(), a.writes(), secs),
        "requests_per_s": per_s(b.sum("cachekit_requests_total"), a.sum("cachekit_requests_total"), secs),
        "hits": hits as u64,
        "stale_hits": stale as u64,
        "misses": misses as u64,
        "hit_ratio": ratio(hits, misses),
        "entries": b.sum("cachekit_entries") as u64,
        "memory_used_bytes": b.sum("cachekit_memory_used_bytes") as u64,
        "memory_free_bytes": b.sum("cachekit_memory_free_bytes") as u64,
        "memory_limit_bytes": b.sum("cachekit_memory_limit_bytes") as u64,
        "evictions": b.sum("cachekit_evictions_total") as u64,
        "evictions_per_s": per_s(b.sum("cachekit_evictions_total"), a.sum("cachekit_evictions_total"), secs),
        "connected_clients": b.sum("cachekit_connected_clients") as u64,
        "client_processes": b.sum("cachekit_client_processes") as u64,
        "redis_breaker": b.breaker(),
        "redis_queue_length": b.sum("cachekit_redis_queue_length") as u64,
        "namespaces": namespaces,
    })
}

fn pct(r: &Json) -> String {
    r.as_f64()
        .map_or_else(|| "-".into(), |r| format!("{:.1}%", r * 100.0))
}

fn mib(v: &Json) -> String {
    format!("{:.1}MiB", v.as_f64().unwrap_or(0.0) / 1048576.0)
}

/// The one-screen text of a report.
fn text(r: &Json) -> String {
    let mut t = String::new();
    let _ = writeln!(
        t,
        "ops/s {}  lookups/s {}  writes/s {}  hit ratio {}  ({} hits, {} misses)",
        r["ops_per_s"],
        r["lookups_per_s"],
        r["writes_per_s"],
        pct(&r["hit_ratio"]),
        r["hits"],
        r["misses"]
    );
    let _ = writeln!(
        t,
        "memory {} used of {}  entries {}  evictions {} ({}/s)  clients {} in {} processes{}",
        mib(&r["memory_used_bytes"]),
        mib(&r["memory_limit_bytes"]),
        r["entries"],
        r["evictions"],
        r["evictions_per_s"],
        r["connected_clients"],
        r["client_processes"],
        r["redis_breaker"]
            .as_str()
            .map(|b| format!("  redis breaker {b}"))
            .unwrap_or_default()
    );
    let _ = writeln!(
        t,
        "{:<24} {:>10} {:>12} {:>12} {:>10} {:>8}",
        "NAMESPACE", "ENTRIES", "BYTES", "HITS", "HITS/S", "HIT%"
    );
    for ns in r["namespaces"].as_array().into_iter().flatten() {
        let _ = writeln!(
            t,
            "{:<24} {:>10} {:>12} {:>12} {:>10} {:>8}",
            ns["name"].as_str().unwrap_or(""),
            ns["entries"],
            ns["bytes"],
            ns["hits"],
            ns["hits_per_s"],
            pct(&ns["hit_ratio"])
        );
    }
    t.pop();
    t
}

/// `cachekit top`: with `once`, one report over `interval` (two samples); else a line
/// every `interval` until interrupted, like `redis-cli --stat`.
pub fn top(
    client: &Client,
    once: bool,
    interval: Duration,
    json: bool,
) -> Result<Outcome, CliError> {
    let mut a = Sample::take(client)?;
    if once {
        std::thread::sleep(interval);
        let b = Sample::take(client)?;
        let r = report(&a, &b);
        let t = text(&r);
        return Ok(Outcome::done(r, t));
    }
    let mut lines = 0u64;
    loop {
        std::thread::sleep(interval);
        let b = Sample::take(client)?;
        let r = report(&a, &b);
        if json {
            crate::write_stdout(format!("{r}\n").as_bytes());
        } else {
            if lines.is_multiple_of(20) {
                crate::write_stdout(
                    format!(
                        "{:>10} {:>8} {:>12} {:>12} {:>10} {:>10} {:>10} {:>8}\n",
                        "ops/s", "hit%", "hits", "misses", "used", "entries", "evicted", "clients"
                    )
                    .as_bytes(),
                );
            }
            crate::write_stdout(
                format!(
                    "{:>10} {:>8} {:>12} {:>12} {:>10} {:>10} {:>10} {:>8}\n",
                    r["ops_per_s"],
                    pct(&r["hit_ratio"]),
                    r["hits"],
                    r["misses"],
                    mib(&r["memory_used_bytes"]),
                    r["entries"],
                    r["evictions"],
                    r["connected_clients"]
                )
                .as_bytes(),
            );
        }
        lines += 1;
        a = b;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_labels_with_escapes_and_skips_comments() {
        let t = "# HELP x y\n# TYPE cachekit_hits counter\ncachekit_hits_total{namespace=\"a\\\"b\\\\c\"} 12\ncachekit_uptime_seconds 3.5\ncachekit_stat{name=\"x\",other=\"y\"} 7\n# EOF\n";
        let lines = parse(t);
        assert_eq!(lines.len(), 3);
        assert_eq!(lines[0].name, "cachekit_hits_total");
        assert_eq!(
            lines[0].labels,
            vec![("namespace".to_string(), "a\"b\\c".to_string())]
        );
        assert_eq!(lines[0].value, 12.0);
        assert_eq!(lines[1].value, 3.5);
        assert_eq!(lines[2].labels.len(), 2);
    }
}
