//! cachekitd: the per-host cache daemon.
//!
//! The map, in the order a request travels:
//! - `socket.rs`: the Unix socket; one thread per connection reads frames (`frames.rs`),
//!   decodes them, answers HELLO (with the segment's memfds), hands every other request to
//!   `ops`; `admission.rs` decides at accept who may open one more connection;
//! - `ops/`: the permission check, then one file per operation (set, delete, invalidate,
//!   clear, fetch, stats and ping, hello);
//! - `daemon.rs`: the state the operations share (table, tier, coalescer, limits, counters);
//! - `table.rs`: the one way to change the shared table; `changes.rs`: what a fill from Redis
//!   checks before it may put a record in it;
//! - `coalesce.rs`: one lookup per key at a time, however many clients miss it;
//! - `tier/`: the Redis tier, a component the operations call (writes, read-through) that
//!   changes the table through `table.rs` only (fills, other hosts' events, local flushes);
//! - `peer.rs`: a peer's supplementary groups, for the write permission;
//! - `slots.rs`: the counters files, one per client process, checked on every heartbeat;
//! - `config.rs`: flags, environment, file; `host.rs`: `--memory` against the host's memory;
//!   `systemd.rs`: sd_notify; `metrics.rs`: the OpenMetrics text and its HTTP listener.
//! - `warm.rs`: the start-time carry of the previous daemon's segment (warm restart), from
//!   systemd's fd store (`fdstore.rs`) or the instance's keeper process (`keeper.rs`).
#![forbid(unsafe_code)]

mod admission;
mod changes;
mod coalesce;
mod config;
mod daemon;
mod fdpass;
mod fdstore;
mod frames;
mod host;
mod journal;
mod keeper;
mod leases;
mod metrics;
mod ops;
mod peer;
mod slots;
mod snapshot;
mod socket;
mod systemd;
mod table;
mod testhook;
mod tier;
mod warm;

use anyhow::{bail, Context, Result};
use config::{Config, Flags};
use daemon::Daemon;
use std::fs::{File, OpenOptions};
use std::io::Read;
use std::os::unix::fs::FileExt;
use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::UnixListener;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tracing::{error, info};

fn main() {
    let flags = Flags::from_command_line();
    let keeper = flags.keeper;
    let cfg = match Config::resolve(flags) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("cachekitd: {e:#}");
            std::process::exit(2);
        }
    };
    if keeper {
        // The instance's keeper (see keeper.rs): its stdio is /dev/null, so an error is its
        // exit status only.
        let r = cfg
            .runtime_dir()
            .and_then(|dir| keeper::run(&dir, &cfg.instance));
        std::process::exit(i32::from(r.is_err()));
    }
    // A table larger than the host could ever hold is refused like a bad flag; one larger
    // than what is available now is a warning (see host.rs).
    let memory_warning = match host::Memory::read().check(cfg.memory_bytes, &cfg.memory_setting) {
        Ok(w) => w,
        Err(e) => {
            eprintln!("cachekitd: {e}");
            std::process::exit(2);
        }
    };
    init_logs(&cfg);
    if let Some(w) = memory_warning {
        tracing::warn!("{w}");
    }
    if let Err(e) = run(cfg) {
        // Once: through the log when it shows errors (so JSON logs stay JSON), else on stderr.
        if tracing::enabled!(tracing::Level::ERROR) {
            error!("{e:#}");
        } else {
            eprintln!("cachekitd: {e:#}");
        }
        // A configuration the table refuses is a usage error, like a bad flag.
        let usage = e.chain().any(|c| {
            matches!(
                c.downcast_ref::<cachekit_shm::CreateError>(),
                Some(cachekit_shm::CreateError::Config(_))
            )
        });
        std::process::exit(if usage { 2 } else { 1 });
    }
}

fn init_logs(cfg: &Config) {
    let filter = tracing_subscriber::EnvFilter::try_new(&cfg.log)
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    use std::io::IsTerminal;
    let b = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal());
    if cfg.log_json {
        b.json().init();
    } else {
        b.init();
    }
}

