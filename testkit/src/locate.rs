//! Which `cachekitd` binary the tests run.
//!
//! One rule for every test and benchmark: `$CACHEKITD_BIN` when set (scripts/bench, and the
//! Go, Python and C suites, use the same variable), else `cachekitd` in the Cargo profile
//! directory of the running executable (`target/<profile>/` for a binary,
//! `target/<profile>/deps/` for a test or benchmark). Cargo builds a package's own binaries
//! for its integration tests, but not another package's: so a test of another crate may find
//! none, or one older than its sources. Both are failures whose message is the `cargo build`
//! command to run; nothing is skipped.

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use std::time::SystemTime;

/// The environment variable that points at the `cachekitd` to run.
pub const BIN_VAR: &str = "CACHEKITD_BIN";

/// The `cachekitd` to run (see the module documentation). Panics, saying how to build it,
/// when there is none or when it is older than one of its source files.
pub fn cachekitd() -> PathBuf {
    static FOUND: OnceLock<Result<PathBuf, String>> = OnceLock::new();
    let found = FOUND.get_or_init(|| {
        let exe = std::env::current_exe().map_err(|e| {
            format!(
                "cannot tell where this executable is ({e}), so where cachekitd is: set {BIN_VAR}"
            )
        })?;
        locate(std::env::var_os(BIN_VAR), &exe)
    });
    match found {
        Ok(bin) => bin.clone(),
        Err(msg) => panic!("{msg}"),
    }
}

/// The rule itself, apart from the process environment: `given` is `$CACHEKITD_BIN`, `exe`
/// the running executable.
pub(crate) fn locate(given: Option<OsString>, exe: &Path) -> Result<PathBuf, String> {
    if let Some(given) = given.filter(|g| !g.is_empty()) {
        let bin = PathBuf::from(given);
        return if bin.is_file() {
            Ok(bin)
        } else {
            Err(format!(
                "{BIN_VAR}={} is not a file: point it at a built cachekitd, or unset it to run \
                 the one Cargo builds next to this executable",
                bin.display()
            ))
        };
    }
    let dir = profile_dir(exe)?;
    let build = build_command(dir);
    let bin = dir.join("cachekitd");
    if !bin.is_file() {
        return Err(format!(
            "cachekitd is not built: {} does not exist. This runs the real daemon, which Cargo \
             does not build for another package's tests or benchmarks: build it first with \
             `{build}` (or set {BIN_VAR} to a built cachekitd). `cargo nextest run --workspace` \
             and scripts/test build it.",
            bin.display()
        ));
    }
    check_fresh(&bin, &build)?;
    Ok(bin)
}

/// `target/<profile>` of an executable in `target/<profile>/` or in its `deps/` or
/// `examples/`.
fn profile_dir(exe: &Path) -> Result<&Path, String> {
    let parent = exe
        .parent()
        .ok_or_else(|| format!("{} has no parent directory: set {BIN_VAR}", exe.display()))?;
    match parent.file_name().and_then(|n| n.to_str()) {
        Some("deps" | "examples") => parent.parent().ok_or_else(|| {
            format!(
                "{} is not inside a Cargo target directory: set {BIN_VAR}",
                exe.display()
            )
        }),
        _ => Ok(parent),
    }
}

/// The command that builds `cachekitd` into `profile_dir` (`cargo bench` builds into
/// `target/release` too).
fn build_command(profile_dir: &Path) -> String {
    match profile_dir.file_name().and_then(|n| n.to_str()) {
        Some("debug") | None => "cargo build -p cachekitd".to_string(),
        Some("release") => "cargo build -p cachekitd --release".to_string(),
        Some(profile) => format!("cargo build -p cachekitd --profile {profile}"),
    }
}

/// Fails when a source file Cargo built `bin` from (as listed in `bin`'s dep-info file,
/// `cachekitd.d` next to it) changed after `bin` was built: the test would run yesterday's
/// daemon. Without a dep-info file (a binary copied there by hand) there is nothing to
/// compare with, and the binary is taken as it is.
fn check_fresh(bin: &Path, build: &str) -> Result<(), String> {
    let Ok(dep_info) = std::fs::read_to_string(bin.with_extension("d")) else {
        return Ok(());
    };
    let built = mtime(bin).ok_or_else(|| format!("cannot read the mtime of {}", bin.display()))?;
    let newer = dep_info_sources(&dep_info)
        .into_iter()
        .filter_map(|src| mtime(&src).map(|t| (t, src)))
        .filter(|(t, _)| *t > built)
        .max_by_key(|(t, _)| *t);
    match newer {
        Some((_, src)) => Err(format!(
            "cachekitd at {} is older than its source {}: rebuild it with `{build}`",
            bin.display(),
            src.display()
        )),
        None => Ok(()),
    }
}

