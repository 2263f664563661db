//! The start-time carry (warm restart): find the previous daemon's segment, carry what
//! verifies into the new one, and leave the new one where the next daemon will find it.
//!
//! Where the memfds outlive the daemon: systemd's fd store when `$NOTIFY_SOCKET` is set
//! (`fdstore.rs`), else the instance's keeper process (`keeper.rs`). Runs after the instance
//! lock is taken (so the old daemon is gone: its writable mapping died with it, nothing changes
//! the old segment while it is read) and before the socket is bound.
//!
//! With a Redis tier, the carried (or snapshot-loaded) table also carries the stream positions
//! its daemon recorded; the tier replays each namespace's invalidation stream from there (or clears the
//! namespace) before the socket is bound (`tier/resume.rs`).

use crate::config::Config;
use crate::fdstore;
use crate::keeper::Keeper;
use anyhow::{Context, Result};
use cachekit_shm::{carry, now_ms, AttachError, Backing, OldTable, TableConfig, Writer};
use std::os::fd::{AsFd, OwnedFd};
use std::path::Path;
use tracing::{info, warn};

/// Where this daemon's memfds were left; held for the daemon's life (the keeper connection
/// tells the keeper a daemon is there).
pub enum Handover {
    /// systemd's fd store.
    FdStore,
    /// The instance's keeper.
    Keeper(#[allow(dead_code)] Keeper),
    /// Nowhere (the keeper could not be started): the next start is cold.
    Nowhere,
}

/// The table this daemon serves: the previous daemon's entries carried into a new segment when
/// one is found (unless `cold`), else empty; and where the new segment was left.
pub fn start(cfg: &Config, dir: &Path, table_cfg: &TableConfig) -> Result<(Writer, Handover)> {
    let (old, mut keeper) = if fdstore::available() {
        let mut table = None;
        for (name, fd) in fdstore::take_listen_fds() {
            if name == fdstore::TABLE_NAME {
                table = Some(fd);
            }
        }
        if table.is_some() {
            if let Err(e) = fdstore::forget() {
                warn!("removing the old segment from systemd's fd store failed ({e}): if this start dies carrying it, the next one tries it again");
            }
        }
        (table, None)
    } else {
        match Keeper::connect_or_start(dir, &cfg.instance) {
            Ok(mut k) => {
                let old = k.take().unwrap_or_else(|e| {
                    warn!("the keeper did not hand over the old segment: {e:#}; starting empty");
                    None
                });
                (old.map(|(table, _clients)| table), Some(k))
            }
            Err(e) => {
                warn!("no keeper for the segment ({e:#}): this start is cold and the next one will be too");
                (None, None)
            }
        }
    };
    // Taken (and removed) at every start: see snapshot::take_journal_mark.
    let mark = crate::snapshot::take_journal_mark(dir, &cfg.instance).context(
        "the snapshot's journal mark must be removed before serving: fix the runtime directory's permissions",
    )?;
    let writer = build(cfg, table_cfg, old, mark)?;
    if let Some(path) = &cfg.snapshot {
        // Loaded or not, it is out of date as soon as this daemon changes the table.
        crate::snapshot::retire(path).context(
            "the snapshot file must be removed before serving (a later start could load it and bring back what this daemon deletes): fix its directory's permissions, or drop --snapshot",
        )?;
    }
    let fds = writer.fds().expect("memfd backing");
    let handover = if fdstore::available() {
        match fdstore::store(fds.table_fd(), fds.client_fd()) {
            Ok(()) => Handover::FdStore,
            Err(e) => {
                warn!("storing the segment in systemd's fd store failed ({e}): the next start is cold");
                Handover::Nowhere
            }
        }
    } else if let Some(mut k) = keeper.take() {
        match k.hold(fds.table_fd(), fds.client_fd()) {
            Ok(()) => Handover::Keeper(k),
            Err(e) => {
                warn!("handing the segment to the keeper failed ({e:#}): the next start is cold");
                Handover::Nowhere
            }
        }
    } else {
        Handover::Nowhere
    };
    Ok((writer, handover))
}

/// A new table, with `old`'s entries carried into it when that is allowed and possible.
fn build(
    cfg: &Config,
    table_cfg: &TableConfig,
    old: Option<OwnedFd>,
    mark: Option<u64>,
) -> Result<Writer> {
    let create =
        |c: &TableConfig| Writer::create(c, Backing::Memfd).context("creating the shared table");
    if cfg.cold {
        if old.is_some() {
            info!("--cold: the previous daemon's segment is dropped; starting empty");
        }
        return create(table_cfg);
    }
    let Some(fd) = old else {
        return match &cfg.snapshot {
            Some(path) if path.exists() => from_snapshot(table_cfg, path, mark),
            _ => create(table_cfg),
        };
    };
    let old = match OldTable::open(fd.as_fd()) {
        Ok(t) => t,
        Err(AttachError::UnsupportedVersion { found, expected }) => {
            warn!(
                found,
                expected,
                "the previous daemon's segment has format {found}, this build reads {expected}: starting empty"
            );
            return create(table_cfg);
        }
        Err(e) => {
            warn!("the previous daemon's segment is unreadable ({e}): starting empty");
            return create(table_cfg);
        }
    };
    // The new table takes the old one's hash seed: tag-counter references stay meaningful.
    let mut writer = create(&TableConfig {
        hash_seed: Some(old.ref_space().hash_seed),
        ..table_cfg.clone()
    })?;
    // A panic here (a bug meeting a damaged segment) must not kill the daemon: the segment is
    // dropped and the start goes on empty. The keeper or the fd store no longer holds it, so
    // even a crash that cannot be caught is not repeated at the next start.
    let carried = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        if crate::testhook::flag("CACHEKIT_TEST_CARRY_PANIC") {
            panic!("CACHEKIT_TEST_CARRY_PANIC is set");
        }
        if crate::testhook::flag("CACHEKIT_TEST_CARRY_ABORT") {
            std::process::abort();
        }
        carry(&old, &mut writer, now_ms())
    }));
    let report = match carried {
        Ok(r) => r,
        Err(panic) => {
            let what = panic
                .downcast_ref::<&str>()
                .map(|s| s.to_string())
                .or_else(|| panic.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "no message".into());
            warn!("carrying the previous daemon's segment panicked ({what}): it is dropped; starting empty");
            return create(table_cfg);
        }
    };
    let dropped: Vec<String> = report
        .dropped
        .named()
        .into_iter()
        .filter(|(_, n)| *n > 0)
        .map(|(name, n)| format!("{name}={n}"))
        .collect();
    info!(
        examined = report.examined,
        carried = report.carried,
        value_bytes = report.value_bytes,
        damaged = report.dropped.damage(),
        evicted = report.evicted,
        elapsed_ms = report.elapsed.as_millis() as u64,
        old_epoch = old.epoch(),
        new_epoch = writer.epoch(),
        "warm restart: carried {} of {} entries of the previous daemon's segment in {:?} (dropped: {})",
        report.carried,
        report.examined,
        report.elapsed,
        if dropped.is_empty() { "none".to_string() } else { dropped.join(", ") }
    );
    Ok(writer)
}

