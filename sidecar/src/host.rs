//! What the host can give: `--memory` checked against physical memory, available memory and
//! the cgroup's memory limit before the table is created.
//!
//! The table is a memfd whose pages are taken as entries are written, so a table larger than
//! the machine starts fine and fails later, when the kernel's OOM killer (or the cgroup's)
//! kills the daemon under load. So: refuse when it exceeds physical memory (`MemTotal`) or the
//! cgroup limit, which it can never fit in; warn when it exceeds what is available now
//! (`MemAvailable`), which changes as other processes come and go.

use std::path::PathBuf;

/// The host's memory figures, in bytes; `None` when unknown.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Memory {
    pub total: Option<u64>,
    pub available: Option<u64>,
    /// The tightest memory limit of this process's cgroup and its ancestors, and its file.
    pub cgroup: Option<(u64, PathBuf)>,
}

impl Memory {
    /// Reads `/proc/meminfo` and the cgroup limit (v2 `memory.max`, v1
    /// `memory.limit_in_bytes`).
    pub fn read() -> Memory {
        let meminfo = std::fs::read_to_string("/proc/meminfo").unwrap_or_default();
        let field = |name: &str| {
            meminfo.lines().find_map(|l| {
                let kib = l.strip_prefix(name)?.trim().strip_suffix("kB")?.trim();
                kib.parse::<u64>().ok().map(|k| k * 1024)
            })
        };
        Memory {
            total: field("MemTotal:"),
            available: field("MemAvailable:"),
            cgroup: cgroup_limit(),
        }
    }

    /// `Err` (refuse) when `bytes` of table can never fit; `Ok(Some(warning))` when it does
    /// not fit now. `setting` names where the figure came from (`--memory 1TiB`).
    pub fn check(&self, bytes: u64, setting: &str) -> Result<Option<String>, String> {
        let over = |limit: u64, what: &str| {
            format!(
                "{setting} asks for {} of table, more than {what} ({}); the daemon would be \
                 killed once it filled; give at most that, minus what the host's other \
                 processes need",
                gib(bytes),
                gib(limit)
            )
        };
        if let Some(total) = self.total.filter(|t| bytes > *t) {
            return Err(over(
                total,
                "this host's physical memory (MemTotal in /proc/meminfo)",
            ));
        }
        if let Some((limit, file)) = self.cgroup.as_ref().filter(|(l, _)| bytes > *l) {
            return Err(over(
                *limit,
                &format!("this process's cgroup memory limit ({})", file.display()),
            ));
        }
        Ok(self.available.filter(|a| bytes > *a).map(|available| {
            format!(
                "{setting} asks for {} of table, more than the memory available now ({}, \
                 MemAvailable in /proc/meminfo): pages are taken as entries are written, so \
                 the host may swap or kill a process once the table fills",
                gib(bytes),
                gib(available)
            )
        }))
    }
}

fn gib(bytes: u64) -> String {
    format!(
        "{:.1} GiB = {bytes} bytes",
        bytes as f64 / (1u64 << 30) as f64
    )
}

/// The smallest memory limit among this process's cgroup and its ancestors (a limit of
/// "max", or v1's "unlimited" 2^63-ish, is no limit).
fn cgroup_limit() -> Option<(u64, PathBuf)> {
    let own = std::fs::read_to_string("/proc/self/cgroup").unwrap_or_default();
    let mut files = Vec::new();
    for line in own.lines() {
        let mut parts = line.splitn(3, ':');
        let (_, controllers, path) = (parts.next(), parts.next(), parts.next());
        let (Some(controllers), Some(path)) = (controllers, path) else {
            continue;
        };
        let (root, file) = match controllers {
            "" => ("/sys/fs/cgroup", "memory.max"),
            c if c.split(',').any(|c| c == "memory") => {
                ("/sys/fs/cgroup/memory", "memory.limit_in_bytes")
            }
            _ => continue,
        };
        // From the cgroup up to the root (in a container, the root is the container's).
        let mut dir = PathBuf::from(root).join(path.trim_start_matches('/'));
        loop {
            files.push(dir.join(file));
            if dir == std::path::Path::new(root) || !dir.pop() {
                break;
            }
        }
    }
    files
        .into_iter()
        .filter_map(|f| {
            let text = std::fs::read_to_string(&f).ok()?;
            let n: u64 = text.trim().parse().ok()?;
            (n < 1 << 60).then_some((n, f))
        })
        .min_by_key(|(n, _)| *n)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn larger_than_the_host_or_the_cgroup_is_refused_larger_than_available_is_a_warning() {
        let m = Memory {
            total: Some(24 << 30),
            available: Some(8 << 30),
            cgroup: Some((16 << 30, PathBuf::from("/sys/fs/cgroup/x/memory.max"))),
        };
        let e = m.check(1 << 40, "--memory 1TiB").unwrap_err();
        assert!(
            e.contains("--memory 1TiB") && e.contains("24.0 GiB") && e.contains("MemTotal"),
            "{e}"
        );
        let e = m.check(20 << 30, "memory in f.toml").unwrap_err();
        assert!(
            e.contains("memory in f.toml") && e.contains("/sys/fs/cgroup/x/memory.max"),
            "{e}"
        );
        let w = m.check(10 << 30, "--memory 10GiB").unwrap().unwrap();
        assert!(w.contains("MemAvailable") && w.contains("8.0 GiB"), "{w}");
        assert_eq!(m.check(64 << 20, "--memory 64MiB"), Ok(None));
        assert_eq!(
            Memory::default().check(1 << 50, "x"),
            Ok(None),
            "unknown: no opinion"
        );
    }

    #[test]
    fn this_host_has_figures() {
        let m = Memory::read();
        assert!(m.total.is_some_and(|t| t > 0), "{m:?}");
        assert!(m.available.is_some_and(|a| a <= m.total.unwrap()), "{m:?}");
    }
}
