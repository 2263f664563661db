//! The journal applied to a table: what a writer's file asks is done, a non-writer's file is
//! ignored, a truncated or damaged file applies exactly the records that verify, and nothing
//! planted in the directory hangs or crashes the start.

use super::*;
use cachekit_proto::journal::FILE_MAGIC;
use cachekit_shm::{now_ms, Backing, InsertOptions, TableConfig, Writer};
use std::io::Write;

const INSTANCE: &str = "t";

fn me() -> u32 {
    rustix::process::geteuid().as_raw()
}

/// A table holding `app`: k0..k5 (k2, k3 tagged `posts/1`), and `other`: o0, o1.
fn table() -> SharedTable {
    // A fixed seed: tag counters are hashed into a masked array, and with a random seed the
    // namespace's counter would now and then share one with `posts` (an invalidation of
    // `posts` then hides the whole namespace: safe, but not what the expectations say).
    let cfg = TableConfig {
        arena_bytes: 4 << 20,
        tag_counters: 1024,
        hash_seed: Some(0x15_15_15),
        ..TableConfig::default()
    };
    let t = SharedTable::new(Writer::create(&cfg, Backing::Heap).expect("heap table"));
    t.change(|t| {
        for i in 0..6 {
            let tags: &[&str] = if (2..4).contains(&i) {
                &["posts/1"]
            } else {
                &[]
            };
            let opts = InsertOptions {
                ttl_ms: None,
                grace_ms: 0,
                tags,
            };
            t.set("app", format!("k{i}").as_bytes(), b"v", &opts, None)
                .expect("insert");
        }
        for i in 0..2 {
            let opts = InsertOptions {
                ttl_ms: None,
                grace_ms: 0,
                tags: &[],
            };
            t.set("other", format!("o{i}").as_bytes(), b"v", &opts, None)
                .expect("insert");
        }
    });
    t
}

/// Which of the table's entries are live, in a fixed order.
fn live(t: &SharedTable) -> Vec<String> {
    let now = now_ms();
    let mut out = Vec::new();
    t.read(|t| {
        for (ns, key) in (0..6)
            .map(|i| ("app", format!("k{i}")))
            .chain((0..2).map(|i| ("other", format!("o{i}"))))
        {
            if t.entry(ns, key.as_bytes(), now).is_some() {
                out.push(format!("{ns}/{key}"));
            }
        }
    });
    out
}

fn records() -> Vec<JournalRecord> {
    vec![
        JournalRecord::DropKey {
            namespace: "app".into(),
            key: b"k0".to_vec(),
        },
        JournalRecord::Invalidate {
            namespace: "app".into(),
            tags: vec!["posts".into()],
            exact: false,
        },
        JournalRecord::ClearNamespace {
            namespace: "other".into(),
        },
        JournalRecord::DropKey {
            namespace: "app".into(),
            key: b"k5".to_vec(),
        },
    ]
}

fn file_bytes(recs: &[JournalRecord]) -> Vec<u8> {
    let mut b = FILE_MAGIC.to_vec();
    for r in recs {
        r.encode(&mut b);
    }
    b
}

/// A runtime dir with the journal prepared and one file of `bytes` in it.
fn dir_with(bytes: &[u8]) -> (tempfile::TempDir, PathBuf) {
    let d = tempfile::tempdir().expect("tempdir");
    prepare(d.path(), INSTANCE).expect("prepare");
    let f = dir_of(d.path(), INSTANCE).join("123-abc.j");
    std::fs::File::create(&f)
        .and_then(|mut w| w.write_all(bytes))
        .expect("write journal file");
    (d, f)
}

fn writers_me() -> (Vec<u32>, Vec<u32>) {
    (vec![me()], vec![])
}

/// [`apply_trusting`] with this process's uid as the only writer, under `limits`.
fn apply_as_me(dir: &Path, t: &SharedTable, limits: Limits) -> Report {
    let w = writers_me();
    let mut trust = Trust::new(Writers {
        uids: &w.0,
        gids: &w.1,
    });
    apply_trusting(dir, INSTANCE, &mut trust, t, limits)
}

fn run(dir: &Path, w: &(Vec<u32>, Vec<u32>), t: &SharedTable) -> Report {
    apply(
        dir,
        INSTANCE,
        Writers {
            uids: &w.0,
            gids: &w.1,
        },
        t,
    )
}

