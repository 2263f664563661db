//! Where Redis is: one URL, or the seed nodes of a Redis Cluster.

use crate::error::StoreError;
use std::time::Duration;

/// A parsed Redis target.
#[derive(Clone, Debug)]
pub struct Target {
    /// The seed URLs (one for a single server).
    pub urls: Vec<String>,
    /// Whether to speak the Redis Cluster protocol.
    pub cluster: bool,
    /// Connection and response timeout of every call.
    pub timeout: Duration,
    /// The URLs with passwords hidden, for messages and logs.
    pub shown: String,
    /// Set for a `redis+sentinel://` URL: the primary is found through these sentinels
    /// (then `urls` holds the sentinels' own `redis://host:port` URLs).
    pub sentinel: Option<crate::sentinel::SentinelSpec>,
}

impl Target {
    /// Parses `spec`: one URL (`redis://`, `rediss://`, `unix://`, `redis+unix://`, with an
    /// optional `user:password@`), for a cluster a comma-separated list of seed URLs, or a
    /// `redis+sentinel://` URL (see [`crate::sentinel::SentinelSpec::parse`]).
    ///
    /// # Errors
    /// [`StoreError::Config`] when a URL does not parse.
    pub fn parse(spec: &str, cluster: bool, timeout: Duration) -> Result<Target, StoreError> {
        if let Some(s) = crate::sentinel::SentinelSpec::parse(spec.trim())? {
            if cluster {
                return Err(StoreError::Config {
                    url: s.shown.clone(),
                    message: "a Sentinel URL names one primary, not a Redis Cluster: set redis_cluster = false".into(),
                });
            }
            if timeout.is_zero() {
                return Err(StoreError::Config {
                    url: s.shown,
                    message: "the Redis timeout is 0; give it a positive number of ms".into(),
                });
            }
            return Ok(Target {
                urls: s.sentinel_urls(),
                cluster: false,
                timeout,
                shown: s.shown.clone(),
                sentinel: Some(s),
            });
        }
        let urls: Vec<String> = spec
            .split(',')
            .map(str::trim)
            .filter(|u| !u.is_empty())
            .map(str::to_owned)
            .collect();
        let shown = urls.iter().map(|u| redact(u)).collect::<Vec<_>>().join(",");
        if urls.is_empty() {
            return Err(StoreError::Config {
                url: shown,
                message: "no URL given".into(),
            });
        }
        if urls.len() > 1 && !cluster {
            return Err(StoreError::Config {
                url: shown,
                message:
                    "several URLs are only accepted for a Redis Cluster (set redis_cluster = true)"
                        .into(),
            });
        }
        for u in &urls {
            redis::Client::open(u.as_str()).map_err(|e| StoreError::Config {
                url: redact(u),
                message: e.to_string(),
            })?;
        }
        if timeout.is_zero() {
            return Err(StoreError::Config {
                url: shown,
                message: "the Redis timeout is 0; give it a positive number of ms".into(),
            });
        }
        Ok(Target {
            urls,
            cluster,
            timeout,
            shown,
            sentinel: None,
        })
    }
}

/// `url` with the password (if any) replaced by `***`.
pub fn redact(url: &str) -> String {
    let Some(scheme_end) = url.find("://") else {
        return url.to_owned();
    };
    let rest = &url[scheme_end + 3..];
    let Some(at) = rest.find('@') else {
        return url.to_owned();
    };
    let cred = &rest[..at];
    match cred.find(':') {
        Some(colon) => format!(
            "{}{}:***{}",
            &url[..scheme_end + 3],
            &cred[..colon],
            &rest[at..]
        ),
        None => url.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_are_hidden() {
        assert_eq!(
            redact("redis://bob:secret@h:6379/0"),
            "redis://bob:***@h:6379/0"
        );
        assert_eq!(redact("redis://:secret@h"), "redis://:***@h");
        assert_eq!(redact("redis://h:6379"), "redis://h:6379");
        assert_eq!(redact("unix:///run/redis.sock"), "unix:///run/redis.sock");
    }

    #[test]
    fn parsing() {
        let t = Duration::from_millis(100);
        assert!(Target::parse("redis://127.0.0.1:6379", false, t).is_ok());
        assert!(Target::parse("unix:///tmp/r.sock", false, t).is_ok());
        assert!(Target::parse("rediss://u:p@h:1", false, t).is_ok());
        let e = Target::parse("nope://x", false, t).unwrap_err();
        assert!(e.to_string().contains("bad Redis URL"), "{e}");
        assert!(Target::parse("redis://a:1,redis://b:2", false, t).is_err());
        assert_eq!(
            Target::parse("redis://a:1, redis://b:2", true, t)
                .unwrap()
                .urls
                .len(),
            2
        );
        assert!(Target::parse("redis://a:1", false, Duration::ZERO).is_err());
    }
}
