//! The management commands: keys, ttl, touch, incr/decr, del by pattern or tag, namespaces.

use std::ffi::OsString;
use std::fmt::Write as _;
use std::io::Write as _;
use std::os::unix::ffi::OsStrExt;
use std::time::Duration;

use cachekit_client::{Client, IncrOptions, ScanItem, ScanOptions, Ttl};
use serde_json::{json, Value as Json};

use crate::args::Counter;
use crate::duration::format_duration;
use crate::output::{key_text, opt, Outcome};
use crate::CliError;

/// Items per scan request: the protocol's maximum, so a large table takes the fewest round
/// trips (the daemon bounds its work per request whatever the page size).
const PAGE: u32 = 1000;

fn selection(pattern: Option<OsString>, tag: Option<String>, exact: bool) -> ScanOptions {
    ScanOptions {
        pattern: pattern.map(|p| p.as_bytes().to_vec()),
        tag,
        exact,
        page_size: PAGE,
    }
}

fn item_json(i: &ScanItem) -> Json {
    json!({
        "key": key_text(&i.key),
        "stored_bytes": i.stored_len,
        "created_ms": i.created_ms,
        "expires_ms": opt(i.expires_ms),
        "grace_until_ms": opt(i.grace_until_ms),
        "version": i.version,
    })
}

/// `keys`: text mode prints each page as it arrives (a table of a million keys is not held in
/// memory, and `cachekit keys | head` stops the scan when head exits); `--json` collects one
/// object.
pub fn keys(
    client: &Client,
    pattern: Option<OsString>,
    tag: Option<String>,
    exact: bool,
    json: bool,
) -> Result<Outcome, CliError> {
    let options = selection(pattern, tag, exact);
    let mut cursor = 0;
    let mut items = Vec::new();
    let mut out = std::io::stdout().lock();
    loop {
        let (next, page) = client.scan_page(cursor, &options)?;
        if json {
            items.extend(page.iter().map(item_json));
        } else {
            let mut text = String::new();
            for i in &page {
                let _ = writeln!(text, "{}", key_text(&i.key));
            }
            if out
                .write_all(text.as_bytes())
                .and_then(|()| out.flush())
                .is_err()
            {
                // stdout closed (a pipe whose reader exited): nobody reads the rest.
                break;
            }
        }
        if next == 0 {
            break;
        }
        cursor = next;
    }
    Ok(Outcome::streamed(json!({
        "namespace": client.namespace(),
        "count": items.len(),
        "keys": items,
    })))
}

/// `ttl`: the time left, "never", or a miss.
pub fn ttl(client: &Client, key: &[u8]) -> Result<Outcome, CliError> {
    Ok(match client.ttl(key)? {
        Ttl::Missing => Outcome::miss(key),
        Ttl::Never => Outcome::done(
            json!({"key": key_text(key), "hit": true, "expires": false, "ttl_ms": null}),
            "never".into(),
        ),
        Ttl::Remaining(left) => Outcome::done(
            json!({"key": key_text(key), "hit": true, "expires": true,
                   "ttl_ms": left.as_millis() as u64}),
            format_duration(left),
        ),
    })
}

/// `touch`: a new TTL from now (`None` = never expires).
pub fn touch(client: &Client, key: &[u8], ttl: Option<Duration>) -> Result<Outcome, CliError> {
    if !client.touch(key, ttl)? {
        return Ok(Outcome::not_done(
            json!({"key": key_text(key), "found": false}),
            "miss".into(),
        ));
    }
    let text = match ttl {
        Some(t) => format!("{} expires in {}", key_text(key), format_duration(t)),
        None => format!("{} never expires", key_text(key)),
    };
    Ok(Outcome::done(
        json!({"key": key_text(key), "found": true,
               "ttl_ms": ttl.map(|t| t.as_millis() as u64)}),
        text,
    ))
}

/// `incr` and `decr`: the new value on stdout.
pub fn counter(client: &Client, c: &Counter, decrement: bool) -> Result<Outcome, CliError> {
    let key = c.key.as_bytes();
    let options = IncrOptions {
        initial: (!c.no_create).then_some(c.initial),
        ttl: c.ttl,
    };
    let result = if decrement {
        client.decr(key, c.delta, &options)?
    } else {
        client.incr(key, c.delta, &options)?
    };
    Ok(match result {
        Some(value) => Outcome::done(
            json!({"key": key_text(key), "hit": true, "value": value}),
            value.to_string(),
        ),
        None => Outcome::miss(key),
    })
}

/// `del --pattern` / `del --tag`: how many entries were deleted.
pub fn delete_matching(
    client: &Client,
    pattern: Option<OsString>,
    tag: Option<String>,
    exact: bool,
) -> Result<Outcome, CliError> {
    let options = selection(pattern, tag, exact);
    let deleted = client.delete_matching(&options)?;
    Ok(Outcome::done(
        json!({"ok": true, "namespace": client.namespace(), "deleted": deleted}),
        format!(
            "deleted {deleted} entr{} in namespace {}",
            if deleted == 1 { "y" } else { "ies" },
            client.namespace()
        ),
    ))
}

/// `namespaces`: a table, largest first, as the daemon lists them.
pub fn namespaces(client: &Client) -> Result<Outcome, CliError> {
    let list = client.namespaces()?;
    let rows: Vec<[String; 3]> = list
        .iter()
        .map(|n| [n.name.clone(), n.entries.to_string(), n.bytes.to_string()])
        .collect();
    let header = ["NAMESPACE", "ENTRIES", "BYTES"].map(String::from);
    let width = |col: usize| {
        std::iter::once(&header)
            .chain(&rows)
            .map(|r| r[col].chars().count())
            .max()
            .unwrap_or(0)
    };
    let (w0, w1, w2) = (width(0), width(1), width(2));
    let mut text = String::new();
    for [name, entries, bytes] in std::iter::once(&header).chain(&rows) {
        let _ = writeln!(text, "{name:<w0$}  {entries:>w1$}  {bytes:>w2$}");
    }
    text.pop();
    Ok(Outcome::done(
        json!({"namespaces": list.iter().map(|n| json!({
            "name": n.name, "entries": n.entries, "bytes": n.bytes,
        })).collect::<Vec<_>>()}),
        text,
    ))
}