#[test]
fn a_writers_records_are_applied_and_the_file_removed() {
    let (d, f) = dir_with(&file_bytes(&records()));
    let t = table();
    let r = run(d.path(), &writers_me(), &t);
    assert_eq!((r.files, r.records, r.damaged, r.torn), (1, 4, 0, 0));
    assert_eq!(live(&t), ["app/k1", "app/k4"]);
    assert!(!f.exists(), "an applied file is removed");
    // The directory's mode: create-only for others, sticky.
    let m = rustix::fs::stat(dir_of(d.path(), INSTANCE))
        .unwrap()
        .st_mode
        & 0o7777;
    assert_eq!(m, 0o1733);
}

#[test]
fn clear_all_empties_every_namespace() {
    let (d, _f) = dir_with(&file_bytes(&[JournalRecord::ClearAll]));
    let t = table();
    run(d.path(), &writers_me(), &t);
    assert!(live(&t).is_empty());
}

#[test]
fn a_file_not_owned_by_a_writer_is_ignored_and_counted() {
    let (d, f) = dir_with(&file_bytes(&records()));
    let writers = if me() == 0 {
        // Root: the file really belongs to nobody, and root is the writer.
        rustix::fs::chown(
            &f,
            Some(rustix::fs::Uid::from_raw(65534)),
            Some(rustix::fs::Gid::from_raw(65534)),
        )
        .expect("chown to nobody");
        (vec![0], vec![0])
    } else {
        // Not root: this user cannot give the file away, so the writers are someone else.
        (vec![me() + 1], vec![])
    };
    let t = table();
    let r = run(d.path(), &writers, &t);
    assert_eq!((r.files, r.records, r.not_writer), (0, 0, 1));
    assert_eq!(
        live(&t).len(),
        8,
        "nothing of the non-writer's file applied"
    );
    assert!(!f.exists(), "an ignored file is removed too");
}

#[test]
fn a_writer_group_is_enough() {
    let (d, _f) = dir_with(&file_bytes(&records()));
    let gid = rustix::process::getegid().as_raw();
    let t = table();
    let r = run(d.path(), &(vec![me() + 1], vec![gid]), &t);
    assert_eq!(r.records, 4);
}

/// The live entries after applying the first `n` records to a fresh table.
fn expected_after(n: usize) -> Vec<String> {
    let t = table();
    t.change(|t| {
        for r in &records()[..n] {
            apply_record(t, r);
        }
    });
    live(&t)
}

#[test]
fn truncation_at_every_offset_applies_exactly_the_whole_records() {
    let bytes = file_bytes(&records());
    let mut ends = vec![FILE_MAGIC.len()];
    for r in records() {
        let mut one = Vec::new();
        r.encode(&mut one);
        ends.push(ends.last().unwrap() + one.len());
    }
    for cut in 0..=bytes.len() {
        let (d, _f) = dir_with(&bytes[..cut]);
        let t = table();
        let r = run(d.path(), &writers_me(), &t);
        let whole = ends.iter().filter(|&&e| e <= cut).count().saturating_sub(1);
        assert_eq!(r.records as usize, whole, "cut at {cut}");
        assert_eq!(live(&t), expected_after(whole), "cut at {cut}");
        assert_eq!(r.damaged, 0, "a truncation is not damage (cut at {cut})");
    }
}

#[test]
fn a_damaged_byte_anywhere_empties_the_table_or_reads_as_a_torn_end() {
    let bytes = file_bytes(&records());
    let mut cleared = 0;
    for i in 0..bytes.len() {
        let mut b = bytes.clone();
        b[i] ^= 0x5a;
        let (d, _f) = dir_with(&b);
        let t = table();
        let r = run(d.path(), &writers_me(), &t);
        let n = r.records as usize;
        assert!(n < records().len(), "flip at {i} went unnoticed");
        if r.damaged == 1 {
            cleared += 1;
            assert!(r.cleared.is_some(), "flip at {i}");
            assert!(
                live(&t).is_empty(),
                "flip at {i}: the records after it are unknown"
            );
        } else {
            // A length grown past the end of the file reads as a torn last record.
            assert_eq!(r.torn, 1, "flip at {i}");
            assert_eq!(live(&t), expected_after(n), "flip at {i}");
        }
    }
    assert!(
        cleared > bytes.len() / 2,
        "{cleared} of {} flips seen as damage",
        bytes.len()
    );
}