/// A new table with the entries of the snapshot at `path` (no previous segment: a reboot).
/// `mark`: the token of the snapshot the journal was kept for since its clean stop.
fn from_snapshot(table_cfg: &TableConfig, path: &Path, mark: Option<u64>) -> Result<Writer> {
    let create =
        |c: &TableConfig| Writer::create(c, Backing::Memfd).context("creating the shared table");
    let header = match crate::snapshot::read_header(path) {
        Ok(h) => h,
        Err(e) => {
            warn!("the snapshot is not loaded ({e}): starting empty");
            return create(table_cfg);
        }
    };
    if mark != Some(header.token()) {
        warn!(snapshot = %path.display(), "the snapshot is not loaded: the journal of failed writes was not kept since it was written (the runtime directory was emptied, by a reboot on tmpfs say, or another start came between), so a write that failed meanwhile could be undone; to keep snapshots across reboots, give --dir a directory on persistent storage; starting empty");
        return create(table_cfg);
    }
    let mut writer = create(&TableConfig {
        hash_seed: Some(header.space.hash_seed),
        ..table_cfg.clone()
    })?;
    // The largest record: the largest value and an entry's fields with every reference.
    let max_body = writer.max_value_bytes() + 8192;
    match crate::snapshot::load(path, &mut writer, now_ms(), max_body) {
        Ok(l) => {
            let secs = l.elapsed.as_secs_f64().max(1e-9);
            info!(
                snapshot = %path.display(),
                loaded = l.loaded,
                records = l.records,
                stream_positions = l.positions,
                dropped = l.dropped.total(),
                elapsed_ms = l.elapsed.as_millis() as u64,
                "loaded {} of {} snapshot entries ({:.0} entries/s, {:.1} MB/s){}",
                l.loaded,
                l.records,
                l.records as f64 / secs,
                l.bytes as f64 / secs / 1e6,
                l.stopped.map(|s| format!("; stopped early: {s}; the entries after it are dropped")).unwrap_or_default()
            );
            Ok(writer)
        }
        Err(e) => {
            warn!("the snapshot is not loaded ({e}): starting empty");
            create(table_cfg)
        }
    }
}
