//! Command-line arguments.

use std::ffi::OsString;
use std::path::PathBuf;
use std::time::Duration;

use clap::{Parser, Subcommand};

use crate::duration::parse_duration;

/// Command-line client for cachekitd, the per-host shared-memory cache.
#[derive(Debug, Parser)]
#[command(
    name = "cachekit",
    version,
    about,
    after_help = "Exit codes: 0 success, 1 miss (get), 2 usage error, 3 cachekitd unavailable, \
                  4 request refused (not permitted, invalid, too large), 5 other error.\n\
                  The socket is <dir>/<instance>.sock in the first of /run/cachekit, \
                  $XDG_RUNTIME_DIR/cachekit, /tmp/cachekit-<uid> that holds it \
                  ($CACHEKIT_DIR overrides the list)."
)]
pub struct Cli {
    /// Daemon instance whose socket to use.
    #[arg(
        long,
        global = true,
        env = "CACHEKIT_INSTANCE",
        default_value = "default"
    )]
    pub instance: String,
    /// Socket path (overrides --instance).
    #[arg(long, global = true, env = "CACHEKIT_SOCKET")]
    pub socket: Option<PathBuf>,
    /// Namespace of the keys and tags.
    #[arg(
        short = 'n',
        long,
        global = true,
        env = "CACHEKIT_NAMESPACE",
        default_value = "default"
    )]
    pub namespace: String,
    /// Print one JSON object on stdout instead of text.
    #[arg(long, global = true)]
    pub json: bool,
    /// How long to wait for the daemon's answer (e.g. 5s, 500ms).
    #[arg(long, global = true, value_parser = parse_timeout, default_value = "5s")]
    pub timeout: Duration,
    #[command(subcommand)]
    pub command: Command,
}

/// `--timeout`: a duration above zero (it bounds every wait for the daemon).
fn parse_timeout(text: &str) -> Result<Duration, String> {
    match parse_duration(text)? {
        d if d.is_zero() => Err(format!(
            "{text:?} is zero; the timeout bounds every wait for the daemon, so give more, like 5s or 500ms"
        )),
        d => Ok(d),
    }
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Check that the daemon answers; show its epoch and heartbeat.
    Ping,
    /// Show the daemon's counters and this client's view of the segment.
    Stats,
    /// Print the value of KEY (exit code 1 and "miss" on stderr when absent).
    Get {
        /// The key.
        key: OsString,
        /// Write the value's bytes to stdout exactly, with no newline or escaping.
        #[arg(long, conflicts_with = "json")]
        raw: bool,
    },
    /// Store VALUE (or a file's contents, or stdin with `-`) under KEY.
    Set {
        /// The key.
        key: OsString,
        /// The value; `-` reads it from stdin.
        #[arg(required_unless_present = "file", conflicts_with = "file")]
        value: Option<OsString>,
        /// Read the value from this file.
        #[arg(long, short = 'f')]
        file: Option<PathBuf>,
        /// Time to live (30s, 500ms, 5m, 1h30m); default: no expiry.
        #[arg(long, value_parser = parse_duration)]
        ttl: Option<Duration>,
        /// How long after expiry the value may still be served, marked stale.
        #[arg(long, value_parser = parse_duration, default_value = "0")]
        grace: Duration,
        /// A tag path such as posts/123 (repeatable).
        #[arg(long = "tag", short = 't')]
        tags: Vec<String>,
    },
    /// Delete KEY.
    #[command(visible_alias = "delete")]
    Del {
        /// The key.
        key: OsString,
    },
    /// Invalidate every entry tagged TAG or a tag below it (posts/1 covers posts/1/comments).
    Invalidate {
        /// Tag paths.
        #[arg(required = true)]
        tags: Vec<String>,
        /// Only entries tagged with exactly these paths, not the tags below them.
        #[arg(long)]
        exact: bool,
    },
    /// Drop every entry of the namespace.
    Clear,
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    fn parse(args: &[&str]) -> Result<Cli, clap::Error> {
        Cli::try_parse_from(std::iter::once("cachekit").chain(args.iter().copied()))
    }

    #[test]
    fn the_command_definition_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn global_options_anywhere() {
        let cli = parse(&["get", "k", "--instance", "dev", "-n", "app", "--json"]).unwrap();
        assert_eq!(cli.instance, "dev");
        assert_eq!(cli.namespace, "app");
        assert!(cli.json);
        assert!(matches!(cli.command, Command::Get { raw: false, .. }));
        let cli = parse(&["--socket", "/tmp/x.sock", "ping"]).unwrap();
        assert_eq!(cli.socket, Some(PathBuf::from("/tmp/x.sock")));
        assert_eq!(cli.timeout, Duration::from_secs(5));
    }

    #[test]
    fn set_arguments() {
        let cli = parse(&[
            "set", "k", "v", "--ttl", "30s", "--grace", "5m", "--tag", "a/b", "-t", "c",
        ])
        .unwrap();
        let Command::Set {
            key,
            value,
            file,
            ttl,
            grace,
            tags,
        } = cli.command
        else {
            panic!("not set")
        };
        assert_eq!(key, "k");
        assert_eq!(value, Some("v".into()));
        assert_eq!(file, None);
        assert_eq!(ttl, Some(Duration::from_secs(30)));
        assert_eq!(grace, Duration::from_secs(300));
        assert_eq!(tags, ["a/b", "c"]);

        assert!(parse(&["set", "k", "--file", "/etc/hostname"]).is_ok());
        assert!(
            parse(&["set", "k"]).is_err(),
            "a value or --file is required"
        );
        assert!(parse(&["set", "k", "v", "--file", "f"]).is_err());
        let e = parse(&["set", "k", "v", "--ttl", "soon"]).unwrap_err();
        assert!(e.to_string().contains("like 30s"), "{e}");
    }

    #[test]
    fn other_commands() {
        assert!(matches!(
            parse(&["delete", "k"]).unwrap().command,
            Command::Del { .. }
        ));
        let cli = parse(&["invalidate", "a", "b/c", "--exact"]).unwrap();
        assert!(
            matches!(cli.command, Command::Invalidate { exact: true, ref tags } if tags == &["a", "b/c"])
        );
        assert!(parse(&["invalidate"]).is_err());
        assert!(parse(&["get", "k", "--raw", "--json"]).is_err());
        assert!(matches!(parse(&["clear"]).unwrap().command, Command::Clear));
        assert!(matches!(parse(&["stats"]).unwrap().command, Command::Stats));
    }
}