#[test]
fn a_file_longer_than_any_client_writes_is_damage() {
    let mut b = file_bytes(&records()[..1]);
    b.resize(MAX_FILE_BYTES as usize + 1, 0);
    let (d, _f) = dir_with(&b);
    let t = table();
    let r = run(d.path(), &writers_me(), &t);
    assert_eq!(r.damaged, 1);
    assert!(live(&t).is_empty());
}

#[test]
fn a_fifo_a_symlink_and_a_directory_are_skipped_without_hanging() {
    let (d, _f) = dir_with(&file_bytes(&records()[..1]));
    let j = dir_of(d.path(), INSTANCE);
    rustix::fs::mknodat(
        rustix::fs::CWD,
        j.join("fifo"),
        FileType::Fifo,
        Mode::from_raw_mode(0o600),
        0,
    )
    .expect("mkfifo");
    std::os::unix::fs::symlink("/etc/passwd", j.join("link")).expect("symlink");
    std::fs::create_dir(j.join("sub")).expect("mkdir");
    let t = table();
    let r = run(d.path(), &writers_me(), &t);
    assert_eq!((r.files, r.records), (1, 1));
    assert_eq!(r.unusable, 3);
}

#[test]
fn prepare_refuses_a_journal_path_that_is_not_its_directory() {
    let d = tempfile::tempdir().expect("tempdir");
    std::fs::write(dir_of(d.path(), INSTANCE), b"x").unwrap();
    let e = prepare(d.path(), INSTANCE).unwrap_err();
    assert!(e.contains("remove it"), "{e}");
}

#[test]
fn a_journal_that_cannot_be_opened_empties_the_table() {
    let d = tempfile::tempdir().expect("tempdir");
    // Something at the journal's path that is not a directory: it cannot be listed, and a
    // failed write may be behind it.
    std::fs::write(dir_of(d.path(), INSTANCE), b"x").unwrap();
    let t = table();
    let r = run(d.path(), &writers_me(), &t);
    assert!(r.cleared.is_some(), "{r:?}");
    assert!(live(&t).is_empty(), "every entry dropped");
}

#[test]
fn no_journal_at_all_leaves_the_table() {
    let d = tempfile::tempdir().expect("tempdir");
    let t = table();
    let r = run(d.path(), &writers_me(), &t);
    assert_eq!(r, Report::default());
    assert_eq!(live(&t).len(), 8);
    assert!(!exists(d.path(), INSTANCE));
}

const PASSWD: &str = "root:x:0:0:root:/root:/bin/bash\nalice:x:1000:1000::/home/alice:/bin/sh\nbob:x:1001:1001::/home/bob:/bin/sh\nbroken line\n";
const GROUP: &str = "root:x:0:\nalice:x:1000:\nbob:x:1001:\ncache:x:2000:bob,carol\nweb:x:2001: alice , bob\nbad:x:notanumber:alice\n";

#[test]
fn groups_of_reads_the_primary_group_and_memberships() {
    assert_eq!(groups_of(1001, PASSWD, GROUP), vec![1001, 2000, 2001]);
    assert_eq!(groups_of(1000, PASSWD, GROUP), vec![1000, 2001]);
    assert_eq!(groups_of(0, PASSWD, GROUP), vec![0]);
    assert!(groups_of(4242, PASSWD, GROUP).is_empty(), "no passwd line");
    assert!(groups_of(1001, "", GROUP).is_empty());
}

#[test]
fn a_writer_through_a_supplementary_group_is_honoured() {
    // This user, per the databases given, is "me" with a primary group that is not the file's,
    // and a member of group 2000 only.
    let egid = rustix::process::getegid().as_raw();
    assert!(
        egid != 2000 && egid != 2001,
        "the test needs a primary group other than 2000, 2001"
    );
    let passwd = format!(
        "other:x:{}:1:::\nme:x:{}:{}:::\n",
        me() + 1,
        me(),
        egid.wrapping_add(7)
    );
    let group = "cache:x:2000:someone,me\nweb:x:2001:other\n";
    let uids = [me() + 1];
    for (gid, honoured) in [(2000, true), (2001, false)] {
        let (d, _f) = dir_with(&file_bytes(&records()));
        let gids = [gid];
        let mut trust = Trust::new(Writers {
            uids: &uids,
            gids: &gids,
        });
        trust.db = Some((passwd.clone(), group.to_string()));
        let t = table();
        let r = apply_trusting(d.path(), INSTANCE, &mut trust, &t, Limits::DEFAULT);
        match honoured {
            true => assert_eq!((r.files, r.records, r.not_writer), (1, 4, 0), "gid {gid}"),
            false => assert_eq!((r.files, r.not_writer), (0, 1), "gid {gid}"),
        }
    }
}

