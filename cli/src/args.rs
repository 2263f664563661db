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
    after_help = "Exit codes: 0 success, 1 miss (get, ttl, touch, incr/decr --no-create) or not \
                  stored (set --if-absent/--if-present) or damaged entries left (verify), 2 usage error, 3 cachekitd unavailable, \
                  4 request refused (not permitted, invalid, too large, not an integer), \
                  5 other error.\n\
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

/// A glob pattern: not empty (the protocol reads an empty pattern as "every key", so
/// `del --pattern "$UNSET"` would empty the namespace).
fn pattern_parser() -> impl clap::builder::TypedValueParser<Value = OsString> {
    use clap::builder::TypedValueParser;
    clap::builder::OsStringValueParser::new().try_map(|p| {
        if p.is_empty() {
            Err("the pattern is empty; give a glob such as 'user:*' ('*' selects every key)")
        } else {
            Ok(p)
        }
    })
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
        /// Store only if KEY has no fresh entry (add; exit code 1 when it has one).
        #[arg(long, conflicts_with = "if_present")]
        if_absent: bool,
        /// Store only if KEY has a fresh entry (replace; exit code 1 when it has none).
        #[arg(long)]
        if_present: bool,
    },
    /// Delete KEY, or every entry matching --pattern and/or --tag (frees their memory).
    #[command(
        visible_alias = "delete",
        group(clap::ArgGroup::new("what").required(true).multiple(true).args(["key", "pattern", "tag"]))
    )]
    Del {
        /// The key.
        #[arg(conflicts_with_all = ["pattern", "tag"])]
        key: Option<OsString>,
        /// Delete the keys matching this glob (`*`, `?`, `[a-z]`, `[^a]`, `\` escapes).
        #[arg(long, value_parser = pattern_parser())]
        pattern: Option<OsString>,
        /// Delete the entries tagged TAG or a tag below it.
        #[arg(long)]
        tag: Option<String>,
        /// With --tag: only entries tagged exactly TAG.
        #[arg(long, requires = "tag")]
        exact: bool,
    },
    /// List this host's keys of the namespace, one per line (a glob such as 'user:*').
    Keys {
        /// A glob over the keys (`*`, `?`, `[a-z]`, `[^a]`, `\` escapes); default: every key.
        #[arg(value_parser = pattern_parser())]
        pattern: Option<OsString>,
        /// Only entries tagged TAG or a tag below it.
        #[arg(long)]
        tag: Option<String>,
        /// With --tag: only entries tagged exactly TAG.
        #[arg(long, requires = "tag")]
        exact: bool,
    },
    /// Print how long KEY stays fresh, or "never" (exit code 1 and "miss" when absent).
    Ttl {
        /// The key.
        key: OsString,
    },
    /// Give KEY a new time to live from now, or none (exit code 1 and "miss" when absent).
    #[command(group(clap::ArgGroup::new("expiry").required(true).args(["ttl", "persist"])))]
    Touch {
        /// The key.
        key: OsString,
        /// The new time to live (30s, 500ms, 5m, 1h30m).
        #[arg(long, value_parser = parse_duration)]
        ttl: Option<Duration>,
        /// Never expire.
        #[arg(long)]
        persist: bool,
    },
    /// Add DELTA (default 1) to the integer at KEY and print the result.
    Incr(Counter),
    /// Subtract DELTA (default 1) from the integer at KEY and print the result.
    Decr(Counter),
    /// List the namespaces of this host's table with their entries and bytes.
    Namespaces,
    /// Check every entry of this host's table (all namespaces) as a warm restart does; exit
    /// code 1 when damaged entries remain.
    Verify {
        /// Drop the damaged entries found (writers only).
        #[arg(long)]
        repair: bool,
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

/// The arguments of `incr` and `decr`.
#[derive(Debug, clap::Args)]
pub struct Counter {
    /// The key.
    pub key: OsString,
    /// How much to add (incr) or subtract (decr).
    #[arg(default_value_t = 1, allow_negative_numbers = true)]
    pub delta: i64,
    /// The value before the delta when KEY is missing: the counter is created as
    /// initial + delta (like Redis INCR, which starts from 0).
    #[arg(long, default_value_t = 0, allow_negative_numbers = true)]
    pub initial: i64,
    /// Fail with exit code 1 and "miss" when KEY is missing instead of creating it.
    #[arg(long, conflicts_with_all = ["initial", "ttl"])]
    pub no_create: bool,
    /// Time to live of a counter this call creates (an existing one keeps its expiry).
    #[arg(long, value_parser = parse_duration)]
    pub ttl: Option<Duration>,
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
            if_absent: false,
            if_present: false,
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

    #[test]
    fn management_commands() {
        let Command::Incr(c) = parse(&["incr", "k", "-5", "--initial", "-2"])
            .unwrap()
            .command
        else {
            panic!("not incr")
        };
        assert_eq!(
            (c.delta, c.initial, c.no_create, c.ttl),
            (-5, -2, false, None)
        );
        let Command::Decr(c) = parse(&["decr", "k"]).unwrap().command else {
            panic!("not decr")
        };
        assert_eq!((c.delta, c.initial), (1, 0), "like Redis DECR");
        assert!(parse(&["incr", "k", "--no-create", "--ttl", "5s"]).is_err());
        assert!(parse(&["incr", "k", "1.5"]).is_err());

        assert!(matches!(
            parse(&["del", "--pattern", "a*", "--tag", "t", "--exact"])
                .unwrap()
                .command,
            Command::Del {
                key: None,
                pattern: Some(_),
                tag: Some(_),
                exact: true
            }
        ));
        for bad in [
            &["del"][..],
            &["del", "k", "--pattern", "a*"],
            &["del", "--pattern", "a*", "--exact"],
            &["del", "--pattern", ""],
            &["keys", ""],
            &["touch", "k"],
            &["touch", "k", "--ttl", "1s", "--persist"],
            &["set", "k", "v", "--if-absent", "--if-present"],
        ] {
            assert!(parse(bad).is_err(), "{bad:?}");
        }
        assert!(matches!(
            parse(&["touch", "k", "--persist"]).unwrap().command,
            Command::Touch {
                persist: true,
                ttl: None,
                ..
            }
        ));
        assert!(matches!(
            parse(&["keys"]).unwrap().command,
            Command::Keys {
                pattern: None,
                tag: None,
                exact: false
            }
        ));
    }
}