fn mtime(path: &Path) -> Option<SystemTime> {
    path.metadata().and_then(|m| m.modified()).ok()
}

/// The sources of a Makefile-style dep-info file as Cargo writes it: `target: src src ...`
/// on the first line, spaces inside a path escaped with a backslash.
pub(crate) fn dep_info_sources(dep_info: &str) -> Vec<PathBuf> {
    let Some((_, deps)) = dep_info.lines().next().and_then(|l| l.split_once(": ")) else {
        return Vec::new();
    };
    let mut out = Vec::new();
    let mut current = String::new();
    let mut chars = deps.chars();
    while let Some(c) = chars.next() {
        match c {
            '\\' => current.extend(chars.next()),
            ' ' => {
                if !current.is_empty() {
                    out.push(PathBuf::from(std::mem::take(&mut current)));
                }
            }
            c => current.push(c),
        }
    }
    if !current.is_empty() {
        out.push(PathBuf::from(current));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_given_path_that_is_not_a_file_fails_naming_the_variable() {
        let e = locate(
            Some("/nonexistent/cachekitd".into()),
            Path::new("/x/deps/t"),
        )
        .unwrap_err();
        assert!(
            e.contains("CACHEKITD_BIN=/nonexistent/cachekitd is not a file"),
            "{e}"
        );
    }

    #[test]
    fn a_missing_binary_fails_with_the_build_command_of_the_profile() {
        let target = crate::temp_dir("locate");
        for (profile, command) in [
            ("debug", "`cargo build -p cachekitd`"),
            ("release", "`cargo build -p cachekitd --release`"),
            ("ci", "`cargo build -p cachekitd --profile ci`"),
        ] {
            let exe = target
                .path()
                .join(profile)
                .join("deps")
                .join("some_test-0123");
            let e = locate(None, &exe).unwrap_err();
            assert!(e.contains("cachekitd is not built"), "{e}");
            assert!(e.contains(command), "{profile}: {e}");
            // An empty variable counts as unset.
            assert_eq!(locate(Some("".into()), &exe).unwrap_err(), e);
        }
    }

    #[test]
    fn the_binary_is_found_in_the_profile_dir_of_tests_and_of_binaries() {
        let target = crate::temp_dir("locate");
        let profile = target.path().join("ci");
        std::fs::create_dir_all(profile.join("deps")).unwrap();
        std::fs::write(profile.join("cachekitd"), b"").unwrap();
        for exe in [
            profile.join("deps/a_test-0123"),
            profile.join("cachekit-bench"),
        ] {
            assert_eq!(locate(None, &exe).unwrap(), profile.join("cachekitd"));
        }
    }

    #[test]
    fn a_binary_older_than_a_source_in_its_dep_info_is_refused() {
        let target = crate::temp_dir("locate");
        let profile = target.path().join("ci");
        std::fs::create_dir_all(&profile).unwrap();
        let bin = profile.join("cachekitd");
        std::fs::write(&bin, b"").unwrap();
        let src = target.path().join("src dir").join("main.rs");
        std::fs::create_dir_all(src.parent().unwrap()).unwrap();
        std::fs::write(&src, b"").unwrap();
        let escaped = src.display().to_string().replace(' ', "\\ ");
        std::fs::write(
            bin.with_extension("d"),
            format!("{}: {escaped}\n", bin.display()),
        )
        .unwrap();
        let set_mtime = |p: &Path, secs: u64| {
            let t = SystemTime::UNIX_EPOCH + std::time::Duration::from_secs(secs);
            std::fs::File::options()
                .write(true)
                .open(p)
                .unwrap()
                .set_modified(t)
                .unwrap();
        };
        set_mtime(&bin, 2_000_000_000);
        set_mtime(&src, 1_000_000_000);
        assert_eq!(locate(None, &profile.join("t")).unwrap(), bin);
        set_mtime(&src, 2_000_000_001);
        let e = locate(None, &profile.join("t")).unwrap_err();
        assert!(e.contains("is older than its source"), "{e}");
        assert!(e.contains("src dir/main.rs"), "{e}");
        assert!(e.contains("`cargo build -p cachekitd --profile ci`"), "{e}");
    }

    #[test]
    fn dep_info_paths_with_escaped_spaces() {
        assert_eq!(
            dep_info_sources("/t/ci/cachekitd: /a/b.rs /c\\ d/e.rs\n\n/a/b.rs:\n"),
            [PathBuf::from("/a/b.rs"), PathBuf::from("/c d/e.rs")]
        );
        assert!(dep_info_sources("").is_empty());
    }
}