#[test]
fn a_writers_file_that_cannot_be_opened_is_damage() {
    let (d, _f) = dir_with(&file_bytes(&records()));
    let dirfd = rustix::fs::open(
        dir_of(d.path(), INSTANCE),
        OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
        Mode::empty(),
    )
    .expect("open the journal");
    let w = writers_me();
    let name = std::ffi::OsStr::new("123-abc.j");
    // What an EACCES on open (a group this daemon is not in) is judged.
    let mut trust = Trust::new(Writers {
        uids: &w.0,
        gids: &w.1,
    });
    assert!(matches!(
        unopenable(&dirfd, name, rustix::io::Errno::ACCESS, &mut trust),
        Skip::Unreadable(_)
    ));
    let others = [me() + 1];
    let mut strangers = Trust::new(Writers {
        uids: &others,
        gids: &[],
    });
    assert!(matches!(
        unopenable(&dirfd, name, rustix::io::Errno::ACCESS, &mut strangers),
        Skip::Unusable(_)
    ));
}

fn mode_of(p: &Path) -> (u32, u32) {
    let st = rustix::fs::lstat(p).expect("lstat");
    (st.st_mode & 0o7777, st.st_gid)
}

fn gid_me() -> u32 {
    rustix::process::getegid().as_raw()
}

#[test]
fn the_lock_opens_only_to_the_daemons_user_and_the_writer_group() {
    let d = tempfile::tempdir().expect("tempdir");
    prepare(d.path(), INSTANCE).expect("prepare");
    let lock = lock_of(d.path(), INSTANCE);
    // An old lock file anyone could open (as earlier versions made it).
    std::fs::write(&lock, b"").unwrap();
    rustix::fs::chmod(&lock, Mode::from_raw_mode(0o644)).unwrap();
    let gids = [gid_me()];
    let w = Writers {
        uids: &[],
        gids: &gids,
    };
    let held = lock_exclusive(d.path(), INSTANCE, w).expect("lock");
    assert_eq!(mode_of(&lock), (0o660, gid_me()));
    drop(held);
    // No writer group: the daemon's user alone.
    let held = lock_exclusive(
        d.path(),
        INSTANCE,
        Writers {
            uids: &[],
            gids: &[],
        },
    )
    .expect("lock");
    assert_eq!(mode_of(&lock).0, 0o600);
    drop(held);
}

/// Whether `uid` (with `gid`) can open `path` for reading, tried by a shell running as them.
fn opens_as(uid: u32, gid: u32, path: &Path) -> bool {
    use std::os::unix::process::CommandExt;
    std::process::Command::new("sh")
        .arg("-c")
        .arg("exec 3< \"$1\"")
        .arg("sh")
        .arg(path)
        .uid(uid)
        .gid(gid)
        .stderr(std::process::Stdio::null())
        .status()
        .expect("running sh")
        .success()
}

#[test]
fn another_user_cannot_open_the_lock_to_stall_a_start() {
    assert_eq!(
        me(),
        0,
        "this test runs as root (it opens the lock as another user); run the daemon's unit tests as root"
    );
    let d = tempfile::tempdir().expect("tempdir");
    // The runtime dir reachable by anyone: the lock's own mode is what keeps others out.
    rustix::fs::chmod(d.path(), Mode::from_raw_mode(0o755)).unwrap();
    prepare(d.path(), INSTANCE).expect("prepare");
    let gids = [4242];
    let w = Writers {
        uids: &[],
        gids: &gids,
    };
    drop(lock_exclusive(d.path(), INSTANCE, w).expect("lock"));
    let lock = lock_of(d.path(), INSTANCE);
    assert_eq!(
        mode_of(&lock),
        (0o660, 4242),
        "root gives it the writer group"
    );
    assert!(!opens_as(65534, 65534, &lock), "a stranger opened the lock");
    assert!(
        opens_as(65534, 4242, &lock),
        "a writer-group member could not open the lock"
    );
}