/// What a daemon writes into its lock file: the heartbeat timeout its clients were given,
/// which a successor after a crash must wait out (see [`bind`]).
const LOCK_TIMEOUT_KEY: &str = "heartbeat_timeout_ms=";
/// The line of the lock file naming the daemon's pid (`cachekit stop` reads it).
const LOCK_PID_KEY: &str = "pid=";

/// Holds the instance lock for the life of the process: a second daemon of the same
/// instance in the same directory refuses to start instead of stealing the socket.
/// Returns the lock and the heartbeat timeout the previous daemon published in it (`None`
/// when there was none, or a daemon too old to publish it), after replacing it with ours.
fn lock_instance(
    dir: &Path,
    instance: &str,
    heartbeat_timeout: Duration,
) -> Result<(File, Option<Duration>)> {
    let path = dir.join(format!("{instance}.lock"));
    let mut f = OpenOptions::new()
        .create(true)
        .truncate(false)
        .read(true)
        .write(true)
        .open(&path)
        .with_context(|| format!("opening {}", path.display()))?;
    if rustix::fs::flock(&f, rustix::fs::FlockOperation::NonBlockingLockExclusive).is_err() {
        bail!("another cachekitd is already running instance {instance:?} in {}; stop it or pick another --instance", dir.display());
    }
    let mut old = String::new();
    // At most a line: anything else is not ours.
    let _ = (&mut f).take(256).read_to_string(&mut old);
    let previous = old
        .lines()
        .find_map(|l| l.trim().strip_prefix(LOCK_TIMEOUT_KEY))
        .and_then(|ms| ms.parse().ok())
        .map(Duration::from_millis);
    // The pid line is what `cachekit stop` signals, once it has checked that the lock is
    // held and that the pid is a cachekitd.
    f.set_len(0)
        .and_then(|()| {
            f.write_all_at(
                format!(
                    "{LOCK_TIMEOUT_KEY}{}\n{LOCK_PID_KEY}{}\n",
                    heartbeat_timeout.as_millis(),
                    std::process::id()
                )
                .as_bytes(),
                0,
            )
        })
        .with_context(|| format!("writing {}", path.display()))?;
    Ok((f, previous))
}

/// `previous`: the heartbeat timeout the previous daemon gave its clients (from the lock file).
/// Returns the listener and the journal lock, held exclusively from before the bind (see
/// `journal.rs`): the caller applies the journal, then releases it.
fn bind(
    cfg: &Config,
    dir: &Path,
    path: &Path,
    previous: Option<Duration>,
) -> Result<(UnixListener, Result<rustix::fd::OwnedFd, String>)> {
    // We hold the instance lock, so a socket file left here is stale: the previous daemon
    // died without its clean stop (kill -9, crash), and its clients may go on trusting its
    // segment until its last heartbeat is *its* heartbeat_timeout old (the one it handed
    // them, which may differ from ours). Do not acknowledge any write before then, or a
    // client of the old segment could read the value it replaced.
    if let Ok(m) = std::fs::symlink_metadata(path) {
        use std::os::unix::fs::FileTypeExt;
        let t = m.file_type();
        if !t.is_socket() {
            let what = if t.is_dir() {
                "a directory"
            } else if t.is_symlink() {
                "a symbolic link"
            } else if t.is_file() {
                "a regular file"
            } else {
                "not a socket"
            };
            bail!(
                "{} is {what}, not a socket a previous cachekitd left: cachekitd does not replace it; move it away, or pick another --dir or --instance",
                path.display()
            );
        }
        let wait = previous.map_or(cfg.heartbeat_timeout, |p| p.max(cfg.heartbeat_timeout));
        info!(
            wait_ms = wait.as_millis() as u64,
            previous_heartbeat_timeout_ms = previous.map(|p| p.as_millis() as u64),
            heartbeat_timeout_ms = cfg.heartbeat_timeout.as_millis() as u64,
            "a previous daemon died without stopping cleanly; waiting until its clients have noticed (the larger of its heartbeat timeout and ours)"
        );
        std::thread::sleep(wait);
    }
    // From here until the journal is applied, a client whose write fails waits for this lock
    // before it journals, and then finds this daemon answering.
    let writers = journal::Writers {
        uids: &cfg.writer_uids,
        gids: &cfg.writer_gids,
    };
    let journal_lock = journal::lock_exclusive(dir, &cfg.instance, writers);
    let _ = std::fs::remove_file(path);
    let listener =
        UnixListener::bind(path).with_context(|| format!("binding {}", path.display()))?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(cfg.socket_mode))
        .context("setting the socket mode")?;
    if let Some(gid) = cfg.socket_group {
        rustix::fs::chown(path, None, Some(rustix::process::Gid::from_raw(gid)))
            .context("setting the socket group")?;
    }
    Ok((listener, journal_lock))
}

