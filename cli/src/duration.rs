//! Durations on the command line, in the grammar of every setting
//! (`cachekit_proto::duration`): `250ms`, `1.5s`, `2m`, `1h`, `1d`, combined as `1m30s`; a bare
//! number is seconds.

use std::time::Duration;

pub use cachekit_proto::duration::format_duration;
use cachekit_proto::duration::BareUnit;

/// Parses a duration such as `30s`, `1.5s`, `500ms`, `5m`, `1h30m` or `10` (seconds).
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    cachekit_proto::duration::parse_duration(text, BareUnit::Seconds)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_cli_reads_the_common_grammar_with_bare_seconds() {
        let p = |s| parse_duration(s).unwrap();
        assert_eq!(p("250ms"), Duration::from_millis(250));
        assert_eq!(p("1.5s"), Duration::from_millis(1500));
        assert_eq!(p("2m"), Duration::from_secs(120));
        assert_eq!(p("1h"), Duration::from_secs(3600));
        assert_eq!(p("10"), Duration::from_secs(10));
        assert!(parse_duration("-1s")
            .unwrap_err()
            .contains("negative duration is refused"));
        assert_eq!(format_duration(Duration::from_millis(1500)), "1.5s");
    }
}