#[test]
fn a_lock_held_past_the_wait_fails_once_and_the_next_start_gets_a_fresh_one() {
    let d = tempfile::tempdir().expect("tempdir");
    prepare(d.path(), INSTANCE).expect("prepare");
    let lock = lock_of(d.path(), INSTANCE);
    std::fs::write(&lock, b"").unwrap();
    // Someone kept a descriptor of the lock and holds it.
    let stale = std::fs::File::open(&lock).unwrap();
    rustix::fs::flock(&stale, FlockOperation::LockShared).unwrap();
    let w = Writers {
        uids: &[],
        gids: &[],
    };
    let t0 = Instant::now();
    let e = lock_within(d.path(), INSTANCE, w, Duration::from_millis(200)).unwrap_err();
    assert!(e.contains("still held"), "{e}");
    assert!(t0.elapsed() < Duration::from_secs(2), "the wait is bounded");
    // The next start does not wait for that holder: the path names a new file.
    lock_within(d.path(), INSTANCE, w, Duration::from_millis(200))
        .expect("a fresh lock the old holder has nothing to do with");
    drop(stale);
}

#[test]
fn without_the_lock_a_start_with_a_journal_is_cold() {
    let d = tempfile::tempdir().expect("tempdir");
    let t = table();
    assert!(!without_lock(d.path(), INSTANCE, &t, "test"));
    assert_eq!(
        live(&t).len(),
        8,
        "no journal: nothing could contradict the table"
    );
    prepare(d.path(), INSTANCE).expect("prepare");
    assert!(without_lock(d.path(), INSTANCE, &t, "test"));
    assert!(live(&t).is_empty());
}

fn fill(dir: &Path, n: usize, bytes: &[u8]) {
    let jdir = dir_of(dir, INSTANCE);
    for i in 0..n {
        std::fs::write(jdir.join(format!("junk-{i}")), bytes).expect("write");
    }
}

#[test]
fn more_entries_than_the_limit_empty_the_table_and_stop_reading() {
    let d = tempfile::tempdir().expect("tempdir");
    prepare(d.path(), INSTANCE).expect("prepare");
    fill(d.path(), 11, &file_bytes(&[]));
    let t = table();
    let limits = Limits {
        entries: 10,
        bytes: u64::MAX,
    };
    let r = apply_as_me(d.path(), &t, limits);
    assert_eq!((r.files, r.over_limit), (10, 1), "{r:?}");
    assert!(r.cleared.is_some() && live(&t).is_empty(), "{r:?}");
    assert_eq!(
        std::fs::read_dir(dir_of(d.path(), INSTANCE))
            .unwrap()
            .count(),
        0
    );
}

#[test]
fn more_bytes_than_the_limit_empty_the_table() {
    let d = tempfile::tempdir().expect("tempdir");
    prepare(d.path(), INSTANCE).expect("prepare");
    fill(d.path(), 3, &file_bytes(&records()[..1]));
    let t = table();
    let limits = Limits {
        entries: 100,
        bytes: 20,
    };
    let r = apply_as_me(d.path(), &t, limits);
    assert_eq!((r.files, r.over_limit), (1, 2), "{r:?}");
    assert!(r.cleared.is_some() && live(&t).is_empty(), "{r:?}");
}

#[test]
fn a_flood_of_junk_from_a_non_writer_keeps_the_start_bounded_and_cold() {
    let d = tempfile::tempdir().expect("tempdir");
    prepare(d.path(), INSTANCE).expect("prepare");
    let n = MAX_ENTRIES as usize + 1000;
    fill(d.path(), n, b"junk");
    let t = table();
    let t0 = Instant::now();
    // These files are not a writer's: each is only examined and removed.
    let r = run(d.path(), &(vec![me() + 1], vec![]), &t);
    let took = t0.elapsed();
    assert_eq!(r.not_writer, MAX_ENTRIES, "{r:?}");
    assert_eq!(r.over_limit, 1000, "{r:?}");
    assert!(live(&t).is_empty(), "past the limit the start is cold");
    assert!(took < REMOVE_BUDGET + Duration::from_secs(8), "{took:?}");
    assert_eq!(
        std::fs::read_dir(dir_of(d.path(), INSTANCE))
            .unwrap()
            .count(),
        0
    );
}