fn run(cfg: Config) -> Result<()> {
    let dir = cfg.runtime_dir()?;
    let (_lock, previous_timeout) = lock_instance(&dir, &cfg.instance, cfg.heartbeat_timeout)?;
    let socket: PathBuf = dir.join(cachekit_proto::paths::socket_name(&cfg.instance));
    let mut start_cfg = cfg.clone();
    if let Err(e) = journal::prepare(&dir, &cfg.instance) {
        if journal::exists(&dir, &cfg.instance) && !cfg.cold {
            // Clients may have journaled failed writes there that this daemon cannot apply:
            // the carried entries they concern would be served stale.
            tracing::warn!("{e}; the journal of failed writes cannot be used: starting cold (the previous daemon's entries are dropped)");
            start_cfg.cold = true;
        } else {
            tracing::warn!("{e}");
        }
    }
    // Before the socket is bound: the previous daemon's entries carried (warm restart).
    let (writer, _handover) = warm::start(&start_cfg, &dir, &Daemon::table_config(&cfg))?;
    let daemon = Arc::new(Daemon::new(cfg.clone(), writer).context("creating the shared table")?);
    let carried = daemon.start_redis();
    // Signals first: a SIGTERM that arrives while binding (or waiting out a dead daemon's
    // clients) still stops the daemon cleanly.
    let mut signals = signal_hook::iterator::Signals::new([
        signal_hook::consts::SIGTERM,
        signal_hook::consts::SIGINT,
        signal_hook::consts::SIGHUP,
    ])?;
    let sock_path = socket.clone();
    let run_dir = dir.clone();
    let d = daemon.clone();
    std::thread::Builder::new()
        .name("cachekitd-signals".into())
        .spawn(move || {
            for sig in signals.forever() {
                if sig == signal_hook::consts::SIGHUP {
                    // Its default would kill the daemon and leave the socket behind. There is
                    // nothing to reload: settings change with a restart, and the logs go to
                    // stderr, which needs no reopening.
                    info!(
                        signal = sig,
                        "SIGHUP ignored: cachekitd reloads nothing (restart it to change settings) and logs to stderr"
                    );
                    continue;
                }
                info!(signal = sig, "shutting down");
                systemd::notify("STOPPING=1");
                // Before the table's lock is taken for good: the follower takes it too.
                d.stop_following_redis();
                // Held until exit: the segment's heartbeat stays 0, so clients stop trusting
                // it now, and the socket is gone, so they attach to the next daemon.
                let dead = d.table.shut_down();
                let _ = std::fs::remove_file(&sock_path);
                if let Some(path) = &d.cfg.snapshot {
                    // Under the shut-down table: no write is acknowledged after this cut.
                    let now = cachekit_shm::now_ms();
                    match snapshot::write(path, "stop", |w| snapshot::dump(&dead, w, now, true)) {
                        Ok(s) => {
                            info!(
                                entries = s.entries,
                                bytes = s.bytes,
                                elapsed_ms = s.elapsed.as_millis() as u64,
                                "snapshot written to {}",
                                path.display()
                            );
                            // Loadable only while the journal of the writes failing from now
                            // on is kept with it (see snapshot::mark_journal).
                            if journal::exists(&run_dir, &d.cfg.instance) {
                                if let Err(e) =
                                    snapshot::mark_journal(&run_dir, &d.cfg.instance, s.token)
                                {
                                    error!("the snapshot will not be loaded: {e:#}");
                                }
                            }
                        }
                        Err(e) => error!("the snapshot was not written: {e:#}"),
                    }
                }
                // Writes still queued for Redis (write-behind, or Redis was down) get a
                // bounded chance to reach it.
                d.finish_redis_queue(std::time::Duration::from_secs(2));
                std::process::exit(0);
            }
        })?;

    let (listener, journal_lock) = bind(&cfg, &dir, &socket, previous_timeout)?;
    // The writes clients could not deliver while no daemon ran, before anyone is accepted
    // (connections wait in the backlog; HELLO hands out the table only after this).
    let writers = journal::Writers {
        uids: &cfg.writer_uids,
        gids: &cfg.writer_gids,
    };
    let mut applied = journal::apply(&dir, &cfg.instance, writers, &daemon.table);
    journal::log(&applied);
    if let Err(why) = &journal_lock {
        if journal::without_lock(&dir, &cfg.instance, &daemon.table, why) {
            // A record being appended may be missed: it could drop anything, in Redis too.
            applied.drops.everything = true;
        }
    }
    drop(journal_lock);
    // With a Redis tier, Redis drops what the journal dropped (still before anyone is
    // accepted), or the read-through and other hosts would serve it.
    daemon.send_journal_drops(&applied.drops, &carried);
    if let Some(addr) = cfg.metrics_listen {
        metrics::serve(daemon.clone(), addr)?;
    }
    // The heartbeat was stamped when the table was made, before bind's wait after a crash:
    // publish a fresh one before the first client can attach, or it could find the new
    // segment already stale and read through the socket until the heartbeat thread runs.
    daemon.table.housekeeping();

    let d = daemon.clone();
    let hb = cfg.heartbeat;
    let watchdog = systemd::watchdog_interval();
    std::thread::Builder::new()
        .name("cachekitd-heartbeat".into())
        .spawn(move || {
            let mut last_watchdog = Instant::now();
            loop {
                d.table.housekeeping();
                d.slots.audit();
                if let Some(w) = watchdog {
                    if last_watchdog.elapsed() >= w / 2 {
                        systemd::notify("WATCHDOG=1");
                        last_watchdog = Instant::now();
                    }
                }
                std::thread::sleep(hb);
            }
        })?;

    if let (Some(path), Some(every)) = (cfg.snapshot.clone(), cfg.snapshot_interval) {
        let d = daemon.clone();
        std::thread::Builder::new()
            .name("cachekitd-snapshot".into())
            .spawn(move || loop {
                std::thread::sleep(every);
                let now = cachekit_shm::now_ms();
                let r = snapshot::write(&path, "periodic", |w| {
                    d.table.read(|t| snapshot::dump(t, w, now, false))
                });
                match r {
                    Ok(s) => tracing::debug!(
                        entries = s.entries,
                        locked_ms = s.locked.as_millis() as u64,
                        "periodic snapshot written"
                    ),
                    Err(e) => tracing::warn!("the periodic snapshot was not written: {e:#}"),
                }
            })?;
    }
    info!(
        instance = %cfg.instance,
        socket = %socket.display(),
        memory_bytes = cfg.memory_bytes,
        max_value_bytes = cfg.max_value_bytes,
        epoch = daemon.epoch,
        heartbeat_ms = hb.as_millis() as u64,
        "cachekitd ready"
    );
    systemd::notify("READY=1");
    socket::accept_loop(daemon, listener);
    Ok(())
}
